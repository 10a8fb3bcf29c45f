"""The local stack's DynamoDB Streams layer (bulk_restore_cli.local.dynamodb_streams) over moto.

Everything goes through plain boto3 clients (``dynamodb``, ``dynamodbstreams``), in-process
(``mock_aws``) and through the local stack's endpoint, and every answer is checked against
botocore's model of DynamoDB Streams (no member the model does not have, each of its type):

- a record per item a write changed (PutItem, UpdateItem, DeleteItem, TransactWriteItems,
  BatchWriteItem), with DynamoDB's event names, images for the view type, region, sizes (the
  Lambda guide's example records' sizes), and none for a write that changes nothing;
- iterators of each type, Limit and NextShardIterator, expiry after 15 minutes, retention of 24 hours;
- a split shard: the parent closed with its EndingSequenceNumber, two children naming it, later
  writes going to the children by key, DescribeStream's paging and child-shard filter;
- GetRecords reads from its position on, not the stream before it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import botocore.session
import pytest
from botocore.exceptions import ClientError

from bulk_restore_cli.local.dynamodb import DynamoDBEmulation
from bulk_restore_cli.local.dynamodb_streams import DynamoDBStreamsEmulation
from support.endpoint import endpoint_client

REGION = "us-east-1"


@pytest.fixture
def emulation() -> Iterator[DynamoDBStreamsEmulation]:
    """The local stack's DynamoDB and DynamoDB Streams layers, with the streams' clock reset after."""
    with DynamoDBEmulation(), DynamoDBStreamsEmulation() as installed:
        try:
            yield installed
        finally:
            installed.clock = None


@pytest.fixture
def clients(aws: None, emulation: DynamoDBStreamsEmulation) -> tuple[Any, Any]:
    """Plain boto3 clients of moto in-process: (dynamodb, dynamodbstreams)."""
    return endpoint_client("dynamodb"), endpoint_client("dynamodbstreams")


# ---- helpers --------------------------------------------------------------------------------------

_MODEL = botocore.session.get_session().get_service_model("dynamodbstreams")


def _check_shape(value: Any, shape: Any, where: str) -> None:
    """``value`` (an answer's JSON) has only members ``shape`` names, each of the shape's type."""
    kind = shape.type_name
    if kind == "structure":
        assert isinstance(value, dict), where
        for name, member in value.items():
            assert name in shape.members, f"{where}.{name} is not in the model"
            _check_shape(member, shape.members[name], f"{where}.{name}")
    elif kind == "list":
        assert isinstance(value, list), where
        for n, item in enumerate(value):
            _check_shape(item, shape.member, f"{where}[{n}]")
    elif kind == "map":
        assert isinstance(value, dict), where
        for key, item in value.items():
            _check_shape(item, shape.value, f"{where}.{key}")
    elif kind == "string":
        assert isinstance(value, str), where
        if shape.enum:
            assert value in shape.enum, f"{where}: {value!r} not in {shape.enum}"
        low, high = shape.metadata.get("min"), shape.metadata.get("max")
        assert (low is None or len(value) >= low) and (high is None or len(value) <= high), f"{where}: length {len(value)}"
    elif kind in ("integer", "long"):
        assert isinstance(value, int) and not isinstance(value, bool), where
    elif kind == "timestamp":
        assert isinstance(value, (int, float)) and not isinstance(value, bool), where
    elif kind == "boolean":
        assert isinstance(value, bool), where
    elif kind == "blob":
        assert isinstance(value, str), where


@pytest.fixture
def answers(clients: tuple[Any, Any]) -> list[tuple[str, Any]]:
    """Every DynamoDB Streams answer's body, as it came, checked against the model's output shape."""
    seen: list[tuple[str, Any]] = []

    def check(http_response: Any, model: Any, **_: Any) -> None:
        body = json.loads(http_response.content)
        if http_response.status_code == 200:
            _check_shape(body, model.output_shape, model.name)
        seen.append((model.name, body))

    clients[1].meta.events.register("after-call.dynamodbstreams", check)
    return seen


def make_table(ddb: Any, name: str = "jobs", view: str = "NEW_AND_OLD_IMAGES", key: str = "pk", sort_key: str | None = None) -> str:
    """A table with a stream; returns the stream's ARN (the table's LatestStreamArn)."""
    schema = [{"AttributeName": key, "KeyType": "HASH"}]
    attributes = [{"AttributeName": key, "AttributeType": "S"}]
    if sort_key:
        schema.append({"AttributeName": sort_key, "KeyType": "RANGE"})
        attributes.append({"AttributeName": sort_key, "AttributeType": "S"})
    made = ddb.create_table(
        TableName=name,
        KeySchema=schema,
        AttributeDefinitions=attributes,
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": view},
    )
    return str(made["TableDescription"]["LatestStreamArn"])


def shards(streams: Any, arn: str, **extra: Any) -> list[dict[str, Any]]:
    found, request = [], {"StreamArn": arn, **extra}
    while True:
        description = streams.describe_stream(**request)["StreamDescription"]
        found.extend(description["Shards"])
        if "LastEvaluatedShardId" not in description:
            return found
        request["ExclusiveStartShardId"] = description["LastEvaluatedShardId"]


def read_shard(streams: Any, arn: str, shard_id: str, kind: str = "TRIM_HORIZON", **extra: Any) -> list[dict[str, Any]]:
    """A shard's records from an iterator of ``kind`` on, until it answers none."""
    iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard_id, ShardIteratorType=kind, **extra)["ShardIterator"]
    records: list[dict[str, Any]] = []
    while iterator:
        answer = streams.get_records(ShardIterator=iterator)
        records.extend(answer["Records"])
        if not answer["Records"]:
            break
        iterator = answer.get("NextShardIterator")
    return records


