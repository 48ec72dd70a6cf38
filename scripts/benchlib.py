"""What both benchmarks share: the machine line and the CPU stolen meanwhile."""

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


def print_targets(steal: StealMeter, verdicts: list[str]) -> None:
    """The end of every benchmark's report: the CPU stolen, then each target's verdict."""
    print(f"{steal.line()}\n")
    print("### Targets\n")
    for line in verdicts:
        print(f"- {line}")


class StealMeter:
    """Share of CPU time the hypervisor took while the benchmark ran (/proc/stat):
    on a shared VM it slows every tool, so each table reports it."""

    def __init__(self) -> None:
        self.start = self._read()

    @staticmethod
    def _read() -> tuple[int, int] | None:
        try:
            fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        except (OSError, ValueError):
            return None
        return sum(fields), fields[7] if len(fields) > 7 else 0

    def percent(self) -> float | None:
        end = self._read()
        if self.start is None or end is None or end[0] == self.start[0]:
            return None
        return 100 * (end[1] - self.start[1]) / (end[0] - self.start[0])

    def line(self) -> str:
        steal = self.percent()
        return "CPU stolen by the hypervisor meanwhile: " + ("unknown" if steal is None else f"{steal:.0f}%")
