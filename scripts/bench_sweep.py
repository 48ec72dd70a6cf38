#!/usr/bin/env python3
"""Sweep benchmark: netdiag against fping (and nmap -sn), side by side, in the lab.

Run by `make bench` inside scripts/netlab; every packet stays on loopback in
the lab's own namespace. Prints a markdown table of medians over --runs runs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from benchlib import StealMeter, machine, print_targets, revision

ROOT = Path(__file__).resolve().parents[1]
NETDIAG = [sys.executable, "-m", "netdiag"]
NETLAB = str(ROOT / "scripts" / "netlab")


@dataclass
class Run:
    wall_s: float
    cpu_s: float  # user + system: steadier than wall time on a VM whose CPU is stolen
    rss_mb: float
    found: int


def measure(command: list[str], count_found, *, cwd: Path = ROOT, env: dict[str, str] | None = None) -> Run:
    """Wall time, the child's own peak RSS (wait4) and the hosts it reported. ``cwd`` is the tree
    whose package `python -m netdiag` runs (the directory it starts in comes first on its path)."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=cwd, env=env)
    stdout = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    return Run(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, count_found(stdout))


def lines(stdout: bytes) -> int:
    return len(stdout.splitlines())


def netdiag_rows(stdout: bytes) -> int:
    return max(len(stdout.splitlines()) - 1, 0)  # minus the header line


def json_alive(stdout: bytes) -> int:
    return stdout.count(b'"alive":true')


def nmap_up(stdout: bytes) -> int:
    return stdout.count(b"Status: Up")


@dataclass
class Tool:
    name: str
    command: list[str]
    count_found: object
    note: str = ""


