"""The REST API served as API Gateway serves it: Lambda proxy integration, API keys, its errors.

Requests become API Gateway REST proxy events (payload format 1.0) for the routes the
template's Api events define, and the function's answer ({statusCode, headers,
multiValueHeaders, body, isBase64Encoded}) becomes the HTTP response. What API Gateway itself
answers is kept, by gateway response type: MISSING_AUTHENTICATION_TOKEN (403 "Missing
Authentication Token") for a route that does not exist, INVALID_API_KEY (403 "Forbidden")
without a valid x-api-key, REQUEST_TOO_LARGE (413) above 10 MB, THROTTLED and QUOTA_EXCEEDED
(429) beyond the usage plan's rate, burst and quota for the key, DEFAULT_5XX (502 "Internal
server error") when the function raises or answers something malformed, INTEGRATION_TIMEOUT
(504) after the 29-second integration timeout. Gateway responses the template customises
(the SAM Api's GatewayResponses: status code, headers, body template) replace these defaults,
the type's own or else DEFAULT_4XX / DEFAULT_5XX, as on AWS.

Paths are served without the stage prefix (``/jobs/1``) and with it (``/prod/jobs/1``); as on
AWS, ``requestContext.path`` is the path as requested and ``path`` the path without the stage.
"""

from __future__ import annotations

import base64
import concurrent.futures
import json
import logging
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from bulk_restore_cli.local.lambda_runtime import Handler, LambdaContext

log = logging.getLogger(__name__)

MAX_PAYLOAD_BYTES = 10 * 1024 * 1024
INTEGRATION_TIMEOUT_S = 29
# Connections waiting to be accepted (the kernel caps it at net.core.somaxconn): enough for
# hundreds of clients connecting at once. The stdlib's default, 5, resets the rest.
LISTEN_BACKLOG = 1024
IDLE_CONNECTION_SECONDS = 60
# Invocations of the API's functions at once: each request has its own, as Lambda scales out
# (threads are made as requests need them).
MAX_INVOCATIONS = 256
_PARAMETER = re.compile(r"\{([^}/]+?)(\+?)\}")

# API Gateway's own answers when the template does not customise them:
# gateway response type -> (status code, {"message": ...}, x-amzn-ErrorType)
DEFAULT_GATEWAY_RESPONSES: dict[str, tuple[int, str, str]] = {
    "MISSING_AUTHENTICATION_TOKEN": (403, "Missing Authentication Token", "MissingAuthenticationTokenException"),
    "INVALID_API_KEY": (403, "Forbidden", "ForbiddenException"),
    "REQUEST_TOO_LARGE": (413, "Request Too Long", "RequestTooLarge"),
    "THROTTLED": (429, "Too Many Requests", "TooManyRequestsException"),
    "QUOTA_EXCEEDED": (429, "Limit Exceeded", "LimitExceededException"),
    "INTEGRATION_TIMEOUT": (504, "Endpoint request timed out", "IntegrationTimeout"),
    "DEFAULT_5XX": (502, "Internal server error", "InternalServerErrorException"),  # the function failed
}
# The $context variables a gateway response template may use here.
TEMPLATE_VARIABLES = ("requestId", "error.responseType", "error.message", "error.messageString")
_VARIABLE = re.compile(r"\$(?:\{context\.([\w.]+)\}|context((?:\.[A-Za-z]\w*)+))")


@dataclass(frozen=True)
class GatewayResponse:
    """A gateway response the template customises: its status (None: the type's own), body
    templates by content type, and headers (static values only)."""

    status: int | None = None
    templates: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_template(cls, spec: dict[str, Any]) -> GatewayResponse:
        """From one entry of a SAM Api's GatewayResponses (or an AWS::ApiGateway::GatewayResponse's properties)."""
        status = spec.get("StatusCode")
        parameters = spec.get("ResponseParameters") or {}
        headers = parameters.get("Headers") or {
            k.removeprefix("gatewayresponse.header."): v for k, v in parameters.items() if k.startswith("gatewayresponse.header.")
        }
        static = {name: str(value)[1:-1] for name, value in headers.items() if str(value).startswith("'") and str(value).endswith("'")}
        return cls(int(status) if status not in (None, "") else None, dict(spec.get("ResponseTemplates") or {}), static)

    def render(self, variables: dict[str, str]) -> bytes:
        template = self.templates.get("application/json", next(iter(self.templates.values()), ""))

        def value(match: re.Match[str]) -> str:
            return variables.get((match.group(1) or match.group(2).lstrip(".")), "")

        return _VARIABLE.sub(value, template).encode("utf-8")


