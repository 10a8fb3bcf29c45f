"""Part 1: the cost profile of one job of N archived objects, through the real handlers on moto.

The stack is provisioned from template.yaml on an in-process moto (mock_aws), with the faithful
S3 restore emulation. The functions run as Lambda runs them, through the local runtime's SQS
event sources (batch sizes from the template), each invocation measured, every request metered
(see meter.py). Restores are driven by a simulated clock, so hours of restoring take no time:

- ``burst``: completion events come faster than the completion function's batching window
  (MaximumBatchingWindowInSeconds) lasts, so every SQS batch is full (BatchSize): the cheapest
  case, a large job;
- ``spread``: restores complete at times spread over the tier's window (Standard from
  Flexible Retrieval: 3 to 5 hours), and the batches form as Lambda forms them: a batch closes
  when it is full or when its batching window (the template's default) has passed since its
  first message.
"""

from __future__ import annotations

import bisect
import json
import os
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bulk_restore_cli.bench.common import LogSink, cpu_scale, functions_logging_to, local_aws_layers
from bulk_restore_cli.bench.meter import DynamoCapacity, Request, RequestMeter, moto_item_lookup

REGION = "us-east-1"
DATA_BUCKET = "bench-archive"

# create-job fields that select each engine the project has; the direct engine is the default.
# "batch+inventory": the batch engine with the job's objects from an S3 Inventory report, which
# says each object's class (no HeadObject per object).
ENGINES: dict[str, dict[str, Any]] = {
    "direct": {},
    "batch": {"engine": "batch"},
    "batch+inventory": {"engine": "batch", "manifest_format": "s3-inventory"},
}

ARRIVALS = ("burst", "spread")
STANDARD_WINDOW_S = (3 * 3600, 5 * 3600)  # Flexible Retrieval, Standard tier: "within 3-5 hours"

# Model of a deployed function's time (assumptions, not measurements): AWS round trips in ms by
# (service, operation), "*" for the rest of a service. A function's billed duration is estimated
# as its own CPU time, scaled to Lambda's CPU share at its memory size, plus these waits; the
# restore workers' RestoreObject calls overlap RestoreConcurrency at a time.
LATENCY_MS: dict[tuple[str, str], float] = {
    ("dynamodb", "*"): 6,
    ("dynamodb", "BatchGetItem"): 12,
    ("dynamodb", "BatchWriteItem"): 12,
    ("dynamodb", "TransactWriteItems"): 25,
    ("s3", "*"): 20,
    ("s3", "RestoreObject"): 30,
    ("s3", "GetObject"): 30,
    ("sqs", "*"): 8,
    ("sns", "*"): 15,
}
S3_TRANSFER_BYTES_PER_S = 60e6  # reading the manifest
PLATFORM_LOG_BYTES = 350  # Lambda's START, END and REPORT lines per invocation


def latency_s(request: Request) -> float:
    ms = LATENCY_MS.get((request.service, request.operation), LATENCY_MS.get((request.service, "*"), 10))
    return ms / 1000 + (request.payload_bytes / S3_TRANSFER_BYTES_PER_S if request.operation == "GetObject" else 0)


def find_template() -> Path:
    from bulk_restore_cli.local.stack import find_template as find

    return find()


@contextmanager
def _fake_aws_environment() -> Iterator[None]:
    """Fake credentials, no endpoint or profile from the machine: every call goes to moto."""
    saved = dict(os.environ)
    for name in list(os.environ):
        if name.startswith("AWS_") or name in ("TABLE_NAME", "PLAN_QUEUE_URL", "RESTORE_QUEUE_URL", "TOPIC_ARN"):
            del os.environ[name]
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
        }
    )
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
        _reset_services()


def _reset_services() -> None:
    from bulk_restore import settings, wiring

    settings.get_settings.cache_clear()
    wiring.services.cache_clear()


def _keys(n: int) -> list[str]:
    """Keys like an archive's: three in four plain, one in four with a space (URL-encoded in the manifest)."""
    return [f"scans/2019/Invoice {i:07d}.pdf" if i % 4 == 3 else f"photos/2024/07/IMG_{i:07d}.jpg" for i in range(n)]


def _api_event(body: dict[str, Any]) -> dict[str, Any]:
    """POST /create-job as API Gateway's REST proxy integration sends it."""
    headers = {"Host": "bench.execute-api.us-east-1.amazonaws.com", "X-Forwarded-Proto": "https", "Content-Type": "application/json"}
    return {
        "resource": "/create-job",
        "path": "/create-job",
        "httpMethod": "POST",
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": "/create-job",
            "httpMethod": "POST",
            "path": "/prod/create-job",
            "stage": "prod",
            "requestId": "bench",
            "accountId": "123456789012",
            "apiId": "bench",
            "identity": {"sourceIp": "192.0.2.1"},
            "protocol": "HTTP/1.1",
            "requestTimeEpoch": 1700000000000,
        },
        "body": json.dumps(body),
        "isBase64Encoded": False,
    }


