"""netdiag port's planning, without the network: options, pairs from targets
(each once, in the order given), the pair limit, --send text."""

from __future__ import annotations

import io
import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netdiag.errors import BadInput, TargetError
from netdiag.port import PortOptions, _pairs, _SeenPairs, count_pairs, parse_port_targets, payload_bytes
from netdiag.targets import expand_arguments


def pairs_of(texts: list[str], options: PortOptions, answers: dict | None = None) -> list[tuple[str, int, str]]:
    targets = parse_port_targets(texts, options)
    seen = _SeenPairs() if len(targets) > 1 else None
    return [(item[0], item[4], item[5]) for item in _pairs(targets, options, answers, seen, lambda *_: None)]


def model(texts: list[str], options: PortOptions) -> list[tuple[str, int, str]]:
    """Every pair of every target in order, each kept where it first appears."""
    found: dict[tuple[str, int], str] = {}
    for item in parse_port_targets(texts, options):
        ports = item.ports if item.ports is not None else options.default_ports
        for number in range(int(item.target.first), int(item.target.last) + 1):
            for port in ports:
                found.setdefault((str(ipaddress.ip_address(number)), port), item.text)
    return [(address, port, text) for (address, port), text in found.items()]


def test_pairs_go_address_by_address_and_a_pair_given_twice_stays_in_its_first_place():
    options = PortOptions(ports=(1, 2))
    assert pairs_of(["127.1.0.2:2", "127.1.0.1-3", "127.1.0.3:9"], options) == [
        ("127.1.0.2", 2, "127.1.0.2"),
        ("127.1.0.1", 1, "127.1.0.1-3"),
        ("127.1.0.1", 2, "127.1.0.1-3"),
        ("127.1.0.2", 1, "127.1.0.1-3"),
        ("127.1.0.3", 1, "127.1.0.1-3"),
        ("127.1.0.3", 2, "127.1.0.1-3"),
        ("127.1.0.3", 9, "127.1.0.3"),
    ]


blocks = st.tuples(st.integers(1, 12), st.integers(0, 4)).map(lambda b: f"127.1.0.{b[0]}-{b[0] + b[1]}")
port_lists = st.lists(st.integers(1, 6), min_size=1, max_size=4).map(lambda ps: ",".join(map(str, ps)))
items = st.one_of(blocks, st.tuples(blocks, port_lists).map(lambda t: f"{t[0]}:{t[1]}"))


@given(st.lists(items, min_size=1, max_size=6), st.lists(st.integers(1, 6), min_size=1, max_size=3, unique=True))
def test_pairs_are_the_model_s(texts, default):
    options = PortOptions(ports=tuple(sorted(default)))
    assert pairs_of(texts, options) == model(texts, options)


def test_names_wait_for_their_answers_and_unresolved_ones_are_reported():
    options = PortOptions(ports=(1,))
    targets = parse_port_targets(["a.lab.test", "127.1.0.1", "b.lab.test:5,6"], options)
    assert [item[0] for item in _pairs(targets, options, None, _SeenPairs(), lambda *_: None)] == ["127.1.0.1"]
    from netdiag.errors import NetdiagError

    unresolved = []
    answers = {"a.lab.test": [ipaddress.ip_address("127.1.0.1")], "b.lab.test": NetdiagError("no such name")}
    found = list(_pairs(targets, options, answers, _SeenPairs(), lambda *row: unresolved.append(row),
                        names_only=True))  # fmt: skip
    assert [(item[0], item[2], item[4]) for item in found] == [("127.1.0.1", "a.lab.test", 1)]
    assert [(origin, item.text, reason) for origin, item, reason in unresolved] == [(2, "b.lab.test", "no such name")]


def test_a_target_list_may_mix_host_port_lines():
    listing = io.StringIO("db.lab.test:5432  # the database\n127.1.0.1:ssh,https\n[fd00:1ab:1::1]:22\n127.1.0.2\n")
    texts = expand_arguments(["@hosts.txt", "127.1.0.3:80"], lambda _: listing)
    targets = parse_port_targets(texts, PortOptions(ports=(25,)))
    assert [(t.text, t.ports) for t in targets] == [
        ("db.lab.test", (5432,)),
        ("127.1.0.1", (22, 443)),
        ("fd00:1ab:1::1", (22,)),
        ("127.1.0.2", None),
        ("127.1.0.3", (80,)),
    ]
    assert count_pairs(targets, PortOptions(ports=(25,))) == 6


def test_default_ports_and_the_pair_limit():
    options = PortOptions()
    assert count_pairs(parse_port_targets(["127.1.0.1"], options), options) == len(options.default_ports)
    with pytest.raises(TargetError, match=r"make 131,068 pairs, more than 65,536; add --force"):
        parse_port_targets(["127.1.0.0/16:1,2"], options)
    assert count_pairs(parse_port_targets(["127.1.0.0/16:1,2"], options, force=True), options) == 131_068
    assert count_pairs(parse_port_targets(["127.1.0.0/24", "db.lab.test:1-10"], PortOptions(ports=(1, 2))),
                       PortOptions(ports=(1, 2))) == 254 * 2 + 10  # fmt: skip


# --- options


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"proto": "sctp"}, "protocol must be tcp or udp"),
        ({"timeout": 0}, "--timeout must be more than 0"),
        ({"banner_timeout": 61}, "--banner-timeout must be more than 0"),
        ({"retries": 11}, "--retries must be between 0 and 10"),
        ({"rate": 0}, "--rate must be between"),
        ({"rate": float("nan")}, "--rate must be between"),
        ({"workers": 0}, "--workers must be between 1 and 65536"),
        ({"ports": ()}, "-p: no ports given"),
        ({"ports": (0,)}, "-p must be between 1 and 65535, not 0"),
        ({"send": b"x" * 5000}, "--send: 5,000 bytes is more than 4,096"),
        ({"tls": True, "proto": "udp"}, "--tls goes with TCP"),
    ],
)
def test_options_are_checked_before_anything_is_sent(settings, message):
    with pytest.raises(BadInput, match=message):
        PortOptions(**settings).validate()


def test_send_text_escapes():
    assert payload_bytes(r"HEAD / HTTP/1.0\r\n\r\n") == b"HEAD / HTTP/1.0\r\n\r\n"
    assert payload_bytes(r"a\tb\0\e\\\x41\xff") == b"a\tb\0\x1b\\A\xff"
    assert payload_bytes("ü") == "ü".encode()
    for bad in (r"\q", "\\", r"\x4"):
        with pytest.raises(BadInput, match="--send: unknown escape"):
            payload_bytes(bad)


def test_a_bad_line_of_a_list_is_named_by_file_and_line():
    from netdiag.targets import Listed

    with pytest.raises(BadInput, match=r"^hosts.txt:3: '127.1.0.1:0': port 0 cannot be connected to"):
        parse_port_targets([Listed("127.1.0.1:22", "hosts.txt:2"), Listed("127.1.0.1:0", "hosts.txt:3")],
                           PortOptions())  # fmt: skip


def test_link_discovery_is_refused():
    with pytest.raises(TargetError, match="link discovery is for sweep"):
        parse_port_targets(["ff02::1%lo"], PortOptions())


@given(st.binary(max_size=64))
def test_any_bytes_written_as_escapes_read_back(data):
    assert payload_bytes("".join(f"\\x{byte:02x}" for byte in data)) == data
