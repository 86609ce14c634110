//! postie's integration tests, in one test binary: the crate and its
//! dependencies are linked once, not once per file. Each module was a
//! file of its own under tests/; `common` is the harness they share (the
//! SMTP, DNS and scripted servers, the hermetic `postie` command).

mod common;

mod attachments;
mod conformance;
mod direct;
mod dkim;
mod dsn;
mod failures;
mod fault_matrix;
mod faults;
mod generated;
mod harness_selftest;
mod hostile_credentials;
mod hostile_files;
mod hostile_input;
mod hostile_server;
mod interop_mailx;
mod interop_swaks;
mod json;
mod layers;
mod loss_paths;
mod maildrop;
mod mx;
mod oauth2;
mod probe;
mod properties;
mod queue;
mod replies;
mod sasl;
mod send;
mod sendmail;
mod smtp_stdin;
mod transportable;
mod trust_store;
