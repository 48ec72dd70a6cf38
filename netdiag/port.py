"""``netdiag port``: is this port open on these hosts? host x port checks.

Each (address, port) pair of a protocol is one probe subject of the sweep's
machinery: the Schedule, the InFlight table and the one retry decision
(netdiag.sweep.inflight), the engine base's pacing (``--rate``) and settling
(netdiag.sweep.engine), the socket constructors and the errno table of
netdiag.probes. Cost grows as pairs / rate + timeout.

TCP, a non-blocking connect per pair: ``open`` (handshake done), ``closed``
(an RST), ``filtered`` (no answer within the timeout, or an ICMP error: its
reason is kept; IP_RECVERR tells a firewall's port unreachable from an RST,
which nmap -sT cannot). Connections are closed at once with an RST and no
data, unless asked to read the banner (up to 256 bytes, after an optional
payload) or to shake hands in TLS.

UDP, a connected socket with IP_RECVERR (unprivileged): a reply is ``open``,
an ICMP port unreachable ``closed``, another ICMP error ``filtered``, and
silence after every retry ``open|filtered``, as nmap reports it.
"""

from __future__ import annotations

import copy
import errno
import gc
import ipaddress
import re
import selectors
import socket
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from enum import Enum
from operator import itemgetter
from typing import TYPE_CHECKING, NamedTuple

from netdiag import outcomes, probes, x509
from netdiag.errors import BadInput, CannotRun, NetdiagError, TargetError
from netdiag.outcomes import Outcome
from netdiag.ports import PortTarget, check_numbers, parse_port_target
from netdiag.sweep.engine import EXPIRY_GRAIN_S, POLL_EVERY, ProbeEngine, socket_of
from netdiag.sweep.inflight import Host, InFlight, Schedule
from netdiag.sweep.tcp import connection_budget
from netdiag.targets import MAX_ADDRESSES, AddressBlock, HostName, LinkDiscovery, Listed, SeenRuns, ipv6_text

if TYPE_CHECKING:
    from netdiag.sweep.run import Addresses

MAX_PAIRS = MAX_ADDRESSES  # the sweep's limit, in pairs: more needs --force
PROTOCOLS = ("tcp", "udp")
# Without -p and without ports of their own: the services a sysadmin asks about first.
DEFAULT_PORTS = {
    "tcp": (21, 22, 23, 25, 53, 80, 110, 143, 443, 445, 465, 587, 993, 995, 3306, 3389, 5432, 6379, 8080, 8443),
    "udp": (53, 67, 69, 123, 137, 161, 500, 514, 1900, 5353),
}
BANNER_BYTES = 256  # what the server says first, at most
MAX_SEND = 4096  # --send: one small request, not an upload
TLS_READ = 16384  # one TLS record
TLS_MOST = 256 << 10  # bytes a server may send before its handshake is done (OpenSSL takes 100 KiB of certificates)
KEPT_AT_ONCE = 1024  # connections kept open at once to read a banner
KEPT_AT_ONCE_TLS = 256  # in a TLS handshake: each may hold OpenSSL's buffers (~150 KB of a stalled certificate)
NOT_SETTLED = "interrupted before its timeout"
UNRESOLVED_ORDER = 1 << 130  # a name's rows after the addresses of its target


class PortState(Enum):
    OPEN = "open"  # TCP handshake done; a UDP reply
    CLOSED = "closed"  # an RST; an ICMP port unreachable for UDP
    FILTERED = "filtered"  # TCP silence, or an ICMP error (reason set)
    OPEN_FILTERED = "open|filtered"  # UDP silence: open and quiet, or dropped
    UNRESOLVED = "unresolved"  # a name without an address


@dataclass(frozen=True)
class TlsFacts:
    """What a server presents in TLS. Not verified: what is there, not whether it is good."""

    version: str  # "TLSv1.3"
    cipher: str | None
    subject: str | None  # the certificate's, as data (visible() for display)
    issuer: str | None
    not_after: str | None  # ISO 8601, UTC


@dataclass(frozen=True)
class PortResult:
    target: str  # as the user typed it (without its ports): a name, a network, an address
    address: str | None  # None when a name did not resolve
    port: int
    proto: str
    service: str | None  # the services database's name for the port
    state: PortState
    reason: str | None = None  # why filtered (an ICMP error, "timed out"), unresolved, or a TLS failure
    rtt_ms: float | None = None  # connect time (open, closed), or until the ICMP error
    banner: bytes | None = None  # None: not asked for (or not open); b"": asked, nothing said
    tls: TlsFacts | None = None

    @property
    def open(self) -> bool:
        return self.state is PortState.OPEN


