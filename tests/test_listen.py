"""netdiag listen with real sockets on loopback."""

from __future__ import annotations

import itertools
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
import typer
from hypothesis import given
from hypothesis import strategies as st

from netdiag.cli import app
from netdiag.errors import BadInput, CannotRun
from netdiag.listen import (
    HIGH_WATER,
    MAX_LINE,
    READ_SIZE,
    TOO_LONG,
    ClientStats,
    Event,
    LineSplitter,
    Listener,
    ListenOptions,
    Summary,
    lookup_row,
    parse_query,
)
from netdiag.models import DnsAnswer, DnsOutcome, ReverseAnswer
from netdiag.views.listen import close_text, plural, summary_text
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
        listener.shutdown()
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
        lines = recv_until_closed(sock).decode().splitlines()
        sock.close()
    assert lines == [  # in the order asked
        "web.lab.test: 127.1.0.10 fd00:1ab:1::10",
        "127.1.0.66: liar.lab.test (NOT confirmed)",
        "nope.lab.test: no such name (NXDOMAIN)",
    ]


def test_hundreds_of_concurrent_clients_each_get_their_own_bytes():
    count = 600  # with the test's own sockets: well past select()'s 1,024 descriptors
    with serving(max_per_source=count) as (listener, _):
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


def test_open_and_close_events_carry_the_clients_address_and_port():
    with serving(mode="discard") as (listener, events):
        with connect(listener) as first, connect(listener) as second:
            ports = {first.getsockname()[1], second.getsockname()[1]}
            first.sendall(b"x")
            wait_for(lambda: listener.summary.received == 1)
        wait_for(lambda: sum(e.kind == "close" for e in events) == 2)
    for kind in ("open", "close"):
        assert {(e.address, e.port) for e in events if e.kind == kind} == {("127.0.0.1", p) for p in ports}, kind


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


@pytest.mark.parametrize("name", ["idle_timeout", "first_data_timeout"])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), 0.0, -1.0, 86_401.0])
def test_timeouts_must_be_real_positive_seconds(name, value):
    flag = "--" + name.replace("_", "-")
    with pytest.raises(BadInput, match=f"^{flag} must be more than 0 and at most 86400 seconds"):
        ListenOptions(**{name: value}).validate()


@pytest.mark.parametrize("name", ["max_clients", "max_per_source"])
@pytest.mark.parametrize("value", [0, -5, 1_000_001])
def test_client_limits_say_their_range(name, value):
    flag = "--" + name.replace("_", "-")
    with pytest.raises(BadInput, match=f"^{flag} must be between 1 and 1,000,000, not {value}$"):
        ListenOptions(**{name: value}).validate()


def test_the_banner_goes_out_as_the_bytes_given():
    # An argument byte that is not UTF-8 reaches Python as a surrogate escape.
    assert ListenOptions(mode="banner", banner="caf\udce9").banner_bytes() == b"caf\xe9"
    assert ListenOptions(mode="banner", banner="café").banner_bytes() == "café".encode()
    with pytest.raises(BadInput, match="--banner"):
        ListenOptions(mode="banner", banner="\ud800").validate()  # a lone surrogate: no bytes it came from


def test_cli_defaults_are_the_servers_defaults():
    command = typer.main.get_command(app).commands["listen"]
    defaults = {param.name: param.default for param in command.params}
    server = ListenOptions()
    for name in ("host", "port", "mode", "max_clients", "max_per_source", "idle_timeout", "first_data_timeout"):
        assert defaults[name] == getattr(server, name), name


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        ((1, 1, 1, 1, 1), "served 1 connection (1 refused, peak 1 at once); 1 byte in, 1 out in 2.5s"),
        ((2, 0, 2, 0, 0), "served 2 connections (0 refused, peak 2 at once); 0 bytes in, 0 out in 2.5s"),
        ((0, 2, 0, 1234, 5678), "served 0 connections (2 refused, peak 0 at once); 1,234 bytes in, 5,678 out in 2.5s"),
    ],
)
def test_the_summary_says_one_connection_and_one_byte_in_the_singular(counts, expected):
    connections, refused, peak, received, sent = counts
    summary = Summary(connections, refused, received, sent, peak)
    assert summary_text(summary, 2.5) == expected


