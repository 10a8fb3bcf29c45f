"""Restore queue: request the restores of one manifest chunk per message."""

from __future__ import annotations

import json

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from bulk_restore.handlers import inject_function_context, metrics, tracer
from bulk_restore.wiring import services

logger = Logger(service="bulk-restore")
processor = BatchProcessor(event_type=EventType.SQS)


def restore_chunk(record: SQSRecord) -> None:
    services().restorer.restore_chunk(json.loads(record.body))


@inject_function_context(logger)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics(capture_cold_start_metric=True)
def handler(event: dict, context: LambdaContext) -> dict:
    return process_partial_response(event=event, record_handler=restore_chunk, processor=processor, context=context)
