"""HTTP plumbing of the REST API: reading requests, building URLs, and the one place where
errors become HTTP answers: {"error": {"code", "message", "details"}}."""

from __future__ import annotations

import json
import re
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from pydantic import ValidationError

from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent

from bulk_restore.domain.errors import (
    BucketNotAllowed,
    BulkRestoreError,
    InvalidRequest,
    JobAlreadyFinished,
    JobNotFound,
    ManifestChanged,
    ManifestLocationNotAllowed,
    ManifestUnreadable,
    RequestTooLarge,
)

logger = Logger(child=True)

STATUS = {
    InvalidRequest: 400,
    BucketNotAllowed: 403,
    ManifestLocationNotAllowed: 403,
    JobNotFound: 404,
    JobAlreadyFinished: 409,
    ManifestUnreadable: 422,
    ManifestChanged: 422,
    RequestTooLarge: 413,
}


MAX_BODY_BYTES = 16 * 1024  # a create-job body is a few hundred bytes; the manifest stays in S3


def json_body(event: APIGatewayProxyEvent) -> Any:
    """The request's JSON body, refusing an empty or oversized one with what to send instead."""
    body = event.body or ""
    if len(body) > MAX_BODY_BYTES:
        raise RequestTooLarge(f"the request body is over {MAX_BODY_BYTES} bytes: put the object list in the manifest, in S3")
    if not body.strip():
        raise InvalidRequest("the request body is empty: send a JSON object with bucket, key and tier")
    try:
        return event.json_body
    except RecursionError as exc:
        raise InvalidRequest("the request body is not JSON we accept: it is nested too deeply") from exc


IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,128}$")


def idempotency_key(event: APIGatewayProxyEvent) -> str | None:
    """The Idempotency-Key header, if any: 1 to 128 visible ASCII characters."""
    key = event.headers.get("Idempotency-Key")
    if key is not None and not IDEMPOTENCY_KEY.match(key):
        raise InvalidRequest("the Idempotency-Key header must be 1 to 128 visible ASCII characters (a UUID will do)")
    return key


def page_size(event: APIGatewayProxyEvent, default: int = 100, maximum: int = 1000) -> int:
    raw = (event.query_string_parameters or {}).get("limit", str(default))
    if not raw.isdigit() or not 1 <= int(raw) <= maximum:
        raise InvalidRequest(f"limit must be a whole number from 1 to {maximum}", {"limit": raw})
    return int(raw)


def base_url(event: APIGatewayProxyEvent) -> str:
    """The API's public base URL as the client called it (with the stage on API Gateway)."""
    proto = event.headers.get("X-Forwarded-Proto", "https")
    full_path = event.request_context.path or event.path
    prefix = full_path[: len(full_path) - len(event.path)] if full_path.endswith(event.path) else ""
    return f"{proto}://{event.headers.get('Host', 'localhost')}{prefix}"


def error_response(status: int, code: str, message: str, details: Any = None) -> Response:
    body = {"error": {"code": code, "message": message, "details": details or {}}}
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=json.dumps(body))


def validation_details(exc: ValidationError) -> list[dict[str, Any]]:
    return [
        {"field": ".".join(str(p) for p in err["loc"]) or "(body)", "problem": err["msg"]}
        for err in exc.errors(include_url=False, include_input=False)
    ]


def install(app: APIGatewayRestResolver) -> None:
    @app.exception_handler(ValidationError)
    def _invalid(exc: ValidationError) -> Response:
        details = validation_details(exc)
        summary = "; ".join(f"{d['field']}: {d['problem']}" for d in details)
        return error_response(400, "InvalidRequest", f"the request body is not valid: {summary}", details)

    @app.exception_handler(json.JSONDecodeError)
    def _not_json(exc: json.JSONDecodeError) -> Response:
        return error_response(400, "InvalidRequest", f"the request body is not JSON: {exc.msg} at position {exc.pos}")

    @app.exception_handler(BulkRestoreError)
    def _domain(exc: BulkRestoreError) -> Response:
        return error_response(STATUS.get(type(exc), 400), exc.code, exc.message, exc.details)

    @app.not_found
    def _no_route(exc: Exception) -> Response:
        return error_response(404, "NotFound", "no such route: see the API reference in the README")

    @app.exception_handler(Exception)
    def _unexpected(exc: Exception) -> Response:
        logger.exception("unexpected error")
        return error_response(500, "InternalError", "internal error: the request was not completed; retry later")
