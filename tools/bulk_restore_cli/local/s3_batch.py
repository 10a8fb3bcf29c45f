"""S3 Batch Operations jobs (s3control ``/v20180820/jobs``) for the local stack, as AWS documents them.

moto's s3control has no Batch Operations: CreateJob, DescribeJob, ListJobs, UpdateJobStatus and
UpdateJobPriority answer 404. This module serves them on the local AWS endpoint and runs the jobs
on a clock, each task one RestoreObject through the local S3 restore emulation
(``s3_restore.S3RestoreEmulator.request_restore``), so the restores a job starts complete and emit
their S3 and EventBridge events exactly as direct RestoreObject calls do.

Sources: the S3 API Reference (s3control CreateJob, DescribeJob, ListJobs, UpdateJobStatus,
UpdateJobPriority), botocore's s3control model (requests are read and answers written from its
shapes, so every answer parses in a plain boto3 client), and the S3 User Guide pages
batch-ops-job-status, batch-ops-managing-jobs, batch-ops-create-job, batch-ops-initiate-restore-object,
batch-ops-examples-reports, batch-ops-examples-event-bridge-cloud-trail, storage-inventory-location
and troubleshooting-batch-operations.

What is emulated
----------------
- The API, REST-XML as the model says: CreateJob, DescribeJob, ListJobs (JobStatuses, MaxResults,
  NextToken; newest first), UpdateJobStatus, UpdateJobPriority, and Get/Put/DeleteJobTagging.
  ``x-amz-account-id`` is required. Jobs belong to an account and a Region (the request's SigV4
  scope): asked from another one, a job does not exist. Errors come in S3 Control's shape
  (``<ErrorResponse><Error><Code>..``): InvalidRequest 400 for bad input (every constraint of the
  model: required members, lengths, ranges, enums, patterns), MalformedXML 400, NoSuchJob 404
  ("The specified job does not exist"), JobStatusException 409 for a transition the job cannot
  make, InvalidNextTokenException 400, NotImplemented 501 for what is left out (below).
- Operations: ``S3InitiateRestoreObject`` (``ExpirationInDays``, ``GlacierJobTier`` BULK | STANDARD,
  default STANDARD) and ``S3PutObjectTagging`` (``TagSet``). Any other operation is refused with
  NotImplemented 501 naming it.
- Manifests: ``S3BatchOperations_CSV_20180820`` (the columns named by ``Fields``, of Ignore, Bucket,
  Key, VersionId; keys URL-encoded and decoded with ``unquote``, as AWS's own Lambda sample does;
  every row has a version or none does) and ``S3InventoryReport_CSV_20161130`` (the inventory's
  ``manifest.json``; its gzip CSV data files are read from ``destinationBucket`` by ``fileSchema``;
  inventory keys are form-encoded, decoded with ``unquote_plus``). ``Location`` needs ``ObjectArn``
  and ``ETag`` (quotes optional); ``ObjectVersionId`` picks a version. Manifests are read in
  chunks, never whole, and copied once, in a normalised form, to a spooled temporary file.
- ``ConfirmationRequired``: when the member is left out the job waits for confirmation, as the
  user guide's CLI example says ("If you didn't specify the --no-confirmation-required parameter
  ... the job remains in a suspended state"). Send ``ConfirmationRequired=False`` to run at once.
- The lifecycle of batch-ops-job-status: New -> Preparing (the manifest is read, checked and its
  tasks counted) -> Suspended (until UpdateJobStatus Ready) -> Ready -> Active (tasks run at
  ``tasks_per_second``) -> Completing (the report is written) -> Complete; Cancelled through
  Cancelling (the task running finishes, no other one starts); Failed through Failing. One status
  change per job per clock tick, so a test sees every status. Priority orders the jobs a tick
  serves; a higher-priority job takes the tick's task budget first.
- UpdateJobStatus: Ready only from Suspended; Cancelled from New, Preparing, Suspended, Ready and
  Active (answered with Status Cancelling); anything else JobStatusException. Its
  StatusUpdateReason is kept and returned by DescribeJob.
- ClientRequestToken: the same token (per account and Region) returns the same JobId and never
  makes a second job. AWS lists IdempotencyException for CreateJob but does not say when it is
  raised, so a reused token with other parameters also returns the first job (and is logged).
- Task outcomes: a restore task succeeds when RestoreObject answers 202 (started) or 200 (a
  restored copy's expiry moved). It fails with S3's error code and HTTP status otherwise:
  403 InvalidObjectState (not archived), 404 NoSuchKey / NoSuchVersion / NoSuchBucket, 400
  InvalidArgument (Days given for an Intelligent-Tiering archive object, or missing for a Glacier
  one), and 409 RestoreAlreadyInProgress: batch-ops-initiate-restore-object says a task over a
  running restore fails unless its tier is faster and its ExpirationInDays the same. That page's
  rule that one job cannot restore both Glacier/Deep Archive objects and Intelligent-Tiering
  archive objects follows: with ExpirationInDays the Intelligent-Tiering tasks fail, without it the
  Glacier ones do, each with the error S3 returns.
- The task-failure threshold: once a job has run at least 1,000 tasks, a failure rate above 50 %
  fails it (batch-ops-managing-jobs, "Tracking job failure").
- Job failures, in DescribeJob's FailureReasons and the events' failureCodes. AWS publishes the
  failure types (troubleshooting-batch-operations) but not every exact text, so the texts are this
  module's (``FAILURE_*`` below): an unreadable or malformed manifest, or one whose ETag is not the
  one given, fails with InvalidManifestContent; a manifest (or inventory data file) that does not
  exist with the S3 error code of reading it (NoSuchKey, NoSuchBucket, NoSuchVersion); a missing
  report bucket with NoSuchBucket; the threshold with TaskFailureThresholdExceeded.
- The completion report (batch-ops-examples-reports), written when at least one task ran, for a
  Complete, Failed or Cancelled job: ``<Prefix>/job-<id>/manifest.json`` (Format
  Report_CSV_20180820, ReportCreationDate, Results [{TaskExecutionStatus, Bucket, MD5Checksum,
  Key}], ReportSchema "Bucket, Key, VersionId, TaskStatus, ErrorCode, HTTPStatusCode,
  ResultMessage") and the result CSVs ``<Prefix>/job-<id>/results/<40 hex>.csv``, succeeded and
  failed tasks in files of their own (FailedTasksOnly writes only the failed ones), a file rolling
  over at ``report_file_bytes``. Keys are written as the manifest gave them (URL-encoded). A
  succeeded row reads ``bucket,key,version,succeeded,200,,Successful`` and a failed one
  ``bucket,key,version,failed,403,InvalidObjectState,<S3's message>``: the HTTP status before the
  error code, against the schema's order, as the user guide's samples and reports of real restore
  jobs have it. ``report_row_order="schema"`` writes the schema's order instead, for testing a
  reader against both.
- Events (batch-ops-examples-event-bridge-cloud-trail): ``JobCreated`` and one ``JobStatusChanged``
  per status change, CloudTrail-shaped (source aws.s3, detail-type "AWS Service Event via
  CloudTrail", detail.serviceEventDetails {jobId, jobArn, status, jobEventId, failureCodes,
  statusChangeReason}), to the account's default event bus in the job's Region through moto's rule
  matching, as ``s3_restore`` sends its events.
- Cost: DescribeJob and UpdateJob* are O(1) in the job's tasks (counters, never a scan), ListJobs
  O(jobs); manifests and reports are streamed through spooled temporary files; each result file
  is held in memory only while it is uploaded. Requests may arrive on any thread; one lock guards
  job state and a second serialises ticks.

What is left out
----------------
ManifestGenerator (NotImplemented 501); operations other than the two above; ORC and Parquet
inventories (the job fails with InvalidManifestContent); Pausing/Paused (a lower-priority job
stays Active and simply gets no budget while a higher one has work); IAM (RoleArn is checked for
form only: every task runs with full access); SSE-KMS manifests; job expiry after 90 days;
TooManyRequests; the MD5 check of inventory data files.

Installing it
-------------
``S3BatchEmulator(restore_emulator).install()`` hooks into moto twice: moto's server dispatcher
(``DomainDispatcherApplication.__call__``) answers every request whose path starts with
``/v20180820/jobs`` from this module, whatever its Host, and the in-process ``mock_aws`` stubber
does the same for a client going to ``{account}.s3-control.{region}.amazonaws.com``. Install the
S3 restore emulation first. In ``local/stack.py`` (nothing to change in ``local/endpoint.py``)::

    from bulk_restore_cli.local.s3_batch import S3BatchEmulator               # with the imports
    self.batch: S3BatchEmulator | None = None                             # in LocalStack.__init__
    # in start(), right after self.emulator.start_clock(...):
    self.batch = S3BatchEmulator(self.emulator, gate=self.moto.application.gate).install()
    self.batch.start_clock()
    # in stop(), just before `if self.emulator is not None:`
    if self.batch is not None:
        self.batch.uninstall()
        self.batch = None

With ``gate`` the clock thread's calls into moto pass the endpoint's admission gate in batches,
as requests do. Optionally, ``endpoint.operation()`` can name these requests: return
``f"s3control:{method}"`` when ``PATH_INFO`` starts with ``/v20180820/jobs``.

Reaching it with boto3
----------------------
botocore's s3control endpoint rules put the account in the host: with
``endpoint_url="http://127.0.0.1:4566"`` a call goes to ``http://123456789012.127.0.0.1:4566``,
which does not resolve. ``Config(inject_host_prefix=False)`` does not help (the prefix comes from
the endpoint rule set, not the operation's host prefix). Either register
``reach_local_endpoint(client)`` (this module: drops the ``{account}.`` label before signing), or
send s3control through the endpoint as an HTTP proxy, no code at all::

    boto3.client("s3control", endpoint_url=url, config=Config(proxies={"http": url}))

The emulation accepts both Hosts (``127.0.0.1:4566`` and ``123456789012.127.0.0.1:4566``).
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import gzip
import hashlib
import io
import itertools
import json
import logging
import re
import tempfile
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Literal
from urllib.parse import parse_qs, unquote, unquote_plus, urlsplit

from bulk_restore_cli.local.s3_restore import _STATE_ATTR, S3RestoreEmulator, _S3Error
from bulk_restore_cli.local.ticker import Ticker

log = logging.getLogger(__name__)

JOBS_PATH = "/v20180820/jobs"
XMLNS = "http://awss3control.amazonaws.com/doc/2018-08-20/"
DEFAULT_REGION = "us-east-1"
STATUSES = (
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
)
TERMINAL = frozenset({"Complete", "Cancelled", "Failed"})
CANCELLABLE = frozenset({"New", "Preparing", "Suspended", "Ready", "Active", "Pausing", "Paused"})
SUPPORTED_OPERATIONS = ("S3InitiateRestoreObject", "S3PutObjectTagging")
CSV_MANIFEST = "S3BatchOperations_CSV_20180820"
INVENTORY_MANIFEST = "S3InventoryReport_CSV_20161130"
REPORT_FORMAT = "Report_CSV_20180820"
REPORT_SCHEMA = "Bucket, Key, VersionId, TaskStatus, ErrorCode, HTTPStatusCode, ResultMessage"
FAILURE_THRESHOLD_TASKS = 1000  # batch-ops-managing-jobs: "When a job has run at least 1,000 tasks ..."
SUSPENDED_CAUSE = "The job requires confirmation: it runs once UpdateJobStatus sets it Ready"
TIERS = {"BULK": "Bulk", "STANDARD": "Standard"}
_TIER_SPEED = {"Standard": 1, "Bulk": 2}
GATE_BATCH = 50  # tasks run per pass of the admission gate

# Job failures. The codes are the failure types of troubleshooting-batch-operations where AWS names
# one, else the S3 error code of the read that failed; AWS publishes no exact reason texts.
FAILURE_MANIFEST = "InvalidManifestContent"
FAILURE_THRESHOLD = (
    "TaskFailureThresholdExceeded",
    "The job failed because more than 50 percent of its tasks failed after it had run at least 1,000 tasks",
)


class _ControlError(Exception):
    """An S3 Control API error: HTTP status, code, message."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.status, self.code, self.message = status, code, message


