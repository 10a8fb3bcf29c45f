"""The table's stream: each batch of one shard becomes counter deltas per job, then progress events.

The event source mapping sets a tumbling window, which is what puts the shard's id in the event
(``shardId``): the counters keep a checkpoint per shard. The window's state is not used; the
final invocation of a window carries no records.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from bulk_restore.handlers import inject_function_context, metrics, tracer
from bulk_restore.wiring import services

logger = Logger(service="bulk-restore")


@inject_function_context(logger)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics(capture_cold_start_metric=False)
def handler(event: dict, context: LambdaContext) -> dict:
    records = event.get("Records") or []
    if records:
        shard = event.get("shardId")
        if not shard:
            raise ValueError("the stream event has no shardId: its event source mapping needs TumblingWindowInSeconds")
        services().counter.count(str(shard), records)
    return {"state": {}, "batchItemFailures": []}
