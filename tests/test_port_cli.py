"""``netdiag port`` through the CLI, in-process and without root: open and
closed ports on 127.0.0.1 and ::1 (a connect needs no privilege), banners
from a real server, every output format and the exit statuses."""

from __future__ import annotations

import contextlib
import json
import socket
import threading

import pytest

from tests.test_cli import BOX

KEYS = {"target", "address", "port", "proto", "service", "state", "reason", "rtt_ms", "banner", "tls"}


@pytest.fixture
def banner_server():
    """127.0.0.1: says a hostile banner to each client, then waits for it to leave."""
    server = socket.create_server(("127.0.0.1", 0))
    said = b"SSH-2.0-lab \x1b[2J[bold]x[/bold]\r\n"

    def serve() -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            with client, contextlib.suppress(OSError):  # a port check resets at once: fine
                client.sendall(said)
                client.settimeout(2)
                client.recv(1)

    threading.Thread(target=serve, daemon=True).start()
    yield server.getsockname()[1], said
    server.close()


@pytest.fixture
def closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))  # bound, never listening: a connect gets an RST
        yield sock.getsockname()[1]


def test_every_pair_open_is_exit_0_and_one_closed_is_exit_1(cli, banner_server, closed_port):
    port, _ = banner_server
    assert cli("port", f"127.0.0.1:{port}").status == 0
    result = cli("port", f"127.0.0.1:{port},{closed_port}")
    assert result.status == 1
    assert result.stdout.splitlines()[0].split() == ["ADDRESS", "PORT", "PROTO", "STATE", "RTT_MS", "SERVICE", "TARGET"]
    states = {line.split()[1]: line.split()[3] for line in result.stdout.splitlines()[1:]}
    assert states == {str(port): "open", str(closed_port): "closed"}
    assert result.stderr.startswith("1/2 pairs open (1 closed)")


def test_banner_is_read_and_shown_visibly_never_as_markup_or_escapes(cli, cli_on_a_terminal, banner_server):
    port, said = banner_server
    piped = cli("port", "--banner", f"127.0.0.1:{port}")
    assert "SSH-2.0-lab \\e[2J[bold]x[/bold]\\r\\n" in piped.stdout
    shown = cli_on_a_terminal("port", "--banner", f"127.0.0.1:{port}")
    assert "[bold]x[/bold]" in shown.stdout and "\x1b[2J" not in shown.stdout
    document = json.loads(cli("port", "--banner", "--json", f"127.0.0.1:{port}").stdout)
    [row] = document["results"]
    assert set(row) == KEYS and row["banner"] == said.decode() and row["state"] == "open"


def test_json_summary_and_open_filter(cli, banner_server, closed_port):
    port, _ = banner_server
    document = json.loads(cli("port", "--json", "--open", "-p", f"{port},{closed_port}", "127.0.0.1").stdout)
    assert [(r["port"], r["state"]) for r in document["results"]] == [(port, "open")]
    assert {k: document["summary"][k] for k in ("pairs", "open", "closed")} == {"pairs": 2, "open": 1, "closed": 1}


def test_jsonl_streams_each_pair_then_the_summary(cli, banner_server, closed_port):
    port, _ = banner_server
    lines = [
        json.loads(line)
        for line in cli("port", "--jsonl", "-p", f"{port},{closed_port}", "127.0.0.1").stdout.splitlines()
    ]
    assert sorted(r["port"] for r in lines[:-1]) == sorted([port, closed_port])
    assert lines[-1]["summary"]["pairs"] == 2


def test_grid_in_a_pipe_is_letters_and_on_a_terminal_coloured(cli, cli_on_a_terminal, banner_server, closed_port):
    port, _ = banner_server
    argv = ("port", "--grid", "-p", f"{port},{closed_port}", "127.0.0.1", "::1")
    piped = cli(*argv)
    rows = {line.split()[0]: line.split()[1:] for line in piped.stdout.splitlines()[1:3]}
    low, high = sorted([port, closed_port])
    expect = {port: "O", closed_port: "C"}
    assert rows["127.0.0.1"] == [expect[low], expect[high]]
    assert rows["::1"] == ["C", "C"]  # nothing listens on ::1 at these ports
    shown = cli_on_a_terminal(*argv)
    assert "\x1b[" in shown.stdout and "open|filtered" in shown.stdout  # the coloured cells and legend


