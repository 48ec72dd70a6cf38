"""netdiag listen against hostile clients: the server runs as its own process,
so its memory (VmHWM), CPU time and log are its alone."""

from __future__ import annotations

import contextlib
import os
import re
import selectors
import signal
import socket
import subprocess
import threading
import time

import pytest

from netdiag.limits import raise_descriptor_limit
from tests.lab import netdiag_command
from tests.lab.servers import fill_from

pytestmark = pytest.mark.timeout(60)
MB = 1024 * 1024


class Server:
    """``netdiag listen`` in a process of its own; its stderr is read as it
    comes (a log nobody reads would block it, and hide a busy loop)."""

    def __init__(self, *args: str, prefix: tuple[str, ...] = ()) -> None:
        self.process = subprocess.Popen(
            [*prefix, *netdiag_command("listen", "0", *args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        line = self.process.stdout.readline()
        match = re.fullmatch(r"listening on 127\.0\.0\.1 port (\d+) \(\w+\)\n", line)
        assert match, line + self.process.stderr.read()
        self.port = int(match.group(1))
        self.log: list[str] = []
        self._reader = threading.Thread(target=self._read_log, daemon=True)
        self._reader.start()

    def _read_log(self) -> None:
        for line in self.process.stderr:
            self.log.append(line)

    def status_kb(self, field: str) -> int:
        with open(f"/proc/{self.process.pid}/status") as f:
            return int(re.search(rf"^{field}:\s+(\d+) kB", f.read(), re.M).group(1))

    def peak_rss_mb(self) -> float:
        return self.status_kb("VmHWM") / 1024

    def cpu_seconds(self) -> float:
        with open(f"/proc/{self.process.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime

    def connect(self, source: str = "127.0.0.1", rcvbuf: int | None = None) -> socket.socket:
        sock = socket.socket()
        if rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.bind((source, 0))
        sock.settimeout(5)
        sock.connect(("127.0.0.1", self.port))
        return sock

    def stop(self) -> str:
        """SIGTERM; the whole log once it has exited."""
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(10)
        self._reader.join(5)
        return "".join(self.log)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@contextlib.contextmanager
def server(*args: str, prefix: tuple[str, ...] = ()):
    running = Server(*args, prefix=prefix)
    try:
        yield running
    finally:
        running.kill()


def echoes(sock: socket.socket, payload: bytes = b"still served\n") -> bool:
    sock.sendall(payload)
    received = b""
    while len(received) < len(payload):
        data = sock.recv(len(payload) - len(received))
        if not data:
            return False
        received += data
    return received == payload


def refused(sock: socket.socket) -> bool:
    """Closed by the server without a word (what a refusal looks like)."""
    sock.settimeout(2)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def fill(socks: list[socket.socket], seconds: float) -> int:
    """Send on every socket until none takes more (or time is up); never read."""
    selector = selectors.DefaultSelector()
    for sock in socks:
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_WRITE)
    chunk = b"x" * 65536
    sent, deadline, quiet_since = 0, time.monotonic() + seconds, time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - quiet_since < 1:
        for key, _ in selector.select(0.2):
            try:
                sent += key.fileobj.send(chunk)
                quiet_since = time.monotonic()
            except BlockingIOError:
                pass
            except OSError:
                selector.unregister(key.fileobj)
    selector.close()
    return sent


def test_a_thousand_clients_that_never_read_stay_within_the_memory_budget():
    raise_descriptor_limit()
    with server("--quiet") as listen:
        baseline = listen.peak_rss_mb()
        # Small receive windows: the bytes pile up in the server, not in the kernel.
        hogs = [listen.connect(f"127.0.{i // 250 + 1}.{i % 250 + 1}", rcvbuf=4096) for i in range(1000)]
        sent = fill(hogs, 20)
        assert sent > 1000 * MB  # enough for 1 MiB each: per-client limits alone would let a GB pile up
        with listen.connect() as polite:  # well over the budget, a client that reads is still served
            assert echoes(polite)
        peak = listen.peak_rss_mb()
        for sock in hogs:
            sock.close()
        listen.stop()
    assert peak - baseline < 64 + 32 + 16  # the budget, a 16 KiB read each, their sockets and clients


@pytest.mark.lab
def test_a_client_flooding_lookups_without_reading_is_held_to_its_share():
    with server("--mode", "lookup", "--quiet") as listen:
        baseline = listen.peak_rss_mb()
        hog = listen.connect()
        flood = b"127.1.0.10\n" * 2_000_000  # 22 MB of queries, answers never read
        sent = fill_from(hog, flood, 10)
        assert sent < len(flood)  # the server stopped reading long before the end
        for _ in range(3):  # and everyone else is answered at once
            with listen.connect("127.0.0.2") as other:
                start = time.monotonic()
                other.sendall(b"mail.lab.test\n")
                assert other.recv(100) == b"mail.lab.test: 127.1.0.25\r\n"
                assert time.monotonic() - start < 2  # a starved client would wait for ever
        peak = listen.peak_rss_mb()
        hog.close()
        listen.stop()
    assert peak - baseline < 16  # a 1 MiB output buffer and 64 queries, not millions


def test_slow_connections_from_one_address_cannot_lock_others_out():
    raise_descriptor_limit()
    with server("--max-clients", "300", "--first-data-timeout", "1", "--quiet") as listen:
        baseline = listen.peak_rss_mb()
        opened = time.monotonic()
        silent = [listen.connect() for _ in range(600)]  # all from 127.0.0.1, never a byte
        turned_away = wait_closed(silent, 344, 5)
        assert len(turned_away) == 600 - 256  # the default --max-per-source
        with listen.connect("127.0.0.2") as other:  # the slots left are everyone else's
            assert echoes(other)
        kept = [sock for sock in silent if sock not in turned_away]
        assert len(wait_closed(kept, 256, 5)) == 256  # closed for saying nothing
        assert 1 <= time.monotonic() - opened < 6
        with listen.connect() as again:  # and that address is welcome again
            assert echoes(again)
        peak = listen.peak_rss_mb()
        for sock in silent:
            sock.close()
        log = listen.stop()
    assert "served 258 connections (344 refused, peak 257 at once)" in log
    assert peak - baseline < 16


def wait_closed(socks: list[socket.socket], count: int, seconds: float) -> set[socket.socket]:
    """The sockets the server has closed, once ``count`` are (or time is up)."""
    selector = selectors.DefaultSelector()
    for sock in socks:
        selector.register(sock, selectors.EVENT_READ)
    closed: set[socket.socket] = set()
    deadline = time.monotonic() + seconds
    while len(closed) < count and time.monotonic() < deadline:
        for key, _ in selector.select(0.1):
            selector.unregister(key.fileobj)
            if refused(key.fileobj):
                closed.add(key.fileobj)
    selector.close()
    return closed


def test_out_of_descriptors_the_server_refuses_and_backs_off_instead_of_spinning():
    with server(prefix=("prlimit", "--nofile=64:64", "--")) as listen:
        clients = [listen.connect() for _ in range(100)]
        turned_away = wait_closed(clients, 100, 1.5)  # the rest are served: this waits it out
        served = [sock for sock in clients if sock not in turned_away]
        assert 20 < len(served) < 64 and len(turned_away) == 100 - len(served)
        cpu, lines = listen.cpu_seconds(), len(listen.log)
        time.sleep(2)
        assert listen.cpu_seconds() - cpu < 0.5  # no busy loop on accept() (that burns the whole 2 s)
        assert len(listen.log) == lines  # and no line per attempt
        assert all(echoes(sock) for sock in served[:5])
        for sock in served[:10]:  # descriptors come back: so do new clients
            sock.close()
        time.sleep(0.2)
        with listen.connect() as late:
            assert echoes(late)
        for sock in clients:
            sock.close()
        log = listen.stop()
    assert log.count("out of file descriptors") == 1
    assert f"served {len(served) + 1} connections ({len(turned_away)} refused" in log
