"""What the benchmarks share: the machine line, the tree measured, and the machine's state meanwhile
(CPU stolen by the hypervisor, load average, CPU used by processes other than the benchmark's own)."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

LAN_MAC = "02:1a:b0:00:00:01"


def lab_segment_problem() -> str | None:
    """Why this is not the lab's LAN (None when it is): the LAN benchmarks
    send to 198.18.0.0/15, which must be the lab's own segment, never a real
    network, whatever the environment says."""
    if not os.environ.get("NETDIAG_LAB"):
        return "not inside scripts/netlab"
    if subprocess.run(["ip", "route", "show", "default"], capture_output=True, text=True, check=False).stdout.strip():
        return "this namespace has a default route: not the lab"
    link = subprocess.run(["ip", "-br", "link", "show", "lan0"], capture_output=True, text=True, check=False)
    if LAN_MAC not in link.stdout:
        return "the lab's segment lan0 is not here"
    return None


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs, {model}, Linux {platform.release()}, Python {platform.python_version()}"


def revision(tree: Path) -> str:
    """The commit a tree is at, with ``-dirty`` when the package's files differ from it (a table says
    what it measured; the benchmark scripts themselves may be newer)."""
    head = subprocess.run(["git", "-C", str(tree), "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                          check=False).stdout.strip() or "unknown"  # fmt: skip
    dirty = subprocess.run(["git", "-C", str(tree), "status", "--porcelain", "--", "netdiag", "pyproject.toml"],
                           capture_output=True, text=True, check=False).stdout.strip()  # fmt: skip
    return head + ("-dirty" if dirty else "")


def print_targets(steal: StealMeter, verdicts: list[str]) -> None:
    """The end of every benchmark's report: the CPU stolen, then each target's verdict."""
    print(f"{steal.line()}\n")
    print("### Targets\n")
    for line in verdicts:
        print(f"- {line}")


class StealMeter:
    """The machine's state while a benchmark ran, from /proc: the share of CPU time the
    hypervisor took (on a shared VM it slows every tool), the load average at the start and
    the end, and the CPU time used by processes other than this one and its children (other
    users of the machine, and the lab's own servers): each table reports them."""

    def __init__(self) -> None:
        self.start = self._read()
        self.load_start = self._load()
        self.own_start = self._own_cpu_s()

    @staticmethod
    def _read() -> tuple[int, int, int] | None:
        """Total, stolen and busy (neither idle nor iowait nor stolen) jiffies of all CPUs."""
        try:
            fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        except (OSError, ValueError):
            return None
        steal = fields[7] if len(fields) > 7 else 0
        total = sum(fields[:8])  # guest time is counted in user time already
        return total, steal, total - fields[3] - fields[4] - steal

    @staticmethod
    def _load() -> float | None:
        try:
            return float(Path("/proc/loadavg").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    @staticmethod
    def _own_cpu_s() -> float:
        times = os.times()
        return times.user + times.system + times.children_user + times.children_system

    def percent(self) -> float | None:
        end = self._read()
        if self.start is None or end is None or end[0] == self.start[0]:
            return None
        return 100 * (end[1] - self.start[1]) / (end[0] - self.start[0])

    def others_percent(self) -> float | None:
        """CPU used meanwhile by everyone but this process and the children it waited for,
        in percent of one CPU (200% is both CPUs of this machine, busy all along)."""
        end = self._read()
        if self.start is None or end is None or end[0] == self.start[0]:
            return None
        hz = os.sysconf("SC_CLK_TCK")
        cpus = os.cpu_count() or 1
        elapsed_s = (end[0] - self.start[0]) / hz / cpus
        others_s = (end[2] - self.start[2]) / hz - (self._own_cpu_s() - self.own_start)
        return 100 * max(others_s, 0.0) / elapsed_s

    def line(self) -> str:
        steal, others, load_end = self.percent(), self.others_percent(), self._load()
        text = "CPU stolen by the hypervisor meanwhile: " + ("unknown" if steal is None else f"{steal:.0f}%")
        if self.load_start is not None and load_end is not None:
            text += f"; load average {self.load_start:.2f} at the start, {load_end:.2f} at the end"
        if others is not None:
            text += f"; other processes used {others:.0f}% of one CPU meanwhile (the lab's servers included)"
        return text
