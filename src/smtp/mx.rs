//! Direct delivery: the mail exchangers of a recipient domain and their
//! addresses (RFC 5321 section 5.1).
//!
//! Without a relay, postie hands the message to each recipient domain's own
//! mail servers. Finding them takes MX records, which libc's resolver cannot
//! look up, and the lookups must obey `--timeout` and, with `--resolver`,
//! go to one chosen nameserver; so this module asks DNS itself, with
//! hickory-resolver. It only finds where to connect: connecting and
//! speaking SMTP stay in `session` and `route`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError, NoRecords};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{Name, RData, RecordType};
use hickory_resolver::TokioResolver;

use crate::exit::{io_reason, Error, Exit, Result};

/// Where to send DNS queries: the system's resolv.conf, or one server
/// (`--resolver IP[:PORT]`, port 53 by default).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Nameserver {
    System,
    At(SocketAddr),
}

impl Nameserver {
    /// Parses `--resolver`: `192.0.2.1`, `192.0.2.1:5353`, `::1`, `[::1]`
    /// or `[::1]:5353`. A host name is refused: looking up the address of
    /// the nameserver would need a nameserver.
    pub(crate) fn parse(text: &str) -> Result<Nameserver> {
        let text = text.trim();
        let address = if let Ok(address) = text.parse::<SocketAddr>() {
            address
        } else if let Ok(ip) = text.parse::<IpAddr>() {
            SocketAddr::new(ip, 53)
        } else if let Some(ip) = text
            .strip_prefix('[')
            .and_then(|rest| rest.strip_suffix(']'))
            .and_then(|inner| inner.parse::<Ipv6Addr>().ok())
        {
            SocketAddr::new(IpAddr::V6(ip), 53)
        } else {
            return Err(Error::usage(format!(
                "--resolver {text:?} is not an IP address or IP:PORT"
            ))
            .hint("give the nameserver's address, e.g. --resolver 192.0.2.53 or --resolver [2001:db8::53]:5353"));
        };
        if address.port() == 0 {
            return Err(Error::usage(format!("--resolver {text:?}: port 0")));
        }
        Ok(Nameserver::At(address))
    }
}

/// Which address family to deliver over (`-4` / `-6`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    Any,
    V4,
    V6,
}

impl Family {
    /// Whether -4 / -6 let postie use this address.
    pub(crate) fn allows(self, ip: IpAddr) -> bool {
        match self {
            Family::Any => true,
            Family::V4 => ip.is_ipv4(),
            Family::V6 => ip.is_ipv6(),
        }
    }
}

/// One exchanger, in the order to try.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exchanger {
    /// The host name without the trailing dot (ASCII, lower case), for TLS
    /// SNI and certificate verification.
    pub name: String,
    pub preference: u16,
    /// IPv4 before IPv6 with [`Family::Any`]: receivers are stricter with
    /// senders on IPv6 (reverse DNS, reputation), and a sending host's
    /// IPv6 is the less likely to be set up for mail.
    pub addresses: Vec<IpAddr>,
}