@dataclass(frozen=True)
class PortSummary:
    pairs: int  # pairs with a result (fewer than planned when interrupted)
    open: int
    closed: int
    filtered: int
    open_filtered: int
    unresolved: int
    elapsed_s: float
    probes_sent: int
    interrupted: bool = False

    @property
    def all_open(self) -> bool:
        """Exit status 0: every pair checked and open."""
        return self.pairs > 0 and self.open == self.pairs and not self.interrupted


@dataclass(frozen=True)
class PortReport:
    results: tuple[PortResult, ...]  # in target order, then address, then port
    summary: PortSummary


@dataclass(frozen=True)
class PortOptions:
    ports: tuple[int, ...] | None = None  # -p: for targets without their own; None: DEFAULT_PORTS
    proto: str = "tcp"
    timeout: float = 1.0  # seconds a connect or a datagram waits for its answer
    retries: int = 0  # further tries for a silent pair
    rate: float | None = None  # connects or datagrams per second, at most
    workers: int | None = None  # sockets open at once, at most
    banner: bool = False  # TCP: read what the server says first
    send: bytes | None = None  # TCP: sent once connected (the banner is read after); UDP: the datagram
    banner_timeout: float = 1.0
    tls: bool = False  # TCP: shake hands, report version, subject, expiry
    ip_version: int | None = None  # -4 / -6: names resolve to this family only
    name_timeout: float = 2.0

    @property
    def default_ports(self) -> tuple[int, ...]:
        return self.ports if self.ports is not None else DEFAULT_PORTS.get(self.proto, ())

    @property
    def reads_banner(self) -> bool:
        return self.proto == "tcp" and (self.banner or self.send is not None)

    @property
    def talk_s(self) -> float:
        """Seconds an open TCP connection is kept: the handshake, then the banner."""
        return (self.timeout if self.tls else 0) + (self.banner_timeout if self.reads_banner else 0)

    def validate(self) -> None:
        if self.proto not in PROTOCOLS:
            raise BadInput(f"protocol must be tcp or udp, not {self.proto!r}")
        if not 0 < self.timeout <= 60:
            raise BadInput(f"--timeout must be more than 0 and at most 60 seconds, not {self.timeout:g}")
        if not 0 < self.banner_timeout <= 60:
            raise BadInput(f"--banner-timeout must be more than 0 and at most 60 seconds, not {self.banner_timeout:g}")
        if not 0 <= self.retries <= 10:
            raise BadInput(f"--retries must be between 0 and 10, not {self.retries}")
        if self.rate is not None and not (self.rate == self.rate and 0.01 <= self.rate <= 10_000_000):
            raise BadInput(f"--rate must be between 0.01 and 10,000,000 probes per second, not {self.rate:g}")
        if self.workers is not None and not 1 <= self.workers <= 65_536:
            raise BadInput(f"--workers must be between 1 and 65536, not {self.workers}")
        if self.ports is not None:
            if not self.ports:
                raise BadInput("-p: no ports given")
            check_numbers(self.ports, "-p")
        if self.send is not None and len(self.send) > MAX_SEND:
            raise BadInput(f"--send: {len(self.send):,} bytes is more than {MAX_SEND:,}")
        if self.tls and self.proto != "tcp":
            raise BadInput("--tls goes with TCP, not -u")
        if self.ip_version not in (None, 4, 6):
            raise BadInput(f"IP version must be 4 or 6, not {self.ip_version}")


_HEX_BYTE = re.compile("[0-9a-fA-F]{2}")
_ESCAPES = {"r": b"\r", "n": b"\n", "t": b"\t", "0": b"\0", "e": b"\x1b", "\\": b"\\"}


def payload_bytes(text: str) -> bytes:
    """``--send`` text as bytes: UTF-8, with \\r \\n \\t \\0 \\e \\\\ and \\xHH
    (``HEAD / HTTP/1.0\\r\\n\\r\\n`` as typed in a shell)."""
    out, i = bytearray(), 0
    while i < len(text):
        char = text[i]
        if char != "\\":
            out += char.encode("utf-8", "surrogateescape")  # argv bytes that are not UTF-8 are sent as they were
            i += 1
            continue
        code = text[i + 1 : i + 2]
        if code in _ESCAPES:
            out += _ESCAPES[code]
            i += 2
        elif (
            code == "x"
            and len(text[i + 2 : i + 4]) == 2
            and all(c in "0123456789abcdefABCDEF" for c in text[i + 2 : i + 4])
        ):
            out.append(int(text[i + 2 : i + 4], 16))
            i += 4
        else:
            raise BadInput(f"--send: unknown escape {text[i : i + 4]!r} (\\r \\n \\t \\0 \\e \\\\ \\xHH)")
    return bytes(out)


