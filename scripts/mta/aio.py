"""aiosmtpd (PyPI): plain, STARTTLS with AUTH, implicit TLS with AUTH.
It keeps what it received in memory, envelope included."""

import logging
import ssl
import subprocess
import sys
import time
from . import APT_TIMEOUT, PASSWORD, USER, Endpoint, Stored, free_port

# aiosmtpd logs a deprecation warning about its own use of Session.login_data.
logging.getLogger("mail.log").setLevel(logging.ERROR)


def ensure_installed():
    try:
        import aiosmtpd  # noqa: F401
    except ImportError:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "aiosmtpd"], check=True,
                       timeout=APT_TIMEOUT)


class Capture:
    def __init__(self):
        self.stored = []

    def clear(self):
        self.stored = []

    def messages(self, count, timeout=5):
        deadline = time.monotonic() + timeout
        while len(self.stored) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        if count == 0:
            time.sleep(0.2)
        return list(self.stored)


class Instance:
    def __init__(self, controllers, endpoints):
        self.controllers = controllers
        self.endpoints = endpoints

    def stop(self):
        for controller in self.controllers:
            controller.stop()


def start(workdir, cert, key):
    ensure_installed()
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    capture = Capture()

    class Handler:
        async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
            if address.startswith("refused"):
                return "550 5.1.1 no such user"
            envelope.rcpt_tos.append(address)
            return "250 OK"

        async def handle_DATA(self, server, session, envelope):
            capture.stored.append(Stored(envelope.mail_from, sorted(envelope.rcpt_tos),
                                         envelope.original_content))
            return "250 2.0.0 stored"

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (isinstance(auth_data, LoginPassword) and auth_data.login == USER.encode()
              and auth_data.password == PASSWORD.encode())
        return AuthResult(success=ok)

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(cert), str(key))
    common = dict(hostname="127.0.0.1", enable_SMTPUTF8=True, data_size_limit=64 * 1024 * 1024)
    plain = Controller(Handler(), port=free_port(), **common)
    starttls = Controller(Handler(), port=free_port(), tls_context=context, require_starttls=False,
                          authenticator=authenticator, auth_require_tls=True, **common)
    implicit = Controller(Handler(), port=free_port(), ssl_context=context,
                          authenticator=authenticator, auth_require_tls=False, **common)
    for controller in (plain, starttls, implicit):
        controller.start()
    endpoints = [
        Endpoint("aiosmtpd plain", plain.port, "none", mailbox=capture),
        Endpoint("aiosmtpd STARTTLS", starttls.port, "starttls", cert, ("plain", "login"), capture),
        Endpoint("aiosmtpd implicit TLS", implicit.port, "implicit", cert, ("plain", "login"), capture),
    ]
    return Instance([plain, starttls, implicit], endpoints)
