"""The restore function takes a delivery's chunks of one job together, records each object before
its restore is requested, and buys its pacing two chunks' worth of requests at a time.

What a delivery of the direct engine costs DynamoDB (one read, a pacing write per PACING_WINDOW requests, the
objects 25 to a request, one write of the markers), that no completion can come before its object
is recorded, that a line repeated across the delivery's chunks is asked for once, and what the
handler answers when some messages of a delivery fail. The pacer's schedule: one write buys a
window, windows of workers never overlap, and an idle schedule banks nothing.
"""

from __future__ import annotations

import json
import math

import pytest

from bulk_restore.adapters.dynamodb import object_key
from bulk_restore.domain.model import ObjectId
from bulk_restore.usecases.pacing import Pacer
from bulk_restore.usecases.restore import PACING_WINDOW
from bulk_restore_cli.local.lambda_runtime import LambdaContext, SqsEventSource
from support import samples
from support.clock import SteppingClock
from support.faults import CallTracer
from support.ledger import JobLedger, assert_accounting
from support.stack import DATA_BUCKET, Stack
from test_lifecycle import chunked_manifest


def archived(stack: Stack, prefix: str, n: int) -> list[ObjectId]:
    objects = [ObjectId(DATA_BUCKET, f"{prefix}/{i:03d}.bin") for i in range(n)]
    for obj in objects:
        stack.put_archived(obj.key)
    return objects


def drain(stack: Stack, source: SqsEventSource) -> None:
    """Run one function until its queue is empty."""
    while source.poll_once(stack.sqs):
        pass


def is_item(stack: Stack):  # type: ignore[no-untyped-def]
    """A probe: has any job of the stack an item for this object, in whatever state?"""

    def probe(bucket: str, key: str, version_id: str | None) -> bool:
        ref = ObjectId(bucket, key, version_id).ref
        for job_id in stack.job_ids:
            item_key = {k: {"S": v} for k, v in object_key(job_id, ref).items()}
            if "Item" in stack.ddb.get_item(TableName=stack.table_name, Key=item_key, ConsistentRead=True):
                return True
        return False

    return probe


def test_a_delivery_of_three_chunks_costs_one_read_a_pacing_write_per_window_and_one_marker_write(stack: Stack) -> None:
    # Given a job of three chunks of 60 objects each, planned: its three messages wait on the restore queue
    groups = [archived(stack, f"c{c}", 60) for c in range(3)]
    job_id = stack.create_job(*stack.put_manifest(chunked_manifest(groups), key="three.csv"))["BulkJobId"]
    drain(stack, stack.planner)
    tracer = CallTracer(restore_probe=is_item(stack)).install(stack.services())
    # When the restore function takes them, in one delivery
    drain(stack, stack.restorer)
    assert stack.restorer.invocations == 1
    # Then it read the job and the three markers once, bought the pacing for 196 requests at a time
    # (one window for 180), wrote the 180 objects 25 to a request and the three markers in one more
    assert len(tracer.of("dynamodb.BatchGetItem")) == 1
    assert len(tracer.of("dynamodb.GetItem")) == 0
    pacing = [c for c in tracer.of("dynamodb.UpdateItem") if "RATE#" in json.dumps(c.params)]
    assert len(pacing) == math.ceil(180 / PACING_WINDOW) == 1
    assert len(tracer.of("dynamodb.BatchExecuteStatement")) == math.ceil(180 / 25) + 1
    # And every object was recorded before S3 was asked to restore it, once
    assert len(tracer.restores) == 180
    assert all(attempt.recorded_before for attempt in tracer.restores)
    # And the job completes, each object counted once
    stack.settle()
    assert_accounting(JobLedger.read(stack, job_id), [o for g in groups for o in g], error_lines=0)


def test_a_line_repeated_in_another_chunk_of_the_delivery_is_asked_for_once(stack: Stack) -> None:
    # Given a manifest whose second chunk repeats an object of the first
    first, second = archived(stack, "a", 3), archived(stack, "b", 2)
    job_id = stack.create_job(*stack.put_manifest(chunked_manifest([first, [first[0], *second]]), key="repeat.csv"))["BulkJobId"]
    tracer = CallTracer().install(stack.services())
    # When the job runs
    stack.drain()
    # Then S3 was asked once per object, and the repeated line counted once
    keys = [attempt.key for attempt in tracer.restores]
    assert sorted(keys) == sorted(o.key for o in first + second)
    ledger = JobLedger.read(stack, job_id)
    assert ledger.states() == {"RESTORING": 5} and ledger.counters["total"] == 5 and ledger.chunk_markers == 2


