"""The local stack is made from template.yaml itself: loader, intrinsics, provisioner."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from bulk_restore_cli.local.provision import merge_globals, provision, rate_seconds
from bulk_restore_cli.local.template import (
    Resolver,
    TemplateError,
    Unresolvable,
    dependency_order,
    parse_parameters,
    parse_template,
    references,
)

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"
needs_template = pytest.mark.skipif(not TEMPLATE.exists(), reason="template.yaml is not there yet")


@pytest.fixture
def aws(monkeypatch):
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        yield


# ---- the loader and the intrinsics ----------------------------------------------------------

SHORT_AND_LONG = """
AWSTemplateFormatVersion: 2010-09-09
Parameters:
  Env: {Type: String, Default: dev, AllowedValues: [dev, prod]}
  Size: {Type: Number, Default: 3, MinValue: 1}
Conditions:
  IsProd: !Equals [!Ref Env, prod]
  NotProd: !Not [!Condition IsProd]
  Both: !And [!Condition NotProd, !Equals [a, a]]
  Either: {"Fn::Or": [{"Condition": "IsProd"}, {"Fn::Equals": ["x", "y"]}]}
Mappings:
  Sizes: {dev: {Memory: 128}}
Resources:
  Queue:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: !Sub "${AWS::StackName}-${Env}-q"
  Other:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: !Sub
        - "${Base}-other-${Queue.QueueName}"
        - Base: !Select [1, !Split ["/", "a/b/c"]]
      Tags:
        - Key: joined
          Value: !Join ["-", [!Ref Env, !GetAtt Queue.Arn, {"Fn::GetAtt": ["Queue", "QueueName"]}]]
        - Key: chosen
          Value: !If [IsProd, big, !FindInMap [Sizes, !Ref Env, Memory]]
        - !If [Both, {Key: both, Value: "yes"}, !Ref AWS::NoValue]
        - Key: literal
          Value: !Sub "${!NotAVariable}"
        - Key: long
          Value: {"Fn::Sub": "${Env}-${Size}"}
