"""The query syntax of `netdiag dns` (NAME... TYPE... @SERVER..., -x, dig -f
lines): pure, checked against dnspython's own reading where it has one."""

from __future__ import annotations

import ipaddress

import dns.name
import dns.rdatatype
import dns.reversename
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from netdiag import dnsclient
from netdiag.dnsclient import SYSTEM, QueryOptions, Request, ServerSpec, parse_batch, parse_server, parse_words
from netdiag.errors import BadInput
from netdiag.records import Question

LABEL = st.from_regex(r"[a-z0-9_](?:[a-z0-9-]{0,20}[a-z0-9])?", fullmatch=True)
NAME = st.lists(LABEL, min_size=2, max_size=5).map(".".join)
TYPES = ["A", "AAAA", "CNAME", "MX", "NS", "TXT", "SOA", "SRV", "CAA", "PTR", "HTTPS", "SVCB", "DS", "DNSKEY"]
IPV4 = st.ip_addresses(v=4).map(str)
IPV6 = st.ip_addresses(v=6).map(str)


def test_names_types_and_servers_in_any_order():
    request = parse_words(["MX", "@127.0.0.1", "example.org", "txt", "@::1", "www.example.org"])
    assert request.names == ("example.org.", "www.example.org.")
    assert request.types == ("MX", "TXT")
    assert [s.host for s in request.servers] == ["127.0.0.1", "::1"]


@pytest.mark.parametrize("name", TYPES)
def test_every_listed_type_is_read_as_a_type_in_any_case(name):
    assert dnsclient.type_word(name) == name
    assert dnsclient.type_word(name.lower()) == name


def test_any_type_by_name_or_number():
    assert dnsclient.type_word("TLSA") == "TLSA"
    assert dnsclient.type_word("type65") == "HTTPS"  # a number with a name has its name
    assert dnsclient.type_word("TYPE123") == "TYPE123"
    assert dnsclient.type_word("TYPE65535") == "TYPE65535"


@pytest.mark.parametrize(
    ("word", "reason"),
    [
        ("AXFR", "zone transfer"),
        ("ixfr", "zone transfer"),
        ("OPT", "not a type a question"),
        ("TSIG", "not a type a question"),
        ("TYPE0", "reserved"),
        ("NONE", "reserved"),
        ("TYPE65536", "up to 65535"),
    ],
)
def test_types_no_question_can_ask_for_are_bad_input(word, reason):
    with pytest.raises(BadInput, match=reason):
        parse_words(["example.org", word])


def test_a_word_that_is_both_a_type_and_a_name_is_a_type_and_a_dot_makes_it_a_name():
    request = parse_words(["ns", "mx", "ns.", "a."])
    assert request.types == ("NS", "MX")
    assert request.names == ("ns.", "a.")


def test_words_that_are_not_types():
    for word in ("www", "ns1", "in", "ch", "a.b", "mail-1", "x" * 11, "15"):
        assert dnsclient.type_word(word) is None, word


def test_only_types_is_no_name_and_says_how_to_write_one():
    with pytest.raises(BadInput, match=r"MX read as a type.*mx\."):
        parse_words(["MX"])


def test_addresses_are_asked_in_reverse_like_dash_x_in_input_order():
    request = parse_words(["www.example.org", "192.0.2.1", "-x", "2001:db8::1", "x.org"], reverse=["198.51.100.7"])
    assert request.names == (
        "7.100.51.198.in-addr.arpa.",
        "www.example.org.",
        "1.2.0.192.in-addr.arpa.",
        "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.",
        "x.org.",
    )
    assert request.reverse == frozenset(request.names) - {"www.example.org.", "x.org."}


@given(st.ip_addresses())
def test_reverse_names_are_dnspythons_but_v4_mapped_ones_stay_ip6_as_in_dig(address):
    mapped = isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None
    assume(not mapped)
    assert dnsclient.reverse_name(str(address)) == dns.reversename.from_address(str(address)).to_text()


