#!/usr/bin/env python3
"""DNS benchmark: `netdiag dns -f FILE @SERVER` against `dig -f FILE @SERVER`,
side by side, whole-process times, in the lab.

Run by `make bench` inside scripts/netlab: every query goes to the lab's own
servers (dnsmasq on 127.0.0.1, Unbound on NETLAB_DNS_RESOLVER, and the
resolver 20 ms away on NETLAB_DNS_FAR, in a lab namespace). 1,000 names of
type A from a file; each server's cache is warmed first, so what is measured
is the client and the round trip. Prints markdown tables of medians.

Until `netdiag dns` reads batch files, netdiag's side is this script's own
driver of the same API (``--drive``): the same process start, imports, parse,
queries and one output line per record.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench_sweep import Run, measure
from benchlib import StealMeter, lab_segment_problem, machine, print_targets

ROOT = Path(__file__).resolve().parents[1]
NETDIAG = [sys.executable, "-m", "netdiag"]
DRIVER = [sys.executable, str(Path(__file__).resolve()), "--drive"]


@dataclass
class Scenario:
    title: str
    server: str
    names: list[str]
    answer: re.Pattern[bytes]  # one match per answered name, in any tool's output
    target: str
    ratio: float | None = None  # netdiag's wall time at most this times dig's
    wall: float | None = None  # netdiag's wall time at most this
    dig_runs: int | None = None  # fewer dig runs where each takes long


def scenarios() -> list[Scenario]:
    found = [
        Scenario("dnsmasq on 127.0.0.1, 1,000 names", "127.0.0.1",
                 [f"h-127-1-{i // 250}-{i % 250 + 1}.lab.test" for i in range(1000)],
                 re.compile(rb"\b127\.1\.\d+\.\d+\b"), "<= 3x dig -f", ratio=3.0),
    ]  # fmt: skip
    n_names = [f"n{i}.auth.test" for i in range(1, 1001)]
    n_answer = re.compile(rb"\b192\.0\.2\.100\b")  # every n name's address
    if os.environ.get("NETLAB_DNS_RESOLVER"):
        found.append(Scenario("Unbound on loopback, 1,000 names", os.environ["NETLAB_DNS_RESOLVER"], n_names,
                              n_answer, "<= 3x dig -f", ratio=3.0))  # fmt: skip
    if os.environ.get("NETLAB_DNS_FAR"):
        found.append(Scenario("a resolver 20 ms away, 1,000 names", os.environ["NETLAB_DNS_FAR"], n_names,
                              n_answer, "<= 1 s, every answer", wall=1.0, dig_runs=1))  # fmt: skip
    return found


def netdiag_command(batch: Path, server: str, via: str) -> list[str]:
    return [*([*NETDIAG, "dns", "-f"] if via == "cli" else DRIVER), str(batch), f"@{server}"]


def cli_reads_batches(batch: Path, server: str) -> bool:
    """Whether `netdiag dns -f FILE @SERVER` is there yet (else: the driver)."""
    result = subprocess.run(netdiag_command(batch, server, "cli"), capture_output=True, check=False, timeout=60)
    return result.returncode == 0 and b"." in result.stdout


def drive(batch: str, servers: list[str]) -> int:
    """`netdiag dns -f FILE @SERVER` through the API, until the CLI has it."""
    from netdiag import dnsclient, records

    defaults = dnsclient.parse_words(servers)
    with open(batch, encoding="utf-8") as f:
        requests = dnsclient.parse_batch(f, defaults)
    options = dnsclient.QueryOptions()
    queries = dnsclient.build_queries(requests, options, default_servers=defaults.servers or (dnsclient.SYSTEM,))
    outcomes = records.in_order(dnsclient.ask(queries, options, timeout=3), queries)
    out = []
    for outcome in outcomes:
        if isinstance(outcome, records.Failure):
            out.append(f"{outcome.question.name}\t{outcome.kind.value}\t{outcome.reason}")
            continue
        for r in outcome.answer or ():
            out.append(f"{r.name}\t{r.ttl}\t{r.rclass}\t{r.type}\t{r.data}")
        if not outcome.answer:
            out.append(f"{outcome.question.name}\t{outcome.rcode}")
    sys.stdout.write("\n".join(out) + "\n")
    return 0 if records.succeeded(outcomes) else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--via", choices=["auto", "cli", "driver"], default="auto")
    parser.add_argument("--drive", nargs="+", metavar="ARG", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.drive:
        return drive(args.drive[0], args.drive[1:])
    problem = lab_segment_problem()
    if problem:
        print(f"bench_dns: {problem}: run scripts/netlab python scripts/bench_dns.py", file=sys.stderr)
        return 2
    if not shutil.which("dig"):
        print("bench_dns: dig is not installed (apt-get install bind9-dnsutils)", file=sys.stderr)
        return 2
    # As an installed netdiag starts: its modules compiled once, not at every start (this
    # environment may say otherwise for its own reasons; a first run below compiles them).
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    print(f"## DNS benchmark ({args.runs} runs each, medians; interleaved runs; whole processes)\n")
    print(f"Machine: {machine()}\n")
    steal = StealMeter()
    verdicts = []
    with tempfile.TemporaryDirectory() as tmp:
        for scenario in scenarios():
            batch = Path(tmp, "names.txt")
            batch.write_text("".join(f"{name} A\n" for name in scenario.names))
            via = args.via if args.via != "auto" else ("cli" if cli_reads_batches(batch, scenario.server) else "driver")
            netdiag_name = "netdiag dns -f" if via == "cli" else "netdiag (API driver)"
            tools = {
                netdiag_name: netdiag_command(batch, scenario.server, via),
                "dig -f": ["dig", "-f", str(batch), f"@{scenario.server}"],
            }
            subprocess.run(tools["dig -f"], capture_output=True, check=False)  # the server's cache, warmed
            runs: dict[str, list[Run]] = {name: [] for name in tools}
            count = lambda out, pattern=scenario.answer: len(pattern.findall(out))  # noqa: E731
            for index in range(args.runs):
                for name, command in tools.items():
                    if name == "dig -f" and scenario.dig_runs is not None and index >= scenario.dig_runs:
                        continue
                    runs[name].append(measure(command, count))
            print(f"### {scenario.title} (target: netdiag {scenario.target})\n")
            print("| tool | runs | median wall s | min wall s | vs dig -f | median CPU s | peak RSS MB | answers |")
            print("|---|---:|---:|---:|---:|---:|---:|---:|")
            dig_wall = statistics.median(r.wall_s for r in runs["dig -f"])
            for name, measured in runs.items():
                wall = statistics.median(r.wall_s for r in measured)
                cpu = statistics.median(r.cpu_s for r in measured)
                rss = statistics.median(r.rss_mb for r in measured)
                answers = "/".join(str(n) for n in sorted({r.found for r in measured}))
                print(f"| {name} | {len(measured)} | {wall:.3f} | {min(r.wall_s for r in measured):.3f} "
                      f"| {wall / dig_wall:.2f}x | {cpu:.3f} | {rss:.0f} | {answers} |")  # fmt: skip
            print()
            verdicts.append(verdict(scenario, runs[netdiag_name], dig_wall))
    print_targets(steal, verdicts)
    return 0


def verdict(scenario: Scenario, measured: list[Run], dig_wall: float) -> str:
    wall = statistics.median(r.wall_s for r in measured)
    found = sorted({r.found for r in measured})
    checks = [f"answers {'/'.join(map(str, found))} (want {len(scenario.names)}): "
              f"{'met' if found == [len(scenario.names)] else 'MISSED'}"]  # fmt: skip
    if scenario.ratio is not None:
        ratio = wall / dig_wall
        checks.append(
            f"{ratio:.2f}x dig -f (want <= {scenario.ratio}x): {'met' if ratio <= scenario.ratio else 'MISSED'}"
        )
    if scenario.wall is not None:
        checks.append(f"{wall:.3f} s (want <= {scenario.wall} s): {'met' if wall <= scenario.wall else 'MISSED'}")
    return f"{scenario.title}: " + "; ".join(checks)


if __name__ == "__main__":
    sys.exit(main())
