//! DKIM signatures (RFC 6376; Ed25519, RFC 8463): the key, and the
//! DKIM-Signature field of a finished message.
//!
//! mail-auth canonicalises (relaxed/relaxed) and builds the field; the key
//! is OpenSSL's (the library postie already links for TLS and keygen), so
//! every PEM form OpenSSL reads works, and the RSA private-key operation is
//! OpenSSL's constant-time one rather than the `rsa` crate's (RUSTSEC-2023-0071).
//!
//! Belongs here: reading the key, hashing a [`Content`] and prepending the
//! field. Not here: whether a message is signed and with which account's
//! key (`plan::dkim`), the 7-bit conversion before signing (`transportable`).

use std::io::Read;
use std::path::Path;

use mail_auth::common::crypto::{Algorithm, CryptoError, Sha256, SigningKey};
use mail_auth::common::headers::{HeaderWriter, Writable};
use mail_auth::dkim::{Canonicalization, DkimSigner};
use openssl::pkey::{Id, PKey, Private};
use openssl::sign::Signer;

use crate::exit::{io_reason, Error, Result};
use crate::mail::content::{Content, Segment};

/// RFC 8301 §3.2: signers MUST use RSA keys of at least 1024 bits; 2048 is
/// what every large receiver expects today (and what keygen makes).
pub(crate) const MIN_RSA_BITS: u32 = 2048;

/// A private key OpenSSL read: RSA of at least [`MIN_RSA_BITS`], or Ed25519.
pub(crate) struct Key {
    pkey: PKey<Private>,
    algorithm: Algorithm,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key itself.
        write!(f, "Key({})", self.algorithm.name())
    }
}

impl Key {
    /// Reads the key at `path`, which must be the user's (or root's) and
    /// readable by nobody else: `dkim_key` holds a secret, as a config with
    /// a password does. Every failure is 78 with what to do.
    pub(crate) fn load(path: &Path) -> Result<Key> {
        let cannot = |err: std::io::Error| {
            Error::config(format!(
                "dkim: cannot read dkim_key {}: {}",
                path.display(),
                io_reason(&err)
            ))
            .hint(
                "check the path in the account's dkim_key, or make a key with `postie dkim keygen`",
            )
        };
        let mut file = std::fs::File::open(path).map_err(cannot)?;
        let meta = file.metadata().map_err(cannot)?;
        let stage = |err: Error| Error {
            message: format!("dkim: {}", err.message),
            ..err
        };
        crate::permissions::check_trusted_file(&meta, path, "dkim_key").map_err(stage)?;
        crate::permissions::check_secret_file(&meta, path, "dkim_key", "a private key")
            .map_err(stage)?;
        let mut pem = Vec::new();
        file.read_to_end(&mut pem).map_err(cannot)?;
        Key::from_pem(&pem).map_err(|why| {
            Error::config(format!("dkim: dkim_key {} {why}", path.display())).hint(
                "give an unencrypted PEM private key, RSA of 2048 bits or more or Ed25519 (`postie dkim keygen` makes one)",
            )
        })
    }

    /// The key in `pem`; the error says what is wrong with it.
    pub(crate) fn from_pem(pem: &[u8]) -> std::result::Result<Key, String> {
        // A callback that gives no passphrase: without it OpenSSL would ask
        // on the terminal, and hang a cron job.
        let pkey = PKey::private_key_from_pem_callback(pem, |_| Ok(0))
            .map_err(|_| "is not an unencrypted PEM private key".to_string())?;
        let algorithm = match pkey.id() {
            Id::RSA if pkey.bits() >= MIN_RSA_BITS => Algorithm::RsaSha256,
            Id::RSA => {
                return Err(format!(
                    "is an RSA key of {} bits; DKIM needs at least {MIN_RSA_BITS}",
                    pkey.bits()
                ))
            }
            Id::ED25519 => Algorithm::Ed25519Sha256,
            _ => return Err("is neither an RSA nor an Ed25519 key".to_string()),
        };
        Ok(Key { pkey, algorithm })
    }

