"""Completion: restore-completed events move the jobs' objects from RESTORING to RESTORED.

Every job an event names is evaluated afterwards, also when nothing moved: a batch delivered
again after its transactions committed must still end the job and publish what is pending.
"""

from __future__ import annotations

from collections import defaultdict

from aws_lambda_powertools import Logger

from bulk_restore.adapters.dynamodb import DynamoJobStore, ObjectRecord, object_key
from bulk_restore.adapters.s3 import S3Gateway
from bulk_restore.domain.events import RestoreCompleted
from bulk_restore.domain.model import ObjectId, ObjectState
from bulk_restore.usecases.notify import Notifier

logger = Logger(child=True)


class CompletionRecorder:
    def __init__(self, store: DynamoJobStore, notifier: Notifier, s3: S3Gateway | None = None):
        self.store = store
        self.notifier = notifier
        self.s3 = s3  # checks an event whose key only matches in its form-decoded spelling

    def record(self, events: list[RestoreCompleted]) -> None:
        """Account a batch of completions. Duplicates and events for objects of no job are no-ops."""
        jobs_by_bucket: dict[str, list[str]] = {}
        for event in events:
            if event.bucket not in jobs_by_bucket:
                jobs_by_bucket[event.bucket] = self.store.jobs_for_bucket(event.bucket)
        keys = [
            object_key(job_id, ref)
            for event in events
            for job_id in jobs_by_bucket[event.bucket]
            for ref in event.candidate_refs()
        ]
        if not keys:
            return
        found = {(r.job_id, r.ref): r for r in self.store.find_objects(keys)}
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

    def _restored(self, record: ObjectRecord) -> bool:
        """An event matched this object only through a decoded spelling: believe it if S3 agrees."""
        if self.s3 is None:
            return False
        return self.s3.restore_status(ObjectId(record.bucket, record.key, record.version_id)) == "restored"
