"""The stack's resources on moto, in-process: what template.yaml deploys, minus Lambda and API Gateway.

The functions run in the calling thread through the local Lambda runtime's SQS event sources, so
tests see Lambda's batch semantics (partial failures, redelivery, dead-letter queues).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache, lru_cache
from typing import TYPE_CHECKING, Any

import boto3
from moto import mock_aws

from bulk_restore import settings as settings_module
from bulk_restore import wiring
from bulk_restore.adapters.dynamodb import marker_key, object_key
from bulk_restore.domain.manifest import encode_key
from bulk_restore.domain.model import ObjectId
from bulk_restore.usecases.plan import LINES_PER_CHUNK
from bulk_restore_cli.local.dynamodb import DynamoDBEmulation
from bulk_restore_cli.local.dynamodb_streams import DynamoDBStreamsEmulation
from bulk_restore_cli.local.lambda_runtime import LambdaContext, ScheduleSource, SqsEventSource
from support.api import call_api
from support.faults import InvocationFailed, crash_as_invocation_error

if TYPE_CHECKING:
    from bulk_restore_cli.local.s3_restore import S3RestoreEmulator

Transform = Callable[[list[str]], list[str]]
REGION = "us-east-1"
MANIFEST_BUCKET = "manifests-bkt"
DATA_BUCKET = "archive-bkt"
REPORT_BUCKET = "bulk-restore-reports-bkt"
MAX_RECEIVES = 5  # redrive to the dead-letter queue after this many receives


@dataclass
class PublishedEvent:
    """One SNS job event: the message and its message attributes, as a subscriber sees them."""

    message: dict[str, Any]
    attributes: dict[str, str]

    @classmethod
    def from_sqs(cls, message: dict[str, Any]) -> PublishedEvent:
        """From a message of an SQS queue subscribed to the topic: in the SNS envelope (the
        stack's events queue, as the sample's), or raw (a subscription with raw delivery)."""
        body = json.loads(message["Body"])
        if body.get("Type") == "Notification" and "TopicArn" in body:
            attributes = {k: v.get("Value", "") for k, v in (body.get("MessageAttributes") or {}).items()}
            return cls(json.loads(body["Message"]), attributes)
        return cls(body, {k: v.get("StringValue", "") for k, v in (message.get("MessageAttributes") or {}).items()})

    @property
    def job_id(self) -> str:
        return self.message["JobId"]

    @property
    def event_id(self) -> str:
        return self.message["EventId"]

    @property
    def is_terminal(self) -> bool:
        return self.message["EventType"] == "JobFinished"


class StreamSource:
    """The counting function on the table's stream, as Lambda's event source mapping runs it: the
    shard's records in order, ``batch_size`` at a time, with the tumbling window's fields (the shard's
    id); a failed invocation gets the same batch again, the checkpoint moves only past a success.

    Reads moto's stream records for the table (one shard) in-process."""

    def __init__(self, name: str, handler: Callable[[dict, Any], Any], table_name: str, batch_size: int = 1000):
        self.name, self.handler, self.table_name, self.batch_size = name, handler, table_name, batch_size
        self.position = 0
        self.invocations = 0
        self.failures = 0
        self.repeat = False  # hand each batch over once more after it succeeded (a checkpoint Lambda did not keep)
        self.paused = False  # read nothing (a stream read late: the objects change faster than it is read)

    def _shard(self) -> Any:
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.dynamodb.models import dynamodb_backends

        return dynamodb_backends[DEFAULT_ACCOUNT_ID][REGION].get_table(self.table_name).stream_shard

    def pending(self) -> int:
        return 0 if self.paused else len(self._shard().items) - self.position

    def batch(self) -> tuple[Any, list[dict[str, Any]]]:
        """The next batch, as Lambda hands it to the function (not yet checkpointed)."""
        shard = self._shard()
        records = []
        for item in shard.items[self.position : self.position + self.batch_size]:
            record = json.loads(json.dumps(item.to_json(), default=lambda d: d.timestamp()))
            record["eventSourceARN"] = (
                f"arn:aws:dynamodb:{REGION}:123456789012:table/{self.table_name}/stream/{shard.table.latest_stream_label}"
            )
            records.append(record)
        return shard, records

    def event(self, shard: Any, records: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "Records": records,
            "shardId": shard.id,
            "eventSourceARN": records[0]["eventSourceARN"] if records else "",
            "window": {"start": "1970-01-01T00:00:00Z", "end": "1970-01-01T00:05:00Z"},
            "state": {},
            "isFinalInvokeForWindow": False,
            "isWindowTerminatedEarly": False,
        }

    def poll_once(self, sqs: Any = None) -> int:
        """One invocation with the next batch. Returns how many records it moved past (0: none left, or it failed)."""
        shard, records = self.batch()
        if not records or self.paused:
            return 0
        for _ in range(2 if self.repeat else 1):
            self.invocations += 1
            try:
                self.handler(self.event(shard, records), LambdaContext(self.name, 300, region=REGION))
            except InvocationFailed:
                self.failures += 1
                return 0
        self.position += len(records)
        return len(records)

    def drain(self, max_failures: int = 20) -> int:
        handled, failed = 0, 0
        while self.pending():
            moved = self.poll_once()
            if not moved:
                failed += 1
                if failed > max_failures:
                    raise AssertionError(f"the {self.name} function kept failing on its stream batch")
            handled += moved
        return handled


