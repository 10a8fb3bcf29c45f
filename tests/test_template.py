"""template.yaml: the deployed stack has the properties the Lambda code relies on.

The template is read with a YAML loader that understands CloudFormation's short tags
(!Ref, !GetAtt, !Sub ...) and turns them into their long forms ({"Ref": ...}).
"""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bulk_restore.settings import Settings
from bulk_restore_cli.local.apigw import TEMPLATE_VARIABLES
from bulk_restore_cli.local.template import load_template

pytestmark = pytest.mark.template

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"

# Variables the functions cannot do without on AWS: the stack's own resources (the settings'
# defaults name none of them) and the values the template's parameters choose.
REQUIRED_SETTINGS_VARIABLES = {
    "TABLE_NAME",
    "PLAN_QUEUE_URL",
    "RESTORE_QUEUE_URL",
    "TOPIC_ARN",
    "PROGRESS_STEP_PERCENT",
    "RESTORE_CONCURRENCY",
    "OBJECT_RETENTION_DAYS",
    "JOB_RETENTION_DAYS",
    "MANAGE_EVENTBRIDGE",
    "ALLOWED_BUCKETS",
    "RESTORE_RATE_PER_SECOND",
    "EVENTS_QUEUE_ARN",
    "REPORT_BUCKET",
}
# Resources SAM generates from the template (RestApi with ApiKeyRequired and CreateUsagePlan).
SAM_GENERATED_IDS = {"RestApiApiKey", "RestApiUsagePlan", "RestApiUsagePlanKey", "RestApiprodStage"}
PSEUDO_PARAMETERS = {"AWS::AccountId", "AWS::Partition", "AWS::Region", "AWS::StackName", "AWS::URLSuffix", "AWS::StackId", "AWS::NoValue"}
EXPECTED_ROUTES = {
    ("POST", "/create-job"),
    ("GET", "/jobs"),
    ("GET", "/jobs/{job_id}"),
    ("GET", "/jobs/{job_id}/objects"),
    ("POST", "/jobs/{job_id}/cancel"),
    ("GET", "/openapi.json"),
}


# ---------------------------------------------------------------- loading
# The local stack's CloudFormation loader: the same reading of the template in both places.


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(TEMPLATE)


def resources_of(template: dict[str, Any], type_: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == type_}


def functions(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return resources_of(template, "AWS::Serverless::Function")


def function_property(template: dict[str, Any], function: dict[str, Any], name: str) -> Any:
    """A function's property, falling back to Globals.Function as SAM does."""
    own = function["Properties"]
    return own[name] if name in own else template.get("Globals", {}).get("Function", {}).get(name)


def sqs_event_sources(template: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(function name, event name, event properties) of every SQS event source."""
    for fname, function in functions(template).items():
        for ename, event in function["Properties"].get("Events", {}).items():
            if event["Type"] == "SQS":
                yield fname, ename, event["Properties"]


def referenced_id(value: Any) -> str:
    """The logical id a {"Fn::GetAtt": [id, attr]} or {"Ref": id} points at."""
    if "Fn::GetAtt" in value:
        return value["Fn::GetAtt"][0]
    return value["Ref"]


def walk(node: Any) -> Iterator[Any]:
    yield node
    if isinstance(node, dict):
        for child in node.values():
            yield from walk(child)
    elif isinstance(node, list):
        for child in node:
            yield from walk(child)


def iam_statements(template: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every policy statement of the template: function policies and resource policies."""
    for node in walk(template["Resources"]):
        if isinstance(node, dict) and isinstance(node.get("Statement"), list):
            yield from node["Statement"]


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def settings_variables() -> dict[str, str]:
    """Field name -> environment variable, from the ``names`` mapping of Settings.from_env."""
    tree = ast.parse(inspect.getsource(Settings))
    (from_env,) = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "from_env"]
    for node in ast.walk(from_env):
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Dict)
            and any(isinstance(t, ast.Name) and t.id == "names" for t in node.targets)
        ):
            return {ast.literal_eval(k): ast.literal_eval(v) for k, v in zip(node.value.keys, node.value.values, strict=True)}
    raise AssertionError("Settings.from_env has no `names` mapping")


# ---------------------------------------------------------------- functions


def test_every_function_handler_imports_and_is_callable(template):
    # Given the functions of the template, whose code is src/ (the installed bulk_restore package)
    found = functions(template)
    assert set(found) == {
        "ApiFunction",
        "PlannerFunction",
        "RestoreFunction",
        "CompletionFunction",
        "SweeperFunction",
        "TransferFunction",
        "CounterFunction",
    }
    for name, function in found.items():
        assert function_property(template, function, "CodeUri") == "src/"
        # When its handler path is imported
        module_path, _, attribute = function["Properties"]["Handler"].rpartition(".")
        module = importlib.import_module(module_path)
        # Then it names a callable that lives in src/
        assert callable(getattr(module, attribute)), name
        assert Path(module.__file__).resolve().is_relative_to(ROOT / "src"), module.__file__


def test_functions_share_runtime_architecture_and_tracing(template):
    fn = template["Globals"]["Function"]
    assert fn["Runtime"] == "python3.13"
    assert fn["Architectures"] == ["arm64"]
    assert fn["Tracing"] == "Active"


