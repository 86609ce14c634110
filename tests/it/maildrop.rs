//! The maildrop: a user who may not read the system config hands mail to
//! root's queue through /var/spool/postie/maildrop (here a directory of
//! the test's, through POSTIE_SPOOL_DIR), and root's flush picks it up.
//!
//! These tests need root (to create the spool and act as the flush) and
//! setpriv (to act as the user nobody, 65534). Without them they skip, but
//! only when CI is unset: under .ci/run a missing tool is a failure.

use crate::common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::{closed_port, ServerOptions, TestServer};

const NOBODY: u32 = 65534;
const MAGIC: &str = "postie-maildrop 1\n";

/// A machine in a directory: a system config only root may read, the
/// spool, root's queue, and a home and `sendmail` link for nobody.
struct Machine {
    dir: tempfile::TempDir,
    system_config: PathBuf,
    spool: PathBuf,
    queue: PathBuf,
    home: PathBuf,
    sendmail: PathBuf,
}

impl Machine {
    /// None (after saying why) when the test cannot run here.
    fn new(server: &str, extra: &str) -> Option<Machine> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            common::skip("the maildrop tests need root");
            return None;
        }
        if !common::require_tool("setpriv", "util-linux") {
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("postie-maildrop-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .unwrap();
        // nobody must reach the link, the spool and its home.
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let home = dir.path().join("home");
        fs::create_dir(&home).unwrap();
        // Its own (or postie rightly ignores $HOME for the passwd home),
        // and nobody else's to write (or postie rightly refuses the config
        // kept in it).
        fs::set_permissions(&home, fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::chown(&home, Some(65534), Some(65534)).unwrap();
        let sendmail = dir.path().join("sendmail");
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_postie"), &sendmail).unwrap();
        let machine = Machine {
            system_config: dir.path().join("config.toml"),
            spool: dir.path().join("spool"),
            queue: dir.path().join("root-queue"),
            home,
            sendmail,
            dir,
        };
        machine.write_config(server, extra);
        machine
            .as_root(common::postie())
            .args(["queue", "init"])
            .assert()
            .success();
        Some(machine)
    }

    fn write_config(&self, server: &str, extra: &str) {
        fs::write(
            &self.system_config,
            format!(
                "default = \"relay\"\n[accounts.relay]\nserver = \"{server}\"\nfrom = \"cron@example.com\"\ntimeout = 5\n{extra}\n"
            ),
        )
        .unwrap();
        // Holds the relay's password on a real machine: root's alone.
        fs::set_permissions(&self.system_config, fs::Permissions::from_mode(0o600)).unwrap();
    }

    fn maildrop(&self) -> PathBuf {
        self.spool.join("maildrop")
    }

    fn env(&self, mut cmd: assert_cmd::Command) -> assert_cmd::Command {
        cmd.env("POSTIE_SPOOL_DIR", &self.spool)
            .env("POSTIE_SYSTEM_CONFIG", &self.system_config);
        cmd
    }

    /// Root, whose config is the system config.
    fn as_root(&self, cmd: assert_cmd::Command) -> assert_cmd::Command {
        let mut cmd = self.env(cmd);
        cmd.env("POSTIE_CONFIG", &self.system_config)
            .env("POSTIE_QUEUE_DIR", &self.queue);
        cmd
    }

    /// `program args...` as nobody, with a home of its own and no config.
    fn as_nobody(&self, program: &Path) -> assert_cmd::Command {
        let mut cmd = self.env(common::hermetic("setpriv"));
        // nobody's own queue is the default one, in its home.
        cmd.env_remove("POSTIE_QUEUE_DIR")
            .env("HOME", &self.home)
            .env("XDG_CONFIG_HOME", self.home.join(".config"))
            .env("XDG_STATE_HOME", self.home.join(".state"))
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(program);
        cmd
    }

    fn incoming(&self) -> PathBuf {
        self.spool.join("incoming")
    }

    fn flush(&self) -> std::process::Output {
        self.as_root(common::postie())
            .args(["queue", "flush"])
            .timeout(Duration::from_secs(30))
            .output()
            .unwrap()
    }

    fn drops(&self) -> Vec<PathBuf> {
        let mut found: Vec<PathBuf> = fs::read_dir(self.maildrop())
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        found.sort();
        found
    }
}

fn json_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(reader) = fs::read_dir(dir) else {
        return Vec::new();
    };
    reader
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect()
}

