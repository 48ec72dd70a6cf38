"""``port``'s display: a table grouped by host on a terminal (host, address,
port, proto, service, state, reason, connect time, banner, TLS); plain
columns in a pipe, every row whole for grep and awk; a host x port grid
(``--grid``) coloured by state; one JSON document, or JSON lines as pairs
settle. Banners and certificate subjects are the server's: shown only
through ``visible()``."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from netdiag.output import Format, Output
from netdiag.port import PortReport, PortResult, PortState, PortSummary, TlsFacts
from netdiag.text import visible
from netdiag.views.table import Rows, milliseconds, new_table, safe

if TYPE_CHECKING:
    from rich.table import Table
    from rich.text import Text

_STYLE = {
    PortState.OPEN: "green",
    PortState.CLOSED: "red",
    PortState.FILTERED: "magenta",
    PortState.OPEN_FILTERED: "yellow",
    PortState.UNRESOLVED: "yellow",
}
GRID_MARK = {  # one character a pair in --grid; the letters read without colour too
    PortState.OPEN: "O",
    PortState.CLOSED: "C",
    PortState.FILTERED: "F",
    PortState.OPEN_FILTERED: "?",
    PortState.UNRESOLVED: "U",
}
BANNER_SHOWN = 60  # characters of a banner in a table cell (JSON has all 256 bytes)


class Layout:
    """Optional columns, decided once: banner when one was asked for, TLS when --tls."""

    def __init__(self, banner: bool, tls: bool) -> None:
        self.banner, self.tls = banner, tls


def show_report(out: Output, report: PortReport, layout: Layout, *, only_open: bool, grid: bool) -> None:
    summary = report.summary
    if out.format is Format.JSON_LINES:
        out.json_line({"summary": summary_json(summary)})
        return
    if out.format is Format.JSON:
        rows = (_line(r) for r in report.results if r.open or not only_open)
        out.json_rows("results", rows, {"summary": summary_json(summary)})
        return
    shown = [r for r in report.results if r.open or not only_open]
    if grid:
        hosts_open = {(r.target, r.address) for r in shown}
        cells = [r for r in report.results if (r.target, r.address) in hosts_open]  # --open: hosts with an open port
        if out.format is Format.RICH and _grid_width(cells) <= out.terminal_width:
            out.out.print(grid_table(cells))
        else:
            out.text(grid_text(cells, out.terminal_width if out.format is Format.RICH else None))
    elif shown:
        out.tabular(lambda: port_table(shown, layout), port_rows(shown, layout))
    out.info(summary_text(summary) if out.stderr_is_terminal else summary_line(summary))
    for note in rate_limit_notes(report.results):
        out.warn(note)


RATE_LIMIT_SILENT = 5  # silent UDP ports beside a closed one that make a rate limit likely


def rate_limit_notes(results: Iterable[PortResult]) -> list[str]:
    """UDP: a host that answered some ports with port unreachable and kept
    silent on many others is most likely limiting its ICMP errors (Linux
    sends about one a second after a small burst), so its silent ports may
    well be closed: said, with what to do, rather than guessed."""
    closed: dict[str, int] = {}
    silent: dict[str, int] = {}
    for r in results:
        if r.proto != "udp" or r.address is None:
            continue
        if r.state is PortState.CLOSED:
            closed[r.address] = closed.get(r.address, 0) + 1
        elif r.state is PortState.OPEN_FILTERED:
            silent[r.address] = silent.get(r.address, 0) + 1
    return [
        f"{address}: {silent[address]:,} ports silent beside {count:,} closed: the host probably limits its ICMP "
        f"errors (about one a second), so silent ports may be closed too; ask again with --rate 1 and -r 2"
        for address, count in closed.items()
        if silent.get(address, 0) >= RATE_LIMIT_SILENT
    ]


def streamer(out: Output, only_open: bool) -> Callable[[PortResult], None]:
    """--jsonl: a line per pair as it settles (the summary follows at the end)."""

    def emit(result: PortResult) -> None:
        if result.open or not only_open:
            out.text(_line(result) + "\n")

    return emit


# --- rows --------------------------------------------------------------------


def state_words(result: PortResult) -> str:
    return result.state.value if result.reason is None else f"{result.state.value} ({visible(result.reason)})"


def banner_text(banner: bytes | None, limit: int | None = BANNER_SHOWN) -> str:
    """A banner on one line: UTF-8 where it is, every control byte (CR, LF
    too) and every other byte as an escape; cut at ``limit`` characters."""
    if banner is None:
        return ""
    text = visible(banner.decode("utf-8", "backslashreplace"))
    return text if limit is None or len(text) <= limit else text[: limit - 1] + "…"


def tls_text(tls: TlsFacts | None) -> str:
    """``TLSv1.3, expires 2027-03-01T12:00:00Z: CN=...``: version and expiry
    first, where a narrow cell never cuts them."""
    if tls is None:
        return ""
    expiry = f", expires {tls.not_after}" if tls.not_after else ""
    return visible(f"{tls.version}{expiry}: {tls.subject or '?'}")


def port_rows(results: Iterable[PortResult], layout: Layout) -> Rows:
    """Every row whole, for grep and awk. STATE comes early and TARGET last:
    on a narrow terminal columns are left out from the right, never the state."""
    headers = ["ADDRESS", "PORT", "PROTO", "STATE", "RTT_MS", "SERVICE"]
    headers += (["TLS"] if layout.tls else []) + (["BANNER"] if layout.banner else [])
    rows = []
    for r in results:
        row = [r.address or "-", str(r.port), r.proto, state_words(r), milliseconds(r.rtt_ms) or "-"]
        row.append(visible(r.service or "-"))
        if layout.tls:
            row.append(tls_text(r.tls) or "-")
        if layout.banner:
            row.append(banner_text(r.banner) or "-")
        row.append(visible(r.target))
        rows.append(row)
    return [*headers, "TARGET"], rows


def port_table(results: Iterable[PortResult], layout: Layout) -> Table:
    """Grouped by host: the target and address once, a rule between hosts."""
    from rich.text import Text

    columns = ["Host", "Address", "Port", "Proto", "Service", "State", "Connect ms"]
    columns += (["TLS"] if layout.tls else []) + (["Banner"] if layout.banner else [])
    table = new_table(*columns)
    table.columns[2].justify = table.columns[6].justify = "right"
    previous: tuple[str, str | None] | None = None
    for r in results:
        host = (r.target, r.address)
        if previous is not None and host != previous:
            table.add_section()
        state = Text(r.state.value, style=_STYLE[r.state])
        if r.reason:
            state.append(f" ({visible(r.reason)})", style="dim")
        first = host != previous
        address = r.address if first and r.address != r.target else None  # an address typed: said once
        row: list[Any] = [safe(r.target, "bold") if first else "", safe(address)]
        row += [str(r.port), r.proto, safe(r.service, "cyan"), state, milliseconds(r.rtt_ms)]
        if layout.tls:
            row.append(safe(tls_text(r.tls)))
        if layout.banner:
            row.append(safe(banner_text(r.banner), "dim"))
        table.add_row(*row)
        previous = host
    return table


# --- the grid ----------------------------------------------------------------


def _grid(results: Iterable[PortResult]) -> tuple[list[int], dict[tuple[str, str | None], dict[int, PortState]]]:
    ports: dict[int, None] = {}
    hosts: dict[tuple[str, str | None], dict[int, PortState]] = {}
    for r in results:
        ports[r.port] = None
        hosts.setdefault((r.target, r.address), {})[r.port] = r.state
    return sorted(ports), hosts


def grid_text(results: Iterable[PortResult], width: int | None = None) -> str:
    """Host x port as letters (O open, C closed, F filtered, ? open|filtered,
    U unresolved, blank: not asked): for a pipe, or a terminal too narrow for
    the coloured grid. With ``width``, the ports come in blocks that fit."""
    ports, hosts = _grid(results)
    labels = [_label(target, address) for target, address in hosts]
    label_width = max([len("HOST")] + [len(label) for label in labels])
    cell = max([len(str(p)) for p in ports] + [1])
    per_block = len(ports) or 1
    if width is not None:
        per_block = max((width - label_width - 2 + 1) // (cell + 1), 1)
    lines: list[str] = []
    for start in range(0, len(ports), per_block):
        block = ports[start : start + per_block]
        if start:
            lines.append("")
        lines.append(f"{'HOST':<{label_width}}  " + " ".join(f"{p:>{cell}}" for p in block))
        for label, states in zip(labels, hosts.values(), strict=True):
            marks = " ".join(f"{GRID_MARK[states[p]] if p in states else ' ':>{cell}}" for p in block)
            lines.append(f"{label:<{label_width}}  {marks}".rstrip())
    return "\n".join(lines) + "\n" + _LEGEND + "\n"


def _grid_width(results: Iterable[PortResult]) -> int:
    """Columns the coloured grid takes: the labels, then a cell of the widest port number per port."""
    ports, hosts = _grid(results)
    label_width = max([len("Host")] + [len(_label(t, a)) for t, a in hosts])
    return label_width + sum(len(str(p)) + 2 for p in ports) + 2


_LEGEND = "O open  C closed  F filtered  ? open|filtered  U unresolved"


def grid_table(results: Iterable[PortResult]) -> Table:
    """Host x port, one coloured cell a pair, in the spirit of ``sweep --map``."""
    from rich.table import Table
    from rich.text import Text

    ports, hosts = _grid(results)
    grid = Table(box=None, header_style="bold", padding=(0, 1), show_edge=False)
    grid.add_column("Host", no_wrap=True)
    for port in ports:
        grid.add_column(str(port), justify="center", no_wrap=True)
    for (target, address), states in hosts.items():
        cells = [
            Text(GRID_MARK[states[p]], style=f"bold {_STYLE[states[p]]}") if p in states else Text("") for p in ports
        ]
        grid.add_row(safe(_label(target, address)), *cells)
    legend = Text.assemble(
        *(part for state, mark in GRID_MARK.items() for part in ((mark, _STYLE[state]), f" {state.value}  "))
    )
    outer = Table.grid()
    outer.add_row(grid)
    outer.add_row(legend)
    return outer


def _label(target: str, address: str | None) -> str:
    if address is None or address == target:
        return visible(target)
    return f"{visible(target)} {address}"


# --- summary -----------------------------------------------------------------


def _counts(summary: PortSummary) -> list[tuple[int, str, str]]:
    counts = [
        (summary.closed, "closed", "red"),
        (summary.filtered, "filtered", "magenta"),
        (summary.open_filtered, "open|filtered", "yellow"),
        (summary.unresolved, "unresolved", "yellow"),
    ]
    return [c for c in counts if c[0]]


def summary_line(summary: PortSummary) -> str:
    rest = ", ".join(f"{n:,} {word}" for n, word, _ in _counts(summary))
    line = f"{summary.open:,}/{summary.pairs:,} pairs open" + (f" ({rest})" if rest else "")
    line += f" in {summary.elapsed_s:.2f}s"
    return line + (" (interrupted: partial results)" if summary.interrupted else "")


def summary_text(summary: PortSummary) -> Text:
    from rich.text import Text

    text = Text()
    text.append(f"{summary.open:,}", style="bold green" if summary.open else "bold red")
    text.append(f"/{summary.pairs:,} pairs open")
    counts = _counts(summary)
    if counts:
        text.append(" (")
        for i, (n, word, style) in enumerate(counts):
            text.append(", " if i else "")
            text.append(f"{n:,} {word}", style=style)
        text.append(")")
    text.append(f" in {summary.elapsed_s:.2f}s", style="dim")
    if summary.interrupted:
        text.append(" (interrupted: partial results)", style="bold yellow")
    return text


# --- JSON --------------------------------------------------------------------

_ENCODE = json.JSONEncoder(ensure_ascii=True, separators=(",", ":")).encode


def result_json(result: PortResult) -> dict[str, Any]:
    """Stable keys. ``banner``: the bytes as UTF-8 text, other bytes as ``\\xNN``
    escapes (JSON keeps control characters, escaped); null when not read."""
    tls = result.tls
    return {
        "target": result.target,
        "address": result.address,
        "port": result.port,
        "proto": result.proto,
        "service": result.service,
        "state": result.state.value,
        "reason": result.reason,
        "rtt_ms": None if result.rtt_ms is None else round(result.rtt_ms, 4),
        "banner": None if result.banner is None else banner_json(result.banner),
        "tls": None if tls is None else _tls_json(tls),
    }


def banner_json(banner: bytes) -> str:
    """The bytes as UTF-8 text; a byte that is not UTF-8 as ``\\xNN`` and a
    backslash as ``\\\\``, so that the two never read alike."""
    return banner.replace(b"\\", b"\\\\").decode("utf-8", "backslashreplace")


def _tls_json(tls: TlsFacts) -> dict[str, Any]:
    return {
        "version": tls.version,
        "cipher": tls.cipher,
        "subject": tls.subject,
        "issuer": tls.issuer,
        "not_after": tls.not_after,
    }


def _line(result: PortResult) -> str:
    return str(_ENCODE(result_json(result)))


def summary_json(summary: PortSummary) -> dict[str, Any]:
    return {
        "pairs": summary.pairs,
        "open": summary.open,
        "closed": summary.closed,
        "filtered": summary.filtered,
        "open_filtered": summary.open_filtered,
        "unresolved": summary.unresolved,
        "elapsed_s": round(summary.elapsed_s, 3),
        "probes_sent": summary.probes_sent,
        "interrupted": summary.interrupted,
    }
