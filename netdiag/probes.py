"""The socket boundary for probes: ICMP and packet sockets, the system ping,
TCP connects.

Every probe socket is built here from one ProbeConfig (source address,
interface), and OS error numbers become typed outcomes here, through the one
table in outcomes.py. A timeout, an unreachable answer, back-pressure and a
permission problem are different things and are never folded into "packet
lost".
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time
from dataclasses import dataclass
from typing import final

from netdiag import icmp, outcomes
from netdiag.arp import ETH_P_ARP
from netdiag.errors import BadInput, ProbeError, ProbePermissionError
from netdiag.outcomes import Outcome

SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)
IP_RECVERR = getattr(socket, "IP_RECVERR", 11)
IPV6_RECVERR = getattr(socket, "IPV6_RECVERR", 25)
MSG_ERRQUEUE = getattr(socket, "MSG_ERRQUEUE", 0x2000)
SOL_RAW = 255
ICMP_FILTER = 1
ICMP6_FILTER = 1
RECEIVE_BUFFER = 32 << 20  # holds a /16's replies between drains
SEND_BUFFER = 4 << 20  # probes waiting for ARP are charged to the socket: room for thousands
SO_BINDTODEVICE = getattr(socket, "SO_BINDTODEVICE", 25)
SO_SNDBUFFORCE = getattr(socket, "SO_SNDBUFFORCE", 32)


@dataclass(frozen=True)
class ProbeConfig:
    """Every setting a probe socket takes, applied in one place."""

    source: str | None = None  # -S: the source address
    interface: str | None = None  # -I: the interface probes leave by

    def apply(self, sock: socket.socket, version: int, *, bind_any: bool = False) -> None:
        """Bind ``sock`` to the interface and source address (``bind_any``:
        bind to the wildcard when no source is set, as datagram ICMP needs)."""
        if self.interface:
            try:
                sock.setsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, self.interface.encode())
            except OSError as exc:
                sock.close()
                raise BadInput(f"--interface {self.interface}: {exc.strerror}") from None
        if self.source or bind_any:
            where = self.source or ("0.0.0.0" if version == 4 else "::")
            try:
                sock.bind((where, 0))
            except socket.gaierror:  # an address of the other IP version
                sock.close()
                raise BadInput(f"--source {self.source} is not an IPv{version} address") from None
            except OSError as exc:
                sock.close()
                raise BadInput(f"--source {self.source}: {outcomes.reason(exc.errno or 0)}") from None

    def check(self, version: int) -> None:
        """BadInput now, before anything is sent, if the settings cannot be applied
        (for probes made by another program, the system ping)."""
        family = socket.AF_INET if version == 4 else socket.AF_INET6
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            self.apply(sock, version)

    def ping_arguments(self) -> list[str]:
        """The system ping's ``-I``: it takes an address or an interface, one of them."""
        if self.source and self.interface:
            raise BadInput("--method ping: give --source or --interface, not both (ping -I takes one)")
        chosen = self.source or self.interface
        return ["-I", chosen] if chosen else []


