"""Helpers for tests that run inside scripts/netlab."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NETLAB = ROOT / "scripts" / "netlab"


LAN_MAC = "02:1a:b0:00:00:01"


def inside_the_lab() -> str | None:
    """Why this is not the lab (None when it is): lab tests send to
    198.18.0.0/15, which must be the lab's own segments, never a real
    network. NETDIAG_LAB alone is an environment variable anyone can set."""
    if not os.environ.get("NETDIAG_LAB"):
        return "not inside scripts/netlab"
    if os.readlink("/proc/self/ns/net") == os.environ.get("NETLAB_HOST_NET", ""):
        return "NETDIAG_LAB is set, but this is the machine's own network namespace"
    routes = subprocess.run(["ip", "route", "show", "default"], capture_output=True, text=True, check=False)
    if routes.stdout.strip():
        return "NETDIAG_LAB is set, but this namespace has a default route"
    link = subprocess.run(["ip", "-br", "link", "show", "lan0"], capture_output=True, text=True, check=False)
    if LAN_MAC not in link.stdout:
        return "NETDIAG_LAB is set, but the lab's segment lan0 is not here"
    return None


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


def with_file_over(path: Path, target: str) -> list[str]:
    """Command prefix that runs its command with ``path`` in place of ``target``
    (an /etc file). A nested mount namespace: the rest of the lab keeps its own."""
    return ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
            f'mount --bind "{path}" "{target}" && exec "$@"', "sh"]  # fmt: skip


def with_resolv_conf(path: Path) -> list[str]:
    """Command prefix that runs its command with another /etc/resolv.conf."""
    return with_file_over(path, "/etc/resolv.conf")