@pytest.mark.parametrize(("received", "words"), [(1, "1 byte in"), (0, "0 bytes in"), (4096, "4,096 bytes in")])
def test_the_close_line_names_the_port_and_counts_bytes_in_good_english(received, words):
    stats = ClientStats("127.0.0.1", 10.0, received=received, sent=1, closed=10.25, reason="client closed")
    line = close_text(Event("close", "127.0.0.1", 40312, stats))
    assert line == f"- 127.0.0.1 port 40312 closed (client closed): {words}, 1 out, 0.250s"


def test_plural():
    assert [plural(n, "log event") for n in (0, 1, 2, 10_000)] == [
        "0 log events", "1 log event", "2 log events", "10,000 log events",
    ]  # fmt: skip


# --- lookup mode, the pure parts --------------------------------------------------


def split(chunks, limit: int = MAX_LINE, end: bool = True) -> list:
    splitter = LineSplitter(limit)
    lines = []
    for chunk in chunks:
        splitter.feed(chunk)
        while (line := splitter.next_line()) is not None:
            lines.append(line)
        assert len(splitter) <= limit  # never more than one short partial line held
    if end:
        splitter.end()
        while (line := splitter.next_line()) is not None:
            lines.append(line)
    return lines


def test_the_line_limit_applies_to_every_line_and_drops_the_rest_of_a_long_one():
    assert split([b"a" * 11 + b"\nok\n"], limit=10) == [TOO_LONG, b"ok"]
    assert split([b"a" * 11, b"aaaa", b"aa\nok\n"], limit=10) == [TOO_LONG, b"ok"]
    assert split([b"a" * 10 + b"\n"], limit=10) == [b"a" * 10]


def test_a_last_line_without_a_newline_is_a_line_at_the_end():
    assert split([b"one\ntwo"]) == [b"one", b"two"]
    assert split([b"one\ntwo"], end=False) == [b"one"]
    assert split([b"one\n"]) == [b"one"]
    assert split([b"x" * 20], limit=10) == [TOO_LONG]


@given(st.binary(max_size=200).map(lambda b: b.replace(b"\x00", b"\n")), st.lists(st.integers(0, 200), max_size=8))
def test_lines_are_the_same_however_the_bytes_arrive(data, cuts):
    limit = 8
    expected = data.split(b"\n")
    if expected[-1] == b"":
        expected.pop()
    expected = [TOO_LONG if len(line) > limit else line for line in expected]
    bounds = [0, *sorted(c for c in cuts if c <= len(data)), len(data)]
    chunks = [data[a:b] for a, b in itertools.pairwise(bounds)]
    assert split(chunks, limit) == expected


def test_queries_are_utf8_and_printable_or_bad():
    assert parse_query("bücher.lab.test\r".encode()) == ("bücher.lab.test", None)
    assert parse_query(b"  web.lab.test \r") == ("web.lab.test", None)
    assert parse_query(b"caf\xe9.lab.test") == ("caf\\xe9.lab.test", "not UTF-8")
    assert parse_query(b"web\x00.lab.test") == ("web\\x00.lab.test", "control characters")
    assert parse_query(b"\x1b[31mred") == ("\\e[31mred", "control characters")
    assert parse_query("a\u202eb".encode()) == ("a\\u202eb", "control characters")  # a bidi override


def raising(exc: BaseException):
    def resolve(query: str):
        raise exc

    return resolve


@pytest.mark.parametrize(
    "exc", [ValueError("bad"), UnicodeError("label"), OSError(22, "Invalid argument"), CannotRun("no thread")]
)
def test_a_resolver_that_raises_still_gives_the_query_its_row(exc):
    row = lookup_row("::ffff:127.1.0.10", raising(exc))
    assert row == f"::ffff:127.1.0.10: resolver failure ({type(exc).__name__})"