def enlarge_buffer(sock: socket.socket, option: int, force_option: int, size: int) -> None:
    """Past net.core.[rw]mem_max only with CAP_NET_ADMIN; otherwise the most allowed."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, force_option, size)
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, option, size)


_EXTENDED_ERROR = struct.Struct("=IBBBBII")  # struct sock_extended_err
_TIMESPEC = struct.Struct("@ll")
_ORIGIN_ICMP = (2, 3)  # SO_EE_ORIGIN_ICMP, SO_EE_ORIGIN_ICMP6
_RECVERR_CMSGS = {(socket.IPPROTO_IP, IP_RECVERR), (socket.IPPROTO_IPV6, IPV6_RECVERR)}

GRANT_HINT = (
    "native ICMP needs CAP_NET_RAW (sudo setcap cap_net_raw+ep on the Python "
    "interpreter, or run as root) or unprivileged ICMP sockets "
    "(sudo sysctl -w net.ipv4.ping_group_range='0 2147483647')"
)


# Not frozen: these are made per packet, and frozen dataclasses construct slower.
# Final: code on the hot path tells them apart with ``type(x) is``.
@final
@dataclass(slots=True)
class Reply:
    address: str
    identifier: int
    sequence: int
    cookie: bytes
    received_ns: int  # CLOCK_REALTIME, from the kernel when it timestamps


@final
@dataclass(slots=True)
class Unreachable:
    address: str
    identifier: int
    sequence: int
    reason: str


Ancillary = list[tuple[int, int, bytes]]  # recvmsg's (level, type, data) control messages
SocketAddress = tuple[str, int] | tuple[str, int, int, int]  # AF_INET, AF_INET6
# What IcmpSocket.read keeps for parse: recvmsg's (data, ancillary, flags,
# source), or an error already decoded from the error queue.
Message = tuple[bytes, Ancillary, int, SocketAddress] | Unreachable


class IcmpSocket:
    """One non-blocking ICMP echo socket: ``raw`` or ``dgram``, IPv4 or IPv6."""

    def __init__(self, version: int, kind: str, config: ProbeConfig | None = None) -> None:
        self.version, self.kind = version, kind
        self.family = socket.AF_INET if version == 4 else socket.AF_INET6
        self.sock = _bare_icmp_socket(version, kind)
        self.sock.setblocking(False)
        config = config or ProbeConfig()
        # The sweep's hot path calls this directly, one call per request;
        # failures go through send_failed.
        self.sendto = self.sock.sendto
        self._errors: list[Unreachable] = []
        enlarge_buffer(self.sock, socket.SO_RCVBUF, SO_RCVBUFFORCE, RECEIVE_BUFFER)
        enlarge_buffer(self.sock, socket.SO_SNDBUF, SO_SNDBUFFORCE, SEND_BUFFER)
        self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        # Errors to the error queue, and ENOBUFS from a full neighbour table
        # reported to the sender (without it, raw sockets drop the probe silently).
        if version == 4:
            self.sock.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
        else:
            self.sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVERR, 1)
        if kind == "raw":
            self._filter_types()
            config.apply(self.sock, version)
            self.identifier = os.getpid() & 0xFFFF
        else:
            config.apply(self.sock, version, bind_any=True)
            self.identifier = self.sock.getsockname()[1]  # the kernel's echo identifier

    def _filter_types(self) -> None:
        """Ask the kernel for echo replies and errors only: on loopback a raw
        socket would otherwise also read back every request it sends."""
        wanted = (icmp.ECHO_REPLY, icmp.DEST_UNREACHABLE, icmp.TIME_EXCEEDED)
        if self.version == 4:
            mask = 0xFFFFFFFF
            for table in wanted:
                mask &= ~(1 << table[4])
            self.sock.setsockopt(SOL_RAW, ICMP_FILTER, struct.pack("I", mask))
        else:
            blocked = [0xFFFFFFFF] * 8  # ICMP6_FILTER: a set bit blocks that type
            for table in wanted:
                t = table[6]
                blocked[t >> 5] &= ~(1 << (t & 31))
            self.sock.setsockopt(socket.IPPROTO_ICMPV6, ICMP6_FILTER, struct.pack("8I", *blocked))

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()

    def send_failed(self, exc: OSError, address: str) -> str:
        """What a failed ``sendto`` means: the reason this destination is
        unreachable, or BlockingIOError when the request was not sent and
        should be sent again (after a drain)."""
        if exc.errno not in (errno.ENOBUFS, errno.EAGAIN):
            # With IP_RECVERR the kernel hands a pending ICMP error about an
            # earlier probe to the next send, which it then drops. If the error
            # queue held something, the failure was that: attribute it through
            # the queue and send this packet again.
            before = len(self._errors)
            self._read_error_queue(self._errors)
            if len(self._errors) > before:
                raise BlockingIOError(errno.EAGAIN, "pending ICMP error read; send again")
        return send_failure(exc, address)

    def read(self, backlog: list[Message]) -> None:
        """Append every waiting message to ``backlog`` unparsed (non-blocking).

        Cheap enough to call between send bursts; ``parse`` later, when there
        is time: kernel timestamps keep the RTTs exact however late that is."""
        if self._errors:  # read from the error queue by send_failed
            backlog.extend(self._errors)
            self._errors.clear()
        recvmsg, append = self.sock.recvmsg, backlog.append
        while True:
            try:
                append(recvmsg(2048, 64))
            except BlockingIOError:
                return
            except OSError as exc:
                # An ICMP error is also reported as a pending socket error;
                # the details wait in the error queue.
                if exc.errno not in (errno.EBADF, errno.ENOTSOCK):
                    self._read_error_queue(backlog)
                    continue
                raise ProbeError(f"receiving ICMP: {exc.strerror}") from None

    def parse(self, backlog: list[Message], out: list[Reply | Unreachable]) -> None:
        """Turn messages from ``read`` into Reply and Unreachable items."""
        version, raw_v4 = self.version, self.kind == "raw" and self.version == 4
        for message in backlog:
            if type(message) is Unreachable:  # already decoded from the error queue
                out.append(message)
                continue
            data, ancillary, _, source = message
            parsed = icmp.parse(icmp.strip_ipv4_header(data) if raw_v4 else data, version)
            if type(parsed) is icmp.EchoReply:
                stamp = _timestamp(ancillary)
                address = source[0] if version == 4 else canonical_v6(source[0])
                out.append(Reply(address, parsed.identifier, parsed.sequence, parsed.cookie, stamp))
            elif type(parsed) is icmp.IcmpError:
                target = socket.inet_ntop(self.family, parsed.destination)
                target = target if version == 4 else canonical_v6(target)
                out.append(Unreachable(target, parsed.identifier, parsed.sequence, parsed.reason(version)))

    def _read_error_queue(self, out: list[Unreachable] | list[Message]) -> None:
        while True:
            try:
                data, ancillary, _, destination = self.sock.recvmsg(2048, 512, MSG_ERRQUEUE)
            except (BlockingIOError, InterruptedError):
                return
            for level, cmsg_type, payload in ancillary:
                if (level, cmsg_type) not in _RECVERR_CMSGS or len(payload) < _EXTENDED_ERROR.size:
                    continue  # e.g. the receive timestamp
                err, origin, icmp_type, code, *_ = _EXTENDED_ERROR.unpack_from(payload)
                if origin in _ORIGIN_ICMP:
                    packed = socket.inet_pton(self.family, destination[0])
                    parsed = icmp.parse_quoted_request(data, self.version, packed, icmp_type, code)
                else:
                    parsed = icmp.parse_quoted_request(data, self.version, b"", 0, 0)
                if parsed is not None:
                    reason = parsed.reason(self.version) if origin in _ORIGIN_ICMP else os.strerror(err)
                    target = destination[0] if self.version == 4 else canonical_v6(destination[0])
                    out.append(Unreachable(target, parsed.identifier, parsed.sequence, reason))


def send_failure(exc: OSError, address: str) -> str:
    """What a failed sendto means: the reason a destination is unreachable, or
    BlockingIOError (back-pressure: send again later; its errno tells
    ENOBUFS, a full neighbour table, from EAGAIN, a full socket), or ProbeError."""
    outcome, reason = outcomes.classify(exc.errno or 0)
    if outcome is Outcome.BACK_PRESSURE:
        raise BlockingIOError(exc.errno, reason) from None
    if outcome is Outcome.UNREACHABLE:
        return reason
    raise ProbeError(f"sending to {address}: {reason}") from None


def canonical_v6(text: str) -> str:
    """The socket module writes IPv6 with inet_ntop; targets use RFC 5952
    (ipaddress). They differ for IPv4-compatible addresses: match on one form."""
    return str(ipaddress.IPv6Address(text.split("%", 1)[0]))


_stamps_live = threading.Event()  # set once receive timestamps are known to work


def wait_for_arrival_timestamps(limit: float = 0.05) -> bool:
    """Linux turns receive timestamps on lazily: the first socket to ask flips
    a global switch from a work queue, and until then packets are stamped when
    they are read, not when they arrive (RTTs then grow with the read delay).
    Call with a timestamping socket open; checks with a datagram to ourselves
    on loopback until its stamp predates the read. True once stamps are live."""
    if _stamps_live.is_set():
        return True
    try:
        with (
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx,
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx,
        ):
            rx.bind(("127.0.0.1", 0))
            rx.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            rx.settimeout(limit)
            deadline = time.monotonic() + limit
            while True:
                tx.sendto(b"t", rx.getsockname())  # delivered (and stamped) inside this call
                before = time.time_ns()
                _, ancillary, _, _ = rx.recvmsg(16, 64)
                if _timestamp(ancillary) < before:
                    _stamps_live.set()
                    return True
                if time.monotonic() >= deadline:
                    return False
                time.sleep(0.0005)
    except OSError:  # no loopback here: nothing to check with
        return False


def _timestamp(ancillary: Ancillary) -> int:
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= _TIMESPEC.size:
            seconds, nanoseconds = _TIMESPEC.unpack_from(data)
            stamp: int = seconds * 1_000_000_000 + nanoseconds  # a struct timespec: two C longs
            return stamp
    return time.time_ns()


ICMP_KINDS = ("raw", "dgram")  # in order of preference: raw also sees ICMP errors directly


def _bare_icmp_socket(version: int, kind: str) -> socket.socket:
    family = socket.AF_INET if version == 4 else socket.AF_INET6
    proto = socket.IPPROTO_ICMP if version == 4 else socket.IPPROTO_ICMPV6
    sock_type = socket.SOCK_RAW if kind == "raw" else socket.SOCK_DGRAM
    try:
        return socket.socket(family, sock_type, proto)
    except OSError as exc:
        if exc.errno in (errno.EPERM, errno.EACCES):
            raise ProbePermissionError(f"{kind} ICMP socket not permitted: {GRANT_HINT}") from None
        raise ProbeError(f"cannot open an IPv{version} {kind} ICMP socket: {exc.strerror}") from None


def permitted_kind(version: int) -> str:
    """The ICMP socket kind this process may open (a bare socket, opened and closed)."""
    for kind in ICMP_KINDS:
        try:
            _bare_icmp_socket(version, kind).close()
            return kind
        except ProbePermissionError:
            continue
    raise ProbePermissionError(f"no ICMP socket is permitted: {GRANT_HINT}")


def open_icmp(version: int, config: ProbeConfig | None = None, kind: str | None = None) -> IcmpSocket:
    """A ready ICMP socket of ``kind``, or of the first kind this process may open."""
    return IcmpSocket(version, kind or permitted_kind(version), config)


# --- packet sockets (ARP) ---------------------------------------------------------

SOL_PACKET = 263
PACKET_IGNORE_OUTGOING = 23


CAP_NET_RAW = 13


def packet_permitted() -> bool:
    """May this process open packet sockets? It needs CAP_NET_RAW in its
    effective set. Read from /proc, not tried: closing a packet socket waits
    for an RCU grace period (about 20 ms)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> CAP_NET_RAW & 1)
    except (OSError, ValueError, IndexError):
        pass
    return False


