"""Part 5: on the local stack, from the last object's restore completing to the Complete event.

The whole local stack runs in this process (`bulk-restore local`: moto on a port, the event
source pollers with the template's batch sizes and batching windows, the restore clock). Each
job restores ``objects`` archived objects of its own bucket. Two moments are taken: when the
restore emulation completed the job's last restore (and handed S3's event to EventBridge), and
when SNS accepted the job's Complete event from the completion function.

moto runs with the local stack's own DynamoDB and SQS layers (local/dynamodb.py, local/sqs.py),
as `bulk-restore local` does.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import statistics
import time
import urllib.request
from typing import Any

from bulk_restore_cli.bench.common import LogSink, functions_logging_to, local_aws_layers
from bulk_restore_cli.bench.meter import RequestMeter


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def run(
    sizes: tuple[int, ...] | list[int] = (300, 300, 1), restore_seconds: float = 3.0, timeout_s: float = 120.0, sink: LogSink | None = None
) -> dict[str, Any]:
    """One job per size, one after another. A one-object job shows the lone last event: it waits
    for the whole batching window, as the last straggler of a large job does."""
    sink = sink or LogSink()
    saved = dict(os.environ)
    try:
        with functions_logging_to(sink), local_aws_layers():
            return _run(list(sizes), restore_seconds, timeout_s)
    finally:
        os.environ.clear()
        os.environ.update(saved)
        from bulk_restore import settings, wiring

        settings.get_settings.cache_clear()
        wiring.services.cache_clear()


def _run(sizes: list[int], restore_seconds: float, timeout_s: float) -> dict[str, Any]:
    import boto3

    from bulk_restore import wiring
    from bulk_restore.domain.manifest import encode_key
    from bulk_restore_cli.local.stack import LocalStack, LocalStackConfig

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's server logs every request
    config = LocalStackConfig(api_port=_free_port(), aws_port=_free_port(), restore_seconds=restore_seconds, stack_name="bench-latency")
    local = LocalStack(config)
    info = local.start()
    window = _local_window(local)
    try:
        meter = RequestMeter()
        meter.attach(wiring.services().publisher.client, "code")
        emulator = local.emulator
        assert emulator is not None
        last_completed: dict[str, float] = {}
        complete = emulator._complete

        def timed_complete(state: Any) -> None:
            complete(state)
            last_completed[state.bucket_name] = time.time()

        emulator._complete = timed_complete  # type: ignore[method-assign]
        s3 = boto3.client("s3", endpoint_url=info["aws_endpoint_url"], region_name=info["region"])
        results = []
        for n, objects in enumerate(sizes):
            bucket = f"bench-latency-{n}"
            s3.create_bucket(Bucket=bucket)
            keys = [f"photos/IMG {i:05d}.jpg" for i in range(objects)]
            for key in keys:
                s3.put_object(Bucket=bucket, Key=key, Body=b"x", StorageClass="GLACIER")
            manifest_key = f"{bucket}.csv"
            s3.put_object(
                Bucket=info["manifest_bucket"], Key=manifest_key, Body="".join(f"{bucket},{encode_key(k)}\n" for k in keys).encode()
            )
            request = urllib.request.Request(
                f"{info['api_url']}/create-job",
                method="POST",
                data=json.dumps({"bucket": info["manifest_bucket"], "key": manifest_key, "tier": "STANDARD"}).encode(),
                headers={"x-api-key": info["api_key"], "Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=30) as answer:
                job_id = json.loads(answer.read())["JobId"]
            created = time.time()
            finished = _wait_for_terminal_event(meter, job_id, created + timeout_s)
            results.append(
                {
                    "job_id": job_id,
                    "objects": objects,
                    "status": finished["status"],
                    "last_completion_to_event_s": finished["at"] - last_completed[bucket],
                    "create_to_event_s": finished["at"] - created,
                }
            )
    finally:
        local.stop()
    latencies = [r["last_completion_to_event_s"] for r in results]
    return {
        "jobs": results,
        "restore_seconds": restore_seconds,
        "completion_batch_window_s": window,
        "deployed_completion_batch_window_s": _deployed_window(),
        "median_s": statistics.median(latencies),
        "max_s": max(latencies),
    }


def _local_window(local: Any) -> float | None:
    """The completion queue's batching window as the local stack runs it."""
    assert local.stack is not None
    spec = local.stack.functions.get("CompletionFunction")
    names = {spec.name} if spec else set()
    return next((p.source.window_seconds for p in local.pollers if p.source.function_name in names), None)


def _deployed_window() -> float | None:
    """The completion queue's batching window a deployed stack has by default (template.yaml)."""
    from bulk_restore_cli.local.stack import find_template
    from bulk_restore_cli.local.template import Resolver, load_template, parse_parameters

    template = load_template(find_template())
    events = template["Resources"]["CompletionFunction"]["Properties"]["Events"]
    resolve = Resolver(parse_parameters(template)).resolve
    for event in events.values():
        if event.get("Type") == "SQS":
            return float(resolve(event["Properties"].get("MaximumBatchingWindowInSeconds", 0)))
    return None


def _wait_for_terminal_event(meter: RequestMeter, job_id: str, deadline: float) -> dict[str, Any]:
    while time.time() < deadline:
        for request in list(meter.requests):
            if request.operation != "Publish":
                continue
            message = json.loads(request.detail.get("message") or "{}")
            if message.get("JobId") == job_id and message.get("EventType") == "JobFinished":
                return {"status": message["Status"], "at": request.at}
        time.sleep(0.05)
    raise TimeoutError(f"job {job_id} sent no terminal event in time")
