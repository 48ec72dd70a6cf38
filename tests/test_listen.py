"""netdiag listen with real sockets on loopback."""

from __future__ import annotations

import json
import os
import re
import selectors
import signal
import socket
import subprocess
import threading
import time
from contextlib import contextmanager

import pytest

from netdiag.errors import BadInput
from netdiag.listen import HIGH_WATER, READ_SIZE, Listener, ListenOptions
from tests.lab import netdiag_command


@contextmanager
def serving(**options):
    events = []
    listener = Listener(ListenOptions(**options), events.append)
    thread = threading.Thread(target=listener.serve, daemon=True)
    thread.start()
    try:
        yield listener, events
    finally:
        listener.stop.set()
        thread.join(5)
        assert not thread.is_alive()


def connect(listener: Listener) -> socket.socket:
    return socket.create_connection((listener.address, listener.port), timeout=5)


def recv_until_closed(sock: socket.socket) -> bytes:
    chunks = []
    while data := sock.recv(65536):
        chunks.append(data)
    return b"".join(chunks)


def test_echo_returns_every_byte_then_closes_after_half_close():
    payload = bytes(range(256)) * 4096 + os.urandom(300_000)
    with serving() as (listener, events):
        sock = connect(listener)
        sender = threading.Thread(target=lambda: (sock.sendall(payload), sock.shutdown(socket.SHUT_WR)))
        sender.start()
        echoed = recv_until_closed(sock)
        sender.join()
        sock.close()
    assert echoed == payload
    closes = [e for e in events if e.kind == "close"]
    assert closes and closes[0].stats.received == len(payload) == closes[0].stats.sent


def test_discard_reads_and_sends_nothing():
    with serving(mode="discard") as (listener, events):
        sock = connect(listener)
        sock.sendall(b"x" * 100_000)
        sock.shutdown(socket.SHUT_WR)
        assert recv_until_closed(sock) == b""
        sock.close()
        wait_for(lambda: any(e.kind == "close" for e in events))
    assert next(e for e in events if e.kind == "close").stats.received == 100_000


def test_banner_is_sent_then_the_connection_closed():
    with serving(mode="banner", banner="SSH-2.0-netdiag test") as (listener, _):
        sock = connect(listener)
        assert recv_until_closed(sock) == b"SSH-2.0-netdiag test\r\n"
        sock.close()


@pytest.mark.lab
def test_lookup_answers_each_line_even_after_half_close():
    with serving(mode="lookup") as (listener, _):
        sock = connect(listener)
        sock.sendall(b"web.lab.test\n127.1.0.66\nnope.lab.test\n")
        sock.shutdown(socket.SHUT_WR)  # answers still come: lookups were pending
        lines = sorted(recv_until_closed(sock).decode().splitlines())
        sock.close()
    assert lines == sorted(
        [
            "web.lab.test: 127.1.0.10 fd00:1ab:1::10",
            "127.1.0.66: liar.lab.test (NOT confirmed)",
            "nope.lab.test: no such name (NXDOMAIN)",
        ]
    )


def test_hundreds_of_concurrent_clients_each_get_their_own_bytes():
    count = 600  # with the test's own sockets: well past select()'s 1,024 descriptors
    with serving() as (listener, _):
        selector = selectors.DefaultSelector()
        expected, received = {}, {}
        for i in range(count):
            sock = connect(listener)
            sock.setblocking(False)
            expected[sock] = f"client {i} ".encode() * (i % 50 + 1)
            received[sock] = bytearray()
            sock.send(expected[sock])
            selector.register(sock, selectors.EVENT_READ)
        deadline = time.monotonic() + 30
        while any(len(received[s]) < len(expected[s]) for s in expected) and time.monotonic() < deadline:
            for key, _ in selector.select(1):
                received[key.fileobj] += key.fileobj.recv(65536)
        assert listener.summary.peak_clients == count
        for sock, payload in expected.items():
            assert bytes(received[sock]) == payload
            sock.close()
        selector.close()


