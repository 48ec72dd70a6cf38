"""The facts ``port --tls`` shows from a certificate it did not verify: the
subject, the issuer and the end of validity, read from its DER bytes.

The ssl module decodes a certificate only after verifying it (getpeercert()
is empty with CERT_NONE), so the few fields needed are read here: a small
DER reader over untrusted bytes, which returns None for anything it cannot
read and never raises. The text is the certificate's as data (visible() is
for display).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

SEQUENCE, SET, OID, INTEGER = 0x30, 0x31, 0x06, 0x02
UTC_TIME, GENERALIZED_TIME = 0x17, 0x18
EXPLICIT_VERSION = 0xA0  # [0] in TBSCertificate

# RFC 4514's short names, and the few others certificates commonly carry.
_ATTRIBUTES = {
    "2.5.4.3": "CN",
    "2.5.4.4": "SN",
    "2.5.4.5": "serialNumber",
    "2.5.4.6": "C",
    "2.5.4.7": "L",
    "2.5.4.8": "ST",
    "2.5.4.9": "street",
    "2.5.4.10": "O",
    "2.5.4.11": "OU",
    "2.5.4.12": "title",
    "2.5.4.17": "postalCode",
    "2.5.4.42": "GN",
    "2.5.4.97": "organizationIdentifier",
    "0.9.2342.19200300.100.1.1": "UID",
    "0.9.2342.19200300.100.1.25": "DC",
    "1.2.840.113549.1.9.1": "emailAddress",
}
_STRINGS = {
    0x0C: "utf-8",  # UTF8String
    0x12: "ascii",  # NumericString
    0x13: "ascii",  # PrintableString
    0x14: "latin-1",  # TeletexString, as OpenSSL reads it
    0x16: "ascii",  # IA5String
    0x1A: "ascii",  # VisibleString
    0x1C: "utf-32-be",  # UniversalString
    0x1E: "utf-16-be",  # BMPString
}


class Malformed(ValueError):
    pass


@dataclass(frozen=True)
class CertificateFacts:
    subject: str | None  # "CN=tls.lab.test, O=Lab", in the certificate's order
    issuer: str | None
    not_after: str | None  # ISO 8601, UTC: "2026-05-01T12:00:00Z"


def describe(der: bytes) -> CertificateFacts:
    """Subject, issuer and notAfter of a DER certificate; None for what cannot be read."""
    try:
        fields = _tbs_fields(der)
    except Malformed:
        return CertificateFacts(None, None, None)
    issuer, validity, subject = fields
    return CertificateFacts(_quietly(name_text, der, subject), _quietly(name_text, der, issuer),
                            _quietly(_not_after, der, validity))  # fmt: skip


def _quietly(read: Callable[[bytes, int, int], str], der: bytes, span: tuple[int, int]) -> str | None:
    try:
        return read(der, *span)
    except Malformed:
        return None


def _tlv(data: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """(tag, content start, content end) of the element at ``pos``."""
    if pos + 2 > end:
        raise Malformed("truncated")
    tag, length = data[pos], data[pos + 1]
    if tag & 0x1F == 0x1F:
        raise Malformed("high tag numbers are not used in these fields")
    pos += 2
    if length & 0x80:
        size = length & 0x7F
        if not 0 < size <= 4 or pos + size > end:
            raise Malformed("bad length")
        length = int.from_bytes(data[pos : pos + size], "big")
        pos += size
    if pos + length > end:
        raise Malformed("truncated")
    return tag, pos, pos + length


def _children(data: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    found = []
    while start < end:
        tag, content, after = _tlv(data, start, end)
        found.append((tag, content, after))
        start = after
    return found


def _expect(element: tuple[int, int, int], tag: int) -> tuple[int, int]:
    if element[0] != tag:
        raise Malformed(f"expected tag {tag:#x}, found {element[0]:#x}")
    return element[1], element[2]


def _tbs_fields(der: bytes) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    """The spans of issuer, validity and subject in TBSCertificate."""
    certificate = _expect(_tlv(der, 0, len(der)), SEQUENCE)
    tbs = _expect(_tlv(der, certificate[0], certificate[1]), SEQUENCE)
    fields = _children(der, *tbs)
    if fields and fields[0][0] == EXPLICIT_VERSION:
        fields = fields[1:]
    if len(fields) < 5:
        raise Malformed("too few fields")
    _expect(fields[0], INTEGER)  # serial number
    _expect(fields[1], SEQUENCE)  # signature algorithm
    return _expect(fields[2], SEQUENCE), _expect(fields[3], SEQUENCE), _expect(fields[4], SEQUENCE)


def name_text(der: bytes, start: int, end: int) -> str:
    """A Name as ``C=DE, O=Lab, CN=host`` (RDNs in order; a multi-valued one joined with +)."""
    rdns = []
    for rdn in _children(der, start, end):
        values = []
        for attribute in _children(der, *_expect(rdn, SET)):
            parts = _children(der, *_expect(attribute, SEQUENCE))
            if len(parts) != 2:
                raise Malformed("an attribute is a type and a value")
            oid = oid_text(der[slice(*_expect(parts[0], OID))])
            values.append(f"{_ATTRIBUTES.get(oid, oid)}={_value(der, parts[1])}")
        rdns.append("+".join(values))
    return ", ".join(rdns)


def _value(der: bytes, element: tuple[int, int, int]) -> str:
    tag, start, end = element
    encoding = _STRINGS.get(tag)
    raw = der[start:end]
    if encoding is None:
        return "#" + raw.hex()  # RFC 4514: a value of another type, as its hex
    return raw.decode(encoding, errors="replace")


def oid_text(raw: bytes) -> str:
    if not raw or raw[-1] & 0x80:
        raise Malformed("bad object identifier")
    arcs, value = [], 0
    for byte in raw:
        value = value << 7 | byte & 0x7F
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    first = arcs[0]
    head = [0, first] if first < 40 else [1, first - 40] if first < 80 else [2, first - 80]
    return ".".join(map(str, head + arcs[1:]))


def _not_after(der: bytes, start: int, end: int) -> str:
    times = _children(der, start, end)
    if len(times) != 2:
        raise Malformed("validity is two times")
    tag, begin, finish = times[1]
    return time_text(tag, der[begin:finish])


def time_text(tag: int, raw: bytes) -> str:
    """UTCTime (YYMMDDHHMMSSZ; 50-99 are 19xx) or GeneralizedTime, as ISO 8601."""
    text = raw.decode("ascii", errors="replace")
    if tag == UTC_TIME and len(text) == 13:
        year = int(text[:2]) + (1900 if text[:2] >= "50" else 2000) if text[:2].isdigit() else -1
        rest = text[2:]
    elif tag == GENERALIZED_TIME and len(text) == 15:
        year = int(text[:4]) if text[:4].isdigit() else -1
        rest = text[4:]
    else:
        raise Malformed("not a time this profile allows (RFC 5280 4.1.2.5)")
    if year < 0 or not rest[:10].isascii() or not rest[:10].isdigit() or rest[10] != "Z":
        raise Malformed("bad time")
    month, day, hour, minute, second = (int(rest[i : i + 2]) for i in range(0, 10, 2))
    if not (1 <= month <= 12 and 1 <= day <= 31 and hour < 24 and minute < 60 and second < 61):
        raise Malformed("bad time")
    return f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}Z"
