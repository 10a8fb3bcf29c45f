"""`bulk-restore local` and `bulk-restore demo`, driven from outside over HTTP, as a user would."""

from __future__ import annotations

import io
import json
import re
import signal
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote

import boto3
import pytest
import requests

from support.cli import clean_env, command, start_local

pytestmark = pytest.mark.e2e

RESTORE_SECONDS = "1"


class RunningStack:
    def __init__(self, tmp: Path, *extra: str):
        self.ready_file = tmp / f"ready-{uuid.uuid4().hex[:6]}.json"
        self.log_path = tmp / f"stack-{uuid.uuid4().hex[:6]}.log"
        self.process, self.info = start_local(
            self.ready_file, self.log_path, "--restore-seconds", RESTORE_SECONDS, *extra, stdout=subprocess.PIPE
        )

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def client(self, service: str):
        return boto3.client(
            service,
            endpoint_url=self.info["aws_endpoint_url"],
            region_name=self.info["region"],
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    stack = RunningStack(tmp_path_factory.mktemp("local"))
    yield stack
    stack.stop()


@pytest.fixture(scope="module")
def api(local):
    session = requests.Session()
    session.headers["x-api-key"] = local.info["api_key"]
    base = local.info["api_url"]

    class Api:
        url = base

        @staticmethod
        def get(path, **kwargs):
            return session.get(base + path, timeout=30, **kwargs)

        @staticmethod
        def post(path, **kwargs):
            return session.post(base + path, timeout=30, **kwargs)

    return Api


@pytest.fixture(scope="module")
def archive(local):
    """A bucket with objects of each archive class, one STANDARD object and a manifest that also names a missing key."""
    s3 = local.client("s3")
    bucket = f"e2e-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    objects = {
        "glacier/a b+c.txt": ("GLACIER", {}),
        "glacier/100% «ünïcode» 日本.txt": ("GLACIER", {}),
        "deep/one,two.csv": ("DEEP_ARCHIVE", {}),
        'deep/"quoted".bin': ("DEEP_ARCHIVE", {}),
        "it/archive access.txt": ("INTELLIGENT_TIERING", {"archive-status": "ARCHIVE_ACCESS"}),
        "it/deep archive access.txt": ("INTELLIGENT_TIERING", {"archive-status": "DEEP_ARCHIVE_ACCESS"}),
        "standard/readable.txt": ("STANDARD", {}),
    }
    for key, (storage_class, metadata) in objects.items():
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode(), StorageClass=storage_class, Metadata=metadata)
    keys = [*objects, "missing/not there.txt"]
    manifest = f"{bucket}/manifest.csv"  # in the stack's manifest bucket: manifests are read from nowhere else
    s3.put_object(
        Bucket=local.info["manifest_bucket"], Key=manifest, Body="".join(f"{bucket},{quote(k, safe='/')}\r\n" for k in keys).encode()
    )
    return {"bucket": bucket, "keys": keys, "manifest": {"bucket": local.info["manifest_bucket"], "key": manifest}}


def read_events(local, job_id, until_terminal=True, timeout=60.0, linger=0.0):
    """The job's events from the JobEventsQueue, until its terminal one (and ``linger`` s more).

    The queue gets the SNS envelope, as the sample's does: the event is json.loads(json.loads(body)["Message"])."""
    sqs = local.client("sqs")
    url = local.info["events_queue_url"]
    events, deadline, stop_at = [], time.monotonic() + timeout, None
    while time.monotonic() < (stop_at or deadline):
        for message in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", []):
            envelope = json.loads(message["Body"])
            assert (envelope["Type"], envelope["TopicArn"]) == ("Notification", local.info["topic_arn"]), envelope
            body = json.loads(envelope["Message"])
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            if body.get("JobId") == job_id:
                events.append(body)
                if until_terminal and body["EventType"] == "JobFinished" and stop_at is None:
                    stop_at = time.monotonic() + linger
    return events