def run(
    objects: int, engine: str = "direct", arrival: str = "burst", sink: LogSink | None = None, completion_window_s: float | None = None
) -> dict[str, Any]:
    """``completion_window_s``: the completion queue's batching window, if not the template's default."""
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}: one of {', '.join(ENGINES)}")
    if arrival not in ARRIVALS:
        raise ValueError(f"unknown arrival {arrival!r}: one of {', '.join(ARRIVALS)}")
    sink = sink or LogSink()
    with _fake_aws_environment(), functions_logging_to(sink), local_aws_layers():
        return _run(objects, engine, arrival, sink, completion_window_s)


def _run(objects: int, engine: str, arrival: str, sink: LogSink, completion_window_s: float | None) -> dict[str, Any]:
    import boto3
    from moto import mock_aws

    saved_session = boto3.DEFAULT_SESSION
    try:
        with mock_aws():
            session = boto3.Session(region_name=REGION)
            boto3.DEFAULT_SESSION = session  # one session: the functions' clients share loaded models
            return _run_on_moto(objects, engine, arrival, sink, session, completion_window_s)
    finally:
        boto3.DEFAULT_SESSION = saved_session


def _run_on_moto(objects: int, engine: str, arrival: str, sink: LogSink, session: Any, completion_window_s: float | None) -> dict[str, Any]:
    from moto.s3.models import s3_backends

    from bulk_restore import wiring
    from bulk_restore.domain.manifest import encode_key
    from bulk_restore_cli.local.lambda_runtime import LambdaContext, drain, drain_streams, load_handler
    from bulk_restore_cli.local.provision import provision
    from bulk_restore_cli.local.s3_restore import RestoreTimings, S3RestoreEmulator

    stack = provision(find_template(), stack_name="bench", region=REGION)
    os.environ.update(stack.function_environment())
    _reset_services()

    now = [0.0]  # the simulated clock of the restores
    low, high = STANDARD_WINDOW_S
    timings = RestoreTimings.scaled(high, spread=1 - low / high, seed=7)
    emulator = S3RestoreEmulator(timings, clock=lambda: now[0]).install()
    batch = None
    if ENGINES[engine].get("engine") == "batch":
        from bulk_restore_cli.local.s3_batch import S3BatchEmulator

        batch = S3BatchEmulator(emulator, clock=lambda: now[0]).install()  # S3 Batch Operations runs the tasks
    try:
        s3 = session.client("s3")  # the benchmark's own client: not metered
        s3.create_bucket(Bucket=DATA_BUCKET)
        backend = s3_backends[stack.account_id]["aws"]
        keys = _keys(objects)
        for key in keys:
            backend.put_object(DATA_BUCKET, key, b"x", storage="GLACIER")
        manifest = "".join(f"{DATA_BUCKET},{encode_key(key)}\n" for key in keys)
        manifest_bucket = stack.ref("ManifestBucket")  # the stack's own: manifests are read from nowhere else
        s3.put_object(Bucket=manifest_bucket, Key="manifest.csv", Body=manifest.encode())

        meter = RequestMeter(DynamoCapacity(moto_item_lookup(stack.account_id, REGION)))
        services = wiring.services()
        if hasattr(services.completions, "clock"):
            # Time-based caches of the completion function run on the restores' simulated clock.
            services.completions.clock = lambda: now[0]
        for name in ("store", "s3", "queues", "publisher"):
            meter.attach(getattr(services, name).client, "code")
        if services.batch is not None:
            meter.attach(services.batch.operations.client, "code")
        esm = session.client("sqs")
        meter.attach(esm, "esm")

        functions = {spec.name: spec for spec in stack.functions.values()}
        sources = {}
        for source in stack.sqs_event_sources(retry_delay=0):
            spec = functions[source.function_name]
            source.window_seconds = 0  # batches are formed explicitly below, not by waiting
            source.handler = meter.wrap(spec.logical_id, spec.memory, source.handler, sink)
            sources[spec.logical_id] = source
        # The counting function on the table's stream: invocations metered (Lambda's price); the
        # stream reads are Lambda's, free of charge, so its client is not metered.
        streams = session.client("dynamodbstreams")
        counting = []
        for source in stack.stream_event_sources(retry_delay=0):
            spec = functions[source.function_name]
            source.window_seconds = 0
            source.handler = meter.wrap(spec.logical_id, spec.memory, source.handler, sink)
            counting.append(source)

        def count() -> None:
            drain_streams(counting, streams, esm)

        api_spec = stack.functions["ApiFunction"]
        api = meter.wrap("ApiFunction", api_spec.memory, load_handler(api_spec.handler), sink)

        manifest_key = "manifest.csv"
        if ENGINES[engine].get("manifest_format") == "s3-inventory":
            from bulk_restore_cli.local.inventory import write_inventory_report

            manifest_key = write_inventory_report(DATA_BUCKET, manifest_bucket, "inventory", account_id=stack.account_id)
        body = {"bucket": manifest_bucket, "key": manifest_key, "tier": "STANDARD", **ENGINES[engine]}
        response = api(_api_event(body), LambdaContext("ApiFunction", api_spec.timeout))
        assert response["statusCode"] == 200, response
        job_id = json.loads(response["body"])["JobId"]

        for _ in range(1_000_000):  # planning and restore chunks, each round's records counted as they come
            moved = sum(sources[name].poll_once(esm) for name in ("PlannerFunction", "RestoreFunction"))
            if not drain_streams(counting, streams, esm) and not moved:
                break
        if batch is not None:
            drain([sources["RestoreFunction"]], esm)  # the launch the counting function asked for
            count()
        batch_tasks = batch_jobs = 0
        if batch is not None:
            batch.run_until_idle()  # the Batch job's tasks: S3 bills their restore requests, Batch Operations its fee
            meter.paused = True  # the benchmark's own look at the Batch jobs
            for run in services.store.get_job(job_id).batch_runs.values():
                if run.get("id"):
                    batch_jobs += 1
                    described = services.batch.operations.describe(str(run["id"]))
                    batch_tasks += int(described["ProgressSummary"]["TotalNumberOfTasks"])
            meter.paused = False
        completion = sources["CompletionFunction"]
        completion_spec = stack.functions["CompletionFunction"].sqs[0]
        window_s = completion_spec.window_seconds if completion_window_s is None else completion_window_s
        batches = _deliver_completions(emulator, completion, esm, now, arrival, completion_spec.batch_size, window_s, count)
        while completion.poll_once(esm):  # what is left: the Batch job's last status events
            batches += 1
            count()
        count()
        delivered = emulator.completed

        meter.paused = True
        job, counts = services.store.get_job_and_counts(job_id)
    finally:
        if batch is not None:
            batch.uninstall()
        emulator.uninstall()
    assert job.status.value == "Complete" and counts.restored == objects, (job.status, counts)
    profile = summarise(meter, objects, engine, arrival, sink, job_id, delivered, batches, services.settings.restore_concurrency)
    profile["requests"]["batch_tasks"] = batch_tasks
    profile["requests"]["batch_jobs"] = batch_jobs
    profile["s3_restore_requests_by_tier"]["GLACIER.Standard"] += batch_tasks
    profile["completion_batch"] = {"size": completion_spec.batch_size, "window_s": window_s}
    return profile


