"""Schedule: look at every running job for lost events, stalled planning and deadlines."""

from __future__ import annotations

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from bulk_restore.wiring import services

logger = Logger(service="bulk-restore")


@logger.inject_lambda_context
def handler(event: dict, context: LambdaContext) -> dict:
    return services().sweeper.run(context.get_remaining_time_in_millis)
