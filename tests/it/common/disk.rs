//! File systems for the tests that need one of their own.

/// A tmpfs of a few KiB, for a full disk; unmounted when dropped.
pub struct TinyDisk {
    pub dir: tempfile::TempDir,
}

impl TinyDisk {
    /// Needs root (and a kernel that lets us mount); None otherwise.
    pub fn mount(kib: u32) -> Option<TinyDisk> {
        let dir = tempfile::tempdir().ok()?;
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={kib}k"), "tmpfs"])
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status()
            .ok()?;
        status.success().then_some(TinyDisk { dir })
    }

    /// Takes every free block.
    pub fn fill(&self) {
        let mut filler = std::fs::File::create(self.dir.path().join("filler")).unwrap();
        let chunk = vec![0u8; 4096];
        while std::io::Write::write_all(&mut filler, &chunk).is_ok() {}
        let _ = std::io::Write::write_all(&mut filler, &chunk[..1]);
    }

    /// Gives back what `fill` took.
    pub fn free(&self) {
        std::fs::remove_file(self.dir.path().join("filler")).unwrap();
    }
}

impl Drop for TinyDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.dir.path())
            .status();
    }
}
