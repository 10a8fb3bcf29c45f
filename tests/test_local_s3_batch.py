"""The local S3 Batch Operations emulation (local/s3_batch.py) answers s3control's jobs API as AWS documents it.

Most tests run a real local endpoint (moto's server behind the local stack's gate) and talk to it
with plain boto3 clients; the clock is driven by the test (``tick`` / ``run_until_idle``), never by
sleeping.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, quote_plus

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from bulk_restore_cli.local.endpoint import AwsEndpoint
from bulk_restore_cli.local.s3_batch import REPORT_SCHEMA, S3BatchEmulator, reach_local_endpoint
from bulk_restore_cli.local.s3_restore import S3RestoreEmulator, set_archive_status
from support.endpoint import endpoint_client, endpoint_url

ACCOUNT = "123456789012"
REGION = "us-east-1"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/batch-operations"
CLOUDTRAIL_PATTERN = {"source": ["aws.s3"], "detail-type": ["AWS Service Event via CloudTrail"]}
ONE_RETRY = Config(retries={"max_attempts": 1})  # the legacy mode's count: one retry after the first attempt


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Local:
    endpoint: AwsEndpoint
    restore: S3RestoreEmulator
    batch: S3BatchEmulator
    clients: dict[tuple[str, str], Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return endpoint_url(self.endpoint)

    def client(self, service: str, region: str = REGION) -> Any:
        """A plain boto3 client of the endpoint (made once: making one takes longer than most calls)."""
        if (service, region) not in self.clients:
            client = endpoint_client(service, self.endpoint, region=region, config=ONE_RETRY)
            self.clients[(service, region)] = reach_local_endpoint(client) if service == "s3control" else client
        return self.clients[(service, region)]

    @property
    def s3(self) -> Any:
        return self.client("s3")

    @property
    def control(self) -> Any:
        return self.client("s3control")

    def replace_batch(self, **options: Any) -> S3BatchEmulator:
        self.batch.uninstall()
        self.batch = S3BatchEmulator(self.restore, gate=self.endpoint.application.gate, **options).install()
        return self.batch

    def bucket(self, prefix: str = "b") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        self.s3.create_bucket(Bucket=name)
        return name

    def manifest(self, bucket: str, rows: list[str], key: str = "manifest.csv") -> dict[str, Any]:
        etag = self.s3.put_object(Bucket=bucket, Key=key, Body=("\n".join(rows) + "\n").encode())["ETag"]
        return {
            "Spec": {"Format": "S3BatchOperations_CSV_20180820", "Fields": ["Bucket", "Key"]},
            "Location": {"ObjectArn": f"arn:aws:s3:::{bucket}/{key}", "ETag": etag},
        }

    def create(
        self,
        manifest: dict[str, Any],
        report_bucket: str | None = None,
        scope: str = "AllTasks",
        operation: dict[str, Any] | None = None,
        control: Any = None,
        **extra: Any,
    ) -> str:
        report = (
            {
                "Bucket": f"arn:aws:s3:::{report_bucket}",
                "Format": "Report_CSV_20180820",
                "Enabled": True,
                "Prefix": "reports",
                "ReportScope": scope,
            }
            if report_bucket
            else {"Enabled": False}
        )
        extra.setdefault("ConfirmationRequired", False)
        return (control or self.control).create_job(
            AccountId=ACCOUNT,
            Operation=operation or {"S3InitiateRestoreObject": {"ExpirationInDays": 2, "GlacierJobTier": "BULK"}},
            Report=report,
            Manifest=manifest,
            Priority=10,
            RoleArn=ROLE,
            **extra,
        )["JobId"]

    def describe(self, job_id: str, control: Any = None) -> dict[str, Any]:
        return (control or self.control).describe_job(AccountId=ACCOUNT, JobId=job_id)["Job"]

    def statuses_until_idle(self, job_id: str) -> list[str]:
        """The job's status after each tick, from now until no job moves."""
        seen = [self.describe(job_id)["Status"]]
        while self.batch.tick(max_tasks=1 << 30):
            seen.append(self.describe(job_id)["Status"])
        return seen

    def report(self, bucket: str, job_id: str, prefix: str = "reports") -> tuple[dict[str, Any], dict[str, list[list[str]]]]:
        """The job's completion report: its manifest.json and its rows by TaskExecutionStatus (MD5s checked)."""
        manifest = json.loads(self.s3.get_object(Bucket=bucket, Key=f"{prefix}/job-{job_id}/manifest.json")["Body"].read())
        rows: dict[str, list[list[str]]] = {"succeeded": [], "failed": []}
        for result in manifest["Results"]:
            assert result["Bucket"] == bucket and result["Key"].startswith(f"{prefix}/job-{job_id}/results/")
            body = self.s3.get_object(Bucket=bucket, Key=result["Key"])["Body"].read()
            assert hashlib.md5(body).hexdigest() == result["MD5Checksum"]
            rows[result["TaskExecutionStatus"]] += list(csv.reader(io.StringIO(body.decode())))
        return manifest, rows


def by_schema(row: list[str]) -> dict[str, str]:
    """A result row read as a consumer should: columns by ReportSchema, ErrorCode and HTTPStatusCode
    told apart by content (AWS writes the status first, against the schema's order)."""
    names = [name.strip() for name in REPORT_SCHEMA.split(",")]
    entry = dict(zip(names, row, strict=True))
    if entry["ErrorCode"].isdigit() and not entry["HTTPStatusCode"].isdigit():
        entry["ErrorCode"], entry["HTTPStatusCode"] = entry["HTTPStatusCode"], entry["ErrorCode"]
    return entry


def error_of(call: Callable[[], Any]) -> tuple[int, str, str]:
    with pytest.raises(ClientError) as caught:
        call()
    response = caught.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"], response["Error"]["Message"]


