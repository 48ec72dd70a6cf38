"""Target strings to lazy address iterators.

Accepted forms: an IPv4 or IPv6 address, a CIDR network (host bits allowed;
the usable hosts are swept, as ``fping -g`` does), a range ``A-B`` or ``A-N``
(last IPv4 octet, or last IPv6 group in hex), and a hostname. Nothing here
touches the network: hostnames are handed to a resolver the caller supplies.
"""

from __future__ import annotations

import bisect
import ipaddress
import re
import socket
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import NamedTuple, TextIO, TypeVar

from netdiag.errors import NetdiagError, TargetError
from netdiag.text import visible

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_ADDRESSES = 65_536  # a /16: larger blocks need --force
MAX_LISTED = 1 << 20  # targets from lists and stdin, even with --force: memory stays bounded
MAX_LINE = 4096  # characters in one line of a target list
_FORCE_HINT = "; add --force to sweep them"

# The numbers-and-dots forms inet_aton reads; ipaddress takes only the dotted quad.
_INET_ATON = re.compile(r"[0-9][0-9a-fA-FxX.]*")
# Characters no resolver is asked about: whitespace and control characters.
_NOT_IN_NAMES = re.compile(r"[\x00-\x20\x7f-\x9f]")
MAX_NAME = 253  # a DNS name's limit, and more than any sane /etc/hosts line needs
T = TypeVar("T")


class Listed(NamedTuple):
    """A target's text and where it was listed: ``hosts.txt:3`` for a line of
    ``@hosts.txt``, ``stdin:2`` for ``-``, None for an argument."""

    text: str
    where: str | None = None

    def parse(self, parse: Callable[[str], T]) -> T:
        """``parse(text)``; a refusal says which file and line it is about."""
        try:
            return parse(self.text)
        except NetdiagError as exc:
            if self.where is None:
                raise
            raise type(exc)(f"{self.where}: {exc}") from None


@dataclass(frozen=True)
class AddressBlock:
    """A contiguous run of addresses, first to last inclusive."""

    first: IPAddress
    last: IPAddress
    source: str

    @property
    def version(self) -> int:
        return self.first.version

    @property
    def size(self) -> int:
        """Addresses in the block: an IPv6 /64 has 2**64, more than len() may return."""
        return int(self.last) - int(self.first) + 1

    def __iter__(self) -> Iterator[IPAddress]:
        make = type(self.first)
        return (make(n) for n in range(int(self.first), int(self.last) + 1))


@dataclass(frozen=True)
class HostName:
    """A name to resolve at sweep time."""

    name: str


@dataclass(frozen=True)
class LinkDiscovery:
    """``ff02::1%IFACE``: every host on a link, found by one multicast echo."""

    group: str
    interface: str
    source: str


Target = AddressBlock | HostName | LinkDiscovery


def parse_target(text: str, *, force: bool = False) -> Target:
    """Parse one target string; raise TargetError for anything else."""
    spec = text.strip()
    if not spec:
        raise TargetError("empty target")
    if "/" in spec and _parse_address(spec.rsplit("/", 1)[0]) is not None:
        block = _parse_network(spec)
    elif "-" in spec and _looks_like_range(spec):
        block = _parse_range(spec)
    else:
        address = _parse_address(spec)
        if address is None:
            return _parse_hostname(spec)
        if address.is_multicast:
            return _parse_discovery(address, spec)
        if isinstance(address, ipaddress.IPv6Address) and address.scope_id:
            raise TargetError(
                f"{spec}: an address with a zone is not swept (yet); ff02::1%{address.scope_id} finds that link's hosts"
            )
        if address.is_unspecified:  # ping reaches this host through it, raw sockets do not: say what is meant
            raise TargetError(f"{spec} is the unspecified address, not a host (this host is 127.0.0.1 or ::1)")
        block = AddressBlock(address, address, spec)
    if not force and block.size > MAX_ADDRESSES:
        raise TargetError(
            f"{spec}: {block.size:,} addresses is more than {MAX_ADDRESSES:,}; add --force to sweep it anyway"
        )
    return block


