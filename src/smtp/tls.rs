//! TLS settings, the connector built from them, and the certificate report.
//!
//! Certificates are verified by default. The alternatives are explicit:
//! `--insecure` (warned about), a pinned SHA-256 fingerprint (a self-signed
//! server trusted on purpose), and opportunistic TLS to an MX host, where
//! encryption without authentication is what RFC 7435 asks for.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use openssl::asn1::{Asn1Time, Asn1TimeRef};
use openssl::error::ErrorStack;
use openssl::pkey::{PKey, Private};
use openssl::ssl::{
    Ssl, SslContext, SslContextBuilder, SslFiletype, SslMethod, SslMode, SslOptions, SslRef,
    SslVerifyMode, SslVersion,
};
use openssl::x509::store::{X509Lookup, X509StoreBuilder};
use openssl::x509::verify::X509CheckFlags;
use openssl::x509::{X509VerifyResult, X509};

use crate::exit::{Error, Exit, Result};
use crate::types::{Endpoint, TlsFiles};

/// How the server's certificate is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verify {
    /// Chain to a trusted CA, and the name must match.
    Full,
    /// Nothing is checked (--insecure).
    Insecure,
    /// Only the leaf certificate's SHA-256 fingerprint must match.
    Pinned([u8; 32]),
    /// Nothing is checked: opportunistic TLS to an MX host.
    Unauthenticated,
    /// Nothing is checked: opportunistic TLS to a relay on loopback (a
    /// local Postfix or stunnel, typically with a self-signed certificate),
    /// where the traffic never leaves this machine.
    Loopback,
}

/// The environment variables that move the system trust store, as
/// OpenSSL names them.
pub(crate) const CERT_DIR_ENV: &str = "SSL_CERT_DIR";
pub(crate) const CERT_FILE_ENV: &str = "SSL_CERT_FILE";

/// CA certificates and client identity, read once; the OpenSSL contexts
/// built from them on the first handshake that needs each, and shared by
/// every later one of the run.
#[derive(Debug)]
pub(crate) struct TlsMaterial {
    roots: Vec<Vec<u8>>,
    identity: Option<(Vec<u8>, Vec<u8>)>,
    /// With the system trust store and the CA file: for every handshake
    /// whose verdict is enforced or reported.
    trusting: OnceLock<std::result::Result<(SslContext, TrustStore), Error>>,
    /// With no trust store at all, for --insecure and a pinned
    /// fingerprint, which never ask whether a CA vouches for the server:
    /// parsing the system's ~140 CA certificates costs OpenSSL 3 about 40
    /// ms, twenty times the handshake.
    bare: OnceLock<std::result::Result<SslContext, Error>>,
}

/// Where the trusted CA certificates come from, for the transcript.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum TrustStore {
    /// A hashed directory (`openssl rehash`): only the certificates a
    /// chain needs are read, when it needs them.
    Directory(String),
    /// A bundle, read whole.
    Bundle(PathBuf),
    /// Both: an SSL_CERT_FILE given without SSL_CERT_DIR is read as
    /// OpenSSL would, beside the default directory.
    Both(String, PathBuf),
    /// No system certificates found: only --ca-file is trusted.
    Nothing,
}

impl TrustStore {
    /// "CA certificates: looked up in /etc/ssl/certs as needed".
    pub(crate) fn describe(&self, ca_file: bool) -> String {
        let system = match self {
            TrustStore::Directory(dir) => format!("looked up in {dir} as needed"),
            TrustStore::Bundle(file) => format!("read from {}", file.display()),
            TrustStore::Both(dir, file) => format!(
                "read from {} and looked up in {dir} as needed",
                file.display()
            ),
            TrustStore::Nothing => "none found on this machine".to_string(),
        };
        let extra = if ca_file { ", plus the CA file" } else { "" };
        format!("CA certificates: {system}{extra}")
    }
}

/// What one handshake needs: the shared context and whether a failed
/// verification ends the handshake.
#[derive(Clone, Debug)]
pub(crate) struct Connector {
    context: SslContext,
    enforce: bool,
}

impl Connector {
    /// The TLS session for `domain`: SNI names it (unless it is an IP
    /// address) and the certificate is checked against it (an IP address as
    /// an IP SAN, no partial wildcards), whatever address the socket is
    /// connected to, as `SslConnector` would. OpenSSL verifies the chain
    /// and the name even when told not to enforce the result
    /// (`SSL_VERIFY_NONE`): the verdict is then only recorded, to be read
    /// with [`Negotiated::of`], and the handshake goes on.
    pub(crate) fn ssl(&self, domain: &str) -> std::result::Result<Ssl, ErrorStack> {
        let mut ssl = Ssl::new(&self.context)?;
        let ip = domain.parse::<IpAddr>().ok();
        if ip.is_none() {
            ssl.set_hostname(domain)?;
        }
        let param = ssl.param_mut();
        param.set_hostflags(X509CheckFlags::NO_PARTIAL_WILDCARDS);
        match ip {
            Some(ip) => param.set_ip(ip)?,
            None => param.set_host(domain)?,
        }
        if !self.enforce {
            ssl.set_verify(SslVerifyMode::NONE);
        }
        Ok(ssl)
    }

    /// The same checks, recorded but not enforced: for --capabilities,
    /// which reports a certificate that fails them instead of hanging up.
    pub(crate) fn recording_only(self) -> Connector {
        Connector {
            enforce: false,
            ..self
        }
    }
}

