"""netdiag telnet checked against the reference tools, in the lab.

- Piped, against OpenBSD netcat (Debian's netcat-openbsd, ``nc -N``: it shuts
  its write side at the end of its input, as netdiag does): the same servers,
  the same input; netdiag must deliver exactly what nc delivers and exit as
  it does.
- Interactive, against a real telnetd (Debian's inetutils-telnetd, running a
  shell as inetd would), through a pseudo-terminal: what the screen shows.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass

import pexpect
import pytest

from tests.lab import netdiag_command
from tests.lab.servers import read_all, scripted_server

pytestmark = [pytest.mark.lab, pytest.mark.timeout(60)]

TELNETD = "/usr/sbin/telnetd"


def openbsd_netcat() -> str | None:
    """Why nc cannot serve as the reference here (None when it can)."""
    if shutil.which("nc") is None:
        return "nc is not installed (Debian package netcat-openbsd)"
    usage = subprocess.run(["nc", "-h"], capture_output=True, text=True, check=False)
    if "OpenBSD netcat" not in usage.stdout + usage.stderr:
        return "nc is not OpenBSD netcat (Debian package netcat-openbsd)"
    return None


needs_nc = pytest.mark.skipif(openbsd_netcat() is not None, reason=openbsd_netcat() or "")
needs_telnetd = pytest.mark.skipif(
    not os.access(TELNETD, os.X_OK), reason=f"{TELNETD} is not installed (Debian package inetutils-telnetd)"
)

NC = ["nc", "-N"]
NETDIAG = netdiag_command("telnet")


@dataclass
class Outcome:
    stdout: bytes
    status: int
    server_received: bytes
    ended_with_input_open: bool = False


def run_piped(client: list[str], script, stdin: bytes, input_open_for: float | None = None) -> Outcome:
    """One client against a fresh server running ``script``. The input ends
    after ``stdin``, or with ``input_open_for``, that many seconds later."""
    with scripted_server(script) as (port, received, done):
        process = subprocess.Popen(
            [*client, "127.0.0.1", str(port)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        stdout = bytearray()
        readers = [
            threading.Thread(target=lambda: stdout.extend(process.stdout.read()), daemon=True),
            threading.Thread(target=process.stderr.read, daemon=True),
        ]
        for reader in readers:
            reader.start()
        with contextlib.suppress(OSError):  # the client left before reading it all
            process.stdin.write(stdin)
            process.stdin.flush()
        ended_with_input_open = False
        if input_open_for is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(input_open_for)
                ended_with_input_open = True
        with contextlib.suppress(OSError):
            process.stdin.close()
        status = process.wait(10)
        for reader in readers:
            reader.join(5)
        done.wait(5)
    return Outcome(bytes(stdout), status, bytes(received), ended_with_input_open)


def echo(conn, received):
    conn.settimeout(10)
    while data := conn.recv(65536):
        received.extend(data)
        conn.sendall(data)


# --- piped, against nc ----------------------------------------------------------------


@needs_nc
@pytest.mark.parametrize("mode", [[], ["--raw"]], ids=["default", "raw"])
def test_byte_exact_both_ways_like_nc(mode):
    payload = os.urandom(2_000_000) + b"\xff" * 1000 + bytes(range(256)) * 64 + b"\r\n\r\0\xff\xfd\x01"
    reference = run_piped(NC, echo, payload)
    ours = run_piped([*NETDIAG, *mode], echo, payload)
    assert reference.stdout == payload and reference.server_received == payload  # nc itself is exact
    assert ours.stdout == reference.stdout
    assert ours.server_received == reference.server_received
    assert ours.status == reference.status == 0


def answer_after_the_input_ends(conn, received):
    read_all(conn, received)  # until the client's FIN
    time.sleep(0.2)
    conn.sendall(b"got %d bytes\n" % len(received) + bytes(range(256)))


@needs_nc
def test_input_ends_first_then_the_server_answers_and_closes_like_nc():
    payload = os.urandom(500_000)
    reference = run_piped(NC, answer_after_the_input_ends, payload)
    ours = run_piped(NETDIAG, answer_after_the_input_ends, payload)
    assert reference.stdout == b"got 500000 bytes\n" + bytes(range(256))
    assert ours.stdout == reference.stdout
    assert ours.server_received == reference.server_received == payload
    assert ours.status == reference.status == 0


def greet_and_close(conn, received):
    conn.sendall(b"220 lab.test closing now\r\n")
    time.sleep(0.2)  # the client's input arrives and is left unread: the close is a reset


def answer_a_line_and_close(conn, received):
    conn.settimeout(10)
    while b"\n" not in received and (data := conn.recv(65536)):
        received.extend(data)
    conn.sendall(b"250 got your line, bye\r\n")  # and a plain close: all the input was read


@needs_nc
@pytest.mark.parametrize(
    ("script", "stdin"),
    [
        (greet_and_close, b"".join(b"line %d\n" % n for n in range(20_000))),  # still sending
        (answer_a_line_and_close, b"HELO lab.test\n"),  # nothing more to send, but no end of input
    ],
    ids=["reset", "close"],
)
def test_the_server_closes_first_while_the_input_is_still_open_like_nc(script, stdin):
    reference = run_piped(NC, script, stdin, input_open_for=1.5)
    ours = run_piped(NETDIAG, script, stdin, input_open_for=1.5)
    assert reference.stdout.endswith(b"\r\n")
    assert ours.stdout == reference.stdout
    assert ours.status == reference.status == 0
    # One difference, on purpose: after a plain close, nc waits for the end of
    # its input (then exits 0); netdiag ends with the connection, as telnet does.
    assert ours.ended_with_input_open


# --- interactive, against inetutils telnetd ----------------------------------------------


@contextmanager
def telnetd():
    """telnetd running a shell, started per connection as inetd does (the
    socket is its stdin and stdout). Yields the port."""
    server = socket.create_server(("127.0.0.1", 0))
    daemons: list[subprocess.Popen] = []

    def serve():
        with contextlib.suppress(OSError):  # the listening socket closed: done
            while True:
                conn, _ = server.accept()
                with conn:
                    daemons.append(
                        subprocess.Popen([TELNETD, "-h", "-E", "/bin/sh"], stdin=conn, stdout=conn, stderr=conn)
                    )

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        server.close()
        for daemon in daemons:
            if daemon.poll() is None:
                daemon.terminate()
            daemon.wait(5)


PROMPT = "lab> "


@needs_telnetd
def test_a_shell_session_on_inetutils_telnetd():
    with telnetd() as port:
        command = ["-m", "netdiag", "telnet", "127.0.0.1", str(port)]
        child = pexpect.spawn(sys.executable, command, timeout=10, env={**os.environ, "TERM": "xterm"})
        child.setwinsize(31, 97)
        screen = bytearray()  # everything the terminal was given
        child.logfile_read = _Collect(screen)
        child.expect_exact(f"Connected to 127.0.0.1 (127.0.0.1) port {port}.")
        child.expect(r"[#$] ")  # the shell's own prompt
        child.sendline('PS1="$(echo la)b> "')  # the echoed command line does not match the prompt
        child.expect_exact(PROMPT)

        child.sendline("stty size; echo $((6 * 7))")
        child.expect(r"\n31 97\r+\n42\r+\n")  # NAWS gave the shell our window size
        child.expect_exact(PROMPT)
        child.setwinsize(40, 100)  # and a change of size reaches it too
        time.sleep(0.8)
        child.sendline("stty size")
        child.expect(r"\n40 100\r+\n")
        child.expect_exact(PROMPT)

        for command in ("sleep 30", "cat"):  # Ctrl-C: telnetd sends IAC as urgent data, then DM
            child.sendline(command)
            time.sleep(0.5)
            start = len(screen)
            child.sendcontrol("c")
            child.expect_exact(PROMPT, timeout=5)
            interrupted = bytes(screen[start:])
            assert b"^C" in interrupted
            assert b"\\xf2" not in interrupted and b"\xf2" not in interrupted, interrupted

        child.sendline("exit")
        child.expect_exact("Connection closed by foreign host.")
        child.expect(pexpect.EOF)
        child.close()
    assert child.exitstatus == 0
    assert not re.search(rb"\\x[0-9a-f]{2}|\\e", bytes(screen)), "no stray byte or sequence on the screen"


class _Collect:
    """A pexpect log file that keeps what the terminal was given."""

    def __init__(self, into: bytearray) -> None:
        self.into = into

    def write(self, data: bytes) -> None:
        self.into.extend(data)

    def flush(self) -> None:
        pass
