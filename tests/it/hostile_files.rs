//! Local attacks: another user of the machine plants or opens up the files
//! that root's postie reads and writes (issue 12, "Files that other local
//! users can touch"). Each case would make root run a planted command,
//! follow a planted link or take a changed file at its word without the
//! checks of src/permissions.rs and the queue's and log's O_NOFOLLOW.
//!
//! The cases with another user need root (to be the victim) and setpriv
//! (to act as nobody, 65534). Without them they skip, but only when CI is
//! unset: under .ci/run a missing tool is a failure.

use crate::common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::common::{closed_port, postie, ServerOptions, Tls};

const NOBODY: u32 = 65534;

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// A directory for one case, under cargo's target/tmp: reachable (0755)
/// by nobody, writable only by the test.
struct Lab {
    dir: tempfile::TempDir,
}

impl Lab {
    fn new() -> Lab {
        let dir = tempfile::Builder::new()
            .prefix("postie-hostile-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .unwrap();
        chmod(dir.path(), 0o755);
        Lab { dir }
    }

    /// None (after saying why) when the case needs another user and
    /// cannot have one here.
    fn with_nobody() -> Option<Lab> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            common::skip("the local-attack tests need root");
            return None;
        }
        if !common::require_tool("setpriv", "util-linux") {
            return None;
        }
        Some(Lab::new())
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A sticky directory anyone may create files in, as /tmp is.
    fn public_dir(&self) -> PathBuf {
        let dir = self.path("public");
        fs::create_dir_all(&dir).unwrap();
        chmod(&dir, 0o1777);
        dir
    }

    /// Writes `contents` to `path` as nobody, with `mode`.
    fn plant_as_nobody(&self, path: &Path, contents: &str, mode: &str) {
        let status = std::process::Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .args([
                "sh",
                "-c",
                "printf %s \"$1\" > \"$2\" && chmod \"$3\" \"$2\"",
            ])
            .args(["sh", contents])
            .arg(path)
            .arg(mode)
            .status()
            .unwrap();
        assert!(status.success(), "planting {} as nobody", path.display());
        assert_eq!(fs::metadata(path).unwrap().uid(), NOBODY);
    }

    /// Where the planted `touch` leaves its mark if root ran it.
    fn mark(&self) -> PathBuf {
        self.path("the-command-ran")
    }

    /// A file of root's that no run may change.
    fn precious(&self) -> PathBuf {
        let path = self.path("precious");
        if !path.exists() {
            fs::write(&path, "root's own\n").unwrap();
            chmod(&path, 0o644);
        }
        path
    }

    fn assert_precious_unchanged(&self) {
        let path = self.path("precious");
        let meta = fs::symlink_metadata(&path).unwrap();
        assert!(meta.is_file());
        assert_eq!(fs::read_to_string(&path).unwrap(), "root's own\n");
    }
}

/// An entry's description as postie version 1 writes it, whose settings
/// carry a password command that leaves `mark` behind.
fn planted_entry(id: &str, mark: &Path) -> String {
    format!(
        r#"{{"version":1,"id":"{id}","created":1,"sender":"a@example.com","recipients":["b@example.com"],"settings":{{"server":"127.0.0.1:{}","user":"x","password_cmd":"touch {}"}},"size":1,"attempts":0,"last_attempt":null,"last_error":null}}"#,
        closed_port(),
        mark.display()
    )
}