@pytest.fixture
def local(endpoint: AwsEndpoint) -> Iterator[Local]:
    restore = S3RestoreEmulator().install()
    assert endpoint.application is not None
    batch = S3BatchEmulator(restore, gate=endpoint.application.gate).install()
    setup = Local(endpoint, restore, batch)
    try:
        yield setup
    finally:
        setup.batch.uninstall()
        restore.uninstall()


def put_many(local: Local, bucket: str, keys: list[str], storage_class: str = "GLACIER") -> None:
    from bulk_restore_cli.local.s3_batch import _s3_backend

    backend = _s3_backend(ACCOUNT)
    for key in keys:
        backend.put_object(bucket, key, b"data", storage=storage_class)


# ---- the lifecycle and the report -----------------------------------------------------------


def test_a_restore_job_goes_through_every_status_to_complete_and_writes_its_report(local: Local) -> None:
    data, reports = local.bucket("data"), local.bucket("reports")
    local.s3.put_object(Bucket=data, Key="photos/red flower+1.jpg", Body=b"x", StorageClass="GLACIER")
    local.s3.put_object(Bucket=data, Key="deep.bin", Body=b"x", StorageClass="DEEP_ARCHIVE")
    local.s3.put_object(Bucket=data, Key="hot.txt", Body=b"x", StorageClass="STANDARD")
    manifest = local.manifest(
        data, [f"{data},{quote('photos/red flower+1.jpg')}", f"{data},deep.bin", f"{data},hot.txt", f"{data},missing.txt"]
    )

    job_id = local.create(manifest, reports, Description="restore the photos")

    assert local.statuses_until_idle(job_id) == ["New", "Preparing", "Ready", "Active", "Completing", "Complete"]
    job = local.describe(job_id)
    assert job["JobArn"] == f"arn:aws:s3:{REGION}:{ACCOUNT}:job/{job_id}" and job["Description"] == "restore the photos"
    assert job["ProgressSummary"] == {
        "TotalNumberOfTasks": 4,
        "NumberOfTasksSucceeded": 2,
        "NumberOfTasksFailed": 2,
        "Timers": {"ElapsedTimeInActiveSeconds": 0},
    }
    assert job["FailureReasons"] == [] and job["ConfirmationRequired"] is False and job["Priority"] == 10
    assert job["Operation"] == {"S3InitiateRestoreObject": {"ExpirationInDays": 2, "GlacierJobTier": "BULK"}}
    assert job["Manifest"] == manifest and job["RoleArn"] == ROLE and job["Report"]["ReportScope"] == "AllTasks"
    assert job["TerminationDate"] >= job["CreationTime"]
    # the restores were started as a RestoreObject call starts them
    assert local.s3.head_object(Bucket=data, Key="photos/red flower+1.jpg")["Restore"] == 'ongoing-request="true"'
    assert local.s3.head_object(Bucket=data, Key="deep.bin")["Restore"] == 'ongoing-request="true"'

    report, rows = local.report(reports, job_id)
    assert report["Format"] == "Report_CSV_20180820" and report["ReportSchema"] == REPORT_SCHEMA
    assert report["ReportCreationDate"].endswith("Z")
    assert sorted(r["TaskExecutionStatus"] for r in report["Results"]) == ["failed", "succeeded"]
    # as AWS writes them: the key as the manifest gave it, the HTTP status before the error code
    assert sorted(rows["succeeded"]) == sorted(
        [
            [data, "deep.bin", "", "succeeded", "200", "", "Successful"],
            [data, "photos/red%20flower%2B1.jpg", "", "succeeded", "200", "", "Successful"],
        ]
    )
    failed = {row[1]: by_schema(row) for row in rows["failed"]}
    assert (failed["hot.txt"]["HTTPStatusCode"], failed["hot.txt"]["ErrorCode"]) == ("403", "InvalidObjectState")
    assert (failed["missing.txt"]["HTTPStatusCode"], failed["missing.txt"]["ErrorCode"]) == ("404", "NoSuchKey")
    assert failed["missing.txt"]["ResultMessage"] == "The specified key does not exist."


@pytest.mark.parametrize("order", ["observed", "schema"])
def test_a_failed_tasks_only_report_lists_only_the_failed_tasks_in_the_order_asked(local: Local, order: str) -> None:
    local.replace_batch(report_row_order=order)
    data, reports = local.bucket("data"), local.bucket("reports")
    local.s3.put_object(Bucket=data, Key="cold", Body=b"x", StorageClass="GLACIER")
    local.s3.put_object(Bucket=data, Key="hot", Body=b"x")
    job_id = local.create(local.manifest(data, [f"{data},cold", f"{data},hot", f"{data},gone"]), reports, scope="FailedTasksOnly")

    local.batch.run_until_idle()

    report, rows = local.report(reports, job_id)
    assert [r["TaskExecutionStatus"] for r in report["Results"]] == ["failed"] and rows["succeeded"] == []
    if order == "schema":
        assert sorted(rows["failed"]) == [
            [data, "gone", "", "failed", "NoSuchKey", "404", "The specified key does not exist."],
            [data, "hot", "", "failed", "InvalidObjectState", "403", "Restore is not allowed for the object's current storage class"],
        ]
    else:
        assert sorted(row[:6] for row in rows["failed"]) == [
            [data, "gone", "", "failed", "404", "NoSuchKey"],
            [data, "hot", "", "failed", "403", "InvalidObjectState"],
        ]
    assert sorted(by_schema(row)["ErrorCode"] for row in rows["failed"]) == ["InvalidObjectState", "NoSuchKey"]


