"""Entities and value objects of a bulk restore."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

_JOB_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def is_job_id(text: str) -> bool:
    """Job ids are UUIDs as create-job made them (lower case): anything else names no job."""
    return _JOB_ID.fullmatch(text) is not None


class Tier(StrEnum):
    """S3 retrieval tier (GlacierJobParameters.Tier)."""

    EXPEDITED = "Expedited"
    STANDARD = "Standard"
    BULK = "Bulk"

    @classmethod
    def parse(cls, value: str) -> Tier:
        """Accept any case: "STANDARD", "standard", "Standard"."""
        for tier in cls:
            if tier.value.lower() == str(value).strip().lower():
                return tier
        raise ValueError(f"unknown tier {value!r}: use one of STANDARD, BULK, EXPEDITED")


class ObjectState(StrEnum):
    """Where one object of a job stands. RESTORING is the only non-final state."""

    RESTORING = "RESTORING"
    RESTORED = "RESTORED"
    SKIPPED = "SKIPPED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"  # never requested: its job was cancelled (or had ended) first

    @property
    def is_final(self) -> bool:
        return self is not ObjectState.RESTORING


class JobStatus(StrEnum):
    """Lifecycle of a job. The last four are terminal; Status strings match the seed contract."""

    PLANNING = "Planning"
    RESTORING = "Restoring"
    COMPLETE = "Complete"
    FAILED = "Failed"
    CANCELLED = "Cancelled"
    TIMEOUT = "Timeout"

    @property
    def is_terminal(self) -> bool:
        return self in (JobStatus.COMPLETE, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.TIMEOUT)


ARCHIVE_STORAGE_CLASSES = frozenset({"GLACIER", "DEEP_ARCHIVE", "INTELLIGENT_TIERING"})


def object_ref(bucket: str, key: str, version_id: str | None) -> str:
    """A fixed-size identity for (bucket, key, version): keys may be 1,024 bytes, sort keys may not."""
    raw = "\x00".join((bucket, key, version_id or "")).encode("utf-8", "surrogatepass")
    return hashlib.blake2b(raw, digest_size=16).hexdigest()


def vault_link(vault: str) -> str:
    """What a vault job registers instead of a bucket: the notices of that vault's jobs find it."""
    return f"vault:{vault}"


def archive_ref(vault: str, archive_id: str) -> str:
    """An archive's identity in a job: its vault and archive id (its S3 key may change with its name)."""
    return object_ref(vault_link(vault), archive_id, None)


@dataclass(frozen=True, slots=True)
class ObjectId:
    """One archived object named by a manifest row."""

    bucket: str
    key: str
    version_id: str | None = None

    @property
    def ref(self) -> str:
        return object_ref(self.bucket, self.key, self.version_id)


@dataclass(frozen=True, slots=True)
class ManifestEntry:
    """A valid manifest row."""

    line: int
    object: ObjectId


@dataclass(frozen=True, slots=True)
class ManifestError:
    """A manifest row that cannot be restored, with the reason. It becomes a FAILED object of the job."""

    line: int
    message: str
    raw: str = ""

    @property
    def ref(self) -> str:
        return object_ref("", f"manifest-line:{self.line}", None)


@dataclass(frozen=True, slots=True)
class ObjectOutcome:
    """What one object came to: its state and, when not restoring or restored, why."""

    state: ObjectState
    reason: str = ""


@dataclass(frozen=True, slots=True)
class ManifestLocation:
    bucket: str
    key: str
    etag: str = ""
    size: int = 0


@dataclass(slots=True)
class Counts:
    """Per-job counters, derived from the table's stream: equal to the states of the job's object items once it is read."""

    total: int = 0
    restoring: int = 0
    restored: int = 0
    skipped: int = 0
    failed: int = 0
    cancelled: int = 0
    chunks_done: int = 0
    bytes: int = 0  # bytes moved into S3 (vault jobs: each archive's size once it is stored)

    @property
    def finished(self) -> int:
        return self.restored + self.skipped + self.failed + self.cancelled

    @property
    def requested(self) -> int:
        """Objects S3 was asked to restore (or answered for): all but the never-requested ones."""
        return self.total - self.cancelled

    def add(self, other: Counts) -> Counts:
        return Counts(
            total=self.total + other.total,
            restoring=self.restoring + other.restoring,
            restored=self.restored + other.restored,
            skipped=self.skipped + other.skipped,
            failed=self.failed + other.failed,
            cancelled=self.cancelled + other.cancelled,
            chunks_done=self.chunks_done + other.chunks_done,
            bytes=self.bytes + other.bytes,
        )

    def count_state(self, state: ObjectState, n: int = 1) -> None:
        setattr(self, state.value.lower(), getattr(self, state.value.lower()) + n)

    def as_dict(self) -> dict[str, int]:
        return {
            "total": self.total,
            "restoring": self.restoring,
            "restored": self.restored,
            "skipped": self.skipped,
            "failed": self.failed,
            "cancelled": self.cancelled,
            "chunks_done": self.chunks_done,
            "bytes": self.bytes,
        }

    def document(self) -> dict[str, int]:
        """The counts as the API and the events show them."""
        return {
            "Total": self.total,
            "Restoring": self.restoring,
            "Restored": self.restored,
            "Skipped": self.skipped,
            "Failed": self.failed,
            "Cancelled": self.cancelled,
        }

    @classmethod
    def sum(cls, parts: list[Counts]) -> Counts:
        result = cls()
        for part in parts:
            result = result.add(part)
        return result


