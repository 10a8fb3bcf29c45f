"""Part: moving a Glacier vault into S3 (a vault job), in this process on moto with the Glacier emulation.

The stack's functions run from their queues as Lambda would (the local runtime's event sources,
batch sizes as in template.yaml); every AWS call is metered. It reports:
- bytes per second through one transfer worker (the bytes of the parts it moved over the wall
  time of its invocations), and CPU seconds per GiB (tree hash, SHA-256 and copies);
- AWS requests per archive and per GiB, by service and operation;
- what moving a TiB costs: Glacier's retrieval (per GB and per request, by tier), our requests,
  and the transfer function's GB-seconds, beside Glacier's retrieval price alone.

On this machine GetJobOutput and UploadPart are local calls, so the rate is CPU-bound: in Lambda
a part's time is the network's (Glacier's output and S3's upload), which this does not measure.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections import Counter
from typing import Any

from bulk_restore_cli.bench import prices as price_data
from bulk_restore_cli.bench.common import LogSink, cpu_scale, functions_logging_to, local_aws_layers
from bulk_restore_cli.bench.meter import RequestMeter
from bulk_restore_cli.local.template import template_event

MIB = 1 << 20
GIB = 1 << 30
REGION = "us-east-1"
TRANSFER_MEMORY_MB = 3008  # template.yaml TransferFunction
# Glacier vault retrievals, per GB and per 1,000 requests, from the price data file (us-east-1)
RETRIEVAL = {
    tier.title(): (float(p["retrieval_per_gb"]), float(p["requests_per_thousand"]))
    for tier, p in price_data.load()["restore"]["GLACIER_VAULT"].items()
}
PRICES = {
    ("s3", "UploadPart"): 0.005 / 1000,
    ("s3", "CreateMultipartUpload"): 0.005 / 1000,
    ("s3", "CompleteMultipartUpload"): 0.005 / 1000,
    ("s3", "PutObject"): 0.005 / 1000,
    ("s3", "HeadObject"): 0.0004 / 1000,
    "sqs": 0.40 / 1_000_000,
    "sns": 0.50 / 1_000_000,
    "dynamodb_write": 1.25 / 1_000_000,
    "dynamodb_read": 0.25 / 1_000_000,
    "lambda_gb_s": 0.0000133334,
    "lambda_request": 0.20 / 1_000_000,
}


def _body(size: int, seed: int) -> bytes:
    block = hashlib.sha256(str(seed).encode()).digest() * 2048
    return (block * (size // len(block) + 1))[:size]


def run(archives: int = 6, archive_mib: int = 48, small_archives: int = 20, part_mib: int = 16, tier: str = "Bulk") -> dict[str, Any]:
    saved = dict(os.environ)
    try:
        with functions_logging_to(LogSink()), local_aws_layers():
            return _run(archives, archive_mib, small_archives, part_mib, tier)
    finally:
        os.environ.clear()
        os.environ.update(saved)
        from bulk_restore import settings, wiring

        settings.get_settings.cache_clear()
        wiring.services.cache_clear()


def _run(archives: int, archive_mib: int, small_archives: int, part_mib: int, tier: str) -> dict[str, Any]:
    import boto3
    from moto import mock_aws

    from bulk_restore import settings, wiring
    from bulk_restore.handlers import completion, counter, planner, restorer, transfer
    from bulk_restore.usecases.jobs import CreateJobRequest
    from bulk_restore_cli.local.glacier import GlacierEmulator
    from bulk_restore_cli.local.lambda_runtime import DynamoDBStreamEventSource, SqsEventSource, drain, drain_streams

    os.environ.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": REGION})
    with mock_aws(), GlacierEmulator(seed=5) as emulator:
        session = boto3.session.Session(region_name=REGION)
        s3, sqs, ddb, sns, glacier = (session.client(name) for name in ("s3", "sqs", "dynamodb", "sns", "glacier"))
        table = ddb.create_table(
            TableName="jobs",
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},  # as template.yaml
        )

        def queue(name: str, fifo: bool = False) -> str:
            return str(
                sqs.create_queue(QueueName=name + (".fifo" if fifo else ""), Attributes={"FifoQueue": "true"} if fifo else {})["QueueUrl"]
            )

        def arn(url: str) -> str:
            return str(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"])

        urls = {
            "plan": queue("plan", fifo=True),
            "restore": queue("restore"),
            "completion": queue("completion"),
            "transfer": queue("transfer"),
            "events": queue("events"),
        }
        topic = sns.create_topic(Name="events")["TopicArn"]
        vault_topic = sns.create_topic(Name="vault-notices")["TopicArn"]
        sns.subscribe(TopicArn=vault_topic, Protocol="sqs", Endpoint=arn(urls["completion"]))
        for bucket in ("manifests", "vault-copies"):
            s3.create_bucket(Bucket=bucket)
        os.environ.update(
            {
                "TABLE_NAME": "jobs",
                "PLAN_QUEUE_URL": urls["plan"],
                "RESTORE_QUEUE_URL": urls["restore"],
                "TOPIC_ARN": topic,
                "MANIFEST_BUCKETS": "manifests",
                "VAULT_TOPIC_ARN": vault_topic,
                "TRANSFER_QUEUE_URL": urls["transfer"],
                "VAULT_PART_MIB": str(part_mib),
                "MANAGE_EVENTBRIDGE": "false",
            }
        )
        settings.get_settings.cache_clear()
        wiring.services.cache_clear()

        glacier.create_vault(vaultName="bench")
        sizes = [archive_mib * MIB + n for n in range(archives)] + [MIB + n for n in range(small_archives)]
        ids = [glacier.upload_archive(vaultName="bench", body=_body(size, n))["archiveId"] for n, size in enumerate(sizes)]

        meter = RequestMeter()
        services = wiring.services()
        for client, origin in (
            (services.store.client, "functions"),
            (services.s3.client, "functions"),
            (services.queues.client, "functions"),
            (services.publisher.client, "functions"),
            (services.vault.glacier.client, "functions"),
        ):
            meter.attach(client, origin)

        def source(name: str, handler: Any, function: str, memory: int) -> SqsEventSource:
            # the template's batch size for the function's queue (each has one SQS event)
            batch = int(template_event(function, "SQS")["BatchSize"])
            return SqsEventSource(
                name,
                meter.wrap(name, memory, handler),
                urls[name],
                arn(urls[name]),
                batch_size=batch,
                report_failures=True,
                retry_delay=0,
                region=REGION,
            )

        sources = [
            source("plan", planner.handler, "PlannerFunction", 512),
            source("restore", restorer.handler, "RestoreFunction", 512),
            source("completion", completion.handler, "CompletionFunction", 512),
            source("transfer", transfer.handler, "TransferFunction", TRANSFER_MEMORY_MB),
        ]
        # The counting function on the table's stream, with the template's mapping (the stream's reads are free)
        mapping = template_event("CounterFunction", "DynamoDB")
        counting = [
            DynamoDBStreamEventSource(
                "counter",
                meter.wrap("counter", 512, counter.handler),
                table["TableDescription"]["LatestStreamArn"],
                batch_size=int(mapping["BatchSize"]),
                tumbling_window_seconds=int(mapping["TumblingWindowInSeconds"]),
                bisect_on_error=bool(mapping["BisectBatchOnFunctionError"]),
                parallelization_factor=int(mapping.get("ParallelizationFactor", 1)),
                region=REGION,
            )
        ]
        streams = boto3.client("dynamodbstreams", region_name=REGION)
        request, _ = CreateJobRequest.from_body(
            {"vault": {"name": "bench"}, "archives": ids, "tier": tier.upper(), "target": {"bucket": "vault-copies"}}
        )
        started = time.perf_counter()
        job, _ = services.jobs.create(request, None)
        for _ in range(100):
            moved = drain(sources, sqs) + drain_streams(counting, streams, sqs) + emulator.complete_all()
            moved += drain(sources, sqs) + drain_streams(counting, streams, sqs)
            if not moved:
                break
        elapsed = time.perf_counter() - started
        status, counts = services.jobs.status(job.job_id)

    hashing = _hashing_seconds_per_gib()
    moved_bytes = counts.bytes
    transfers = [i for i in meter.invocations if i.function == "transfer"]
    transfer_wall = sum(i.wall_s for i in transfers)
    transfer_cpu = sum(i.cpu_s for i in transfers)
    by_operation = Counter(f"{r.service}:{r.operation}" for r in meter.requests)
    gib = moved_bytes / GIB
    ops = {name: round(n / len(ids), 3) for name, n in sorted(by_operation.items())}
    per_gib = {name: round(n / gib, 1) for name, n in sorted(by_operation.items())}
    # Dollars per TiB moved: our requests and Lambda, scaled from this run; Glacier's retrieval by tier.
    tib_factor = 1024 / gib
    ours = 0.0
    for r in meter.requests:
        key = (r.service, r.operation)
        if key in PRICES:
            ours += PRICES[key]  # type: ignore[operator]
        elif r.service in ("sqs", "sns"):
            ours += PRICES[r.service]  # type: ignore[operator]
        elif r.service == "dynamodb":
            ours += (
                PRICES["dynamodb_write"]
                if r.operation in ("PutItem", "UpdateItem", "TransactWriteItems", "BatchWriteItem", "DeleteItem")
                else PRICES["dynamodb_read"]
            )  # type: ignore[operator]
    lambda_gb_s = sum(i.wall_s * i.memory_mb / 1024 for i in meter.invocations)
    ours += lambda_gb_s * PRICES["lambda_gb_s"] + len(meter.invocations) * PRICES["lambda_request"]  # type: ignore[operator]
    per_gb, per_1000 = RETRIEVAL[tier]
    archives_per_tib = len(ids) * tib_factor
    return {
        "archives": len(ids),
        "bytes": moved_bytes,
        "part_mib": part_mib,
        "tier": tier,
        "status": status.status.value,
        "counts": counts.document(),
        "seconds": round(elapsed, 2),
        "transfer_invocations": len(transfers),
        "transfer_bytes_per_second": round(moved_bytes / transfer_wall) if transfer_wall else 0,
        "transfer_cpu_seconds_per_gib": round(transfer_cpu / gib, 2) if gib else 0,
        "transfer_lambda_seconds_per_gib_cpu_bound": round(transfer_cpu / gib * cpu_scale(TRANSFER_MEMORY_MB), 2) if gib else 0,
        "worker_hashing_cpu_seconds_per_gib": hashing,
        "requests_per_archive": ops,
        "requests_per_gib": per_gib,
        "lambda_gb_s_per_gib": round(lambda_gb_s / gib, 2) if gib else 0,
        "dollars_per_tib": {
            "ours": round(ours * tib_factor, 4),
            "glacier_retrieval": round(1024 * per_gb + archives_per_tib * per_1000 / 1000, 4),
            "archives_per_tib_in_this_run": round(archives_per_tib),
        },
    }


def _hashing_seconds_per_gib(size: int = 256 * MIB) -> float:
    """The worker's own CPU per GiB, without the emulation's: a part's tree hash and SHA-256 (what
    it computes on every byte); in Lambda the rest of a part's time is waiting for the network."""
    from bulk_restore.domain.vault import tree_hash

    data = _body(size, 99)
    started = time.process_time()
    tree_hash(data)
    hashlib.sha256(data).digest()
    return round((time.process_time() - started) * GIB / size, 2)


if __name__ == "__main__":  # pragma: no cover - a quick look without the report
    print(json.dumps(run(), indent=2))
