//! The TOML config file: named accounts, a `[defaults]` table, a default.
//!
//! ```toml
//! default = "work"
//!
//! [defaults]
//! tls = "starttls"
//!
//! [accounts.work]
//! server = "smtp.example.com:587"
//! from = "Me <me@example.com>"
//! user = "me@example.com"
//! password_cmd = "pass show smtp/work"
//! ```
//!
//! Unknown keys are errors, so a typo never silently changes how mail is
//! sent. The file must be writable by its owner alone, who is the user or
//! root; one holding a `password` must be private to its owner.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::exit::{io_reason, Error, Result};
use crate::mail::address::Mailbox;
use crate::permissions;
use crate::types::QueuePolicy;
use crate::types::{AuthMethod, TlsMode};

/// Replaces /etc/postie/config.toml: for tests (which must never read the
/// machine's config) and for packagers who install it elsewhere.
pub(crate) const SYSTEM_CONFIG_ENV: &str = "POSTIE_SYSTEM_CONFIG";

/// The system-wide config file.
pub(crate) fn system_path() -> PathBuf {
    std::env::var_os(SYSTEM_CONFIG_ENV)
        .filter(|path| !path.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/etc/postie/config.toml"))
}

/// Where the config is looked for when neither --config nor POSTIE_CONFIG
/// names one, in order: the user's, then the system's.
pub(crate) fn default_paths() -> Vec<PathBuf> {
    let mut paths = Vec::new();
    if let Some(dir) = crate::home::config_dir() {
        paths.push(dir.join("postie").join("config.toml"));
    }
    paths.push(system_path());
    paths
}

/// Which config file applies, before it is read.
#[derive(Debug)]
pub(crate) enum Location {
    /// This file exists and could be opened.
    Found(PathBuf),
    /// The first file that exists, or may exist, but cannot be opened:
    /// EACCES on the file or on a directory above it hides whether it is
    /// there at all. Never a reason to go on to the next path: a user's
    /// unreadable config must not silently give way to the system's. A
    /// file named by --config or POSTIE_CONFIG is this when it is missing.
    Unreadable {
        path: PathBuf,
        error: std::io::Error,
    },
    /// None of these paths exists.
    Missing { tried: Vec<PathBuf> },
}

impl Location {
    /// The file named on the command line, else the first default path
    /// that is there.
    pub(crate) fn find(explicit: Option<&Path>) -> Location {
        if let Some(path) = explicit {
            return match std::fs::File::open(path) {
                Ok(_) => Location::Found(path.to_path_buf()),
                Err(error) => Location::Unreadable {
                    path: path.to_path_buf(),
                    error,
                },
            };
        }
        let tried = default_paths();
        for path in &tried {
            match std::fs::File::open(path) {
                Ok(_) => return Location::Found(path.clone()),
                Err(error) if is_absent(&error) => continue,
                Err(error) => {
                    return Location::Unreadable {
                        path: path.clone(),
                        error,
                    }
                }
            }
        }
        Location::Missing { tried }
    }
}

/// Nothing at that path: a component missing, or not a directory.
fn is_absent(error: &std::io::Error) -> bool {
    error.kind() == std::io::ErrorKind::NotFound || error.raw_os_error() == Some(ENOTDIR)
}

#[cfg(unix)]
const ENOTDIR: i32 = libc::ENOTDIR;
#[cfg(not(unix))]
const ENOTDIR: i32 = -1;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConfigFile {
    /// The account used when neither --account nor a matching --from picks one.
    pub(crate) default: Option<String>,
    /// Settings every account inherits.
    #[serde(default)]
    pub(crate) defaults: Account,
    /// Aliases file for every account (an account's own `aliases` wins).
    pub(crate) aliases: Option<PathBuf>,
    /// Where mail for a local name that no alias maps goes (nullmailer's
    /// adminaddr, ssmtp's root=); the aliases file's `default:` wins.
    pub(crate) admin: Option<String>,
    /// Where queued messages are kept [default: /var/spool/postie for root,
    /// else $XDG_STATE_HOME/postie/queue].
    pub(crate) queue_dir: Option<PathBuf>,
    /// How long a queued message is retried before it moves to failed/
    /// ("5d", "12h"; default 5 days).
    pub(crate) queue_max_age: Option<String>,
    /// The largest ready-made message postie takes ("100M"; default 100
    /// MiB): more is refused and kept in failed/.
    pub(crate) max_message_size: Option<String>,
    #[serde(default)]
    pub(crate) accounts: BTreeMap<String, Account>,
    /// The file it was read from, for error messages.
    #[serde(skip)]
    pub(crate) path: Option<PathBuf>,
    /// When no file was found: the paths looked at, for -v.
    #[serde(skip)]
    pub(crate) tried: Vec<PathBuf>,
}

/// One account's settings; every key is optional and falls back to
/// `[defaults]`, then to postie's built-in defaults.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Account {
    /// One server, or a list tried in order (`server = ["a", "b"]`).
    pub(crate) server: Option<ServerList>,
    pub(crate) port: Option<u16>,
    pub(crate) tls: Option<TlsMode>,
    pub(crate) ca_file: Option<PathBuf>,
    pub(crate) client_cert: Option<PathBuf>,
    pub(crate) client_key: Option<PathBuf>,
    pub(crate) insecure: Option<bool>,
    /// The server certificate's SHA-256 fingerprint to trust, whoever
    /// issued it (--tls-fingerprint): a self-signed server trusted on
    /// purpose.
    pub(crate) tls_fingerprint: Option<String>,
    pub(crate) user: Option<String>,
    pub(crate) password: Option<String>,
    pub(crate) password_cmd: Option<String>,
    pub(crate) auth: Option<AuthMethod>,
    pub(crate) allow_plaintext_auth: Option<bool>,
    pub(crate) helo: Option<String>,
    pub(crate) timeout: Option<u64>,
    pub(crate) from: Option<String>,
    pub(crate) partial: Option<bool>,
    /// Aliases file (sendmail syntax) for local recipients such as `root`.
    pub(crate) aliases: Option<PathBuf>,
    /// Domain appended to local names that no alias maps.
    pub(crate) local_domain: Option<String>,
    /// What to do with the From of a ready-made message.
    pub(crate) from_policy: Option<FromPolicy>,
    /// When to keep a message in the queue instead of failing.
    pub(crate) queue: Option<QueuePolicy>,
    /// Append one line per delivery attempt to this file.
    pub(crate) logfile: Option<PathBuf>,
    /// Log one line per delivery attempt to syslog (facility mail).
    pub(crate) syslog: Option<bool>,
    /// A DSN request (--notify, --ret, --envid) to a server that does not
    /// offer DSN fails the message instead of being dropped.
    pub(crate) dsn_required: Option<bool>,
    /// How many recipient domains direct delivery (--mx) sends to at once.
    #[serde(default, deserialize_with = "mx_concurrency")]
    pub(crate) mx_concurrency: Option<usize>,
    /// OAuth2 instead of a password: `microsoft`, `google` or any other
    /// name (whose endpoints the `oauth2_*_url` keys give).
    pub(crate) oauth2_provider: Option<String>,
    pub(crate) oauth2_client_id: Option<String>,
    /// A command that prints the OAuth2 client secret, where the provider
    /// wants one (Google's Desktop clients).
    pub(crate) oauth2_client_secret_cmd: Option<String>,
    /// Microsoft's tenant (default `common`).
    pub(crate) oauth2_tenant: Option<String>,
    pub(crate) oauth2_token_url: Option<String>,
    pub(crate) oauth2_device_url: Option<String>,
    /// The authorization endpoint, for the browser flow of a provider
    /// without a preset.
    pub(crate) oauth2_auth_url: Option<String>,
    /// Space-separated scopes, replacing the preset's.
    pub(crate) oauth2_scopes: Option<String>,
    /// DKIM: the private key (PEM, RSA of 2048 bits or more, or Ed25519),
    /// a secret file like a config with a password.
    pub(crate) dkim_key: Option<PathBuf>,
    /// DKIM: the selector, `s=` (the key is published at
    /// SELECTOR._domainkey.DOMAIN).
    pub(crate) dkim_selector: Option<String>,
    /// DKIM: the signing domain, `d=` [default: the From address's domain].
    pub(crate) dkim_domain: Option<String>,
    /// DKIM: the header fields to sign, replacing the default list.
    pub(crate) dkim_headers: Option<Vec<String>>,
    /// The account comes from the system config (/etc/postie/config.toml),
    /// so its token is kept in the system's state directory: set by
    /// [`ConfigFile::select`], never by the file.
    #[serde(skip)]
    pub(crate) system: bool,
}

