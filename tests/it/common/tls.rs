//! Throwaway certificates, generated at run time into a `TempDir`, and
//! the TLS acceptor that presents them.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::ssl::{SslAcceptor, SslMethod, SslVerifyMode};
use openssl::x509::extension::{
    BasicConstraints, ExtendedKeyUsage, SubjectAlternativeName, SubjectKeyIdentifier,
};
use openssl::x509::{X509NameBuilder, X509};
use tempfile::TempDir;

/// The server certificate's flaw, for the certificate-check tests. All are
/// self-signed; `ca_file()` makes a good one trusted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CertKind {
    /// localhost / 127.0.0.1, valid from yesterday for 30 days.
    Good,
    /// Valid names, but expired yesterday.
    Expired,
    /// Valid dates, but only for wrong.example.
    WrongName,
    /// Valid, but expires in 5 days (the report warns under 14).
    ExpiresSoon,
    /// A client's certificate (CN=postie client, for clientAuth, no SAN).
    Client,
}

/// A certificate and its key, in memory and as PEM files.
pub(super) struct CertFiles {
    /// Holds cert.pem and key.pem; removes them when dropped.
    _dir: TempDir,
    pub(super) cert_path: PathBuf,
    pub(super) key_path: PathBuf,
    pub(super) cert: X509,
    pub(super) key: PKey<Private>,
}

/// Self-signed EC P-256 certificate, CA:FALSE. By default CN=localhost,
/// SAN DNS:localhost and IP:127.0.0.1, valid from now-1day to now+30days;
/// `kind` changes the names (WrongName, Client) or the dates (Expired,
/// ExpiresSoon), see [`CertKind`].
pub(super) fn generate_cert(kind: CertKind) -> CertFiles {
    let build = || -> Result<(X509, PKey<Private>), openssl::error::ErrorStack> {
        let host = match kind {
            CertKind::WrongName => "wrong.example",
            CertKind::Client => "postie client",
            _ => "localhost",
        };
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
        let key = PKey::from_ec_key(EcKey::generate(&group)?)?;

        let mut name = X509NameBuilder::new()?;
        name.append_entry_by_nid(Nid::COMMONNAME, host)?;
        let name = name.build();

        let mut b = X509::builder()?;
        b.set_version(2)?;
        let mut serial = BigNum::new()?;
        serial.rand(127, MsbOption::MAYBE_ZERO, false)?;
        let serial = serial.to_asn1_integer()?;
        b.set_serial_number(&serial)?;
        b.set_subject_name(&name)?;
        b.set_issuer_name(&name)?;
        b.set_pubkey(&key)?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let (not_before, not_after) = match kind {
            CertKind::Expired => (
                Asn1Time::from_unix((now - 30 * 86_400) as _)?,
                Asn1Time::from_unix((now - 86_400) as _)?,
            ),
            CertKind::ExpiresSoon => (
                Asn1Time::from_unix((now - 86_400) as _)?,
                Asn1Time::days_from_now(5)?,
            ),
            _ => (
                Asn1Time::from_unix((now - 86_400) as _)?,
                Asn1Time::days_from_now(30)?,
            ),
        };
        b.set_not_before(&not_before)?;
        b.set_not_after(&not_after)?;

        let basic = BasicConstraints::new().critical().build()?;
        b.append_extension(basic)?;
        if kind == CertKind::Client {
            b.append_extension(ExtendedKeyUsage::new().client_auth().build()?)?;
        } else {
            b.append_extension(ExtendedKeyUsage::new().server_auth().build()?)?;
            let mut san = SubjectAlternativeName::new();
            san.dns(host);
            if kind != CertKind::WrongName {
                san.ip("127.0.0.1");
            }
            let san = san.build(&b.x509v3_context(None, None))?;
            b.append_extension(san)?;
        }
        let ski = SubjectKeyIdentifier::new().build(&b.x509v3_context(None, None))?;
        b.append_extension(ski)?;

        b.sign(&key, MessageDigest::sha256())?;
        Ok((b.build(), key))
    };

    let (cert, key) = build().expect("generate throwaway TLS certificate");
    let dir = tempfile::Builder::new()
        .prefix("postie-test-tls-")
        .tempdir()
        .expect("create temp dir for TLS certificate");
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, cert.to_pem().expect("cert to PEM")).expect("write cert.pem");
    std::fs::write(
        &key_path,
        key.private_key_to_pem_pkcs8().expect("key to PEM"),
    )
    .expect("write key.pem");
    // postie refuses a client key that group or others can read.
    std::fs::set_permissions(
        &key_path,
        <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o600),
    )
    .expect("chmod key.pem");
    CertFiles {
        _dir: dir,
        cert_path,
        key_path,
        cert,
        key,
    }
}

pub(super) fn implicit_acceptor(certs: &CertFiles, client: Option<&CertFiles>) -> SslAcceptor {
    let mut b =
        SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server()).expect("SslAcceptor builder");
    b.set_private_key(&certs.key).expect("set private key");
    b.set_certificate(&certs.cert).expect("set certificate");
    b.check_private_key().expect("key matches certificate");
    if let Some(client) = client {
        // The self-signed client certificate is its own trust anchor.
        b.cert_store_mut()
            .add_cert(client.cert.clone())
            .expect("trust the client certificate");
        b.set_verify(SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT);
    }
    b.build()
}
