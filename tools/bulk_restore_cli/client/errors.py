"""What the `bulk-restore` command answers a mistake or a failure with: one line and an exit code."""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1  # the command ran and failed (the API or AWS refused, a job did not come out as asked)
EXIT_USAGE = 2  # nothing was done: something to fix first, said in one line
EXIT_INTERRUPTED = 130


class CliError(Exception):
    """What the user must change, in one line; exit code 2 unless told otherwise."""

    def __init__(self, message: str, code: int = EXIT_USAGE):
        super().__init__(message)
        self.code = code
