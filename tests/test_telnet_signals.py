"""netdiag telnet on a pseudo-terminal: no signal leaves the terminal in its mode.

The client runs straight on the pty, with no shell in between: bash restores
the terminal itself when a child dies of a signal, which would hide the bug.
The test reads the pty's modes with termios.
"""

from __future__ import annotations

import os
import signal
import subprocess
import termios
import threading
import time
from contextlib import contextmanager

import pytest

from tests.lab import netdiag_command
from tests.lab.servers import listener

pytestmark = pytest.mark.timeout(30)


def wait_for(condition, what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.02)


def in_character_mode(fd: int) -> bool:
    return not termios.tcgetattr(fd)[3] & termios.ICANON


def stopped(pid: int) -> bool:
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0] == "T"


@contextmanager
def client_on_a_pty(*args: str):
    """The client in character mode on a fresh pty, in a process group of its
    own (so that a stop signal does stop it); yields (client, pty, modes before,
    what it wrote) once character mode is on."""
    master, terminal = os.openpty()
    before = termios.tcgetattr(terminal)
    shown = bytearray()

    def drain():
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:  # EIO: no one has the pty open any more
                return
            if not data:
                return
            shown.extend(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    with listener() as server:
        client = subprocess.Popen(
            netdiag_command("telnet", "--char", *args, "127.0.0.1", str(server.port)),
            stdin=terminal,
            stdout=terminal,
            stderr=terminal,
            process_group=0,
        )
        try:
            wait_for(lambda: in_character_mode(terminal), "the client sets character mode")
            yield client, terminal, before, shown
        finally:
            if client.poll() is None:
                client.kill()
                client.wait()
            os.close(terminal)
            reader.join(5)
            os.close(master)


@pytest.mark.parametrize(
    "signum", [signal.SIGHUP, signal.SIGTERM, signal.SIGQUIT, signal.SIGUSR1], ids=lambda signum: signum.name
)
def test_a_signal_that_ends_the_client_restores_the_terminal(signum):
    with client_on_a_pty() as (client, terminal, before, shown):
        os.kill(client.pid, signum)
        assert client.wait(10) == 128 + signum
        assert termios.tcgetattr(terminal) == before
    assert b"Traceback" not in shown and b"internal error" not in shown


def test_suspend_gives_the_terminal_back_and_continue_takes_it_again():
    with client_on_a_pty() as (client, terminal, before, _):
        os.kill(client.pid, signal.SIGTSTP)
        wait_for(lambda: stopped(client.pid), "the client stops")
        assert termios.tcgetattr(terminal) == before
        os.kill(client.pid, signal.SIGCONT)
        wait_for(lambda: in_character_mode(terminal), "the client takes the terminal again")
        os.kill(client.pid, signal.SIGTERM)
        assert client.wait(10) == 128 + signal.SIGTERM
        assert termios.tcgetattr(terminal) == before


def test_the_terminal_hanging_up_ends_the_client_quietly():
    """The terminal window closes: its pty is gone (nothing left to restore) and
    the client gets SIGHUP; it ends as interrupted, not with an internal error."""
    master, terminal = os.openpty()
    with listener() as server:
        command = netdiag_command("telnet", "--char", "127.0.0.1", str(server.port))
        client = subprocess.Popen(["setsid", "--ctty", *command], stdin=terminal, stdout=terminal, stderr=terminal)
        try:
            wait_for(lambda: in_character_mode(terminal), "the client sets character mode")
            os.close(terminal)
            os.close(master)  # the hang-up
            assert client.wait(10) == 128 + signal.SIGHUP
        finally:
            if client.poll() is None:
                client.kill()
                client.wait()
