"""``netdiag dns`` as a DNS client: questions asked of chosen servers through
dnspython, over UDP (TCP when truncated), TCP, TLS (DoT) or HTTPS (DoH).

Three steps, each usable alone:

- ``parse_words`` / ``parse_batch``: the query syntax of doggo and q,
  ``NAME... [TYPE...] [@SERVER...]``, and ``dig -f`` batch lines. Pure.
- ``build_queries``: every question for every server, servers resolved to
  addresses (a server's name through the system resolver, ``@system`` from
  /etc/resolv.conf).
- ``ask``: every query at once, one deadline for all; yields a
  ``records.Response`` or ``records.Failure`` for each, as they come.

dnspython is imported here only, and only inside the functions that need it:
the CLI imports this module only for this command, so ``service`` and the
system view keep their start-up. UDP queries share one socket per server and
one thread (the caller's): a thread per query would cost more than
dnspython's own parsing, and loopback batches must keep up with ``dig -f``.
TCP, DoT and DoH queries run on threads (``workers.iter_with_deadline``).
"""

from __future__ import annotations

import contextlib
import functools
import heapq
import ipaddress
import os
import queue
import re
import selectors
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast

from netdiag import outcomes
from netdiag.errors import BadInput, CannotRun
from netdiag.records import Failure, FailureKind, Outcome, Query, Question, Record, Response, Server
from netdiag.rrtypes import type_word
from netdiag.text import visible

if TYPE_CHECKING:
    import ssl

    import dns.message
    import dns.rdtypes.ANY.OPT

RESOLV_CONF = "/etc/resolv.conf"
DEFAULT_TYPES = ("A",)
DEFAULT_PORTS = {"udp": 53, "tcp": 53, "tls": 853, "https": 443}
DOH_PATH = "/dns-query"  # RFC 8484's example path, which every public DoH service uses
EDNS_BUFFER = 1232  # DNS flag day 2020: no IP fragmentation on any path
UDP_WINDOW = 200  # queries in flight to one server: under Unbound's and dnsmasq's per-client limits
UDP_TRIES = 3  # as dig: a lost datagram is sent again within the deadline
STREAM_WORKERS = 64
_GRACE_S = 0.05  # for a thread's outcome made right at the deadline to arrive
_FLAG_BITS = (("AA", 0x0400), ("TC", 0x0200), ("RD", 0x0100), ("RA", 0x0080), ("AD", 0x0020), ("CD", 0x0010))
_TC = 0x0200
_QR, _RD, _AD, _CD = 0x8000, 0x0100, 0x0020, 0x0010
_DO = 0x8000  # in the OPT record's TTL
_OPT = 41
_TO_QUESTION = b"\xc0\x0c"  # a compressed name that points to the question's, at offset 12
_DIG_OPTIONS = {
    "short": "--short",
    "tcp": "--tcp",
    "vc": "--tcp",
    "tls": "--tls",
    "https": "--https",
    "dnssec": "--dnssec",
    "norecurse": "--norecurse",
    "norec": "--norecurse",
}


class MissingPackage(CannotRun):
    """An optional package a transport needs is not installed."""


# --- The query syntax (pure) ----------------------------------------------


@dataclass(frozen=True, slots=True)
class ServerSpec:
    """A server as typed after ``@``, not yet resolved to an address."""

    text: str  # as typed, without the @
    scheme: str | None  # "udp", "tcp", "tls", "https"; None: the transport options decide
    host: str  # an address, a name, or "system"
    port: int | None = None  # None: the transport's own
    path: str = DOH_PATH  # DoH only: the URL's path and query
    tls_name: str | None = None  # tls://ADDRESS#NAME: the name the certificate must carry

    @property
    def is_system(self) -> bool:
        return self.host == "system" and self.scheme is None


SYSTEM = ServerSpec("system", None, "system")


@dataclass(frozen=True, slots=True)
class Request:
    """One command line or batch line: its names, types and servers."""

    names: tuple[str, ...]  # absolute ASCII names, in the order given
    types: tuple[str, ...] = ()  # empty: none given
    servers: tuple[ServerSpec, ...] = ()  # empty: none given
    reverse: frozenset[str] = frozenset()  # the names made from addresses: asked PTR when no type is given


def parse_words(words: Sequence[str], reverse: Iterable[str] = (), *, names_required: bool = True) -> Request:
    """``NAME... [TYPE...] [@SERVER...]`` in any order, and ``-x ADDRESS``.

    A word that reads as a record type is a type (``MX``, ``txt``,
    ``TYPE65``), even where it could be a name: end it with a dot to ask for
    the name (``mx.``). ``@`` always starts a server. An IP address is asked
    in reverse, as with ``-x``. ``reverse``: addresses from the CLI's ``-x``.
    BadInput, nothing sent, for anything else."""
    reversed_names = [reverse_name(a) for a in reverse]
    names = list(reversed_names)
    types: list[str] = []
    servers: list[ServerSpec] = []
    pending_x = False
    for word in words:
        if pending_x:
            reversed_names.append(reverse_name(word))
            names.append(reversed_names[-1])
            pending_x = False
        elif word.startswith("@"):
            servers.append(parse_server(word[1:]))
        elif word == "-x":
            pending_x = True
        elif word.startswith("+") and len(word) > 1:
            raise BadInput(_dig_option_hint(word))
        elif word.startswith("-") and len(word) > 1:
            raise BadInput(
                f"{visible(word)}: not an option here (a line of a batch file takes names, types, @servers and -x)"
            )
        elif _is_class_word(word):
            raise BadInput(
                f"{visible(word)} is a class here: give it as --class {visible(word.upper())} (end a name with a dot)"
            )
        elif (rtype := type_word(word)) is not None:
            types.append(rtype)
        elif _is_address(word):
            reversed_names.append(reverse_name(word))
            names.append(reversed_names[-1])
        else:
            names.append(absolute_name(word))
    if pending_x:
        raise BadInput("-x needs an address: -x 192.0.2.1")
    all_names = tuple(dict.fromkeys(names))
    if not all_names and types and names_required:
        raise BadInput(
            f"no name to look up: {' '.join(types)} read as a type (end a name with a dot: {types[0].lower()}.)"
        )
    return Request(all_names, tuple(dict.fromkeys(types)), tuple(dict.fromkeys(servers)), frozenset(reversed_names))