class _JobFailure(Exception):
    """Why a job fails (a FailureCode and a FailureReason)."""

    def __init__(self, code: str, reason: str):
        super().__init__(f"{code}: {reason}")
        self.code, self.reason = code, reason[:256]


def _bad(message: str) -> _ControlError:
    return _ControlError(400, "InvalidRequest", message[:1024])


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# ---- the s3control model: requests read and answers written from botocore's shapes -----------

_model_lock = threading.Lock()
_model: Any = None


def _service_model() -> Any:
    global _model
    with _model_lock:
        if _model is None:
            import botocore.session

            _model = botocore.session.get_session().get_service_model("s3control")
        return _model


def _operation(name: str) -> Any:
    return _service_model().operation_model(name)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _from_xml(element: ET.Element, shape: Any) -> Any:
    """An element's value as the shape says (structures by their members' XML names)."""
    kind = shape.type_name
    if kind == "structure":
        by_name = {
            member.serialization.get("name", name): (name, member)
            for name, member in shape.members.items()
            if member.serialization.get("location") is None
        }
        value: dict[str, Any] = {}
        for child in element:
            found = by_name.get(_local(child.tag))
            if found is not None:
                name, member = found
                if member.type_name == "list" and member.serialization.get("flattened"):
                    value.setdefault(name, []).append(_from_xml(child, member.member))
                else:
                    value[name] = _from_xml(child, member)
        return value
    if kind == "list":
        return [_from_xml(child, shape.member) for child in element]
    if kind == "map":
        raise _ControlError(501, "NotImplemented", "maps are not read by this emulation")
    text = (element.text or "").strip() if kind != "string" else (element.text or "")
    if kind == "boolean":
        if text not in ("true", "false"):
            raise _malformed()
        return text == "true"
    if kind in ("integer", "long"):
        try:
            return int(text)
        except ValueError as exc:
            raise _malformed() from exc
    return text


def _malformed() -> _ControlError:
    return _ControlError(400, "MalformedXML", "The XML you provided was not well-formed or did not validate against our published schema")


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _to_xml(parent: ET.Element, name: str, shape: Any, value: Any) -> None:
    kind = shape.type_name
    if kind == "list" and shape.serialization.get("flattened"):
        for item in value:
            _to_xml(parent, name, shape.member, item)
        return
    element = ET.SubElement(parent, name)
    if kind == "structure":
        for member_name, member in shape.members.items():
            item = value.get(member_name)
            if item is not None and member.serialization.get("location") is None:
                _to_xml(element, member.serialization.get("name", member_name), member, item)
    elif kind == "list":
        item_name = shape.member.serialization.get("name", "member")
        for item in value:
            _to_xml(element, item_name, shape.member, item)
    elif kind == "boolean":
        element.text = "true" if value else "false"
    elif kind == "timestamp":
        element.text = _iso(value)
    elif kind in ("integer", "long"):
        element.text = str(int(value))
    else:
        element.text = str(value)


