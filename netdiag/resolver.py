"""Forward and reverse lookups through the system resolver, with deadlines.

Everything goes through getaddrinfo/gethostbyaddr, so answers are what every
other program on the host sees (nsswitch.conf, /etc/hosts, resolv.conf).
"""

from __future__ import annotations

import errno
import ipaddress
import socket
import time
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import wait
from dataclasses import dataclass, field

from netdiag import nss, workers
from netdiag.errors import ResolveError
from netdiag.models import DnsAnswer, DnsOutcome, ForwardAnswer, ReverseAnswer
from netdiag.workers import TimedOut, iter_with_deadline

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

HOSTS_PATH = "/etc/hosts"
NSSWITCH_PATH = "/etc/nsswitch.conf"
DEFAULT_TIMEOUT = 3.0

# What applications see: names encoded with IDNA2008 (as getent ahosts and dig
# +idnin do; Python's own codec is IDNA2003) and the canonical name decoded back.
_FORWARD_FLAGS = socket.AI_CANONNAME | nss.AI_IDN | nss.AI_CANONIDN
_FAMILIES = (socket.AF_INET, socket.AF_INET6)
_ANSWER_MARGIN_S = 0.1

_GAI_OUTCOMES = {
    socket.EAI_NONAME: DnsOutcome.NXDOMAIN,
    getattr(socket, "EAI_NODATA", socket.EAI_NONAME): DnsOutcome.NO_DATA,
}
_HERROR_NO_PTR = {1, 4}  # HOST_NOT_FOUND, NO_DATA; 2 TRY_AGAIN and 3 NO_RECOVERY are failures


@dataclass(frozen=True)
class HostsFile:
    """What /etc/hosts says, when nsswitch.conf consults it: its answers
    override DNS where ``files`` comes first."""

    by_name: Mapping[str, frozenset[IPAddress]] = field(default_factory=dict)
    by_address: Mapping[IPAddress, frozenset[str]] = field(default_factory=dict)

    @classmethod
    def parse(cls, lines: Iterable[str]) -> HostsFile:
        by_name: dict[str, set[IPAddress]] = {}
        by_address: dict[IPAddress, set[str]] = {}
        for line in lines:
            fields = line.split("#", 1)[0].split()
            if len(fields) < 2:
                continue
            try:
                address = ipaddress.ip_address(fields[0].split("%")[0])
            except ValueError:
                continue
            for name in fields[1:]:
                by_name.setdefault(_norm(name), set()).add(address)
                by_address.setdefault(address, set()).add(_norm(name))
        return cls({k: frozenset(v) for k, v in by_name.items()}, {k: frozenset(v) for k, v in by_address.items()})

    @classmethod
    def load(cls, path: str = HOSTS_PATH, nsswitch: str = NSSWITCH_PATH) -> HostsFile:
        if not _hosts_file_consulted(nsswitch):
            return cls()
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                return cls.parse(f)
        except OSError:
            return cls()

    def answered(self, name: str, addresses: Iterable[str]) -> bool:
        """Did the hosts file give this answer? Its name, and only its addresses
        (so with ``hosts: dns files`` a name DNS knows is DNS's answer)."""
        listed = self.by_name.get(_norm(name), frozenset())
        return bool(listed) and all(_plain(a) in listed for a in addresses)

    def names(self, address: IPAddress, ptr: str) -> bool:
        return _norm(ptr) in self.by_address.get(address, ())


