"""The Lambda handlers on moto: the API through API Gateway proxy events, and the whole pipeline
(planner -> restorer -> completion) through SQS event sources, as a deployed stack runs them."""

from __future__ import annotations

import json
import math
import uuid
from typing import Any

import pytest

from bulk_restore.domain.model import ObjectId
from bulk_restore_cli.local import s3_restore
from bulk_restore_cli.local.lambda_runtime import LambdaContext
from support import samples
from support.api import call_api
from support.faults import CallTracer
from support.ledger import JobLedger, assert_accounting, assert_one_terminal_event, scan_table
from support.stack import DATA_BUCKET, MANIFEST_BUCKET, Stack, open_stack

SEED_FIELDS = ("JobId", "BatchJobId", "Status", "ProgressPercent", "FailedBatchFiles")


def archived(stack: Stack, *keys: str, storage_class: str = "GLACIER") -> list[ObjectId]:
    for key in keys:
        stack.put_archived(key, storage_class=storage_class)
    return [ObjectId(DATA_BUCKET, key) for key in keys]


def run(stack: Stack, rows: list[ObjectId | str], **fields: Any) -> str:
    """Create a job over the rows and run the stack until quiet. Returns the job id."""
    bucket, key = stack.put_manifest(rows)
    job_id = stack.create_job(bucket, key, **fields)["BulkJobId"]
    stack.settle()
    return job_id


def assert_error(status: int, body: dict[str, Any], expected_status: int, code: str, *words: str) -> dict[str, Any]:
    assert status == expected_status, body
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}, body
    assert body["error"]["code"] == code, body
    for word in words:
        assert word in body["error"]["message"], body["error"]["message"]
    return body["error"]


def plan_messages(stack: Stack) -> list[dict[str, Any]]:
    got = stack.sqs.receive_message(QueueUrl=stack.plan_queue_url, MaxNumberOfMessages=10, VisibilityTimeout=0).get("Messages", [])
    return [json.loads(m["Body"]) for m in got]


# ---- POST /create-job ----------------------------------------------------------------------------


def test_create_job_answers_with_the_topic_the_job_id_and_where_to_follow_it(stack: Stack) -> None:
    # Given a manifest of archived objects
    bucket, key = stack.put_manifest(archived(stack, "a.bin"))
    # When a client posts the seed contract's body
    status, body = call_api(
        "POST", "/create-job", {"bucket": bucket, "key": key, "tier": "STANDARD", "expiration_days": 1, "client_tag": "client_tag"}
    )
    # Then it gets the topic to subscribe to, the job id and its status URL, and planning is queued
    assert status == 200, body
    job_id = body["BulkJobId"]
    assert uuid.UUID(job_id) and body["JobId"] == job_id
    assert body["SNSTopic"] == stack.topic_arn
    assert body["StatusUrl"] == f"https://abc123.execute-api.us-east-1.amazonaws.com/prod/jobs/{job_id}"
    assert body["Status"] == "Planning" and body["Created"] is True
    assert plan_messages(stack) == [{"job_id": job_id, "step": 0}]


@pytest.mark.parametrize(("tier", "shown"), [("STANDARD", "STANDARD"), ("bulk", "BULK"), ("Expedited", "EXPEDITED")])
def test_the_tier_is_accepted_in_any_case(stack: Stack, tier: str, shown: str) -> None:
    bucket, key = stack.put_manifest(archived(stack, "a.bin"))
    job_id = stack.create_job(bucket, key, tier=tier)["BulkJobId"]
    status, body = call_api("GET", f"/jobs/{job_id}")
    assert status == 200 and body["Tier"] == shown


