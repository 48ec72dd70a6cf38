"""``netdiag sweep --watch``: the same sweep again and again, and what changed.

Each round is one ``run_sweep`` of every target with one probe, no retries
and no names: the same planning and engines as a single sweep (ICMP, ARP or
TCP, whichever it would use), and a fresh engine per round, so a late reply
to an earlier round never counts for the next one (each ICMP engine has its
own cookie). Rounds start every ``period`` seconds, or at once when the last
one took longer. Names are resolved once, before the first round.

Memory stays flat however long it runs: a round's results are folded into
running counters per host (sent, received, min/avg/max, outage, changes) and
a fixed ring of recent RTTs for the sparkline, then dropped.
"""

from __future__ import annotations

import ipaddress
import math
import signal
import socket
import threading
import time
from array import array
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import NamedTuple

from netdiag.errors import BadInput, NetdiagError
from netdiag.models import HostResult, HostState
from netdiag.sweep.engine import NOT_SETTLED
from netdiag.sweep.options import SweepOptions
from netdiag.sweep.run import NOT_SWEPT, names_note, resolve_names, reverse_names, run_sweep
from netdiag.targets import MAX_ADDRESSES, AddressBlock, HostName, LinkDiscovery, Target, iter_address_texts
from netdiag.workers import call_soon

RECENT = 20  # RTTs kept per host, for the sparkline
DEFAULT_PERIOD_S = 1.0  # seconds between rounds when -i is not given
MAX_WATCHED = MAX_ADDRESSES  # hosts with statistics of their own
UNSETTLED = (NOT_SETTLED, NOT_SWEPT)  # an interrupted round's hosts still in flight: no observation
NO_REPLY = math.nan  # in the ring: a probe that got no reply


class Clock:
    """Wall-clock seconds that never step back: the wall time at the start
    plus monotonic time since (an NTP step must not make an outage negative)."""

    def __init__(self) -> None:
        self._wall, self._monotonic = time.time(), time.monotonic()

    def now(self) -> float:
        return self._wall + (time.monotonic() - self._monotonic)


class Change(NamedTuple):
    """A host's state differs from its previous probe's."""

    address: str
    name: str | None
    previous: HostState
    state: HostState
    reason: str | None  # of the new state (unreachable: the ICMP error)
    at: float  # wall-clock seconds: the start of the round that saw it
    lasted_s: float  # how long the previous state had lasted


class HostWatch:
    """One host's statistics over the whole watch, in constant memory."""

    __slots__ = (
        "_ring",
        "_ring_next",
        "address",
        "changed_at",
        "changes",
        "down_since",
        "last_rtt",
        "name",
        "outage_closed_s",
        "reason",
        "received",
        "rtt_max",
        "rtt_min",
        "rtt_sum",
        "sent",
        "since",
        "state",
        "timed",
    )

    def __init__(self, address: str, name: str | None = None) -> None:
        self.address, self.name = address, name
        self.state: HostState | None = None  # None until the first probe's result
        self.reason: str | None = None
        self.sent = 0
        self.received = 0
        self.timed = 0  # replies with an RTT (ARP's own address answers without one)
        self.rtt_sum = 0.0
        self.rtt_min: float | None = None
        self.rtt_max: float | None = None
        self.last_rtt: float | None = None
        self.since: float | None = None  # when the current state began (the first probe, if it never changed)
        self.changed_at: float | None = None
        self.changes = 0
        self.down_since: float | None = None  # the current outage's start
        self.outage_closed_s = 0.0  # outages that have ended
        self._ring = array("d", [NO_REPLY] * RECENT)
        self._ring_next = 0  # where the next RTT goes; sent tells how many slots are filled

    def record(self, state: HostState, rtt_ms: float | None, reason: str | None, at: float) -> Change | None:
        """One probe's result, seen at ``at``; the change it makes, if any.
        The first result sets the state and is no change."""
        self.sent += 1
        up = state is HostState.UP
        if up:
            self.received += 1
        self.last_rtt = rtt_ms if up else None
        if up and rtt_ms is not None:
            self.timed += 1
            self.rtt_sum += rtt_ms
            self.rtt_min = rtt_ms if self.rtt_min is None else min(self.rtt_min, rtt_ms)
            self.rtt_max = rtt_ms if self.rtt_max is None else max(self.rtt_max, rtt_ms)
        self._ring[self._ring_next] = (rtt_ms if rtt_ms is not None else 0.0) if up else NO_REPLY
        self._ring_next = (self._ring_next + 1) % RECENT
        previous, self.state, self.reason = self.state, state, reason
        if previous is state:
            return None
        if not up and (previous is None or previous is HostState.UP):
            self.down_since = at  # an outage begins (down and unreachable are one outage)
        elif up and self.down_since is not None:
            self.outage_closed_s += at - self.down_since
            self.down_since = None
        began, self.since = self.since, at
        if previous is None:
            return None
        self.changed_at = at
        self.changes += 1
        return Change(self.address, self.name, previous, state, reason, at, at - began if began is not None else 0.0)

    @property
    def loss(self) -> float | None:
        """Fraction of probes unanswered (None before the first)."""
        return 1 - self.received / self.sent if self.sent else None

    @property
    def rtt_avg(self) -> float | None:
        return self.rtt_sum / self.timed if self.timed else None

    def outage_s(self, now: float) -> float:
        """Seconds not up while watched: ended outages and the current one."""
        ongoing = now - self.down_since if self.down_since is not None else 0.0
        return self.outage_closed_s + max(ongoing, 0.0)

    def recent(self) -> list[float | None]:
        """The last RECENT probes' RTTs, oldest first; None: no reply."""
        filled = min(self.sent, RECENT)
        start = (self._ring_next - filled) % RECENT
        values = (self._ring[(start + i) % RECENT] for i in range(filled))
        return [None if math.isnan(v) else v for v in values]