class LambdaStreamSource:
    """The counting function run by the local runtime's DynamoDB stream event source (every shard,
    parents before children, bisecting, tumbling windows) behind ``StreamSource``'s interface."""

    def __init__(self, name: str, handler: Callable[[dict, Any], Any], stream_arn: str, batch_size: int | None = None):
        from bulk_restore_cli.local.lambda_runtime import DynamoDBStreamEventSource
        from bulk_restore_cli.local.template import template_event

        mapping = template_event("CounterFunction", "DynamoDB")  # the template's mapping, not a copy of it
        self.source = DynamoDBStreamEventSource(
            name,
            handler,
            stream_arn,
            batch_size=int(mapping["BatchSize"]) if batch_size is None else batch_size,
            tumbling_window_seconds=int(mapping["TumblingWindowInSeconds"]),
            bisect_on_error=bool(mapping["BisectBatchOnFunctionError"]),
            parallelization_factor=int(mapping.get("ParallelizationFactor", 1)),
            region=REGION,
        )
        self.streams = _client("dynamodbstreams")
        self.sqs = _client("sqs")
        self.paused = False
        self._left = True

    def poll_once(self, sqs: Any = None) -> int:
        moved = 0 if self.paused else self.source.poll_once(self.streams, self.sqs)
        self._left = bool(moved) or self.source.busy
        return moved

    def pending(self) -> int:
        return int(self._left and not self.paused)

    def drain(self) -> int:
        from bulk_restore_cli.local.lambda_runtime import drain_streams

        return 0 if self.paused else drain_streams([self.source], self.streams, self.sqs)


def reset_caches() -> None:
    """Settings and services are built once per Lambda environment: make the next call rebuild them."""
    settings_module.get_settings.cache_clear()
    wiring.services.cache_clear()


