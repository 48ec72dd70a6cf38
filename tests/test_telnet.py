"""netdiag telnet as a real process against real servers (and a real pty)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time

import pexpect
import pytest

from netdiag.telnet.protocol import DM, DO, ECHO, IAC, SB, SE, TTYPE, WILL
from netdiag.telnet.screen import transcript
from tests.lab import netdiag_command, run_netdiag
from tests.lab.servers import listener, read_all, scripted_server

pytestmark = pytest.mark.timeout(60)


# --- piped: a byte-exact pipe like nc ------------------------------------------------


def test_piped_round_trip_is_byte_exact_for_every_byte_value():
    payload = bytes(range(256)) * 8192 + os.urandom(3_000_000)  # 5 MB
    with listener() as server:
        result = run_netdiag("telnet", "127.0.0.1", str(server.port), stdin=payload)
    assert result.returncode == 0, result.stderr
    assert result.stdout == payload
    assert result.stderr == b""  # piped and not --verbose: silent like nc


def test_against_listen_banner_and_discard():
    with listener(mode="banner", banner="220 lab.test ESMTP ready") as server:
        result = run_netdiag("telnet", "127.0.0.1", str(server.port), stdin=b"")
    assert result.returncode == 0 and result.stdout == b"220 lab.test ESMTP ready\r\n"
    with listener(mode="discard") as server:
        result = run_netdiag("telnet", "-v", "127.0.0.1", str(server.port), stdin=b"x" * 1_000_000)
    assert result.stdout == b""
    assert b"1,000,000 bytes sent, 0 received" in result.stderr


@pytest.mark.lab
def test_against_listen_lookup():
    with listener(mode="lookup") as server:
        result = run_netdiag("telnet", "127.0.0.1", str(server.port), stdin=b"www.lab.test\n127.1.0.10\n")
    assert sorted(result.stdout.decode().splitlines()) == [
        "127.1.0.10: web.lab.test (confirmed)",
        "www.lab.test: 127.1.0.10 fd00:1ab:1::10",
    ]


def test_piped_with_telnet_protocol_still_round_trips_through_an_echo_server():
    payload = bytes(range(256)) * 1000  # every 255 goes out as IAC IAC and comes back as one
    with listener() as server:
        result = run_netdiag("telnet", "--telnet", "127.0.0.1", str(server.port), stdin=payload)
    assert result.stdout == payload


def test_half_close_then_keep_reading_until_the_server_closes():
    def count_then_answer(conn, received):
        read_all(conn, received)  # returns only once the client shut its write side
        time.sleep(0.2)
        conn.sendall(b"got %d bytes\n" % len(received))

    with scripted_server(count_then_answer) as (port, _, _):
        result = run_netdiag("telnet", "127.0.0.1", str(port), stdin=b"x" * 100_000)
    assert result.returncode == 0
    assert result.stdout == b"got 100000 bytes\n"


def test_crlf_converts_line_ends():
    with scripted_server(read_all) as (port, received, done):
        run_netdiag("telnet", "--crlf", "127.0.0.1", str(port), stdin=b"EHLO lab\nQUIT\n")
        done.wait(5)
    assert bytes(received) == b"EHLO lab\r\nQUIT\r\n"


NEGOTIATION_REPLIES = bytes([IAC, DO, ECHO, IAC, WILL, TTYPE, IAC, SB, TTYPE, 0]) + b"vt220" + bytes([IAC, SE])


def test_telnet_negotiation_split_across_reads():
    def negotiate(conn, received):
        conn.sendall(bytes([IAC]))  # the sequences arrive in pieces
        time.sleep(0.1)
        conn.sendall(bytes([WILL, ECHO, IAC, DO]))
        time.sleep(0.1)
        conn.sendall(bytes([TTYPE, IAC, SB, TTYPE, 1, IAC]))
        time.sleep(0.1)
        conn.sendall(bytes([SE]) + b"ok \xff\xff done\r\n")
        conn.settimeout(5)
        while len(received) < len(NEGOTIATION_REPLIES):
            received.extend(conn.recv(100))

    with scripted_server(negotiate) as (port, received, done):
        client = subprocess.Popen(
            netdiag_command("telnet", "--telnet", "127.0.0.1", str(port)),
            stdin=subprocess.PIPE,  # open until the server is done: replies can still be sent
            stdout=subprocess.PIPE,
            env={**os.environ, "TERM": "vt220"},
        )
        done.wait(10)
        stdout, _ = client.communicate(timeout=10)
    assert stdout == b"ok \xff done\r\n"  # IAC IAC is one literal 255, negotiation never shown
    assert bytes(received) == NEGOTIATION_REPLIES


def test_raw_shows_the_bytes_as_they_are():
    with scripted_server(lambda conn, _: conn.sendall(bytes([IAC, WILL, ECHO]) + b"x")) as (port, _, _):
        result = run_netdiag("telnet", "--raw", "127.0.0.1", str(port), stdin=b"")
    assert result.stdout == bytes([IAC, WILL, ECHO]) + b"x"


FLUSHED = b"flushed" + bytes([IAC, WILL, ECHO]) + b" \xff\xff also flushed\r\n"


@pytest.mark.parametrize(
    ("mode", "shown", "replies"),
    [
        ("--telnet", b"after\r\n", bytes([IAC, DO, ECHO])),  # data up to the DM discarded, commands obeyed
        ("--raw", FLUSHED + bytes([IAC, DM]) + b"after\r\n", b""),  # every byte, the urgent one too
    ],
    ids=["telnet", "raw"],
)
def test_urgent_data_is_a_synch(mode, shown, replies):
    """inetutils telnetd's Synch: IAC sent as TCP urgent data, then DM. The client
    is stopped while it all arrives, so the urgent notice is there at its first read."""
    stopped, sent = threading.Event(), threading.Event()

    def synch(conn, received):
        stopped.wait(10)
        conn.sendall(FLUSHED)
        conn.send(bytes([IAC]), socket.MSG_OOB)
        conn.sendall(bytes([DM]) + b"after\r\n")
        sent.set()
        conn.settimeout(10)
        while len(received) < len(replies):
            received.extend(conn.recv(100))

    with scripted_server(synch) as (port, received, done):
        client = subprocess.Popen(
            netdiag_command("telnet", "-v", mode, "127.0.0.1", str(port)),
            stdin=subprocess.PIPE,  # open: the replies can still go out
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            assert b"Connected to" in client.stderr.readline() + client.stderr.readline()
            os.kill(client.pid, signal.SIGSTOP)
            stopped.set()
            assert sent.wait(10)
        finally:
            os.kill(client.pid, signal.SIGCONT)
        assert done.wait(10)
        stdout, _ = client.communicate(timeout=10)
    assert stdout == shown
    assert bytes(received) == replies


def test_a_server_that_closes_while_we_still_send_ends_the_session_like_nc():
    """It closes without reading: its kernel resets the connection. Everything it
    sent is still shown, and the session ends as with a close (nc: exit 0)."""

    def say_no_and_close(conn, _):
        conn.sendall(b"554 go away\r\n")
        time.sleep(0.3)  # our input is there, unread: the close is a reset

    with scripted_server(say_no_and_close) as (port, _, _):
        client = subprocess.Popen(
            netdiag_command("telnet", "-v", "127.0.0.1", str(port)),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        client.stdin.write(b"x" * 100_000)
        client.stdin.flush()  # and more to come: the input stays open
        stdout = client.stdout.read()
        stderr = client.stderr.read().decode()
        client.wait(10)
        client.stdin.close()
    assert stdout == b"554 go away\r\n"
    assert client.returncode == 0, stderr
    assert "Connection reset by foreign host." in stderr


@pytest.mark.parametrize("args", [[], ["--telnet"], ["--hexdump"]], ids=["plain", "telnet", "hexdump"])
def test_the_reader_leaving_ends_the_session_without_an_error(args):
    """`netdiag telnet ... | head -c 10`: exit 0 and nothing on stderr."""

    def flood(conn, _):
        with contextlib.suppress(OSError):
            conn.sendall(os.urandom(4_000_000))

    with scripted_server(flood) as (port, _, _):
        client = subprocess.Popen(
            netdiag_command("telnet", *args, "127.0.0.1", str(port)),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert len(client.stdout.read(10)) == 10
        client.stdout.close()
        stderr = client.stderr.read()
        client.wait(10)
    assert client.returncode == 0
    assert stderr == b""


def test_hexdump_shows_both_directions(tmp_path):
    log = tmp_path / "session.log"
    with listener() as server:
        result = run_netdiag("telnet", "-x", "--log", str(log), "127.0.0.1", str(server.port), stdin=b"hi\n")
    lines = result.stdout.decode().splitlines()
    assert "> 00000000  68 69 0a" in lines[0] and lines[0].endswith("|hi.|")
    assert "< 00000000  68 69 0a" in lines[1]
    transcript = log.read_text().splitlines()
    assert re.fullmatch(r"\+0\.\d{3}s > hi\\n", transcript[1]), transcript
    assert re.fullmatch(r"\+0\.\d{3}s < hi\\n", transcript[2]), transcript


def test_the_log_is_a_readable_transcript(tmp_path):
    """Text as visible text, a line each, with its line end escaped; telnet
    negotiation and binary as hex dump lines; a header and an end line."""

    def logged(text: str) -> None:  # one chunk at a time: wait until the client has logged the last
        deadline = time.monotonic() + 10
        while text not in log.read_text():
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.01)

    def smtp_like(conn, received):
        conn.sendall(b"220 lab.test ESMTP\r\n")
        conn.settimeout(5)
        while b"QUIT" not in received:
            received.extend(conn.recv(100))
        conn.sendall(bytes([IAC, WILL, ECHO]) + b"\x00\x01\x02binary")
        logged("|......binary|")
        conn.sendall(b"\x1b[31m221 bye\x1b[0m\r\n")

    log = tmp_path / "session.log"
    log.write_text("# an earlier session\n")
    with scripted_server(smtp_like) as (port, received, done):
        client = subprocess.Popen(
            netdiag_command("telnet", "--raw", "--log", str(log), "127.0.0.1", str(port)),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        logged("ESMTP")
        client.stdin.write(b"EHLO lab\r\nMAIL FROM:<a@lab.test>\r\nQUIT\r\n")
        client.stdin.flush()
        assert done.wait(10)
        client.stdin.close()
        assert client.wait(10) == 0
    lines = log.read_text().splitlines()
    stamp = r"\+\d+\.\d{3}s"
    expected = [
        r"# an earlier session",  # appended to, not overwritten
        rf"# connected to 127\.0\.0\.1 \(127\.0\.0\.1\) port {port}, \d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{{4}}",
        rf"{stamp} < 220 lab\.test ESMTP\\r\\n",
        rf"{stamp} > EHLO lab\\r\\n",
        rf"{stamp} > MAIL FROM:<a@lab\.test>\\r\\n",
        rf"{stamp} > QUIT\\r\\n",
        rf"{stamp} < 00000014  ff fb 01 00 01 02 62 69 6e 61 72 79 {' ' * 11}  \|\.\.\.\.\.\.binary\|",
        rf"{stamp} < \\e\[31m221 bye\\e\[0m\\r\\n",
        rf"# {stamp} ended \(remote close\): 40 bytes sent, 50 received",
    ]
    assert len(lines) == len(expected), lines
    for line, pattern in zip(lines, expected, strict=True):
        assert re.fullmatch(pattern, line), (line, pattern)
    assert bytes(received) == b"EHLO lab\r\nMAIL FROM:<a@lab.test>\r\nQUIT\r\n"
    times = [float(line.split("s ", 1)[0].lstrip("# +")) for line in lines[2:]]
    assert times == sorted(times)


@pytest.mark.parametrize(
    ("data", "logged"),
    [
        (b"hi\n", "+1.500s > hi\\n\n"),
        (b"one\r\ntwo\r\nrest", "+1.500s > one\\r\\n\n+1.500s > two\\r\\n\n+1.500s > rest\n"),
        (b"\x1b]0;pwned\x07\tcaf\xc3\xa9 \xe2\x80\xae", "+1.500s > \\e]0;pwned\\x07\\tcafé \\u202e\n"),
        ("é".encode()[1:] + b" cut at both ends " + "é".encode()[:1], "+1.500s > \\xa9 cut at both ends \\xc3\n"),
        (b"\r\x00", "+1.500s > 00000040  0d 00" + " " * 44 + "|..|\n"),  # mostly control characters
        (bytes([IAC, DO, ECHO]), "+1.500s > 00000040  ff fd 01" + " " * 41 + "|...|\n"),  # not UTF-8
    ],
    ids=["line", "lines", "escapes", "cut-character", "controls", "binary"],
)
def test_transcript_lines(data, logged):
    assert transcript(data, "+1.500s >", 0x40) == logged


def test_idle_timeout_closes_a_silent_session():
    with listener(mode="discard") as server:
        process = subprocess.Popen(
            netdiag_command("telnet", "--idle-timeout", "0.5", "127.0.0.1", str(server.port)),
            stdin=subprocess.PIPE,  # kept open: the session only ends by going idle
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        start = time.monotonic()
        process.wait(timeout=10)  # not communicate(): closing stdin would end the session
        elapsed = time.monotonic() - start
        stderr = process.stderr.read()
        process.stdin.close()
    assert process.returncode == 1
    assert b"closed after 0.5s idle" in stderr
    assert elapsed < 5


def test_service_names_as_ports():
    result = run_netdiag("telnet", "127.0.0.1", "no-such-service-xyz", stdin=b"")
    assert result.returncode == 2
    assert b"unknown service 'no-such-service-xyz'" in result.stderr


# --- errors ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(
    ("args", "status", "message"),
    [
        (["127.0.0.1", str(free_port())], 1, "connection refused by 127.0.0.1 port"),
        (["127.0.0.1", "99999"], 2, "port 99999 is more than 65535"),
        (["127.0.0.1", "0"], 2, "port 0"),
        (["300.1.1.1", "80"], 2, "is not a host name or address"),
        (["127.0.0.0/24", "80"], 2, "is a network or range"),
        (["-4", "-6", "localhost", "80"], 2, "exclude each other"),
        (["--escape", "^^^", "localhost", "80"], 2, "--escape"),
        (["--connect-timeout", "0", "localhost", "80"], 2, "--connect-timeout must be more than 0"),
        (["127.1", str(free_port())], 1, "connection refused by 127.0.0.1 port"),  # inet_aton's form, as nc
        (["--tls", "--sni", "a..b", "127.0.0.1", "1"], 2, "--sni 'a..b': not a valid host name"),
        (["--tls", "--sni", ".", "127.0.0.1", "1"], 2, "not a valid host name"),
        (["--tls", "--sni", "a" * 300, "127.0.0.1", "1"], 2, "not a valid host name"),
        (["--tls", "--sni", "127.0.0.1", "127.0.0.1", "1"], 2, "an address cannot be a TLS server name"),
        (["--sni", "web.lab.test", "127.0.0.1", "1"], 2, "--sni goes with --tls"),
    ],
)
def test_error_paths(args, status, message):
    result = run_netdiag("telnet", *args, stdin=b"")
    assert result.returncode == status
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and message in lines[0], lines
    assert b"Traceback" not in result.stderr


@pytest.mark.lab
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--connect-timeout", "0.5", "127.2.0.1", "80"], "connection to 127.2.0.1 port 80 timed out after 0.5s"),
        (["127.4.0.1", "80"], "127.4.0.1 port 80: host unreachable"),
        (["nope.lab.test", "80"], "nope.lab.test: cannot resolve"),
    ],
)
def test_lab_error_paths(args, message):
    result = run_netdiag("telnet", *args, stdin=b"")
    assert result.returncode == 1
    assert message in result.stderr.decode()


@pytest.mark.lab
def test_every_address_is_tried_in_turn():
    with listener(host="127.1.0.36") as server:  # three.lab.test: .34, .35, .36 in /etc/hosts
        port = server.port
        result = run_netdiag("telnet", "-v", "three.lab.test", str(port), stdin=b"")
    stderr = result.stderr.decode()
    assert result.returncode == 0, stderr
    assert re.findall(r"Trying (\S+)\.\.\.", stderr) == ["127.1.0.34", "127.1.0.35", "127.1.0.36"]
    assert f"Connected to three.lab.test (127.1.0.36) port {port}." in stderr


# --- TLS ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    directory = tmp_path_factory.mktemp("tls")
    key, cert = directory / "key.pem", directory / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=tls.lab.test",
         "-addext", "subjectAltName=DNS:tls.lab.test", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


def tls_echo(conn, received):
    """Echo all the client sent once it half-closed (its close_notify), then close."""
    read_all(conn, received)
    conn.sendall(bytes(received))


def test_tls_insecure_round_trip_reports_protocol_and_fingerprint(certificate):
    with scripted_server(tls_echo, certificate) as (port, _, _):
        result = run_netdiag("telnet", "-v", "--tls", "--insecure", "127.0.0.1", str(port), stdin=b"secret\n")
    stderr = result.stderr.decode()
    assert result.returncode == 0, stderr
    assert result.stdout == b"secret\n"
    assert "TLS TLSv1.3" in stderr and "certificate NOT verified: SHA-256 " in stderr


def test_tls_verification_failure(certificate):
    with scripted_server(tls_echo, certificate) as (port, _, _):
        result = run_netdiag("telnet", "--tls", "127.0.0.1", str(port), stdin=b"")
    assert result.returncode == 1
    assert "TLS certificate verification failed" in result.stderr.decode()


def test_tls_half_close_sends_close_notify_then_reads_to_the_end(certificate):
    """Piped input ends: close_notify (not a bare TCP close, which this server
    refuses), the TCP FIN, and the server's answer still comes through."""
    payload = os.urandom(300_000)

    def count_then_answer(conn, received):
        tls = certificate.wrap_socket(conn, server_side=True, suppress_ragged_eofs=False)
        read_all(tls, received)  # returns only at the client's close_notify
        time.sleep(0.2)
        tls.sendall(b"got %d bytes\n" % len(received))
        tls.unwrap()  # our own close_notify: the client takes it as the end

    with scripted_server(count_then_answer) as (port, received, done):
        result = run_netdiag("telnet", "-k", "--tls", "127.0.0.1", str(port), stdin=payload, timeout=10)
        assert done.wait(5)
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"got 300000 bytes\n"
    assert bytes(received) == payload


