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
    from rich.text import Text

    from netdiag.crosscheck import Verdict
    from netdiag.records import Outcome


def show_answers(out: Output, answers: list[DnsAnswer], *, short: bool = False) -> None:
    if out.format in (Format.JSON, Format.JSON_LINES):
        out.json({"results": [answer_json(a) for a in answers]})
    elif short:
        out.text("".join(line + "\n" for a in answers for line in short_lines(a)))
    else:
        out.tabular(lambda: answers_table(answers), answers_rows(answers))


def short_lines(answer: DnsAnswer) -> list[str]:
    """--short: the addresses of a name, the PTR name of an address; nothing for a failure."""
    if not answer.ok:
        return []
    if isinstance(answer, ForwardAnswer):
        return list(answer.addresses)
    return [visible(answer.ptr or "")]


def show_compared(
    out: Output, answers: list[DnsAnswer], said: dict[str, list[Outcome]], verdicts: dict[str, Verdict]
) -> None:
    """--compare: each query's system answer beside each DNS server's, and the verdict."""
    from netdiag.crosscheck import dns_data

    labels = list(dict.fromkeys(o.server.label for outcomes in said.values() for o in outcomes))
    if out.format in (Format.JSON, Format.JSON_LINES):
        results = []
        for a in answers:
            dns = {label: _sorted(dns_data(said[a.query], label)) for label in labels}
            verdict = verdicts[a.query]
            results.append({**answer_json(a), "dns": dns, "agrees": verdict.agrees, "verdict": verdict.words})
        out.json({"results": results})
        return
    out.tabular(lambda: compared_table(answers, said, verdicts, labels), compared_rows(answers, said, verdicts, labels))


def _sorted(found: set[str] | None) -> list[str] | None:
    return None if found is None else sorted(found)


def _system_data(answer: DnsAnswer) -> str:
    if not answer.ok:
        return answer.outcome.value
    if isinstance(answer, ForwardAnswer):
        return " ".join(answer.addresses)
    return visible(answer.ptr or "")


def _dns_cell(outcomes: list[Outcome], label: str) -> str:
    from netdiag.crosscheck import dns_data, failed_rcode

    found = dns_data(outcomes, label)
    if found is None:
        return "(no answer)"
    rcode = failed_rcode(outcomes, label)
    if rcode is not None:
        return f"({rcode})"
    return " ".join(visible(d) for d in sorted(found)) or "(none)"


def compared_rows(
    answers: list[DnsAnswer], said: dict[str, list[Outcome]], verdicts: dict[str, Verdict], labels: list[str]
) -> Rows:
    """A row per query and server: grep finds every disagreement by its words."""

    rows = []
    for a in answers:
        for label in labels or ["-"]:
            cell = _dns_cell(said[a.query], label) if labels else "(not asked)"
            rows.append([visible(a.query), a.source or "-", _system_data(a) or "-", visible(label), cell,
                         verdicts[a.query].words])  # fmt: skip
    return ["QUERY", "SOURCE", "SYSTEM", "SERVER", "DNS", "VERDICT"], rows


def compared_table(
    answers: list[DnsAnswer], said: dict[str, list[Outcome]], verdicts: dict[str, Verdict], labels: list[str]
) -> Table:
    from rich.text import Text

    table = new_table("Query", "System", "Source", *(f"DNS {visible(label)}" for label in labels), "Verdict")
    for a in answers:
        verdict = verdicts[a.query]
        cells: list[Any] = [safe(a.query), Text(_system_data(a).replace(" ", "\n")), a.source or ""]
        for label in labels:
            cells.append(Text(_dns_cell(said[a.query], label).replace(" ", "\n")))
        cells.append(Text(verdict.words, style="green" if verdict.agrees else "bold red"))
        table.add_row(*cells)
    return table


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
            names = chain_text(a)
            table.add_row(safe(a.query), Text("\n".join(a.addresses)), names, "", a.source or "", time_cell)
        else:
            confirmed = Text("yes", style="green") if a.confirmed else Text("NO", style="bold red")
            table.add_row(safe(a.query), safe(a.ptr, "bold"), safe(" ".join(a.aliases), "dim"), confirmed,
                          a.source or "", time_cell)  # fmt: skip
    return table


def chain_text(answer: ForwardAnswer) -> Text:
    """``www.lab.test → web.lab.test``: the CNAME chain (both families'), the canonical name last."""
    from rich.text import Text

    text = Text()
    if answer.source == "hosts":  # a hosts line's other names are aliases, not a chain: no arrows
        names = [safe(answer.canonical, "bold")] + [safe(alias, "dim") for alias in answer.aliases]
        return Text("\n").join(names)
    for alias in answer.aliases:
        if alias != answer.canonical:
            text.append_text(safe(alias, "dim"))
            text.append(" → ", style="dim")
    text.append_text(safe(answer.canonical, "bold"))
    return text


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
