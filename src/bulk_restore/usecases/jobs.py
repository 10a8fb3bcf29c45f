"""Create a job; read a job's status and its objects."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from bulk_restore.adapters.dynamodb import DynamoJobStore, now_iso
from bulk_restore.adapters.s3 import S3Gateway
from bulk_restore.adapters.sqs import QueueGateway
from bulk_restore.domain.errors import BucketNotAllowed, InvalidRequest, JobAlreadyFinished, JobNotFound, ManifestUnreadable
from bulk_restore.domain.manifest import first_entry, sniff
from bulk_restore.domain.model import Counts, JobStatus, ObjectState, RestoreJob, Tier
from bulk_restore.domain.progress import reported_percent
from bulk_restore.usecases.notify import Notifier


class CreateJobRequest(BaseModel):
    """The body of POST /create-job: the seed contract's fields, plus optional ones of ours."""

    model_config = ConfigDict(extra="forbid")  # no stripping: "manifest.csv " is a valid S3 key

    bucket: Annotated[str, Field(min_length=3, max_length=63, pattern=r"^[a-z0-9][a-z0-9.\-]*[a-z0-9]$")]
    key: Annotated[str, Field(min_length=1, max_length=1024)]
    tier: Tier = Tier.STANDARD
    expiration_days: Annotated[int, Field(ge=1, le=3650, strict=True)] = 1
    client_tag: Annotated[str, Field(max_length=256, pattern=r"^[\w .:/=+\-@]*$")] = ""
    client_token: Annotated[str | None, Field(pattern=r"^[\x21-\x7e]{1,128}$")] = None  # as the Idempotency-Key header
    progress_step_percent: Annotated[int | None, Field(ge=1, le=50, strict=True)] = None
    expedited_fallback: Annotated[bool, Field(strict=True)] = False
    deadline_hours: Annotated[float | None, Field(gt=0, le=24 * 30, strict=True)] = None
    keep_restored_days: Annotated[int, Field(ge=0, le=365, strict=True)] = 0

    @field_validator("tier", mode="before")
    @classmethod
    def _tier(cls, value: Any) -> Tier:
        if not isinstance(value, str):
            raise ValueError("tier must be a string: STANDARD, BULK or EXPEDITED")
        return Tier.parse(value)


