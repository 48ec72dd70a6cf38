"""The telnet protocol state machine and screen helpers: pure, bytes in and out."""

from hypothesis import given
from hypothesis import strategies as st

from netdiag.telnet.protocol import (
    DM,
    DO,
    DONT,
    ECHO,
    GA,
    IAC,
    MAX_SUBNEGOTIATION,
    NAWS,
    NOP,
    RECENT_COMMANDS,
    SB,
    SE,
    SGA,
    TTYPE,
    WILL,
    WONT,
    TelnetProtocol,
    escape,
)
from netdiag.telnet.screen import SafeText, hexdump


def cmd(*values: int) -> bytes:
    return bytes(values)


def feed_all(protocol: TelnetProtocol, chunks) -> tuple[bytes, bytes]:
    data, replies = b"", b""
    for chunk in chunks:
        d, r = protocol.feed(chunk)
        data, replies = data + d, replies + r
    return data, replies


SCRIPT = (
    b"login: "
    + cmd(IAC, WILL, ECHO, IAC, WILL, SGA, IAC, DO, TTYPE, IAC, DO, NAWS, IAC, DO, 99, IAC, WILL, 42)
    + cmd(IAC, SB, TTYPE, 1, IAC, SE)
    + b"a\xff\xffb"
    + cmd(IAC, NOP, IAC, GA)
    + b"line\r\nbare\r\0cr"
    + cmd(IAC, SB, 77, IAC, IAC, 5, IAC, SE)
    + "čeština ✓".encode()
)
EXPECTED_DATA = b"login: a\xffbline\r\nbare\rcr" + "čeština ✓".encode()
EXPECTED_REPLIES = (
    cmd(IAC, DO, ECHO, IAC, DO, SGA, IAC, WILL, TTYPE)
    + cmd(IAC, WILL, NAWS, IAC, SB, NAWS, 0, 80, 0, 24, IAC, SE)
    + cmd(IAC, WONT, 99, IAC, DONT, 42)
    + cmd(IAC, SB, TTYPE, 0)
    + b"vt100"
    + cmd(IAC, SE)
)


def test_a_whole_negotiation():
    protocol = TelnetProtocol("vt100")
    assert protocol.feed(SCRIPT) == (EXPECTED_DATA, EXPECTED_REPLIES)
    assert protocol.state.remote == {ECHO, SGA} and protocol.state.local == {TTYPE, NAWS}
    assert protocol.state.server_echoes
    assert list(protocol.recent_commands) == [NOP, GA]


@given(st.lists(st.integers(0, len(SCRIPT)), max_size=12))
def test_any_split_across_reads_gives_the_same_result(cuts):
    points = sorted(set(cuts))
    chunks = [SCRIPT[a:b] for a, b in zip([0, *points], [*points, len(SCRIPT)], strict=True)]
    assert feed_all(TelnetProtocol("vt100"), chunks) == (EXPECTED_DATA, EXPECTED_REPLIES)


def test_byte_by_byte():
    assert feed_all(TelnetProtocol("vt100"), [bytes([b]) for b in SCRIPT]) == (EXPECTED_DATA, EXPECTED_REPLIES)


def test_negotiation_never_loops():
    protocol = TelnetProtocol()
    assert protocol.feed(cmd(IAC, WILL, ECHO)) == (b"", cmd(IAC, DO, ECHO))
    assert protocol.feed(cmd(IAC, WILL, ECHO)) == (b"", b"")  # already agreed: no answer
    assert protocol.feed(cmd(IAC, WONT, ECHO)) == (b"", cmd(IAC, DONT, ECHO))
    assert protocol.feed(cmd(IAC, WONT, ECHO)) == (b"", b"")
    assert not protocol.state.server_echoes
    assert protocol.feed(cmd(IAC, DONT, TTYPE)) == (b"", b"")  # never enabled
    assert protocol.feed(cmd(IAC, DO, 200, IAC, DO, 200)) == (b"", cmd(IAC, WONT, 200, IAC, WONT, 200))


def test_window_size_is_escaped():
    protocol = TelnetProtocol(window_size=lambda: (255, 300))
    _, replies = protocol.feed(cmd(IAC, DO, NAWS))
    assert replies == cmd(IAC, WILL, NAWS, IAC, SB, NAWS, 0, 255, 255, 1, 44, IAC, SE)


@given(st.binary())
def test_plain_data_without_iac_or_cr_passes_through(data):
    data = data.replace(b"\xff", b"").replace(b"\r", b"")
    assert TelnetProtocol().feed(data) == (data, b"")


@given(st.binary())
def test_escaped_data_round_trips(data):
    received, replies = TelnetProtocol().feed(escape(data).replace(b"\r", b"\r\n"))
    assert received == data.replace(b"\r", b"\r\n") and replies == b""


