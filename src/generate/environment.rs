//! The environment variables postie reads, for the man pages and the
//! README: those of the clap definitions (`env = "POSTIE_..."`), taken from
//! the commands themselves, and the few read outside clap, listed in
//! [`OTHERS`] under the names their readers use.

use clap::Command;

use crate::config::file as config;
use crate::oauth2::store as oauth2_store;
use crate::plan::secret;
use crate::queue::system;
use crate::smtp::tls;

/// An environment variable and what it does (markup: `code`, *placeholder*).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Variable {
    pub(crate) name: String,
    pub(crate) description: String,
}

/// The variables postie reads outside clap, and what each does. The
/// `POSTIE_` names are the constants their readers use.
pub(crate) const OTHERS: &[(&str, &str)] = &[
    (
        secret::PASSWORD_ENV,
        "The password (or OAuth2 token); used when `--password-cmd` is not given, and read \
         again by each `postie queue flush`. It wins over the account's `password_cmd` and \
         `password`. It cannot be a flag: every user can read a process's arguments.",
    ),
    (
        config::SYSTEM_CONFIG_ENV,
        "Replaces `/etc/postie/config.toml`, for tests and for packages that install the \
         system-wide file elsewhere: the system config that every user falls back to, whose \
         unreadability sends a user's mail to the maildrop, and which its pickup uses.",
    ),
    (
        oauth2_store::SYSTEM_DIR_ENV,
        "For tests and packagers: where the OAuth2 tokens of the system config's accounts \
         are kept, instead of `/var/lib/postie/oauth2`.",
    ),
    (
        system::SPOOL_ENV,
        "For tests and packagers: the spool holding the maildrop, instead of \
         `/var/spool/postie`. Every user's postie must agree on it.",
    ),
    (
        tls::CERT_DIR_ENV,
        "The hashed directory of trusted CA certificates, as OpenSSL reads it (default \
         OpenSSL's, on Debian `/etc/ssl/certs`). postie looks up in it only the issuers a \
         certificate chain needs; a directory without hash links (`openssl rehash`) is passed \
         over for the bundle.",
    ),
    (
        tls::CERT_FILE_ENV,
        "A bundle of trusted CA certificates (default OpenSSL's, on Debian \
         `/etc/ssl/certs/ca-certificates.crt`), read whole: where the directory has no hash \
         links, or when set without `SSL_CERT_DIR`. Not with `--insecure` or \
         `--tls-fingerprint`, which use no trust store. A private CA is better given with \
         `--ca-file`.",
    ),
    (
        "HOME",
        "The home directory, when it belongs to the user postie runs as (else the password \
         database's).",
    ),
    (
        "XDG_CONFIG_HOME",
        "Where the user's config is looked for (default `~/.config`).",
    ),
    (
        "XDG_STATE_HOME",
        "Where a user's queue and OAuth2 tokens are kept (default `~/.local/state`).",
    ),
];

/// The variables `command`'s options read, in the order of the options,
/// each described as the option it stands in for.
pub(crate) fn of_command(command: &Command) -> Vec<Variable> {
    let mut variables: Vec<Variable> = Vec::new();
    for arg in command.get_arguments() {
        let Some(name) = arg.get_env().and_then(|name| name.to_str()) else {
            continue;
        };
        if variables.iter().any(|known| known.name == name) {
            continue;
        }
        let long = arg
            .get_long()
            .expect("an option read from the environment has a long name");
        let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
        variables.push(Variable {
            name: name.to_string(),
            description: format!("As `--{long}`: {}.", help.trim_end_matches('.')),
        });
    }
    variables
}

/// The variables of [`OTHERS`] named in `names`, in that order.
///
/// # Panics
///
/// When a name is not in [`OTHERS`]: a man page would name a variable
/// nobody describes.
pub(crate) fn others(names: &[&str]) -> Vec<Variable> {
    names
        .iter()
        .map(|name| {
            let (name, description) = OTHERS
                .iter()
                .find(|(known, _)| known == name)
                .unwrap_or_else(|| panic!("{name} is not in generate::environment::OTHERS"));
            Variable {
                name: name.to_string(),
                description: description.to_string(),
            }
        })
        .collect()
}

/// Every variable postie reads: the main command's, then [`OTHERS`].
pub(crate) fn all() -> Vec<Variable> {
    let mut variables = of_command(&crate::cli::args::command());
    variables.extend(others(
        &OTHERS.iter().map(|(name, _)| *name).collect::<Vec<_>>(),
    ));
    variables
}