def test_tls_banner_right_after_the_handshake_with_no_input(certificate):
    """The close_notify goes out while the banner may be on its way: both arrive."""

    def greet_until_the_end(conn, received):
        tls = certificate.wrap_socket(conn, server_side=True, suppress_ragged_eofs=False)
        tls.sendall(b"220 smtps.lab.test ready\r\n")
        read_all(tls, received)
        tls.sendall(b"221 bye\r\n")

    for _ in range(5):
        with scripted_server(greet_until_the_end) as (port, _, done):
            result = run_netdiag("telnet", "-k", "--tls", "127.0.0.1", str(port), stdin=b"", timeout=10)
            assert done.wait(5)
        assert (result.returncode, result.stdout) == (0, b"220 smtps.lab.test ready\r\n221 bye\r\n"), result.stderr


def test_tls_reset_by_a_server_that_never_read_our_close_notify_is_an_error(certificate):
    """Such a server's kernel drops what it had not sent yet: the output may be
    cut short, so this is no normal end."""

    def answer_without_reading(conn, _):
        tls = certificate.wrap_socket(conn, server_side=True)
        time.sleep(0.3)  # the client's close_notify arrives, and stays unread
        tls.sendall(os.urandom(2_000_000))

    with scripted_server(answer_without_reading) as (port, _, done):
        result = run_netdiag("telnet", "-k", "--tls", "127.0.0.1", str(port), stdin=b"", timeout=10)
        assert done.wait(5)
    assert result.returncode == 1
    assert "connection reset by peer" in result.stderr.decode()


