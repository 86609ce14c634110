//! What the administrator wrote down: the TOML config file (accounts,
//! `[defaults]`) and the local recipients' aliases.
//!
//! Belongs here: reading, checking and locating those files. Not here:
//! deciding which setting wins over a flag (`plan`), or acting on them.

pub(crate) mod aliases;
pub(crate) mod file;

/// The commented example config with every key (`postie config example`),
/// built in so that an installed binary documents its own keys;
/// tests/it/generated.rs checks that it parses and names every key.
pub(crate) const EXAMPLE: &str = include_str!("../../examples/config.toml");
