//! Mailbox parsing for addresses given on the command line and in config.
//!
//! Users write what they would write in a mail client: `ops@example.com`,
//! `Ops Team <ops@example.com>`, `"Ops, Team" <ops@example.com>`, and lists
//! of those separated by commas. This module turns that into a display name
//! and a bare address, and refuses anything that would be ambiguous on the
//! wire (whitespace, CR/LF, missing domain) before a connection is opened.

use crate::exit::{Error, Result};

/// One mailbox: an optional display name and the bare address that goes
/// into the SMTP envelope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Mailbox {
    pub(crate) name: Option<String>,
    pub(crate) email: String,
}

impl Mailbox {
    /// Parses exactly one mailbox.
    pub(crate) fn parse(text: &str) -> Result<Mailbox> {
        let mut list = parse_list(text)?;
        match list.len() {
            1 => Ok(list.remove(0)),
            0 => Err(Error::data("empty address")),
            _ => Err(Error::data(format!(
                "expected one address, got {}: {text}",
                list.len()
            ))),
        }
    }

    /// True for a bare local name (`root`), which has to be qualified
    /// before it can go into an SMTP envelope.
    pub(crate) fn is_local(&self) -> bool {
        !self.email.contains('@')
    }
}

impl std::fmt::Display for Mailbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.name {
            Some(name) => write!(f, "\"{}\" <{}>", name.replace('"', "\\\""), self.email),
            None => write!(f, "<{}>", self.email),
        }
    }
}

/// Parses a comma-separated list of mailboxes. Empty items (a trailing
/// comma, `a@b,,c@d`) are skipped, as mail clients do.
pub(crate) fn parse_list(text: &str) -> Result<Vec<Mailbox>> {
    if text.contains(['\r', '\n']) {
        return Err(Error::data(format!(
            "address {:?} contains a line break",
            text
        )));
    }
    split_list(text)?
        .into_iter()
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(parse_one)
        .collect()
}

/// Splits on commas that are outside quotes and angle brackets.
fn split_list(text: &str) -> Result<Vec<&str>> {
    let mut items = Vec::new();
    let mut start = 0;
    let mut in_quotes = false;
    let mut in_angle = false;
    let mut escaped = false;
    for (at, ch) in text.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match ch {
            '\\' if in_quotes => escaped = true,
            '"' if !in_angle => in_quotes = !in_quotes,
            '<' if !in_quotes => in_angle = true,
            '>' if !in_quotes => in_angle = false,
            ',' if !in_quotes && !in_angle => {
                items.push(&text[start..at]);
                start = at + 1;
            }
            _ => {}
        }
    }
    if in_quotes {
        return Err(Error::data(format!("unbalanced quote in address {text:?}")));
    }
    if in_angle {
        return Err(Error::data(format!("missing '>' in address {text:?}")));
    }
    items.push(&text[start..]);
    Ok(items)
}

fn parse_one(item: &str) -> Result<Mailbox> {
    let Some(open) = item.rfind('<') else {
        return Ok(Mailbox {
            name: None,
            email: checked_email(item, item)?,
        });
    };
    let close = item[open..]
        .find('>')
        .map(|at| open + at)
        .ok_or_else(|| Error::data(format!("missing '>' in address {item:?}")))?;
    if !item[close + 1..].trim().is_empty() {
        return Err(Error::data(format!(
            "unexpected text after '>' in address {item:?}"
        )));
    }
    let email = checked_email(item[open + 1..close].trim(), item)?;
    let name = display_name(item[..open].trim());
    Ok(Mailbox { name, email })
}

/// Removes the quotes around a display name and its backslash escapes.
fn display_name(raw: &str) -> Option<String> {
    let unquoted = match raw.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
        Some(inner) => {
            let mut out = String::with_capacity(inner.len());
            let mut chars = inner.chars();
            while let Some(ch) = chars.next() {
                if ch == '\\' {
                    if let Some(next) = chars.next() {
                        out.push(next);
                    }
                } else {
                    out.push(ch);
                }
            }
            out
        }
        None => raw.to_string(),
    };
    let trimmed = unquoted.trim();
    (!trimmed.is_empty()).then(|| trimmed.to_string())
}