@pytest.fixture(scope="module")
def hostile_certificate(tmp_path_factory):
    """A certificate whose subject carries terminal sequences, and a client
    environment that trusts it."""
    directory = tmp_path_factory.mktemp("hostile-tls")
    key, cert = directory / "key.pem", directory / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-utf8",
         "-subj", "/CN=evil\x1b]0;pwned\x07\x1b[2J\u202e/O=Lab", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context, {"SSL_CERT_FILE": str(cert)}


def test_tls_certificate_subject_is_shown_as_visible_text(hostile_certificate):
    context, trust = hostile_certificate
    with scripted_server(tls_echo, context) as (port, _, _):
        result = run_netdiag("telnet", "-v", "--tls", "127.0.0.1", str(port), stdin=b"hi\n", env=trust)
    stderr = result.stderr.decode()
    assert result.returncode == 0, stderr
    shown = "commonName=evil\\e]0;pwned\\x07\\e[2J\\u202e, organizationName=Lab"
    assert f"certificate verified: {shown} (issuer: {shown})" in stderr
    assert not {"\x1b", "\x07", "\u202e"} & set(stderr)


def test_tls_against_a_plain_server_fails_the_handshake():
    def plain(conn, _):
        conn.sendall(b"220 not tls at all\r\n" * 10)
        time.sleep(0.5)

    with scripted_server(plain) as (port, _, _):
        result = run_netdiag("telnet", "--tls", "-k", "127.0.0.1", str(port), stdin=b"")
    assert result.returncode == 1
    assert "TLS handshake failed" in result.stderr.decode()