fn flush(queue: &Path) -> (Option<i32>, String) {
    let output = postie()
        .env("POSTIE_QUEUE_DIR", queue)
        .args(["queue", "flush", "--now"])
        .output()
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Makes root's queue, private as postie makes it.
fn root_queue(lab: &Lab) -> PathBuf {
    let queue = lab.path("queue");
    postie()
        .env("POSTIE_QUEUE_DIR", &queue)
        .args(["queue", "list"])
        .assert()
        .success();
    queue
}

#[test]
fn a_queue_others_can_write_is_refused_and_its_planted_entry_never_runs() {
    let Some(lab) = Lab::with_nobody() else {
        return;
    };
    let queue = root_queue(&lab);
    chmod(&queue, 0o777);
    lab.plant_as_nobody(
        &queue.join("1-2-3.json"),
        &planted_entry("1-2-3", &lab.mark()),
        "644",
    );
    lab.plant_as_nobody(&queue.join("1-2-3.eml"), "x", "644");
    let (code, stderr) = flush(&queue);
    assert_eq!(code, Some(78), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(&format!("chmod go-w {}", queue.display())),
        "{stderr}"
    );
    assert!(!lab.mark().exists(), "root ran the planted password_cmd");
}

#[test]
fn an_entry_owned_by_another_user_is_skipped_with_a_warning() {
    let Some(lab) = Lab::with_nobody() else {
        return;
    };
    let queue = root_queue(&lab);
    // Files nobody made (when the queue was open to it, say), now among
    // root's entries.
    let public = lab.public_dir();
    lab.plant_as_nobody(
        &public.join("1-2-3.json"),
        &planted_entry("1-2-3", &lab.mark()),
        "600",
    );
    lab.plant_as_nobody(&public.join("1-2-3.eml"), "x", "600");
    fs::rename(public.join("1-2-3.eml"), queue.join("1-2-3.eml")).unwrap();
    fs::rename(public.join("1-2-3.json"), queue.join("1-2-3.json")).unwrap();
    let (code, stderr) = flush(&queue);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(!lab.mark().exists(), "root ran the planted password_cmd");
    let warnings: Vec<&str> = stderr.lines().filter(|l| l.contains("skipping")).collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(warnings[0].contains("owned by userid 65534"), "{stderr}");
    // Left where it is, for the admin to look at; not moved to failed/.
    assert!(queue.join("1-2-3.json").exists());
    assert_eq!(fs::read_dir(queue.join("failed")).unwrap().count(), 0);
}

/// The pids the next few thousand processes on this machine will get:
/// a temporary name with a pid in it is as good as known to an attacker.
fn next_pids() -> std::ops::Range<u32> {
    let last: u32 = fs::read_to_string("/proc/sys/kernel/ns_last_pid")
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(1);
    last + 1..last + 3000
}

#[test]
fn links_planted_in_tmp_never_make_root_write_through_them() {
    let Some(lab) = Lab::with_nobody() else {
        return;
    };
    let queue = root_queue(&lab);
    let config = lab.path("config.toml");
    fs::write(
        &config,
        format!(
            "[defaults]\nserver = \"127.0.0.1:{}\"\nqueue = \"always\"\n",
            closed_port()
        ),
    )
    .unwrap();
    postie()
        .env("POSTIE_CONFIG", &config)
        .env("POSTIE_QUEUE_DIR", &queue)
        .args(["-f", "a@example.com", "b@example.com", "--body", "x"])
        .assert()
        .success();
    let id = fs::read_dir(&queue)
        .unwrap()
        .flatten()
        .find_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_suffix(".json").map(str::to_string)
        })
        .expect("the queued entry");
    // tmp/ opened up, and nobody's links at every name the flush's rewrite
    // of the entry may use (ID.json.PID) and at the entries' lock file.
    let tmp = queue.join("tmp");
    chmod(&tmp, 0o777);
    let precious = lab.precious();
    let mut names = vec!["locks".to_string()];
    names.extend(next_pids().map(|pid| format!("{id}.json.{pid}")));
    for name in &names {
        let link = tmp.join(name);
        std::os::unix::fs::symlink(&precious, &link).unwrap();
        std::os::unix::fs::lchown(&link, Some(NOBODY), Some(NOBODY)).unwrap();
    }
    let (code, stderr) = flush(&queue);
    assert_eq!(code, Some(78), "{stderr}");
    assert!(stderr.contains("chmod go-w"), "{stderr}");
    lab.assert_precious_unchanged();

    // Closed again, with the links still there: they are removed, never
    // followed, and the entry is rewritten as a file of its own.
    chmod(&tmp, 0o700);
    let (code, stderr) = flush(&queue);
    assert_eq!(code, Some(75), "{stderr}");
    lab.assert_precious_unchanged();
    let entry = fs::symlink_metadata(queue.join(format!("{id}.json"))).unwrap();
    assert!(entry.is_file());
    assert!(fs::read_to_string(queue.join(format!("{id}.json")))
        .unwrap()
        .contains("\"attempts\": 1"));
}

