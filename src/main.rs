use std::ffi::OsString;
use std::process::ExitCode;

use clap::error::ErrorKind;

use postie::cli;
use postie::exit::{Error, Exit};
use postie::sendmail;

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    let sendmail_mode = args.first().is_some_and(sendmail::invoked_as_sendmail)
        || args.iter().skip(1).any(|arg| arg == "--sendmail");
    // Not in sendmail mode, where `sendmail queue` mails a local user.
    if !sendmail_mode && args.get(1).is_some_and(|arg| arg == "queue") {
        return match cli::parse_queue_from(
            std::iter::once(OsString::from("postie queue")).chain(args.into_iter().skip(2)),
        ) {
            Ok(cli) => match postie::queue_cmd::run(cli) {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => report(err),
            },
            Err(err) => clap_exit(err, "postie queue --help"),
        };
    }
    // Hidden: writes the completions and man pages (see README).
    if !sendmail_mode && args.get(1).is_some_and(|arg| arg == "generate") {
        return match postie::generate::run(&args[2..]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => report(err),
        };
    }
    let parsed = if sendmail_mode {
        let args = sendmail_args(&args);
        sendmail::parse(args.clone()).map_err(|err| postie::unparsed_sendmail(&args, err))
    } else {
        match cli::parse_from(&args) {
            Ok(cli) => Ok(cli),
            Err(err) => return clap_exit(err, "postie --help"),
        }
    };
    let cli = match parsed {
        Ok(cli) => cli,
        Err(err) => return report(err),
    };
    match postie::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => report(err),
    }
}

fn report(err: Error) -> ExitCode {
    eprintln!("postie: error: {err}");
    ExitCode::from(err.exit.code())
}

/// The arguments as text. One that is not UTF-8 (cron's `-F` from a
/// Latin-1 GECOS name) is read lossily, with a warning, rather than
/// refused: refusing would drop the message waiting on stdin.
fn sendmail_args(args: &[OsString]) -> Vec<String> {
    args.iter()
        .skip(1)
        .map(|arg| {
            arg.to_str().map(str::to_string).unwrap_or_else(|| {
                let lossy = arg.to_string_lossy().into_owned();
                eprintln!("postie: warning: argument {lossy:?} is not UTF-8; read as shown");
                lossy
            })
        })
        .collect()
}

/// clap exits 2 on a usage error; scripts expect sysexits' 64, and one line.
/// A clap error as postie's one line; `help` is the command that explains.
fn clap_exit(err: clap::Error, help: &str) -> ExitCode {
    if matches!(
        err.kind(),
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
    ) {
        let _ = err.print();
        return ExitCode::SUCCESS;
    }
    let rendered = err.render().to_string();
    let mut lines = rendered.lines();
    let first = lines.next().unwrap_or("invalid arguments");
    let mut first = first.strip_prefix("error: ").unwrap_or(first).to_string();
    // "the following required arguments were not provided:" lists them on
    // the lines below; keep them on the one line.
    if first.ends_with(':') {
        let listed: Vec<&str> = lines
            .take_while(|line| line.starts_with(' '))
            .map(str::trim)
            .collect();
        first = format!("{first} {}", listed.join(", "));
    }
    eprintln!(
        "postie: error: {first}; see '{help}' ({} {})",
        Exit::Usage.name(),
        Exit::Usage.code()
    );
    ExitCode::from(Exit::Usage.code())
}
