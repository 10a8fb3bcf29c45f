"""Part 4: restore issuance against the account's limit, in real time.

The real RestoreWorker, Pacer and S3Gateway (with its backoff) run with the stack's concurrency:
``workers`` restore function invocations at once (RestoreMaxConcurrency), each taking deliveries of
up to 10 chunk messages one after another (the event source's BatchSize), the objects requested on ``threads`` threads
(RestoreConcurrency). S3 is a fake that accepts ``limit`` restore requests in any sliding second
and answers 503 SlowDown beyond; each of its answers takes ``s3_latency`` seconds. The job store
is the in-memory fake, each call taking ``store_latency`` seconds (a DynamoDB round trip).
"""

from __future__ import annotations

import math
import queue
import threading
import time
import uuid
from typing import Any

from bulk_restore_cli.bench.common import LogSink, functions_logging_to
from bulk_restore_cli.bench.fakes import FakeJobStore, FakePublisher, ThrottlingS3Client

BUCKET = "bench-archive"
MAX_RECEIVES = 8  # template.yaml RestoreQueue maxReceiveCount
DELIVERY_SIZE = 10  # template.yaml RestoreFunction Chunks BatchSize: messages per invocation


def run(
    objects: int = 6000,
    workers: int = 10,
    threads: int = 16,
    rate: int = 900,
    limit: int = 1000,
    s3_latency: float = 0.03,
    store_latency: float = 0.005,
    sink: LogSink | None = None,
) -> dict[str, Any]:
    sink = sink or LogSink()
    with functions_logging_to(sink):
        return _run(objects, workers, threads, rate, limit, s3_latency, store_latency)


def _run(objects: int, workers: int, threads: int, rate: int, limit: int, s3_latency: float, store_latency: float) -> dict[str, Any]:
    from bulk_restore.adapters.dynamodb import now_iso
    from bulk_restore.adapters.s3 import S3Gateway
    from bulk_restore.domain.model import Counts, JobStatus, ManifestLocation, PlanningState, RestoreJob, Tier
    from bulk_restore.handlers import restorer as _restorer_handler  # noqa: F401 - makes the functions' parent logger
    from bulk_restore.usecases.count import StreamCounter
    from bulk_restore.usecases.notify import Notifier
    from bulk_restore.usecases.pacing import Pacer
    from bulk_restore.usecases.plan import LINES_PER_CHUNK
    from bulk_restore.usecases.restore import RestoreWorker

    store, publisher = FakeJobStore(latency=store_latency), FakePublisher()
    s3 = ThrottlingS3Client(limit=limit, latency=s3_latency)
    pacer = Pacer(store, rate)
    worker = RestoreWorker(store, S3Gateway(client=s3), threads, pacer)
    job_id, stamp = str(uuid.uuid4()), now_iso()
    chunks = math.ceil(objects / LINES_PER_CHUNK)
    store.put_job(
        RestoreJob(
            job_id,
            Tier.STANDARD,
            1,
            ManifestLocation("bench-manifests", "manifest.csv", '"etag"', 1),
            status=JobStatus.RESTORING,
            created_at=stamp,
            updated_at=stamp,
            planning=PlanningState(lines_read=objects, chunks_emitted=chunks, step=1, done=True, buckets=[BUCKET]),
        ),
        Counts(),
    )
    messages: queue.Queue[dict[str, Any]] = queue.Queue()
    for n in range(chunks):
        lines = range(n * LINES_PER_CHUNK + 1, min(objects, (n + 1) * LINES_PER_CHUNK) + 1)
        messages.put(
            {
                "job_id": job_id,
                "chunk": n,
                "rows": [[line, BUCKET, f"photos/2024/07/IMG_{line:07d}.jpg", None] for line in lines],
                "errors": [],
            }
        )
    failed_deliveries: list[BaseException] = []
    dead: list[dict[str, Any]] = []
    receives: dict[int, int] = {}

    def invocation_loop() -> None:
        while True:
            delivery: list[dict[str, Any]] = []
            while len(delivery) < DELIVERY_SIZE:  # as the event source hands the function up to BatchSize messages
                try:
                    delivery.append(messages.get_nowait())
                except queue.Empty:
                    break
            if not delivery:
                return
            failed = set(worker.restore_messages([(str(m["chunk"]), m) for m in delivery]))
            for message in delivery:
                if str(message["chunk"]) not in failed:
                    continue
                failed_deliveries.append(RuntimeError(f"chunk {message['chunk']} failed"))
                receives[message["chunk"]] = receives.get(message["chunk"], 1) + 1
                (dead.append if receives[message["chunk"]] > MAX_RECEIVES else messages.put)(message)

    pool = [threading.Thread(target=invocation_loop, name=f"restore-invocation-{i}") for i in range(workers)]
    cpu_started, started = time.process_time(), time.monotonic()
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    wall, cpu = time.monotonic() - started, time.process_time() - cpu_started
    counter = StreamCounter(store, Notifier(store, publisher))  # type: ignore[arg-type]
    while records := store.take_stream():  # the counting function, after the fact (not timed)
        counter.count("shardId-00000001700000000000-bench", records)
    counts = store.counts(job_id)
    assert dead or (counts.total == objects and counts.restoring == objects), counts
    accepted = sorted(s3.accepted_at)
    first, last = accepted[0], accepted[-1]
    full_seconds = int(last - first)
    per_second = [0] * max(1, full_seconds)
    for at in accepted:
        k = int(at - first)
        if k < full_seconds:
            per_second[k] += 1
    steady = sum(per_second) / len(per_second)
    return {
        "objects": objects,
        "workers": workers,
        "threads_per_worker": threads,
        "pacer_rate_per_s": rate,
        "account_limit_per_s": limit,
        "s3_latency_s": s3_latency,
        "store_latency_s": store_latency,
        "wall_s": wall,
        "cpu_s": cpu,
        "restore_requests": s3.answers,
        "accepted": len(accepted),
        "throttled": s3.throttled,
        "throttled_per_1000": 1000 * s3.throttled / s3.answers,
        "chunk_deliveries_failed": len(failed_deliveries),  # S3 still said SlowDown after the gateway's retries
        "chunks_dead_lettered": len(dead),
        "rate_overall_per_s": (len(accepted) - 1) / (last - first) if last > first else None,
        "rate_steady_per_s": steady,
        "fraction_of_limit": steady / limit,
        "requests_per_second_bins": per_second,
        "peak_sliding_second": _peak_window(accepted),
        "store_requests": dict(store.calls),
    }


def _peak_window(times: list[float]) -> int:
    """Most accepted requests in any one-second window."""
    peak, left = 0, 0
    for right, at in enumerate(times):
        while times[left] <= at - 1.0:
            left += 1
        peak = max(peak, right - left + 1)
    return peak
