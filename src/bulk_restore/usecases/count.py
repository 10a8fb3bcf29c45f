"""The counting function: a job's counters from the table's stream, and its events from its counters.

Engines write object states only (adapters/dynamodb.py). Here each batch of one stream shard is
folded into deltas per job (domain/counting.py) and applied once per job and shard; then each job
whose objects moved is evaluated, so progress steps and the one terminal event are decided in one
place for every engine, from counters that have just moved.

A batch delivered again applies nothing (the counter item's checkpoint) but evaluates its jobs
again: a delivery that died after counting and before announcing still announces.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from aws_lambda_powertools import Logger

from bulk_restore.adapters.dynamodb import DynamoJobStore
from bulk_restore.adapters.sqs import QueueGateway
from bulk_restore.domain.counting import changes, fold_changes
from bulk_restore.domain.model import Counts, RestoreJob
from bulk_restore.domain.progress import all_accounted
from bulk_restore.usecases.notify import Notifier

logger = Logger(child=True)


class StreamCounter:
    def __init__(self, store: DynamoJobStore, notifier: Notifier, queues: QueueGateway | None = None):
        self.store = store
        self.notifier = notifier
        self.queues = queues

    def count(self, shard: str, records: Sequence[Mapping[str, Any]]) -> dict[str, int]:
        """Apply one shard's batch. Returns how many jobs it counted for, skipped (counted before) and evaluated."""
        report = {"counted": 0, "already": 0, "evaluated": 0}
        moved: list[str] = []
        chunked: set[str] = set()
        for job_id, job_changes in changes(records).items():
            delta = fold_changes(job_id, job_changes)
            if delta is None or delta.empty():
                continue
            moved.append(job_id)
            if delta.counts.chunks_done:
                chunked.add(job_id)
            if self.store.apply_counts(job_id, shard, delta.first, delta.last, delta.counts):
                report["counted"] += 1
                continue
            # Some of these records were counted before (this batch, or part of it, came again):
            # count those past the checkpoint only.
            after = self.store.counted_to(job_id, shard)
            rest = fold_changes(job_id, job_changes, after)
            if rest is None or rest.empty():
                report["already"] += 1
            elif self.store.apply_counts(job_id, shard, rest.first, rest.last, rest.counts, after=after):
                report["counted"] += 1
            else:
                raise RuntimeError(f"the counters of job {job_id} for shard {shard} moved meanwhile: the batch is retried")
        for job_id in moved:
            loaded = self.notifier.evaluate(job_id)
            report["evaluated"] += 1
            if job_id in chunked and loaded is not None:
                self._launch_when_accounted(*loaded)
        if moved:
            logger.info("stream batch counted", extra={"shard": shard, "records": len(records), **report})
        return report

    def _launch_when_accounted(self, job: RestoreJob, counts: Counts) -> None:
        """A batch-engine job whose chunks are now all counted: a restore worker launches its S3
        Batch Operations runs (it holds the rights to; a launch asked twice launches once)."""
        if self.queues is None:
            return
        if job.engine == "batch" and not job.batch_runs and not job.status.is_terminal and all_accounted(job, counts):
            self.queues.send_batch_launch(job.job_id)
