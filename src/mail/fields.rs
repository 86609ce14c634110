//! Structured `-H` fields: msg-id lists (RFC 5322 3.6.4), URL lists
//! (RFC 2369, RFC 8058) and address lists. RFC 2047 forbids encoded words
//! in msg-ids, URIs and addr-specs, so these are checked here and written
//! by `compose` folded at white space, never encoded (in address fields
//! only the display name is).

use crate::exit::{Error, Result};
use crate::mail::address::{ascii_mailbox, parse_list, Mailbox};

/// A `-H` value, parsed by what its field name says it holds.
#[derive(Debug, PartialEq)]
pub(crate) enum Field {
    /// Free text (RFC 5322 unstructured): folded, encoded where needed.
    Text,
    /// msg-ids without their angle brackets.
    MessageIds(Vec<String>),
    /// URLs without their angle brackets.
    Urls(Vec<String>),
    Mailboxes(Vec<Mailbox>),
    /// A fixed token such as `List-Unsubscribe=One-Click`.
    Token,
}

/// Fields holding exactly one msg-id, and those holding one or more.
const ONE_MSG_ID: &[&str] = &["Message-ID", "Resent-Message-ID"];
const MSG_IDS: &[&str] = &["In-Reply-To", "References"];
/// RFC 2369 fields whose value is a list of `<URL>`s.
const URL_LISTS: &[&str] = &[
    "List-Unsubscribe",
    "List-Subscribe",
    "List-Help",
    "List-Owner",
    "List-Archive",
];
/// Fields holding one mailbox, and those holding a list of them.
const ONE_MAILBOX: &[&str] = &["Sender", "Resent-Sender"];
const MAILBOXES: &[&str] = &[
    "Resent-From",
    "Resent-To",
    "Resent-Cc",
    "Mail-Followup-To",
    "Mail-Reply-To",
    "Disposition-Notification-To",
];
/// RFC 8058 3.1: the one value List-Unsubscribe-Post may have.
const ONE_CLICK: &str = "List-Unsubscribe=One-Click";

/// RFC 5322 2.1.1 allows 998 octets a line; a msg-id or URL cannot be
/// folded, so one that would not fit a line of its own (with its
/// brackets, comma and indent) is refused.
const MAX_TOKEN: usize = 990;

fn is(list: &[&str], name: &str) -> bool {
    list.iter().any(|known| known.eq_ignore_ascii_case(name))
}

/// Parses `value` as what the field `name` holds. A value of the wrong
/// shape is a usage error (64); a non-ASCII msg-id or URL, or one too long
/// for a line, is a data error (65).
pub(crate) fn parse(name: &str, value: &str) -> Result<Field> {
    if is(ONE_MSG_ID, name) || is(MSG_IDS, name) {
        let ids = message_ids(name, value)?;
        if ids.len() != 1 && is(ONE_MSG_ID, name) {
            return Err(Error::usage(format!(
                "--header {name} holds exactly one <msg-id>, not {}",
                ids.len()
            )));
        }
        return Ok(Field::MessageIds(ids));
    }
    if is(URL_LISTS, name) {
        return urls(name, value).map(Field::Urls);
    }
    if is(ONE_MAILBOX, name) || is(MAILBOXES, name) {
        return mailboxes(name, value).map(Field::Mailboxes);
    }
    if name.eq_ignore_ascii_case("List-Unsubscribe-Post") {
        if value != ONE_CLICK {
            return Err(Error::usage(format!(
                "--header List-Unsubscribe-Post must be {ONE_CLICK:?} (RFC 8058), not {value:?}"
            )));
        }
        return Ok(Field::Token);
    }
    Ok(Field::Text)
}

/// One token of a structured field: ASCII and short enough for a line.
fn check_token(name: &str, what: &str, token: &str) -> Result<()> {
    if !token.is_ascii() {
        return Err(Error::data(format!(
            "--header {name}: {what} {token:?} is not ASCII; RFC 2047 forbids encoding it"
        ))
        .hint("percent-encode the URL (RFC 3987 3.1) or write the domain as an A-label (xn--)"));
    }
    if token.len() > MAX_TOKEN {
        return Err(Error::data(format!(
            "--header {name}: a {what} of {} octets cannot fold and does not fit a line (RFC 5322 2.1.1)",
            token.len()
        )));
    }
    Ok(())
}

/// The inside of `<...>`, or None when `item` is not bracketed or has
/// white space, brackets or control characters inside.
fn bracketed(item: &str) -> Option<&str> {
    let inner = item.strip_prefix('<')?.strip_suffix('>')?;
    let clean = !inner.is_empty()
        && !inner
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>'));
    clean.then_some(inner)
}

