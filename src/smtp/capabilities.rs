//! What a server says it can do, read from its EHLO reply.
//!
//! lettre's `ServerInfo` keeps only four extensions and matches AUTH
//! mechanisms case-sensitively; postie needs SIZE, PIPELINING, CHUNKING and
//! DSN for the capabilities report, and the old `AUTH=PLAIN LOGIN` form
//! some servers still send. So the raw reply lines are parsed here.

use crate::types::human_size;

/// The extensions from one EHLO reply.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Capabilities {
    /// The server's name from the first line of the reply.
    pub(crate) greeting_name: String,
    pub(crate) starttls: bool,
    /// SIZE, with its limit in octets when the server gives one (0 or
    /// absent means no fixed limit, RFC 1870).
    pub(crate) size: Option<Option<u64>>,
    pub(crate) pipelining: bool,
    pub(crate) eight_bit_mime: bool,
    pub(crate) smtputf8: bool,
    pub(crate) chunking: bool,
    pub(crate) dsn: bool,
    pub(crate) enhanced_status_codes: bool,
    /// AUTH mechanisms, upper-cased, in the order offered.
    pub(crate) auth: Vec<String>,
    /// Every extension line as sent, for the report.
    pub(crate) raw: Vec<String>,
}

impl Capabilities {
    /// Parses the text lines of a 250 reply to EHLO (without the codes).
    pub(crate) fn parse(lines: &[String]) -> Capabilities {
        let mut caps = Capabilities {
            greeting_name: lines
                .first()
                .and_then(|l| l.split_whitespace().next())
                .unwrap_or("")
                .to_string(),
            ..Capabilities::default()
        };
        for line in lines.iter().skip(1) {
            caps.raw.push(line.clone());
            let mut words = line.split_whitespace();
            let Some(keyword) = words.next() else {
                continue;
            };
            let keyword = keyword.to_ascii_uppercase();
            match keyword.as_str() {
                "STARTTLS" => caps.starttls = true,
                "SIZE" => {
                    caps.size = Some(words.next().and_then(|n| n.parse().ok()).filter(|&n| n > 0))
                }
                "PIPELINING" => caps.pipelining = true,
                "8BITMIME" => caps.eight_bit_mime = true,
                "SMTPUTF8" => caps.smtputf8 = true,
                "CHUNKING" => caps.chunking = true,
                "DSN" => caps.dsn = true,
                "ENHANCEDSTATUSCODES" => caps.enhanced_status_codes = true,
                "AUTH" => caps.add_auth(words),
                other => {
                    // The pre-RFC 4954 form: "AUTH=PLAIN LOGIN".
                    if let Some(first) = other.strip_prefix("AUTH=") {
                        caps.add_auth(std::iter::once(first).chain(words));
                    }
                }
            }
        }
        caps
    }

    fn add_auth<'a>(&mut self, mechanisms: impl Iterator<Item = &'a str>) {
        for mechanism in mechanisms {
            let mechanism = mechanism.to_ascii_uppercase();
            if !self.auth.contains(&mechanism) {
                self.auth.push(mechanism);
            }
        }
    }

    pub(crate) fn offers_auth(&self, mechanism: &str) -> bool {
        self.auth.iter().any(|m| m == mechanism)
    }

    /// A readable table, one extension a line, for --capabilities.
    pub(crate) fn table(&self) -> Vec<(String, String)> {
        let yes_no = |b: bool| if b { "yes" } else { "no" }.to_string();
        let size = match self.size {
            None => "no".to_string(),
            Some(None) => "yes (no fixed limit)".to_string(),
            Some(Some(limit)) => format!("{limit} octets ({})", human_size(limit)),
        };
        let auth = if self.auth.is_empty() {
            "none offered".to_string()
        } else {
            self.auth.join(" ")
        };
        vec![
            ("STARTTLS".into(), yes_no(self.starttls)),
            ("SIZE".into(), size),
            ("PIPELINING".into(), yes_no(self.pipelining)),
            ("8BITMIME".into(), yes_no(self.eight_bit_mime)),
            ("SMTPUTF8".into(), yes_no(self.smtputf8)),
            ("CHUNKING".into(), yes_no(self.chunking)),
            ("DSN".into(), yes_no(self.dsn)),
            (
                "ENHANCEDSTATUSCODES".into(),
                yes_no(self.enhanced_status_codes),
            ),
            ("AUTH".into(), auth),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(str::to_string).collect()
    }

    #[test]
    fn postfix_style_reply() {
        let caps = Capabilities::parse(&lines(
            "mx.example.com\nPIPELINING\nSIZE 10240000\nVRFY\nETRN\nSTARTTLS\nAUTH plain LOGIN\nAUTH=PLAIN LOGIN XOAUTH2\nENHANCEDSTATUSCODES\n8BITMIME\nDSN\nSMTPUTF8\nCHUNKING",
        ));
        assert_eq!(caps.greeting_name, "mx.example.com");
        assert!(caps.starttls && caps.pipelining && caps.eight_bit_mime && caps.smtputf8);
        assert!(caps.chunking && caps.dsn && caps.enhanced_status_codes);
        assert_eq!(caps.size, Some(Some(10_240_000)));
        assert_eq!(caps.auth, ["PLAIN", "LOGIN", "XOAUTH2"]);
        assert!(caps.offers_auth("LOGIN"));
    }

    #[test]
    fn minimal_reply_and_size_without_limit() {
        let caps = Capabilities::parse(&lines("tiny\nSIZE"));
        assert_eq!(caps.size, Some(None));
        assert!(!caps.starttls && caps.auth.is_empty());
        let caps = Capabilities::parse(&lines("tiny"));
        assert_eq!(caps.size, None);
    }

    #[test]
    fn sizes_read_as_people_say_them() {
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(2_411_724), "2.3 MiB");
    }
}
