"""Make a template's resources on an AWS endpoint (moto), and describe its functions' triggers.

The provisioner walks the resources in dependency order and creates each type it knows: DynamoDB
tables (GSIs, LSIs, streams, TTL), SQS queues (FIFO, attributes, redrive) and queue policies, SNS
topics, subscriptions (raw delivery, filter policies) and topic policies, EventBridge buses, rules
and targets, S3 buckets (versioning, notifications, encryption, public access block, lifecycle)
and bucket policies, and SSM parameters. Serverless functions are not deployed anywhere: the
result says, for each, its handler, its environment (Globals merged, resolved) and its event
sources (SQS and DynamoDB stream mappings, schedules, API routes), which the local runtime runs
in-process; a serverless API brings its gateway responses and its usage plan, which the local API
serves.
Other types (IAM roles, log groups ...) are listed as skipped.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bulk_restore_cli.local.lambda_runtime import DynamoDBStreamEventSource, Handler, ScheduleSource, SqsEventSource, load_handler
from bulk_restore_cli.local.template import (
    NO_VALUE,
    Resolver,
    TemplateError,
    Unresolvable,
    dependency_order,
    load_template,
    parse_parameters,
)

log = logging.getLogger(__name__)

DEFAULT_ACCOUNT = "123456789012"
_RATE = re.compile(r"^rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)$", re.IGNORECASE)
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}


# ---- what the template describes -------------------------------------------------------------


@dataclass
class SqsEventSpec:
    """An SQS event source mapping of a function."""

    name: str
    queue_arn: str
    queue_url: str
    batch_size: int = 10
    window_seconds: float = 0.0
    report_failures: bool = False
    enabled: bool = True
    max_concurrency: int | None = None


@dataclass
class DynamoDBEventSpec:
    """A DynamoDB stream event source mapping of a function (SAM ``Type: DynamoDB``)."""

    name: str
    stream_arn: str
    starting_position: str = "TRIM_HORIZON"
    batch_size: int = 100
    window_seconds: float = 0.0
    bisect_on_error: bool = False
    max_retry_attempts: int = -1
    max_record_age_seconds: int = -1
    report_failures: bool = False
    on_failure: str | None = None
    filter_patterns: list[Any] = field(default_factory=list)
    tumbling_window_seconds: int = 0
    parallelization_factor: int = 1
    enabled: bool = True

    def source(self, function: FunctionSpec, handler: Any, region: str, retry_delay: float = 0.0) -> DynamoDBStreamEventSource:
        return DynamoDBStreamEventSource(
            function_name=function.name,
            handler=handler,
            stream_arn=self.stream_arn,
            starting_position=self.starting_position,
            batch_size=self.batch_size,
            window_seconds=self.window_seconds,
            bisect_on_error=self.bisect_on_error,
            max_retry_attempts=self.max_retry_attempts,
            max_record_age_seconds=self.max_record_age_seconds,
            report_failures=self.report_failures,
            on_failure=self.on_failure,
            filter_patterns=list(self.filter_patterns),
            tumbling_window_seconds=self.tumbling_window_seconds,
            parallelization_factor=self.parallelization_factor,
            timeout_s=function.timeout,
            retry_delay=retry_delay,
            region=region,
        )


@dataclass
class ScheduleSpec:
    """A Schedule (or ScheduleV2) event of a function."""

    name: str
    expression: str
    every_seconds: float | None  # None for cron(...) expressions, which run nowhere locally
    input: Any = None
    enabled: bool = True


@dataclass
class RouteSpec:
    """An Api event: one method on one path of a REST API."""

    function: str
    name: str
    api: str
    method: str
    path: str
    stage: str
    api_key_required: bool


@dataclass
class FunctionSpec:
    logical_id: str
    name: str
    arn: str
    handler: str
    timeout: int
    memory: int
    environment: dict[str, str]
    code_uri: str | None = None
    sqs: list[SqsEventSpec] = field(default_factory=list)
    streams: list[DynamoDBEventSpec] = field(default_factory=list)
    schedules: list[ScheduleSpec] = field(default_factory=list)
    routes: list[RouteSpec] = field(default_factory=list)


@dataclass
class ApiSpec:
    logical_id: str
    api_id: str
    stage: str
    api_key_required: bool
    gateway_responses: dict[str, Any] = field(default_factory=dict)  # GatewayResponses, resolved
    usage_plan: dict[str, Any] = field(default_factory=dict)  # Auth.UsagePlan, resolved


@dataclass
class MadeResource:
    logical_id: str
    type: str
    physical_id: str
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass
class Skipped:
    logical_id: str
    type: str
    reason: str


@dataclass
class ProvisionedStack:
    stack_name: str
    region: str
    account_id: str
    template_dir: Path | None
    parameters: dict[str, Any]
    resources: dict[str, MadeResource] = field(default_factory=dict)
    functions: dict[str, FunctionSpec] = field(default_factory=dict)
    apis: dict[str, ApiSpec] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    skipped: list[Skipped] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def ref(self, logical_id: str) -> str:
        return self.resources[logical_id].physical_id

    def attribute(self, logical_id: str, name: str) -> Any:
        return self.resources[logical_id].attributes[name]

    def output(self, name: str, default: Any = None) -> Any:
        return self.outputs.get(name, default)

    def function_environment(self) -> dict[str, str]:
        """All functions' variables in one mapping: locally they share one process.

        A variable two functions set differently keeps the first function's value (noted).
        """
        merged: dict[str, str] = {}
        for spec in self.functions.values():
            for name, value in spec.environment.items():
                if name in merged and merged[name] != value:
                    self.notes.append(f"{name} differs between functions; {merged[name]!r} is used for all")
                    continue
                merged.setdefault(name, value)
        return merged

    def routes(self) -> list[RouteSpec]:
        return [route for spec in self.functions.values() for route in spec.routes]

    def sqs_event_sources(self, load: Callable[[str], Handler] = load_handler, retry_delay: int = 1) -> list[SqsEventSource]:
        sources = []
        for spec in self.functions.values():
            for event in spec.sqs:
                if not event.enabled:
                    continue
                sources.append(
                    SqsEventSource(
                        function_name=spec.name,
                        handler=load(spec.handler),
                        queue_url=event.queue_url,
                        queue_arn=event.queue_arn,
                        batch_size=event.batch_size,
                        window_seconds=event.window_seconds,
                        report_failures=event.report_failures,
                        timeout_s=spec.timeout,
                        retry_delay=retry_delay,
                        region=self.region,
                        max_concurrency=event.max_concurrency,
                    )
                )
        return sources

    def stream_event_sources(
        self, load: Callable[[str], Handler] = load_handler, retry_delay: float = 0.0
    ) -> list[DynamoDBStreamEventSource]:
        """The functions' DynamoDB stream event sources (``retry_delay``: seconds before a failed batch is retried)."""
        return [
            event.source(spec, load(spec.handler), self.region, retry_delay)
            for spec in self.functions.values()
            for event in spec.streams
            if event.enabled
        ]

    def schedule_sources(
        self, load: Callable[[str], Handler] = load_handler, scale: float = 1.0, minimum_seconds: float = 1.0
    ) -> list[ScheduleSource]:
        """Schedules at ``scale`` times their rate (never more often than ``minimum_seconds``)."""
        sources = []
        for spec in self.functions.values():
            for schedule in spec.schedules:
                if not schedule.enabled or schedule.every_seconds is None:
                    continue
                sources.append(
                    ScheduleSource(
                        function_name=spec.name,
                        handler=load(spec.handler),
                        every_seconds=max(minimum_seconds, schedule.every_seconds * scale),
                        timeout_s=spec.timeout,
                        region=self.region,
                        input=schedule.input,
                    )
                )
        return sources