def _is_class_word(word: str) -> bool:
    """IN, CH, HS (and CHAOS, HESIOD, CLASSn): dig reads them as the class."""
    upper = word.upper()
    return upper in ("IN", "CH", "HS", "CHAOS", "HESIOD") or (upper.startswith("CLASS") and upper[5:].isdigit())


def parse_batch(lines: Iterable[str], defaults: Request | None = None) -> list[Request]:
    """``dig -f``: one query a line, in the syntax of ``parse_words``; blank
    lines and those starting with ``#`` or ``;`` are skipped. A line without
    types or servers takes those of ``defaults`` (the command line's).
    BadInput names the line."""
    requests = []
    for number, line in enumerate(lines, 1):
        words = re.split(r"\s[#;]", line, maxsplit=1)[0].split()  # a comment after a space (tls://HOST#NAME has none)
        if not words or words[0].startswith(("#", ";")):
            continue
        try:
            request = parse_words(words)
        except BadInput as exc:
            raise BadInput(f"line {number}: {exc}") from None
        if not request.names:
            raise BadInput(f"line {number}: no name to look up")
        if defaults is not None:
            request = Request(
                request.names, request.types or defaults.types, request.servers or defaults.servers, request.reverse
            )
        requests.append(request)
    return requests


def parse_class(text: str) -> str:
    """A class as ``--class`` takes it (IN, CH, HS, CLASS3), canonical."""
    import dns.rdataclass

    try:
        value = dns.rdataclass.from_text(text.upper())
    except (dns.rdataclass.UnknownRdataclass, ValueError):
        raise BadInput(f"{visible(text)}: not a DNS class (IN, CH, HS or CLASSnnn)") from None
    if dns.rdataclass.is_metaclass(value):
        raise BadInput(f"{text}: not a class a question can ask in")
    return dns.rdataclass.to_text(value)


def reverse_name(address: str) -> str:
    """The PTR name of an address, as ``dig -x`` asks it (a zone index dropped)."""
    try:
        parsed = ipaddress.ip_address(address.partition("%")[0])
    except ValueError:
        raise BadInput(f"{visible(address)}: not an IP address") from None
    return parsed.reverse_pointer + "."


def absolute_name(word: str) -> str:
    """A name as sent: international labels in ASCII (IDNA2008, as getaddrinfo
    and ``dig +idnin``), with the root's dot. BadInput if it cannot be one."""
    relative = word[:-1] if word.endswith(".") and word != "." else word
    if relative.isascii():
        encoded: bytes | None = relative.encode()
    else:
        from netdiag import nss  # ctypes and libidn2: only for international names

        encoded = nss.to_ascii(relative)
    if encoded is None:
        raise BadInput(f"{visible(word)}: not a valid international name (IDNA2008)")
    text = encoded.decode("ascii", "replace")
    if text in (".", ""):
        return "."
    if "\\" in text:  # escapes (\.  \032): dnspython reads them
        import dns.exception
        import dns.name

        try:
            return dns.name.from_text(text).to_text()
        except dns.exception.DNSException as exc:
            raise BadInput(f"{visible(word)}: not a valid name ({exc})") from None
    labels = text.split(".")
    if not all(labels):
        raise BadInput(f"{visible(word)}: an empty label (two dots in a row, or a leading dot)")
    if any(len(label) > 63 for label in labels):
        raise BadInput(f"{visible(word)}: a label longer than 63 characters")
    if len(text) > 253:
        raise BadInput(f"{visible(word)}: longer than 255 bytes on the wire")
    if not text.isprintable() or " " in text:
        raise BadInput(f"{visible(word)}: not a name (control characters or spaces)")
    return text + "."


def parse_server(text: str) -> ServerSpec:
    """What follows ``@``: ``127.0.0.1``, ``::1``, ``[::1]:5353``,
    ``127.0.0.1:5353``, ``system``, a name, ``udp://`` or ``tcp://`` any of
    those, ``tls://HOST[:PORT][#NAME]``, ``https://URL``."""
    if not text:
        raise BadInput("@ needs a server: @127.0.0.1, @::1, @[::1]:5353, @tls://..., @https://..., @system")
    if text.lower() == "system":
        return SYSTEM
    scheme, sep, rest = text.partition("://")
    if not sep:
        host, port = _host_and_port(text, text)
        return ServerSpec(text, None, host, port)
    scheme = scheme.lower()
    if scheme == "https":
        return _https_server(text)
    if scheme not in ("udp", "tcp", "tls"):
        raise BadInput(f"@{visible(text)}: {visible(scheme)}:// is not a transport here (udp, tcp, tls, https)")
    rest, hash_sign, tls_name = rest.partition("#")
    if hash_sign and (scheme != "tls" or not tls_name):
        raise BadInput(f"@{visible(text)}: only tls:// takes #NAME, the name its certificate must carry")
    host, port = _host_and_port(rest, text)
    return ServerSpec(text, scheme, host, port, tls_name=absolute_name(tls_name).rstrip(".") if tls_name else None)


