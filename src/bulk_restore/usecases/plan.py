"""Plan a job: stream its manifest in bounded, checkpointed steps and fan out restore chunks.

A chunk is a fixed run of LINES_PER_CHUNK manifest lines, numbered from the start of the file,
and a step always ends on a chunk boundary. So a step that is replayed after a crash sends
exactly the chunks it sent before, and the restore workers can drop the copies by chunk number.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from datetime import time as dt_time
from typing import Any

from aws_lambda_powertools import Logger

from bulk_restore.adapters.dynamodb import DynamoJobStore
from bulk_restore.adapters.s3 import S3Gateway
from bulk_restore.adapters.sqs import QueueGateway
from bulk_restore.domain.batch import ARCHIVE_GROUP, IT_GROUP
from bulk_restore.domain.errors import ManifestChanged, ManifestUnreadable
from bulk_restore.domain.inventory import (
    FileFormat,
    InventoryCursor,
    InventoryEntry,
    InventoryError,
    InventoryFile,
    InventorySkip,
    SkipCode,
    iter_report,
)
from bulk_restore.domain.inventory import parse_manifest as parse_inventory_manifest
from bulk_restore.domain.manifest import check_versioning, header_row, iter_lines, parse_row, too_long_error
from bulk_restore.domain.model import JobStatus, ManifestEntry, ManifestError, ObjectId, PlanningState, RestoreJob, vault_link
from bulk_restore.domain.vault_jobs import VaultRow, VaultSkip, vault_manifest_row
from bulk_restore.usecases.batch import BatchEngine
from bulk_restore.usecases.notify import Notifier
from bulk_restore.usecases.vault import InventoryFailed, VaultMover

logger = Logger(child=True)

LINES_PER_CHUNK = 98  # with the chunk marker and one counter update: 100 items, one transaction
MAX_BUCKETS_PER_JOB = 100
SEND_EVERY_CHUNKS = 10


@dataclass
class _Chunk:
    number: int
    rows: list[list[Any]] = field(default_factory=list)
    errors: list[list[Any]] = field(default_factory=list)
    skipped: list[list[Any]] = field(default_factory=list)  # [line, bucket, key, version, reason]: not to restore
    refs: set[str] = field(default_factory=set)
    vault: dict[str, str] | None = None  # a vault job's {"vault", "bucket"}: its rows are [line, archive id, key, fields]

    def message(self, job_id: str) -> dict[str, Any]:
        if self.vault is not None:
            return {
                "job_id": job_id,
                "chunk": self.number,
                **self.vault,
                "archives": self.rows,
                "errors": self.errors,
                **({"skipped": self.skipped} if self.skipped else {}),
            }
        message = {"job_id": job_id, "chunk": self.number, "rows": self.rows, "errors": self.errors}
        if self.skipped:
            message["skipped"] = self.skipped
        return message


class Planner:
    def __init__(
        self,
        store: DynamoJobStore,
        s3: S3Gateway,
        queues: QueueGateway,
        notifier: Notifier,
        lines_per_step: int,
        reserve_ms: int,
        manage_eventbridge: bool = True,
        batch: BatchEngine | None = None,
        vault: VaultMover | None = None,
    ):
        self.store = store
        self.s3 = s3
        self.queues = queues
        self.notifier = notifier
        self.lines_per_step = max(LINES_PER_CHUNK, lines_per_step - lines_per_step % LINES_PER_CHUNK)
        self.reserve_ms = reserve_ms
        self.manage_eventbridge = manage_eventbridge
        self.batch = batch
        self.vault = vault
        self.now: Callable[[], datetime] = lambda: datetime.now(UTC)

    def run_step(self, job_id: str, step: int, remaining_ms: Callable[[], int]) -> None:
        job = self.store.get_job(job_id)
        if job is None:
            logger.warning("plan step for unknown job dropped", extra={"job_id": job_id})
            return
        if job.status.is_terminal:
            self._stop(job)
            return
        if job.planning.done:
            # A late copy of the last step, maybe after a crash before its evaluation (or its Batch
            # job's creation): the chunks may all be accounted already, and nothing else would end the job.
            self._launch(job)
            self.notifier.evaluate(job_id)
            return
        if step != job.planning.step:
            # A late copy of a step already taken: make sure the step after it was asked for.
            if step < job.planning.step:
                self.queues.send_plan_step(job_id, job.planning.step)
            return
        paused_until = job.planning.cursor.get("paused_until")
        if paused_until and self.now() < datetime.fromisoformat(str(paused_until)):
            return  # the day's byte quota is used; the next day's first ask goes on
        if job.is_vault and job.source.get("inventory") and not job.planning.cursor.get("named") and self.vault is not None:
            self._vault_inventory_step(job, step)
            return
        sent: list[int] = []  # chunks of this step already queued, should it fail half-way
        try:
            planning = self._plan(job, remaining_ms, sent)
        except (ManifestChanged, ManifestUnreadable) as exc:
            logger.warning("manifest unreadable during planning", extra={"job_id": job_id, "reason": exc.message})
            # The chunks already queued are still accounted: the job's terminal event waits for them.
            stopped = replace(job.planning, chunks_emitted=job.planning.chunks_emitted + len(sent), stopped=True)
            self.store.save_planning(job_id, step, stopped)
            self.notifier.fail(job_id, exc.message)
            return
        if not self.store.save_planning(job_id, step, planning):
            logger.info("another planner moved this job on", extra={"job_id": job_id, "step": step})
            return
        if planning.cursor.get("paused_until"):
            # The day's byte quota is used: the sweeper asks for this step again (stalled planning)
            # until the next UTC day begins.
            logger.info("planning paused by the daily byte quota", extra={"job_id": job_id, "until": planning.cursor["paused_until"]})
            return
        logger.info(
            "plan step done",
            extra={"job_id": job_id, "step": step, "lines": planning.lines_read, "chunks": planning.chunks_emitted, "done": planning.done},
        )
        if planning.done:
            job.planning = planning
            self._launch(job)
            self.notifier.evaluate(job_id)
        else:
            self.queues.send_plan_step(job_id, planning.step)

    def _vault_inventory_step(self, job: RestoreJob, step: int) -> None:
        """A vault job from the vault's inventory: retrieve it, then name its archives (usecases/vault.py).
        The step after the retrieval is asked for by the inventory's notice (or the sweeper)."""
        assert self.vault is not None
        vault = str(job.source["vault"])
        self._register_vault(job.job_id, vault, list(job.planning.buckets))  # the inventory's notice finds the job
        try:
            cursor = self.vault.inventory_step(job)
        except InventoryFailed as exc:
            self.store.save_planning(job.job_id, step, replace(job.planning, stopped=True))
            self.notifier.fail(job.job_id, str(exc))
            return
        if cursor is None or cursor == job.planning.cursor:
            return  # waiting for the inventory's notice
        buckets = sorted(set(job.planning.buckets) | {vault_link(vault)})
        planning = replace(job.planning, cursor=cursor, step=step + 1, buckets=buckets)
        if self.store.save_planning(job.job_id, step, planning) and cursor.get("named"):
            self.queues.send_plan_step(job.job_id, step + 1)  # the archives are named: plan them

    def _launch(self, job: RestoreJob) -> None:
        if job.engine == "batch" and self.batch is not None:
            self.batch.launch_when_accounted(job.job_id)

    def _stop(self, job: RestoreJob) -> None:
        """The job has ended (cancelled, timed out): plan no more of it, and say so, so that its
        terminal event knows no chunk is still to come."""
        if job.planning.over:
            return
        if self.store.save_planning(job.job_id, job.planning.step, replace(job.planning, stopped=True)):
            logger.info("planning stopped: the job has ended", extra={"job_id": job.job_id, "status": job.status.value})
            self.notifier.evaluate(job.job_id)

    def _plan(self, job: RestoreJob, remaining_ms: Callable[[], int], sent: list[int]) -> PlanningState:
        start = job.planning
        buckets = list(start.buckets)
        outgoing: list[dict[str, Any]] = []
        chunks_emitted = start.chunks_emitted
        lines_this_step = 0
        position: dict[str, Any] = {"byte_offset": start.byte_offset, "cursor": dict(start.cursor)}
        line_no = start.lines_read
        chunk: _Chunk | None = None
        finished = True
        versioned_line = start.versioned_line
        inventory = job.source_type == "s3-inventory"

        def flush(c: _Chunk) -> None:
            nonlocal chunks_emitted
            if not c.rows and not c.errors and not c.skipped:
                return
            for row in c.rows if c.vault is None else []:
                bucket = row[1]
                # A bucket outside the allow-list is never touched: its rows fail in the restorer.
                if bucket not in buckets and self.s3.may_touch(bucket):
                    # A manifest's rows all have a version id or none has (the first valid row said
                    # which): its objects' refs take one form. Other sources may mix both.
                    versioned = versioned_line > 0 if source == "manifest" and versioned_line else None
                    self._register_bucket(job.job_id, bucket, versioned=versioned)
                    buckets.append(bucket)
            outgoing.append(c.message(job.job_id))
            chunks_emitted += 1
            if len(outgoing) >= SEND_EVERY_CHUNKS:
                self._send(job, outgoing, sent)

        source = job.source_type
        vault = {"vault": str(job.source["vault"]), "bucket": str(job.source["target"]["bucket"])} if job.is_vault else None
        # A vault job's daily byte quota: chunks go out while the day's bytes are under it (checked
        # between chunks, so a day may pass it by one chunk's archives), then planning pauses to the next UTC day.
        quota = int(job.source.get("max_bytes_per_day") or 0) if vault is not None else 0
        today = self.now().date().isoformat()
        day_bytes = int(start.cursor.get("day_bytes") or 0) if start.cursor.get("day") == today else 0
        paused = False
        if vault is not None:
            self._register_vault(job.job_id, vault["vault"], buckets)  # its notices find the job
        rows = (
            self._vault_rows(job)
            if vault is not None
            else self._inventory_rows(job)
            if inventory
            else self._prefix_rows(job)
            if source == "prefix"
            else self._csv_rows(job)
        )
        for number, row, after, kind in rows:
            chunk_number = (number - 1) // LINES_PER_CHUNK
            if chunk is None or chunk_number != chunk.number:
                if chunk is not None:
                    flush(chunk)
                    if quota and day_bytes >= quota:
                        finished, paused = False, True
                        break
                    if lines_this_step >= self.lines_per_step or remaining_ms() < self.reserve_ms:
                        finished = False
                        break
                elif quota and day_bytes >= quota:  # the day's quota was used before this step
                    finished, paused = False, True
                    break
                chunk = _Chunk(chunk_number, vault=vault)
            if isinstance(row, VaultSkip):
                chunk.skipped.append([row.line, row.archive_id, row.reason])
                lines_this_step += 1
                position, line_no = after, number
                continue
            if isinstance(row, VaultRow):
                if row.archive_id not in chunk.refs:
                    chunk.refs.add(row.archive_id)
                    chunk.rows.append([row.line, row.archive_id, row.key, row.fields])
                    day_bytes += int(row.fields.get("size") or 0)
                lines_this_step += 1
                position, line_no = after, number
                continue
            if isinstance(row, ManifestEntry) and source == "manifest":
                row, versioned_line = check_versioning(row, versioned_line)
            elif isinstance(row, ManifestEntry) and versioned_line == 0:
                versioned_line = number if row.object.version_id else -number
            if isinstance(row, ManifestEntry):
                if row.object.bucket not in buckets and self.s3.may_touch(row.object.bucket) and len(buckets) >= MAX_BUCKETS_PER_JOB:
                    row = ManifestError(number, f"more than {MAX_BUCKETS_PER_JOB} distinct buckets in one job: split the manifest")
                elif (ref := row.object.ref) not in chunk.refs:
                    chunk.refs.add(ref)
                    # The object's kind for the batch engine's manifests, when the source says it.
                    chunk.rows.append([row.line, row.object.bucket, row.object.key, row.object.version_id] + ([kind] if kind else []))
            if isinstance(row, ManifestError):
                chunk.errors.append([row.line, row.message, row.raw])
            elif isinstance(row, InventorySkip):
                obj = ObjectId(row.bucket, row.key, row.version_id)
                if obj.ref not in chunk.refs:
                    chunk.refs.add(obj.ref)
                    chunk.skipped.append([number, row.bucket, row.key, row.version_id, row.reason])
            lines_this_step += 1
            position, line_no = after, number
        else:
            if chunk is not None:
                flush(chunk)
        self._send(job, outgoing, sent)
        cursor = dict(position.get("cursor") or {})
        if quota:
            cursor.pop("paused_until", None)
            cursor |= {"day": today, "day_bytes": day_bytes}
            if paused:
                cursor["paused_until"] = (datetime.combine(self.now().date() + timedelta(days=1), dt_time(0), UTC)).isoformat()
        return replace(
            start,
            byte_offset=int(position.get("byte_offset", start.byte_offset)),
            cursor=cursor,
            lines_read=line_no,
            chunks_emitted=chunks_emitted,
            step=start.step + 1,
            done=finished,
            buckets=buckets,
            versioned_line=versioned_line,
        )

    def _csv_rows(self, job: RestoreJob) -> Iterator[tuple[int, Any, dict[str, Any], str]]:
        """(line, parsed row or None for a header, where the next line starts, "": the kind unknown) of a CSV manifest."""
        start = job.planning
        for raw in iter_lines(self.s3.stream_manifest(job.manifest, start.byte_offset), start.byte_offset, start.lines_read):
            if raw.too_long:
                row: Any = too_long_error(raw.number, raw.data)
            elif raw.number == 1 and header_row(1, raw.data):
                row = None  # a header row names the columns, no object (the job's notes say so)
            else:
                row = parse_row(raw.number, raw.data)
            yield raw.number, row, {"byte_offset": raw.end_offset}, ""

    def _prefix_rows(self, job: RestoreJob) -> Iterator[tuple[int, Any, dict[str, Any], str]]:
        """(row number, entry or skip, the cursor after it, the object's kind: "archive" or "" when
        the listing cannot tell, as for Intelligent-Tiering, whose access tier it does not give) of the
        objects under a prefix, page by page. The cursor is the page's marker and the place in it:
        a step that stops mid-page lists that page again and goes on after the same entry."""
        start = job.planning
        src = job.source
        bucket, prefix, versions = str(src["bucket"]), str(src.get("prefix", "")), bool(src.get("include_versions"))
        wanted = set(src.get("storage_classes") or ()) or {"GLACIER", "DEEP_ARCHIVE", "INTELLIGENT_TIERING"}
        marker = dict(start.cursor.get("marker") or {}) if isinstance(start.cursor.get("marker"), dict) else {}
        skip = int(start.cursor.get("index", 0))
        number = start.lines_read
        while True:
            items, following = self.s3.list_page(bucket, prefix, versions, marker)
            for index in range(skip, len(items)):
                item = items[index]
                number += 1
                after = (
                    {"cursor": {"marker": marker, "index": index + 1}}
                    if index + 1 < len(items)
                    else {"cursor": {"marker": following or {}, "index": 0, "end": following is None}}
                )
                obj = ObjectId(bucket, item["Key"], item["VersionId"] if versions else None)
                storage_class = item["StorageClass"]
                row: Any
                if item["DeleteMarker"]:
                    row = InventorySkip(
                        number, bucket, obj.key, obj.version_id, SkipCode.DELETE_MARKER, "a delete marker: it has no data to restore"
                    )
                elif storage_class not in wanted:
                    archived = storage_class in ("GLACIER", "DEEP_ARCHIVE", "INTELLIGENT_TIERING")
                    why = (
                        f"{storage_class} is not one of the storage classes asked for"
                        if archived
                        else f"not archived: {storage_class} is readable at once"
                    )
                    row = InventorySkip(number, bucket, obj.key, obj.version_id, SkipCode.NOT_ARCHIVED, why, storage_class)
                else:
                    row = ManifestEntry(number, obj)
                yield number, row, after, ARCHIVE_GROUP if storage_class in ("GLACIER", "DEEP_ARCHIVE") else ""
            if following is None:
                return
            marker, skip = following, 0

    def _vault_rows(self, job: RestoreJob) -> Iterator[tuple[int, Any, dict[str, Any], str]]:
        """(number, VaultRow or ManifestError, the position after it, "") of a vault job's archives:
        the ids given in the request, or a manifest of archive ids (one per line; the first column of
        a CSV such as a vault inventory's, its header skipped)."""
        start = job.planning
        src = job.source
        prefix = str(src["target"].get("prefix") or "")
        limit = int(src.get("max_archives") or 0)
        named = start.cursor.get("named")
        if named and self.vault is not None:  # the vault's inventory, named: [archive id, key, fields] per line
            for raw in iter_lines(
                self.s3.read_work_object(self.vault.work_bucket, str(named), start.byte_offset), start.byte_offset, start.lines_read
            ):
                if limit and raw.number > limit:
                    return
                archive_id, key, fields = json.loads(raw.data)
                row: Any = (
                    VaultSkip(raw.number, archive_id, str(fields["skip"]))
                    if "skip" in fields
                    else VaultRow(raw.number, archive_id, key, fields)
                    if archive_id
                    else ManifestError(raw.number, str(fields.get("error")), str(fields.get("raw", "")))
                )
                yield raw.number, row, {"byte_offset": raw.end_offset, "cursor": dict(start.cursor)}, ""
            return
        if src.get("archives") is not None:
            ids: Iterator[tuple[int, str, int]] = (
                (n, str(a), 0) for n, a in enumerate(src["archives"][start.lines_read :], start.lines_read + 1)
            )
        else:
            ids = (
                (raw.number, raw.data.decode("utf-8", "replace"), raw.end_offset)
                for raw in iter_lines(self.s3.stream_manifest(job.manifest, start.byte_offset), start.byte_offset, start.lines_read)
            )
        for number, text, end in ids:
            if limit and number > limit:
                return
            # None: a header or an empty line, no archive
            yield number, vault_manifest_row(number, text, prefix), {"byte_offset": end}, ""

    def _inventory_rows(self, job: RestoreJob) -> Iterator[tuple[int, Any, dict[str, Any], str]]:
        """(row number over the whole report, entry / skip / error, the cursor after it, the
        object's kind: "archive", "intelligent-tiering" or "" when the report cannot tell) of an S3 Inventory report."""
        start = job.planning
        _, data = self.s3.read_inventory_manifest(job.manifest.bucket, job.manifest.key)
        try:
            manifest = parse_inventory_manifest(data)
        except InventoryError as exc:
            raise ManifestUnreadable(f"the inventory manifest.json can no longer be read: {exc.message}") from exc
        parquet = manifest.file_format is FileFormat.PARQUET

        def opener(info: InventoryFile) -> Any:
            return self.s3.inventory_file(manifest.destination_bucket, info.key, seekable=parquet)

        latest_only = not job.source.get("include_versions")
        number = start.lines_read
        try:
            for item in iter_report(manifest, opener, InventoryCursor.from_dict(start.cursor), latest_only=latest_only):
                number += 1
                result = item.result
                row: Any
                kind = ""
                if isinstance(result, InventoryEntry):
                    groups: dict[bool | None, str] = {True: ARCHIVE_GROUP, False: IT_GROUP if result.access_tier else ""}
                    kind = groups.get(result.takes_days, "")
                    obj = result.object
                    if manifest.has_versions and obj.version_id is None:
                        obj = ObjectId(obj.bucket, obj.key, "null")  # an object stored before versioning
                    row = ManifestEntry(number, obj)
                elif isinstance(result, InventorySkip):
                    row = result
                else:
                    row = result.as_manifest_error(number)
                yield number, row, {"cursor": item.next_cursor.as_dict()}, kind
        except InventoryError as exc:
            raise ManifestUnreadable(f"the inventory report can no longer be read: {exc.message}") from exc

    def _send(self, job: RestoreJob, outgoing: list[dict[str, Any]], sent: list[int]) -> None:
        if not outgoing:
            return
        if job.status is JobStatus.PLANNING:
            self.store.mark_restoring(job.job_id)
            job.status = JobStatus.RESTORING
        self.queues.send_chunks(outgoing)
        sent.extend(int(message["chunk"]) for message in outgoing)
        outgoing.clear()

    def _register_vault(self, job_id: str, vault: str, buckets: list[str]) -> None:
        """Link the job to its vault, once (``buckets``: the links made so far, extended): Glacier's notices find it."""
        if vault_link(vault) not in buckets:
            self._register_bucket(job_id, vault_link(vault), eventbridge=False)
            buckets.append(vault_link(vault))

    def _register_bucket(self, job_id: str, bucket: str, eventbridge: bool = True, versioned: bool | None = None) -> None:
        """Before the first restore in a bucket: completion events must find this job, and must be sent."""
        self.store.register_bucket(job_id, bucket, versioned)
        if self.manage_eventbridge and eventbridge:
            try:
                self.s3.ensure_eventbridge(bucket)
            except Exception as exc:
                logger.warning("could not turn on EventBridge for bucket", extra={"job_id": job_id, "bucket": bucket, "error": str(exc)})
