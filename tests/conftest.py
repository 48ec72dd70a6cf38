"""Shared fixtures: the in-process CLI runner and the lab marker."""

from __future__ import annotations

import io
import signal
import socket
from dataclasses import dataclass

import pytest

from netdiag.cli import main
from netdiag.output import Output
from tests.lab import inside_the_lab

NOT_LAB = inside_the_lab()

# A background job of a non-interactive shell starts with SIGINT ignored, and
# children inherit that: the tests that interrupt netdiag with SIGINT would wait
# in vain. A handler here is not inherited; the children get the default back.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_collection_modifyitems(config, items):
    if NOT_LAB is None:
        return
    skip = pytest.mark.skip(reason=f"needs the netlab test network ({NOT_LAB}): run `make test` as root")
    for item in items:
        if "lab" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def silent_resolver(tmp_path):
    """A resolv.conf naming a DNS server (127.0.0.53, inside the lab) that reads
    queries and never answers: use it through tests.lab.with_resolv_conf."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.53", 53))
    conf = tmp_path / "resolv.conf"
    conf.write_text("nameserver 127.0.0.53\noptions timeout:30 attempts:1\n")
    yield conf
    sock.close()


@dataclass
class CliResult:
    status: int
    stdout: str
    stderr: str


class TerminalStream(io.StringIO):
    """A stream that says it is a terminal: rich tables, maps and progress bars are drawn into it."""

    def isatty(self) -> bool:
        return True


@pytest.fixture
def cli_on_a_terminal(monkeypatch):
    """Like ``cli``, with stdout and stderr on a (pretend) 100-column terminal."""
    monkeypatch.setenv("COLUMNS", "100")

    def run(*argv: str) -> CliResult:
        stdout, stderr = TerminalStream(), TerminalStream()
        status = main(list(argv), Output(stdout, stderr))
        return CliResult(status, stdout.getvalue(), stderr.getvalue())

    return run


@pytest.fixture
def cli():
    """Run netdiag in-process: ``cli("service", "ssh")`` → status, stdout, stderr."""

    def run(*argv: str) -> CliResult:
        stdout, stderr = io.StringIO(), io.StringIO()
        status = main(list(argv), Output(stdout, stderr))
        return CliResult(status, stdout.getvalue(), stderr.getvalue())

    return run
