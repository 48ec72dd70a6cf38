"""The sweep engine: targets in, one HostResult per address out.

Cost grows as N / send-rate + timeout, never N x timeout / threads:

* icmp: one thread drives non-blocking ICMP sockets. It sends in bursts,
  drains replies between bursts into a large kernel buffer (replies carry
  kernel timestamps, so a late read never inflates an RTT) and expires probes
  from a FIFO (timeouts are uniform, so send order is deadline order). One
  thread beats several here: the work is per-packet Python, and threads would
  only fight over the GIL.
* ping: the classic design, a queue of targets feeding worker threads that
  each run the system ping for one host.
* tcp: non-blocking connects multiplexed by a selector.

A sweep whose hosts have all answered ends at once.
"""

from __future__ import annotations

import errno
import gc
import heapq
import itertools
import os
import queue
import selectors
import socket
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace

from netdiag import probes, resolver
from netdiag.errors import BadInput, NetdiagError, ProbePermissionError
from netdiag.icmp import EchoRequestBuilder
from netdiag.limits import raise_descriptor_limit
from netdiag.models import HostResult, HostState, SweepReport, SweepSummary
from netdiag.targets import AddressBlock, HostName, Target, Unresolved, iter_address_texts
from netdiag.workers import TIMED_OUT, iter_with_deadline

METHODS = ("auto", "icmp", "ping", "tcp")
BURST = 256  # requests sent between two drains of the receive queue
PROGRESS_EVERY_NS = 100_000_000
EXPIRY_GRAIN_S = 0.001  # timeouts are kept to within a millisecond

Progress = Callable[[int, int, int], None]  # (hosts done, hosts up, probes sent)
Emit = Callable[[HostResult, tuple[int, int]], None]  # a result and its place in address order
OnResult = Callable[[HostResult], None]


@dataclass(frozen=True)
class SweepOptions:
    method: str = "auto"
    timeout: float = 1.0  # seconds each probe waits for its answer
    retries: int = 0  # further probes for a host that has not answered
    count: int = 1  # echo requests per host
    interval: float = 0.25  # seconds between echo requests to one host
    rate: float | None = None  # probes per second, at most
    workers: int | None = None  # ping processes / TCP connections in flight
    names: bool = True
    name_timeout: float = 2.0
    ports: tuple[int, ...] = (80, 443)

    def validate(self) -> None:
        if self.method not in METHODS:
            raise BadInput(f"--method must be one of {', '.join(METHODS)}, not {self.method!r}")
        if not 0 < self.timeout <= 60:
            raise BadInput(f"--timeout must be more than 0 and at most 60 seconds, not {self.timeout:g}")
        if not 0 <= self.retries <= 10:
            raise BadInput(f"--retries must be between 0 and 10, not {self.retries}")
        if not 1 <= self.count <= 1000:
            raise BadInput(f"--count must be between 1 and 1000, not {self.count}")
        if not 0 <= self.interval <= 60:
            raise BadInput(f"--interval must be between 0 and 60 seconds, not {self.interval:g}")
        if self.rate is not None and not 0 < self.rate <= 10_000_000:
            raise BadInput(f"--rate must be a positive number of probes per second, not {self.rate:g}")
        if self.workers is not None and not 1 <= self.workers <= 10_000:
            raise BadInput(f"--workers must be between 1 and 10000, not {self.workers}")
        if not self.ports or any(not 0 < p < 65536 for p in self.ports):
            raise BadInput("--port must be between 1 and 65535")


@dataclass(frozen=True)
class Plan:
    """The probe method a sweep will use, and why."""

    method: str  # icmp, ping or tcp
    label: str  # e.g. "icmp (raw socket)"
    reason: str