def _https_server(text: str) -> ServerSpec:
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise BadInput(f"@{visible(text)}: not a URL ({exc})") from None
    if not parts.hostname:
        raise BadInput(f"@{visible(text)}: the URL has no host")
    host = parts.hostname
    if not _is_address(host):
        absolute_name(host)
    path = (parts.path or DOH_PATH) + (f"?{parts.query}" if parts.query else "")
    return ServerSpec(text, "https", host, port, path=path)


def _host_and_port(text: str, whole: str) -> tuple[str, int | None]:
    """``[::1]:53``, ``::1``, ``127.0.0.1:53``, ``name:53``, or any without the port."""
    if _is_address(text):
        return text, None  # an IPv6 address without brackets has no port
    bracketed = re.fullmatch(r"\[([^\]]+)\](?::([^:]*))?", text)
    if bracketed:
        host, port_text = bracketed.group(1), bracketed.group(2)
        if not _is_address(host) or ":" not in host:
            raise BadInput(f"@{visible(whole)}: brackets hold an IPv6 address")
    elif text.count(":") > 1:
        raise BadInput(f"@{visible(whole)}: an IPv6 address with a port goes in brackets: @[::1]:5353")
    else:
        host, _, port_text = text.partition(":")
        if ":" in text and not port_text:
            raise BadInput(f"@{visible(whole)}: a port after the colon")
        port_text = port_text or None
        if not host:
            raise BadInput(f"@{visible(whole)}: no host")
        if not _is_address(host):
            absolute_name(host)  # the name must be one, even if the system resolver is lenient
    if port_text is None:
        return host, None
    if not port_text.isdigit() or not 0 < int(port_text) <= 0xFFFF:
        raise BadInput(f"@{visible(whole)}: {visible(port_text)} is not a port (1-65535)")
    return host, int(port_text)


def _is_address(text: str) -> bool:
    if ":" not in text and not text[:1].isdigit():
        return False  # most names: ipaddress's ValueError costs more than this
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _dig_option_hint(word: str) -> str:
    option = _DIG_OPTIONS.get(word[1:].lower())
    if option:
        return f"{visible(word)} is dig's spelling: here it is {option}"
    return f"{visible(word)}: dig's +options are not read here (see netdiag dns --help)"


# --- Servers and queries ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QueryOptions:
    """How every query is asked."""

    transport: str | None = None  # "tcp", "tls" or "https" for servers given without a scheme; None: UDP
    rclass: str = "IN"
    recurse: bool = True  # RD; False: --norecurse
    dnssec: bool = False  # the DO bit (EDNS is then on whatever ``edns`` says): RRSIGs in answers
    edns: bool = True  # EDNS0, advertising EDNS_BUFFER bytes
    checking_disabled: bool = False  # CD: a validating resolver answers even when validation fails
    ca_file: str | None = None  # DoT/DoH: trust this CA (PEM) instead of the system's
    insecure: bool = False  # DoT/DoH: skip certificate verification altogether
    udp_size: int = EDNS_BUFFER

    def __post_init__(self) -> None:
        if self.transport not in (None, *DEFAULT_PORTS):
            raise BadInput(f"{visible(str(self.transport))}: not a transport (udp, tcp, tls, https)")
        if not 512 <= self.udp_size <= 0xFFFF:
            raise BadInput(f"{self.udp_size}: an EDNS buffer size is 512 to 65535 bytes")
        object.__setattr__(self, "rclass", parse_class(self.rclass))  # canonical: "ch" is CH


def system_nameservers(path: str = RESOLV_CONF) -> tuple[str, ...]:
    """The ``nameserver`` addresses of resolv.conf, or 127.0.0.1 as the C
    library uses when it names none (or cannot be read)."""
    found = []
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                fields = line.split("#", 1)[0].split(";", 1)[0].split()
                if len(fields) >= 2 and fields[0] == "nameserver" and _is_address(fields[1]):
                    found.append(fields[1])
    except OSError:
        pass
    return tuple(dict.fromkeys(found)) or ("127.0.0.1",)


def resolve_servers(
    specs: Sequence[ServerSpec], options: QueryOptions | None = None, timeout: float = 3.0
) -> dict[ServerSpec, tuple[Server, ...]]:
    """Each spec's servers: ``@system`` is every nameserver of resolv.conf, a
    name its first address from the system resolver (all names at once, within
    ``timeout``). BadInput for a name without an address; MissingPackage when
    DoH is asked for without httpx."""
    from netdiag import workers

    options = options or QueryOptions()
    transports = {spec.scheme or options.transport or "udp" for spec in specs}
    if "https" in transports:
        require_doh()  # missing packages: said before any name is looked up
    if options.ca_file and transports & {"tls", "https"}:
        _tls_context(options)  # a CA file that cannot be read is bad input: said before anything is sent
    names = [s.host for s in specs if not s.is_system and not _is_address(s.host)]
    addresses: dict[str, str] = {}
    for host, result in workers.iter_with_deadline(_first_address, dict.fromkeys(names), timeout):
        if isinstance(result, workers.TimedOut):
            raise BadInput(f"server {visible(host)}: {result.reason(timeout)}")
        address, why_not = result
        if address is None:
            raise BadInput(f"server {visible(host)}: {why_not}")
        addresses[host] = address
    resolved = {}
    for spec in specs:
        transport = spec.scheme or options.transport or "udp"
        if spec.is_system:
            resolved[spec] = tuple(_server(f"{a} (system)", transport, a, None, spec) for a in system_nameservers())
        else:
            resolved[spec] = (_server(spec.text, transport, addresses.get(spec.host, spec.host), spec.port, spec),)
    return resolved


