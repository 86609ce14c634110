"""Exim 4.96 from Debian 12: plain, STARTTLS with AUTH, implicit TLS with AUTH.

Only exim4-daemon-light is unpacked (the binary; exim4-base holds Debian's
config machinery and tools, none of which is used), and its shared libraries
are installed with apt. Exim needs its compiled-in user Debian-exim.

One self-contained configuration in the workdir, passed with -C; the daemon
runs in the foreground (-bdf) as a child. Debian's build only keeps root for
-C files listed in /etc/exim4/trusted_configs, which we must not write: the
process that receives a message runs as Debian-exim, and the usual re-exec to
regain root for delivery would lose it. So deliver_drop_privilege delivers
straight from the receiving process, as Debian-exim, into a Maildir it owns
(the daemon itself drops to Debian-exim once its ports are bound, so the key
must be readable by it). No queue runner: every message is delivered at once.
exim_path points at the unpacked binary, as /usr/sbin/exim4 does not exist.

One port carries plain and STARTTLS (AUTH offered only once TLS is up), the
other is tls_on_connect. appendfile writes one copy per recipient, with the
Envelope-to and Return-path headers the Maildir reader needs.
"""

import os
import signal
import subprocess
from . import (PASSWORD, USER, Endpoint, Maildir, StartError, apt_install, ensure_user,
               free_port, log_tail, unpack, wait_for_port)

PACKAGES = ["exim4-daemon-light"]
# exim4-daemon-light's Depends, minus exim4-base and debconf.
LIBRARIES = ["libcrypt1", "libdb5.3", "libgnutls-dane0", "libgnutls30", "libidn12",
             "libidn2-0", "libnsl2", "libpcre2-8-0"]
EXIM_USER = "Debian-exim"

# Exim macros (upper-case names), defined by start() ahead of this text.
CONFIG = r"""
exim_path = EXIM_BINARY
primary_hostname = localhost
spool_directory = WORKDIR/spool
log_file_path = WORKDIR/log/%slog
pid_file_path = WORKDIR/exim.pid
keep_environment =
# No ident lookups or reverse DNS: nothing to wait for on 127.0.0.1.
rfc1413_hosts =
host_lookup =

local_interfaces = 127.0.0.1
# A taken port fails the start at once, instead of ten tries 30s apart.
daemon_startup_retries = 0
daemon_smtp_ports = SMTP_PORT : TLS_PORT
tls_on_connect_ports = TLS_PORT
tls_advertise_hosts = *
tls_certificate = CERT_FILE
tls_privatekey = KEY_FILE
# No AUTH in clear text: only after STARTTLS, or on the implicit TLS port.
auth_advertise_hosts = ${if eq{$tls_in_cipher}{}{}{*}}

message_size_limit = 64M
# Every message of a connection is delivered at once, none left queued.
smtp_accept_queue_per_connection = 0
deliver_drop_privilege = true

acl_smtp_rcpt = acl_check_rcpt

begin acl

acl_check_rcpt:
  deny    local_parts = ^refused
          message = 5.1.1 no such user
  accept  domains = example.com
          hosts = 127.0.0.1
  deny    message = 5.7.1 relay not permitted

begin routers

example:
  driver = accept
  domains = example.com
  transport = maildir

begin transports

maildir:
  driver = appendfile
  maildir_format
  directory = WORKDIR/Maildir
  create_directory
  envelope_to_add
  return_path_add
  user = EXIM_USER
  group = EXIM_USER
  mode = 0644

begin authenticators

plain:
  driver = plaintext
  public_name = PLAIN
  server_prompts = :
  server_condition = ${if and {{eq{$auth2}{LOGIN_NAME}}{eq{$auth3}{LOGIN_PASSWORD}}}}
  server_set_id = $auth2

login:
  driver = plaintext
  public_name = LOGIN
  server_prompts = <| Username: | Password:
  server_condition = ${if and {{eq{$auth1}{LOGIN_NAME}}{eq{$auth2}{LOGIN_PASSWORD}}}}
  server_set_id = $auth1
"""


class Instance:
    def __init__(self, process, endpoints):
        self.process = process
        self.endpoints = endpoints

    def stop(self):
        # Receiving processes are forked children of the daemon, in its group.
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=10)


def start(workdir, cert, key):
    prefix = unpack("exim", PACKAGES)
    apt_install(LIBRARIES)
    user = ensure_user(EXIM_USER)
    exim = prefix / "root" / "usr" / "sbin" / "exim4"

    spool, logs, maildir = workdir / "spool", workdir / "log", workdir / "Maildir"
    for directory in (spool, logs, maildir, *(maildir / sub for sub in ("new", "cur", "tmp"))):
        directory.mkdir(parents=True, exist_ok=True)
        os.chown(directory, user.pw_uid, user.pw_gid)

    port = tls_port = free_port()
    while tls_port == port:
        tls_port = free_port()
    config = workdir / "exim.conf"
    macros = dict(EXIM_BINARY=exim, WORKDIR=workdir, SMTP_PORT=port, TLS_PORT=tls_port, CERT_FILE=cert,
                  KEY_FILE=key, EXIM_USER=EXIM_USER, LOGIN_NAME=USER, LOGIN_PASSWORD=PASSWORD)
    config.write_text("".join(f"{k} = {v}\n" for k, v in macros.items()) + CONFIG)

    check = subprocess.run([str(exim), "-C", str(config), "-bV"], capture_output=True, text=True,
                           timeout=30)
    if check.returncode != 0:
        reason = check.stderr.strip() or check.stdout.strip()
        raise StartError(f"exim -bV rejects {config}: {reason[-800:]}")

    mainlog = logs / "mainlog"
    console = open(workdir / "exim.out", "wb")
    process = subprocess.Popen([str(exim), "-C", str(config), "-bdf"], stdout=console,
                               stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                               start_new_session=True)
    console.close()
    instance = Instance(process, [])
    try:
        for p in (port, tls_port):
            wait_for_port(p, process=process, log=mainlog)
    except StartError as err:
        instance.stop()
        # Panics go to the mainlog too; exim.out has what came before the log opened.
        out = workdir / "exim.out"
        raise StartError(f"{err}{log_tail(out) if out.stat().st_size else ''}")
    except BaseException:
        instance.stop()  # never leave the daemon behind, whatever went wrong
        raise

    mailbox = Maildir(maildir, recipient_header="Envelope-to")
    instance.endpoints = [
        Endpoint("exim plain", port, "none", mailbox=mailbox),
        Endpoint("exim STARTTLS", port, "starttls", cert, ("plain", "login"), mailbox),
        Endpoint("exim implicit TLS", tls_port, "implicit", cert, ("plain", "login"), mailbox),
    ]
    return instance
