"""What a create-job call can make the stack touch: manifests only from the stack's manifest
buckets, source objects only in AllowedBuckets, in IAM and in code."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from bulk_restore.adapters.s3 import S3Gateway
from bulk_restore.domain.errors import BucketNotAllowed, ManifestLocationNotAllowed
from bulk_restore.domain.model import ManifestLocation, ObjectId, ObjectState, Tier
from bulk_restore_cli.local.template import load_template
from support import samples
from support.api import call_api
from support.faults import CallTracer
from support.ledger import JobLedger, scan_table
from support.stack import DATA_BUCKET, MANIFEST_BUCKET, Stack
from test_template import TEMPLATE, functions

OTHER = "other-bkt"


# ---- manifests come from the manifest buckets only -------------------------------------------------------


def test_a_file_outside_the_manifest_bucket_is_refused_without_a_single_s3_call(stack: Stack) -> None:
    # Given a private file in a bucket the functions may read, which is no manifest at all
    stack.s3.put_object(Bucket=DATA_BUCKET, Key="hr-private/payroll/salaries.csv", Body=b"alice,120000\nbob,95000\n")
    tracer = CallTracer().install(stack.services())
    # When a client names it as a manifest
    status, answer = call_api("POST", "/create-job", {"bucket": DATA_BUCKET, "key": "hr-private/payroll/salaries.csv"})
    # Then 403 ManifestLocationNotAllowed, saying where manifests go and quoting nothing of the file
    assert (status, answer["error"]["code"]) == (403, "ManifestLocationNotAllowed")
    assert f"upload the manifest to s3://{MANIFEST_BUCKET}/" in answer["error"]["message"]
    assert "alice" not in str(answer) and "120000" not in str(answer)
    # And S3 was not asked anything, and no job exists
    assert [c.operation for c in tracer.calls if c.operation.startswith("s3.")] == []
    assert not [i for i in scan_table(stack) if i["sk"] == "META"]


def test_the_planner_never_reads_a_manifest_outside_the_manifest_buckets(stack: Stack) -> None:
    # Given a job whose stored manifest location points elsewhere (as an older version could store)
    stack.put_archived("x.bin")
    job_id = stack.create_job(*stack.put_manifest([ObjectId(DATA_BUCKET, "x.bin")]))["BulkJobId"]
    stack.s3.put_object(Bucket=DATA_BUCKET, Key="secret.csv", Body=f"{DATA_BUCKET},x.bin\n".encode())
    stack.ddb.update_item(
        TableName=stack.table_name,
        Key={"pk": {"S": f"JOB#{job_id}"}, "sk": {"S": "META"}},
        UpdateExpression="SET manifest.#b = :b, manifest.#k = :k",
        ExpressionAttributeNames={"#b": "bucket", "#k": "key"},
        ExpressionAttributeValues={":b": {"S": DATA_BUCKET}, ":k": {"S": "secret.csv"}},
    )
    tracer = CallTracer().install(stack.services())
    # When it is planned
    stack.settle()
    # Then the planner read nothing and restored nothing; the job failed saying why
    assert [c.operation for c in tracer.calls if c.operation.startswith("s3.")] == []
    ledger = JobLedger.read(stack, job_id)
    assert ledger.status == "Failed" and "manifest bucket" in ledger.meta["failure_reason"]


@pytest.mark.parametrize("stack_settings", [{"MANIFEST_BUCKETS": f"{MANIFEST_BUCKET},team-manifests"}])
def test_the_manifest_buckets_parameter_adds_buckets_manifests_may_come_from(stack: Stack) -> None:
    stack.put_archived("x.bin")
    stack.s3.create_bucket(Bucket="team-manifests")
    stack.s3.put_object(Bucket="team-manifests", Key="m.csv", Body=f"{DATA_BUCKET},x.bin\n".encode())
    job_id = stack.create_job("team-manifests", "m.csv")["BulkJobId"]
    stack.settle()
    assert JobLedger.read(stack, job_id).status == "Complete"


def test_the_gateway_refuses_manifests_elsewhere_before_any_request() -> None:
    client = boto3.client("s3", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    sent: list[str] = []
    client.meta.events.register("before-send.s3.*", lambda request, **_: sent.append(request.url))
    gateway = S3Gateway(client, manifest_buckets=("stack-manifests",))
    with pytest.raises(ManifestLocationNotAllowed, match="s3://stack-manifests/"):
        gateway.inspect_manifest("payroll", "salaries.csv")
    with pytest.raises(ManifestLocationNotAllowed):
        gateway.stream_manifest(ManifestLocation("payroll", "salaries.csv", '"e"', 10), 0)
    assert sent == []


# ---- source objects only in AllowedBuckets -----------------------------------------------------------------


def test_the_gateway_never_sends_a_restore_head_or_notification_change_outside_the_allow_list() -> None:
    client = boto3.client("s3", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    sent: list[str] = []
    client.meta.events.register("before-send.s3.*", lambda request, **_: sent.append(request.url))
    gateway = S3Gateway(client, allowed_buckets=frozenset({"archive"}))
    outcome = gateway.restore(ObjectId(OTHER, "k"), Tier.BULK, 1)
    assert outcome.state is ObjectState.FAILED and outcome.reason.startswith("BucketNotAllowed")
    assert gateway.restore_status(ObjectId(OTHER, "k")) == "unknown"
    with pytest.raises(BucketNotAllowed):
        gateway.ensure_eventbridge(OTHER)
    assert sent == []


@pytest.mark.parametrize("stack_settings", [{"ALLOWED_BUCKETS": DATA_BUCKET, "RESTORE_CONCURRENCY": 1}])
def test_nothing_a_job_does_touches_a_bucket_outside_the_allow_list(stack: Stack) -> None:
    # Given a stack allowed one bucket, and a manifest that names another on its later rows
    stack.put_archived("ok.bin")
    stack.put_archived("no.bin", bucket=OTHER)
    tracer = CallTracer().install(stack.services())
    job_id = stack.create_job(*stack.put_manifest([ObjectId(DATA_BUCKET, "ok.bin"), ObjectId(OTHER, "no.bin")]))["BulkJobId"]
    stack.drain()
    # When completion events name the other bucket's object, and the sweeper runs past the job's window
    for shape in ("s3", "eventbridge"):
        stack.send(stack.completion_queue_url, samples.completion(shape, OTHER, "no.bin"))
    stack.drain()
    stack.ddb.update_item(
        TableName=stack.table_name,
        Key={"pk": {"S": f"JOB#{job_id}"}, "sk": {"S": "META"}},
        UpdateExpression="SET created_at = :old",
        ExpressionAttributeValues={":old": {"S": "2020-01-01T00:00:00.000000Z"}},
    )
    stack.sweep_until_quiet()
    # Then no call of any function ever named the other bucket
    assert [c.operation for c in tracer.calls if c.params.get("Bucket") == OTHER] == []
    assert JobLedger.read(stack, job_id).state_of(ObjectId(OTHER, "no.bin")) == "FAILED"


# ---- the same in IAM ---------------------------------------------------------------------------------------


def statement(template: dict[str, Any], function: str, sid: str) -> dict[str, Any]:
    policies = functions(template)[function]["Properties"]["Policies"]
    found = [s for p in policies for s in p.get("Statement", []) if s.get("Sid") == sid]
    assert len(found) == 1, (function, sid)
    return found[0]


@pytest.mark.template
@pytest.mark.parametrize("function", ["ApiFunction", "PlannerFunction"])
def test_only_the_manifest_buckets_are_readable_by_the_functions_that_read_manifests(function: str) -> None:
    template = load_template(TEMPLATE)
    read = statement(template, function, "ReadManifests")
    assert set(read["Action"]) == {"s3:GetObject", "s3:GetObjectVersion"}
    condition, with_others, only_ours = read["Resource"]["Fn::If"]
    assert condition == "HasManifestBuckets"
    assert only_ours == {"Fn::Sub": "${ManifestBucket.Arn}/*"}
    assert "ManifestBuckets" in str(with_others) and "ManifestBucket" in str(with_others)
    assert "*/*" not in str(read["Resource"])


@pytest.mark.template
def test_no_other_function_reads_objects_outside_the_allow_list_or_the_manifest_buckets() -> None:
    template = load_template(TEMPLATE)
    for name, function in functions(template).items():
        for policy in function["Properties"]["Policies"]:
            for s in policy.get("Statement", []):
                if "s3:GetObject" in s.get("Action", []) and s["Sid"] != "ReadManifests":
                    if s["Sid"] == "BatchWorkFiles":  # the batch engine's own manifests and reports, nothing else
                        assert s["Resource"] == {"Fn::Sub": "${ReportBucket.Arn}/batch/*"}, name
                        continue
                    if s["Sid"] == "VaultNamedLists":  # a vault job's named archive list, nothing else
                        assert s["Resource"] == {"Fn::Sub": "${ReportBucket.Arn}/vault/*"}, name
                        continue
                    assert "AnyBucket" in str(s["Resource"]) and "AllowedBuckets" in str(s["Resource"]), (name, s["Sid"])


@pytest.mark.template
def test_the_manifest_bucket_is_private_encrypted_and_expires_its_objects() -> None:
    template = load_template(TEMPLATE)
    bucket = template["Resources"]["ManifestBucket"]["Properties"]
    assert bucket["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]["SSEAlgorithm"]
    (rule,) = bucket["LifecycleConfiguration"]["Rules"]
    assert rule["Status"] == "Enabled" and rule["ExpirationInDays"] == {"Ref": "ManifestRetentionDays"}
    policy = template["Resources"]["ManifestBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"][0]
    assert policy["Effect"] == "Deny" and policy["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert template["Outputs"]["ManifestBucket"]["Value"] == {"Ref": "ManifestBucket"}
    env = template["Globals"]["Function"]["Environment"]["Variables"]
    assert "ManifestBucket" in str(env["MANIFEST_BUCKETS"])
