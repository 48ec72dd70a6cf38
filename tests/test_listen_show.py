"""netdiag listen --mode show: what clients send, printed tagged by client
(nc -l for many clients at once), with real sockets and real processes."""

from __future__ import annotations

import json
import queue
import re
import signal
import socket
import subprocess
import threading
import time
from contextlib import contextmanager

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netdiag.listen import (
    HIGH_WATER,
    SHOW_IDLE,
    SHOW_LINE,
    SHOW_READ,
    Event,
    Listener,
    ListenOptions,
)
from netdiag.telnet.screen import whole_characters
from netdiag.views.listen import data_records, data_text
from tests.lab import netdiag_command
from tests.lab.servers import fill_from

pytestmark = pytest.mark.timeout(60)
MB = 1024 * 1024


def data(payload: bytes, address: str = "127.0.0.1", port: int = 40312, offset: int = 0) -> Event:
    return Event("data", address, port, data=payload, offset=offset)


# --- what is printed (pure) ------------------------------------------------------------


def test_each_line_is_tagged_and_shown_without_its_line_end():
    shown = data_text(data(b"GET / HTTP/1.1\r\nHost: lab.test\r\n\r\nbare LF\n"))
    assert shown == (
        "127.0.0.1:40312> GET / HTTP/1.1\n"
        "127.0.0.1:40312> Host: lab.test\n"
        "127.0.0.1:40312> \n"
        "127.0.0.1:40312> bare LF\n"
    )


def test_control_characters_and_bytes_that_are_not_utf8_are_shown_as_escapes():
    shown = data_text(data(b"\x1b]0;pwned\x07\x1b[2J\tcaf\xe9 \xe2\x80\xae caf\xc3\xa9\r\x00\r\n"))
    assert shown == "127.0.0.1:40312> \\e]0;pwned\\x07\\e[2J\\tcaf\\xe9 \\u202e café\\r\\x00\n"
    assert data_text(data(b"no end yet\r")) == "127.0.0.1:40312> no end yet\\r\n"  # shown before its end


def test_ipv6_clients_are_tagged_in_brackets():
    assert data_text(data(b"hi\n", "::1", 5)) == "[::1]:5> hi\n"


def test_hex_dump_lines_carry_the_tag_and_the_offset_in_the_clients_stream():
    shown = data_text(data(b"GET / HTTP/1.1\r\nHost", offset=0x20), as_hex=True)
    assert shown == (
        "127.0.0.1:40312> 00000020  47 45 54 20 2f 20 48 54 54 50 2f 31 2e 31 0d 0a  |GET / HTTP/1.1..|\n"
        "127.0.0.1:40312> 00000030  48 6f 73 74                                      |Host|\n"
    )


def test_json_records_keep_each_line_end_and_hex_keeps_every_byte():
    head = {"event": "data", "address": "127.0.0.1", "port": 40312}
    assert data_records(data(b"EHLO lab\r\n\x1b[31m\nno end")) == [
        {**head, "data": "EHLO lab\\r\\n"},
        {**head, "data": "\\e[31m\\n"},
        {**head, "data": "no end"},
    ]
    assert data_records(data(b"\xff\x00ok", offset=7), as_hex=True) == [{**head, "offset": 7, "hex": "ff006f6b"}]


@given(st.text(max_size=40), st.integers(0, 200))
def test_a_cut_at_whole_characters_never_splits_one(text, cut):
    encoded = text.encode()
    head = encoded[: min(cut, len(encoded))]
    whole = whole_characters(head)
    assert head[:whole].decode() == text[: len(head[:whole].decode())]  # decodes, and is a prefix
    assert len(head) - whole < 4  # holds back at most the start of one character


# --- the server, in-process --------------------------------------------------------------