/// What the TLS layer tells about an established session.
#[derive(Clone, Debug)]
pub(crate) struct Negotiated {
    /// "TLSv1.3".
    pub(crate) version: String,
    /// OpenSSL's name for the cipher suite ("TLS_AES_256_GCM_SHA384").
    pub(crate) cipher: String,
    /// The certificates the server sent (DER), its own first.
    pub(crate) chain: Vec<Vec<u8>>,
    /// OpenSSL's verdict on the chain and the name, enforced or not.
    pub(crate) verify: X509VerifyResult,
}

impl Negotiated {
    pub(crate) fn of(ssl: &SslRef) -> Negotiated {
        Negotiated {
            version: ssl.version_str().to_string(),
            cipher: ssl
                .current_cipher()
                .map(|cipher| cipher.name().to_string())
                .unwrap_or_default(),
            chain: sent_chain(ssl),
            verify: ssl.verify_result(),
        }
    }
}

/// The certificates the server sent, as DER, its own first. On the client
/// side OpenSSL keeps the chain as received, before (and whatever the
/// result of) verification, so it is there after a failed handshake too.
pub(crate) fn sent_chain(ssl: &SslRef) -> Vec<Vec<u8>> {
    ssl.peer_cert_chain()
        .map(|chain| chain.iter().filter_map(|cert| cert.to_der().ok()).collect())
        .unwrap_or_default()
}

/// A failed handshake: OpenSSL's account in one line, and the certificates
/// the server sent if it got that far (to name what they are valid for).
#[derive(Clone, Debug)]
pub(crate) struct HandshakeFailure {
    pub(crate) detail: String,
    pub(crate) chain: Vec<Vec<u8>>,
}

/// The client's private key, refused (78) when group or others can read
/// it, as ssh refuses such an identity file: the mode is checked on the
/// file as opened.
fn read_key(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let cannot = |err: std::io::Error| Error::input("client key", path, &err);
    let mut file = std::fs::File::open(path).map_err(cannot)?;
    let meta = file.metadata().map_err(cannot)?;
    crate::permissions::check_secret_file(&meta, path, "client key", "a private key")?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(cannot)?;
    Ok(bytes)
}

impl TlsMaterial {
    /// The material for `files`, loaded at the first call of the run and
    /// shared by every later one: a queue flush sends batch after batch,
    /// with the same files, and must not build its contexts again for
    /// each. A failed load is not kept: it is reported by every call.
    pub(crate) fn shared(files: &TlsFiles) -> Result<Arc<TlsMaterial>> {
        static LOADED: Mutex<Vec<(TlsFiles, Arc<TlsMaterial>)>> = Mutex::new(Vec::new());
        let mut loaded = LOADED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, material)) = loaded.iter().find(|(known, _)| known == files) {
            return Ok(Arc::clone(material));
        }
        let material = Arc::new(TlsMaterial::load(files)?);
        loaded.push((files.clone(), Arc::clone(&material)));
        Ok(material)
    }

    pub(crate) fn load(files: &TlsFiles) -> Result<TlsMaterial> {
        let read = |what: &str, path: &Path| {
            std::fs::read(path).map_err(|err| Error::input(what, path, &err))
        };
        let roots = match &files.ca_file {
            Some(path) => {
                let blocks = pem_certificates(&read("CA file", path)?);
                if blocks.is_empty() {
                    return Err(Error::config(format!(
                        "CA file {} holds no PEM certificate",
                        path.display()
                    )));
                }
                blocks
            }
            None => Vec::new(),
        };
        let identity = match (&files.client_cert, &files.client_key) {
            (Some(cert), Some(key)) => Some((read("client certificate", cert)?, read_key(key)?)),
            (None, None) => None,
            _ => return Err(Error::usage("--client-cert and --client-key go together")),
        };
        Ok(TlsMaterial {
            roots,
            identity,
            trusting: OnceLock::new(),
            bare: OnceLock::new(),
        })
    }

    /// A connector that checks the certificate as `verify` says; pinning is
    /// checked by the caller against the certificate after the handshake.
    /// Each context is set up on the first call that needs it. With it
    /// comes, where a trust store is used, where its CAs come from (for
    /// the transcript).
    pub(crate) fn connector(&self, verify: Verify) -> Result<(Connector, Option<String>)> {
        let (context, trust) = match verify {
            Verify::Insecure | Verify::Pinned(_) => {
                let bare = self
                    .bare
                    .get_or_init(|| self.context(false).map(|(context, _)| context));
                (bare.clone()?, None)
            }
            Verify::Full | Verify::Unauthenticated | Verify::Loopback => {
                let (context, store) = self.trusting.get_or_init(|| self.context(true)).clone()?;
                (context, Some(store.describe(!self.roots.is_empty())))
            }
        };
        let connector = Connector {
            context,
            enforce: verify == Verify::Full,
        };
        Ok((connector, trust))
    }

    /// A client context as `SslConnector::builder` makes one (its options,
    /// modes and cipher list), but without `set_default_verify_paths`,
    /// which reads the whole system bundle: TLS 1.2 at least, the client
    /// certificate if there is one, and with `trust` the system trust store
    /// plus the CA file's certificates.
    fn context(&self, trust: bool) -> Result<(SslContext, TrustStore)> {
        let setup = |err: ErrorStack| Error::config(format!("cannot set up TLS: {err}"));
        let mut builder = SslContextBuilder::new(SslMethod::tls_client()).map_err(setup)?;
        builder.set_options(
            (SslOptions::ALL
                | SslOptions::NO_COMPRESSION
                | SslOptions::NO_SSLV2
                | SslOptions::NO_SSLV3)
                & !SslOptions::DONT_INSERT_EMPTY_FRAGMENTS,
        );
        builder.set_mode(
            SslMode::AUTO_RETRY
                | SslMode::ACCEPT_MOVING_WRITE_BUFFER
                | SslMode::ENABLE_PARTIAL_WRITE
                | SslMode::RELEASE_BUFFERS,
        );
        builder
            .set_cipher_list(
                "DEFAULT:!aNULL:!eNULL:!MD5:!3DES:!DES:!RC4:!IDEA:!SEED:!aDSS:!SRP:!PSK",
            )
            .map_err(setup)?;
        builder.set_verify(SslVerifyMode::PEER);
        if let Some((cert, key)) = &self.identity {
            let (cert, chain, key) = client_identity(cert, key).ok_or_else(|| {
                Error::config("cannot use the client certificate and key").hint(
                    "both must be PEM, the key in PKCS#8 (convert with: openssl pkcs8 -topk8 -nocrypt -in KEY)",
                )
            })?;
            builder.set_certificate(&cert).map_err(setup)?;
            builder.set_private_key(&key).map_err(setup)?;
            for extra in chain {
                builder.add_extra_chain_cert(extra).map_err(setup)?;
            }
        }
        builder
            .set_min_proto_version(Some(SslVersion::TLS1_2))
            .map_err(setup)?;
        builder.set_max_proto_version(None).map_err(setup)?;
        if !trust {
            return Ok((builder.build(), TrustStore::Nothing));
        }
        let mut store = X509StoreBuilder::new().map_err(setup)?;
        let source = system_trust(&mut store, &TrustPaths::from_environment()).map_err(setup)?;
        for root in &self.roots {
            let cert = X509::from_pem(root).map_err(|err| {
                Error::config(format!("invalid certificate in the CA file: {err}"))
            })?;
            // Added to the system store, not in its place. A certificate
            // already there is refused as a duplicate, harmlessly.
            let _ = store.add_cert(cert);
        }
        builder.set_cert_store(store.build());
        Ok((builder.build(), source))
    }
}

