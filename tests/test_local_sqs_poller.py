"""Lambda's SQS pollers on the local endpoint (local/sqs.py ``poll_request``, lambda_runtime ``EndpointSqs``).

An event source mapping's receives and deletes go to the endpoint a batch in one request. What a
function gets must be what SQS's ReceiveMessage gives, and a message must be handed out, counted
and deleted as SQS would do it.
"""

from __future__ import annotations

import http.client
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from bulk_restore_cli.local.endpoint import AwsEndpoint
from bulk_restore_cli.local.lambda_runtime import EndpointSqs, SqsEventSource
from bulk_restore_cli.local.sqs import POLL_PATH
from support.endpoint import endpoint_client, endpoint_url, running_endpoint

REGION = "us-east-1"
ATTRIBUTES = {
    "kind": {"DataType": "String", "StringValue": "restore"},
    "count": {"DataType": "Number", "StringValue": "42"},
    "blob": {"DataType": "Binary", "BinaryValue": b"\x00\xffbytes"},
}
# what differs between two receives of like messages: ids, handles, clocks
PER_RECEIVE = {"MessageId", "ReceiptHandle"}
PER_RECEIVE_ATTRIBUTES = {"SentTimestamp", "ApproximateFirstReceiveTimestamp", "SequenceNumber"}


@pytest.fixture
def endpoint() -> Iterator[AwsEndpoint]:
    """An endpoint of the test's own: its figures count the test's requests alone."""
    with running_endpoint() as served:
        yield served


def _url(endpoint: AwsEndpoint) -> str:
    return endpoint_url(endpoint)


def _sqs(endpoint: AwsEndpoint) -> Any:
    return endpoint_client("sqs", endpoint)


def _queue(sqs: Any, name: str, **attributes: str) -> str:
    """A queue of its own (the endpoint's state outlives a test)."""
    suffix = ".fifo" if attributes.get("FifoQueue") else ""
    return str(sqs.create_queue(QueueName=f"{name}-{uuid.uuid4().hex[:8]}{suffix}", Attributes=attributes)["QueueUrl"])


def _comparable(message: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in message.items() if k not in PER_RECEIVE}
    out["Attributes"] = {k: v for k, v in message["Attributes"].items() if k not in PER_RECEIVE_ATTRIBUTES}
    out["AttributeNames"] = sorted(message["Attributes"])
    return out


def _fill(sqs: Any, url: str, n: int, fifo: bool = False) -> None:
    for i in range(n):
        extra = {"MessageGroupId": f"g{i % 2}", "MessageDeduplicationId": f"d{i}"} if fifo else {}
        sqs.send_message(QueueUrl=url, MessageBody=f"m{i}", MessageAttributes=ATTRIBUTES if i % 2 else {}, **extra)


@pytest.mark.parametrize("fifo", [False, True])
def test_a_poller_s_receive_gives_each_message_as_receive_message_does(endpoint: AwsEndpoint, fifo: bool) -> None:
    # Given two queues holding like messages, some with String, Number and Binary attributes
    sqs = _sqs(endpoint)
    attributes = {"FifoQueue": "true"} if fifo else {}
    plain, polled = _queue(sqs, "plain", **attributes), _queue(sqs, "polled", **attributes)
    _fill(sqs, plain, 6, fifo)
    _fill(sqs, polled, 6, fifo)
    # When one is received over SQS's API and the other through the poller's path
    expected = sqs.receive_message(QueueUrl=plain, MaxNumberOfMessages=10, AttributeNames=["All"], MessageAttributeNames=["All"])[
        "Messages"
    ]
    poller = EndpointSqs(sqs, _url(endpoint), REGION)
    got = poller.receive(polled, 10, 30)
    # Then each message is the same: body, digests, attributes (binary as bytes), system attributes
    assert [_comparable(m) for m in got] == [_comparable(m) for m in expected]
    assert any(m["MessageAttributes"]["blob"]["BinaryValue"] == b"\x00\xffbytes" for m in got if "MessageAttributes" in m)
    assert all(m["ReceiptHandle"] and m["MessageId"] for m in got)
    # and they are in flight: nothing more to hand out until their visibility ends
    assert poller.receive(polled, 10, 30) == []
    for m in got:
        sqs.change_message_visibility(QueueUrl=polled, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0)
    again = poller.receive(polled, 10, 30)
    assert sorted(m["Body"] for m in again) == sorted(m["Body"] for m in got)
    assert {m["Attributes"]["ApproximateReceiveCount"] for m in again} == {"2"}


