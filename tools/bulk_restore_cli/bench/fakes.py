"""Fast in-process fakes of the adapters, so the use cases are measured without an AWS emulator.

``FakeJobStore`` keeps DynamoJobStore's method signatures and semantics (conditions included)
in dictionaries and counts its calls, each of which is one DynamoDB request of the real store.
The S3 and SQS fakes are boto3-like *clients* under the real S3Gateway and QueueGateway, so
the adapters' own work (serialising chunks, splitting batches, classifying answers, backing
off) is part of what is measured. An optional ``latency`` (seconds per call) stands for the
network round trip where a benchmark runs against real time.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections import Counter, deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from typing import Any

from botocore.exceptions import ClientError

from bulk_restore.adapters.dynamodb import BucketLink, ObjectRecord, now_iso
from bulk_restore.domain.model import Counts, JobStatus, ObjectState, PlanningState, RestoreJob

_ACTIVE = (JobStatus.PLANNING, JobStatus.RESTORING)


def _job_of_object_pk(pk: str) -> str:
    """ "JOB#<id>#O#<shard>" -> <id>."""
    return pk[len("JOB#") :].rsplit("#O#", 1)[0]


def _copy(job: RestoreJob) -> RestoreJob:
    """What a fresh read returns: the callers change the jobs they get."""
    return replace(
        job,
        planning=replace(job.planning, buckets=list(job.planning.buckets)),
        outbox={k: dict(v) for k, v in job.outbox.items()},
        sweep=dict(job.sweep),
    )


class FakeJobStore:
    """DynamoJobStore in memory. ``calls`` counts the DynamoDB requests the real store would make."""

    def __init__(self, latency: float = 0.0):
        self.latency = latency
        self.calls: Counter[str] = Counter()
        self._lock = threading.RLock()
        self._jobs: dict[str, RestoreJob] = {}
        self._counts: dict[str, Counts] = {}
        self._objects: dict[tuple[str, str], ObjectRecord] = {}
        self._chunks: set[tuple[str, int]] = set()
        self._buckets: dict[str, dict[str, bool]] = {}  # bucket -> {job id: issuing}
        self._versioned: dict[tuple[str, str], bool | None] = {}  # (bucket, job id) -> the link's versioned
        self._active: dict[str, None] = {}
        self._issuing: set[str] = set()
        self._early: dict[str, tuple[float, bool]] = {}
        self._schedules: dict[str, int] = {}
        self._stopped: set[str] = set()
        self._noted: dict[str, float] = {}  # bucket -> when completions were last kept early there
        self._stream: list[dict[str, Any]] = []  # the table's stream records not read yet
        self._sequence = 10**20
        self._checkpoints: dict[tuple[str, str], int] = {}

    def _call(self, operation: str, requests: int = 1) -> None:
        self.calls[operation] += requests
        if self.latency:
            time.sleep(self.latency * requests)

    # ---- setting a scene (no request counted) -------------------------------------------------

    def put_job(self, job: RestoreJob, counts: Counts | None = None) -> None:
        with self._lock:
            self._jobs[job.job_id] = _copy(job)
            self._counts[job.job_id] = counts or Counts()
            if not job.status.is_terminal:
                self._active[job.job_id] = None
                if not job.issued:
                    self._issuing.add(job.job_id)

    def put_objects(self, records: Iterable[ObjectRecord]) -> None:
        with self._lock:
            for record in records:
                self._objects[(record.job_id, record.ref)] = record

    def job(self, job_id: str) -> RestoreJob:
        return _copy(self._jobs[job_id])

    def counts(self, job_id: str) -> Counts:
        return replace(self._counts[job_id])

    def object(self, job_id: str, ref: str) -> ObjectRecord | None:
        return self._objects.get((job_id, ref))

    @property
    def requests(self) -> int:
        return sum(self.calls.values())

    # ---- jobs ---------------------------------------------------------------------------------

    def get_job(self, job_id: str) -> RestoreJob | None:
        self._call("GetItem")
        with self._lock:
            job = self._jobs.get(job_id)
            return _copy(job) if job else None

    def get_job_and_counts(self, job_id: str) -> tuple[RestoreJob, Counts] | None:
        self._call("Query")
        with self._lock:
            job = self._jobs.get(job_id)
            return (_copy(job), replace(self._counts[job_id])) if job else None

    def save_planning(self, job_id: str, expected_step: int, planning: PlanningState, status: JobStatus | None = None) -> bool:
        self._call("UpdateItem")
        with self._lock:
            job = self._jobs[job_id]
            if job.planning.step != expected_step:
                return False
            job.planning = replace(planning, buckets=list(planning.buckets))
            job.updated_at = now_iso()
            return True

    def mark_restoring(self, job_id: str) -> None:
        self._call("UpdateItem")
        with self._lock:
            job = self._jobs[job_id]
            if job.status is JobStatus.PLANNING:
                job.status = JobStatus.RESTORING

    # ---- events -------------------------------------------------------------------------------

    def claim_event(
        self,
        job_id: str,
        event_id: str,
        message: dict[str, Any],
        *,
        step: int | None = None,
        terminal: JobStatus | None = None,
        failure_reason: str = "",
        lease_ms: int = 0,
        ended: bool = False,
    ) -> bool:
        self._call("UpdateItem")
        with self._lock:
            job = self._jobs[job_id]
            if ended:
                if job.status is not terminal or not job.end_pending:
                    return False
                job.end_pending = False
                job.outbox[event_id] = {"message": json.loads(json.dumps(message)), "lease": int(time.time() * 1000) + lease_ms}
                return True
            if job.status not in _ACTIVE or (step is not None and job.last_step_published >= step):
                return False
            job.outbox[event_id] = {"message": json.loads(json.dumps(message)), "lease": int(time.time() * 1000) + lease_ms}
            if step is not None:
                job.last_step_published = step
            if terminal is not None:
                job.status = terminal
                job.finished_at = now_iso()
                job.failure_reason = failure_reason
            return True

    def end_job(self, job_id: str, status: JobStatus, reason: str) -> bool:
        self._call("UpdateItem")
        with self._lock:
            job = self._jobs[job_id]
            if job.status not in _ACTIVE:
                return False
            job.status, job.finished_at, job.failure_reason, job.end_pending = status, now_iso(), reason, True
            return True

    def mark_issued(self, job_id: str, buckets: Iterable[str]) -> None:
        names = list(buckets)
        self._call("UpdateItem", len(names) + 2)
        with self._lock:
            for bucket in names:
                if job_id in self._buckets.get(bucket, {}):
                    self._buckets[bucket][job_id] = False
            self._issuing.discard(job_id)
            self._jobs[job_id].issued = True

    def take_event_lease(self, job_id: str, event_id: str, lease_ms: int) -> bool:
        self._call("UpdateItem")
        now = int(time.time() * 1000)
        with self._lock:
            entry = self._jobs[job_id].outbox.get(event_id)
            if entry is None or entry["lease"] > now:
                return False
            entry["lease"] = now + lease_ms
            return True

    def clear_event(self, job_id: str, event_id: str) -> None:
        self._call("UpdateItem")
        with self._lock:
            self._jobs[job_id].outbox.pop(event_id, None)

    # ---- the sweeper's and the pacer's view ---------------------------------------------------

    def active_jobs(self, include_kept: bool = True) -> list[str]:
        self._call("Query")
        with self._lock:
            return list(self._active)

    def issuing_jobs(self) -> list[str]:
        self._call("Query")
        with self._lock:
            return list(self._issuing)

    def keep_active(self, job_id: str) -> None:
        self._call("UpdateItem")

    def deactivate(self, job_id: str) -> None:
        self._call("DeleteItem")
        with self._lock:
            self._active.pop(job_id, None)
            self._issuing.discard(job_id)

    def reserve_schedule(self, scope: str, span_us: int, now_us: int, busy: bool) -> tuple[int, bool]:
        """As DynamoJobStore.reserve_schedule: one write when ``busy`` guessed right, two when not."""
        with self._lock:
            at = self._schedules.get(scope)
            right = (at is not None and at >= now_us) == busy
            end = (at if at is not None and at >= now_us else now_us) + span_us
            self._schedules[scope] = end
            stopped = scope in self._stopped
        self._call("UpdateItem", 1 if right else 2)
        return end, stopped

    def stop_schedule(self, scope: str) -> None:
        self._call("UpdateItem")
        with self._lock:
            self._stopped.add(scope)

    # ---- buckets ------------------------------------------------------------------------------

    def register_bucket(self, job_id: str, bucket: str, versioned: bool | None = None) -> None:
        self._call("PutItem")
        with self._lock:
            self._buckets.setdefault(bucket, {})[job_id] = True
            self._versioned[(bucket, job_id)] = versioned

    def unregister_buckets(self, job_id: str, buckets: Iterable[str]) -> None:
        names = list(buckets)
        self._call("BatchWriteItem", math.ceil(len(names) / 25))
        with self._lock:
            for bucket in names:
                self._buckets.get(bucket, {}).pop(job_id, None)

    def jobs_for_bucket(self, bucket: str) -> dict[str, bool]:
        self._call("Query")
        with self._lock:
            return dict(self._buckets.get(bucket, {}))

    def bucket_links(self, bucket: str) -> dict[str, BucketLink]:
        self._call("Query")
        with self._lock:
            return {
                job_id: BucketLink(issuing, self._versioned.get((bucket, job_id)))
                for job_id, issuing in self._buckets.get(bucket, {}).items()
            }

    def keep_early_completions(self, refs: dict[str, tuple[float, bool]]) -> None:
        self._call("BatchWriteItem", math.ceil(len(refs) / 25))
        with self._lock:
            self._early.update(refs)

    def note_early_completions(self, buckets: Iterable[str], at: float) -> None:
        wanted = set(buckets)
        self._call("UpdateItem", len(wanted))
        with self._lock:
            for bucket in wanted:
                self._noted[bucket] = max(at, self._noted.get(bucket, at))

    def early_completions_noted(self, buckets: Iterable[str]) -> float | None:
        wanted = set(buckets)
        self._call("BatchGetItem", math.ceil(len(wanted) / 100))
        with self._lock:
            times = [self._noted[b] for b in wanted if b in self._noted]
            return max(times) if times else None

    def early_completions(self, refs: Iterable[str]) -> dict[str, tuple[float, bool]]:
        wanted = set(refs)
        self._call("BatchGetItem", math.ceil(len(wanted) / 100))
        with self._lock:
            return {ref: self._early[ref] for ref in wanted if ref in self._early}

    # ---- objects ------------------------------------------------------------------------------

    def chunk_state(self, job_id: str, chunk: int, refs: Sequence[str]) -> tuple[RestoreJob | None, bool, dict[str, ObjectRecord]]:
        self._call("BatchGetItem", math.ceil((len(set(refs)) + 2) / 100))
        with self._lock:
            job = self._jobs.get(job_id)
            existing = {ref: self._objects[(job_id, ref)] for ref in refs if (job_id, ref) in self._objects}
            return (_copy(job) if job else None), (job_id, chunk) in self._chunks, existing

    def chunks_state(self, job_id: str, chunks: Sequence[int]) -> tuple[RestoreJob | None, set[int]]:
        self._call("BatchGetItem", math.ceil((len(set(chunks)) + 1) / 100))
        with self._lock:
            job = self._jobs.get(job_id)
            return (_copy(job) if job else None), {c for c in chunks if (job_id, c) in self._chunks}

    def insert_objects(self, records: Sequence[ObjectRecord]) -> tuple[list[ObjectRecord], set[str]]:
        """Objects inserted one by one (25 to a BatchExecuteStatement), each a record on the
        table's stream, as DynamoDB writes it."""
        first: dict[str, ObjectRecord] = {}
        for record in records:
            first.setdefault(record.ref, record)
        self._call("BatchExecuteStatement", math.ceil(len(first) / 25))
        inserted = []
        with self._lock:
            stamp = now_iso()
            for record in first.values():
                job_id = record.job_id
                if (job_id, record.ref) in self._objects:
                    continue
                stored = replace(record, updated_at=record.updated_at or stamp)
                self._objects[(job_id, record.ref)] = stored
                self._record("INSERT", f"JOB#{job_id}#O#00", record.ref, None, stored.state.value)
                inserted.append(stored)
        return inserted, {r.ref for r in records} - {r.ref for r in inserted}

    def mark_chunks(self, job_id: str, objects: dict[int, int]) -> set[int]:
        self._call("BatchExecuteStatement", math.ceil(len(objects) / 25))
        written = set()
        with self._lock:
            for chunk, count in objects.items():
                if (job_id, chunk) in self._chunks:
                    continue
                self._chunks.add((job_id, chunk))
                self._record("INSERT", f"JOB#{job_id}#CHUNKS", f"{chunk:010d}", None, None, objects=count)
                written.add(chunk)
        return written

    def record_chunk(self, job_id: str, chunk: int, records: Sequence[ObjectRecord]) -> tuple[bool, set[str]]:
        inserted, taken = self.insert_objects(records)
        return chunk in self.mark_chunks(job_id, {chunk: len(inserted)}), taken

    # ---- the table's stream, and the counter items the counting function keeps from it ---------

    def _record(self, name: str, pk: str, sk: str, old: str | None, new: str | None, **extra: int) -> None:
        def image(state: str | None) -> dict[str, Any]:
            out: dict[str, Any] = {"pk": {"S": pk}, "sk": {"S": sk}}
            if state is not None:
                out["state"] = {"S": state}
            return out | {k: {"N": str(v)} for k, v in extra.items()}

        self._sequence += 1
        change: dict[str, Any] = {"Keys": {"pk": {"S": pk}, "sk": {"S": sk}}, "SequenceNumber": str(self._sequence)}
        if name == "MODIFY":
            change["OldImage"] = image(old)
        change["NewImage"] = image(new)
        self._stream.append({"eventName": name, "eventSource": "aws:dynamodb", "dynamodb": change})

    def take_stream(self, most: int = 1000) -> list[dict[str, Any]]:
        """The next batch of the stream, as Lambda reads it (free: no request counted)."""
        with self._lock:
            batch, self._stream = self._stream[:most], self._stream[most:]
            return batch

    def apply_counts(self, job_id: str, shard: str, first: int, last: int, counts: Counts, after: int | None = None) -> bool:
        self._call("UpdateItem")
        with self._lock:
            stored = self._checkpoints.get((job_id, shard))
            if (stored is not None and stored >= first) if after is None else stored != after:
                return False
            self._counts[job_id] = self._counts[job_id].add(counts)
            self._checkpoints[(job_id, shard)] = last
            return True

    def counted_to(self, job_id: str, shard: str) -> int | None:
        self._call("GetItem")
        with self._lock:
            return self._checkpoints.get((job_id, shard))

    def find_objects(self, keys: Sequence[dict[str, str]]) -> list[ObjectRecord]:
        unique = {(k["pk"], k["sk"]) for k in keys}
        self._call("BatchGetItem", math.ceil(len(unique) / 100))
        with self._lock:
            found = (self._objects.get((_job_of_object_pk(pk), sk)) for pk, sk in unique)
            return [r for r in found if r is not None]

    def transition(self, job_id: str, records: Sequence[ObjectRecord], to: ObjectState, reason: str = "") -> int:
        return len(self.move(job_id, [r.ref for r in records], to, reason))

    def move(self, job_id: str, refs: Sequence[str], to: ObjectState, reason: str = "") -> set[str]:
        """Each object moved out of RESTORING in a conditional write of its own (25 to a request)."""
        unique = list(dict.fromkeys(refs))
        self._call("BatchExecuteStatement", math.ceil(len(unique) / 25))
        moved: set[str] = set()
        stamp = now_iso()
        with self._lock:
            for ref in unique:
                current = self._objects.get((job_id, ref))
                if current is None or current.state is not ObjectState.RESTORING:
                    continue
                self._objects[(job_id, ref)] = replace(current, state=to, reason=reason or current.reason, updated_at=stamp)
                self._record("MODIFY", f"JOB#{job_id}#O#00", ref, ObjectState.RESTORING.value, to.value)
                moved.add(ref)
        return moved


