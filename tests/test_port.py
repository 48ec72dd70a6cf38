"""netdiag port's core against real servers in the lab: open, closed (RST),
dropped SYNs (127.2/16, port 9 of 127.1/16), ICMP-rejected ports (port 7 of
127.1/16), UDP, banners, TLS, names, interruptions, and nc / nmap agreeing."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from netdiag import interrupts
from netdiag.errors import TargetError
from netdiag.port import (
    BANNER_BYTES,
    NOT_SETTLED,
    PortOptions,
    PortResult,
    PortState,
    pair_address,
    parse_port_targets,
    payload_bytes,
    run_ports,
)
from netdiag.ports import parse_ports
from tests.lab.servers import listener, scripted_server

pytestmark = pytest.mark.lab

OPEN, CLOSED, FILTERED, OPEN_FILTERED, UNRESOLVED = (
    PortState.OPEN, PortState.CLOSED, PortState.FILTERED, PortState.OPEN_FILTERED, PortState.UNRESOLVED,
)  # fmt: skip
REJECTED, DROPPED = 7, 9  # scripts/lab/rules.nft: on 127.1/16 and fd00:1ab:1::/64
IP_FREEBIND = 15  # linux/in.h; not in the socket module


def check(*texts: str, ports: str | None = None, force: bool = False, **options) -> list[PortResult]:
    return check_report(*texts, ports=ports, force=force, **options).results


def check_report(*texts: str, ports: str | None = None, force: bool = False, **settings):
    proto = settings.get("proto", "tcp")
    options = PortOptions(ports=parse_ports(ports, proto) if ports else None, **settings)
    return run_ports(parse_port_targets(texts, options, force=force), options)


def states(results: list[PortResult]) -> dict[str, PortState]:
    return {pair_address(r): r.state for r in results}


@contextlib.contextmanager
def open_port(backlog: int = 4096):
    """A port open on every lab address, IPv4 and IPv6. Nothing is accepted:
    the kernel completes the handshakes, up to ``backlog`` of them."""
    with socket.create_server(("::", 0), family=socket.AF_INET6, dualstack_ipv6=True, backlog=backlog) as server:
        yield server.getsockname()[1]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def udp_echo(host: str = "127.1.0.1", port: int = 0):
    """Replies to every datagram with what it said (an empty one with b"pong").
    Bound to one address: from a wildcard the reply would leave from the
    primary address, which a connected client does not hear (as in real life)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_IP, IP_FREEBIND, 1)  # the lab's IPv6 twins are routes, not addresses
    sock.bind((host, port))
    sock.settimeout(0.1)
    done = threading.Event()

    def serve():
        while not done.is_set():
            try:
                data, peer = sock.recvfrom(2048)
            except (TimeoutError, OSError):
                continue
            sock.sendto(data or b"pong", peer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield sock.getsockname()[1]
    finally:
        done.set()
        thread.join(2)
        sock.close()


# --- TCP states


def test_open_closed_dropped_and_rejected_ports_each_have_their_state():
    closed = closed_port()
    with open_port() as port:
        results = check("127.1.0.1", "127.2.0.1", "127.4.0.1", ports=f"{port},{closed},{REJECTED},{DROPPED}",
                        timeout=0.5)  # fmt: skip
    by_pair = {pair_address(r): r for r in results}
    assert states(results) == {
        f"127.1.0.1:{port}": OPEN,
        f"127.1.0.1:{closed}": CLOSED,
        f"127.1.0.1:{REJECTED}": FILTERED,  # a firewall's ICMP port unreachable, not an RST
        f"127.1.0.1:{DROPPED}": FILTERED,
        **{f"127.2.0.1:{p}": FILTERED for p in (port, closed, REJECTED, DROPPED)},  # SYNs dropped
        **{f"127.4.0.1:{p}": FILTERED for p in (port, closed, REJECTED, DROPPED)},  # ICMP host unreachable
    }
    assert by_pair[f"127.1.0.1:{REJECTED}"].reason == "port unreachable"
    assert by_pair[f"127.1.0.1:{DROPPED}"].reason == "timed out"
    assert by_pair[f"127.2.0.1:{port}"].reason == "timed out"
    assert by_pair[f"127.4.0.1:{port}"].reason == "host unreachable"  # as sweep says it
    for pair in (f"127.1.0.1:{port}", f"127.1.0.1:{closed}", f"127.4.0.1:{port}"):
        assert 0 < by_pair[pair].rtt_ms < 500  # the connect time, the RST's too
    assert by_pair[f"127.2.0.1:{port}"].rtt_ms is None
    assert all(r.banner is None and r.tls is None for r in results)  # closed at once, nothing read


def test_results_keep_what_the_user_typed_and_the_service_names():
    results = check("127.1.0.0/30:ssh,https", ports="80", timeout=0.3)
    assert [(r.target, r.address, r.port, r.service, r.proto) for r in results] == [
        ("127.1.0.0/30", address, port, service, "tcp")
        for address in ("127.1.0.1", "127.1.0.2")
        for port, service in ((22, "ssh"), (443, "https"))
    ]


def test_ipv6_targets_and_their_twins():
    closed = closed_port()
    with open_port() as port:
        results = check(f"[fd00:1ab:1::1]:{port},{closed},{REJECTED}", f"[::1]:{port}", "fd00:1ab:2::1",
                        "fd00:1ab:4::1", ports=str(port), timeout=0.5)  # fmt: skip
    by_pair = {pair_address(r): r for r in results}
    assert states(results) == {
        f"[fd00:1ab:1::1]:{port}": OPEN,
        f"[fd00:1ab:1::1]:{closed}": CLOSED,
        f"[fd00:1ab:1::1]:{REJECTED}": FILTERED,
        f"[::1]:{port}": OPEN,
        f"[fd00:1ab:2::1]:{port}": FILTERED,
        f"[fd00:1ab:4::1]:{port}": FILTERED,
    }
    # the lab's firewall answers for these local routes from the lab's own address: said, as nmap says it
    assert by_pair[f"[fd00:1ab:1::1]:{REJECTED}"].reason.startswith("port unreachable")
    assert by_pair[f"[fd00:1ab:4::1]:{port}"].reason.startswith("host unreachable")


def test_an_icmp_error_from_a_router_says_who_sent_it():
    # the lab's router answers for odd addresses behind it with host unreachable, after about 3 s
    results = check("198.18.36.3:80", "198.18.36.2:1", timeout=5)
    assert [(r.address, r.state, r.reason) for r in results] == [
        ("198.18.36.3", FILTERED, "host unreachable from 198.18.32.2"),
        ("198.18.36.2", CLOSED, None),
    ]


def test_names_resolve_and_a_name_that_does_not_has_a_row_per_port():
    with open_port() as port:
        results = check("three.lab.test", "hostsonly.lab.test:1", "nosuch.lab.test", ports=str(port), timeout=0.5)
    assert [(r.target, r.address, r.port, r.state) for r in results] == [
        ("three.lab.test", "127.1.0.34", port, OPEN),
        ("three.lab.test", "127.1.0.35", port, OPEN),
        ("three.lab.test", "127.1.0.36", port, OPEN),
        ("hostsonly.lab.test", "127.1.0.5", 1, CLOSED),
        ("nosuch.lab.test", None, port, UNRESOLVED),
    ]
    assert results[-1].reason and "no such name" in results[-1].reason


def test_ip_version_limits_names_and_refuses_addresses_of_the_other():
    with open_port() as port:
        results = check("localhost", ports=str(port), ip_version=6, timeout=0.5)
    assert [(r.address, r.state) for r in results] == [("::1", OPEN)]
    with pytest.raises(TargetError, match="is IPv4, but IPv6 only"):
        parse_port_targets(["127.1.0.1:80"], PortOptions(ip_version=6))


def test_a_pair_given_twice_is_checked_once_in_its_first_place():
    report = check_report("127.1.0.2:1", "127.1.0.0/30:1,2", "127.1.0.1-2:2", timeout=0.3)
    assert [pair_address(r) for r in report.results] == ["127.1.0.2:1", "127.1.0.1:1", "127.1.0.1:2", "127.1.0.2:2"]
    assert report.summary.pairs == report.summary.probes_sent == 4


def test_retries_try_a_silent_pair_again():
    report = check_report("127.2.0.1", ports="1,2", timeout=0.2, retries=2)
    assert report.summary.probes_sent == 6 and report.summary.filtered == 2
    report = check_report("127.1.0.1", ports="1", timeout=0.2, retries=2)
    assert report.summary.probes_sent == 1  # an answer is an answer


def test_a_timeout_ends_in_time_whatever_the_number_of_silent_pairs():
    start = time.monotonic()
    report = check_report("127.2.0.0/24", ports="1-4", timeout=0.5)
    assert report.summary.filtered == 1016
    assert time.monotonic() - start < 0.5 + 1.0  # one timeout, not pairs x timeout


# --- UDP


def test_udp_reply_port_unreachable_other_icmp_and_silence():
    closed = closed_port()
    with udp_echo() as echo, udp_echo("fd00:1ab:1::1", echo):
        report = check_report("127.1.0.1", f"[fd00:1ab:1::1]:{echo}", ports=f"{echo},{closed},{REJECTED},{DROPPED}",
                              proto="udp", timeout=0.3, banner=True)  # fmt: skip
    by_pair = {pair_address(r): r for r in report.results}
    assert states(report.results) == {
        f"127.1.0.1:{echo}": OPEN,
        f"127.1.0.1:{closed}": CLOSED,
        f"127.1.0.1:{REJECTED}": FILTERED,
        f"127.1.0.1:{DROPPED}": OPEN_FILTERED,  # as nmap reports silence
        f"[fd00:1ab:1::1]:{echo}": OPEN,
    }
    assert by_pair[f"127.1.0.1:{echo}"].banner == b"pong"  # the reply, with --banner
    assert by_pair[f"127.1.0.1:{REJECTED}"].reason == "communication administratively prohibited"
    assert by_pair[f"127.1.0.1:{DROPPED}"].reason == "no reply"
    assert by_pair[f"127.1.0.1:{closed}"].rtt_ms is not None
    assert all(r.proto == "udp" for r in report.results)


def test_udp_sends_the_payload_and_retries_silence():
    with udp_echo() as echo:
        results = check(f"127.1.0.1:{echo}", proto="udp", send=b"hello", banner=True)
    assert results[0].banner == b"hello"
    report = check_report("127.1.0.1:9", proto="udp", timeout=0.2, retries=2)
    assert report.summary.probes_sent == 3 and report.summary.open_filtered == 1


def test_udp_needs_no_privilege():
    """Without CAP_NET_RAW: connected sockets and IP_RECVERR are anyone's."""
    script = """
        from netdiag.port import PortOptions, parse_port_targets, run_ports
        options = PortOptions(ports=(1, 7, 9), proto="udp", timeout=0.3)
        report = run_ports(parse_port_targets(["127.1.0.1"], options), options)
        print(",".join(r.state.value for r in report.results))
    """
    done = subprocess.run([*without_raw(), sys.executable, "-c", textwrap.dedent(script)], capture_output=True,
                          text=True, timeout=30, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "closed,filtered,open|filtered"


def without_raw() -> list[str]:
    from tests.lab import without_net_raw

    return without_net_raw()


# --- banners and TLS


def test_banner_is_what_the_server_says_first_kept_as_bytes():
    hostile = "SSH-2.0-lab \x1b[31mred\x1b[0m \u202eevil"
    with listener(mode="banner", banner=hostile, host="127.1.0.10") as server:
        (result,) = check(f"127.1.0.10:{server.port}", banner=True)
    assert result.state is OPEN
    assert result.banner == hostile.encode() + b"\r\n"  # raw bytes: visible() is for display


def test_banner_after_a_request_sent_first():
    def http(conn, received):
        conn.settimeout(5)
        while b"\r\n\r\n" not in received:
            received.extend(conn.recv(1024))
        conn.sendall(b"HTTP/1.0 200 OK\r\nServer: lab\r\n\r\n")

    with scripted_server(http) as (port, received, done):
        (result,) = check(f"127.0.0.1:{port}", send=payload_bytes(r"HEAD / HTTP/1.0\r\n\r\n"))
        assert done.wait(5)
    assert bytes(received) == b"HEAD / HTTP/1.0\r\n\r\n"
    assert result.banner == b"HTTP/1.0 200 OK\r\nServer: lab\r\n\r\n"  # written at once, ending a line: no more wait


def test_banner_is_at_most_256_bytes_and_a_quiet_server_gives_an_empty_one():
    def flood(conn, received):
        with contextlib.suppress(OSError):
            conn.sendall(b"x" * 100_000)

    def quiet(conn, received):
        conn.settimeout(5)
        with contextlib.suppress(OSError):
            conn.recv(1)

    with scripted_server(flood) as (port, _, _):
        (flooded,) = check(f"127.0.0.1:{port}", banner=True)
    assert flooded.banner == b"x" * BANNER_BYTES
    with scripted_server(quiet) as (port, _, _):
        start = time.monotonic()
        (silent,) = check(f"127.0.0.1:{port}", banner=True, banner_timeout=0.3)
        waited = time.monotonic() - start
    assert silent.state is OPEN and silent.banner == b""
    assert 0.3 <= waited < 1.5


def test_banner_of_a_closed_port_is_none():
    (result,) = check(f"127.1.0.1:{closed_port()}", banner=True)
    assert result.state is CLOSED and result.banner is None


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    if shutil.which("openssl") is None:
        pytest.skip("no openssl command")
    directory = tmp_path_factory.mktemp("tls")
    key, cert = directory / "key.pem", directory / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "30", "-subj", "/O=Lab/CN=tls.lab.test"],
        check=True, capture_output=True,
    )  # fmt: skip
    end = subprocess.run(["openssl", "x509", "-noout", "-enddate", "-in", str(cert)], check=True,
                         capture_output=True, text=True).stdout.strip().removeprefix("notAfter=")  # fmt: skip
    return key, cert, end


