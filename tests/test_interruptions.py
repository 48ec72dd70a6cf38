"""Signals, a reader that leaves, and resource limits: every command keeps
what it learned, restores the terminal, leaves no child behind and says why
it could not run, in real processes inside the lab."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import signal
import socket
import subprocess
import termios
import time

import pytest

from tests.lab import netdiag_command, run_netdiag, with_resolv_conf

pytestmark = pytest.mark.lab


def start(*args: str, prefix=(), **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [*prefix, *netdiag_command(*args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs
    )


def interrupt(process: subprocess.Popen, after: float, signum: int = signal.SIGINT, timeout: float = 20):
    time.sleep(after)
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=timeout)
    assert b"Traceback" not in stderr and b"internal error" not in stderr, stderr
    return stdout, stderr


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_every_signal_keeps_the_sweep_so_far(signum):
    process = start("sweep", "--json", "-n", "--rate", "1000", "-t", "1", "127.3.0.0/21")
    stdout, _ = interrupt(process, 1.0, signum)
    assert process.returncode == 128 + signum
    doc = json.loads(stdout)
    assert doc["summary"]["interrupted"] is True and 0 < doc["summary"]["total"] < 2046
    assert doc["summary"]["up"] > 0


def test_jsonl_gets_its_summary_line_on_sigterm():
    process = start("sweep", "--jsonl", "--rate", "1000", "-t", "1", "127.3.0.0/21")
    stdout, _ = interrupt(process, 1.0, signal.SIGTERM)
    assert process.returncode == 143
    *rows, last = (json.loads(line) for line in stdout.splitlines())  # every line whole, parseable
    assert last["summary"]["interrupted"] is True and all("address" in row for row in rows)
    # A signal landing between a host's count and its line leaves them one apart (the known window)
    assert last["summary"]["total"] - len(rows) in (0, 1)


def wait_for_children(process: subprocess.Popen, name: str, seconds: float = 20) -> None:
    """Until ``process`` runs a child called ``name``: signals sent at a fixed
    time would race the start-up of a loaded machine."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = subprocess.run(["pgrep", "-P", str(process.pid), "-x", name], capture_output=True, check=False)
        if found.returncode == 0:
            return
        time.sleep(0.05)
    raise AssertionError(f"no {name} started within {seconds}s")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_ping_sweep_keeps_the_replies_and_leaves_no_ping(signum):
    process = start("sweep", "--json", "-n", "-m", "ping", "-c", "50", "-i", "0.05", "127.1.77.1-3")
    wait_for_children(process, "ping")
    stdout, _ = interrupt(process, 1.0, signum)
    assert process.returncode == 128 + signum
    rows = json.loads(stdout)["results"]
    assert [r["address"] for r in rows] == ["127.1.77.1", "127.1.77.2", "127.1.77.3"]
    for row in rows:  # loss over the requests ping sent before it was stopped, not over 50
        assert row["alive"] and 5 < len(row["rtts_ms"]) < 50 and row["loss"] < 0.2, row
    time.sleep(0.2)
    left = subprocess.run(["pgrep", "-f", "127.1.77."], capture_output=True, text=True, check=False)
    assert left.stdout == "", f"ping children left running: {left.stdout}"


def test_ctrl_c_while_names_are_looked_up_keeps_the_hosts(silent_resolver):
    process = start("sweep", "--json", "-t", "0.3", "127.1.0.0/28", prefix=with_resolv_conf(silent_resolver))
    stdout, _ = interrupt(process, 2.0)  # probing takes 0.3 s; the names would take 30
    assert process.returncode == 130
    doc = json.loads(stdout)
    assert doc["summary"]["interrupted"] is True and doc["summary"]["up"] == 14
    assert all(row["name"] is None for row in doc["results"])


def test_dns_prints_its_answers_on_sigterm(silent_resolver):
    process = start("dns", "--json", "-t", "20", "slow.lab.test", "hostsonly", prefix=with_resolv_conf(silent_resolver))
    stdout, _ = interrupt(process, 1.5, signal.SIGTERM)
    assert process.returncode == 143
    answers = {row["query"]: row["status"] for row in json.loads(stdout)["results"]}
    assert answers == {"hostsonly": "ok"}


