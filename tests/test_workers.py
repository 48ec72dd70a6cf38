import threading
import time

import pytest

from netdiag.workers import TIMED_OUT, iter_with_deadline


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


def test_deadline_counts_from_when_a_call_starts():
    # one worker: the second call starts only after the first; it still gets its full deadline
    calls = [("first", 0.2), ("second", 0.2)]
    results = dict(iter_with_deadline(lambda call: time.sleep(call[1]) or call[0], calls, 0.3, workers=1))
    assert results == {("first", 0.2): "first", ("second", 0.2): "second"}


def test_exceptions_propagate():
    def boom(_):
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        list(iter_with_deadline(boom, [1], 1))