class JobService:
    def __init__(self, store: DynamoJobStore, s3: S3Gateway, queues: QueueGateway, topic_arn: str, default_step: int,
                 notifier: Notifier | None = None):
        self.store = store
        self.s3 = s3
        self.queues = queues
        self.topic_arn = topic_arn
        self.default_step = default_step
        self.notifier = notifier

    def create(self, request: CreateJobRequest, idempotency_key: str | None) -> tuple[RestoreJob, bool]:
        """Check the manifest's start, store the job, and queue its planning. Quick whatever the manifest's size."""
        self.s3.check_manifest_location(request.bucket)  # a manifest anywhere else is never read (403)
        token = idempotency_key or request.client_token
        if token:
            existing = self.store.job_for_idempotency_key(token)
            if existing is not None:
                self._ensure_planning(existing)
                return existing, False
        location, sample = self.s3.inspect_manifest(request.bucket, request.key)
        problem = sniff(sample, complete=len(sample) >= location.size)
        if problem is not None:
            details = {"bucket": request.bucket, "key": request.key}
            if problem.line:
                details["line"] = problem.line
            raise ManifestUnreadable(f"manifest s3://{request.bucket}/{request.key} is not usable: {problem.message}", details)
        first = first_entry(sample)
        if first is not None and not self.s3.may_touch(first.object.bucket):
            raise BucketNotAllowed(
                f"this stack may not restore objects of bucket {first.object.bucket!r} (manifest line {first.line}): "
                "add it to the stack's AllowedBuckets parameter",
                {"bucket": first.object.bucket, "line": first.line, "allowed": sorted(self.s3.allowed_buckets or ())},
            )
        stamp = now_iso()
        job = RestoreJob(
            job_id=str(uuid.uuid4()),
            tier=request.tier,
            expiration_days=request.expiration_days,
            manifest=location,
            client_tag=request.client_tag,
            progress_step_percent=request.progress_step_percent or self.default_step,
            created_at=stamp,
            updated_at=stamp,
            expedited_fallback=request.expedited_fallback,
            deadline_seconds=(request.deadline_hours or 0) * 3600,
            keep_restored_days=request.keep_restored_days,
        )
        job, created = self.store.create_job(job, token)
        self._ensure_planning(job)
        return job, created

    def _ensure_planning(self, job: RestoreJob) -> None:
        # Sent on every create, also a repeated one: a create that died after storing its job
        # still gets planned. The FIFO queue drops the copy of a step already asked for.
        if not job.status.is_terminal and job.planning.step == 0:
            self.queues.send_plan_step(job.job_id, 0)

    def cancel(self, job_id: str) -> tuple[RestoreJob, Counts]:
        """Stop a job: no new restore requests; one Cancelled event, with the job's final counts once
        the chunks already on their way are accounted. Restores already requested go on.
        A job that has ended, whichever way (a cancelled one too), is a 409."""
        job, _ = self.status(job_id)
        if job.status.is_terminal or self.notifier is None or not self.notifier.end(job_id, JobStatus.CANCELLED, "cancelled on request"):
            job, _ = self.status(job_id)
            raise JobAlreadyFinished(
                f"job {job_id} has already ended ({job.status.value}): nothing to cancel",
                {"job_id": job_id, "status": job.status.value},
            )
        return self.status(job_id)

    def status(self, job_id: str) -> tuple[RestoreJob, Counts]:
        loaded = self.store.get_job_and_counts(job_id)
        if loaded is None:
            raise JobNotFound(f"no job {job_id}", {"job_id": job_id})
        return loaded

    def list_objects(self, job_id: str, state: str | None, limit: int, token: str | None) -> dict[str, Any]:
        if self.store.get_job(job_id) is None:
            raise JobNotFound(f"no job {job_id}", {"job_id": job_id})
        wanted = None
        if state:
            try:
                wanted = ObjectState(state.upper())
            except ValueError as exc:
                raise InvalidRequest(
                    f"unknown state {state!r}: use one of {', '.join(s.value for s in ObjectState)}", {"state": state}
                ) from exc
        records, next_token = self.store.list_objects(job_id, wanted, limit, token)
        return {
            "JobId": job_id,
            "Objects": [
                {
                    "Bucket": r.bucket,
                    "Key": r.key,
                    "VersionId": r.version_id,
                    "State": r.state.value,
                    "Reason": r.reason,
                    "ManifestLine": r.line,
                    "UpdatedAt": r.updated_at,
                }
                for r in records
            ],
            "NextToken": next_token,
        }


def status_document(job: RestoreJob, counts: Counts, topic_arn: str) -> dict[str, Any]:
    """GET /jobs/{id}: the job as a user wants to see it."""
    return {
        "JobId": job.job_id,
        "BulkJobId": job.job_id,
        "Status": job.status.value,
        "Tier": job.tier.value.upper(),
        "ExpirationDays": job.expiration_days,
        "ClientTag": job.client_tag,
        "Engine": job.engine,
        "Manifest": {"Bucket": job.manifest.bucket, "Key": job.manifest.key, "ETag": job.manifest.etag, "Size": job.manifest.size},
        "ProgressPercent": reported_percent(job.status, counts, job.planning.done),
        "ProgressStepPercent": job.progress_step_percent,
        "Counts": counts.document(),
        "RequestedCount": counts.requested,
        "PendingCount": counts.restoring,
        "FailedBatchFiles": counts.failed,
        "Planning": {
            "Complete": job.planning.done,
            "LinesRead": job.planning.lines_read,
            "BytesRead": job.planning.byte_offset,
            "ChunksPlanned": job.planning.chunks_emitted,
            "ChunksAccounted": counts.chunks_done,
        },
        "FailureReason": job.failure_reason,
        "ExpeditedFallback": job.expedited_fallback,
        "KeepRestoredDays": job.keep_restored_days,
        "CreatedAt": job.created_at,
        "UpdatedAt": job.updated_at,
        "FinishedAt": job.finished_at or None,
        "SNSTopic": topic_arn,
    }
