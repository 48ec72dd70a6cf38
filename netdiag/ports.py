"""Port lists and targets with ports, as text: the one parser of ports.

``22,80,443``, ``8000-8100``, ``ssh,https`` and mixes of them; open ranges
as nmap reads them (``1024-``, ``-1024``, ``-`` for every port). Service
names are looked up in the services database (netdiag.services) for the
protocol in use: ``syslog`` is 514 for UDP and unknown for TCP.

Targets with ports: ``HOST:PORTS``, ``ADDR/NN:PORTS``, ``A-B:PORTS`` and
``[V6]:PORTS``; a bare IPv6 address (``fd00::1``) has no ports unless it is
bracketed, as in URLs. The target itself is parsed by netdiag.targets.
Pure: nothing here is sent anywhere.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from netdiag.errors import BadInput, TargetError
from netdiag.targets import Target, parse_target

LOWEST, HIGHEST = 1, 65535
MAX_TEXT = 1 << 19  # characters in one port list: room for every port written out (382,000)

_RANGE = re.compile(r"([0-9]*)-([0-9]*)")  # N-M, N-, -M and - alone
_NUMBER = re.compile(r"[0-9]+")
_BRACKETED = re.compile(r"\[([^\[\]]*)\](?::(.*))?", re.DOTALL)


def parse_ports(text: str, proto: str = "tcp") -> tuple[int, ...]:
    """The ports of a list, ascending, each once; BadInput naming the first bad item."""
    if len(text) > MAX_TEXT:
        raise BadInput(f"a port list of {len(text):,} characters is more than {MAX_TEXT:,}")
    found: set[int] = set()
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            raise BadInput(f"{text!r}: an empty item in the port list")
        found.update(_item_ports(item, proto))
    return tuple(sorted(found))


def parse_port(text: str, proto: str = "tcp") -> int:
    """Exactly one port (a number or a service name), as ``telnet HOST PORT`` takes it."""
    if "," in text or (_RANGE.fullmatch(text.strip()) is not None):
        raise BadInput(f"{text!r}: one port is needed here, not a list or a range")
    (port,) = parse_ports(text, proto)
    return port


def _item_ports(item: str, proto: str) -> Iterable[int]:
    if _NUMBER.fullmatch(item):
        return (_number(item),)
    bounds = _RANGE.fullmatch(item)
    if bounds:
        first = _number(bounds[1]) if bounds[1] else LOWEST
        last = _number(bounds[2]) if bounds[2] else HIGHEST
        if last < first:
            raise BadInput(f"range {item} ends before it starts")
        return range(first, last + 1)
    from netdiag import services  # ctypes and the C library: only when a name is given (sweep's start-up)

    port = services.port_number(item, proto)  # BadInput: unknown service, wrong protocol, malformed
    if port == 0:  # 0/tcp
        raise BadInput(f"{item!r}: port 0 cannot be connected to (ports are 1-65535)")
    return (port,)


def _number(digits: str) -> int:
    port = int(digits)
    if port == 0:
        raise BadInput("port 0 cannot be connected to (ports are 1-65535)")
    if port > HIGHEST:
        raise BadInput(f"port {digits} is more than {HIGHEST}")
    return port


def check_numbers(numbers: Iterable[int], option: str = "--port") -> None:
    """Ports given as numbers by other means (an option of type int)."""
    for port in numbers:
        if not LOWEST <= port <= HIGHEST:
            raise BadInput(f"{option} must be between {LOWEST} and {HIGHEST}, not {port}")


@dataclass(frozen=True)
class PortTarget:
    """A target and the ports it brought with it (None: the ports of -p)."""

    text: str  # the target as typed, without brackets and ports
    target: Target
    ports: tuple[int, ...] | None


def split_target(text: str) -> tuple[str, str | None]:
    """``HOST:PORTS`` → (HOST, PORTS); ``[V6]:PORTS`` → (V6, PORTS); ``[V6]``
    → (V6, None). Two colons or more without brackets: an IPv6 address, no ports."""
    spec = text.strip()
    if not spec:
        raise TargetError("empty target")
    bracketed = _BRACKETED.fullmatch(spec)
    if bracketed:
        inside, ports = bracketed[1].strip(), bracketed[2]
        if not inside:
            raise TargetError(f"{text!r}: nothing between '[' and ']'")
        if ports is not None and not ports.strip():
            raise TargetError(f"{text!r}: no ports after ':'")
        return inside, ports
    if spec.startswith("[") and "]" not in spec:
        raise TargetError(f"{text!r}: '[' without its ']'")
    if spec.count(":") == 1:
        host, _, ports = spec.partition(":")
        if not host.strip():
            raise TargetError(f"{text!r}: no host before ':'")
        if not ports.strip():
            raise TargetError(f"{text!r}: no ports after ':'")
        return host.strip(), ports
    return spec, None


def parse_port_target(text: str, proto: str = "tcp", *, force: bool = False) -> PortTarget:
    """One target item, with its own ports if it has them."""
    host, ports = split_target(text)
    target = parse_target(host, force=force)
    if ports is None:
        return PortTarget(host, target, None)
    try:
        return PortTarget(host, target, parse_ports(ports, proto))
    except BadInput as exc:  # which of the targets it is about
        raise BadInput(f"{text.strip()!r}: {exc}") from None


def unbracket(host: str) -> str:
    """A host as ``telnet HOST`` takes it: ``[v6]`` → ``v6``; a port there is refused."""
    return without_ports(host, "give the port as its own argument (telnet HOST PORT)")


def without_ports(text: str, where_ports_go: str) -> str:
    """A target where ports have no place of their own (``telnet HOST``,
    ``sweep TARGET``): ``[v6]`` → ``v6``; ``HOST:PORTS`` refused, saying
    ``where_ports_go``."""
    bare, ports = split_target(text)
    if ports is not None:
        raise BadInput(f"{text!r}: {where_ports_go}")
    return bare