def scenarios() -> list[tuple[str, str, list[Tool], dict]]:
    no_raw = [NETLAB, "--no-raw"]
    sweep16 = ["sweep", "127.3.0.0/16", "-t", "1", "-r", "0", "-n", "--alive"]
    fping16 = ["fping", "-a", "-q", "-g", "127.3.0.0/16", "-i", "0", "-r", "0", "-t", "1000"]
    tools16 = [
        Tool("netdiag (raw ICMP)", NETDIAG + sweep16, netdiag_rows),
        Tool("netdiag (unprivileged ICMP)", no_raw + NETDIAG + sweep16, netdiag_rows),
        Tool("fping -i 0 -r 0 -t 1000", fping16, lines),
    ]
    if shutil.which("nmap"):
        tools16.append(
            Tool(
                "nmap -sn --max-retries 0",
                ["nmap", "-sn", "-n", "--max-retries", "0", "-oG", "-", "127.3.0.0/16"],
                nmap_up,
                "not comparable: nmap -sn counts every loopback address up",
            )
        )
    alive24 = [
        Tool("netdiag", [*NETDIAG, "sweep", "127.1.0.0/24", "-t", "1", "--alive"], netdiag_rows),
        Tool("fping", ["fping", "-a", "-q", "-g", "127.1.0.0/24", "-i", "0", "-r", "0", "-t", "1000"], lines),
    ]
    dead24 = [
        Tool("netdiag", [*NETDIAG, "sweep", "127.2.0.0/24", "-t", "0.5", "--alive"], netdiag_rows),
        Tool("fping", ["fping", "-a", "-q", "-g", "127.2.0.0/24", "-i", "0", "-r", "0", "-t", "500"], lines),
    ]
    every16 = ["sweep", "127.3.0.0/16", "-t", "1", "-r", "0", "-n"]  # every row, as a script reads them
    output16 = [
        Tool("netdiag (columns)", NETDIAG + every16, lambda out: out.count(b" up ")),
        Tool("netdiag --json", [*NETDIAG, *every16, "--json"], json_alive),
        Tool("fping -i 0 -r 0 -t 1000", fping16, lines),
    ]
    return [
        ("127.3.0.0/16, half alive, timeout 1 s", "32,767 found, <= 0.8x fping, RSS < 100 MB", tools16,
         {"found": 32767, "ratio": 0.8, "rss": 100}),
        ("127.3.0.0/16, every row printed", "--json adds <= 10% to the columns' wall time, RSS < 100 MB", output16,
         {"found": 32767, "rss": 100, "versus": ("netdiag (columns)", 1.10)}),
        ("127.1.0.0/24, all alive (with names)", "ends within 0.3 s", alive24, {"found": 254, "wall": 0.3}),
        ("127.2.0.0/24, all dead, timeout 0.5 s", "ends within 0.7 s", dead24, {"found": 0, "wall": 0.7}),
    ]  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--scenario", action="append", metavar="TEXT",
                        help="only the scenarios whose title holds TEXT (repeatable): 'every row'")  # fmt: skip
    args = parser.parse_args()
    chosen = [s for s in scenarios() if not args.scenario or any(text in s[0] for text in args.scenario)]
    if not chosen:
        titles = "; ".join(s[0] for s in scenarios())
        print(f"bench_sweep: no scenario's title holds {' or '.join(args.scenario)} (titles: {titles})",
              file=sys.stderr)  # fmt: skip
        return 2
    if not os.environ.get("NETDIAG_LAB"):
        print("bench_sweep: run inside the lab: scripts/netlab python scripts/bench_sweep.py", file=sys.stderr)
        return 2
    if not shutil.which("fping"):
        print("bench_sweep: fping is not installed (apt-get install fping)", file=sys.stderr)
        return 2
    print(f"## Sweep benchmark ({args.runs} runs each, medians; interleaved runs)\n")
    print(f"Machine: {machine()}; netdiag at {revision(ROOT)}\n")
    steal = StealMeter()
    verdicts = []
    for title, target_text, tools, target in chosen:
        runs: dict[str, list[Run]] = {t.name: [] for t in tools}
        for _ in range(args.runs):  # interleaved: machine noise hits every tool alike
            for tool in tools:
                runs[tool.name].append(measure(tool.command, tool.count_found))
        print(f"### {title} (target: {target_text})\n")
        print("| tool | median wall s | min wall s | vs fping | median CPU s | peak RSS MB | hosts found |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        peer = next(t.name for t in tools if t.name.startswith("fping"))
        peer_wall = statistics.median(r.wall_s for r in runs[peer])
        for tool in tools:
            walls = [r.wall_s for r in runs[tool.name]]
            wall = statistics.median(walls)
            rss = statistics.median(r.rss_mb for r in runs[tool.name])
            cpu = statistics.median(r.cpu_s for r in runs[tool.name])
            found = sorted({r.found for r in runs[tool.name]})
            found_text = ", ".join(f"{f:,}" for f in found) + (f" ({tool.note})" if tool.note else "")
            print(
                f"| {tool.name} | {wall:.3f} | {min(walls):.3f} | {wall / peer_wall:.2f}x | {cpu:.3f} | {rss:.0f} "
                f"| {found_text} |"
            )
            if tool.name.startswith("netdiag"):
                base, most = target.get("versus", (None, 0))
                if base is not None and tool.name != base:
                    versus = wall / statistics.median(r.wall_s for r in runs[base])
                    verdicts.append(
                        f"{title}, {tool.name}: {versus:.2f}x {base} (want <= {most}x): "
                        f"{'met' if versus <= most else 'MISSED'}"
                    )
                verdicts.append(_verdict(title, tool.name, wall, wall / peer_wall, rss, found, target))
        print()
    print_targets(steal, verdicts)
    return 0


def _verdict(title, name, wall, ratio, rss, found, target) -> str:
    met = "met" if found == [target["found"]] else "MISSED"
    checks = [f"found {'/'.join(map(str, found))} (want {target['found']}): {met}"]
    if "ratio" in target:
        checks.append(
            f"{ratio:.2f}x fping (want <= {target['ratio']}x): {'met' if ratio <= target['ratio'] else 'MISSED'}"
        )
    if "rss" in target:
        checks.append(f"RSS {rss:.0f} MB (want < {target['rss']}): {'met' if rss < target['rss'] else 'MISSED'}")
    if "wall" in target:
        checks.append(f"{wall:.3f} s (want <= {target['wall']} s): {'met' if wall <= target['wall'] else 'MISSED'}")
    return f"{title}, {name}: " + "; ".join(checks)


if __name__ == "__main__":
    sys.exit(main())