def gateway_responses(section: dict[str, Any] | None) -> dict[str, GatewayResponse]:
    """A SAM Api's GatewayResponses property, by response type."""
    return {str(kind): GatewayResponse.from_template(spec or {}) for kind, spec in (section or {}).items()}


@dataclass
class UsagePlan:
    """The API key's usage plan: a token bucket of ``burst`` filled at ``rate`` per second, and a
    ``quota`` of requests per UTC day (None: no limit)."""

    rate: float | None = None
    burst: int | None = None
    quota: int | None = None
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict, repr=False)  # key -> (tokens, at)
    _used: dict[tuple[str, str], int] = field(default_factory=dict, repr=False)  # (key, day) -> requests
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def from_template(cls, spec: dict[str, Any] | None) -> UsagePlan:
        """From a SAM Api's Auth.UsagePlan (Throttle: BurstLimit, RateLimit; Quota: Limit, Period DAY)."""
        spec = spec or {}
        throttle, quota = spec.get("Throttle") or {}, spec.get("Quota") or {}
        per_day = {"DAY": 1, "WEEK": 7, "MONTH": 30}.get(str(quota.get("Period", "DAY")).upper(), 1)
        return cls(
            rate=float(throttle["RateLimit"]) if throttle.get("RateLimit") not in (None, "") else None,
            burst=int(throttle["BurstLimit"]) if throttle.get("BurstLimit") not in (None, "") else None,
            quota=int(quota["Limit"]) // per_day if quota.get("Limit") not in (None, "") else None,
        )

    def admit(self, api_key: str, now: float | None = None) -> str | None:
        """None if the request may go on; else the gateway response type that refuses it."""
        now = time.monotonic() if now is None else now
        day = time.strftime("%Y-%m-%d", time.gmtime())
        with self._lock:
            if self.quota is not None and self._used.get((api_key, day), 0) >= self.quota:
                return "QUOTA_EXCEEDED"
            if self.rate is not None or self.burst is not None:
                capacity = float(self.burst if self.burst is not None else max(1.0, self.rate or 1.0))
                tokens, at = self._buckets.get(api_key, (capacity, now))
                tokens = min(capacity, tokens + (now - at) * (self.rate or 0.0))
                if tokens < 1:
                    self._buckets[api_key] = (tokens, now)
                    return "THROTTLED"
                self._buckets[api_key] = (tokens - 1, now)
            self._used[(api_key, day)] = self._used.get((api_key, day), 0) + 1
        return None


