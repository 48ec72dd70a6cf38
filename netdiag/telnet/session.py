"""The telnet session: one selectors loop over the terminal (or a pipe) and the
socket, in one thread, so no blocking read ever freezes the other side.

The session object is itself selectable (``fileno()`` is the socket's). Its
streams are injected: the input file descriptor, the output binary stream and
a ``UserInterface`` for status lines and the escape prompt.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import selectors
import signal
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import Any, BinaryIO, Protocol

from netdiag.errors import ConnectError
from netdiag.telnet.connection import Connection, TlsStream
from netdiag.telnet.protocol import COMMANDS, ECHO, TelnetProtocol, escape
from netdiag.telnet.screen import SafeText, hexdump, transcript
from netdiag.text import visible

READ_SIZE = 256 * 1024
HIGH_WATER = 4 * 1024 * 1024  # stop reading input while this much waits for the socket
# Input alone never queues much past HIGH_WATER; beyond this, the queue is our
# replies to a server that does not read them: stop reading it until it does.
REPLY_HIGH_WATER = 2 * HIGH_WATER
# Signals whose default action ends us, terminal modes and all.
TERMINATING_SIGNALS = ("SIGHUP", "SIGTERM", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGALRM")
# What signal.signal takes and gives back: a function, SIG_DFL or SIG_IGN, or None (not set from Python).
SignalHandler = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None


class UserInterface(Protocol):
    def notify(self, message: str) -> None: ...

    def ask(self, prompt: str) -> str | None:
        """A line typed at the terminal, or None at end of input."""


@dataclass
class SessionOptions:
    protocol: bool = True  # telnet IAC handling
    interactive: bool = False  # input is a terminal
    char_mode: bool = False  # force character mode
    crlf: bool = False  # send CR LF for line ends
    escape: int | None = 0x1D  # Ctrl-]; None disables the escape prompt
    hexdump: bool = False
    raw_terminal: bool = False  # pass server control sequences to the terminal
    idle_timeout: float | None = None
    log: BinaryIO | None = None


@dataclass
class SessionResult:
    sent: int
    received: int
    duration_s: float
    ended_by: str  # "remote close", "remote reset", "quit", "idle timeout", "input closed"
    error: str | None = None


class Terminal:
    """The controlling terminal's modes: line (cooked) or character (raw-ish).
    ``restore()`` puts back exactly what was there before."""

    def __init__(self, fd: int) -> None:
        import termios

        self._termios = termios
        self.fd = fd
        self.saved = termios.tcgetattr(fd)

    def line(self, escape: int | None) -> None:
        t = self._termios
        attrs = [list(a) if isinstance(a, list) else a for a in self.saved]
        attrs[3] |= t.ICANON | t.ECHO | t.ISIG
        if escape is not None:  # make the escape key end a read at once, like Enter
            attrs[6][t.VEOL] = bytes([escape])
        self._set(attrs)

    def char(self) -> None:
        t = self._termios
        attrs = [list(a) if isinstance(a, list) else a for a in self.saved]
        attrs[0] &= ~(t.ICRNL | t.IXON | t.INLCR | t.IGNCR)
        attrs[3] &= ~(t.ICANON | t.ECHO | t.ISIG | t.IEXTEN)
        attrs[6][t.VMIN] = 1
        attrs[6][t.VTIME] = 0
        self._set(attrs)

    def restore(self) -> None:
        self._set(self.saved)

    def _set(self, attrs: list[Any]) -> None:  # termios's: flags, speeds, control characters
        with contextlib.suppress(self._termios.error):  # hung up: there is no terminal left to set
            self._termios.tcsetattr(self.fd, self._termios.TCSADRAIN, attrs)

    def size(self) -> tuple[int, int]:
        try:
            columns, lines = os.get_terminal_size(self.fd)
        except OSError:
            return 80, 24
        return columns, lines


class Session:
    def __init__(
        self,
        connection: Connection,
        input_fd: int,
        output: BinaryIO,
        ui: UserInterface,
        options: SessionOptions,
        terminal: Terminal | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.connection = connection
        self.sock = connection.sock
        self.tls = connection.sock if isinstance(connection.sock, TlsStream) else None
        self.input_fd = input_fd
        self.output = output
        self.ui = ui
        self.options = options
        self.terminal = terminal
        self.clock = clock
        self.protocol = (
            TelnetProtocol(os.environ.get("TERM", "xterm"), terminal.size if terminal else None)
            if options.protocol
            else None
        )
        self.screen = SafeText() if _shows_a_person(options, output) else None
        self.to_socket = bytearray()
        self.sent = 0
        self.received = 0
        self.started = clock()
        self.last_activity = self.started
        self.input_open = True
        self.write_shut = False
        self.ended_by: str | None = None
        self._input_pollable = True
        self._socket_events = selectors.EVENT_READ
        self._zero_copy = False
        self._socket_full = False
        self._offsets = {"<": 0, ">": 0}
        self._logged = {"<": 0, ">": 0}  # bytes in the transcript each way
        self._window_changed = False
        self._close_notify_sent = False
        self._at_prompt = False
        # Urgent data is a telnet Synch; SO_OOBINLINE keeps its byte in the stream.
        self._urgent: select.poll | None = None
        if self.protocol is not None and self.tls is None:
            self._urgent = select.poll()
            self._urgent.register(self.sock, select.POLLPRI)

    def fileno(self) -> int:
        return self.sock.fileno()

    # --- the loop ---------------------------------------------------------------

    def run(self) -> SessionResult:
        selector = selectors.DefaultSelector()
        selector.register(self.sock, selectors.EVENT_READ)
        try:
            selector.register(self.input_fd, selectors.EVENT_READ)
            self._input_pollable = True
        except PermissionError:  # a regular file (< file): epoll refuses it, and it is always readable
            self._input_pollable = False
            # Bytes passed through untouched can go file → socket in the kernel.
            self._zero_copy = self._passes_bytes_through() and hasattr(os, "sendfile")
        previous_handlers: dict[int, SignalHandler] = {}
        error = None
        if self.options.log is not None:
            self._log_line(f"# {self._log_header()}")
        try:
            if self.terminal is not None:
                previous_handlers = self._handle_signals()
                self._apply_mode()
            while self.ended_by is None:
                read_file = not self._input_pollable and self._want_input()
                read_tls = self._tls_buffered()  # already off the socket: the selector cannot see it
                events = selector.select(0 if read_file or read_tls else self._wait())
                if read_file:
                    self._read_input()
                if read_tls:
                    self._read_socket()
                for key, mask in events:
                    if key.fileobj is self.sock:
                        if mask & selectors.EVENT_READ and self.ended_by is None:
                            self._read_socket()
                        if mask & selectors.EVENT_WRITE and self.ended_by is None:
                            self._flush()
                    elif self.ended_by is None:
                        self._read_input()
                if self._window_changed and self.protocol:
                    self._window_changed = False
                    self._queue(self.protocol.window_size_message())
                self._maybe_half_close()
                self._check_idle()
                self._update(selector)
        except ConnectError as exc:
            error = str(exc)
            self.ended_by = "error"
        finally:
            selector.close()
            if self.terminal is not None:
                self.terminal.restore()
            for signum, handler in previous_handlers.items():
                signal.signal(signum, handler)
            if self.screen is not None:
                self._write_output(self.screen.flush().encode())
            self.sock.close()
        result = SessionResult(self.sent, self.received, self.clock() - self.started, self.ended_by or "quit", error)
        ended = result.ended_by + (f": {result.error}" if result.error else "")
        self._log_line(
            f"# +{result.duration_s:.3f}s ended ({visible(ended)}): "
            f"{result.sent:,} bytes sent, {result.received:,} received"
        )
        return result

    def _wait(self) -> float | None:
        timeouts = []
        if self.options.idle_timeout:
            timeouts.append(max(self.last_activity + self.options.idle_timeout - self.clock(), 0))
        if self.terminal is not None:
            timeouts.append(0.5)  # look at window-size changes now and then
        return min(timeouts) if timeouts else None

    def _update(self, selector: selectors.BaseSelector) -> None:
        if self.ended_by is not None:
            return
        tls_unsent = self.tls is not None and not self.write_shut and self.tls.backlog
        unsent = self.to_socket or self._socket_full or tls_unsent
        events = (selectors.EVENT_READ if self._want_socket() else 0) | (selectors.EVENT_WRITE if unsent else 0)
        if events != self._socket_events:  # an epoll_ctl per loop would cost as much as the data
            selector.modify(self.sock, events)
            self._socket_events = events
        if not self._input_pollable:
            return
        want_input = self._want_input()
        registered = self.input_fd in selector.get_map()
        if want_input and not registered:
            selector.register(self.input_fd, selectors.EVENT_READ)
        elif registered and not want_input:
            selector.unregister(self.input_fd)

    def _want_input(self) -> bool:
        return self.input_open and self.ended_by is None and not self._socket_full and len(self.to_socket) < HIGH_WATER

    def _want_socket(self) -> bool:
        return len(self.to_socket) < REPLY_HIGH_WATER

    def _tls_buffered(self) -> bool:
        return self.tls is not None and self._want_socket() and self.tls.pending()

    # --- socket side -------------------------------------------------------------

    def _read_socket(self) -> None:
        while True:
            if self._urgent is not None and self.protocol is not None and _urgent_pending(self._urgent):
                self.protocol.synch()
            try:
                data = self.sock.recv(READ_SIZE)
            except BlockingIOError:
                return
            except ssl.SSLError as exc:
                raise ConnectError(f"TLS error: {exc.reason or exc}") from None
            except OSError as exc:
                # A reset, as nc sees it, is the server leaving (what it sent is read first). Not
                # with TLS: the server dropped our close_notify unread, and with it its unsent data.
                if exc.errno == errno.ECONNRESET and self.tls is None:
                    self.ended_by = "remote reset"
                    return
                raise ConnectError(_socket_error("reading from", self.connection, exc)) from None
            if not data:
                self.ended_by = "remote close"
                return
            self.received += len(data)
            self.last_activity = self.clock()
            self._log("<", data)
            if self.protocol is not None:
                echoed_before = self.protocol.state.server_echoes
                data, replies = self.protocol.feed(data)
                if replies:
                    self._queue(replies)
                if self.protocol.state.server_echoes != echoed_before:
                    self._apply_mode()
            self._show(data)
            if self.ended_by is not None or not self._tls_buffered():
                return

    def _show(self, data: bytes) -> None:
        if not data:
            return
        if self.options.hexdump:
            self._write_output(hexdump(data, "<", self._advance("<", data)).encode())
        elif self.screen is not None:
            self._write_output(self.screen.feed(data).encode())
        else:
            self._write_output(data)

    def _write_output(self, data: bytes) -> None:
        if data:
            self.output.write(data)
            self.output.flush()

    def _queue(self, data: bytes) -> None:
        if self.write_shut:
            return  # we already half-closed: late negotiation replies cannot go out
        if not self.to_socket:  # the common case: straight out, no copy into the buffer
            try:
                sent = self.sock.send(data)
            except BlockingIOError:
                sent = 0
            except OSError as exc:
                self._send_failed(exc)
                return
            self.sent += sent
            self.last_activity = self.clock()
            data = data[sent:]
            if not data:
                return
        self.to_socket += data
        self._flush()

    def _flush(self) -> None:
        self._socket_full = False  # called when the socket is writable, or to try it
        if self.tls is not None and self.tls.backlog and not self._flush_tls(self.tls):
            return
        while self.to_socket:
            try:
                sent = self.sock.send(self.to_socket[:READ_SIZE])
            except BlockingIOError:
                return
            except OSError as exc:
                self._send_failed(exc)
                return
            del self.to_socket[:sent]
            self.sent += sent
            self.last_activity = self.clock()

    def _flush_tls(self, tls: TlsStream) -> bool:
        try:
            return tls.flush()
        except OSError as exc:
            self._send_failed(exc)
            return False

    def _send_failed(self, exc: OSError) -> None:
        """The server closed (or reset) while we were still sending, as nc sees
        it: nothing more goes out, and what it sent is still read to the end."""
        if exc.errno not in (errno.EPIPE, errno.ECONNRESET):
            raise ConnectError(_socket_error("sending to", self.connection, exc)) from None
        self.input_open = False
        self.write_shut = True
        self.to_socket.clear()
        self._socket_full = False

    def _maybe_half_close(self) -> None:
        """Input ended and everything is sent: shut our write side, keep reading.
        With TLS: close_notify first, then the TCP FIN."""
        if self.input_open or self.write_shut or self.to_socket or self.ended_by:
            return
        if self.tls is not None:
            if self.tls.pending():
                return  # the server's data first (the loop reads it at once): OpenSSL would fail on it
            if not self._close_notify_sent:
                self._close_notify_sent = True
                with contextlib.suppress(OSError):  # failing connection: the next read says how
                    self.tls.send_close_notify()
            if self.tls.backlog:
                return  # the FIN waits for the close_notify to go out
        self.write_shut = True
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_WR)

    def _check_idle(self) -> None:
        timeout = self.options.idle_timeout
        if timeout and self.ended_by is None and self.clock() - self.last_activity >= timeout:
            self.ended_by = "idle timeout"

    # --- input side ----------------------------------------------------------------

    def _passes_bytes_through(self) -> bool:
        o = self.options
        plain = not (o.interactive or o.crlf or o.hexdump or o.log is not None or self.protocol is not None)
        return plain and self.tls is None

    def _send_file(self) -> None:
        """stdin is a regular file: sendfile() it to the socket, zero copy."""
        try:
            sent = os.sendfile(self.sock.fileno(), self.input_fd, None, 16 * READ_SIZE)
        except BlockingIOError:
            self._socket_full = True  # wait until the socket is writable again
            return
        except OSError as exc:
            if exc.errno in (errno.EINVAL, errno.ENOSYS):  # not a file sendfile can read
                self._zero_copy = False
                return
            self._send_failed(exc)
            return
        if sent == 0:
            self.input_open = False
            return
        self.sent += sent
        self.last_activity = self.clock()

    def _read_input(self) -> None:
        if self._zero_copy:
            self._send_file()
            return
        try:
            data = os.read(self.input_fd, READ_SIZE)
        except BlockingIOError:
            return
        except OSError as exc:
            if exc.errno == errno.EIO:  # the terminal went away
                data = b""
            else:
                raise
        if not data:
            self.input_open = False
            if self.options.interactive:
                self.ended_by = "input closed"
            return
        escape_key = self.options.escape
        if self.options.interactive and escape_key is not None and escape_key in data:
            before, _, after = data.partition(bytes([escape_key]))
            self._send_typed(before)
            self._escape_prompt()
            if after and self.ended_by is None:
                self._send_typed(after)
            return
        self._send_typed(data)

    def _send_typed(self, data: bytes) -> None:
        if not data:
            return
        data = self._line_endings(data)
        self._log(">", data)
        if self.options.hexdump:
            self._write_output(hexdump(data, ">", self._advance(">", data)).encode())
        self._queue(escape(data) if self.protocol is not None else data)

    def _line_endings(self, data: bytes) -> bytes:
        if not self.options.interactive:
            return data.replace(b"\n", b"\r\n") if self.options.crlf else data  # a pipe: byte-exact
        if self._mode() == "char":
            # Enter arrives as CR; NVT wants CR LF or CR NUL for it.
            ending = b"\r\n" if self.options.crlf else b"\r\0" if self.protocol else b"\r"
            return data.replace(b"\r", ending)
        if self.options.crlf or self.protocol is not None:  # NVT line end is CR LF
            return data.replace(b"\n", b"\r\n")
        return data

    # --- modes and the escape prompt ---------------------------------------------

    def _apply_mode(self) -> None:
        if self.terminal is None:
            return
        if self._mode() == "char":
            self.terminal.char()
        else:
            self.terminal.line(self.options.escape)

    def _mode(self) -> str:
        """The session's mode: character mode when asked for or when the server echoes."""
        if self.terminal is None:
            return "pipe"
        server_echoes = self.protocol is not None and self.protocol.state.server_echoes
        return "char" if self.options.char_mode or server_echoes else "line"

    def _escape_prompt(self) -> None:
        if self.terminal is not None:
            self.terminal.restore()
        prompt = "\r\nnetdiag> "  # start on a line of its own, after the echoed ^]
        self._at_prompt = True
        try:
            while self.ended_by is None:
                line = self.ui.ask(prompt)
                prompt = "netdiag> "
                if line is None:
                    self.ended_by = "quit"
                    break
                words = line.split()
                if not words:
                    break  # empty line: back to the session
                if self._prompt_command(words):
                    break
        finally:
            self._at_prompt = False
            if self.ended_by is None:
                self._apply_mode()

    def _prompt_command(self, words: list[str]) -> bool:
        """Run one prompt command; True to go back to the session."""
        command, args = words[0].lower(), words[1:]
        if command in ("quit", "q", "close", "exit"):
            self.ended_by = "quit"
            return True
        if command == "status":
            self.ui.notify(self.status())
            return False
        if command == "send":
            return self._prompt_send(args)
        if command == "mode" and args and args[0] in ("char", "line"):
            self.options.char_mode = args[0] == "char"
            return True
        self.ui.notify(
            "commands: quit | status | send "
            + "|".join([*COMMANDS, "escape", "hex HEX"])
            + " | mode char|line | (empty line: back to the session)"
        )
        return False

    def _prompt_send(self, args: list[str]) -> bool:
        if not args:
            self.ui.notify("send what? " + ", ".join([*COMMANDS, "escape", "hex HEX"]))
            return False
        what = args[0].lower()
        if what == "escape" and self.options.escape is not None:
            self._send_typed(bytes([self.options.escape]))
        elif what == "hex":
            try:
                self._send_typed(bytes.fromhex("".join(args[1:])))
            except ValueError:
                self.ui.notify("send hex: give bytes as hex digits, e.g. send hex 0d0a")
                return False
        elif what in COMMANDS and self.protocol is not None:
            self._log(">", TelnetProtocol.command(what))
            self._queue(TelnetProtocol.command(what))
        elif what in COMMANDS:
            self.ui.notify(f"send {what}: telnet commands need the telnet protocol (not --raw)")
            return False
        else:
            self.ui.notify(f"send: unknown {what!r}")
            return False
        return True

    def status(self) -> str:
        c = self.connection
        mode = self._mode()
        tls = f", {c.tls.version}" if c.tls else ""
        return (
            f"connected to {c.host} ({c.address}) port {c.port}{tls}; "
            f"sent {self.sent:,} bytes, received {self.received:,} bytes, "
            f"{self.clock() - self.started:.1f}s, {mode} mode"
            + (", server echoes" if self.protocol and ECHO in self.protocol.state.remote else "")
        )

    # --- helpers --------------------------------------------------------------------

    def _advance(self, direction: str, data: bytes) -> int:
        offset = self._offsets[direction]
        self._offsets[direction] += len(data)
        return offset

    def _log(self, direction: str, data: bytes) -> None:
        """One chunk in the transcript: ``+0.012s < 220 ready\\r\\n``, or hex
        dump lines when it is not text (see screen.transcript)."""
        if self.options.log is not None:
            elapsed = self.clock() - self.started
            offset = self._logged[direction]
            self._logged[direction] += len(data)
            self.options.log.write(transcript(data, f"+{elapsed:.3f}s {direction}", offset).encode())
            self.options.log.flush()

    def _log_line(self, line: str) -> None:
        if self.options.log is not None:
            self.options.log.write(f"{line}\n".encode())
            self.options.log.flush()

    def _log_header(self) -> str:
        """``connected to web.lab.test (127.1.0.10) port 25, 2025-06-01 12:00:00 +0200``"""
        c = self.connection
        tls = f", {c.tls.version}" if c.tls else ""
        started = time.strftime("%Y-%m-%d %H:%M:%S %z")
        return f"connected to {visible(c.host)} ({c.address}) port {c.port}{tls}, {started}"

    def _on_window_change(self, signum: int, frame: FrameType | None) -> None:
        self._window_changed = True

    def _handle_signals(self) -> dict[int, SignalHandler]:
        """No signal may end or stop us with the terminal still in our mode.
        One with a Python handler already (netdiag's SIGTERM and SIGHUP) raises
        through run(), which restores it; the others get ours. Returns the
        handlers to put back."""
        ours = {getattr(signal, name): self._on_terminating_signal for name in TERMINATING_SIGNALS}
        ours |= {signal.SIGTSTP: self._on_suspend, signal.SIGCONT: self._on_continue}
        previous = {
            signum: signal.signal(signum, handler)
            for signum, handler in ours.items()
            if signal.getsignal(signum) == signal.SIG_DFL
        }
        previous[signal.SIGWINCH] = signal.signal(signal.SIGWINCH, self._on_window_change)
        return previous

    def _on_terminating_signal(self, signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)  # unwinds through run(): the terminal is restored

    def _on_suspend(self, signum: int, frame: FrameType | None) -> None:
        """Ctrl-Z in line mode, or kill -TSTP: give the terminal back, then stop."""
        if self.terminal is not None:
            self.terminal.restore()
        signal.signal(signal.SIGTSTP, signal.SIG_DFL)
        try:
            os.kill(os.getpid(), signal.SIGTSTP)  # stopped here until SIGCONT (an orphaned process group is not)
        finally:
            signal.signal(signal.SIGTSTP, self._on_suspend)
        self._on_continue(signal.SIGCONT, frame)

    def _on_continue(self, signum: int, frame: FrameType | None) -> None:
        if not self._at_prompt:  # the shell had the terminal meanwhile: ours again
            self._apply_mode()


def _shows_a_person(options: SessionOptions, output: BinaryIO) -> bool:
    """Server bytes go to a terminal (typed at, or just shown on): make them visible text."""
    if options.raw_terminal or options.hexdump:
        return False
    try:
        return options.interactive or os.isatty(output.fileno())
    except (AttributeError, OSError, ValueError):  # not a real file: a test's buffer
        return options.interactive


def _urgent_pending(urgent: select.poll) -> bool:
    return any(events & select.POLLPRI for _, events in urgent.poll(0))


def _socket_error(action: str, connection: Connection, exc: OSError) -> str:
    reason = (exc.strerror or str(exc)).lower()
    return f"{action} {connection.address} port {connection.port}: {reason}"