def test_api_function_answers_within_the_api_gateway_limit(template):
    assert function_property(template, template["Resources"]["ApiFunction"], "Timeout") <= 29


def test_every_sqs_event_source_reports_batch_item_failures(template):
    sources = list(sqs_event_sources(template))
    assert {f for f, _, _ in sources} == {"PlannerFunction", "RestoreFunction", "CompletionFunction", "TransferFunction"}
    for fname, ename, props in sources:
        assert "ReportBatchItemFailures" in props.get("FunctionResponseTypes", []), f"{fname}.{ename}"


def test_sqs_batches_fit_their_queues(template):
    queues = template["Resources"]
    for fname, ename, props in sqs_event_sources(template):
        queue = queues[referenced_id(props["Queue"])]["Properties"]
        if queue.get("FifoQueue"):
            assert props["BatchSize"] <= 10, f"{fname}.{ename}: FIFO batches hold at most 10"
        elif props["BatchSize"] > 10:
            window = props.get("MaximumBatchingWindowInSeconds", 0)
            if isinstance(window, dict):  # a parameter: its smallest allowed value counts
                window = template["Parameters"][window["Ref"]]["MinValue"]
            assert window >= 1, f"{fname}.{ename}: batches over 10 need a window"


def test_planner_takes_one_plan_step_at_a_time(template):
    (props,) = [p for f, _, p in sqs_event_sources(template) if f == "PlannerFunction"]
    assert props["BatchSize"] == 1
    plan_queue = template["Resources"][referenced_id(props["Queue"])]["Properties"]
    assert plan_queue["FifoQueue"] is True
    assert plan_queue["ContentBasedDeduplication"] is False  # the code sets deduplication ids


def test_restore_workers_are_capped(template):
    (props,) = [p for f, _, p in sqs_event_sources(template) if f == "RestoreFunction"]
    assert props["ScalingConfig"]["MaximumConcurrency"] == {"Ref": "RestoreMaxConcurrency"}
    assert template["Parameters"]["RestoreMaxConcurrency"]["MinValue"] >= 2  # the SQS event source minimum


# ---------------------------------------------------------------- queues


def dead_letter_queue_ids(template: dict[str, Any]) -> set[str]:
    queues = resources_of(template, "AWS::SQS::Queue")
    return {
        referenced_id(q["Properties"]["RedrivePolicy"]["deadLetterTargetArn"])
        for q in queues.values()
        if "RedrivePolicy" in q["Properties"]
    }


def test_every_queue_but_a_dead_letter_queue_redrives_to_one(template):
    queues = resources_of(template, "AWS::SQS::Queue")
    dlqs = dead_letter_queue_ids(template)
    assert dlqs, "no dead-letter queues"
    for name, queue in queues.items():
        props = queue["Properties"]
        if name in dlqs:
            assert "RedrivePolicy" not in props, f"{name} is a dead-letter queue with a dead-letter queue"
            assert props["MessageRetentionPeriod"] == 1209600, name
            continue
        redrive = props.get("RedrivePolicy")
        assert redrive, f"{name} has no dead-letter queue"
        dlq = referenced_id(redrive["deadLetterTargetArn"])
        assert dlq in dlqs and dlq in queues
        assert bool(queues[dlq]["Properties"].get("FifoQueue")) == bool(props.get("FifoQueue")), (
            f"{name}: FIFO-ness of queue and DLQ differ"
        )
        assert 1 <= redrive["maxReceiveCount"] <= 10, name


def test_every_queue_is_encrypted(template):
    for name, queue in resources_of(template, "AWS::SQS::Queue").items():
        assert queue["Properties"].get("SqsManagedSseEnabled") is True, name


def test_queue_visibility_timeout_is_six_times_its_consumer_timeout(template):
    queues = template["Resources"]
    sources = list(sqs_event_sources(template))
    assert sources
    for fname, _ename, props in sources:
        queue_id = referenced_id(props["Queue"])
        timeout = function_property(template, queues[fname], "Timeout")
        visibility = queues[queue_id]["Properties"].get("VisibilityTimeout", 30)
        assert visibility >= 6 * timeout, f"{queue_id} ({visibility} s) is consumed by {fname} (timeout {timeout} s)"


