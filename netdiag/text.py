"""Untrusted text (host names, banners, server bytes, certificate subjects)
made safe to show: control, format (bidi overrides) and unassigned
characters become visible escapes. Pure: no output, no rich."""

from __future__ import annotations

_ESCAPES = {"\t": "\\t", "\n": "\\n", "\r": "\\r", "\x1b": "\\e"}


def visible(text: str) -> str:
    """Make control, format (bidi overrides) and unassigned characters visible."""
    if text.isprintable():
        return text
    return "".join(_visible_char(c) for c in text)


def _visible_char(char: str) -> str:
    if char.isprintable() or char == " ":
        return char
    if char in _ESCAPES:
        return _ESCAPES[char]
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"
