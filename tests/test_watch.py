"""netdiag sweep --watch: the statistics and state changes as pure logic, then
real rounds in the lab: hosts toggled with nft for every method, the CLI's
streams and signals, and memory that stays flat round after round."""

from __future__ import annotations

import gc
import io
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
import tracemalloc

import pytest

from netdiag.models import HostResult, HostState
from netdiag.output import Output
from netdiag.sweep import SweepOptions
from netdiag.sweep.engine import NOT_SETTLED
from netdiag.sweep.watch import RECENT, HostWatch, Round, Watch, run_watch
from netdiag.targets import parse_targets
from netdiag.views import watch as views
from tests.conftest import TerminalStream
from tests.lab import netdiag_command

UP, DOWN, UNREACHABLE = HostState.UP, HostState.DOWN, HostState.UNREACHABLE

# --- pure: one host's statistics


def test_the_first_result_sets_the_state_and_is_no_change():
    host = HostWatch("192.0.2.1")
    assert host.record(DOWN, None, None, 100.0) is None
    assert (host.state, host.since, host.changes, host.changed_at) == (DOWN, 100.0, 0, None)
    assert host.outage_s(103.0) == 3.0  # down while watched: an outage from the first probe


def test_changes_and_outage_from_the_first_lost_round_to_the_first_answered():
    host = HostWatch("192.0.2.1", "web")
    probes = [(0, UP, None), (1, DOWN, None), (2, DOWN, None), (3, UNREACHABLE, "host unreachable"),
              (4, UP, None), (5, DOWN, None)]  # fmt: skip
    seen = [host.record(state, 0.5 if state is UP else None, reason, at) for at, state, reason in probes]
    changes = [c for c in seen if c is not None]
    assert [(c.previous, c.state, c.at, c.lasted_s) for c in changes] == [
        (UP, DOWN, 1, 1),
        (DOWN, UNREACHABLE, 3, 2),  # still one outage: down and unreachable are both not up
        (UNREACHABLE, UP, 4, 1),
        (UP, DOWN, 5, 1),
    ]
    assert changes[1].reason == "host unreachable" and changes[0].name == "web"
    assert (host.changes, host.changed_at, host.since) == (4, 5, 5)
    assert host.outage_closed_s == 3  # rounds 1 to 4
    assert host.outage_s(7.5) == 3 + 2.5  # and the one still going on


def test_loss_and_rtts_are_running_totals():
    host = HostWatch("192.0.2.1")
    for at, rtt in enumerate([2.0, None, 0.5, 4.0, None, 1.5]):
        host.record(UP if rtt is not None else DOWN, rtt, None, at)
    assert (host.sent, host.received, host.loss) == (6, 4, pytest.approx(2 / 6))
    assert (host.rtt_min, host.rtt_avg, host.rtt_max) == (0.5, 2.0, 4.0)
    assert host.last_rtt == 1.5
    host.record(DOWN, None, None, 9)
    assert host.last_rtt is None  # the last probe got nothing: no last RTT shown
    assert HostWatch("192.0.2.2").loss is None


def test_an_answer_without_an_rtt_counts_as_received_but_not_in_the_rtt_statistics():
    host = HostWatch("198.18.0.1")  # ARP reports our own address up without a probe
    host.record(UP, None, None, 0)
    host.record(UP, 3.0, None, 1)
    assert (host.received, host.loss, host.rtt_min, host.rtt_avg) == (2, 0.0, 3.0, 3.0)


def test_the_recent_ring_keeps_the_last_probes_in_order():
    host = HostWatch("192.0.2.1")
    assert host.recent() == []
    rtts = [None if n % 4 == 0 else float(n) for n in range(RECENT + 7)]
    for at, rtt in enumerate(rtts):
        host.record(DOWN if rtt is None else UP, rtt, None, at)
        assert host.recent() == rtts[: at + 1][-RECENT:]
    assert len(host._ring) == RECENT


