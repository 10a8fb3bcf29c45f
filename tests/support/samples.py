"""The event samples in events/ (the files the docs point to), with ids swapped in for a test."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

EVENTS_DIR = Path(__file__).resolve().parents[2] / "events"


def sqs_event(name: str) -> dict[str, Any]:
    """An SQS event file as Lambda receives it."""
    return json.loads((EVENTS_DIR / name).read_text(encoding="utf-8"))


def scheduled_event() -> dict[str, Any]:
    """The EventBridge schedule's event, as the sweeper receives it every 15 minutes."""
    return json.loads((EVENTS_DIR / "sweeper_schedule.json").read_text(encoding="utf-8"))


def body(name: str, record: int = 0) -> dict[str, Any]:
    """The parsed body of one record of an SQS event file."""
    return json.loads(sqs_event(name)["Records"][record]["body"])


def with_bodies(name: str, bodies: list[str]) -> dict[str, Any]:
    """The SQS event of ``name`` carrying ``bodies`` (one record each, ids made unique)."""
    template = sqs_event(name)["Records"][0]
    records = []
    for n, text in enumerate(bodies):
        record = copy.deepcopy(template)
        record["messageId"] = f"{template['messageId'][:-4]}{n:04d}"
        record["body"] = text
        records.append(record)
    return {"Records": records}


def s3_notification(bucket: str, key: str, version_id: str | None = None) -> str:
    """An S3 event notification body ("ObjectRestore:Completed") for one object: the key form-encoded, as S3 sends it."""
    doc = body("completion_s3_notification.json")
    record = doc["Records"][0]
    record["s3"]["bucket"]["name"] = bucket
    record["s3"]["bucket"]["arn"] = f"arn:aws:s3:::{bucket}"
    record["s3"]["object"]["key"] = quote_plus(key, safe="/")
    record["s3"]["object"].pop("versionId", None)
    if version_id:
        record["s3"]["object"]["versionId"] = version_id
    return json.dumps({"Records": [record]})


def eventbridge_completed(bucket: str, key: str, version_id: str | None = None) -> str:
    """An EventBridge "Object Restore Completed" body for one object (the key as it is)."""
    doc = body("completion_eventbridge.json")
    doc["resources"] = [f"arn:aws:s3:::{bucket}"]
    doc["detail"]["bucket"]["name"] = bucket
    doc["detail"]["object"]["key"] = key
    doc["detail"]["object"]["version-id"] = version_id or "null"
    return json.dumps(doc)


def sns_wrapped(message: str) -> str:
    """An S3 notification as an SQS subscriber of an SNS topic receives it (no raw delivery)."""
    doc = body("completion_sns_s3_notification.json")
    doc["Message"] = message
    return json.dumps(doc)


def completion(shape: str, bucket: str, key: str, version_id: str | None = None) -> str:
    if shape == "s3":
        return s3_notification(bucket, key, version_id)
    if shape == "eventbridge":
        return eventbridge_completed(bucket, key, version_id)
    if shape == "sns":
        return sns_wrapped(s3_notification(bucket, key, version_id))
    raise ValueError(shape)


def plan_step(job_id: str, step: int = 0) -> dict[str, Any]:
    doc = body("plan_step.json")
    doc.update(job_id=job_id, step=step)
    return doc


def restore_chunk(
    job_id: str, chunk: int | None = None, rows: list[list[Any]] | None = None, errors: list[list[Any]] | None = None
) -> dict[str, Any]:
    doc = body("restore_chunk.json")
    doc["job_id"] = job_id
    if chunk is not None:
        doc["chunk"] = chunk
    if rows is not None:
        doc["rows"] = rows
    if errors is not None:
        doc["errors"] = errors
    return doc
