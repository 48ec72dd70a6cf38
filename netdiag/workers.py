"""Blocking calls run concurrently under one deadline.

The resolver's C calls cannot be cancelled, so a stuck getaddrinfo must not
hold anything up: not the other lookups, and not interpreter exit. That rules
out ThreadPoolExecutor, whose (non-daemon) workers are joined at exit.

Threads get small stacks (``spawn``): a resolver call needs little, and with
the default 8 MiB each, a few dozen exhaust an address-space limit
(``prlimit --as``). When the system refuses a thread, the work goes on with
the threads it has; only when it has none is that an error.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, wait
from typing import TypeVar

from netdiag.errors import CannotRun

T = TypeVar("T")
R = TypeVar("R")

STACK_SIZE = 512 * 1024  # glibc's resolver keeps its buffers under a quarter of the stack


class TimedOut:
    """Marker for a call that did not finish within its deadline."""

    def __repr__(self) -> str:
        return "TIMED_OUT"


TIMED_OUT = TimedOut()


def spawn(target: Callable[..., object], *args: object, name: str | None = None) -> threading.Thread | None:
    """Start a daemon thread with a small stack; None if the system has no
    thread to give (RLIMIT_NPROC, RLIMIT_AS, memory)."""
    threading.stack_size(STACK_SIZE)
    thread = threading.Thread(target=target, args=args, name=name, daemon=True)
    try:
        thread.start()
    except RuntimeError:  # "can't start new thread"
        return None
    return thread


def call_soon(fn: Callable[..., R], *args: object) -> Future:
    """``fn(*args)`` on a thread of its own, as a Future; run here and now if
    no thread can be had."""
    future: Future = Future()

    def run() -> None:
        if future.set_running_or_notify_cancel():
            try:
                future.set_result(fn(*args))
            except BaseException as exc:  # noqa: BLE001 - handed to whoever waits
                future.set_exception(exc)

    if spawn(run) is None:
        run()
    return future


def iter_with_deadline(
    fn: Callable[[T], R], items: Iterable[T], timeout: float, workers: int = 64
) -> Iterator[tuple[T, R | TimedOut]]:
    """Yield ``(item, fn(item))`` as calls finish, and TIMED_OUT for every item
    not done ``timeout`` seconds after the start: the whole batch has one
    deadline, so items queued behind stuck calls cannot stretch it. Exceptions
    from fn propagate; stuck calls are left to finish on their daemon thread.
    CannotRun if not a single thread can be started."""
    deadline = time.monotonic() + timeout
    tasks: queue.SimpleQueue = queue.SimpleQueue()
    pending: dict[Future, T] = {}
    for item in items:
        future: Future = Future()
        pending[future] = item
        tasks.put((future, item))
    started = 0
    for _ in range(min(workers, len(pending))):
        if spawn(_work, fn, tasks) is None:
            break
        started += 1
    if pending and not started:
        raise CannotRun("cannot start a thread (the system refused: see ulimit -u and -v)")
    try:
        while pending:
            left = deadline - time.monotonic()
            if left <= 0:
                for future in list(pending):
                    future.cancel()  # queued calls never start
                    yield pending.pop(future), TIMED_OUT
                return
            done, _ = wait(pending, timeout=left, return_when=FIRST_COMPLETED)
            for future in done:
                yield pending.pop(future), future.result()
    finally:
        for future in pending:  # interrupted: queued calls never start
            future.cancel()


def _work(fn: Callable, tasks: queue.SimpleQueue) -> None:
    while True:
        try:
            future, item = tasks.get_nowait()
        except queue.Empty:
            return
        if not future.set_running_or_notify_cancel():
            continue
        try:
            future.set_result(fn(item))
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
            future.set_exception(exc)
