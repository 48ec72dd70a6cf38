"""The DNS client against the lab's real servers, with dig as the reference on
the same servers: answers, TTLs, rcodes and flags must match.

Servers (scripts/lab/dns.sh): Knot authoritative on NETLAB_DNS_AUTH, Unbound
validating on NETLAB_DNS_RESOLVER (DoT on 853, CA at NETLAB_DNS_CA), a
resolver 20 ms away on NETLAB_DNS_FAR, one that never answers on
NETLAB_DNS_SILENT, one that answers SERVFAIL on NETLAB_DNS_SERVFAIL; and
dnsmasq on 127.0.0.1 for lab.test. A test whose server the lab lacks skips.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from netdiag import dnsclient, records
from netdiag.dnsclient import QueryOptions, parse_server, parse_words
from netdiag.errors import BadInput
from netdiag.records import Failure, FailureKind, Response, character_strings

pytestmark = pytest.mark.lab

AUTH = os.environ.get("NETLAB_DNS_AUTH", "")
RESOLVER = os.environ.get("NETLAB_DNS_RESOLVER", "")
CA = os.environ.get("NETLAB_DNS_CA", "")
FAR = os.environ.get("NETLAB_DNS_FAR", "")
SILENT = os.environ.get("NETLAB_DNS_SILENT", "")
SERVFAIL = os.environ.get("NETLAB_DNS_SERVFAIL", "")


def needs(address: str, variable: str):
    return pytest.mark.skipif(
        not address, reason=f"the lab has no {variable} (scripts/lab/dns.sh: Knot or Unbound missing?)"
    )


needs_dig = pytest.mark.skipif(
    shutil.which("dig") is None, reason="dig is not installed (apt-get install bind9-dnsutils)"
)

# Every record type of the lab's zones, and the answers that are no data: (name, type).
AUTH_CASES = [
    ("auth.test", "SOA"), ("auth.test", "NS"), ("auth.test", "MX"), ("auth.test", "TXT"), ("auth.test", "CAA"),
    ("auth.test", "HTTPS"), ("auth.test", "A"), ("auth.test", "AAAA"),
    ("alias.auth.test", "A"), ("alias.auth.test", "AAAA"), ("alias.auth.test", "CNAME"), ("www.auth.test", "A"),
    ("web.auth.test", "HTTPS"), ("svc.auth.test", "HTTPS"), ("_dns.auth.test", "SVCB"), ("api.auth.test", "SVCB"),
    ("_sip._tcp.auth.test", "SRV"), ("txt.auth.test", "TXT"), ("multi.auth.test", "TXT"),
    ("anything.wild.auth.test", "A"), ("anything.wild.auth.test", "TXT"), ("exact.wild.auth.test", "A"),
    ("exact.wild.auth.test", "TXT"), ("xn--bcher-kva.auth.test", "A"), ("v6only.auth.test", "AAAA"),
    ("v6only.auth.test", "A"), ("nope.auth.test", "A"), ("hostile.auth.test", "TXT"), ("long.hostile.auth.test", "TXT"),
    ("[bold]x[/bold].hostile.auth.test", "A"), (r"esc\027[31mred.hostile.auth.test", "A"),
    ("www.sub.auth.test", "A"), ("sub.auth.test", "NS"), ("n1.auth.test", "A"), ("n1000.auth.test", "A"),
    ("1.2.0.192.in-addr.arpa", "PTR"), ("99.2.0.192.in-addr.arpa", "PTR"),
    ("10.2.0.192.in-addr.arpa", "PTR"),  # a name asked of the lab zone, never probed
    ("signed.test", "DNSKEY"), ("signed.test", "SOA"), ("auth.test", "TYPE65534"), ("auth.test", "ANY"),
]  # fmt: skip
RESOLVER_CASES = [
    ("alias.auth.test", "A"), ("auth.test", "MX"), ("auth.test", "SOA"), ("hostile.auth.test", "TXT"),
    ("nope.auth.test", "A"), ("v6only.auth.test", "A"), ("www.sub.auth.test", "A"), ("signed.test", "SOA"),
    ("signed.test", "DS"), ("bogus.test", "SOA"), ("example.com", "A"), ("1.2.0.192.in-addr.arpa", "PTR"),
]  # fmt: skip
# Where dig and dnspython write the same rdata differently: base64 in chunks, quoted SvcParam values.
_UNSPACED = {"DNSKEY", "RRSIG", "DS", "CDS", "CDNSKEY", "NSEC3", "TLSA"}
_UNQUOTED = {"SVCB", "HTTPS"}


def comparable(rtype: str, data: str) -> str:
    if rtype in _UNSPACED:
        return "".join(data.split())
    if rtype in _UNQUOTED:
        return data.replace('"', "")
    return data


def dig(server: str, name: str, rtype: str, *options: str) -> dict:
    """What dig says: rcode, flags (as ours: without QR) and the records of
    the answer and authority sections as (name, TTL, class, type, data)."""
    result = subprocess.run(
        ["dig", f"@{server}", "+noall", "+comments", "+answer", "+authority", "+tries=1", "+time=5",
         *options, "-q", name, "-t", rtype],
        capture_output=True, text=True, check=False, timeout=30,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    sections: dict[str, set] = {"answer": set(), "authority": set()}
    section = None
    for line in result.stdout.splitlines():
        if line.startswith(";; ANSWER SECTION"):
            section = "answer"
        elif line.startswith(";; AUTHORITY SECTION"):
            section = "authority"
        elif line and not line.startswith(";") and section:
            owner, ttl, rclass, rrtype, *data = line.split(None, 4)
            sections[section].add(
                (owner.lower(), int(ttl), rclass, rrtype, comparable(rrtype, data[0] if data else ""))
            )
    flags = re.search(r";; flags: ([a-z ]*);", result.stdout).group(1).upper().split()
    return {
        "rcode": re.search(r"status: ([A-Z]+)", result.stdout).group(1),
        "flags": set(flags) - {"QR"},
        **sections,
    }


def ours(outcome: Response) -> dict:
    def section(found):
        return {(r.name.lower(), r.ttl, r.rclass, r.type, comparable(r.type, r.data)) for r in found}

    return {
        "rcode": outcome.rcode,
        "flags": set(outcome.flags),
        "answer": section(outcome.answer),
        "authority": section(outcome.authority),
    }


def ask(words, options: QueryOptions | None = None, timeout: float = 5) -> list[records.Outcome]:
    options = options or QueryOptions()
    queries = dnsclient.build_queries([parse_words(words)], options)
    return records.in_order(dnsclient.ask(queries, options, timeout), queries)


def ask_cases(server: str, cases, options: QueryOptions | None = None) -> dict:
    options = options or QueryOptions()
    requests = [parse_words([name, rtype, f"@{server}"]) for name, rtype in cases]
    found = {}
    for outcome in dnsclient.ask(dnsclient.build_queries(requests, options), options, 10):
        assert isinstance(outcome, Response), outcome
        found[(outcome.question.name, outcome.question.type)] = outcome
    return found


def key(name: str, rtype: str) -> tuple[str, str]:
    return parse_words([name]).names[0], dnsclient.type_word(rtype)


@needs(AUTH, "NETLAB_DNS_AUTH")
@needs_dig
def test_every_record_type_matches_dig_on_the_authoritative_server():
    found = ask_cases(AUTH, AUTH_CASES)
    for name, rtype in AUTH_CASES:
        assert ours(found[key(name, rtype)]) == dig(AUTH, name, rtype), (name, rtype)


@needs(AUTH, "NETLAB_DNS_AUTH")
@needs_dig
def test_norecurse_and_dnssec_match_dig_on_the_authoritative_server():
    cases = [("www.sub.auth.test", "A"), ("signed.test", "SOA"), ("signed.test", "NS"), ("auth.test", "MX")]
    found = ask_cases(AUTH, cases, QueryOptions(recurse=False, dnssec=True))
    for name, rtype in cases:
        assert ours(found[key(name, rtype)]) == dig(AUTH, name, rtype, "+norecurse", "+dnssec"), (name, rtype)
    assert "RD" not in found[key("auth.test", "MX")].flags


@needs(RESOLVER, "NETLAB_DNS_RESOLVER")
@needs_dig
def test_the_validating_resolver_matches_dig_ttls_counting_down_in_its_cache():
    for options, dig_options in ((QueryOptions(), ()), (QueryOptions(dnssec=True), ("+dnssec",))):
        expected = {(name, rtype): dig(RESOLVER, name, rtype, *dig_options) for name, rtype in RESOLVER_CASES}
        found = ask_cases(RESOLVER, RESOLVER_CASES, options)  # after dig: the cache's TTLs are as dig's or lower
        for name, rtype in RESOLVER_CASES:
            theirs, mine = expected[(name, rtype)], ours(found[key(name, rtype)])
            assert (mine["rcode"], mine["flags"]) == (theirs["rcode"], theirs["flags"]), (name, rtype)
            for section in ("answer", "authority"):
                assert {r[:1] + r[2:] for r in mine[section]} == {r[:1] + r[2:] for r in theirs[section]}, (name, rtype)
                dig_ttls = {r[:1] + r[2:]: r[1] for r in theirs[section]}
                for record in mine[section]:
                    assert dig_ttls[record[:1] + record[2:]] - 2 <= record[1] <= dig_ttls[record[:1] + record[2:]]


@needs(AUTH, "NETLAB_DNS_AUTH")
@needs_dig
def test_a_truncated_udp_answer_is_asked_again_over_tcp():
    (outcome,) = ask(["big.auth.test", "TXT", f"@{AUTH}"])
    assert (outcome.server.transport, outcome.transport, outcome.rcode) == ("udp", "tcp", "NOERROR")
    assert "TC" not in outcome.flags
    assert len(outcome.answer) == 40
    assert outcome.size > 4000
    assert ours(outcome) == dig(AUTH, "big.auth.test", "TXT")  # dig falls back to TCP too
    (udp_only,) = ask(["big.auth.test", "TXT", f"@tcp://{AUTH}"])
    assert udp_only.transport == "tcp"


@needs(AUTH, "NETLAB_DNS_AUTH")
def test_tcp_when_asked():
    (outcome,) = ask(["alias.auth.test", f"@{AUTH}"], QueryOptions(transport="tcp"))
    assert (outcome.transport, outcome.rcode, outcome.ok) == ("tcp", "NOERROR", True)


@needs(RESOLVER, "NETLAB_DNS_RESOLVER")
def test_dot_with_the_lab_ca_by_address_and_by_name():
    outcomes = ask(
        ["alias.auth.test", f"@tls://{RESOLVER}", f"@tls://{RESOLVER}#resolver.lab.test"], QueryOptions(ca_file=CA)
    )
    assert [(o.transport, o.rcode, o.ok) for o in outcomes] == [("tls", "NOERROR", True)] * 2
    assert {o.server.tls_name for o in outcomes} == {None, "resolver.lab.test"}
    assert outcomes[0].chain.records == outcomes[1].chain.records


@needs(RESOLVER, "NETLAB_DNS_RESOLVER")
def test_dot_fails_verification_without_the_ca_or_for_another_name_and_insecure_skips_it():
    (untrusted,) = ask(["alias.auth.test", f"@tls://{RESOLVER}"])
    assert isinstance(untrusted, Failure)
    assert untrusted.kind is FailureKind.TLS_VERIFY
    assert "unable to get local issuer certificate" in untrusted.reason
    (wrong,) = ask(["alias.auth.test", f"@tls://{RESOLVER}#other.lab.test"], QueryOptions(ca_file=CA))
    assert (wrong.kind, "other.lab.test" in wrong.reason) == (FailureKind.TLS_VERIFY, True)
    (insecure,) = ask(["alias.auth.test", f"@tls://{RESOLVER}"], QueryOptions(insecure=True))
    assert insecure.ok


@needs(SILENT, "NETLAB_DNS_SILENT")
def test_a_silent_server_times_out_at_the_deadline_with_its_reason_while_others_answer():
    start = time.monotonic()
    outcomes = ask(["www.lab.test", f"@{SILENT}", f"@tcp://{SILENT}", "@127.0.0.1"], timeout=1)
    elapsed = time.monotonic() - start
    assert 1 <= elapsed < 1.5
    by_server = {o.server.label: o for o in outcomes}
    assert by_server["127.0.0.1"].ok
    udp, tcp = by_server[SILENT], by_server[f"tcp://{SILENT}"]
    assert (udp.kind, udp.reason) == (FailureKind.TIMEOUT, "no answer within 1s (asked 3 times)")
    assert (tcp.kind, tcp.reason) == (FailureKind.TIMEOUT, "no answer within 1s")
    assert 950 <= udp.elapsed_ms <= 1500
    assert not records.succeeded(outcomes)


@needs(SERVFAIL, "NETLAB_DNS_SERVFAIL")
def test_servfail_is_a_response_with_its_rcode_and_no_success():
    (outcome,) = ask(["www.lab.test", f"@{SERVFAIL}"])
    assert isinstance(outcome, Response)
    assert (outcome.rcode, outcome.ok, outcome.answer) == ("SERVFAIL", False, ())
    assert not records.succeeded([outcome])


@needs(RESOLVER, "NETLAB_DNS_RESOLVER")
def test_dnssec_ad_flag_and_rrsigs_on_signed_test_bogus_is_servfail_with_the_reason():
    (signed,) = ask(["signed.test", "SOA", f"@{RESOLVER}"], QueryOptions(dnssec=True))
    assert "AD" in signed.flags
    assert {r.type for r in signed.answer} == {"SOA", "RRSIG"}
    assert signed.ok  # the RRSIG is not the data asked for, the SOA is
    (plain,) = ask(["signed.test", "SOA", f"@{RESOLVER}"])
    assert ("AD" in plain.flags, {r.type for r in plain.answer}) == (True, {"SOA"})  # AD asked for as dig does
    (unsigned,) = ask(["auth.test", "SOA", f"@{RESOLVER}"], QueryOptions(dnssec=True))
    assert "AD" not in unsigned.flags
    (bogus,) = ask(["bogus.test", "SOA", f"@{RESOLVER}"], QueryOptions(dnssec=True))
    assert (bogus.rcode, bogus.answer) == ("SERVFAIL", ())
    assert bogus.extended_errors  # why (EDE 9 DNSKEY Missing at first, EDE 6 DNSSEC Bogus once cached)
    assert re.match(r"EDE (9|6) ", bogus.extended_errors[0])
    (unchecked,) = ask(["bogus.test", "SOA", f"@{RESOLVER}"], QueryOptions(checking_disabled=True))
    assert (unchecked.rcode, "CD" in unchecked.flags, "AD" in unchecked.flags) == ("NOERROR", True, False)


HOSTILE = {
    "csi": b"\x1b[2J\x1b[H\x1b[31mscreen cleared\x1b[0m",
    "osc8": b"\x1b]8;;http://example.invalid/\x1b\\click me\x1b]8;;\x1b\\",
    "markup": b"[bold red]x[/]",
    "nul": b"nul\x00byte",
    "binary": b"not utf-8: \xff\xfe \xc0\x80 \xed\xa0\x80",
    "control": b"\x08\x08\x08\roverwritten\x07",
}


@needs(AUTH, "NETLAB_DNS_AUTH")
def test_hostile_txt_is_kept_byte_exact():
    outcomes = ask([*(f"{label}.hostile.auth.test" for label in HOSTILE), "TXT", f"@{AUTH}"])
    for outcome in outcomes:
        label = outcome.question.name.split(".")[0]
        (record,) = outcome.answer
        assert character_strings(record.data) == (HOSTILE[label],), label
        assert record.data.isprintable()  # presentation form: \DDD for every byte a terminal would act on
    (everything,) = ask(["hostile.auth.test", "TXT", f"@{AUTH}"])
    assert {character_strings(r.data)[0] for r in everything.answer} >= set(HOSTILE.values())


@needs(AUTH, "NETLAB_DNS_AUTH")
def test_hostile_owner_names_stay_in_presentation_form():
    (outcome,) = ask([r"esc\027[31mred.hostile.auth.test", f"@{AUTH}"])
    assert outcome.question.name == r"esc\027[31mred.hostile.auth.test."
    assert [r.name for r in outcome.answer] == [r"esc\027[31mred.hostile.auth.test."]


@needs(AUTH, "NETLAB_DNS_AUTH")
def test_cname_chains_of_both_families():
    outcomes = {o.question.type: o for o in ask(["alias.auth.test", "A", "AAAA", f"@{AUTH}"])}
    a, aaaa = outcomes["A"].chain, outcomes["AAAA"].chain
    assert a.names == aaaa.names == ("alias.auth.test.", "www.auth.test.", "web.auth.test.")
    assert [r.data for r in a.records] == ["192.0.2.10"]
    assert [r.data for r in aaaa.records] == ["2001:db8::10"]
    (v6only,) = ask(["v6only.auth.test", "A", f"@{AUTH}"])
    assert (v6only.rcode, v6only.has_data, v6only.ok) == ("NOERROR", False, False)


@needs(SERVFAIL, "NETLAB_DNS_SERVFAIL")
@needs(SILENT, "NETLAB_DNS_SILENT")
def test_servers_side_by_side_name_the_odd_ones():
    outcomes = ask(["alias.auth.test", f"@{AUTH}", f"@{RESOLVER}", f"@{SERVFAIL}", f"@{SILENT}"], timeout=1)
    (comparison,) = records.compare(outcomes)
    assert comparison.reference.address == AUTH
    assert [s.address for s in comparison.rcode_differs] == [SERVFAIL]
    assert [s.address for s in comparison.answer_differs] == [SERVFAIL]
    assert [s.address for s in comparison.no_answer] == [SILENT]
    assert [o.server.address for o in comparison.outcomes] == [AUTH, RESOLVER, SERVFAIL, SILENT]
    assert comparison.ttl_differs in ((), (comparison.outcomes[1].server,))  # the resolver's cache may count down


def test_a_refused_port_is_refused_at_once():
    start = time.monotonic()
    udp, tcp = ask(["www.lab.test", "@127.0.0.9", "@tcp://127.0.0.9"], timeout=3)
    assert time.monotonic() - start < 1
    assert (udp.kind, tcp.kind) == (FailureKind.CONNECTION_REFUSED, FailureKind.CONNECTION_REFUSED)
    assert "UDP" in udp.reason and "TCP" in tcp.reason


def test_a_network_without_a_route_is_unreachable_and_nothing_leaves():
    (outcome,) = ask(["www.lab.test", "@192.0.2.53"], timeout=3)  # the lab has no default route: no packet is sent
    assert (outcome.kind, outcome.reason) == (FailureKind.UNREACHABLE, "network unreachable")


def test_system_is_resolv_conf_and_a_server_may_be_named():
    outcomes = ask(["www.lab.test", "@system"])
    assert [o.server.label for o in outcomes] == [f"{a} (system)" for a in dnsclient.system_nameservers()]
    assert all(o.ok for o in outcomes)
    assert [r.data for r in outcomes[0].chain.records] == ["127.1.0.10"]
    with pytest.raises(BadInput, match=r"server nope\.lab\.test: no address"):
        dnsclient.resolve_servers([parse_server("nope.lab.test")])
    spec = parse_server("web.lab.test:5353")  # resolved by the system resolver (dnsmasq here)
    assert [(s.address, s.port) for s in dnsclient.resolve_servers([spec])[spec]] == [("127.1.0.10", 5353)]


def test_a_class_other_than_in():
    (outcome,) = ask(["version.bind", "TXT", "@127.0.0.1"], QueryOptions(rclass="CH"))
    assert (outcome.question.rclass, outcome.rcode) == ("CH", "NOERROR")
    assert outcome.answer[0].rclass == "CH"


def test_stopping_early_closes_every_socket():
    before = len(os.listdir("/proc/self/fd"))
    queries = dnsclient.build_queries([parse_words(["www.lab.test", "web.lab.test", "@127.0.0.1", "@127.0.0.9"])])
    outcomes = dnsclient.ask(queries, timeout=3)
    next(outcomes)
    outcomes.close()
    assert len(os.listdir("/proc/self/fd")) == before


def test_an_answer_to_another_question_is_not_taken(tmp_path):
    """A server that answers first with the wrong question, then right: only the right one counts."""
    import dns.message

    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.54", 0))
    port = server.getsockname()[1]

    def serve():
        data, peer = server.recvfrom(4096)
        query = dns.message.from_wire(data)
        wrong = dns.message.make_response(dns.message.make_query("other.lab.test", "A"))
        wrong.id = query.id
        server.sendto(wrong.to_wire(), peer)
        server.sendto(b"\x00", peer)  # junk
        server.sendto(dns.message.make_response(query).to_wire(), peer)

    import threading

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    (outcome,) = ask(["www.lab.test", f"@127.0.0.54:{port}"], timeout=3)
    thread.join(3)
    server.close()
    assert isinstance(outcome, Response)
    assert outcome.question.name == "www.lab.test."
    assert outcome.elapsed_ms < 1000


def test_a_malformed_reply_is_a_failure_with_its_reason():
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.54", 0))
    port = server.getsockname()[1]
    import threading

    def serve():
        data, peer = server.recvfrom(4096)
        question = data[12 : data.index(b"\x00", 12) + 5]
        header = data[:2] + b"\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00"  # a response with one answer...
        server.sendto(header + question + b"\xc0\x0c\x00\x01", peer)  # ... cut short

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    (outcome,) = ask(["www.lab.test", f"@127.0.0.54:{port}"], timeout=3)
    thread.join(3)
    server.close()
    assert (outcome.kind, outcome.reason.startswith("malformed reply")) == (FailureKind.MALFORMED, True)


@needs(FAR, "NETLAB_DNS_FAR")
def test_a_thousand_names_through_a_resolver_20_ms_away_within_a_second():
    names = [f"n{i}.auth.test" for i in range(1, 1001)]
    ask([names[0], f"@{FAR}"])  # the far resolver's cache is not what is measured: its round trip is
    options = QueryOptions()
    queries = dnsclient.build_queries([parse_words([*names, "A", f"@{FAR}"])], options)
    start = time.monotonic()
    outcomes = list(dnsclient.ask(queries, options, timeout=5))
    elapsed = time.monotonic() - start
    assert sum(o.ok for o in outcomes) == 1000
    assert elapsed < 1.0, elapsed


@needs(RESOLVER, "NETLAB_DNS_RESOLVER")
def test_a_thousand_names_on_loopback_every_one_answered_once():
    names = [f"n{i}.auth.test" for i in range(1, 1001)]
    outcomes = ask([*names, f"@{RESOLVER}"], timeout=10)
    assert sorted(o.question.name for o in outcomes) == sorted(n + "." for n in names)
    assert all(o.ok for o in outcomes)


def test_the_protocol_modules_are_not_imported_for_the_other_commands():
    code = "import netdiag.cli, netdiag.records, sys; print(sorted(m for m in sys.modules if m.startswith('dns')))"
    result = subprocess.run(
        [os.sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=Path(__file__).parents[1]
    )
    assert result.stdout.strip() == "[]"


DOH_CONF = """server:
    directory: "{run}"
    chroot: ""
    username: ""
    pidfile: "{run}/unbound.pid"
    logfile: "{run}/unbound.log"
    use-syslog: no
    do-daemonize: yes
    num-threads: 1
    so-reuseport: no
    interface: {address}@443
    https-port: 443
    tls-service-key: "{lab}/resolver.key"
    tls-service-pem: "{lab}/resolver.pem"
    access-control: 127.0.0.0/8 allow
    do-ip6: no
    do-not-query-localhost: no
    module-config: "iterator"
    local-zone: "." refuse
    local-zone: "auth.test." transparent
