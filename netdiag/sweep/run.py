"""A sweep from targets to results: names resolved, targets split by the
segment they are on, one engine per method and segment, names and MACs after.

Which method serves which targets: on a directly connected Ethernet segment,
IPv4 targets are swept with ARP when this process may open packet sockets
(``auto`` or ``arp``); everything else with the kernel method (icmp, ping or
tcp), which on-link paces itself to the kernel's neighbour table.
"""

from __future__ import annotations

import bisect
import gc
import ipaddress
import itertools
import queue
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from operator import itemgetter
from typing import TYPE_CHECKING

from netdiag import probes, resolver
from netdiag.errors import BadInput, NetdiagError
from netdiag.models import HostResult, HostState, MethodUse, SweepReport, SweepSummary
from netdiag.sweep.engine import Emit, Engine, Progress
from netdiag.sweep.inflight import NeighbourBudget
from netdiag.sweep.options import (
    KERNEL_METHODS,
    Plan,
    SweepOptions,
    arp_plan,
    on_link_note,
    plan_kernel_method,
)
from netdiag.targets import (
    HostName,
    LinkDiscovery,
    SeenRuns,
    Target,
    Unresolved,
    iter_runs,
    run_texts,
    target_text,
)
from netdiag.workers import TimedOut, call_soon, iter_with_deadline, spawn

if TYPE_CHECKING:
    from netdiag import links

OnResult = Callable[[HostResult], None]
Run = tuple[int, int, int, str | None]  # (version, first, last, hostname)
Addresses = list[ipaddress.IPv4Address | ipaddress.IPv6Address]  # a name's, resolved
DISCOVERED_AFTER = 1 << 128  # link discovery: after the IPv6 addresses swept, fastest first
HOLD_MARGIN_S = 0.2  # past the kernel's resolution time before an entry counts as freed
NEIGHBOUR_HEADROOM = 64  # entries of the machine's table a sweep leaves to everyone else
NOT_SWEPT = "interrupted before it was swept"


@dataclass
class Group:
    """Targets one engine sweeps: their runs and the plan that serves them."""

    plan: Plan
    runs: list[Run] = field(default_factory=list)

    def hosts(self) -> Iterator[tuple[str, int, str | None, int]]:
        return itertools.chain.from_iterable(run_texts(*run) for run in self.runs)


class Origins:
    """Which target each swept address came from: its place in the input
    (rows keep the order the targets were given in, each network's addresses
    in address order) and the text typed (a result's ``target``). Runs are
    disjoint (every address is swept once), so a bisect finds an address's."""

    def __init__(self, targets: list[Target]) -> None:
        self.targets = targets
        self.texts = [target_text(t) for t in targets]
        self._firsts: dict[int, list[int]] = {4: [], 6: []}
        self._runs: dict[int, list[tuple[int, int, int]]] = {4: [], 6: []}  # (first, last, target index)

    def runs(self, resolve: Callable[[str], Addresses]) -> Iterator[tuple[int, Run | Unresolved]]:
        """Every target's runs (each address once), with the target's index."""
        seen = SeenRuns()
        for index, target in enumerate(self.targets):
            for run in iter_runs([target], resolve, seen):
                yield index, run

    def add(self, run: Run, index: int) -> None:
        version, first, last, _ = run
        at = bisect.bisect(self._firsts[version], first)
        self._firsts[version].insert(at, first)
        self._runs[version].insert(at, (first, last, index))

    def index_of(self, version: int, number: int) -> int:
        at = bisect.bisect(self._firsts[version], number) - 1
        first, last, index = self._runs[version][at]
        assert first <= number <= last, "an address swept outside every run"
        return index

    def index_of_name(self, name: str) -> int:
        return next(i for i, t in enumerate(self.targets) if isinstance(t, HostName) and t.name == name)


