//! Making a ready-made message something SMTP can carry, without changing
//! what the recipient reads.
//!
//! SMTP carries lines of at most 998 octets (RFC 5321 §4.5.3.1.6) and CR
//! and LF only together as CRLF (§2.3.8); even 8BITMIME data has no NUL
//! (RFC 2045 §2.8, RFC 6152). A strict server refuses anything else only
//! after the whole upload, with a permanent 5xx, so the fix belongs here,
//! when the message is planned, independent of the server.
//!
//! What belongs here: finding such content in the prepared bytes, folding
//! long header lines at white space, and re-encoding the innermost leaf
//! part that holds the rest as quoted-printable or base64 (RFC 2045 §6.7,
//! §6.8), with the MIME headers that needs. Every other byte stays as it
//! was. What does not: envelope, Bcc and From handling (`message`), line
//! ends (`content::crlf`, already applied), 8BITMIME negotiation
//! (`smtp::session`).

use std::ops::Range;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use mail_parser::{Encoding, Message, MessageParser, MimeHeaders, PartType};

use crate::exit::{Error, Result};

/// RFC 5321 §4.5.3.1.6: 1000 octets per line, CRLF included.
const MAX_LINE: usize = 998;
/// RFC 2045 §6.7 rule 5 and §6.8: encoded lines of at most 76 characters.
const ENCODED_LINE: usize = 76;
/// Deeper MIME nesting than any real mail; keeps the walk's recursion
/// bounded on hostile input.
const MAX_DEPTH: usize = 64;

/// The bytes to send and what was changed to get them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Transportable {
    pub(crate) bytes: Vec<u8>,
    /// One sentence per change, for -v: what was re-encoded or folded, and why.
    pub(crate) notes: Vec<String>,
}

/// Makes a prepared message (CRLF line ends, as `message::prepare` gives
/// it) fit SMTP. A message that already fits is returned as it is.
///
/// Refused with exit 65, naming the part or header: content inside
/// `multipart/signed` (re-encoding breaks the signature, RFC 1847 §2.1),
/// in a part already base64 or quoted-printable, in a composite part's own
/// lines (RFC 2045 §6.4 forbids encoding those), a header line with no
/// white space to fold at, and a NUL or bare CR in a header.
pub(crate) fn make_transportable(bytes: Vec<u8>) -> Result<Transportable> {
    if !scan(&bytes).any() {
        return Ok(Transportable {
            bytes,
            notes: Vec::new(),
        });
    }
    let mut notes = Vec::new();
    let nodes = structure(&bytes)?;
    // Folding first, then a fresh parse: a part's header edit and a fold in
    // the same header block never have to be merged.
    let (bytes, nodes) = match fold_headers(&bytes, &nodes, &mut notes)? {
        Some(folded) => {
            let nodes = structure(&folded)?;
            (folded, nodes)
        }
        None => (bytes, nodes),
    };
    let bytes = encode_leaves(bytes, &nodes, &mut notes)?;
    let left = scan(&bytes);
    if left.any() {
        // Only reachable when mail-parser's view of the structure and the
        // bytes disagree; sending would fail at the server anyway.
        return Err(Error::data(format!(
            "cannot make the message fit SMTP: {}",
            left.describe()
        ))
        .hint("check its MIME structure (boundaries, blank line after each part's headers)"));
    }
    Ok(Transportable { bytes, notes })
}

/// What SMTP cannot carry in a stretch of bytes: the first occurrence of
/// each problem, with its 1-based line number in that stretch.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Findings {
    /// Line number and length (CRLF excluded).
    long_line: Option<(usize, usize)>,
    bare_cr: Option<usize>,
    bare_lf: Option<usize>,
    nul: Option<usize>,
}

impl Findings {
    fn any(&self) -> bool {
        self.long_line.is_some()
            || self.bare_cr.is_some()
            || self.bare_lf.is_some()
            || self.nul.is_some()
    }

    fn describe(&self) -> String {
        let mut reasons = Vec::new();
        if let Some((line, len)) = self.long_line {
            reasons.push(format!(
                "line {line} is {len} octets long (SMTP allows {MAX_LINE})"
            ));
        }
        if let Some(line) = self.bare_cr {
            reasons.push(format!("line {line} has a CR that is not followed by LF"));
        }
        if let Some(line) = self.bare_lf {
            reasons.push(format!("line {line} has a LF that is not preceded by CR"));
        }
        if let Some(line) = self.nul {
            reasons.push(format!("line {line} has a NUL octet"));
        }
        reasons.join(", ")
    }
}

fn scan(bytes: &[u8]) -> Findings {
    let mut found = Findings::default();
    let mut line = 1;
    let mut start = 0;
    let mut i = 0;
    let long_check = |found: &mut Findings, line: usize, len: usize| {
        if len > MAX_LINE && found.long_line.is_none() {
            found.long_line = Some((line, len));
        }
    };
    while i < bytes.len() {
        match bytes[i] {
            b'\r' if bytes.get(i + 1) == Some(&b'\n') => {
                long_check(&mut found, line, i - start);
                line += 1;
                i += 2;
                start = i;
                continue;
            }
            b'\r' => {
                found.bare_cr.get_or_insert(line);
            }
            b'\n' => {
                found.bare_lf.get_or_insert(line);
            }
            0 => {
                found.nul.get_or_insert(line);
            }
            _ => {}
        }
        i += 1;
    }
    long_check(&mut found, line, bytes.len() - start);
    found
}

/// One MIME entity as mail-parser located it.
#[derive(Debug)]
struct Node {
    /// "part 1.2 (text/plain)", or "the message body (text/plain)".
    label: String,
    /// Lower-case `type/subtype`; the RFC 2045 §5.2 default when absent.
    content_type: String,
    /// Its header fields and the blank line after them.
    header: Range<usize>,
    body: Range<usize>,
    leaf: bool,
    /// The root of a message (the whole one or an attached message/rfc822):
    /// the entity whose headers a non-MIME message lacks.
    message_root: bool,
    /// Its Content-Transfer-Encoding when that is an encoding (not 7bit,
    /// 8bit or binary, RFC 2045 §6.2).
    encoded_as: Option<String>,
    /// It or an enclosing part is multipart/signed.
    signed: bool,
}