@pytest.mark.parametrize(
    "args",
    [("sweep", "--jsonl", "-t", "0.3", "127.3.0.0/24"), ("sweep", "-n", "--map", "-t", "0.3", "127.3.0.0/24"),
     ("service", "--list"), ("dns", "localhost", "web.lab.test", "127.1.0.10")],
    ids=["jsonl", "map", "service", "dns"],
)  # fmt: skip
def test_a_reader_that_leaves_is_exit_0(args):
    process = start(*args)
    assert process.stdout.readline()
    process.stdout.close()  # `| head -1`
    stderr = process.stderr.read()
    assert process.wait(timeout=20) == 0, stderr
    assert stderr == b"" or b"hosts up" in stderr


def test_a_signal_on_a_terminal_restores_the_cursor():
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        netdiag_command("sweep", "-n", "-t", "3", "--rate", "200", "127.2.0.0/22"),
        stdin=terminal, stdout=terminal, stderr=terminal, env={**os.environ, "TERM": "xterm", "COLUMNS": "100"},
    )  # fmt: skip
    os.close(terminal)
    screen = bytearray()
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        if select.select([controller], [], [], 0.1)[0]:
            screen += os.read(controller, 65536)
    process.send_signal(signal.SIGTERM)
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # EIO: the process is gone
            break
        if not chunk:
            break
        screen += chunk
    os.close(controller)
    assert process.wait(timeout=10) == 143
    assert b"\x1b[?25l" in screen, "the progress bar never hid the cursor: the test proves nothing"
    assert screen.rfind(b"\x1b[?25h") > screen.rfind(b"\x1b[?25l"), "cursor left hidden"
    assert b"interrupted" in screen and b"Traceback" not in screen


@pytest.mark.parametrize(
    "feed",
    [["sweep", "@/dev/zero"], ["sweep", "-"], ["yes"]],
    ids=["@/dev/zero", "-</dev/zero", "yes|"],
)
def test_endless_target_lists_are_refused_with_bounded_memory(feed):
    if feed == ["yes"]:
        source = subprocess.Popen(["yes"], stdout=subprocess.PIPE)
        stdin, args = source.stdout, ["sweep", "-"]
    else:
        source, stdin, args = None, open("/dev/zero", "rb"), feed  # noqa: SIM115 - closed below
    started = time.monotonic()
    result = subprocess.run(
        ["prlimit", "--as=1000000000", *netdiag_command(*args)],
        stdin=stdin,
        capture_output=True,
        timeout=60,
        check=False,
    )
    stdin.close()
    if source:
        source.kill()
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.splitlines()) == 1 and b"Traceback" not in result.stderr
    assert time.monotonic() - started < 20


def test_ping_runs_within_a_small_descriptor_limit():
    result = run_netdiag("sweep", "-n", "-m", "ping", "127.1.0.0/25", prefix=("prlimit", "--nofile=64"))
    assert result.returncode == 0, result.stderr
    assert b"126/126 hosts up" in result.stderr


def test_lookups_run_within_an_address_space_limit():
    names = [f"h-127-1-0-{i}.lab.test" for i in range(1, 51)]
    result = run_netdiag("dns", "--json", *names, prefix=("prlimit", "--as=400000000"))
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)["results"]) == 50
    swept = run_netdiag("sweep", "--json", "-m", "ping", "127.1.0.0/24", prefix=("prlimit", "--as=400000000"))
    assert swept.returncode == 0, swept.stderr
    assert json.loads(swept.stdout)["summary"]["up"] == 254


def test_ping_that_cannot_send_is_a_row_not_an_abort():
    status_doc = run_netdiag("sweep", "--json", "-n", "-m", "ping", "127.1.0.1-2", "127.255.255.255", "198.51.100.1")
    rows = {r["address"]: (r["state"], r["reason"]) for r in json.loads(status_doc.stdout)["results"]}
    assert rows == {
        "127.1.0.1": ("up", None),
        "127.1.0.2": ("up", None),
        "127.255.255.255": ("unreachable", "not permitted (a broadcast address?)"),
        "198.51.100.1": ("unreachable", "network unreachable"),  # no route in the lab: nothing is sent
    }