def read_all(streams: Any, arn: str) -> list[dict[str, Any]]:
    """Every record of the stream, parents' before their children's."""
    return [record for shard in shards(streams, arn) for record in read_shard(streams, arn, shard["ShardId"])]


def put(ddb: Any, key: str, table: str = "jobs", **attributes: str) -> None:
    ddb.put_item(TableName=table, Item={"pk": {"S": key}, **{k: {"S": v} for k, v in attributes.items()}})


def sequence(record: dict[str, Any]) -> int:
    return int(record["dynamodb"]["SequenceNumber"])


# ---- the API works in-process --------------------------------------------------------------------


def test_a_plain_client_describes_a_stream_in_process(clients: tuple[Any, Any], answers: list[tuple[str, Any]]) -> None:
    ddb, streams = clients
    arn = make_table(ddb)
    hosts: list[str] = []
    streams.meta.events.register("before-send.dynamodbstreams", lambda request, **_: hosts.append(request.url))

    description = streams.describe_stream(StreamArn=arn)["StreamDescription"]

    # botocore sends calls that name a stream to the account's endpoint: moto answered 404 there
    assert re.match(r"https://123456789012\.streams-ddb\.us-east-1\.amazonaws\.com", hosts[0])
    assert description["StreamArn"] == arn and description["StreamStatus"] == "ENABLED"
    assert description["TableName"] == "jobs" and description["StreamViewType"] == "NEW_AND_OLD_IMAGES"
    assert description["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
    [shard] = description["Shards"]
    assert "EndingSequenceNumber" not in shard["SequenceNumberRange"] and "ParentShardId" not in shard  # open, no parent
    assert re.fullmatch(r"[0-9]{21,40}", shard["SequenceNumberRange"]["StartingSequenceNumber"])
    assert description["StreamLabel"] == arn.rsplit("/", 1)[1]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}", description["StreamLabel"])  # DynamoDB's labels: milliseconds
    listed = streams.list_streams(TableName="jobs")["Streams"]
    assert listed == [{"StreamArn": arn, "TableName": "jobs", "StreamLabel": description["StreamLabel"]}]
    assert [name for name, _ in answers] == ["DescribeStream", "ListStreams"]


