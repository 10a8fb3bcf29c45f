"""Builds the use cases from settings, once per Lambda execution environment."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

from bulk_restore.adapters.dynamodb import DynamoJobStore
from bulk_restore.adapters.glacier import GlacierVaults
from bulk_restore.adapters.metrics import EmfMetrics
from bulk_restore.adapters.s3 import S3Gateway
from bulk_restore.adapters.s3control import BatchOperations
from bulk_restore.adapters.sns import EventPublisher
from bulk_restore.adapters.sqs import QueueGateway
from bulk_restore.settings import Settings, get_settings
from bulk_restore.usecases.batch import BatchEngine
from bulk_restore.usecases.complete import CompletionRecorder
from bulk_restore.usecases.count import StreamCounter
from bulk_restore.usecases.estimate import EstimateService
from bulk_restore.usecases.jobs import JobService
from bulk_restore.usecases.notify import Notifier
from bulk_restore.usecases.pacing import Pacer
from bulk_restore.usecases.plan import Planner
from bulk_restore.usecases.restore import RestoreWorker
from bulk_restore.usecases.sweep import Sweeper
from bulk_restore.usecases.vault import VaultMover


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
    counter: StreamCounter
    batch: BatchEngine | None = None
    vault: VaultMover | None = None
    metrics: EmfMetrics | None = None
    estimates: EstimateService | None = None


def build_services(settings: Settings) -> Services:
    # Each restore thread holds its own connections: the clients' pools are sized to RestoreConcurrency.
    store = DynamoJobStore(
        settings.table_name,
        object_retention_days=settings.object_retention_days,
        job_retention_days=settings.job_retention_days,
        max_connections=settings.restore_concurrency,
    )
    s3 = S3Gateway(
        max_connections=settings.restore_concurrency,
        allowed_buckets=settings.allowed_bucket_set,
        manifest_buckets=settings.manifest_bucket_list,
    )
    queues = QueueGateway(settings.plan_queue_url, settings.restore_queue_url, transfer_queue_url=settings.transfer_queue_url)
    publisher = EventPublisher(settings.topic_arn)
    metrics = EmfMetrics()  # flushed by each handler's @metrics.log_metrics
    notifier = Notifier(store, publisher, settings.event_lease_seconds * 1000, metrics=metrics)
    pacer = Pacer(store, settings.restore_rate_per_second)
    batch = None
    if settings.batch_role_arn and settings.account_id and settings.report_bucket:
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3CONTROL") or os.environ.get("AWS_ENDPOINT_URL") or None
        batch = BatchEngine(
            store,
            s3,
            BatchOperations(settings.account_id, settings.batch_role_arn, endpoint_url=endpoint),
            notifier,
            settings.report_bucket,
            metrics=metrics,
        )
    vaults = vault = None
    if settings.transfer_queue_url:
        vaults = GlacierVaults()
        vault = VaultMover(
            store,
            s3,
            vaults,
            queues,
            notifier,
            settings.vault_topic_arn,
            settings.vault_part_bytes,
            settings.transfer_attempts,
            settings.restore_concurrency,
            work_bucket=settings.report_bucket,
            time_scale=settings.time_scale,
        )
        vault.metrics = metrics
    built = Services(
        settings=settings,
        store=store,
        s3=s3,
        queues=queues,
        publisher=publisher,
        notifier=notifier,
        jobs=JobService(
            store, s3, queues, settings.topic_arn, settings.progress_step_percent, notifier, batch, settings.batch_min_objects, vaults
        ),
        planner=Planner(
            store, s3, queues, notifier, settings.plan_lines_per_step, settings.plan_reserve_ms, settings.manage_eventbridge, batch, vault
        ),
        restorer=RestoreWorker(store, s3, settings.restore_concurrency, pacer, batch, vault, metrics=metrics),
        completions=CompletionRecorder(store, s3, metrics=metrics),
        sweeper=Sweeper(store, s3, queues, notifier, settings, pacer, batch=batch, vault=vault, metrics=metrics),
        batch=batch,
        vault=vault,
        metrics=metrics,
        counter=StreamCounter(store, notifier, queues),
    )
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or ""
    built.estimates = EstimateService(
        built.jobs,
        s3,
        region=region,
        restore_rate_per_second=settings.restore_rate_per_second,
        concurrency=settings.restore_concurrency,
        head_limit=settings.estimate_head_limit,
    )
    return built


class _Environments:
    """``services()``: the services of this execution environment, built on first use.

    In Lambda an execution environment runs one invocation at a time, so the process's services
    are its own. A local runtime that runs several invocations of a function at once in one
    process marks each invocation thread as an environment of its own (``own_environment``): it
    then gets its own services, clients and connection pools, as each concurrent invocation has
    in Lambda. ``cache_clear()`` forgets them all (settings changed).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()  # one build at a time: boto3's default session is not thread-safe
        self._shared: Services | None = None
        self._generation = 0
        self._thread = threading.local()

    def __call__(self) -> Services:
        mine = self._thread
        if getattr(mine, "own", False):
            if getattr(mine, "generation", None) != self._generation:
                with self._lock:
                    mine.services, mine.generation = build_services(get_settings()), self._generation
            return mine.services  # type: ignore[no-any-return]
        shared = self._shared
        if shared is None:
            with self._lock:
                if self._shared is None:
                    self._shared = build_services(get_settings())
                shared = self._shared
        return shared

    def own_environment(self) -> None:
        """The calling thread is an execution environment of its own from now on."""
        self._thread.own = True

    def cache_clear(self) -> None:
        with self._lock:
            self._shared = None
            self._generation += 1


services = _Environments()
