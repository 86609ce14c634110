//! Direct-to-MX resolution (`postie::mx`) against a real nameserver on
//! 127.0.0.1 serving a test zone: MX order, the implicit MX, null MX,
//! NXDOMAIN, address families, and nameservers that fail.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::common::dns::DnsServer;
use postie::exit::{Exit, Result};
use postie::smtp::mx::{exchangers, Exchanger, Family, Nameserver, Resolver};

const ZONE: &[(&str, &str, &str)] = &[
    // Listed out of order: the answer must come back sorted.
    ("good.test", "MX", "20 mx2.good.test."),
    ("good.test", "MX", "10 mx1.good.test."),
    ("mx1.good.test", "A", "127.0.0.1"),
    ("mx1.good.test", "AAAA", "::1"),
    ("mx2.good.test", "A", "127.0.0.1"),
    // No MX: the domain itself is the exchanger.
    ("nomx.test", "A", "127.0.0.1"),
    ("nullmx.test", "MX", "0 ."),
    // One exchanger exists (it has an MX of its own) but has no address;
    // the other does not exist at all.
    ("unreachable.test", "MX", "10 noaddr.unreachable.test."),
    ("unreachable.test", "MX", "20 missing.unreachable.test."),
    ("noaddr.unreachable.test", "MX", "10 elsewhere.test."),
    // Same preference twice: DNS order is kept.
    ("tie.test", "MX", "5 mx1.good.test."),
    ("tie.test", "MX", "5 mx2.good.test."),
    // An exchanger without an address is skipped, not fatal.
    ("partial.test", "MX", "10 noaddr.unreachable.test."),
    ("partial.test", "MX", "20 mx2.good.test."),
];

const TIMEOUT: Duration = Duration::from_secs(2);

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

/// postie runs a current-thread runtime; so do these lookups.
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

fn lookup_at(server: &DnsServer, domain: &str, family: Family) -> Result<Vec<Exchanger>> {
    let resolver = Resolver::new(&Nameserver::At(server.addr), TIMEOUT).unwrap();
    block_on(exchangers(&resolver, domain, family))
}

fn summary(exchangers: &[Exchanger]) -> Vec<(&str, u16, Vec<IpAddr>)> {
    exchangers
        .iter()
        .map(|e| (e.name.as_str(), e.preference, e.addresses.clone()))
        .collect()
}

#[test]
fn exchangers_in_preference_order_with_addresses() {
    let server = DnsServer::start(ZONE);
    let found = lookup_at(&server, "good.test", Family::Any).unwrap();
    assert_eq!(
        summary(&found),
        vec![
            ("mx1.good.test", 10, vec![ip("127.0.0.1"), ip("::1")]),
            ("mx2.good.test", 20, vec![ip("127.0.0.1")]),
        ]
    );
}

#[test]
fn domain_case_and_final_dot_do_not_matter() {
    let server = DnsServer::start(ZONE);
    let found = lookup_at(&server, "GOOD.Test.", Family::Any).unwrap();
    let names: Vec<&str> = found.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["mx1.good.test", "mx2.good.test"]);
}

#[test]
fn equal_preferences_keep_dns_order() {
    let server = DnsServer::start(ZONE);
    let found = lookup_at(&server, "tie.test", Family::Any).unwrap();
    let names: Vec<(&str, u16)> = found
        .iter()
        .map(|e| (e.name.as_str(), e.preference))
        .collect();
    assert_eq!(names, [("mx1.good.test", 5), ("mx2.good.test", 5)]);
}

#[test]
fn no_mx_falls_back_to_the_domain_itself() {
    let server = DnsServer::start(ZONE);
    let found = lookup_at(&server, "nomx.test", Family::Any).unwrap();
    assert_eq!(
        summary(&found),
        vec![("nomx.test", 0, vec![ip("127.0.0.1")])]
    );
}

#[test]
fn no_mx_and_no_address_is_no_host() {
    let server = DnsServer::start(ZONE);
    // mx1.good.test has no MX either, but an AAAA: the implicit MX works.
    let found = lookup_at(&server, "mx1.good.test", Family::V6).unwrap();
    assert_eq!(summary(&found), vec![("mx1.good.test", 0, vec![ip("::1")])]);
    let err = lookup_at(&server, "nomx.test", Family::V6).unwrap_err();
    assert_eq!(err.exit, Exit::NoHost, "{err}");
    assert_eq!(
        err.message, "nomx.test has no MX record and no AAAA record",
        "{err}"
    );
}

#[test]
fn null_mx_is_a_permanent_refusal() {
    let server = DnsServer::start(ZONE);
    let err = lookup_at(&server, "nullmx.test", Family::Any).unwrap_err();
    assert_eq!(err.exit, Exit::NoUser, "{err}");
    assert_eq!(
        err.message,
        "nullmx.test publishes a null MX (RFC 7505): it accepts no mail"
    );
    assert_eq!(err.to_string().lines().count(), 1);
}

#[test]
fn nonexistent_domain_is_no_host() {
    let server = DnsServer::start(ZONE);
    let err = lookup_at(&server, "nonexistent.test", Family::Any).unwrap_err();
    assert_eq!(err.exit, Exit::NoHost, "{err}");
    assert_eq!(err.message, "domain nonexistent.test does not exist");
}

#[test]
fn exchangers_without_addresses_are_no_host() {
    let server = DnsServer::start(ZONE);
    let err = lookup_at(&server, "unreachable.test", Family::Any).unwrap_err();
    assert_eq!(err.exit, Exit::NoHost, "{err}");
    assert_eq!(
        err.message,
        "no mail exchanger of unreachable.test has an address \
         (noaddr.unreachable.test, missing.unreachable.test)"
    );
}

