"""``netdiag sweep --watch``: what a person or a program sees of a watch.

stdout on a terminal: a live table redrawn after each round (rich Live),
with the state changes printed above it. stdout in a pipe: one plain line
per state change. ``--jsonl``: one JSON line per probe and per change.
``--json``: nothing until the end. State changes always reach stderr too
(on a terminal shared with the live table, above it). Ctrl-C, SIGTERM or
SIGHUP end the watch with the cumulative summary: a table, plain columns, a
JSON document or a last JSON line.

Names and reasons come from outside (DNS, ICMP errors): only ``visible``.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from netdiag import interrupts
from netdiag.errors import BadInput
from netdiag.models import HostResult, HostState
from netdiag.output import Format
from netdiag.status import ExitStatus
from netdiag.sweep.watch import DEFAULT_PERIOD_S, Change, HostWatch, Round, Watch, run_watch
from netdiag.text import visible
from netdiag.views.table import Rows, milliseconds

if TYPE_CHECKING:
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    from netdiag.output import Output
    from netdiag.sweep.options import SweepOptions
    from netdiag.targets import Target

SPARK_LEVELS = "▁▂▃▄▅▆▇█"
SPARK_BOUNDS_MS = (0.1, 0.3, 1, 3, 10, 30, 100)  # a log scale: one level per factor of about 3
SPARK_LOST = "·"
RECENTLY_S = 60.0  # a change this recent keeps its host on a crowded screen
LIVE_CHROME_LINES = 5  # header, its rule, the caption, the hidden-hosts line, the cursor's line
STATE_STYLE = {
    HostState.UP: "green",
    HostState.DOWN: "red",
    HostState.UNREACHABLE: "magenta",
    HostState.UNRESOLVED: "yellow",
}


def watch_sweep(
    out: Output,
    targets: list[Target],
    options: SweepOptions,
    period: float | None,
    *,
    alive: bool = False,
    show_map: bool = False,
    rounds: int | None = None,
) -> int:
    """``sweep --watch``: rounds until a signal (or ``rounds`` rounds), then
    the summary; the exit status (128 + the signal when one ended it)."""
    if alive or show_map:
        raise BadInput(f"--watch shows every host as it changes: {'--alive' if alive else '--map'} is for one sweep")
    period = DEFAULT_PERIOD_S if period is None else period
    display = display_for(out, period)
    try:
        watch = run_watch(targets, options, period, display.round, rounds, on_start=display.start)
    finally:
        display.stop()
    display.finish(watch)
    if watch.interrupted:
        return interrupts.exit_status()
    return ExitStatus.OK if watch.count(HostState.UP) else ExitStatus.NEGATIVE


def display_for(out: Output, period: float) -> Display:
    """The display that suits where stdout goes and what was asked for."""
    if out.format is Format.JSON_LINES:
        return _JsonLines(out, period)
    if out.format is Format.JSON:
        return Display(out, period)
    if out.format is Format.RICH:
        return _LiveTable(out, period)
    return _ChangeLines(out, period)


# --- text shared by every display


def sparkline(rtts: Iterable[float | None]) -> str:
    """One character per probe: a block whose height grows with the RTT on a
    log scale (▁ under 0.1 ms … █ 100 ms or more), ``·`` for no reply.
    Absolute, not scaled per host: the column compares hosts, and a few
    microseconds of jitter never look like a spike."""
    return "".join(SPARK_LOST if r is None else SPARK_LEVELS[_level(r)] for r in rtts)


def _level(rtt_ms: float) -> int:
    return sum(rtt_ms >= bound for bound in SPARK_BOUNDS_MS)


def duration(seconds: float) -> str:
    """``0.4s``, ``42s``, ``3m05s``, ``2h07m``."""
    if seconds < 10:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def percent(fraction: float | None) -> str:
    """Whole percents, but some loss never reads 0% nor partial loss 100%."""
    if fraction is None:
        return ""
    if 0 < fraction < 0.01:
        return "<1%"
    if 0.99 < fraction < 1:
        return ">99%"
    return f"{fraction:.0%}"


def local_time(at: float, date: bool = True) -> str:
    """Local time of a wall-clock stamp."""
    return time.strftime("%Y-%m-%d %H:%M:%S" if date else "%H:%M:%S", time.localtime(at))


def _changes(count: int) -> str:
    return f"{count} state change{'' if count == 1 else 's'}"


def _label(address: str, name: str | None) -> str:
    return address if name is None else f"{address} ({visible(name)})"


def _state_text(state: HostState, reason: str | None) -> str:
    return state.value if reason is None else f"{state.value} ({visible(reason)})"


def change_line(change: Change) -> str:
    """``2025-06-01 12:00:03  127.1.0.2 (web.lab.test)  up -> down after 35s``"""
    return (
        f"{local_time(change.at)}  {_label(change.address, change.name)}  "
        f"{change.previous.value} -> {_state_text(change.state, change.reason)} after {duration(change.lasted_s)}"
    )


def _spread(host: HostWatch) -> str:
    if host.rtt_min is None or host.rtt_max is None:
        return ""
    return "/".join(milliseconds(v) for v in (host.rtt_min, host.rtt_avg, host.rtt_max))


def _changed(host: HostWatch, now: float) -> str:
    if host.changed_at is None:
        return "-"
    return local_time(host.changed_at, date=now - host.changed_at >= 86400)  # the date only once it is needed


def _outage(host: HostWatch, now: float) -> str:
    outage = host.outage_s(now)
    return duration(outage) if outage else "-"


def rows_to_show(hosts: list[HostWatch], limit: int, now: float) -> tuple[list[HostWatch], int]:
    """At most ``limit`` hosts, in address order: those not up or changed in
    the last minute first (what a person watches for), then the others.
    Returns them and how many were left out."""
    if len(hosts) <= limit:
        return hosts, 0

    def notable(host: HostWatch) -> bool:
        recent = host.changed_at is not None and now - host.changed_at < RECENTLY_S
        return host.state is not HostState.UP or recent

    first = [i for i, h in enumerate(hosts) if notable(h)][:limit]
    rest = [i for i, h in enumerate(hosts) if not notable(h)][: limit - len(first)]
    keep = sorted(first + rest)
    return [hosts[i] for i in keep], len(hosts) - len(keep)


# --- JSON


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def probe_event(result: HostResult, number: int, at: float) -> dict[str, Any]:
    rtt = result.rtts_ms[0] if result.alive and result.rtts_ms else None
    return {
        "event": "probe",
        "time": round(at, 3),
        "round": number,
        "address": result.address,
        "state": result.state.value,
        "rtt_ms": _round(rtt),
        "reason": result.reason,
    }


def change_event(change: Change, number: int) -> dict[str, Any]:
    return {
        "event": "change",
        "time": round(change.at, 3),
        "round": number,
        "address": change.address,
        "name": change.name,
        "from": change.previous.value,
        "to": change.state.value,
        "reason": change.reason,
        "lasted_s": round(change.lasted_s, 3),
    }


def host_document(host: HostWatch, now: float) -> dict[str, Any]:
    return {
        "address": host.address,
        "name": host.name,
        "state": None if host.state is None else host.state.value,
        "reason": host.reason,
        "sent": host.sent,
        "received": host.received,
        "loss": host.loss,
        "rtt_last_ms": _round(host.last_rtt),
        "rtt_min_ms": _round(host.rtt_min),
        "rtt_avg_ms": _round(host.rtt_avg),
        "rtt_max_ms": _round(host.rtt_max),
        "recent_rtts_ms": [_round(r) for r in host.recent()],
        "outage_s": round(host.outage_s(now), 3),
        "changes": host.changes,
        "last_change": _round(host.changed_at, 3),
        "since": _round(host.since, 3),
    }


def summary_document(watch: Watch) -> dict[str, Any]:
    """The cumulative summary: --json prints it, --jsonl's last line holds it."""
    now = watch.ended or watch.clock.now()
    return {
        "hosts": [host_document(h, now) for h in watch.hosts.values()],
        "summary": {
            "rounds": watch.rounds,
            "interval_s": watch.period,
            "started": round(watch.started, 3),
            "elapsed_s": round(now - watch.started, 3),
            "hosts": len(watch.hosts),
            **{state.value: watch.count(state) for state in HostState},
            "changes": watch.changes,
            "probes_sent": sum(h.sent for h in watch.hosts.values()),
            "method": watch.method,
            "method_reason": watch.method_reason,
            "notes": list(watch.notes),
            "interrupted": watch.interrupted,
        },
    }