def test_addresses_are_swept_while_names_resolve(silent_resolver):
    names = [f"slow{i}.lab.test" for i in range(100)]
    process = start("sweep", "--jsonl", "-t", "0.5", "127.1.0.1", *names, prefix=with_resolv_conf(silent_resolver))
    started = time.monotonic()
    first = json.loads(process.stdout.readline())
    first_after = time.monotonic() - started
    rest = process.stdout.read().splitlines()
    assert process.wait(timeout=20) == 0
    assert first["address"] == "127.1.0.1" and first["alive"]
    assert first_after < 1.5, f"the address waited {first_after:.1f}s for the names (2 s deadline)"
    rows = [json.loads(line) for line in rest[:-1]]
    assert len(rows) == 100 and {r["state"] for r in rows} == {"unresolved"}
    assert json.loads(rest[-1])["summary"]["unresolved"] == 100


@pytest.mark.parametrize("method", ["icmp", "tcp", "ping"])
def test_hosts_in_flight_at_an_interruption_are_down_and_say_so(method):
    process = start("sweep", "--json", "-n", "-m", method, "-t", "10", "127.2.0.0/28")  # they never answer
    stdout, _ = interrupt(process, 1.5)
    doc = json.loads(stdout)
    assert doc["summary"]["total"] == 14 and doc["summary"]["down"] == 14 and doc["summary"]["probes_sent"] >= 14
    assert {(r["state"], r["reason"]) for r in doc["results"]} == {("down", "interrupted before its timeout")}