@contextlib.contextmanager
def tls_server(certificate, greeting: bytes = b"", maximum: ssl.TLSVersion | None = None):
    """Accepts connections until closed; each gets a TLS handshake, then ``greeting``."""
    key, cert, _ = certificate
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    if maximum is not None:
        context.maximum_version = maximum
    server = socket.create_server(("127.0.0.1", 0))
    names: list[str | None] = []

    def serve():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            conn.settimeout(5)
            try:
                with context.wrap_socket(conn, server_side=True) as tls:
                    names.append(getattr(tls, "server_hostname", None))
                    tls.sendall(greeting)
                    with contextlib.suppress(OSError):
                        tls.recv(1)
            except (ssl.SSLError, OSError):
                conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        server.close()


def test_tls_version_subject_and_expiry(certificate):
    with tls_server(certificate) as port:
        (result,) = check(f"127.0.0.1:{port}", tls=True)
    assert result.state is OPEN and result.banner is None
    assert result.tls is not None
    assert result.tls.version == "TLSv1.3"
    assert result.tls.subject == "O=Lab, CN=tls.lab.test" == result.tls.issuer
    stamp = ssl.cert_time_to_seconds(certificate[2])
    assert result.tls.not_after == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(stamp))
    assert result.tls.cipher


def test_tls_with_a_banner_and_an_older_version(certificate):
    with tls_server(certificate, b"220 tls.lab.test ready\r\n", ssl.TLSVersion.TLSv1_2) as port:
        (result,) = check(f"127.0.0.1:{port}", tls=True, banner=True)
    assert result.tls is not None and result.tls.version == "TLSv1.2"
    assert result.banner == b"220 tls.lab.test ready\r\n"