# ---- the API ------------------------------------------------------------------------------------


def error_of(response, status, code, *words):
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}, body
    assert body["error"]["code"] == code, body
    for word in words:
        assert word in body["error"]["message"], body["error"]["message"]
    return body["error"]


def test_the_api_wants_the_key_and_api_gateway_s_answers_have_the_api_error_shape(local):
    url, key = local.info["api_url"], {"x-api-key": local.info["api_key"]}

    error_of(requests.post(url + "/create-job", json={}), 403, "MissingOrInvalidApiKey", "x-api-key")
    error_of(requests.post(url + "/create-job", json={}, headers={"x-api-key": "wrong"}), 403, "MissingOrInvalidApiKey")
    error_of(requests.get(url + "/no/such/route", headers=key), 404, "NotFound", "no such route")
    error_of(requests.delete(url + "/jobs/x", headers=key), 404, "NotFound", "no such route")
    error_of(requests.post(url + "/create-job", data=b"x" * (10 * 1024 * 1024 + 1), headers=key), 413, "RequestTooLarge", "manifest")


def test_requests_beyond_the_key_s_burst_are_throttled_in_the_api_error_shape(api):
    # The template's usage plan: 20 a second, bursts of 40 (ids that are no UUIDs cost no DynamoDB call)
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda i: api.get(f"/jobs/burst-{i}"), range(120)))
    try:
        throttled = [a for a in answers if a.status_code == 429]
        assert throttled, [a.status_code for a in answers]
        error_of(throttled[0], 429, "Throttled", "backoff")
        assert {a.status_code for a in answers} == {404, 429}
    finally:
        time.sleep(2.5)  # let the key's bucket fill again for the other tests


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "code", "words"),
    [
        (
            "POST",
            "/create-job",
            {"data": '{"bucket": "b-1", "key": "m.csv", "expiration_days": ' + "9" * 5000 + "}"},
            400,
            "InvalidRequest",
            ("4300 digits", "expiration_days"),
        ),
        ("POST", "/create-job", {"data": b'{"bucket": "b-1", "key": "caf\xe9.csv"}'}, 400, "InvalidRequest", ("UTF-8",)),
        ("GET", "/jobs/{job}/objects?limit=%C2%B2", {}, 400, "InvalidRequest", ("limit",)),
        ("GET", "/jobs/{job}/objects?next_token=eyJzIjogSW5maW5pdHl9", {}, 400, "InvalidRequest", ("next_token",)),  # {"s": Infinity}
        *(
            ("GET", f"/jobs/{job_id}{suffix}", {}, 404, "JobNotFound", ("UUID",))
            for job_id in ("%23", "a%23b", "%F0%9F%99%82", "%C0%AF")
            for suffix in ("", "/objects")
        ),
        *(("POST", f"/jobs/{job_id}/cancel", {}, 404, "JobNotFound", ("UUID",)) for job_id in ("a%23b", "%F0%9F%99%82", "%C0%AF")),
    ],
)
def test_client_mistakes_are_4xx_that_say_what_to_fix(api, small_job, method, path, kwargs, status, code, words):
    path = path.replace("{job}", small_job)
    response = api.post(path, **kwargs) if method == "POST" else api.get(path, **kwargs)

    error_of(response, status, code, *words)


def small_manifest(local):
    """A manifest, with a header row, of one object that needs no restore: its jobs end at once."""
    s3, bucket = local.client("s3"), f"e2e-small-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="readable.txt", Body=b"x")
    key = f"{bucket}/m.csv"
    s3.put_object(Bucket=local.info["manifest_bucket"], Key=key, Body=f"Bucket,Key\r\n{bucket},readable.txt\r\n".encode())
    return local.info["manifest_bucket"], key


@pytest.fixture(scope="module")
def small_job(local, api):
    bucket, key = small_manifest(local)
    created = api.post("/create-job", json={"bucket": bucket, "key": key})
    assert created.status_code == 200, created.text
    return created.json()["BulkJobId"]


