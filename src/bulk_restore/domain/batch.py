"""S3 Batch Operations, as the batch engine uses it: pure rules, no AWS calls.

- The manifest a Batch job reads is ours: the planner's cleaned rows in the
  ``S3BatchOperations_CSV_20180820`` format (``bucket,key[,versionId]``, keys URL-encoded; every
  row has a version or none does), written in parts per planning step and joined into one object.
- ``ClientRequestToken`` is derived from our job and the Batch run's group, so a retried create
  never makes a second Batch job.
- A Batch job's completion report (``Report_CSV_20180820``): ``manifest.json`` under
  ``<prefix>/job-<id>/`` lists the result CSVs and their ``ReportSchema``. Columns are read by that
  schema; AWS's own sample rows put the HTTP status before the error code, against the schema's
  order, so a row whose two columns are the other way round is read the other way round.
- A task counts as done when S3 accepted the restore request (Batch Operations never says when the
  object is restored: the restore-completed events do). A task that failed makes its object FAILED
  with S3's error code and message, except ``RestoreAlreadyInProgress`` (the object is restoring:
  its completion event comes as for any other).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from urllib.parse import quote, unquote_plus

from bulk_restore.domain.model import ObjectId, ObjectOutcome, ObjectState, Tier
from bulk_restore.domain.outcomes import RetryLater, classify

MANIFEST_FORMAT = "S3BatchOperations_CSV_20180820"
REPORT_FORMAT = "Report_CSV_20180820"
OPERATION = "S3InitiateRestoreObject"
DEFAULT_REPORT_SCHEMA = ("Bucket", "Key", "VersionId", "TaskStatus", "ErrorCode", "HTTPStatusCode", "ResultMessage")
MIN_PART_BYTES = 5 * 1024 * 1024  # S3 multipart: every part but the last
MAX_PARTS = 10_000

# Batch job statuses (s3control JobStatus)
TERMINAL_STATUSES = frozenset({"Complete", "Failed", "Cancelled"})
STATUSES = frozenset(
    {
        "Active",
        "Cancelled",
        "Cancelling",
        "Complete",
        "Completing",
        "Failed",
        "Failing",
        "New",
        "Paused",
        "Pausing",
        "Preparing",
        "Ready",
        "Suspended",
    }
)

# The runs of one job: Intelligent-Tiering archive objects may not share a Batch job with
# GLACIER / DEEP_ARCHIVE ones and take no ExpirationInDays.
ARCHIVE_GROUP = "archive"
IT_GROUP = "intelligent-tiering"


class BatchEngineRefused(ValueError):
    """The batch engine cannot run this job as asked (the message says what to do instead)."""


def batch_tier(tier: Tier) -> str:
    """``GlacierJobTier``: BULK or STANDARD. Batch Operations offers no Expedited."""
    if tier is Tier.EXPEDITED:
        raise BatchEngineRefused(
            'S3 Batch Operations restores with the STANDARD or BULK tier only: use engine "direct" for EXPEDITED, '
            "or choose tier STANDARD or BULK"
        )
    return tier.value.upper()


def client_request_token(job_id: str, group: str) -> str:
    """The same for every create of one job's run (at most 64 characters, as CreateJob allows)."""
    return hashlib.sha256(f"bulk-restore:{job_id}:{group}".encode()).hexdigest()[:64]


def manifest_row(obj: ObjectId, versioned: bool) -> str:
    """One manifest line (with its newline), key URL-encoded as Batch Operations reads it."""
    fields = [obj.bucket, quote(obj.key, safe="/")]
    if versioned:
        fields.append(obj.version_id or "")
    return ",".join(fields) + "\n"


def manifest_fields(versioned: bool) -> list[str]:
    return ["Bucket", "Key", "VersionId"] if versioned else ["Bucket", "Key"]


def group_parts(sizes: list[int], min_part: int = MIN_PART_BYTES) -> list[list[int]]:
    """Join whole fragments (their sizes in order) into multipart parts: each part at least
    ``min_part`` bytes, except the last. Empty fragments are left out. Returns fragment indexes."""
    parts: list[list[int]] = []
    current: list[int] = []
    size = 0
    for index, fragment_size in enumerate(sizes):
        if fragment_size <= 0:
            continue
        current.append(index)
        size += fragment_size
        if size >= min_part:
            parts.append(current)
            current, size = [], 0
    if current:
        parts.append(current)  # the last part may be smaller
    if len(parts) > MAX_PARTS:
        raise ValueError(f"the manifest would need {len(parts)} parts, over S3's {MAX_PARTS}")
    return parts


