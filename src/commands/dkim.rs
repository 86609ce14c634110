//! `postie dkim keygen`: a new signing key, and the DNS record and config
//! lines that put it to use.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use openssl::pkey::PKey;

use crate::cli::args::{DkimAlgorithm, DkimCli, DkimCommand};
use crate::exit::{io_reason, Error, Exit, Result};
use crate::mail::dkim::{check_domain, check_selector, Key, MIN_RSA_BITS};
use crate::output::{messages, stdout};

/// RSA keys over this are refused: their record no longer fits the DNS
/// answers resolvers expect, and signing gets slow for no gain.
const MAX_RSA_BITS: u32 = 8192;

pub(crate) fn run(cli: DkimCli) -> Result<()> {
    match cli.command {
        DkimCommand::Keygen {
            selector,
            domain,
            algorithm,
            bits,
            key_file,
        } => keygen(&selector, &domain, algorithm, bits, key_file),
    }
}

fn keygen(
    selector: &str,
    domain: &str,
    algorithm: DkimAlgorithm,
    bits: Option<u32>,
    key_file: Option<PathBuf>,
) -> Result<()> {
    check_selector(selector).map_err(|why| {
        Error::usage(format!("dkim keygen: --selector {selector:?} {why}"))
            .hint("use letters, digits and hyphens, e.g. --selector 2026-12")
    })?;
    let domain = check_domain(domain).map_err(|why| {
        Error::usage(format!("dkim keygen: --domain {domain:?} {why}"))
            .hint("give the domain of the From addresses, e.g. --domain example.com")
    })?;
    let bits = match (algorithm, bits) {
        (DkimAlgorithm::Ed25519, Some(_)) => {
            return Err(Error::usage(
                "dkim keygen: --bits is for RSA keys; an Ed25519 key has one size",
            )
            .hint("drop --bits, or give --algorithm rsa"))
        }
        (_, bits) => bits.unwrap_or(MIN_RSA_BITS),
    };
    if algorithm == DkimAlgorithm::Rsa && !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
        return Err(Error::usage(format!(
            "dkim keygen: --bits {bits} is outside {MIN_RSA_BITS} to {MAX_RSA_BITS}"
        ))
        .hint("leave --bits out for 2048"));
    }
    let failed = |err: openssl::error::ErrorStack| {
        Error::new(
            Exit::Software,
            format!("dkim keygen: OpenSSL could not make the key: {err}"),
        )
    };
    let pkey = match algorithm {
        DkimAlgorithm::Rsa => {
            PKey::from_rsa(openssl::rsa::Rsa::generate(bits).map_err(failed)?).map_err(failed)?
        }
        DkimAlgorithm::Ed25519 => PKey::generate_ed25519().map_err(failed)?,
    };
    let pem = pkey.private_key_to_pem_pkcs8().map_err(failed)?;
    let key = Key::from_pem(&pem)
        .map_err(|why| Error::new(Exit::Software, format!("dkim keygen: the new key {why}")))?;
    let (k, public) = key.record_parts().map_err(|why| {
        Error::new(
            Exit::Software,
            format!("dkim keygen: cannot write the public key: {why}"),
        )
    })?;
    let path = key_file.unwrap_or_else(|| PathBuf::from(format!("{selector}.private")));
    write_new(&path, &pem)?;
    let record = format!("v=DKIM1; k={k}; p={}", BASE64.encode(public));
    stdout::write(zone_entry(selector, &domain, &record).as_bytes())?;
    let shown = std::path::absolute(&path).unwrap_or(path);
    messages::said(format_args!(
        "wrote the private key to {}; publish the record above, then add to the account:",
        shown.display()
    ));
    messages::said(format_args!(
        "  dkim_key = {:?}",
        shown.display().to_string()
    ));
    messages::said(format_args!("  dkim_selector = {selector:?}"));
    messages::said(format_args!("  dkim_domain = {domain:?}"));
    Ok(())
}

/// The key file, created 0600 and never over an existing file (O_EXCL,
/// which also refuses a symbolic link planted at the path).
fn write_new(path: &Path, pem: &[u8]) -> Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|err| {
            let (exit, hint) = if err.kind() == std::io::ErrorKind::AlreadyExists {
                (
                    Exit::Usage,
                    "keygen never overwrites a key; choose another --key-file or --selector",
                )
            } else {
                (Exit::IoErr, "choose a writable place with --key-file PATH")
            };
            Error::new(
                exit,
                format!(
                    "dkim keygen: cannot create {}: {}",
                    path.display(),
                    io_reason(&err)
                ),
            )
            .hint(hint)
        })?;
    file.write_all(pem)
        .and_then(|()| file.sync_all())
        .map_err(|err| {
            let _ = std::fs::remove_file(path);
            Error::new(
                Exit::IoErr,
                format!(
                    "dkim keygen: cannot write {}: {}",
                    path.display(),
                    io_reason(&err)
                ),
            )
        })
}

/// The record in zone-file form: `SELECTOR._domainkey.DOMAIN. IN TXT (...)`
/// with the text in quoted strings of at most 255 octets (RFC 1035
/// §3.3.14), which a TXT record's reader joins again.
pub(crate) fn zone_entry(selector: &str, domain: &str, record: &str) -> String {
    let strings: Vec<String> = record
        .as_bytes()
        .chunks(250)
        .map(|part| format!("\"{}\"", String::from_utf8_lossy(part)))
        .collect();
    format!(
        "{selector}._domainkey.{domain}. IN TXT ( {} )\n",
        strings.join("\n\t")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_record_is_split_into_strings_of_at_most_255() {
        let record = format!("v=DKIM1; k=rsa; p={}", "A".repeat(600));
        let entry = zone_entry("s", "example.com", &record);
        assert!(entry.starts_with("s._domainkey.example.com. IN TXT ( \""));
        let strings: Vec<&str> = entry.split('"').skip(1).step_by(2).collect();
        assert_eq!(strings.concat(), record);
        assert!(strings.iter().all(|s| s.len() <= 255));
    }
}
