"""Where output goes: results on stdout, diagnostics on stderr; JSON.
(``visible()``, which makes untrusted text safe to show, is in netdiag.text.)

Injectable (tests pass their own streams) and light: rich is imported only
when something is actually rendered.
"""

from __future__ import annotations

import errno
import functools
import json
import os
import select
import stat
import sys
from collections.abc import Callable, Iterable
from enum import Enum
from typing import IO, TYPE_CHECKING, Any

from netdiag.text import visible

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from netdiag.views.table import Rows

PIPE_WIDTH = 250
MIN_WIDTH = 20  # narrower than this is a broken COLUMNS, not a terminal
RICH_TABLE_MAX_ROWS = 2000  # rich lays out ~3k rows a second: beyond this, plain columns even on a terminal
WRITABLE_WAIT_S = 1.0
# ensure_ascii: every value survives exactly for jq, and no raw control byte
# from the network can reach a terminal.
_JSON = json.JSONEncoder(ensure_ascii=True, indent=2)
_JSON_LINE = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"))


class Format(Enum):
    """How results are written: decided once (``Output.choose``), for every view."""

    RICH = "rich"  # a person at a terminal: boxed, coloured tables
    PLAIN = "plain"  # a pipe or a file: aligned columns for grep and awk
    JSON = "json"  # --json: one document
    JSON_LINES = "jsonl"  # --jsonl: one line per result as it comes, then the summary


