"""The batch engine end to end: one S3 Batch Operations job issues a bulk-restore job's restores.

The stack runs in-process on moto with the local stack's emulations of S3 RestoreObject and of
S3 Batch Operations (bulk_restore_cli.local.s3_batch): the Batch job reads the manifest the planner
wrote, runs its tasks through the restore emulation, writes its completion report and sends its
CloudTrail status events through EventBridge onto the completion queue, as in AWS.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from bulk_restore.domain.model import ObjectId
from bulk_restore_cli.local import s3_restore
from bulk_restore_cli.local.s3_batch import S3BatchEmulator
from support.api import call_api
from support.ledger import JobLedger, assert_counters_match, assert_one_terminal_event
from support.stack import DATA_BUCKET, REGION, Stack

ACCOUNT = "123456789012"
BATCH = {"ACCOUNT_ID": ACCOUNT, "BATCH_ROLE_ARN": f"arn:aws:iam::{ACCOUNT}:role/bulk-restore-batch", "PLAN_LINES_PER_STEP": 196}


@pytest.fixture
def stack_settings() -> dict[str, object]:
    return dict(BATCH)


@pytest.fixture
def batch(stack: Stack) -> Iterator[S3BatchEmulator]:
    with s3_restore.S3RestoreEmulator() as restores, S3BatchEmulator(restores) as running:
        stack.restore_emulator = restores
        yield running


def settle(stack: Stack, batch: S3BatchEmulator, rounds: int = 60) -> None:
    """Functions, Batch jobs and restores, until nothing moves."""
    for _ in range(rounds):
        moved = stack.drain()
        moved += batch.run_until_idle() - 1
        stack.restore_emulator.complete_all()
        moved += stack.drain()
        if not moved:
            return
    raise AssertionError("the stack did not settle")


def s3control() -> Any:
    return boto3.client("s3control", region_name=REGION)


def put(stack: Stack, n: int, prefix: str = "b", storage_class: str = "GLACIER") -> list[ObjectId]:
    objects = [ObjectId(DATA_BUCKET, f"{prefix}/{i:04d} é+x.bin") for i in range(n)]
    for obj in objects:
        stack.put_archived(obj.key, storage_class=storage_class)
    return objects


def test_a_batch_job_restores_every_object_through_one_s3_batch_operations_job(stack: Stack, batch: S3BatchEmulator) -> None:
    objects = put(stack, 450)  # three planning steps, five chunks
    created = stack.create_job(*stack.put_manifest(objects + objects[:3]), engine="batch", tier="BULK", client_tag="finance")
    job_id = created["BulkJobId"]
    assert created["Engine"] == "batch"
    settle(stack, batch)
    ledger = JobLedger.read(stack, job_id)
    assert ledger.status == "Complete" and ledger.states() == Counter({"RESTORED": 450})
    assert_counters_match(ledger)
    (job,) = s3control().list_jobs(AccountId=ACCOUNT)["Jobs"]
    described = s3control().describe_job(AccountId=ACCOUNT, JobId=job["JobId"])["Job"]
    assert described["Status"] == "Complete"
    assert described["Operation"]["S3InitiateRestoreObject"] == {"ExpirationInDays": 1, "GlacierJobTier": "BULK"}
    assert described["ProgressSummary"]["TotalNumberOfTasks"] == 450  # each object once, duplicates of other chunks too
    tags = s3control().get_job_tagging(AccountId=ACCOUNT, JobId=job["JobId"])["Tags"]
    assert {"Key": "bulk-restore:client-tag", "Value": "finance"} in tags and {"Key": "bulk-restore:job", "Value": job_id} in tags
    _status, body = call_api("GET", f"/jobs/{job_id}")
    assert (
        body["BatchJobId"] == job["JobId"]
        and body["BatchOperations"][0]["Status"] == "Complete"
        and body["BatchOperations"][0]["ReportRead"]
    )
    terminal = assert_one_terminal_event(stack.events_of(job_id), job_id).message
    assert terminal["BatchJobId"] == job["JobId"] and terminal["Engine"] == "batch"


def test_objects_settled_before_any_task_and_failed_tasks_from_the_report(stack: Stack, batch: S3BatchEmulator) -> None:
    good = put(stack, 5)
    hot = put(stack, 2, prefix="hot", storage_class="STANDARD")
    missing = [ObjectId(DATA_BUCKET, "gone/never-written.bin")]
    later = put(stack, 1, prefix="deleted-later")
    job_id = stack.create_job(*stack.put_manifest(good + hot + missing + later), engine="batch")["BulkJobId"]
    stack.drain()  # planned, each object looked at, the Batch job created
    (run,) = s3control().list_jobs(AccountId=ACCOUNT)["Jobs"]
    described = s3control().describe_job(AccountId=ACCOUNT, JobId=run["JobId"])["Job"]
    stack.s3.delete_object(Bucket=DATA_BUCKET, Key=later[0].key)  # gone before its task runs
    settle(stack, batch)
    assert described["Status"] in ("New", "Preparing") and batch  # the job was created before the deletion ran
    assert s3control().describe_job(AccountId=ACCOUNT, JobId=run["JobId"])["Job"]["ProgressSummary"]["TotalNumberOfTasks"] == 6
    ledger = JobLedger.read(stack, job_id)
    assert ledger.status == "Complete"
    assert ledger.states() == Counter({"RESTORED": 5, "SKIPPED": 2, "FAILED": 2})
    assert ledger.record_of(missing[0])["reason"].startswith("NoSuchKey")  # by its HeadObject: never a task
    assert ledger.record_of(hot[0])["reason"] == "readable now: not in an archive storage class"
    assert (
        ledger.record_of(later[0])["reason"].startswith("NoSuchKey") and "S3 Batch Operations task" in ledger.record_of(later[0])["reason"]
    )
    assert_counters_match(ledger)


def test_intelligent_tiering_archive_objects_run_in_a_batch_job_of_their_own(stack: Stack, batch: S3BatchEmulator) -> None:
    glacier = put(stack, 3)
    tiered = []
    for i in range(2):
        key = f"it/{i}.bin"
        stack.s3.put_object(Bucket=DATA_BUCKET, Key=key, Body=b"x", StorageClass="INTELLIGENT_TIERING")
        s3_restore.set_archive_status(DATA_BUCKET, key, "DEEP_ARCHIVE_ACCESS")
        tiered.append(ObjectId(DATA_BUCKET, key))
    job_id = stack.create_job(*stack.put_manifest(glacier + tiered), engine="batch")["BulkJobId"]
    settle(stack, batch)
    ledger = JobLedger.read(stack, job_id)
    assert ledger.status == "Complete" and ledger.states() == Counter({"RESTORED": 5})
    runs = call_api("GET", f"/jobs/{job_id}")[1]["BatchOperations"]
    assert [(r["Group"], r["Status"]) for r in runs] == [("archive", "Complete"), ("intelligent-tiering", "Complete")]
    second = s3control().describe_job(AccountId=ACCOUNT, JobId=runs[1]["JobId"])["Job"]
    assert second["Operation"]["S3InitiateRestoreObject"] == {"GlacierJobTier": "STANDARD"}  # no ExpirationInDays
    assert second["ProgressSummary"]["TotalNumberOfTasks"] == 2


def test_a_batch_job_that_fails_ends_the_job_with_its_failure_codes_and_untried_objects_say_so(
    stack: Stack, batch: S3BatchEmulator
) -> None:
    objects = put(stack, 1_100, prefix="doomed")
    job_id = stack.create_job(*stack.put_manifest(objects), engine="batch")["BulkJobId"]
    stack.drain()  # recorded, the Batch job created; then the objects go: every task fails, the 50 % rule after 1,000
    stack.s3.delete_objects(Bucket=DATA_BUCKET, Delete={"Objects": [{"Key": o.key} for o in objects[:1000]]})
    stack.s3.delete_objects(Bucket=DATA_BUCKET, Delete={"Objects": [{"Key": o.key} for o in objects[1000:]]})
    settle(stack, batch)
    ledger = JobLedger.read(stack, job_id)
    assert ledger.status == "Failed"
    terminal = assert_one_terminal_event(stack.events_of(job_id), job_id).message
    assert "TaskFailureThresholdExceeded" in terminal["FailureReason"]
    states = ledger.states()
    assert states["FAILED"] >= 1_000 and states["FAILED"] + states["CANCELLED"] == 1_100 and not states["RESTORING"]
    untried = [r for r in ledger.objects if r["state"] == "CANCELLED"]
    assert all("its S3 Batch Operations task never ran" in r["reason"] for r in untried)
    assert_counters_match(ledger)


def test_cancelling_a_batch_job_cancels_its_s3_batch_operations_job(stack: Stack, batch: S3BatchEmulator) -> None:
    objects = put(stack, 30)
    job_id = stack.create_job(*stack.put_manifest(objects), engine="batch")["BulkJobId"]
    stack.drain()  # planned and launched; the Batch job has not run
    (run,) = s3control().list_jobs(AccountId=ACCOUNT)["Jobs"]
    status, _ = call_api("POST", f"/jobs/{job_id}/cancel")
    assert status == 200
    settle(stack, batch)
    assert s3control().describe_job(AccountId=ACCOUNT, JobId=run["JobId"])["Job"]["Status"] == "Cancelled"
    ledger = JobLedger.read(stack, job_id)
    assert ledger.status == "Cancelled" and ledger.states() == Counter({"CANCELLED": 30})
    assert_one_terminal_event(stack.events_of(job_id), job_id)


def test_a_lost_status_event_is_found_by_the_sweeper_and_a_retried_launch_makes_no_second_batch_job(
    stack: Stack, batch: S3BatchEmulator
) -> None:
    objects = put(stack, 12)
    job_id = stack.create_job(*stack.put_manifest(objects), engine="batch")["BulkJobId"]
    stack.drain()
    services = stack.services()
    job = services.store.get_job(job_id)
    run = dict(job.batch_runs["archive"])
    services.store.save_batch_run(job_id, "archive", {})  # as if the creation had not been recorded
    services.batch.launch(services.store.get_job(job_id))  # a repeat: the same token, the same Batch job
    assert len(s3control().list_jobs(AccountId=ACCOUNT)["Jobs"]) == 1
    assert services.store.get_job(job_id).batch_runs["archive"]["id"] == run["id"]
    batch.run_until_idle()  # the Batch job runs to Complete; its status events go to the completion queue...
    stack.sqs.purge_queue(QueueUrl=stack.completion_queue_url)  # ...and are lost
    stack.restore_emulator.complete_all()
    stack.drain()  # every object restored, but the job waits for its Batch job's end and report
    ledger = JobLedger.read(stack, job_id)
    assert ledger.status == "Restoring" and ledger.states() == Counter({"RESTORED": 12})
    assert not services.store.get_job(job_id).batch_runs["archive"].get("report")
    assert stack.sweep()  # DescribeJob: Complete; the report is read, the job completes
    stack.drain()
    ledger = JobLedger.read(stack, job_id)
    assert ledger.status == "Complete" and services.store.get_job(job_id).batch_runs["archive"]["report"] is True
    assert_one_terminal_event(stack.events_of(job_id), job_id)


def test_expedited_with_the_batch_engine_is_refused_and_offers_direct(stack: Stack) -> None:
    key = stack.put_manifest(put(stack, 1))
    status, body = call_api("POST", "/create-job", {"bucket": key[0], "key": key[1], "engine": "batch", "tier": "EXPEDITED"})
    assert status == 400 and 'use engine "direct" for EXPEDITED' in body["error"]["message"]
    status, body = call_api("POST", "/create-job", {"bucket": key[0], "key": key[1], "engine": "turbo"})
    assert status == 400 and "engine" in body["error"]["message"]
    assert json.dumps(body)


@pytest.mark.parametrize("stack_settings", [{**BATCH, "BATCH_MIN_OBJECTS": 4}])
def test_auto_picks_the_batch_engine_from_the_stack_s_threshold_and_never_for_expedited(stack: Stack) -> None:
    small, large = put(stack, 3, prefix="s"), put(stack, 4, prefix="l")
    assert stack.create_job(*stack.put_manifest(small, key="small.csv"))["Engine"] == "direct"
    assert stack.create_job(*stack.put_manifest(large, key="large.csv"))["Engine"] == "batch"
    assert stack.create_job(*stack.put_manifest(large, key="large.csv"), tier="EXPEDITED")["Engine"] == "direct"
    assert stack.create_job(*stack.put_manifest(large, key="large.csv"), engine="direct")["Engine"] == "direct"


@pytest.mark.parametrize("stack_settings", [{"BATCH_MIN_OBJECTS": 1}])
def test_a_stack_without_the_batch_role_runs_direct_and_refuses_batch(stack: Stack) -> None:
    bucket, key = stack.put_manifest(put(stack, 2))
    assert stack.create_job(bucket, key)["Engine"] == "direct"
    status, body = call_api("POST", "/create-job", {"bucket": bucket, "key": key, "engine": "batch"})
    assert status == 400 and "Batch Operations role" in body["error"]["message"]


def test_a_batch_job_cancelled_outside_ends_the_job_as_cancelled_with_its_reason(stack: Stack, batch: S3BatchEmulator) -> None:
    objects = put(stack, 20)
    job_id = stack.create_job(*stack.put_manifest(objects), engine="batch")["BulkJobId"]
    stack.drain()
    (run,) = s3control().list_jobs(AccountId=ACCOUNT)["Jobs"]
    s3control().update_job_status(
        AccountId=ACCOUNT, JobId=run["JobId"], RequestedJobStatus="Cancelled", StatusUpdateReason="stopped in the console"
    )
    settle(stack, batch)
    ledger = JobLedger.read(stack, job_id)
    assert ledger.status == "Cancelled"
    terminal = assert_one_terminal_event(stack.events_of(job_id), job_id).message
    assert run["JobId"] in terminal["FailureReason"] and "Cancelled" in terminal["FailureReason"]
    assert not ledger.states()["RESTORING"]
    assert_counters_match(ledger)


def test_a_suspended_batch_job_is_confirmed_not_left_waiting(stack: Stack, batch: S3BatchEmulator) -> None:
    objects = put(stack, 6)
    bucket, key = stack.put_manifest(objects)
    job_id = stack.create_job(bucket, key, engine="batch")["BulkJobId"]
    stack.drain()
    services = stack.services()
    (ours,) = s3control().list_jobs(AccountId=ACCOUNT)["Jobs"]
    # The same Batch job as if it had been made to wait for confirmation: one that waits, linked in its place.
    job = services.store.get_job(job_id)
    manifest = job.batch_runs["archive"]["manifest"]
    etag = stack.s3.head_object(Bucket=stack.report_bucket, Key=manifest)["ETag"]
    waiting = s3control().create_job(
        AccountId=ACCOUNT,
        ConfirmationRequired=True,
        Operation={"S3InitiateRestoreObject": {"ExpirationInDays": 1, "GlacierJobTier": "STANDARD"}},
        Report={
            "Bucket": f"arn:aws:s3:::{stack.report_bucket}",
            "Prefix": f"batch/{job_id}/report-archive",
            "Format": "Report_CSV_20180820",
            "Enabled": True,
            "ReportScope": "AllTasks",
        },
        Manifest={
            "Spec": {"Format": "S3BatchOperations_CSV_20180820", "Fields": ["Bucket", "Key"]},
            "Location": {"ObjectArn": f"arn:aws:s3:::{stack.report_bucket}/{manifest}", "ETag": etag},
        },
        Priority=10,
        RoleArn=BATCH["BATCH_ROLE_ARN"],
        ClientRequestToken="waiting",
    )["JobId"]
    s3control().update_job_status(AccountId=ACCOUNT, JobId=ours["JobId"], RequestedJobStatus="Cancelled")
    services.store.link_batch_job(waiting, job_id, "archive")
    services.store.save_batch_run(job_id, "archive", {**job.batch_runs["archive"], "id": waiting, "status": "New"})
    stack.sqs.purge_queue(QueueUrl=stack.completion_queue_url)
    batch.run_until_idle()  # New -> Preparing -> Suspended: waits
    assert s3control().describe_job(AccountId=ACCOUNT, JobId=waiting)["Job"]["Status"] == "Suspended"
    stack.drain()  # the Suspended event: confirmed
    settle(stack, batch)
    assert s3control().describe_job(AccountId=ACCOUNT, JobId=waiting)["Job"]["Status"] == "Complete"
    ledger = JobLedger.read(stack, job_id)
    assert ledger.status == "Complete" and ledger.states() == Counter({"RESTORED": 6})