def test_tls_to_a_server_that_does_not_speak_it_is_open_with_the_reason():
    with listener(mode="banner", banner="220 plain\r\n") as server:
        (result,) = check(f"127.0.0.1:{server.port}", tls=True, timeout=1)
    assert result.state is OPEN and result.tls is None
    assert result.reason is not None and result.reason.startswith("TLS handshake failed")


def test_tls_to_a_server_that_says_nothing_times_out_as_open():
    with open_port() as port:
        (result,) = check(f"127.0.0.1:{port}", tls=True, timeout=0.3)
    assert (result.state, result.reason, result.tls) == (OPEN, "TLS handshake timed out", None)


# --- the engine: bursts, descriptors, interruptions


@pytest.mark.parametrize("state", ["open", "closed"])
def test_rtts_in_a_burst_do_not_grow_with_position(state):
    """Each connect is timed when its own event is read: a burst of 2,000
    connects takes tens of milliseconds, and the first must not be charged for it."""
    with open_port() if state == "open" else contextlib.nullcontext(closed_port()) as port:
        report = check_report("127.1.0.0/21", ports=str(port), timeout=2)
    rtts = [r.rtt_ms for r in report.results]
    assert len(rtts) == 2046 and all(r.state.value == state for r in report.results)
    assert_flat(rtts)


