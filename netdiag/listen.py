"""A select-based test server: many clients in one thread, the other end of a
reachability test (and of netdiag's own tests).

Non-blocking sockets, one output buffer per client. A client that sends
without reading cannot grow the server's memory: while its output buffer is
over the high-water mark the server stops reading from it. Lookups (``lookup``
mode) run on daemon threads and hand their answers back through a socketpair,
so a slow resolver never stalls the loop. The server reports what happens
through ``on_event``; it never prints.
"""

from __future__ import annotations

import contextlib
import errno
import queue
import selectors
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from netdiag import outcomes
from netdiag.errors import BadInput, NetdiagError
from netdiag.limits import raise_descriptor_limit

MODES = ("echo", "discard", "banner", "lookup")
READ_SIZE = 256 * 1024
HIGH_WATER = 1024 * 1024  # per-client output buffered before reading from it pauses
LOW_WATER = 256 * 1024
MAX_LINE = 4096  # lookup mode: longest request line


@dataclass(frozen=True)
class ListenOptions:
    host: str = "127.0.0.1"
    port: int = 0
    mode: str = "echo"
    banner: str = ""
    max_clients: int = 4096
    idle_timeout: float | None = 300.0
    lookup_timeout: float = 3.0

    def validate(self) -> None:
        if self.mode not in MODES:
            raise BadInput(f"--mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        if self.mode == "banner" and not self.banner:
            raise BadInput("--mode banner needs --banner TEXT")
        if not 0 <= self.port <= 65535:
            raise BadInput(f"port must be between 0 and 65535, not {self.port}")
        if not 1 <= self.max_clients <= 1_000_000:
            raise BadInput("--max-clients must be at least 1")
        if self.idle_timeout is not None and self.idle_timeout <= 0:
            raise BadInput("--idle-timeout must be more than 0 seconds")


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
    kind: str  # "listening", "open", "close", "refused"
    address: str
    port: int = 0
    stats: ClientStats | None = None
    detail: str = ""


@dataclass
class Summary:
    connections: int = 0
    refused: int = 0
    received: int = 0
    sent: int = 0
    peak_clients: int = 0
    started: float = field(default_factory=time.monotonic)


class _Client:
    __slots__ = ("closing", "events", "line", "out", "paused", "pending", "seen", "sock", "stats")

    def __init__(self, sock: socket.socket, peer: str) -> None:
        self.sock = sock
        self.out = bytearray()
        self.line = bytearray()
        self.paused = False  # not read from while its output backs up
        self.closing = False  # close once everything owed is sent
        self.pending = 0  # lookups still being answered
        self.events = 0  # what the selector watches for it; 0: not registered
        self.stats = ClientStats(peer, time.monotonic())
        self.seen = self.stats.opened  # last time bytes moved either way

    @property
    def done(self) -> bool:
        return self.closing and not self.out and not self.pending


class Listener:
    def __init__(self, options: ListenOptions, on_event: Callable[[Event], None] | None = None) -> None:
        options.validate()
        self.options = options
        self.on_event = on_event or (lambda event: None)
        self.summary = Summary()
        self.clients: dict[int, _Client] = {}
        self.selector = selectors.DefaultSelector()
        self.sock = self._bind()
        self.address, self.port = self.sock.getsockname()[:2]
        self._answers: queue.SimpleQueue = queue.SimpleQueue()
        self._wake_read, self._wake_write = socket.socketpair()
        self._wake_read.setblocking(False)
        self._wake_write.setblocking(False)
        self._lookups: queue.SimpleQueue = queue.SimpleQueue()
        self._lookup_threads = 0
        self._hosts = None
        if options.mode == "lookup":  # read /etc/hosts once, not per request
            from netdiag.resolver import HostsFile

            self._hosts = HostsFile.load()
        self.stop = threading.Event()
        raise_descriptor_limit()  # thousands of clients need thousands of descriptors

    def _bind(self) -> socket.socket:
        host, port = self.options.host, self.options.port
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        except socket.gaierror as exc:
            raise BadInput(f"--host {host}: cannot resolve ({exc.strerror})") from None
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
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
                    else:
                        self._service(key.data, mask)
                self._expire_idle()
        finally:
            self.close()
        return self.summary

    def close(self) -> None:
        for client in list(self.clients.values()):
            self._close(client, "server stopped")
        try:
            self.selector.close()
        finally:
            self.sock.close()
            self._wake_read.close()
            self._wake_write.close()

    def _next_wake(self) -> float | None:
        if self.stop.is_set():
            return 0
        return 1.0 if self.options.idle_timeout and self.clients else 0.5

    def _accept(self) -> None:
        for _ in range(256):  # many may be waiting; do not starve the others
            try:
                sock, address = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE):  # out of descriptors: leave it queued
                    self.on_event(Event("refused", "", 0, detail="out of file descriptors"))
                    return
                continue
            if len(self.clients) >= self.options.max_clients:
                self.summary.refused += 1
                self.on_event(Event("refused", address[0], address[1], detail="--max-clients reached"))
                sock.close()
                continue
            sock.setblocking(False)
            client = _Client(sock, address[0])
            self.clients[sock.fileno()] = client
            self.summary.connections += 1
            self.summary.peak_clients = max(self.summary.peak_clients, len(self.clients))
            self.on_event(Event("open", address[0], address[1], client.stats))
            if self.options.mode == "banner":
                client.out += self.options.banner.encode() + b"\r\n"
                client.closing = True
                if not self._write_or_drop(client):
                    continue
            self._update(client)

    def _service(self, client: _Client, mask: int) -> None:
        try:
            if mask & selectors.EVENT_READ and not client.paused:
                self._read(client)
            if mask & selectors.EVENT_WRITE and client.sock.fileno() >= 0:
                self._write(client)
        except OSError as exc:  # one client's trouble is its own
            self._close(client, _reason(exc))
            return
        self._update(client)

    def _write_or_drop(self, client: _Client) -> bool:
        """Send what is owed; a client whose socket fails is closed (False)."""
        try:
            self._write(client)
        except OSError as exc:
            self._close(client, _reason(exc))
            return False
        return True

    def _read(self, client: _Client) -> None:
        try:
            data = client.sock.recv(READ_SIZE)
        except BlockingIOError:
            return
        if not data:
            # The client half-closed: finish sending what is owed, then close.
            client.closing = True
            if client.done:
                self._close(client, "client closed")
            return
        client.seen = time.monotonic()
        client.stats.received += len(data)
        self.summary.received += len(data)
        mode = self.options.mode
        if mode == "echo":
            client.out += data
            self._write(client)
        elif mode == "lookup":
            self._lookup_lines(client, data)

    def _write(self, client: _Client) -> None:
        while client.out:
            try:
                sent = client.sock.send(client.out[:READ_SIZE])
            except BlockingIOError:
                break
            del client.out[:sent]
            client.seen = time.monotonic()
            client.stats.sent += sent
            self.summary.sent += sent
        if client.done:
            self._close(client, "client closed" if self.options.mode != "banner" else "banner sent")

    def _update(self, client: _Client) -> None:
        fd = client.sock.fileno()
        if fd < 0 or self.clients.get(fd) is not client:
            return
        if len(client.out) >= HIGH_WATER:
            client.paused = True  # it is not reading: stop reading from it
        elif client.paused and len(client.out) <= LOW_WATER:
            client.paused = False
        events = (0 if client.paused or client.closing else selectors.EVENT_READ) | (
            selectors.EVENT_WRITE if client.out else 0
        )
        if events == client.events:
            return  # unchanged: no epoll_ctl for every read and write
        if not events:  # half-closed, waiting for a lookup answer
            self.selector.unregister(client.sock)
        elif client.events:
            self.selector.modify(client.sock, events, client)
        else:
            self.selector.register(client.sock, events, client)
        client.events = events

    def _close(self, client: _Client, reason: str) -> None:
        fd = client.sock.fileno()
        if self.clients.get(fd) is not client:
            return
        del self.clients[fd]
        if client.events:
            self.selector.unregister(client.sock)
        client.sock.close()
        client.stats.closed = time.monotonic()
        client.stats.reason = reason
        self.on_event(Event("close", client.stats.peer, 0, client.stats))

    def _expire_idle(self) -> None:
        timeout = self.options.idle_timeout
        if not timeout:
            return
        now = time.monotonic()
        for client in [c for c in self.clients.values() if now - c.seen >= timeout]:
            self._close(client, f"idle for {timeout:g}s")

    # --- lookup mode ----------------------------------------------------------------

    def _lookup_lines(self, client: _Client, data: bytes) -> None:
        client.line += data
        while b"\n" in client.line:
            raw, _, rest = client.line.partition(b"\n")
            client.line = bytearray(rest)
            query = raw.decode("ascii", "replace").strip()
            if query:
                self._start_lookup(client, query)
        if len(client.line) > MAX_LINE:
            client.line.clear()
            client.out += b"error: line too long\r\n"

    def _start_lookup(self, client: _Client, query: str) -> None:
        client.pending += 1
        self._lookups.put((client, query))
        if self._lookup_threads < 16:
            self._lookup_threads += 1
            threading.Thread(target=self._lookup_worker, daemon=True).start()

    def _lookup_worker(self) -> None:
        from netdiag import resolver

        while True:
            client, query = self._lookups.get()
            answers = list(resolver.lookup_many([query], self.options.lookup_timeout, self._hosts))
            self._answers.put((client, format_answer(answers[0])))
            with contextlib.suppress(OSError):  # closed, or full: the loop is awake anyway
                self._wake_write.send(b"!")

    def _deliver_answers(self) -> None:
        try:
            while self._wake_read.recv(4096):
                pass
        except (BlockingIOError, OSError):
            pass
        while True:
            try:
                client, line = self._answers.get_nowait()
            except queue.Empty:
                return
            if self.clients.get(client.sock.fileno()) is client:
                client.pending -= 1
                client.out += line.encode("utf-8", "replace") + b"\r\n"
                if self._write_or_drop(client):
                    self._update(client)


def _reason(exc: OSError) -> str:
    """Why a client's connection ended, in the words every command uses."""
    return outcomes.reason(exc.errno) if exc.errno else str(exc).lower()


def format_answer(answer) -> str:
    """One line for a lookup-mode client."""
    if not answer.ok:
        return f"{answer.query}: {answer.outcome.message}"
    if answer.kind == "forward":
        return f"{answer.query}: {' '.join(answer.addresses)}"
    confirmed = "confirmed" if answer.confirmed else "NOT confirmed"
    return f"{answer.query}: {answer.ptr} ({confirmed})"