def _deliver_completions(
    emulator: Any, completion: Any, esm: Any, now: list[float], arrival: str, batch_size: int, window_s: float, count: Callable[[], None]
) -> int:
    """Complete the restores and run the completion function on the batches Lambda would form. Returns the batches.

    A batch closes when it is full or, in the ``spread`` case, when the batching window has
    passed since its first message; in the ``burst`` case events come faster than a window
    lasts, so every batch is full. Only the events of one batch are on the queue at a time
    (moto's ReceiveMessage reads the whole queue each time).
    """
    batches = 0
    dues = emulator.due_times()
    i = 0
    while i < len(dues):
        close = dues[min(i + batch_size, len(dues)) - 1]
        if arrival == "spread":
            close = min(close, dues[i] + window_s)
        now[0] = close
        emulator.tick()
        while completion.poll_once(esm):
            batches += 1
        count()  # the stream carries the batch's changes to the counting function
        i = bisect.bisect_right(dues, close)
    return batches


def summarise(
    meter: RequestMeter,
    objects: int,
    engine: str,
    arrival: str,
    sink: LogSink,
    job_id: str,
    eventbridge_deliveries: int,
    completion_batches: int,
    restore_concurrency: int,
) -> dict[str, Any]:
    code = [r for r in meter.requests if r.origin == "code"]
    esm = [r for r in meter.requests if r.origin == "esm"]
    by_operation: Counter[str] = Counter(f"{r.service}.{r.operation}" for r in code)
    billed: Counter[str] = Counter()
    for r in code:
        billed[f"{r.service}.{r.operation}"] += r.billed
    esm_receives = [r for r in esm if r.operation == "ReceiveMessage"]
    esm_busy = [r for r in esm_receives if r.messages]
    esm_other = [r for r in esm if r.operation != "ReceiveMessage"]

    fifo_sends = sum(r.billed for r in code if r.service == "sqs" and r.operation == "SendMessage")  # the plan queue is FIFO
    standard_sends = sum(r.billed for r in code if r.service == "sqs" and r.operation != "SendMessage")
    published = [json.loads(r.detail["message"]) for r in code if r.operation == "Publish"]
    job_events = [m for m in published if m.get("JobId") == job_id]

    per_function: dict[str, dict[str, Any]] = {}
    calls_of: dict[int, list[Request]] = defaultdict(list)
    for r in code:
        calls_of[r.invocation].append(r)
    for inv in meter.invocations:
        f = per_function.setdefault(
            inv.function,
            {
                "memory_mb": inv.memory_mb,
                "invocations": 0,
                "records": 0,
                "wall_s": 0.0,
                "cpu_s": 0.0,
                "own_cpu_s": 0.0,
                "modelled_s": 0.0,
                "requests": 0,
                "wru": 0.0,
                "rru": 0.0,
                "by_operation": {},
            },
        )
        calls = calls_of.get(inv.index, [])
        for r in calls:
            name = f"{r.service}.{r.operation}"
            f["by_operation"][name] = f["by_operation"].get(name, 0) + 1
        own = max(0.0, inv.cpu_s - sum(r.cpu_s for r in calls))
        waits = sum(latency_s(r) for r in calls if not r.pooled) + sum(latency_s(r) for r in calls if r.pooled) / restore_concurrency
        f["invocations"] += 1
        f["records"] += inv.records
        f["wall_s"] += inv.wall_s
        f["cpu_s"] += inv.cpu_s
        f["own_cpu_s"] += own
        f["modelled_s"] += own * cpu_scale(inv.memory_mb) + waits
        f["requests"] += len(calls)
        f["wru"] += sum(r.wru for r in calls)
        f["rru"] += sum(r.rru for r in calls)
    for name, f in per_function.items():
        f["gb_s"] = f["modelled_s"] * f["memory_mb"] / 1024
        f["log_bytes"] = sink.bytes.get(name, 0) + PLATFORM_LOG_BYTES * f["invocations"]

    wru = sum(r.wru for r in code)
    rru = sum(r.rru for r in code)
    return {
        "engine": engine,
        "arrival": arrival,
        "objects": objects,
        "job_id": job_id,
        "requests": {
            "code_total": len(code),
            "code_per_object": len(code) / objects,
            "code_by_operation": dict(sorted(by_operation.items())),
            "code_billed_by_operation": dict(sorted(billed.items())),
            "restore_object": by_operation.get("s3.RestoreObject", 0),
            "esm_receives_with_messages": len(esm_busy),
            "esm_receives_billed": sum(r.billed for r in esm_busy),
            "esm_receives_empty": len(esm_receives) - len(esm_busy),
            "esm_other": dict(Counter(r.operation for r in esm_other)),
            "eventbridge_to_sqs": eventbridge_deliveries,
        },
        "dynamodb": {
            "wru": wru,
            "rru": rru,
            "wru_per_object": wru / objects,
            "rru_per_object": rru / objects,
            "wru_by_operation": _sum_by(code, "wru"),
            "rru_by_operation": _sum_by(code, "rru"),
            "transactions": by_operation.get("dynamodb.TransactWriteItems", 0),
            "cancelled_transactions": sum(1 for r in code if r.operation == "TransactWriteItems" and r.error),
            "capacity_source": "computed from item sizes (DynamoDB's rounding rules); moto's ConsumedCapacity is a constant",
        },
        "sqs": {
            "messages_sent_by_code": sum(r.messages for r in code if r.service == "sqs"),
            "fifo_requests_billed": fifo_sends,
            "standard_requests_billed": standard_sends + sum(r.billed for r in esm_busy) + len(esm_other) + eventbridge_deliveries,
            "messages_received_by_esm": sum(r.messages for r in esm_receives),
            "completion_batches": completion_batches,
        },
        "sns": {
            "publishes": len(published),
            "billed": sum(r.billed for r in code if r.service == "sns"),
            "job_events": len(job_events),
            "progress_events": sum(1 for m in job_events if m.get("EventType") == "JobProgress"),
            "terminal_events": sum(1 for m in job_events if m.get("EventType") == "JobFinished"),
        },
        "lambda": per_function,
        "logs": {
            "app_bytes": sink.total_bytes,
            "platform_bytes": PLATFORM_LOG_BYTES * len(meter.invocations),
            "by_function": dict(sink.bytes),
        },
        "s3_restore_requests_by_tier": {"GLACIER.Standard": by_operation.get("s3.RestoreObject", 0)},
        "api_requests": 1,
    }


def _sum_by(requests: list[Request], attr: str) -> dict[str, float]:
    totals: Counter[str] = Counter()
    for r in requests:
        if getattr(r, attr):
            totals[r.operation] += getattr(r, attr)
    return dict(totals)
