"""The create-job contract, through the API function with API Gateway proxy events: idempotency
keys bound to their request, the fields a client of the S3 Glacier Bulk Retrieval sample reads,
unknown fields ignored with a warning, manifest header rows, and ids that cannot be jobs."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import pytest

from bulk_restore.domain.model import ObjectId
from support.api import call_api
from support.faults import CallTracer
from support.ledger import JobLedger, assert_accounting, scan_table
from support.stack import DATA_BUCKET, MANIFEST_BUCKET, Stack, manifest_row, reset_caches
from test_handlers import archived, assert_error, list_all, plan_messages

OTHER_MANIFEST_BUCKET = "manifests-other-bkt"


@pytest.fixture
def stack_settings() -> dict[str, object]:
    """A second manifest bucket (the ManifestBuckets parameter), so that a job's manifest bucket can differ."""
    return {"MANIFEST_BUCKETS": f"{MANIFEST_BUCKET},{OTHER_MANIFEST_BUCKET}"}


def jobs_in_table(stack: Stack) -> list[str]:
    return [i["job_id"] for i in scan_table(stack) if i["sk"] == "META"]


def manifest(stack: Stack, key: str = "manifest.csv") -> dict[str, str]:
    bucket, key = stack.put_manifest(archived(stack, "a.bin"), key=key)
    return {"bucket": bucket, "key": key}


# ---- 1. an idempotency key is bound to its request ------------------------------------------------

# field -> (the first request's value, another value); None: the field is left out
CHANGES: dict[str, tuple[Any, Any]] = {
    "bucket": (MANIFEST_BUCKET, OTHER_MANIFEST_BUCKET),
    "key": ("manifest.csv", "other.csv"),
    "tier": ("STANDARD", "BULK"),
    "expiration_days": (None, 7),
    "client_tag": ("finance", "legal"),
    "progress_step_percent": (None, 25),
    "expedited_fallback": (False, True),
    "deadline_hours": (None, 12.5),
    "keep_restored_days": (0, 3),
}


def body_with(**fields: Any) -> dict[str, Any]:
    doc = {"bucket": MANIFEST_BUCKET, "key": "manifest.csv", **fields}
    return {k: v for k, v in doc.items() if v is not None}


@pytest.fixture
def manifests(stack: Stack) -> Stack:
    """The same manifest under two keys and in two buckets."""
    rows = archived(stack, "a.bin")
    stack.put_manifest(rows, key="manifest.csv")
    stack.put_manifest(rows, key="other.csv")
    stack.s3.create_bucket(Bucket=OTHER_MANIFEST_BUCKET)
    stack.s3.put_object(Bucket=OTHER_MANIFEST_BUCKET, Key="manifest.csv", Body=f"{manifest_row(rows[0])}\n".encode())
    return stack


@pytest.mark.parametrize("how", ["header", "client_token"])
@pytest.mark.parametrize("field", sorted(CHANGES))
def test_an_idempotency_key_reused_with_another_request_is_a_409_naming_the_field_that_differs(
    manifests: Stack, field: str, how: str
) -> None:
    # Given a job made with an idempotency key
    before, after = CHANGES[field]
    headers = {"Idempotency-Key": "order-4711"} if how == "header" else None
    token = {"client_token": "order-4711"} if how == "client_token" else {}
    first = manifests.create_job(**body_with(**{field: before}, **token), headers=headers)
    # When the key comes again with another value of one field (as if a client reused a key for another job)
    reset_caches()  # another Lambda environment: what is compared must come from the table
    status, answer = call_api("POST", "/create-job", body_with(**{field: after}, **token), headers)
    # Then the answer is a 409 naming that field, both values and the job the key made
    error = assert_error(status, answer, 409, "IdempotencyKeyMismatch", field, first["BulkJobId"], "new Idempotency-Key")
    assert error["details"]["JobId"] == first["BulkJobId"]
    assert [d["field"] for d in error["details"]["differences"]] == [field]
    # And no second job was made, nor a second planning step queued
    assert jobs_in_table(manifests) == [first["BulkJobId"]]
    assert plan_messages(manifests) == [{"job_id": first["BulkJobId"], "step": 0}]


