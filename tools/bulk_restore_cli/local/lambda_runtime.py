"""Event sources as Lambda runs them: SQS batches with partial failure, schedules, a Lambda context.

Used by the local stack (pollers in threads) and by the tests (``drain`` runs queues dry in the
calling thread), so both see the semantics a deployed stack has:
- a batch is up to BatchSize messages gathered within MaximumBatchingWindowInSeconds;
- with ReportBatchItemFailures, only the reported messages stay on the queue; a handler that
  raises fails the whole batch; on a FIFO queue everything after the first failure stays too;
- a failed message becomes visible again (here after ``retry_delay`` seconds instead of the
  queue's full visibility timeout, so a local run does not wait half an hour), and the queue's
  redrive policy moves it to its dead-letter queue after maxReceiveCount receives.

In the local stack, a Poller runs each SQS event source as Lambda does: one receiver gathers
batches and hands each to an invocation, with at most ``concurrency`` invocations at a time
(ScalingConfig.MaximumConcurrency, else DEFAULT_CONCURRENCY). On a FIFO queue, SQS itself keeps
a message group to one batch at a time. An idle receiver waits in a long poll (no CPU); a
stopping one waits for nothing but the invocations under way.
"""

from __future__ import annotations

import importlib
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Handler = Callable[[dict[str, Any], Any], Any]
log = logging.getLogger("bulk_restore_cli.local")

# Concurrent invocations of an SQS event source whose template sets no
# ScalingConfig.MaximumConcurrency. Lambda starts such a source at five concurrent batches (and
# scales on from there); the local stack stays at five, which one machine can run.
DEFAULT_CONCURRENCY = 5
# How long an idle receiver waits in one ReceiveMessage (SQS long polling): the endpoint answers
# at once when a message comes, so this only bounds how often an idle source asks.
LONG_POLL_SECONDS = 5


def load_handler(path: str) -> Handler:
    """ "package.module.function" -> the function."""
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


class LambdaContext:
    """The parts of the Lambda context object that handlers and Powertools use."""

    def __init__(
        self, function_name: str, timeout_s: int = 60, memory_mb: int = 512, region: str = "us-east-1", account: str = "123456789012"
    ):
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
    max_concurrency: int | None = None  # ScalingConfig.MaximumConcurrency; None: DEFAULT_CONCURRENCY
    invocations: int = field(default=0, init=False)
    _count_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @property
    def fifo(self) -> bool:
        return self.queue_url.endswith(".fifo")

    @property
    def concurrency(self) -> int:
        """Most invocations at a time: the template's MaximumConcurrency, else DEFAULT_CONCURRENCY."""
        return self.max_concurrency or DEFAULT_CONCURRENCY

    def _receive_call(self, sqs: Any, count: int, wait_seconds: int) -> list[dict[str, Any]]:
        return sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=min(10, count),
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
            VisibilityTimeout=max(self.timeout_s * 6, 30),
            WaitTimeSeconds=wait_seconds,
        ).get("Messages", [])

    def _receive(self, sqs: Any, wait_seconds: int = 0, stop: threading.Event | None = None) -> list[dict[str, Any]]:
        """One batch: up to BatchSize messages gathered within the batching window.

        ``wait_seconds`` (long polling) is how long to wait for the first message. As in Lambda,
        the batching window opens with the first message: an empty queue answers at once (or
        after ``wait_seconds``) instead of being polled for the whole window. A FIFO batch is
        what one receive gives (Lambda does not batch FIFO queues over a window).
        """
        messages = self._receive_call(sqs, self.batch_size, wait_seconds)
        if not messages or self.fifo:
            return messages
        deadline = time.monotonic() + self.window_seconds
        while len(messages) < self.batch_size:
            left = deadline - time.monotonic()
            # While messages keep coming, take them; once the queue is dry, wait out the window:
            # in long polls while a second or more is left, then in short steps.
            got = self._receive_call(sqs, self.batch_size - len(messages), int(left) if left >= 1 else 0)
            messages.extend(got)
            if got:
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                break
            if left < 1:
                if stop is None:
                    time.sleep(min(0.1, left))
                elif stop.wait(min(0.1, left)):
                    break
        return messages

    def poll_once(self, sqs: Any) -> int:
        """Receive one batch and invoke the function with it. Returns the number of messages."""
        messages = self._receive(sqs)
        if messages:
            self.invoke(sqs, messages)
        return len(messages)

    def invoke(self, sqs: Any, messages: list[dict[str, Any]]) -> set[str]:
        """Invoke the function with a received batch and settle it. Returns the ids of the failed messages."""
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
        with self._count_lock:
            self.invocations += 1
        try:
            result = self.handler(event, LambdaContext(self.function_name, self.timeout_s, region=self.region))
        except Exception:
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
        return failed


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