def test_a_host_costs_the_same_memory_after_thousands_of_probes():
    hosts = [HostWatch(f"192.0.2.{n}") for n in range(1, 21)]

    def probe(rounds: range) -> int:
        for at in rounds:
            for host in hosts:  # flapping, with RTTs: every counter and the ring move
                up = (at + len(host.address)) % 3 != 0
                host.record(UP if up else DOWN, 0.1 + at % 7 if up else None, None, float(at))
        gc.collect()
        return tracemalloc.get_traced_memory()[0]

    tracemalloc.start()
    try:
        before = probe(range(800))  # every counter past 256: out of the small-int cache, an object each
        grown = probe(range(800, 3800)) - before
    finally:
        tracemalloc.stop()
    # One object kept per probe would be 20 x 3,000 x 32 bytes, 1.9 MB.
    assert grown < 1024, f"{grown} bytes more for 20 hosts after 3,000 more probes each"


# --- pure: a round's results folded in


def make_watch(*addresses: str) -> Watch:
    return Watch({a: HostWatch(a) for a in addresses}, [], 1.0)


def test_hosts_an_interruption_caught_in_flight_are_no_observation():
    watch = make_watch("192.0.2.1", "192.0.2.2", "192.0.2.3")
    results = (
        HostResult("192.0.2.1", UP, (0.4,)),
        HostResult("192.0.2.2", DOWN, (None,), reason=NOT_SETTLED),
        HostResult("192.0.2.3", DOWN, (None,)),
    )
    done = Round(1, 10.0)
    watch.apply(results, done)
    assert [host.address for host, _ in done.probes] == ["192.0.2.1", "192.0.2.3"]
    assert [h.sent for h in watch.hosts.values()] == [1, 0, 1] and done.changes == []
    assert watch.hosts["192.0.2.2"].state is None and watch.rounds == 1


def test_a_round_that_could_not_run_counts_every_probe_lost():
    watch = make_watch("192.0.2.1", "192.0.2.2")
    watch.apply((HostResult("192.0.2.1", UP, (0.4,)), HostResult("192.0.2.2", DOWN, (None,))), Round(1, 0.0))
    done = Round(2, 1.0)
    watch.apply(watch.lost("sending ARP on lan0: network is down"), done)
    assert [(c.address, c.previous, c.state) for c in done.changes] == [
        ("192.0.2.1", UP, UNREACHABLE),
        ("192.0.2.2", DOWN, UNREACHABLE),
    ]
    assert all(h.sent == 2 and h.reason == "sending ARP on lan0: network is down" for h in watch.hosts.values())


def test_a_signal_while_a_round_is_folded_in_waits_for_the_whole_round():
    watch = make_watch(*(f"192.0.2.{n}" for n in range(1, 101)))

    def results():
        for n, address in enumerate(watch.hosts, 1):
            if n == 50:  # halfway: as a Ctrl-C would come
                signal.raise_signal(signal.SIGINT)
            yield HostResult(address, UP, (0.1,))

    done = Round(1, 0.0)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # even where SIGINT came ignored
    try:
        with pytest.raises(KeyboardInterrupt):
            watch.apply(results(), done)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert len(done.probes) == 100 and all(h.sent == 1 for h in watch.hosts.values()) and watch.rounds == 1


# --- pure: what is shown


def test_the_sparkline_is_a_log_scale_and_shows_lost_probes():
    assert views.sparkline([0.05, 0.2, 0.5, 2, 5, 20, 50, 500, None]) == "▁▂▃▄▅▆▇█·"
    assert views.sparkline([0.1, 0.0999]) == "▂▁"  # each bound starts the next level


@pytest.mark.parametrize(
    ("seconds", "text"), [(0, "0.0s"), (0.44, "0.4s"), (42.9, "42s"), (185, "3m05s"), (7620, "2h07m")]
)
def test_durations(seconds, text):
    assert views.duration(seconds) == text


@pytest.mark.parametrize(
    ("fraction", "text"), [(None, ""), (0.0, "0%"), (0.004, "<1%"), (0.5, "50%"), (0.996, ">99%"), (1.0, "100%")]
)
def test_loss_never_rounds_to_none_or_all(fraction, text):
    assert views.percent(fraction) == text


