"""netdiag sweep on the lab's Ethernet segment and behind its router.

The lab (scripts/lab/segments.sh): bridge lan0 with 198.18.0.1/20,
198.19.0.1/16 and fd00:1ab:10::1/64; peer lan-a (MAC 00:16:3e:1a:b0:0a, a
Xensource OUI) owns 198.18.0.2-253, .5.5, .9.9, .12.34 and 198.19.0.2-101,
and drops ping to 198.18.0.240-253; peer lan-b (02:1a:b0:00:00:0b, locally
administered) owns 198.18.0.254, 198.18.15.254 and 198.19.255.254 and drops
all ping and SYNs. A router (198.18.32.2) leads to 198.18.36.0/22, whose even
addresses are alive; it answers for dead ones with host-unreachable.
"""

from __future__ import annotations

import ipaddress
import json
import signal
import socket
import subprocess
import time

import pytest

from tests.lab import NETLAB, netdiag_command, run_netdiag, without_net_raw

pytestmark = pytest.mark.lab

OUR_MAC = "02:1a:b0:00:00:01"
LAN_A_MAC, LAN_B_MAC = "00:16:3e:1a:b0:0a", "02:1a:b0:00:00:0b"
LAN_A = {f"198.18.0.{i}" for i in range(2, 254)} | {"198.18.5.5", "198.18.9.9", "198.18.12.34"}
LAN_B = {"198.18.0.254", "198.18.15.254"}
NO_PING = {f"198.18.0.{i}" for i in range(240, 254)} | LAN_B  # 16 hosts that drop ping
ALIVE_20 = LAN_A | LAN_B | {"198.18.0.1"}  # and ourselves


def sweep_json(*args: str, prefix=(), timeout: float = 120) -> tuple[int, dict, str]:
    result = run_netdiag("sweep", "--json", "-n", *args, prefix=prefix, timeout=timeout)
    document = json.loads(result.stdout) if result.stdout.strip() else {}
    return result.returncode, document, result.stderr.decode()


def alive(document: dict) -> set[str]:
    return {r["address"] for r in document["results"] if r["alive"]}


def rows(document: dict) -> dict[str, dict]:
    return {r["address"]: r for r in document["results"]}


def test_arp_finds_every_host_of_the_segment_with_its_mac_and_vendor():
    status, doc, stderr = sweep_json("-t", "1", "198.18.0.0/20")
    assert status == 0, stderr
    assert alive(doc) == ALIVE_20  # firewalled hosts too: they cannot ignore ARP
    assert len(doc["results"]) == 4094
    assert doc["summary"]["methods"] == [
        {"method": "arp (lan0)", "reason": "on-link IPv4 and this process may open packet sockets", "hosts": 4094}
    ]
    assert doc["summary"]["probes_sent"] == 4093  # our own address is not probed
    by = rows(doc)
    own = by["198.18.0.1"]
    assert (own["mac"], own["state"], own["alive"], own["rtt_ms"]) == (OUR_MAC, "up", True, None)  # not probed
    # a MAC answering for many addresses (one interface, 255 addresses) is reported per address
    assert {by[a]["mac"] for a in LAN_A} == {LAN_A_MAC}
    assert {by[a]["vendor"] for a in LAN_A} == {"Xensource, Inc."}
    assert (by["198.18.15.254"]["mac"], by["198.18.15.254"]["vendor"]) == (LAN_B_MAC, None)
    assert all(0 <= by[a]["rtt_ms"] < 1000 for a in LAN_A)
    dead = by["198.18.3.3"]
    assert (dead["state"], dead["mac"], dead["vendor"]) == ("down", None, None)