@dataclass
class Round:
    """What one round saw, for the display; dropped once shown."""

    number: int
    started: float  # wall-clock seconds: when its probes went out
    elapsed_s: float = 0.0
    probes: list[tuple[HostWatch, HostResult]] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    error: str | None = None  # the round could not run: every host counted unreachable with this reason
    notes: list[str] = field(default_factory=list)  # to tell once


@dataclass
class Watch:
    """Every watched host, in address order, and the watch's own facts."""

    hosts: dict[str, HostWatch]
    targets: list[Target]  # what each round sweeps: addresses only, names already resolved
    period: float
    started: float = 0.0
    ended: float | None = None
    rounds: int = 0
    method: str = "none"
    method_reason: str = ""
    notes: tuple[str, ...] = ()
    interrupted: bool = False
    clock: Clock = field(default_factory=Clock)

    @property
    def changes(self) -> int:
        return sum(h.changes for h in self.hosts.values())

    def count(self, state: HostState) -> int:
        return sum(h.state is state for h in self.hosts.values())

    def apply(self, results: Iterable[HostResult], done: Round) -> None:
        """Fold a round's results in, into ``done`` too. Hosts an
        interruption caught in flight are no observation and are skipped.
        Signals wait meanwhile (a Ctrl-C would leave counters half updated)
        and are raised as it returns, with the round whole."""
        with _signals_held():
            for result in results:
                host = self.hosts.get(result.address)
                if host is None or result.reason in UNSETTLED:
                    continue
                rtt = result.rtts_ms[0] if result.rtts_ms else None
                change = host.record(result.state, rtt, result.reason, done.started)
                done.probes.append((host, result))
                if change is not None:
                    done.changes.append(change)
            self.rounds += 1

    def lost(self, reason: str) -> Iterator[HostResult]:
        """A round that could not run (the interface went away, say): as
        fping does, every probe counts as lost, here as unreachable."""
        for host in self.hosts.values():
            if host.state is not HostState.UNRESOLVED:
                yield HostResult(host.address, HostState.UNREACHABLE, (None,), reason=reason)


@contextmanager
def _signals_held() -> Iterator[None]:
    """Signals wait (they are not lost) while inside; main thread only."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def check_options(options: SweepOptions, period: float) -> None:
    """What a watch refuses on top of a sweep's own checks."""
    options.validate()
    if options.count != 1:
        raise BadInput("--count: --watch sends one probe per host each round (-i sets how often)")
    if options.retries:
        raise BadInput("--retries: --watch counts every unanswered probe as lost, retries would hide them")
    if not (math.isfinite(period) and 0 <= period <= 3600):
        raise BadInput(f"--interval must be between 0 and 3600 seconds, not {period:g}")