/// A drop file as postie writes it, for planting.
fn drop_file(recipient: &str, subject: &str) -> String {
    format!(
        "{MAGIC}{{\"recipients\":[\"{recipient}\"],\"ignore_dots\":true}}\nSubject: {subject}\n\nx\n"
    )
}

#[test]
fn a_user_without_the_config_drops_the_message_and_roots_flush_sends_it() {
    let server = TestServer::start(ServerOptions::default());
    let Some(machine) = Machine::new(&server.addr(), "") else {
        return;
    };
    let spool = fs::metadata(&machine.spool).unwrap();
    assert_eq!(spool.mode() & 0o7777, 0o711);
    for dir in [machine.maildrop(), machine.incoming()] {
        assert_eq!(
            fs::metadata(&dir).unwrap().mode() & 0o7777,
            0o1733,
            "{dir:?}"
        );
    }

    let output = machine
        .as_nobody(&machine.sendmail)
        .args(["-i", "-F", "Nightly Job", "-f", "nobody@example.com"])
        .args(["ops@example.com"])
        .write_stdin("Subject: nightly\n\nall fine\n.\nstill the body\n")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(stderr, "");

    // One finished file, the user's own, with argv-level data only.
    let drops = machine.drops();
    assert_eq!(drops.len(), 1, "{drops:?}");
    let meta = fs::symlink_metadata(&drops[0]).unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o777), (NOBODY, 0o600));
    let text = fs::read_to_string(&drops[0]).unwrap();
    let header_line = text.strip_prefix(MAGIC).unwrap().lines().next().unwrap();
    let header: serde_json::Value = serde_json::from_str(header_line).unwrap();
    let mut keys: Vec<&str> = header
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "from",
            "full_name",
            "ignore_dots",
            "read_recipients",
            "recipients"
        ]
    );
    assert!(json_files(&machine.queue).is_empty());

    let output = machine.flush();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let got = server.wait_for_messages(1);
    assert_eq!(got[0].mail_from, "nobody@example.com");
    assert_eq!(got[0].rcpt_to, ["ops@example.com"]);
    let data = String::from_utf8_lossy(&got[0].data);
    assert!(data.starts_with("Received: by "), "{data}");
    assert!(data.contains("(postie, from userid 65534);"), "{data}");
    assert!(data.contains("still the body"), "-i was kept: {data}");
    assert!(
        data.contains("Nightly Job"),
        "-F names the added From: {data}"
    );
    assert!(machine.drops().is_empty(), "the drop file is removed");
    let staged: Vec<_> = fs::read_dir(machine.incoming())
        .unwrap()
        .flatten()
        .collect();
    assert!(staged.is_empty(), "nothing left behind: {staged:?}");
    assert!(json_files(&machine.queue).is_empty(), "and the entry sent");
}

#[test]
fn sendmail_bs_from_a_user_without_the_config_drops_each_message() {
    let server = TestServer::start(ServerOptions::default());
    let Some(machine) = Machine::new(&server.addr(), "") else {
        return;
    };
    let dialogue = "EHLO app.example\r\nMAIL FROM:<app@example.com>\r\n\
                    RCPT TO:<ops@example.com>\r\nDATA\r\nSubject: from php\r\n\r\n\
                    ..dotted\r\n.\r\nQUIT\r\n";
    let output = machine
        .as_nobody(&machine.sendmail)
        .args(["-bs", "-i"])
        .write_stdin(dialogue)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("\r\n250 2.0.0 Queued in the maildrop for the system's queue\r\n221 "),
        "{stdout}"
    );
    let drops = machine.drops();
    assert_eq!(drops.len(), 1, "{drops:?}");
    assert_eq!(fs::symlink_metadata(&drops[0]).unwrap().uid(), NOBODY);

    let output = machine.flush();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let got = server.wait_for_messages(1);
    assert_eq!(got[0].mail_from, "app@example.com");
    assert_eq!(got[0].rcpt_to, ["ops@example.com"]);
    let data = String::from_utf8_lossy(&got[0].data);
    assert!(data.contains("\r\n\r\n.dotted\r\n"), "{data}");
    assert!(machine.drops().is_empty());
}

