"""`netdiag service` against `getent services`, the reference, key by key.

Every name, alias and port of a services database, alone and with each
protocol of the database, goes through `netdiag service --json` and
`getent services`, thousands of keys per process: both must give the same
entry or both none, and a key without a protocol gets getent's entry first,
then getent's entry for each other protocol that has one. Once with the
system's database, once with an adversarial one bind-mounted over
/etc/services in a private mount namespace (the lab's nsswitch.conf has
`services: files`, and the test checks the file is what getent reads).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.lab

Entry = tuple[str, int, str, tuple[str, ...]]  # name, port, protocol, aliases

# Each line is there for a reason: see the comment after it.
ADVERSARIAL = """\
# a comment line, then a blank one

foo\t\t1234/tcp
bar 1234/tcp baralias\tfoo2   # a second service on foo's port; trailing comment
gamma 3000/tcp g1
gamma 3001/tcp g2
gamma 3000/udp g3
upper 5000/TCP UP
upper 5000/tcp
amqp 5672/sctp
amqp 5672/tcp
rtmp 1/ddp
nbp 2/ddp
zero 0/tcp nil
top 65535/udp max
wrap 70000/tcp
hexa 0x50/tcp
slash 7777/tc/p
noproto 7778
1234 4321/tcp digits
collide 4000/tcp gamma foo
   leading 4001/tcp\t
junk 4002/tcp a b c d e f g h i j k l m n o p q r s t u v w x y z
dup 4003/tcp
dup 4003/tcp
x 4004/udp#comment without a space
long-name-longer-than-getent-pads-its-column 4005/tcp
0 4006/tcp
CaseName 4007/tcp casealias
semi 4008/tcp;junk
many 4009/tcp {}
""".format(" ".join(f"many-alias-{i:03}" for i in range(200)))
# foo/bar: two services on one port; gamma: one name on three lines, the
# aliases must be the matched line's; upper: protocols are case-sensitive;
# sctp, ddp: protocols other than tcp/udp; zero, top: the end ports; wrap,
# hexa, slash, noproto, semi: what glibc makes of odd port/protocol fields
# (70000 wraps to 4464, 0x50 is 80, 'tc/p', '' and 'tcp;junk' are protocols);
# 1234 and 0: names that getent reads as ports; collide: aliases that are
# other services' names; dup: a line twice; CaseName: names are case-sensitive;
# many: an entry longer than netdiag's first buffer for it.


def in_namespace(services_file: Path | None) -> list[str]:
    """Command prefix: the command sees services_file as /etc/services (None: the system's)."""
    if services_file is None:
        return []
    return ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
            f'mount --bind "{services_file}" /etc/services && exec "$@"', "sh"]  # fmt: skip


