"""A job's life after its restores were requested: lost events, deadlines, cancel, pacing,
throttling, Expedited capacity, kept copies, dead letters and the bucket allow-list.

Each test checks real state: the table read directly (support/ledger.py), the events on the
job topic's queue, and the AWS calls the functions made (support/faults.py). Hours pass at once
on a stepping clock given to the sweeper and the pacer (support/clock.py); S3's restores take
time where it matters, with the faithful RestoreObject of bulk_restore_cli.local.s3_restore.
"""

from __future__ import annotations

import bisect
import contextlib
import json
import time
import types
from collections import Counter
from typing import Any

import pytest

from bulk_restore.adapters.sqs import move_messages
from bulk_restore.domain.model import JobStatus, ObjectId
from bulk_restore.usecases.pacing import Pacer
from bulk_restore.usecases.restore import PACING_WINDOW
from bulk_restore_cli import cli
from bulk_restore_cli.local import s3_restore
from support import samples
from support.api import call_api
from support.clock import SteppingClock
from support.faults import CallTracer, Throttle
from support.ledger import JobLedger, assert_accounting, assert_counters_match, assert_one_terminal_event, scan_table
from support.stack import DATA_BUCKET, REGION, Stack, manifest_row, reset_caches
from test_handlers import list_all

HOUR = 3600.0
BASE = {"RESTORE_CONCURRENCY": 1}  # one request at a time: call order is the order of the rows


@pytest.fixture
def stack_settings() -> dict[str, object]:
    return dict(BASE)


def settings(**extra: object) -> list[dict[str, object]]:
    """For ``pytest.mark.parametrize("stack_settings", settings(...))``."""
    return [{**BASE, **extra}]


def start(stack: Stack, prefix: str, n: int, storage_class: str = "GLACIER", **fields: Any) -> tuple[str, list[ObjectId]]:
    """Archive n objects under ``prefix`` and create a job restoring them. Returns (job id, objects)."""
    objects = [ObjectId(DATA_BUCKET, f"{prefix}/{i:02d}.bin") for i in range(n)]
    for obj in objects:
        stack.put_archived(obj.key, storage_class=storage_class)
    job_id = stack.create_job(*stack.put_manifest(objects, key=f"{prefix}.csv"), **fields)["BulkJobId"]
    return job_id, objects


def chunked_manifest(objects: list[list[ObjectId]]) -> list[str]:
    """Manifest lines putting each group of objects in a chunk of its own (98 lines, padded with blank lines)."""
    lines: list[str] = []
    for group in objects:
        if lines:
            lines += [""] * (98 - len(lines) % 98)
        lines += [manifest_row(o) for o in group]
    return lines


def stepping_sweeper(stack: Stack) -> SteppingClock:
    """The sweeper on a clock that moves only when a test advances it (or the sweeper sleeps between HEADs)."""
    clock = SteppingClock()
    sweeper = stack.services().sweeper
    sweeper.clock, sweeper.sleep = clock.time, clock.sleep
    stack.sweeper.input = samples.scheduled_event()
    return clock


def sweep(stack: Stack, tracer: CallTracer) -> list[Any]:
    """One scheduled run of the sweeper. Returns the AWS calls it made."""
    first = len(tracer.calls)
    assert stack.sweep(), "the sweeper died"
    return [c for c in tracer.calls[first:] if c.function == "sweeper"]


def named(calls: list[Any], operation: str) -> list[str]:
    return [c.params["Key"] for c in calls if c.operation == operation]


def pending_keys(job_id: str) -> list[str]:
    return sorted(o["Key"] for o in list_all(job_id, state="RESTORING")[0])


def terminal_of(stack: Stack, job_id: str) -> dict[str, Any]:
    return assert_one_terminal_event(stack.events_of(job_id), job_id).message


# ---- lost completion events: the sweeper ------------------------------------------------------------


@pytest.mark.parametrize("stack_settings", settings(MANAGE_EVENTBRIDGE="false", SWEEP_OBJECTS_PER_JOB=3))
def test_a_job_whose_every_completion_event_was_lost_is_completed_by_the_sweeper_page_by_page(
    stack: Stack, emulator: s3_restore.S3RestoreEmulator
) -> None:
    # Given two jobs whose restores S3 has finished, but no completion event reaches the stack
    # (EventBridge off, no S3 notifications): an Expedited one (window 5 min) and a Standard one (12 h)
    fast, fast_objects = start(stack, "fast", 7, tier="EXPEDITED")
    slow, slow_objects = start(stack, "slow", 2, tier="STANDARD")
    stack.drain()
    emulator.complete_all()
    assert stack.queue_depth(stack.completion_queue_url) == 0
    clock = stepping_sweeper(stack)
    tracer = CallTracer().install(stack.services())
    # When the sweeper runs before any window has passed, then 10 minutes later, run after run
    early = sweep(stack, tracer)
    clock.advance(600)
    runs = [sweep(stack, tracer) for _ in range(4)]
    # Then nothing was checked early; then the Expedited job's objects were checked 3 per run,
    # resuming where the last run stopped, each once, a pause between two HEADs; the Standard job's not at all
    assert named(early, "s3.HeadObject") == []
    heads = [named(run, "s3.HeadObject") for run in runs]
    assert [len(h) for h in heads] == [3, 3, 1, 0]
    assert sorted(k for h in heads for k in h) == sorted(o.key for o in fast_objects)
    assert clock.slept == [1 / 50] * 7
    # And the Expedited job is complete, each object counted once, with exactly one Complete event
    ledger = JobLedger.read(stack, fast)
    assert_accounting(ledger, fast_objects)
    assert ledger.states() == {"RESTORED": 7} and ledger.status == "Complete"
    assert terminal_of(stack, fast)["Status"] == "Complete"
    # And it has left the sweeper's list: the last run did not read it
    assert not ledger.on_sweep_list
    assert fast not in json.dumps([c.params for c in runs[-1]])
    # When the Standard job's window has passed too
    clock.advance(12 * HOUR)
    late = sweep(stack, tracer)
    # Then it is checked and completed the same way
    assert sorted(named(late, "s3.HeadObject")) == [o.key for o in slow_objects]
    assert_accounting(JobLedger.read(stack, slow), slow_objects)
    assert terminal_of(stack, slow)["Status"] == "Complete"
    # And the sweeper never scanned the table: it queried the list of running jobs and read those jobs
    calls = early + [c for run in runs for c in run] + late
    assert not [c for c in calls if c.operation == "dynamodb.Scan"]
    queried = {c.params["ExpressionAttributeValues"][":pk"]["S"] for c in calls if c.operation == "dynamodb.Query"}
    assert "ACTIVE" in queried
    assert all(pk == "ACTIVE" or pk.startswith((f"JOB#{fast}", f"JOB#{slow}")) for pk in queried), queried