/// Where the system's trusted CAs are: SSL_CERT_DIR and SSL_CERT_FILE as
/// set, and OpenSSL's compiled-in defaults (on Debian `/usr/lib/ssl/certs`,
/// a link to `/etc/ssl/certs`, and the bundle in it).
#[derive(Clone, Debug, PartialEq, Eq)]
struct TrustPaths {
    dir: Option<String>,
    file: Option<PathBuf>,
    default_dir: String,
    default_file: PathBuf,
}

impl TrustPaths {
    fn from_environment() -> TrustPaths {
        let set = |name: &str| std::env::var_os(name).filter(|value| !value.is_empty());
        TrustPaths {
            // OpenSSL takes a list; a directory that is not UTF-8 is
            // passed over as OpenSSL's C API could not be given it.
            dir: set(CERT_DIR_ENV).and_then(|dir| dir.into_string().ok()),
            file: set(CERT_FILE_ENV).map(PathBuf::from),
            default_dir: openssl_default(openssl_sys::X509_get_default_cert_dir),
            default_file: PathBuf::from(openssl_default(openssl_sys::X509_get_default_cert_file)),
        }
    }
}

/// One of OpenSSL's compiled-in default paths.
fn openssl_default(path: unsafe extern "C" fn() -> *const std::ffi::c_char) -> String {
    // SAFETY: these return a pointer to a static NUL-terminated string
    // compiled into libcrypto, never null, never freed.
    unsafe { std::ffi::CStr::from_ptr(path()) }
        .to_string_lossy()
        .into_owned()
}

/// Sets up `store` with the system's trusted CAs: the hashed directory
/// looked up lazily (only the issuers a chain needs are read), or, where
/// the directory has no hash links (some distributions ship only a
/// bundle), the bundle read whole. An SSL_CERT_FILE given on its own is a
/// user's own bundle and is read as OpenSSL would, beside the directory.
fn system_trust(
    store: &mut X509StoreBuilder,
    paths: &TrustPaths,
) -> std::result::Result<TrustStore, ErrorStack> {
    let dir = paths
        .dir
        .clone()
        .unwrap_or_else(|| paths.default_dir.clone());
    let hashed = dir.split(':').any(|one| has_hash_links(Path::new(one)));
    let file = paths
        .file
        .clone()
        .unwrap_or_else(|| paths.default_file.clone());
    let read_file = (!hashed || (paths.file.is_some() && paths.dir.is_none()))
        && file.to_str().is_some()
        && file.is_file();
    if read_file {
        // Certificates OpenSSL cannot read are skipped as OpenSSL's own
        // default paths skip them: a broken bundle means fewer trusted
        // CAs, not a run that cannot start.
        let loaded = store
            .add_lookup(X509Lookup::file())?
            .load_cert_file(&file, SslFiletype::PEM);
        if loaded.is_err() {
            let _ = ErrorStack::get();
        }
    }
    if hashed {
        store
            .add_lookup(X509Lookup::hash_dir())?
            .add_dir(&dir, SslFiletype::PEM)?;
    }
    Ok(match (hashed, read_file) {
        (true, true) => TrustStore::Both(dir, file),
        (true, false) => TrustStore::Directory(dir),
        (false, true) => TrustStore::Bundle(file),
        (false, false) => TrustStore::Nothing,
    })
}

