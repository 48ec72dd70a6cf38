"""A select-based test server: many clients in one thread, the other end of a
reachability test (and of netdiag's own tests).

Non-blocking sockets, one output buffer per client, and limits that keep one
client (or one address) from hurting everyone else:

- a client that sends without reading is no longer read from while its output
  backs up (HIGH_WATER); while everything buffered for all clients together is
  over BUFFER_BUDGET, only clients owed nothing are read from;
- at most ``max_per_source`` connections from one address, and a client that
  has sent nothing (lookup mode: no full line) is closed after
  ``first_data_timeout``, long before the idle timeout;
- out of file descriptors, waiting connections are refused (accepted on a
  descriptor kept in reserve and closed) and the listening socket is left
  alone for ACCEPT_PAUSE, instead of failing accept() in a tight loop.

In ``show`` mode what clients send is handed out in ``data`` events (text
lines, or raw chunks for a hex dump), to be printed by another thread. The
bytes of those events count as owed to their client until the events are
gone (written, or dropped by whoever handles them): a client with HIGH_WATER
bytes or SHOW_EVENTS events not yet printed is not read from, and they count
towards BUFFER_BUDGET. A slow reader of the output slows the clients it has
not caught up with, never the loop.

Lookups (``lookup`` mode) run on a few daemon threads and come back through a
socketpair, so a slow resolver never stalls the loop. The threads take one
query per client in turn, a client may have at most MAX_PENDING unanswered,
and each client's answers go out in the order it asked. The server reports
what happens through ``on_event``; it never prints.
"""

from __future__ import annotations

import contextlib
import errno
import os
import queue
import selectors
import socket
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from netdiag import outcomes
from netdiag.errors import BadInput, CannotRun, NetdiagError
from netdiag.limits import raise_descriptor_limit
from netdiag.models import DnsAnswer, ForwardAnswer
from netdiag.telnet.screen import whole_characters
from netdiag.text import visible
from netdiag.workers import spawn

MODES = ("echo", "discard", "banner", "lookup", "show")
READ_SIZE = 256 * 1024
SMALL_READ = 16 * 1024  # lookup lines are short; and the most a client owed nothing reads over the budget
HIGH_WATER = 1024 * 1024  # per-client output buffered before reading from it pauses
LOW_WATER = 256 * 1024
BUFFER_BUDGET = 64 * 1024 * 1024  # all clients together: over it, only clients owed nothing are read
MAX_LINE = 4096  # lookup mode: longest request line
MAX_PENDING = 64  # lookup mode: unanswered queries per client before reading from it pauses
LOOKUP_THREADS = 16
SHOW_READ = 64 * 1024  # show mode: the most one data event holds from one read
SHOW_LINE = MAX_LINE  # show mode: a line longer than this is shown in pieces of this size
SHOW_IDLE = 0.5  # show mode: seconds before a line without its newline yet is shown as it is
SHOW_EVENTS = 1024  # show mode: data events of one client not yet printed before reading from it pauses
ACCEPT_PAUSE = 0.5  # seconds the listening socket is left alone after running out of descriptors
REFUSAL_BURST_GAP = 10.0  # refusals for lack of descriptors closer together than this: one burst, one log line
MAX_CLIENTS = 1_000_000
MAX_TIMEOUT = 86_400.0
_CHECK_EVERY = 1.0  # seconds between timeout sweeps at most


