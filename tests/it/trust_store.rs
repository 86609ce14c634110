//! Where the trusted CAs come from (issue 16): the system's hashed
//! directory, looked up as chains need it (`SSL_CERT_DIR`), the bundle
//! where the directory has no hash links (`SSL_CERT_FILE`), a bundle of
//! the user's own, and no trust store at all for --insecure and a pinned
//! fingerprint. The test server's self-signed certificate plays the CA.

use std::path::{Path, PathBuf};

use openssl::x509::X509;
use tempfile::TempDir;

use crate::common::{postie, ServerOptions, TestServer, Tls};

fn starttls_server() -> TestServer {
    TestServer::start(ServerOptions {
        tls: Tls::StartTls,
        ..ServerOptions::default()
    })
}

/// A directory as `openssl rehash` leaves it: the certificate under its
/// subject hash (`HHHHHHHH.0`), as a symbolic link to the PEM file.
fn hashed_dir(ca: &Path) -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    let pem = std::fs::read(ca).unwrap();
    let hash = X509::from_pem(&pem).unwrap().subject_name_hash();
    std::fs::write(dir.path().join("test-ca.pem"), &pem).unwrap();
    std::os::unix::fs::symlink("test-ca.pem", dir.path().join(format!("{hash:08x}.0"))).unwrap();
    dir
}

/// A directory holding the certificate under its own name only, as some
/// distributions ship /etc/ssl/certs: nothing a hash lookup could find.
fn unhashed_dir(ca: &Path) -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(ca, dir.path().join("test-ca.pem")).unwrap();
    dir
}

/// A bundle file holding the certificate.
fn bundle(ca: &Path) -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ca-certificates.crt");
    std::fs::copy(ca, &path).unwrap();
    (dir, path)
}

/// An empty directory: a trust store without the test CA.
fn empty_dir() -> TempDir {
    tempfile::tempdir().unwrap()
}

/// Sends over `--tls starttls` (full verification) with only these
/// variables pointing at trust stores; exit code and stderr.
fn send(server: &TestServer, env: &[(&str, &Path)], extra: &[&str]) -> (i32, String) {
    let mut cmd = postie();
    cmd.args(["--server", &format!("localhost:{}", server.port)])
        .args(["--tls", "starttls", "-v", "-f", "a@example.com"])
        .args(extra)
        .args(["-s", "trust", "--body", "hi", "b@example.com"]);
    for (name, value) in env {
        cmd.env(name, value);
    }
    let output = cmd.output().unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn the_hashed_directory_is_looked_up() {
    let server = starttls_server();
    let dir = hashed_dir(&server.ca_file());
    let (code, stderr) = send(&server, &[("SSL_CERT_DIR", dir.path())], &[]);
    assert_eq!(code, 0, "{stderr}");
    let note = format!(
        "CA certificates: looked up in {} as needed",
        dir.path().display()
    );
    assert!(stderr.contains(&note), "{stderr}");
    assert!(stderr.contains("verified: trusted issuer"), "{stderr}");
    assert_eq!(server.wait_for_messages(1).len(), 1);
}

#[test]
fn without_hash_links_the_bundle_is_read() {
    let server = starttls_server();
    let dir = unhashed_dir(&server.ca_file());
    let (_keep, file) = bundle(&server.ca_file());
    let env = [
        ("SSL_CERT_DIR", dir.path()),
        ("SSL_CERT_FILE", file.as_path()),
    ];
    let (code, stderr) = send(&server, &env, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains(&format!("CA certificates: read from {}", file.display())),
        "{stderr}"
    );
    // The directory's own certificate is not what was used: without the
    // bundle, nothing there can be found.
    let empty = empty_dir();
    let missing = empty.path().join("none.crt");
    let env = [
        ("SSL_CERT_DIR", dir.path()),
        ("SSL_CERT_FILE", missing.as_path()),
    ];
    let (code, stderr) = send(&server, &env, &[]);
    assert_eq!(code, 69, "{stderr}");
    assert!(
        stderr.contains("its certificate is self-signed"),
        "{stderr}"
    );
    assert!(
        stderr.contains("CA certificates: none found on this machine"),
        "{stderr}"
    );
}

#[test]
fn a_hashed_directory_wins_over_the_bundle_beside_it() {
    // As on Debian, where both forms hold the same CAs: the bundle is not
    // parsed when the directory can be looked up.
    let server = starttls_server();
    let other = empty_dir();
    let unrelated = hashed_dir(&other_certificate(other.path()));
    let (_keep, file) = bundle(&server.ca_file());
    let env = [
        ("SSL_CERT_DIR", unrelated.path()),
        ("SSL_CERT_FILE", file.as_path()),
    ];
    let (code, stderr) = send(&server, &env, &[]);
    assert_eq!(code, 69, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "CA certificates: looked up in {} as needed",
            unrelated.path().display()
        )),
        "{stderr}"
    );
}

