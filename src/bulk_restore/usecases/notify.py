"""Announce a job's progress steps and its one terminal event.

An event is first claimed in the job's outbox by a conditional write, so only one writer ever
claims a given step or the terminal status. The claimer holds the event's publish lease: it
publishes the event, then clears it. If it dies in between, the event stays in the outbox and
whoever evaluates the job once the lease has run out (a retry of the same message, a later
batch of the same job) publishes it. Concurrent evaluators therefore never publish one event
twice; a second copy can only follow a crash after SNS accepted the event and before the
outbox was cleared, and it carries the same EventId.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger

from bulk_restore.adapters.dynamodb import DynamoJobStore, job_schedule, now_iso
from bulk_restore.adapters.sns import EventPublisher
from bulk_restore.domain.model import Counts, JobStatus, RestoreJob
from bulk_restore.domain.progress import build_message, decide
from bulk_restore.usecases.metrics import JOBS_ENDED, NO_METRICS, Metrics

logger = Logger(child=True)

DEFAULT_LEASE_MS = 60_000


class Notifier:
    def __init__(self, store: DynamoJobStore, publisher: EventPublisher, lease_ms: int = DEFAULT_LEASE_MS, metrics: Metrics = NO_METRICS):
        self.store = store
        self.publisher = publisher
        self.lease_ms = lease_ms
        self.metrics = metrics

    def evaluate(self, job_id: str) -> tuple[RestoreJob, Counts] | None:
        """Look at the job's counters; announce what they newly show; publish what is pending.
        Returns the job and counts it decided on (None: no such job)."""
        loaded = self.store.get_job_and_counts(job_id)
        if loaded is None:
            return None
        job, counts = loaded
        decision = decide(job, counts)
        if decision.issued:
            self.store.mark_issued(job_id, job.planning.buckets)
            job.issued = True
        claimed = None
        if decision.terminal is not None:
            claimed = self._claim(job, counts, decision.terminal, "terminal", terminal=decision.terminal, ended=decision.ended)
        elif decision.step is not None:
            claimed = self._claim(job, counts, JobStatus.RESTORING, f"step-{decision.step}", step=decision.step)
        self._flush(job, claimed)
        if decision.terminal is not None:
            job.status = decision.terminal  # claimed now, or by whoever claimed it first
        return job, counts

    def end(self, job_id: str, status: JobStatus, reason: str) -> bool:
        """End an active job as Failed, Cancelled or Timeout. False if it had already ended.

        The job stops at once (no new restore request); its one terminal event goes out when the
        chunks already on their way have been accounted, so it carries the job's final counts."""
        if not self.store.end_job(job_id, status, reason):
            return False
        # Restore workers see it with their next window of requests (usecases/pacing.py); had this
        # write been lost, with their next delivery, or after a wait of a second.
        self.store.stop_schedule(job_schedule(job_id))
        self.evaluate(job_id)
        return True

    def announce_now(self, job_id: str) -> bool:
        """Announce an ended job whose last chunks never came (lost to a dead-letter queue), with
        the counts it has: a job may wait for its chunks, but not for ever."""
        loaded = self.store.get_job_and_counts(job_id)
        if loaded is None or not loaded[0].end_pending:
            return False
        job, counts = loaded
        claimed = self._claim(job, counts, job.status, "terminal", terminal=job.status, ended=True)
        self._flush(job, claimed)
        return claimed is not None

    def fail(self, job_id: str, reason: str) -> None:
        """End a job as Failed (its manifest became unreadable, for one)."""
        self.end(job_id, JobStatus.FAILED, reason)

    def _claim(self, job: RestoreJob, counts: Counts, status: JobStatus, kind: str, **how: Any) -> str | None:
        message = build_message(job, counts, status, kind, now_iso())
        if not self.store.claim_event(job.job_id, message["EventId"], message, lease_ms=self.lease_ms, **how):
            return None
        job.outbox[message["EventId"]] = {"message": message, "lease": 0}
        if status.is_terminal:
            job.status = status
        claimed: str = message["EventId"]
        return claimed

    def _finish(self, job: RestoreJob, status: str) -> None:
        """Take an ended job off the lists of running jobs."""
        complete = status == JobStatus.COMPLETE.value
        if complete:
            # Nothing is restoring any more. A job that ended otherwise keeps its bucket links
            # (until their TTL): restores S3 already accepted still complete and are accounted.
            self.store.unregister_buckets(job.job_id, job.planning.buckets)
        if complete and job.keep_restored_days:
            self.store.keep_active(job.job_id)  # stays on the sweeper's list, to renew its copies
        else:
            self.store.deactivate(job.job_id)

    def _flush(self, job: RestoreJob, claimed: str | None) -> None:
        def order(item: tuple[str, dict[str, Any]]) -> tuple[bool, int]:
            message = item[1]["message"]
            return message.get("EventType") == "JobFinished", int(message.get("ProgressPercent", 0))

        for eid, entry in sorted(job.outbox.items(), key=order):
            if eid != claimed and not self.store.take_event_lease(job.job_id, eid, self.lease_ms):
                continue  # another worker is publishing it right now
            message = entry["message"]
            self.publisher.publish(message)
            logger.info(
                "job event published", extra={"job_id": job.job_id, "status": message["Status"], "percent": message["ProgressPercent"]}
            )
            if message.get("EventType") == "JobFinished":
                # Counted where the one terminal event goes out: a job's evaluations may repeat, its end does not.
                self.metrics.add(JOBS_ENDED, 1, State=message["Status"])
                self._finish(job, message["Status"])
            self.store.clear_event(job.job_id, eid)
