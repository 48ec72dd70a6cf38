"""The ICMP echo engine: one thread, non-blocking raw or datagram sockets.

It sends in bursts, reads replies between bursts into a large kernel buffer
(replies carry kernel timestamps, so a late read never inflates an RTT) and
matches them once sending pauses or before anything expires. One thread beats
several here: the work is per-packet Python, and threads would only fight
over the GIL.

On-link targets (a NeighbourBudget given) cost the kernel a neighbour entry
each until it resolves them: the engine keeps the unresolved ones under the
table's capacity, spreads datagram probes over several sockets (a probe
waiting for ARP is charged to its socket's send buffer) and treats ENOBUFS
and EAGAIN as back-pressure.
"""

from __future__ import annotations

import errno
import os
import selectors
import threading
import time
from collections.abc import Callable, Iterator

from netdiag import probes
from netdiag.icmp import EchoRequestBuilder
from netdiag.sweep.engine import BURST, Emit, Engine, Progress
from netdiag.sweep.inflight import Host, HostItem, InFlight, NeighbourBudget, Schedule
from netdiag.sweep.options import SweepOptions

ENOBUFS_PAUSE_NS = 50_000_000  # the neighbour table is full: look again this much later at most
ON_LINK_SOCKETS = 8  # datagram sockets for on-link sweeps: each holds a few hundred queued probes


