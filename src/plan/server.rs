//! Where and how to connect: the server list (--server's HOST, HOST:PORT,
//! `smtp://` and `smtps://` forms) or the recipients' exchangers (MX), the
//! TLS mode and certificate checks, the EHLO name, timeouts; what becomes
//! smtp's [`Settings`].
//!
//! Belongs here: turning flags and account into connection settings, and
//! the rules that keep a login away from an exchanger. Not here: the login's
//! secret ([`super::secret`]), connecting (`smtp`).

use std::net::IpAddr;
use std::time::Duration;

use crate::cli::args::Cli;
use crate::config::file::Account;
use crate::exit::{Error, Result};
use crate::mail::address::is_ehlo_name;
use crate::plan::precedence::Selected;
use crate::plan::secret::{login, PendingLogin, PASSWORD_CMD_DEADLINE};
use crate::smtp::mx::{Family, Nameserver};
use crate::smtp::settings::{Route, Server, Settings, Timeouts, DEFAULT_MX_CONCURRENCY};
use crate::smtp::tls::{parse_fingerprint, Verify};
use crate::types::{Endpoint, Envelope, QuitAfter, TlsFiles, TlsMode};

pub(crate) fn transport_settings(
    cli: &Cli,
    selected: &Selected,
    envelope: &Envelope,
    warnings: &mut Vec<String>,
    notes: &mut Vec<String>,
) -> Result<(Settings, Option<PendingLogin>)> {
    let merged = &selected.merged;
    let explicit_tls = merged.tls;
    if let (true, Some(server)) = (cli.mx, &cli.server) {
        // Not a clap conflict: POSTIE_SERVER in the environment counts as
        // given there, and must not make --mx unusable.
        warnings.push(format!("--mx: not using the server {server}"));
    }
    let servers: Vec<String> = match &merged.server {
        _ if cli.mx => Vec::new(),
        Some(list) => list.items(),
        None => Vec::new(),
    };
    let route = if servers.is_empty() {
        refuse_login_for_mx(cli, &selected.account, warnings)?;
        if envelope.recipients.is_empty() {
            return Err(Error::usage("no server, and no recipient whose domain's MX to use").hint(
                "give --server HOST[:PORT] (or POSTIE_SERVER, or `server` in the config), or a recipient",
            ));
        }
        let nameserver = cli
            .resolver
            .as_deref()
            .map(Nameserver::parse)
            .transpose()?
            .unwrap_or(Nameserver::System);
        Route::Mx {
            // Not the account's port: that is its submission server's,
            // and exchangers listen on 25 (RFC 5321 2.3.5).
            port: cli.port.unwrap_or(25),
            nameserver,
            tls: explicit_tls.unwrap_or(TlsMode::Opportunistic),
            concurrency: merged.mx_concurrency.unwrap_or(DEFAULT_MX_CONCURRENCY),
        }
    } else {
        Route::Servers(
            servers
                .iter()
                .map(|server| server_target(server, cli, selected))
                .collect::<Result<Vec<_>>>()?,
        )
    };

    let insecure = merged.insecure.unwrap_or(false);
    // An account's pin is its submission server's certificate: the
    // exchangers of other domains have their own, so under MX delivery
    // only a pin given on the command line counts.
    let pin = match route {
        Route::Mx { .. } => &cli.tls_fingerprint,
        Route::Servers(_) => &merged.tls_fingerprint,
    };
    let verify = match (pin, insecure) {
        (Some(pin), _) => Verify::Pinned(parse_fingerprint(pin).map_err(|err| {
            if cli.tls_fingerprint.is_some() {
                err
            } else {
                // From the account: the config is what to fix (78).
                Error::config(format!("invalid tls_fingerprint {pin:?} in the config")).hint(
                    "give the certificate's SHA-256 fingerprint: 64 hex digits, colons allowed",
                )
            }
        })?),
        (None, true) => {
            warnings.push(
                "--insecure: the server's certificate is not verified; anyone on the path can read or change this mail"
                    .to_string(),
            );
            Verify::Insecure
        }
        (None, false) => Verify::Full,
    };
    let quit_after = cli
        .quit_after
        .or(cli.capabilities.then_some(QuitAfter::Starttls));
    let timeout = merged.timeout;
    // A test that stops before AUTH needs no password, nor does a dry run
    // (which reads no password file); an exchanger never gets one.
    let login = if quit_after.is_some_and(|stage| stage < QuitAfter::Auth)
        || cli.dry_run
        || matches!(route, Route::Mx { .. })
    {
        None
    } else {
        let deadline = timeout.map_or(PASSWORD_CMD_DEADLINE, Duration::from_secs);
        login(merged, selected.name.as_deref(), deadline)?
    };
    let helo = match merged.helo.clone() {
        Some(helo) if is_ehlo_name(&helo) => helo,
        Some(helo) => {
            return Err(Error::data(format!(
                "the EHLO name {helo:?} is neither a domain name nor an address literal (RFC 5321 4.1.1.1)"
            ))
            .hint("give a host name such as mail.example.com, or [192.0.2.1]"))
        }
        None => {
            let (helo, note) = checked_hostname();
            notes.extend(note);
            helo
        }
    };
    let verbosity = if cli.capabilities || cli.timing {
        cli.verbose.max(1)
    } else {
        cli.verbose
    };
    let settings = Settings {
        route,
        tls_files: TlsFiles {
            ca_file: merged.ca_file.clone(),
            client_cert: merged.client_cert.clone(),
            client_key: merged.client_key.clone(),
        },
        verify,
        login: None,
        allow_plaintext_auth: merged.allow_plaintext_auth.unwrap_or(false),
        helo,
        timeouts: timeout.map(Timeouts::uniform).unwrap_or(Timeouts::DEFAULT),
        partial: merged.partial.unwrap_or(false),
        family: match (cli.ipv4, cli.ipv6) {
            (true, _) => Family::V4,
            (_, true) => Family::V6,
            _ => Family::Any,
        },
        verbosity,
        timing: cli.timing,
        quit_after,
        // The commands add the bar: whether stderr is a terminal is not
        // the plan's business.
        progress: None,
        probe: cli.capabilities,
        dsn_required: merged.dsn_required.unwrap_or(false),
    };
    Ok((settings, login))
}