def resolve_names(
    targets: Iterable[Target], timeout: float, family: int = socket.AF_UNSPEC
) -> dict[str, Addresses | NetdiagError]:
    """Resolve every hostname target, concurrently, under one deadline."""

    def lookup(name: str) -> Addresses | NetdiagError:
        try:
            return resolver.resolve_addresses(name, family)
        except NetdiagError as exc:  # the row already names the host
            return NetdiagError(str(exc).removeprefix(f"{name}: "))

    names = [t.name for t in targets if isinstance(t, HostName)]
    answers: dict[str, Addresses | NetdiagError] = {}
    for name, answer in iter_with_deadline(lookup, list(dict.fromkeys(names)), timeout):
        answers[name] = NetdiagError(answer.reason(timeout)) if isinstance(answer, TimedOut) else answer
    return answers


def plan_groups(runs: list[Run], options: SweepOptions) -> list[Group]:
    """Split the runs by segment and method (see the module docstring)."""
    requested = options.method
    kernel_requested = requested if requested in KERNEL_METHODS else "auto"
    if options.source:
        _check_source_version(runs, options.source)
    if requested != "arp" and not options.interface and all(_on_loopback(run) for run in runs):
        # never on a link layer: the kernel method, without reading the kernel's tables
        return [Group(plan_kernel_method(kernel_requested, {run[0] for run in runs}, options.ports), runs)]
    from netdiag import links

    topology = links.Topology.read()
    forced = _forced_link(topology, options) if options.interface else None
    if options.interface and forced is None and requested == "arp":
        raise BadInput(f"--method arp: {options.interface} is not an Ethernet interface")
    if requested == "arp" and not probes.packet_permitted():
        probes.open_arp(options.interface or "lo").close()  # raises with the way to grant it
    arp_allowed: bool | None = None if requested in ("auto", "arp") else False
    arp_groups: dict[tuple[str, str], Group] = {}  # (interface, our address): the ARP sender per subnet
    kernel_runs: dict[tuple[str, int] | None, list[Run]] = {}  # (interface, IP version) on-link; None routed
    links_by_key: dict[tuple[str, int], links.Link] = {}
    for version, first, last, name in runs:
        pieces = [(first, last, None)] if forced is not None else topology.tables[version].split(first, last)
        for start, end, route in pieces:
            link = forced if forced is not None else topology.ethernet_link(route, version)
            if forced is not None and version != forced.source.version:
                link = None
            if link is not None and version == 4 and arp_allowed is None:
                arp_allowed = probes.packet_permitted()  # asked once, and only when a target is on-link
            if link is not None and version == 4 and arp_allowed:
                group = arp_groups.setdefault((link.label, str(link.source)), Group(arp_plan(link, requested)))
                group.runs.append((version, start, end, name))
                continue
            if requested == "arp":
                shown = ipaddress.ip_address(start) if version == 4 else ipaddress.IPv6Address(start)
                raise BadInput(
                    f"--method arp: {shown} is not on a directly connected Ethernet segment"
                    + ("" if version == 4 else " (ARP is IPv4 only)")
                )
            key = (link.label, version) if link is not None else None
            if key is not None:
                links_by_key[key] = link  # type: ignore[assignment]
            kernel_runs.setdefault(key, []).append((version, start, end, name))
    groups = list(arp_groups.values())
    if kernel_runs:
        versions = {run[0] for found in kernel_runs.values() for run in found}
        kernel = plan_kernel_method(kernel_requested, versions, options.ports)
        for key, found in kernel_runs.items():
            plan = kernel if key is None else kernel.on_link(links_by_key[key])
            groups.append(Group(plan, found))
    return groups


def _check_source_version(runs: list[Run], source: str) -> None:
    wanted = ipaddress.ip_address(source).version
    for version, first, _, name in runs:
        if version != wanted:
            shown = name or str(ipaddress.ip_address(first) if version == 4 else ipaddress.IPv6Address(first))
            raise BadInput(f"--source {source} is IPv{wanted}, but {shown} is IPv{version}")


