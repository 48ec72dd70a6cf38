"""The pure side of DNS results: CNAME chains, servers compared on one
question, the exit decision, TXT strings read back byte for byte."""

from __future__ import annotations

import itertools

import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TXT
from hypothesis import given
from hypothesis import strategies as st

from netdiag import records
from netdiag.records import (
    Failure,
    FailureKind,
    Question,
    Record,
    Response,
    Server,
    character_strings,
    cname_chain,
    compare,
    compare_servers,
    succeeded,
)

Q = Question("www.example.", "A")
S1, S2, S3 = (Server(f"127.0.0.{i}", "udp", f"127.0.0.{i}", 53) for i in (1, 2, 3))


def rec(name: str, rtype: str, data: str, ttl: int = 300) -> Record:
    return Record(name, rtype, "IN", ttl, data)


def response(server: Server, answer=(), rcode="NOERROR", question: Question = Q) -> Response:
    return Response(question, server, "udp", rcode, ("RD", "RA"), tuple(answer), (), (), 1.0, 100)


def failure(server: Server, question: Question = Q) -> Failure:
    return Failure(question, server, "udp", FailureKind.TIMEOUT, "no answer within 1s", 1000.0)


WWW_CHAIN = [
    rec("www.example.", "CNAME", "web.example."),
    rec("web.example.", "CNAME", "host.example."),
    rec("host.example.", "A", "192.0.2.1"),
    rec("host.example.", "A", "192.0.2.2"),
]


def test_a_chain_is_followed_to_the_records_of_the_asked_type():
    chain = cname_chain("www.example.", WWW_CHAIN, "A")
    assert chain.names == ("www.example.", "web.example.", "host.example.")
    assert (chain.canonical, chain.aliases) == ("host.example.", ("www.example.", "web.example."))
    assert [r.data for r in chain.records] == ["192.0.2.1", "192.0.2.2"]
    assert not chain.looped


def test_the_aaaa_chain_has_its_own_records():
    answer = [*WWW_CHAIN[:2], rec("host.example.", "AAAA", "2001:db8::1")]
    chain = cname_chain("www.example.", answer, "AAAA")
    assert (chain.canonical, [r.data for r in chain.records]) == ("host.example.", ["2001:db8::1"])
    assert cname_chain("www.example.", answer, "A").records == ()  # a chain to no A: no data


def test_names_compare_as_dns_does():
    answer = [rec("WWW.Example", "CNAME", "Web.Example."), rec("web.example.", "A", "192.0.2.1")]
    chain = cname_chain("www.example.", answer, "A")
    assert chain.names == ("www.example.", "Web.Example.")
    assert len(chain.records) == 1


def test_a_loop_ends_and_says_so():
    answer = [rec("a.example.", "CNAME", "b.example."), rec("b.example.", "CNAME", "A.example.")]
    chain = cname_chain("a.example.", answer, "A")
    assert (chain.names, chain.looped, chain.records) == (("a.example.", "b.example."), True, ())


def test_cname_and_any_questions():
    assert cname_chain("www.example.", WWW_CHAIN, "CNAME").records == (WWW_CHAIN[0],)
    answer = [rec("x.example.", "A", "192.0.2.1"), rec("x.example.", "TXT", '"t"'), rec("x.example.", "RRSIG", "...")]
    assert [r.type for r in cname_chain("x.example.", answer, "ANY").records] == ["A", "TXT"]


@given(st.integers(1, 12), st.randoms(use_true_random=False), st.integers(0, 3))
def test_any_chain_is_found_whatever_the_order_of_the_records(length, rng, extra):
    names = [f"n{i}.example." for i in range(length)]
    answer = [rec(a, "CNAME", b) for a, b in itertools.pairwise(names)] + [
        rec(names[-1], "A", f"192.0.2.{i}") for i in range(extra)
    ]
    answer += [rec("other.example.", "A", "198.51.100.1")]  # not on the chain
    rng.shuffle(answer)
    chain = cname_chain(names[0], answer, "A")
    assert list(chain.names) == names
    assert len(chain.records) == extra
    assert not chain.looped


