#!/usr/bin/env python3
"""A minimal authoritative DNS server over UDP for scripts/bench's MX run.

    dns_mx.py --listen 127.0.0.1:PORT [--domains 20]

dN.test (N = 1..domains) has MX 10 mx.dN.test.; mx.dN.test has A
127.0.0.(N+1). Every other type of those names is an empty answer (NOERROR),
every other name NXDOMAIN. A query's EDNS OPT record (in the additional
section) is skipped when parsing and answered with one of our own, as
resolvers that send it expect. Standard library only.
"""

import argparse
import socket
import struct

A, MX, OPT = 1, 15, 41


def read_name(packet, offset):
    labels = []
    while True:
        length = packet[offset]
        if length & 0xC0 == 0xC0:  # a pointer; not expected in a question
            pointer = struct.unpack_from("!H", packet, offset)[0] & 0x3FFF
            name, _ = read_name(packet, pointer)
            return labels + name, offset + 2
        offset += 1
        if length == 0:
            return labels, offset
        labels.append(packet[offset:offset + length].decode("ascii", "replace").lower())
        offset += length


def encode_name(labels):
    return b"".join(bytes([len(l)]) + l.encode("ascii") for l in labels) + b"\0"


def record(name_offset, rtype, ttl, rdata):
    return struct.pack("!HHHIH", 0xC000 | name_offset, rtype, 1, ttl, len(rdata)) + rdata


def answer(packet, domains):
    ident, flags, qdcount, _an, _ns, arcount = struct.unpack_from("!HHHHHH", packet)
    if qdcount != 1:
        return struct.pack("!HHHHHH", ident, 0x8000 | (flags & 0x0100) | 1, 0, 0, 0, 0)  # FORMERR
    labels, offset = read_name(packet, 12)
    qtype, qclass = struct.unpack_from("!HH", packet, offset)
    question = packet[12:offset + 4]
    # An OPT record among the additional ones: EDNS, answered in kind.
    has_opt = False
    pos = offset + 4
    for _ in range(arcount):
        _name, pos = read_name(packet, pos)
        rtype, _cls, _ttl, rdlen = struct.unpack_from("!HHIH", packet, pos)
        pos += 10 + rdlen
        has_opt |= rtype == OPT
    n = None
    answers = []
    if len(labels) in (2, 3) and labels[-1] == "test" and labels[-2].startswith("d") and labels[-2][1:].isdigit():
        n = int(labels[-2][1:])
        if not 1 <= n <= domains or (len(labels) == 3 and labels[0] != "mx"):
            n = None
    if n is not None and qclass == 1:
        if len(labels) == 2 and qtype == MX:
            answers.append(record(12, MX, 60, struct.pack("!H", 10) + encode_name(["mx", f"d{n}", "test"])))
        elif len(labels) == 3 and qtype == A:
            answers.append(record(12, A, 60, bytes([127, 0, 0, n + 1])))
    rcode = 0 if n is not None else 3
    # QR, AA, RD copied, RA.
    out_flags = 0x8000 | 0x0400 | (flags & 0x0100) | 0x0080 | rcode
    additional = [struct.pack("!BHHIH", 0, OPT, 1232, 0, 0)] if has_opt else []
    header = struct.pack("!HHHHHH", ident, out_flags, 1, len(answers), 0, len(additional))
    return header + question + b"".join(answers) + b"".join(additional)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--listen", required=True)
    parser.add_argument("--domains", type=int, default=20)
    args = parser.parse_args()
    host, _, port = args.listen.rpartition(":")
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host, int(port)))
    while True:
        packet, peer = sock.recvfrom(4096)
        try:
            sock.sendto(answer(packet, args.domains), peer)
        except (IndexError, struct.error, UnicodeError):
            continue  # not a query we can read: no answer


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
