//! Conformance corpus (issue 15): compose and `--message` cases, each
//! produced by postie (its `--dry-run` output, which is the wire bytes, and
//! a handful through the embedded SMTP server), parsed back with
//! mail-parser and compared field by field with the input, plus the
//! line-length and 7-bit checks every message must pass.

use std::fs;
use std::path::Path;

use mail_parser::{Message, MimeHeaders};

use crate::common::{parse, postie, ServerOptions, TestServer};

/// One argument: literal, or a file of the case's directory (its path).
#[derive(Clone)]
enum Arg {
    Lit(String),
    File(String),
}

fn lit(s: impl Into<String>) -> Arg {
    Arg::Lit(s.into())
}

#[derive(Clone)]
struct Att {
    name: String,
    bytes: Vec<u8>,
    ctype: &'static str,
    /// Compared byte for byte; otherwise after CRLF normalisation.
    exact: bool,
}

type Mailbox = (Option<String>, String);

#[derive(Clone)]
struct Case {
    name: String,
    files: Vec<(String, Vec<u8>)>,
    args: Vec<Arg>,
    from: Mailbox,
    to: Vec<Mailbox>,
    cc: Vec<Mailbox>,
    /// The Sender: mailbox, if the case sets one.
    sender: Option<Mailbox>,
    subject: Option<String>,
    body: Option<String>,
    /// Appended after `args`.
    body_args: Vec<Arg>,
    html: Option<String>,
    attachments: Vec<Att>,
    /// Headers expected verbatim (unfolded, trimmed).
    headers: Vec<(String, String)>,
    /// Headers that must not appear.
    absent: Vec<String>,
    non_ascii_local: bool,
    real_server: bool,
}

const FROM: &str = "sender@example.com";

fn mb(name: Option<&str>, addr: &str) -> Mailbox {
    (name.map(str::to_string), addr.to_string())
}

/// A compose case: From sender@example.com, To rcpt@example.org, a body.
fn compose(name: impl Into<String>) -> Case {
    Case {
        name: name.into(),
        files: vec![],
        args: vec![lit("-f"), lit(FROM), lit("rcpt@example.org")],
        from: mb(None, FROM),
        to: vec![mb(None, "rcpt@example.org")],
        cc: vec![],
        sender: None,
        subject: None,
        body: Some("hello\n".into()),
        body_args: vec![lit("--body"), lit("hello\n")],
        html: None,
        attachments: vec![],
        headers: vec![],
        absent: vec![],
        non_ascii_local: false,
        real_server: false,
    }
}

impl Case {
    fn args(mut self, a: &[&str]) -> Case {
        self.args.extend(a.iter().map(|s| lit(*s)));
        self
    }
    fn subject(mut self, s: &str) -> Case {
        self.args.extend([lit("-s"), lit(s)]);
        self.subject = Some(s.into());
        self
    }
    fn body(mut self, b: &str) -> Case {
        self.body_args = vec![lit("--body"), lit(b)];
        self.body = Some(b.into());
        self
    }
    fn file(mut self, name: &str, bytes: &[u8]) -> Case {
        self.files.push((name.into(), bytes.to_vec()));
        self
    }
    fn attach(mut self, file: &str, bytes: &[u8], spec: &str, att: Att) -> Case {
        self.files.push((file.into(), bytes.to_vec()));
        self.args.push(lit("-a"));
        self.args.push(Arg::File(format!("{file}{spec}")));
        self.attachments.push(att);
        self
    }
    fn header(mut self, name: &str, value: &str) -> Case {
        self.args
            .extend([lit("-H"), lit(format!("{name}: {value}"))]);
        self.headers.push((name.into(), value.into()));
        self
    }
    fn real(mut self) -> Case {
        self.real_server = true;
        self
    }
}

fn att(name: &str, bytes: &[u8], ctype: &'static str, exact: bool) -> Att {
    Att {
        name: name.into(),
        bytes: bytes.to_vec(),
        ctype,
        exact,
    }
}

