"""What is on which segment: interfaces, our addresses, routes, neighbours.

Read from the kernel over rtnetlink (a dump request per table, no privilege
needed), not from /sys or /proc/net/route: those show the namespace sysfs
was mounted in, and /proc/net/route knows no IPv6 and no secondary
addresses. The answers are the routing decisions the kernel itself makes for
the main table; policy routing rules are not evaluated.
"""

from __future__ import annotations

import bisect
import errno
import ipaddress
import os
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache

from netdiag.arp import format_mac

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_NLMSG = struct.Struct("=IHHII")  # length, type, flags, sequence, port
_RTATTR = struct.Struct("=HH")
_IFINFO = struct.Struct("=BxHiII")  # family, type, index, flags, change
_IFADDR = struct.Struct("=BBBBI")  # family, prefix length, flags, scope, index
_RTMSG = struct.Struct("=BBBBBBBBI")  # family, dst len, src len, tos, table, protocol, scope, type, flags
_NDMSG = struct.Struct("=BxxxiHBB")  # family, index, state, flags, type

NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_DUMP, NLM_F_DUMP_INTR = 0x1, 0x300, 0x10
RTM_GETLINK, RTM_GETADDR, RTM_GETROUTE, RTM_GETNEIGH = 18, 22, 26, 30
IFLA_ADDRESS, IFLA_IFNAME = 1, 3
IFA_ADDRESS, IFA_LOCAL = 1, 2
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_PREFSRC, RTA_TABLE = 1, 4, 5, 7, 15
NDA_DST, NDA_LLADDR = 1, 2
RT_TABLE_MAIN, RT_TABLE_LOCAL = 254, 255
RTN_UNICAST, RTN_LOCAL = 1, 2
RTN_BLACKHOLE, RTN_UNREACHABLE, RTN_PROHIBIT = 6, 7, 8  # routes that end here: never on-link
ARPHRD_ETHER = 1
IFF_UP = 0x1
NUD_INCOMPLETE, NUD_FAILED, NUD_NOARP = 0x01, 0x20, 0x40

DEFAULT_NEIGHBOUR_CAPACITY = 1024  # net.ipv4.neigh.default.gc_thresh3's default


@dataclass(frozen=True)
class Interface:
    index: int
    name: str
    mac: str | None
    ethernet: bool  # ARPHRD_ETHER: ARP and neighbour discovery apply
    up: bool


@dataclass(frozen=True)
class Route:
    network: ipaddress.IPv4Network | ipaddress.IPv6Network
    interface: int  # output interface index (0: none)
    gateway: IPAddress | None
    source: IPAddress | None  # the route's preferred source address

    @property
    def on_link(self) -> bool:
        return self.gateway is None and self.interface != 0


@dataclass(frozen=True)
class Link:
    """A directly connected Ethernet segment as a sweep uses it."""

    interface: Interface
    source: IPAddress  # our address on it, the ARP sender address
    own: frozenset[str] = frozenset()  # every address of ours on the interface

    @property
    def label(self) -> str:
        return self.interface.name


def _dump(message_type: int, family: int, body: bytes) -> Iterator[bytes]:
    """Send one dump request (``body``: the request's fixed header); yield
    each answer's payload (fixed header, then attributes)."""
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE) as sock:
        sock.bind((0, 0))
        sock.send(_NLMSG.pack(_NLMSG.size + len(body), message_type, NLM_F_REQUEST | NLM_F_DUMP, 1, 0) + body)
        while True:
            payloads: list[bytes] = []
            done = parse_messages(sock.recv(1 << 16), payloads)
            yield from payloads
            if done:
                return


def parse_messages(data: bytes, payloads: list[bytes]) -> bool:
    """Append the payloads of one netlink datagram's messages; True once the
    dump is done. The kernel's errors (in NLMSG_ERROR, or NLMSG_DONE's own
    code when it ended a dump early) and malformed lengths raise OSError."""
    offset = 0
    while offset + _NLMSG.size <= len(data):
        length, kind, flags, _, _ = _NLMSG.unpack_from(data, offset)
        if length < _NLMSG.size or offset + length > len(data):
            raise OSError(errno.EBADMSG, f"netlink message of length {length} at {offset}")
        if kind in (NLMSG_DONE, NLMSG_ERROR):
            code = struct.unpack_from("=i", data, offset + _NLMSG.size)[0] if length >= _NLMSG.size + 4 else 0
            if code:
                raise OSError(-code, os.strerror(-code))
            return True
        if flags & NLM_F_DUMP_INTR:
            raise OSError(errno.EAGAIN, "the kernel's table changed during the dump")
        payloads.append(data[offset + _NLMSG.size : offset + length])
        offset += (length + 3) & ~3
    return False


