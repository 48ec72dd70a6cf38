"""The DNS client against a hostile server of the test's own, on 127.0.0.1
(no lab needed): every UDP answer truncated, TCP that accepts and never
answers. Threads stay bounded and the deadline holds."""

from __future__ import annotations

import socket
import struct
import threading
import time

from netdiag import dnsclient, records
from netdiag.records import Failure


def truncating_server() -> tuple[int, threading.Event]:
    """UDP on a port that answers every query with TC set and no records; TCP
    on the same port that accepts and says nothing."""
    stop = threading.Event()
    for _ in range(20):
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind(("127.0.0.1", 0))
        port = udp.getsockname()[1]
        try:
            tcp = socket.create_server(("127.0.0.1", port), backlog=1024)
            break
        except OSError:
            udp.close()
    held: list[socket.socket] = []

    def answer_udp() -> None:
        udp.settimeout(0.1)
        while not stop.is_set():
            try:
                query, peer = udp.recvfrom(4096)
            except OSError:
                continue
            ident, flags = struct.unpack_from("!HH", query)
            reply = struct.pack("!HHHHHH", ident, 0x8000 | 0x0200 | (flags & 0x0100), 1, 0, 0, 0) + query[12:]
            udp.sendto(reply, peer)

    def hold_tcp() -> None:
        tcp.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(tcp.accept()[0])
            except OSError:
                continue

    threading.Thread(target=answer_udp, daemon=True).start()
    threading.Thread(target=hold_tcp, daemon=True).start()
    return port, stop


def test_every_answer_truncated_costs_bounded_threads_and_holds_the_deadline():
    port, stop = truncating_server()
    try:
        command = dnsclient.parse_words([*(f"n{i}.hostile.test" for i in range(600)), f"@127.0.0.1:{port}"])
        options = dnsclient.QueryOptions()
        queries = dnsclient.build_queries([command], options, default_servers=command.servers, timeout=1.0)
        peak = threading.active_count()
        started = time.monotonic()
        outcomes = []
        for outcome in dnsclient.ask(queries, options, 1.0):
            outcomes.append(outcome)
            peak = max(peak, threading.active_count())
        elapsed = time.monotonic() - started
    finally:
        stop.set()
    assert len(records.in_order(outcomes, queries)) == 600
    assert all(isinstance(o, Failure) for o in outcomes)
    assert peak <= dnsclient.STREAM_WORKERS + 10, peak  # not a thread per truncated answer
    assert elapsed < 1.0 + dnsclient._GRACE_S + 0.5, elapsed