/// `mx_concurrency` as a whole number; anything else is an error that
/// names the key (serde's own says only "expected usize"). The range is
/// checked with the table's name, in [`ConfigFile::parse`].
fn mx_concurrency<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> std::result::Result<Option<usize>, D::Error> {
    struct Count;
    impl serde::de::Visitor<'_> for Count {
        type Value = usize;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(
                f,
                "mx_concurrency as a number from 1 to {MAX_MX_CONCURRENCY}"
            )
        }
        fn visit_u64<E: serde::de::Error>(self, n: u64) -> std::result::Result<usize, E> {
            usize::try_from(n)
                .map_err(|_| E::invalid_value(serde::de::Unexpected::Unsigned(n), &self))
        }
        fn visit_i64<E: serde::de::Error>(self, n: i64) -> std::result::Result<usize, E> {
            usize::try_from(n)
                .map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(n), &self))
        }
    }
    deserializer.deserialize_any(Count).map(Some)
}

/// An account's DKIM keys make sense together: a key needs its selector
/// and the other way round, and the names are DNS names.
fn check_dkim(account: &Account) -> std::result::Result<(), String> {
    use crate::mail::dkim::{check_domain, check_selector};
    let any = account.dkim_domain.is_some() || account.dkim_headers.is_some();
    match (&account.dkim_key, &account.dkim_selector) {
        (Some(_), None) => return Err("dkim_key needs dkim_selector".to_string()),
        (None, Some(_)) => return Err("dkim_selector needs dkim_key".to_string()),
        (None, None) if any => {
            return Err("dkim_domain and dkim_headers need dkim_key and dkim_selector".to_string())
        }
        _ => {}
    }
    if let Some(selector) = &account.dkim_selector {
        check_selector(selector).map_err(|why| format!("dkim_selector = {selector:?} {why}"))?;
    }
    if let Some(domain) = &account.dkim_domain {
        check_domain(domain).map_err(|why| format!("dkim_domain = {domain:?} {why}"))?;
    }
    if let Some(headers) = &account.dkim_headers {
        let field_name =
            |h: &String| !h.is_empty() && h.bytes().all(|b| b.is_ascii_graphic() && b != b':');
        if let Some(bad) = headers.iter().find(|h| !field_name(h)) {
            return Err(format!(
                "dkim_headers lists {bad:?}, which is not a header field name"
            ));
        }
    }
    Ok(())
}