def test_an_unknown_stream_or_shard_is_a_resource_not_found(clients: tuple[Any, Any]) -> None:
    ddb, streams = clients
    arn = make_table(ddb)
    for call in (
        lambda: streams.describe_stream(StreamArn=arn.replace("table/jobs/", "table/other/")),
        lambda: streams.describe_stream(StreamArn=arn[:-1] + ("1" if arn[-1] != "1" else "2")),
        lambda: streams.get_shard_iterator(StreamArn=arn, ShardId="shardId-00000000000000000000-00000000", ShardIteratorType="LATEST"),
    ):
        with pytest.raises(ClientError) as error:
            call()
        assert error.value.response["Error"]["Code"] == "ResourceNotFoundException"


# ---- records --------------------------------------------------------------------------------------


def test_put_update_and_delete_write_insert_modify_and_remove_with_their_images(aws: None, emulation: DynamoDBStreamsEmulation) -> None:
    ddb, streams = endpoint_client("dynamodb", region="eu-west-1"), endpoint_client("dynamodbstreams", region="eu-west-1")
    arn = make_table(ddb)
    put(ddb, "a", state="NEW")
    ddb.update_item(
        TableName="jobs",
        Key={"pk": {"S": "a"}},
        UpdateExpression="SET #s = :s",
        ExpressionAttributeNames={"#s": "state"},
        ExpressionAttributeValues={":s": {"S": "DONE"}},
    )
    ddb.delete_item(TableName="jobs", Key={"pk": {"S": "a"}})

    insert, modify, remove = read_all(streams, arn)

    assert [r["eventName"] for r in (insert, modify, remove)] == ["INSERT", "MODIFY", "REMOVE"]
    assert insert["dynamodb"]["NewImage"] == {"pk": {"S": "a"}, "state": {"S": "NEW"}} and "OldImage" not in insert["dynamodb"]
    assert modify["dynamodb"]["OldImage"] == {"pk": {"S": "a"}, "state": {"S": "NEW"}}
    assert modify["dynamodb"]["NewImage"] == {"pk": {"S": "a"}, "state": {"S": "DONE"}}
    assert remove["dynamodb"]["OldImage"] == {"pk": {"S": "a"}, "state": {"S": "DONE"}} and "NewImage" not in remove["dynamodb"]
    for record in (insert, modify, remove):
        assert record["eventSource"] == "aws:dynamodb" and record["awsRegion"] == "eu-west-1"  # moto: always us-east-1
        assert record["eventVersion"] == "1.1" and re.fullmatch(r"[0-9a-f]{32}", record["eventID"])
        assert record["dynamodb"]["Keys"] == {"pk": {"S": "a"}} and record["dynamodb"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"
        assert record["dynamodb"]["ApproximateCreationDateTime"].microsecond == 0  # rounded down to the second
        assert re.fullmatch(r"[0-9]{21,40}", record["dynamodb"]["SequenceNumber"])
    assert sequence(insert) < sequence(modify) < sequence(remove)
    assert len({r["eventID"] for r in (insert, modify, remove)}) == 3


def test_record_sizes_are_dynamodb_s_as_in_the_lambda_guide_s_example(clients: tuple[Any, Any]) -> None:
    # The Lambda developer guide's example DynamoDB event (table "blog-post", key "id"): an INSERT
    # of {id: "2", key: "original"} is 17 bytes, a MODIFY of {id: "1"} from key "value" to "updated" 27.
    ddb, streams = clients
    arn = make_table(ddb, key="id")
    ddb.put_item(TableName="jobs", Item={"id": {"S": "1"}, "key": {"S": "value"}})
    ddb.put_item(TableName="jobs", Item={"id": {"S": "1"}, "key": {"S": "updated"}})
    ddb.put_item(TableName="jobs", Item={"id": {"S": "2"}, "key": {"S": "original"}})
    _, modify, insert = read_all(streams, arn)
    assert (modify["eventName"], modify["dynamodb"]["SizeBytes"]) == ("MODIFY", 27)
    assert (insert["eventName"], insert["dynamodb"]["SizeBytes"]) == ("INSERT", 17)


def test_an_update_that_makes_its_item_writes_one_insert(clients: tuple[Any, Any]) -> None:
    ddb, streams = clients
    arn = make_table(ddb)
    ddb.update_item(TableName="jobs", Key={"pk": {"S": "a"}}, UpdateExpression="SET n = :n", ExpressionAttributeValues={":n": {"N": "1"}})
    [record] = read_all(streams, arn)  # moto wrote two INSERTs: the key alone, then the item
    assert record["eventName"] == "INSERT" and record["dynamodb"]["NewImage"] == {"pk": {"S": "a"}, "n": {"N": "1"}}


def test_a_write_that_changes_nothing_writes_no_record(clients: tuple[Any, Any]) -> None:
    ddb, streams = clients
    arn = make_table(ddb)
    put(ddb, "a", state="NEW")
    set_new = {
        "UpdateExpression": "SET #s = :s",
        "ExpressionAttributeNames": {"#s": "state"},
        "ExpressionAttributeValues": {":s": {"S": "NEW"}},
    }

    put(ddb, "a", state="NEW")  # the same item again
    ddb.update_item(TableName="jobs", Key={"pk": {"S": "a"}}, **set_new)  # the same value again
    ddb.update_item(TableName="jobs", Key={"pk": {"S": "a"}}, UpdateExpression="REMOVE absent_attribute")  # nothing to remove
    ddb.delete_item(TableName="jobs", Key={"pk": {"S": "absent"}})  # nothing to delete
    ddb.batch_write_item(RequestItems={"jobs": [{"PutRequest": {"Item": {"pk": {"S": "a"}, "state": {"S": "NEW"}}}}]})
    ddb.transact_write_items(
        TransactItems=[
            {"Update": {"TableName": "jobs", "Key": {"pk": {"S": "a"}}, **set_new}},
            {"Put": {"TableName": "jobs", "Item": {"pk": {"S": "b"}, "state": {"S": "NEW"}}}},
        ]
    )
    ddb.execute_statement(Statement="""UPDATE "jobs" SET "state" = 'NEW' WHERE "pk" = 'a'""")

    records = read_all(streams, arn)
    assert [(r["eventName"], r["dynamodb"]["Keys"]["pk"]["S"]) for r in records] == [("INSERT", "a"), ("INSERT", "b")]


def test_a_transaction_writes_a_record_per_item_in_order_and_none_when_it_does_not_apply(clients: tuple[Any, Any]) -> None:
    ddb, streams = clients
    arn = make_table(ddb)
    put(ddb, "b", state="NEW")
    put(ddb, "c", state="NEW")
    ddb.transact_write_items(
        TransactItems=[
            {"Put": {"TableName": "jobs", "Item": {"pk": {"S": "a"}, "state": {"S": "NEW"}}}},
            {"Update": {"TableName": "jobs", "Key": {"pk": {"S": "b"}}, "UpdateExpression": "SET n = :n", "ExpressionAttributeValues": {":n": {"N": "1"}}}},
            {"Delete": {"TableName": "jobs", "Key": {"pk": {"S": "c"}}}},
        ]
    )  # fmt: skip
    with pytest.raises(ClientError) as cancelled:  # a condition fails: nothing is written
        ddb.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": "jobs", "Item": {"pk": {"S": "d"}}}},
                {"ConditionCheck": {"TableName": "jobs", "Key": {"pk": {"S": "a"}}, "ConditionExpression": "attribute_not_exists(pk)"}},
            ]
        )
    assert cancelled.value.response["Error"]["Code"] == "TransactionCanceledException"
    with pytest.raises(ClientError):  # the second action cannot apply (ADD to a string): the first is undone too
        ddb.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": "jobs", "Item": {"pk": {"S": "e"}}}},
                {"Update": {"TableName": "jobs", "Key": {"pk": {"S": "a"}}, "UpdateExpression": "ADD #s :one", "ExpressionAttributeNames": {"#s": "state"}, "ExpressionAttributeValues": {":one": {"N": "1"}}}},
            ]
        )  # fmt: skip
    assert "Item" not in ddb.get_item(TableName="jobs", Key={"pk": {"S": "e"}})

    records = read_all(streams, arn)
    assert [(r["eventName"], r["dynamodb"]["Keys"]["pk"]["S"]) for r in records] == [
        ("INSERT", "b"),
        ("INSERT", "c"),
        ("INSERT", "a"),
        ("MODIFY", "b"),
        ("REMOVE", "c"),
    ]
    assert records[3]["dynamodb"]["NewImage"] == {"pk": {"S": "b"}, "state": {"S": "NEW"}, "n": {"N": "1"}}
    put(ddb, "f")  # and the stream goes on after the undone records
    assert read_all(streams, arn)[-1]["dynamodb"]["Keys"] == {"pk": {"S": "f"}}


