"""The sweep view: the fast JSON row encoder says exactly what the general one says;
statistics come from the model, once."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from netdiag.models import HostResult, HostState, RttStats
from netdiag.views import sweep as documents

RTT = st.none() | st.floats(min_value=0, max_value=60_000, allow_nan=False)
TEXT = st.none() | st.text(max_size=12)
RESULTS = st.builds(
    HostResult,
    address=st.ip_addresses().map(str) | st.text(min_size=1, max_size=20),  # unresolved rows carry the name
    state=st.sampled_from(HostState),
    rtts_ms=st.lists(RTT, max_size=3).map(tuple) | st.tuples(RTT),  # one probe: the fast path
    name=TEXT,
    reason=TEXT,
    mac=st.none() | st.just("02:1a:b0:00:00:0b"),
    vendor=TEXT,
    other_addresses=st.lists(st.ip_addresses(v=6).map(str), max_size=2).map(tuple),
    target=st.none() | st.text(max_size=20),
)


@given(RESULTS)
def test_the_fast_row_is_the_general_row_to_the_byte(result):
    general = json.dumps(documents.host_result_json(result), ensure_ascii=True, separators=(",", ":"))
    assert documents.host_result_line(result) == general


@given(st.lists(RESULTS, max_size=5))
def test_a_streamed_document_parses_to_the_same_rows(results):
    import io

    from netdiag.output import Output

    stdout = io.StringIO()
    Output(stdout, io.StringIO()).json_rows("results", map(documents.host_result_line, results), {"summary": {"n": 1}})
    document = json.loads(stdout.getvalue())
    assert document == {"results": [documents.host_result_json(r) for r in results], "summary": {"n": 1}}


@given(st.lists(RTT, max_size=8).map(tuple))
def test_statistics_agree_with_their_definitions(rtts):
    stats = RttStats.of(rtts)
    answered = [r for r in rtts if r is not None]
    assert (stats.sent, stats.received) == (len(rtts), len(answered))
    if not rtts:
        assert stats.loss is None
    else:
        assert abs(stats.loss - (len(rtts) - len(answered)) / len(rtts)) < 1e-12
    if answered:
        assert stats.min <= stats.avg <= stats.max
        assert stats.min in answered and stats.max in answered
    else:
        assert (stats.min, stats.avg, stats.max) == (None, None, None)
