"""The REST API's answers as pydantic models: what each route returns, and the error shape.

The use cases build the answers as dicts (``usecases.jobs.status_document``, ``list_objects``,
the create-job answer in ``handlers.api``); the handlers pass each through its model here
(``conform``) before it is sent, so an answer can never drift from the API document that
``bulk_restore.openapi`` generates from these models (``openapi.json``). The models are strict
and forbid unknown keys: a field added to an answer is added here too, with its description,
and the document regenerated (``make openapi``).
"""

from __future__ import annotations

from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

JobStatusName = Literal["Planning", "Restoring", "Complete", "Failed", "Cancelled", "Timeout"]
ObjectStateName = Literal["RESTORING", "RESTORED", "SKIPPED", "FAILED", "CANCELLED"]
EngineName = Literal["direct", "batch", "vault"]
SourceName = Literal["manifest", "s3-inventory", "prefix", "vault"]


class ApiModel(BaseModel):
    """An answer of the API: strict types, no key the model does not name."""

    model_config = ConfigDict(strict=True, extra="forbid")


# ---- errors --------------------------------------------------------------------------------------


class ErrorDetail(ApiModel):
    code: str = Field(description="What went wrong, for programs: InvalidRequest, JobNotFound, MissingOrInvalidApiKey, ...")
    message: str = Field(description="One line saying what went wrong and what to do about it")
    details: dict[str, Any] | list[Any] = Field(
        description="More about it: the fields at fault, the job's status, API Gateway's requestId and responseType, ..."
    )


class ErrorAnswer(ApiModel):
    """Every error, the service's and API Gateway's own."""

    error: ErrorDetail


# ---- POST /create-job ----------------------------------------------------------------------------


class BatchOperationRef(ApiModel):
    Engine: EngineName
    JobId: str = Field(description="The S3 Batch Operations job id with the batch engine, the job's own id otherwise")


class CreateJobAnswer(ApiModel):
    """POST /create-job: the job made (or found again by its idempotency key). Its first fields are
    those of the S3 Glacier Bulk Retrieval sample's answer."""

    SNSTopic: str = Field(description="The SNS topic of the job's events")
    SQSQueue: str | None = Field(description="The ARN of the queue subscribed to the topic (null: none)")
    ReportBucket: str | None = Field(description="The bucket of completion reports (null: none)")
    BulkJobId: str = Field(description="The job id (a UUID)")
    TotalFilesRequested: int | None = Field(description="Objects the manifest lists (null: too large to count at once)")
    JobId: str = Field(description="The job id, as BulkJobId")
    Status: JobStatusName
    StatusUrl: str = Field(description="GET this for the job's status")
    Created: bool = Field(description="false: an earlier request with the same idempotency key made this job")
    BatchJobId: str
    Engine: EngineName
    Source: SourceName
    BatchOperation: BatchOperationRef
    Warnings: list[str] = Field(description="Fields of the request that were ignored, and why")


# ---- GET /jobs/{job_id}, POST /jobs/{job_id}/cancel ----------------------------------------------


class BatchRun(ApiModel):
    Group: Literal["archive", "intelligent-tiering"]
    JobId: str | None = Field(description="The S3 Batch Operations job id (null until it is created)")
    Status: str = Field(
        description="S3's status of the Batch job (New, Preparing, Active, ..., Complete, Failed, Cancelled), "
        "or NotCreated while the manifest is planned"
    )
    FailureReason: str | None
    ReportRead: bool


class ManifestRef(ApiModel):
    Bucket: str
    Key: str
    ETag: str
    Size: int


class StateCounts(ApiModel):
    Total: int
    Restoring: int
    Restored: int
    Skipped: int
    Failed: int
    Cancelled: int


class PlanningProgress(ApiModel):
    Complete: bool
    LinesRead: int
    BytesRead: int
    ChunksPlanned: int
    ChunksAccounted: int


class VaultRef(ApiModel):
    Name: str | None
    ARN: str | None


class VaultTargetRef(ApiModel):
    Bucket: str | None
    Prefix: str
    StorageClass: str | None


class JobStatusDocument(ApiModel):
    """A job's status (GET /jobs/{job_id}; also the answer to a cancel)."""

    JobId: str
    BulkJobId: str
    BatchJobId: str
    BatchOperations: list[BatchRun]
    Source: SourceName
    Status: JobStatusName
    Tier: Literal["STANDARD", "BULK", "EXPEDITED"]
    ExpirationDays: int
    ClientTag: str
    Engine: EngineName
    Manifest: ManifestRef
    ProgressPercent: int
    ProgressStepPercent: int
    Counts: StateCounts
    RequestedCount: int = Field(description="Objects S3 was asked about")
    PendingCount: int = Field(description="Objects still restoring")
    FailedBatchFiles: int
    Planning: PlanningProgress
    FailureReason: str
    ExpeditedFallback: bool
    KeepRestoredDays: int
    CreatedAt: str
    UpdatedAt: str
    FinishedAt: str | None
    Notes: list[str] = Field(description="What the job did with its manifest that is worth knowing")
    SNSTopic: str
    # a vault job's only
    Vault: VaultRef | None = Field(default=None, description="Vault jobs only: the vault")
    Target: VaultTargetRef | None = Field(default=None, description="Vault jobs only: where its archives go")
    BytesMoved: int | None = Field(default=None, description="Vault jobs only: bytes stored in S3 so far")


# ---- GET /jobs/{job_id}/objects ------------------------------------------------------------------


class ObjectEntry(ApiModel):
    Bucket: str
    Key: str
    VersionId: str | None
    State: ObjectStateName
    Reason: str | None = Field(description="Why the object is FAILED, SKIPPED or CANCELLED")
    ManifestLine: int
    UpdatedAt: str


class ObjectsPage(ApiModel):
    JobId: str
    Objects: list[ObjectEntry]
    NextToken: str | None = Field(description="Pass back as next_token for the next page; null: no more")


# ---- GET /jobs ----------------------------------------------------------------------------------


class JobSummary(ApiModel):
    """One job of GET /jobs: what tells jobs apart (GET /jobs/{job_id} has the rest, counts included)."""

    JobId: str
    Status: JobStatusName
    Tier: Literal["STANDARD", "BULK", "EXPEDITED"]
    ClientTag: str
    Source: SourceName
    Engine: EngineName
    TotalFilesRequested: int | None = Field(description="Objects the manifest lists (null: not counted at create time)")
    CreatedAt: str
    FinishedAt: str | None
    FailureReason: str


class JobsPage(ApiModel):
    """GET /jobs: the newest jobs first."""

    Jobs: list[JobSummary]
    NextToken: str | None = Field(description="Pass back as next_token for the next page; null: no more")


# ---- checking an answer --------------------------------------------------------------------------


class AnswerNotConforming(RuntimeError):
    """An answer the API was about to send does not match its model: a bug, answered 500."""


Answer = TypeVar("Answer", bound=dict[str, Any])


def conform(model: type[ApiModel], answer: Answer) -> Answer:
    """``answer``, checked against its model (the API document's schema); sent as it is."""
    try:
        model.model_validate(answer)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors(include_url=False, include_input=False)
        )
        raise AnswerNotConforming(f"{model.__name__} answer does not match its model: {problems}") from None
    return answer