def test_result_files_roll_over_at_their_size_limit_and_all_rows_are_reported(local: Local) -> None:
    local.replace_batch(report_file_bytes=200)
    data, reports = local.bucket("data"), local.bucket("reports")
    keys = [f"object-{n:03d}" for n in range(30)]
    put_many(local, data, keys)
    job_id = local.create(local.manifest(data, [f"{data},{key}" for key in keys]), reports)

    local.batch.run_until_idle()

    report, rows = local.report(reports, job_id)
    assert len(report["Results"]) > 1 and all(r["TaskExecutionStatus"] == "succeeded" for r in report["Results"])
    assert sorted(row[1] for row in rows["succeeded"]) == keys


@pytest.mark.parametrize(
    "expiration, fails, error",
    [
        (1, "it-object", (400, "InvalidArgument")),  # Intelligent-Tiering takes no Days
        (None, "glacier-object", (400, "InvalidArgument")),  # Glacier needs Days
    ],
)
def test_one_job_cannot_restore_glacier_and_intelligent_tiering_archive_objects_together(
    local: Local, expiration: int | None, fails: str, error: tuple[int, str]
) -> None:
    data, reports = local.bucket("data"), local.bucket("reports")
    local.s3.put_object(Bucket=data, Key="glacier-object", Body=b"x", StorageClass="GLACIER")
    local.s3.put_object(Bucket=data, Key="it-object", Body=b"x", StorageClass="INTELLIGENT_TIERING")
    set_archive_status(data, "it-object", "ARCHIVE_ACCESS")
    operation = {"S3InitiateRestoreObject": {"GlacierJobTier": "STANDARD", **({"ExpirationInDays": expiration} if expiration else {})}}
    job_id = local.create(local.manifest(data, [f"{data},glacier-object", f"{data},it-object"]), reports, operation=operation)

    local.batch.run_until_idle()

    assert local.describe(job_id)["ProgressSummary"]["NumberOfTasksFailed"] == 1
    _, rows = local.report(reports, job_id)
    failed = [by_schema(row) for row in rows["failed"]]
    assert [(row["Key"], int(row["HTTPStatusCode"]), row["ErrorCode"]) for row in failed] == [(fails, *error)]
    assert "Days" in failed[0]["ResultMessage"]


def test_a_task_over_a_running_restore_fails_unless_faster_with_the_same_days(local: Local) -> None:
    data, reports = local.bucket("data"), local.bucket("reports")
    for key in ("same-tier", "faster-same-days", "faster-other-days"):
        local.s3.put_object(Bucket=data, Key=key, Body=b"x", StorageClass="GLACIER")
        local.s3.restore_object(Bucket=data, Key=key, RestoreRequest={"Days": 2, "GlacierJobParameters": {"Tier": "Bulk"}})
    bulk = local.create(local.manifest(data, [f"{data},same-tier"], "bulk.csv"), reports)  # BULK, 2 days
    standard = local.create(
        local.manifest(data, [f"{data},faster-same-days"], "standard.csv"),
        reports,
        operation={"S3InitiateRestoreObject": {"ExpirationInDays": 2, "GlacierJobTier": "STANDARD"}},
    )
    other_days = local.create(
        local.manifest(data, [f"{data},faster-other-days"], "other.csv"),
        reports,
        operation={"S3InitiateRestoreObject": {"ExpirationInDays": 5, "GlacierJobTier": "STANDARD"}},
    )

    local.batch.run_until_idle()

    assert local.describe(standard)["ProgressSummary"]["NumberOfTasksSucceeded"] == 1
    for job_id in (bulk, other_days):
        _, rows = local.report(reports, job_id)
        assert [(by_schema(r)["HTTPStatusCode"], by_schema(r)["ErrorCode"]) for r in rows["failed"]] == [
            ("409", "RestoreAlreadyInProgress")
        ]


def test_past_1000_tasks_a_failure_rate_over_half_fails_the_job_and_below_1000_it_does_not(local: Local) -> None:
    data, reports = local.bucket("data"), local.bucket("reports")
    failing = local.create(local.manifest(data, [f"{data},missing-{n}" for n in range(1100)], "many.csv"), reports)
    under = local.create(local.manifest(data, [f"{data},missing-{n}" for n in range(999)], "few.csv"), reports)

    local.batch.run_until_idle()

    job = local.describe(failing)
    assert job["Status"] == "Failed" and job["TerminationDate"] is not None
    assert job["ProgressSummary"]["TotalNumberOfTasks"] == 1100
    assert (job["ProgressSummary"]["NumberOfTasksFailed"], job["ProgressSummary"]["NumberOfTasksSucceeded"]) == (1000, 0)
    assert [reason["FailureCode"] for reason in job["FailureReasons"]] == ["TaskFailureThresholdExceeded"]
    _, rows = local.report(reports, failing)  # a failed job that ran tasks reports them
    assert len(rows["failed"]) == 1000
    assert local.describe(under)["Status"] == "Complete"
    assert local.describe(under)["ProgressSummary"]["NumberOfTasksFailed"] == 999


def test_a_job_cancelled_mid_run_never_runs_its_other_tasks(local: Local) -> None:
    data, reports = local.bucket("data"), local.bucket("reports")
    keys = [f"k{n:02d}" for n in range(20)]
    put_many(local, data, keys)
    job_id = local.create(local.manifest(data, [f"{data},{key}" for key in keys]), reports)
    for _ in range(3):
        local.batch.tick(max_tasks=0)
    assert local.describe(job_id)["Status"] == "Active"
    local.batch.tick(max_tasks=7)

    answer = local.control.update_job_status(
        AccountId=ACCOUNT, JobId=job_id, RequestedJobStatus="Cancelled", StatusUpdateReason="no longer needed"
    )
    assert (answer["Status"], answer["StatusUpdateReason"]) == ("Cancelling", "no longer needed")
    assert local.statuses_until_idle(job_id) == ["Cancelling", "Cancelled"]

    job = local.describe(job_id)
    assert job["ProgressSummary"]["NumberOfTasksSucceeded"] == 7 and job["StatusUpdateReason"] == "no longer needed"
    restored = [key for key in keys if "Restore" in local.s3.head_object(Bucket=data, Key=key)]
    assert len(restored) == 7
    _, rows = local.report(reports, job_id)
    assert sorted(row[1] for row in rows["succeeded"]) == restored


