"""Shared fixtures: the in-process CLI runner and the lab marker."""

from __future__ import annotations

import io
import os
from dataclasses import dataclass

import pytest

from netdiag.cli import main
from netdiag.output import Output

IN_LAB = bool(os.environ.get("NETDIAG_LAB"))


def pytest_collection_modifyitems(config, items):
    if IN_LAB:
        return
    skip = pytest.mark.skip(reason="needs the netlab test network: run `make test` as root")
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
