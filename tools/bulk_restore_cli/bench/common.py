"""What every part of the benchmark shares: the functions' log output, Lambda's CPU share, memory."""

from __future__ import annotations

import io
import os
import resource
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

# Lambda gives a function CPU in proportion to its memory: one full vCPU at 1,769 MB. Code that
# takes 1 CPU-second here takes about 1769/512 = 3.5 s in a 512 MB function (this machine's
# cores counted as equal to Lambda's arm64 vCPU).
FULL_VCPU_MB = 1769


def cpu_scale(memory_mb: int) -> float:
    return max(1.0, FULL_VCPU_MB / memory_mb)


def peak_rss_mb() -> float:
    """This process's peak resident memory so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return peak_rss_mb()


class LogSink(io.TextIOBase):
    """Stands in for the functions' stdout (CloudWatch Logs): counts the bytes, per function."""

    def __init__(self) -> None:
        self.bytes: Counter[str] = Counter()
        self.lines: Counter[str] = Counter()
        self.function = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.bytes[self.function] += len(text.encode("utf-8", "replace"))
        self.lines[self.function] += text.count("\n")
        return len(text)

    @property
    def total_bytes(self) -> int:
        return sum(self.bytes.values())


LAMBDA_LOG_ENV = {
    # As template.yaml sets them: the functions log at INFO, as one service.
    "POWERTOOLS_SERVICE_NAME": "bulk-restore",
    "POWERTOOLS_LOG_LEVEL": "INFO",
}


@contextmanager
def functions_logging_to(sink: LogSink) -> Iterator[LogSink]:
    """Run with the functions' log handlers writing to ``sink``.

    Powertools binds its handler to the stdout of the moment the logger is made, so the stream
    is swapped on the handlers themselves too.
    """
    import logging

    for name, value in LAMBDA_LOG_ENV.items():
        os.environ.setdefault(name, value)
    saved_stdout = sys.stdout
    swapped: list[tuple[logging.StreamHandler, object]] = []
    sys.stdout = sink  # loggers made from here on write to the sink
    try:
        for name in [*list(logging.root.manager.loggerDict), "bulk-restore"]:
            for handler in logging.getLogger(name).handlers:
                if isinstance(handler, logging.StreamHandler) and handler.stream in (saved_stdout, sys.__stdout__):
                    swapped.append((handler, handler.stream))
                    handler.setStream(sink)
        yield sink
    finally:
        sys.stdout = saved_stdout
        for handler, stream in swapped:
            handler.setStream(stream)  # type: ignore[arg-type]


@contextmanager
def local_aws_layers() -> Iterator[None]:
    """moto as the local stack runs it: with its own DynamoDB, DynamoDB Streams and SQS layers
    (local/dynamodb.py, local/dynamodb_streams.py, local/sqs.py), whose calls cost the same
    whatever a table or queue holds."""
    from bulk_restore_cli.local import sqs as sqs_layer
    from bulk_restore_cli.local.dynamodb import DynamoDBEmulation
    from bulk_restore_cli.local.dynamodb_streams import DynamoDBStreamsEmulation

    had_sqs = sqs_layer.installed()
    with DynamoDBEmulation(), DynamoDBStreamsEmulation():
        sqs_layer.install()
        try:
            yield
        finally:
            if not had_sqs:
                sqs_layer.uninstall()
