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
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Envelope {
    pub(crate) sender: String,
    pub(crate) recipients: Vec<String>,
    /// The delivery status notifications asked for (RFC 3461); empty
    /// when none were.
    pub(crate) dsn: Dsn,
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

/// A request for delivery status notifications (RFC 3461): RET and ENVID
/// for the message, NOTIFY and ORCPT for each recipient. The recipients'
/// part is keyed by address, not by position, so that it stays with its
/// recipient whatever narrows or splits the list (a domain's share under
/// --mx, the owed recipients of a queue entry).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct Dsn {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) ret: Option<Ret>,
    /// Checked by [`parse_envid`]: graphic ASCII, at most 100 characters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) envid: Option<String>,
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub(crate) recipients: std::collections::BTreeMap<String, RecipientDsn>,
}

/// What one recipient's RCPT carries.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RecipientDsn {
    /// `None`: the server's default (failures and delays, RFC 3461 4.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) notify: Option<Notify>,
    /// The original recipient, as the address was given to postie.
    pub(crate) orcpt: String,
}

impl Dsn {
    /// The request a command line made, for `recipients`. Any DSN flag
    /// gives every recipient an ORCPT: a report the server sends back (for
    /// a failure, NOTIFY's default) then names the address postie was
    /// given, whatever a server rewrote it to. Postfix's client sends one
    /// to every DSN server; without a request postie sends none, so that
    /// such mail goes out as it always did.
    pub(crate) fn requested(
        notify: Option<Notify>,
        ret: Option<Ret>,
        envid: Option<String>,
        recipients: &[String],
    ) -> Dsn {
        if notify.is_none() && ret.is_none() && envid.is_none() {
            return Dsn::default();
        }
        Dsn {
            ret,
            envid,
            recipients: recipients
                .iter()
                .map(|r| {
                    let dsn = RecipientDsn {
                        notify,
                        orcpt: r.clone(),
                    };
                    (r.clone(), dsn)
                })
                .collect(),
        }
    }

    /// Nothing was asked for.
    pub(crate) fn is_empty(&self) -> bool {
        self.ret.is_none() && self.envid.is_none() && self.recipients.is_empty()
    }

    /// The part of the request that concerns `recipients` alone: what a
    /// queue entry owed to some of them keeps.
    pub(crate) fn only_for(&self, recipients: &[String]) -> Dsn {
        if self.is_empty() {
            return Dsn::default();
        }
        Dsn {
            ret: self.ret,
            envid: self.envid.clone(),
            recipients: self
                .recipients
                .iter()
                .filter(|(address, _)| recipients.contains(address))
                .map(|(address, dsn)| (address.clone(), dsn.clone()))
                .collect(),
        }
    }

    /// MAIL's parameters, ready for the wire: `RET=HDRS`, `ENVID=xtext`.
    pub(crate) fn mail_parameters(&self) -> Vec<String> {
        let ret = self.ret.map(|ret| format!("RET={}", ret.keyword()));
        let envid = self
            .envid
            .as_deref()
            .map(|id| format!("ENVID={}", xtext(id)));
        ret.into_iter().chain(envid).collect()
    }

    /// One RCPT's parameters, ready for the wire: `NOTIFY=...` and
    /// `ORCPT=...`. `smtputf8`: the transaction uses SMTPUTF8, so a
    /// non-ASCII ORCPT may be sent as UTF-8 (RFC 6533 3).
    pub(crate) fn rcpt_parameters(&self, recipient: &str, smtputf8: bool) -> Vec<String> {
        let Some(dsn) = self.recipients.get(recipient) else {
            return Vec::new();
        };
        let notify = dsn.notify.map(|n| format!("NOTIFY={}", n.keyword()));
        // RFC 3461 4: at most 500 characters. An address that long once
        // encoded (254 octets of '+' would be) goes without: an ORCPT is a
        // courtesy, a RCPT a server refuses is a lost recipient.
        let orcpt = Some(orcpt(&dsn.orcpt, smtputf8))
            .filter(|value| value.len() <= ORCPT_MAX)
            .map(|value| format!("ORCPT={value}"));
        notify.into_iter().chain(orcpt).collect()
    }
}

/// RET (RFC 3461 4.3): what a failure report carries of the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Ret {
    /// The whole message.
    Full,
    /// Only its header.
    Hdrs,
}