def _parse_address(text: str, *, strict: bool = False) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        pass
    if not strict and _INET_ATON.fullmatch(
        text
    ):  # 127.1, 127.001.0.1, 0x7f.1.0.1, 2130706433: as ping and fping read them
        try:
            return ipaddress.IPv4Address(socket.inet_aton(text))
        except OSError:
            return None
    return None


def _parse_discovery(address: IPAddress, spec: str) -> LinkDiscovery:
    scope = getattr(address, "scope_id", None)
    if address.version != 6 or not scope or int(address) >> 112 != 0xFF02:
        raise TargetError(
            f"{spec}: multicast is swept only as a link-local IPv6 group with its interface, e.g. ff02::1%eth0"
        )
    return LinkDiscovery(str(ipaddress.IPv6Address(int(address))), scope, spec)


def _parse_network(spec: str) -> AddressBlock:
    address, _, prefix = spec.rpartition("/")
    parsed = _parse_address(address)  # 127.1/30 as fping -g reads it
    try:
        network = ipaddress.ip_network(f"{parsed}/{prefix}" if parsed else spec, strict=False)
    except ValueError as exc:
        raise TargetError(f"{spec}: not a valid network ({exc})") from None
    first, last = network.network_address, network.broadcast_address
    if network.version == 4 and network.prefixlen < 31:
        first, last = first + 1, last - 1  # network and broadcast addresses
    elif network.version == 6 and network.prefixlen < 127:
        first += 1  # the subnet-router anycast address
    return AddressBlock(first, last, spec)


def _looks_like_range(spec: str) -> bool:
    start = spec.split("-", 1)[0]
    return _parse_address(start) is not None


def _parse_range(spec: str) -> AddressBlock:
    start_text, end_text = spec.split("-", 1)
    first = _parse_address(start_text)
    assert first is not None  # _looks_like_range checked it
    last = _parse_address(end_text, strict=True)  # else a last octet: 10.0.0.5-20
    if last is None:
        last = _range_end_from_suffix(first, end_text, spec)
    if last.version != first.version:
        raise TargetError(f"{spec}: range mixes IPv4 and IPv6")
    if last < first:  # type: ignore[operator]
        raise TargetError(f"{spec}: range ends before it starts")
    return AddressBlock(first, last, spec)


def _range_end_from_suffix(first: IPAddress, suffix: str, spec: str) -> IPAddress:
    """``10.0.0.5-20`` ends at 10.0.0.20; ``fd00::1-ff`` ends at fd00::ff."""
    bits, base = (8, 10) if first.version == 4 else (16, 16)
    digits = "0123456789" if base == 10 else "0123456789abcdefABCDEF"
    if not suffix or len(suffix) > 5 or any(c not in digits for c in suffix):
        part = "octet" if base == 10 else "group"
        raise TargetError(f"{spec}: range end must be an address or a last {part}")
    value = int(suffix, base)
    if value >= 1 << bits:
        raise TargetError(f"{spec}: range end {suffix} is out of range")
    mask = (1 << bits) - 1
    return type(first)((int(first) & ~mask) | value)


def _parse_hostname(spec: str) -> HostName:
    """Any other word is a name for the system resolver, as ping and fping take
    it: /etc/hosts may list names DNS would refuse (``[bold]evil[/bold].lab``)."""
    name = spec[:-1] if spec.endswith(".") else spec
    if len(name) > MAX_NAME:
        raise TargetError(f"{spec[:40]!r}...: a hostname has at most {MAX_NAME} characters")
    if (
        not name
        or "" in name.split(".")  # bad..name: no resolver takes an empty label
        or name.startswith("-")  # an option given after --, not a host
        or _NOT_IN_NAMES.search(name)
        or not name.isprintable()  # also a byte of another encoding from argv (a lone surrogate)
        or name.rsplit(".", 1)[-1].isdigit()  # 1.2.3.4.5 or 300.1.1.1: a broken address, not a name
    ):
        raise TargetError(f"{spec!r} is not an address, network, range or hostname")
    return HostName(name)