LOOPBACK_V4 = (0x7F000000, 0x7FFFFFFF)  # 127.0.0.0/8


def _on_loopback(run: Run) -> bool:
    version, first, last, _ = run
    if version == 4:
        return LOOPBACK_V4[0] <= first and last <= LOOPBACK_V4[1]
    return first == last == 1  # ::1


def _forced_link(topology: links.Topology, options: SweepOptions) -> links.Link | None:
    """-I: on an Ethernet interface, every target is taken to be on its
    segment; elsewhere (loopback, a tunnel) probes are only bound to it."""
    interface = next((i for i in topology.interfaces.values() if i.name == options.interface), None)
    if interface is None:
        raise BadInput(f"--interface {options.interface!r}: no such interface here")
    if not interface.ethernet or interface.mac is None:
        return None
    version = ipaddress.ip_address(options.source).version if options.source else 4
    source = ipaddress.ip_address(options.source) if options.source else topology.source_on(interface, version)
    if source is None:
        raise BadInput(f"--interface {interface.name}: it has no IPv{version} address; give one with --source")
    from netdiag import links

    return links.Link(interface, source, topology.addresses_on(interface))


def build_engine(group: Group, options: SweepOptions) -> Engine:
    """The engine for a group; engine modules are imported only when used
    (start-up is part of every sweep's time)."""
    plan = group.plan
    if plan.method == "arp":
        from netdiag.sweep.arp import ArpEngine

        link = plan.link
        assert link is not None  # an ARP plan is always for a segment
        if options.source:
            if options.source not in link.own:
                # A request from someone else's address would point every
                # neighbour's cache for that address at us.
                raise BadInput(f"--source {options.source} is not an address of ours on {link.label}: ARP would "
                               f"poison the neighbours' caches for it")  # fmt: skip
            link = replace(link, source=ipaddress.ip_address(options.source))
        return ArpEngine(options, link)
    budget = _neighbour_budget(plan.link) if plan.link is not None else None
    if plan.method == "icmp":
        from netdiag.sweep.icmp import IcmpEngine

        return IcmpEngine(options, plan.kind or "raw", budget)
    if plan.method == "tcp":
        from netdiag.sweep.tcp import TcpEngine

        return TcpEngine(options, budget)
    from netdiag.sweep.ping import PingEngine

    return PingEngine(options)


def _neighbour_budget(link: links.Link) -> NeighbourBudget:
    from netdiag import links

    hold = links.resolution_time(link.label, link.source.version) + HOLD_MARGIN_S
    # The table is the whole machine's: a sweep that filled it would stop the
    # host itself (and the very peers it probes, in a lab) resolving anyone.
    capacity = links.neighbour_capacity(link.source.version) - NEIGHBOUR_HEADROOM
    return NeighbourBudget(capacity, int(hold * 1e9))


def _version(address: str | None) -> int | None:
    return None if address is None else ipaddress.ip_address(address.partition("%")[0]).version


def _has_names(targets: list[Target]) -> bool:
    return any(isinstance(t, HostName) for t in targets)


def _checks_addresses(options: SweepOptions) -> bool:
    return options.method == "arp" or bool(options.interface or options.source)


def _resolved_by(answers: dict[str, Addresses | NetdiagError]) -> Callable[[str], Addresses]:
    def resolve(name: str) -> Addresses:
        answer = answers[name]
        if isinstance(answer, NetdiagError):
            raise answer
        return answer

    return resolve


def _later(name: str) -> Addresses:
    return []  # not known yet: swept once the names are resolved


