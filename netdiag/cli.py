"""The Typer app: arguments to the core, results to the renderer.

``main()`` is the one place where outcomes become exit statuses. Commands
import the core lazily so ``netdiag --help`` stays fast.
"""

from __future__ import annotations

import os
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
    except Exception as exc:  # a bug: one line, the traceback only when asked for
        if os.environ.get("NETDIAG_DEBUG"):
            raise
        output.error(f"internal error: {type(exc).__name__}: {exc} (NETDIAG_DEBUG=1 shows the traceback)")
        return int(ExitStatus.NEGATIVE)
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


@app.command()
def sweep(
    ctx: typer.Context,
    targets: Annotated[
        list[str],
        typer.Argument(
            help="Addresses, networks (CIDR), ranges (a.b.c.d-N), names, @FILE, - (stdin).", show_default=False
        ),
    ],
    method: Annotated[str, typer.Option("--method", "-m", help="auto, icmp, ping or tcp.")] = "auto",
    timeout: Annotated[float, typer.Option("--timeout", "-t", help="Seconds each probe waits for its answer.")] = 1.0,
    retries: Annotated[int, typer.Option("--retries", "-r", help="More probes for hosts that did not answer.")] = 0,
    count: Annotated[int, typer.Option("--count", "-c", help="Echo requests per host (shows loss, min/avg/max).")] = 1,
    interval: Annotated[float, typer.Option("--interval", "-i", help="Seconds between requests to one host.")] = 0.25,
    rate: Annotated[float | None, typer.Option("--rate", help="At most this many probes per second.")] = None,
    workers: Annotated[
        int | None, typer.Option("--workers", "-w", help="ping processes / TCP connections in flight.")
    ] = None,
    ports: Annotated[
        list[int] | None, typer.Option("--port", "-p", help="TCP ports for --method tcp (default 80, 443).")
    ] = None,
    no_names: Annotated[bool, typer.Option("--no-names", "-n", help="Skip reverse DNS names.")] = False,
    alive: Annotated[bool, typer.Option("--alive", "-a", help="Show only hosts that answered.")] = False,
    show_map: Annotated[bool, typer.Option("--map", help="Draw a grid of each /24 (or smaller) swept.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Allow networks larger than 65,536 addresses.")] = False,
    json_output: JsonOption = False,
    jsonl: Annotated[bool, typer.Option("--jsonl", help="Stream one JSON line per host as it settles.")] = False,
) -> int:
    """Ping sweep: which hosts are up, their round-trip times and names."""
    from netdiag import targets as targets_module
    from netdiag.sweep import SweepOptions, run_sweep

    out = _output(ctx)
    texts = targets_module.expand_arguments(targets, _open_target_list)
    parsed = targets_module.parse_targets(texts, force=force)
    if not parsed:
        from netdiag.errors import BadInput

        raise BadInput("no targets given (the list was empty)")
    options = SweepOptions(
        method=method.lower(),
        timeout=timeout,
        retries=retries,
        count=count,
        interval=interval,
        rate=rate,
        workers=workers,
        names=not (no_names or jsonl),
        ports=tuple(ports) if ports else (80, 443),
    )
    options.validate()
    total = targets_module.count_addresses(parsed)
    on_result = _stream_jsonl(out, alive) if jsonl else None
    with _sweep_progress(out, total) as progress:
        report = run_sweep(parsed, options, progress=progress, on_result=on_result)
    _show_sweep(out, report, parsed, alive=alive, show_map=show_map, json_output=json_output, jsonl=jsonl)
    if report.summary.interrupted:
        return ExitStatus.INTERRUPTED
    return ExitStatus.OK if report.summary.up else ExitStatus.NEGATIVE


def _open_target_list(argument: str):
    from netdiag.errors import BadInput

    if argument == "-":
        return sys.stdin
    try:
        with open(argument[1:], encoding="utf-8", errors="replace") as f:
            return f.readlines()
    except OSError as exc:
        raise BadInput(f"cannot read target list {argument[1:]}: {exc.strerror}") from None


def _stream_jsonl(out: Output, alive_only: bool):
    from netdiag import render

    def emit(result) -> None:
        if result.alive or not alive_only:
            out.json_line(render.host_result_json(result))

    return emit


class _sweep_progress:
    """A transient progress bar on stderr, only when stderr is a terminal."""

    def __init__(self, out: Output, total: int) -> None:
        self.out, self.total = out, total
        self.bar = None

    def __enter__(self):
        if not self.out.interactive:
            return None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.bar = Progress(
            TextColumn("sweeping"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("[green]{task.fields[up]} up[/] · {task.fields[sent]} probes sent"),
            TimeElapsedColumn(),
            console=self.out.err,
            transient=True,
        )
        task = self.bar.add_task("sweep", total=self.total, up=0, sent=0)
        self.bar.start()
        bar = self.bar

        def update(done: int, up: int, sent: int) -> None:
            bar.update(task, completed=done, up=up, sent=sent)

        return update

    def __exit__(self, *exc_info) -> None:
        if self.bar is not None:
            self.bar.stop()


def _show_sweep(out: Output, report, parsed, *, alive: bool, show_map: bool, json_output: bool, jsonl: bool) -> None:
    from netdiag import render
    from netdiag.targets import AddressBlock

    if jsonl:
        out.json_line({"summary": render.sweep_summary_json(report.summary)})
        return
    if json_output:
        out.json(render.sweep_report_json(report, alive_only=alive))
        return
    shown = [r for r in report.results if r.alive or not alive]
    show_loss = any(r.sent > 1 for r in report.results)
    if shown and out.rich_tables and len(shown) <= render.RICH_TABLE_MAX_ROWS:
        out.table(render.sweep_table(shown, show_loss))
    elif shown:
        out.text(render.sweep_plain(shown, show_loss))
    if show_map:
        by_address = {r.address: r for r in report.results}
        for target in parsed:
            if not isinstance(target, AddressBlock) or len(target) == 1:
                continue  # a single host needs no map
            if len(target) <= render.MAP_MAX:
                out.out.print(render.subnet_map(target, by_address))
            else:
                out.warn(f"--map: {target.source} is larger than a /24; no map drawn")
    out.info(render.sweep_summary_text(report.summary))
