"""Exit statuses: the one convention every command follows."""

from enum import IntEnum


class ExitStatus(IntEnum):
    OK = 0
    NEGATIVE = 1  # ran fine, but the answer is no: not found, unreachable, nobody up
    BAD_INPUT = 2  # bad arguments or input; nothing was sent
    CANNOT_RUN = 3  # could not run at all: no socket permitted, no thread, no descriptor
    INTERRUPTED = 130  # Ctrl-C (128 + SIGINT)
