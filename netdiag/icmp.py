"""ICMP echo packets, bytes in and bytes out (IPv4 and IPv6). No I/O here.

Echo payload: an 8-byte per-sweep cookie then padding. Replies are matched on
source address, identifier, sequence and cookie: on Linux the kernel rewrites
the identifier of datagram ICMP sockets, so the identifier alone cannot tell
two sweeps on one host apart.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

ECHO_REQUEST = {4: 8, 6: 128}
ECHO_REPLY = {4: 0, 6: 129}
DEST_UNREACHABLE = {4: 3, 6: 1}
TIME_EXCEEDED = {4: 11, 6: 3}

COOKIE_SIZE = 8
PAYLOAD_SIZE = 24  # cookie + padding: 32-byte ICMP message, like fping's default 56 is not needed

_HEADER = struct.Struct("!BBHHH")  # type, code, checksum, identifier, sequence

UNREACHABLE_REASONS = {
    4: {
        0: "network unreachable",
        1: "host unreachable",
        2: "protocol unreachable",
        3: "port unreachable",
        4: "fragmentation needed",
        5: "source route failed",
        6: "destination network unknown",
        7: "destination host unknown",
        9: "network administratively prohibited",
        10: "host administratively prohibited",
        11: "network unreachable for TOS",
        12: "host unreachable for TOS",
        13: "communication administratively prohibited",
    },
    6: {  # in the IPv4 words where the meaning is the same (as the kernel's errno has it)
        0: "network unreachable",  # "no route to destination": ENETUNREACH
        1: "communication administratively prohibited",
        2: "beyond scope of source address",
        3: "host unreachable",  # "address unreachable": EHOSTUNREACH
        4: "port unreachable",
        5: "source address failed policy",
        6: "reject route to destination",
    },
}


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071) of data."""
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


class EchoRequestBuilder:
    """Builds echo requests fast: only the sequence (and checksum) change.

    The checksum is updated incrementally from a precomputed sum of the fixed
    words (RFC 1624) instead of summing every packet again.
    """

    def __init__(self, version: int, identifier: int, cookie: bytes, with_checksum: bool = True) -> None:
        if len(cookie) != COOKIE_SIZE:
            raise ValueError("cookie must be 8 bytes")
        self.type = ECHO_REQUEST[version]
        self.identifier = identifier & 0xFFFF
        self.payload = cookie + bytes(PAYLOAD_SIZE - COOKIE_SIZE)
        # The kernel computes ICMPv6 checksums (pseudo-header) and those of
        # datagram ICMP sockets itself; only raw IPv4 needs ours.
        self.with_checksum = with_checksum and version == 4
        words = struct.unpack(f"!{len(self.payload) // 2}H", self.payload)
        self._fixed_sum = (self.type << 8) + self.identifier + sum(words)

    def build(self, sequence: int) -> bytes:
        sequence &= 0xFFFF
        value = 0
        if self.with_checksum:
            total = self._fixed_sum + sequence
            total = (total & 0xFFFF) + (total >> 16)
            total = (total & 0xFFFF) + (total >> 16)
            value = ~total & 0xFFFF
        return _HEADER.pack(self.type, 0, value, self.identifier, sequence) + self.payload


@dataclass(frozen=True)
class EchoReply:
    identifier: int
    sequence: int
    cookie: bytes


@dataclass(frozen=True)
class IcmpError:
    """An ICMP error about one of our echo requests (quoted in its body)."""

    destination: bytes  # the original destination, packed (4 or 16 bytes); b"" if not quoted
    identifier: int
    sequence: int
    type: int
    code: int

    def reason(self, version: int) -> str:
        if self.type == DEST_UNREACHABLE[version]:
            return UNREACHABLE_REASONS[version].get(self.code, f"destination unreachable (code {self.code})")
        if self.type == TIME_EXCEEDED[version]:
            return "time to live exceeded"
        return f"ICMP type {self.type} code {self.code}"


def strip_ipv4_header(packet: bytes) -> bytes:
    """Raw IPv4 sockets deliver the IP header too; return what follows it."""
    if len(packet) < 20 or packet[0] >> 4 != 4:
        return b""
    return packet[(packet[0] & 0x0F) * 4 :]


def parse(message: bytes, version: int) -> EchoReply | IcmpError | None:
    """Parse an ICMP message (no IP header): an echo reply, an error quoting
    one of our echo requests, or None for anything else or anything truncated."""
    if len(message) < _HEADER.size:
        return None
    kind, code, _, identifier, sequence = _HEADER.unpack_from(message)
    if kind == ECHO_REPLY[version]:
        cookie = message[_HEADER.size : _HEADER.size + COOKIE_SIZE]
        return EchoReply(identifier, sequence, cookie) if len(cookie) == COOKIE_SIZE else None
    if kind in (DEST_UNREACHABLE[version], TIME_EXCEEDED[version]):
        return _parse_error(message[8:], version, kind, code)
    return None


def _parse_error(quoted: bytes, version: int, kind: int, code: int) -> IcmpError | None:
    """The body of an ICMP error quotes the offending IP header and at least
    8 bytes of what followed it: our echo request's header."""
    if version == 4:
        if len(quoted) < 20 or quoted[0] >> 4 != 4 or quoted[9] != 1:  # IPv4 carrying ICMP
            return None
        destination, inner = quoted[16:20], quoted[(quoted[0] & 0x0F) * 4 :]
    else:
        if len(quoted) < 40 or quoted[0] >> 4 != 6 or quoted[6] != 58:  # IPv6, next header ICMPv6
            return None
        destination, inner = quoted[24:40], quoted[40:]
    return parse_quoted_request(inner, version, destination, kind, code)


def parse_quoted_request(inner: bytes, version: int, destination: bytes, kind: int, code: int) -> IcmpError | None:
    """Our echo request as quoted in an ICMP error (or the kernel's error queue)."""
    if len(inner) < _HEADER.size or inner[0] != ECHO_REQUEST[version]:
        return None
    _, _, _, identifier, sequence = _HEADER.unpack_from(inner)
    return IcmpError(destination, identifier, sequence, kind, code)
