"""The Typer app: arguments to the core, results to the renderer.

``main()`` is the one place where outcomes become exit statuses. Commands
import the core lazily so ``netdiag --help`` stays fast.
"""

from __future__ import annotations

import contextlib
import copy
import errno
import io
import itertools
import os
import select
import signal
import stat
import sys
from collections.abc import Callable
from types import FrameType
from typing import IO, TYPE_CHECKING, Annotated, Any, BinaryIO, NoReturn, TextIO

import typer

from netdiag import interrupts
from netdiag.errors import NetdiagError
from netdiag.status import ExitStatus
from netdiag.text import visible

if TYPE_CHECKING:
    from netdiag.output import Output
    from netdiag.targets import Listed, Target


class _App(typer.Typer):
    def __call__(self, *args: Any, **kwargs: Any) -> NoReturn:
        sys.exit(main())


app = _App(
    name="netdiag",
    help="Network diagnostics for sysadmins: sweep, port, service, dns, telnet, listen.",
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion, Typer's own
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _show_version(value: bool) -> None:
    if value:
        from netdiag import __version__

        typer.echo(f"netdiag {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", "-V", callback=_show_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    """Network diagnostics for sysadmins: sweep, port, service, dns, telnet, listen."""


def _epilog(examples: list[str], exits: list[str]) -> str:
    """A command's help ends with examples and its exit statuses (\\b: kept as written)."""
    return "\n".join(
        ["\b", "Examples:", *(f"  {e}" for e in examples), "", "\b", "Exit status:", *(f"  {x}" for x in exits)]
    )


SWEEP_EPILOG = _epilog(
    [
        "netdiag sweep 192.168.1.0/24 --map",
        "netdiag sweep --require all -m tcp -p 22 db1 db2 && deploy",
    ],
    [
        "0  enough hosts answered (--require; default: any)",
        "1  not enough did",
        "2  bad input: nothing was sent",
        "3  could not run: the method's socket is not permitted",
        "128+N  interrupted by signal N; partial results printed",
    ],
)
PORT_EPILOG = _epilog(
    [
        "netdiag port db1:5432 web1:80,443 && deploy",
        "netdiag port 192.168.1.0/24 -p ssh,https --open --grid",
    ],
    [
        "0  every pair is open",
        "1  some pair is not (closed, filtered, open|filtered, unresolved)",
        "2  bad input: nothing was sent",
        "128+N  interrupted by signal N; partial results printed",
    ],
)
SERVICE_EPILOG = _epilog(
    [
        "netdiag service ssh 53/udp 8080",
        "netdiag service --list --grep http",
    ],
    [
        "0  every query found",
        "1  some query found nothing",
        "2  some query malformed",
    ],
)
DNS_EPILOG = _epilog(
    [
        "netdiag dns www.example.org 192.0.2.1 --compare",
        "netdiag dns example.org MX TXT @127.0.0.53 @tls://9.9.9.9",
    ],
    [
        "0  every query answered (servers: NOERROR with data, from every server)",
        "1  some query failed (NXDOMAIN, no data, SERVFAIL, timeout; --compare: DNS disagrees)",
        "2  bad input: nothing was sent",
        "3  could not run (DoH without netdiag[doh])",
        "128+N  interrupted by signal N; the answers so far printed",
    ],
)

TELNET_EPILOG = _epilog(
    [
        "netdiag telnet mail.example.org smtp --crlf",
        "printf 'HEAD / HTTP/1.0\\r\\n\\r\\n' | netdiag telnet --tls example.org https",
    ],
    [
        "0  the session ended normally",
        "1  refused, timed out, unresolvable, unreachable, a TLS failure, the idle timeout",
        "2  bad host, port or --sni",
        "128+N  ended by signal N (the terminal is restored)",
    ],
)
LISTEN_EPILOG = _epilog(
    ["netdiag listen 8080 --mode show", "netdiag listen 0 --mode lookup --json"],
    [
        "0  stopped by SIGTERM (the summary printed)",
        "1  cannot bind (in use, not permitted)",
        "2  bad options",
        "3  cannot listen at all (no socket, no descriptor)",
        "130  Ctrl-C (the summary printed)",
    ],
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
TimeoutOption = Annotated[
    float, typer.Option("--timeout", "-t", metavar="SECONDS", help="Seconds the whole run may take.")
]
IPv4Option = Annotated[bool, typer.Option("-4", "--ipv4", help="IPv4 only: host names resolve to IPv4.")]
IPv6Option = Annotated[bool, typer.Option("-6", "--ipv6", help="IPv6 only: host names resolve to IPv6.")]
RateOption = Annotated[float | None, typer.Option("--rate", metavar="PPS", help="At most this many probes per second.")]
ProtoOption = Annotated[
    str | None,
    typer.Option(
        "--proto", "-p", metavar="PROTO", help="tcp, udp or any protocol of the services database (default: every one)."
    ),
]


def main(argv: list[str] | None = None, output: Output | None = None) -> int:
    """Run netdiag; return the exit status instead of exiting.

    The command is invoked here, not through Typer's ``main``: that one turns
    Ctrl-C into a silent exit 130 and a closed pipe into exit 1 before any
    command could print what it learned or say the reader left."""
    if output is None:
        from netdiag.output import Output

        output = Output()
    args = list(sys.argv[1:] if argv is None else argv)
    command = _click_style_usage(typer.main.get_command(_lean_app(args)))
    # A shell asking for completions (_NETDIAG_COMPLETE set): answered, then exit.
    command._main_shell_completion({}, "netdiag")
    try:
        with interrupts.handled(), command.make_context("netdiag", args, obj=output) as ctx:
            status = command.invoke(ctx)
    except NetdiagError as exc:
        output.error(str(exc))
        return int(exc.exit_status)
    except KeyboardInterrupt:  # Ctrl-C, SIGTERM or SIGHUP where no command kept results
        _quietly(output.error, "interrupted")
        _unblock_stdout()
        return interrupts.exit_status()
    except typer.Exit as exc:  # --help
        return int(exc.exit_code)
    except typer.Abort:
        output.error("aborted")
        return int(ExitStatus.INTERRUPTED)
    except typer.TyperException as exc:  # usage errors from the argument parser
        if type(exc).__name__ == "NoArgsIsHelpError":  # `netdiag` alone: the whole help, as written
            output.stderr.write(exc.format_message() + "\n")
            return int(ExitStatus.BAD_INPUT)
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        usage_ctx = getattr(exc, "ctx", None)  # click's usage errors carry the command they came from
        hint = f" (see '{usage_ctx.command_path} --help')" if usage_ctx is not None else ""
        output.error(message.replace("\n", " ") + hint)
        return int(getattr(exc, "exit_code", ExitStatus.BAD_INPUT))
    except OSError as exc:  # writing the results failed
        _discard_unwritten()
        if interrupts.received():  # a hang-up: the terminal went away with its SIGHUP
            return interrupts.exit_status()
        if exc.errno == errno.EPIPE:  # `netdiag ... | head`: the reader left, not an error
            return int(ExitStatus.OK)
        _quietly(output.error, f"cannot write the results: {exc.strerror or exc}")
        return int(ExitStatus.CANNOT_RUN)
    except Exception as exc:  # noqa: BLE001 - a bug: reported in one line
        return _internal_error(output, exc)
    return int(status or 0)


def _lean_app(args: list[str]) -> typer.Typer:
    """The app with only the command asked for: Typer reads every option of
    every command it builds, milliseconds a run pays for nothing. The whole
    app for --help, --version, completion and an unknown command (which then
    gets its suggestions)."""
    if os.environ.get("_NETDIAG_COMPLETE") or not args or args[0].startswith("-"):
        return app
    wanted = [info for info in app.registered_commands if info.callback and info.callback.__name__ == args[0]]
    if not wanted:
        return app
    lean = copy.copy(app)
    lean.registered_commands = wanted
    return lean


def _click_style_usage(command: Any) -> Any:
    """Typer writes a required argument as ``{TARGET...}`` in the usage line;
    click, man pages and every other tool write ``TARGET...``."""
    for sub in getattr(command, "commands", {}).values():
        for param in sub.params:
            if isinstance(param, typer.core.TyperArgument):
                shown = param.metavar or (param.name or "").upper() + ("..." if param.nargs != 1 else "")
                if not param.required:
                    shown = f"[{shown}]"
                param.make_metavar = _fixed_metavar(shown)  # type: ignore[method-assign]  # one instance's
            elif param.metavar is None and not getattr(param, "is_flag", False):
                # click's words, not Typer's <int>: N, SECONDS (every float option is a time), NAME
                kind = getattr(param.type, "name", "")
                param.metavar = {"int": "N", "float": "SECONDS"}.get(kind, (param.name or "value").upper())
    return command


def _fixed_metavar(shown: str) -> Callable[..., str]:
    def make_metavar(*args: object, **kwargs: object) -> str:
        return shown

    return make_metavar


def _unblock_stdout() -> None:
    """Interrupted while stdout is a pipe nobody reads: flushing it at exit
    would block for ever, so what it still holds is dropped. A file or a
    terminal is flushed as usual."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        fd = sys.stdout.fileno()
        if stat.S_ISFIFO(os.fstat(fd).st_mode) and not select.select([], [fd], [], 1.0)[1]:
            _discard_unwritten()


def _discard_unwritten() -> None:
    """What is still buffered for stdout goes nowhere, so that exit does not
    block or fail flushing it (Python's advice for SIGPIPE)."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _internal_error(output: Output, exc: BaseException) -> int:
    """A bug: one line, the traceback only when asked for."""
    if os.environ.get("NETDIAG_DEBUG"):
        raise exc
    output.error(f"internal error: {type(exc).__name__}: {exc} (NETDIAG_DEBUG=1 shows the traceback)")
    return int(ExitStatus.NEGATIVE)


def _quietly(write: Any, message: str) -> None:
    """Say it if stderr is still there (after SIGHUP it may not be)."""
    with contextlib.suppress(OSError):
        write(message)


def _output(ctx: typer.Context) -> Output:
    out: Output = ctx.obj  # main() makes it: the injected environment
    return out


def _check_timeout(value: float, name: str = "--timeout") -> float:
    from netdiag.errors import BadInput

    if not 0 < value <= 3600:
        raise BadInput(f"{name} must be more than 0 and at most 3600 seconds, not {value:g}")
    return value


def _check_proto(proto: str | None) -> str | None:
    from netdiag import services

    return None if proto is None else services.check_protocol(proto)


@app.command(epilog=SERVICE_EPILOG)
def service(
    ctx: typer.Context,
    queries: Annotated[
        list[str] | None, typer.Argument(metavar="QUERY...", help="ssh, 22, 53/udp, 5672/sctp ...", show_default=False)
    ] = None,
    proto: ProtoOption = None,
    list_all: Annotated[bool, typer.Option("--list", "-l", help="List the whole services database.")] = False,
    grep: Annotated[
        str | None, typer.Option("--grep", "-g", metavar="TEXT", help="With --list: only entries containing TEXT.")
    ] = None,
    json_output: JsonOption = False,
) -> int:
    """Look up ports and service names in the system services database."""
    from netdiag import services
    from netdiag.errors import BadInput
    from netdiag.views import service as view

    out = _output(ctx)
    out.choose(json=json_output)
    protocol = _check_proto(proto)
    if list_all:
        entries = services.list_services(grep, protocol)
        view.show_list(out, entries)
        return ExitStatus.OK if entries else ExitStatus.NEGATIVE
    if not queries:
        raise BadInput("give at least one service name or port, or --list")
    answers = [services.lookup(q, protocol) for q in queries]
    view.show_answers(out, answers)
    if any(a.malformed for a in answers):
        return ExitStatus.BAD_INPUT
    return ExitStatus.NEGATIVE if any(not a.entries for a in answers) else ExitStatus.OK


@app.command(epilog=DNS_EPILOG)
def dns(
    ctx: typer.Context,
    queries: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="QUERY...",
            help="Names, addresses (reverse), record types (MX, TXT, TYPE65) and @SERVER (an address, "
            "a name, @system, tls://HOST, https://URL).",
            show_default=False,
        ),
    ] = None,
    reverse: Annotated[
        list[str] | None, typer.Option("-x", metavar="ADDRESS", help="Ask the PTR of ADDRESS, as dig -x.")
    ] = None,
    batch: Annotated[
        str | None, typer.Option("--file", "-f", metavar="FILE", help="One query a line, as dig -f (- for stdin).")
    ] = None,
    timeout: TimeoutOption = 3.0,
    tcp: Annotated[
        bool, typer.Option("--tcp", help="Ask over TCP (UDP falls back to TCP on its own when truncated).")
    ] = False,
    tls: Annotated[bool, typer.Option("--tls", help="DNS over TLS (port 853), the certificate verified.")] = False,
    https: Annotated[bool, typer.Option("--https", help="DNS over HTTPS (needs netdiag[doh]).")] = False,
    insecure: Annotated[bool, typer.Option("--insecure", "-k", help="With --tls/--https: do not verify.")] = False,
    ca_file: Annotated[
        str | None, typer.Option("--ca", metavar="FILE", help="With --tls/--https: trust this CA (PEM).")
    ] = None,
    dnssec: Annotated[bool, typer.Option("--dnssec", help="Set the DO bit: RRSIGs, and the AD flag shown.")] = False,
    rclass: Annotated[str, typer.Option("--class", metavar="CLASS", help="IN, CH, HS or CLASS123.")] = "IN",
    norecurse: Annotated[bool, typer.Option("--norecurse", help="Clear RD: what the server itself holds.")] = False,
    compare: Annotated[
        bool, typer.Option("--compare", help="The system view beside what each DNS server says (default: @system).")
    ] = False,
    short: Annotated[bool, typer.Option("--short", help="Only the data, one a line (dig +short).")] = False,
    json_output: JsonOption = False,
) -> int:
    """What applications see (system resolver, hosts/NSS, FCrDNS) and what DNS servers say.

    Names and addresses alone ask the system resolver, as every application
    does. A record type or an @SERVER asks DNS servers directly; a word that
    is both a type and a name is a type (end a name with a dot: mx.)."""
    from netdiag.errors import BadInput

    out = _output(ctx)
    out.choose(json=json_output)
    _check_timeout(timeout)
    words = list(queries or [])
    transports = [name for name, on in (("tcp", tcp), ("tls", tls), ("https", https)) if on]
    if len(transports) > 1:
        raise BadInput(f"{' and '.join('--' + t for t in transports)} exclude each other")
    asks_servers = bool(reverse or batch or transports or dnssec or norecurse or rclass.upper() != "IN")
    if compare:  # the system view, each name and address then asked of DNS servers too
        if asks_servers or any(_protocol_word(w) for w in words if not w.startswith("@")):
            raise BadInput("--compare takes names, addresses and @servers: the system view beside DNS's answers")
        names = [w for w in words if not w.startswith("@")]
        if not names:
            raise BadInput("give a name or an address to look up")
        from netdiag.dnsclient import QueryOptions, parse_server, resolve_servers

        servers = [parse_server(w[1:]) for w in words if w.startswith("@")]
        resolve_servers(servers, QueryOptions(), timeout)  # a server that cannot be asked: said before any lookup
        return _dns_system_view(out, names, timeout, compare_with=servers, short=short)
    if not asks_servers and not any(_protocol_word(w) for w in words):
        if not words:
            raise BadInput("give a name or an address to look up (or -f FILE)")
        return _dns_system_view(out, words, timeout, compare_with=None, short=short)
    from netdiag import dnsclient

    options = dnsclient.QueryOptions(
        transport=transports[0] if transports else None, rclass=rclass, recurse=not norecurse, dnssec=dnssec,
        ca_file=ca_file, insecure=insecure,
    )  # fmt: skip
    command = dnsclient.parse_words(words, reverse=reverse or (), names_required=batch is None)
    requests = [command] if command.names else []
    if batch is not None:
        requests = _dns_batch(batch, command) + requests
    if not requests:
        raise BadInput("no name to look up")
    return _dns_protocol_view(out, requests, command, options, timeout, short=short)


def _protocol_word(word: str) -> bool:
    """A word that asks DNS servers directly: an @SERVER or a record type (or
    dig's +option, which the protocol view's parser names our option for)."""
    if word.startswith(("@", "+")):
        return True
    from netdiag.rrtypes import type_word  # not dnsclient: the system view must not pay for it

    return type_word(word) is not None


def _dns_batch(path: str, command: Any) -> list[Any]:
    """-f FILE / -f -: at most _MAX_BATCH lines of at most MAX_LINE characters
    (a binary file or /dev/zero is refused, never read into memory)."""
    from netdiag import dnsclient
    from netdiag.errors import BadInput
    from netdiag.targets import bounded_lines

    name = "stdin" if path == "-" else visible(path)
    with _open_list(path if path == "-" else "@" + path, "batch file") as stream:
        lines = list(itertools.islice(bounded_lines(stream, name), _MAX_BATCH + 1))
    if len(lines) > _MAX_BATCH:
        raise BadInput(f"{name}: more than {_MAX_BATCH:,} lines")
    try:
        return dnsclient.parse_batch(lines, defaults=command)
    except BadInput as exc:
        raise BadInput(f"{name}: {exc}") from None


_MAX_BATCH = 100_000  # queries in one -f file: all are asked at once


def _dns_protocol_view(
    out: Output, requests: list[Any], command: Any, options: Any, timeout: float, *, short: bool
) -> int:
    from netdiag import dnsclient, records
    from netdiag.views import dnsquery as view

    queries = dnsclient.build_queries(
        requests, options, default_servers=command.servers or (dnsclient.SYSTEM,), timeout=timeout
    )
    outcomes: list[records.Outcome] = []
    interrupted = False
    try:
        for outcome in dnsclient.ask(queries, options, timeout):
            outcomes.append(outcome)
    except KeyboardInterrupt:  # Ctrl-C, SIGTERM, SIGHUP: the answers so far
        interrupted = True
    view.show_outcomes(out, records.in_order(outcomes, queries), short=short, interrupted=interrupted)
    if interrupted:
        return interrupts.exit_status()
    return ExitStatus.OK if len(outcomes) == len(queries) and records.succeeded(outcomes) else ExitStatus.NEGATIVE


def _dns_system_view(
    out: Output, queries: list[str], timeout: float, *, compare_with: list[Any] | None, short: bool
) -> int:
    from netdiag import resolver
    from netdiag.views import dns as view

    order = {q: i for i, q in reversed(list(enumerate(queries)))}
    answers = []
    try:
        for answer in resolver.lookup_many(list(dict.fromkeys(queries)), timeout):
            answers.append(answer)
    except KeyboardInterrupt:  # Ctrl-C, SIGTERM, SIGHUP
        out.error("interrupted: showing the answers so far")
        view.show_answers(out, sorted(answers, key=lambda a: order[a.query]), short=short)
        return interrupts.exit_status()
    answers.sort(key=lambda a: order[a.query])
    if compare_with is not None:
        from netdiag import crosscheck

        try:
            said = crosscheck.ask_dns(answers, compare_with, timeout)
        except KeyboardInterrupt:  # the system's answers stand without DNS's
            out.error("interrupted: showing the system's answers without DNS's")
            view.show_answers(out, answers, short=short)
            return interrupts.exit_status()
        verdicts = {a.query: crosscheck.verdict(a, said[a.query]) for a in answers}
        view.show_compared(out, answers, said, verdicts)
        agree = all(v.agrees for v in verdicts.values())
        return ExitStatus.OK if agree and all(a.ok for a in answers) else ExitStatus.NEGATIVE
    view.show_answers(out, answers, short=short)
    return ExitStatus.OK if all(a.ok for a in answers) else ExitStatus.NEGATIVE


@app.command(epilog=SWEEP_EPILOG)
def sweep(
    ctx: typer.Context,
    targets: Annotated[
        list[str],
        typer.Argument(
            metavar="TARGET...",
            help="Addresses, networks (CIDR), ranges (a.b.c.d-N), names, @FILE, - (stdin).",
            show_default=False,
        ),
    ],
    method: Annotated[
        str,
        typer.Option(
            "--method",
            "-m",
            metavar="[auto|arp|icmp|ping|tcp]",
            help="How to probe (auto: the best this host may use).",
        ),
    ] = "auto",
    timeout: Annotated[
        float, typer.Option("--timeout", "-t", metavar="SECONDS", help="Seconds each probe waits for its answer.")
    ] = 1.0,
    retries: Annotated[
        int, typer.Option("--retries", "-r", metavar="N", help="More probes for hosts that did not answer.")
    ] = 0,
    count: Annotated[
        int, typer.Option("--count", "-c", metavar="N", help="Echo requests per host (shows loss, min/avg/max).")
    ] = 1,
    interval: Annotated[
        float, typer.Option("--interval", "-i", metavar="SECONDS", help="Seconds between requests to one host.")
    ] = 0.25,
    rate: RateOption = None,
    workers: Annotated[
        int | None, typer.Option("--workers", "-w", metavar="N", help="ping processes / TCP connections in flight.")
    ] = None,
    ports: Annotated[
        list[str] | None,
        typer.Option(
            "--port",
            "-p",
            metavar="PORTS",
            help="TCP ports for --method tcp: 22, 22,443, ssh, 8000-8010 (default 80,443).",
        ),
    ] = None,
    interface: Annotated[
        str | None,
        typer.Option("--interface", "-I", metavar="IFACE", help="Probe through this interface (its segment, for ARP)."),
    ] = None,
    source: Annotated[
        str | None, typer.Option("--source", "-S", metavar="ADDRESS", help="Source address of the probes.")
    ] = None,
    no_names: Annotated[bool, typer.Option("--no-names", "-n", help="Skip reverse DNS names.")] = False,
    alive: Annotated[bool, typer.Option("--alive", "-a", help="Show only hosts that answered.")] = False,
    show_map: Annotated[bool, typer.Option("--map", help="Draw a grid of each /24 (or smaller) swept.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Allow networks larger than 65,536 addresses.")] = False,
    json_output: JsonOption = False,
    jsonl: Annotated[bool, typer.Option("--jsonl", help="Stream one JSON line per host as it settles.")] = False,
    require: Annotated[
        str,
        typer.Option(
            "--require", metavar="any|all|N", help="Exit 0 when this many hosts answer (N: at least N, like fping -x)."
        ),
    ] = "any",
    ipv4: IPv4Option = False,
    ipv6: IPv6Option = False,
    watch: Annotated[
        bool, typer.Option("--watch", help="Probe every host again every -i seconds (default 1), live, until Ctrl-C.")
    ] = False,
) -> int:
    """Ping sweep: which hosts are up, their round-trip times and names."""
    from netdiag import targets as targets_module
    from netdiag.sweep import SweepOptions, run_sweep

    out = _output(ctx)
    out.choose(json=json_output, json_lines=jsonl)
    needed = _required(require)
    parsed = targets_module.parse_targets(_listed(targets, force), force=force, prepare=_no_ports)
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
        ports=_port_lists(ports) if ports else (80, 443),
        interface=interface,
        source=source,
        ip_version=_ip_version(ipv4, ipv6, parsed),
    )
    options.validate()
    if watch:  # rounds until a signal; -i is the time between rounds there (netdiag/views/watch.py)
        from netdiag.views.watch import watch_sweep

        interval_source = ctx.get_parameter_source("interval")
        given = interval_source is not None and interval_source.name != "DEFAULT"
        period = interval if given else None
        return watch_sweep(out, parsed, options, period, alive=alive, show_map=show_map)
    from netdiag.views import sweep as view

    total = targets_module.count_addresses(parsed)
    on_result = view.streamer(out, alive) if jsonl else None
    with view.progress_bar(out, total) as progress:
        report = run_sweep(parsed, options, progress=progress, on_result=on_result, keep_results=not jsonl)
    view.show_report(out, report, parsed, alive=alive, show_map=show_map)
    if report.summary.interrupted:
        return interrupts.exit_status()
    enough = report.summary.total if needed is None else needed
    return ExitStatus.OK if report.summary.up >= enough else ExitStatus.NEGATIVE


def _no_ports(text: str) -> str:
    from netdiag.ports import without_ports

    return without_ports(text, "sweep takes ports with -p (-m tcp); netdiag port checks HOST:PORTS")


def _port_lists(lists: list[str], proto: str = "tcp") -> tuple[int, ...]:
    """-p 22 -p 80,443 -p ssh: every port once, in the order first given."""
    from netdiag.ports import parse_ports

    return tuple(dict.fromkeys(port for text in lists for port in parse_ports(text, proto)))


def _ip_version(ipv4: bool, ipv6: bool, parsed: list[Target]) -> int | None:
    """-4 or -6: names swept in that family only; an address of the other is refused."""
    from netdiag.errors import BadInput
    from netdiag.targets import AddressBlock

    if ipv4 and ipv6:
        raise BadInput("-4 and -6 exclude each other")
    version = 4 if ipv4 else 6 if ipv6 else None
    if version is not None:
        for target in parsed:
            if isinstance(target, AddressBlock) and target.version != version:
                raise BadInput(f"-{version}: {target.source} is an IPv{target.version} target")
    return version


def _required(text: str) -> int | None:
    """--require: how many hosts must answer for exit 0 (None: every one)."""
    from netdiag.errors import BadInput

    word = text.strip().lower()
    if word == "all":
        return None
    if word == "any":
        return 1
    if word.isascii() and word.isdigit() and int(word) <= 1 << 24:
        return int(word)
    raise BadInput(f"--require must be any, all or a number of hosts, not {text!r}")


def _listed(arguments: list[str], force: bool) -> list[Listed]:
    """The target arguments with @FILE and - read (bounded; --force allows more)."""
    from netdiag import targets

    limit = targets.MAX_LISTED if force else targets.MAX_ADDRESSES
    return targets.expand_arguments(arguments, _open_target_list, limit=limit)


def _open_target_list(argument: str) -> TextIO:
    return _open_list(argument, "target list")


def _open_list(argument: str, what: str) -> TextIO:
    """stdin (``-``) or the file (``@FILE``), read lazily; bytes that are not
    UTF-8 are kept apart (surrogates) so the parser refuses them, not the decoder."""
    from netdiag.errors import BadInput

    if argument == "-":
        return io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="surrogateescape")
    try:
        return open(argument[1:], encoding="utf-8", errors="surrogateescape")
    except OSError as exc:
        raise BadInput(f"cannot read {what} {visible(argument[1:])}: {exc.strerror}") from None