def test_tcp_within_a_small_descriptor_limit_waits_for_room_instead_of_failing_hosts():
    result = run_netdiag(
        "sweep", "--json", "-n", "-m", "tcp", "-w", "500", "-t", "0.3", "127.2.0.0/28", "127.1.0.0/28",
        prefix=("prlimit", "--nofile=40"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)["results"]
    states = {(r["address"].rsplit(".", 2)[0], r["state"], r["reason"]) for r in rows}
    assert states == {("127.2", "down", None), ("127.1", "up", None)}, states
    refused = run_netdiag("sweep", "-m", "tcp", "127.1.0.1", prefix=("prlimit", "--nofile=8"))
    assert refused.returncode == 3 and b"ulimit -n" in refused.stderr


def run_on_a_terminal(args: list[str], signum: int, after: float, prefix=()) -> tuple[int, bytes]:
    """Run netdiag with a pseudo-terminal for stdin, stdout and stderr; send
    ``signum`` after ``after`` seconds; return the exit status and the screen."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [*prefix, *netdiag_command(*args)], stdin=terminal, stdout=terminal, stderr=terminal,
        env={**os.environ, "TERM": "xterm", "COLUMNS": "100"}, start_new_session=True,
    )  # fmt: skip
    os.close(terminal)
    screen = bytearray()
    deadline = time.monotonic() + after
    while time.monotonic() < deadline:
        if select.select([controller], [], [], 0.1)[0]:
            screen += os.read(controller, 65536)
    process.send_signal(signum)
    while select.select([controller], [], [], 10)[0]:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # EIO: every process holding the terminal is gone
            break
        if not chunk:
            break
        screen += chunk
    os.close(controller)
    return process.wait(timeout=10), bytes(screen)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_dns_on_a_terminal_prints_its_answers_at_a_signal(silent_resolver, signum):
    status, screen = run_on_a_terminal(
        ["dns", "-t", "20", "slow.lab.test", "hostsonly"], signum, 1.5, prefix=with_resolv_conf(silent_resolver)
    )
    assert status == 128 + signum
    assert b"hostsonly" in screen and b"127.1.0.5" in screen and b"Traceback" not in screen


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGTERM, 0), (signal.SIGHUP, 129), (signal.SIGINT, 130)])
def test_listen_on_a_terminal_prints_its_summary_at_a_signal(signum, status):
    got, screen = run_on_a_terminal(["listen", "0"], signum, 1.5)
    assert got == status
    assert b"listening on 127.0.0.1" in screen and b"served 0 connections" in screen and b"Traceback" not in screen


@pytest.mark.parametrize(
    "args",
    [
        ["service", "--list"],
        ["sweep", "--json", "-n", "127.1.0.0/21"],
        ["dns", *[f"h-127-1-0-{i}.lab.test" for i in range(1, 255)]],
        ["sweep", "--jsonl", "-n", "-t", "0.5", "127.1.0.0/22", "198.18.0.0/22"],  # engines in threads
    ],
    ids=["service", "sweep", "dns", "sweep-two-engines"],
)
def test_a_command_blocked_on_a_full_pipe_ends_at_sigterm(args):
    reader, writer = os.pipe()  # nobody reads: the command blocks once the pipe is full
    fcntl.fcntl(writer, fcntl.F_SETPIPE_SZ, 4096)  # a page: full long before each command is done
    process = subprocess.Popen(netdiag_command(*args), stdout=writer, stderr=subprocess.PIPE)
    os.close(writer)
    time.sleep(2.0)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=10)
    os.close(reader)
    assert process.returncode == 143, stderr
    assert b"Traceback" not in stderr and len(stderr.splitlines()) <= 2


def test_names_still_resolving_at_an_interruption_get_their_rows_and_nothing_is_sent_after(silent_resolver):
    process = start("sweep", "--json", "-n", "-t", "5", "127.2.0.1", "slow1.lab.test", "slow2.lab.test",
                    prefix=with_resolv_conf(silent_resolver))  # fmt: skip
    time.sleep(1.0)
    signalled = time.monotonic()
    stdout, _ = interrupt(process, 0)
    assert time.monotonic() - signalled < 1.5, "waited for the names after the interruption"
    assert process.returncode == 130
    doc = json.loads(stdout)
    rows = {row["address"]: (row["state"], row["reason"]) for row in doc["results"]}
    assert rows == {
        "127.2.0.1": ("down", "interrupted before its timeout"),
        "slow1.lab.test": ("down", "interrupted before it was swept"),
        "slow2.lab.test": ("down", "interrupted before it was swept"),
    }
    assert doc["summary"]["total"] == 3 and doc["summary"]["down"] == 3


def test_interrupted_while_waiting_for_names_before_sending_still_prints_a_document(silent_resolver):
    process = start("sweep", "--json", "-S", "127.0.0.1", "127.1.0.1", "slow.lab.test",
                    prefix=with_resolv_conf(silent_resolver))  # fmt: skip
    stdout, _ = interrupt(process, 1.0)  # -S: the names are resolved before anything is sent
    assert process.returncode == 130
    assert json.loads(stdout)["summary"]["interrupted"] is True


def test_an_ignored_hangup_stays_ignored():
    process = start(
        "sweep",
        "--json",
        "-n",
        "-t",
        "1.5",
        "127.2.0.1",
        preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN),
    )
    time.sleep(0.7)
    process.send_signal(signal.SIGHUP)  # nohup: the sweep goes on to its end
    stdout, _ = process.communicate(timeout=20)
    assert process.returncode == 1 and json.loads(stdout)["summary"]["interrupted"] is False


def test_a_real_hangup_is_129_not_a_reader_that_left():
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        netdiag_command("sweep", "-n", "-t", "5", "127.2.0.0/28"), stdin=terminal, stdout=terminal, stderr=terminal,
        start_new_session=True, preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),  # noqa: PLW1509
    )  # fmt: skip
    os.close(terminal)
    time.sleep(1.5)
    os.close(controller)  # the terminal goes away: the kernel sends SIGHUP, then writes fail with EIO
    assert process.wait(timeout=10) == 129


def test_an_interrupted_ping_is_never_reported_unreachable():
    process = start("sweep", "--json", "-n", "-m", "ping", "-w", "32", "127.1.0.0/21")  # a few seconds of pings
    wait_for_children(process, "ping")
    stdout, _ = interrupt(process, 0.3)
    rows = json.loads(stdout)["results"]
    assert rows and not [row for row in rows if row["state"] == "unreachable"]


def test_a_stalled_log_reader_never_stalls_listen_and_sigterm_still_ends_it():
    reader, writer = os.pipe()
    fcntl.fcntl(writer, fcntl.F_SETPIPE_SZ, 4096)
    process = subprocess.Popen(netdiag_command("listen", "0", "--json"), stdout=writer, stderr=subprocess.PIPE)
    os.close(writer)
    port = json.loads(os.read(reader, 4096).split(b"\n")[0])["port"]  # the first line, then nobody reads
    clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(200)]
    with socket.create_connection(("127.0.0.1", port), timeout=3) as echo:
        echo.sendall(b"still served\n")
        assert echo.recv(64) == b"still served\n"
    for client in clients:
        client.close()
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=10)
    os.close(reader)
    assert process.returncode == 0, stderr  # SIGTERM is listen's clean stop
    assert b"Traceback" not in stderr