def run(command: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def parse_getent_line(line: str) -> Entry:
    name, port_protocol, *aliases = line.split()
    port, _, protocol = port_protocol.partition("/")
    return name, int(port), protocol, tuple(aliases)


def getent_entries(prefix: list[str]) -> list[Entry]:
    result = run([*prefix, "getent", "services"])
    assert result.returncode == 0, result.stderr
    return [parse_getent_line(line) for line in result.stdout.splitlines()]


def answers_key(entry: Entry, key: str) -> bool:
    """Could getent have printed this entry for this key? (its rules: split at
    the first '/', digits up to 65535 are a port, everything compared exactly)"""
    name, port, protocol, aliases = entry
    what, slash, wanted = key.partition("/")
    if slash and protocol != wanted:
        return False
    if what.isascii() and what.isdigit() and int(what) <= 65535:
        return port == int(what)
    return what in (name, *aliases)


def getent_answers(prefix: list[str], keys: list[str]) -> dict[str, Entry | None]:
    """getent's entry for each key, or None. getent prints nothing for a key it
    does not find; a line goes to the first key still waiting that it can answer
    (an entry that answers a key means getent finds that key)."""
    result = run([*prefix, "getent", "services", "--", *keys])
    lines = iter(result.stdout.splitlines())
    pending = next(lines, None)
    answers: dict[str, Entry | None] = {}
    for key in keys:
        answers[key] = None
        if pending is not None and answers_key(entry := parse_getent_line(pending), key):
            answers[key] = entry
            pending = next(lines, None)
    assert pending is None, f"getent printed a line for no key: {pending!r}"
    assert result.returncode == (0 if all(answers.values()) else 2), result.stderr
    return answers


def keys_and_protocols(entries: list[Entry]) -> tuple[list[str], list[str]]:
    """Every name, alias and port, alone and with each protocol; the protocols in netdiag's order."""
    protocols = list(dict.fromkeys(["tcp", "udp", *(protocol for _, _, protocol, _ in entries)]))
    bases = list(dict.fromkeys(text for name, port, _, aliases in entries for text in (name, *aliases, str(port))))
    return [*bases, *(f"{base}/{protocol}" for base in bases for protocol in protocols)], protocols


def netdiag_answers(document: str, keys: list[str]) -> dict[str, list[Entry]]:
    results = json.loads(document)["results"]
    assert [r["query"] for r in results] == keys
    return {
        r["query"]: [(e["name"], e["port"], e["protocol"], tuple(e["aliases"])) for e in r["entries"]] for r in results
    }


def disagreements(ours: dict[str, list[Entry]], reference: dict[str, Entry | None], protocols: list[str]) -> list[str]:
    wrong = []
    for key, rows in ours.items():
        first = reference[key]
        if "/" in key or first is None:
            expected = [first] if first else []
        else:  # getent's entry, then one for each other protocol that has one
            others = (reference[f"{key}/{p}"] for p in protocols if p != first[2])
            expected = [first, *filter(None, others)]
        if rows != expected:
            wrong.append(f"{key!r}: netdiag {rows}, getent {expected}")
    return wrong


def compare(prefix: list[str], netdiag_json) -> int:
    entries = getent_entries(prefix)
    keys, protocols = keys_and_protocols(entries)
    reference = getent_answers(prefix, keys)
    wrong = disagreements(netdiag_answers(netdiag_json(keys), keys), reference, protocols)
    assert not wrong, f"{len(wrong)} of {len(keys)} keys disagree:\n" + "\n".join(wrong[:30])
    return len(keys)


def test_system_database_agrees_with_getent(cli):
    def netdiag_json(keys):
        return cli("service", "--json", "--", *keys).stdout

    assert compare(in_namespace(None), netdiag_json) > 1000


@pytest.fixture
def adversarial(tmp_path) -> list[str]:
    path = tmp_path / "services"
    path.write_text(ADVERSARIAL)
    prefix = in_namespace(path)
    # The comparison means something only if both read this file.
    assert ("gamma", 3001, "tcp", ("g2",)) in getent_entries(prefix)
    return prefix


def netdiag_process(prefix: list[str], *args: str) -> subprocess.CompletedProcess:
    return run([*prefix, sys.executable, "-m", "netdiag", *args])


def test_adversarial_database_agrees_with_getent(adversarial):
    def netdiag_json(keys):
        return netdiag_process(adversarial, "service", "--json", "--", *keys).stdout

    assert compare(adversarial, netdiag_json) > 500


def test_adversarial_list_is_what_getent_lists(adversarial):
    listed = json.loads(netdiag_process(adversarial, "service", "--list", "--json").stdout)["services"]
    ours = {(s["name"], s["port"], s["protocol"], tuple(s["aliases"])) for s in listed}
    assert ours == set(getent_entries(adversarial))


def test_adversarial_cases_by_hand(adversarial):
    """The cases the differential test covers, spelled out."""
    expected = {
        "bar": [("bar", 1234, "tcp", ("baralias", "foo2"))],  # not foo, who has the port first
        "baralias": [("bar", 1234, "tcp", ("baralias", "foo2"))],
        "1234": [("foo", 1234, "tcp", ())],
        "gamma": [("gamma", 3000, "tcp", ("g1",)), ("gamma", 3000, "udp", ("g3",))],
        "g2": [("gamma", 3001, "tcp", ("g2",))],
        "5000/TCP": [("upper", 5000, "TCP", ("UP",))],
        "5000/tcp": [("upper", 5000, "tcp", ())],
        "5000": [("upper", 5000, "TCP", ("UP",)), ("upper", 5000, "tcp", ())],
        "amqp": [("amqp", 5672, "sctp", ()), ("amqp", 5672, "tcp", ())],  # the file's first, as getent
        "5672/sctp": [("amqp", 5672, "sctp", ())],
        "rtmp/ddp": [("rtmp", 1, "ddp", ())],
        "rtmp": [("rtmp", 1, "ddp", ())],
        "0": [("zero", 0, "tcp", ("nil",))],
        "65535/udp": [("top", 65535, "udp", ("max",))],
        "foo": [("foo", 1234, "tcp", ())],  # the name, not collide's alias
        "noproto/": [("noproto", 7778, "", ())],
        "casename": [],
    }
    keys = list(expected)
    result = netdiag_process(adversarial, "service", "--json", "--", *keys)
    assert netdiag_answers(result.stdout, keys) == expected
    assert result.returncode == 1  # casename

    bad = netdiag_process(adversarial, "service", "5000/UDP", "amqp")
    assert bad.returncode == 2
    assert bad.stderr.splitlines() == [
        "netdiag: '5000/UDP': unknown protocol 'UDP' (the services database has "
        "'tcp', 'udp', 'TCP', 'sctp', 'ddp', 'tc/p', '', 'tcp;junk')"
    ]
    sctp = netdiag_process(adversarial, "service", "--json", "--proto", "sctp", "amqp", "5672")
    assert [r["entries"] for r in json.loads(sctp.stdout)["results"]] == [
        [{"name": "amqp", "port": 5672, "protocol": "sctp", "aliases": []}]
    ] * 2
