"""Restore workers: request the restore of each object of a chunk and account the chunk once."""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from aws_lambda_powertools import Logger

from bulk_restore.adapters.dynamodb import DynamoJobStore, ObjectRecord, now_iso, object_key
from bulk_restore.adapters.s3 import BUCKET_REFUSED, S3Gateway
from bulk_restore.domain.batch import ARCHIVE_GROUP, IT_GROUP
from bulk_restore.domain.model import ManifestError, ObjectId, ObjectOutcome, ObjectState, RestoreJob, Tier, archive_ref
from bulk_restore.domain.outcomes import ALREADY_RESTORED, IN_PROGRESS, NO_CAPACITY, RetryLater
from bulk_restore.domain.timing import event_epoch
from bulk_restore.usecases.batch import BatchEngine
from bulk_restore.usecases.fanout import Crew
from bulk_restore.usecases.metrics import NO_METRICS, RESTORES_THROTTLED, Metrics, count_moved, count_recorded
from bulk_restore.usecases.pacing import Pacer
from bulk_restore.usecases.vault import VaultMover

logger = Logger(child=True)
_T = TypeVar("_T")
_R = TypeVar("_R")

STATUS_CHECK_SECONDS = 1.0
CLOCK_SKEW_SECONDS = 5.0  # between S3's event times and ours
EARLY_LOOKBACK_SECONDS = 900.0  # a kept completion noted this long before a chunk started still counts as maybe its own
BATCH_REQUESTED = ObjectOutcome(ObjectState.RESTORING, "")
NOT_ARCHIVED = ObjectOutcome(ObjectState.SKIPPED, "readable now: not in an archive storage class")
NOT_REQUESTED = ObjectOutcome(ObjectState.CANCELLED, "not requested: the job had ended (cancelled or timed out) first")
REQUESTED = ObjectOutcome(ObjectState.RESTORING, "")  # recorded as its restore is about to be requested
# The most restore requests one pacing write buys a window for: two chunks' worth, about a fifth of
# a second of the default rate. A worker's 16 threads send fewer than 900 a second, so a window as
# long as a whole delivery (a second) would be one worker's alone, half empty; short windows
# interleave the workers' requests and keep the job at its share from the first second. Windows of
# 98 and of 196 measured the same issuance (BENCHMARKS.md section 4); 294 began to be throttled.
PACING_WINDOW = 196


def _line_failed(job_id: str, error: ManifestError) -> ObjectRecord:
    """The record of a manifest line that names no object it could restore: FAILED, saying why."""
    return ObjectRecord(
        job_id, error.ref, "", error.raw, None, ObjectState.FAILED, f"manifest line {error.line}: {error.message}", error.line
    )


def _refuse(error: Exception) -> None:
    raise error


@dataclass
class _Chunk:
    """A restore-queue message of manifest rows (usecases/plan.py)."""

    number: int
    rows: list[tuple[int, ObjectId]]
    known: dict[str, str]  # the object's kind for the batch engine, where the source said it (a 5th field)
    errors: list[ManifestError]
    skipped: list[tuple[int, ObjectId, str]]

    @classmethod
    def parse(cls, message: dict[str, Any]) -> _Chunk:
        raw_rows = message.get("rows", [])
        rows = [(int(row[0]), ObjectId(row[1], row[2], row[3] or None)) for row in raw_rows]
        return cls(
            int(message["chunk"]),
            rows,
            {obj.ref: row[4] for row, (_, obj) in zip(raw_rows, rows, strict=True) if len(row) > 4},
            [ManifestError(int(line), str(msg), str(raw)) for line, msg, raw in message.get("errors", [])],
            [
                (int(line), ObjectId(bucket, key, version or None), str(reason))
                for line, bucket, key, version, reason in message.get("skipped", [])
            ],
        )


