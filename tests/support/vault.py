"""A vault on the test stack: the Glacier emulation, the vault topic subscribed by the completion
queue, the transfer queue and its function (as template.yaml wires them)."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import boto3

from bulk_restore.adapters.dynamodb import DynamoJobStore
from bulk_restore.domain.model import archive_ref
from bulk_restore_cli.local.glacier import GlacierEmulator
from bulk_restore_cli.local.lambda_runtime import SqsEventSource, drain
from support.api import call_api
from support.faults import crash_as_invocation_error
from support.stack import REGION, Stack, reset_caches

VAULT = "family-photos"
TARGET = "vault-copies"
MIB = 1 << 20
VAULT_SETTINGS = {"VAULT_PART_MIB": 8, "TRANSFER_ATTEMPTS": 3}  # parts of 8 MiB: the least S3 and the tree hash allow


@dataclass
class Vault:
    stack: Stack
    glacier: GlacierEmulator
    transfer: SqsEventSource
    client: Any

    def upload(self, body: bytes, description: str = "") -> str:
        return str(self.client.upload_archive(vaultName=VAULT, body=body, archiveDescription=description)["archiveId"])

    def create(self, archives: list[str], headers: dict[str, str] | None = None, **fields: Any) -> dict[str, Any]:
        body = {"vault": {"name": VAULT}, "archives": archives, "target": {"bucket": TARGET, "prefix": "from-vault/"}, "tier": "BULK"}
        status, answer = call_api("POST", "/create-job", body | fields, headers)
        assert status == 200, answer
        if answer["BulkJobId"] not in self.stack.job_ids:
            self.stack.job_ids.append(answer["BulkJobId"])
        return answer

    def settle(self, rounds: int = 60, before_transfer: Any = None) -> None:
        """Drain the functions, complete the vault's jobs, move the parts; until nothing moves."""
        for _ in range(rounds):
            moved = self.stack.drain()
            moved += self.glacier.complete_all()
            moved += self.stack.drain()
            if before_transfer is not None:
                before_transfer()
            moved += drain([self.transfer], self.stack.sqs)
            if not moved:
                return
        raise AssertionError("the vault job did not settle")

    def parts(self, job_id: str, archive_id: str) -> dict[tuple[int, int], dict[str, Any]]:
        """The recorded parts of an archive's transfer: (object, part number) -> ETag, SHA-256 and tree hash."""
        store = DynamoJobStore(self.stack.table_name, client=self.stack.ddb)
        return {
            (obj, number): {k: info[k] for k in ("etag", "sha256", "tree_hash")}
            for obj, number, info in store.archive_parts(job_id, archive_ref(VAULT, archive_id))
        }

    def object(self, key: str) -> tuple[bytes, dict[str, str]]:
        answer = self.stack.s3.get_object(Bucket=TARGET, Key=key)
        return answer["Body"].read(), answer["Metadata"]


@contextmanager
def vault_on(stack: Stack) -> Iterator[Vault]:
    from bulk_restore.handlers import transfer

    topic = stack.sns.create_topic(Name="vault-notices")["TopicArn"]
    stack.sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=stack.queue_arn(stack.completion_queue_url))  # SNS envelope
    dlq = stack.sqs.create_queue(QueueName="transfer-dlq")["QueueUrl"]
    redrive = json.dumps({"deadLetterTargetArn": stack.queue_arn(dlq), "maxReceiveCount": 8})
    queue = stack.sqs.create_queue(QueueName="transfer", Attributes={"RedrivePolicy": redrive})["QueueUrl"]
    os.environ.update({"VAULT_TOPIC_ARN": topic, "TRANSFER_QUEUE_URL": queue})
    reset_caches()
    stack.s3.create_bucket(Bucket=TARGET)
    stack.dead_letter_urls["transfer"] = dlq
    source = SqsEventSource(
        "transfer",
        crash_as_invocation_error("transfer", transfer.handler),
        queue,
        stack.queue_arn(queue),
        batch_size=1,
        report_failures=True,
        timeout_s=900,
        retry_delay=0,
        region=REGION,
    )
    with GlacierEmulator(seed=11) as glacier:
        client = boto3.client("glacier", region_name=REGION)
        client.create_vault(vaultName=VAULT)
        yield Vault(stack, glacier, source, client)


def body_of(size: int, seed: int) -> bytes:
    block = hashlib.sha256(str(seed).encode()).digest()
    return (block * (size // len(block) + 1))[:size]