fn message_ids(name: &str, value: &str) -> Result<Vec<String>> {
    let ids = value
        .split_whitespace()
        .map(|item| {
            let id = bracketed(item)
                .filter(|id| id.contains('@'))
                .ok_or_else(|| {
                    Error::usage(format!(
                        "--header {name}: {item:?} is not a <msg-id> (RFC 5322 3.6.4: <left@right>)"
                    ))
                })?;
            check_token(name, "msg-id", id)?;
            Ok(id.to_string())
        })
        .collect::<Result<Vec<_>>>()?;
    if ids.is_empty() {
        return Err(Error::usage(format!("--header {name} needs a <msg-id>")));
    }
    Ok(ids)
}

/// An RFC 3986 scheme followed by ':'.
fn has_scheme(url: &str) -> bool {
    url.split_once(':').is_some_and(|(scheme, _)| {
        scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    })
}

fn urls(name: &str, value: &str) -> Result<Vec<String>> {
    value
        .split(',')
        .map(|item| {
            let item = item.trim();
            let url = bracketed(item).filter(|url| has_scheme(url)).ok_or_else(|| {
                Error::usage(format!(
                    "--header {name}: {item:?} is not a <URL> (RFC 2369: <scheme:...>, comma-separated)"
                ))
            })?;
            check_token(name, "URL", url)?;
            Ok(url.to_string())
        })
        .collect()
}

fn mailboxes(name: &str, value: &str) -> Result<Vec<Mailbox>> {
    let list = parse_list(value)
        .map_err(|err| Error::usage(format!("--header {name}: {}", err.message)))?;
    // Domains as A-labels, as in every address postie writes: the message
    // must not need SMTPUTF8 for a domain (RFC 5890).
    let list = list
        .iter()
        .map(ascii_mailbox)
        .collect::<Result<Vec<Mailbox>>>()?;
    match list.len() {
        0 => Err(Error::usage(format!("--header {name} needs an address"))),
        1 => Ok(list),
        n if is(ONE_MAILBOX, name) => Err(Error::usage(format!(
            "--header {name} holds exactly one address, not {n}"
        ))),
        _ => Ok(list),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::Exit;

    #[test]
    fn known_fields_are_parsed() {
        assert_eq!(
            parse("References", "<a@b>  <c@d>").unwrap(),
            Field::MessageIds(vec!["a@b".into(), "c@d".into()])
        );
        assert_eq!(
            parse(
                "list-unsubscribe",
                "<mailto:u@l.example>, <https://l.example/u?x=1>"
            )
            .unwrap(),
            Field::Urls(vec![
                "mailto:u@l.example".into(),
                "https://l.example/u?x=1".into()
            ])
        );
        assert_eq!(
            parse("List-Unsubscribe-Post", ONE_CLICK).unwrap(),
            Field::Token
        );
        assert_eq!(parse("X-Anything", "=?x").unwrap(), Field::Text);
        let Field::Mailboxes(list) = parse("Sender", "Jörg <j@example.com>").unwrap() else {
            panic!("a mailbox");
        };
        assert_eq!(list[0].name.as_deref(), Some("Jörg"));
    }

    #[test]
    fn malformed_values_are_usage_errors_naming_the_field() {
        for (name, value) in [
            ("Message-ID", "a@b"),
            ("Message-ID", "<a@b> <c@d>"),
            ("In-Reply-To", ""),
            ("References", "<a@b> c@d"),
            ("References", "<a b@c>"),
            ("List-Unsubscribe", "https://l.example/u"),
            ("List-Unsubscribe", "<https://l.example/u>, "),
            ("List-Unsubscribe", "<no-scheme>"),
            ("List-Unsubscribe-Post", "yes"),
            ("Sender", "a@example.com, b@example.com"),
            ("Sender", "x <"),
        ] {
            let err = parse(name, value).unwrap_err();
            assert_eq!(err.exit, Exit::Usage, "{name}: {value}");
            assert!(err.message.contains(name), "{}", err.message);
            assert!(!err.message.contains('\n'), "{}", err.message);
        }
    }

    #[test]
    fn non_ascii_or_overlong_tokens_are_data_errors() {
        let long = format!("<https://l.example/{}>", "u".repeat(MAX_TOKEN));
        for (name, value) in [
            ("Message-ID", "<grüße@example.com>"),
            ("List-Unsubscribe", "<https://bücher.example/u>"),
            ("List-Unsubscribe", long.as_str()),
        ] {
            assert_eq!(
                parse(name, value).unwrap_err().exit,
                Exit::DataErr,
                "{value}"
            );
        }
    }

    #[test]
    fn address_fields_carry_a_labels() {
        let Field::Mailboxes(list) = parse("Sender", "Jörg <j@bücher.example>").unwrap() else {
            panic!("not an address field");
        };
        assert_eq!(list[0].email, "j@xn--bcher-kva.example");
    }
}
