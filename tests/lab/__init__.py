"""Helpers for tests that run inside scripts/netlab."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NETLAB = ROOT / "scripts" / "netlab"


def netdiag_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "netdiag", *args]


def run_netdiag(*args: str, timeout: float = 60, env: dict | None = None, stdin: bytes | None = None, prefix=()):
    """Run netdiag as a real process; returns CompletedProcess with bytes output."""
    return subprocess.run(
        [*prefix, *netdiag_command(*args)],
        input=stdin,
        capture_output=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )


def without_net_raw() -> list[str]:
    """Command prefix that runs its command without CAP_NET_RAW."""
    return [str(NETLAB), "--no-raw"]


def with_resolv_conf(path: Path) -> list[str]:
    """Command prefix that runs its command with another /etc/resolv.conf.

    A nested mount namespace: the rest of the lab keeps the lab resolver."""
    return ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
            f'mount --bind "{path}" /etc/resolv.conf && exec "$@"', "sh"]  # fmt: skip