    /// The `k=` and `p=` of the DNS record that publishes this key
    /// (RFC 6376 §3.6.1; RFC 8463 §4.2 for Ed25519's raw 32 octets).
    pub(crate) fn record_parts(&self) -> std::result::Result<(&'static str, Vec<u8>), String> {
        let failed = |err: openssl::error::ErrorStack| err.to_string();
        match self.algorithm {
            Algorithm::Ed25519Sha256 => {
                Ok(("ed25519", self.pkey.raw_public_key().map_err(failed)?))
            }
            _ => Ok(("rsa", self.pkey.public_key_to_der().map_err(failed)?)),
        }
    }
}

impl SigningKey for Key {
    type Hasher = Sha256;

    fn sign(&self, input: impl Writable) -> mail_auth::Result<Vec<u8>> {
        let failed = |err: openssl::error::ErrorStack| {
            mail_auth::Error::Crypto(CryptoError::Library(err.to_string()))
        };
        match self.algorithm {
            // RFC 8463 §3: Ed25519 signs the SHA-256 hash of the canonical
            // header fields (PureEdDSA over those 32 octets).
            Algorithm::Ed25519Sha256 => {
                let hash = self.hash(input);
                Signer::new_without_digest(&self.pkey)
                    .and_then(|mut signer| signer.sign_oneshot_to_vec(hash.as_ref()))
                    .map_err(failed)
            }
            _ => {
                let mut data = Vec::with_capacity(1024);
                input.write(&mut data);
                Signer::new(openssl::hash::MessageDigest::sha256(), &self.pkey)
                    .and_then(|mut signer| signer.sign_oneshot_to_vec(&data))
                    .map_err(failed)
            }
        }
    }

    fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
}

/// Who signs: the `d=` and `s=` and the header fields to cover.
#[derive(Debug)]
pub(crate) struct Signing<'a> {
    pub(crate) key: &'a Key,
    pub(crate) domain: &'a str,
    pub(crate) selector: &'a str,
    /// The configured names; those the message has are signed (every
    /// occurrence), and From once more than it occurs.
    pub(crate) headers: &'a [String],
}

/// The message with its DKIM-Signature field first. The body hash comes
/// from a pass over [`Content::chunks`], so a streamed attachment is read
/// (and encoded) twice but never held: memory stays flat.
pub(crate) fn sign(content: &mut Content, signing: &Signing<'_>) -> Result<()> {
    let names = signed_names(content, signing.headers);
    let signer = DkimSigner::from_key(KeyRef(signing.key))
        .domain(signing.domain)
        .selector(signing.selector)
        .headers(names)
        .header_canonicalization(Canonicalization::Relaxed)
        .body_canonicalization(Canonicalization::Relaxed);
    let mut stream = signer.sign_streaming();
    let mut trim = LineEndSpace::default();
    for chunk in content.chunks() {
        let chunk = chunk.map_err(|err| {
            Error::new(
                crate::exit::Exit::NoInput,
                format!("dkim: cannot read the message to sign it: {err}"),
            )
        })?;
        stream.write(&trim.filter(&chunk));
    }
    let signature = stream.finish().map_err(|err| {
        Error::new(
            crate::exit::Exit::Software,
            format!("dkim: signing failed: {err}"),
        )
    })?;
    let field = signature.to_header().into_bytes();
    match content.segments.first_mut() {
        // The header block stays in the first segment, where
        // `Content::header` looks. `splice` moves the bytes in place.
        Some(Segment::Bytes(bytes)) => {
            bytes.splice(0..0, field);
        }
        _ => content.segments.insert(0, Segment::Bytes(field)),
    }
    Ok(())
}