def _attributes(message: bytes, start: int) -> dict[int, bytes]:
    attributes = {}
    offset = (start + 3) & ~3
    while offset + _RTATTR.size <= len(message):
        length, kind = _RTATTR.unpack_from(message, offset)
        if length < _RTATTR.size:
            break
        attributes[kind & 0x3FFF] = message[offset + _RTATTR.size : offset + length]
        offset += (length + 3) & ~3
    return attributes


def _address(raw: bytes) -> IPAddress:
    return ipaddress.ip_address(raw)


def interfaces() -> dict[int, Interface]:
    found = {}
    for message in _dump(RTM_GETLINK, socket.AF_UNSPEC, bytes(_IFINFO.size)):
        _, kind, index, flags, _ = _IFINFO.unpack_from(message)
        attributes = _attributes(message, _IFINFO.size)
        name = attributes.get(IFLA_IFNAME, b"").rstrip(b"\0").decode(errors="replace")
        raw_mac = attributes.get(IFLA_ADDRESS)
        mac = format_mac(raw_mac) if raw_mac and len(raw_mac) == 6 else None
        found[index] = Interface(index, name, mac, kind == ARPHRD_ETHER, bool(flags & IFF_UP))
    return found


def addresses(version: int) -> list[tuple[int, ipaddress.IPv4Interface | ipaddress.IPv6Interface]]:
    """Our addresses: (interface index, address/prefix)."""
    family = socket.AF_INET if version == 4 else socket.AF_INET6
    found = []
    for message in _dump(RTM_GETADDR, family, bytes([family]) + bytes(_IFADDR.size - 1)):
        _, prefix, _, _, index = _IFADDR.unpack_from(message)
        attributes = _attributes(message, _IFADDR.size)
        raw = attributes.get(IFA_LOCAL) or attributes.get(IFA_ADDRESS)
        if raw:
            found.append((index, ipaddress.ip_interface((_address(raw), prefix))))
    return found