/// A config of nobody's: in a sticky public directory, so that only the
/// file's own owner and mode are at fault.
#[test]
fn a_config_file_of_another_user_is_refused_before_its_command_runs() {
    let Some(lab) = Lab::with_nobody() else {
        return;
    };
    let config = lab.public_dir().join("config.toml");
    lab.plant_as_nobody(
        &config,
        &format!(
            "[defaults]\nserver = \"127.0.0.1:{}\"\nuser = \"x\"\npassword_cmd = \"touch {}\"\n",
            closed_port(),
            lab.mark().display()
        ),
        "666",
    );
    let output = postie()
        .arg("--config")
        .arg(&config)
        .args(["-f", "a@example.com", "b@example.com", "--body", "x"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(78), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("owned by userid 65534"), "{stderr}");
    assert!(!lab.mark().exists(), "root ran the planted password_cmd");
}

#[test]
fn a_config_file_others_can_write_is_refused_whatever_it_holds() {
    let lab = Lab::new();
    let config = lab.path("config.toml");
    fs::write(
        &config,
        format!("[defaults]\nserver = \"127.0.0.1:{}\"\n", closed_port()),
    )
    .unwrap();
    chmod(&config, 0o646);
    let output = postie()
        .arg("--config")
        .arg(&config)
        .args(["-f", "a@example.com", "b@example.com", "--body", "x"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(78), "{stderr}");
    assert!(
        stderr.contains(&format!("chmod go-w {}", config.display())),
        "{stderr}"
    );
}

#[test]
fn a_group_writable_aliases_file_is_refused() {
    let lab = Lab::new();
    let aliases = lab.path("aliases");
    fs::write(&aliases, "root: attacker@example.net\n").unwrap();
    chmod(&aliases, 0o664);
    let config = lab.path("config.toml");
    fs::write(
        &config,
        format!(
            "aliases = \"{}\"\n[defaults]\nserver = \"127.0.0.1:{}\"\n",
            aliases.display(),
            closed_port()
        ),
    )
    .unwrap();
    let output = postie()
        .arg("--config")
        .arg(&config)
        .args(["-f", "a@example.com", "root", "--body", "x"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(78), "{stderr}");
    assert!(stderr.contains("aliases file"), "{stderr}");
    assert!(
        stderr.contains(&format!("chmod go-w {}", aliases.display())),
        "{stderr}"
    );
}

#[test]
fn a_client_key_others_can_read_is_refused() {
    let server = common::TestServer::start(ServerOptions {
        tls: Tls::Implicit,
        require_client_cert: true,
        ..ServerOptions::default()
    });
    // The key is refused before postie connects.
    server.expect_unused();
    let (cert, key) = server.client_cert();
    let lab = Lab::new();
    let readable = lab.path("key.pem");
    fs::copy(&key, &readable).unwrap();
    chmod(&readable, 0o644);
    let output = postie()
        .args(["--server", &server.addr(), "--tls", "implicit", "--ca-file"])
        .arg(server.ca_file())
        .arg("--client-cert")
        .arg(&cert)
        .arg("--client-key")
        .arg(&readable)
        .args(["-f", "a@example.com", "b@example.com", "--body", "x"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(78), "{stderr}");
    assert!(
        stderr.contains(&format!("chmod 600 {}", readable.display())),
        "{stderr}"
    );
    assert!(server.received().is_empty());
}

/// A send that fails (nothing listens) and so logs one attempt.
fn send_logging_to(lab: &Lab, log: &Path) -> String {
    let config = lab.path("config.toml");
    fs::write(
        &config,
        format!(
            "[defaults]\nserver = \"127.0.0.1:{}\"\nqueue = \"never\"\nlogfile = \"{}\"\n",
            closed_port(),
            log.display()
        ),
    )
    .unwrap();
    let output = postie()
        .arg("--config")
        .arg(&config)
        .args(["-f", "a@example.com", "b@example.com", "--body", "x"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(75));
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn a_log_file_that_is_a_link_is_not_followed() {
    let lab = Lab::new();
    let log = lab.path("postie.log");
    std::os::unix::fs::symlink(lab.precious(), &log).unwrap();
    let stderr = send_logging_to(&lab, &log);
    lab.assert_precious_unchanged();
    assert!(fs::symlink_metadata(&log).unwrap().is_symlink());
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("symbolic link"))
        .collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(warnings[0].starts_with("postie: warning:"), "{stderr}");
}

#[test]
fn a_new_log_file_is_private_and_an_open_one_is_a_warning() {
    let lab = Lab::new();
    let log = lab.path("postie.log");
    let stderr = send_logging_to(&lab, &log);
    assert!(!stderr.contains("warning"), "{stderr}");
    assert_eq!(fs::metadata(&log).unwrap().mode() & 0o777, 0o600);
    chmod(&log, 0o662);
    let stderr = send_logging_to(&lab, &log);
    assert!(
        stderr.contains(&format!("warning: the log file {}", log.display())),
        "{stderr}"
    );
    assert!(stderr.contains("chmod go-w"), "{stderr}");
    // Still logged: a warning never loses the line.
    assert_eq!(fs::read_to_string(&log).unwrap().lines().count(), 2);
}