@dataclass
class Stack:
    s3: Any
    sqs: Any
    ddb: Any
    sns: Any
    table_name: str
    plan_queue_url: str
    restore_queue_url: str
    completion_queue_url: str
    events_queue_url: str
    dead_letter_urls: dict[str, str]
    topic_arn: str
    report_bucket: str
    planner: SqsEventSource = field(init=False)
    restorer: SqsEventSource = field(init=False)
    completion: SqsEventSource = field(init=False)
    sweeper: ScheduleSource = field(init=False)
    counter: StreamSource = field(init=False)
    archived: dict[tuple[str, str], list[str | None]] = field(default_factory=dict)
    published: list[PublishedEvent] = field(default_factory=list)
    job_ids: list[str] = field(default_factory=list)
    restore_emulator: Any = None  # bulk_restore_cli.local.s3_restore.S3RestoreEmulator, when a test installs one

    def __post_init__(self) -> None:
        from bulk_restore.handlers import completion, counter, planner, restorer, sweeper

        def source(name: str, handler: Any, url: str, batch_size: int, timeout_s: int) -> SqsEventSource:
            return SqsEventSource(
                name,
                crash_as_invocation_error(name, handler),
                url,
                self.queue_arn(url),
                batch_size=batch_size,
                report_failures=True,
                timeout_s=timeout_s,
                retry_delay=0,
                region=REGION,
            )

        # Batch sizes and timeouts as in template.yaml (no batching window: tests do not wait).
        self.planner = source("planner", planner.handler, self.plan_queue_url, 1, 900)
        self.restorer = source("restorer", restorer.handler, self.restore_queue_url, 10, 300)
        self.completion = source("completion", completion.handler, self.completion_queue_url, 100, 120)
        self.sweeper = ScheduleSource("sweeper", crash_as_invocation_error("sweeper", sweeper.handler), 900, timeout_s=600, region=REGION)
        self.counter = StreamSource("counter", crash_as_invocation_error("counter", counter.handler), self.table_name, batch_size=1000)

    # ---- resources ---------------------------------------------------------------------------

    @classmethod
    def build(cls) -> Stack:
        s3, sqs, ddb, sns, events = (_client(name) for name in ("s3", "sqs", "dynamodb", "sns", "events"))
        table = "bulk-restore-test"
        ddb.create_table(
            TableName=table,
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            BillingMode="PAY_PER_REQUEST",
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},  # as template.yaml
        )
        ddb.update_time_to_live(TableName=table, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"})

        def queue(name: str, fifo: bool = False) -> tuple[str, str]:
            suffix = ".fifo" if fifo else ""
            attrs = {"FifoQueue": "true"} if fifo else {}
            dlq = sqs.create_queue(QueueName=f"{name}-dlq{suffix}", Attributes=attrs)["QueueUrl"]
            redrive = json.dumps({"deadLetterTargetArn": _arn(sqs, dlq), "maxReceiveCount": MAX_RECEIVES})
            url = sqs.create_queue(QueueName=f"{name}{suffix}", Attributes={**attrs, "RedrivePolicy": redrive})["QueueUrl"]
            return url, dlq

        plan, plan_dlq = queue("plan", fifo=True)
        restore, restore_dlq = queue("restore")
        completion, completion_dlq = queue("completion")
        events_queue = sqs.create_queue(QueueName="job-events")["QueueUrl"]
        topic = sns.create_topic(Name="bulk-restore-events")["TopicArn"]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=_arn(sqs, events_queue))  # as template.yaml: the SNS envelope
        events.put_rule(
            Name="restore-completed", EventPattern=json.dumps({"source": ["aws.s3"], "detail-type": ["Object Restore Completed"]})
        )
        events.put_targets(Rule="restore-completed", Targets=[{"Id": "completion-queue", "Arn": _arn(sqs, completion)}])
        events.put_rule(
            Name="batch-job-status",
            EventPattern=json.dumps(
                {  # as template.yaml's BatchJobStatusRule
                    "source": ["aws.s3"],
                    "detail-type": ["AWS Service Event via CloudTrail"],
                    "detail": {"eventSource": ["s3.amazonaws.com"], "eventName": ["JobStatusChanged"]},
                }
            ),
        )
        events.put_targets(Rule="batch-job-status", Targets=[{"Id": "completion-queue", "Arn": _arn(sqs, completion)}])
        s3.create_bucket(Bucket=MANIFEST_BUCKET)
        s3.create_bucket(Bucket=DATA_BUCKET)
        s3.create_bucket(Bucket=REPORT_BUCKET)
        return cls(
            s3,
            sqs,
            ddb,
            sns,
            table,
            plan,
            restore,
            completion,
            events_queue,
            {"plan": plan_dlq, "restore": restore_dlq, "completion": completion_dlq},
            topic,
            REPORT_BUCKET,
        )

    def env(self) -> dict[str, str]:
        return {
            "TABLE_NAME": self.table_name,
            "PLAN_QUEUE_URL": self.plan_queue_url,
            "RESTORE_QUEUE_URL": self.restore_queue_url,
            "TOPIC_ARN": self.topic_arn,
            "MANIFEST_BUCKETS": MANIFEST_BUCKET,
            "EVENTS_QUEUE_ARN": self.queue_arn(self.events_queue_url),
            "REPORT_BUCKET": self.report_bucket,
        }

    def queue_arn(self, url: str) -> str:
        return _arn(self.sqs, url)

    def services(self) -> wiring.Services:
        return wiring.services()

    # ---- data --------------------------------------------------------------------------------

    def put_archived(self, key: str, bucket: str = DATA_BUCKET, storage_class: str = "GLACIER", body: bytes = b"x") -> str | None:
        """Store an object (archived unless told otherwise). Returns its version id on a versioned bucket."""
        self._ensure_bucket(bucket)
        version = self.s3.put_object(Bucket=bucket, Key=key, Body=body, StorageClass=storage_class).get("VersionId")
        self.archived.setdefault((bucket, key), []).append(version)
        return version

    def enable_versioning(self, bucket: str) -> None:
        self._ensure_bucket(bucket)
        self.s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})

    def put_manifest(self, rows: Sequence[ObjectId | str], key: str = "manifest.csv", line_end: str = "\n") -> tuple[str, str]:
        """Write a manifest: ObjectIds become URL-encoded CSV rows; strings are written as they are."""
        lines = [manifest_row(r) if isinstance(r, ObjectId) else r for r in rows]
        return self.put_manifest_bytes((line_end.join(lines) + line_end).encode("utf-8"), key)

    def put_manifest_bytes(self, data: bytes, key: str = "manifest.csv") -> tuple[str, str]:
        self.s3.put_object(Bucket=MANIFEST_BUCKET, Key=key, Body=data)
        return MANIFEST_BUCKET, key

    def _ensure_bucket(self, bucket: str) -> None:
        try:
            self.s3.head_bucket(Bucket=bucket)
        except self.s3.exceptions.ClientError:
            self.s3.create_bucket(Bucket=bucket)

    # ---- running -----------------------------------------------------------------------------

    def create_job(self, bucket: str, key: str, headers: dict[str, str] | None = None, **fields: Any) -> dict[str, Any]:
        status, body = call_api("POST", "/create-job", {"bucket": bucket, "key": key, **fields}, headers)
        assert status == 200, body
        if body["BulkJobId"] not in self.job_ids:
            self.job_ids.append(body["BulkJobId"])
        return body

    def is_recorded(self, bucket: str, key: str, version_id: str | None) -> bool:
        """Whether any job of this stack has recorded the outcome of the object's restore request
        (read directly from the table): its item in a state other than RESTORING, or RESTORING
        with its chunk accounted (the chunk's marker written: no delivery of it asks S3 again).
        An object is recorded RESTORING just before its request, so that alone says nothing."""
        ref = ObjectId(bucket, key, version_id).ref
        for job_id in self.job_ids:
            item_key = {k: {"S": v} for k, v in object_key(job_id, ref).items()}
            item = self.ddb.get_item(TableName=self.table_name, Key=item_key, ConsistentRead=True).get("Item")
            if item is None:
                continue
            if item["state"]["S"] != "RESTORING":
                return True
            chunk = (int(item["line"]["N"]) - 1) // LINES_PER_CHUNK
            marker = {k: {"S": v} for k, v in marker_key(job_id, chunk).items()}
            if "Item" in self.ddb.get_item(TableName=self.table_name, Key=marker, ConsistentRead=True):
                return True
        return False

    def sources(self) -> list[SqsEventSource]:
        return [self.planner, self.restorer, self.completion]

    def drain(self) -> int:
        """Run the functions until their queues and the table's stream are read. Returns how many
        messages and stream records they took."""
        handled = 0
        for _ in range(10_000):  # a round: one batch per queue, then the stream as far as it goes
            moved = sum(source.poll_once(self.sqs) for source in self.sources()) + self.counter.drain()
            handled += moved
            if not moved:
                return handled
        raise AssertionError("the functions did not drain")

    def complete_restores(self) -> None:
        """Finish the restores S3 has running, which sends their "restore completed" events.

        Plain moto restores at once but emits the event only when the object is next read.
        """
        if self.restore_emulator is not None:
            self.restore_emulator.complete_all()
            return
        for bucket, key in self.archived:
            self.s3.head_object(Bucket=bucket, Key=key)

    def route_s3_notifications(self, bucket: str = DATA_BUCKET, via: str = "sqs") -> None:
        """Also send the bucket's S3 event notifications (ObjectRestore:Completed) to the completion
        queue: directly ("sqs"), or through an SNS topic the queue subscribes to without raw delivery ("sns")."""
        self._ensure_bucket(bucket)
        events = ["s3:ObjectRestore:Completed"]
        if via == "sqs":
            config = {"QueueConfigurations": [{"QueueArn": self.queue_arn(self.completion_queue_url), "Events": events}]}
        else:
            topic = self.sns.create_topic(Name=f"{bucket}-restore-events")["TopicArn"]
            self.sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=self.queue_arn(self.completion_queue_url))
            config = {"TopicConfigurations": [{"TopicArn": topic, "Events": events}]}
        self.s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration=config)

    def settle_delivering(
        self, plan: Transform = list, chunks: Transform = list, completions: Transform = list, max_rounds: int = 500
    ) -> None:
        """Settle, but each message goes through its queue's ``transform`` (copies, reordering) once
        before a function sees it; one batch per function per round, so copies meet in different batches."""
        for _ in range(max_rounds):
            moved = 0
            for source, transform in ((self.planner, plan), (self.restorer, chunks), (self.completion, completions)):
                self.redeliver(source.queue_url, transform)
                moved += source.poll_once(self.sqs)
            moved += self.counter.poll_once()
            self.complete_restores()
            if not moved and not self.counter.pending() and not any(self.queue_depth(s.queue_url) for s in self.sources()):
                return
        raise AssertionError("the stack did not settle")

    def settle(self, max_rounds: int = 50) -> None:
        """Drain, complete restores, drain again, until nothing moves (no scheduled sweep)."""
        for _ in range(max_rounds):
            self.drain()
            self.complete_restores()
            if self.drain() == 0:
                return
        raise AssertionError("the stack did not settle")

    def sweep(self) -> bool:
        """One run of the scheduled sweeper (every 15 minutes when deployed). False if it died."""
        try:
            self.sweeper.fire()
            return True
        except InvocationFailed:
            return False  # a failed scheduled run: the next one comes
        finally:
            self.counter.drain()  # what it moved reaches the counters through the stream, soon after

    def sweep_until_quiet(self, max_sweeps: int = 4) -> None:
        """What the stack does given time: sweeps, each followed by whatever it set moving."""
        for _ in range(max_sweeps):
            ran = self.sweep()
            self.settle()
            if ran and not self.read_events():
                return

    # ---- what came out -----------------------------------------------------------------------

    def read_events(self, queue_url: str | None = None) -> list[PublishedEvent]:
        """Every event published since the last read (and, for the main queue, all kept in ``published``)."""
        url = queue_url or self.events_queue_url
        new: list[PublishedEvent] = []
        while True:
            messages = self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]).get("Messages", [])
            if not messages:
                break
            new.extend(PublishedEvent.from_sqs(m) for m in messages)
            self.sqs.delete_message_batch(
                QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
            )
        if url == self.events_queue_url:
            self.published.extend(new)
        return new

    def events_of(self, job_id: str) -> list[PublishedEvent]:
        self.read_events()
        return [e for e in self.published if e.job_id == job_id]

    def subscribe_queue(self, name: str, filter_policy: dict[str, Any] | None = None) -> str:
        url = self.sqs.create_queue(QueueName=name)["QueueUrl"]
        attributes = {"RawMessageDelivery": "true"}
        if filter_policy:
            attributes["FilterPolicy"] = json.dumps(filter_policy)
        self.sns.subscribe(TopicArn=self.topic_arn, Protocol="sqs", Endpoint=self.queue_arn(url), Attributes=attributes)
        return url

    def send(self, queue_url: str, body: str | dict[str, Any], **extra: Any) -> None:
        text = body if isinstance(body, str) else json.dumps(body)
        self.sqs.send_message(QueueUrl=queue_url, MessageBody=text, **extra)

    def redeliver(self, queue_url: str, transform: Callable[[list[str]], list[str]]) -> int:
        """Take every waiting message off a queue and send back what ``transform`` makes of their bodies
        (copies, another order): what at-least-once, unordered delivery may do. Messages already
        transformed once go back as they are. Returns how many messages were taken."""
        fresh: list[str] = []
        seen: list[tuple[str, str]] = []  # (body, group)
        group_of: dict[str, str] = {}
        while True:
            got = self.sqs.receive_message(
                QueueUrl=queue_url, MaxNumberOfMessages=10, AttributeNames=["All"], MessageAttributeNames=["All"], VisibilityTimeout=30
            ).get("Messages", [])
            if not got:
                break
            for m in got:
                group = m.get("Attributes", {}).get("MessageGroupId", "")
                if "redelivered" in (m.get("MessageAttributes") or {}):
                    seen.append((m["Body"], group))
                else:
                    fresh.append(m["Body"])
                    group_of[m["Body"]] = group
            self.sqs.delete_message_batch(
                QueueUrl=queue_url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)]
            )
        outgoing = seen + [(b, group_of.get(b, "")) for b in transform(fresh)]
        for body, group in outgoing:
            extra: dict[str, Any] = {"MessageAttributes": {"redelivered": {"DataType": "String", "StringValue": "1"}}}
            if queue_url.endswith(".fifo"):
                extra.update(MessageGroupId=group, MessageDeduplicationId=uuid.uuid4().hex)
            self.sqs.send_message(QueueUrl=queue_url, MessageBody=body, **extra)
        return len(fresh) + len(seen)

    def dead_letters(self, name: str) -> list[str]:
        url = self.dead_letter_urls[name]
        messages = self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0).get("Messages", [])
        return [m["Body"] for m in messages]

    def queue_depth(self, url: str) -> int:
        attrs = self.sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        )["Attributes"]
        return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])