def open_arp(interface: str) -> socket.socket:
    """A non-blocking packet socket for ARP frames on ``interface``, with
    kernel receive timestamps and room for a /16's replies."""
    try:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP))
    except OSError as exc:
        if exc.errno in (errno.EPERM, errno.EACCES):
            raise ProbePermissionError(
                "ARP needs CAP_NET_RAW (sudo setcap cap_net_raw+ep on the Python interpreter, or run as root)"
            ) from None
        raise ProbeError(f"cannot open a packet socket: {exc.strerror}") from None
    try:
        sock.bind((interface, ETH_P_ARP))
    except OSError as exc:
        sock.close()
        raise BadInput(f"interface {interface}: {exc.strerror}") from None
    sock.setblocking(False)
    with contextlib.suppress(OSError):  # Linux 4.20+: do not read our own requests back
        sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
    enlarge_buffer(sock, socket.SO_RCVBUF, SO_RCVBUFFORCE, RECEIVE_BUFFER)
    enlarge_buffer(sock, socket.SO_SNDBUF, SO_SNDBUFFORCE, SEND_BUFFER)
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    return sock


def arrival_ns(ancillary: Ancillary) -> int:
    """A message's kernel receive stamp (CLOCK_REALTIME ns), or now."""
    return _timestamp(ancillary)


