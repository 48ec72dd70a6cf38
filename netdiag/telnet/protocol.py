"""The telnet protocol (RFC 854/855) as a pure state machine: bytes in, bytes out.

``TelnetProtocol.feed(data)`` takes whatever a socket read returned (a command
may be split across reads at any byte) and returns the user data plus the
replies to send. Options follow RFC 1143's "Q method" so that negotiation can
never loop: a request that does not change an option's state gets no answer.

The client implements ECHO and SUPPRESS-GO-AHEAD (accepted from the server),
TERMINAL-TYPE and NAWS (offered on request); every other option is refused.

The Synch: when the socket reports urgent data, the session calls ``synch()``;
data is then discarded, and commands still obeyed, up to the next DM.

Memory stays bounded whatever the server sends: a subnegotiation longer than
MAX_SUBNEGOTIATION is discarded, and only the last few commands are kept.
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

IAC, DONT, DO, WONT, WILL, SB, SE = 255, 254, 253, 252, 251, 250, 240
NOP, DM, BRK, IP, AO, AYT, EC, EL, GA = 241, 242, 243, 244, 245, 246, 247, 248, 249
ECHO, SGA, TTYPE, NAWS = 1, 3, 24, 31
TTYPE_IS, TTYPE_SEND = 0, 1

OPTION_NAMES = {ECHO: "ECHO", SGA: "SUPPRESS-GO-AHEAD", TTYPE: "TERMINAL-TYPE", NAWS: "NAWS"}
COMMANDS = {"nop": NOP, "brk": BRK, "ip": IP, "ao": AO, "ayt": AYT, "ec": EC, "el": EL, "ga": GA, "dm": DM}

_DATA, _IAC, _OPTION, _SB, _SB_IAC = range(5)

MAX_SUBNEGOTIATION = 4096  # ours are a few bytes; anything longer is not for us
RECENT_COMMANDS = 64


@dataclass
class NegotiationState:
    """What the two sides have agreed; the session reads it to pick its mode."""

    remote: set[int] = field(default_factory=set)  # options the server does (WILL, we said DO)
    local: set[int] = field(default_factory=set)  # options we do (we said WILL)

    @property
    def server_echoes(self) -> bool:
        return ECHO in self.remote


class TelnetProtocol:
    """Client side of the telnet protocol."""

    ACCEPT_REMOTE = frozenset({ECHO, SGA})  # server may do these
    ACCEPT_LOCAL = frozenset({SGA, TTYPE, NAWS})  # we will do these when asked

    def __init__(
        self,
        terminal_type: str = "xterm",
        window_size: Callable[[], tuple[int, int]] | None = None,
    ) -> None:
        self.state = NegotiationState()
        self.terminal_type = terminal_type.encode("ascii", "replace")[:40] or b"unknown"
        self.window_size = window_size or (lambda: (80, 24))
        self._mode = _DATA
        self._after_cr = False
        self._verb = 0
        self._sub = bytearray()
        self._sub_too_long = False
        self._synch = False
        self.recent_commands: deque[int] = deque(maxlen=RECENT_COMMANDS)  # e.g. GA, NOP, DM

    def synch(self) -> None:
        """The server sent urgent data (RFC 854 Synch): from here on, data is
        discarded until the next DM; commands are still obeyed."""
        self._synch = True

    # --- incoming -----------------------------------------------------------

    def feed(self, data: bytes) -> tuple[bytes, bytes]:
        """Parse bytes from the server: (data for the user, replies to send)."""
        out = bytearray()
        replies = bytearray()
        mode = self._mode
        i, n = 0, len(data)
        while i < n:
            if mode == _DATA:
                # Copy the whole run up to the next IAC at once; in it, CR NUL
                # stands for a bare CR (RFC 854), also when split across reads.
                j = data.find(IAC, i)
                if j < 0:
                    j = n
                if self._synch:  # data before the DM is what the server wants flushed
                    self._after_cr = False
                elif j > i:
                    run = data[i:j]
                    if self._after_cr and run[:1] == b"\0":
                        run = run[1:]
                    run = run.replace(b"\r\0", b"\r")
                    if run:
                        self._after_cr = run[-1] == 13
                    out += run
                if j == n:
                    break
                i = j + 1
                self._after_cr = False
                mode = _IAC
            elif mode == _IAC:
                byte = data[i]
                i += 1
                if byte == IAC:
                    if not self._synch:
                        out.append(IAC)
                    mode = _DATA
                elif byte in (WILL, WONT, DO, DONT):
                    self._verb = byte
                    mode = _OPTION
                elif byte == SB:
                    self._sub.clear()
                    self._sub_too_long = False
                    mode = _SB
                else:
                    if byte == DM:  # the Synch's end (outside one, a no-op)
                        self._synch = False
                    self.recent_commands.append(byte)
                    mode = _DATA
            elif mode == _OPTION:
                replies += self._negotiate(self._verb, data[i])
                i += 1
                mode = _DATA
            elif mode == _SB:
                j = data.find(IAC, i)
                self._keep_sub(data, i, n if j < 0 else j)
                if j < 0:
                    break
                i = j + 1
                mode = _SB_IAC
            else:  # _SB_IAC
                byte = data[i]
                i += 1
                if byte == SE:
                    if not self._sub_too_long:
                        replies += self._subnegotiation(bytes(self._sub))
                    mode = _DATA
                else:  # IAC IAC inside SB is a literal 255; anything else: keep going
                    self._keep_sub(data, i - 1, i)
                    mode = _SB
        self._mode = mode
        return bytes(out), bytes(replies)

    def _keep_sub(self, data: bytes, start: int, end: int) -> None:
        room = MAX_SUBNEGOTIATION - len(self._sub)
        if end - start > room:
            self._sub_too_long = True
            end = start + room
        self._sub += data[start:end]

    def _negotiate(self, verb: int, option: int) -> bytes:
        state = self.state
        if verb == WILL:
            if option in state.remote:
                return b""
            if option in self.ACCEPT_REMOTE:
                state.remote.add(option)
                return bytes([IAC, DO, option])
            return bytes([IAC, DONT, option])
        if verb == WONT:
            if option not in state.remote:
                return b""
            state.remote.discard(option)
            return bytes([IAC, DONT, option])
        if verb == DO:
            if option in state.local:
                return b""
            if option in self.ACCEPT_LOCAL:
                state.local.add(option)
                reply = bytes([IAC, WILL, option])
                if option == NAWS:
                    reply += self.window_size_message()
                return reply
            return bytes([IAC, WONT, option])
        # DONT
        if option not in state.local:
            return b""
        state.local.discard(option)
        return bytes([IAC, WONT, option])

    def _subnegotiation(self, body: bytes) -> bytes:
        if body[:2] == bytes([TTYPE, TTYPE_SEND]) and TTYPE in self.state.local:
            return bytes([IAC, SB, TTYPE, TTYPE_IS]) + escape(self.terminal_type) + bytes([IAC, SE])
        return b""

    def window_size_message(self) -> bytes:
        """IAC SB NAWS width height IAC SE (sent again when the window changes)."""
        if NAWS not in self.state.local:
            return b""
        width, height = self.window_size()
        size = struct.pack("!HH", max(0, min(width, 0xFFFF)), max(0, min(height, 0xFFFF)))
        return bytes([IAC, SB, NAWS]) + escape(size) + bytes([IAC, SE])

    # --- outgoing -----------------------------------------------------------

    @staticmethod
    def command(name: str) -> bytes:
        """IAC and a command by name (``send ayt`` at the escape prompt)."""
        return bytes([IAC, COMMANDS[name]])


def escape(data: bytes) -> bytes:
    """User data to the wire: a literal 255 is sent as IAC IAC."""
    return data.replace(b"\xff", b"\xff\xff")
