//! Where a message is kept, and its attempt logged, when it cannot be
//! planned (a config that does not parse, a bad flag in sendmail mode): as
//! much of the config as can be read, else the built-in defaults. The
//! message must not be lost because its plan failed.
//!
//! Belongs here: that best-effort reading. Not here: the plan itself
//! ([`super::plan()`]), keeping the message (`queue`).

use std::path::PathBuf;

use crate::cli::args::Cli;
use crate::config::file::ConfigFile;
use crate::output::log::Logger;
use crate::plan::logger;
use crate::plan::precedence::queue_dir;
use crate::plan::stored::QueuedSettings;
use crate::types::DEFAULT_MAX_MESSAGE_SIZE;

/// Where a message that could not be planned is kept, and where that is
/// logged: as much of the config as can be read, else the defaults.
pub(crate) struct Fallback {
    pub(crate) queue_dir: Option<PathBuf>,
    /// `max_message_size`, for sendmail mode's read of its input.
    pub(crate) max_message_size: u64,
    pub(crate) log: Logger,
    pub(crate) settings: QueuedSettings,
}

impl Fallback {
    pub(crate) fn of(cli: &Cli) -> Fallback {
        let config = ConfigFile::load(cli.config.as_deref()).ok();
        let selected = config
            .as_ref()
            .and_then(|c| c.select(cli.account.as_deref(), cli.from.as_deref()).ok());
        Fallback {
            queue_dir: queue_dir(cli.queue_dir.as_deref(), config.as_ref()),
            max_message_size: config
                .as_ref()
                .map_or(DEFAULT_MAX_MESSAGE_SIZE, ConfigFile::max_message_size),
            log: selected
                .map(|(name, account)| logger(name, &account))
                .unwrap_or_default(),
            settings: QueuedSettings::from_cli(cli),
        }
    }
}
