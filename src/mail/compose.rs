//! Builds the message bytes from a validated [`Draft`] with mail-builder.
//!
//! mail-builder does the encoding work: RFC 2047 for non-ASCII headers,
//! RFC 2231 for attachment names, quoted-printable or base64 for bodies, so
//! the output is 7-bit with short lines. Two things it does not do are done
//! here: HTML with inline images goes into multipart/related (its own
//! `.inline()` uses multipart/mixed, which clients show as attachments),
//! and Bcc is never handed to it (its `.bcc()` writes a header).

use std::borrow::Cow;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use std::path::{Path, PathBuf};

use mail_builder::headers::address::Address;
use mail_builder::headers::content_type::ContentType;
use mail_builder::headers::message_id::generate_message_id_header;
use mail_builder::headers::message_id::MessageId;
use mail_builder::headers::raw::Raw;
use mail_builder::headers::text::Text;
use mail_builder::headers::url::URL;
use mail_builder::headers::HeaderType;
use mail_builder::mime::{BodyPart, MimePart};
use mail_builder::MessageBuilder;

use crate::exit::{Error, Exit, Result};
use crate::mail::address::Mailbox;
use crate::mail::attach::{self, TextKind, TextScan};
use crate::mail::content::{Content, Segment, SpooledFile};
use crate::mail::fields::{self, Field};

/// Everything a message is made of, already read and checked.
#[derive(Debug, Default)]
pub(crate) struct Draft {
    pub(crate) from: Option<Mailbox>,
    pub(crate) to: Vec<Mailbox>,
    pub(crate) cc: Vec<Mailbox>,
    pub(crate) reply_to: Vec<Mailbox>,
    pub(crate) subject: Option<String>,
    /// Extra headers in the order given, already checked by [`parse_header`].
    pub(crate) headers: Vec<(String, String)>,
    /// The text/plain body; `None` only for an HTML-only message.
    pub(crate) text: Option<String>,
    pub(crate) html: Option<String>,
    pub(crate) attachments: Vec<FilePart>,
    /// Images the HTML shows by `cid:NAME`.
    pub(crate) inline: Vec<FilePart>,
}

/// A file to attach or embed.
#[derive(Debug, Clone)]
pub(crate) struct FilePart {
    /// The file name shown to the recipient.
    pub(crate) name: String,
    /// An inline part's Content-ID without the `<>`: `;cid=ID`, else the
    /// file name; `None` for attachments.
    pub(crate) content_id: Option<String>,
    pub(crate) content_type: String,
    /// A text file's charset, from its bytes; `None` when not text or
    /// not known (see [`attach`]).
    pub(crate) charset: Option<&'static str>,
    pub(crate) data: FileData,
}

/// Files up to this size are read and encoded by mail-builder; larger ones
/// are streamed from disk as base64 when the message is written.
pub(crate) const STREAM_THRESHOLD: u64 = 1024 * 1024;

/// A file's contents: read, or to be streamed from its path or from the
/// unlinked file standard input was spooled to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FileData {
    Memory(Vec<u8>),
    Stream { path: PathBuf, len: u64 },
    Spooled { file: SpooledFile, len: u64 },
}

/// The path that stands for standard input in `-a -` and `--inline -`.
pub(crate) const STDIN: &str = "-";

/// The name an attachment read from standard input gets without `;name=`.
const STDIN_NAME: &str = "stdin";

/// What a file is for: `;cid=` only makes sense for an inline part.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FileRole {
    Attachment,
    Inline,
}

impl FileRole {
    fn what(self) -> &'static str {
        match self {
            FileRole::Attachment => "attachment",
            FileRole::Inline => "inline image",
        }
    }
}

/// True when a file argument reads standard input (`-`, with options).
pub(crate) fn reads_stdin(spec: &str) -> bool {
    split_options(spec).is_ok_and(|options| options.path.as_os_str() == STDIN)
}

impl FilePart {
    /// Reads `PATH`, with `;type=MIME/TYPE`, `;name=FILE` and (inline
    /// parts) `;cid=ID` options after it. A path that exists as written
    /// wins over reading options, so odd file names still work. The path
    /// `-` is standard input, whose contents `stdin` reads.
    pub(crate) fn load(
        spec: &str,
        role: FileRole,
        stdin: &mut dyn FnMut() -> Result<FileData>,
    ) -> Result<FilePart> {
        let what = role.what();
        let FileOptions {
            path,
            content_type: forced_type,
            content_id,
            name: given_name,
        } = split_options(spec)?;
        if content_id.is_some() && role != FileRole::Inline {
            return Err(Error::usage(format!(
                "{spec:?}: ;cid= names an inline image's Content-ID; it is for --inline only"
            )));
        }
        let (data, name) = if path.as_os_str() == STDIN {
            (stdin()?, STDIN_NAME.to_string())
        } else {
            read_file(spec, what, &path)?
        };
        let name = given_name.unwrap_or(name);
        // Guessed from the name the recipient sees: `-a '-;name=a.csv'`
        // is text/csv.
        let given = forced_type.is_some();
        let content_type = forced_type.unwrap_or_else(|| {
            mime_guess::from_path(&name)
                .first_or_octet_stream()
                .essence_str()
                .to_string()
        });
        let (content_type, charset) = carried_type(content_type, given, &data)
            .map_err(|err| Error::input(what, &path, &err))?;
        let content_id = match (role, content_id) {
            (FileRole::Attachment, _) => None,
            (FileRole::Inline, Some(id)) => Some(id),
            (FileRole::Inline, None) if is_dot_atom_text(&name) => Some(name.clone()),
            (FileRole::Inline, None) => {
                return Err(Error::data(format!(
                    "the inline image's name {name:?} cannot be its Content-ID"
                ))
                .hint(format!(
                    "name one with ;cid=ID (letters, digits, dots): --inline '{spec};cid=image1', shown by cid:image1"
                )))
            }
        };
        Ok(FilePart {
            name,
            content_id,
            content_type,
            charset,
            data,
        })
    }
}

/// The type a file goes as, and a text file's charset: an `.eml` that
/// cannot be carried as 7bit or 8bit, and guessed text that is not UTF-8,
/// become application/octet-stream (see [`attach`]).
fn carried_type(
    content_type: String,
    given: bool,
    data: &FileData,
) -> std::io::Result<(String, Option<&'static str>)> {
    let octet_stream = || (attach::OCTET_STREAM.to_string(), None);
    if content_type == "message/rfc822" {
        return Ok(match data {
            FileData::Memory(bytes) if attach::carriable(bytes) => (content_type, None),
            _ => octet_stream(),
        });
    }
    if !content_type.starts_with("text/") {
        return Ok((content_type, None));
    }
    match scan_text(data)? {
        TextKind::Other if !given => Ok(octet_stream()),
        kind => Ok((content_type, kind.charset())),
    }
}