@dataclass(slots=True)
class PlanningState:
    """The planner's checkpoint: where in the manifest the next step starts."""

    byte_offset: int = 0
    lines_read: int = 0
    chunks_emitted: int = 0
    step: int = 0
    done: bool = False
    buckets: list[str] = field(default_factory=list)
    versioned_line: int = 0  # the first valid row's line, with a version id (> 0) or without (< 0)
    stopped: bool = False  # the job ended before its manifest was fully planned: no more chunks come
    cursor: dict[str, Any] = field(default_factory=dict)  # an inventory's or a prefix's place: where the next row is

    @property
    def over(self) -> bool:
        """No more chunks will be planned: the manifest is fully planned, or planning stopped."""
        return self.done or self.stopped


@dataclass(slots=True)
class RestoreJob:
    """A bulk restore job: one manifest, one tier, one signal when the whole set is ready."""

    job_id: str
    tier: Tier
    expiration_days: int
    manifest: ManifestLocation
    client_tag: str = ""
    progress_step_percent: int = 10
    status: JobStatus = JobStatus.PLANNING
    created_at: str = ""
    updated_at: str = ""
    finished_at: str = ""
    failure_reason: str = ""
    last_step_published: int = 0
    planning: PlanningState = field(default_factory=PlanningState)
    engine: str = "direct"
    expedited_fallback: bool = False
    deadline_seconds: float = 0.0  # 0: the default for the tier (domain.timing)
    keep_restored_days: int = 0
    sweep: dict[str, Any] = field(default_factory=dict)  # the sweeper's cursor: {"next_at", "shard", "key"}
    outbox: dict[str, dict[str, Any]] = field(default_factory=dict)  # event id -> {"message": {...}, "lease": epoch ms}
    end_pending: bool = False  # ended (cancel, timeout, failure); its terminal event not yet announced
    issued: bool = False  # every planned chunk is accounted: the job records no new objects
    issued_at: str = ""  # when that was first seen: the tier's window and deadline count from here
    # The create request as normalised (usecases.jobs.CreateJobRequest.normalised): a repeat under the
    # same idempotency key must ask for the same job. Empty for jobs stored before it was kept.
    request: dict[str, Any] = field(default_factory=dict)
    manifest_objects: int | None = None  # objects the manifest lists, when the create-time check read it whole
    notes: list[str] = field(default_factory=list)  # what the job did with the manifest that is worth knowing
    # The batch engine's S3 Batch Operations jobs: group ("archive", "intelligent-tiering") ->
    # {"id", "status", "failure", "report": read?, "manifest": key}; see usecases/batch.py.
    batch_runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    # What the job restores from: {} (a CSV manifest), or {"type": "s3-inventory", "include_versions": bool}.
    source: dict[str, Any] = field(default_factory=dict)

    @property
    def source_type(self) -> str:
        return str(self.source.get("type") or "manifest")

    @property
    def is_vault(self) -> bool:
        """A job moving Glacier vault archives into S3 (``source["type"] == "vault"``)."""
        return self.source_type == "vault"

    @property
    def batch_job_id(self) -> str:
        """The S3 Batch Operations job id the API and events show (the first run's); our id otherwise."""
        for group in sorted(self.batch_runs):
            run_id = self.batch_runs[group].get("id")
            if run_id:
                return str(run_id)
        return self.job_id

    @property
    def batch_ended(self) -> bool:
        """Every Batch run of a batch-engine job has ended (its tasks all ran or never will)."""
        from bulk_restore.domain.batch import TERMINAL_STATUSES

        return bool(self.batch_runs) and all(
            run.get("status") in TERMINAL_STATUSES and run.get("report") for run in self.batch_runs.values()
        )