# --- Synch (RFC 854): after urgent data, data is discarded up to the DM --------------

SYNCH = b"flushed \xff\xff" + cmd(IAC, WILL, ECHO) + b"line\r\n" + cmd(IAC, DM) + b"after\r\n"


def test_synch_discards_data_but_obeys_commands_until_the_data_mark():
    protocol = TelnetProtocol()
    protocol.synch()
    assert protocol.feed(SYNCH) == (b"after\r\n", cmd(IAC, DO, ECHO))
    assert protocol.state.server_echoes
    assert protocol.feed(b"more") == (b"more", b"")  # the Synch is over


@given(st.lists(st.integers(0, len(SYNCH)), max_size=8))
def test_synch_split_anywhere(cuts):
    points = sorted(set(cuts))
    chunks = [SYNCH[a:b] for a, b in zip([0, *points], [*points, len(SYNCH)], strict=True)]
    protocol = TelnetProtocol()
    protocol.synch()
    assert feed_all(protocol, chunks) == (b"after\r\n", cmd(IAC, DO, ECHO))


def test_synch_byte_by_byte_and_announced_mid_command():
    protocol = TelnetProtocol()
    assert protocol.feed(b"shown" + cmd(IAC)) == (b"shown", b"")
    protocol.synch()  # the urgent notice arrives between IAC and DM, as inetutils telnetd sends them
    assert feed_all(protocol, [bytes([b]) for b in cmd(DM) + b"ok"]) == (b"ok", b"")


def test_a_data_mark_without_urgent_data_is_a_no_op():
    assert TelnetProtocol().feed(b"a" + cmd(IAC, DM) + b"b") == (b"ab", b"")


# --- memory stays bounded whatever the server sends ---------------------------------


def test_only_the_recent_commands_are_kept():
    protocol = TelnetProtocol()
    protocol.feed(cmd(IAC, NOP) * (10 * RECENT_COMMANDS) + cmd(IAC, GA))
    assert len(protocol.recent_commands) == RECENT_COMMANDS and protocol.recent_commands[-1] == GA


def test_an_overlong_subnegotiation_is_discarded():
    def ttype_send(length: int) -> bytes:  # a TERMINAL-TYPE SEND whose body is this long (255s: IAC IAC)
        return cmd(IAC, SB, TTYPE, 1) + b"\xff\xff" * (length - 2) + cmd(IAC, SE)

    protocol = TelnetProtocol("vt100")
    protocol.feed(cmd(IAC, DO, TTYPE))
    answer = cmd(IAC, SB, TTYPE, 0) + b"vt100" + cmd(IAC, SE)
    assert protocol.feed(ttype_send(MAX_SUBNEGOTIATION)) == (b"", answer)  # just fits
    assert protocol.feed(ttype_send(MAX_SUBNEGOTIATION + 1)) == (b"", b"")  # too long: ignored
    huge = cmd(IAC, SB, TTYPE, 1) + b"x" * (4 * MAX_SUBNEGOTIATION)
    assert feed_all(protocol, [huge[i : i + 1000] for i in range(0, len(huge), 1000)]) == (b"", b"")
    assert protocol.feed(cmd(IAC, SE) + b"data" + ttype_send(2)) == (b"data", answer)  # and back to normal


def test_command_bytes():
    assert TelnetProtocol.command("ayt") == cmd(IAC, 246)


def test_safe_text_makes_controls_visible_and_survives_any_bytes():
    screen = SafeText()
    assert screen.feed(b"\x1b[2Jhi\x07\r\n") == "\\e[2Jhi\x07\r\n"
    assert screen.feed("é".encode()[:1]) == ""  # half a character waits for the rest
    assert screen.feed("é".encode()[1:]) == "é"
    assert screen.feed(b"\xff\xfe ok") == "\\xff\\xfe ok"
    assert screen.feed("\u202eevil".encode()) == "\\u202eevil"
    assert screen.feed(b"\xc2\x9b") == "\\x9b"  # the 8-bit CSI
    assert screen.feed(b"\xe2") == "" and screen.flush() == "\\xe2"


@given(st.lists(st.binary(max_size=20), max_size=10))
def test_safe_text_never_emits_escape_or_crashes(chunks):
    screen = SafeText()
    text = "".join(screen.feed(c) for c in chunks) + screen.flush()
    assert "\x1b" not in text and "\x9b" not in text


def test_hexdump():
    assert hexdump(b"hello\r\n", ">", 16) == "> 00000010  68 65 6c 6c 6f 0d 0a" + " " * 27 + "  |hello..|\n"
    assert len(hexdump(bytes(40), "<").splitlines()) == 3
    assert hexdump(b"", "<") == ""