def test_rtts_of_the_tcp_sweep_do_not_grow_with_position():
    from netdiag.sweep import SweepOptions, run_sweep
    from netdiag.targets import parse_targets as sweep_targets

    report = run_sweep(sweep_targets(["127.1.0.0/21"]), SweepOptions(method="tcp", ports=(1,), names=False))
    rtts = [r.rtts_ms[0] for r in report.results]
    assert len(rtts) == 2046
    assert_flat(rtts)


def assert_flat(rtts: list[float]) -> None:
    fifth = len(rtts) // 5
    medians = [statistics.median(rtts[i * fifth : (i + 1) * fifth]) for i in range(5)]
    # read late, the first fifth would wait for the rest of the burst: milliseconds, growing with the burst
    assert max(medians) < 2.0, medians
    assert max(medians) - min(medians) < 1.0, medians


def test_a_low_descriptor_limit_is_respected_and_running_out_is_back_pressure():
    """Under ulimit -n 100, and with most of it taken after the engine sized
    itself: every pair still gets its answer, none is called filtered."""
    script = """
        import os, resource
        resource.setrlimit(resource.RLIMIT_NOFILE, (100, 100))
        from netdiag.port import PortEngine, PortOptions, parse_port_targets, run_ports
        import netdiag.port as port
        options = PortOptions(ports=(1, 2), timeout=2)
        targets = parse_port_targets(["127.1.0.0/24"], options)
        made = port.PortEngine
        taken = []
        def engine_then_take_descriptors(options):
            engine = made(options)
            while len(taken) < 60:
                taken.append(os.open("/dev/null", os.O_RDONLY))
            return engine
        port.PortEngine = engine_then_take_descriptors
        report = run_ports(targets, options)
        print(report.summary.pairs, report.summary.closed, report.summary.filtered)
    """
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True,
                          timeout=60, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["508", "508", "0"]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_an_interruption_keeps_partial_results_and_marks_pairs_in_flight(signum):
    # 2,000 dropped pairs at 1,000 a second: interrupted after about half a second of sending
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signum))
    with interrupts.handled():
        timer.start()
        try:
            report = check_report("127.2.0.0/21", ports="1", timeout=1, rate=1000)
        finally:
            timer.cancel()
    summary = report.summary
    assert summary.interrupted
    assert 0 < summary.pairs < 2046
    assert summary.filtered == summary.pairs and len(report.results) == summary.pairs
    unsettled = [r for r in report.results if r.reason == NOT_SETTLED]
    assert unsettled and all(r.state is FILTERED for r in unsettled)  # what is known: no answer yet
    assert summary.pairs == summary.probes_sent  # every pair sent has its row