def test_a_crowded_screen_keeps_hosts_not_up_or_changed_lately_in_address_order():
    hosts = [HostWatch(f"192.0.2.{n}") for n in range(1, 11)]
    for host in hosts:
        host.record(UP, 1.0, None, 0.0)
    hosts[7].record(DOWN, None, None, 100.0)  # down
    hosts[2].record(DOWN, None, None, 100.0)
    hosts[2].record(UP, 1.0, None, 150.0)  # back up 10 s before now: still worth a look
    hosts[5].record(DOWN, None, None, 20.0)
    hosts[5].record(UP, 1.0, None, 30.0)  # back up long ago
    shown, hidden = views.rows_to_show(hosts, 4, now=160.0)
    assert [h.address for h in shown] == ["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.8"]
    assert hidden == 6
    assert views.rows_to_show(hosts, 10, now=160.0) == (hosts, 0)


def test_a_narrow_terminal_cuts_the_name_then_leaves_columns_out_but_never_cuts_an_address():
    widths = [11, 30, 6, 4, 17, 20, 8, 6, 20]  # address, state, rtt, loss, spread, recent, changed, outage, name
    assert views.fit_live(widths, 200) == dict(enumerate(widths))
    assert views.fit_live(widths, 140) == dict(enumerate(widths)) | {8: 14}  # 146 wide: the name 6 shorter
    # at 100: name and spread left out, the room they leave back to the state's reason
    assert views.fit_live(widths, 100) == {0: 11, 1: 27, 2: 6, 3: 4, 5: 20, 6: 8, 7: 6}
    assert views.fit_live(widths, 40) == {0: 11, 1: 17, 2: 6}
    assert views.fit_live(widths, 10) == {0: 11, 1: 11}  # address and state stay, whatever it costs


def test_untrusted_names_and_reasons_are_shown_escaped():
    host = HostWatch("192.0.2.1", "evil\x1b[2J\u202ename")
    host.record(UP, 1.0, None, 0.0)
    change = host.record(UNREACHABLE, None, "bad\rreason", 3.0)
    line = views.change_line(change)
    assert "\x1b" not in line and "\\e[2J\\u202ename" in line and "bad\\rreason" in line
    assert line.endswith("192.0.2.1 (evil\\e[2J\\u202ename)  up -> unreachable (bad\\rreason) after 3.0s")
    watch = Watch({host.address: host}, [], 1.0, started=0.0, ended=4.0)
    plain = "".join(" ".join(row) for row in views.summary_rows(watch)[1])
    assert "\x1b" not in plain and "\u202e" not in plain


def test_json_events_and_the_summary_document():
    host = HostWatch("192.0.2.1", "web")
    host.record(UP, 0.25, None, 1000.0)
    change = host.record(DOWN, None, None, 1001.0)
    assert views.change_event(change, 2) == {
        "event": "change", "time": 1001.0, "round": 2, "address": "192.0.2.1", "name": "web",
        "from": "up", "to": "down", "reason": None, "lasted_s": 1.0,
    }  # fmt: skip
    probe = views.probe_event(HostResult("192.0.2.1", DOWN, (None,)), 2, 1001.0)
    assert probe == {"event": "probe", "time": 1001.0, "round": 2, "address": "192.0.2.1", "state": "down",
                     "rtt_ms": None, "reason": None}  # fmt: skip
    watch = Watch({host.address: host}, [], 1.0, started=1000.0, ended=1003.5, rounds=2, interrupted=True)
    document = json.loads(json.dumps(views.summary_document(watch)))
    assert document["hosts"][0] | {"recent_rtts_ms": None} == {
        "address": "192.0.2.1", "name": "web", "state": "down", "reason": None, "sent": 2, "received": 1,
        "loss": 0.5, "rtt_last_ms": None, "rtt_min_ms": 0.25, "rtt_avg_ms": 0.25, "rtt_max_ms": 0.25,
        "recent_rtts_ms": None, "outage_s": 2.5, "changes": 1, "last_change": 1001.0, "since": 1001.0,
    }  # fmt: skip
    assert document["hosts"][0]["recent_rtts_ms"] == [0.25, None]
    assert document["summary"] | {"notes": []} == {
        "rounds": 2, "interval_s": 1.0, "started": 1000.0, "elapsed_s": 3.5, "hosts": 1, "up": 0, "down": 1,
        "unreachable": 0, "unresolved": 0, "changes": 1, "probes_sent": 2, "method": "none", "method_reason": "",
        "notes": [], "interrupted": True,
    }  # fmt: skip