def _split_swept(
    named: list[tuple[int, Run]], swept: list[tuple[int, Run]]
) -> tuple[list[tuple[int, Run]], dict[str, str]]:
    """The names' runs (single addresses) the address targets did not cover,
    and for those they did, the host name to show on their row."""
    seen = SeenRuns()
    for _, (version, first, last, _) in swept:
        seen.add(version, first, last)
    todo: list[tuple[int, Run]] = []
    labels: dict[str, str] = {}
    for index, run in named:
        version, first, last, name = run
        if name is None:
            continue  # an address target: already swept
        if any(True for _ in seen.unseen_runs(version, first, last)):
            todo.append((index, run))
        else:
            labels.update((text, name) for text, *_ in run_texts(*run))
    return todo, labels


def _cut_short(targets: list[Target]) -> list[tuple[int, HostResult]]:
    """Rows for host-name targets an interruption stopped before they were swept."""
    first_of = {t.name: i for i, t in reversed(list(enumerate(targets))) if isinstance(t, HostName)}
    return [
        (i, HostResult(name, HostState.DOWN, reason=NOT_SWEPT))
        for name, i in sorted(first_of.items(), key=itemgetter(1))
    ]


def run_sweep(
    targets: list[Target],
    options: SweepOptions,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
    on_result: OnResult | None = None,
    keep_results: bool = True,
) -> SweepReport:
    """Sweep the targets; on KeyboardInterrupt, return what was learned so far.

    ``on_result`` sees each host as soon as it is settled (before names).
    Without ``keep_results`` (streaming a huge sweep) the report holds only
    the summary: memory stays flat however many hosts are swept."""
    options.validate()
    start = time.monotonic()
    stop = stop or threading.Event()
    # -4/-6, or -S: a name's addresses of that family only (fping and ping -I do the same)
    version = options.ip_version or _version(options.source)
    family = {None: socket.AF_UNSPEC, 4: socket.AF_INET, 6: socket.AF_INET6}[version]
    names = call_soon(resolve_names, targets, options.name_timeout, family) if _has_names(targets) else None
    results: list[tuple[tuple[int, int, int], HostResult]] = []
    lock = threading.Lock()  # engines side by side emit from their own threads
    states: Counter[HostState] = Counter()
    runner = threading.current_thread()
    outbox: queue.SimpleQueue[HostResult] = queue.SimpleQueue()
    origins = Origins(targets)
    make = tuple.__new__  # a result with its target: twice as fast as _replace, for a /16's rows

    def emit(result: HostResult, order: tuple[int, int]) -> None:
        """An engine's result: placed by the target its address came from."""
        with lock:
            index = origins.index_of(*order)
        place(result, index, order)

    def place(result: HostResult, index: int, order: tuple[int, int]) -> None:
        result = make(HostResult, (*result[:-1], origins.texts[index]))
        with lock:
            states[result.state] += 1
            if keep_results:
                results.append(((index, *order), result))
        if on_result is not None:  # output only from this thread: a blocked write holds no engine
            if threading.current_thread() is runner:
                on_result(result)
            else:
                outbox.put(result)

    def deliver() -> None:
        while on_result is not None and not outbox.empty():
            on_result(outbox.get())

    unresolved = 0

    def runs_of(resolve: Callable[[str], Addresses]) -> list[tuple[int, Run]]:
        nonlocal unresolved
        runs: list[tuple[int, Run]] = []
        for index, run in origins.runs(resolve):
            if isinstance(run, Unresolved):
                unresolved += 1
                place(HostResult(run.name, HostState.UNRESOLVED, reason=run.reason), index, (0, 0))
            else:
                runs.append((index, run))
        return runs

    groups: list[Group] = []
    engines: list[Engine] = []

    def sweep(indexed: list[tuple[int, Run]]) -> None:
        for index, run in indexed:
            origins.add(run, index)
        runs = [run for _, run in indexed]
        more = plan_groups(runs, options) if runs else []
        for group in more:  # a pair at a time: an interruption while one is built leaves none unmatched
            engine = build_engine(group, options)
            groups.append(group)
            engines.append(engine)
        if more:
            _run_engines(engines[-len(more) :], more, emit, report_progress, stop, deliver)

    discovered, discovery_probes, cut_short = 0, 0, 0
    labels: dict[str, str] = {}  # address → the host name typed, where a network covered it too

    def report_progress(*_: int) -> None:
        if progress is not None:
            done = unresolved + discovered + sum(e.done for e in engines)
            progress(done, discovered + sum(e.up for e in engines), discovery_probes + sum(e.sent for e in engines))

    gc.disable()  # a sweep allocates many long-lived objects: collections only cost time
    try:
        interrupted = False
        waiting = names is not None  # names not swept yet
        try:
            if names is not None and _checks_addresses(options):
                names.result()  # -I, -S and -m arp refuse some addresses: know them all before anything is sent
            # Addresses and networks are swept while names resolve; the names'
            # own addresses follow, those the others did not already cover.
            ready = names is not None and names.done()  # read once: the names may arrive any moment
            swept = runs_of(_resolved_by(names.result()) if ready else _later)  # type: ignore[union-attr]
            waiting = waiting and not ready
            for index, target in enumerate(targets):
                if isinstance(target, LinkDiscovery) and not stop.is_set():
                    from netdiag.sweep.discover import discover

                    found, sent = discover(target, options, stop)
                    discovery_probes += sent
                    discovered += len(found)
                    for number, result in enumerate(found):
                        place(result, index, (6, DISCOVERED_AFTER + number))
            sweep(swept)
            if waiting and not stop.is_set() and not any(e.interrupted for e in engines):
                todo, labels = _split_swept(runs_of(_resolved_by(names.result())), swept)  # type: ignore[union-attr]
                waiting = False
                sweep(todo)
        except KeyboardInterrupt:
            interrupted = True
        finally:
            for engine in engines:
                engine.close()
        deliver()
        if waiting:  # interrupted before the names were swept: each still gets its row
            for index, row in _cut_short(targets):
                cut_short += 1
                place(row, index, (0, 0))
            deliver()
        interrupted = interrupted or any(e.interrupted for e in engines)
        name_notes: list[str] = []
        if keep_results:
            results.sort(key=itemgetter(0))  # input order; a network's addresses in address order
            final = [r._replace(name=labels[r.address]) if r.address in labels else r for _, r in results]
            try:
                final = _annotate(final, options, groups, interrupted, name_notes)
            except KeyboardInterrupt:  # while names were looked up: the hosts stand without them
                interrupted = True
        else:
            final = []
        summary = SweepSummary(
            total=unresolved + cut_short + discovered + sum(e.done for e in engines),
            up=discovered + sum(e.up for e in engines),
            unreachable=states[HostState.UNREACHABLE],
            unresolved=unresolved,
            methods=_method_uses(groups, engines) + tuple(_discovery_uses(targets, discovered)),
            elapsed_s=time.monotonic() - start,
            probes_sent=discovery_probes + sum(e.sent for e in engines),
            interrupted=interrupted,
            notes=tuple(dict.fromkeys(note for g in groups if (note := on_link_note(g.plan, options.method))))
            + tuple(name_notes),
        )
        return SweepReport(tuple(final), summary)
    finally:
        gc.enable()  # after the report is made: a collection then would walk every result