def _answer(operation: str, value: Mapping[str, Any]) -> tuple[int, dict[str, str], bytes]:
    shape = _operation(operation).output_shape
    root = ET.Element(shape.name, {"xmlns": XMLNS})
    for name, member in shape.members.items():
        item = value.get(name)
        if item is not None:
            _to_xml(root, member.serialization.get("name", name), member, item)
    body = b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="utf-8")
    return 200, _headers(), body


def _headers() -> dict[str, str]:
    return {
        "Content-Type": "application/xml",
        "x-amz-request-id": uuid.uuid4().hex[:16].upper(),
        "x-amz-id-2": base64.b64encode(uuid.uuid4().bytes * 2).decode(),
    }


def _error_answer(error: _ControlError) -> tuple[int, dict[str, str], bytes]:
    headers = _headers()
    root = ET.Element("ErrorResponse")
    inner = ET.SubElement(root, "Error")
    ET.SubElement(inner, "Code").text = error.code
    ET.SubElement(inner, "Message").text = error.message
    ET.SubElement(root, "RequestId").text = headers["x-amz-request-id"]
    ET.SubElement(root, "HostId").text = headers["x-amz-id-2"]
    return error.status, headers, b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="utf-8")


def _validate(value: Any, shape: Any, path: str) -> None:
    """The model's constraints: required members, lengths, ranges, enums and (Python-readable) patterns."""
    kind = shape.type_name
    meta = shape.metadata
    if kind == "structure":
        for name in shape.required_members:
            if value.get(name) is None:
                raise _bad(f"Missing required field {path}{name}")
        for name, item in value.items():
            if item is not None and name in shape.members:
                _validate(item, shape.members[name], f"{path}{name}.")
        return
    label = path.rstrip(".")
    if kind == "list":
        if ("min" in meta and len(value) < meta["min"]) or ("max" in meta and len(value) > meta["max"]):
            raise _bad(f"{label} must have between {meta.get('min', 0)} and {meta.get('max', 'any number of')} items")
        for index, item in enumerate(value):
            _validate(item, shape.member, f"{label}[{index}].")
        return
    if kind == "string":
        if ("min" in meta and len(value) < meta["min"]) or ("max" in meta and len(value) > meta["max"]):
            raise _bad(f"{label} must be between {meta.get('min', 0)} and {meta.get('max')} characters long")
        enum = shape.enum
        if enum and value not in enum:
            raise _bad(f"{label} must be one of {', '.join(enum)}, not {value!r}")
        pattern = meta.get("pattern")
        if pattern and "\\p{" not in pattern and not re.match(pattern, value):
            raise _bad(f"{label} {value!r} is not valid")
        return
    if kind in ("integer", "long") and (("min" in meta and value < meta["min"]) or ("max" in meta and value > meta["max"])):
        raise _bad(f"{label} must be between {meta.get('min')} and {meta.get('max', 'any')}")


def _bucket_of_arn(arn: str, what: str) -> str:
    match = re.fullmatch(r"arn:[^:]+:s3:::([^/]+)", arn)
    if match is None:
        raise _bad(f"{what} {arn!r} is not an S3 bucket ARN (arn:aws:s3:::bucket)")
    return match.group(1)


def _object_of_arn(arn: str) -> tuple[str, str]:
    match = re.fullmatch(r"arn:[^:]+:s3:::([^/]+)/(.+)", arn, re.DOTALL)
    if match is None:
        raise _bad(f"Manifest ObjectArn {arn!r} is not an S3 object ARN (arn:aws:s3:::bucket/key)")
    return match.group(1), match.group(2)


# ---- jobs ------------------------------------------------------------------------------------

Task = tuple[str, str, str, str]  # bucket, key (decoded), version id ("" for none), key as the manifest gave it
TaskResult = tuple[bool, int, str, str]  # succeeded, HTTP status, error code, result message


@dataclass
class _ResultFile:
    """One result CSV of a completion report, spooled until the job ends."""

    status: str  # succeeded | failed
    file: Any
    md5: Any = field(default_factory=hashlib.md5)
    size: int = 0


class _Report:
    """A job's completion report, written row by row into spooled files of at most ``limit`` bytes."""

    def __init__(self, bucket: str, prefix: str, failed_only: bool, row_order: str, limit: int):
        self.bucket, self.prefix, self.failed_only, self.row_order, self.limit = bucket, prefix, failed_only, row_order, limit
        self.files: list[_ResultFile] = []
        self._open: dict[str, _ResultFile] = {}
        self._line = io.StringIO()
        self._writer = csv.writer(self._line)

    def add(self, task: Task, result: TaskResult) -> None:
        ok, status, code, message = result
        outcome = "succeeded" if ok else "failed"
        if ok and self.failed_only:
            return
        bucket, _key, version, raw_key = task
        if self.row_order == "schema":
            row = [bucket, raw_key, version, outcome, code, status, message]
        else:
            row = [bucket, raw_key, version, outcome, status, code, message]
        self._line.seek(0)
        self._line.truncate()
        self._writer.writerow(row)
        data = self._line.getvalue().encode("utf-8")
        current = self._open.get(outcome)
        if current is None or (current.size + len(data) > self.limit and current.size > 0):
            current = _ResultFile(outcome, tempfile.SpooledTemporaryFile(max_size=1 << 20))
            self._open[outcome] = current
            self.files.append(current)
        current.file.write(data)
        current.md5.update(data)
        current.size += len(data)

    def close(self) -> None:
        for result in self.files:
            result.file.close()
        self.files, self._open = [], {}


@dataclass
class _Job:
    id: str
    arn: str
    account: str
    region: str
    seq: int
    token: str
    request: dict[str, Any]  # CreateJob's members, as read (echoed by DescribeJob)
    operation: str
    confirmation_required: bool
    priority: int
    created: dt.datetime
    tags: list[dict[str, str]]
    status: str = "New"
    status_update_reason: str | None = None
    failures: list[tuple[str, str]] = field(default_factory=list)
    terminated: dt.datetime | None = None
    suspended_date: dt.datetime | None = None
    suspended_cause: str | None = None
    total: int = 0
    succeeded: int = 0
    failed: int = 0
    active_since: float | None = None
    active_seconds: float = 0.0
    tasks: Any = None  # the prepared tasks: a spooled CSV file (bucket, key, version, raw key)
    reader: Iterator[list[str]] | None = None
    report: _Report | None = None

    @property
    def ran(self) -> int:
        return self.succeeded + self.failed


# ---- reading manifests ------------------------------------------------------------------------


class _ObjectReader(io.RawIOBase):
    """A moto object's bytes, read a chunk at a time under the object's lock (never all at once)."""

    def __init__(self, key: Any):
        self._key, self._position = key, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        with self._key.lock:
            store = self._key._value_buffer
            store.seek(self._position)
            data = store.read(len(buffer))
        buffer[: len(data)] = data
        self._position += len(data)
        return len(data)


def _s3_backend(account: str, partition: str = "aws") -> Any:
    from moto.s3.models import s3_backends

    return s3_backends[account][partition]


def _s3_failure(exc: Exception) -> tuple[int, str, str]:
    """HTTP status, code and message of an error moto's S3 backend raised."""
    if isinstance(exc, _S3Error):
        return exc.status, exc.code, exc.message
    code = str(getattr(exc, "code", "") or type(exc).__name__)
    message = str(getattr(exc, "message", "") or exc)
    status = 404 if code.startswith("NoSuch") else 403 if code in ("AccessDenied", "InvalidObjectState") else 400
    return status, code, message