/// What a file's bytes are, read 64 KiB at a time when it is streamed.
fn scan_text(data: &FileData) -> std::io::Result<TextKind> {
    use std::os::unix::fs::FileExt;
    let (file, len) = match data {
        FileData::Memory(bytes) => return Ok(attach::text_kind(bytes)),
        FileData::Stream { path, len } => (std::fs::File::open(path)?, *len),
        FileData::Spooled { file, len } => (file.0.try_clone()?, *len),
    };
    let mut scan = TextScan::default();
    let mut chunk = vec![0u8; 64 * 1024];
    let mut offset = 0;
    while offset < len {
        let want = chunk.len().min((len - offset) as usize);
        file.read_exact_at(&mut chunk[..want], offset)?;
        scan.feed(&chunk[..want]);
        offset += want as u64;
    }
    Ok(scan.finish())
}

/// A file's contents (in memory when small, else to be streamed) and its
/// name.
fn read_file(spec: &str, what: &str, path: &Path) -> Result<(FileData, String)> {
    let metadata = std::fs::metadata(path).map_err(|err| Error::input(what, path, &err))?;
    if metadata.is_dir() {
        // EISDIR: "Is a directory", as reading it would say.
        return Err(Error::input(
            what,
            path,
            &std::io::Error::from_raw_os_error(21),
        ));
    }
    // Open it now, so that an unreadable file fails before any I/O.
    let mut file = std::fs::File::open(path).map_err(|err| Error::input(what, path, &err))?;
    let data = if metadata.len() > STREAM_THRESHOLD {
        FileData::Stream {
            path: path.to_path_buf(),
            len: metadata.len(),
        }
    } else {
        let mut bytes = Vec::with_capacity(metadata.len() as usize);
        std::io::Read::read_to_end(&mut file, &mut bytes)
            .map_err(|err| Error::input(what, path, &err))?;
        FileData::Memory(bytes)
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| Error::usage(format!("{what} {spec:?} is not a file name")))?;
    Ok((data, name))
}

/// RFC 5322 3.2.3 dot-atom-text: atext runs joined by single dots. A
/// Content-ID is a msg-id (RFC 2045 7), written `<ID>` by mail-builder
/// without any check, so anything else (a CR or LF, 8-bit octets, `>`)
/// would break or inject into the part's header.
pub(crate) fn is_dot_atom_text(text: &str) -> bool {
    let atext = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b);
    !text.is_empty()
        && text
            .split('.')
            .all(|run| !run.is_empty() && run.bytes().all(atext))
}

/// Refuses two inline parts with one Content-ID: the HTML's `cid:` could
/// only ever show one of them (RFC 2392 needs it unique in the message).
pub(crate) fn check_content_ids(inline: &[FilePart]) -> Result<()> {
    let mut seen = std::collections::HashSet::new();
    for part in inline {
        let Some(id) = &part.content_id else { continue };
        if !seen.insert(id.to_ascii_lowercase()) {
            return Err(
                Error::data(format!("two inline images have the Content-ID {id:?}"))
                    .hint("give each its own with ;cid=ID, e.g. --inline 'a/logo.png;cid=logo-a'"),
            );
        }
    }
    Ok(())
}

/// A file argument split into its path and options.
#[derive(Debug, PartialEq, Eq)]
struct FileOptions {
    path: PathBuf,
    content_type: Option<String>,
    content_id: Option<String>,
    /// The file name shown to the recipient, instead of the path's.
    name: Option<String>,
}

/// `PATH[;type=MIME/TYPE][;name=FILE][;cid=ID]`, options in any order,
/// each once.
fn split_options(spec: &str) -> Result<FileOptions> {
    let mut options = FileOptions {
        path: PathBuf::from(spec),
        content_type: None,
        content_id: None,
        name: None,
    };
    // `-` is standard input even when the directory has a file named `-`
    // (write ./- for that one).
    if spec != STDIN && Path::new(spec).exists() {
        return Ok(options);
    }
    let mut rest = spec;
    while let Some((head, option)) = rest.rsplit_once(';') {
        if let Some(mime) = option.strip_prefix("type=") {
            if options.content_type.is_some() {
                return Err(Error::usage(format!("{spec:?} gives ;type= twice")));
            }
            let valid = mime.split_once('/').is_some_and(|(a, b)| {
                !a.is_empty()
                    && !b.is_empty()
                    && mime
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "/.+-_".contains(c))
            });
            if !valid {
                return Err(Error::usage(format!(
                    "invalid content type {mime:?} in {spec:?}; expected TYPE/SUBTYPE such as text/csv"
                )));
            }
            options.content_type = Some(mime.to_ascii_lowercase());
        } else if let Some(id) = option.strip_prefix("cid=") {
            if options.content_id.is_some() {
                return Err(Error::usage(format!("{spec:?} gives ;cid= twice")));
            }
            if !is_dot_atom_text(id) {
                return Err(Error::data(format!(
                    "invalid Content-ID {id:?} in {spec:?}"
                ))
                .hint("use ASCII letters, digits, dots and -_ (RFC 5322 dot-atom-text), e.g. ;cid=logo"));
            }
            options.content_id = Some(id.to_string());
        } else if let Some(name) = option.strip_prefix("name=") {
            if options.name.is_some() {
                return Err(Error::usage(format!("{spec:?} gives ;name= twice")));
            }
            // A name, not a path: the recipient's client saves it as given.
            // "." and ".." name directories wherever they are saved.
            let no_name = name.trim().is_empty() || name == "." || name == "..";
            if no_name || name.contains(['/', '\\']) || name.chars().any(char::is_control) {
                return Err(Error::usage(format!(
                    "invalid file name {name:?} in {spec:?}; give a name without slashes or control characters, e.g. ;name=report.csv"
                )));
            }
            options.name = Some(name.to_string());
        } else {
            break;
        }
        rest = head;
    }
    options.path = PathBuf::from(rest);
    Ok(options)
}

/// Headers that postie writes from its own flags; giving them with -H would
/// produce duplicates or smuggle recipients past the envelope.
const OWN_HEADERS: &[(&str, &str)] = &[
    ("from", "--from"),
    ("to", "--to or a recipient argument"),
    ("cc", "--cc"),
    ("bcc", "--bcc (it never becomes a header)"),
    ("subject", "--subject"),
    ("reply-to", "--reply-to"),
    ("mime-version", "nothing: postie writes it"),
    ("content-type", "--html, --attach or --inline"),
    ("content-transfer-encoding", "nothing: postie chooses it"),
];

