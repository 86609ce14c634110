"""Postfix 3.7 (Debian 12) with SASL through Dovecot 2.3's auth service.

Debian packages `postfix` and `dovecot-core` are only unpacked (dpkg -x) into
target/interop/postfix/root; installing postfix would replace
/usr/sbin/sendmail and conflict with the other MTAs, and dovecot-core's
postinst would start a system Dovecot on the IMAP/POP3 ports. Libraries
they need that the machine lacks are apt-installed. System users: postfix
(plus group postdrop, which Postfix wants distinct from postfix's group),
dovecot and dovenull (Dovecot's internal and login users).

Postfix: one instance, `master -c DIR -d` in the foreground, with every
directory parameter pointing into the unpacked prefix or the workdir and no
chroot. Its daemons find their shared libraries (RUNPATH /usr/lib/postfix)
only through LD_LIBRARY_PATH, which master strips from their environment
unless import_environment names it. Logging goes to a file through postlogd
(maillog_file), since there is no syslog; POSTLOG_SERVICE in master's
environment makes even its early fatal errors land there. Config files get
an mtime in the past: Postfix waits ~2 s on a file modified "just now".
Mail for example.com goes through the virtual(8) agent to one Maildir;
virtual_mailbox_maps is a regexp table that matches every address except
local parts starting with "refused", so smtpd rejects those at RCPT (550
5.1.1). virtual adds Delivered-To and
Return-Path to each copy. Three smtpd services: plain (no TLS, no AUTH),
STARTTLS (tls level may, AUTH only after STARTTLS) and implicit TLS
(smtpd_tls_wrappermode, the way Postfix does port 465).

Dovecot: only the auth service, `dovecot -F` in the foreground, passwd-file
passdb for alice, mechanisms PLAIN, LOGIN, SCRAM-SHA-1, SCRAM-SHA-256 and
CRAM-MD5 (checked against the plain-text password), a unix listener owned
by postfix that smtpd uses (smtpd_sasl_type = dovecot). Two path problems of
the unpacked Dovecot: libexec_dir points its services into the prefix, and
the master reads its config by exec'ing the compiled-in /usr/bin/doveconf,
so we start it the other way round, `doveconf -c CONF -e dovecot -F -c
CONF`: doveconf puts the parsed config in the environment and execs the
master (same pid). The auth binary also needs modules/old-stats on
LD_LIBRARY_PATH (its RUNPATH).
"""

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from . import (PASSWORD, USER, Endpoint, Maildir, StartError, apt_install, ensure_user, free_port,
               log_tail, unpack, wait_for_port)

# Shared libraries postfix and dovecot-core depend on (Debian 12 names);
# apt_install skips those already there.
LIBRARIES = [
    "libdb5.3", "libicu72", "libnsl2", "libsasl2-2", "libssl3",  # postfix
    "libapparmor1", "libbz2-1.0", "libcap2", "libcrypt1", "libexttextcat-2.0-0", "liblua5.4-0",
    "liblz4-1", "liblzma5", "libpam0g", "libsodium23", "libstemmer0d", "libsystemd0", "libtirpc3",
    "libunwind8", "libwrap0", "libzstd1", "zlib1g",  # dovecot-core
]

# Postfix's queue layout (owner, group, mode), as in /etc/postfix/postfix-files.
QUEUE_DIRS = {
    **{d: ("postfix", None, 0o700) for d in (
        "active", "bounce", "corrupt", "defer", "deferred", "flush", "hold", "incoming",
        "private", "saved", "trace")},
    "maildrop": ("postfix", "postdrop", 0o730),
    "public": ("postfix", "postdrop", 0o710),
    "pid": ("root", None, 0o755),
}

MASTER_CF = """\
# service type  private unpriv  chroot  wakeup  maxproc command
127.0.0.1:{plain} inet n - n - - smtpd
  -o smtpd_tls_security_level=none
127.0.0.1:{starttls} inet n - n - - smtpd
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_tls_auth_only=yes
127.0.0.1:{implicit} inet n - n - - smtpd
  -o smtpd_tls_wrappermode=yes
  -o smtpd_sasl_auth_enable=yes
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
virtual   unix  -       n       n       -       -       virtual
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


def _own(path, user, group=None, mode=None):
    shutil.chown(path, user, group)
    if mode is not None:
        os.chmod(path, mode)


def _write_dovecot(root, work, socket):
    conf = work / "dovecot.conf"
    (work / "passwd").write_text(f"{USER}:{{PLAIN}}{PASSWORD}\n")
    conf.write_text(f"""\
