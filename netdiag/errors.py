"""One exception hierarchy: each error knows the exit status it maps to."""

from netdiag.status import ExitStatus


class NetdiagError(Exception):
    """Root of every error netdiag raises on purpose."""

    exit_status = ExitStatus.NEGATIVE


class BadInput(NetdiagError):
    """Arguments or input that netdiag cannot act on; nothing was sent."""

    exit_status = ExitStatus.BAD_INPUT


class TargetError(BadInput):
    """A target string that is not an address, network, range or hostname."""


class ResolveError(NetdiagError):
    """A name that did not resolve where an address was required."""


class ProbeError(NetdiagError):
    """A probe that could not even be attempted (not a negative answer)."""


class CannotRun(NetdiagError):
    """The machine refused what the command needs (a socket, a thread, a descriptor)."""

    exit_status = ExitStatus.CANNOT_RUN


class ProbePermissionError(CannotRun):
    """The process may not open the socket a probe method needs."""


class ConnectError(NetdiagError):
    """A TCP (or TLS) connection could not be made."""


class ConnectionRefused(ConnectError):
    pass


class ConnectTimeout(ConnectError):
    pass


class NetworkUnreachable(ConnectError):
    pass


class TlsError(ConnectError):
    pass
