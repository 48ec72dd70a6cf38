import os
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netdiag import icmp


def test_checksum_known_vector():
    # RFC 1071 section 3 example words: 0001 f203 f4f5 f6f7 → sum ddf2, checksum 220d
    assert icmp.checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0x220D


@given(st.binary(max_size=64))
def test_a_message_with_its_checksum_sums_to_zero(data):
    even = data + b"\0" * (len(data) % 2)
    with_sum = even + struct.pack("!H", icmp.checksum(even))
    assert icmp.checksum(with_sum) == 0


@given(st.integers(0, 0xFFFF), st.integers(0, 0xFFFF), st.binary(min_size=8, max_size=8))
def test_incremental_checksum_matches_a_full_one(identifier, sequence, cookie):
    packet = icmp.EchoRequestBuilder(4, identifier, cookie).build(sequence)
    assert icmp.checksum(packet) == 0
    kind, code, _, ident, seq = struct.unpack_from("!BBHHH", packet)
    assert (kind, code, ident, seq) == (8, 0, identifier, sequence)
    assert packet[8:16] == cookie


def test_kernel_checksummed_requests_leave_it_zero():
    assert icmp.EchoRequestBuilder(6, 1, bytes(8)).build(5)[2:4] == b"\0\0"
    assert icmp.EchoRequestBuilder(4, 1, bytes(8), with_checksum=False).build(5)[2:4] == b"\0\0"


@pytest.mark.parametrize("version", [4, 6])
def test_reply_round_trip(version):
    cookie = os.urandom(8)
    request = icmp.EchoRequestBuilder(version, 0x1234, cookie).build(77)
    reply = bytes([icmp.ECHO_REPLY[version]]) + request[1:]  # what a host sends back
    assert icmp.parse(reply, version) == icmp.EchoReply(0x1234, 77, cookie)
    assert icmp.parse(request, version) is None  # our own request is not a reply


def ipv4_header(source: bytes, destination: bytes) -> bytes:
    return bytes([0x45, 0, 0, 48, 0, 0, 0, 0, 64, 1, 0, 0]) + source + destination


def test_unreachable_quoting_our_request_v4():
    request = icmp.EchoRequestBuilder(4, 9, bytes(8)).build(3)
    error = bytes([3, 1, 0, 0, 0, 0, 0, 0]) + ipv4_header(b"\x7f\0\0\1", b"\x7f\4\0\2") + request
    parsed = icmp.parse(error, 4)
    assert parsed == icmp.IcmpError(b"\x7f\4\0\2", 9, 3, 3, 1)
    assert parsed.reason(4) == "host unreachable"
    assert icmp.strip_ipv4_header(ipv4_header(b"\0" * 4, b"\0" * 4) + error) == error


def test_unreachable_quoting_our_request_v6():
    request = icmp.EchoRequestBuilder(6, 9, bytes(8)).build(3)
    destination = bytes(15) + b"\1"
    header = bytes([0x60, 0, 0, 0, 0, 32, 58, 64]) + bytes(16) + destination
    parsed = icmp.parse(bytes([1, 3, 0, 0, 0, 0, 0, 0]) + header + request, 6)
    assert parsed == icmp.IcmpError(destination, 9, 3, 1, 3)
    assert parsed.reason(6) == "host unreachable"  # ICMPv6 code 3, "address unreachable"
    assert icmp.IcmpError(b"", 0, 0, 3, 0).reason(6) == "time to live exceeded"


@given(st.binary(max_size=120), st.sampled_from([4, 6]))
def test_parse_never_raises(data, version):
    result = icmp.parse(data, version)
    assert result is None or isinstance(result, icmp.EchoReply | icmp.IcmpError)
    icmp.strip_ipv4_header(data)