# --- the end: the cumulative summary, and its line on stderr


SUMMARY_HEADERS = ["ADDRESS", "STATE", "SENT", "RECEIVED", "LOSS", "MIN/AVG/MAX_MS", "OUTAGE", "CHANGES", "LAST_CHANGE"]


def summary_rows(watch: Watch) -> Rows:
    """The cumulative summary as plain cells (made safe), NAME last: a narrow terminal cuts it first."""
    now = watch.ended or watch.clock.now()
    rows = []
    for h in watch.hosts.values():
        state = "-" if h.state is None else _state_text(h.state, h.reason)
        name = "-" if h.name is None else visible(h.name)
        rows.append([h.address, state, str(h.sent), str(h.received), percent(h.loss), _spread(h) or "-",
                     _outage(h, now), str(h.changes), _changed(h, now), name])  # fmt: skip
    return [*SUMMARY_HEADERS, "NAME"], rows


def summary_table(watch: Watch) -> Table:
    from rich.table import Table

    now = watch.ended or watch.clock.now()
    table = Table(header_style="bold")
    for header in ("Address", "State", "Sent", "Received", "Loss", "min/avg/max ms", "Outage", "Changes",
                   "Last change", "Name"):  # fmt: skip
        numeric = header in ("Sent", "Received", "Loss", "Outage", "Changes")
        table.add_column(header, justify="right" if numeric else "left", overflow="fold")
    for h in watch.hosts.values():
        table.add_row(_safe(h.address), _state_cell(h), str(h.sent), str(h.received), percent(h.loss), _spread(h),
                      _outage(h, now), str(h.changes), _changed(h, now), _safe(h.name))  # fmt: skip
    return table