# --- targets to pairs


def parse_port_targets(texts: Iterable[str | Listed], options: PortOptions, *, force: bool = False) -> list[PortTarget]:
    """Every target item parsed (``HOST:PORTS`` and ``[V6]:PORTS`` too) before
    anything is sent, a refusal naming the file and line it came from; more
    than MAX_PAIRS pairs in all needs ``force``."""

    def parse(text: str) -> PortTarget:
        if text.isascii() and text.isdigit():  # `nc -z HOST PORT` habits: 22 is no host here
            raise TargetError(f"{text!r} looks like a port: write HOST:{text} or -p {text}")
        item = parse_port_target(text, options.proto, force=force)
        target = item.target
        if isinstance(target, HostName) and any(c in target.name for c in ":%@"):
            raise TargetError(f"{text!r} is not an address, network, range or host name (nor HOST:PORTS)")
        if isinstance(target, LinkDiscovery):
            raise TargetError(f"{item.text}: link discovery is for sweep; give the addresses it finds")
        if options.ip_version and isinstance(target, AddressBlock) and target.version != options.ip_version:
            raise TargetError(f"{item.text} is IPv{target.version}, but IPv{options.ip_version} only was asked for")
        return item

    targets = [(text if isinstance(text, Listed) else Listed(text)).parse(parse) for text in texts]
    total = count_pairs(targets, options)
    if not force and total > MAX_PAIRS:
        raise TargetError(f"{len(targets):,} targets and their ports make {total:,} pairs, more than "
                          f"{MAX_PAIRS:,}; add --force to check them anyway")  # fmt: skip
    return targets


def count_pairs(targets: Iterable[PortTarget], options: PortOptions) -> int:
    """Pairs the targets expand to, before duplicates are dropped (a name counts one address)."""
    default = len(options.default_ports)
    return sum(
        (item.target.size if isinstance(item.target, AddressBlock) else 1)
        * (len(item.ports) if item.ports is not None else default)
        for item in targets
    )


PairItem = tuple[str, int, str | None, int, int, str, int]  # address, version, name, number, port, target, origin


class _SeenPairs:
    """Pairs given already (a pair in two targets is checked once): runs of
    addresses per port, so that a network's memory stays its few runs. Ports
    with the same history share one record (``-p 1-65535`` twice: one, not 65,535)."""

    def __init__(self) -> None:
        self._runs: dict[int, SeenRuns] = {}
        self._holders: dict[int, int] = {}  # id of a record: how many ports share it

    def fresh(self, version: int, first: int, last: int, ports: tuple[int, ...]) -> Iterator[tuple[int, int]]:
        """``(number, port)`` of the run not seen before, address by address."""
        alike: dict[int, tuple[SeenRuns | None, list[int]]] = {}  # ports by the record they share
        for port in ports:
            runs = self._runs.get(port)
            alike.setdefault(id(runs), (runs, []))[1].append(port)
        unseen: dict[int, list[tuple[int, int]]] = {}
        for runs, members in alike.values():
            found = [(first, last)] if runs is None else list(runs.unseen_runs(version, first, last))
            if runs is not None and self._holders[id(runs)] == len(members):
                runs.add(
                    version, first, last
                )  # no other port shares it: grown in place (a list of 10,000 hosts stays linear)
                unseen.update((port, found) for port in members)
                continue
            after = SeenRuns() if runs is None else copy.deepcopy(runs)  # others share the old one: theirs stays
            after.add(version, first, last)
            if runs is not None:
                self._holders[id(runs)] -= len(members)
            self._holders[id(after)] = len(members)
            for port in members:
                self._runs[port], unseen[port] = after, found
        if all(found == [(first, last)] for found in unseen.values()):  # nothing seen: every pair
            for number in range(first, last + 1):
                for port in ports:
                    yield number, port
            return
        cursor = dict.fromkeys(ports, 0)
        for number in range(first, last + 1):
            for port in ports:
                runs_left, i = unseen[port], cursor[port]
                while i < len(runs_left) and runs_left[i][1] < number:
                    i += 1
                cursor[port] = i
                if i < len(runs_left) and runs_left[i][0] <= number:
                    yield number, port


