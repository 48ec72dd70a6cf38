"""The system ping engine: a queue of hosts feeding worker threads that each
run the system ``ping`` for one host.

At an interruption every ping still running gets SIGINT, as a terminal's
Ctrl-C would give it, so it prints the replies it had; they are kept, and
any ping still there after a moment is killed: no child outlives the sweep.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator

from netdiag import probes
from netdiag.errors import CannotRun, NetdiagError
from netdiag.limits import descriptors_left
from netdiag.sweep.engine import Emit, Engine, Progress
from netdiag.sweep.inflight import RETRY, Host, HostItem, Schedule, next_step
from netdiag.workers import spawn

DEFAULT_WORKERS = 64
DESCRIPTORS_PER_CHILD = 4  # its stdout and stderr pipes, both ends while it starts
SPARE_DESCRIPTORS = 16  # for everything else the process opens meanwhile
PARTIAL_RESULTS_WAIT_S = 1.0  # for interrupted pings to print what they had


def worker_limit(wanted: int) -> int:
    """As many workers as the descriptor limit leaves room for (``ulimit -n``)."""
    return min(wanted, descriptors_left(SPARE_DESCRIPTORS) // DESCRIPTORS_PER_CHILD)


class PingEngine(Engine):
    def run(self, hosts: Iterator[HostItem], emit: Emit, progress: Progress, stop: threading.Event) -> None:
        options = self.options
        workers = worker_limit(options.workers or DEFAULT_WORKERS)
        if workers == 0:
            raise CannotRun("--method ping: no file descriptors left for ping's pipes (see ulimit -n)")
        config = options.probe_config
        config.ping_arguments()  # both -S and -I: refused before anything runs
        if config.source or config.interface:  # ping would fail on each host: say it once, now
            config.check(6 if config.source and ":" in config.source else 4)
        todo: queue.Queue[Host | None] = queue.Queue(maxsize=workers * 2)  # None: stop
        finished: queue.Queue[Host | NetdiagError] = queue.Queue()
        children = probes.PingChildren()

        def work() -> None:
            while (host := todo.get()) is not None:
                try:
                    while True:
                        outcome = probes.system_ping(
                            host.address, host.version, options.timeout, options.count, options.interval,
                            children, config,
                        )  # fmt: skip
                        host.rtts.extend(outcome.rtts_ms)
                        host.replies = sum(r is not None for r in host.rtts)
                        host.reason = outcome.reason
                        if children.closed or next_step(host, len(host.rtts)) is not RETRY:
                            break
                    finished.put(host)
                except NetdiagError as exc:
                    finished.put(exc)

        started = sum(spawn(work, name="ping") is not None for _ in range(workers))
        if not started:
            raise CannotRun("--method ping: cannot start a thread (see ulimit -u and -v)")
        schedule = Schedule(hosts, options.retries)  # retries happen in the worker
        taken: set[Host] = set()  # queued or being pinged
        queued = 0
        try:
            while not stop.is_set():
                while self._may_send(now := time.monotonic_ns()) and (host := schedule.next(now)) is not None:
                    try:
                        todo.put_nowait(host)
                    except queue.Full:
                        schedule.refuse(host)
                        break
                    queued += 1
                    taken.add(host)
                    self._count_send(now)
                if not schedule.pending and self.done == queued:
                    break
                try:
                    pinged = finished.get(timeout=min(0.05, self._gap_ns / 1e9) if self._gap_ns else 0.05)
                except queue.Empty:
                    self._report(progress, time.monotonic_ns())
                    continue
                if isinstance(pinged, NetdiagError):
                    raise pinged
                taken.discard(pinged)
                self._finish(pinged, emit)
                self._report(progress, time.monotonic_ns())
        except KeyboardInterrupt:
            self.interrupted = True
        finally:
            self._wind_down(todo, finished, children, taken, started, emit)
        if stop.is_set() or self.interrupted:  # a ping still running is reported as it stands
            self._finish_unsettled(taken | schedule.waiting(), emit)
        self._report(progress, 0, force=True)

    def _wind_down(
        self,
        todo: queue.Queue[Host | None],
        finished: queue.Queue[Host | NetdiagError],
        children: probes.PingChildren,
        taken: set[Host],
        workers: int,
        emit: Emit,
    ) -> None:
        """Stop every worker and child; keep what interrupted pings had learned."""
        while True:  # hosts not yet started never will be
            try:
                todo.get_nowait()
            except queue.Empty:
                break
        for _ in range(workers):
            try:
                todo.put_nowait(None)
            except queue.Full:
                break
        if not taken:
            return
        children.interrupt()
        deadline = time.monotonic() + PARTIAL_RESULTS_WAIT_S
        while taken and (left := deadline - time.monotonic()) > 0:
            try:
                host = finished.get(timeout=left)
            except queue.Empty:
                break
            if not isinstance(host, NetdiagError) and host in taken:
                taken.discard(host)
                self._finish_unsettled({host}, emit)  # what its ping had when stopped
        children.kill()