@dataclass
class Route:
    """One method on one resource path, integrated with one function."""

    method: str
    path: str
    handler: Handler
    function_name: str
    timeout_s: int = INTEGRATION_TIMEOUT_S
    api_key_required: bool = False
    stage: str = "prod"
    api_id: str = "local"
    _pattern: re.Pattern[str] = field(init=False, repr=False)
    _names: list[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.method = self.method.upper()
        names: list[str] = []
        pattern, last = "", 0
        for match in _PARAMETER.finditer(self.path):
            pattern += re.escape(self.path[last : match.start()])
            names.append(match.group(1))
            pattern += f"(?P<p{len(names) - 1}>.+)" if match.group(2) else f"(?P<p{len(names) - 1}>[^/]+)"
            last = match.end()
        pattern += re.escape(self.path[last:])
        self._pattern = re.compile(f"^{pattern}/?$" if self.path != "/" else "^/$")
        self._names = names

    @property
    def specificity(self) -> tuple[int, int]:
        """API Gateway prefers literal segments over parameters, and plain parameters over greedy ones."""
        segments = [s for s in self.path.split("/") if s]
        return (sum(1 for s in segments if not s.startswith("{")), -sum(1 for s in segments if s.endswith("+}")))

    def match(self, path: str) -> dict[str, str] | None:
        found = self._pattern.match(path)
        if found is None:
            return None
        return {name: found.group(f"p{i}") for i, name in enumerate(self._names)}


class LocalRestApi:
    """A loopback HTTP server in front of the API's functions."""

    def __init__(
        self,
        routes: Iterable[Route],
        api_keys: Iterable[str] = (),
        host: str = "127.0.0.1",
        port: int = 3000,
        region: str = "us-east-1",
        account_id: str = "123456789012",
        max_workers: int = MAX_INVOCATIONS,
        responses: dict[str, GatewayResponse] | None = None,
        usage_plan: UsagePlan | None = None,
    ):
        self.routes = sorted(routes, key=lambda r: r.specificity, reverse=True)
        self.api_keys = set(api_keys)
        self.responses = dict(responses or {})  # the template's gateway responses, by type
        self.usage_plan = usage_plan
        self.region = region
        self.account_id = account_id
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="api-invoke")
        self._server = _Server((host, port), _RequestHandler)
        self._server.api = self
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> LocalRestApi:
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="local-rest-api", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._pool.shutdown(wait=False, cancel_futures=True)

    # ---- one request -----------------------------------------------------------------------

    def find(self, method: str, path: str) -> tuple[Route, dict[str, str], str] | None:
        """The route for a request, its path parameters, and the path without the stage."""
        candidates = [(path, path)]
        for stage in {r.stage for r in self.routes}:
            prefix = f"/{stage}"
            if path == prefix or path.startswith(prefix + "/"):
                candidates.append((path[len(prefix) :] or "/", stage))
        for resource_path, stage in candidates:
            for route in self.routes:
                if route.method not in (method, "ANY"):
                    continue
                if resource_path != path and route.stage != stage:
                    continue
                params = route.match(resource_path)
                if params is not None:
                    return route, params, resource_path
        return None

    def answer(
        self, method: str, target: str, headers: list[tuple[str, str]], body: bytes, source_ip: str
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        request_id = str(uuid.uuid4())
        split = urlsplit(target)
        raw_path = split.path or "/"
        path = unquote(raw_path)
        found = self.find(method, path)
        if found is None:
            return self.gateway_answer("MISSING_AUTHENTICATION_TOKEN", request_id)
        route, params, resource_path = found
        api_key = next((v for k, v in headers if k.lower() == "x-api-key"), None)
        if route.api_key_required and api_key not in self.api_keys:
            return self.gateway_answer("INVALID_API_KEY", request_id)
        if route.api_key_required and api_key is not None and self.usage_plan is not None:
            refused = self.usage_plan.admit(api_key)
            if refused:
                return self.gateway_answer(refused, request_id)
        headers = self._forwarding_headers(headers, source_ip)
        event = self.event(method, route, resource_path, path, split.query, headers, body, params, request_id, source_ip, api_key)
        context = LambdaContext(route.function_name, route.timeout_s, region=self.region, account=self.account_id)
        future = self._pool.submit(route.handler, event, context)
        try:
            result = future.result(timeout=min(INTEGRATION_TIMEOUT_S, route.timeout_s))
        except concurrent.futures.TimeoutError:
            log.error("integration timed out: %s %s", method, path)
            return self.gateway_answer("INTEGRATION_TIMEOUT", request_id)
        except Exception:
            log.exception("function %s failed: %s %s", route.function_name, method, path)
            return self.gateway_answer("DEFAULT_5XX", request_id)
        try:
            return _proxy_response(result, request_id)
        except _Malformed as exc:
            log.error("malformed Lambda proxy response from %s: %s", route.function_name, exc)
            return self.gateway_answer("DEFAULT_5XX", request_id)

    def gateway_answer(self, response_type: str, request_id: str) -> tuple[int, list[tuple[str, str]], bytes]:
        """API Gateway's own answer of a type: the template's response for it (or its DEFAULT_4XX /
        DEFAULT_5XX), else API Gateway's default {"message": ...}."""
        status, message, error_type = DEFAULT_GATEWAY_RESPONSES[response_type]
        custom = self.responses.get(response_type) or self.responses.get("DEFAULT_4XX" if status < 500 else "DEFAULT_5XX")
        headers = [("Content-Type", "application/json"), ("x-amzn-RequestId", request_id), ("x-amzn-ErrorType", error_type)]
        if custom is None or not custom.templates:
            return (custom.status if custom and custom.status else status), headers, json.dumps({"message": message}).encode()
        variables = {
            "requestId": request_id,
            "error.responseType": response_type,
            "error.message": message,
            "error.messageString": json.dumps(message),
        }
        headers += list(custom.headers.items())
        return custom.status or status, headers, custom.render(variables)

    @staticmethod
    def _forwarding_headers(headers: list[tuple[str, str]], source_ip: str) -> list[tuple[str, str]]:
        """The headers API Gateway adds; here the client came over plain HTTP."""
        names = {name.lower() for name, _ in headers}
        host = next((v for k, v in headers if k.lower() == "host"), "")
        added = [
            ("X-Forwarded-For", source_ip),
            ("X-Forwarded-Port", host.rpartition(":")[2] if ":" in host else "80"),
            ("X-Forwarded-Proto", "http"),
            ("X-Amzn-Trace-Id", f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]}"),
        ]
        return headers + [(name, value) for name, value in added if name.lower() not in names]

    def event(
        self,
        method: str,
        route: Route,
        resource_path: str,
        request_path: str,
        query: str,
        headers: list[tuple[str, str]],
        body: bytes,
        params: dict[str, str],
        request_id: str,
        source_ip: str,
        api_key: str | None,
    ) -> dict[str, Any]:
        multi_headers: dict[str, list[str]] = {}
        for name, value in headers:
            multi_headers.setdefault(name, []).append(value)
        multi_query: dict[str, list[str]] = {}
        for name, value in parse_qsl(query, keep_blank_values=True):
            multi_query.setdefault(name, []).append(value)
        host = next((v for k, v in headers if k.lower() == "host"), "localhost")
        if body:
            try:
                text, encoded = body.decode("utf-8"), False
            except UnicodeDecodeError:
                text, encoded = base64.b64encode(body).decode("ascii"), True
        else:
            text, encoded = None, False
        now = time.time()
        return {
            "resource": route.path,
            "path": resource_path,
            "httpMethod": method,
            "headers": {k: v[-1] for k, v in multi_headers.items()} or None,
            "multiValueHeaders": multi_headers or None,
            "queryStringParameters": {k: v[-1] for k, v in multi_query.items()} or None,
            "multiValueQueryStringParameters": multi_query or None,
            "pathParameters": params or None,
            "stageVariables": None,
            "requestContext": {
                "accountId": self.account_id,
                "apiId": route.api_id,
                "resourceId": uuid.uuid5(uuid.NAMESPACE_URL, route.path).hex[:6],
                "resourcePath": route.path,
                "httpMethod": method,
                "path": request_path,
                "stage": route.stage,
                "requestId": request_id,
                "extendedRequestId": uuid.uuid4().hex[:16],
                "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
                "requestTimeEpoch": int(now * 1000),
                "protocol": "HTTP/1.1",
                "domainName": host,
                "domainPrefix": host.split(".")[0].split(":")[0],
                "identity": {
                    "sourceIp": source_ip,
                    "apiKey": api_key,
                    "apiKeyId": uuid.uuid5(uuid.NAMESPACE_OID, api_key).hex[:10] if api_key else None,
                    "userAgent": next((v for k, v in headers if k.lower() == "user-agent"), None),
                    "accountId": None,
                    "caller": None,
                    "user": None,
                    "userArn": None,
                    "accessKey": None,
                    "cognitoIdentityPoolId": None,
                    "cognitoIdentityId": None,
                    "cognitoAuthenticationType": None,
                    "cognitoAuthenticationProvider": None,
                    "principalOrgId": None,
                },
            },
            "body": text,
            "isBase64Encoded": encoded,
        }


