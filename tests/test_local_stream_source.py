"""The local Lambda runtime's DynamoDB stream event source (bulk_restore_cli.local.lambda_runtime).

It reads the table's stream through a plain ``dynamodbstreams`` client (on moto with the local
stack's streams layer) and runs the function as the Lambda developer guide says an event source
mapping for DynamoDB streams does: per shard, in order, batches of BatchSize within the batching
window; a failed batch retried as it was, or in halves; a partial batch response resuming at the
lowest failed record; records given up sent to the OnFailure queue in Lambda's invocation-record
shape; FilterCriteria; children after their parent; StartingPosition LATEST; tumbling windows.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from bulk_restore_cli.local import lambda_runtime
from bulk_restore_cli.local.dynamodb import DynamoDBEmulation
from bulk_restore_cli.local.dynamodb_streams import DynamoDBStreamsEmulation
from bulk_restore_cli.local.lambda_runtime import (
    DynamoDBStreamEventSource,
    StreamPoller,
    drain_streams,
    parse_filter_criteria,
    pattern_matches,
)
from support.endpoint import endpoint_client

REGION = "us-east-1"
ACCOUNT = "123456789012"
DLQ_ARN = f"arn:aws:sqs:{REGION}:{ACCOUNT}:stream-failures"


@pytest.fixture
def emulation(aws: None) -> Iterator[DynamoDBStreamsEmulation]:
    with DynamoDBEmulation(), DynamoDBStreamsEmulation() as installed:
        try:
            yield installed
        finally:
            installed.clock = None


@pytest.fixture
def ddb(emulation: DynamoDBStreamsEmulation) -> Any:
    return endpoint_client("dynamodb")


@pytest.fixture
def streams(emulation: DynamoDBStreamsEmulation) -> Any:
    return endpoint_client("dynamodbstreams")


@pytest.fixture
def sqs(emulation: DynamoDBStreamsEmulation) -> Any:
    return endpoint_client("sqs")


@pytest.fixture
def dlq(sqs: Any) -> str:
    return str(sqs.create_queue(QueueName="stream-failures")["QueueUrl"])


@pytest.fixture
def arn(ddb: Any) -> str:
    made = ddb.create_table(
        TableName="jobs",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    return str(made["TableDescription"]["LatestStreamArn"])


def put(ddb: Any, *keys: str, **attributes: str) -> None:
    for key in keys:
        ddb.put_item(TableName="jobs", Item={"pk": {"S": key}, **{k: {"S": v} for k, v in attributes.items()}})


class Recorder:
    """A handler that records each event; ``fail(event)`` says whether to raise, ``answer(event)`` what to return."""

    def __init__(self, fail: Any = None, answer: Any = None):
        self.events: list[dict[str, Any]] = []
        self.fail, self.answer = fail, answer

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        self.events.append(event)
        if self.fail is not None and self.fail(event):
            raise RuntimeError("the function failed")
        return self.answer(event) if self.answer is not None else None

    @property
    def batches(self) -> list[list[str]]:
        return [[r["dynamodb"]["Keys"]["pk"]["S"] for r in event["Records"]] for event in self.events]


def keys_of(event: dict[str, Any]) -> list[str]:
    return [r["dynamodb"]["Keys"]["pk"]["S"] for r in event["Records"]]


def messages(sqs: Any, url: str) -> list[dict[str, Any]]:
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0).get("Messages", [])
    return [json.loads(m["Body"]) for m in got]


def source(arn: str, handler: Any, **settings: Any) -> DynamoDBStreamEventSource:
    return DynamoDBStreamEventSource("counter", handler, arn, **settings)


# ---- batches --------------------------------------------------------------------------------------


def test_batches_come_in_order_of_the_configured_size_in_lambda_s_event_shape(ddb: Any, streams: Any, arn: str) -> None:
    put(ddb, *[f"k{n:02}" for n in range(25)])
    handler = Recorder()
    handled = drain_streams([source(arn, handler, batch_size=10)], streams)

    assert handled == 25
    assert handler.batches == [[f"k{n:02}" for n in range(start, min(start + 10, 25))] for start in (0, 10, 20)]
    first = handler.events[0]
    assert set(first) == {"Records"}  # no tumbling window: the records only
    record = first["Records"][0]
    assert set(record) == {"eventID", "eventName", "eventVersion", "eventSource", "awsRegion", "dynamodb", "eventSourceARN"}
    assert record["eventSource"] == "aws:dynamodb" and record["eventSourceARN"] == arn and record["eventName"] == "INSERT"
    assert record["awsRegion"] == REGION and record["eventVersion"] == "1.1"
    created = record["dynamodb"]["ApproximateCreationDateTime"]
    assert isinstance(created, float) and created == int(created) and abs(created - time.time()) < 60  # epoch seconds
    assert record["dynamodb"]["NewImage"] == {"pk": {"S": "k00"}} and record["dynamodb"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"
    sequences = [int(r["dynamodb"]["SequenceNumber"]) for event in handler.events for r in event["Records"]]
    assert sequences == sorted(sequences) and len(set(sequences)) == 25
    json.dumps(handler.events)  # what a function gets is JSON


def test_records_are_read_as_the_answer_s_json_and_match_what_boto3_parses(ddb: Any, streams: Any, arn: str) -> None:
    # Given an item with every kind of attribute value, then changed (old and new images)
    item = {
        "pk": {"S": "every"},
        "b": {"B": b"\x00\xffbytes"},
        "bs": {"BS": [b"a", b"\x01"]},
        "ss": {"SS": ["x", "y"]},
        "ns": {"NS": ["1", "2.5"]},
        "m": {"M": {"n": {"N": "7"}, "l": {"L": [{"S": "z"}, {"BOOL": True}, {"NULL": True}]}}},
    }
    ddb.put_item(TableName="jobs", Item=item)
    ddb.update_item(
        TableName="jobs", Key={"pk": {"S": "every"}}, UpdateExpression="SET n = :n", ExpressionAttributeValues={":n": {"N": "1"}}
    )
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]

    def iterator() -> str:
        return str(streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")["ShardIterator"])

    # When the source reads them as JSON, and boto3 parses the same answer
    raw = lambda_runtime._get_records(streams, iterator(), 100)
    parsed = streams.get_records(ShardIterator=iterator(), Limit=100)
    # Then binary values are still the answer's base64 (nothing was parsed), and each record the
    # function gets is the same either way
    assert raw["Records"][0]["dynamodb"]["NewImage"]["b"] == {"B": "AP9ieXRlcw=="}
    assert isinstance(parsed["Records"][0]["dynamodb"]["NewImage"]["b"]["B"], bytes)
    stream_source = source(arn, Recorder())
    assert len(raw["Records"]) == len(parsed["Records"]) == 2
    for mine, theirs in zip(raw["Records"], parsed["Records"], strict=True):
        assert stream_source._event_record(mine) == stream_source._event_record(theirs)
    # And the client parses GetRecords as before for any other caller
    assert streams.get_records(ShardIterator=iterator(), Limit=100)["Records"][1]["eventName"] == "MODIFY"


def test_a_batching_window_gathers_records_written_while_it_is_open(ddb: Any, streams: Any, arn: str) -> None:
    for window, expected in ((0.0, [3, 2]), (0.8, [5])):
        handler = Recorder()
        mapping = source(arn, handler, starting_position="LATEST", window_seconds=window)
        mapping.start(streams)  # the window opens when the mapping starts, then when an invocation ends
        put(ddb, *[f"{window}-{n}" for n in range(3)])
        later = threading.Timer(0.3, put, args=(ddb, f"{window}-3", f"{window}-4"))
        later.start()
        mapping.poll_once(streams)
        later.join()
        drain_streams([mapping], streams)
        assert [len(batch) for batch in handler.batches] == expected, window


def test_a_failed_batch_is_retried_with_the_same_records_then_the_stream_goes_on(ddb: Any, streams: Any, arn: str) -> None:
    put(ddb, "a", "b", "c", "d")
    failures = [2]

    def fail(event: dict[str, Any]) -> bool:
        if failures[0] and keys_of(event)[0] == "a":
            failures[0] -= 1
            return True
        return False

    handler = Recorder(fail=fail)
    mapping = source(arn, handler, batch_size=3)
    drain_streams([mapping], streams)

    assert handler.batches == [["a", "b", "c"]] * 3 + [["d"]]
    assert [r["eventID"] for r in handler.events[0]["Records"]] == [r["eventID"] for r in handler.events[2]["Records"]]
    assert mapping.invocations == 4 and mapping.discarded == 0


@pytest.mark.parametrize("bisect", [False, True])
def test_a_retry_gets_the_records_as_read_whatever_the_failed_invocation_did_to_its_own(
    ddb: Any, streams: Any, arn: str, bisect: bool
) -> None:
    # Given a function that, the first time, takes its records apart and then fails
    put(ddb, "a", "b", "c", "d", size="1")
    seen: list[list[dict[str, Any]]] = []

    def handler(event: dict[str, Any], context: Any) -> None:
        seen.append(json.loads(json.dumps(event["Records"])))
        if len(seen) == 1:
            for record in event["Records"]:
                record["dynamodb"].pop("NewImage")
                record["dynamodb"]["Keys"]["pk"]["S"] = "changed"
                record["eventName"] = "REMOVE"
            event["Records"].clear()
            raise RuntimeError("the function failed")

    mapping = source(arn, handler, batch_size=4, bisect_on_error=bisect)
    drain_streams([mapping], streams)
    # Then every later invocation gets the records as the stream gave them, as Lambda sends each a fresh event
    retried = [record for records in seen[1:] for record in records]
    assert retried == seen[0]
    assert [len(records) for records in seen] == ([4, 2, 2] if bisect else [4, 4])


def test_a_failed_batch_is_split_in_halves_and_the_bad_record_alone_goes_to_the_on_failure_queue(
    ddb: Any, streams: Any, sqs: Any, dlq: str, arn: str
) -> None:
    put(ddb, *"abcdefgh")
    handler = Recorder(fail=lambda event: "f" in keys_of(event))
    mapping = source(arn, handler, batch_size=8, bisect_on_error=True, max_retry_attempts=0, on_failure=DLQ_ARN)
    handled = drain_streams([mapping], streams, sqs)

    assert handler.batches == [list("abcdefgh"), list("abcd"), list("efgh"), list("ef"), list("e"), list("f"), list("gh")]
    assert handled == 8 and mapping.discarded == 1
    [message] = messages(sqs, dlq)
    info = message["DDBStreamBatchInfo"]
    bad = handler.events[5]["Records"][0]["dynamodb"]["SequenceNumber"]
    assert (info["batchSize"], info["startSequenceNumber"], info["endSequenceNumber"]) == (1, bad, bad)
    assert message["requestContext"]["condition"] == "RetryAttemptsExhausted"


def test_with_report_batch_item_failures_the_batch_resumes_at_the_lowest_failed_record(ddb: Any, streams: Any, arn: str) -> None:
    put(ddb, *"abcdef")
    reported = [True]

    def answer(event: dict[str, Any]) -> dict[str, Any]:
        if reported[0]:
            reported[0] = False
            records = event["Records"]
            return {"batchItemFailures": [{"itemIdentifier": records[n]["dynamodb"]["SequenceNumber"]} for n in (4, 2)]}
        return {"batchItemFailures": []}

    handler = Recorder(answer=answer)
    drain_streams([source(arn, handler, batch_size=6, report_failures=True)], streams)
    assert handler.batches == [list("abcdef"), list("cdef")]  # checkpointed before "c", the lowest failure


def test_a_report_lambda_cannot_read_fails_the_whole_batch(ddb: Any, streams: Any, arn: str) -> None:
    put(ddb, "a", "b")
    answers = iter(
        [{"batchItemFailures": [{"itemIdentifier": "100000000000000000999999"}]}, {"batchItemFailures": [{"itemIdentifier": ""}]}]
    )
    handler = Recorder(answer=lambda event: next(answers, None))
    drain_streams([source(arn, handler, report_failures=True)], streams)
    assert handler.batches == [["a", "b"]] * 3  # an identifier not in the batch, then an empty one: all again


def test_when_retries_run_out_the_on_failure_queue_gets_lambda_s_invocation_record_and_the_source_moves_on(
    ddb: Any, streams: Any, sqs: Any, dlq: str, arn: str
) -> None:
    put(ddb, "a", "b", "c")
    handler = Recorder(fail=lambda event: "a" in keys_of(event))
    mapping = source(arn, handler, batch_size=2, max_retry_attempts=2, on_failure=DLQ_ARN)
    drain_streams([mapping], streams, sqs)

    assert handler.batches == [["a", "b"]] * 3 + [["c"]]  # the first try and two retries, then on
    [message] = messages(sqs, dlq)
    [shard] = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
    first, last = handler.events[0]["Records"]
    assert set(message) == {"requestContext", "responseContext", "version", "timestamp", "DDBStreamBatchInfo"}
    assert message["requestContext"]["functionArn"] == f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:counter"
    assert message["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert message["requestContext"]["approximateInvokeCount"] == 3
    assert re.fullmatch(r"[0-9a-f-]{36}", message["requestContext"]["requestId"])
    assert message["responseContext"] == {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"}
    assert message["version"] == "1.0" and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", message["timestamp"])
    arrival = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(first["dynamodb"]["ApproximateCreationDateTime"]))
    assert message["DDBStreamBatchInfo"] == {
        "shardId": shard["ShardId"],
        "startSequenceNumber": first["dynamodb"]["SequenceNumber"],
        "endSequenceNumber": last["dynamodb"]["SequenceNumber"],
        "approximateArrivalOfFirstRecord": arrival,
        "approximateArrivalOfLastRecord": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(last["dynamodb"]["ApproximateCreationDateTime"])),
        "batchSize": 2,
        "streamArn": arn,
    }


def test_records_older_than_the_maximum_age_are_given_up_without_an_invocation(
    ddb: Any, streams: Any, sqs: Any, dlq: str, arn: str, emulation: DynamoDBStreamsEmulation
) -> None:
    clock = [1_800_000_000.0]
    emulation.clock = lambda: clock[0]
    put(ddb, "old")
    clock[0] += 120
    put(ddb, "new")
    handler = Recorder()
    mapping = source(arn, handler, max_record_age_seconds=60, on_failure=DLQ_ARN, clock=lambda: clock[0])
    drain_streams([mapping], streams, sqs)

    assert handler.batches == [["new"]]
    [message] = messages(sqs, dlq)
    assert message["requestContext"]["condition"] == "RecordAgeExpired" and message["requestContext"]["approximateInvokeCount"] == 0
    assert message["DDBStreamBatchInfo"]["batchSize"] == 1 and "functionError" not in message["responseContext"]


# ---- filters --------------------------------------------------------------------------------------


def test_filter_criteria_skip_records_no_pattern_matches_and_count_them_as_handled(ddb: Any, streams: Any, arn: str) -> None:
    put(ddb, "JOB#1", state="NEW")
    put(ddb, "JOB#1", state="DONE")
    put(ddb, "JOB#2")  # no state
    put(ddb, "OTHER#1", state="NEW")
    ddb.delete_item(TableName="jobs", Key={"pk": {"S": "JOB#1"}})
    patterns = [
        '{"eventName": ["INSERT", "MODIFY"], "dynamodb": {"Keys": {"pk": {"S": [{"prefix": "JOB#"}]}}, "NewImage": {"state": {"S": [{"exists": true}]}}}}',
        {"eventName": ["REMOVE"], "dynamodb": {"OldImage": {"state": {"S": [{"anything-but": ["NEW"]}]}}}},
    ]
    handler = Recorder()
    mapping = source(arn, handler, filter_patterns=patterns)
    handled = drain_streams([mapping], streams)

    delivered = [(r["eventName"], r["dynamodb"]["Keys"]["pk"]["S"]) for event in handler.events for r in event["Records"]]
    assert delivered == [("INSERT", "JOB#1"), ("MODIFY", "JOB#1"), ("REMOVE", "JOB#1")]
    assert handled == 5 and mapping.handled == 5  # the skipped records count as handled
    put(ddb, "JOB#3", state="NEW")  # and the source goes on past them
    drain_streams([mapping], streams)
    assert handler.batches[-1] == ["JOB#3"]


def test_a_numeric_filter_matches_json_numbers_only(ddb: Any, streams: Any, arn: str) -> None:
    put(ddb, "small")
    put(ddb, "large", payload="x" * 100)
    handler = Recorder()
    numeric = {"dynamodb": {"SizeBytes": [{"numeric": [">", 50]}]}}
    on_n = {"dynamodb": {"NewImage": {"n": {"N": [{"numeric": [">", 0]}]}}}}  # DynamoDB numbers are strings
    ddb.put_item(TableName="jobs", Item={"pk": {"S": "number"}, "n": {"N": "5"}})
    drain_streams([source(arn, handler, filter_patterns=[numeric, on_n])], streams)
    assert handler.batches == [["large"]]


@pytest.mark.parametrize(
    ("pattern", "matches"),
    [
        ({"a": [None]}, [True, False, False, False]),
        ({"a": [""]}, [False, True, False, False]),
        ({"a": ["x", "y"]}, [False, False, True, False]),
        ({"a": [{"equals-ignore-case": "X"}]}, [False, False, True, False]),
        ({"a": [{"suffix": "x"}]}, [False, False, True, False]),
        ({"a": [{"exists": False}]}, [False, False, False, True]),
        ({"a": [{"exists": True}]}, [True, True, True, False]),
        ({"a": [{"anything-but": "x"}]}, [True, True, False, False]),
        ({"a": [{"anything-but": {"prefix": "x"}}]}, [False, True, False, False]),
        ({"$or": [{"a": ["x"]}, {"b": [{"numeric": [">=", 1, "<", 3]}]}]}, [False, False, True, True]),
    ],
)
def test_filter_patterns_follow_lambda_s_rule_syntax(pattern: dict[str, Any], matches: list[bool]) -> None:
    events = [{"a": None}, {"a": ""}, {"a": "x"}, {"b": 2}]
    parse_filter_criteria([pattern])
    assert [pattern_matches(pattern, event) for event in events] == matches


@pytest.mark.parametrize(
    "pattern",
    [
        '{"a": [{"wildcard": "x*"}]}',
        '{"a": [{"cidr": "10.0.0.0/24"}]}',
        '{"a": "x"}',
        '{"a": [{"numeric": [">"]}]}',
        "not json",
    ],
)
def test_a_pattern_the_runtime_cannot_apply_is_refused(arn: str, pattern: str) -> None:
    with pytest.raises(ValueError, match="FilterCriteria"):
        source(arn, Recorder(), filter_patterns=[pattern])


def test_a_parallelization_factor_other_than_one_is_refused(arn: str) -> None:
    with pytest.raises(ValueError, match="ParallelizationFactor 2"):
        source(arn, Recorder(), parallelization_factor=2)


# ---- shards and positions -------------------------------------------------------------------------


def test_after_a_split_the_parent_is_finished_before_its_children_are_read(
    ddb: Any, streams: Any, arn: str, emulation: DynamoDBStreamsEmulation
) -> None:
    put(ddb, *[f"k{n}" for n in range(6)], round="1")
    emulation.split_shard("jobs")
    put(ddb, *[f"k{n}" for n in range(6)], round="2")
    [parent, *children] = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
    ending = int(parent["SequenceNumberRange"]["EndingSequenceNumber"])
    tries = [2]

    def fail(event: dict[str, Any]) -> bool:  # the parent's last batch fails twice: the children wait for it
        last = int(event["Records"][-1]["dynamodb"]["SequenceNumber"])
        if last == ending and tries[0]:
            tries[0] -= 1
            return True
        return False

    handler = Recorder(fail=fail)
    drain_streams([source(arn, handler, batch_size=4)], streams)

    delivered = [
        (int(r["dynamodb"]["SequenceNumber"]), r["dynamodb"]["NewImage"]["round"]["S"]) for e in handler.events for r in e["Records"]
    ]
    parents = [n for n, (sequence, _) in enumerate(delivered) if sequence <= ending]
    assert [round_ for _, round_ in delivered[: len(parents)]] == ["1"] * 10  # 4, then the last 2 three times
    assert all(round_ == "2" for _, round_ in delivered[len(parents) :]) and len(delivered) - len(parents) == 6
    for event in handler.events:  # a batch never mixes shards
        sequences = [int(r["dynamodb"]["SequenceNumber"]) for r in event["Records"]]
        assert all(s <= ending for s in sequences) or all(s > ending for s in sequences)
    assert len(children) == 2


def test_starting_position_latest_skips_the_records_already_there(ddb: Any, streams: Any, arn: str) -> None:
    put(ddb, "old1", "old2")
    latest, trim_horizon = Recorder(), Recorder()
    sources = [source(arn, latest, starting_position="LATEST"), source(arn, trim_horizon, starting_position="TRIM_HORIZON")]
    for mapping in sources:
        mapping.start(streams)  # the mapping is made now
    put(ddb, "new1", "new2")
    drain_streams(sources, streams)
    assert latest.batches == [["new1", "new2"]]
    assert trim_horizon.batches == [["old1", "old2", "new1", "new2"]]


def test_an_expired_iterator_is_renewed_from_the_last_record_read(
    ddb: Any, streams: Any, arn: str, emulation: DynamoDBStreamsEmulation
) -> None:
    clock = [1_800_000_000.0]
    emulation.clock = lambda: clock[0]
    put(ddb, "a")
    handler = Recorder()
    mapping = source(arn, handler, clock=lambda: clock[0])
    drain_streams([mapping], streams)
    clock[0] += 16 * 60  # the iterator the source holds is older than 15 minutes now
    put(ddb, "b")
    drain_streams([mapping], streams)
    assert handler.batches == [["a"], ["b"]]


# ---- tumbling windows -----------------------------------------------------------------------------


def test_a_tumbling_window_carries_its_state_and_ends_with_a_final_invocation(
    ddb: Any, streams: Any, arn: str, emulation: DynamoDBStreamsEmulation
) -> None:
    clock = [1_800_000_000.0]  # a multiple of 300: a window starts here
    emulation.clock = lambda: clock[0]
    put(ddb, "a", "b", "c")

    def count(event: dict[str, Any]) -> dict[str, Any]:
        return {"state": {"seen": event["state"].get("seen", 0) + len(event["Records"])}}

    handler = Recorder(answer=count)
    mapping = source(arn, handler, batch_size=2, tumbling_window_seconds=300, clock=lambda: clock[0])
    drain_streams([mapping], streams)
    [shard] = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
    first, second = handler.events
    assert set(first) == {"Records", "window", "state", "shardId", "eventSourceARN", "isFinalInvokeForWindow", "isWindowTerminatedEarly"}
    assert first["window"] == {"start": "2027-01-15T08:00:00Z", "end": "2027-01-15T08:05:00Z"}
    assert (first["shardId"], first["eventSourceARN"], first["state"]) == (shard["ShardId"], arn, {})
    assert first["isFinalInvokeForWindow"] is False and first["isWindowTerminatedEarly"] is False
    assert (keys_of(second), second["state"]) == (["c"], {"seen": 2})  # the state the last invocation returned

    clock[0] += 300  # the window is over: its final invocation, with no records
    put(ddb, "d")
    drain_streams([mapping], streams)
    final, third = handler.events[2:]
    assert final["Records"] == [] and final["isFinalInvokeForWindow"] is True and final["state"] == {"seen": 3}
    assert third["window"]["start"] == "2027-01-15T08:05:00Z" and third["state"] == {} and keys_of(third) == ["d"]


def test_a_windowed_response_without_a_state_fails_the_invocation(ddb: Any, streams: Any, arn: str) -> None:
    put(ddb, "a")
    answers = iter([{"batchItemFailures": []}, {"state": {}}])
    handler = Recorder(answer=lambda event: next(answers))
    drain_streams([source(arn, handler, tumbling_window_seconds=60)], streams)
    assert handler.batches == [["a"], ["a"]]


# ---- the local stack ------------------------------------------------------------------------------

TEMPLATE = """
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Resources:
  Table:
    Type: AWS::DynamoDB::Table
    Properties:
      BillingMode: PAY_PER_REQUEST
      AttributeDefinitions: [{AttributeName: pk, AttributeType: S}]
      KeySchema: [{AttributeName: pk, KeyType: HASH}]
      StreamSpecification: {StreamViewType: NEW_AND_OLD_IMAGES}
  Failures:
    Type: AWS::SQS::Queue
  Counter:
    Type: AWS::Serverless::Function
    Properties:
      Handler: counter.handler
      Timeout: 30
      Events:
        Stream:
          Type: DynamoDB
          Properties:
            Stream: !GetAtt Table.StreamArn
            StartingPosition: TRIM_HORIZON
            BatchSize: 3
            MaximumRetryAttempts: 1
            ParallelizationFactor: PARALLEL
            BisectBatchOnFunctionError: true
            FunctionResponseTypes: [ReportBatchItemFailures]
            DestinationConfig:
              OnFailure:
                Type: SQS
                Destination: !GetAtt Failures.Arn
            FilterCriteria:
              Filters:
                - Pattern: '{"dynamodb": {"Keys": {"pk": {"S": [{"prefix": "JOB#"}]}}}}'
