"""What DNS servers answered, as data, and the pure questions asked of it.

One small frozen type per kind of thing: a ``Question``, a ``Server``, a
``Query`` (one question to one server), a ``Record``, and for each query
either a ``Response`` or a ``Failure`` (no response, and why). Then pure
functions over them: the CNAME chain in an answer, servers compared on one
question, and the exit decision.

Text from the network (names, rdata, extended error texts) is kept as the
server sent it, in DNS presentation form (what dig prints), and is untrusted:
show it through ``netdiag.text.visible``. No dnspython here: the CLI and the
views import this module without paying for it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum

FLAG_NAMES = ("AA", "TC", "RD", "RA", "AD", "CD")  # the header flags a response shows, in dig's order
NOERROR = "NOERROR"


@dataclass(frozen=True, slots=True)
class Question:
    name: str  # absolute, in ASCII as sent: "www.auth.test.", "xn--bcher-kva.auth.test."
    type: str  # "A", "MX", "TYPE123"
    rclass: str = "IN"


@dataclass(frozen=True, slots=True)
class Server:
    """One server to ask, resolved to an address."""

    label: str  # as the user named it: "127.0.0.1", "[::1]:5353", "tls://127.0.0.3", "127.0.0.53 (system)"
    transport: str  # "udp" (TCP when truncated), "tcp", "tls" (DoT) or "https" (DoH)
    address: str
    port: int
    tls_name: str | None = None  # the name its certificate must carry (and SNI); None: the address
    url: str | None = None  # DoH only


@dataclass(frozen=True, slots=True)
class Query:
    question: Question
    server: Server


@dataclass(frozen=True, slots=True)
class Record:
    """One resource record; ``name`` and ``data`` in presentation form, as dig
    prints them (raw: untrusted, never escaped for a terminal)."""

    name: str  # absolute: "www.auth.test."
    type: str
    rclass: str
    ttl: int
    data: str


@dataclass(frozen=True, slots=True)
class Response:
    """What one server answered to one question."""

    question: Question
    server: Server
    transport: str  # the one that answered: "tcp" for a UDP server's truncated answer
    rcode: str  # "NOERROR", "NXDOMAIN", "SERVFAIL", "REFUSED", "BADVERS", ...
    flags: tuple[str, ...]  # those set, of FLAG_NAMES, in that order
    answer: tuple[Record, ...]
    authority: tuple[Record, ...]
    additional: tuple[Record, ...]  # without the OPT pseudo-record
    elapsed_ms: float  # first send to the reply
    size: int  # the reply's bytes on the wire
    extended_errors: tuple[str, ...] = ()  # RFC 8914 EDE: "6 DNSSEC Bogus: <server's text>"

    @property
    def has_data(self) -> bool:
        """Records of the asked type at the end of the CNAME chain (any, for ANY)."""
        return bool(self.chain.records)

    @property
    def ok(self) -> bool:
        """NOERROR with data: what a script asking this question wants."""
        return self.rcode == NOERROR and self.has_data

    @property
    def chain(self) -> Chain:
        return cname_chain(self.question.name, self.answer, self.question.type)


class FailureKind(Enum):
    TIMEOUT = "timeout"  # asked, no answer by the deadline
    NOT_SENT = "not-sent"  # the deadline came before it could be asked
    CONNECTION_REFUSED = "connection-refused"  # nothing listens there (a TCP RST, an ICMP port unreachable)
    UNREACHABLE = "unreachable"  # no route, network or host unreachable
    CONNECTION_CLOSED = "connection-closed"  # the server hung up without answering
    TLS_VERIFY = "tls-verify"  # the certificate is not trusted, or not for this server
    TLS = "tls"  # the TLS handshake failed otherwise
    HTTP = "http"  # DoH: an HTTP status other than 200
    MALFORMED = "malformed"  # a reply that is not a DNS message, or not for this question
    ERROR = "error"  # anything else on this side (no socket, no memory)


@dataclass(frozen=True, slots=True)
class Failure:
    """A query that got no response, with the reason in one line."""

    question: Question
    server: Server
    transport: str
    kind: FailureKind
    reason: str  # may quote the server or the system: show through visible()
    elapsed_ms: float

    @property
    def ok(self) -> bool:
        return False


Outcome = Response | Failure


@dataclass(frozen=True, slots=True)
class Chain:
    """A name followed through the answer's CNAME records."""

    names: tuple[str, ...]  # the asked name, then each CNAME target, in order
    records: tuple[Record, ...]  # the records of the asked type at the last name
    looped: bool = False  # the CNAMEs came back to a name already on the chain

    @property
    def canonical(self) -> str:
        return self.names[-1]

    @property
    def aliases(self) -> tuple[str, ...]:
        return self.names[:-1]