class _Malformed(ValueError):
    pass


def _proxy_response(result: Any, request_id: str) -> tuple[int, list[tuple[str, str]], bytes]:
    """Check a Lambda proxy response as API Gateway does and turn it into an HTTP response."""
    if not isinstance(result, dict):
        raise _Malformed(f"the response is a {type(result).__name__}, not an object")
    status = result.get("statusCode", 200)
    if isinstance(status, bool) or not isinstance(status, (int, str)) or not str(status).isdigit() or not 100 <= int(status) <= 599:
        raise _Malformed(f"statusCode {status!r} is not an HTTP status")
    body = result.get("body")
    if body is not None and not isinstance(body, str):
        raise _Malformed(f"body is a {type(body).__name__}, not a string")
    headers: list[tuple[str, str]] = []
    multi = result.get("multiValueHeaders") or {}
    single = result.get("headers") or {}
    if not isinstance(multi, dict) or not isinstance(single, dict):
        raise _Malformed("headers must be objects")
    for name, values in multi.items():
        if not isinstance(values, list):
            raise _Malformed(f"multiValueHeaders[{name!r}] is not a list")
        headers.extend((name, _header_value(v)) for v in values)
    seen = {name.lower() for name, _ in headers}
    headers.extend((name, _header_value(value)) for name, value in single.items() if name.lower() not in seen)
    if result.get("isBase64Encoded"):
        try:
            payload = base64.b64decode(body or "", validate=True)
        except ValueError as exc:
            raise _Malformed("isBase64Encoded but the body is not base64") from exc
    else:
        payload = (body or "").encode("utf-8")
    if not any(name.lower() == "content-type" for name, _ in headers):
        headers.append(("Content-Type", "application/json"))
    headers.append(("x-amzn-RequestId", request_id))
    return int(status), headers, payload


