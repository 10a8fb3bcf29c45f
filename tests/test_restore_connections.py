"""The restore worker's S3 client holds a connection per restore thread, as the functions build it.

Against moto served over HTTP (as the local stack and AWS are reached), not the in-process mock:
only a real connection pool can be too small.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from bulk_restore.settings import Settings
from bulk_restore.usecases.jobs import CreateJobRequest
from bulk_restore.wiring import build_services
from bulk_restore_cli.demo import free_port
from bulk_restore_cli.local.provision import provision

TEMPLATE = Path(__file__).resolve().parents[1] / "template.yaml"
BUCKET = "pool-archive"


@pytest.fixture
def moto_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """moto on a loopback port; every client this process makes is pointed at it."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", url)
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)  # a session made before would not see the endpoint
    try:
        yield url
    finally:
        server.stop()


def settings_for(concurrency: int, **extra: object) -> Settings:
    return Settings(restore_concurrency=concurrency, **extra)


@pytest.mark.parametrize("concurrency", [1, 16, 64])
def test_the_s3_and_dynamodb_clients_hold_a_connection_per_restore_thread(concurrency: int) -> None:
    # Given the functions' settings with RestoreConcurrency threads per restore worker
    # When the services are built, as each function builds them once
    services = build_services(settings_for(concurrency))
    # Then the clients the restore threads share have a connection for each thread (never fewer than botocore's 10)
    assert services.s3.client.meta.config.max_pool_connections >= max(concurrency, 10)
    assert services.store.client.meta.config.max_pool_connections >= max(concurrency, 10)


def test_a_chunk_restored_by_16_threads_discards_no_connection(moto_server: str, caplog: pytest.LogCaptureFixture) -> None:
    # Given the stack's resources made from template.yaml on moto over HTTP, and a job of one chunk of 98 archived objects
    stack = provision(TEMPLATE, stack_name="pool-test", endpoint_url=moto_server)
    settings = Settings.from_env({**stack.function_environment(), "RESTORE_CONCURRENCY": "16"})
    services = build_services(settings)
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    keys = [f"archived/{i:03d}.bin" for i in range(98)]
    for key in keys:
        s3.put_object(Bucket=BUCKET, Key=key, Body=b"x", StorageClass="GLACIER")
    manifests = settings.manifest_bucket_list[0]
    s3.put_object(Bucket=manifests, Key="manifest.csv", Body="".join(f"{BUCKET},{k}\n" for k in keys).encode())
    job, _ = services.jobs.create(CreateJobRequest(bucket=manifests, key="manifest.csv"), None)
    services.planner.run_step(job.job_id, 0, lambda: 900_000)
    sqs = boto3.client("sqs")
    [message] = sqs.receive_message(QueueUrl=settings.restore_queue_url, MaxNumberOfMessages=10)["Messages"]
    # When the restore worker requests the chunk's restores with its 16 threads
    with caplog.at_level(logging.WARNING, logger="urllib3.connectionpool"):
        services.restorer.restore_chunk(json.loads(message["Body"]))
    # Then every object is restoring, and no connection was discarded for want of room in the pool
    assert services.store.recount(job.job_id).restoring == 98  # the objects' items (no counting function runs here)
    discarded = [r.getMessage() for r in caplog.records if "Connection pool is full" in r.getMessage()]
    assert discarded == []
