//! The --capabilities report on stdout: a table for people, JSON for scripts.
//!
//! The JSON is a published, versioned format: `doc/capabilities.schema.json`
//! is its JSON Schema, postie(1) documents it, and a test validates the
//! output against it. A change that breaks a script reading version 1
//! bumps [`SCHEMA_VERSION`].

use std::io::Write;

use serde::Serialize;

use crate::exit::{io_reason, Error, Exit, Result};
use crate::smtp::capabilities::Capabilities;
use crate::smtp::report::{Delivery, Refusal, SessionReport};
use crate::smtp::tls::{CertReport, ChainCert, TlsReport};
use crate::types::ReportFormat;

/// The `version` of the --capabilities --json document.
pub(crate) const SCHEMA_VERSION: u32 = 1;

/// The whole --capabilities --json document.
#[derive(Serialize)]
struct ReportJson<'a> {
    version: u32,
    sessions: Vec<SessionJson<'a>>,
}

/// One session: the published format, field by field (names and order are
/// what scripts read). Built from the internal [`SessionReport`], which
/// has fields of its own that are not published.
#[derive(Serialize)]
struct SessionJson<'a> {
    server: &'a str,
    /// The EHLO reply received in clear text: before STARTTLS, or the only
    /// one of a session without TLS.
    before_tls: Option<CapabilitiesJson<'a>>,
    /// The EHLO reply received over TLS: after STARTTLS, or with implicit TLS.
    after_tls: Option<CapabilitiesJson<'a>>,
    tls: Option<TlsJson<'a>>,
    delivery: Option<DeliveryJson<'a>>,
    stopped_after: Option<&'a str>,
    /// Why the session failed although it was reported (a certificate that
    /// did not verify), or why an exchanger was not reached.
    error: Option<String>,
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

/// An EHLO reply as published: the same facts as [`Capabilities`], kept
/// apart so that a field added there for postie's own use stays private.
#[derive(Serialize)]
struct CapabilitiesJson<'a> {
    greeting_name: &'a str,
    starttls: bool,
    /// The SIZE limit in octets; 0 when SIZE is offered without one (RFC
    /// 1870 4), `null` when SIZE is not offered.
    size: Option<u64>,
    pipelining: bool,
    eight_bit_mime: bool,
    smtputf8: bool,
    chunking: bool,
    dsn: bool,
    enhanced_status_codes: bool,
    auth: &'a [String],
    raw: &'a [String],
}

/// The TLS session as published (see [`CapabilitiesJson`]).
#[derive(Serialize)]
struct TlsJson<'a> {
    version: &'a str,
    cipher: &'a str,
    verified: bool,
    verify_error: Option<&'a str>,
    /// How postie treated the certificate, in words.
    verification: &'a str,
    certificate: CertificateJson<'a>,
    chain: Vec<ChainJson<'a>>,
}

/// The server's own certificate.
#[derive(Serialize)]
struct CertificateJson<'a> {
    subject: &'a str,
    issuer: &'a str,
    alt_names: &'a [String],
    not_before: &'a str,
    not_after: &'a str,
    days_left: i64,
    sha256: &'a str,
}

/// One certificate of the chain the server sent, its own first.
#[derive(Serialize)]
struct ChainJson<'a> {
    subject: &'a str,
    issuer: &'a str,
    not_before: &'a str,
    not_after: &'a str,
    sha256: &'a str,
}