#[test]
fn an_exchanger_without_address_is_skipped() {
    let server = DnsServer::start(ZONE);
    let found = lookup_at(&server, "partial.test", Family::Any).unwrap();
    assert_eq!(
        summary(&found),
        vec![("mx2.good.test", 20, vec![ip("127.0.0.1")])]
    );
}

#[test]
fn family_filters_addresses_and_exchangers() {
    let server = DnsServer::start(ZONE);
    let v4 = lookup_at(&server, "good.test", Family::V4).unwrap();
    assert_eq!(
        summary(&v4),
        vec![
            ("mx1.good.test", 10, vec![ip("127.0.0.1")]),
            ("mx2.good.test", 20, vec![ip("127.0.0.1")]),
        ]
    );
    // mx2 has no AAAA: only mx1 is left.
    let v6 = lookup_at(&server, "good.test", Family::V6).unwrap();
    assert_eq!(summary(&v6), vec![("mx1.good.test", 10, vec![ip("::1")])]);
    // No exchanger with an IPv6 address at all.
    let err = lookup_at(&server, "partial.test", Family::V6).unwrap_err();
    assert_eq!(err.exit, Exit::NoHost, "{err}");
    assert_eq!(
        err.message,
        "no mail exchanger of partial.test has an IPv6 address \
         (noaddr.unreachable.test, mx2.good.test)"
    );
    assert!(err.to_string().contains("without -6"), "{err}");
}

#[test]
fn address_literal_needs_no_dns() {
    let server = DnsServer::silent();
    let found = lookup_at(&server, "[127.0.0.1]", Family::Any).unwrap();
    assert_eq!(
        summary(&found),
        vec![("127.0.0.1", 0, vec![ip("127.0.0.1")])]
    );
    let found = lookup_at(&server, "[IPv6:::1]", Family::V6).unwrap();
    assert_eq!(summary(&found), vec![("::1", 0, vec![ip("::1")])]);
}

#[test]
fn malformed_domain_is_data_error() {
    let server = DnsServer::silent();
    for bad in ["", "exa mple.test", "a..test", "[999.1.1.1]"] {
        let err = lookup_at(&server, bad, Family::Any).unwrap_err();
        assert_eq!(err.exit, Exit::DataErr, "{bad:?}: {err}");
    }
}

#[test]
fn silent_nameserver_is_a_temporary_failure_within_the_timeout() {
    let server = DnsServer::silent();
    let timeout = Duration::from_secs(1);
    let resolver = Resolver::new(&Nameserver::At(server.addr), timeout).unwrap();
    let started = Instant::now();
    let err = block_on(exchangers(&resolver, "good.test", Family::Any)).unwrap_err();
    let took = started.elapsed();
    assert_eq!(err.exit, Exit::TempFail, "{err}");
    assert!(
        took < timeout + Duration::from_millis(500),
        "took {took:?} for a {timeout:?} timeout"
    );
    assert_eq!(
        err.message,
        format!(
            "cannot look up the MX records of good.test: no answer from nameserver {} within 1 s",
            server.addr
        )
    );
    assert!(err.to_string().contains("--resolver"), "{err}");
    assert_eq!(err.to_string().lines().count(), 1);
}

#[test]
fn servfail_is_a_temporary_failure() {
    let server = DnsServer::servfail();
    let err = lookup_at(&server, "good.test", Family::Any).unwrap_err();
    assert_eq!(err.exit, Exit::TempFail, "{err}");
    assert_eq!(
        err.message,
        format!(
            "cannot look up the MX records of good.test: nameserver {} answered SERVFAIL",
            server.addr
        )
    );
}

#[test]
fn refused_is_a_temporary_failure() {
    // The zone server refuses names outside test.
    let server = DnsServer::start(ZONE);
    let err = lookup_at(&server, "example.org", Family::Any).unwrap_err();
    assert_eq!(err.exit, Exit::TempFail, "{err}");
    assert!(err.message.ends_with("answered REFUSED"), "{err}");
}

#[test]
fn closed_port_is_a_temporary_failure() {
    // Bound then dropped. The kernel answers "port unreachable", which
    // hickory does not hear (its UDP socket is unconnected): it is a
    // timeout like a silent nameserver.
    let addr = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let resolver = Resolver::new(&Nameserver::At(addr), Duration::from_secs(1)).unwrap();
    let err = block_on(exchangers(&resolver, "nomx.test", Family::Any)).unwrap_err();
    assert_eq!(err.exit, Exit::TempFail, "{err}");
}

#[test]
fn one_resolver_serves_many_domains() {
    let server = DnsServer::start(ZONE);
    let resolver = Resolver::new(&Nameserver::At(server.addr), TIMEOUT).unwrap();
    block_on(async {
        for (domain, first) in [
            ("good.test", "mx1.good.test"),
            ("nomx.test", "nomx.test"),
            ("partial.test", "mx2.good.test"),
        ] {
            let found = exchangers(&resolver, domain, Family::Any).await.unwrap();
            assert_eq!(found[0].name, first, "{domain}");
        }
    });
}

#[test]
fn system_nameserver_builds() {
    // Only building: the network beyond 127.0.0.1 is out of bounds here.
    // A machine without /etc/resolv.conf gets a configuration error.
    match Resolver::new(&Nameserver::System, TIMEOUT) {
        Ok(_) => {}
        Err(err) => assert_eq!(err.exit, Exit::Config, "{err}"),
    }
}