def summary_line(watch: Watch) -> str:
    elapsed = (watch.ended or watch.clock.now()) - watch.started
    hosts = sum(h.state is not HostState.UNRESOLVED for h in watch.hosts.values())
    return (
        f"{watch.count(HostState.UP)}/{hosts} hosts up at the end; {watch.rounds} rounds in {duration(elapsed)}, "
        f"every {watch.period:g}s, via {visible(watch.method)}; {_changes(watch.changes)}"
    )


# --- rich pieces (rich is imported only when a terminal is drawn on)


def _safe(text: str | None, style: str = "") -> Text:
    from rich.text import Text

    return Text(visible(text or ""), style=style)


def _state_cell(host: HostWatch) -> Text:
    from rich.text import Text

    if host.state is None:
        return Text("…", style="dim")
    cell = Text(host.state.value, style=STATE_STYLE[host.state])
    if host.reason:
        cell.append(f" ({visible(host.reason)})", style="dim")
    return cell


def _spark_text(rtts: list[float | None]) -> Text:
    from rich.text import Text

    text = Text()
    for rtt, glyph in zip(rtts, sparkline(rtts), strict=True):
        text.append(glyph, style="red" if rtt is None else _rtt_style(rtt))
    return text


def _rtt_style(rtt_ms: float) -> str:
    """The map's colours: the same RTT looks the same in every view."""
    return "bold green" if rtt_ms < 1 else "green" if rtt_ms < 10 else "yellow" if rtt_ms < 100 else "dark_orange"


LIVE_HEADERS = ("Address", "State", "RTT ms", "Loss", "min/avg/max ms", "Recent", "Changed", "Outage", "Name")
LIVE_NUMERIC = {2, 3, 7}  # right-aligned
LIVE_GAP = 3  # between two columns: padding and the rule's separator
LIVE_DROPPED = (8, 4, 6, 5, 7, 3, 2)  # on a narrow terminal, columns left out in this order: name first
NAME_CUT, STATE_CUT = 8, 11  # narrower than this, a name or a state says nothing ("unreachable")