@dataclass(frozen=True)
class ListenOptions:
    host: str = "127.0.0.1"
    port: int = 0
    mode: str = "echo"
    banner: str = ""
    max_clients: int = 4096
    max_per_source: int = 256
    idle_timeout: float | None = 300.0
    first_data_timeout: float | None = 20.0
    lookup_timeout: float = 3.0
    hexdump: bool = False  # show mode: data as a hex dump, not as text lines

    def validate(self) -> None:
        if self.mode not in MODES:
            raise BadInput(f"--mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        if self.hexdump and self.mode != "show":
            raise BadInput("--hexdump goes with --mode show")
        if self.mode == "banner" and not self.banner:
            raise BadInput("--mode banner needs --banner TEXT")
        self.banner_bytes()
        if not 0 <= self.port <= 65535:
            raise BadInput(f"port must be between 0 and 65535, not {self.port}")
        for name, value in (("--max-clients", self.max_clients), ("--max-per-source", self.max_per_source)):
            if not 1 <= value <= MAX_CLIENTS:
                raise BadInput(f"{name} must be between 1 and {MAX_CLIENTS:,}, not {value}")
        _check_seconds("--idle-timeout", self.idle_timeout)
        _check_seconds("--first-data-timeout", self.first_data_timeout)
        _check_seconds("lookup timeout", self.lookup_timeout)

    def banner_bytes(self) -> bytes:
        """The banner as the bytes the user gave: an argument that is not UTF-8
        reaches Python as surrogate escapes, and goes out as its original bytes."""
        try:
            return os.fsencode(self.banner)
        except UnicodeError:
            raise BadInput("--banner: text that cannot be turned back into bytes") from None


def _check_seconds(name: str, value: float | None) -> None:
    if value is not None and not 0 < value <= MAX_TIMEOUT:  # also refuses nan
        raise BadInput(f"{name} must be more than 0 and at most {MAX_TIMEOUT:g} seconds, not {value:g}")


@dataclass
class ClientStats:
    peer: str
    opened: float
    received: int = 0
    sent: int = 0
    closed: float | None = None
    reason: str = ""

    @property
    def duration_s(self) -> float:
        return (self.closed or time.monotonic()) - self.opened


@dataclass(frozen=True)
class Event:
    kind: str  # "listening", "open", "data", "close", "refused"
    address: str
    port: int = 0
    stats: ClientStats | None = None
    detail: str = ""
    # data: what the client sent (text mode: whole lines, or a line's piece
    # shown early), and where it starts in its stream
    data: bytes = b""
    offset: int = 0


@dataclass
class Summary:
    connections: int = 0
    refused: int = 0
    received: int = 0
    sent: int = 0
    peak_clients: int = 0
    started: float = field(default_factory=time.monotonic)


class TooLong:
    """Marker for a request line over the limit."""

    def __repr__(self) -> str:
        return "TOO_LONG"


TOO_LONG = TooLong()

# A peer as accept() gives it: (address, port), with flow info and scope id for IPv6.
_Peer = tuple[str, int] | tuple[str, int, int, int]


class LineSplitter:
    """A byte stream cut into lines (without their newline). A line longer than
    ``limit`` comes out once as TOO_LONG, as soon as it is known to be too long,
    and the rest of it up to its newline is dropped; after ``end()`` a last
    line without a newline comes out too. Holds at most ``limit`` bytes of a
    line plus what was fed since the last complete one."""

    def __init__(self, limit: int = MAX_LINE) -> None:
        self.limit = limit
        self.buffer = bytearray()
        self.skipping = False  # inside a line already reported too long
        self.ended = False

    def feed(self, data: bytes | memoryview) -> None:
        self.buffer += data

    def end(self) -> None:
        self.ended = True

    def __len__(self) -> int:
        return len(self.buffer)

    def next_line(self) -> bytes | TooLong | None:
        """The next line, TOO_LONG, or None: nothing complete yet."""
        while True:
            end = self.buffer.find(b"\n")
            if end < 0 and self.ended:
                end = len(self.buffer)  # the last line, or nothing at all
                if not end:
                    return None
            elif end < 0:
                if not self.skipping and len(self.buffer) <= self.limit:
                    return None  # the rest of this line is still to come
                self.buffer.clear()
                if self.skipping:
                    return None
                self.skipping = True  # report it now, drop the rest as it comes
                return TOO_LONG
            line = bytes(self.buffer[:end])
            del self.buffer[: end + 1]
            if self.skipping:
                self.skipping = False  # the end of a line already reported
                continue
            return TOO_LONG if len(line) > self.limit else line


def parse_query(line: bytes) -> tuple[str, str | None]:
    """The query a request line asks (printable, for the answer row) and what
    is wrong with it, or None when it can go to the resolver."""
    text = line.strip()
    try:
        query = text.decode("utf-8")
    except UnicodeDecodeError:
        return visible(text.decode("utf-8", "backslashreplace")), "not UTF-8"
    if not query.isprintable():  # NUL, CR, escapes, bidi overrides: never a host name
        return visible(query), "control characters"
    return query, None


def lookup_row(query: str, resolve: Callable[[str], DnsAnswer]) -> str:
    """The answer line for one query, printable; never raises, whatever the
    resolver does, so every query gets its row and the thread lives on."""
    try:
        row = format_answer(resolve(query))
    except Exception as exc:  # noqa: BLE001 - the client still gets an answer for this line
        row = f"{query}: resolver failure ({type(exc).__name__})"
    return visible(row)


class _Client:
    __slots__ = (
        "answers", "closing", "counted", "events", "heard", "held", "lines", "next_seq", "open", "out",
        "partial", "partial_at", "paused", "port", "queries", "seen", "sent_seq", "showing", "shown",
        "shown_events", "sock", "source", "stalled", "stats", "waiting",
    )  # fmt: skip

    def __init__(self, sock: socket.socket, peer: str, port: int) -> None:
        self.sock = sock
        self.source = peer
        self.port = port
        self.out = bytearray()
        self.open = True
        self.paused = False  # not read from while its output backs up
        self.closing = False  # close once everything owed is sent
        self.heard = False  # it has sent a byte (lookup mode: a full line)
        self.events = 0  # what the selector watches for it; 0: not registered
        self.counted = 0  # bytes of it in Listener.buffered
        self.stats = ClientStats(peer, time.monotonic())
        self.seen = self.stats.opened  # last time bytes moved either way
        # lookup mode
        self.lines: LineSplitter | None = None
        self.queries: deque[tuple[int, str]] = deque()  # not yet handed to a thread
        self.answers: dict[int, bytes] = {}  # answered, waiting for an earlier one
        self.next_seq = 0  # number of the next request line
        self.sent_seq = 0  # number of the next answer to go out
        self.held = 0  # bytes in queries and answers
        self.waiting = False  # in the lookup round
        self.stalled = False  # complete lines left unparsed: at its MAX_PENDING
        # show mode
        self.partial: bytearray | None = None  # text: the line not yet ended
        self.partial_at = 0.0  # when the partial line last grew
        self.shown = 0  # bytes handed out in data events
        self.showing = 0  # of those, bytes in events not yet gone
        self.shown_events = 0  # events not yet gone

    @property
    def pending(self) -> int:
        """Queries asked and not yet answered in order."""
        return self.next_seq - self.sent_seq

    @property
    def done(self) -> bool:
        return self.closing and not self.out and not self.pending and not self.lines


class Listener:
    def __init__(self, options: ListenOptions, on_event: Callable[[Event], None] | None = None) -> None:
        options.validate()
        self.options = options
        self.on_event = on_event or (lambda event: None)
        self.summary = Summary()
        self.clients: dict[int, _Client] = {}
        self.stop = threading.Event()
        self.buffered = 0  # bytes held for all clients together
        self.showing = 0  # bytes in data events not yet gone (their clients may be gone already)
        # (client, bytes) of data events gone
        self._released: queue.SimpleQueue[tuple[_Client, int]] = queue.SimpleQueue()
        self._partials: set[_Client] = set()  # show mode: clients with a line not yet ended
        self._banner = options.banner_bytes() + b"\r\n"
        self._over_budget = False
        self._recheck_all = False
        self._per_source: dict[str, int] = {}
        self._accept_paused_until: float | None = None
        self._last_lack = -REFUSAL_BURST_GAP  # when accept() last failed for lack of descriptors
        self._next_check = 0.0
        self._next_flush = 0.0
        self._read_buffer = memoryview(bytearray(READ_SIZE))
        self._lookups: queue.SimpleQueue[tuple[_Client, int, str] | None] = queue.SimpleQueue()  # None: stop
        self._answers: queue.SimpleQueue[tuple[_Client, int, str]] = queue.SimpleQueue()  # (client, seq, row)
        self._round: deque[_Client] = deque()  # clients with queries waiting for a thread
        self._in_flight = 0
        self._lookup_threads = 0
        self._hosts = None
        if options.mode == "lookup":  # read /etc/hosts once, not per request
            from netdiag.resolver import HostsFile

            self._hosts = HostsFile.load()
        raise_descriptor_limit()  # thousands of clients need thousands of descriptors
        self.sock = self._bind()
        self.address, self.port = self.sock.getsockname()[:2]
        try:
            self.selector = selectors.DefaultSelector()
            self._wake_read, self._wake_write = socket.socketpair()
            self._reserve: int | None = os.open(os.devnull, os.O_RDONLY)
        except OSError as exc:
            self.sock.close()
            raise CannotRun(f"cannot listen: {exc.strerror}") from None
        self._wake_read.setblocking(False)
        self._wake_write.setblocking(False)

    def _bind(self) -> socket.socket:
        host, port = self.options.host, self.options.port
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        except socket.gaierror as exc:
            raise BadInput(f"--host {host}: cannot resolve ({exc.strerror})") from None
        except (UnicodeError, ValueError):  # a label over 63 characters, a NUL, an undecodable byte
            raise BadInput(f"--host {host}: not a valid address or host name") from None
        family, kind, proto, _, address = infos[0]
        try:
            sock = socket.socket(family, kind, proto)
        except OSError as exc:
            raise CannotRun(f"cannot make a socket to listen on: {exc.strerror}") from None
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
            sock.listen(4096)
        except OSError as exc:
            sock.close()
            if exc.errno == errno.EADDRINUSE:
                raise BadInput(f"port {port} on {host} is already in use") from None
            if exc.errno in (errno.EACCES, errno.EPERM):
                raise BadInput(f"not permitted to listen on {host} port {port} (ports below 1024 need root)") from None
            if exc.errno == errno.EADDRNOTAVAIL:
                raise BadInput(f"--host {host} is not an address of this machine") from None
            raise NetdiagError(f"cannot listen on {host} port {port}: {exc.strerror}") from None
        sock.setblocking(False)
        return sock

    def fileno(self) -> int:
        return self.sock.fileno()

    # --- the loop ---------------------------------------------------------------

    def serve(self) -> Summary:
        """Serve until ``stop`` is set or KeyboardInterrupt; then close everything."""
        self.selector.register(self.sock, selectors.EVENT_READ, "accept")
        self.selector.register(self._wake_read, selectors.EVENT_READ, "wake")
        self.on_event(Event("listening", self.address, self.port))
        try:
            while not self.stop.is_set():
                for key, mask in self.selector.select(self._next_wake()):
                    if key.data == "accept":
                        self._accept()
                    elif key.data == "wake":
                        self._deliver_answers()
                        self._take_released()
                    else:
                        self._service(key.data, mask)
                self._dispatch()  # queries parsed in this round go to the threads
                self._check_budget()
                self._check_timers()
        finally:
            self.close()
        return self.summary

    def shutdown(self) -> None:
        """Stop serving soon, from any thread or a signal handler: ``stop``, and
        a nudge so the loop sees it now rather than at its next timeout."""
        self.stop.set()
        with contextlib.suppress(OSError):
            self._wake_write.send(b"!")

    def close(self) -> None:
        for client in list(self.clients.values()):
            self._close(client, "server stopped")
        for _ in range(self._lookup_threads):
            self._lookups.put(None)  # the threads end once their lookup does
        try:
            self.selector.close()
        finally:
            self.sock.close()
            self._wake_read.close()
            self._wake_write.close()
            if self._reserve is not None:
                os.close(self._reserve)
                self._reserve = None

    def _next_wake(self) -> float:
        if self.stop.is_set():
            return 0
        wake = 0.5
        timeouts = [t for t in (self.options.idle_timeout, self.options.first_data_timeout) if t]
        if self.clients and timeouts:
            wake = min(_CHECK_EVERY, min(timeouts) / 4)
        if self._accept_paused_until is not None:
            wake = min(wake, self._accept_paused_until - time.monotonic())
        if self._partials:
            wake = min(wake, SHOW_IDLE / 4)
        return max(wake, 0.01)

    def _check_timers(self) -> None:
        now = time.monotonic()
        if self._accept_paused_until is not None and now >= self._accept_paused_until:
            self._accept_paused_until = None
            self.selector.register(self.sock, selectors.EVENT_READ, "accept")
        if self._partials and now >= self._next_flush:  # not after every event either
            self._next_flush = now + SHOW_IDLE / 4
            for client in self._partials.copy():
                # Only a client being read can be idle: one held back is not, its line waits.
                if now - client.partial_at >= SHOW_IDLE and client.events & selectors.EVENT_READ:
                    self._show_partial(client)
                    self._update(client)
        if now >= self._next_check:  # not after every event: this walks every client
            self._next_check = now + min(_CHECK_EVERY, self._next_wake())
            self._expire(now)

    # --- accepting ----------------------------------------------------------------

    def _accept(self) -> None:
        for _ in range(256):  # many may be waiting; do not starve the others
            try:
                sock, address = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    self._refuse_for_lack_of_descriptors(exc.errno)
                    return
                continue  # ECONNABORTED and the like: that connection is gone, take the next
            peer, port = address[:2]
            if len(self.clients) >= self.options.max_clients:
                self._refuse(sock, address, "--max-clients reached")
                continue
            if self._per_source.get(peer, 0) >= self.options.max_per_source:
                self._refuse(sock, address, "--max-per-source reached")
                continue
            sock.setblocking(False)
            client = _Client(sock, peer, port)
            self.clients[sock.fileno()] = client
            self._per_source[peer] = self._per_source.get(peer, 0) + 1
            self.summary.connections += 1
            self.summary.peak_clients = max(self.summary.peak_clients, len(self.clients))
            self.on_event(Event("open", peer, port, client.stats))
            if self.options.mode == "lookup":
                client.lines = LineSplitter()
            elif self.options.mode == "show" and not self.options.hexdump:
                client.partial = bytearray()
            elif self.options.mode == "banner":
                client.out += self._banner
                client.closing = True
                if not self._write_or_drop(client):
                    continue
            self._update(client)

    def _refuse(self, sock: socket.socket, address: _Peer, why: str) -> None:
        sock.close()
        self.summary.refused += 1
        self.on_event(Event("refused", address[0], address[1], detail=why))

    def _refuse_for_lack_of_descriptors(self, error: int) -> None:
        """Refuse whoever is waiting (with the descriptor kept in reserve for
        this), then leave the listening socket alone for a moment: accept()
        would only fail again at once. Logged once per burst."""
        now = time.monotonic()
        if now - self._last_lack >= REFUSAL_BURST_GAP:
            lacking = "file descriptors" if error in (errno.EMFILE, errno.ENFILE) else "memory"
            detail = f"out of {lacking} ({os.strerror(error).lower()}): refusing new connections for now"
            self.on_event(Event("refused", "", 0, detail=detail))
        self._last_lack = now
        if self._reserve is not None:
            os.close(self._reserve)
            self._reserve = None
            for _ in range(4096):
                try:
                    sock, _ = self.sock.accept()
                except OSError:  # none left, or the descriptor went elsewhere
                    break
                sock.close()
                self.summary.refused += 1
            with contextlib.suppress(OSError):
                self._reserve = os.open(os.devnull, os.O_RDONLY)
        self.selector.unregister(self.sock)
        self._accept_paused_until = now + ACCEPT_PAUSE

    # --- clients ------------------------------------------------------------------

    def _service(self, client: _Client, mask: int) -> None:
        if not client.open:  # closed earlier in this round
            return
        try:
            if mask & selectors.EVENT_READ and self._may_read(client):
                self._read(client)
            if mask & selectors.EVENT_WRITE and client.open:
                self._write(client)
                if client.stalled and client.open:  # its output drained: parse what it sent
                    self._after_answers(client)
        except OSError as exc:  # one client's trouble is its own
            self._close(client, _reason(exc))
            return
        self._update(client)

    def _may_read(self, client: _Client) -> bool:
        if client.closing or client.paused:
            return False
        mode = self.options.mode
        if mode == "discard":
            return True
        if mode == "lookup" and (client.stalled or client.pending >= MAX_PENDING):
            return False
        # Over the budget, a client owed something waits; one that keeps up goes on.
        return not (self._over_budget and (client.out or client.pending or client.showing))

    def _write_or_drop(self, client: _Client) -> bool:
        """Send what is owed; a client whose socket fails is closed (False)."""
        try:
            self._write(client)
        except OSError as exc:
            self._close(client, _reason(exc))
            return False
        return True

    def _read(self, client: _Client) -> None:
        mode = self.options.mode
        if mode == "lookup" or (self._over_budget and mode in ("echo", "show")):
            size = SMALL_READ
        else:
            size = SHOW_READ if mode == "show" else READ_SIZE
        try:
            count = client.sock.recv_into(self._read_buffer, size)
        except BlockingIOError:
            return
        if not count:
            # The client half-closed: finish sending what is owed, then close.
            client.closing = True
            if client.lines is not None:
                client.lines.end()  # a last line without a newline is still a request
                self._take_lines(client)
            if client.done:
                self._close(client, "client closed")
            return
        data = self._read_buffer[:count]
        client.seen = time.monotonic()
        client.stats.received += count
        self.summary.received += count
        if mode == "echo":
            client.heard = True
            client.out += data
            self._write(client)
        elif mode == "lookup":
            assert client.lines is not None  # every client has one in lookup mode
            client.lines.feed(data)
            self._take_lines(client)
            self._write(client)  # rows for bad lines may be due already
        elif mode == "show":
            client.heard = True
            self._show(client, data)
        else:
            client.heard = True

    def _write(self, client: _Client) -> None:
        while client.out:
            try:
                sent = client.sock.send(client.out)
            except BlockingIOError:
                break
            del client.out[:sent]
            client.seen = time.monotonic()
            client.stats.sent += sent
            self.summary.sent += sent
        if client.done:
            self._close(client, "client closed" if self.options.mode != "banner" else "banner sent")

    def _update(self, client: _Client) -> None:
        if not client.open:
            return
        self._account(client)
        owed = len(client.out) + client.showing  # not yet read by it, or not yet printed
        if owed >= HIGH_WATER or client.shown_events >= SHOW_EVENTS:
            client.paused = True  # it is not reading, or the output is not: stop reading from it
        elif client.paused and owed <= LOW_WATER and client.shown_events <= SHOW_EVENTS // 4:
            client.paused = False
        events = (selectors.EVENT_READ if self._may_read(client) else 0) | (selectors.EVENT_WRITE if client.out else 0)
        if client.partial and events & ~client.events & selectors.EVENT_READ:
            client.partial_at = time.monotonic()  # read again after a pause: its line's idle time starts now
        if events == client.events:
            return  # unchanged: no epoll_ctl for every read and write
        if not events:  # held back, or half-closed and waiting for a lookup answer
            self.selector.unregister(client.sock)
        elif client.events:
            self.selector.modify(client.sock, events, client)
        else:
            self.selector.register(client.sock, events, client)
        client.events = events

    def _account(self, client: _Client) -> None:
        size = len(client.out) + client.held + (len(client.lines) if client.lines is not None else 0)
        size += len(client.partial) if client.partial is not None else 0
        self.buffered += size - client.counted
        client.counted = size
        if not self._over_budget and self.buffered + self.showing > BUFFER_BUDGET:
            self._over_budget = True  # takes effect at once; the others are told after this round
            self._recheck_all = True

    def _check_budget(self) -> None:
        if self._over_budget and self.buffered + self.showing <= BUFFER_BUDGET * 3 // 4:
            self._over_budget = False
            self._recheck_all = True
        if self._recheck_all:
            self._recheck_all = False
            for client in list(self.clients.values()):
                self._update(client)

    def _close(self, client: _Client, reason: str) -> None:
        if not client.open:
            return
        if client.partial:  # the last line, without its newline: shown before the close
            self._show_partial(client, final=True)
        self._partials.discard(client)
        client.open = False
        del self.clients[client.sock.fileno()]
        left = self._per_source[client.source] - 1
        if left:
            self._per_source[client.source] = left
        else:
            del self._per_source[client.source]
        self.buffered -= client.counted
        client.counted = 0
        client.queries.clear()
        if client.events:
            self.selector.unregister(client.sock)
        client.sock.close()
        client.stats.closed = time.monotonic()
        client.stats.reason = reason
        self.on_event(Event("close", client.source, client.port, client.stats))

    def _expire(self, now: float) -> None:
        idle, first = self.options.idle_timeout, self.options.first_data_timeout
        silent = "no full line" if self.options.mode == "lookup" else "nothing sent"
        for client in list(self.clients.values()):
            if first and not client.heard and not client.closing and now - client.stats.opened >= first:
                self._close(client, f"{silent} in {first:g}s")
            elif idle and now - client.seen >= idle:
                self._close(client, f"idle for {idle:g}s")

    # --- show mode ------------------------------------------------------------------

    def _show(self, client: _Client, data: memoryview) -> None:
        """Hand out what a client sent: a hex dump shows every read as it
        comes; text goes out in whole lines, and a line not yet ended waits
        (at most SHOW_LINE bytes of it, and SHOW_IDLE seconds)."""
        partial = client.partial
        if partial is None:
            self._hand_out(client, bytes(data))
            return
        partial += data
        end = partial.rfind(b"\n") + 1
        if end:
            self._hand_out(client, bytes(partial[:end]))
            del partial[:end]
        while len(partial) > SHOW_LINE:  # a line too long to wait for: shown in pieces
            cut = whole_characters(partial[:SHOW_LINE]) or SHOW_LINE
            self._hand_out(client, bytes(partial[:cut]))
            del partial[:cut]
        if partial:
            client.partial_at = time.monotonic()
            self._partials.add(client)
        else:
            self._partials.discard(client)

    def _show_partial(self, client: _Client, final: bool = False) -> None:
        """Show the line a client has not ended yet, as it is: at its close, or
        after SHOW_IDLE without more of it. Before that, an unfinished UTF-8
        character waits for the rest of it."""
        partial = client.partial
        assert partial is not None  # only a client shown as text has a line to show
        cut = len(partial) if final else whole_characters(partial)
        if cut:
            self._hand_out(client, bytes(partial[:cut]))
            del partial[:cut]
        self._partials.discard(client)  # what is left (part of a character) waits for more, or the close

    def _hand_out(self, client: _Client, data: bytes) -> None:
        """One data event. Its bytes are owed to the client until the event is
        gone (the weakref finalizer tells the loop, from whichever thread)."""
        event = Event("data", client.source, client.port, data=data, offset=client.shown)
        client.shown += len(data)
        client.showing += len(data)
        client.shown_events += 1
        self.showing += len(data)
        weakref.finalize(event, self._release, client, len(data)).atexit = False
        self.on_event(event)

    def _release(self, client: _Client, size: int) -> None:
        self._released.put((client, size))
        with contextlib.suppress(OSError):  # closed (the server stopped), or full: the loop is awake anyway
            self._wake_write.send(b"!")

    def _take_released(self) -> None:
        """Data events gone: what was owed to their clients is paid."""
        touched = {}
        while True:
            try:
                client, size = self._released.get_nowait()
            except queue.Empty:
                break
            self.showing -= size
            client.showing -= size
            client.shown_events -= 1
            if client.open:
                touched[id(client)] = client
        for client in touched.values():
            self._update(client)

    # --- lookup mode ----------------------------------------------------------------

    def _take_lines(self, client: _Client) -> None:
        """Parse request lines while the client has room for more answers."""
        lines = client.lines
        assert lines is not None  # every client has one in lookup mode
        while True:
            if client.pending >= MAX_PENDING or len(client.out) >= HIGH_WATER:
                client.stalled = True  # the rest waits in its buffer; no reading until then
                return
            line = lines.next_line()
            if line is None:
                client.stalled = False
                return
            client.heard = True
            if isinstance(line, TooLong):  # TOO_LONG, its one instance
                self._answer_now(client, f"error: line too long (over {MAX_LINE:,} bytes)")
                continue
            query, wrong = parse_query(line)
            if not query and not wrong:
                continue  # a blank line asks nothing
            if wrong:
                self._answer_now(client, f"{query}: bad query ({wrong})")
                continue
            client.queries.append((client.next_seq, query))
            client.next_seq += 1
            client.held += len(query)
            if not client.waiting:
                client.waiting = True
                self._round.append(client)

    def _answer_now(self, client: _Client, row: str) -> None:
        seq = client.next_seq
        client.next_seq += 1
        self._answered(client, seq, row.encode("utf-8", "backslashreplace") + b"\r\n")

    def _answered(self, client: _Client, seq: int, line: bytes) -> None:
        """File an answer; send every answer now due, in request order."""
        client.answers[seq] = line
        client.held += len(line)
        while client.sent_seq in client.answers:
            line = client.answers.pop(client.sent_seq)
            client.held -= len(line)
            client.out += line
            client.sent_seq += 1

    def _dispatch(self) -> None:
        """Hand queries to the threads: one per client in turn, so a client
        with a thousand queued waits its turn like everyone else."""
        while self._round and self._in_flight < LOOKUP_THREADS:
            client = self._round.popleft()
            if not client.open or not client.queries:
                client.waiting = False
                continue
            seq, query = client.queries.popleft()
            client.held -= len(query)
            if client.queries:
                self._round.append(client)
            else:
                client.waiting = False
            if self._in_flight >= self._lookup_threads and not self._start_lookup_thread():
                row = visible(f"{query}: resolver failure (no thread to look it up)")  # say so, never hang
                self._answered(client, seq, row.encode("utf-8", "backslashreplace") + b"\r\n")
                self._after_answers(client)
                continue
            self._in_flight += 1
            self._lookups.put((client, seq, query))

    def _start_lookup_thread(self) -> bool:
        """One more thread; if the system refuses, the ones there are will do:
        False only if there are none at all."""
        if spawn(self._lookup_worker, name="lookup") is None:  # the system refused a thread
            return self._lookup_threads > 0
        self._lookup_threads += 1
        return True

    def _lookup_worker(self) -> None:
        from netdiag import resolver

        def resolve(query: str) -> DnsAnswer:
            # Here, in this thread: a slow resolver makes answers wait, it never makes threads pile up.
            return resolver.lookup(query, self._hosts, self.options.lookup_timeout)

        while (job := self._lookups.get()) is not None:
            client, seq, query = job
            self._answers.put((client, seq, lookup_row(query, resolve)))
            with contextlib.suppress(OSError):  # closed, or full: the loop is awake anyway
                self._wake_write.send(b"!")

    def _deliver_answers(self) -> None:
        try:
            while self._wake_read.recv(4096):
                pass
        except OSError:
            pass
        touched = {}
        while True:
            try:
                client, seq, row = self._answers.get_nowait()
            except queue.Empty:
                break
            self._in_flight -= 1
            if client.open:
                self._answered(client, seq, row.encode("utf-8", "backslashreplace") + b"\r\n")
                touched[id(client)] = client
        for client in touched.values():
            self._after_answers(client)

    def _after_answers(self, client: _Client) -> None:
        """Room for more answers: parse what it already sent, then send."""
        if not client.open:
            return
        self._take_lines(client)
        if self._write_or_drop(client):
            self._update(client)


def _reason(exc: OSError) -> str:
    """Why a client's connection ended, in the words every command uses."""
    return outcomes.reason(exc.errno) if exc.errno else str(exc).lower()


def format_answer(answer: DnsAnswer) -> str:
    """One line for a lookup-mode client."""
    if not answer.ok:
        return f"{answer.query}: {answer.outcome.message}"
    if isinstance(answer, ForwardAnswer):
        return f"{answer.query}: {' '.join(answer.addresses)}"
    confirmed = "confirmed" if answer.confirmed else "NOT confirmed"
    return f"{answer.query}: {answer.ptr} ({confirmed})"
