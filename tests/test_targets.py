import io
import ipaddress
import itertools
import tracemalloc

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netdiag.errors import NetdiagError, ResolveError, TargetError
from netdiag.targets import (
    MAX_ADDRESSES,
    AddressBlock,
    HostName,
    Unresolved,
    expand_arguments,
    ipv6_text,
    iter_address_texts,
    iter_addresses,
    parse_target,
    parse_targets,
)


def addresses(*texts, resolve=None):
    return [str(a) for a, _ in iter_addresses(parse_targets(texts), resolve)]


@pytest.mark.parametrize(
    ("text", "first", "last", "count"),
    [
        ("127.1.0.7", "127.1.0.7", "127.1.0.7", 1),
        ("127.1.0.0/24", "127.1.0.1", "127.1.0.254", 254),  # network, broadcast excluded
        ("127.1.0.77/24", "127.1.0.1", "127.1.0.254", 254),  # host bits allowed
        ("127.1.0.0/31", "127.1.0.0", "127.1.0.1", 2),  # point-to-point: both usable
        ("127.1.0.9/32", "127.1.0.9", "127.1.0.9", 1),
        ("127.1.0.5-20", "127.1.0.5", "127.1.0.20", 16),
        ("127.1.0.250-127.1.1.3", "127.1.0.250", "127.1.1.3", 10),
        ("fd00::/120", "fd00::1", "fd00::ff", 255),  # subnet-router anycast excluded
        ("fd00::10-1f", "fd00::10", "fd00::1f", 16),
        ("::1", "::1", "::1", 1),
        # the forms inet_aton reads, as ping and fping do
        ("127.1", "127.0.0.1", "127.0.0.1", 1),
        ("1.2.3", "1.2.0.3", "1.2.0.3", 1),
        ("127.001.0.010", "127.1.0.8", "127.1.0.8", 1),
        ("0x7f.1.0.1", "127.1.0.1", "127.1.0.1", 1),
        ("2130706433", "127.0.0.1", "127.0.0.1", 1),
    ],
)
def test_address_forms(text, first, last, count):
    block = parse_target(text)
    assert isinstance(block, AddressBlock)
    assert (str(block.first), str(block.last), block.size) == (first, last, count)
    assert len(list(block)) == count


@pytest.mark.parametrize(
    "text",
    ["web.lab.test", "localhost", "host-1", "a_b.example.", "xn--bcher-kva.test", "bücher.test", "[b]evil[/b].lab"],
)
def test_hostnames(text):
    assert parse_target(text) == HostName(text.rstrip("."))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty target"),
        ("1.2.3.4.5", "not an address"),
        ("fe80::1%lo", "with a zone is not swept"),  # refused rather than probed without its zone
        ("0.0.0.0", "the unspecified address"),
        ("::", "the unspecified address"),
        ("x" * 254, "at most 253 characters"),
        ("a\x1b[31m", "not an address"),
        ("a\udcffb", "not an address"),
        ("300.1.1.1", "not an address"),
        ("-h", "not an address"),
        ("--help", "not an address"),
        ("host name", "not an address"),
        ("127.0.0.9-3", "ends before it starts"),
        ("127.0.0.1-300", "out of range"),
        ("127.0.0.1-::1", "mixes IPv4 and IPv6"),
        ("127.0.0.0/33", "not a valid network"),
        ("127.0.0.1-x", "range end"),
        ("bad..name", "not an address"),
        ("-lead.example", "not an address"),
    ],
)
def test_bad_targets_are_target_errors(text, message):
    with pytest.raises(TargetError, match=message):
        parse_target(text)


def test_v4_mapped_addresses_read_as_ping_shows_them():
    assert ipv6_text(int(ipaddress.IPv6Address("::ffff:127.1.0.1"))) == "::ffff:127.1.0.1"
    assert ipv6_text(int(ipaddress.IPv6Address("::1:1"))) == "::1:1"


def test_size_limit_needs_force():
    with pytest.raises(TargetError, match="--force"):
        parse_target("127.0.0.0/15")
    assert parse_target("127.0.0.0/16").size == MAX_ADDRESSES - 2
    assert parse_target("127.0.0.0/8", force=True).size == 2**24 - 2


def test_a_slash_8_is_never_materialised():
    tracemalloc.start()
    targets = parse_targets(["127.0.0.0/8"], force=True)
    sample = list(itertools.islice(iter_addresses(targets), 100_000))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(sample) == 100_000
    assert peak < 30_000_000  # the 100k sample itself, not 16M addresses


def test_duplicates_dropped_in_input_order():
    assert addresses("127.0.0.3", "127.0.0.1-4", "127.0.0.2", "127.0.0.0/29") == [
        "127.0.0.3",
        "127.0.0.1",
        "127.0.0.2",
        "127.0.0.4",
        "127.0.0.5",
        "127.0.0.6",
    ]


def test_hostnames_resolved_and_unresolved():
    def resolve(name):
        if name == "good.test":
            return [ipaddress.ip_address("127.0.0.8"), ipaddress.ip_address("127.0.0.1")]
        raise ResolveError(f"{name}: no such name")

    out = list(iter_addresses(parse_targets(["127.0.0.1", "good.test", "bad.test"]), resolve))
    assert out[0] == (ipaddress.ip_address("127.0.0.1"), None)
    assert out[1] == (ipaddress.ip_address("127.0.0.8"), "good.test")  # 127.0.0.1 already swept
    assert out[2] == Unresolved("bad.test", "bad.test: no such name")
    assert len(out) == 3


