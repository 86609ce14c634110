//! The settings a queued message is sent with, as stored in its entry.
//!
//! This is a record of its own, not the command line: a flag can be
//! renamed or removed without making the entries already on disk
//! unreadable, and every path in it is absolute, because `postie queue
//! flush` runs from cron in another directory. It holds only what decides
//! how a message is sent (server, TLS, login, timeouts); what the message
//! says is in its `.eml`, and passwords are never stored (the account's
//! `password_cmd` or `password` is read at flush time).
//!
//! `KEPT` and `EXCLUDED` (in tests) are the one list of which flags an entry
//! keeps: a test fails for a flag in neither (the README and man pages
//! describe the record, they do not repeat the list).
//!
//! Belongs here: the record, its versions, and what of a command line goes
//! into it. Not here: reading it back into a plan ([`super::replay`]), the
//! entry's files (`queue::storage`).
//!
//! Versions: 0 is the argument list that entries held before this record
//! existed (`"args": ["--server=x", ...]`), read by [`QueuedSettings::from_v0_args`]
//! and written back as the current version on the entry's next save.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::cli::args::Cli;
use crate::types::{AuthMethod, Notify, Ret, TlsMode};

/// What sendmail's command line said of a message, and nothing else:
/// `-f`, `-F`, `-t`, `-i`, `-N`, `-R`, `-V` and the recipient arguments, as typed. Kept with
/// a message that was never planned (a maildrop file, or one kept in
/// failed/ because planning it failed), so that it can be planned later,
/// with the config as it is then. Never settings that run anything.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Submission {
    /// -f / -r, as typed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) from: Option<String>,
    /// -F.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) full_name: Option<String>,
    /// -t.
    #[serde(default)]
    pub(crate) read_recipients: bool,
    /// -i / -oi: a lone dot does not end the message.
    #[serde(default)]
    pub(crate) ignore_dots: bool,
    /// The recipient arguments, as typed.
    #[serde(default)]
    pub(crate) recipients: Vec<String>,
    /// -N.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) notify: Option<Notify>,
    /// -R.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) ret: Option<Ret>,
    /// -V.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) envid: Option<String>,
}

impl Submission {
    pub(crate) fn from_cli(cli: &Cli) -> Submission {
        Submission {
            from: cli.from.clone(),
            full_name: cli.full_name.clone(),
            read_recipients: cli.read_recipients,
            ignore_dots: !cli.dot_ends_message,
            recipients: cli.recipients.clone(),
            notify: cli.notify,
            ret: cli.ret,
            envid: cli.envid.clone(),
        }
    }

    /// A sendmail-mode command line for it: what it says and nothing from
    /// the environment of whoever plans it now.
    pub(crate) fn apply(&self, cli: &mut Cli) {
        cli.from = self.from.clone();
        cli.full_name = self.full_name.clone();
        cli.read_recipients = self.read_recipients;
        cli.dot_ends_message = !self.ignore_dots;
        cli.recipients = self.recipients.clone();
        cli.notify = self.notify;
        cli.ret = self.ret;
        cli.envid = self.envid.clone();
        cli.sendmail = true;
    }
}

/// The version [`QueuedSettings`] is written as.
pub(crate) const VERSION: u32 = 1;

/// Every field is what the command line (or its POSTIE_* variable) said;
/// `None`/`false` leaves the setting to the account and defaults at flush
/// time, so a changed config applies to messages already queued.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct QueuedSettings {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) config: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) account: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) server: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) tls: Option<TlsMode>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) ca_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) client_cert: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) client_key: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) tls_fingerprint: Option<String>,
    #[serde(skip_serializing_if = "is_false")]
    pub(crate) insecure: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) user: Option<String>,
    /// The command, never its output.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) password_cmd: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) auth: Option<AuthMethod>,
    #[serde(skip_serializing_if = "is_false")]
    pub(crate) allow_plaintext_auth: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) helo: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) timeout: Option<u64>,
    #[serde(skip_serializing_if = "is_false")]
    pub(crate) partial: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub(crate) mx: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) resolver: Option<String>,
    #[serde(skip_serializing_if = "is_false")]
    pub(crate) ipv4: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub(crate) ipv6: bool,
}