class IcmpEngine(Engine):
    inflight: InFlight[tuple[str, int], Host]  # (address, sequence) → host; made by run

    def __init__(self, options: SweepOptions, kind: str, budget: NeighbourBudget | None = None) -> None:
        super().__init__(options)
        self.kind = kind
        self.budget = budget
        self.cookie = os.urandom(8)
        # version → (socket, its request builder), sent from in turn
        self.pools: dict[int, list[tuple[probes.IcmpSocket, EchoRequestBuilder]]] = {}
        self.identifiers: set[int] = set()  # of our sockets: replies with others are someone else's
        self.selector = selectors.DefaultSelector()

    def close(self) -> None:
        self.selector.close()
        for pool in self.pools.values():
            for sock, _ in pool:
                sock.close()
        self.pools.clear()

    def _pool(self, version: int) -> list[tuple[probes.IcmpSocket, EchoRequestBuilder]]:
        pool = self.pools.get(version)
        if pool is None:
            size = ON_LINK_SOCKETS if self.budget is not None and self.kind == "dgram" else 1
            pool = self.pools[version] = []
            for _ in range(size):
                sock = probes.open_icmp(version, self.options.probe_config, self.kind)
                pool.append((sock, EchoRequestBuilder(version, sock.identifier, self.cookie, sock.kind == "raw")))
                self.identifiers.add(sock.identifier)
                self.selector.register(sock, selectors.EVENT_READ)
            probes.wait_for_arrival_timestamps()
        return pool

    def run(self, hosts: Iterator[HostItem], emit: Emit, progress: Progress, stop: threading.Event) -> None:
        options, budget = self.options, self.budget
        count, gap = options.count, self._gap_ns
        interval_ns = int(options.interval * 1e9)
        inflight = self.inflight = InFlight(int(options.timeout * 1e9))
        schedule = Schedule(hosts, options.retries)
        backlog: dict[int, list[probes.Message]] = {}  # id(socket) → messages read while sending
        blocked_until = 0  # back-pressure: no sends before this
        monotonic_ns, time_ns = time.monotonic_ns, time.time_ns
        turn = 0  # next socket of a pool to send from

        def settle(host: Host) -> None:
            self._settle(host, count, schedule, emit)

        try:
            while not stop.is_set():
                now = monotonic_ns()
                # --- send a burst: the hot path, kept lean on purpose
                for _ in range(BURST):
                    if now < blocked_until:
                        break
                    if gap:
                        if now < self._next_send_ns:
                            break
                        self._take_slot(now)
                    # a new address only while the neighbour table has room for it
                    host = schedule.next(now, budget is None or budget.free(now))
                    if host is None:
                        break
                    pool = self.pools.get(host.version) or self._pool(host.version)
                    sock, builder = pool[turn % len(pool)]
                    sequence = inflight.next_sequence(host.address)
                    packet = builder.build(sequence)
                    sent_at = time_ns()
                    try:
                        sock.sendto(packet, (host.address, 0))
                        unreachable = None
                    except OSError as exc:
                        try:
                            unreachable = sock.send_failed(exc, host.address)
                        except BlockingIOError as pressure:
                            schedule.refuse(host)
                            blocked_until = self._back_off(pressure, pool, turn, now)
                            turn += 1
                            break
                    turn += 1
                    self.sent += 1
                    rtts = host.rtts
                    rtts.append(None)
                    if budget is not None and not host.replies:
                        budget.hold(now)
                    if len(rtts) < count:
                        schedule.later(host, now + interval_ns)
                    if unreachable:
                        host.reason = unreachable
                        settle(host)
                    else:
                        inflight.add((host.address, sequence), host, len(rtts) - 1, sent_at, now)

                # --- read replies: while there is more to send at once, only
                # read them; match them when sending pauses (the timeout wait is
                # idle) or before anything expires, so that a reply already read
                # is never lost to its own deadline.
                sending = schedule.ready and not gap and now >= blocked_until
                now = monotonic_ns()  # one reading decides both what is parsed and what expires
                deadline = inflight.next_deadline()
                expiring = deadline is not None and deadline <= now
                self._read_and_match(backlog, not sending or expiring, settle)

                for _, host in inflight.expire(now):
                    settle(host)
                self._report(progress, now)

                if not schedule.pending and not len(inflight):
                    break
                if sending and schedule.refused is None and (budget is None or budget.free(now)):
                    continue  # more to send at once: due follow-ups go in the next burst
                self._wait(now, schedule, blocked_until)
        except KeyboardInterrupt:
            self.interrupted = True
        if stop.is_set() or self.interrupted:
            self._read_and_match(backlog, True, settle)  # replies already in: learned, not lost
            self._finish_unsettled(inflight.hosts() | schedule.waiting(), emit)
        self._report(progress, 0, force=True)

    def _read_and_match(
        self, backlog: dict[int, list[probes.Message]], match: bool, settle: Callable[[Host], None]
    ) -> None:
        """Read every socket; with ``match``, parse what was read (now and
        before) and settle the hosts it answers."""
        received: list[probes.Reply | probes.Unreachable] = []
        for pool in self.pools.values():
            for sock, _ in pool:
                messages = backlog.setdefault(id(sock), [])
                sock.read(messages)
                if match:
                    sock.parse(messages, received)
                    messages.clear()
        identifiers, inflight = self.identifiers, self.inflight
        for answer in received:
            if answer.identifier not in identifiers:
                continue  # someone else's ping
            key = (answer.address, answer.sequence)
            if type(answer) is probes.Reply:
                if answer.cookie != self.cookie:
                    continue
                host = inflight.answer(key, answer.received_ns)
            else:
                host = inflight.take(key)
                if host is not None:
                    host.reason = answer.reason
            if host is not None:
                settle(host)

    def _back_off(
        self, pressure: BlockingIOError, pool: list[tuple[probes.IcmpSocket, EchoRequestBuilder]], turn: int, now: int
    ) -> int:
        """A send was refused for lack of room: when to send again."""
        if pressure.errno == errno.ENOBUFS and self.budget is not None:
            self.budget.full(now)  # the neighbour table: wait for entries to fail
            release = self.budget.next_release(now)
            return min(release or now, now + ENOBUFS_PAUSE_NS)
        if len(pool) > 1 and turn % len(pool) != len(pool) - 1:
            return now  # another socket of the pool may have room
        return now + 1_000_000  # the socket's buffer: a millisecond drains it

    def _wait(self, now: int, schedule: Schedule[HostItem, Host], blocked_until: int) -> None:
        """Until a reply, the next expiry, a send that may go, or a free neighbour entry."""
        budget = self.budget
        room = budget is None or budget.free(now)
        release = None if budget is None or room or schedule.exhausted else budget.next_release(now)
        send_at = self._send_at(schedule, blocked_until, new_hosts=room)
        self._sleep(self.selector, now, [self.inflight.next_deadline(), send_at, release])
