"""The system ping engine: a queue of hosts feeding worker threads that each
run the system ``ping`` for one host."""

from __future__ import annotations

import queue
import threading
import time

from netdiag import probes
from netdiag.errors import NetdiagError
from netdiag.sweep.engine import Engine
from netdiag.sweep.inflight import RETRY, Schedule, next_step

DEFAULT_WORKERS = 64


class PingEngine(Engine):
    def run(self, hosts, emit, progress, stop) -> None:
        options = self.options
        workers = options.workers or DEFAULT_WORKERS
        todo: queue.Queue = queue.Queue(maxsize=workers * 2)
        finished: queue.Queue = queue.Queue()

        def work() -> None:
            while (host := todo.get()) is not None:
                try:
                    while not stop.is_set():
                        outcome = probes.system_ping(
                            host.address, host.version, options.timeout, options.count, options.interval
                        )
                        host.rtts.extend(outcome.rtts_ms)
                        host.replies = sum(r is not None for r in host.rtts)
                        host.reason = outcome.reason
                        if next_step(host, len(host.rtts)) is not RETRY:
                            break
                    finished.put(host)
                except NetdiagError as exc:
                    finished.put(exc)

        threads = [threading.Thread(target=work, daemon=True) for _ in range(workers)]
        for thread in threads:
            thread.start()
        schedule = Schedule(hosts, options.retries)  # retries happen in the worker
        taken: set = set()  # queued or being pinged
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
                    host = finished.get(timeout=min(0.05, self._gap_ns / 1e9) if self._gap_ns else 0.05)
                except queue.Empty:
                    self._report(progress, time.monotonic_ns())
                    continue
                if isinstance(host, NetdiagError):
                    raise host
                taken.discard(host)
                self._finish(host, emit)
                self._report(progress, time.monotonic_ns())
        except KeyboardInterrupt:
            self.interrupted = True
        finally:
            while True:  # let idle workers go; busy ones are daemons
                try:
                    todo.get_nowait()
                except queue.Empty:
                    break
            for _ in threads:
                try:
                    todo.put_nowait(None)
                except queue.Full:
                    break
        if stop.is_set() or self.interrupted:  # a ping still running is reported as it stands
            self._finish_unsettled(taken | schedule.waiting(), emit)
        self._report(progress, 0, force=True)