/// Checks the bare address: `local@domain`, no whitespace or control
/// characters, no brackets. Returns it unchanged.
fn checked_email(email: &str, item: &str) -> Result<String> {
    let bad = |why: &str| Err(Error::data(format!("malformed address {item:?}: {why}")));
    if email.is_empty() {
        return bad("the address is empty");
    }
    if email.len() > 254 {
        return bad("longer than 254 octets");
    }
    if let Some(ch) = email
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ',' | '"'))
    {
        return bad(&format!("it contains {ch:?}"));
    }
    let Some((local, domain)) = email.rsplit_once('@') else {
        // A local name such as `root`: aliases or local_domain qualify it
        // later (see `config::aliases`), as sendmail's callers expect.
        return Ok(email.to_string());
    };
    if local.is_empty() {
        return bad("nothing before '@'");
    }
    if domain.is_empty()
        || domain.starts_with('.')
        || domain.ends_with('.')
        || domain.contains("..")
    {
        return bad("the domain is not valid");
    }
    Ok(email.to_string())
}

/// The address with its domain as A-labels (RFC 5890): `user@bücher.example`
/// becomes `user@xn--bcher-kva.example`, which a server without SMTPUTF8
/// takes. ASCII domains and local names are returned as they are; only a
/// non-ASCII local part still needs SMTPUTF8. A domain IDNA refuses is a
/// data error naming the address.
pub(crate) fn ascii_domain(address: &str) -> Result<String> {
    let Some((local, domain)) = address.rsplit_once('@') else {
        return Ok(address.to_string());
    };
    if domain.is_ascii() {
        return Ok(address.to_string());
    }
    match idna::domain_to_ascii_strict(domain) {
        Ok(a_labels) => Ok(format!("{local}@{a_labels}")),
        Err(_) => Err(Error::data(format!(
            "malformed address {address:?}: the domain is not a valid internationalized domain name (IDNA)"
        ))),
    }
}

/// The same mailbox with its domain as A-labels (see [`ascii_domain`]);
/// the display name is kept.
pub(crate) fn ascii_mailbox(mailbox: &Mailbox) -> Result<Mailbox> {
    Ok(Mailbox {
        name: mailbox.name.clone(),
        email: ascii_domain(&mailbox.email)?,
    })
}

/// RFC 5321 4.5.3.1.1: a local part of at most 64 octets.
const MAX_LOCAL_PART: usize = 64;
/// RFC 5321 4.5.3.1.3: a path of at most 256 octets, two of them the
/// angle brackets.
const MAX_ADDRESS: usize = 254;

/// An envelope address as it goes into MAIL FROM and RCPT TO, its domain
/// as A-labels (IDNA, [`ascii_domain`]): lettre's parse (the one the wire uses) plus the RFC 5321 size limits a server
/// enforces, so that a dry run refuses what a send would.
pub(crate) fn envelope_address(address: &str) -> Result<lettre::Address> {
    let bad = |why: String| Error::data(format!("malformed envelope address {address:?}: {why}"));
    let ascii = ascii_domain(address)?;
    let address = ascii.as_str();
    if address.len() > MAX_ADDRESS {
        return Err(bad(format!(
            "{} octets, more than the {MAX_ADDRESS} SMTP allows (RFC 5321 4.5.3.1.3)",
            address.len()
        )));
    }
    let local = address.rsplit_once('@').map_or(address, |(local, _)| local);
    if local.len() > MAX_LOCAL_PART {
        return Err(bad(format!(
            "a local part of {} octets, more than the {MAX_LOCAL_PART} SMTP allows (RFC 5321 4.5.3.1.1)",
            local.len()
        )));
    }
    address
        .parse::<lettre::Address>()
        .map_err(|err| bad(err.to_string()))
}