def test_every_field_that_differs_is_named(manifests: Stack) -> None:
    headers = {"Idempotency-Key": "order-4711"}
    first = manifests.create_job(**body_with(tier="BULK", client_tag="finance"), headers=headers)
    status, answer = call_api("POST", "/create-job", body_with(key="other.csv", tier="STANDARD", expiration_days=3), headers)
    error = assert_error(status, answer, 409, "IdempotencyKeyMismatch", "key", "tier", "expiration_days", "client_tag")
    differences = {d["field"]: (d["job"], d["request"]) for d in error["details"]["differences"]}
    assert differences == {
        "key": ("manifest.csv", "other.csv"),
        "tier": ("BULK", "STANDARD"),
        "expiration_days": (1, 3),
        "client_tag": ("finance", ""),
    }
    assert error["details"]["JobId"] == first["BulkJobId"]


def test_a_repeat_of_the_same_request_in_other_spellings_returns_the_same_job(manifests: Stack) -> None:
    # Given a job made with a key; When the request comes again with the tier in another case, the
    # defaults spelled out, the same fields in another order, and a field the API ignores
    headers = {"Idempotency-Key": "order-4711"}
    first = manifests.create_job(**body_with(tier="bulk"), headers=headers)
    status, again = call_api(
        "POST",
        "/create-job",
        {
            "keep_restored_days": 0,
            "expiration_days": 1,
            "tier": "BULK",
            "key": "manifest.csv",
            "bucket": MANIFEST_BUCKET,
            "colour": "red",
            "expedited_fallback": False,
            "client_tag": "",
        },
        headers,
    )
    # Then it is the same job (200, not created)
    assert status == 200, again
    assert (again["BulkJobId"], again["Created"]) == (first["BulkJobId"], False)


def test_a_job_made_with_both_the_header_and_a_client_token_is_found_by_either(manifests: Stack) -> None:
    # Given a job made with both an Idempotency-Key header and a client_token
    first = manifests.create_job(**body_with(client_token="body-token"), headers={"Idempotency-Key": "header-key"})
    # When later requests carry only the header, or only the client_token
    reset_caches()
    by_header = manifests.create_job(**body_with(), headers={"Idempotency-Key": "header-key"})
    by_token = manifests.create_job(**body_with(client_token="body-token"))
    # Then each finds that job
    assert by_header["BulkJobId"] == by_token["BulkJobId"] == first["BulkJobId"]
    assert (first["Created"], by_header["Created"], by_token["Created"]) == (True, False, False)
    assert jobs_in_table(manifests) == [first["BulkJobId"]]
    # And another body under either is refused
    for headers, token in (({"Idempotency-Key": "header-key"}, {}), (None, {"client_token": "body-token"})):
        status, answer = call_api("POST", "/create-job", body_with(tier="BULK", **token), headers)
        assert_error(status, answer, 409, "IdempotencyKeyMismatch", "tier")


def test_a_header_and_a_client_token_naming_two_jobs_are_a_409(manifests: Stack) -> None:
    one = manifests.create_job(**body_with(), headers={"Idempotency-Key": "key-one"})
    two = manifests.create_job(**body_with(client_token="key-two"))
    status, answer = call_api("POST", "/create-job", body_with(client_token="key-two"), {"Idempotency-Key": "key-one"})
    error = assert_error(status, answer, 409, "IdempotencyKeyMismatch", one["BulkJobId"], two["BulkJobId"])
    assert {error["details"]["JobId"], error["details"]["OtherJobId"]} == {one["BulkJobId"], two["BulkJobId"]}
    assert sorted(jobs_in_table(manifests)) == sorted([one["BulkJobId"], two["BulkJobId"]])


def test_a_new_token_sent_with_a_known_one_is_bound_to_that_job_too(manifests: Stack) -> None:
    first = manifests.create_job(**body_with(), headers={"Idempotency-Key": "header-key"})
    again = manifests.create_job(**body_with(client_token="added-later"), headers={"Idempotency-Key": "header-key"})
    later = manifests.create_job(**body_with(client_token="added-later"))
    assert again["BulkJobId"] == later["BulkJobId"] == first["BulkJobId"]
    assert jobs_in_table(manifests) == [first["BulkJobId"]]