def _method_uses(groups: list[Group], engines: list[Engine]) -> tuple[MethodUse, ...]:
    """One entry per method and reason, however many engines used it."""
    hosts: dict[tuple[str, str], int] = {}
    for group, engine in zip(groups, engines, strict=True):
        key = (group.plan.label, group.plan.reason)
        hosts[key] = hosts.get(key, 0) + engine.done
    return tuple(MethodUse(label, reason, count) for (label, reason), count in hosts.items())


def _discovery_uses(targets: list[Target], hosts: int) -> list[MethodUse]:
    groups = [t for t in targets if isinstance(t, LinkDiscovery)]
    if not groups:
        return []
    names = ", ".join(t.source for t in groups)
    return [MethodUse(f"icmpv6 multicast ({names})", "link discovery: one echo to the all-nodes group", hosts)]


def _run_engines(
    engines: list[Engine],
    groups: list[Group],
    emit: Emit,
    progress: Progress,
    stop: threading.Event,
    deliver: Callable[[], None],
) -> None:
    """One engine runs in this thread; several run side by side, each in its own."""
    if len(engines) == 1:
        engines[0].run(groups[0].hosts(), emit, progress, stop)
        return
    failures: list[BaseException] = []

    def run(engine: Engine, group: Group) -> None:
        try:
            engine.run(group.hosts(), emit, progress, stop)
        except BaseException as exc:  # noqa: BLE001 - raised again in the calling thread
            failures.append(exc)
            stop.set()

    threads = []
    for engine, group in zip(engines, groups, strict=True):
        thread = spawn(run, engine, group, name="engine")
        if thread is None:  # the system has no thread to give: this one runs it, in turn
            run(engine, group)
        else:
            threads.append(thread)
    try:
        for thread in threads:
            while thread.is_alive():
                deliver()  # the engines' results are written here, never from their threads
                thread.join(0.05)
        deliver()
    except KeyboardInterrupt:
        stop.set()
        for thread in threads:
            thread.join(2)
        raise
    if failures:
        raise failures[0]


