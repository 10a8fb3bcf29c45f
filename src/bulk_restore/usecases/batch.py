"""The batch engine: one S3 Batch Operations job issues a bulk-restore job's restore requests.

Everything else is the direct engine's: the planner reads and cleans the manifest and sends its
chunks; the restore workers record each chunk's objects as RESTORING (without calling S3); the
restore-completed events move them to RESTORED through the same transactions; one terminal event.
What this engine adds:

1. The restore workers, for each chunk the planner cleaned (valid rows, allowed buckets, each
   object once), learn each object's class: from the source when it says (an S3 Inventory
   report, a prefix's listing), else by one HeadObject. A missing object is FAILED and one in no
   archive SKIPPED at once (never a Batch task); one already restoring waits for its event;
   GLACIER and DEEP_ARCHIVE objects go to the "archive" run, Intelligent-Tiering archive objects
   (which take no ExpirationInDays and may not share a Batch job with them) to the
   "intelligent-tiering" run. Each chunk's rows are written, before the chunk is recorded, as
   ``batch/<job>/fragments/<run>/<chunk>.csv`` in the stack's report bucket, in the
   ``S3BatchOperations_CSV_20180820`` format; a replayed chunk writes the same.
2. Once the manifest is planned and every chunk accounted, ``launch`` joins each run's fragments
   into ``batch/<job>/manifest-<run>.csv`` and creates its Batch job (S3InitiateRestoreObject at
   the job's tier, ExpirationInDays for the archive run, the completion report, the job's client
   tag as a Batch job tag, a ClientRequestToken derived from the job and run: a second launch,
   after a crash or by the sweeper, finds the same Batch job).
3. Status changes arrive as CloudTrail ``JobStatusChanged`` events through EventBridge (on the
   completion queue) or, when one is lost, from DescribeJob by the sweeper. When a run ends its
   completion report is read once: each failed task's object becomes FAILED with S3's error
   (SKIPPED when S3 says it is not archived, as with the direct engine);
   Intelligent-Tiering archive objects the run could not restore with ExpirationInDays (S3
   refuses Days for them) go into a second run of their own, without it. A run that Failed or was
   Cancelled ends the job with its failure codes, and its objects whose tasks never ran become
   CANCELLED, saying so.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

from aws_lambda_powertools import Logger

from bulk_restore.adapters.dynamodb import DynamoJobStore, ObjectRecord
from bulk_restore.adapters.s3 import S3Gateway
from bulk_restore.adapters.s3control import BatchOperations
from bulk_restore.domain.batch import (
    ARCHIVE_GROUP,
    IT_GROUP,
    TERMINAL_STATUSES,
    batch_tier,
    client_request_token,
    failure_summary,
    group_parts,
    iter_report_rows,
    manifest_row,
    parse_report_manifest,
    text_lines,
)
from bulk_restore.domain.model import JobStatus, ObjectId, ObjectState, RestoreJob
from bulk_restore.domain.progress import all_accounted
from bulk_restore.usecases.metrics import NO_METRICS, Metrics, count_moved
from bulk_restore.usecases.notify import Notifier

logger = Logger(child=True)

TRANSITION_BATCH = 99
LIST_PAGE = 1000


def _it_refused_days(code: str, message: str) -> bool:
    """S3's answer to ExpirationInDays (Days) for an Intelligent-Tiering archive object."""
    return code == "InvalidArgument" and "days" in message.lower()


