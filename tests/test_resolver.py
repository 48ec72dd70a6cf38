"""Resolver tests against the lab's real dnsmasq and hosts file."""

import contextlib
import ipaddress
import socket
import threading
import time

import pytest

from netdiag import resolver
from netdiag.errors import ResolveError
from netdiag.models import DnsOutcome
from tests.lab import ROOT, run_netdiag, with_file_over, with_resolv_conf

pytestmark = pytest.mark.lab


def test_forward_cname_gives_canonical_aliases_and_both_families():
    answer = resolver.lookup("www.lab.test")
    assert answer.outcome is DnsOutcome.OK
    assert answer.canonical == "web.lab.test"
    assert "www.lab.test" in answer.aliases
    assert set(answer.addresses) == {"127.1.0.10", "fd00:1ab:1::10"}
    assert answer.source == "dns"
    assert answer.elapsed_ms > 0


def test_forward_deduplicates_addresses():
    answer = resolver.lookup("multi.lab.test")
    assert sorted(answer.addresses) == ["127.1.0.31", "127.1.0.32", "127.1.0.33"]


def test_hosts_file_answers_are_marked():
    assert resolver.lookup("hostsonly", resolver.HostsFile.load()).source == "hosts"
    reverse = resolver.lookup("127.1.0.5", resolver.HostsFile.load())
    assert (reverse.ptr, reverse.source, reverse.confirmed) == ("hostsonly.lab.test", "hosts", True)


def test_aliases_are_the_whole_chain_of_either_family_each_once():
    assert resolver.lookup("c6a.lab.test").aliases == ("c6a.lab.test", "c6b.lab.test")  # AAAA only
    assert resolver.lookup("Www.Lab.Test.").aliases == ("Www.Lab.Test.",)  # not again as www.lab.test
    assert resolver.lookup("web.lab.test").aliases == ()


def test_international_names_use_idna2008_as_getent_does():
    fass = resolver.lookup("faß.lab.test")
    assert (fass.addresses, fass.canonical) == (("127.1.0.41",), "faß.lab.test")  # not fass.lab.test
    buecher = resolver.lookup("bücher.lab.test")
    assert (buecher.addresses, buecher.aliases) == (("127.1.0.43",), ())  # no CNAME: none shown
    assert resolver.lookup("xn--fa-hia.lab.test").canonical == "faß.lab.test"


def test_v4_mapped_address_is_looked_up_as_its_ipv4_address():
    answer = resolver.lookup("::ffff:127.1.0.10")
    assert (answer.outcome, answer.ptr, answer.confirmed) == (DnsOutcome.OK, "web.lab.test", True)


def test_source_is_the_one_that_answered_in_nsswitch_order(tmp_path):
    hosts = resolver.HostsFile.load()
    both = resolver.lookup("both.lab.test", hosts)  # /etc/hosts 127.1.0.50, DNS 127.1.0.51
    assert (both.addresses, both.source) == (("127.1.0.50",), "hosts")
    conf = tmp_path / "nsswitch.conf"
    conf.write_text((ROOT / "scripts/lab/nsswitch.conf").read_text().replace("files dns", "dns files"))
    result = run_netdiag(
        "dns", "--json", "both.lab.test", "hostsonly.lab.test", prefix=with_file_over(conf, "/etc/nsswitch.conf")
    )
    import json

    rows = {r["query"]: (r["addresses"], r["source"]) for r in json.loads(result.stdout)["results"]}
    assert rows == {"both.lab.test": (["127.1.0.51"], "dns"), "hostsonly.lab.test": (["127.1.0.5"], "hosts")}


def test_queries_that_break_the_resolver_are_answered_not_raised():
    for query in ("a\x00b", "a\udcffb.lab.test", "x" * 300, "fe80::1%" + "z" * 64, "..", "-"):
        answer = resolver.lookup(query)
        assert answer.outcome is not DnsOutcome.OK and answer.query == query


def test_reverse_confirms_or_refutes():
    good = resolver.lookup("127.1.0.10")
    assert (good.ptr, good.confirmed) == ("web.lab.test", True)
    liar = resolver.lookup("127.1.0.66")
    assert (liar.ptr, liar.confirmed) == ("liar.lab.test", False)
    v6 = resolver.lookup("fd00:1ab:1::10")
    assert (v6.ptr, v6.confirmed) == ("web.lab.test", True)