base_dir = {work}/run
state_dir = {work}/state
log_path = {work.parent}/dovecot.log
instance_name = postie-interop-{os.getpid()}
libexec_dir = {root}/usr/lib/dovecot
# Only the auth service: no IMAP/POP3/LMTP listeners.
protocols =
listen = 127.0.0.1
ssl = no
import_environment = TZ LD_LIBRARY_PATH
# SCRAM and CRAM-MD5 need the password itself (or SCRAM's own hashes):
# the plain-text passdb has it, so Dovecot checks postie's computations.
auth_mechanisms = plain login scram-sha-1 scram-sha-256 cram-md5
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {work}/passwd
}}
# Dovecot insists on a userdb; SMTP AUTH never asks it.
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home=/nonexistent
}}
service auth {{
  unix_listener {socket} {{
    mode = 0660
    user = postfix
    group = postfix
  }}
}}
""")
    return conf


def _write_postfix(root, work, cert, key, ports, socket):
    config, queue, data, mail = work / "postfix", work / "queue", work / "data", work / "mail"
    postfix = ensure_user("postfix")
    config.mkdir()
    queue.mkdir()
    for name, (user, group, mode) in QUEUE_DIRS.items():
        (queue / name).mkdir()
        _own(queue / name, user, group, mode)
    data.mkdir()
    _own(data, "postfix", None, 0o700)
    maildir = mail / "Maildir"
    for sub in ("tmp", "new", "cur"):
        (maildir / sub).mkdir(parents=True)
    for p in (mail, maildir, *(maildir / s for s in ("tmp", "new", "cur"))):
        _own(p, "postfix", "postfix", 0o755)
    # An address the table does not match gets "550 5.1.1 User unknown in
    # virtual mailbox table" from smtpd at RCPT.
    (config / "mailboxes").write_text("!/^refused/ Maildir/\n")
    limit = 100 * 1024 * 1024
    (config / "main.cf").write_text(f"""\
compatibility_level = 3.6
queue_directory = {queue}
data_directory = {data}
daemon_directory = {root}/usr/lib/postfix/sbin
command_directory = {root}/usr/sbin
shlib_directory = {root}/usr/lib/postfix
meta_directory = {root}/etc/postfix
import_environment = MAIL_CONFIG MAIL_DEBUG MAIL_LOGTAG TZ LANG=C POSTLOG_SERVICE POSTLOG_HOSTNAME
  LD_LIBRARY_PATH={root}/usr/lib/postfix
