//! postie: compose a MIME message from flags and files and submit it over
//! SMTP. The binary's `main` parses the command line and calls [`run`];
//! everything else lives in one module per concern.

pub mod address;
pub mod capabilities;
pub mod cli;
pub mod compose;
pub mod config;
pub mod exit;
pub mod local;
pub mod message;
pub mod mx;
pub mod report;
pub mod request;
pub mod sendmail;
pub mod tls;
pub mod transcript;
pub mod transport;
pub mod wire;

use std::io::{IsTerminal, Write};

use cli::Cli;
use exit::{Error, Exit, Result};

/// Sends (or, with --dry-run, prints) the message the command line describes.
pub fn run(cli: Cli) -> Result<()> {
    let stdin = std::io::stdin();
    let is_terminal = stdin.is_terminal();
    let mut reader = stdin.lock();
    let plan = request::plan(
        cli,
        request::Stdin {
            reader: &mut reader,
            is_terminal,
        },
    )?;
    for warning in &plan.warnings {
        eprintln!("postie: warning: {warning}");
    }
    let Some(settings) = &plan.transport else {
        return print_dry_run(&plan);
    };
    let reports = transport::submit(settings, &plan.envelope, &plan.message)?;
    if let Some(format) = plan.capabilities {
        report::print_capabilities(&reports, format)?;
    }
    let refused: Vec<&transport::Refusal> = reports
        .iter()
        .filter_map(|r| r.delivery.as_ref())
        .flat_map(|d| &d.refused)
        .collect();
    for refusal in &refused {
        eprintln!(
            "postie: warning: not sent to <{}>: {}",
            refusal.recipient, refusal.reply
        );
    }
    if let Some(first) = refused.first() {
        // --partial: the message went out, but the caller must still learn
        // that some recipients did not get it.
        let exit = if refused.iter().any(|r| r.temporary) {
            Exit::TempFail
        } else {
            Exit::NoUser
        };
        return Err(Error::new(
            exit,
            format!(
                "sent to {} recipient(s), refused {} (first: <{}>)",
                plan.envelope.recipients.len() - refused.len(),
                refused.len(),
                first.recipient
            ),
        ));
    }
    Ok(())
}

fn print_dry_run(plan: &request::Plan) -> Result<()> {
    eprintln!("postie: dry run, nothing sent");
    eprintln!("MAIL FROM:<{}>", plan.envelope.sender);
    for recipient in &plan.envelope.recipients {
        eprintln!("RCPT TO:<{recipient}>");
    }
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(&plan.message).and_then(|_| stdout.flush()) {
        Ok(()) => Ok(()),
        // `postie --dry-run ... | head` is fine.
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(err) => Err(Error::new(
            Exit::IoErr,
            format!(
                "cannot write the message to standard output: {}",
                exit::io_reason(&err)
            ),
        )),
    }
}