class Output:
    """Where results (stdout) and diagnostics (stderr) go, and in which
    format. Injectable: tests pass their own streams (a stream that says it
    is a terminal gets the rich tables).

    Colour follows rich: off when the stream is not a terminal or NO_COLOR is set.
    """

    def __init__(self, stdout: IO[str] | None = None, stderr: IO[str] | None = None) -> None:
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr
        self._format: Format | None = None

    def choose(self, *, json: bool = False, json_lines: bool = False) -> Format:
        """The format of this run's results, from the command's options and
        what stdout is; every view then asks ``format``."""
        if json and json_lines:
            from netdiag.errors import BadInput

            raise BadInput("--json prints one document at the end and --jsonl streams lines as they come: pick one")
        if json_lines:
            self._format = Format.JSON_LINES
        elif json:
            self._format = Format.JSON
        else:
            self._format = Format.RICH if _is_terminal(self.stdout) else Format.PLAIN
        return self._format

    @property
    def format(self) -> Format:
        return self._format if self._format is not None else self.choose()

    # The rich consoles are made on first use: a piped telnet session never
    # needs rich, and importing it costs start-up time.
    @functools.cached_property
    def out(self) -> Console:
        console = _console(file=self.stdout, highlight=False, width=self.terminal_width)
        if not console.is_terminal:  # piped: never fold an address to fit 80 columns
            console = _console(file=self.stdout, highlight=False, width=PIPE_WIDTH)
        return console

    @functools.cached_property
    def err(self) -> Console:
        return _console(file=self.stderr, highlight=False, width=self.terminal_width)

    @property
    def interactive(self) -> bool:
        """Progress displays only make sense when stderr is a terminal."""
        return self.stderr_is_terminal

    @functools.cached_property
    def stderr_is_terminal(self) -> bool:
        return _is_terminal(self.stderr)

    def _plain_line(self, line: str) -> None:
        self.stderr.write(line + "\n")
        self.stderr.flush()

    def error(self, message: str) -> None:
        self._status(f"netdiag: {visible(message)}", "bold red")

    def warn(self, message: str) -> None:
        self._status(f"netdiag: {visible(message)}", "yellow")

    def _status(self, line: str, style: str) -> None:
        if not self.stderr_is_terminal:  # no colour to add: skip rich entirely
            self._plain_line(line)
            return
        from rich.text import Text

        self.err.print(Text(line, style=style), soft_wrap=True)

    def info(self, message: str | Text) -> None:
        """A status line on stderr; plain strings are never read as markup."""
        if isinstance(message, str):
            if not self.stderr_is_terminal:
                self._plain_line(message)
                return
            from rich.text import Text

            message = Text(message)
        self.err.print(message, soft_wrap=True)

    def table(self, table: Table) -> None:
        self.out.print(table)

    def tabular(self, rich: Callable[[], Table], rows: Rows) -> None:
        """Rows for a person or for a program, decided here once for every
        command: a boxed rich table on a terminal wide enough for every cell
        unfolded; plain aligned columns in a pipe, for more rows than anyone
        reads in a box, and on a narrow terminal, where the last column (the
        names) is cut short so that no line wraps and no number is split."""
        from netdiag.views.table import plain_table

        headers, cells = rows
        if self.format is not Format.RICH:
            self.text(plain_table(headers, cells))
            return
        width = self.terminal_width
        if len(cells) <= RICH_TABLE_MAX_ROWS:
            table = rich()
            if self.fits(table):
                self.table(table)
                return
        self.text(plain_table(headers, cells, width))

    def fits(self, table: Table) -> bool:
        """Whether the table fits the terminal with every cell unfolded."""
        from rich.measure import Measurement

        unfolded = Measurement.get(self.out, self.out.options.update_width(1 << 20), table).maximum
        return unfolded <= self.terminal_width

    @functools.cached_property
    def terminal_width(self) -> int:
        """COLUMNS when it is a sensible number, else the terminal's own width,
        else 80 (COLUMNS=0 once made rich print nothing at all)."""
        try:
            columns = int(os.environ.get("COLUMNS", ""))
        except ValueError:
            columns = 0
        if columns >= MIN_WIDTH:
            return columns
        try:
            return max(os.get_terminal_size(self.stdout.fileno()).columns, MIN_WIDTH)
        except (OSError, ValueError, AttributeError):
            return 80

    def json(self, document: Any) -> None:
        self._wait_writable()
        self.stdout.write(_JSON.encode(document) + "\n")
        self.stdout.flush()

    def json_rows(self, key: str, rows: Iterable[str], rest: dict[str, Any]) -> None:
        """One JSON document ``{key: [rows...], **rest}`` from rows already
        encoded (compact JSON, one a line): a /16's 65,534 rows never exist as
        one string, nor go through the pure-Python indenting encoder."""
        self._wait_writable()
        write, encode = self.stdout.write, _JSON_LINE.encode
        write(f"{{{encode(key)}: [")
        separator = "\n  "
        for row in rows:
            write(separator + row)
            separator = ",\n  "
        write("\n]")
        for name, value in rest.items():
            write(f",\n{encode(name)}: {_JSON.encode(value)}")
        write("}\n")
        self.stdout.flush()

    def json_line(self, document: Any) -> None:
        """One line of a JSON Lines stream, flushed: a reader at the other end
        of a pipe sees each line as it is made, not when a buffer fills."""
        self._wait_writable()
        self.stdout.write(_JSON_LINE.encode(document) + "\n")
        self.stdout.flush()

    def text(self, text: str) -> None:
        """Plain text that is already safe (made with ``visible``)."""
        self._wait_writable()
        self.stdout.write(text)
        self.stdout.flush()

    def _wait_writable(self) -> None:
        """After SIGTERM or SIGHUP, output to a pipe nobody reads would block
        for ever: give the reader a moment, then end as the signal asked."""
        from netdiag import interrupts

        if not interrupts.received():
            return
        try:
            fd = self.stdout.fileno()
            if not stat.S_ISFIFO(os.fstat(fd).st_mode):
                return
        except (OSError, ValueError, AttributeError):  # not a real file (tests), or closed
            return
        if not select.select([], [fd], [], WRITABLE_WAIT_S)[1]:
            raise interrupts.Interrupted(interrupts.exit_status() - 128)


def _is_terminal(stream: IO[str]) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # closed
        return False


def _console(**kwargs: Any) -> Console:
    return _pipe_aware_console()(**kwargs)


@functools.cache
def _pipe_aware_console() -> type[Console]:
    """A rich Console that lets a closed pipe reach ``cli.main`` as the
    BrokenPipeError it is (rich's own exits 1: the reader leaving is exit 0).
    Made on first use: importing rich costs start-up time."""
    from rich.console import Console

    class PipeAwareConsole(Console):
        def on_broken_pipe(self) -> None:
            self.quiet = True
            raise BrokenPipeError(errno.EPIPE, os.strerror(errno.EPIPE))

    return PipeAwareConsole