def test_an_idempotency_key_reused_for_another_job_is_a_409(local, api):
    bucket, key = small_manifest(local)
    request = {"bucket": bucket, "key": key, "tier": "BULK"}
    idempotency = {"Idempotency-Key": f"e2e-{uuid.uuid4()}"}
    first = api.post("/create-job", json=request, headers=idempotency)
    assert first.status_code == 200, first.text

    again = api.post("/create-job", json={**request, "tier": "STANDARD", "expiration_days": 2}, headers=idempotency)

    error = error_of(again, 409, "IdempotencyKeyMismatch", "tier", "expiration_days", first.json()["BulkJobId"])
    assert sorted(d["field"] for d in error["details"]["differences"]) == ["expiration_days", "tier"]
    # and the job, its manifest starting with a header row, says it skipped it
    assert first.json()["TotalFilesRequested"] == 1
    assert api.get(f"/jobs/{first.json()['BulkJobId']}").json()["Notes"] == ["manifest line 1 is a header (Bucket,Key): skipped"]


def test_a_missing_manifest_is_422(api, archive):
    response = api.post("/create-job", json={"bucket": archive["manifest"]["bucket"], "key": "no-such-manifest.csv"})

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "ManifestUnreadable"


def test_a_manifest_outside_the_manifest_bucket_is_never_read_nor_listed(local, api, archive):
    # Given a private file the functions could read, in a bucket of the account (not a manifest at all)
    s3 = local.client("s3")
    s3.put_object(Bucket=archive["bucket"], Key="hr-private/payroll/salaries.csv", Body=b"alice,120000\nbob,95000\n")
    # When a client names it as a manifest
    response = api.post("/create-job", json={"bucket": archive["bucket"], "key": "hr-private/payroll/salaries.csv"})
    # Then 403, saying where manifests go, and quoting nothing of the file
    assert response.status_code == 403, response.text
    error = response.json()["error"]
    assert error["code"] == "ManifestLocationNotAllowed"
    assert f"s3://{local.info['manifest_bucket']}/" in error["message"]
    assert "alice" not in response.text and "120000" not in response.text
    # And no job was made of it
    jobs = local.client("dynamodb").scan(
        TableName=local.info["table_name"],
        FilterExpression="sk = :m AND manifest.#k = :key",
        ExpressionAttributeNames={"#k": "key"},
        ExpressionAttributeValues={":m": {"S": "META"}, ":key": {"S": "hr-private/payroll/salaries.csv"}},
    )
    assert jobs["Items"] == []