def _first_address(host: str) -> tuple[str | None, str]:
    """The first address getaddrinfo gives (the order it prefers), or why none."""
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_DGRAM)
    except socket.gaierror as exc:
        return None, f"no address ({exc.strerror})"
    except (UnicodeError, ValueError):
        return None, "not a valid name"
    return (str(infos[0][4][0]), "") if infos else (None, "no address")  # str: (int, bytes) only without IPv6


def _server(label: str, transport: str, address: str, port: int | None, spec: ServerSpec) -> Server:
    port = port or DEFAULT_PORTS[transport]
    name = spec.tls_name or (None if _is_address(spec.host) or spec.is_system else spec.host)
    url = None
    if transport == "https":
        host = spec.host if not _is_address(spec.host) else address
        url_host = f"[{host}]" if ":" in host else host
        url = f"https://{url_host}{'' if port == 443 else f':{port}'}{spec.path}"
    return Server(label, transport, address, port, tls_name=name if transport in ("tls", "https") else None, url=url)


def build_queries(
    requests: Sequence[Request],
    options: QueryOptions | None = None,
    default_types: Sequence[str] = DEFAULT_TYPES,
    default_servers: Sequence[ServerSpec] = (SYSTEM,),
    timeout: float = 3.0,
) -> list[Query]:
    """Every question of every request for each of its servers (or the
    defaults), in order: name, then type, then server; each query once.
    A name from an address is asked PTR unless types were given."""
    options = options or QueryOptions()
    specs = [spec for r in requests for spec in (r.servers or default_servers)]
    servers = resolve_servers(list(dict.fromkeys(specs)), options, timeout)
    queries: dict[Query, None] = {}
    for request in requests:
        request_servers = [s for spec in (request.servers or default_servers) for s in servers[spec]]
        for name in request.names:
            types = request.types or (("PTR",) if name in request.reverse else tuple(default_types))
            for rtype in types:
                question = Question(name, rtype, options.rclass)
                for server in request_servers:
                    queries[Query(question, server)] = None
    return list(queries)


def require_doh() -> None:
    """MissingPackage unless dnspython can speak DNS over HTTPS here."""
    import dns.query

    if not dns.query.have_doh:
        raise MissingPackage(
            "DNS over HTTPS needs the packages of netdiag's doh extra (dnspython[doh]): pip install 'netdiag[doh]'"
        )


# --- Asking ---------------------------------------------------------------


def ask(queries: Sequence[Query], options: QueryOptions | None = None, timeout: float = 3.0) -> Iterator[Outcome]:
    """Ask every query at once; yield each one's Response or Failure as it
    comes, every query exactly once, all within ``timeout`` seconds (the
    deadline of each query is the run's). Never raises for what a server
    does; stopping the iteration early closes every socket."""
    options = options or QueryOptions()
    import dns.rdata  # noqa: F401 - the import cost is paid here, not by the first answer

    if any(q.server.transport == "https" for q in queries):
        require_doh()
    return _Exchange(list(queries), options, timeout).run()


@dataclass(frozen=True, slots=True)
class _Asked:
    """A question as sent: what a reply must repeat byte for byte (but for
    case), and its name in presentation form for records that point to it."""

    section: bytes  # the question section: name, type, class
    name: str


@dataclass(slots=True)
class _Sent:
    index: int
    id: int
    asked: _Asked
    wire: bytes
    first_sent: float
    tries: int = 1


class _Datagrams:
    """Query datagrams for one run: the header and the OPT record are the
    same for every query, as dnspython's make_query writes them (a test holds
    the two byte for byte); each question has only its name encoded, by
    dnspython. A whole Message per query costs 50 µs, a third of a loopback
    exchange, and dns.message 8 ms to import."""

    def __init__(self, options: QueryOptions) -> None:
        import dns.name

        edns = options.edns or options.dnssec
        self._header = struct.pack("!HHHHH", _header_flags(options), 1, 0, 0, 1 if edns else 0)
        # The OPT record: the root's name, its type, the UDP payload as class, the DO bit in the TTL.
        self._edns = (
            b"\x00" + struct.pack("!HHIH", _OPT, options.udp_size, _DO if options.dnssec else 0, 0) if edns else b""
        )
        self._asked: dict[Question, _Asked] = {}
        self._from_text = dns.name.from_text

    def make(self, question: Question, query_id: int) -> tuple[_Asked, bytes]:
        """What a reply must repeat, and the datagram."""
        asked = self._asked.get(question)
        if asked is None:
            name = self._from_text(question.name)
            name_wire: bytes = name.to_wire()  # type: ignore[assignment]  # dnspython: bytes when given no file
            section = name_wire + struct.pack("!HH", _type_value(question.type), _class_value(question.rclass))
            asked = self._asked[question] = _Asked(section, name.to_text())
        return asked, query_id.to_bytes(2, "big") + self._header + asked.section + self._edns


def make_message(question: Question, options: QueryOptions) -> dns.message.Message:
    """The query for TCP, DoT and DoH, whose dnspython calls take a Message."""
    import dns.message

    return dns.message.make_query(
        question.name, question.type, question.rclass, use_edns=0 if options.edns or options.dnssec else False,
        want_dnssec=options.dnssec, payload=options.udp_size, flags=_header_flags(options),
    )  # fmt: skip


