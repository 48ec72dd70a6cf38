"""``telnet``'s words around a session: what is tried and connected to (on
a terminal, or with -v), the TLS facts, the escape prompt, how it ended.
The session's own bytes go straight to stdout (netdiag/telnet/session.py)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from netdiag.output import Output

if TYPE_CHECKING:
    from netdiag.telnet.connection import Connection
    from netdiag.telnet.session import SessionResult

_BY_SERVER = {"remote close": "closed by foreign host", "remote reset": "reset by foreign host"}


def trying(out: Output, address: str) -> None:
    out.info(f"Trying {address}...")


def connected(out: Output, connection: Connection, escape_key: int | None, interactive: bool) -> None:
    out.info(f"Connected to {connection.host} ({connection.address}) port {connection.port}.")
    if connection.tls:
        t = connection.tls
        verified = "verified" if t.verified else "NOT verified"
        out.info(f"TLS {t.version}, {t.cipher}; certificate {verified}: {t.subject} (issuer: {t.issuer})")
    if interactive and escape_key is not None:
        out.info(f"Escape character is '{key_name(escape_key)}'.")


def ended(out: Output, result: SessionResult, idle_timeout: float | None, talk: bool) -> bool:
    """How the session ended; False when that is a failure (an error, the idle timeout)."""
    if result.error:
        out.error(result.error)
        return False
    counts = f"{result.sent:,} bytes sent, {result.received:,} received in {result.duration_s:.1f}s"
    if result.ended_by == "idle timeout":
        out.warn(f"closed after {idle_timeout:g}s idle; {counts}")
        return False
    if talk:
        out.info(f"Connection {_BY_SERVER.get(result.ended_by, 'closed')}. {counts}")
    return True


def key_name(key: int) -> str:
    return f"^{chr(key ^ 0x40)}" if key < 0x20 or key == 0x7F else chr(key)


class TerminalUI:
    """Status lines on stderr; the escape prompt reads its line straight from
    the input descriptor (no buffered reader may swallow session bytes)."""

    def __init__(self, out: Output, fd: int) -> None:
        self.out, self.fd = out, fd

    def notify(self, message: str) -> None:
        self.out.info(message)

    def ask(self, prompt: str) -> str | None:
        self.out.stderr.write(prompt)
        self.out.stderr.flush()
        data = os.read(self.fd, 4096)
        return data.decode("utf-8", "replace") if data else None