def test_response_data_and_ok():
    assert response(S1, WWW_CHAIN).ok
    assert not response(S1, WWW_CHAIN[:2]).ok  # NOERROR, a chain, but no A at its end: no data
    assert not response(S1, (), "NXDOMAIN").ok
    assert not response(S1, WWW_CHAIN, "SERVFAIL").ok
    assert not failure(S1).ok


def test_servers_that_agree():
    comparison = compare_servers(Q, [response(S1, WWW_CHAIN), response(S2, reversed(WWW_CHAIN))])
    assert comparison.agree
    assert comparison.reference == S1


def authoritative(server: Server, answer=()) -> Response:
    return Response(Q, server, "udp", "NOERROR", ("AA", "RD"), tuple(answer), (), (), 1.0, 100)


def test_a_cache_counting_down_is_no_difference_an_authoritative_server_with_another_ttl_is():
    counted_down = [Record(r.name, r.type, r.rclass, 297, r.data) for r in WWW_CHAIN]
    longer = [Record(r.name, r.type, r.rclass, 900, r.data) for r in WWW_CHAIN]
    cache, auth1, auth2 = response(S1, counted_down), authoritative(S2, WWW_CHAIN), authoritative(S3, WWW_CHAIN)
    assert compare_servers(Q, [cache, auth1, auth2]).agree  # the cache is no reference to mark the zone wrong
    other_auth = authoritative(Server("x", "udp", "127.0.0.4", 53), counted_down)
    assert [s.label for s in compare_servers(Q, [auth1, other_auth]).ttl_differs] == ["x"]
    claims_more = response(Server("y", "udp", "127.0.0.5", 53), longer)
    assert [s.label for s in compare_servers(Q, [auth1, claims_more]).ttl_differs] == ["y"]


def test_the_odd_one_out_is_named_for_each_difference():
    other = [rec("www.example.", "A", "192.0.2.9")]
    late = [Record(r.name, r.type, r.rclass, 10, r.data) for r in WWW_CHAIN]
    outcomes = [
        authoritative(S1, WWW_CHAIN),
        authoritative(S2, late),
        authoritative(S3, WWW_CHAIN),
        response(Server("x", "tcp", "127.0.0.4", 53), other),
        response(Server("y", "udp", "127.0.0.5", 53), (), "SERVFAIL"),
        failure(Server("z", "udp", "127.0.0.6", 53)),
    ]
    comparison = compare_servers(Q, outcomes)
    assert comparison.reference == S1
    assert [s.label for s in comparison.ttl_differs] == ["127.0.0.2"]
    assert [s.label for s in comparison.answer_differs] == ["x", "y"]
    assert [s.label for s in comparison.rcode_differs] == ["y"]
    assert [s.label for s in comparison.no_answer] == ["z"]
    assert comparison.differences(outcomes[4].server) == ("rcode", "answer")
    assert comparison.differences(S3) == ()
    assert not comparison.agree


def test_a_tie_takes_the_first_server_as_reference():
    comparison = compare_servers(Q, [response(S1, WWW_CHAIN), response(S2, (), "NXDOMAIN")])
    assert comparison.reference == S1
    assert comparison.rcode_differs == comparison.answer_differs == (S2,)


def test_no_server_answered():
    comparison = compare_servers(Q, [failure(S1), failure(S2)])
    assert (comparison.reference, comparison.no_answer, comparison.agree) == (None, (S1, S2), False)


def test_compare_groups_by_question_in_order():
    mx = Question("example.", "MX")
    outcomes = [response(S1, question=mx), response(S1), response(S2, question=mx), failure(S2)]
    assert [(c.question, len(c.outcomes)) for c in compare(outcomes)] == [(mx, 2), (Q, 2)]


