"""Dollars from counts: the price data file (src/bulk_restore/prices.json, the one the create-job
estimate reads too) applied to a cost profile."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from bulk_restore.domain.estimate import PRICES_FILE

S3_GET_CLASS = {"GetObject", "HeadObject", "GetBucketNotificationConfiguration"}
GIB = 2**30


@lru_cache(maxsize=1)
def load(path: str | None = None) -> dict[str, Any]:
    return json.loads(Path(path or PRICES_FILE).read_text(encoding="utf-8"))


def dollars(
    profile: dict[str, Any], restore_class_tier: str = "GLACIER.Standard", prices: dict[str, Any] | None = None
) -> dict[str, float]:
    """The job's cost by item, in dollars. ``s3_restore_requests`` is S3's fee for the restores
    themselves (the same whatever orchestrates them); ``orchestration`` is everything else."""
    p = prices or load()
    requests = profile["requests"]
    by_operation: dict[str, int] = requests["code_by_operation"]
    s3_get = sum(n for op, n in by_operation.items() if op.startswith("s3.") and op[3:] in S3_GET_CLASS)
    s3_put = sum(n for op, n in by_operation.items() if op.startswith("s3.") and op[3:] not in S3_GET_CLASS | {"RestoreObject"})
    functions = profile["lambda"].values()
    invocations = sum(f["invocations"] for f in functions)
    log_bytes = profile["logs"]["app_bytes"] + profile["logs"]["platform_bytes"]
    items = {
        "s3_restore_requests": (requests["restore_object"] + requests.get("batch_tasks", 0))
        * restore_request_price(p, restore_class_tier)
        / 1000,
        "s3_batch_operations": (
            requests.get("batch_jobs", 0) * p["s3_batch_operations"]["per_job"]
            + requests.get("batch_tasks", 0) * p["s3_batch_operations"]["per_million_objects"] / 1e6
        ),
        "s3_other_requests": s3_get * p["s3"]["get_head_per_thousand"] / 1000 + s3_put * p["s3"]["put_post_list_per_thousand"] / 1000,
        "dynamodb_writes": profile["dynamodb"]["wru"] * p["dynamodb"]["per_million_write_request_units"] / 1e6,
        "dynamodb_reads": profile["dynamodb"]["rru"] * p["dynamodb"]["per_million_read_request_units"] / 1e6,
        "sqs": (
            profile["sqs"]["fifo_requests_billed"] * p["sqs"]["fifo_per_million_requests"]
            + profile["sqs"]["standard_requests_billed"] * p["sqs"]["standard_per_million_requests"]
        )
        / 1e6,
        "sns": profile["sns"]["billed"] * p["sns"]["publish_per_million_requests"] / 1e6,
        "lambda_requests": invocations * p["lambda"]["per_million_requests"] / 1e6,
        "lambda_compute": sum(f["gb_s"] for f in functions) * p["lambda"]["arm64_per_gb_second"],
        "cloudwatch_logs": log_bytes / GIB * p["cloudwatch_logs"]["ingestion_per_gb"],
        "xray_upper_bound": invocations * p["xray"]["per_million_traces_recorded"] / 1e6,
        "api_gateway": profile.get("api_requests", 1) * p["api_gateway"]["rest_per_million_requests"] / 1e6,
    }
    items["orchestration"] = sum(v for k, v in items.items() if k != "s3_restore_requests")
    items["total"] = items["orchestration"] + items["s3_restore_requests"]
    return items


def restore_request_price(prices: dict[str, Any], class_tier: str) -> float:
    """S3's fee per 1,000 restore requests of ``class_tier`` ("GLACIER.Standard"), from the file's restore section."""
    storage_class, tier = class_tier.split(".")
    return float(prices["restore"][storage_class][tier.upper()]["requests_per_thousand"])


def per_million_objects(profile: dict[str, Any], **kwargs: Any) -> dict[str, float]:
    scale = 1e6 / profile["objects"]
    return {k: v * scale for k, v in dollars(profile, **kwargs).items()}


def batch_operations_per_million(prices: dict[str, Any] | None = None) -> float:
    """What S3 Batch Operations charges to issue a million restores in one job (restore fees apart)."""
    p = prices or load()
    return p["s3_batch_operations"]["per_million_objects"] + p["s3_batch_operations"]["per_job"]