/// Direct delivery never logs in. An exchanger is whoever the recipient's
/// domain names, reached over TLS nobody verifies: a password sent there
/// is given to the owner of that domain and to anyone on the path.
fn refuse_login_for_mx(cli: &Cli, account: &Account, warnings: &mut Vec<String>) -> Result<()> {
    let flag = [
        (cli.user.is_some() && !cli.user_from_env, "--user"),
        (cli.password_cmd.is_some(), "--password-cmd"),
        (cli.auth.is_some(), "--auth"),
    ]
    .into_iter()
    .find_map(|(given, flag)| given.then_some(flag));
    if let Some(flag) = flag {
        let error = if cli.mx {
            Error::usage(format!(
                "--mx does not go with {flag}: mail exchangers never get a password"
            ))
            .hint("leave out the login, or send through your server with --server")
        } else {
            Error::usage(format!("{flag} needs a server to log in to"))
                .hint("give --server HOST[:PORT]; without one postie delivers to each recipient's MX, which never gets a password")
        };
        return Err(error);
    }
    let account_login = account.user.is_some()
        || account.password_cmd.is_some()
        || account.password.is_some()
        || account.auth.is_some();
    let env_user = cli.user.as_deref().filter(|_| cli.user_from_env);
    if cli.mx {
        if let Some(user) = env_user.or(account.user.as_deref()) {
            warnings.push(format!(
                "--mx: not logging in as {user:?}; mail exchangers never get a password"
            ));
        }
        return Ok(());
    }
    // Without --mx the login says the user meant a submission server:
    // going to the recipients' exchangers instead would hand them the
    // password (or, without it, send from the wrong place).
    if account_login {
        return Err(Error::config(
            "the account has a login (user, password or password_cmd) but no server",
        )
        .hint("set `server` in the account (or give --server); for direct delivery to each recipient's MX, remove the login and use --mx"));
    }
    if let Some(user) = env_user {
        return Err(Error::config(format!(
            "POSTIE_USER is {user:?} but no server is given or configured"
        ))
        .hint("give --server or set POSTIE_SERVER; for direct delivery to each recipient's MX, unset POSTIE_USER or use --mx"));
    }
    Ok(())
}

/// A named server, with the TLS mode its URL, port or address implies.
fn server_target(server: &str, cli: &Cli, selected: &Selected) -> Result<Server> {
    let parsed = ServerSpec::parse(server)?;
    // An exception to the layers: the URL's scheme is more specific than a
    // config's `tls` (which may come from [defaults] for every account), so
    // it beats it; only a flag contradicts it.
    if let Some(flag) = cli
        .tls
        .filter(|t| parsed.implicit_tls && *t != TlsMode::Implicit)
    {
        return Err(Error::usage(format!(
            "{server} is an smtps:// URL (implicit TLS) but --tls {} asks for something else",
            clap::ValueEnum::to_possible_value(&flag)
                .map(|v| v.get_name().to_string())
                .unwrap_or_default()
        )));
    }
    let explicit_tls = if parsed.implicit_tls {
        Some(TlsMode::Implicit)
    } else {
        selected.merged.tls
    };
    // Likewise a port in the URL beats a configured `port`, and --port
    // beats both.
    let port = cli.port.or(parsed.port).or(selected.account.port);
    let tls_explicit = explicit_tls.is_some();
    let tls = explicit_tls.unwrap_or(if port == Some(465) {
        TlsMode::Implicit
    } else if is_loopback(&parsed.host) {
        TlsMode::Opportunistic
    } else {
        TlsMode::Starttls
    });
    let port = port.unwrap_or(if tls == TlsMode::Implicit { 465 } else { 587 });
    let endpoint = Endpoint {
        host: parsed.host,
        port,
    };
    Ok(Server {
        endpoint,
        tls,
        tls_explicit,
    })
}

