"""The sweep's display: a rich table, a subnet map and a coloured summary on
a terminal; plain columns in a pipe; one JSON document (rows streamed) or
JSON lines on request. A progress bar on stderr while it runs.

rich is imported only where something is drawn with it: a piped or JSON
sweep never pays for it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from json.encoder import encode_basestring_ascii
from types import TracebackType
from typing import TYPE_CHECKING, Any

from netdiag.models import HostResult, HostState, SweepReport, SweepSummary
from netdiag.output import Format, Output
from netdiag.targets import AddressBlock, HostName, Target
from netdiag.text import visible
from netdiag.views.table import Rows, milliseconds, new_table, safe

if TYPE_CHECKING:
    from rich.progress import Progress
    from rich.table import Table
    from rich.text import Text

ProgressUpdate = Callable[[int, int, int], None]


def show_report(out: Output, report: SweepReport, targets: list[Target], *, alive: bool, show_map: bool) -> None:
    """The whole sweep, in the format ``out`` was set to."""
    summary = report.summary
    if out.format is Format.JSON_LINES:
        out.json_line({"summary": summary_json(summary)})
        return
    if out.format is Format.JSON:
        rows = (host_result_line(r) for r in report.results if r.alive or not alive)
        out.json_rows("results", rows, {"summary": summary_json(summary)})
        return
    shown = [r for r in report.results if r.alive or not alive]
    layout = Layout.of(report.results, shown, targets)
    maps = [t for t in targets if show_map and isinstance(t, AddressBlock) and t.size > 1]  # one host: no map
    if shown:
        out.tabular(lambda: sweep_table(shown, layout), sweep_rows(shown, layout))
    if maps:
        by_address = {r.address: r for r in report.results}
        for block in maps:
            if block.size <= MAP_MAX:
                out.out.print(subnet_map(block, by_address))
            else:
                out.warn(f"--map: {block.source} is larger than a /24; no map drawn")
    out.info(summary_text(summary) if out.stderr_is_terminal else summary_line(summary))
    for note in summary.notes:
        out.warn(visible(note))


def streamer(out: Output, alive_only: bool) -> Callable[[HostResult], None]:
    """--jsonl: one line per host as it settles (the summary follows at the end)."""

    def emit(result: HostResult) -> None:
        if result.alive or not alive_only:
            out.text(host_result_line(result) + "\n")

    return emit


class progress_bar:
    """A transient progress bar on stderr, only when stderr is a terminal."""

    def __init__(
        self, out: Output, total: int, doing: str = "sweeping", found: str = "up", sent: str = "probes sent"
    ) -> None:
        self.out, self.total = out, total
        self.words = (doing, found, sent)
        self.bar: Progress | None = None

    def __enter__(self) -> ProgressUpdate | None:
        if not self.out.interactive:
            return None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        doing, found, sent = self.words
        bar = self.bar = Progress(
            TextColumn(doing),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(f"[green]{{task.fields[up]}} {found}[/] · {{task.fields[sent]}} {sent}"),
            TimeElapsedColumn(),
            console=self.out.err,
            transient=True,
        )
        task = bar.add_task("sweep", total=self.total, up=0, sent=0)
        bar.start()

        def update(done: int, up: int, sent: int) -> None:
            bar.update(task, completed=done, up=up, sent=sent)

        return update

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if self.bar is not None:
            self.bar.stop()


# --- what the table shows ---------------------------------------------------


class Layout:
    """The optional columns, decided once from every row: loss and spread
    when some host got more than one probe, MAC and vendor when some row has
    a MAC, the target typed when some target was a name."""

    def __init__(self, loss: bool, mac: bool, target: bool) -> None:
        self.loss, self.mac, self.target = loss, mac, target

    @classmethod
    def of(cls, results: Iterable[HostResult], shown: list[HostResult], targets: list[Target]) -> Layout:
        return cls(
            loss=any(len(r.rtts_ms) > 1 for r in results),
            mac=any(r.mac for r in shown),
            target=any(isinstance(t, HostName) for t in targets),
        )


def sweep_rows(results: Iterable[HostResult], layout: Layout) -> Rows:
    headers = (["TARGET"] if layout.target else []) + ["ADDRESS", "STATE", "RTT_MS"]
    headers += (["LOSS", "MIN/AVG/MAX_MS"] if layout.loss else []) + (["MAC", "VENDOR"] if layout.mac else [])
    rows = []
    ms = milliseconds
    for r in results:
        # Addresses are formatted by netdiag itself (or checked as hostnames):
        # names, reasons and vendors come from outside.
        stats = r.stats
        state = r.state.value if r.reason is None else f"{r.state.value} ({visible(r.reason)})"
        row = [visible(r.target or "-")] if layout.target else []
        row += [r.address, state, ms(stats.avg)]
        if layout.loss:
            loss = "" if stats.loss is None else f"{stats.loss:.0%}"
            row += [loss, f"{ms(stats.min)}/{ms(stats.avg)}/{ms(stats.max)}" if stats.received else ""]
        if layout.mac:
            row += [r.mac or "-", "-" if r.vendor is None else visible(r.vendor)]
        row.append("-" if r.name is None else visible(r.name))
        rows.append(row)
    return [*headers, "NAME"], rows


_STATE_STYLE = {
    HostState.UP: "green",
    HostState.DOWN: "red",
    HostState.UNREACHABLE: "magenta",
    HostState.UNRESOLVED: "yellow",
}


def sweep_table(results: Iterable[HostResult], layout: Layout) -> Table:
    from rich.text import Text

    columns = (["Target"] if layout.target else []) + ["Address", "State", "RTT ms"]
    columns += (["Loss", "min/avg/max ms"] if layout.loss else []) + (["MAC", "Vendor"] if layout.mac else [])
    table = new_table(*columns, "Name")
    table.columns[columns.index("RTT ms")].justify = "right"
    for r in results:
        stats = r.stats
        state = Text(r.state.value, style=_STATE_STYLE[r.state])
        if r.reason:
            state.append(f" ({visible(r.reason)})", style="dim")
        row: list[Any] = [safe(r.target)] if layout.target else []
        row += [safe(r.address), state, milliseconds(stats.avg)]
        if layout.loss:
            loss = "" if stats.loss is None else f"{stats.loss:.0%}"
            spread = "/".join(milliseconds(v) for v in (stats.min, stats.avg, stats.max)) if stats.received else ""
            row += [loss, spread]
        if layout.mac:
            row += [safe(r.mac), safe(r.vendor)]
        row.append(safe(r.name))
        table.add_row(*row)
    return table


def summary_line(summary: SweepSummary) -> str:
    line = (
        f"{summary.up}/{summary.total} hosts up in {summary.elapsed_s:.2f}s "
        f"via {visible(summary.method)} ({visible(summary.method_reason)})"  # interface names are anyone's
    )
    return line + (" (interrupted: partial results)" if summary.interrupted else "")


def summary_text(summary: SweepSummary) -> Text:
    """The summary line with colour, for a terminal."""
    from rich.text import Text

    text = Text()
    text.append(f"{summary.up}", style="bold green" if summary.up else "bold red")
    text.append(f"/{summary.total} hosts up")
    text.append(f" in {summary.elapsed_s:.2f}s", style="dim")
    text.append(f" via {visible(summary.method)}", style="cyan")
    text.append(f" ({visible(summary.method_reason)})", style="dim")
    if summary.interrupted:
        text.append(" (interrupted: partial results)", style="bold yellow")
    return text


# --- the map ---------------------------------------------------------------

MAP_MAX = 256
MAP_COLUMNS = 16
MAP_MACS_SHOWN = 6


def _cell(result: HostResult | None) -> Text:
    from rich.text import Text

    if result is None:
        return Text("   ")
    if result.state is HostState.UP:
        rtt = result.stats.avg or 0.0
        style = "bold green" if rtt < 1 else "green" if rtt < 10 else "yellow" if rtt < 100 else "dark_orange"
        return Text("██ ", style=style)
    if result.state is HostState.UNREACHABLE:
        return Text("╳╳ ", style="magenta")
    return Text("·· ", style="red")


def subnet_map(block: AddressBlock, results: dict[str, HostResult]) -> Table:
    """A grid of the block (at most a /24, or an IPv6 /120): one cell per
    address, 16 to a row, the row labelled with its first address."""
    from rich.table import Table
    from rich.text import Text

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
    from rich.text import Text

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


# --- JSON ------------------------------------------------------------------


def host_result_json(result: HostResult) -> dict[str, Any]:
    stats = result.stats
    return {
        "target": result.target,
        "address": result.address,
        "alive": result.alive,
        "state": result.state.value,
        "rtt_ms": _round(stats.avg),
        "rtt_min_ms": _round(stats.min),
        "rtt_max_ms": _round(stats.max),
        "rtts_ms": [None if r is None else round(r, 4) for r in result.rtts_ms],
        "loss": stats.loss,
        "name": result.name,
        "reason": result.reason,
        "mac": result.mac,
        "vendor": result.vendor,
        "other_addresses": list(result.other_addresses),
    }


_ENCODE = json.JSONEncoder(ensure_ascii=True, separators=(",", ":")).encode
_NOTHING_ELSE = ',"name":null,"reason":null,"mac":null,"vendor":null,"other_addresses":[]}'
_NO_REPLY = '"rtt_ms":null,"rtt_min_ms":null,"rtt_max_ms":null,"rtts_ms":[null],"loss":1.0'


def host_result_line(result: HostResult) -> str:
    """``host_result_json(result)`` encoded compactly, the same text to the
    byte (a property test holds it to that), written straight for the rows a
    /16 is made of (one probe, no name, reason or MAC): JSON output then adds
    little to the sweep's own time."""
    rtts = result.rtts_ms
    if len(rtts) != 1 or result.name is not None or result.reason is not None or result.mac is not None:
        return _ENCODE(host_result_json(result))
    if result.vendor is not None or result.other_addresses:
        return _ENCODE(host_result_json(result))
    target = "null" if result.target is None else encode_basestring_ascii(result.target)
    address, alive = encode_basestring_ascii(result.address), "true" if result.alive else "false"
    rtt = rtts[0]
    if rtt is None:
        stats = _NO_REPLY
    else:
        v = repr(round(rtt, 4))
        stats = f'"rtt_ms":{v},"rtt_min_ms":{v},"rtt_max_ms":{v},"rtts_ms":[{v}],"loss":0.0'
    return (
        f'{{"target":{target},"address":{address},"alive":{alive},"state":"{result.state.value}",{stats}{_NOTHING_ELSE}'
    )


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def summary_json(summary: SweepSummary) -> dict[str, Any]:
    return {
        "total": summary.total,
        "up": summary.up,
        "down": summary.down,
        "unreachable": summary.unreachable,
        "unresolved": summary.unresolved,
        "method": summary.method,
        "method_reason": summary.method_reason,
        "methods": [{"method": m.label, "reason": m.reason, "hosts": m.hosts} for m in summary.methods],
        "notes": list(summary.notes),
        "elapsed_s": round(summary.elapsed_s, 3),
        "probes_sent": summary.probes_sent,
        "interrupted": summary.interrupted,
    }