def cname_chain(name: str, answer: Iterable[Record], rtype: str) -> Chain:
    """Follow ``name`` through the CNAMEs in ``answer`` (in any order, names
    compared case-insensitively, trailing dot or not) to the records of
    ``rtype`` there. A question of type CNAME (or RRSIG) gets those records at
    the name itself. ANY takes every type at the last name but CNAME and RRSIG."""
    records = tuple(answer)
    targets: dict[str, str] = {}
    for record in records:
        if record.type == "CNAME":
            targets.setdefault(name_key(record.name), record.data)
    names = [name]
    seen = {name_key(name)}
    looped = False
    if rtype != "CNAME":
        while (target := targets.get(name_key(names[-1]))) is not None:
            if name_key(target) in seen:
                looped = True
                break
            seen.add(name_key(target))
            names.append(target)
    end = name_key(names[-1])
    wanted = [r for r in records if name_key(r.name) == end and _is_wanted(r.type, rtype)]
    return Chain(tuple(names), tuple(wanted), looped)


def _is_wanted(record_type: str, rtype: str) -> bool:
    if rtype == "ANY":
        return record_type not in ("CNAME", "RRSIG")
    return record_type == rtype


def name_key(name: str) -> str:
    """A name as DNS compares it: ASCII case folded, the root's dot implied."""
    return name.rstrip(".").translate(_ASCII_LOWER) if name != "." else ""


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


@dataclass(frozen=True, slots=True)
class Comparison:
    """One question across the servers asked: who differs from whom.

    The reference is the answer most servers gave (rcode and answer records);
    on a tie, the one of the server listed first. Each tuple names the servers
    that differ from it in that respect; TTLs are compared only between
    servers with the reference's records (a cache counts them down)."""

    question: Question
    outcomes: tuple[Outcome, ...]  # one per server, in the order given
    reference: Server | None  # None: no server answered
    no_answer: tuple[Server, ...]
    rcode_differs: tuple[Server, ...]
    answer_differs: tuple[Server, ...]
    ttl_differs: tuple[Server, ...]

    @property
    def agree(self) -> bool:
        return not (self.no_answer or self.rcode_differs or self.answer_differs or self.ttl_differs)

    def differences(self, server: Server) -> tuple[str, ...]:
        """What sets ``server`` apart: some of "no answer", "rcode", "answer", "ttl"."""
        kinds = (
            ("no answer", self.no_answer),
            ("rcode", self.rcode_differs),
            ("answer", self.answer_differs),
            ("ttl", self.ttl_differs),
        )
        return tuple(label for label, servers in kinds if server in servers)


def compare(outcomes: Iterable[Outcome]) -> tuple[Comparison, ...]:
    """Each question's outcomes compared across servers, questions in the
    order they first appear, servers in the order given."""
    by_question: dict[Question, list[Outcome]] = {}
    for outcome in outcomes:
        by_question.setdefault(outcome.question, []).append(outcome)
    return tuple(compare_servers(question, group) for question, group in by_question.items())


def compare_servers(question: Question, outcomes: Sequence[Outcome]) -> Comparison:
    responses = [o for o in outcomes if isinstance(o, Response)]
    no_answer = tuple(o.server for o in outcomes if isinstance(o, Failure))
    if not responses:
        return Comparison(question, tuple(outcomes), None, no_answer, (), (), ())
    keys = [(r.rcode, answer_set(r.answer)) for r in responses]
    counts = Counter(keys)
    best = max(counts.values())
    reference_key = next(k for k in keys if counts[k] == best)  # the first server among the most common
    reference = responses[keys.index(reference_key)]
    rcode_differs = tuple(r.server for r in responses if r.rcode != reference.rcode)
    answer_differs = tuple(r.server for r, key in zip(responses, keys, strict=True) if key[1] != reference_key[1])
    alike = [r for r, key in zip(responses, keys, strict=True) if key[1] == reference_key[1]]
    ttl_differs = tuple(r.server for r in alike if r in _ttl_outliers(alike))
    return Comparison(
        question, tuple(outcomes), reference.server, no_answer, rcode_differs, answer_differs, ttl_differs
    )


