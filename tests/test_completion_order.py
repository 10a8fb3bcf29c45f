"""No completion waits for the sweeper: whatever the order of a restore worker's steps and S3's
completion events, every object completes through its event, and the job ends at once.

- A completion can come before its object is recorded: the restore worker records a chunk's
  objects after S3 has answered all of them, and S3 may complete a restore meanwhile (above all
  when it answered 409: another job or tool was already restoring the object).
- A job that started after the completion worker last looked at a bucket's jobs gets its
  completions too.
- Version "null" (objects written before versioning was enabled) matches in rows and events.

Every test here ends the job before any sweep: the sweeper is for events S3 never sent.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest

from bulk_restore.domain.model import ObjectId
from bulk_restore_cli.local import s3_restore
from support import samples
from support.faults import CLIENT_NAMES, RUNNING
from support.ledger import JobLedger, assert_accounting, assert_one_terminal_event
from support.stack import DATA_BUCKET, Stack, open_stack

SETTINGS = {"RESTORE_CONCURRENCY": 1, "EVENT_LEASE_SECONDS": 0}
BY_ANOTHER_TOOL = ObjectId(DATA_BUCKET, "shared/being restored by another tool.bin")
FRESH = ObjectId(DATA_BUCKET, "fresh/requested by the job.bin")


@contextmanager
def emulated_stack(**settings: Any) -> Iterator[Stack]:
    with open_stack(**SETTINGS, **settings) as stack, s3_restore.S3RestoreEmulator() as emulator:
        stack.restore_emulator = emulator
        yield stack


@dataclass
class CompleteDuring:
    """At the restore worker's Nth AWS call (just before it, or just after it), S3 completes every
    restore it has running and the completion function handles the events it sent, at once."""

    stack: Stack
    at: int | None
    phase: str = "before"
    calls: list[str] = field(default_factory=list)  # the restore worker's calls, in order
    delivered: bool = False

    def install(self) -> CompleteDuring:
        services = self.stack.services()
        for name in CLIENT_NAMES:
            events = getattr(services, name).client.meta.events
            events.register("before-call.*.*", self._before)
            events.register("after-call.*.*", self._after)
        return self

    def _before(self, model: Any, **_: Any) -> None:
        if RUNNING["function"] != "restorer":
            return  # the completion function's own calls, among others
        self.calls.append(f"{model.service_model.service_id.hyphenize()}.{model.name}")
        if self.phase == "before":
            self._maybe_deliver()

    def _after(self, **_: Any) -> None:
        if RUNNING["function"] == "restorer" and self.phase == "after":
            self._maybe_deliver()

    def _maybe_deliver(self) -> None:
        if self.delivered or len(self.calls) != self.at:
            return
        self.delivered = True
        self.stack.restore_emulator.complete_all()
        while self.stack.completion.poll_once(self.stack.sqs):
            pass


@contextmanager
def job_with_completion_at(at: int | None, phase: str) -> Iterator[tuple[Stack, CompleteDuring, str]]:
    """A job of two objects: one another tool is already restoring (S3 answers the job 409), one
    fresh (202). S3 completes what it has running at the restore worker's call ``at``; then the
    stack runs until quiet, with no sweep."""
    with emulated_stack() as stack:
        for obj in (BY_ANOTHER_TOOL, FRESH):
            stack.put_archived(obj.key)
        stack.s3.restore_object(
            Bucket=DATA_BUCKET, Key=BY_ANOTHER_TOOL.key, RestoreRequest={"Days": 1, "GlacierJobParameters": {"Tier": "Standard"}}
        )
        hook = CompleteDuring(stack, at, phase).install()
        job_id = stack.create_job(*stack.put_manifest([BY_ANOTHER_TOOL, FRESH]))["BulkJobId"]
        stack.drain()
        stack.restore_emulator.complete_all()  # S3 completes what is left
        stack.drain()
        yield stack, hook, job_id


def restore_worker_calls() -> list[str]:
    with job_with_completion_at(None, "before") as (_, hook, _):
        assert "s3.RestoreObject" in hook.calls and "dynamodb.BatchExecuteStatement" in hook.calls
        return hook.calls


CLEAN_RUN_CALLS = len(restore_worker_calls())


@pytest.mark.parametrize("phase", ["before", "after"])
@pytest.mark.parametrize("at", range(1, CLEAN_RUN_CALLS + 1))
def test_a_completion_delivered_between_any_two_steps_of_the_restore_worker_completes_the_job_at_once(at: int, phase: str) -> None:
    # Given a job whose objects S3 completes, with their events handled, at the restore worker's call ``at``
    with job_with_completion_at(at, phase) as (stack, hook, job_id):
        assert hook.delivered, f"the restore worker made fewer than {at} calls"
        # Then, before any sweep, every object is RESTORED, counted once, and the job is Complete with one event
        ledger = JobLedger.read(stack, job_id)
        assert ledger.states() == {"RESTORED": 2}, (hook.calls[at - 1], [(o["key"], o["state"]) for o in ledger.objects])
        assert_accounting(ledger, [BY_ANOTHER_TOOL, FRESH])
        assert ledger.status == "Complete"
        assert assert_one_terminal_event(stack.events_of(job_id), job_id).message["Status"] == "Complete"


def test_a_completion_that_comes_before_its_object_is_recorded_is_kept_not_dropped() -> None:
    # Given a chunk whose restores S3 completes (events handled) just before the worker records the chunk
    record = restore_worker_calls().index("dynamodb.BatchExecuteStatement") + 1
    with job_with_completion_at(record, "before") as (stack, _, job_id):
        # Then the events were kept for the job, and the job completed from them, not from a sweep
        kept = [i for i in stack.ddb.scan(TableName=stack.table_name)["Items"] if i["pk"]["S"].startswith("EARLY#")]
        assert kept, "no completion was kept"
        assert JobLedger.read(stack, job_id).status == "Complete"


def test_a_kept_completion_of_an_earlier_restore_does_not_complete_a_new_request() -> None:
    with emulated_stack() as stack:
        # Given a completion event of long ago for an object, kept while a job was issuing
        stack.put_archived(FRESH.key)
        stack.put_archived("other.bin")
        first = stack.create_job(*stack.put_manifest([ObjectId(DATA_BUCKET, "other.bin")], key="first.csv"))["BulkJobId"]
        stack.planner.poll_once(stack.sqs)  # the first job registers the bucket and is still issuing
        old = json.loads(samples.eventbridge_completed(DATA_BUCKET, FRESH.key))
        old["time"] = "2020-01-01T00:00:00Z"
        stack.send(stack.completion_queue_url, json.dumps(old))
        stack.completion.poll_once(stack.sqs)
        # When a new job requests the object (S3 answers 202: a new restore) and S3 has not completed it
        second = stack.create_job(*stack.put_manifest([FRESH], key="second.csv"))["BulkJobId"]
        stack.drain()
        # Then the object is RESTORING: the old event is not this restore's
        assert JobLedger.read(stack, second).states() == {"RESTORING": 1}
        # And when S3 completes it, the job completes
        stack.settle()
        assert JobLedger.read(stack, second).status == "Complete"
        assert JobLedger.read(stack, first).status == "Complete"


def test_a_job_started_after_the_completion_worker_read_a_buckets_jobs_still_gets_its_completion() -> None:
    with emulated_stack() as stack:
        # Given job A restoring x
        x = ObjectId(DATA_BUCKET, "x.bin")
        stack.put_archived(x.key)
        stack.put_archived("y.bin")
        job_a = stack.create_job(*stack.put_manifest([x], key="a.csv"))["BulkJobId"]
        stack.drain()
        # And an event in the bucket that made the completion worker read the bucket's jobs
        stack.send(stack.completion_queue_url, samples.eventbridge_completed(DATA_BUCKET, "y.bin"))
        stack.drain()
        # When job B then asks for x (S3 answers 409: A's restore is running) and x completes
        job_b = stack.create_job(*stack.put_manifest([x], key="b.csv"))["BulkJobId"]
        stack.drain()
        assert JobLedger.read(stack, job_b).states() == {"RESTORING": 1}
        stack.settle()
        # Then both jobs complete, before any sweep
        for job_id in (job_a, job_b):
            ledger = JobLedger.read(stack, job_id)
            assert (ledger.status, dict(ledger.states())) == ("Complete", {"RESTORED": 1}), job_id
            assert_one_terminal_event(stack.events_of(job_id), job_id)


@pytest.mark.parametrize("shape", ["s3", "eventbridge", "sns"])
@pytest.mark.parametrize("event_version", ["null", None])
def test_a_row_naming_version_null_completes_from_its_event(shape: str, event_version: str | None) -> None:
    with open_stack(**SETTINGS) as stack:
        # Given an object written before versioning was enabled (its version id is "null")
        stack.put_archived("old.bin")
        stack.enable_versioning(DATA_BUCKET)
        stack.put_archived("new.bin")
        # And a manifest row "bucket,old.bin,null", as S3 Batch manifests and inventories spell it
        job_id = stack.create_job(*stack.put_manifest([f"{DATA_BUCKET},old.bin,null"]))["BulkJobId"]
        stack.drain()
        assert JobLedger.read(stack, job_id).states() == {"RESTORING": 1}
        # When its completion event comes, with version "null" or none
        stack.send(stack.completion_queue_url, samples.completion(shape, DATA_BUCKET, "old.bin", event_version))
        stack.drain()
        # Then the object is RESTORED and the job Complete
        ledger = JobLedger.read(stack, job_id)
        assert (ledger.status, dict(ledger.states())) == ("Complete", {"RESTORED": 1})


def test_a_real_version_event_does_not_complete_the_null_version_row() -> None:
    with open_stack(**SETTINGS) as stack:
        stack.put_archived("old.bin")
        stack.enable_versioning(DATA_BUCKET)
        new_version = stack.put_archived("old.bin")
        job_id = stack.create_job(*stack.put_manifest([f"{DATA_BUCKET},old.bin,null"]))["BulkJobId"]
        stack.drain()
        # When the completion of the newer version comes
        stack.send(stack.completion_queue_url, samples.completion("eventbridge", DATA_BUCKET, "old.bin", new_version))
        stack.drain()
        # Then the null version is still restoring
        assert JobLedger.read(stack, job_id).states() == {"RESTORING": 1}


def test_a_restore_worker_reads_no_kept_completions_where_none_were_kept_since_its_chunk_began() -> None:
    from support.faults import CallTracer

    def early_reads(tracer: CallTracer) -> list[str]:
        return [
            key["pk"]["S"]
            for call in tracer.of("dynamodb.BatchGetItem", "restorer")
            for request in call.params["RequestItems"].values()
            for key in request["Keys"]
            if key["pk"]["S"].startswith("EARLY#")
        ]

    # Given a job of two objects whose completions all come after they are recorded
    with emulated_stack() as stack:
        for obj in (BY_ANOTHER_TOOL, FRESH):
            stack.put_archived(obj.key)
        tracer = CallTracer().install(stack.services())
        job_id = stack.create_job(*stack.put_manifest([BY_ANOTHER_TOOL, FRESH]))["BulkJobId"]
        stack.drain()
        stack.restore_emulator.complete_all()
        stack.drain()
        # Then the restore worker never read a kept completion (one small read of the bucket's note instead)
        assert early_reads(tracer) == []
        assert JobLedger.read(stack, job_id).status == "Complete"
    # And where one was kept meanwhile (before the chunk was recorded), it reads them, and completes the job at once
    record = restore_worker_calls().index("dynamodb.BatchExecuteStatement") + 1
    with job_with_completion_at(record, "before") as (stack, _, job_id):
        assert JobLedger.read(stack, job_id).status == "Complete"


# ---- how many reads a completion costs --------------------------------------------------------


def completion_reads(tracer: Any) -> list[str]:
    """The keys the completion function read (BatchGetItem), as "pk/sk"."""
    return [
        f"{key['pk']['S']}/{key['sk']['S']}"
        for call in tracer.of("dynamodb.BatchGetItem", "completion")
        for request in call.params["RequestItems"].values()
        for key in request["Keys"]
    ]


def link_of(stack: Stack, job_id: str, bucket: str = DATA_BUCKET) -> dict[str, Any]:
    return stack.ddb.get_item(TableName=stack.table_name, Key={"pk": {"S": f"BUCKET#{bucket}"}, "sk": {"S": f"JOB#{job_id}"}})["Item"]


def test_a_completion_in_a_bucket_of_one_job_moves_its_object_without_a_read() -> None:
    from support.faults import CallTracer

    with emulated_stack() as stack:
        # Given a job of three objects, all recorded RESTORING (no versions in the manifest)
        objects = [ObjectId(DATA_BUCKET, f"one-job/{n}.bin") for n in range(3)]
        for obj in objects:
            stack.put_archived(obj.key)
        job_id = stack.create_job(*stack.put_manifest(objects))["BulkJobId"]
        stack.drain()
        assert "versioned" in link_of(stack, job_id) and link_of(stack, job_id)["versioned"] == {"BOOL": False}
        # When S3 completes them, and then sends one completion again
        tracer = CallTracer().install(stack.services())
        stack.restore_emulator.complete_all()
        stack.drain()
        stack.send(stack.completion_queue_url, samples.eventbridge_completed(DATA_BUCKET, objects[0].key))
        stack.drain()
        # Then the completion function read no object: each event's object was moved by a conditional write
        assert completion_reads(tracer) == []
        statements = [
            s["Statement"] for call in tracer.of("dynamodb.BatchExecuteStatement", "completion") for s in call.params["Statements"]
        ]
        assert len(statements) == 3 and all(s.startswith("UPDATE") for s in statements)  # the ended job left the bucket
        # And every object is counted once, with one terminal event
        ledger = JobLedger.read(stack, job_id)
        assert_accounting(ledger, objects)
        assert (ledger.status, dict(ledger.states())) == ("Complete", {"RESTORED": 3})
        assert_one_terminal_event(stack.events_of(job_id), job_id)


def test_a_versioned_manifest_completes_by_version_and_reads_nothing() -> None:
    from support.faults import CallTracer

    with open_stack(**SETTINGS) as stack:
        # Given a versioned bucket with two versions of one key, and a job asking for the older one
        stack.enable_versioning(DATA_BUCKET)
        old = stack.put_archived("doc.bin")
        new = stack.put_archived("doc.bin")
        assert old and new and old != new
        job_id = stack.create_job(*stack.put_manifest([f"{DATA_BUCKET},doc.bin,{old}"]))["BulkJobId"]
        stack.drain()
        assert link_of(stack, job_id)["versioned"] == {"BOOL": True}
        tracer = CallTracer().install(stack.services())
        # When the newer version's completion comes, then the older one's
        stack.send(stack.completion_queue_url, samples.completion("eventbridge", DATA_BUCKET, "doc.bin", new))
        stack.drain()
        assert JobLedger.read(stack, job_id).states() == {"RESTORING": 1}
        stack.send(stack.completion_queue_url, samples.completion("s3", DATA_BUCKET, "doc.bin", old))
        stack.drain()
        # Then only the older one completed the job, and no object was read
        ledger = JobLedger.read(stack, job_id)
        assert (ledger.status, dict(ledger.states())) == ("Complete", {"RESTORED": 1})
        assert completion_reads(tracer) == []


def test_a_bucket_link_that_does_not_say_whether_rows_are_versioned_is_looked_up_in_both_forms() -> None:
    from support.faults import CallTracer

    with emulated_stack() as stack:
        # Given a recorded job whose bucket link does not say how its rows are versioned (a link of an earlier release)
        stack.put_archived(FRESH.key)
        job_id = stack.create_job(*stack.put_manifest([FRESH]))["BulkJobId"]
        stack.drain()
        stack.ddb.update_item(
            TableName=stack.table_name,
            Key={"pk": {"S": f"BUCKET#{DATA_BUCKET}"}, "sk": {"S": f"JOB#{job_id}"}},
            UpdateExpression="REMOVE versioned",
        )
        tracer = CallTracer().install(stack.services())
        # When S3 completes the object
        stack.restore_emulator.complete_all()
        stack.drain()
        # Then the event's object was looked up in both forms (with version "null" and as the current version), and moved
        assert len(completion_reads(tracer)) == 2
        ledger = JobLedger.read(stack, job_id)
        assert (ledger.status, dict(ledger.states())) == ("Complete", {"RESTORED": 1})


def test_two_jobs_in_one_bucket_look_each_event_up_once_per_job() -> None:
    from support.faults import CallTracer

    with emulated_stack() as stack:
        # Given two jobs restoring different objects of one bucket, both done issuing
        a, b = ObjectId(DATA_BUCKET, "two/a.bin"), ObjectId(DATA_BUCKET, "two/b.bin")
        for obj in (a, b):
            stack.put_archived(obj.key)
        job_a = stack.create_job(*stack.put_manifest([a], key="a.csv"))["BulkJobId"]
        job_b = stack.create_job(*stack.put_manifest([b], key="b.csv"))["BulkJobId"]
        stack.drain()
        tracer = CallTracer().install(stack.services())
        # When S3 completes both
        stack.restore_emulator.complete_all()
        stack.drain()
        # Then each event was looked up once in each job (one form: the manifests have no versions), and both jobs completed
        reads = completion_reads(tracer)
        assert len(reads) == 4 and len(set(reads)) == 4
        for job_id in (job_a, job_b):
            ledger = JobLedger.read(stack, job_id)
            assert (ledger.status, dict(ledger.states())) == ("Complete", {"RESTORED": 1})
            assert_one_terminal_event(stack.events_of(job_id), job_id)