@pytest.mark.parametrize("stack_settings", settings(MANAGE_EVENTBRIDGE="false"))
def test_an_object_the_sweeper_may_not_head_does_not_stop_the_sweep_of_other_jobs(
    stack: Stack, emulator: s3_restore.S3RestoreEmulator
) -> None:
    # Given two Expedited jobs whose events were lost; one object of the job the sweeper reads first
    # was deleted meanwhile, and S3 answers its HeadObject 403 (as it does without s3:ListBucket)
    jobs = dict(start(stack, f"job{i}", 2, tier="EXPEDITED") for i in range(2))
    stack.drain()
    emulator.complete_all()
    first, second = sorted(jobs)
    gone = jobs[first][0]
    stack.s3.delete_object(Bucket=gone.bucket, Key=gone.key)
    clock = stepping_sweeper(stack)
    CallTracer().install(stack.services())
    Throttle("HeadObject", 100, "403", 403, match=lambda params: params["Key"] == gone.key).install(stack.services().s3.client)
    # When the sweeper runs after the jobs' window
    clock.advance(600)
    with contextlib.suppress(Exception):  # a failed invocation: the schedule runs the sweeper again later
        stack.sweep()
    # Then the other job was still checked and completed
    assert JobLedger.read(stack, second).status == "Complete"


# ---- deadlines ----------------------------------------------------------------------------------------


def half_completed(stack: Stack, **fields: Any) -> tuple[str, list[ObjectId], list[ObjectId]]:
    """A Standard job of four archived objects, two completed by their events, two still restoring."""
    job_id, objects = start(stack, "deadline", 4, **fields)
    stack.drain()
    for obj in objects[:2]:
        stack.send(stack.completion_queue_url, samples.completion("eventbridge", obj.bucket, obj.key))
    stack.drain()
    assert JobLedger.read(stack, job_id).states() == {"RESTORED": 2, "RESTORING": 2}
    return job_id, objects[:2], objects[2:]


def test_a_job_past_its_deadline_ends_with_one_timeout_event_and_its_pending_objects_listed(
    stack: Stack, emulator: s3_restore.S3RestoreEmulator
) -> None:
    # Given a Standard job (deadline: 25 h) with two objects restored and two still restoring
    job_id, _, pending = half_completed(stack)
    clock = stepping_sweeper(stack)
    tracer = CallTracer().install(stack.services())
    # When the sweeper runs a minute before the deadline, then a minute after it, then again
    clock.advance(25 * HOUR - 60)
    sweep(stack, tracer)
    assert JobLedger.read(stack, job_id).status == "Restoring"
    clock.advance(120)
    sweep(stack, tracer)
    sweep(stack, tracer)
    # Then the job ended with exactly one Timeout event, carrying the number still restoring
    event = terminal_of(stack, job_id)
    assert (event["Status"], event["PendingCount"], event["Counts"]["Restoring"]) == ("Timeout", 2, 2)
    assert "25 h" in event["FailureReason"] and f"/jobs/{job_id}/objects?state=RESTORING" in event["FailureReason"]
    # And the status and the object listing show those two
    status, document = call_api("GET", f"/jobs/{job_id}")
    assert (status, document["Status"], document["PendingCount"]) == (200, "Timeout", 2)
    assert pending_keys(job_id) == [o.key for o in pending]
    ledger = JobLedger.read(stack, job_id)
    assert_counters_match(ledger)
    assert not ledger.on_sweep_list


def test_the_tier_s_deadline_counts_from_the_last_request_sent_not_from_creation(
    stack: Stack, emulator: s3_restore.S3RestoreEmulator
) -> None:
    # Given a Standard job (deadline 25 h) whose requests took 30 hours to send (a large, paced job):
    # it was created 30 h ago and its last chunk was accounted now
    job_id, _ = start(stack, "slow-to-send", 2)
    clock = stepping_sweeper(stack)
    created = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime(clock.now - 30 * HOUR))
    stack.ddb.update_item(
        TableName=stack.table_name,
        Key={"pk": {"S": f"JOB#{job_id}"}, "sk": {"S": "META"}},
        UpdateExpression="SET created_at = :c",
        ExpressionAttributeValues={":c": {"S": created}},
    )
    stack.drain()
    assert JobLedger.read(stack, job_id).meta.get("issued_at")
    tracer = CallTracer().install(stack.services())
    # When the sweeper runs now, and 25 h later
    sweep(stack, tracer)
    statuses = [JobLedger.read(stack, job_id).status]
    clock.advance(25 * HOUR + 60)
    sweep(stack, tracer)
    statuses.append(JobLedger.read(stack, job_id).status)
    # Then it was not late at first; 25 h after its last request it timed out, once
    assert statuses == ["Restoring", "Timeout"]
    assert terminal_of(stack, job_id)["Status"] == "Timeout"


def test_a_job_still_recording_its_chunks_is_not_late_and_one_whose_chunks_stopped_coming_is(
    stack: Stack, emulator: s3_restore.S3RestoreEmulator
) -> None:
    # Given a Standard job (deadline 25 h) of three chunks, planned at once, whose chunks reach the
    # restore workers one by one, 20 hours apart (a large job behind a deep restore queue; no
    # progress event meanwhile). A 100,000-object local job timed out this way while still sending.
    groups = [[ObjectId(DATA_BUCKET, f"queued/{g}-{i}.bin") for i in range(2)] for g in range(3)]
    for group in groups:
        for obj in group:
            stack.put_archived(obj.key)
    job_id = stack.create_job(*stack.put_manifest(chunked_manifest(groups), key="queued.csv"))["BulkJobId"]
    while stack.planner.poll_once(stack.sqs):
        pass
    chunks = [m["Body"] for m in stack.sqs.receive_message(QueueUrl=stack.restore_queue_url, MaxNumberOfMessages=10)["Messages"]]
    stack.sqs.purge_queue(QueueUrl=stack.restore_queue_url)
    assert len(chunks) == 3
    clock = stepping_sweeper(stack)
    tracer = CallTracer().install(stack.services())
    statuses = []
    # When the first two chunks are recorded 20 h apart, with a sweep after each; then 20 h pass
    # with the last chunk still queued; then 26 h more without it (lost to a dead-letter queue)
    for chunk in chunks[:2]:
        stack.send(stack.restore_queue_url, chunk)
        stack.restorer.poll_once(stack.sqs)
        sweep(stack, tracer)
        statuses.append(JobLedger.read(stack, job_id).status)
        clock.advance(20 * HOUR)
    sweep(stack, tracer)
    statuses.append(JobLedger.read(stack, job_id).status)
    clock.advance(26 * HOUR)
    sweep(stack, tracer)
    statuses.append(JobLedger.read(stack, job_id).status)
    # Then it was not late while its chunks were coming (40 h after its last event), and timed
    # out 25 h after the last chunk was seen; its one Timeout event goes out once the chunk that
    # never came has had the time retries take
    assert statuses == ["Restoring", "Restoring", "Restoring", "Timeout"]
    clock.advance(7 * HOUR)
    sweep(stack, tracer)
    assert terminal_of(stack, job_id)["Status"] == "Timeout"


