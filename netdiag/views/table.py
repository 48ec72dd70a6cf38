"""What every view's tables are made of: plain aligned columns (no rich
import: pipes and long tables) and, lazily, rich cells that are never markup.

Text from the network or name services (hostnames, aliases, banners) is
untrusted: it reaches a rich table only through ``safe()``, as literal
``Text`` with control and format characters made visible, and plain columns
only through ``visible()``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from netdiag.text import visible

if TYPE_CHECKING:
    from rich.table import Table
    from rich.text import Text

Rows = tuple[list[str], list[list[str]]]  # headers, and the rows' cells (already made safe)
MIN_CUT = 8  # a name cut shorter than this says nothing: the column is left out instead


def plain_table(headers: list[str], rows: Iterable[list[str]], width: int | None = None) -> str:
    """Columns aligned with spaces, no box and no colour: for pipes, grep and
    awk. Cells must already be made safe with ``visible``. With ``width`` (a
    terminal's) no line is longer: the last column (names) is cut short with
    an ellipsis, or, when even that is not enough, columns are left out from
    the right; a number is never split or cut."""
    rows = list(rows)
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    if width is not None:
        widths = _fit(widths, width)
        headers, rows = headers[: len(widths)], [row[: len(widths)] for row in rows]
    template = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [template.format(*_cut(headers, widths)).rstrip()]
    lines += [template.format(*_cut(row, widths)).rstrip() for row in rows]
    return "\n".join(lines) + "\n"


def _fit(widths: list[int], width: int) -> list[int]:
    """The column widths that fit: the last column (names) cut, else columns
    left out from the right whole (an address or a number is never cut)."""
    widths = list(widths)
    over = _line_width(widths) - width
    if over > 0 and widths[-1] - over >= MIN_CUT:
        widths[-1] -= over
        return widths
    while len(widths) > 2 and _line_width(widths) > width:
        widths.pop()
    return widths


def _line_width(widths: list[int]) -> int:
    return sum(widths) + 2 * (len(widths) - 1)


def _cut(cells: list[str], widths: list[int]) -> list[str]:
    return [cell if len(cell) <= w else cell[: w - 1] + "…" for cell, w in zip(cells, widths, strict=True)]


def milliseconds(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.3f}" if value < 10 else f"{value:.1f}"


def safe(text: str | None, style: str = "") -> Text:
    """Untrusted text as a literal rich Text: markup is never interpreted."""
    from rich.text import Text

    return Text(visible(text or ""), style=style)


def new_table(*columns: str, title: str | None = None) -> Table:
    """Drawn only where every cell fits unfolded (Output.tabular): nothing wraps."""
    from rich.table import Table

    table = Table(title=title, header_style="bold", title_justify="left")
    for column in columns:
        table.add_column(column, no_wrap=True)
    return table
