"""Port lists and targets with ports: the one parser (netdiag.ports), without the network."""

from __future__ import annotations

import socket

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netdiag.errors import BadInput, TargetError
from netdiag.ports import (
    HIGHEST,
    check_numbers,
    parse_port,
    parse_port_target,
    parse_ports,
    split_target,
    unbracket,
    without_ports,
)
from netdiag.targets import AddressBlock, HostName


def service_port(name: str, proto: str) -> int | None:
    try:
        return socket.getservbyname(name, proto)
    except OSError:
        return None


@pytest.mark.parametrize(
    ("text", "ports"),
    [
        ("22", (22,)),
        ("22,80,443", (22, 80, 443)),
        ("443,80,22", (22, 80, 443)),  # ascending, whatever the order typed
        ("80,80,79-81", (79, 80, 81)),  # each once
        ("8000-8003", (8000, 8001, 8002, 8003)),
        ("7-7", (7,)),
        (" 22 , 80 ", (22, 80)),
        ("65534-", (65534, 65535)),  # open ranges, as nmap reads them
        ("-3", (1, 2, 3)),
        ("1,65535", (1, 65535)),
    ],
)
def test_numbers_and_ranges(text, ports):
    assert parse_ports(text) == ports


def test_every_port():
    assert parse_ports("-") == tuple(range(1, 65536))  # nmap's -p-


def test_service_names_are_looked_up_for_the_protocol_in_use():
    assert parse_ports("ssh,https") == tuple(sorted({service_port("ssh", "tcp"), service_port("https", "tcp")}))
    assert parse_ports("ssh,22,http-alt,8000-8080") == (22, *range(8000, 8081))
    assert parse_ports("domain", "udp") == (53,)
    assert parse_ports("smtp/tcp") == (25,)


@pytest.mark.skipif(
    not (service_port("ntp", "udp") and service_port("ntp", "tcp") is None),
    reason="this services database has ntp for TCP too",
)
def test_a_name_known_for_udp_only_is_unknown_for_tcp():
    assert parse_ports("ntp", "udp") == (service_port("ntp", "udp"),)
    with pytest.raises(BadInput, match="unknown service 'ntp' for tcp"):
        parse_ports("ntp", "tcp")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0", "port 0 cannot be connected to (ports are 1-65535)"),
        ("0-10", "port 0 cannot be connected to"),
        ("22,0/tcp", "'0/tcp': port 0 cannot be connected to"),
        ("65536", "port 65536 is more than 65535"),
        ("80-70000", "port 70000 is more than 65535"),
        ("99999999999999999999", "is more than 65535"),
        ("8100-8000", "range 8100-8000 ends before it starts"),
        ("no-such-service-xyz", "unknown service 'no-such-service-xyz' for tcp"),
        ("ssh-http", "unknown service 'ssh-http' for tcp"),
        ("22,,80", "an empty item in the port list"),
        ("22,", "an empty item in the port list"),
        ("", "an empty item in the port list"),
        ("domain/udp", "a tcp port is needed here, not udp"),
        ("+80", "without a sign"),
        ("\u0663", "digits 0-9"),  # an Arabic-Indic three: int() would take it
        ("ssh\x00", "unprintable"),
        ("1" * 600_000, "more than 524,288"),
    ],
)
def test_refusals_say_which_item_and_why(text, message):
    with pytest.raises(BadInput) as caught:
        parse_ports(text)
    assert message in str(caught.value)


def test_one_port_for_telnet():
    assert parse_port("25") == 25
    assert parse_port("smtp") == 25
    for text in ("22,80", "20-21", "-"):
        with pytest.raises(BadInput, match="one port is needed here"):
            parse_port(text)
    with pytest.raises(BadInput, match="port 0 cannot be connected to"):
        parse_port("0")


def test_numbers_from_an_int_option():
    check_numbers((1, 80, 65535))
    with pytest.raises(BadInput, match="--port must be between 1 and 65535, not 70000"):
        check_numbers((80, 70000))
    with pytest.raises(BadInput, match="not 0"):
        check_numbers((0,))


@pytest.mark.parametrize(
    ("text", "host", "ports"),
    [
        ("db.lab.test:5432", "db.lab.test", "5432"),
        ("127.1.0.1:22,80", "127.1.0.1", "22,80"),
        ("127.1.0.0/24:ssh", "127.1.0.0/24", "ssh"),
        ("127.1.0.5-20:8000-8010", "127.1.0.5-20", "8000-8010"),
        ("[fd00:1ab:1::1]:443", "fd00:1ab:1::1", "443"),
        ("[fd00:1ab:1::/120]:22", "fd00:1ab:1::/120", "22"),
        ("[::1]", "::1", None),
        ("fd00::1", "fd00::1", None),  # a bare IPv6 address has no ports
        ("fd00::1:80", "fd00::1:80", None),  # ...even when its last group looks like one
        ("fd00::1/64", "fd00::1/64", None),
        ("db.lab.test", "db.lab.test", None),
        ("[b]evil[/b].lab", "[b]evil[/b].lab", None),  # a name /etc/hosts may list
        ("[b]evil[/b].lab:22", "[b]evil[/b].lab", "22"),
        ("[fe80::1%lan0]:22", "fe80::1%lan0", "22"),
    ],
)
def test_split_target(text, host, ports):
    assert split_target(text) == (host, ports)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("db:", "no ports after ':'"),
        (":22", "no host before ':'"),
        ("[::1]:", "no ports after ':'"),
        ("[]:22", "nothing between '[' and ']'"),
        ("[::1", "'[' without its ']'"),
        (" ", "empty target"),
    ],
)
def test_split_target_refuses(text, message):
    with pytest.raises(TargetError) as caught:
        split_target(text)
    assert message in str(caught.value)


