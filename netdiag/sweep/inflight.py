"""Probes awaiting their answer, apart from any event loop (fping's seqmap.c).

One table serves every engine: a key per probe (an ICMP ``(address,
sequence)``, an ARP ``(address, slot)``, a TCP socket), the time it left, a
deadline queue in send order (timeouts are uniform, so send order is deadline
order), the late-reply rule, and the one retry decision. Time is passed in,
never read here, so the table is tested with a fake clock.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Callable, Hashable, Iterator
from typing import Generic, TypeVar, cast, overload

from netdiag.models import HostResult, HostState


class Host:
    """One address while it is being swept: its probes and what came back."""

    __slots__ = (
        "address",
        "mac",
        "name",
        "number",
        "outstanding",
        "reason",
        "replies",
        "retries_left",
        "rtts",
        "version",
    )

    def __init__(self, address: str, version: int, name: str | None, number: int, retries: int) -> None:
        self.address, self.version, self.name, self.number = address, version, name, number
        self.rtts: list[float | None] = []  # one per probe sent; None until answered
        self.outstanding = 0  # probes in flight
        self.replies = 0
        self.retries_left = retries
        self.reason: str | None = None  # set by an error answer: unreachable
        self.mac: str | None = None

    def result(self) -> HostResult:
        if self.replies:
            state, reason = HostState.UP, None
        elif self.reason:
            state, reason = HostState.UNREACHABLE, self.reason
        else:
            state, reason = HostState.DOWN, None
        return HostResult(self.address, state, tuple(self.rtts), self.name, reason, self.mac)


HostItem = tuple[str, int, str | None, int]  # (address text, version, hostname, number)
ItemT = TypeVar("ItemT")  # what a Schedule's iterator yields
HostT = TypeVar("HostT", bound=Host)  # a Host, or an engine's own kind of Host
KeyT = TypeVar("KeyT", bound=Hashable)  # what names a probe in flight


def _plain_host(item: HostItem, retries: int) -> Host:
    return Host(*item, retries)


# What settle() tells an engine to do with a host none of whose probes is in flight.
WAIT, RETRY, FINISH = "wait", "retry", "finish"


def next_step(host: Host, count: int) -> str:
    """The one retry decision: a host is finished once it has answered, been
    declared unreachable, or used up its retries; a silent host with retries
    left is probed again. WAIT while probes are out or echo requests remain."""
    if host.outstanding or len(host.rtts) < count:
        return WAIT
    if not host.replies and host.reason is None and host.retries_left:
        host.retries_left -= 1
        return RETRY
    return FINISH


class Schedule(Generic[ItemT, HostT]):
    """Which host an engine probes next: one refused by back-pressure first,
    then follow-ups that are due (the next echo request, a retry), then new
    hosts from the iterator while the caller admits them.

    Items are ``(address, version, name, number)`` made into Hosts; an engine
    whose subjects are more than an address (``port``: an address, a port and
    a protocol) passes ``make``, which builds its own Host from an item."""

    __slots__ = ("_due", "_hosts", "_make", "_order", "exhausted", "refused", "retries")

    @overload
    def __init__(self: Schedule[HostItem, Host], hosts: Iterator[HostItem], retries: int) -> None: ...
    @overload
    def __init__(self, hosts: Iterator[ItemT], retries: int, make: Callable[[ItemT, int], HostT]) -> None: ...
    def __init__(
        self,
        hosts: Iterator[ItemT] | Iterator[HostItem],
        retries: int,
        make: Callable[[ItemT, int], HostT] | None = None,
    ) -> None:
        # Without make the items are HostItems, made into plain Hosts (the first overload).
        self._hosts = cast("Iterator[ItemT]", hosts)
        self._make = make if make is not None else cast("Callable[[ItemT, int], HostT]", _plain_host)
        self.retries = retries
        self._due: list[tuple[int, int, HostT]] = []  # heap: (when, tiebreak, host)
        self._order = itertools.count()
        self.refused: HostT | None = None  # give back with refuse()
        self.exhausted = False  # the iterator has no more hosts

    def next(self, now_ns: int, admit_new: bool = True) -> HostT | None:
        """The host to probe now, or None when nothing is due."""
        refused = self.refused
        if refused is not None:
            self.refused = None
            return refused
        due = self._due
        if due and due[0][0] <= now_ns:
            return heapq.heappop(due)[2]
        if self.exhausted or not admit_new:
            return None
        item = next(self._hosts, None)
        if item is None:
            self.exhausted = True
            return None
        return self._make(item, self.retries)

    def refuse(self, host: HostT) -> None:
        """A send that back-pressure refused: this host goes first next time."""
        self.refused = host

    def later(self, host: HostT, when_ns: int) -> None:
        heapq.heappush(self._due, (when_ns, next(self._order), host))

    def next_due(self) -> int | None:
        return self._due[0][0] if self._due else None

    @property
    def ready(self) -> bool:
        """More to send at once (new hosts or a refused one)?"""
        return not self.exhausted or self.refused is not None

    @property
    def pending(self) -> bool:
        """Anything still to send, now or later?"""
        return not self.exhausted or self.refused is not None or bool(self._due)

    def waiting(self) -> set[HostT]:
        """Hosts probed before that are waiting for their next probe."""
        return {entry[2] for entry in self._due} | ({self.refused} if self.refused else set())


class InFlight(Generic[KeyT, HostT]):
    """Probes in flight: key → (host, slot in host.rtts, sent_ns)."""

    __slots__ = ("_deadlines", "_probes", "_sequence", "timeout_ns")

    def __init__(self, timeout_ns: int) -> None:
        self.timeout_ns = timeout_ns
        self._probes: dict[KeyT, tuple[HostT, int, int, int]] = {}  # key → (host, slot, sent_ns, deadline)
        self._deadlines: deque[tuple[int, KeyT]] = deque()
        self._sequence = 0

    def __len__(self) -> int:
        return len(self._probes)

    def __contains__(self, key: KeyT) -> bool:
        return key in self._probes

    def next_sequence(self, address: str) -> int:
        """A 16-bit sequence number for a probe to ``address``, wrapping
        around, never one whose earlier probe to it is still out."""
        sequence = (self._sequence + 1) & 0xFFFF
        while (address, sequence) in self._probes:
            sequence = (sequence + 1) & 0xFFFF
        self._sequence = sequence
        return sequence

    def add(self, key: KeyT, host: HostT, slot: int, sent_ns: int, now_ns: int) -> None:
        """A probe left at ``sent_ns`` (the stamp replies are measured from);
        it expires ``timeout_ns`` after ``now_ns`` (the loop's clock)."""
        deadline = now_ns + self.timeout_ns
        self._probes[key] = (host, slot, sent_ns, deadline)
        self._deadlines.append((deadline, key))
        host.outstanding += 1

    def answer(self, key: KeyT, arrived_ns: int) -> HostT | None:
        """A reply arrived at ``arrived_ns``: its host, with the RTT recorded,
        or None when the key is not ours or the reply came after the
        deadline (the late-reply rule: such a probe stays to expire)."""
        probe = self._probes.get(key)
        if probe is None:
            return None
        host, slot, sent_ns, _ = probe
        rtt_ns = arrived_ns - sent_ns
        if rtt_ns > self.timeout_ns:
            return None
        del self._probes[key]
        host.outstanding -= 1
        if host.rtts[slot] is None:
            host.replies += 1
        host.rtts[slot] = max(rtt_ns, 0) / 1e6
        return host

    def take(self, key: KeyT) -> HostT | None:
        """End a probe without a reply (an error answer); its host or None."""
        probe = self._probes.pop(key, None)
        if probe is None:
            return None
        probe[0].outstanding -= 1
        return probe[0]

    def sent_ns(self, key: KeyT) -> int | None:
        probe = self._probes.get(key)
        return None if probe is None else probe[2]

    def expire(self, now_ns: int) -> Iterator[tuple[KeyT, HostT]]:
        """Yield ``(key, host)`` for each probe whose deadline has passed."""
        deadlines, probes = self._deadlines, self._probes
        while deadlines and deadlines[0][0] <= now_ns:
            deadline, key = deadlines.popleft()
            probe = probes.get(key)
            # the key may have been answered and reused since: only its own deadline counts
            if probe is not None and probe[3] == deadline:
                del probes[key]
                probe[0].outstanding -= 1
                yield key, probe[0]

    def next_deadline(self) -> int | None:
        """The earliest deadline still queued (perhaps of an answered probe)."""
        return self._deadlines[0][0] if self._deadlines else None

    def hosts(self) -> set[HostT]:
        """Hosts with a probe in flight (an interrupted sweep reports them)."""
        return {probe[0] for probe in self._probes.values()}


class NeighbourBudget:
    """Neighbour entries a kernel-resolved sweep of an on-link segment holds.

    A probe to an unresolved on-link address makes the kernel create a
    neighbour entry that stays incomplete for its resolution time (3
    solicitations, 1 s apart); the table holds about gc_thresh3 entries for
    the whole machine (every namespace), and past that sends fail with
    ENOBUFS. Failed entries, and resolved ones unused for 5 s, are reclaimed
    when a new entry needs room, so what counts is how many addresses this
    sweep sent to within the last resolution time. The engine sends to a new
    address only while ``free()``. ``full()`` (ENOBUFS: someone else holds
    the rest) limits the sweep to what it holds now for one resolution time,
    after which the others' entries have failed or aged and may be
    reclaimed, and the whole table is tried again."""

    MINIMUM = 16

    def __init__(self, capacity: int, hold_ns: int) -> None:
        self.ceiling = max(capacity, self.MINIMUM)
        self.capacity = self.ceiling
        self.hold_ns = hold_ns
        self._holds: deque[int] = deque()  # when each entry we made may be reclaimed
        self._restore_at: int | None = None

    def free(self, now_ns: int) -> bool:
        holds = self._holds
        while holds and holds[0] <= now_ns:
            holds.popleft()
        if self._restore_at is not None and now_ns >= self._restore_at:
            self.capacity, self._restore_at = self.ceiling, None
        return len(holds) < self.capacity

    def hold(self, now_ns: int) -> None:
        self._holds.append(now_ns + self.hold_ns)

    def full(self, now_ns: int) -> None:
        self.capacity = max(self.MINIMUM, min(self.capacity, len(self._holds)))
        self._restore_at = now_ns + self.hold_ns

    def next_release(self, now_ns: int) -> int | None:
        """When an entry is next freed (or the table is tried again), after ``now_ns``."""
        self.free(now_ns)  # forget what was freed already
        times = [t for t in (self._holds[0] if self._holds else None, self._restore_at) if t is not None]
        return min(times, default=None)