fn structure(bytes: &[u8]) -> Result<Vec<Node>> {
    // mail-parser 0.11 panics on some nestings of message/rfc822 ("Invalid
    // part ID"): such a message is refused like any other whose structure
    // cannot be read, never a crash that loses it.
    let parsed = crate::exit::without_panic(|| MessageParser::default().parse(bytes));
    let message = parsed
        .ok_or_else(|| {
            Error::data("malformed message: its MIME structure cannot be read")
                .hint("send it as an attachment of a new message instead")
        })?
        .ok_or_else(|| {
            Error::data("malformed message: it has no header fields")
                .hint("a message starts with header lines, then a blank line and the body")
        })?;
    let mut nodes = Vec::new();
    walk(&message, 0, "", true, false, 0, bytes.len(), &mut nodes)?;
    Ok(nodes)
}

#[allow(clippy::too_many_arguments)]
fn walk(
    message: &Message<'_>,
    id: usize,
    number: &str,
    message_root: bool,
    signed: bool,
    depth: usize,
    len: usize,
    nodes: &mut Vec<Node>,
) -> Result<()> {
    let unusual = || {
        Error::data("malformed message: its MIME structure is nested too deeply or inconsistent")
            .hint("check its boundaries and Content-Type headers")
    };
    if depth > MAX_DEPTH {
        return Err(unusual());
    }
    let part = message.parts.get(id).ok_or_else(unusual)?;
    let (header_start, body_start, body_end) = (
        part.offset_header as usize,
        part.offset_body as usize,
        part.offset_end as usize,
    );
    if !(header_start <= body_start && body_start <= body_end && body_end <= len) {
        return Err(unusual());
    }
    let content_type = match part.content_type() {
        Some(ct) => format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or("")).to_ascii_lowercase(),
        None if matches!(part.body, PartType::Message(_)) => "message/rfc822".to_string(),
        None => "text/plain".to_string(),
    };
    let label = if number.is_empty() {
        format!("the message body ({content_type})")
    } else {
        format!("part {number} ({content_type})")
    };
    let signed = signed || content_type == "multipart/signed";
    let encoded_as = part
        .content_transfer_encoding()
        .map(|cte| cte.trim().to_ascii_lowercase())
        .filter(|cte| !matches!(cte.as_str(), "7bit" | "8bit" | "binary" | ""));
    let mut node = Node {
        label,
        content_type,
        header: header_start..body_start,
        body: body_start..body_end,
        leaf: false,
        message_root,
        encoded_as,
        signed,
    };
    match &part.body {
        PartType::Multipart(children) => {
            nodes.push(node);
            for (i, child) in children.iter().enumerate() {
                let number = if number.is_empty() {
                    (i + 1).to_string()
                } else {
                    format!("{number}.{}", i + 1)
                };
                walk(
                    message,
                    *child as usize,
                    &number,
                    false,
                    signed,
                    depth + 1,
                    len,
                    nodes,
                )?;
            }
        }
        // Parsed in place (not from decoded bytes), so its offsets are in
        // the same bytes as ours; an encoded message/rfc822 is a leaf.
        PartType::Message(nested) if part.encoding == Encoding::None => {
            nodes.push(node);
            // IMAP numbering (RFC 3501 §6.4.5): an attached message's
            // parts are numbered under the part that holds it.
            let number = if number.is_empty() { "1" } else { number };
            walk(nested, 0, number, true, signed, depth + 1, len, nodes)?;
        }
        _ => {
            if message_root && !number.is_empty() {
                // An attached message's body alone is its part `N.1`.
                node.label = format!("part {number}.1 ({})", node.content_type);
            }
            node.leaf = true;
            nodes.push(node);
        }
    }
    Ok(())
}

/// A replacement of `range` by `with`; empty ranges insert.
type Edit = (Range<usize>, Vec<u8>);

/// Applies edits given in the order they must appear (inserts at one point
/// in the order given).
fn apply(bytes: &[u8], mut edits: Vec<Edit>) -> Result<Vec<u8>> {
    edits.sort_by_key(|(range, _)| range.start);
    let mut out =
        Vec::with_capacity(bytes.len() + edits.iter().map(|(_, w)| w.len()).sum::<usize>());
    let mut at = 0;
    for (range, with) in edits {
        if range.start < at || range.end > bytes.len() || range.start > range.end {
            return Err(
                Error::data("cannot make the message fit SMTP: its MIME parts overlap")
                    .hint("check its boundaries"),
            );
        }
        out.extend_from_slice(&bytes[at..range.start]);
        out.extend_from_slice(&with);
        at = range.end;
    }
    out.extend_from_slice(&bytes[at..]);
    Ok(out)
}

/// The lines of a header block: (start, end without CRLF).
fn lines(bytes: &[u8], range: Range<usize>) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start = range.start;
    let mut i = range.start;
    while i < range.end {
        if bytes[i] == b'\r' && i + 1 < range.end && bytes[i + 1] == b'\n' {
            out.push(start..i);
            i += 2;
            start = i;
        } else {
            i += 1;
        }
    }
    if start < range.end {
        out.push(start..range.end);
    }
    out
}

