"""The CLI in-process (status, stdout, stderr) and as a real process."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.lab import run_netdiag


def test_service_table_and_exit_codes(cli):
    ok = cli("service", "ssh", "22")
    assert ok.status == 0
    assert "ssh" in ok.stdout and "22" in ok.stdout
    assert ok.stderr == ""

    missing = cli("service", "ssh", "no-such-service-xyz")
    assert missing.status == 1
    assert "ssh" in missing.stdout
    assert missing.stderr.strip() == "netdiag: no service no-such-service-xyz in the services database"

    malformed = cli("service", "80/xyz", "ssh", "no-such-service-xyz")
    assert malformed.status == 2  # malformed beats not-found
    assert len(malformed.stderr.strip().splitlines()) == 2  # one line per failed query


def test_service_json_is_one_document(cli):
    result = cli("service", "--json", "domain", "nope-xyz")
    document = json.loads(result.stdout)
    assert [r["query"] for r in document["results"]] == ["domain", "nope-xyz"]
    assert document["results"][0]["found"] is True
    assert {e["protocol"] for e in document["results"][0]["entries"]} == {"tcp", "udp"}
    assert document["results"][1] == {
        "query": "nope-xyz",
        "found": False,
        "entries": [],
        "error": pytest.approx(document["results"][1]["error"]),
    }
    assert result.status == 1


def test_service_list(cli):
    result = cli("service", "--list", "--grep", "domain", "--json")
    assert result.status == 0
    assert all(
        "domain" in s["name"] or "domain" in " ".join(s["aliases"]) for s in json.loads(result.stdout)["services"]
    )
    nothing = cli("service", "--list", "--grep", "zzzz-nothing")
    assert nothing.status == 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["service"], "give at least one service name or port"),
        (["service", "--proto", "SCTP", "ssh"], "--proto: unknown protocol 'SCTP'"),
        (["service", "--bogus"], "No such option: --bogus"),
        (["dns", "--timeout", "-1", "localhost"], "--timeout must be more than 0"),
        (["dns"], "give a name or an address to look up"),
        (["nosuchcommand"], "No such command"),
    ],
)
def test_bad_input_is_one_line_exit_2(cli, argv, message):
    result = cli(*argv)
    assert result.status == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_help_lists_every_command(cli, capsys):
    assert cli("--help").status == 0
    shown = capsys.readouterr().out
    for command in ("sweep", "port", "service", "dns", "telnet", "listen"):
        assert command in shown


def test_real_process_piped_has_no_escape_codes_and_errors_on_stderr():
    result = run_netdiag("service", "ssh", "nope-xyz", env={"TERM": "xterm-256color", "FORCE_COLOR": ""})
    assert result.returncode == 1
    assert b"\x1b" not in result.stdout and b"\x1b" not in result.stderr
    assert b"ssh" in result.stdout and b"nope-xyz" in result.stderr


def test_json_pipes_into_a_parser():
    result = run_netdiag("service", "--json", "ssh")
    assert json.loads(result.stdout)["results"][0]["entries"][0]["port"] == 22


def test_startup_is_lazy():
    code = (
        "import sys; from netdiag.cli import app; "
        "print(','.join(m for m in sys.modules if m.startswith(('netdiag', 'rich'))))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split(",")
    assert not any(m.startswith("rich") for m in loaded)
    assert not {"netdiag.sweep", "netdiag.resolver", "netdiag.services"} & set(loaded)


def test_the_system_view_never_pays_for_the_dns_client():
    """dns with names and addresses alone is getaddrinfo's view: dnspython and
    the protocol client stay unloaded (start-up is most of a small batch's time)."""
    code = (
        "import io, sys; from netdiag.cli import main; from netdiag.output import Output; "
        "main(['dns', 'localhost', 'localhost.', '127.0.0.1'], Output(io.StringIO(), io.StringIO())); "
        "print(','.join(m for m in sys.modules if m.startswith(('netdiag', 'dns'))))"
    )
    loaded = set(
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split(",")
    )
    assert not {"netdiag.dnsclient", "netdiag.records", "netdiag.crosscheck", "dns.name", "dns.message"} & loaded


def test_help_runs_as_module():
    result = subprocess.run(
        [sys.executable, "-m", "netdiag", "--help"], capture_output=True, env={**os.environ}, check=False
    )
    assert result.returncode == 0
    assert b"service" in result.stdout


@pytest.mark.lab
def test_dns_outcomes_through_the_cli(cli):
    result = cli("dns", "--json", "www.lab.test", "127.1.0.66", "nope.lab.test", "127.9.9.9", "127.1.0.77")
    assert result.status == 1
    by_query = {r["query"]: r for r in json.loads(result.stdout)["results"]}
    assert list(by_query) == ["www.lab.test", "127.1.0.66", "nope.lab.test", "127.9.9.9", "127.1.0.77"]
    assert by_query["www.lab.test"]["canonical"] == "web.lab.test"
    assert by_query["127.1.0.66"]["confirmed"] is False
    assert by_query["nope.lab.test"]["status"] == "nxdomain"
    assert by_query["127.9.9.9"]["status"] == "no-ptr"
    assert by_query["127.1.0.77"]["ptr"] == "[bold]evil[/bold].lab.test"


@pytest.mark.lab
def test_dns_table_shows_hostile_names_literally(cli):
    result = cli("dns", "127.1.0.77", "127.1.0.78")
    assert result.status == 0
    assert "[bold]evil[/bold].lab.test" in result.stdout
    assert "\\e[31mred\\e[0m.lab.test" in result.stdout
    assert "\x1b" not in result.stdout


BOX = set("┏┃┡│└━─")


@pytest.mark.parametrize(
    "argv",
    [("service", "ssh", "53/udp"), ("service", "--list", "--grep", "ssh"), ("dns", "localhost", "127.0.0.1")],
    ids=["service", "service-list", "dns"],
)
def test_one_decision_for_every_command_boxes_on_a_terminal_columns_in_a_pipe(cli, cli_on_a_terminal, argv):
    piped, shown = cli(*argv), cli_on_a_terminal(*argv)
    assert piped.status == shown.status == 0
    assert not BOX & set(piped.stdout), piped.stdout  # grep and awk read these
    assert piped.stdout.splitlines()[0].split()[0] in ("QUERY", "SERVICE")
    assert BOX & set(shown.stdout), shown.stdout


def test_version(cli):
    from netdiag import __version__

    for flag in ("--version", "-V"):
        result = subprocess.run([sys.executable, "-m", "netdiag", flag], capture_output=True, text=True, check=False)
        assert (result.returncode, result.stdout) == (0, f"netdiag {__version__}\n")


def test_shell_completion_through_typer(tmp_path):
    env = {**os.environ, "_NETDIAG_COMPLETE": "complete_bash", "COMP_WORDS": "netdiag sweep --me", "COMP_CWORD": "2"}
    result = subprocess.run([sys.executable, "-m", "netdiag"], capture_output=True, text=True, env=env, check=False)
    assert result.returncode == 0 and result.stdout.split() == ["--method"]
    script = subprocess.run([sys.executable, "-m", "netdiag", "--show-completion", "bash"], capture_output=True,
                            text=True, env={**os.environ, "SHELL": "/bin/bash"}, check=False)  # fmt: skip
    assert script.returncode == 0 and "_NETDIAG_COMPLETE" in script.stdout


def test_no_arguments_prints_the_whole_usage_not_one_squashed_line():
    result = subprocess.run([sys.executable, "-m", "netdiag"], capture_output=True, text=True, check=False)
    assert result.returncode == 2 and result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[0].startswith("Usage: netdiag") and any(line.strip().startswith("sweep") for line in lines)


@pytest.mark.parametrize("command", ["sweep", "port", "service", "dns", "telnet", "listen"])
def test_help_has_click_style_metavars_examples_and_exit_statuses(command):
    result = subprocess.run(
        [sys.executable, "-m", "netdiag", command, "--help"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0
    assert "<str>" not in result.stdout and "<float>" not in result.stdout and "<int>" not in result.stdout
    assert "{" not in result.stdout.splitlines()[0]  # the usage line: TARGET..., not {TARGET...}
    assert "Examples:\n" in result.stdout and f"netdiag {command} " in result.stdout
    assert "Exit status:\n" in result.stdout and "  2  " in result.stdout


def test_the_shipped_manual_page_is_made_from_the_current_commands():
    """docs/netdiag.1 is generated (make man): every option and exit status the
    help shows is in it, and nothing the commands no longer have."""
    import typer

    from netdiag.cli import _click_style_usage, app
    from netdiag.manpage import render

    shipped = (Path(__file__).parents[1] / "docs" / "netdiag.1").read_text()
    assert shipped == render(_click_style_usage(typer.main.get_command(app))), "run `make man`"
    for needle in ("\\-\\-require", "\\-\\-watch", "\\-\\-log FILE", "Exit status", "128+N"):
        assert needle in shipped