/// A `--message` case: the message is written to msg.eml.
fn ready(name: &str, message: &str) -> Case {
    let mut c = compose(name);
    c.args = vec![lit("-t"), lit("--message"), Arg::File("msg.eml".into())];
    c.files
        .push(("msg.eml".into(), message.as_bytes().to_vec()));
    c.body = None;
    c.body_args = vec![];
    c
}

fn corpus() -> Vec<Case> {
    let mut cases = Vec::new();

    // Subjects: ASCII, UTF-8, CJK, short and 200+ characters.
    let long_cjk: String = "日本語の件名テスト、".repeat(22);
    let long_utf8: String = "Grüße aus Köln, straße ".repeat(10);
    let long_ascii_words: String = "word ".repeat(60).trim_end().to_string();
    let subjects: Vec<String> = vec![
        "plain ascii".into(),
        "Grüße: backup done ✓".into(),
        "日本語".into(),
        "中文邮件主题".into(),
        "한국어 제목".into(),
        "emoji 🎉🚀 subject".into(),
        long_cjk,
        long_utf8,
        long_ascii_words,
        "=?utf-8?q?not_an_encoded_word?=".into(),
        "mixed ascii 和 漢字 and ÄÖÜ".into(),
        "  leading and trailing spaces  ".trim().into(),
        "x".repeat(200),
        "Re: Fwd: Ünïcödé résumé — naïve café".into(),
    ];
    for (i, s) in subjects.iter().enumerate() {
        cases.push(compose(format!("subject {i}")).subject(s).body("hi\n"));
    }

    // Display names with commas, quotes, non-ASCII, long ones.
    let long_name = format!(
        "{}, Jr.",
        "Maximilian Alexander von Hohenzollern-Sigmaringen "
            .repeat(3)
            .trim_end()
    );
    let names: Vec<&str> = vec![
        "Doe, John",
        "John \"Johnny\" Doe",
        "Müller, Jörg",
        "山田 太郎",
        "O'Brien (work)",
        &long_name,
        "Ünïcödé, \"Quoted\", Name",
    ];
    for (i, n) in names.iter().enumerate() {
        let mut c = compose(format!("from name {i}")).body("x\n");
        let quoted = n.replace('\\', "\\\\").replace('"', "\\\"");
        c.args = vec![
            lit("-f"),
            lit(format!("\"{quoted}\" <{FROM}>")),
            lit("--to"),
            lit(format!("\"{quoted}\" <rcpt@example.org>")),
            lit("--cc"),
            lit(format!("\"{quoted}\" <cc@example.net>")),
        ];
        c.from = mb(Some(n), FROM);
        c.to = vec![mb(Some(n), "rcpt@example.org")];
        c.cc = vec![mb(Some(n), "cc@example.net")];
        cases.push(c);
    }

    // Structured -H fields.
    let refs: String = (0..30)
        .map(|i| format!("<msg{i}.{}@example.com>", "a".repeat(10)))
        .collect::<Vec<_>>()
        .join(" ");
    cases.push(compose("references").header("References", &refs));
    cases.push(compose("in-reply-to").header("In-Reply-To", "<parent.123@example.com>"));
    cases.push(compose("list-unsubscribe").header(
        "List-Unsubscribe",
        "<mailto:unsub@example.com?subject=unsubscribe>, <https://example.com/unsubscribe/abcdefghijklmnopqrstuvwxyz0123456789>",
    ));
    let mut c = compose("sender").args(&["-H", "Sender: Secretary <secretary@example.com>"]);
    c.sender = Some(mb(Some("Secretary"), "secretary@example.com"));
    cases.push(c);
    cases.push(
        compose("long unfoldable token").header("X-Token", &format!("tok-{}", "z".repeat(300))),
    );
    cases.push(
        compose("reply-to")
            .args(&["-r", "\"Replies, Here\" <replies@example.com>"])
            .header("X-Mailer-Test", "conformance"),
    );

    // Attachments.
    let utf8_text = "Grüße aus Köln\nzweite Zeile\n日本語\n".as_bytes();
    let latin1: &[u8] = b"Gr\xfc\xdfe aus K\xf6ln\n";
    let binary: Vec<u8> = (0..=255u8).cycle().take(3000).collect();
    cases.push(compose("utf8 text attachment").attach(
        "notes.txt",
        utf8_text,
        "",
        att("notes.txt", utf8_text, "text/plain", false),
    ));
    cases.push(compose("latin1 text attachment").attach(
        "latin.txt",
        latin1,
        "",
        att("latin.txt", latin1, "application/octet-stream", true),
    ));
    cases.push(compose("latin1 typed text/plain").attach(
        "typed.txt",
        latin1,
        ";type=text/plain",
        att("typed.txt", latin1, "text/plain", true),
    ));
    cases.push(compose("octet-stream typed text").attach(
        "raw.txt",
        utf8_text,
        ";type=application/octet-stream",
        att("raw.txt", utf8_text, "application/octet-stream", true),
    ));
    cases.push(compose("binary attachment").attach(
        "blob.bin",
        &binary,
        "",
        att("blob.bin", &binary, "application/octet-stream", true),
    ));
    for (i, n) in [
        "Grüße.txt",
        "日本語のファイル名.txt",
        "résumé (final), v2.txt",
        "naïve café ünïcödé.txt",
    ]
    .iter()
    .enumerate()
    {
        cases.push(compose(format!("non-ascii file name {i}")).attach(
            &format!("f{i}.txt"),
            b"content\n",
            &format!(";name={n}"),
            att(n, b"content\n", "text/plain", false),
        ));
    }
    let long_file = format!("{}.txt", "a_very_long_file_name_".repeat(10));
    cases.push(compose("very long ascii file name").attach(
        &long_file,
        b"long\n",
        "",
        att(&long_file, b"long\n", "text/plain", false),
    ));
    let long_utf8_file = format!("{}.txt", "sehr_lange_Dateinamen_mit_Ümläuten_".repeat(6));
    cases.push(compose("very long non-ascii file name").attach(
        "l.txt",
        b"long\n",
        &format!(";name={long_utf8_file}"),
        att(&long_utf8_file, b"long\n", "text/plain", false),
    ));
    let eml7 = b"From: c@example.com\nTo: d@example.com\nSubject: forwarded\n\nthe original body\n";
    let eml8 = "From: c@example.com\nSubject: Grüße\nContent-Type: text/plain; charset=utf-8\n\nÄpfel und Öl\n".as_bytes();
    cases.push(compose("eml 7bit").attach(
        "fwd.eml",
        eml7,
        "",
        att("fwd.eml", eml7, "message/rfc822", false),
    ));
    cases.push(compose("eml 8bit").attach(
        "fwd8.eml",
        eml8,
        "",
        att("fwd8.eml", eml8, "message/rfc822", false),
    ));
    cases.push(
        compose("several attachments")
            .attach(
                "a.txt",
                utf8_text,
                "",
                att("a.txt", utf8_text, "text/plain", false),
            )
            .attach(
                "b.bin",
                &binary,
                "",
                att("b.bin", &binary, "application/octet-stream", true),
            )
            .attach(
                "c.eml",
                eml7,
                "",
                att("c.eml", eml7, "message/rfc822", false),
            ),
    );

    // HTML.
    let html = "<html><body><p>Grüße <b>bold</b></p></body></html>\n";
    let mut c = compose("html only").file("page.html", html.as_bytes());
    c.args
        .extend([lit("--html"), Arg::File("page.html".into())]);
    c.body_args = vec![lit("--body"), lit("")];
    c.body = None;
    c.html = Some(html.into());
    cases.push(c);
    let mut c = compose("html and text")
        .file("page.html", html.as_bytes())
        .body("text version\n");
    c.args
        .extend([lit("--html"), Arg::File("page.html".into())]);
    c.html = Some(html.into());
    cases.push(c);
    let mut c = compose("html, text and attachment")
        .file("page.html", html.as_bytes())
        .body("text version\n")
        .attach(
            "r.txt",
            utf8_text,
            "",
            att("r.txt", utf8_text, "text/plain", false),
        );
    c.args
        .extend([lit("--html"), Arg::File("page.html".into())]);
    c.html = Some(html.into());
    cases.push(c);

    // Bcc only.
    let mut c = compose("bcc only").body("hidden\n");
    c.args = vec![
        lit("-f"),
        lit(FROM),
        lit("--bcc"),
        lit("hidden@example.org"),
    ];
    c.to = vec![];
    c.absent = vec!["Bcc".into()];
    c.headers = vec![("To".into(), "undisclosed-recipients:;".into())];
    cases.push(c);
    let mut c = compose("to and bcc")
        .body("hidden\n")
        .args(&["-b", "hidden@example.org"]);
    c.absent = vec!["Bcc".into()];
    cases.push(c);

    // Non-ASCII domains: A-labels.
    for (i, (u, a)) in [
        ("user@bücher.example", "user@xn--bcher-kva.example"),
        ("info@例え.jp", "info@xn--r8jz45g.jp"),
        ("Ülf <ulf@münchen.example>", "ulf@xn--mnchen-3ya.example"),
    ]
    .iter()
    .enumerate()
    {
        let mut c = compose(format!("idn {i}")).body("x\n");
        c.args = vec![lit("-f"), lit(FROM), lit("--to"), lit(*u)];
        c.to = vec![mb(u.contains('<').then_some("Ülf"), a)];
        cases.push(c);
    }

    // 300 recipients.
    let mut c = compose("300 recipients").body("many\n");
    c.args = vec![lit("-f"), lit(FROM)];
    c.to = (0..300)
        .map(|i| mb(None, &format!("r{i}@example.org")))
        .collect();
    c.args
        .extend(c.to.iter().map(|(_, a)| lit(a.clone())).collect::<Vec<_>>());
    cases.push(c);
    let mut c = compose("300 named cc").body("many\n");
    c.cc = (0..300)
        .map(|i| {
            (
                Some(format!("Person {i}, Team")),
                format!("p{i}@example.net"),
            )
        })
        .collect();
    for (n, a) in c.cc.clone() {
        c.args
            .extend([lit("--cc"), lit(format!("\"{}\" <{a}>", n.unwrap()))]);
    }
    cases.push(c);

    // Bodies.
    cases.push(compose("body without final newline").body("no newline at end"));
    cases.push(compose("utf8 body without final newline").body("Grüße ✓"));
    cases.push(compose("long body line").body(&format!("{}\n", "lorem ipsum ".repeat(100))));
    cases.push(compose("body with dots").body(".\n..\n.leading dot\n"));
    cases.push(compose("cjk body").body("日本語の本文です。\n二行目。\n"));
    cases.push(compose("empty lines body").body("a\n\n\nb\n"));
    cases.push(compose("from line in body").body("From here on\n>From quoted\n"));

    // --message ready-made messages.
    let mut c = ready(
        "message plain",
        "From: Alice <alice@example.com>\nTo: Bob <bob@example.org>\nSubject: ready made\n\nbody of it\n",
    );
    c.from = mb(Some("Alice"), "alice@example.com");
    c.to = vec![mb(Some("Bob"), "bob@example.org")];
    c.subject = Some("ready made".into());
    c.body = Some("body of it\n".into());
    cases.push(c);
    let mut c = ready(
        "message with bcc",
        "From: alice@example.com\nTo: bob@example.org\nBcc: secret@example.org\nSubject: with bcc\n\nbody\n",
    );
    c.from = mb(None, "alice@example.com");
    c.to = vec![mb(None, "bob@example.org")];
    c.subject = Some("with bcc".into());
    c.body = Some("body\n".into());
    c.absent = vec!["Bcc".into()];
    cases.push(c);
    let mut c = ready(
        "message with resent",
        "Resent-From: Forwarder <fwd@example.com>\nResent-To: new@example.org\nResent-Date: Tue, 1 Dec 2026 10:00:00 +0000\nResent-Message-ID: <resent.1@example.com>\nFrom: alice@example.com\nTo: bob@example.org\nSubject: resent one\nDate: Mon, 30 Nov 2026 09:00:00 +0000\nMessage-ID: <orig.1@example.com>\n\noriginal body\n",
    );
    c.from = mb(None, "alice@example.com");
    c.to = vec![mb(None, "bob@example.org")];
    c.subject = Some("resent one".into());
    c.body = Some("original body\n".into());
    c.headers = vec![
        ("Resent-From".into(), "Forwarder <fwd@example.com>".into()),
        ("Resent-To".into(), "new@example.org".into()),
        ("Resent-Message-ID".into(), "<resent.1@example.com>".into()),
        ("Message-ID".into(), "<orig.1@example.com>".into()),
    ];
    cases.push(c);
    let mut c = ready(
        "message encoded subject",
        "From: =?utf-8?q?J=C3=B6rg?= <j@example.com>\nTo: bob@example.org\nSubject: =?utf-8?b?5pel5pys6Kqe?=\n\nbody\n",
    );
    c.from = mb(Some("Jörg"), "j@example.com");
    c.to = vec![mb(None, "bob@example.org")];
    c.subject = Some("日本語".into());
    c.body = Some("body\n".into());
    cases.push(c);
    let mut c = ready(
        "message without final newline",
        "From: a@example.com\nTo: bob@example.org\nSubject: no newline\n\nlast line",
    );
    c.from = mb(None, "a@example.com");
    c.to = vec![mb(None, "bob@example.org")];
    c.subject = Some("no newline".into());
    c.body = Some("last line".into());
    cases.push(c);
    let mut c = ready(
        "message crlf multipart",
        "From: a@example.com\r\nTo: b@example.org\r\nSubject: mp\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=XX\r\n\r\n--XX\r\nContent-Type: text/plain\r\n\r\npart one\r\n--XX\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=x.bin\r\nContent-Transfer-Encoding: base64\r\n\r\nAAECAw==\r\n--XX--\r\n",
    );
    c.from = mb(None, "a@example.com");
    c.to = vec![mb(None, "b@example.org")];
    c.subject = Some("mp".into());
    c.body = Some("part one\n".into());
    c.attachments = vec![att(
        "x.bin",
        &[0, 1, 2, 3],
        "application/octet-stream",
        true,
    )];
    cases.push(c);
    let mut c = ready(
        "message with to and cc recipients on command line",
        "From: a@example.com\nTo: \"Doe, John\" <john@example.org>\nCc: c1@example.net, \"Q \\\"x\\\"\" <c2@example.net>\nSubject: cc list\n\nb\n",
    );
    c.args.push(lit("extra@example.org"));
    c.from = mb(None, "a@example.com");
    c.to = vec![mb(Some("Doe, John"), "john@example.org")];
    c.cc = vec![
        mb(None, "c1@example.net"),
        mb(Some("Q \"x\""), "c2@example.net"),
    ];
    c.subject = Some("cc list".into());
    c.body = Some("b\n".into());
    cases.push(c);

    // A handful through the real server.
    for i in [1usize, 6, 14, 20, 30] {
        let mut c = cases[i].clone();
        c.name = format!("{} (server)", c.name);
        cases.push(c.real());
    }
    cases
}

