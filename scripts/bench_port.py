#!/usr/bin/env python3
"""Port benchmark: netdiag port against nmap -sT -Pn and a loop of nc -z, side by side, in the lab.

Run by `make bench` inside scripts/netlab; every connection stays on loopback
in the lab's own namespace. The servers are this script's own listening
sockets, made anew before each run (a queue of connections nobody accepted
would otherwise carry over to the next tool). Prints a markdown table of
medians over --runs interleaved runs; a loop of nc -z is timed on a sample of
the pairs, once, and scaled to all of them (it waits out each dropped pair).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from benchlib import StealMeter, machine, print_targets, revision

ROOT = Path(__file__).resolve().parents[1]
NETDIAG = [sys.executable, "-m", "netdiag"]
DROPPED = 9  # scripts/lab/rules.nft drops port 9 of 127.1/16
TIMEOUT = 1.0


@dataclass
class Run:
    wall_s: float
    cpu_s: float  # user + system: steadier than wall time on a VM whose CPU is stolen
    rss_mb: float
    found: int  # open pairs the tool reported


def measure(command: list[str], count_found: Callable[[bytes], int]) -> Run:
    """Wall time, the child's own peak RSS (wait4) and the open pairs it reported."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=ROOT)
    assert process.stdout is not None
    stdout = process.stdout.read()
    _, _, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    return Run(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, count_found(stdout))


_OPEN_STATE = re.compile(rb'"state": ?"open"')


def netdiag_open(stdout: bytes) -> int:
    return len(_OPEN_STATE.findall(stdout))


def nmap_open(stdout: bytes) -> int:
    return stdout.count(b"/open/")


def nc_open(stdout: bytes) -> int:
    return stdout.count(b"open\n")


@dataclass
class Scenario:
    title: str
    target_text: str
    hosts: str  # an nmap-style range both tools read: 127.1.0.1-254
    host_count: int
    open_ports: int  # listening ports made for each run
    other_ports: list[int] = field(default_factory=list)  # closed or dropped
    expected_open: int = 0
    wall_limit: Callable[[float], float] = lambda startup: 0.0  # the target, given netdiag's start-up
    strict: bool = False  # the target is "under" the limit, not "within" it
    floor: Callable[[float], float] | None = None  # no tool can end sooner (given netdiag's start-up)
    floor_text: str = ""
    nc_sample: int = 30  # pairs the nc loop is timed on


def scenarios() -> list[Scenario]:
    return [
        Scenario(
            "127.1.0.1-254 x 3 ports (open, closed, dropped), timeout 1 s",
            "<= 1.3 x timeout + start-up",
            "127.1.0.1-254", 254, 1, [free_port(), DROPPED], 254,
            lambda startup: 1.3 * TIMEOUT + startup, nc_sample=30,
            floor=lambda startup: TIMEOUT + startup, floor_text="start-up + the timeout the dropped pairs wait out",
        ),
        Scenario(
            "127.1.0.1-100 x 100 open ports: 10,000 pairs",
            "< 1.5 s",
            "127.1.0.1-100", 100, 100, [], 10_000,
            lambda startup: 1.5, strict=True, nc_sample=400,
        ),
    ]  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening_ports(count: int, taken: list[int]) -> list[int]:
    """Ports free now (none of ``taken``): each run listens on them anew."""
    with ExitStack() as stack:
        ports: list[int] = []
        while len(ports) < count:
            port = stack.enter_context(socket.create_server(("0.0.0.0", 0))).getsockname()[1]
            if port not in taken:
                ports.append(port)
        return ports


def listen(stack: ExitStack, ports: list[int]) -> None:
    """Listen on every lab address at ``ports``; the kernel completes the
    handshakes itself (each queue holds more than a run sends it)."""
    for port in ports:
        stack.enter_context(socket.create_server(("0.0.0.0", port), backlog=4096))


def tools(scenario: Scenario, ports: list[int]) -> list[tuple[str, list[str], Callable[[bytes], int]]]:
    port_list = ",".join(map(str, ports))
    return [
        ("netdiag port", [*NETDIAG, "port", scenario.hosts, "-p", port_list, "--timeout", f"{TIMEOUT:g}", "--json"],
         netdiag_open),
        ("nmap -sT -Pn", ["nmap", "-sT", "-Pn", "-n", "-p", port_list, "-oG", "-", scenario.hosts], nmap_open),
        ("nmap -sT -Pn -T4", ["nmap", "-sT", "-Pn", "-n", "-T4", "-p", port_list, "-oG", "-", scenario.hosts],
         nmap_open),
    ]  # fmt: skip


def nc_loop(scenario: Scenario, ports: list[int]) -> tuple[list[str], int]:
    """A shell loop of nc -z over the first pairs (as a user writes it), and how many pairs that is."""
    first, _, last = scenario.hosts.rpartition(".")[2].partition("-")
    prefix = scenario.hosts.rpartition(".")[0]
    pairs = [(f"{prefix}.{n}", p) for n in range(int(first), int(last) + 1) for p in ports][: scenario.nc_sample]
    script = "".join(f"nc -z -w {TIMEOUT:g} {host} {port} && echo open\n" for host, port in pairs)
    return ["sh", "-c", script + "true"], len(pairs)