def _annotate(
    results: list[HostResult], options: SweepOptions, groups: list[Group], interrupted: bool, notes: list[str]
) -> list[HostResult]:
    """Names of live hosts, MACs of on-link ones the kernel resolved, vendors."""
    alive = [r.address for r in results if r.alive]
    names: dict[str, str] = {}
    if options.names and not interrupted and alive:
        names, unanswered = reverse_names(alive, options.name_timeout)
        if unanswered:
            notes.append(names_note(unanswered, len(alive), options.name_timeout))
    if not names and not any(g.plan.link is not None for g in groups) and not any(r.mac for r in results):
        return results  # nothing on a link layer: no MACs to add (a loopback or routed sweep)
    macs: dict[str, str] = {}
    if any(g.plan.link is not None and g.plan.method != "arp" for g in groups):
        from netdiag import links

        try:
            macs = links.neighbours()
        except OSError:
            macs = {}
    shown_macs = {r.mac or macs.get(r.address) for r in results if r.alive} - {None}
    vendors: dict[str, str] = {}
    if options.vendors and shown_macs:
        from netdiag import vendors as registry  # reads the IEEE files: only when a MAC is shown

        vendors = registry.lookup(shown_macs)  # type: ignore[arg-type]
    if not (names or macs or vendors):
        return results
    annotated = []
    for result in results:
        mac = result.mac or (macs.get(result.address) if result.alive else None)
        name = result.name or names.get(result.address)
        if (mac, name) != (result.mac, result.name) or mac in vendors:
            vendor = vendors.get(mac) if mac else None
            annotated.append(result._replace(mac=mac, name=name, vendor=vendor))
        else:
            annotated.append(result)
    return annotated


def reverse_names(addresses: list[str], timeout: float) -> tuple[dict[str, str], int]:
    """PTR names of live hosts, 64 lookups at a time, all under one deadline
    of ``timeout``: a slow resolver costs at most that, never the sweep. The
    names found, and how many lookups had no answer by then."""
    found: dict[str, str] = {}
    unanswered = 0
    for address, name in iter_with_deadline(resolver.ptr_name, addresses, timeout, workers=64):
        if isinstance(name, str):
            found[address] = name
        elif isinstance(name, TimedOut):
            unanswered += 1
    return found, unanswered


def names_note(unanswered: int, asked: int, timeout: float) -> str:
    """Said when reverse names ran out of time: a missing name is then not 'no PTR'."""
    return (
        f"reverse names: {unanswered:,} of {asked:,} lookups had no answer within {timeout:g}s "
        "(a slow resolver); those hosts are shown without a name, and -n skips names"
    )
