"""netdiag listen --mode lookup: real clients on loopback, the lab's resolver."""

from __future__ import annotations

import contextlib
import socket
import threading
import time

import pytest

from netdiag import resolver
from netdiag.listen import MAX_LINE, MAX_PENDING, Listener, format_answer
from tests.lab.servers import listener

LINE_TOO_LONG = f"error: line too long (over {MAX_LINE:,} bytes)"


def serving(**options):
    return listener(mode="lookup", **options)


def ask(listener: Listener, *sends: bytes) -> list[str]:
    """Send each chunk in turn, half-close, and read every answer row."""
    with socket.create_connection((listener.address, listener.port), timeout=10) as sock:
        for chunk in sends:
            sock.sendall(chunk)
            time.sleep(0.01)  # separate reads on the server's side
        sock.shutdown(socket.SHUT_WR)
        received = bytearray()
        while data := sock.recv(65536):
            received += data
    assert received.endswith(b"\r\n")
    return received.decode("utf-8").split("\r\n")[:-1]


def test_the_line_limit_applies_to_every_line_whole_or_in_pieces():
    with serving() as listener:
        whole = ask(listener, b"a" * (MAX_LINE + 1) + b"\ncaf\xe9\n")
        pieces = ask(listener, b"a" * 3000, b"a" * 3000, b"a" * 3000 + b"\ncaf\xe9\n")
    assert whole == pieces == [LINE_TOO_LONG, "caf\\xe9: bad query (not UTF-8)"]


def test_bad_lines_get_their_row_without_a_lookup():
    with serving() as listener:
        rows = ask(listener, b"caf\xe9.lab.test\n\nweb\x00.lab.test\r\n\x1b[2J\n")
    assert rows == [
        "caf\\xe9.lab.test: bad query (not UTF-8)",  # the blank line asks nothing
        "web\\x00.lab.test: bad query (control characters)",
        "\\e[2J: bad query (control characters)",
    ]


@pytest.mark.lab
def test_answers_come_back_in_the_order_asked():
    # DNS names, hosts-file names, reverse lookups and failures take different
    # times; the answers must still come in request order.
    queries = ["web.lab.test", "localhost", "127.1.0.66", "mail.lab.test", "nope.lab.test", "hostsonly"] * 8
    with serving() as listener:
        rows = ask(listener, "".join(q + "\n" for q in queries).encode())
    assert [row.split(": ", 1)[0] for row in rows] == queries
    assert (rows[0], rows[2], rows[3]) == (
        "web.lab.test: 127.1.0.10 fd00:1ab:1::10",
        "127.1.0.66: liar.lab.test (NOT confirmed)",
        "mail.lab.test: 127.1.0.25",
    )


@pytest.mark.lab
def test_utf8_names_are_looked_up_as_written():
    with serving() as listener:
        rows = ask(listener, "bücher.lab.test\n".encode())
    assert rows == [format_answer(resolver.lookup("bücher.lab.test", resolver.HostsFile.load()))]
    assert rows[0].startswith("bücher.lab.test: ")


@pytest.mark.lab
def test_a_last_line_without_a_newline_is_answered():
    with serving() as listener:
        assert ask(listener, b"mail.lab.test\n127.1.0.66") == [
            "mail.lab.test: 127.1.0.25",
            "127.1.0.66: liar.lab.test (NOT confirmed)",
        ]


@pytest.mark.lab
def test_every_line_gets_one_printable_row_whatever_it_asks():
    hostile = [
        "::ffff:127.1.0.10",  # v4-mapped
        "fe80::1%" + "z" * 64,  # a zone no interface has
        "a" * 300,  # labels over 63 characters
        "bücher..lab.test",
        "[bold]evil[/bold].lab.test",
        "127.1.0.78",  # its PTR name holds an escape sequence
        "xn--",
        ".",
    ]
    lines = hostile * 3  # more lines than lookup threads: none may be lost
    with serving() as listener:
        rows = ask(listener, "".join(q + "\n" for q in lines).encode() + b"web\x00\nmail.lab.test\n")
    assert len(rows) == len(lines) + 2
    for query, row in zip(lines, rows, strict=False):
        assert row.startswith(query + ": ") and row.isprintable()
    assert rows[-2:] == ["web\\x00: bad query (control characters)", "mail.lab.test: 127.1.0.25"]
    assert "127.1.0.78: \\e[31mred\\e[0m.lab.test (confirmed)" in rows


@pytest.mark.lab
def test_a_client_flooding_lookups_without_reading_cannot_starve_another():
    flood = b"web.lab.test\n" * 50_000
    with serving() as listener:
        hog = socket.create_connection((listener.address, listener.port))
        threading.Thread(target=_send_ignoring_errors, args=(hog, flood), daemon=True).start()
        time.sleep(0.5)  # the hog is well ahead
        most_pending = 0
        try:
            for _ in range(3):
                start = time.monotonic()
                assert ask(listener, b"mail.lab.test\n") == ["mail.lab.test: 127.1.0.25"]
                assert time.monotonic() - start < 2.0  # a starved client would wait for ever
                most_pending = max([most_pending, *(c.pending for c in list(listener.clients.values()))])
        finally:
            hog.close()
    assert 0 < most_pending <= MAX_PENDING


def _send_ignoring_errors(sock: socket.socket, data: bytes) -> None:
    with contextlib.suppress(OSError):  # the test closes it
        sock.sendall(data)
