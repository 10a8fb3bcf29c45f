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

A DynamoDB stream event source (``DynamoDBStreamEventSource``, SAM's ``Type: DynamoDB``) reads the
stream through the DynamoDB Streams API, as Lambda's event source mapping does: each shard in
order, one batch at a time, a shard's children only once it is finished; batch size, batching
window, filters, retries, bisection, partial batch responses, record age, the OnFailure
destination's invocation record and tumbling windows as the Lambda developer guide describes them
(the class's docstring says how). ``drain_streams`` runs stream sources dry in the calling thread;
a ``StreamPoller`` runs one in the background, polling its shards four times a second when idle.
"""

from __future__ import annotations

import base64
import datetime as dt
import importlib
import json
import logging
import math
import queue
import threading
import time
import uuid
from collections import deque
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
TRICKLE_SECONDS = 0.1  # within a batching window, how often a queue giving a few messages at a time is asked again


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


def _paused(stop: threading.Event | None, seconds: float) -> bool:
    """Wait ``seconds``; True if ``stop`` was set meanwhile."""
    if stop is None:
        time.sleep(seconds)
        return False
    return stop.wait(seconds)


class ApiSqs:
    """An event source mapping's receives and deletes over SQS's API, as a client in the account
    makes them: 10 messages to a ReceiveMessage and to a DeleteMessageBatch. Anything else asked of
    it (a visibility change) is the SQS client's."""

    def __init__(self, client: Any):
        self.client = client

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def per_receive(self, count: int) -> int:
        """The most messages one receive of ``count`` hands out."""
        return min(10, count)

    def receive(self, queue_url: str, count: int, visibility_timeout: int, wait_seconds: int = 0) -> list[dict[str, Any]]:
        """Up to ``count`` messages (10 at most), each with every attribute; ``wait_seconds``: a long poll's."""
        answer = self.client.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=min(10, count),
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
            VisibilityTimeout=visibility_timeout,
            WaitTimeSeconds=wait_seconds,
        )
        messages: list[dict[str, Any]] = answer.get("Messages", [])
        return messages

    def delete(self, queue_url: str, receipt_handles: list[str]) -> list[dict[str, Any]]:
        """Delete these messages; the entries SQS could not delete."""
        failed: list[dict[str, Any]] = []
        for i in range(0, len(receipt_handles), 10):
            entries = [{"Id": str(n), "ReceiptHandle": handle} for n, handle in enumerate(receipt_handles[i : i + 10])]
            failed += self.client.delete_message_batch(QueueUrl=queue_url, Entries=entries).get("Failed", [])
        return failed


def _transport(sqs: Any) -> ApiSqs:
    """A poller's SQS: as given, or a plain SQS client's calls over SQS's API."""
    return sqs if isinstance(sqs, ApiSqs) else ApiSqs(sqs)


class EndpointSqs(ApiSqs):
    """An event source mapping's receives and deletes on the local stack's endpoint.

    Lambda's pollers run inside AWS; on the local stack they run in the function process and reach
    SQS over its endpoint. Their receives and deletes go through the endpoint's poller path (one
    request a batch, ``local/sqs.py``, ``poll_request``) instead of a signed request per 10 messages;
    a long poll on an empty queue, and a visibility change, go over SQS's API (``ApiSqs``).
    """

    def __init__(self, client: Any, endpoint_url: str, region: str):
        from urllib.parse import urlsplit

        super().__init__(client)
        self.region = region
        address = urlsplit(endpoint_url)
        self.host, self.port = address.hostname or "127.0.0.1", address.port or 80
        self._local = threading.local()  # a kept-alive connection per thread

    def per_receive(self, count: int) -> int:
        return count  # a FIFO queue's: 10 at most, as the endpoint hands them out

    def receive(self, queue_url: str, count: int, visibility_timeout: int, wait_seconds: int = 0) -> list[dict[str, Any]]:
        """Up to ``count`` messages, each as boto3's ``receive_message`` gives it with every attribute;
        none there and ``wait_seconds``: a long poll over SQS's API waits for the next."""
        answer = self._call(
            "ReceiveMessage", {"QueueUrl": queue_url, "MaxNumberOfMessages": count, "VisibilityTimeout": visibility_timeout}
        )
        messages: list[dict[str, Any]] = answer["Messages"]
        for message in messages:
            for value in (message.get("MessageAttributes") or {}).values():  # binary values as boto3 parses them
                if "BinaryValue" in value:
                    value["BinaryValue"] = base64.b64decode(value["BinaryValue"])
                if value.get("BinaryListValues"):
                    value["BinaryListValues"] = [base64.b64decode(v) for v in value["BinaryListValues"]]
        if messages or not wait_seconds:
            return messages
        return super().receive(queue_url, count, visibility_timeout, wait_seconds)

    def delete(self, queue_url: str, receipt_handles: list[str]) -> list[dict[str, Any]]:
        """Delete these messages; the ones that could not be, with SQS's code."""
        failed: list[dict[str, Any]] = self._call("DeleteMessageBatch", {"QueueUrl": queue_url, "ReceiptHandles": receipt_handles})[
            "Failed"
        ]
        return failed

    def _call(self, action: str, document: dict[str, Any]) -> dict[str, Any]:
        import http.client

        from bulk_restore_cli.local.sqs import POLL_PATH

        body = json.dumps({**document, "Region": self.region}).encode()
        for attempt in (1, 2):  # a kept-alive connection the endpoint closed meanwhile: once more on a new one
            connection = getattr(self._local, "connection", None)
            if connection is None:
                connection = self._local.connection = http.client.HTTPConnection(self.host, self.port, timeout=60)
            try:
                connection.request("POST", f"{POLL_PATH}?Action={action}", body, {"Content-Type": "application/json"})
                answer = connection.getresponse()
                data = answer.read()
            except (OSError, http.client.HTTPException):
                connection.close()
                self._local.connection = None
                if attempt == 2:
                    raise
                continue
            if answer.status != 200:
                raise RuntimeError(f"SQS {action} on the local endpoint answered {answer.status}: {data[:300]!r}")
            parsed: dict[str, Any] = json.loads(data)
            return parsed
        raise AssertionError("unreachable")


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

    def _visibility(self) -> int:
        return max(self.timeout_s * 6, 30)

    def _receive(self, sqs: Any, wait_seconds: int = 0, stop: threading.Event | None = None) -> list[dict[str, Any]]:
        """One batch: up to BatchSize messages gathered within the batching window.

        ``wait_seconds`` (long polling) is how long to wait for the first message. As in Lambda,
        the batching window opens with the first message: an empty queue answers at once (or
        after ``wait_seconds``) instead of being polled for the whole window. A FIFO batch is
        what one receive gives (Lambda does not batch FIFO queues over a window).
        """
        sqs = _transport(sqs)
        messages = sqs.receive(self.queue_url, self.batch_size, self._visibility(), wait_seconds)
        if not messages or self.fifo:
            return messages
        deadline = time.monotonic() + self.window_seconds
        while len(messages) < self.batch_size:
            left = deadline - time.monotonic()
            # While the queue holds more than a receive takes, take them at once; while messages
            # trickle in, look again every TRICKLE_SECONDS (not in a loop that gets a few each
            # time); once the queue is dry, wait out the window: in long polls while a second or
            # more is left, then in short steps.
            ask = self.batch_size - len(messages)
            got = sqs.receive(self.queue_url, ask, self._visibility(), int(left) if left >= 1 else 0)
            messages.extend(got)
            if len(got) >= sqs.per_receive(ask):
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                break
            if (got or left < 1) and _paused(stop, min(TRICKLE_SECONDS, left)):
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
        done = [m["ReceiptHandle"] for m in messages if m["MessageId"] not in failed]
        if done:
            _transport(sqs).delete(self.queue_url, done)
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


# ---- DynamoDB streams ---------------------------------------------------------------------------

STREAM_BATCH_SIZE = 100  # BatchSize's default for a DynamoDB stream
MAX_STREAM_BATCH_SIZE = 10_000
STREAM_POLL_SECONDS = 0.25  # Lambda polls each shard four times a second
STREAM_RETENTION_SECONDS = 24 * 3600  # a record older than this has left the stream
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024  # a synchronous invocation's payload
MAX_WINDOW_STATE_BYTES = 1024 * 1024  # a tumbling window's state, per shard
STARTING_POSITIONS = ("TRIM_HORIZON", "LATEST")


class FilterError(ValueError):
    """A FilterCriteria pattern this runtime cannot apply: what is wrong with it."""


_NUMERIC_OPERATORS = {
    "=": lambda a, b: a == b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}
_MISSING = object()


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_rule(rule: Any, where: str) -> None:
    if rule is None or isinstance(rule, (str, bool)) or _is_number(rule):
        return
    if not isinstance(rule, dict) or len(rule) != 1:
        raise FilterError(f"{where}: a rule is a value or an object with one operator, not {rule!r}")
    ((operator, argument),) = rule.items()
    if operator in ("prefix", "suffix", "equals-ignore-case"):
        if not isinstance(argument, str):
            raise FilterError(f"{where}: {operator} takes a string, not {argument!r}")
    elif operator == "exists":
        if not isinstance(argument, bool):
            raise FilterError(f"{where}: exists takes true or false, not {argument!r}")
    elif operator == "anything-but":
        values = argument if isinstance(argument, list) else [argument]
        if isinstance(argument, dict):
            if len(argument) != 1 or next(iter(argument)) not in ("prefix", "suffix") or not isinstance(next(iter(argument.values())), str):
                raise FilterError(f"{where}: anything-but takes values, or a prefix or suffix: not {argument!r}")
        elif not values or not all(v is None or isinstance(v, str) or _is_number(v) for v in values):
            raise FilterError(f"{where}: anything-but takes a value or a list of values, not {argument!r}")
    elif operator == "numeric":
        ok = isinstance(argument, list) and len(argument) in (2, 4)
        ok = ok and all(argument[i] in _NUMERIC_OPERATORS and _is_number(argument[i + 1]) for i in range(0, len(argument), 2))
        if not ok:
            raise FilterError(f"{where}: numeric takes [operator, number] or two of them (=, <, <=, >, >=), not {argument!r}")
    else:
        raise FilterError(
            f"{where}: the {operator!r} operator is not supported here (values, prefix, suffix, equals-ignore-case, anything-but, numeric, exists)"
        )


def _check_pattern(pattern: Any, where: str) -> None:
    if not isinstance(pattern, dict) or not pattern:
        raise FilterError(f"{where}: a pattern is a non-empty JSON object")
    for key, value in pattern.items():
        if key == "$or":
            if not isinstance(value, list) or len(value) < 2:
                raise FilterError(f"{where}: $or takes a list of two or more patterns")
            for n, alternative in enumerate(value):
                _check_pattern(alternative, f"{where}.$or[{n}]")
        elif isinstance(value, dict):
            _check_pattern(value, f"{where}.{key}")
        elif isinstance(value, list) and value:
            for rule in value:
                _check_rule(rule, f"{where}.{key}")
        else:
            raise FilterError(f"{where}.{key}: a leaf of a pattern is a non-empty list of rules, not {value!r}")


def parse_filter_criteria(patterns: list[Any]) -> list[dict[str, Any]]:
    """FilterCriteria's patterns (JSON text, as the template gives them, or objects), checked."""
    parsed = []
    for n, pattern in enumerate(patterns):
        if isinstance(pattern, str):
            try:
                pattern = json.loads(pattern)
            except ValueError as exc:
                raise FilterError(f"filter {n}: not JSON ({exc})") from exc
        _check_pattern(pattern, f"filter {n}")
        parsed.append(pattern)
    return parsed


def _rule_matches(rule: Any, value: Any) -> bool:
    if rule is None:
        return value is None
    if isinstance(rule, bool):
        return isinstance(value, bool) and value == rule
    if isinstance(rule, str):
        return isinstance(value, str) and value == rule
    if _is_number(rule):
        return _is_number(value) and value == rule
    ((operator, argument),) = rule.items()
    if operator == "prefix":
        return isinstance(value, str) and value.startswith(argument)
    if operator == "suffix":
        return isinstance(value, str) and value.endswith(argument)
    if operator == "equals-ignore-case":
        return isinstance(value, str) and value.lower() == argument.lower()
    if operator == "exists":
        return bool(argument)  # the field is there (an absent one is matched in _leaf_matches)
    if operator == "anything-but":
        if isinstance(argument, dict):
            ((kind, text),) = argument.items()
            return isinstance(value, str) and not (value.startswith(text) if kind == "prefix" else value.endswith(text))
        return not any(_rule_matches(v, value) for v in (argument if isinstance(argument, list) else [argument]))
    if operator == "numeric":
        return _is_number(value) and all(_NUMERIC_OPERATORS[argument[i]](value, argument[i + 1]) for i in range(0, len(argument), 2))
    return False  # pragma: no cover - patterns are checked first


def _leaf_matches(rules: list[Any], value: Any) -> bool:
    if value is _MISSING:
        return any(isinstance(rule, dict) and rule.get("exists") is False for rule in rules)
    values = value if isinstance(value, list) else [value]  # an array matches if any element does
    return any(_rule_matches(rule, v) for rule in rules for v in values if not (isinstance(rule, dict) and rule.get("exists") is False))


def pattern_matches(pattern: dict[str, Any], event: Any) -> bool:
    """Whether a record (as the function gets it) matches a filter pattern, as Lambda's event
    filtering reads one: every field named must match (a nested object: its own fields), a list
    of rules matches if any does, ``$or`` if any of its patterns does. Values match exactly and by
    type (a DynamoDB number is a string, ``{"N": "5"}``: ``numeric`` never matches it)."""
    for key, expected in pattern.items():
        if key == "$or":
            if not any(pattern_matches(alternative, event) for alternative in expected):
                return False
            continue
        value = event.get(key, _MISSING) if isinstance(event, dict) else _MISSING
        if isinstance(expected, dict):
            if not pattern_matches(expected, value if isinstance(value, dict) else {}):
                return False
        elif not _leaf_matches(expected, value):
            return False
    return True


def _plain(value: Any) -> Any:
    """An attribute value from boto3 (binary as bytes) as the event's JSON has it (base64)."""
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, set):
        return [_plain(v) for v in value]
    return value


