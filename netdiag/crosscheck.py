"""The system view checked against DNS (``dns --compare``): what each DNS
server says of the names and addresses the system resolver answered, and a
verdict per query: the same, a hosts-file override, an answer from an NSS
source DNS does not know (mDNS, myhostname, LDAP), or DNS knowing what the
system did not. Asking is dnsclient's; the verdict is pure."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from netdiag.errors import BadInput
from netdiag.models import DnsAnswer, ForwardAnswer
from netdiag.records import Outcome, Response, name_key

if TYPE_CHECKING:
    from netdiag.dnsclient import Request, ServerSpec


@dataclass(frozen=True)
class Verdict:
    agrees: bool
    words: str  # "agrees", "hosts file overrides DNS", ...


def ask_dns(answers: Sequence[DnsAnswer], servers: Sequence[ServerSpec], timeout: float) -> dict[str, list[Outcome]]:
    """Each query's outcomes: A and AAAA of a name, PTR of an address, at
    every server (none given: @system). A query that is no DNS name (the
    hosts file takes names DNS cannot carry) is not asked."""
    from netdiag import dnsclient, records

    requests: list[Request] = []
    keys: dict[str, list[str]] = {}  # a name as DNS compares it: every query spelled so
    for answer in answers:
        try:
            if isinstance(answer, ForwardAnswer):
                name = dnsclient.absolute_name(answer.query)
                request = dnsclient.Request((name,), ("A", "AAAA"), tuple(servers))
            else:
                name = dnsclient.reverse_name(answer.query)
                request = dnsclient.Request((name,), ("PTR",), tuple(servers), frozenset([name]))
        except BadInput:
            continue
        keys.setdefault(name_key(name), []).append(answer.query)
        requests.append(request)
    if not requests:
        return {answer.query: [] for answer in answers}
    options = dnsclient.QueryOptions()
    queries = dnsclient.build_queries(requests, options, default_servers=(dnsclient.SYSTEM,), timeout=timeout)
    said: dict[str, list[Outcome]] = {answer.query: [] for answer in answers}
    for outcome in records.in_order(dnsclient.ask(queries, options, timeout), queries):
        for query in dict.fromkeys(keys[name_key(outcome.question.name)]):
            said[query].append(outcome)
    return said


NOT_IN_DNS = ("NOERROR", "NXDOMAIN")  # rcodes that say what DNS holds; others (SERVFAIL, REFUSED) say nothing of it


def dns_data(outcomes: Sequence[Outcome], server_label: str) -> set[str] | None:
    """What one server gave for the query (addresses, or PTR names without
    their final dot), or None when it did not answer."""
    found: set[str] = set()
    answered = False
    for outcome in outcomes:
        if outcome.server.label != server_label:
            continue
        if not isinstance(outcome, Response):
            return None
        answered = True
        found.update(name_key(r.data) if r.type == "PTR" else r.data for r in outcome.chain.records)
    return found if answered else None


def failed_rcode(outcomes: Sequence[Outcome], server_label: str) -> str | None:
    """The rcode of a server that answered without saying what DNS holds (SERVFAIL, REFUSED, ...)."""
    for outcome in outcomes:
        if outcome.server.label == server_label and isinstance(outcome, Response) and outcome.rcode not in NOT_IN_DNS:
            return outcome.rcode
    return None


def verdict(answer: DnsAnswer, outcomes: Sequence[Outcome]) -> Verdict:
    """The system's answer against every server's (pure)."""
    labels = list(dict.fromkeys(o.server.label for o in outcomes))
    if not labels:
        return Verdict(False, "not a name DNS can carry: not asked")
    if isinstance(answer, ForwardAnswer):
        system = {a.split("%")[0] for a in answer.addresses}
    else:
        system = {name_key(answer.ptr)} if answer.ptr else set()
    worst: Verdict | None = None
    for label in labels:
        dns = dns_data(outcomes, label)
        if dns is None:
            worst = worst or Verdict(False, f"{label} did not answer")
            continue
        rcode = failed_rcode(outcomes, label)
        if rcode is not None:
            worst = worst or Verdict(False, f"{label} answered {rcode}")
            continue
        if dns == system:
            continue
        if not system:
            return Verdict(False, "DNS knows it; the system resolver did not answer it")
        source = answer.source
        if source == "hosts":
            return Verdict(False, "the hosts file overrides DNS" if dns else "only in the hosts file, not in DNS")
        return Verdict(False, "an NSS source other than DNS answered" if not dns else "DNS answers differently")
    return worst or Verdict(True, "agrees")
