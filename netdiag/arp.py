"""ARP for IPv4 over Ethernet (RFC 826), bytes in and bytes out. No I/O here.

A request is a 42-byte frame: the Ethernet header (broadcast destination,
our MAC, type 0x0806) and the 28-byte ARP message asking who has the target
address. Replies are parsed into (sender address, sender MAC); a proxy may
answer for many addresses with one MAC, and each answer still counts for
its own address.
"""

from __future__ import annotations

import struct

ETH_P_ARP = 0x0806
ETH_P_IP = 0x0800
HTYPE_ETHERNET = 1
OP_REQUEST, OP_REPLY = 1, 2
BROADCAST = b"\xff" * 6
FRAME_SIZE = 42

_ETHERNET = struct.Struct("!6s6sH")
_MESSAGE = struct.Struct("!HHBBH6s4s6s4s")  # htype, ptype, hlen, plen, op, sha, spa, tha, tpa
_FIXED = struct.Struct("!HHBBH")
_REPLY_FIXED = _FIXED.pack(HTYPE_ETHERNET, ETH_P_IP, 6, 4, OP_REPLY)


def parse_mac(text: str) -> bytes:
    parts = text.split(":")
    if len(parts) != 6:
        raise ValueError(f"not a MAC address: {text!r}")
    return bytes(int(p, 16) for p in parts)


def format_mac(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


class RequestBuilder:
    """Requests from one interface: only the last four bytes (the target
    address) differ from frame to frame."""

    def __init__(self, sender_mac: bytes, sender_ip: bytes) -> None:
        if len(sender_mac) != 6 or len(sender_ip) != 4:
            raise ValueError("an ARP sender is a 6-byte MAC and a 4-byte IPv4 address")
        self.prefix = (
            _ETHERNET.pack(BROADCAST, sender_mac, ETH_P_ARP)
            + _MESSAGE.pack(HTYPE_ETHERNET, ETH_P_IP, 6, 4, OP_REQUEST, sender_mac, sender_ip, bytes(6), bytes(4))[:-4]
        )

    def build(self, target_ip: bytes) -> bytes:
        return self.prefix + target_ip


def parse_reply(frame: bytes, our_ip: bytes | None = None) -> tuple[bytes, bytes] | None:
    """``(sender IPv4 address, sender MAC)`` of an ARP reply, raw bytes, or
    None for anything else. With ``our_ip``, only replies addressed to it."""
    if len(frame) < FRAME_SIZE or frame[12:14] != b"\x08\x06":
        return None
    if frame[14:22] != _REPLY_FIXED:
        return None
    if our_ip is not None and frame[38:42] != our_ip:
        return None
    return frame[28:32], frame[22:28]


def parse_request(frame: bytes) -> tuple[bytes, bytes, bytes] | None:
    """``(sender MAC, sender address, target address)`` of a request (the
    lab's tests answer them), or None."""
    if len(frame) < FRAME_SIZE or frame[12:14] != b"\x08\x06":
        return None
    htype, ptype, hlen, plen, op, sha, spa, _, tpa = _MESSAGE.unpack_from(frame, 14)
    if (htype, ptype, hlen, plen, op) != (HTYPE_ETHERNET, ETH_P_IP, 6, 4, OP_REQUEST):
        return None
    return sha, spa, tpa