def test_targets_with_ports_are_parsed_by_targets_py():
    item = parse_port_target("127.1.0.0/30:ssh,80")
    assert item.text == "127.1.0.0/30" and item.ports == (22, 80)
    assert isinstance(item.target, AddressBlock) and item.target.size == 2
    named = parse_port_target("[fd00:1ab:1::1]")
    assert named.ports is None and named.text == "fd00:1ab:1::1"
    assert parse_port_target("db.lab.test:5432").target == HostName("db.lab.test")
    assert parse_port_target("syslog.lab:syslog", "udp").ports == (514,)
    with pytest.raises(TargetError, match="add --force"):
        parse_port_target("127.0.0.0/8:22")
    assert parse_port_target("127.0.0.0/8:22", force=True).target.size == (1 << 24) - 2
    with pytest.raises(TargetError, match="is not an address"):
        parse_port_target("300.1.1.1:22")
    with pytest.raises(BadInput, match=r"^'db.lab.test:22,nope-xyz': unknown service 'nope-xyz' for tcp$"):
        parse_port_target("db.lab.test:22,nope-xyz")


def test_commands_whose_targets_carry_no_ports_refuse_them():
    assert without_ports("[fd00::1]", "no ports here") == "fd00::1"
    assert without_ports("127.1.0.0/24", "no ports here") == "127.1.0.0/24"
    assert without_ports("fd00::1:80", "no ports here") == "fd00::1:80"  # an address, not a port
    with pytest.raises(BadInput, match=r"^'127.1.0.1:22': sweep takes ports with -p$"):
        without_ports("127.1.0.1:22", "sweep takes ports with -p")


def test_telnet_hosts_lose_their_brackets_and_may_not_carry_a_port():
    assert unbracket("[::1]") == "::1"
    assert unbracket("fe80::1%lan0") == "fe80::1%lan0"
    assert unbracket("web.lab.test") == "web.lab.test"
    with pytest.raises(BadInput, match="give the port as its own argument"):
        unbracket("web.lab.test:25")


# --- properties


port_numbers = st.integers(1, HIGHEST)
items = st.one_of(
    port_numbers.map(str),
    st.tuples(port_numbers, port_numbers).map(lambda pair: f"{min(pair)}-{max(pair)}"),
)


@given(st.lists(items, min_size=1, max_size=8))
def test_a_list_is_the_union_of_its_items_ascending_and_unique(parts):
    expected: set[int] = set()
    for part in parts:
        first, _, last = part.partition("-")
        expected.update(range(int(first), int(last or first) + 1))
    ports = parse_ports(",".join(parts))
    assert ports == tuple(sorted(expected))
    assert parse_ports(",".join(reversed(parts))) == ports  # order and repetition do not matter
    assert parse_ports(",".join(map(str, ports))) == ports  # the result reads back as itself


@given(st.integers(HIGHEST + 1, 10**30))
def test_any_number_past_65535_is_refused(number):
    with pytest.raises(BadInput, match="is more than 65535"):
        parse_ports(str(number))


@given(port_numbers, port_numbers)
def test_a_range_is_refused_exactly_when_reversed(a, b):
    if b < a:
        with pytest.raises(BadInput, match="ends before it starts"):
            parse_ports(f"{a}-{b}")
    else:
        assert parse_ports(f"{a}-{b}") == tuple(range(a, b + 1))


@given(st.text(max_size=40))
def test_any_text_is_ports_or_one_bad_input_line(text):
    try:
        ports = parse_ports(text)
    except BadInput as exc:
        assert "\n" not in str(exc).replace("\\n", "")
    else:
        assert ports and all(1 <= p <= HIGHEST for p in ports)


@given(st.ip_addresses(), st.lists(port_numbers, min_size=1, max_size=4))
def test_an_address_and_its_ports_read_back(address, numbers):
    ports_text = ",".join(map(str, numbers))
    text = f"[{address}]:{ports_text}" if address.version == 6 else f"{address}:{ports_text}"
    assert split_target(text) == (str(address), ports_text)
    if address.version == 6:
        assert split_target(str(address)) == (str(address), None)  # bare: no ports


@given(st.text(max_size=40))
def test_any_target_text_splits_or_is_refused_as_a_target(text):
    try:
        host, ports = split_target(text)
    except TargetError:
        return
    assert host and (ports is None or ports.strip())
