"""The Typer app: arguments to the core, results to the renderer.

``main()`` is the one place where outcomes become exit statuses. Commands
import the core lazily so ``netdiag --help`` stays fast.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from netdiag.errors import NetdiagError
from netdiag.status import ExitStatus

if TYPE_CHECKING:
    from netdiag.render import Output


class _App(typer.Typer):
    def __call__(self, *args: Any, **kwargs: Any) -> NoReturn:
        sys.exit(main())


app = _App(
    name="netdiag",
    help="Network diagnostics for sysadmins: sweep, service, dns, telnet, listen.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
TimeoutOption = Annotated[float, typer.Option("--timeout", "-t", help="Seconds each lookup may take.")]
ProtoOption = Annotated[
    str | None, typer.Option("--proto", "-p", help="tcp or udp (default: both).", case_sensitive=False)
]


def main(argv: list[str] | None = None, output: Output | None = None) -> int:
    """Run netdiag; return the exit status instead of exiting."""
    if output is None:
        from netdiag.render import Output

        output = Output()
    command = typer.main.get_command(app)
    try:
        status = command.main(args=argv, prog_name="netdiag", standalone_mode=False, obj=output)
    except NetdiagError as exc:
        output.error(str(exc))
        return int(exc.exit_status)
    except (KeyboardInterrupt, typer.Abort):
        output.error("interrupted")
        return int(ExitStatus.INTERRUPTED)
    except typer.TyperException as exc:  # usage errors from the argument parser
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        hint = f" (see '{exc.ctx.command_path} --help')" if getattr(exc, "ctx", None) else ""
        output.error(message.replace("\n", " ") + hint)
        return int(getattr(exc, "exit_code", ExitStatus.BAD_INPUT))
    except BrokenPipeError:  # `netdiag ... | head`: the reader left, not an error
        sys.stdout = None  # type: ignore[assignment] - stop the interpreter flushing it again
        return int(ExitStatus.OK)
    return int(status or 0)


def _output(ctx: typer.Context) -> Output:
    return ctx.obj


def _check_timeout(value: float, name: str = "--timeout") -> float:
    from netdiag.errors import BadInput

    if not 0 < value <= 3600:
        raise BadInput(f"{name} must be more than 0 and at most 3600 seconds, not {value:g}")
    return value


def _check_proto(proto: str | None) -> str | None:
    from netdiag.errors import BadInput

    if proto is not None and proto.lower() not in ("tcp", "udp"):
        raise BadInput(f"--proto must be tcp or udp, not {proto!r}")
    return proto.lower() if proto else None


@app.command()
def service(
    ctx: typer.Context,
    queries: Annotated[list[str] | None, typer.Argument(help="ssh, 22, 53/udp ...", show_default=False)] = None,
    proto: ProtoOption = None,
    list_all: Annotated[bool, typer.Option("--list", "-l", help="List the whole services database.")] = False,
    grep: Annotated[str | None, typer.Option("--grep", "-g", help="With --list: only entries containing TEXT.")] = None,
    json_output: JsonOption = False,
) -> int:
    """Look up ports and service names in the system services database."""
    from netdiag import render, services
    from netdiag.errors import BadInput

    out = _output(ctx)
    protocol = _check_proto(proto)
    if list_all:
        entries = services.list_services(grep, protocol)
        if json_output:
            out.json({"services": [render.service_entry_json(e) for e in entries]})
        else:
            out.table(render.service_list_table(entries))
        return ExitStatus.OK if entries else ExitStatus.NEGATIVE
    if not queries:
        raise BadInput("give at least one service name or port, or --list")
    answers = [services.lookup(q, protocol) for q in queries]
    if json_output:
        out.json(render.service_answers_json(answers))
    else:
        if any(a.entries for a in answers):
            out.table(render.service_answers_table(answers))
        for answer in answers:
            if answer.error:
                out.error(answer.error)
    if any(a.malformed for a in answers):
        return ExitStatus.BAD_INPUT
    return ExitStatus.NEGATIVE if any(not a.entries for a in answers) else ExitStatus.OK


@app.command()
def dns(
    ctx: typer.Context,
    queries: Annotated[list[str], typer.Argument(help="Names (forward) or addresses (reverse).", show_default=False)],
    timeout: TimeoutOption = 3.0,
    json_output: JsonOption = False,
) -> int:
    """Forward and reverse lookups through the system resolver, with FCrDNS."""
    from netdiag import resolver

    out = _output(ctx)
    _check_timeout(timeout)
    order = {q: i for i, q in reversed(list(enumerate(queries)))}
    answers = []
    try:
        for answer in resolver.lookup_many(list(dict.fromkeys(queries)), timeout):
            answers.append(answer)
    except KeyboardInterrupt:
        out.error("interrupted: showing the answers so far")
        _show_dns(out, sorted(answers, key=lambda a: order[a.query]), json_output)
        return ExitStatus.INTERRUPTED
    answers.sort(key=lambda a: order[a.query])
    _show_dns(out, answers, json_output)
    return ExitStatus.OK if all(a.ok for a in answers) else ExitStatus.NEGATIVE


def _show_dns(out: Output, answers: list, json_output: bool) -> None:
    from netdiag import render

    if json_output:
        out.json({"results": [render.dns_answer_json(a) for a in answers]})
    else:
        out.table(render.dns_answers_table(answers))