fn is_false(value: &bool) -> bool {
    !value
}

/// Flags of [`Cli`] that the record deliberately does not keep, and why. A
/// flag in neither this list nor [`KEPT`] fails a test, so that a new
/// connection setting cannot be silently dropped from the queue.
#[cfg(test)]
pub(crate) const EXCLUDED: &[(&str, &str)] = &[
    // What the message is: already in the .eml and the envelope.
    ("recipients", "in the envelope"),
    ("to", "in the envelope and headers"),
    ("cc", "in the envelope and headers"),
    ("bcc", "in the envelope"),
    (
        "from",
        "in the envelope; also picks the account again at flush",
    ),
    ("subject", "in the message"),
    ("reply_to", "in the message"),
    ("headers", "in the message"),
    ("body", "in the message"),
    ("body_file", "in the message"),
    ("html", "in the message"),
    ("no_text_alternative", "in the message"),
    ("attachments", "in the message"),
    ("inline", "in the message"),
    ("message", "in the message"),
    ("read_recipients", "in the envelope"),
    ("notify", "in the envelope, per recipient"),
    ("ret", "in the envelope"),
    ("envid", "in the envelope"),
    ("full_name", "in the message"),
    ("test_message", "in the message"),
    ("sendmail", "only decides how the command line is read"),
    // Runs that stop early or print are never queued.
    ("dry_run", "never queued"),
    ("quit_after", "never queued"),
    ("capabilities", "never queued"),
    ("json", "never queued"),
    // The flush's own choices.
    ("verbose", "postie queue flush -v"),
    ("timing", "a property of one run"),
    ("queue", "the message is already queued"),
    ("no_queue", "the message is already queued"),
    ("queue_dir", "the flush reads the queue it was given"),
];

/// Flags the record keeps (by clap id).
#[cfg(test)]
pub(crate) const KEPT: &[&str] = &[
    "config",
    "account",
    "server",
    "port",
    "tls",
    "ca_file",
    "client_cert",
    "client_key",
    "tls_fingerprint",
    "insecure",
    "user",
    "password_cmd",
    "auth",
    "allow_plaintext_auth",
    "helo",
    "timeout",
    "partial",
    "mx",
    "resolver",
    "ipv4",
    "ipv6",
];

impl QueuedSettings {
    /// What of `cli` decides how its message is sent, with relative paths
    /// made absolute against the current directory.
    pub(crate) fn from_cli(cli: &Cli) -> QueuedSettings {
        QueuedSettings {
            config: cli.config.as_deref().map(absolute),
            account: cli.account.clone(),
            server: cli.server.clone(),
            port: cli.port,
            tls: cli.tls,
            ca_file: cli.ca_file.as_deref().map(absolute),
            client_cert: cli.client_cert.as_deref().map(absolute),
            client_key: cli.client_key.as_deref().map(absolute),
            tls_fingerprint: cli.tls_fingerprint.clone(),
            insecure: cli.insecure,
            user: cli.user.clone(),
            password_cmd: cli.password_cmd.clone(),
            auth: cli.auth,
            allow_plaintext_auth: cli.allow_plaintext_auth,
            helo: cli.helo.clone(),
            timeout: cli.timeout,
            partial: cli.partial,
            mx: cli.mx,
            resolver: cli.resolver.clone(),
            ipv4: cli.ipv4,
            ipv6: cli.ipv6,
        }
    }

