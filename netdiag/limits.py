"""Process limits: thousands of sockets (a TCP sweep, a busy listener) need
thousands of file descriptors."""

from __future__ import annotations

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
