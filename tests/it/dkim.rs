//! DKIM signing, checked by an independent verifier: Python's dkimpy
//! reads the message the test server received and fetches the public key
//! from the test DNS server, where the record `postie dkim keygen`
//! printed is published. Skipped (failed under CI) without dkimpy.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use crate::common::dns::DnsServer;
use crate::common::{closed_port, files_ending, postie, sendmail, skip, ServerOptions, TestServer};

/// dkimpy's verify with a dnsfunc that asks the test DNS server (over
/// TCP, so that no RSA record is truncated); exit 0 when the signature
/// verifies, 1 when it does not.
const VERIFY: &str = r#"
import sys, dkim, dns.message, dns.query
port = int(sys.argv[1])
message = sys.stdin.buffer.read()
def dnsfunc(name, timeout=5):
    query = dns.message.make_query(name.decode(), "TXT")
    answer = dns.query.tcp(query, "127.0.0.1", port=port, timeout=timeout)
    for rrset in answer.answer:
        for rdata in rrset:
            return b"".join(rdata.strings)
    return None
sys.exit(0 if dkim.verify(message, dnsfunc=dnsfunc) else 1)
"#;

/// Whether python3 with dkimpy, dnspython and PyNaCl (Ed25519) is here;
/// skips the test when not.
pub fn have_dkimpy() -> bool {
    let found = std::process::Command::new("python3")
        .args(["-c", "import dkim, dns.query, nacl"])
        .output()
        .is_ok_and(|out| out.status.success());
    if !found {
        skip("python3 with dkimpy, dnspython and pynacl is not installed (pip install dkimpy dnspython pynacl)");
    }
    found
}

/// The signing domain: under the test DNS server's zone.
pub const DOMAIN: &str = "example.test";
pub const SELECTOR: &str = "sel";

/// A key made by `postie dkim keygen`, its record served by a test DNS
/// server, and a config whose account signs with it.
struct Signer {
    dir: tempfile::TempDir,
    config: PathBuf,
    dns: DnsServer,
}

impl Signer {
    fn new(algorithm: &str, server: &str, extra: &str) -> Signer {
        let dir = tempfile::tempdir().unwrap();
        let (key, dns) = published_key(dir.path(), algorithm);
        let config = dir.path().join("config.toml");
        std::fs::write(
            &config,
            format!(
                "[accounts.a]\nserver = \"{server}\"\nfrom = \"A <a@{DOMAIN}>\"\ntimeout = 5\n{}{extra}\n",
                account_keys(&key)
            ),
        )
        .unwrap();
        Signer { dir, config, dns }
    }

    fn postie(&self) -> assert_cmd::Command {
        let mut cmd = postie();
        cmd.env("POSTIE_CONFIG", &self.config);
        cmd
    }

    fn verifies(&self, message: &[u8]) -> bool {
        verifies(&self.dns, message)
    }
}

/// The account keys that sign with `key` for [`DOMAIN`] and [`SELECTOR`].
pub fn account_keys(key: &Path) -> String {
    format!(
        "dkim_key = \"{}\"\ndkim_selector = \"{SELECTOR}\"\n",
        key.display()
    )
}

/// A key made by `postie dkim keygen` in `dir` (for [`SELECTOR`] and
/// [`DOMAIN`]), and a test DNS server publishing the record keygen printed.
pub fn published_key(dir: &Path, algorithm: &str) -> (PathBuf, DnsServer) {
    let key = dir.join("sel.private");
    let output = postie()
        .args(["dkim", "keygen", "--selector", SELECTOR, "--domain", DOMAIN])
        .args(["--algorithm", algorithm, "--key-file"])
        .arg(&key)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("dkim_selector = \"sel\""), "{stderr}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    let record = published_text(&stdout);
    let dns = DnsServer::start(&[("sel._domainkey.example.test", "TXT", &record)]);
    (key, dns)
}

