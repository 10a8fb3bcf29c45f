"""The local stack runs template.yaml's event sources as Lambda runs them: how many invocations
at a time, batch sizes and batching windows, FIFO message groups one batch at a time, idle
pollers that cost nothing, a prompt stop, schedules on time while the pollers are busy."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from bulk_restore_cli.local.lambda_runtime import DEFAULT_CONCURRENCY, Poller, Scheduler, ScheduleSource, SqsEventSource
from bulk_restore_cli.local.provision import ProvisionedStack, provision

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"
FUNCTIONS = {"restore": "RestoreFunction", "completion": "CompletionFunction", "plan": "PlannerFunction"}


@pytest.fixture
def aws(monkeypatch) -> Iterator[None]:
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        yield


def provisioned(**parameters: str) -> ProvisionedStack:
    session = boto3.session.Session(region_name="us-east-1")
    return provision(
        TEMPLATE, clients=lambda service: session.client(service), stack_name="runtime", parameters=parameters, region="us-east-1"
    )


class Recorder:
    """A handler that records each invocation and, while ``hold`` is clear, blocks in it."""

    def __init__(self, hold_seconds: float = 10.0, pause: float = 0.0):
        self.lock = threading.Lock()
        self.running = 0
        self.peak = 0
        self.calls: list[dict[str, Any]] = []
        self.release = threading.Event()
        self.hold_seconds, self.pause = hold_seconds, pause

    def __call__(self, event: dict[str, Any], _context: Any) -> dict[str, Any]:
        started = time.monotonic()
        with self.lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
        try:
            if self.pause:
                time.sleep(self.pause)
            else:
                self.release.wait(self.hold_seconds)
        finally:
            with self.lock:
                self.running -= 1
                self.calls.append({"records": event["Records"], "started": started, "ended": time.monotonic()})
        return {"batchItemFailures": []}


def source_of(stack: ProvisionedStack, function: str, handler: Callable[..., Any]) -> SqsEventSource:
    name = stack.functions[FUNCTIONS[function]].name
    [source] = [s for s in stack.sqs_event_sources(load=lambda _path: handler) if s.function_name == name]
    return source


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not in {timeout:g} s: {what}"
        time.sleep(0.02)


def send(sqs: Any, url: str, bodies: list[str], group: str | None = None) -> None:
    for i in range(0, len(bodies), 10):
        entries = [{"Id": str(n), "MessageBody": body} for n, body in enumerate(bodies[i : i + 10])]
        if group is not None:
            for entry in entries:
                entry.update(MessageGroupId=group, MessageDeduplicationId=f"{group}-{entry['MessageBody']}")
        sqs.send_message_batch(QueueUrl=url, Entries=entries)


def run(source: SqsEventSource, sqs: Any) -> tuple[Poller, threading.Event]:
    stop = threading.Event()
    return Poller(source, sqs, stop).start(), stop


def stop_all(poller: Poller, stop: threading.Event) -> None:
    stop.set()
    poller.join(5)


def queue_empty(sqs: Any, url: str) -> bool:
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return attributes["ApproximateNumberOfMessages"] == "0" and attributes["ApproximateNumberOfMessagesNotVisible"] == "0"


@pytest.mark.parametrize("parameters, expected", [({}, 10), ({"RestoreMaxConcurrency": "3"}, 3)], ids=["template default", "overridden"])
def test_the_restore_queue_runs_as_many_invocations_at_once_as_its_maximum_concurrency_and_never_more(aws, parameters, expected):
    # Given the restore worker's event source as the template makes it (ScalingConfig.MaximumConcurrency)
    stack = provisioned(**parameters)
    handler = Recorder()
    source = source_of(stack, "restore", handler)
    assert (source.concurrency, source.batch_size, source.window_seconds, source.report_failures) == (expected, 10, 1.0, True)
    sqs = boto3.client("sqs", region_name="us-east-1")
    # When its queue holds far more batches than that
    send(sqs, source.queue_url, [f"chunk-{i}" for i in range(200)])
    poller, stop = run(source, sqs)
    try:
        # Then that many invocations run at once, each with a full batch
        wait_until(lambda: handler.running == expected, 15, f"{expected} invocations at once (running: {handler.running})")
        time.sleep(1.5)  # and no more start while they run
        assert handler.running == expected and handler.peak == expected
        handler.release.set()
        wait_until(lambda: queue_empty(sqs, source.queue_url), 30, "the queue drained")
        wait_until(lambda: poller.running == 0, 10, "the invocations ended")
    finally:
        stop_all(poller, stop)
    assert handler.peak == expected
    assert sorted(len(call["records"]) for call in handler.calls) == [10] * 20
    assert sorted(r["body"] for call in handler.calls for r in call["records"]) == sorted(f"chunk-{i}" for i in range(200))


def test_a_source_without_maximum_concurrency_runs_the_documented_default(aws):
    stack = provisioned()

    assert source_of(stack, "completion", Recorder()).concurrency == DEFAULT_CONCURRENCY == 5
    assert source_of(stack, "plan", Recorder()).concurrency == DEFAULT_CONCURRENCY


def test_completion_batches_gather_for_the_batching_window_and_hold_up_to_the_batch_size(aws):
    # Given the completion worker's event source with a 2-second batching window (the template's parameter)
    stack = provisioned(CompletionBatchingWindowSeconds="2")
    handler = Recorder(pause=0.05)
    source = source_of(stack, "completion", handler)
    assert (source.batch_size, source.window_seconds) == (1000, 2.0)
    sqs = boto3.client("sqs", region_name="us-east-1")
    poller, stop = run(source, sqs)
    try:
        # When events trickle in: one, another 0.5 s later
        time.sleep(0.5)  # the receiver is in its long poll
        first = time.monotonic()
        send(sqs, source.queue_url, ["event-1"])
        time.sleep(0.5)
        send(sqs, source.queue_url, ["event-2"])
        wait_until(lambda: handler.calls, 10, "an invocation")
        # Then both go in one batch, which waits for the window from the first message (and not much longer)
        [call] = handler.calls
        assert [r["body"] for r in call["records"]] == ["event-1", "event-2"]
        assert 1.9 <= call["started"] - first < 3.5, call["started"] - first
        # And a flood of events goes in batches of the batch size, without waiting for the window
        handler.calls.clear()
        send(sqs, source.queue_url, [f"flood-{i}" for i in range(2_500)])
        wait_until(lambda: sum(len(c["records"]) for c in handler.calls) == 2_500, 60, "the flood handled")
    finally:
        stop_all(poller, stop)
    sizes = sorted((len(c["records"]) for c in handler.calls), reverse=True)
    assert sizes[:2] == [1000, 1000] and max(sizes) == 1000, sizes


def test_the_fifo_plan_queue_runs_message_groups_at_once_but_each_group_one_batch_at_a_time_in_order(aws):
    # Given the planner's event source (a FIFO queue, batches of 1) and steps of three jobs
    stack = provisioned()
    handler = Recorder(pause=0.3)
    source = source_of(stack, "plan", handler)
    assert source.fifo and source.batch_size == 1
    sqs = boto3.client("sqs", region_name="us-east-1")
    for job in ("a", "b", "c"):
        send(sqs, source.queue_url, [f"{job}-{step}" for step in range(4)], group=job)
    # When the poller runs them
    poller, stop = run(source, sqs)
    try:
        wait_until(lambda: len(handler.calls) == 12, 30, "every step handled")
    finally:
        stop_all(poller, stop)
    # Then the groups ran side by side, but each group's steps one after the other, in order
    assert handler.peak == 3
    for job in ("a", "b", "c"):
        steps = sorted((c for c in handler.calls if c["records"][0]["body"].startswith(job)), key=lambda c: c["started"])
        assert [c["records"][0]["body"] for c in steps] == [f"{job}-{step}" for step in range(4)]
        for before, after in itertools.pairwise(steps):
            assert after["started"] >= before["ended"], (before, after)


class CountingSqs:
    """An SQS client that counts its ReceiveMessage calls."""

    def __init__(self, client: Any):
        self.client, self.receives = client, 0

    def receive_message(self, **kwargs: Any) -> Any:
        self.receives += 1
        return self.client.receive_message(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


def test_idle_pollers_wait_in_long_polls_and_stop_at_once(aws):
    # Given every event source of the template, polling empty queues
    stack = provisioned()
    sqs = CountingSqs(boto3.client("sqs", region_name="us-east-1"))
    stop = threading.Event()
    pollers = [Poller(source, sqs, stop).start() for source in stack.sqs_event_sources(load=lambda _path: Recorder(pause=0.01))]
    time.sleep(3)
    # Then each asks at most once per long poll: an idle poller costs nothing
    assert sqs.receives <= 2 * len(pollers), sqs.receives
    # And a message is still taken at once
    [restore] = [p for p in pollers if p.source.function_name.startswith("runtime-RestoreFunction")]
    send(sqs.client, restore.source.queue_url, ["chunk"])
    wait_until(lambda: restore.source.invocations == 1, 3, "the message handled")
    # And once stopped, none of them is running within a moment, long poll or not
    stop.set()
    started = time.monotonic()
    for poller in pollers:
        poller.join(2)
    assert not any(poller.is_alive() for poller in pollers)
    assert time.monotonic() - started < 1.0


def test_a_stopping_poller_lets_the_invocation_under_way_end(aws):
    stack = provisioned()
    handler = Recorder(pause=1.0)
    source = source_of(stack, "restore", handler)
    sqs = boto3.client("sqs", region_name="us-east-1")
    poller, stop = run(source, sqs)
    send(sqs, source.queue_url, ["chunk"])
    wait_until(lambda: handler.running == 1, 5, "the invocation started")

    stop.set()
    poller.join(5)

    assert not poller.is_alive() and len(handler.calls) == 1
    assert queue_empty(sqs, source.queue_url)  # its batch was settled


def test_schedules_fire_on_their_grid_while_the_process_is_busy():
    # Given a schedule every 0.5 s, and threads keeping the interpreter busy (as restore workers do)
    fired: list[float] = []
    schedule = ScheduleSource("sweeper", lambda event, context: fired.append(time.monotonic()), every_seconds=0.5)
    stop, busy_until = threading.Event(), time.monotonic() + 4

    def busy() -> None:
        while time.monotonic() < busy_until:
            sum(i * i for i in range(2000))

    workers = [threading.Thread(target=busy, daemon=True) for _ in range(8)]
    for worker in workers:
        worker.start()
    scheduler = Scheduler([schedule], stop)
    scheduler.start()
    try:
        time.sleep(3.3)
    finally:
        stop.set()
        scheduler.join(2)
    # Then it ran every time, each within a fraction of a second of its time
    late = [started - due for _name, due, started in scheduler.fired]
    assert len(fired) >= 5, fired
    assert max(late) < 0.5, late


def test_a_schedule_whose_run_is_still_going_skips_its_turn():
    running, skipped = threading.Event(), []
    release = threading.Event()

    def slow(event: Any, context: Any) -> None:
        running.set()
        release.wait(5)

    stop = threading.Event()
    scheduler = Scheduler([ScheduleSource("sweeper", slow, every_seconds=0.2)], stop, on_skip=skipped.append)
    scheduler.start()
    try:
        assert running.wait(3)
        time.sleep(0.7)
    finally:
        release.set()
        stop.set()
        scheduler.join(2)
    assert len(scheduler.fired) == 1 and len(skipped) >= 2
    assert json.dumps([s.function_name for s in skipped[:1]]) == '["sweeper"]'
