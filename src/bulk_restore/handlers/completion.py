"""Completion queue: S3 "restore completed" events, in either shape, for a whole batch at once;
the status changes of the batch engine's S3 Batch Operations jobs; and Glacier vault job notices."""

from __future__ import annotations

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from bulk_restore.domain.events import (
    BatchStatusChanged,
    RestoreCompleted,
    UnrecognisedEvent,
    VaultJobNotice,
    parse_batch_status,
    parse_message,
    parse_vault_notice,
)
from bulk_restore.handlers import inject_function_context, metrics, tracer
from bulk_restore.wiring import services

logger = Logger(service="bulk-restore")


@inject_function_context(logger)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics(capture_cold_start_metric=True)
def handler(event: dict, context: LambdaContext) -> dict:
    failures: list[dict[str, str]] = []
    completions: list[RestoreCompleted] = []
    carried: list[str] = []
    notices: list[tuple[str, VaultJobNotice]] = []
    for record in event["Records"]:
        notice = parse_vault_notice(record["body"])
        if notice is not None:
            notices.append((record["messageId"], notice))
            continue
        status = parse_batch_status(record["body"])
        if status is not None:
            if not _batch_status(status):
                failures.append({"itemIdentifier": record["messageId"]})
            continue
        try:
            found = parse_message(record["body"])
        except UnrecognisedEvent as exc:
            logger.warning("message is no S3 restore event", extra={"message_id": record["messageId"], "reason": str(exc)})
            failures.append({"itemIdentifier": record["messageId"]})
            continue
        if found:
            completions.extend(found)
            carried.append(record["messageId"])
    if notices:
        failures.extend(_vault_notices(notices))
    try:
        services().completions.record(completions)
    except Exception:
        logger.exception("completions not recorded; the batch will be retried", extra={"events": len(completions)})
        failures.extend({"itemIdentifier": m} for m in carried)
    return {"batchItemFailures": failures}


def _vault_notices(notices: list[tuple[str, VaultJobNotice]]) -> list[dict[str, str]]:
    """Apply Glacier vault job notices; the failures to retry."""
    mover = services().vault
    if mover is None:
        logger.warning("Glacier job notices, but this stack moves no vaults", extra={"notices": len(notices)})
        return []
    touched, failed = mover.on_notices([notice for _, notice in notices])
    try:
        for job_id in sorted(touched):
            services().notifier.evaluate(job_id)
    except Exception:
        logger.exception("jobs of Glacier notices not evaluated; the notices will be retried", extra={"jobs": len(touched)})
        return [{"itemIdentifier": message_id} for message_id, _ in notices]
    return [{"itemIdentifier": message_id} for message_id, notice in notices if any(notice is f for f in failed)]


def _batch_status(status: BatchStatusChanged) -> bool:
    """Apply one Batch job status change; False: to be retried."""
    engine = services().batch
    if engine is None:
        logger.warning("S3 Batch Operations status event, but this stack runs no batch engine", extra={"batch_job_id": status.batch_job_id})
        return True
    try:
        if not engine.on_status(status.batch_job_id, status.status, status.failure_codes, status.reason):
            logger.info("status event of a Batch job of no job of ours", extra={"batch_job_id": status.batch_job_id})
        return True
    except Exception:
        logger.exception("Batch job status not applied; the message will be retried", extra={"batch_job_id": status.batch_job_id})
        return False
