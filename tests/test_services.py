import re
import socket
import threading
import time

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from netdiag import services
from netdiag.errors import BadInput
from netdiag.text import visible
from tests.lab import run_netdiag


def services_file() -> list:
    """An oracle independent of the lookups: the services file itself."""
    with open(services.SERVICES_FILE) as f:
        return list(services.parse_services(f))


def test_name_port_and_protocol_forms_agree_with_the_services_file():
    entries = services_file()
    ssh = {(e.port, e.protocol) for e in entries if e.name == "ssh"}
    assert {(e.port, e.protocol) for e in services.lookup("ssh").entries} == ssh
    assert [(e.port, e.protocol) for e in services.lookup("domain/udp").entries] == [(53, "udp")]
    named_22 = {e.name for e in entries if (e.port, e.protocol) == (22, "tcp")}
    by_port = services.lookup("22/tcp")
    assert [e.protocol for e in by_port.entries] == ["tcp"] and by_port.entries[0].name in named_22


def test_both_protocols_give_one_row_each():
    answer = services.lookup("domain")
    assert sorted(e.protocol for e in answer.entries) == ["tcp", "udp"]
    assert services.lookup("domain", "udp").entries[0].protocol == "udp"


def test_alias_resolves_to_canonical_name_with_aliases():
    www = [e for e in services.database() if "www" in e.aliases and e.protocol == "tcp"]
    if not www:
        pytest.skip("this services database has no www alias")
    answer = services.lookup("www/tcp")
    assert answer.entries[0].name == www[0].name
    assert "www" in answer.entries[0].aliases


def test_protocols_other_than_tcp_and_udp():
    other = next((e for e in services.database() if e.protocol not in ("tcp", "udp")), None)
    if other is None:
        pytest.skip("this services database has only tcp and udp")
    for query in (f"{other.name}/{other.protocol}", f"{other.port}/{other.protocol}"):
        assert other.protocol in [e.protocol for e in services.lookup(query).entries], query
    assert other.protocol in [e.protocol for e in services.lookup(other.name).entries]
    assert [e.protocol for e in services.lookup(other.name, other.protocol).entries] == [other.protocol]
    assert services.check_protocol(other.protocol) == other.protocol


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("ssh", ("ssh", None)),
        ("022", (22, None)),
        ("0", (0, None)),
        ("65535/udp", (65535, "udp")),
        ("5672/sctp", (5672, "sctp")),
        ("5000/TCP", (5000, "TCP")),  # as written: protocols are case-sensitive
        ("slash/tc/p", ("slash", "tc/p")),  # split at the first '/', as getent
        ("noproto/", ("noproto", "")),
        ("3com-tsmux", ("3com-tsmux", None)),
        ("0x50", ("0x50", None)),  # a name to getent too
        ("caf\u00e9", ("caf\u00e9", None)),
    ],
)
def test_parse_query(text, parsed):
    assert services.parse_query(text) == parsed


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("70000", "between 0 and 65535"),
        ("65536/tcp", "between 0 and 65535"),
        ("-1", "between 0 and 65535"),
        ("+80", "without a sign"),
        ("\u00b2", "digits 0-9"),
        ("\u0663", "digits 0-9"),
        ("8\u0663", "digits 0-9"),
        ("\udcff", "'\\xff': not a name or port (bytes that are not valid text)"),
        ("ssh\x00junk", "unprintable"),  # C would stop at the NUL and find ssh
        ("s\tsh", "unprintable"),
        ("ssh\u202e", "unprintable"),
        ("", "expected NAME"),
        ("a b", "expected NAME"),
        (" ssh", "expected NAME"),  # no key of the database: getent finds nothing either
        ("/tcp", "expected NAME"),
    ],
)
def test_parse_query_refuses(text, message):
    with pytest.raises(services.MalformedQuery, match=re.escape(message)):
        services.parse_query(text)


def test_parse_query_protocol_must_agree_with_proto_option():
    assert services.parse_query("ssh", "sctp") == ("ssh", "sctp")
    assert services.parse_query("ssh/udp", "udp") == ("ssh", "udp")
    with pytest.raises(services.MalformedQuery, match="conflicts with --proto UDP"):
        services.parse_query("ssh/udp", "UDP")


@pytest.mark.parametrize("query", ["80/xyz", "53/UDP", "70000", "65536/tcp", "-1", "a/b/c", "ssh/", "", "\u00b2"])
def test_malformed_queries(query):
    answer = services.lookup(query)
    assert answer.malformed
    assert answer.entries == ()
    assert answer.error


def test_unknown_protocol_names_the_known_ones():
    assert "unknown protocol 'UDP' (the services database has 'tcp', 'udp'" in services.lookup("53/UDP").error
    with pytest.raises(BadInput, match="--proto: unknown protocol 'Tcp'"):
        services.check_protocol("Tcp")


def test_unknown_is_negative_not_malformed():
    answer = services.lookup("no-such-service-xyz")
    assert not answer.malformed
    assert answer.error == "no service no-such-service-xyz in the services database"
    unassigned = services.lookup("65000/udp")
    assert not unassigned.malformed
    assert unassigned.error == "no port 65000 for udp in the services database"


