"""Real SMTP servers for scripts/interop, one module each.

Every module exposes `start(workdir, cert, key) -> Instance`, where the
Instance has `.endpoints` (the table's columns) and `.stop()`. A server that
cannot be installed or started raises `StartError` with the reason; the
suite reports it as a failure, never as a silent skip.

What every server must do so that one scenario list fits them all:
- listen on 127.0.0.1 only, on ports from `free_port()`;
- accept mail for any local part at example.com, except local parts that
  start with "refused", which are refused at RCPT with a 5xx reply;
- accept messages of at least 20 MB (the 10 MB attachment is 13.7 MB as
  base64);
- offer AUTH (user "alice", password "s3cret") where the server can, and
  list the mechanisms in `Endpoint.auth`;
- store what it received where `Endpoint.mailbox` can read it back.
"""

import email
import email.policy
import os
import pwd
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
# Unpacked Debian packages live here, one folder per server, kept between
# runs (`cargo clean` removes them).
CACHE = ROOT / "target" / "interop"

USER, PASSWORD = "alice", "s3cret"

# Seconds an apt-get (or pip) run may take, lock waits included.
APT_TIMEOUT = 900


class StartError(Exception):
    """A server could not be installed or started; the message says why."""


@dataclass
class Stored:
    """One message as a server stored it: envelope sender, the sorted
    recipients it was delivered to, and the bytes of one stored copy."""

    sender: str
    recipients: list
    raw: bytes


@dataclass
class Endpoint:
    name: str  # the table's column title, e.g. "postfix STARTTLS"
    port: int
    tls: str  # "none", "starttls" or "implicit": postie's --tls
    ca_file: Path = None  # the CA postie must trust (None for tls "none")
    auth: tuple = ()  # mechanisms offered to alice, as postie's --auth names them
    mailbox: object = None  # has clear() and messages(count, timeout)
    # What it sends back to a sender in its own mailbox when a delivery
    # asked for NOTIFY=SUCCESS: None (nothing), "rfc3464" (a
    # multipart/report quoting ENVID and ORCPT as Original-Envelope-Id and
    # Original-Recipient) or "notice" (a delivery-status part without them).
    dsn_report: str = None
    notes: dict = field(default_factory=dict)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, timeout=20, process=None, log=None):
    """Wait until something accepts connections on the port; raise
    StartError with the log's tail if it never does or the process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise StartError(f"exited with {process.returncode}" + log_tail(log))
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise StartError(f"nothing listens on port {port} after {timeout}s" + log_tail(log))


def log_tail(path, lines=15):
    if not path or not Path(path).exists():
        return ""
    text = Path(path).read_text(errors="replace").strip().splitlines()
    return ":\n    " + "\n    ".join(text[-lines:])


def make_cert(directory):
    """A throwaway self-signed certificate for localhost and 127.0.0.1."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return cert, key


def unpack(name, packages):
    """Download Debian packages and unpack them side by side under
    target/interop/NAME (the MTA packages conflict with one another, so none
    is installed). Returns the prefix. Unpacked once, reused after."""
    prefix = CACHE / name
    stamp = prefix / ".unpacked"
    if stamp.exists() and stamp.read_text() == " ".join(packages):
        return prefix
    shutil.rmtree(prefix, ignore_errors=True)
    debs = prefix / "debs"
    debs.mkdir(parents=True)
    download = ["apt-get", "download", *packages]
    # Bounded: a mirror that stops answering must fail the run, not hang it.
    if subprocess.run(download, cwd=debs, capture_output=True, timeout=APT_TIMEOUT).returncode != 0:
        # A fresh machine may have no package lists yet.
        subprocess.run(["apt-get", "update", "-qq"], check=True, timeout=APT_TIMEOUT)
        done = subprocess.run(download, cwd=debs, capture_output=True, text=True, timeout=APT_TIMEOUT)
        if done.returncode != 0:
            raise StartError(f"apt-get download {' '.join(packages)}: {done.stderr.strip()}")
    for deb in sorted(debs.glob("*.deb")):
        subprocess.run(["dpkg", "-x", str(deb), str(prefix / "root")], check=True)
    stamp.write_text(" ".join(packages))
    return prefix


def apt_install(packages):
    """Install packages that conflict with nothing (libraries, Dovecot)."""
    missing = [p for p in packages
               if subprocess.run(["dpkg", "-s", p], capture_output=True).returncode != 0]
    if not missing:
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    # Waits for the dpkg lock rather than failing when another apt runs.
    command = ["apt-get", "-o", "DPkg::Lock::Timeout=300", "install", "-y", "-qq",
               "--no-install-recommends", *missing]
    if subprocess.run(command, env=env, capture_output=True, timeout=APT_TIMEOUT).returncode != 0:
        subprocess.run(["apt-get", "-o", "DPkg::Lock::Timeout=300", "update", "-qq"], check=True,
                       timeout=APT_TIMEOUT)
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=APT_TIMEOUT)
        if done.returncode != 0:
            raise StartError(f"apt-get install {' '.join(missing)}: {done.stderr.strip()[-500:]}")


def ensure_user(name, group=None, extra_groups=()):
    """A system user (and group) the server runs as; created when missing."""
    for g in [group, *extra_groups]:
        if g and subprocess.run(["getent", "group", g], capture_output=True).returncode != 0:
            subprocess.run(["groupadd", "--system", g], check=True)
    try:
        pwd.getpwnam(name)
    except KeyError:
        command = ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                   "--home-dir", "/nonexistent"]
        command += ["--gid", group] if group else ["--user-group"]
        subprocess.run([*command, name], check=True)
    for g in extra_groups:
        subprocess.run(["usermod", "-a", "-G", g, name], check=True)
    return pwd.getpwnam(name)


class Maildir:
    """Reads back what an MTA delivered into a Maildir. Each recipient gets
    its own copy; copies of one message (same Message-ID) are folded into
    one Stored whose recipients come from the header the MTA adds per copy
    (`recipient_header`, e.g. Delivered-To or Envelope-to) and whose sender
    comes from Return-Path."""

    def __init__(self, path, recipient_header="Delivered-To"):
        self.path = Path(path)
        self.recipient_header = recipient_header

    def _files(self):
        return sorted(p for sub in ("new", "cur") for p in (self.path / sub).glob("*") if p.is_file())

    def clear(self):
        for p in self._files():
            p.unlink()

    def _read(self):
        grouped = {}
        for p in self._files():
            raw = p.read_bytes()
            msg = email.message_from_bytes(raw, policy=email.policy.compat32)
            key = msg.get("Message-ID", p.name)
            sender = (msg.get("Return-Path") or "").strip().strip("<>")
            rcpt = (msg.get(self.recipient_header) or "").strip().strip("<>")
            stored = grouped.setdefault(key, Stored(sender, [], raw))
            if rcpt:
                stored.recipients.append(rcpt)
        for stored in grouped.values():
            stored.recipients.sort()
        return list(grouped.values())

    def messages(self, count, timeout=15, settle=0.5):
        """Wait until `count` messages with all their copies arrived (no
        new copy for `settle` seconds), or the timeout passed."""
        deadline = time.monotonic() + timeout
        seen, quiet_since = -1, time.monotonic()
        while True:
            files = len(self._files())
            if files != seen:
                seen, quiet_since = files, time.monotonic()
            now = time.monotonic()
            done = self._read() if files else []
            if (len(done) >= count and count > 0 and now - quiet_since >= settle) or now >= deadline:
                return done
            time.sleep(0.1)
