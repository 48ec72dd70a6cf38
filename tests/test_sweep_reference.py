"""Sweep alive sets against fping and arp-scan, for each lab range and method.

The lab's ranges answer in every way a sweep meets: all up (127.1/16), all
silent (127.2/16), half up (127.3/16), ICMP host unreachable (127.4/16), an
Ethernet segment with hosts that drop pings (198.18.0.0/20) and a routed one
(198.18.36.0/22). fping is the reference for the kernel methods, arp-scan for
ARP. Where netdiag differs by design the test says so.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import subprocess

import pytest

from tests.lab import run_netdiag, without_net_raw

pytestmark = pytest.mark.lab

RANGES = ["127.1.0.0/28", "127.2.0.0/28", "127.3.0.0/26", "127.4.0.0/28", "198.18.0.232/29", "198.18.36.0/28"]
IPV6 = [f"fd00:1ab:{net}::{host:x}" for net in (1, 2, 4) for host in range(1, 5)] + ["fd00:1ab:10::a", "fd00:1ab:10::b"]
# Written as ping and fping read them: inet_aton forms, a name only /etc/hosts accepts, v4-mapped.
ODD_FORMS = ["127.1", "127.001.0.1", "0x7f.1.0.2", "2130706435", "[bold]evil[/bold].lab.test", "::ffff:127.1.0.1"]


@functools.cache  # one fping run per range serves every method
def fping_alive(*targets: str) -> set[str]:
    result = subprocess.run(
        ["fping", "-A", "-r", "0", "-t", "500", *targets], capture_output=True, text=True, check=False, timeout=60
    )
    return {line.split()[0] for line in result.stdout.splitlines() if line.endswith("is alive")}


def netdiag_alive(*args: str, prefix=()) -> set[str]:
    result = run_netdiag("sweep", "--json", "-n", "-t", "0.5", *args, prefix=prefix)
    assert result.returncode in (0, 1), result.stderr
    return {row["address"] for row in json.loads(result.stdout)["results"] if row["alive"]}


@pytest.mark.parametrize("network", RANGES)
@pytest.mark.parametrize(
    ("method", "prefix"),
    [("icmp", ()), ("icmp", tuple(without_net_raw())), ("ping", ()), ("tcp", ())],
    ids=["icmp-raw", "icmp-dgram", "ping", "tcp"],
)
def test_kernel_methods_agree_with_fping(network, method, prefix):
    expected = fping_alive("-g", network)
    if method == "tcp" and network.startswith("198.18.0."):
        # lan-a drops pings to 198.18.0.240-253 but answers SYNs: TCP finds those too, by design
        expected |= {f"198.18.0.{n}" for n in range(240, 254)} & set(map(str, ipaddress.ip_network(network).hosts()))
    assert netdiag_alive("-m", method, network, prefix=prefix) == expected


def test_ipv6_agrees_with_fping():
    assert netdiag_alive("-m", "icmp", *IPV6) == fping_alive(*IPV6)


def test_target_forms_are_read_as_fping_reads_them():
    assert (
        netdiag_alive(*ODD_FORMS)
        == fping_alive(*ODD_FORMS)
        == {"127.0.0.1", "127.1.0.1", "127.1.0.2", "127.0.0.3", "127.1.0.77"}
    )


def test_arp_agrees_with_arp_scan():
    # lan-a with hosts that drop pings, and lan-b that drops everything but ARP. A range:
    # arp-scan asks a network's own and broadcast addresses too, netdiag (like fping -g) does not.
    network = "198.18.0.225-198.18.0.254"
    result = subprocess.run(
        ["arp-scan", "-I", "lan0", "-x", "-q", "-r", "2", network],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    expected = {line.split()[0] for line in result.stdout.splitlines() if line.strip()}
    assert len(expected) == 30
    assert netdiag_alive("-m", "arp", network) == expected


@pytest.mark.parametrize(
    ("method", "prefix"),
    [("icmp", ()), ("icmp", tuple(without_net_raw())), ("ping", ()), ("tcp", ())],
    ids=["icmp-raw", "icmp-dgram", "ping", "tcp"],
)
def test_the_same_icmp_error_has_the_same_words_whichever_method_met_it(method, prefix):
    # 127.4/16 and fd00:1ab:4::/64 answer with host (address) unreachable at once; the router
    # answers for 198.18.36.3 after ARP for it fails, about 3 s later
    result = run_netdiag(
        "sweep", "--json", "-n", "-m", method, "-t", "5", "127.4.0.1", "fd00:1ab:4::1", "198.18.36.3", prefix=prefix
    )
    rows = {row["address"]: (row["state"], row["reason"]) for row in json.loads(result.stdout)["results"]}
    assert set(rows.values()) == {("unreachable", "host unreachable")}, rows
