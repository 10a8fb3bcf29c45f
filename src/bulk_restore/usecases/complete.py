"""Completion: restore-completed events move the jobs' objects from RESTORING to RESTORED.

Every job an event names is evaluated afterwards, also when nothing moved: a batch delivered
again after its transactions committed must still end the job and publish what is pending.

Which jobs have objects in a bucket is kept for BUCKET_JOBS_SECONDS between batches, saving a
query per batch; an event that no listed job knows makes the list be read again, so a job that
started meanwhile is never missed.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable

from aws_lambda_powertools import Logger

from bulk_restore.adapters.dynamodb import DynamoJobStore, ObjectRecord, object_key
from bulk_restore.adapters.s3 import S3Gateway
from bulk_restore.domain.events import RestoreCompleted
from bulk_restore.domain.model import ObjectId, ObjectState
from bulk_restore.usecases.notify import Notifier

logger = Logger(child=True)

BUCKET_JOBS_SECONDS = 30.0


class CompletionRecorder:
    def __init__(self, store: DynamoJobStore, notifier: Notifier, s3: S3Gateway | None = None,
                 cache_seconds: float = BUCKET_JOBS_SECONDS, clock: Callable[[], float] = time.monotonic):
        self.store = store
        self.notifier = notifier
        self.s3 = s3  # checks an event whose key only matches in its form-decoded spelling
        self.cache_seconds = cache_seconds
        self.clock = clock
        self._bucket_jobs: dict[str, tuple[float, list[str]]] = {}

    def jobs_for_bucket(self, bucket: str, fresh: bool = False) -> list[str]:
        at, jobs = self._bucket_jobs.get(bucket, (float("-inf"), []))
        if fresh or self.clock() - at >= self.cache_seconds:
            jobs = self.store.jobs_for_bucket(bucket)
            self._bucket_jobs[bucket] = (self.clock(), jobs)
        return jobs

    def record(self, events: list[RestoreCompleted]) -> None:
        """Account a batch of completions. Duplicates and events for objects of no job are no-ops."""
        jobs_by_bucket = {event.bucket: self.jobs_for_bucket(event.bucket) for event in events}
        found = self._find(events, jobs_by_bucket)
        # An event no listed job knows may be of a job that started after the list was read.
        unknown = {e.bucket for e in events if not any((j, r) in found for j in jobs_by_bucket[e.bucket] for r in e.candidate_refs())}
        if unknown and self.cache_seconds > 0:
            jobs_by_bucket.update({bucket: self.jobs_for_bucket(bucket, fresh=True) for bucket in unknown})
            found.update(self._find([e for e in events if e.bucket in unknown], jobs_by_bucket))
        chosen: dict[str, dict[str, ObjectRecord]] = defaultdict(dict)
        named: set[str] = set()
        for event in events:
            literal = set(event.literal_refs())
            for job_id in jobs_by_bucket[event.bucket]:
                # The first spelling that names an object of this job is the one the event means.
                for ref in event.candidate_refs():
                    record = found.get((job_id, ref))
                    if record is None:
                        continue
                    named.add(job_id)
                    if record.state is ObjectState.RESTORING and (ref in literal or self._restored(record)):
                        chosen[job_id][ref] = record
                    break
        for job_id, records in chosen.items():
            moved = self.store.transition(job_id, list(records.values()), ObjectState.RESTORED)
            logger.info("restores completed", extra={"job_id": job_id, "objects": moved, "events": len(records)})
        for job_id in sorted(named):
            self.notifier.evaluate(job_id)

    def _find(self, events: list[RestoreCompleted], jobs_by_bucket: dict[str, list[str]]) -> dict[tuple[str, str], ObjectRecord]:
        keys = [object_key(job_id, ref) for e in events for job_id in jobs_by_bucket[e.bucket] for ref in e.candidate_refs()]
        return {(r.job_id, r.ref): r for r in self.store.find_objects(keys)} if keys else {}

    def _restored(self, record: ObjectRecord) -> bool:
        """An event matched this object only through a decoded spelling: believe it if S3 agrees."""
        if self.s3 is None:
            return False
        return self.s3.restore_status(ObjectId(record.bucket, record.key, record.version_id)) == "restored"
