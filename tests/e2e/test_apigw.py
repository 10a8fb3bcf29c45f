"""The local REST API answers as API Gateway does, and hands functions API Gateway's proxy events."""

from __future__ import annotations

import base64
import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from bulk_restore_cli.local import apigw
from bulk_restore_cli.local.apigw import LocalRestApi, Route, UsagePlan, gateway_responses
from bulk_restore_cli.local.template import load_template

KEY = "secret-key"
TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"


def template_responses():
    """The gateway responses template.yaml gives the API."""
    return gateway_responses(load_template(TEMPLATE)["Resources"]["RestApi"]["Properties"]["GatewayResponses"])


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

    def start(*routes, **options):
        api = LocalRestApi(routes, [KEY], port=0, **options).start()
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
    route = Route(
        "POST", "/jobs/{job_id}/objects", handler, "ApiFunction", timeout_s=29, api_key_required=True, stage="prod", api_id="abc123"
    )
    api = serve(route)

    requests.post(
        api.url + "/jobs/j%201/objects?state=FAILED&tag=a&tag=b",
        data='{"x": 1}',
        headers={"x-api-key": KEY, "X-Multi": "one", "Content-Type": "application/json"},
    )

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
    assert (context["resourcePath"], context["httpMethod"], context["path"], context["stage"]) == (
        "/jobs/{job_id}/objects",
        "POST",
        "/jobs/j 1/objects",
        "prod",
    )
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
    handler = Recorder(
        {
            "statusCode": 201,
            "multiValueHeaders": {"Set-Cookie": ["a=1", "b=2"]},
            "headers": {"X-One": "1"},
            "body": body,
            "isBase64Encoded": True,
        }
    )
    api = serve(Route("GET", "/b", handler, "fn"))

    response = requests.get(api.url + "/b")

    assert response.status_code == 201
    assert response.content == b"\x00\x01binary"
    assert response.headers["X-One"] == "1"
    assert response.raw.headers.getlist("Set-Cookie") == ["a=1", "b=2"]
    assert response.headers["x-amzn-RequestId"]


@pytest.mark.parametrize(
    "response",
    [
        None,
        "not a dict",
        {"statusCode": "abc", "body": ""},
        {"statusCode": 200, "body": {"not": "a string"}},
        {"statusCode": 200, "headers": {"X": {"nested": 1}}, "body": ""},
    ],
)
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


def test_odd_path_decoded_ids_reach_the_function_as_one_path_parameter(serve):
    # As API Gateway: the path is percent-decoded, and {job_id} takes any one segment
    handler = Recorder()
    api = serve(Route("GET", "/jobs/{job_id}", handler, "fn"))

    for raw, decoded in (("a%23b", "a#b"), ("%F0%9F%99%82", "\N{SLIGHTLY SMILING FACE}"), ("%C0%AF", "\ufffd\ufffd"), ("a%20b", "a b")):
        assert requests.get(f"{api.url}/jobs/{raw}").status_code == 200, raw
        assert handler.events[-1]["pathParameters"] == {"job_id": decoded}
        assert handler.events[-1]["path"] == f"/jobs/{decoded}"
    assert requests.get(api.url + "/jobs/a%2Fb").status_code == 403  # a decoded slash is two segments: no route
    assert len(handler.events) == 4


def test_literal_paths_win_over_parameters(serve):
    literal, parameter = Recorder(), Recorder()
    api = serve(Route("GET", "/jobs/{job_id}", parameter, "p"), Route("GET", "/jobs/latest", literal, "l"))

    requests.get(api.url + "/jobs/latest")
    requests.get(api.url + "/jobs/other")

    assert len(literal.events) == 1 and len(parameter.events) == 1


# ---- the template's gateway responses -------------------------------------------------------------


def assert_gateway_error(response, status, code, *words):
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}, body
    assert body["error"]["code"] == code, body
    for word in words:
        assert word in body["error"]["message"], body["error"]["message"]
    assert body["error"]["details"]["requestId"] == response.headers["x-amzn-RequestId"]
    return body["error"]


