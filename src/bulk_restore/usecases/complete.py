"""Completion: restore-completed events move the jobs' objects from RESTORING to RESTORED.

Which jobs have objects in a bucket is read for every batch (one consistent query per bucket):
a job that started a moment ago must get its completions too. Each job's link to the bucket says
whether its manifest rows all have a version id or none has, so an event names one ref per job
and spelling, not two.

Most events need no read: in a bucket one job restores in, the event's certain spelling names the
object, and a conditional move from RESTORING (one write unit, 25 to a request) moves it or
fails alone. Only the events that moved nothing there, when the job may still record the object
or another spelling may name it, and the events of buckets several jobs share, are looked up.

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

from bulk_restore.adapters.dynamodb import BucketLink, DynamoJobStore, ObjectRecord, object_key
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
        links = {bucket: self.store.bucket_links(bucket) for bucket in {e.bucket for e in events}}
        rest = self._move_directly(events, links)
        if rest:
            self._move_looked_up(rest, links)
        # What moved reaches the job's counters, its progress events and its end through the
        # table's stream (usecases/count.py).

    def _move_directly(self, events: list[RestoreCompleted], links: dict[str, dict[str, BucketLink]]) -> list[RestoreCompleted]:
        """The common case, without a read: a bucket one job restores in, whose refs take one known
        form. The event's certain spelling names the object; a conditional move from RESTORING
        moves it or fails alone. Returns the events that need a look: those that moved nothing
        where the job may still record the object, or where another spelling may name it."""
        direct: dict[str, dict[str, RestoreCompleted]] = defaultdict(dict)
        rest: list[RestoreCompleted] = []
        for event in events:
            jobs = links[event.bucket]
            if len(jobs) == 1:
                ((job_id, link),) = jobs.items()
                if link.versioned is not None:
                    direct[job_id].setdefault(event.literal_ref(link.versioned), event)
                    continue
            rest.append(event)
        for job_id, by_ref in direct.items():
            moved = self.store.move(job_id, list(by_ref), ObjectState.RESTORED)
            count_moved(self.metrics, ObjectState.RESTORED, len(moved))
            rest += [e for ref, e in by_ref.items() if ref not in moved and (links[e.bucket][job_id].issuing or len(e.keys) > 1)]
            if moved:
                logger.info("restores completed", extra={"job_id": job_id, "objects": len(moved), "events": len(by_ref)})
        return rest

    def _move_looked_up(self, events: list[RestoreCompleted], links: dict[str, dict[str, BucketLink]]) -> None:
        """Look the events' objects up in every job of their buckets, in each spelling, then move them."""
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
            for job_id, link in links[event.bucket].items():
                # The first spelling that names an object of this job is the one the event means.
                for ref in event.candidate_refs(link.versioned):
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

    @staticmethod
    def _may_come_later(event: RestoreCompleted, jobs: dict[str, BucketLink], found: dict[tuple[str, str], ObjectRecord]) -> bool:
        """A job still issuing requests does not have the object (yet): it may record it later."""
        return any(
            link.issuing and not any((job_id, ref) in found for ref in event.candidate_refs(link.versioned))
            for job_id, link in jobs.items()
        )

    def _find(self, events: list[RestoreCompleted], links: dict[str, dict[str, BucketLink]]) -> dict[tuple[str, str], ObjectRecord]:
        keys = [
            object_key(job_id, ref) for e in events for job_id, link in links[e.bucket].items() for ref in e.candidate_refs(link.versioned)
        ]
        return {(r.job_id, r.ref): r for r in self.store.find_objects(keys)} if keys else {}

    def _restored(self, record: ObjectRecord) -> bool:
        """An event matched this object only through a decoded spelling: believe it if S3 agrees."""
        if self.s3 is None:
            return False
        return self.s3.restore_status(ObjectId(record.bucket, record.key, record.version_id)) == "restored"
