"""What an errno from a send or a connect means: one table for every command.

A probe's send or connect fails for three different reasons that must never
be folded together: the destination cannot be reached (an answer: the host is
unreachable), the kernel has no room right now (back-pressure: send again
later), or the probe could not be made at all. The words for each reason are
the same whichever method or command met it.
"""

from __future__ import annotations

import errno
import os
from enum import Enum


class Outcome(Enum):
    ANSWERED = "answered"  # the host is there (a TCP RST, a SYN-ACK)
    UNREACHABLE = "unreachable"  # the network says it cannot be reached
    SILENT = "silent"  # no answer: a timeout
    BACK_PRESSURE = "back-pressure"  # buffers or the neighbour table are full: try again later
    FAILED = "failed"  # the probe could not be made


_TABLE: dict[int, tuple[Outcome, str]] = {
    0: (Outcome.ANSWERED, "connected"),
    errno.EISCONN: (Outcome.ANSWERED, "connected"),
    errno.ECONNREFUSED: (Outcome.ANSWERED, "connection refused"),
    errno.ETIMEDOUT: (Outcome.SILENT, "timed out"),
    errno.ENETUNREACH: (Outcome.UNREACHABLE, "network unreachable"),
    errno.EHOSTUNREACH: (Outcome.UNREACHABLE, "host unreachable"),
    errno.EHOSTDOWN: (Outcome.UNREACHABLE, "host is down"),
    errno.EADDRNOTAVAIL: (Outcome.UNREACHABLE, "address not available"),
    errno.EACCES: (Outcome.UNREACHABLE, "not permitted (a broadcast address?)"),
    errno.EPERM: (Outcome.UNREACHABLE, "prohibited by a local firewall"),
    errno.EINVAL: (Outcome.UNREACHABLE, "invalid destination"),
    errno.EPROTO: (Outcome.UNREACHABLE, "protocol error"),
    errno.ENOBUFS: (Outcome.BACK_PRESSURE, "no buffer space (neighbour table full)"),
    errno.EAGAIN: (Outcome.BACK_PRESSURE, "send buffer full"),
    errno.ECONNRESET: (Outcome.ANSWERED, "connection reset by peer"),
    errno.EPIPE: (Outcome.ANSWERED, "broken pipe"),
}

# The same ICMP error in the words of the system ping.
_PING_WORDS = {
    "destination host unreachable": "host unreachable",
    "destination net unreachable": "network unreachable",
    "destination port unreachable": "port unreachable",
    "destination host prohibited": "host administratively prohibited",
    "destination net prohibited": "network administratively prohibited",
    "time to live exceeded": "time exceeded",
    "packet filtered": "communication administratively prohibited",
    # ping -6 (iputils): "Destination unreachable: <what>"
    "destination unreachable: no route": "network unreachable",
    "destination unreachable: address unreachable": "host unreachable",
    "destination unreachable: port unreachable": "port unreachable",
    "destination unreachable: administratively prohibited": "communication administratively prohibited",
    "destination unreachable: beyond scope": "beyond scope of source address",
}


def classify(code: int) -> tuple[Outcome, str]:
    """The outcome and the words for an errno (unknown ones: FAILED)."""
    known = _TABLE.get(code)
    if known is not None:
        return known
    return Outcome.FAILED, os.strerror(code).lower()


def reason(code: int) -> str:
    return classify(code)[1]


def ping_reason(text: str) -> str:
    """The system ping's description of an ICMP error, in our vocabulary."""
    words = text.strip().lower()
    return _PING_WORDS.get(words, words)