def _hosts_file_consulted(nsswitch: str) -> bool:
    """Does the ``hosts:`` line of nsswitch.conf list ``files`` (or is there none)?"""
    try:
        with open(nsswitch, encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, services = line.split("#", 1)[0].partition(":")
                if key.strip() == "hosts":
                    return "files" in services.split()
    except OSError:
        pass
    return True  # glibc's default without nsswitch.conf: dns [!UNAVAIL=return] files


def _norm(name: str) -> str:
    return name.lower().rstrip(".")


def _plain(address: str) -> IPAddress:
    return ipaddress.ip_address(address.partition("%")[0])


def lookup(query: str, hosts: HostsFile | None = None, timeout: float = DEFAULT_TIMEOUT) -> DnsAnswer:
    """Resolve one query: an address is looked up in reverse, a name forward.
    Never raises: whatever the query, the answer says what happened."""
    hosts = hosts or HostsFile()
    deadline = time.monotonic() + timeout
    try:
        address = ipaddress.ip_address(query)
    except ValueError:
        return _forward(query, hosts, deadline)
    return _reverse(address, query, hosts)


def _forward(name: str, hosts: HostsFile, deadline: float) -> DnsAnswer:
    start = time.perf_counter()
    try:
        encoded = name.encode()
    except UnicodeError:  # an undecodable byte from argv or a file
        return ForwardAnswer(name, DnsOutcome.FAILURE, _ms_since(start), detail="not a valid name")
    try:
        infos = socket.getaddrinfo(encoded, None, type=socket.SOCK_STREAM, flags=_FORWARD_FLAGS)
    except socket.gaierror as exc:
        return ForwardAnswer(name, _gai_outcome(exc), _ms_since(start), detail=exc.strerror)
    except (UnicodeError, ValueError):  # NUL byte, canonical name that is not UTF-8
        return ForwardAnswer(name, DnsOutcome.FAILURE, _ms_since(start), detail="not a valid name")
    elapsed = _ms_since(start)
    canonical = next((info[3] for info in infos if info[3]), name)
    addresses = tuple(dict.fromkeys(str(info[4][0]) for info in infos))  # str: an IPv4 or IPv6 address
    from_hosts = hosts.answered(name, addresses)
    chain: list[str] = []
    if _key(name) != _key(canonical) or from_hosts:  # a CNAME chain, or a hosts line's other names
        chain = _chain(name, addresses, deadline)
    return ForwardAnswer(
        name, DnsOutcome.OK, elapsed, canonical=canonical,
        aliases=_aliases(name, chain, canonical), addresses=addresses, source="hosts" if from_hosts else "dns",
    )  # fmt: skip


def _chain(name: str, addresses: Iterable[str], deadline: float) -> list[str]:
    """The aliases gethostbyname2 reports, for each family with addresses;
    left out if not known in time for the answer to meet the deadline."""
    ascii_name = nss.to_ascii(name)
    if ascii_name is None:
        return []
    families = {socket.AF_INET6 if ":" in a else socket.AF_INET for a in addresses}
    lookups = [workers.call_soon(nss.aliases, ascii_name, family) for family in _FAMILIES if family in families]
    wait(lookups, timeout=max(0.0, deadline - _ANSWER_MARGIN_S - time.monotonic()))
    return [alias for f in lookups if f.done() and not f.exception() for alias in f.result() or ()]


def _aliases(name: str, chain: Iterable[str], canonical: str) -> tuple[str, ...]:
    """The names before the canonical one, each once however it is spelled
    (``Www.Lab.Test.`` is ``www.lab.test``; ``bücher`` is ``xn--bcher-kva``)."""
    seen = {_key(canonical)}
    found = []
    for alias in (name, *chain):
        if (key := _key(alias)) not in seen:
            seen.add(key)
            found.append(alias)
    return tuple(found)


def _key(name: str) -> str:
    encoded = nss.to_ascii(name)
    return _norm(encoded.decode() if encoded else name)


def _reverse(address: IPAddress, query: str, hosts: HostsFile) -> DnsAnswer:
    start = time.perf_counter()
    mapped = _embedded_ipv4(address)
    try:
        ptr, aliases = _ptr(query)
    except socket.herror as exc:
        outcome = DnsOutcome.NO_PTR if exc.errno in _HERROR_NO_PTR else DnsOutcome.FAILURE
        return ReverseAnswer(query, outcome, _ms_since(start), detail=exc.strerror)
    except socket.gaierror as exc:
        outcome = DnsOutcome.NO_PTR if exc.errno == socket.EAI_NONAME else DnsOutcome.FAILURE
        return ReverseAnswer(query, outcome, _ms_since(start), detail=exc.strerror)
    except OSError as exc:
        return ReverseAnswer(query, DnsOutcome.FAILURE, _ms_since(start), detail=exc.strerror or str(exc))
    except (UnicodeError, ValueError):
        return ReverseAnswer(query, DnsOutcome.FAILURE, _ms_since(start), detail="PTR name is not valid UTF-8")
    elapsed = _ms_since(start)
    return ReverseAnswer(
        query, DnsOutcome.OK, elapsed, ptr=ptr, aliases=tuple(aliases),
        confirmed=forward_confirms(ptr, mapped or address),
        source="hosts" if not mapped and hosts.names(address, ptr) else "dns",
    )  # fmt: skip


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address inside a v4-mapped or (deprecated) v4-compatible one,
    which the resolver looks up as that IPv4 address."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped:
        return address.ipv4_mapped
    n = int(address)
    return ipaddress.IPv4Address(n) if n >> 32 == 0 and n > 1 else None


def _ptr(address: str) -> tuple[str, list[str]]:
    """The PTR name and aliases, through gethostbyaddr; for the addresses
    Python's gethostbyaddr refuses (v4-mapped ``::ffff:a.b.c.d``,
    v4-compatible ``::a.b.c.d``), through getnameinfo, which asks as getent
    does (without aliases)."""
    try:
        ptr, aliases, _ = socket.gethostbyaddr(address)
    except (socket.herror, socket.gaierror):
        raise
    except OSError as exc:
        if exc.errno != errno.EAFNOSUPPORT:
            raise
        return socket.getnameinfo((address, 0), socket.NI_NAMEREQD)[0], []
    return ptr, aliases


def ptr_name(address: str) -> str | None:
    """The PTR name of an address, or None (no name, or the lookup failed)."""
    try:
        return _ptr(address)[0]
    except (OSError, UnicodeError, ValueError):
        return None


def forward_confirms(name: str, address: IPAddress) -> bool:
    """FCrDNS: does ``name`` resolve back to ``address``?"""
    try:
        infos = socket.getaddrinfo(name.encode(), None, type=socket.SOCK_STREAM, flags=nss.AI_IDN)
    except (OSError, UnicodeError, ValueError):
        return False
    return any(_plain(str(info[4][0])) == address for info in infos)


def _gai_outcome(exc: socket.gaierror) -> DnsOutcome:
    return _GAI_OUTCOMES.get(exc.errno, DnsOutcome.FAILURE)


def _ms_since(start: float) -> float:
    return (time.perf_counter() - start) * 1000


def lookup_many(
    queries: list[str], timeout: float = DEFAULT_TIMEOUT, hosts: HostsFile | None = None
) -> Iterator[DnsAnswer]:
    """Resolve queries concurrently, yielding answers as they complete; every
    query still unanswered ``timeout`` seconds after the start yields TIMEOUT."""
    hosts = hosts or HostsFile.load()
    # A thread per query (up to 256; another while a CNAME chain is looked up):
    # one stuck on a slow server holds no other.
    for query, answer in iter_with_deadline(lambda q: lookup(q, hosts, timeout), queries, timeout, workers=256):
        if isinstance(answer, TimedOut):
            kind = ForwardAnswer if _is_name(query) else ReverseAnswer
            yield kind(query, DnsOutcome.TIMEOUT, timeout * 1000, detail=answer.reason(timeout))
        else:
            yield answer


def _is_name(query: str) -> bool:
    try:
        ipaddress.ip_address(query)
    except ValueError:
        return True
    return False


def resolve_addresses(name: str, family: int = socket.AF_UNSPEC) -> list[IPAddress]:
    """Addresses for a target name, for sweeps and connections; ResolveError if none."""
    try:
        infos = socket.getaddrinfo(name.encode(), None, family=family, type=socket.SOCK_STREAM, flags=nss.AI_IDN)
    except socket.gaierror as exc:
        outcome = _gai_outcome(exc)
        detail = f": {exc.strerror}" if outcome is DnsOutcome.FAILURE else ""
        raise ResolveError(f"{name}: {outcome.message}{detail}") from None
    except (UnicodeError, ValueError):
        raise ResolveError(f"{name}: not a valid name") from None
    return list(dict.fromkeys(ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos))