/// Whether dkimpy verifies `message` with the keys `dns` publishes.
pub fn verifies(dns: &DnsServer, message: &[u8]) -> bool {
    let mut child = std::process::Command::new("python3")
        .args(["-c", VERIFY, &dns.addr.port().to_string()])
        .stdin(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(message).unwrap();
    let status = child.wait().unwrap();
    match status.code() {
        Some(0) => true,
        Some(1) => false,
        other => panic!("the verifier failed to run: {other:?}"),
    }
}

/// The TXT text of keygen's zone-file entry: its quoted strings joined,
/// after checking that each is at most 255 octets and the owner name.
fn published_text(entry: &str) -> String {
    assert!(
        entry.starts_with("sel._domainkey.example.test. IN TXT ( \""),
        "{entry}"
    );
    let strings: Vec<&str> = entry.split('"').skip(1).step_by(2).collect();
    assert!(strings.iter().all(|s| s.len() <= 255), "{entry}");
    strings.concat()
}

/// The DKIM-Signature fields of a message's header block.
pub fn signatures(message: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(message);
    let header = text.split("\r\n\r\n").next().unwrap_or("");
    let unfolded = header.replace("\r\n\t", " ").replace("\r\n ", " ");
    unfolded
        .lines()
        .filter(|line| line.to_ascii_lowercase().starts_with("dkim-signature:"))
        .map(str::to_string)
        .collect()
}

/// The value of tag `name` in a DKIM-Signature field, white space removed.
fn tag(signature: &str, name: &str) -> String {
    let value = signature.split_once(':').unwrap().1;
    value
        .split(';')
        .filter_map(|t| t.split_once('='))
        .find(|(k, _)| k.trim() == name)
        .map(|(_, v)| v.split_whitespace().collect())
        .unwrap_or_default()
}

fn one_message(server: &TestServer) -> Vec<u8> {
    let received = server.received();
    assert_eq!(received.len(), 1);
    received[0].data.clone()
}

/// A copy of `message` with one body octet changed.
fn tampered(message: &[u8]) -> Vec<u8> {
    let body = message.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let at = body
        + message[body..]
            .iter()
            .position(u8::is_ascii_alphanumeric)
            .unwrap();
    let mut changed = message.to_vec();
    changed[at] = if changed[at] == b'x' { b'y' } else { b'x' };
    changed
}

#[test]
fn a_composed_message_with_an_attachment_verifies_and_tampering_is_caught() {
    if !have_dkimpy() {
        return;
    }
    let server = TestServer::start(ServerOptions::default());
    let signer = Signer::new("rsa", &server.addr(), "");
    let attachment = signer.dir.path().join("report.csv");
    std::fs::write(&attachment, "day,count\nmonday,3\n").unwrap();
    let output = signer
        .postie()
        .args(["-v", "-s", "Grüße", "--body", "Hallo Welt", "-a"])
        .arg(&attachment)
        .arg("b@example.org")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("DKIM-signed with d=example.test s=sel (rsa-sha256)"),
        "{stderr}"
    );
    let message = one_message(&server);
    let found = signatures(&message);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(tag(&found[0], "a"), "rsa-sha256");
    assert_eq!(tag(&found[0], "d"), DOMAIN);
    assert_eq!(tag(&found[0], "c"), "relaxed/relaxed");
    // From is oversigned: one From in the message, two in h=.
    let h = tag(&found[0], "h");
    let froms = h
        .split(':')
        .filter(|n| n.eq_ignore_ascii_case("from"))
        .count();
    assert_eq!(froms, 2, "h={h}");
    assert!(h.to_ascii_lowercase().contains("subject"), "h={h}");
    assert!(signer.verifies(&message));
    assert!(!signer.verifies(&tampered(&message)));
}