def _address_text(version: int, number: int) -> str:
    if version == 4:
        return socket.inet_ntop(socket.AF_INET, number.to_bytes(4, "big"))
    return ipv6_text(number)


def _pairs(
    targets: list[PortTarget],
    options: PortOptions,
    answers: dict[str, Addresses | NetdiagError] | None,
    seen: _SeenPairs | None,
    unresolved: Callable[[int, PortTarget, str], None],
    *,
    names_only: bool = False,
) -> Iterator[PairItem]:
    """Every pair to check, target by target, address by address, port by
    port. Names wait for ``answers`` (None: skipped, checked in a later pass)."""
    for origin, item in enumerate(targets):
        ports = item.ports if item.ports is not None else options.default_ports
        target = item.target
        if isinstance(target, HostName):
            if answers is None:
                continue
            answer = answers[target.name]
            if isinstance(answer, NetdiagError):
                unresolved(origin, item, str(answer))
                continue
            runs: list[tuple[int, int, int]] = [(a.version, int(a), int(a)) for a in answer]  # (version, first, last)
            name: str | None = target.name
        elif names_only or not isinstance(target, AddressBlock):
            continue
        else:
            runs = [(target.version, int(target.first), int(target.last))]
            name = None
        for version, first, last in runs:
            if seen is None:
                fresh: Iterable[tuple[int, int]] = ((n, p) for n in range(first, last + 1) for p in ports)
            else:
                fresh = seen.fresh(version, first, last, ports)
            text, text_of = "", -1
            for number, port in fresh:
                if number != text_of:
                    text, text_of = _address_text(version, number), number
                yield text, version, name, number, port, item.text, origin


# --- the engine


class _TlsChannel(NamedTuple):
    """A TLS client over two buffers: what the socket brought in, and what it is to send."""

    connection: ssl.SSLObject
    incoming: ssl.MemoryBIO
    outgoing: ssl.MemoryBIO


class _Talk:
    """An open TCP connection kept to read its banner or shake hands in TLS."""

    __slots__ = ("banner", "received", "tls", "tls_facts")

    def __init__(self) -> None:
        self.banner = bytearray()
        self.tls: _TlsChannel | None = None
        self.received = 0  # bytes read from the socket in the handshake
        self.tls_facts: TlsFacts | None = None


class Pair(Host):
    """One (address, port) while it is being checked: a Host of the sweep's
    table, with the port, the state learned and the open connection's talk."""

    __slots__ = ("origin", "port", "state", "talk", "target")

    def __init__(self, address: str, version: int, name: str | None, number: int, port: int, target: str,
                 origin: int, retries: int) -> None:  # fmt: skip
        super().__init__(address, version, name, number, retries)
        self.port, self.target, self.origin = port, target, origin
        self.state: PortState | None = None  # None: no answer yet
        self.talk: _Talk | None = None

    @staticmethod
    def make(item: PairItem, retries: int) -> Pair:
        return Pair(*item, retries)


Emit = Callable[[PortResult, tuple[int, int, int, int]], None]  # a result and its place in target order
Progress = Callable[[int, int, int], None]  # (pairs done, open, probes sent)