def test_a_poller_s_receive_hands_out_a_whole_batch_in_one_request(endpoint: AwsEndpoint) -> None:
    # Given 35 messages
    sqs = _sqs(endpoint)
    url = _queue(sqs, "work")
    for start in range(0, 35, 10):
        sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": f"m{i}"} for i in range(start, min(start + 10, 35))])
    poller = EndpointSqs(sqs, _url(endpoint), REGION)
    # When the poller asks for 25, then for up to 100
    first, rest = poller.receive(url, 25, 30), poller.receive(url, 100, 30)
    # Then it gets 25, then the 10 left, each message once, in two requests
    assert (len(first), len(rest)) == (25, 10)
    assert sorted(m["Body"] for m in first + rest) == sorted(f"m{i}" for i in range(35))
    assert endpoint.stats()["amazonsqs:ReceiveMessage (poller)"]["requests"] == 2
    counts = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert (counts["ApproximateNumberOfMessages"], counts["ApproximateNumberOfMessagesNotVisible"]) == ("0", "35")


def test_a_poller_s_receive_on_a_fifo_queue_is_one_receive_of_ten_and_groups_wait_for_their_batch(endpoint: AwsEndpoint) -> None:
    sqs = _sqs(endpoint)
    url = _queue(sqs, "plan", FifoQueue="true")
    _fill(sqs, url, 30, fifo=True)  # two groups
    poller = EndpointSqs(sqs, _url(endpoint), REGION)
    first = poller.receive(url, 100, 30)
    assert len(first) == 10 and [m["Body"] for m in first] == [f"m{i}" for i in range(10)]
    assert poller.receive(url, 100, 30) == []  # both groups have messages in flight
    poller.delete(url, [m["ReceiptHandle"] for m in first])
    assert [m["Body"] for m in poller.receive(url, 100, 30)] == [f"m{i}" for i in range(10, 20)]


def test_a_poller_s_delete_removes_its_batch_and_names_the_handles_it_could_not(endpoint: AwsEndpoint) -> None:
    sqs = _sqs(endpoint)
    url = _queue(sqs, "work")
    for start in range(0, 30, 10):
        sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": f"m{i}"} for i in range(start, start + 10)])
    poller = EndpointSqs(sqs, _url(endpoint), REGION)
    got = poller.receive(url, 30, 30)
    # When 20 of them are deleted in one request, with a made-up handle among them
    failed = poller.delete(url, [m["ReceiptHandle"] for m in got[:20]] + ["not-a-handle"])
    # Then the 20 are gone, the made-up one is named with SQS's code, and the 10 others stay in flight
    assert [f["ReceiptHandle"] for f in failed] == ["not-a-handle"] and failed[0]["Code"] == "ReceiptHandleIsInvalid"
    counts = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert (counts["ApproximateNumberOfMessages"], counts["ApproximateNumberOfMessagesNotVisible"]) == ("0", "10")
    # and deleting a handle again is fine, as in SQS
    assert poller.delete(url, [got[0]["ReceiptHandle"]]) == []


def _raw(endpoint: AwsEndpoint, query: str, body: bytes, method: str = "POST") -> tuple[int, dict[str, Any]]:
    connection = http.client.HTTPConnection("127.0.0.1", endpoint.port, timeout=10)
    try:
        connection.request(method, f"{POLL_PATH}?{query}", body, {"Content-Type": "application/json"})
        answer = connection.getresponse()
        return answer.status, json.loads(answer.read())
    finally:
        connection.close()