def test_a_v4_mapped_address_is_asked_under_ip6_arpa_as_dig_does():
    assert dnsclient.reverse_name("::ffff:1.2.3.4") == "4.0.3.0.2.0.1.0.f.f.f.f" + ".0" * 20 + ".ip6.arpa."


def test_reverse_of_something_else_is_bad_input():
    with pytest.raises(BadInput, match="not an IP address"):
        parse_words(["-x", "www.example.org"])
    with pytest.raises(BadInput, match="-x needs an address"):
        parse_words(["example.org", "-x"])


@given(NAME, st.booleans())
def test_names_are_absolute_and_as_dnspython_reads_them(name, trailing_dot):
    assume(dnsclient.type_word(name) is None)
    word = name + "." if trailing_dot else name
    assume(not dnsclient._is_address(word))  # an address is asked in reverse
    assert parse_words([word]).names == (dns.name.from_text(word).to_text(),)


def test_international_names_are_sent_in_idna2008():
    assert parse_words(["bücher.example"]).names == ("xn--bcher-kva.example.",)
    assert parse_words(["faß.example"]).names == ("xn--fa-hia.example.",)  # IDNA2003 would make it fass


def test_the_root_and_escapes():
    assert parse_words([".", "NS"]).names == (".",)
    assert parse_words([r"a\.b.example"]).names == (r"a\.b.example.",)


@pytest.mark.parametrize(
    ("word", "reason"),
    [
        ("a..b", "empty label"),
        (".example", "empty label"),
        ("example..", "empty label"),
        ("x" * 64 + ".example", "longer than 63"),
        (".".join(["x" * 60] * 5), "longer than 255"),
        ("tab\there", "control characters"),
    ],
)
def test_names_that_cannot_be_are_bad_input(word, reason):
    with pytest.raises(BadInput, match=reason):
        parse_words([word])


def test_dig_options_are_named_in_our_spelling():
    with pytest.raises(BadInput, match="here it is --short"):
        parse_words(["example.org", "+short"])
    with pytest.raises(BadInput, match="not read here"):
        parse_words(["example.org", "+multiline"])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1", ServerSpec("127.0.0.1", None, "127.0.0.1")),
        ("::1", ServerSpec("::1", None, "::1")),
        ("[::1]:5353", ServerSpec("[::1]:5353", None, "::1", 5353)),
        ("127.0.0.1:5353", ServerSpec("127.0.0.1:5353", None, "127.0.0.1", 5353)),
        ("system", SYSTEM),
        ("SYSTEM", SYSTEM),
        ("dns.example", ServerSpec("dns.example", None, "dns.example")),
        ("dns.example:53", ServerSpec("dns.example:53", None, "dns.example", 53)),
        ("udp://127.0.0.1", ServerSpec("udp://127.0.0.1", "udp", "127.0.0.1")),
        ("tcp://[::1]:53", ServerSpec("tcp://[::1]:53", "tcp", "::1", 53)),
        ("tls://127.0.0.3", ServerSpec("tls://127.0.0.3", "tls", "127.0.0.3")),
        ("tls://dns.example:8853", ServerSpec("tls://dns.example:8853", "tls", "dns.example", 8853)),
        (
            "tls://127.0.0.3#resolver.example",
            ServerSpec("tls://127.0.0.3#resolver.example", "tls", "127.0.0.3", tls_name="resolver.example"),
        ),
        ("https://dns.example", ServerSpec("https://dns.example", "https", "dns.example")),
        (
            "https://[::1]:8443/q?x=1",
            ServerSpec("https://[::1]:8443/q?x=1", "https", "::1", 8443, path="/q?x=1"),
        ),
    ],
)
def test_server_forms(text, expected):
    assert parse_server(text) == expected
    assert parse_words(["example.org", "@" + text]).servers == (expected,)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "needs a server"),
        ("127.0.0.1:", "a port after the colon"),
        ("127.0.0.1:0", "not a port"),
        ("127.0.0.1:65536", "not a port"),
        ("127.0.0.1:dns", "not a port"),
        ("[127.0.0.1]:53", "brackets hold an IPv6"),
        ("fe80::1::2:53", "in brackets"),
        ("quic://127.0.0.1", "not a transport here"),
        ("tcp://127.0.0.1#name", "only tls:// takes #NAME"),
        ("https://", "no host"),
        ("https://h:99999/", "not a URL"),
        ("bad..name", "empty label"),
    ],
)
def test_servers_that_cannot_be_are_bad_input(text, reason):
    with pytest.raises(BadInput, match=reason):
        parse_server(text)


