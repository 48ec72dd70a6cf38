#!/usr/bin/env python3
"""LAN sweep benchmark: netdiag against nmap, fping and arp-scan, side by side,
on the lab's Ethernet segment and behind its router.

Run by `make bench` inside scripts/netlab: every packet stays in the lab's own
namespaces (198.18.0.0/15). The neighbour table is flushed before every run,
so no tool inherits another's resolved or failed entries. Prints markdown
tables of medians.
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench_sweep import Run, lines, measure, netdiag_rows, nmap_up
from benchlib import StealMeter, lab_segment_problem, machine, print_targets

ROOT = Path(__file__).resolve().parents[1]
NETDIAG = [sys.executable, "-m", "netdiag"]
NETLAB = str(ROOT / "scripts" / "netlab")
NO_RAW = [NETLAB, "--no-raw"]
LAN = "lan0"


def arp_scan_up(stdout: bytes) -> int:
    return len(re.findall(rb"^\d+\.\d+\.\d+\.\d+\t", stdout, re.MULTILINE))


def flush_neighbours() -> None:
    """Forget every neighbour, resolved or failed, and let the table settle."""
    for device in (LAN, "rt0"):
        subprocess.run(["ip", "neigh", "flush", "dev", device], check=False, capture_output=True)
    time.sleep(0.5)


@dataclass
class Tool:
    name: str
    command: list[str]
    count_found: object
    needs: str | None = None  # an executable that must be installed


@dataclass
class Scenario:
    title: str
    target: str
    tools: list[Tool]
    found: int
    runs: int
    peer: str  # the tool the ratio column compares against
    floor: str | None = None  # a network whose kernel floor is measured alongside
    checks: dict = field(default_factory=dict)


def scenarios(runs: int) -> list[Scenario]:
    sweep = [*NETDIAG, "sweep", "-n", "--alive", "-t", "1"]
    lan20, lan16, routed = "198.18.0.0/20", "198.19.0.0/16", "198.18.36.0/22"
    nmap = ["nmap", "-sn", "-n", "-oG", "-"]
    fping = ["fping", "-a", "-q", "-i", "1", "-r", "0", "-t", "1000", "-g"]
    arp_scan = ["arp-scan", "-q", "-x", "-I", LAN, "-r", "1", "-t", "1000", "-B", "100M"]
    return [
        Scenario(
            "/20 on one segment (257 live, 16 drop ping), timeout 1 s, privileged",
            "all 258 (257 and ourselves), <= 1.5 s whole process, <= 0.3x nmap -sn",
            [
                Tool("netdiag sweep (auto: ARP)", [*sweep, lan20], netdiag_rows),
                Tool("nmap -sn (ARP)", [*nmap, lan20], nmap_up, "nmap"),
                Tool("arp-scan -r 1 -t 1000 -B 100M", [*arp_scan, lan20], arp_scan_up, "arp-scan"),
                Tool("fping -i 1 -r 0 -t 1000 (ICMP)", [*fping, lan20], lines, "fping"),
            ],
            found=258,
            runs=runs,
            peer="nmap -sn (ARP)",
            checks={"wall": 1.5, "ratio": 0.3},
        ),
        Scenario(
            "/16 on one segment (101 live), timeout 1 s, privileged",
            "all 102, <= 2.5 s whole process",
            [
                Tool("netdiag sweep (auto: ARP)", [*sweep, lan16], netdiag_rows),
                Tool("arp-scan -r 1 -t 1000 -B 100M", [*arp_scan, lan16], arp_scan_up, "arp-scan"),
            ],
            found=102,
            runs=runs,
            peer="arp-scan -r 1 -t 1000 -B 100M",
            checks={"wall": 2.5},
        ),
        Scenario(
            "/20 on one segment, timeout 1 s, without CAP_NET_RAW (the kernel resolves every address)",
            "all 242 that answer ping, within 20% of the kernel's floor",
            [
                Tool("netdiag sweep (auto: unprivileged ICMP)", [*NO_RAW, *sweep, lan20], netdiag_rows),
                Tool("netdiag sweep -m icmp (raw ICMP)", [*sweep, "-m", "icmp", lan20], netdiag_rows),
                Tool("fping -i 1 -r 0 -t 1000", [*fping, lan20], lines, "fping"),
            ],
            found=242,
            runs=max(1, runs // 2),
            peer="floor",
            floor=lan20,
            checks={"floor": 1.2},
        ),
        Scenario(
            "routed /22 behind the lab router (511 live and the router, 510 dead), timeout 5 s",
            "all 512 found; cost documented",
            [
                Tool("netdiag sweep -t 5", [*NETDIAG, "sweep", "-n", "--alive", "-t", "5", routed], netdiag_rows),
                Tool(
                    "fping -i 1 -r 0 -t 5000",
                    ["fping", "-a", "-q", "-i", "1", "-r", "0", "-t", "5000", "-g", routed],
                    lines,
                    "fping",
                ),
                Tool("nmap -sn", [*nmap, routed], nmap_up, "nmap"),
            ],
            found=512,
            runs=max(1, runs // 2),
            peer="nmap -sn",
        ),
    ]


def measure_floor(network: str) -> float:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "neighbour_floor.py"), network],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(done.stdout.split()[0])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--only", type=int, action="append", help="run only scenario N (1-4); repeatable")
    args = parser.parse_args()
    problem = lab_segment_problem()
    if problem:
        print(f"bench_lan: {problem}; run inside the lab: scripts/netlab python scripts/bench_lan.py", file=sys.stderr)
        return 2
    print("## LAN sweep benchmark (medians; runs interleaved; neighbour table flushed before each)\n")
    print(f"Machine: {machine()}\n")
    steal = StealMeter()
    verdicts = []
    for number, scenario in enumerate(scenarios(args.runs), 1):
        if args.only and number not in args.only:
            continue
        tools = [t for t in scenario.tools if t.needs is None or shutil.which(t.needs)]
        runs: dict[str, list[Run]] = {t.name: [] for t in tools}
        floors: list[float] = []
        for _ in range(scenario.runs):
            if scenario.floor:
                flush_neighbours()
                floors.append(measure_floor(scenario.floor))
            for tool in tools:
                flush_neighbours()
                runs[tool.name].append(measure(tool.command, tool.count_found))
        print(f"### {scenario.title} (target: {scenario.target})\n")
        if floors:
            print(f"Kernel floor (every address sent one datagram as fast as the table allows, plus the "
                  f"timeout): median {statistics.median(floors):.2f} s of {len(floors)} runs.\n")  # fmt: skip
        peer_label = "floor" if scenario.peer == "floor" else scenario.peer
        print(f"| tool | median wall s | min wall s | vs {peer_label} | median CPU s | peak RSS MB | hosts found |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        peer_wall = (
            statistics.median(floors)
            if scenario.peer == "floor"
            else statistics.median(r.wall_s for r in runs.get(scenario.peer, []))
            if runs.get(scenario.peer)
            else None
        )
        for tool in tools:
            walls = [r.wall_s for r in runs[tool.name]]
            wall = statistics.median(walls)
            ratio = f"{wall / peer_wall:.2f}x" if peer_wall else "-"
            found = sorted({r.found for r in runs[tool.name]})
            print(
                f"| {tool.name} | {wall:.2f} | {min(walls):.2f} | {ratio} | "
                f"{statistics.median(r.cpu_s for r in runs[tool.name]):.2f} | "
                f"{statistics.median(r.rss_mb for r in runs[tool.name]):.0f} | {', '.join(f'{f:,}' for f in found)} |"
            )
            if tool.name.startswith("netdiag"):
                verdicts.append(_verdict(scenario, tool.name, wall, peer_wall, found))
        print()
    print_targets(steal, verdicts)
    return 0


def _verdict(scenario: Scenario, name: str, wall: float, peer_wall: float | None, found: list[int]) -> str:
    checks = [f"found {'/'.join(map(str, found))} (want {scenario.found}): "
              f"{'met' if found == [scenario.found] else 'MISSED'}"]  # fmt: skip
    if "wall" in scenario.checks:
        limit = scenario.checks["wall"]
        checks.append(f"{wall:.2f} s (want <= {limit} s): {'met' if wall <= limit else 'MISSED'}")
    if "ratio" in scenario.checks and peer_wall:
        ratio, limit = wall / peer_wall, scenario.checks["ratio"]
        checks.append(f"{ratio:.2f}x {scenario.peer} (want <= {limit}x): {'met' if ratio <= limit else 'MISSED'}")
    if "floor" in scenario.checks and peer_wall:
        ratio, limit = wall / peer_wall, scenario.checks["floor"]
        checks.append(f"{ratio:.2f}x the floor (want <= {limit}x): {'met' if ratio <= limit else 'MISSED'}")
    return f"{scenario.title.split(',')[0]}, {name}: " + "; ".join(checks)


if __name__ == "__main__":
    sys.exit(main())
