"""Amazon SQS: the planner's FIFO queue and the restore workers' queue."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import boto3

if TYPE_CHECKING:
    from mypy_boto3_sqs.type_defs import SendMessageBatchRequestEntryTypeDef


class QueueGateway:
    def __init__(self, plan_queue_url: str, restore_queue_url: str, client: Any = None, transfer_queue_url: str = ""):
        self.plan_queue_url = plan_queue_url
        self.restore_queue_url = restore_queue_url
        self.transfer_queue_url = transfer_queue_url
        self.client = client or boto3.client("sqs")

    def send_plan_step(self, job_id: str, step: int) -> None:
        """Ask the planner for the job's next step. FIFO: one step of a job at a time, duplicates dropped."""
        self.client.send_message(
            QueueUrl=self.plan_queue_url,
            MessageBody=json.dumps({"job_id": job_id, "step": step}),
            MessageGroupId=job_id,
            MessageDeduplicationId=f"{job_id}-{step}",
        )

    def send_chunks(self, chunks: list[dict[str, Any]]) -> None:
        """Send restore chunks, ten to a request, resending any the batch call did not take."""
        self._send_all(self.restore_queue_url, chunks, "restore chunk")

    def send_batch_launch(self, job_id: str) -> None:
        """Ask a restore worker to launch the job's S3 Batch Operations runs (its chunks are all counted)."""
        self.client.send_message(QueueUrl=self.restore_queue_url, MessageBody=json.dumps({"job_id": job_id, "launch": "batch"}))

    def send_transfer_parts(self, parts: list[dict[str, Any]]) -> None:
        """Queue vault archive parts to move, one message each (each a unit of work of its own)."""
        self._send_all(self.transfer_queue_url, parts, "archive part")

    def _send_all(self, queue_url: str, bodies: list[dict[str, Any]], what: str) -> None:
        for i in range(0, len(bodies), 10):
            entries: list[SendMessageBatchRequestEntryTypeDef] = [
                {"Id": str(n), "MessageBody": json.dumps(body, separators=(",", ":"), ensure_ascii=False)}
                for n, body in enumerate(bodies[i : i + 10])
            ]
            for _ in range(8):
                result = self.client.send_message_batch(QueueUrl=queue_url, Entries=entries)
                failed = {f["Id"] for f in result.get("Failed", [])}
                entries = [e for e in entries if e["Id"] in failed]
                if not entries:
                    break
            else:
                raise RuntimeError(f"SQS did not accept {len(entries)} {what}(s)")


def move_messages(client: Any, source_url: str, target_url: str, limit: int | None = None) -> int:
    """Move messages from a dead-letter queue back to the queue they came from. Returns how many.

    Each message is sent before it is deleted, so a crash can duplicate one (the workers drop
    duplicates) but never lose one. FIFO messages keep their group; they get a new
    deduplication id so the queue does not drop them as copies.
    """
    moved = 0
    fifo = target_url.endswith(".fifo")
    while limit is None or moved < limit:
        batch = client.receive_message(
            QueueUrl=source_url,
            MaxNumberOfMessages=10 if limit is None else max(1, min(10, limit - moved)),
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
            WaitTimeSeconds=0,
            VisibilityTimeout=60,
        ).get("Messages", [])
        if not batch:
            break
        for message in batch:
            kwargs: dict[str, Any] = {"QueueUrl": target_url, "MessageBody": message["Body"]}
            if message.get("MessageAttributes"):
                kwargs["MessageAttributes"] = message["MessageAttributes"]
            if fifo:
                attributes = message.get("Attributes", {})
                kwargs["MessageGroupId"] = attributes.get("MessageGroupId", "redrive")
                kwargs["MessageDeduplicationId"] = f"redrive-{message['MessageId']}"
            client.send_message(**kwargs)
            client.delete_message(QueueUrl=source_url, ReceiptHandle=message["ReceiptHandle"])
            moved += 1
    return moved
