//! BSD mailx (Debian's bsd-mailx) drives postie through a link named
//! sendmail, as it drives /usr/sbin/sendmail on a real system. .ci/run
//! unpacks the package and names its binary in POSTIE_TEST_MAILX; where
//! that is not set the test says so and passes, except under CI, where a
//! missing mailx is a failure rather than a silently skipped test.

use std::fs;

use crate::common::{hermetic, parse, skip, ServerOptions, TestServer};

#[test]
fn bsd_mailx_sends_through_the_sendmail_link() {
    let Some(mailx) = std::env::var_os("POSTIE_TEST_MAILX") else {
        skip("POSTIE_TEST_MAILX is not set (.ci/run sets it)");
        return;
    };
    let server = TestServer::start(ServerOptions::default());
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("sendmail");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_postie"), &link).unwrap();
    // mailx's `sendmail` variable points it at the link instead of
    // /usr/sbin/sendmail, so the test leaves the system alone.
    let mailrc = dir.path().join("mailrc");
    fs::write(&mailrc, format!("set sendmail={}\n", link.display())).unwrap();

    hermetic(&mailx)
        .env("MAILRC", &mailrc)
        .env("POSTIE_SERVER", server.addr())
        .env("POSTIE_FROM", "Backup Host <backup@example.com>")
        .args(["-s", "nightly backup: OK", "ops@example.com"])
        .write_stdin("1532 files\n.\nall fine\n")
        .assert()
        .success();

    let mail = server.wait_for_messages(1).remove(0);
    assert_eq!(mail.mail_from, "backup@example.com");
    assert_eq!(mail.rcpt_to, ["ops@example.com"]);
    let msg = parse(&mail.data);
    assert_eq!(msg.subject(), Some("nightly backup: OK"));
    assert_eq!(
        msg.from().unwrap().first().unwrap().address(),
        Some("backup@example.com"),
        "postie filled in From"
    );
    // mailx passes -i, so the lone dot is text, not the end.
    assert_eq!(msg.body_text(0).unwrap(), "1532 files\r\n.\r\nall fine\r\n");
}