@app.command(epilog=PORT_EPILOG)
def port(
    ctx: typer.Context,
    targets: Annotated[
        list[str],
        typer.Argument(
            metavar="TARGET...",
            help="What sweep takes (addresses, CIDR, ranges, names, @FILE, -), and HOST:PORTS, [V6]:PORTS.",
            show_default=False,
        ),
    ],
    ports: Annotated[
        list[str] | None,
        typer.Option(
            "--port",
            "-p",
            metavar="PORTS",
            help="For targets without their own: 22,443 ssh 8000-8100 (default: 20 common).",
        ),
    ] = None,
    udp: Annotated[bool, typer.Option("--udp", "-u", help="UDP: silence is open|filtered, as nmap says.")] = False,
    timeout: Annotated[
        float, typer.Option("--timeout", "-t", metavar="SECONDS", help="Seconds each connect or datagram waits.")
    ] = 1.0,
    retries: Annotated[int, typer.Option("--retries", "-r", metavar="N", help="More tries for a silent pair.")] = 0,
    rate: RateOption = None,
    workers: Annotated[
        int | None, typer.Option("--workers", "-w", metavar="N", help="Sockets open at once, at most.")
    ] = None,
    banner: Annotated[
        bool, typer.Option("--banner", "-b", help="Read what an open port says first (256 bytes).")
    ] = False,
    send: Annotated[
        str | None,
        typer.Option("--send", metavar="TEXT", help="Send TEXT first (\\r \\n \\xHH escapes); UDP: the datagram."),
    ] = None,
    banner_timeout: Annotated[
        float, typer.Option("--banner-timeout", metavar="SECONDS", help="Seconds to wait for a banner.")
    ] = 1.0,
    tls: Annotated[bool, typer.Option("--tls", help="TLS handshake: version, certificate subject, expiry.")] = False,
    only_open: Annotated[bool, typer.Option("--open", help="Show only open ports.")] = False,
    grid: Annotated[bool, typer.Option("--grid", help="A host x port grid coloured by state.")] = False,
    ipv4: IPv4Option = False,
    ipv6: IPv6Option = False,
    force: Annotated[bool, typer.Option("--force", help="Allow more than 65,536 pairs.")] = False,
    json_output: JsonOption = False,
    jsonl: Annotated[bool, typer.Option("--jsonl", help="Stream one JSON line per pair as it settles.")] = False,
) -> int:
    """Is this port open on these hosts? Many host x port checks at once."""
    from netdiag import port as core
    from netdiag.errors import BadInput
    from netdiag.views import port as view
    from netdiag.views.sweep import progress_bar

    out = _output(ctx)
    out.choose(json=json_output, json_lines=jsonl)
    if ipv4 and ipv6:
        raise BadInput("-4 and -6 exclude each other")
    proto = "udp" if udp else "tcp"
    options = core.PortOptions(
        ports=_port_lists(ports, proto) if ports else None,
        proto=proto,
        timeout=timeout,
        retries=retries,
        rate=rate,
        workers=workers,
        banner=banner,
        send=None if send is None else core.payload_bytes(send),
        banner_timeout=banner_timeout,
        tls=tls,
        ip_version=4 if ipv4 else 6 if ipv6 else None,
    )
    options.validate()
    parsed = core.parse_port_targets(_listed(targets, force), options, force=force)
    if not parsed:
        raise BadInput("no targets given (the list was empty)")
    on_result = view.streamer(out, only_open) if jsonl else None
    with progress_bar(out, core.count_pairs(parsed, options), "checking", "open", "connects") as progress:
        report = core.run_ports(parsed, options, on_result=on_result, progress=progress, keep_results=not jsonl)
    layout = view.Layout(banner=options.reads_banner or (udp and (banner or send is not None)), tls=tls)
    view.show_report(out, report, layout, only_open=only_open, grid=grid)
    if report.summary.interrupted:
        return interrupts.exit_status()
    return ExitStatus.OK if report.summary.all_open else ExitStatus.NEGATIVE


