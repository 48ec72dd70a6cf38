"""``service``'s display: answers to queries, or the whole database."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from netdiag.models import ServiceAnswer, ServiceEntry
from netdiag.output import Format, Output
from netdiag.text import visible
from netdiag.views.table import Rows, new_table, safe

if TYPE_CHECKING:
    from rich.table import Table


def show_answers(out: Output, answers: list[ServiceAnswer]) -> None:
    if out.format in (Format.JSON, Format.JSON_LINES):
        out.json(answers_json(answers))
        return
    if any(a.entries for a in answers):
        out.tabular(lambda: answers_table(answers), answers_rows(answers))
    for answer in answers:
        if answer.error:
            out.error(answer.error)


def show_list(out: Output, entries: list[ServiceEntry]) -> None:
    if out.format in (Format.JSON, Format.JSON_LINES):
        out.json({"services": [entry_json(e) for e in entries]})
    else:
        out.tabular(lambda: list_table(entries), list_rows(entries))


def answers_rows(answers: Iterable[ServiceAnswer]) -> Rows:
    rows = [
        [visible(a.query), visible(e.name), str(e.port), visible(e.protocol), visible(" ".join(e.aliases)) or "-"]
        for a in answers
        for e in a.entries
    ]
    return ["QUERY", "SERVICE", "PORT", "PROTO", "ALIASES"], rows


def list_rows(entries: Iterable[ServiceEntry]) -> Rows:
    rows = [[visible(e.name), str(e.port), visible(e.protocol), visible(" ".join(e.aliases)) or "-"] for e in entries]
    return ["SERVICE", "PORT", "PROTO", "ALIASES"], rows


def answers_table(answers: Iterable[ServiceAnswer]) -> Table:
    table = new_table("Query", "Service", "Port", "Proto", "Aliases")
    for answer in answers:
        for entry in answer.entries:
            table.add_row(
                safe(answer.query), safe(entry.name, "bold"), str(entry.port), safe(entry.protocol),
                safe(" ".join(entry.aliases), "dim"),
            )  # fmt: skip
    return table


def list_table(entries: Iterable[ServiceEntry]) -> Table:
    table = new_table("Service", "Port", "Proto", "Aliases")
    for entry in entries:
        table.add_row(
            safe(entry.name, "bold"), str(entry.port), safe(entry.protocol), safe(" ".join(entry.aliases), "dim")
        )
    return table


def entry_json(entry: ServiceEntry) -> dict[str, Any]:
    return {"name": entry.name, "port": entry.port, "protocol": entry.protocol, "aliases": list(entry.aliases)}


def answers_json(answers: Iterable[ServiceAnswer]) -> dict[str, Any]:
    return {
        "results": [
            {
                "query": a.query,
                "found": bool(a.entries),
                "entries": [entry_json(e) for e in a.entries],
                "error": a.error,
            }
            for a in answers
        ]
    }