@pytest.mark.parametrize("confirmation", [{"ConfirmationRequired": True}, {}], ids=["asked", "left-out"])
def test_a_job_needing_confirmation_waits_suspended_until_it_is_made_ready(local: Local, confirmation: dict[str, Any]) -> None:
    data = local.bucket("data")
    local.s3.put_object(Bucket=data, Key="cold", Body=b"x", StorageClass="GLACIER")
    manifest = local.manifest(data, [f"{data},cold"])
    job_id = local.control.create_job(
        AccountId=ACCOUNT,
        Operation={"S3InitiateRestoreObject": {"ExpirationInDays": 1}},
        Report={"Enabled": False},
        Manifest=manifest,
        Priority=1,
        RoleArn=ROLE,
        **confirmation,
    )["JobId"]

    assert local.statuses_until_idle(job_id) == ["New", "Preparing", "Suspended"]
    job = local.describe(job_id)
    assert job["ConfirmationRequired"] is True and job["SuspendedCause"] and job["SuspendedDate"] is not None
    assert job["ProgressSummary"]["TotalNumberOfTasks"] == 1 and local.batch.tick(max_tasks=100) == 0

    answer = local.control.update_job_status(AccountId=ACCOUNT, JobId=job_id, RequestedJobStatus="Ready")
    assert answer["Status"] == "Ready"
    assert local.statuses_until_idle(job_id) == ["Ready", "Active", "Completing", "Complete"]
    assert local.describe(job_id)["ProgressSummary"]["NumberOfTasksSucceeded"] == 1


def test_a_suspended_job_can_be_cancelled_and_then_runs_nothing(local: Local) -> None:
    data = local.bucket("data")
    local.s3.put_object(Bucket=data, Key="cold", Body=b"x", StorageClass="GLACIER")
    job_id = local.create(local.manifest(data, [f"{data},cold"]), ConfirmationRequired=True)
    local.batch.run_until_idle()

    local.control.update_job_status(AccountId=ACCOUNT, JobId=job_id, RequestedJobStatus="Cancelled")

    assert local.statuses_until_idle(job_id) == ["Cancelling", "Cancelled"]
    assert local.describe(job_id)["ProgressSummary"]["NumberOfTasksSucceeded"] == 0
    assert "Restore" not in local.s3.head_object(Bucket=data, Key="cold")


def test_a_report_bucket_that_does_not_exist_fails_the_job_before_any_task_runs(local: Local) -> None:
    data = local.bucket("data")
    local.s3.put_object(Bucket=data, Key="cold", Body=b"x", StorageClass="GLACIER")
    job_id = local.create(local.manifest(data, [f"{data},cold"]), f"no-such-bucket-{uuid.uuid4().hex[:8]}")

    assert local.statuses_until_idle(job_id) == ["New", "Preparing", "Failing", "Failed"]
    assert [reason["FailureCode"] for reason in local.describe(job_id)["FailureReasons"]] == ["NoSuchBucket"]
    assert "Restore" not in local.s3.head_object(Bucket=data, Key="cold")


# ---- the API ------------------------------------------------------------------------------------


