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
class LookupAnswer:
    """One query to the system resolver (what applications see). A forward
    and a reverse lookup answer different things: each is its own type."""

    query: str
    outcome: DnsOutcome
    elapsed_ms: float
    detail: str | None = None  # the resolver's own words on failure

    @property
    def ok(self) -> bool:
        return self.outcome is DnsOutcome.OK

    @property
    def reason(self) -> str:
        """Why it failed, in words (the resolver's own added to a failure)."""
        detail = f": {self.detail}" if self.outcome is DnsOutcome.FAILURE and self.detail else ""
        return self.outcome.message + detail


@dataclass(frozen=True)
class ForwardAnswer(LookupAnswer):
    """A name's addresses, its canonical name and the aliases on the way."""

    canonical: str | None = None
    aliases: tuple[str, ...] = ()
    addresses: tuple[str, ...] = ()
    source: str | None = None  # "hosts" when /etc/hosts lists it, else "dns"


@dataclass(frozen=True)
class ReverseAnswer(LookupAnswer):
    """An address's PTR name, and whether that name resolves back to it (FCrDNS)."""

    ptr: str | None = None
    aliases: tuple[str, ...] = ()
    confirmed: bool | None = None
    source: str | None = None


DnsAnswer = ForwardAnswer | ReverseAnswer


class HostState(Enum):
    UP = "up"
    DOWN = "down"  # no answer within the timeout
    UNREACHABLE = "unreachable"  # an ICMP error or a local routing error came back
    UNRESOLVED = "unresolved"  # a hostname target with no address


class RttStats(NamedTuple):
    """A host's echo statistics, computed in one pass over its RTTs: every
    view (table, columns, JSON, watch) reads these, none computes its own."""

    sent: int
    received: int
    loss: float | None  # fraction unanswered; None when nothing was sent
    min: float | None
    avg: float | None
    max: float | None

    @classmethod
    def of(cls, rtts_ms: tuple[float | None, ...]) -> RttStats:
        answered = [r for r in rtts_ms if r is not None]
        sent, received = len(rtts_ms), len(answered)
        if not answered:
            return cls(sent, 0, 1.0 if sent else None, None, None, None)
        low, high = min(answered), max(answered)
        average = min(max(sum(answered) / received, low), high)  # float sums may stray past the bounds by an ulp
        return cls(sent, received, 1 - received / sent, low, average, high)


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
    target: str | None = None  # what the user typed that this host came from (a name, a network, an address)

    @property
    def alive(self) -> bool:
        """The one definition of alive: it answered (an ICMP error is not an answer)."""
        return self.state is HostState.UP

    @property
    def stats(self) -> RttStats:
        return RttStats.of(self.rtts_ms)


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
