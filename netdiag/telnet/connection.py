"""Opening the TCP (and TLS) connection: every resolved address in turn.

OS error numbers become the project's typed errors here, at the boundary.
"""

from __future__ import annotations

import errno
import hashlib
import ipaddress
import socket
import ssl
from dataclasses import dataclass

from netdiag import outcomes
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
from netdiag.targets import HostName, parse_target


@dataclass(frozen=True)
class TlsInfo:
    version: str
    cipher: str
    subject: str  # or the certificate's fingerprint when it was not verified
    issuer: str
    verified: bool


@dataclass
class Connection:
    sock: socket.socket  # an ssl.SSLSocket with --tls
    host: str
    address: str
    port: int
    tls: TlsInfo | None = None


def check_host(host: str) -> tuple[str, bool]:
    """Validate HOST: a name or an address (``[v6]`` allowed). (host, is_address)."""
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        ipaddress.ip_address(bare.split("%", 1)[0])
        return bare, True
    except ValueError:
        pass
    try:
        target = parse_target(bare)
    except BadInput:
        raise BadInput(f"{host!r} is not a host name or address") from None
    if not isinstance(target, HostName):
        raise BadInput(f"{host!r} is a network or range, not one host")
    return bare, False


def open_connection(
    host: str,
    port: int,
    *,
    family: int = socket.AF_UNSPEC,
    timeout: float = 10.0,
    tls: bool = False,
    insecure: bool = False,
    server_name: str | None = None,
    on_attempt=None,
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
        if on_attempt:
            on_attempt(sockaddr[0])
        sock = socket.socket(af, kind, proto)
        sock.settimeout(timeout)
        try:
            sock.connect(sockaddr)
        except OSError as exc:
            sock.close()
            failures.append(_connect_error(exc, sockaddr[0], port, timeout))
            continue
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        info = None
        if tls:
            name = server_name or (None if is_address else host)
            sock, info = _start_tls(sock, name or host, insecure, timeout, send_sni=bool(name))
        sock.setblocking(False)
        return Connection(sock, host, sockaddr[0], port, info)
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


def _start_tls(sock: socket.socket, name: str, insecure: bool, timeout: float, send_sni: bool):
    context = ssl.create_default_context()
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    try:
        wrapped = context.wrap_socket(sock, server_hostname=name if (send_sni or not insecure) else None)
    except ssl.SSLCertVerificationError as exc:
        sock.close()
        reason = exc.verify_message or exc.reason
        raise TlsError(f"TLS certificate verification failed: {reason} (--insecure to connect anyway)") from None
    except (ssl.SSLError, OSError) as exc:
        sock.close()
        reason = getattr(exc, "reason", None) or str(exc)
        raise TlsError(f"TLS handshake failed: {reason}") from None
    return wrapped, _tls_info(wrapped, verified=not insecure)


def _tls_info(sock: ssl.SSLSocket, verified: bool) -> TlsInfo:
    cipher = sock.cipher()
    certificate = sock.getpeercert() if verified else None
    if certificate:
        subject = _name(certificate.get("subject", ()))
        issuer = _name(certificate.get("issuer", ()))
    else:  # unverified: the ssl module does not decode it; identify it instead
        der = sock.getpeercert(binary_form=True) or b""
        subject = "SHA-256 " + hashlib.sha256(der).hexdigest() if der else "no certificate"
        issuer = "not verified"
    return TlsInfo(sock.version() or "?", cipher[0] if cipher else "?", subject, issuer, verified)


def _name(rdns) -> str:
    return ", ".join(f"{key}={value}" for rdn in rdns for key, value in rdn)