impl<'a> CapabilitiesJson<'a> {
    fn of(caps: &'a Capabilities) -> CapabilitiesJson<'a> {
        CapabilitiesJson {
            greeting_name: &caps.greeting_name,
            starttls: caps.starttls,
            size: caps.size.map(|limit| limit.unwrap_or(0)),
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

impl<'a> TlsJson<'a> {
    fn of(tls: &'a TlsReport, cert: &'a CertReport) -> TlsJson<'a> {
        TlsJson {
            version: &tls.version,
            cipher: &tls.cipher,
            verified: tls.verified,
            verify_error: tls.verify_error.as_deref(),
            verification: &cert.verification,
            certificate: CertificateJson {
                subject: &cert.subject,
                issuer: &cert.issuer,
                alt_names: &cert.alt_names,
                not_before: &cert.not_before,
                not_after: &cert.not_after,
                days_left: cert.days_left,
                sha256: &cert.sha256,
            },
            chain: tls.chain.iter().map(ChainJson::of).collect(),
        }
    }
}

impl<'a> ChainJson<'a> {
    fn of(cert: &'a ChainCert) -> ChainJson<'a> {
        ChainJson {
            subject: &cert.subject,
            issuer: &cert.issuer,
            not_before: &cert.not_before,
            not_after: &cert.not_after,
            sha256: &cert.sha256,
        }
    }
}

impl<'a> SessionJson<'a> {
    fn of(report: &'a SessionReport) -> SessionJson<'a> {
        let phase = |over_tls: bool| {
            report
                .capabilities
                .iter()
                .find(|ehlo| ehlo.over_tls == over_tls)
                .map(|ehlo| CapabilitiesJson::of(&ehlo.capabilities))
        };
        let tls = match (&report.tls, &report.certificate) {
            (Some(tls), Some(cert)) => Some(TlsJson::of(tls, cert)),
            _ => None,
        };
        SessionJson {
            server: &report.server,
            before_tls: phase(false),
            after_tls: phase(true),
            tls,
            delivery: report.delivery.as_ref().map(DeliveryJson::of),
            stopped_after: report.stopped_after.as_deref(),
            error: report.failure.as_ref().map(|err| err.message.clone()),
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
            let published = ReportJson {
                version: SCHEMA_VERSION,
                sessions: reports.iter().map(SessionJson::of).collect(),
            };
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
    if let Some(first) = report.capabilities.first() {
        out.push_str(&format!("name: {}\n", first.capabilities.greeting_name));
    }
    let columns: Vec<&str> = report
        .capabilities
        .iter()
        .map(|ehlo| ehlo.label.as_str())
        .collect();
    let rows: Vec<Vec<(String, String)>> = report
        .capabilities
        .iter()
        .map(|ehlo| ehlo.capabilities.table())
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
    if let Some(tls) = &report.tls {
        for line in tls.lines() {
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smtp::report::EhloReply;

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
                EhloReply {
                    label: "before STARTTLS".into(),
                    over_tls: false,
                    capabilities: ehlo("STARTTLS"),
                },
                EhloReply {
                    label: "after STARTTLS".into(),
                    over_tls: true,
                    capabilities: ehlo("AUTH PLAIN LOGIN"),
                },
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

    fn tls_report() -> (TlsReport, CertReport) {
        let tls = TlsReport {
            version: "TLSv1.3".into(),
            cipher: "TLS_AES_256_GCM_SHA384".into(),
            chain: vec![ChainCert {
                subject: "CN=mx.example".into(),
                issuer: "CN=ca".into(),
                not_before: "2026-12-01T00:00:00Z".into(),
                not_after: "2027-01-01T00:00:00Z".into(),
                sha256: "AB".into(),
            }],
            verified: false,
            verify_error: Some("self-signed certificate".into()),
        };
        let cert = CertReport {
            subject: "CN=mx.example".into(),
            issuer: "CN=ca".into(),
            alt_names: vec!["DNS:mx.example".into()],
            not_before: "2026-12-01T00:00:00Z".into(),
            not_after: "2027-01-01T00:00:00Z".into(),
            days_left: 3,
            sha256: "AB".into(),
            verification: "NOT verified: self-signed certificate".into(),
        };
        (tls, cert)
    }

    /// The published format: these keys (their order is golden's), and no
    /// internal field of the report (its recipients, further messages).
    #[test]
    fn json_has_the_published_fields_only() {
        let (tls, certificate) = tls_report();
        let report = SessionReport {
            server: "mx.example:25 (192.0.2.1:25)".into(),
            capabilities: vec![
                EhloReply {
                    label: "before STARTTLS".into(),
                    over_tls: false,
                    capabilities: Capabilities::parse(&[
                        "mx.example".to_string(),
                        "SIZE".to_string(),
                    ]),
                },
                EhloReply {
                    label: "after STARTTLS".into(),
                    over_tls: true,
                    capabilities: Capabilities::parse(&[
                        "mx.example".to_string(),
                        "SIZE 1000".to_string(),
                    ]),
                },
            ],
            certificate: Some(certificate),
            tls: Some(tls),
            delivery: Some(Delivery {
                reply: Some("250 ok".into()),
                refused: vec![Refusal {
                    recipient: "x@example.com".into(),
                    reply: "550 no".into(),
                    temporary: false,
                }],
            }),
            recipients: vec!["secret@example.com".into()],
            failure: Some(Error::new(Exit::Unavailable, "TLS: cannot verify"))
                .map(|err| err.hint("internal hint")),
            ..SessionReport::default()
        };
        let json = serde_json::to_value(SessionJson::of(&report)).unwrap();
        let keys = |value: &serde_json::Value| -> Vec<String> {
            value.as_object().unwrap().keys().cloned().collect()
        };
        assert_eq!(
            keys(&json),
            [
                "after_tls",
                "before_tls",
                "delivery",
                "error",
                "server",
                "stopped_after",
                "tls"
            ]
        );
        assert_eq!(
            keys(&json["after_tls"]),
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
            keys(&json["tls"]),
            [
                "certificate",
                "chain",
                "cipher",
                "verification",
                "verified",
                "verify_error",
                "version"
            ]
        );
        assert_eq!(
            keys(&json["tls"]["certificate"]),
            [
                "alt_names",
                "days_left",
                "issuer",
                "not_after",
                "not_before",
                "sha256",
                "subject"
            ]
        );
        assert_eq!(
            keys(&json["tls"]["chain"][0]),
            ["issuer", "not_after", "not_before", "sha256", "subject"]
        );
        assert_eq!(keys(&json["delivery"]), ["refused", "reply"]);
        // SIZE without a number is 0, RFC 1870's "no fixed maximum".
        assert_eq!(json["before_tls"]["size"], 0);
        assert_eq!(json["after_tls"]["size"], 1000);
        assert_eq!(json["tls"]["verified"], false);
        assert_eq!(json["error"], "TLS: cannot verify");
        let text = json.to_string();
        assert!(!text.contains("secret@example.com"), "{text}");
        assert!(!text.contains("internal hint"), "{text}");
    }

    #[test]
    fn the_table_ends_with_the_tls_session_and_the_verdict() {
        let (tls, certificate) = tls_report();
        let report = SessionReport {
            server: "mx.example:25 (192.0.2.1:25)".into(),
            certificate: Some(certificate),
            tls: Some(tls),
            ..SessionReport::default()
        };
        let text = table(&report);
        for row in [
            "TLS version: TLSv1.3\n",
            "TLS cipher: TLS_AES_256_GCM_SHA384\n",
            "chain 0 subject: CN=mx.example\n",
            "chain 0 issuer: CN=ca\n",
            "chain 0 valid: 2026-12-01T00:00:00Z to 2027-01-01T00:00:00Z\n",
            "chain 0 SHA-256: AB\n",
        ] {
            assert!(text.contains(row), "{row:?} in:\n{text}");
        }
        assert!(
            text.ends_with("verified: no (self-signed certificate)\n"),
            "{text}"
        );
    }
}
