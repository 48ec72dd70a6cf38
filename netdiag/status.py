"""Exit statuses: the one convention every command follows."""

from enum import IntEnum


class ExitStatus(IntEnum):
    OK = 0
    NEGATIVE = 1  # ran fine, but the answer is no: not found, unreachable, nobody up
    BAD_INPUT = 2  # bad arguments or input, or a probe this process may not use
    INTERRUPTED = 130  # Ctrl-C (128 + SIGINT)