#[test]
fn the_ordinary_command_line_never_uses_the_maildrop() {
    let Some(machine) = Machine::new(&format!("127.0.0.1:{}", closed_port()), "") else {
        return;
    };
    let own = machine.home.join("own.toml");
    fs::write(&own, "").unwrap();
    fs::set_permissions(&own, fs::Permissions::from_mode(0o644)).unwrap();
    let output = machine
        .as_nobody(Path::new(env!("CARGO_BIN_EXE_postie")))
        .args(["--config"])
        .arg(&own)
        .args(["--server", &format!("127.0.0.1:{}", closed_port())])
        .args(["-f", "a@example.com", "ops@example.com", "--body", "x"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(75));
    assert!(machine.drops().is_empty());
}

#[test]
fn flush_refuses_fifos_symlinks_and_hard_links_without_hanging() {
    let server = TestServer::start(ServerOptions::default());
    let Some(machine) = Machine::new(&server.addr(), "") else {
        return;
    };
    // A spool from before incoming/, where a dot name in the maildrop is a
    // drop still being written (with incoming/ see
    // a_dot_name_planted_in_the_maildrop_is_dealt_with_at_once).
    fs::remove_dir(machine.incoming()).unwrap();
    // Root's file that a symbolic link points at: it must never be read.
    let secret = machine.dir.path().join("secret");
    fs::write(&secret, drop_file("thief@example.com", "secret")).unwrap();
    // nobody's own file, hard-linked into the maildrop.
    let own = machine.home.join("own");
    let plant = format!(
        "cd '{drop}' && mkfifo fifo && ln -s '{secret}' symlink && printf '%s' '{content}' > '{own}' && ln '{own}' hardlink && touch -d '2 days ago' .abandoned && touch .being-written",
        drop = machine.maildrop().display(),
        secret = secret.display(),
        own = own.display(),
        content = drop_file("thief@example.com", "hard link"),
    );
    machine
        .as_nobody(Path::new("/bin/sh"))
        .args(["-c", &plant])
        .assert()
        .success();
    // And one honest message.
    machine
        .as_nobody(&machine.sendmail)
        .args(["-i", "ops@example.com"])
        .write_stdin("Subject: honest\n\nx\n")
        .assert()
        .success();
    assert_eq!(machine.drops().len(), 6);

    let output = machine.flush();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(65), "{stderr}");
    for (name, why) in [
        ("fifo", "not a regular file"),
        ("symlink", "a symbolic link"),
        ("hardlink", "2 links"),
    ] {
        assert!(
            stderr
                .lines()
                .any(|l| l.contains(&format!("maildrop: {name}: refused: ")) && l.contains(why)),
            "{name}: {stderr}"
        );
    }
    let got = server.wait_for_messages(1);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(server.received().len(), 1, "{stderr}");
    assert_eq!(common::parse(&got[0].data).subject(), Some("honest"));
    // An unfinished drop is left alone, unless it was abandoned a day ago.
    assert_eq!(
        machine.drops(),
        [machine.maildrop().join(".being-written")],
        "{stderr}"
    );
    assert_eq!(
        fs::read_to_string(&secret).unwrap(),
        drop_file("thief@example.com", "secret")
    );
    assert!(own.exists(), "only the name in the maildrop is removed");
}

#[test]
fn a_drop_the_system_config_cannot_plan_is_kept_in_failed() {
    let server = TestServer::start(ServerOptions::default());
    server.expect_unused();
    let Some(machine) = Machine::new(&server.addr(), "") else {
        return;
    };
    // A local name with no alias, admin or local_domain to qualify it.
    machine
        .as_nobody(&machine.sendmail)
        .args(["-i", "root"])
        .write_stdin("Subject: lost?\n\nx\n")
        .assert()
        .success();
    let output = machine.flush();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_ne!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("userid 65534"), "{stderr}");
    assert!(machine.drops().is_empty());
    let failed = json_files(&machine.queue.join("failed"));
    assert_eq!(failed.len(), 1, "{stderr}");
    let entry: serde_json::Value = serde_json::from_slice(&fs::read(&failed[0]).unwrap()).unwrap();
    assert!(
        entry["last_error"]
            .as_str()
            .unwrap()
            .contains("userid 65534"),
        "{entry}"
    );
    assert!(fs::read_to_string(failed[0].with_extension("eml"))
        .unwrap()
        .contains("Subject: lost?"));
    std::thread::sleep(Duration::from_millis(100));
    assert!(server.received().is_empty());
}