class RestoreWorker:
    def __init__(
        self,
        store: DynamoJobStore,
        s3: S3Gateway,
        concurrency: int = 16,
        pacer: Pacer | None = None,
        batch: BatchEngine | None = None,
        vault: VaultMover | None = None,
        metrics: Metrics = NO_METRICS,
    ):
        self.store = store
        self.s3 = s3
        self.concurrency = concurrency
        self.pacer = pacer
        self.batch = batch
        self.vault = vault
        self.metrics = metrics

    def restore_messages(self, messages: Sequence[tuple[str, Any]]) -> list[str]:
        """A delivery of restore-queue messages (id, body); returns the ids of those that failed
        and must come again. A job's chunks of the direct engine are taken together: one read and
        one write of their markers for all, their objects 25 to a request, a pacing write per
        PACING_WINDOW requests."""
        failed: list[str] = []
        parsed: list[tuple[str, dict[str, Any]]] = []
        for message_id, body in messages:
            try:
                message = json.loads(body) if isinstance(body, str | bytes) else body
            except ValueError:
                message = None
            if not isinstance(message, dict) or "job_id" not in message:
                logger.error("restore message unreadable: not a chunk, nor a launch", extra={"message_id": message_id})
                failed.append(message_id)
                continue
            parsed.append((message_id, message))
        for ids, work in self._units(parsed):
            try:
                work()
            except Exception:
                logger.exception("restore messages failed: they come again", extra={"message_ids": ids})
                failed += ids
        return failed

    def restore_chunk(self, message: dict[str, Any]) -> None:
        """One message on its own (an error propagates)."""
        for _, work in self._units([("", message)]):
            work()

    def _units(self, messages: Sequence[tuple[str, dict[str, Any]]]) -> Iterator[tuple[list[str], Callable[[], None]]]:
        """The work of a delivery: each launch and vault message alone, the row chunks per job."""
        rows: dict[str, list[tuple[str, _Chunk]]] = {}
        for message_id, message in messages:
            if message.get("launch") == "batch" or "archives" in message:
                yield [message_id], functools.partial(self._one, message)
                continue
            try:
                chunk = _Chunk.parse(message)
            except (KeyError, IndexError, TypeError, ValueError) as exc:  # a malformed message fails alone
                yield [message_id], functools.partial(_refuse, exc)
                continue
            rows.setdefault(str(message["job_id"]), []).append((message_id, chunk))
        for job_id, group in rows.items():
            yield [i for i, _ in group], functools.partial(self._rows, job_id, [c for _, c in group])

    def _one(self, message: dict[str, Any]) -> None:
        if message.get("launch") == "batch":
            # The counting function saw the job's last chunk counted: its Batch runs can start.
            if self.batch is not None:
                self.batch.launch_when_accounted(str(message["job_id"]))
            return
        self._vault_chunk(str(message["job_id"]), int(message["chunk"]), message)

    def _rows(self, job_id: str, parsed: list[_Chunk]) -> None:
        chunks = list({c.number: c for c in parsed}.values())  # a chunk delivered twice: once
        job, done = self.store.chunks_state(job_id, [c.number for c in chunks])
        if job is None:
            logger.warning("restore chunks for unknown job dropped", extra={"job_id": job_id, "chunks": [c.number for c in chunks]})
            return
        if job.engine == "batch":
            for chunk in chunks:
                if chunk.number not in done:
                    self._batch_chunk(job_id, chunk)
            return
        todo = [c for c in chunks if c.number not in done]
        if todo:
            self._direct(job, todo)
        # The job's counts, progress events and end follow from the stream (usecases/count.py).

    def _direct(self, job: RestoreJob, chunks: list[_Chunk]) -> None:
        """Chunks of the direct engine: each object is recorded RESTORING before its restore is
        requested, so a completion event always finds it (none is ever early); an object another
        line or an earlier delivery recorded first is not recorded again. Then the restores of the
        objects this call recorded, and of those an earlier delivery of the same lines recorded
        but may not have requested (S3 answers 409 for a restore it has; once the job has ended,
        those S3 holds no restore for are CANCELLED instead), the answers other than "accepted"
        written on the objects, and last the chunks' markers."""
        job_id, at = job.job_id, now_iso()
        records: list[ObjectRecord] = []
        chunk_of: dict[str, int] = {}
        restorable: set[tuple[str, int]] = set()  # (ref, line) of the rows S3 is (or would have been) asked about
        for chunk in chunks:
            begin = len(records)
            for line, obj in chunk.rows:
                if not self.s3.may_touch(obj.bucket):
                    records.append(self._record(job, line, obj, BUCKET_REFUSED))
                    continue
                restorable.add((obj.ref, line))
                if job.status.is_terminal:
                    records.append(self._record(job, line, obj, NOT_REQUESTED))
                else:
                    records.append(self._record(job, line, obj, REQUESTED, at))
            records += [_line_failed(job_id, e) for e in chunk.errors]
            records += [self._record(job, line, obj, ObjectOutcome(ObjectState.SKIPPED, reason)) for line, obj, reason in chunk.skipped]
            for record in records[begin:]:
                chunk_of.setdefault(record.ref, chunk.number)
        inserted, taken = self.store.insert_objects(records)
        first: dict[str, int] = {}  # each ref's first line in these chunks: the one recorded
        for record in records:
            first.setdefault(record.ref, record.line)
        wanted = {r.ref for r in records if (r.ref, r.line) in restorable and first[r.ref] == r.line}
        todo = [r for r in inserted if r.state is ObjectState.RESTORING]
        again: set[str] = set()
        earlier: list[ObjectRecord] = []
        unasked: list[ObjectRecord] = []
        if taken & wanted:
            # Recorded before: by another manifest line (counted there), or by an earlier delivery of
            # these lines that may have stopped before requesting: request those again. If the job
            # has ended since, those S3 holds no restore for were never requested, and never will be.
            earlier = self.store.find_objects([object_key(job_id, ref) for ref in sorted(taken & wanted)])
            mine = [r for r in earlier if r.state is ObjectState.RESTORING and r.line == first[r.ref]]
            if job.status.is_terminal:
                unasked = [replace(r, state=NOT_REQUESTED.state, reason=NOT_REQUESTED.reason) for r in self._never_asked(mine)]
                again = {r.ref for r in unasked}
            else:
                todo += mine
                again = {r.ref for r in mine}
        answered = self._request_paced(job, [(r.line, ObjectId(r.bucket, r.key, r.version_id)) for r in todo]) + unasked
        moves: dict[tuple[ObjectState, str], list[str]] = {}
        for record in answered:
            if record.state is ObjectState.RESTORING and (not record.reason or record.ref in again):
                continue  # accepted (or our own earlier request, in progress): as recorded
            moves.setdefault((record.state, record.reason), []).append(record.ref)
        for (state, reason), refs in moves.items():
            self.store.move(job_id, refs, state, reason)
        per_chunk = {c.number: 0 for c in chunks}
        for record in inserted:
            per_chunk[chunk_of[record.ref]] += 1
        marked = self.store.mark_chunks(job_id, per_chunk)
        # Counted once, by the delivery that accounts the chunk: in the state each ended in here.
        final = {r.ref: r.state for r in answered}
        counted = [*inserted, *(r for r in earlier if r.ref in again)]
        count_recorded(self.metrics, (final.get(r.ref, r.state) for r in counted if chunk_of[r.ref] in marked))
        logger.info(
            "chunks accounted",
            extra={
                "job_id": job_id,
                "chunks": sorted(per_chunk),
                "objects": len(inserted),
                "requested": len(answered),
                "marked": len(marked),
            },
        )

    def _each(self, call: Callable[[_T], _R], items: Sequence[_T], crew: Crew[Any, Any] | None = None) -> list[_R]:
        """``call`` on each item, results in order: on ``crew``, else on up to RestoreConcurrency
        threads of its own (one item, or a concurrency of one: on this thread)."""
        if crew is not None:
            return crew.run(call, items)
        if len(items) <= 1 or self.concurrency <= 1:
            return [call(item) for item in items]
        with Crew[_T, _R](min(self.concurrency, len(items))) as own:
            return own.run(call, items)

    def _never_asked(self, records: list[ObjectRecord]) -> list[ObjectRecord]:
        """Those of these objects S3 holds no restore for (a HeadObject each, on the worker's threads)."""

        def unasked(record: ObjectRecord) -> bool:
            return self.s3.holds_restore(ObjectId(record.bucket, record.key, record.version_id)) is False

        return [r for r, no in zip(records, self._each(unasked, records), strict=True) if no]

    def _batch_chunk(self, job_id: str, chunk: _Chunk) -> None:
        """A batch-engine job's chunk: each object's class looked up and its Batch manifest rows
        written before the objects are recorded (its Batch jobs request the restores later)."""
        started = time.time()  # before any restore request of this delivery
        refs = [obj.ref for _, obj in chunk.rows] + [e.ref for e in chunk.errors] + [obj.ref for _, obj, _ in chunk.skipped]
        job, done, existing = self.store.chunk_state(job_id, chunk.number, refs)
        if job is None:
            logger.warning("restore chunk for unknown job dropped", extra={"job_id": job_id, "chunk": chunk.number})
            return
        if not done:
            # Objects that already exist belong to an earlier manifest line (counted there): not recorded twice.
            todo = [(line, obj) for line, obj in chunk.rows if obj.ref not in existing]
            refused = [(line, obj) for line, obj in todo if not self.s3.may_touch(obj.bucket)]
            todo = [(line, obj) for line, obj in todo if self.s3.may_touch(obj.bucket)]
            records = self._for_batch(job, chunk.number, todo, chunk.known)
            records += [self._record(job, line, obj, BUCKET_REFUSED) for line, obj in refused]
            records += [_line_failed(job_id, e) for e in chunk.errors if e.ref not in existing]
            records += [
                self._record(job, line, obj, ObjectOutcome(ObjectState.SKIPPED, reason))
                for line, obj, reason in chunk.skipped
                if obj.ref not in existing
            ]
            applied, taken = self.store.record_chunk(job_id, chunk.number, records)
            mine = [r for r in records if r.ref not in taken]  # each object is inserted by one writer only
            count_recorded(self.metrics, (r.state for r in mine))
            logger.info("chunk accounted", extra={"job_id": job_id, "chunk": chunk.number, "objects": len(records), "applied": applied})
            # and those an earlier delivery of the chunk inserted before it stopped (or another line's:
            # looking again costs a read, never a second count)
            restoring = [r for r in [*mine, *existing.values()] if r.state is ObjectState.RESTORING]
            since: float | None = started if not existing else None
        else:
            # Accounted before; that delivery may have died before looking for early completions.
            restoring = [r for r in existing.values() if r.state is ObjectState.RESTORING]
            since = None
        self._complete_early(job_id, restoring, since)

    def _vault_chunk(self, job_id: str, chunk: int, message: dict[str, Any]) -> None:
        """A vault job's chunk: its archives recorded RESTORING first, then a retrieval job initiated
        for each (usecases/vault.py); a replay initiates what a crash left without one."""
        vault, bucket = str(message["vault"]), str(message["bucket"])
        archives = [(int(line), str(archive_id), str(key), dict(extra or {})) for line, archive_id, key, extra in message["archives"]]
        errors = [ManifestError(int(line), str(msg), str(raw)) for line, msg, raw in message.get("errors", [])]
        skipped = [(int(line), str(archive_id), str(reason)) for line, archive_id, reason in message.get("skipped", [])]
        refs = (
            [archive_ref(vault, archive_id) for _, archive_id, _, _ in archives]
            + [e.ref for e in errors]
            + [archive_ref(vault, archive_id) for _, archive_id, _ in skipped]
        )
        job, done, existing = self.store.chunk_state(job_id, chunk, refs)
        if job is None:
            logger.warning("vault chunk for unknown job dropped", extra={"job_id": job_id, "chunk": chunk})
            return
        if not done:
            state = ObjectState.CANCELLED if job.status.is_terminal or self.vault is None else ObjectState.RESTORING
            why = "" if state is ObjectState.RESTORING else NOT_REQUESTED.reason
            records = [
                ObjectRecord(
                    job_id,
                    archive_ref(vault, archive_id),
                    bucket,
                    key,
                    None,
                    state,
                    why,
                    line,
                    now_iso(),
                    {"id": archive_id, "vault": vault, **extra},
                )
                for line, archive_id, key, extra in archives
                if archive_ref(vault, archive_id) not in existing
            ]
            records += [_line_failed(job_id, e) for e in errors if e.ref not in existing]
            records += [
                ObjectRecord(
                    job_id,
                    archive_ref(vault, archive_id),
                    bucket,
                    "",
                    None,
                    ObjectState.SKIPPED,
                    reason,
                    line,
                    now_iso(),
                    {"id": archive_id, "vault": vault},
                )
                for line, archive_id, reason in skipped
                if archive_ref(vault, archive_id) not in existing
            ]
            applied, taken = self.store.record_chunk(job_id, chunk, records)
            mine = [r for r in records if r.ref not in taken]
            count_recorded(self.metrics, (r.state for r in mine))
            logger.info("vault chunk accounted", extra={"job_id": job_id, "chunk": chunk, "archives": len(records), "applied": applied})
            # and the archives an earlier delivery inserted before it stopped: a retrieval for each that has none
            todo = mine + [r for r in existing.values() if r.state is ObjectState.RESTORING]
        else:
            todo = list(existing.values())
        if self.vault is not None and not job.status.is_terminal:
            self.vault.request(job, todo)

    def _for_batch(self, job: RestoreJob, chunk: int, todo: list[tuple[int, ObjectId]], known: dict[str, str]) -> list[ObjectRecord]:
        """The batch engine's part of a chunk: each object's class (from the source, or HeadObject),
        and the chunk's manifest rows per Batch job, written before the chunk is recorded (a replay
        writes the same). Missing and non-archived objects never reach a Batch job."""
        if job.status.is_terminal or self.batch is None:
            return [self._record(job, line, obj, NOT_REQUESTED) for line, obj in todo]

        def look(item: tuple[int, ObjectId]) -> tuple[int, ObjectId, str, ObjectOutcome | None]:
            line, obj = item
            kind = known.get(obj.ref)
            if kind:
                return line, obj, kind, None
            for attempt in range(6):
                try:
                    kind, failed = self.s3.archive_class(obj)
                    return line, obj, kind, failed
                except RetryLater:
                    self.metrics.add(RESTORES_THROTTLED, 1)
                    time.sleep(min(5.0, 0.1 * 2**attempt))
            return line, obj, ARCHIVE_GROUP, None  # S3 kept saying "slow down": the Batch task will say

        looked = self._each(look, todo)
        groups: dict[str, list[ObjectId]] = {ARCHIVE_GROUP: [], IT_GROUP: []}
        records = []
        for line, obj, kind, failed in looked:
            at = now_iso()
            if failed is not None:
                records.append(self._record(job, line, obj, failed, at))
            elif kind == "readable":
                records.append(self._record(job, line, obj, NOT_ARCHIVED, at))
            elif kind == "restoring":
                records.append(self._record(job, line, obj, IN_PROGRESS, at))
            else:
                if kind == "restored":  # a restored copy: its task moves the expiry; S3 sends no event for it
                    records.append(self._record(job, line, obj, ALREADY_RESTORED, at))
                else:
                    records.append(self._record(job, line, obj, BATCH_REQUESTED, at))
                groups[IT_GROUP if kind == IT_GROUP else ARCHIVE_GROUP].append(obj)
        versioned = job.planning.versioned_line > 0
        for group, objects in groups.items():
            self.batch.write_fragment(job.job_id, chunk, objects, versioned, group=group)
        return records

    def _complete_early(self, job_id: str, records: list[ObjectRecord], since: float | None = None) -> None:
        """Complete the objects whose restore-completed event came before they were recorded: the
        completion worker kept it (usecases/complete.py). Looked up after recording, never before.

        ``since``: when these objects' restores were first requested. The completion worker notes
        per bucket when it last kept a completion, before it looks for the objects again; if that
        was not after ``since`` (with a wide margin for clocks), nothing here can have been kept,
        and the lookup (a read per object) is skipped. One of the two sides always sees the other:
        both read strongly consistent after their own write."""
        if not records:
            return
        if since is not None:
            noted = self.store.early_completions_noted({r.bucket for r in records})
            if noted is None or noted < since - EARLY_LOOKBACK_SECONDS:
                return
        kept = self.store.early_completions(r.ref for r in records)
        done = []
        for record in records:
            if record.ref not in kept:
                continue
            completed_at, certain = kept[record.ref]
            requested_at = event_epoch(record.updated_at) or 0.0
            if completed_at < requested_at - CLOCK_SKEW_SECONDS:
                continue  # the completion of an earlier restore, whose copy has expired since
            if certain or self.s3.restore_status(ObjectId(record.bucket, record.key, record.version_id)) == "restored":
                done.append(record)
        if done:
            moved = self.store.transition(job_id, done, ObjectState.RESTORED)
            count_moved(self.metrics, ObjectState.RESTORED, moved)
            logger.info("restores completed before they were recorded", extra={"job_id": job_id, "objects": moved})

    def clock(self) -> float:
        return self.pacer.clock() if self.pacer is not None else time.monotonic()

    def _request_paced(self, job: RestoreJob, todo: list[tuple[int, ObjectId]]) -> list[ObjectRecord]:
        """Request restores at the job's share of the rate: the schedule's time bought for up to
        PACING_WINDOW of them in one write, then a slot's worth at a time, each at its place, on
        one pool of threads. A cancel stops the batches that follow it: each write tells whether
        the job has ended, and when a second has passed since, the job is read again."""
        records: list[ObjectRecord] = []
        if self.pacer is None or not self.pacer.enabled:
            if job.status.is_terminal:
                return [self._record(job, line, obj, NOT_REQUESTED) for line, obj in todo]
            return self._request(job, todo)
        if not todo:
            return records
        threads = min(self.concurrency, self.pacer.batch_size(), len(todo))
        # one thread: the requests go on this one (no crew to start)
        with Crew[tuple[int, ObjectId], ObjectRecord](threads) if threads > 1 else nullcontext() as crew:
            while todo:
                window, todo = todo[:PACING_WINDOW], todo[PACING_WINDOW:]
                start, spacing, stopped = self.pacer.reserve(job.job_id, len(window))
                if stopped and not job.status.is_terminal:
                    job = self.store.get_job(job.job_id) or job  # ended since: read how
                checked = self.clock()  # the write said whether the job had ended
                size, sent = self.pacer.batch_size(), 0
                while window:
                    if job.status.is_terminal:
                        return records + [self._record(job, line, obj, NOT_REQUESTED) for line, obj in window + todo]
                    self.pacer.wait_until(start + sent * spacing)
                    if self.clock() - checked >= STATUS_CHECK_SECONDS:
                        # Waiting for the rate took a while: a cancel may have come meanwhile.
                        job, checked = self.store.get_job(job.job_id) or job, self.clock()
                        if job.status.is_terminal:
                            continue
                    batch, window = window[:size], window[size:]
                    records += self._request(job, batch, crew)
                    sent += len(batch)
        return records

    @staticmethod
    def _record(job: RestoreJob, line: int, obj: ObjectId, outcome: ObjectOutcome, at: str = "") -> ObjectRecord:
        """The object's record; ``at``: when its restore was requested (its first updated_at)."""
        return ObjectRecord(job.job_id, obj.ref, obj.bucket, obj.key, obj.version_id, outcome.state, outcome.reason, line, at)

    def _restore(self, job: RestoreJob, obj: ObjectId) -> ObjectOutcome:
        """One object's restore; Expedited falls back to Standard when the job allows it."""
        fallback = job.tier is Tier.EXPEDITED and job.expedited_fallback
        try:
            outcome = self.s3.restore_with_retries(obj, job.tier, job.expiration_days, pace=self._pace(job), refused=self._refused)
        except RetryLater as exc:
            if not (fallback and exc.code == NO_CAPACITY):
                raise  # the chunk is retried later; the objects it restored answer 409 then
            return self._with_standard(job, obj, "Expedited had no capacity")
        if fallback and outcome.state is ObjectState.FAILED and outcome.reason.startswith("InvalidArgument"):
            return self._with_standard(job, obj, f"Expedited was refused ({outcome.reason})")
        return outcome

    def _pace(self, job: RestoreJob) -> Callable[[], None] | None:
        pacer = self.pacer
        if pacer is None:
            return None
        return lambda: pacer.acquire(job.job_id, 1)

    def _refused(self, code: str) -> None:
        """S3 said "not now" to a restore request: a throttling answer is counted (no Expedited capacity is not one)."""
        if code != NO_CAPACITY:
            self.metrics.add(RESTORES_THROTTLED, 1)

    def _with_standard(self, job: RestoreJob, obj: ObjectId, why: str) -> ObjectOutcome:
        outcome = self.s3.restore_with_retries(obj, Tier.STANDARD, job.expiration_days, pace=self._pace(job), refused=self._refused)
        if outcome.state is ObjectState.FAILED:
            return outcome
        return replace(outcome, reason=f"restored with Standard: {why}")

    def _request(self, job: RestoreJob, todo: list[tuple[int, ObjectId]], crew: Crew[Any, Any] | None = None) -> list[ObjectRecord]:
        def one(item: tuple[int, ObjectId]) -> ObjectRecord:
            line, obj = item
            requested_at = now_iso()
            return self._record(job, line, obj, self._restore(job, obj), requested_at)

        return self._each(one, todo, crew)