@pytest.mark.parametrize(
    ("body", "words", "field"),
    [
        ('{"bucket": "manifests-bkt", ', ("not JSON",), None),
        ({"bucket": MANIFEST_BUCKET}, ("key",), "key"),
        ({"bucket": MANIFEST_BUCKET, "key": "m.csv", "expiration_days": "1"}, ("expiration_days",), "expiration_days"),
        ({"bucket": MANIFEST_BUCKET, "key": "m.csv", "expiration_days": 0}, ("expiration_days",), "expiration_days"),
        ({"bucket": MANIFEST_BUCKET, "key": "m.csv", "expiration_days": 3651}, ("expiration_days",), "expiration_days"),
        ({"bucket": MANIFEST_BUCKET, "key": "m.csv", "tier": "FAST"}, ("STANDARD, BULK, EXPEDITED",), "tier"),
        ({"bucket": MANIFEST_BUCKET, "key": "m.csv", "tier": 2}, ("tier must be a string",), "tier"),
        ({"bucket": "Bad_Bucket", "key": "m.csv"}, ("bucket",), "bucket"),
        ({"bucket": MANIFEST_BUCKET, "key": "m.csv", "progress_step_percent": 75}, ("progress_step_percent",), "progress_step_percent"),
        ([1, 2], ("body",), None),
    ],
)
def test_a_bad_request_is_a_400_that_says_what_to_fix(stack: Stack, body: Any, words: tuple[str, ...], field: str | None) -> None:
    status, answer = call_api("POST", "/create-job", body)
    error = assert_error(status, answer, 400, "InvalidRequest", *words)
    if field:
        assert field in {d["field"] for d in error["details"]}
    assert plan_messages(stack) == []


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (None, ("does not exist",)),
        (b"", ("empty",)),
        (b"\r\n\r\n", ("empty",)),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", ("binary",)),
        (b"Bad_Bucket,key\n", ("line 1", "bucket name")),
    ],
)
def test_an_unusable_manifest_is_a_422_naming_the_problem(stack: Stack, content: bytes | None, words: tuple[str, ...]) -> None:
    if content is not None:
        stack.put_manifest_bytes(content, key="m.csv")
    status, answer = call_api("POST", "/create-job", {"bucket": MANIFEST_BUCKET, "key": "m.csv"})
    error = assert_error(status, answer, 422, "ManifestUnreadable", *words)
    assert error["details"]["key"] == "m.csv"
    assert plan_messages(stack) == []


@pytest.mark.parametrize("how", ["header", "client_token"])
def test_a_repeated_create_with_the_same_idempotency_key_returns_the_same_job_and_plans_it_once(stack: Stack, how: str) -> None:
    bucket, key = stack.put_manifest(archived(stack, "a.bin"))
    headers = {"Idempotency-Key": "order-4711"} if how == "header" else None
    fields = {"client_token": "order-4711"} if how == "client_token" else {}
    # When the same create is sent twice (a client retrying after a timeout)
    first = stack.create_job(bucket, key, headers=headers, **fields)
    second = stack.create_job(bucket, key, headers=headers, **fields)
    # Then both answers name the same job, and one planning step waits
    assert second["BulkJobId"] == first["BulkJobId"] and (first["Created"], second["Created"]) == (True, False)
    assert plan_messages(stack) == [{"job_id": first["BulkJobId"], "step": 0}]
    stack.settle()
    assert stack.planner.invocations == 1
    metas = [i for i in scan_table(stack) if i["sk"] == "META"]
    assert len(metas) == 1


# ---- GET /jobs/{id} and /jobs/{id}/objects ------------------------------------------------------------


def test_status_shows_the_finished_job(stack: Stack) -> None:
    objects = [*archived(stack, "a.bin", "b.bin"), ObjectId(DATA_BUCKET, "gone.bin")]
    job_id = run(stack, objects, client_tag="finance-archive")
    status, body = call_api("GET", f"/jobs/{job_id}")
    assert status == 200
    assert (body["JobId"], body["Status"], body["ProgressPercent"], body["FailedBatchFiles"]) == (job_id, "Complete", 100, 1)
    assert body["Counts"] | {"Total": 3, "Restoring": 0, "Restored": 2, "Failed": 1} == body["Counts"]
    assert body["Planning"]["Complete"] is True and body["Planning"]["LinesRead"] == 3
    assert body["ClientTag"] == "finance-archive" and body["SNSTopic"] == stack.topic_arn and body["FinishedAt"]