# --- refused before anything is sent


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-c", "3"], "--count"),
        (["-r", "1"], "--retries"),
        (["--alive"], "--alive"),
        (["--map"], "--map"),
        (["--json", "--jsonl"], "pick one"),
        (["ff02::1%lo"], "ff02::1%IFACE"),
    ],
)
def test_watch_refuses_what_it_cannot_keep(cli, args, message):
    result = cli("sweep", "--watch", *args, "192.0.2.1")
    assert result.status == 2, result.stderr
    assert message in result.stderr and result.stdout == ""


# --- in the lab: real rounds


class Drop:
    """An nft rule that drops some probes, in a table of our own (in the lab,
    or in one of its peers' namespaces); on() and off() may be called again."""

    def __init__(self, rule: str, family: str = "inet", namespace: str | None = None) -> None:
        self.rule, self.family = rule, family
        self.prefix = ["ip", "netns", "exec", namespace] if namespace else []
        self.active = False

    def _nft(self, command: str) -> None:
        subprocess.run([*self.prefix, "nft", command], check=True)

    def on(self) -> None:
        if not self.active:
            table = f"{self.family} watchtest"
            self._nft(f"add table {table}")
            self._nft(f"add chain {table} input {{ type filter hook input priority -10; policy accept; }}")
            self._nft(f"add rule {table} input {self.rule}")
            self.active = True

    def off(self) -> None:
        if self.active:
            self._nft(f"delete table {self.family} watchtest")
            self.active = False


TOGGLED = {  # method → (targets, the host toggled, the rule that silences it)
    "icmp": ("127.1.222.1-3", "127.1.222.2", Drop("ip daddr 127.1.222.2 drop")),
    "tcp": ("127.1.222.1-3", "127.1.222.2", Drop("ip daddr 127.1.222.2 drop")),
    # ARP requests leave from a packet socket, past our own firewall: the peer stops answering
    "arp": ("198.18.0.76-78", "198.18.0.77", Drop("arp daddr ip 198.18.0.77 drop", "arp", "lan-a")),
}


@pytest.mark.lab
@pytest.mark.parametrize("method", TOGGLED)
def test_a_host_silenced_for_three_rounds_is_one_outage_of_three_rounds(method):
    targets, toggled, drop = TOGGLED[method]
    period = 0.1
    rounds = []

    def toggle(watch, done):
        rounds.append(done)
        if done.number == 3:
            drop.on()  # rounds 4, 5 and 6 go unanswered
        elif done.number == 6:
            drop.off()

    try:
        options = SweepOptions(method=method, timeout=0.1, names=False)  # a loaded machine answers in time
        watch = run_watch(parse_targets([targets]), options, period, toggle, rounds=8)
    finally:
        drop.off()
    host = watch.hosts[toggled]
    changes = [(done.number, c.address, c.previous, c.state) for done in rounds for c in done.changes]
    assert changes == [(4, toggled, UP, DOWN), (7, toggled, DOWN, UP)]
    assert (host.sent, host.received, host.changes, host.state) == (8, 5, 2, UP)
    assert host.outage_s(math.inf) == pytest.approx(rounds[6].started - rounds[3].started)
    assert host.outage_s(0) >= 3 * period * 0.99  # rounds start every period, or later
    assert [h.loss for address, h in watch.hosts.items() if address != toggled] == [0.0, 0.0]
    assert host.recent()[3:6] == [None, None, None] and None not in host.recent()[6:]
    assert watch.method.startswith(method)