"""


def resolver_for(doc, parameters=None, made=None):
    refs = {"AWS::StackName": "st", "AWS::Region": "us-east-1", **parse_parameters(doc, parameters)}
    attributes = {}
    for name, (ref, attrs) in (made or {}).items():
        refs[name] = ref
        attributes[name] = attrs
    return Resolver(refs, attributes, doc.get("Conditions"), doc.get("Mappings"))


def test_short_forms_load_as_their_long_forms():
    doc = parse_template(SHORT_AND_LONG)

    assert doc["AWSTemplateFormatVersion"] == "2010-09-09"  # a string, not a date
    other = doc["Resources"]["Other"]["Properties"]
    assert other["QueueName"]["Fn::Sub"][1]["Base"] == {"Fn::Select": [1, {"Fn::Split": ["/", "a/b/c"]}]}
    assert other["Tags"][0]["Value"]["Fn::Join"][1][1] == {"Fn::GetAtt": ["Queue", "Arn"]}
    assert doc["Conditions"]["NotProd"] == {"Fn::Not": [{"Condition": "IsProd"}]}


def test_intrinsics_resolve_in_both_forms():
    doc = parse_template(SHORT_AND_LONG)
    resolver = resolver_for(doc, made={"Queue": ("https://q/st-dev-q", {"Arn": "arn:q", "QueueName": "st-dev-q"})})

    assert resolver.resolve(doc["Resources"]["Queue"]["Properties"]) == {"QueueName": "st-dev-q"}
    props = resolver.resolve(doc["Resources"]["Other"]["Properties"])
    assert props["QueueName"] == "b-other-st-dev-q"
    assert props["Tags"] == [
        {"Key": "joined", "Value": "dev-arn:q-st-dev-q"},
        {"Key": "chosen", "Value": 128},
        {"Key": "both", "Value": "yes"},
        {"Key": "literal", "Value": "${NotAVariable}"},
        {"Key": "long", "Value": "dev-3"},
    ]
    assert resolver.condition("Either") is False


def test_conditions_follow_parameter_overrides_and_no_value_disappears():
    doc = parse_template(SHORT_AND_LONG)
    resolver = resolver_for(doc, {"Env": "prod"}, made={"Queue": ("u", {"Arn": "a", "QueueName": "n"})})

    tags = resolver.resolve(doc["Resources"]["Other"]["Properties"]["Tags"])

    assert {"Key": "chosen", "Value": "big"} in tags
    assert not any(t["Key"] == "both" for t in tags)
    assert resolver.condition("Either") is True


def test_parameters_are_checked_against_their_constraints():
    doc = parse_template(SHORT_AND_LONG)

    assert parse_parameters(doc) == {"Env": "dev", "Size": "3"}
    with pytest.raises(TemplateError):
        parse_parameters(doc, {"Env": "qa"})
    with pytest.raises(TemplateError):
        parse_parameters(doc, {"Size": "0"})
    with pytest.raises(TemplateError):
        parse_parameters(doc, {"Nope": "1"})


def test_references_order_the_resources_and_unknown_ones_are_unresolvable():
    doc = parse_template(SHORT_AND_LONG)

    assert references(doc["Resources"]["Other"]["Properties"]) >= {"Queue", "Env"}
    assert dependency_order({"B": {"Properties": {"X": {"Ref": "A"}}}, "A": {}, "C": {"DependsOn": "B"}}) == ["A", "B", "C"]
    with pytest.raises(TemplateError):
        dependency_order({"A": {"Properties": {"X": {"Ref": "B"}}}, "B": {"Properties": {"X": {"Fn::Sub": "${A.Arn}"}}}})
    with pytest.raises(Unresolvable):
        resolver_for(doc).resolve({"Ref": "Missing"})


def test_globals_merge_the_sam_way_and_rates_become_seconds():
    merged = merge_globals(
        {"Timeout": 60, "Environment": {"Variables": {"A": "1", "B": "2"}}, "Layers": ["g"]},
        {"Timeout": 900, "Environment": {"Variables": {"B": "own"}}, "Layers": ["f"]},
    )

    assert merged == {"Timeout": 900, "Environment": {"Variables": {"A": "1", "B": "own"}}, "Layers": ["g", "f"]}
    assert rate_seconds("rate(5 minutes)") == 300
    assert rate_seconds("rate(1 hour)") == 3600
    assert rate_seconds("cron(0 12 * * ? *)") is None


SCHEDULED = """
Transform: AWS::Serverless-2016-10-31
Globals:
  Function:
    Timeout: 30
    Environment: {Variables: {QUEUE: !Ref Work}}
Resources:
  Work:
    Type: AWS::SQS::Queue
  Sweeper:
    Type: AWS::Serverless::Function
    Properties:
      Handler: bulk_restore.handlers.planner.handler
      Events:
        Every:
          Type: Schedule
          Properties: {Schedule: rate(15 minutes), Input: '{"sweep": true}'}
        Nightly:
          Type: Schedule
          Properties: {Schedule: "cron(0 3 * * ? *)"}
        Off:
          Type: Schedule
          Properties: {Schedule: rate(1 minute), Enabled: false}
  Alarm:
    Type: AWS::CloudWatch::Alarm
    Properties: {AlarmName: never-made}
"""


def test_schedule_events_become_schedule_sources(aws):
    stack = provision(parse_template(SCHEDULED), stack_name="sched")

    [spec] = stack.functions.values()
    assert spec.environment == {"QUEUE": stack.ref("Work")}
    assert spec.timeout == 30
    assert [(s.name, s.every_seconds, s.enabled) for s in spec.schedules] == [
        ("Every", 900, True),
        ("Nightly", None, True),
        ("Off", 60, False),
    ]
    [source] = stack.schedule_sources(load=lambda path: print, scale=0.01, minimum_seconds=1)
    assert source.every_seconds == 9 and source.input == {"sweep": True}
    assert [(s.logical_id, s.type) for s in stack.skipped] == [("Alarm", "AWS::CloudWatch::Alarm")]


ROLE = """
Resources:
  Runner:
    Type: AWS::IAM::Role
    Properties:
      AssumeRolePolicyDocument:
        Version: "2012-10-17"
        Statement: [{Effect: Allow, Principal: {Service: batchoperations.s3.amazonaws.com}, Action: sts:AssumeRole}]
      Policies:
        - PolicyName: restore
          PolicyDocument: {Version: "2012-10-17", Statement: [{Effect: Allow, Action: s3:RestoreObject, Resource: "arn:aws:s3:::b/*"}]}