def test_an_unknown_job_is_a_404(stack: Stack) -> None:
    missing = str(uuid.uuid4())
    assert_error(*call_api("GET", f"/jobs/{missing}"), 404, "JobNotFound", missing)
    assert_error(*call_api("GET", f"/jobs/{missing}/objects"), 404, "JobNotFound")


def test_an_unknown_route_is_a_404_in_the_same_error_shape(stack: Stack) -> None:
    assert_error(*call_api("GET", "/nothing-here"), 404, "NotFound")


def list_all(job_id: str, **query: str) -> tuple[list[dict[str, Any]], int]:
    objects, pages, token = [], 0, None
    while True:
        params = dict(query, **({"next_token": token} if token else {}))
        status, body = call_api("GET", f"/jobs/{job_id}/objects", query=params)
        assert status == 200, body
        objects += body["Objects"]
        pages += 1
        token = body["NextToken"]
        if not token:
            return objects, pages


def test_objects_are_listed_page_by_page_across_shards_optionally_by_state(stack: Stack) -> None:
    # Given a job of 40 objects (spread over the object shards), 5 of them missing
    objects = archived(stack, *(f"k/{i:02d}.bin" for i in range(35))) + [ObjectId(DATA_BUCKET, f"gone/{i}.bin") for i in range(5)]
    job_id = run(stack, objects)
    # When its objects are listed 7 at a time
    listed, pages = list_all(job_id, limit="7")
    # Then every object comes exactly once, over several pages
    assert sorted(o["Key"] for o in listed) == sorted(o.key for o in objects)
    assert pages >= math.ceil(40 / 7)
    # And a state filter gives only that state's objects, with their reason and manifest line
    failed, _ = list_all(job_id, state="failed", limit="2")
    assert sorted(o["Key"] for o in failed) == [f"gone/{i}.bin" for i in range(5)]
    assert all(o["State"] == "FAILED" and o["Reason"].startswith("NoSuchKey") and o["ManifestLine"] > 35 for o in failed)


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ({"next_token": "not-a-token"}, ("next_token",)),
        ({"limit": "0"}, ("limit",)),
        ({"limit": "1001"}, ("limit",)),
        ({"limit": "ten"}, ("limit",)),
        ({"state": "LOST"}, ("RESTORING", "FAILED")),
    ],
)
def test_bad_listing_parameters_are_a_400(stack: Stack, query: dict[str, str], words: tuple[str, ...]) -> None:
    job_id = run(stack, archived(stack, "a.bin"))
    assert_error(*call_api("GET", f"/jobs/{job_id}/objects", query=query), 400, "InvalidRequest", *words)


