"""Announce a job's progress steps and its one terminal event.

An event is first claimed in the job's outbox by a conditional write (so only one writer ever
claims a given step or the terminal status), then published, then cleared. A crash between the
claim and the publish leaves it in the outbox; the next evaluation of the job publishes it.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger

from bulk_restore.adapters.dynamodb import DynamoJobStore, now_iso
from bulk_restore.adapters.sns import EventPublisher
from bulk_restore.domain.model import JobStatus
from bulk_restore.domain.progress import build_message, decide, event_id

logger = Logger(child=True)


class Notifier:
    def __init__(self, store: DynamoJobStore, publisher: EventPublisher):
        self.store = store
        self.publisher = publisher

    def evaluate(self, job_id: str) -> None:
        """Look at the job's counters; announce what they newly show; flush what is pending."""
        loaded = self.store.get_job_and_counts(job_id)
        if loaded is None:
            return
        job, counts = loaded
        decision = decide(job, counts)
        if decision.terminal is not None:
            kind = "terminal"
            message = build_message(job, counts, decision.terminal, kind, now_iso())
            if self.store.claim_event(job_id, message["EventId"], message, terminal=decision.terminal):
                job.outbox[message["EventId"]] = message
                job.status = decision.terminal
        elif decision.step is not None:
            kind = f"step-{decision.step}"
            message = build_message(job, counts, JobStatus.RESTORING, kind, now_iso())
            if self.store.claim_event(job_id, message["EventId"], message, step=decision.step):
                job.outbox[message["EventId"]] = message
        self._flush(job_id, job.outbox, job.planning.buckets, job.status.is_terminal)

    def fail(self, job_id: str, reason: str) -> None:
        """End a job as Failed (its manifest became unreadable, for one)."""
        loaded = self.store.get_job_and_counts(job_id)
        if loaded is None:
            return
        job, counts = loaded
        job.failure_reason = reason
        message = build_message(job, counts, JobStatus.FAILED, "terminal", now_iso())
        if self.store.claim_event(job_id, message["EventId"], message, terminal=JobStatus.FAILED, failure_reason=reason):
            job.outbox[message["EventId"]] = message
            job.status = JobStatus.FAILED
        self._flush(job_id, job.outbox, job.planning.buckets, job.status.is_terminal)

    def _flush(self, job_id: str, outbox: dict[str, dict], buckets: list[str], terminal: bool) -> None:
        ordered = sorted(outbox.items(), key=lambda kv: (kv[1].get("EventType") == "JobFinished", int(kv[1].get("ProgressPercent", 0))))
        for eid, message in ordered:
            self.publisher.publish(message)
            logger.info("job event published", extra={"job_id": job_id, "status": message["Status"], "percent": message["ProgressPercent"]})
            if message.get("EventType") == "JobFinished":
                self.store.unregister_buckets(job_id, buckets)
            self.store.clear_event(job_id, eid)


__all__ = ["Notifier", "event_id"]