# --- interactive, through a real pseudo-terminal ---------------------------------------


def spawn(*args: str, **kwargs) -> pexpect.spawn:
    child = pexpect.spawn(
        sys.executable, ["-m", "netdiag", "telnet", *args], timeout=10, env={**os.environ, "TERM": "xterm"}, **kwargs
    )
    child.setwinsize(24, 80)
    return child


def test_interactive_typing_escape_prompt_status_and_quit():
    with listener() as server:
        child = spawn("127.0.0.1", str(server.port))
        child.expect_exact(f"Connected to 127.0.0.1 (127.0.0.1) port {server.port}.")
        child.expect_exact("Escape character is '^]'.")
        child.sendline("hello there")
        child.expect_exact("hello there")  # the terminal's own echo
        child.expect_exact("hello there")  # and the server's
        child.sendcontrol("]")
        child.expect_exact("netdiag> ")
        child.sendline("status")
        child.expect(r"connected to 127\.0\.0\.1 \(127\.0\.0\.1\) port \d+; sent 13 bytes, received 13 bytes")
        child.expect_exact("netdiag> ")
        child.sendline("quit")
        child.expect(pexpect.EOF)
        child.close()
    assert child.exitstatus == 0


def test_interactive_remote_close():
    def greet_and_leave(conn, _):
        conn.sendall(b"bye now\r\n")

    with scripted_server(greet_and_leave) as (port, _, _):
        child = spawn("127.0.0.1", str(port))
        child.expect_exact("bye now")
        child.expect_exact("Connection closed by foreign host.")
        child.expect(pexpect.EOF)
        child.close()
    assert child.exitstatus == 0