@pytest.mark.parametrize(
    ("view", "images"),
    [("KEYS_ONLY", set()), ("NEW_IMAGE", {"NewImage"}), ("OLD_IMAGE", {"OldImage"}), ("NEW_AND_OLD_IMAGES", {"NewImage", "OldImage"})],
)
def test_a_record_carries_the_images_its_view_type_asks_for(clients: tuple[Any, Any], view: str, images: set[str]) -> None:
    ddb, streams = clients
    arn = make_table(ddb, view=view, sort_key="sk")
    ddb.put_item(TableName="jobs", Item={"pk": {"S": "a"}, "sk": {"S": "1"}, "v": {"S": "x"}})
    ddb.put_item(TableName="jobs", Item={"pk": {"S": "a"}, "sk": {"S": "1"}, "v": {"S": "y"}, "b": {"B": b"\x00\xff"}})
    _, modify = read_all(streams, arn)
    assert {name for name in ("NewImage", "OldImage") if name in modify["dynamodb"]} == images
    assert modify["dynamodb"]["Keys"] == {"pk": {"S": "a"}, "sk": {"S": "1"}} and modify["dynamodb"]["StreamViewType"] == view
    if "NewImage" in images:
        assert modify["dynamodb"]["NewImage"]["b"] == {"B": b"\x00\xff"}  # binary values survive, base64 on the wire