/// The body without the spaces and tabs that end its lines, which relaxed
/// body canonicalisation ignores (RFC 6376 §3.4.4) and so the signature
/// does not change. mail-auth 0.13 hashes a body that ends in lines of
/// only such whitespace wrongly (an extra CRLF: `x\r\n \r\n` as
/// `x\r\n\r\n`), and cron's and scripts' output often ends that way;
/// without that whitespace its own canonicalisation is right. The header
/// block goes through as it is.
#[derive(Default)]
struct LineEndSpace {
    in_body: bool,
    /// The last three bytes of the header block, to find its end across
    /// chunks.
    last: [u8; 3],
    /// Spaces and tabs not yet known to end a line.
    held: Vec<u8>,
}

impl LineEndSpace {
    fn filter(&mut self, chunk: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(chunk.len());
        for &b in chunk {
            if !self.in_body {
                out.push(b);
                self.in_body = self.last == *b"\r\n\r" && b == b'\n';
                self.last = [self.last[1], self.last[2], b];
                continue;
            }
            match b {
                b' ' | b'\t' => self.held.push(b),
                b'\r' | b'\n' => {
                    self.held.clear();
                    out.push(b);
                }
                _ => {
                    out.append(&mut self.held);
                    out.push(b);
                }
            }
        }
        out
    }
}

/// The `h=` list as mail-auth takes it: each configured name the message
/// has, once (mail-auth signs every occurrence of a listed name and adds
/// each listed name it does not find once more, RFC 6376 §5.4.2). From is
/// listed twice, so that it ends up in `h=` once more than it occurs and a
/// second From cannot be added; other absent names are left out, so that a
/// mailing list adding List-Id does not break the signature.
fn signed_names(content: &Content, configured: &[String]) -> Vec<String> {
    let present = header_names(content);
    let mut names = vec!["From".to_string()];
    if present.iter().any(|name| name.eq_ignore_ascii_case("from")) {
        names.push("From".to_string());
    }
    for name in configured {
        let wanted = |n: &String| n.eq_ignore_ascii_case(name);
        if !name.eq_ignore_ascii_case("from")
            && present.iter().any(wanted)
            && !names.iter().any(wanted)
        {
            names.push(name.clone());
        }
    }
    names
}

/// The field names of the header block (first segment), in order.
fn header_names(content: &Content) -> Vec<String> {
    let Some(Segment::Bytes(bytes)) = content.segments.first() else {
        return Vec::new();
    };
    let mut names = Vec::new();
    for line in bytes.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if line[0] == b' ' || line[0] == b'\t' {
            continue;
        }
        if let Some(colon) = line.iter().position(|&b| b == b':') {
            names.push(String::from_utf8_lossy(&line[..colon]).trim().to_string());
        }
    }
    names
}

/// mail-auth's signer owns its key; the plan keeps ours for every message.
struct KeyRef<'a>(&'a Key);

impl SigningKey for KeyRef<'_> {
    type Hasher = Sha256;

    fn sign(&self, input: impl Writable) -> mail_auth::Result<Vec<u8>> {
        self.0.sign(input)
    }

    fn algorithm(&self) -> Algorithm {
        self.0.algorithm
    }
}

/// The default `dkim_headers`: RFC 6376 §5.4.1's list, as OpenDKIM signs
/// it, with the MIME fields whose change alters what the reader sees.
pub(crate) const DEFAULT_HEADERS: &[&str] = &[
    "From",
    "Reply-To",
    "Subject",
    "Date",
    "To",
    "Cc",
    "Message-ID",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "Resent-Date",
    "Resent-From",
    "Resent-Sender",
    "Resent-To",
    "Resent-Cc",
    "Resent-Message-ID",
    "List-Id",
    "List-Help",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "List-Subscribe",
    "List-Post",
    "List-Owner",
    "List-Archive",
];

/// A selector (RFC 6376 §3.1): dot-separated labels of letters, digits,
/// hyphens (and underscores, which DNS allows in TXT names). The error
/// says what is wrong.
pub(crate) fn check_selector(selector: &str) -> std::result::Result<(), String> {
    check_labels(selector, "selector")
}