def test_piped_input_but_a_terminal_for_output_still_gets_visible_text():
    def hostile(conn, _):
        conn.sendall(b"\x1b]0;pwned\x07\x1b[2Jvisible\r\n")

    master, slave = os.openpty()
    try:
        with scripted_server(hostile) as (port, _, _):
            client = subprocess.Popen(
                netdiag_command("telnet", "127.0.0.1", str(port)), stdin=subprocess.DEVNULL, stdout=slave
            )
            assert client.wait(10) == 0
        shown = os.read(master, 4096)
    finally:
        os.close(slave)
        os.close(master)
    assert shown.startswith(b"\\e]0;pwned\x07\\e[2Jvisible")


def test_interactive_control_sequences_are_made_visible():
    def hostile(conn, _):
        conn.sendall(b"\x1b]0;pwned\x07\x1b[2Jvisible\r\n")

    with scripted_server(hostile) as (port, _, _):
        child = spawn("127.0.0.1", str(port))
        child.expect_exact("\\e]0;pwned\x07\\e[2Jvisible")
        child.expect(pexpect.EOF)
        child.close()


def test_character_mode_when_the_server_echoes():
    def echoing_server(conn, received):
        conn.sendall(bytes([IAC, WILL, ECHO]) + b"password: ")
        conn.settimeout(5)
        while b"x" not in received:
            received.extend(conn.recv(100))
        conn.sendall(b"\r\ngot a key\r\n")
        time.sleep(0.2)

    with scripted_server(echoing_server) as (port, received, _):
        child = spawn("127.0.0.1", str(port))
        child.expect_exact("password: ")
        child.send("x")  # no Enter: character mode sends it at once
        child.expect_exact("got a key")
        child.expect(pexpect.EOF)
        child.close()
    assert bytes([IAC, DO, ECHO]) in received


