"""Result models: frozen data the core returns and the renderer shows.

Models keep raw observations (every RTT, every address) and derive the
statistics, so nothing is computed twice or rounded before display.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import NamedTuple


@dataclass(frozen=True)
class ServiceEntry:
    name: str
    port: int
    protocol: str
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class ServiceAnswer:
    query: str
    entries: tuple[ServiceEntry, ...]
    error: str | None
    malformed: bool = False


class DnsOutcome(Enum):
    OK = "ok"
    NXDOMAIN = "nxdomain"  # the name does not exist
    NO_DATA = "no-data"  # the name exists but has no address records
    NO_PTR = "no-ptr"  # the address has no PTR record
    FAILURE = "failure"  # the resolver could not get an answer
    TIMEOUT = "timeout"  # no answer within --timeout

    @property
    def message(self) -> str:
        return _DNS_MESSAGES[self]


_DNS_MESSAGES = {
    DnsOutcome.OK: "ok",
    DnsOutcome.NXDOMAIN: "no such name (NXDOMAIN)",
    DnsOutcome.NO_DATA: "name exists but has no addresses",
    DnsOutcome.NO_PTR: "no PTR record for this address",
    DnsOutcome.FAILURE: "resolver failure",
    DnsOutcome.TIMEOUT: "timed out",
}


@dataclass(frozen=True)
class DnsAnswer:
    query: str
    kind: str  # "forward" (name → addresses) or "reverse" (address → name)
    outcome: DnsOutcome
    elapsed_ms: float
    canonical: str | None = None
    aliases: tuple[str, ...] = ()
    addresses: tuple[str, ...] = ()
    ptr: str | None = None
    confirmed: bool | None = None  # reverse only: PTR name resolves back here
    source: str | None = None  # "hosts" when /etc/hosts lists it, else "dns"
    detail: str | None = None  # the resolver's own words on failure

    @property
    def ok(self) -> bool:
        return self.outcome is DnsOutcome.OK


class HostState(Enum):
    UP = "up"
    DOWN = "down"  # no answer within the timeout
    UNREACHABLE = "unreachable"  # an ICMP error or a local routing error came back
    UNRESOLVED = "unresolved"  # a hostname target with no address


class HostResult(NamedTuple):
    """One host's result. Immutable like the other models, but a NamedTuple:
    a /16 makes 65,534 of them, and a tuple is built 2-3 times faster than a
    frozen dataclass."""

    address: str
    state: HostState
    rtts_ms: tuple[float | None, ...] = ()  # one per echo request; None: no reply
    name: str | None = None
    reason: str | None = None  # unreachable reason or unresolved cause
    mac: str | None = None  # on-link hosts: from the ARP reply or the neighbour table
    vendor: str | None = None  # the MAC's IEEE registrant
    other_addresses: tuple[str, ...] = ()  # link discovery: the host's global addresses with the same MAC

    @property
    def alive(self) -> bool:
        return self.state is HostState.UP

    @property
    def sent(self) -> int:
        return len(self.rtts_ms)

    @property
    def received(self) -> list[float]:
        return [r for r in self.rtts_ms if r is not None]

    @property
    def loss(self) -> float | None:
        """Fraction of echo requests unanswered (None when none were sent)."""
        sent = len(self.rtts_ms)
        return 1 - len(self.received) / sent if sent else None

    @property
    def rtt_min(self) -> float | None:
        return min(self.received, default=None)

    @property
    def rtt_max(self) -> float | None:
        return max(self.received, default=None)

    @property
    def rtt_avg(self) -> float | None:
        received = self.received
        return sum(received) / len(received) if received else None


@dataclass(frozen=True)
class MethodUse:
    """One probe method of a sweep: which targets it served, and why."""

    label: str  # e.g. "arp (lan0)", "icmp (raw socket)"
    reason: str
    hosts: int


@dataclass(frozen=True)
class SweepSummary:
    total: int
    up: int
    methods: tuple[MethodUse, ...]
    elapsed_s: float
    probes_sent: int
    interrupted: bool = False
    notes: tuple[str, ...] = ()  # what the user should know about the run's cost
    unreachable: int = 0  # an ICMP or routing error came back
    unresolved: int = 0  # hostname targets without an address

    @property
    def down(self) -> int:
        """Hosts that did not answer at all (hosts in flight at an interruption too)."""
        return self.total - self.up - self.unreachable - self.unresolved

    @property
    def method(self) -> str:
        return " + ".join(m.label for m in self.methods) or "none"

    @property
    def method_reason(self) -> str:
        if len(self.methods) == 1:
            return self.methods[0].reason
        return "; ".join(f"{m.label} for {m.hosts:,} hosts: {m.reason}" for m in self.methods)


@dataclass(frozen=True)
class SweepReport:
    results: tuple[HostResult, ...]
    summary: SweepSummary
