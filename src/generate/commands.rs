//! The clap commands as the generated files show them: the main command
//! with `queue` and `config` as subcommands, and the crate version instead of the
//! run-time OpenSSL one. Read by the completions, the man pages and the
//! README blocks alike.

use clap::{Command, CommandFactory};

use crate::cli::args::{self, ConfigCli, DkimCli, OAuth2Cli, QueueCli};

pub(crate) const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The main command with `queue` and `config` as subcommands: what a shell
/// completes. The binary dispatches `postie queue` and `postie config` itself (see `cli::invocation`), so this
/// combination exists only for generation.
pub(crate) fn command() -> Command {
    args::command()
        // Not cli::version(): the files must not depend on the OpenSSL of
        // the machine that generated them.
        .version(VERSION)
        .args_conflicts_with_subcommands(true)
        // `postie help` would be a message to a recipient named help: the
        // binary has no help subcommand, so the completions must not offer one.
        .disable_help_subcommand(true)
        .subcommand(queue_command())
        .subcommand(config_command())
        .subcommand(oauth2_command())
        .subcommand(dkim_command())
}

/// `postie queue`, as the man page and the completions show it.
pub(crate) fn queue_command() -> Command {
    QueueCli::command().name("queue").version(VERSION)
}

/// `postie config`, as the completions show it.
pub(crate) fn config_command() -> Command {
    ConfigCli::command().name("config").version(VERSION)
}

/// `postie oauth2`, as the completions show it.
pub(crate) fn oauth2_command() -> Command {
    OAuth2Cli::command().name("oauth2").version(VERSION)
}

/// `postie dkim`, as the man page and the completions show it.
pub(crate) fn dkim_command() -> Command {
    DkimCli::command().name("dkim").version(VERSION)
}