_raw = threading.local()


def _keep_body(response_dict: dict[str, Any], customized_response_dict: dict[str, Any], **_: Any) -> None:
    """botocore's ``before-parse`` for GetRecords: when asked, hand the answer's JSON on as it is
    and let the parser walk an empty object instead of every attribute value of every image."""
    if getattr(_raw, "wanted", False) and response_dict.get("status_code") == 200:
        customized_response_dict["RawBody"] = response_dict["body"]
        response_dict["body"] = b"{}"


def _get_records(streams: Any, iterator: str, limit: int) -> dict[str, Any]:
    """GetRecords, its records as the answer's JSON has them (what Lambda's event carries: DynamoDB
    JSON, binary in base64, times in epoch seconds). An error is botocore's, as for any call."""
    events = streams.meta.events
    events.register("before-parse.dynamodb-streams.GetRecords", _keep_body, unique_id="bulk-restore-raw-get-records")
    _raw.wanted = True
    try:
        answer = streams.get_records(ShardIterator=iterator, Limit=limit)
    finally:
        _raw.wanted = False
    body = answer.get("RawBody")
    if body is None:
        return dict(answer)  # a client that parsed it anyway (a stubbed one)
    parsed: dict[str, Any] = json.loads(body)
    return parsed


def _iso_seconds(at: float) -> str:
    return dt.datetime.fromtimestamp(at, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _iso_millis(at: float) -> str:
    return dt.datetime.fromtimestamp(at, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass
class _StreamEntry:
    """A record read from a shard: as the function gets it, with what batching needs."""

    record: dict[str, Any]
    sequence: str
    created: float  # ApproximateCreationDateTime, epoch seconds
    text: str  # its JSON: what it adds to the payload, and what a retry's event is built from
    handed: bool = False  # ``record`` went to an invocation (which may have changed it)

    @property
    def size(self) -> int:
        return len(self.text)


@dataclass
class _StreamBatch:
    entries: list[_StreamEntry]
    retries: int = 0
    invocations: int = 0
    function_error: bool = False  # the last invocation raised
    request_id: str | None = None
    final: bool = False  # a tumbling window's final invocation (no records)
    early: bool = False  # ... ended before its time, its state too large
    not_before: float = 0.0  # monotonic: a failed batch waits ``retry_delay`` before its retry


@dataclass
class _ShardCursor:
    shard_id: str
    parent_id: str | None
    start: str  # where an iterator starts without a record read: TRIM_HORIZON or LATEST
    iterator: str | None = None
    ended: bool = False  # closed, and every record of it read
    finished: bool = False  # ... and handled: its children may be read
    last_read: str | None = None
    buffer: deque[_StreamEntry] = field(default_factory=deque)
    pending: deque[_StreamBatch] = field(default_factory=deque)
    window_start: float | None = None  # the open tumbling window
    state: Any = field(default_factory=dict)  # its state, as the last invocation returned it
    terminate_early: bool = False
    ready_at: float = 0.0  # monotonic: when the last invocation ended, or the shard was found (the batching window opens then)


@dataclass
class DynamoDBStreamEventSource:
    """A DynamoDB stream event source mapping: stream -> function, as Lambda runs one.

    Per shard, in order, one batch at a time; a shard's children only once it is finished:
    - a batch is up to BatchSize records of one shard (and of one tumbling window), gathered until
      it is full, the batching window (which opens when the previous invocation ended) is over, or
      the payload would pass 6 MB; records no filter pattern matches are skipped, counted as
      handled. An empty shard answers at once.
    - A handler that raises fails the batch: it is retried as it was (after ``retry_delay``), or
      split in halves first with BisectBatchOnFunctionError (a split is not a retry). With
      ReportBatchItemFailures, the records before the lowest sequence number reported are done and
      the rest is retried; an identifier that is empty, missing or not in the batch fails it all.
    - When MaximumRetryAttempts retries have failed, or records are older than
      MaximumRecordAgeInSeconds (or the stream's 24 hours), they are discarded and the OnFailure
      destination (an SQS queue or SNS topic) gets Lambda's invocation record for them (condition
      RetryAttemptsExhausted or RecordAgeExpired, DDBStreamBatchInfo); processing goes on after them.
    - TumblingWindowInSeconds: events carry the window, its state (what the last invocation
      returned as ``state``; a response without one fails the invocation), the shard's id and the
      stream's ARN; once a window is over (a record of a later window, its end passed with nothing
      more to read, its shard ended, or its state over 1 MB) a final invocation with no records and
      ``isFinalInvokeForWindow`` is retried until it succeeds.
    - StartingPosition LATEST reads the shards open when the mapping starts (``start``) from their
      newest record on; shards made later, and every shard with TRIM_HORIZON, from their oldest.

    Differences: shards are read in turn by one caller (``poll_once``), not concurrently;
    ParallelizationFactor other than 1 is refused.
    """

    function_name: str
    handler: Handler
    stream_arn: str
    starting_position: str = "TRIM_HORIZON"
    batch_size: int = STREAM_BATCH_SIZE
    window_seconds: float = 0.0  # MaximumBatchingWindowInSeconds
    bisect_on_error: bool = False
    max_retry_attempts: int = -1  # -1: until the records leave the stream
    max_record_age_seconds: int = -1
    report_failures: bool = False
    on_failure: str | None = None  # DestinationConfig.OnFailure.Destination: an SQS queue's or SNS topic's ARN
    filter_patterns: list[Any] = field(default_factory=list)  # FilterCriteria.Filters[].Pattern
    tumbling_window_seconds: int = 0
    parallelization_factor: int = 1
    timeout_s: int = 60
    retry_delay: float = 0.0
    region: str = "us-east-1"
    poll_seconds: float = STREAM_POLL_SECONDS
    clock: Callable[[], float] = field(default=time.time, repr=False)  # epoch seconds: records' ages, windows' ends
    invocations: int = field(default=0, init=False)
    handled: int = field(default=0, init=False)  # records done with: delivered, filtered out or discarded
    discarded: int = field(default=0, init=False)
    _filters: list[dict[str, Any]] = field(default_factory=list, init=False, repr=False)
    _cursors: dict[str, _ShardCursor] = field(default_factory=dict, init=False, repr=False)
    _started: bool = field(default=False, init=False, repr=False)
    _refresh_at: float = field(default=0.0, init=False, repr=False)
    _queue_urls: dict[str, str] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        def refuse(message: str) -> None:
            raise ValueError(f"event source of {self.function_name}: {message}")

        if self.parallelization_factor != 1:
            refuse(f"ParallelizationFactor {self.parallelization_factor} is not supported locally (1 only: one batch per shard at a time)")
        if self.starting_position not in STARTING_POSITIONS:
            refuse(f"StartingPosition must be TRIM_HORIZON or LATEST for a DynamoDB stream, not {self.starting_position!r}")
        if not 1 <= self.batch_size <= MAX_STREAM_BATCH_SIZE:
            refuse(f"BatchSize must be between 1 and {MAX_STREAM_BATCH_SIZE}, not {self.batch_size}")
        if not 0 <= self.window_seconds <= 300:
            refuse(f"MaximumBatchingWindowInSeconds must be between 0 and 300, not {self.window_seconds}")
        if not -1 <= self.max_retry_attempts <= 10_000:
            refuse(f"MaximumRetryAttempts must be between -1 and 10000, not {self.max_retry_attempts}")
        if not -1 <= self.max_record_age_seconds <= 604_800:
            refuse(f"MaximumRecordAgeInSeconds must be between -1 and 604800, not {self.max_record_age_seconds}")
        if not 0 <= self.tumbling_window_seconds <= 900:
            refuse(f"TumblingWindowInSeconds must be between 0 and 900, not {self.tumbling_window_seconds}")
        if self.on_failure is not None and self.on_failure.split(":")[2:3] not in (["sqs"], ["sns"]):
            refuse(f"the OnFailure destination must be an SQS queue or SNS topic ARN, not {self.on_failure!r}")
        try:
            self._filters = parse_filter_criteria(self.filter_patterns)
        except FilterError as exc:
            refuse(f"FilterCriteria: {exc}")

    # ---- names --------------------------------------------------------------------------------

    @property
    def account(self) -> str:
        return self.stream_arn.split(":")[4]

    @property
    def function_arn(self) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account}:function:{self.function_name}"

    @property
    def busy(self) -> bool:
        """Work left that needs no new record: a batch to retry, records read, a window to close."""
        return any(
            not c.finished and (c.pending or c.buffer or (c.window_start is not None and self._window_over(c)))
            for c in self._cursors.values()
        )

    def checkpoints(self) -> dict[str, str | None]:
        """Per shard, the sequence number of the last record read (for a look)."""
        return {c.shard_id: c.last_read for c in self._cursors.values()}

    # ---- shards -------------------------------------------------------------------------------

    def start(self, streams: Any) -> None:
        """Take the starting positions now (the mapping's creation): LATEST is the newest record of
        each shard open at this time."""
        if not self._started:
            self._refresh(streams)

    def _refresh(self, streams: Any) -> None:
        shards: list[dict[str, Any]] = []
        request: dict[str, Any] = {"StreamArn": self.stream_arn}
        while True:
            description = streams.describe_stream(**request)["StreamDescription"]
            shards.extend(description.get("Shards") or [])
            if not description.get("LastEvaluatedShardId"):
                break
            request["ExclusiveStartShardId"] = description["LastEvaluatedShardId"]
        for shard in shards:
            shard_id = shard["ShardId"]
            if shard_id in self._cursors:
                continue
            cursor = _ShardCursor(shard_id, shard.get("ParentShardId"), "TRIM_HORIZON", ready_at=time.monotonic())
            if not self._started and self.starting_position == "LATEST":
                if "EndingSequenceNumber" in shard.get("SequenceNumberRange", {}):
                    cursor.finished = cursor.ended = True  # closed before the mapping: nothing new comes to it
                else:
                    cursor.start = "LATEST"
                    cursor.iterator = self._new_iterator(streams, cursor)
            self._cursors[shard_id] = cursor
        self._started = True
        self._refresh_at = time.monotonic() + 1.0

    def _ready(self, cursor: _ShardCursor) -> bool:
        """A shard is read once its parent is finished (or gone from the stream)."""
        parent = self._cursors.get(cursor.parent_id) if cursor.parent_id else None
        return parent is None or parent.finished

    def _new_iterator(self, streams: Any, cursor: _ShardCursor, trimmed: bool = False) -> str:
        request: dict[str, Any] = {"StreamArn": self.stream_arn, "ShardId": cursor.shard_id}
        if cursor.last_read is not None and not trimmed:
            request.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", SequenceNumber=cursor.last_read)
        else:
            request["ShardIteratorType"] = "TRIM_HORIZON" if trimmed else cursor.start
        return str(streams.get_shard_iterator(**request)["ShardIterator"])

    def _read(self, streams: Any, cursor: _ShardCursor) -> int:
        """One GetRecords into the shard's buffer. Returns the number of records read."""
        if cursor.ended:
            return 0
        if cursor.iterator is None:
            cursor.iterator = self._new_iterator(streams, cursor)
        try:
            answer = _get_records(streams, cursor.iterator, min(1000, self.batch_size))
        except Exception as exc:  # an iterator expired or trimmed under us: a new one from where we are
            code = getattr(exc, "response", {}).get("Error", {}).get("Code")
            if code not in ("ExpiredIteratorException", "TrimmedDataAccessException"):
                raise
            cursor.iterator = self._new_iterator(streams, cursor, trimmed=code == "TrimmedDataAccessException")
            answer = _get_records(streams, cursor.iterator, min(1000, self.batch_size))
        records = answer.get("Records") or []
        for raw in records:
            record = self._event_record(raw)
            sequence = record["dynamodb"]["SequenceNumber"]
            cursor.buffer.append(_StreamEntry(record, sequence, record["dynamodb"]["ApproximateCreationDateTime"], json.dumps(record)))
            cursor.last_read = sequence
        cursor.iterator = answer.get("NextShardIterator")
        if cursor.iterator is None:
            cursor.ended = True
        return len(records)

    def _event_record(self, raw: dict[str, Any]) -> dict[str, Any]:
        """A GetRecords record (as its JSON has it, or as boto3 parses it: binary as bytes, times
        as datetimes) as Lambda puts it in the event."""
        body = raw.get("dynamodb") or {}
        created = body.get("ApproximateCreationDateTime")
        stamp = created.timestamp() if isinstance(created, dt.datetime) else float(created or 0)
        dynamodb: dict[str, Any] = {"ApproximateCreationDateTime": float(math.floor(stamp))}
        parsed = isinstance(created, dt.datetime)
        for name in ("Keys", "NewImage", "OldImage"):
            if name in body:
                dynamodb[name] = _plain(body[name]) if parsed else body[name]
        for name in ("SequenceNumber", "SizeBytes", "StreamViewType"):
            if name in body:
                dynamodb[name] = body[name]
        record = {
            "eventID": raw.get("eventID"),
            "eventName": raw.get("eventName"),
            "eventVersion": raw.get("eventVersion"),
            "eventSource": raw.get("eventSource", "aws:dynamodb"),
            "awsRegion": raw.get("awsRegion", self.region),
            "dynamodb": dynamodb,
            "eventSourceARN": self.stream_arn,
        }
        if raw.get("userIdentity"):
            record["userIdentity"] = {"type": raw["userIdentity"].get("Type"), "principalId": raw["userIdentity"].get("PrincipalId")}
        return record

    # ---- batches ------------------------------------------------------------------------------

    def _matches(self, record: dict[str, Any]) -> bool:
        return not self._filters or any(pattern_matches(pattern, record) for pattern in self._filters)

    def _window_of(self, entry: _StreamEntry) -> float:
        width = self.tumbling_window_seconds
        return math.floor(entry.created / width) * width

    def _window_over(self, cursor: _ShardCursor) -> bool:
        if cursor.window_start is None:
            return False
        if cursor.terminate_early:
            return True
        if cursor.buffer:
            return self._window_of(cursor.buffer[0]) != cursor.window_start
        return cursor.ended or self.clock() >= cursor.window_start + self.tumbling_window_seconds

    def _gather(self, streams: Any, cursor: _ShardCursor, stop: threading.Event | None) -> tuple[list[_StreamEntry], int]:
        """The next batch of the shard, and how many records were skipped (no filter matched)."""
        entries: list[_StreamEntry] = []
        skipped, size = 0, 0
        window = cursor.window_start
        deadline = cursor.ready_at + self.window_seconds
        while len(entries) < self.batch_size:
            if not cursor.buffer:
                if cursor.ended or (self._read(streams, cursor) == 0 and not cursor.buffer):
                    left = deadline - time.monotonic()
                    if not entries or cursor.ended or left <= 0:
                        break
                    pause = min(left, self.poll_seconds)
                    if stop is not None and stop.wait(pause):
                        break
                    if stop is None:
                        time.sleep(pause)
                continue
            entry = cursor.buffer[0]
            if self.tumbling_window_seconds:
                if window is None:
                    window = self._window_of(entry)
                elif self._window_of(entry) != window:
                    break  # a batch holds one window's records
            if entries and size + entry.size > MAX_PAYLOAD_BYTES:
                break
            cursor.buffer.popleft()
            if self._matches(entry.record):
                entries.append(entry)
                size += entry.size
            else:
                skipped += 1
        return entries, skipped

    def poll_once(self, streams: Any, sqs: Any = None, sns: Any = None, stop: threading.Event | None = None) -> int:
        """One step on each shard that may be read: at most one invocation each. Returns the number
        of records done with (delivered, skipped by the filters, or discarded)."""
        if not self._started or time.monotonic() >= self._refresh_at:
            self._refresh(streams)
        moved = 0
        for cursor in list(self._cursors.values()):
            if cursor.finished or not self._ready(cursor):
                continue
            moved += self._step(streams, cursor, sqs, sns, stop)
            if cursor.finished:
                self._refresh_at = 0.0  # its children may be there now
        self.handled += moved
        return moved

    def _step(self, streams: Any, cursor: _ShardCursor, sqs: Any, sns: Any, stop: threading.Event | None) -> int:
        if cursor.pending:
            if time.monotonic() < cursor.pending[0].not_before:
                return 0
            return self._attempt(cursor, cursor.pending[0], sqs, sns)
        if self.tumbling_window_seconds and cursor.window_start is not None:
            if not cursor.buffer and not cursor.ended:
                self._read(streams, cursor)
            if self._window_over(cursor):
                cursor.pending.append(_StreamBatch([], final=True, early=cursor.terminate_early))
                return self._attempt(cursor, cursor.pending[0], sqs, sns)
        entries, skipped = self._gather(streams, cursor, stop)
        if entries:
            if self.tumbling_window_seconds and cursor.window_start is None:
                cursor.window_start, cursor.state = self._window_of(entries[0]), {}
            cursor.pending.append(_StreamBatch(entries))
            return skipped + self._attempt(cursor, cursor.pending[0], sqs, sns)
        if cursor.ended and not cursor.buffer and cursor.window_start is None:
            cursor.finished = True
        return skipped

    def _event(self, cursor: _ShardCursor, batch: _StreamBatch) -> dict[str, Any]:
        # The function gets records of its own, as from JSON: those read from the stream the first
        # time (nothing else holds them), and a copy from the record's JSON when an invocation had
        # them before (a retry, or a half of a split batch).
        records = []
        for entry in batch.entries:
            if entry.handed:
                records.append(json.loads(entry.text))
            else:
                entry.handed = True
                records.append(entry.record)
        event: dict[str, Any] = {"Records": records}
        if self.tumbling_window_seconds:
            start = cursor.window_start if cursor.window_start is not None else 0.0
            event.update(
                window={"start": _iso_seconds(start), "end": _iso_seconds(start + self.tumbling_window_seconds)},
                state=json.loads(json.dumps(cursor.state)),
                shardId=cursor.shard_id,
                eventSourceARN=self.stream_arn,
                isFinalInvokeForWindow=batch.final,
                isWindowTerminatedEarly=batch.early,
            )
        return event

    def _attempt(self, cursor: _ShardCursor, batch: _StreamBatch, sqs: Any, sns: Any) -> int:
        """Invoke the function with the shard's pending batch and settle the outcome. Returns the
        number of records done with."""
        moved = 0
        if not batch.final:
            expired = self._expired(batch.entries)
            if expired:
                self._discard(cursor, batch, batch.entries[:expired], "RecordAgeExpired", sqs, sns)
                batch.entries = batch.entries[expired:]
                moved += expired
                if not batch.entries:
                    cursor.pending.popleft()
                    return moved
        context = LambdaContext(self.function_name, self.timeout_s, region=self.region, account=self.account)
        batch.invocations += 1
        batch.request_id = context.aws_request_id
        self.invocations += 1
        try:
            result = self.handler(self._event(cursor, batch), context)
        except Exception:
            batch.function_error = True
            log.info("%s: invocation failed on %d stream record(s) of %s", self.function_name, len(batch.entries), cursor.shard_id)
            return moved + self._failed(cursor, batch, sqs, sns, split=True)
        batch.function_error = False
        if self.tumbling_window_seconds and (not isinstance(result, dict) or "state" not in result):
            return moved + self._failed(cursor, batch, sqs, sns, split=True)  # Lambda: a window's response must have a state
        failed_at = 0 if batch.final else self._first_failure(result, batch)
        if failed_at is None:
            return moved + self._failed(cursor, batch, sqs, sns, split=True)
        if self.tumbling_window_seconds:
            cursor.state = result.get("state") or {}
            cursor.terminate_early = len(json.dumps(cursor.state)) > MAX_WINDOW_STATE_BYTES
        cursor.ready_at = time.monotonic()
        if batch.final:
            cursor.pending.popleft()
            cursor.window_start, cursor.state, cursor.terminate_early = None, {}, False
            return moved
        done = batch.entries if failed_at >= len(batch.entries) else batch.entries[:failed_at]
        moved += len(done)
        if failed_at >= len(batch.entries):
            cursor.pending.popleft()
            return moved
        batch.entries = batch.entries[failed_at:]  # checkpointed before the lowest failure: the rest again
        return moved + self._failed(cursor, batch, sqs, sns, split=False)

    def _first_failure(self, result: Any, batch: _StreamBatch) -> int | None:
        """Where the batch failed by the function's report (its length: it did not); None: the
        whole batch failed (a report Lambda cannot read)."""
        if not self.report_failures or not isinstance(result, dict) or not result.get("batchItemFailures"):
            return len(batch.entries)
        failures = result["batchItemFailures"]
        positions = {entry.sequence: n for n, entry in enumerate(batch.entries)}
        found = []
        for failure in failures if isinstance(failures, list) else [None]:
            identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
            if not isinstance(identifier, str) or identifier not in positions:
                return None
            found.append(positions[identifier])
        return min(found)

    def _expired(self, entries: list[_StreamEntry]) -> int:
        """How many of the batch's first records are too old to be sent (the oldest come first)."""
        oldest = STREAM_RETENTION_SECONDS
        if self.max_record_age_seconds != -1:
            oldest = min(oldest, self.max_record_age_seconds)
        now = self.clock()
        count = 0
        for entry in entries:
            if now - entry.created <= oldest:
                break
            count += 1
        return count

    def _failed(self, cursor: _ShardCursor, batch: _StreamBatch, sqs: Any, sns: Any, split: bool) -> int:
        """A failed invocation: split the batch, retry it, or give it up (returns the records given up)."""
        if split and self.bisect_on_error and len(batch.entries) > 1:
            half = len(batch.entries) // 2
            cursor.pending.popleft()
            for part in (batch.entries[half:], batch.entries[:half]):  # the first half goes first
                cursor.pending.appendleft(
                    _StreamBatch(part, retries=batch.retries, invocations=batch.invocations, function_error=batch.function_error)
                )
            return 0
        if batch.final or self.max_retry_attempts == -1 or batch.retries < self.max_retry_attempts:
            batch.retries += 1
            batch.not_before = time.monotonic() + self.retry_delay
            return 0
        cursor.pending.popleft()
        self._discard(cursor, batch, batch.entries, "RetryAttemptsExhausted", sqs, sns)
        return len(batch.entries)

    def _discard(self, cursor: _ShardCursor, batch: _StreamBatch, entries: list[_StreamEntry], condition: str, sqs: Any, sns: Any) -> None:
        """Records given up: Lambda's invocation record for them goes to the OnFailure destination."""
        self.discarded += len(entries)
        log.warning(
            "%s: %d stream record(s) of %s discarded (%s), %s to %s",
            self.function_name,
            len(entries),
            cursor.shard_id,
            condition,
            entries[0].sequence,
            entries[-1].sequence,
        )
        if self.on_failure is None:
            return
        response: dict[str, Any] = {"statusCode": 200, "executedVersion": "$LATEST"}
        if batch.function_error:
            response["functionError"] = "Unhandled"
        message = {
            "requestContext": {
                "requestId": batch.request_id or str(uuid.uuid4()),
                "functionArn": self.function_arn,
                "condition": condition,
                "approximateInvokeCount": batch.invocations,
            },
            "responseContext": response,
            "version": "1.0",
            "timestamp": _iso_millis(self.clock()),
            "DDBStreamBatchInfo": {
                "shardId": cursor.shard_id,
                "startSequenceNumber": entries[0].sequence,
                "endSequenceNumber": entries[-1].sequence,
                "approximateArrivalOfFirstRecord": _iso_seconds(entries[0].created),
                "approximateArrivalOfLastRecord": _iso_seconds(entries[-1].created),
                "batchSize": len(entries),
                "streamArn": self.stream_arn,
            },
        }
        service, destination = self.on_failure.split(":")[2], self.on_failure
        if service == "sns":
            if sns is None:
                raise RuntimeError(f"{self.function_name}: an SNS client is needed for the OnFailure destination {destination}")
            sns.publish(TopicArn=destination, Message=json.dumps(message))
            return
        if sqs is None:
            raise RuntimeError(f"{self.function_name}: an SQS client is needed for the OnFailure destination {destination}")
        url = self._queue_urls.get(destination)
        if url is None:
            parts = destination.split(":")
            url = self._queue_urls[destination] = sqs.get_queue_url(QueueName=parts[5], QueueOwnerAWSAccountId=parts[4])["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps(message))


def drain_streams(
    sources: list[DynamoDBStreamEventSource], streams: Any, sqs: Any = None, sns: Any = None, max_rounds: int = 10_000
) -> int:
    """Run every stream source until no record is left to read and no batch waits for a retry.
    Returns the number of records done with. A tumbling window still open (its end not reached)
    stays open."""
    handled = 0
    for _ in range(max_rounds):
        moved = sum(source.poll_once(streams, sqs, sns) for source in sources)
        handled += moved
        if moved == 0:
            if not any(source.busy for source in sources):
                return handled
            time.sleep(0.001)  # a retry's delay
    raise RuntimeError("streams did not drain")


class StreamPoller:
    """Runs one DynamoDB stream source in the background, as Lambda does, until stopped: it polls
    its shards every ``source.poll_seconds`` while there is nothing to read."""

    def __init__(
        self,
        source: DynamoDBStreamEventSource,
        streams: Any,
        stop: threading.Event,
        sqs: Any = None,
        sns: Any = None,
        on_error: Callable[[Exception], None] | None = None,
        environment: Callable[[], None] | None = None,
    ):
        self.source, self.streams, self.stop_event, self.sqs, self.sns = source, streams, stop, sqs, sns
        self.on_error, self.environment = on_error, environment
        self.name = f"stream-poller-{source.function_name}"
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._busy = False

    def start(self) -> StreamPoller:
        self._thread.start()
        return self

    @property
    def running(self) -> int:
        """Invocations under way (0 or 1)."""
        return int(self._busy)

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def _run(self) -> None:
        if self.environment is not None:
            self.environment()
        source = self.source
        while not self.stop_event.is_set():
            try:
                self._busy = True
                if not source._started:
                    source.start(self.streams)
                moved = source.poll_once(self.streams, self.sqs, self.sns, stop=self.stop_event)
            except Exception as exc:
                if not self.stop_event.is_set() and self.on_error:
                    self.on_error(exc)
                self.stop_event.wait(1.0)
                continue
            finally:
                self._busy = False
            if not moved and not source.busy:
                self.stop_event.wait(source.poll_seconds)
            elif not moved:
                self.stop_event.wait(min(source.poll_seconds, max(source.retry_delay, 0.01)))