def test_a_job_runs_to_one_complete_event(local, api, archive):
    # The sample's request, with a misspelt field a client of ours might send
    request = {**archive["manifest"], "tier": "STANDARD", "expiration_days": 1, "client_tag": "e2e", "expiration_day": 1}
    idempotency = {"Idempotency-Key": f"e2e-{uuid.uuid4()}"}

    first = api.post("/create-job", json=request, headers=idempotency)
    again = api.post("/create-job", json=request, headers=idempotency)

    assert first.status_code == 200, first.text
    job = first.json()
    assert again.status_code == 200 and again.json()["BulkJobId"] == job["BulkJobId"]
    assert (job["Created"], again.json()["Created"]) == (True, False)
    assert job["SNSTopic"] == local.info["topic_arn"]
    assert job["StatusUrl"] == f"{local.info['api_url']}/jobs/{job['JobId']}"
    # What a client of the sample reads: the queue subscribed to the topic, the report bucket, the object count
    queue_arn = local.client("sqs").get_queue_attributes(QueueUrl=local.info["events_queue_url"], AttributeNames=["QueueArn"])
    assert job["SQSQueue"] == queue_arn["Attributes"]["QueueArn"]
    local.client("s3").head_bucket(Bucket=job["ReportBucket"])
    assert job["TotalFilesRequested"] == len(archive["keys"]) == 8
    assert job["Warnings"] == ["unknown field 'expiration_day' ignored: did you mean expiration_days?"]
    ddb = local.client("dynamodb")
    jobs = ddb.scan(
        TableName=local.info["table_name"],
        FilterExpression="sk = :m AND manifest.#k = :key AND manifest.#b = :b",
        ExpressionAttributeNames={"#k": "key", "#b": "bucket"},
        ExpressionAttributeValues={
            ":m": {"S": "META"},
            ":key": {"S": archive["manifest"]["key"]},
            ":b": {"S": archive["manifest"]["bucket"]},
        },
    )["Items"]
    assert len(jobs) == 1

    events = read_events(local, job["JobId"], linger=2.0)

    finished = [e for e in events if e["EventType"] == "JobFinished"]
    assert len(finished) == 1, events
    [terminal] = finished
    steps = [e for e in events if e["EventType"] == "JobProgress"]
    assert steps, "at least one progress step before the end"
    assert all(e["Status"] == "Restoring" and int(e["ProgressPercent"]) < 100 for e in steps)
    assert events[-1] is terminal
    for event in events:
        for name in ("JobId", "BatchJobId", "Status", "ProgressPercent", "FailedBatchFiles"):
            assert isinstance(event[name], str), (name, event)
    assert (terminal["JobId"], terminal["BatchJobId"]) == (job["JobId"], job["JobId"])
    assert (terminal["Status"], terminal["ProgressPercent"], terminal["FailedBatchFiles"]) == ("Complete", "100", "1")

    status = api.get(f"/jobs/{job['JobId']}").json()
    assert status["Status"] == "Complete" and status["BulkJobId"] == job["JobId"]
    assert status["ProgressPercent"] == 100
    assert {k: status["Counts"][k] for k in ("Total", "Restoring", "Restored", "Skipped", "Failed")} == {
        "Total": 8,
        "Restoring": 0,
        "Restored": 6,
        "Skipped": 1,
        "Failed": 1,
    }
    assert status["FailedBatchFiles"] == 1
    assert status["Manifest"]["Bucket"] == archive["manifest"]["bucket"] and status["SNSTopic"] == local.info["topic_arn"]
    assert status["FinishedAt"]

    failed = api.get(f"/jobs/{job['JobId']}/objects", params={"state": "FAILED"}).json()["Objects"]
    assert [(o["Key"], o["State"]) for o in failed] == [("missing/not there.txt", "FAILED")]
    assert "NoSuchKey" in failed[0]["Reason"]
    skipped = api.get(f"/jobs/{job['JobId']}/objects", params={"state": "skipped"}).json()["Objects"]
    assert [o["Key"] for o in skipped] == ["standard/readable.txt"]

    listed, token, pages = [], None, 0
    while True:
        page = api.get(f"/jobs/{job['JobId']}/objects", params={"limit": 3, **({"next_token": token} if token else {})}).json()
        assert len(page["Objects"]) <= 3
        listed += page["Objects"]
        pages += 1
        token = page["NextToken"]
        if not token:
            break
    assert pages >= 3
    assert sorted(o["Key"] for o in listed) == sorted(archive["keys"])

    restored = local.client("s3").get_object(Bucket=archive["bucket"], Key="glacier/a b+c.txt")["Body"].read()
    assert restored == b"glacier/a b+c.txt"


# ---- the process ------------------------------------------------------------------------------------


def test_the_stack_prints_one_ready_line_and_stops_on_sigterm(tmp_path):
    stack = RunningStack(tmp_path)
    try:
        info = stack.info
        assert {
            "api_url",
            "api_key",
            "aws_endpoint_url",
            "region",
            "topic_arn",
            "events_queue_url",
            "table_name",
            "manifest_bucket",
        } <= set(info)
        line = stack.process.stdout.readline()
        assert json.loads(line) == info
        stack.process.send_signal(signal.SIGTERM)
        started = time.monotonic()
        code = stack.process.wait(10)
        assert code == 0
        assert time.monotonic() - started < 5
        assert stack.process.stdout.read() == b""  # nothing but the ready line on stdout
    finally:
        stack.stop()