/// Headers whose name mail-builder looks for to avoid generating its own;
/// its check is case-sensitive, so a user's spelling is normalised.
const CANONICAL_NAMES: &[&str] = &["Date", "Message-ID"];

/// RFC 5322 2.1.1 keeps a line within 78 characters; a name longer than
/// 76 leaves no room for the colon and a value on its first line, which
/// mail-builder cannot fold.
const MAX_HEADER_NAME: usize = 76;

/// Headers RFC 5322 3.6 allows once in a message.
const ONCE: &[&str] = &["Date", "Message-ID"];

/// Parses every `-H` argument, and refuses what a message may hold only
/// once (RFC 5322 3.6's table) given twice.
pub(crate) fn parse_headers(args: &[String]) -> Result<Vec<(String, String)>> {
    let headers = args
        .iter()
        .map(|arg| parse_header(arg))
        .collect::<Result<Vec<_>>>()?;
    for once in ONCE {
        if headers.iter().filter(|(name, _)| name == once).count() > 1 {
            return Err(Error::data(format!(
                "--header gives {once} twice; a message has at most one (RFC 5322 3.6)"
            )));
        }
    }
    Ok(headers)
}

/// Parses a `-H 'Name: value'` argument. CR or LF anywhere is refused:
/// it would let a value start a new header (header injection).
pub(crate) fn parse_header(arg: &str) -> Result<(String, String)> {
    if arg.contains(['\r', '\n']) {
        return Err(Error::data(format!(
            "header {:?} contains CR or LF; a header value must be one line",
            arg
        )));
    }
    let (name, value) = arg.split_once(':').ok_or_else(|| {
        Error::usage(format!(
            "header {arg:?} has no ':'; write it as 'Name: value'"
        ))
    })?;
    let name = name.trim();
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic() && b != b':') {
        return Err(Error::usage(format!(
            "invalid header name {name:?}; use letters, digits and '-'"
        )));
    }
    if name.len() > MAX_HEADER_NAME {
        return Err(Error::data(format!(
            "header name {}... is {} characters long; at most {MAX_HEADER_NAME} fit a line (RFC 5322 2.1.1)",
            &name[..20],
            name.len()
        )));
    }
    // RFC 5322 3.6.6: Resent-Bcc names hidden recipients of a resend; as
    // a header it would show them to everyone, and the envelope ignores it.
    if name.eq_ignore_ascii_case("resent-bcc") {
        return Err(
            Error::data("a Resent-Bcc header would show its recipients to every reader")
                .hint("give hidden recipients with --bcc"),
        );
    }
    if let Some((_, flag)) = OWN_HEADERS
        .iter()
        .find(|(own, _)| own.eq_ignore_ascii_case(name))
    {
        return Err(Error::usage(format!(
            "set the {name} header with {flag}, not with --header"
        )));
    }
    let name = CANONICAL_NAMES
        .iter()
        .find(|canon| canon.eq_ignore_ascii_case(name))
        .map(|canon| canon.to_string())
        .unwrap_or_else(|| name.to_string());
    let value = value.trim();
    if name == "Date" && !is_rfc5322_date(value) {
        return Err(Error::data(format!(
            "Date {value:?} is not an RFC 5322 date-time"
        ))
        .hint("write it like 'Date: Tue, 1 Dec 2026 10:00:00 +0100' (date -R prints one), or leave it out"));
    }
    fields::parse(&name, value)?;
    Ok((name, value.to_string()))
}

/// RFC 5322 3.3 date-time: `[day-of-week ","] day month year hour ":"
/// minute [":" second] zone`, with the obsolete zones of 4.3 (`GMT`,
/// `EST`, ...). Readers that cannot parse a Date sort the message
/// anywhere, and strict servers refuse it.
pub(crate) fn is_rfc5322_date(text: &str) -> bool {
    const DAYS: &[&str] = &["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const MONTHS: &[&str] = &[
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    const ZONES: &[&str] = &[
        "UT", "GMT", "EST", "EDT", "CST", "CDT", "MST", "MDT", "PST", "PDT",
    ];
    let number = |s: &str, min: usize, max: usize, limit: u32| {
        (min..=max).contains(&s.len())
            && s.bytes().all(|b| b.is_ascii_digit())
            && s.parse::<u32>().is_ok_and(|n| n <= limit)
    };
    // A trailing comment, as in `+0000 (UTC)`, is CFWS (RFC 5322 3.2.2).
    let text = match text.trim_end().strip_suffix(')') {
        Some(open) => match open.rsplit_once('(') {
            Some((before, comment)) if !comment.contains(['(', ')', '\\']) => before,
            _ => return false,
        },
        None => text,
    };
    let rest = match text.split_once(',') {
        Some((day, rest)) if DAYS.contains(&day.trim()) => rest,
        Some(_) => return false,
        None => text,
    };
    let words: Vec<&str> = rest.split_whitespace().collect();
    let [day, month, year, time, zone] = words.as_slice() else {
        return false;
    };
    let clock: Vec<&str> = time.split(':').collect();
    let time_ok = match clock.as_slice() {
        [h, m] => number(h, 2, 2, 23) && number(m, 2, 2, 59),
        // 60: a leap second (RFC 5322 3.3).
        [h, m, s] => number(h, 2, 2, 23) && number(m, 2, 2, 59) && number(s, 2, 2, 60),
        _ => false,
    };
    let zone_ok = match zone.as_bytes() {
        [b'+' | b'-', digits @ ..] => digits.len() == 4 && digits.iter().all(u8::is_ascii_digit),
        // obs-zone military letters (RFC 5322 4.3), all but J.
        [letter] => letter.is_ascii_alphabetic() && !letter.eq_ignore_ascii_case(&b'j'),
        _ => ZONES.iter().any(|z| z.eq_ignore_ascii_case(zone)),
    };
    number(day, 1, 2, 31)
        && *day != "0"
        && *day != "00"
        && MONTHS.contains(month)
        && number(year, 4, 4, 9999)
        && year.parse::<u32>().is_ok_and(|y| y >= 1900)
        && time_ok
        && zone_ok
}

/// Refuses CR or LF in a one-line value given on the command line.
pub(crate) fn check_one_line(what: &str, value: &str) -> Result<()> {
    if value.contains(['\r', '\n']) {
        return Err(Error::data(format!(
            "{what} contains CR or LF; it must be one line"
        )));
    }
    Ok(())
}

/// Text that a reader would take for an RFC 2047 encoded word. mail-builder
/// writes ASCII values as they are, so `Subject: =?utf-8?B?Zm9v?=` would be
/// shown as "foo" (or, Q-encoded, as text with a line break and a fake
/// header in it). Such values are encoded by postie, so they read as typed.
fn looks_encoded(text: &str) -> bool {
    text.contains("=?")
}

/// RFC 2047 B-encoded words, folded one per line: each encodes at most 45
/// bytes (60 base64 characters, 72 with the wrapper), split on characters.
fn encoded_words(text: &str) -> String {
    let mut words = Vec::new();
    let mut start = 0;
    while start < text.len() {
        let mut end = (start + 45).min(text.len());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        words.push(format!(
            "=?utf-8?B?{}?=",
            BASE64.encode(&text.as_bytes()[start..end])
        ));
        start = end;
    }
    words.join("\r\n ")
}

/// The longest word written as it is: with the header name (at most 76)
/// and ": " it stays within RFC 5322's 998-octet line limit.
const MAX_PLAIN_WORD: usize = 900;

/// Printable ASCII (and tabs) in words that fit a line, with no trailing
/// white space: folded at white space and never encoded, so filters that
/// grep raw headers match it (mail-builder's `Text` Q-encodes anything
/// over 77 characters, splitting words).
fn is_plain_ascii(value: &str) -> bool {
    value
        .bytes()
        .all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
        && !value.ends_with([' ', '\t'])
        && value
            .split([' ', '\t'])
            .all(|word| word.len() <= MAX_PLAIN_WORD)
}

/// A header value: plain ASCII folded at white space (`Raw` folds), text
/// with some non-ASCII words encoded word by word, the rest as
/// mail-builder encodes it, unless it looks encoded.
fn text_header<'x>(name: &str, value: &'x str) -> HeaderType<'x> {
    if looks_encoded(value) {
        Raw::new(encoded_words(value)).into()
    } else if is_plain_ascii(value) {
        Raw::new(value).into()
    } else if let Some(mixed) = mixed_words(value, FOLD_AT.saturating_sub(name.len() + 2)) {
        Raw::new(mixed).into()
    } else {
        Text::new(value).into()
    }
}

