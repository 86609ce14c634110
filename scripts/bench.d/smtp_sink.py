#!/usr/bin/env python3
"""A small SMTP sink for scripts/bench: what smtp-sink does, plus STARTTLS
and a delayed greeting.

    smtp_sink.py --listen ADDR:PORT [--listen ...] [--cert PEM --key PEM]
                 [--greet-delay SECONDS] [--log FILE]

EHLO advertises PIPELINING, 8BITMIME, SIZE (and STARTTLS with --cert);
MAIL, RCPT, DATA, RSET, NOOP, QUIT are answered, pipelined commands
included; message data is read and thrown away. With --log, one line per
accepted message: the local address it came in on (so that a test can check
which server got what). Standard library only (asyncio).
"""

import argparse
import asyncio
import ssl
import sys


class Sink:
    def __init__(self, context, delay, log):
        self.context = context
        self.delay = delay
        self.log = log

    async def session(self, reader, writer):
        try:
            local = writer.get_extra_info("sockname")[0]
            if self.delay:
                await asyncio.sleep(self.delay)
            writer.write(b"220 bench ESMTP sink\r\n")
            tls = False
            while True:
                line = await reader.readline()
                if not line:
                    return
                verb = line[:4].upper()
                if verb in (b"EHLO", b"HELO"):
                    if verb == b"HELO":
                        writer.write(b"250 bench\r\n")
                        continue
                    extensions = [b"PIPELINING", b"8BITMIME", b"SIZE 104857600"]
                    if self.context and not tls:
                        extensions.append(b"STARTTLS")
                    reply = [b"250-bench"] + [b"250-" + e for e in extensions[:-1]] + [b"250 " + extensions[-1]]
                    writer.write(b"\r\n".join(reply) + b"\r\n")
                elif verb == b"STAR" and line[:8].upper() == b"STARTTLS" and self.context and not tls:
                    writer.write(b"220 go ahead\r\n")
                    await writer.drain()
                    await writer.start_tls(self.context)
                    tls = True
                elif verb in (b"MAIL", b"RCPT", b"RSET", b"NOOP"):
                    writer.write(b"250 ok\r\n")
                elif verb == b"DATA":
                    writer.write(b"354 go on\r\n")
                    await writer.drain()
                    while True:
                        data = await reader.readline()
                        if not data:
                            return
                        if data == b".\r\n" or data == b".\n":
                            break
                    if self.log:
                        self.log.write(local + "\n")
                        self.log.flush()
                    writer.write(b"250 accepted\r\n")
                elif verb == b"QUIT":
                    writer.write(b"221 bye\r\n")
                    await writer.drain()
                    return
                else:
                    writer.write(b"502 unknown command\r\n")
                # Answers to pipelined commands go out together.
                if not reader._buffer:  # noqa: SLF001 - nothing more waiting
                    await writer.drain()
        except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError, OSError):
            pass
        finally:
            writer.close()


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--listen", action="append", required=True, help="ADDR:PORT, repeatable")
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--greet-delay", type=float, default=0.0)
    parser.add_argument("--log")
    args = parser.parse_args()
    context = None
    if args.cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.cert, args.key)
    log = open(args.log, "a", encoding="ascii") if args.log else None
    sink = Sink(context, args.greet_delay, log)
    servers = []
    for item in args.listen:
        host, _, port = item.rpartition(":")
        host = host.strip("[]")
        try:
            servers.append(await asyncio.start_server(sink.session, host, int(port), backlog=256, reuse_address=True))
        except OSError as err:
            # ::1 may be missing; an address that is asked for and missing
            # otherwise is fatal.
            if host == "::1":
                continue
            sys.exit(f"smtp_sink: cannot listen on {item}: {err}")
    await asyncio.gather(*(s.serve_forever() for s in servers))


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
