//! Shell completions, from the clap definitions.

use std::path::{Path, PathBuf};

use clap_complete::{Generator, Shell};

use super::commands;

/// The shells completions are written for.
const SHELLS: [Shell; 5] = [
    Shell::Bash,
    Shell::Zsh,
    Shell::Fish,
    Shell::Elvish,
    Shell::PowerShell,
];

/// Each shell's completion file: its path under DIR and its contents.
pub(crate) fn files() -> Vec<(PathBuf, Vec<u8>)> {
    SHELLS
        .into_iter()
        .map(|shell| {
            let mut command = commands::command();
            let mut buffer = Vec::new();
            clap_complete::generate(shell, &mut command, "postie", &mut buffer);
            (
                Path::new("completions").join(shell.file_name("postie")),
                buffer,
            )
        })
        .collect()
}