@pytest.mark.parametrize("prefix", [(), tuple(without_net_raw())], ids=["raw", "dgram"])
def test_icmp_on_the_segment_agrees_with_arp_but_for_hosts_that_drop_ping(prefix):
    method = ["-m", "icmp"] if not prefix else []  # unprivileged, auto picks ICMP: no packet socket
    status, doc, stderr = sweep_json(*method, "-t", "1", "198.18.0.0/24", prefix=prefix)
    assert status == 0, stderr
    assert alive(doc) == ({f"198.18.0.{i}" for i in range(1, 255)} - NO_PING)
    by = rows(doc)
    assert by["198.18.0.7"]["mac"] == LAN_A_MAC  # read from the kernel's neighbour table afterwards
    assert by["198.18.0.250"]["state"] == "down"
    label = doc["summary"]["method"]
    assert label == ("icmp (raw socket) on lan0" if not prefix else "icmp (dgram socket) on lan0")
    note = " ".join(doc["summary"]["notes"])
    assert "the kernel resolves each address with ARP" in note
    assert ("grant CAP_NET_RAW" in note) if prefix else ("--method arp is much faster" in note)


@pytest.mark.parametrize(
    ("method", "missing"),
    [("ping", NO_PING), ("tcp", LAN_B)],  # lan-a's firewalled hosts still answer a SYN with RST; lan-b drops it
)
def test_the_kernel_methods_on_the_segment(method, missing):
    status, doc, stderr = sweep_json("-m", method, "-w", "128", "-t", "1", "198.18.0.0/24")
    assert status == 0, stderr
    assert alive(doc) == {f"198.18.0.{i}" for i in range(1, 255)} - missing
    assert rows(doc)["198.18.0.9"]["mac"] == LAN_A_MAC


def test_the_map_names_the_macs_behind_its_cells():
    result = run_netdiag("sweep", "--map", "-n", "-t", "0.5", "198.18.0.240-254", "198.18.0.0/28")
    text = result.stdout.decode()
    assert result.returncode == 0
    assert "MACs: 00:16:3e:1a:b0:0a Xensource, Inc. ×13, 02:1a:b0:00:00:01 ×1" in text  # the /28 and ourselves
    assert "198.18.0.240  up" in text and "02:1a:b0:00:00:0b" in text


def fill_neighbour_table(network: str) -> tuple[int, int]:
    """Send one datagram to each dead address of ``network`` on the segment:
    the kernel holds an incomplete entry for each for about 3 s. Returns
    (datagrams sent, sends refused with ENOBUFS)."""
    sent = refused = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.IPPROTO_IP, 11, 1)  # IP_RECVERR: report ENOBUFS
        sock.setsockopt(socket.SOL_SOCKET, 32, 64 << 20)  # SO_SNDBUFFORCE: queue them all
        for address in ipaddress.ip_network(network).hosts():
            try:
                sock.sendto(b"x", (str(address), 9))
                sent += 1
            except OSError as exc:
                if exc.errno != 105:  # ENOBUFS
                    raise
                refused += 1
    return sent, refused


@pytest.mark.parametrize("prefix", [(), tuple(without_net_raw())], ids=["raw", "dgram"])
def test_a_full_neighbour_table_is_back_pressure_not_lost_hosts(prefix):
    """The table (gc_thresh3, global to the machine) is filled first: the
    sweep's first sends meet ENOBUFS and must wait, not lose hosts.

    In the lab every namespace shares that one table, so while it is full
    the peer could not make an entry for us to answer our ARP requests (a
    real peer has its own table): one ping first gives it that entry."""
    subprocess.run(["ping", "-c", "1", "-W", "1", "198.19.0.101"], capture_output=True, check=True)
    _, refused = fill_neighbour_table("198.19.64.0/21")  # 2,046 dead addresses, more than the table holds
    assert refused > 0  # the table really was full
    method = ["-m", "icmp"] if not prefix else []
    status, doc, stderr = sweep_json(*method, "-t", "1", "-r", "2", "198.19.0.0/22", prefix=prefix)
    assert status == 0, stderr
    assert alive(doc) == {f"198.19.0.{i}" for i in range(1, 102)}
    assert doc["summary"]["total"] == 1022


