"""The certificate facts port --tls shows, read from certificates openssl made."""

from __future__ import annotations

import base64
import shutil
import ssl
import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netdiag import x509

needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl command")


def make_certificate(directory: Path, subject: str, days: int, *extra: str) -> tuple[bytes, Path]:
    """A self-signed certificate made by openssl: its DER bytes and its PEM file."""
    key, pem = directory / "key.pem", directory / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(pem), "-days", str(days), "-subj", subject, *extra],
        check=True, capture_output=True,
    )  # fmt: skip
    return ssl.PEM_cert_to_DER_cert(pem.read_text()), pem


def openssl_field(pem: Path, *options: str) -> str:
    done = subprocess.run(["openssl", "x509", "-noout", "-in", str(pem), *options],
                          check=True, capture_output=True, text=True)  # fmt: skip
    return done.stdout.strip()


def openssl_subject(pem: Path) -> str:
    """openssl's own reading of the subject, in our spelling."""
    line = openssl_field(pem, "-subject", "-nameopt", "sep_comma_plus_space,utf8,sname")
    return line.removeprefix("subject=")


@needs_openssl
def test_subject_issuer_and_end_date_match_what_openssl_and_the_ssl_module_read(tmp_path):
    der, pem = make_certificate(tmp_path, "/C=DE/O=Lab Test/OU=Ops/CN=tls.lab.test", 30)
    facts = x509.describe(der)
    assert facts.subject == "C=DE, O=Lab Test, OU=Ops, CN=tls.lab.test"
    assert facts.issuer == facts.subject  # self-signed
    # the ssl module's own decoder (private, so only in a test) agrees
    decoded = ssl._ssl._test_decode_cert(str(pem))  # type: ignore[attr-defined]
    assert ", ".join(f"{k}={v}" for rdn in decoded["subject"] for k, v in rdn).replace(
        "countryName", "C").replace("organizationName", "O").replace("organizationalUnitName", "OU").replace(
        "commonName", "CN") == facts.subject  # fmt: skip
    stamp = ssl.cert_time_to_seconds(decoded["notAfter"])
    import datetime

    expected = datetime.datetime.fromtimestamp(stamp, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert facts.not_after == expected
    assert openssl_field(pem, "-enddate").removeprefix("notAfter=") == decoded["notAfter"]


@needs_openssl
def test_utf8_subjects_and_dates_after_2049(tmp_path):
    # past 2049 RFC 5280 writes GeneralizedTime; UTF-8 names stay as written
    der, pem = make_certificate(tmp_path, "/O=Bücher ☃/CN=bücher.lab", 365 * 40, "-utf8")
    facts = x509.describe(der)
    assert facts.subject == "O=Bücher ☃, CN=bücher.lab"
    assert facts.subject == openssl_subject(pem)
    assert facts.not_after is not None and int(facts.not_after[:4]) >= 2050


@needs_openssl
def test_a_hostile_subject_is_kept_as_data(tmp_path):
    # control characters and bidi overrides come back as they are: visible() is for display
    der, _ = make_certificate(tmp_path, "/CN=evil\x1b[31m\u202e", 1, "-utf8")
    assert x509.describe(der).subject == "CN=evil\x1b[31m\u202e"


def test_known_encodings():
    assert x509.oid_text(bytes.fromhex("550403")) == "2.5.4.3"
    assert x509.oid_text(bytes.fromhex("2a864886f70d010901")) == "1.2.840.113549.1.9.1"
    assert x509.time_text(x509.UTC_TIME, b"491231235959Z") == "2049-12-31T23:59:59Z"
    assert x509.time_text(x509.UTC_TIME, b"500101000000Z") == "1950-01-01T00:00:00Z"
    assert x509.time_text(x509.GENERALIZED_TIME, b"20610102030405Z") == "2061-01-02T03:04:05Z"
    with pytest.raises(x509.Malformed):
        x509.time_text(x509.UTC_TIME, b"4912312359Z")
    with pytest.raises(x509.Malformed):
        x509.time_text(x509.GENERALIZED_TIME, b"20611302030405Z")  # month 13


def test_nothing_readable_is_none_not_an_error():
    assert x509.describe(b"") == x509.CertificateFacts(None, None, None)
    assert x509.describe(b"\x30\x84\xff\xff\xff\xff") == x509.CertificateFacts(None, None, None)


SAMPLE = base64.b64decode(  # openssl req -x509 -newkey ec ... -subj /CN=a -days 1, made once
    "MIIBbTCCAROgAwIBAgIUJT9tqXk4fWyY8kGhvQIDtRokJTEwCgYIKoZIzj0EAwIwDDEKMAgGA1UEAwwBYTAeFw0yNjEyMDIwOTEx"
    "NThaFw0yNjEyMDMwOTExNThaMAwxCjAIBgNVBAMMAWEwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAATxeHJgf9CxtoM8pHMWpLlY"
    "l1I4c/zlN7IIYxg1IW5RvGImw3i3pC5x+YbYohHPQlsOvF8Bb6vE3Szp9eU0oIwfo1MwUTAdBgNVHQ4EFgQU9FCeAEL+4rrjyWud"
    "tFLUkTDK3kgwHwYDVR0jBBgwFoAU9FCeAEL+4rrjyWudtFLUkTDK3kgwDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNIADBF"
    "AiEA6Gw8e0JvVT0batFF/TpP2IkDVPJqZgASWgCZToQXDy0CIHCu6CDxeYNvlGsPLBxn6SuRGNl0yTNlqEqNy1gkpF7D"
)


def test_a_fixed_certificate():
    assert x509.describe(SAMPLE) == x509.CertificateFacts("CN=a", "CN=a", "2026-12-03T09:11:58Z")


@given(st.binary(max_size=400))
def test_any_bytes_describe_without_raising(data):
    x509.describe(data)


@given(st.integers(0, len(SAMPLE) - 1), st.integers(0, 255))
def test_a_damaged_certificate_describes_without_raising(position, byte):
    damaged = bytearray(SAMPLE)
    damaged[position] = byte
    facts = x509.describe(bytes(damaged))
    for text in (facts.subject, facts.issuer, facts.not_after):
        assert text is None or isinstance(text, str)
