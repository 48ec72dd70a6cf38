"""Forward and reverse lookups through the system resolver, with deadlines.

Everything goes through getaddrinfo/gethostbyaddr, so answers are what every
other program on the host sees (nsswitch.conf, /etc/hosts, resolv.conf).
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from netdiag.errors import ResolveError
from netdiag.models import DnsAnswer, DnsOutcome
from netdiag.workers import TIMED_OUT, iter_with_deadline

HOSTS_PATH = "/etc/hosts"
DEFAULT_TIMEOUT = 3.0

_GAI_OUTCOMES = {
    socket.EAI_NONAME: DnsOutcome.NXDOMAIN,
    getattr(socket, "EAI_NODATA", socket.EAI_NONAME): DnsOutcome.NO_DATA,
}
_HERROR_NO_PTR = {1, 4}  # HOST_NOT_FOUND, NO_DATA; 2 TRY_AGAIN and 3 NO_RECOVERY are failures


@dataclass(frozen=True)
class HostsFile:
    """Names and addresses /etc/hosts lists: they override DNS."""

    names: frozenset[str] = frozenset()
    addresses: frozenset[ipaddress.IPv4Address | ipaddress.IPv6Address] = frozenset()

    @classmethod
    def parse(cls, lines: Iterable[str]) -> HostsFile:
        names, addresses = set(), set()
        for line in lines:
            fields = line.split("#", 1)[0].split()
            if len(fields) < 2:
                continue
            try:
                addresses.add(ipaddress.ip_address(fields[0].split("%")[0]))
            except ValueError:
                continue
            names.update(_norm(name) for name in fields[1:])
        return cls(frozenset(names), frozenset(addresses))

    @classmethod
    def load(cls, path: str = HOSTS_PATH) -> HostsFile:
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                return cls.parse(f)
        except OSError:
            return cls()


def _norm(name: str) -> str:
    return name.lower().rstrip(".")


def lookup(query: str, hosts: HostsFile | None = None) -> DnsAnswer:
    """Resolve one query: an address is looked up in reverse, a name forward."""
    hosts = hosts or HostsFile()
    try:
        address = ipaddress.ip_address(query)
    except ValueError:
        return _forward(query, hosts)
    return _reverse(address, query, hosts)


def _forward(name: str, hosts: HostsFile) -> DnsAnswer:
    start = time.perf_counter()
    try:
        infos = socket.getaddrinfo(name, None, type=socket.SOCK_STREAM, flags=socket.AI_CANONNAME)
    except socket.gaierror as exc:
        return DnsAnswer(name, "forward", _gai_outcome(exc), _ms_since(start), detail=exc.strerror)
    except UnicodeError:
        return DnsAnswer(name, "forward", DnsOutcome.FAILURE, _ms_since(start), detail="not a valid name")
    elapsed = _ms_since(start)
    canonical = next((info[3] for info in infos if info[3]), name)
    addresses = tuple(dict.fromkeys(info[4][0] for info in infos))
    source = "hosts" if _norm(name) in hosts.names else "dns"
    return DnsAnswer(
        name, "forward", DnsOutcome.OK, elapsed, canonical=canonical,
        aliases=_aliases(name, canonical), addresses=addresses, source=source,
    )  # fmt: skip


def _aliases(name: str, canonical: str) -> tuple[str, ...]:
    """The CNAME chain (IPv4 resolver only: getaddrinfo does not report it)."""
    try:
        _, aliases, _ = socket.gethostbyname_ex(name)
    except (OSError, UnicodeError):
        aliases = []
    names = [n for n in (name, *aliases) if _norm(n) != _norm(canonical)]
    return tuple(dict.fromkeys(names))


def _reverse(address, query: str, hosts: HostsFile) -> DnsAnswer:
    start = time.perf_counter()
    source = "hosts" if address in hosts.addresses else "dns"
    try:
        ptr, aliases, _ = socket.gethostbyaddr(str(address))
    except socket.herror as exc:
        outcome = DnsOutcome.NO_PTR if exc.errno in _HERROR_NO_PTR else DnsOutcome.FAILURE
        return DnsAnswer(query, "reverse", outcome, _ms_since(start), detail=exc.strerror)
    except socket.gaierror as exc:
        return DnsAnswer(query, "reverse", DnsOutcome.FAILURE, _ms_since(start), detail=exc.strerror)
    elapsed = _ms_since(start)
    return DnsAnswer(
        query, "reverse", DnsOutcome.OK, elapsed, ptr=ptr, aliases=tuple(aliases),
        confirmed=forward_confirms(ptr, address), source=source,
    )  # fmt: skip


def ptr_name(address: str) -> str | None:
    """The PTR name of an address, or None (no name, or the lookup failed)."""
    try:
        return socket.gethostbyaddr(address)[0]
    except (OSError, UnicodeError):
        return None


def forward_confirms(name: str, address) -> bool:
    """FCrDNS: does ``name`` resolve back to ``address``?"""
    try:
        infos = socket.getaddrinfo(name, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return False
    return any(ipaddress.ip_address(info[4][0].split("%")[0]) == address for info in infos)


def _gai_outcome(exc: socket.gaierror) -> DnsOutcome:
    return _GAI_OUTCOMES.get(exc.errno, DnsOutcome.FAILURE)


def _ms_since(start: float) -> float:
    return (time.perf_counter() - start) * 1000


def lookup_many(
    queries: list[str], timeout: float = DEFAULT_TIMEOUT, hosts: HostsFile | None = None
) -> Iterator[DnsAnswer]:
    """Resolve queries concurrently, yielding answers as they complete; a query
    still unanswered ``timeout`` seconds after it started yields TIMEOUT."""
    hosts = hosts or HostsFile.load()
    for query, answer in iter_with_deadline(lambda q: lookup(q, hosts), queries, timeout):
        if answer is TIMED_OUT:
            kind = "forward" if _is_name(query) else "reverse"
            yield DnsAnswer(query, kind, DnsOutcome.TIMEOUT, timeout * 1000, detail=f"no answer within {timeout:g}s")
        else:
            yield answer


def _is_name(query: str) -> bool:
    try:
        ipaddress.ip_address(query)
    except ValueError:
        return True
    return False


def resolve_addresses(name: str, family: int = socket.AF_UNSPEC) -> list:
    """Addresses for a target name, for sweeps and connections; ResolveError if none."""
    try:
        infos = socket.getaddrinfo(name, None, family=family, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        outcome = _gai_outcome(exc)
        detail = f": {exc.strerror}" if outcome is DnsOutcome.FAILURE else ""
        raise ResolveError(f"{name}: {outcome.message}{detail}") from None
    except UnicodeError:
        raise ResolveError(f"{name}: not a valid name") from None
    return list(dict.fromkeys(ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos))