class FakePublisher:
    """EventPublisher: keeps what was published."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def publish(self, message: dict[str, Any]) -> None:
        with self._lock:
            self.messages.append(message)

    def events_of(self, job_id: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["JobId"] == job_id]


# ---- boto3-like clients under the real gateways ---------------------------------------------------


class StubSqsClient:
    """What QueueGateway calls on SQS: accepts every message, counts requests, messages and bytes."""

    def __init__(self, keep: bool = False) -> None:
        self.requests: Counter[str] = Counter()
        self.messages = 0
        self.bytes = 0
        self.kept: list[str] = []
        self._keep = keep

    def send_message(self, QueueUrl: str, MessageBody: str, **_: Any) -> dict[str, Any]:
        self.requests["SendMessage"] += 1
        self.messages += 1
        self.bytes += len(MessageBody.encode())
        return {"MessageId": str(self.messages)}

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        self.requests["SendMessageBatch"] += 1
        for entry in Entries:
            self.messages += 1
            self.bytes += len(entry["MessageBody"].encode())
            if self._keep and not QueueUrl.endswith(".fifo"):
                self.kept.append(entry["MessageBody"])
        return {"Successful": [{"Id": e["Id"]} for e in Entries], "Failed": []}


class GeneratedManifest:
    """A manifest of ``lines`` rows, made on the fly and never held whole.

    Rows repeat a block of ``distinct`` different objects (more than a chunk's 98 lines, so no
    chunk sees a duplicate): the planner's work per line is the same as with all-distinct rows,
    and producing the bytes costs almost nothing next to parsing them. Keys look like an
    archive's: three in four need no escaping, one in four has a space (``%20``) to decode.
    """

    def __init__(self, lines: int, bucket: str = "bench-archive", distinct: int = 8192):
        self.lines = lines
        rows = [
            (f"{bucket},scans/2019/Invoice%20{i:07d}.pdf\n" if i % 4 == 3 else f"{bucket},photos/2024/07/IMG_{i:07d}.jpg\n").encode()
            for i in range(distinct)
        ]
        self._pattern = b"".join(rows)
        self._doubled = self._pattern * 2
        full, partial = divmod(lines, distinct)
        self.size = full * len(self._pattern) + sum(len(r) for r in rows[:partial])

    def iter_chunks(self, offset: int, chunk_size: int) -> Iterator[bytes]:
        """The bytes from ``offset`` on, as a ranged GetObject streams them."""
        position = offset
        period = len(self._pattern)
        while position < self.size:
            take = min(chunk_size, period, self.size - position)
            start = position % period
            yield self._doubled[start : start + take]
            position += take


class _Body:
    def __init__(self, manifest: GeneratedManifest, offset: int):
        self.manifest, self.offset = manifest, offset

    def iter_chunks(self, chunk_size: int = 1024) -> Iterator[bytes]:
        return self.manifest.iter_chunks(self.offset, chunk_size)

    def read(self) -> bytes:
        return b"".join(self.iter_chunks(1 << 20))


class ManifestS3Client:
    """What S3Gateway calls to plan: GetObject with a Range (the manifest) and the bucket's notification switch."""

    def __init__(self, manifest: GeneratedManifest):
        self.manifest = manifest
        self.requests: Counter[str] = Counter()

    def get_object(self, Bucket: str, Key: str, Range: str = "", IfMatch: str = "") -> dict[str, Any]:
        self.requests["GetObject"] += 1
        offset = int(Range.removeprefix("bytes=").split("-")[0] or 0) if Range else 0
        return {"Body": _Body(self.manifest, offset), "ContentLength": self.manifest.size - offset}

    def get_bucket_notification_configuration(self, Bucket: str) -> dict[str, Any]:
        self.requests["GetBucketNotificationConfiguration"] += 1
        return {"EventBridgeConfiguration": {}}


