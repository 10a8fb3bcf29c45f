"""Glacier vault archives into S3: retrieval jobs, their notices, and part-by-part transfers.

An archive of a vault job is an object of the job like any other (one item, one state, the same
counters), named by its vault and archive id (``domain.model.archive_ref``). Its way:

1. **Requested** (restore worker): the chunk's archives are recorded RESTORING first, then an
   archive-retrieval job is initiated for each (InitiateJob at the job's tier, notifying the
   stack's vault topic) and its id noted on the archive. Recording first means a notice always
   finds its archive, and a chunk replayed after a crash initiates only the archives that have no
   retrieval job yet. Capacity, policy and throttling answers are retried with backoff, then the
   chunk is retried; an archive the vault does not have is FAILED with that reason.
2. **Output ready** (completion worker): Glacier's notice (SNS to the completion queue) starts the
   transfer once: a multipart upload under the target with the archive's metadata (one per object
   when an archive over S3's 5 TiB limit is split, as the job may ask), its plan (tree-hash-aligned
   parts, AWS's part size rule) recorded on the archive with a condition, so a second notice or
   delivery starts nothing; then one queue message per part.
3. **Parts** (transfer worker, one part per message): a ranged GetJobOutput, its tree hash checked
   against Glacier's header, UploadPart with the part's SHA-256 (S3 checks it), the part's ETag,
   checksum and tree hash recorded on an item of its own, counted on the archive's item in the same
   transaction (so a count never misses or repeats a part). A part already recorded is not moved again, so
   an interrupted transfer resumes from its last verified part. A part whose tree hash does not
   match is retried; after ``attempts`` mismatches the archive is FAILED and its upload aborted:
   never stored as good. An expired output is retrieved again (a new job; the parts stored stay).
4. **Complete**: when every part is recorded, the parts' tree hashes are combined into each
   object's, the objects' into the archive's, and compared with the one Glacier holds; only then
   CompleteMultipartUpload (of each object), and the
   archive becomes RESTORED with its bytes added to the job's counters, in one transaction.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

from bulk_restore.adapters.dynamodb import DynamoJobStore, ObjectRecord
from bulk_restore.adapters.glacier import ArchiveNotFound, ArchiveRefused, GlacierVaults, OutputExpired
from bulk_restore.adapters.s3 import S3Gateway
from bulk_restore.adapters.sqs import QueueGateway
from bulk_restore.domain.events import VaultJobNotice, parse_vault_notice
from bulk_restore.domain.external_sort import RUN_LINES, RunWriter, merge_runs, read_lines
from bulk_restore.domain.model import ManifestLocation, ObjectState, RestoreJob, archive_ref, vault_link
from bulk_restore.domain.vault import (
    ArchiveFilter,
    ArchivePlan,
    ArchiveTooLarge,
    KeyFrom,
    KeyRules,
    NamingRecord,
    TransferPlan,
    TreeHashMismatch,
    VaultArchive,
    VaultError,
    VaultRowError,
    archive_key_for,
    iter_vault_inventory,
    looks_like_dedup_key,
    name_group,
    object_metadata,
    plan_archive,
    read_name_overrides,
)
from bulk_restore.usecases.metrics import NO_METRICS, Metrics, count_moved, count_stored
from bulk_restore.usecases.notify import Notifier

logger = Logger(child=True)


RENEW_AFTER_SECONDS = 19 * 3600


def archive_filter(spec: dict[str, Any] | None) -> ArchiveFilter | None:
    """The job's ``filter`` (created_from, created_before: ISO 8601; min_size, max_size: bytes)."""
    if not spec:
        return None
    when = {
        name: datetime.fromisoformat(str(spec[name]).replace("Z", "+00:00"))
        for name in ("created_from", "created_before")
        if spec.get(name)
    }
    return ArchiveFilter(
        **when, min_size=int(spec.get("min_size") or 0), max_size=int(spec["max_size"]) if spec.get("max_size") is not None else None
    )