@given(st.one_of(IPV4, IPV6), st.one_of(st.none(), st.integers(1, 65535)), st.sampled_from([None, "udp", "tcp", "tls"]))
def test_any_address_and_port_come_back(address, port, scheme):
    host = f"[{address}]" if ":" in address and port is not None else address
    text = (f"{scheme}://" if scheme else "") + host + (f":{port}" if port is not None else "")
    spec = parse_server(text)
    assert (spec.scheme, ipaddress.ip_address(spec.host), spec.port) == (scheme, ipaddress.ip_address(address), port)


@given(st.lists(st.one_of(NAME, st.sampled_from(TYPES), IPV4.map("@{}".format)), max_size=12))
def test_a_words_kind_does_not_depend_on_its_place(words):
    request = parse_words(["example.org", *words])
    reordered = parse_words([*reversed(words), "example.org"])
    assert set(request.names) == set(reordered.names)
    assert set(request.types) == set(reordered.types)
    assert set(request.servers) == set(reordered.servers)
    assert len(request.types) == len(set(request.types))  # each once


def test_batch_lines_as_dig_f_with_the_command_lines_defaults():
    defaults = parse_words(["@127.0.0.1", "MX", "example.org"])
    lines = ["# a comment", "", "  ; dig's comment", "www.example.org", "mail.example.org AAAA @::1", "-x 192.0.2.1"]
    requests = parse_batch(lines, defaults)
    assert requests == [
        Request(("www.example.org.",), ("MX",), defaults.servers),
        Request(("mail.example.org.",), ("AAAA",), (parse_server("::1"),)),
        Request(("1.2.0.192.in-addr.arpa.",), ("MX",), defaults.servers, frozenset({"1.2.0.192.in-addr.arpa."})),
    ]


@pytest.mark.parametrize(
    ("line", "reason"),
    [("MX @127.0.0.1", "line 2: no name"), ("x.org -t MX", "line 2: -t: not an option here"), ("x.org +tcp", "--tcp")],
)
def test_batch_errors_name_the_line(line, reason):
    with pytest.raises(BadInput, match=reason):
        parse_batch(["example.org", line])


def test_queries_are_name_then_type_then_server_each_once():
    requests = [
        parse_words(["a.example", "b.example", "A", "MX", "@127.0.0.1", "@[::1]:5353"]),
        parse_words(["a.example", "A", "@127.0.0.1"]),
    ]
    queries = dnsclient.build_queries(requests, QueryOptions(rclass="CH"))
    assert [(q.question.name, q.question.type, q.question.rclass, q.server.label) for q in queries] == [
        (name, rtype, "CH", server)
        for name in ("a.example.", "b.example.")
        for rtype in ("A", "MX")
        for server in ("127.0.0.1", "[::1]:5353")
    ]
    assert {(q.server.address, q.server.port, q.server.transport) for q in queries} == {
        ("127.0.0.1", 53, "udp"), ("::1", 5353, "udp")
    }  # fmt: skip


def test_reverse_names_are_asked_ptr_unless_types_are_given():
    queries = dnsclient.build_queries([parse_words(["-x", "192.0.2.1", "example.org", "@127.0.0.1"])])
    assert [(q.question.name, q.question.type) for q in queries] == [
        ("1.2.0.192.in-addr.arpa.", "PTR"),
        ("example.org.", "A"),
    ]
    queries = dnsclient.build_queries([parse_words(["-x", "192.0.2.1", "TXT", "@127.0.0.1"])])
    assert [q.question.type for q in queries] == ["TXT"]


