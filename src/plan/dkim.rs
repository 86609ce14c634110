//! Whether and how each planned message is DKIM-signed: the account's
//! `dkim_*` keys, the From domain check, and the 7-bit conversion first.
//!
//! Signing happens here, once, when a message is planned: for a send, a
//! dry run, a maildrop pickup and a `queue retry` of a message kept
//! before it could be planned. The queue stores the signed message and
//! `queue flush` sends it as stored, never planning (or signing) it
//! again, so a message carries exactly one postie signature however often
//! it is retried.
//!
//! Not here: canonicalisation and the signature itself (`mail::dkim`).

use mail_parser::MessageParser;

use crate::config::file::Account;
use crate::exit::Result;
use crate::mail::content::{Content, Segment};
use crate::mail::dkim::{self, Key, Signing, DEFAULT_HEADERS};
use crate::mail::transportable::seven_bit;
use crate::smtp::outgoing::Outgoing;

/// Signs every message of the plan that the account's DKIM settings
/// cover; with `verbose`, `notes` say what was converted, and why a
/// message went unsigned. A key that cannot be used is an error (78),
/// before anything is sent.
pub(crate) fn sign_messages(
    account: &Account,
    messages: &mut [Outgoing],
    verbose: bool,
    notes: &mut Vec<String>,
) -> Result<()> {
    let (Some(path), Some(selector)) = (&account.dkim_key, &account.dkim_selector) else {
        return Ok(());
    };
    // Loaded at the first message to sign: --capabilities and
    // --quit-after have none, and must not fail on the key.
    let mut key: Option<Key> = None;
    let headers: Vec<String> = match &account.dkim_headers {
        Some(list) => list.clone(),
        None => DEFAULT_HEADERS.iter().map(|s| s.to_string()).collect(),
    };
    let configured_domain = account
        .dkim_domain
        .as_deref()
        .map(|d| ascii_lower(d.trim_end_matches('.')));
    for message in messages.iter_mut() {
        if message.content.is_empty() {
            continue;
        }
        let unsigned = |why: String, notes: &mut Vec<String>| {
            if verbose {
                notes.push(format!("{}: not DKIM-signed: {why}", message.label));
            }
        };
        let from = match from_domains(&message.content) {
            Ok(from) => from,
            Err(why) => {
                unsigned(why, notes);
                continue;
            }
        };
        let domain = match (&configured_domain, from.first()) {
            (Some(configured), _) => configured.clone(),
            // The default d= is the From domain, if it is a name a key
            // can be published under (not [192.0.2.1], not localhost).
            (None, Some(from)) => match dkim::check_domain(from) {
                Ok(domain) => domain,
                Err(why) => {
                    unsigned(format!("the From domain {from} {why}"), notes);
                    continue;
                }
            },
            (None, None) => {
                unsigned("it has no From address to sign for".to_string(), notes);
                continue;
            }
        };
        let outside = if from.is_empty() {
            Some("it has no From address".to_string())
        } else {
            from.iter()
                .find(|d| !is_within(d, &domain))
                .map(|d| format!("the From domain {d} is not {domain} or under it"))
        };
        if let Some(why) = outside {
            if verbose {
                notes.push(format!(
                    "{}: not DKIM-signed: {why} (a signature with d={domain} would not align with From, RFC 7489)",
                    message.label
                ));
            }
            continue;
        }
        let key = match &mut key {
            Some(key) => key,
            None => key.insert(Key::load(path)?),
        };
        make_seven_bit(message, verbose, notes)?;
        dkim::sign(
            &mut message.content,
            &Signing {
                key,
                domain: &domain,
                selector,
                headers: &headers,
            },
        )?;
        if verbose {
            notes.push(format!(
                "{}: DKIM-signed with d={domain} s={selector} ({})",
                message.label,
                mail_auth::common::crypto::SigningKey::algorithm(key).name()
            ));
        }
    }
    Ok(())
}