def test_results_arrive_as_they_settle_in_the_calling_thread():
    seen: list[tuple[str, str]] = []
    options = PortOptions(ports=(1,), timeout=0.5)
    caller = threading.current_thread()

    def on_result(result):
        assert threading.current_thread() is caller
        seen.append((pair_address(result), result.state.value))

    report = run_ports(parse_port_targets(["127.2.0.1", "127.1.0.1"], options), options, on_result=on_result)
    assert seen == [("127.1.0.1:1", "closed"), ("127.2.0.1:1", "filtered")]  # completion order
    assert [pair_address(r) for r in report.results] == ["127.2.0.1:1", "127.1.0.1:1"]  # target order


def test_an_external_stop_ends_the_run_like_an_interruption():
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    options = PortOptions(ports=(1,), timeout=5)
    start = time.monotonic()
    report = run_ports(parse_port_targets(["127.2.0.0/24"], options), options, stop=stop)
    assert time.monotonic() - start < 2
    assert all(r.reason == NOT_SETTLED for r in report.results) and report.summary.pairs == 254


# --- the same verdicts as nc -z and nmap -sT


@pytest.mark.skipif(not (shutil.which("nc") and shutil.which("nmap")), reason="needs nc and nmap")
def test_verdicts_agree_with_nc_and_nmap():
    closed = closed_port()
    with open_port() as port:
        ports = [port, closed, REJECTED, DROPPED]
        ours = {r.port: r.state.value for r in check("127.1.0.1", ports=",".join(map(str, ports)), timeout=0.5)}
        nc = {p: subprocess.run(["nc", "-z", "-w", "1", "127.1.0.1", str(p)], capture_output=True, timeout=10,
                                check=False).returncode == 0 for p in ports}  # fmt: skip
        nmap_command = ["nmap", "-sT", "-Pn", "-n", "--max-retries", "0", "-p", ",".join(map(str, ports)), "-oG", "-"]
        scan = subprocess.run([*nmap_command, "127.1.0.1"], capture_output=True, text=True, timeout=60, check=True)
    nmap = parse_grepable(scan.stdout)
    assert {p: state == "open" for p, state in ours.items()} == nc
    # nmap -sT reads the ECONNREFUSED of a firewall's ICMP port unreachable as an RST; IP_RECVERR tells them apart
    assert nmap == {**ours, REJECTED: "closed"}
    assert ours[REJECTED] == "filtered"


