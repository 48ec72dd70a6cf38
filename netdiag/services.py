"""Port and service name lookups through the system services database.

Lookups call the C library's getservbyname_r/getservbyport_r (netdiag.nss)
and report the entry they return, with its own name and aliases: the answers
of ``getent services`` (the first matching entry; names and protocols compared
exactly, as written). Python's socket module gives back only the port or the
name, from functions that share a static buffer (python/cpython#74667); the _r
functions are thread-safe. Walking the database with getservent is not: that
holds a lock.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable

from netdiag import nss
from netdiag.errors import BadInput, CannotRun
from netdiag.models import ServiceAnswer, ServiceEntry

COMMON_PROTOCOLS = ("tcp", "udp")  # always asked for, even if the database cannot be listed
SERVICES_FILE = "/etc/services"

# Split at the first '/' as getent does: a protocol may be any string (even empty).
_QUERY = re.compile(r"(?P<what>[^/\s]+)(?:/(?P<proto>\S*))?")
_SIGNED_NUMBER = re.compile(r"[+-]\d+")
_UNDECODABLE = re.compile("[\udc80-\udcff]")  # argv bytes Python could not decode (PEP 383)


class MalformedQuery(BadInput):
    pass


def parse_query(text: str, proto: str | None = None) -> tuple[str | int, str | None]:
    """``ssh``, ``22``, ``53/udp`` → (name or port, protocol or None for any)."""
    query = _printable(text)  # " ssh" is no key of the database (getent finds nothing either)
    match = _QUERY.fullmatch(query)
    if not match:
        raise MalformedQuery(f"{text!r}: expected NAME, PORT, NAME/PROTO or PORT/PROTO")
    what, suffix = match["what"], match["proto"]
    if suffix is not None:
        if proto is not None and proto != suffix:
            raise MalformedQuery(f"{text!r}: conflicts with --proto {proto}")
        proto = suffix
    if what.isascii() and what.isdigit():  # as getent: digits are a port, anything else a name
        port = int(what)
        if port > 65535:
            raise MalformedQuery(f"{text!r}: port must be between 0 and 65535")
        return port, proto
    if what.isdigit():  # '²', '٣': int() would take some of them, C never does
        raise MalformedQuery(f"{text!r}: a port is written with the digits 0-9")
    if _SIGNED_NUMBER.fullmatch(what):
        raise MalformedQuery(f"{text!r}: port must be between 0 and 65535, without a sign")
    return what, proto


def _printable(text: str) -> str:
    """The text, or MalformedQuery: no name in the database has control or undecodable characters,
    and C would stop at a NUL (``ssh\\0junk`` would find ssh)."""
    if _UNDECODABLE.search(text):
        shown = _UNDECODABLE.sub(lambda m: f"\\x{ord(m[0]) - 0xDC00:02x}", text)
        raise MalformedQuery(f"'{shown}': not a name or port (bytes that are not valid text)")
    if not text.strip().isprintable():
        raise MalformedQuery(f"{text!r}: not a name or port (unprintable characters)")
    return text


def port_number(text: str, proto: str = "tcp") -> int:
    """A port given as a number or a service name (``smtp``); BadInput if neither."""
    what, protocol = parse_query(text)
    if protocol not in (None, proto):
        raise BadInput(f"{text!r}: a {proto} port is needed here, not {protocol}")
    if isinstance(what, int):
        return what
    entry = _find(what, proto)
    if entry is None:
        raise BadInput(f"unknown service {what!r} for {proto}")
    return entry.port


def lookup(text: str, proto: str | None = None) -> ServiceAnswer:
    """Answer one query; malformed queries come back with ``malformed`` set.

    With a protocol: the entry the C library finds for it. Without: the entry
    it finds for any protocol (what ``getent services`` answers), then the one
    for each other protocol of the database, one row per protocol."""
    try:
        what, protocol = parse_query(text, proto)
    except MalformedQuery as exc:
        return ServiceAnswer(text, (), str(exc), malformed=True)
    if protocol is not None:
        entry = _find(what, protocol)
        entries = [entry] if entry else []
    else:
        entries = _every_protocol(what)
    if entries:
        return ServiceAnswer(text, tuple(entries), None)
    if protocol is not None and protocol not in protocols():
        return ServiceAnswer(text, (), f"{text!r}: {_unknown_protocol(protocol)}", malformed=True)
    kind = "port" if isinstance(what, int) else "service"
    where = "" if protocol is None else f" for {protocol}"
    return ServiceAnswer(text, (), f"no {kind} {what}{where} in the services database")


def _every_protocol(what: str | int) -> list[ServiceEntry]:
    first = _find(what, None)
    if first is None:
        return []
    found = {first.protocol: first}
    for protocol in protocols():
        if protocol not in found and (entry := _find(what, protocol)):
            found[protocol] = entry
    return list(found.values())


@functools.cache
def protocols() -> tuple[str, ...]:
    """tcp, udp, then every other protocol of the database in the order it first appears."""
    return tuple(dict.fromkeys((*COMMON_PROTOCOLS, *(e.protocol for e in database()))))


def check_protocol(proto: str) -> str:
    """A protocol as ``--proto`` gives it: BadInput unless some entry uses it (exactly: case counts)."""
    if proto not in protocols():
        raise BadInput(f"--proto: {_unknown_protocol(proto)}")
    return proto


def _unknown_protocol(proto: str) -> str:
    return f"unknown protocol {proto!r} (the services database has {', '.join(map(repr, protocols()))})"


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
def port_names(proto: str) -> dict[int, str]:
    """Port → the service name ``netdiag service PORT/PROTO`` shows for it (the
    database's first entry for that port), for every port at once: one walk of
    the database, where a lookup per port would read it through again each time."""
    names: dict[int, str] = {}
    for entry in database():
        if entry.protocol == proto:
            names.setdefault(entry.port, entry.name)
    return names


@functools.cache
def database() -> tuple[ServiceEntry, ...]:
    """Every entry of the services database (NSS via getservent, else the file)."""
    entries = _getservent_all()
    if not entries:  # no getservent, or one that lists nothing (musl's)
        try:
            with open(SERVICES_FILE, encoding="utf-8", errors="replace") as f:
                entries = list(parse_services(f))
        except OSError:
            entries = []
    return tuple(dict.fromkeys(entries))  # NSS may list a service from several sources


def parse_services(lines: Iterable[str]) -> Iterable[ServiceEntry]:
    """Parse services(5) text: ``name port/proto [aliases] [# comment]``."""
    for line in lines:
        fields = line.split("#", 1)[0].split()
        if len(fields) < 2 or "/" not in fields[1]:
            continue
        port_text, _, protocol = fields[1].partition("/")
        if not port_text.isdigit() or int(port_text) > 65535:
            continue
        yield ServiceEntry(fields[0], int(port_text), protocol, tuple(fields[2:]))


def _find(what: str | int, protocol: str | None) -> ServiceEntry | None:
    """The entry getservbyname/getservbyport returns (None: any protocol)."""
    if nss.libc() is None:
        raise CannotRun("the C library's getservbyname_r is not available here")
    found = nss.service(what, protocol)
    return None if found is None else ServiceEntry(*found)


def _getservent_all() -> list[ServiceEntry] | None:
    """Walk the database with libc's getservent (honours nsswitch.conf)."""
    entries = nss.services()
    return None if entries is None else [ServiceEntry(*fields) for fields in entries]
