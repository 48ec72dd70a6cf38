"""farlink: the far resolver's link to the lab, 10 ms of delay each way.

usage: farlink.py LAB_IF PEER_IF DELAY_MS UPSTREAM PIDFILE

The far segment would be a veth pair with `tc qdisc ... netem delay 10ms` on both
ends, but netem is not in every kernel (this lab's machine has neither sch_netem
nor sch_prio). This is the same link in user space: two TUN devices, LAB_IF and
PEER_IF (which scripts/lab/dns.sh moves into the far namespace), and every packet
read from one is written to the other DELAY_MS later, in order: pings and DNS
alike see a round trip of twice DELAY_MS.

One exception keeps each query one round trip away: the far forwarder's own
queries to UPSTREAM port 53 (the lab resolver, on LAB_IF's address) and their
answers cross at once, as if it had a second, fast link to its upstream.

Returns once both devices exist, leaving a daemon (its pid in PIDFILE) that relays
until it is killed; the devices go with it. Standard library only.
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import os
import select
import socket
import struct
import sys
import time

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
DNS_PORT = b"\x00\x35"


def open_tun(name: str) -> int:
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    return fd


def to_or_from_upstream(packet: bytes, upstream: bytes, *, query: bool) -> bool:
    """Whether an IPv4 UDP or TCP packet is a query to UPSTREAM:53 (query=True),
    or an answer from it (query=False)."""
    if len(packet) < 20 or packet[0] >> 4 != 4 or packet[9] not in {socket.IPPROTO_TCP, socket.IPPROTO_UDP}:
        return False
    if int.from_bytes(packet[6:8], "big") & 0x1FFF:  # a later fragment: no ports
        return False
    ports = (packet[0] & 0x0F) * 4
    if query:
        return packet[16:20] == upstream and packet[ports + 2 : ports + 4] == DNS_PORT
    return packet[12:16] == upstream and packet[ports : ports + 2] == DNS_PORT


def send(fd: int, packet: bytes) -> None:
    with contextlib.suppress(OSError):  # the device is down or its queue full: lost, as on a wire
        os.write(fd, packet)


def relay(lab: int, peer: int, delay: float, upstream: bytes) -> None:
    other = {lab: peer, peer: lab}
    queues: dict[int, collections.deque[tuple[float, bytes]]] = {lab: collections.deque(), peer: collections.deque()}
    while True:
        now = time.monotonic()
        timeout = None
        for fd, queue in queues.items():
            while queue and queue[0][0] <= now:
                send(fd, queue.popleft()[1])
            if queue:
                wait = queue[0][0] - now
                timeout = wait if timeout is None else min(timeout, wait)
        readable, _, _ = select.select([lab, peer], [], [], timeout)
        now = time.monotonic()
        for source in readable:
            target = other[source]
            while True:
                try:
                    packet = os.read(source, 65536)
                except BlockingIOError:
                    break
                if to_or_from_upstream(packet, upstream, query=source == peer):
                    send(target, packet)
                else:
                    queues[target].append((now + delay, packet))


def main(argv: list[str]) -> int:
    if len(argv) != 5:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    lab_if, peer_if, delay_ms, upstream, pidfile = argv
    lab, peer = open_tun(lab_if), open_tun(peer_if)
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
    relay(lab, peer, float(delay_ms) / 1000, socket.inet_aton(upstream))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
