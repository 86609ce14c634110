//! A queue and the config that sends it, for the queue tests.

use std::path::PathBuf;

use tempfile::TempDir;

use super::command::{linked, postie};

/// A relay account (`relay`, from cron@example.com) in a config of its
/// own, and a queue directory beside it: what the queue tests share.
pub struct QueueSetup {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub queue: PathBuf,
}

impl QueueSetup {
    pub fn new(server: &str, extra: &str) -> QueueSetup {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.toml");
        let queue = dir.path().join("queue");
        let setup = QueueSetup { dir, config, queue };
        setup.write_config(server, extra);
        setup
    }

    /// Rewrites the config: a flush uses today's settings.
    pub fn write_config(&self, server: &str, extra: &str) {
        std::fs::write(
            &self.config,
            format!(
                "default = \"relay\"\n[accounts.relay]\nserver = \"{server}\"\nfrom = \"cron@example.com\"\ntimeout = 5\n{extra}\n"
            ),
        )
        .unwrap();
    }

    /// `postie` with this config and queue.
    pub fn cmd(&self) -> assert_cmd::Command {
        let mut cmd = postie();
        cmd.env("POSTIE_CONFIG", &self.config)
            .env("POSTIE_QUEUE_DIR", &self.queue);
        cmd
    }

    /// The `sendmail` link with this config and queue.
    pub fn sendmail(&self) -> (TempDir, assert_cmd::Command) {
        self.linked("sendmail")
    }

    /// A link named `name` (`mailq`, ...) with this config and queue.
    pub fn linked(&self, name: &str) -> (TempDir, assert_cmd::Command) {
        let (link, mut cmd) = linked(name);
        cmd.env("POSTIE_CONFIG", &self.config)
            .env("POSTIE_QUEUE_DIR", &self.queue);
        (link, cmd)
    }

    /// The queue's entries (their `.json`), sorted.
    pub fn entries(&self) -> Vec<PathBuf> {
        files_ending(&self.queue, "json")
    }
}

/// The files in `dir` with this extension, sorted; none when `dir` is
/// missing.
pub fn files_ending(dir: &std::path::Path, extension: &str) -> Vec<PathBuf> {
    let Ok(reader) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = reader
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == extension))
        .collect();
    found.sort();
    found
}
