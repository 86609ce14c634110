//! Test nameservers for direct-to-MX delivery (`postie::mx`).
//!
//! [`DnsServer::start`] runs a real authoritative DNS server, hickory-server
//! with an in-memory zone for `test.`, on 127.0.0.1: UDP and TCP on the same
//! ephemeral port, on its own thread with its own tokio runtime, so a test
//! on any runtime (or none) can query it. Names in the zone answer their
//! records; a name that exists with other types answers NOERROR with no
//! records; a name under `test.` that is not in the zone answers NXDOMAIN;
//! a name outside `test.` answers REFUSED.
//!
//! [`DnsServer::silent`] and [`DnsServer::servfail`] are the two ways a
//! nameserver fails: it never answers, or it answers SERVFAIL to everything.
//!
//! Dropping a `DnsServer` stops it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, UdpSocket};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use hickory_server::net::runtime::TokioRuntimeProvider;
use hickory_server::proto::rr::rdata::{A, AAAA, CNAME, MX, SOA, TXT};
use hickory_server::proto::rr::{LowerName, Name, RData, Record};
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneType};
use hickory_server::Server;

/// The zone every [`DnsServer`] is authoritative for.
pub const ORIGIN: &str = "test.";

/// Time to live of every record; the resolver's cache never matters, as
/// each test builds its own resolver.
const TTL: u32 = 300;

/// A running test nameserver; stops when dropped.
pub struct DnsServer {
    /// Where to send queries (UDP, and TCP for the zone server).
    pub addr: SocketAddr,
    stop: Option<Box<dyn FnOnce() + Send>>,
}

impl DnsServer {
    /// Serves `zone`: `(name, type, rdata)` with type `MX`, `A`, `AAAA`,
    /// `CNAME` or `TXT` (the whole text, split as needed), e.g. `("good.test", "MX", "10 mx1.good.test.")`,
    /// `("mx1.good.test", "A", "127.0.0.1")`, `("nullmx.test", "MX", "0 .")`.
    /// Names are under `test.`, with or without the final dot. Panics on a
    /// record it cannot parse.
    pub fn start(zone: &[(&str, &str, &str)]) -> DnsServer {
        let catalog = catalog(zone);
        let (udp, tcp) = bind_udp_and_tcp();
        let addr = udp.local_addr().expect("DNS UDP socket address");
        let (stop_sender, stop_receiver) = mpsc::channel::<Box<dyn FnOnce() + Send>>();
        thread::Builder::new()
            .name(format!("dns-{addr}"))
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("DNS server runtime");
                runtime.block_on(async move {
                    udp.set_nonblocking(true).expect("nonblocking UDP");
                    tcp.set_nonblocking(true).expect("nonblocking TCP");
                    let mut server = Server::new(catalog);
                    server.register_socket(
                        tokio::net::UdpSocket::from_std(udp).expect("tokio UDP socket"),
                    );
                    server.register_listener(
                        tokio::net::TcpListener::from_std(tcp).expect("tokio TCP listener"),
                        Duration::from_secs(5),
                        64,
                    );
                    let token = server.shutdown_token().clone();
                    let _ = stop_sender.send(Box::new(move || token.cancel()));
                    let _ = server.block_until_done().await;
                });
            })
            .expect("spawn DNS server thread");
        let stop = stop_receiver
            .recv_timeout(Duration::from_secs(5))
            .expect("DNS server did not start");
        DnsServer {
            addr,
            stop: Some(stop),
        }
    }

    /// A nameserver that never answers: the socket is bound (so queries
    /// are not refused by the kernel) and never read.
    pub fn silent() -> DnsServer {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind silent UDP socket");
        let addr = socket.local_addr().expect("silent socket address");
        DnsServer {
            addr,
            stop: Some(Box::new(move || drop(socket))),
        }
    }

    /// A nameserver that answers every query with SERVFAIL (UDP only).
    pub fn servfail() -> DnsServer {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind SERVFAIL UDP socket");
        let addr = socket.local_addr().expect("SERVFAIL socket address");
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .expect("read timeout");
        let stopped = Arc::new(AtomicBool::new(false));
        let stop_flag = stopped.clone();
        thread::Builder::new()
            .name(format!("servfail-{addr}"))
            .spawn(move || {
                let mut buf = [0u8; 4096];
                while !stopped.load(Ordering::Relaxed) {
                    let Ok((len, peer)) = socket.recv_from(&mut buf) else {
                        continue;
                    };
                    if let Some(reply) = servfail_reply(&buf[..len]) {
                        let _ = socket.send_to(&reply, peer);
                    }
                }
            })
            .expect("spawn SERVFAIL thread");
        DnsServer {
            addr,
            stop: Some(Box::new(move || stop_flag.store(true, Ordering::Relaxed))),
        }
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            stop();
        }
    }
}