/// RFC 5322 2.1.1's line length, RFC 2047's longest encoded word and
/// the length of its `=?utf-8?Q?` ... `?=` wrapper.
const FOLD_AT: usize = 78;
const MAX_WORD: usize = 75;
const WRAPPER: usize = "=?utf-8?Q??=".len();

/// Words separated by single spaces, with no control characters: the
/// non-ASCII ones are Q-encoded (a run of them together, so the spaces
/// between them survive), the ASCII ones stay as they are, so filters
/// still match them. A first encoded word fits in `room`, what the line
/// has left after the header name. None for anything else.
fn mixed_words(value: &str, room: usize) -> Option<String> {
    let words: Vec<&str> = value.split(' ').collect();
    let simple = words
        .iter()
        .all(|word| !word.is_empty() && word.len() <= MAX_PLAIN_WORD)
        && !value.chars().any(char::is_control);
    if !simple {
        return None;
    }
    // Room for at least one encoded character (12 octets) after the
    // wrapper; else mail-builder, which folds before the first word.
    if !words[0].is_ascii() && room < WRAPPER + 12 {
        return None;
    }
    let mut out: Vec<String> = Vec::new();
    let mut run: Vec<&str> = Vec::new();
    for word in words {
        if word.is_ascii() {
            if !run.is_empty() {
                let first = if out.is_empty() { room } else { MAX_WORD };
                out.push(q_words(&run.join(" "), first));
                run.clear();
            }
            out.push(word.to_string());
        } else {
            run.push(word);
        }
    }
    if !run.is_empty() {
        let first = if out.is_empty() { room } else { MAX_WORD };
        out.push(q_words(&run.join(" "), first));
    }
    Some(out.join(" "))
}

/// RFC 2047 Q-encoded words of at most 75 characters, split between
/// characters and separated by spaces (which readers drop between
/// encoded words).
fn q_words(text: &str, first: usize) -> String {
    let mut words = vec![String::new()];
    let mut payload = first.min(MAX_WORD) - WRAPPER;
    for ch in text.chars() {
        let mut buf = [0u8; 4];
        let encoded: String = ch
            .encode_utf8(&mut buf)
            .bytes()
            .map(|byte| match byte {
                b' ' => "_".to_string(),
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'!' | b'*' | b'+' | b'-' | b'/' => {
                    (byte as char).to_string()
                }
                _ => format!("={byte:02X}"),
            })
            .collect();
        let last = words.last_mut().expect("one word");
        if last.len() + encoded.len() > payload {
            words.push(encoded);
            payload = MAX_WORD - WRAPPER;
        } else {
            last.push_str(&encoded);
        }
    }
    words
        .iter()
        .map(|word| format!("=?utf-8?Q?{word}?="))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A `-H` header by what its field holds: msg-ids and URLs in brackets,
/// folded at white space and never encoded; addresses with only the
/// display name encoded; free text as [`text_header`].
fn extra_header<'x>(name: &str, value: &'x str, field: &'x Field) -> HeaderType<'x> {
    match field {
        Field::Text => text_header(name, value),
        Field::Token => Raw::new(value).into(),
        Field::MessageIds(ids) => MessageId::new_list(ids.iter().map(String::as_str)).into(),
        Field::Urls(urls) => URL::new_list(urls.iter().map(String::as_str)).into(),
        Field::Mailboxes(list) => address_list(list),
    }
}

/// The `-H` headers, each parsed by its field (see [`fields::parse`]).
fn extra_fields(draft: &Draft) -> Result<Vec<Field>> {
    draft
        .headers
        .iter()
        .map(|(name, value)| fields::parse(name, value))
        .collect()
}

fn address_list(list: &[Mailbox]) -> HeaderType<'_> {
    if list.iter().any(|m| {
        m.name
            .as_deref()
            .is_some_and(|name| looks_encoded(name) || long_ascii(name))
    }) {
        return Raw::new(raw_address_list(list)).into();
    }
    let items: Vec<Address<'_>> = list.iter().map(address).collect();
    if items.len() == 1 {
        items.into_iter().next().expect("one item").into()
    } else {
        Address::new_list(items).into()
    }
}

/// A plain ASCII display name too long for one line: mail-builder writes
/// it as `=?us-ascii?Q?` words cut mid-word, which some readers (Python's
/// email before gh-128110) put back together with spaces in the words. A
/// quoted string folds at its spaces instead (RFC 5322 3.2.4 allows FWS
/// in it).
fn long_ascii(name: &str) -> bool {
    name.is_ascii() && !name.chars().any(|c| c.is_ascii_control()) && name.len() > 60
}

