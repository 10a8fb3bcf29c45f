"""The local REST API answers as API Gateway does, and hands functions API Gateway's proxy events."""

from __future__ import annotations

import base64
import json

import pytest
import requests

from bulk_restore.local import apigw
from bulk_restore.local.apigw import LocalRestApi, Route

KEY = "secret-key"


class Recorder:
    def __init__(self, response=None, error=None):
        self.events = []
        self.contexts = []
        self.response = response or {"statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": json.dumps({"ok": True})}
        self.error = error

    def __call__(self, event, context):
        self.events.append(event)
        self.contexts.append(context)
        if self.error:
            raise self.error
        return self.response


@pytest.fixture
def serve():
    servers = []

    def start(*routes):
        api = LocalRestApi(routes, [KEY], port=0).start()
        servers.append(api)
        return api

    yield start
    for api in servers:
        api.stop()


def test_a_route_the_template_does_not_define_is_missing_authentication_token(serve):
    api = serve(Route("GET", "/jobs/{job_id}", Recorder(), "fn", api_key_required=True))

    for method, path in (("GET", "/nothing"), ("POST", "/jobs/1"), ("GET", "/jobs/1/extra")):
        response = requests.request(method, api.url + path, headers={"x-api-key": KEY})
        assert response.status_code == 403
        assert response.json() == {"message": "Missing Authentication Token"}


def test_a_missing_or_wrong_api_key_is_forbidden(serve):
    handler = Recorder()
    api = serve(Route("GET", "/jobs/{job_id}", handler, "fn", api_key_required=True))

    assert requests.get(api.url + "/jobs/1").status_code == 403
    wrong = requests.get(api.url + "/jobs/1", headers={"x-api-key": "nope"})
    assert (wrong.status_code, wrong.json()) == (403, {"message": "Forbidden"})
    assert handler.events == []
    assert requests.get(api.url + "/jobs/1", headers={"X-Api-Key": KEY}).status_code == 200


def test_the_function_gets_a_rest_proxy_event(serve):
    handler = Recorder()
    route = Route("POST", "/jobs/{job_id}/objects", handler, "ApiFunction", timeout_s=29, api_key_required=True, stage="prod", api_id="abc123")
    api = serve(route)

    requests.post(api.url + "/jobs/j%201/objects?state=FAILED&tag=a&tag=b", data='{"x": 1}',
                  headers={"x-api-key": KEY, "X-Multi": "one", "Content-Type": "application/json"})

    [event] = handler.events
    assert event["resource"] == "/jobs/{job_id}/objects"
    assert event["path"] == "/jobs/j 1/objects"
    assert event["httpMethod"] == "POST"
    assert event["pathParameters"] == {"job_id": "j 1"}
    assert event["queryStringParameters"] == {"state": "FAILED", "tag": "b"}
    assert event["multiValueQueryStringParameters"] == {"state": ["FAILED"], "tag": ["a", "b"]}
    assert event["headers"]["X-Multi"] == "one" and event["multiValueHeaders"]["X-Multi"] == ["one"]
    assert event["headers"]["Host"] == api.url.removeprefix("http://")
    assert event["headers"]["X-Forwarded-Proto"] == "http"
    assert event["stageVariables"] is None
    assert (event["body"], event["isBase64Encoded"]) == ('{"x": 1}', False)
    context = event["requestContext"]
    assert (context["resourcePath"], context["httpMethod"], context["path"], context["stage"]) == ("/jobs/{job_id}/objects", "POST", "/jobs/j 1/objects", "prod")
    assert context["identity"]["apiKey"] == KEY and context["identity"]["sourceIp"] == "127.0.0.1"
    assert context["requestId"] and context["apiId"] == "abc123"
    assert context["domainName"] == event["headers"]["Host"]
    assert handler.contexts[0].function_name == "ApiFunction"
    assert 28_000 < handler.contexts[0].get_remaining_time_in_millis() <= 29_000


def test_the_stage_prefix_is_served_too_and_shows_in_the_request_context(serve):
    handler = Recorder()
    api = serve(Route("GET", "/jobs/{job_id}", handler, "fn", stage="prod"))

    assert requests.get(api.url + "/prod/jobs/7").status_code == 200

    [event] = handler.events
    assert event["path"] == "/jobs/7"
    assert event["requestContext"]["path"] == "/prod/jobs/7"
    assert event["queryStringParameters"] is None and event["body"] is None


def test_the_proxy_response_is_written_back(serve):
    body = base64.b64encode(b"\x00\x01binary").decode()
    handler = Recorder({"statusCode": 201, "multiValueHeaders": {"Set-Cookie": ["a=1", "b=2"]}, "headers": {"X-One": "1"},
                        "body": body, "isBase64Encoded": True})
    api = serve(Route("GET", "/b", handler, "fn"))

    response = requests.get(api.url + "/b")

    assert response.status_code == 201
    assert response.content == b"\x00\x01binary"
    assert response.headers["X-One"] == "1"
    assert response.raw.headers.getlist("Set-Cookie") == ["a=1", "b=2"]
    assert response.headers["x-amzn-RequestId"]


@pytest.mark.parametrize("response", [
    None,
    "not a dict",
    {"statusCode": "abc", "body": ""},
    {"statusCode": 200, "body": {"not": "a string"}},
    {"statusCode": 200, "headers": {"X": {"nested": 1}}, "body": ""},
])
def test_a_malformed_response_is_a_502(serve, response):
    handler = Recorder()
    handler.response = response
    api = serve(Route("GET", "/m", handler, "fn"))

    answer = requests.get(api.url + "/m")

    assert (answer.status_code, answer.json()) == (502, {"message": "Internal server error"})


def test_a_function_that_raises_is_a_502(serve):
    api = serve(Route("GET", "/e", Recorder(error=RuntimeError("boom")), "fn"))

    answer = requests.get(api.url + "/e")

    assert (answer.status_code, answer.json()) == (502, {"message": "Internal server error"})


def test_a_payload_above_the_limit_is_a_413(serve, monkeypatch):
    monkeypatch.setattr(apigw, "MAX_PAYLOAD_BYTES", 1024)
    handler = Recorder()
    api = serve(Route("POST", "/big", handler, "fn"))

    assert requests.post(api.url + "/big", data=b"x" * 1024).status_code == 200
    answer = requests.post(api.url + "/big", data=b"x" * 1025)

    assert answer.status_code == 413
    assert len(handler.events) == 1


def test_literal_paths_win_over_parameters(serve):
    literal, parameter = Recorder(), Recorder()
    api = serve(Route("GET", "/jobs/{job_id}", parameter, "p"), Route("GET", "/jobs/latest", literal, "l"))

    requests.get(api.url + "/jobs/latest")
    requests.get(api.url + "/jobs/other")

    assert len(literal.events) == 1 and len(parameter.events) == 1