def test_bad_poller_requests_are_refused_saying_what_to_fix(endpoint: AwsEndpoint) -> None:
    sqs = _sqs(endpoint)
    url = _queue(sqs, "work")

    def ask(query: str, document: Any) -> tuple[int, str, str]:
        status, answer = _raw(endpoint, query, json.dumps(document).encode() if not isinstance(document, bytes) else document)
        return status, answer.get("Code", ""), answer.get("Message", "")

    good = {"QueueUrl": url, "Region": REGION, "MaxNumberOfMessages": 10, "VisibilityTimeout": 30}
    assert ask("Action=ReceiveMessage", good)[0] == 200
    assert ask("Action=Purge", good)[:2] == (400, "InvalidAction")
    assert ask("Action=ReceiveMessage", b"{not json")[:2] == (400, "InvalidRequest")
    assert ask("Action=ReceiveMessage", [good])[:2] == (400, "InvalidRequest")
    for count in (0, 10_001, "5", 2.5):
        status, code, message = ask("Action=ReceiveMessage", {**good, "MaxNumberOfMessages": count})
        assert (status, code) == (400, "InvalidParameterValue") and "MaxNumberOfMessages" in message
    assert ask("Action=ReceiveMessage", {**good, "VisibilityTimeout": -1})[:2] == (400, "InvalidParameterValue")
    assert ask("Action=ReceiveMessage", {**good, "QueueUrl": url + "-gone"})[:2] == (400, "AWS.SimpleQueueService.NonExistentQueue")
    assert ask("Action=ReceiveMessage", {**good, "QueueUrl": "work"})[:2] == (400, "InvalidAddress")
    assert ask("Action=ReceiveMessage", {**good, "Region": "mars-1"})[:2] == (400, "InvalidParameterValue")
    assert ask("Action=DeleteMessageBatch", {"QueueUrl": url, "Region": REGION, "ReceiptHandles": []})[:2] == (400, "InvalidParameterValue")
    # and nothing was handed out by the refused ones
    assert sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"])["Attributes"] == {
        "ApproximateNumberOfMessagesNotVisible": "0"
    }


def test_an_event_source_on_the_endpoint_delivers_full_batches_and_settles_them_in_a_request_each(endpoint: AwsEndpoint) -> None:
    # Given 250 messages and a mapping of BatchSize 100 whose function reports one failure per batch
    sqs = _sqs(endpoint)
    url = _queue(sqs, "work")
    for start in range(0, 250, 10):
        sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": f"m{i}"} for i in range(start, start + 10)])
    batches: list[list[str]] = []

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        records = event["Records"]
        batches.append([r["body"] for r in records])
        assert all(r["eventSource"] == "aws:sqs" and r["attributes"]["ApproximateReceiveCount"] for r in records)
        return {"batchItemFailures": [{"itemIdentifier": records[0]["messageId"]}] if len(batches) <= 3 else []}

    source = SqsEventSource(
        "fn", handler, url, "arn:aws:sqs:us-east-1:123456789012:work", batch_size=100, report_failures=True, retry_delay=0
    )
    poller = EndpointSqs(sqs, _url(endpoint), REGION)
    # When it is polled until the queue is dry
    handled = 0
    for _ in range(20):
        got = source.poll_once(poller)
        handled += got
        if not got and handled >= 253:
            break
    # Then batches were full, the three failed messages came back once, and the queue is empty
    assert [len(b) for b in batches[:2]] == [100, 100] and sum(len(b) for b in batches) == 253
    assert sorted(body for b in batches for body in b) == sorted([f"m{i}" for i in range(250)] + [b[0] for b in batches[:3]])
    counts = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert (counts["ApproximateNumberOfMessages"], counts["ApproximateNumberOfMessagesNotVisible"]) == ("0", "0")
    # in a request per batch each way, where SQS's API would take one per 10 messages
    stats = endpoint.stats()
    assert stats["amazonsqs:DeleteMessageBatch (poller)"]["requests"] == len(batches)
    # (a batch's first receive, one more within the batching window, and the empty polls at the end)
    assert stats["amazonsqs:ReceiveMessage (poller)"]["requests"] <= 2 * len(batches) + 2 < 25
    assert "amazonsqs:ReceiveMessage" not in stats and "amazonsqs:DeleteMessageBatch" not in stats
