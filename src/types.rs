//! Values every layer shares: the envelope, the server's address, the
//! connection's modes, and the few units config and flags are written in.
//!
//! The enums that flags, the config file and the queue's records all name
//! (TLS mode, AUTH method, queue policy) are spelled by clap's `ValueEnum`;
//! serde's `rename_all` must give the same names, which a test checks, and
//! the man page lists them from clap.
//!
//! Belongs here: a type that more than one layer names, with no behaviour
//! beyond its own value. Not here: anything that does I/O.

use std::path::PathBuf;
use std::time::Duration;

use clap::ValueEnum;
use serde::Deserialize;

use crate::exit::{Error, Result};

/// How the connection to the server is encrypted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum TlsMode {
    /// Upgrade with STARTTLS; fail if the server does not offer it.
    Starttls,
    /// TLS from the first byte (SMTPS).
    Implicit,
    /// STARTTLS when the server offers it, plain text otherwise.
    Opportunistic,
    /// Plain text only.
    None,
}

/// The SASL mechanism for SMTP AUTH.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum AuthMethod {
    /// Over TLS the first of SCRAM-SHA-256, SCRAM-SHA-1, PLAIN and LOGIN
    /// that the server offers (OAUTHBEARER, else XOAUTH2, for an OAuth2
    /// account); without TLS only SCRAM or CRAM-MD5.
    Auto,
    /// AUTH PLAIN.
    Plain,
    /// AUTH LOGIN.
    Login,
    /// AUTH XOAUTH2 (the secret is an OAuth2 access token).
    Xoauth2,
    /// AUTH OAUTHBEARER, RFC 7628 (the secret is an OAuth2 access token).
    Oauthbearer,
    /// AUTH SCRAM-SHA-256 (RFC 7677): the password never leaves postie,
    /// and the server proves that it knows it.
    #[value(name = "scram-sha-256")]
    #[serde(rename = "scram-sha-256")]
    ScramSha256,
    /// AUTH SCRAM-SHA-1 (RFC 5802).
    #[value(name = "scram-sha-1")]
    #[serde(rename = "scram-sha-1")]
    ScramSha1,
    /// AUTH CRAM-MD5 (RFC 2195): for old servers without TLS.
    #[value(name = "cram-md5")]
    #[serde(rename = "cram-md5")]
    CramMd5,
}

/// The SMTP stages --quit-after can stop after, in session order. [`name`]
/// spells them as clap does (a test checks it); swaks' names for the same
/// stages are accepted as aliases.
///
/// [`name`]: QuitAfter::name
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub(crate) enum QuitAfter {
    /// The TCP connection (and implicit TLS) is up.
    Connect,
    /// The server's greeting was read (no EHLO sent).
    Banner,
    /// The first EHLO was answered (before STARTTLS).
    #[value(alias = "first-helo")]
    FirstEhlo,
    /// The last EHLO was answered: after STARTTLS when TLS is used.
    #[value(alias = "helo")]
    Ehlo,
    /// STARTTLS done and EHLO repeated (or skipped when TLS is not used).
    #[value(aliases = ["tls", "first-tls"])]
    Starttls,
    /// AUTH done (or skipped without a user).
    Auth,
    /// MAIL FROM accepted.
    Mail,
    /// Every RCPT TO answered: tests recipients without sending.
    Rcpt,
    /// The message was sent: a whole transaction.
    Data,
}

impl QuitAfter {
    /// As written after --quit-after: clap's spelling of the variant, so
    /// that the messages and the flag cannot disagree.
    pub(crate) fn name(self) -> String {
        self.to_possible_value()
            .map(|value| value.get_name().to_string())
            .unwrap_or_default()
    }
}

/// The server to talk to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Endpoint {
    pub(crate) host: String,
    pub(crate) port: u16,
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// TLS trust and identity settings, as files.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct TlsFiles {
    pub(crate) ca_file: Option<PathBuf>,
    pub(crate) client_cert: Option<PathBuf>,
    pub(crate) client_key: Option<PathBuf>,
}

/// The SMTP envelope: bare addresses, as they go into MAIL and RCPT.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Envelope {
    pub(crate) sender: String,
    pub(crate) recipients: Vec<String>,
}