/// An address list written by postie, one mailbox a line, for display
/// names mail-builder would leave looking like encoded words (clients
/// decode them even inside quotes), or would cut mid-word.
fn raw_address_list(list: &[Mailbox]) -> String {
    list.iter()
        .map(|mailbox| match mailbox.name.as_deref() {
            Some(name) if looks_encoded(name) || !name.is_ascii() => {
                format!("{} <{}>", encoded_words(name), mailbox.email)
            }
            Some(name) => format!(
                "\"{}\" <{}>",
                name.replace('\\', "\\\\").replace('"', "\\\""),
                mailbox.email
            ),
            None => format!("<{}>", mailbox.email),
        })
        .collect::<Vec<_>>()
        .join(",\r\n ")
}

/// The To value of a message sent only to Bcc recipients: an empty group,
/// as mutt and Postfix write it. RFC 5322 3.6.3 allows a message without
/// To, but spam filters score it (MISSING_HEADERS). Raw, because
/// mail-builder's `Address::new_group` quotes the name
/// (`"undisclosed-recipients":;`).
pub(crate) const UNDISCLOSED_RECIPIENTS: &str = "undisclosed-recipients:;";

fn address(mailbox: &Mailbox) -> Address<'_> {
    Address::new_address(mailbox.name.as_deref(), mailbox.email.as_str())
}

/// mail-builder sends text as 7bit when it is ASCII with short lines, even
/// with a bare CR or a NUL in it, which RFC 5322 and RFC 2045 forbid (and
/// servers refuse). Such text is base64-encoded here instead.
fn needs_base64(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .enumerate()
        .any(|(i, &b)| b == 0 || (b == b'\r' && bytes.get(i + 1) != Some(&b'\n')))
}

/// Base64 in lines of 76, for a part whose encoding postie chose itself.
fn base64_lines(bytes: &[u8]) -> Vec<u8> {
    let encoded = BASE64.encode(bytes);
    let mut out = Vec::with_capacity(encoded.len() + encoded.len() / 38 + 2);
    for line in encoded.as_bytes().chunks(76) {
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// A part of `content_type` holding `bytes`: mail-builder chooses the
/// encoding, except for text it would send unencoded although it must not.
fn leaf<'x>(content_type: ContentType<'x>, bytes: &'x [u8], text: bool) -> MimePart<'x> {
    let is_text = text || content_type.is_text();
    if is_text && needs_base64(bytes) {
        return MimePart::new(
            content_type,
            BodyPart::Binary(Cow::Owned(base64_lines(bytes))),
        )
        .transfer_encoding("base64");
    }
    if text {
        let text = std::str::from_utf8(bytes).expect("text parts are UTF-8");
        MimePart::new(content_type, BodyPart::Text(Cow::Borrowed(text)))
    } else {
        MimePart::new(content_type, BodyPart::Binary(Cow::Borrowed(bytes)))
    }
}

fn text_part<'x>(subtype: &'x str, text: &'x str) -> MimePart<'x> {
    let content_type = ContentType::new(subtype).attribute("charset", "utf-8");
    leaf(content_type, text.as_bytes(), true)
}

/// A file's part; a streamed file gets its placeholder as a raw base64 body.
fn file_part<'x>(part: &'x FilePart, placeholder: &'x str) -> MimePart<'x> {
    let mut content_type = ContentType::new(part.content_type.as_str());
    if let Some(charset) = part.charset {
        content_type = content_type.attribute("charset", charset);
    }
    if let FileData::Memory(bytes) = &part.data {
        if let Some(mime) = attach::memory_part(&part.content_type, part.charset, bytes) {
            return mime;
        }
    }
    match &part.data {
        // Text is encoded by `attach::memory_part` above, whatever its name.
        FileData::Memory(bytes) => leaf(content_type, bytes, false),
        FileData::Stream { .. } | FileData::Spooled { .. } => MimePart::new(
            content_type,
            BodyPart::Binary(Cow::Borrowed(placeholder.as_bytes())),
        )
        .transfer_encoding("base64"),
    }
}

/// Placeholders for streamed files, unique to this message.
fn placeholders(draft: &Draft) -> Vec<String> {
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    (0..draft.inline.len() + draft.attachments.len())
        .map(|i| format!("postie-streamed-file-{nonce:x}-{i}"))
        .collect()
}

/// Content-Disposition with the file name; a name that looks like an
/// encoded word goes in RFC 2231 form, which no reader decodes twice.
fn with_disposition<'x>(part: MimePart<'x>, disposition: &'x str, name: &'x str) -> MimePart<'x> {
    if looks_encoded(name) {
        let escaped: String = name
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        return part.header(
            "Content-Disposition",
            Raw::new(format!("{disposition};\r\n filename*=utf-8''{escaped}")),
        );
    }
    part.header(
        "Content-Disposition",
        ContentType::new(disposition).attribute("filename", name),
    )
}

/// The body tree: mixed(alternative(text, related(html, images)), files).
/// Each level is only there when it has more than one child.
fn body_tree<'x>(draft: &'x Draft, placeholders: &'x [String]) -> MimePart<'x> {
    let text = draft
        .text
        .as_deref()
        .map(|text| text_part("text/plain", text));
    let html = draft.html.as_deref().map(|html| {
        let html_part = text_part("text/html", html);
        if draft.inline.is_empty() {
            return html_part;
        }
        let mut parts = vec![html_part];
        parts.extend(
            draft
                .inline
                .iter()
                .zip(placeholders)
                .map(|(image, placeholder)| {
                    let part = with_disposition(
                        file_part(image, placeholder),
                        "inline",
                        image.name.as_str(),
                    );
                    match image.content_id.as_deref() {
                        Some(id) => part.cid(id),
                        None => part,
                    }
                }),
        );
        MimePart::new("multipart/related", parts)
    });
    let content = match (text, html) {
        (Some(text), Some(html)) => MimePart::new("multipart/alternative", vec![text, html]),
        (Some(only), None) | (None, Some(only)) => only,
        (None, None) => text_part("text/plain", ""),
    };
    if draft.attachments.is_empty() {
        return content;
    }
    let mut parts = vec![content];
    parts.extend(
        draft
            .attachments
            .iter()
            .zip(&placeholders[draft.inline.len()..])
            .map(|(file, placeholder)| {
                with_disposition(
                    file_part(file, placeholder),
                    "attachment",
                    file.name.as_str(),
                )
            }),
    );
    MimePart::new("multipart/mixed", parts)
}

/// A fresh Message-ID in the sender's domain: the machine's own host name
/// (mail-builder's choice) is often not a public name, and spam filters
/// score such IDs. A non-ASCII domain is written as A-labels (IDNA).
pub(crate) fn message_id(sender: &str) -> String {
    let address = crate::mail::address::ascii_domain(sender).ok();
    let domain = address
        .as_deref()
        .and_then(|address| address.rsplit_once('@'))
        .map(|(_, domain)| domain)
        .filter(|domain| domain.is_ascii())
        .unwrap_or("localhost");
    let mut id = Vec::new();
    generate_message_id_header(&mut id, domain);
    String::from_utf8_lossy(&id).into_owned()
}

