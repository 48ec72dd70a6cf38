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
queries and one output line per record. Each batch is also run with its first
name alone, by both tools: their fixed cost (start-up, imports, one query).

With ``--before TREE`` (a checkout of an earlier commit, e.g. `git worktree add
/tmp/netdiag-before bd0abde`), the system view's batch too: `netdiag dns NAME
x 1,000` (getaddrinfo through the lab's dnsmasq, as applications resolve) by
this tree and by TREE, interleaved, each run from its own tree with
PYTHONPATH set to it; the target is this tree's median at most TREE's.
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
from benchlib import StealMeter, lab_segment_problem, machine, print_targets, revision

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


LAB_NAMES = [f"h-127-1-{i // 250}-{i % 250 + 1}.lab.test" for i in range(1000)]  # dnsmasq's synth-domain
# A system-view row answered with its own address (the name's last two labels are the address's).
SYSTEM_ANSWER = re.compile(rb"^h-127-1-(\d+)-(\d+)\.lab\.test\s+ok\s.*?\b127\.1\.\1\.\2\b", re.MULTILINE)


def scenarios() -> list[Scenario]:
    found = [
        Scenario("dnsmasq on 127.0.0.1, 1,000 names", "127.0.0.1", LAB_NAMES,
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
    parser.add_argument("--before", type=Path, metavar="TREE",
                        help="an earlier checkout to time the system view's batch against")  # fmt: skip
    parser.add_argument("--ab-runs", type=int, default=15, help="runs of each tree in the system view's A/B")
    parser.add_argument("--only", choices=["batch", "system"], help="run only the -f batches or only the system view")
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
    if args.only == "system" and args.before is None:
        print("bench_dns: the system view's A/B needs --before TREE", file=sys.stderr)
        return 2
    # As an installed netdiag starts: its modules compiled once, not at every start (this
    # environment may say otherwise for its own reasons; a first run below compiles them).
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    runs = args.ab_runs if args.only == "system" else args.runs
    print(f"## DNS benchmark ({runs} runs each, medians; interleaved runs; whole processes)\n")
    print(f"Machine: {machine()}; netdiag at {revision(ROOT)}\n")
    steal = StealMeter()
    verdicts = []
    if args.only != "system":
        verdicts += batches(args)
    if args.before is not None and args.only != "batch":
        verdicts.append(system_view(args.before.resolve(), args.ab_runs))
    print_targets(steal, verdicts)
    return 0


def batches(args: argparse.Namespace) -> list[str]:
    """`netdiag dns -f` against `dig -f`, on each lab server."""
    verdicts = []
    with tempfile.TemporaryDirectory() as tmp:
        for scenario in scenarios():
            batch, first = Path(tmp, "names.txt"), Path(tmp, "first.txt")
            batch.write_text("".join(f"{name} A\n" for name in scenario.names))
            first.write_text(f"{scenario.names[0]} A\n")
            via = args.via if args.via != "auto" else ("cli" if cli_reads_batches(batch, scenario.server) else "driver")
            netdiag_name = "netdiag dns -f" if via == "cli" else "netdiag (API driver)"
            tools = {
                netdiag_name: netdiag_command(batch, scenario.server, via),
                "dig -f": ["dig", "-f", str(batch), f"@{scenario.server}"],
                f"{netdiag_name}, first name alone": netdiag_command(first, scenario.server, via),
                "dig -f, first name alone": ["dig", "-f", str(first), f"@{scenario.server}"],
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
            print("| tool | runs | median wall s | min wall s | vs dig -f (the same names) | median CPU s "
                  "| peak RSS MB | answers |")  # fmt: skip
            print("|---|---:|---:|---:|---:|---:|---:|---:|")
            dig_wall = statistics.median(r.wall_s for r in runs["dig -f"])
            dig_first_wall = statistics.median(r.wall_s for r in runs["dig -f, first name alone"])
            for name, measured in runs.items():
                wall = statistics.median(r.wall_s for r in measured)
                peer_wall = dig_first_wall if name.endswith("first name alone") else dig_wall
                cpu = statistics.median(r.cpu_s for r in measured)
                rss = statistics.median(r.rss_mb for r in measured)
                answers = "/".join(str(n) for n in sorted({r.found for r in measured}))
                print(f"| {name} | {len(measured)} | {wall:.3f} | {min(r.wall_s for r in measured):.3f} "
                      f"| {wall / peer_wall:.2f}x | {cpu:.3f} | {rss:.0f} | {answers} |")  # fmt: skip
            print()
            verdicts.append(verdict(scenario, runs[netdiag_name], dig_wall))
    return verdicts


def tree_env(tree: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(tree)}


def package_of(tree: Path) -> Path:
    """Where `python -m netdiag`, started in ``tree`` with its PYTHONPATH, imports netdiag from."""
    where = subprocess.run([sys.executable, "-c", "import netdiag; print(netdiag.__file__)"], capture_output=True,
                           text=True, check=True, cwd=tree, env=tree_env(tree)).stdout.strip()  # fmt: skip
    return Path(where).resolve().parent


def system_view(before: Path, runs: int) -> str:
    """`netdiag dns NAME x 1,000` (the system view: getaddrinfo through the lab's dnsmasq), this tree
    against ``before``, interleaved; and each with the first name alone, its fixed cost."""
    trees = {f"this tree ({revision(ROOT)})": ROOT, f"before ({revision(before)})": before}
    for tree in trees.values():
        if package_of(tree) != tree / "netdiag":
            raise SystemExit(f"bench_dns: netdiag started in {tree} imports {package_of(tree)}, not its own")
    batches = {"NAME x 1,000": LAB_NAMES, "the first NAME alone": LAB_NAMES[:1]}
    tools = {(batch, label): (tree, names) for batch, names in batches.items() for label, tree in trees.items()}
    count = lambda out: len(SYSTEM_ANSWER.findall(out))  # noqa: E731
    for tree, names in tools.values():  # modules compiled, dnsmasq's answers cached
        measure([*NETDIAG, "dns", *names], count, cwd=tree, env=tree_env(tree))
    measured: dict[tuple[str, str], list[Run]] = {key: [] for key in tools}
    for _ in range(runs):
        for key, (tree, names) in tools.items():
            measured[key].append(measure([*NETDIAG, "dns", *names], count, cwd=tree, env=tree_env(tree)))
    title = "the system view, 1,000 names (getaddrinfo through dnsmasq on 127.0.0.1)"
    now_label, before_label = trees
    print(f"### {title} (target: this tree as fast as before, or faster)\n")
    print("| netdiag dns | tree | runs | median wall s | min wall s | max wall s | vs before | median CPU s "
          "| CPU vs before | peak RSS MB | answers |")  # fmt: skip
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    medians = {
        key: (statistics.median(r.wall_s for r in found_runs), statistics.median(r.cpu_s for r in found_runs))
        for key, found_runs in measured.items()
    }
    for (batch, label), found_runs in measured.items():
        walls = [r.wall_s for r in found_runs]
        (wall, cpu), (base_wall, base_cpu) = medians[batch, label], medians[batch, before_label]
        answers = "/".join(str(n) for n in sorted({r.found for r in found_runs}))
        print(f"| {batch} | {label} | {len(walls)} | {wall:.3f} | {min(walls):.3f} | {max(walls):.3f} "
              f"| {wall / base_wall:.2f}x | {cpu:.3f} | {cpu / base_cpu:.2f}x "
              f"| {statistics.median(r.rss_mb for r in found_runs):.0f} | {answers} |")  # fmt: skip
    print()
    (wall, cpu), (before_wall, before_cpu) = medians["NAME x 1,000", now_label], medians["NAME x 1,000", before_label]
    found = {label: sorted({r.found for r in measured["NAME x 1,000", label]}) for label in trees}
    return (f"{title}: answers {'/'.join(map(str, found[now_label]))} (before {'/'.join(map(str, found[before_label]))}"
            f", want {len(LAB_NAMES)}): {'met' if found[now_label] == [len(LAB_NAMES)] else 'MISSED'}; "
            f"{wall:.3f} s against {before_wall:.3f} s before, {wall / before_wall:.2f}x (want <= 1.00x): "
            f"{'met' if wall <= before_wall else 'MISSED'}; CPU {cpu:.3f} s against {before_cpu:.3f} s, "
            f"{cpu / before_cpu:.2f}x")  # fmt: skip


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