class ThrottlingS3Client:
    """RestoreObject against an account limit: above ``limit`` accepted requests in any sliding
    second, S3 answers 503 SlowDown. Each call takes ``latency`` seconds, half on the way in
    (before S3 decides) and half on the way back."""

    def __init__(self, limit: int = 1000, latency: float = 0.03, clock: Any = time.monotonic, sleep: Any = time.sleep):
        self.limit = limit
        self.latency = latency
        self.clock, self.sleep = clock, sleep
        self.accepted_at: list[float] = []
        self.throttled = 0
        self._window: deque[float] = deque()
        self._lock = threading.Lock()

    def restore_object(self, Bucket: str, Key: str, RestoreRequest: dict[str, Any], VersionId: str | None = None) -> dict[str, Any]:
        self.sleep(self.latency / 2)
        with self._lock:
            now = self.clock()
            while self._window and self._window[0] <= now - 1.0:
                self._window.popleft()
            accepted = len(self._window) < self.limit
            if accepted:
                self._window.append(now)
                self.accepted_at.append(now)
            else:
                self.throttled += 1
        self.sleep(self.latency / 2)
        if not accepted:
            raise ClientError(
                {"Error": {"Code": "SlowDown", "Message": "Please reduce your request rate."}, "ResponseMetadata": {"HTTPStatusCode": 503}},
                "RestoreObject",
            )
        return {"ResponseMetadata": {"HTTPStatusCode": 202}}

    @property
    def answers(self) -> int:
        return len(self.accepted_at) + self.throttled
