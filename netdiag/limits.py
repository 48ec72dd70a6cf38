"""Process limits: thousands of sockets (a TCP sweep, a busy listener) need
thousands of file descriptors."""

from __future__ import annotations

import os
import resource


def raise_descriptor_limit(ceiling: int = 1 << 20) -> int:
    """Lift the soft limit on open files to the hard one (or ``ceiling`` when
    that is unlimited); return the soft limit in force afterwards."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = ceiling if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
        except (ValueError, OSError):
            pass
    return soft


def descriptors_left(spare: int) -> int:
    """Descriptors this process may still open, keeping ``spare`` for
    everything else (the resolver, the terminal), after lifting the soft
    limit as far as it goes."""
    limit = raise_descriptor_limit(65536)
    try:
        in_use = len(os.listdir("/proc/self/fd"))
    except OSError:
        in_use = 16
    return max(0, limit - in_use - min(spare, limit // 4))