# --- system ping ---------------------------------------------------------------

_PING_RTT = re.compile(rb"icmp_seq=(\d+).*?time[=<]([\d.]+) ?ms")
_PING_TRANSMITTED = re.compile(rb"^(\d+) packets transmitted", re.MULTILINE)
_PING_ERROR = re.compile(rb"icmp_seq=(\d+) (Destination [^\n]*|Time to live exceeded)", re.IGNORECASE)


def ping_command() -> str | None:
    return shutil.which("ping")


@dataclass(frozen=True)
class PingOutcome:
    rtts_ms: tuple[float | None, ...]
    reason: str | None = None  # set when an error (unreachable) came back instead


class PingChildren:
    """The system pings an engine has running, so that an interruption can
    end them all: SIGINT first (ping then prints the replies it had, which
    are kept), SIGKILL for any still there. None is left behind."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: set[subprocess.Popen[bytes]] = set()
        self.closed = False

    def run(self, command: list[str], timeout: float) -> tuple[int, bytes, bytes] | None:
        """(status, stdout, stderr), or None when it ran out of time."""
        with self._lock:
            if self.closed:
                return None
            child = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )  # fmt: skip
            self._running.add(child)
        try:
            stdout, stderr = child.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            child.kill()
            child.communicate()
            return None
        finally:
            with self._lock:
                self._running.discard(child)
        return child.returncode, stdout, stderr

    def interrupt(self) -> None:
        with self._lock:
            self.closed = True
            for child in self._running:
                with contextlib.suppress(OSError):
                    child.send_signal(signal.SIGINT)

    def kill(self) -> None:
        with self._lock:
            self.closed = True
            for child in self._running:
                with contextlib.suppress(OSError):
                    child.kill()


# What ping says when it cannot send, in the words the other methods use.
_PING_CANNOT_SEND = (
    (b"Network is unreachable", outcomes.reason(errno.ENETUNREACH)),
    (b"No route to host", outcomes.reason(errno.EHOSTUNREACH)),
    (b"ping broadcast", outcomes.reason(errno.EACCES)),
    (b"Operation not permitted", outcomes.reason(errno.EPERM)),
    (b"Cannot assign requested address", outcomes.reason(errno.EADDRNOTAVAIL)),
    (b"Invalid argument", outcomes.reason(errno.EINVAL)),
)


def system_ping(
    address: str, version: int, timeout: float, count: int = 1, interval: float = 0.2,
    children: PingChildren | None = None, config: ProbeConfig | None = None,
) -> PingOutcome:  # fmt: skip
    """One host through the system ping. ``address`` must be a numeric address
    (never a user string) and comes after ``--``: it can never be an option.
    A ping that cannot send to the address is an answer (unreachable, with
    the reason), as for the other methods; only a ping that cannot run raises."""
    binary = ping_command()
    if binary is None:
        raise ProbeError("no ping command on this system")
    command = [binary, f"-{version}", "-n", "-c", str(count), "-W", f"{timeout:g}"]
    if count > 1:
        command += ["-i", f"{max(interval, 0.002):g}"]
    if config is not None:
        command += config.ping_arguments()
    command += ["--", address]
    try:
        done = (children or PingChildren()).run(command, timeout + count * interval + 5)
    except OSError as exc:
        raise ProbeError(f"cannot run {binary}: {exc.strerror}") from None
    if done is None:
        return PingOutcome((None,) * count)
    status, stdout, stderr = done
    rtts: list[float | None] = [None] * count
    for seq, rtt in _PING_RTT.findall(stdout):
        index = int(seq) - 1
        if 0 <= index < count:
            rtts[index] = float(rtt)
    if (sent := _PING_TRANSMITTED.search(stdout)) and 0 < int(sent[1]) < count:
        del rtts[int(sent[1]) :]  # interrupted: loss is over the requests it sent
    error = _PING_ERROR.search(stdout)
    reason = outcomes.ping_reason(error.group(2).decode(errors="replace")) if error else None
    stopped = status < 0 or (children is not None and children.closed)  # our SIGINT or SIGKILL: not its answer
    if status not in (0, 1) and not stopped and all(rtt is None for rtt in rtts):
        message = stderr or stdout
        reason = next((words for text, words in _PING_CANNOT_SEND if text in message), None)
        if reason is None:
            lines = message.decode(errors="replace").strip().splitlines()
            reason = f"ping failed: {lines[-1] if lines else f'exit status {status}'}"
    return PingOutcome(tuple(rtts), reason)


# --- TCP connect ---------------------------------------------------------------

_LINGER_RESET = struct.pack("ii", 1, 0)


def start_connect(
    address: str, version: int, port: int, config: ProbeConfig | None = None, *, icmp_errors: bool = False
) -> tuple[socket.socket, int]:
    """Begin a non-blocking connect; returns the socket and connect's errno
    (EINPROGRESS while the handshake is under way). ``icmp_errors``: keep the
    ICMP error that ends a connect for ``icmp_error`` (a firewall's port
    unreachable is otherwise the ECONNREFUSED of an RST)."""
    family = socket.AF_INET if version == 4 else socket.AF_INET6
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setblocking(False)
    if config is not None:
        config.apply(sock, version)
    if icmp_errors:
        _receive_errors(sock, version)
    # Close with RST, not FIN: a probe leaves no TIME_WAIT behind.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
    return sock, sock.connect_ex((address, port))


def start_datagram(
    address: str, version: int, port: int, config: ProbeConfig | None = None
) -> tuple[socket.socket, int]:
    """A non-blocking UDP socket connected to ``address``: it hears only that
    peer, and with IP_RECVERR every ICMP error about what it sends (not only
    the port unreachable a connected socket reports anyway). Unprivileged.
    Returns the socket and connect's errno (a local routing error, or 0)."""
    family = socket.AF_INET if version == 4 else socket.AF_INET6
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.setblocking(False)
    if config is not None:
        config.apply(sock, version)
    _receive_errors(sock, version)
    return sock, sock.connect_ex((address, port))