class BatchEngine:
    def __init__(
        self,
        store: DynamoJobStore,
        s3: S3Gateway,
        operations: BatchOperations,
        notifier: Notifier,
        work_bucket: str,
        clock: Callable[[], float] = time.time,
        metrics: Metrics = NO_METRICS,
    ):
        self.store = store
        self.s3 = s3
        self.operations = operations
        self.notifier = notifier
        self.bucket = work_bucket
        self.clock = clock
        self.metrics = metrics

    # ---- planning ----------------------------------------------------------------------------

    @staticmethod
    def prefix(job_id: str) -> str:
        return f"batch/{job_id}/"

    def _fragments(self, job_id: str, group: str) -> str:
        return f"{self.prefix(job_id)}fragments/{group}/"

    def write_fragment(self, job_id: str, chunk: int, rows: Iterable[ObjectId], versioned: bool, group: str = ARCHIVE_GROUP) -> int:
        """One chunk's rows for one run; returns how many. An empty one writes nothing."""
        body = "".join(manifest_row(obj, versioned) for obj in rows).encode("utf-8")
        if body:
            self.s3.put_work_object(self.bucket, f"{self._fragments(job_id, group)}{chunk:010d}.csv", body)
        return body.count(b"\n")

    def launch_when_accounted(self, job_id: str) -> None:
        """Launch the job's Batch runs once its manifest is planned and every chunk is accounted
        (the restore workers write the chunks' manifest rows): called after each chunk, idempotent."""
        loaded = self.store.get_job_and_counts(job_id)
        if loaded is None:
            return
        job, counts = loaded
        if job.engine == "batch" and not job.batch_runs and all_accounted(job, counts) and not job.status.is_terminal:
            self.launch(job)

    def launch(self, job: RestoreJob) -> None:
        """Create the job's Batch runs from their fragments (idempotent): the archive run, and an
        Intelligent-Tiering run when the source said which objects are Intelligent-Tiering."""
        if job.status.is_terminal:
            return
        made = False
        for group in (ARCHIVE_GROUP, IT_GROUP):
            run = job.batch_runs.get(group, {})
            if run.get("id") or run.get("status") in TERMINAL_STATUSES:
                made = True
                continue
            fragments = self.s3.list_work_objects(self.bucket, self._fragments(job.job_id, group))
            if not any(size for _, size in fragments):
                continue
            key = f"{self.prefix(job.job_id)}manifest-{group}.csv"
            parts = group_parts([size for _, size in fragments])
            etag = self.s3.join_work_objects(self.bucket, [[fragments[i][0] for i in part] for part in parts], key)
            self._create(job, group, key, etag, expiration_days=job.expiration_days if group == ARCHIVE_GROUP else None)
            made = True
        if not made:
            # Nothing to restore (every row failed, was skipped or refused): no Batch job, no fee.
            self._save(job, ARCHIVE_GROUP, {"id": "", "status": "Complete", "report": True, "failure": "", "tasks": 0})
            self.notifier.evaluate(job.job_id)

    def _create(self, job: RestoreJob, group: str, key: str, etag: str, expiration_days: int | None) -> None:
        versioned = job.planning.versioned_line > 0
        batch_id = self.operations.create_restore_job(
            token=client_request_token(job.job_id, group),
            manifest_bucket=self.bucket,
            manifest_key=key,
            manifest_etag=etag,
            versioned=versioned,
            tier=batch_tier(job.tier),
            expiration_days=expiration_days,
            report_bucket=self.bucket,
            report_prefix=f"{self.prefix(job.job_id)}report-{group}",
            description=f"bulk-restore job {job.job_id} ({group})",
            tags={"bulk-restore:job": job.job_id, "bulk-restore:client-tag": job.client_tag},
        )
        self.store.link_batch_job(batch_id, job.job_id, group)
        self._save(job, group, {"id": batch_id, "status": "New", "manifest": key, "failure": "", "report": False})
        logger.info("S3 Batch Operations job created", extra={"job_id": job.job_id, "batch_job_id": batch_id, "group": group})

    def _save(self, job: RestoreJob, group: str, run: dict[str, Any]) -> None:
        self.store.save_batch_run(job.job_id, group, run)
        job.batch_runs[group] = run

    # ---- status ------------------------------------------------------------------------------

    def on_status(self, batch_job_id: str, status: str, failure_codes: Iterable[str] = (), reason: str = "") -> bool:
        """A Batch job's status change (from its event or DescribeJob). False: not one of ours."""
        owner = self.store.batch_job_owner(batch_job_id)
        if owner is None:
            return False
        job_id, group = owner
        job = self.store.get_job(job_id)
        if job is None:
            return True
        run = dict(job.batch_runs.get(group) or {"id": batch_job_id})
        if run.get("id") and run["id"] != batch_job_id:
            return True  # a Batch job this run no longer follows
        run["id"] = batch_job_id
        if run.get("report"):
            return True  # ended and read already: a late or repeated event
        if status not in TERMINAL_STATUSES:
            if run.get("status") != status:
                self._save(job, group, {**run, "status": status})
            if status == "Suspended":
                # Waiting for a confirmation ours never asks for (someone paused it): confirmed, never left hanging;
                # a job that has ended has its Batch job cancelled instead.
                if job.status.is_terminal:
                    self.operations.cancel(batch_job_id, f"the bulk-restore job has ended ({job.status.value})")
                else:
                    self.operations.confirm(batch_job_id)
                    logger.info("Suspended S3 Batch Operations job confirmed", extra={"job_id": job_id, "batch_job_id": batch_job_id})
            return True
        failure = failure_summary(list(failure_codes)) if status != "Complete" else ""
        if reason and status != "Complete":
            failure = f"{failure} ({reason})" if failure and failure != "no failure reason given" else reason
        self._finish(job, group, {**run, "status": status, "failure": failure})
        return True

    def check(self, job: RestoreJob) -> None:
        """The sweeper's look: launch a run planning finished without, ask S3 for runs not ended."""
        if job.planning.done and not job.batch_runs and not job.status.is_terminal:
            self.launch_when_accounted(job.job_id)
            return
        for _group, run in list(job.batch_runs.items()):
            if run.get("report") or not run.get("id"):
                continue
            described = self.operations.describe(str(run["id"]))
            if not described:
                continue
            status = str(described.get("Status", ""))
            codes = [f"{r.get('FailureCode', '')}: {r.get('FailureReason', '')}".strip(": ") for r in described.get("FailureReasons") or []]
            self.on_status(str(run["id"]), status, codes, str(described.get("StatusUpdateReason") or ""))

    def cancel_runs(self, job_id: str, reason: str) -> None:
        job = self.store.get_job(job_id)
        for run in job.batch_runs.values() if job else ():
            if run.get("id") and run.get("status") not in TERMINAL_STATUSES:
                self.operations.cancel(str(run["id"]), reason)

    # ---- a run's end ---------------------------------------------------------------------------

    def _finish(self, job: RestoreJob, group: str, run: dict[str, Any]) -> None:
        status = run["status"]
        reported, it_rows, failed = self._read_report(job, group, run)
        never_ran = 0
        if status != "Complete" and reported is None and self._no_task_ran(run):
            reported = set()  # no report because no task ran (S3 writes one once a task was invoked)
        if status != "Complete" and reported is not None:  # without a report, the sweeper's HeadObject checks decide
            never_ran = self._never_ran(
                job,
                reported,
                f"its S3 Batch Operations task never ran: the Batch job {run['id']} "
                f"ended {status} ({run.get('failure') or 'no reason given'})",
            )
        self._save(job, group, {**run, "report": True, "failed": failed, "never_ran": never_ran})
        if it_rows and group == ARCHIVE_GROUP and status == "Complete" and IT_GROUP not in job.batch_runs:
            key = f"{self.prefix(job.job_id)}manifest-{IT_GROUP}.csv"
            body = "".join(manifest_row(obj, job.planning.versioned_line > 0) for obj in it_rows).encode("utf-8")
            etag = self.s3.put_work_object(self.bucket, key, body)
            self._create(job, IT_GROUP, key, etag, expiration_days=None)
        if status in ("Failed", "Cancelled") and not job.status.is_terminal:
            ending = JobStatus.CANCELLED if status == "Cancelled" else JobStatus.FAILED
            self.notifier.end(
                job.job_id, ending, f"S3 Batch Operations job {run['id']} {status}: {run.get('failure') or 'no reason given'}"
            )
        logger.info(
            "S3 Batch Operations job ended",
            extra={
                "job_id": job.job_id,
                "batch_job_id": run.get("id"),
                "status": status,
                "failed_tasks": failed,
                "never_ran": never_ran,
                "it_rerun": len(it_rows),
            },
        )
        self.notifier.evaluate(job.job_id)

    def _no_task_ran(self, run: dict[str, Any]) -> bool:
        summary = self.operations.describe(str(run["id"])).get("ProgressSummary") or {}
        return int(summary.get("NumberOfTasksSucceeded", 0) or 0) + int(summary.get("NumberOfTasksFailed", 0) or 0) == 0

    def _read_report(self, job: RestoreJob, group: str, run: dict[str, Any]) -> tuple[set[str] | None, list[ObjectId], int]:
        """Apply a run's completion report: (refs of every task reported, or None when the run wrote
        no report; IT objects to run again without ExpirationInDays; objects made FAILED or SKIPPED)."""
        prefix = f"{self.prefix(job.job_id)}report-{group}/job-{run['id']}/"
        manifest = b"".join(self.s3.read_work_object(self.bucket, f"{prefix}manifest.json"))
        if not manifest:
            return None, [], 0
        report = parse_report_manifest(manifest)
        reported: set[str] = set()
        it_rows: list[ObjectId] = []
        pending: dict[tuple[ObjectState, str], list[ObjectRecord]] = defaultdict(list)
        failed = 0

        def flush(outcome: tuple[ObjectState, str]) -> None:
            nonlocal failed
            records = pending.pop(outcome, [])
            if records:
                moved = self.store.transition(job.job_id, records, outcome[0], outcome[1])
                count_moved(self.metrics, outcome[0], moved)
                failed += moved

        for bucket, key, _ in report.results:
            for task in iter_report_rows(report.schema, text_lines(self.s3.read_work_object(bucket or self.bucket, key))):
                obj = task.object
                reported.add(obj.ref)
                outcome = task.outcome()
                if outcome is None:
                    continue
                if group == ARCHIVE_GROUP and _it_refused_days(task.error_code, task.message):
                    it_rows.append(obj)
                    continue
                found = (outcome.state, outcome.reason)
                pending[found].append(ObjectRecord(job.job_id, obj.ref, obj.bucket, obj.key, obj.version_id, ObjectState.RESTORING, "", 0))
                if len(pending[found]) >= TRANSITION_BATCH:
                    flush(found)
        for reason in list(pending):
            flush(reason)
        return reported, it_rows, failed

    def _never_ran(self, job: RestoreJob, reported: set[str] | None, reason: str) -> int:
        """Objects still RESTORING whose task the report does not list: CANCELLED, never requested."""
        moved, token = 0, None
        while True:
            records, token = self.store.list_objects(job.job_id, ObjectState.RESTORING, LIST_PAGE, token)
            orphans = [r for r in records if reported is None or r.ref not in reported]
            for i in range(0, len(orphans), TRANSITION_BATCH):
                moved += self.store.transition(job.job_id, orphans[i : i + TRANSITION_BATCH], ObjectState.CANCELLED, reason)
            if not token:
                return moved
