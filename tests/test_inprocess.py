"""The sweep in-process, without root and without the lab: the TCP method on
127.0.0.1 and ::1 (a connect needs no privilege), through ``run_sweep`` and
through the CLI on a (pretend) terminal, so the rich table, the map and the
progress bar are drawn, and in a pipe, where they must not be."""

from __future__ import annotations

import json
import socket

import pytest

from netdiag.models import HostState
from netdiag.sweep import SweepOptions, run_sweep
from netdiag.targets import parse_targets
from tests.test_cli import BOX


@pytest.fixture
def open_port():
    """A port listening on 127.0.0.1 and ::1 (the same number on both)."""
    for _ in range(20):
        v4 = socket.create_server(("127.0.0.1", 0))
        port = v4.getsockname()[1]
        try:
            v6 = socket.create_server(("::1", port), family=socket.AF_INET6)
        except OSError:
            v4.close()
            continue
        yield port
        v4.close()
        v6.close()
        return
    pytest.skip("no port free on both 127.0.0.1 and ::1")


def tcp_options(port: int, **more) -> SweepOptions:
    return SweepOptions(method="tcp", ports=(port,), timeout=1.0, names=False, **more)


def test_run_sweep_over_tcp_on_both_loopbacks_keeps_input_order_and_targets(open_port):
    targets = parse_targets(["::1", "127.0.0.1", "127.0.0.2-3"])
    report = run_sweep(targets, tcp_options(open_port))
    rows = [(r.target, r.address, r.state) for r in report.results]
    assert rows == [
        ("::1", "::1", HostState.UP),
        ("127.0.0.1", "127.0.0.1", HostState.UP),
        ("127.0.0.2-3", "127.0.0.2", HostState.UP),  # 127/8 is ours: a connect anywhere in it is answered
        ("127.0.0.2-3", "127.0.0.3", HostState.UP),
    ]
    assert all(r.stats.received == 1 and r.stats.avg is not None and r.stats.avg < 1000 for r in report.results)
    assert report.summary.method.startswith("tcp")
    assert (report.summary.total, report.summary.up, report.summary.down) == (4, 4, 0)


def test_count_gives_tcp_that_many_connects_per_host_like_every_method(open_port):
    report = run_sweep(parse_targets(["127.0.0.1", "::1"]), tcp_options(open_port, count=3, interval=0.01))
    assert [r.stats.sent for r in report.results] == [3, 3]
    assert all(r.stats.received == 3 and r.stats.loss == 0.0 for r in report.results)
    assert report.summary.probes_sent == 6


def test_a_closed_port_answers_too_a_reset_is_an_answer(open_port):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]  # bound, never listening: connects are refused
        report = run_sweep(parse_targets(["127.0.0.1"]), tcp_options(closed))
    assert [r.state for r in report.results] == [HostState.UP]


def test_on_a_terminal_the_table_map_and_progress_bar_are_drawn(cli_on_a_terminal, open_port):
    shown = cli_on_a_terminal("sweep", "-m", "tcp", "-p", str(open_port), "-n", "--map", "127.0.0.0/29", "::1")
    assert shown.status == 0, shown.stderr
    assert BOX & set(shown.stdout)
    assert "Map of 127.0.0.0/29" in shown.stdout and "██" in shown.stdout
    assert "Address" in shown.stdout and "127.0.0.6" in shown.stdout
    assert "sweeping" in shown.stderr and "━" in shown.stderr  # the progress bar
    assert "\x1b[1;32m7\x1b[0m/7 hosts up" in shown.stderr  # the coloured summary


def test_in_a_pipe_plain_columns_and_a_plain_summary(cli, open_port):
    piped = cli("sweep", "-m", "tcp", "-p", str(open_port), "-n", "web.invalid.", "127.0.0.1", "::1", "-t", "1")
    assert piped.status == 0  # the default: any host answering is enough
    lines = piped.stdout.splitlines()
    assert lines[0].split() == ["TARGET", "ADDRESS", "STATE", "RTT_MS", "NAME"]  # a name target: the column shows
    assert [line.split()[0] for line in lines[1:]] == ["web.invalid", "127.0.0.1", "::1"]
    assert "unresolved" in lines[1]
    assert not BOX & set(piped.stdout) and "\x1b" not in piped.stdout + piped.stderr
    assert "2/3 hosts up" in piped.stderr