@pytest.mark.skipif(not shutil.which("nmap"), reason="needs nmap")
def test_udp_verdicts_agree_with_nmap():
    """nmap -sU has the same four states for the same four answers."""
    closed = closed_port()
    with udp_echo() as echo:
        ports = [echo, closed, REJECTED, DROPPED]
        ours = {r.port: r.state.value for r in check("127.1.0.1", ports=",".join(map(str, ports)), proto="udp",
                                                      timeout=0.5)}  # fmt: skip
        command = ["nmap", "-sU", "-Pn", "-n", "-p", ",".join(map(str, ports)), "-oG", "-", "127.1.0.1"]
        scan = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
    assert parse_grepable(scan.stdout) == ours == {echo: "open", closed: "closed", REJECTED: "filtered",
                                                   DROPPED: "open|filtered"}  # fmt: skip


def parse_grepable(output: str) -> dict[int, str]:
    """nmap -oG's ``Ports: 22/open/tcp//ssh///, ...`` as {port: state}."""
    line = next(line for line in output.splitlines() if "Ports:" in line)
    return {int(p.split("/")[0]): p.split("/")[1] for p in line.split("Ports: ")[1].split("\t")[0].split(", ")}


def test_results_as_json_keys():
    """The fields are the JSON document's keys (issue 9), in its order."""
    (result,) = check(f"127.1.0.1:{closed_port()}")
    assert list(json.loads(json.dumps(result.__dict__, default=str))) == [
        "target", "address", "port", "proto", "service", "state", "reason", "rtt_ms", "banner", "tls",
    ]  # fmt: skip