def test_the_same_client_request_token_returns_the_same_job_even_when_sent_at_once(local: Local) -> None:
    data = local.bucket("data")
    manifest = local.manifest(data, [f"{data},a"])
    first = local.create(manifest, ClientRequestToken="token-1")
    assert local.create(manifest, ClientRequestToken="token-1") == first
    assert local.create(manifest, ClientRequestToken="token-1", Description="other parameters") == first

    found: list[str] = []
    threads = [threading.Thread(target=lambda: found.append(local.create(manifest, ClientRequestToken="token-2"))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert len(found) == 8 and len(set(found)) == 1 and found[0] != first
    listed = [job["JobId"] for job in local.control.list_jobs(AccountId=ACCOUNT)["Jobs"]]
    assert sorted(listed) == sorted([first, found[0]])


def test_status_changes_a_job_cannot_make_answer_job_status_exception(local: Local) -> None:
    data = local.bucket("data")
    job_id = local.create(local.manifest(data, [f"{data},a"]))
    for _ in range(3):
        local.batch.tick(max_tasks=0)
    assert local.describe(job_id)["Status"] == "Active"

    status, code, _ = error_of(lambda: local.control.update_job_status(AccountId=ACCOUNT, JobId=job_id, RequestedJobStatus="Ready"))
    assert (status, code) == (409, "JobStatusException")
    local.batch.run_until_idle()
    status, code, message = error_of(
        lambda: local.control.update_job_status(AccountId=ACCOUNT, JobId=job_id, RequestedJobStatus="Cancelled")
    )
    assert (status, code) == (409, "JobStatusException") and "Complete" in message
    assert local.describe(job_id)["Status"] == "Complete"


def test_an_unknown_job_or_one_of_another_region_answers_no_such_job(local: Local) -> None:
    data = local.bucket("data")
    job_id = local.create(local.manifest(data, [f"{data},a"]))
    unknown = str(uuid.uuid4())

    for call in (
        lambda: local.control.describe_job(AccountId=ACCOUNT, JobId=unknown),
        lambda: local.control.update_job_status(AccountId=ACCOUNT, JobId=unknown, RequestedJobStatus="Cancelled"),
        lambda: local.control.update_job_priority(AccountId=ACCOUNT, JobId=unknown, Priority=3),
        lambda: local.client("s3control", region="eu-west-1").describe_job(AccountId=ACCOUNT, JobId=job_id),
    ):
        assert error_of(call) == (404, "NoSuchJob", "The specified job does not exist")


def test_bad_input_answers_invalid_request_and_operations_left_out_answer_not_implemented(local: Local) -> None:
    data = local.bucket("data")
    manifest = local.manifest(data, [f"{data},a"])

    def create(**changes: Any) -> tuple[int, str, str]:
        arguments = {
            "AccountId": ACCOUNT,
            "Operation": {"S3InitiateRestoreObject": {"ExpirationInDays": 1}},
            "Report": {"Enabled": False},
            "Manifest": manifest,
            "Priority": 1,
            "RoleArn": ROLE,
            **changes,
        }
        return error_of(lambda: local.control.create_job(**arguments))

    assert create(Operation={"S3InitiateRestoreObject": {"GlacierJobTier": "EXPEDITED"}})[:2] == (400, "InvalidRequest")
    assert create(Manifest={**manifest, "Spec": {"Format": "S3BatchOperations_CSV_20180820", "Fields": ["Bucket"]}})[:2] == (
        400,
        "InvalidRequest",
    )
    assert create(Manifest={**manifest, "Location": {"ObjectArn": "arn:aws:s3:::no-key", "ETag": "x"}})[:2] == (400, "InvalidRequest")
    assert create(Report={"Enabled": True, "Format": "Report_CSV_20180820"})[:2] == (400, "InvalidRequest")
    assert create(RoleArn="arn:aws:iam::123:user/not-a-role")[:2] == (400, "InvalidRequest")
    assert create(Operation={})[:2] == (400, "InvalidRequest")
    status, code, message = create(Operation={"LambdaInvoke": {"FunctionArn": "arn:aws:lambda:us-east-1:123456789012:function:f"}})
    assert (status, code) == (501, "NotImplemented") and "LambdaInvoke" in message
    status, code, message = error_of(lambda: local.control.list_jobs(AccountId=ACCOUNT, JobStatuses=["Done"]))  # type: ignore[list-item]
    assert (status, code) == (400, "InvalidRequest")
    # what botocore checks before sending, the service checks too
    status, _headers, body = local.batch.handle("POST", "/v20180820/jobs/x/priority", "priority=-1", {"x-amz-account-id": ACCOUNT}, b"")
    assert status == 400 and b"<Code>InvalidRequest</Code>" in body
    status, _, body = local.batch.handle("GET", "/v20180820/jobs", "", {}, b"")
    assert status == 400 and b"x-amz-account-id" in body and body.startswith(b"<?xml") and b"<ErrorResponse><Error>" in body
    status, _, body = local.batch.handle("POST", "/v20180820/jobs", "", {"x-amz-account-id": ACCOUNT}, b"<CreateJobRequest><Priority>x")
    assert status == 400 and b"MalformedXML" in body


def test_list_jobs_filters_by_status_and_pages_newest_first(local: Local) -> None:
    data = local.bucket("data")
    manifest = local.manifest(data, [f"{data},a"])
    ids = [local.create(manifest) for _ in range(5)]
    local.control.update_job_status(AccountId=ACCOUNT, JobId=ids[0], RequestedJobStatus="Cancelled")

    pages, token = [], None
    while True:
        page = local.control.list_jobs(AccountId=ACCOUNT, MaxResults=2, **({"NextToken": token} if token else {}))
        pages.append([job["JobId"] for job in page["Jobs"]])
        token = page.get("NextToken")
        if not token:
            break
    assert pages == [[ids[4], ids[3]], [ids[2], ids[1]], [ids[0]]]
    cancelling = local.control.list_jobs(AccountId=ACCOUNT, JobStatuses=["Cancelling"])["Jobs"]
    assert [(job["JobId"], job["Operation"], job["Status"]) for job in cancelling] == [(ids[0], "S3InitiateRestoreObject", "Cancelling")]
    assert error_of(lambda: local.control.list_jobs(AccountId=ACCOUNT, NextToken="bm9wZQ=="))[:2] == (400, "InvalidNextTokenException")


def test_priority_and_tags_can_be_changed(local: Local) -> None:
    data = local.bucket("data")
    job_id = local.create(local.manifest(data, [f"{data},a"]), Tags=[{"Key": "team", "Value": "archive"}])

    assert local.control.update_job_priority(AccountId=ACCOUNT, JobId=job_id, Priority=42)["Priority"] == 42
    assert local.describe(job_id)["Priority"] == 42
    assert local.control.get_job_tagging(AccountId=ACCOUNT, JobId=job_id)["Tags"] == [{"Key": "team", "Value": "archive"}]
    local.control.put_job_tagging(AccountId=ACCOUNT, JobId=job_id, Tags=[{"Key": "a", "Value": "b"}])
    assert local.control.get_job_tagging(AccountId=ACCOUNT, JobId=job_id)["Tags"] == [{"Key": "a", "Value": "b"}]
    local.control.delete_job_tagging(AccountId=ACCOUNT, JobId=job_id)
    assert local.control.get_job_tagging(AccountId=ACCOUNT, JobId=job_id)["Tags"] == []


def test_a_put_object_tagging_job_tags_every_object(local: Local) -> None:
    data = local.bucket("data")
    for key in ("a", "b"):
        local.s3.put_object(Bucket=data, Key=key, Body=b"x")
    job_id = local.create(
        local.manifest(data, [f"{data},a", f"{data},b", f"{data},c"]),
        operation={"S3PutObjectTagging": {"TagSet": [{"Key": "restored", "Value": "yes"}]}},
    )

    local.batch.run_until_idle()

    assert local.describe(job_id)["ProgressSummary"]["NumberOfTasksSucceeded"] == 2
    for key in ("a", "b"):
        assert local.s3.get_object_tagging(Bucket=data, Key=key)["TagSet"] == [{"Key": "restored", "Value": "yes"}]


# ---- manifests ----------------------------------------------------------------------------------


def test_an_inventory_report_manifest_runs_the_objects_its_csv_files_list(local: Local) -> None:
    data, inventory, reports = local.bucket("data"), local.bucket("inventory"), local.bucket("reports")
    keys = ["inv dir/a b.txt", "plain+plus.txt", "deep.bin"]
    for key in keys:
        local.s3.put_object(Bucket=data, Key=key, Body=b"x", StorageClass="DEEP_ARCHIVE" if key == "deep.bin" else "GLACIER")
    schema = "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, StorageClass"
    files = []
    for number, chunk in enumerate((keys[:2], keys[2:])):
        text = io.StringIO()
        writer = csv.writer(text, quoting=csv.QUOTE_ALL)
        for key in chunk:
            writer.writerow([data, quote_plus(key, safe="/"), "", "true", "false", "1", "GLACIER"])
        body = gzip.compress(text.getvalue().encode())
        data_key = f"inv/{data}/config/data/{number}.csv.gz"
        local.s3.put_object(Bucket=inventory, Key=data_key, Body=body)
        files.append({"key": data_key, "size": len(body), "MD5checksum": hashlib.md5(body).hexdigest()})
    document = {
        "sourceBucket": data,
        "destinationBucket": f"arn:aws:s3:::{inventory}",
        "version": "2016-11-30",
        "creationTimestamp": "1514944800000",
        "fileFormat": "CSV",
        "fileSchema": schema,
        "files": files,
    }
    etag = local.s3.put_object(Bucket=inventory, Key="inv/manifest.json", Body=json.dumps(document).encode())["ETag"]
    manifest = {
        "Spec": {"Format": "S3InventoryReport_CSV_20161130"},
        "Location": {"ObjectArn": f"arn:aws:s3:::{inventory}/inv/manifest.json", "ETag": etag.strip('"')},
    }

    job_id = local.create(manifest, reports)
    local.batch.run_until_idle()

    job = local.describe(job_id)
    assert job["Status"] == "Complete"
    assert job["ProgressSummary"]["TotalNumberOfTasks"] == job["ProgressSummary"]["NumberOfTasksSucceeded"] == 3
    for key in keys:
        assert local.s3.head_object(Bucket=data, Key=key)["Restore"] == 'ongoing-request="true"'
    _, rows = local.report(reports, job_id)
    assert sorted(row[1] for row in rows["succeeded"]) == sorted(quote_plus(key, safe="/") for key in keys)


def test_a_versioned_manifest_restores_the_versions_it_names_and_every_row_needs_one(local: Local) -> None:
    data = local.bucket("data")
    local.s3.put_bucket_versioning(Bucket=data, VersioningConfiguration={"Status": "Enabled"})
    old = local.s3.put_object(Bucket=data, Key="doc", Body=b"old", StorageClass="GLACIER")["VersionId"]
    local.s3.put_object(Bucket=data, Key="doc", Body=b"new", StorageClass="GLACIER")
    spec = {"Format": "S3BatchOperations_CSV_20180820", "Fields": ["Bucket", "Key", "VersionId"]}
    good = {**local.manifest(data, [f"{data},doc,{old}"], "good.csv"), "Spec": spec}
    bad = {**local.manifest(data, [f"{data},doc,{old}", f"{data},doc,"], "bad.csv"), "Spec": spec}

    good_job, bad_job = local.create(good), local.create(bad)
    local.batch.run_until_idle()

    assert local.describe(good_job)["ProgressSummary"]["NumberOfTasksSucceeded"] == 1
    assert local.s3.head_object(Bucket=data, Key="doc", VersionId=old)["Restore"] == 'ongoing-request="true"'
    assert "Restore" not in local.s3.head_object(Bucket=data, Key="doc")
    job = local.describe(bad_job)
    assert job["Status"] == "Failed" and [r["FailureCode"] for r in job["FailureReasons"]] == ["InvalidManifestContent"]


def test_a_manifest_that_is_not_the_one_named_or_cannot_be_read_fails_the_job(local: Local) -> None:
    data, reports = local.bucket("data"), local.bucket("reports")
    manifest = local.manifest(data, [f"{data},a"])
    wrong_etag = {**manifest, "Location": {**manifest["Location"], "ETag": '"0123456789abcdef0123456789abcdef"'}}
    missing = {**manifest, "Location": {"ObjectArn": f"arn:aws:s3:::{data}/nothing.csv", "ETag": "abc"}}
    malformed = local.manifest(data, [f"{data},a,extra-column"], "malformed.csv")
    jobs = {name: local.create(value, reports) for name, value in (("etag", wrong_etag), ("missing", missing), ("malformed", malformed))}

    local.batch.run_until_idle()

    expected = {"etag": "InvalidManifestContent", "missing": "NoSuchKey", "malformed": "InvalidManifestContent"}
    for name, job_id in jobs.items():
        job = local.describe(job_id)
        assert job["Status"] == "Failed", name
        assert [reason["FailureCode"] for reason in job["FailureReasons"]] == [expected[name]], name
        assert job["ProgressSummary"]["TotalNumberOfTasks"] == 0
    assert "ETag" in local.describe(jobs["etag"])["FailureReasons"][0]["FailureReason"]
    # no task ran: no report
    assert local.s3.list_objects_v2(Bucket=reports).get("KeyCount") == 0


# ---- events -------------------------------------------------------------------------------------


def test_job_events_and_the_restores_events_reach_queues_through_eventbridge_rules(local: Local) -> None:
    sqs, events = local.client("sqs"), local.client("events")

    def queue_for(pattern: dict[str, Any]) -> str:
        name = f"q-{uuid.uuid4().hex[:8]}"
        url = sqs.create_queue(QueueName=name)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events.put_rule(Name=name, EventPattern=json.dumps(pattern))
        events.put_targets(Rule=name, Targets=[{"Id": "queue", "Arn": arn}])
        return url

    def drain(url: str) -> list[dict[str, Any]]:
        found = []
        while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
            for message in messages:
                found.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return found

    job_queue = queue_for(CLOUDTRAIL_PATTERN)
    restore_queue = queue_for({"source": ["aws.s3"], "detail-type": ["Object Restore Initiated", "Object Restore Completed"]})
    data = local.bucket("data")
    local.s3.put_bucket_notification_configuration(Bucket=data, NotificationConfiguration={"EventBridgeConfiguration": {}})
    local.s3.put_object(Bucket=data, Key="cold file", Body=b"x", StorageClass="GLACIER")
    job_id = local.create(local.manifest(data, [f"{data},cold%20file"]))

    local.batch.run_until_idle()
    local.restore.complete_all()

    received = drain(job_queue)
    assert [(e["detail"]["eventName"], e["detail"]["serviceEventDetails"]["status"]) for e in received] == [
        ("JobCreated", "New"),
        ("JobStatusChanged", "Preparing"),
        ("JobStatusChanged", "Ready"),
        ("JobStatusChanged", "Active"),
        ("JobStatusChanged", "Completing"),
        ("JobStatusChanged", "Complete"),
    ]
    event = received[-1]
    assert (event["source"], event["detail-type"], event["account"], event["region"]) == (
        "aws.s3",
        "AWS Service Event via CloudTrail",
        ACCOUNT,
        REGION,
    )
    assert event["time"].endswith("Z") and event["detail"]["eventSource"] == "s3.amazonaws.com"
    details = event["detail"]["serviceEventDetails"]
    assert details["jobId"] == job_id and details["jobArn"] == local.describe(job_id)["JobArn"]
    assert details["failureCodes"] == [] and details["statusChangeReason"] == [] and len(details["jobEventId"]) == 32
    assert len({e["detail"]["serviceEventDetails"]["jobEventId"] for e in received}) == len(received)
    restores = drain(restore_queue)
    assert [(e["detail-type"], e["detail"]["object"]["key"]) for e in restores] == [
        ("Object Restore Initiated", "cold file"),
        ("Object Restore Completed", "cold file"),
    ]


def test_a_failed_job_s_events_carry_its_failure_codes(local: Local) -> None:
    sqs, events = local.client("sqs"), local.client("events")
    url = sqs.create_queue(QueueName=f"q-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    rule = f"r-{uuid.uuid4().hex[:8]}"
    events.put_rule(
        Name=rule,
        EventPattern=json.dumps(
            {**CLOUDTRAIL_PATTERN, "detail": {"eventName": ["JobStatusChanged"], "serviceEventDetails": {"status": ["Failed"]}}}
        ),
    )
    events.put_targets(Rule=rule, Targets=[{"Id": "queue", "Arn": arn}])
    data = local.bucket("data")
    job_id = local.create(
        {
            "Spec": {"Format": "S3BatchOperations_CSV_20180820", "Fields": ["Bucket", "Key"]},
            "Location": {"ObjectArn": f"arn:aws:s3:::{data}/none.csv", "ETag": "x"},
        }
    )

    local.batch.run_until_idle()

    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert len(messages) == 1
    details = json.loads(messages[0]["Body"])["detail"]["serviceEventDetails"]
    assert (details["jobId"], details["status"], details["failureCodes"]) == (job_id, "Failed", ["NoSuchKey"])


# ---- cost, clients, the clock, installation ----------------------------------------------------


def test_describe_and_list_cost_the_same_whatever_the_job_s_size(local: Local) -> None:
    """Counted in Python calls made by the handler (not time): a 10-task job and a 3,000-task one."""
    data = local.bucket("data")
    keys = [f"k{n:04d}" for n in range(3000)]
    put_many(local, data, keys)
    west = local.client("s3control", region="us-west-2")
    put_many(local, data, [f"s{n}" for n in range(10)])
    small = local.create(local.manifest(data, [f"{data},s{n}" for n in range(10)], "small.csv"), control=west)
    large = local.create(local.manifest(data, [f"{data},{key}" for key in keys], "large.csv"))

    def cost(method: str, path: str, region: str) -> int:
        headers = {
            "x-amz-account-id": ACCOUNT,
            "authorization": f"AWS4-HMAC-SHA256 Credential=testing/20261203/{region}/s3/aws4_request, SignedHeaders=host, Signature=x",
        }
        calls = [0]

        def count(frame: Any, event: str, arg: Any) -> None:
            if event in ("call", "c_call"):
                calls[0] += 1

        local.batch.handle(method, path, "", headers, b"")  # botocore resolves a model shape on its first use: count warm calls
        sys.setprofile(count)
        try:
            status, _, _ = local.batch.handle(method, path, "", headers, b"")
        finally:
            sys.setprofile(None)
        assert status == 200
        return calls[0]

    def costs() -> tuple[int, int, int, int]:
        return (
            cost("GET", f"/v20180820/jobs/{small}", "us-west-2"),
            cost("GET", f"/v20180820/jobs/{large}", REGION),
            cost("GET", "/v20180820/jobs", "us-west-2"),
            cost("GET", "/v20180820/jobs", REGION),
        )

    for _ in range(3):
        local.batch.tick(max_tasks=0)
    assert local.describe(small, west)["Status"] == local.describe(large)["Status"] == "Active"
    describe_small, describe_large, list_small, list_large = costs()
    assert describe_small == describe_large and list_small == list_large

    local.batch.run_until_idle()
    assert local.describe(large)["ProgressSummary"]["NumberOfTasksSucceeded"] == 3000
    assert local.describe(small, west)["ProgressSummary"]["NumberOfTasksSucceeded"] == 10
    describe_small, describe_large, list_small, list_large = costs()
    assert describe_small == describe_large and list_small == list_large


def test_both_hosts_reach_it_through_the_endpoint_as_a_proxy_and_with_the_account_label_dropped(local: Local) -> None:
    data = local.bucket("data")
    proxied = endpoint_client("s3control", local.endpoint, config=ONE_RETRY.merge(Config(proxies={"http": local.url})))
    hosts: list[str] = []
    proxied.meta.events.register("before-send.s3-control", lambda request, **_: hosts.append(request.url))

    job_id = local.create(local.manifest(data, [f"{data},a"]), control=proxied)

    assert hosts == [f"http://{ACCOUNT}.127.0.0.1:{local.endpoint.port}/v20180820/jobs"]  # Host: the account label in front
    assert local.describe(job_id)["JobId"] == job_id  # Host: 127.0.0.1, the label dropped
    assert local.describe(job_id, proxied)["JobId"] == job_id


def test_clients_inside_mock_aws_reach_it_without_an_endpoint(aws: None) -> None:
    with S3RestoreEmulator() as restore, S3BatchEmulator(restore) as batch:
        s3, control = boto3.client("s3", region_name=REGION), boto3.client("s3control", region_name=REGION)
        s3.create_bucket(Bucket="data")
        s3.put_object(Bucket="data", Key="cold", Body=b"x", StorageClass="GLACIER")
        etag = s3.put_object(Bucket="data", Key="m.csv", Body=b"data,cold\n")["ETag"]
        job_id = control.create_job(
            AccountId=ACCOUNT,
            ConfirmationRequired=False,
            Operation={"S3InitiateRestoreObject": {"ExpirationInDays": 1}},
            Report={"Enabled": False},
            Priority=1,
            RoleArn=ROLE,
            Manifest={
                "Spec": {"Format": "S3BatchOperations_CSV_20180820", "Fields": ["Bucket", "Key"]},
                "Location": {"ObjectArn": "arn:aws:s3:::data/m.csv", "ETag": etag},
            },
        )["JobId"]

        batch.run_until_idle()

        assert control.describe_job(AccountId=ACCOUNT, JobId=job_id)["Job"]["Status"] == "Complete"
        assert s3.head_object(Bucket="data", Key="cold")["Restore"] == 'ongoing-request="true"'


def test_the_clock_runs_tasks_at_its_rate_and_times_the_active_state(local: Local) -> None:
    clock = FakeClock()
    batch = local.replace_batch(tasks_per_second=10, clock=clock)
    data = local.bucket("data")
    job_id = local.create(local.manifest(data, [f"{data},missing-{n}" for n in range(30)]))
    for _ in range(3):
        batch.tick()
    assert local.describe(job_id)["Status"] == "Active"

    def ran() -> int:
        summary = local.describe(job_id)["ProgressSummary"]
        return int(summary["NumberOfTasksSucceeded"] + summary["NumberOfTasksFailed"])

    clock.now += 0.5
    batch.tick()
    assert ran() == 5
    clock.now += 60  # a long pause earns at most one second's worth
    batch.tick()
    assert ran() == 15
    assert local.describe(job_id)["ProgressSummary"]["Timers"]["ElapsedTimeInActiveSeconds"] == 60
    clock.now += 2
    batch.tick()
    assert ran() == 25
    clock.now += 1  # the last 5 tasks, and the job moves on in the same tick
    batch.tick()
    clock.now += 100
    job = local.describe(job_id)
    assert ran() == 30 and job["Status"] == "Completing"
    assert job["ProgressSummary"]["Timers"]["ElapsedTimeInActiveSeconds"] == 63  # 63.5 s Active, then no more


def test_the_clock_thread_runs_a_job_to_its_end(local: Local) -> None:
    batch = local.replace_batch(tasks_per_second=100_000)
    data = local.bucket("data")
    put_many(local, data, ["a", "b"])
    job_id = local.create(local.manifest(data, [f"{data},a", f"{data},b"]))

    batch.start_clock(interval=0.005)
    try:
        deadline = time.monotonic() + 20
        while local.describe(job_id)["Status"] != "Complete":
            assert time.monotonic() < deadline, local.describe(job_id)["Status"]
            time.sleep(0.01)  # polling an outcome, not racing it
    finally:
        batch.stop_clock()
    assert local.describe(job_id)["ProgressSummary"]["NumberOfTasksSucceeded"] == 2


def test_install_is_idempotent_one_at_a_time_and_uninstall_gives_moto_back(local: Local) -> None:
    assert local.batch.install() is local.batch and local.batch.installed
    with pytest.raises(RuntimeError):
        S3BatchEmulator(local.restore).install()
    control = local.control

    local.batch.uninstall()
    local.batch.uninstall()
    status, _, _ = error_of(lambda: control.list_jobs(AccountId=ACCOUNT))
    assert status == 404  # moto's own s3control: no jobs routes

    local.batch.install()
    assert control.list_jobs(AccountId=ACCOUNT)["Jobs"] == []