Outputs:
  RoleArn:
    Value: !GetAtt Runner.Arn
"""


def test_roles_are_made_with_their_trust_and_inline_policies(aws):
    import boto3

    stack = provision(parse_template(ROLE), stack_name="roles")
    iam = boto3.client("iam", region_name="us-east-1")
    name = stack.ref("Runner")
    role = iam.get_role(RoleName=name)["Role"]
    assert stack.outputs["RoleArn"] == role["Arn"] and role["Arn"].endswith(f":role/{name}")
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": "batchoperations.s3.amazonaws.com"}
    policy = iam.get_role_policy(RoleName=name, PolicyName="restore")["PolicyDocument"]
    assert policy["Statement"][0]["Action"] == "s3:RestoreObject"


# ---- the real template ------------------------------------------------------------------------


@needs_template
def test_the_template_is_provisioned_with_every_resource_it_needs(aws):
    stack = provision(TEMPLATE, stack_name="br-local", parameters={"ProgressStepPercent": "25"})
    ddb, sqs, sns, events = (boto3.client(s, region_name="us-east-1") for s in ("dynamodb", "sqs", "sns", "events"))

    table = ddb.describe_table(TableName=stack.ref("JobTable"))["Table"]
    assert {k["AttributeName"]: k["KeyType"] for k in table["KeySchema"]} == {"pk": "HASH", "sk": "RANGE"}
    assert ddb.describe_time_to_live(TableName=stack.ref("JobTable"))["TimeToLiveDescription"]["AttributeName"] == "expires_at"

    plan = sqs.get_queue_attributes(QueueUrl=stack.ref("PlanQueue"), AttributeNames=["All"])["Attributes"]
    assert stack.ref("PlanQueue").endswith("/br-local-plan.fifo")
    assert plan["FifoQueue"] == "true"
    assert json.loads(plan["RedrivePolicy"])["deadLetterTargetArn"] == stack.attribute("PlanDeadLetterQueue", "Arn")
    for queue in ("RestoreQueue", "CompletionQueue", "JobEventsQueue"):
        redrive = sqs.get_queue_attributes(QueueUrl=stack.ref(queue), AttributeNames=["RedrivePolicy"])["Attributes"]["RedrivePolicy"]
        dead_letter = queue.replace("Queue", "DeadLetterQueue")
        assert json.loads(redrive)["deadLetterTargetArn"] == stack.attribute(dead_letter, "Arn")

    [subscription] = sns.list_subscriptions_by_topic(TopicArn=stack.ref("JobTopic"))["Subscriptions"]
    assert subscription["Endpoint"] == stack.attribute("JobEventsQueue", "Arn")
    attrs = sns.get_subscription_attributes(SubscriptionArn=subscription["SubscriptionArn"])["Attributes"]
    assert attrs.get("RawMessageDelivery", "false") == "false"  # the SNS envelope, as the sample's queue gets it

    rule = events.describe_rule(Name=stack.ref("RestoreCompletedRule"))
    assert json.loads(rule["EventPattern"]) == {"source": ["aws.s3"], "detail-type": ["Object Restore Completed"]}
    [target] = events.list_targets_by_rule(Rule=stack.ref("RestoreCompletedRule"))["Targets"]
    assert target["Arn"] == stack.attribute("CompletionQueue", "Arn")

    assert stack.output("TopicArn") == stack.ref("JobTopic")
    assert stack.output("JobEventsQueueUrl") == stack.ref("JobEventsQueue")
    assert {s.type for s in stack.skipped} >= {"AWS::Logs::LogGroup"}

    # The report bucket, private, encrypted, its reports expiring; the sample's RestAPI output
    s3 = boto3.client("s3", region_name="us-east-1")
    bucket = stack.ref("ReportBucket")
    assert stack.output("ReportBucket") == bucket
    assert s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]["BlockPublicPolicy"] is True
    (rule,) = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert rule["Expiration"] == {"Days": 28}
    encryption = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert encryption["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    # Its TLS-only policy is left out locally (plain HTTP on loopback would be refused), and said so
    assert any("ReportBucketPolicy" in note and "TLS" in note for note in stack.notes)
    manifests = stack.ref("ManifestBucket")
    assert stack.output("ManifestBucket") == manifests
    s3.put_object(Bucket=manifests, Key="m.csv", Body=b"b,k\n")  # usable over the local HTTP endpoint
    assert s3.get_public_access_block(Bucket=manifests)["PublicAccessBlockConfiguration"]["BlockPublicAcls"] is True
    assert stack.output("RestAPI") == f"https://{stack.apis['RestApi'].api_id}.execute-api.us-east-1.amazonaws.com/prod/"
    # The API brings its gateway responses and usage plan to the local API
    api = stack.apis["RestApi"]
    assert api.gateway_responses["INVALID_API_KEY"]["StatusCode"] == "403"
    assert api.usage_plan["Throttle"] == {"BurstLimit": "40", "RateLimit": "20"}


@needs_template
def test_the_functions_get_their_environment_and_event_sources(aws):
    stack = provision(TEMPLATE, stack_name="br-local", parameters={"ProgressStepPercent": "25"})

    env = stack.function_environment()
    assert env["TABLE_NAME"] == stack.ref("JobTable")
    assert env["EVENTS_QUEUE_ARN"] == stack.attribute("JobEventsQueue", "Arn")
    assert env["REPORT_BUCKET"] == stack.ref("ReportBucket")
    assert env["PLAN_QUEUE_URL"] == stack.ref("PlanQueue")
    assert env["RESTORE_QUEUE_URL"] == stack.ref("RestoreQueue")
    assert env["TOPIC_ARN"] == stack.ref("JobTopic")
    assert env["PROGRESS_STEP_PERCENT"] == "25"

    sources = {s.function_name: s for s in stack.sqs_event_sources(load=lambda path: path)}
    planner = sources[stack.ref("PlannerFunction")]
    assert (planner.queue_url, planner.batch_size, planner.report_failures, planner.fifo) == (stack.ref("PlanQueue"), 1, True, True)
    restorer = sources[stack.ref("RestoreFunction")]
    assert (restorer.batch_size, restorer.window_seconds, restorer.report_failures) == (10, 1.0, True)
    completion = sources[stack.ref("CompletionFunction")]
    assert (completion.queue_url, completion.batch_size, completion.window_seconds) == (stack.ref("CompletionQueue"), 1000, 60.0)
    assert completion.handler == "bulk_restore.handlers.completion.handler"
    assert completion.timeout_s == stack.functions["CompletionFunction"].timeout

    routes = {(r.method, r.path): r for r in stack.routes()}
    assert {("POST", "/create-job"), ("GET", "/jobs/{job_id}"), ("GET", "/jobs/{job_id}/objects")} <= set(routes)
    assert all(r.api_key_required and r.stage == "prod" for r in routes.values())
    assert stack.functions["ApiFunction"].timeout == 29


OTHER_SHAPES = """
Transform: AWS::Serverless-2016-10-31
Parameters:
  WithBucket: {Type: String, Default: "yes", AllowedValues: ["yes", "no"]}