class PortEngine(ProbeEngine[PortOptions, PairItem, Pair, Emit]):
    """Checks pairs; ``run`` may be called more than once (addresses, then
    the names once resolved). See Engine for the contract."""

    # made by each run
    _waiting: InFlight[socket.socket, Pair]  # connects and datagrams
    _talking: InFlight[socket.socket, Pair]  # open connections kept
    _schedule: Schedule[PairItem, Pair]
    _emit: Emit

    def __init__(self, options: PortOptions) -> None:
        super().__init__(options)
        self.tcp = options.proto == "tcp"
        self.selector = selectors.DefaultSelector()
        self.limit = min(options.workers or 1 << 30, connection_budget())
        if self.limit < 1:
            raise CannotRun("no file descriptor left for a socket (see ulimit -n)")
        self.keeps = self.tcp and (options.reads_banner or options.tls)  # an open connection is kept
        if self.keeps:  # memory stays bounded whatever the servers send
            self.limit = min(self.limit, KEPT_AT_ONCE_TLS if options.tls else KEPT_AT_ONCE)
        self.payload = options.send if options.send is not None else b""
        self.tls_context = _tls_context() if options.tls else None
        from netdiag import services  # the C library through ctypes: only for this command

        self.services = services.port_names(options.proto)

    def close(self) -> None:
        for key in list(self.selector.get_map().values()):
            socket_of(key).close()
        self.selector.close()

    def run(self, hosts: Iterator[PairItem], emit: Emit, progress: Progress, stop: threading.Event) -> None:
        options = self.options
        waiting = self._waiting = InFlight(int(options.timeout * 1e9))
        talking = self._talking = InFlight(int(options.talk_s * 1e9))
        self._schedule = schedule = Schedule(hosts, options.retries, make=Pair.make)
        self._emit = emit
        try:
            while not stop.is_set():
                now = time.monotonic_ns()
                started = 0
                while len(waiting) + len(talking) < self.limit and self._may_send(now):
                    pair = schedule.next(now)
                    if pair is None or not self._start(pair, now):
                        break
                    started += 1
                    if started % POLL_EVERY == 0:  # else the burst's first answers wait for its last connect
                        self._take_events(0)
                        now = time.monotonic_ns()
                        self._expire(now)  # and -t holds in a long burst: a pair is never late by its length
                if not schedule.pending and not len(waiting) and not len(talking):
                    break
                wakes = [waiting.next_deadline(), talking.next_deadline()]
                if len(waiting) + len(talking) < self.limit:
                    wakes.append(self._send_at(schedule, new_hosts=True))
                times = [t for t in wakes if t is not None]
                delay = (min(times) - now) / 1e9 if times else 0.05
                self._take_events(min(max(delay, EXPIRY_GRAIN_S), 0.1))
                now = time.monotonic_ns()
                self._expire(now)
                self._report(progress, now)
        except KeyboardInterrupt:
            self.interrupted = True
        if stop.is_set() or self.interrupted:
            self._finish_unsettled(waiting.hosts() | talking.hosts() | schedule.waiting(), emit)
        self._report(progress, 0, force=True)

    def _expire(self, now: int) -> None:
        """Pairs whose -t (or talk time) is over: settled now."""
        for sock, pair in self._waiting.expire(now):
            self._release(sock)
            self._settle(pair, 1, self._schedule, self._emit)
        for sock, pair in self._talking.expire(now):
            self._done_talking(sock, pair, "TLS handshake timed out" if _shaking(pair) else None)

    # --- results out

    def _finish(self, pair: Pair, emit: Emit) -> None:
        result = self._result(pair, None)
        self.done += 1
        self.up += result.state is PortState.OPEN
        emit(result, (pair.origin, pair.version, pair.number, pair.port))

    def _finish_unsettled(self, hosts: set[Pair], emit: Emit) -> None:
        """Stopped early: pairs in flight are reported as learned so far."""
        for pair in hosts:
            result = self._result(pair, NOT_SETTLED)
            self.done += 1
            self.up += result.state is PortState.OPEN
            emit(result, (pair.origin, pair.version, pair.number, pair.port))

    def _result(self, pair: Pair, unsettled: str | None) -> PortResult:
        state, reason = pair.state, pair.reason
        if state is None:
            state = PortState.FILTERED if self.tcp else PortState.OPEN_FILTERED
            reason = unsettled or ("timed out" if self.tcp else "no reply")
        rtt = next((r for r in reversed(pair.rtts) if r is not None), None)
        talk = pair.talk
        banner = None
        if state is PortState.OPEN and (self.options.reads_banner or (not self.tcp and self.options.banner)):
            banner = bytes(talk.banner) if talk is not None else b""
        tls = talk.tls_facts if talk is not None else None
        if unsettled and state is PortState.OPEN and talk is not None and reason is None:
            # open, but interrupted while it was being talked to: say which part was cut short
            reason = (
                "interrupted in the TLS handshake"
                if self.options.tls and tls is None
                else "interrupted reading the banner"
            )
        proto = self.options.proto
        return PortResult(pair.target, pair.address, pair.port, proto, self.services.get(pair.port), state, reason,
                          rtt, banner, tls)  # fmt: skip

    # --- probes out

    def _start(self, pair: Pair, now: int) -> bool:
        """Connect (TCP) or send (UDP); False when the process is out of
        descriptors (back-pressure: the pair goes first once sockets close)."""
        pair.rtts.append(None)
        began = time.monotonic_ns()
        try:
            if self.tcp:
                sock, code = probes.start_connect(pair.address, pair.version, pair.port, icmp_errors=True)
            else:
                sock, code = probes.start_datagram(pair.address, pair.version, pair.port)
        except OSError as exc:
            if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                self._withdraw(pair)
                return False
            # no socket for this pair (IPv6 turned off here): said on its row, as the TCP sweep does
            pair.state, pair.reason = PortState.FILTERED, f"no socket: {outcomes.reason(exc.errno or errno.EIO)}"
            self._settle(pair, 1, self._schedule, self._emit)
            return True
        self._count_send(now)
        if not self.tcp and not code:
            try:
                sock.send(self.payload)
            except OSError as exc:
                code = exc.errno or errno.EIO
        if code == errno.EINPROGRESS or (not self.tcp and not code):
            self.selector.register(sock, selectors.EVENT_WRITE if self.tcp else selectors.EVENT_READ, pair)
            self._waiting.add(sock, pair, len(pair.rtts) - 1, began, now)
        elif self.tcp:
            self._connected(sock, pair, code, began, time.monotonic_ns(), registered=False)
        else:
            self._datagram_failed(sock, pair, code, began, time.monotonic_ns(), registered=False)
        return True

    def _withdraw(self, pair: Pair) -> None:
        pair.rtts.pop()
        self._schedule.refuse(pair)
        held = len(self._waiting) + len(self._talking)
        if not held:
            raise CannotRun("no file descriptor left for a socket (see ulimit -n)")
        self.limit = held  # what this process can hold, as it turns out

    # --- answers in

    def _take_events(self, timeout: float) -> None:
        """Act on every socket with news, each timed when its event is read."""
        for key, _ in self.selector.select(timeout):
            now = time.monotonic_ns()
            sock = socket_of(key)
            pair: Pair = key.data
            if pair.talk is not None:
                self._talked(sock, pair)
                continue
            began = self._waiting.sent_ns(sock)
            if began is None:
                continue  # expired meanwhile
            if self.tcp:
                self._waiting.take(sock)
                self._connected(sock, pair, probes.connect_error(sock), began, now, registered=True)
            else:
                self._datagram(sock, pair, began, now)

    def _connected(self, sock: socket.socket, pair: Pair, code: int, began: int, now: int, *, registered: bool) -> None:
        """A connect finished: open, closed (an RST), or filtered (an ICMP error, a local one)."""
        pair.rtts[-1] = (now - began) / 1e6
        if code == 0:
            pair.state, pair.replies = PortState.OPEN, pair.replies + 1
            if self.keeps:
                self._keep(sock, pair, now, registered)
                return
        else:
            note = probes.icmp_error(sock, pair.version)  # ECONNREFUSED is an RST only when no ICMP came
            if note is None and code == errno.ECONNREFUSED:
                pair.state, pair.replies = PortState.CLOSED, pair.replies + 1
            else:
                pair.state, pair.reason = PortState.FILTERED, _why(note, code, pair.address)
        self._drop(sock, registered)
        self._settle(pair, 1, self._schedule, self._emit)

    def _datagram(self, sock: socket.socket, pair: Pair, began: int, now: int) -> None:
        try:
            reply = sock.recv(BANNER_BYTES)
        except BlockingIOError:
            return
        except OSError as exc:
            self._waiting.take(sock)
            self._datagram_failed(sock, pair, exc.errno or errno.EIO, began, now, registered=True)
            return
        self._waiting.take(sock)
        pair.rtts[-1] = (now - began) / 1e6
        pair.state, pair.replies = PortState.OPEN, pair.replies + 1
        if self.options.banner:
            pair.talk = _Talk()
            pair.talk.banner += reply
        self._drop(sock, registered=True)
        self._settle(pair, 1, self._schedule, self._emit)

    def _datagram_failed(self, sock: socket.socket, pair: Pair, code: int, began: int, now: int, *,
                         registered: bool) -> None:  # fmt: skip
        """An error for a datagram: an ICMP port unreachable is closed, any other error filtered."""
        note = probes.icmp_error(sock, pair.version)
        pair.rtts[-1] = (now - began) / 1e6
        if (note is not None and note.port_unreachable) or (note is None and code == errno.ECONNREFUSED):
            pair.state, pair.replies = PortState.CLOSED, pair.replies + 1
        else:
            pair.state, pair.reason = PortState.FILTERED, _why(note, code, pair.address)
        self._drop(sock, registered)
        self._settle(pair, 1, self._schedule, self._emit)

    # --- open connections kept: TLS, then the banner

    def _keep(self, sock: socket.socket, pair: Pair, now: int, registered: bool) -> None:
        talk = pair.talk = _Talk()
        if registered:
            self.selector.modify(sock, selectors.EVENT_READ, pair)
        else:
            self.selector.register(sock, selectors.EVENT_READ, pair)
        self._talking.add(sock, pair, len(pair.rtts) - 1, now, now)
        try:
            if self.tls_context is not None:
                incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
                talk.tls = _TlsChannel(_wrap(self.tls_context, incoming, outgoing, pair.name), incoming, outgoing)
                if self._shake(sock, pair, talk) and not self.options.reads_banner:  # done at once: a fast server
                    self._done_talking(sock, pair, None)
            elif self.options.send is not None:
                sock.send(self.options.send)
        except (OSError, ssl.SSLError, ValueError) as exc:
            self._done_talking(sock, pair, _talk_failure(exc))

    def _talked(self, sock: socket.socket, pair: Pair) -> None:
        talk = pair.talk
        assert talk is not None
        try:
            if _shaking(pair):
                if not self._shake(sock, pair, talk):
                    return  # more of the handshake to come
                if not self.options.reads_banner:
                    self._done_talking(sock, pair, None)
                    return
            if self._read_banner(sock, talk):
                self._done_talking(sock, pair, None)
        except BlockingIOError:
            return
        except (OSError, ssl.SSLError, ValueError) as exc:
            self._done_talking(sock, pair, _talk_failure(exc) if _shaking(pair) else None)

    def _shake(self, sock: socket.socket, pair: Pair, talk: _Talk) -> bool:
        """Move the TLS handshake on; True once done (then the payload is sent)."""
        assert talk.tls is not None  # called only on a connection that shakes hands
        tls, incoming, outgoing = talk.tls
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                _send_all(sock, outgoing.read())
            try:
                data = sock.recv(TLS_READ)
            except BlockingIOError:
                return False
            if not data:
                raise ConnectionResetError(errno.ECONNRESET, "the server closed the connection")
            talk.received += len(data)
            if talk.received > TLS_MOST:
                raise ssl.SSLError("the server sent more than 256 KiB without finishing the handshake")
            incoming.write(data)
        _send_all(sock, outgoing.read())  # our Finished
        cipher = tls.cipher()
        der = tls.getpeercert(binary_form=True)
        facts = x509.describe(der) if der else x509.CertificateFacts(None, None, None)
        talk.tls_facts = TlsFacts(tls.version() or "unknown", cipher[0] if cipher else None, facts.subject,
                                  facts.issuer, facts.not_after)  # fmt: skip
        if self.options.send is not None:
            tls.write(self.options.send)
            _send_all(sock, outgoing.read())
        return True

    def _read_banner(self, sock: socket.socket, talk: _Talk) -> bool:
        """Read what the server says; True when done: 256 bytes, a line's end, or its end of data."""
        tls = talk.tls
        while len(talk.banner) < BANNER_BYTES:
            wanted = BANNER_BYTES - len(talk.banner)
            if tls is not None:
                try:
                    data = tls.connection.read(wanted)
                except ssl.SSLWantReadError:
                    chunk = sock.recv(TLS_READ)  # BlockingIOError: nothing more yet
                    if not chunk:
                        return True
                    tls.incoming.write(chunk)
                    continue
                except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                    return True
            else:
                data = sock.recv(wanted)
            if not data:
                return True
            talk.banner += data
            if data.endswith(b"\n"):  # a greeting is a line (or lines written at once): no need to wait on
                return True
        return True

    def _done_talking(self, sock: socket.socket, pair: Pair, reason: str | None) -> None:
        self._talking.take(sock)
        if reason is not None:
            pair.reason = reason
        self._drop(sock, registered=True)
        self._settle(pair, 1, self._schedule, self._emit)

    # --- sockets

    def _drop(self, sock: socket.socket, registered: bool) -> None:
        if registered:
            self.selector.unregister(sock)
        sock.close()

    def _release(self, sock: socket.socket) -> None:
        self.selector.unregister(sock)
        sock.close()


