"""The C library's name service calls that Python's socket module lacks, in
one place (through ctypes):

- ``aliases(name, family)``: the names a lookup passed through (the CNAME
  chain), for IPv6 as well; ``socket.gethostbyname_ex`` asks IPv4 only.
- ``to_ascii(name)``: a name as glibc sends it with ``AI_IDN``, through the
  same libidn2 (IDNA2008), not Python's IDNA2003 codec (``faß`` → ``fass``).
- ``service(key, protocol)`` and ``services()``: the services database entry
  getservbyname_r/getservbyport_r return, with its own name and aliases, and
  a walk with getservent. Python's getservby* return only a port or a name,
  from a static buffer (python/cpython#74667).

The ``_r`` calls are thread-safe; ``services()`` holds a lock, as getservent's
position is global.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import functools
import socket
import threading
from collections.abc import Callable
from typing import Any, TypeVar

# glibc's getaddrinfo flags (netdb.h): encode the name with libidn2, and decode
# the canonical name back. Python's socket module does not export them.
AI_IDN = 0x0040
AI_CANONIDN = 0x0080

_MAX_BUFFER = 1 << 20  # an entry longer than this fits nowhere sensible
_walk_lock = threading.Lock()

S = TypeVar("S", bound=ctypes.Structure)
T = TypeVar("T")
ServiceFields = tuple[str, int, str, tuple[str, ...]]  # name, port, protocol, aliases


class Hostent(ctypes.Structure):
    _fields_ = [
        ("h_name", ctypes.c_char_p),
        ("h_aliases", ctypes.POINTER(ctypes.c_char_p)),
        ("h_addrtype", ctypes.c_int),
        ("h_length", ctypes.c_int),
        ("h_addr_list", ctypes.POINTER(ctypes.c_char_p)),
    ]


class Servent(ctypes.Structure):
    _fields_ = [
        ("s_name", ctypes.c_char_p),
        ("s_aliases", ctypes.POINTER(ctypes.c_char_p)),
        ("s_port", ctypes.c_int),
        ("s_proto", ctypes.c_char_p),
    ]


@functools.cache
def libc() -> ctypes.CDLL | None:
    """The C library with the calls used here declared; None if it has not them."""
    try:
        lib = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        by_host, by_name, by_port = lib.gethostbyname2_r, lib.getservbyname_r, lib.getservbyport_r
    except (OSError, AttributeError, TypeError):
        return None

    def results(struct: type) -> list[Any]:  # (struct *, char *buf, size_t, struct **result)
        return [ctypes.POINTER(struct), ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(ctypes.POINTER(struct))]

    by_host.argtypes = [ctypes.c_char_p, ctypes.c_int, *results(Hostent), ctypes.POINTER(ctypes.c_int)]
    by_name.argtypes = [ctypes.c_char_p, ctypes.c_char_p, *results(Servent)]
    by_port.argtypes = [ctypes.c_int, ctypes.c_char_p, *results(Servent)]
    by_host.restype = by_name.restype = by_port.restype = ctypes.c_int
    lib.getservent.restype = ctypes.POINTER(Servent)
    lib.setservent.argtypes = [ctypes.c_int]
    return lib


def _reentrant(
    struct: type[S],
    call: Callable[..., int],
    before: tuple[object, ...],
    after: tuple[object, ...],
    convert: Callable[[S], T],
) -> T | None:
    """Call a glibc ``*_r`` function (``before``, the struct, a buffer, its
    size, the result pointer, ``after``) with a buffer that grows while it
    says ERANGE. The entry is converted while its buffer is alive: its
    strings point into it. None when there is no entry."""
    size = 4096
    while size <= _MAX_BUFFER:
        entry, buffer, result = struct(), ctypes.create_string_buffer(size), ctypes.POINTER(struct)()
        status = call(*before, ctypes.byref(entry), buffer, size, ctypes.byref(result), *after)
        if status == errno.ERANGE:
            size *= 4
            continue
        return convert(entry) if status == 0 and result else None
    return None


def strings(array: Any) -> tuple[str, ...]:
    """A NULL-terminated ``char **`` (aliases) as text."""
    found, i = [], 0
    while array and array[i]:
        found.append(array[i].decode("utf-8", "replace"))
        i += 1
    return tuple(found)


@functools.cache
def _libidn2() -> ctypes.CDLL | None:
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
    assert out.value is not None  # libidn2 sets it when it returns 0
    try:
        return ctypes.string_at(out.value)
    finally:
        lib.idn2_free(out)


def aliases(name: bytes, family: int) -> tuple[str, ...] | None:
    """The names ``gethostbyname2(name, family)`` reports as aliases (the CNAME
    chain), or None when the name has no address of that family."""
    lib = libc()
    if lib is None:
        return None
    h_errno = ctypes.c_int()
    return _reentrant(Hostent, lib.gethostbyname2_r, (name, family), (ctypes.byref(h_errno),), _host_aliases)


def _host_aliases(entry: Hostent) -> tuple[str, ...]:
    return strings(entry.h_aliases)


def service(key: str | int, protocol: str | None) -> ServiceFields | None:
    """The entry getservbyname_r (a name) or getservbyport_r (a port) returns."""
    lib = libc()
    if lib is None:
        return None
    proto = None if protocol is None else protocol.encode()
    if isinstance(key, int):
        return _reentrant(Servent, lib.getservbyport_r, (socket.htons(key), proto), (), _service_fields)
    return _reentrant(Servent, lib.getservbyname_r, (key.encode(), proto), (), _service_fields)


def services() -> list[ServiceFields] | None:
    """Every entry getservent walks (nsswitch.conf's sources); None if it cannot."""
    lib = libc()
    if lib is None:
        return None
    entries = []
    with _walk_lock:
        lib.setservent(1)
        try:
            while entry := lib.getservent():
                entries.append(_service_fields(entry.contents))  # the next call reuses its buffer
        finally:
            lib.endservent()
    return entries


def _service_fields(entry: Servent) -> ServiceFields:
    name, proto = entry.s_name.decode("utf-8", "replace"), entry.s_proto.decode("utf-8", "replace")
    return name, socket.ntohs(entry.s_port & 0xFFFF), proto, strings(entry.s_aliases)
