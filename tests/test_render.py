import io
import json

from hypothesis import given
from hypothesis import strategies as st

from netdiag.models import DnsOutcome, ReverseAnswer
from netdiag.output import Output
from netdiag.text import visible
from netdiag.views.dns import answers_table as dns_answers_table


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
    answer = ReverseAnswer("127.1.0.77", DnsOutcome.OK, 1.0, ptr="[bold]evil[/bold]\x1b[2J", confirmed=True)
    text = render(dns_answers_table([answer]))
    assert "[bold]evil[/bold]\\e[2J" in text
    assert "\x1b" not in text


def test_json_escapes_every_control_byte():
    stdout = io.StringIO()
    Output(stdout, io.StringIO()).json({"name": "\x1b[31m\x9b\u202e"})
    raw = stdout.getvalue()
    assert raw.isascii() and "\x1b" not in raw
    assert json.loads(raw) == {"name": "\x1b[31m\x9b\u202e"}  # exact value preserved for jq


def test_plain_columns_on_a_narrow_terminal_cut_names_or_leave_columns_out_never_split_numbers():
    from netdiag.views.table import plain_table

    headers = ["ADDRESS", "STATE", "MIN/AVG/MAX_MS", "NAME"]
    rows = [["fd00:1ab:1::10", "up", "0.029/0.032/0.034", "a-rather-long-host-name.lab.test"]]
    for width in range(20, 90):
        lines = plain_table(headers, rows, width).splitlines()
        assert all(len(line) <= width for line in lines) or len(lines[0].split()) == 2, width
        cells = lines[1].split()
        assert cells[0] == "fd00:1ab:1::10"  # never cut
        assert "0.029/0.032/0.034" in cells or not any(c.startswith("0.0") for c in cells), width
        if len(cells) == 4:
            assert cells[3] == rows[0][3] or (cells[3].endswith("…") and len(cells[3]) >= 8), width
    assert plain_table(headers, rows).splitlines()[1].split() == rows[0]  # no width: a pipe, nothing cut


def test_a_broken_columns_variable_still_shows_the_results(cli_on_a_terminal, monkeypatch):
    for columns in ("0", "-3", "x"):
        monkeypatch.setenv("COLUMNS", columns)
        result = cli_on_a_terminal("service", "ssh")
        assert result.status == 0 and "ssh" in result.stdout and "22" in result.stdout, columns