"""


def test_the_template_s_dynamodb_event_becomes_a_stream_source_on_the_table_s_stream(emulation: DynamoDBStreamsEmulation, sqs: Any) -> None:
    from bulk_restore_cli.local.provision import provision
    from bulk_restore_cli.local.template import TemplateError, parse_template

    stack = provision(parse_template(TEMPLATE.replace("PARALLEL", "1")), region=REGION)
    ddb, streams = endpoint_client("dynamodb"), endpoint_client("dynamodbstreams")
    table = stack.ref("Table")
    handler = Recorder()
    [mapping] = stack.stream_event_sources(load=lambda path: handler if path == "counter.handler" else None)

    assert mapping.stream_arn == ddb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
    assert (mapping.batch_size, mapping.max_retry_attempts, mapping.bisect_on_error, mapping.report_failures) == (3, 1, True, True)
    assert mapping.on_failure == stack.attribute("Failures", "Arn") and mapping.timeout_s == 30
    for key in ("JOB#1", "OTHER", "JOB#2"):
        ddb.put_item(TableName=table, Item={"pk": {"S": key}})
    drain_streams([mapping], streams, sqs)
    assert handler.batches == [["JOB#1", "JOB#2"]]

    with pytest.raises(TemplateError, match="ParallelizationFactor 2"):
        provision(parse_template(TEMPLATE.replace("PARALLEL", "2")), region=REGION, stack_name="other")


def test_a_stream_source_goes_to_the_function_process_as_json(arn: str) -> None:
    from bulk_restore_cli.local import function_host

    mapping = source(arn, "counter.handler", batch_size=7, filter_patterns=['{"eventName": ["INSERT"]}'], tumbling_window_seconds=60)
    document = json.loads(json.dumps(function_host.spec([], [], {}, "http://127.0.0.1:1", REGION, [], streams=[mapping])))
    [raw] = document["streams"]
    again = DynamoDBStreamEventSource(**{**raw, "handler": "counter.handler"})
    assert again == mapping


def test_a_stream_poller_runs_the_source_in_the_background_through_the_local_endpoint(endpoint: Any) -> None:
    with DynamoDBEmulation(), DynamoDBStreamsEmulation():
        ddb, streams = endpoint_client("dynamodb", endpoint), endpoint_client("dynamodbstreams", endpoint)
        made = ddb.create_table(
            TableName="polled",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"},
        )
        handler = Recorder()
        stop = threading.Event()
        mapping = source(made["TableDescription"]["LatestStreamArn"], handler, starting_position="LATEST", poll_seconds=0.02)
        poller = StreamPoller(mapping, streams, stop).start()
        try:
            deadline = time.monotonic() + 5
            while not mapping._started and time.monotonic() < deadline:
                time.sleep(0.01)
            for key in ("a", "b", "c"):
                ddb.put_item(TableName="polled", Item={"pk": {"S": key}})
            while sum(len(batch) for batch in handler.batches) < 3 and time.monotonic() < deadline:
                time.sleep(0.01)
        finally:
            stop.set()
            poller.join(5)
        assert [key for batch in handler.batches for key in batch] == ["a", "b", "c"]
        assert not poller.is_alive()