#[test]
fn a_dry_run_prints_the_signed_message() {
    if !have_dkimpy() {
        return;
    }
    let signer = Signer::new("ed25519", "127.0.0.1:25", "");
    let output = signer
        .postie()
        .args(["--dry-run", "-s", "hi", "--body", "x", "b@example.org"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    let found = signatures(&output.stdout);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(tag(&found[0], "a"), "ed25519-sha256");
    assert!(signer.verifies(&output.stdout));
}

#[test]
fn an_ed25519_signed_message_file_has_its_8bit_body_made_7bit_first() {
    if !have_dkimpy() {
        return;
    }
    let server = TestServer::start(ServerOptions::default());
    let signer = Signer::new("ed25519", &server.addr(), "");
    let file = signer.dir.path().join("m.eml");
    std::fs::write(
        &file,
        "From: A <a@example.test>\nTo: b@example.org\nSubject: x\nMIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\nGrüße aus Köln, wo das Wetter heute schön ist.\n",
    )
    .unwrap();
    let output = signer
        .postie()
        .args(["-v", "--message"])
        .arg(&file)
        .arg("b@example.org")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("as quoted-printable before DKIM signing"),
        "{stderr}"
    );
    let received = server.received();
    assert!(!received[0].body_8bit, "sent as 7bit");
    let message = one_message(&server);
    assert!(message.is_ascii());
    let text = String::from_utf8_lossy(&message);
    assert!(text.contains("Gr=C3=BC=C3=9Fe aus K=C3=B6ln, wo"), "{text}");
    assert!(
        text.contains("Content-Transfer-Encoding: quoted-printable"),
        "{text}"
    );
    let found = signatures(&message);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(tag(&found[0], "a"), "ed25519-sha256");
    assert!(signer.verifies(&message));
    assert!(!signer.verifies(&tampered(&message)));
}

#[test]
fn sendmail_t_is_signed_after_bcc_is_removed() {
    if !have_dkimpy() {
        return;
    }
    let server = TestServer::start(ServerOptions::default());
    let signer = Signer::new("rsa", &server.addr(), "");
    let (_link, mut cmd) = sendmail();
    let output = cmd
        .env("POSTIE_CONFIG", &signer.config)
        .args(["-t", "-i"])
        .write_stdin(
            "From: a@example.test\nTo: b@example.org\nBcc: hidden@example.org\nSubject: cron\n\nall fine\n",
        )
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let received = server.received();
    assert_eq!(received[0].rcpt_to, ["b@example.org", "hidden@example.org"]);
    let message = one_message(&server);
    assert!(!String::from_utf8_lossy(&message).contains("hidden@"));
    assert_eq!(signatures(&message).len(), 1);
    assert!(signer.verifies(&message));
}

#[test]
fn a_large_streamed_attachment_is_signed_and_verifies() {
    if !have_dkimpy() {
        return;
    }
    let server = TestServer::start(ServerOptions::default());
    let signer = Signer::new("rsa", &server.addr(), "");
    // Over the 1 MiB above which attachments are streamed from the file.
    let big = signer.dir.path().join("big.bin");
    let data: Vec<u8> = (0..24u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    std::fs::write(&big, &data).unwrap();
    let output = signer
        .postie()
        .args(["-s", "big", "--body", "attached", "-a"])
        .arg(&big)
        .arg("b@example.org")
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let message = one_message(&server);
    assert!(message.len() > 32 << 20);
    assert_eq!(signatures(&message).len(), 1);
    assert!(signer.verifies(&message));
    assert!(!signer.verifies(&tampered(&message)));
}

#[test]
fn a_from_domain_outside_dkim_domain_is_sent_unsigned_with_a_note() {
    if !have_dkimpy() {
        return;
    }
    let server = TestServer::start(ServerOptions::default());
    let signer = Signer::new("rsa", &server.addr(), "dkim_domain = \"other.test\"");
    let output = signer
        .postie()
        .args(["-v", "-s", "hi", "--body", "x", "b@example.org"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(
            "not DKIM-signed: the From domain example.test is not other.test or under it"
        ),
        "{stderr}"
    );
    assert!(signatures(&one_message(&server)).is_empty());
    // A subdomain of dkim_domain is signed with d=dkim_domain.
    let server = TestServer::start(ServerOptions::default());
    let parent = Signer::new("rsa", &server.addr(), "dkim_domain = \"example.test\"");
    parent
        .postie()
        .args([
            "-f",
            "x@mail.example.test",
            "-s",
            "hi",
            "--body",
            "x",
            "b@example.org",
        ])
        .assert()
        .success();
    let message = one_message(&server);
    let found = signatures(&message);
    assert_eq!(tag(&found[0], "d"), DOMAIN);
    assert!(parent.verifies(&message));
}

#[test]
fn a_queued_message_is_flushed_with_exactly_one_signature() {
    if !have_dkimpy() {
        return;
    }
    let down = format!("127.0.0.1:{}", closed_port());
    let signer = Signer::new("rsa", &down, "");
    let queue = signer.dir.path().join("queue");
    let output = signer
        .postie()
        .env("POSTIE_QUEUE_DIR", &queue)
        .args(["--queue", "-s", "later", "--body", "x", "b@example.org"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("queued as "), "{stderr}");
    // The server comes back; two flushes, the second with nothing to do.
    let server = TestServer::start(ServerOptions::default());
    let config = std::fs::read_to_string(&signer.config)
        .unwrap()
        .replace(&down, &server.addr());
    std::fs::write(&signer.config, config).unwrap();
    for _ in 0..2 {
        signer
            .postie()
            .env("POSTIE_QUEUE_DIR", &queue)
            .args(["queue", "flush", "--now"])
            .assert()
            .success();
    }
    let message = one_message(&server);
    assert_eq!(signatures(&message).len(), 1);
    assert!(signer.verifies(&message));
}

#[test]
fn a_key_others_can_read_is_78_and_sendmail_keeps_the_message() {
    // No verifier needed: nothing is signed.
    let server = TestServer::start(ServerOptions::default());
    server.expect_unused();
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("k.private");
    postie()
        .args([
            "dkim",
            "keygen",
            "--selector",
            "s",
            "--domain",
            DOMAIN,
            "--key-file",
        ])
        .arg(&key)
        .assert()
        .success();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[accounts.a]\nserver = \"{}\"\nfrom = \"a@{DOMAIN}\"\ndkim_key = \"{}\"\ndkim_selector = \"s\"\n",
            server.addr(),
            key.display()
        ),
    )
    .unwrap();
    let queue = dir.path().join("queue");
    let (_link, mut cmd) = sendmail();
    let output = cmd
        .env("POSTIE_CONFIG", &config)
        .env("POSTIE_QUEUE_DIR", &queue)
        .args(["-i", "b@example.org"])
        .write_stdin("Subject: cron\n\nkeep me\n")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(78), "{stderr}");
    let error_line = stderr
        .lines()
        .find(|line| line.starts_with("postie: error: "))
        .unwrap();
    assert!(
        error_line.contains("dkim: dkim_key")
            && error_line.contains("group or others can read it")
            && error_line.contains(&format!("chmod 600 {}", key.display())),
        "{stderr}"
    );
    let kept = files_ending(&queue.join("failed"), "eml");
    assert_eq!(kept.len(), 1, "{stderr}");
    let text = std::fs::read_to_string(&kept[0]).unwrap();
    assert!(text.contains("keep me"), "{text}");
}

#[test]
fn keygen_writes_a_private_key_once_and_checks_its_names() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("k.private");
    let keygen = |extra: &[&str]| {
        postie()
            .args(["dkim", "keygen", "--key-file"])
            .arg(&key)
            .args(extra)
            .output()
            .unwrap()
    };
    let made = keygen(&[
        "--selector",
        "s",
        "--domain",
        "example.com",
        "--bits",
        "3072",
    ]);
    assert_eq!(made.status.code(), Some(0));
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let before = std::fs::read(&key).unwrap();
    assert!(String::from_utf8_lossy(&before).starts_with("-----BEGIN PRIVATE KEY-----"));
    let stdout = String::from_utf8_lossy(&made.stdout);
    assert!(stdout.contains("\"v=DKIM1; k=rsa; p="), "{stdout}");
    // Never over an existing key.
    let again = keygen(&["--selector", "s", "--domain", "example.com"]);
    assert_eq!(again.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&again.stderr).contains("never overwrites"));
    assert_eq!(std::fs::read(&key).unwrap(), before);
    for bad in [
        &["--selector", "a b", "--domain", "example.com"][..],
        &["--selector", "s", "--domain", "exa\nmple.com"],
        &[
            "--selector",
            "s",
            "--domain",
            "example.com",
            "--bits",
            "1024",
        ],
        &[
            "--selector",
            "s",
            "--domain",
            "example.com",
            "--algorithm",
            "ed25519",
            "--bits",
            "4096",
        ],
    ] {
        std::fs::remove_file(&key).ok();
        let refused = keygen(bad);
        assert_eq!(refused.status.code(), Some(64), "{bad:?}");
        assert!(!key.exists(), "{bad:?}");
    }
}