def prepare(targets: list[Target], options: SweepOptions, period: float) -> Watch:
    """Resolve names once and list every host to watch, in address order
    (names' addresses where they come; a name that does not resolve is a
    row of its own, never probed)."""
    check_options(options, period)
    if any(isinstance(t, LinkDiscovery) for t in targets):
        raise BadInput("--watch: ff02::1%IFACE finds whoever answers, which is no fixed set of hosts to watch; "
                       "sweep it once and watch the addresses it found")  # fmt: skip
    # As a sweep does: with -4/-6, or -S, a name's addresses of that family only
    version = options.ip_version or (ipaddress.ip_address(options.source).version if options.source else None)
    family = {None: socket.AF_UNSPEC, 4: socket.AF_INET, 6: socket.AF_INET6}[version]
    answers = (
        resolve_names(targets, options.name_timeout, family) if any(isinstance(t, HostName) for t in targets) else {}
    )
    swept: list[Target] = []
    labels: dict[tuple[int, int], str] = {}  # (version, address) → the name typed for it
    unresolved: dict[str, HostWatch] = {}
    for target in targets:
        if not isinstance(target, HostName):
            swept.append(target)
            continue
        answer = answers[target.name]
        if isinstance(answer, NetdiagError):
            if target.name not in unresolved:
                host = unresolved[target.name] = HostWatch(target.name)
                host.state, host.reason = HostState.UNRESOLVED, str(answer)
            continue
        for address in answer:
            swept.append(AddressBlock(address, address, target.name))
            labels.setdefault((address.version, int(address)), target.name)
    found: list[tuple[int, int, str]] = []
    for item in iter_address_texts(swept):
        text, version, _, number = item  # type: ignore[misc]  # no names left to be Unresolved
        if len(found) == MAX_WATCHED:
            raise BadInput(f"--watch keeps statistics for each host: at most {MAX_WATCHED:,} hosts")
        found.append((version, number, text))
    if not found:
        reasons = "; ".join(f"{h.address}: {h.reason}" for h in unresolved.values())
        raise NetdiagError(f"nothing to watch: no target has an address ({reasons})")
    found.sort()  # address order, IPv4 first, as a sweep shows its hosts
    hosts = {text: HostWatch(text, labels.get((version, number))) for version, number, text in found}
    hosts.update(unresolved)  # after every address, as a sweep shows them
    return Watch(hosts, swept, period)


OnRound = Callable[[Watch, Round], None]


def run_watch(
    targets: list[Target],
    options: SweepOptions,
    period: float,
    on_round: OnRound,
    rounds: int | None = None,
    on_start: Callable[[Watch], None] | None = None,
) -> Watch:
    """Probe every target each round until Ctrl-C (or ``rounds`` rounds);
    ``on_round`` sees each round once it is folded in. Returns the watch
    with its totals; ``interrupted`` tells a signal ended it. Errors of the
    first round (bad input, no permission) are raised; a later round that
    cannot run counts its probes as lost and the watch goes on."""
    watch = prepare(targets, options, period)
    if on_start is not None:
        on_start(watch)
    per_round = replace(options, count=1, retries=0, names=False, vendors=False)
    clock = watch.clock
    watch.started = clock.now()
    lookup: Future[tuple[dict[str, str], list[str]]] | None = (
        None  # reverse names of the hosts up in the first round, found meanwhile
    )
    next_start = time.monotonic()
    try:
        while rounds is None or watch.rounds < rounds:
            delay = next_start - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            began = time.monotonic()
            done = Round(watch.rounds + 1, clock.now())
            interrupted = False
            results: Iterable[HostResult]
            try:
                report = run_sweep(watch.targets, per_round)
            except NetdiagError as exc:
                if not watch.rounds:
                    raise  # nothing ever worked: say why and stop, as a sweep does
                done.error = str(exc)
                results = watch.lost(done.error)
            else:
                results, interrupted = report.results, report.summary.interrupted
                if report.summary.methods:
                    watch.method, watch.method_reason = report.summary.method, report.summary.method_reason
                watch.notes = report.summary.notes
            try:
                watch.apply(results, done)
            except KeyboardInterrupt:  # held while folding in: the round is whole, and shown before the end
                interrupted = True
            done.elapsed_s = time.monotonic() - began
            if options.names and done.number == 1 and not done.error:
                alive = [h.address for h in watch.hosts.values() if h.state is HostState.UP and h.name is None]
                lookup = call_soon(_reverse_names, alive, options.name_timeout) if alive else None
            if lookup is not None and lookup.done():
                done.notes += _name_hosts(watch, lookup)
                lookup = None
            on_round(watch, done)
            if interrupted:
                raise KeyboardInterrupt
            # On a fixed beat; a round that could not run is spaced like one that timed out (no busy loop).
            beat = period if done.error is None else max(period, options.timeout)
            next_start = max(next_start + beat, time.monotonic())
    except KeyboardInterrupt:
        watch.interrupted = True
    watch.ended = clock.now()
    return watch


def _reverse_names(addresses: list[str], timeout: float) -> tuple[dict[str, str], list[str]]:
    """PTR names as a sweep looks them up, and the note it makes when some
    lookups ran out of time (a missing name is then not 'no PTR')."""
    names, unanswered = reverse_names(addresses, timeout)
    return names, [names_note(unanswered, len(addresses), timeout)] if unanswered else []


def _name_hosts(watch: Watch, lookup: Future[tuple[dict[str, str], list[str]]]) -> list[str]:
    """Names are a courtesy: a lookup that failed is said, never fatal."""
    try:
        names, notes = lookup.result()
    except NetdiagError as exc:
        return [f"reverse names: {exc}"]
    for address, name in names.items():
        host = watch.hosts.get(address)
        if host is not None and host.name is None:
            host.name = name
    return notes