def _shaking(pair: Pair) -> bool:
    return pair.talk is not None and pair.talk.tls is not None and pair.talk.tls_facts is None


def _send_all(sock: socket.socket, data: bytes) -> None:
    """Handshake messages are small and the socket new: they fit its buffer."""
    if data and sock.send(data) != len(data):
        raise BlockingIOError(errno.EAGAIN, "the socket's buffer is full")


def _talk_failure(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or str(exc)
    return f"TLS handshake failed: {reason}"


def _why(note: probes.IcmpNote | None, code: int, address: str) -> str:
    """A filtered pair's reason: the ICMP error and who sent it (when not the target), else the errno's words."""
    if note is not None:
        return note.reason if note.sender in (None, address) else f"{note.reason} from {note.sender}"
    outcome, words = outcomes.classify(code)
    return words if outcome is not Outcome.ANSWERED else f"{words} (an error answer)"


def _wrap(context: ssl.SSLContext, incoming: ssl.MemoryBIO, outgoing: ssl.MemoryBIO, name: str | None) -> ssl.SSLObject:
    """A TLS client over the two buffers, with the name typed as SNI when it can be one."""
    try:
        return context.wrap_bio(incoming, outgoing, server_hostname=name)
    except ValueError:  # not a name SNI can carry (a name /etc/hosts allows, IDNA does not)
        return context.wrap_bio(incoming, outgoing)


def _tls_context() -> ssl.SSLContext:
    """Not verified, every version and cipher OpenSSL still has: what the server presents is the answer."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        context.set_ciphers("ALL:@SECLEVEL=0")
    except (ValueError, ssl.SSLError):
        pass  # this OpenSSL keeps its defaults
    return context


# --- targets in, results out


OnResult = Callable[[PortResult], None]


def run_ports(
    targets: list[PortTarget],
    options: PortOptions,
    *,
    on_result: OnResult | None = None,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
    keep_results: bool = True,
) -> PortReport:
    """Check every pair; on KeyboardInterrupt (Ctrl-C, SIGTERM through
    netdiag.interrupts) return what was learned, pairs in flight included.

    ``on_result`` sees each pair as soon as it is settled, in this thread.
    Names resolve concurrently while the addresses are checked; their pairs
    follow. Without ``keep_results`` the report holds only the summary."""
    options.validate()
    start = time.monotonic()
    stop = stop or threading.Event()
    from netdiag.sweep.run import resolve_names
    from netdiag.workers import call_soon

    family = {None: socket.AF_UNSPEC, 4: socket.AF_INET, 6: socket.AF_INET6}[options.ip_version]
    named = [item.target for item in targets if isinstance(item.target, HostName)]
    names = call_soon(resolve_names, named, options.name_timeout, family) if named else None
    results: list[tuple[tuple[int, int, int, int], PortResult]] = []
    states: Counter[PortState] = Counter()

    def emit(result: PortResult, order: tuple[int, int, int, int]) -> None:
        states[result.state] += 1
        if keep_results:
            results.append((order, result))
        if on_result is not None:
            on_result(result)

    def unresolved(origin: int, item: PortTarget, reason: str) -> None:
        proto = options.proto
        for port in item.ports if item.ports is not None else options.default_ports:
            row = PortResult(item.text, None, port, proto, engine.services.get(port), PortState.UNRESOLVED, reason)
            emit(row, (origin, UNRESOLVED_ORDER, 0, port))

    def report(*_: int) -> None:
        if progress is not None:
            progress(engine.done + states[PortState.UNRESOLVED], engine.up, engine.sent)

    engine = PortEngine(options)
    seen = _SeenPairs() if len(targets) > 1 else None
    interrupted = False
    gc.disable()  # many long-lived objects: collections only cost time
    try:
        try:
            ready = names is None or names.done()  # read once: the names may arrive any moment
            answers = names.result() if names is not None and ready else None
            engine.run(_pairs(targets, options, answers, seen, unresolved), emit, report, stop)
            if names is not None and not ready and not stop.is_set() and not engine.interrupted:
                answers = names.result()
                engine.run(_pairs(targets, options, answers, seen, unresolved, names_only=True), emit, report, stop)
        except KeyboardInterrupt:
            interrupted = True
        finally:
            engine.close()
        interrupted = interrupted or engine.interrupted
        results.sort(key=itemgetter(0))
        summary = PortSummary(
            pairs=sum(states.values()),
            open=states[PortState.OPEN],
            closed=states[PortState.CLOSED],
            filtered=states[PortState.FILTERED],
            open_filtered=states[PortState.OPEN_FILTERED],
            unresolved=states[PortState.UNRESOLVED],
            elapsed_s=time.monotonic() - start,
            probes_sent=engine.sent,
            interrupted=interrupted,
        )
        return PortReport(tuple(result for _, result in results), summary)
    finally:
        gc.enable()


def pair_address(result: PortResult) -> str:
    """``127.1.0.1:22``, ``[fd00::1]:22``: a pair as nc and URLs write it."""
    if result.address is None:
        return f"{result.target}:{result.port}"
    if ipaddress.ip_address(result.address).version == 6:
        return f"[{result.address}]:{result.port}"
    return f"{result.address}:{result.port}"
