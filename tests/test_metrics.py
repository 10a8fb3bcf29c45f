"""Operator metrics: what the functions print as CloudWatch embedded metric format (EMF) lines.

Each test runs a job on the test stack through its handlers (which flush their metrics at the end
of each invocation, as in Lambda), reads the EMF lines they printed, and checks the sums against
the job: each object counted once, each job's end once, under duplicate deliveries and retries.
"""

from __future__ import annotations

import json
import random
import threading
import types
from collections.abc import Iterator
from typing import Any

import pytest

from bulk_restore.adapters.metrics import DEFAULT_NAMESPACE, EmfMetrics, powertools_metrics
from bulk_restore.domain.model import ObjectId, ObjectState
from bulk_restore.usecases.metrics import count_recorded
from support import samples
from support.api import call_api
from support.faults import Throttle
from support.stack import DATA_BUCKET, Stack
from support.vault import MIB, VAULT_SETTINGS, Vault, body_of, vault_on

# Dimensions a metric may have: none names a job, a key or a request (CloudWatch bills each combination).
ALLOWED_DIMENSIONS = {"service", "State", "function_name"}


class Emitted:
    """The EMF lines printed so far (read from the captured standard output)."""

    def __init__(self, capsys: pytest.CaptureFixture[str]):
        self.capsys = capsys
        self.lines: list[dict[str, Any]] = []

    def read(self) -> Emitted:
        for text in self.capsys.readouterr().out.splitlines():
            if text.startswith("{") and '"_aws"' in text:
                self.lines.append(json.loads(text))
        return self

    def total(self, name: str, **dimensions: str) -> float:
        """The sum of every value of metric ``name`` in lines with these dimension values."""
        found = 0.0
        for line in self.read().lines:
            declared = {m["Name"] for d in line["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]}
            if name in declared and all(line.get(k) == v for k, v in dimensions.items()):
                values = line[name]
                found += sum(values) if isinstance(values, list) else values
        return found


@pytest.fixture
def emitted(capsys: pytest.CaptureFixture[str]) -> Iterator[Emitted]:
    powertools_metrics().clear_metrics()  # nothing counted by an earlier test outside a handler
    capsys.readouterr()
    yield Emitted(capsys)
    powertools_metrics().clear_metrics()


def assert_well_formed(emitted: Emitted) -> None:
    """Every line is in the stack's namespace, with the service dimension and no high-cardinality one."""
    assert emitted.read().lines, "no metrics were printed"
    for line in emitted.lines:
        for directive in line["_aws"]["CloudWatchMetrics"]:
            assert directive["Namespace"] == DEFAULT_NAMESPACE
            for dimension_set in directive["Dimensions"]:
                assert "service" in dimension_set and set(dimension_set) <= ALLOWED_DIMENSIONS, dimension_set
                assert line["service"] == "bulk-restore"


def archived_job(stack: Stack, n: int, prefix: str = "m") -> tuple[str, list[ObjectId]]:
    """A job of n archived objects, one readable object, one missing object and one bad line."""
    objects = [ObjectId(DATA_BUCKET, f"{prefix}/{i:03d} ü+%.bin") for i in range(n)]
    for i, obj in enumerate(objects):
        stack.put_archived(obj.key, storage_class=("GLACIER", "DEEP_ARCHIVE")[i % 2])
    stack.put_archived(f"{prefix}/readable.txt", storage_class="STANDARD")
    rows: list[ObjectId | str] = [
        *objects,
        ObjectId(DATA_BUCKET, f"{prefix}/readable.txt"),
        ObjectId(DATA_BUCKET, f"{prefix}/missing.bin"),
        "just-one-column",
    ]
    job_id = stack.create_job(*stack.put_manifest(rows, key=f"{prefix}.csv"))["BulkJobId"]
    return job_id, objects


def terminal_status(job_id: str) -> str:
    status, doc = call_api("GET", f"/jobs/{job_id}")
    assert status == 200, doc
    return str(doc["Status"])


def test_a_job_counts_each_object_once_by_outcome_and_its_end_once(stack: Stack, emitted: Emitted) -> None:
    # Given a job of 7 archived objects, a readable one, a missing one and a bad manifest line
    job_id, objects = archived_job(stack, 7)
    # When it runs to its end
    stack.settle()
    assert terminal_status(job_id) == "Complete"
    # Then its restores were counted as requested and completed once each, the others by outcome
    assert emitted.total("RestoresRequested") == len(objects)
    assert emitted.total("RestoresCompleted") == len(objects)
    assert emitted.total("RestoresSkipped") == 1
    assert emitted.total("RestoresFailed") == 2  # the missing object and the bad line
    assert emitted.total("RestoresThrottled") == 0
    # And its end once, by its state
    assert emitted.total("JobsEnded", State="Complete") == 1
    assert emitted.total("JobsEnded") == 1
    assert_well_formed(emitted)


def copies(n: int) -> Any:
    return lambda bodies: [b for b in bodies for _ in range(n)]


@pytest.mark.parametrize("seed", [3, 4])
def test_duplicate_deliveries_count_nothing_twice_and_the_end_once(stack: Stack, emitted: Emitted, seed: int) -> None:
    # Given a job of 12 archived objects over two chunks, one chunk per restore batch and completion batches of two
    rng = random.Random(seed)
    stack.restorer.batch_size, stack.completion.batch_size = 1, 2
    objects = [ObjectId(DATA_BUCKET, f"dup/{i:03d}.bin") for i in range(12)]
    for obj in objects:
        stack.put_archived(obj.key)
    lines = [f"{DATA_BUCKET},{o.key}" for o in objects[:6]] + [""] * 92 + [f"{DATA_BUCKET},{o.key}" for o in objects[6:]]
    job_id = stack.create_job(*stack.put_manifest(lines, key="dup.csv"))["BulkJobId"]
    # When every chunk is delivered twice and every completion event three times, in a shuffled order
    stack.settle_delivering(
        chunks=lambda b: rng.sample(copies(2)(b), 2 * len(b)), completions=lambda b: rng.sample(copies(3)(b), 3 * len(b))
    )
    stack.sweep_until_quiet()
    assert terminal_status(job_id) == "Complete"
    # Then each object was counted requested once and completed once, and the job's end once
    assert emitted.total("RestoresRequested") == 12
    assert emitted.total("RestoresCompleted") == 12
    assert emitted.total("JobsEnded", State="Complete") == 1
    assert emitted.total("JobsEnded") == 1


@pytest.fixture
def backoff(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The restore workers' backoff sleeps, recorded instead of slept."""
    from bulk_restore.adapters import s3

    slept: list[float] = []
    monkeypatch.setattr(s3, "time", types.SimpleNamespace(sleep=slept.append))
    return slept


@pytest.mark.parametrize("stack_settings", [{"RESTORE_CONCURRENCY": 1}])
def test_slow_down_answers_are_counted_as_throttles_and_the_objects_once(stack: Stack, emitted: Emitted, backoff: list[float]) -> None:
    # Given S3 answering SlowDown to one object's restore ten times (more than a worker's eight tries:
    # its chunk is given up once and delivered again) and to another's three times
    objects = [ObjectId(DATA_BUCKET, f"slow/{i}.bin") for i in range(4)]
    for obj in objects:
        stack.put_archived(obj.key)
    refusals = {objects[1].key: 10, objects[2].key: 3}
    for key, times in refusals.items():
        Throttle("RestoreObject", times, match=lambda params, key=key: params["Key"] == key).install(stack.services().s3.client)
    job_id = stack.create_job(*stack.put_manifest(objects, key="slow.csv"))["BulkJobId"]
    # When the job runs to its end
    stack.settle()
    assert terminal_status(job_id) == "Complete"
    # Then every SlowDown answer was counted as a throttle
    assert emitted.total("RestoresThrottled") == 13
    # And each object once as requested and completed, although its chunk ran twice
    assert stack.restorer.invocations == 2
    assert emitted.total("RestoresRequested") == 4
    assert emitted.total("RestoresCompleted") == 4
    assert emitted.total("RestoresFailed") == 0


def test_a_cancelled_job_ends_once_as_cancelled(stack: Stack, emitted: Emitted) -> None:
    # Given a job whose restores were requested
    job_id, objects = archived_job(stack, 3, prefix="c")
    stack.drain()
    # When it is cancelled (and cancelled again), and its restores complete afterwards
    assert call_api("POST", f"/jobs/{job_id}/cancel")[0] == 200
    assert call_api("POST", f"/jobs/{job_id}/cancel")[0] == 409
    stack.settle()
    stack.sweep_until_quiet()
    # Then its end was counted once, as Cancelled
    assert emitted.total("JobsEnded", State="Cancelled") == 1
    assert emitted.total("JobsEnded") == 1
    assert emitted.total("RestoresRequested") == len(objects)


@pytest.fixture
def vault(stack: Stack) -> Iterator[Vault]:
    with vault_on(stack) as running:
        yield running


@pytest.mark.parametrize("stack_settings", [dict(VAULT_SETTINGS)])
def test_a_vault_job_counts_the_bytes_it_moved_once_per_archive(vault: Vault, emitted: Emitted) -> None:
    # Given a vault job of three archives, one of them in three parts
    bodies = [body_of(17 * MIB + 5, 1), body_of(2 * MIB, 2), b"x"]
    job_id = vault.create([vault.upload(body, f"{i}.bin") for i, body in enumerate(bodies)])["BulkJobId"]
    # When it runs to its end
    vault.settle()
    assert terminal_status(job_id) == "Complete"
    # Then the bytes moved are the archives' sizes, each archive counted requested and completed once
    assert emitted.total("BytesMoved") == sum(len(b) for b in bodies)
    assert emitted.total("RestoresRequested") == 3
    assert emitted.total("RestoresCompleted") == 3
    assert emitted.total("JobsEnded", State="Complete") == 1
    units = {m["Name"]: m["Unit"] for line in emitted.lines for d in line["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]}
    assert units["BytesMoved"] == "Bytes" and units["RestoresCompleted"] == "Count"


def test_counts_from_many_threads_while_another_function_flushes_are_all_written_once(emitted: Emitted) -> None:
    # Given the metrics port that a restore worker's threads share, and another function's
    # handler in the same process (as in the local stack) flushing as they count
    port = EmfMetrics()
    other_function = powertools_metrics()
    done = threading.Event()

    def count() -> None:
        for i in range(500):
            port.add("RestoresThrottled", 1)
            port.add(f"Probe{i % 7}", 1)  # new names join the metric set while it is written

    def flush() -> None:
        while not done.is_set():
            other_function.flush_metrics()

    # When 8 threads count at once (more values than one EMF line holds: Powertools writes every 100)
    flusher = threading.Thread(target=flush)
    flusher.start()
    threads = [threading.Thread(target=count) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    done.set()
    flusher.join()
    other_function.flush_metrics()
    # Then every count is in the lines printed, once
    assert emitted.total("RestoresThrottled") == 4000
    assert sum(emitted.total(f"Probe{i}") for i in range(7)) == 4000


class Recording:
    def __init__(self) -> None:
        self.added: list[tuple[str, float, dict[str, str]]] = []

    def add(self, name: str, value: float, unit: str = "Count", **dimensions: str) -> None:
        self.added.append((name, value, dimensions))


def test_a_chunk_s_objects_are_counted_by_the_state_they_were_recorded_in() -> None:
    # Given a chunk recorded with every state
    port = Recording()
    states = [ObjectState.RESTORING] * 3 + [ObjectState.RESTORED, ObjectState.FAILED, ObjectState.SKIPPED, ObjectState.CANCELLED]
    # When it is counted
    count_recorded(port, states)
    # Then one value per metric: restoring and already-restored objects were requested, a restored copy
    # is completed at once, and objects never requested (CANCELLED) are not counted
    assert sorted(port.added) == sorted(
        [("RestoresRequested", 4, {}), ("RestoresCompleted", 1, {}), ("RestoresFailed", 1, {}), ("RestoresSkipped", 1, {})]
    )


def quiet_event(handler_path: str) -> dict[str, Any]:
    """An event the function handles without work: a route of no API, an empty batch, a scheduled run."""
    if handler_path.endswith("api.handler"):
        return {
            "httpMethod": "GET",
            "path": "/no-such-route",
            "resource": "/no-such-route",
            "headers": {},
            "body": None,
            "requestContext": {"path": "/prod/no-such-route", "stage": "prod"},
            "queryStringParameters": None,
            "pathParameters": None,
            "isBase64Encoded": False,
        }
    if handler_path.endswith("sweeper.handler"):
        return samples.scheduled_event()
    if handler_path.endswith("counter.handler"):  # a tumbling window's final invocation: no records
        return {"Records": [], "shardId": "shardId-00000001700000000000-a1b2c3d4", "state": {}, "isFinalInvokeForWindow": True}
    # a message of a job that does not exist: the restore worker drops it; this stack moves no vaults, so
    # the transfer function fails it (it is retried; the invocation fails as a whole)
    return samples.with_bodies("restore_chunk.json", [json.dumps(samples.restore_chunk("00000000-0000-4000-8000-000000000000"))])


def template_handlers() -> list[tuple[str, str]]:
    from bulk_restore_cli.local.template import load_template
    from test_template import TEMPLATE

    resources = load_template(TEMPLATE)["Resources"]
    return sorted((name, r["Properties"]["Handler"]) for name, r in resources.items() if r["Type"] == "AWS::Serverless::Function")


@pytest.mark.parametrize(("function", "handler_path"), template_handlers())
def test_every_function_flushes_its_metrics_at_the_end_of_each_invocation_and_is_traced_only_in_lambda(
    stack: Stack, emitted: Emitted, function: str, handler_path: str
) -> None:
    import importlib

    from bulk_restore.handlers import tracer
    from bulk_restore_cli.local.lambda_runtime import LambdaContext

    module, _, name = handler_path.rpartition(".")
    handler = getattr(importlib.import_module(module), name)
    # Given counts not written yet (what the use cases count during an invocation)
    EmfMetrics().add("RestoresThrottled", 2)
    assert emitted.total("RestoresThrottled") == 0
    # When the function is invoked (an invocation that fails included)
    try:
        handler(quiet_event(handler_path), LambdaContext(function, 60))
    except Exception:
        assert function == "TransferFunction"
    # Then they were written at its end, as one EMF line
    assert emitted.total("RestoresThrottled") == 2
    assert_well_formed(emitted)
    # And its tracer is off here: Powertools turns it on in Lambda only
    assert tracer.disabled