ANSWERS = st.sampled_from([(), tuple(WWW_CHAIN), (rec("www.example.", "A", "192.0.2.9"),)])
RCODES = st.sampled_from(["NOERROR", "NXDOMAIN", "SERVFAIL"])
OUTCOME = st.one_of(st.tuples(RCODES, ANSWERS, st.sampled_from([1, 300])), st.none())


@given(st.lists(OUTCOME, min_size=1, max_size=6))
def test_comparison_properties(specs):
    servers = [Server(f"s{i}", "udp", f"127.0.1.{i}", 53) for i in range(len(specs))]
    outcomes = []
    for server, spec in zip(servers, specs, strict=True):
        if spec is None:
            outcomes.append(failure(server))
        else:
            rcode, answer, ttl = spec
            outcomes.append(response(server, [Record(r.name, r.type, r.rclass, ttl, r.data) for r in answer], rcode))
    comparison = compare_servers(Q, outcomes)
    answered = [o for o in outcomes if isinstance(o, Response)]
    assert set(comparison.no_answer) == {o.server for o in outcomes if isinstance(o, Failure)}
    assert comparison.agree == (
        not comparison.no_answer
        and len({(o.rcode, records.answer_set(o.answer)) for o in answered}) == 1
        and not comparison.ttl_differs
    )
    if not answered:
        return
    reference = next(o for o in answered if o.server == comparison.reference)
    key = (reference.rcode, records.answer_set(reference.answer))
    count = sum((o.rcode, records.answer_set(o.answer)) == key for o in answered)
    assert all(
        count
        >= sum((p.rcode, records.answer_set(p.answer)) == (o.rcode, records.answer_set(o.answer)) for p in answered)
        for o in answered
    )
    assert not set(comparison.ttl_differs) & set(comparison.answer_differs)  # TTLs only where records agree
    for o in answered:
        assert (o.server in comparison.rcode_differs) == (o.rcode != reference.rcode)
        assert (o.server in comparison.answer_differs) == (
            records.answer_set(o.answer) != records.answer_set(reference.answer)
        )


def test_outcomes_in_the_order_of_their_queries():
    queries = [records.Query(Q, S1), records.Query(Q, S2), records.Query(Question("example.", "MX"), S1)]
    outcomes = [failure(S2), response(S1, question=queries[2].question), response(S1)]
    assert records.in_order(outcomes, queries) == [outcomes[2], outcomes[0], outcomes[1]]


def test_the_exit_decision():
    assert succeeded([response(S1, WWW_CHAIN), response(S2, WWW_CHAIN)])
    assert not succeeded([response(S1, WWW_CHAIN), failure(S2)])  # one server failing is a failure
    assert not succeeded([response(S1, WWW_CHAIN), response(S2, (), "NXDOMAIN")])
    assert not succeeded([response(S1, WWW_CHAIN[:1])])  # no data
    assert not succeeded([])


@given(st.lists(st.binary(max_size=255), min_size=1, max_size=5))
def test_txt_strings_come_back_byte_for_byte_from_dnspythons_text(strings):
    rdata = dns.rdtypes.ANY.TXT.TXT(dns.rdataclass.IN, dns.rdatatype.TXT, strings)
    assert character_strings(rdata.to_text()) == tuple(strings)


def test_txt_strings_quoted_unquoted_and_escaped():
    assert character_strings(r'"a b" c\032d "\"\\" ""') == (b"a b", b"c d", b'"\\', b"")
    assert character_strings(r'"\027[2J\226\128\174"') == (b"\x1b[2J\xe2\x80\xae",)


def test_names_in_data_compare_without_case_and_text_with_it():
    upper = [rec("www.example.", "CNAME", "WEB.Example."), rec("mx.example.", "MX", "10 MAIL.example.")]
    lower = [rec("www.example.", "CNAME", "web.example."), rec("mx.example.", "MX", "10 mail.example.")]
    assert records.answer_set(upper) == records.answer_set(lower)
    assert records.answer_set([rec("t.example.", "TXT", '"Hi"')]) != records.answer_set(
        [rec("t.example.", "TXT", '"hi"')]
    )
