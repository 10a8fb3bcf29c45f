"""Restore queue: request the restores of the manifest chunks a delivery brings, a job's chunks together."""

from __future__ import annotations

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from bulk_restore.handlers import inject_function_context, metrics, tracer
from bulk_restore.wiring import services

logger = Logger(service="bulk-restore")


class DeliveryFailed(Exception):
    """Every message of the delivery failed: the invocation fails, and they all come again."""


@inject_function_context(logger)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics(capture_cold_start_metric=True)
def handler(event: dict, context: LambdaContext) -> dict:
    records = event.get("Records") or []
    failed = services().restorer.restore_messages([(r["messageId"], r["body"]) for r in records])
    if records and len(failed) == len(records):
        raise DeliveryFailed(f"all {len(records)} messages failed: see the errors logged above")
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failed]}