def plan_method(requested: str, versions: set[int], ports: tuple[int, ...] = (80, 443)) -> Plan:
    """Pick the probe method. An explicit method that cannot work raises;
    ``auto`` falls back icmp → ping → tcp and says why."""
    versions = versions or {4}
    if requested in ("icmp", "auto"):
        try:
            kinds = {probes.permitted_kind(v) for v in versions}
        except ProbePermissionError:
            if requested == "icmp":
                raise
        else:
            kind = "raw" if "raw" in kinds else "dgram"
            reason = (
                "this process has CAP_NET_RAW"
                if kind == "raw"
                else "unprivileged ICMP sockets are allowed (net.ipv4.ping_group_range)"
            )
            return Plan("icmp", f"icmp ({kind} socket)", reason)
    if requested == "ping":
        if probes.ping_command() is None:
            raise BadInput("--method ping: no ping command is installed")
        if not _system_ping_works(versions):
            raise ProbePermissionError(f"--method ping: the system ping cannot run here; {probes.GRANT_HINT}")
        return Plan("ping", "ping (system command)", "asked for")
    if requested == "auto" and _system_ping_works(versions):
        return Plan("ping", "ping (system command)", "no ICMP socket is permitted, but the system ping works")
    ports_text = ",".join(map(str, ports))
    if requested == "tcp":
        return Plan("tcp", f"tcp (connect to {ports_text})", "asked for")
    return Plan("tcp", f"tcp (connect to {ports_text})", "no ICMP socket is permitted and the system ping fails")


def _system_ping_works(versions: set[int]) -> bool:
    """Ask ping to reach loopback once: it fails at once when it has no socket."""
    binary = probes.ping_command()
    if binary is None:
        return False
    for version in versions:
        loopback = "127.0.0.1" if version == 4 else "::1"
        try:
            result = subprocess.run(
                [binary, f"-{version}", "-n", "-c", "1", "-W", "1", "--", loopback],
                capture_output=True,
                stdin=subprocess.DEVNULL,
                check=False,
            )
        except OSError:  # e.g. EPERM: file capabilities beyond our bounding set
            return False
        if result.returncode != 0:
            return False
    return True


def target_versions(targets: Iterable[Target], resolved: dict[str, list]) -> set[int]:
    versions = set()
    for target in targets:
        if isinstance(target, AddressBlock):
            versions.add(target.version)
        else:
            versions.update(a.version for a in resolved.get(target.name, []))
    return versions


def resolve_names(targets: Iterable[Target], timeout: float) -> dict[str, list | NetdiagError]:
    """Resolve every hostname target up front, concurrently, with a deadline."""

    def lookup(name: str) -> list | NetdiagError:
        try:
            return resolver.resolve_addresses(name)
        except NetdiagError as exc:  # the row already names the host
            return NetdiagError(str(exc).removeprefix(f"{name}: "))

    names = [t.name for t in targets if isinstance(t, HostName)]
    answers: dict[str, list | NetdiagError] = {}
    for name, answer in iter_with_deadline(lookup, list(dict.fromkeys(names)), timeout):
        answers[name] = NetdiagError(f"no answer within {timeout:g}s") if answer is TIMED_OUT else answer
    return answers


def run_sweep(
    targets: list[Target],
    options: SweepOptions,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
    plan: Plan | None = None,
    on_result: OnResult | None = None,
    keep_results: bool = True,
) -> SweepReport:
    """Sweep the targets; on KeyboardInterrupt, return what was learned so far.

    ``on_result`` sees each host as soon as it is settled (before names).
    Without ``keep_results`` (streaming a huge sweep) the report holds only
    the summary: memory stays flat however many hosts are swept."""
    options.validate()
    start = time.monotonic()
    resolved = resolve_names(targets, options.name_timeout) if any(isinstance(t, HostName) for t in targets) else {}
    addresses = {k: v for k, v in resolved.items() if isinstance(v, list)}
    plan = plan or plan_method(options.method, target_versions(targets, addresses), options.ports)
    results: list[tuple[tuple[int, int], HostResult]] = []

    def emit(result: HostResult, order: tuple[int, int]) -> None:
        if keep_results:
            results.append((order, result))
        if on_result is not None:
            on_result(result)

    def resolve(name: str) -> list:
        answer = resolved[name]
        if isinstance(answer, NetdiagError):
            raise answer
        return answer

    engine = {"icmp": IcmpEngine, "ping": PingEngine, "tcp": TcpEngine}[plan.method](options)
    hosts = iter_address_texts(targets, resolve)
    interrupted = False
    gc.disable()  # a sweep allocates many long-lived objects: collections only cost time
    try:
        engine.run(hosts, emit, progress or _no_progress, stop or threading.Event())
    except KeyboardInterrupt:
        interrupted = True
    finally:
        gc.enable()
        engine.close()
    interrupted = interrupted or engine.interrupted
    found = {}
    if options.names and not interrupted:
        found = reverse_names([r.address for _, r in results if r.alive], options.name_timeout)
    results.sort(key=_by_order)
    ordered = [_with_name(r, found.get(r.address)) if found else r for _, r in results]
    summary = SweepSummary(
        total=engine.done + engine.unresolved,
        up=engine.up,
        method=plan.label,
        method_reason=plan.reason,
        elapsed_s=time.monotonic() - start,
        probes_sent=engine.sent,
        interrupted=interrupted,
    )
    return SweepReport(tuple(ordered), summary)