def _receive_errors(sock: socket.socket, version: int) -> None:
    if version == 4:
        sock.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
    else:
        sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVERR, 1)


@dataclass(frozen=True)
class IcmpNote:
    """An ICMP error the kernel queued for a socket (IP_RECVERR)."""

    type: int
    code: int
    reason: str  # in the words of the ICMP sweep: "port unreachable", "host unreachable"
    sender: str | None  # who sent it: the target itself, or a router on the way

    @property
    def port_unreachable(self) -> bool:
        return (self.type, self.code) in ((3, 3), (1, 4))  # ICMP, ICMPv6


_SOCKADDR_FAMILY = struct.Struct("=H")


def icmp_error(sock: socket.socket, version: int) -> IcmpNote | None:
    """The ICMP error waiting in ``sock``'s error queue, or None (an RST, a
    local error, or no IP_RECVERR). Reading it clears the socket's error."""
    try:
        _, ancillary, _, _ = sock.recvmsg(64, 512, MSG_ERRQUEUE)
    except OSError:  # BlockingIOError: the queue is empty
        return None
    for level, cmsg_type, payload in ancillary:
        if (level, cmsg_type) not in _RECVERR_CMSGS or len(payload) < _EXTENDED_ERROR.size:
            continue
        _, origin, icmp_type, code, *_ = _EXTENDED_ERROR.unpack_from(payload)
        if origin in _ORIGIN_ICMP:
            words = icmp.IcmpError(b"", 0, 0, icmp_type, code).reason(version)
            return IcmpNote(icmp_type, code, words, _offender(payload[_EXTENDED_ERROR.size :]))
    return None


def _offender(sockaddr: bytes) -> str | None:
    """SO_EE_OFFENDER: the sockaddr after the extended error."""
    if len(sockaddr) < _SOCKADDR_FAMILY.size:
        return None
    family = _SOCKADDR_FAMILY.unpack_from(sockaddr)[0]
    if family == socket.AF_INET and len(sockaddr) >= 8:
        return socket.inet_ntop(socket.AF_INET, sockaddr[4:8])
    if family == socket.AF_INET6 and len(sockaddr) >= 24:
        return canonical_v6(socket.inet_ntop(socket.AF_INET6, sockaddr[8:24]))
    return None


def connect_error(sock: socket.socket) -> int:
    return sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)


def classify_connect(code: int) -> tuple[str, str | None]:
    """A finished connect's errno → ("up" | "unreachable" | "down", reason).

    A SYN-ACK (0) or an RST (ECONNREFUSED) both prove the host is there."""
    outcome, reason = outcomes.classify(code)
    if outcome is Outcome.ANSWERED:
        return "up", None
    if outcome is Outcome.SILENT:
        return "down", None
    return "unreachable", reason
