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

import enum
import functools
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from typing import Generic, Literal, TypeVar

from netdiag.errors import CannotRun

T = TypeVar("T")
R = TypeVar("R")
# A call's end: (True, what it returned) or (False, what it raised).
_Outcome = tuple[Literal[True], R] | tuple[Literal[False], BaseException]

STACK_SIZE = 512 * 1024  # glibc's resolver keeps its buffers under a quarter of the stack


class TimedOut:
    """Marker for a call that did not finish within its deadline."""

    def __init__(self, started: bool) -> None:
        self.started = started  # False: never begun, every thread was busy with stuck calls

    def __repr__(self) -> str:
        return "TIMED_OUT" if self.started else "NOT_STARTED"

    def reason(self, timeout: float) -> str:
        if self.started:
            return f"no answer within {timeout:g}s"
        return f"not asked within {timeout:g}s: every lookup thread was waiting for the resolver"


TIMED_OUT = TimedOut(started=True)
NOT_STARTED = TimedOut(started=False)


def spawn(target: Callable[..., object], *args: object, name: str | None = None) -> threading.Thread | None:
    """Start a daemon thread with a small stack; None if the system has no
    thread to give (RLIMIT_NPROC, RLIMIT_AS, memory)."""
    _small_stacks()
    thread = threading.Thread(target=target, args=args, name=name, daemon=True)
    try:
        thread.start()
    except RuntimeError:  # "can't start new thread"
        return None
    return thread


@functools.cache
def _small_stacks() -> None:
    threading.stack_size(STACK_SIZE)  # process-wide, for the threads made after: once is enough


def call_soon(fn: Callable[..., R], *args: object) -> Future[R]:
    """``fn(*args)`` on a thread of its own, as a Future; run here and now if
    no thread can be had."""
    future: Future[R] = Future()

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
    """Yield ``(item, fn(item))`` as calls finish; at ``timeout`` seconds after
    the start, TIMED_OUT for each call still running and NOT_STARTED for each
    item never begun: the whole batch has one deadline, so items queued
    behind stuck calls cannot stretch it. Exceptions from fn propagate; stuck
    calls are left to finish on their daemon thread. Memory: a Future only
    for the calls begun. CannotRun if not a single thread can be started."""
    deadline = time.monotonic() + timeout
    todo = list(items)
    feed: _Feed[T, R] = _Feed(todo)
    started = 0
    for _ in range(min(workers, len(todo))):
        if spawn(_work, fn, feed) is None:
            break
        started += 1
    if todo and not started:
        raise CannotRun("cannot start a thread (the system refused: see ulimit -u and -v)")
    done = 0
    try:
        while done < len(todo):
            left = deadline - time.monotonic()
            finished = feed.finished(timeout=max(left, 0))
            if finished is not None:
                done += 1
                yield finished
                continue
            for item in feed.running():
                done += 1
                yield item, TIMED_OUT
            for item in feed.close():
                done += 1
                yield item, NOT_STARTED
            return
    finally:
        feed.close()  # interrupted: queued calls never start


class _Feed(Generic[T, R]):
    """Items handed to workers one at a time, and their results back."""

    def __init__(self, items: list[T]) -> None:
        self._items = items
        self._next = 0
        self._lock = threading.Lock()
        self._running: dict[int, T] = {}
        self._results: queue.SimpleQueue[tuple[int, _Outcome[R]]] = queue.SimpleQueue()
        self._closed = False

    def take(self) -> tuple[int, T] | None:
        with self._lock:
            if self._closed or self._next >= len(self._items):
                return None
            index, self._next = self._next, self._next + 1
            self._running[index] = self._items[index]
            return index, self._items[index]

    def give(self, index: int, outcome: _Outcome[R]) -> None:
        self._results.put((index, outcome))

    def finished(self, timeout: float) -> tuple[T, R] | None:
        """The next finished ``(item, result)``; None if none by ``timeout``."""
        try:
            index, outcome = self._results.get(timeout=timeout) if timeout > 0 else self._results.get_nowait()
        except queue.Empty:
            return None
        with self._lock:
            item = self._running.pop(index)
        if not outcome[0]:
            raise outcome[1]
        return item, outcome[1]

    def running(self) -> list[T]:
        with self._lock:
            running, self._running = list(self._running.values()), {}
            return running

    def close(self) -> list[T]:
        """Stop handing out items; the ones never handed out."""
        with self._lock:
            self._closed = True
            rest, self._next = self._items[self._next :], len(self._items)
            return rest


def _work(fn: Callable[[T], R], feed: _Feed[T, R]) -> None:
    while (job := feed.take()) is not None:
        index, item = job
        try:
            feed.give(index, (True, fn(item)))
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
            feed.give(index, (False, exc))


class EventWriter(Generic[T]):
    """Events handed to ``write`` on a thread of their own, through a bounded
    queue: whoever produces them (a server's event loop) never waits for a
    slow reader of the output. Beyond ``limit`` waiting, events are dropped
    and counted."""

    def __init__(
        self, write: Callable[[T], object], limit: int = 10_000, on_gone: Callable[[], object] = lambda: None
    ) -> None:
        self._write = write
        self._on_gone = on_gone  # the output's reader left (EPIPE)
        self.gone = False
        self._queue: queue.Queue[T | _End] = queue.Queue(maxsize=limit)
        self.dropped = 0
        self._thread = spawn(self._run, name="log")

    def put(self, event: T) -> None:
        if self._thread is None:  # no thread to be had: write here
            self._write(event)
            return
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            self.dropped += 1

    def close(self, timeout: float) -> bool:
        """Write what is queued; False if that did not finish in ``timeout``."""
        if self._thread is None:
            return True
        try:
            self._queue.put(_End.END, timeout=timeout)
        except queue.Full:
            return False
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        while (event := self._queue.get()) is not _End.END:
            try:
                self._write(event)
            except BrokenPipeError:  # the reader is gone: nothing more can be written
                self.gone = True
                self._on_gone()
                while self._queue.get() is not _End.END:
                    pass  # keep taking events, so that nobody waits on a full queue
            except OSError:  # a full disk, no descriptor left: this event is lost, not the next
                self.dropped += 1


class _End(enum.Enum):
    """What ``close`` queues after the last event."""

    END = enum.auto()
