"""The stack's REST API over HTTP (the standard library's urllib: nothing to install)."""

from __future__ import annotations

import json
import random
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from bulk_restore_cli.client.errors import EXIT_FAILED, EXIT_USAGE, CliError

RETRIED_STATUSES = (429, 502, 503, 504)


class ApiError(CliError):
    """The API answered with an error (its JSON error shape: code, message, details)."""

    def __init__(self, status: int, code: str, message: str, details: Any = None):
        # A 4xx (but a 429) means the request must change: nothing was done (exit 2); else 1.
        super().__init__(f"{code}: {message}" if code else message, EXIT_USAGE if 400 <= status < 500 and status != 429 else EXIT_FAILED)
        self.status = status
        self.error_code = code
        self.details = details


class ApiClient:
    """GET and POST on the API with the key; JSON in and out; retries where a retry is safe."""

    def __init__(self, base_url: str, api_key: str, timeout: float = 30.0, retries: int = 3, user_agent: str = "bulk-restore-cli"):
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout
        self.retries = retries
        self.user_agent = user_agent

    # ---- the routes ---------------------------------------------------------------------------

    def create_job(self, body: dict[str, Any], idempotency_key: str | None = None) -> dict[str, Any]:
        # With an idempotency key a repeated create returns the same job: safe to retry.
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self.request("POST", "/create-job", body, headers=headers, retry=bool(idempotency_key))

    def job(self, job_id: str) -> dict[str, Any]:
        return self.request("GET", f"/jobs/{_segment(job_id)}")

    def jobs(self, limit: int | None = None, next_token: str | None = None) -> dict[str, Any]:
        return self.request("GET", "/jobs", query={"limit": limit, "next_token": next_token})

    def objects(self, job_id: str, state: str | None = None, limit: int | None = None, next_token: str | None = None) -> dict[str, Any]:
        return self.request("GET", f"/jobs/{_segment(job_id)}/objects", query={"state": state, "limit": limit, "next_token": next_token})

    def cancel(self, job_id: str) -> dict[str, Any]:
        return self.request("POST", f"/jobs/{_segment(job_id)}/cancel", {}, retry=False)

    # ---- HTTP ---------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        retry: bool | None = None,
    ) -> dict[str, Any]:
        params = {k: str(v) for k, v in (query or {}).items() if v is not None}
        url = self.base_url + path + (f"?{urllib.parse.urlencode(params)}" if params else "")
        data = json.dumps(body).encode("utf-8") if body is not None else None
        all_headers = {"x-api-key": self.api_key, "Accept": "application/json", "User-Agent": self.user_agent, **(headers or {})}
        if data is not None:
            all_headers["Content-Type"] = "application/json"
        may_retry = method == "GET" if retry is None else retry
        attempts = self.retries + 1 if may_retry else 1
        for attempt in range(attempts):
            try:
                return self._once(method, url, data, all_headers)
            except ApiError as exc:
                if exc.status not in RETRIED_STATUSES or attempt == attempts - 1:
                    raise
            except CliError:
                if attempt == attempts - 1:
                    raise
            time.sleep(min(4.0, 0.5 * 2**attempt) * (0.5 + random.random() / 2))
        raise AssertionError("unreachable")

    def _once(self, method: str, url: str, data: bytes | None, headers: dict[str, str]) -> dict[str, Any]:
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            raise _api_error(exc.code, exc.read()) from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            reason = getattr(exc, "reason", exc)
            raise CliError(
                f"cannot reach the API at {self.base_url} ({reason}): check the stack (is `bulk-restore local` "
                "still running?), the network, or --api-url",
                EXIT_USAGE,
            ) from None
        try:
            return json.loads(raw or b"null")
        except ValueError:
            raise CliError(
                f"the API at {self.base_url} answered something that is not JSON: is it a bulk-restore API? check --api-url", EXIT_FAILED
            ) from None


def _segment(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def _api_error(status: int, raw: bytes) -> ApiError:
    try:
        error = json.loads(raw).get("error")
    except (ValueError, AttributeError):
        error = None
    if isinstance(error, dict):
        return ApiError(status, str(error.get("code") or f"HTTP {status}"), str(error.get("message") or ""), error.get("details"))
    text = raw.decode("utf-8", "replace").strip().replace("\n", " ")[:200]
    return ApiError(status, f"HTTP {status}", text or "the API answered with an error and no message")
