"""Plan queue (SQS FIFO, one message at a time per job): run one checkpointed planning step."""

from __future__ import annotations

import json

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from bulk_restore.handlers import inject_function_context, metrics, tracer
from bulk_restore.wiring import services

logger = Logger(service="bulk-restore")


@inject_function_context(logger)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics(capture_cold_start_metric=True)
def handler(event: dict, context: LambdaContext) -> dict:
    failures = []
    for i, record in enumerate(event["Records"]):
        try:
            body = json.loads(record["body"])
            services().planner.run_step(body["job_id"], int(body.get("step", 0)), context.get_remaining_time_in_millis)
        except Exception:
            logger.exception("plan step failed", extra={"message_id": record["messageId"]})
            # FIFO: the failed message and every later one of the batch are retried, in order.
            failures = [{"itemIdentifier": r["messageId"]} for r in event["Records"][i:]]
            break
    return {"batchItemFailures": failures}
