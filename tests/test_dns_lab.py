"""The lab's DNS servers (scripts/lab/dns.sh), checked with dig and kdig as the reference.

If these fail, the lab is broken, not netdiag: the DNS client's tests rely on each
server behaving as below and on the zone data (scripts/lab/dns/zones) being served
as written. A server whose software is not installed is not started and its
NETLAB_DNS_* variable is not set: its tests skip.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import ssl
import struct
import subprocess
import time

import pytest

pytestmark = [
    pytest.mark.lab,
    pytest.mark.skipif(shutil.which("dig") is None, reason="dig is not installed (Debian bind9-dnsutils)"),
]
needs_kdig = pytest.mark.skipif(shutil.which("kdig") is None, reason="kdig is not installed (Debian knot-dnsutils)")

ENV = {**os.environ, "LC_ALL": "C"}
# Where each server's software comes from, to say why its variable is missing.
SOFTWARE = {
    "NETLAB_DNS_AUTH": "knotd (Debian knot)",
    "NETLAB_DNS_RESOLVER": "knotd and unbound",
    "NETLAB_DNS_CA": "knotd and unbound",
    "NETLAB_DNS_FAR": "knotd, unbound and python3",
    "NETLAB_DNS_SILENT": "nft",
    "NETLAB_DNS_SERVFAIL": "python3",
}
IP6_REVERSE = "0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"


def server(variable: str) -> str:
    value = os.environ.get(variable)
    if not value:
        pytest.skip(f"{variable} is not set: the lab starts that server only with {SOFTWARE[variable]} installed")
    return value


@pytest.fixture
def auth() -> str:
    return server("NETLAB_DNS_AUTH")


@pytest.fixture
def resolver() -> str:
    return server("NETLAB_DNS_RESOLVER")


@pytest.fixture
def far() -> str:
    return server("NETLAB_DNS_FAR")


class Dig:
    """One dig run: its exit status, header flags, status and answer lines."""

    def __init__(self, *args: str, timeout: float = 10) -> None:
        argv = ["dig", "+noall", "+comments", "+answer", "+authority", "+additional", *args]
        result = subprocess.run(argv, capture_output=True, text=True, env=ENV, timeout=timeout, check=False)
        self.returncode, self.output = result.returncode, result.stdout + result.stderr
        flags = re.search(r"^;; flags: ([^;]*);", self.output, re.M)
        self.flags = set(flags.group(1).split()) if flags else set()
        status = re.search(r"status: (\w+)", self.output)
        self.status = status.group(1) if status else None
        self.sections: dict[str, list[str]] = {}
        section = None
        for line in self.output.splitlines():
            heading = re.match(r";; (\w+) SECTION:", line)
            if heading:
                section = self.sections.setdefault(heading.group(1), [])
            elif line and not line.startswith(";") and section is not None:
                section.append(line)

    def records(self, section: str = "ANSWER") -> list[tuple[str, str, str]]:
        """(owner, type, data) of each record in a section."""
        rows = []
        for line in self.sections.get(section, []):
            owner, _ttl, _class, rtype, data = line.split(None, 4)
            rows.append((owner, rtype, data))
        return rows

    def data(self, rtype: str, section: str = "ANSWER") -> set[str]:
        return {data for _, t, data in self.records(section) if t == rtype}


def query(name: str, qtype: int = 1, ident: int = 0x1AB) -> bytes:
    """A DNS query with RD and AD set (as dig sends it: AD asks a validator for AD), in wire format."""
    labels = b"".join(bytes([len(label)]) + label.encode() for label in name.rstrip(".").split("."))
    return struct.pack(">HHHHHH", ident, 0x0120, 1, 0, 0, 0) + labels + b"\0" + struct.pack(">HH", qtype, 1)


def rcode(reply: bytes) -> int:
    return reply[3] & 0x0F


def recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, "connection closed"
        data += chunk
    return data


def test_each_server_runs_when_its_software_is_installed():
    """A machine with the packages must not skip the DNS tests silently."""
    if shutil.which("knotd"):
        assert os.environ.get("NETLAB_DNS_AUTH") == "127.0.0.2"
        if shutil.which("unbound") and shutil.which("openssl"):
            assert os.environ.get("NETLAB_DNS_RESOLVER") == "127.0.0.3"
            assert os.path.isfile(os.environ.get("NETLAB_DNS_CA", ""))
            assert os.environ.get("NETLAB_DNS_FAR") == "198.18.40.2"
    assert os.environ.get("NETLAB_DNS_SILENT") == "127.0.0.6"
    assert os.environ.get("NETLAB_DNS_SERVFAIL") == "127.0.0.7"


# --- the authoritative servers (Knot) ---

# What the zones hold, as dig +norec asks 127.0.0.2 for it: (name, type, answer data).
ZONE_DATA = [
    ("auth.test", "SOA", {"ns1.auth.test. hostmaster.auth.test. 2024120101 3600 600 86400 300"}),
    ("auth.test", "NS", {"ns1.auth.test.", "ns2.auth.test."}),
    ("auth.test", "MX", {"10 mx1.auth.test.", "20 mx2.auth.test."}),
    ("auth.test", "CAA", {'0 issue "ca.example.net"', '0 iodef "mailto:security@auth.test"'}),
    ("auth.test", "HTTPS", {'1 . alpn="h2,h3" ipv4hint=192.0.2.1 ipv6hint=2001:db8::1'}),
    ("svc.auth.test", "HTTPS", {"0 web.auth.test."}),
    ("api.auth.test", "SVCB", {'1 web.auth.test. alpn="h2,h3" port=8443 ipv4hint=192.0.2.10'}),
    ("_dns.auth.test", "SVCB", {'1 ns1.auth.test. alpn="dot" port=853'}),
    ("_sip._tcp.auth.test", "SRV", {"10 60 5060 sip1.auth.test.", "20 40 5061 sip2.auth.test."}),
    ("txt.auth.test", "TXT", {'"hello, world"'}),
    ("multi.auth.test", "TXT", {'"first string" "second string" "third string"'}),
    ("web.auth.test", "A", {"192.0.2.10"}),
    ("web.auth.test", "AAAA", {"2001:db8::10"}),
    ("anything.wild.auth.test", "A", {"192.0.2.20"}),
    ("a.b.wild.auth.test", "TXT", {'"wildcard"'}),
    ("exact.wild.auth.test", "A", {"192.0.2.21"}),
    ("exact.wild.auth.test", "TXT", set()),  # the name exists: no wildcard for it
    ("xn--bcher-kva.auth.test", "A", {"192.0.2.30"}),
    ("v6only.auth.test", "AAAA", {"2001:db8::6"}),
    ("v6only.auth.test", "A", set()),
    ("n1.auth.test", "A", {"192.0.2.100"}),
    ("n1000.auth.test", "A", {"192.0.2.100"}),
    ("csi.hostile.auth.test", "TXT", {r'"\027[2J\027[H\027[31mscreen cleared\027[0m"'}),
    ("osc8.hostile.auth.test", "TXT", {r'"\027]8;;http://example.invalid/\027\\click me\027]8;;\027\\"'}),
    ("markup.hostile.auth.test", "TXT", {'"[bold red]x[/]"'}),
    ("nul.hostile.auth.test", "TXT", {r'"nul\000byte"'}),
    ("binary.hostile.auth.test", "TXT", {r'"not utf-8: \255\254 \192\128 \237\160\128"'}),
    ("control.hostile.auth.test", "TXT", {r'"\008\008\008\013overwritten\007"'}),
    ("long.hostile.auth.test", "TXT", {'"long-' + "abcdefghijklmnopqrstuvwxyz" * 9 + 'abcdefghijklmnop"'}),
    ("10.2.0.192.in-addr.arpa", "PTR", {"web.auth.test."}),  # a name asked of the lab zone: never probed
    ("66.2.0.192.in-addr.arpa", "PTR", {r"esc\027[31mred.hostile.auth.test."}),
    ("77.2.0.192.in-addr.arpa", "PTR", {"[bold]x[/bold].hostile.auth.test.", "markup.hostile.auth.test."}),
    ("0.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0." + IP6_REVERSE, "PTR", {"web.auth.test."}),
    ("signed.test", "A", {"192.0.2.50"}),
    ("signed.test", "AAAA", {"2001:db8::50"}),
    ("signed.test", "MX", {"10 mail.signed.test."}),
    ("signed.test", "TXT", {'"signed by Knot for this lab run"'}),
    ("bogus.test", "A", {"192.0.2.60"}),
]


@pytest.mark.parametrize(("name", "rtype", "expected"), ZONE_DATA, ids=[f"{n} {t}" for n, t, _ in ZONE_DATA])
def test_authoritative_answers_are_the_zone_files(auth, name, rtype, expected):
    answer = Dig(f"@{auth}", "+norec", name, rtype)
    assert answer.status == "NOERROR", answer.output
    assert "aa" in answer.flags, answer.output
    assert answer.data(rtype) == expected, answer.output


def test_the_hostile_rrset_is_whole_in_one_udp_answer(auth):
    answer = Dig(f"@{auth}", "+norec", "+ignore", "hostile.auth.test", "TXT")
    assert "tc" not in answer.flags, answer.output
    assert len(answer.data("TXT")) == 7, answer.output


@pytest.mark.parametrize("name", ["nope.auth.test", "n1001.auth.test", "xn--nope-zza.auth.test"])
def test_missing_names_are_nxdomain(auth, name):
    answer = Dig(f"@{auth}", "+norec", name, "A")
    assert answer.status == "NXDOMAIN", answer.output
    assert "aa" in answer.flags, answer.output


def test_cname_chain_is_followed_within_the_zone(auth):
    answer = Dig(f"@{auth}", "+norec", "alias.auth.test", "A")
    assert "aa" in answer.flags, answer.output
    assert answer.records() == [
        ("alias.auth.test.", "CNAME", "www.auth.test."),
        ("www.auth.test.", "CNAME", "web.auth.test."),
        ("web.auth.test.", "A", "192.0.2.10"),
    ], answer.output


@pytest.mark.usefixtures("auth")  # the second knotd runs with the first
def test_second_name_server_is_authoritative_for_auth_test_and_the_subzone():
    for name, data in [("web.auth.test", "192.0.2.10"), ("x.sub.auth.test", "192.0.2.71")]:
        answer = Dig("@127.0.0.4", "+norec", name, "A")
        assert "aa" in answer.flags, answer.output
        assert answer.data("A") == {data}, answer.output


def test_subzone_is_a_referral(auth):
    answer = Dig(f"@{auth}", "+norec", "x.sub.auth.test", "A")
    assert answer.status == "NOERROR", answer.output
    assert "aa" not in answer.flags, answer.output
    assert answer.records() == [], answer.output
    assert answer.records("AUTHORITY") == [("sub.auth.test.", "NS", "ns.sub.auth.test.")], answer.output
    assert ("ns.sub.auth.test.", "A", "127.0.0.4") in answer.records("ADDITIONAL"), answer.output


def test_big_txt_is_truncated_over_udp_and_whole_over_tcp(auth):
    udp = Dig(f"@{auth}", "+norec", "+ignore", "+bufsize=1232", "big.auth.test", "TXT")
    assert "tc" in udp.flags, udp.output
    tcp = Dig(f"@{auth}", "+norec", "+tcp", "big.auth.test", "TXT")
    assert "tc" not in tcp.flags, tcp.output
    texts = tcp.data("TXT")
    assert len(texts) == 40, tcp.output
    assert all(len(text) == 102 for text in texts), tcp.output  # 100 bytes and the quotes


def test_signed_zone_is_signed(auth):
    answer = Dig(f"@{auth}", "+norec", "+dnssec", "signed.test", "A")
    assert answer.data("A") == {"192.0.2.50"}, answer.output
    assert any(data.startswith("A 13 2 ") for data in answer.data("RRSIG")), answer.output  # ECDSA P-256


# --- the validating resolver (Unbound) ---


def test_resolver_validates_signed_test(resolver):
    answer = Dig(f"@{resolver}", "+dnssec", "signed.test", "A")
    assert answer.status == "NOERROR", answer.output
    assert {"ra", "ad"} <= answer.flags, answer.output
    assert answer.data("A") == {"192.0.2.50"}, answer.output


def test_resolver_says_insecure_data_is_not_authenticated(resolver):
    answer = Dig(f"@{resolver}", "+dnssec", "web.auth.test", "A")
    assert answer.status == "NOERROR", answer.output
    assert "ad" not in answer.flags, answer.output


def test_resolver_answers_servfail_for_bogus_test(resolver):
    answer = Dig(f"@{resolver}", "bogus.test", "A")
    assert answer.status == "SERVFAIL", answer.output
    assert "EDE:" in answer.output, answer.output
    unchecked = Dig(f"@{resolver}", "+cd", "bogus.test", "A")  # the data is fine, its chain of trust is not
    assert unchecked.status == "NOERROR", unchecked.output
    assert unchecked.data("A") == {"192.0.2.60"}, unchecked.output


def test_resolver_follows_cnames_and_the_referral(resolver):
    chain = Dig(f"@{resolver}", "alias.auth.test", "AAAA")
    assert chain.records() == [
        ("alias.auth.test.", "CNAME", "www.auth.test."),
        ("www.auth.test.", "CNAME", "web.auth.test."),
        ("web.auth.test.", "AAAA", "2001:db8::10"),
    ], chain.output
    delegated = Dig(f"@{resolver}", "x.sub.auth.test", "A")
    assert delegated.data("A") == {"192.0.2.71"}, delegated.output


def test_resolver_answers_reverse_names(resolver):
    assert Dig(f"@{resolver}", "-x", "192.0.2.25").data("PTR") == {"mx1.auth.test."}
    assert Dig(f"@{resolver}", "-x", "2001:db8::6").data("PTR") == {"v6only.auth.test."}


def test_resolver_truncates_the_big_txt_over_udp(resolver):
    udp = Dig(f"@{resolver}", "+ignore", "+bufsize=1232", "big.auth.test", "TXT")
    assert "tc" in udp.flags, udp.output
    tcp = Dig(f"@{resolver}", "+tcp", "big.auth.test", "TXT")
    assert len(tcp.data("TXT")) == 40, tcp.output


@pytest.mark.parametrize("name", ["example.com", "lab.test", "test", ".", "in-addr.arpa"])
def test_resolver_refuses_names_outside_the_lab_at_once(resolver, name):
    start = time.monotonic()
    answer = Dig(f"@{resolver}", "+tries=1", "+time=2", name, "A")
    assert time.monotonic() - start < 1, "a refusal must not wait for anything"
    assert answer.status == "REFUSED", answer.output


@needs_kdig
def test_dns_over_tls_with_the_lab_ca(resolver):
    ca = server("NETLAB_DNS_CA")
    argv = ["kdig", f"@{resolver}", f"+tls-ca={ca}", "+tls-hostname=resolver.lab.test", "signed.test", "A"]
    result = subprocess.run(argv, capture_output=True, text=True, env=ENV, timeout=10, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"^;; TLS session", result.stdout, re.M), result.stdout
    assert re.search(r"^;; Flags: qr rd ra ad;", result.stdout, re.M), result.stdout
    assert re.search(r"^signed\.test\.\s+\d+\s+IN\s+A\s+192\.0\.2\.50$", result.stdout, re.M), result.stdout


@needs_kdig
def test_dns_over_tls_refuses_another_name(resolver):
    ca = server("NETLAB_DNS_CA")
    argv = ["kdig", f"@{resolver}", f"+tls-ca={ca}", "+tls-hostname=wrong.lab.test", "signed.test", "A"]
    result = subprocess.run(argv, capture_output=True, text=True, env=ENV, timeout=10, check=False)
    assert result.returncode != 0, result.stdout
    assert "192.0.2.50" not in result.stdout


@pytest.mark.parametrize("name", ["resolver.lab.test", "127.0.0.3"])
def test_dns_over_tls_certificate_verifies_by_name_and_address(resolver, name):
    context = ssl.create_default_context(cafile=server("NETLAB_DNS_CA"))
    with (
        socket.create_connection((resolver, 853), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=name) as tls,
    ):
        message = query("signed.test")
        tls.sendall(len(message).to_bytes(2, "big") + message)
        reply = recv_exactly(tls, int.from_bytes(recv_exactly(tls, 2), "big"))
    assert reply[:2] == message[:2]
    assert rcode(reply) == 0
    assert reply[3] & 0x20, "no AD"


def test_dns_over_tls_is_not_trusted_without_the_lab_ca(resolver):
    context = ssl.create_default_context()
    with socket.create_connection((resolver, 853), timeout=5) as raw, pytest.raises(ssl.SSLCertVerificationError):
        context.wrap_socket(raw, server_hostname="resolver.lab.test")


# --- the far resolver ---


def test_far_resolver_is_a_round_trip_away(far):
    answer = Dig(f"@{far}", "+dnssec", "signed.test", "A")
    assert "ad" in answer.flags, answer.output
    assert answer.data("A") == {"192.0.2.50"}, answer.output
    query_time = re.search(r"^;; Query time: (\d+) msec", Dig(f"@{far}", "+stats", "n7.auth.test").output, re.M)
    assert query_time, "dig printed no query time"
    assert int(query_time.group(1)) >= 18
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2)
        for number in (11, 12, 13):
            start = time.monotonic()
            sock.sendto(query(f"n{number}.auth.test", ident=number), (far, 53))
            reply = sock.recv(512)
            rtt = time.monotonic() - start
            assert reply[:2] == number.to_bytes(2, "big")
            assert rcode(reply) == 0
            assert 0.018 <= rtt < 1, rtt


def test_far_resolver_answers_a_burst_of_1000_names_each_a_round_trip_away(far):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:  # 1,000 answers at once: more than the default receive buffer holds (SO_RCVBUFFORCE)
            sock.setsockopt(socket.SOL_SOCKET, 33, 4 << 20)
        except OSError:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        sock.connect((far, 53))
        sent = {}
        for number in range(1, 1001):
            sent[number] = time.monotonic()
            sock.send(query(f"n{number}.auth.test", ident=number))
        sock.settimeout(2)
        rtts = {}
        while len(rtts) < 1000:
            reply = sock.recv(512)
            number = int.from_bytes(reply[:2], "big")
            rtts[number] = time.monotonic() - sent[number]
            assert rcode(reply) == 0, number
    assert min(rtts.values()) >= 0.018
    assert max(rtts.values()) < 2


def test_far_resolver_refuses_and_fails_like_the_resolver(far):
    assert Dig(f"@{far}", "example.com").status == "REFUSED"
    assert Dig(f"@{far}", "bogus.test").status == "SERVFAIL"


def test_far_resolver_truncates_the_big_txt_over_udp(far):
    udp = Dig(f"@{far}", "+ignore", "+bufsize=1232", "big.auth.test", "TXT")
    assert "tc" in udp.flags, udp.output
    tcp = Dig(f"@{far}", "+tcp", "big.auth.test", "TXT")
    assert len(tcp.data("TXT")) == 40, tcp.output


# --- the servers that misbehave ---


def test_silent_server_never_answers():
    silent = server("NETLAB_DNS_SILENT")
    argv = ["dig", f"@{silent}", "+tries=1", "+time=1", "web.auth.test", "A"]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ENV) as dig:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:  # no ICMP error either: only a timeout
            sock.settimeout(0.3)
            sock.connect((silent, 53))
            sock.send(query("web.auth.test"))
            with pytest.raises(TimeoutError):
                sock.recv(512)
        with pytest.raises(TimeoutError):  # no SYN-ACK, no reset
            socket.create_connection((silent, 53), timeout=0.3).close()
        output, _ = dig.communicate(timeout=10)
    assert dig.returncode == 9, output  # dig: no reply from any server
    assert "timed out" in output, output


@pytest.mark.parametrize("transport", ["+notcp", "+tcp"])
def test_servfail_server_answers_servfail_at_once(transport):
    address = server("NETLAB_DNS_SERVFAIL")
    start = time.monotonic()
    answer = Dig(f"@{address}", transport, "+tries=1", "+time=2", "web.auth.test", "A")
    assert time.monotonic() - start < 1
    assert answer.status == "SERVFAIL", answer.output
    assert answer.records() == [], answer.output
    assert re.search(r"^;; flags: qr rd ra;", answer.output, re.M), answer.output