def startup_s(runs: int) -> float:
    """netdiag's start-up: the interpreter and the CLI, doing nothing."""
    return statistics.median(measure([*NETDIAG, "--version"], len).wall_s for _ in range(runs))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    if not os.environ.get("NETDIAG_LAB"):
        print("bench_port: run inside the lab: scripts/netlab python scripts/bench_port.py", file=sys.stderr)
        return 2
    missing = [tool for tool in ("nmap", "nc") if not shutil.which(tool)]
    if missing:
        print(f"bench_port: {' and '.join(missing)} not installed (apt-get install nmap netcat-openbsd)",
              file=sys.stderr)  # fmt: skip
        return 2
    if subprocess.run([*NETDIAG, "port", "--help"], capture_output=True, cwd=ROOT, check=False).returncode != 0:
        print("bench_port: this netdiag has no port command; skipped", file=sys.stderr)
        return 0
    print(f"## Port benchmark ({args.runs} runs each, medians; interleaved runs)\n")
    print(f"Machine: {machine()}; netdiag at {revision(ROOT)}\n")
    steal = StealMeter()
    startup = startup_s(args.runs)
    print(f"netdiag start-up (`netdiag --version`): {startup:.3f} s\n")
    verdicts = []
    for scenario in scenarios():
        ports = [*listening_ports(scenario.open_ports, scenario.other_ports), *scenario.other_ports]
        listened = ports[: scenario.open_ports]
        pairs = scenario.host_count * len(ports)
        runs: dict[str, list[Run]] = {}
        for _ in range(args.runs):
            for name, command, count in tools(scenario, ports):
                with ExitStack() as stack:
                    listen(stack, listened)
                    runs.setdefault(name, []).append(measure(command, count))
        with ExitStack() as stack:
            listen(stack, listened)
            command, sampled = nc_loop(scenario, ports)
            sample = measure(command, nc_open)
        print(f"### {scenario.title} (target: {scenario.target_text})\n")
        floor = scenario.floor(startup) if scenario.floor else None
        if floor is not None:
            print(f"Floor ({scenario.floor_text}): {floor:.3f} s\n")
        print("| tool | median wall s | min wall s | max wall s | vs nmap -sT -Pn | median CPU s | peak RSS MB "
              "| open found |")  # fmt: skip
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        nmap_wall = statistics.median(r.wall_s for r in runs["nmap -sT -Pn"])
        for name, found_runs in runs.items():
            walls = [r.wall_s for r in found_runs]
            wall = statistics.median(walls)
            found_text = ", ".join(f"{f:,}" for f in sorted({r.found for r in found_runs}))
            print(f"| {name} | {wall:.3f} | {min(walls):.3f} | {max(walls):.3f} | {wall / nmap_wall:.2f}x "
                  f"| {statistics.median(r.cpu_s for r in found_runs):.3f} "
                  f"| {statistics.median(r.rss_mb for r in found_runs):.0f} | {found_text} |")  # fmt: skip
        scale = pairs / sampled
        nc_wall = sample.wall_s * scale
        print(f"| nc -z loop (1 run of {sampled:,} of the {pairs:,} pairs, scaled) | {nc_wall:.1f} | | | "
              f"{nc_wall / nmap_wall:.1f}x | {sample.cpu_s * scale:.1f} | {sample.rss_mb:.0f} "
              f"| {sample.found:,} of {sampled:,} |\n")  # fmt: skip
        for name, found_runs in runs.items():  # a median hides a tool whose runs fall in two groups
            walls = [r.wall_s for r in found_runs]
            if max(walls) > 2 * min(walls):
                print(f"{name}, every run in order (s): {', '.join(f'{w:.2f}' for w in walls)}\n")
        ours = runs["netdiag port"]
        wall = statistics.median(r.wall_s for r in ours)
        found = sorted({r.found for r in ours})
        limit = scenario.wall_limit(startup)
        checks = [
            f"found {'/'.join(map(str, found))} open (want {scenario.expected_open}): "
            + ("met" if found == [scenario.expected_open] else "MISSED"),
            f"{wall:.3f} s (want {'<' if scenario.strict else '<='} {limit:.3f} s): "
            + ("met" if (wall < limit if scenario.strict else wall <= limit) else "MISSED"),
            f"{wall / nmap_wall:.2f}x nmap -sT -Pn, {nc_wall / wall:.0f}x faster than the nc -z loop",
        ]
        if floor is not None:
            checks.append(f"{wall / floor:.2f}x the floor ({floor:.3f} s)")
        verdicts.append(f"{scenario.title}: " + "; ".join(checks))
    print_targets(steal, verdicts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