/// A DNS resolver set up for postie's lookups. Use it on the tokio
/// runtime it was first used on: its connections live there.
pub struct Resolver {
    inner: TokioResolver,
    timeout: Duration,
    /// Names the nameserver in errors: "nameserver 127.0.0.1:5353", or
    /// the system's.
    nameserver: String,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver")
            .field("nameserver", &self.nameserver)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Resolver {
    /// `timeout` bounds each lookup (one name, one type) as a whole.
    /// Nothing is sent until the first lookup.
    pub fn new(nameserver: &Nameserver, timeout: Duration) -> Result<Resolver> {
        let (servers, description) = match nameserver {
            Nameserver::System => (
                system_nameservers()?,
                "the nameservers of /etc/resolv.conf".to_string(),
            ),
            Nameserver::At(address) => {
                let mut udp = ConnectionConfig::udp();
                udp.port = address.port();
                // TCP for answers too large for UDP.
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = address.port();
                let server = NameServerConfig::new(address.ip(), true, vec![udp, tcp]);
                (vec![server], format!("nameserver {address}"))
            }
        };
        // Every query is for a fully qualified name, so resolv.conf's
        // search list and domain would never apply: leave them out.
        let config = ResolverConfig::from_parts(None, Vec::new(), servers);
        let mut options = ResolverOpts::default();
        options.timeout = timeout;
        // hickory's `attempts` are whole extra rounds, each up to `timeout`;
        // the UDP client already resends within a round, and a second
        // round would double the time a dead nameserver costs.
        options.attempts = 0;
        // Mail routing is DNS only (as Postfix's smtp_host_lookup = dns):
        // an /etc/hosts entry must not redirect another domain's mail.
        options.use_hosts_file = ResolveHosts::Never;
        let inner = TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
            .with_options(options)
            .build()
            .map_err(|err| {
                Error::new(
                    Exit::Software,
                    format!("cannot set up the DNS resolver: {}", net_reason(&err)),
                )
            })?;
        Ok(Resolver {
            inner,
            timeout,
            nameserver: description,
        })
    }

    /// The records of `rtype` at `name`; `Ok` is never empty.
    async fn query(&self, name: &Name, rtype: RecordType) -> Result<Vec<RData>, Failure> {
        // hickory's own limit holds per round, and a truncated UDP answer
        // starts a second round over TCP; this keeps the promise.
        let answer = tokio::time::timeout(self.timeout, self.inner.lookup(name.clone(), rtype))
            .await
            .map_err(|_| Failure::Timeout(self.timed_out()))?;
        match answer {
            Ok(lookup) => {
                // CNAMEs on the way are in the answer too.
                let records: Vec<RData> = lookup
                    .answers()
                    .iter()
                    .filter(|record| record.record_type() == rtype)
                    .map(|record| record.data.clone())
                    .collect();
                if records.is_empty() {
                    Err(Failure::NoRecords)
                } else {
                    Ok(records)
                }
            }
            Err(err) => Err(self.failure(&err)),
        }
    }

    fn failure(&self, err: &NetError) -> Failure {
        // NXDOMAIN and "exists, but not this type" both come back as
        // NoRecordsFound errors, told apart only by the response code.
        if let NetError::Dns(DnsError::NoRecordsFound(NoRecords { response_code, .. })) = err {
            match *response_code {
                ResponseCode::NXDomain => return Failure::NxDomain,
                ResponseCode::NoError => return Failure::NoRecords,
                _ => {}
            }
        }
        if let NetError::Timeout = err {
            return Failure::Timeout(self.timed_out());
        }
        Failure::Temporary(match err {
            NetError::Dns(DnsError::ResponseCode(code))
            | NetError::Dns(DnsError::NoRecordsFound(NoRecords {
                response_code: code,
                ..
            })) => format!("{} answered {}", self.nameserver, rcode_name(*code)),
            NetError::Io(io) => format!("{}: {}", self.nameserver, io_reason(io)),
            other => format!("{}: {}", self.nameserver, net_reason(other)),
        })
    }

    fn timed_out(&self) -> String {
        format!(
            "no answer from {} within {}",
            self.nameserver,
            seconds(self.timeout)
        )
    }

    /// The addresses of `name` in the wanted family, IPv4 first.
    async fn addresses(&self, name: &Name, family: Family) -> Result<Vec<IpAddr>, Failure> {
        let v4 = async {
            match family {
                Family::V6 => Err(Failure::NoRecords),
                _ => self.query(name, RecordType::A).await,
            }
        };
        let v6 = async {
            match family {
                Family::V4 => Err(Failure::NoRecords),
                _ => self.query(name, RecordType::AAAA).await,
            }
        };
        let (v4, v6) = futures_util::future::join(v4, v6).await;
        let mut addresses = Vec::new();
        let mut failures = Vec::new();
        for answer in [v4, v6] {
            match answer {
                Ok(records) => addresses.extend(records.iter().filter_map(|rdata| match rdata {
                    RData::A(a) => Some(IpAddr::V4(a.0)),
                    RData::AAAA(aaaa) => Some(IpAddr::V6(aaaa.0)),
                    _ => None,
                })),
                Err(failure) => failures.push(failure),
            }
        }
        if !addresses.is_empty() {
            // One family is enough to deliver; a failed lookup of the
            // other only loses a fallback.
            return Ok(addresses);
        }
        // Report the most telling failure: a temporary one means the
        // answer may yet exist.
        let rank = |failure: &Failure| match failure {
            Failure::NoRecords => 0,
            Failure::NxDomain => 1,
            Failure::Temporary(_) => 2,
            Failure::Timeout(_) => 3,
        };
        Err(failures
            .into_iter()
            .max_by_key(rank)
            .unwrap_or(Failure::NoRecords))
    }
}

/// Why a lookup found nothing.
#[derive(Debug)]
enum Failure {
    /// NXDOMAIN: the name does not exist.
    NxDomain,
    /// The name exists but has no record of the type asked for.
    NoRecords,
    /// No answer in time; the string says so, naming the nameserver.
    Timeout(String),
    /// An answer that is no answer (SERVFAIL, REFUSED) or a network error;
    /// the string says which, naming the nameserver.
    Temporary(String),
}

/// Looks up the exchangers of `domain` in preference order (equal
/// preferences keep the order DNS gave).
///
/// Exchangers without an address of the wanted family are left out; an
/// address literal (`[192.0.2.1]`, `[IPv6:2001:db8::1]`) is its own
/// exchanger, without DNS. Takes at most two timeouts: the MX lookup,
/// then every address lookup at once.
pub async fn exchangers(
    resolver: &Resolver,
    domain: &str,
    family: Family,
) -> Result<Vec<Exchanger>> {
    if let Some(ip) = address_literal(domain)? {
        return literal_exchanger(domain, ip, family);
    }
    let name = dns_name(domain)?;
    let shown = host_name(&name);
    let mut records = match resolver.query(&name, RecordType::MX).await {
        Ok(records) => records
            .into_iter()
            .filter_map(|rdata| match rdata {
                RData::MX(mx) => Some((mx.preference, mx.exchange)),
                _ => None,
            })
            .collect::<Vec<_>>(),
        // RFC 5321 5.1: no MX records, so the domain itself is the
        // exchanger, at preference 0.
        Err(Failure::NoRecords) => return implicit_exchanger(resolver, &name, family).await,
        Err(Failure::NxDomain) => return Err(no_such_domain(&shown)),
        Err(failure) => {
            return Err(temporary(
                format!("cannot look up the MX records of {shown}"),
                failure,
            ))
        }
    };
    if records.iter().all(|(_, exchange)| exchange.is_root()) {
        return Err(Error::new(
            Exit::NoUser,
            format!("{shown} publishes a null MX (RFC 7505): it accepts no mail"),
        )
        .hint("check the recipient address"));
    }
    // A "." beside real exchangers breaks RFC 7505; the real ones may
    // still take the mail, and there is no host "." to connect to.
    records.retain(|(_, exchange)| !exchange.is_root());
    // Stable: equal preferences keep their DNS order.
    records.sort_by_key(|(preference, _)| *preference);
    // A host listed twice is tried once, at its best preference.
    let mut seen: Vec<String> = Vec::new();
    records.retain(|(_, exchange)| {
        let name = host_name(exchange);
        let first = !seen.contains(&name);
        seen.push(name);
        first
    });

    // All at once, so that slow DNS costs one timeout, not one per host.
    let lookups = records
        .iter()
        .map(|(_, exchange)| resolver.addresses(exchange, family));
    let answers = futures_util::future::join_all(lookups).await;

    let mut exchangers = Vec::new();
    let mut missing = Vec::new();
    let mut temporary_failure = None;
    for ((preference, exchange), answer) in records.iter().zip(answers) {
        let name = host_name(exchange);
        match answer {
            Ok(addresses) => exchangers.push(Exchanger {
                name,
                preference: *preference,
                addresses,
            }),
            Err(Failure::NoRecords | Failure::NxDomain) => missing.push(name),
            Err(failure) => {
                temporary_failure.get_or_insert((name, failure));
            }
        }
    }
    if !exchangers.is_empty() {
        return Ok(exchangers);
    }
    if let Some((name, failure)) = temporary_failure {
        return Err(temporary(
            format!("cannot look up the address of any mail exchanger of {shown} ({name})"),
            failure,
        ));
    }
    Err(Error::new(
        Exit::NoHost,
        format!(
            "no mail exchanger of {shown} has {} ({})",
            family_address(family),
            missing.join(", ")
        ),
    )
    .hint(family_hint(
        family,
        "the domain's DNS is broken; its mail cannot be delivered",
    )))
}

async fn implicit_exchanger(
    resolver: &Resolver,
    name: &Name,
    family: Family,
) -> Result<Vec<Exchanger>> {
    let shown = host_name(name);
    match resolver.addresses(name, family).await {
        Ok(addresses) => Ok(vec![Exchanger {
            name: shown,
            preference: 0,
            addresses,
        }]),
        Err(Failure::NoRecords) => Err(Error::new(
            Exit::NoHost,
            format!(
                "{shown} has no MX record and no {} record",
                match family {
                    Family::Any => "A or AAAA",
                    Family::V4 => "A",
                    Family::V6 => "AAAA",
                }
            ),
        )
        .hint(family_hint(family, "check the recipient's domain"))),
        Err(Failure::NxDomain) => Err(no_such_domain(&shown)),
        Err(failure) => Err(temporary(
            format!("cannot look up the address of {shown}"),
            failure,
        )),
    }
}

fn no_such_domain(domain: &str) -> Error {
    Error::new(Exit::NoHost, format!("domain {domain} does not exist"))
        .hint("check the recipient's domain for a typo")
}

/// `what` failed for a temporary `failure`: exit 75, "what: why; hint".
fn temporary(what: String, failure: Failure) -> Error {
    let (reason, hint) = match failure {
        Failure::Timeout(reason) => (
            reason,
            "the nameserver is slow or unreachable; try again later, raise --timeout or pick another --resolver",
        ),
        Failure::Temporary(reason) => (
            reason,
            "the nameserver cannot answer now; try again later or pick another --resolver",
        ),
        // Callers handle these before; a plain wording keeps this total.
        Failure::NxDomain => ("no such domain".to_string(), "try again later"),
        Failure::NoRecords => ("no records".to_string(), "try again later"),
    };
    Error::new(Exit::TempFail, format!("{what}: {reason}")).hint(hint)
}

/// With -4 or -6, the other family might have done.
fn family_hint(family: Family, otherwise: &str) -> String {
    match family {
        Family::Any => otherwise.to_string(),
        Family::V4 => "without -4 an IPv6 address would do".to_string(),
        Family::V6 => "without -6 an IPv4 address would do".to_string(),
    }
}

fn family_address(family: Family) -> &'static str {
    match family {
        Family::Any => "an address",
        Family::V4 => "an IPv4 address",
        Family::V6 => "an IPv6 address",
    }
}

