"""Generated arguments through the CLI, in-process: whatever is typed, the
answer is an exit status netdiag documents, never an internal error, and a
refusal is one line on stderr.

Inside the lab only: a generated target or name that happens to be valid is
probed or looked up for real, and the lab has no route and no resolver
beyond itself.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netdiag.errors import TargetError
from netdiag.targets import parse_target

pytestmark = pytest.mark.lab

DOCUMENTED = {0, 1, 2, 3}

# Values people mistype and values that break parsers; valid ones keep a run short.
NUMBERS = st.sampled_from(
    [
        "nan",
        "inf",
        "-inf",
        "-1",
        "0",
        "-0",
        "1e-300",
        "1e309",
        "0x10",
        "",
        " ",
        "1,5",
        "²",
        "٣",
        "1_000",
        "+1",
        "0.2",
        "2",
    ]
)
TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40)
SWEEP_OPTIONS = {
    "-m": st.sampled_from(["auto", "arp", "icmp", "ping", "tcp", "ICMP", "", "x"]) | TEXT,
    "-t": NUMBERS,
    "-r": NUMBERS,
    "-c": NUMBERS,
    "-i": NUMBERS,
    "--rate": NUMBERS,
    "-w": NUMBERS,
    "-p": NUMBERS | TEXT,
    "-I": st.sampled_from(["lo", "lan0", "nope0", "x" * 300, ""]) | TEXT,
    "-S": st.sampled_from(["127.0.0.1", "::1", "198.18.0.1", "nope", "", "127.1"]) | TEXT,
}
TARGETS = st.sampled_from(["127.1.0.1", "127.2.0.1", "::1", "127.1.0.0/30", "127.1", "web.lab.test", "nope.lab.test"])


def check(result) -> None:
    assert result.status in DOCUMENTED, (result.status, result.stderr)
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr, result.stderr
    if result.status in (2, 3):
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    options=st.dictionaries(st.sampled_from(sorted(SWEEP_OPTIONS)), st.none(), max_size=4).flatmap(
        lambda chosen: st.fixed_dictionaries({key: SWEEP_OPTIONS[key] for key in chosen})
    ),
    targets=st.lists(TARGETS | TEXT, min_size=1, max_size=3),
)
def test_sweep_arguments(cli, options, targets):
    argv = ["sweep", "-n", "--json"]
    for key, value in options.items():
        argv += [f"{key}={value}" if key.startswith("--") else key, *([] if key.startswith("--") else [value])]
    check(cli(*argv, "--", *targets))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(queries=st.lists(TEXT | st.sampled_from(["::ffff:127.1.0.10", "fe80::1%" + "z" * 64, "faß.lab.test"]),
                        min_size=1, max_size=4),
       timeout=st.sampled_from(["1", "nan", "0", "-1", "1e309", "0.5", "x"]))  # fmt: skip
def test_dns_arguments(cli, queries, timeout):
    check(cli("dns", "--json", "-t", timeout, "--", *queries))


@given(TEXT)
def test_any_target_text_parses_or_is_refused_as_a_target(text):
    try:
        target = parse_target(text)
    except TargetError as exc:
        assert "\n" not in str(exc)
    else:
        assert target is not None