/// 8-bit body parts become quoted-printable or base64 before the body is
/// hashed. A composed message is 7-bit but for an attached .eml sent as
/// 8bit; one with streamed files is left as it is (its 8-bit part would
/// need the whole message in memory to find).
fn make_seven_bit(message: &mut Outgoing, verbose: bool, notes: &mut Vec<String>) -> Result<()> {
    if message.content.is_ascii() {
        return Ok(());
    }
    // Converting takes several copies of the message in memory: a very
    // large one is signed as it is, as one with streamed files is.
    const MAX_CONVERTED: usize = 32 * 1024 * 1024;
    let stays = |notes: &mut Vec<String>| {
        if verbose {
            notes.push(format!(
                "{}: an 8-bit part stays 8-bit; a relay without 8BITMIME may break its DKIM signature",
                message.label
            ));
        }
    };
    let [Segment::Bytes(bytes)] = message.content.segments.as_mut_slice() else {
        stays(notes);
        return Ok(());
    };
    if bytes.len() > MAX_CONVERTED {
        stays(notes);
        return Ok(());
    }
    let converted = seven_bit(std::mem::take(bytes));
    if verbose {
        notes.extend(
            converted
                .notes
                .iter()
                .map(|note| format!("{}: {note}", message.label)),
        );
    }
    message.content = Content {
        segments: vec![Segment::Bytes(converted.bytes)],
    };
    Ok(())
}

/// The domains of the From field's addresses, lower-case A-labels; an
/// error (why it is not signed) for a message with several From fields:
/// readers show one of them, not always the one that would be checked
/// (RFC 5322 allows one).
fn from_domains(content: &Content) -> std::result::Result<Vec<String>, String> {
    let Some(Segment::Bytes(bytes)) = content.segments.first() else {
        return Ok(Vec::new());
    };
    let end = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(bytes.len(), |at| at + 4);
    let header = &bytes[..end];
    let from_fields = header
        .split(|&b| b == b'\n')
        .filter(|line| line.len() >= 5 && line[..5].eq_ignore_ascii_case(b"from:"))
        .count();
    if from_fields > 1 {
        return Err(format!("it has {from_fields} From fields"));
    }
    let Some(parsed) = MessageParser::default().parse_headers(header) else {
        return Ok(Vec::new());
    };
    let Some(from) = parsed.from() else {
        return Ok(Vec::new());
    };
    Ok(from
        .iter()
        .filter_map(|addr| addr.address())
        .filter_map(|addr| addr.rsplit_once('@').map(|(_, d)| ascii_lower(d)))
        .collect())
}

fn ascii_lower(domain: &str) -> String {
    idna::domain_to_ascii(domain)
        .unwrap_or_else(|_| domain.to_string())
        .to_ascii_lowercase()
}

/// `domain` is `signer` or a subdomain of it (RFC 7489 relaxed alignment
/// as far as postie can tell without the public suffix list).
fn is_within(domain: &str, signer: &str) -> bool {
    domain == signer
        || domain
            .strip_suffix(signer)
            .is_some_and(|rest| rest.ends_with('.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subdomain_is_within_and_a_lookalike_is_not() {
        assert!(is_within("example.com", "example.com"));
        assert!(is_within("mail.example.com", "example.com"));
        assert!(!is_within("badexample.com", "example.com"));
        assert!(!is_within("example.com", "mail.example.com"));
    }

    #[test]
    fn from_domains_are_lower_case_a_labels() {
        let content = Content::from_bytes(
            "From: A <a@Example.COM>, b@bücher.example\r\nTo: c@x.org\r\n\r\nbody\r\n".into(),
        );
        assert_eq!(
            from_domains(&content).unwrap(),
            ["example.com", "xn--bcher-kva.example"]
        );
    }

    #[test]
    fn a_second_from_field_is_not_signed_for() {
        let content = Content::from_bytes(
            "From: B <c@evil.example>\r\nfrom: A <a@example.test>\r\n\r\nbody\r\n".into(),
        );
        assert_eq!(from_domains(&content).unwrap_err(), "it has 2 From fields");
    }
}