def parse_targets(
    texts: Iterable[str | Listed], *, force: bool = False, prepare: Callable[[str], str] | None = None
) -> list[Target]:
    """Parse every target string before anything is sent (``prepare`` first
    when given: a command's own rule, e.g. no ports here). The limit of
    MAX_ADDRESSES applies to the whole list, not to each target."""

    def parse(text: str) -> Target:
        return parse_target(prepare(text) if prepare else text, force=force)

    targets = [(text if isinstance(text, Listed) else Listed(text)).parse(parse) for text in texts]
    total = count_addresses(targets)
    if not force and total > MAX_ADDRESSES:
        raise TargetError(
            f"{len(targets):,} targets make {total:,} addresses, more than {MAX_ADDRESSES:,}; add --force to sweep them"
        )
    return targets


def read_target_lines(stream: TextIO | Iterable[str], name: str = "the target list") -> Iterator[Listed]:
    """Target strings from a list, each with its ``name:line``: whitespace
    separated, ``#`` comments. Lines are read at most MAX_LINE characters at
    a time: ``@/dev/zero`` is one endless line, and is refused, not read into
    memory."""
    for number, line in enumerate(bounded_lines(stream, name), 1):
        where = f"{name}:{number}"
        yield from (Listed(text, where) for text in line.split("#", 1)[0].split())


def bounded_lines(stream: TextIO | Iterable[str], name: str) -> Iterator[str]:
    """A list's lines, each read at most MAX_LINE characters at a time: a line
    longer is refused (``name:line``), never read into memory whole."""
    readline = getattr(stream, "readline", None)
    lines = iter(lambda: readline(MAX_LINE + 2), "") if readline else iter(stream)  # the line and its newline
    for number, line in enumerate(lines, 1):
        if len(line.rstrip("\r\n")) > MAX_LINE:
            raise TargetError(f"{name}:{number}: a line longer than {MAX_LINE:,} characters")
        yield line


def expand_arguments(
    arguments: Iterable[str], open_list: Callable[[str], TextIO | Iterable[str]], *, limit: int = MAX_LISTED
) -> list[Listed]:
    """Replace ``@FILE`` and ``-`` arguments with the targets listed in them
    (each knowing its file and line); more than ``limit`` targets in all is
    refused as soon as it is seen."""
    arguments = list(arguments)
    if arguments.count("-") > 1:
        raise TargetError("- (stdin) is given twice: it can be read once")
    texts: list[Listed] = []
    for argument in arguments:
        if argument == "-" or (argument.startswith("@") and len(argument) > 1):
            name = "stdin" if argument == "-" else visible(argument[1:])
            for listed in read_target_lines(open_list(argument), name):
                texts.append(listed)
                if len(texts) > limit:
                    raise TargetError(f"more than {limit:,} targets{_FORCE_HINT if limit < MAX_LISTED else ''}")
        else:
            texts.append(Listed(argument))
    return texts


class SeenRuns:
    """Disjoint sorted intervals of addresses already seen (per version)."""

    def __init__(self) -> None:
        self._starts: dict[int, list[int]] = {4: [], 6: []}
        self._ends: dict[int, list[int]] = {4: [], 6: []}

    def unseen_runs(self, version: int, first: int, last: int) -> Iterator[tuple[int, int]]:
        """The parts of [first, last] not yet seen, in order."""
        starts, ends = self._starts[version], self._ends[version]
        i = bisect.bisect_right(ends, first - 1)  # first interval ending at or after first
        cursor = first
        while i < len(starts) and starts[i] <= last:
            if starts[i] > cursor:
                yield cursor, starts[i] - 1
            cursor = max(cursor, ends[i] + 1)
            i += 1
        if cursor <= last:
            yield cursor, last

    def add(self, version: int, first: int, last: int) -> None:
        starts, ends = self._starts[version], self._ends[version]
        lo = bisect.bisect_left(ends, first - 1)
        hi = bisect.bisect_right(starts, last + 1)
        if lo < hi:  # merge with every touching or overlapping interval
            first, last = min(first, starts[lo]), max(last, ends[hi - 1])
        starts[lo:hi] = [first]
        ends[lo:hi] = [last]