def router_unreachables_sent() -> int:
    """Destination-unreachable errors the lab's router got out (its own
    counter: those it could not send count as OutErrors only)."""
    snmp = subprocess.run(["ip", "netns", "exec", "router", "cat", "/proc/net/snmp"], capture_output=True,
                          text=True, check=True).stdout.splitlines()  # fmt: skip
    names, values = (line.split()[1:] for line in snmp if line.startswith("Icmp:"))
    icmp = dict(zip(names, map(int, values), strict=True))
    return icmp["OutDestUnreachs"]


ROUTED = ipaddress.ip_network("198.18.36.0/22")
ROUTED_ALIVE = {str(a) for a in ROUTED.hosts() if int(a) % 2 == 0} | {"198.18.36.1"}  # and the router


@pytest.mark.parametrize("rate", [None, "2000"], ids=["unpaced", "paced"])
def test_a_routed_segment_is_exact_and_unreachable_where_the_router_says_so(rate):
    """The router resolves our targets; after its ARP gives up (3 s) it sends
    host-unreachable, but only about 160 such errors fit its ICMP socket at
    once: an unpaced sweep hears of fewer, a paced one of every dead host."""
    before = router_unreachables_sent()
    status, doc, stderr = sweep_json("-t", "5", *(["--rate", rate] if rate else []), str(ROUTED))
    assert status == 0, stderr
    assert doc["summary"]["method"] == "icmp (raw socket)"  # behind a router: not on-link, no ARP
    assert alive(doc) == ROUTED_ALIVE
    dead = [r for r in doc["results"] if not r["alive"]]
    unreachable = [r for r in dead if r["state"] == "unreachable"]
    assert {r["reason"] for r in unreachable} == {"host unreachable"}
    assert len(unreachable) == router_unreachables_sent() - before
    assert {r["state"] for r in dead} <= {"unreachable", "down"}
    if rate:
        assert len(unreachable) == len(dead) == 510


def test_tcp_behind_the_router_hears_its_unreachables_too():
    status, doc, stderr = sweep_json("-m", "tcp", "-t", "5", "198.18.38.0/28")
    assert status == 0, stderr
    assert alive(doc) == {f"198.18.38.{i}" for i in range(2, 15, 2)}
    assert {(r["state"], r["reason"]) for r in doc["results"] if not r["alive"]} == {
        ("unreachable", "host unreachable")
    }


def test_a_rate_limited_router_leaves_most_dead_hosts_silent():
    subprocess.run([str(NETLAB.parent / "lab" / "router-ratelimit"), "on"], check=True)
    try:
        status, doc, stderr = sweep_json("-t", "5", "--rate", "2000", "198.18.37.0/24")
    finally:
        subprocess.run([str(NETLAB.parent / "lab" / "router-ratelimit"), "off"], check=True)
    assert status == 0, stderr
    assert alive(doc) == {f"198.18.37.{i}" for i in range(2, 255, 2)}
    states = [r["state"] for r in doc["results"] if not r["alive"]]
    assert set(states) <= {"down", "unreachable"}
    assert states.count("down") > states.count("unreachable")  # one error a second per destination, a burst of 6


@pytest.mark.parametrize("prefix", [(), tuple(without_net_raw())], ids=["raw", "dgram"])
def test_ff02_1_discovers_the_hosts_of_a_link(prefix):
    status, doc, stderr = sweep_json("-t", "1", "ff02::1%lan0", prefix=prefix)
    assert status == 0, stderr
    by = rows(doc)
    peer = by["fe80::216:3eff:fe1a:b00a%lan0"]  # lan-a's EUI-64 link-local address
    assert (peer["mac"], peer["vendor"]) == (LAN_A_MAC, "Xensource, Inc.")
    assert by["fe80::1a:b0ff:fe00:1%lan0"]["mac"] == OUR_MAC  # we answer our own group too
    assert not any(r["mac"] == LAN_B_MAC for r in doc["results"])  # lan-b drops every ping
    assert doc["summary"]["methods"][0]["method"] == "icmpv6 multicast (ff02::1%lan0)"