impl Ret {
    fn keyword(self) -> &'static str {
        match self {
            Ret::Full => "FULL",
            Ret::Hdrs => "HDRS",
        }
    }

    /// As --ret or sendmail's -R takes it, in any case.
    pub(crate) fn parse(text: &str) -> std::result::Result<Ret, String> {
        Ret::from_str(text, true).map_err(|_| {
            format!(
                "invalid DSN return {text:?}; write full (the whole message) or hdrs (its header)"
            )
        })
    }
}

/// NOTIFY (RFC 3461 4.1): NEVER, or any of SUCCESS, FAILURE and DELAY.
/// All three off is NEVER.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub(crate) struct Notify {
    pub(crate) success: bool,
    pub(crate) failure: bool,
    pub(crate) delay: bool,
}

impl Notify {
    /// `never`, or a comma list of success, failure and delay, in any case.
    pub(crate) fn parse(text: &str) -> std::result::Result<Notify, String> {
        let bad = |why: &str| {
            format!("invalid DSN notify {text:?}: {why}; write never, or a comma list of success, failure and delay")
        };
        if text.eq_ignore_ascii_case("never") {
            return Ok(Notify::default());
        }
        let mut notify = Notify::default();
        for word in text.split(',') {
            let flag = match word.trim().to_ascii_lowercase().as_str() {
                "success" => &mut notify.success,
                "failure" => &mut notify.failure,
                "delay" => &mut notify.delay,
                "never" => return Err(bad("never goes alone")),
                "" => return Err(bad("an empty item")),
                _ => return Err(bad(&format!("{:?} is none of them", word.trim()))),
            };
            *flag = true;
        }
        Ok(notify)
    }

    /// As on the wire: `NEVER` or e.g. `SUCCESS,FAILURE`.
    pub(crate) fn keyword(self) -> String {
        let words: Vec<&str> = [
            (self.success, "SUCCESS"),
            (self.failure, "FAILURE"),
            (self.delay, "DELAY"),
        ]
        .into_iter()
        .filter_map(|(on, word)| on.then_some(word))
        .collect();
        if words.is_empty() {
            "NEVER".to_string()
        } else {
            words.join(",")
        }
    }
}

impl TryFrom<String> for Notify {
    type Error = String;
    fn try_from(text: String) -> std::result::Result<Notify, String> {
        Notify::parse(&text)
    }
}

impl From<Notify> for String {
    fn from(notify: Notify) -> String {
        notify.keyword()
    }
}

/// The longest ORCPT value, encoded (RFC 3461 4).
const ORCPT_MAX: usize = 500;

/// The longest ENVID, encoded (RFC 3461 4.4).
const ENVID_MAX: usize = 100;

/// --envid or sendmail's -V: graphic ASCII only, since it goes into MAIL
/// and the report's Original-Envelope-Id header, and at most 100
/// characters once xtext-encoded (RFC 3461 4.4). Space is refused as
/// sendmail refuses it.
pub(crate) fn parse_envid(text: &str) -> std::result::Result<String, String> {
    if text.is_empty() {
        return Err("the DSN envelope ID is empty".to_string());
    }
    if let Some(c) = text.chars().find(|c| !c.is_ascii_graphic()) {
        return Err(format!(
            "the DSN envelope ID {text:?} holds {c:?}; use printable ASCII without spaces"
        ));
    }
    let length = xtext(text).len();
    if length > ENVID_MAX {
        return Err(format!(
            "the DSN envelope ID is {length} characters once encoded; RFC 3461 allows {ENVID_MAX}"
        ));
    }
    Ok(text.to_string())
}

/// xtext (RFC 3461 4): `+`, `=` and any byte outside 33..126 as `+HH`.
/// lettre's own encoder leaves DEL and non-ASCII bytes as they are,
/// which is why postie writes the parameters itself.
pub(crate) fn xtext(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if (33..=126).contains(&byte) && byte != b'+' && byte != b'=' {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("+{byte:02X}"));
        }
    }
    out
}