// Reaped by wait4 (for its rusage), which clippy does not see.
#[allow(clippy::zombie_processes)]
#[test]
fn signing_a_large_attachment_does_not_hold_it_in_memory() {
    // Measures the child's peak memory: alone, as other tests' would count.
    if crate::common::rerun_alone() {
        return;
    }
    let down = format!("127.0.0.1:{}", closed_port());
    let dir = tempfile::tempdir().unwrap();
    // No verifier needed: the key need not be published.
    let key = dir.path().join("k.private");
    postie()
        .args([
            "dkim",
            "keygen",
            "--selector",
            SELECTOR,
            "--domain",
            DOMAIN,
            "--key-file",
        ])
        .arg(&key)
        .assert()
        .success();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[accounts.a]\nserver = \"{down}\"\nfrom = \"a@{DOMAIN}\"\n{}",
            account_keys(&key)
        ),
    )
    .unwrap();
    let size: usize = 48 << 20;
    let big = dir.path().join("big.bin");
    // Written a MiB at a time: a child's peak RSS starts at this
    // process's, which must stay small.
    let mut file = std::fs::File::create(&big).unwrap();
    for chunk in 0..(size >> 20) as u32 {
        let data: Vec<u8> = (0..1u32 << 20)
            .map(|i| ((chunk << 20 | i).wrapping_mul(2_654_435_761) >> 24) as u8)
            .collect();
        file.write_all(&data).unwrap();
    }
    drop(file);
    let (mut command, home) = crate::common::postie_std();
    let stderr_path = dir.path().join("stderr");
    command
        .env("POSTIE_CONFIG", &config)
        .args(["--queue", "-s", "big", "--body", "attached", "-a"])
        .arg(&big)
        .arg("b@example.org")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr_path).unwrap());
    let child = command.spawn().unwrap();
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value of that plain C struct,
    // and wait4 only writes to the two pointers given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = child.id() as libc::pid_t;
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(waited, pid, "wait4: {}", std::io::Error::last_os_error());
    let stderr = std::fs::read_to_string(&stderr_path).unwrap();
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{stderr}"
    );
    // Queued whole, and signed: the pre-pass read the file, base64 and all.
    let queued = files_ending(&home.join("queue"), "eml");
    assert_eq!(queued.len(), 1, "{stderr}");
    let stored = std::fs::read(&queued[0]).unwrap();
    assert!(stored.len() > size, "{}", stored.len());
    assert_eq!(signatures(&stored).len(), 1);
    // Linux reports ru_maxrss in KiB. The file is 48 MiB and its base64
    // 64 MiB: holding either would pass this line.
    let peak = usage.ru_maxrss as usize * 1024;
    assert!(
        peak < size / 2,
        "peak RSS {} MiB for a {} MiB attachment",
        peak >> 20,
        size >> 20
    );
}

