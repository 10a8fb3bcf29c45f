"""The running local stack answers as its OpenAPI document says: schemathesis sends every route the
document's examples, boundary and invalid values of every parameter and body field, and generated
requests, valid and invalid, and checks that no answer is a server error, that every status is
documented and every body (the error shape included) matches its schema; a walk through a real
job's routes checks the answers that need a job, and the errors that need a stack's state.

Bounded for CI: a fixed number of generated examples per route, a fixed seed, no stateful phase."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from schemathesis.checks import content_type_conformance, not_a_server_error, response_schema_conformance, status_code_conformance
from test_local_stack import RunningStack

from bulk_restore import openapi

pytestmark = pytest.mark.e2e

EXAMPLES = 25  # per route, in the fuzzing phase
COMMITTED = Path(__file__).resolve().parents[2] / "openapi.json"
# - A schema-valid request need not succeed (positive_data_acceptance off): most generated create-job
#   bodies name no manifest of the stack, and are refused as documented (403, 422).
# - A method a route does not have is answered 404 NotFound as API Gateway answers it (its
#   MISSING_AUTHENTICATION_TOKEN, in the API's error shape), not 405 (unsupported_method off); those
#   answers are still checked for a server error. TRACE is not sent: the local stack's HTTP server
#   answers it 501 before routing.
SCHEMATHESIS_CONFIG = """
[generation]
max-examples = {examples}
deterministic = true
[phases.stateful]
enabled = false
[phases.coverage]
unexpected-methods = ["put", "delete", "patch", "options"]
[checks.positive_data_acceptance]
enabled = false
[checks.unsupported_method]
enabled = false
[auth.openapi.ApiKey]
api_key = "{api_key}"
"""
# No throttling by the usage plan during the run: a 429 would be documented, but would test nothing.
# Restores that take 10 minutes: the job stays Restoring until it is cancelled.
STACK_OPTIONS = (
    "--parameter",
    "ApiThrottleRateLimit=100000",
    "--parameter",
    "ApiThrottleBurstLimit=100000",
    "--parameter",
    "ApiQuotaPerDay=10000000",
    "--restore-seconds",
    "600",
)
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
DOCUMENT = openapi.document()
SCHEMA = schemathesis.openapi.from_dict(DOCUMENT)  # requests here send the key in their session
ROUTES = [(method.upper(), path) for path, item in DOCUMENT["paths"].items() for method in item]


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory):
    stack = RunningStack(tmp_path_factory.mktemp("openapi"), *STACK_OPTIONS)
    yield stack
    stack.stop()


@pytest.fixture(scope="module")
def session(local) -> requests.Session:
    session = requests.Session()
    session.headers["x-api-key"] = local.info["api_key"]
    return session


@pytest.fixture(scope="module")
def job(local, session) -> dict[str, Any]:
    """A job of the running stack: two archived objects and a missing one."""
    s3 = local.client("s3")
    bucket = "openapi-data"
    s3.create_bucket(Bucket=bucket)
    for key in ("a.bin", "b.bin"):
        s3.put_object(Bucket=bucket, Key=key, Body=b"x", StorageClass="GLACIER")
    s3.put_object(
        Bucket=local.info["manifest_bucket"],
        Key="openapi/manifest.csv",
        Body=f"{bucket},a.bin\n{bucket},b.bin\n{bucket},missing.bin\n".encode(),
    )
    answer = session.post(
        local.info["api_url"] + "/create-job",
        json={"bucket": local.info["manifest_bucket"], "key": "openapi/manifest.csv", "tier": "BULK"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_the_stack_serves_the_committed_document(local, session) -> None:
    answer = session.get(local.info["api_url"] + "/openapi.json", timeout=30)
    assert answer.status_code == 200, answer.text
    served = answer.json()
    assert served["servers"] == [{"url": local.info["api_url"], "description": "This stack"}]
    assert {k: v for k, v in served.items() if k != "servers"} == {k: v for k, v in DOCUMENT.items() if k != "servers"}
    # and, as every route, not without the API key
    refused = requests.get(local.info["api_url"] + "/openapi.json", timeout=30)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "MissingOrInvalidApiKey"


def test_schemathesis_finds_every_route_answering_as_documented(local, tmp_path: Path) -> None:
    # Given schemathesis, configured for a bounded, reproducible run (no stateful phase, no test that
    # a schema-valid request must succeed: most generated create-job bodies name no manifest of the stack)
    config = tmp_path / "schemathesis.toml"
    config.write_text(SCHEMATHESIS_CONFIG.format(examples=EXAMPLES, api_key=local.info["api_key"]))
    # When it runs every route of the running stack: the document's examples, the boundary and
    # invalid values of every parameter and body field, and generated requests, valid and invalid
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "--config-file",
            str(config),
            "--no-color",
            "run",
            str(COMMITTED),
            "--url",
            local.info["api_url"],
            "--report-dir",
            str(tmp_path / "reports"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
        cwd=tmp_path,
    )
    # Then it finds no failure: no 5xx, every status documented, every body (errors included) as its schema says
    assert run.returncode == 0, run.stdout[-8000:] + run.stderr[-2000:]
    assert f"{len(ROUTES)}/{len(ROUTES)}" in run.stdout and "Tested: " + str(len(ROUTES)) in run.stdout, run.stdout[-3000:]


def call(local, session: requests.Session, method: str, path: str, **case: Any) -> requests.Response:
    """Send the request ``case`` describes to the route ``path`` (as the document spells it); check the
    answer against the document, as schemathesis does."""
    return SCHEMA[path][method].Case(**case).call_and_validate(base_url=local.info["api_url"], session=session, checks=CHECKS)


def test_a_job_s_routes_answer_as_documented(local, session, job) -> None:
    job_id = {"job_id": job["JobId"]}
    status = call(local, session, "GET", "/jobs/{job_id}", path_parameters=job_id)
    assert status.status_code == 200 and status.json()["JobId"] == job["JobId"]
    listed = call(local, session, "GET", "/jobs", query={"limit": 5})
    assert listed.status_code == 200 and job["JobId"] in [j["JobId"] for j in listed.json()["Jobs"]]
    for state in ({}, {"state": "RESTORING"}, {"state": "FAILED"}, {"state": "failed"}):
        page = call(local, session, "GET", "/jobs/{job_id}/objects", path_parameters=job_id, query={"limit": 1, **state})
        assert page.status_code == 200, page.text
    cancelled = call(local, session, "POST", "/jobs/{job_id}/cancel", path_parameters=job_id)
    assert cancelled.status_code == 200 and cancelled.json()["Status"] == "Cancelled"
    again = call(local, session, "POST", "/jobs/{job_id}/cancel", path_parameters=job_id)
    assert again.status_code == 409 and again.json()["error"]["code"] == "JobAlreadyFinished"


@pytest.mark.parametrize(
    ("body", "headers", "status", "code"),
    [
        (b"x" * (17 * 1024), {}, 413, "RequestTooLarge"),
        (b"{not json", {}, 400, "InvalidRequest"),
        (json.dumps({"bucket": "elsewhere-bkt", "key": "m.csv"}).encode(), {}, 403, "ManifestLocationNotAllowed"),
        (None, {"Idempotency-Key": "a b"}, 400, "InvalidRequest"),
    ],
    ids=["too-large", "not-json", "manifest-elsewhere", "bad-idempotency-key"],
)
def test_create_job_errors_come_in_the_documented_shape(
    local, session, body: bytes | None, headers: dict[str, str], status: int, code: str
) -> None:
    data = body if body is not None else json.dumps({"bucket": local.info["manifest_bucket"], "key": "m.csv"}).encode()
    case = SCHEMA["/create-job"]["POST"].Case(
        body=json.loads(data) if _is_json(data) else None, headers=headers, media_type="application/json"
    )
    answer = session.post(
        local.info["api_url"] + "/create-job", data=data, headers={"Content-Type": "application/json", **headers}, timeout=30
    )
    case.validate_response(answer, checks=CHECKS)
    assert (answer.status_code, answer.json()["error"]["code"]) == (status, code), answer.text


def test_an_idempotency_key_reused_with_another_request_is_a_documented_409(local, session, job) -> None:
    manifest = {"bucket": local.info["manifest_bucket"], "key": "openapi/manifest.csv"}
    headers = {"Idempotency-Key": "openapi-409"}
    first = call(local, session, "POST", "/create-job", body=manifest | {"tier": "BULK"}, headers=headers, media_type="application/json")
    assert first.status_code == 200, first.text
    second = call(
        local, session, "POST", "/create-job", body=manifest | {"tier": "STANDARD"}, headers=headers, media_type="application/json"
    )
    assert (second.status_code, second.json()["error"]["code"]) == (409, "IdempotencyKeyMismatch"), second.text


def test_a_dry_run_answers_a_documented_estimate(local, session, job) -> None:
    answer = call(
        local,
        session,
        "POST",
        "/create-job",
        body={"bucket": local.info["manifest_bucket"], "key": "openapi/manifest.csv", "dry_run": True},
        media_type="application/json",
    )
    assert answer.status_code == 200 and answer.json()["DryRun"] is True, answer.text
    assert answer.json()["Estimate"]["ObjectsListed"] == 3


def test_a_missing_manifest_is_a_documented_422(local, session) -> None:
    answer = call(
        local,
        session,
        "POST",
        "/create-job",
        body={"bucket": local.info["manifest_bucket"], "key": "openapi/none.csv"},
        media_type="application/json",
    )
    assert (answer.status_code, answer.json()["error"]["code"]) == (422, "ManifestUnreadable"), answer.text


def _is_json(data: bytes) -> bool:
    try:
        json.loads(data)
    except ValueError:
        return False
    return True