def test_list_files_and_stdin():
    files = {
        "@hosts.txt": ["# lab hosts\n", "127.0.0.1 127.0.0.2  # two\n", "\n", "web.lab.test\n"],
        "-": ["127.0.0.9\n"],
    }
    assert expand_arguments(["@hosts.txt", "127.0.0.5", "-"], files.__getitem__) == [
        ("127.0.0.1", "hosts.txt:2"),
        ("127.0.0.2", "hosts.txt:2"),
        ("web.lab.test", "hosts.txt:4"),
        ("127.0.0.5", None),
        ("127.0.0.9", "stdin:1"),
    ]
    assert expand_arguments(["-"], lambda _: io.StringIO("")) == []


def test_a_bad_line_of_a_list_is_named_by_file_and_line():
    files = {"@hosts.txt": ["127.0.0.1\n", "# fine\n", "127.0.0.2 bad..name\n"]}
    with pytest.raises(TargetError, match=r"^hosts.txt:3: 'bad..name' is not an address"):
        parse_targets(expand_arguments(["@hosts.txt"], files.__getitem__))
    with pytest.raises(TargetError, match=r"^'bad..name' is not"):  # an argument: no place to name
        parse_targets(expand_arguments(["bad..name"], files.__getitem__))
    with pytest.raises(TargetError, match=r"^stdin:1: a line longer than 4,096"):
        expand_arguments(["-"], lambda _: io.StringIO("x" * 5000 + "\n"))


# --- properties --------------------------------------------------------------

ipv4 = st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address)
ipv6 = st.integers(0, 2**128 - 1).map(ipaddress.IPv6Address)


@st.composite
def networks(draw):
    address = draw(st.one_of(ipv4, ipv6))
    bits = address.max_prefixlen
    prefix = draw(st.integers(bits - 16, bits))
    return f"{address}/{prefix}"


@st.composite
def ranges(draw):
    first = draw(ipv4)
    span = draw(st.integers(0, 3000))
    last = ipaddress.IPv4Address(min(int(first) + span, 2**32 - 1))
    return f"{first}-{last}"


@given(st.one_of(networks(), ranges()))
def test_every_address_lies_in_its_input_and_counts_are_exact(text):
    block = parse_target(text)
    produced = list(block)
    assert len(produced) == block.size
    assert len(set(produced)) == len(produced)
    if "/" in text:
        network = ipaddress.ip_network(text, strict=False)
        assert all(a in network for a in produced)
        expected = network.num_addresses
        if network.version == 4 and network.prefixlen < 31:
            expected -= 2
        elif network.version == 6 and network.prefixlen < 127:
            expected -= 1
        assert len(produced) == expected
    else:
        first, last = (ipaddress.ip_address(p) for p in text.split("-"))
        assert all(first <= a <= last for a in produced)
        assert len(produced) == int(last) - int(first) + 1


@given(st.lists(st.one_of(networks(), ranges()).filter(lambda t: parse_target(t).size <= 600), max_size=4))
def test_union_is_deduplicated_and_exact(texts):
    produced = addresses(*texts)
    expected = set()
    for text in texts:
        expected.update(str(a) for a in parse_target(text))
    assert len(produced) == len(set(produced))
    assert set(produced) == expected


@given(st.lists(st.one_of(networks(), ranges()).filter(lambda t: parse_target(t).size <= 600), max_size=3))
def test_address_texts_match_the_address_objects(texts):
    targets = parse_targets(texts)
    fast = [(text, version) for text, version, _, _ in iter_address_texts(targets)]
    assert fast == [(str(address), address.version) for address, _ in iter_addresses(targets)]


@given(st.text(max_size=60))
def test_no_string_makes_the_parser_raise_anything_else(text):
    try:
        parse_target(text)
    except NetdiagError as exc:
        assert isinstance(exc, TargetError)
        assert str(exc)


def test_ipv6_networks_of_any_size_are_refused_without_force_and_lazy_with_it():
    for text in ["2001:db8::/64", "::/0", "fe80::%lo/64", "2001:db8::/48"]:
        with pytest.raises(TargetError, match="add --force"):
            parse_target(text)
    block = parse_target("fd00:1ab:1::/64", force=True)
    assert block.size == 2**64 - 1  # the subnet-router anycast address is left out
    first_three = list(itertools.islice(iter_address_texts([block]), 3))  # never materialised
    assert [text for text, *_ in first_three] == ["fd00:1ab:1::1", "fd00:1ab:1::2", "fd00:1ab:1::3"]


def test_the_address_limit_is_for_the_whole_sweep():
    sixteens = [f"127.{i}.0.0/16" for i in range(1, 3)]
    with pytest.raises(TargetError, match="2 targets make 131,068 addresses"):
        parse_targets(sixteens)
    assert len(parse_targets(sixteens, force=True)) == 2
    assert len(parse_targets(["127.1.0.0/17", "127.2.0.0/17"])) == 2  # 65,532 in all: allowed
