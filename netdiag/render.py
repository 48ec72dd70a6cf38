"""Rendering: rich tables on stdout, diagnostics on stderr, JSON documents.

Text from the network or name services (hostnames, aliases, banners) is
untrusted: it only ever reaches the terminal through ``safe()``, as plain
``Text`` (never markup) with control and format characters made visible.
"""

from __future__ import annotations

import json
import sys
import unicodedata
from collections.abc import Iterable
from typing import IO, Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from netdiag.models import DnsAnswer, DnsOutcome, ServiceAnswer, ServiceEntry

PIPE_WIDTH = 250
_ESCAPES = {"\t": "\\t", "\n": "\\n", "\r": "\\r", "\x1b": "\\e"}


def visible(text: str) -> str:
    """Make control, format (bidi overrides) and unassigned characters visible."""
    if text.isprintable():
        return text
    return "".join(_visible_char(c) for c in text)


def _visible_char(char: str) -> str:
    if char.isprintable() or char == " ":
        return char
    if char in _ESCAPES:
        return _ESCAPES[char]
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if unicodedata.category(char) == "Zs":  # exotic spaces read as spaces
        return char
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def safe(text: str | None, style: str = "") -> Text:
    """Untrusted text as a literal rich Text: markup is never interpreted."""
    return Text(visible(text or ""), style=style)


class Output:
    """Where results (stdout) and diagnostics (stderr) go. Injectable for tests.

    Colour follows rich: off when the stream is not a terminal or NO_COLOR is set.
    """

    def __init__(self, stdout: IO[str] | None = None, stderr: IO[str] | None = None) -> None:
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr
        self.out = Console(file=self.stdout, highlight=False)
        if not self.out.is_terminal:  # piped: never fold an address to fit 80 columns
            self.out = Console(file=self.stdout, highlight=False, width=PIPE_WIDTH)
        self.err = Console(file=self.stderr, highlight=False)

    @property
    def interactive(self) -> bool:
        """Progress displays only make sense when stderr is a terminal."""
        return self.err.is_terminal

    def error(self, message: str) -> None:
        self.err.print(Text(f"netdiag: {visible(message)}", style="bold red"), soft_wrap=True)

    def warn(self, message: str) -> None:
        self.err.print(Text(f"netdiag: {visible(message)}", style="yellow"), soft_wrap=True)

    def info(self, message: str | Text) -> None:
        self.err.print(message, soft_wrap=True)

    def table(self, table: Table) -> None:
        self.out.print(table)

    def json(self, document: Any) -> None:
        # ensure_ascii: every value survives exactly for jq, and no raw control
        # byte from the network can reach a terminal.
        self.stdout.write(json.dumps(document, ensure_ascii=True, indent=2) + "\n")
        self.stdout.flush()

    def json_line(self, document: Any) -> None:
        self.stdout.write(json.dumps(document, ensure_ascii=True, separators=(",", ":")) + "\n")
        self.stdout.flush()


def new_table(*columns: str, title: str | None = None) -> Table:
    table = Table(title=title, header_style="bold", title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


# --- service ---------------------------------------------------------------


def service_entry_json(entry: ServiceEntry) -> dict[str, Any]:
    return {"name": entry.name, "port": entry.port, "protocol": entry.protocol, "aliases": list(entry.aliases)}


def service_answers_json(answers: Iterable[ServiceAnswer]) -> dict[str, Any]:
    return {
        "results": [
            {
                "query": a.query,
                "found": bool(a.entries),
                "entries": [service_entry_json(e) for e in a.entries],
                "error": a.error,
            }
            for a in answers
        ]
    }


def service_answers_table(answers: Iterable[ServiceAnswer]) -> Table:
    table = new_table("Query", "Service", "Port", "Proto", "Aliases")
    for answer in answers:
        for entry in answer.entries:
            table.add_row(
                safe(answer.query), safe(entry.name, "bold"), str(entry.port), entry.protocol,
                safe(" ".join(entry.aliases), "dim"),
            )  # fmt: skip
    return table


def service_list_table(entries: Iterable[ServiceEntry]) -> Table:
    table = new_table("Service", "Port", "Proto", "Aliases")
    for entry in entries:
        table.add_row(safe(entry.name, "bold"), str(entry.port), entry.protocol, safe(" ".join(entry.aliases), "dim"))
    return table


# --- dns -------------------------------------------------------------------


def dns_answer_json(answer: DnsAnswer) -> dict[str, Any]:
    return {
        "query": answer.query,
        "kind": answer.kind,
        "status": answer.outcome.value,
        "canonical": answer.canonical,
        "aliases": list(answer.aliases),
        "addresses": list(answer.addresses),
        "ptr": answer.ptr,
        "confirmed": answer.confirmed,
        "source": answer.source,
        "elapsed_ms": round(answer.elapsed_ms, 3),
        "error": None if answer.ok else answer.outcome.message,
        "detail": answer.detail,
    }


def dns_answers_table(answers: Iterable[DnsAnswer]) -> Table:
    table = new_table("Query", "Answer", "Name", "Confirmed", "Source", "Time")
    for a in answers:
        time_cell = Text(f"{a.elapsed_ms:.1f} ms", style="dim")
        if not a.ok:
            reason = a.outcome.message + (f": {a.detail}" if a.outcome is DnsOutcome.FAILURE and a.detail else "")
            table.add_row(safe(a.query), safe(reason, "red"), "", "", "", time_cell)
        elif a.kind == "forward":
            names = Text("\n").join([safe(a.canonical, "bold")] + [safe(alias, "dim") for alias in a.aliases])
            table.add_row(safe(a.query), Text("\n".join(a.addresses)), names, "", a.source or "", time_cell)
        else:
            confirmed = Text("yes", style="green") if a.confirmed else Text("NO", style="bold red")
            table.add_row(safe(a.query), safe(a.ptr, "bold"), safe(" ".join(a.aliases), "dim"), confirmed,
                          a.source or "", time_cell)  # fmt: skip
    return table
