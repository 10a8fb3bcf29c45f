"""Completion queue: S3 "restore completed" events, in either shape, for a whole batch at once."""

from __future__ import annotations

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from bulk_restore.domain.events import RestoreCompleted, UnrecognisedEvent, parse_message
from bulk_restore.handlers import inject_function_context
from bulk_restore.wiring import services

logger = Logger(service="bulk-restore")


@inject_function_context(logger)
def handler(event: dict, context: LambdaContext) -> dict:
    failures: list[dict[str, str]] = []
    completions: list[RestoreCompleted] = []
    carried: list[str] = []
    for record in event["Records"]:
        try:
            found = parse_message(record["body"])
        except UnrecognisedEvent as exc:
            logger.warning("message is no S3 restore event", extra={"message_id": record["messageId"], "reason": str(exc)})
            failures.append({"itemIdentifier": record["messageId"]})
            continue
        if found:
            completions.extend(found)
            carried.append(record["messageId"])
    try:
        services().completions.record(completions)
    except Exception:
        logger.exception("completions not recorded; the batch will be retried", extra={"events": len(completions)})
        failures.extend({"itemIdentifier": m} for m in carried)
    return {"batchItemFailures": failures}
