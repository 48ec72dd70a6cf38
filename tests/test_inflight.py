"""The in-flight table, the retry decision and the neighbour budget, on a fake clock."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from netdiag.models import HostState
from netdiag.sweep.inflight import FINISH, RETRY, WAIT, Host, InFlight, NeighbourBudget, Schedule, next_step

MS = 1_000_000


def host(address: str = "192.0.2.1", retries: int = 0) -> Host:
    return Host(address, 4, None, 1, retries)


def sent(table: InFlight, h: Host, key, at: int) -> None:
    h.rtts.append(None)
    table.add(key, h, len(h.rtts) - 1, at, at)


def test_a_reply_in_time_records_its_rtt_and_leaves_the_table():
    table, h = InFlight(100 * MS), host()
    sent(table, h, ("192.0.2.1", 1), 10 * MS)
    assert table.answer(("192.0.2.1", 1), 12_500_000) is h
    assert h.rtts == [2.5] and h.replies == 1 and h.outstanding == 0
    assert len(table) == 0
    assert list(table.expire(1000 * MS)) == []  # its deadline passes without effect


def test_a_late_reply_does_not_count_and_the_probe_expires():
    table, h = InFlight(100 * MS), host()
    sent(table, h, "k", 0)
    assert table.answer("k", 101 * MS) is None  # arrived after its deadline
    assert h.replies == 0 and len(table) == 1
    assert list(table.expire(99 * MS)) == []
    assert list(table.expire(100 * MS)) == [("k", h)]
    assert h.outstanding == 0 and h.rtts == [None]


def test_unknown_and_duplicate_replies_are_ignored():
    table, h = InFlight(100 * MS), host()
    sent(table, h, "k", 0)
    assert table.answer("other", 1 * MS) is None
    assert table.answer("k", 1 * MS) is h
    assert table.answer("k", 2 * MS) is None
    assert h.replies == 1


def test_an_error_answer_takes_the_probe_without_an_rtt():
    table, h = InFlight(100 * MS), host()
    sent(table, h, "k", 0)
    assert table.take("k") is h and table.take("k") is None
    assert h.rtts == [None] and h.outstanding == 0


def test_expiry_is_in_send_order_and_the_next_deadline_is_the_oldest():
    table = InFlight(10 * MS)
    hosts = [host(f"192.0.2.{i}") for i in range(3)]
    for i, h in enumerate(hosts):
        sent(table, h, i, i * MS)
    assert table.next_deadline() == 10 * MS
    assert [h for _, h in table.expire(11 * MS)] == hosts[:2]
    assert table.hosts() == {hosts[2]}


def test_sequences_wrap_around_and_skip_probes_still_out():
    table, h = InFlight(10 * MS), host()
    table._sequence = 0xFFFE
    first = table.next_sequence(h.address)
    sent(table, h, (h.address, first), 0)
    assert first == 0xFFFF
    assert table.next_sequence(h.address) == 0  # wrapped
    table._sequence = 0xFFFE  # the next candidate is in flight for this address: skipped
    assert table.next_sequence(h.address) == 0
    assert table.next_sequence("192.0.2.99") == 1  # other addresses may reuse any number


@given(st.integers(min_value=1, max_value=300))
def test_a_sequence_is_never_reused_while_its_probe_is_out(probes):
    table, h = InFlight(10 * MS), host()
    table._sequence = 0xFFFF - probes // 2
    seen = set()
    for _ in range(probes):
        sequence = table.next_sequence(h.address)
        assert sequence not in seen and 0 <= sequence <= 0xFFFF
        seen.add(sequence)
        sent(table, h, (h.address, sequence), 0)


def test_the_retry_decision():
    h = host(retries=1)
    h.rtts.append(None)
    h.outstanding = 1
    assert next_step(h, count=1) is WAIT  # a probe is still out
    h.outstanding = 0
    assert next_step(h, count=2) is WAIT  # an echo request is still due
    assert next_step(h, count=1) is RETRY
    assert h.retries_left == 0
    assert next_step(h, count=1) is FINISH  # retries used up: down
    assert h.result().state is HostState.DOWN

    answered = host(retries=3)
    answered.rtts, answered.replies = [1.0], 1
    assert next_step(answered, count=1) is FINISH and answered.retries_left == 3

    refused = host(retries=3)
    refused.rtts, refused.reason = [None], "host unreachable"
    assert next_step(refused, count=1) is FINISH  # an error answer is final
    assert refused.result().state is HostState.UNREACHABLE


def test_neighbour_budget_holds_an_entry_for_each_address_for_the_resolution_time():
    budget = NeighbourBudget(capacity=16, hold_ns=3000 * MS)
    for _ in range(16):
        assert budget.free(0)
        budget.hold(0)
    assert not budget.free(2999 * MS)
    assert budget.next_release(0) == 3000 * MS
    assert budget.free(3000 * MS) and budget.next_release(3000 * MS) is None  # nothing held


def test_enobufs_limits_the_sweep_to_what_it_holds_for_one_resolution_time():
    budget = NeighbourBudget(capacity=100, hold_ns=10 * MS)
    for _ in range(50):
        budget.hold(0)
    budget.full(1 * MS)
    assert budget.capacity == 50 and not budget.free(2 * MS)
    assert budget.next_release(0) == 10 * MS  # the first of ours is freed
    assert budget.free(10 * MS) and budget.capacity == 50  # ours went; the others' entries may not have yet
    assert budget.free(11 * MS) and budget.capacity == 100  # one resolution time on: the whole table again
    budget.full(20 * MS)
    assert budget.capacity == NeighbourBudget.MINIMUM  # nothing held: never below the minimum


def items(n: int):
    return ((f"192.0.2.{i}", 4, None, i) for i in range(1, n + 1))


def test_the_schedule_gives_a_refused_host_first_then_due_follow_ups_then_new_hosts():
    schedule = Schedule(items(3), retries=1)
    first = schedule.next(0)
    assert (first.address, first.retries_left) == ("192.0.2.1", 1)
    schedule.later(first, 10 * MS)  # its next echo request
    second = schedule.next(1 * MS)
    assert second.address == "192.0.2.2"  # the follow-up is not due yet
    schedule.refuse(second)  # a full buffer: it goes first
    assert schedule.next(20 * MS) is second
    assert schedule.next(20 * MS) is first  # now due, before any new host
    assert schedule.next(20 * MS, admit_new=False) is None  # the neighbour table is full
    assert schedule.next(20 * MS).address == "192.0.2.3"
    assert schedule.ready  # the iterator has not said it is empty yet
    assert schedule.next(20 * MS) is None and schedule.exhausted and not schedule.pending


def test_an_interrupted_schedule_names_the_hosts_still_waiting():
    schedule = Schedule(items(2), retries=0)
    a, b = schedule.next(0), schedule.next(0)
    schedule.later(a, 5 * MS)
    schedule.refuse(b)
    assert schedule.waiting() == {a, b}
    assert schedule.next_due() == 5 * MS and schedule.pending


def test_a_reused_key_keeps_its_own_deadline():
    table, h = InFlight(10 * MS), host()
    sent(table, h, "k", 0)
    assert table.answer("k", 1 * MS) is h
    sent(table, h, "k", 5 * MS)  # the same key again (a wrapped sequence), due at 15 ms
    assert list(table.expire(10 * MS)) == []  # the first probe's deadline must not expire the second
    assert list(table.expire(15 * MS)) == [("k", h)]
