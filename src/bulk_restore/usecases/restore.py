"""Restore workers: request the restore of each object of a chunk and account the chunk once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aws_lambda_powertools import Logger

from bulk_restore.adapters.dynamodb import DynamoJobStore, ObjectRecord
from bulk_restore.adapters.s3 import S3Gateway
from bulk_restore.domain.model import ManifestError, ObjectId, ObjectState, RestoreJob
from bulk_restore.usecases.notify import Notifier

logger = Logger(child=True)


class RestoreWorker:
    def __init__(self, store: DynamoJobStore, s3: S3Gateway, notifier: Notifier, concurrency: int = 16):
        self.store = store
        self.s3 = s3
        self.notifier = notifier
        self.concurrency = concurrency

    def restore_chunk(self, message: dict[str, Any]) -> None:
        job_id, chunk = str(message["job_id"]), int(message["chunk"])
        rows = [(int(line), ObjectId(bucket, key, version or None)) for line, bucket, key, version in message.get("rows", [])]
        errors = [ManifestError(int(line), str(msg), str(raw)) for line, msg, raw in message.get("errors", [])]
        refs = [obj.ref for _, obj in rows] + [e.ref for e in errors]
        job, done, existing = self.store.chunk_state(job_id, chunk, refs)
        if job is None:
            logger.warning("restore chunk for unknown job dropped", extra={"job_id": job_id, "chunk": chunk})
            return
        if not done:
            # Objects that already exist belong to an earlier manifest line (counted there): never request twice.
            todo = [(line, obj) for line, obj in rows if obj.ref not in existing]
            records = self._request(job, todo)
            records += [
                ObjectRecord(job_id, e.ref, "", e.raw, None, ObjectState.FAILED, f"manifest line {e.line}: {e.message}", e.line)
                for e in errors
                if e.ref not in existing
            ]
            applied, _ = self.store.record_chunk(job_id, chunk, records)
            logger.info("chunk accounted", extra={"job_id": job_id, "chunk": chunk, "objects": len(records), "applied": applied})
        self.notifier.evaluate(job_id)

    def _request(self, job: RestoreJob, todo: list[tuple[int, ObjectId]]) -> list[ObjectRecord]:
        def one(item: tuple[int, ObjectId]) -> ObjectRecord:
            line, obj = item
            outcome = self.s3.restore_with_retries(obj, job.tier, job.expiration_days)
            return ObjectRecord(job.job_id, obj.ref, obj.bucket, obj.key, obj.version_id, outcome.state, outcome.reason, line)

        if len(todo) <= 1 or self.concurrency <= 1:
            return [one(item) for item in todo]
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(todo))) as pool:
            return list(pool.map(one, todo))
