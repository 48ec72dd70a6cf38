"""Which words are DNS record types (``MX``, ``txt``, ``TYPE65``): the one
rule the dns command's words are read by. Light on purpose: the command
asks it of every word before it knows whether DNS servers are asked at all,
so only dnspython's own rdatatype module (2 ms) is imported, and only for a
word that could be a type."""

from __future__ import annotations

import re

from netdiag.errors import BadInput

_TYPE_MNEMONIC = re.compile(r"[A-Za-z][A-Za-z0-9-]{0,9}")  # NSEC3PARAM is the longest, NSAP-PTR has a hyphen
_UNASKABLE = {
    "AXFR": "a zone transfer: use dig axfr",
    "IXFR": "a zone transfer: use dig ixfr",
    "TYPE0": "type 0 is reserved",
}


def type_word(word: str) -> str | None:
    """The record type a word names (canonical: ``MX``, ``TYPE123``), or
    None if it is no type. A trailing dot makes any word a name. BadInput for
    a type no question can ask for (AXFR, OPT, TYPE0, TYPE70000)."""
    if not _TYPE_MNEMONIC.fullmatch(word):
        return None  # a dot, too long: a name (and no exception to pay for)
    upper = word.upper()
    if re.fullmatch(r"TYPE[0-9]+", upper) and int(upper[4:]) > 0xFFFF:
        raise BadInput(f"{word}: type numbers go up to 65535")
    import dns.rdatatype  # 2 ms: its own module, without the rest of dnspython

    try:
        value = dns.rdatatype.from_text(upper)
    except dns.rdatatype.UnknownRdatatype:
        return None
    text = dns.rdatatype.to_text(value)
    if text in _UNASKABLE:
        raise BadInput(f"{word}: {_UNASKABLE[text]}")
    if dns.rdatatype.is_metatype(value) and text != "ANY":
        raise BadInput(f"{word}: not a type a question can ask for")
    return text
