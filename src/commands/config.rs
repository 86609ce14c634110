//! `postie config ...`: about the config file itself.

use crate::cli::args::{ConfigCli, ConfigCommand};
use crate::exit::Result;
use crate::output::stdout;

pub(crate) fn run(cli: ConfigCli) -> Result<()> {
    match cli.command {
        ConfigCommand::Example => stdout::write(crate::config::EXAMPLE.as_bytes()),
    }
}