/// This machine's name for EHLO and Received lines.
pub(crate) fn local_hostname() -> String {
    checked_hostname().0
}

/// gethostname(), or `localhost` when that is no name EHLO may carry
/// (a container's `my_box`, a name with spaces or 8-bit octets), with a
/// note saying so: some servers refuse such an EHLO, and a Received line
/// must not carry it either.
fn checked_hostname() -> (String, Option<String>) {
    let raw = gethostname::gethostname();
    let name = raw.to_string_lossy();
    if is_ehlo_name(&name) {
        return (name.into_owned(), None);
    }
    let note = format!(
        "this machine's name {name:?} is not a domain name; saying EHLO localhost (set helo to change it)"
    );
    ("localhost".to_string(), Some(note))
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// A --server value: HOST, HOST:PORT, `[IPv6]:PORT`, smtp://… or smtps://….
#[derive(Debug, PartialEq, Eq)]
struct ServerSpec {
    host: String,
    port: Option<u16>,
    implicit_tls: bool,
}

impl ServerSpec {
    fn parse(text: &str) -> Result<ServerSpec> {
        let bad = |why: &str| -> Result<ServerSpec> {
            Err(Error::usage(format!("invalid server {text:?}: {why}"))
                .hint("write HOST, HOST:PORT, smtp://HOST:PORT or smtps://HOST:PORT"))
        };
        let (rest, implicit_tls) = if let Some(rest) = strip_scheme(text, "smtps://") {
            (rest, true)
        } else if let Some(rest) = strip_scheme(text, "smtp://") {
            (rest, false)
        } else if text.contains("://") {
            return bad("the scheme must be smtp:// or smtps://");
        } else {
            (text, false)
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '@', '?', ' ']) {
            return bad("only a host and a port are allowed");
        }
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let Some((host, after)) = v6.split_once(']') else {
                return bad("missing ']'");
            };
            match after.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None if after.is_empty() => (host, None),
                None => return bad("unexpected text after ']'"),
            }
        } else if rest.matches(':').count() > 1 {
            (rest, None) // a bare IPv6 address
        } else {
            match rest.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (rest, None),
            }
        };
        if host.is_empty() {
            return bad("the host is empty");
        }
        let port = match port {
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 => Some(n),
                _ => return bad("the port must be a number from 1 to 65535"),
            },
            None => None,
        };
        Ok(ServerSpec {
            host: host.to_string(),
            port,
            implicit_tls,
        })
    }
}