def test_distinct_negative_outcomes():
    assert resolver.lookup("nope.lab.test").outcome is DnsOutcome.NXDOMAIN
    assert resolver.lookup("127.9.9.9").outcome is DnsOutcome.NO_PTR
    assert resolver.lookup("outside.example").outcome is DnsOutcome.FAILURE  # dnsmasq refuses


def test_resolve_addresses_for_targets():
    assert resolver.resolve_addresses("web.lab.test", socket.AF_INET) == [ipaddress.ip_address("127.1.0.10")]
    with pytest.raises(ResolveError, match="NXDOMAIN"):
        resolver.resolve_addresses("nope.lab.test")


@pytest.fixture
def blackhole_dns(tmp_path):
    """A DNS server at 127.0.0.53 that reads queries and never answers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.53", 53))
    stop = threading.Event()

    def swallow():
        sock.settimeout(0.1)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                sock.recv(4096)

    thread = threading.Thread(target=swallow, daemon=True)
    thread.start()
    conf = tmp_path / "resolv.conf"
    conf.write_text("nameserver 127.0.0.53\noptions timeout:10 attempts:1\n")
    yield conf
    stop.set()
    thread.join()
    sock.close()


def test_slow_server_times_out_without_stalling_others_or_exit(blackhole_dns):
    start = time.monotonic()
    result = run_netdiag(
        "dns", "--json", "--timeout", "1", "slow.lab.test", "hostsonly", prefix=with_resolv_conf(blackhole_dns)
    )
    elapsed = time.monotonic() - start
    assert result.returncode == 1, result.stderr
    import json

    by_query = {r["query"]: r for r in json.loads(result.stdout)["results"]}
    assert by_query["slow.lab.test"]["status"] == "timeout"
    assert by_query["hostsonly"]["status"] == "ok"  # the hosts file still answered
    assert elapsed < 4, f"exit took {elapsed:.1f}s: a stuck lookup held the process"


def test_timeout_bounds_the_whole_batch_not_each_query(blackhole_dns):
    names = [f"slow{i}.lab.test" for i in range(100)]  # more than there are worker threads
    start = time.monotonic()
    result = run_netdiag("dns", "--json", "-t", "2", *names, "hostsonly", prefix=with_resolv_conf(blackhole_dns))
    elapsed = time.monotonic() - start
    import json

    statuses = {r["query"]: r["status"] for r in json.loads(result.stdout)["results"]}
    assert statuses.pop("hostsonly") == "ok" and set(statuses.values()) == {"timeout"} and len(statuses) == 100
    assert elapsed < 4, f"{elapsed:.1f}s for -t 2: queued queries waited behind stuck ones"


def test_absent_server_is_a_resolver_failure(tmp_path):
    conf = tmp_path / "resolv.conf"
    conf.write_text("nameserver 127.0.0.54\noptions timeout:1 attempts:1\n")
    result = run_netdiag("dns", "absent.lab.test", prefix=with_resolv_conf(conf))
    assert result.returncode == 1
    assert b"resolver failure" in result.stdout


@pytest.fixture
def slow_dns(tmp_path):
    """A DNS server at 127.0.0.53 that answers as the lab's does, one second late."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.53", 53))
    sock.settimeout(0.1)
    stop = threading.Event()

    def relay(query: bytes, client) -> None:
        time.sleep(1.0)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as upstream:
            upstream.settimeout(2)
            upstream.sendto(query, ("127.0.0.1", 53))
            with contextlib.suppress(OSError):
                sock.sendto(upstream.recv(4096), client)

    def serve() -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                query, client = sock.recvfrom(4096)
                threading.Thread(target=relay, args=(query, client), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    conf = tmp_path / "resolv.conf"
    conf.write_text("nameserver 127.0.0.53\noptions timeout:5 attempts:1\n")
    yield conf
    stop.set()
    thread.join()
    sock.close()


def test_a_slow_server_costs_one_round_trip_not_three(slow_dns):
    # getaddrinfo asks A and AAAA at once: the answer is there after 1 s. The CNAME
    # chain would take 1 s more: past -t 1.8, so the answer comes without it, in time.
    start = time.monotonic()
    result = run_netdiag("dns", "--json", "-t", "1.8", "www.lab.test", prefix=with_resolv_conf(slow_dns))
    elapsed = time.monotonic() - start
    import json

    [answer] = json.loads(result.stdout)["results"]
    assert answer["status"] == "ok" and set(answer["addresses"]) == {"127.1.0.10", "fd00:1ab:1::10"}
    assert answer["canonical"] == "web.lab.test" and elapsed < 2.8