def _ttl_outliers(alike: Sequence[Response]) -> list[Response]:
    """Servers with the same records whose TTLs truly differ. The zone's TTL
    is the authoritative servers' (AA), else the highest seen; a cache
    counting it down (no AA, a lower TTL) is no difference, an authoritative
    server with another TTL, or a cache claiming more than the zone gives, is."""
    authoritative = [r for r in alike if "AA" in r.flags] or list(alike)
    zone: dict[tuple[str, str, str], int] = {}
    for r in authoritative:
        for key, ttl in answer_ttls(r.answer).items():
            zone[key] = max(zone.get(key, ttl), ttl)
    outliers = []
    for r in alike:
        ttls = answer_ttls(r.answer)
        if "AA" in r.flags:
            differs = any(ttls[key] != zone[key] for key in ttls if key in zone)
        else:
            differs = any(ttls[key] > zone[key] for key in ttls if key in zone)
        if differs:
            outliers.append(r)
    return outliers


def answer_set(records: Iterable[Record]) -> frozenset[tuple[str, str, str, str]]:
    """The records as a set, without their TTLs: what two servers must share to agree."""
    return frozenset((name_key(r.name), r.type, r.rclass, data_key(r)) for r in records)


_NAME_DATA = frozenset({"CNAME", "DNAME", "NS", "PTR"})  # the data is a name
_NAME_LAST = frozenset({"MX", "SRV", "KX", "AFSDB", "RT"})  # the data ends with a name


def data_key(record: Record) -> str:
    """A record's data as DNS compares it: names without case (``WEB.example.``
    is ``web.example.``), everything else (TXT above all) exactly."""
    if record.type in _NAME_DATA:
        return name_key(record.data)
    if record.type in _NAME_LAST:
        head, _, last = record.data.rpartition(" ")
        return f"{head} {name_key(last)}"
    return record.data


def answer_ttls(records: Iterable[Record]) -> dict[tuple[str, str, str], int]:
    """Each RRset's TTL (the least, should a server send them unequal)."""
    ttls: dict[tuple[str, str, str], int] = {}
    for r in records:
        key = (name_key(r.name), r.type, r.rclass)
        ttls[key] = min(ttls.get(key, r.ttl), r.ttl)
    return ttls


def in_order(outcomes: Iterable[Outcome], queries: Sequence[Query]) -> list[Outcome]:
    """Outcomes (which come as they are answered) in the order of their queries."""
    order = {query: index for index, query in enumerate(queries)}
    return sorted(outcomes, key=lambda o: order[Query(o.question, o.server)])


def succeeded(outcomes: Iterable[Outcome]) -> bool:
    """The exit decision: every question got NOERROR with data from every
    server it was asked of. Nothing asked is no success either."""
    seen = False
    for outcome in outcomes:
        if not outcome.ok:
            return False
        seen = True
    return seen


def character_strings(data: str) -> tuple[bytes, ...]:
    """The bytes of each <character-string> in presentation-form rdata (TXT,
    SPF): quoted or not, ``\\DDD`` and ``\\X`` escapes undone. Byte-exact:
    a TXT record can carry anything, in any encoding. ValueError if ``data``
    is not in that form."""
    strings: list[bytes] = []
    i, end = 0, len(data)
    while i < end:
        if data[i] == " ":
            i += 1
            continue
        quoted = data[i] == '"'
        i += quoted
        out = bytearray()
        while i < end and (data[i] != '"' if quoted else data[i] != " "):
            char = data[i]
            if char == "\\":
                digits = data[i + 1 : i + 4]
                if len(digits) == 3 and all(d in "0123456789" for d in digits):
                    if int(digits) > 255:
                        raise ValueError(f"escape \\{digits} is not a byte")
                    out.append(int(digits))
                    i += 4
                    continue
                if i + 1 >= end:
                    raise ValueError("a backslash at the end")
                char = data[i + 1]
                i += 1
            out += char.encode()
            i += 1
        if quoted:
            if i >= end:
                raise ValueError("a quote left open")
            i += 1
        strings.append(bytes(out))
    return tuple(strings)