/// Whether `dir` holds at least one `HHHHHHHH.N` link, as `openssl rehash`
/// makes them: without one a lookup there would find nothing.
fn has_hash_links(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.filter_map(|entry| entry.ok()).any(|entry| {
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            return false;
        };
        match name.split_once('.') {
            Some((hash, n)) => {
                hash.len() == 8
                    && hash.bytes().all(|b| b.is_ascii_hexdigit())
                    && !n.is_empty()
                    && n.bytes().all(|b| b.is_ascii_digit())
            }
            None => false,
        }
    })
}

/// The client certificate (with any chain after it) and its PKCS#8 key.
fn client_identity(cert: &[u8], key: &[u8]) -> Option<(X509, Vec<X509>, PKey<Private>)> {
    if !key.starts_with(b"-----BEGIN PRIVATE KEY-----") {
        return None;
    }
    let key = PKey::private_key_from_pem(key).ok()?;
    let mut certs = X509::stack_from_pem(cert).ok()?.into_iter();
    let leaf = certs.next()?;
    Some((leaf, certs.collect(), key))
}

/// Splits a PEM bundle into its certificates, each read on its own.
fn pem_certificates(pem: &[u8]) -> Vec<Vec<u8>> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let text = String::from_utf8_lossy(pem);
    let mut blocks = Vec::new();
    let mut rest = text.as_ref();
    while let Some(start) = rest.find(BEGIN) {
        let Some(len) = rest[start..].find(END) else {
            break;
        };
        let end = start + len + END.len();
        blocks.push(format!("{}\n", &rest[start..end]).into_bytes());
        rest = &rest[end..];
    }
    blocks
}

/// Reads `AB:CD:...` or `abcd...` (64 hex digits) as a SHA-256 fingerprint.
pub(crate) fn parse_fingerprint(text: &str) -> Result<[u8; 32]> {
    let hex: String = text
        .chars()
        .filter(|c| *c != ':' && !c.is_whitespace())
        .collect();
    let bad = || {
        Error::usage(format!("invalid --tls-fingerprint {text:?}"))
            .hint("give the certificate's SHA-256 fingerprint: 64 hex digits, colons allowed")
    };
    if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(out)
}

/// `AB:CD:...`, as openssl and browsers show fingerprints.
pub(crate) fn format_fingerprint(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

pub(crate) fn sha256(der: &[u8]) -> [u8; 32] {
    openssl::sha::sha256(der)
}

/// What a sysadmin wants to know about the server's certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CertReport {
    pub(crate) subject: String,
    pub(crate) issuer: String,
    pub(crate) alt_names: Vec<String>,
    /// ISO 8601, UTC ("2026-12-02T06:23:50Z").
    pub(crate) not_before: String,
    pub(crate) not_after: String,
    pub(crate) days_left: i64,
    pub(crate) sha256: String,
    /// How it was checked: "verified", "pinned", "not verified (...)".
    pub(crate) verification: String,
}

/// One certificate of the chain the server sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ChainCert {
    pub(crate) subject: String,
    pub(crate) issuer: String,
    /// ISO 8601, UTC.
    pub(crate) not_before: String,
    pub(crate) not_after: String,
    pub(crate) sha256: String,
}

impl ChainCert {
    pub(crate) fn from_der(der: &[u8]) -> Option<ChainCert> {
        let cert = X509::from_der(der).ok()?;
        Some(ChainCert {
            subject: name_text(cert.subject_name()),
            issuer: name_text(cert.issuer_name()),
            not_before: iso8601(cert.not_before()),
            not_after: iso8601(cert.not_after()),
            sha256: format_fingerprint(&sha256(der)),
        })
    }
}

/// The TLS session as reported: what was negotiated, what the server sent
/// and whether it authenticates the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TlsReport {
    pub(crate) version: String,
    pub(crate) cipher: String,
    pub(crate) chain: Vec<ChainCert>,
    /// The certificate chains to a trusted CA and is valid for the name
    /// (whether or not postie required it: --insecure, opportunistic TLS),
    /// or it matches the pinned fingerprint.
    pub(crate) verified: bool,
    /// Why not, when not verified.
    pub(crate) verify_error: Option<String>,
}

impl TlsReport {
    /// The rows of the --capabilities table.
    pub(crate) fn lines(&self) -> Vec<String> {
        let mut lines = vec![
            format!("TLS version: {}", self.version),
            format!("TLS cipher: {}", self.cipher),
        ];
        for (depth, cert) in self.chain.iter().enumerate() {
            lines.push(format!("chain {depth} subject: {}", cert.subject));
            lines.push(format!("chain {depth} issuer: {}", cert.issuer));
            lines.push(format!(
                "chain {depth} valid: {} to {}",
                cert.not_before, cert.not_after
            ));
            lines.push(format!("chain {depth} SHA-256: {}", cert.sha256));
        }
        lines.push(match &self.verify_error {
            None if self.verified => "verified: yes".to_string(),
            None => "verified: no".to_string(),
            Some(why) => format!("verified: no ({why})"),
        });
        lines
    }
}

