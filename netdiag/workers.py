"""Blocking calls run concurrently, each with a deadline.

The resolver's C calls cannot be cancelled, so a stuck getaddrinfo must not
hold anything up: not the other lookups, and not interpreter exit. That rules
out ThreadPoolExecutor, whose (non-daemon) workers are joined at exit.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, wait
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


class TimedOut:
    """Marker for a call that did not finish within its deadline."""

    def __repr__(self) -> str:
        return "TIMED_OUT"


TIMED_OUT = TimedOut()


def iter_with_deadline(
    fn: Callable[[T], R], items: Iterable[T], timeout: float, workers: int = 32
) -> Iterator[tuple[T, R | TimedOut]]:
    """Yield ``(item, fn(item))`` as calls finish, or TIMED_OUT for any call
    still running ``timeout`` seconds after it started. Exceptions from fn
    propagate. Stuck calls are left to finish on their daemon thread."""
    tasks: queue.SimpleQueue = queue.SimpleQueue()
    started: dict[Future, float] = {}
    pending: dict[Future, T] = {}
    for item in items:
        future: Future = Future()
        pending[future] = item
        tasks.put((future, item))
    for _ in range(min(workers, len(pending))):
        threading.Thread(target=_work, args=(fn, tasks, started), daemon=True).start()
    try:
        while pending:
            done, _ = wait(pending, timeout=_next_expiry(started, pending, timeout), return_when=FIRST_COMPLETED)
            for future in done:
                yield pending.pop(future), future.result()
            now = time.monotonic()
            for future in [f for f in pending if f in started and now - started[f] >= timeout]:
                yield pending.pop(future), TIMED_OUT
    finally:
        for future in pending:  # interrupted: queued calls never start
            future.cancel()


def _next_expiry(started: dict[Future, float], pending: dict[Future, object], timeout: float) -> float:
    running = [started[f] for f in pending if f in started]
    if not running:
        return 0.05  # nothing started yet: look again shortly
    return max(0.0, min(running) + timeout - time.monotonic()) + 0.001


def _work(fn: Callable, tasks: queue.SimpleQueue, started: dict[Future, float]) -> None:
    while True:
        try:
            future, item = tasks.get_nowait()
        except queue.Empty:
            return
        if not future.set_running_or_notify_cancel():
            continue
        started[future] = time.monotonic()
        try:
            future.set_result(fn(item))
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
            future.set_exception(exc)