class InventoryFailed(Exception):
    """The vault's inventory could not be retrieved: the job fails with this reason."""


def name_inventory(
    items: Iterable[VaultArchive | VaultRowError],
    rules: KeyRules,
    workdir: str,
    run_lines: int = RUN_LINES,
    overrides: Mapping[str, str] | None = None,
) -> tuple[int, int, Iterator[str]]:
    """Name a vault's archives in flat memory, whatever its size: (archives, entries, the named
    list's lines), one JSON line per entry: ``[archive id, unique key, fields]``, or
    ``["", "", {"error", "raw"}]`` for an entry that is no archive.

    Pass 1 (now) reads ``items`` once: each archive's key (``archive_key_for``) and its line go, as
    ``<NamingRecord.sort_key>\\t<JSON>``, into sorted runs of ``run_lines`` in ``workdir``; the keys
    that ``looks_like_dedup_key`` are kept (``reserved``, a few); error lines go to a file as they
    come. Pass 2 (as the lines are read) merges the runs, names each group of archives sharing a
    key with ``name_group`` and yields their lines in key order, then the error lines. Memory: one
    run, then the largest group sharing a key. ``workdir`` must outlive the lines' reading."""
    runs = RunWriter(workdir, run_lines)
    reserved: set[str] = set()
    errors = os.path.join(workdir, "errors")
    archives = entries = 0
    with open(errors, "w", encoding="utf-8", errors="surrogatepass", newline="\n") as out:
        for entry in items:
            entries += 1
            if isinstance(entry, VaultArchive):
                archives += 1
                record = entry.naming(archive_key_for(entry, rules, overrides).key)
                if looks_like_dedup_key(record.key):
                    reserved.add(record.key)
                fields = {
                    "size": entry.size,
                    "created": entry.creation_date,
                    "tree_hash": entry.tree_hash,
                    "description": entry.description,
                }
                runs.add(f"{record.sort_key}\t{json.dumps([record.created_at.isoformat(), fields], ensure_ascii=False)}")
            else:
                out.write(
                    json.dumps(
                        ["", "", {"error": f"inventory entry {entry.index + 1}: {entry.message}", "raw": entry.raw[:200]}],
                        ensure_ascii=False,
                    )
                    + "\n"
                )
    return archives, entries, _named_lines(merge_runs(runs.finish()), reserved, errors)


def _named_lines(merged: Iterator[str], reserved: set[str], errors: str) -> Iterator[str]:
    # A sort key is "<key>\0<creation time>\0<archive id>" (keys hold no control characters), so
    # the lines of one key come together.
    for _, group in itertools.groupby(merged, key=lambda line: line.split("\x00", 1)[0]):
        members: list[NamingRecord] = []
        fields: dict[int, Any] = {}
        for line in group:
            sort_key, payload = line.split("\t", 1)
            key, _, archive_id = sort_key.split("\x00")
            created, fields_of = json.loads(payload)
            record = NamingRecord(key, datetime.fromisoformat(created), archive_id)
            members.append(record)
            fields[id(record)] = fields_of
        for record, unique in name_group(members, reserved):
            yield json.dumps([record.archive_id, unique, fields[id(record)]], ensure_ascii=False)
    yield from read_lines(errors)


