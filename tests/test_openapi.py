"""The API's OpenAPI document: committed as generated, valid OpenAPI 3.1, covering every route, field
and error status of the code and the template; served at GET /openapi.json; and the answers held to
their models."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from openapi_spec_validator import OpenAPIV31SpecValidator

from bulk_restore import openapi
from bulk_restore.handlers import rest
from bulk_restore.usecases.jobs import CreateJobRequest
from bulk_restore_cli.local.template import load_template
from support.api import call_api
from support.stack import Stack
from test_handlers import archived, assert_error

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = ROOT / "openapi.json"
METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return openapi.document()


def operations(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(method.upper(), path): op for path, item in document["paths"].items() for method, op in item.items() if method in METHODS}


def test_the_committed_openapi_json_is_what_the_code_generates() -> None:
    assert COMMITTED.exists(), "openapi.json is missing: run `make openapi` and commit it"
    assert COMMITTED.read_text(encoding="utf-8") == openapi.render(), (
        "openapi.json differs from the API document the code generates: run `make openapi` and commit it"
    )


def test_the_check_mode_fails_on_a_stale_file_and_says_to_run_make_openapi(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stale = tmp_path / "openapi.json"
    stale.write_text("{}\n")
    assert openapi.main([str(stale), "--check"]) == 1
    assert "run `make openapi`" in capsys.readouterr().err
    assert openapi.main([str(stale)]) == 0
    assert openapi.main([str(stale), "--check"]) == 0
    assert json.loads(stale.read_text()) == openapi.document()


def test_the_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.1.")
    OpenAPIV31SpecValidator(document).validate()


def test_every_route_of_the_handler_and_of_the_template_is_documented_and_no_other(document: dict[str, Any]) -> None:
    from bulk_restore.handlers import api

    handled = {(r.method.upper(), re.sub(r"<(\w+)>", r"{\1}", r.path)) for r in api.app._static_routes + api.app._dynamic_routes}
    events = load_template(ROOT / "template.yaml")["Resources"]["ApiFunction"]["Properties"]["Events"].values()
    deployed = {(e["Properties"]["Method"].upper(), e["Properties"]["Path"]) for e in events if e["Type"] == "Api"}
    assert set(operations(document)) == handled == deployed


def test_every_field_of_the_create_job_request_is_documented_with_its_meaning(document: dict[str, Any]) -> None:
    schema = document["components"]["schemas"]["CreateJobRequest"]
    assert set(schema["properties"]) == set(CreateJobRequest.model_fields)
    undescribed = [name for name, prop in schema["properties"].items() if not prop.get("description")]
    assert not undescribed, f"describe these create-job fields (Field(description=...) or openapi.REQUEST_FIELDS): {undescribed}"


def test_the_api_key_is_required_everywhere_and_the_idempotency_key_header_is_documented(document: dict[str, Any]) -> None:
    assert document["components"]["securitySchemes"]["ApiKey"] == {
        **document["components"]["securitySchemes"]["ApiKey"],
        "type": "apiKey",
        "in": "header",
        "name": "x-api-key",
    }
    assert document["security"] == [{"ApiKey": []}]
    assert all("security" not in op for op in operations(document).values())  # no route overrides it
    (header,) = [p for p in operations(document)[("POST", "/create-job")]["parameters"] if p["in"] == "header"]
    assert header["name"] == "Idempotency-Key"
    assert re.fullmatch(header["schema"]["pattern"], "order-4711") and not re.fullmatch(header["schema"]["pattern"], "a b")
    assert rest.IDEMPOTENCY_KEY.pattern == header["schema"]["pattern"]


def test_every_error_status_the_code_and_the_gateway_answer_is_documented_with_the_error_shape(document: dict[str, Any]) -> None:
    gateway = load_template(ROOT / "template.yaml")["Resources"]["RestApi"]["Properties"]["GatewayResponses"]
    statuses = {int(r["StatusCode"]) for r in gateway.values() if "StatusCode" in r}  # 403, 404, 413, 429, 504
    statuses |= set(rest.STATUS.values()) | {400, 404, 500, 502}  # the service's; a pydantic error; no route; a crash; the gateway's 5XX
    documented: set[int] = set()
    for (method, path), op in operations(document).items():
        for status, response in op["responses"].items():
            if status.startswith(("4", "5")):
                assert response["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorAnswer"}, (method, path)
                documented.add(int(status))
        for status in (403, 429, 500):
            assert str(status) in op["responses"], (method, path, status)
    assert statuses <= documented
    error = document["components"]["schemas"]["ErrorAnswer"]
    assert error["required"] == ["error"] and error["additionalProperties"] is False


def test_every_error_code_of_the_service_is_named_under_its_status(document: dict[str, Any]) -> None:
    named: dict[str, set[str]] = {}
    for op in operations(document).values():
        for status, response in op["responses"].items():
            named.setdefault(status, set()).update(response["description"].split(":")[0].split(", "))
    for error, status in rest.STATUS.items():
        assert error.code in named[str(status)], (error.code, status)


def test_the_request_examples_are_valid_create_job_requests(document: dict[str, Any]) -> None:
    examples = operations(document)[("POST", "/create-job")]["requestBody"]["content"]["application/json"]["examples"]
    assert examples
    for example in examples.values():
        request, warnings = CreateJobRequest.from_body(example["value"])
        assert warnings == [] and request.normalised()


def test_each_route_documents_the_errors_it_answers(document: dict[str, Any]) -> None:
    ops = operations(document)
    expected = {
        ("POST", "/create-job"): {"400", "403", "409", "413", "422"},
        ("GET", "/jobs/{job_id}"): {"404"},
        ("POST", "/jobs/{job_id}/cancel"): {"404", "409"},
        ("GET", "/jobs/{job_id}/objects"): {"400", "404"},
        ("GET", "/jobs"): {"400"},
    }
    for route, statuses in expected.items():
        assert statuses <= set(ops[route]["responses"]), route


def test_get_openapi_json_serves_the_document_with_the_url_it_was_called_at(stack: Stack) -> None:
    status, body = call_api("GET", "/openapi.json")
    assert status == 200
    assert body["servers"] == [{"url": "https://abc123.execute-api.us-east-1.amazonaws.com/prod", "description": "This stack"}]
    assert {k: v for k, v in body.items() if k != "servers"} == {k: v for k, v in openapi.document().items() if k != "servers"}


def schema_of(document: dict[str, Any], name: str) -> dict[str, Any]:
    """A component schema, with its references resolvable (OpenAPI 3.1 schemas are JSON Schema 2020-12)."""
    return {"$ref": f"#/components/schemas/{name}", "components": document["components"]}


def test_answers_of_every_route_match_the_document(stack: Stack, document: dict[str, Any]) -> None:
    # Given a job of two objects
    bucket, key = stack.put_manifest(archived(stack, "a.bin", "b.bin"))
    status, created = call_api("POST", "/create-job", {"bucket": bucket, "key": key, "client_tag": "docs", "colour": "red"})
    assert status == 200, created
    stack.settle()
    job = created["JobId"]
    # Then every answer matches its route's 200 schema
    answers = {
        "CreateJobAnswer": created,
        "JobStatusDocument": call_api("GET", f"/jobs/{job}")[1],
        "ObjectsPage": call_api("GET", f"/jobs/{job}/objects", query={"limit": "1"})[1],
    }
    status, cancelled = call_api("POST", f"/jobs/{job}/cancel")
    answers["JobStatusDocument"] = cancelled if status == 200 else answers["JobStatusDocument"]
    status, again = call_api("POST", f"/jobs/{job}/cancel")
    answers["ErrorAnswer"] = assert_error(status, again, 409, "JobAlreadyFinished") and again
    for name, answer in answers.items():
        jsonschema.Draft202012Validator(schema_of(document, name)).validate(answer)
    assert answers["ObjectsPage"]["NextToken"] and len(answers["ObjectsPage"]["Objects"]) == 1
    assert created["Warnings"]


def test_an_answer_that_strays_from_its_model_is_an_internal_error_not_sent(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a status document that grew a field its model does not have
    from bulk_restore.handlers import api

    bucket, key = stack.put_manifest(archived(stack, "a.bin"))
    job = call_api("POST", "/create-job", {"bucket": bucket, "key": key})[1]["JobId"]
    original = api.status_document
    monkeypatch.setattr(api, "status_document", lambda *args: original(*args) | {"Undocumented": 1})
    # When the job's status is asked for
    status, body = call_api("GET", f"/jobs/{job}")
    # Then the answer is a 500 (the bug is logged), never a document the API does not describe
    assert_error(status, body, 500, "InternalError")
    assert "Undocumented" not in json.dumps(body)