def test_a_job_s_deadline_hours_overrides_the_tier_s_deadline_either_way(stack: Stack, emulator: s3_restore.S3RestoreEmulator) -> None:
    # Given three Standard jobs with restores that never finish: a 2 h deadline, the default (25 h), a 30 h deadline
    short, _ = start(stack, "short", 1, deadline_hours=2)
    default, _ = start(stack, "default", 1)
    long, _ = start(stack, "long", 1, deadline_hours=30)
    stack.drain()
    clock = stepping_sweeper(stack)
    tracer = CallTracer().install(stack.services())
    statuses = []
    # When the sweeper runs just after 2 h, 25 h and 30 h
    began = clock.now
    for hours in (2, 25, 30):
        clock.now = began + hours * HOUR + 60
        sweep(stack, tracer)
        statuses.append([JobLedger.read(stack, j).status for j in (short, default, long)])
    # Then each job timed out at its own deadline, once
    assert statuses == [["Timeout", "Restoring", "Restoring"], ["Timeout", "Timeout", "Restoring"], ["Timeout"] * 3]
    for job_id, hours in ((short, "2 h"), (default, "25 h"), (long, "30 h")):
        event = terminal_of(stack, job_id)
        assert event["Status"] == "Timeout" and f"deadline of {hours}" in event["FailureReason"]


@pytest.mark.parametrize(("end", "status"), [("timeout", "Timeout"), ("cancel", "Cancelled")])
def test_restores_completing_after_the_job_ended_are_still_accounted_without_a_second_terminal_event(
    stack: Stack, emulator: s3_restore.S3RestoreEmulator, end: str, status: str
) -> None:
    # Given a job that ended (timed out, or was cancelled) with two objects still restoring
    job_id, _, _pending = half_completed(stack)
    tracer = CallTracer().install(stack.services())
    if end == "timeout":
        stepping_sweeper(stack).advance(26 * HOUR)
        sweep(stack, tracer)
    else:
        assert call_api("POST", f"/jobs/{job_id}/cancel")[0] == 200
    # When S3 completes their restores, hours later (other Lambda environments: nothing cached), and sends its events
    reset_caches()
    emulator.complete_all()
    stack.drain()
    # Then they are accounted: RESTORED, the counters equal the states, and still one terminal event
    ledger = JobLedger.read(stack, job_id)
    assert ledger.states() == {"RESTORED": 4}, [(o["key"], o["state"]) for o in ledger.objects]
    assert_counters_match(ledger)
    assert terminal_of(stack, job_id)["Status"] == status


# ---- cancel ----------------------------------------------------------------------------------------------


def cancel(job_id: str) -> dict[str, Any]:
    status, document = call_api("POST", f"/jobs/{job_id}/cancel")
    assert status == 200, document
    return document


def test_a_job_cancelled_before_planning_requests_nothing_and_ends_with_one_cancelled_event(stack: Stack) -> None:
    # Given a job just created: its planning step waits on the queue
    tracer = CallTracer().install(stack.services())
    job_id, _ = start(stack, "early", 3)
    # When it is cancelled, then the stack runs
    document = cancel(job_id)
    stack.settle()
    # Then the answer showed it Cancelled with nothing requested, and nothing was ever requested
    assert (document["Status"], document["RequestedCount"], document["Counts"]["Total"]) == ("Cancelled", 0, 0)
    assert tracer.count("s3.RestoreObject") == 0
    assert [c for c in tracer.calls if c.function == "planner" and c.operation == "s3.GetObject"] == []
    # And one Cancelled event; the job holds no objects and is off the sweeper's list
    assert terminal_of(stack, job_id)["Status"] == "Cancelled"
    ledger = JobLedger.read(stack, job_id)
    assert ledger.objects == [] and not ledger.on_sweep_list and not ledger.bucket_links
    assert_counters_match(ledger)


@pytest.mark.parametrize("stack_settings", settings(PLAN_LINES_PER_STEP=98))
def test_a_job_cancelled_midway_requests_nothing_more_and_shows_what_was_requested(stack: Stack) -> None:
    # Given a job over three chunks of five objects, planned one chunk a step: the first chunk
    # requested, the second planned but not yet handled, the third not planned
    chunks = [[ObjectId(DATA_BUCKET, f"mid/{c}/{i}.bin") for i in range(5)] for c in range(3)]
    for obj in (o for chunk in chunks for o in chunk):
        stack.put_archived(obj.key)
    job_id = stack.create_job(*stack.put_manifest(chunked_manifest(chunks)))["BulkJobId"]
    tracer = CallTracer().install(stack.services())
    assert stack.planner.poll_once(stack.sqs) == 1
    assert stack.restorer.poll_once(stack.sqs) == 1
    assert stack.planner.poll_once(stack.sqs) == 1
    assert sorted(named(tracer.calls, "s3.RestoreObject")) == sorted(o.key for o in chunks[0])
    stack.counter.drain()  # the first chunk's objects are counted (from the table's stream)
    # When it is cancelled, and the stack runs on (S3 still restoring)
    document = cancel(job_id)
    cancelled_at = len(tracer.calls)
    stack.drain()
    # Then no restore request went out after the cancel
    assert named(tracer.calls[cancelled_at:], "s3.RestoreObject") == []
    # And the answer showed what had been requested
    assert (document["Status"], document["RequestedCount"], document["PendingCount"]) == ("Cancelled", 5, 5)
    # And the requested objects kept their state, the planned ones are CANCELLED, the third chunk was never planned
    ledger = JobLedger.read(stack, job_id)
    assert ledger.states() == {"RESTORING": 5, "CANCELLED": 5}
    assert sorted(o["key"] for o in ledger.objects if o["state"] == "CANCELLED") == sorted(o.key for o in chunks[1])
    assert all(o["reason"].startswith("not requested") for o in ledger.objects if o["state"] == "CANCELLED")
    assert_counters_match(ledger)
    _, document = call_api("GET", f"/jobs/{job_id}")
    assert document["Counts"] | {"Total": 10, "Restoring": 5, "Cancelled": 5} == document["Counts"]
    assert (document["RequestedCount"], document["Planning"]["Complete"]) == (5, False)
    # And exactly one Cancelled event, with the job's final counts
    event = terminal_of(stack, job_id)
    assert event["Status"] == "Cancelled" and event["Counts"] == document["Counts"]
    # When its chunks arrive again (two redelivered, the third as a planner would have sent it), and it is cancelled again
    for number, chunk in enumerate(chunks):
        rows = [[98 * number + i + 1, o.bucket, o.key, None] for i, o in enumerate(chunk)]
        stack.send(stack.restore_queue_url, samples.restore_chunk(job_id, number, rows, []))
    again = len(tracer.calls)
    stack.drain()
    status, answer = call_api("POST", f"/jobs/{job_id}/cancel")
    assert (status, answer["error"]["code"], answer["error"]["details"]["status"]) == (409, "JobAlreadyFinished", "Cancelled")
    # Then still nothing is requested; the third chunk's objects are CANCELLED; still one event
    assert named(tracer.calls[again:], "s3.RestoreObject") == []
    ledger = JobLedger.read(stack, job_id)
    assert ledger.states() == {"RESTORING": 5, "CANCELLED": 10}
    assert_counters_match(ledger)
    assert terminal_of(stack, job_id)["Status"] == "Cancelled"


