"""The one place where errors become HTTP answers: {"error": {"code", "message", "details"}}."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from pydantic import ValidationError

from bulk_restore.domain.errors import (
    BucketNotAllowed,
    BulkRestoreError,
    InvalidRequest,
    JobAlreadyFinished,
    JobNotFound,
    ManifestChanged,
    ManifestUnreadable,
    RequestTooLarge,
)

logger = Logger(child=True)

STATUS = {
    InvalidRequest: 400,
    BucketNotAllowed: 403,
    JobNotFound: 404,
    JobAlreadyFinished: 409,
    ManifestUnreadable: 422,
    ManifestChanged: 422,
    RequestTooLarge: 413,
}


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
