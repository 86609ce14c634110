"""OpenSMTPD 6.8 (Debian 12's opensmtpd, unpacked, not installed): plain,
STARTTLS with AUTH, implicit TLS with AUTH; delivers to a Maildir.

smtpd has no option for its state directories: the queue
(/var/spool/smtpd), the privsep chroot (/var/lib/opensmtpd/empty), the
control socket (/var/run/smtpd.sock) and the delivery helpers
(/usr/libexec/opensmtpd/mail.maildir) are compiled in. So smtpd runs in a
private mount namespace (`unshare --mount`) where workdir/var is bound over
/var and the unpacked usr/libexec over /usr/libexec; nothing of the
machine's /var or /usr changes, and the namespace goes away with smtpd.

Surprise: Debian 12's build fails every TLS handshake (RSA and EC keys
alike) because its key privilege separation does not work with OpenSSL 3.
A small LD_PRELOAD shim, compiled with gcc on first use, repairs that
(see SHIM); without it only the plain column could pass.

Config choices:
- Debian's build runs as the users opensmtpd and opensmtpq (not OpenBSD's
  _smtpd/_smtpq); they are created like the package's postinst would.
- smtpd offers AUTH only after TLS, so the plain listener has none; the TLS
  listeners offer PLAIN and LOGIN against a file table holding a SHA-512
  crypt hash (`openssl passwd -6`; `smtpctl encrypt` makes the same kind).
  `auth-optional`, because `auth` would refuse MAIL before AUTH and the
  other scenarios send without logging in.
- "refused*" recipients hit a `reject` rule placed before the accepting one:
  550 at RCPT.
- Every local part at example.com maps through a catch-all virtual table to
  one system user (opensmtpd-mbox) owning workdir/Maildir. smtpd prepends
  Return-Path and Delivered-To (the recipient as given in RCPT) to each copy.
- smtpd refuses a key file others may read: the key is copied with mode 0600.
"""

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from . import (PASSWORD, USER, Endpoint, Maildir, StartError, apt_install, ensure_user,
               free_port, unpack, wait_for_port)

NAME = "opensmtpd"
# The libraries smtpd links against (all of Depends that are libraries).
LIBRARIES = ["libc6", "libcrypt1", "libdb5.3", "libevent-2.1-7", "libpam0g", "libssl3", "zlib1g"]
MBOX_USER = "opensmtpd-mbox"


# smtpd keeps private keys out of the process that speaks TLS: there the
# key is the certificate's public half, tagged (RSA_/EC_KEY_set_ex_data,
# index 0) with a reference to its pki, and hooked RSA/ECDSA methods hand
# every private-key operation to the process holding the real key when they
# find that tag. With OpenSSL 3 the signing code works on its own copy of the
# key, which lacks the tag, so the hook signs locally without a private key
# and the handshake fails ("missing private key", "EVP lib"; upstream issues
# 1171 and 1239, no fix in Debian 12). Preloaded into smtpd, this gives an
# untagged key the tag smtpd last set, which is right with a single pki: the
# operation then goes to the key-holding process as designed.
SHIM = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stddef.h>

typedef void *(*get_fn)(const void *, int);
typedef int (*set_fn)(void *, int, void *);

#define TAGGED(TYPE, saved)                                                   \
    static void *saved;                                                       \
    int TYPE##_set_ex_data(void *key, int idx, void *arg) {                   \
        static set_fn real;                                                   \
        if (!real) real = (set_fn)dlsym(RTLD_NEXT, #TYPE "_set_ex_data");     \
        if (idx == 0 && arg) saved = arg;                                     \
        return real(key, idx, arg);                                           \
    }                                                                         \
    void *TYPE##_get_ex_data(const void *key, int idx) {                      \
        static get_fn real;                                                   \
        if (!real) real = (get_fn)dlsym(RTLD_NEXT, #TYPE "_get_ex_data");     \
        void *value = real(key, idx);                                         \
        return value == NULL && idx == 0 ? saved : value;                     \
    }

