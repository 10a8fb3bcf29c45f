"""Builds the use cases from settings, once per Lambda execution environment."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from bulk_restore.adapters.dynamodb import DynamoJobStore
from bulk_restore.adapters.s3 import S3Gateway
from bulk_restore.adapters.sns import EventPublisher
from bulk_restore.adapters.sqs import QueueGateway
from bulk_restore.settings import Settings, get_settings
from bulk_restore.usecases.complete import CompletionRecorder
from bulk_restore.usecases.jobs import JobService
from bulk_restore.usecases.notify import Notifier
from bulk_restore.usecases.pacing import Pacer
from bulk_restore.usecases.plan import Planner
from bulk_restore.usecases.restore import RestoreWorker
from bulk_restore.usecases.sweep import Sweeper


@dataclass
class Services:
    settings: Settings
    store: DynamoJobStore
    s3: S3Gateway
    queues: QueueGateway
    publisher: EventPublisher
    notifier: Notifier
    jobs: JobService
    planner: Planner
    restorer: RestoreWorker
    completions: CompletionRecorder
    sweeper: Sweeper


def build_services(settings: Settings) -> Services:
    # Each restore thread holds its own connections: the clients' pools are sized to RestoreConcurrency.
    store = DynamoJobStore(settings.table_name, object_retention_days=settings.object_retention_days, job_retention_days=settings.job_retention_days,
                           max_connections=settings.restore_concurrency)
    s3 = S3Gateway(max_connections=settings.restore_concurrency, allowed_buckets=settings.allowed_bucket_set,
                   manifest_buckets=settings.manifest_bucket_list)
    queues = QueueGateway(settings.plan_queue_url, settings.restore_queue_url)
    publisher = EventPublisher(settings.topic_arn)
    notifier = Notifier(store, publisher, settings.event_lease_seconds * 1000)
    pacer = Pacer(store, settings.restore_rate_per_second)
    return Services(
        settings=settings,
        store=store,
        s3=s3,
        queues=queues,
        publisher=publisher,
        notifier=notifier,
        jobs=JobService(store, s3, queues, settings.topic_arn, settings.progress_step_percent, notifier),
        planner=Planner(store, s3, queues, notifier, settings.plan_lines_per_step, settings.plan_reserve_ms, settings.manage_eventbridge),
        restorer=RestoreWorker(store, s3, notifier, settings.restore_concurrency, pacer),
        completions=CompletionRecorder(store, notifier, s3),
        sweeper=Sweeper(store, s3, queues, notifier, settings, pacer),
    )


@lru_cache(maxsize=1)
def services() -> Services:
    return build_services(get_settings())