def _no_progress(done: int, up: int, sent: int) -> None:
    pass


def _by_order(item: tuple[tuple[int, int], HostResult]) -> tuple[int, int]:
    return item[0]  # (4, n) before (6, n); unresolved names are (7, input position)


def _with_name(result: HostResult, ptr: str | None) -> HostResult:
    if ptr is None or result.name is not None:
        return result
    return replace(result, name=ptr)


def reverse_names(addresses: list[str], timeout: float) -> dict[str, str]:
    """PTR names of live hosts, 64 lookups at a time, each with a deadline:
    a slow resolver costs at most ``timeout`` more, never the sweep."""
    found = {}
    for address, name in iter_with_deadline(resolver.ptr_name, addresses, timeout, workers=64):
        if isinstance(name, str):
            found[address] = name
    return found


class _Host:
    """A host's probes while it is being swept."""

    __slots__ = ("address", "name", "number", "outstanding", "reason", "replies", "retries_left", "rtts", "version")

    def __init__(self, address: str, version: int, name: str | None, number: int, retries: int) -> None:
        self.address, self.version, self.name, self.number = address, version, name, number
        self.rtts: list[float | None] = []
        self.outstanding = 0
        self.replies = 0
        self.retries_left = retries
        self.reason: str | None = None

    def result(self) -> HostResult:
        if self.replies:
            state, reason = HostState.UP, None
        elif self.reason:
            state, reason = HostState.UNREACHABLE, self.reason
        else:
            state, reason = HostState.DOWN, None
        return HostResult(self.address, state, tuple(self.rtts), self.name, reason)


class _Engine:
    """What every engine shares: counters, the pacing of sends, progress."""

    def __init__(self, options: SweepOptions) -> None:
        self.options = options
        self.sent = 0
        self.done = 0
        self.up = 0
        self.unresolved = 0
        self.interrupted = False
        self._gap_ns = int(1e9 / options.rate) if options.rate else 0
        self._next_send_ns = 0
        self._next_progress_ns = 0

    def run(self, hosts: Iterator, emit: Emit, progress: Progress, stop: threading.Event) -> None:
        """Probe every host ``hosts`` yields (see iter_address_texts), ``emit``
        each result, until done or ``stop`` is set."""
        raise NotImplementedError

    def close(self) -> None:
        pass

    def _may_send(self, now: int) -> bool:
        return not self._gap_ns or now >= self._next_send_ns

    def _count_send(self, now: int) -> None:
        """Count one probe and, with --rate, take its slot."""
        self.sent += 1
        if self._gap_ns:
            self._take_slot(now)

    def _take_slot(self, now: int) -> None:
        """--rate: the next send may go one gap after this one (no saving up)."""
        self._next_send_ns = max(self._next_send_ns, now - self._gap_ns) + self._gap_ns

    def _next_host(self, hosts: Iterator, emit: Emit) -> _Host | None:
        """The next host to probe (None when there are no more); names that
        did not resolve become rows of their own on the way."""
        for item in hosts:
            if type(item) is Unresolved:
                self.unresolved += 1
                emit(HostResult(item.name, HostState.UNRESOLVED, reason=item.reason), (7, self.unresolved))
                continue
            return _Host(*item, self.options.retries)
        return None

    def _finish(self, host: _Host, emit: Emit) -> None:
        result = host.result()
        self.done += 1
        self.up += result.state is HostState.UP
        emit(result, (host.version, host.number))

    def _report(self, progress: Progress, now: int, force: bool = False) -> None:
        if force or now >= self._next_progress_ns:
            self._next_progress_ns = now + PROGRESS_EVERY_NS
            progress(self.done, self.up, self.sent)