def test_the_cancelled_event_carries_the_final_counts_of_chunks_still_on_their_way(stack: Stack) -> None:
    # Given a job whose three chunks are all planned and queued, none accounted yet
    chunks = [[ObjectId(DATA_BUCKET, f"late/{c}/{i}.bin") for i in range(4)] for c in range(3)]
    for obj in (o for chunk in chunks for o in chunk):
        stack.put_archived(obj.key)
    job_id = stack.create_job(*stack.put_manifest(chunked_manifest(chunks)))["BulkJobId"]
    assert stack.planner.poll_once(stack.sqs) == 1
    # When it is cancelled before any chunk is accounted, and the chunks then arrive
    cancel(job_id)
    assert stack.events_of(job_id) == []  # nothing announced while chunks are on their way
    stack.settle()
    # Then one Cancelled event, whose counts are the job's final ones (not zeros)
    (event,) = [e.message for e in stack.events_of(job_id)]
    assert event["Status"] == "Cancelled"
    assert event["Counts"] == {"Total": 12, "Restoring": 0, "Restored": 0, "Skipped": 0, "Failed": 0, "Cancelled": 12}
    _, document = call_api("GET", f"/jobs/{job_id}")
    assert document["Counts"] == event["Counts"] and document["Status"] == "Cancelled"


@pytest.mark.parametrize("status", ["Complete", "Cancelled", "Timeout", "Failed"])
def test_a_cancel_of_a_job_that_has_ended_in_any_way_is_a_409(stack: Stack, status: str) -> None:
    # Given a job that ended as ``status``
    job_id, _ = start(stack, f"ended-{status.lower()}", 2)
    if status != "Complete":
        stack.services().notifier.end(job_id, JobStatus(status), "ended by the test")
    stack.settle()
    assert JobLedger.read(stack, job_id).status == status
    # When it is cancelled
    code, answer = call_api("POST", f"/jobs/{job_id}/cancel")
    # Then 409 JobAlreadyFinished naming its state, and still one terminal event, of that state
    assert (code, answer["error"]["code"], answer["error"]["details"]["status"]) == (409, "JobAlreadyFinished", status)
    assert terminal_of(stack, job_id)["Status"] == status


def test_a_finished_job_cannot_be_cancelled(stack: Stack) -> None:
    job_id, _ = start(stack, "done", 2)
    stack.settle()
    status, answer = call_api("POST", f"/jobs/{job_id}/cancel")
    assert (status, answer["error"]["code"]) == (409, "JobAlreadyFinished")
    assert JobLedger.read(stack, job_id).status == "Complete"
    assert terminal_of(stack, job_id)["Status"] == "Complete"


def cancelled_at_first_restore(stack: Stack, job_id: str) -> tuple[CallTracer, list[int]]:
    """The restore workers paced on a stepping clock, and the job cancelled over the API while S3
    answers their first request. Returns the tracer and, once cancelled, how many calls it had seen."""
    _clock, tracer = paced(stack)
    cancelled_at: list[int] = []

    def cancel_once(**_: Any) -> None:
        if not cancelled_at:
            cancel(job_id)
            cancelled_at.append(len(tracer.calls))

    stack.services().s3.client.meta.events.register("after-call.s3.RestoreObject", cancel_once)
    return tracer, cancelled_at


@pytest.mark.parametrize("stack_settings", settings(RESTORE_RATE_PER_SECOND=4))
def test_a_cancel_during_a_chunk_stops_the_requests_of_the_following_seconds(stack: Stack) -> None:
    # Given a job of one chunk of twelve objects, paced to 4 requests a second, cancelled while S3
    # answers the chunk's first request
    job_id, _objects = start(stack, "race", 12)
    tracer, cancelled_at = cancelled_at_first_restore(stack, job_id)
    # When the stack runs
    stack.drain()
    # Then the worker notices within a second of waiting: at most one second's share (4) more requests
    # go out, and every object after them is CANCELLED, never requested
    later = named(tracer.calls[cancelled_at[0] :], "s3.RestoreObject")
    assert len(later) <= 4
    ledger = JobLedger.read(stack, job_id)
    assert ledger.states() == {"RESTORING": 1 + len(later), "CANCELLED": 11 - len(later)}