def _get_object(backend: Any, bucket: str, key: str, version: str | None, what: str) -> Any:
    """A stored object, or a _JobFailure naming the S3 error reading it would get."""
    from moto.s3.exceptions import MissingBucket

    try:
        found = backend.get_object(bucket, key, version_id=version)
    except MissingBucket as exc:
        raise _JobFailure("NoSuchBucket", f"Reading the {what} failed: bucket {bucket} does not exist") from exc
    if found is None:
        if version:
            raise _JobFailure("NoSuchVersion", f"Reading the {what} failed: version {version} of s3://{bucket}/{key} does not exist")
        raise _JobFailure("NoSuchKey", f"Reading the {what} failed: s3://{bucket}/{key} does not exist")
    return found


def _etag(key: Any) -> str:
    with key.lock:
        return str(key.etag).strip('"')


def _text_lines(key: Any, compressed: bool = False) -> io.TextIOWrapper:
    raw: Any = io.BufferedReader(_ObjectReader(key), buffer_size=1 << 16)
    if compressed:
        raw = gzip.GzipFile(fileobj=raw, mode="rb")
    return io.TextIOWrapper(raw, encoding="utf-8", errors="strict", newline="")


def _csv_manifest_tasks(key: Any, fields: list[str]) -> Iterator[Task]:
    """Tasks of an S3BatchOperations_CSV_20180820 manifest, one row at a time."""
    columns = {name: fields.index(name) for name in ("Bucket", "Key", "VersionId") if name in fields}
    try:
        with _text_lines(key) as text:
            for number, row in enumerate(csv.reader(text), start=1):
                if number == 1 and row and row[0].startswith("\ufeff"):
                    raise _JobFailure(
                        FAILURE_MANIFEST,
                        "Manifest file is not properly formatted: it starts with a byte order mark (save it as UTF-8 without BOM)",
                    )
                if len(row) != len(fields):
                    raise _JobFailure(
                        FAILURE_MANIFEST,
                        f"Manifest file is not properly formatted: line {number} has {len(row)} "
                        f"field(s), the job's manifest Fields name {len(fields)}",
                    )
                bucket, raw_key = row[columns["Bucket"]], row[columns["Key"]]
                version = row[columns["VersionId"]] if "VersionId" in columns else ""
                if not bucket or not raw_key:
                    raise _JobFailure(
                        FAILURE_MANIFEST,
                        f"Required fields are missing in the schema: line {number} has no {'Bucket' if not bucket else 'Key'}",
                    )
                if "VersionId" in columns and not version:
                    raise _JobFailure(
                        FAILURE_MANIFEST,
                        f"Invalid version ID format: line {number} has no version ID, "
                        "and the manifest must give one for every object or for none",
                    )
                yield bucket, unquote(raw_key), version, raw_key
    except UnicodeDecodeError as exc:
        raise _JobFailure(FAILURE_MANIFEST, "Invalid Manifest Content: the manifest is not UTF-8") from exc
    except csv.Error as exc:
        raise _JobFailure(FAILURE_MANIFEST, f"Manifest file is not properly formatted: {exc}") from exc
    except ValueError as exc:  # the object's buffer was closed: it was deleted or overwritten meanwhile
        raise _JobFailure("NoSuchKey", "Reading the manifest failed: the manifest object is gone") from exc


def _inventory_tasks(backend: Any, key: Any) -> Iterator[Task]:
    """Tasks of an S3 Inventory report: its manifest.json, then each gzip CSV data file by fileSchema."""
    try:
        with key.lock:
            key._value_buffer.seek(0)
            document = json.loads(key._value_buffer.read().decode("utf-8"))
        file_format = str(document.get("fileFormat", ""))
        schema = [name.strip() for name in str(document["fileSchema"]).split(",")]
        files = list(document["files"])
        destination = str(document["destinationBucket"])
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise _JobFailure(FAILURE_MANIFEST, "Invalid Manifest Content: the inventory manifest.json is not valid") from exc
    if file_format.upper() != "CSV":
        raise _JobFailure(
            FAILURE_MANIFEST,
            f"Invalid Manifest Content: the inventory is {file_format or 'of no format'}; S3 Batch Operations reads CSV inventory reports",
        )
    missing = [name for name in ("Bucket", "Key") if name not in schema]
    if missing:
        raise _JobFailure(FAILURE_MANIFEST, f"Required fields are missing in the schema: {', '.join(missing)}")
    bucket_column, key_column = schema.index("Bucket"), schema.index("Key")
    version_column = schema.index("VersionId") if "VersionId" in schema else None
    data_bucket = destination.split(":::", 1)[-1]
    for entry in files:
        data_key = str(entry.get("key", "")) if isinstance(entry, dict) else ""
        data = _get_object(backend, data_bucket, data_key, None, "inventory data file")
        try:
            with _text_lines(data, compressed=True) as text:
                for number, row in enumerate(csv.reader(text), start=1):
                    if len(row) != len(schema):
                        raise _JobFailure(
                            FAILURE_MANIFEST,
                            f"Manifest file is not properly formatted: line {number} of {data_key} "
                            f"has {len(row)} field(s), its fileSchema names {len(schema)}",
                        )
                    version = row[version_column] if version_column is not None else ""
                    yield row[bucket_column], unquote_plus(row[key_column]), version, row[key_column]
        except (OSError, EOFError, UnicodeDecodeError, csv.Error) as exc:
            raise _JobFailure(FAILURE_MANIFEST, f"Invalid Manifest Content: {data_key} is not a gzip CSV file") from exc
        except ValueError as exc:  # the object's buffer was closed: it was deleted or overwritten meanwhile
            raise _JobFailure("NoSuchKey", f"Reading the inventory data file failed: {data_key} is gone") from exc


# ---- the hooks into moto -----------------------------------------------------------------------

_lock = threading.RLock()
_installed: S3BatchEmulator | None = None
_originals: dict[str, Any] = {}


def _is_jobs_path(path: str) -> bool:
    return path == JOBS_PATH or path.startswith(JOBS_PATH + "/")


