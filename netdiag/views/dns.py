"""``dns``'s display of the system view: what applications see (getaddrinfo,
hosts and NSS, forward-confirmed reverse names). One renderer per answer
kind: a forward answer is addresses and names, a reverse one a PTR name and
whether it confirms."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from netdiag.models import DnsAnswer, ForwardAnswer, ReverseAnswer
from netdiag.output import Format, Output
from netdiag.text import visible
from netdiag.views.table import Rows, new_table, safe

if TYPE_CHECKING:
    from rich.table import Table


def show_answers(out: Output, answers: list[DnsAnswer]) -> None:
    if out.format in (Format.JSON, Format.JSON_LINES):
        out.json({"results": [answer_json(a) for a in answers]})
    else:
        out.tabular(lambda: answers_table(answers), answers_rows(answers))


def answers_rows(answers: Iterable[DnsAnswer]) -> Rows:
    """One row per address or name: ``grep`` and ``awk`` see every answer on a
    line with its query (a rich table stacks them in one cell)."""
    rows = []
    for a in answers:
        time_ms = f"{a.elapsed_ms:.1f}"
        if not a.ok:
            rows.append([visible(a.query), a.outcome.value, "-", time_ms, visible(a.reason), "-"])
        elif isinstance(a, ForwardAnswer):
            names = " ".join(visible(n) for n in (a.canonical or "", *a.aliases) if n) or "-"
            for address in a.addresses:
                rows.append([visible(a.query), "ok", a.source or "-", time_ms, address, names])
        else:
            confirmed = "confirmed" if a.confirmed else "unconfirmed"
            rows.append([visible(a.query), "ok", a.source or "-", time_ms, visible(a.ptr or ""), confirmed])
    return ["QUERY", "STATUS", "SOURCE", "TIME_MS", "ANSWER", "NAMES"], rows


def answers_table(answers: Iterable[DnsAnswer]) -> Table:
    from rich.text import Text

    table = new_table("Query", "Answer", "Name", "Confirmed", "Source", "Time")
    for a in answers:
        time_cell = Text(f"{a.elapsed_ms:.1f} ms", style="dim")
        if not a.ok:
            table.add_row(safe(a.query), safe(a.reason, "red"), "", "", "", time_cell)
        elif isinstance(a, ForwardAnswer):
            names = Text("\n").join([safe(a.canonical, "bold")] + [safe(alias, "dim") for alias in a.aliases])
            table.add_row(safe(a.query), Text("\n".join(a.addresses)), names, "", a.source or "", time_cell)
        else:
            confirmed = Text("yes", style="green") if a.confirmed else Text("NO", style="bold red")
            table.add_row(safe(a.query), safe(a.ptr, "bold"), safe(" ".join(a.aliases), "dim"), confirmed,
                          a.source or "", time_cell)  # fmt: skip
    return table


def answer_json(answer: DnsAnswer) -> dict[str, Any]:
    """Every answer has every key (stable for jq); those of the other kind are null."""
    forward = answer if isinstance(answer, ForwardAnswer) else None
    reverse = answer if isinstance(answer, ReverseAnswer) else None
    return {
        "query": answer.query,
        "kind": "forward" if forward else "reverse",
        "status": answer.outcome.value,
        "canonical": forward.canonical if forward else None,
        "aliases": list(answer.aliases),
        "addresses": list(forward.addresses) if forward else [],
        "ptr": reverse.ptr if reverse else None,
        "confirmed": reverse.confirmed if reverse else None,
        "source": answer.source,
        "elapsed_ms": round(answer.elapsed_ms, 3),
        "error": None if answer.ok else answer.outcome.message,
        "detail": answer.detail,
    }