@pytest.mark.parametrize(
    ("transport", "port", "extra"),
    [("tcp", 53, {}), ("tls", 853, {"tls_name": None}), ("https", 443, {"url": "https://127.0.0.3/dns-query"})],
)
def test_the_transport_option_and_its_ports_for_servers_without_a_scheme(transport, port, extra):
    (server,) = dnsclient.resolve_servers([parse_server("127.0.0.3")], QueryOptions(transport=transport))[
        parse_server("127.0.0.3")
    ]
    assert (server.transport, server.port) == (transport, port)
    for key, value in extra.items():
        assert getattr(server, key) == value


def test_a_scheme_wins_over_the_transport_option_and_names_are_kept_for_tls():
    spec = parse_server("tls://127.0.0.3#resolver.example")
    (server,) = dnsclient.resolve_servers([spec], QueryOptions(transport="https"))[spec]
    assert (server.transport, server.port, server.tls_name) == ("tls", 853, "resolver.example")
    spec = parse_server("https://[::1]:8443/dns")
    (server,) = dnsclient.resolve_servers([spec])[spec]
    assert (server.url, server.address, server.port) == ("https://[::1]:8443/dns", "::1", 8443)


def test_system_nameservers_from_resolv_conf(tmp_path):
    conf = tmp_path / "resolv.conf"
    conf.write_text("# c\nsearch example\nnameserver 127.0.0.53\nnameserver ::1 # v6\nnameserver bogus\noptions x\n")
    assert dnsclient.system_nameservers(str(conf)) == ("127.0.0.53", "::1")
    conf.write_text("search example\n")
    assert dnsclient.system_nameservers(str(conf)) == ("127.0.0.1",)  # the C library's default
    assert dnsclient.system_nameservers(str(tmp_path / "missing")) == ("127.0.0.1",)


def test_options_that_cannot_be_are_bad_input():
    assert QueryOptions(rclass="ch").rclass == "CH"
    for bad in ({"transport": "quic"}, {"udp_size": 100}, {"rclass": "XX"}):
        with pytest.raises(BadInput):
            QueryOptions(**bad)


def test_class_option():
    assert dnsclient.parse_class("ch") == "CH"
    assert dnsclient.parse_class("CLASS4") == "HS"
    for bad in ("XX", "ANY", "NONE"):
        with pytest.raises(BadInput):
            dnsclient.parse_class(bad)


def test_a_ca_file_that_cannot_be_read_is_bad_input_before_anything_is_sent(tmp_path):
    spec = parse_server("tls://127.0.0.3")
    with pytest.raises(BadInput, match="CA file"):
        dnsclient.resolve_servers([spec], QueryOptions(ca_file=str(tmp_path / "missing.pem")))


def test_every_known_type_reads_back_as_itself():
    for value in dns.rdatatype.RdataType:
        text = dns.rdatatype.to_text(value)
        if (dns.rdatatype.is_metatype(value) and text != "ANY") or value == 0:
            continue
        assert dnsclient.type_word(text.lower()) == text


SAMPLE_RDATA = [
    ("A", "192.0.2.1"), ("AAAA", "2001:db8::1"), ("CNAME", "web.example."), ("MX", "10 mx.example."),
    ("NS", "ns1.example."), ("SOA", "ns1.example. host.example. 1 3600 600 86400 300"),
    ("SRV", "10 60 5060 sip.example."), ("CAA", '0 issue "ca.example.net"'), ("PTR", "host.example."),
    ("HTTPS", '1 . alpn="h2,h3" port=8443'), ("TYPE65534", r"\# 3 010203"),
]  # fmt: skip
RDATA = st.one_of(
    st.sampled_from(SAMPLE_RDATA),
    st.lists(st.binary(max_size=40), min_size=1, max_size=3).map(
        lambda strings: ("TXT", " ".join('"' + "".join(f"\\{b:03d}" for b in s) + '"' for s in strings))
    ),
)
SECTION = st.lists(st.tuples(NAME, st.integers(0, 2**31 - 1), RDATA), max_size=4)