TAGGED(RSA, rsa_tag)
TAGGED(EC_KEY, ec_tag)
"""


def build_shim(cache):
    """Compile the shim once into the unpacked prefix (gcc is on every
    machine that builds postie)."""
    source, library = cache / "exdata-shim.c", cache / "exdata-shim.so"
    if library.exists() and source.exists() and source.read_text() == SHIM:
        return library
    source.write_text(SHIM)
    done = subprocess.run(["gcc", "-shared", "-fPIC", "-O2", "-Wall", "-o", str(library), str(source)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        library.unlink(missing_ok=True)
        raise StartError(f"gcc exdata-shim.c: {done.stderr.strip()[-500:]}")
    return library


class Instance:
    def __init__(self, process, endpoints):
        self.process = process
        self.endpoints = endpoints

    def stop(self):
        """SIGTERM to the process group (smtpd, its privsep processes and any
        delivery under way), SIGKILL to what is left after 10 s."""
        group = self.process.pid
        for sig, grace in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
            try:
                os.killpg(group, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + grace
            while self._alive(group) and time.monotonic() < deadline:
                time.sleep(0.05)
            if not self._alive(group):
                break
        self.process.wait(timeout=5)

    def _alive(self, group):
        self.process.poll()  # reaps smtpd, which would stay in the group as a zombie
        try:
            os.killpg(group, 0)
            return True
        except ProcessLookupError:
            return False


def start(workdir, cert, key):
    workdir = Path(workdir)
    cache = unpack(NAME, ["opensmtpd"])
    prefix = cache / "root"
    apt_install(LIBRARIES)
    shim = build_shim(cache)
    for name in ("opensmtpd", "opensmtpq"):
        ensure_user(name, group=name)
    mbox = ensure_user(MBOX_USER)

    # What the namespace shows as /var: smtpd creates spool/smtpd itself
    # (and insists on root-owned state dirs).
    var = workdir / "var"
    for sub in ("spool", "lib/opensmtpd/empty", "run"):
        (var / sub).mkdir(parents=True, exist_ok=True)

    # smtpd wants root-owned pki files, the key at most rwx------.
    pki = workdir / "pki"
    pki.mkdir()
    shutil.copy(cert, pki / "cert.pem")
    shutil.copy(key, pki / "key.pem")
    os.chmod(pki / "key.pem", 0o600)

    maildir = workdir / "Maildir"
    for sub in ("", "tmp", "new", "cur"):
        (maildir / sub).mkdir(exist_ok=True)
        os.chown(maildir / sub, mbox.pw_uid, mbox.pw_gid)

    digest = subprocess.run(["openssl", "passwd", "-6", "-stdin"], input=PASSWORD, text=True,
                            capture_output=True, check=True).stdout.strip()
    (workdir / "credentials").write_text(f"{USER} {digest}\n")
    (workdir / "mailboxes").write_text(f"@ {MBOX_USER}\n")

    plain, starttls, implicit = free_port(), free_port(), free_port()
    conf = workdir / "smtpd.conf"
    conf.write_text(f"""\
pki localhost cert "{pki / 'cert.pem'}"
pki localhost key "{pki / 'key.pem'}"
table credentials file:{workdir / 'credentials'}
table mailboxes file:{workdir / 'mailboxes'}
smtp max-message-size 64M

listen on 127.0.0.1 port {plain} hostname localhost
listen on 127.0.0.1 port {starttls} tls pki localhost auth-optional <credentials> hostname localhost
listen on 127.0.0.1 port {implicit} smtps pki localhost auth-optional <credentials> hostname localhost

action "store" maildir "{maildir}" user "{MBOX_USER}" virtual <mailboxes>

match from any for rcpt-to regex "^refused" reject
match from any for domain "example.com" action "store"
""")

    log = workdir / "smtpd.log"
    smtpd = prefix / "usr/sbin/smtpd"
    check = subprocess.run([str(smtpd), "-n", "-f", str(conf)], capture_output=True, text=True,
                           timeout=30)
    if check.returncode != 0:
        raise StartError(f"smtpd -n: {(check.stdout + check.stderr).strip()}")
    # unshare makes the new namespace's mounts private, so the binds never
    # show outside; exec keeps smtpd the process Popen knows (and the leader
    # of the process group stop() signals).
    script = ('mount --bind "$1" /var && mount --bind "$2" /usr/libexec && '
              'export LD_PRELOAD="$3" && shift 3 && exec "$@"')
    command = ["unshare", "--mount", "sh", "-c", script, "sh", str(var), str(prefix / "usr/libexec"),
               str(shim), str(smtpd), "-d", "-v", "-f", str(conf)]
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    instance = Instance(process, [])
    try:
        for port in (plain, starttls, implicit):
            wait_for_port(port, timeout=20, process=process, log=log)
    except BaseException:
        instance.stop()  # never leave the daemon behind, whatever went wrong
        raise
    box = Maildir(maildir, recipient_header="Delivered-To")
    # OpenSMTPD offers DSN and reports a delivery asked for with
    # NOTIFY=SUCCESS to the sender, a mailbox of the same Maildir, in a
    # multipart/mixed notice whose delivery-status part quotes neither
    # ENVID nor ORCPT.
    auth = ("plain", "login")
    instance.endpoints = [
        Endpoint(f"{NAME} plain", plain, "none", mailbox=box, dsn_report="notice"),
        Endpoint(f"{NAME} STARTTLS", starttls, "starttls", cert, auth, box, dsn_report="notice"),
        Endpoint(f"{NAME} implicit TLS", implicit, "implicit", cert, auth, box, dsn_report="notice"),
    ]
    return instance
