"""The job store on one DynamoDB table.

Item layout (pk / sk):
  JOB#<id> / META                 the job: settings, status, planning checkpoint, event outbox
  JOB#<id>#CHUNKS / <chunk>       marker: this manifest chunk has been accounted
  JOB#<id>#O#<shard> / <ref>      one object of the job (ref: hash of bucket, key and version)
  BUCKET#<bucket> / JOB#<id>      the job has objects in this bucket (completion events look here);
                                  ``issuing`` while the job may still record new objects
  IDEMPOTENCY#<token> / TOKEN     the job a create request's idempotency key (header or client_token) made
  JOBS / <created at>#<id>        every job, newest last: GET /jobs reads this partition backwards
                                  (written once, at create; expires ObjectRetentionDays later)
  ACTIVE / JOB#<id>               the job is not finished: the sweeper's list of jobs to look at;
                                  ``issuing`` while it has restore requests left to send (pacing)
  RATE#job#<id> / schedule        when the job's next restore request may go (its pacing), and
                                  ``stopped`` once the job has ended
  EARLY#<ref> / COMPLETED         a restore-completed event that came while a job that may yet
                                  record the object was still issuing (kept 2 days)
  EARLYAT#<bucket> / NOTED        when such an event was last kept for an object of the bucket

  JOB#<id> / COUNT#<stream shard> the job's counts from one shard of the table's stream, with the
                                  last sequence number applied; the job's counts are their sum

An object's state is written alone, in one single-item conditional write: inserted only if absent,
moved out of RESTORING only from RESTORING (PartiQL statements, 25 to a BatchExecuteStatement
request, each succeeding or failing alone, one write unit each). The counters are derived from
those writes: the table's stream carries each change once, and the counting function
(usecases/count.py) adds a stream batch's deltas to each job's counter item for the shard in one
conditional update that also moves the shard's checkpoint, so a batch read twice counts once.
Nothing writes a job's counters once per object.
"""

from __future__ import annotations

import base64
import json
import random
import re
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import boto3
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.config import Config
from botocore.exceptions import ClientError

from bulk_restore.domain.errors import InvalidRequest
from bulk_restore.domain.model import (
    Counts,
    JobStatus,
    ManifestLocation,
    ObjectState,
    PlanningState,
    RestoreJob,
    Tier,
)
from bulk_restore.domain.outcomes import RetryLater

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef, WriteRequestTypeDef, WriteRequestUnionTypeDef

EARLY_COMPLETION_DAYS = 2
OBJECT_SHARDS = 16
MAX_TOKEN_CHARS = 1024  # a next_token we make is under 200 characters
_REF = re.compile(r"[0-9a-f]{32}")
JOBS_PARTITION = "JOBS"
_JOBS_SK = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z#[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}")
MAX_TRANSACT_ITEMS = 100
MAX_STATEMENTS = 25  # BatchExecuteStatement
_RETRYABLE_STATEMENT_ERRORS = {
    "TransactionConflict",
    "ThrottlingError",
    "ProvisionedThroughputExceeded",
    "RequestLimitExceeded",
    "InternalServerError",
}
_ser = TypeSerializer()
_de = TypeDeserializer()
_ACTIVE = [JobStatus.PLANNING.value, JobStatus.RESTORING.value]


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _epoch(days: int) -> int:
    return int((datetime.now(UTC) + timedelta(days=days)).timestamp())


_N_LIMIT = 10**38  # DynamoDB's numbers hold 38 digits: TypeSerializer refuses more


def _serialize(value: Any) -> dict[str, Any]:
    """``value`` in DynamoDB's JSON, as boto3's TypeSerializer writes it: strings, whole numbers
    and booleans (most of what an object's item holds) directly, the rest by the serializer."""
    kind = type(value)
    if kind is str:
        return {"S": value}
    if kind is bool:
        return {"BOOL": value}
    if kind is int and -_N_LIMIT < value < _N_LIMIT:
        return {"N": str(value)}
    return dict(_ser.serialize(value))


def _to_ddb(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _serialize(v) for k, v in item.items() if v is not None}


def _attribute(value: Any) -> dict[str, Any]:
    """One value in DynamoDB's JSON (a statement's parameter)."""
    return _serialize(value)


def _from_ddb(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _de.deserialize(v) for k, v in item.items()}


def _plain(value: Any) -> Any:
    """A stored map as plain Python: DynamoDB's numbers as int (or float when not whole)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def _int(value: Any, default: int = 0) -> int:
    return int(value) if value is not None else default


def job_pk(job_id: str) -> str:
    return f"JOB#{job_id}"


def object_key(job_id: str, ref: str) -> dict[str, str]:
    shard = int(ref[:2], 16) % OBJECT_SHARDS
    return {"pk": f"JOB#{job_id}#O#{shard:02d}", "sk": ref}


def marker_key(job_id: str, chunk: int) -> dict[str, str]:
    """A chunk's marker: written once the chunk's objects are all written (the stream counts it)."""
    return {"pk": f"JOB#{job_id}#CHUNKS", "sk": f"{chunk:010d}"}


def job_schedule(job_id: str) -> str:
    """The scope of a job's pacing schedule (``reserve_schedule``, ``stop_schedule``)."""
    return f"job#{job_id}"


def archive_part_key(job_id: str, ref: str, obj: int, part: int) -> dict[str, str]:
    """A vault archive's transfer part: a partition per archive (a part per item, so an archive of
    thousands of parts never nears DynamoDB's 400 KB item limit), sorted by object and part."""
    return {"pk": f"JOB#{job_id}#A#{ref}", "sk": f"{obj:03d}#{part:05d}"}


@dataclass(frozen=True, slots=True)
class ObjectRecord:
    """One object of a job as stored."""

    job_id: str
    ref: str
    bucket: str
    key: str
    version_id: str | None
    state: ObjectState
    reason: str = ""
    line: int = 0
    updated_at: str = ""
    # A vault archive's own fields: {"id", "vault", "glacier_job", "size", "tree_hash", "upload",
    # "part_size", "parts_total", "parts_done", "objects" (a split archive's), ...}; each moved
    # part is an item of its own (``archive_part_key``)
    archive: dict[str, Any] = field(default_factory=dict)

    def as_item(self, expires_at: int) -> dict[str, Any]:
        return ({"archive": self.archive} if self.archive else {}) | {
            **object_key(self.job_id, self.ref),
            "job_id": self.job_id,
            "bucket": self.bucket,
            "key": self.key,
            "version_id": self.version_id,
            "state": self.state.value,
            "reason": self.reason or None,
            "line": self.line,
            "updated_at": self.updated_at or now_iso(),
            "expires_at": expires_at,
        }

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> ObjectRecord:
        return cls(
            job_id=item["job_id"],
            ref=item["sk"],
            bucket=item.get("bucket", ""),
            key=item.get("key", ""),
            version_id=item.get("version_id"),
            state=ObjectState(item["state"]),
            reason=item.get("reason", ""),
            line=_int(item.get("line")),
            updated_at=item.get("updated_at", ""),
            archive=_plain(item.get("archive") or {}),
        )


@dataclass(frozen=True, slots=True)
class BucketLink:
    """A job's link to a bucket: whether it may still record new objects there, and whether its
    rows all have a version id (True), none has (False), or that is not known (None)."""

    issuing: bool
    versioned: bool | None = None