def test_a_completion_right_after_the_request_finds_its_object_and_nothing_is_kept_early(stack: Stack) -> None:
    # Given a job of 5 objects, and S3 completing each restore the moment it accepts it
    objects = archived(stack, "quick", 5)
    job_id = stack.create_job(*stack.put_manifest(objects, key="quick.csv"))["BulkJobId"]
    drain(stack, stack.planner)
    tracer = CallTracer(restore_probe=is_item(stack)).install(stack.services())
    # When the restores are requested, each completion event delivered as soon as it is sent
    drain(stack, stack.restorer)
    for obj in objects:
        stack.send(stack.completion_queue_url, samples.s3_notification(obj.bucket, obj.key))
    drain(stack, stack.completion)
    stack.settle()
    # Then every object was recorded before its request, each completion moved its object, and no
    # completion was kept for later
    assert all(attempt.recorded_before for attempt in tracer.restores)
    ledger = JobLedger.read(stack, job_id)
    assert ledger.states() == {"RESTORED": 5} and ledger.status == "Complete"
    assert not [c for c in tracer.calls if "EARLY" in json.dumps(c.params)]


def test_the_handler_reports_only_the_messages_that_failed_and_fails_when_all_did(stack: Stack) -> None:
    from bulk_restore.handlers import restorer

    # Given a job, and a delivery of one good chunk and one unreadable message
    objects = archived(stack, "mixed", 2)
    job_id = stack.create_job(*stack.put_manifest(objects, key="mixed.csv"))["BulkJobId"]
    good = json.dumps(samples.restore_chunk(job_id, chunk=0, rows=[[i + 1, o.bucket, o.key, ""] for i, o in enumerate(objects)], errors=[]))
    event = samples.with_bodies("restore_chunk.json", [good, "{not json"])
    # When the restore function gets it
    result = restorer.handler(event, LambdaContext("restorer"))
    # Then only the unreadable message comes again, and the good chunk is accounted
    assert result == {"batchItemFailures": [{"itemIdentifier": event["Records"][1]["messageId"]}]}
    assert JobLedger.read(stack, job_id).states() == {"RESTORING": 2}
    # And a malformed chunk of the same job (a row cut short) fails alone, its sibling accounted
    more = archived(stack, "more", 1)
    sibling = json.dumps(samples.restore_chunk(job_id, chunk=1, rows=[[99, more[0].bucket, more[0].key, ""]], errors=[]))
    cut = json.dumps(samples.restore_chunk(job_id, chunk=2, rows=[[197, more[0].bucket]], errors=[]))
    event = samples.with_bodies("restore_chunk.json", [sibling, cut])
    assert restorer.handler(event, LambdaContext("restorer")) == {
        "batchItemFailures": [{"itemIdentifier": event["Records"][1]["messageId"]}]
    }
    assert JobLedger.read(stack, job_id).states() == {"RESTORING": 3}
    # And a delivery in which every message fails fails the invocation: all of it comes again
    with pytest.raises(restorer.DeliveryFailed):
        restorer.handler(samples.with_bodies("restore_chunk.json", ["{not json", "[]"]), LambdaContext("restorer"))


def test_one_write_buys_a_window_windows_never_overlap_and_an_idle_schedule_banks_nothing(stack: Stack) -> None:
    # Given a running job, and two workers' pacers at 50 requests a second on one clock
    objects = archived(stack, "paced", 1)
    job_id = stack.create_job(*stack.put_manifest(objects, key="paced.csv"))["BulkJobId"]
    clock = SteppingClock(now=1_000_000.0)
    first, second = (Pacer(stack.services().store, 50, clock.time, clock.sleep) for _ in range(2))
    tracer = CallTracer().install(stack.services())
    # When one buys 50 requests, the other 25, then the first 50 more
    windows = [(p.reserve(job_id, n), n) for p, n in ((first, 50), (second, 25), (first, 50))]
    # Then each window starts where the one before ended, at 50 a second, never overlapping
    assert [window.start for window, _ in windows] == [1_000_000.0, 1_000_001.0, 1_000_001.5]
    assert all(window.spacing == pytest.approx(1 / 50) and not window.stopped for window, _ in windows)
    # And each cost one write, but the second worker's, whose guess of an idle schedule was wrong (two)
    assert [c.params["Key"]["pk"]["S"] for c in tracer.of("dynamodb.UpdateItem")] == ["RATE#job#" + job_id] * 4
    # And after ten idle seconds a window starts now: nothing was banked for a burst
    clock.sleep(10.0)
    assert first.reserve(job_id, 100).start == clock.now
    assert second.reserve(job_id, 1).start == pytest.approx(clock.now + 2.0)