def _header_flags(options: QueryOptions) -> int:
    flags = _AD  # as dig: a validating resolver then says whether it validated (RFC 6840)
    flags |= _RD if options.recurse else 0
    return flags | (_CD if options.checking_disabled else 0)


def answers(wire: bytes, asked: bytes) -> bool:
    """Is this datagram a response to the question section ``asked`` (as
    dnspython's is_response, the ID aside)? Names compare without case."""
    flags = int.from_bytes(wire[2:4], "big")
    if not flags & _QR or (flags >> 11) & 0xF:  # not a response, or not to a QUERY
        return False
    questions = int.from_bytes(wire[4:6], "big")
    if not questions:  # without the question: allowed for these rcodes
        return flags & 0xF in (1, 2, 4, 5)  # FORMERR, SERVFAIL, NOTIMP, REFUSED
    return questions == 1 and wire[12 : 12 + len(asked)].lower() == asked.lower()


@dataclass(frozen=True, slots=True)
class Reply:
    """A DNS message as ``read_reply`` reads it."""

    flags: int
    rcode: str
    answer: tuple[Record, ...]
    authority: tuple[Record, ...]
    additional: tuple[Record, ...]  # without the OPT pseudo-record
    extended_errors: tuple[str, ...]
    size: int


def read_reply(wire: bytes, asked: _Asked | None = None) -> Reply:
    """A DNS message read record by record with dnspython's readers (names,
    rdata, EDNS options), each record as sent and in that order, as dig shows
    them: dnspython's Message merges records into RRsets, at twice the cost,
    and a loopback batch spends most of its time here. Names that point to
    the question ``asked`` (as sent, byte for byte) are not read again.
    Raises on anything malformed, as dnspython's from_wire does (trailing
    bytes included)."""
    import dns.edns
    import dns.name
    import dns.rcode
    import dns.rdata
    import dns.wire

    parser = dns.wire.Parser(wire)
    _, flags, question_count, *counts = parser.get_struct("!HHHHHH")
    known_name = None
    if asked is not None and question_count == 1 and wire[12 : 12 + len(asked.section)] == asked.section:
        parser.seek(12 + len(asked.section))
        known_name = asked.name
    else:
        for _ in range(question_count):
            dns.name.from_wire_parser(parser)
            parser.get_struct("!HH")
    rcode = flags & 0xF
    errors: tuple[str, ...] = ()
    sections: list[tuple[Record, ...]] = []
    for count in counts:
        section = []
        for _ in range(count):
            if known_name is not None and wire[parser.current : parser.current + 2] == _TO_QUESTION:
                name = known_name
                parser.seek(parser.current + 2)
            else:
                name = dns.name.from_wire_parser(parser).to_text()
            rtype, rclass, ttl, length = parser.get_struct("!HHIH")
            with parser.restrict_to(length):
                rdata = dns.rdata.from_wire_parser(rclass, rtype, parser)
            if rtype == _OPT:  # EDNS: the rcode's upper bits, and the server's extended errors
                rcode |= (ttl >> 24) << 4
                opt = cast("dns.rdtypes.ANY.OPT.OPT", rdata)  # the OPT type's rdata class
                errors = tuple(o.to_text() for o in opt.options if isinstance(o, dns.edns.EDEOption))
                continue
            section.append(
                Record(name, _type_text(rtype), _class_text(rclass), ttl, rdata.to_text(chunksize=56))
            )  # base64 split as dig splits it
        sections.append(tuple(section))
    if parser.remaining():
        raise ValueError(f"{parser.remaining()} bytes after the message")
    answer, authority, additional = sections  # the header counts three
    return Reply(flags, dns.rcode.to_text(rcode), answer, authority, additional, errors, len(wire))


@functools.cache
def _type_text(value: int) -> str:
    import dns.rdatatype

    return dns.rdatatype.RdataType.to_text(value)  # the module's to_text is typed for RdataType only


@functools.cache
def _class_text(value: int) -> str:
    import dns.rdataclass

    return dns.rdataclass.RdataClass.to_text(value)  # the module's to_text is typed for RdataClass only


@functools.cache
def _type_value(text: str) -> int:
    import dns.rdatatype

    return dns.rdatatype.from_text(text)


@functools.cache
def _class_value(text: str) -> int:
    import dns.rdataclass

    return dns.rdataclass.from_text(text)


@dataclass(slots=True)
class _UdpServer:
    """The UDP queries to one server: a connected socket, those waiting for
    room in the window, and those in flight by ID (in the order sent)."""

    server: Server
    waiting: deque[int] = field(default_factory=deque)
    in_flight: dict[int, _Sent] = field(default_factory=dict)
    sock: socket.socket | None = None