impl Envelope {
    /// True when a local part is not ASCII: a non-ASCII domain goes on
    /// the wire as A-labels (IDNA), which needs no extension.
    pub(crate) fn needs_smtputf8(&self) -> bool {
        std::iter::once(&self.sender)
            .chain(&self.recipients)
            .any(|address| {
                let local = address
                    .rsplit_once('@')
                    .map_or(address.as_str(), |(l, _)| l);
                !local.is_ascii()
            })
    }
}

/// 2411724 -> "2.3 MiB".
pub(crate) fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// When queueing happens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum QueuePolicy {
    /// Never: a failure is an exit code.
    Never,
    /// After a temporary failure (exit 75 or a connection lost mid-session).
    OnTempfail,
    /// Always: queue without trying; `postie queue flush` sends.
    Always,
}

/// "5d", "12h", "30m", "90s" or plain seconds.
pub(crate) fn parse_duration(text: &str) -> Result<Duration> {
    let text = text.trim();
    let (number, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((at, _)) => (&text[..at], &text[at..]),
        None => (text, "s"),
    };
    let multiplier = match unit.trim() {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => 0,
    };
    match number.parse::<u64>() {
        Ok(n) if multiplier > 0 => Ok(Duration::from_secs(n * multiplier)),
        _ => Err(Error::config(format!(
            "invalid duration {text:?}; write e.g. 5d, 12h, 30m or 90s"
        ))),
    }
}

/// `max_message_size` when the config has none: 100 MiB.
pub(crate) const DEFAULT_MAX_MESSAGE_SIZE: u64 = 100 * 1024 * 1024;

/// `max_message_size`: a number of octets, or one with K, M or G
/// (binary multiples: `100M` is 100 MiB).
pub(crate) fn parse_size(text: &str) -> Result<u64> {
    let text = text.trim();
    let (number, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((at, _)) => (&text[..at], text[at..].trim()),
        None => (text, ""),
    };
    let shift = match unit.to_ascii_uppercase().as_str() {
        "" => Some(0),
        "K" => Some(10),
        "M" => Some(20),
        "G" => Some(30),
        _ => None,
    };
    match (number.parse::<u64>(), shift) {
        (Ok(n), Some(shift)) if n > 0 => n.checked_shl(shift).filter(|v| v >> shift == n),
        _ => None,
    }
    .ok_or_else(|| {
        Error::config(format!(
            "invalid size {text:?}; write e.g. 100M, 512K or 1G (at least 1 octet)"
        ))
    })
}

/// How `--capabilities` prints its report: for people, or as JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReportFormat {
    Table,
    Json,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every value of `T` as clap spells it, and whether serde reads that
    /// spelling as the same value.
    fn serde_reads_clap_names<T>() -> Vec<(String, bool)>
    where
        T: ValueEnum + serde::de::DeserializeOwned + PartialEq,
    {
        T::value_variants()
            .iter()
            .map(|value| {
                let name = value.to_possible_value().unwrap().get_name().to_string();
                let read: Option<T> =
                    serde_json::from_value(serde_json::Value::String(name.clone())).ok();
                let same = read.as_ref() == Some(value);
                (name, same)
            })
            .collect()
    }

    /// One spelling per value: the flags (clap), the config file and the
    /// queue's records (serde) and the man page (generated from clap) must
    /// agree, or a value written one way is refused the other.
    #[test]
    fn one_spelling_per_value() {
        for (name, same) in serde_reads_clap_names::<TlsMode>()
            .into_iter()
            .chain(serde_reads_clap_names::<AuthMethod>())
            .chain(serde_reads_clap_names::<QueuePolicy>())
        {
            assert!(
                same,
                "serde does not read clap's {name:?} as the same value"
            );
        }
        for value in QuitAfter::value_variants() {
            let clap = value.to_possible_value().unwrap();
            assert_eq!(value.name(), clap.get_name());
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5d").unwrap(), Duration::from_secs(432_000));
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert!(parse_duration("5 weeks").is_err());
    }

    #[test]
    fn endpoint_display_brackets_ipv6() {
        let v6 = Endpoint {
            host: "::1".into(),
            port: 25,
        };
        assert_eq!(v6.to_string(), "[::1]:25");
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("100M").unwrap(), 100 << 20);
        assert_eq!(parse_size("512k").unwrap(), 512 << 10);
        assert_eq!(parse_size("1G").unwrap(), 1 << 30);
        assert_eq!(parse_size("2048").unwrap(), 2048);
        for bad in ["", "0", "M", "10 MB", "-1M", "99999999999999999999G"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }
}