class TransactionConflict(Exception):
    """Another writer held an item of the transaction; try again."""


class DynamoJobStore:
    def __init__(
        self, table_name: str, client: Any = None, object_retention_days: int = 90, job_retention_days: int = 30, max_connections: int = 10
    ):
        self.table = table_name
        # Restore threads pace their retries through the store: a connection for each of them.
        self.client = client or boto3.client("dynamodb", config=Config(max_pool_connections=max(10, max_connections)))
        self.object_retention_days = object_retention_days
        self.job_retention_days = job_retention_days

    # ---- jobs -------------------------------------------------------------------------------

    def _job_item(self, job: RestoreJob) -> dict[str, Any]:
        return {
            "pk": job_pk(job.job_id),
            "sk": "META",
            "job_id": job.job_id,
            "tier": job.tier.value,
            "expiration_days": job.expiration_days,
            "manifest": {
                "bucket": job.manifest.bucket,
                "key": job.manifest.key,
                "etag": job.manifest.etag,
                "size": job.manifest.size,
            },
            "client_tag": job.client_tag,
            "progress_step_percent": job.progress_step_percent,
            "status": job.status.value,
            "created_at": job.created_at,
            "updated_at": job.updated_at,
            "finished_at": job.finished_at,
            "failure_reason": job.failure_reason,
            "last_step": job.last_step_published,
            "engine": job.engine,
            "expedited_fallback": job.expedited_fallback,
            "deadline_seconds": str(job.deadline_seconds),
            "keep_restored_days": job.keep_restored_days,
            "sweep": job.sweep,
            "planning": self._planning_item(job.planning),
            "outbox": {},
            "issued": job.issued,
            "request": json.dumps(job.request, sort_keys=True) if job.request else None,
            "manifest_objects": job.manifest_objects,
            "notes": list(job.notes) or None,
            **{f"batch_{group}": run for group, run in job.batch_runs.items()},
            "source": dict(job.source) or None,
        }

    @staticmethod
    def _planning_item(p: PlanningState) -> dict[str, Any]:
        return {
            "byte_offset": p.byte_offset,
            "lines_read": p.lines_read,
            "chunks_emitted": p.chunks_emitted,
            "step": p.step,
            "done": p.done,
            "buckets": list(p.buckets),
            "versioned_line": p.versioned_line,
            "stopped": p.stopped,
            "cursor": dict(p.cursor),
        }

    @staticmethod
    def _job_from_item(item: dict[str, Any]) -> RestoreJob:
        m = item.get("manifest", {})
        p = item.get("planning", {})
        return RestoreJob(
            job_id=item["job_id"],
            tier=Tier(item["tier"]),
            expiration_days=_int(item.get("expiration_days"), 1),
            manifest=ManifestLocation(m.get("bucket", ""), m.get("key", ""), m.get("etag", ""), _int(m.get("size"))),
            client_tag=item.get("client_tag", ""),
            progress_step_percent=_int(item.get("progress_step_percent"), 10),
            status=JobStatus(item["status"]),
            created_at=item.get("created_at", ""),
            updated_at=item.get("updated_at", ""),
            finished_at=item.get("finished_at", ""),
            failure_reason=item.get("failure_reason", ""),
            last_step_published=_int(item.get("last_step")),
            planning=PlanningState(
                byte_offset=_int(p.get("byte_offset")),
                lines_read=_int(p.get("lines_read")),
                chunks_emitted=_int(p.get("chunks_emitted")),
                step=_int(p.get("step")),
                done=bool(p.get("done", False)),
                buckets=list(p.get("buckets", [])),
                versioned_line=_int(p.get("versioned_line")),
                stopped=bool(p.get("stopped", False)),
                cursor=_plain(p.get("cursor") or {}),
            ),
            engine=item.get("engine", "direct"),
            expedited_fallback=bool(item.get("expedited_fallback", False)),
            deadline_seconds=float(item.get("deadline_seconds", "0") or 0),
            keep_restored_days=_int(item.get("keep_restored_days")),
            sweep={k: int(v) if isinstance(v, Decimal) else v for k, v in (item.get("sweep") or {}).items()},
            outbox={k: {"message": json.loads(v["m"]), "lease": _int(v.get("lease"))} for k, v in item.get("outbox", {}).items()},
            end_pending=bool(item.get("end_pending", False)),
            issued=bool(item.get("issued", False)),
            issued_at=item.get("issued_at", ""),
            request=json.loads(item["request"]) if item.get("request") else {},
            manifest_objects=_int(item["manifest_objects"]) if item.get("manifest_objects") is not None else None,
            notes=list(item.get("notes") or []),
            source=dict(item.get("source") or {}),
            batch_runs={
                name[len("batch_") :]: {k: (int(v) if isinstance(v, Decimal) else v) for k, v in run.items()}
                for name, run in item.items()
                if name.startswith("batch_") and isinstance(run, dict)
            },
        )

    def create_job(self, job: RestoreJob, idempotency_keys: Sequence[str] | str | None = ()) -> tuple[RestoreJob, bool]:
        """Store a new job with its idempotency keys (the header's, the client_token), in one transaction.

        With a key already taken, nothing is stored and the key's job is returned instead.
        Returns (job, created).
        """
        keys = [idempotency_keys] if isinstance(idempotency_keys, str) else list(dict.fromkeys(idempotency_keys or ()))
        actions: list[TransactWriteItemTypeDef] = [
            {
                "Put": {
                    "TableName": self.table,
                    "Item": _to_ddb(self._job_item(job)),
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            }
        ]
        actions.append(
            {
                "Put": {
                    "TableName": self.table,
                    "Item": _to_ddb(
                        {"pk": "ACTIVE", "sk": f"JOB#{job.job_id}", "job_id": job.job_id, "created_at": job.created_at, "issuing": True}
                    ),
                }
            }
        )
        actions.append({"Put": {"TableName": self.table, "Item": _to_ddb(self._listing_item(job))}})
        actions.extend(
            {
                "Put": {
                    "TableName": self.table,
                    "Item": _to_ddb(self._token_item(key, job.job_id)),
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            }
            for key in keys
        )
        try:
            self.client.transact_write_items(TransactItems=actions)
            return job, True
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "TransactionCanceledException" or not keys:
                raise
            for key in keys:
                existing = self.job_for_idempotency_key(key)
                if existing is not None:
                    return existing, False
            raise

    def _listing_item(self, job: RestoreJob) -> dict[str, Any]:
        """The job's entry in the JOBS partition (GET /jobs): its key sorts by creation time. It
        expires with the job's objects, by when the job itself is gone."""
        return {
            "pk": JOBS_PARTITION,
            "sk": f"{job.created_at}#{job.job_id}",
            "job_id": job.job_id,
            "expires_at": _epoch(max(self.object_retention_days, self.job_retention_days)),
        }

    def recent_jobs(self, limit: int, token: str | None) -> tuple[list[RestoreJob], str | None]:
        """Jobs newest first, ``limit`` entries of the JOBS partition a page (one Query, then one
        GetItem per job: a job whose record has expired is left out, so a page may be short).
        ``token`` resumes after the last entry of the previous page."""
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": _to_ddb({":pk": JOBS_PARTITION}),
            "ScanIndexForward": False,
            "Limit": limit,
        }
        if token:
            kwargs["ExclusiveStartKey"] = _to_ddb({"pk": JOBS_PARTITION, "sk": self._decode_jobs_token(token)})
        page = self.client.query(**kwargs)
        entries = [_from_ddb(item) for item in page.get("Items", [])]
        jobs = []
        for entry in entries:
            item = self.client.get_item(TableName=self.table, Key=_to_ddb({"pk": job_pk(entry["job_id"]), "sk": "META"})).get("Item")
            if item:
                jobs.append(self._job_from_item(_from_ddb(item)))
        last = page.get("LastEvaluatedKey")
        next_token = base64.urlsafe_b64encode(json.dumps({"k": _from_ddb(last)["sk"]}).encode()).decode() if last else None
        return jobs, next_token

    @staticmethod
    def _decode_jobs_token(token: str) -> str:
        """A next_token of recent_jobs: the sort key of the last entry read, or refuse it."""
        invalid = InvalidRequest("next_token is not valid: pass the value a previous page returned", {"next_token": token[:100]})
        if len(token) > MAX_TOKEN_CHARS:
            raise invalid
        try:
            decoded = json.loads(base64.urlsafe_b64decode(token.encode("ascii")).decode("utf-8"), parse_constant=lambda name: float("nan"))
        except (ValueError, RecursionError) as exc:  # bad base64, not UTF-8, not JSON, over 4,300 digits, too deep
            raise invalid from exc
        if (
            not isinstance(decoded, dict)
            or set(decoded) != {"k"}
            or not isinstance(decoded["k"], str)
            or not _JOBS_SK.fullmatch(decoded["k"])
        ):
            raise invalid
        return decoded["k"]

    def _token_item(self, key: str, job_id: str) -> dict[str, Any]:
        return {"pk": f"IDEMPOTENCY#{key}", "sk": "TOKEN", "job_id": job_id, "expires_at": _epoch(self.job_retention_days)}

    def idempotency_key_owner(self, key: str) -> str | None:
        """The id of the job an idempotency key made, if any."""
        item = self.client.get_item(
            TableName=self.table, Key=_to_ddb({"pk": f"IDEMPOTENCY#{key}", "sk": "TOKEN"}), ConsistentRead=True
        ).get("Item")
        return _from_ddb(item)["job_id"] if item else None

    def bind_idempotency_key(self, key: str, job_id: str) -> str:
        """Make ``key`` name ``job_id`` too, unless it already names a job. Returns the job it names."""
        try:
            self.client.put_item(
                TableName=self.table, Item=_to_ddb(self._token_item(key, job_id)), ConditionExpression="attribute_not_exists(pk)"
            )
            return job_id
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
        return self.idempotency_key_owner(key) or job_id

    def job_for_idempotency_key(self, key: str) -> RestoreJob | None:
        job_id = self.idempotency_key_owner(key)
        return self.get_job(job_id) if job_id else None

    def get_job(self, job_id: str) -> RestoreJob | None:
        item = self.client.get_item(TableName=self.table, Key=_to_ddb({"pk": job_pk(job_id), "sk": "META"}), ConsistentRead=True).get(
            "Item"
        )
        return self._job_from_item(_from_ddb(item)) if item else None

    def get_job_and_counts(self, job_id: str) -> tuple[RestoreJob, Counts] | None:
        """The job and the sum of its counter shards, in one consistent query."""
        job: RestoreJob | None = None
        parts: list[Counts] = []
        for item in self._query_partition(job_pk(job_id), consistent=True):
            if item["sk"] == "META":
                job = self._job_from_item(item)
            elif item["sk"].startswith("COUNT#"):
                parts.append(Counts(**{name: _int(item.get(name)) for name in Counts().as_dict()}))
        if job is None:
            return None
        return job, Counts.sum(parts)

    def save_planning(self, job_id: str, expected_step: int, planning: PlanningState) -> bool:
        """Checkpoint the planner, only if nobody else has moved it since ``expected_step``."""
        return self._conditional_update(
            self._meta(job_id),
            "SET #p = :p, updated_at = :u",
            "#p.step = :step",
            {"#p": "planning"},
            {":p": self._planning_item(planning), ":step": expected_step, ":u": now_iso()},
        )

    def mark_restoring(self, job_id: str) -> None:
        """Planning has started issuing restores: Planning -> Restoring (no-op otherwise)."""
        self._conditional_update(
            self._meta(job_id),
            "SET #s = :r, updated_at = :u",
            "#s = :p",
            {"#s": "status"},
            {":r": JobStatus.RESTORING.value, ":p": JobStatus.PLANNING.value, ":u": now_iso()},
        )

    # ---- progress events: claim once, publish, clear -----------------------------------------

    def claim_event(
        self,
        job_id: str,
        event_id: str,
        message: dict[str, Any],
        *,
        step: int | None = None,
        terminal: JobStatus | None = None,
        failure_reason: str = "",
        lease_ms: int = 0,
        ended: bool = False,
    ) -> bool:
        """Record an event in the job's outbox, once: a step above the last one, or the one terminal status.

        With ``ended``, the terminal event of a job that ``end_job`` ended earlier: claimed once,
        when its last chunks have been accounted, so that it carries the job's final counts.

        The claimer holds the event's publish lease for ``lease_ms``: nobody else publishes it
        meanwhile. If the claimer dies, whoever evaluates the job after the lease publishes it.
        """
        names = {"#s": "status", "#o": "outbox", "#e": event_id}
        values: dict[str, Any] = {
            ":entry": {"m": json.dumps(message), "lease": int(time.time() * 1000) + lease_ms},
            ":u": now_iso(),
        }
        update = "SET #o.#e = :entry, updated_at = :u"
        if terminal is not None and ended:
            # The job was ended (cancel, timeout, failure) before: announce it, once.
            values[":t"] = terminal.value
            return self._conditional_update(
                self._meta(job_id),
                update + " REMOVE end_pending",
                "#s = :t AND end_pending = :yes",
                names,
                values | {":yes": True},
            )
        values |= {":a1": _ACTIVE[0], ":a2": _ACTIVE[1]}
        condition = "#s IN (:a1, :a2)"
        if step is not None:
            values[":step"] = step
            update += ", last_step = :step"
            condition += " AND last_step < :step"
        if terminal is not None:
            values[":t"] = terminal.value
            values[":exp"] = _epoch(self.job_retention_days)
            values[":fr"] = failure_reason
            update += ", #s = :t, finished_at = :u, expires_at = :exp, failure_reason = :fr"
        return self._conditional_update(self._meta(job_id), update, condition, names, values)

    def end_job(self, job_id: str, status: JobStatus, reason: str) -> bool:
        """End a running job as Cancelled, Failed or Timeout, its terminal event still to be announced
        (``claim_event(..., ended=True)``). False if the job had already ended."""
        return self._conditional_update(
            self._meta(job_id),
            "SET #s = :t, finished_at = :u, updated_at = :u, expires_at = :exp, failure_reason = :fr, end_pending = :yes",
            "#s IN (:a1, :a2)",
            {"#s": "status"},
            {
                ":t": status.value,
                ":u": now_iso(),
                ":exp": _epoch(self.job_retention_days),
                ":fr": reason,
                ":yes": True,
                ":a1": _ACTIVE[0],
                ":a2": _ACTIVE[1],
            },
        )

    def mark_issued(self, job_id: str, buckets: Iterable[str]) -> None:
        """The job will record no new object: it leaves the rate's share and completion events of
        its buckets need not be kept for it. The job's own flag is set last, so a crash in between
        only repeats this."""
        for bucket in buckets:  # a link already removed stays removed (an update would make it anew)
            self._conditional_update({"pk": f"BUCKET#{bucket}", "sk": f"JOB#{job_id}"}, "REMOVE issuing", "attribute_exists(pk)", None, {})
        self._conditional_update({"pk": "ACTIVE", "sk": f"JOB#{job_id}"}, "REMOVE issuing", "attribute_exists(pk)", None, {})
        self._conditional_update(
            self._meta(job_id),
            "SET issued = :yes, issued_at = if_not_exists(issued_at, :at)",
            "attribute_exists(pk)",
            None,
            {":yes": True, ":at": now_iso()},
        )

    # ---- the batch engine's S3 Batch Operations jobs ------------------------------------------

    def save_batch_run(self, job_id: str, group: str, run: dict[str, Any], expect_status: str | None = None) -> bool:
        """Store one Batch run of a job (``batch_<group>``). With ``expect_status``, only if the
        stored run still has that status ("" for a run not stored yet): two deliveries of one
        status change store it once."""
        names = {"#r": f"batch_{group}"}
        values: dict[str, Any] = {":run": run}
        condition = "attribute_exists(pk)"
        if expect_status is not None:
            if expect_status == "":
                condition += " AND attribute_not_exists(#r)"
            else:
                names["#st"] = "status"
                condition += " AND #r.#st = :was"
                values[":was"] = expect_status
        return self._conditional_update(self._meta(job_id), "SET #r = :run", condition, names, values)

    def link_batch_job(self, batch_job_id: str, job_id: str, group: str) -> None:
        """Remember which job a Batch job id belongs to: its status events carry only that id."""
        self.client.put_item(
            TableName=self.table,
            Item=_to_ddb(
                {
                    "pk": f"BATCH#{batch_job_id}",
                    "sk": "META",
                    "job_id": job_id,
                    "group": group,
                    "expires_at": _epoch(self.object_retention_days),
                }
            ),
        )

    def batch_job_owner(self, batch_job_id: str) -> tuple[str, str] | None:
        """(job id, group) of a Batch job this stack created, else None."""
        item = self.client.get_item(
            TableName=self.table, Key=_to_ddb({"pk": f"BATCH#{batch_job_id}", "sk": "META"}), ConsistentRead=True
        ).get("Item")
        if not item:
            return None
        found = _from_ddb(item)
        return str(found["job_id"]), str(found.get("group", ""))

    def take_event_lease(self, job_id: str, event_id: str, lease_ms: int) -> bool:
        """Take over publishing a pending event whose lease has run out."""
        now = int(time.time() * 1000)
        return self._conditional_update(
            self._meta(job_id),
            "SET #o.#e.lease = :until",
            "attribute_exists(#o.#e) AND #o.#e.lease <= :now",
            {"#o": "outbox", "#e": event_id},
            {":until": now + lease_ms, ":now": now},
        )

    @staticmethod
    def _meta(job_id: str) -> dict[str, str]:
        return {"pk": job_pk(job_id), "sk": "META"}

    def _conditional_update(
        self, key: dict[str, str], update: str, condition: str, names: dict[str, str] | None, values: dict[str, Any]
    ) -> bool:
        """UpdateItem if ``condition`` holds; False (not an error) if it does not."""
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "Key": _to_ddb(key),
            "UpdateExpression": update,
            "ConditionExpression": condition,
        }
        if values:
            kwargs["ExpressionAttributeValues"] = _to_ddb(values)
        if names:
            kwargs["ExpressionAttributeNames"] = names
        try:
            self.client.update_item(**kwargs)
            return True
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise

    def clear_event(self, job_id: str, event_id: str) -> None:
        self.client.update_item(
            TableName=self.table,
            Key=_to_ddb({"pk": job_pk(job_id), "sk": "META"}),
            UpdateExpression="REMOVE #o.#e",
            ExpressionAttributeNames={"#o": "outbox", "#e": event_id},
        )

    # ---- the sweeper's view --------------------------------------------------------------------

    def active_jobs(self, include_kept: bool = True) -> list[str]:
        """Jobs not finished yet (and, with ``include_kept``, finished jobs whose copies are kept):
        one partition, written only when a job starts and ends."""
        only_running = None if include_kept else "attribute_not_exists(keeping)"
        return [item["job_id"] for item in self._query_partition("ACTIVE", only_running)]

    def issuing_jobs(self) -> list[str]:
        """Jobs with restore requests left to send: those that share the account's restore rate."""
        return [item["job_id"] for item in self._query_partition("ACTIVE", "issuing = :yes", values={":yes": True})]

    def keep_active(self, job_id: str) -> None:
        """A finished job stays on the sweeper's list to renew its copies, but issues no restores."""
        self._conditional_update({"pk": "ACTIVE", "sk": f"JOB#{job_id}"}, "SET keeping = :t", "attribute_exists(pk)", None, {":t": True})

    def deactivate(self, job_id: str) -> None:
        self.client.delete_item(TableName=self.table, Key=_to_ddb({"pk": "ACTIVE", "sk": f"JOB#{job_id}"}))

    def save_sweep(self, job_id: str, sweep: dict[str, Any]) -> None:
        self.client.update_item(
            TableName=self.table,
            Key=_to_ddb({"pk": job_pk(job_id), "sk": "META"}),
            UpdateExpression="SET sweep = :s",
            ExpressionAttributeValues=_to_ddb({":s": sweep}),
        )

    def reserve_schedule(self, scope: str, span_us: int, now_us: int, busy: bool) -> tuple[int, bool]:
        """Buy ``span_us`` of ``scope``'s schedule: returns where the bought window ends (µs), and
        whether the schedule was marked stopped (``stop_schedule``).

        The window starts where the last one bought ended, or at ``now_us`` if that is past: one
        conditional write either way, the form tried first being the one ``busy`` (the schedule
        was ahead of now when last seen) says will hold; a refused form means the other holds.
        """
        key = _to_ddb(self._schedule_key(scope))
        expires = int(now_us // 1_000_000) + 3600
        forms = [
            ("SET next_at = next_at + :span, expires_at = :exp", "next_at >= :now", {":span": span_us, ":now": now_us, ":exp": expires}),
            (
                "SET next_at = :end, expires_at = :exp",
                "attribute_not_exists(next_at) OR next_at < :now",
                {":end": now_us + span_us, ":now": now_us, ":exp": expires},
            ),
        ]
        if not busy:
            forms.reverse()
        for attempt in range(8):
            update, condition, values = forms[attempt % 2]
            try:
                answer = self.client.update_item(
                    TableName=self.table,
                    Key=key,
                    UpdateExpression=update,
                    ConditionExpression=condition,
                    ExpressionAttributeValues=_to_ddb(values),
                    ReturnValues="ALL_NEW",
                )
                item = _from_ddb(dict(answer["Attributes"]))
                return _int(item["next_at"]), bool(item.get("stopped"))
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                    raise
        raise RetryLater("ConditionalCheckFailed")  # the schedule moved under every try: the message comes again

    def stop_schedule(self, scope: str) -> None:
        """Mark ``scope``'s schedule stopped: every window bought from now on says so."""
        self.client.update_item(
            TableName=self.table,
            Key=_to_ddb(self._schedule_key(scope)),
            UpdateExpression="SET stopped = :yes, expires_at = :exp",
            ExpressionAttributeValues=_to_ddb({":yes": True, ":exp": int(time.time()) + 3600}),
        )

    @staticmethod
    def _schedule_key(scope: str) -> dict[str, str]:
        return {"pk": f"RATE#{scope}", "sk": "schedule"}

    # ---- buckets ---------------------------------------------------------------------------

    def register_bucket(self, job_id: str, bucket: str, versioned: bool | None = None) -> None:
        """Link the job to a bucket: completion events in it look for the job's objects.
        ``versioned``: the job's rows all have a version id, or none has (its refs take one form)."""
        link: dict[str, Any] = {
            "pk": f"BUCKET#{bucket}",
            "sk": f"JOB#{job_id}",
            "job_id": job_id,
            "issuing": True,
            "expires_at": _epoch(self.object_retention_days),
        }
        if versioned is not None:
            link["versioned"] = versioned
        self.client.put_item(TableName=self.table, Item=_to_ddb(link))

    def unregister_buckets(self, job_id: str, buckets: Iterable[str]) -> None:
        requests: list[WriteRequestTypeDef] = [
            {"DeleteRequest": {"Key": _to_ddb({"pk": f"BUCKET#{b}", "sk": f"JOB#{job_id}"})}} for b in buckets
        ]
        for i in range(0, len(requests), 25):
            self._batch_write(requests[i : i + 25])

    def jobs_for_bucket(self, bucket: str) -> dict[str, bool]:
        """The jobs with objects in this bucket, each with whether it may still record new objects."""
        return {job_id: link.issuing for job_id, link in self.bucket_links(bucket).items()}

    def bucket_links(self, bucket: str) -> dict[str, BucketLink]:
        """The jobs with objects in this bucket, with what a completion event needs to know of each.
        Read consistently: a job registers a bucket before its first restore request there."""
        return {
            item["job_id"]: BucketLink(bool(item.get("issuing")), item.get("versioned"))
            for item in self._query_partition(f"BUCKET#{bucket}", consistent=True)
        }

    # ---- completions that came before their object was recorded ------------------------------

    def keep_early_completions(self, refs: dict[str, tuple[float, bool]]) -> None:
        """Keep completion events (ref -> (when S3 completed it, whether the ref is certain)) for
        a job that may record the object later (a restore worker reads them after recording)."""
        expires = _epoch(EARLY_COMPLETION_DAYS)
        requests: list[WriteRequestTypeDef] = [
            {
                "PutRequest": {
                    "Item": _to_ddb(
                        {
                            "pk": f"EARLY#{ref}",
                            "sk": "COMPLETED",
                            "at": Decimal(str(round(at, 3))),
                            "certain": certain,
                            "expires_at": expires,
                        }
                    )
                }
            }
            for ref, (at, certain) in refs.items()
        ]
        for i in range(0, len(requests), 25):
            self._batch_write(requests[i : i + 25])

    def note_early_completions(self, buckets: Iterable[str], at: float) -> None:
        """Say, per bucket, when completions were last kept for objects not recorded yet
        (``EARLYAT#<bucket> / NOTED``): a restore worker looks for kept completions only after one."""
        for bucket in sorted(set(buckets)):
            self._conditional_update(
                {"pk": f"EARLYAT#{bucket}", "sk": "NOTED"},
                "SET kept_at = :at, expires_at = :exp",
                "attribute_not_exists(kept_at) OR kept_at < :at",
                None,
                {":at": Decimal(str(round(at, 3))), ":exp": _epoch(EARLY_COMPLETION_DAYS)},
            )

    def early_completions_noted(self, buckets: Iterable[str]) -> float | None:
        """The last time completions were kept early in any of these buckets (None: never, or expired)."""
        items = self.get_items([{"pk": f"EARLYAT#{b}", "sk": "NOTED"} for b in set(buckets)])
        times = [float(item["kept_at"]) for item in items if "kept_at" in item]
        return max(times) if times else None

    def early_completions(self, refs: Iterable[str]) -> dict[str, tuple[float, bool]]:
        """The kept completion events of these refs: ref -> (when S3 completed it, certain)."""
        items = self.get_items([{"pk": f"EARLY#{ref}", "sk": "COMPLETED"} for ref in refs])
        return {item["pk"][len("EARLY#") :]: (float(item.get("at", 0)), bool(item.get("certain"))) for item in items}

    def _query_partition(
        self, pk: str, filter_expression: str | None = None, consistent: bool = False, values: dict[str, Any] | None = None
    ) -> Iterator[dict[str, Any]]:
        """Every item of one partition, page after page."""
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": _to_ddb({":pk": pk, **(values or {})}),
            "ConsistentRead": consistent,
        }
        if filter_expression:
            kwargs["FilterExpression"] = filter_expression
        while True:
            page = self.client.query(**kwargs)
            yield from (_from_ddb(item) for item in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _batch_write(self, requests: list[WriteRequestTypeDef]) -> None:
        pending: Mapping[str, Sequence[WriteRequestUnionTypeDef]] = {self.table: requests}
        for attempt in range(8):
            if not pending or not pending.get(self.table):
                return
            result = self.client.batch_write_item(RequestItems=pending)
            pending = result.get("UnprocessedItems") or {}
            if pending:
                time.sleep(min(2.0, 0.05 * 2**attempt) * random.random())
        if pending:
            raise RuntimeError("DynamoDB left items unprocessed after retries")

    # ---- objects ---------------------------------------------------------------------------

    def get_items(self, keys: Sequence[dict[str, str]], consistent: bool = True) -> list[dict[str, Any]]:
        """BatchGetItem with retries of unprocessed keys (consistent reads unless told otherwise)."""
        found: list[dict[str, Any]] = []
        unique = list({(k["pk"], k["sk"]): k for k in keys}.values())
        for i in range(0, len(unique), 100):
            pending: dict[str, Any] = {self.table: {"Keys": [_to_ddb(k) for k in unique[i : i + 100]], "ConsistentRead": consistent}}
            for attempt in range(10):
                result = self.client.batch_get_item(RequestItems=pending)
                found.extend(_from_ddb(item) for item in result.get("Responses", {}).get(self.table, []))
                pending = result.get("UnprocessedKeys") or {}
                if not pending:
                    break
                time.sleep(min(2.0, 0.05 * 2**attempt) * random.random())
            else:
                raise RuntimeError("DynamoDB left keys unprocessed after retries")
        return found

    def chunk_state(self, job_id: str, chunk: int, refs: Sequence[str]) -> tuple[RestoreJob | None, bool, dict[str, ObjectRecord]]:
        """One read for a chunk: the job, whether the chunk is already accounted, which objects exist.

        Eventually consistent (half the read units): every answer is a hint that a write checks
        again. An object missed is inserted only if absent, so it is never counted twice; a marker
        missed is written only if absent; a cancel missed is seen at the next look while pacing. A
        delivery retried after a crash comes a visibility timeout later, long after the reads agree."""
        keys = [{"pk": job_pk(job_id), "sk": "META"}, marker_key(job_id, chunk)]
        keys += [object_key(job_id, ref) for ref in refs]
        job = None
        done = False
        existing: dict[str, ObjectRecord] = {}
        for item in self.get_items(keys, consistent=False):
            if item["sk"] == "META":
                job = self._job_from_item(item)
            elif item["pk"].endswith("#CHUNKS"):
                done = True
            else:
                record = ObjectRecord.from_item(item)
                existing[record.ref] = record
        return job, done, existing

    def chunks_state(self, job_id: str, chunks: Sequence[int]) -> tuple[RestoreJob | None, set[int]]:
        """One read for chunks of a job whose objects are written before their restores are
        requested: the job, and which of the chunks are accounted already (their markers).
        Eventually consistent, like ``chunk_state``: a marker missed is found by the inserts that
        follow, each refused, and is then written only if absent."""
        keys = [{"pk": job_pk(job_id), "sk": "META"}] + [marker_key(job_id, c) for c in dict.fromkeys(chunks)]
        job = None
        done: set[int] = set()
        for item in self.get_items(keys, consistent=False):
            if item["sk"] == "META":
                job = self._job_from_item(item)
            else:
                done.add(int(item["sk"]))
        return job, done

    def insert_objects(self, records: Sequence[ObjectRecord]) -> tuple[list[ObjectRecord], set[str]]:
        """Insert objects, each only if absent (one write unit each, 25 to a request).

        Returns (inserted, refs_that_already_existed). Every object this call inserted is its own
        (counted once, by the stream); one that existed belongs to whoever wrote it first: an
        earlier manifest line, or an earlier delivery of the same chunk. A ref given twice is
        inserted for its first record only (the later one is neither inserted nor taken)."""
        expires = _epoch(self.object_retention_days)
        first: dict[str, ObjectRecord] = {}
        for record in records:
            first.setdefault(record.ref, record)  # a ref twice: its first line
        unique = list(first.values())
        codes = self._write([self._insert(r.as_item(expires)) for r in unique])
        inserted = [r for r, code in zip(unique, codes, strict=True) if code is None]
        return inserted, {r.ref for r in records} - {r.ref for r in inserted}

    def mark_chunks(self, job_id: str, objects: Mapping[int, int]) -> set[int]:
        """Write chunks' markers, each only if absent (``objects``: how many objects each chunk
        inserted). A marker says its chunk's objects are all written; the stream counts it once.
        Returns the chunks whose marker this call wrote."""
        expires = _epoch(self.object_retention_days)
        chunks = list(objects)
        markers = [{**marker_key(job_id, c), "objects": objects[c], "expires_at": expires} for c in chunks]
        return {c for c, code in zip(chunks, self._write([self._insert(m) for m in markers]), strict=True) if code is None}

    def record_chunk(self, job_id: str, chunk: int, records: Sequence[ObjectRecord]) -> tuple[bool, set[str]]:
        """Insert a chunk's objects, each only if absent, then the chunk's marker.

        Returns (applied, refs_that_already_existed), as ``insert_objects``. Not applied: another
        delivery wrote the marker first (it may have inserted some objects too).
        """
        inserted, taken = self.insert_objects(records)
        return chunk in self.mark_chunks(job_id, {chunk: len(inserted)}), taken

    def find_objects(self, keys: Sequence[dict[str, str]]) -> list[ObjectRecord]:
        return [ObjectRecord.from_item(i) for i in self.get_items(keys) if "state" in i]

    def transition(
        self, job_id: str, records: Sequence[ObjectRecord], to: ObjectState, reason: str = "", sizes: dict[str, int] | None = None
    ) -> int:
        """Move objects from RESTORING to ``to``, each in a conditional write of its own item.

        An object another delivery already moved fails its condition alone. Returns how many this
        call moved. ``sizes``: bytes each object moved (vault archives), kept on the object (the
        stream adds them to the job's counters). A reason given replaces the object's; none keeps it.
        """
        return len(self.move(job_id, [r.ref for r in records], to, reason, sizes))

    def move(self, job_id: str, refs: Sequence[str], to: ObjectState, reason: str = "", sizes: dict[str, int] | None = None) -> set[str]:
        """Move these refs' objects from RESTORING to ``to`` without reading them first; the refs it moved.

        A ref fails alone when its object is absent or no longer RESTORING (a write unit, as a
        read would cost a read unit)."""
        stamp = now_iso()
        unique = list(dict.fromkeys(refs))
        statements: list[tuple[str, list[dict[str, Any]]]] = []
        for ref in unique:
            fields: list[tuple[str, Any]] = [("state", to.value), ("updated_at", stamp)]
            if reason:
                fields.append(("reason", reason))
            size = (sizes or {}).get(ref)
            if size:
                fields.append(("bytes", size))
            key = object_key(job_id, ref)
            statements.append(
                (
                    f'UPDATE "{self.table}" '
                    + " ".join(f'SET "{name}" = ?' for name, _ in fields)
                    + ' WHERE "pk" = ? AND "sk" = ? AND "state" = ?',
                    [_attribute(value) for _, value in [*fields, ("pk", key["pk"]), ("sk", key["sk"]), ("from", "RESTORING")]],
                )
            )
        return {ref for ref, code in zip(unique, self._write(statements), strict=True) if code is None}

    def _insert(self, item: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
        """A PartiQL INSERT of ``item``: it fails (DuplicateItem) if an item with its key exists."""
        stored = _to_ddb(item)
        names = ", ".join(f"'{name}': ?" for name in stored)
        return f'INSERT INTO "{self.table}" VALUE {{{names}}}', list(stored.values())

    def _write(self, statements: Sequence[tuple[str, list[dict[str, Any]]]]) -> list[str | None]:
        """Run single-item write statements, up to 25 per BatchExecuteStatement request, each on its own.

        Returns each statement's outcome in order: None when it wrote, else its final error code
        (ConditionalCheckFailed or DuplicateItem). A statement refused for now (throttled, in a
        transaction's way, an internal error) is sent again with backoff; still refused after that,
        RetryLater is raised and the caller's message is retried.
        """
        codes: list[str | None] = [None] * len(statements)
        for start in range(0, len(statements), MAX_STATEMENTS):
            pending = list(range(start, min(start + MAX_STATEMENTS, len(statements))))
            for attempt in range(12):
                answer = self.client.batch_execute_statement(
                    Statements=[{"Statement": statements[i][0], "Parameters": statements[i][1]} for i in pending]
                )
                retry = []
                for i, response in zip(pending, answer["Responses"], strict=True):
                    code = (response.get("Error") or {}).get("Code")
                    if code in _RETRYABLE_STATEMENT_ERRORS:
                        retry.append(i)
                    elif code in ("ConditionalCheckFailed", "DuplicateItem") or code is None:
                        codes[i] = code
                    else:
                        message = (response.get("Error") or {}).get("Message", "")
                        raise RuntimeError(f"DynamoDB refused a write of job objects: {code}: {message}")
                if not retry:
                    break
                pending = retry
                self._backoff(attempt)
            else:
                raise RetryLater("ThrottlingError")
        return codes

    # ---- vault archives: their transfer state lives on their own object item (never the job's)

    def get_object(self, job_id: str, ref: str) -> ObjectRecord | None:
        item = self.client.get_item(TableName=self.table, Key=_to_ddb(object_key(job_id, ref)), ConsistentRead=True).get("Item")
        return ObjectRecord.from_item(_from_ddb(item)) if item else None

    def _archive_update(
        self, job_id: str, ref: str, update: str, condition: str, values: dict[str, Any], names: dict[str, str] | None = None
    ) -> dict[str, Any] | None:
        """One conditional update of an archive's fields; its new ``archive`` map, or None when the condition failed."""
        try:
            answer = self.client.update_item(
                TableName=self.table,
                Key=_to_ddb(object_key(job_id, ref)),
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeNames={"#s": "state", "#a": "archive", **(names or {})},
                ExpressionAttributeValues=_to_ddb(values | {":restoring": ObjectState.RESTORING.value}),
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return None
            raise
        return dict(_plain(_from_ddb(answer["Attributes"]).get("archive") or {}))

    def set_glacier_job(self, job_id: str, ref: str, glacier_job: str) -> bool:
        """The archive's retrieval job, once initiated; not once its transfer has begun (a notice came first)."""
        return (
            self._archive_update(
                job_id,
                ref,
                "SET #a.glacier_job = :g, updated_at = :u",
                "#s = :restoring AND attribute_not_exists(#a.upload)",
                {":g": glacier_job, ":u": now_iso()},
            )
            is not None
        )

    def start_transfer(self, job_id: str, ref: str, fields: dict[str, Any]) -> dict[str, Any] | None:
        """Record an archive's multipart upload and plan; only the first caller does (None for the others)."""
        names = {f"#f{i}": name for i, name in enumerate(fields)}
        sets = ", ".join(f"#a.#f{i} = :f{i}" for i in range(len(fields)))
        values = {f":f{i}": value for i, value in enumerate(fields.values())} | {":u": now_iso()}
        return self._archive_update(
            job_id, ref, f"SET {sets}, updated_at = :u", "#s = :restoring AND attribute_not_exists(#a.upload)", values, names
        )

    def record_part(self, job_id: str, ref: str, obj: int, part: int, info: dict[str, Any]) -> bool | None:
        """Record one verified part of an archive's transfer once: its own item (``archive_part_key``)
        and one more in the archive's ``parts_done``, in one transaction. True: recorded now; False:
        recorded before (the count is not moved twice); None: the archive is no longer moving."""
        try:
            self.client.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self.table,
                            "ConditionExpression": "attribute_not_exists(pk)",
                            "Item": _to_ddb(
                                archive_part_key(job_id, ref, obj, part) | info | {"expires_at": _epoch(self.object_retention_days)}
                            ),
                        }
                    },
                    {
                        "Update": {
                            "TableName": self.table,
                            "Key": _to_ddb(object_key(job_id, ref)),
                            "UpdateExpression": "SET #a.parts_done = #a.parts_done + :one, updated_at = :u",
                            "ConditionExpression": "#s = :restoring AND attribute_exists(#a.parts_done)",
                            "ExpressionAttributeNames": {"#s": "state", "#a": "archive"},
                            "ExpressionAttributeValues": _to_ddb({":one": 1, ":u": now_iso(), ":restoring": ObjectState.RESTORING.value}),
                        }
                    },
                ]
            )
        except ClientError as exc:
            reasons = self._cancellation_reasons(exc, 2)
            if reasons is None or reasons == ["None", "None"]:
                raise
            return None if reasons[1] == "ConditionalCheckFailed" else False
        return True

    def archive_part(self, job_id: str, ref: str, obj: int, part: int) -> dict[str, Any] | None:
        """The record of one part of an archive's transfer (its ETag, SHA-256 and tree hash), or None."""
        item = self.client.get_item(TableName=self.table, Key=_to_ddb(archive_part_key(job_id, ref, obj, part)), ConsistentRead=True).get(
            "Item"
        )
        return _plain(_from_ddb(item)) if item else None

    def archive_parts(self, job_id: str, ref: str) -> Iterator[tuple[int, int, dict[str, Any]]]:
        """Every recorded part of an archive's transfer, as (object, part number, record), in order."""
        for item in self._query_partition(archive_part_key(job_id, ref, 0, 0)["pk"], consistent=True):
            obj, _, number = str(item["sk"]).partition("#")
            yield int(obj), int(number), _plain(item)

    def switch_glacier_job(self, job_id: str, ref: str, old: str, new: str) -> bool:
        """A new retrieval job for an archive whose output expired (or was about to): the parts stored so far stay."""
        return (
            self._archive_update(
                job_id,
                ref,
                "SET #a.glacier_job = :new, #a.reinitiated = if_not_exists(#a.reinitiated, :zero) + :one, updated_at = :u",
                "#s = :restoring AND #a.glacier_job = :old",
                {":new": new, ":old": old, ":zero": 0, ":one": 1, ":u": now_iso()},
            )
            is not None
        )

    def mark_output_ready(self, job_id: str, ref: str, glacier_job: str, at: int = 0) -> dict[str, Any] | None:
        """The archive's current retrieval job has its output ready (its notice came); the archive's fields after it."""
        return self._archive_update(
            job_id,
            ref,
            "SET #a.ready_job = :g, #a.ready_at = :at, updated_at = :u",
            "#s = :restoring AND #a.glacier_job = :g",
            {":g": glacier_job, ":at": at or int(time.time()), ":u": now_iso()},
        )

    def set_spare_job(self, job_id: str, ref: str, current: str, spare: str) -> bool:
        """A second retrieval of an archive whose current output nears its end; one at a time."""
        return (
            self._archive_update(
                job_id,
                ref,
                "SET #a.spare_job = :s, updated_at = :u",
                "#s = :restoring AND #a.glacier_job = :g AND attribute_not_exists(#a.spare_job)",
                {":s": spare, ":g": current, ":u": now_iso()},
            )
            is not None
        )

    def adopt_spare_job(self, job_id: str, ref: str, spare: str, at: int) -> dict[str, Any] | None:
        """The spare retrieval's output is ready: it becomes the archive's current one (the stored parts stay)."""
        return self._archive_update(
            job_id,
            ref,
            "SET #a.glacier_job = :s, #a.ready_job = :s, #a.ready_at = :at, "
            "#a.reinitiated = if_not_exists(#a.reinitiated, :zero) + :one, updated_at = :u REMOVE #a.spare_job",
            "#s = :restoring AND #a.spare_job = :s",
            {":s": spare, ":at": at, ":zero": 0, ":one": 1, ":u": now_iso()},
        )

    def note_attempt(self, job_id: str, ref: str, what: str) -> int:
        """Count one failed attempt at ``what`` (a part's tree hash check...) on the archive; the count after it."""
        fields = self._archive_update(
            job_id,
            ref,
            "SET #a.attempts.#w = if_not_exists(#a.attempts.#w, :zero) + :one",
            "#s = :restoring AND attribute_exists(#a.attempts)",
            {":zero": 0, ":one": 1},
            {"#w": what},
        )
        if fields is None:
            fields = self._archive_update(
                job_id, ref, "SET #a.attempts = :first", "#s = :restoring AND attribute_not_exists(#a.attempts)", {":first": {what: 1}}
            )
        return int(((fields or {}).get("attempts") or {}).get(what, 0))

    def recount(self, job_id: str) -> Counts:
        """The job's counts as its items say them: every object's state (and bytes), every chunk marker.

        Reads each of the job's partitions whole (consistent reads): for an operator's check, never
        on a schedule. Objects that expired (TTL) are not counted; the derived counters keep them.
        """
        counts = Counts()
        for shard in range(OBJECT_SHARDS):
            for item in self._query_partition(f"JOB#{job_id}#O#{shard:02d}", consistent=True):
                if "state" in item:
                    counts.total += 1
                    counts.count_state(ObjectState(item["state"]))
                    counts.bytes += _int(item.get("bytes"))
        counts.chunks_done = sum(1 for _ in self._query_partition(f"JOB#{job_id}#CHUNKS", consistent=True))
        return counts

    def correct_counts(self, job_id: str, difference: Counts) -> None:
        """Add ``difference`` to the job's counters, in an item of its own (``COUNT#recount``)."""
        fields = {k: v for k, v in difference.as_dict().items() if v}
        if not fields:
            return
        self.client.update_item(
            TableName=self.table,
            Key=_to_ddb({"pk": job_pk(job_id), "sk": "COUNT#recount"}),
            UpdateExpression="ADD " + ", ".join(f"#{k} :{k}" for k in fields),
            ExpressionAttributeNames={f"#{k}": k for k in fields},
            ExpressionAttributeValues=_to_ddb({f":{k}": v for k, v in fields.items()}),
        )

    def apply_counts(self, job_id: str, shard: str, first: int, last: int, counts: Counts, after: int | None = None) -> bool:
        """Add one stream batch's deltas for a job to the job's counter item for that stream shard, once.

        The item keeps the last sequence number applied from the shard. Without ``after``: applied
        only if that number is below ``first`` (False: some of these records were applied before).
        With ``after``: only if that number is still ``after`` (the caller read it, and passes the
        changes past it).
        """
        fields = {k: v for k, v in counts.as_dict().items() if v}
        update = "SET seq = :last, expires_at = if_not_exists(expires_at, :exp)"
        if fields:
            update += " ADD " + ", ".join(f"#{k} :{k}" for k in fields)
        values = {":last": last, ":exp": _epoch(self.object_retention_days)} | {f":{k}": v for k, v in fields.items()}
        if after is None:
            condition, values = "attribute_not_exists(seq) OR seq < :first", values | {":first": first}
        else:
            condition, values = "seq = :after", values | {":after": after}
        return self._conditional_update(
            {"pk": job_pk(job_id), "sk": f"COUNT#{shard}"}, update, condition, {f"#{k}": k for k in fields} or None, values
        )

    def counted_to(self, job_id: str, shard: str) -> int | None:
        """The last sequence number of ``shard`` applied to the job's counters (None: none yet)."""
        item = self.client.get_item(
            TableName=self.table,
            Key=_to_ddb({"pk": job_pk(job_id), "sk": f"COUNT#{shard}"}),
            ConsistentRead=True,
            ProjectionExpression="seq",
        ).get("Item")
        return int(item["seq"]["N"]) if item and "seq" in item else None

    @staticmethod
    def _cancellation_reasons(exc: ClientError, actions: int) -> list[str] | None:
        """One code per action of a failed transaction ("None" where the action was not the cause),
        or None when the error is no cancellation or conflict and must propagate."""
        code = exc.response["Error"]["Code"]
        if code in ("TransactionConflictException", "ProvisionedThroughputExceededException", "ThrottlingException"):
            return ["None"] * actions
        if code != "TransactionCanceledException":
            return None
        given = [r.get("Code", "None") for r in exc.response.get("CancellationReasons") or []]
        return (given + ["None"] * actions)[:actions]

    @staticmethod
    def _backoff(attempt: int) -> None:
        time.sleep(min(1.0, 0.02 * 2**attempt) * random.random())

    @staticmethod
    def _decode_token(job_id: str, token: str) -> tuple[int, dict[str, str] | None]:
        """A next_token as list_objects made it: a shard and the last key read there, or refuse it."""
        invalid = InvalidRequest("next_token is not valid: pass the value a previous page returned", {"next_token": token[:100]})

        def no_constants(name: str) -> Any:
            raise ValueError(f"{name} is not JSON")

        if len(token) > MAX_TOKEN_CHARS:
            raise invalid
        try:
            decoded = json.loads(base64.urlsafe_b64decode(token.encode("ascii")).decode("utf-8"), parse_constant=no_constants)
        except (ValueError, RecursionError) as exc:  # bad base64, not UTF-8, not JSON, NaN, over 4,300 digits, too deep
            raise invalid from exc
        if not isinstance(decoded, dict) or not set(decoded) <= {"s", "k"}:
            raise invalid
        shard, key = decoded.get("s"), decoded.get("k")
        if type(shard) is not int or not 0 <= shard < OBJECT_SHARDS:  # not a bool, a float, infinity
            raise invalid
        if key is not None and (
            not isinstance(key, dict)
            or set(key) != {"pk", "sk"}
            or key["pk"] != f"JOB#{job_id}#O#{shard:02d}"
            or not isinstance(key["sk"], str)
            or not _REF.fullmatch(key["sk"])
        ):
            raise invalid
        return shard, key

    def list_objects(self, job_id: str, state: ObjectState | None, limit: int, token: str | None) -> tuple[list[ObjectRecord], str | None]:
        """Objects of a job, shard by shard, optionally of one state; ``token`` resumes a listing."""
        shard, start_key = (0, None) if not token else self._decode_token(job_id, token)
        records: list[ObjectRecord] = []
        while shard < OBJECT_SHARDS and len(records) < limit:
            kwargs: dict[str, Any] = {
                "TableName": self.table,
                "KeyConditionExpression": "pk = :pk",
                "ExpressionAttributeValues": _to_ddb({":pk": f"JOB#{job_id}#O#{shard:02d}"}),
                "Limit": max(limit - len(records), 1) if state is None else 1000,
            }
            if state is not None:
                kwargs["FilterExpression"] = "#s = :s"
                kwargs["ExpressionAttributeNames"] = {"#s": "state"}
                kwargs["ExpressionAttributeValues"][":s"] = _ser.serialize(state.value)
            if start_key:
                kwargs["ExclusiveStartKey"] = _to_ddb(start_key)
            page = self.client.query(**kwargs)
            items = [ObjectRecord.from_item(_from_ddb(i)) for i in page.get("Items", [])]
            room = limit - len(records)
            records.extend(items[:room])
            if len(items) > room:
                last = items[room - 1]
                start_key = object_key(job_id, last.ref)
                break
            last_key = page.get("LastEvaluatedKey")
            if last_key:
                start_key = _from_ddb(last_key)
            else:
                shard, start_key = shard + 1, None
        if shard >= OBJECT_SHARDS:
            return records, None
        next_token = base64.urlsafe_b64encode(json.dumps({"s": shard, "k": start_key}).encode()).decode()
        return records, next_token
