"""Schedule: look at every running job for lost events, stalled planning and deadlines."""

from __future__ import annotations

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from bulk_restore.handlers import inject_function_context, metrics, tracer
from bulk_restore.wiring import services

logger = Logger(service="bulk-restore")


@inject_function_context(logger)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics(capture_cold_start_metric=True)
def handler(event: dict, context: LambdaContext) -> dict:
    return services().sweeper.run(context.get_remaining_time_in_millis)
