"""Sweep options, and which probe method serves which targets, and why."""

from __future__ import annotations

import ipaddress
import math
import subprocess
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from netdiag import probes
from netdiag.errors import BadInput, ProbePermissionError
from netdiag.ports import check_numbers

if TYPE_CHECKING:
    from netdiag import links

METHODS = ("auto", "arp", "icmp", "ping", "tcp")
KERNEL_METHODS = ("icmp", "ping", "tcp")  # the kernel resolves on-link neighbours for these


@dataclass(frozen=True)
class SweepOptions:
    method: str = "auto"
    timeout: float = 1.0  # seconds each probe waits for its answer
    retries: int = 0  # further probes for a host that has not answered
    count: int = 1  # probes per host
    interval: float = 0.25  # seconds between probes to one host
    rate: float | None = None  # probes per second, at most
    workers: int | None = None  # ping processes / TCP connections in flight
    names: bool = True
    name_timeout: float = 2.0
    ports: tuple[int, ...] = (80, 443)
    source: str | None = None  # -S
    interface: str | None = None  # -I
    ip_version: int | None = None  # -4 / -6: host names resolve to this family only
    vendors: bool = True  # look MAC vendors up (only where a MAC is shown)
    probe_config: probes.ProbeConfig = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "probe_config", probes.ProbeConfig(self.source, self.interface))

    def validate(self) -> None:
        if self.method not in METHODS:
            raise BadInput(f"--method must be one of {', '.join(METHODS)}, not {self.method!r}")
        if not 0 < self.timeout <= 60:
            raise BadInput(f"--timeout must be more than 0 and at most 60 seconds, not {self.timeout:g}")
        if not 0 <= self.retries <= 10:
            raise BadInput(f"--retries must be between 0 and 10, not {self.retries}")
        if not 1 <= self.count <= 1000:
            raise BadInput(f"--count must be between 1 and 1000, not {self.count}")
        if not 0 <= self.interval <= 60:
            raise BadInput(f"--interval must be between 0 and 60 seconds, not {self.interval:g}")
        if self.rate is not None and not (math.isfinite(self.rate) and 0.01 <= self.rate <= 10_000_000):
            raise BadInput(f"--rate must be between 0.01 and 10,000,000 probes per second, not {self.rate:g}")
        if self.workers is not None and not 1 <= self.workers <= 10_000:
            raise BadInput(f"--workers must be between 1 and 10000, not {self.workers}")
        if not self.ports:
            raise BadInput("--port: no ports given")
        check_numbers(self.ports)
        if self.method == "tcp" and self.workers is not None and self.workers < len(self.ports):
            raise BadInput(f"--workers {self.workers} is fewer than the {len(self.ports)} ports each host is tried on")
        if self.source is not None:
            try:
                ipaddress.ip_address(self.source)
            except ValueError:
                raise BadInput(f"--source {self.source!r} is not an IP address") from None
        if self.interface is not None and not (0 < len(self.interface) < 16 and self.interface.isprintable()):
            raise BadInput(f"--interface {self.interface!r} is not an interface name")


@dataclass(frozen=True)
class Plan:
    """A probe method for some of a sweep's targets, and why."""

    method: str  # arp, icmp, ping or tcp
    label: str  # e.g. "icmp (raw socket)", "arp (lan0)"
    reason: str
    link: links.Link | None = None  # arp: the segment; kernel methods: set when the targets are on-link
    kind: str | None = None  # icmp: the socket kind, raw or dgram

    def on_link(self, link: links.Link) -> Plan:
        """The same method for targets on a directly connected segment."""
        return Plan(self.method, f"{self.label} on {link.label}", self.reason, link, self.kind)


def plan_kernel_method(requested: str, versions: set[int], ports: tuple[int, ...] = (80, 443)) -> Plan:
    """Pick the probe method whose neighbours the kernel resolves. An
    explicit method that cannot work raises; ``auto`` falls back
    icmp → ping → tcp and says why."""
    versions = versions or {4}
    if requested in ("icmp", "auto"):
        try:
            kinds = {probes.permitted_kind(v) for v in versions}
        except ProbePermissionError:
            if requested == "icmp":
                raise
        else:
            kind = "raw" if "raw" in kinds else "dgram"
            reason = (
                "this process has CAP_NET_RAW"
                if kind == "raw"
                else "unprivileged ICMP sockets are allowed (net.ipv4.ping_group_range)"
            )
            return Plan("icmp", f"icmp ({kind} socket)", reason, kind=kind)
    if requested == "ping":
        if probes.ping_command() is None:
            raise BadInput("--method ping: no ping command is installed")
        if not _system_ping_works(versions):
            raise ProbePermissionError(f"--method ping: the system ping cannot run here; {probes.GRANT_HINT}")
        return Plan("ping", "ping (system command)", "asked for")
    if requested == "auto" and _system_ping_works(versions):
        return Plan("ping", "ping (system command)", "no ICMP socket is permitted, but the system ping works")
    ports_text = ",".join(map(str, ports))
    if requested == "tcp":
        return Plan("tcp", f"tcp (connect to {ports_text})", "asked for")
    return Plan("tcp", f"tcp (connect to {ports_text})", "no ICMP socket is permitted and the system ping fails")


def _system_ping_works(versions: set[int]) -> bool:
    """Ask ping to reach loopback once: it fails at once when it has no socket."""
    binary = probes.ping_command()
    if binary is None:
        return False
    for version in versions:
        loopback = "127.0.0.1" if version == 4 else "::1"
        try:
            result = subprocess.run(
                [binary, f"-{version}", "-n", "-c", "1", "-W", "1", "--", loopback],
                capture_output=True,
                stdin=subprocess.DEVNULL,
                check=False,
            )
        except OSError:  # e.g. EPERM: file capabilities beyond our bounding set
            return False
        if result.returncode != 0:
            return False
    return True


def arp_plan(link: links.Link, requested: str) -> Plan:
    reason = "asked for" if requested == "arp" else "on-link IPv4 and this process may open packet sockets"
    return Plan("arp", f"arp ({link.label})", reason, link)


def on_link_note(plan: Plan, requested: str) -> str | None:
    """What to tell the user when the kernel resolves on-link targets."""
    if plan.link is None or plan.method == "arp":
        return None
    from netdiag import links

    version = plan.link.source.version
    cost = (
        f"the kernel resolves each address with {'ARP' if version == 4 else 'neighbour discovery'}, "
        f"{links.resolution_time(plan.link.label, version):g}s per dead address and at most about "
        f"{links.neighbour_capacity(version):,} at a time"
    )
    if version == 6:
        return f"on-link IPv6 ({plan.link.label}): {cost}"
    if requested == "auto":
        return f"on-link ({plan.link.label}) without CAP_NET_RAW: {cost}; grant CAP_NET_RAW for an ARP sweep"
    return f"on-link ({plan.link.label}) with --method {requested}: {cost}; --method arp is much faster here"