    /// Sets every kept field of `cli`, also to "not given": the flush's
    /// own environment (a POSTIE_SERVER of root's cron) must not change
    /// how a queued message is sent. The one exception is the config: an
    /// entry that names none is sent with the flush's (POSTIE_CONFIG, else
    /// the default paths), as postie-queue(1) says.
    pub(crate) fn apply(&self, cli: &mut Cli) {
        let s = self.clone();
        if s.config.is_some() {
            cli.config = s.config;
        }
        cli.account = s.account;
        cli.server = s.server;
        cli.port = s.port;
        cli.tls = s.tls;
        cli.ca_file = s.ca_file;
        cli.client_cert = s.client_cert;
        cli.client_key = s.client_key;
        cli.tls_fingerprint = s.tls_fingerprint;
        cli.insecure = s.insecure;
        cli.user = s.user;
        cli.password_cmd = s.password_cmd;
        cli.auth = s.auth;
        cli.allow_plaintext_auth = s.allow_plaintext_auth;
        cli.helo = s.helo;
        cli.timeout = s.timeout;
        cli.partial = s.partial;
        cli.mx = s.mx;
        cli.resolver = s.resolver;
        cli.ipv4 = s.ipv4;
        cli.ipv6 = s.ipv6;
    }

    /// Version 0: the `--flag=value` / `--flag` list that older postie
    /// wrote. Read by hand against the flag names of that time, so that
    /// renaming a flag in clap later cannot break it.
    pub(crate) fn from_v0_args(args: &[String]) -> Result<QueuedSettings, String> {
        let mut s = QueuedSettings::default();
        for arg in args {
            let (name, value) = match arg.split_once('=') {
                Some((name, value)) => (name, Some(value.to_string())),
                None => (arg.as_str(), None),
            };
            let need = || value.clone().ok_or_else(|| format!("{name} has no value"));
            match name {
                "--config" => s.config = Some(absolute(Path::new(&need()?))),
                "--account" => s.account = Some(need()?),
                "--server" => s.server = Some(need()?),
                "--port" => s.port = Some(number(name, &need()?)?),
                "--tls" => s.tls = Some(enum_value(name, &need()?)?),
                "--ca-file" => s.ca_file = Some(absolute(Path::new(&need()?))),
                "--client-cert" => s.client_cert = Some(absolute(Path::new(&need()?))),
                "--client-key" => s.client_key = Some(absolute(Path::new(&need()?))),
                "--tls-fingerprint" => s.tls_fingerprint = Some(need()?),
                "--user" => s.user = Some(need()?),
                "--password-cmd" => s.password_cmd = Some(need()?),
                "--auth" => s.auth = Some(enum_value(name, &need()?)?),
                "--helo" => s.helo = Some(need()?),
                "--timeout" => s.timeout = Some(number(name, &need()?)?),
                "--resolver" => s.resolver = Some(need()?),
                "--insecure" => s.insecure = true,
                "--allow-plaintext-auth" => s.allow_plaintext_auth = true,
                "--partial" => s.partial = true,
                "--mx" => s.mx = true,
                "--ipv4" => s.ipv4 = true,
                "--ipv6" => s.ipv6 = true,
                other => return Err(format!("unknown stored setting {other:?}")),
            }
        }
        Ok(s)
    }
}

fn number<T: std::str::FromStr>(name: &str, value: &str) -> Result<T, String> {
    value
        .parse()
        .map_err(|_| format!("{name}={value} is not a number"))
}

/// The config file's spelling of an enum value ("starttls", "xoauth2"),
/// which is also what version 0 stored.
fn enum_value<T: serde::de::DeserializeOwned>(name: &str, value: &str) -> Result<T, String> {
    serde_json::from_value(serde_json::Value::String(value.to_string()))
        .map_err(|_| format!("{name}={value} is not a known value"))
}