def test_targets_on_and_off_the_segment_are_served_by_the_right_method():
    status, doc, stderr = sweep_json("-t", "1", "198.18.0.240-247", "127.1.0.1", "198.18.37.2")
    assert status == 0, stderr
    assert alive(doc) == {f"198.18.0.{i}" for i in range(240, 248)} | {"127.1.0.1", "198.18.37.2"}
    methods = {m["method"]: m["hosts"] for m in doc["summary"]["methods"]}
    assert methods == {"arp (lan0)": 8, "icmp (raw socket)": 2}


def test_interface_and_source_options():
    status, doc, _ = sweep_json("-m", "arp", "-I", "lan0", "198.18.0.2", "198.18.0.254")
    assert status == 0 and alive(doc) == {"198.18.0.2", "198.18.0.254"}
    status, doc, _ = sweep_json("-m", "arp", "-S", "198.18.0.1", "198.18.0.2")  # our own: fine
    assert status == 0 and alive(doc) == {"198.18.0.2"}
    status, doc, _ = sweep_json("-I", "lo", "127.1.0.1")  # not Ethernet: the probes are only bound to it
    assert status == 0 and doc["summary"]["method"] == "icmp (raw socket)" and alive(doc) == {"127.1.0.1"}
    result = run_netdiag("sweep", "-S", "203.0.113.5", "127.1.0.1")
    assert result.returncode == 2
    assert result.stderr.decode().strip() == "netdiag: --source 203.0.113.5: address not available"
    status, doc, _ = sweep_json("-S", "127.1.0.9", "127.1.0.1")
    assert status == 0 and alive(doc) == {"127.1.0.1"}


@pytest.mark.parametrize(
    ("args", "prefix", "message"),
    [
        (["-m", "arp", "127.1.0.1"], (), "127.1.0.1 is not on a directly connected Ethernet segment"),
        (["-m", "arp", "198.18.36.2"], (), "198.18.36.2 is not on a directly connected Ethernet segment"),
        (["-I", "nope0", "198.18.0.2"], (), "--interface 'nope0': no such interface"),
        (["-m", "arp", "-I", "lo", "127.1.0.1"], (), "--method arp: lo is not an Ethernet interface"),
        # someone else's address as the ARP sender would poison the neighbours' caches
        (["-m", "arp", "-S", "198.18.0.254", "198.18.0.2"], (), "is not an address of ours on lan0"),
        (["-S", "fd00:1ab:10::1", "198.18.0.2"], (), "--source fd00:1ab:10::1 is IPv6, but 198.18.0.2 is IPv4"),
    ],
)
def test_arp_refusals_are_one_line_and_exit_2(args, prefix, message):
    result = run_netdiag("sweep", *args, prefix=prefix)
    assert result.returncode == 2
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and message in lines[0]


def test_arp_without_net_raw_could_not_run():
    result = run_netdiag("sweep", "-m", "arp", "198.18.0.2", prefix=tuple(without_net_raw()))
    assert result.returncode == 3
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "ARP needs CAP_NET_RAW" in lines[0]


def test_ctrl_c_on_a_slow_on_link_sweep_keeps_partial_results():
    process = subprocess.Popen(
        [*without_net_raw(), *netdiag_command("sweep", "--json", "-n", "-t", "1", "198.19.0.0/20")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    time.sleep(2.5)  # the kernel needs far longer to resolve 4,000 dead neighbours
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 130, stderr
    doc = json.loads(stdout)
    assert doc["summary"]["interrupted"] is True
    assert 0 < doc["summary"]["total"] < 4094
    found = alive(doc)
    assert found and found <= {f"198.19.0.{i}" for i in range(1, 102)}
    assert all(r["mac"] == LAN_A_MAC for r in doc["results"] if r["alive"] and r["address"] != "198.19.0.1")
