"""The contract every sweep engine keeps, and what they share.

An engine is handed an iterator of hosts and probes each one; it emits one
HostResult per host, exactly once, as soon as the host is settled. Cost grows
as hosts / send-rate + timeout, never hosts x timeout / threads.
"""

from __future__ import annotations

import selectors
import socket
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from typing import Generic, Protocol, TypeVar

from netdiag.models import HostResult, HostState
from netdiag.sweep.inflight import FINISH, RETRY, Host, HostItem, Schedule, next_step
from netdiag.sweep.options import SweepOptions

NOT_SETTLED = "interrupted before its timeout"  # down, but only as far as anyone knows
PROGRESS_EVERY_NS = 100_000_000
BURST = 256  # probes sent between two reads of the receive queue
EXPIRY_GRAIN_S = 0.001  # timeouts are kept to within a millisecond
# Connects between two reads of those that finished: an answer is timed when
# its event is read, at most this many connects after it came.
POLL_EVERY = 8

Progress = Callable[[int, int, int], None]  # (hosts done, hosts up, probes sent)
Emit = Callable[[HostResult, tuple[int, int]], None]  # a result and its place in address order


def socket_of(key: selectors.SelectorKey) -> socket.socket:
    """The socket a selector key was registered for, where only sockets are (tcp, port)."""
    sock = key.fileobj
    assert isinstance(sock, socket.socket), "only sockets are registered"
    return sock


class PacedOptions(Protocol):
    """What the engine base reads of a command's options: its --rate."""

    @property
    def rate(self) -> float | None: ...


OptionsT = TypeVar("OptionsT", bound=PacedOptions)
ItemT = TypeVar("ItemT")  # what the iterator of subjects yields
SubjectT = TypeVar("SubjectT", bound=Host)  # what is probed: a sweep's host, port's (address, port) pair
EmitT = TypeVar("EmitT")  # the subclass's result callback, handed on to its _finish


class ProbeEngine(ABC, Generic[OptionsT, ItemT, SubjectT, EmitT]):
    """Pacing, waiting and settling, whatever is probed: the sweep's hosts
    (Engine, whose docstring has the contract) or port's pairs (PortEngine)."""

    def __init__(self, options: OptionsT) -> None:
        self.options = options
        self.sent = 0
        self.done = 0
        self.up = 0
        self.interrupted = False
        self._gap_ns = int(1e9 / options.rate) if options.rate else 0
        self._next_send_ns = 0
        self._next_progress_ns = 0

    @abstractmethod
    def run(self, hosts: Iterator[ItemT], emit: EmitT, progress: Progress, stop: threading.Event) -> None:
        """Probe every subject; see Engine's docstring."""

    def close(self) -> None:  # not abstract: engines without sockets have nothing to release
        """Release sockets and other resources."""

    # --- pacing (--rate): a token bucket that never saves up
    def _may_send(self, now: int) -> bool:
        return not self._gap_ns or now >= self._next_send_ns

    def _count_send(self, now: int) -> None:
        """Count one probe and, with --rate, take its slot."""
        self.sent += 1
        if self._gap_ns:
            self._take_slot(now)

    def _take_slot(self, now: int) -> None:
        self._next_send_ns = max(self._next_send_ns, now - self._gap_ns) + self._gap_ns

    # --- waiting
    def _send_at(
        self, schedule: Schedule[ItemT, SubjectT], blocked_until: int = 0, new_hosts: bool = False
    ) -> int | None:
        """When this engine may send next (None: nothing to send): a refused
        host or a due follow-up (``new_hosts``: a new host too) may go, but
        never before back-pressure or --rate allow."""
        due = 0 if schedule.refused is not None or (new_hosts and not schedule.exhausted) else schedule.next_due()
        if due is None:
            return None
        return max(due, blocked_until, self._next_send_ns if self._gap_ns else 0)

    @staticmethod
    def _sleep(selector: selectors.BaseSelector, now: int, wakes: list[int | None]) -> None:
        """Wait for an event or the earliest of ``wakes``: at least 1 ms
        (deadlines come microseconds apart and expire in batches, and the
        loop never spins), at most 0.1 s (progress keeps moving)."""
        times = [t for t in wakes if t is not None]
        delay = (min(times) - now) / 1e9 if times else 0.05
        selector.select(min(max(delay, EXPIRY_GRAIN_S), 0.1))

    # --- hosts in and results out
    def _settle(self, host: SubjectT, count: int, schedule: Schedule[ItemT, SubjectT], emit: EmitT) -> bool:
        """Act on the one retry decision for a host with nothing in flight:
        probe it again soon, or emit its result (then True)."""
        step = next_step(host, count)
        if step is RETRY:
            schedule.later(host, time.monotonic_ns())
        elif step is FINISH:
            self._finish(host, emit)
            return True
        return False

    @abstractmethod
    def _finish(self, host: SubjectT, emit: EmitT) -> None:
        """Count a settled subject and emit its result."""

    @abstractmethod
    def _finish_unsettled(self, hosts: set[SubjectT], emit: EmitT) -> None:
        """Stopped early: subjects still being probed are emitted as learned so far."""

    def _report(self, progress: Progress, now: int, force: bool = False) -> None:
        if force or now >= self._next_progress_ns:
            self._next_progress_ns = now + PROGRESS_EVERY_NS
            progress(self.done, self.up, self.sent)


class Engine(ProbeEngine[SweepOptions, HostItem, Host, Emit]):
    """Base of the icmp, arp, ping and tcp engines.

    ``run(hosts, emit, progress, stop)`` probes every host ``hosts`` yields
    and calls ``emit`` once per host with its result and its place in address
    order; it returns when every host is settled, when ``stop`` is set, or on
    KeyboardInterrupt (then ``interrupted`` is set and hosts still in flight
    are emitted too, as learned so far). ``progress`` is called at most every
    0.1 s and once at the end. ``close()`` releases the engine's sockets and
    may be called more than once. Counters (sent, done, up) are read by the
    caller after, or by another thread during, the run.
    """

    def _finish(self, host: Host, emit: Emit) -> None:
        result = host.result()
        self.done += 1
        self.up += result.state is HostState.UP
        emit(result, (host.version, host.number))

    def _finish_unsettled(self, hosts: set[Host], emit: Emit) -> None:
        """Stopped early: hosts still being probed are reported as learned so
        far (up if they answered; else down, not settled)."""
        for host in hosts:
            result = host.result()
            if result.state is HostState.DOWN:
                result = result._replace(reason=NOT_SETTLED)
            self.done += 1
            self.up += result.state is HostState.UP
            emit(result, (host.version, host.number))
