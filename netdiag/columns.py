"""Plain aligned columns for pipes: no box, no colour, no rich import.

``grep``, ``awk`` and ``cut`` read these; and a /16's worth of rows renders in
a fraction of the time rich takes to lay out a table.
"""

from __future__ import annotations

from collections.abc import Iterable

from netdiag.models import DnsAnswer, DnsOutcome, HostResult, ServiceAnswer, ServiceEntry, SweepSummary
from netdiag.text import visible

Rows = tuple[list[str], list[list[str]]]  # headers, and the rows' cells (already made safe)


def plain_table(headers: list[str], rows: Iterable[list[str]], width: int | None = None) -> str:
    """Columns aligned with spaces, no box and no colour: for pipes, grep and
    awk. Cells must already be made safe with ``visible``. With ``width`` (a
    terminal's) no line is longer: the last column (names) is cut short with
    an ellipsis, or, when even that is not enough, columns are left out from
    the right; a number is never split or cut."""
    rows = list(rows)
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    if width is not None:
        widths = _fit(widths, width)
        headers, rows = headers[: len(widths)], [row[: len(widths)] for row in rows]
    template = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [template.format(*_cut(headers, widths)).rstrip()]
    lines += [template.format(*_cut(row, widths)).rstrip() for row in rows]
    return "\n".join(lines) + "\n"


MIN_CUT = 8  # a name cut shorter than this says nothing: the column is left out instead


def _fit(widths: list[int], width: int) -> list[int]:
    """The column widths that fit: the last column (names) cut, else columns
    left out from the right whole (an address or a number is never cut)."""
    widths = list(widths)
    over = _line_width(widths) - width
    if over > 0 and widths[-1] - over >= MIN_CUT:
        widths[-1] -= over
        return widths
    while len(widths) > 2 and _line_width(widths) > width:
        widths.pop()
    return widths


def _line_width(widths: list[int]) -> int:
    return sum(widths) + 2 * (len(widths) - 1)


def _cut(cells: list[str], widths: list[int]) -> list[str]:
    return [cell if len(cell) <= w else cell[: w - 1] + "…" for cell, w in zip(cells, widths, strict=True)]


def milliseconds(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.3f}" if value < 10 else f"{value:.1f}"


def sweep_rows(results: Iterable[HostResult], show_loss: bool, show_mac: bool = False) -> Rows:
    headers = ["ADDRESS", "STATE", "RTT_MS"] + (["LOSS", "MIN/AVG/MAX_MS"] if show_loss else [])
    headers += (["MAC", "VENDOR"] if show_mac else []) + ["NAME"]
    rows = []
    ms = milliseconds
    for r in results:
        # Addresses are formatted by netdiag itself (or checked as hostnames):
        # only names and reasons come from outside.
        state = r.state.value if r.reason is None else f"{r.state.value} ({visible(r.reason)})"
        received = [t for t in r.rtts_ms if t is not None]
        avg = sum(received) / len(received) if received else None
        row = [r.address, state, ms(avg)]
        if show_loss:
            loss = "" if not r.rtts_ms else f"{1 - len(received) / len(r.rtts_ms):.0%}"
            row += [loss, f"{ms(min(received))}/{ms(avg)}/{ms(max(received))}" if received else ""]
        if show_mac:
            row += [r.mac or "-", "-" if r.vendor is None else visible(r.vendor)]
        row.append("-" if r.name is None else visible(r.name))
        rows.append(row)
    return headers, rows


def sweep_summary_line(summary: SweepSummary) -> str:
    line = (
        f"{summary.up}/{summary.total} hosts up in {summary.elapsed_s:.2f}s "
        f"via {visible(summary.method)} ({visible(summary.method_reason)})"  # interface names are anyone's
    )
    return line + (" (interrupted: partial results)" if summary.interrupted else "")


def service_answers_rows(answers: Iterable[ServiceAnswer]) -> Rows:
    rows = [
        [visible(a.query), visible(e.name), str(e.port), visible(e.protocol), visible(" ".join(e.aliases)) or "-"]
        for a in answers
        for e in a.entries
    ]
    return ["QUERY", "SERVICE", "PORT", "PROTO", "ALIASES"], rows


def service_list_rows(entries: Iterable[ServiceEntry]) -> Rows:
    rows = [[visible(e.name), str(e.port), visible(e.protocol), visible(" ".join(e.aliases)) or "-"] for e in entries]
    return ["SERVICE", "PORT", "PROTO", "ALIASES"], rows


def dns_answers_rows(answers: Iterable[DnsAnswer]) -> Rows:
    """One row per address or name: ``grep`` and ``awk`` see every answer on a
    line with its query (a rich table stacks them in one cell)."""
    rows = []
    for a in answers:
        time_ms = f"{a.elapsed_ms:.1f}"
        if not a.ok:
            reason = a.outcome.message + (f": {a.detail}" if a.outcome is DnsOutcome.FAILURE and a.detail else "")
            rows.append([visible(a.query), a.outcome.value, "-", time_ms, visible(reason), "-"])
        elif a.kind == "forward":
            names = " ".join(visible(n) for n in (a.canonical or "", *a.aliases) if n) or "-"
            for address in a.addresses:
                rows.append([visible(a.query), "ok", a.source or "-", time_ms, address, names])
        else:
            confirmed = "confirmed" if a.confirmed else "unconfirmed"
            rows.append([visible(a.query), "ok", a.source or "-", time_ms, visible(a.ptr or ""), confirmed])
    return ["QUERY", "STATUS", "SOURCE", "TIME_MS", "ANSWER", "NAMES"], rows