def rate_seconds(expression: str) -> float | None:
    """Seconds between runs of a ``rate(N unit)`` expression; None for anything else (cron)."""
    match = _RATE.match(expression.strip())
    if not match:
        return None
    unit = match.group(2).lower().rstrip("s")
    return int(match.group(1)) * _UNIT_SECONDS[unit]


def merge_globals(globals_section: dict[str, Any], properties: dict[str, Any]) -> dict[str, Any]:
    """SAM's rule: maps merge (the resource wins), lists concatenate (Globals first), scalars: the resource."""
    merged = copy.deepcopy(globals_section)
    for key, value in properties.items():
        if key in merged and isinstance(merged[key], dict) and isinstance(value, dict) and not _is_intrinsic(value):
            merged[key] = merge_globals(merged[key], value)
        elif key in merged and isinstance(merged[key], list) and isinstance(value, list):
            merged[key] = merged[key] + value
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _is_intrinsic(value: dict[str, Any]) -> bool:
    return len(value) == 1 and next(iter(value)).startswith(("Fn::", "Ref", "Condition"))


def _flag(value: Any, default: bool = False) -> bool:
    if value is None or value is NO_VALUE:
        return default
    if isinstance(value, bool):
        return value
    return str(value).lower() == "true"


def _attribute_value(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


# ---- the provisioner -----------------------------------------------------------------------


class _Provisioner:
    def __init__(
        self,
        template: dict[str, Any],
        clients: Callable[[str], Any],
        stack_name: str,
        region: str,
        account_id: str,
        parameters: dict[str, Any],
        template_dir: Path | None,
    ):
        self.template = template
        self.client = _ClientCache(clients)
        self.stack = ProvisionedStack(stack_name, region, account_id, template_dir, parameters)
        partition = "aws-cn" if region.startswith("cn-") else "aws-us-gov" if region.startswith("us-gov-") else "aws"
        self.partition = partition
        pseudo = {
            "AWS::StackName": stack_name,
            "AWS::StackId": f"arn:{partition}:cloudformation:{region}:{account_id}:stack/{stack_name}/{_digest(stack_name, 36)}",
            "AWS::Region": region,
            "AWS::AccountId": account_id,
            "AWS::Partition": partition,
            "AWS::URLSuffix": "amazonaws.com.cn" if partition == "aws-cn" else "amazonaws.com",
            "AWS::NotificationARNs": [],
        }
        self.refs: dict[str, Any] = {**pseudo, **parameters}
        self.attributes: dict[str, dict[str, Any]] = {}
        self.resolver = Resolver(self.refs, self.attributes, template.get("Conditions"), template.get("Mappings"), region)
        self.globals = template.get("Globals") or {}
        self.queue_urls: dict[str, str] = {}  # arn -> url
        self.handlers: dict[str, Callable[[str, dict[str, Any], dict[str, Any]], MadeResource]] = {
            "AWS::DynamoDB::Table": self._table,
            "AWS::SQS::Queue": self._queue,
            "AWS::SQS::QueuePolicy": self._queue_policy,
            "AWS::SNS::Topic": self._topic,
            "AWS::SNS::Subscription": self._subscription,
            "AWS::SNS::TopicPolicy": self._topic_policy,
            "AWS::Events::EventBus": self._event_bus,
            "AWS::Events::Rule": self._rule,
            "AWS::S3::Bucket": self._bucket,
            "AWS::S3::BucketPolicy": self._bucket_policy,
            "AWS::SSM::Parameter": self._ssm_parameter,
            "AWS::IAM::Role": self._role,
            "AWS::Serverless::Function": self._function,
            "AWS::Serverless::Api": self._api,
        }

    # ---- walk ------------------------------------------------------------------------------

    def run(self) -> ProvisionedStack:
        resources = self._effective_resources()
        for logical_id in dependency_order(resources, known_names=self.refs):
            resource = resources[logical_id]
            kind = str(resource.get("Type", ""))
            condition = resource.get("Condition")
            if condition and not self.resolver.condition(str(condition)):
                self._skip(logical_id, kind, f"condition {condition} is false")
                continue
            handler = self.handlers.get(kind)
            if handler is None:
                self._skip(logical_id, kind, "not emulated locally")
                continue
            try:
                properties = self.resolver.resolve(resource.get("Properties") or {}) if kind != "AWS::Serverless::Function" else {}
                made = handler(logical_id, properties, resource)
            except Unresolvable as exc:
                self._skip(logical_id, kind, f"refers to something not made locally ({exc})")
                continue
            self.stack.resources[logical_id] = made
            self.refs[logical_id] = made.physical_id
            self.attributes[logical_id] = made.attributes
            log.debug("made %s %s: %s", kind, logical_id, made.physical_id)
        for name, output in (self.template.get("Outputs") or {}).items():
            condition = output.get("Condition")
            if condition and not self.resolver.condition(str(condition)):
                continue
            try:
                self.stack.outputs[name] = self.resolver.resolve(output.get("Value"))
            except Unresolvable as exc:
                self.stack.notes.append(f"output {name} not available locally ({exc})")
        return self.stack

    def _effective_resources(self) -> dict[str, Any]:
        """Resources with SAM Globals merged into the serverless ones (so their references order them)."""
        resources = {}
        for logical_id, resource in (self.template.get("Resources") or {}).items():
            kind = resource.get("Type")
            section = {"AWS::Serverless::Function": "Function", "AWS::Serverless::Api": "Api"}.get(str(kind))
            if section and isinstance(self.globals.get(section), dict):
                resource = {**resource, "Properties": merge_globals(self.globals[section], resource.get("Properties") or {})}
            resources[logical_id] = resource
        return resources

    def _skip(self, logical_id: str, kind: str, reason: str) -> None:
        self.stack.skipped.append(Skipped(logical_id, kind, reason))
        # Something may still Ref it (a log group's name, say): give it a placeholder id.
        self.refs[logical_id] = f"{self.stack.stack_name}-{logical_id}"
        self.attributes.setdefault(logical_id, {})

    def _name(self, logical_id: str, limit: int, suffix: str = "", lower: bool = False) -> str:
        """A generated physical name, as CloudFormation makes them: stack-LogicalId-RANDOM."""
        tail = _digest(f"{self.stack.stack_name}/{logical_id}", 12)
        base = f"{self.stack.stack_name}-{logical_id}"[: limit - len(suffix) - 13]
        name = f"{base}-{tail}{suffix}"
        return name.lower() if lower else name

    def _arn(self, service: str, resource: str, region: bool = True, account: bool = True) -> str:
        return f"arn:{self.partition}:{service}:{self.stack.region if region else ''}:{self.stack.account_id if account else ''}:{resource}"

    # ---- resource types --------------------------------------------------------------------

    def _table(self, logical_id: str, p: dict[str, Any], _: dict[str, Any]) -> MadeResource:
        ddb = self.client("dynamodb")
        name = p.get("TableName") or self._name(logical_id, 255)
        billing = p.get("BillingMode", "PROVISIONED")
        request: dict[str, Any] = {
            "TableName": name,
            "AttributeDefinitions": p["AttributeDefinitions"],
            "KeySchema": p["KeySchema"],
            "BillingMode": billing,
        }
        if billing == "PROVISIONED":
            request["ProvisionedThroughput"] = _throughput(p.get("ProvisionedThroughput"))
        for index_kind in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
            indexes = []
            for index in p.get(index_kind) or []:
                index = {k: v for k, v in index.items() if k not in ("ContributorInsightsSpecification",)}
                if index_kind == "GlobalSecondaryIndexes":
                    if billing == "PROVISIONED":
                        index["ProvisionedThroughput"] = _throughput(index.get("ProvisionedThroughput"))
                    else:
                        index.pop("ProvisionedThroughput", None)
                indexes.append(index)
            if indexes:
                request[index_kind] = indexes
        if p.get("StreamSpecification"):
            request["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": p["StreamSpecification"]["StreamViewType"]}
        if p.get("SSESpecification"):
            sse = p["SSESpecification"]
            request["SSESpecification"] = {
                k: v
                for k, v in {
                    "Enabled": _flag(sse.get("SSEEnabled")),
                    "SSEType": sse.get("SSEType"),
                    "KMSMasterKeyId": sse.get("KMSMasterKeyId"),
                }.items()
                if v is not None
            }
        if p.get("TableClass"):
            request["TableClass"] = p["TableClass"]
        if "DeletionProtectionEnabled" in p:
            request["DeletionProtectionEnabled"] = _flag(p["DeletionProtectionEnabled"])
        if p.get("Tags"):
            request["Tags"] = p["Tags"]
        description = ddb.create_table(**request)["TableDescription"]
        ttl = p.get("TimeToLiveSpecification")
        if ttl and _flag(ttl.get("Enabled")):
            ddb.update_time_to_live(TableName=name, TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True})
        pitr = p.get("PointInTimeRecoverySpecification")
        if pitr and _flag(pitr.get("PointInTimeRecoveryEnabled")):
            try:
                ddb.update_continuous_backups(TableName=name, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True})
            except Exception as exc:
                self.stack.notes.append(f"{logical_id}: point-in-time recovery not set locally ({exc})")
        attributes = {"Arn": description["TableArn"]}
        if description.get("LatestStreamArn"):
            attributes["StreamArn"] = description["LatestStreamArn"]
        return MadeResource(logical_id, "AWS::DynamoDB::Table", name, attributes)

    _QUEUE_ATTRIBUTES = (
        "ContentBasedDeduplication",
        "DeduplicationScope",
        "DelaySeconds",
        "FifoQueue",
        "FifoThroughputLimit",
        "KmsDataKeyReusePeriodSeconds",
        "KmsMasterKeyId",
        "MaximumMessageSize",
        "MessageRetentionPeriod",
        "ReceiveMessageWaitTimeSeconds",
        "RedriveAllowPolicy",
        "RedrivePolicy",
        "SqsManagedSseEnabled",
        "VisibilityTimeout",
    )

    def _queue(self, logical_id: str, p: dict[str, Any], _: dict[str, Any]) -> MadeResource:
        sqs = self.client("sqs")
        fifo = _flag(p.get("FifoQueue"))
        name = p.get("QueueName") or self._name(logical_id, 80, ".fifo" if fifo else "")
        attributes = {k: _attribute_value(p[k]) for k in self._QUEUE_ATTRIBUTES if k in p}
        if not fifo:
            attributes.pop("FifoQueue", None)
        request: dict[str, Any] = {"QueueName": name, "Attributes": attributes}
        if p.get("Tags"):
            request["tags"] = {t["Key"]: t["Value"] for t in p["Tags"]}
        url = sqs.create_queue(**request)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self.queue_urls[arn] = url
        return MadeResource(logical_id, "AWS::SQS::Queue", url, {"Arn": arn, "QueueName": name, "QueueUrl": url})

    def _queue_policy(self, logical_id: str, p: dict[str, Any], _: dict[str, Any]) -> MadeResource:
        sqs = self.client("sqs")
        for url in p.get("Queues") or []:
            sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(p["PolicyDocument"])})
        return MadeResource(logical_id, "AWS::SQS::QueuePolicy", f"{self.stack.stack_name}-{logical_id}")

    def _topic(self, logical_id: str, p: dict[str, Any], _: dict[str, Any]) -> MadeResource:
        sns = self.client("sns")
        fifo = _flag(p.get("FifoTopic"))
        name = p.get("TopicName") or self._name(logical_id, 256, ".fifo" if fifo else "")
        attributes = {
            k: _attribute_value(p[k])
            for k in ("DisplayName", "KmsMasterKeyId", "FifoTopic", "ContentBasedDeduplication", "SignatureVersion", "TracingConfig")
            if k in p
        }
        if "DeliveryStatusLogging" in p:
            self.stack.notes.append(f"{logical_id}: DeliveryStatusLogging is not emulated")
        request: dict[str, Any] = {"Name": name, "Attributes": attributes}
        if p.get("Tags"):
            request["Tags"] = p["Tags"]
        arn = sns.create_topic(**request)["TopicArn"]
        for inline in p.get("Subscription") or []:
            sns.subscribe(TopicArn=arn, Protocol=inline["Protocol"], Endpoint=inline["Endpoint"])
        return MadeResource(logical_id, "AWS::SNS::Topic", arn, {"TopicArn": arn, "TopicName": name})

    def _subscription(self, logical_id: str, p: dict[str, Any], _: dict[str, Any]) -> MadeResource:
        sns = self.client("sns")
        attributes = {
            k: _attribute_value(p[k])
            for k in ("RawMessageDelivery", "FilterPolicy", "FilterPolicyScope", "RedrivePolicy", "DeliveryPolicy", "SubscriptionRoleArn")
            if k in p
        }
        arn = sns.subscribe(
            TopicArn=p["TopicArn"], Protocol=p["Protocol"], Endpoint=p["Endpoint"], Attributes=attributes, ReturnSubscriptionArn=True
        )["SubscriptionArn"]
        return MadeResource(logical_id, "AWS::SNS::Subscription", arn, {"Arn": arn})

    def _topic_policy(self, logical_id: str, p: dict[str, Any], _: dict[str, Any]) -> MadeResource:
        sns = self.client("sns")
        for arn in p.get("Topics") or []:
            sns.set_topic_attributes(TopicArn=arn, AttributeName="Policy", AttributeValue=json.dumps(p["PolicyDocument"]))
        return MadeResource(logical_id, "AWS::SNS::TopicPolicy", f"{self.stack.stack_name}-{logical_id}")

    def _role(self, logical_id: str, p: dict[str, Any], _: dict[str, Any]) -> MadeResource:
        """An IAM role with its inline policies (S3 Batch Operations runs the batch engine's jobs with one)."""
        iam = self.client("iam")
        name = p.get("RoleName") or self._name(logical_id, 64)
        document = p.get("AssumeRolePolicyDocument") or {}
        role = iam.create_role(
            RoleName=name, Path=p.get("Path", "/"), AssumeRolePolicyDocument=document if isinstance(document, str) else json.dumps(document)
        )["Role"]
        for policy in p.get("Policies") or []:
            body = policy["PolicyDocument"]
            iam.put_role_policy(
                RoleName=name, PolicyName=policy["PolicyName"], PolicyDocument=body if isinstance(body, str) else json.dumps(body)
            )
        return MadeResource(logical_id, "AWS::IAM::Role", name, {"Arn": role["Arn"], "RoleId": role["RoleId"]})

    def _event_bus(self, logical_id: str, p: dict[str, Any], _: dict[str, Any]) -> MadeResource:
        arn = self.client("events").create_event_bus(Name=p["Name"])["EventBusArn"]
        return MadeResource(logical_id, "AWS::Events::EventBus", p["Name"], {"Arn": arn, "Name": p["Name"]})

    def _rule(self, logical_id: str, p: dict[str, Any], _: dict[str, Any]) -> MadeResource:
        events = self.client("events")
        name = p.get("Name") or self._name(logical_id, 64)
        bus = p.get("EventBusName")
        request: dict[str, Any] = {"Name": name, "State": p.get("State", "ENABLED")}
        if p.get("EventPattern") is not None:
            pattern = p["EventPattern"]
            request["EventPattern"] = pattern if isinstance(pattern, str) else json.dumps(pattern)
        for key in ("ScheduleExpression", "Description", "RoleArn"):
            if p.get(key):
                request[key] = p[key]
        if bus:
            request["EventBusName"] = bus
        arn = events.put_rule(**request)["RuleArn"]
        targets = []
        for target in p.get("Targets") or []:
            entry = {
                k: v
                for k, v in target.items()
                if k
                in ("Id", "Arn", "Input", "InputPath", "InputTransformer", "SqsParameters", "RoleArn", "RetryPolicy", "DeadLetterConfig")
            }
            if isinstance(entry.get("Input"), (dict, list)):
                entry["Input"] = json.dumps(entry["Input"])
            targets.append(entry)
        if targets:
            kwargs: dict[str, Any] = {"Rule": name, "Targets": targets}
            if bus:
                kwargs["EventBusName"] = bus
            events.put_targets(**kwargs)
        schedule = p.get("ScheduleExpression")
        if schedule:
            self._schedule_rule_targets(logical_id, str(schedule), targets, p.get("State", "ENABLED") == "ENABLED")
        ref = name if not bus or bus == "default" else f"{bus}|{name}"
        return MadeResource(logical_id, "AWS::Events::Rule", ref, {"Arn": arn})

    def _schedule_rule_targets(self, logical_id: str, expression: str, targets: list[dict[str, Any]], enabled: bool) -> None:
        """A scheduled rule that targets one of the template's functions runs it on the local scheduler."""
        for target in targets:
            for spec in self.stack.functions.values():
                if target.get("Arn") == spec.arn:
                    payload = json.loads(target["Input"]) if target.get("Input") else None
                    spec.schedules.append(
                        ScheduleSpec(f"{logical_id}/{target.get('Id')}", expression, rate_seconds(expression), payload, enabled)
                    )

    def _bucket(self, logical_id: str, p: dict[str, Any], _: dict[str, Any]) -> MadeResource:
        s3 = self.client("s3")
        name = p.get("BucketName") or self._name(logical_id, 63, lower=True)
        request: dict[str, Any] = {"Bucket": name}
        if self.stack.region != "us-east-1":
            request["CreateBucketConfiguration"] = {"LocationConstraint": self.stack.region}
        s3.create_bucket(**request)
        if (p.get("VersioningConfiguration") or {}).get("Status"):
            s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": p["VersioningConfiguration"]["Status"]})
        notification = p.get("NotificationConfiguration") or {}
        config: dict[str, Any] = {}
        for cfn_key, api_key, target_key in (
            ("QueueConfigurations", "QueueConfigurations", "Queue"),
            ("TopicConfigurations", "TopicConfigurations", "Topic"),
            ("LambdaConfigurations", "LambdaFunctionConfigurations", "Function"),
        ):
            entries = []
            for entry in notification.get(cfn_key) or []:
                item: dict[str, Any] = {
                    f"{target_key}Arn" if target_key != "Function" else "LambdaFunctionArn": entry[target_key],
                    "Events": [entry["Event"]],
                }
                rules = ((entry.get("Filter") or {}).get("S3Key") or {}).get("Rules")
                if rules:
                    item["Filter"] = {"Key": {"FilterRules": rules}}
                entries.append(item)
            if entries:
                config[api_key] = entries
        if _flag((notification.get("EventBridgeConfiguration") or {}).get("EventBridgeEnabled")):
            config["EventBridgeConfiguration"] = {}
        if config:
            s3.put_bucket_notification_configuration(Bucket=name, NotificationConfiguration=config, SkipDestinationValidation=True)
        encryption = [
            {
                "ApplyServerSideEncryptionByDefault": rule["ServerSideEncryptionByDefault"],
                **({"BucketKeyEnabled": _flag(rule["BucketKeyEnabled"])} if "BucketKeyEnabled" in rule else {}),
            }
            for rule in (p.get("BucketEncryption") or {}).get("ServerSideEncryptionConfiguration") or []
        ]
        if encryption:
            s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={"Rules": encryption})
        if p.get("PublicAccessBlockConfiguration"):
            block = {k: _flag(v) for k, v in p["PublicAccessBlockConfiguration"].items()}
            s3.put_public_access_block(Bucket=name, PublicAccessBlockConfiguration=block)
        rules = [_lifecycle_rule(rule) for rule in (p.get("LifecycleConfiguration") or {}).get("Rules") or []]
        if rules:
            s3.put_bucket_lifecycle_configuration(Bucket=name, LifecycleConfiguration={"Rules": rules})
        arn = f"arn:{self.partition}:s3:::{name}"
        return MadeResource(
            logical_id,
            "AWS::S3::Bucket",
            name,
            {
                "Arn": arn,
                "DomainName": f"{name}.s3.amazonaws.com",
                "RegionalDomainName": f"{name}.s3.{self.stack.region}.amazonaws.com",
            },
        )

    def _bucket_policy(self, logical_id: str, p: dict[str, Any], _: dict[str, Any]) -> MadeResource:
        # The local endpoint is plain HTTP on loopback: a statement denying requests without TLS
        # would deny them all here. It is left out (and said so); the rest of the policy applies.
        document = dict(p["PolicyDocument"])
        kept = [s for s in document.get("Statement", []) if not _denies_plain_http(s)]
        if len(kept) < len(document.get("Statement", [])):
            self.stack.notes.append(f"{logical_id}: the statement denying requests without TLS is not applied (the local endpoint is HTTP)")
        if kept:
            self.client("s3").put_bucket_policy(Bucket=p["Bucket"], Policy=json.dumps({**document, "Statement": kept}))
        return MadeResource(logical_id, "AWS::S3::BucketPolicy", f"{self.stack.stack_name}-{logical_id}")

    def _ssm_parameter(self, logical_id: str, p: dict[str, Any], _: dict[str, Any]) -> MadeResource:
        name = p.get("Name") or f"CFN-{logical_id}-{_digest(logical_id, 12)}"
        self.client("ssm").put_parameter(Name=name, Value=str(p["Value"]), Type=p.get("Type", "String"), Overwrite=True)
        return MadeResource(logical_id, "AWS::SSM::Parameter", name, {"Type": p.get("Type", "String"), "Value": p["Value"]})

    def _api(self, logical_id: str, p: dict[str, Any], _: dict[str, Any]) -> MadeResource:
        api_id = _digest(f"{self.stack.stack_name}/{logical_id}", 10).lower()
        stage = str(p.get("StageName", "Prod"))
        required = _flag((p.get("Auth") or {}).get("ApiKeyRequired"))
        if p.get("DefinitionBody") or p.get("DefinitionUri"):
            self.stack.notes.append(f"{logical_id}: an OpenAPI definition is not emulated; routes come from the functions' Api events")
        self.stack.apis[logical_id] = ApiSpec(
            logical_id, api_id, stage, required, dict(p.get("GatewayResponses") or {}), dict((p.get("Auth") or {}).get("UsagePlan") or {})
        )
        return MadeResource(logical_id, "AWS::Serverless::Api", api_id, {"RootResourceId": _digest(api_id, 10).lower()})

    def _function(self, logical_id: str, _: dict[str, Any], resource: dict[str, Any]) -> MadeResource:
        raw = resource.get("Properties") or {}
        resolve = self.resolver.resolve
        name = str(resolve(raw["FunctionName"])) if raw.get("FunctionName") else self._name(logical_id, 64)
        arn = self._arn("lambda", f"function:{name}")
        variables = resolve(((raw.get("Environment") or {}).get("Variables")) or {})
        spec = FunctionSpec(
            logical_id=logical_id,
            name=name,
            arn=arn,
            handler=str(resolve(raw.get("Handler", ""))),
            timeout=int(resolve(raw.get("Timeout", 3))),
            memory=int(resolve(raw.get("MemorySize", 128))),
            environment={k: _attribute_value(v) for k, v in variables.items()},
            code_uri=str(resolve(raw["CodeUri"])) if isinstance(raw.get("CodeUri"), (str, dict)) else None,
        )
        for event_name, event in (raw.get("Events") or {}).items():
            kind = event.get("Type")
            try:
                self._function_event(spec, event_name, str(kind), event.get("Properties") or {})
            except Unresolvable as exc:
                self.stack.notes.append(f"{logical_id}.{event_name}: not wired locally ({exc})")
        self.stack.functions[logical_id] = spec
        return MadeResource(logical_id, "AWS::Serverless::Function", name, {"Arn": arn})

    def _function_event(self, spec: FunctionSpec, event_name: str, kind: str, raw: dict[str, Any]) -> None:
        resolve = self.resolver.resolve
        if kind == "SQS":
            p = resolve(raw)
            arn = str(p["Queue"])
            if p.get("FilterCriteria"):
                self.stack.notes.append(f"{spec.logical_id}.{event_name}: FilterCriteria is not applied locally")
            spec.sqs.append(
                SqsEventSpec(
                    name=event_name,
                    queue_arn=arn,
                    queue_url=self.queue_urls.get(arn) or self.client("sqs").get_queue_url(QueueName=arn.split(":")[-1])["QueueUrl"],
                    batch_size=int(p.get("BatchSize", 10)),
                    window_seconds=float(p.get("MaximumBatchingWindowInSeconds", 0)),
                    report_failures="ReportBatchItemFailures" in (p.get("FunctionResponseTypes") or []),
                    enabled=_flag(p.get("Enabled"), True),
                    max_concurrency=int(p["ScalingConfig"]["MaximumConcurrency"])
                    if (p.get("ScalingConfig") or {}).get("MaximumConcurrency")
                    else None,
                )
            )
        elif kind == "DynamoDB":
            p = resolve(raw)
            destination = ((p.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination")
            event = DynamoDBEventSpec(
                name=event_name,
                stream_arn=str(p["Stream"]),
                starting_position=str(p.get("StartingPosition", "TRIM_HORIZON")),
                batch_size=int(p.get("BatchSize", 100)),
                window_seconds=float(p.get("MaximumBatchingWindowInSeconds", 0)),
                bisect_on_error=_flag(p.get("BisectBatchOnFunctionError")),
                max_retry_attempts=int(p.get("MaximumRetryAttempts", -1)),
                max_record_age_seconds=int(p.get("MaximumRecordAgeInSeconds", -1)),
                report_failures="ReportBatchItemFailures" in (p.get("FunctionResponseTypes") or []),
                on_failure=str(destination) if destination else None,
                filter_patterns=[f["Pattern"] for f in (p.get("FilterCriteria") or {}).get("Filters") or [] if "Pattern" in f],
                tumbling_window_seconds=int(p.get("TumblingWindowInSeconds", 0)),
                parallelization_factor=int(p.get("ParallelizationFactor", 1)),
                enabled=_flag(p.get("Enabled"), True),
            )
            try:
                event.source(spec, print, self.stack.region)  # refuses what the local runtime cannot run, now
            except ValueError as exc:
                raise TemplateError(f"{spec.logical_id}.{event_name}: {exc}") from exc
            spec.streams.append(event)
        elif kind in ("Schedule", "ScheduleV2"):
            p = resolve(raw)
            expression = str(p.get("Schedule") or p.get("ScheduleExpression") or "")
            every = rate_seconds(expression)
            if every is None:
                self.stack.notes.append(f"{spec.logical_id}.{event_name}: {expression!r} runs only with rate(...) locally")
            enabled = _flag(p.get("Enabled"), True) and str(p.get("State", "ENABLED")).upper() == "ENABLED"
            payload = p.get("Input")
            spec.schedules.append(
                ScheduleSpec(event_name, expression, every, json.loads(payload) if isinstance(payload, str) else payload, enabled)
            )
        elif kind == "Api":
            api_ref = raw.get("RestApiId")
            api_logical = api_ref["Ref"] if isinstance(api_ref, dict) and "Ref" in api_ref else None
            if api_ref is not None and api_logical is None:
                api_logical = next((k for k, a in self.stack.apis.items() if a.api_id == resolve(api_ref)), None)
            if api_logical is None:
                api_logical = "ServerlessRestApi"  # SAM's implicit API
                if api_logical not in self.stack.apis:
                    implicit = self.globals.get("Api") or {}
                    self.stack.apis[api_logical] = ApiSpec(
                        api_logical,
                        _digest(f"{self.stack.stack_name}/{api_logical}", 10).lower(),
                        "Prod",
                        _flag((resolve(implicit.get("Auth") or {})).get("ApiKeyRequired")),
                    )
            api = self.stack.apis.get(api_logical)
            if api is None:
                raise Unresolvable(f"REST API {api_logical} was not made")
            p = resolve(raw)
            auth = p.get("Auth") or {}
            required = _flag(auth["ApiKeyRequired"]) if "ApiKeyRequired" in auth else api.api_key_required
            spec.routes.append(
                RouteSpec(spec.logical_id, event_name, api_logical, str(p["Method"]).upper(), str(p["Path"]), api.stage, required)
            )
        else:
            self.stack.notes.append(f"{spec.logical_id}.{event_name}: event type {kind} is not emulated")


class _ClientCache:
    def __init__(self, factory: Callable[[str], Any]):
        self.factory = factory
        self.clients: dict[str, Any] = {}

    def __call__(self, service: str) -> Any:
        if service not in self.clients:
            self.clients[service] = self.factory(service)
        return self.clients[service]


def _lifecycle_rule(rule: dict[str, Any]) -> dict[str, Any]:
    """A CloudFormation lifecycle rule as S3's API takes it (the ones the template uses)."""
    made: dict[str, Any] = {
        "ID": str(rule.get("Id", "rule")),
        "Status": str(rule.get("Status", "Enabled")),
        "Filter": {"Prefix": str(rule.get("Prefix", ""))},
    }
    if rule.get("ExpirationInDays") is not None:
        made["Expiration"] = {"Days": int(rule["ExpirationInDays"])}
    if (rule.get("AbortIncompleteMultipartUpload") or {}).get("DaysAfterInitiation") is not None:
        made["AbortIncompleteMultipartUpload"] = {"DaysAfterInitiation": int(rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"])}
    return made


def _throughput(value: dict[str, Any] | None) -> dict[str, int]:
    value = value or {}
    return {"ReadCapacityUnits": int(value.get("ReadCapacityUnits", 5)), "WriteCapacityUnits": int(value.get("WriteCapacityUnits", 5))}


def _denies_plain_http(statement: dict[str, Any]) -> bool:
    condition = statement.get("Condition") or {}
    return statement.get("Effect") == "Deny" and str((condition.get("Bool") or {}).get("aws:SecureTransport")).lower() == "false"


def _digest(text: str, length: int) -> str:
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest().upper()[:length]


def provision(
    template: dict[str, Any] | str | Path,
    clients: Callable[[str], Any] | None = None,
    stack_name: str = "bulk-restore",
    parameters: dict[str, str] | None = None,
    region: str = "us-east-1",
    endpoint_url: str | None = None,
    account_id: str | None = None,
) -> ProvisionedStack:
    """Create the template's resources and describe its functions.

    ``clients`` makes a boto3 client for a service name; by default one for ``region`` and
    ``endpoint_url`` (None: the environment's endpoint, or moto's in-process mock).
    """
    template_dir: Path | None = None
    if not isinstance(template, dict):
        template_dir = Path(template).resolve().parent
        template = load_template(template)
    if clients is None:
        import boto3

        session = boto3.session.Session(region_name=region)

        def clients(service: str) -> Any:
            return session.client(service, endpoint_url=endpoint_url) if endpoint_url else session.client(service)

    if account_id is None:
        try:
            account_id = str(clients("sts").get_caller_identity()["Account"])
        except Exception:
            account_id = DEFAULT_ACCOUNT
    values = parse_parameters(template, parameters)
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9-]{0,127}", stack_name):
        raise TemplateError(f"stack name {stack_name!r} is not valid: letters, digits and hyphens, starting with a letter")
    return _Provisioner(template, clients, stack_name, region, account_id, values, template_dir).run()
