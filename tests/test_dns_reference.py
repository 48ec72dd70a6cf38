"""The system view of `dns` against getent, for every name and address in the lab zone.

getent is the reference for what applications see: `getent ahosts` calls
getaddrinfo with AI_IDN|AI_CANONIDN (addresses, canonical name), `getent
hosts` calls gethostbyname2 (the aliases: the CNAME chain, or the names a
hosts-file line gives) and gethostbyaddr.
"""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from tests.lab import ROOT, run_netdiag

pytestmark = pytest.mark.lab

LAB = ROOT / "scripts" / "lab"


def zone_names() -> list[str]:
    """Every name the lab's dnsmasq and hosts files know, as typed and respelled."""
    conf = (LAB / "dnsmasq.conf").read_text()
    names = re.findall(r"^(?:host-record|cname)=([^,\s]+)", conf, re.M)
    names += re.findall(r"^cname=[^,\s]+,([^,\s]+)$", conf, re.M)  # CNAME targets
    for path in (LAB / "hosts", LAB / "dns-hosts"):
        for line in path.read_text().splitlines():
            fields = line.split("#", 1)[0].split()
            names += fields[1:]
    names = [n for n in dict.fromkeys(names) if n != "localhost"]
    respelled = ["Www.Lab.Test.", "WEB.LAB.TEST", "web.lab.test.", "faß.lab.test", "bücher.lab.test", "FASS.lab.test"]
    synthesised = ["h-127-1-0-9.lab.test", "h-127-3-2-1.lab.test"]
    missing = ["nope.lab.test", "xn--nope-zza.lab.test", "c6z.lab.test"]
    return names + respelled + synthesised + missing


def zone_addresses() -> list[str]:
    text = "\n".join(p.read_text() for p in (LAB / "dnsmasq.conf", LAB / "hosts", LAB / "dns-hosts"))
    found = re.findall(r"\b127\.1\.\d+\.\d+\b|\bfd00:1ab:1::[0-9a-f]+\b", text)
    extra = ["::ffff:127.1.0.10", "::ffff:127.1.0.5", "::127.1.0.10", "127.1.0.9", "127.9.9.9", "fd00:1ab:1::99"]
    return list(dict.fromkeys(found + extra))


def getent(database: str, key: str) -> list[list[str]] | None:
    result = subprocess.run(["getent", database, key], capture_output=True, text=True, check=False)
    if result.returncode == 2:  # not found
        return None
    assert result.returncode == 0, result.stderr
    return [line.split() for line in result.stdout.splitlines()]


def netdiag_answers(queries: list[str]) -> dict[str, dict]:
    result = run_netdiag("dns", "--json", "-t", "10", *queries)
    assert result.returncode in (0, 1), result.stderr
    return {row["query"]: row for row in json.loads(result.stdout)["results"]}


def norm(name: str) -> str:
    return name.lower().rstrip(".")


def test_forward_answers_agree_with_getent_ahosts_and_hosts():
    names = zone_names()
    ours = netdiag_answers(names)
    for name in names:
        answer, ahosts = ours[name], getent("ahosts", name)
        if ahosts is None:
            assert answer["status"] in ("nxdomain", "no-data"), name
            continue
        assert answer["status"] == "ok", name
        assert set(answer["addresses"]) == {row[0] for row in ahosts}, name
        assert answer["canonical"] == ahosts[0][2], name
        hosts = getent("hosts", name)
        if hosts is None:  # gethostbyname2 does not encode international names
            assert not name.isascii(), name
            continue
        # getent prints the chain of the first family with an answer (IPv6 first)
        theirs = {norm(alias) for alias in hosts[0][2:]} | {norm(name)}
        mine = {norm(alias) for alias in answer["aliases"]} | {norm(name)}
        assert mine - {norm(answer["canonical"])} == theirs - {norm(answer["canonical"])}, name
        assert len(answer["aliases"]) == len({norm(a) for a in answer["aliases"]}), f"{name}: an alias twice"


def test_reverse_answers_agree_with_getent_hosts():
    addresses = zone_addresses()
    ours = netdiag_answers(addresses)
    for address in addresses:
        answer, hosts = ours[address], getent("hosts", address)
        if hosts is None:
            assert answer["status"] == "no-ptr", address
            continue
        assert answer["status"] == "ok", address
        assert answer["ptr"] == hosts[0][1], address
        assert set(answer["aliases"]) == set(hosts[0][2:]), address
