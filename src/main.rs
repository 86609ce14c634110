use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::Parser;

use postie::cli::Cli;
use postie::exit::Exit;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return clap_exit(err),
    };
    match postie::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("postie: error: {err}");
            ExitCode::from(err.exit.code())
        }
    }
}

/// clap exits 2 on a usage error; scripts expect sysexits' 64, and one line.
fn clap_exit(err: clap::Error) -> ExitCode {
    if matches!(
        err.kind(),
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
    ) {
        let _ = err.print();
        return ExitCode::SUCCESS;
    }
    let rendered = err.render().to_string();
    let first = rendered.lines().next().unwrap_or("invalid arguments");
    let first = first.strip_prefix("error: ").unwrap_or(first);
    eprintln!(
        "postie: error: {first}; see 'postie --help' ({} {})",
        Exit::Usage.name(),
        Exit::Usage.code()
    );
    ExitCode::from(Exit::Usage.code())
}