def test_a_cancel_is_seen_by_the_next_window_of_requests_without_a_read_of_the_job(stack: Stack) -> None:
    # Given a job of three chunks taken in one delivery, two pacing windows of requests (the default
    # rate), cancelled over the API while S3 answers its first request
    job_id, _objects = start(stack, "window", PACING_WINDOW + 54)
    tracer, cancelled_at = cancelled_at_first_restore(stack, job_id)
    # When the stack runs
    stack.drain()
    # Then the first window's requests all went, and the write buying the second said the job had
    # ended: the 54 objects left were never requested, but recorded CANCELLED
    after = tracer.calls[cancelled_at[0] :]
    assert len(named(after, "s3.RestoreObject")) == PACING_WINDOW - 1
    ledger = JobLedger.read(stack, job_id)
    assert ledger.states() == {"RESTORING": PACING_WINDOW, "CANCELLED": 54}
    # And no read of the job came between the cancel and that write, one after it (to learn how it ended)
    writes = [i for i, c in enumerate(after) if c.operation == "dynamodb.UpdateItem" and "RATE#" in json.dumps(c.params)]
    assert len(writes) == 1
    reads = [i for i, c in enumerate(after) if c.operation == "dynamodb.GetItem" and c.params["Key"]["pk"]["S"] == f"JOB#{job_id}"]
    assert len(reads) == 1 and reads[0] > writes[0]
    assert JobLedger.read(stack, job_id).status == "Cancelled"
    assert terminal_of(stack, job_id)["Status"] == "Cancelled"


# ---- pacing --------------------------------------------------------------------------------------------


def paced(stack: Stack) -> tuple[SteppingClock, CallTracer]:
    """The restore workers' pacer (the real one, on the table) on a stepping clock that also stamps every call."""
    clock = SteppingClock()
    pacer = stack.services().restorer.pacer
    pacer.clock, pacer.sleep = clock.time, clock.sleep
    pacer.forget()  # what it knew was timed by another clock
    return clock, CallTracer(clock=clock.time).install(stack.services())


def restore_times(tracer: CallTracer, prefix: str = "") -> list[float]:
    return sorted(c.at for c in tracer.of("s3.RestoreObject") if c.params["Key"].startswith(prefix))