def test_completion_queue_accepts_eventbridge_rules_s3_and_the_vault_topic_only(template):
    rule = template["Resources"]["RestoreCompletedRule"]["Properties"]
    assert rule["EventPattern"] == {"source": ["aws.s3"], "detail-type": ["Object Restore Completed"]}
    assert [referenced_id(t["Arn"]) for t in rule["Targets"]] == ["CompletionQueue"]

    policy = template["Resources"]["CompletionQueuePolicy"]["Properties"]
    assert policy["Queues"] == [{"Ref": "CompletionQueue"}]
    by_service = {s["Principal"]["Service"]: s for s in policy["PolicyDocument"]["Statement"]}
    assert set(by_service) == {"events.amazonaws.com", "s3.amazonaws.com", "sns.amazonaws.com"}
    assert by_service["sns.amazonaws.com"]["Condition"] == {"ArnEquals": {"aws:SourceArn": {"Ref": "VaultNotificationTopic"}}}
    assert by_service["events.amazonaws.com"]["Condition"] == {
        "ArnEquals": {"aws:SourceArn": [{"Fn::GetAtt": ["RestoreCompletedRule", "Arn"]}, {"Fn::GetAtt": ["BatchJobStatusRule", "Arn"]}]}
    }
    assert by_service["s3.amazonaws.com"]["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}


def test_glacier_notifies_the_vault_topic_whose_notices_reach_the_completion_queue(template):
    res = template["Resources"]
    (statement,) = res["VaultNotificationTopicPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "glacier.amazonaws.com"} and statement["Action"] == "sns:Publish"
    assert statement["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}
    sub = res["VaultNoticesSubscription"]["Properties"]
    assert sub["TopicArn"] == {"Ref": "VaultNotificationTopic"} and sub["Endpoint"] == {"Fn::GetAtt": ["CompletionQueue", "Arn"]}
    assert template["Globals"]["Function"]["Environment"]["Variables"]["VAULT_TOPIC_ARN"] == {"Ref": "VaultNotificationTopic"}


def test_job_events_queue_receives_the_topic_in_the_sns_envelope_as_the_sample_s(template):
    # A client of the sample reads json.loads(json.loads(body)["Message"]): no raw delivery
    res = template["Resources"]
    sub = res["JobEventsSubscription"]["Properties"]
    assert sub["TopicArn"] == {"Ref": "JobTopic"} and sub["Protocol"] == "sqs"
    assert sub["Endpoint"] == {"Fn::GetAtt": ["JobEventsQueue", "Arn"]}
    assert sub.get("RawMessageDelivery", False) is False
    (statement,) = res["JobEventsQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "sns.amazonaws.com"}
    assert statement["Condition"]["ArnEquals"]["aws:SourceArn"] == {"Ref": "JobTopic"}
    # and the queue create-job names (SQSQueue) is that one
    assert template["Globals"]["Function"]["Environment"]["Variables"]["EVENTS_QUEUE_ARN"] == {"Fn::GetAtt": ["JobEventsQueue", "Arn"]}


def test_the_report_bucket_is_private_encrypted_and_expires_reports(template):
    bucket = template["Resources"]["ReportBucket"]
    props = bucket["Properties"]
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert props["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    (encryption,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert encryption["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms")
    (rule,) = props["LifecycleConfiguration"]["Rules"]
    assert (rule["Status"], rule["ExpirationInDays"]) == ("Enabled", {"Ref": "ReportRetentionDays"})
    assert template["Parameters"]["ReportRetentionDays"]["MinValue"] >= 1
    assert bucket["DeletionPolicy"] == bucket["UpdateReplacePolicy"] == "Retain"
    (deny,) = template["Resources"]["ReportBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert template["Outputs"]["ReportBucket"]["Value"] == {"Ref": "ReportBucket"}
    assert template["Globals"]["Function"]["Environment"]["Variables"]["REPORT_BUCKET"] == {"Ref": "ReportBucket"}


# ---------------------------------------------------------------- IAM


def test_no_iam_statement_grants_wildcard_actions(template):
    statements = list(iam_statements(template))
    assert len(statements) >= 10
    for statement in statements:
        assert "NotAction" not in statement, statement
        if statement["Effect"] == "Deny":
            continue  # a deny grants nothing (the buckets refuse every action without TLS)
        for action in as_list(statement["Action"]):
            assert "*" not in action, statement
        for resource in as_list(statement.get("Resource", [])):
            if resource == "*":  # only s3:CreateJob, which has no resource type, held to restore jobs
                assert as_list(statement["Action"]) == ["s3:CreateJob"], statement
                assert statement["Condition"] == {"StringEquals": {"s3:RequestJobOperation": "S3InitiateRestoreObject"}}, statement
                continue
            assert resource != "*", statement


def function_actions(template: dict[str, Any], name: str) -> set[str]:
    policies = template["Resources"][name]["Properties"]["Policies"]
    return {a for p in policies for s in p["Statement"] for a in as_list(s["Action"])}


def test_function_permissions_cover_what_their_code_calls(template):
    # Puts and updates inside TransactWriteItems are authorised as PutItem / UpdateItem; there
    # is no dynamodb:TransactWriteItems action.
    assert {
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:GetItem",
        "dynamodb:Query",
        "s3:GetObject",
        "sqs:SendMessage",
    } <= function_actions(template, "ApiFunction")
    assert {
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:BatchWriteItem",
        "s3:GetObject",
        "s3:GetBucketNotification",
        "s3:PutBucketNotification",
        "sqs:SendMessage",
    } <= function_actions(template, "PlannerFunction")
    assert {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:BatchGetItem", "s3:RestoreObject"} <= function_actions(
        template, "RestoreFunction"
    )
    assert {"dynamodb:UpdateItem", "dynamodb:BatchGetItem", "dynamodb:Query"} <= function_actions(template, "CompletionFunction")
    assert {
        "dynamodb:Query",
        "dynamodb:UpdateItem",
        "s3:GetObject",
        "s3:GetObjectVersion",
        "s3:RestoreObject",
        "sqs:SendMessage",
    } <= function_actions(template, "SweeperFunction")
    # Vault jobs: the API checks the vault, the restore workers initiate retrievals, the completion
    # worker starts uploads and queues parts, the transfer worker reads job output and writes parts,
    # the sweeper asks DescribeJob and retrieves again.
    assert "glacier:DescribeVault" in function_actions(template, "ApiFunction")
    assert "glacier:InitiateJob" in function_actions(template, "RestoreFunction")
    assert {"s3:PutObject", "s3:AbortMultipartUpload", "s3:ListBucketMultipartUploads", "sqs:SendMessage"} <= function_actions(
        template, "CompletionFunction"
    )
    assert {"glacier:InitiateJob", "glacier:DescribeJob", "glacier:GetJobOutput", "s3:PutObject"} <= function_actions(
        template, "PlannerFunction"
    )
    assert {
        "glacier:GetJobOutput",
        "glacier:InitiateJob",
        "s3:PutObject",
        "s3:AbortMultipartUpload",
        "dynamodb:GetItem",
        "dynamodb:UpdateItem",
    } <= function_actions(template, "TransferFunction")
    assert {
        "glacier:DescribeJob",
        "glacier:InitiateJob",
        "sqs:SendMessage",
        "s3:PutObject",
        "s3:ListBucketMultipartUploads",
    } <= function_actions(template, "SweeperFunction")
    for name in functions(template):
        if name not in ("RestoreFunction", "SweeperFunction", "TransferFunction", "PlannerFunction"):
            assert "glacier:InitiateJob" not in function_actions(template, name), name
        if name not in ("TransferFunction", "PlannerFunction"):
            assert "glacier:GetJobOutput" not in function_actions(template, name), name
    # Every function can end a job (the API by cancelling it): publish the event, drop the
    # job's bucket registrations and its running-job marker.
    for name in functions(template):
        assert {"sns:Publish", "dynamodb:UpdateItem", "dynamodb:BatchWriteItem", "dynamodb:DeleteItem"} <= function_actions(
            template, name
        ), name
    # Objects are written one item at a time in PartiQL: inserted by the restore workers only,
    # moved out of RESTORING by the functions that learn their outcome; counted by the counting
    # function alone, which writes no object.
    assert {"dynamodb:PartiQLInsert", "dynamodb:PartiQLUpdate"} <= function_actions(template, "RestoreFunction")
    for name in ("CompletionFunction", "SweeperFunction", "TransferFunction"):
        assert "dynamodb:PartiQLUpdate" in function_actions(template, name), name
    for name in functions(template):
        if name != "RestoreFunction":
            assert "dynamodb:PartiQLInsert" not in function_actions(template, name), name
    assert not {a for a in function_actions(template, "CounterFunction") if a.startswith("dynamodb:PartiQL")}
    # Only the restore workers and the sweeper (renewals) restore objects; only the planner
    # changes bucket notifications.
    for name in functions(template):
        if name not in ("RestoreFunction", "SweeperFunction"):
            assert "s3:RestoreObject" not in function_actions(template, name), name
        if name != "PlannerFunction":
            assert "s3:PutBucketNotification" not in function_actions(template, name), name


def test_sweeper_runs_on_a_schedule_and_never_overlaps_itself(template):
    sweeper = template["Resources"]["SweeperFunction"]
    (event,) = sweeper["Properties"]["Events"].values()
    assert event["Type"] == "Schedule"
    minutes = re.fullmatch(r"rate\((\d+) minutes?\)", event["Properties"]["Schedule"])
    assert minutes, event["Properties"]["Schedule"]
    assert function_property(template, sweeper, "Timeout") < int(minutes.group(1)) * 60


# ---------------------------------------------------------------- logs, table, API


def test_every_function_has_a_log_group_with_retention(template):
    groups = resources_of(template, "AWS::Logs::LogGroup")
    names = {g["Properties"]["LogGroupName"]["Fn::Sub"]: g["Properties"] for g in groups.values()}
    for fname in functions(template):
        props = names.get(f"/aws/lambda/${{{fname}}}")
        assert props, f"{fname} has no log group"
        assert props["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    assert template["Parameters"]["LogRetentionDays"]["Default"] in template["Parameters"]["LogRetentionDays"]["AllowedValues"]


def test_job_table_is_on_demand_recoverable_and_expires_items(template):
    props = template["Resources"]["JobTable"]["Properties"]
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert props["SSESpecification"] == {"SSEEnabled": True}
    assert props["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}]
    assert {(a["AttributeName"], a["AttributeType"]) for a in props["AttributeDefinitions"]} == {("pk", "S"), ("sk", "S")}
    assert "GlobalSecondaryIndexes" not in props


def template_routes(template: dict[str, Any]) -> set[tuple[str, str]]:
    events = template["Resources"]["ApiFunction"]["Properties"]["Events"].values()
    return {(e["Properties"]["Method"].upper(), e["Properties"]["Path"]) for e in events if e["Type"] == "Api"}


def test_api_routes_exist_and_require_an_api_key(template):
    api = template["Resources"]["RestApi"]["Properties"]
    assert api["Auth"]["ApiKeyRequired"] is True
    assert api["Auth"]["UsagePlan"]["CreateUsagePlan"] == "PER_API"
    assert template_routes(template) == EXPECTED_ROUTES
    for event in template["Resources"]["ApiFunction"]["Properties"]["Events"].values():
        assert event["Properties"]["RestApiId"] == {"Ref": "RestApi"}
        assert event["Properties"].get("Auth", {}).get("ApiKeyRequired", True) is True


def test_api_routes_match_the_handler_routes(template):
    # Given the routes the API handler resolves ("/jobs/<job_id>" in Powertools' spelling)
    from bulk_restore.handlers import api

    routes = api.app._static_routes + api.app._dynamic_routes
    handled = {(r.method.upper(), re.sub(r"<(\w+)>", r"{\1}", r.path)) for r in routes}
    # Then API Gateway forwards exactly those
    assert handled == template_routes(template)


# API Gateway's own answers, customised: type -> (status code, error code, words the message must hold)
GATEWAY_ERRORS = {
    "INVALID_API_KEY": ("403", "MissingOrInvalidApiKey", ("x-api-key",)),
    "ACCESS_DENIED": ("403", "Forbidden", ("x-api-key",)),
    "MISSING_AUTHENTICATION_TOKEN": ("404", "NotFound", ("no such route", "POST /create-job")),
    "RESOURCE_NOT_FOUND": ("404", "NotFound", ("no such route",)),
    "REQUEST_TOO_LARGE": ("413", "RequestTooLarge", ("manifest",)),
    "THROTTLED": ("429", "Throttled", ("retry", "backoff")),
    "QUOTA_EXCEEDED": ("429", "QuotaExceeded", ("ApiQuotaPerDay",)),
    "INTEGRATION_TIMEOUT": ("504", "Timeout", ("retry",)),
    "DEFAULT_4XX": (None, "RequestRefused", ("API reference",)),
    "DEFAULT_5XX": (None, "InternalError", ("retry",)),
}


def render_gateway_template(text: str) -> Any:
    """A gateway response body as API Gateway renders it, with sample $context values."""
    values = {
        "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
        "error.responseType": "THROTTLED",
        "error.message": "Too Many Requests",
        "error.messageString": json.dumps("Too Many Requests"),
    }
    return json.loads(re.sub(r"\$context\.([\w.]+)", lambda m: values[m.group(1)], text))


def test_api_gateway_s_own_answers_have_the_api_error_shape(template):
    responses = template["Resources"]["RestApi"]["Properties"]["GatewayResponses"]
    assert set(responses) == set(GATEWAY_ERRORS)
    for kind, (status, code, words) in GATEWAY_ERRORS.items():
        response = responses[kind]
        # A status for each type; none on the defaults (it would replace every 4XX / 5XX status)
        assert response.get("StatusCode") == status, kind
        (text,) = response["ResponseTemplates"].values()
        assert list(response["ResponseTemplates"]) == ["application/json"]
        # Only the $context variables the local stack renders too, and no VTL directive
        assert set(re.findall(r"\$context\.([\w.]+)", text)) <= set(TEMPLATE_VARIABLES), kind
        assert "#" not in text and "${" not in text, kind
        body = render_gateway_template(text)
        assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}, kind
        assert body["error"]["code"] == code, kind
        for word in words:
            assert word in body["error"]["message"], (kind, word)
        assert body["error"]["details"]["requestId"] == "c6af9ac6-7b61-11e6-9a41-93e8deadbeef", kind


def test_api_gateway_s_no_such_route_answer_names_every_route_of_the_api(template):
    # A route added to the API is named in the 404 that API Gateway gives a wrong method or path
    responses = template["Resources"]["RestApi"]["Properties"]["GatewayResponses"]
    for kind in ("MISSING_AUTHENTICATION_TOKEN", "RESOURCE_NOT_FOUND"):
        (text,) = responses[kind]["ResponseTemplates"].values()
        message = render_gateway_template(text)["error"]["message"]
        named = set(re.findall(r"\b(GET|POST|PUT|DELETE|PATCH) (/[\w./-]*)", message))
        assert named == {(method, re.sub(r"\{\w+\}", "ID", path)) for method, path in template_routes(template)}, kind


# ---------------------------------------------------------------- configuration


def test_globals_set_every_variable_the_settings_need(template):
    env = template["Globals"]["Function"]["Environment"]["Variables"]
    variables = settings_variables()
    assert set(variables.values()) >= REQUIRED_SETTINGS_VARIABLES, "the settings no longer read some of these"
    # A setting whose default is empty has no value that could work on AWS.
    empty_by_default = {var for field, var in variables.items() if Settings.model_fields[field].default == ""}
    missing = sorted((REQUIRED_SETTINGS_VARIABLES | empty_by_default) - set(env))
    assert not missing, f"not set in template.yaml Globals: {missing}"
    # and no variable is set that nothing reads
    assert {v for v in env if not v.startswith("POWERTOOLS_")} <= set(variables.values())
    assert env["POWERTOOLS_SERVICE_NAME"] == "bulk-restore"


def resolve_with_defaults(value: Any, parameters: dict[str, Any]) -> str:
    if isinstance(value, dict) and "Fn::If" in value:
        # The template's conditions test optional parameters, empty by default: the "else" branch.
        return resolve_with_defaults(value["Fn::If"][2], parameters)
    if isinstance(value, dict) and "Ref" in value and value["Ref"] in parameters:
        return str(parameters[value["Ref"]]["Default"])
    if isinstance(value, dict):
        return f"resolved-{referenced_id(value)}"
    return str(value)


def test_settings_accept_the_template_defaults_and_parameter_bounds(template):
    params = template["Parameters"]
    env = {k: resolve_with_defaults(v, params) for k, v in template["Globals"]["Function"]["Environment"]["Variables"].items()}
    # When the functions read the environment the template sets up with default parameters
    settings = Settings.from_env(env)
    # Then every value is taken as given
    assert settings.progress_step_percent == params["ProgressStepPercent"]["Default"]
    assert settings.restore_concurrency == params["RestoreConcurrency"]["Default"]
    assert settings.job_retention_days == params["JobRetentionDays"]["Default"]
    assert settings.object_retention_days == params["ObjectRetentionDays"]["Default"]
    assert settings.manage_eventbridge is True
    assert settings.allowed_bucket_set is None  # "*": any bucket
    assert settings.restore_rate_per_second == params["RestoreRatePerSecond"]["Default"]
    assert settings.table_name == "resolved-JobTable"
    assert settings.manifest_bucket_list == ("resolved-ManifestBucket",)
    # and the extremes the parameters allow are valid settings too
    for parameter, variable in (("ProgressStepPercent", "PROGRESS_STEP_PERCENT"), ("RestoreConcurrency", "RESTORE_CONCURRENCY")):
        for bound in ("MinValue", "MaxValue"):
            Settings.from_env({**env, variable: str(params[parameter][bound])})
    for allowed in params["ManageEventBridge"]["AllowedValues"]:
        assert Settings.from_env({**env, "MANAGE_EVENTBRIDGE": allowed}).manage_eventbridge is (allowed == "true")


def test_every_parameter_has_a_default(template):
    for name, parameter in template["Parameters"].items():
        assert "Default" in parameter, name
        assert parameter.get("Description"), name


def test_every_reference_points_at_something_defined(template):
    # The local emulator provisions from this file: a dangling reference would break it silently.
    known = set(template["Parameters"]) | set(template["Resources"]) | PSEUDO_PARAMETERS | SAM_GENERATED_IDS
    for node in walk({"Globals": template["Globals"], "Resources": template["Resources"], "Outputs": template["Outputs"]}):
        if not isinstance(node, dict):
            continue
        if "Ref" in node or "Fn::GetAtt" in node:
            assert referenced_id(node) in known, node
        if "Fn::Sub" in node and isinstance(node["Fn::Sub"], str):
            for name in re.findall(r"\$\{([^}!]+)\}", node["Fn::Sub"]):
                assert name.split(".")[0] in known, (name, node)


def test_outputs_are_described(template):
    outputs = template["Outputs"]
    for name in (
        "ApiUrl",
        "CreateJobUrl",
        "ApiKeyId",
        "ApiKeyCommand",
        "TopicArn",
        "JobEventsQueueUrl",
        "CompletionQueueArn",
        "CompletionQueueUrl",
        "TableName",
        "PlanDeadLetterQueueUrl",
        "RestoreDeadLetterQueueUrl",
        "CompletionDeadLetterQueueUrl",
        "RestAPI",
        "ReportBucket",
    ):
        assert outputs[name].get("Description"), name
    assert outputs["ApiKeyId"]["Value"] == {"Ref": "RestApiApiKey"}
    # the sample's output: the API's base URL, with the stage and a trailing slash
    assert outputs["RestAPI"]["Value"] == {"Fn::Sub": "https://${RestApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}/prod/"}


# ---------------------------------------------------------------- dashboard


def dashboard_body(template: dict[str, Any]) -> dict[str, Any]:
    """The dashboard's JSON as CloudFormation would write it: each ${Name} / ${Name.Attr} replaced by <Name> / <Name.Attr>."""
    (dashboard,) = resources_of(template, "AWS::CloudWatch::Dashboard").values()
    text = dashboard["Properties"]["DashboardBody"]["Fn::Sub"]
    assert isinstance(text, str), "the body is one !Sub string, so every ${...} in it is checked to exist"
    return json.loads(re.sub(r"\$\{([^}!]+)\}", r"<\1>", text))


def dashboard_metrics(body: dict[str, Any], metric: str) -> list[tuple[str, dict[str, str], str]]:
    """(namespace, dimensions, widget title) of each graph of ``metric`` on the dashboard."""
    found = []
    for widget in body["widgets"]:
        for row in widget["properties"].get("metrics", []):
            names = [part for part in row if isinstance(part, str)]
            if names[1] == metric:
                found.append((names[0], dict(zip(names[2::2], names[3::2], strict=True)), widget["properties"]["title"]))
    return found


def test_the_dashboard_is_json_once_substituted_and_every_graph_is_in_the_stack_s_region(template):
    body = dashboard_body(template)
    graphs = [w for w in body["widgets"] if w["type"] == "metric"]
    assert graphs
    for widget in graphs:
        assert widget["properties"]["region"] == "<AWS::Region>", widget["properties"]["title"]
        assert widget["properties"]["metrics"], widget["properties"]["title"]
    # no two widgets overlap on the 24-column grid
    cells = [(w["x"] + dx, w["y"] + dy) for w in body["widgets"] for dx in range(w["width"]) for dy in range(w["height"])]
    assert len(cells) == len(set(cells)) and all(x < 24 for x, _ in cells)


def test_the_dashboard_shows_every_function_s_errors_throttles_and_durations(template):
    everyone = {f"<{name}>" for name in functions(template)}
    for metric in ("Errors", "Throttles", "Duration", "Invocations"):
        graphs = dashboard_metrics(dashboard_body(template), metric)
        assert {ns for ns, _, _ in graphs} == {"AWS/Lambda"}
        shown = {dims["FunctionName"] for _, dims, _ in graphs}
        assert shown == everyone, f"{metric}: missing {sorted(everyone - shown)}, unknown {sorted(shown - everyone)}"


def test_the_dashboard_shows_every_queue_s_age_and_depth_and_every_dead_letter_queue_s_messages(template):
    queues = {f"<{name}.QueueName>" for name in resources_of(template, "AWS::SQS::Queue")}
    dead_letter = {f"<{name}.QueueName>" for name in dead_letter_queue_ids(template)}
    assert dead_letter and dead_letter < queues
    body = dashboard_body(template)
    ages = {dims["QueueName"] for ns, dims, _ in dashboard_metrics(body, "ApproximateAgeOfOldestMessage") if ns == "AWS/SQS"}
    assert ages == queues, f"age of the oldest message: missing {sorted(queues - ages)}"
    depths: dict[str, set[str]] = {}
    for ns, dims, title in dashboard_metrics(body, "ApproximateNumberOfMessagesVisible"):
        assert ns == "AWS/SQS"
        depths.setdefault(title, set()).add(dims["QueueName"])
    [dead_letters] = [shown for title, shown in depths.items() if "dead" in title.lower()]
    assert dead_letters == dead_letter, f"dead letters: missing {sorted(dead_letter - dead_letters)}"
    waiting = set().union(*(shown for title, shown in depths.items() if "dead" not in title.lower()))
    assert waiting == queues - dead_letter, f"messages waiting: missing {sorted(queues - dead_letter - waiting)}"


def test_the_dashboard_shows_every_metric_the_functions_emit_in_their_namespace_and_service(template):
    from bulk_restore.adapters.metrics import DEFAULT_NAMESPACE
    from bulk_restore.domain.model import JobStatus
    from bulk_restore.usecases import metrics

    env = template["Globals"]["Function"]["Environment"]["Variables"]
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == {"Ref": "MetricsNamespace"}
    assert template["Parameters"]["MetricsNamespace"]["Default"] == DEFAULT_NAMESPACE
    pattern = re.compile(template["Parameters"]["MetricsNamespace"]["AllowedPattern"])
    assert pattern.match(DEFAULT_NAMESPACE) and pattern.match("BulkRestore/prod") and not pattern.match("AWS/Lambda")
    body = dashboard_body(template)
    emitted = {
        value for name, value in vars(metrics).items() if name.isupper() and name not in ("COUNT", "BYTES") and isinstance(value, str)
    }
    assert emitted >= {
        "RestoresRequested",
        "RestoresCompleted",
        "RestoresFailed",
        "RestoresSkipped",
        "RestoresThrottled",
        "JobsEnded",
        "BytesMoved",
    }
    for metric in emitted:
        graphs = dashboard_metrics(body, metric)
        assert graphs, f"{metric} is not on the dashboard"
        for namespace, dims, _ in graphs:
            assert namespace == "<MetricsNamespace>" and dims["service"] == env["POWERTOOLS_SERVICE_NAME"], (metric, dims)
    ended = {dims["State"] for _, dims, _ in dashboard_metrics(body, "JobsEnded")}
    assert ended == {status.value for status in JobStatus if status.is_terminal}


def test_the_dashboard_s_console_url_is_an_output(template):
    (name,) = resources_of(template, "AWS::CloudWatch::Dashboard")
    url = template["Outputs"]["DashboardUrl"]
    assert url["Description"]
    assert url["Value"]["Fn::Sub"].startswith(
        "https://${AWS::Region}.console.aws.amazon.com/cloudwatch/home?region=${AWS::Region}#dashboards"
    )
    assert url["Value"]["Fn::Sub"].endswith(f"/${{{name}}}")


def _imported_roots(path: Path) -> dict[str, list[str]]:
    """The top-level modules a file imports (absolute imports, at any depth), with where."""
    roots: dict[str, list[str]] = {}
    tree = ast.parse(path.read_text(encoding="utf-8"))
    # what `if TYPE_CHECKING:` imports is for the type checker (stub packages), never run
    checking_only = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for statement in node.body
        for inner in ast.walk(statement)
    }
    for node in ast.walk(tree):
        if id(node) in checking_only:
            continue
        names = (
            [a.name for a in node.names]
            if isinstance(node, ast.Import)
            else [node.module or ""]
            if isinstance(node, ast.ImportFrom) and node.level == 0
            else []
        )
        for name in names:
            roots.setdefault(name.split(".")[0], []).append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return roots


def test_the_deployed_code_is_the_functions_package_alone():
    # CodeUri is src/: sam build ships everything in it. It holds the functions' package and
    # its requirements, nothing else: the command line, the local stack, the demo and the
    # benchmarks are bulk_restore_cli, in tools/.
    shipped = {p.name for p in (ROOT / "src").iterdir() if p.name != "__pycache__" and not p.name.endswith(".egg-info")}
    assert shipped == {"bulk_restore", "requirements.txt"}
    assert (ROOT / "tools" / "bulk_restore_cli" / "cli.py").is_file()
    assert not any((ROOT / "src" / "bulk_restore" / name).exists() for name in ("local", "client", "bench", "demo.py", "cli.py"))


def test_the_deployed_code_imports_only_the_runtime_and_its_requirements():
    # Every module of src/bulk_restore imports the standard library, boto3/botocore (in the
    # Lambda runtime), src/requirements.txt's packages, or itself; never bulk_restore_cli nor a
    # test or local-stack dependency (moto, yaml, rich, requests), which the package lacks.
    # pyarrow (Parquet inventories) is the one optional import, and it is guarded.
    allowed = set(sys.stdlib_module_names) | {"bulk_restore", "boto3", "botocore", "aws_lambda_powertools", "pydantic", "pydantic_core"}
    found: dict[str, list[str]] = {}
    for path in sorted((ROOT / "src" / "bulk_restore").rglob("*.py")):
        for root, where in _imported_roots(path).items():
            found.setdefault(root, []).extend(where)
    outside = {root: where for root, where in found.items() if root not in allowed}
    assert set(outside) <= {"pyarrow"}, outside
    for where in outside.get("pyarrow", []):
        path, line = where.split(":")
        source = (ROOT / path).read_text(encoding="utf-8")
        indented = source.splitlines()[int(line) - 1].startswith(" ")
        assert indented and "except ImportError" in source, (
            f"{where}: pyarrow is not in the Lambda package; import it lazily, where its absence is handled"
        )


# ---------------------------------------------------------------- cfn-lint


def test_cfn_lint_reports_nothing():
    beside_python = Path(sys.executable).parent / "cfn-lint"
    cfn_lint = str(beside_python) if beside_python.exists() else shutil.which("cfn-lint")
    if cfn_lint is None:
        pytest.skip("cfn-lint is not installed")
    result = subprocess.run([cfn_lint, str(TEMPLATE)], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def test_the_counting_function_reads_the_table_s_stream_one_batch_per_shard_and_never_drops_a_record(template):
    # The counters' checkpoint relies on these: the shard's id in the event (a tumbling window), one
    # batch of a shard at a time, every record eventually counted (bisect, retry until it succeeds)
    table = template["Resources"]["JobTable"]["Properties"]
    assert table["StreamSpecification"] == {"StreamViewType": "NEW_AND_OLD_IMAGES"}
    (event,) = template["Resources"]["CounterFunction"]["Properties"]["Events"].values()
    props = event["Properties"]
    assert event["Type"] == "DynamoDB" and props["Stream"] == {"Fn::GetAtt": ["JobTable", "StreamArn"]}
    assert props["StartingPosition"] == "TRIM_HORIZON" and props["ParallelizationFactor"] == 1
    assert 0 < props["TumblingWindowInSeconds"] <= 900
    assert props["BisectBatchOnFunctionError"] is True and props["MaximumRetryAttempts"] == -1
    assert "MaximumRecordAgeInSeconds" not in props  # records are kept as long as the stream keeps them
    # Its filters let through every object change and chunk marker (the rest moves no count)
    from bulk_restore_cli.local.lambda_runtime import parse_filter_criteria, pattern_matches

    patterns = parse_filter_criteria([f["Pattern"] for f in props["FilterCriteria"]["Filters"]])

    def passes(name: str, keys: dict, new: dict) -> bool:
        record = {"eventName": name, "dynamodb": {"Keys": keys, "NewImage": {**keys, **new}}}
        return any(pattern_matches(p, record) for p in patterns)

    obj = {"pk": {"S": "JOB#j#O#03"}, "sk": {"S": "a" * 32}}
    assert passes("INSERT", obj, {"state": {"S": "RESTORING"}}) and passes("MODIFY", obj, {"state": {"S": "RESTORED"}})
    assert passes("INSERT", {"pk": {"S": "JOB#j#CHUNKS"}, "sk": {"S": "0000000001"}}, {"objects": {"N": "98"}})
    assert not passes("MODIFY", {"pk": {"S": "JOB#j"}, "sk": {"S": "META"}}, {"status": {"S": "Restoring"}})
    assert not passes("MODIFY", {"pk": {"S": "JOB#j"}, "sk": {"S": "COUNT#s"}}, {"seq": {"N": "7"}})
    # And an alarm says when it falls behind
    alarm = template["Resources"]["CountingBehindAlarm"]["Properties"]
    assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/Lambda", "IteratorAge")
    assert alarm["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": "CounterFunction"}}]
