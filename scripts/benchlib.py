"""What both benchmarks share: the machine line and the CPU stolen meanwhile."""

from __future__ import annotations

import os
import platform
from pathlib import Path


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
