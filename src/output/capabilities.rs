//! The --capabilities report on stdout: a table for people, JSON for scripts.

use std::io::Write;

use serde::Serialize;

use crate::exit::{io_reason, Error, Exit, Result};
use crate::smtp::capabilities::Capabilities;
use crate::smtp::report::{Delivery, Refusal, SessionReport};
use crate::smtp::tls::CertReport;
use crate::types::ReportFormat;

/// One session in `--capabilities --json`: the published format, field by
/// field (names and order are what scripts read). Built from the internal
/// [`SessionReport`], which has fields of its own that are not published.
#[derive(Serialize)]
struct SessionJson<'a> {
    server: &'a str,
    capabilities: Vec<(&'a str, CapabilitiesJson<'a>)>,
    certificate: Option<CertificateJson<'a>>,
    delivery: Option<DeliveryJson<'a>>,
    stopped_after: Option<&'a str>,
}

#[derive(Serialize)]
struct DeliveryJson<'a> {
    reply: Option<&'a str>,
    refused: Vec<RefusalJson<'a>>,
}

#[derive(Serialize)]
struct RefusalJson<'a> {
    recipient: &'a str,
    reply: &'a str,
    temporary: bool,
}

/// An EHLO reply as published: the same fields as [`Capabilities`], kept
/// apart so that a field added there for postie's own use stays private.
#[derive(Serialize)]
struct CapabilitiesJson<'a> {
    greeting_name: &'a str,
    starttls: bool,
    size: Option<Option<u64>>,
    pipelining: bool,
    eight_bit_mime: bool,
    smtputf8: bool,
    chunking: bool,
    dsn: bool,
    enhanced_status_codes: bool,
    auth: &'a [String],
    raw: &'a [String],
}

/// The server's certificate as published (see [`CapabilitiesJson`]).
#[derive(Serialize)]
struct CertificateJson<'a> {
    subject: &'a str,
    issuer: &'a str,
    alt_names: &'a [String],
    not_before: &'a str,
    not_after: &'a str,
    days_left: i64,
    sha256: &'a str,
    verification: &'a str,
}

