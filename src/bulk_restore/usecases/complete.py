"""Completion: restore-completed events move the jobs' objects from RESTORING to RESTORED."""

from __future__ import annotations

from collections import defaultdict

from aws_lambda_powertools import Logger

from bulk_restore.adapters.dynamodb import DynamoJobStore, ObjectRecord, object_key
from bulk_restore.domain.events import RestoreCompleted
from bulk_restore.domain.model import ObjectState
from bulk_restore.usecases.notify import Notifier

logger = Logger(child=True)


class CompletionRecorder:
    def __init__(self, store: DynamoJobStore, notifier: Notifier):
        self.store = store
        self.notifier = notifier

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
        for event in events:
            for job_id in jobs_by_bucket[event.bucket]:
                # The first spelling that names an object of this job is the one the event means.
                for ref in event.candidate_refs():
                    record = found.get((job_id, ref))
                    if record is None:
                        continue
                    if record.state is ObjectState.RESTORING:
                        chosen[job_id][ref] = record
                    break
        for job_id, records in chosen.items():
            moved = self.store.transition(job_id, list(records.values()), ObjectState.RESTORED)
            logger.info("restores completed", extra={"job_id": job_id, "objects": moved, "events": len(records)})
            self.notifier.evaluate(job_id)
