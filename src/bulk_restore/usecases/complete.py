"""Completion: restore-completed events move the jobs' objects from RESTORING to RESTORED.

Every job an event names is evaluated afterwards, also when nothing moved: a batch delivered
again after its transactions committed must still end the job and publish what is pending.

Which jobs have objects in a bucket is read for every batch (one consistent query per bucket):
a job that started a moment ago must get its completions too.

No completion is lost when it comes before its object is recorded (a restore worker records a
chunk's objects after S3 has answered all of them; S3's completion can be quicker, above all
when S3 answered 409 because another job or tool was already restoring the object). An event
that a job still issuing requests may yet record is kept (``keep_early_completions``) *before*
its objects are looked up once more; a restore worker looks for kept events *after* recording
its objects. Whatever the order, one of the two sees the other (both writes and reads are
strongly consistent), and the RESTORING -> RESTORED transition counts the object once.
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
from bulk_restore.domain.timing import event_epoch
from bulk_restore.usecases.metrics import NO_METRICS, Metrics, count_moved

logger = Logger(child=True)


class CompletionRecorder:
    def __init__(
        self,
        store: DynamoJobStore,
        s3: S3Gateway | None = None,
        clock: Callable[[], float] = time.time,
        metrics: Metrics = NO_METRICS,
    ):
        self.store = store
        self.s3 = s3  # checks an event whose key only matches in its form-decoded spelling
        self.clock = clock
        self.metrics = metrics

    def record(self, events: list[RestoreCompleted]) -> None:
        """Account a batch of completions. Duplicates and events for objects of no job are no-ops."""
        links = {bucket: self.store.jobs_for_bucket(bucket) for bucket in {e.bucket for e in events}}
        found = self._find(events, links)
        early = [e for e in events if self._may_come_later(e, links[e.bucket], found)]
        if early:
            now = self.clock()
            kept: dict[str, tuple[float, bool]] = {}
            for event in early:
                at = event_epoch(event.at) or now
                literal = set(event.literal_refs())
                for ref in event.candidate_refs():
                    kept[ref] = (at, ref in literal or kept.get(ref, (0, False))[1])
            self.store.keep_early_completions(kept)
            self.store.note_early_completions({e.bucket for e in early}, time.time())  # wall clock, as the restore workers read it
            found.update(self._find(early, links))  # after keeping them: see the restore worker's side
            logger.info("completions kept for objects not recorded yet", extra={"events": len(early)})
        chosen: dict[str, dict[str, ObjectRecord]] = defaultdict(dict)
        for event in events:
            literal = set(event.literal_refs())
            for job_id in links[event.bucket]:
                # The first spelling that names an object of this job is the one the event means.
                for ref in event.candidate_refs():
                    record = found.get((job_id, ref))
                    if record is None:
                        continue
                    if record.state is ObjectState.RESTORING and (ref in literal or self._restored(record)):
                        chosen[job_id][ref] = record
                    break
        for job_id, records in chosen.items():
            moved = self.store.transition(job_id, list(records.values()), ObjectState.RESTORED)
            count_moved(self.metrics, ObjectState.RESTORED, moved)
            logger.info("restores completed", extra={"job_id": job_id, "objects": moved, "events": len(records)})
        # What moved reaches the job's counters, its progress events and its end through the
        # table's stream (usecases/count.py).

    @staticmethod
    def _may_come_later(event: RestoreCompleted, jobs: dict[str, bool], found: dict[tuple[str, str], ObjectRecord]) -> bool:
        """A job still issuing requests does not have the object (yet): it may record it later."""
        refs = event.candidate_refs()
        return any(issuing and not any((job_id, ref) in found for ref in refs) for job_id, issuing in jobs.items())

    def _find(self, events: list[RestoreCompleted], links: dict[str, dict[str, bool]]) -> dict[tuple[str, str], ObjectRecord]:
        keys = [object_key(job_id, ref) for e in events for job_id in links[e.bucket] for ref in e.candidate_refs()]
        return {(r.job_id, r.ref): r for r in self.store.find_objects(keys)} if keys else {}

    def _restored(self, record: ObjectRecord) -> bool:
        """An event matched this object only through a decoded spelling: believe it if S3 agrees."""
        if self.s3 is None:
            return False
        return self.s3.restore_status(ObjectId(record.bucket, record.key, record.version_id)) == "restored"