#[test]
fn a_message_kept_for_a_bad_key_is_signed_once_when_retried() {
    if !have_dkimpy() {
        return;
    }
    let server = TestServer::start(ServerOptions::default());
    let signer = Signer::new("rsa", &server.addr(), "");
    let key = signer.dir.path().join("sel.private");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
    let queue = signer.dir.path().join("queue");
    let (_link, mut cmd) = sendmail();
    let output = cmd
        .env("POSTIE_CONFIG", &signer.config)
        .env("POSTIE_QUEUE_DIR", &queue)
        .args(["-i", "b@example.org"])
        .write_stdin("Subject: cron\n\nkeep me\n")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(78));
    let failed = files_ending(&queue.join("failed"), "json");
    assert_eq!(failed.len(), 1);
    let id = failed[0]
        .file_stem()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    // The admin runs the chmod the error line named, then retries.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    for args in [&["queue", "retry", &id][..], &["queue", "flush", "--now"]] {
        let output = signer
            .postie()
            .env("POSTIE_QUEUE_DIR", &queue)
            .args(args)
            .output()
            .unwrap();
        assert_eq!(
            output.status.code(),
            Some(0),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let message = one_message(&server);
    assert!(String::from_utf8_lossy(&message).contains("keep me"));
    assert_eq!(signatures(&message).len(), 1);
    assert!(signer.verifies(&message));
}