maillog_file = {work}/postfix.log
maillog_file_prefixes = {work}
myhostname = mail.postie.test
# example.com is a virtual mailbox domain only; nothing is local.
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
alias_maps =
alias_database =
# No DNS: nothing here needs a resolver.
smtpd_peername_lookup = no
biff = no
message_size_limit = {limit}
virtual_mailbox_limit = {limit}
virtual_mailbox_domains = example.com
virtual_mailbox_base = {mail}
virtual_mailbox_maps = regexp:{config}/mailboxes
virtual_uid_maps = static:{postfix.pw_uid}
virtual_gid_maps = static:{postfix.pw_gid}
# Mail is stored as the postfix user; its system uid may be below the default 100.
virtual_minimum_uid = {min(postfix.pw_uid, 100)}
smtpd_tls_cert_file = {cert}
smtpd_tls_key_file = {key}
smtpd_tls_security_level = may
smtpd_sasl_type = dovecot
smtpd_sasl_path = {socket}
smtpd_sasl_auth_enable = no
""")
    (config / "master.cf").write_text(MASTER_CF.format(**ports))
    # Postfix rereads a table or main.cf until its mtime is in the past
    # (a file still being written), which costs ~2 s on every start.
    past = time.time() - 10
    for p in config.iterdir():
        os.utime(p, (past, past))
    return config, maildir


class Instance:
    def __init__(self, processes, endpoints):
        self.processes = processes
        self.endpoints = endpoints

    def stop(self):
        # Both masters terminate their children on SIGTERM; whatever is left
        # in their process groups after that is killed.
        for proc in self.processes:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.processes:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            if proc.poll() is None:
                proc.wait(timeout=5)
            # Postfix's master exits without reaping its children; wait until
            # init has reaped them so that nothing of this run is left.
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                try:
                    os.killpg(proc.pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.05)


def _start(command, env, log):
    with open(log, "ab") as out:
        return subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                start_new_session=True)


def start(workdir, cert, key):
    workdir = Path(workdir)
    root = unpack("postfix", ["postfix", "dovecot-core"]) / "root"
    apt_install(LIBRARIES)
    ensure_user("postfix", extra_groups=("postdrop",))
    ensure_user("dovecot")
    ensure_user("dovenull")

    processes = []
    try:
        dovecot_work = workdir / "dovecot"
        dovecot_work.mkdir()
        socket = dovecot_work / "auth-postfix"
        conf = _write_dovecot(root, dovecot_work, socket)
        dovecot_log = workdir / "dovecot.log"
        # The auth binary's RUNPATH also names the old-stats module folder.
        libs = [root / "usr/lib/dovecot", root / "usr/lib/dovecot/modules/old-stats"]
        env = {**os.environ, "LD_LIBRARY_PATH": ":".join(map(str, libs))}
        dovecot = _start([str(root / "usr/bin/doveconf"), "-c", str(conf), "-m", "master", "-e",
                          str(root / "usr/sbin/dovecot"), "-F", "-c", str(conf)], env, dovecot_log)
        processes.append(dovecot)
        deadline = time.monotonic() + 20
        while not socket.exists():
            if dovecot.poll() is not None:
                raise StartError(f"dovecot exited with {dovecot.returncode}" + log_tail(dovecot_log))
            if time.monotonic() > deadline:
                raise StartError(f"dovecot made no {socket} in 20s" + log_tail(dovecot_log))
            time.sleep(0.05)

        ports = {"plain": free_port(), "starttls": free_port(), "implicit": free_port()}
        config, maildir = _write_postfix(root, workdir, cert, key, ports, socket)
        log = workdir / "postfix.log"
        # POSTLOG_SERVICE makes master log to maillog_file even before it has
        # read main.cf or started postlogd; otherwise its fatal errors go to a
        # syslog that is not there.
        env = {**os.environ, "LD_LIBRARY_PATH": str(root / "usr/lib/postfix"),
               "POSTLOG_SERVICE": "postlog", "POSTLOG_HOSTNAME": "mail.postie.test"}
        master = _start([str(root / "usr/lib/postfix/sbin/master"), "-c", str(config), "-d"], env, log)
        processes.append(master)
        for port in ports.values():
            wait_for_port(port, process=master, log=log)
        # master opens each listener as it reads master.cf, so open ports do
        # not yet mean a good master.cf; this line does.
        deadline = time.monotonic() + 20
        while "daemon started" not in log.read_text(errors="replace"):
            if master.poll() is not None:
                raise StartError(f"postfix master exited with {master.returncode}" + log_tail(log))
            if time.monotonic() > deadline:
                raise StartError("postfix master did not log its start in 20s" + log_tail(log))
            time.sleep(0.05)
    except BaseException:
        Instance(processes, []).stop()
        raise

    mailbox = Maildir(maildir, recipient_header="Delivered-To")
    auth = ("plain", "login", "scram-sha-1", "scram-sha-256", "cram-md5")
    # Postfix offers DSN, and virtual(8) reports a delivery asked for with
    # NOTIFY=SUCCESS to the sender, here a mailbox of the same Maildir.
    endpoints = [
        Endpoint("postfix plain", ports["plain"], "none", mailbox=mailbox, dsn_report="rfc3464"),
        Endpoint("postfix STARTTLS", ports["starttls"], "starttls", cert, auth, mailbox, dsn_report="rfc3464"),
        Endpoint("postfix implicit TLS", ports["implicit"], "implicit", cert, auth, mailbox,
                 dsn_report="rfc3464"),
    ]
    return Instance(processes, endpoints)