class IcmpEngine(_Engine):
    def __init__(self, options: SweepOptions) -> None:
        super().__init__(options)
        self.cookie = os.urandom(8)
        self.sockets: dict[int, probes.IcmpSocket] = {}
        self.builders: dict[int, EchoRequestBuilder] = {}
        self.selector = selectors.DefaultSelector()

    def close(self) -> None:
        self.selector.close()
        for sock in self.sockets.values():
            sock.close()

    def _socket(self, version: int) -> probes.IcmpSocket:
        sock = self.sockets.get(version)
        if sock is None:
            sock = self.sockets[version] = probes.open_icmp(version)
            probes.wait_for_arrival_timestamps()
            self.builders[version] = EchoRequestBuilder(version, sock.identifier, self.cookie, sock.kind == "raw")
            self.selector.register(sock, selectors.EVENT_READ)
        return sock

    def run(self, hosts, emit, progress, stop) -> None:
        options = self.options
        count, gap = options.count, self._gap_ns
        timeout_ns = int(options.timeout * 1e9)
        interval_ns = int(options.interval * 1e9)
        inflight: dict[tuple[str, int], tuple[_Host, int, int]] = {}
        expiry: deque[tuple[int, tuple[str, int]]] = deque()
        followups: list[tuple[int, int, _Host]] = []  # heap: (due, tiebreak, host)
        tiebreak = itertools.count()
        backlog: dict[int, list] = {}  # version → messages read while sending
        received: list = []
        retry_host: _Host | None = None  # refused by a full send buffer
        exhausted = False
        monotonic_ns, time_ns = time.monotonic_ns, time.time_ns
        sequence = 0

        def settle(host: _Host) -> None:
            if host.outstanding or len(host.rtts) < count:
                return
            if not host.replies and host.retries_left and host.reason is None:
                host.retries_left -= 1
                heapq.heappush(followups, (monotonic_ns(), next(tiebreak), host))
                return
            self._finish(host, emit)

        try:
            while not stop.is_set():
                now = monotonic_ns()
                # --- send a burst: the hot path, kept lean on purpose
                for _ in range(BURST):
                    if gap:
                        if now < self._next_send_ns:
                            break
                        self._take_slot(now)
                    if retry_host is not None:
                        host, retry_host = retry_host, None
                    elif followups and followups[0][0] <= now:
                        host = heapq.heappop(followups)[2]
                    elif exhausted or (host := self._next_host(hosts, emit)) is None:
                        exhausted = True
                        break
                    sock = self.sockets.get(host.version) or self._socket(host.version)
                    sequence = (sequence + 1) & 0xFFFF
                    key = (host.address, sequence)
                    while key in inflight:  # wrapped onto a probe still out
                        sequence = (sequence + 1) & 0xFFFF
                        key = (host.address, sequence)
                    packet = self.builders[host.version].build(sequence)
                    sent_at = time_ns()
                    try:
                        sock.sendto(packet, (host.address, 0))
                        unreachable = None
                    except OSError as exc:
                        try:
                            unreachable = sock.send_failed(exc, host.address)
                        except BlockingIOError:
                            retry_host = host
                            break
                    self.sent += 1
                    rtts = host.rtts
                    rtts.append(None)
                    if len(rtts) < count:
                        heapq.heappush(followups, (now + interval_ns, next(tiebreak), host))
                    if unreachable:
                        host.reason = unreachable
                        settle(host)
                    else:
                        inflight[key] = (host, len(rtts) - 1, sent_at)
                        expiry.append((now + timeout_ns, key))
                        host.outstanding += 1

                # --- drain replies: while there is more to send at once, only
                # read them; match them when sending pauses (the timeout wait is
                # idle) or before anything expires, so that a reply already read
                # is never lost to its own deadline.
                sending = (not exhausted or retry_host is not None) and not gap
                now = monotonic_ns()  # one reading decides both what is parsed and what expires
                expiring = bool(expiry) and expiry[0][0] <= now
                for version, sock in self.sockets.items():
                    sock.read(backlog.setdefault(version, []))
                    if not sending or expiring:
                        sock.parse(backlog[version], received)
                        backlog[version].clear()
                for answer in received:
                    key = (answer.address, answer.sequence)
                    entry = inflight.get(key)
                    if entry is None or answer.identifier != self.sockets[entry[0].version].identifier:
                        continue  # someone else's ping, or one that already timed out
                    host = entry[0]
                    if type(answer) is probes.Reply:
                        rtt_ns = answer.received_ns - entry[2]
                        if answer.cookie != self.cookie or rtt_ns > timeout_ns:
                            continue  # not ours, or arrived after its deadline: expires below
                        host.rtts[entry[1]] = max(rtt_ns, 0) / 1e6
                        host.replies += 1
                    else:
                        host.reason = answer.reason
                    del inflight[key]
                    host.outstanding -= 1
                    settle(host)
                received.clear()

                while expiry and expiry[0][0] <= now:  # --- expire
                    entry = inflight.pop(expiry.popleft()[1], None)
                    if entry is not None:
                        entry[0].outstanding -= 1
                        settle(entry[0])
                self._report(progress, now)

                if exhausted and not inflight and not followups and retry_host is None:
                    break
                if sending and retry_host is None:
                    continue  # more to send at once: due follow-ups go in the next burst
                # --- wait for a reply, the next expiry, follow-up or allowed send
                wake = [t for t in (followups and followups[0][0], expiry and expiry[0][0]) if t]
                if not exhausted and gap:
                    wake.append(self._next_send_ns)
                if retry_host is not None:
                    wake.append(now + 1)  # send buffer full: the minimum wait (EXPIRY_GRAIN_S)
                delay = (min(wake) - now) / 1e9 if wake else 0.05
                if delay > 0:
                    # At least 1 ms: deadlines come microseconds apart, and
                    # waking for each would spin; they expire in batches.
                    self.selector.select(min(max(delay, EXPIRY_GRAIN_S), 0.1))
        except KeyboardInterrupt:
            self.interrupted = True
        # Stopped early: keep what was learned about hosts still in flight.
        for host in {entry[0] for entry in inflight.values()}:
            if host.replies:
                self._finish(host, emit)
        self._report(progress, 0, force=True)