/// `[192.0.2.1]` or `[IPv6:2001:db8::1]` (RFC 5321 4.1.3), else `None`.
fn address_literal(domain: &str) -> Result<Option<IpAddr>> {
    let Some(inner) = domain
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
    else {
        return Ok(None);
    };
    let ip = match inner.get(..5) {
        Some(tag) if tag.eq_ignore_ascii_case("ipv6:") => {
            inner[5..].parse::<Ipv6Addr>().ok().map(IpAddr::V6)
        }
        _ => inner.parse::<Ipv4Addr>().ok().map(IpAddr::V4),
    };
    ip.map(Some)
        .ok_or_else(|| Error::data(format!("malformed address literal {domain}")))
}

fn literal_exchanger(domain: &str, ip: IpAddr, family: Family) -> Result<Vec<Exchanger>> {
    if !family.allows(ip) {
        return Err(Error::new(
            Exit::NoHost,
            format!("{domain} is not {}", family_address(family)),
        ));
    }
    Ok(vec![Exchanger {
        name: ip.to_string(),
        preference: 0,
        addresses: vec![ip],
    }])
}

/// The recipient domain as a fully qualified DNS name. A non-ASCII domain
/// becomes its IDNA (xn--) form.
fn dns_name(domain: &str) -> Result<Name> {
    let bare = domain.strip_suffix('.').unwrap_or(domain);
    let malformed = |why: String| Error::data(format!("recipient domain {domain:?} {why}"));
    if bare.is_empty() {
        return Err(malformed("is empty".to_string()));
    }
    let name = if bare.is_ascii() {
        // from_ascii takes any byte and zone-file escapes; a mail domain
        // is letters, digits, hyphens and dots (underscores seen in the
        // wild), with no empty label.
        let plain = bare
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
        if !plain || bare.split('.').any(str::is_empty) {
            return Err(malformed("is not a valid domain name".to_string()));
        }
        Name::from_ascii(format!("{bare}."))
    } else {
        Name::from_utf8(format!("{bare}."))
    };
    name.map_err(|err| malformed(format!("is not a valid domain name: {err}")))
}