@contextmanager
def showing(**options):
    """A show-mode listener whose events wait in a queue: what the test has not
    taken from it is output nobody has printed yet."""
    events: queue.SimpleQueue = queue.SimpleQueue()
    listener = Listener(ListenOptions(mode="show", **options), events.put)
    thread = threading.Thread(target=listener.serve, daemon=True)
    thread.start()
    try:
        assert events.get(timeout=5).kind == "listening"
        yield listener, events
    finally:
        listener.shutdown()
        thread.join(5)
        assert not thread.is_alive()


def take(events: queue.SimpleQueue, until, seconds: float = 5) -> list[tuple]:
    """Events as (kind, port, data, offset), taken until ``until(taken)``;
    the events themselves are dropped: printed, as far as the server knows."""
    taken: list[tuple] = []
    deadline = time.monotonic() + seconds
    while not until(taken):
        event = events.get(timeout=max(deadline - time.monotonic(), 0.01))
        taken.append((event.kind, event.port, event.data, event.offset))
        del event
    return taken


def connect(listener: Listener) -> socket.socket:
    return socket.create_connection((listener.address, listener.port), timeout=5)


def test_whole_lines_at_once_a_line_without_its_end_after_a_pause_and_the_rest_at_the_close():
    with showing() as (listener, events):
        sock = connect(listener)
        port = sock.getsockname()[1]
        sent_at = time.monotonic()
        sock.sendall(b"GET / HTTP/1.1\r\nHo")
        assert take(events, lambda t: len(t) == 2) == [
            ("open", port, b"", 0),
            ("data", port, b"GET / HTTP/1.1\r\n", 0),
        ]
        time.sleep(SHOW_IDLE / 4)
        nothing_yet = events.empty()
        if time.monotonic() - sent_at < SHOW_IDLE:  # (a machine this slow to look cannot tell)
            assert nothing_yet  # "Ho" waits for the rest of its line...
        assert take(events, lambda t: t) == [("data", port, b"Ho", 16)]  # ...until SHOW_IDLE without more
        sock.sendall(b"st: lab\r\n\r\nPOST")
        assert take(events, lambda t: t) == [("data", port, b"st: lab\r\n\r\n", 18)]
        sock.close()  # the last line, never ended, comes before the close
        taken = take(events, lambda t: t and t[-1][0] == "close")
    assert taken == [("data", port, b"POST", 29), ("close", port, b"", 0)]


def test_a_character_cut_by_the_pause_waits_for_the_rest_of_it():
    with showing() as (listener, events), connect(listener) as sock:
        sock.sendall("café".encode()[:-1])  # "caf" and the first byte of "é"
        take(events, lambda t: t)  # open
        assert take(events, lambda t: t)[0][2] == b"caf"
        time.sleep(SHOW_IDLE * 1.5)
        assert events.empty()
        sock.sendall(b"\xa9!\n")
        assert take(events, lambda t: t)[0][2] == b"\xc3\xa9!\n"


def test_a_line_too_long_to_hold_is_shown_in_pieces_of_whole_characters():
    line = "x" + "é" * 10_000  # 20,001 bytes, no line end: a cut at SHOW_LINE bytes would split an é
    with showing() as (listener, events), connect(listener) as sock:
        sock.sendall(line.encode())
        shown = take(events, lambda t: sum(len(e[2]) for e in t) >= len(line.encode()))
    pieces = [e[2] for e in shown if e[0] == "data"]
    assert all(len(piece) <= SHOW_LINE for piece in pieces) and len(pieces) >= 5
    assert "".join(piece.decode() for piece in pieces) == line  # every piece is whole characters


