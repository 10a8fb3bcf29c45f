"""Configuration: one typed object, read once from the environment the template sets."""

from __future__ import annotations

import os
from functools import lru_cache

from pydantic import BaseModel, Field


class Settings(BaseModel):
    table_name: str = "bulk-restore"
    plan_queue_url: str = ""
    restore_queue_url: str = ""
    topic_arn: str = ""
    events_queue_arn: str = ""  # the queue subscribed to the topic: the create-job answer's SQSQueue
    report_bucket: str = ""  # the stack's bucket for completion reports: the create-job answer's ReportBucket
    progress_step_percent: int = Field(10, ge=1, le=50)
    restore_concurrency: int = Field(16, ge=1, le=128)
    plan_lines_per_step: int = Field(200_000, ge=98)
    plan_reserve_ms: int = Field(60_000, ge=0)
    object_retention_days: int = Field(90, ge=1)
    job_retention_days: int = Field(30, ge=1)
    manage_eventbridge: bool = True
    event_lease_seconds: int = Field(60, ge=0, le=900)
    allowed_buckets: str = "*"  # comma-separated source buckets this stack may restore from; * for any
    manifest_buckets: str = ""  # comma-separated buckets manifests may be read from: the stack's own first
    restore_rate_per_second: int = Field(900, ge=0)  # account-wide; 0 turns pacing off
    time_scale: float = Field(1.0, gt=0)  # multiplies tier windows and deadlines (the local stack shrinks them)
    sweep_objects_per_job: int = Field(500, ge=1)  # HeadObject checks per job per sweep run
    sweep_heads_per_second: int = Field(50, ge=1)
    sweep_interval_seconds: int = Field(3600, ge=1)  # between two sweep passes over one job
    stalled_planning_seconds: int = Field(1800, ge=1)
    # An ended job's terminal event waits for chunks on their way at most this long (a chunk's
    # retries last up to 4 h before it goes to the dead-letter queue).
    end_grace_seconds: int = Field(6 * 3600, ge=1)
    # The batch engine: the account its S3 Batch Operations jobs run in and the role they run
    # with (none: the stack runs no Batch job); auto picks it from this many objects (0: never).
    account_id: str = ""
    batch_role_arn: str = ""
    batch_min_objects: int = Field(0, ge=0)
    # Glacier vaults: the topic vault jobs notify (subscribed by the completion queue), the queue
    # of archive parts to move, and the smallest part (AWS's rule: 1 GiB, larger for large archives).
    vault_topic_arn: str = ""
    transfer_queue_url: str = ""
    vault_part_mib: int = Field(1024, ge=8, le=4096)  # a power of two (domain.vault.part_size_for)
    transfer_attempts: int = Field(3, ge=1)  # a part whose tree hash keeps failing is FAILED after this many
    # create-job's estimate (dry_run, max_cost_usd): HeadObject calls at most, beyond which it samples
    estimate_head_limit: int = Field(1000, ge=1, le=10_000)

    @property
    def vault_part_bytes(self) -> int:
        return self.vault_part_mib << 20

    @property
    def manifest_bucket_list(self) -> tuple[str, ...]:
        """The buckets manifests are read from, the stack's own first. Empty: none (every create is refused)."""
        return tuple(dict.fromkeys(b.strip() for b in self.manifest_buckets.split(",") if b.strip()))

    @property
    def allowed_bucket_set(self) -> frozenset[str] | None:
        names = frozenset(b.strip() for b in self.allowed_buckets.split(",") if b.strip())
        return None if not names or "*" in names else names

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        names = {
            "table_name": "TABLE_NAME",
            "plan_queue_url": "PLAN_QUEUE_URL",
            "restore_queue_url": "RESTORE_QUEUE_URL",
            "topic_arn": "TOPIC_ARN",
            "events_queue_arn": "EVENTS_QUEUE_ARN",
            "report_bucket": "REPORT_BUCKET",
            "progress_step_percent": "PROGRESS_STEP_PERCENT",
            "restore_concurrency": "RESTORE_CONCURRENCY",
            "plan_lines_per_step": "PLAN_LINES_PER_STEP",
            "plan_reserve_ms": "PLAN_RESERVE_MS",
            "object_retention_days": "OBJECT_RETENTION_DAYS",
            "job_retention_days": "JOB_RETENTION_DAYS",
            "manage_eventbridge": "MANAGE_EVENTBRIDGE",
            "event_lease_seconds": "EVENT_LEASE_SECONDS",
            "allowed_buckets": "ALLOWED_BUCKETS",
            "manifest_buckets": "MANIFEST_BUCKETS",
            "restore_rate_per_second": "RESTORE_RATE_PER_SECOND",
            "time_scale": "TIME_SCALE",
            "sweep_objects_per_job": "SWEEP_OBJECTS_PER_JOB",
            "sweep_heads_per_second": "SWEEP_HEADS_PER_SECOND",
            "sweep_interval_seconds": "SWEEP_INTERVAL_SECONDS",
            "stalled_planning_seconds": "STALLED_PLANNING_SECONDS",
            "end_grace_seconds": "END_GRACE_SECONDS",
            "account_id": "ACCOUNT_ID",
            "batch_role_arn": "BATCH_ROLE_ARN",
            "batch_min_objects": "BATCH_MIN_OBJECTS",
            "vault_topic_arn": "VAULT_TOPIC_ARN",
            "transfer_queue_url": "TRANSFER_QUEUE_URL",
            "vault_part_mib": "VAULT_PART_MIB",
            "transfer_attempts": "TRANSFER_ATTEMPTS",
            "estimate_head_limit": "ESTIMATE_HEAD_LIMIT",
        }
        values = {field: env[var] for field, var in names.items() if env.get(var, "") != ""}
        return cls.model_validate(values)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings.from_env()
