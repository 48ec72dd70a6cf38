"""netdiag sweep against the lab: real sockets, real processes, exact answers."""

from __future__ import annotations

import ipaddress
import json
import signal
import socket
import subprocess
import threading
import time

import pytest

from netdiag.errors import BadInput
from netdiag.sweep import SweepOptions
from tests.lab import netdiag_command, run_netdiag, with_resolv_conf, without_net_raw

pytestmark = pytest.mark.lab


def sweep_json(*args: str, prefix=(), timeout: float = 60) -> tuple[int, dict, str]:
    result = run_netdiag("sweep", "--json", *args, prefix=prefix, timeout=timeout)
    document = json.loads(result.stdout) if result.stdout.strip() else {}
    return result.returncode, document, result.stderr.decode()


def alive_set(document: dict) -> set[str]:
    return {r["address"] for r in document["results"] if r["alive"]}


def expected_127_3(network: str) -> set[str]:
    """127.3/16 answers on even last octets only (the lab's firewall)."""
    return {str(a) for a in ipaddress.ip_network(network).hosts() if int(a) % 2 == 0}


# A shell prefix for a process with no ICMP socket of any kind: a fresh network
# namespace (ping_group_range is off there by default) and no CAP_NET_RAW.
NO_ICMP = ["unshare", "--net", "--", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", *without_net_raw()]

METHODS = {
    "icmp-raw": (["--method", "icmp"], (), "icmp (raw socket)"),
    "icmp-dgram": (["--method", "icmp"], tuple(without_net_raw()), "icmp (dgram socket)"),
    "ping": (["--method", "ping", "--workers", "128"], (), "ping (system command)"),
    "tcp": (["--method", "tcp"], (), "tcp (connect to 80,443)"),
}


@pytest.mark.parametrize("method", METHODS)
def test_exact_alive_sets_for_every_method(method):
    args, prefix, label = METHODS[method]
    status, doc, stderr = sweep_json(*args, "-n", "-t", "1", "127.3.0.0/25", "127.1.0.0/28", "127.2.0.0/28",
                                     prefix=prefix)  # fmt: skip
    assert status == 0, stderr
    expected = expected_127_3("127.3.0.0/25") | {f"127.1.0.{i}" for i in range(1, 15)}
    assert alive_set(doc) == expected
    assert len(doc["results"]) == 126 + 14 + 14
    assert doc["summary"]["method"] == label
    down = {r["address"] for r in doc["results"] if r["state"] == "down"}
    assert {f"127.2.0.{i}" for i in range(1, 15)} <= down


def test_all_dead_exits_1():
    status, doc, _ = sweep_json("-n", "-t", "0.3", "127.2.0.0/28")
    assert status == 1
    assert doc["summary"]["up"] == 0 and doc["summary"]["total"] == 14
    assert all(r["state"] == "down" and r["rtt_ms"] is None for r in doc["results"])


@pytest.mark.parametrize("prefix", [(), tuple(without_net_raw())], ids=["raw", "dgram"])
def test_unreachable_is_its_own_state_with_the_icmp_reason(prefix):
    status, doc, _ = sweep_json("-n", "-t", "1", "127.4.0.1-4", "fd00:1ab:4::1", "127.1.0.1", prefix=prefix)
    by_address = {r["address"]: r for r in doc["results"]}
    assert status == 0
    assert by_address["127.1.0.1"]["state"] == "up"
    for address in ["127.4.0.1", "127.4.0.2", "127.4.0.3", "127.4.0.4"]:
        assert (by_address[address]["state"], by_address[address]["reason"]) == ("unreachable", "host unreachable")
    assert by_address["fd00:1ab:4::1"]["reason"] == "host unreachable"  # ICMPv6 "address unreachable"


@pytest.mark.parametrize("method", ["icmp-raw", "icmp-dgram", "tcp"])
def test_ipv6_sweeps_like_ipv4(method):
    args, prefix, _ = METHODS[method]
    status, doc, stderr = sweep_json(*args, "-n", "-t", "0.5", "::1", "fd00:1ab:1::/124", "fd00:1ab:2::1-3",
                                     prefix=prefix)  # fmt: skip
    assert status == 0, stderr
    alive = alive_set(doc)
    assert alive == {"::1"} | {f"fd00:1ab:1::{i:x}" for i in range(1, 16)}
    assert [r["address"] for r in doc["results"]][-3:] == ["fd00:1ab:2::1", "fd00:1ab:2::2", "fd00:1ab:2::3"]


def test_two_concurrent_sweeps_never_confuse_each_other():
    """Raw sockets see every ICMP reply on the host: matching must sort them out."""
    runs = {}

    def sweep(name, network):
        runs[name] = sweep_json("-n", "-t", "1", network, prefix=())

    threads = [
        threading.Thread(target=sweep, args=("odd", "127.3.0.0/22")),
        threading.Thread(target=sweep, args=("dead", "127.2.0.0/22")),
        threading.Thread(target=sweep, args=("alive", "127.1.4.0/22")),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert alive_set(runs["odd"][1]) == expected_127_3("127.3.0.0/22")
    assert alive_set(runs["dead"][1]) == set()
    assert len(alive_set(runs["alive"][1])) == 1022


def test_concurrent_raw_and_datagram_sweeps():
    raw = subprocess.Popen(netdiag_command("sweep", "--json", "-n", "127.3.0.0/23"), stdout=subprocess.PIPE)
    dgram = subprocess.Popen([*without_net_raw(), *netdiag_command("sweep", "--json", "-n", "127.3.2.0/23")],
                             stdout=subprocess.PIPE)  # fmt: skip
    assert alive_set(json.loads(raw.communicate(timeout=30)[0])) == expected_127_3("127.3.0.0/23")
    assert alive_set(json.loads(dgram.communicate(timeout=30)[0])) == expected_127_3("127.3.2.0/23")


def test_count_gives_loss_and_rtt_statistics():
    status, doc, _ = sweep_json("-n", "-c", "3", "-i", "0.05", "-t", "0.5", "127.1.0.1", "127.3.0.1")
    by_address = {r["address"]: r for r in doc["results"]}
    up, down = by_address["127.1.0.1"], by_address["127.3.0.1"]
    assert status == 0
    assert (len(up["rtts_ms"]), up["loss"]) == (3, 0.0)
    assert up["rtt_min_ms"] <= up["rtt_ms"] <= up["rtt_max_ms"]
    assert (down["rtts_ms"], down["loss"]) == ([None, None, None], 1.0)
    assert doc["summary"]["probes_sent"] == 6


def test_retries_probe_silent_hosts_again():
    _, doc, _ = sweep_json("-n", "-r", "2", "-t", "0.2", "127.2.0.1", "127.1.0.1")
    assert doc["summary"]["probes_sent"] == 4  # 3 for the dead host, 1 for the live one


@pytest.mark.parametrize("method", ["icmp-raw", "ping", "tcp"])
def test_rate_caps_probes_per_second(method):
    args, prefix, _ = METHODS[method]
    _, doc, _ = sweep_json(*args, "-n", "--rate", "100", "127.1.0.0/27", prefix=prefix)
    assert doc["summary"]["up"] == 30
    sent = doc["summary"]["probes_sent"]  # tcp sends one probe per port
    assert doc["summary"]["elapsed_s"] >= (sent - 1) / 100 * 0.9


def test_a_sweep_whose_hosts_all_answer_does_not_wait_out_the_timeout():
    start = time.monotonic()
    status, doc, _ = sweep_json("-n", "-t", "20", "127.1.0.0/24")
    assert status == 0 and doc["summary"]["up"] == 254
    assert time.monotonic() - start < 10


def test_names_are_looked_up_and_shown_literally():
    _, doc, _ = sweep_json("-t", "0.5", "127.1.0.10", "127.1.0.77", "127.1.0.78", "127.3.0.8")
    names = {r["address"]: r["name"] for r in doc["results"]}
    assert names == {
        "127.1.0.10": "web.lab.test",
        "127.1.0.77": "[bold]evil[/bold].lab.test",
        "127.1.0.78": "\x1b[31mred\x1b[0m.lab.test",
        "127.3.0.8": "h-127-3-0-8.lab.test",
    }
    table = run_netdiag("sweep", "-t", "0.5", "127.1.0.77", "127.1.0.78").stdout.decode()
    assert "[bold]evil[/bold].lab.test" in table and "\\e[31mred\\e[0m.lab.test" in table
    assert "\x1b" not in table
    _, plain, _ = sweep_json("-n", "127.1.0.10")
    assert plain["results"][0]["name"] is None


def test_unresolved_names_are_rows_and_hostnames_resolve():
    status, doc, _ = sweep_json("-n", "-t", "0.5", "web.lab.test", "nope.lab.test")
    rows = {r["address"]: r for r in doc["results"]}
    assert status == 0
    assert rows["nope.lab.test"]["state"] == "unresolved"
    assert "NXDOMAIN" in rows["nope.lab.test"]["reason"]
    assert rows["127.1.0.10"]["name"] == "web.lab.test" and rows["fd00:1ab:1::10"]["alive"]


def test_a_slow_resolver_never_holds_the_sweep(silent_resolver):
    start = time.monotonic()
    status, doc, _ = sweep_json("-t", "0.5", "127.3.0.0/29", prefix=with_resolv_conf(silent_resolver))
    assert status == 0
    assert alive_set(doc) == expected_127_3("127.3.0.0/29")
    assert all(r["name"] is None for r in doc["results"])
    assert time.monotonic() - start < 8  # the resolver would hold each lookup 30 s
    [note] = doc["summary"]["notes"]  # a missing name is not "no PTR" here: it says so
    assert note.startswith("reverse names: 3 of 3 lookups had no answer within 2s") and "-n skips names" in note


def test_json_schema():
    _, doc, _ = sweep_json("-n", "-t", "0.3", "127.1.0.1", "127.2.0.1", "127.4.0.1", "nope.lab.test")
    assert set(doc) == {"results", "summary"}
    assert [row["target"] for row in doc["results"]] == ["127.1.0.1", "127.2.0.1", "127.4.0.1", "nope.lab.test"]
    for row in doc["results"]:
        assert set(row) == {"target", "address", "alive", "state", "rtt_ms", "rtt_min_ms", "rtt_max_ms", "rtts_ms",
                            "loss", "name", "reason", "mac", "vendor", "other_addresses"}  # fmt: skip
        assert row["mac"] is None and row["vendor"] is None  # loopback: no link layer
        assert isinstance(row["alive"], bool) and row["state"] in {"up", "down", "unreachable", "unresolved"}
    assert set(doc["summary"]) == {"total", "up", "down", "unreachable", "unresolved", "method", "method_reason",
                                   "methods", "notes", "elapsed_s", "probes_sent", "interrupted"}  # fmt: skip
    assert doc["summary"]["methods"] == [{"method": "icmp (raw socket)", "reason": "this process has CAP_NET_RAW",
                                          "hosts": 3}]  # fmt: skip
    assert doc["summary"]["notes"] == []
    counts = {key: doc["summary"][key] for key in ("total", "up", "down", "unreachable", "unresolved")}
    assert counts == {"total": 4, "up": 1, "down": 1, "unreachable": 1, "unresolved": 1}  # each state apart
    assert doc["summary"]["interrupted"] is False


def test_jsonl_streams_rows_then_a_summary():
    result = run_netdiag("sweep", "--jsonl", "-t", "0.3", "127.3.0.0/29")
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [set(line) for line in lines[-1:]] == [{"summary"}]
    assert {r["address"] for r in lines[:-1] if r["alive"]} == expected_127_3("127.3.0.0/29")
    assert len(lines) == 7


def test_alive_filter_and_map():
    result = run_netdiag("sweep", "--alive", "--map", "-n", "-t", "0.3", "127.3.0.0/28")
    text = result.stdout.decode()
    assert result.returncode == 0
    assert "127.3.0.2 " in text and "127.3.0.3 " not in text
    grid_row = next(line for line in text.splitlines() if line.strip().startswith("127.3.0.0 "))
    assert grid_row.count("██") == 7 and grid_row.count("··") == 7
    assert b"7/14 hosts up" in result.stderr


def test_ctrl_c_keeps_partial_results_and_exits_130():
    # 2,000 probes at 1,000 a second: interrupted after about a quarter
    process = subprocess.Popen(
        netdiag_command("sweep", "--json", "-n", "--rate", "1000", "-t", "1", "127.3.0.0/21"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    time.sleep(1.0)  # imports, then about half a second of sending
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=20)
    assert process.returncode == 130, stderr
    assert b"Traceback" not in stderr
    doc = json.loads(stdout)
    assert doc["summary"]["interrupted"] is True
    assert 0 < doc["summary"]["total"] < 2046
    alive = alive_set(doc)
    assert alive and alive <= expected_127_3("127.3.0.0/21")


class IcmpSniffer:
    """Counts echo requests leaving for 127.5/16 (nothing should go there)."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        self.sock.settimeout(0.2)

    def requests(self) -> int:
        seen = 0
        while True:
            try:
                packet = self.sock.recv(2048)
            except TimeoutError:
                return seen
            header = (packet[0] & 0x0F) * 4
            if packet[16:18] == b"\x7f\x05" and packet[header] == 8:
                seen += 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["127.5.0.1", "300.1.1.1"], "is not an address"),
        (["127.5.0.0/15"], "add --force"),
        (["-t", "-1", "127.5.0.1"], "--timeout must be more than 0"),
        (["-t", "1e9", "127.5.0.1"], "--timeout must be more than 0"),
        (["--count", "0", "127.5.0.1"], "--count must be between"),
        (["--method", "carrier-pigeon", "127.5.0.1"], "--method must be one of"),
        (["--rate", "0", "127.5.0.1"], "--rate must be between"),
        (["--port", "70000", "--method", "tcp", "127.5.0.1"], "port 70000 is more than 65535"),
        (["@/nonexistent/list", "127.5.0.1"], "cannot read target list"),
        (["--", "-h"], "is not an address"),
    ],
)
def test_bad_input_exit_2_and_nothing_sent(args, message):
    sniffer = IcmpSniffer()
    result = run_netdiag("sweep", *args)
    assert result.returncode == 2
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and message in lines[0]
    assert result.stdout == b""
    assert sniffer.requests() == 0


def test_explicit_icmp_without_privilege_says_how_to_grant_it():
    result = run_netdiag("sweep", "--method", "icmp", "127.0.0.1", prefix=NO_ICMP)
    assert result.returncode == 3  # could not run at all
    message = result.stderr.decode().strip()
    assert len(message.splitlines()) == 1
    assert "setcap cap_net_raw" in message and "ping_group_range" in message


def test_explicit_ping_that_cannot_run_is_refused_up_front():
    result = run_netdiag("sweep", "--method", "ping", "127.0.0.1", prefix=NO_ICMP)
    assert result.returncode == 3
    assert "the system ping cannot run here" in result.stderr.decode()


def test_auto_falls_back_and_says_why():
    status, doc, stderr = sweep_json("-n", "-t", "0.5", "127.0.0.1", prefix=NO_ICMP)
    assert status == 0, stderr
    assert doc["summary"]["method"] == "tcp (connect to 80,443)"
    assert "no ICMP socket" in doc["summary"]["method_reason"]
    assert alive_set(doc) == {"127.0.0.1"}  # the closed port answered with RST


def test_auto_prefers_unprivileged_icmp_to_the_system_ping():
    status, doc, stderr = sweep_json("-n", "-t", "0.5", "127.3.0.0/29", prefix=without_net_raw())
    assert status == 0, stderr
    assert doc["summary"]["method"] == "icmp (dgram socket)"
    assert "ping_group_range" in doc["summary"]["method_reason"]


def test_tcp_probe_counts_a_listening_port_and_a_closed_one():
    with socket.create_server(("127.1.0.200", 8080)):
        status, doc, _ = sweep_json(
            "-n", "--method", "tcp", "--port", "8080", "-t", "0.5", "127.1.0.200", "127.1.0.201"
        )
    assert status == 0
    assert alive_set(doc) == {"127.1.0.200", "127.1.0.201"}  # SYN-ACK and RST both prove a host


def test_options_validate_without_network():
    with pytest.raises(BadInput, match="--retries"):
        SweepOptions(retries=11).validate()
    with pytest.raises(BadInput, match="--workers"):
        SweepOptions(workers=0).validate()
    SweepOptions().validate()


def test_receive_timestamps_are_arrival_times():
    """RTTs come from kernel arrival stamps; right after a socket first asks for
    them Linux may still stamp at read time, which the sweep waits out."""
    from netdiag import probes

    icmp = probes.open_icmp(4)  # holds timestamping on, as a sweep does
    try:
        assert probes.wait_for_arrival_timestamps(limit=5.0)  # the kernel flips it from a work queue: slow when busy
        with (
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx,
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx,
        ):
            rx.bind(("127.0.0.1", 0))
            rx.setsockopt(socket.SOL_SOCKET, probes.SO_TIMESTAMPNS, 1)
            tx.sendto(b"x", rx.getsockname())
            time.sleep(0.05)
            read_at = time.time_ns()
            _, ancillary, _, _ = rx.recvmsg(16, 64)
            assert read_at - probes._timestamp(ancillary) >= 40_000_000  # stamped 50 ms before the read
    finally:
        icmp.close()


@pytest.mark.parametrize("prefix", [(), tuple(without_net_raw())], ids=["raw", "dgram"])
def test_ipv4_compatible_ipv6_addresses_are_matched(prefix):
    """inet_ntop writes ::1:1 as ::0.1.0.1; replies must still find their probes."""
    subprocess.run(["ip", "-6", "route", "replace", "local", "::1:0/124", "dev", "lo"], check=True)
    status, doc, _ = sweep_json("-n", "-t", "0.5", "::1:0/126", prefix=prefix)
    assert status == 0
    assert alive_set(doc) == {"::1:1", "::1:2", "::1:3"}


@pytest.mark.parametrize("prefix", [(), tuple(without_net_raw())], ids=["raw", "dgram"])
def test_timeout_shorter_than_the_send_phase_loses_no_answer(prefix):
    """Sending a /18 takes far longer than 10 ms: replies read during the
    send phase must be matched before their probes' deadlines pass (they
    arrived in microseconds). A stalled VM has the same effect."""
    status, doc, _ = sweep_json("-n", "-t", "0.01", "127.3.0.0/18", prefix=prefix)
    assert status == 0
    assert doc["summary"]["up"] == 8191
    assert alive_set(doc) == expected_127_3("127.3.0.0/18")


def test_a_forced_ipv6_slash_64_is_swept_lazily_and_interrupted_with_results():
    """2**64 addresses: refused without --force; with it the sweep starts at
    once (nothing is materialised) and Ctrl-C keeps what it learned."""
    refused = run_netdiag("sweep", "fd00:1ab:1::/64")
    assert refused.returncode == 2 and b"add --force" in refused.stderr
    process = subprocess.Popen(netdiag_command("sweep", "--force", "--json", "-n", "fd00:1ab:1::/64"),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    time.sleep(1.5)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 130, stderr
    doc = json.loads(stdout)
    assert doc["summary"]["interrupted"] is True and doc["summary"]["up"] > 0
    assert doc["results"][0]["address"] == "fd00:1ab:1::1"


@pytest.mark.parametrize("method", ["icmp", "tcp", "ping"])
def test_every_method_refuses_a_source_address_that_is_not_ours(method):
    result = run_netdiag("sweep", "-m", method, "-S", "192.0.2.99", "127.1.0.1")
    assert result.returncode == 2
    assert result.stderr.decode().strip() == "netdiag: --source 192.0.2.99: address not available"


def test_ping_goes_from_the_source_it_is_given():
    status, doc, _ = sweep_json("-m", "ping", "-S", "127.0.0.1", "127.1.0.1")
    assert status == 0 and alive_set(doc) == {"127.1.0.1"}
    both = run_netdiag("sweep", "-m", "ping", "-S", "127.0.0.1", "-I", "lo", "127.1.0.1")
    assert both.returncode == 2 and b"not both (ping -I takes one)" in both.stderr


@pytest.mark.parametrize(
    ("require", "status"),
    [("any", 0), ("all", 1), ("3", 0), ("4", 1), ("0", 0), ("ALL", 1), ("x", 2), ("-1", 2)],
)
def test_require_decides_the_exit_status_like_fping_x(require, status):
    result = run_netdiag("sweep", "-n", "-t", "0.3", "--require", require, "127.3.0.0/29")  # 3 of 6 up
    assert result.returncode == status, result.stderr
    if status == 2:
        assert (
            result.stderr.decode().strip()
            == f"netdiag: --require must be any, all or a number of hosts, not {require!r}"
        )


def test_names_with_both_families_are_swept_in_each_or_in_the_one_asked_for():
    _, both, _ = sweep_json("web.lab.test")
    _, four, _ = sweep_json("-4", "web.lab.test")
    _, six, _ = sweep_json("-6", "web.lab.test")
    assert (alive_set(both), alive_set(four), alive_set(six)) == (
        {"127.1.0.10", "fd00:1ab:1::10"}, {"127.1.0.10"}, {"fd00:1ab:1::10"}
    )  # fmt: skip
    refused = run_netdiag("sweep", "-6", "127.0.0.1")
    assert refused.returncode == 2 and refused.stderr.decode().strip() == "netdiag: -6: 127.0.0.1 is an IPv4 target"
