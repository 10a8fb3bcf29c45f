"""The REST API's OpenAPI 3.1 document, generated from the code's models: the create-job request
(``usecases.jobs.CreateJobRequest``) and the answers (``api_models``).

``make openapi`` (``python -m bulk_restore.openapi``) writes it to ``openapi.json`` at the
repository's top level, where it is committed; ``GET /openapi.json`` serves it with the URL it was
called at as its server. A test fails when the committed file is not what this module generates.
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from bulk_restore import __version__
from bulk_restore.api_models import CreateJobAnswer, ErrorAnswer, JobsPage, JobStatusDocument, ObjectsPage
from bulk_restore.domain.model import ObjectState
from bulk_restore.handlers.rest import STATUS
from bulk_restore.usecases.estimate import DryRunAnswer
from bulk_restore.usecases.jobs import CreateJobRequest

OPENAPI_VERSION = "3.1.0"
SCHEMAS = "#/components/schemas/"
DEFAULT_PATH = Path("openapi.json")

# The create-job fields' meaning (as the README's API reference gives it), for fields whose model
# declares no description of its own. Every field of CreateJobRequest needs one (a test checks).
REQUEST_FIELDS = {
    "bucket": "The manifest's bucket: the stack's ManifestBucket (or one of the ManifestBuckets parameter). "
    "Required with key, unless source or vault says what to restore",
    "key": "The manifest's key: an S3 Batch Operations CSV (bucket,key[,versionId], keys URL-encoded), or with "
    "manifest_format s3-inventory the manifest.json of an S3 Inventory report",
    "tier": "The retrieval tier: STANDARD, BULK or EXPEDITED, in any case",
    "expiration_days": "Days the restored copies stay readable (ignored by S3 for Intelligent-Tiering)",
    "client_tag": "Your label: it comes back in every event and as a message attribute",
    "client_token": "Idempotency key, as the Idempotency-Key header: a repeat makes no second job",
    "progress_step_percent": "Progress event step for this job (default: the stack's ProgressStepPercent)",
    "expedited_fallback": "When Expedited has no capacity (or the object is in Deep Archive), restore with Standard instead of waiting",
    "deadline_hours": "When to give up waiting and end the job as Timeout (default: from the tier)",
    "keep_restored_days": "Keep renewing the restored copies for this many days after the job completes",
    "engine": "Who sends the restore requests: direct (the stack's functions), batch (one S3 Batch Operations job), "
    "auto (batch from the stack's BatchEngineMinObjects objects on)",
    "manifest_format": "csv (an S3 Batch Operations CSV) or s3-inventory (key is an S3 Inventory report's manifest.json)",
    "include_versions": "With s3-inventory: restore the report's noncurrent versions too",
    "source": "Instead of bucket and key: restore the objects under a prefix of a bucket, listed while planning",
    "vault": "A Glacier vault whose archives go into S3 (with target, and archives, bucket and key, or inventory)",
    "archives": "A vault job's archive ids",
    "target": "A vault job's S3 destination",
    "inventory": "A vault job of every archive its vault's inventory lists",
    "key_from": "How a vault job names its objects: from the archive's description (with inventory) or its id",
    "max_archives": "A vault job moves at most this many archives",
    "filter": "With inventory: which archives to move, by creation date and size (the others SKIPPED)",
    "max_bytes_per_day": "With inventory: a daily retrieval quota in bytes",
    "overrides": "With inventory: a CSV (archive_id,key) in the manifest bucket naming archives",
    "split_large_archives": "An archive over S3's 5 TiB object limit becomes objects of 4 TiB instead of FAILED",
}

# Each error status: what it means, and the codes other than the service's errors (handlers/rest.py
# STATUS adds those): a request pydantic refuses, API Gateway's own answers (template.yaml's
# GatewayResponses), an unexpected failure.
REQUEST_EXAMPLES = {
    "manifest": {
        "summary": "A manifest in the stack's ManifestBucket",
        "value": {
            "bucket": "my-manifests",
            "key": "restores/2026-11/manifest.csv",
            "tier": "STANDARD",
            "expiration_days": 1,
            "client_tag": "finance-archive",
        },
    },
    "prefix": {
        "summary": "Every archived object under a prefix",
        "value": {"source": {"bucket": "my-archive", "prefix": "photos/2019/"}, "tier": "BULK", "expiration_days": 7},
    },
    "estimate": {
        "summary": "The price first: an estimate, nothing created",
        "value": {"bucket": "my-manifests", "key": "restores/2026-11/manifest.csv", "tier": "BULK", "dry_run": True},
    },
}

ERRORS = {
    400: ("The request is not valid: details names the fields at fault and the message what to send", ["InvalidRequest"]),
    403: (
        "No valid x-api-key (API Gateway); a manifest outside the stack's manifest buckets; a bucket outside AllowedBuckets",
        ["MissingOrInvalidApiKey", "Forbidden"],
    ),
    404: ("No such job (or an id that is no job id); no such route (API Gateway)", ["NotFound"]),
    409: ("An idempotency key made a job with another request (details.differences); the job has already ended (details.status)", []),
    413: ("The body is over 16 KiB (over 10 MB: API Gateway): the object list belongs in the manifest", ["RequestTooLarge"]),
    422: ("The manifest does not exist, cannot be read, or its first row is not an object; the estimate is over max_cost_usd", []),
    429: ("The API key's usage plan: retry after a pause, or tomorrow (API Gateway)", ["Throttled", "QuotaExceeded"]),
    500: ("The request was not completed: retry later (with the same Idempotency-Key)", ["InternalError"]),
    502: ("The function failed (API Gateway): retry later", ["InternalError"]),
    504: ("No answer within 29 seconds (API Gateway): retry (with the same Idempotency-Key)", ["Timeout"]),
}


def error_codes(status: int) -> list[str]:
    """The error codes an answer of this status may carry."""
    return sorted({*ERRORS[status][1], *(error.code for error, answered in STATUS.items() if answered == status)})


EVERY_ROUTE = (403, 429, 500, 502, 504)  # API Gateway's (key, usage plan, function failure, timeout) and ours

JOB_ID = {
    "name": "job_id",
    "in": "path",
    "required": True,
    "description": "A job id, as create-job answered it (BulkJobId)",
    "schema": {"type": "string", "format": "uuid"},
}
NEXT_TOKEN = {
    "name": "next_token",
    "in": "query",
    "required": False,
    "description": "NextToken of the previous page, unchanged (absent or empty: the first page)",
    "schema": {"type": "string"},
}


def limit_parameter(maximum: int = 1000, default: int = 100) -> dict[str, Any]:
    return {
        "name": "limit",
        "in": "query",
        "required": False,
        "description": f"Page size, 1 to {maximum} (ASCII digits)",
        "schema": {"type": "integer", "minimum": 1, "maximum": maximum, "default": default},
    }


def operation(
    operation_id: str,
    summary: str,
    ok: str,
    answer: type[BaseModel] | None,
    errors: tuple[int, ...],
    parameters: list[dict[str, Any]] | None = None,
    body: dict[str, Any] | None = None,
    ok_schema: dict[str, Any] | None = None,
) -> dict[str, Any]:
    statuses = sorted({*errors, *EVERY_ROUTE})
    op: dict[str, Any] = {"operationId": operation_id, "summary": summary}
    if parameters:
        op["parameters"] = parameters
    if body:
        op["requestBody"] = body
    op["responses"] = {
        "200": {"description": ok, "content": {"application/json": {"schema": ok_schema or {"$ref": f"{SCHEMAS}{answer.__name__}"}}}}
    }  # type: ignore[union-attr]
    for status in statuses:
        op["responses"][str(status)] = {
            "description": f"{', '.join(error_codes(status))}: {ERRORS[status][0]}",
            "content": {"application/json": {"schema": {"$ref": f"{SCHEMAS}ErrorAnswer"}}},
        }
    return op


def paths() -> dict[str, Any]:
    """Every route of the API (handlers/api.py; the API events of template.yaml)."""
    states = [s.value for s in ObjectState]
    create_job = operation(
        "createJob",
        "Create a restore job (or find the one an idempotency key made); with dry_run, its estimate",
        "The job (CreateJobAnswer), or with dry_run true its estimate, nothing created (DryRunAnswer)",
        None,
        (400, 403, 409, 413, 422),
        ok_schema={"oneOf": [{"$ref": f"{SCHEMAS}CreateJobAnswer"}, {"$ref": f"{SCHEMAS}DryRunAnswer"}]},
        parameters=[
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "description": "1 to 128 visible ASCII characters (a UUID will do): a repeat with the same key "
                "and request answers the same job; with another request, a 409",
                "schema": {"type": "string", "pattern": r"^[\x21-\x7e]{1,128}$"},
            }
        ],
        body={
            "required": True,
            "description": "What to restore, and how. Unknown fields are ignored with a warning",
            "content": {"application/json": {"schema": {"$ref": f"{SCHEMAS}CreateJobRequest"}, "examples": REQUEST_EXAMPLES}},
        },
    )
    return {
        "/create-job": {"post": create_job},
        "/jobs": {
            "get": operation(
                "listJobs",
                "The jobs, newest first, a page at a time",
                "A page of jobs",
                JobsPage,
                (400,),
                parameters=[limit_parameter(maximum=100, default=20), NEXT_TOKEN],
            )
        },
        "/jobs/{job_id}": {
            "get": operation("getJob", "A job's status", "The job's status", JobStatusDocument, (404,), parameters=[JOB_ID])
        },
        "/jobs/{job_id}/cancel": {
            "post": operation(
                "cancelJob",
                "Stop a job: it ends as Cancelled; restores S3 already accepted go on",
                "The job's status, Cancelled",
                JobStatusDocument,
                (404, 409),
                parameters=[JOB_ID],
            )
        },
        "/jobs/{job_id}/objects": {
            "get": operation(
                "listObjects",
                "A job's objects, optionally of one state, a page at a time",
                "A page of the job's objects",
                ObjectsPage,
                (400, 404),
                parameters=[
                    JOB_ID,
                    {
                        "name": "state",
                        "in": "query",
                        "required": False,
                        "description": "Only objects in this state (any case)",
                        "schema": {"type": "string", "enum": states},
                    },
                    limit_parameter(),
                    NEXT_TOKEN,
                ],
            )
        },
        "/openapi.json": {
            "get": operation(
                "getOpenApiDocument",
                "This document",
                "The API's OpenAPI document, with the URL it was fetched from as its server",
                None,
                (),
                ok_schema={"type": "object", "required": ["openapi", "paths"]},
            )
        },
    }


def _strip_titles(schema: Any) -> Any:
    """pydantic's generated titles ("Expiration Days") say nothing the names do not."""
    if isinstance(schema, dict):
        return {k: _strip_titles(v) for k, v in schema.items() if not (k == "title" and isinstance(v, str))}
    if isinstance(schema, list):
        return [_strip_titles(v) for v in schema]
    return schema