#[test]
fn queue_init_repairs_the_modes_and_without_it_the_user_is_told() {
    let Some(machine) = Machine::new(&format!("127.0.0.1:{}", closed_port()), "") else {
        return;
    };
    fs::set_permissions(&machine.spool, fs::Permissions::from_mode(0o700)).unwrap();
    fs::set_permissions(machine.maildrop(), fs::Permissions::from_mode(0o777)).unwrap();
    let output = machine
        .as_nobody(&machine.sendmail)
        .args(["-i", "ops@example.com"])
        .write_stdin("Subject: x\n\nx\n")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(78), "{stderr}");
    assert!(stderr.contains("postie queue init"), "{stderr}");
    // Not lost: kept in nobody's own failed/, where nobody can see it.
    let own_failed = machine.home.join(".state/postie/queue/failed");
    assert!(
        stderr.starts_with(&format!(
            "postie: kept the message in {}",
            own_failed.display()
        )),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 2, "{stderr}");

    machine
        .as_root(common::postie())
        .args(["queue", "init"])
        .assert()
        .success();
    assert_eq!(fs::metadata(&machine.spool).unwrap().mode() & 0o7777, 0o711);
    assert_eq!(
        fs::metadata(machine.maildrop()).unwrap().mode() & 0o7777,
        0o1733
    );
    machine
        .as_nobody(&machine.sendmail)
        .args(["-i", "ops@example.com"])
        .write_stdin("Subject: x\n\nx\n")
        .assert()
        .success();
    assert_eq!(machine.drops().len(), 1);

    // Only root sets up the spool. (An empty config of nobody's own keeps
    // a real /etc/postie out of the test.)
    let own = machine.home.join("own.toml");
    fs::write(&own, "").unwrap();
    fs::set_permissions(&own, fs::Permissions::from_mode(0o644)).unwrap();
    let output = machine
        .as_nobody(Path::new(env!("CARGO_BIN_EXE_postie")))
        .args(["queue", "--config"])
        .arg(&own)
        .args(["--queue-dir"])
        .arg(machine.home.join("q"))
        .arg("init")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(77));
}

#[test]
fn concurrent_flushes_pick_each_drop_up_once() {
    let server = TestServer::start(ServerOptions::default());
    let Some(machine) = Machine::new(&server.addr(), "") else {
        return;
    };
    for i in 0..8 {
        machine
            .as_nobody(&machine.sendmail)
            .args(["-i", "ops@example.com"])
            .write_stdin(format!("Subject: drop {i}\n\nx\n"))
            .assert()
            .success();
    }
    let outputs: Vec<std::process::Output> = std::thread::scope(|scope| {
        let flushes: Vec<_> = (0..3).map(|_| scope.spawn(|| machine.flush())).collect();
        flushes.into_iter().map(|f| f.join().unwrap()).collect()
    });
    for output in &outputs {
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "{stderr}");
        assert_eq!(stderr, "");
    }
    // A flush that found the maildrop busy may have left some drops or
    // entries to the next one.
    machine.flush();
    assert_eq!(server.wait_for_messages(8).len(), 8);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(server.received().len(), 8, "each drop sent once");
    assert!(machine.drops().is_empty());
}

#[test]
fn roots_first_queued_message_sets_up_the_maildrop_too() {
    let Some(machine) = Machine::new(&format!("127.0.0.1:{}", closed_port()), "") else {
        return;
    };
    // A fresh machine where root's queue is the spool and nobody ran
    // `postie queue init`: root's first queued message creates it.
    let spool = machine.dir.path().join("fresh-spool");
    machine
        .as_root(common::postie())
        .env("POSTIE_SPOOL_DIR", &spool)
        .env("POSTIE_QUEUE_DIR", &spool)
        .args(["--queue", "ops@example.com", "--body", "x"])
        .assert()
        .success();
    assert_eq!(fs::metadata(&spool).unwrap().mode() & 0o7777, 0o711);
    assert_eq!(
        fs::metadata(spool.join("maildrop")).unwrap().mode() & 0o7777,
        0o1733
    );
    assert_eq!(json_files(&spool).len(), 1, "and the message is queued");
}