/// An ASN.1 time as ISO 8601 in UTC, "2026-12-02T06:23:50Z".
pub(crate) fn iso8601(time: &Asn1TimeRef) -> String {
    let seconds = Asn1Time::from_unix(0)
        .ok()
        .and_then(|epoch| epoch.diff(time).ok())
        .map(|diff| i64::from(diff.days) * 86_400 + i64::from(diff.secs));
    let Some(seconds) = seconds else {
        return time.to_string();
    };
    let (days, rest) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The names a certificate is valid for, as a user would type them: its
/// DNS and IP subject alternative names, or its CN when it has none (RFC
/// 6125 6.4.4).
pub(crate) fn certificate_names(der: &[u8]) -> Vec<String> {
    let Ok(cert) = X509::from_der(der) else {
        return Vec::new();
    };
    match cert.subject_alt_names() {
        Some(names) => names
            .iter()
            .filter_map(|name| {
                name.dnsname()
                    .map(str::to_string)
                    .or_else(|| ip_text(name.ipaddress()?))
            })
            .collect(),
        None => cert
            .subject_name()
            .entries_by_nid(openssl::nid::Nid::COMMONNAME)
            .filter_map(|entry| entry.data().to_string().ok())
            .collect(),
    }
}

fn ip_text(bytes: &[u8]) -> Option<String> {
    let ip: IpAddr = match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok()?.into(),
        16 => <[u8; 16]>::try_from(bytes).ok()?.into(),
        _ => return None,
    };
    Some(ip.to_string())
}

