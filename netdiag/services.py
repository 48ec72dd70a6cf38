"""Port and service name lookups through the system services database.

CPython's getservbyname/getservbyport wrap C functions that return a static
buffer (python/cpython#74667), so every call here holds one lock: the module
is safe to use from the sweeper's and listener's threads.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import re
import socket
import threading
from collections.abc import Iterable

from netdiag.errors import BadInput
from netdiag.models import ServiceAnswer, ServiceEntry

PROTOCOLS = ("tcp", "udp")
SERVICES_FILE = "/etc/services"

_lock = threading.Lock()
_QUERY = re.compile(r"(?P<what>[^/\s]+)(?:/(?P<proto>[^/\s]*))?")


class MalformedQuery(BadInput):
    pass


def parse_query(text: str, proto: str | None = None) -> tuple[str | int, tuple[str, ...]]:
    """``ssh``, ``22``, ``53/udp`` → (name or port, protocols to ask)."""
    match = _QUERY.fullmatch(text.strip())
    if not match:
        raise MalformedQuery(f"{text!r}: expected NAME, PORT, NAME/PROTO or PORT/PROTO")
    what, suffix = match["what"], match["proto"]
    if suffix is not None:
        if suffix.lower() not in PROTOCOLS:
            raise MalformedQuery(f"{text!r}: unknown protocol {suffix!r} (use tcp or udp)")
        if proto and proto != suffix.lower():
            raise MalformedQuery(f"{text!r}: conflicts with --proto {proto}")
        protocols: tuple[str, ...] = (suffix.lower(),)
    else:
        protocols = (proto,) if proto else PROTOCOLS
    if what.isdigit():
        port = int(what)
        if port > 65535:
            raise MalformedQuery(f"{text!r}: port must be between 0 and 65535")
        return port, protocols
    if what.startswith("-") and what[1:].isdigit():
        raise MalformedQuery(f"{text!r}: port must be between 0 and 65535")
    return what, protocols


def port_number(text: str, proto: str = "tcp") -> int:
    """A port given as a number or a service name (``smtp``); BadInput if neither."""
    what, _ = parse_query(text, proto)
    if isinstance(what, int):
        return what
    with _lock:
        try:
            return socket.getservbyname(what, proto)
        except OSError:
            raise BadInput(f"unknown service {what!r} for {proto}") from None


def lookup(text: str, proto: str | None = None) -> ServiceAnswer:
    """Answer one query; malformed queries come back with ``malformed`` set."""
    try:
        what, protocols = parse_query(text, proto)
    except MalformedQuery as exc:
        return ServiceAnswer(text, (), str(exc), malformed=True)
    entries = []
    for protocol in protocols:
        with _lock:
            try:
                if isinstance(what, int):
                    port, name = what, socket.getservbyport(what, protocol)
                else:
                    port = socket.getservbyname(what, protocol)
                    name = socket.getservbyport(port, protocol)  # canonical name of an alias
            except (OSError, OverflowError):
                continue
        entries.append(ServiceEntry(name, port, protocol, _aliases().get((name, protocol), ())))
    if entries:
        return ServiceAnswer(text, tuple(entries), None)
    where = "/".join(protocols)
    kind = "port" if isinstance(what, int) else "service"
    return ServiceAnswer(text, (), f"no {kind} {what} for {where} in the services database")


def list_services(grep: str | None = None, proto: str | None = None) -> list[ServiceEntry]:
    """The whole database, sorted by port then protocol, optionally filtered."""
    needle = grep.lower() if grep else None
    found = []
    for entry in database():
        if proto and entry.protocol != proto:
            continue
        if needle and not any(needle in n.lower() for n in (entry.name, *entry.aliases, str(entry.port))):
            continue
        found.append(entry)
    return sorted(found, key=lambda e: (e.port, e.protocol, e.name))


@functools.cache
def database() -> tuple[ServiceEntry, ...]:
    """Every entry of the services database (NSS via getservent, else the file)."""
    entries = _getservent_all()
    if entries is None:
        try:
            with open(SERVICES_FILE, encoding="utf-8", errors="replace") as f:
                entries = list(parse_services(f))
        except OSError:
            entries = []
    return tuple(dict.fromkeys(entries))  # NSS may list a service from several sources


@functools.cache
def _aliases() -> dict[tuple[str, str], tuple[str, ...]]:
    return {(e.name, e.protocol): e.aliases for e in database()}


def parse_services(lines: Iterable[str]) -> Iterable[ServiceEntry]:
    """Parse services(5) text: ``name port/proto [aliases] [# comment]``."""
    for line in lines:
        fields = line.split("#", 1)[0].split()
        if len(fields) < 2 or "/" not in fields[1]:
            continue
        port_text, _, protocol = fields[1].partition("/")
        if not port_text.isdigit() or int(port_text) > 65535:
            continue
        yield ServiceEntry(fields[0], int(port_text), protocol.lower(), tuple(fields[2:]))


class _Servent(ctypes.Structure):
    _fields_ = [
        ("s_name", ctypes.c_char_p),
        ("s_aliases", ctypes.POINTER(ctypes.c_char_p)),
        ("s_port", ctypes.c_int),
        ("s_proto", ctypes.c_char_p),
    ]


def _getservent_all() -> list[ServiceEntry] | None:
    """Walk the database with libc's getservent (honours nsswitch.conf)."""
    path = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(path)
        getservent = libc.getservent
    except (OSError, AttributeError, TypeError):
        return None
    getservent.restype = ctypes.POINTER(_Servent)
    entries = []
    with _lock:
        libc.setservent(1)
        try:
            while entry := getservent():
                e = entry.contents
                aliases = []
                i = 0
                while e.s_aliases and e.s_aliases[i]:
                    aliases.append(e.s_aliases[i].decode(errors="replace"))
                    i += 1
                entries.append(
                    ServiceEntry(
                        e.s_name.decode(errors="replace"),
                        socket.ntohs(e.s_port & 0xFFFF),
                        e.s_proto.decode(errors="replace"),
                        tuple(aliases),
                    )
                )
        finally:
            libc.endservent()
    return entries
