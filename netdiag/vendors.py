"""MAC address → the vendor it was assigned to, from the IEEE registry.

The registry comes from a maintained source on the system, the first found:
Debian's ieee-data (the IEEE's own CSV files: MA-L, MA-M, MA-S and IAB blocks, so
the most specific assignment wins), else arp-scan's or nmap's copies. Nothing
is read until a MAC is shown; a lookup reads the files once (about 30 ms) and
keeps only the prefixes asked for.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from pathlib import Path

IEEE_DATA = Path("/usr/share/ieee-data")
# (file, hex digits of the assignment), most specific first
IEEE_FILES = (("oui36.csv", 9), ("iab.csv", 9), ("mam.csv", 7), ("oui.csv", 6))
NOT_A_VENDOR = {"private", "ieee registration authority"}  # blocks sub-assigned in MA-M, MA-S and IAB
FALLBACKS = (Path("/usr/share/arp-scan/ieee-oui.txt"), Path("/usr/share/nmap/nmap-mac-prefixes"))
_PREFIX_LINE = re.compile(r"^([0-9A-Fa-f]{6})\s+(.+?)\s*$")


def _hex(mac: str) -> str:
    return mac.replace(":", "").replace("-", "").upper()


def locally_administered(mac: str) -> bool:
    """The U/L bit: such addresses are made up by their owner, not assigned."""
    return bool(int(_hex(mac)[:2], 16) & 0x02)


def lookup(macs: Iterable[str]) -> dict[str, str]:
    """Vendors of the MACs that have one: MAC → organisation name."""
    wanted = {mac: _hex(mac) for mac in macs if len(_hex(mac)) == 12 and not locally_administered(mac)}
    if not wanted:
        return {}
    prefixes = {digits: {h[:digits] for h in wanted.values()} for _, digits in IEEE_FILES}  # by length
    found: dict[str, str] = {}  # assignment (hex prefix) → organisation
    if IEEE_DATA.is_dir():
        for name, digits in IEEE_FILES:
            _read_csv(IEEE_DATA / name, prefixes[digits], found)
    else:
        for path in FALLBACKS:
            if path.is_file():
                _read_prefix_file(path, prefixes[6], found)
                break
    vendors = {}
    for mac, digits_text in wanted.items():
        for _, digits in IEEE_FILES:
            organisation = found.get(digits_text[:digits])
            if organisation and organisation.lower() not in NOT_A_VENDOR:
                vendors[mac] = organisation
                break
    return vendors


def _read_csv(path: Path, wanted: set[str], found: dict[str, str]) -> None:
    try:
        with path.open(encoding="utf-8", errors="replace", newline="") as f:
            for row in csv.reader(f):
                if len(row) >= 3 and row[1] in wanted:
                    found[row[1]] = row[2].strip()
    except OSError:
        return


def _read_prefix_file(path: Path, wanted: set[str], found: dict[str, str]) -> None:
    try:
        with path.open(encoding="utf-8", errors="replace") as f:
            for line in f:
                match = _PREFIX_LINE.match(line)
                if match and match.group(1).upper() in wanted:
                    found[match.group(1).upper()] = match.group(2)
    except OSError:
        return