def test_the_terminal_is_restored_on_every_way_out(tmp_path):
    """Run the client from a shell on a pty; compare `stty -g` before and after."""
    with listener() as server:
        shell = pexpect.spawn("bash", ["--norc", "--noprofile"], timeout=10, env={**os.environ, "PS1": "$ "})
        shell.expect_exact("$ ")
        client = " ".join(netdiag_command("telnet", "127.0.0.1", str(server.port)))
        ways_out = [
            ("quit", lambda: (shell.sendcontrol("]"), shell.expect_exact("netdiag> "), shell.sendline("quit"))),
            ("ctrl-c", lambda: shell.sendcontrol("c")),
            ("char-mode quit", lambda: (shell.sendcontrol("]"), shell.expect_exact("netdiag> "),
                                        shell.sendline("mode char"), time.sleep(0.3), shell.sendcontrol("]"),
                                        shell.expect_exact("netdiag> "), shell.sendline("quit"))),
        ]  # fmt: skip
        for name, leave in ways_out:
            before, after = tmp_path / f"{name}.before", tmp_path / f"{name}.after"
            shell.sendline(f"stty -g > '{before}'; {client}; echo status=$?; stty -g > '{after}'")
            shell.expect_exact("Escape character is '^]'.")
            time.sleep(0.3)
            leave()
            shell.expect(r"status=(\d+)")
            status = int(shell.match.group(1))
            shell.expect_exact("$ ")
            time.sleep(0.2)
            assert before.read_text() == after.read_text(), f"terminal not restored after {name}"
            assert status == (130 if name == "ctrl-c" else 0), name
        shell.sendline("exit")
        shell.close()


def test_sigterm_restores_the_terminal(tmp_path):
    with listener() as server:
        shell = pexpect.spawn("bash", ["--norc", "--noprofile"], timeout=10, env={**os.environ, "PS1": "$ "})
        shell.expect_exact("$ ")
        client = " ".join(netdiag_command("telnet", "--char", "127.0.0.1", str(server.port)))
        before, after = tmp_path / "before", tmp_path / "after"
        killer = f"(sleep 1.5; pkill -TERM -f 'telnet --char 127.0.0.1 {server.port}') &"
        shell.sendline(f"stty -g > '{before}'; {killer} {client}; echo status=$?; stty -g > '{after}'")
        shell.expect(r"status=(\d+)")
        assert int(shell.match.group(1)) == 143  # 128 + SIGTERM
        shell.expect_exact("$ ")
        time.sleep(0.2)
        assert before.read_text() == after.read_text()
        shell.close()
