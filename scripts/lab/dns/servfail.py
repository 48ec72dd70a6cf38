"""servfail: a DNS server that answers SERVFAIL to every query, at once, over UDP and TCP.

usage: servfail.py ADDRESS PIDFILE

Listens on ADDRESS port 53 and returns, leaving a daemon (its pid in PIDFILE) that
serves until it is killed. The answer carries the query's id, opcode, RD and
question (when there is one question that parses); RA is set. Anything that is
not a query (too short, or a response) gets no answer. Standard library only.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import socket
import sys

SERVFAIL = 2


def answer(query: bytes) -> bytes | None:
    if len(query) < 12 or query[2] & 0x80:
        return None
    question = b""
    if query[4:6] == b"\x00\x01":
        end = 12
        while end < len(query) and 0 < query[end] < 64:
            end += 1 + query[end]
        if end + 5 <= len(query) and query[end] == 0:
            question = query[12 : end + 5]
    flags = bytes([0x80 | (query[2] & 0x79), 0x80 | SERVFAIL])  # QR, opcode and RD; RA, rcode
    counts = (b"\x00\x01" if question else b"\x00\x00") + bytes(6)
    return query[:2] + flags + counts + question


def answer_udp(udp: socket.socket) -> None:
    with contextlib.suppress(OSError):
        query, peer = udp.recvfrom(65535)
        reply = answer(query)
        if reply:
            udp.sendto(reply, peer)


def answer_tcp(conn: socket.socket, buffers: dict[socket.socket, bytes]) -> bool:
    """Answer the whole queries read so far; False once the connection is over."""
    try:
        data = conn.recv(65537)
        buffer = buffers[conn] + data
        while len(buffer) >= 2 and len(buffer) >= 2 + int.from_bytes(buffer[:2], "big"):
            size = 2 + int.from_bytes(buffer[:2], "big")
            reply = answer(buffer[2:size])
            buffer = buffer[size:]
            if reply:
                conn.sendall(len(reply).to_bytes(2, "big") + reply)
    except OSError:
        return False
    buffers[conn] = buffer
    return bool(data)


def serve(udp: socket.socket, tcp: socket.socket) -> None:
    selector = selectors.DefaultSelector()
    selector.register(udp, selectors.EVENT_READ)
    selector.register(tcp, selectors.EVENT_READ)
    buffers: dict[socket.socket, bytes] = {}
    while True:
        for key, _ in selector.select():
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            if sock is udp:
                answer_udp(udp)
            elif sock is tcp:
                with contextlib.suppress(OSError):
                    conn, _ = tcp.accept()
                    conn.settimeout(2)  # a client that does not read its answers holds up the rest for 2 s at most
                    selector.register(conn, selectors.EVENT_READ)
                    buffers[conn] = b""
            elif not answer_tcp(sock, buffers):
                selector.unregister(sock)
                del buffers[sock]
                sock.close()


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    address, pidfile = argv
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind((address, 53))
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind((address, 53))
    tcp.listen(64)
    pid = os.fork()
    if pid:
        with open(pidfile, "w") as file:
            file.write(f"{pid}\n")
        return 0
    os.setsid()
    os.chdir("/")
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    serve(udp, tcp)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
