"""Amazon CloudWatch metrics, as embedded metric format (EMF) log lines through Powertools Metrics.

The functions print their metrics to their log (stdout); CloudWatch Logs turns the lines into
metrics of the namespace ``POWERTOOLS_METRICS_NAMESPACE`` (default ``BulkRestore``), each with
the ``service`` dimension (``POWERTOOLS_SERVICE_NAME``). Counts without dimensions of their own
gather in Powertools' metric set, shared by every ``Metrics`` instance of the process, which the
handlers' ``@metrics.log_metrics`` flushes at the end of each invocation; a count with a
dimension of its own (``JobsEnded`` by ``State``) is a line of its own, written at once.

Adding and flushing take turns (one lock for the process): a restore worker counts from its
threads, and where several functions run in one process (the local stack) one may flush while
another counts; Powertools' metric set is a plain dict, which must not change while it is written.
"""

from __future__ import annotations

import os
import threading
from typing import Any, cast

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import AmazonCloudWatchEMFProvider

from bulk_restore.usecases.metrics import COUNT

DEFAULT_NAMESPACE = "BulkRestore"
DEFAULT_SERVICE = "bulk-restore"


def namespace() -> str:
    return os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or DEFAULT_NAMESPACE


_TURNS = threading.RLock()


class _TakingTurns(AmazonCloudWatchEMFProvider):
    """Powertools' EMF provider, whose adds and flushes take turns."""

    def add_metric(self, *args: Any, **kwargs: Any) -> None:
        with _TURNS:
            super().add_metric(*args, **kwargs)

    def flush_metrics(self, raise_on_empty_metrics: bool = False) -> None:
        with _TURNS:
            super().flush_metrics(raise_on_empty_metrics)


def powertools_metrics() -> Metrics:
    """The Powertools Metrics the handlers flush (``@metrics.log_metrics``), in this stack's namespace."""
    service = os.environ.get("POWERTOOLS_SERVICE_NAME") or DEFAULT_SERVICE
    metrics = Metrics(namespace=namespace(), service=service)
    metrics.provider = _TakingTurns(
        namespace=namespace(),
        service=service,
        metric_set=metrics.metric_set,
        dimension_set=metrics.dimension_set,
        metadata_set=metrics.metadata_set,
        default_dimensions=metrics.default_dimensions,
    )
    return metrics


class EmfMetrics:
    """The use cases' metrics port (``bulk_restore.usecases.metrics.Metrics``) on Powertools.

    Safe to call from a worker's threads: the restore workers count throttling answers in theirs."""

    def __init__(self, metrics: Metrics | None = None):
        self._metrics = metrics or powertools_metrics()
        self._service = self._metrics.service or DEFAULT_SERVICE

    def add(self, name: str, value: float, unit: str = COUNT, **dimensions: str) -> None:
        if not dimensions:
            self._metrics.add_metric(name=name, unit=unit, value=value)
            return
        with single_metric(
            name=name,
            unit=cast(MetricUnit, unit),  # typed MetricUnit, but handed to add_metric, which takes a unit's name too (as above)
            value=value,
            namespace=self._metrics.namespace,
            default_dimensions={"service": self._service, **dimensions},
        ):
            pass  # written when the block ends, with its own dimensions and the service's
