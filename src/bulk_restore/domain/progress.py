"""When a job has crossed a progress step or ended, and what its event says.

A job ends when its manifest is fully planned, every planned chunk has been accounted, and no
object is still RESTORING. Objects that failed do not hold it back: it completes with
FailedBatchFiles > 0.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from bulk_restore.domain.model import Counts, JobStatus, RestoreJob
from bulk_restore.domain.timing import event_epoch

EVENT_NAMESPACE = uuid.UUID("6b0b7e1e-6a53-4c1a-9d0e-2f6c1c9d6a11")


def progress_percent(counts: Counts, planned: bool) -> int:
    """Whole percent of the job's objects that are finished (restored, skipped or failed).

    Until the manifest is fully planned the total is not known, so progress stays below 100.
    """
    if counts.total == 0:
        return 0
    percent = (counts.finished * 100) // counts.total
    if not planned or counts.restoring:
        percent = min(percent, 99)
    return percent


def reported_percent(status: JobStatus, counts: Counts, planned: bool) -> int:
    """The percent a job shows: 100 once Complete, else its finished share."""
    return 100 if status is JobStatus.COMPLETE else progress_percent(counts, planned)


def all_accounted(job: RestoreJob, counts: Counts) -> bool:
    """No chunk is still to come or to be accounted: the job will record no new object."""
    return job.planning.over and counts.chunks_done >= job.planning.chunks_emitted


def is_finished(job: RestoreJob, counts: Counts) -> bool:
    """Planned, accounted, nothing restoring; with the batch engine also its Batch jobs ended and
    their reports read (a report can still fail objects, or send some to a second Batch job)."""
    batch_done = job.engine != "batch" or job.batch_ended
    return job.planning.done and all_accounted(job, counts) and counts.restoring == 0 and batch_done


@dataclass(frozen=True, slots=True)
class Decision:
    """What to announce now: the highest step newly crossed (or None) and the terminal status (or
    None); ``ended``: the terminal status was set earlier (cancel, timeout, failure) and is only
    announced now; ``issued``: the job has just been seen to record no new object."""

    step: int | None = None
    terminal: JobStatus | None = None
    ended: bool = False
    issued: bool = False


def decide(job: RestoreJob, counts: Counts) -> Decision:
    """Compare the job's counters with what it has already announced."""
    issued = not job.issued and all_accounted(job, counts)
    if job.status.is_terminal:
        # An ended job is announced once its last chunks are accounted: with its final counts.
        if job.end_pending and all_accounted(job, counts):
            return Decision(terminal=job.status, ended=True, issued=issued)
        return Decision(issued=issued)
    if is_finished(job, counts):
        return Decision(terminal=JobStatus.COMPLETE, issued=issued)
    if not job.planning.done:
        return Decision(issued=issued)
    step_size = max(1, job.progress_step_percent)
    percent = progress_percent(counts, planned=True)
    step = (percent // step_size) * step_size
    if step > job.last_step_published and step < 100:
        return Decision(step=step, issued=issued)
    return Decision(issued=issued)


def event_id(job_id: str, kind: str) -> str:
    """A stable id per logical event, so consumers can drop a redelivered copy."""
    return str(uuid.uuid5(EVENT_NAMESPACE, f"{job_id}:{kind}"))


def build_message(
    job: RestoreJob, counts: Counts, status: JobStatus, kind: str, at: str, batch_job_id: str | None = None
) -> dict[str, Any]:
    """The event body. The first five fields are the seed contract's, with the seed's string types."""
    planned = job.planning.done
    percent = reported_percent(status, counts, planned)
    return {
        "JobId": job.job_id,
        "BatchJobId": batch_job_id or job.batch_job_id,
        "Status": status.value,
        "ProgressPercent": str(percent),
        "FailedBatchFiles": str(counts.failed),
        "EventId": event_id(job.job_id, kind),
        "EventType": "JobFinished" if status.is_terminal else "JobProgress",
        "ProgressStepPercent": job.progress_step_percent,
        "Tier": job.tier.value.upper(),
        "ClientTag": job.client_tag,
        "Engine": job.engine,
        "Counts": counts.document(),
        "PendingCount": counts.restoring,
        "PlanningComplete": planned,
        "FailureReason": job.failure_reason,
        "Time": at,
    } | (_bytes_moved(job, counts, at) if job.is_vault else {})


def _bytes_moved(job: RestoreJob, counts: Counts, at: str) -> dict[str, Any]:
    """A vault job's events: bytes moved into S3 so far, and their rate since the job was created."""
    elapsed = (event_epoch(at) or 0.0) - (event_epoch(job.created_at) or 0.0)
    return {"BytesMoved": counts.bytes, "BytesPerSecond": round(counts.bytes / elapsed) if elapsed > 0 else 0}