def routes(version: int) -> list[Route]:
    """Unicast routes of the main table, and the blackhole, unreachable and
    prohibit routes that may carve addresses out of an on-link prefix."""
    family = socket.AF_INET if version == 4 else socket.AF_INET6
    width = 32 if version == 4 else 128
    found = []
    for message in _dump(RTM_GETROUTE, family, bytes([family]) + bytes(_RTMSG.size - 1)):
        _, dst_len, _, _, table, _, _, kind, _ = _RTMSG.unpack_from(message)
        attributes = _attributes(message, _RTMSG.size)
        table = struct.unpack("=I", attributes[RTA_TABLE])[0] if RTA_TABLE in attributes else table
        if table != RT_TABLE_MAIN or kind not in (RTN_UNICAST, RTN_BLACKHOLE, RTN_UNREACHABLE, RTN_PROHIBIT):
            continue
        destination = attributes.get(RTA_DST, bytes(width // 8))
        network = ipaddress.ip_network((_address(destination), dst_len), strict=False)
        interface = struct.unpack("=I", attributes[RTA_OIF])[0] if RTA_OIF in attributes and kind == RTN_UNICAST else 0
        gateway = _address(attributes[RTA_GATEWAY]) if RTA_GATEWAY in attributes else None
        source = _address(attributes[RTA_PREFSRC]) if RTA_PREFSRC in attributes else None
        found.append(Route(network, interface, gateway, source))
    return found


def neighbour_entries(version: int | None = None) -> list[tuple[int, IPAddress, str]]:
    """Resolved entries of the kernel's neighbour table: (interface index, address, MAC)."""
    found = []
    for family in [socket.AF_INET, socket.AF_INET6] if version is None else [_family(version)]:
        for message in _dump(RTM_GETNEIGH, family, bytes([family]) + bytes(_NDMSG.size - 1)):
            _, index, state, _, _ = _NDMSG.unpack_from(message)
            if state & (NUD_INCOMPLETE | NUD_FAILED | NUD_NOARP):
                continue
            attributes = _attributes(message, _NDMSG.size)
            if NDA_DST in attributes and len(attributes.get(NDA_LLADDR, b"")) == 6:
                found.append((index, _address(attributes[NDA_DST]), format_mac(attributes[NDA_LLADDR])))
    return found


def neighbours(version: int | None = None) -> dict[str, str]:
    """The kernel's neighbour table: address → MAC, for resolved entries."""
    return {str(address): mac for _, address, mac in neighbour_entries(version)}


def _family(version: int) -> int:
    return socket.AF_INET if version == 4 else socket.AF_INET6


class RouteTable:
    """Longest-prefix matching over whole address runs, for one IP version.

    Prefixes are aligned intervals, so between two consecutive interval
    boundaries the longest match cannot change: a run of addresses splits
    into a few pieces, however long it is."""

    def __init__(self, version: int, table: list[Route]) -> None:
        self.version = version
        self.routes = sorted(table, key=lambda r: r.network.prefixlen, reverse=True)
        bounds = set()
        for route in self.routes:
            bounds.add(int(route.network.network_address))
            bounds.add(int(route.network.broadcast_address) + 1)
        self._bounds = sorted(bounds)

    def lookup(self, number: int) -> Route | None:
        for route in self.routes:  # most specific first
            if int(route.network.network_address) <= number <= int(route.network.broadcast_address):
                return route
        return None

    def split(self, first: int, last: int) -> Iterator[tuple[int, int, Route | None]]:
        """``(first, last, route)`` pieces of the run first..last."""
        start = first
        index = bisect.bisect_right(self._bounds, first)
        while start <= last:
            end = last if index >= len(self._bounds) else min(last, self._bounds[index] - 1)
            yield start, end, self.lookup(start)
            start, index = end + 1, index + 1


@dataclass(frozen=True)
class Topology:
    """A snapshot of what the kernel knows, taken once per sweep."""

    interfaces: dict[int, Interface]
    tables: dict[int, RouteTable]
    local: dict[int, list[tuple[int, ipaddress.IPv4Interface | ipaddress.IPv6Interface]]]

    @classmethod
    def read(cls) -> Topology:
        for _ in range(3):  # a table that changed during the dump is read again
            try:
                return cls(
                    interfaces(),
                    {v: RouteTable(v, routes(v)) for v in (4, 6)},
                    {v: addresses(v) for v in (4, 6)},
                )
            except OSError as exc:
                if exc.errno != errno.EAGAIN:
                    break
        # no netlink (not Linux, or a seccomp jail): nothing is on-link, the kernel methods serve all
        return cls({}, {v: RouteTable(v, []) for v in (4, 6)}, {4: [], 6: []})

    def own_addresses(self) -> set[str]:
        return {str(a.ip) for found in self.local.values() for _, a in found}

    def ethernet_link(self, route: Route | None, version: int) -> Link | None:
        """The Ethernet segment a route reaches directly, or None."""
        if route is None or not route.on_link:
            return None
        interface = self.interfaces.get(route.interface)
        if interface is None or not interface.ethernet or interface.mac is None or not interface.up:
            return None
        source = route.source or self.source_on(interface, version, route.network)
        return None if source is None else Link(interface, source, self.addresses_on(interface))

    def addresses_on(self, interface: Interface) -> frozenset[str]:
        return frozenset(str(a.ip) for found in self.local.values() for index, a in found if index == interface.index)

    def source_on(
        self, interface: Interface, version: int, network: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None
    ) -> IPAddress | None:
        """Our address on ``interface`` (in ``network`` when one is)."""
        candidates = [a for index, a in self.local[version] if index == interface.index]
        for address in candidates:
            if network is None or address.ip in network:
                return address.ip
        return candidates[0].ip if candidates else None


@cache
def neighbour_capacity(version: int = 4) -> int:
    """How many neighbour entries the kernel keeps (gc_thresh3; ARP and
    neighbour discovery have a table each). A table is global and shown only
    in the initial network namespace: elsewhere, the kernel's default."""
    try:
        with open(f"/proc/sys/net/ipv{version}/neigh/default/gc_thresh3") as f:
            return int(f.read())
    except (OSError, ValueError):
        return DEFAULT_NEIGHBOUR_CAPACITY


def resolution_time(interface: str, version: int) -> float:
    """Seconds the kernel spends failing to resolve one dead neighbour:
    mcast_solicit (+ app_solicit) solicitations, retrans_time_ms apart."""
    base = f"/proc/sys/net/ipv{version}/neigh/{interface}/"
    try:
        with open(base + "mcast_solicit") as f:
            solicits = int(f.read())
        with open(base + "app_solicit") as f:
            solicits += int(f.read())
        with open(base + "retrans_time_ms") as f:
            retrans_ms = int(f.read())
    except (OSError, ValueError):
        return 3.0
    return max(solicits, 1) * retrans_ms / 1000
