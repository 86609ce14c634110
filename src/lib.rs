//! postie: compose a MIME message from flags and files and submit it over
//! SMTP, or take a ready-made one (sendmail mode), and never lose it.
//!
//! This file is the module index. The folders are layers; a module imports
//! only from its own layer or below (`tests/it/layers.rs` checks it), and the
//! files of one folder never import each other in a circle.
//!
//! | layer | modules | what belongs there |
//! |---|---|---|
//! | bottom | [`types`], [`exit`], [`home`], [`permissions`] | values every layer shares, the exit codes, facts about this machine's users and files |
//! | mail, config, smtp, oauth2, cli | [`mail`], [`config`], [`smtp`], [`oauth2`], [`cli`] | one concern each: the message, the config file, the protocol, OAuth2 tokens, the command line |
//! | plan, queue, output | [`plan`], [`queue`], [`output`] | turning flags and config into a plan; keeping messages; what is printed |
//! | outcome | [`outcome`] | what happens after a send attempt, for every path |
//! | top | [`commands`], [`generate`], `main.rs` | the commands, which use everything below |

// The index links to the private modules on purpose: these docs are for
// the people who work on postie (`cargo doc --document-private-items`).
#![allow(rustdoc::private_intra_doc_links)]
// Items are `pub(crate)` unless the binary or the tests use them (exit, mx).
#![warn(unreachable_pub)]

pub(crate) mod cli;
pub(crate) mod commands;
pub(crate) mod config;
pub mod exit;
pub(crate) mod generate;
pub(crate) mod home;
pub(crate) mod mail;
pub(crate) mod oauth2;
pub(crate) mod outcome;
pub(crate) mod output;
pub(crate) mod permissions;
pub(crate) mod plan;
pub(crate) mod queue;
pub mod smtp;
pub(crate) mod types;

pub use commands::main;