def test_on_a_terminal_the_table_is_grouped_by_host(cli_on_a_terminal, banner_server, closed_port):
    port, _ = banner_server
    shown = cli_on_a_terminal("port", "-p", f"{port},{closed_port}", "127.0.0.1", "::1")
    assert BOX & set(shown.stdout)
    assert shown.stdout.count("127.0.0.1") == 1  # the host once, its ports below it


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("port", "127.0.0.1:0"), "port 0"),
        (("port", "127.0.0.1", "-p", "nosuch"), "unknown service"),
        (("port", "127.0.0.1", "--tls", "-u"), "--tls goes with TCP"),
        (("port", "127.0.0.0/8", "-p", "22"), "--force"),
        (("port", "127.0.0.1", "--send", "\\q"), "unknown escape"),
        (("port", "[::1"), "without its ']'"),
        (("port", "localhost", "5432"), "looks like a port: write HOST:5432 or -p 5432"),
        (("port", "127.1.0.1:22:23"), "is not an address, network, range or host name"),
        (("port", "127.0.0.1%lo:22"), "not an address"),
        (("port", "@", "-p", "22"), "is not an address"),
        (("port", "-", "-", "-p", "22"), "given twice"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_nothing_sent(cli, argv, message):
    result = cli(*argv)
    assert result.status == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr


def test_the_state_survives_a_narrow_terminal(cli_on_a_terminal, monkeypatch, banner_server):
    port, _ = banner_server
    monkeypatch.setenv("COLUMNS", "40")
    shown = cli_on_a_terminal("port", "--banner", f"127.0.0.1:{port}")
    header, row = shown.stdout.splitlines()[:2]
    assert header.split()[:4] == ["ADDRESS", "PORT", "PROTO", "STATE"] and row.split()[3] == "open"
    assert all(len(line) <= 40 for line in shown.stdout.splitlines())


def test_a_grid_of_many_ports_comes_in_blocks_that_fit_and_open_keeps_hosts_with_an_open_port(
    cli_on_a_terminal, monkeypatch, banner_server
):
    port, _ = banner_server
    monkeypatch.setenv("COLUMNS", "60")
    shown = cli_on_a_terminal("port", "--grid", "--open", "-p", f"1-30,{port}", "127.0.0.1", "127.0.0.2")
    lines = [line for line in shown.stdout.splitlines() if line.strip()]
    assert all(len(line) <= 60 for line in lines)
    assert not any(line.startswith("127.0.0.2") for line in lines)  # nothing open there
    assert sum(line.startswith("HOST") for line in lines) >= 2  # 31 ports: more than one block
    assert any(line.startswith("127.0.0.1") and line.rstrip().endswith("O") for line in lines)


def test_json_banners_never_confuse_a_backslash_with_a_byte(cli):
    import contextlib

    servers = []
    for said in (b"\xff\n", b"\\xff\n"):  # the byte 0xff; the four characters \xff
        server = socket.create_server(("127.0.0.1", 0))

        def serve(server: socket.socket = server, said: bytes = said) -> None:
            client, _ = server.accept()
            with client, contextlib.suppress(OSError):
                client.sendall(said)
                client.recv(1)

        threading.Thread(target=serve, daemon=True).start()
        servers.append(server)
    ports = ",".join(str(s.getsockname()[1]) for s in servers)
    document = json.loads(cli("port", "--banner", "--json", f"127.0.0.1:{ports}").stdout)
    banners = {r["port"]: r["banner"] for r in document["results"]}
    byte, text = (banners[s.getsockname()[1]] for s in servers)
    assert byte == "\\xff\n" and text == "\\\\xff\n" and byte != text
    for server in servers:
        server.close()


def test_ctrl_c_while_a_banner_is_awaited_says_the_banner_was_cut_short(cli):
    import os
    import signal

    server = socket.create_server(("127.0.0.1", 0))  # accepts (the kernel does) and never says a word
    port = server.getsockname()[1]
    threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT)).start()
    result = cli("port", "--banner", "--banner-timeout", "10", "--json", f"127.0.0.1:{port}")
    server.close()
    assert result.status == 130
    document = json.loads(result.stdout)
    [row] = document["results"]
    assert (row["state"], row["reason"]) == ("open", "interrupted reading the banner")
    assert document["summary"]["interrupted"] is True


def test_a_udp_host_silent_beside_closed_ports_is_said_to_limit_its_icmp():
    from netdiag.port import PortResult, PortState
    from netdiag.views.port import rate_limit_notes

    def row(port: int, state: PortState, address: str = "192.0.2.1") -> PortResult:
        return PortResult(address, address, port, "udp", None, state)

    limited = [row(1, PortState.CLOSED), *(row(p, PortState.OPEN_FILTERED) for p in range(2, 8))]
    quiet = [row(p, PortState.OPEN_FILTERED, "192.0.2.2") for p in range(1, 20)]  # all silent: a firewall, no note
    [note] = rate_limit_notes(limited + quiet)
    assert note.startswith("192.0.2.1: 6 ports silent beside 1 closed")
    assert rate_limit_notes(limited[:5]) == []  # too few silent ports to say anything
