//! Precedence, written once: flag > environment > account > `[defaults]`
//! > built-in default.
//!
//! As msmtp does (`override_account()`, then `check_account()`), the flags
//! become an [`Account`] of their own, laid over the chosen account, which
//! the config already laid over `[defaults]` ([`ConfigFile::select`]). clap
//! has folded the POSTIE_* variables into the flags, so the environment
//! needs no layer of its own; POSTIE_PASSWORD, which clap does not read, is
//! put into the flags' layer here. The rest of the plan reads the merged
//! values and never writes `flag.or(account)` itself.
//!
//! Belongs here: the layering, and the few keys that are decided from the
//! layers together rather than key by key. Not here: the exceptions that
//! depend on a value, not a layer (an `smtps://` URL implies implicit TLS,
//! a URL's port beats a configured one, an exchanger never gets a login):
//! [`super::server`] writes those where it decides them. Not the built-in
//! defaults either: they depend on the route (port 465 or 587, TLS by
//! host) and are written where each is used.

use std::path::{Path, PathBuf};

use crate::cli::args::Cli;
use crate::config::file::{Account, ConfigFile, ServerList};
use crate::exit::Result;
use crate::plan::secret::PASSWORD_ENV;
use crate::queue::storage;
use crate::types::QueuePolicy;

/// The chosen account, and the settings in force for this run.
#[derive(Clone, Debug)]
pub(crate) struct Selected {
    /// The account's name, for the log.
    pub(crate) name: Option<String>,
    /// The account over `[defaults]`, without the flags. Read only where
    /// it matters where a value came from: the account's own `from` next
    /// to -f, a login the account holds but no server, the log.
    pub(crate) account: Account,
    /// Flags over the account over `[defaults]`: the values in force.
    pub(crate) merged: Account,
}

impl Selected {
    /// The account that --account (else --from) picks from `config`.
    pub(crate) fn of(cli: &Cli, config: &ConfigFile) -> Result<Selected> {
        let (name, account) = config.select(cli.account.as_deref(), cli.from.as_deref())?;
        Ok(Selected::new(cli, name, account))
    }

    /// `account` (already over `[defaults]`) with `cli`'s flags over it.
    pub(crate) fn new(cli: &Cli, name: Option<String>, account: Account) -> Selected {
        // `Account::or` takes the secret whole from the first layer that
        // gives it, so POSTIE_PASSWORD beats the account's password_cmd;
        // within a layer the command comes first (plan::secret).
        let merged = flags(cli).or(&account);
        Selected {
            name,
            account,
            merged,
        }
    }
}

/// POSTIE_PASSWORD, which clap does not read. Unit tests never see the
/// one of whoever runs them.
fn password_from_environment() -> Option<String> {
    if cfg!(test) {
        None
    } else {
        std::env::var(PASSWORD_ENV).ok()
    }
}

/// What the command line (with its POSTIE_* variables) sets, as an account:
/// `None` where it says nothing. A switch such as --insecure can only turn
/// a setting on; leaving it out leaves the account's value.
fn flags(cli: &Cli) -> Account {
    let on = |given: bool| given.then_some(true);
    Account {
        server: cli.server.clone().map(ServerList::One),
        port: cli.port,
        tls: cli.tls,
        ca_file: cli.ca_file.clone(),
        client_cert: cli.client_cert.clone(),
        client_key: cli.client_key.clone(),
        insecure: on(cli.insecure),
        tls_fingerprint: cli.tls_fingerprint.clone(),
        user: cli.user.clone(),
        password: password_from_environment(),
        password_cmd: cli.password_cmd.clone(),
        auth: cli.auth,
        allow_plaintext_auth: on(cli.allow_plaintext_auth),
        helo: cli.helo.clone(),
        timeout: cli.timeout,
        from: cli.from.clone(),
        partial: on(cli.partial),
        queue: if cli.no_queue {
            Some(QueuePolicy::Never)
        } else if cli.queue {
            Some(QueuePolicy::OnTempfail)
        } else {
            None
        },
        // No flag sets these.
        aliases: None,
        local_domain: None,
        from_policy: None,
        logfile: None,
        syslog: None,
        mx_concurrency: None,
        dsn_required: None,
        oauth2_provider: None,
        oauth2_client_id: None,
        oauth2_client_secret_cmd: None,
        oauth2_tenant: None,
        oauth2_token_url: None,
        oauth2_device_url: None,
        oauth2_auth_url: None,
        oauth2_scopes: None,
        dkim_key: None,
        dkim_selector: None,
        dkim_domain: None,
        dkim_headers: None,
        system: false,
    }
}