@app.command(epilog=TELNET_EPILOG)
def telnet(
    ctx: typer.Context,
    host: Annotated[str, typer.Argument(help="Host name or address ([v6] allowed).", show_default=False)],
    port: Annotated[str, typer.Argument(help="Port number or service name (smtp, http).")] = "23",
    ipv4: Annotated[bool, typer.Option("-4", help="IPv4 addresses only.")] = False,
    ipv6: Annotated[bool, typer.Option("-6", help="IPv6 addresses only.")] = False,
    connect_timeout: Annotated[float, typer.Option("--connect-timeout", help="Seconds per address tried.")] = 10.0,
    raw: Annotated[bool, typer.Option("--raw", help="No telnet protocol: every byte as is.")] = False,
    force_telnet: Annotated[
        bool, typer.Option("--telnet", help="Telnet protocol even when piped to a port other than 23.")
    ] = False,
    char: Annotated[bool, typer.Option("--char", help="Character mode from the start.")] = False,
    crlf: Annotated[bool, typer.Option("--crlf", help="Send CR LF for each line end (SMTP, HTTP).")] = False,
    escape: Annotated[
        str,
        typer.Option(
            "--escape", "-e", metavar="KEY", help="Escape key for the netdiag> prompt: ^X, a character, or none."
        ),
    ] = "^]",
    hexdump: Annotated[bool, typer.Option("--hexdump", "-x", help="Show the traffic both ways as a hex dump.")] = False,
    tls: Annotated[bool, typer.Option("--tls", help="Wrap the connection in TLS.")] = False,
    insecure: Annotated[
        bool, typer.Option("--insecure", "-k", help="With --tls: do not verify the certificate.")
    ] = False,
    sni: Annotated[
        str | None, typer.Option("--sni", metavar="NAME", help="With --tls: server name to send and verify.")
    ] = None,
    idle_timeout: Annotated[
        float | None, typer.Option("--idle-timeout", help="Close after this many idle seconds.")
    ] = None,
    log: Annotated[
        str | None,
        typer.Option(
            "--log", metavar="FILE", help="Append a transcript to FILE: time, direction, the bytes as text or hex."
        ),
    ] = None,
    raw_terminal: Annotated[
        bool, typer.Option("--raw-terminal", help="Pass server control sequences to the terminal.")
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Connection messages even when piped.")] = False,
) -> int:
    """Interactive raw TCP client, telnet protocol aware; a byte-exact pipe when piped."""
    import socket as socket_module

    from netdiag.errors import BadInput
    from netdiag.ports import parse_port
    from netdiag.telnet.connection import check_host, check_server_name, open_connection
    from netdiag.telnet.session import Session, SessionOptions, Terminal
    from netdiag.views import telnet as view

    out = _output(ctx)
    if ipv4 and ipv6:
        raise BadInput("-4 and -6 exclude each other")
    if raw and force_telnet:
        raise BadInput("--raw and --telnet exclude each other")
    _check_timeout(connect_timeout, "--connect-timeout")
    if idle_timeout is not None:
        _check_timeout(idle_timeout, "--idle-timeout")
    port_number = parse_port(port)
    host, _ = check_host(host)
    if sni is not None:
        if not tls:
            raise BadInput("--sni goes with --tls")
        sni = check_server_name(sni)
    escape_key = _escape_key(escape)
    input_fd = sys.stdin.fileno()
    interactive = os.isatty(input_fd)
    protocol = not raw and (force_telnet or interactive or port_number == 23)
    talk = interactive or verbose
    log_file = _open_log(log)
    family = socket_module.AF_INET if ipv4 else socket_module.AF_INET6 if ipv6 else socket_module.AF_UNSPEC
    connection = open_connection(
        host,
        port_number,
        family=family,
        timeout=connect_timeout,
        tls=tls,
        insecure=insecure,
        server_name=sni,
        on_attempt=(lambda address: view.trying(out, address)) if talk else None,
    )
    if talk:
        view.connected(out, connection, escape_key, interactive)
    options = SessionOptions(
        protocol=protocol,
        interactive=interactive,
        char_mode=char,
        crlf=crlf,
        escape=escape_key,
        hexdump=hexdump,
        raw_terminal=raw_terminal,
        idle_timeout=idle_timeout,
        log=log_file,
    )
    terminal = Terminal(input_fd) if interactive else None
    previous_term = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        ui = view.TerminalUI(out, input_fd)
        result = Session(connection, input_fd, _binary(out.stdout), ui, options, terminal).run()
    finally:
        signal.signal(signal.SIGTERM, previous_term)
        if log_file is not None:
            log_file.close()
    return ExitStatus.OK if view.ended(out, result, idle_timeout, talk) else ExitStatus.NEGATIVE


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> NoReturn:
    raise SystemExit(128 + signum)  # unwinds through the session: the terminal is restored


def _binary(stream: IO[str]) -> BinaryIO:
    """The byte stream under a text stream: session bytes go out unchanged."""
    buffer: BinaryIO = getattr(stream, "buffer")  # noqa: B009 - IO[str] does not declare it; every real one has it
    return buffer


def _escape_key(text: str) -> int | None:
    from netdiag.errors import BadInput

    if text.lower() in ("none", "off", ""):
        return None
    if len(text) == 2 and text[0] == "^" and 0x3F <= ord(text[1].upper()) <= 0x5F:
        return ord(text[1].upper()) ^ 0x40  # ^] is 0x1d, ^? is DEL
    if len(text) == 1 and ord(text) < 0x80:
        return ord(text)
    raise BadInput(f"--escape {text!r}: give ^X (a control key), one ASCII character, or none")


def _open_log(path: str | None) -> BinaryIO | None:
    from netdiag.errors import BadInput

    if path is None:
        return None
    try:
        return open(path, "ab")  # closed when the session ends
    except OSError as exc:
        raise BadInput(f"--log {path}: {exc.strerror}") from None


@app.command(epilog=LISTEN_EPILOG)
def listen(
    ctx: typer.Context,
    port: Annotated[int, typer.Argument(help="Port to listen on; 0 picks a free one.")] = 0,
    host: Annotated[
        str, typer.Option("--host", "-H", metavar="ADDRESS", help="Address to bind (default: loopback only).")
    ] = "127.0.0.1",
    mode: Annotated[
        str,
        typer.Option(
            "--mode",
            "-m",
            metavar="[echo|discard|banner|lookup|show]",
            help="echo, discard, banner, lookup or show (print what clients send).",
        ),
    ] = "echo",
    banner: Annotated[
        str | None, typer.Option("--banner", "-b", metavar="TEXT", help="With --mode banner: the text to send.")
    ] = None,
    max_clients: Annotated[int, typer.Option("--max-clients", help="Refuse connections beyond this many.")] = 4096,
    max_per_source: Annotated[
        int, typer.Option("--max-per-source", help="Refuse connections beyond this many from one address.")
    ] = 256,
    idle_timeout: Annotated[
        float, typer.Option("--idle-timeout", help="Close clients idle this many seconds.")
    ] = 300.0,
    first_data_timeout: Annotated[
        float,
        typer.Option(
            "--first-data-timeout", help="Close clients that send nothing (lookup: no full line) in this many seconds."
        ),
    ] = 20.0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No line per connection.")] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Events as JSON lines on stdout.")] = False,
    hexdump: Annotated[
        bool, typer.Option("--hexdump", "-x", help="With --mode show: what clients send as a hex dump.")
    ] = False,
) -> int:
    """A test server for many clients at once: echo, discard, banner, lookup, or show what clients send."""
    from netdiag.listen import Listener, ListenOptions
    from netdiag.views import listen as view
    from netdiag.workers import EventWriter

    out = _output(ctx)
    out.choose(json_lines=json_output)  # --json here: a line per event, as they happen
    options = ListenOptions(
        host=host,
        port=port,
        mode=mode.lower(),
        banner=banner or "",
        max_clients=max_clients,
        max_per_source=max_per_source,
        idle_timeout=idle_timeout,
        first_data_timeout=first_data_timeout,
        hexdump=hexdump,
    )
    show = view.event_writer(out, options.mode, quiet=quiet, hexdump=hexdump)
    log = EventWriter(show, on_gone=lambda: listener.shutdown())  # noqa: PLW0108 - made just below
    listener = Listener(options, log.put)

    def on_sigterm(signum: int, frame: object) -> None:
        if listener.stop.is_set():  # a second SIGTERM: the way out is blocked (a full pipe)
            raise interrupts.Interrupted(signum)
        listener.shutdown()  # a clean stop: the summary, exit 0

    previous_term = None if interrupts.ignored(signal.SIGTERM) else signal.signal(signal.SIGTERM, on_sigterm)
    interrupted = False
    try:
        summary = listener.serve()
    except KeyboardInterrupt:
        interrupted = True
        summary = listener.summary
    finally:
        if previous_term is not None:
            signal.signal(signal.SIGTERM, previous_term)
    if not log.close(timeout=1.0):
        _discard_unwritten()  # the log's reader is stuck: end anyway
    if log.gone:  # `netdiag listen | head`: the reader left, as for every command
        _discard_unwritten()
        return ExitStatus.OK
    if log.dropped:
        out.warn(f"{view.plural(log.dropped, 'log event')} dropped: the log was not read fast enough")
    view.show_summary(out, summary, interrupted)
    if interrupted:
        return interrupts.exit_status()  # Ctrl-C 130, SIGHUP 129 (SIGTERM is a clean stop: 0)
    return ExitStatus.OK
