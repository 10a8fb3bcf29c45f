"""The local S3 restore emulation answers RestoreObject as AWS documents it."""

from __future__ import annotations

import json
import time
from urllib.parse import unquote_plus

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from bulk_restore.adapters.s3 import S3Gateway
from bulk_restore.domain.events import parse_message
from bulk_restore.domain.model import ObjectId, ObjectState, Tier
from bulk_restore_cli.local.s3_restore import RestoreTimings, S3RestoreEmulator, set_archive_status

BUCKET = "archive-bucket"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def aws(monkeypatch):
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        yield


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def emulator(aws, clock):
    with S3RestoreEmulator(RestoreTimings.scaled(10), clock=clock) as emu:
        yield emu


@pytest.fixture
def s3(aws):
    client = boto3.client("s3", region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    return client


def put(s3, key, storage_class="GLACIER", **kwargs):
    return s3.put_object(Bucket=BUCKET, Key=key, Body=b"data of " + key.encode(), StorageClass=storage_class, **kwargs)


def restore(s3, key, days=1, tier="Standard", **kwargs):
    request = {"GlacierJobParameters": {"Tier": tier}}
    if days is not None:
        request["Days"] = days
    return s3.restore_object(Bucket=BUCKET, Key=key, RestoreRequest=request, **kwargs)["ResponseMetadata"]["HTTPStatusCode"]


def error_of(call):
    with pytest.raises(ClientError) as caught:
        call()
    return (
        caught.value.response["ResponseMetadata"]["HTTPStatusCode"],
        caught.value.response["Error"]["Code"],
        caught.value.response["Error"]["Message"],
    )


def queue_with_arn(name):
    sqs = boto3.client("sqs", region_name="us-east-1")
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return sqs, url, arn


def bodies(sqs, url):
    found = []
    while True:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            return found
        for m in messages:
            found.append(json.loads(m["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])


# ---- answers ------------------------------------------------------------------------------


def test_a_restore_starts_with_202_conflicts_with_409_and_a_restored_copy_answers_200(emulator, s3):
    put(s3, "photo.jpg")

    assert restore(s3, "photo.jpg") == 202
    assert error_of(lambda: restore(s3, "photo.jpg"))[:2] == (409, "RestoreAlreadyInProgress")
    assert s3.head_object(Bucket=BUCKET, Key="photo.jpg")["Restore"] == 'ongoing-request="true"'
    assert error_of(lambda: s3.get_object(Bucket=BUCKET, Key="photo.jpg"))[:2] == (403, "InvalidObjectState")

    assert emulator.complete_all() == 1

    head = s3.head_object(Bucket=BUCKET, Key="photo.jpg")
    assert head["Restore"].startswith('ongoing-request="false", expiry-date="')
    assert s3.get_object(Bucket=BUCKET, Key="photo.jpg")["Body"].read() == b"data of photo.jpg"
    first_expiry = head["Restore"]
    assert restore(s3, "photo.jpg", days=5) == 200
    assert s3.head_object(Bucket=BUCKET, Key="photo.jpg")["Restore"] != first_expiry


def test_the_adapter_sees_the_documented_answers_as_object_states(emulator, s3):
    put(s3, "glacier")
    put(s3, "standard", "STANDARD")
    gateway = S3Gateway(s3)

    assert gateway.restore(ObjectId(BUCKET, "glacier"), Tier.STANDARD, 1).state is ObjectState.RESTORING
    assert gateway.restore(ObjectId(BUCKET, "glacier"), Tier.STANDARD, 1).state is ObjectState.RESTORING  # 409
    assert gateway.restore(ObjectId(BUCKET, "standard"), Tier.STANDARD, 1).state is ObjectState.SKIPPED
    assert gateway.restore(ObjectId(BUCKET, "missing"), Tier.STANDARD, 1).state is ObjectState.FAILED
    emulator.complete_all()
    assert gateway.restore(ObjectId(BUCKET, "glacier"), Tier.STANDARD, 1).state is ObjectState.RESTORED


@pytest.mark.parametrize("storage_class", ["STANDARD", "STANDARD_IA", "ONEZONE_IA", "GLACIER_IR", "INTELLIGENT_TIERING"])
def test_an_object_in_no_archive_is_refused_with_403_invalid_object_state(emulator, s3, storage_class):
    put(s3, "readable", storage_class)

    assert error_of(lambda: restore(s3, "readable"))[:2] == (403, "InvalidObjectState")


def test_a_missing_key_or_version_is_404(emulator, s3):
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    put(s3, "present")

    assert error_of(lambda: restore(s3, "absent"))[:2] == (404, "NoSuchKey")
    assert error_of(lambda: restore(s3, "present", VersionId="no-such-version"))[:2] == (404, "NoSuchVersion")


def test_the_version_named_is_the_one_restored(emulator, s3):
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    old = put(s3, "doc")["VersionId"]
    new = put(s3, "doc")["VersionId"]

    assert restore(s3, "doc", VersionId=old) == 202

    assert s3.head_object(Bucket=BUCKET, Key="doc", VersionId=old)["Restore"] == 'ongoing-request="true"'
    assert "Restore" not in s3.head_object(Bucket=BUCKET, Key="doc", VersionId=new)
    assert restore(s3, "doc") == 202  # the current version is a different object: its own restore
    emulator.complete_all()
    assert s3.get_object(Bucket=BUCKET, Key="doc", VersionId=old)["VersionId"] == old


def test_glacier_needs_days(emulator, s3):
    put(s3, "no-days")

    status, code, _ = error_of(lambda: restore(s3, "no-days", days=None))

    assert status == 400 and code in ("InvalidArgument", "MalformedXML")


def test_deep_archive_offers_no_expedited_tier(emulator, s3):
    put(s3, "deep", "DEEP_ARCHIVE")

    status, code, message = error_of(lambda: restore(s3, "deep", tier="Expedited"))

    assert (status, code) == (400, "InvalidArgument")
    assert "days" not in message.lower()  # the adapter must not mistake it for the Intelligent-Tiering answer
    assert restore(s3, "deep", tier="Bulk") == 202


def test_intelligent_tiering_archive_takes_no_days_and_returns_to_frequent_access(emulator, s3):
    put(s3, "it-meta", "INTELLIGENT_TIERING", Metadata={"archive-status": "DEEP_ARCHIVE_ACCESS"})
    put(s3, "it-helper", "INTELLIGENT_TIERING")
    set_archive_status(BUCKET, "it-helper", "ARCHIVE_ACCESS")

    assert s3.head_object(Bucket=BUCKET, Key="it-meta")["ArchiveStatus"] == "DEEP_ARCHIVE_ACCESS"
    assert error_of(lambda: s3.get_object(Bucket=BUCKET, Key="it-helper"))[:2] == (403, "InvalidObjectState")
    status, code, message = error_of(lambda: restore(s3, "it-meta", days=1))
    assert (status, code) == (400, "InvalidArgument") and "Days" in message
    assert restore(s3, "it-meta", days=None) == 202
    # Our adapter retries without Days on exactly that answer.
    assert S3Gateway(s3).restore(ObjectId(BUCKET, "it-helper"), Tier.STANDARD, 1).state is ObjectState.RESTORING
    assert error_of(lambda: s3.get_object(Bucket=BUCKET, Key="it-helper"))[:2] == (403, "InvalidObjectState")

    emulator.complete_all()

    assert s3.get_object(Bucket=BUCKET, Key="it-helper")["Body"].read() == b"data of it-helper"
    assert "ArchiveStatus" not in s3.head_object(Bucket=BUCKET, Key="it-meta")
    assert error_of(lambda: restore(s3, "it-meta", days=None))[:2] == (403, "InvalidObjectState")


def test_intelligent_tiering_deep_archive_access_offers_no_expedited(emulator, s3):
    put(s3, "it-deep", "INTELLIGENT_TIERING", Metadata={"archive-status": "DEEP_ARCHIVE_ACCESS"})

    assert error_of(lambda: restore(s3, "it-deep", days=None, tier="Expedited"))[:2] == (400, "InvalidArgument")


# ---- the clock ----------------------------------------------------------------------------


def test_each_class_and_tier_completes_after_its_own_time(emulator, s3, clock):
    put(s3, "glacier-expedited")
    put(s3, "glacier-bulk")
    put(s3, "deep-standard", "DEEP_ARCHIVE")
    restore(s3, "glacier-expedited", tier="Expedited")  # 10 / 5 = 2 s
    restore(s3, "glacier-bulk", tier="Bulk")  # 2 x 10 = 20 s
    restore(s3, "deep-standard", tier="Standard")  # 10 x 2 = 20 s

    clock.now += 1.9
    assert emulator.tick() == 0
    clock.now += 0.2
    assert emulator.tick() == 1
    assert "false" in s3.head_object(Bucket=BUCKET, Key="glacier-expedited")["Restore"]
    assert emulator.pending() == 2
    clock.now += 18
    assert emulator.tick() == 2
    assert emulator.pending() == 0


def test_a_faster_tier_over_a_running_restore_brings_it_forward_a_slower_one_conflicts(emulator, s3, clock):
    put(s3, "slow")
    assert restore(s3, "slow", tier="Bulk") == 202

    assert error_of(lambda: restore(s3, "slow", tier="Bulk"))[0] == 409
    assert restore(s3, "slow", tier="Expedited") == 202
    assert error_of(lambda: restore(s3, "slow", tier="Standard"))[0] == 409
    assert emulator.pending() == 1
    assert emulator.due_times() == [clock.now + 2]
    clock.now += 2.1
    assert emulator.tick() == 1
    assert emulator.pending() == 0
    clock.now += 20  # past the Bulk restore's first due time: it completed once, sooner
    assert emulator.tick() == 0
    assert emulator.completed == 1


def test_restores_complete_in_order_of_their_due_time_whatever_the_order_asked(emulator, s3, clock):
    sqs, url, arn = queue_with_arn("restore-order")
    s3.put_bucket_notification_configuration(
        Bucket=BUCKET,
        NotificationConfiguration={"QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectRestore:Completed"]}]},
    )
    for key, tier in (("bulk", "Bulk"), ("standard", "Standard"), ("expedited", "Expedited"), ("deep", "Standard")):
        put(s3, key, "DEEP_ARCHIVE" if key == "deep" else "GLACIER")
        restore(s3, key, tier=tier)
    put(s3, "brought-forward")
    restore(s3, "brought-forward", tier="Bulk")
    restore(s3, "brought-forward", tier="Standard")
    assert emulator.pending() == 5
    assert emulator.due_times() == [clock.now + 2, clock.now + 10, clock.now + 10, clock.now + 20, clock.now + 20]

    clock.now += 1000
    assert emulator.tick() == 5
    keys = [unquote_plus(body["Records"][0]["s3"]["object"]["key"]) for body in bodies(sqs, url) if "Records" in body]
    assert keys[0] == "expedited"
    assert sorted(keys[1:3]) == ["brought-forward", "standard"]
    assert sorted(keys[3:]) == ["bulk", "deep"]
    assert emulator.pending() == 0 and emulator.due_times() == []


def test_the_clock_thread_completes_restores_by_itself(aws, s3):
    with S3RestoreEmulator(RestoreTimings.scaled(0.2)) as emu:
        emu.start_clock(interval=0.02)
        put(s3, "soon")
        restore(s3, "soon")
        deadline = time.monotonic() + 5
        while emu.pending() and time.monotonic() < deadline:
            time.sleep(0.02)

        assert emu.pending() == 0
        assert "false" in s3.head_object(Bucket=BUCKET, Key="soon")["Restore"]


# ---- events -------------------------------------------------------------------------------


def test_s3_notifications_carry_the_form_encoded_key_and_the_restore_data(emulator, s3):
    sqs, url, arn = queue_with_arn("restore-events")
    s3.put_bucket_notification_configuration(
        Bucket=BUCKET, NotificationConfiguration={"QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectRestore:*"]}]}
    )
    key = "red flower+1.jpg"
    put(s3, key)
    bodies(sqs, url)  # the s3:TestEvent

    restore(s3, key, days=2)
    posted = bodies(sqs, url)
    emulator.complete_all()
    completed = bodies(sqs, url)

    assert [r["eventName"] for b in posted for r in b["Records"]] == ["ObjectRestore:Post"]
    assert len(completed) == 1
    record = completed[0]["Records"][0]
    assert record["eventName"] == "ObjectRestore:Completed"
    assert record["s3"]["object"]["key"] == "red+flower%2B1.jpg"
    assert unquote_plus(record["s3"]["object"]["key"]) == key
    assert record["s3"]["bucket"]["name"] == BUCKET
    assert record["glacierEventData"]["restoreEventData"]["lifecycleRestoreStorageClass"] == "GLACIER"
    assert record["glacierEventData"]["restoreEventData"]["lifecycleRestorationExpiryTime"].endswith("T00:00:00.000Z")
    assert [(c.bucket, c.keys) for c in parse_message(json.dumps(completed[0]))] == [(BUCKET, (key,))]


