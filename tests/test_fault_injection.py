"""Exactly-once accounting and exactly one terminal event, under crashes, duplicates and reordering.

The issue this suite stands for: each object is counted exactly once and the job's counters
always equal its objects' states, under duplicate and reordered events, Lambda retries, and a
crash between any two AWS calls; exactly one terminal event per job.

A crash is injected with botocore hooks on the four clients the functions use (support/faults.py):
before or after the Nth AWS call of a run, for every N a clean run makes. The function dies
there like a killed Lambda (its batch is redelivered; a create-job client retries with its
Idempotency-Key); the run then goes on until every queue is quiet, and the invariants are
checked on the table and the topic directly, not through the code under test.

The one window where a second *copy* of an event can be published: a function that dies after
SNS accepted the event and before the job's outbox entry was cleared (after Publish, during the
bucket unregistration, before or during the outbox clear) leaves the entry behind, and the next
evaluation of the job publishes it again. Both copies carry the same EventId, which is how a
subscriber drops the copy. Nowhere else may an event go out twice.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bulk_restore.domain.model import ObjectId
from support.api import call_api
from support.faults import CallTracer, SimulatedCrash
from support.ledger import JobLedger, assert_accounting, assert_counters_match, assert_one_terminal_event
from support.stack import DATA_BUCKET, Stack, open_stack

# The local runtime redelivers a failed message at once (not after the queue's visibility
# timeout), so the publish lease of an event whose publisher died must lapse at once too.
FAULT_SETTINGS = {"RESTORE_CONCURRENCY": 1, "EVENT_LEASE_SECONDS": 0}
ARCHIVE_CLASSES = ("GLACIER", "DEEP_ARCHIVE")


# Two things are checked of every run. Correctness, after the stack has had its time (the
# scheduled sweeper included): the invariants above. Promptness, before any sweep: the job has
# ended and its terminal event is out as soon as the queues are quiet; the sweeper (every 15
# minutes) is for events S3 never sent, not for the stack's own crashes.
#
class EndedLate(AssertionError):
    """The invariants held in the end, but the job ended (or its terminal event went out) only at a sweep."""


@dataclass
class Scenario:
    """A manifest with every kind of row: awkward keys, a duplicate, a readable object, a missing one, a bad line."""

    archived: list[tuple[str, str]] = field(
        default_factory=lambda: [
            ("photos/red flower.jpg", "GLACIER"),
            ("a+b 100%.txt", "GLACIER"),
            ('ü/ß, "quoted".bin', "DEEP_ARCHIVE"),
            ("readable.txt", "STANDARD"),
        ]
    )
    missing: list[str] = field(default_factory=lambda: ["missing.bin"])
    bad_lines: list[str] = field(default_factory=lambda: ["just-one-column"])
    repeat: int = 1  # how many times the objects' rows are written (duplicates count once)
    settings: dict[str, object] = field(default_factory=dict)

    def objects(self) -> list[ObjectId]:
        return [ObjectId(DATA_BUCKET, key) for key, _ in self.archived] + [ObjectId(DATA_BUCKET, k) for k in self.missing]

    def rows(self) -> list[ObjectId | str]:
        objects = self.objects()
        return [*objects, *self.bad_lines, *objects[:1], *(objects * (self.repeat - 1))]

    def install(self, stack: Stack) -> tuple[str, str]:
        for key, storage_class in self.archived:
            stack.put_archived(key, storage_class=storage_class)
        return stack.put_manifest(self.rows())

    def error_lines(self) -> int:
        return len(self.bad_lines)

    def archive_keys(self) -> set[tuple[str, str]]:
        return {(DATA_BUCKET, key) for key, cls in self.archived if cls in ARCHIVE_CLASSES}


# Three planning steps of one chunk each; the objects recur in every chunk (counted once).
MULTI_STEP = Scenario(repeat=50, settings={"PLAN_LINES_PER_STEP": 98})


def create_job(stack: Stack, bucket: str, key: str, token: str = "create-1") -> str:
    """Create a job as a client does: a 5xx (here, the function dying) is retried with the same key."""
    for _ in range(3):
        try:
            return stack.create_job(bucket, key, headers={"Idempotency-Key": token}, tier="Bulk")["BulkJobId"]
        except SimulatedCrash:
            continue
    raise AssertionError("create-job kept failing")


def run_job(
    scenario: Scenario,
    crash_at: int | None = None,
    phase: str = "before",
    settle: Callable[[Stack], None] = Stack.settle,
    before: Callable[[Stack], None] | None = None,
) -> CallTracer:
    """One job from create to quiet, the functions dying once at the given point; checks the
    invariants, then that the job had ended before any sweep (raises EndedLate if not)."""
    with open_stack(**FAULT_SETTINGS, **scenario.settings) as stack:
        bucket, key = scenario.install(stack)
        if before is not None:
            before(stack)
        tracer = CallTracer(crash_at=crash_at, phase=phase, restore_probe=stack.is_recorded).install(stack.services())
        try:
            job_id = create_job(stack, bucket, key)
            settle(stack)
            ended_promptly = ended(stack, job_id)
            stack.sweep_until_quiet()
            check_job(stack, tracer, job_id, scenario.objects(), scenario.error_lines())
            assert_no_charged_repeat(tracer, scenario.archive_keys())
            if not ended_promptly:
                raise EndedLate("the job ended, or its terminal event went out, only at a sweep")
        except AssertionError as exc:
            exc.tracer = tracer  # type: ignore[attr-defined]  # which crash broke it
            raise
    return tracer


def ended(stack: Stack, job_id: str) -> bool:
    return JobLedger.read(stack, job_id).status == "Complete" and any(e.is_terminal for e in stack.events_of(job_id))


def check_job(stack: Stack, tracer: CallTracer, job_id: str, objects: list[ObjectId], error_lines: int) -> JobLedger:
    ledger = JobLedger.read(stack, job_id)
    # Every object counted exactly once, in one final state; the counters equal the objects' states.
    assert_accounting(ledger, objects, error_lines=error_lines)
    assert ledger.status == "Complete", f"job ended {ledger.status}"
    # Exactly one terminal event; a copy only in the documented window, with the same EventId.
    events = stack.events_of(job_id)
    terminal = assert_one_terminal_event(events, job_id, copies_allowed_for=tracer.window_events)
    assert terminal.message["FailedBatchFiles"] == str(ledger.counters["failed"])
    # Nothing claimed and never published; an outbox entry is left only by a crash in the copy window.
    published, leftover = {e.event_id for e in events}, set(ledger.outbox())
    assert leftover <= published, f"claimed but never published: {leftover - published}"
    assert leftover <= tracer.window_events, f"outbox entries left behind: {leftover}"
    # The ended job no longer draws completion lookups or sweeps (kept only by a crash in the copy window).
    if not tracer.window_events:
        assert not ledger.bucket_links and not ledger.on_sweep_list, (ledger.bucket_links, ledger.on_sweep_list)
    # Nothing was given up on.
    for name in ("plan", "restore", "completion"):
        assert stack.dead_letters(name) == [], f"{name} dead-letter queue"
    return ledger


def assert_no_charged_repeat(tracer: CallTracer, archive_keys: set[tuple[str, str]], jobs: int = 1) -> None:
    """S3 is never asked again to restore an object whose result was recorded; a repeat (the first
    answer was lost in a crash) must be one S3 does not charge again: 200 (a restored copy
    exists) or 409 (a restore is running). With several jobs naming an object, each asks once."""
    attempts = defaultdict(list)
    for attempt in tracer.restores:
        attempts[(attempt.bucket, attempt.key, attempt.version_id)].append(attempt)
    for (bucket, key, _), tries in attempts.items():
        for repeat in tries[1:]:
            if jobs == 1:
                assert not repeat.recorded_before, f"RestoreObject repeated for {key!r} after its result was recorded"
            if (bucket, key) in archive_keys:
                assert repeat.status in (200, 409), f"RestoreObject repeated for {key!r} and S3 answered {repeat.status}"
        assert len(tries) <= jobs + (tracer.crashed is not None), f"RestoreObject sent {len(tries)} times for {key!r}"


_clean_runs: dict[str, CallTracer] = {}


def clean_run(name: str, scenario: Scenario) -> CallTracer:
    if name not in _clean_runs:
        _clean_runs[name] = run_job(scenario)
    return _clean_runs[name]


def sweep(name: str, scenario: Scenario, phase: str, shard: int, shards: int, functions: set[str] | None = None) -> None:
    """Crash before/after every Nth call of a clean run (N of this shard; of ``functions`` if given);
    fail with every broken N."""
    calls = clean_run(name, scenario).calls
    points = [c.index for c in calls if functions is None or c.function in functions]
    failures = []
    for n in points[shard::shards]:
        try:
            tracer = run_job(scenario, n, phase)
            assert tracer.crashed is not None, "the crash point was never reached"
        except AssertionError as exc:
            line = f"crash {phase} call {n} ({calls[n - 1].function or 'api'}: {calls[n - 1].operation}): {str(exc).splitlines()[0]}"
            failures.append(line)
    assert not failures, "\n".join(failures)


# ---- every crash point ---------------------------------------------------------------------------

SHARDS = 3


@pytest.mark.parametrize("shard", range(SHARDS))
@pytest.mark.parametrize("phase", ["before", "after"])
def test_a_crash_before_or_after_any_aws_call_still_counts_every_object_once_and_ends_the_job_once(phase: str, shard: int) -> None:
    # Given a one-chunk job with awkward keys, a duplicate row, a readable object, a missing one, a bad line
    # When the functions die once, before (or after) the Nth AWS call, for every N of a clean run
    # Then each run ends Complete, every object counted once, exactly one terminal event
    sweep("one-chunk", Scenario(), phase, shard, SHARDS)


@pytest.mark.parametrize("shard", range(SHARDS))
@pytest.mark.parametrize("phase", ["before", "after"])
def test_a_crash_anywhere_in_a_multi_step_plan_still_counts_every_object_once(phase: str, shard: int) -> None:
    # Given a manifest planned in three checkpointed steps whose chunks all name the same objects
    # When the planner (or the create call) dies once at any of its AWS calls (the restore and
    # completion functions' calls are swept with the one-chunk job above)
    # Then the replayed steps and chunks count nothing twice and the job ends once
    sweep("multi-step", MULTI_STEP, phase, shard, SHARDS, functions={"", "planner"})


def test_a_clean_run_crashes_nowhere_and_the_sweep_covers_every_function() -> None:
    # Given the clean runs the sweeps are built on
    one_chunk, multi = clean_run("one-chunk", Scenario()), clean_run("multi-step", MULTI_STEP)
    # Then they reach every function and every kind of write the accounting depends on
    functions = {c.function for c in one_chunk.calls}
    assert {"", "planner", "restorer", "completion", "counter"} <= functions
    operations = {c.operation for c in one_chunk.calls}
    assert {"dynamodb.BatchExecuteStatement", "s3.RestoreObject", "sns.Publish", "sqs.SendMessageBatch"} <= operations
    # the counting function's counter update is a crash point like any other
    assert any(c.function == "counter" and c.operation == "dynamodb.UpdateItem" for c in one_chunk.calls)
    assert multi.count("sqs.SendMessage") >= 3  # create + two further plan steps


def test_a_completion_batch_that_dies_after_its_commit_still_ends_the_job() -> None:
    # Given a job whose last objects are completed by one completion batch
    calls = clean_run("one-chunk", Scenario()).calls
    commit = max(c.index for c in calls if c.function == "completion" and c.operation == "dynamodb.BatchExecuteStatement")
    # When the completion function dies right after its objects' writes (the batch is redelivered)
    # Then the job still ends, with its one terminal event
    run_job(Scenario(), commit, "after")


def test_a_counting_batch_that_dies_between_claiming_and_publishing_still_publishes_the_terminal_event() -> None:
    calls = clean_run("one-chunk", Scenario()).calls
    publish = max(c.index for c in calls if c.function == "counter" and c.operation == "sns.Publish")
    # When the counting function dies after claiming the terminal event, before publishing it
    # Then the stream batch, read again, publishes it
    run_job(Scenario(), publish, "before")


# ---- duplicated and reordered deliveries ---------------------------------------------------------


def copies(n: int) -> Callable[[list[str]], list[str]]:
    return lambda bodies: [b for b in bodies for _ in range(n)]


def shuffled(rng: random.Random, then: Callable[[list[str]], list[str]] = list) -> Callable[[list[str]], list[str]]:
    return lambda bodies: rng.sample(then(bodies), len(then(bodies)))


def many_objects(n: int, prefix: str = "obj") -> Scenario:
    """n archived objects with awkward keys, plus the usual readable, missing and bad rows."""
    archived = [(f"{prefix}/{i:03d} {'+%,ü'[i % 4]}.bin", ARCHIVE_CLASSES[i % 2]) for i in range(n)]
    return Scenario(archived=[*archived, ("readable.txt", "STANDARD")])


def small_batches(stack: Stack) -> None:
    stack.restorer.batch_size = 1
    stack.completion.batch_size = 2


def test_every_completion_event_delivered_three_times_in_both_shapes_counts_each_object_once() -> None:
    # Given a job whose bucket sends S3 notifications to the completion queue as well as EventBridge events
    def both_shapes(stack: Stack) -> None:
        small_batches(stack)
        stack.route_s3_notifications()

    # When every completion message is delivered three times, the copies in different batches
    tracer = run_job(many_objects(6), before=both_shapes, settle=lambda stack: stack.settle_delivering(completions=copies(3)))
    # Then each object is counted once (checked by run_job) and no event went out twice
    assert len(tracer.published) == len(set(tracer.published))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_completion_events_in_any_order_count_each_object_once(seed: int) -> None:
    # Given a job of 12 archived objects, completion batches of two
    rng = random.Random(seed)
    # When the completion events (and their copies) arrive in a seeded random order
    tracer = run_job(
        many_objects(12), before=small_batches, settle=lambda stack: stack.settle_delivering(completions=shuffled(rng, copies(2)))
    )
    # Then each object is counted once and each event published once
    assert len(tracer.published) == len(set(tracer.published))


@pytest.mark.parametrize("seed", [7, 8])
def test_restore_chunks_delivered_twice_and_out_of_order_are_accounted_once(seed: int) -> None:
    # Given a manifest of three chunks whose objects recur across chunks
    rng = random.Random(seed)
    # When every chunk is delivered twice, in a seeded random order (a later chunk before an earlier one)
    tracer = run_job(MULTI_STEP, before=small_batches, settle=lambda stack: stack.settle_delivering(chunks=shuffled(rng, copies(2))))
    # Then each object is counted once, with one RestoreObject each
    assert tracer.count("s3.RestoreObject") == len(MULTI_STEP.objects())


def test_plan_steps_delivered_twice_plan_every_line_once() -> None:
    # Given a manifest planned in three steps
    # When every plan-step message is delivered twice (past the FIFO queue's deduplication)
    tracer = run_job(MULTI_STEP, settle=lambda stack: stack.settle_delivering(plan=copies(2)))
    # Then the copies change nothing: three chunks sent, each object counted once
    assert tracer.count("sqs.SendMessageBatch") == 3


def test_a_stale_plan_step_and_a_replayed_chunk_after_the_job_ended_change_nothing() -> None:
    from support import samples

    scenario = Scenario()
    with open_stack(**FAULT_SETTINGS) as stack:
        bucket, key = scenario.install(stack)
        tracer = CallTracer().install(stack.services())
        job_id = create_job(stack, bucket, key)
        stack.settle()
        before = JobLedger.read(stack, job_id)
        events_before = len(stack.events_of(job_id))
        # Given a completed job
        # When its first plan step, its chunk and every completion arrive again
        stack.send(stack.plan_queue_url, samples.plan_step(job_id, 0), MessageGroupId=job_id, MessageDeduplicationId="late-0")
        for obj in scenario.objects():
            stack.send(stack.completion_queue_url, samples.completion("eventbridge", obj.bucket, obj.key))
        stack.settle()
        # Then the ledger and the events are as they were
        after = JobLedger.read(stack, job_id)
        assert after.counters == before.counters
        assert after.states() == before.states()
        assert len(stack.events_of(job_id)) == events_before
        check_job(stack, tracer, job_id, scenario.objects(), scenario.error_lines())


# ---- two jobs sharing objects ------------------------------------------------------------------------


def run_two_jobs(crash_at: int | None = None, phase: str = "before", seed: int = 0) -> CallTracer:
    shared = [("shared/one.bin", "GLACIER"), ("shared/two + three.bin", "DEEP_ARCHIVE")]
    first = Scenario(archived=[("first/only.bin", "GLACIER"), *shared])
    second = Scenario(archived=[*shared, ("second/only.bin", "GLACIER")], missing=["second/missing.bin"])
    rng = random.Random(seed)
    with open_stack(**FAULT_SETTINGS) as stack:
        for scenario in (first, second):
            for key, storage_class in scenario.archived:
                stack.put_archived(key, storage_class=storage_class)
        manifests = [stack.put_manifest(s.rows(), key=f"manifest-{i}.csv") for i, s in enumerate((first, second))]
        tracer = CallTracer(crash_at=crash_at, phase=phase).install(stack.services())
        small_batches(stack)
        try:
            # Given two jobs created back to back whose manifests share objects
            jobs = [create_job(stack, b, k, token=f"job-{i}") for i, (b, k) in enumerate(manifests)]
            # When they run interleaved, the completion events shuffled and doubled
            stack.settle_delivering(completions=shuffled(rng, copies(2)), chunks=shuffled(rng))
            ended_promptly = all(ended(stack, job_id) for job_id in jobs)
            stack.sweep_until_quiet()
            # Then each job completes on its own, counting each of its objects once
            for job_id, scenario in zip(jobs, (first, second), strict=True):
                check_job(stack, tracer, job_id, scenario.objects(), scenario.error_lines())
            archive = first.archive_keys() | second.archive_keys()
            assert_no_charged_repeat(tracer, archive, jobs=2)
            if not ended_promptly:
                raise EndedLate("a job ended, or its terminal event went out, only at a sweep")
        except AssertionError as exc:
            exc.tracer = tracer  # type: ignore[attr-defined]
            raise
    return tracer


def test_two_overlapping_jobs_sharing_objects_each_complete_once() -> None:
    tracer = run_two_jobs()
    # Both jobs asked S3 for the shared objects; the second answer was 200 (a copy exists), never a charged 202
    shared = [a for a in tracer.restores if a.key.startswith("shared/")]
    assert sorted(a.status for a in shared) == [200, 200, 202, 202]


@pytest.mark.parametrize("seed", range(4))
def test_two_overlapping_jobs_survive_a_crash_at_a_random_call(seed: int) -> None:
    calls = len(run_two_jobs(seed=seed).calls)
    rng = random.Random(seed)
    crash_at, phase = rng.randint(1, calls), rng.choice(["before", "after"])
    run_two_jobs(crash_at, phase, seed)


# ---- property: random manifests, crash points and deliveries ------------------------------------------

AWKWARD = [*list("ab /+%,\"'=&?#~._-"), "ü", "日本", "🙂", "\xa0", "%2B", "+ +"]
keys = (
    st.lists(st.sampled_from(AWKWARD), min_size=1, max_size=8)
    .map("".join)
    .filter(lambda k: not any(part in (".", "..") for part in k.split("/")))
)


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    names = draw(st.lists(keys, min_size=1, max_size=6, unique=True))
    classes = draw(st.lists(st.sampled_from(["GLACIER", "DEEP_ARCHIVE", "STANDARD", None]), min_size=len(names), max_size=len(names)))
    archived = [(n, c) for n, c in zip(names, classes, strict=True) if c]
    missing = [n for n, c in zip(names, classes, strict=True) if not c]
    bad = draw(st.lists(st.sampled_from(["one-column", "Bad_Bucket,key", "bkt-ok,%zz", ",,,"]), max_size=2))
    return Scenario(archived=archived, missing=missing, bad_lines=bad, repeat=draw(st.integers(1, 3)))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(
    scenario=scenarios(),
    crash=st.one_of(st.none(), st.tuples(st.integers(1, 60), st.sampled_from(["before", "after"]))),
    completion_copies=st.integers(1, 3),
    chunk_copies=st.integers(1, 2),
    seed=st.integers(0, 2**16),
)
def test_property_any_manifest_any_crash_any_delivery_counts_each_object_once(
    scenario: Scenario, crash: tuple[int, str] | None, completion_copies: int, chunk_copies: int, seed: int
) -> None:
    # Given a random manifest (awkward keys, duplicates, bad lines, readable and missing objects)
    rng = random.Random(seed)
    crash_at, phase = crash or (None, "before")
    # When the functions die at a random call, and chunks and completions arrive copied and shuffled
    run_job(
        scenario,
        crash_at,
        phase,
        before=small_batches,
        settle=lambda stack: stack.settle_delivering(
            chunks=shuffled(rng, copies(chunk_copies)), completions=shuffled(rng, copies(completion_copies))
        ),
    )
    # Then (checked inside run_job) the invariants hold, and the job ends before any sweep


# ---- the copy window, S3's 409, and a planner racing its own chunks --------------------------------


def test_a_crash_after_sns_accepted_the_terminal_event_sends_at_most_one_copy_with_the_same_event_id() -> None:
    # Given a job that ends as soon as its one chunk is counted (no object waits for S3: readable, missing, bad rows)
    scenario = Scenario(archived=[("readable.txt", "STANDARD")])
    calls = clean_run("ends-in-counter", scenario).calls
    publish = max(c.index for c in calls if c.operation == "sns.Publish")
    assert next(c for c in calls if c.index == publish).function == "counter"
    # When the counting function dies right after SNS accepted the terminal event, before clearing the outbox
    with open_stack(**FAULT_SETTINGS) as stack:
        bucket, key = scenario.install(stack)
        tracer = CallTracer(crash_at=publish, phase="after").install(stack.services())
        job_id = create_job(stack, bucket, key)
        stack.settle()
        # Then the stream batch, read again, publishes the outbox entry again: one copy, the same EventId and body
        terminal = [e for e in stack.events_of(job_id) if e.is_terminal]
        assert len(terminal) == 2 and terminal[0].message == terminal[1].message
        assert tracer.window_events == {terminal[0].event_id}
        # And the outbox ends empty, the job counted once
        check_job(stack, tracer, job_id, scenario.objects(), scenario.error_lines())
        assert JobLedger.read(stack, job_id).outbox() == {}


def test_a_restore_repeated_after_a_crash_is_answered_409_by_s3_and_counted_once() -> None:
    s3_restore = pytest.importorskip("bulk_restore_cli.local.s3_restore")
    # Given S3 as AWS documents it: a restore runs until completed, and a second request meanwhile gets 409
    scenario = Scenario(archived=[("slow/a.bin", "GLACIER"), ("slow/b.bin", "DEEP_ARCHIVE")], missing=[], bad_lines=[])
    with s3_restore.S3RestoreEmulator() as emulator, open_stack(**FAULT_SETTINGS) as stack:
        stack.restore_emulator = emulator
        bucket, key = scenario.install(stack)
        probe = CallTracer().install(stack.services())
        job_id = create_job(stack, bucket, key)
        stack.drain()
        last_restore = max(c.index for c in probe.calls if c.operation == "s3.RestoreObject")
        assert not any(e.is_terminal for e in stack.events_of(job_id))
    with s3_restore.S3RestoreEmulator() as emulator, open_stack(**FAULT_SETTINGS) as stack:
        stack.restore_emulator = emulator
        bucket, key = scenario.install(stack)
        # When the restore function dies after S3 accepted the chunk's last restore (202), before recording it
        tracer = CallTracer(crash_at=last_restore, phase="after", restore_probe=stack.is_recorded).install(stack.services())
        job_id = create_job(stack, bucket, key)
        stack.drain()
        # Then the redelivered chunk asks again and S3 answers 409 (nothing charged twice)
        statuses = {a.key: [r.status for r in tracer.restores if r.key == a.key] for a in tracer.restores}
        assert statuses == {"slow/a.bin": [202, 409], "slow/b.bin": [202, 409]}
        ledger = JobLedger.read(stack, job_id)
        assert ledger.states() == {"RESTORING": 2} and ledger.counters["restoring"] == 2
        # And once S3 completes the restores, the job completes, each object counted once
        stack.settle()
        check_job(stack, tracer, job_id, scenario.objects(), 0)
        assert_no_charged_repeat(tracer, scenario.archive_keys())


def test_objects_recorded_by_a_delivery_that_died_before_requesting_them_are_cancelled_when_the_job_ended_meanwhile() -> None:
    s3_restore = pytest.importorskip("bulk_restore_cli.local.s3_restore")
    # Given a job of three archived objects, and S3 as AWS documents it: a restore shows on the
    # object (HeadObject's Restore) as soon as it is accepted
    scenario = Scenario(
        archived=[("cut/a.bin", "GLACIER"), ("cut/b.bin", "GLACIER"), ("cut/c.bin", "DEEP_ARCHIVE")], missing=[], bad_lines=[]
    )
    with s3_restore.S3RestoreEmulator() as emulator, open_stack(**FAULT_SETTINGS) as stack:
        stack.restore_emulator = emulator
        tracer = CallTracer(restore_probe=stack.is_recorded).install(stack.services())
        job_id = create_job(stack, *scenario.install(stack))
        asked: list[str] = []

        def cancel_then_die(params: dict[str, str], **_: object) -> None:
            asked.append(params["Key"])
            if len(asked) == 2:
                status, _ = call_api("POST", f"/jobs/{job_id}/cancel")
                assert status == 200
                raise SimulatedCrash("the restore function died before its second request")

        # When the job is cancelled over the API while the restore function, having recorded the
        # three objects and requested the first, dies before requesting the second; its chunk comes again
        stack.services().s3.client.meta.events.register("before-parameter-build.s3.RestoreObject", cancel_then_die)
        stack.drain()
        # Then S3 was asked for the first object only; the two it holds no restore for are
        # CANCELLED, the one it holds stays RESTORING
        assert [r.key for r in tracer.restores if r.status == 202] == ["cut/a.bin"]
        assert asked == ["cut/a.bin", "cut/b.bin"]
        ledger = JobLedger.read(stack, job_id)
        assert ledger.states() == {"RESTORING": 1, "CANCELLED": 2}
        # And once S3 completes it, it is counted RESTORED: every object once, one Cancelled event
        stack.settle()
        stack.sweep_until_quiet()
        ledger = JobLedger.read(stack, job_id)
        assert ledger.states() == {"RESTORED": 1, "CANCELLED": 2}
        assert_counters_match(ledger)
        assert assert_one_terminal_event(stack.events_of(job_id), job_id).message["Status"] == "Cancelled"


def run_planner_race(sweeps: bool) -> None:
    """A job whose objects are all final as soon as they are requested (readable, missing, a bad
    line), a restore function that accounts the chunks before the planner has saved its last
    checkpoint (the planner sends them first, so it sees planning not done and cannot end the
    job), and a planner that dies right after that checkpoint, before it evaluates the job."""
    scenario = Scenario(archived=[("readable.txt", "STANDARD")])
    with open_stack(**FAULT_SETTINGS) as stack:
        bucket, key = scenario.install(stack)
        services = stack.services()
        is_checkpoint = lambda context: context.get("tracer_params", {}).get("UpdateExpression", "").startswith("SET #p = :p")  # noqa: E731
        state = {"raced": False, "crashed": False}

        def restorer_first(context: dict, **_: object) -> None:
            if is_checkpoint(context) and not state["raced"]:
                state["raced"] = True
                while stack.restorer.poll_once(stack.sqs):
                    pass

        def crash_after_checkpoint(context: dict, **_: object) -> None:
            if is_checkpoint(context) and not state["crashed"]:
                state["crashed"] = True
                raise SimulatedCrash("planner died after its last checkpoint")

        services.store.client.meta.events.register("before-call.dynamodb.UpdateItem", restorer_first)
        services.store.client.meta.events.register("after-call.dynamodb.UpdateItem", crash_after_checkpoint)
        tracer = CallTracer(restore_probe=stack.is_recorded).install(services)
        job_id = create_job(stack, bucket, key)
        stack.settle()
        assert state["raced"] and state["crashed"]
        if sweeps:
            stack.sweep_until_quiet()
        check_job(stack, tracer, job_id, scenario.objects(), scenario.error_lines())


def test_a_planner_that_dies_after_its_last_checkpoint_still_ends_a_job_whose_chunks_were_accounted_first() -> None:
    run_planner_race(sweeps=False)


def test_the_sweeper_ends_a_job_whose_planner_died_after_its_last_checkpoint() -> None:
    run_planner_race(sweeps=True)


def test_throttled_restore_requests_are_retried_and_never_fail_an_object(monkeypatch: pytest.MonkeyPatch) -> None:
    from support.faults import Throttle

    monkeypatch.setattr("bulk_restore.adapters.s3.time.sleep", lambda seconds: None)  # the backoff, without the wait
    scenario = many_objects(6)
    with open_stack(**FAULT_SETTINGS) as stack:
        bucket, key = scenario.install(stack)
        # Given S3 answering SlowDown to the first 20 restore requests (more than one worker's retries)
        throttle = Throttle("RestoreObject", 20).install(stack.services().s3.client)
        tracer = CallTracer(restore_probe=stack.is_recorded).install(stack.services())
        # When a job runs
        job_id = create_job(stack, bucket, key)
        stack.settle()
        # Then every throttled request was retried (the chunk itself, once its worker gave up) and no object failed for it
        assert throttle.answered == 20
        ledger = check_job(stack, tracer, job_id, scenario.objects(), scenario.error_lines())
        assert not any("SlowDown" in (o.get("reason") or "") for o in ledger.objects)
        assert ledger.states()["RESTORED"] == 6


# ---- the counting function, on the table's stream --------------------------------------------------
# Objects' states are written alone; the counters come from the stream (usecases/count.py). The
# crash sweeps above already kill the counting function before and after each of its calls (after
# its counter update and before Lambda's checkpoint included); these add what only a stream does.


def test_every_stream_batch_delivered_twice_counts_each_change_once() -> None:
    # Given small batches everywhere, and a stream whose every batch comes again after it was counted
    def twice(stack: Stack) -> None:
        small_batches(stack)
        stack.counter.batch_size = 3
        stack.counter.repeat = True

    # When the job runs, then each object is counted once (run_job checks) and no event went out twice
    tracer = run_job(many_objects(8), before=twice)
    assert len(tracer.published) == len(set(tracer.published))


@pytest.mark.parametrize("batch_size", [1, 10_000])
def test_stream_batches_of_one_record_or_of_the_whole_job_count_the_same(batch_size: int) -> None:
    def sized(stack: Stack) -> None:
        stack.counter.batch_size = batch_size

    run_job(many_objects(6), before=sized)


def test_a_job_whose_objects_all_change_before_the_stream_is_read_ends_once_when_it_is() -> None:
    # Given a job whose every object is written, restored and completed before the stream is read
    def late_stream(stack: Stack) -> None:
        stack.counter.paused = True
        for _ in range(20):
            stack.drain()
            stack.complete_restores()
        # Then nothing has been announced yet: the counters have not moved
        assert not any(e.is_terminal for e in stack.read_events()), "a terminal event before any count"
        stack.counter.paused = False
        stack.settle()

    # When the stream is read at last: every object counted once, one terminal event (run_job checks)
    run_job(many_objects(10), settle=late_stream)


def test_the_same_object_moved_by_two_workers_at_once_is_counted_once() -> None:
    import threading

    from bulk_restore.adapters.dynamodb import ObjectRecord
    from bulk_restore.domain.model import ObjectState

    # Given a job of 30 objects restoring, and their completions held back
    with open_stack(**FAULT_SETTINGS) as stack:
        keys = [f"race/{i:02d}.bin" for i in range(30)]
        for key in keys:
            stack.put_archived(key)
        bucket, key = stack.put_manifest([ObjectId(DATA_BUCKET, k) for k in keys])
        job_id = create_job(stack, bucket, key)
        stack.drain()
        store = stack.services().store
        records = [r for r in JobLedger.read(stack, job_id).objects if r["state"] == "RESTORING"]
        assert len(records) == 30
        objects = [ObjectRecord.from_item(r) for r in records]
        # When two workers move every one of them at the same moment, one to RESTORED, one to FAILED
        start = threading.Barrier(2)
        moved: dict[str, int] = {}

        def move(to: ObjectState) -> None:
            start.wait()
            moved[to.value] = store.transition(job_id, objects, to, "raced" if to is ObjectState.FAILED else "")

        threads = [threading.Thread(target=move, args=(to,)) for to in (ObjectState.RESTORED, ObjectState.FAILED)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        # Then each object moved once, by one of them
        assert sum(moved.values()) == 30, moved
        stack.settle()
        # And the counters, derived from the stream, equal the objects' states; the job ended once
        ledger = JobLedger.read(stack, job_id)
        assert_accounting(ledger, [ObjectId(DATA_BUCKET, k) for k in keys])
        assert ledger.counters["restored"] == moved["RESTORED"] and ledger.counters["failed"] == moved["FAILED"]
        assert_one_terminal_event(stack.events_of(job_id), job_id)
        # And a recount from the items finds what the stream counted
        assert store.recount(job_id).as_dict() == store.get_job_and_counts(job_id)[1].as_dict()


def test_a_stream_shard_that_splits_mid_job_still_counts_every_change_once() -> None:
    from bulk_restore.handlers import counter
    from bulk_restore_cli.local.dynamodb_streams import DynamoDBStreamsEmulation
    from support.faults import crash_as_invocation_error
    from support.stack import LambdaStreamSource

    # Given the counting function run as Lambda runs it, on every shard of the table's stream
    def lambda_source(stack: Stack) -> None:
        small_batches(stack)
        arn = stack.ddb.describe_table(TableName=stack.table_name)["Table"]["LatestStreamArn"]
        stack.counter = LambdaStreamSource("counter", crash_as_invocation_error("counter", counter.handler), arn, batch_size=4)  # type: ignore[assignment]

    # When the stream's shard splits after the objects were inserted, before their restores complete
    def split_midway(stack: Stack) -> None:
        for _ in range(10):
            stack.drain()
        shards = DynamoDBStreamsEmulation().split_shard(stack.table_name)
        assert len(shards) == 2
        stack.settle()
        # (the job's counts came from the parent shard and from a child: a counter item for each)
        counted = stack.ddb.query(
            TableName=stack.table_name,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :c)",
            ExpressionAttributeValues={":pk": {"S": f"JOB#{stack.job_ids[0]}"}, ":c": {"S": "COUNT#"}},
        )["Items"]
        assert len(counted) >= 2, counted

    # Then each object is counted once (its insert read from the parent, its move from a child) and the job ends once
    run_job(many_objects(10), before=lambda_source, settle=split_midway)