def _patched_dispatcher_call(self: Any, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
    emulator = _installed
    if emulator is not None and _is_jobs_path(environ.get("PATH_INFO", "")):
        return emulator.wsgi(environ, start_response)
    return _originals["dispatcher_call"](self, environ, start_response)


def _patched_process_request(self: Any, request: Any) -> Any:
    emulator = _installed
    if emulator is not None:
        parts = urlsplit(request.url)
        if _is_jobs_path(unquote(parts.path)):
            body = request.body
            if hasattr(body, "read"):
                body = body.read()
            if isinstance(body, str):
                body = body.encode("utf-8")
            headers = {
                str(name).lower(): value.decode("utf-8") if isinstance(value, bytes) else str(value)
                for name, value in request.headers.items()
            }
            headers.setdefault("host", parts.netloc)
            return emulator.handle(request.method, unquote(parts.path), parts.query, headers, body or b"")
    return _originals["process_request"](self, request)


def reach_local_endpoint(client: Any) -> Any:
    """Make an s3control client send to its endpoint_url's host itself, without the ``{account}.`` label
    botocore's endpoint rules put in front of it (``123456789012.127.0.0.1`` does not resolve).
    Returns the client."""
    from bulk_restore.adapters.s3control import without_account_label

    client.meta.events.register("before-sign.s3-control", without_account_label)
    return client


# ---- the emulator ------------------------------------------------------------------------------


class S3BatchEmulator:
    """S3 Batch Operations jobs on moto, their tasks run through ``restore`` (an S3RestoreEmulator).

    ``tasks_per_second``: the rate the clock runs tasks at, all jobs together (S3 accepts up to
    1,000 restore requests per second per account). ``clock``: monotonic seconds. ``gate``: the
    endpoint's AdmissionGate (or anything with ``enter()``/``leave()``); the clock's calls into
    moto then pass it, ``GATE_BATCH`` tasks at a time. ``report_row_order``: "observed" (the HTTP
    status before the error code, as AWS writes its reports) or "schema" (the ReportSchema's order).
    ``report_file_bytes``: the size at which a result file rolls over to a new one.
    """

    def __init__(
        self,
        restore: S3RestoreEmulator,
        tasks_per_second: float = 1000.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        gate: Any = None,
        report_row_order: Literal["observed", "schema"] = "observed",
        report_file_bytes: int = 16 << 20,
    ):
        if tasks_per_second <= 0:
            raise ValueError("tasks_per_second must be more than 0")
        if report_row_order not in ("observed", "schema"):
            raise ValueError("report_row_order must be 'observed' or 'schema'")
        if report_file_bytes < 1:
            raise ValueError("report_file_bytes must be at least 1")
        self.restore = restore
        self.tasks_per_second = float(tasks_per_second)
        self.clock = clock
        self.gate = gate
        self.report_row_order = report_row_order
        self.report_file_bytes = report_file_bytes
        self._lock = threading.RLock()  # job state, the job and token tables
        self._tick_lock = threading.Lock()  # one tick at a time: the tasks and report files are the ticker's
        self._jobs: dict[str, _Job] = {}
        self._order: list[_Job] = []
        self._tokens: dict[tuple[str, str, str], str] = {}
        self._sequence = itertools.count(1)
        self._credit = 0.0
        self._last_tick: float | None = None
        self._clock = Ticker("s3-batch-clock", self.tick, join_timeout=10)

    # ---- installation --------------------------------------------------------------------------

    def install(self) -> S3BatchEmulator:
        """Hook into moto's server dispatcher and in-process stubber (idempotent). One emulator at a time."""
        global _installed
        with _lock:
            if _installed is self:
                return self
            if _installed is not None:
                raise RuntimeError("another S3BatchEmulator is installed: uninstall it first")
            from moto.core.botocore_stubber import BotocoreStubber
            from moto.moto_server.werkzeug_app import DomainDispatcherApplication

            if not _originals:
                _originals.update(dispatcher_call=DomainDispatcherApplication.__call__, process_request=BotocoreStubber.process_request)
            DomainDispatcherApplication.__call__ = _patched_dispatcher_call
            BotocoreStubber.process_request = _patched_process_request
            _installed = self
        return self

    def uninstall(self) -> None:
        """Stop the clock, unhook, and forget every job (idempotent)."""
        global _installed
        self.stop_clock()
        with _lock:
            if _installed is not self:
                return
            from moto.core.botocore_stubber import BotocoreStubber
            from moto.moto_server.werkzeug_app import DomainDispatcherApplication

            DomainDispatcherApplication.__call__ = _originals["dispatcher_call"]
            BotocoreStubber.process_request = _originals["process_request"]
            _installed = None
        with self._tick_lock, self._lock:
            for job in self._order:
                self._release(job)
            self._jobs.clear()
            self._order.clear()
            self._tokens.clear()

    @property
    def installed(self) -> bool:
        return _installed is self

    def __enter__(self) -> S3BatchEmulator:
        return self.install()

    def __exit__(self, *exc: object) -> None:
        self.uninstall()

    # ---- the clock -----------------------------------------------------------------------------

    def start_clock(self, interval: float = 0.1) -> None:
        """Tick in a background thread every ``interval`` seconds."""
        self._clock.start(interval)

    def stop_clock(self) -> None:
        self._clock.stop()

    def tick(self, now: float | None = None, max_tasks: int | None = None) -> int:
        """Move every job one step: one status change, or (Active) up to the tick's task budget.

        The budget is ``tasks_per_second`` times the time since the last tick (at most one
        second's worth), or ``max_tasks`` when given. Returns the steps taken (status changes plus
        tasks run): 0 when no job can move.
        """
        with self._tick_lock:
            moment = self.clock() if now is None else now
            if max_tasks is None:
                elapsed = 0.0 if self._last_tick is None else max(0.0, moment - self._last_tick)
                self._credit = min(self._credit + elapsed * self.tasks_per_second, max(self.tasks_per_second, 1.0))
                budget = [int(self._credit)]
            else:
                budget = [max(0, int(max_tasks))]
            self._last_tick = moment
            start = budget[0]
            with self._lock:
                jobs = sorted((job for job in self._order if job.status not in TERMINAL), key=lambda job: (-job.priority, job.seq))
            steps = 0
            for job in jobs:
                try:
                    steps += self._step(job, budget)
                except Exception:
                    log.exception("batch job step failed", extra={"job": job.id})
            if max_tasks is None:
                self._credit -= start - budget[0]
            return steps

    def run_until_idle(self, max_ticks: int = 1_000_000) -> int:
        """Tick, without the rate, until no job can move (every job ended or Suspended). Returns the ticks."""
        for ticks in range(1, max_ticks + 1):
            if self.tick(max_tasks=1 << 62) == 0:
                return ticks
        raise RuntimeError(f"jobs still moving after {max_ticks} ticks")

    @contextmanager
    def _admitted(self) -> Iterator[None]:
        if self.gate is None:
            yield
            return
        self.gate.enter()
        try:
            yield
        finally:
            self.gate.leave()

    # ---- the lifecycle -------------------------------------------------------------------------

    def _step(self, job: _Job, budget: list[int]) -> int:
        """One step of one job. Every call into moto (the events included) passes the gate, taken
        before the job lock (a request holds the gate when it takes the lock)."""
        with self._lock:
            status = job.status
        if status == "Active":
            return self._run(job, budget)
        if status not in ("New", "Ready", "Preparing", "Completing", "Cancelling", "Failing"):
            return 0
        with self._admitted():
            if status == "Preparing":
                self._prepare(job)
            elif status in ("New", "Ready"):
                with self._lock:
                    if job.status == status:
                        self._set_status(job, "Preparing" if status == "New" else "Active")
            else:
                self._finish(job, {"Completing": "Complete", "Cancelling": "Cancelled", "Failing": "Failed"}[status])
        return 1

    def _prepare(self, job: _Job) -> None:
        """Read the manifest (checking it and its ETag), count its tasks and spool them."""
        spool = tempfile.SpooledTemporaryFile(max_size=4 << 20, mode="w+", encoding="utf-8", newline="")
        count = 0
        try:
            writer = csv.writer(spool)
            for task in self._manifest_tasks(job):
                writer.writerow(task)
                count += 1
            self._check_report_bucket(job)
        except Exception as exc:
            spool.close()
            if isinstance(exc, _JobFailure):
                failure = exc
            else:
                log.exception("batch job preparation failed unexpectedly", extra={"job": job.id})
                failure = _JobFailure("InternalError", f"Preparing the job failed: {type(exc).__name__}")
            with self._lock:
                if job.status == "Preparing":
                    job.failures.append((failure.code, failure.reason))
                    self._set_status(job, "Failing")
            return
        spool.seek(0)
        with self._lock:
            if job.status != "Preparing":  # cancelled meanwhile
                spool.close()
                return
            job.total, job.tasks, job.reader = count, spool, csv.reader(spool)
            report = job.request.get("Report") or {}
            if report.get("Enabled"):
                job.report = _Report(
                    _bucket_of_arn(report["Bucket"], "Report Bucket"),
                    str(report.get("Prefix") or "").rstrip("/"),
                    report.get("ReportScope") == "FailedTasksOnly",
                    self.report_row_order,
                    self.report_file_bytes,
                )
            if job.confirmation_required:
                job.suspended_date, job.suspended_cause = _utcnow(), SUSPENDED_CAUSE
                self._set_status(job, "Suspended")
            else:
                self._set_status(job, "Ready")

    def _manifest_tasks(self, job: _Job) -> Iterator[Task]:
        manifest = job.request["Manifest"]
        location, spec = manifest["Location"], manifest["Spec"]
        bucket, key_name = _object_of_arn(location["ObjectArn"])
        backend = _s3_backend(job.account)
        key = _get_object(backend, bucket, key_name, location.get("ObjectVersionId"), "manifest")
        actual, given = _etag(key), str(location["ETag"]).strip('"')
        if actual != given:
            raise _JobFailure(
                FAILURE_MANIFEST,
                f"The manifest object's ETag {actual} does not match the ETag {given} given in the job's manifest location",
            )
        if spec["Format"] == INVENTORY_MANIFEST:
            return _inventory_tasks(backend, key)
        return _csv_manifest_tasks(key, list(spec.get("Fields") or []))

    def _check_report_bucket(self, job: _Job) -> None:
        report = job.request.get("Report") or {}
        if report.get("Enabled"):
            from moto.s3.exceptions import MissingBucket

            name = _bucket_of_arn(report["Bucket"], "Report Bucket")
            try:
                _s3_backend(job.account).get_bucket(name)
            except MissingBucket as exc:
                raise _JobFailure("NoSuchBucket", f"The completion report's bucket {name} does not exist") from exc

    def _run(self, job: _Job, budget: list[int]) -> int:
        """Run tasks while the budget lasts and the job stays Active, GATE_BATCH to a pass of the gate;
        Completing after the last one."""
        steps = 0
        while True:
            with self._admitted():
                with self._lock:
                    if job.status != "Active":
                        return steps
                    if job.ran >= job.total:
                        self._set_status(job, "Completing")
                        return steps + 1
                if budget[0] <= 0:
                    return steps
                for _ in range(min(GATE_BATCH, budget[0])):
                    with self._lock:
                        if job.status != "Active" or job.ran >= job.total:
                            break
                    assert job.reader is not None
                    row = next(job.reader)
                    task: Task = (row[0], row[1], row[2], row[3])
                    result = self._run_task(job, task)
                    budget[0] -= 1
                    steps += 1
                    if job.report is not None:
                        job.report.add(task, result)
                    with self._lock:
                        if result[0]:
                            job.succeeded += 1
                        else:
                            job.failed += 1
                        if job.ran >= FAILURE_THRESHOLD_TASKS and job.failed * 2 > job.ran and job.status == "Active":
                            job.failures.append(FAILURE_THRESHOLD)
                            self._set_status(job, "Failing")

    def _finish(self, job: _Job, terminal: str) -> None:
        """Write the completion report (when at least one task ran), then end the job."""
        failure: _JobFailure | None = None
        if job.report is not None and job.ran > 0:
            try:
                self._write_report(job)
            except _JobFailure as exc:
                failure = exc
            except Exception as exc:
                log.exception("batch job report not written", extra={"job": job.id})
                failure = _JobFailure("InternalError", f"Writing the completion report failed: {type(exc).__name__}")
        with self._lock:
            if failure is not None:
                job.failures.append((failure.code, failure.reason))
                terminal = "Failed"
            job.terminated = _utcnow()
            self._set_status(job, terminal)
            self._release(job)

    def _write_report(self, job: _Job) -> None:
        from moto.s3.exceptions import MissingBucket

        report = job.report
        assert report is not None
        folder = f"{report.prefix}/job-{job.id}" if report.prefix else f"job-{job.id}"
        backend = _s3_backend(job.account)
        results = []
        try:
            for number, result in enumerate(report.files):
                name = hashlib.sha1(f"{job.id}/{result.status}/{number}/{uuid.uuid4()}".encode()).hexdigest()
                key = f"{folder}/results/{name}.csv"
                result.file.seek(0)
                backend.put_object(report.bucket, key, result.file.read())  # one file, at most report_file_bytes
                results.append(
                    {"TaskExecutionStatus": result.status, "Bucket": report.bucket, "MD5Checksum": result.md5.hexdigest(), "Key": key}
                )
            manifest = {"Format": REPORT_FORMAT, "ReportCreationDate": _iso(_utcnow()), "Results": results, "ReportSchema": REPORT_SCHEMA}
            backend.put_object(report.bucket, f"{folder}/manifest.json", json.dumps(manifest).encode("utf-8"))
        except MissingBucket as exc:
            raise _JobFailure("NoSuchBucket", f"Writing the completion report failed: bucket {report.bucket} does not exist") from exc

    def _release(self, job: _Job) -> None:
        if job.tasks is not None:
            job.tasks.close()
            job.tasks, job.reader = None, None
        if job.report is not None:
            job.report.close()

    def _set_status(self, job: _Job, status: str, reasons: list[str] | None = None) -> None:
        """Change a job's status (the caller holds self._lock) and send its JobStatusChanged event."""
        now = self.clock()
        if job.status == "Active" and job.active_since is not None:
            job.active_seconds += max(0.0, now - job.active_since)
            job.active_since = None
        if status == "Active":
            job.active_since = now
        job.status = status
        codes = [code for code, _ in job.failures] if status in ("Failing", "Failed") else []
        self._emit(job, "JobStatusChanged", codes, reasons or [])

    # ---- tasks ---------------------------------------------------------------------------------

    def _run_task(self, job: _Job, task: Task) -> TaskResult:
        bucket, key, version, _raw = task
        backend = _s3_backend(job.account)
        try:
            if job.operation == "S3InitiateRestoreObject":
                return self._restore_task(job, backend, bucket, key, version or None)
            return self._tagging_task(job, backend, bucket, key, version or None)
        except Exception as exc:
            if not isinstance(exc, _S3Error):
                log.exception("batch task failed unexpectedly", extra={"job": job.id, "bucket": bucket, "key": key})
                return False, 500, "InternalError", "We encountered an internal error. Please try again."
            return False, exc.status, exc.code, exc.message

    def _restore_task(self, job: _Job, backend: Any, bucket: str, key: str, version: str | None) -> TaskResult:
        params = job.request["Operation"]["S3InitiateRestoreObject"]
        days = params.get("ExpirationInDays")
        tier = TIERS[params.get("GlacierJobTier") or "STANDARD"]
        request: dict[str, Any] = {"GlacierJobParameters": {"Tier": tier}}
        if days is not None:
            request["Days"] = str(days)
        # batch-ops-initiate-restore-object: over a running restore, a task succeeds only with a faster
        # tier AND the same ExpirationInDays (RestoreObject alone accepts a faster tier whatever the Days).
        obj = self._existing(backend, bucket, key, version)
        state = getattr(obj, _STATE_ATTR, None) if obj is not None else None
        if state is not None and state.ongoing and _TIER_SPEED.get(tier, 9) < _TIER_SPEED.get(state.tier, 9) and state.days != days:
            return False, 409, "RestoreAlreadyInProgress", "Object restore is already in progress"
        self.restore.request_restore(backend, bucket, key, version, request)
        return True, 200, "", "Successful"

    @staticmethod
    def _existing(backend: Any, bucket: str, key: str, version: str | None) -> Any:
        from moto.s3.exceptions import MissingBucket

        try:
            found = backend.get_bucket(bucket).keys.getlist(key, default=[])
        except MissingBucket:
            return None
        for candidate in reversed(found):
            if version is None or str(getattr(candidate, "version_id", "")) == version:
                return candidate
        return None

    def _tagging_task(self, job: _Job, backend: Any, bucket: str, key: str, version: str | None) -> TaskResult:
        from moto.s3.exceptions import MissingBucket

        tags = {tag["Key"]: tag["Value"] for tag in job.request["Operation"]["S3PutObjectTagging"].get("TagSet") or []}
        try:
            obj = backend.get_object(bucket, key, version_id=version)
            if obj is None:
                if version:
                    return False, 404, "NoSuchVersion", "The specified version does not exist."
                return False, 404, "NoSuchKey", "The specified key does not exist."
            backend.put_object_tagging(obj, tags)
        except MissingBucket:
            return False, 404, "NoSuchBucket", "The specified bucket does not exist"
        except Exception as exc:
            status, code, message = _s3_failure(exc)
            return False, status, code, message
        return True, 200, "", "Successful"

    # ---- events --------------------------------------------------------------------------------

    def _emit(self, job: _Job, name: str, failure_codes: list[str], reasons: list[str]) -> None:
        """A CloudTrail-shaped job event to the default bus, through moto's rule matching."""
        try:
            from moto.core.utils import unix_time
            from moto.events.models import events_backends

            now = _utcnow()
            event = {
                "version": "0",
                "id": str(uuid.uuid4()),
                "detail-type": "AWS Service Event via CloudTrail",
                "source": "aws.s3",
                "account": job.account,
                "time": unix_time(),  # moto's SQS target turns this into ISO 8601
                "region": job.region,
                "resources": [],
                "detail": {
                    "eventVersion": "1.05",
                    "userIdentity": {"accountId": job.account, "invokedBy": "s3.amazonaws.com"},
                    "eventTime": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "eventSource": "s3.amazonaws.com",
                    "eventName": name,
                    "awsRegion": job.region,
                    "sourceIPAddress": "s3.amazonaws.com",
                    "userAgent": "s3.amazonaws.com",
                    "eventID": str(uuid.uuid4()),
                    "readOnly": False,
                    "eventType": "AwsServiceEvent",
                    "serviceEventDetails": {
                        "jobId": job.id,
                        "jobArn": job.arn,
                        "status": job.status,
                        "jobEventId": uuid.uuid4().hex,
                        "failureCodes": list(failure_codes),
                        "statusChangeReason": list(reasons),
                    },
                },
            }
            bus = events_backends[job.account][job.region].event_buses.get("default")
            if bus is None:
                return
            for rule in list(bus.rules.values()):
                if getattr(rule, "state", "ENABLED") == "ENABLED":
                    rule.send_to_targets(json.loads(json.dumps(event)), transform_input=False)
        except Exception:
            log.exception("batch job event not delivered", extra={"job": job.id})

    # ---- HTTP ----------------------------------------------------------------------------------

    def wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        """The WSGI application moto's dispatcher hands ``/v20180820/jobs`` requests to."""
        stream = environ.get("wsgi.input")
        length = environ.get("CONTENT_LENGTH") or ""
        if length.isdigit():
            body = stream.read(int(length)) if stream is not None and int(length) else b""
        else:
            body = stream.read() if stream is not None and environ.get("wsgi.input_terminated") else b""
        headers = {name[5:].replace("_", "-").lower(): str(value) for name, value in environ.items() if name.startswith("HTTP_")}
        if environ.get("CONTENT_TYPE"):
            headers["content-type"] = environ["CONTENT_TYPE"]
        status, answer_headers, payload = self.handle(
            environ.get("REQUEST_METHOD", "GET"), environ.get("PATH_INFO", ""), environ.get("QUERY_STRING", ""), headers, body
        )
        start_response(f"{status} {HTTPStatus(status).phrase}", [*answer_headers.items(), ("Content-Length", str(len(payload)))])
        return [payload]

    def handle(self, method: str, path: str, query: str, headers: Mapping[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        """Answer one s3control jobs request: (HTTP status, headers, body). ``headers`` lower-cased."""
        try:
            account = headers.get("x-amz-account-id", "")
            if not account:
                raise _bad("Missing required header for this request: x-amz-account-id")
            if not re.fullmatch(r"\d{12}", account):
                raise _bad(f"x-amz-account-id {account!r} is not a 12-digit account ID")
            label, dot, _ = headers.get("host", "").partition(".")
            if dot and re.fullmatch(r"\d{12}", label) and label != account:
                raise _bad(f"The account in the host ({label}) is not the one in x-amz-account-id ({account})")
            region = self._region(headers)
            params = parse_qs(query, keep_blank_values=True)
            parts = path[len(JOBS_PATH) :].strip("/").split("/") if path != JOBS_PATH else []
            if not parts and method == "POST":
                return self._create_job(account, region, body)
            if not parts and method == "GET":
                return self._list_jobs(account, region, params)
            if len(parts) == 1 and method == "GET":
                return _answer("DescribeJob", {"Job": self._describe(self._job(account, region, parts[0]))})
            if len(parts) == 2 and parts[1] == "status" and method == "POST":
                return self._update_status(account, region, parts[0], params)
            if len(parts) == 2 and parts[1] == "priority" and method == "POST":
                return self._update_priority(account, region, parts[0], params)
            if len(parts) == 2 and parts[1] == "tagging":
                return self._tagging(account, region, parts[0], method, body)
            raise _ControlError(501, "NotImplemented", f"{method} {path} is not implemented by the local S3 Batch Operations emulation")
        except _ControlError as error:
            return _error_answer(error)

    @staticmethod
    def _region(headers: Mapping[str, str]) -> str:
        match = re.search(r"Credential=[^/]+/\d{8}/([^/]+)/", headers.get("authorization", ""))
        if match:
            return match.group(1)
        match = re.search(r"s3-control(?:-fips)?\.(?:dualstack\.)?([a-z0-9-]+)\.amazonaws\.com", headers.get("host", ""))
        return match.group(1) if match else DEFAULT_REGION

    def _job(self, account: str, region: str, job_id: str) -> _Job:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None or job.account != account or job.region != region:
            raise _ControlError(404, "NoSuchJob", "The specified job does not exist")
        return job

    # ---- CreateJob -----------------------------------------------------------------------------

    def _create_job(self, account: str, region: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
        operation = _operation("CreateJob")
        try:
            root = ET.fromstring(body) if body.strip() else None
        except ET.ParseError as exc:
            raise _malformed() from exc
        if root is None or _local(root.tag) != "CreateJobRequest":
            raise _malformed()
        request = _from_xml(root, operation.input_shape)
        _validate({**request, "AccountId": account}, operation.input_shape, "")
        if request.get("ManifestGenerator") is not None:
            raise _ControlError(
                501, "NotImplemented", "ManifestGenerator is not implemented by the local S3 Batch Operations emulation: give a Manifest"
            )
        if request.get("Manifest") is None:
            raise _bad("A job needs a Manifest or a ManifestGenerator")
        named = [name for name, value in request["Operation"].items() if value is not None]
        if len(named) != 1:
            raise _bad(f"Operation must name exactly one operation, not {len(named)}")
        if named[0] not in SUPPORTED_OPERATIONS:
            raise _ControlError(
                501,
                "NotImplemented",
                f"Operation {named[0]} is not implemented by the local S3 Batch Operations "
                f"emulation (it runs {' and '.join(SUPPORTED_OPERATIONS)})",
            )
        self._check_manifest(request["Manifest"])
        report = request["Report"]
        if report.get("Enabled"):
            if not report.get("Bucket"):
                raise _bad("An enabled Report needs a Bucket")
            _bucket_of_arn(report["Bucket"], "Report Bucket")
            if report.get("Format") != REPORT_FORMAT:
                raise _bad(f"An enabled Report needs Format {REPORT_FORMAT}")
        token = request["ClientRequestToken"]
        with self._lock:
            existing = self._tokens.get((account, region, token))
            if existing is not None:
                if self._jobs[existing].request != request:
                    log.info("CreateJob: ClientRequestToken %s reused with other parameters: job %s returned", token, existing)
                return _answer("CreateJob", {"JobId": existing})
            job_id = str(uuid.uuid4())
            job = _Job(
                id=job_id,
                arn=f"arn:aws:s3:{region}:{account}:job/{job_id}",
                account=account,
                region=region,
                seq=next(self._sequence),
                token=token,
                request=request,
                operation=named[0],
                confirmation_required=request.get("ConfirmationRequired") is not False,
                priority=int(request["Priority"]),
                created=_utcnow(),
                tags=list(request.get("Tags") or []),
            )
            self._jobs[job_id] = job
            self._order.append(job)
            self._tokens[(account, region, token)] = job_id
            self._emit(job, "JobCreated", [], [])
        return _answer("CreateJob", {"JobId": job_id})

    @staticmethod
    def _check_manifest(manifest: dict[str, Any]) -> None:
        _object_of_arn(manifest["Location"]["ObjectArn"])
        spec = manifest["Spec"]
        if spec["Format"] == CSV_MANIFEST:
            fields = list(spec.get("Fields") or [])
            for name in ("Bucket", "Key"):
                if fields.count(name) != 1:
                    raise _bad(f"Manifest Spec Fields must name {name} exactly once for {CSV_MANIFEST}")
            if fields.count("VersionId") > 1:
                raise _bad("Manifest Spec Fields must name VersionId at most once")

    # ---- DescribeJob, ListJobs -----------------------------------------------------------------

    def _describe(self, job: _Job) -> dict[str, Any]:
        with self._lock:
            descriptor: dict[str, Any] = {
                "JobId": job.id,
                "ConfirmationRequired": job.confirmation_required,
                "Description": job.request.get("Description"),
                "JobArn": job.arn,
                "Status": job.status,
                "Manifest": job.request["Manifest"],
                "Operation": job.request["Operation"],
                "Priority": job.priority,
                "ProgressSummary": self._progress(job),
                "StatusUpdateReason": job.status_update_reason,
                "FailureReasons": [{"FailureCode": code, "FailureReason": reason} for code, reason in job.failures],
                "Report": job.request["Report"],
                "CreationTime": job.created,
                "TerminationDate": job.terminated,
                "RoleArn": job.request["RoleArn"],
                "SuspendedDate": job.suspended_date,
                "SuspendedCause": job.suspended_cause,
            }
        return descriptor

    def _progress(self, job: _Job) -> dict[str, Any]:
        active = job.active_seconds + (max(0.0, self.clock() - job.active_since) if job.active_since is not None else 0.0)
        return {
            "TotalNumberOfTasks": job.total,
            "NumberOfTasksSucceeded": job.succeeded,
            "NumberOfTasksFailed": job.failed,
            "Timers": {"ElapsedTimeInActiveSeconds": int(active)},
        }

    def _list_jobs(self, account: str, region: str, params: dict[str, list[str]]) -> tuple[int, dict[str, str], bytes]:
        wanted = set(params.get("jobStatuses", []))
        unknown = wanted - set(STATUSES)
        if unknown:
            raise _bad(f"jobStatuses {', '.join(sorted(unknown))} is not a job status: one of {', '.join(STATUSES)}")
        try:
            limit = int((params.get("maxResults") or ["1000"])[0]) or 1000
        except ValueError as exc:
            raise _bad("maxResults must be an integer between 0 and 1000") from exc
        if not 0 <= limit <= 1000:
            raise _bad("maxResults must be an integer between 0 and 1000")
        before: int | None = None
        token = (params.get("nextToken") or [""])[0]
        if token:
            try:
                before = int(base64.urlsafe_b64decode(token.encode()).decode().removeprefix("before:"))
            except ValueError as exc:
                raise _ControlError(400, "InvalidNextTokenException", "The nextToken provided is invalid") from exc
        jobs: list[dict[str, Any]] = []
        next_token = None
        last_seq = 0
        with self._lock:
            for job in reversed(self._order):  # newest first
                if job.account != account or job.region != region or (before is not None and job.seq >= before):
                    continue
                if wanted and job.status not in wanted:
                    continue
                if len(jobs) == limit:
                    next_token = base64.urlsafe_b64encode(f"before:{last_seq}".encode()).decode()
                    break
                jobs.append(
                    {
                        "JobId": job.id,
                        "Description": job.request.get("Description"),
                        "Operation": job.operation,
                        "Priority": job.priority,
                        "Status": job.status,
                        "CreationTime": job.created,
                        "TerminationDate": job.terminated,
                        "ProgressSummary": self._progress(job),
                    }
                )
                last_seq = job.seq
        return _answer("ListJobs", {"Jobs": jobs, "NextToken": next_token})

    # ---- UpdateJobStatus, UpdateJobPriority, job tagging ---------------------------------------

    def _update_status(self, account: str, region: str, job_id: str, params: dict[str, list[str]]) -> tuple[int, dict[str, str], bytes]:
        requested = (params.get("requestedJobStatus") or [""])[0]
        reason = (params.get("statusUpdateReason") or [None])[0]
        if requested not in ("Ready", "Cancelled"):
            raise _bad("requestedJobStatus must be Ready or Cancelled")
        if reason is not None and not 1 <= len(reason) <= 256:
            raise _bad("statusUpdateReason must be between 1 and 256 characters long")
        job = self._job(account, region, job_id)
        with self._lock:
            current = job.status
            if requested == "Ready" and current == "Suspended":
                new = "Ready"
            elif requested == "Cancelled" and current in CANCELLABLE:
                new = "Cancelling"
            else:
                raise _ControlError(409, "JobStatusException", f"Job {job.id} is {current}: it cannot be updated to {requested}")
            if reason is not None:
                job.status_update_reason = reason
            self._set_status(job, new, [reason] if reason else [])
            answer = {"JobId": job.id, "Status": job.status, "StatusUpdateReason": job.status_update_reason}
        return _answer("UpdateJobStatus", answer)

    def _update_priority(self, account: str, region: str, job_id: str, params: dict[str, list[str]]) -> tuple[int, dict[str, str], bytes]:
        raw = (params.get("priority") or [""])[0]
        try:
            priority = int(raw)
        except ValueError as exc:
            raise _bad("priority must be an integer between 0 and 2147483647") from exc
        if not 0 <= priority <= 2147483647:
            raise _bad("priority must be an integer between 0 and 2147483647")
        job = self._job(account, region, job_id)
        with self._lock:
            job.priority = priority
        return _answer("UpdateJobPriority", {"JobId": job.id, "Priority": priority})

    def _tagging(self, account: str, region: str, job_id: str, method: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
        job = self._job(account, region, job_id)
        if method == "GET":
            with self._lock:
                tags = list(job.tags)
            return _answer("GetJobTagging", {"Tags": tags})
        if method == "DELETE":
            with self._lock:
                job.tags = []
            return _answer("DeleteJobTagging", {})
        if method == "PUT":
            operation = _operation("PutJobTagging")
            try:
                root = ET.fromstring(body)
            except ET.ParseError as exc:
                raise _malformed() from exc
            request = _from_xml(root, operation.input_shape)
            _validate({**request, "AccountId": account, "JobId": job_id}, operation.input_shape, "")
            with self._lock:
                job.tags = list(request["Tags"])
            return _answer("PutJobTagging", {})
        raise _ControlError(501, "NotImplemented", f"{method} on job tagging is not implemented by the local emulation")
