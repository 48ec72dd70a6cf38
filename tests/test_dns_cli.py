"""``netdiag dns`` through the CLI, as a process, against the lab's servers:
the protocol view (types, @servers side by side, -x, -f, --short, JSON,
transports) with dig as the reference, and --compare (the system view beside
DNS). Servers: scripts/lab/dns.sh; a test whose server the lab lacks skips."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.lab import run_netdiag

pytestmark = pytest.mark.lab

AUTH = os.environ.get("NETLAB_DNS_AUTH", "")
RESOLVER = os.environ.get("NETLAB_DNS_RESOLVER", "")
CA = os.environ.get("NETLAB_DNS_CA", "")
SILENT = os.environ.get("NETLAB_DNS_SILENT", "")
SERVFAIL = os.environ.get("NETLAB_DNS_SERVFAIL", "")
needs_servers = pytest.mark.skipif(
    not (AUTH and RESOLVER and SILENT and SERVFAIL), reason="the lab has no DNS servers (scripts/lab/dns.sh)"
)


def dig_short(*args: str) -> list[str]:
    done = subprocess.run(["dig", "+short", "+time=2", "+tries=1", *args], capture_output=True, text=True, check=False)
    return done.stdout.splitlines()


def netdiag(*args: str) -> tuple[int, str, str]:
    done = run_netdiag("dns", *args)
    return done.returncode, done.stdout.decode(), done.stderr.decode()


@needs_servers
@pytest.mark.parametrize(
    ("name", "rtype"),
    [
        ("alias.auth.test", "A"),
        ("auth.test", "MX"),
        ("hostile.auth.test", "TXT"),
        ("_sip._tcp.auth.test", "SRV"),
        ("auth.test", "CAA"),
        ("v6only.auth.test", "AAAA"),
        ("x.wild.auth.test", "TXT"),
        ("svc.auth.test", "HTTPS"),
        ("auth.test", "SOA"),
    ],
)
def test_short_is_what_dig_short_says(name, rtype):
    status, stdout, _ = netdiag(name, rtype, f"@{AUTH}", "--short")
    assert sorted(stdout.splitlines()) == sorted(dig_short(f"@{AUTH}", name, rtype))
    assert status == 0


@needs_servers
def test_servers_side_by_side_one_silent_is_a_difference_and_exit_1():
    status, stdout, stderr = netdiag("alias.auth.test", f"@{AUTH}", f"@{RESOLVER}", f"@{SILENT}", "-t", "1", "--json")
    assert status == 1
    [result] = json.loads(stdout)["results"]
    statuses = [s["status"] for s in result["servers"]]
    assert statuses == ["answered", "answered", "timeout"]
    assert result["agree"] is False and result["differences"][SILENT] == ["no answer"]
    assert result["differences"][AUTH] == result["differences"][RESOLVER] == []
    assert result["servers"][0]["chain"] == ["alias.auth.test.", "www.auth.test.", "web.auth.test."]
    assert "AA" in result["servers"][0]["flags"] and "AA" not in result["servers"][1]["flags"]
    assert "2 NOERROR, 1 timeout" in stderr


@needs_servers
def test_plain_rows_carry_every_record_with_its_server_and_ttl():
    status, stdout, _ = netdiag("www.auth.test", "A", "AAAA", f"@{AUTH}")
    lines = stdout.splitlines()
    assert lines[0].split() == ["QUESTION", "QTYPE", "SERVER", "STATUS", "FLAGS", "MS", "NAME", "TTL", "TYPE", "DATA"]
    data = {(row.split()[1], row.split()[-1]) for row in lines[1:]}
    assert {("A", "192.0.2.10"), ("AAAA", "2001:db8::10")} <= data
    assert status == 0


@needs_servers
def test_servfail_nxdomain_and_no_data_are_exit_1_with_the_rcode():
    for args, rcode in (
        (("auth.test", f"@{SERVFAIL}"), "SERVFAIL"),
        (("n1001.auth.test", f"@{AUTH}"), "NXDOMAIN"),
        (("v6only.auth.test", "A", f"@{AUTH}"), "NOERROR"),  # no data
        (("bogus.test", f"@{RESOLVER}"), "SERVFAIL"),  # validation fails
    ):
        status, stdout, _ = netdiag(*args, "--json")
        assert status == 1, args
        assert json.loads(stdout)["results"][0]["servers"][0]["rcode"] == rcode, args


@needs_servers
def test_dnssec_shows_the_ad_flag_and_signatures():
    _, stdout, _ = netdiag("signed.test", f"@{RESOLVER}", "--dnssec", "--json")
    server = json.loads(stdout)["results"][0]["servers"][0]
    assert "AD" in server["flags"] and {r["type"] for r in server["answer"]} == {"A", "RRSIG"}


@needs_servers
def test_truncated_answers_come_over_tcp():
    _, stdout, _ = netdiag("big.auth.test", "TXT", f"@{AUTH}", "--json")
    server = json.loads(stdout)["results"][0]["servers"][0]
    assert server["server"]["transport"] == "udp" and server["transport"] == "tcp" and len(server["answer"]) == 40


@needs_servers
def test_dns_over_tls_verified_with_the_lab_ca_and_refused_without_it():
    status, stdout, _ = netdiag("auth.test", f"@{RESOLVER}", "--tls", "--ca", CA, "--json")
    server = json.loads(stdout)["results"][0]["servers"][0]
    assert status == 0 and server["transport"] == "tls" and server["rcode"] == "NOERROR"
    status, stdout, _ = netdiag("auth.test", f"@{RESOLVER}", "--tls", "--json")
    server = json.loads(stdout)["results"][0]["servers"][0]
    assert status == 1 and server["status"] == "tls-verify"


@needs_servers
def test_reverse_and_a_batch_from_stdin():
    status, stdout, _ = netdiag("-x", "192.0.2.10", f"@{AUTH}", "--short")
    assert (status, stdout) == (0, "web.auth.test.\n")
    done = run_netdiag("dns", "-f", "-", f"@{AUTH}", "--short", stdin=b"n1.auth.test\n# a comment\nn2.auth.test TXT\n")
    assert done.returncode == 1  # n2 has no TXT
    assert done.stdout.decode().splitlines() == ["192.0.2.100"]


@needs_servers
def test_hostile_text_on_a_terminal_is_never_an_escape():
    done = subprocess.run(
        ["script", "-qc", f"{' '.join(run_netdiag_args())} hostile.auth.test TXT @{AUTH}", "/dev/null"],
        capture_output=True,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )
    shown = done.stdout.decode("utf-8", "replace")
    assert "screen cleared" in shown
    assert "\x1b[2J" not in shown and "\x1b]8" not in shown and "\x07" not in shown


def run_netdiag_args() -> list[str]:
    from tests.lab import netdiag_command

    return netdiag_command("dns")


def test_compare_flags_a_hosts_file_override_and_agrees_elsewhere():
    status, stdout, _ = netdiag("both.lab.test", "www.lab.test", "nope.lab.test", "--compare", "--json")
    assert status == 1
    results = {r["query"]: r for r in json.loads(stdout)["results"]}
    assert results["both.lab.test"]["verdict"] == "the hosts file overrides DNS"
    assert results["both.lab.test"]["dns"] == {"127.0.0.1 (system)": ["127.1.0.51"]}
    assert results["www.lab.test"]["agrees"] and results["nope.lab.test"]["agrees"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("mx",), "read as a type"),
        (("x.test", "--tcp", "--tls", "@127.0.0.1"), "exclude each other"),
        (("x.test", "+short"), "--short"),
        (("x.test", "A", "--compare"), "--compare"),
        (("-x", "not-an-address"), "not an IP address"),
        (("x.test", "@"), ""),
        (("version.bind", "CH", "TXT", "@127.0.0.1"), "a class here: give it as --class CH"),
        (("-f", "/dev/zero", "@127.0.0.1"), "a line longer than 4,096 characters"),
    ],
)
def test_bad_input_is_one_line_exit_2(args, message):
    status, stdout, stderr = netdiag(*args)
    assert status == 2 and stdout == "" and stderr.count("\n") == 1 and message in stderr, stderr


@needs_servers
def test_a_batch_takes_the_command_lines_types_and_servers():
    done = run_netdiag("dns", "-f", "-", "MX", f"@{AUTH}", "--short", stdin=b"auth.test # the zone's apex\n")
    assert done.returncode == 0, done.stderr
    assert sorted(done.stdout.decode().splitlines()) == sorted(dig_short(f"@{AUTH}", "auth.test", "MX"))


@needs_servers
def test_compare_says_what_a_failing_server_answered_and_keeps_every_spelling():
    status, stdout, _ = netdiag("nope.lab.test", "--compare", f"@{SERVFAIL}", "--json")
    [result] = json.loads(stdout)["results"]
    assert status == 1 and result["verdict"] == f"{SERVFAIL} answered SERVFAIL"
    status, stdout, _ = netdiag("www.lab.test", "WWW.LAB.TEST", "www.lab.test.", "--compare", "--json")
    results = json.loads(stdout)["results"]
    assert status == 0 and [r["verdict"] for r in results] == ["agrees"] * 3


@needs_servers
def test_an_extended_error_reaches_a_pipe_and_a_cache_counting_down_is_no_difference():
    _, _, stderr = netdiag("www.bogus.test", f"@{RESOLVER}")  # a name no other test asks: not a cached failure
    assert "www.bogus.test. A @" in stderr and "SERVFAIL, EDE " in stderr and "chain of trust" in stderr
    netdiag("alias.auth.test", f"@{RESOLVER}")  # cached now; its TTL counts down from here
    import time

    time.sleep(1.1)
    status, stdout, _ = netdiag("alias.auth.test", f"@{RESOLVER}", f"@{AUTH}", "--json")
    [result] = json.loads(stdout)["results"]
    assert status == 0 and result["agree"] is True, result["differences"]


@needs_servers
def test_on_a_narrow_terminal_the_data_is_never_cut():
    done = subprocess.run(
        ["script", "-qc", f"{' '.join(run_netdiag_args())} auth.test SOA @{AUTH}", "/dev/null"],
        capture_output=True,
        check=False,
        env={**os.environ, "COLUMNS": "60"},
    )
    assert "hostmaster.auth.test. 2024120101" in done.stdout.decode().replace("\r\n", " ").replace("\n", " ")