/// Relative to the current directory; left as it is when that is unknown
/// (the flush then reports the file it cannot find).
fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// The flags a queued message is sent with later. A login that --mx
/// ignored is left out: the flush would take it for one given on its
/// command line and refuse the entry for good.
pub(crate) fn stored_settings(cli: &Cli) -> QueuedSettings {
    let mut stored = QueuedSettings::from_cli(cli);
    if cli.mx {
        stored.user = None;
        stored.password_cmd = None;
        stored.auth = None;
    }
    stored
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// One command line per kept flag, setting it to a value that differs
    /// from the default.
    fn sample(id: &str) -> Vec<&'static str> {
        match id {
            "config" => vec!["--config", "/etc/p.toml"],
            "account" => vec!["--account", "work"],
            "server" => vec!["--server", "mx.example:25"],
            "port" => vec!["--port", "2525"],
            "tls" => vec!["--tls", "implicit"],
            "ca_file" => vec!["--ca-file", "/ca.pem"],
            "client_cert" => vec!["--client-cert", "/c.pem", "--client-key", "/k.pem"],
            "client_key" => vec!["--client-key", "/k.pem", "--client-cert", "/c.pem"],
            "tls_fingerprint" => vec!["--tls-fingerprint", "ab:cd"],
            "insecure" => vec!["--insecure"],
            "user" => vec!["--user", "me"],
            "password_cmd" => vec!["--password-cmd", "pass show smtp"],
            "auth" => vec!["--auth", "xoauth2"],
            "allow_plaintext_auth" => vec!["--allow-plaintext-auth"],
            "helo" => vec!["--helo", "host.example"],
            "timeout" => vec!["--timeout", "7"],
            "partial" => vec!["--partial"],
            "mx" => vec!["--mx"],
            "resolver" => vec!["--resolver", "127.0.0.1:53"],
            "ipv4" => vec!["-4"],
            "ipv6" => vec!["-6"],
            other => panic!("no sample command line for the kept flag {other}"),
        }
    }

    #[test]
    fn every_flag_is_kept_or_excluded_with_a_reason() {
        let excluded: Vec<&str> = EXCLUDED.iter().map(|(id, _)| *id).collect();
        for arg in Cli::command().get_arguments() {
            let id = arg.get_id().as_str();
            assert!(
                KEPT.contains(&id) ^ excluded.contains(&id),
                "the flag {id} must be in exactly one of stored::KEPT and EXCLUDED"
            );
        }
    }

    #[test]
    fn kept_flags_survive_the_round_trip() {
        let base = || crate::cli::args::parse_without_environment(&[]);
        for id in KEPT {
            let cli = crate::cli::args::parse_without_environment(&sample(id));
            assert_ne!(format!("{cli:?}"), format!("{:?}", base()), "{id}");
            let stored: QueuedSettings = serde_json::from_str(
                &serde_json::to_string(&QueuedSettings::from_cli(&cli)).unwrap(),
            )
            .unwrap();
            let mut replayed = base();
            stored.apply(&mut replayed);
            assert_eq!(format!("{replayed:?}"), format!("{cli:?}"), "{id}");
        }
    }

    #[test]
    fn relative_paths_become_absolute() {
        let cli = crate::cli::args::parse_without_environment(&[
            "--config",
            "p.toml",
            "--ca-file",
            "ca.pem",
        ]);
        let stored = QueuedSettings::from_cli(&cli);
        let here = std::env::current_dir().unwrap();
        assert_eq!(stored.config, Some(here.join("p.toml")));
        assert_eq!(stored.ca_file, Some(here.join("ca.pem")));
    }

    #[test]
    fn version_0_argument_lists_are_read() {
        let args: Vec<String> = [
            "--config=/etc/p.toml",
            "--server=mx.example",
            "--port=25",
            "--tls=starttls",
            "--auth=xoauth2",
            "--timeout=9",
            "--partial",
            "--ipv6",
        ]
        .map(String::from)
        .to_vec();
        let s = QueuedSettings::from_v0_args(&args).unwrap();
        assert_eq!(s.config, Some(PathBuf::from("/etc/p.toml")));
        assert_eq!(s.server.as_deref(), Some("mx.example"));
        assert_eq!((s.port, s.timeout), (Some(25), Some(9)));
        assert_eq!(
            (s.tls, s.auth),
            (Some(TlsMode::Starttls), Some(AuthMethod::Xoauth2))
        );
        assert!(s.partial && s.ipv6 && !s.ipv4);
        assert!(QueuedSettings::from_v0_args(&["--bogus".into()]).is_err());
        assert!(QueuedSettings::from_v0_args(&["--port=x".into()]).is_err());
    }
}