class PingEngine(_Engine):
    """A queue of targets feeding worker threads that each run the system ping."""

    def run(self, hosts, emit, progress, stop) -> None:
        options = self.options
        workers = options.workers or 64
        todo: queue.Queue = queue.Queue(maxsize=workers * 2)
        finished: queue.Queue = queue.Queue()

        def work() -> None:
            while (host := todo.get()) is not None:
                try:
                    for _ in range(options.retries + 1):
                        outcome = probes.system_ping(
                            host.address, host.version, options.timeout, options.count, options.interval
                        )
                        host.rtts.extend(outcome.rtts_ms)
                        host.replies = sum(r is not None for r in host.rtts)
                        host.reason = outcome.reason
                        if host.replies or outcome.reason or stop.is_set():
                            break
                    finished.put(host)
                except NetdiagError as exc:
                    finished.put(exc)

        threads = [threading.Thread(target=work, daemon=True) for _ in range(workers)]
        for thread in threads:
            thread.start()
        queued = 0
        pending_item = None
        exhausted = False
        try:
            while not stop.is_set():
                while not exhausted and self._may_send(time.monotonic_ns()):
                    if pending_item is None:
                        pending_item = self._next_host(hosts, emit)
                        if pending_item is None:
                            exhausted = True
                            break
                    try:
                        todo.put_nowait(pending_item)
                    except queue.Full:
                        break
                    pending_item = None
                    queued += 1
                    self._count_send(time.monotonic_ns())
                if exhausted and self.done == queued:
                    break
                try:
                    host = finished.get(timeout=min(0.05, self._gap_ns / 1e9) if self._gap_ns else 0.05)
                except queue.Empty:
                    self._report(progress, time.monotonic_ns())
                    continue
                if isinstance(host, NetdiagError):
                    raise host
                self._finish(host, emit)
                self._report(progress, time.monotonic_ns())
        except KeyboardInterrupt:
            self.interrupted = True
        finally:
            while True:  # let idle workers go; busy ones are daemons
                try:
                    todo.get_nowait()
                except queue.Empty:
                    break
            for _ in threads:
                try:
                    todo.put_nowait(None)
                except queue.Full:
                    break
        self._report(progress, 0, force=True)


