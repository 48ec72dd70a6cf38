"""ARP frames, route splitting and MAC vendors: pure logic, no privileges."""

from __future__ import annotations

import errno
import ipaddress
import itertools
import socket
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netdiag import arp, links, vendors
from netdiag.links import Route, RouteTable

OUR_MAC = bytes.fromhex("021ab0000001")
OUR_IP = socket.inet_aton("198.18.0.1")


def test_an_arp_request_is_42_bytes_asking_who_has_the_target():
    frame = arp.RequestBuilder(OUR_MAC, OUR_IP).build(socket.inet_aton("198.18.0.7"))
    assert len(frame) == arp.FRAME_SIZE
    # As tcpdump -xx shows a who-has: broadcast, ours, 0806, Ethernet/IPv4, request.
    assert frame.hex() == (
        "ffffffffffff" + "021ab0000001" + "0806" + "0001" + "0800" + "06" + "04" + "0001"
        "021ab0000001" + "c6120001" + "000000000000" + "c6120007"
    )
    assert arp.parse_request(frame) == (OUR_MAC, OUR_IP, socket.inet_aton("198.18.0.7"))
    assert arp.parse_reply(frame) is None  # a request is not a reply


def reply(sender_mac: bytes, sender_ip: bytes, target_ip: bytes = OUR_IP, padding: bytes = b"") -> bytes:
    return (
        OUR_MAC + sender_mac + b"\x08\x06" + bytes.fromhex("0001080006040002")
        + sender_mac + sender_ip + OUR_MAC + target_ip + padding
    )  # fmt: skip


def test_replies_are_parsed_and_padding_is_ignored():
    mac = bytes.fromhex("00163e1ab00a")
    frame = reply(mac, socket.inet_aton("198.18.0.2"), padding=bytes(18))  # padded to 60 bytes on the wire
    assert arp.parse_reply(frame, OUR_IP) == (socket.inet_aton("198.18.0.2"), mac)
    assert arp.format_mac(mac) == "00:16:3e:1a:b0:0a"
    assert arp.parse_mac("00:16:3e:1a:b0:0a") == mac


def test_replies_to_someone_else_and_malformed_frames_are_not_ours():
    mac = bytes.fromhex("00163e1ab00a")
    assert arp.parse_reply(reply(mac, OUR_IP, target_ip=socket.inet_aton("198.18.0.9")), OUR_IP) is None
    assert arp.parse_reply(reply(mac, OUR_IP)[:41]) is None
    ipv4_frame = reply(mac, OUR_IP)[:12] + b"\x08\x00" + reply(mac, OUR_IP)[14:]
    assert arp.parse_reply(ipv4_frame) is None


@given(st.binary(max_size=80))
def test_arbitrary_bytes_never_crash_the_parsers(frame):
    arp.parse_reply(frame, OUR_IP)
    arp.parse_request(frame)


def route(network: str, gateway: str | None = None, interface: int = 2) -> Route:
    return Route(ipaddress.ip_network(network), interface, gateway and ipaddress.ip_address(gateway), None)


def n(text: str) -> int:
    return int(ipaddress.ip_address(text))


TABLE = RouteTable(
    4,
    [
        route("0.0.0.0/0", gateway="198.18.0.254"),
        route("198.18.0.0/20"),
        route("198.18.4.0/24", gateway="198.18.0.9"),  # a more specific route inside the segment
    ],
)


def test_a_run_splits_where_the_longest_match_changes():
    split = TABLE.split(n("198.17.255.0"), n("198.18.16.10"))
    pieces = [(first, last, r.network.with_prefixlen) for first, last, r in split]
    assert pieces == [
        (n("198.17.255.0"), n("198.17.255.255"), "0.0.0.0/0"),
        (n("198.18.0.0"), n("198.18.3.255"), "198.18.0.0/20"),
        (n("198.18.4.0"), n("198.18.4.255"), "198.18.4.0/24"),
        (n("198.18.5.0"), n("198.18.15.255"), "198.18.0.0/20"),
        (n("198.18.16.0"), n("198.18.16.10"), "0.0.0.0/0"),
    ]
    assert TABLE.lookup(n("198.18.4.7")).gateway == ipaddress.ip_address("198.18.0.9")
    assert TABLE.lookup(n("198.18.0.7")).on_link


@given(st.integers(0, 2**32 - 1), st.integers(0, 5000))
def test_split_pieces_cover_the_run_and_agree_with_lookup(first, length):
    last = min(first + length, 2**32 - 1)
    pieces = list(TABLE.split(first, last))
    assert pieces[0][0] == first and pieces[-1][1] == last
    for (_, end, _), (start, _, _) in itertools.pairwise(pieces):
        assert start == end + 1
    for start, end, found in pieces:
        assert TABLE.lookup(start) == found == TABLE.lookup(end)


def test_no_route_means_no_piece_is_on_link():
    assert list(RouteTable(4, []).split(1, 10)) == [(1, 10, None)]


def test_the_kernel_tables_read_without_privilege():
    topology = links.Topology.read()
    assert any(i.name == "lo" for i in topology.interfaces.values())
    assert "127.0.0.1" in topology.own_addresses()


@pytest.mark.skipif(not vendors.IEEE_DATA.is_dir(), reason="ieee-data is not installed")
def test_vendors_come_from_the_ieee_registry():
    found = vendors.lookup(["00:16:3e:1a:b0:0a", "00-16-3E-00-00-01", "02:1a:b0:00:00:0b", "garbage"])
    assert found == {"00:16:3e:1a:b0:0a": "Xensource, Inc.", "00-16-3E-00-00-01": "Xensource, Inc."}
    # the MA-S block 70:B3:D5:F2:F is more specific than the MA-L 70:B3:D5 (IEEE's own)
    assert vendors.lookup(["70:b3:d5:f2:f0:01"]) == {"70:b3:d5:f2:f0:01": "TELEPLATFORMS"}


def netlink(kind: int, payload: bytes, flags: int = 2) -> bytes:
    message = struct.pack("=IHHII", 16 + len(payload), kind, flags, 1, 0) + payload
    return message + bytes(-len(message) % 4)


def test_netlink_messages_are_split_aligned_until_done():
    payloads: list[bytes] = []
    data = netlink(24, b"abcde") + netlink(24, b"xyz")
    assert links.parse_messages(data, payloads) is False  # a dump goes on in the next datagram
    assert payloads == [b"abcde", b"xyz"]
    assert links.parse_messages(netlink(links.NLMSG_DONE, struct.pack("=i", 0)), payloads) is True


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (netlink(links.NLMSG_ERROR, struct.pack("=i", -1) + bytes(16)), 1),  # EPERM
        (netlink(links.NLMSG_DONE, struct.pack("=i", -16)), 16),  # a dump the kernel ended early (EBUSY)
        (netlink(24, b"x", flags=2 | links.NLM_F_DUMP_INTR), errno.EAGAIN),  # the table changed meanwhile
        (struct.pack("=IHHII", 8, 24, 2, 1, 0), errno.EBADMSG),  # shorter than its own header
        (struct.pack("=IHHII", 400, 24, 2, 1, 0), errno.EBADMSG),  # longer than the datagram
    ],
)
def test_netlink_errors_are_not_taken_for_an_empty_table(data, code):
    with pytest.raises(OSError) as raised:
        links.parse_messages(data, [])
    assert raised.value.errno == code
