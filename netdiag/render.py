"""Rendering: rich tables on stdout, diagnostics on stderr, JSON documents.

Text from the network or name services (hostnames, aliases, banners) is
untrusted: it only ever reaches the terminal through ``safe()``, as plain
``Text`` (never markup) with control and format characters made visible.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.table import Table
from rich.text import Text

from netdiag.columns import milliseconds
from netdiag.models import (
    DnsAnswer,
    DnsOutcome,
    HostResult,
    HostState,
    ServiceAnswer,
    ServiceEntry,
    SweepSummary,
)
from netdiag.targets import AddressBlock
from netdiag.text import visible


def safe(text: str | None, style: str = "") -> Text:
    """Untrusted text as a literal rich Text: markup is never interpreted."""
    return Text(visible(text or ""), style=style)


def new_table(*columns: str, title: str | None = None) -> Table:
    """Drawn only where every cell fits unfolded (Output.tabular): nothing wraps."""
    table = Table(title=title, header_style="bold", title_justify="left")
    for column in columns:
        table.add_column(column, no_wrap=True)
    return table


# --- service ---------------------------------------------------------------


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


# --- sweep -----------------------------------------------------------------

_STATE_STYLE = {
    HostState.UP: "green",
    HostState.DOWN: "red",
    HostState.UNREACHABLE: "magenta",
    HostState.UNRESOLVED: "yellow",
}


def sweep_table(results: Iterable[HostResult], show_loss: bool, show_mac: bool = False) -> Table:
    columns = ["Address", "State", "RTT ms"] + (["Loss", "min/avg/max ms"] if show_loss else [])
    columns += (["MAC", "Vendor"] if show_mac else []) + ["Name"]
    table = new_table(*columns)
    table.columns[2].justify = "right"
    for r in results:
        state = Text(r.state.value, style=_STATE_STYLE[r.state])
        if r.reason:
            state.append(f" ({visible(r.reason)})", style="dim")
        row: list[Any] = [safe(r.address), state, milliseconds(r.rtt_avg)]
        if show_loss:
            loss = "" if r.loss is None else f"{r.loss:.0%}"
            spread = "/".join(milliseconds(v) for v in (r.rtt_min, r.rtt_avg, r.rtt_max)) if r.received else ""
            row += [loss, spread]
        if show_mac:
            row += [safe(r.mac), safe(r.vendor)]
        row.append(safe(r.name))
        table.add_row(*row)
    return table


def sweep_summary_text(summary: SweepSummary) -> Text:
    """The summary line with colour, for a terminal (plain: columns.sweep_summary_line)."""
    text = Text()
    text.append(f"{summary.up}", style="bold green" if summary.up else "bold red")
    text.append(f"/{summary.total} hosts up")
    text.append(f" in {summary.elapsed_s:.2f}s", style="dim")
    text.append(f" via {visible(summary.method)}", style="cyan")  # interface names are anyone's
    text.append(f" ({visible(summary.method_reason)})", style="dim")
    if summary.interrupted:
        text.append(" (interrupted: partial results)", style="bold yellow")
    return text


MAP_MAX = 256
MAP_COLUMNS = 16
MAP_MACS_SHOWN = 6


def _cell(result: HostResult | None) -> Text:
    if result is None:
        return Text("   ")
    if result.state is HostState.UP:
        rtt = result.rtt_avg or 0.0
        style = "bold green" if rtt < 1 else "green" if rtt < 10 else "yellow" if rtt < 100 else "dark_orange"
        return Text("██ ", style=style)
    if result.state is HostState.UNREACHABLE:
        return Text("╳╳ ", style="magenta")
    return Text("·· ", style="red")


def subnet_map(block: AddressBlock, results: dict[str, HostResult]) -> Table:
    """A grid of the block (at most a /24, or an IPv6 /120): one cell per
    address, 16 to a row, the row labelled with its first address."""
    make = type(block.first)
    first_row = int(block.first) & ~(MAP_COLUMNS - 1)
    last_row = int(block.last) & ~(MAP_COLUMNS - 1)
    grid = Table.grid(padding=(0, 0))
    grid.add_column(justify="right", style="dim")
    grid.add_column(width=1)  # between the labels and the cells
    for _ in range(MAP_COLUMNS):
        grid.add_column()
    offsets = [Text(f"{c:<3x}" if block.version == 6 else f"{c:<3d}", style="dim") for c in range(MAP_COLUMNS)]
    grid.add_row(Text("+"), Text(""), *offsets)
    for row_start in range(first_row, last_row + 1, MAP_COLUMNS):
        cells = []
        for number in range(row_start, row_start + MAP_COLUMNS):
            inside = int(block.first) <= number <= int(block.last)
            cells.append(_cell(results.get(str(make(number)))) if inside else Text("   "))
        grid.add_row(Text(str(make(row_start))), Text(""), *cells)
    legend = Text.assemble(
        ("██", "bold green"), " <1ms  ", ("██", "green"), " <10ms  ", ("██", "yellow"), " <100ms  ",
        ("██", "dark_orange"), " slower  ", ("··", "red"), " down  ", ("╳╳", "magenta"), " unreachable",
    )  # fmt: skip
    outer = Table.grid()
    outer.add_row(Text(f"Map of {block.source}", style="bold"))
    outer.add_row(grid)
    outer.add_row(legend)
    macs = _mac_legend(block, results)
    if macs is not None:
        outer.add_row(macs)
    return outer


def _mac_legend(block: AddressBlock, results: dict[str, HostResult]) -> Text | None:
    """One line naming the MACs behind the live cells, most addresses first."""
    counts: dict[tuple[str, str | None], int] = {}
    make = type(block.first)
    for number in range(int(block.first), int(block.last) + 1):
        r = results.get(str(make(number)))
        if r is not None and r.alive and r.mac:
            counts[r.mac, r.vendor] = counts.get((r.mac, r.vendor), 0) + 1
    if not counts:
        return None
    line = Text("MACs: ", style="dim")
    ranked = sorted(counts.items(), key=lambda item: -item[1])
    for i, ((mac, vendor), n) in enumerate(ranked[:MAP_MACS_SHOWN]):
        line.append(", " if i else "")
        line.append(mac)
        if vendor:
            line.append(f" {visible(vendor)}", style="dim")
        line.append(f" ×{n}")
    if len(ranked) > MAP_MACS_SHOWN:
        line.append(f", and {len(ranked) - MAP_MACS_SHOWN} more", style="dim")
    return line