fn unfold(v: &str) -> String {
    v.replace("\r\n", "").replace('\n', "").trim().to_string()
}

fn crlf_to_lf(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\r' && b.get(i + 1) == Some(&b'\n') {
            i += 1;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

fn norm_text(s: &str) -> String {
    s.replace("\r\n", "\n").trim_end_matches('\n').to_string()
}

fn mailboxes(a: Option<&mail_parser::Address<'_>>) -> Vec<Mailbox> {
    a.map(|a| {
        a.iter()
            .map(|m| {
                (
                    m.name().map(str::to_string),
                    m.address().unwrap_or("").to_string(),
                )
            })
            .collect()
    })
    .unwrap_or_default()
}

/// Line-length and 7-bit checks on the raw bytes.
fn check_lines(case: &Case, data: &[u8]) -> Vec<String> {
    let mut errs = Vec::new();
    let head_end = data
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 2)
        .unwrap_or(data.len());
    if !case.non_ascii_local && !data[..head_end].is_ascii() {
        errs.push("header section is not 7-bit".into());
    }
    for (n, line) in data.split(|&b| b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.len() > 998 {
            errs.push(format!("line {n} has {} octets (> 998)", line.len()));
        } else if line.len() > 78 {
            let text = String::from_utf8_lossy(line);
            let mut t = text.trim_start_matches([' ', '\t']);
            // A header's name is not part of the token.
            if n < data[..head_end].iter().filter(|&&b| b == b'\n').count()
                && !line.starts_with(b" ")
                && !line.starts_with(b"\t")
            {
                if let Some((_, rest)) = t.split_once(':') {
                    t = rest.trim_start();
                }
            }
            if t.contains([' ', '\t']) {
                errs.push(format!(
                    "line {n} has {} octets (> 78) and could be folded: {text}",
                    line.len()
                ));
            }
        }
    }
    errs
}

