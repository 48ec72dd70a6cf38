"""The ARP engine: who-has requests from user space on one Ethernet segment.

ARP is the probe an on-link IPv4 host cannot ignore (it finds hosts that drop
ping too), and sent from a packet socket it never touches the kernel's
neighbour table, so a /16 costs no more than its send time plus the timeout.
Requests carry no sequence number: a reply answers the oldest request still
in flight to its sender address (with --count, a lost request makes the next
reply count for it), and a reply with nothing in flight is ignored.
"""

from __future__ import annotations

import selectors
import socket
import threading
import time
from collections.abc import Iterator

from netdiag import arp, links, outcomes, probes
from netdiag.errors import ProbeError
from netdiag.outcomes import Outcome
from netdiag.sweep.engine import BURST, Emit, Engine, Progress
from netdiag.sweep.inflight import Host, HostItem, InFlight, Schedule
from netdiag.sweep.options import SweepOptions

Frame = tuple[bytes, probes.Ancillary]  # an Ethernet frame and its receive stamp


class ArpEngine(Engine):
    inflight: InFlight[tuple[bytes, int], Host]  # (packed address, slot) → host; made by run

    def __init__(self, options: SweepOptions, link: links.Link) -> None:
        super().__init__(options)
        self.link = link
        self.sock: socket.socket | None = None
        self.selector = selectors.DefaultSelector()
        self.own = link.own

    def close(self) -> None:
        self.selector.close()
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def _open(self) -> socket.socket:
        self.sock = probes.open_arp(self.link.interface.name)
        self.selector.register(self.sock, selectors.EVENT_READ)
        probes.wait_for_arrival_timestamps()
        return self.sock

    def run(self, hosts: Iterator[HostItem], emit: Emit, progress: Progress, stop: threading.Event) -> None:
        options, link = self.options, self.link
        count, gap = options.count, self._gap_ns
        interval_ns = int(options.interval * 1e9)
        inflight = self.inflight = InFlight(int(options.timeout * 1e9))
        schedule = Schedule(hosts, options.retries)
        sock = self._open()
        our_ip = link.source.packed
        builder = arp.RequestBuilder(arp.parse_mac(link.interface.mac or ""), our_ip)
        waiting: dict[bytes, Host] = {}  # packed address → host with a request in flight
        backlog: list[Frame] = []
        monotonic_ns, time_ns = time.monotonic_ns, time.time_ns
        inet_aton, send = socket.inet_aton, sock.send

        def settle(host: Host) -> None:
            if self._settle(host, count, schedule, emit):
                waiting.pop(inet_aton(host.address), None)  # a /16 keeps no table of finished hosts

        try:
            while not stop.is_set():
                now = monotonic_ns()
                for _ in range(BURST):
                    if gap:
                        if now < self._next_send_ns:
                            break
                        self._take_slot(now)
                    host = schedule.next(now)
                    if host is None:
                        break
                    if host.address in self.own:  # ourselves: up without a probe (so no RTT)
                        host.mac, host.replies = link.interface.mac, 1
                        self._finish(host, emit)
                        continue
                    packed = inet_aton(host.address)
                    sent_at = time_ns()  # before the send: on a veth the reply is in before it returns
                    try:
                        send(builder.build(packed))
                    except OSError as exc:
                        outcome, reason = outcomes.classify(exc.errno or 0)
                        if outcome is not Outcome.BACK_PRESSURE:
                            raise ProbeError(f"sending ARP on {link.label}: {reason}") from None
                        schedule.refuse(host)  # a full transmit queue: again after the wait
                        break
                    self.sent += 1
                    host.rtts.append(None)
                    slot = len(host.rtts) - 1
                    if len(host.rtts) < count:
                        schedule.later(host, now + interval_ns)
                    waiting[packed] = host
                    inflight.add((packed, slot), host, slot, sent_at, now)

                sending = schedule.ready and not gap
                now = monotonic_ns()
                deadline = inflight.next_deadline()
                expiring = deadline is not None and deadline <= now
                self._read(sock, backlog)
                if not sending or expiring:
                    for frame, ancillary in backlog:
                        reply = arp.parse_reply(frame, our_ip)
                        if reply is None or (host := waiting.get(reply[0])) is None:
                            continue
                        oldest = _oldest_in_flight(host, reply[0], inflight)
                        if oldest is None or inflight.answer((reply[0], oldest), probes.arrival_ns(ancillary)) is None:
                            continue  # a second reply, or one after its deadline
                        host.mac = host.mac or arp.format_mac(reply[1])
                        settle(host)
                    backlog.clear()

                for _, host in inflight.expire(now):
                    settle(host)
                self._report(progress, now)
                if not schedule.pending and not len(inflight):
                    break
                if sending and schedule.refused is None:
                    continue
                send_at = self._send_at(schedule, new_hosts=True)
                self._sleep(self.selector, now, [inflight.next_deadline(), send_at])
        except KeyboardInterrupt:
            self.interrupted = True
        if stop.is_set() or self.interrupted:
            self._finish_unsettled(inflight.hosts() | schedule.waiting(), emit)
        self._report(progress, 0, force=True)

    @staticmethod
    def _read(sock: socket.socket, backlog: list[Frame]) -> None:
        recvmsg, append = sock.recvmsg, backlog.append
        while True:
            try:
                frame, ancillary, _, _ = recvmsg(128, 64)
            except (BlockingIOError, InterruptedError):
                return
            append((frame, ancillary))


def _oldest_in_flight(host: Host, packed: bytes, inflight: InFlight[tuple[bytes, int], Host]) -> int | None:
    for slot, rtt in enumerate(host.rtts):
        if rtt is None and (packed, slot) in inflight:
            return slot
    return None
