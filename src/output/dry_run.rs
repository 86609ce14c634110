//! `--dry-run`: on stderr where the message would go and its envelope, on
//! stdout the message, the very bytes that would have been sent (the same
//! `Content` as the wire).

use std::io::Write;

use crate::exit::{self, Error, Exit, Result};
use crate::output::messages;
use crate::smtp::outgoing::Outgoing;
use crate::smtp::settings::Route;
use crate::types::TlsMode;

/// Where a send would go, as planned: nothing resolved, no password fetched.
#[derive(Clone, Debug)]
pub(crate) struct Destination {
    pub(crate) route: Route,
    /// The config account in use.
    pub(crate) account: Option<String>,
    /// The user name to log in as (never with --mx).
    pub(crate) user: Option<String>,
}

pub(crate) fn print(messages: &[Outgoing], destination: Option<&Destination>) -> Result<()> {
    messages::said("dry run, nothing sent");
    let mut stdout = std::io::stdout().lock();
    for message in messages {
        if let Some(destination) = destination {
            messages::said(would_connect(destination, &message.envelope.recipients));
        }
        // The DSN parameters as a server that offers DSN gets them.
        let envelope = &message.envelope;
        let smtputf8 = envelope.needs_smtputf8() || message.content.needs_smtputf8();
        let mail = envelope.dsn.mail_parameters();
        eprintln!("MAIL FROM:<{}>{}", envelope.sender, parameters(&mail));
        for recipient in &envelope.recipients {
            let rcpt = envelope.dsn.rcpt_parameters(recipient, smtputf8);
            eprintln!("RCPT TO:<{recipient}>{}", parameters(&rcpt));
        }
        match message
            .content
            .write_to(&mut stdout)
            .and_then(|_| stdout.flush())
        {
            Ok(()) => {}
            // `postie --dry-run ... | head` is fine.
            Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
            Err(err) => {
                return Err(Error::new(
                    Exit::IoErr,
                    format!(
                        "cannot write the message to standard output: {}",
                        exit::io_reason(&err)
                    ),
                ))
            }
        }
    }
    Ok(())
}

/// " RET=HDRS ENVID=x", or nothing.
fn parameters(list: &[String]) -> String {
    list.iter().map(|p| format!(" {p}")).collect()
}

/// "would connect to smtp.example.com:587 with STARTTLS (required);
/// account work, user alice", or "would deliver directly to the MX of
/// example.org, port 25, with STARTTLS if offered".
fn would_connect(destination: &Destination, recipients: &[String]) -> String {
    let mut line = match &destination.route {
        Route::Servers(servers) => {
            let tried: Vec<String> = servers
                .iter()
                .map(|server| format!("{} with {}", server.endpoint, tls(server.tls)))
                .collect();
            format!("would connect to {}", tried.join(", else "))
        }
        Route::Mx {
            port, tls: mode, ..
        } => {
            let mut domains: Vec<String> = Vec::new();
            for recipient in recipients {
                let domain = recipient
                    .rsplit_once('@')
                    .map_or(recipient.as_str(), |(_, domain)| domain)
                    .to_ascii_lowercase();
                if !domains.contains(&domain) {
                    domains.push(domain);
                }
            }
            format!(
                "would deliver directly to the MX of {}, port {port}, with {}",
                domains.join(", "),
                tls(*mode)
            )
        }
    };
    let mut who = Vec::new();
    if let Some(account) = &destination.account {
        who.push(format!("account {account}"));
    }
    match (&destination.user, &destination.route) {
        (Some(user), _) => who.push(format!("user {user}")),
        (None, Route::Servers(_)) => who.push("no login".to_string()),
        (None, Route::Mx { .. }) => {}
    }
    if !who.is_empty() {
        line.push_str("; ");
        line.push_str(&who.join(", "));
    }
    line
}

fn tls(mode: TlsMode) -> &'static str {
    match mode {
        TlsMode::Starttls => "STARTTLS (required)",
        TlsMode::Implicit => "TLS from the first byte",
        TlsMode::Opportunistic => "STARTTLS if offered",
        TlsMode::None => "no TLS",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smtp::mx::Nameserver;
    use crate::smtp::settings::Server;
    use crate::types::Endpoint;

    fn server(host: &str, port: u16, tls: TlsMode) -> Server {
        Server {
            endpoint: Endpoint {
                host: host.into(),
                port,
            },
            tls,
            tls_explicit: false,
        }
    }

    #[test]
    fn servers_are_listed_in_order_with_their_tls_and_login() {
        let destination = Destination {
            route: Route::Servers(vec![
                server("smtp.example.com", 587, TlsMode::Starttls),
                server("backup.example.com", 465, TlsMode::Implicit),
            ]),
            account: Some("work".into()),
            user: Some("alice".into()),
        };
        assert_eq!(
            would_connect(&destination, &[]),
            "would connect to smtp.example.com:587 with STARTTLS (required), else backup.example.com:465 with TLS from the first byte; account work, user alice"
        );
    }

    #[test]
    fn mx_names_each_domain_once() {
        let destination = Destination {
            route: Route::Mx {
                port: 25,
                nameserver: Nameserver::System,
                tls: TlsMode::Opportunistic,
                concurrency: 8,
            },
            account: None,
            user: None,
        };
        let recipients = [
            "a@Example.org".to_string(),
            "b@example.org".into(),
            "c@x.net".into(),
        ];
        assert_eq!(
            would_connect(&destination, &recipients),
            "would deliver directly to the MX of example.org, x.net, port 25, with STARTTLS if offered"
        );
    }
}