class Poller:
    """Runs one SQS event source in the background, as Lambda does, until stopped.

    One receiver thread gathers batches (long polling while the queue is empty) whenever one of
    ``source.concurrency`` invocation slots is free, and hands each batch to an invocation thread.
    Only one receive is under way at a time, so no message is handed out twice.

    On a FIFO queue a long poll would spin in the endpoint while a message group waits for a
    batch of ours to end, so while invocations of a FIFO source are under way the receiver asks
    without waiting and then sleeps until one of them ends (or ``idle_sleep`` passes).
    """

    def __init__(
        self,
        source: SqsEventSource,
        sqs: Any,
        stop: threading.Event,
        idle_sleep: float = 0.5,
        on_error: Callable[[Exception], None] | None = None,
        long_poll_seconds: int = LONG_POLL_SECONDS,
        environment: Callable[[], None] | None = None,
    ):
        self.source, self.sqs, self.stop_event, self.idle_sleep, self.on_error = source, sqs, stop, idle_sleep, on_error
        self.long_poll_seconds = long_poll_seconds
        self.environment = environment  # run first in each invocation thread: makes it an execution environment of its own
        self.name = f"poller-{source.function_name}"
        self._slots = threading.Semaphore(source.concurrency)
        self._batches: queue.SimpleQueue[list[dict[str, Any]] | None] = queue.SimpleQueue()
        self._ended = threading.Event()  # set when an invocation ends: a FIFO receiver may ask again
        self._lock = threading.Lock()
        self._running = 0  # invocations under way
        self._fifo_short_until = 0.0
        self._receiver = threading.Thread(target=self._receive_loop, name=f"{self.name}-receive", daemon=True)
        self._invokers = [
            threading.Thread(target=self._invoke_loop, name=f"{self.name}-{n}", daemon=True) for n in range(source.concurrency)
        ]

    def start(self) -> Poller:
        for thread in (*self._invokers, self._receiver):
            thread.start()
        return self

    @property
    def running(self) -> int:
        """Invocations under way."""
        return self._running

    def is_alive(self) -> bool:
        """True until every invocation thread has ended (after the stop, once its batch is done)."""
        return any(thread.is_alive() for thread in self._invokers)

    def join(self, timeout: float | None = None) -> None:
        """Once stopped: wait for the invocations under way, and for the batches already handed
        out. A receive waiting in a long poll is not waited for (what it gets is left on the
        queue, to come back after its visibility timeout)."""
        if self.stop_event.is_set():
            for _ in self._invokers:
                self._batches.put(None)
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self._invokers:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))

    def _receive_loop(self) -> None:
        source = self.source
        try:
            while not self.stop_event.is_set():
                if not self._slots.acquire(timeout=0.5):
                    continue
                handed = False
                try:
                    waiting_fifo = source.fifo and (self._running > 0 or time.monotonic() < self._fifo_short_until)
                    self._ended.clear()
                    messages = source._receive(self.sqs, 0 if waiting_fifo else self.long_poll_seconds, self.stop_event)
                    if messages and not self.stop_event.is_set():
                        with self._lock:
                            self._running += 1
                        self._batches.put(messages)
                        handed = True
                    elif waiting_fifo:
                        self._ended.wait(self.idle_sleep)
                except Exception as exc:
                    if not self.stop_event.is_set() and self.on_error:
                        self.on_error(exc)
                    self.stop_event.wait(1.0)
                finally:
                    if not handed:
                        self._slots.release()
        finally:
            for _ in self._invokers:
                self._batches.put(None)

    def _invoke_loop(self) -> None:
        if self.environment is not None:
            self.environment()
        while True:
            messages = self._batches.get()
            if messages is None:
                return
            try:
                failed = self.source.invoke(self.sqs, messages)
                if failed and self.source.fifo:  # the group's failed messages come back after retry_delay
                    self._fifo_short_until = time.monotonic() + self.source.retry_delay + 1
            except Exception as exc:
                if self.on_error:
                    self.on_error(exc)
            finally:
                with self._lock:
                    self._running -= 1
                self._slots.release()
                self._ended.set()


class Scheduler(threading.Thread):
    """Fires schedule sources at their rate until stopped.

    Each run is an invocation of its own thread, so a long run of one schedule never holds up
    another; a schedule whose previous run has not ended skips its turn (logged), as one run at
    a time is what its function expects. Runs keep to their grid (start + k x rate), whatever
    a run takes.
    """

    def __init__(
        self,
        sources: list[ScheduleSource],
        stop: threading.Event,
        on_error: Callable[[Exception], None] | None = None,
        on_skip: Callable[[ScheduleSource], None] | None = None,
    ):
        super().__init__(name="scheduler", daemon=True)
        self.sources, self.stop_event, self.on_error, self.on_skip = sources, stop, on_error, on_skip
        self._runs: dict[int, threading.Thread] = {}
        self.fired: list[tuple[str, float, float]] = []  # (function, due, started), monotonic: the last runs, for a look

    def run(self) -> None:
        next_at = {id(s): time.monotonic() + s.every_seconds for s in self.sources}
        while not self.stop_event.is_set():
            now = time.monotonic()
            for source in self.sources:
                due = next_at[id(source)]
                if now < due:
                    continue
                missed = int((now - due) // source.every_seconds)  # runs that cannot be caught up
                next_at[id(source)] = due + (missed + 1) * source.every_seconds
                previous = self._runs.get(id(source))
                if previous is not None and previous.is_alive():
                    if self.on_skip:
                        self.on_skip(source)
                    continue
                run = threading.Thread(target=self._fire, args=(source, due), name=f"schedule-{source.function_name}", daemon=True)
                self._runs[id(source)] = run
                run.start()
            self.stop_event.wait(max(0.0, min(next_at.values()) - time.monotonic()) if next_at else None)

    def _fire(self, source: ScheduleSource, due: float) -> None:
        started = time.monotonic()
        self.fired.append((source.function_name, due, started))
        del self.fired[:-100]
        log.info("%s: scheduled run, %.3f s after its time", source.function_name, started - due)
        try:
            source.fire()
        except Exception as exc:
            if self.on_error:
                self.on_error(exc)

    def join(self, timeout: float | None = None) -> None:
        """Wait for the scheduler and for the runs under way."""
        deadline = None if timeout is None else time.monotonic() + timeout
        super().join(timeout)
        for run in list(self._runs.values()):
            run.join(None if deadline is None else max(0.0, deadline - time.monotonic()))

    def is_alive(self) -> bool:
        return super().is_alive() or any(run.is_alive() for run in self._runs.values())