# ---- iterators ------------------------------------------------------------------------------------


def test_iterators_of_each_type_start_where_the_api_reference_says(clients: tuple[Any, Any], answers: list[tuple[str, Any]]) -> None:
    ddb, streams = clients
    arn = make_table(ddb)
    for key in "abcde":
        put(ddb, key)
    [shard] = shards(streams, arn)
    shard_id = shard["ShardId"]
    everything = read_shard(streams, arn, shard_id)
    third = everything[2]["dynamodb"]["SequenceNumber"]
    latest = streams.get_shard_iterator(StreamArn=arn, ShardId=shard_id, ShardIteratorType="LATEST")["ShardIterator"]

    def keys(records: list[dict[str, Any]]) -> str:
        return "".join(r["dynamodb"]["Keys"]["pk"]["S"] for r in records)

    assert keys(everything) == "abcde"
    assert keys(read_shard(streams, arn, shard_id, "AT_SEQUENCE_NUMBER", SequenceNumber=third)) == "cde"
    assert keys(read_shard(streams, arn, shard_id, "AFTER_SEQUENCE_NUMBER", SequenceNumber=third)) == "de"
    assert streams.get_records(ShardIterator=latest)["Records"] == []
    put(ddb, "f")
    assert keys(streams.get_records(ShardIterator=latest)["Records"]) == "f"  # LATEST: after the newest when it was taken
    for bad in (
        {"ShardIteratorType": "AT_SEQUENCE_NUMBER", "SequenceNumber": "not-a-sequence-number"},
        {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER"},
    ):
        with pytest.raises(ClientError) as error:
            streams.get_shard_iterator(StreamArn=arn, ShardId=shard_id, **bad)
        assert error.value.response["Error"]["Code"] == "ValidationException"
    with pytest.raises(ClientError) as error:
        streams.get_records(ShardIterator="garbage")
    assert error.value.response["Error"]["Code"] == "ValidationException"


def test_get_records_gives_limit_records_at_a_time_and_the_next_iterator(clients: tuple[Any, Any], answers: list[tuple[str, Any]]) -> None:
    ddb, streams = clients
    arn = make_table(ddb)
    for n in range(7):
        put(ddb, f"k{n}")
    [shard] = shards(streams, arn)
    iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    pages = []
    for _ in range(4):
        answer = streams.get_records(ShardIterator=iterator, Limit=3)
        pages.append([r["dynamodb"]["Keys"]["pk"]["S"] for r in answer["Records"]])
        iterator = answer["NextShardIterator"]  # an open shard always gives the next iterator
    assert pages == [["k0", "k1", "k2"], ["k3", "k4", "k5"], ["k6"], []]
    put(ddb, "k7")
    assert [r["dynamodb"]["Keys"]["pk"]["S"] for r in streams.get_records(ShardIterator=iterator)["Records"]] == ["k7"]
    sequences = [int(r["dynamodb"]["SequenceNumber"]) for _, body in answers if "Records" in body for r in body["Records"]]
    assert sequences == sorted(sequences) and len(set(sequences)) == 8
    with pytest.raises(ClientError) as error:
        streams.get_records(ShardIterator=iterator, Limit=1001)
    assert error.value.response["Error"]["Code"] == "LimitExceededException"  # the model: "more than 1000 for the limit"


def test_an_iterator_expires_after_15_minutes_and_records_after_24_hours(
    clients: tuple[Any, Any], emulation: DynamoDBStreamsEmulation
) -> None:
    ddb, streams = clients
    clock = [1_800_000_000.0]
    emulation.clock = lambda: clock[0]
    arn = make_table(ddb)
    put(ddb, "old")
    [shard] = shards(streams, arn)
    [old] = read_shard(streams, arn, shard["ShardId"])
    iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON")["ShardIterator"]

    clock[0] += 15 * 60 + 1
    with pytest.raises(ClientError) as error:
        streams.get_records(ShardIterator=iterator)
    assert error.value.response["Error"]["Code"] == "ExpiredIteratorException"

    put(ddb, "new")
    clock[0] += 24 * 3600 - 15 * 60  # "old" is over 24 hours old now, "new" is not
    assert [r["dynamodb"]["Keys"]["pk"]["S"] for r in read_shard(streams, arn, shard["ShardId"])] == ["new"]
    with pytest.raises(ClientError) as error:
        streams.get_shard_iterator(
            StreamArn=arn,
            ShardId=shard["ShardId"],
            ShardIteratorType="AT_SEQUENCE_NUMBER",
            SequenceNumber=old["dynamodb"]["SequenceNumber"],
        )
    assert error.value.response["Error"]["Code"] == "TrimmedDataAccessException"


def test_an_at_timestamp_iterator_starts_at_the_first_record_of_that_second_or_later(
    clients: tuple[Any, Any], emulation: DynamoDBStreamsEmulation
) -> None:
    ddb, streams = clients
    clock = [1_800_000_000.25]
    emulation.clock = lambda: clock[0]
    arn = make_table(ddb)
    for key in "abc":
        put(ddb, key)
        clock[0] += 10
    [shard] = shards(streams, arn)
    got = read_shard(streams, arn, shard["ShardId"], "AT_TIMESTAMP", Timestamp=1_800_000_010)
    assert [r["dynamodb"]["Keys"]["pk"]["S"] for r in got] == ["b", "c"]
    with pytest.raises(ClientError) as error:
        streams.get_shard_iterator(StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="AT_TIMESTAMP", Timestamp=clock[0] + 60)
    assert error.value.response["Error"]["Code"] == "ValidationException"  # in the future


def test_get_records_reads_from_its_position_not_the_stream_before_it(
    clients: tuple[Any, Any], emulation: DynamoDBStreamsEmulation
) -> None:
    ddb, streams = clients
    arn = make_table(ddb)
    for batch in range(40):
        ddb.batch_write_item(RequestItems={"jobs": [{"PutRequest": {"Item": {"pk": {"S": f"k{batch}-{n}"}}}} for n in range(25)]})
    [shard] = shards(streams, arn)
    last = emulation.stream("jobs").shards[0]
    assert len(last.records) == 1000
    near_end = last.records[995].body["dynamodb"]["SequenceNumber"]

    class Counting(list):  # type: ignore[type-arg]
        reads = 0

        def __getitem__(self, index: Any) -> Any:
            Counting.reads += 1
            return super().__getitem__(index)

    last.records = Counting(last.records)
    iterator = streams.get_shard_iterator(
        StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="AT_SEQUENCE_NUMBER", SequenceNumber=near_end
    )["ShardIterator"]
    got = streams.get_records(ShardIterator=iterator)["Records"]
    assert got[0]["dynamodb"]["SequenceNumber"] == near_end and len(got) == 5
    assert Counting.reads <= 10  # the five records served, not the 995 before them


def test_moto_s_own_shard_read_finds_its_start_without_walking_the_stream(
    clients: tuple[Any, Any], emulation: DynamoDBStreamsEmulation
) -> None:
    # moto's shard iterators read ``table.stream_shard.get(sequence, limit)``: the log answers it
    ddb, _ = clients
    make_table(ddb)
    for batch in range(40):
        ddb.batch_write_item(RequestItems={"jobs": [{"PutRequest": {"Item": {"pk": {"S": f"k{batch}-{n}"}}}} for n in range(25)]})
    log = emulation.stream("jobs")
    start = log.items[990].sequence

    class Counting(type(log.items)):  # type: ignore[misc]
        reads = 0

        def __getitem__(self, index: Any) -> Any:
            Counting.reads += 1
            return super().__getitem__(index)

        def __iter__(self) -> Iterator[Any]:
            for record in super().__iter__():
                Counting.reads += 1
                yield record

    log.items = Counting(log.items)
    got = log.get(start, 5)
    assert [int(r["dynamodb"]["SequenceNumber"]) for r in got] == [r.sequence for r in list.__iter__(log.items)][990:995]
    assert Counting.reads <= 12  # a bisection and the five records, not the 990 before them


# ---- shards ---------------------------------------------------------------------------------------


def test_a_split_shard_closes_and_its_children_take_the_later_writes_by_key(
    clients: tuple[Any, Any], emulation: DynamoDBStreamsEmulation, answers: list[tuple[str, Any]]
) -> None:
    ddb, streams = clients
    arn = make_table(ddb)
    for n in range(5):
        put(ddb, f"k{n}", round="1")
    [parent] = shards(streams, arn)

    children = emulation.split_shard("jobs")
    for n in range(40):
        put(ddb, f"k{n}", round="2")

    listed = shards(streams, arn)
    assert [s["ShardId"] for s in listed] == [parent["ShardId"], *children]
    closed = listed[0]["SequenceNumberRange"]
    assert closed["StartingSequenceNumber"] == parent["SequenceNumberRange"]["StartingSequenceNumber"] and "EndingSequenceNumber" in closed
    for child in listed[1:]:
        assert child["ParentShardId"] == parent["ShardId"] and "EndingSequenceNumber" not in child["SequenceNumberRange"]
        assert int(child["SequenceNumberRange"]["StartingSequenceNumber"]) > int(closed["EndingSequenceNumber"])
    assert shards(streams, arn, ShardFilter={"Type": "CHILD_SHARDS", "ShardId": parent["ShardId"]}) == listed[1:]
    assert [s["ShardId"] for s in shards(streams, arn, Limit=1)] == [s["ShardId"] for s in listed]  # one per page

    # the parent's records end at its EndingSequenceNumber, and reading it to the end gives no next iterator
    iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=parent["ShardId"], ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    answer = streams.get_records(ShardIterator=iterator)
    assert [r["dynamodb"]["NewImage"]["round"]["S"] for r in answer["Records"]] == ["1"] * 5
    assert answer["Records"][-1]["dynamodb"]["SequenceNumber"] == closed["EndingSequenceNumber"] and "NextShardIterator" not in answer
    by_child = {child: read_shard(streams, arn, child) for child in children}
    keys = {child: {r["dynamodb"]["Keys"]["pk"]["S"] for r in records} for child, records in by_child.items()}
    assert keys[children[0]] and keys[children[1]] and not keys[children[0]] & keys[children[1]]  # each key in one child
    assert keys[children[0]] | keys[children[1]] == {f"k{n}" for n in range(40)}
    put(ddb, "k1", round="3")  # the same key goes on in the same child
    home = next(child for child in children if "k1" in keys[child])
    assert read_shard(streams, arn, home)[-1]["dynamodb"]["NewImage"]["round"] == {"S": "3"}


def test_a_disabled_stream_stays_readable_and_enabling_again_makes_a_new_one(clients: tuple[Any, Any]) -> None:
    ddb, streams = clients
    arn = make_table(ddb)
    put(ddb, "a")
    ddb.update_table(TableName="jobs", StreamSpecification={"StreamEnabled": False})
    put(ddb, "b")  # no stream now

    description = streams.describe_stream(StreamArn=arn)["StreamDescription"]
    assert description["StreamStatus"] == "DISABLED"
    assert all("EndingSequenceNumber" in s["SequenceNumberRange"] for s in description["Shards"])
    assert [r["dynamodb"]["Keys"]["pk"]["S"] for r in read_all(streams, arn)] == ["a"]

    ddb.update_table(TableName="jobs", StreamSpecification={"StreamEnabled": True, "StreamViewType": "KEYS_ONLY"})
    again = ddb.describe_table(TableName="jobs")["Table"]["LatestStreamArn"]
    put(ddb, "c")
    assert again != arn
    assert [s["StreamArn"] for s in streams.list_streams(TableName="jobs")["Streams"]] == [arn, again]
    assert [r["dynamodb"]["Keys"]["pk"]["S"] for r in read_all(streams, again)] == ["c"]


def test_list_streams_pages(clients: tuple[Any, Any], answers: list[tuple[str, Any]]) -> None:
    ddb, streams = clients
    arns = [make_table(ddb, name=f"table{n}") for n in range(3)]
    first = streams.list_streams(Limit=2)
    assert [s["StreamArn"] for s in first["Streams"]] == arns[:2] and first["LastEvaluatedStreamArn"] == arns[1]
    rest = streams.list_streams(Limit=2, ExclusiveStartStreamArn=first["LastEvaluatedStreamArn"])
    assert [s["StreamArn"] for s in rest["Streams"]] == arns[2:] and "LastEvaluatedStreamArn" not in rest


# ---- through the local stack's endpoint -------------------------------------------------------------


def test_the_stream_through_the_local_endpoint(endpoint: Any, emulation: DynamoDBStreamsEmulation) -> None:
    ddb, streams = endpoint_client("dynamodb", endpoint), endpoint_client("dynamodbstreams", endpoint)
    seen: list[str] = []

    def check(http_response: Any, model: Any, **_: Any) -> None:
        _check_shape(json.loads(http_response.content), model.output_shape, model.name)
        seen.append(model.name)

    streams.meta.events.register("after-call.dynamodbstreams", check)
    arn = make_table(ddb, name="served")
    ddb.put_item(TableName="served", Item={"pk": {"S": "a"}, "state": {"S": "NEW"}})
    ddb.update_item(  # changes nothing: no record
        TableName="served",
        Key={"pk": {"S": "a"}},
        UpdateExpression="SET #s = :s",
        ExpressionAttributeNames={"#s": "state"},
        ExpressionAttributeValues={":s": {"S": "NEW"}},
    )
    ddb.delete_item(TableName="served", Key={"pk": {"S": "a"}})
    [parent] = shards(streams, arn)
    children = emulation.split_shard("served")
    ddb.put_item(TableName="served", Item={"pk": {"S": "b"}})

    records = read_all(streams, arn)
    assert [(r["eventName"], r["dynamodb"]["Keys"]["pk"]["S"]) for r in records] == [("INSERT", "a"), ("REMOVE", "a"), ("INSERT", "b")]
    assert [s["ParentShardId"] for s in shards(streams, arn)[1:]] == [parent["ShardId"]] * 2 and len(children) == 2
    assert arn in [s["StreamArn"] for s in streams.list_streams()["Streams"]]
    assert {"DescribeStream", "GetShardIterator", "GetRecords", "ListStreams"} <= set(seen)