impl<'a> CapabilitiesJson<'a> {
    fn of(caps: &'a Capabilities) -> CapabilitiesJson<'a> {
        CapabilitiesJson {
            greeting_name: &caps.greeting_name,
            starttls: caps.starttls,
            size: caps.size,
            pipelining: caps.pipelining,
            eight_bit_mime: caps.eight_bit_mime,
            smtputf8: caps.smtputf8,
            chunking: caps.chunking,
            dsn: caps.dsn,
            enhanced_status_codes: caps.enhanced_status_codes,
            auth: &caps.auth,
            raw: &caps.raw,
        }
    }
}

impl<'a> CertificateJson<'a> {
    fn of(cert: &'a CertReport) -> CertificateJson<'a> {
        CertificateJson {
            subject: &cert.subject,
            issuer: &cert.issuer,
            alt_names: &cert.alt_names,
            not_before: &cert.not_before,
            not_after: &cert.not_after,
            days_left: cert.days_left,
            sha256: &cert.sha256,
            verification: &cert.verification,
        }
    }
}

impl<'a> SessionJson<'a> {
    fn of(report: &'a SessionReport) -> SessionJson<'a> {
        SessionJson {
            server: &report.server,
            capabilities: report
                .capabilities
                .iter()
                .map(|(when, caps)| (when.as_str(), CapabilitiesJson::of(caps)))
                .collect(),
            certificate: report.certificate.as_ref().map(CertificateJson::of),
            delivery: report.delivery.as_ref().map(DeliveryJson::of),
            stopped_after: report.stopped_after.as_deref(),
        }
    }
}

impl<'a> DeliveryJson<'a> {
    fn of(delivery: &'a Delivery) -> DeliveryJson<'a> {
        DeliveryJson {
            reply: delivery.reply.as_deref(),
            refused: delivery.refused.iter().map(RefusalJson::of).collect(),
        }
    }
}

impl<'a> RefusalJson<'a> {
    fn of(refusal: &'a Refusal) -> RefusalJson<'a> {
        RefusalJson {
            recipient: &refusal.recipient,
            reply: &refusal.reply,
            temporary: refusal.temporary,
        }
    }
}

pub(crate) fn print_capabilities(reports: &[SessionReport], format: ReportFormat) -> Result<()> {
    let text = match format {
        ReportFormat::Json => {
            let published: Vec<SessionJson> = reports.iter().map(SessionJson::of).collect();
            let mut json = serde_json::to_string_pretty(&published)
                .map_err(|err| Error::new(Exit::Software, format!("cannot write JSON: {err}")))?;
            json.push('\n');
            json
        }
        ReportFormat::Table => reports.iter().map(table).collect::<Vec<_>>().join("\n"),
    };
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Err(err) if err.kind() != std::io::ErrorKind::BrokenPipe => Err(Error::new(
            Exit::IoErr,
            format!("cannot write the report: {}", io_reason(&err)),
        )),
        _ => Ok(()),
    }
}

/// The report for people. Names in a certificate and the greeting are
/// the server's text: no control character of theirs reaches the
/// terminal (JSON escapes its own).
fn table(report: &SessionReport) -> String {
    table_unescaped(report)
        .split_inclusive('\n')
        .map(|line| match line.strip_suffix('\n') {
            Some(line) => format!("{}\n", crate::smtp::reply::escape(line.as_bytes())),
            None => crate::smtp::reply::escape(line.as_bytes()),
        })
        .collect()
}

fn table_unescaped(report: &SessionReport) -> String {
    let mut out = format!("server: {}\n", report.server);
    if let Some((_, first)) = report.capabilities.first() {
        out.push_str(&format!("name: {}\n", first.greeting_name));
    }
    let columns: Vec<&str> = report
        .capabilities
        .iter()
        .map(|(label, _)| label.as_str())
        .collect();
    let rows: Vec<Vec<(String, String)>> = report
        .capabilities
        .iter()
        .map(|(_, caps)| caps.table())
        .collect();
    if let Some(first) = rows.first() {
        // Each column as wide as its widest cell, two spaces apart: a SIZE
        // of "104857600 octets (100.0 MiB)" must not run into the next.
        let name_width = first.iter().map(|(name, _)| name.len()).max().unwrap_or(0);
        let name_width = name_width.max("extension".len()) + 2;
        let widths: Vec<usize> = columns
            .iter()
            .zip(&rows)
            .map(|(label, row)| {
                let widest = row.iter().map(|(_, value)| value.chars().count()).max();
                widest.unwrap_or(0).max(label.chars().count()) + 2
            })
            .collect();
        let mut line = format!("{:<name_width$}", "extension");
        for (column, width) in columns.iter().zip(&widths) {
            line.push_str(&format!("{column:<width$}"));
        }
        out.push_str(line.trim_end());
        out.push('\n');
        for (index, (name, _)) in first.iter().enumerate() {
            let mut line = format!("{name:<name_width$}");
            for (row, width) in rows.iter().zip(&widths) {
                line.push_str(&format!("{:<width$}", row[index].1));
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
    }
    if let Some(cert) = &report.certificate {
        for line in cert.lines() {
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_columns_never_run_into_each_other() {
        let ehlo = |extra: &str| {
            let lines: Vec<String> = [
                "mx.example\x1b]0;pwned\x07",
                "PIPELINING",
                "SIZE 104857600",
                extra,
            ]
            .iter()
            .map(|l| l.to_string())
            .collect();
            Capabilities::parse(&lines)
        };
        let report = SessionReport {
            server: "mx.example:587 (192.0.2.1:587)".into(),
            capabilities: vec![
                ("before STARTTLS".into(), ehlo("STARTTLS")),
                ("after STARTTLS".into(), ehlo("AUTH PLAIN LOGIN")),
            ],
            ..SessionReport::default()
        };
        let text = table(&report);
        assert!(!text.contains('\x1b'), "{text}");
        assert!(
            text.contains("name: mx.example\\x1B]0;pwned\\x07"),
            "{text}"
        );
        let size = text.lines().find(|l| l.starts_with("SIZE")).unwrap();
        assert_eq!(
            size,
            "SIZE                 104857600 octets (100.0 MiB)  104857600 octets (100.0 MiB)"
        );
        let header = text.lines().find(|l| l.starts_with("extension")).unwrap();
        assert_eq!(
            header.find("after STARTTLS"),
            size.rfind("104857600"),
            "{text}"
        );
    }

    /// The published format: these keys (their order is golden's), and no internal
    /// field of the report (its recipients, the failure, further messages).
    #[test]
    fn json_has_the_published_fields_only() {
        let report = SessionReport {
            server: "mx.example:25 (192.0.2.1:25)".into(),
            capabilities: vec![(
                "EHLO".into(),
                Capabilities::parse(&["mx.example".to_string(), "SIZE 1000".to_string()]),
            )],
            certificate: Some(CertReport {
                subject: "CN=mx.example".into(),
                issuer: "CN=ca".into(),
                alt_names: vec!["mx.example".into()],
                not_before: "a".into(),
                not_after: "b".into(),
                days_left: 3,
                sha256: "AB".into(),
                verification: "verified".into(),
            }),
            delivery: Some(Delivery {
                reply: Some("250 ok".into()),
                refused: vec![Refusal {
                    recipient: "x@example.com".into(),
                    reply: "550 no".into(),
                    temporary: false,
                }],
            }),
            recipients: vec!["secret@example.com".into()],
            failure: Some(Error::new(Exit::Unavailable, "internal")),
            ..SessionReport::default()
        };
        let json = serde_json::to_value(SessionJson::of(&report)).unwrap();
        let keys = |value: &serde_json::Value| -> Vec<String> {
            value.as_object().unwrap().keys().cloned().collect()
        };
        assert_eq!(
            keys(&json),
            [
                "capabilities",
                "certificate",
                "delivery",
                "server",
                "stopped_after"
            ]
        );
        assert_eq!(
            keys(&json["capabilities"][0][1]),
            [
                "auth",
                "chunking",
                "dsn",
                "eight_bit_mime",
                "enhanced_status_codes",
                "greeting_name",
                "pipelining",
                "raw",
                "size",
                "smtputf8",
                "starttls"
            ]
        );
        assert_eq!(
            keys(&json["certificate"]),
            [
                "alt_names",
                "days_left",
                "issuer",
                "not_after",
                "not_before",
                "sha256",
                "subject",
                "verification"
            ]
        );
        assert_eq!(keys(&json["delivery"]), ["refused", "reply"]);
        assert_eq!(json["capabilities"][0][1]["size"], 1000);
        let text = json.to_string();
        assert!(!text.contains("secret@example.com"), "{text}");
        assert!(!text.contains("internal"), "{text}");
    }
}
