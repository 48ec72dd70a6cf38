"""Name service calls that Python's socket module lacks.

- ``aliases(name, family)``: the names a lookup passed through (the CNAME
  chain), for IPv6 as well; ``socket.gethostbyname_ex`` asks IPv4 only.
- ``to_ascii(name)``: a name as glibc sends it with ``AI_IDN``, through the
  same libidn2 (IDNA2008), not Python's IDNA2003 codec (``faß`` → ``fass``).

Both go through ctypes to the C library and libidn2; both are thread-safe.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import functools

# glibc's getaddrinfo flags (netdb.h): encode the name with libidn2, and decode
# the canonical name back. Python's socket module does not export them.
AI_IDN = 0x0040
AI_CANONIDN = 0x0080

_NETDB_SUCCESS = 0
_MAX_BUFFER = 1 << 20  # a hostent with more aliases than this fits nowhere sensible


class _Hostent(ctypes.Structure):
    _fields_ = [
        ("h_name", ctypes.c_char_p),
        ("h_aliases", ctypes.POINTER(ctypes.c_char_p)),
        ("h_addrtype", ctypes.c_int),
        ("h_length", ctypes.c_int),
        ("h_addr_list", ctypes.POINTER(ctypes.c_char_p)),
    ]


@functools.cache
def _libc():
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    call = libc.gethostbyname2_r
    call.argtypes = [
        ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(_Hostent), ctypes.c_char_p, ctypes.c_size_t,
        ctypes.POINTER(ctypes.POINTER(_Hostent)), ctypes.POINTER(ctypes.c_int),
    ]  # fmt: skip
    call.restype = ctypes.c_int
    return libc


@functools.cache
def _libidn2():
    path = ctypes.util.find_library("idn2")
    if path is None:
        return None
    try:
        lib = ctypes.CDLL(path)
    except OSError:
        return None
    lib.idn2_lookup_u8.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p), ctypes.c_int]
    lib.idn2_lookup_u8.restype = ctypes.c_int
    lib.idn2_free.argtypes = [ctypes.c_void_p]
    return lib


def to_ascii(name: str) -> bytes | None:
    """``name`` in ASCII (A-labels) as glibc's AI_IDN makes it; None if it
    cannot be encoded or libidn2 is missing. ASCII names pass unchanged, as in
    glibc: names in /etc/hosts need not be valid DNS names."""
    if name.isascii():
        return name.encode()
    lib = _libidn2()
    if lib is None:
        return None
    try:
        text = name.encode()
    except UnicodeError:
        return None
    out = ctypes.c_void_p()
    if lib.idn2_lookup_u8(text, ctypes.byref(out), 0) != 0:  # 0: libidn2's default, as glibc
        return None
    try:
        return ctypes.string_at(out.value)
    finally:
        lib.idn2_free(out)


def aliases(name: bytes, family: int) -> tuple[str, ...] | None:
    """The names ``gethostbyname2(name, family)`` reports as aliases (the CNAME
    chain), or None when the name has no address of that family."""
    libc = _libc()
    size = 8192
    while size <= _MAX_BUFFER:
        host, buffer = _Hostent(), ctypes.create_string_buffer(size)
        result, h_errno = ctypes.POINTER(_Hostent)(), ctypes.c_int()
        status = libc.gethostbyname2_r(
            name, family, ctypes.byref(host), buffer, size, ctypes.byref(result), ctypes.byref(h_errno)
        )
        if status == errno.ERANGE:
            size *= 4
            continue
        if status != _NETDB_SUCCESS or not result:
            return None
        found, i = [], 0
        while host.h_aliases and host.h_aliases[i]:
            found.append(host.h_aliases[i].decode("utf-8", "replace"))
            i += 1
        return tuple(found)
    return None
