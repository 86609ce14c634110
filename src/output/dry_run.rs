//! `--dry-run`: the envelope on stderr and the message on stdout, the very
//! bytes that would have been sent (the same `Content` as the wire).

use std::io::Write;

use crate::exit::{self, Error, Exit, Result};
use crate::output::messages;
use crate::smtp::outgoing::Outgoing;

pub(crate) fn print(messages: &[Outgoing]) -> Result<()> {
    messages::said("dry run, nothing sent");
    let mut stdout = std::io::stdout().lock();
    for message in messages {
        eprintln!("MAIL FROM:<{}>", message.envelope.sender);
        for recipient in &message.envelope.recipients {
            eprintln!("RCPT TO:<{recipient}>");
        }
        match message
            .content
            .write_to(&mut stdout)
            .and_then(|_| stdout.flush())
        {
            Ok(()) => {}
            // `postie --dry-run ... | head` is fine.
            Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
            Err(err) => {
                return Err(Error::new(
                    Exit::IoErr,
                    format!(
                        "cannot write the message to standard output: {}",
                        exit::io_reason(&err)
                    ),
                ))
            }
        }
    }
    Ok(())
}
