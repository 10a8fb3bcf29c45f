"""The local stack's SQS layer (local/sqs.py): moto's semantics, at a cost that does not grow with the queue."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
import pytest
from moto import mock_aws

from bulk_restore_cli.local import sqs as sqs_layer
from support.counting import counting

REGION = "us-east-1"


@contextmanager
def sqs_client(layer: bool) -> Iterator[Any]:
    """An SQS client on moto, with the layer or without it; the layer as it was afterwards."""
    was = sqs_layer.installed()
    (sqs_layer.install if layer else sqs_layer.uninstall)()
    try:
        with mock_aws():
            yield boto3.client("sqs", region_name=REGION)
    finally:
        (sqs_layer.install if was else sqs_layer.uninstall)()


def scenario(sqs: Any) -> list[Any]:
    """A script of what the stack does with queues; returns what a client sees, without ids that differ per run."""
    seen: list[Any] = []
    dlq = sqs.create_queue(QueueName="work-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    work = sqs.create_queue(
        QueueName="work",
        Attributes={"RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 2}), "VisibilityTimeout": "30"},
    )["QueueUrl"]
    fifo = sqs.create_queue(QueueName="plan.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]

    def counts(url: str) -> dict[str, str]:
        attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        return {k: v for k, v in attrs.items() if k.startswith("Approximate") or k in ("VisibilityTimeout", "FifoQueue", "RedrivePolicy")}

    for start in range(0, 30, 10):
        sqs.send_message_batch(QueueUrl=work, Entries=[{"Id": str(i), "MessageBody": f"m{i}"} for i in range(start, start + 10)])
    seen.append(counts(work))
    first = sqs.receive_message(QueueUrl=work, MaxNumberOfMessages=10)["Messages"]
    seen.append(sorted(m["Body"] for m in first))
    seen.append(counts(work))
    deleted = sqs.delete_message_batch(
        QueueUrl=work, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(first[:6])]
    )
    seen.append((len(deleted["Successful"]), deleted.get("Failed", [])))
    # a handle deleted twice is fine; a made-up one is refused
    sqs.delete_message(QueueUrl=work, ReceiptHandle=first[0]["ReceiptHandle"])
    with pytest.raises(sqs.exceptions.ReceiptHandleIsInvalid):
        sqs.delete_message(QueueUrl=work, ReceiptHandle="not-a-handle")
    # the other four come back at once, twice, then go to the dead-letter queue
    for m in first[6:]:
        sqs.change_message_visibility(QueueUrl=work, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0)
    seen.append(counts(work))
    again = sqs.receive_message(QueueUrl=work, MaxNumberOfMessages=10, VisibilityTimeout=0, AttributeNames=["All"])["Messages"]
    seen.append(sorted((m["Body"], m["Attributes"]["ApproximateReceiveCount"]) for m in again))
    rest = []
    while batch := sqs.receive_message(QueueUrl=work, MaxNumberOfMessages=10).get("Messages", []):
        rest += batch
        sqs.delete_message_batch(QueueUrl=work, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)])
    seen.append(sorted(m["Body"] for m in rest))
    seen.append(sorted(m["Body"] for m in sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10).get("Messages", [])))
    seen.append(counts(work))
    # FIFO: one group at a time, deduplication by id
    for n in range(3):
        for group in ("a", "b"):
            sqs.send_message(QueueUrl=fifo, MessageBody=f"{group}{n}", MessageGroupId=group, MessageDeduplicationId=f"{group}{n}")
    sqs.send_message(QueueUrl=fifo, MessageBody="a0-again", MessageGroupId="a", MessageDeduplicationId="a0")
    got = sqs.receive_message(QueueUrl=fifo, MaxNumberOfMessages=10)["Messages"]
    seen.append([m["Body"] for m in got])
    seen.append(sqs.receive_message(QueueUrl=fifo, MaxNumberOfMessages=10).get("Messages", []))
    sqs.delete_message(QueueUrl=fifo, ReceiptHandle=got[0]["ReceiptHandle"])
    seen.append(counts(fifo))
    seen.append(
        sqs.get_queue_attributes(QueueUrl=work, AttributeNames=["ApproximateNumberOfMessages", "MessageRetentionPeriod"])["Attributes"]
    )
    # message attributes: a receive's filter shapes what it hands out, never the stored message;
    # a delayed message is not handed out
    tagged = sqs.create_queue(QueueName="tagged")["QueueUrl"]
    sqs.send_message(
        QueueUrl=tagged,
        MessageBody="t",
        MessageAttributes={"Custom.a": {"DataType": "String", "StringValue": "1"}, "other": {"DataType": "Number", "StringValue": "2"}},
    )
    sqs.send_message(QueueUrl=tagged, MessageBody="later", DelaySeconds=60)
    for names in (["Custom.*"], ["All"], []):
        got = sqs.receive_message(QueueUrl=tagged, MaxNumberOfMessages=10, VisibilityTimeout=0, MessageAttributeNames=names)["Messages"]
        seen.append([(m["Body"], m.get("MessageAttributes"), m.get("MD5OfMessageAttributes")) for m in got])
    return seen


def test_the_layer_answers_every_call_as_moto_does() -> None:
    with sqs_client(layer=False) as plain:
        expected = scenario(plain)
    with sqs_client(layer=True) as layered:
        got = scenario(layered)
    assert got == expected


def test_receiving_and_deleting_a_batch_looks_at_the_batch_not_the_queue() -> None:
    from moto.sqs.models import Message

    with sqs_client(layer=True) as sqs:
        # Given a queue holding 5,000 messages
        url = sqs.create_queue(QueueName="big")["QueueUrl"]
        for start in range(0, 5000, 10):
            sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": f"m{start + i}"} for i in range(10)])
        # When a batch of 10 is received and deleted
        with counting(Message, "visible") as looked_at, counting(Message, "had_receipt_handle") as walked:
            batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
            sqs.delete_message_batch(
                QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)]
            )
        # Then about ten messages were looked at, not 5,000 (moto alone looks at each many times), and no delete walked the queue
        assert len(batch) == 10
        assert looked_at[0] <= 40, looked_at[0]
        assert walked[0] == 0
        assert sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"] == {
            "ApproximateNumberOfMessages": "4990"
        }


def test_a_send_does_not_count_the_queue() -> None:
    from moto.sqs.models import Queue

    with sqs_client(layer=True) as sqs:
        url = sqs.create_queue(QueueName="q")["QueueUrl"]
        for _start in range(0, 1000, 10):
            sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": "x"} for i in range(10)])
        with counting(Queue, "approximate_number_of_messages") as counted:
            sqs.send_message(QueueUrl=url, MessageBody="one more")
            sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)
        assert counted[0] == 0


def test_receipt_handles_have_moto_s_form_and_differ_per_receive() -> None:
    with sqs_client(layer=True) as sqs:
        url = sqs.create_queue(QueueName="handles", Attributes={"VisibilityTimeout": "0"})["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody="x")
        handles = [sqs.receive_message(QueueUrl=url)["Messages"][0]["ReceiptHandle"] for _ in range(3)]
    with sqs_client(layer=False) as sqs:
        url = sqs.create_queue(QueueName="handles")["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody="x")
        plain = sqs.receive_message(QueueUrl=url)["Messages"][0]["ReceiptHandle"]
    assert len(set(handles)) == 3
    assert all(len(h) == len(plain) == sqs_layer.RECEIPT_HANDLE_LENGTH and h.isalpha() and h.islower() for h in handles)


class _ChangingWhileIterated(set):
    """An in-flight set that another thread changes while it is walked: what a receive met when a
    gated delete ran between two steps of its walk."""

    def __iter__(self):  # type: ignore[no-untyped-def]
        for n, item in enumerate(list(set.__iter__(self))):
            if n == 0:
                raise RuntimeError("Set changed size during iteration")
            yield item


@pytest.mark.parametrize("layer", [True, False])
def test_a_receive_reads_the_in_flight_groups_from_a_copy_of_the_set(layer: bool) -> None:
    from moto.sqs.models import sqs_backends

    with sqs_client(layer=layer) as sqs:
        url = sqs.create_queue(QueueName="plan.fifo", Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"})["QueueUrl"]
        for group in ("a", "b"):
            sqs.send_message(QueueUrl=url, MessageBody=f"step of {group}", MessageGroupId=group)
        sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1)  # group a in flight
        queue = sqs_backends["123456789012"][REGION].queues["plan.fifo"]
        queue._pending_messages = _ChangingWhileIterated(queue._pending_messages)
        if not layer:  # moto walks the live set: the receive fails (a 500 over HTTP)
            with pytest.raises(RuntimeError, match="changed size"):
                _ = queue.pending_message_groups
            return
        assert queue.pending_message_groups == {"a"}
        received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
        assert [m["Body"] for m in received] == ["step of b"]


def _received(sqs: Any) -> list[Any]:
    """Whole ReceiveMessage answers as a client parses them (ids and handles aside: they differ per run)."""
    url = sqs.create_queue(QueueName="answers", Attributes={"VisibilityTimeout": "0"})["QueueUrl"]
    fifo = sqs.create_queue(QueueName="answers.fifo", Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"})["QueueUrl"]
    answers: list[Any] = [sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)]  # an empty queue
    sqs.send_message_batch(
        QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": json.dumps({"n": i, "text": 'é "quoted" \u2028'})} for i in range(3)]
    )
    sqs.send_message(QueueUrl=fifo, MessageBody="in a group", MessageGroupId="g")
    variants: list[dict[str, Any]] = [
        {},
        {"AttributeNames": ["All"]},
        {"AttributeNames": ["SentTimestamp", "ApproximateReceiveCount"]},
        {"MessageSystemAttributeNames": ["SenderId"]},
        {"AttributeNames": ["MessageGroupId"]},
        {"AttributeNames": ["All"], "MessageAttributeNames": ["All"]},
    ]
    for variant in variants:
        answers.append(sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, **variant))
    answers.append(sqs.receive_message(QueueUrl=fifo, MaxNumberOfMessages=10, AttributeNames=["All"]))
    handle = answers[-1]["Messages"][0]["ReceiptHandle"]
    answers.append(sqs.delete_message_batch(QueueUrl=fifo, Entries=[{"Id": "ok", "ReceiptHandle": handle}]))
    answers.append(sqs.delete_message_batch(QueueUrl=url, Entries=[{"Id": "bad", "ReceiptHandle": "not-a-handle"}]))
    for answer in answers:
        answer.pop("ResponseMetadata")
        for message in answer.get("Messages", []):
            message.pop("MessageId")
            message.pop("ReceiptHandle")
            for name in ("SentTimestamp", "ApproximateFirstReceiveTimestamp", "SequenceNumber"):
                if name in message.get("Attributes", {}):
                    message["Attributes"][name] = "<time or number>"
        answer.get("Messages", []).sort(key=lambda m: m["Body"])
    return answers


def test_receive_and_delete_answers_written_as_json_are_what_moto_s_serializer_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    with sqs_client(layer=False) as plain:
        expected = _received(plain)
    with sqs_client(layer=True) as layered:
        written = sqs_layer._JsonResult.execute_result
        direct = []
        monkeypatch.setattr(sqs_layer._JsonResult, "execute_result", lambda self, context: direct.append(1) or written(self, context))
        got = _received(layered)
    assert got == expected
    assert len(direct) == len(got)  # every answer here was written directly (none carries a binary value)
    assert got[0] == {} and len(got[1]["Messages"]) == 3 and "Attributes" not in got[1]["Messages"][0]
    assert got[2]["Messages"][0]["Attributes"]["ApproximateReceiveCount"] == "2"
    assert got[-2]["Successful"] == [{"Id": "ok"}] and got[-1]["Failed"][0]["SenderFault"] is True


def test_a_receive_with_message_attributes_is_left_to_moto_s_serializer() -> None:
    from moto.core.responses import ActionResult

    with sqs_client(layer=True) as sqs:
        url = sqs.create_queue(QueueName="tagged")["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody="t", MessageAttributes={"blob": {"DataType": "Binary", "BinaryValue": b"\x00\xff"}})
        plain_result = ActionResult.execute_result
        calls = []

        def counted(self: Any, context: Any) -> Any:
            calls.append(context.operation_model.name)
            return plain_result(self, context)

        ActionResult.execute_result = counted  # type: ignore[method-assign]
        try:
            got = sqs.receive_message(QueueUrl=url, MessageAttributeNames=["All"])["Messages"][0]
        finally:
            ActionResult.execute_result = plain_result  # type: ignore[method-assign]
    assert got["MessageAttributes"] == {"blob": {"DataType": "Binary", "BinaryValue": b"\x00\xff"}}
    assert calls == ["ReceiveMessage"]


def test_receipt_handles_draw_every_letter_alike() -> None:
    from collections import Counter

    letters = Counter("".join(sqs_layer.receipt_handle() for _ in range(400)))
    assert set(letters) == set("abcdefghijklmnopqrstuvwxyz")
    expected = 400 * sqs_layer.RECEIPT_HANDLE_LENGTH / 26
    assert all(abs(count - expected) < 0.15 * expected for count in letters.values()), letters


def _in_flight_groups(sqs: Any) -> list[Any]:
    from moto.sqs.models import sqs_backends

    queues = sqs_backends["123456789012"][REGION].queues
    plain = sqs.create_queue(QueueName="plain", Attributes={"VisibilityTimeout": "60"})["QueueUrl"]
    fair = sqs.create_queue(QueueName="fair", Attributes={"VisibilityTimeout": "60"})["QueueUrl"]
    fifo = sqs.create_queue(QueueName="groups.fifo", Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"})["QueueUrl"]
    sqs.send_message_batch(QueueUrl=plain, Entries=[{"Id": str(i), "MessageBody": f"p{i}"} for i in range(10)])
    sqs.send_message_batch(
        QueueUrl=fair, Entries=[{"Id": str(i), "MessageBody": f"f{i}", "MessageGroupId": f"tenant{i % 3}"} for i in range(10)]
    )
    sqs.send_message_batch(QueueUrl=fifo, Entries=[{"Id": str(i), "MessageBody": f"q{i}", "MessageGroupId": f"g{i % 2}"} for i in range(4)])
    seen = []
    for url, name in ((plain, "plain"), (fair, "fair"), (fifo, "groups.fifo")):
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=4)["Messages"]
        seen.append((name, sorted(queues[name].pending_message_groups), len(got)))
    return seen


def test_in_flight_groups_are_moto_s_on_standard_queues_with_and_without_groups_and_on_fifo_queues() -> None:
    with sqs_client(layer=False) as plain:
        expected = _in_flight_groups(plain)
    with sqs_client(layer=True) as layered:
        got = _in_flight_groups(layered)
    assert got == expected
    assert got[0] == ("plain", [], 4) and got[1][1] and got[2][1] == ["g0", "g1"]