#[test]
fn a_drop_keeps_the_dsn_request_for_roots_flush() {
    let ehlo = b"250-dsn.test\r\n250-8BITMIME\r\n250 DSN\r\n".to_vec();
    let mut replies = vec![ehlo];
    replies.extend([b"250 ok\r\n".to_vec(), b"250 ok\r\n".to_vec()]);
    replies.extend([b"354 go\r\n".to_vec(), b"250 queued\r\n".to_vec()]);
    replies.push(b"221 bye\r\n".to_vec());
    let server = common::ScriptedServer::start(b"220 dsn.test\r\n", replies);
    let Some(machine) = Machine::new(&server.addr(), "") else {
        server.expect_unused();
        return;
    };
    let output = machine
        .as_nobody(&machine.sendmail)
        .args(["-i", "-N", "success,failure", "-R", "hdrs", "-V", "job.9"])
        .args(["-f", "nobody@example.com", "ops@example.com"])
        .write_stdin("Subject: nightly\n\nall fine\n")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(machine.drops().len(), 1);
    let output = machine.flush();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let sent: Vec<String> = server
        .lines()
        .into_iter()
        .filter(|line| line.starts_with("MAIL ") || line.starts_with("RCPT "))
        .collect();
    assert_eq!(
        sent,
        [
            "MAIL FROM:<nobody@example.com> RET=HDRS ENVID=job.9",
            "RCPT TO:<ops@example.com> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;ops@example.com",
        ]
    );
}

#[test]
fn a_drop_is_signed_by_roots_flush_with_the_system_key() {
    if !crate::dkim::have_dkimpy() {
        return;
    }
    let server = TestServer::start(ServerOptions::default());
    let Some(machine) = Machine::new(&server.addr(), "") else {
        return;
    };
    // Root's key, which nobody cannot read: the drop is signed at pickup.
    let (key, dns) = crate::dkim::published_key(machine.dir.path(), "ed25519");
    machine.write_config(&server.addr(), &crate::dkim::account_keys(&key));
    let output = machine
        .as_nobody(&machine.sendmail)
        .args(["-i", "-f", "nobody@example.test", "ops@example.com"])
        .write_stdin("Subject: nightly\n\nall fine\n")
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let drops = machine.drops();
    assert_eq!(drops.len(), 1);
    let dropped = fs::read_to_string(&drops[0]).unwrap();
    assert!(
        dropped.contains("all fine") && !dropped.to_ascii_lowercase().contains("dkim-signature"),
        "the user's drop is not signed: {dropped}"
    );
    let output = machine.flush();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let got = server.wait_for_messages(1);
    assert_eq!(crate::dkim::signatures(&got[0].data).len(), 1);
    assert!(crate::dkim::verifies(&dns, &got[0].data));
}

/// postie-mta's postinst runs `postie queue init`: a typo in root's config
/// must not fail it (and with it every upgrade of the package).
#[test]
fn queue_init_sets_up_the_spool_whatever_the_config_says() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        common::skip("queue init needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    fs::write(&config, "no_such_key = 1\n").unwrap();
    fs::set_permissions(&config, fs::Permissions::from_mode(0o600)).unwrap();
    let spool = dir.path().join("spool");
    let output = common::postie()
        .env("POSTIE_SPOOL_DIR", &spool)
        .env("POSTIE_CONFIG", &config)
        .args(["queue", "init"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("queue init: the spool is set up"),
        "{stderr}"
    );
    for (sub, mode) in [("", 0o711), ("maildrop", 0o1733), ("incoming", 0o1733)] {
        let meta = fs::metadata(spool.join(sub)).unwrap();
        assert_eq!(meta.mode() & 0o7777, mode, "{sub}");
    }
}

/// With incoming/, nothing in the maildrop is a drop being written: a dot
/// name a user planted there is dealt with at the first flush, not left
/// for a day, during which postie-flush.path would start the flush again
/// and again.
#[test]
fn a_dot_name_planted_in_the_maildrop_is_dealt_with_at_once() {
    let Some(machine) = Machine::new(&format!("127.0.0.1:{}", closed_port()), "") else {
        return;
    };
    let file = machine.maildrop().join(".planted-file");
    fs::write(&file, "not a drop\n").unwrap();
    let dir = machine.maildrop().join(".planted-dir");
    fs::create_dir(&dir).unwrap();
    for path in [&file, &dir] {
        std::os::unix::fs::chown(path, Some(NOBODY), Some(NOBODY)).unwrap();
    }
    let _ = machine.flush();
    assert!(machine.drops().is_empty(), "{:?}", machine.drops());
}