def test_with_the_template_s_gateway_responses_api_gateway_s_own_answers_have_the_api_error_shape(serve, monkeypatch):
    monkeypatch.setattr(apigw, "MAX_PAYLOAD_BYTES", 1024)
    handler = Recorder()
    api = serve(
        Route("GET", "/jobs/{job_id}", handler, "fn", api_key_required=True),
        Route("POST", "/create-job", handler, "fn", api_key_required=True),
        Route("GET", "/boom", Recorder(error=RuntimeError("boom")), "fn", api_key_required=True),
        Route("GET", "/malformed", Recorder({"statusCode": "abc"}), "fn", api_key_required=True),
        responses=template_responses(),
    )
    key = {"x-api-key": KEY}

    missing = assert_gateway_error(requests.get(api.url + "/jobs/1"), 403, "MissingOrInvalidApiKey", "x-api-key")
    assert missing["details"]["responseType"] == "INVALID_API_KEY"
    assert_gateway_error(requests.get(api.url + "/jobs/1", headers={"x-api-key": "wrong"}), 403, "MissingOrInvalidApiKey")
    for method, path in (("GET", "/nothing"), ("DELETE", "/jobs/1"), ("GET", "/jobs/1/extra"), ("GET", "/jobs/a%2Fb")):
        no_route = requests.request(method, api.url + path, headers=key)
        assert_gateway_error(no_route, 404, "NotFound", "no such route", "POST /create-job")
        assert no_route.headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"
    assert_gateway_error(requests.post(api.url + "/create-job", data=b"x" * 1025, headers=key), 413, "RequestTooLarge", "manifest")
    for path in ("/boom", "/malformed"):
        failed = assert_gateway_error(requests.get(api.url + path, headers=key), 502, "InternalError", "retry")
        assert failed["details"]["gatewayMessage"] == "Internal server error"
    assert handler.events == []  # none of these reached the function
    assert requests.get(api.url + "/jobs/1", headers=key).json() == {"ok": True}


def test_a_function_over_its_time_is_a_504_in_the_api_error_shape(serve):
    class Slow(Recorder):
        def __call__(self, event, context):
            time.sleep(1.5)
            return super().__call__(event, context)

    api = serve(Route("GET", "/slow", Slow(), "fn", timeout_s=1), responses=template_responses())

    assert_gateway_error(requests.get(api.url + "/slow"), 504, "Timeout", "retry")


def test_requests_beyond_the_usage_plan_s_burst_and_rate_are_throttled_in_the_api_error_shape(serve):
    handler = Recorder()
    api = serve(
        Route("GET", "/jobs/{job_id}", handler, "fn", api_key_required=True),
        responses=template_responses(),
        usage_plan=UsagePlan(rate=2, burst=5),
    )

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda i: requests.get(f"{api.url}/jobs/{i}", headers={"x-api-key": KEY}), range(12)))

    throttled = [a for a in answers if a.status_code == 429]
    assert sum(a.status_code == 200 for a in answers) == len(handler.events) <= 6
    assert len(throttled) >= 6
    for answer in throttled:
        assert_gateway_error(answer, 429, "Throttled", "retry", "backoff")
    time.sleep(0.6)  # the bucket fills at the plan's rate
    assert requests.get(api.url + "/jobs/x", headers={"x-api-key": KEY}).status_code == 200


def test_a_key_past_its_daily_quota_is_refused_in_the_api_error_shape(serve):
    api = serve(
        Route("GET", "/jobs/{job_id}", Recorder(), "fn", api_key_required=True),
        responses=template_responses(),
        usage_plan=UsagePlan(quota=3),
    )

    assert [requests.get(api.url + "/jobs/1", headers={"x-api-key": KEY}).status_code for _ in range(3)] == [200] * 3
    assert_gateway_error(requests.get(api.url + "/jobs/1", headers={"x-api-key": KEY}), 429, "QuotaExceeded", "ApiQuotaPerDay")


def test_a_type_the_template_leaves_out_takes_its_default_4xx_or_5xx(serve):
    responses = {k: v for k, v in template_responses().items() if k in ("DEFAULT_4XX", "DEFAULT_5XX")}
    api = serve(
        Route("GET", "/jobs/{job_id}", Recorder(), "fn", api_key_required=True),
        Route("GET", "/boom", Recorder(error=RuntimeError("boom")), "fn"),
        responses=responses,
    )

    refused = assert_gateway_error(requests.get(api.url + "/jobs/1"), 403, "RequestRefused", "API reference")
    assert (refused["details"]["gatewayMessage"], refused["details"]["responseType"]) == ("Forbidden", "INVALID_API_KEY")
    assert_gateway_error(requests.get(api.url + "/boom"), 502, "InternalError")


def test_the_usage_plan_is_read_from_the_template():
    plan = UsagePlan.from_template({"Throttle": {"BurstLimit": "40", "RateLimit": "20"}, "Quota": {"Limit": "10000", "Period": "DAY"}})

    assert (plan.rate, plan.burst, plan.quota) == (20.0, 40, 10000)
    assert [plan.admit("k", now=0.0) for _ in range(41)].count("THROTTLED") == 1
    assert plan.admit("k", now=0.04) == "THROTTLED" and plan.admit("k", now=0.1) is None  # 20 a second: one per 50 ms
    assert plan.admit("other-key", now=0.1) is None  # each key has its own bucket