@dataclass(frozen=True, slots=True)
class ReportManifest:
    """A completion report's manifest.json."""

    schema: tuple[str, ...]
    results: tuple[tuple[str, str, str], ...]  # (bucket, key, TaskExecutionStatus) per result file


def parse_report_manifest(data: bytes) -> ReportManifest:
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise ValueError(f"the completion report's manifest.json is not JSON: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("Format") != REPORT_FORMAT:
        raise ValueError(f"the completion report's manifest.json is not in the {REPORT_FORMAT} format")
    schema_text = doc.get("ReportSchema") or ", ".join(DEFAULT_REPORT_SCHEMA)
    schema = tuple(name.strip() for name in str(schema_text).split(",") if name.strip())
    results = []
    for entry in doc.get("Results") or []:
        if not isinstance(entry, dict) or not entry.get("Key"):
            raise ValueError("a Results entry of the completion report's manifest.json names no Key")
        results.append((str(entry.get("Bucket", "")), str(entry["Key"]), str(entry.get("TaskExecutionStatus", ""))))
    return ReportManifest(schema, tuple(results))


@dataclass(frozen=True, slots=True)
class TaskResult:
    """One row of a completion report."""

    object: ObjectId
    succeeded: bool
    error_code: str
    http_status: int | None
    message: str

    def outcome(self) -> ObjectOutcome | None:
        """What the task says of its object: None when it is restoring, as a succeeded task or one
        that found a restore running says (a copy that was already restored is found by the
        sweeper's HeadObject check: the report does not tell it apart); otherwise what the direct
        engine makes of the same S3 answer (a non-archived object SKIPPED, a missing one FAILED)."""
        if self.succeeded:
            return None
        try:
            outcome = classify(self.http_status or 0, self.error_code, self.message)
        except RetryLater:  # S3 Batch Operations retried it already: final
            outcome = ObjectOutcome(ObjectState.FAILED, f"{self.error_code or self.http_status}: S3 was busy")
        if outcome.state in (ObjectState.RESTORING, ObjectState.RESTORED):
            return None
        if outcome.state is ObjectState.FAILED and not self.http_status and not self.error_code:
            outcome = ObjectOutcome(ObjectState.FAILED, f"TaskFailed: {self.message or 'no reason given'}")
        return ObjectOutcome(outcome.state, f"{outcome.reason} (S3 Batch Operations task)")


def _int(text: str) -> int | None:
    text = text.strip()
    return int(text) if text.isdigit() and len(text) == 3 else None


def iter_report_rows(schema: Iterable[str], lines: Iterable[str]) -> Iterator[TaskResult]:
    """The rows of one result CSV, read by the report's schema (URL-encoded keys decoded)."""
    names = [name.strip() for name in schema]
    position = {name: i for i, name in enumerate(names)}

    def field(row: list[str], name: str) -> str:
        i = position.get(name)
        return row[i] if i is not None and i < len(row) else ""

    for row in csv.reader(lines):
        if not row or row == names:
            continue
        error, status = field(row, "ErrorCode"), field(row, "HTTPStatusCode")
        if _int(error) is not None and _int(status) is None:
            error, status = status, error  # AWS's sample order: the status first
        version = field(row, "VersionId") or None
        task = field(row, "TaskStatus").strip().lower()
        yield TaskResult(
            object=ObjectId(field(row, "Bucket"), unquote_plus(field(row, "Key")), version),
            succeeded=task == "succeeded",
            error_code=error.strip(),
            http_status=_int(status),
            message=field(row, "ResultMessage"),
        )


def text_lines(blocks: Iterable[bytes]) -> Iterator[str]:
    """Decode a stream of byte blocks into text lines (a quoted field may hold a newline: csv joins them)."""
    reader = io.TextIOWrapper(io.BufferedReader(_BlockReader(blocks)), encoding="utf-8", newline="")
    yield from reader


class _BlockReader(io.RawIOBase):
    def __init__(self, blocks: Iterable[bytes]):
        self._blocks = iter(blocks)
        self._rest = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._rest:
            try:
                self._rest = next(self._blocks)
            except StopIteration:
                return 0
        n = min(len(buffer), len(self._rest))
        buffer[:n] = self._rest[:n]
        self._rest = self._rest[n:]
        return n


def failure_summary(failure_reasons: Iterable[dict[str, str]] | Iterable[str]) -> str:
    """A Batch job's failure codes and reasons, one line."""
    parts = []
    for reason in failure_reasons:
        if isinstance(reason, dict):
            code, text = reason.get("FailureCode", ""), reason.get("FailureReason", "")
            parts.append(f"{code}: {text}" if code and text else code or text)
        else:
            parts.append(str(reason))
    return "; ".join(p for p in parts if p) or "no failure reason given"