def _header_value(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if value is None or isinstance(value, (dict, list)):
        raise _Malformed(f"header value {value!r} is not a scalar")
    return str(value)


class _Server(ThreadingHTTPServer):
    """A thread per connection (HTTP/1.1 keep-alive: a connection serves request after request).

    The listen backlog holds a burst of new connections while the accepting thread is busy: the
    kernel caps it at net.core.somaxconn (4096 on current Linux).
    """

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = LISTEN_BACKLOG
    api: LocalRestApi


class _RequestHandler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    timeout = IDLE_CONNECTION_SECONDS  # a kept-alive connection idle this long is closed, as API Gateway closes it
    server_version = "local-apigateway"
    sys_version = ""
    wbufsize = -1  # an answer's headers and body leave in one write, flushed after each request

    def setup(self) -> None:
        """No Nagle wait: written unbuffered, an answer's body waited on a kept-alive connection
        for the client's delayed acknowledgement of its headers (up to 40 ms)."""
        super().setup()
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:  # pragma: no cover - not a TCP socket
            pass

    def log_message(self, format: str, *args: Any) -> None:
        log.info("%s - %s", self.address_string(), format % args)

    def _read_body(self) -> bytes | None:
        """The request body, or None if it is above API Gateway's payload limit."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks, size = [], 0
            while True:
                length = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if length == 0:
                    self.rfile.readline()
                    break
                size += length
                if size > MAX_PAYLOAD_BYTES:
                    return None
                chunks.append(self.rfile.read(length))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_PAYLOAD_BYTES:
            return None
        return self.rfile.read(length) if length else b""

    def _handle(self) -> None:
        try:
            body = self._read_body()
        except (ValueError, OSError):  # a Content-Length or chunk size that is no number, a body cut short
            self.close_connection = True
            self.send_error(400, "Bad Request")
            return
        try:
            if body is None:
                self.close_connection = True
                status, headers, payload = self.server.api.gateway_answer("REQUEST_TOO_LARGE", str(uuid.uuid4()))
            else:
                status, headers, payload = self.server.api.answer(
                    self.command, self.path, list(self.headers.items()), body, self.client_address[0]
                )
        except Exception:
            log.exception("local API failed: %s %s", self.command, self.path)
            self.close_connection = True
            status, headers, payload = self.server.api.gateway_answer("DEFAULT_5XX", str(uuid.uuid4()))
        self.send_response(status)
        for name, value in headers:
            if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _handle