impl CertReport {
    pub(crate) fn from_der(der: &[u8], verification: String) -> Option<CertReport> {
        let cert = openssl::x509::X509::from_der(der).ok()?;
        let alt_names = cert
            .subject_alt_names()
            .map(|names| {
                names
                    .iter()
                    .filter_map(|name| {
                        name.dnsname()
                            .map(|dns| format!("DNS:{dns}"))
                            .or_else(|| Some(format!("IP:{}", ip_text(name.ipaddress()?)?)))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let now = openssl::asn1::Asn1Time::days_from_now(0).ok()?;
        let days_left = now
            .diff(cert.not_after())
            .map(|diff| i64::from(diff.days))
            .unwrap_or(0);
        Some(CertReport {
            subject: name_text(cert.subject_name()),
            issuer: name_text(cert.issuer_name()),
            alt_names,
            not_before: iso8601(cert.not_before()),
            not_after: iso8601(cert.not_after()),
            days_left,
            sha256: format_fingerprint(&sha256(der)),
            verification,
        })
    }

    /// Lines for the transcript's `===` notes.
    pub(crate) fn lines(&self) -> Vec<String> {
        let mut lines = vec![
            format!("certificate subject: {}", self.subject),
            format!("certificate issuer: {}", self.issuer),
        ];
        if !self.alt_names.is_empty() {
            lines.push(format!("certificate names: {}", self.alt_names.join(", ")));
        }
        // Seen expired only where nothing verified it (--insecure, MX).
        let (left, warning) = if self.days_left < 0 {
            let ago = days(-self.days_left);
            (
                format!("expired {ago} ago"),
                Some(format!("the certificate expired {ago} ago")),
            )
        } else {
            let left = days(self.days_left);
            let soon = self.days_left < 14;
            let warning = soon.then(|| format!("the certificate expires in {left}"));
            (format!("{left} left"), warning)
        };
        lines.push(format!(
            "certificate valid: {} to {} ({left})",
            self.not_before, self.not_after
        ));
        lines.push(format!("certificate SHA-256: {}", self.sha256));
        lines.push(format!("certificate {}", self.verification));
        if let Some(warning) = warning {
            lines.push(format!("warning: {warning}"));
        }
        lines
    }
}

fn days(count: i64) -> String {
    if count == 1 {
        "1 day".to_string()
    } else {
        format!("{count} days")
    }
}

/// What a certificate shows by itself that verification would reject:
/// self-signed, outside its dates, not for `host`. For the --insecure
/// report, where no verification ran; the chain to a trusted CA cannot be
/// judged from the certificate alone, so it is not.
pub(crate) fn certificate_flaws(der: &[u8], host: &str) -> Vec<String> {
    let Ok(cert) = openssl::x509::X509::from_der(der) else {
        return Vec::new();
    };
    let mut flaws = Vec::new();
    if cert.issued(&cert) == openssl::x509::X509VerifyResult::OK {
        flaws.push("self-signed".to_string());
    }
    if let Ok(now) = openssl::asn1::Asn1Time::days_from_now(0) {
        if cert.not_after() < now {
            flaws.push("expired".to_string());
        } else if cert.not_before() > now {
            flaws.push("not valid yet".to_string());
        }
    }
    if !names_match(&cert, host) {
        flaws.push(format!("not valid for the name {host:?}"));
    }
    flaws
}

/// RFC 6125 in short: an IP address must be an IP SAN; a name matches a
/// DNS SAN, with `*` standing for the whole first label; the CN counts only
/// when there is no SAN at all.
fn names_match(cert: &openssl::x509::X509, host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let ip: Option<IpAddr> = host.trim_matches(['[', ']']).parse().ok();
    let dns_matches = |pattern: &str| {
        let pattern = pattern.trim_end_matches('.').to_ascii_lowercase();
        match pattern.strip_prefix("*.") {
            Some(rest) => host
                .split_once('.')
                .is_some_and(|(first, tail)| !first.is_empty() && tail == rest),
            None => pattern == host,
        }
    };
    match cert.subject_alt_names() {
        Some(names) => names.iter().any(|name| match ip {
            Some(ip) => name.ipaddress().is_some_and(|bytes| match ip {
                IpAddr::V4(v4) => bytes == v4.octets(),
                IpAddr::V6(v6) => bytes == v6.octets(),
            }),
            None => name.dnsname().is_some_and(dns_matches),
        }),
        None => {
            ip.is_none()
                && cert
                    .subject_name()
                    .entries_by_nid(openssl::nid::Nid::COMMONNAME)
                    .filter_map(|entry| entry.data().to_string().ok())
                    .any(|cn| dns_matches(&cn))
        }
    }
}

fn name_text(name: &openssl::x509::X509NameRef) -> String {
    name.entries()
        .map(|entry| {
            let key = entry.object().nid().short_name().unwrap_or("?");
            let value = entry.data().to_string().unwrap_or_default();
            format!("{key}={value}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A failed handshake in one line: OpenSSL's error, then why the server's
/// certificate failed verification if it did, as in "error:...:certificate
/// verify failed:... (self-signed certificate)".
pub(crate) fn handshake_detail(err: &openssl::ssl::Error, verify: X509VerifyResult) -> String {
    let text = if verify == X509VerifyResult::OK {
        err.to_string()
    } else {
        format!("{err} ({verify})")
    };
    crate::exit::chain_onto(text, std::error::Error::source(err))
}

/// The server's TLS alert about the client's certificate, which OpenSSL
/// reports as "... alert certificate required" and the like. With TLS 1.3
/// it arrives after the client finished the handshake, at the first read.
/// Not a temporary failure: retrying without a certificate the server
/// accepts cannot succeed.
pub(crate) fn client_certificate_refused(endpoint: &Endpoint, detail: &str) -> Option<Error> {
    let lower = detail.to_ascii_lowercase();
    if lower.contains("alert certificate required") {
        return Some(
            Error::new(
                Exit::NoPerm,
                format!("TLS: {endpoint} requires a client certificate"),
            )
            .hint("give one with --client-cert and --client-key (client_cert and client_key in the config)"),
        );
    }
    const REFUSALS: [&str; 6] = [
        "bad certificate",
        "unknown ca",
        "certificate expired",
        "certificate unknown",
        "certificate revoked",
        "unsupported certificate",
    ];
    let refusal = REFUSALS
        .iter()
        .find(|r| lower.contains(&format!("alert {r}")))?;
    Some(
        Error::new(
            Exit::NoPerm,
            format!("TLS: {endpoint} did not accept the client certificate ({refusal})"),
        )
        .hint("check that --client-cert is current and issued by a CA the server trusts"),
    )
}

/// A failed TLS handshake: an untrusted certificate is 69 and says which of
/// self-signed, expired or wrong name it is (with the names it is valid
/// for, from `names`, for the last); a refused client certificate is 77;
/// anything else is 76.
pub(crate) fn handshake_error(endpoint: &Endpoint, detail: &str, names: &[String]) -> Error {
    if let Some(err) = client_certificate_refused(endpoint, detail) {
        return err;
    }
    let lower = detail.to_ascii_lowercase();
    // A name mismatch is not mended by trusting a CA: the certificate
    // is for other names, so the way out is one of them.
    const TRUST: &str = "trust its CA with --ca-file, or pin it with --tls-fingerprint; --insecure skips the check (unsafe)";
    let (reason, hint) = if lower.contains("hostname mismatch")
        || lower.contains("ip address mismatch")
    {
        let (valid_for, hint) = match names {
            [] => (String::new(), TRUST),
            names => (
                format!(", only for {}", names.join(", ")),
                "connect to one of those names (--server NAME), or pin it with --tls-fingerprint; --insecure skips the check (unsafe)",
            ),
        };
        let reason = format!(
            "its certificate is not valid for the name {:?}{valid_for}",
            endpoint.host
        );
        (Some(reason), hint)
    } else if lower.contains("expired") {
        (Some("its certificate has expired".to_string()), TRUST)
    } else if lower.contains("not yet valid") {
        (Some("its certificate is not valid yet".to_string()), TRUST)
    } else if lower.contains("self-signed") || lower.contains("self signed") {
        (Some("its certificate is self-signed".to_string()), TRUST)
    } else if lower.contains("unable to get local issuer")
        || lower.contains("certificate verify failed")
    {
        let reason = "its certificate is issued by an authority this machine does not trust";
        (Some(reason.to_string()), TRUST)
    } else {
        (None, TRUST)
    };
    match reason {
        Some(reason) => Error::new(
            Exit::Unavailable,
            format!("TLS: cannot verify {endpoint}: {reason}"),
        )
        .hint(hint),
        None => Error::new(
            Exit::Protocol,
            format!("TLS: handshake with {endpoint} failed: {detail}"),
        )
        .hint("check the port and --tls mode (465 is implicit TLS, 587 and 25 use STARTTLS)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory with these file names, empty files.
    fn dir_with(names: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for name in names {
            std::fs::write(dir.path().join(name), b"").unwrap();
        }
        dir
    }

    #[test]
    fn hash_links_are_what_rehash_names() {
        assert!(has_hash_links(dir_with(&["ca.pem", "a1b2c3d4.0"]).path()));
        assert!(has_hash_links(dir_with(&["A1B2C3D4.12"]).path()));
        for names in [
            &["ca.pem", "ca-certificates.crt"][..],
            &["a1b2c3d4.r0"],
            &["a1b2c3d.0"],
            &["a1b2c3d4."],
            &["a1b2c3g4.0"],
            &[],
        ] {
            assert!(!has_hash_links(dir_with(names).path()), "{names:?}");
        }
        assert!(!has_hash_links(Path::new("/nonexistent/postie")));
    }

    #[test]
    fn the_store_is_the_directory_else_the_bundle() {
        let hashed = dir_with(&["a1b2c3d4.0"]);
        let plain = dir_with(&["ca.pem"]);
        let bundle = plain.path().join("ca.pem");
        let text = |path: &Path| path.to_str().unwrap().to_string();
        let source = |dir: Option<&Path>, file: Option<&Path>, default_dir: &Path| {
            let paths = TrustPaths {
                dir: dir.map(text),
                file: file.map(Path::to_path_buf),
                default_dir: text(default_dir),
                default_file: bundle.clone(),
            };
            let mut store = X509StoreBuilder::new().unwrap();
            system_trust(&mut store, &paths).unwrap()
        };
        let directory = TrustStore::Directory(text(hashed.path()));
        // The defaults: the directory, and the bundle only without links.
        assert_eq!(source(None, None, hashed.path()), directory);
        assert_eq!(
            source(None, None, plain.path()),
            TrustStore::Bundle(bundle.clone())
        );
        // Both set, as a copy of Debian's: the directory alone.
        assert_eq!(
            source(Some(hashed.path()), Some(&bundle), plain.path()),
            directory
        );
        // SSL_CERT_FILE alone is the user's: read, beside the directory.
        assert_eq!(
            source(None, Some(&bundle), hashed.path()),
            TrustStore::Both(text(hashed.path()), bundle.clone())
        );
        // Nothing usable anywhere.
        let missing = plain.path().join("missing.crt");
        assert_eq!(
            source(Some(plain.path()), Some(&missing), plain.path()),
            TrustStore::Nothing
        );
        // A list of directories, as OpenSSL takes: one with links will do.
        let list = format!("{}:{}", text(plain.path()), text(hashed.path()));
        let paths = TrustPaths {
            dir: Some(list.clone()),
            file: None,
            default_dir: String::new(),
            default_file: missing,
        };
        let mut store = X509StoreBuilder::new().unwrap();
        assert_eq!(
            system_trust(&mut store, &paths).unwrap(),
            TrustStore::Directory(list)
        );
    }

    #[test]
    fn openssl_names_its_default_paths() {
        let paths = TrustPaths::from_environment();
        assert!(!paths.default_dir.is_empty());
        assert!(paths.default_file.is_absolute(), "{paths:?}");
    }

    #[test]
    fn pem_bundle_is_split() {
        let one = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----";
        let bundle = format!("junk\n{one}\n{one}\n");
        assert_eq!(pem_certificates(bundle.as_bytes()).len(), 2);
        assert!(pem_certificates(b"nothing").is_empty());
    }

    /// A throwaway certificate with these SANs (or only a CN), valid for
    /// `days` from yesterday, signed by its own key.
    fn certificate(sans: &[&str], cn: &str, days: u32) -> Vec<u8> {
        use openssl::x509::extension::SubjectAlternativeName;
        let group =
            openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1).unwrap();
        let key = openssl::pkey::PKey::from_ec_key(openssl::ec::EcKey::generate(&group).unwrap())
            .unwrap();
        let mut name = openssl::x509::X509NameBuilder::new().unwrap();
        name.append_entry_by_nid(openssl::nid::Nid::COMMONNAME, cn)
            .unwrap();
        let name = name.build();
        let mut b = openssl::x509::X509::builder().unwrap();
        b.set_version(2).unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(&name).unwrap();
        b.set_pubkey(&key).unwrap();
        let yesterday = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
            - 86_400;
        b.set_not_before(&openssl::asn1::Asn1Time::from_unix(yesterday - 86_400).unwrap())
            .unwrap();
        b.set_not_after(
            &openssl::asn1::Asn1Time::from_unix(yesterday + i64::from(days) * 86_400).unwrap(),
        )
        .unwrap();
        if !sans.is_empty() {
            let mut san = SubjectAlternativeName::new();
            for entry in sans {
                match entry.strip_prefix("IP:") {
                    Some(ip) => san.ip(ip),
                    None => san.dns(entry),
                };
            }
            let san = san.build(&b.x509v3_context(None, None)).unwrap();
            b.append_extension(san).unwrap();
        }
        b.sign(&key, openssl::hash::MessageDigest::sha256())
            .unwrap();
        b.build().to_der().unwrap()
    }

    #[test]
    fn the_report_counts_days_left_or_since_expiry() {
        let report = |days_left| CertReport {
            subject: "CN=x".into(),
            issuer: "CN=x".into(),
            alt_names: Vec::new(),
            not_before: "then".into(),
            not_after: "later".into(),
            days_left,
            sha256: "00".into(),
            verification: "NOT verified (--insecure)".into(),
        };
        let text = |days_left| report(days_left).lines().join("\n");
        assert!(text(30).contains("(30 days left)"), "{}", text(30));
        assert!(!text(30).contains("warning"), "{}", text(30));
        assert!(text(1).contains("(1 day left)"), "{}", text(1));
        assert!(text(1).contains("warning: the certificate expires in 1 day"));
        assert!(text(-3).contains("(expired 3 days ago)"), "{}", text(-3));
        assert!(text(-3).contains("warning: the certificate expired 3 days ago"));
        assert!(!text(-3).contains("-3"), "{}", text(-3));
    }

    #[test]
    fn certificate_flaws_are_facts_of_the_certificate_alone() {
        let good_names = certificate(
            &["mail.example.com", "*.example.org", "IP:192.0.2.1"],
            "x",
            30,
        );
        for host in [
            "mail.example.com",
            "MAIL.example.com.",
            "smtp.example.org",
            "192.0.2.1",
        ] {
            assert_eq!(
                certificate_flaws(&good_names, host),
                ["self-signed"],
                "{host}"
            );
        }
        for host in [
            "example.com",
            "a.b.example.org",
            "example.org",
            "192.0.2.2",
            "x",
        ] {
            assert_eq!(
                certificate_flaws(&good_names, host),
                [
                    "self-signed".to_string(),
                    format!("not valid for the name {host:?}")
                ],
                "{host}"
            );
        }
        // Without any SAN the CN names the host.
        let cn_only = certificate(&[], "mx.example.net", 30);
        assert_eq!(
            certificate_flaws(&cn_only, "mx.example.net"),
            ["self-signed"]
        );
        let expired = certificate(&["mx.example.net"], "x", 0);
        assert_eq!(
            certificate_flaws(&expired, "mx.example.net"),
            ["self-signed", "expired"]
        );
    }

    #[test]
    fn alerts_about_the_client_certificate_are_77() {
        let endpoint = Endpoint {
            host: "mx.example".into(),
            port: 465,
        };
        let required = "error:0A00045C:SSL routines:ssl3_read_bytes:tlsv13 alert certificate required:../ssl/record/rec_layer_s3.c:1601:SSL alert number 116";
        let err = handshake_error(&endpoint, required, &[]);
        assert_eq!(err.exit, Exit::NoPerm);
        assert!(
            err.to_string().contains("requires a client certificate"),
            "{err}"
        );
        let expired = "ssl3_read_bytes:sslv3 alert certificate expired:SSL alert number 45";
        let err = handshake_error(&endpoint, expired, &[]);
        assert_eq!(err.exit, Exit::NoPerm);
        assert!(
            err.to_string()
                .contains("did not accept the client certificate (certificate expired)"),
            "{err}"
        );
        // The client's own verdict on the server's certificate is not one.
        assert!(client_certificate_refused(
            &endpoint,
            "certificate verify failed: (certificate has expired)"
        )
        .is_none());
    }

    #[test]
    fn handshake_errors_name_the_reason() {
        let endpoint = Endpoint {
            host: "mx.example".into(),
            port: 465,
        };
        let cases = [
            (
                "certificate verify failed: (self-signed certificate)",
                "self-signed",
            ),
            (
                "certificate verify failed: (certificate has expired)",
                "expired",
            ),
            (
                "certificate verify failed: (Hostname mismatch)",
                "not valid for the name",
            ),
        ];
        for (detail, expected) in cases {
            let err = handshake_error(&endpoint, detail, &[]);
            assert_eq!(err.exit, Exit::Unavailable);
            assert!(err.message.contains(expected), "{}", err.message);
        }
        assert_eq!(
            handshake_error(&endpoint, "wrong version number", &[]).exit,
            Exit::Protocol
        );
    }

    #[test]
    fn a_wrong_name_lists_the_names_the_certificate_is_for() {
        let endpoint = Endpoint {
            host: "localhost".into(),
            port: 587,
        };
        let der = certificate(&["mail.example.com", "IP:192.0.2.1"], "x", 30);
        let names = certificate_names(&der);
        assert_eq!(names, ["mail.example.com", "192.0.2.1"]);
        let err = handshake_error(
            &endpoint,
            "certificate verify failed: (hostname mismatch)",
            &names,
        );
        assert_eq!(
            err.message,
            "TLS: cannot verify localhost:587: its certificate is not valid for the name \"localhost\", only for mail.example.com, 192.0.2.1"
        );
        assert!(
            err.to_string().contains("connect to one of those names"),
            "{err}"
        );
        // Without any SAN, the CN is the name.
        let cn_only = certificate(&[], "mx.example.net", 30);
        assert_eq!(certificate_names(&cn_only), ["mx.example.net"]);
    }

    #[test]
    fn dates_are_iso_8601_in_utc() {
        let at = |unix: i64| iso8601(&Asn1Time::from_unix(unix).unwrap());
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(1_796_192_630), "2026-12-02T06:23:50Z");
        assert_eq!(at(4_102_444_799), "2099-12-31T23:59:59Z");
    }

    #[test]
    fn fingerprints_parse_with_or_without_colons() {
        let hex = "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF";
        let bytes = parse_fingerprint(hex).unwrap();
        assert_eq!(bytes[1], 0x11);
        let colons = format_fingerprint(&bytes);
        assert_eq!(parse_fingerprint(&colons).unwrap(), bytes);
        assert!(parse_fingerprint("abc").is_err());
    }
}