def test_require_all_fails_when_one_host_is_missing(cli, open_port):
    result = cli(
        "sweep", "-m", "tcp", "-p", str(open_port), "-n", "--require", "all", "-t", "1", "127.0.0.1", "x.invalid."
    )
    assert result.status == 1


def test_json_document_has_the_target_and_statistics_in_process(cli, open_port):
    result = cli("sweep", "-m", "tcp", "-p", str(open_port), "-n", "--json", "127.0.0.1/31")
    document = json.loads(result.stdout)
    assert [(r["target"], r["address"]) for r in document["results"]] == [
        ("127.0.0.1/31", "127.0.0.0"),
        ("127.0.0.1/31", "127.0.0.1"),
    ]
    for row in document["results"]:
        assert len(row["rtts_ms"]) == 1 and row["loss"] == 0.0
        assert row["rtt_min_ms"] <= row["rtt_ms"] <= row["rtt_max_ms"]
    assert document["summary"]["up"] == 2


def test_jsonl_and_json_together_are_refused_in_one_line(cli):
    result = cli("sweep", "--json", "--jsonl", "127.0.0.1")
    assert result.status == 2 and result.stderr.count("\n") == 1 and "pick one" in result.stderr


def test_telnet_in_process_is_a_byte_exact_pipe(monkeypatch, tmp_path):
    """Piped (stdin a file): no telnet protocol, every byte both ways as is."""
    import io
    import sys
    import threading

    from netdiag.cli import main
    from netdiag.output import Output

    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        client, _ = server.accept()
        with client:
            received = b""
            while chunk := client.recv(4096):
                received += chunk
            client.sendall(received[::-1])  # the client's bytes, reversed: both directions checked

    threading.Thread(target=serve, daemon=True).start()
    sent = bytes(range(256)) + b"\xff\xfd\x01 not telnet here\r\n"
    (tmp_path / "input").write_bytes(sent)
    with open(tmp_path / "input", "rb") as stdin:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(stdin))
        stdout = io.TextIOWrapper(io.BytesIO(), write_through=True)
        stderr = io.StringIO()
        status = main(["telnet", "127.0.0.1", str(server.getsockname()[1])], Output(stdout, stderr))
    server.close()
    assert status == 0, stderr.getvalue()
    assert stdout.buffer.getvalue() == sent[::-1]  # type: ignore[attr-defined]
    assert stderr.getvalue() == ""  # piped and without -v: nothing but the bytes


def test_listen_in_process_logs_each_client_and_stops_cleanly_on_sigterm():
    import io
    import os
    import signal
    import threading
    import time

    from netdiag.cli import main
    from netdiag.output import Output

    stdout, stderr = io.StringIO(), io.StringIO()

    def client() -> None:
        deadline = time.monotonic() + 5
        while '"listening"' not in stdout.getvalue() and time.monotonic() < deadline:
            time.sleep(0.01)
        port = json.loads(stdout.getvalue().splitlines()[0])["port"]
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(b"ping\n")
            assert sock.recv(16) == b"ping\n"  # echo mode
        while '"close"' not in stdout.getvalue() and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGTERM)  # listen's clean stop

    threading.Thread(target=client, daemon=True).start()
    status = main(["listen", "0", "--json"], Output(stdout, stderr))
    events = [json.loads(line) for line in stdout.getvalue().splitlines()]
    assert status == 0, stderr.getvalue()
    assert [e["event"] for e in events] == ["listening", "open", "close", "summary"]
    assert events[2]["received"] == events[2]["sent"] == 5
    assert events[-1]["connections"] == 1 and events[-1]["interrupted"] is False