fn is_wsp(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// The name of the header field a line belongs to (a continuation line
/// belongs to the field above it).
fn field_name(bytes: &[u8], block: &[Range<usize>], index: usize) -> String {
    let first = block[..=index]
        .iter()
        .rposition(|line| line.start < line.end && !is_wsp(bytes[line.start]))
        .unwrap_or(index);
    let line = &bytes[block[first].clone()];
    let name = line.split(|&b| b == b':').next().unwrap_or(line);
    let mut name: String = String::from_utf8_lossy(name).chars().take(60).collect();
    name.retain(|c| !c.is_control());
    name
}

/// Long header lines folded at white space (RFC 5322 §2.2.3); a header
/// with a NUL or a bare CR or LF is refused, as no encoding applies to a
/// whole header field. None when nothing needed folding.
fn fold_headers(bytes: &[u8], nodes: &[Node], notes: &mut Vec<String>) -> Result<Option<Vec<u8>>> {
    let mut blocks: Vec<Range<usize>> = nodes.iter().map(|node| node.header.clone()).collect();
    blocks.sort_by_key(|r| (r.start, r.end));
    blocks.dedup();
    let mut edits = Vec::new();
    for header in blocks {
        let block = lines(bytes, header);
        for (index, line) in block.iter().enumerate() {
            let content = &bytes[line.clone()];
            let problem = if content.contains(&0) {
                Some("a NUL octet")
            } else if content.contains(&b'\r') {
                Some("a CR that is not followed by LF")
            } else if content.contains(&b'\n') {
                Some("a LF that is not preceded by CR")
            } else {
                None
            };
            if let Some(problem) = problem {
                return Err(Error::data(format!(
                    "header {} holds {problem}, which SMTP cannot carry (RFC 5321 §2.3.8)",
                    field_name(bytes, &block, index)
                ))
                .hint("remove it from the message's headers"));
            }
            if content.len() <= MAX_LINE {
                continue;
            }
            let name = field_name(bytes, &block, index);
            let folded = fold(content).ok_or_else(|| {
                Error::data(format!(
                    "header {name} has a line of {} octets with no white space to fold it at (SMTP allows {MAX_LINE}, RFC 5322 §2.1.1)",
                    content.len()
                ))
                .hint("shorten that header or put spaces in it")
            })?;
            notes.push(format!(
                "folded header {name}: a line of {} octets (SMTP allows {MAX_LINE})",
                content.len()
            ));
            edits.push((line.clone(), folded));
        }
    }
    if edits.is_empty() {
        return Ok(None);
    }
    apply(bytes, edits).map(Some)
}

/// One header line (without CRLF) as lines of at most 998 octets, CRLF
/// inserted before white space; None when no such white space exists.
/// Each resulting line keeps a non-white-space character (RFC 5322
/// §2.2.3), so the greedy choice only takes white space with text on both
/// sides.
fn fold(line: &[u8]) -> Option<Vec<u8>> {
    let last_text = line.iter().rposition(|&b| !is_wsp(b))?;
    let mut out = Vec::with_capacity(line.len() + line.len() / MAX_LINE * 2 + 2);
    let mut start = 0;
    while line.len() - start > MAX_LINE {
        let first_text = start + line[start..].iter().position(|&b| !is_wsp(b))?;
        let at = (first_text + 1..=start + MAX_LINE)
            .rev()
            .find(|&i| is_wsp(line[i]) && i <= last_text)?;
        out.extend_from_slice(&line[start..at]);
        out.extend_from_slice(b"\r\n");
        start = at;
    }
    out.extend_from_slice(&line[start..]);
    Some(out)
}

/// Re-encodes each leaf part whose body SMTP cannot carry.
fn encode_leaves(bytes: Vec<u8>, nodes: &[Node], notes: &mut Vec<String>) -> Result<Vec<u8>> {
    check_between_parts(&bytes, nodes)?;
    let mut edits: Vec<Edit> = Vec::new();
    let mut top_needs_version = false;
    for node in nodes.iter().filter(|n| n.leaf) {
        let body = &bytes[node.body.clone()];
        let found = scan(body);
        if !found.any() {
            continue;
        }
        let reasons = found.describe();
        let what = format!("{} cannot go over SMTP as it is ({reasons})", node.label);
        if node.signed {
            return Err(Error::data(format!(
                "{what}, and re-encoding it would break the multipart/signed signature (RFC 1847 §2.1)"
            ))
            .hint("sign a message whose parts are quoted-printable or base64 and have lines of at most 998 octets"));
        }
        if let Some(cte) = &node.encoded_as {
            return Err(Error::data(format!(
                "{what}, and it is already encoded as {cte}"
            ))
            .hint("encode that part again with lines of at most 76 characters (RFC 2045 §6.7, §6.8)"));
        }
        if node.content_type.starts_with("multipart/") || node.content_type.starts_with("message/")
        {
            return Err(Error::data(format!(
                "{what}, and RFC 2045 §6.4 forbids encoding a {} part",
                node.content_type
            ))
            .hint("check its MIME structure, or attach it as application/octet-stream"));
        }
        let text = node.content_type.starts_with("text/");
        let (encoding, encoded) = encode(body, text);
        notes.push(format!(
            "re-encoded {} as {encoding}: {reasons}",
            node.label
        ));
        let mut body_edit = encoded;
        if node.body.end == bytes.len() && body.ends_with(b"\r\n") && !body_edit.ends_with(b"\r\n")
        {
            // The message's last line keeps its line end.
            body_edit.extend_from_slice(b"\r\n");
        }
        edits.append(&mut header_edits(&bytes, node, encoding, body)?);
        // A message's own body gets its MIME-Version with its other
        // headers; a part needs one at the top (RFC 2045 §4).
        top_needs_version |= node.header.start != 0;
        edits.push((node.body.clone(), body_edit));
    }
    if top_needs_version {
        let root = &nodes[0];
        if !has_field(&bytes, root.header.clone(), "mime-version") {
            let at = blank_line(&bytes, root)?;
            edits.push((at..at, b"MIME-Version: 1.0\r\n".to_vec()));
        }
    }
    if edits.is_empty() {
        return Ok(bytes);
    }
    apply(&bytes, edits)
}

/// Re-encodes each leaf part holding 8-bit octets as quoted-printable
/// (base64 when it is not text), before a DKIM signature covers the
/// body: a relay without 8BITMIME would otherwise convert it after the
/// signature and break the body hash (RFC 6376 §5.3). Parts inside
/// `multipart/signed` (whose own signature would break) and parts already
/// encoded are left as they are, with a note. Header fields are not
/// touched: raw UTF-8 there needs SMTPUTF8, which no relay downgrades.
/// Never an error: a message whose structure cannot be read is signed as
/// it is, with a note, rather than refused for a relay that may not exist.
pub(crate) fn seven_bit(bytes: Vec<u8>) -> Transportable {
    if bytes.is_ascii() {
        return Transportable {
            bytes,
            notes: Vec::new(),
        };
    }
    match try_seven_bit(&bytes) {
        Ok(Some(done)) => done,
        Ok(None) => Transportable {
            bytes,
            notes: Vec::new(),
        },
        Err(err) => Transportable {
            bytes,
            notes: vec![format!(
                "its 8-bit parts stay as they are ({}); a relay without 8BITMIME may break its DKIM signature",
                err.message
            )],
        },
    }
}

/// [`seven_bit`]'s work: None when nothing changes.
fn try_seven_bit(bytes: &[u8]) -> Result<Option<Transportable>> {
    let mut notes = Vec::new();
    let nodes = structure(bytes)?;
    let mut edits: Vec<Edit> = Vec::new();
    let mut top_needs_version = false;
    for node in nodes.iter().filter(|n| n.leaf) {
        let body = &bytes[node.body.clone()];
        if body.is_ascii() {
            continue;
        }
        let composite = node.content_type.starts_with("multipart/")
            || node.content_type.starts_with("message/");
        if node.signed || node.encoded_as.is_some() || composite {
            notes.push(format!(
                "{} has 8-bit octets and stays as it is (it is signed, already encoded or composite); a relay without 8BITMIME may break the DKIM signature",
                node.label
            ));
            continue;
        }
        // Text as quoted-printable, as a downgrading relay would and as
        // RFC 6376 §5.3 suggests: it stays readable; anything else base64.
        let (encoding, mut encoded) = if node.content_type.starts_with("text/") {
            ("quoted-printable", quoted_printable(body))
        } else {
            ("base64", base64_lines(body))
        };
        notes.push(format!(
            "re-encoded {} as {encoding} before DKIM signing: a relay without 8BITMIME would re-encode its 8-bit octets after the signature (RFC 6376 §5.3)",
            node.label
        ));
        if node.body.end == bytes.len() && body.ends_with(b"\r\n") && !encoded.ends_with(b"\r\n") {
            encoded.extend_from_slice(b"\r\n");
        }
        edits.append(&mut header_edits(bytes, node, encoding, body)?);
        top_needs_version |= node.header.start != 0;
        edits.push((node.body.clone(), encoded));
    }
    if top_needs_version {
        let root = &nodes[0];
        if !has_field(bytes, root.header.clone(), "mime-version") {
            let at = blank_line(bytes, root)?;
            edits.push((at..at, b"MIME-Version: 1.0\r\n".to_vec()));
        }
    }
    if edits.is_empty() && notes.is_empty() {
        return Ok(None);
    }
    let bytes = apply(bytes, edits)?;
    Ok(Some(Transportable { bytes, notes }))
}

/// Lines of a composite part outside its children (preamble, boundaries,
/// epilogue) cannot be encoded (RFC 2045 §6.4): refused.
fn check_between_parts(bytes: &[u8], nodes: &[Node]) -> Result<()> {
    let mut covered: Vec<Range<usize>> = nodes
        .iter()
        .flat_map(|n| {
            let body = if n.leaf { n.body.clone() } else { 0..0 };
            [n.header.clone(), body]
        })
        .filter(|r| !r.is_empty())
        .collect();
    covered.sort_by_key(|r| r.start);
    let mut at = 0;
    let mut gaps = Vec::new();
    for range in covered {
        if range.start > at {
            gaps.push(at..range.start);
        }
        at = at.max(range.end);
    }
    if at < bytes.len() {
        gaps.push(at..bytes.len());
    }
    for gap in gaps {
        let found = scan(&bytes[gap.clone()]);
        if !found.any() {
            continue;
        }
        let owner = nodes
            .iter()
            .filter(|n| !n.leaf && n.body.start <= gap.start && gap.end <= n.body.end)
            .min_by_key(|n| n.body.len())
            .map_or("the message".to_string(), |n| n.label.clone());
        // Line numbers count from the gap, which says little; the reason
        // alone names the problem.
        let reason = if found.long_line.is_some() {
            "a line longer than 998 octets"
        } else if found.nul.is_some() {
            "a NUL octet"
        } else {
            "a CR or LF that is not part of a CRLF"
        };
        return Err(Error::data(format!(
            "{owner} has {reason} outside its parts (preamble, boundary or epilogue), which RFC 2045 §6.4 forbids to encode"
        ))
        .hint("remove that text from the message"));
    }
    Ok(())
}

/// Quoted-printable for text (its line breaks stay line breaks, RFC 2045
/// §6.7), unless base64 is smaller; base64 for anything else, whose CRLFs
/// are data, not line breaks.
fn encode(body: &[u8], text: bool) -> (&'static str, Vec<u8>) {
    let base64 = base64_lines(body);
    if text {
        let qp = quoted_printable(body);
        if qp.len() <= base64.len() {
            return ("quoted-printable", qp);
        }
    }
    ("base64", base64)
}

fn base64_lines(body: &[u8]) -> Vec<u8> {
    let encoded = BASE64.encode(body);
    let mut out = Vec::with_capacity(encoded.len() + encoded.len() / ENCODED_LINE * 2);
    for (i, line) in encoded.as_bytes().chunks(ENCODED_LINE).enumerate() {
        if i > 0 {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(line);
    }
    out
}

/// RFC 2045 §6.7: CRLF stays a line break; printable ASCII but `=` is
/// literal; space and tab are literal unless they end a line (rule 3);
/// everything else, bare CR and NUL included, is `=XX`. Soft breaks keep
/// every line within 76 characters, the `=` included.
fn quoted_printable(body: &[u8]) -> Vec<u8> {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = Vec::with_capacity(body.len() + body.len() / 8 + 16);
    let mut column = 0;
    let mut i = 0;
    while i < body.len() {
        let b = body[i];
        if b == b'\r' && body.get(i + 1) == Some(&b'\n') {
            out.extend_from_slice(b"\r\n");
            column = 0;
            i += 2;
            continue;
        }
        let ends_line = matches!(&body[i + 1..], [] | [b'\r', b'\n', ..]);
        let literal = matches!(b, 33..=60 | 62..=126) || (is_wsp(b) && !ends_line);
        let width = if literal { 1 } else { 3 };
        if column + width > ENCODED_LINE - 1 {
            out.extend_from_slice(b"=\r\n");
            column = 0;
        }
        if literal {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'=', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        }
        column += width;
        i += 1;
    }
    out
}

/// Where the blank line that ends a part's headers starts: new fields go
/// just before it.
fn blank_line(bytes: &[u8], node: &Node) -> Result<usize> {
    let end = node.header.end;
    let ends_with_blank = end >= node.header.start + 2
        && &bytes[end - 2..end] == b"\r\n"
        && (end - 2 == node.header.start || (end >= 4 && &bytes[end - 4..end - 2] == b"\r\n"));
    if ends_with_blank {
        Ok(end - 2)
    } else {
        Err(Error::data(format!(
            "cannot re-encode {}: no blank line ends its headers",
            node.label
        ))
        .hint("a blank line separates a part's headers from its body"))
    }
}

/// Each field of a header block: (lower-case name, range with its CRLF
/// and continuation lines).
fn fields(bytes: &[u8], block: Range<usize>) -> Vec<(String, Range<usize>)> {
    let mut out: Vec<(String, Range<usize>)> = Vec::new();
    for line in lines(bytes, block.clone()) {
        let with_crlf = line.start..(line.end + 2).min(block.end);
        let content = &bytes[line.clone()];
        if content.is_empty() {
            break;
        }
        if is_wsp(content[0]) {
            if let Some((_, range)) = out.last_mut() {
                range.end = with_crlf.end;
            }
            continue;
        }
        let name = content.split(|&b| b == b':').next().unwrap_or(content);
        out.push((
            String::from_utf8_lossy(name).trim().to_ascii_lowercase(),
            with_crlf,
        ));
    }
    out
}

fn has_field(bytes: &[u8], block: Range<usize>, name: &str) -> bool {
    fields(bytes, block).iter().any(|(n, _)| n == name)
}

/// The header changes a re-encoded leaf needs: its Content-Transfer-Encoding
/// replaced (or added), and for a message's own body the MIME-Version and
/// Content-Type a non-MIME message lacks (RFC 2045 §4, §5).
fn header_edits(bytes: &[u8], node: &Node, encoding: &str, body: &[u8]) -> Result<Vec<Edit>> {
    let mut edits = Vec::new();
    let mut replaced = false;
    for (name, range) in fields(bytes, node.header.clone()) {
        if name == "content-transfer-encoding" {
            let with = if replaced {
                Vec::new()
            } else {
                format!("Content-Transfer-Encoding: {encoding}\r\n").into_bytes()
            };
            replaced = true;
            edits.push((range, with));
        }
    }
    let mut added = Vec::new();
    if node.message_root {
        if !has_field(bytes, node.header.clone(), "mime-version") {
            added.extend_from_slice(b"MIME-Version: 1.0\r\n");
        }
        if !has_field(bytes, node.header.clone(), "content-type") {
            // What the recipient's reader assumed before (RFC 2045 §5.2
            // says US-ASCII; 8-bit text of unknown charset is RFC 1428's
            // unknown-8bit), now said out loud.
            let charset = if body.is_ascii() {
                "us-ascii"
            } else if std::str::from_utf8(body).is_ok() {
                "utf-8"
            } else {
                "unknown-8bit"
            };
            added.extend_from_slice(
                format!("Content-Type: text/plain; charset={charset}\r\n").as_bytes(),
            );
        }
    }
    if !replaced {
        added.extend_from_slice(format!("Content-Transfer-Encoding: {encoding}\r\n").as_bytes());
    }
    if !added.is_empty() {
        let at = blank_line(bytes, node)?;
        edits.push((at..at, added));
    }
    Ok(edits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::Exit;
    use mail_parser::MessagePart;
    use proptest::prelude::*;

    const HEAD: &str = "From: root (Cron Daemon)\r\nTo: root@example.com\r\nSubject: Cron <root@host> report\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\n\r\n";

    fn transported(message: &[u8]) -> Transportable {
        make_transportable(message.to_vec()).unwrap()
    }

    fn refused(message: &[u8]) -> Error {
        let err = make_transportable(message.to_vec()).unwrap_err();
        assert_eq!(err.exit, Exit::DataErr, "{err}");
        err
    }

    /// Every line fits SMTP: at most 998 octets, CR and LF only as CRLF,
    /// no NUL.
    fn assert_fits(bytes: &[u8]) {
        assert!(!scan(bytes).any(), "{:?}", scan(bytes));
    }

    fn parsed(bytes: &[u8]) -> Message<'_> {
        MessageParser::default().parse(bytes).unwrap()
    }

    fn decoded_text<'a>(part: &'a MessagePart<'_>) -> &'a str {
        match &part.body {
            PartType::Text(text) | PartType::Html(text) => text,
            other => panic!("not text: {other:?}"),
        }
    }

    #[test]
    fn a_message_that_fits_is_returned_as_it_is() {
        let message = format!("{HEAD}all fine\r\n{}\r\n", "x".repeat(998));
        let out = transported(message.as_bytes());
        assert_eq!(out.bytes, message.as_bytes());
        assert!(out.notes.is_empty());
    }

    #[test]
    fn a_plain_cron_message_with_a_long_json_line_becomes_quoted_printable() {
        let json = format!("{{\"items\":[{}]}}", "{\"id\":1,\"ok\":true},".repeat(300));
        assert!(json.len() > 5000);
        let body = format!("nightly job\r\n{json}\r\ndone\r\n");
        let message = format!("{HEAD}{body}");
        let out = transported(message.as_bytes());
        assert_fits(&out.bytes);
        let text = String::from_utf8(out.bytes.clone()).unwrap();
        // The original headers are untouched; the MIME ones come last.
        let head = HEAD.trim_end_matches("\r\n");
        assert!(
            text.starts_with(&format!(
                "{head}\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nnightly job\r\n"
            )),
            "{text}"
        );
        assert!(text.ends_with("\r\ndone\r\n"), "{text}");
        assert!(text.lines().all(|l| l.len() <= 76));
        assert_eq!(decoded_text(&parsed(&out.bytes).parts[0]), body);
        assert_eq!(
            out.notes,
            [format!(
                "re-encoded the message body (text/plain) as quoted-printable: line 2 is {} octets long (SMTP allows 998)",
                json.len()
            )]
        );
    }

    #[test]
    fn an_existing_8bit_transfer_encoding_is_replaced_and_the_charset_kept() {
        let message = format!(
            "Subject: x\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\nContent-Transfer-Encoding: 8bit\r\nX-After: kept\r\n\r\nGrüße {}\r\n",
            "a".repeat(1200)
        );
        let out = transported(message.as_bytes());
        let text = String::from_utf8(out.bytes.clone()).unwrap();
        assert!(text.starts_with("Subject: x\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\nContent-Transfer-Encoding: quoted-printable\r\nX-After: kept\r\n\r\n"), "{text}");
        assert_eq!(text.matches("MIME-Version").count(), 1);
        assert_fits(&out.bytes);
        assert_eq!(
            decoded_text(&parsed(&out.bytes).parts[0]),
            message.split_once("\r\n\r\n").unwrap().1
        );
    }

    #[test]
    fn bare_cr_nul_and_trailing_white_space_are_encoded() {
        let body = "progress 10%\r50%\r100%\r\nnul\0here\r\ntrailing space \r\ntab\t\r\n= sign\r\n";
        let out = transported(format!("{HEAD}{body}").as_bytes());
        assert_fits(&out.bytes);
        let text = String::from_utf8(out.bytes.clone()).unwrap();
        let encoded = text.split_once("\r\n\r\n").unwrap().1;
        assert_eq!(
            encoded,
            "progress 10%=0D50%=0D100%\r\nnul=00here\r\ntrailing space=20\r\ntab=09\r\n=3D sign\r\n"
        );
        assert_eq!(decoded_text(&parsed(&out.bytes).parts[0]), body);
        assert!(
            out.notes[0].contains("line 1 has a CR that is not followed by LF"),
            "{:?}",
            out.notes
        );
        assert!(
            out.notes[0].contains("line 2 has a NUL octet"),
            "{:?}",
            out.notes
        );
    }

    #[test]
    fn text_of_unknown_charset_is_labelled_unknown_8bit() {
        let body = format!("caf\u{e9} in latin-1: caf\x00\r\n{}\r\n", "x".repeat(1200));
        let mut bytes = format!("{HEAD}{body}").into_bytes();
        // Latin-1 é: not UTF-8.
        let at = bytes.windows(4).position(|w| w == b"caf\0").unwrap();
        bytes[at + 3] = 0xE9;
        let out = transported(&bytes);
        let text = String::from_utf8(out.bytes.clone()).unwrap();
        assert!(
            text.contains("Content-Type: text/plain; charset=unknown-8bit\r\n"),
            "{text}"
        );
        assert!(text.contains("caf=E9"), "{text}");
    }

    #[test]
    fn base64_is_chosen_when_smaller() {
        let body: Vec<u8> = (0..3000u32).map(|i| 0xA0 + (i % 90) as u8).collect();
        let mut message =
            b"Subject: x\r\nContent-Type: text/plain; charset=iso-8859-1\r\n\r\n".to_vec();
        message.extend_from_slice(&body);
        let out = transported(&message);
        let text = String::from_utf8(out.bytes.clone()).unwrap();
        assert!(
            text.contains("Content-Transfer-Encoding: base64\r\n"),
            "{text}"
        );
        assert!(out.notes[0].contains("as base64"), "{:?}", out.notes);
        assert_fits(&out.bytes);
        let decoded: Vec<u8> = decoded_text(&parsed(&out.bytes).parts[0])
            .chars()
            .map(|c| c as u32 as u8)
            .collect();
        assert_eq!(decoded, body);
    }

    const MIXED: &str = "Subject: mixed\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\npreamble\r\n--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nshort part\r\n--b1\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Disposition: attachment; filename=log.json\r\n\r\nLONG\r\n--b1--\r\nepilogue\r\n";

    #[test]
    fn in_a_multipart_only_the_leaf_with_the_long_line_changes() {
        let long = "y".repeat(3000);
        let message = MIXED.replace("LONG", &long);
        let out = transported(message.as_bytes());
        assert_fits(&out.bytes);
        let text = String::from_utf8(out.bytes.clone()).unwrap();
        let (before, after) = message.split_once(&long).unwrap();
        let leaf_header_end = before.rfind("\r\n\r\n").unwrap();
        assert!(text.starts_with(&before[..leaf_header_end]), "{text}");
        assert!(text.ends_with(after), "{text}");
        assert!(
            text.contains(
                "filename=log.json\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
            ),
            "{text}"
        );
        let message = parsed(&out.bytes);
        assert_eq!(decoded_text(&message.parts[2]), long);
        assert_eq!(
            out.notes,
            ["re-encoded part 2 (text/plain) as quoted-printable: line 1 is 3000 octets long (SMTP allows 998)"]
        );
    }

    #[test]
    fn a_multipart_without_mime_version_gets_one() {
        let message = MIXED
            .replace("MIME-Version: 1.0\r\n", "")
            .replace("LONG", &"z".repeat(1000));
        let out = transported(message.as_bytes());
        let text = String::from_utf8(out.bytes).unwrap();
        assert!(text.starts_with("Subject: mixed\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\nMIME-Version: 1.0\r\n\r\npreamble"), "{text}");
    }

    #[test]
    fn a_binary_part_with_a_nul_becomes_base64() {
        let message = MIXED
            .replace(
                "Content-Type: text/plain; charset=utf-8\r\nContent-Disposition",
                "Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\nContent-Disposition",
            )
            .replace("LONG", "\0\x01\x02\r\nend");
        let out = transported(message.as_bytes());
        assert_fits(&out.bytes);
        let text = String::from_utf8(out.bytes.clone()).unwrap();
        assert!(
            text.contains("Content-Transfer-Encoding: base64\r\nContent-Disposition"),
            "{text}"
        );
        match &parsed(&out.bytes).parts[2].body {
            PartType::Binary(data) => assert_eq!(&data[..], b"\0\x01\x02\r\nend"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_attached_message_is_entered_not_encoded() {
        let inner = format!("Subject: inner\r\n\r\n{}\r\n", "w".repeat(1500));
        let message = format!("Subject: outer\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n--b\r\nContent-Type: message/rfc822\r\n\r\n{inner}\r\n--b--\r\n");
        let out = transported(message.as_bytes());
        assert_fits(&out.bytes);
        let text = String::from_utf8(out.bytes.clone()).unwrap();
        assert!(text.contains("Content-Type: message/rfc822\r\n\r\nSubject: inner\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"), "{text}");
        assert!(
            out.notes[0].starts_with("re-encoded part 2.1 (text/plain)"),
            "{:?}",
            out.notes
        );
    }

    #[test]
    fn nested_parts_are_numbered_as_imap_does() {
        let long = "n".repeat(1100);
        let alternative = format!("Subject: alt\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=outer\r\n\r\n--outer\r\nContent-Type: multipart/alternative; boundary=inner\r\n\r\n--inner\r\nContent-Type: text/plain\r\n\r\nplain\r\n--inner\r\nContent-Type: text/html\r\n\r\n<p>{long}</p>\r\n--inner--\r\n\r\n--outer\r\nContent-Type: text/plain\r\n\r\nsecond\r\n--outer--\r\n");
        let out = transported(alternative.as_bytes());
        assert_fits(&out.bytes);
        assert!(
            out.notes[0].starts_with("re-encoded part 1.2 (text/html) as quoted-printable"),
            "{:?}",
            out.notes
        );
        // A whole message that is an attached message.
        let forwarded = format!("Subject: fwd\r\nMIME-Version: 1.0\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\n{long}\r\n");
        let out = transported(forwarded.as_bytes());
        assert_fits(&out.bytes);
        assert!(
            out.notes[0].starts_with("re-encoded part 1.1 (text/plain)"),
            "{:?}",
            out.notes
        );
        assert!(
            String::from_utf8(out.bytes).unwrap().starts_with("Subject: fwd\r\nMIME-Version: 1.0\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\nMIME-Version: 1.0\r\n")
        );
    }

    #[test]
    fn seven_bit_makes_8bit_leaves_quoted_printable_and_keeps_the_rest() {
        let message = "From: a@example.com\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nSch\u{f6}ne Gr\u{fc}\u{df}e aus dem S\u{fc}den\r\n--b\r\nContent-Type: text/plain\r\n\r\nascii only\r\n--b--\r\n";
        let done = seven_bit(message.as_bytes().to_vec());
        let text = String::from_utf8(done.bytes).unwrap();
        assert!(text.is_ascii(), "{text}");
        assert!(
            text.contains("Content-Transfer-Encoding: quoted-printable\r\n\r\nSch=C3=B6ne"),
            "{text}"
        );
        assert!(!text.contains("8bit"), "{text}");
        assert!(text.contains("\r\n\r\nascii only\r\n"), "{text}");
        assert_eq!(done.notes.len(), 1, "{:?}", done.notes);
        let ascii = b"From: a@example.com\r\n\r\nplain\r\n".to_vec();
        assert_eq!(seven_bit(ascii.clone()).bytes, ascii);
        // Unreadable structure: kept as it is, with a note.
        let headerless = "no header here \u{e4}\r\n".as_bytes().to_vec();
        let kept = seven_bit(headerless.clone());
        assert_eq!(kept.bytes, headerless);
        assert_eq!(kept.notes.len(), 1);
    }

    #[test]
    fn signed_messages_are_refused() {
        let message = format!("Subject: s\r\nMIME-Version: 1.0\r\nContent-Type: multipart/signed; protocol=\"application/pgp-signature\"; micalg=pgp-sha256; boundary=s\r\n\r\n--s\r\nContent-Type: text/plain\r\n\r\n{}\r\n--s\r\nContent-Type: application/pgp-signature\r\n\r\nSIG\r\n--s--\r\n", "v".repeat(1200));
        let err = refused(message.as_bytes());
        assert!(err.message.contains("part 1 (text/plain)"), "{err}");
        assert!(err.message.contains("multipart/signed signature"), "{err}");
    }

    #[test]
    fn a_part_already_encoded_is_refused() {
        let message = MIXED
            .replace(
                "filename=log.json\r\n",
                "filename=log.json\r\nContent-Transfer-Encoding: base64\r\n",
            )
            .replace("LONG", &"QUJD".repeat(300));
        let err = refused(message.as_bytes());
        assert!(err.message.contains("part 2 (text/plain)"), "{err}");
        assert!(err.message.contains("already encoded as base64"), "{err}");
        let qp = MIXED
            .replace(
                "filename=log.json\r\n",
                "filename=log.json\r\nContent-Transfer-Encoding: Quoted-Printable\r\n",
            )
            .replace("LONG", "nul\0");
        assert!(refused(qp.as_bytes()).message.contains("quoted-printable"));
    }

    #[test]
    fn a_long_line_in_the_preamble_is_refused() {
        let message = MIXED
            .replace("preamble", &"p".repeat(1000))
            .replace("LONG", "ok");
        let err = refused(message.as_bytes());
        assert!(err.message.contains("outside its parts"), "{err}");
        assert!(err.message.contains("multipart/mixed"), "{err}");
    }

    #[test]
    fn a_long_header_is_folded_at_white_space() {
        let recipients: Vec<String> = (0..120).map(|i| format!("user{i}@example.com")).collect();
        let to = format!("To: {}", recipients.join(", "));
        assert!(to.len() > 2000);
        let message = format!("Subject: x\r\n{to}\r\nX-Next: y\r\n\r\nbody\r\n");
        let out = transported(message.as_bytes());
        assert_fits(&out.bytes);
        let text = String::from_utf8(out.bytes.clone()).unwrap();
        // Unfolding (RFC 5322 §2.2.3) gives back the original.
        assert_eq!(text.replace("\r\n ", " "), message);
        assert!(text.ends_with("\r\nX-Next: y\r\n\r\nbody\r\n"));
        assert_eq!(parsed(&out.bytes).to().unwrap().iter().count(), 120);
        assert_eq!(
            out.notes,
            [format!(
                "folded header To: a line of {} octets (SMTP allows 998)",
                to.len()
            )]
        );
    }

    #[test]
    fn an_unfoldable_header_is_refused_by_name() {
        let message = format!(
            "Subject: x\r\nX-Token: {}\r\n\r\nbody\r\n",
            "t".repeat(1200)
        );
        let err = refused(message.as_bytes());
        assert!(err.message.contains("header X-Token"), "{err}");
        assert!(err.message.contains("no white space"), "{err}");
        // White space only at the end cannot be used: the last line would
        // hold nothing but white space.
        let trailing = format!(
            "Subject: x\r\nX-Token: {}   \r\n\r\nbody\r\n",
            "t".repeat(1200)
        );
        refused(trailing.as_bytes());
    }

    #[test]
    fn nul_in_a_part_header_is_refused_by_name() {
        let message = MIXED.replace("filename=log.json", "filename=log\0.json");
        let err = refused(message.as_bytes());
        assert!(
            err.message
                .contains("header Content-Disposition holds a NUL"),
            "{err}"
        );
    }

    #[test]
    fn folding_keeps_text_on_every_line() {
        let line = format!("X-A: {} {}", "a".repeat(900), "b".repeat(900));
        let folded = fold(line.as_bytes()).unwrap();
        assert_eq!(
            folded,
            format!("X-A: {}\r\n {}", "a".repeat(900), "b".repeat(900)).into_bytes()
        );
        assert_eq!(fold(b"X:        "), Some(b"X:        ".to_vec()));
        let spaces = format!("X:{}", " ".repeat(2000));
        assert_eq!(fold(spaces.as_bytes()), None);
    }

    #[test]
    fn quoted_printable_lines_stay_within_76() {
        let body = "=".repeat(200);
        let qp = quoted_printable(body.as_bytes());
        for line in qp.split(|&b| b == b'\n') {
            assert!(line.len() <= 77, "{}", line.len()); // 76 plus the CR
        }
    }

    /// Bytes that exercise the encoder: line ends, bare CR/LF, NUL, white
    /// space, `=`, Latin-1 letters (0x80-0x9F are left out: mail-parser
    /// may read ISO-8859-1 as windows-1252 there), long runs.
    fn body_bytes() -> impl Strategy<Value = Vec<u8>> {
        let unit = prop_oneof![
            Just(b"\r\n".to_vec()),
            Just(b"\r".to_vec()),
            Just(b"\n".to_vec()),
            Just(vec![0u8]),
            Just(b" ".to_vec()),
            Just(b"\t".to_vec()),
            Just(b"=".to_vec()),
            Just(b".".to_vec()),
            (0xA0u8..=0xFF).prop_map(|b| vec![b]),
            (0x20u8..0x7F).prop_map(|b| vec![b]),
            (1usize..1500, 0x21u8..0x7F).prop_map(|(n, b)| vec![b; n]),
        ];
        prop::collection::vec(unit, 0..40).prop_map(|units| units.concat())
    }

    fn latin1(text: &str) -> Vec<u8> {
        text.chars().map(|c| c as u32 as u8).collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn the_recipient_decodes_the_original_bytes(raw in body_bytes()) {
            // What message::prepare hands over: bare LF already CRLF.
            let body = crate::mail::content::crlf(&raw).into_owned();
            let mut message = b"Subject: p\r\nContent-Type: text/plain; charset=iso-8859-1\r\n\r\n".to_vec();
            message.extend_from_slice(&body);
            let out = make_transportable(message.clone()).unwrap();
            assert_fits(&out.bytes);
            let parsed = parsed(&out.bytes);
            prop_assert_eq!(latin1(decoded_text(&parsed.parts[0])), body.clone());
            if !scan(&message).any() {
                prop_assert_eq!(&out.bytes, &message);
            }
        }

        #[test]
        fn in_a_multipart_the_other_bytes_stay(raw in body_bytes()) {
            let body = crate::mail::content::crlf(&raw).into_owned();
            let head = b"Subject: m\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"=_b\"\r\n\r\n--=_b\r\nContent-Type: text/plain; charset=iso-8859-1\r\n\r\n";
            let tail = b"\r\n--=_b\r\nContent-Type: text/plain\r\n\r\nsecond\r\n--=_b--\r\n";
            // A line of the body that looks like the boundary would end
            // the part early: not what this property is about.
            prop_assume!(!body.windows(5).any(|w| w == b"--=_b"));
            let message = [&head[..], &body, &tail[..]].concat();
            let out = make_transportable(message).unwrap();
            assert_fits(&out.bytes);
            prop_assert!(out.bytes.starts_with(&head[..head.len() - 2]));
            prop_assert!(out.bytes.ends_with(tail));
            let parsed = parsed(&out.bytes);
            prop_assert_eq!(latin1(decoded_text(&parsed.parts[1])), body);
            prop_assert_eq!(decoded_text(&parsed.parts[2]), "second");
        }

        #[test]
        fn no_input_panics_and_what_is_accepted_fits(units in prop::collection::vec(prop_oneof![
            Just(b"--b\r\n".to_vec()),
            Just(b"--b--\r\n".to_vec()),
            Just(b"\r\n".to_vec()),
            Just(b"\r".to_vec()),
            Just(vec![0u8]),
            Just(b" ".to_vec()),
            Just(b"Content-Type: multipart/mixed; boundary=b\r\n".to_vec()),
            Just(b"Content-Type: message/rfc822\r\n".to_vec()),
            Just(b"Content-Transfer-Encoding: base64\r\n".to_vec()),
            Just(b"X: y\r\n".to_vec()),
            (1usize..1200, 0x21u8..0x7F).prop_map(|(n, b)| vec![b; n]),
            prop::collection::vec(any::<u8>(), 0..8),
        ], 0..30)) {
            let mut message = b"Subject: f\r\nContent-Type: multipart/mixed; boundary=b\r\n".to_vec();
            message.extend(units.concat());
            if let Ok(out) = make_transportable(message) {
                assert_fits(&out.bytes);
            }
        }
    }
}