def test_two_racing_creates_with_one_key_and_different_bodies_give_one_job_and_a_409(
    manifests: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a job made with a key, and a second create that looked the key up before the first stored it
    headers = {"Idempotency-Key": "order-4711"}
    first = manifests.create_job(**body_with(), headers=headers)
    store = manifests.services().store
    lookups: list[str] = []
    owner = store.idempotency_key_owner

    def missed_once(key: str) -> str | None:
        lookups.append(key)
        return None if len(lookups) == 1 else owner(key)

    monkeypatch.setattr(store, "idempotency_key_owner", missed_once)
    tracer = CallTracer().install(manifests.services())
    # When that second create, with another tier, comes to store its job
    status, answer = call_api("POST", "/create-job", body_with(tier="BULK"), headers)
    # Then the key's condition stops its transaction, and it answers 409 naming the tier
    assert tracer.count("dynamodb.TransactWriteItems") == 1 and len(lookups) >= 2
    assert_error(status, answer, 409, "IdempotencyKeyMismatch", "tier")
    # And the first job is the only one, with the only planning step
    assert jobs_in_table(manifests) == [first["BulkJobId"]]
    assert plan_messages(manifests) == [{"job_id": first["BulkJobId"], "step": 0}]


# ---- 2. ids and tokens that cannot be right ------------------------------------------------------


@pytest.mark.parametrize("job_id", ["a#b", "\N{SLIGHTLY SMILING FACE}", "%C0%AF", "\ufffd\ufffd", "job-1"])
@pytest.mark.parametrize(("method", "path"), [("GET", "/jobs/{}"), ("GET", "/jobs/{}/objects"), ("POST", "/jobs/{}/cancel")])
def test_an_id_that_is_no_uuid_is_a_job_not_found_without_asking_dynamodb(stack: Stack, job_id: str, method: str, path: str) -> None:
    tracer = CallTracer().install(stack.services())
    assert_error(*call_api(method, path.format(job_id)), 404, "JobNotFound", "UUID")
    assert [c.operation for c in tracer.calls if c.operation.startswith("dynamodb.")] == []


def test_a_next_token_pointing_into_another_shard_is_a_400(stack: Stack) -> None:
    job_id = stack.create_job(**manifest(stack))["BulkJobId"]
    stack.settle()
    doc = {"s": 0, "k": {"pk": f"JOB#{job_id}#O#05", "sk": "0" * 32}}
    token = base64.urlsafe_b64encode(json.dumps(doc).encode()).decode()
    assert_error(*call_api("GET", f"/jobs/{job_id}/objects", query={"next_token": token}), 400, "InvalidRequest", "next_token")


# ---- 4. what a client of the sample reads ---------------------------------------------------------


def test_create_job_answers_with_the_sample_s_queue_report_bucket_and_file_count(stack: Stack) -> None:
    # Given a small manifest of 3 objects, one of them twice, a bad line and blank lines
    rows = archived(stack, "a.bin", "b.bin", "c.bin")
    bucket, key = stack.put_manifest(
        [manifest_row(rows[0]), "", manifest_row(rows[1]), manifest_row(rows[0]), "Bad_Bucket,x", manifest_row(rows[2])]
    )
    # When a client of the sample creates a job
    status, answer = call_api(
        "POST", "/create-job", {"bucket": bucket, "key": key, "tier": "STANDARD", "expiration_days": 1, "client_tag": "client_tag"}
    )
    # Then it gets the queue subscribed to the topic, the report bucket and the number of objects
    assert status == 200, answer
    assert answer["SQSQueue"] == stack.queue_arn(stack.events_queue_url)
    assert answer["ReportBucket"] == stack.report_bucket
    assert answer["TotalFilesRequested"] == 4  # 3 objects (a duplicate counts once) and the bad line
    assert answer["SNSTopic"] == stack.topic_arn and uuid.UUID(answer["BulkJobId"])
    # And that count is the job's total once it has run
    stack.settle()
    assert call_api("GET", f"/jobs/{answer['BulkJobId']}")[1]["Counts"]["Total"] == 4


def test_the_file_count_is_null_when_the_manifest_is_too_large_to_count_at_once(stack: Stack) -> None:
    rows = [ObjectId(DATA_BUCKET, f"photos/{i:06d}.jpg") for i in range(4000)]  # about 130 KiB
    bucket, key = stack.put_manifest(rows)
    status, answer = call_api("POST", "/create-job", {"bucket": bucket, "key": key})
    assert status == 200, answer
    assert answer["TotalFilesRequested"] is None


@pytest.mark.parametrize(
    ("unknown", "words"),
    [
        ({"expiration_day": 5}, ("expiration_day", "did you mean expiration_days?")),
        ({"Bucket": "x", "teir": "BULK"}, ("Bucket", "did you mean bucket?", "teir", "did you mean tier?")),
        ({"colour": "red"}, ("colour",)),
        ({"client_tags": ["a", {"b": 1}]}, ("client_tags", "did you mean client_tag?")),
    ],
)
def test_unknown_fields_are_ignored_with_a_warning_naming_the_nearest_known_field(
    stack: Stack, unknown: dict[str, Any], words: tuple[str, ...]
) -> None:
    status, answer = call_api("POST", "/create-job", {**manifest(stack), **unknown})
    assert status == 200, answer
    assert len(answer["Warnings"]) == len(unknown)
    text = " ".join(answer["Warnings"])
    for word in words:
        assert word in text, answer["Warnings"]
    if unknown == {"colour": "red"}:
        assert "did you mean" not in text
    job = call_api("GET", f"/jobs/{answer['BulkJobId']}")[1]
    assert (job["ExpirationDays"], job["Tier"]) == (1, "STANDARD")  # the defaults: the unknown fields changed nothing


def test_a_request_with_only_known_fields_has_no_warnings(stack: Stack) -> None:
    status, answer = call_api("POST", "/create-job", manifest(stack))
    assert (status, answer["Warnings"]) == (200, [])


@pytest.mark.parametrize(
    "header", ["bucket,key", "Bucket,Key", '"bucket","key"', "BUCKET,KEY,VERSIONID", "bucket,key,version_id", "Bucket, Key"]
)
def test_a_header_row_on_line_1_is_skipped_with_a_note(stack: Stack, header: str) -> None:
    # Given a manifest whose first line names the columns
    versioned = "version" in header.lower()
    if versioned:
        stack.enable_versioning(DATA_BUCKET)
    rows = [ObjectId(DATA_BUCKET, k, stack.put_archived(k)) for k in ("a.bin", "b.bin")]
    bucket, key = stack.put_manifest([header, *rows])
    # When a job runs it
    created = stack.create_job(bucket, key)
    stack.settle()
    # Then the header is no object (no FAILED NoSuchBucket), only a note on the job; the rows are restored
    assert created["TotalFilesRequested"] == 2
    job_id = created["BulkJobId"]
    _status, job = call_api("GET", f"/jobs/{job_id}")
    assert (job["Status"], job["Counts"]["Total"], job["FailedBatchFiles"]) == ("Complete", 2, 0)
    assert job["Notes"] == [f"manifest line 1 is a header ({header}): skipped"]
    assert list_all(job_id, state="FAILED")[0] == []
    assert_accounting(JobLedger.read(stack, job_id), rows)


def test_header_words_after_line_1_are_an_object_row(stack: Stack) -> None:
    # Given a manifest whose header words come on line 2 ("bucket" is a valid bucket name, "Bucket" is not)
    (obj,) = archived(stack, "a.bin")
    bucket, key = stack.put_manifest([obj, "Bucket,Key", "bucket,key"])
    job_id = stack.create_job(bucket, key)["BulkJobId"]
    stack.settle()
    # Then they are rows like any other: the first a bad line, the second an object of bucket "bucket"
    failed = {o["ManifestLine"]: o for o in list_all(job_id, state="FAILED")[0]}
    assert sorted(failed) == [2, 3]
    assert "bucket name" in failed[2]["Reason"]
    assert (failed[3]["Bucket"], failed[3]["Key"]) == ("bucket", "key")
    assert call_api("GET", f"/jobs/{job_id}")[1]["Notes"] == []
