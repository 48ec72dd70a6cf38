import threading
import time

import pytest

from netdiag import workers
from netdiag.errors import CannotRun
from netdiag.workers import NOT_STARTED, TIMED_OUT, iter_with_deadline


def test_results_arrive_as_they_finish():
    order = [item for item, _ in iter_with_deadline(lambda d: time.sleep(d) or d, [0.3, 0.0, 0.15], 2)]
    assert order == [0.0, 0.15, 0.3]


def test_a_stuck_call_times_out_without_holding_the_others():
    release = threading.Event()
    start = time.monotonic()
    results = dict(iter_with_deadline(lambda x: release.wait() if x == "stuck" else x, ["stuck", "a", "b"], 0.3))
    elapsed = time.monotonic() - start
    release.set()
    assert results == {"a": "a", "b": "b", "stuck": TIMED_OUT}
    assert 0.3 <= elapsed < 1.0


def test_one_deadline_bounds_the_whole_batch():
    # one worker: each call starts only after the one before; the deadline is the batch's
    calls = [("quick", 0.05), ("slow", 0.6), ("never", 0.05)]
    start = time.monotonic()
    results = dict(iter_with_deadline(lambda call: time.sleep(call[1]) or call[0], calls, 0.3, workers=1))
    assert results == {("quick", 0.05): "quick", ("slow", 0.6): TIMED_OUT, ("never", 0.05): NOT_STARTED}
    assert time.monotonic() - start < 0.55  # the deadline (0.3 s), not the slow call (0.65 s)


def test_no_thread_to_be_had_is_cannot_run(monkeypatch):
    monkeypatch.setattr(workers, "spawn", lambda *args, **kwargs: None)
    with pytest.raises(CannotRun, match="cannot start a thread"):
        list(iter_with_deadline(str, [1, 2], 1))


def test_fewer_threads_than_asked_still_do_all_the_work(monkeypatch):
    real_spawn, started = workers.spawn, []

    def spawn_two(*args, **kwargs):
        if len(started) == 2:
            return None  # the system refuses a third
        started.append(real_spawn(*args, **kwargs))
        return started[-1]

    monkeypatch.setattr(workers, "spawn", spawn_two)
    assert dict(iter_with_deadline(str, range(10), 2, workers=8)) == {n: str(n) for n in range(10)}
    assert len(started) == 2


def test_exceptions_propagate():
    def boom(_):
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        list(iter_with_deadline(boom, [1], 1))


def test_event_writer_drops_and_counts_what_a_stalled_reader_cannot_take():
    release, written = threading.Event(), []

    def write(event):
        release.wait()  # the reader of the log is stuck
        written.append(event)

    writer = workers.EventWriter(write, limit=10)
    started = time.monotonic()
    for event in range(100):
        writer.put(event)  # never waits
    assert time.monotonic() - started < 0.5
    assert writer.dropped >= 89  # the queue holds 10, one may be in the writer's hands
    release.set()
    assert writer.close(timeout=2)
    assert written == sorted(written) and len(written) + writer.dropped == 100