def manifest_row(obj: ObjectId) -> str:
    """bucket,key[,version] with the key URL-encoded and quoted as CSV needs (commas, quotes)."""
    fields = [obj.bucket, encode_key(obj.key)] + ([obj.version_id] if obj.version_id else [])
    return ",".join(f'"{f}"' if ("," in f or '"' in f) else f for f in fields)


DYNAMODB = DynamoDBEmulation()
DYNAMODB_STREAMS = DynamoDBStreamsEmulation()


@lru_cache(maxsize=1)
def _session() -> boto3.Session:
    return boto3.Session(region_name=REGION)


@cache
def _client(service: str) -> Any:
    """The tests' own clients (never hooked), made once: moto intercepts them whichever mock is running."""
    return _session().client(service, region_name=REGION)


def _arn(sqs: Any, url: str) -> str:
    return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


@contextmanager
def configured_stack(**settings: Any) -> Iterator[Stack]:
    """The stack on the running moto mock, the functions configured for it; ``settings`` are extra
    environment variables (PLAN_LINES_PER_STEP=196)."""
    saved = dict(os.environ)
    DYNAMODB.install()  # the local stack's DynamoDB layer: tests run on what the local stack runs
    DYNAMODB_STREAMS.install()  # and its DynamoDB Streams layer
    # moto starts every mock with no default boto3 session, so each run would load the service
    # models again (a third of a run's time); the functions' clients share one.
    boto3.DEFAULT_SESSION = _session()
    try:
        stack = Stack.build()
        os.environ.update(stack.env())
        os.environ.update({k: str(v) for k, v in settings.items()})
        reset_caches()
        yield stack
    finally:
        os.environ.clear()
        os.environ.update(saved)
        reset_caches()


@contextmanager
def restore_emulation(stack: Stack) -> Iterator[S3RestoreEmulator]:
    """S3 as AWS documents it, on the stack's moto (an S3RestoreEmulator): restores run until
    completed (``complete_all``, or the stack's ``settle``), a repeat meanwhile gets 409."""
    from bulk_restore_cli.local import s3_restore

    with s3_restore.S3RestoreEmulator() as running:
        stack.restore_emulator = running
        yield running


@contextmanager
def open_stack(**settings: Any) -> Iterator[Stack]:
    """A fresh stack on a fresh moto (for tests that run many stacks, one after the other)."""
    with mock_aws(), configured_stack(**settings) as stack:
        yield stack