forward-zone:
    name: "auth.test."
    forward-addr: {address}@53
remote-control:
    control-enable: no
"""


@pytest.fixture
def doh_server(tmp_path):
    """DNS over HTTPS on RESOLVER:443: an Unbound of this test's own that
    forwards to the lab's resolver, with the lab resolver's certificate."""
    lab_run = os.environ.get("NETLAB_RUN", "")
    if not RESOLVER or not Path(lab_run, "resolver.pem").exists() or shutil.which("unbound") is None:
        pytest.skip("needs the lab's resolver, its certificate and unbound")
    conf = tmp_path / "unbound.conf"
    conf.write_text(DOH_CONF.format(run=tmp_path, lab=lab_run, address=RESOLVER))
    subprocess.run(["unbound", "-c", str(conf)], check=True, timeout=10)
    pidfile = tmp_path / "unbound.pid"
    deadline = time.monotonic() + 10
    while not (pidfile.exists() and pidfile.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.02)  # the daemon writes it after its parent has returned: on a busy machine, later
    pid = int(pidfile.read_text())
    try:
        yield RESOLVER
    finally:
        os.kill(pid, 15)


def test_doh_with_the_lab_ca_and_failures_of_its_own(doh_server):
    options = QueryOptions(ca_file=CA)
    answered, missing = ask(["www.auth.test", f"@https://{doh_server}", f"@https://{doh_server}/nope"], options)
    assert (answered.transport, answered.rcode, answered.server.url) == (
        "https",
        "NOERROR",
        f"https://{doh_server}/dns-query",
    )
    assert [r.data for r in answered.chain.records] == ["192.0.2.10"]
    assert (missing.kind, missing.reason) == (FailureKind.HTTP, "the server answered HTTP status 404")
    (big,) = ask(["big.auth.test", "TXT", f"@{doh_server}"], QueryOptions(transport="https", ca_file=CA))
    assert (big.transport, len(big.answer)) == ("https", 40)  # no truncation over HTTPS
    (untrusted,) = ask(["www.auth.test", f"@https://{doh_server}"])
    assert (untrusted.kind, "unable to get local issuer certificate" in untrusted.reason) == (
        FailureKind.TLS_VERIFY,
        True,
    )


def test_doh_without_its_packages_says_which_to_install():
    code = (
        "import dns._features; dns._features.force('doh', False)\n"
        "from netdiag import dnsclient\n"
        "try:\n"
        "    dnsclient.resolve_servers([dnsclient.parse_server('https://127.0.0.3')])\n"
        "except dnsclient.MissingPackage as exc:\n"
        "    print(exc.exit_status, exc)\n"
    )
    result = subprocess.run([os.sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30)
    assert (
        result.stdout.strip()
        == "3 DNS over HTTPS needs the packages of netdiag's doh extra (dnspython[doh]): pip install 'netdiag[doh]'"
    )
