"""Opening the TCP (and TLS) connection: every resolved address in turn.

OS error numbers become the project's typed errors here, at the boundary.

TLS runs through memory BIOs (``TlsStream``) rather than ``ssl.SSLSocket``:
``SSLSocket.unwrap()`` reads after sending close_notify, and OpenSSL fails the
connection if the server's data is already there, so a TLS half-close (our
close_notify, then the server's remaining data) needs the socket in our hands.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import ipaddress
import re
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from netdiag import nss, outcomes
from netdiag.errors import (
    BadInput,
    ConnectError,
    ConnectionRefused,
    ConnectTimeout,
    NetworkUnreachable,
    ResolveError,
    TlsError,
)
from netdiag.outcomes import Outcome
from netdiag.ports import unbracket
from netdiag.targets import AddressBlock, HostName, parse_target
from netdiag.text import visible

TLS_READ_SIZE = 256 * 1024


_SNI_LABEL = re.compile(rb"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)")

_Names = tuple[tuple[tuple[str, str], ...], ...]  # a certificate's subject or issuer: RDNs of (key, value)


@dataclass(frozen=True)
class TlsInfo:
    version: str
    cipher: str
    subject: str  # visible text; or the certificate's fingerprint when it was not verified
    issuer: str
    verified: bool


class TlsStream:
    """A TLS session over a non-blocking socket, with the socket's calls:
    ``recv`` (b"" at the server's end of data), ``send`` (BlockingIOError when
    the socket is full), ``fileno``, ``shutdown``, ``close``; plus ``pending``,
    ``flush`` and ``send_close_notify``, which a plain socket does not need."""

    def __init__(self, sock: socket.socket, tls: ssl.SSLObject, incoming: ssl.MemoryBIO, outgoing: ssl.MemoryBIO):
        self.sock = sock
        self.tls = tls
        self._incoming = incoming
        self._outgoing = outgoing
        self._unsent = bytearray()  # encrypted, waiting for room in the socket

    def fileno(self) -> int:
        return self.sock.fileno()

    def recv(self, size: int) -> bytes:
        while True:
            try:
                return self.tls.read(size)
            except ssl.SSLWantReadError:
                pass
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):  # close_notify, or a bare TCP close
                return b""
            data = self.sock.recv(TLS_READ_SIZE)  # BlockingIOError: nothing more yet
            if data:
                self._incoming.write(data)
            else:
                self._incoming.write_eof()

    def pending(self) -> bool:
        """Data the selector cannot see: decrypted, or received but not decrypted yet."""
        return self.tls.pending() > 0 or self._incoming.pending > 0

    def send(self, data: bytes | bytearray) -> int:
        if not self.flush():
            raise BlockingIOError
        sent = self.tls.write(data)
        self.flush()
        return sent

    @property
    def backlog(self) -> bool:
        """Encrypted bytes still to send."""
        return bool(self._unsent) or self._outgoing.pending > 0

    def flush(self) -> bool:
        """Send what is encrypted; True when nothing is left waiting."""
        if self._outgoing.pending:
            self._unsent += self._outgoing.read()
        while self._unsent:
            try:
                sent = self.sock.send(self._unsent)
            except BlockingIOError:
                return False
            del self._unsent[:sent]
        return True

    def send_close_notify(self) -> None:
        """TLS's end of our data. Only with nothing ``pending``: OpenSSL reads
        after sending it, and fails on application data it finds."""
        with contextlib.suppress(ssl.SSLWantReadError):  # sent; the server's comes after its data
            self.tls.unwrap()
        self.flush()

    def shutdown(self, how: int) -> None:
        self.sock.shutdown(how)

    def close(self) -> None:
        self.sock.close()


@dataclass
class Connection:
    sock: socket.socket | TlsStream
    host: str
    address: str
    port: int
    tls: TlsInfo | None = None


def check_host(host: str) -> tuple[str, bool]:
    """Validate HOST: a name or an address (``[v6]`` allowed). (host, is_address)."""
    bare = unbracket(host)
    try:
        ipaddress.ip_address(bare.split("%", 1)[0])
        return bare, True
    except ValueError:
        pass
    try:
        target = parse_target(bare)
    except BadInput:
        raise BadInput(f"{host!r} is not a host name or address") from None
    if isinstance(target, AddressBlock) and target.size == 1:  # 127.1, 0x7f.0.0.1: as nc reads them
        return str(target.first), True
    if not isinstance(target, HostName):
        raise BadInput(f"{host!r} is a network or range, not one host")
    return bare, False


def check_server_name(name: str) -> str:
    """``--sni``: a DNS host name (RFC 6066: never an address), in A-labels."""
    bare = name[:-1] if name.endswith(".") else name
    try:
        ipaddress.ip_address(bare)
    except ValueError:
        pass
    else:
        raise BadInput(f"--sni {name!r}: an address cannot be a TLS server name; give a host name")
    encoded = nss.to_ascii(bare)
    labels = encoded.split(b".") if encoded else []
    if not encoded or len(encoded) > 253 or not all(_SNI_LABEL.fullmatch(label) for label in labels):
        raise BadInput(f"--sni {name[:64]!r}: not a valid host name")
    return encoded.decode()


def open_connection(
    host: str,
    port: int,
    *,
    family: int = socket.AF_UNSPEC,
    timeout: float = 10.0,
    tls: bool = False,
    insecure: bool = False,
    server_name: str | None = None,
    on_attempt: Callable[[str], object] | None = None,
) -> Connection:
    """Connect to the first address of HOST that accepts; raise a ConnectError
    naming every address tried, or ResolveError."""
    host, is_address = check_host(host)
    try:
        infos = socket.getaddrinfo(host, port, family, socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ResolveError(f"{host}: cannot resolve ({exc.strerror})") from None
    except UnicodeError:
        raise ResolveError(f"{host}: not a valid name") from None
    failures: list[ConnectError] = []
    for af, kind, proto, _, sockaddr in dict.fromkeys(infos):
        address = str(sockaddr[0])  # str for AF_INET and AF_INET6, all a stream lookup gives
        if on_attempt:
            on_attempt(address)
        sock = socket.socket(af, kind, proto)
        sock.settimeout(timeout)
        try:
            sock.connect(sockaddr)
        except OSError as exc:
            sock.close()
            failures.append(_connect_error(exc, address, port, timeout))
            continue
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # Urgent data (a telnet Synch) stays in the stream, in order; the session
        # learns of it from poll's POLLPRI.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_OOBINLINE, 1)
        if not tls:
            sock.setblocking(False)
            return Connection(sock, host, address, port)
        name = server_name or (None if is_address else host)
        stream, info = _start_tls(sock, name or host, insecure, send_sni=bool(name))
        sock.setblocking(False)
        return Connection(stream, host, address, port, info)
    if len(failures) == 1:
        raise failures[0]
    kinds = {type(f) for f in failures}
    cls = kinds.pop() if len(kinds) == 1 else ConnectError
    raise cls("; ".join(str(f) for f in failures))


def _connect_error(exc: OSError, address: str, port: int, timeout: float) -> ConnectError:
    where = f"{address} port {port}"
    if isinstance(exc, TimeoutError) or exc.errno == errno.ETIMEDOUT:
        return ConnectTimeout(f"connection to {where} timed out after {timeout:g}s")
    if exc.errno == errno.ECONNREFUSED:
        return ConnectionRefused(f"connection refused by {where}")
    outcome, reason = outcomes.classify(exc.errno or 0)
    if outcome is Outcome.UNREACHABLE:
        return NetworkUnreachable(f"{where}: {reason}")
    return ConnectError(f"{where}: {reason if exc.errno else str(exc).lower()}")


def _start_tls(sock: socket.socket, name: str, insecure: bool, send_sni: bool) -> tuple[TlsStream, TlsInfo]:
    """The handshake, blocking (the socket's timeout applies to each read)."""
    context = ssl.create_default_context()
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname=name if (send_sni or not insecure) else None)
    try:
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                sock.sendall(outgoing.read())
            data = sock.recv(TLS_READ_SIZE)
            if not data:
                raise ConnectionError("the server closed the connection")
            incoming.write(data)
        sock.sendall(outgoing.read())  # our Finished
    except (ssl.SSLError, OSError) as exc:
        with contextlib.suppress(OSError):
            sock.sendall(outgoing.read())  # OpenSSL's alert, which tells the server why
        sock.close()
        if isinstance(exc, ssl.SSLCertVerificationError):
            reason = exc.verify_message or exc.reason
            raise TlsError(f"TLS certificate verification failed: {reason} (--insecure to connect anyway)") from None
        reason = getattr(exc, "reason", None) or str(exc)
        raise TlsError(f"TLS handshake failed: {reason}") from None
    return TlsStream(sock, tls, incoming, outgoing), _tls_info(tls, verified=not insecure)


def _tls_info(sock: ssl.SSLObject, verified: bool) -> TlsInfo:
    cipher = sock.cipher()
    certificate = sock.getpeercert() if verified else None
    if certificate:
        # the stub types every field alike; these two are always sequences of RDNs
        subject = _name(cast(_Names, certificate.get("subject", ())))
        issuer = _name(cast(_Names, certificate.get("issuer", ())))
    else:  # unverified: the ssl module does not decode it; identify it instead
        der = sock.getpeercert(binary_form=True) or b""
        subject = "SHA-256 " + hashlib.sha256(der).hexdigest() if der else "no certificate"
        issuer = "not verified"
    return TlsInfo(sock.version() or "?", cipher[0] if cipher else "?", subject, issuer, verified)


def _name(rdns: _Names) -> str:
    """A certificate's name as visible text: it is the server's to choose."""
    return visible(", ".join(f"{key}={value}" for rdn in rdns for key, value in rdn))