def fit_live(widths: list[int], room: int) -> dict[int, int]:
    """Which columns a terminal ``room`` wide shows, and how wide: every row
    one line, no address or number ever cut. The name is cut first (not
    under NAME_CUT), then a state's reason, then whole columns go, the
    name first, and what that frees goes back to the state; address and
    state always stay."""
    kept = dict(enumerate(widths))

    def over() -> int:
        return sum(kept.values()) + LIVE_GAP * (len(kept) - 1) - room

    for index, floor in ((8, NAME_CUT), (1, STATE_CUT)):
        if over() > 0:
            kept[index] = max(min(floor, kept[index]), kept[index] - over())
    for index in LIVE_DROPPED:
        if over() <= 0:
            break
        del kept[index]
    for index in (1, 8):  # what leaving columns out freed goes back to a cut state, then name
        if index in kept and over() < 0:
            kept[index] = min(widths[index], kept[index] - over())
    return kept


def live_table(watch: Watch, limit: int, now: float, room: int) -> Group:
    """The live display, ``room`` columns wide: at most ``limit`` host rows,
    then a status line (and one saying how many hosts did not fit)."""
    from rich import box
    from rich.cells import cell_len
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    shown, hidden = rows_to_show(list(watch.hosts.values()), limit, now)
    rows = [
        [_safe(h.address), _state_cell(h), Text(milliseconds(h.last_rtt)), Text(percent(h.loss)), Text(_spread(h)),
         _spark_text(h.recent()), Text(_changed(h, now)), Text(_outage(h, now)), _safe(h.name)]
        for h in shown
    ]  # fmt: skip
    widths = [max([len(header)] + [cell_len(row[i].plain) for row in rows]) for i, header in enumerate(LIVE_HEADERS)]
    kept = fit_live(widths, room)
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="bold")
    for index, width in kept.items():
        table.add_column(
            LIVE_HEADERS[index],
            justify="right" if index in LIVE_NUMERIC else "left",
            width=width,
            no_wrap=True,
            overflow="ellipsis",
        )
    for row in rows:
        table.add_row(*(row[index] for index in kept))
    up, total = watch.count(HostState.UP), sum(h.state is not HostState.UNRESOLVED for h in watch.hosts.values())
    lines = [
        f"round {watch.rounds} · every {watch.period:g}s · {up}/{total} up · {_changes(watch.changes)} · "
        f"{visible(watch.method)} · Ctrl-C: summary"
    ]
    if hidden:
        on_screen = set(shown)
        left_out = [h for h in watch.hosts.values() if h not in on_screen]
        tally = {state: sum(h.state is state for h in left_out) for state in HostState}
        counts = ", ".join(f"{n} {state.value}" for state, n in tally.items() if n)
        lines.append(f"… and {hidden} more hosts ({counts or 'not probed yet'}): a taller terminal shows them")
    status = [Text(line, style="dim", no_wrap=True, overflow="ellipsis") for line in lines]
    return Group(table, *status)


def _change_text(change: Change) -> Text:
    from rich.text import Text

    text = Text(local_time(change.at), style="dim")
    text.append(f"  {_label(change.address, change.name)}  ")
    text.append(change.previous.value, style=STATE_STYLE[change.previous])
    text.append(" -> ")
    text.append(change.state.value, style="bold " + STATE_STYLE[change.state])
    if change.reason:
        text.append(f" ({visible(change.reason)})", style="dim")
    text.append(f" after {duration(change.lasted_s)}", style="dim")
    return text


# --- the displays