fn compare(case: &Case, data: &[u8], msg: &Message<'_>) -> Vec<String> {
    let mut errs = check_lines(case, data);
    let mut eq = |what: &str, got: String, want: String| {
        if got != want {
            errs.push(format!("{what}: got {got:?}, want {want:?}"));
        }
    };
    eq(
        "subject",
        format!("{:?}", msg.subject()),
        format!("{:?}", case.subject.as_deref()),
    );
    eq(
        "from",
        format!("{:?}", mailboxes(msg.from())),
        format!("{:?}", vec![case.from.clone()]),
    );
    eq(
        "to",
        format!("{:?}", mailboxes(msg.to())),
        format!("{:?}", case.to),
    );
    eq(
        "cc",
        format!("{:?}", mailboxes(msg.cc())),
        format!("{:?}", case.cc),
    );
    if let Some(sender) = &case.sender {
        let got = msg.header("Sender").and_then(|h| h.as_address());
        eq(
            "sender",
            format!("{:?}", mailboxes(got)),
            format!("{:?}", vec![sender.clone()]),
        );
    }
    if let Some(body) = &case.body {
        eq(
            "body text",
            msg.body_text(0).map(|b| norm_text(&b)).unwrap_or_default(),
            norm_text(body),
        );
    }
    if let Some(html) = &case.html {
        eq(
            "body html",
            msg.body_html(0).map(|b| norm_text(&b)).unwrap_or_default(),
            norm_text(html),
        );
    }
    for (name, value) in &case.headers {
        eq(
            &format!("header {name}"),
            msg.header_raw(name.as_str())
                .map(unfold)
                .unwrap_or_default(),
            value.clone(),
        );
    }
    for name in &case.absent {
        eq(
            &format!("header {name} present"),
            format!("{:?}", msg.header_raw(name.as_str())),
            "None".into(),
        );
    }
    let got: Vec<_> = msg.attachments().collect();
    eq(
        "attachment count",
        got.len().to_string(),
        case.attachments.len().to_string(),
    );
    for (part, want) in got.iter().zip(&case.attachments) {
        eq(
            "attachment name",
            part.attachment_name().unwrap_or("").to_string(),
            want.name.clone(),
        );
        let ct = part
            .content_type()
            .map(|c| format!("{}/{}", c.ctype(), c.subtype().unwrap_or("")))
            .unwrap_or_default();
        eq(
            &format!("content type of {}", want.name),
            ct.to_ascii_lowercase(),
            want.ctype.into(),
        );
        // message/rfc822: the raw bytes of the enclosed message.
        let raw = &data[part.raw_body_offset() as usize..part.raw_end_offset() as usize];
        let base64 = part
            .content_transfer_encoding()
            .is_some_and(|e| e.eq_ignore_ascii_case("base64"));
        let contents: Vec<u8> = if want.ctype == "message/rfc822" {
            raw.to_vec()
        } else if want.exact && base64 {
            // Not decoded as a charset: the transfer-decoded bytes.
            mail_parser::decoders::base64::base64_decode(raw).unwrap_or_default()
        } else {
            part.contents().to_vec()
        };
        let (g, w) = if want.exact {
            (contents, want.bytes.clone())
        } else {
            (crlf_to_lf(&contents), crlf_to_lf(&want.bytes))
        };
        let (g, w) = if want.ctype == "message/rfc822" {
            // The part's body ends before the boundary's CRLF.
            let t = |v: Vec<u8>| String::from_utf8_lossy(&v).trim_end().to_string();
            (t(g).into_bytes(), t(w).into_bytes())
        } else {
            (g, w)
        };
        eq(
            &format!("contents of {}", want.name),
            String::from_utf8_lossy(&g).into_owned(),
            String::from_utf8_lossy(&w).into_owned(),
        );
        if g != w {
            eq(
                &format!("bytes of {}", want.name),
                format!("{g:?}"),
                format!("{w:?}"),
            );
        }
    }
    errs
}