def _request_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The create-job request's schema, with each field's meaning and the spellings the API accepts."""
    properties = schema["properties"]
    for name, field in CreateJobRequest.model_fields.items():
        if field.description is None and name in REQUEST_FIELDS:
            properties[name]["description"] = REQUEST_FIELDS[name]
    properties["tier"] = {
        "type": "string",
        "enum": ["STANDARD", "BULK", "EXPEDITED"],
        "default": "STANDARD",
        "description": properties["tier"].get("description", REQUEST_FIELDS["tier"]),
    }
    schema["description"] = (
        "The body of POST /create-job: bucket and key (a manifest), or source (a prefix), or vault with "
        "target (a Glacier vault's archives into S3). Fields it does not know are ignored, with a warning "
        "in the answer; the known ones are checked strictly."
    )
    return schema


def components() -> dict[str, Any]:
    models: list[type[BaseModel]] = [CreateJobRequest, ErrorAnswer, CreateJobAnswer, DryRunAnswer, JobStatusDocument, ObjectsPage, JobsPage]
    _, top = models_json_schema([(model, "validation") for model in models], ref_template=SCHEMAS + "{model}")
    schemas = {name: _strip_titles(schema) for name, schema in top["$defs"].items()}
    schemas.pop("Tier", None)  # the request's tier is described inline, in the spellings the API documents
    schemas["CreateJobRequest"] = _request_schema(schemas["CreateJobRequest"])
    return {
        "schemas": dict(sorted(schemas.items())),
        "securitySchemes": {
            "ApiKey": {
                "type": "apiKey",
                "in": "header",
                "name": "x-api-key",
                "description": "The stack's API key: the ApiKeyCommand output prints it",
            }
        },
    }


@functools.lru_cache(maxsize=1)
def _document() -> dict[str, Any]:
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "bulk-restore",
            "version": __version__,
            "summary": "Restore large sets of archived S3 objects and Glacier vault archives; one event when a whole job is done",
            "description": "Every route needs the API key in the x-api-key header. Every error, the service's and API "
            'Gateway\'s own, is {"error": {"code", "message", "details"}}; the message says what to fix. '
            "See the README's API reference.",
            "license": {"name": "MIT-0", "identifier": "MIT-0"},
        },
        "servers": [
            {
                "url": "https://{api_id}.execute-api.{region}.amazonaws.com/prod",
                "description": "A deployed stack (its RestAPI output)",
                "variables": {"api_id": {"default": "api_id"}, "region": {"default": "us-east-1"}},
            }
        ],
        "security": [{"ApiKey": []}],
        "paths": paths(),
        "components": components(),
    }


def document() -> dict[str, Any]:
    """The API's OpenAPI document, as committed in openapi.json."""
    return copy.deepcopy(_document())


def served_document(base_url: str) -> dict[str, Any]:
    """The document as GET /openapi.json answers it: its server is the URL it was fetched from."""
    return _document() | {"servers": [{"url": base_url, "description": "This stack"}]}


def render() -> str:
    return json.dumps(document(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bulk_restore.openapi", description="Write the API's OpenAPI document.")
    parser.add_argument("path", nargs="?", type=Path, default=DEFAULT_PATH, help="where to write it (default: openapi.json)")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if the file differs from the code's document")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = args.path.read_text(encoding="utf-8") if args.path.exists() else ""
        if current != text:
            print(f"{args.path} is not the code's API document: run `make openapi` and commit it", file=sys.stderr)
            return 1
        return 0
    args.path.write_text(text, encoding="utf-8")
    print(f"wrote {args.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
