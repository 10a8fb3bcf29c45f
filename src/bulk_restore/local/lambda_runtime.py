"""Event sources as Lambda runs them: SQS batches with partial failure, schedules, a Lambda context.

Used by the local stack (pollers in threads) and by the tests (``drain`` runs queues dry in the
calling thread), so both see the semantics a deployed stack has:
- a batch is up to BatchSize messages gathered within MaximumBatchingWindowInSeconds;
- with ReportBatchItemFailures, only the reported messages stay on the queue; a handler that
  raises fails the whole batch; on a FIFO queue everything after the first failure stays too;
- a failed message becomes visible again (here after ``retry_delay`` seconds instead of the
  queue's full visibility timeout, so a local run does not wait half an hour), and the queue's
  redrive policy moves it to its dead-letter queue after maxReceiveCount receives.
"""

from __future__ import annotations

import importlib
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Handler = Callable[[dict[str, Any], Any], Any]


def load_handler(path: str) -> Handler:
    """"package.module.function" -> the function."""
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


class LambdaContext:
    """The parts of the Lambda context object that handlers and Powertools use."""

    def __init__(self, function_name: str, timeout_s: int = 60, memory_mb: int = 512, region: str = "us-east-1", account: str = "123456789012"):
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = memory_mb
        self.invoked_function_arn = f"arn:aws:lambda:{region}:{account}:function:{function_name}"
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "local"
        self._deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def _message_attributes(raw: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for name, attr in (raw or {}).items():
        out[name] = {
            "stringValue": attr.get("StringValue"),
            "binaryValue": attr.get("BinaryValue"),
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": attr.get("DataType", "String"),
        }
    return out


@dataclass
class SqsEventSource:
    """An SQS event source mapping: queue -> function."""

    function_name: str
    handler: Handler
    queue_url: str
    queue_arn: str
    batch_size: int = 10
    window_seconds: float = 0.0
    report_failures: bool = False
    timeout_s: int = 60
    retry_delay: int = 1
    region: str = "us-east-1"
    invocations: int = field(default=0, init=False)

    @property
    def fifo(self) -> bool:
        return self.queue_url.endswith(".fifo")

    def _receive(self, sqs: Any) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        # As in Lambda, the batching window opens with the first message: an empty queue answers
        # at once instead of being polled for the whole window.
        deadline = time.monotonic()
        while len(messages) < self.batch_size:
            got = sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=min(10, self.batch_size - len(messages)),
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
                VisibilityTimeout=max(self.timeout_s * 6, 30),
                WaitTimeSeconds=0,
            ).get("Messages", [])
            if got and not messages:
                deadline = time.monotonic() + self.window_seconds
            messages.extend(got)
            if self.fifo or not messages or not got and time.monotonic() >= deadline:
                break
            if not got:
                time.sleep(0.05)
        return messages

    def poll_once(self, sqs: Any) -> int:
        """Receive one batch and invoke the function with it. Returns the number of messages."""
        messages = self._receive(sqs)
        if not messages:
            return 0
        event = {
            "Records": [
                {
                    "messageId": m["MessageId"],
                    "receiptHandle": m["ReceiptHandle"],
                    "body": m["Body"],
                    "attributes": m.get("Attributes", {}),
                    "messageAttributes": _message_attributes(m.get("MessageAttributes", {})),
                    "md5OfBody": m.get("MD5OfBody", ""),
                    "eventSource": "aws:sqs",
                    "eventSourceARN": self.queue_arn,
                    "awsRegion": self.region,
                }
                for m in messages
            ]
        }
        self.invocations += 1
        try:
            result = self.handler(event, LambdaContext(self.function_name, self.timeout_s, region=self.region))
        except Exception:  # noqa: BLE001 - an invocation error fails the whole batch, as in Lambda
            failed = {m["MessageId"] for m in messages}
        else:
            failed = set()
            if self.report_failures and isinstance(result, dict):
                failed = {f["itemIdentifier"] for f in result.get("batchItemFailures") or []}
                if self.fifo and failed:
                    first = min(i for i, m in enumerate(messages) if m["MessageId"] in failed)
                    failed |= {m["MessageId"] for m in messages[first:]}
        done = [m for m in messages if m["MessageId"] not in failed]
        for i in range(0, len(done), 10):
            sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(done[i : i + 10])],
            )
        for m in messages:
            if m["MessageId"] in failed:
                sqs.change_message_visibility(QueueUrl=self.queue_url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=self.retry_delay)
        return len(messages)


@dataclass
class ScheduleSource:
    """An EventBridge schedule ``rate(N unit)``: invoke the function every N seconds."""

    function_name: str
    handler: Handler
    every_seconds: float
    timeout_s: int = 60
    region: str = "us-east-1"
    input: Any = None  # the rule target's constant Input: sent instead of the scheduled event

    def fire(self) -> None:
        if self.input is not None:
            self.handler(self.input, LambdaContext(self.function_name, self.timeout_s, region=self.region))
            return
        event = {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "region": self.region,
            "resources": [],
            "detail": {},
        }
        self.handler(event, LambdaContext(self.function_name, self.timeout_s, region=self.region))


def drain(sources: list[SqsEventSource], sqs: Any, max_rounds: int = 10_000) -> int:
    """Run every source until no queue gives a message. Returns the number of messages handled."""
    handled = 0
    for _ in range(max_rounds):
        round_total = sum(source.poll_once(sqs) for source in sources)
        handled += round_total
        if round_total == 0:
            return handled
    raise RuntimeError("queues did not drain")


class Poller(threading.Thread):
    """Polls one event source in the background until stopped."""

    def __init__(self, source: SqsEventSource, sqs: Any, stop: threading.Event, idle_sleep: float = 0.2, on_error: Callable[[Exception], None] | None = None):
        super().__init__(name=f"poller-{source.function_name}", daemon=True)
        self.source, self.sqs, self.stop_event, self.idle_sleep, self.on_error = source, sqs, stop, idle_sleep, on_error

    def run(self) -> None:
        while not self.stop_event.is_set():
            try:
                if self.source.poll_once(self.sqs) == 0:
                    self.stop_event.wait(self.idle_sleep)
            except Exception as exc:  # noqa: BLE001 - the emulator itself failed; keep polling
                if self.on_error:
                    self.on_error(exc)
                self.stop_event.wait(1.0)


class Scheduler(threading.Thread):
    """Fires schedule sources at their rate until stopped."""

    def __init__(self, sources: list[ScheduleSource], stop: threading.Event, on_error: Callable[[Exception], None] | None = None):
        super().__init__(name="scheduler", daemon=True)
        self.sources, self.stop_event, self.on_error = sources, stop, on_error

    def run(self) -> None:
        next_at = {id(s): time.monotonic() + s.every_seconds for s in self.sources}
        while not self.stop_event.is_set():
            now = time.monotonic()
            for source in self.sources:
                if now >= next_at[id(source)]:
                    next_at[id(source)] = now + source.every_seconds
                    try:
                        source.fire()
                    except Exception as exc:  # noqa: BLE001
                        if self.on_error:
                            self.on_error(exc)
            self.stop_event.wait(0.2)