fn strip_scheme<'a>(text: &'a str, scheme: &str) -> Option<&'a str> {
    let head = text.get(..scheme.len())?;
    head.eq_ignore_ascii_case(scheme)
        .then(|| &text[scheme.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::Exit;

    fn spec(host: &str, port: Option<u16>, implicit_tls: bool) -> ServerSpec {
        ServerSpec {
            host: host.into(),
            port,
            implicit_tls,
        }
    }

    #[test]
    fn server_forms() {
        assert_eq!(
            ServerSpec::parse("mx.example").unwrap(),
            spec("mx.example", None, false)
        );
        assert_eq!(
            ServerSpec::parse("mx.example:25").unwrap(),
            spec("mx.example", Some(25), false)
        );
        assert_eq!(
            ServerSpec::parse("smtps://mx.example").unwrap(),
            spec("mx.example", None, true)
        );
        assert_eq!(
            ServerSpec::parse("SMTP://mx.example:2525/").unwrap(),
            spec("mx.example", Some(2525), false)
        );
        assert_eq!(
            ServerSpec::parse("[::1]:2525").unwrap(),
            spec("::1", Some(2525), false)
        );
        assert_eq!(ServerSpec::parse("::1").unwrap(), spec("::1", None, false));
    }

    #[test]
    fn an_smtps_url_wins_over_a_configured_tls_but_not_over_the_flag() {
        let account = Account {
            tls: Some(TlsMode::Starttls),
            ..Account::default()
        };
        let target = |args: &[&str]| {
            let cli = crate::cli::args::parse_without_environment(args);
            let selected = Selected::new(&cli, None, account.clone());
            server_target("smtps://mx.example", &cli, &selected)
        };
        let server = target(&[]).unwrap();
        assert_eq!((server.tls, server.endpoint.port), (TlsMode::Implicit, 465));
        let err = target(&["--tls", "starttls"]).unwrap_err();
        assert_eq!(err.exit, Exit::Usage);
        assert!(err.message.contains("--tls starttls"), "{err}");
    }

    /// An error about TLS names the user's choice only when there was
    /// one: a port's or a host's default is nobody's doing.
    #[test]
    fn the_tls_mode_is_explicit_only_when_chosen() {
        let target = |server: &str, account: Account, args: &[&str]| {
            let cli = crate::cli::args::parse_without_environment(args);
            let selected = Selected::new(&cli, None, account);
            let server = server_target(server, &cli, &selected).unwrap();
            (server.tls, server.tls_explicit)
        };
        let none = Account::default;
        assert_eq!(
            target("mx.example", none(), &[]),
            (TlsMode::Starttls, false)
        );
        assert_eq!(
            target("mx.example:465", none(), &[]),
            (TlsMode::Implicit, false)
        );
        assert_eq!(
            target("localhost", none(), &[]),
            (TlsMode::Opportunistic, false)
        );
        assert_eq!(
            target("mx.example", none(), &["--tls", "starttls"]),
            (TlsMode::Starttls, true)
        );
        let configured = Account {
            tls: Some(TlsMode::Starttls),
            ..Account::default()
        };
        assert_eq!(
            target("mx.example", configured, &[]),
            (TlsMode::Starttls, true)
        );
        assert_eq!(
            target("smtps://mx.example", none(), &[]),
            (TlsMode::Implicit, true)
        );
    }

    #[test]
    fn bad_servers_are_usage_errors() {
        for bad in ["http://x", "x:0", "x:port", "smtp://user@x", "", "[::1"] {
            let err = ServerSpec::parse(bad).unwrap_err();
            assert_eq!(err.exit, Exit::Usage, "{bad}");
        }
    }

    #[test]
    fn loopback_names() {
        assert!(is_loopback("localhost"));
        assert!(is_loopback("127.0.0.5"));
        assert!(is_loopback("::1"));
        assert!(!is_loopback("mail.example.com"));
    }

    #[test]
    fn a_login_without_a_server_never_reaches_an_exchanger() {
        let envelope = Envelope {
            sender: "a@x.example".into(),
            recipients: vec!["b@y.example".into()],
            ..Envelope::default()
        };
        let settings = |args: &[&str], account: &Account, warnings: &mut Vec<String>| {
            let cli = crate::cli::args::parse_without_environment(args);
            let selected = Selected::new(&cli, None, account.clone());
            transport_settings(&cli, &selected, &envelope, warnings, &mut Vec::new())
        };
        let none = Account::default();
        let err = settings(&["--user", "me"], &none, &mut Vec::new()).unwrap_err();
        assert_eq!(err.exit, Exit::Usage);
        assert!(err.message.contains("--user needs a server"), "{err}");
        let with_login = Account {
            user: Some("me".into()),
            password_cmd: Some("echo pw".into()),
            ..Account::default()
        };
        let err = settings(&[], &with_login, &mut Vec::new()).unwrap_err();
        assert_eq!(err.exit, Exit::Config);
        // Under --mx the account's login is ignored, and said to be.
        let mut warnings = Vec::new();
        let (settings, login) = settings(&["--mx"], &with_login, &mut warnings).unwrap();
        assert!(matches!(settings.route, Route::Mx { .. }));
        assert!(login.is_none() && settings.login.is_none());
        assert_eq!(warnings.len(), 1, "{warnings:?}");
    }

    #[test]
    fn an_accounts_pin_is_not_applied_to_exchangers() {
        let account = Account {
            tls_fingerprint: Some(["AB"; 32].join(":")),
            ..Account::default()
        };
        let envelope = Envelope {
            sender: "a@example.com".into(),
            recipients: vec!["b@example.org".into()],
            ..Envelope::default()
        };
        let verify_for = |args: &[&str]| {
            let cli = crate::cli::args::parse_without_environment(args);
            let selected = Selected::new(&cli, None, account.clone());
            let (settings, _) =
                transport_settings(&cli, &selected, &envelope, &mut vec![], &mut vec![]).unwrap();
            settings.verify
        };
        assert_eq!(verify_for(&[]), Verify::Full);
        assert!(matches!(
            verify_for(&["--server", "smtp.example.com"]),
            Verify::Pinned(_)
        ));
        let flag = ["CD"; 32].join(":");
        assert!(matches!(
            verify_for(&["--tls-fingerprint", &flag]),
            Verify::Pinned(_)
        ));
    }
}