/// The most recipient domains `mx_concurrency` may ask for at once: more
/// is a typo, and would open more connections than any mail needs.
pub(crate) const MAX_MX_CONCURRENCY: usize = 100;

/// `server = "a"` or `server = ["a", "b"]`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub(crate) enum ServerList {
    One(String),
    Many(Vec<String>),
}

impl ServerList {
    pub(crate) fn items(&self) -> Vec<String> {
        match self {
            ServerList::One(server) => vec![server.clone()],
            ServerList::Many(list) => list.clone(),
        }
    }
}

/// How the sender of a ready-made message (--message, sendmail mode) is
/// treated. Cron writes `From: root (Cron Daemon)` and envelope `root`,
/// which real providers refuse; `override` fixes that.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum FromPolicy {
    /// Never touch From; the envelope sender is -f, else the account's from.
    Keep,
    /// Add From (the envelope sender, with -F's name) only when missing.
    #[default]
    Fill,
    /// Use the account's `from` as envelope sender and From address,
    /// keeping the message's display name.
    Override,
}

impl Account {
    /// Fills every key this account leaves unset from `fallback`.
    pub(crate) fn or(self, fallback: &Account) -> Account {
        let fb = fallback.clone();
        // The secret is one setting with two spellings: a layer that gives
        // either gives it whole. Key by key, a `password_cmd` in
        // `[defaults]` would beat an account's own `password`, and send
        // another account's secret to this account's server.
        let (password, password_cmd) = if self.password.is_some() || self.password_cmd.is_some() {
            (self.password, self.password_cmd)
        } else {
            (fb.password, fb.password_cmd)
        };
        // DKIM too: an account that signs with its own key must not take
        // the domain or selector of another from `[defaults]`.
        let own_dkim = self.dkim_key.is_some()
            || self.dkim_selector.is_some()
            || self.dkim_domain.is_some()
            || self.dkim_headers.is_some();
        let (dkim_key, dkim_selector, dkim_domain, dkim_headers) = if own_dkim {
            (
                self.dkim_key,
                self.dkim_selector,
                self.dkim_domain,
                self.dkim_headers,
            )
        } else {
            (
                fb.dkim_key,
                fb.dkim_selector,
                fb.dkim_domain,
                fb.dkim_headers,
            )
        };
        Account {
            server: self.server.or(fb.server),
            port: self.port.or(fb.port),
            tls: self.tls.or(fb.tls),
            ca_file: self.ca_file.or(fb.ca_file),
            client_cert: self.client_cert.or(fb.client_cert),
            client_key: self.client_key.or(fb.client_key),
            insecure: self.insecure.or(fb.insecure),
            tls_fingerprint: self.tls_fingerprint.or(fb.tls_fingerprint),
            user: self.user.or(fb.user),
            password,
            password_cmd,
            auth: self.auth.or(fb.auth),
            allow_plaintext_auth: self.allow_plaintext_auth.or(fb.allow_plaintext_auth),
            helo: self.helo.or(fb.helo),
            timeout: self.timeout.or(fb.timeout),
            from: self.from.or(fb.from),
            partial: self.partial.or(fb.partial),
            aliases: self.aliases.or(fb.aliases),
            local_domain: self.local_domain.or(fb.local_domain),
            from_policy: self.from_policy.or(fb.from_policy),
            queue: self.queue.or(fb.queue),
            logfile: self.logfile.or(fb.logfile),
            syslog: self.syslog.or(fb.syslog),
            mx_concurrency: self.mx_concurrency.or(fb.mx_concurrency),
            dsn_required: self.dsn_required.or(fb.dsn_required),
            oauth2_provider: self.oauth2_provider.or(fb.oauth2_provider),
            oauth2_client_id: self.oauth2_client_id.or(fb.oauth2_client_id),
            oauth2_client_secret_cmd: self
                .oauth2_client_secret_cmd
                .or(fb.oauth2_client_secret_cmd),
            oauth2_tenant: self.oauth2_tenant.or(fb.oauth2_tenant),
            oauth2_token_url: self.oauth2_token_url.or(fb.oauth2_token_url),
            oauth2_device_url: self.oauth2_device_url.or(fb.oauth2_device_url),
            oauth2_auth_url: self.oauth2_auth_url.or(fb.oauth2_auth_url),
            oauth2_scopes: self.oauth2_scopes.or(fb.oauth2_scopes),
            dkim_key,
            dkim_selector,
            dkim_domain,
            dkim_headers,
            system: self.system || fb.system,
        }
    }

