//! `postie generate DIR`: the shell completions, the man pages and the
//! README's generated blocks, from the code.
//!
//! The completions come from the clap definitions in `cli` (see
//! [`completions`]); the man pages are the roff templates in `doc/`, whose
//! placeholders are filled from the code (see [`man`]); the README's
//! tables of exit codes, environment variables and sendmail options are
//! filled from the same sources (see [`readme`]). So each fact has one
//! home: exit codes in `exit`, options and their variables in `cli`, the
//! sendmail options in `sendmail`.
//!
//! The generated files are committed (`cargo run -- generate .`), and
//! tests/it/generated.rs fails when they differ from what this code produces,
//! so a changed flag cannot leave stale completions, man pages or README
//! tables behind. Everything here is deterministic: no date, no host, and
//! the plain crate version rather than the run-time OpenSSL one of
//! `postie --version`.
//!
//! Belongs here: turning facts the code holds into documents, and the page
//! prose's placeholders. Not here: the facts themselves (they stay with the
//! code that acts on them), or the prose, which is in `doc/*.in`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::exit::{io_reason, Error, Exit, Result};

pub(crate) mod commands;
pub(crate) mod completions;
pub(crate) mod environment;
pub(crate) mod man;
pub(crate) mod readme;

/// `postie generate DIR`; `args` are the arguments after `generate`.
///
/// Writes `DIR/completions/` and `DIR/man/`, and refreshes the generated
/// blocks of `DIR/README.md` when there is one.
pub(crate) fn run(args: &[OsString]) -> Result<()> {
    let [dir] = args else {
        return Err(Error::usage(
            "usage: postie generate DIR (writes DIR/completions/ and DIR/man/, and the \
             generated blocks of DIR/README.md)",
        ));
    };
    let dir = Path::new(dir);
    // The README first: a broken one must not leave half the files written.
    let readme = dir.join("README.md");
    let updated_readme = match std::fs::read_to_string(&readme) {
        Ok(text) => readme::update(&text)
            .map_err(|missing| {
                Error::new(Exit::DataErr, format!("{}: {missing}", readme.display()))
            })?
            .filter(|updated| *updated != text),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => None,
        Err(err) => return Err(Error::input("README", &readme, &err)),
    };
    for (relative, contents) in files() {
        let path = dir.join(&relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|err| write_error(parent, &err))?;
        }
        std::fs::write(&path, contents).map_err(|err| write_error(&path, &err))?;
    }
    if let Some(updated) = updated_readme {
        std::fs::write(&readme, updated).map_err(|err| write_error(&readme, &err))?;
    }
    Ok(())
}

fn write_error(path: &Path, err: &std::io::Error) -> Error {
    Error::new(
        Exit::IoErr,
        format!("cannot write {}: {}", path.display(), io_reason(err)),
    )
}

/// Every generated file: its path under DIR and its contents.
pub(crate) fn files() -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = completions::files();
    for (path, page) in man::pages() {
        files.push((path, page.into_bytes()));
    }
    files
}