@given(
    SECTION, SECTION, SECTION,
    st.sampled_from(["NOERROR", "NXDOMAIN", "SERVFAIL", "REFUSED", "BADVERS"]),
    st.booleans(), st.lists(st.tuples(st.integers(0, 30), st.text(max_size=20)), max_size=2),
)  # fmt: skip
def test_the_reply_reader_agrees_with_dnspythons_message(answer, authority, additional, rcode, edns, errors):
    import dns.edns
    import dns.message
    import dns.rcode
    import dns.rrset

    query = dns.message.make_query("www.example.", "A", use_edns=0 if edns or errors else False)
    reply = dns.message.make_response(query)
    reply.set_rcode(dns.rcode.from_text(rcode) if edns or errors or rcode != "BADVERS" else dns.rcode.NOERROR)
    if errors:
        reply.use_edns(0, options=[dns.edns.EDEOption(code, text or None) for code, text in errors])
    for section, records in ((reply.answer, answer), (reply.authority, authority), (reply.additional, additional)):
        for name, ttl, (rtype, data) in records:
            section.append(dns.rrset.from_text(name + ".", ttl, "IN", rtype, data))
    wire = reply.to_wire()
    read = dnsclient.read_reply(wire)
    expected = dns.message.from_wire(wire, one_rr_per_rrset=True)

    def flat(rrsets):
        return sorted(
            (r.name.to_text(), dns.rdatatype.to_text(r.rdtype), "IN", r.ttl, rd.to_text()) for r in rrsets for rd in r
        )

    assert sorted((r.name, r.type, r.rclass, r.ttl, r.data) for r in read.answer) == flat(expected.answer)
    assert sorted((r.name, r.type, r.rclass, r.ttl, r.data) for r in read.authority) == flat(expected.authority)
    assert sorted((r.name, r.type, r.rclass, r.ttl, r.data) for r in read.additional) == flat(expected.additional)
    assert read.rcode == dns.rcode.to_text(expected.rcode())
    assert read.extended_errors == tuple(o.to_text() for o in expected.extended_errors())
    asked = dns.name.from_text("www.example.").to_wire() + b"\x00\x01\x00\x01"
    assert dnsclient.answers(wire, asked)
    assert dnsclient.answers(wire, asked.upper())  # names compare without case
    assert not dnsclient.answers(wire, dns.name.from_text("other.example.").to_wire() + b"\x00\x01\x00\x01")
    assert not dnsclient.answers(query.to_wire(), asked)  # a query is no response
    assert dnsclient.read_reply(wire, dnsclient._Asked(asked, "www.example.")) == read  # the shortcut changes nothing
    with pytest.raises(Exception):  # noqa: B017 - dnspython's own exceptions, any of them
        dnsclient.read_reply(wire + b"\x00")
    if answer or authority or additional or errors:
        with pytest.raises(Exception):  # noqa: B017
            dnsclient.read_reply(wire[:-1])


@given(st.booleans(), st.booleans(), st.booleans(), st.booleans(), st.integers(512, 4096), NAME, st.sampled_from(TYPES))
def test_datagrams_are_dnspythons_queries_byte_for_byte(edns, dnssec, recurse, cd, size, name, rtype):
    options = QueryOptions(edns=edns, dnssec=dnssec, recurse=recurse, checking_disabled=cd, udp_size=size)
    question = Question(name + ".", rtype, "IN")
    message = dnsclient.make_message(question, options)
    _, wire = dnsclient._Datagrams(options).make(question, message.id)
    assert wire == message.to_wire()
