"""Plan a job: stream its manifest in bounded, checkpointed steps and fan out restore chunks.

A chunk is a fixed run of LINES_PER_CHUNK manifest lines, numbered from the start of the file,
and a step always ends on a chunk boundary. So a step that is replayed after a crash sends
exactly the chunks it sent before, and the restore workers can drop the copies by chunk number.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from aws_lambda_powertools import Logger

from bulk_restore.adapters.dynamodb import DynamoJobStore
from bulk_restore.adapters.s3 import S3Gateway
from bulk_restore.adapters.sqs import QueueGateway
from bulk_restore.domain.errors import ManifestChanged, ManifestUnreadable
from bulk_restore.domain.manifest import check_versioning, header_row, iter_lines, parse_row, too_long_error
from bulk_restore.domain.model import JobStatus, ManifestEntry, ManifestError, ObjectId, PlanningState, RestoreJob
from bulk_restore.usecases.batch import BatchEngine
from bulk_restore.usecases.notify import Notifier

logger = Logger(child=True)

LINES_PER_CHUNK = 98  # with the chunk marker and one counter update: 100 items, one transaction
MAX_BUCKETS_PER_JOB = 100
SEND_EVERY_CHUNKS = 10


@dataclass
class _Chunk:
    number: int
    rows: list[list[Any]] = field(default_factory=list)
    errors: list[list[Any]] = field(default_factory=list)
    refs: set[str] = field(default_factory=set)

    def message(self, job_id: str) -> dict[str, Any]:
        return {"job_id": job_id, "chunk": self.number, "rows": self.rows, "errors": self.errors}


class Planner:
    def __init__(self, store: DynamoJobStore, s3: S3Gateway, queues: QueueGateway, notifier: Notifier,
                 lines_per_step: int, reserve_ms: int, manage_eventbridge: bool = True, batch: BatchEngine | None = None):
        self.store = store
        self.s3 = s3
        self.queues = queues
        self.notifier = notifier
        self.lines_per_step = max(LINES_PER_CHUNK, lines_per_step - lines_per_step % LINES_PER_CHUNK)
        self.reserve_ms = reserve_ms
        self.manage_eventbridge = manage_eventbridge
        self.batch = batch

    def run_step(self, job_id: str, step: int, remaining_ms: Callable[[], int]) -> None:
        job = self.store.get_job(job_id)
        if job is None:
            logger.warning("plan step for unknown job dropped", extra={"job_id": job_id})
            return
        if job.status.is_terminal:
            self._stop(job)
            return
        if job.planning.done:
            # A late copy of the last step, maybe after a crash before its evaluation (or its Batch
            # job's creation): the chunks may all be accounted already, and nothing else would end the job.
            self._launch(job)
            self.notifier.evaluate(job_id)
            return
        if step != job.planning.step:
            # A late copy of a step already taken: make sure the step after it was asked for.
            if step < job.planning.step:
                self.queues.send_plan_step(job_id, job.planning.step)
            return
        sent: list[int] = []  # chunks of this step already queued, should it fail half-way
        try:
            planning = self._plan(job, remaining_ms, sent)
        except (ManifestChanged, ManifestUnreadable) as exc:
            logger.warning("manifest unreadable during planning", extra={"job_id": job_id, "reason": exc.message})
            # The chunks already queued are still accounted: the job's terminal event waits for them.
            stopped = replace(job.planning, chunks_emitted=job.planning.chunks_emitted + len(sent), stopped=True)
            self.store.save_planning(job_id, step, stopped)
            self.notifier.fail(job_id, exc.message)
            return
        if not self.store.save_planning(job_id, step, planning):
            logger.info("another planner moved this job on", extra={"job_id": job_id, "step": step})
            return
        logger.info(
            "plan step done",
            extra={"job_id": job_id, "step": step, "lines": planning.lines_read, "chunks": planning.chunks_emitted, "done": planning.done},
        )
        if planning.done:
            job.planning = planning
            self._launch(job)
            self.notifier.evaluate(job_id)
        else:
            self.queues.send_plan_step(job_id, planning.step)

    def _launch(self, job: RestoreJob) -> None:
        if job.engine == "batch" and self.batch is not None:
            self.batch.launch(job)

    def _stop(self, job: RestoreJob) -> None:
        """The job has ended (cancelled, timed out): plan no more of it, and say so, so that its
        terminal event knows no chunk is still to come."""
        if job.planning.over:
            return
        if self.store.save_planning(job.job_id, job.planning.step, replace(job.planning, stopped=True)):
            logger.info("planning stopped: the job has ended", extra={"job_id": job.job_id, "status": job.status.value})
            self.notifier.evaluate(job.job_id)

    def _plan(self, job: RestoreJob, remaining_ms: Callable[[], int], sent: list[int]) -> PlanningState:
        start = job.planning
        buckets = list(start.buckets)
        outgoing: list[dict[str, Any]] = []
        chunks_emitted = start.chunks_emitted
        lines_this_step = 0
        offset, line_no = start.byte_offset, start.lines_read
        chunk: _Chunk | None = None
        finished = True
        versioned_line = start.versioned_line
        to_batch: list[ObjectId] = []  # the batch engine's manifest rows of this step
        batch = job.engine == "batch" and self.batch is not None

        def flush(c: _Chunk) -> None:
            nonlocal chunks_emitted
            if not c.rows and not c.errors:
                return
            for _, bucket, _, _ in c.rows:
                # A bucket outside the allow-list is never touched: its rows fail in the restorer.
                if bucket not in buckets and self.s3.may_touch(bucket):
                    self._register_bucket(job.job_id, bucket)
                    buckets.append(bucket)
            outgoing.append(c.message(job.job_id))
            chunks_emitted += 1
            if len(outgoing) >= SEND_EVERY_CHUNKS:
                self._send(job, outgoing, sent)

        for raw in iter_lines(self.s3.stream_manifest(job.manifest, start.byte_offset), start.byte_offset, start.lines_read):
            number = (raw.number - 1) // LINES_PER_CHUNK
            if chunk is None or number != chunk.number:
                if chunk is not None:
                    flush(chunk)
                    if lines_this_step >= self.lines_per_step or remaining_ms() < self.reserve_ms:
                        finished = False
                        break
                chunk = _Chunk(number)
            if raw.too_long:
                row = too_long_error(raw.number, raw.data)
            elif raw.number == 1 and header_row(1, raw.data):
                row = None  # a header row names the columns, no object (the job's notes say so)
            else:
                row = parse_row(raw.number, raw.data)
            if isinstance(row, ManifestEntry):
                row, versioned_line = check_versioning(row, versioned_line)
            if isinstance(row, ManifestEntry):
                if row.object.bucket not in buckets and self.s3.may_touch(row.object.bucket) and len(buckets) >= MAX_BUCKETS_PER_JOB:
                    row = ManifestError(raw.number, f"more than {MAX_BUCKETS_PER_JOB} distinct buckets in one job: split the manifest")
                elif (ref := row.object.ref) not in chunk.refs:
                    chunk.refs.add(ref)
                    chunk.rows.append([row.line, row.object.bucket, row.object.key, row.object.version_id])
                    if batch and self.s3.may_touch(row.object.bucket):
                        to_batch.append(row.object)
            if isinstance(row, ManifestError):
                chunk.errors.append([row.line, row.message, row.raw])
            lines_this_step += 1
            offset, line_no = raw.end_offset, raw.number
        else:
            if chunk is not None:
                flush(chunk)
        if batch and self.batch is not None:
            self.batch.write_fragment(job.job_id, start.step, to_batch, versioned_line > 0)
        self._send(job, outgoing, sent)
        return replace(
            start,
            byte_offset=offset,
            lines_read=line_no,
            chunks_emitted=chunks_emitted,
            step=start.step + 1,
            done=finished,
            buckets=buckets,
            versioned_line=versioned_line,
        )

    def _send(self, job: RestoreJob, outgoing: list[dict[str, Any]], sent: list[int]) -> None:
        if not outgoing:
            return
        if job.status is JobStatus.PLANNING:
            self.store.mark_restoring(job.job_id)
            job.status = JobStatus.RESTORING
        self.queues.send_chunks(outgoing)
        sent.extend(int(message["chunk"]) for message in outgoing)
        outgoing.clear()

    def _register_bucket(self, job_id: str, bucket: str) -> None:
        """Before the first restore in a bucket: completion events must find this job, and must be sent."""
        self.store.register_bucket(job_id, bucket)
        if self.manage_eventbridge:
            try:
                self.s3.ensure_eventbridge(bucket)
            except Exception as exc:  # noqa: BLE001 - a bucket we may not configure still restores
                logger.warning("could not turn on EventBridge for bucket", extra={"job_id": job_id, "bucket": bucket, "error": str(exc)})