def test_answer_rows_are_printable_whatever_dns_says():
    def resolve(query: str) -> DnsAnswer:
        return ReverseAnswer(query, DnsOutcome.OK, 1.0, ptr="\x1b[31mred\x1b[0m.lab.test", confirmed=True)

    assert lookup_row("127.1.0.78", resolve) == "127.1.0.78: \\e[31mred\\e[0m.lab.test (confirmed)"


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
        client_port = sock.getsockname()[1]
        sock.sendall(b"ping")
        assert sock.recv(4) == b"ping"
    time.sleep(0.3)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=10)
    assert process.returncode == 130
    assert "Traceback" not in stderr
    assert f"+ 127.0.0.1 port {client_port} connected\n" in stderr
    assert f"- 127.0.0.1 port {client_port} closed (client closed): 4 bytes in, 4 out, " in stderr
    assert "served 1 connection (0 refused, peak 1 at once); 4 bytes in, 4 out" in stderr


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


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--idle-timeout", "nan"], "--idle-timeout must be more than 0"),
        (["--idle-timeout", "inf"], "--idle-timeout must be more than 0"),
        (["--idle-timeout", "0"], "--idle-timeout must be more than 0"),
        (["--first-data-timeout", "nan"], "--first-data-timeout must be more than 0"),
        (["--first-data-timeout", "-3"], "--first-data-timeout must be more than 0"),
        (["--max-clients", "1000001"], "--max-clients must be between 1 and 1,000,000, not 1000001"),
        (["--max-clients", "0"], "--max-clients must be between 1 and 1,000,000, not 0"),
        (["--max-per-source", "0"], "--max-per-source must be between 1 and 1,000,000, not 0"),
        (["--max-clients", "lots"], "Invalid value for '--max-clients'"),
        (["--host", "a" * 300], "--host " + "a" * 300 + ": not a valid address or host name"),
        (["--host", "caf\udce9"], "--host caf\\udce9: not a valid address or host name"),
        (["--mode", "chargen"], "--mode must be one of"),
        (["-m", "banner", "--banner", "\ud800"], "--banner"),
        (["--", "-1"], "port must be between 0 and 65535, not -1"),
        (["--hexdump"], "--hexdump goes with --mode show"),
        (["-m", "discard", "-x"], "--hexdump goes with --mode show"),
    ],
)
def test_every_bad_option_is_one_clear_line_and_status_2(cli, args, message):
    result = cli("listen", *args)
    assert result.status == 2
    assert result.stderr.startswith("netdiag: ") and message in result.stderr
    assert len(result.stderr.splitlines()) == 1 and "internal error" not in result.stderr


def test_cli_without_descriptors_to_listen_with_cannot_run():
    result = subprocess.run(
        ["prlimit", "--nofile=6:6", "--", *netdiag_command("listen", "0")],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    assert result.returncode == 3
    assert result.stderr == "netdiag: cannot listen: Too many open files\n"


def test_cli_banner_from_an_argument_that_is_not_utf8():
    process = subprocess.Popen(
        [os.fsencode(a) for a in netdiag_command("listen", "-m", "banner")] + [b"--banner", b"caf\xe9"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    port = int(re.fullmatch(r"listening on 127\.0\.0\.1 port (\d+) \(banner\)\n", process.stdout.readline()).group(1))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        assert recv_until_closed(sock) == b"caf\xe9\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:  # and it is still serving
        assert recv_until_closed(sock) == b"caf\xe9\r\n"
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=10)
    assert process.returncode == 0, stderr
    assert "served 2 connections" in stderr


def test_cli_json_events():
    process = subprocess.Popen(
        netdiag_command("listen", "--json"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    listening = json.loads(process.stdout.readline())
    assert listening["event"] == "listening" and listening["mode"] == "echo"
    with socket.create_connection(("127.0.0.1", listening["port"])) as sock:
        client_port = sock.getsockname()[1]
        sock.sendall(b"abc")
        assert sock.recv(3) == b"abc"
    time.sleep(0.3)
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=10)
    events = [json.loads(line) for line in stdout.splitlines()]
    assert [e["event"] for e in events] == ["open", "close", "summary"]
    assert [(e["address"], e["port"]) for e in events[:2]] == [("127.0.0.1", client_port)] * 2
    assert (events[1]["received"], events[1]["sent"], events[1]["reason"]) == (3, 3, "client closed")
    assert events[2]["connections"] == 1 and events[2]["interrupted"] is False
    assert stderr == ""