fn resolve(args: &[Arg], dir: &Path) -> Vec<std::ffi::OsString> {
    args.iter()
        .map(|a| match a {
            Arg::Lit(s) => s.into(),
            Arg::File(f) => dir.join(f).into_os_string(),
        })
        .collect()
}

/// postie's bytes for `case`: its dry run, or what the server received.
fn produce(case: &Case, srv: Option<&TestServer>) -> Result<Vec<u8>, String> {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in &case.files {
        fs::write(dir.path().join(name), bytes).unwrap();
    }
    let mut cmd = postie();
    match srv {
        Some(s) => cmd.args(["--server", &s.addr()]),
        None => cmd.arg("--dry-run"),
    };
    cmd.args(resolve(&case.args, dir.path()));
    cmd.args(resolve(&case.body_args, dir.path()));
    let out = cmd.output().unwrap();
    if !out.status.success() {
        return Err(format!(
            "postie exited {:?}: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    match srv {
        Some(s) => Ok(s.wait_for_messages(1).remove(0).data),
        None => Ok(out.stdout),
    }
}

#[test]
fn corpus_has_at_least_60_cases() {
    let n = corpus().len();
    assert!(n >= 60, "{n} cases");
}

#[test]
fn every_case_parses_back_to_its_input() {
    let cases = corpus();
    let mut failures = Vec::new();
    for case in &cases {
        let srv = case
            .real_server
            .then(|| TestServer::start(ServerOptions::default()));
        let data = match produce(case, srv.as_ref()) {
            Ok(d) => d,
            Err(e) => {
                failures.push(format!("[{}] {e}", case.name));
                continue;
            }
        };
        let msg = parse(&data);
        let errs = compare(case, &data, &msg);
        if !errs.is_empty() {
            failures.push(format!(
                "[{}]\n  {}\n--- message ---\n{}",
                case.name,
                errs.join("\n  "),
                String::from_utf8_lossy(&data[..data.len().min(3000)])
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}