def test_output_nobody_prints_holds_the_client_back_and_costs_no_more_memory():
    """Nothing printed: the client is read up to its share, then not at all,
    while others are still read; once the output moves, everything comes, in
    order, nothing lost."""
    payload = bytes(range(256)) * (32 * MB // 256)
    with showing(hexdump=True) as (listener, events):
        hog = connect(listener)
        hog_port = hog.getsockname()[1]
        sent = fill_from(hog, payload, seconds=20)
        assert sent < len(payload) // 2  # the server stopped reading it
        held = listener.showing
        assert 0 < held <= HIGH_WATER + SHOW_READ  # the client's share, not 32 MB
        with connect(listener) as other:  # meanwhile, another client is still read
            other.sendall(b"still read\n")
            deadline = time.monotonic() + 5
            while listener.showing - held != len(b"still read\n"):
                assert time.monotonic() < deadline, "the other client was not read"
                time.sleep(0.01)
        received = bytearray()

        def drain():  # print everything: the hog is read again
            while True:
                event = events.get()
                if event.port == hog_port and event.kind == "data":
                    assert event.offset == len(received)
                    received.extend(event.data)
                if event.kind == "close" and event.port == hog_port:
                    return
                del event

        printer = threading.Thread(target=drain, daemon=True)
        printer.start()
        hog.setblocking(True)
        hog.sendall(payload[sent:])
        hog.close()
        printer.join(30)
        assert not printer.is_alive()
    assert bytes(received) == payload


def test_an_ipv6_client_is_shown_with_its_address_and_port():
    with showing(host="::1") as (listener, events), socket.create_connection(("::1", listener.port), 5) as sock:
        sock.sendall(b"hello\n")
        port = sock.getsockname()[1]
        taken = take(events, lambda t: len(t) == 2)
    assert taken[1] == ("data", port, b"hello\n", 0)
    assert data_text(Event("data", "::1", port, data=b"hello\n")) == f"[::1]:{port}> hello\n"


# --- the command --------------------------------------------------------------------------


def start(*args: str) -> tuple[subprocess.Popen, int]:
    process = subprocess.Popen(
        netdiag_command("listen", "0", "--mode", "show", *args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    line = process.stdout.readline().decode()
    if "--json" in args:
        return process, json.loads(line)["port"]
    match = re.fullmatch(r"listening on 127\.0\.0\.1 port (\d+) \(show\)\n", line)
    assert match, line
    return process, int(match.group(1))


def send_and_close(port: int, *chunks: bytes) -> int:
    """Send each chunk (the server sees them apart), close; the client's port."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        for chunk in chunks:
            sock.sendall(chunk)
            time.sleep(0.05)
        return sock.getsockname()[1]


def stop(process: subprocess.Popen) -> tuple[str, str]:
    time.sleep(0.3)
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=10)
    assert process.returncode == 0, stderr
    return stdout.decode(), stderr.decode()


HOSTILE = b"\x1b]0;pwned\x07\x1b[2J\xe2\x80\xae"


def test_cli_prints_what_each_client_sends_tagged_and_visible():
    process, port = start()
    request, other = b"GET / HTTP/1.1\r\nHost: lab.test\r\n\r\n", b"hello there\n" + HOSTILE + b"no newline"
    first = send_and_close(port, request)
    second = send_and_close(port, other)
    stdout, stderr = stop(process)
    assert stdout.splitlines() == [
        f"127.0.0.1:{first}> GET / HTTP/1.1",
        f"127.0.0.1:{first}> Host: lab.test",
        f"127.0.0.1:{first}> ",
        f"127.0.0.1:{second}> hello there",
        f"127.0.0.1:{second}> \\e]0;pwned\\x07\\e[2J\\u202eno newline",
    ]
    assert not {"\x1b", "\x07", "\u202e"} & set(stdout)
    assert f"+ 127.0.0.1 port {first} connected\n" in stderr
    assert f"- 127.0.0.1 port {second} closed (client closed): {len(other)} bytes in, 0 out, " in stderr
    assert "served 2 connections (0 refused, peak " in stderr
    assert f" at once); {len(request) + len(other)} bytes in, 0 out in " in stderr


def test_cli_quiet_still_shows_the_data():
    process, port = start("-q")
    client = send_and_close(port, b"one line\n")
    stdout, stderr = stop(process)
    assert stdout == f"127.0.0.1:{client}> one line\n"
    assert stderr.startswith("served 1 connection (0 refused") and len(stderr.splitlines()) == 1


def test_cli_hexdump():
    process, port = start("--hexdump")
    client = send_and_close(port, b"\x00\x01binary\xff\r\n\x1b[2J and more")
    stdout, _ = stop(process)
    assert stdout == (
        f"127.0.0.1:{client}> 00000000  00 01 62 69 6e 61 72 79 ff 0d 0a 1b 5b 32 4a 20  |..binary....[2J |\n"
        f"127.0.0.1:{client}> 00000010  61 6e 64 20 6d 6f 72 65                          |and more|\n"
    )


def test_cli_json_data_events():
    process, port = start("--json")
    client = send_and_close(port, b"EHLO lab\r\n", b"\x1b[2Jbye")
    stdout, stderr = stop(process)
    events = [json.loads(line) for line in stdout.splitlines()]
    assert [e["event"] for e in events] == ["open", "data", "data", "close", "summary"]
    head = {"event": "data", "address": "127.0.0.1", "port": client}
    assert events[1:3] == [{**head, "data": "EHLO lab\\r\\n"}, {**head, "data": "\\e[2Jbye"}]
    assert (events[0]["port"], events[3]["port"], events[3]["received"]) == (client, client, 17)
    assert stderr == ""


def test_cli_json_hex_data_events():
    payload = bytes(range(256)) * 40
    process, port = start("--json", "-x")
    client = send_and_close(port, payload[:5000], payload[5000:])
    stdout, _ = stop(process)
    records = [json.loads(line) for line in stdout.splitlines()]
    data = [r for r in records if r["event"] == "data"]
    assert {(r["address"], r["port"]) for r in data} == {("127.0.0.1", client)}
    assert [r["offset"] for r in data] == [sum(len(r["hex"]) // 2 for r in data[:i]) for i in range(len(data))]
    assert bytes.fromhex("".join(r["hex"] for r in data)) == payload


def test_cli_a_stdout_nobody_reads_neither_stalls_the_server_nor_grows_it_nor_loses_data():
    process, port = start("--first-data-timeout", "1")
    baseline = peak_rss_mb(process)
    try:
        line = b"0123456789abcdef" * 62 + b"\n"  # 993 bytes
        payload = line * (32 * MB // len(line))
        with socket.create_connection(("127.0.0.1", port), timeout=5) as hog:
            hog_port = hog.getsockname()[1]
            sent = fill_from(hog, payload, seconds=20)
            assert sent < len(payload) // 2  # nobody reads stdout: the server stopped reading the client
            with socket.create_connection(("127.0.0.1", port), timeout=5) as silent:
                start_wait = time.monotonic()
                assert silent.recv(1) == b""  # closed for sending nothing: the loop goes on
                assert time.monotonic() - start_wait < 5
            assert peak_rss_mb(process) - baseline < 16  # the client's 1 MiB share, not 32 MB
            shown: list[bytes] = []
            reader = threading.Thread(target=lambda: shown.extend(process.stdout), daemon=True)
            reader.start()  # stdout moves again: so does the client
            hog.setblocking(True)
            hog.sendall(payload[sent:])
        lines = len(payload) // len(line)
        deadline = time.monotonic() + 30
        while len(shown) < lines and time.monotonic() < deadline:
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        reader.join(30)
        stderr = process.stderr.read().decode()
        assert process.wait(10) == 0, stderr
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    tag = f"127.0.0.1:{hog_port}> ".encode()
    assert shown.count(tag + line) == lines == len(shown)  # every line, nothing else
    assert "dropped" not in stderr


def peak_rss_mb(process: subprocess.Popen) -> float:
    with open(f"/proc/{process.pid}/status") as f:
        return int(re.search(r"^VmHWM:\s+(\d+) kB", f.read(), re.M).group(1)) / 1024