/// The queue's directory: --queue-dir, then the config's `queue_dir` (a
/// file-wide key, not an account's), then the default for this user.
pub(crate) fn queue_dir(flag: Option<&Path>, config: Option<&ConfigFile>) -> Option<PathBuf> {
    flag.map(Path::to_path_buf)
        .or_else(|| config.and_then(|c| c.queue_dir.clone()))
        .or_else(storage::default_dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::TlsMode;
    use std::path::Path;

    fn merged(args: &[&str], config: &str) -> Account {
        let cli = crate::cli::args::parse_without_environment(args);
        let config = ConfigFile::parse(config, Path::new("test.toml")).unwrap();
        Selected::of(&cli, &config).unwrap().merged
    }

    #[test]
    fn a_flag_beats_the_account_which_beats_defaults() {
        let config = r#"
            default = "work"
            [defaults]
            helo = "defaults.example"
            timeout = 5
            tls = "none"
            insecure = true
            [accounts.work]
            helo = "account.example"
            tls = "implicit"
        "#;
        let none = merged(&[], config);
        assert_eq!(none.helo.as_deref(), Some("account.example"));
        assert_eq!(none.tls, Some(TlsMode::Implicit));
        assert_eq!(none.timeout, Some(5), "from [defaults]");
        assert_eq!(none.insecure, Some(true), "from [defaults]");
        let flags = merged(
            &[
                "--helo",
                "flag.example",
                "--tls",
                "starttls",
                "--timeout",
                "9",
            ],
            config,
        );
        assert_eq!(flags.helo.as_deref(), Some("flag.example"));
        assert_eq!(flags.tls, Some(TlsMode::Starttls));
        assert_eq!(flags.timeout, Some(9));
        // A switch left out does not turn the account's setting off.
        assert_eq!(flags.insecure, Some(true));
    }

    #[test]
    fn tls_fingerprint_is_an_account_key_and_the_flag_wins() {
        let config =
            "[defaults]\ntls_fingerprint = \"aa\"\n[accounts.a]\ntls_fingerprint = \"bb\"\n";
        assert_eq!(merged(&[], config).tls_fingerprint.as_deref(), Some("bb"));
        let flag = merged(&["--tls-fingerprint", "cc"], config);
        assert_eq!(flag.tls_fingerprint.as_deref(), Some("cc"));
    }

    #[test]
    fn queue_flags_beat_the_account_policy() {
        let config = "[defaults]\nqueue = \"always\"\n";
        assert_eq!(merged(&[], config).queue, Some(QueuePolicy::Always));
        assert_eq!(
            merged(&["--queue"], config).queue,
            Some(QueuePolicy::OnTempfail)
        );
        assert_eq!(
            merged(&["--no-queue"], config).queue,
            Some(QueuePolicy::Never)
        );
    }

    #[test]
    fn a_password_command_flag_replaces_the_accounts_password() {
        let config = "[defaults]\npassword_cmd = \"pass a\"\n";
        let cli = crate::cli::args::parse_without_environment(&["--password-cmd", "pass b"]);
        let config = ConfigFile::parse(config, Path::new("test.toml")).unwrap();
        let selected = Selected::of(&cli, &config).unwrap();
        assert_eq!(selected.merged.password_cmd.as_deref(), Some("pass b"));
        assert_eq!(selected.account.password_cmd.as_deref(), Some("pass a"));
    }

    #[test]
    fn an_accounts_own_password_beats_a_password_command_in_defaults() {
        let config = "[defaults]\npassword_cmd = \"pass shared\"\n\
                      [accounts.own]\nserver = \"smtp.example.com\"\npassword = \"own\"\n";
        let cli = crate::cli::args::parse_without_environment(&["--account", "own"]);
        let config = ConfigFile::parse(config, Path::new("test.toml")).unwrap();
        let selected = Selected::of(&cli, &config).unwrap();
        assert_eq!(selected.merged.password.as_deref(), Some("own"));
        assert_eq!(selected.merged.password_cmd, None);
    }
}
