#!/usr/bin/env python3
"""The physical floor of a kernel-resolved sweep of an on-link network.

Sends one UDP datagram to every address of NETWORK from 16 sockets, as fast
as the kernel's neighbour table lets it: a send refused with ENOBUFS or
EAGAIN is tried again 1 ms later. Nothing is matched or waited for, so the
time until the last send, plus the probe timeout, is the least any tool
whose probes the kernel must resolve (ICMP, TCP, the system ping) can take.
Run inside scripts/netlab only: it sends to every address of NETWORK.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import ipaddress
import socket
import sys
import time

from benchlib import lab_segment_problem

IP_RECVERR = 11
SO_SNDBUFFORCE = 32
SOCKETS = 16


def floor(network: str) -> tuple[float, int]:
    """Seconds until every address had its datagram, and the sends refused."""
    sockets = []
    for _ in range(SOCKETS):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)  # report ENOBUFS to the sender
        with contextlib.suppress(OSError):  # past wmem_max needs CAP_NET_ADMIN
            sock.setsockopt(socket.SOL_SOCKET, SO_SNDBUFFORCE, 64 << 20)
        sock.setblocking(False)
        sockets.append(sock)
    refused = 0
    turn = 0
    start = time.monotonic()
    for address in ipaddress.ip_network(network).hosts():
        while True:
            sock = sockets[turn % SOCKETS]
            try:
                sock.sendto(b"x", (str(address), 9))
                turn += 1
                break
            except OSError as exc:
                if exc.errno in (errno.ENOBUFS, errno.EAGAIN):
                    refused += 1
                    time.sleep(0.001)
                    continue
                if exc.errno not in (errno.ECONNREFUSED, errno.EHOSTUNREACH):
                    raise
                _drain_errors(sock)  # an earlier datagram's ICMP error: this one was not sent
    elapsed = time.monotonic() - start
    for sock in sockets:
        sock.close()
    return elapsed, refused


def _drain_errors(sock: socket.socket) -> None:
    while True:
        try:
            sock.recvmsg(512, 512, socket.MSG_ERRQUEUE)
        except OSError:
            return


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("network")
    parser.add_argument("--timeout", type=float, default=1.0)
    args = parser.parse_args()
    problem = lab_segment_problem()
    if problem:
        print(f"neighbour_floor: {problem}; run inside scripts/netlab", file=sys.stderr)
        return 2
    elapsed, refused = floor(args.network)
    print(f"{elapsed + args.timeout:.3f} {elapsed:.3f} {refused}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