@dataclass(frozen=True)
class Unresolved:
    """A hostname target that did not resolve; reported as a row of its own."""

    name: str
    reason: str


def iter_runs(
    targets: Iterable[Target], resolve: Callable[[str], list[IPAddress]] | None, seen: SeenRuns | None = None
) -> Iterator[tuple[int, int, int, str | None] | Unresolved]:
    """``(version, first, last, hostname)`` runs of addresses as integers, each
    address once across all runs (and those already ``seen``), in input order."""
    seen = SeenRuns() if seen is None else seen
    for target in targets:
        if isinstance(target, LinkDiscovery):
            continue  # not a run of addresses: the sweep discovers its hosts
        if isinstance(target, HostName):
            if resolve is None:
                raise TargetError(f"{target.name}: hostnames are not accepted here")
            try:
                addresses = resolve(target.name)
            except NetdiagError as exc:
                yield Unresolved(target.name, str(exc))
                continue
            for address in addresses:
                n = int(address)
                if any(True for _ in seen.unseen_runs(address.version, n, n)):
                    seen.add(address.version, n, n)
                    yield address.version, n, n, target.name
            continue
        version, first, last = target.version, int(target.first), int(target.last)
        runs = list(seen.unseen_runs(version, first, last))
        seen.add(version, first, last)
        for run_first, run_last in runs:
            yield version, run_first, run_last, None


def iter_addresses(
    targets: Iterable[Target],
    resolve: Callable[[str], list[IPAddress]] | None = None,
) -> Iterator[tuple[IPAddress, str | None] | Unresolved]:
    """Every address once, in input order, lazily.

    Yields ``(address, hostname)`` pairs (hostname set where the address came
    from a name), or Unresolved for names ``resolve`` could not answer; resolve
    raises NetdiagError with a reason for those.
    """
    for run in iter_runs(targets, resolve):
        if isinstance(run, Unresolved):
            yield run
            continue
        version, first, last, name = run
        make = ipaddress.IPv4Address if version == 4 else ipaddress.IPv6Address
        for n in range(first, last + 1):
            yield make(n), name


def iter_address_texts(
    targets: Iterable[Target],
    resolve: Callable[[str], list[IPAddress]] | None = None,
) -> Iterator[tuple[str, int, str | None, int] | Unresolved]:
    """Like iter_addresses, as ``(text, version, hostname, number)``."""
    for run in iter_runs(targets, resolve):
        if isinstance(run, Unresolved):
            yield run
        else:
            yield from run_texts(*run)


def run_texts(version: int, first: int, last: int, name: str | None) -> Iterator[tuple[str, int, str | None, int]]:
    """``(text, version, hostname, number)`` for each address of a run. The
    sweep's hot path: IPv4 is formatted with inet_ntop, several times faster
    than ipaddress and identical; IPv6 with ipaddress (RFC 5952), which
    inet_ntop is not for IPv4-compatible addresses (``::0.1.0.1`` for ``::1:1``)."""
    if version == 4:
        ntop, v4 = socket.inet_ntop, socket.AF_INET
        for n in range(first, last + 1):
            yield ntop(v4, n.to_bytes(4, "big")), 4, name, n
    else:
        for n in range(first, last + 1):
            yield ipv6_text(n), 6, name, n


def ipv6_text(n: int) -> str:
    """RFC 5952 text, with the dotted quad of a v4-mapped address as ping shows
    it (``::ffff:127.1.0.1``; Python before 3.13 writes ``::ffff:7f01:1``)."""
    if n >> 32 == 0xFFFF:
        return "::ffff:" + socket.inet_ntop(socket.AF_INET, (n & 0xFFFFFFFF).to_bytes(4, "big"))
    return str(ipaddress.IPv6Address(n))


def target_text(target: Target) -> str:
    """The target as the user typed it: a result's ``target`` field."""
    return target.name if isinstance(target, HostName) else target.source


def count_addresses(targets: Iterable[Target]) -> int:
    """Addresses the blocks cover (hostnames count one each), before dedup."""
    return sum(t.size if isinstance(t, AddressBlock) else 0 if isinstance(t, LinkDiscovery) else 1 for t in targets)
