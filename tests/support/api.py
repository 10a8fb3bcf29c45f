"""API Gateway REST proxy events for the API handler, and a call helper."""

from __future__ import annotations

import json
from base64 import b64encode
from typing import Any

from bulk_restore_cli.local.lambda_runtime import LambdaContext


def api_event(
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    stage: str = "prod",
    base64: bool = False,
) -> dict[str, Any]:
    """A REST API proxy event as API Gateway sends it (``body`` is sent as given when a str).

    ``base64``: the body comes base64-encoded with ``isBase64Encoded`` (bytes are encoded here; a
    str is sent as it is, as if already encoded)."""
    all_headers = {
        "Host": "abc123.execute-api.us-east-1.amazonaws.com",
        "X-Forwarded-Proto": "https",
        "Content-Type": "application/json",
        **(headers or {}),
    }
    if base64 and isinstance(body, bytes):
        body = b64encode(body).decode("ascii")
    elif body is not None and not isinstance(body, str):
        body = json.dumps(body)
    return {
        "resource": path,
        "path": path,
        "httpMethod": method,
        "headers": all_headers,
        "multiValueHeaders": {k: [v] for k, v in all_headers.items()},
        "queryStringParameters": query or None,
        "multiValueQueryStringParameters": {k: [v] for k, v in query.items()} if query else None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": path,
            "httpMethod": method,
            "path": f"/{stage}{path}",
            "stage": stage,
            "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
            "accountId": "123456789012",
            "apiId": "abc123",
            "identity": {"sourceIp": "192.0.2.1", "userAgent": "pytest"},
            "protocol": "HTTP/1.1",
            "requestTimeEpoch": 1700000000000,
        },
        "body": body,
        "isBase64Encoded": base64,
    }


def call_api(
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    base64: bool = False,
) -> tuple[int, dict[str, Any]]:
    """Invoke the API function with a proxy event; returns (status code, JSON body)."""
    from bulk_restore.handlers import api

    event = api_event(method, path, body, headers, query, base64=base64)
    response = api.handler(event, LambdaContext("bulk-restore-api", timeout_s=29))
    return response["statusCode"], json.loads(response["body"] or "null")
