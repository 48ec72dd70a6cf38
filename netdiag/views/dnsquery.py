"""``dns``'s protocol view: what DNS servers say. Each question a table, one
TTL column per server side by side, what a server does differently in red
(answers, rcode, a server that did not answer) or yellow (TTLs); the CNAME
chain under it. Plain rows (one per server and record) in a pipe; only the
data with --short, as ``dig +short``; one JSON document with the raw values.

Names, rdata (TXT can carry anything) and failure reasons come from the
network: shown only through ``visible()``; JSON keeps them exact (ASCII)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from netdiag.output import Format, Output
from netdiag.records import Comparison, Failure, Outcome, Record, Response, Server, compare
from netdiag.text import visible
from netdiag.views.table import Rows, new_table, plain_table, safe

if TYPE_CHECKING:
    from rich.table import Table
    from rich.text import Text


def show_outcomes(out: Output, outcomes: Sequence[Outcome], *, short: bool, interrupted: bool = False) -> None:
    comparisons = compare(outcomes)
    if out.format in (Format.JSON, Format.JSON_LINES):
        out.json(document(comparisons, interrupted))
    elif short:
        out.text("".join(visible(line) + "\n" for line in short_lines(outcomes)))
    elif out.format is Format.RICH:
        for comparison in comparisons:
            show_question(out, comparison)
    else:
        out.text(plain_table(*plain_rows(outcomes)))
    for comparison in comparisons:
        for outcome in comparison.outcomes if out.format is not Format.RICH else ():
            where = f"{outcome.question.name} {outcome.question.type} @{outcome.server.label}"
            if isinstance(outcome, Failure):
                out.warn(f"{where}: {outcome.reason}")
            elif outcome.extended_errors:  # RFC 8914's why (a DNSSEC failure's reason): dig prints it too
                out.warn(f"{where}: {outcome.rcode}, {'; '.join(outcome.extended_errors)}")
    out.info(summary_line(outcomes, interrupted))


# --- pipes and --short ------------------------------------------------------------


def short_lines(outcomes: Iterable[Outcome]) -> list[str]:
    """The data of every answer record, in order: ``dig +short``."""
    return [record.data for o in outcomes if isinstance(o, Response) for record in o.answer]


def plain_rows(outcomes: Iterable[Outcome]) -> Rows:
    """A row per server and answer record (the authority's when there is no
    answer: an NXDOMAIN's SOA); a failure is one row, its reason as DATA."""
    headers = ["QUESTION", "QTYPE", "SERVER", "STATUS", "FLAGS", "MS", "NAME", "TTL", "TYPE", "DATA"]
    rows = []
    for o in outcomes:
        head = [visible(o.question.name), o.question.type, visible(o.server.label)]
        if isinstance(o, Failure):
            rows.append([*head, o.kind.value, "-", f"{o.elapsed_ms:.1f}", "-", "-", "-", visible(o.reason)])
            continue
        flags = ",".join(f.lower() for f in o.flags) or "-"
        status = [o.rcode, flags, f"{o.elapsed_ms:.1f}"]
        shown = o.answer or o.authority
        if not shown:
            rows.append([*head, *status, "-", "-", "-", "-"])
        for r in shown:
            rows.append([*head, *status, visible(r.name), str(r.ttl), r.type, visible(r.data)])
    return headers, rows


# --- a terminal -----------------------------------------------------------------


def show_question(out: Output, comparison: Comparison) -> None:
    """One question on a terminal: its title (and status, for one server),
    records down and servers across (their TTLs), each server's status, the
    CNAME chain, and what differs. A table too wide for the terminal is
    printed as plain rows instead, as every table is."""
    from rich.text import Text

    question = comparison.question
    outcomes = comparison.outcomes
    several = len(outcomes) > 1
    title = Text.assemble((visible(question.name), "bold"), " ", (question.type, "cyan"))
    if question.rclass != "IN":
        title.append(f" {question.rclass}", style="cyan")
    if not several:
        title.append("  ")
        title.append_text(_status(outcomes[0]))
    out.out.print(title, soft_wrap=True)
    if several:
        for outcome in outcomes:
            line = Text("  ")
            line.append(
                visible(outcome.server.label), style="bold red" if comparison.differences(outcome.server) else "bold"
            )
            line.append("  ")
            line.append_text(_status(outcome))
            out.out.print(line, soft_wrap=True)
    if _union(outcomes):
        table = records_table(comparison)
        if out.fits(table):
            out.table(table)
        else:  # too wide: whole lines the terminal may wrap; the data (a key, a TXT) is never cut
            out.text(plain_table(*record_rows(comparison)))
    chain = _chain_text(comparison)
    if chain is not None:
        out.out.print(chain, soft_wrap=True)
    if several and not comparison.agree:
        out.out.print(Text(_disagreement(comparison), style="red"), soft_wrap=True)
    out.out.print()


def records_table(comparison: Comparison) -> Table:
    """Records down; one TTL column per server (a dash in red where a server lacks the record)."""
    from rich.text import Text

    outcomes = comparison.outcomes
    several = len(outcomes) > 1
    headers = [visible(o.server.label) for o in outcomes] if several else ["TTL"]
    table = new_table("Name", "Type", "Data", *headers)
    for column in table.columns[3:]:
        column.justify = "right"
    for (name, rtype, data), section in _union(outcomes):
        style = "dim" if section == "authority" else ""
        cells: list[Any] = [safe(name, style), Text(rtype, style="cyan"), safe(data, style or "bold")]
        cells += [_ttl_cell(outcome, (name, rtype, data), comparison, several) for outcome in outcomes]
        table.add_row(*cells)
    return table


def record_rows(comparison: Comparison) -> Rows:
    """A question's records as plain lines, the data last and whole."""
    outcomes = comparison.outcomes
    several = len(outcomes) > 1
    ttl_headers = [f"TTL@{visible(o.server.label)}" for o in outcomes] if several else ["TTL"]
    rows = []
    for (name, rtype, data), _section in _union(outcomes):
        ttls = [_ttl_of(o, (name, rtype, data)) for o in outcomes]
        rows.append([visible(name), rtype, *("-" if t is None else str(t) for t in ttls), visible(data)])
    return ["NAME", "TYPE", *ttl_headers, "DATA"], rows


def _union(outcomes: Iterable[Outcome]) -> list[tuple[tuple[str, str, str], str]]:
    """Every record any server gave (the answer's, or the authority's when a
    server had no answer), once each, in the order first seen."""
    seen: dict[tuple[str, str, str], str] = {}
    for o in outcomes:
        if isinstance(o, Response):
            section = "answer" if o.answer else "authority"
            for r in o.answer or o.authority:
                seen.setdefault((r.name, r.type, r.data), section)
    return list(seen.items())


def _ttl_of(outcome: Outcome, key: tuple[str, str, str]) -> int | None:
    if isinstance(outcome, Failure):
        return None
    for r in outcome.answer or outcome.authority:
        if (r.name, r.type, r.data) == key:
            return r.ttl
    return None


def _ttl_cell(outcome: Outcome, key: tuple[str, str, str], comparison: Comparison, several: bool) -> Text:
    from rich.text import Text

    ttl = _ttl_of(outcome, key)
    if ttl is None:
        return Text("—" if isinstance(outcome, Response) else "", style="bold red")
    differs = several and outcome.server in comparison.ttl_differs
    return Text(str(ttl), style="yellow" if differs else "")


def _status(outcome: Outcome) -> Text:
    """``NOERROR aa rd ra · udp 0.4 ms``, or the failure in red."""
    from rich.text import Text

    if isinstance(outcome, Failure):
        return Text(f"{outcome.kind.value}: {visible(outcome.reason)}", style="bold red")
    text = Text(outcome.rcode, style="green" if outcome.rcode == "NOERROR" else "bold red")
    if outcome.flags:
        text.append(" " + " ".join(f.lower() for f in outcome.flags), style="dim")
    text.append(f" · {outcome.transport} {outcome.elapsed_ms:.1f} ms", style="dim")
    if outcome.extended_errors:
        text.append(" · " + visible("; ".join(outcome.extended_errors)), style="yellow")
    return text


def _chain_text(comparison: Comparison) -> Text | None:
    """``alias.auth.test. → www.auth.test. → web.auth.test. → 192.0.2.10``,
    as the reference server answered (the others' differences are marked)."""
    from rich.text import Text

    reference = next(
        (o for o in comparison.outcomes if isinstance(o, Response) and o.server == comparison.reference), None
    )
    if reference is None:
        return None
    chain = reference.chain
    if not chain.aliases:
        return None
    text = Text("chain: ", style="dim")
    for name in chain.names:
        text.append(visible(name))
        text.append(" → ", style="dim")
    text.append(", ".join(visible(r.data) for r in chain.records) or "(no data)", style="bold")
    if chain.looped:
        text.append("  (a CNAME loop)", style="bold red")
    return text


def _disagreement(comparison: Comparison) -> str:
    """``differs: 127.0.0.6 (no answer); 127.0.0.3 (ttl)``: each server that
    parts from the answer most servers gave, and in what."""
    parts = [
        f"{visible(o.server.label)} ({', '.join(kinds)})"
        for o in comparison.outcomes
        if (kinds := comparison.differences(o.server))
    ]
    return "differs: " + "; ".join(parts)


def summary_line(outcomes: Sequence[Outcome], interrupted: bool = False) -> str:
    counts: dict[str, int] = {}
    for o in outcomes:
        word = o.rcode if isinstance(o, Response) else o.kind.value
        counts[word] = counts.get(word, 0) + 1
    servers = len({o.server for o in outcomes})
    tally = ", ".join(f"{n:,} {word}" for word, n in counts.items())
    line = f"{len(outcomes):,} {'query' if len(outcomes) == 1 else 'queries'} to {servers} server{'s' * (servers != 1)}"
    return line + (f": {tally}" if tally else "") + (" (interrupted: partial results)" if interrupted else "")


# --- JSON ---------------------------------------------------------------------


def document(comparisons: Iterable[Comparison], interrupted: bool = False) -> dict[str, Any]:
    results = []
    for comparison in comparisons:
        q = comparison.question
        results.append(
            {
                "question": {"name": q.name, "type": q.type, "class": q.rclass},
                "servers": [outcome_json(o) for o in comparison.outcomes],
                "agree": comparison.agree,
                "differences": {o.server.label: list(comparison.differences(o.server)) for o in comparison.outcomes},
            }
        )
    return {"results": results, "interrupted": interrupted}


def outcome_json(outcome: Outcome) -> dict[str, Any]:
    """Stable keys: a failure has every key a response has (null or empty)."""
    common = {"server": server_json(outcome.server), "transport": outcome.transport}
    elapsed = round(outcome.elapsed_ms, 3)
    if isinstance(outcome, Failure):
        empty: dict[str, Any] = {key: [] for key in ("flags", "answer", "authority", "additional", "chain")}
        return {**common, "status": outcome.kind.value, "rcode": None, **empty, "extended_errors": [],
                "elapsed_ms": elapsed, "error": outcome.reason}  # fmt: skip
    return {
        **common,
        "status": "answered",
        "rcode": outcome.rcode,
        "flags": list(outcome.flags),
        "answer": [record_json(r) for r in outcome.answer],
        "authority": [record_json(r) for r in outcome.authority],
        "additional": [record_json(r) for r in outcome.additional],
        "chain": list(outcome.chain.names),
        "extended_errors": list(outcome.extended_errors),
        "elapsed_ms": elapsed,
        "error": None,
    }


def server_json(server: Server) -> dict[str, Any]:
    return {"label": server.label, "address": server.address, "port": server.port, "transport": server.transport}


def record_json(record: Record) -> dict[str, Any]:
    return {"name": record.name, "type": record.type, "class": record.rclass, "ttl": record.ttl, "data": record.data}
