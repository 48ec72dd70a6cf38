"""netdiag telnet against hostile servers: the client's memory stays bounded.

Each test runs the client as a real process and reads its peak resident size
(VmHWM) once the server's flood is through and before the server lets it go.
(wait4's ru_maxrss would not do: it counts the forked test process too.)
Without the bounds, each of these servers drives the client far past the limit.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time

import pytest

from netdiag.telnet.protocol import DO, IAC, NOP, SB, SE, TTYPE, WILL
from tests.lab import netdiag_command
from tests.lab.servers import scripted_server

pytestmark = pytest.mark.timeout(60)

PEAK_RSS_LIMIT_MB = 64


def run_client(port: int, stdin=subprocess.DEVNULL, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        netdiag_command("telnet", "--telnet", "127.0.0.1", str(port)),
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )


def peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        line = next(line for line in status if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def read_until(stream, end: bytes) -> bytes:
    data = bytearray()
    while not data.endswith(end) and (byte := stream.read(1)):
        data += byte
    return bytes(data)


@pytest.mark.parametrize(
    "flood",
    [
        pytest.param(bytes([IAC, NOP]) * 8_000_000, id="16 MB of IAC NOP"),
        pytest.param(bytes([IAC, SB, TTYPE]) + b"x" * 48_000_000 + bytes([IAC, SE]), id="a 48 MB subnegotiation"),
    ],
)
def test_a_flood_of_commands_or_one_huge_subnegotiation(flood):
    measured = threading.Event()

    def flood_then_wait(conn, _):
        conn.sendall(flood + b"end\r\n")
        measured.wait(30)

    with scripted_server(flood_then_wait) as (port, _, _):
        client = run_client(port)
        try:
            shown = read_until(client.stdout, b"end\r\n")  # the flood is through
            peak_mb = peak_rss_mb(client.pid)
        finally:
            measured.set()
        stdout, stderr = client.communicate(timeout=10)
    assert shown + stdout == b"end\r\n"
    assert peak_mb <= PEAK_RSS_LIMIT_MB
    assert client.returncode == 0 and stderr == b""


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_until_idle(pid: int, timeout: float = 20) -> None:
    """Until the process stops using the CPU: it waits for the server."""
    deadline = time.monotonic() + timeout
    last = -1.0
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now = cpu_seconds(pid)
        if now == last:
            return
        last = now


def test_replies_to_a_server_that_does_not_read_them():
    """Terminal-type requests (6 bytes asking for 46) while the server reads
    nothing: the client stops reading it once its replies pile up, and all of
    them still arrive, in order, once the server reads."""
    terminal_type = "t" * 40
    answer = bytes([IAC, SB, TTYPE, 0]) + terminal_type.encode() + bytes([IAC, SE])
    count = 1_400_000  # 64 MB of answers
    requests = bytes([IAC, DO, TTYPE]) + bytes([IAC, SB, TTYPE, 1, IAC, SE]) * count
    expected = bytes([IAC, WILL, TTYPE]) + answer * count
    start_reading, measured = threading.Event(), threading.Event()

    def ask_without_reading(conn, received):
        sender = threading.Thread(target=conn.sendall, args=(requests,), daemon=True)
        sender.start()
        start_reading.wait(30)
        conn.settimeout(10)
        while len(received) < len(expected) and (data := conn.recv(1 << 20)):
            received.extend(data)
        sender.join(10)
        measured.wait(30)

    with scripted_server(ask_without_reading) as (port, received, done):
        client = run_client(port, stdin=subprocess.PIPE, env={"TERM": terminal_type})
        try:
            wait_until_idle(client.pid)  # unbounded, it would read the whole flood first
            start_reading.set()
            while not done.is_set() and len(received) < len(expected):
                time.sleep(0.05)
            peak_mb = peak_rss_mb(client.pid)
        finally:
            start_reading.set()
            measured.set()
        stdout, stderr = client.communicate(timeout=10)
    assert peak_mb <= PEAK_RSS_LIMIT_MB
    assert client.returncode == 0, stderr
    assert stdout == b""
    assert received == expected