def start_watch(*args: str) -> subprocess.Popen:
    return subprocess.Popen(netdiag_command("sweep", "--watch", *args), stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.mark.lab
def test_jsonl_streams_every_probe_then_the_summary_on_ctrl_c():
    process = start_watch("--jsonl", "-i", "0.05", "-t", "0.2", "127.3.0.0/28", "127.1.0.0/28")
    events = []
    for line in process.stdout:  # each line as it is made: interrupted once five rounds are in
        events.append(json.loads(line))
        if events[-1]["round"] == 6:
            process.send_signal(signal.SIGINT)
            break
    events += [json.loads(line) for line in process.stdout]  # read on from the same buffer
    stderr = process.stderr.read()
    process.wait(20)
    assert process.returncode == 130, stderr
    assert b"watching 28 hosts" in stderr and b"Traceback" not in stderr
    *probes, summary = events
    assert {e["event"] for e in probes} == {"probe"}  # nothing changed
    assert summary["event"] == "summary" and summary["summary"]["interrupted"] is True
    for number in range(1, 6):
        states = {e["address"]: e["state"] for e in probes if e["round"] == number}
        assert len(states) == 28
        for address, state in states.items():
            silent = address.startswith("127.3.") and int(address.rsplit(".", 1)[1]) % 2 == 1
            assert state == ("down" if silent else "up"), (number, address)
    assert all((e["rtt_ms"] is None) == (e["state"] == "down") for e in probes)
    hosts = {h["address"]: h for h in summary["hosts"]}
    assert len(hosts) == 28 and summary["summary"]["up"] == 21 and summary["summary"]["rounds"] >= 6
    assert hosts["127.3.0.3"]["loss"] == 1.0 and hosts["127.3.0.3"]["outage_s"] > 0
    assert hosts["127.3.0.4"]["loss"] == 0.0 and hosts["127.3.0.4"]["outage_s"] == 0
    assert sum(h["sent"] for h in hosts.values()) == summary["summary"]["probes_sent"] == len(probes)


@pytest.mark.lab
def test_piped_it_prints_a_line_per_change_then_the_summary_columns_on_sigterm():
    drop = Drop("ip daddr 127.1.223.2 icmp type echo-request drop")
    process = start_watch("-n", "-i", "0.05", "-t", "0.2", "127.1.223.1-3")
    try:
        assert b"watching 3 hosts every 0.05s via icmp" in process.stderr.readline()  # after the first round
        drop.on()
        went = process.stdout.readline().decode()
        drop.off()
        came = process.stdout.readline().decode()
    finally:
        drop.off()
        process.send_signal(signal.SIGTERM)
    rest, stderr = process.communicate(timeout=20)
    assert process.returncode == 143, stderr
    assert "  127.1.223.2  up -> down after " in went and "  127.1.223.2  down -> up after " in came
    table = rest.decode().splitlines()
    assert table[0].split() == [*views.SUMMARY_HEADERS, "NAME"]
    rows = {row.split()[0]: row.split() for row in table[1:]}
    assert set(rows) == {"127.1.223.1", "127.1.223.2", "127.1.223.3"}
    assert rows["127.1.223.2"][1] == "up" and rows["127.1.223.2"][7] == "2"  # STATE, CHANGES
    assert rows["127.1.223.2"][6] != "-" and rows["127.1.223.1"][6] == "-"  # OUTAGE
    assert rows["127.1.223.1"][4] == "0%" and rows["127.1.223.2"][4] != "0%"  # LOSS


@pytest.mark.lab
def test_json_prints_the_summary_document_and_rounds_are_a_second_apart_by_default():
    process = start_watch("--json", "-n", "-t", "0.1", "127.3.0.1-2")
    assert b"watching 2 hosts every 1s" in process.stderr.readline()  # the first round is in
    time.sleep(1.3)  # the second begins a second after the first
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=20)
    assert process.returncode == 143, stderr
    document = json.loads(stdout)
    assert document["summary"]["interval_s"] == 1.0 and 2 <= document["summary"]["rounds"] <= 3
    assert [(h["address"], h["loss"]) for h in document["hosts"]] == [("127.3.0.1", 1.0), ("127.3.0.2", 0.0)]


