"""HTTP plumbing of the REST API: routing, reading requests, building URLs, and the one place
where errors become HTTP answers: {"error": {"code", "message", "details"}}."""

from __future__ import annotations

import base64
import binascii
import json
import re
import sys
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent
from pydantic import ValidationError

from bulk_restore.api_models import ErrorAnswer, conform
from bulk_restore.domain.errors import (
    BucketNotAllowed,
    BulkRestoreError,
    EstimateOverMaxCost,
    IdempotencyKeyMismatch,
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
    IdempotencyKeyMismatch: 409,
    ManifestUnreadable: 422,
    ManifestChanged: 422,
    RequestTooLarge: 413,
    EstimateOverMaxCost: 422,
}


MAX_BODY_BYTES = 16 * 1024  # a create-job body is a few hundred bytes; the manifest stays in S3


class RestResolver(APIGatewayRestResolver):
    """Powertools' REST resolver, routing as API Gateway does: a path parameter is any one path
    segment. (Powertools' own pattern takes only URL-safe characters, so "/jobs/a#b" would be "no
    such route" here when API Gateway sent it to the job route; now the use case answers JobNotFound.)"""

    @staticmethod
    def _compile_regex(rule: str, base_regex: str = "^{}/*$") -> re.Pattern[str]:
        return re.compile(base_regex.format(re.sub(r"<(\w+)>", r"(?P<\1>[^/]+)", rule)))


class _TooManyDigits(int):
    """A JSON integer Python will not convert (over sys.get_int_max_str_digits() digits)."""

    digits: int


def _parse_int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        number = _TooManyDigits(0)
        number.digits = len(text.lstrip("-"))
        return number


def _no_constant(name: str) -> Any:
    raise InvalidRequest(f"the request body is not JSON: {name} is not a JSON number; send numbers as digits")


def _body_bytes(event: APIGatewayProxyEvent) -> bytes:
    body = event.body or ""
    if not event.is_base64_encoded:
        return body.encode("utf-8", "surrogatepass")  # a lone surrogate is no UTF-8: refused below
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidRequest("the request body is marked base64-encoded (isBase64Encoded) but is not valid base64") from exc


def _field(path: list[Any]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else str(p)) for i, p in enumerate(path)) or "(body)"


def _check_values(doc: Any) -> None:
    """Refuse what json.loads lets through but no field can use: numbers too long to convert, and
    strings holding lone surrogates (a "\\ud800" escape: no Unicode text, no UTF-8)."""
    pending: list[tuple[list[Any], Any]] = [([], doc)]
    while pending:
        path, value = pending.pop()
        if isinstance(value, _TooManyDigits):
            raise InvalidRequest(
                f"{_field(path)} is a number of {value.digits} digits, more than {sys.get_int_max_str_digits()} digits: no field takes such a number "
                "(see the API reference for each field's range)",
                [{"field": _field(path), "problem": f"a number of {value.digits} digits"}],
            )
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as exc:
                char = f"\\u{ord(value[exc.start]):04x}"
                raise InvalidRequest(
                    f"the request body is not UTF-8 text: {_field(path)} holds a lone surrogate ({char}); send text as UTF-8",
                    [{"field": _field(path), "problem": f"lone surrogate {char}"}],
                ) from exc
        elif isinstance(value, dict):
            for name, item in value.items():
                pending.append((path, name))
                pending.append(([*path, name], item))
        elif isinstance(value, list):
            pending.extend(([*path, i], item) for i, item in enumerate(value))


def json_body(event: APIGatewayProxyEvent) -> Any:
    """The request's JSON body, refusing with what to send instead one that is empty, oversized,
    not UTF-8, not JSON, or holds values JSON allows but no field can take."""
    raw = _body_bytes(event)
    if len(raw) > MAX_BODY_BYTES:
        raise RequestTooLarge(f"the request body is over {MAX_BODY_BYTES} bytes: put the object list in the manifest, in S3")
    if not raw.strip():
        raise InvalidRequest("the request body is empty: send a JSON object with bucket, key and tier")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidRequest(f"the request body is not UTF-8 (byte {exc.start}): send the JSON encoded as UTF-8") from exc
    try:
        doc = json.loads(text, parse_int=_parse_int, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise InvalidRequest(f"the request body is not JSON: {exc.msg} at position {exc.pos}") from exc
    except RecursionError as exc:
        raise InvalidRequest("the request body is not JSON we accept: it is nested too deeply") from exc
    _check_values(doc)
    return doc


IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,128}$")


def idempotency_key(event: APIGatewayProxyEvent) -> str | None:
    """The Idempotency-Key header, if any: 1 to 128 visible ASCII characters."""
    key = event.headers.get("Idempotency-Key")
    if key is not None and not IDEMPOTENCY_KEY.match(key):
        raise InvalidRequest("the Idempotency-Key header must be 1 to 128 visible ASCII characters (a UUID will do)")
    return key


_LIMIT = re.compile(r"[0-9]{1,7}")  # ASCII digits only: "²".isdigit() is True, int("²") fails


def page_size(event: APIGatewayProxyEvent, default: int = 100, maximum: int = 1000) -> int:
    raw = (event.query_string_parameters or {}).get("limit", str(default))
    if not _LIMIT.fullmatch(raw) or not 1 <= int(raw) <= maximum:
        raise InvalidRequest(f"limit must be a whole number from 1 to {maximum}", {"limit": raw[:20]})
    return int(raw)


def base_url(event: APIGatewayProxyEvent) -> str:
    """The API's public base URL as the client called it (with the stage on API Gateway)."""
    proto = event.headers.get("X-Forwarded-Proto", "https")
    full_path = event.request_context.path or event.path
    prefix = full_path[: len(full_path) - len(event.path)] if full_path.endswith(event.path) else ""
    return f"{proto}://{event.headers.get('Host', 'localhost')}{prefix}"


def error_response(status: int, code: str, message: str, details: Any = None) -> Response:
    body = conform(ErrorAnswer, {"error": {"code": code, "message": message, "details": details or {}}})
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
