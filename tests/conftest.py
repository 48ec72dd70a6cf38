"""Shared fixtures: the in-process CLI runner and the lab marker."""

from __future__ import annotations

import io
from dataclasses import dataclass

import pytest

from netdiag.cli import main
from netdiag.output import Output
from tests.lab import inside_the_lab

NOT_LAB = inside_the_lab()


def pytest_collection_modifyitems(config, items):
    if NOT_LAB is None:
        return
    skip = pytest.mark.skip(reason=f"needs the netlab test network ({NOT_LAB}): run `make test` as root")
    for item in items:
        if "lab" in item.keywords:
            item.add_marker(skip)


@dataclass
class CliResult:
    status: int
    stdout: str
    stderr: str


@pytest.fixture
def cli():
    """Run netdiag in-process: ``cli("service", "ssh")`` → status, stdout, stderr."""

    def run(*argv: str) -> CliResult:
        stdout, stderr = io.StringIO(), io.StringIO()
        status = main(list(argv), Output(stdout, stderr))
        return CliResult(status, stdout.getvalue(), stderr.getvalue())

    return run