def test_port_number_accepts_numbers_and_names():
    assert services.port_number("8080") == 8080
    assert services.port_number("smtp") == socket.getservbyname("smtp", "tcp")
    assert services.port_number("smtp/tcp") == services.port_number("smtp")
    with pytest.raises(BadInput, match="unknown service"):
        services.port_number("no-such-service-xyz")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("\u00b2", "digits 0-9"),
        ("\udcff", "not valid text"),
        ("+80", "without a sign"),
        ("70000", "between 0 and 65535"),
        ("domain/udp", "a tcp port is needed here, not udp"),
        ("ssh\x00", "unprintable"),
        ("", "expected NAME"),
    ],
)
def test_port_number_refuses(text, message):
    with pytest.raises(BadInput, match=re.escape(message)):
        services.port_number(text)


def test_database_matches_the_services_file():
    from_file = set(services_file())
    assert from_file, "the services file parsed to nothing"
    assert from_file <= set(services.database())


def test_list_is_complete_sorted_filtered_and_fast():
    start = time.perf_counter()
    services.database.cache_clear()
    services.protocols.cache_clear()
    everything = services.list_services()
    assert time.perf_counter() - start < 0.5
    assert len(everything) == len(set(services.database()))
    assert everything == sorted(everything, key=lambda e: (e.port, e.protocol, e.name))
    udp = services.list_services(proto="udp")
    assert udp and all(e.protocol == "udp" for e in udp)
    dom = services.list_services(grep="DOMAIN")
    assert dom and all("domain" in (e.name + " ".join(e.aliases)).lower() for e in dom)


def test_thread_safe_under_contention():
    queries = ["ssh", "domain", "22", "53/udp", "smtp", "http", "80", "443/tcp"]
    expected = {q: services.lookup(q) for q in queries}
    wrong = []

    def hammer():
        for _ in range(300):
            for q in queries:
                if services.lookup(q) != expected[q]:
                    wrong.append(q)

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wrong == []


# --- odd input through the CLI ------------------------------------------------

NAMES = sorted({name for e in services.database() for name in (e.name, *e.aliases)})
# Near misses of real queries: signs, other scripts' digits, separators, undecodable bytes.
PIECES = ["ssh", "domain", "22", "0", "65535", "65536", "/", "tcp", "udp", "TCP", "sctp", "+", "-", "\u00b2",
          "\u0663", "\x00", "\t", " ", "\n", "\r", "\udcff", "\u2028", "\x85", "\u202e", "#", "."]  # fmt: skip
QUERIES = st.one_of(
    st.text(st.characters(), max_size=20),  # anything, lone surrogates included
    st.lists(st.sampled_from(PIECES), max_size=6).map("".join),
    st.tuples(st.sampled_from(NAMES), st.sampled_from(["", "/tcp", "/udp", "/", "/TCP", "/x"])).map("".join),
    st.integers(0, 2**70).map(str),
)
ODD = ["", "\u00b2", "\u0663", "\udcff", "ssh\x00junk", "+80", "-0", "a" * 100_000, "ssh/", " ", "\u2028"]


def examples(*values):
    def decorate(test):
        for value in reversed(values):
            test = example(value)(test)
        return test

    return decorate


def answers(entry, query: str) -> bool:
    """Whether a database entry answers this query (port or name/alias, and protocol)."""
    what, slash, protocol = query.partition("/")  # as written: getent strips nothing
    if slash and entry.protocol != protocol:
        return False
    return entry.port == int(what) if what.isascii() and what.isdigit() else what in (entry.name, *entry.aliases)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(query=QUERIES)
@examples(*ODD)
def test_any_service_query_is_answered_or_refused_in_one_line(cli, query):
    result = cli("service", "--", query)
    answer = services.lookup(query)
    assert result.status == (2 if answer.malformed else 0 if answer.entries else 1)
    lines = result.stderr.splitlines()
    if answer.entries:
        assert lines == [] and result.stdout
    else:
        assert lines == [f"netdiag: {visible(answer.error)}"]
        assert "internal error" not in lines[0]
    database = set(services.database())
    for entry in answer.entries:
        assert entry in database and answers(entry, query), entry
    if any(answers(entry, query) for entry in database):
        assert answer.entries


@settings(max_examples=75, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(port=QUERIES)
@examples(*ODD, "ssh", "22", "0")
def test_any_telnet_port_is_a_port_or_refused_in_one_line(cli, port):
    result = cli("telnet", "--", "bad host!", port)  # refused once the port is one
    assert result.status == 2
    [line] = result.stderr.splitlines()
    from netdiag.ports import parse_port  # telnet's port: the one port parser's

    try:
        parse_port(port)
    except BadInput as exc:
        assert line == f"netdiag: {visible(str(exc))}"
    else:
        assert line.endswith("'bad host!' is not a host name or address")


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (["service", "\u00b2"], "netdiag: '\u00b2': a port is written with the digits 0-9"),
        (["service", "\udcff"], "netdiag: '\\xff': not a name or port (bytes that are not valid text)"),
        (["telnet", "localhost", "\u00b2"], "netdiag: '\u00b2': a port is written with the digits 0-9"),
        (["telnet", "localhost", "\udcff"], "netdiag: '\\xff': not a name or port (bytes that are not valid text)"),
    ],
)
def test_reported_bad_input_in_a_real_process(argv, line):
    """The cases from the issue, as a shell passes them: '\\udcff' is the byte 0xff, not UTF-8."""
    result = run_netdiag(*argv)
    assert result.returncode == 2
    assert result.stderr.decode().splitlines() == [line]
