//! What a command prints on standard output: a queue listing, a queued
//! message, the example config. A reader that went away (`| head`) is no
//! error; any other failure to write is 74.

use std::io::Write;

use crate::exit::{Error, Exit, Result};

/// Writes `bytes` to standard output and flushes it.
pub(crate) fn write(bytes: &[u8]) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|_| stdout.flush()) {
        Err(err) if err.kind() != std::io::ErrorKind::BrokenPipe => Err(Error::new(
            Exit::IoErr,
            format!(
                "cannot write to standard output: {}",
                crate::exit::io_reason(&err)
            ),
        )),
        _ => Ok(()),
    }
}
