//! Planning again from a queue entry: its stored settings ([`super::stored`])
//! applied to an empty command line, with today's config, so that a changed
//! password or server applies to messages already queued.
//!
//! Belongs here: reading a [`QueuedSettings`] back into settings and plans.
//! Not here: the record's format ([`super::stored`]), the queue's files
//! (`queue`), sending (`commands::queue`).

use clap::Parser;

use crate::cli::args::Cli;
use crate::config::file::ConfigFile;
use crate::exit::{Error, Exit, Result};
use crate::output::log::Logger;
use crate::plan::inputs::Stdin;
use crate::plan::precedence::Selected;
use crate::plan::secret::PendingLogin;
use crate::plan::server::transport_settings;
use crate::plan::stored::{QueuedSettings, Submission};
use crate::plan::{logger, plan, Plan};
use crate::smtp::settings::Settings;
use crate::types::Envelope;

/// Plans a message that was kept before it could be planned, as sendmail
/// mode would have, with its stored settings and today's config; nothing
/// is sent (`dry_run`), so no password command runs.
pub(crate) fn replan(
    submission: &Submission,
    settings: &QueuedSettings,
    message: &[u8],
) -> Result<Plan> {
    let mut cli = Cli::try_parse_from(["postie", "--message", "-"])
        .map_err(|err| Error::new(Exit::Software, format!("queue: {}", err.kind())))?;
    settings.apply(&mut cli);
    submission.apply(&mut cli);
    cli.dry_run = true;
    let config = ConfigFile::load(cli.config.as_deref())?;
    let mut reader = message;
    plan(
        cli,
        config,
        Stdin {
            reader: &mut reader,
            is_terminal: false,
        },
    )
}

/// The transport settings for a queued message, from its stored record
/// and today's config (a changed password or server applies), with the
/// usual precedence: the record's flags, then the account, then defaults.
pub(crate) fn replay_settings(
    stored: &QueuedSettings,
    envelope: &Envelope,
) -> Result<(Settings, Logger)> {
    let (cli, selected) = replay_account(stored, &envelope.sender)?;
    let (mut warnings, mut notes) = (Vec::new(), Vec::new());
    let (mut settings, login) =
        transport_settings(&cli, &selected, envelope, &mut warnings, &mut notes)?;
    settings.login = login.map(PendingLogin::fetch).transpose()?;
    Ok((settings, logger(selected.name, &selected.account)))
}

/// Where a queued message's attempts are logged, without building its
/// login (no password command runs): for entries given up without an
/// attempt. The default logger (none) when the config cannot be read.
pub(crate) fn replay_logger(stored: &QueuedSettings, sender: &str) -> Logger {
    replay_account(stored, sender)
        .map(|(_, selected)| logger(selected.name, &selected.account))
        .unwrap_or_default()
}

fn replay_account(stored: &QueuedSettings, sender: &str) -> Result<(Cli, Selected)> {
    let mut cli = Cli::try_parse_from(["postie"]).map_err(|err| {
        Error::new(
            Exit::Software,
            format!("queue: cannot start from empty settings: {}", err.kind()),
        )
    })?;
    stored.apply(&mut cli);
    let config = ConfigFile::load(cli.config.as_deref())?;
    let (account_name, account) = config.select(cli.account.as_deref(), Some(sender))?;
    let selected = Selected::new(&cli, account_name, account);
    Ok((cli, selected))
}