Conditions:
  MakeBucket: !Equals [!Ref WithBucket, "yes"]
Resources:
  Table:
    Type: AWS::DynamoDB::Table
    Properties:
      BillingMode: PAY_PER_REQUEST
      AttributeDefinitions:
        - {AttributeName: pk, AttributeType: S}
        - {AttributeName: gsi1pk, AttributeType: S}
      KeySchema: [{AttributeName: pk, KeyType: HASH}]
      GlobalSecondaryIndexes:
        - IndexName: by-gsi1
          KeySchema: [{AttributeName: gsi1pk, KeyType: HASH}]
          Projection: {ProjectionType: KEYS_ONLY}
      StreamSpecification: {StreamViewType: NEW_AND_OLD_IMAGES}
  Topic:
    Type: AWS::SNS::Topic
  Queue:
    Type: AWS::SQS::Queue
    Properties:
      FifoQueue: true
      ContentBasedDeduplication: true
  Plain:
    Type: AWS::SQS::Queue
  Filtered:
    Type: AWS::SNS::Subscription
    Properties:
      TopicArn: !Ref Topic
      Protocol: sqs
      Endpoint: !GetAtt Plain.Arn
      FilterPolicy: {Status: [Complete]}
  Bucket:
    Type: AWS::S3::Bucket
    Condition: MakeBucket
    Properties:
      VersioningConfiguration: {Status: Enabled}
      NotificationConfiguration:
        EventBridgeConfiguration: {EventBridgeEnabled: true}
  Nightly:
    Type: AWS::Events::Rule
    Properties:
      ScheduleExpression: rate(1 day)
      Targets:
        - Id: fn
          Arn: !GetAtt Worker.Arn
          Input: '{"from": "rule"}'
  Worker:
    Type: AWS::Serverless::Function
    Properties:
      Handler: bulk_restore.handlers.planner.handler
      Environment:
        Variables:
          STREAM: !GetAtt Table.StreamArn
          BUCKET: !If [MakeBucket, !Ref Bucket, none]
      Events:
        Hello:
          Type: Api
          Properties: {Path: "/hello/{name+}", Method: any}