/// ORCPT's value for `address`: `rfc822;` and xtext for an ASCII address;
/// for one that is not, `utf-8;` (RFC 6533 3) with the non-ASCII
/// characters as `\x{HEX}` (utf-8-addr-xtext), or left as UTF-8 when the
/// transaction uses SMTPUTF8 (utf-8-addr-unitext). In both forms `+`,
/// `=`, `\` and anything outside graphic ASCII are `\x{HEX}`.
pub(crate) fn orcpt(address: &str, smtputf8: bool) -> String {
    if address.is_ascii() {
        return format!("rfc822;{}", xtext(address));
    }
    let mut out = String::from("utf-8;");
    for c in address.chars() {
        let plain = c.is_ascii_graphic() && !matches!(c, '+' | '=' | '\\');
        if plain || (smtputf8 && !c.is_ascii() && !c.is_control()) {
            out.push(c);
        } else {
            out.push_str(&format!("\\x{{{:02X}}}", u32::from(c)));
        }
    }
    out
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
            .chain(serde_reads_clap_names::<Ret>())
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
    fn notify_values() {
        let n = Notify::parse("Success,DELAY").unwrap();
        assert_eq!(n.keyword(), "SUCCESS,DELAY");
        assert_eq!(Notify::parse("NEVER").unwrap().keyword(), "NEVER");
        for bad in [
            "never,success",
            "",
            "success,",
            "sometimes",
            "success never",
        ] {
            assert!(Notify::parse(bad).is_err(), "{bad}");
        }
        // Stored as written on the wire, read back the same.
        let json = serde_json::to_string(&n).unwrap();
        assert_eq!(json, "\"SUCCESS,DELAY\"");
        assert_eq!(serde_json::from_str::<Notify>(&json).unwrap(), n);
        assert!(serde_json::from_str::<Notify>("\"NEVER,DELAY\"").is_err());
    }

    #[test]
    fn envid_is_graphic_ascii_of_at_most_100() {
        assert_eq!(parse_envid("ab-12.x").unwrap(), "ab-12.x");
        for bad in ["", "a b", "a\rb", "a\nb", "é", "a\u{7f}"] {
            assert!(parse_envid(bad).is_err(), "{bad:?}");
        }
        assert!(parse_envid(&"x".repeat(100)).is_ok());
        assert!(parse_envid(&"x".repeat(101)).is_err());
        // 34 '+' are 102 characters encoded.
        assert!(parse_envid(&"+".repeat(34)).is_err());
    }

    #[test]
    fn xtext_and_orcpt() {
        assert_eq!(xtext("a+b=c@x"), "a+2Bb+3Dc@x");
        assert_eq!(xtext("é\u{7f} "), "+C3+A9+7F+20");
        assert_eq!(orcpt("a+b@x.example", false), "rfc822;a+2Bb@x.example");
        assert_eq!(
            orcpt("jö+x@x.example", false),
            "utf-8;j\\x{F6}\\x{2B}x@x.example"
        );
        assert_eq!(orcpt("jö+x@x.example", true), "utf-8;jö\\x{2B}x@x.example");
        assert_eq!(orcpt("日\\@x", false), "utf-8;\\x{65E5}\\x{5C}@x");
        // Over 500 characters encoded: no ORCPT, the NOTIFY still goes.
        let long = format!("{}@x.example", "+".repeat(170));
        let dsn = Dsn::requested(
            Some(Notify::default()),
            None,
            None,
            std::slice::from_ref(&long),
        );
        assert_eq!(dsn.rcpt_parameters(&long, false), ["NOTIFY=NEVER"]);
    }

    #[test]
    fn dsn_follows_its_recipients() {
        let recipients = ["a@x".to_string(), "b@y".to_string()];
        assert!(Dsn::requested(None, None, None, &recipients).is_empty());
        let dsn = Dsn::requested(
            Some(Notify::parse("success").unwrap()),
            Some(Ret::Hdrs),
            Some("id1".into()),
            &recipients,
        );
        assert_eq!(dsn.mail_parameters(), ["RET=HDRS", "ENVID=id1"]);
        assert_eq!(
            dsn.rcpt_parameters("b@y", false),
            ["NOTIFY=SUCCESS", "ORCPT=rfc822;b@y"]
        );
        let owed = dsn.only_for(&recipients[1..]);
        assert!(owed.rcpt_parameters("a@x", false).is_empty());
        assert_eq!(owed.rcpt_parameters("b@y", false).len(), 2);
        // --ret alone: no NOTIFY, but an ORCPT.
        let ret_only = Dsn::requested(None, Some(Ret::Full), None, &recipients);
        assert_eq!(ret_only.rcpt_parameters("a@x", false), ["ORCPT=rfc822;a@x"]);
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
