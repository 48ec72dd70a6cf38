"""Servers for tests of clients: netdiag's own listener in a thread, and a
one-connection server that runs a script."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from contextlib import contextmanager

from netdiag.listen import Listener, ListenOptions


@contextmanager
def listener(**options):
    server = Listener(ListenOptions(**options))
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        thread.join(5)
        assert not thread.is_alive(), "the listener did not stop"


@contextmanager
def scripted_server(script, tls_context: ssl.SSLContext | None = None):
    """A one-connection server running ``script(conn, received)``; ``received``
    collects everything the client sent."""
    server = socket.create_server(("127.0.0.1", 0))
    received = bytearray()
    done = threading.Event()

    def run():
        conn, _ = server.accept()
        if tls_context is not None:
            try:
                conn = tls_context.wrap_socket(conn, server_side=True)
            except (ssl.SSLError, OSError):
                conn.close()
                done.set()
                return
        with conn:
            script(conn, received)
        done.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1], received, done
    finally:
        server.close()


def read_all(conn, received) -> None:
    conn.settimeout(10)
    while data := conn.recv(65536):
        received.extend(data)


def fill_from(sock: socket.socket, data: bytes, seconds: float) -> int:
    """Send ``data`` until the peer stops taking it for a second (or time is up)."""
    sock.setblocking(False)
    view, sent = memoryview(data), 0
    deadline, quiet_since = time.monotonic() + seconds, time.monotonic()
    while sent < len(data) and time.monotonic() < deadline and time.monotonic() - quiet_since < 1:
        try:
            sent += sock.send(view[sent : sent + 65536])
            quiet_since = time.monotonic()
        except BlockingIOError:
            time.sleep(0.01)
    return sent
