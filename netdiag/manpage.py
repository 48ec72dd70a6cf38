"""The manual page, made from the commands themselves: every option, its
help, each command's examples and exit statuses, as ``--help`` shows them.

``python -m netdiag.manpage > docs/netdiag.1`` (``make man``) writes the page
the wheel installs as share/man/man1/netdiag.1; a test keeps it current.
"""

from __future__ import annotations

import sys
from typing import Any

from netdiag import __version__

SEE_ALSO = ("fping(8)", "ping(8)", "nmap(1)", "arp-scan(1)", "dig(1)", "getent(1)", "nc(1)", "telnet(1)")
ENVIRONMENT = (
    ("NO_COLOR", "Set: no colour, even on a terminal."),
    ("COLUMNS", "The terminal width tables are fitted to (a value under 20 is ignored)."),
    ("NETDIAG_DEBUG", "Set: an internal error shows its traceback instead of one line."),
)


def escape(text: str) -> str:
    """Text as troff reads it literally: backslashes, and a line that would
    start with a request character."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\n".join("\\&" + line if line.startswith((".", "'")) else line for line in text.split("\n"))


def render(root: Any) -> str:
    """The page for ``root``, the click group Typer builds (cli._click_style_usage applied)."""
    context_type = type(root.context_class(root, info_name="netdiag"))
    root_ctx = context_type(root, info_name="netdiag")
    lines = [
        f'.TH NETDIAG 1 "" "netdiag {__version__}" "User Commands"',
        ".SH NAME",
        "netdiag \\- " + escape(_first_line(root.help or "network diagnostics")),
        ".SH SYNOPSIS",
        ".B netdiag",
        "\\fICOMMAND\\fR [\\fIOPTIONS\\fR] [\\fIARGUMENTS\\fR]...",
        ".br",
        ".B netdiag",
        "\\fB\\-\\-version\\fR | \\fB\\-\\-help\\fR | \\fB\\-\\-install\\-completion\\fR",
        ".SH DESCRIPTION",
        escape(root.help or ""),
        ".PP",
        "Results go to standard output: a table on a terminal, plain aligned columns in a pipe, JSON on "
        "request. Everything else (progress, warnings, errors) goes to standard error. Text from the network "
        "is shown with control characters made visible, never interpreted.",
        ".SH COMMANDS",
    ]
    for name, command in root.commands.items():
        if getattr(command, "hidden", False):
            continue
        ctx = context_type(command, info_name=name, parent=root_ctx)
        usage = " ".join(command.collect_usage_pieces(ctx))
        lines += [f'.SS "netdiag {name} {escape(usage)}"', escape(command.help or "")]
        for param in command.params:
            record = param.get_help_record(ctx)
            if record is None:  # arguments: named in the usage line
                continue
            names, help_text = record
            lines += [".TP", f"\\fB{escape(names)}\\fR", escape(help_text)]
        lines += _epilog(command.epilog or "")
    lines += [".SH ENVIRONMENT"]
    for name, meaning in ENVIRONMENT:
        lines += [".TP", f"\\fB{name}\\fR", escape(meaning)]
    lines += [".SH SEE ALSO", ", ".join(f"\\fB{page.split('(')[0]}\\fR({page.split('(')[1]}" for page in SEE_ALSO)]
    return "\n".join(lines) + "\n"


def _epilog(epilog: str) -> list[str]:
    """A command's examples and exit statuses: kept as written, line by line."""
    lines: list[str] = []
    for block in epilog.split("\b"):
        block_lines = [line for line in block.strip("\n").split("\n") if line.strip()]
        if not block_lines:
            continue
        lines += [".PP", f"\\fI{escape(block_lines[0].rstrip(':'))}\\fR", ".nf", ".RS 4"]
        lines += [escape(line.strip()) for line in block_lines[1:]]
        lines += [".RE", ".fi"]
    return lines


def _first_line(text: str) -> str:
    return text.strip().split("\n")[0].rstrip(".")


def main() -> None:
    import typer

    from netdiag.cli import _click_style_usage, app

    sys.stdout.write(render(_click_style_usage(typer.main.get_command(app))))


if __name__ == "__main__":
    main()
