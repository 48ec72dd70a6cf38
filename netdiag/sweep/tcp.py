"""The TCP engine: non-blocking connects multiplexed by a selector; a
SYN-ACK or an RST on any port means the host is up."""

from __future__ import annotations

import errno
import selectors
import socket
import threading
import time
from collections.abc import Iterator

from netdiag import outcomes, probes
from netdiag.errors import CannotRun
from netdiag.limits import descriptors_left
from netdiag.sweep.engine import EXPIRY_GRAIN_S, POLL_EVERY, Emit, Engine, Progress, socket_of
from netdiag.sweep.inflight import Host, HostItem, InFlight, NeighbourBudget, Schedule
from netdiag.sweep.options import SweepOptions


class TcpEngine(Engine):
    def __init__(self, options: SweepOptions, budget: NeighbourBudget | None = None) -> None:
        super().__init__(options)
        self.selector = selectors.DefaultSelector()
        self.limit = min(options.workers or 1 << 30, connection_budget())
        if self.limit < len(options.ports):
            raise CannotRun(f"--method tcp: no file descriptors for {len(options.ports)} connections (see ulimit -n)")
        self.budget = budget

    def close(self) -> None:
        for key in list(self.selector.get_map().values()):
            socket_of(key).close()
        self.selector.close()

    def run(self, hosts: Iterator[HostItem], emit: Emit, progress: Progress, stop: threading.Event) -> None:
        options, budget = self.options, self.budget
        inflight: InFlight[socket.socket, Host] = InFlight(int(options.timeout * 1e9))
        sockets: dict[Host, list[socket.socket]] = {}  # per host: one per port at most
        schedule = Schedule(hosts, options.retries)
        config = options.probe_config
        gap_ns = int(options.interval * 1e9)

        def attempt(host: Host, now: int) -> bool:
            """Connect to each port; False if the process ran out of descriptors
            (back-pressure: the host is tried again once connections close)."""
            host.rtts.append(None)
            mine = sockets[host] = []
            for port in options.ports:
                began = time.monotonic_ns()  # each connect timed from its own start
                try:
                    sock, code = probes.start_connect(host.address, host.version, port, config)
                except OSError as exc:
                    if exc.errno in (errno.EMFILE, errno.ENFILE):
                        withdraw(host)
                        return False
                    host.reason = outcomes.reason(exc.errno or 0)
                    continue
                self._count_send(now)
                if code in (0, errno.EINPROGRESS):
                    self.selector.register(sock, selectors.EVENT_WRITE)
                    inflight.add(sock, host, len(host.rtts) - 1, began, now)
                    mine.append(sock)
                else:
                    sock.close()
                    self._outcome(host, code, began, time.monotonic_ns())
            if budget is not None and not host.replies:
                budget.hold(now)
            if not mine:
                conclude(host)
            return True

        def withdraw(host: Host) -> None:
            for sock in sockets.pop(host):
                inflight.take(sock)
                release(sock)
            host.rtts.pop()
            schedule.refuse(host)
            if not len(inflight):
                raise CannotRun("--method tcp: no file descriptor left for a connection (see ulimit -n)")
            self.limit = len(inflight)  # what this process can hold, as it turns out

        def conclude(host: Host) -> None:
            """A connect round is over: the next of -c after -i, or the one retry decision."""
            del sockets[host]
            if host.reason is None and len(host.rtts) < options.count:
                schedule.later(host, time.monotonic_ns() + gap_ns)
                return
            self._settle(host, len(host.rtts), schedule, emit)  # -c done, or unreachable: no more rounds

        def release(sock: socket.socket) -> None:
            self.selector.unregister(sock)
            sock.close()

        def settle(sock: socket.socket, host: Host, now: int, code: int | None, began: int | None) -> None:
            release(sock)
            mine = sockets[host]
            mine.remove(sock)
            if code is not None and began is not None:
                self._outcome(host, code, began, now)
            if not mine or host.replies:
                for other in mine:  # the host answered on another port: stop waiting there
                    inflight.take(other)
                    release(other)
                conclude(host)

        def take_events(timeout: float) -> None:
            """Settle the connects that finished, each timed when its event is read."""
            for key, _ in self.selector.select(timeout):
                sock = socket_of(key)
                began = inflight.sent_ns(sock)
                host = inflight.take(sock)
                if host is not None:  # not closed by a sibling settled in this batch
                    settle(sock, host, time.monotonic_ns(), probes.connect_error(sock), began)

        try:
            while not stop.is_set():
                now = time.monotonic_ns()
                attempts = 0
                while len(inflight) + len(options.ports) <= self.limit and self._may_send(now):
                    host = schedule.next(now, budget is None or budget.free(now))
                    if host is None or not attempt(host, now):
                        break
                    attempts += 1
                    if attempts % POLL_EVERY == 0:  # else the burst's first answers wait for its last connect
                        take_events(0)
                        now = time.monotonic_ns()
                if not schedule.pending and not len(inflight):
                    break
                wakes = [inflight.next_deadline()]
                if len(inflight) + len(options.ports) <= self.limit:  # else only a settled connect makes room
                    room = budget is None or budget.free(now)
                    wakes.append(self._send_at(schedule, new_hosts=room))
                    if budget is not None and not room and not schedule.exhausted:
                        wakes.append(budget.next_release(now))
                times = [t for t in wakes if t is not None]
                delay = (min(times) - now) / 1e9 if times else 0.05
                take_events(min(max(delay, EXPIRY_GRAIN_S), 0.1))
                now = time.monotonic_ns()
                for sock, host in inflight.expire(now):
                    settle(sock, host, now, None, None)
                self._report(progress, now)
        except KeyboardInterrupt:
            self.interrupted = True
        if stop.is_set() or self.interrupted:
            self._finish_unsettled(set(sockets) | schedule.waiting(), emit)
        self._report(progress, 0, force=True)

    def _outcome(self, host: Host, code: int, began: int, now: int) -> None:
        state, reason = probes.classify_connect(code)
        if state == "up":
            if host.rtts[-1] is None:
                host.rtts[-1] = (now - began) / 1e6
                host.replies += 1
        elif state == "unreachable":
            host.reason = reason


SPARE_DESCRIPTORS = 64  # for the resolver, the terminal, and whatever else opens files meanwhile


def connection_budget() -> int:
    """How many connections may be in flight: what the descriptor limit
    leaves once lifted as far as it goes (``ulimit -n``), at most 16,384."""
    return min(descriptors_left(SPARE_DESCRIPTORS), 16384)
