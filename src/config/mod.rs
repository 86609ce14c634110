//! What the administrator wrote down: the TOML config file (accounts,
//! `[defaults]`) and the local recipients' aliases.
//!
//! Belongs here: reading, checking and locating those files. Not here:
//! deciding which setting wins over a flag (`plan`), or acting on them.

pub(crate) mod aliases;
pub(crate) mod file;
