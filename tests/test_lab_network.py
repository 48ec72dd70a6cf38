"""The lab's shape (scripts/lab/segments.sh), checked with system tools only.

If these fail, the lab is broken, not netdiag: the other lab tests rely on
the LAN behind lan0 and the routed segment behind rt0 looking like this.
"""

from __future__ import annotations

import os
import subprocess

import pytest

pytestmark = pytest.mark.lab

ENV = {**os.environ, "LC_ALL": "C"}


def run(*argv: str, timeout: float = 10) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, env=ENV, timeout=timeout, check=False)


def ping(address: str, wait: str = "1", *options: str) -> subprocess.CompletedProcess[str]:
    return run("ping", *options, "-n", "-c1", "-W", wait, address)


@pytest.mark.parametrize(
    ("address", "options"),
    [
        ("198.18.0.2", ()),  # lan-a, on the LAN
        ("198.18.36.2", ()),  # lan-c, through the router
        ("fd00:1ab:10::a", ("-6",)),  # lan-a over IPv6, no DAD delay
    ],
)
def test_live_peers_answer_ping(address, options):
    result = ping(address, "1", *options)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"bytes from {address}" in result.stdout


def test_firewalled_peer_does_not_answer_ping():
    result = ping("198.18.0.240", "0.5")
    assert result.returncode != 0
    assert "bytes from" not in result.stdout


def test_dead_address_behind_the_router_is_host_unreachable():
    # The router's ARP gives up after about 3 s, then it sends the ICMP error.
    result = ping("198.18.36.3", "5")
    assert result.returncode != 0
    assert "From 198.18.32.2" in result.stdout
    assert "Destination Host Unreachable" in result.stdout


def test_neighbour_entry_has_the_vendor_mac():
    assert ping("198.18.0.2").returncode == 0
    neigh = run("ip", "neigh", "show", "198.18.0.2").stdout
    assert "lladdr 00:16:3e:1a:b0:0a" in neigh, neigh


def test_lan_environment_names_our_interface():
    link = run("ip", "-br", "link", "show", os.environ["NETLAB_LAN_IFACE"]).stdout
    assert os.environ["NETLAB_LAN_MAC"] in link, link


@pytest.mark.parametrize("family", ["-4", "-6"])
def test_no_default_route(family):
    routes = run("ip", family, "route", "show", "table", "all").stdout
    assert routes  # the table is readable and the lab's own routes are there
    assert "default" not in routes, routes
