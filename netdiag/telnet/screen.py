"""What server bytes look like on a person's terminal, and in a transcript.
Pure: bytes in, text out.

Bytes from a server are untrusted. Unless the user asks for --raw-terminal,
escape sequences and other control characters are shown as visible text, and
bytes that are not UTF-8 are shown as ``\\xNN``: nothing a server sends can
move the cursor, retitle the window or crash the decoder.
"""

from __future__ import annotations

import codecs

from netdiag.text import visible

# Controls a line-oriented session needs; every other one is made visible.
_KEPT = {"\n", "\r", "\t", "\b", "\a"}
_NAMES = {"\x1b": "\\e", "\x7f": "\\x7f"}


def _visible(char: str) -> str:
    code = ord(char)
    if char in _NAMES:
        return _NAMES[char]
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}"


_TABLE = {c: _visible(chr(c)) for c in [*range(0x20), 0x7F, *range(0x80, 0xA0)] if chr(c) not in _KEPT}
# Unicode format characters that reorder or hide text (bidi overrides, isolates).
_TABLE.update({c: f"\\u{c:04x}" for c in [*range(0x200B, 0x2010), *range(0x202A, 0x202F), *range(0x2066, 0x206A)]})


class SafeText:
    """Decodes a byte stream incrementally and neutralises control sequences."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="backslashreplace")

    def feed(self, data: bytes) -> str:
        return self._decoder.decode(data).translate(_TABLE)

    def flush(self) -> str:
        return self._decoder.decode(b"", final=True).translate(_TABLE)


def hexdump(data: bytes, direction: str, offset: int = 0) -> str:
    """``> 00000010  68 65 6c 6c 6f 0d 0a ...  |hello..|`` lines, 16 bytes each."""
    lines = []
    for start in range(0, len(data), 16):
        chunk = data[start : start + 16]
        hexes = " ".join(f"{b:02x}" for b in chunk)
        text = "".join(chr(b) if 0x20 <= b < 0x7F else "." for b in chunk)
        lines.append(f"{direction} {offset + start:08x}  {hexes:<47}  |{text}|")
    return "\n".join(lines) + "\n" if lines else ""


def whole_characters(data: bytes | bytearray) -> int:
    """How much of ``data`` ends on a UTF-8 character boundary: all of it but
    an unfinished multi-byte sequence at its end (bytes that are not UTF-8
    at all count as whole: they are shown as escapes anyway)."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte < 0x80:
            return len(data)
        if byte >= 0xC0:  # the lead byte of the last character
            length = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            return len(data) - back if back < length else len(data)
    return len(data)


# Controls that ordinary text has (line ends, tabs, backspace, bell, terminal
# colours): a transcript shows them as escapes. More than one other control
# character in CONTROL_RATIO, or bytes that are not UTF-8: a hex dump instead.
_ORDINARY_CONTROLS = frozenset("\t\n\r\b\a\x1b")
CONTROL_RATIO = 16


def is_text(data: bytes) -> bool:
    """UTF-8 (but for a character cut by the read at either end), with at
    most one control character in CONTROL_RATIO beyond the ordinary ones."""
    start = 0
    while start < min(3, len(data)) and 0x80 <= data[start] < 0xC0:
        start += 1  # the end of a character begun in the previous read
    try:
        text = data[start : whole_characters(data)].decode("utf-8")
    except UnicodeDecodeError:
        return False
    if text.isprintable():
        return True
    others = sum(1 for c in text if not c.isprintable() and c not in _ORDINARY_CONTROLS)
    return others * CONTROL_RATIO <= len(text)


def transcript(data: bytes, prefix: str, offset: int = 0) -> str:
    """A session log's lines for one chunk, each beginning with ``prefix``
    (``+0.123s >``): text as visible text, cut after each LF, each piece with
    its escaped line end (``+0.123s > EHLO lab\\r\\n``); anything else as
    hex dump lines, ``offset`` the first byte's place in its direction."""
    if not is_text(data):
        return hexdump(data, prefix, offset)
    pieces = data.decode("utf-8", "backslashreplace").split("\n")
    lines = [piece + "\n" for piece in pieces[:-1]] + ([pieces[-1]] if pieces[-1] else [])
    return "".join(f"{prefix} {visible(line)}\n" for line in lines)