/// "mx1.example.com": ASCII, lower case, no trailing dot.
fn host_name(name: &Name) -> String {
    let text = name.to_ascii().to_ascii_lowercase();
    match text.strip_suffix('.') {
        Some(bare) if !bare.is_empty() => bare.to_string(),
        _ => text,
    }
}

/// The nameservers from /etc/resolv.conf (the registry on Windows).
fn system_nameservers() -> Result<Vec<NameServerConfig>> {
    let (config, _options) = hickory_resolver::system_conf::read_system_conf().map_err(|err| {
        Error::config(format!(
            "cannot read the system's DNS configuration (/etc/resolv.conf): {}",
            net_reason(&err)
        ))
        .hint("give a nameserver with --resolver IP")
    })?;
    Ok(config.name_servers().to_vec())
}

fn net_reason(err: &NetError) -> String {
    match err {
        NetError::Io(io) => io_reason(io),
        other => other.to_string(),
    }
}

/// The mnemonic from RFC 1035 and its successors, as dig prints it.
fn rcode_name(code: ResponseCode) -> String {
    match code {
        ResponseCode::ServFail => "SERVFAIL".to_string(),
        ResponseCode::Refused => "REFUSED".to_string(),
        ResponseCode::FormErr => "FORMERR".to_string(),
        ResponseCode::NotImp => "NOTIMP".to_string(),
        ResponseCode::NXDomain => "NXDOMAIN".to_string(),
        ResponseCode::NotAuth => "NOTAUTH".to_string(),
        other => format!("response code {}", u16::from(other)),
    }
}