    /// An OAuth2 account: its secret is an access token that postie
    /// obtains and refreshes itself.
    pub(crate) fn is_oauth2(&self) -> bool {
        self.oauth2_provider.is_some() || self.oauth2_token_url.is_some()
    }
}

impl ConfigFile {
    /// Loads the config named on the command line (which must exist), else
    /// the first default path that exists, else an empty config.
    pub(crate) fn load(explicit: Option<&Path>) -> Result<ConfigFile> {
        match Location::find(explicit) {
            Location::Found(path) => Self::read(&path),
            Location::Unreadable { path, error } => Err(Error::config(format!(
                "cannot read config file {}: {}",
                path.display(),
                io_reason(&error)
            ))),
            Location::Missing { tried } => Ok(ConfigFile {
                tried,
                ..ConfigFile::default()
            }),
        }
    }

    /// `max_message_size` in octets (checked when the file was read).
    pub(crate) fn max_message_size(&self) -> u64 {
        self.max_message_size
            .as_deref()
            .and_then(|size| crate::types::parse_size(size).ok())
            .unwrap_or(crate::types::DEFAULT_MAX_MESSAGE_SIZE)
    }

    /// Where the settings came from, for -v.
    pub(crate) fn source(&self) -> String {
        match &self.path {
            Some(path) => format!("config file {}", path.display()),
            None => format!(
                "no config file; tried {}",
                self.tried
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }

    fn read(path: &Path) -> Result<ConfigFile> {
        let cannot = |err: std::io::Error| {
            Error::config(format!(
                "cannot read config file {}: {}",
                path.display(),
                io_reason(&err)
            ))
        };
        // Checked on the file as opened, before a word of it is believed:
        // a config names commands that root runs.
        let mut file = std::fs::File::open(path).map_err(cannot)?;
        let meta = file.metadata().map_err(cannot)?;
        permissions::check_trusted_file(&meta, path, "config file")?;
        let mut text = String::new();
        file.read_to_string(&mut text).map_err(cannot)?;
        let mut config = Self::parse(&text, path)?;
        if config.holds_password() {
            permissions::check_secret_file(&meta, path, "config file", "a password")?;
        }
        config.path = Some(path.to_path_buf());
        Ok(config)
    }

    /// Parses config text; `path` only names the file in errors.
    pub(crate) fn parse(text: &str, path: &Path) -> Result<ConfigFile> {
        let config: ConfigFile = toml::from_str(text).map_err(|err| {
            let line = err
                .span()
                .map(|span| {
                    let before = &text[..span.start];
                    let line = before.matches('\n').count() + 1;
                    let column = before.chars().rev().take_while(|&c| c != '\n').count() + 1;
                    format!(" line {line}, column {column}")
                })
                .unwrap_or_default();
            Error::config(format!(
                "{}{line}: {}",
                path.display(),
                err.message().trim()
            ))
        })?;
        let accounts = std::iter::once(("[defaults]".to_string(), &config.defaults)).chain(
            config
                .accounts
                .iter()
                .map(|(n, a)| (format!("[accounts.{n}]"), a)),
        );
        for (table, account) in accounts {
            if account.server == Some(ServerList::Many(Vec::new())) {
                return Err(Error::config(format!(
                    "{}: server = [] in {table} lists no server",
                    path.display()
                )));
            }
            if account.timeout == Some(0) || account.port == Some(0) {
                return Err(Error::config(format!(
                    "{}: timeout and port in {table} must be at least 1",
                    path.display()
                )));
            }
            check_dkim(account).map_err(|why| {
                Error::config(format!("{}: {why} in {table}", path.display())).hint(
                    "see DKIM in postie.toml(5); `postie dkim keygen` prints the lines to add",
                )
            })?;
            if let Some(n) = account
                .mx_concurrency
                .filter(|n| !(1..=MAX_MX_CONCURRENCY).contains(n))
            {
                return Err(Error::config(format!(
                    "{}: mx_concurrency = {n} in {table} must be from 1 to {MAX_MX_CONCURRENCY}",
                    path.display()
                )));
            }
        }
        // Checked here, where the file is named, not first at a flush.
        if let Some(age) = &config.queue_max_age {
            crate::types::parse_duration(age).map_err(|err| Error {
                message: format!("{}: queue_max_age: {}", path.display(), err.message),
                ..err
            })?;
        }
        if let Some(size) = &config.max_message_size {
            crate::types::parse_size(size).map_err(|err| Error {
                message: format!("{}: max_message_size: {}", path.display(), err.message),
                ..err
            })?;
        }
        if let Some(admin) = &config.admin {
            if !Mailbox::parse(admin).is_ok_and(|m| !m.is_local()) {
                return Err(Error::config(format!(
                    "{}: admin = {admin:?} is not an address with a domain (user@example.com)",
                    path.display()
                )));
            }
        }
        if let Some(name) = &config.default {
            if !config.accounts.contains_key(name) {
                return Err(Error::config(format!(
                    "{}: default = {name:?} names no [accounts.{name}] table",
                    path.display()
                )));
            }
        }
        Ok(config)
    }

    fn holds_password(&self) -> bool {
        self.defaults.password.is_some() || self.accounts.values().any(|a| a.password.is_some())
    }

    fn describe(&self) -> String {
        self.path
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "the config (none found)".to_string())
    }

    /// Picks the account: by name, else the one whose `from` address equals
    /// `from`, else `default`, else the only one, else none; returns it
    /// merged over `[defaults]`.
    pub(crate) fn select(
        &self,
        name: Option<&str>,
        from: Option<&str>,
    ) -> Result<(Option<String>, Account)> {
        let chosen = match name {
            Some(name) => {
                if !self.accounts.contains_key(name) {
                    let known: Vec<&str> = self.accounts.keys().map(String::as_str).collect();
                    let known = if known.is_empty() {
                        "it defines none".to_string()
                    } else {
                        format!("it has: {}", known.join(", "))
                    };
                    return Err(Error::config(format!(
                        "no account {name:?} in {}; {known}",
                        self.describe()
                    )));
                }
                Some(name.to_string())
            }
            None => from
                .and_then(|from| self.account_for_sender(from))
                .or_else(|| self.default.clone())
                // One account and no `default`: nothing else it could mean.
                .or_else(|| match self.accounts.keys().collect::<Vec<_>>()[..] {
                    [only] => Some(only.clone()),
                    _ => None,
                }),
        };
        let mut account = match &chosen {
            Some(name) => self.accounts[name].clone().or(&self.defaults),
            None => self.defaults.clone(),
        };
        account.aliases = account.aliases.or_else(|| self.aliases.clone());
        account.system = self.path.as_deref() == Some(system_path().as_path());
        if account.is_oauth2() && (account.password.is_some() || account.password_cmd.is_some()) {
            return Err(Error::config(format!(
                "account {} in {} is an OAuth2 account (oauth2_provider or oauth2_token_url) \
                 and also has a password or password_cmd",
                chosen.as_deref().unwrap_or("[defaults]"),
                self.describe()
            ))
            .hint("remove password and password_cmd: postie gets the token itself (postie oauth2 login)"));
        }
        Ok((chosen, account))
    }

    fn account_for_sender(&self, from: &str) -> Option<String> {
        let wanted = Mailbox::parse(from).ok()?.email.to_lowercase();
        self.accounts.iter().find_map(|(name, account)| {
            let own = Mailbox::parse(account.from.as_deref()?).ok()?;
            (own.email.to_lowercase() == wanted).then(|| name.clone())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::Exit;

    #[test]
    fn dkim_keys_go_together_and_an_account_takes_none_from_defaults() {
        let parse = |text: &str| ConfigFile::parse(text, Path::new("/etc/postie.toml"));
        let config = parse(
            "[defaults]\ndkim_key = \"/k\"\ndkim_selector = \"d\"\ndkim_domain = \"example.com\"\n\
             [accounts.a]\n[accounts.b]\ndkim_key = \"/b\"\ndkim_selector = \"b\"\n",
        )
        .unwrap();
        let a = config.select(Some("a"), None).unwrap().1;
        assert_eq!(a.dkim_domain.as_deref(), Some("example.com"));
        let b = config.select(Some("b"), None).unwrap().1;
        assert_eq!(b.dkim_selector.as_deref(), Some("b"));
        // Not [defaults]' domain with b's own key.
        assert_eq!(b.dkim_domain, None);
        for (keys, says) in [
            (
                "dkim_key = \"/k\"",
                "dkim_key needs dkim_selector in [accounts.a]",
            ),
            ("dkim_selector = \"s\"", "dkim_selector needs dkim_key"),
            (
                "dkim_domain = \"example.com\"",
                "need dkim_key and dkim_selector",
            ),
            (
                "dkim_key = \"/k\"\ndkim_selector = \"a b\"",
                "dkim_selector = \"a b\" is not a selector",
            ),
            (
                "dkim_key = \"/k\"\ndkim_selector = \"s\"\ndkim_domain = \"x\\ny.com\"",
                "dkim_domain",
            ),
            (
                "dkim_key = \"/k\"\ndkim_selector = \"s\"\ndkim_headers = [\"From:\"]",
                "not a header field name",
            ),
        ] {
            let err = parse(&format!("[accounts.a]\n{keys}\n")).unwrap_err();
            assert_eq!(err.exit, Exit::Config, "{keys}");
            assert!(err.message.contains(says), "{keys}: {}", err.message);
        }
    }

    #[test]
    fn mx_concurrency_is_a_count_from_1_to_100() {
        let parse = |text: &str| ConfigFile::parse(text, Path::new("/etc/postie.toml"));
        let config = parse("[defaults]\nmx_concurrency = 3\n[accounts.a]\n").unwrap();
        assert_eq!(
            config.select(Some("a"), None).unwrap().1.mx_concurrency,
            Some(3)
        );
        for (value, says) in [
            (
                "0",
                "mx_concurrency = 0 in [defaults] must be from 1 to 100",
            ),
            (
                "101",
                "mx_concurrency = 101 in [defaults] must be from 1 to 100",
            ),
            ("-1", "expected mx_concurrency as a number from 1 to 100"),
            ("\"x\"", "expected mx_concurrency as a number from 1 to 100"),
        ] {
            let err = parse(&format!("[defaults]\nmx_concurrency = {value}\n")).unwrap_err();
            assert_eq!(err.exit, Exit::Config, "{value}");
            assert!(
                err.message.starts_with("/etc/postie.toml"),
                "{}",
                err.message
            );
            assert!(err.message.contains(says), "{value}: {}", err.message);
            assert!(!err.message.contains('\n'), "{}", err.message);
        }
    }

    const SAMPLE: &str = r#"
default = "home"

[defaults]
tls = "starttls"
timeout = 20

[accounts.home]
server = "smtp.home.example"
from = "Me <me@home.example>"

[accounts.work]
server = "smtp.work.example:465"
from = "me@work.example"
tls = "implicit"
user = "me"
"#;

    fn sample() -> ConfigFile {
        ConfigFile::parse(SAMPLE, Path::new("test.toml")).unwrap()
    }

    #[test]
    fn account_by_name_inherits_defaults() {
        let (name, account) = sample().select(Some("work"), None).unwrap();
        assert_eq!(name.as_deref(), Some("work"));
        assert_eq!(account.tls, Some(TlsMode::Implicit));
        assert_eq!(account.timeout, Some(20));
    }

    #[test]
    fn account_by_sender_address_ignores_case_and_name() {
        let (name, _) = sample()
            .select(None, Some("Someone <ME@Work.Example>"))
            .unwrap();
        assert_eq!(name.as_deref(), Some("work"));
    }

    #[test]
    fn falls_back_to_default_account() {
        let (name, account) = sample().select(None, Some("other@x.example")).unwrap();
        assert_eq!(name.as_deref(), Some("home"));
        assert_eq!(account.tls, Some(TlsMode::Starttls));
    }

    #[test]
    fn unknown_account_lists_known_ones() {
        let err = sample().select(Some("nope"), None).unwrap_err();
        assert_eq!(err.exit, Exit::Config);
        assert!(err.message.contains("home, work"), "{}", err.message);
    }

    #[test]
    fn unknown_key_is_an_error_with_line() {
        let err =
            ConfigFile::parse("[accounts.a]\nsevrer = \"x\"\n", Path::new("c.toml")).unwrap_err();
        assert_eq!(err.exit, Exit::Config);
        assert!(
            err.message.starts_with("c.toml line 2, column 1:"),
            "{}",
            err.message
        );
        assert!(err.message.contains("sevrer"), "{}", err.message);
    }

    #[test]
    fn zero_timeout_or_port_is_refused() {
        let err = ConfigFile::parse("[defaults]\ntimeout = 0\n", Path::new("c.toml")).unwrap_err();
        assert!(err.message.contains("at least 1"), "{}", err.message);
        let err =
            ConfigFile::parse("queue_max_age = \"5 weeks\"\n", Path::new("c.toml")).unwrap_err();
        assert_eq!(err.exit, Exit::Config);
        assert!(
            err.message
                .starts_with("c.toml: queue_max_age: invalid duration \"5 weeks\""),
            "{}",
            err.message
        );
    }

    #[test]
    fn admin_must_have_a_domain() {
        let err = ConfigFile::parse("admin = \"root\"\n", Path::new("c.toml")).unwrap_err();
        assert_eq!(err.exit, Exit::Config);
        assert!(err.message.contains("admin"), "{}", err.message);
        let ok = ConfigFile::parse("admin = \"Ops <ops@example.com>\"\n", Path::new("c.toml"));
        assert!(ok.is_ok());
    }

    #[test]
    fn the_only_account_is_the_default() {
        let config =
            ConfigFile::parse("[accounts.only]\nserver = \"x\"\n", Path::new("c.toml")).unwrap();
        assert_eq!(
            config.select(None, None).unwrap().0.as_deref(),
            Some("only")
        );
        assert_eq!(
            sample().select(None, None).unwrap().0.as_deref(),
            Some("home")
        );
    }

    #[test]
    fn default_must_name_an_account() {
        let err = ConfigFile::parse("default = \"x\"\n", Path::new("c.toml")).unwrap_err();
        assert!(err.message.contains("[accounts.x]"), "{}", err.message);
    }
}