def test_a_client_that_never_reads_cannot_grow_memory_or_disturb_others():
    with serving() as (listener, _):
        hog = connect(listener)
        hog.setblocking(False)
        chunk = b"z" * 65536
        sent, stalled_since = 0, None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # push until the server stops taking bytes
            try:
                sent += hog.send(chunk)
                stalled_since = None
            except BlockingIOError:
                stalled_since = stalled_since or time.monotonic()
                if time.monotonic() - stalled_since > 0.5:
                    break
                time.sleep(0.01)
        buffered = max(len(c.out) for c in listener.clients.values())
        assert buffered <= HIGH_WATER + READ_SIZE
        assert sent < 64 * 1024 * 1024  # the kernel buffers fill, then the server stops reading
        other = connect(listener)  # meanwhile everyone else is served as usual
        other.sendall(b"still here")
        assert other.recv(100) == b"still here"
        other.close()
        hog.close()


def test_max_clients_refuses_the_excess():
    with serving(max_clients=2) as (listener, events):
        first, second = connect(listener), connect(listener)
        first.sendall(b"1")
        assert first.recv(1) == b"1"
        third = connect(listener)
        assert recv_until_closed(third) == b""
        second.sendall(b"2")
        assert second.recv(1) == b"2"  # the first two are unaffected
        for s in (first, second, third):
            s.close()
    assert [e.detail for e in events if e.kind == "refused"] == ["--max-clients reached"]


def test_idle_clients_are_closed():
    with serving(idle_timeout=0.3) as (listener, events):
        sock = connect(listener)
        start = time.monotonic()
        assert recv_until_closed(sock) == b""
        assert time.monotonic() - start < 3
        sock.close()
    assert any(e.kind == "close" and "idle" in e.stats.reason for e in events)


def wait_for(condition, seconds: float = 5) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.01)


def test_port_zero_picks_a_free_port_and_the_host_defaults_to_loopback():
    with serving() as (listener, events):
        assert listener.address == "127.0.0.1" and listener.port > 0
        wait_for(lambda: events)  # the serving thread reports it
        assert events[0].kind == "listening" and events[0].port == listener.port


def test_bad_options():
    with pytest.raises(BadInput, match="--mode"):
        ListenOptions(mode="chargen").validate()
    with pytest.raises(BadInput, match="needs --banner"):
        ListenOptions(mode="banner").validate()
    with socket.create_server(("127.0.0.1", 0)) as taken, pytest.raises(BadInput, match="already in use"):
        Listener(ListenOptions(port=taken.getsockname()[1]))


def start_cli(*args: str) -> tuple[subprocess.Popen, int]:
    process = subprocess.Popen(
        netdiag_command("listen", *args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    line = process.stdout.readline()
    match = re.fullmatch(r"listening on 127\.0\.0\.1 port (\d+) \((\w+)\)\n", line)
    assert match, line
    return process, int(match.group(1))


def test_cli_logs_connections_and_ctrl_c_closes_with_a_summary():
    process, port = start_cli("0", "--mode", "echo")
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"ping")
        assert sock.recv(4) == b"ping"
    time.sleep(0.3)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=10)
    assert process.returncode == 130
    assert "Traceback" not in stderr
    assert re.search(r"\+ 127\.0\.0\.1 port \d+ connected", stderr)
    assert re.search(r"- 127\.0\.0\.1 closed \(client closed\): 4 bytes in, 4 out", stderr)
    assert "served 1 connections (0 refused, peak 1 at once); 4 bytes in, 4 out" in stderr


def test_cli_sigterm_stops_cleanly():
    process, _ = start_cli("0", "--quiet")
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=10)
    assert process.returncode == 0 and "served 0 connections" in stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--mode", "bogus"], "--mode must be one of"), (["--mode", "banner"], "needs --banner"), (["70000"], "port")],
)
def test_cli_bad_input(args, message):
    result = subprocess.run(netdiag_command("listen", *args), capture_output=True, text=True, timeout=10, check=False)
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_cli_json_events():
    process = subprocess.Popen(
        netdiag_command("listen", "--json"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    listening = json.loads(process.stdout.readline())
    assert listening["event"] == "listening" and listening["mode"] == "echo"
    with socket.create_connection(("127.0.0.1", listening["port"])) as sock:
        sock.sendall(b"abc")
        assert sock.recv(3) == b"abc"
    time.sleep(0.3)
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=10)
    events = [json.loads(line) for line in stdout.splitlines()]
    assert [e["event"] for e in events] == ["open", "close", "summary"]
    assert (events[1]["received"], events[1]["sent"], events[1]["reason"]) == (3, 3, "client closed")
    assert events[2]["connections"] == 1 and events[2]["interrupted"] is False
    assert stderr == ""
