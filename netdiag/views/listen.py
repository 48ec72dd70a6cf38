"""``listen``'s display: one line per connection event on stderr (or JSON
lines on stdout), what clients send in show mode, and the summary at the end.
Pure: events in, safe text out (every byte from a client is untrusted)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from netdiag.listen import Event, Summary
from netdiag.output import Format, Output
from netdiag.telnet.screen import hexdump
from netdiag.text import visible

Show = Callable[[Event], None]


def event_writer(out: Output, mode: str, *, quiet: bool, hexdump: bool) -> Show:
    """How each event is shown, in the format ``out`` was set to."""
    if out.format in (Format.JSON, Format.JSON_LINES):
        return _json_events(out, mode, hexdump)
    return _text_events(out, mode, quiet, hexdump)


def show_summary(out: Output, summary: Summary, interrupted: bool) -> None:
    elapsed = time.monotonic() - summary.started
    if out.format in (Format.JSON, Format.JSON_LINES):
        out.json_line(
            {"event": "summary", "connections": summary.connections, "refused": summary.refused,
             "peak_clients": summary.peak_clients, "received": summary.received, "sent": summary.sent,
             "elapsed_s": round(elapsed, 3), "interrupted": interrupted}
        )  # fmt: skip
    else:
        out.info(summary_text(summary, elapsed))


def _json_events(out: Output, mode: str, as_hex: bool) -> Show:
    def show(event: Event) -> None:
        if event.kind == "data":
            for data_record in data_records(event, as_hex):
                out.json_line(data_record)
            return
        record: dict[str, Any] = {"event": event.kind, "address": event.address, "port": event.port}
        if event.kind == "listening":
            record["mode"] = mode
        if event.stats is not None and event.kind == "close":
            s = event.stats
            record.update(received=s.received, sent=s.sent, duration_s=round(s.duration_s, 6), reason=s.reason)
        if event.detail:
            record["detail"] = event.detail
        out.json_line(record)

    return show


def _text_events(out: Output, mode: str, quiet: bool, as_hex: bool) -> Show:
    from rich.text import Text

    _ = out.err  # rich's console made now: later, every descriptor may be a client's

    def show(event: Event) -> None:
        if event.kind == "listening":
            address = f"[{event.address}]" if ":" in event.address else event.address
            out.text(f"listening on {address} port {event.port} ({mode})\n")
        elif event.kind == "data":  # on stdout, even with -q: what show mode is for
            out.text(data_text(event, as_hex))
        elif event.kind == "refused" and not event.address:  # the server is out of something: said even with -q
            out.warn(event.detail or "")
        elif quiet:
            return
        elif event.kind == "open":
            out.info(Text(f"+ {event.address} port {event.port} connected", style="green"))
        elif event.kind == "close":
            out.info(Text(close_text(event), style="dim"))
        elif event.kind == "refused":
            out.info(Text(f"! {event.address} refused: {visible(event.detail or '')}", style="yellow"))

    return show


def plural(count: int, noun: str) -> str:
    """``1 connection``, ``2 connections``, ``1,024 bytes``."""
    return f"{count:,} {noun}" if count == 1 else f"{count:,} {noun}s"


def client_tag(address: str, port: int) -> str:
    """``127.0.0.1:40312``, ``[::1]:40312``."""
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def data_lines(data: bytes) -> list[str]:
    """A data event's text, cut after each LF, each piece with its line end
    (the last one may have none: a line shown before its end), decoded as
    UTF-8 (other bytes as ``\\xNN``). Not yet made visible."""
    pieces = data.decode("utf-8", "backslashreplace").split("\n")
    lines = [piece + "\n" for piece in pieces[:-1]]
    if pieces[-1]:
        lines.append(pieces[-1])
    return lines


def data_text(event: Event, as_hex: bool = False) -> str:
    """What show mode prints for a data event: ``127.0.0.1:40312> GET / HTTP/1.1``
    for each line (without its LF or CR LF; every other control character as
    an escape), or hex dump lines (``127.0.0.1:40312> 00000000  47 45 54 ...``)."""
    tag = client_tag(event.address, event.port)
    if as_hex:
        return hexdump(event.data, tag + ">", event.offset)
    rows = []
    for line in data_lines(event.data):
        text = line.removesuffix("\n").removesuffix("\r") if line.endswith("\n") else line
        rows.append(f"{tag}> {visible(text)}\n")
    return "".join(rows)


def data_records(event: Event, as_hex: bool = False) -> list[dict[str, str | int]]:
    """JSON records for a data event: one per line, ``data`` the visible text
    of the line with its line end (``GET / HTTP/1.1\\r\\n``; none: the line
    was shown before its end); with ``as_hex``, one per read, ``hex`` its bytes
    and ``offset`` where they start in what the client sent."""
    head: dict[str, str | int] = {"event": "data", "address": event.address, "port": event.port}
    if as_hex:
        return [{**head, "offset": event.offset, "hex": event.data.hex()}]
    return [{**head, "data": visible(line)} for line in data_lines(event.data)]


def close_text(event: Event) -> str:
    """``- 127.0.0.1 port 40312 closed (client closed): 4 bytes in, 4 out, 0.009s``"""
    s = event.stats
    assert s is not None  # a close event carries its client's stats
    return (
        f"- {event.address} port {event.port} closed ({s.reason}): "
        f"{plural(s.received, 'byte')} in, {s.sent:,} out, {s.duration_s:.3f}s"
    )


def summary_text(summary: Summary, elapsed: float) -> str:
    """``served 1 connection (0 refused, peak 1 at once); 6 bytes in, 6 out in 4.1s``"""
    return (
        f"served {plural(summary.connections, 'connection')} ({summary.refused:,} refused, peak "
        f"{summary.peak_clients:,} at once); {plural(summary.received, 'byte')} in, {summary.sent:,} out "
        f"in {elapsed:.1f}s"
    )