def slot_share(rate: int) -> int:
    """One tenth-second slot's share: what a sliding second may hold beyond the rate (see usecases/pacing.py)."""
    return -(-rate // min(10, rate))


def busiest_second(times: list[float]) -> int:
    """The most of ``times`` in any one-second window (S3 counts a sliding second)."""
    times = sorted(times)
    return max((bisect.bisect_left(times, t + 1.0) - i for i, t in enumerate(times)), default=0)


@pytest.mark.parametrize("stack_settings", settings(RESTORE_RATE_PER_SECOND=50))
def test_two_running_jobs_are_paced_to_their_shares_of_the_account_rate(stack: Stack) -> None:
    # Given a rate of 50 restores a second and two running jobs: a big one (three chunks of 20) and a small one (one of 20)
    big = [[ObjectId(DATA_BUCKET, f"big/{c}/{i:02d}.bin") for i in range(20)] for c in range(3)]
    small = [ObjectId(DATA_BUCKET, f"small/{i:02d}.bin") for i in range(20)]
    for obj in [o for chunk in big for o in chunk] + small:
        stack.put_archived(obj.key)
    big_job = stack.create_job(*stack.put_manifest(chunked_manifest(big), key="big.csv"))["BulkJobId"]
    small_job = stack.create_job(*stack.put_manifest(small, key="small.csv"))["BulkJobId"]
    clock, tracer = paced(stack)
    # When both are planned and their chunks requested
    stack.drain()
    # Then every object was requested once, and the big job was paced to its share (25 a second) over the run
    # (one worker here takes the chunks one after the other: fairness between concurrent workers is
    # test_the_pacer_keeps_each_running_job_to_its_share_and_starves_neither; single seconds,
    # test_a_chunk_larger_than_the_rate_is_spread_over_seconds)
    assert tracer.count("s3.RestoreObject") == 80
    big_times = restore_times(tracer, "big/")
    assert clock.slept and len(big_times) / (big_times[-1] - big_times[0] + 1) <= 25
    for job_id in (big_job, small_job):
        assert JobLedger.read(stack, job_id).states() == {"RESTORING": 20 * (3 if job_id == big_job else 1)}


def test_the_pacer_keeps_each_running_job_to_its_share_and_starves_neither(stack: Stack) -> None:
    # Given two running jobs and a pacer allowing 50 requests a second: 25 each
    jobs = [start(stack, name, 1)[0] for name in ("first", "second")]
    clock = SteppingClock(now=1_000_000.0)
    pacer = Pacer(stack.services().store, 50, clock.time, clock.sleep)
    assert pacer.share() == 25
    # When both keep asking for one request after the other, 60 each
    granted: dict[str, list[float]] = {job_id: [] for job_id in jobs}
    for _ in range(60):
        for job_id in jobs:
            pacer.acquire(job_id, 1)
            granted[job_id].append(clock.now)
    # Then neither got more than its share in any sliding second (give or take one tenth-second slot),
    # and neither fell behind the other
    assert all(busiest_second(times) <= 25 + slot_share(25) for times in granted.values())
    assert busiest_second(granted[jobs[0]] + granted[jobs[1]]) <= 50 + 2 * slot_share(25)
    assert abs(granted[jobs[0]][-1] - granted[jobs[1]][-1]) < 0.2


def test_a_running_job_can_use_its_whole_share(stack: Stack) -> None:
    job_id, _ = start(stack, "whole", 1)
    clock = SteppingClock(now=1_000_000.0)
    pacer = Pacer(stack.services().store, 19, clock.time, clock.sleep)
    for _ in range(19):
        pacer.acquire(job_id, 1)
    assert clock.now - 1_000_000.0 < 1.0


@pytest.mark.parametrize("stack_settings", settings(RESTORE_RATE_PER_SECOND=50))
def test_a_chunk_larger_than_the_rate_is_spread_over_seconds(stack: Stack) -> None:
    # Given a rate of 50 a second and one job whose one chunk holds 60 objects
    start(stack, "wide", 60)
    _clock, tracer = paced(stack)
    # When it runs
    stack.drain()
    # Then no sliding second saw more than 50 restore requests, give or take one tenth-second slot
    assert tracer.count("s3.RestoreObject") == 60
    assert busiest_second(restore_times(tracer)) <= 50 + slot_share(50), restore_times(tracer)


@pytest.mark.parametrize("stack_settings", settings(RESTORE_RATE_PER_SECOND=0))
def test_a_rate_of_zero_turns_pacing_off(stack: Stack) -> None:
    start(stack, "free", 60)
    clock, tracer = paced(stack)
    stack.drain()
    assert tracer.count("s3.RestoreObject") == 60 and busiest_second(restore_times(tracer)) == 60
    assert clock.slept == []
    assert not [c for c in tracer.calls if "RATE#" in json.dumps(c.params)]


def test_a_finished_job_whose_copies_are_kept_takes_no_share_of_the_rate(stack: Stack) -> None:
    kept, _ = start(stack, "kept", 1, keep_restored_days=30)
    stack.settle()
    assert JobLedger.read(stack, kept).on_sweep_list
    start(stack, "running", 1)
    assert Pacer(stack.services().store, 50).share() == 50


@pytest.mark.parametrize("stack_settings", settings(RESTORE_RATE_PER_SECOND=100))
def test_jobs_only_waiting_for_s3_take_no_share_of_the_rate(stack: Stack) -> None:
    # Given 20 one-object jobs whose requests are all sent: they only wait for S3 now
    waiting = [start(stack, f"waiting-{n:02d}", 1)[0] for n in range(20)]
    stack.drain()
    assert all(JobLedger.read(stack, job_id).states() == {"RESTORING": 1} for job_id in waiting)
    # When a 200-object job runs alone among them
    start(stack, "alone", 200)
    _clock, tracer = paced(stack)
    stack.drain()
    # Then it issued at the whole rate: 200 requests in about 2 seconds, not 20 times slower
    times = restore_times(tracer, "alone/")
    assert len(times) == 200
    assert times[-1] - times[0] < 3.0, times[-1] - times[0]
    assert busiest_second(times) <= 100 + slot_share(100)


def test_a_job_leaves_the_rate_once_every_chunk_is_accounted(stack: Stack) -> None:
    # Given a job planned and requested, still restoring
    job_id, _ = start(stack, "issued", 3)
    pacer = Pacer(stack.services().store, 50)
    assert stack.services().store.issuing_jobs() == [job_id]
    stack.drain()
    # Then it no longer counts as a job with requests to send, though it is still running
    assert JobLedger.read(stack, job_id).states() == {"RESTORING": 3}
    assert stack.services().store.issuing_jobs() == []
    assert JobLedger.read(stack, job_id).on_sweep_list
    assert pacer.share() == 50


# ---- throttling and Expedited capacity -------------------------------------------------------------------


@pytest.fixture
def backoff(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The restore workers' backoff sleeps, recorded instead of slept."""
    from bulk_restore.adapters import s3

    slept: list[float] = []
    monkeypatch.setattr(s3, "time", types.SimpleNamespace(sleep=slept.append))
    return slept


def keys_asked(tracer: CallTracer) -> Counter:
    return Counter(named(tracer.calls, "s3.RestoreObject"))


def test_slow_down_answers_are_retried_with_backoff_and_jitter_and_never_fail_an_object(stack: Stack, backoff: list[float]) -> None:
    # Given S3 answering SlowDown to the first three restore requests of two of a job's four objects
    job_id, objects = start(stack, "slow", 4)
    throttled = {objects[1].key, objects[3].key}
    tracer = CallTracer().install(stack.services())
    Throttle("RestoreObject", 3, per_key=True, match=lambda params: params["Key"] in throttled).install(stack.services().s3.client)
    # When the job runs
    stack.settle()
    # Then those two were asked four times (three answered SlowDown, then accepted), the others once
    assert keys_asked(tracer) == {o.key: 4 if o.key in throttled else 1 for o in objects}
    # And between tries the worker backed off exponentially, with full jitter
    assert len(backoff) == 6
    for attempt, pause in zip([0, 1, 2, 0, 1, 2], backoff, strict=True):
        assert 0 <= pause <= 0.1 * 2**attempt
    assert len(set(backoff)) == 6
    # And nothing failed: the job completed within one delivery of its chunk, each object counted once
    assert stack.restorer.invocations == 1
    assert_accounting(JobLedger.read(stack, job_id), objects)
    assert terminal_of(stack, job_id)["FailedBatchFiles"] == "0"


@pytest.mark.parametrize(("code", "tier"), [("SlowDown", "STANDARD"), ("GlacierExpeditedRetrievalNotAvailable", "EXPEDITED")])
def test_an_object_s3_keeps_refusing_for_now_has_its_chunk_retried_later_and_counted_once(
    stack: Stack, emulator: s3_restore.S3RestoreEmulator, backoff: list[float], code: str, tier: str
) -> None:
    # Given S3 refusing the second object's restore ten times in a row (more than a worker's eight tries)
    job_id, objects = start(stack, "later", 3, tier=tier)
    tracer = CallTracer().install(stack.services())
    Throttle("RestoreObject", 10, code, match=lambda params: params["Key"] == objects[1].key).install(stack.services().s3.client)
    # When the job runs
    stack.drain()
    # Then the chunk was given up once and delivered again; the object before it, asked again, got 409 (nothing charged twice)
    assert stack.restorer.invocations == 2
    attempts = {o.key: [a.status for a in tracer.restores if a.key == o.key] for o in objects}
    assert attempts == {objects[0].key: [202, 409], objects[1].key: [503] * 10 + [202], objects[2].key: [202]}
    # And nothing failed; once S3 completes the restores the job completes, each object counted once
    emulator.complete_all()
    stack.settle()
    ledger = JobLedger.read(stack, job_id)
    assert_accounting(ledger, objects)
    assert ledger.states() == {"RESTORED": 3}
    assert terminal_of(stack, job_id)["Status"] == "Complete"
    assert stack.dead_letters("restore") == []


def expedited(params: dict[str, Any]) -> bool:
    return params["RestoreRequest"]["GlacierJobParameters"]["Tier"] == "Expedited"


def tiers_asked(tracer: CallTracer, key: str) -> list[str]:
    return [c.params["RestoreRequest"]["GlacierJobParameters"]["Tier"] for c in tracer.of("s3.RestoreObject") if c.params["Key"] == key]


def test_with_expedited_fallback_an_object_without_expedited_capacity_is_restored_with_standard(
    stack: Stack, emulator: s3_restore.S3RestoreEmulator, backoff: list[float]
) -> None:
    # Given a job allowing the fallback, and S3 with no Expedited capacity for its second object
    job_id, objects = start(stack, "fallback", 3, tier="EXPEDITED", expedited_fallback=True)
    tracer = CallTracer().install(stack.services())
    Throttle(
        "RestoreObject",
        100,
        "GlacierExpeditedRetrievalNotAvailable",
        match=lambda params: expedited(params) and params["Key"] == objects[1].key,
    ).install(stack.services().s3.client)
    # When the job's chunk is requested
    stack.drain()
    # Then that object was asked with Expedited until the worker gave up, then with Standard; the others with Expedited
    assert tiers_asked(tracer, objects[1].key) == ["Expedited"] * 8 + ["Standard"]
    assert tiers_asked(tracer, objects[0].key) == tiers_asked(tracer, objects[2].key) == ["Expedited"]
    # And its reason says so, while it restores; the chunk was delivered once, nothing failed
    record = JobLedger.read(stack, job_id).record_of(objects[1])
    assert record["state"] == "RESTORING" and record["reason"] == "restored with Standard: Expedited had no capacity"
    assert stack.restorer.invocations == 1
    emulator.complete_all()
    stack.settle()
    assert_accounting(JobLedger.read(stack, job_id), objects)
    assert terminal_of(stack, job_id)["Status"] == "Complete"


def test_the_fallback_reason_survives_the_completion(stack: Stack, emulator: s3_restore.S3RestoreEmulator, backoff: list[float]) -> None:
    job_id, (obj,) = start(stack, "reason", 1, storage_class="DEEP_ARCHIVE", tier="EXPEDITED", expedited_fallback=True)
    stack.drain()
    emulator.complete_all()
    stack.settle()
    record = JobLedger.read(stack, job_id).record_of(obj)
    assert record["state"] == "RESTORED" and "restored with Standard" in record["reason"], record


@pytest.mark.parametrize(
    ("fallback", "state", "tiers", "reason"),
    [
        (True, "RESTORING", ["Expedited", "Standard"], "restored with Standard: Expedited was refused (InvalidArgument"),
        (False, "FAILED", ["Expedited"], "InvalidArgument: S3 rejected the request: Expedited retrieval is not available"),
    ],
)
def test_a_deep_archive_object_in_an_expedited_job_falls_back_to_standard_only_when_allowed(
    stack: Stack, emulator: s3_restore.S3RestoreEmulator, fallback: bool, state: str, tiers: list[str], reason: str
) -> None:
    # Given an Expedited job over a Deep Archive object (Deep Archive offers no Expedited)
    tracer = CallTracer().install(stack.services())
    job_id, (obj,) = start(stack, "deep", 1, storage_class="DEEP_ARCHIVE", tier="EXPEDITED", expedited_fallback=fallback)
    # When its chunk is requested
    stack.drain()
    # Then S3's refusal becomes a Standard restore with the fallback, a failure without it
    assert tiers_asked(tracer, obj.key) == tiers
    record = JobLedger.read(stack, job_id).record_of(obj)
    assert record["state"] == state and record["reason"].startswith(reason), record


# ---- keeping restored copies --------------------------------------------------------------------------


@pytest.mark.parametrize("stack_settings", settings(SWEEP_OBJECTS_PER_JOB=2))
def test_a_job_keeping_its_copies_has_them_renewed_before_expiry_until_its_keep_period_ends(stack: Stack) -> None:
    # Given a completed Bulk job (copies readable for 1 day) of three archived objects and a readable one,
    # which keeps its copies for 2 days
    objects = [ObjectId(DATA_BUCKET, f"kept/{i}.bin") for i in range(3)]
    readable = ObjectId(DATA_BUCKET, "kept/readable.txt")
    for obj in objects:
        stack.put_archived(obj.key)
    stack.put_archived(readable.key, storage_class="STANDARD")
    job_id = stack.create_job(*stack.put_manifest([*objects, readable]), tier="BULK", expiration_days=1, keep_restored_days=2)["BulkJobId"]
    stack.settle()
    assert terminal_of(stack, job_id)["Status"] == "Complete"
    assert JobLedger.read(stack, job_id).on_sweep_list
    clock = stepping_sweeper(stack)
    tracer = CallTracer().install(stack.services())
    began = clock.now

    def renewals(*hours: float) -> list[list[str]]:
        """Sweeps at these hours after the job completed: the keys each one asked S3 to restore again."""
        done = []
        for at in hours:
            clock.now = began + at * HOUR
            done.append(sorted(named(sweep(stack, tracer), "s3.RestoreObject")))
        return done

    keys = [o.key for o in objects]
    # When the sweeper runs at once, then half a day later (before the copies expire), run after run
    first = renewals(0, 12.5, 12.6, 12.7)
    # Then nothing was renewed at once; then every restored object once, two per run; then nothing until the next renewal
    assert [len(run) for run in first] == [0, 2, 1, 0] and sorted(first[1] + first[2]) == keys
    # And S3 answered 200 (a copy exists: its expiry moved), for the job's tier and Days
    assert {a.status for a in tracer.restores} == {200}
    assert {
        (c.params["RestoreRequest"]["Days"], c.params["RestoreRequest"]["GlacierJobParameters"]["Tier"])
        for c in tracer.of("s3.RestoreObject")
    } == {(1, "Bulk")}
    # When a day has passed, and then the two days of keeping
    second = renewals(36.6, 36.7, 36.8, 48.5, 49)
    # Then the copies were renewed once more, and after the keep period the job left the sweeper's list
    assert [len(run) for run in second] == [2, 1, 0, 0, 0] and sorted(second[0] + second[1]) == keys
    ledger = JobLedger.read(stack, job_id)
    assert not ledger.on_sweep_list
    assert_accounting(ledger, [*objects, readable])
    assert ledger.states() == {"RESTORED": 3, "SKIPPED": 1}
    assert terminal_of(stack, job_id)["Status"] == "Complete"


# ---- dead letters ------------------------------------------------------------------------------------------


def redrive(*dead_letter_urls: str) -> int:
    arguments = ["redrive", "--region", REGION]
    for url in dead_letter_urls:
        arguments += ["--dlq-url", url]
    return cli.main(arguments)


def test_a_poison_message_goes_to_the_dead_letter_queue_without_holding_back_its_batch(
    stack: Stack, emulator: s3_restore.S3RestoreEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a job whose two objects are restoring, and a batch of their completion events with garbage first
    job_id, objects = start(stack, "poison", 2)
    stack.drain()
    stack.send(stack.completion_queue_url, "this is not an S3 event")
    for obj in objects:
        stack.send(stack.completion_queue_url, samples.completion("eventbridge", obj.bucket, obj.key))
    # When the completion function takes the batch once
    assert stack.completion.poll_once(stack.sqs) == 3
    stack.counter.drain()
    # Then the events were accounted and the job completed at once (as soon as the stream was read)
    assert JobLedger.read(stack, job_id).states() == {"RESTORED": 2}
    assert terminal_of(stack, job_id)["Status"] == "Complete"
    # And the garbage, tried again, ends in the dead-letter queue after the queue's receive limit
    stack.drain()
    assert stack.completion.invocations == 1 + 4
    assert stack.dead_letters("completion") == ["this is not an S3 event"]
    assert stack.queue_depth(stack.completion_queue_url) == 0
    # When someone puts the dead letters back
    assert redrive(stack.dead_letter_urls["completion"]) == 0
    # Then the message is back on the completion queue and the dead-letter queue is empty
    assert "1 message(s) redriven" in capsys.readouterr().out
    assert stack.queue_depth(stack.completion_queue_url) == 1 and stack.dead_letters("completion") == []


def test_events_dead_lettered_during_an_outage_are_accounted_once_redriven(stack: Stack, emulator: s3_restore.S3RestoreEmulator) -> None:
    # Given a job whose restores complete while DynamoDB refuses every object write
    job_id, objects = start(stack, "outage", 2)
    stack.drain()
    outage = Throttle("BatchExecuteStatement", 1000, "InternalServerError", 500).install(stack.services().store.client)
    emulator.complete_all()
    stack.drain()
    assert len(stack.dead_letters("completion")) == 2
    assert JobLedger.read(stack, job_id).states() == {"RESTORING": 2}
    # When DynamoDB is back and the dead letters are redriven
    outage.times = 0
    assert redrive(stack.dead_letter_urls["completion"]) == 0
    stack.drain()
    # Then the events are accounted, each object once, and the job completes with one event
    ledger = JobLedger.read(stack, job_id)
    assert_accounting(ledger, objects)
    assert ledger.states() == {"RESTORED": 2}
    assert terminal_of(stack, job_id)["Status"] == "Complete"
    assert stack.dead_letters("completion") == []


def test_a_poison_planning_step_does_not_hold_back_other_jobs_and_is_redriven_in_its_group(stack: Stack) -> None:
    # Given a garbage message in its own group on the planner's FIFO queue, and a job created after it
    stack.send(stack.plan_queue_url, "not a plan step", MessageGroupId="poison-group", MessageDeduplicationId="poison")
    job_id, objects = start(stack, "fifo", 2)
    # When the stack runs
    stack.settle()
    # Then the job completed; the garbage went to the dead-letter queue
    assert_accounting(JobLedger.read(stack, job_id), objects)
    assert stack.dead_letters("plan") == ["not a plan step"]
    # When the dead letters are redriven
    assert redrive(stack.dead_letter_urls["plan"]) == 0
    # Then the message is back on the FIFO queue in its own group
    (back,) = stack.sqs.receive_message(QueueUrl=stack.plan_queue_url, AttributeNames=["All"]).get("Messages", [])
    assert (back["Body"], back["Attributes"]["MessageGroupId"]) == ("not a plan step", "poison-group")


def test_moving_messages_back_to_a_fifo_queue_keeps_their_groups_and_order(stack: Stack) -> None:
    # Given dead letters of two groups on the planner's FIFO dead-letter queue
    dead_letters = stack.dead_letter_urls["plan"]
    sent = [("job-a", 0), ("job-b", 0), ("job-a", 1)]
    for group, step in sent:
        stack.send(dead_letters, {"job_id": group, "step": step}, MessageGroupId=group, MessageDeduplicationId=f"{group}-{step}")
    # When they are moved back
    assert move_messages(stack.sqs, dead_letters, stack.plan_queue_url) == 3
    # Then each is on the queue with its group, in its group's order
    got = []
    while messages := stack.sqs.receive_message(QueueUrl=stack.plan_queue_url, MaxNumberOfMessages=10, AttributeNames=["All"]).get(
        "Messages", []
    ):
        for m in messages:
            got.append((m["Attributes"]["MessageGroupId"], json.loads(m["Body"])["step"]))
            stack.sqs.delete_message(QueueUrl=stack.plan_queue_url, ReceiptHandle=m["ReceiptHandle"])
    assert sorted(got) == sorted(sent)
    assert [s for g, s in got if g == "job-a"] == [0, 1]
    assert stack.queue_depth(dead_letters) == 0


# ---- the bucket allow-list ----------------------------------------------------------------------------

OTHER = "other-bkt"


@pytest.mark.parametrize("stack_settings", settings(ALLOWED_BUCKETS=DATA_BUCKET))
def test_only_allowed_buckets_are_restored(stack: Stack) -> None:
    # Given a stack allowed to restore from one bucket, and archived objects in another too
    allowed = [ObjectId(DATA_BUCKET, f"ok/{i}.bin") for i in range(2)]
    refused = [ObjectId(OTHER, f"no/{i}.bin") for i in range(2)]
    for obj in allowed + refused:
        stack.put_archived(obj.key, bucket=obj.bucket)
    tracer = CallTracer().install(stack.services())
    # When a job's manifest starts with the other bucket, it is refused at once, naming the bucket and the parameter
    status, answer = call_api(
        "POST", "/create-job", {"bucket": stack.put_manifest(refused + allowed, key="first.csv")[0], "key": "first.csv"}
    )
    assert (status, answer["error"]["code"]) == (403, "BucketNotAllowed")
    assert OTHER in answer["error"]["message"] and "AllowedBuckets" in answer["error"]["message"]
    assert not [i for i in scan_table(stack) if i["sk"] == "META"]
    # When a job's manifest names the other bucket on later rows
    job_id = stack.create_job(*stack.put_manifest([allowed[0], *refused, allowed[1]], key="later.csv"))["BulkJobId"]
    stack.settle()
    # Then those rows are FAILED BucketNotAllowed and were never sent to S3; the rest is restored
    ledger = JobLedger.read(stack, job_id)
    assert_accounting(ledger, allowed + refused)
    assert [ledger.state_of(o) for o in refused] == ["FAILED", "FAILED"]
    assert all(ledger.record_of(o)["reason"].startswith("BucketNotAllowed") for o in refused)
    assert {a.bucket for a in tracer.restores} == {DATA_BUCKET}
    assert terminal_of(stack, job_id)["FailedBatchFiles"] == "2"


@pytest.mark.parametrize("stack_settings", settings(ALLOWED_BUCKETS=DATA_BUCKET))
def test_a_bucket_outside_the_allow_list_is_not_touched_at_all(stack: Stack) -> None:
    stack.put_archived("ok.bin")
    stack.put_archived("no.bin", bucket=OTHER)
    tracer = CallTracer().install(stack.services())
    stack.create_job(*stack.put_manifest([ObjectId(DATA_BUCKET, "ok.bin"), ObjectId(OTHER, "no.bin")]))["BulkJobId"]
    stack.drain()
    assert [c.operation for c in tracer.calls if c.params.get("Bucket") == OTHER] == []
    assert not [i for i in scan_table(stack) if i["pk"] == f"BUCKET#{OTHER}"]