/// Cron's and scripts' output often ends in lines of spaces: relaxed
/// canonicalisation drops them, and the body hash must agree (mail-auth
/// 0.13 alone hashed such a body with one CRLF too many).
#[test]
fn a_body_ending_in_lines_of_spaces_verifies() {
    if !have_dkimpy() {
        return;
    }
    let server = TestServer::start(ServerOptions::default());
    let signer = Signer::new("rsa", &server.addr(), "");
    let (_link, mut cmd) = sendmail();
    cmd.env("POSTIE_CONFIG", &signer.config)
        .args(["-i", "b@example.org"])
        .write_stdin("Subject: cron\n\nJob output  \n\t\n   \n \t \n")
        .assert()
        .code(0);
    let message = one_message(&server);
    assert_eq!(signatures(&message).len(), 1);
    assert!(signer.verifies(&message));
    assert!(!signer.verifies(&tampered(&message)));
}

/// Without dkim_domain, d= is the From domain only when a key could be
/// published under it; and a message with two From fields, of which a
/// reader may show either, is not signed for one of them.
#[test]
fn no_signature_for_a_from_that_is_no_domain_or_for_two_from_fields() {
    if !have_dkimpy() {
        return;
    }
    for (from_lines, why) in [
        (
            "From: <a@[127.0.0.1]>\n",
            "the From domain [127.0.0.1] is not a valid domain name",
        ),
        (
            "From: a@localhost\n",
            "the From domain localhost is not a domain with a dot",
        ),
        (
            "From: B <c@evil.example>\nFrom: A <a@example.test>\n",
            "it has 2 From fields",
        ),
    ] {
        let server = TestServer::start(ServerOptions::default());
        let signer = Signer::new("rsa", &server.addr(), "");
        let output = signer
            .postie()
            .args([
                "-v",
                "--message",
                "-",
                "-f",
                "a@example.test",
                "b@example.org",
            ])
            .write_stdin(format!("{from_lines}Subject: hi\n\nx\n"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(&format!("not DKIM-signed: {why}")),
            "{stderr}"
        );
        if output.status.code() == Some(0) {
            assert!(signatures(&one_message(&server)).is_empty());
        }
    }
}
