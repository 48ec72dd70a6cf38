import io
import json

from hypothesis import given
from hypothesis import strategies as st

from netdiag.models import DnsAnswer, DnsOutcome
from netdiag.output import Output
from netdiag.render import dns_answers_table
from netdiag.text import visible


def test_visible_makes_controls_and_bidi_visible():
    assert visible("plain.example") == "plain.example"
    assert visible("\x1b[31mred\x1b[0m") == "\\e[31mred\\e[0m"
    assert visible("a\x07b\x9bc\x7f") == "a\\x07b\\x9bc\\x7f"
    assert visible("evil\u202etxt.exe") == "evil\\u202etxt.exe"
    assert visible("tab\there\n") == "tab\\there\\n"
    assert visible("bücher.test") == "bücher.test"


@given(st.text())
def test_visible_output_is_always_printable(text):
    assert visible(text).isprintable()


def render(table, **console):
    stdout = io.StringIO()
    Output(stdout, io.StringIO()).table(table)
    return stdout.getvalue()


def test_untrusted_names_are_never_markup_nor_escape_codes():
    answer = DnsAnswer("127.1.0.77", "reverse", DnsOutcome.OK, 1.0, ptr="[bold]evil[/bold]\x1b[2J", confirmed=True)
    text = render(dns_answers_table([answer]))
    assert "[bold]evil[/bold]\\e[2J" in text
    assert "\x1b" not in text


def test_json_escapes_every_control_byte():
    stdout = io.StringIO()
    Output(stdout, io.StringIO()).json({"name": "\x1b[31m\x9b\u202e"})
    raw = stdout.getvalue()
    assert raw.isascii() and "\x1b" not in raw
    assert json.loads(raw) == {"name": "\x1b[31m\x9b\u202e"}  # exact value preserved for jq