class TcpEngine(_Engine):
    """Non-blocking connects to each port; SYN-ACK or RST means up."""

    def __init__(self, options: SweepOptions) -> None:
        super().__init__(options)
        self.selector = selectors.DefaultSelector()
        self.limit = options.workers or _connection_budget()

    def close(self) -> None:
        for key in list(self.selector.get_map().values()):
            key.fileobj.close()
        self.selector.close()

    def run(self, hosts, emit, progress, stop) -> None:
        options = self.options
        timeout_ns = int(options.timeout * 1e9)
        expiry: deque[tuple[int, socket.socket]] = deque()
        started: dict[socket.socket, tuple[_Host, int]] = {}
        open_sockets: dict[_Host, list[socket.socket]] = {}  # per host: one per port at most
        exhausted = False
        retry: list[_Host] = []

        def attempt(host: _Host, now: int) -> None:
            host.rtts.append(None)
            mine = open_sockets[host] = []
            for port in options.ports:
                try:
                    sock, code = probes.start_connect(host.address, host.version, port)
                except OSError as exc:
                    host.reason = (exc.strerror or "error").lower()
                    continue
                self._count_send(now)
                if code in (0, errno.EINPROGRESS):
                    self.selector.register(sock, selectors.EVENT_WRITE)
                    started[sock] = (host, now)
                    expiry.append((now + timeout_ns, sock))
                    mine.append(sock)
                else:
                    sock.close()
                    self._outcome(host, code, now, now)
            if not mine:
                conclude(host, now)

        def conclude(host: _Host, now: int) -> None:
            del open_sockets[host]
            if not host.replies and host.reason is None and host.retries_left:
                host.retries_left -= 1
                retry.append(host)
            else:
                self._finish(host, emit)

        def settle(sock: socket.socket, now: int, code: int | None) -> None:
            host, began = started.pop(sock)
            self.selector.unregister(sock)
            sock.close()
            mine = open_sockets[host]
            mine.remove(sock)
            if code is not None:
                self._outcome(host, code, began, now)
            if not mine or host.replies:
                for other in mine:  # the host answered on another port: stop waiting here
                    del started[other]
                    self.selector.unregister(other)
                    other.close()
                conclude(host, now)

        try:
            while not stop.is_set():
                now = time.monotonic_ns()
                while len(started) + len(options.ports) <= self.limit and self._may_send(now):
                    if retry:
                        attempt(retry.pop(), now)
                        continue
                    if exhausted:
                        break
                    host = self._next_host(hosts, emit)
                    if host is None:
                        exhausted = True
                        break
                    attempt(host, now)
                if exhausted and not started and not retry:
                    break
                delay = max((expiry[0][0] - now) / 1e9, 0) if expiry else 0.05
                if not exhausted and self._gap_ns:
                    delay = min(delay, max((self._next_send_ns - now) / 1e9, 0))
                for key, _ in self.selector.select(min(delay, 0.1)):
                    if key.fileobj in started:  # not closed by a sibling settled in this batch
                        settle(key.fileobj, time.monotonic_ns(), probes.connect_error(key.fileobj))
                now = time.monotonic_ns()
                while expiry and expiry[0][0] <= now:
                    sock = expiry.popleft()[1]
                    if sock in started:
                        settle(sock, now, None)
                self._report(progress, now)
        except KeyboardInterrupt:
            self.interrupted = True
        self._report(progress, 0, force=True)

    def _outcome(self, host: _Host, code: int, began: int, now: int) -> None:
        state, reason = probes.classify_connect(code)
        if state == "up":
            if host.rtts[-1] is None:
                host.rtts[-1] = (now - began) / 1e6
                host.replies += 1
        elif state == "unreachable":
            host.reason = reason


def _connection_budget() -> int:
    """How many connections may be in flight: most of the descriptor limit."""
    return max(16, min(raise_descriptor_limit(65536) - 64, 16384))