"""


def test_less_common_shapes_are_made_too(aws):
    stack = provision(parse_template(OTHER_SHAPES), stack_name="shapes")
    ddb, sqs, sns, s3 = (boto3.client(s, region_name="us-east-1") for s in ("dynamodb", "sqs", "sns", "s3"))

    table = ddb.describe_table(TableName=stack.ref("Table"))["Table"]
    assert [i["IndexName"] for i in table["GlobalSecondaryIndexes"]] == ["by-gsi1"]
    assert table["StreamSpecification"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"
    assert stack.ref("Queue").endswith(".fifo")
    assert sqs.get_queue_attributes(QueueUrl=stack.ref("Queue"), AttributeNames=["ContentBasedDeduplication"])["Attributes"] == {
        "ContentBasedDeduplication": "true"
    }
    policy = sns.get_subscription_attributes(SubscriptionArn=stack.ref("Filtered"))["Attributes"]["FilterPolicy"]
    assert json.loads(policy) == {"Status": ["Complete"]}
    assert s3.get_bucket_versioning(Bucket=stack.ref("Bucket"))["Status"] == "Enabled"
    from moto.s3.models import s3_backends  # moto's GET leaves EventBridgeConfiguration out: look inside

    assert s3_backends[stack.account_id]["aws"].get_bucket(stack.ref("Bucket")).notification_configuration.event_bridge is not None
    worker = stack.functions["Worker"]
    assert worker.environment == {"STREAM": stack.attribute("Table", "StreamArn"), "BUCKET": stack.ref("Bucket")}
    assert [(r.method, r.path, r.api, r.stage) for r in worker.routes] == [("ANY", "/hello/{name+}", "ServerlessRestApi", "Prod")]
    assert [(s.every_seconds, s.input) for s in worker.schedules] == [(86400, {"from": "rule"})]


def test_a_false_condition_skips_the_resource(aws):
    stack = provision(parse_template(OTHER_SHAPES), stack_name="shapes", parameters={"WithBucket": "no"})

    assert "Bucket" not in stack.resources
    assert ("Bucket", "condition MakeBucket is false") in [(s.logical_id, s.reason) for s in stack.skipped]
    assert stack.functions["Worker"].environment["BUCKET"] == "none"