@pytest.mark.lab
def test_on_a_terminal_the_table_is_redrawn_each_round_and_changes_print_above_it(monkeypatch):
    monkeypatch.setenv("COLUMNS", "160")
    stdout, stderr = TerminalStream(), TerminalStream()
    out = Output(stdout, stderr)
    display = views.display_for(out, 0.05)
    drop = Drop("ip daddr 127.1.224.2 icmp type echo-request drop")

    def show(watch, done):
        display.round(watch, done)
        if done.number == 1:
            drop.on()

    try:
        watch = run_watch(parse_targets(["127.1.224.1-2"]), SweepOptions(timeout=0.2, names=False), 0.05, show,
                          rounds=3, on_start=display.start)  # fmt: skip
    finally:
        drop.off()
        display.stop()
    display.finish(watch)
    screen = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", stdout.getvalue())  # what the terminal shows, uncoloured
    assert "round 3 · every 0.05s · 1/2 up · 1 state change · icmp (raw socket)" in screen
    assert "127.1.224.2  up -> down after" in screen  # above the table: stderr is that terminal too
    assert "┃ Address" in screen and "Received" in screen  # then the boxed summary
    assert "1/2 hosts up at the end; 3 rounds" in stderr.getvalue()


class Sink(io.TextIOBase):
    """A reader that keeps up and forgets: output at full cost, none of it kept."""

    def __init__(self, terminal: bool) -> None:
        super().__init__()
        self.terminal = terminal

    def isatty(self) -> bool:
        return self.terminal

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        return len(text)


def forget_rich_caches() -> None:
    """rich keeps bounded caches of what it measured (up to 16,384 entries):
    emptied before each sample, so that a fuller cache is not taken for a leak."""
    for name, module in list(sys.modules.items()):
        if name == "rich" or name.startswith("rich."):
            for value in list(vars(module).values()):
                for candidate in [value, *(vars(value).values() if isinstance(value, type) else ())]:
                    if hasattr(candidate, "cache_clear"):
                        candidate.cache_clear()


@pytest.mark.lab
@pytest.mark.parametrize("shown", ["live table", "jsonl"])
def test_memory_stays_flat_round_after_round_on_a_slash_24(shown, monkeypatch):
    monkeypatch.setenv("LINES", "12")
    terminal = shown == "live table"
    out = Output(Sink(terminal), Sink(terminal))
    out.choose(json_lines=not terminal)
    display = views.display_for(out, 0.0)
    blocks, rss = [], []

    def sample(watch, done):
        display.round(watch, done)
        if done.number in (20, 250):  # counters stay under 256: small ints, no object of their own
            forget_rich_caches()
            gc.collect()
            blocks.append(sys.getallocatedblocks())  # every live object, exactly (tracemalloc misses free lists)
            with open("/proc/self/statm") as statm:
                rss.append(int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE"))

    # 127.3/24: half the hosts never answer, so every round waits out its timeout
    options = SweepOptions(timeout=0.005, names=False)
    try:
        watch = run_watch(parse_targets(["127.3.0.0/24"]), options, 0.0, sample, rounds=250, on_start=display.start)
    finally:
        display.stop()
    assert all(h.sent == 250 for h in watch.hosts.values())
    # A host whose state first changes (a reply late on a loaded machine) keeps
    # a float or two for its times; anything kept per probe would be 230 a host.
    changed = sum(1 for h in watch.hosts.values() if h.changes)
    grown = blocks[1] - blocks[0]
    assert grown < 64 + 3 * changed, f"{grown} more objects after 230 more rounds ({changed} hosts changed)"
    assert rss[1] - rss[0] < 512 * 1024
