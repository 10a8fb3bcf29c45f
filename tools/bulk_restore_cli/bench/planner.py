"""Part 2: the planner on a generated manifest, AWS answered by fast in-process fakes.

The real Planner, S3Gateway and QueueGateway run; only the boto3 clients and the job store are
fakes. Steps are run one after another as the plan queue would deliver them, each with the
remaining time a PlannerFunction (1,024 MB, 900 s) would have: the CPU time used here scaled
by Lambda's CPU share at that memory size.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from bulk_restore_cli.bench.common import LogSink, cpu_scale, current_rss_mb, functions_logging_to, peak_rss_mb
from bulk_restore_cli.bench.fakes import FakeJobStore, FakePublisher, GeneratedManifest, ManifestS3Client, StubSqsClient

PLANNER_MEMORY_MB = 1024  # template.yaml PlannerFunction
PLANNER_TIMEOUT_S = 900


def run(
    lines: int, repeats: int = 1, memory_mb: int = PLANNER_MEMORY_MB, timeout_s: int = PLANNER_TIMEOUT_S, sink: LogSink | None = None
) -> dict[str, Any]:
    """Plan a generated manifest of ``lines`` lines, ``repeats`` times: the fastest run is reported
    (other load on the machine only slows a run down), with the slowest for comparison."""
    sink = sink or LogSink()
    with functions_logging_to(sink):
        runs = [_run(lines, memory_mb, timeout_s, sink) for _ in range(repeats)]
    best = min(runs, key=lambda r: r["cpu_s"])
    return best | {"repeats": repeats, "slowest_lines_per_cpu_s": min(r["lines_per_cpu_s"] for r in runs), "peak_rss_mb": peak_rss_mb()}


def _run(lines: int, memory_mb: int, timeout_s: int, sink: LogSink) -> dict[str, Any]:
    from bulk_restore.adapters.dynamodb import now_iso
    from bulk_restore.adapters.s3 import READ_BLOCK, S3Gateway
    from bulk_restore.adapters.sqs import QueueGateway
    from bulk_restore.domain.model import ManifestLocation, RestoreJob, Tier
    from bulk_restore.handlers import planner as _planner_handler  # noqa: F401 - makes the functions' parent logger
    from bulk_restore.settings import Settings
    from bulk_restore.usecases.notify import Notifier
    from bulk_restore.usecases.plan import Planner

    logged_before = sink.total_bytes
    settings = Settings()  # the template's values: 200,000 lines a step, 60 s reserve
    manifest = GeneratedManifest(lines)
    store, publisher, sqs = FakeJobStore(), FakePublisher(), StubSqsClient()
    s3_client = ManifestS3Client(manifest)
    planner = Planner(
        store,
        S3Gateway(client=s3_client),
        QueueGateway("plan.fifo", "restore", client=sqs),
        Notifier(store, publisher),
        settings.plan_lines_per_step,
        settings.plan_reserve_ms,
        settings.manage_eventbridge,
    )
    job_id = str(uuid.uuid4())
    stamp = now_iso()
    store.put_job(
        RestoreJob(
            job_id,
            Tier.STANDARD,
            1,
            ManifestLocation("bench-manifests", "manifest.csv", '"etag"', manifest.size),
            created_at=stamp,
            updated_at=stamp,
        )
    )

    # Making the manifest's bytes is this benchmark's work, not the planner's: measured apart.
    started = time.process_time()
    for _ in manifest.iter_chunks(0, READ_BLOCK):
        pass
    generation_cpu = time.process_time() - started

    scale = cpu_scale(memory_mb)
    rss_before = current_rss_mb()
    steps: list[dict[str, Any]] = []
    cpu_started, wall_started = time.process_time(), time.perf_counter()
    step = 0
    while True:
        step_started = time.process_time()

        def remaining_ms(started: float = step_started) -> int:
            return int((timeout_s - (time.process_time() - started) * scale) * 1000)

        before = store.job(job_id).planning
        planner.run_step(job_id, step, remaining_ms)
        after = store.job(job_id).planning
        step_cpu = time.process_time() - step_started
        steps.append({"lines": after.lines_read - before.lines_read, "cpu_s": step_cpu, "lambda_s_estimate": step_cpu * scale})
        if after.done or after.step == step:
            break
        step = after.step
    cpu = time.process_time() - cpu_started - generation_cpu
    wall = time.perf_counter() - wall_started
    planning = store.job(job_id).planning
    assert planning.done and planning.lines_read == lines, planning
    chunks = planning.chunks_emitted
    return {
        "lines": lines,
        "manifest_bytes": manifest.size,
        "cpu_s": cpu,
        "wall_s": wall,
        "generation_cpu_s": generation_cpu,
        "lines_per_cpu_s": lines / cpu if cpu > 0 else None,
        "steps": len(steps),
        "lines_per_step": planner.lines_per_step,
        "steps_cut_by_time": sum(1 for s in steps[:-1] if s["lines"] < planner.lines_per_step),
        "longest_step_lambda_s_estimate": max(s["lambda_s_estimate"] for s in steps),
        "lambda_memory_mb": memory_mb,
        "chunks": chunks,
        "sqs_messages": sqs.messages,
        "sqs_requests": dict(sqs.requests),
        "sqs_bytes": sqs.bytes,
        "s3_requests": dict(s3_client.requests),
        "store_requests": dict(store.calls),
        "rss_before_mb": rss_before,
        "peak_rss_mb": peak_rss_mb(),
        "log_bytes": sink.total_bytes - logged_before,
    }