def test_an_unexpected_error_is_a_500_without_a_stack_trace(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(job_id: str) -> None:
        raise RuntimeError("secret internals at /var/task/x.py line 3")

    monkeypatch.setattr(stack.services().jobs, "status", broken)
    status, body = call_api("GET", f"/jobs/{uuid.uuid4()}")
    assert_error(status, body, 500, "InternalError", "retry")
    text = json.dumps(body)
    assert "secret" not in text and "Traceback" not in text and "x.py" not in text


# ---- the pipeline ------------------------------------------------------------------------------

AWKWARD_KEYS = [
    "photos/red flower.jpg",
    "a+b.txt",
    "a b.txt",
    "100%.txt",
    "%2B literally.txt",
    'commas, and "quotes".csv',
    "日本語/ファイル ü ß.bin",
    "emoji 🙂.bin",
    "k" * 1024,
    "ü" * 512,
]


@pytest.mark.parametrize(
    ("shape", "stack_settings"),
    [
        ("eventbridge", {}),
        ("s3", {"MANAGE_EVENTBRIDGE": "false"}),  # S3 event notifications only: the planner leaves EventBridge off
        ("sns", {"MANAGE_EVENTBRIDGE": "false"}),
    ],
)
def test_a_job_with_awkward_keys_completes_through_each_event_shape(stack: Stack, shape: str) -> None:
    # Given archived objects with awkward keys, and completion events of one shape
    if shape != "eventbridge":
        stack.route_s3_notifications(via=shape)
    objects = archived(stack, *AWKWARD_KEYS[: len(AWKWARD_KEYS) // 2]) + archived(
        stack, *AWKWARD_KEYS[len(AWKWARD_KEYS) // 2 :], storage_class="DEEP_ARCHIVE"
    )
    # When a job restores them
    job_id = run(stack, objects, tier="bulk")
    # Then every object is RESTORED, each counted once, and one terminal event says Complete
    ledger = JobLedger.read(stack, job_id)
    assert_accounting(ledger, objects)
    assert ledger.states() == {"RESTORED": len(objects)}
    terminal = assert_one_terminal_event(stack.events_of(job_id), job_id)
    assert (terminal.message["Status"], terminal.message["ProgressPercent"], terminal.message["FailedBatchFiles"]) == (
        "Complete",
        "100",
        "0",
    )


def test_readable_missing_and_bad_rows_end_skipped_or_failed_with_a_reason_and_the_job_still_completes(stack: Stack) -> None:
    # Given a manifest with an archived object, a readable one, a missing one, a duplicate and a bad line
    restorable = archived(stack, "cold.bin")
    readable = archived(stack, "warm.txt", storage_class="STANDARD")
    missing = [ObjectId(DATA_BUCKET, "gone.bin")]
    job_id = run(stack, restorable + readable + missing + ["only-one-column"] + restorable)
    # Then each lands in its state, with the reason
    ledger = JobLedger.read(stack, job_id)
    assert_accounting(ledger, restorable + readable + missing, error_lines=1)
    assert ledger.state_of(restorable[0]) == "RESTORED"
    assert ledger.state_of(readable[0]) == "SKIPPED" and "readable" in ledger.record_of(readable[0])["reason"]
    assert ledger.state_of(missing[0]) == "FAILED" and ledger.record_of(missing[0])["reason"].startswith("NoSuchKey")
    bad = [o for o in ledger.objects if not o.get("bucket")]
    assert len(bad) == 1 and bad[0]["state"] == "FAILED" and bad[0]["reason"].startswith("manifest line 4:")
    # And the job completes, with the failures counted in FailedBatchFiles
    terminal = assert_one_terminal_event(stack.events_of(job_id), job_id)
    assert (terminal.message["Status"], terminal.message["FailedBatchFiles"]) == ("Complete", "2")


def test_duplicate_rows_and_differently_encoded_spellings_of_one_key_count_once(stack: Stack) -> None:
    (obj,) = archived(stack, "a b+c.txt")
    rows = [obj, obj, f"{DATA_BUCKET},a%20b%2Bc.txt", f'"{DATA_BUCKET}","a b+c.txt"', obj]
    job_id = run(stack, rows)
    ledger = JobLedger.read(stack, job_id)
    assert_accounting(ledger, [obj])
    assert ledger.counters["total"] == 1 and ledger.record_of(obj)["line"] == 1


@pytest.mark.parametrize(
    ("stack_settings", "timeout_s", "steps"),
    [
        ({"PLAN_LINES_PER_STEP": 196}, 900, 3),  # two chunks of 98 lines per step
        ({"PLAN_LINES_PER_STEP": 196, "PLAN_RESERVE_MS": 60_000}, 60, 5),  # short of time: a step after every chunk
    ],
)
def test_a_manifest_larger_than_one_planning_step_is_planned_in_checkpointed_steps(stack: Stack, timeout_s: int, steps: int) -> None:
    # Given a 400-line manifest: 200 objects, each named again 200 lines later (in another chunk and step)
    stack.planner.timeout_s = timeout_s
    objects = archived(stack, *(f"bulk/{i:04d}.bin" for i in range(200)))
    # When a job plans it in steps of 196 lines, with the planner having timeout_s to live
    job_id = run(stack, objects + objects)
    # Then the planner took its steps, five chunks were planned and accounted, each object counted once
    assert stack.planner.invocations == steps
    _, status = call_api("GET", f"/jobs/{job_id}")
    assert status["Planning"] == {
        "Complete": True,
        "LinesRead": 400,
        "BytesRead": status["Manifest"]["Size"],
        "ChunksPlanned": 5,
        "ChunksAccounted": 5,
    }
    assert_accounting(JobLedger.read(stack, job_id), objects)
    assert_one_terminal_event(stack.events_of(job_id), job_id)


def test_versioned_objects_are_restored_by_the_version_the_manifest_names() -> None:
    # Given S3 as AWS documents it, and a versioned bucket holding two versions of one key
    with s3_restore.S3RestoreEmulator() as emulator, open_stack() as stack:
        stack.restore_emulator = emulator
        bucket = "versioned-bkt"
        stack.enable_versioning(bucket)
        old = stack.put_archived("report.pdf", bucket=bucket, body=b"v1")
        new = stack.put_archived("report.pdf", bucket=bucket, body=b"v2")
        objects = [ObjectId(bucket, "report.pdf", old), ObjectId(bucket, "report.pdf", new)]
        tracer = CallTracer().install(stack.services())
        # When a manifest names the old version and the new one
        manifest_bucket, key = stack.put_manifest(objects)
        job_id = stack.create_job(manifest_bucket, key)["BulkJobId"]
        stack.drain()
        # Then each RestoreObject named its version, and both restores run
        assert sorted(a.version_id for a in tracer.restores) == sorted([old, new])
        assert JobLedger.read(stack, job_id).states() == {"RESTORING": 2}
        # And once S3 completes them (each event with its version id), the job completes with both
        stack.settle()
        ledger = JobLedger.read(stack, job_id)
        assert_accounting(ledger, objects)
        assert ledger.states() == {"RESTORED": 2}
        assert_one_terminal_event(stack.events_of(job_id), job_id)


def test_one_object_in_two_jobs_completes_both(stack: Stack) -> None:
    # Given two jobs that both name one object
    shared = archived(stack, "shared.bin")
    (only_second,) = archived(stack, "second.bin")
    first = stack.create_job(*stack.put_manifest(shared, key="first.csv"))["BulkJobId"]
    second = stack.create_job(*stack.put_manifest([*shared, only_second], key="second.csv"))["BulkJobId"]
    # When both run
    stack.settle()
    # Then each job completes, each counting the shared object once
    for job_id, objects in ((first, shared), (second, [*shared, only_second])):
        ledger = JobLedger.read(stack, job_id)
        assert_accounting(ledger, objects)
        assert ledger.status == "Complete"
        assert_one_terminal_event(stack.events_of(job_id), job_id)


def test_an_eventbridge_completion_of_another_object_does_not_complete_a_namesake() -> None:
    # Given S3 as AWS documents it (restores take time) and a job whose "a b.txt" is still restoring
    with s3_restore.S3RestoreEmulator(), open_stack() as stack:
        (obj,) = archived(stack, "a b.txt")
        bucket, key = stack.put_manifest([obj])
        job_id = stack.create_job(bucket, key)["BulkJobId"]
        stack.drain()
        assert JobLedger.read(stack, job_id).state_of(obj) == "RESTORING"
        # When EventBridge reports the restore of another object of the bucket, "a+b.txt" (keys come unencoded)
        stack.send(stack.completion_queue_url, samples.completion("eventbridge", DATA_BUCKET, "a+b.txt"))
        stack.drain()
        # Then "a b.txt" is still restoring: its own restore has not finished
        assert JobLedger.read(stack, job_id).state_of(obj) == "RESTORING"


def test_an_eventbridge_key_that_arrives_form_encoded_completes_its_object_once_s3_confirms() -> None:
    # Given a job whose "a b.txt" is restoring, and S3 finishing that restore
    with s3_restore.S3RestoreEmulator() as emulator, open_stack() as stack:
        (obj,) = archived(stack, "a b.txt")
        bucket, key = stack.put_manifest([obj])
        job_id = stack.create_job(bucket, key)["BulkJobId"]
        stack.drain()
        emulator.complete_all()
        stack.sqs.purge_queue(QueueUrl=stack.completion_queue_url)  # drop its own (literal) event
        # When an EventBridge event names it form-encoded, as S3 event notifications do
        stack.send(stack.completion_queue_url, samples.completion("eventbridge", DATA_BUCKET, "a+b.txt"))
        stack.drain()
        # Then the object is restored and the job complete
        ledger = JobLedger.read(stack, job_id)
        assert ledger.state_of(obj) == "RESTORED" and ledger.status == "Complete"


# ---- the job's events on SNS --------------------------------------------------------------------


def test_one_event_per_progress_step_and_exactly_one_terminal_event(stack: Stack) -> None:
    # Given 10 archived objects, steps of 10 %, and completions handled one at a time
    objects = archived(stack, *(f"o/{i}.bin" for i in range(10)))
    stack.completion.batch_size = 1
    job_id = run(stack, objects, client_tag="finance-archive")
    events = stack.events_of(job_id)
    # Then each completion crossed one step: 10 % ... 90 %, then one terminal event at 100 %
    assert [e.message["ProgressPercent"] for e in events] == [str(p) for p in range(10, 100, 10)] + ["100"]
    assert [e.message["Status"] for e in events] == ["Restoring"] * 9 + ["Complete"]
    assert len({e.event_id for e in events}) == 10
    assert_one_terminal_event(events, job_id)
    for event in events:
        # The seed contract's fields, with its string types
        assert all(isinstance(event.message[f], str) for f in SEED_FIELDS)
        assert event.message["JobId"] == event.message["BatchJobId"] == job_id
        assert event.message["ProgressStepPercent"] == 10 and event.message["ClientTag"] == "finance-archive"
        # Message attributes a filter policy can match
        assert event.attributes["JobId"] == job_id and event.attributes["ClientTag"] == "finance-archive"
        assert event.attributes["Status"] == event.message["Status"]


def test_a_subscription_filtering_on_status_complete_gets_only_the_terminal_event(stack: Stack) -> None:
    # Given a second subscriber that only wants the end of jobs
    only_complete = stack.subscribe_queue("only-complete", {"Status": ["Complete"], "ClientTag": ["finance-archive"]})
    objects = archived(stack, *(f"o/{i}.bin" for i in range(5)))
    stack.completion.batch_size = 1
    # When a job runs through its progress steps to its end
    job_id = run(stack, objects, client_tag="finance-archive", progress_step_percent=20)
    # Then the main subscription saw every event and the filtered one only the terminal one
    assert len(stack.events_of(job_id)) > 1
    (terminal,) = stack.read_events(only_complete)
    assert terminal.is_terminal and terminal.job_id == job_id and terminal.message["Status"] == "Complete"


# ---- the event samples in events/, through the handlers -------------------------------------------


def test_the_restore_chunk_sample_is_accounted_by_the_restore_function(stack: Stack) -> None:
    from bulk_restore.handlers import restorer

    # Given a job, and the events/ restore-chunk sample carrying two awkward keys and a bad line
    archived(stack, "photos/red flower.jpg", 'photos/a+b c,"d".jpg')
    job_id = stack.create_job(*stack.put_manifest(archived(stack, "x.bin")))["BulkJobId"]
    event = samples.sqs_event("restore_chunk.json")
    event["Records"][0]["body"] = json.dumps(samples.restore_chunk(job_id, chunk=5))
    # When the restore function gets it
    result = restorer.handler(event, LambdaContext("restorer"))
    # Then nothing failed, and the chunk's objects are recorded: two restoring, the bad line failed
    assert result == {"batchItemFailures": []}
    ledger = JobLedger.read(stack, job_id)
    assert ledger.states() == {"RESTORING": 2, "FAILED": 1} and ledger.chunk_markers == 1
    # And the same message again changes nothing
    assert restorer.handler(event, LambdaContext("restorer")) == {"batchItemFailures": []}
    assert JobLedger.read(stack, job_id).counters == ledger.counters


def test_the_plan_step_sample_plans_the_job(stack: Stack) -> None:
    from bulk_restore.handlers import planner

    job_id = stack.create_job(*stack.put_manifest(archived(stack, "x.bin", "y.bin")))["BulkJobId"]
    stack.sqs.purge_queue(QueueUrl=stack.plan_queue_url)
    event = samples.sqs_event("plan_step.json")
    event["Records"][0]["body"] = json.dumps(samples.plan_step(job_id, 0))
    assert planner.handler(event, LambdaContext("planner")) == {"batchItemFailures": []}
    assert stack.queue_depth(stack.restore_queue_url) == 1
    stack.settle()
    assert JobLedger.read(stack, job_id).status == "Complete"


@pytest.mark.parametrize(
    "sample", ["completion_s3_notification.json", "completion_sns_s3_notification.json", "completion_eventbridge.json"]
)
def test_the_completion_samples_complete_the_objects_they_name(stack: Stack, sample: str) -> None:
    from bulk_restore.handlers import completion

    # Given a job whose objects (the samples' keys, without versions) are restoring
    objects = archived(stack, "photos/red flower.jpg", 'photos/a+b c,"d".jpg')
    job_id = stack.create_job(*stack.put_manifest(objects))["BulkJobId"]
    stack.drain()
    event = samples.sqs_event(sample)
    if sample == "completion_eventbridge.json":
        doc = json.loads(event["Records"][0]["body"])
        doc["detail"]["object"]["version-id"] = "null"
        event["Records"][0]["body"] = json.dumps(doc)
    # When the completion function gets the sample
    assert completion.handler(event, LambdaContext("completion")) == {"batchItemFailures": []}
    stack.counter.drain()  # the counting function reads what it wrote
    # Then the objects it names are RESTORED, counted once
    ledger = JobLedger.read(stack, job_id)
    named = 2 if sample == "completion_s3_notification.json" else 1
    assert ledger.states()["RESTORED"] == named and ledger.counters["restored"] == named


def test_a_batch_with_a_test_event_and_garbage_fails_only_the_garbage(stack: Stack) -> None:
    from bulk_restore.handlers import completion

    event = samples.with_bodies(
        "completion_s3_test_event.json",
        [
            samples.sqs_event("completion_s3_test_event.json")["Records"][0]["body"],
            "this is not an S3 event",
            samples.completion("s3", DATA_BUCKET, "no-job-has-this.bin"),
        ],
    )
    result = completion.handler(event, LambdaContext("completion"))
    assert result == {"batchItemFailures": [{"itemIdentifier": event["Records"][1]["messageId"]}]}


def test_garbage_on_the_completion_queue_ends_in_its_dead_letter_queue(stack: Stack) -> None:
    stack.send(stack.completion_queue_url, "garbage")
    stack.drain()
    assert stack.dead_letters("completion") == ["garbage"]


@pytest.mark.parametrize("stack_settings", [{"PLAN_LINES_PER_STEP": 98}])
def test_a_manifest_changed_while_planning_fails_the_job_once_and_its_planned_chunks_are_not_requested(stack: Stack) -> None:
    # Given a job over a two-chunk manifest whose first step is planned (one chunk sent, not yet handled)
    objects = archived(stack, *(f"m/{i:03d}.bin" for i in range(150)))
    bucket, key = stack.put_manifest(objects)
    job_id = stack.create_job(bucket, key)["BulkJobId"]
    assert stack.planner.poll_once(stack.sqs) == 1
    # When the manifest is overwritten before the second step
    stack.put_manifest(objects[:10])
    stack.planner.poll_once(stack.sqs)
    stack.settle()
    # Then the job fails once, saying why
    ledger = JobLedger.read(stack, job_id)
    assert ledger.status == "Failed" and "changed" in ledger.meta["failure_reason"]
    terminal = assert_one_terminal_event(stack.events_of(job_id), job_id)
    assert terminal.message["Status"] == "Failed" and "changed" in terminal.message["FailureReason"]
    # And the chunk planned before it is accounted without a restore request: each object counted once
    assert ledger.states() == {"CANCELLED": 98}
    assert ledger.counters["total"] == ledger.counters["cancelled"] == 98 and ledger.counters["restoring"] == 0
    assert ledger.chunk_markers == ledger.counters["chunks_done"] == 1