def test_the_demo_restores_a_bulk_job_and_says_so():
    result = subprocess.run(
        command("demo", "--objects", "14", "--restore-seconds", "1", "--timeout", "60"),
        capture_output=True,
        text=True,
        timeout=120,
        env=clean_env(),
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "RESULT: OK" in result.stdout
    assert "Complete" in result.stdout
    assert "counts:   Total 16, Restoring 0, Restored 14, Skipped 1, Failed 1" in result.stdout
    assert "FAILED  'missing/never uploaded ✗.txt'" in result.stdout
    assert "local stack stopped (exit 0)" in result.stdout


def test_the_demo_with_the_batch_engine_runs_its_restores_as_s3_batch_operations_jobs():
    result = subprocess.run(
        command("demo", "--engine", "batch", "--objects", "12", "--restore-seconds", "1", "--timeout", "90"),
        capture_output=True,
        text=True,
        timeout=150,
        env=clean_env(),
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "engine batch" in result.stdout and "RESULT: OK" in result.stdout
    assert "counts:   Total 14, Restoring 0, Restored 12, Skipped 1, Failed 1" in result.stdout
    # Glacier and Intelligent-Tiering archive objects cannot share one Batch job: two, both Complete
    assert re.search(r"S3 Batch Operations job [0-9a-f-]{36} \(archive\): Complete", result.stdout), result.stdout
    assert re.search(r"S3 Batch Operations job [0-9a-f-]{36} \(intelligent-tiering\): Complete", result.stdout), result.stdout
    assert "NoSuchKey: no such key in the bucket" in result.stdout  # found by its HeadObject: never a Batch task


def test_the_vault_demo_moves_a_vault_into_a_bucket_over_the_api_and_reads_every_archive_back():
    # Archives uploaded with a plain boto3 glacier client to the local endpoint, one create-job over HTTP
    result = subprocess.run(
        command("demo", "--vault", "--restore-seconds", "1", "--timeout", "90"),
        capture_output=True,
        text=True,
        timeout=150,
        env=clean_env(),
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "RESULT: OK" in result.stdout
    assert "all 6 archives read back byte for byte, tree hashes in their metadata" in result.stdout
    assert re.search(r"Complete in [\d.]+ s, 48,538,601 bytes moved", result.stdout), result.stdout
    assert "the archive is not in the vault" in result.stdout  # the made-up id: FAILED, saying why


def test_a_vault_uploaded_with_boto3_s_glacier_client_to_the_local_stack_is_retrievable(local):
    from botocore.utils import calculate_tree_hash

    glacier = local.client("glacier")
    glacier.create_vault(vaultName="old-backups")
    body = b"tape image " * 300_000  # over 3 MiB: a tree of several leaves
    archive = glacier.upload_archive(
        vaultName="old-backups",
        body=body,
        archiveDescription="<m><v>4</v><p>ZGlyL2EudHh0</p></m>",
        checksum=calculate_tree_hash(io.BytesIO(body)),
    )
    job = glacier.initiate_job(
        vaultName="old-backups", jobParameters={"Type": "archive-retrieval", "ArchiveId": archive["archiveId"], "Tier": "Expedited"}
    )
    deadline = time.monotonic() + 60
    while glacier.describe_job(vaultName="old-backups", jobId=job["jobId"])["StatusCode"] != "Succeeded":
        assert time.monotonic() < deadline, "the retrieval job did not complete"
        time.sleep(0.5)
    whole = glacier.get_job_output(vaultName="old-backups", jobId=job["jobId"])
    assert whole["body"].read() == body and whole["checksum"] == calculate_tree_hash(io.BytesIO(body))
    part = glacier.get_job_output(vaultName="old-backups", jobId=job["jobId"], range="bytes=0-1048575")
    assert part["status"] == 206 and part["body"].read() == body[:1048576]