def test_a_notification_for_completed_only_gets_no_post(emulator, s3):
    sqs, url, arn = queue_with_arn("completed-only")
    s3.put_bucket_notification_configuration(
        Bucket=BUCKET, NotificationConfiguration={"QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectRestore:Completed"]}]}
    )
    put(s3, "x")
    bodies(sqs, url)

    restore(s3, "x")
    assert bodies(sqs, url) == []
    emulator.complete_all()
    assert [b["Records"][0]["eventName"] for b in bodies(sqs, url)] == ["ObjectRestore:Completed"]


def test_eventbridge_delivers_object_restore_completed_through_a_matching_rule(emulator, s3):
    sqs, url, arn = queue_with_arn("completion")
    events = boto3.client("events", region_name="us-east-1")
    events.put_rule(Name="restore-completed", EventPattern=json.dumps({"source": ["aws.s3"], "detail-type": ["Object Restore Completed"]}))
    events.put_targets(Rule="restore-completed", Targets=[{"Id": "completion", "Arn": arn}])
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_notification_configuration(Bucket=BUCKET, NotificationConfiguration={"EventBridgeConfiguration": {}})
    key = "reports/2024 Q1+Q2 «résumé» 報告.csv"
    version = put(s3, key, "DEEP_ARCHIVE")["VersionId"]

    restore(s3, key, tier="Bulk")
    assert bodies(sqs, url) == []  # "Object Restore Initiated" does not match the rule
    emulator.complete_all()
    delivered = bodies(sqs, url)

    assert len(delivered) == 1
    event = delivered[0]
    assert (event["source"], event["detail-type"]) == ("aws.s3", "Object Restore Completed")
    assert event["detail"]["bucket"]["name"] == BUCKET
    assert event["detail"]["object"]["key"] == key
    assert event["detail"]["object"]["version-id"] == version
    assert event["detail"]["object"]["size"] == len(b"data of " + key.encode())
    assert event["detail"]["object"]["etag"]
    assert event["detail"]["source-storage-class"] == "DEEP_ARCHIVE"
    assert event["detail"]["restore-expiry-time"].endswith("T00:00:00Z")
    assert event["time"].endswith("Z")
    [completion] = parse_message(json.dumps(event))
    assert (completion.bucket, completion.keys[0], completion.version_id) == (BUCKET, key, version)


