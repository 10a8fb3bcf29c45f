"""The sweeper: a scheduled look at every running job, for what events missed.

Per run and per job it may: publish an event a crashed worker claimed but did not send; end a
job whose completion evaluation was lost; re-ask a stalled planner for its step; end a job
past its deadline with one Timeout event; and, once a job's restores should have completed,
check a bounded page of its still-RESTORING objects with HeadObject (paced, resuming where the
last run stopped), completing them through the same transactions as events do. Only running
jobs are read (one partition lists them), never the whole table.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

from aws_lambda_powertools import Logger

from bulk_restore.adapters.dynamodb import DynamoJobStore, ObjectRecord
from bulk_restore.adapters.s3 import S3Gateway
from bulk_restore.adapters.sqs import QueueGateway
from bulk_restore.domain.model import Counts, JobStatus, ObjectId, ObjectState, RestoreJob
from bulk_restore.domain.outcomes import RetryLater
from bulk_restore.domain.timing import TIME_FORMAT, default_deadline, due, expected_window, parse_time
from bulk_restore.settings import Settings
from bulk_restore.usecases.batch import BatchEngine
from bulk_restore.usecases.metrics import NO_METRICS, RESTORES_THROTTLED, Metrics, count_moved
from bulk_restore.usecases.notify import Notifier
from bulk_restore.usecases.pacing import Pacer
from bulk_restore.usecases.vault import VaultMover

logger = Logger(child=True)

GONE = "the object was deleted (or its version removed) while it was restoring"


class Sweeper:
    def __init__(
        self,
        store: DynamoJobStore,
        s3: S3Gateway,
        queues: QueueGateway,
        notifier: Notifier,
        settings: Settings,
        pacer: Pacer | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        batch: BatchEngine | None = None,
        vault: VaultMover | None = None,
        metrics: Metrics = NO_METRICS,
    ):
        self.store = store
        self.s3 = s3
        self.queues = queues
        self.notifier = notifier
        self.settings = settings
        self.pacer = pacer
        self.clock = clock
        self.sleep = sleep
        self.batch = batch
        self.vault = vault
        self.metrics = metrics

    def run(self, remaining_ms: Callable[[], int], reserve_ms: int = 20_000) -> dict[str, int]:
        report = {"jobs": 0, "checked": 0, "completed": 0, "timed_out": 0}
        for job_id in self.store.active_jobs():
            if remaining_ms() < reserve_ms:
                break
            report["jobs"] += 1
            try:
                self.sweep_job(job_id, report)
            except RetryLater:
                self.metrics.add(RESTORES_THROTTLED, 1)
                logger.info("S3 asked to slow down; the sweep goes on next run", extra={"job_id": job_id})
            except Exception:
                report["errors"] = report.get("errors", 0) + 1
                logger.exception("sweep of a job failed; the others go on", extra={"job_id": job_id})
        logger.info("sweep done", extra=report)
        return report

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC).replace(tzinfo=None)

    def sweep_job(self, job_id: str, report: dict[str, int]) -> None:
        self.notifier.evaluate(job_id)  # publishes what a crashed worker left; ends a finished job
        loaded = self.store.get_job_and_counts(job_id)
        if loaded is None:
            self.store.deactivate(job_id)
            return
        job, counts = loaded
        now = self._now()
        scale = self.settings.time_scale
        if job.status.is_terminal:
            if job.end_pending:
                self._announce_ended(job, now, report)
            elif job.keep_restored_days and job.status is JobStatus.COMPLETE:
                self._renew(job, now, report)
            elif not job.outbox:
                self.store.deactivate(job_id)
            return
        if job.engine == "batch" and self.batch is not None and not job.batch_ended:
            # A lost status event, or a Batch job never created after planning: asked, not waited for.
            self.batch.check(job)
        if not job.planning.done and due(job.updated_at, self.settings.stalled_planning_seconds * scale, now):
            logger.info("planning stalled: step asked again", extra={"job_id": job_id, "step": job.planning.step})
            self.queues.send_plan_step(job_id, job.planning.step)
        # A job's own deadline_hours counts from its creation. The tier's counts from the moment its
        # last restore request was sent: a large job whose requests take longer than that to send
        # is not late. Until then it counts from the job's last sign of life: its last planning
        # step or event, or the last sweep that saw more chunks recorded than the one before (the
        # counters, not the job's item, count chunks); so a job whose last chunks never come (lost
        # to a dead-letter queue) still ends.
        deadline = job.deadline_seconds or default_deadline(job.tier, scale)
        since = job.created_at if job.deadline_seconds else (job.issued_at or self._last_activity(job, counts, now))
        if job.engine == "batch" and not job.deadline_seconds:
            # Its requests are sent by S3 Batch Operations: the tier's deadline counts from the end of its runs.
            since = str(job.sweep.get("batch_ended_at", "")) if job.batch_ended else ""
            if job.batch_ended and not since:
                job.sweep = {**job.sweep, "batch_ended_at": now.strftime(TIME_FORMAT)}
                self.store.save_sweep(job.job_id, job.sweep)
                since = job.sweep["batch_ended_at"]
        if since and due(since, deadline, now):
            reason = (
                f"deadline of {deadline / 3600:g} h passed with {counts.restoring} objects still restoring"
                f" and planning {'complete' if job.planning.done else 'incomplete'}:"
                f" list them with GET /jobs/{job_id}/objects?state=RESTORING"
            )
            if self.notifier.end(job_id, JobStatus.TIMEOUT, reason):
                report["timed_out"] += 1
            return
        due_now = counts.restoring and due(job.issued_at or job.created_at, expected_window(job.tier, scale), now)
        if due_now and self.clock() >= float(job.sweep.get("next_at", 0)):
            self._check_restoring(job, counts, report)

    def _last_activity(self, job: RestoreJob, counts: Counts, now: datetime) -> str:
        """The later of the job's last update and the last sweep that saw its chunk count grow (noted on the job)."""
        if int(job.sweep.get("chunks_seen", -1)) != counts.chunks_done:
            job.sweep = {**job.sweep, "chunks_seen": counts.chunks_done, "chunks_seen_at": now.strftime(TIME_FORMAT)}
            self.store.save_sweep(job.job_id, job.sweep)  # and what _check_restoring saves next keeps it
        return max(job.updated_at, job.created_at, str(job.sweep.get("chunks_seen_at", "")))  # same format: they sort as text

    def _announce_ended(self, job: RestoreJob, now: datetime, report: dict[str, int]) -> None:
        """An ended job whose terminal event waits for chunks still on their way: make the planner
        say it stopped, and announce the job anyway once its chunks had all the time retries take."""
        scale = self.settings.time_scale
        if not job.planning.over and due(job.updated_at, self.settings.stalled_planning_seconds * scale, now):
            self.queues.send_plan_step(job.job_id, job.planning.step)
        if due(job.finished_at, self.settings.end_grace_seconds * scale, now) and self.notifier.announce_now(job.job_id):
            logger.warning("ended job announced without all its chunks", extra={"job_id": job.job_id})
            report["announced_late"] = report.get("announced_late", 0) + 1

    def _check_restoring(self, job: RestoreJob, counts: Counts, report: dict[str, int]) -> None:
        records, token = self.store.list_objects(
            job.job_id, ObjectState.RESTORING, self.settings.sweep_objects_per_job, job.sweep.get("token")
        )
        if job.is_vault:  # no S3 object to look at yet: ask Glacier about the archives' retrievals
            if self.vault is not None:
                self.vault.check(job.job_id, records)
                report["checked"] += len(records)
        else:
            self._head_restoring(job, records, report)
        next_at = 0.0 if token else self.clock() + self.settings.sweep_interval_seconds * self.settings.time_scale
        self.store.save_sweep(job.job_id, {**job.sweep, "token": token, "next_at": int(next_at)})
        self.notifier.evaluate(job.job_id)

    def _head_restoring(self, job: RestoreJob, records: list[ObjectRecord], report: dict[str, int]) -> None:
        """HeadObject each object still restoring: the restored ones and the missing ones settle now."""
        restored: list[ObjectRecord] = []
        gone: list[ObjectRecord] = []
        pause = 1.0 / self.settings.sweep_heads_per_second
        for record in records:
            status = self.s3.restore_status(ObjectId(record.bucket, record.key, record.version_id))
            report["checked"] += 1
            if status == "restored":
                restored.append(record)
            elif status == "missing":
                gone.append(record)
            self.sleep(pause)
        completed = self.store.transition(job.job_id, restored, ObjectState.RESTORED) if restored else 0
        failed = self.store.transition(job.job_id, gone, ObjectState.FAILED, GONE) if gone else 0
        count_moved(self.metrics, ObjectState.RESTORED, completed)
        count_moved(self.metrics, ObjectState.FAILED, failed)
        moved = completed + failed
        report["completed"] += moved
        if moved:
            logger.info("sweep completed objects whose events were missed", extra={"job_id": job.job_id, "objects": moved})

    def _renew(self, job: RestoreJob, now: datetime, report: dict[str, int]) -> None:
        """Keep a finished job's restored copies readable: S3 answers 200 and moves the expiry."""
        scale = self.settings.time_scale
        if not job.finished_at or due(job.finished_at, job.keep_restored_days * 86400 * scale, now):
            self.store.deactivate(job.job_id)
            return
        if self.clock() < float(job.sweep.get("renew_at", 0)):
            return
        if not job.sweep.get("renew_at"):
            # First renewal half a day before the first expiry; then every expiration_days.
            first = parse_time(job.finished_at).replace(tzinfo=UTC).timestamp() + (job.expiration_days - 0.5) * 86400 * scale
            self.store.save_sweep(job.job_id, {**job.sweep, "renew_at": int(first)})
            if self.clock() < first:
                return
        records, token = self.store.list_objects(
            job.job_id, ObjectState.RESTORED, self.settings.sweep_objects_per_job, job.sweep.get("renew_token")
        )
        if self.pacer is not None and records:
            self.pacer.acquire(job.job_id, len(records))
        for record in records:
            self.s3.restore_with_retries(ObjectId(record.bucket, record.key, record.version_id), job.tier, job.expiration_days)
            report["checked"] += 1
        renew_at = self.clock() if token else self.clock() + job.expiration_days * 86400 * scale
        self.store.save_sweep(job.job_id, {**job.sweep, "renew_token": token, "renew_at": int(renew_at)})