/// Serialises the draft. Date and Message-ID are added by mail-builder
/// unless the draft's headers carry them.
pub(crate) fn build(draft: &Draft) -> Result<Content> {
    let extra = extra_fields(draft)?;
    let mut message = MessageBuilder::new();
    if let Some(from) = &draft.from {
        message = message.header("From", address_list(std::slice::from_ref(from)));
    }
    if !draft.to.is_empty() {
        message = message.header("To", address_list(&draft.to));
    }
    if !draft.cc.is_empty() {
        message = message.header("Cc", address_list(&draft.cc));
    }
    if draft.to.is_empty() && draft.cc.is_empty() {
        message = message.header("To", Raw::new(UNDISCLOSED_RECIPIENTS));
    }
    if !draft.reply_to.is_empty() {
        message = message.header("Reply-To", address_list(&draft.reply_to));
    }
    if let Some(subject) = &draft.subject {
        message = message.header("Subject", text_header("Subject", subject));
    }
    for ((name, value), field) in draft.headers.iter().zip(&extra) {
        message = message.header(name.as_str(), extra_header(name, value, field));
    }
    let has_message_id = draft.headers.iter().any(|(name, _)| name == "Message-ID");
    if let (false, Some(from)) = (has_message_id, &draft.from) {
        message = message.header("Message-ID", Raw::new(message_id(&from.email)));
    }
    let placeholders = placeholders(draft);
    message = message.body(body_tree(draft, &placeholders));
    let mut out = Vec::new();
    message.serialize(&mut out);
    // A single text part is written as the body ends; the CRLF the wire
    // adds before the final dot is added here, so --dry-run shows it too.
    if !out.ends_with(b"\n") {
        out.extend_from_slice(b"\r\n");
    }
    split_at_placeholders(out, draft, &placeholders)
}

