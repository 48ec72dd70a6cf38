"""Signals that end a run early: one path for Ctrl-C, SIGTERM and SIGHUP.

SIGTERM and SIGHUP raise Interrupted, a KeyboardInterrupt, in the main
thread, so the code that keeps partial results on Ctrl-C does the same for
them: progress bars stop and the terminal is restored on the way out,
children are reaped, and what was learned is printed. The exit status is
128 + the signal, as a shell reports a death by that signal.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

HANDLED = (signal.SIGTERM, signal.SIGHUP)


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGHUP, taken like Ctrl-C."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


_received = {"signum": int(signal.SIGINT)}  # the last one: what the exit status reports


def exit_status() -> int:
    """128 + the signal that interrupted this run (SIGINT: 130)."""
    return 128 + _received["signum"]


def received() -> bool:
    """Did a signal this module handles arrive during the run?"""
    return _received["signum"] != signal.SIGINT


def _raise(signum: int, frame: object) -> None:
    _received["signum"] = signum
    raise Interrupted(signum)


@contextmanager
def handled() -> Iterator[None]:
    """SIGTERM and SIGHUP raise Interrupted while inside; the previous
    handlers are back afterwards (netdiag may run inside another program)."""
    _received["signum"] = signal.SIGINT
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    # A signal the caller ignores stays ignored (nohup, trap '' TERM): as any program does.
    previous = {signum: signal.signal(signum, _raise) for signum in HANDLED if not ignored(signum)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def ignored(signum: int) -> bool:
    return signal.getsignal(signum) is signal.SIG_IGN
