"""What server bytes look like on a person's terminal. Pure: bytes in, text out.

Bytes from a server are untrusted. Unless the user asks for --raw-terminal,
escape sequences and other control characters are shown as visible text, and
bytes that are not UTF-8 are shown as ``\\xNN``: nothing a server sends can
move the cursor, retitle the window or crash the decoder.
"""

from __future__ import annotations

import codecs

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