class Display:
    """--json: changes on stderr while it runs, the summary document at the
    end. The base of the others."""

    def __init__(self, out: Output, period: float) -> None:
        self.out = out
        self.period = period
        self._error: str | None = None

    def start(self, watch: Watch) -> None:
        """Before the first round: every host is known."""

    def round(self, watch: Watch, done: Round) -> None:
        if done.error != self._error and done.error is not None:
            self.warn(f"round {done.number} could not run, its probes count as lost: {done.error}")
        self._error = done.error
        if done.number == 1:
            self.first_round(watch)
        for note in done.notes:
            self.warn(note)
        self.probes(watch, done)

    def first_round(self, watch: Watch) -> None:
        probed = [h for h in watch.hosts.values() if h.state is not HostState.UNRESOLVED]
        self.info(
            f"netdiag: watching {len(probed)} host{'' if len(probed) == 1 else 's'} every {self.period:g}s "
            f"via {visible(watch.method)} "
            f"({visible(watch.method_reason)}); Ctrl-C ends it with a summary"
        )
        self.warn_once(watch)

    def warn_once(self, watch: Watch) -> None:
        """What the first round leaves to know: names never watched, a method's cost."""
        for host in watch.hosts.values():
            if host.state is HostState.UNRESOLVED:
                self.warn(f"{host.address}: {host.reason} (not watched)")
        for note in watch.notes:
            self.warn(note)

    def probes(self, watch: Watch, done: Round) -> None:
        for change in done.changes:
            self.change(change)

    def change(self, change: Change) -> None:
        if self.out.stderr_is_terminal:
            self.out.info(_change_text(change))
        else:
            self.out.info(change_line(change))

    def info(self, message: str) -> None:
        self.out.info(message)

    def warn(self, message: str) -> None:
        self.out.warn(message)

    def stop(self) -> None:
        """The watch is over (or failed): release the screen."""

    def finish(self, watch: Watch) -> None:
        if self.out.format is Format.JSON:
            self.out.json(summary_document(watch))
        else:
            self.out.tabular(lambda: summary_table(watch), summary_rows(watch))
        self.out.info(summary_line(watch))


class _ChangeLines(Display):
    """stdout in a pipe: one plain line per change, there (they are the
    results); stderr gets only what is not a result."""

    def change(self, change: Change) -> None:
        self.out.text(change_line(change) + "\n")


class _JsonLines(Display):
    """--jsonl: every probe and every change as it is folded in, a line each
    (flushed: a reader sees each round as it ends), then the summary. A
    round's lines are queued first, so that a signal halfway through writing
    them loses none: the rest go out before the summary."""

    def __init__(self, out: Output, period: float) -> None:
        super().__init__(out, period)
        self.pending: deque[dict[str, Any]] = deque()

    def probes(self, watch: Watch, done: Round) -> None:
        changed = {c.address: c for c in done.changes}
        for host, result in done.probes:
            self.pending.append(probe_event(result, done.number, done.started))
            change = changed.get(host.address)
            if change is not None:
                self.pending.append(change_event(change, done.number))
        for change in done.changes:
            self.change(change)
        self._write_pending()

    def _write_pending(self) -> None:
        while self.pending:
            self.out.json_line(self.pending.popleft())

    def finish(self, watch: Watch) -> None:
        self._write_pending()
        ended = round(watch.ended or watch.clock.now(), 3)
        self.out.json_line({"event": "summary", "time": ended, **summary_document(watch)})
        self.out.info(summary_line(watch))


class _LiveTable(Display):
    """stdout on a terminal: the table redrawn after every round. What goes
    to stderr is printed above the table when stderr is that terminal too
    (a line written past rich would break its redraw), else to stderr."""

    def __init__(self, out: Output, period: float) -> None:
        super().__init__(out, period)
        self.live: Any = None

    def start(self, watch: Watch) -> None:
        from rich.live import Live

        console = self.out.out
        self.live = Live(console=console, auto_refresh=False, transient=True, redirect_stdout=False,
                         redirect_stderr=False, vertical_overflow="crop")  # fmt: skip
        self.live.start()
        self._draw(watch)

    def _draw(self, watch: Watch) -> None:
        size = self.out.out.size
        limit = max(size.height - LIVE_CHROME_LINES, 1)
        self.live.update(live_table(watch, limit, watch.clock.now(), size.width), refresh=True)

    def first_round(self, watch: Watch) -> None:
        self.warn_once(watch)  # the caption says the rest

    def probes(self, watch: Watch, done: Round) -> None:
        super().probes(watch, done)
        self._draw(watch)

    def change(self, change: Change) -> None:
        if self.out.stderr_is_terminal:
            self.live.console.print(_change_text(change), soft_wrap=True)
        else:
            self.out.info(change_line(change))

    def info(self, message: str) -> None:
        self._above(message, "")

    def warn(self, message: str) -> None:
        self._above(f"netdiag: {visible(message)}", "yellow")

    def _above(self, message: str, style: str) -> None:
        if self.out.stderr_is_terminal and self.live is not None:
            from rich.text import Text

            self.live.console.print(Text(message, style=style), soft_wrap=True)
        elif style:
            self.out.warn(message.removeprefix("netdiag: "))
        else:
            self.out.info(message)

    def stop(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None