/// "2 s", or "1.5 s" for a fraction.
fn seconds(duration: Duration) -> String {
    if duration.subsec_millis() == 0 {
        format!("{} s", duration.as_secs())
    } else {
        format!("{:.1} s", duration.as_secs_f64())
    }
}

/// Groups recipient addresses by domain (case-insensitive), keeping the
/// first-seen order of domains and of recipients within each. A recipient
/// without `@` lands under the empty domain, which [`exchangers`] refuses.
pub(crate) fn by_domain(recipients: &[String]) -> Vec<(String, Vec<String>)> {
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for recipient in recipients {
        // The last @: a quoted local part may hold one ("a@b"@example.com).
        let domain = recipient
            .rsplit_once('@')
            .map(|(_, domain)| domain.to_lowercase())
            .unwrap_or_default();
        match groups.iter_mut().find(|(known, _)| *known == domain) {
            Some((_, members)) => members.push(recipient.clone()),
            None => groups.push((domain, vec![recipient.clone()])),
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_nameserver_forms() {
        let at = |text: &str| Nameserver::At(text.parse().unwrap());
        assert_eq!(Nameserver::parse("127.0.0.1").unwrap(), at("127.0.0.1:53"));
        assert_eq!(
            Nameserver::parse("127.0.0.1:5353").unwrap(),
            at("127.0.0.1:5353")
        );
        assert_eq!(Nameserver::parse("::1").unwrap(), at("[::1]:53"));
        assert_eq!(Nameserver::parse("[::1]").unwrap(), at("[::1]:53"));
        assert_eq!(Nameserver::parse("[::1]:5353").unwrap(), at("[::1]:5353"));
    }

    #[test]
    fn parse_nameserver_refuses_names_and_junk() {
        for bad in [
            "",
            "dns.example",
            "127.0.0.1:",
            "127.0.0.1:99999",
            "::1:53x",
            "1.2.3.4:0",
            "localhost",
            "127.0.0.1:abc",
            "300.0.0.1",
            "[::1",
        ] {
            let err = Nameserver::parse(bad).unwrap_err();
            assert_eq!(err.exit, Exit::Usage, "{bad:?}: {err}");
        }
    }

    #[test]
    fn dns_names_are_fully_qualified() {
        assert_eq!(dns_name("Example.COM").unwrap().to_ascii(), "Example.COM.");
        assert_eq!(dns_name("example.com.").unwrap().to_ascii(), "example.com.");
        assert_eq!(host_name(&dns_name("Example.COM").unwrap()), "example.com");
        assert_eq!(
            host_name(&dns_name("bücher.example").unwrap()),
            "xn--bcher-kva.example"
        );
        for bad in ["", ".", "a..b", "exa mple.com", "a\\.b", "a\"b"] {
            assert_eq!(dns_name(bad).unwrap_err().exit, Exit::DataErr, "{bad:?}");
        }
    }

    #[test]
    fn address_literals() {
        assert_eq!(
            address_literal("[192.0.2.1]").unwrap(),
            Some("192.0.2.1".parse().unwrap())
        );
        assert_eq!(
            address_literal("[IPv6:2001:db8::1]").unwrap(),
            Some("2001:db8::1".parse().unwrap())
        );
        assert_eq!(address_literal("example.com").unwrap(), None);
        assert_eq!(
            address_literal("[2001:db8::1]").unwrap_err().exit,
            Exit::DataErr
        );
        let only_v4 = literal_exchanger("[192.0.2.1]", "192.0.2.1".parse().unwrap(), Family::V6);
        assert_eq!(only_v4.unwrap_err().exit, Exit::NoHost);
    }

    #[test]
    fn groups_by_domain_in_first_seen_order() {
        let recipients: Vec<String> = [
            "a@B.example",
            "x@c.example",
            "b@b.EXAMPLE",
            "\"odd@local\"@c.example",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            by_domain(&recipients),
            vec![
                (
                    "b.example".to_string(),
                    vec!["a@B.example".to_string(), "b@b.EXAMPLE".to_string()]
                ),
                (
                    "c.example".to_string(),
                    vec![
                        "x@c.example".to_string(),
                        "\"odd@local\"@c.example".to_string()
                    ]
                ),
            ]
        );
        assert!(by_domain(&[]).is_empty());
    }

    #[test]
    fn seconds_read_naturally() {
        assert_eq!(seconds(Duration::from_secs(2)), "2 s");
        assert_eq!(seconds(Duration::from_millis(1500)), "1.5 s");
    }
}