#[test]
fn a_bundle_of_the_users_own_is_read_beside_the_directory() {
    // SSL_CERT_FILE alone is a choice (a company CA added to a copy of the
    // bundle): honoured as OpenSSL's default paths would.
    let server = starttls_server();
    let (_keep, file) = bundle(&server.ca_file());
    let (code, stderr) = send(&server, &[("SSL_CERT_FILE", file.as_path())], &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains(&format!("CA certificates: read from {}", file.display())),
        "{stderr}"
    );
}

#[test]
fn the_ca_file_is_added_to_the_system_store() {
    let server = starttls_server();
    let empty = empty_dir();
    let ca = server.ca_file();
    let (code, stderr) = send(
        &server,
        &[
            ("SSL_CERT_DIR", empty.path()),
            ("SSL_CERT_FILE", empty.path()),
        ],
        &["--ca-file", ca.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("plus the CA file"), "{stderr}");
}

#[test]
fn insecure_and_pinning_load_no_trust_store() {
    let server = starttls_server();
    // The CA is trusted through the directory: a verdict asked of the
    // store would say so.
    let dir = hashed_dir(&server.ca_file());
    let env = [("SSL_CERT_DIR", dir.path())];
    let (code, stderr) = send(&server, &env, &["--insecure"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains("CA certificates:"), "{stderr}");
    assert!(stderr.contains("NOT verified (--insecure)"), "{stderr}");

    let pin = server.cert_sha256();
    let (code, stderr) = send(&server, &env, &["--tls-fingerprint", &pin]);
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains("CA certificates:"), "{stderr}");
    assert!(stderr.contains("pinned: SHA-256 matches"), "{stderr}");

    // The JSON report does not claim a verdict nobody asked for.
    let output = postie()
        .env("SSL_CERT_DIR", dir.path())
        .args(["--server", &format!("localhost:{}", server.port)])
        .args([
            "--tls",
            "starttls",
            "--insecure",
            "--capabilities",
            "--json",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let tls = &json["sessions"][0]["tls"];
    assert_eq!(tls["verified"], false, "{json}");
    assert_eq!(tls["verify_error"], "not checked: --insecure", "{json}");
}

/// A self-signed certificate of another name, written as `other.pem` in
/// `dir`: a CA that vouches for nothing the test server shows.
fn other_certificate(dir: &Path) -> PathBuf {
    use openssl::asn1::Asn1Time;
    use openssl::ec::{EcGroup, EcKey};
    use openssl::hash::MessageDigest;
    use openssl::nid::Nid;
    use openssl::pkey::PKey;
    use openssl::x509::X509NameBuilder;
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    let key = PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_nid(Nid::COMMONNAME, "unrelated CA")
        .unwrap();
    let name = name.build();
    let mut cert = X509::builder().unwrap();
    cert.set_version(2).unwrap();
    cert.set_subject_name(&name).unwrap();
    cert.set_issuer_name(&name).unwrap();
    cert.set_pubkey(&key).unwrap();
    cert.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    cert.set_not_after(&Asn1Time::days_from_now(30).unwrap())
        .unwrap();
    cert.sign(&key, MessageDigest::sha256()).unwrap();
    let path = dir.join("other.pem");
    std::fs::write(&path, cert.build().to_pem().unwrap()).unwrap();
    path
}