/// Cuts mail-builder's output where the placeholders of streamed files
/// stand, and puts the files there. A placeholder that is not found would
/// send its own text as the attachment: a bug, never a message.
fn split_at_placeholders(out: Vec<u8>, draft: &Draft, placeholders: &[String]) -> Result<Content> {
    let files = draft.inline.iter().chain(&draft.attachments);
    let mut cuts: Vec<(usize, &str, Segment)> = files
        .zip(placeholders)
        .filter_map(|(file, placeholder)| {
            let segment = match &file.data {
                FileData::Stream { path, len } => Segment::Base64File {
                    path: path.clone(),
                    len: *len,
                },
                FileData::Spooled { file, len } => Segment::Base64Spooled {
                    file: file.clone(),
                    len: *len,
                },
                FileData::Memory(_) => return None,
            };
            Some((file, placeholder, segment))
        })
        .map(|(file, placeholder, segment)| {
            let at = find(&out, placeholder.as_bytes()).ok_or_else(|| {
                Error::new(
                    Exit::Software,
                    format!(
                        "lost the place of {} in the message (a bug in postie)",
                        file.name
                    ),
                )
            })?;
            Ok((at, placeholder.as_str(), segment))
        })
        .collect::<Result<_>>()?;
    cuts.sort_by_key(|(at, ..)| *at);
    let mut segments = Vec::new();
    let mut start = 0;
    for (at, placeholder, segment) in cuts {
        segments.push(Segment::Bytes(out[start..at].to_vec()));
        segments.push(segment);
        start = at + placeholder.len();
    }
    segments.push(Segment::Bytes(out[start..].to_vec()));
    Ok(Content { segments })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::Exit;

    #[test]
    fn header_injection_is_refused() {
        let err = parse_header("X-Test: a\r\nBcc: victim@example.com").unwrap_err();
        assert_eq!(err.exit, Exit::DataErr);
        assert!(err.message.contains("CR or LF"));
    }

    #[test]
    fn own_headers_point_to_their_flag() {
        let err = parse_header("bcc: x@example.com").unwrap_err();
        assert_eq!(err.exit, Exit::Usage);
        assert!(err.message.contains("--bcc"), "{}", err.message);
    }

    #[test]
    fn date_and_message_id_are_canonicalised() {
        assert_eq!(parse_header("message-id: <a@b>").unwrap().0, "Message-ID");
        assert_eq!(
            parse_header("DATE: 1 Dec 2026 10:00 +0000").unwrap().0,
            "Date"
        );
        assert_eq!(
            parse_header("X-Mailer:  postie ").unwrap(),
            ("X-Mailer".to_string(), "postie".to_string())
        );
    }

    #[test]
    fn hostile_headers_are_refused() {
        let long = format!("X-{}: v", "a".repeat(75));
        assert_eq!(parse_header(&long).unwrap_err().exit, Exit::DataErr);
        assert!(parse_header(&format!("X-{}: v", "a".repeat(74))).is_ok());
        assert_eq!(
            parse_header("resent-BCC: x@example.com").unwrap_err().exit,
            Exit::DataErr
        );
        assert_eq!(
            parse_header("Date: yesterday").unwrap_err().exit,
            Exit::DataErr
        );
        let twice = [
            "Message-ID: <a@b>".to_string(),
            "message-id: <c@d>".to_string(),
        ];
        assert_eq!(parse_headers(&twice).unwrap_err().exit, Exit::DataErr);
    }

    #[test]
    fn rfc5322_dates() {
        for good in [
            "Tue, 1 Dec 2026 10:00:00 +0100",
            "1 Dec 2026 10:00 -0000",
            "Wed, 02 Dec 2026 23:59:60 GMT",
            "Sat, 5 Dec 2026 01:02:03 EST",
            "Wed, 2 Dec 2026 03:00:00 +0000 (UTC)",
        ] {
            assert!(is_rfc5322_date(good), "{good}");
        }
        for bad in [
            "",
            "yesterday",
            "Tue, 1 Dec 2026",
            "Tuesday, 1 Dec 2026 10:00:00 +0100",
            "1 December 2026 10:00:00 +0100",
            "1 Dec 2026 25:00:00 +0100",
            "1 Dec 2026 10:00:00 +01",
            "32 Dec 2026 10:00:00 +0100",
            "2026-12-01T10:00:00Z",
            "1 Dec 2026 10:00:00 +0000 (a (nested) comment)",
            "1 Dec 2026 10:00:00 +0000 )",
        ] {
            assert!(!is_rfc5322_date(bad), "{bad}");
        }
    }

    #[test]
    fn header_without_colon_is_usage_error() {
        assert_eq!(parse_header("X-Test").unwrap_err().exit, Exit::Usage);
        assert_eq!(parse_header("Bad Name: x").unwrap_err().exit, Exit::Usage);
    }

    #[test]
    fn type_suffix_is_parsed_and_checked() {
        let options = split_options("/nonexistent/a.bin;type=Text/CSV").unwrap();
        assert_eq!(options.path, PathBuf::from("/nonexistent/a.bin"));
        assert_eq!(options.content_type.as_deref(), Some("text/csv"));
        assert!(split_options("/nonexistent/a;type=nonsense").is_err());
    }

    #[test]
    fn name_option_sets_the_name_and_stdin_is_a_dash() {
        let options = split_options("-;name=report.csv;type=text/csv").unwrap();
        assert_eq!(options.path, PathBuf::from("-"));
        assert_eq!(options.name.as_deref(), Some("report.csv"));
        assert!(reads_stdin("-") && reads_stdin("-;name=a.txt"));
        assert!(!reads_stdin("./-") && !reads_stdin("/nonexistent/a;name=b"));
        for bad in [
            "-;name=",
            "-;name=..",
            "-;name=.",
            "-;name=  ",
            "-;name=a/b",
            "-;name=a\r\nb",
            "-;name=a;name=b",
        ] {
            assert_eq!(split_options(bad).unwrap_err().exit, Exit::Usage, "{bad}");
        }
        let mut stdin = || Ok(FileData::Memory(b"a,b\n".to_vec()));
        let part = FilePart::load("-;name=report.csv", FileRole::Attachment, &mut stdin).unwrap();
        assert_eq!(
            (part.name.as_str(), part.content_type.as_str()),
            ("report.csv", "text/csv")
        );
        let part = FilePart::load("-", FileRole::Attachment, &mut stdin).unwrap();
        assert_eq!(part.name, "stdin");
    }

    #[test]
    fn cid_option_in_either_order() {
        for spec in [
            "/nonexistent/Bild Ä.png;cid=logo;type=image/png",
            "/nonexistent/Bild Ä.png;type=image/png;cid=logo",
        ] {
            let options = split_options(spec).unwrap();
            assert_eq!(options.path, PathBuf::from("/nonexistent/Bild Ä.png"));
            assert_eq!(options.content_id.as_deref(), Some("logo"), "{spec}");
            assert_eq!(options.content_type.as_deref(), Some("image/png"));
        }
        let err = split_options("/nonexistent/a.png;cid=a b").unwrap_err();
        assert_eq!(err.exit, Exit::DataErr);
    }

    #[test]
    fn dot_atom_text() {
        for good in ["logo.png", "a", "x-1_2.b", "a+b=c"] {
            assert!(is_dot_atom_text(good), "{good}");
        }
        for bad in [
            "", ".a", "a.", "a..b", "a b", "Ä.png", "a>b", "a\r\nb", "a@b",
        ] {
            assert!(!is_dot_atom_text(bad), "{bad}");
        }
    }

    #[test]
    fn bcc_only_message_is_to_undisclosed_recipients() {
        let draft = Draft {
            from: Some(Mailbox::parse("a@example.com").unwrap()),
            text: Some("x\r\n".into()),
            ..Draft::default()
        };
        let mut bytes = Vec::new();
        build(&draft).unwrap().write_to(&mut bytes).unwrap();
        let text = String::from_utf8(bytes).unwrap();
        assert!(
            text.contains("\r\nTo: undisclosed-recipients:;\r\n"),
            "{text}"
        );
    }

    #[test]
    fn generated_message_has_date_message_id_and_no_bcc() {
        let draft = Draft {
            from: Some(Mailbox::parse("A <a@example.com>").unwrap()),
            to: vec![Mailbox::parse("b@example.com").unwrap()],
            subject: Some("Grüße".into()),
            text: Some("hello\n".into()),
            ..Draft::default()
        };
        let mut bytes = Vec::new();
        build(&draft).unwrap().write_to(&mut bytes).unwrap();
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.contains("\r\nDate: "), "{text}");
        assert!(text.contains("Message-ID: <"), "{text}");
        assert!(
            text.contains("@example.com>\r\n"),
            "ID in the sender's domain: {text}"
        );
        assert!(text.contains("Subject: =?utf-8?"), "{text}");
        // A line, not a substring: the random Message-ID and boundary are
        // hex, and "bcc" is hex.
        assert!(
            !text
                .lines()
                .any(|line| line.to_ascii_lowercase().starts_with("bcc:")),
            "{text}"
        );
    }

    #[test]
    fn streamed_files_are_scanned_for_their_charset_and_eml_is_octet_stream() {
        let dir = tempfile::tempdir().unwrap();
        let stream = |name: &str, data: &[u8]| {
            let path = dir.path().join(name);
            std::fs::write(&path, data).unwrap();
            FileData::Stream {
                path,
                len: data.len() as u64,
            }
        };
        // "ä" cut by the 64 KiB chunk boundary.
        let mut text = vec![b'a'; 64 * 1024 - 1];
        text.extend_from_slice("ä\n".as_bytes());
        let utf8 = stream("big.txt", &text);
        let typed = |t: &str, given, data| carried_type(t.to_string(), given, data).unwrap();
        assert_eq!(
            typed("text/plain", false, &utf8),
            ("text/plain".into(), Some("utf-8"))
        );
        text.push(0xff);
        let latin = stream("latin.txt", &text);
        assert_eq!(
            typed("text/plain", false, &latin),
            (attach::OCTET_STREAM.into(), None)
        );
        assert_eq!(typed("text/csv", true, &latin), ("text/csv".into(), None));
        let eml = stream("big.eml", b"Subject: x\n\nhi\n");
        assert_eq!(
            typed("message/rfc822", false, &eml),
            (attach::OCTET_STREAM.into(), None)
        );
        let small = FileData::Memory(b"Subject: x\n\nhi\n".to_vec());
        assert_eq!(
            typed("message/rfc822", false, &small),
            ("message/rfc822".into(), None)
        );
    }

    /// The header block of a message built from `-H` arguments and a
    /// subject: everything before the first empty line.
    fn headers_of(args: &[&str], subject: &str) -> String {
        let args: Vec<String> = args.iter().map(|arg| arg.to_string()).collect();
        let draft = Draft {
            from: Some(Mailbox::parse("a@example.com").unwrap()),
            to: vec![Mailbox::parse("b@example.com").unwrap()],
            subject: Some(subject.into()),
            headers: parse_headers(&args).unwrap(),
            text: Some("hello\n".into()),
            ..Draft::default()
        };
        let mut bytes = Vec::new();
        build(&draft).unwrap().write_to(&mut bytes).unwrap();
        let text = String::from_utf8(bytes).unwrap();
        text.split("\r\n\r\n").next().unwrap().to_string()
    }

    fn assert_short_lines(head: &str) {
        for line in head.split("\r\n") {
            assert!(line.len() <= 78, "{} octets: {line}", line.len());
        }
    }

    /// The five long msg-ids of the References tests.
    fn five_ids() -> Vec<String> {
        (1..=5)
            .map(|n| format!("<{n}.20261201.a-long-thread-identifier@mail.example.com>"))
            .collect()
    }

    #[test]
    fn structured_fields_fold_at_white_space_and_are_never_encoded() {
        let ids = five_ids();
        let references = format!("References: {}", ids.join(" "));
        let in_reply_to = format!("In-Reply-To: {}", ids[4]);
        let head = headers_of(
            &[
                "List-Unsubscribe: <mailto:unsubscribe@lists.example.com?subject=unsubscribe>, <https://lists.example.com/unsubscribe/opaque-token-0123456789abcdef>",
                "List-Unsubscribe-Post: List-Unsubscribe=One-Click",
                &references,
                &in_reply_to,
                "Sender: Jörg Müller-Lüdenscheidt <joerg@example.com>",
                "Message-ID: <=?not-encoded?=@example.com>",
            ],
            "short",
        );
        assert_short_lines(&head);
        let expected = [
            "List-Unsubscribe: <mailto:unsubscribe@lists.example.com?subject=unsubscribe>,\r\n <https://lists.example.com/unsubscribe/opaque-token-0123456789abcdef>\r\n",
            "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n",
            "References: <1.20261201.a-long-thread-identifier@mail.example.com>\r\n <2.20261201.a-long-thread-identifier@mail.example.com>\r\n <3.20261201.a-long-thread-identifier@mail.example.com>\r\n <4.20261201.a-long-thread-identifier@mail.example.com>\r\n <5.20261201.a-long-thread-identifier@mail.example.com>\r\n",
            "In-Reply-To: <5.20261201.a-long-thread-identifier@mail.example.com>\r\n",
            "Sender: =?utf-8?B?SsO2cmcgTcO8bGxlci1Mw7xkZW5zY2hlaWR0?= <joerg@example.com>\r\n",
            "Message-ID: <=?not-encoded?=@example.com>\r\n",
        ];
        for lines in expected {
            assert!(head.contains(lines), "{lines:?} in\n{head}");
        }
    }

    #[test]
    fn long_ascii_text_folds_at_white_space() {
        let subject = ["word"; 40].join(" ");
        assert_eq!(subject.len(), 199);
        let subject = format!("{subject}!");
        let header = "X-Note: a long note, plain ASCII, that a filter greps for in the raw header block of the message";
        let head = headers_of(&[header], &subject);
        assert_short_lines(&head);
        let line = |words: usize| ["word"; 20][..words].join(" ");
        let expected = format!(
            "Subject: {}\r\n {}\r\n {} word!\r\n",
            line(14),
            line(15),
            line(10)
        );
        assert!(head.contains(&expected), "{expected:?} in\n{head}");
        assert!(head.contains("X-Note: a long note, plain ASCII, that a filter greps for in the raw header\r\n block of the message\r\n"), "{head}");
        assert!(!head.contains("=?"), "{head}");
    }

    #[test]
    fn an_unfoldable_url_gets_a_line_of_its_own() {
        let url = format!("https://lists.example.com/u/{}", "t".repeat(92));
        assert_eq!(url.len(), 120);
        let head = headers_of(
            &[&format!(
                "List-Unsubscribe: <mailto:u@example.com>, <{url}>"
            )],
            "s",
        );
        assert!(
            head.contains(&format!(
                "List-Unsubscribe: <mailto:u@example.com>,\r\n <{url}>\r\n"
            )),
            "{head}"
        );
        assert!(head
            .split("\r\n")
            .all(|line| line.len() <= 78 || line == format!(" <{url}>")));
    }

    #[test]
    fn a_word_too_long_for_any_line_is_encoded_and_folded() {
        let word = "x".repeat(MAX_PLAIN_WORD + 1);
        let head = headers_of(&[], &format!("see {word}"));
        assert_short_lines(&head);
        assert!(head.contains("Subject: =?us-ascii?Q?see"), "{head}");
        assert!(!is_plain_ascii("bell \x07") && !is_plain_ascii("trailing "));
        assert!(is_plain_ascii("tab\tand space"));
    }

    #[test]
    fn only_non_ascii_words_are_encoded() {
        let subject = "Grüße from the nightly backup on host mail.example.com: all done ✓ ✓";
        let head = headers_of(
            &["X-Note: naïve café, ordinary words stay readable"],
            subject,
        );
        assert_short_lines(&head);
        assert!(
            head.contains("Subject: =?utf-8?Q?Gr=C3=BC=C3=9Fe?= from the nightly backup on host\r\n mail.example.com: all done =?utf-8?Q?=E2=9C=93_=E2=9C=93?=\r\n"),
            "{head}"
        );
        assert!(
            head.contains(
                "X-Note: =?utf-8?Q?na=C3=AFve_caf=C3=A9=2C?= ordinary words stay readable\r\n"
            ),
            "{head}"
        );
        let long = "ü".repeat(100);
        let words = q_words(&long, MAX_WORD);
        assert!(words.split(' ').all(|word| word.len() <= 75), "{words}");
    }

    #[test]
    fn a_first_encoded_word_fits_after_a_long_header_name() {
        let name = format!("X-{}", "a".repeat(50));
        let value = format!("{} end", "ü".repeat(40));
        let head = headers_of(&[&format!("{name}: {value}")], &value);
        assert_short_lines(&head);
        assert!(
            head.contains(&format!("\r\n{name}: =?utf-8?Q?=C3=BC=C3=BC?=\r\n")),
            "{head}"
        );
        assert!(mixed_words(&value, 23).is_none());
    }

    #[test]
    fn a_long_ascii_display_name_is_a_quoted_string_folded_at_spaces() {
        let name = "Maximilian Alexander von Hohenzollern-Sigmaringen Maximilian Alexander \
                    von Hohenzollern-Sigmaringen, Jr.";
        let draft = Draft {
            from: Some(Mailbox::parse(&format!("\"{name}\" <a@example.com>")).unwrap()),
            to: vec![Mailbox::parse("b@example.com").unwrap()],
            text: Some("hello\n".into()),
            ..Draft::default()
        };
        let mut bytes = Vec::new();
        build(&draft).unwrap().write_to(&mut bytes).unwrap();
        let text = String::from_utf8(bytes).unwrap();
        let head = text.split("\r\n\r\n").next().unwrap();
        assert!(!head.contains("=?us-ascii?"), "{head}");
        assert!(
            head.replace("\r\n ", " ")
                .contains(&format!("From: \"{name}\" <a@example.com>")),
            "{head}"
        );
        assert!(head.split("\r\n").all(|line| line.len() <= 78), "{head}");
    }
}
