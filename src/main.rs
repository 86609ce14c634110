use std::process::ExitCode;

fn main() -> ExitCode {
    postie::main(std::env::args_os().collect())
}