/// A signing domain as `d=` writes it: lower-case A-labels without the
/// final dot; a U-label domain (`bücher.example`) is converted.
pub(crate) fn check_domain(domain: &str) -> std::result::Result<String, String> {
    let trimmed = domain.strip_suffix('.').unwrap_or(domain);
    let ascii = idna::domain_to_ascii_strict(trimmed)
        .map_err(|_| "is not a valid domain name".to_string())?;
    check_labels(&ascii, "domain")?;
    if !ascii.contains('.') {
        return Err("is not a domain with a dot (example.com)".to_string());
    }
    // 192.0.2.1 passes as labels, but no key is published under an
    // address: a d= must be a name.
    if ascii
        .rsplit('.')
        .next()
        .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err("is an address, not a domain name".to_string());
    }
    Ok(ascii.to_ascii_lowercase())
}

fn check_labels(name: &str, what: &str) -> std::result::Result<(), String> {
    if name.is_empty() || name.len() > 253 {
        return Err(format!("is not a {what}: empty or over 253 characters"));
    }
    for label in name.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !ok {
            return Err(format!(
                "is not a {what}: labels are letters, digits and inner hyphens, 1 to 63 long"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_is_listed_once_more_and_absent_names_are_left_out() {
        let content = Content::from_bytes(
            b"From: a@example.com\r\nSubject: x\r\nX-Other: y\r\n\r\nbody\r\n".to_vec(),
        );
        let configured: Vec<String> = DEFAULT_HEADERS.iter().map(|s| s.to_string()).collect();
        assert_eq!(
            signed_names(&content, &configured),
            ["From", "From", "Subject"]
        );
    }

    #[test]
    fn spaces_that_end_body_lines_are_dropped_and_the_header_is_left_alone() {
        let mut trim = LineEndSpace::default();
        let mut out = trim.filter(b"Subject: a \r\n b \r\n\r");
        // The header block's end split across chunks.
        out.extend(trim.filter(b"\nJob output \t\r\n   \r\nx  y\r\n \t"));
        out.extend(trim.filter(b"\r\n  "));
        assert_eq!(
            out,
            b"Subject: a \r\n b \r\n\r\nJob output\r\n\r\nx  y\r\n\r\n".to_vec()
        );
    }

    #[test]
    fn selectors_and_domains_are_dns_names() {
        assert!(check_selector("2026-12").is_ok());
        assert!(check_selector("a.b_c").is_ok());
        for bad in ["", "a b", "a\r\nb", "-a", "a..b", "ä"] {
            assert!(check_selector(bad).is_err(), "{bad:?}");
        }
        assert_eq!(check_domain("Example.COM.").unwrap(), "example.com");
        assert_eq!(
            check_domain("bücher.example").unwrap(),
            "xn--bcher-kva.example"
        );
        for bad in [
            "",
            "localhost",
            "a b.com",
            "x\n.com",
            "-a.com",
            "1.2.3.4",
            "[127.0.0.1]",
        ] {
            assert!(check_domain(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn small_rsa_keys_and_other_algorithms_are_refused() {
        let small = openssl::rsa::Rsa::generate(1024).unwrap();
        let pem = PKey::from_rsa(small)
            .unwrap()
            .private_key_to_pem_pkcs8()
            .unwrap();
        let err = Key::from_pem(&pem).unwrap_err();
        assert!(err.contains("1024 bits"), "{err}");
        let group =
            openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1).unwrap();
        let ec = PKey::from_ec_key(openssl::ec::EcKey::generate(&group).unwrap()).unwrap();
        let err = Key::from_pem(&ec.private_key_to_pem_pkcs8().unwrap()).unwrap_err();
        assert!(err.contains("neither"), "{err}");
        assert!(Key::from_pem(b"garbage").is_err());
    }
}