def test_a_disabled_rule_gets_nothing(emulator, s3):
    sqs, url, arn = queue_with_arn("disabled")
    events = boto3.client("events", region_name="us-east-1")
    events.put_rule(
        Name="off", State="DISABLED", EventPattern=json.dumps({"source": ["aws.s3"], "detail-type": ["Object Restore Completed"]})
    )
    events.put_targets(Rule="off", Targets=[{"Id": "q", "Arn": arn}])
    s3.put_bucket_notification_configuration(Bucket=BUCKET, NotificationConfiguration={"EventBridgeConfiguration": {}})
    put(s3, "k")

    restore(s3, "k")
    emulator.complete_all()

    assert bodies(sqs, url) == []


def test_the_bucket_notification_configuration_shows_eventbridge(emulator, s3):
    _, _, arn = queue_with_arn("other")
    config = {"QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*"]}], "EventBridgeConfiguration": {}}
    s3.put_bucket_notification_configuration(Bucket=BUCKET, NotificationConfiguration=config)

    current = s3.get_bucket_notification_configuration(Bucket=BUCKET)

    assert current["EventBridgeConfiguration"] == {}
    assert current["QueueConfigurations"][0]["QueueArn"] == arn
    assert S3Gateway(s3).ensure_eventbridge(BUCKET) is False


# ---- installation -------------------------------------------------------------------------


def test_installation_is_idempotent_and_reversible(aws, s3):
    from moto.s3.models import FakeKey
    from moto.s3.responses import S3Response

    original_post, original_status = S3Response._key_response_post, FakeKey.__dict__["status"]
    emu = S3RestoreEmulator()
    emu.install()
    emu.install()
    with pytest.raises(RuntimeError):
        S3RestoreEmulator().install()
    put(s3, "k")
    restore(s3, "k")
    emu.uninstall()
    emu.uninstall()

    assert S3Response._key_response_post is original_post
    assert FakeKey.__dict__["status"] is original_status
    put(s3, "other")
    assert s3.restore_object(Bucket=BUCKET, Key="other", RestoreRequest={"Days": 1})["ResponseMetadata"]["HTTPStatusCode"] == 202
    put(s3, "plain", "STANDARD")
    assert s3.get_object(Bucket=BUCKET, Key="plain")["Body"].read() == b"data of plain"