class _Exchange:
    """One run of ``ask``: UDP handled here on one selector, the rest on
    threads that post their outcomes back (waking the selector)."""

    def __init__(self, queries: list[Query], options: QueryOptions, timeout: float) -> None:
        self.queries = queries
        self.options = options
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout
        self.reported = [False] * len(queries)
        self.left = len(queries)
        self.posted: queue.SimpleQueue[tuple[int, Outcome]] = queue.SimpleQueue()
        self.selector = selectors.DefaultSelector()
        self.wake_reader, self.wake_writer = socket.socketpair()
        self.wake_writer.setblocking(False)
        self.udp: dict[Server, _UdpServer] = {}
        self.resends: list[tuple[float, int, _UdpServer, _Sent]] = []  # (when, tiebreak, ...): a heap
        self.resend_interval = timeout / UDP_TRIES
        self.threads_busy = 0  # outcomes still to come from threads
        self._tls: dict[str, ssl.SSLContext] = {}
        self._tls_lock = threading.Lock()
        self._fallback_lock = threading.Lock()
        self._fallbacks_running = 0
        self._fallbacks_waiting: deque[_Sent] = deque()  # beyond STREAM_WORKERS at once: a hostile server truncating
        self._sequence = 0
        self.datagrams = _Datagrams(options)

    # The run, on the caller's thread.

    def run(self) -> Iterator[Outcome]:
        streams = []
        for index, query in enumerate(self.queries):
            if query.server.transport == "udp":
                self.udp.setdefault(query.server, _UdpServer(query.server)).waiting.append(index)
            else:
                streams.append(index)
        self.selector.register(self.wake_reader, selectors.EVENT_READ, None)
        try:
            if streams:
                from netdiag import workers

                self.threads_busy += len(streams)
                if workers.spawn(self._run_streams, streams, name="dns-streams") is None:
                    self._run_streams(streams)  # no thread to be had: in turn, still within the deadline
            while self.left:
                now = time.monotonic()
                if now >= self.deadline:
                    break
                yield from self._send(now)
                if not self.left:
                    break
                wake_at = min(self.resends[0][0], self.deadline) if self.resends else self.deadline
                for key, _ in self.selector.select(max(wake_at - time.monotonic(), 0)):
                    if key.data is None:
                        yield from self._take_posted()
                    else:
                        yield from self._receive(key.data)
                yield from self._resend(time.monotonic())
            yield from self._finish()
        finally:
            self._close()

    def _send(self, now: float) -> Iterator[Outcome]:
        """Fill each server's window."""
        for state in self.udp.values():
            while state.waiting and len(state.in_flight) < UDP_WINDOW:
                sock = state.sock if state.sock is not None else self._open(state)
                if not isinstance(sock, socket.socket):  # why it could not be opened
                    yield from self._fail_server(state, *sock)
                    break
                index = state.waiting.popleft()
                query_id = int.from_bytes(os.urandom(2), "big")  # unpredictable, as an ID must be
                while query_id in state.in_flight:
                    query_id = (query_id + 1) & 0xFFFF
                asked, wire = self.datagrams.make(self.queries[index].question, query_id)
                try:
                    sock.send(wire)
                except OSError as exc:
                    state.waiting.appendleft(index)
                    yield from self._fail_server(state, *_os_failure(exc, "udp"))
                    break
                sent = state.in_flight[query_id] = _Sent(index, query_id, asked, wire, now)
                self._schedule(now + self.resend_interval, state, sent)

    def _open(self, state: _UdpServer) -> socket.socket | tuple[FailureKind, str]:
        """A socket connected to the server (kept in ``state``); why not, if not."""
        server = state.server
        try:
            family, _, _, _, address = socket.getaddrinfo(
                server.address, server.port, type=socket.SOCK_DGRAM, flags=socket.AI_NUMERICHOST
            )[0]
            sock = socket.socket(family, socket.SOCK_DGRAM)
        except (OSError, UnicodeError) as exc:
            return FailureKind.ERROR, f"no UDP socket: {exc}"
        try:
            sock.connect(address)  # the kernel then hands us only the server's datagrams
        except OSError as exc:
            sock.close()
            return _os_failure(exc, "udp")
        state.sock = sock
        self.selector.register(sock, selectors.EVENT_READ, state)
        return sock

    def _receive(self, state: _UdpServer) -> Iterator[Outcome]:
        """Every datagram waiting on the server's socket."""
        assert state.sock is not None
        while True:
            try:
                wire = state.sock.recv(65535, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return
            except OSError as exc:  # an ICMP error for one of our datagrams: the server's port, or the route
                yield from self._fail_server(state, *_os_failure(exc, "udp"))
                return
            sent = state.in_flight.get(int.from_bytes(wire[:2], "big")) if len(wire) >= 12 else None
            if sent is None:
                continue  # an answer to a query already answered (or junk)
            if wire[2] & (_TC >> 8):  # truncated: the rest does not matter, it is asked again over TCP
                del state.in_flight[sent.id]
                self._fall_back(sent)
                continue
            if not answers(wire, sent.asked.section):
                continue  # not for this question: an old answer to a reused ID; keep waiting
            del state.in_flight[sent.id]
            try:
                reply = read_reply(wire, sent.asked)
            except Exception as exc:  # noqa: BLE001 - any error in untrusted bytes means a malformed reply
                malformed = self._failure(sent.index, "udp", FailureKind.MALFORMED, f"malformed reply: {exc}",
                                          sent.first_sent)  # fmt: skip
                yield from self._report(sent.index, malformed)
                continue
            yield from self._report(sent.index, self._response(sent.index, reply, "udp", sent.first_sent))

    def _resend(self, now: float) -> Iterator[Outcome]:
        while self.resends and self.resends[0][0] <= now:
            _, _, state, sent = heapq.heappop(self.resends)
            if state.in_flight.get(sent.id) is not sent or sent.tries >= UDP_TRIES or state.sock is None:
                continue  # answered meanwhile (its ID perhaps taken again), or asked often enough
            try:
                state.sock.send(sent.wire)
            except OSError as exc:
                yield from self._fail_server(state, *_os_failure(exc, "udp"))
                continue
            sent.tries += 1
            self._schedule(now + self.resend_interval, state, sent)

    def _schedule(self, when: float, state: _UdpServer, sent: _Sent) -> None:
        self._sequence += 1
        heapq.heappush(self.resends, (when, self._sequence, state, sent))

    def _fail_server(self, state: _UdpServer, kind: FailureKind, reason: str) -> Iterator[Outcome]:
        """Every query to a server that cannot be asked: refused, unreachable."""
        now = time.monotonic()
        for sent in list(state.in_flight.values()):
            yield from self._report(sent.index, self._failure(sent.index, "udp", kind, reason, sent.first_sent))
        for index in state.waiting:
            yield from self._report(index, self._failure(index, "udp", kind, reason, now))
        state.in_flight.clear()
        state.waiting.clear()

    def _finish(self) -> Iterator[Outcome]:
        """At the deadline: what is unanswered timed out, what was never sent says why."""
        for state in self.udp.values():
            for sent in state.in_flight.values():
                tries = f" (asked {sent.tries} times)" if sent.tries > 1 else ""
                reason = f"no answer within {self.timeout:g}s{tries}"
                yield from self._report(sent.index, self._failure(sent.index, "udp", FailureKind.TIMEOUT, reason,
                                                                  sent.first_sent))  # fmt: skip
            for index in state.waiting:
                reason = f"not asked within {self.timeout:g}s: {UDP_WINDOW} queries to this server were unanswered"
                yield from self._report(index, self._failure(index, "udp", FailureKind.NOT_SENT, reason,
                                                             self.deadline))  # fmt: skip
            state.in_flight.clear()
            state.waiting.clear()
        grace = self.deadline + _GRACE_S
        while self.left and self.threads_busy and (left := grace - time.monotonic()) > 0:
            if self.selector.select(left):
                yield from self._take_posted()
        for index, done in enumerate(self.reported):
            if not done:  # a thread still in its call: it can no longer be waited for
                transport = (
                    "tcp" if self.queries[index].server.transport == "udp" else self.queries[index].server.transport
                )
                reason = f"no answer within {self.timeout:g}s"
                yield from self._report(index, self._failure(index, transport, FailureKind.TIMEOUT, reason,
                                                             self.deadline - self.timeout))  # fmt: skip

    def _report(self, index: int, outcome: Outcome) -> Iterator[Outcome]:
        if not self.reported[index]:
            self.reported[index] = True
            self.left -= 1
            yield outcome

    def _take_posted(self) -> Iterator[Outcome]:
        try:
            while self.wake_reader.recv(4096, socket.MSG_DONTWAIT):
                pass
        except BlockingIOError:
            pass
        while True:
            try:
                index, outcome = self.posted.get_nowait()
            except queue.Empty:
                return
            self.threads_busy -= 1
            yield from self._report(index, outcome)

    def _post(self, index: int, outcome: Outcome) -> None:
        """From a thread: an outcome for the caller's thread."""
        self.posted.put((index, outcome))
        with contextlib.suppress(OSError):  # full (the reader is behind and takes all) or closed (the run is over)
            self.wake_writer.send(b"\0")

    def _close(self) -> None:
        for state in self.udp.values():
            if state.sock is not None:
                state.sock.close()
        self.selector.close()
        self.wake_reader.close()
        self.wake_writer.close()

    # TCP, DoT and DoH, on threads.

    def _run_streams(self, indexes: list[int]) -> None:
        from netdiag import workers

        try:
            left = max(self.deadline - time.monotonic(), 0)
            for index, result in workers.iter_with_deadline(self._exchange, indexes, left, workers=STREAM_WORKERS):
                if isinstance(result, workers.TimedOut):
                    kind = FailureKind.TIMEOUT if result.started else FailureKind.NOT_SENT
                    transport = self.queries[index].server.transport
                    start = self.deadline - self.timeout
                    self._post(index, self._failure(index, transport, kind, result.reason(self.timeout), start))
                else:
                    self._post(index, result)
        except CannotRun as exc:
            for index in indexes:
                self._post(index, self._failure(index, self.queries[index].server.transport, FailureKind.ERROR,
                                                str(exc), time.monotonic()))  # fmt: skip

    def _fall_back(self, sent: _Sent) -> None:
        """A truncated UDP answer: the same question over TCP, on a thread; at
        most STREAM_WORKERS at once (a server truncating every answer gets no
        thread and socket per query), the rest in turn, each under the deadline."""
        self.threads_busy += 1
        with self._fallback_lock:
            if self._fallbacks_running >= STREAM_WORKERS:
                self._fallbacks_waiting.append(sent)
                return
            self._fallbacks_running += 1
        self._start_fallback(sent)

    def _start_fallback(self, sent: _Sent) -> None:
        from netdiag import workers

        workers.call_soon(self._run_fallbacks, sent)

    def _run_fallbacks(self, first: _Sent) -> None:
        """On a thread: this question over TCP, then those waiting, one after another."""
        sent: _Sent | None = first
        while sent is not None:
            self._post(sent.index, self._exchange(sent.index, "tcp", sent.first_sent))
            with self._fallback_lock:
                sent = self._fallbacks_waiting.popleft() if self._fallbacks_waiting else None
                if sent is None:
                    self._fallbacks_running -= 1

    def _exchange(self, index: int, transport: str | None = None, start: float | None = None) -> Outcome:
        """One query over a stream; never raises."""
        import dns.query

        query = self.queries[index]
        server = query.server
        transport = transport or server.transport
        start = start or time.monotonic()
        left = self.deadline - time.monotonic()
        if left <= 0:
            return self._failure(index, transport, FailureKind.NOT_SENT, f"not asked within {self.timeout:g}s", start)
        message = self._message(query.question)
        try:
            if transport == "tcp":
                reply = dns.query.tcp(message, server.address, timeout=left, port=server.port)
            elif transport == "tls":
                name = server.tls_name or server.address
                reply = dns.query.tls(message, server.address, timeout=left, port=server.port,
                                      ssl_context=self._tls_context("tls"), server_hostname=name)  # fmt: skip
            else:
                assert server.url is not None  # _server gives every DoH server its URL
                verify = self._tls_context("https")
                reply = dns.query.https(message, server.url, timeout=left, port=server.port,
                                        bootstrap_address=server.address, verify=verify)  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - every failure becomes an outcome, with its reason
            kind, reason = _stream_failure(exc, transport, server, self.timeout)
            if server.transport == "udp":
                reason = f"truncated over UDP, and over TCP: {reason}"
            return self._failure(index, transport, kind, reason, start)
        try:
            return self._response(index, read_reply(reply.wire or b""), transport, start)
        except Exception as exc:  # noqa: BLE001 - dnspython read it; should this reader not, that is its reason
            return self._failure(index, transport, FailureKind.MALFORMED, f"malformed reply: {exc}", start)

    def _tls_context(self, transport: str) -> ssl.SSLContext:
        """One per transport, shared by its threads: DoT's says ALPN "dot", httpx sets DoH's own."""
        with self._tls_lock:
            if transport not in self._tls:
                self._tls[transport] = _tls_context(self.options, alpn=["dot"] if transport == "tls" else None)
            return self._tls[transport]

    # Messages in and out.

    def _message(self, question: Question) -> dns.message.Message:
        return make_message(question, self.options)

    def _response(self, index: int, reply: Reply, transport: str, start: float) -> Response:
        query = self.queries[index]
        elapsed = (time.monotonic() - start) * 1000
        flags = tuple(name for name, bit in _FLAG_BITS if reply.flags & bit)
        return Response(
            query.question, query.server, transport, reply.rcode, flags, reply.answer, reply.authority,
            reply.additional, elapsed, reply.size, reply.extended_errors,
        )  # fmt: skip

    def _failure(self, index: int, transport: str, kind: FailureKind, reason: str, start: float) -> Failure:
        query = self.queries[index]
        elapsed = max(time.monotonic() - start, 0) * 1000
        return Failure(query.question, query.server, transport, kind, reason, elapsed)


def _tls_context(options: QueryOptions, alpn: list[str] | None = None) -> ssl.SSLContext:
    """Certificates checked against the system's store, or ``ca_file``; none with ``insecure``."""
    import ssl

    if options.insecure:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        try:
            context = ssl.create_default_context(cafile=options.ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise BadInput(f"CA file {visible(options.ca_file or '')}: {exc.strerror or exc}") from None
    if alpn:
        context.set_alpn_protocols(alpn)
    return context


def _os_failure(exc: OSError, transport: str) -> tuple[FailureKind, str]:
    if isinstance(exc, ConnectionRefusedError):
        if transport == "udp":
            return (
                FailureKind.CONNECTION_REFUSED,
                "connection refused: nothing listens on that UDP port (ICMP port unreachable)",
            )
        return FailureKind.CONNECTION_REFUSED, "connection refused: nothing listens on that TCP port"
    if exc.errno is None:
        return FailureKind.ERROR, str(exc)
    outcome, words = outcomes.classify(exc.errno)
    if isinstance(exc, (ConnectionResetError, BrokenPipeError)):
        return FailureKind.CONNECTION_CLOSED, f"the server closed the connection without an answer ({words})"
    if outcome is outcomes.Outcome.UNREACHABLE:
        return FailureKind.UNREACHABLE, words
    return FailureKind.ERROR, words


def _stream_failure(exc: BaseException, transport: str, server: Server, timeout: float) -> tuple[FailureKind, str]:
    """The kind and the words for what a TCP, DoT or DoH exchange raised (it
    may be wrapped: httpx wraps the ssl and socket errors)."""
    import ssl

    import dns.exception

    chain = []
    cause: BaseException | None = exc
    while cause is not None and cause not in chain:
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    for error in chain:
        if isinstance(error, ssl.SSLCertVerificationError):
            name = server.tls_name or server.address
            return FailureKind.TLS_VERIFY, f"TLS certificate not accepted for {name}: {error.verify_message}"
    for error in chain:
        if isinstance(error, (dns.exception.Timeout, TimeoutError)) or type(error).__name__.endswith("Timeout"):
            return FailureKind.TIMEOUT, f"no answer within {timeout:g}s"
        if isinstance(error, ssl.SSLError):
            return FailureKind.TLS, f"TLS handshake failed: {error.reason or error}"
        if isinstance(error, OSError) and error.errno is not None:
            return _os_failure(error, transport)
        if isinstance(error, EOFError):
            return FailureKind.CONNECTION_CLOSED, "the server closed the connection without an answer"
        if isinstance(error, dns.exception.FormError):
            return FailureKind.MALFORMED, f"malformed reply: {error}"
        status = re.search(r"status code (\d+)", str(error)) if isinstance(error, ValueError) else None
        if status:
            return FailureKind.HTTP, f"the server answered HTTP status {status.group(1)}"
    if any(type(error).__name__ == "ConnectError" for error in chain):  # httpx's, its errno dropped on the way
        return FailureKind.CONNECTION_REFUSED, f"could not connect to {server.address} port {server.port}"
    return FailureKind.ERROR, f"{type(exc).__name__}: {exc}".split("\n", 1)[0]