/// A name EHLO may carry (RFC 5321 4.1.1.1): a domain (4.1.2, ASCII
/// letters, digits and hyphens in labels of at most 63, RFC 1035 2.3.4)
/// or an address literal (4.1.3) such as `[192.0.2.1]` or `[IPv6:::1]`.
pub(crate) fn is_ehlo_name(name: &str) -> bool {
    if let Some(literal) = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
        return match literal.get(..5) {
            Some(tag) if tag.eq_ignore_ascii_case("IPv6:") => {
                literal[5..].parse::<std::net::Ipv6Addr>().is_ok()
            }
            _ => literal.parse::<std::net::Ipv4Addr>().is_ok(),
        };
    }
    let label = |l: &str| {
        (1..=63).contains(&l.len())
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    name.len() <= 253 && name.split('.').all(label)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mb(name: Option<&str>, email: &str) -> Mailbox {
        Mailbox {
            name: name.map(str::to_string),
            email: email.to_string(),
        }
    }

    #[test]
    fn bare_and_named_addresses() {
        assert_eq!(
            Mailbox::parse("a@example.com").unwrap(),
            mb(None, "a@example.com")
        );
        assert_eq!(
            Mailbox::parse("Ops Team <ops@example.com>").unwrap(),
            mb(Some("Ops Team"), "ops@example.com")
        );
        assert_eq!(
            Mailbox::parse("<ops@example.com>").unwrap(),
            mb(None, "ops@example.com")
        );
        assert_eq!(
            Mailbox::parse(r#""Doe, \"JD\" John" <jd@example.com>"#).unwrap(),
            mb(Some(r#"Doe, "JD" John"#), "jd@example.com")
        );
    }

    #[test]
    fn lists_split_outside_quotes_only() {
        let list = parse_list(r#"a@x.org, "Smith, Ann" <ann@x.org>,,b@y.org,"#).unwrap();
        assert_eq!(
            list,
            vec![
                mb(None, "a@x.org"),
                mb(Some("Smith, Ann"), "ann@x.org"),
                mb(None, "b@y.org")
            ]
        );
    }

    #[test]
    fn local_names_are_kept_for_later_qualification() {
        let root = Mailbox::parse("Charlie Root <root>").unwrap();
        assert_eq!(root, mb(Some("Charlie Root"), "root"));
        assert!(root.is_local());
        assert!(!Mailbox::parse("a@b.example").unwrap().is_local());
    }

    #[test]
    fn utf8_names_and_addresses_are_kept() {
        let m = Mailbox::parse("Jürgen Müller <jürgen@bücher.example>").unwrap();
        assert_eq!(m.name.as_deref(), Some("Jürgen Müller"));
        assert!(!m.email.is_ascii());
    }

    #[test]
    fn malformed_addresses_are_refused_with_reason() {
        for (input, why) in [
            ("@example.com", "nothing before"),
            ("a@", "domain"),
            ("a b@example.com", "contains ' '"),
            ("Name <a@example.com", "missing '>'"),
            ("\"Name <a@example.com>", "unbalanced quote"),
            ("a@example.com\r\nBcc: x@y", "line break"),
            ("<a@b.c> trailing", "after '>'"),
        ] {
            let err = parse_list(input).unwrap_err();
            assert_eq!(err.exit, crate::exit::Exit::DataErr, "{input}");
            assert!(err.message.contains(why), "{input}: {}", err.message);
        }
    }

    #[test]
    fn envelope_addresses_follow_the_wire_rules() {
        assert!(envelope_address("a@example.com").is_ok());
        let long_local = format!("{}@example.com", "a".repeat(65));
        assert!(envelope_address(&long_local)
            .unwrap_err()
            .message
            .contains("64"));
        let long = format!("a@{}.example", "b".repeat(250));
        assert!(envelope_address(&long).unwrap_err().message.contains("254"));
        for bad in ["a@b@c", "a.@example.com", "a@-x.example", "root"] {
            assert_eq!(
                envelope_address(bad).unwrap_err().exit,
                crate::exit::Exit::DataErr,
                "{bad}"
            );
        }
    }

    #[test]
    fn domains_become_a_labels() {
        assert_eq!(
            ascii_domain("user@bücher.example").unwrap(),
            "user@xn--bcher-kva.example"
        );
        assert_eq!(
            ascii_domain("pelé@bücher.example").unwrap(),
            "pelé@xn--bcher-kva.example"
        );
        for same in ["a@Example.COM", "root", "pelé@example.com"] {
            assert_eq!(ascii_domain(same).unwrap(), same);
        }
        let err = ascii_domain("a@bü_cher.example").unwrap_err();
        assert_eq!(err.exit, crate::exit::Exit::DataErr);
        assert!(err.message.contains("a@bü_cher.example"), "{}", err.message);
        assert!(!err.message.contains('\n'));
    }

    #[test]
    fn ehlo_names() {
        for good in [
            "mail.example.com",
            "localhost",
            "host-1",
            "[192.0.2.1]",
            "[IPv6:2001:db8::1]",
        ] {
            assert!(is_ehlo_name(good), "{good}");
        }
        for bad in [
            "",
            "a b",
            "-x.example",
            "x..example",
            "[300.1.1.1]",
            "[::1]",
            "höst",
            "a_b",
            "x.example.",
            "a\r\nMAIL",
        ] {
            assert!(!is_ehlo_name(bad), "{bad}");
        }
    }

    #[test]
    fn display_quotes_names() {
        assert_eq!(
            mb(Some("A \"B\""), "a@b.c").to_string(),
            r#""A \"B\"" <a@b.c>"#
        );
    }
}