class VaultMover:
    metrics: Metrics = NO_METRICS  # what it counts (archives stored, bytes moved, failures); wiring sets it

    def __init__(
        self,
        store: DynamoJobStore,
        s3: S3Gateway,
        glacier: GlacierVaults,
        queues: QueueGateway,
        notifier: Notifier,
        topic_arn: str = "",
        part_bytes: int = 1 << 30,
        attempts: int = 3,
        concurrency: int = 16,
        work_bucket: str = "",
        time_scale: float = 1.0,
        clock: Callable[[], float] = time.time,
    ):
        self.store = store
        self.s3 = s3
        self.glacier = glacier
        self.queues = queues
        self.notifier = notifier
        self.topic_arn = topic_arn  # the stack's vault notification topic
        self.part_bytes = part_bytes
        self.attempts = attempts
        self.concurrency = concurrency
        self.work_bucket = work_bucket  # the stack's report bucket: a vault job's named archive list
        # A retrieval's output is kept 24 h: one whose parts are not all moved 19 h after it was ready
        # is retrieved again beforehand (AWS's vault-transfer solution does the same at 19 h).
        self.renew_after_seconds = RENEW_AFTER_SECONDS * time_scale
        self.clock = clock

    # ---- 1. requested ---------------------------------------------------------------------

    def _retrieve(self, job: RestoreJob, archive: dict[str, Any]) -> str:
        """InitiateJob for an archive at the job's tier, notifying the stack's vault topic; the Glacier job id."""
        return self.glacier.initiate_with_retries(
            archive["vault"], archive["id"], job.tier.value, topic_arn=self.topic_arn or None, description=f"bulk-restore {job.job_id}"
        )

    def request(self, job: RestoreJob, records: Iterable[ObjectRecord]) -> None:
        """Initiate a retrieval job for each RESTORING archive that has none yet."""
        todo = [r for r in records if r.state is ObjectState.RESTORING and not r.archive.get("glacier_job") and not r.archive.get("upload")]
        if not todo:
            return

        def one(record: ObjectRecord) -> tuple[ObjectRecord, str]:
            archive = record.archive
            try:
                glacier_job = self._retrieve(job, archive)
            except ArchiveNotFound:
                return record, "the archive is not in the vault (ResourceNotFoundException)"
            except ArchiveRefused as exc:
                return record, f"Glacier refused the retrieval: {exc}"
            self.store.set_glacier_job(job.job_id, record.ref, glacier_job)
            return record, ""

        if len(todo) > 1 and self.concurrency > 1:
            with ThreadPoolExecutor(max_workers=min(self.concurrency, len(todo))) as pool:
                results = list(pool.map(one, todo))
        else:
            results = [one(r) for r in todo]
        for record, reason in results:
            if reason:
                count_moved(self.metrics, ObjectState.FAILED, self.store.transition(job.job_id, [record], ObjectState.FAILED, reason))
        logger.info("vault retrievals initiated", extra={"job_id": job.job_id, "archives": len(todo)})

    # ---- 0. the vault's inventory (a job with "inventory": true) ---------------------------

    def inventory_step(self, job: RestoreJob) -> dict[str, Any] | None:
        """The planner's step before any archive is planned: the planning cursor to save next, or
        None when the archives can be planned (the named list is written). First an inventory
        retrieval is initiated; its notice (or, when the notice is lost, DescribeJob at the next
        step the sweeper asks for) lets the next step read the inventory and name every archive."""
        cursor = dict(job.planning.cursor)
        vault = str(job.source["vault"])
        if cursor.get("named"):
            return None
        if not cursor.get("inventory_job"):
            try:
                glacier_job = self.glacier.initiate_inventory_retrieval(
                    vault, "JSON", topic_arn=self.topic_arn or None, description=f"bulk-restore {job.job_id}"
                )
            except ClientError as exc:  # throttling was raised as RetryLater: the step is retried
                error = exc.response.get("Error", {})
                if error.get("Code") == "ResourceNotFoundException":
                    raise InventoryFailed(
                        f"vault {vault} has no inventory yet (Glacier takes one about a day after a vault's first "
                        "upload): create the job again then, or name the archives (archives, or a manifest of "
                        "archive ids)"
                    ) from exc
                raise InventoryFailed(
                    f"Glacier refused the inventory retrieval of vault {vault}: {error.get('Code')}: {error.get('Message')}"
                ) from exc
            return {"inventory_job": glacier_job}
        if not cursor.get("inventory_ready"):
            described = self.glacier.describe_job(vault, str(cursor["inventory_job"]))
            if described is None or not described.get("Completed"):
                return cursor  # still waiting (or gone: its notice or the sweeper's next ask starts again)
            if described.get("StatusCode") != "Succeeded":
                raise InventoryFailed(
                    f"the vault's inventory retrieval {cursor['inventory_job']} failed: "
                    f"{described.get('StatusMessage') or 'no reason given'}"
                )
        key, count = self.name_archives(job, str(cursor["inventory_job"]))
        return {"named": key, "archives": count}

    def on_inventory_notice(self, notice: VaultJobNotice, job_ids: Iterable[str]) -> set[str]:
        """An inventory retrieval finished: the job waiting for it (among ``job_ids``, the vault's) plans its next step now."""
        touched = set()
        for job_id in job_ids:
            job = self.store.get_job(job_id)
            if job is None or not job.is_vault or job.planning.cursor.get("inventory_job") != notice.job_id:
                continue
            if job.planning.cursor.get("inventory_ready") or job.planning.cursor.get("named"):
                continue
            touched.add(job_id)
            if not notice.succeeded:
                self.store.save_planning(job_id, job.planning.step, replace(job.planning, stopped=True))
                self.notifier.fail(
                    job_id, f"the vault's inventory retrieval {notice.job_id} failed: {notice.status_message or 'no reason given'}"
                )
                continue
            ready = replace(job.planning, cursor={**job.planning.cursor, "inventory_ready": True, "inventory_bytes": notice.size})
            if self.store.save_planning(job_id, job.planning.step, ready):
                self.queues.send_plan_step(job_id, job.planning.step)
        return touched

    def name_archives(self, job: RestoreJob, inventory_job: str) -> tuple[str, int]:
        """Read the vault's inventory (streamed), name every archive (from its description, or its
        id), settle duplicate names (the oldest keeps the name), and write the list the planner
        plans from: one JSON line per inventory entry, archives in key order, then the entries
        that are no archive. In flat memory (``name_inventory``: sorted runs in /tmp, merged while
        the list is uploaded part by part). Returns (its key, entries)."""
        vault = str(job.source["vault"])
        target = job.source["target"]
        rules = KeyRules(prefix=str(target.get("prefix") or ""), key_from=KeyFrom(str(job.source.get("key_from") or "description")))
        key = f"vault/{job.job_id}/archives.jsonl"
        chosen = archive_filter(job.source.get("filter"))
        with tempfile.TemporaryDirectory(prefix="naming-") as workdir:
            left_out = os.path.join(workdir, "left-out")
            with open(left_out, "w", encoding="utf-8", errors="surrogatepass", newline="\n") as skipped:

                def selected() -> Iterator[VaultArchive | VaultRowError]:
                    for item in iter_vault_inventory(self.glacier.inventory_blocks(vault, inventory_job)):
                        entry = item.result
                        reason = chosen.exclusion(entry) if chosen is not None and isinstance(entry, VaultArchive) else None
                        if reason is None or not isinstance(entry, VaultArchive):  # only an archive is given a reason
                            yield entry
                        else:  # left out by the job's filter: SKIPPED with the reason, never named
                            skipped.write(json.dumps([entry.archive_id, "", {"skip": f"left out by the filter: {reason}"}]) + "\n")

                archives, entries, lines = name_inventory(selected(), rules, workdir, overrides=self._overrides(job))
            with open(left_out, encoding="utf-8", errors="surrogatepass") as skipped_lines:
                everything = itertools.chain(lines, (line.rstrip("\n") for line in skipped_lines))
                self.s3.write_work_object_stream(self.work_bucket, key, (f"{line}\n".encode() for line in everything))
        logger.info("vault inventory named", extra={"job_id": job.job_id, "archives": archives, "entries": entries})
        return key, entries

    def _overrides(self, job: RestoreJob) -> dict[str, str] | None:
        """The job's names CSV (archive id -> key), read again as checked at create (same ETag)."""
        spec = job.source.get("overrides")
        if not spec:
            return None
        location = ManifestLocation(str(spec["bucket"]), str(spec["key"]), str(spec.get("etag") or ""), int(spec.get("size") or 0))
        overrides, _ = read_name_overrides(self.s3.stream_manifest(location, 0))
        return overrides

    # ---- 2. output ready ------------------------------------------------------------------

    def on_notices(self, notices: list[VaultJobNotice]) -> tuple[set[str], list[VaultJobNotice]]:
        """Apply a batch of vault job notices (the vaults' jobs read once per batch): the jobs they
        concern, and the notices that failed (each applied alone, so one failure retries only itself)."""
        touched: set[str] = set()
        failed: list[VaultJobNotice] = []
        links = {vault: self.store.jobs_for_bucket(vault_link(vault)) for vault in {n.vault for n in notices}}
        for notice in notices:
            try:
                touched |= self._on_notice(notice, links[notice.vault])
            except Exception:
                logger.exception("Glacier job notice not applied; it will be retried", extra={"glacier_job": notice.job_id})
                failed.append(notice)
        return touched, failed

    def _on_notice(self, notice: VaultJobNotice, job_ids: Iterable[str]) -> set[str]:
        if notice.action == "InventoryRetrieval":
            return self.on_inventory_notice(notice, job_ids)
        touched = set()
        for job_id in job_ids:
            record = self.store.get_object(job_id, archive_ref(notice.vault, notice.archive_id))
            if record is None or record.state is not ObjectState.RESTORING:
                continue
            touched.add(job_id)
            self._output_ready(job_id, record, notice)
        return touched

    def _output_ready(self, job_id: str, record: ObjectRecord, notice: VaultJobNotice) -> None:
        archive = record.archive
        if archive.get("upload"):
            # Started already: by an earlier delivery of this notice, which may have died before it sent
            # the parts; or this is the notice of a retrieval made again after the output expired, or of
            # the spare made before it would. Either way the parts still to move are sent (a part
            # already stored is not moved twice).
            if notice.succeeded and notice.job_id == archive.get("spare_job"):
                adopted = self.store.adopt_spare_job(job_id, record.ref, notice.job_id, int(self.clock()))
                if adopted is not None:
                    self._send_parts(job_id, record.ref, adopted)
                return
            if notice.succeeded and notice.job_id == archive.get("glacier_job"):
                ready = (
                    archive
                    if notice.job_id == archive.get("ready_job")
                    else self.store.mark_output_ready(job_id, record.ref, notice.job_id)
                )
                if ready is not None:
                    self._send_parts(job_id, record.ref, ready)
            return
        if not notice.succeeded:
            self._fail(job_id, record, f"the vault's retrieval job {notice.job_id} failed: {notice.status_message or 'no reason given'}")
            return
        job = self.store.get_job(job_id)
        if job is None:
            return
        try:
            plan = plan_archive(notice.size, split=bool(job.source.get("split_large_archives")), min_part_size=self.part_bytes)
        except (ArchiveTooLarge, VaultError) as exc:
            self._fail(job_id, record, str(exc))
            return
        target = job.source.get("target") or {}
        storage_class = str(target.get("storage_class") or "STANDARD")
        found = self._archive(archive, notice)
        vault_arn, prefix = str(job.source.get("vault_arn") or ""), str(target.get("prefix") or "")
        if plan.objects[0].part_count == 0:  # an empty archive: nothing to retrieve
            metadata = object_metadata(found, vault_arn=vault_arn, key_prefix=prefix)
            self.s3.put_small_object(record.bucket, record.key, b"", storage_class, metadata.metadata)
            self._stored(job_id, record, 0)
            return
        uploads, sidecar = [], None
        for index, part_plan in enumerate(plan.objects):
            key = plan.object_key(record.key, index)
            metadata = object_metadata(found, vault_arn=vault_arn, key_prefix=prefix, plan=part_plan)
            sidecar = sidecar or metadata
            # An upload a delivery of this notice began before it died (unrecorded) is taken up again, not left behind.
            pending = self.s3.pending_uploads(record.bucket, key)
            uploads.append(pending[0] if pending else self.s3.begin_upload(record.bucket, key, storage_class, metadata.metadata))
            for extra in pending[1:]:
                self.s3.abort_upload(record.bucket, key, extra)
        fields: dict[str, Any] = {
            "glacier_job": notice.job_id,
            "ready_job": notice.job_id,
            "ready_at": int(self.clock()),
            "size": notice.size,
            "tree_hash": notice.tree_hash.lower(),
            "upload": uploads[0],
            "part_size": plan.objects[0].part_size,
            "parts_total": sum(o.part_count for o in plan.objects),
            "parts_done": 0,
        }
        if plan.split:  # each object's upload, first byte, size and part size
            fields["objects"] = [
                {"upload": u, "start": o.start, "size": o.size, "part_size": o.part_size}
                for u, o in zip(uploads, plan.objects, strict=True)
            ]
        started = self.store.start_transfer(job_id, record.ref, fields)
        if started is None:  # another delivery of the notice started it
            for index, upload in enumerate(uploads):
                self.s3.abort_upload(record.bucket, plan.object_key(record.key, index), upload)
            return
        if sidecar is not None and sidecar.sidecar_key and sidecar.sidecar_body is not None:
            self.s3.put_small_object(record.bucket, sidecar.sidecar_key, sidecar.sidecar_body, "STANDARD", {})
        self._send_parts(job_id, record.ref, started)
        logger.info(
            "archive transfer started",
            extra={
                "job_id": job_id,
                "archive_id": archive.get("id"),
                "bytes": notice.size,
                "objects": len(plan.objects),
                "parts": fields["parts_total"],
            },
        )

    @staticmethod
    def _archive(archive: dict[str, Any], notice: VaultJobNotice) -> VaultArchive:
        created = str(archive.get("created") or "")
        return VaultArchive(
            index=0,
            archive_id=str(archive["id"]),
            description=str(archive.get("description") or ""),
            creation_date=created,
            created_at=datetime.now(UTC),
            size=notice.size,
            tree_hash=notice.tree_hash.lower(),
        )

    def _send_parts(self, job_id: str, ref: str, archive: dict[str, Any]) -> None:
        """One message per part not recorded yet (``object`` only for a split archive's later objects)."""
        done = {(obj, number) for obj, number, _ in self.store.archive_parts(job_id, ref)} if archive.get("parts_done") else set()
        parts = [
            {"job_id": job_id, "ref": ref, "part": part.number} | ({"object": index} if index else {})
            for index, plan in enumerate(self._plans(archive))
            for part in plan.parts()
            if (index, part.number) not in done
        ]
        if parts:
            self.queues.send_transfer_parts(parts)

    def check(self, job_id: str, records: Iterable[ObjectRecord]) -> None:
        """The sweeper's look at archives still RESTORING (a notice or a part's message may be lost):
        DescribeJob for those waiting on their output; the parts not stored yet sent again for those
        being moved (a part already stored is not moved twice)."""
        for record in records:
            archive = record.archive
            if archive.get("upload") and archive.get("ready_job") == archive.get("glacier_job"):
                self._send_parts(job_id, record.ref, archive)
                if not archive.get("spare_job") and self.clock() - float(archive.get("ready_at") or 0) >= self.renew_after_seconds:
                    self._spare(job_id, record)
            elif archive.get("glacier_job"):
                described = self.glacier.describe_job(archive["vault"], archive["glacier_job"])
                if described is None:  # unknown to Glacier (expired or never made): retrieve again
                    job = self.store.get_job(job_id)
                    if job is not None:
                        self.request(job, [replace(record, archive={k: v for k, v in archive.items() if k != "glacier_job"})])
                    continue
                notice = parse_vault_notice(json.dumps(described, default=str))
                if notice is not None and described.get("Completed"):
                    self._output_ready(job_id, record, notice)

    def _spare(self, job_id: str, record: ObjectRecord) -> None:
        """A new retrieval of an archive whose output will expire before its parts are all moved;
        the parts go on from the current output meanwhile, and from the spare's once it is ready."""
        job = self.store.get_job(job_id)
        if job is None:
            return
        archive = record.archive
        spare = self._retrieve(job, archive)
        if self.store.set_spare_job(job_id, record.ref, archive["glacier_job"], spare):
            logger.info(
                "archive output near its 24-hour end: retrieved again",
                extra={"job_id": job_id, "archive_id": archive["id"], "glacier_job": spare},
            )

    # ---- 3. parts -------------------------------------------------------------------------

    def transfer(self, message: dict[str, Any]) -> None:
        """Move one part of an archive (a message of the transfer queue). Raises to be retried."""
        job_id, ref, number, index = str(message["job_id"]), str(message["ref"]), int(message["part"]), int(message.get("object") or 0)
        record = self.store.get_object(job_id, ref)
        if record is not None and record.state.is_final:
            # Stored (or failed) by an earlier delivery, which may have died before the job was
            # evaluated: evaluate it (idempotent), or the job would wait for nothing.
            self.notifier.evaluate(job_id)
            return
        if record is None or not record.archive.get("upload"):
            return  # a message of an upload that is no more
        archive = record.archive
        if archive.get("ready_job") != archive.get("glacier_job"):
            return  # retrieved again after its output expired: the new job's notice sends the parts still to move
        plans = self._plans(archive)
        if index >= len(plans):
            return  # not a part of this archive's plan
        if self.store.archive_part(job_id, ref, index, number) is None:
            plan = plans[index]
            part = plan.part(number)
            try:
                # The retrieval is of the whole archive: its output holds each byte at its archive offset.
                data, tree_hash = self.glacier.get_verified_range(
                    archive["vault"], archive["glacier_job"], part.start, part.end, plan.archive_size
                )
            except TreeHashMismatch as exc:
                what = f"part-{number}" if not index else f"object-{index + 1}-part-{number}"
                tries = self.store.note_attempt(job_id, ref, what)
                if tries >= self.attempts:
                    self._fail(
                        job_id,
                        record,
                        f"{self._part_name(plans, index, number)} (bytes {part.archive_range}) failed its tree hash "
                        f"check {tries} times: {exc}",
                    )
                    return
                raise
            except OutputExpired:
                self._retrieve_again(job_id, record)
                return
            checksum = base64.b64encode(hashlib.sha256(data).digest()).decode("ascii")
            key, upload = self._object_of(record, archive, index)
            etag = self.s3.upload_part(record.bucket, key, upload, number, data, checksum)
            if self.store.record_part(job_id, ref, index, number, {"etag": etag, "sha256": checksum, "tree_hash": tree_hash}) is None:
                return  # the archive is no longer moving (failed meanwhile)
            now = self.store.get_object(job_id, ref)
            if now is None or now.state.is_final:
                return
            archive = now.archive
        if int(archive.get("parts_done") or 0) >= int(archive["parts_total"]):
            self._complete(job_id, record, archive)

    @staticmethod
    def _part_name(plans: list[TransferPlan], index: int, number: int) -> str:
        return f"part {number}" if len(plans) == 1 else f"part {number} of object {index + 1} of {len(plans)}"

    @staticmethod
    def _plans(archive: dict[str, Any]) -> list[TransferPlan]:
        """The archive's objects' transfer plans, as recorded when its transfer started."""
        size = int(archive["size"])
        objects = archive.get("objects")
        if not objects:
            return [TransferPlan(size, 0, size, int(archive["part_size"]))]
        return [TransferPlan(size, int(o["start"]), int(o["size"]), int(o["part_size"]), i, len(objects)) for i, o in enumerate(objects)]

    @staticmethod
    def _object_of(record: ObjectRecord, archive: dict[str, Any], index: int) -> tuple[str, str]:
        """Object ``index`` of the archive: its key and upload id."""
        objects = archive.get("objects")
        if not objects:
            return record.key, str(archive["upload"])
        plan = ArchivePlan(int(archive["size"]), tuple(VaultMover._plans(archive)))
        return plan.object_key(record.key, index), str(objects[index]["upload"])

    def _retrieve_again(self, job_id: str, record: ObjectRecord) -> None:
        """The retrieval job's output has expired: a new job; its notice resends the parts not stored yet.
        The other parts' messages find the archive switched to the new job and wait for its notice."""
        job = self.store.get_job(job_id)
        now = self.store.get_object(job_id, record.ref)
        if job is None or now is None or now.archive.get("glacier_job") != record.archive.get("glacier_job"):
            return
        if now.archive.get("spare_job"):
            return  # a spare retrieval is on its way: its notice sends the parts still to move
        archive = record.archive
        new = self._retrieve(job, archive)
        if self.store.switch_glacier_job(job_id, record.ref, archive["glacier_job"], new):
            logger.info(
                "archive output expired: retrieved again", extra={"job_id": job_id, "archive_id": archive["id"], "glacier_job": new}
            )

    # ---- 4. complete ----------------------------------------------------------------------

    def _complete(self, job_id: str, record: ObjectRecord, archive: dict[str, Any]) -> None:
        """Every part is recorded: each object's parts' tree hashes combine into the object's, the
        objects' into the archive's, compared with Glacier's; only then is each upload completed."""
        plans = self._plans(archive)
        parts: list[dict[int, dict[str, Any]]] = [{} for _ in plans]
        for index, number, info in self.store.archive_parts(job_id, record.ref):
            if index < len(parts):
                parts[index][number] = info
        if any(set(found) != set(range(1, plan.part_count + 1)) for found, plan in zip(parts, plans, strict=True)):
            return  # a part's record is not readable yet; its own delivery completes the archive
        hashes = [
            plan.object_tree_hash(found[n]["tree_hash"] for n in range(1, plan.part_count + 1))
            for found, plan in zip(parts, plans, strict=True)
        ]
        combined = ArchivePlan(int(archive["size"]), tuple(plans)).archive_tree_hash(hashes)
        if combined != archive["tree_hash"]:
            self._fail(
                job_id, record, f"the parts' tree hashes combine to {combined}, not the archive's {archive['tree_hash']}: not stored"
            )
            return
        for index, (found, plan) in enumerate(zip(parts, plans, strict=True)):
            key, upload = self._object_of(record, archive, index)
            numbered = [(n, found[n]["etag"], found[n]["sha256"]) for n in range(1, plan.part_count + 1)]
            self.s3.complete_upload(record.bucket, key, upload, numbered, archive["tree_hash"])
        self._stored(job_id, record, int(archive["size"]))

    def _stored(self, job_id: str, record: ObjectRecord, size: int) -> None:
        if self.store.transition(job_id, [record], ObjectState.RESTORED, sizes={record.ref: size}):
            count_stored(self.metrics, size)
            logger.info("archive stored", extra={"job_id": job_id, "archive_id": record.archive.get("id"), "bytes": size})
        self.notifier.evaluate(job_id)

    def _fail(self, job_id: str, record: ObjectRecord, reason: str) -> None:
        if record.archive.get("upload"):
            for index in range(len(record.archive.get("objects") or [None])):
                key, upload = self._object_of(record, record.archive, index)
                self.s3.abort_upload(record.bucket, key, upload)
        count_moved(self.metrics, ObjectState.FAILED, self.store.transition(job_id, [record], ObjectState.FAILED, reason))
        logger.warning("archive failed", extra={"job_id": job_id, "archive_id": record.archive.get("id"), "reason": reason})
        self.notifier.evaluate(job_id)