fn catalog(zone: &[(&str, &str, &str)]) -> Catalog {
    let origin = Name::from_ascii(ORIGIN).expect("origin name");
    let mut handler = InMemoryZoneHandler::<TokioRuntimeProvider>::empty(
        origin.clone(),
        ZoneType::Primary,
        AxfrPolicy::Deny,
    );
    let serial = 1;
    let soa = SOA::new(
        Name::from_ascii("ns.test.").expect("SOA mname"),
        Name::from_ascii("hostmaster.test.").expect("SOA rname"),
        serial,
        3600,
        600,
        86400,
        // The negative TTL; irrelevant with a fresh resolver per test.
        60,
    );
    assert!(handler.upsert_mut(
        Record::from_rdata(origin.clone(), TTL, RData::SOA(soa)),
        serial
    ));
    for (name, rtype, rdata) in zone {
        let owner = fqdn(name);
        assert!(origin.zone_of(&owner), "{name} is not under {ORIGIN}");
        let record = Record::from_rdata(owner, TTL, parse_rdata(rtype, rdata));
        assert!(
            handler.upsert_mut(record, serial),
            "cannot add {name} {rtype} {rdata}"
        );
    }
    let mut catalog = Catalog::new();
    catalog.upsert(LowerName::new(&origin), vec![Arc::new(handler)]);
    catalog
}

fn fqdn(name: &str) -> Name {
    let absolute = if name.ends_with('.') {
        name.to_string()
    } else {
        format!("{name}.")
    };
    Name::from_ascii(&absolute).unwrap_or_else(|err| panic!("bad name {name:?}: {err}"))
}

fn parse_rdata(rtype: &str, rdata: &str) -> RData {
    let bad = |why: &dyn std::fmt::Display| -> ! { panic!("bad {rtype} rdata {rdata:?}: {why}") };
    match rtype.to_ascii_uppercase().as_str() {
        "MX" => {
            let (preference, exchange) = rdata
                .trim()
                .split_once(char::is_whitespace)
                .unwrap_or_else(|| bad(&"want \"PREFERENCE EXCHANGE\""));
            let preference = u16::from_str(preference).unwrap_or_else(|err| bad(&err));
            let exchange = Name::from_ascii(exchange.trim()).unwrap_or_else(|err| bad(&err));
            RData::MX(MX::new(preference, exchange))
        }
        "A" => RData::A(A(
            Ipv4Addr::from_str(rdata.trim()).unwrap_or_else(|err| bad(&err))
        )),
        "AAAA" => RData::AAAA(AAAA(
            Ipv6Addr::from_str(rdata.trim()).unwrap_or_else(|err| bad(&err)),
        )),
        "CNAME" => RData::CNAME(CNAME(fqdn(rdata.trim()))),
        // The text as one record, in character-strings of at most 255
        // octets (RFC 1035 3.3.14), as a zone file's ( "..." "..." ) gives
        // it; a reader joins them again (RFC 6376 3.6.2.2 for DKIM keys).
        "TXT" => RData::TXT(TXT::new(
            rdata
                .as_bytes()
                .chunks(255)
                .map(|chunk| String::from_utf8_lossy(chunk).into_owned())
                .collect(),
        )),
        other => panic!("record type {other} is not supported by the test DNS server"),
    }
}

/// Binds UDP on an ephemeral port of 127.0.0.1 and TCP on the same port,
/// retrying with a new port when TCP's is taken.
fn bind_udp_and_tcp() -> (UdpSocket, TcpListener) {
    let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
    for _ in 0..20 {
        let udp = UdpSocket::bind((loopback, 0)).expect("bind DNS UDP socket");
        let port = udp.local_addr().expect("UDP address").port();
        if let Ok(tcp) = TcpListener::bind((loopback, port)) {
            return (udp, tcp);
        }
    }
    panic!("no port free for both UDP and TCP on 127.0.0.1");
}

/// The SERVFAIL answer to `query`: same ID, opcode, RD bit and question;
/// no records; RA set. `None` for something that is not a query.
fn servfail_reply(query: &[u8]) -> Option<Vec<u8>> {
    if query.len() < 12 || query[2] & 0x80 != 0 {
        return None;
    }
    let question_count = u16::from_be_bytes([query[4], query[5]]);
    // Walk the question names to keep the question section only (the
    // query's EDNS record must not follow with its count set to zero).
    let mut end = 12;
    for _ in 0..question_count {
        loop {
            let len = *query.get(end)? as usize;
            end += 1;
            if len == 0 {
                break;
            }
            end += len;
        }
        end += 4; // QTYPE and QCLASS
    }
    let question = query.get(12..end)?;
    let mut reply = Vec::with_capacity(end);
    reply.extend_from_slice(&query[0..2]); // ID
    reply.push(0x80 | (query[2] & 0x79)); // QR, opcode, RD
    reply.push(0x80 | 2); // RA, RCODE = SERVFAIL
    reply.extend_from_slice(&question_count.to_be_bytes());
    reply.extend_from_slice(&[0, 0, 0, 0, 0, 0]); // AN, NS, AR counts
    reply.extend_from_slice(question);
    Some(reply)
}
