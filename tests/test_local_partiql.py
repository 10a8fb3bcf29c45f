"""PartiQL's ExecuteStatement and BatchExecuteStatement on the local stack (bulk_restore_cli.local.partiql).

Through a plain boto3 client on in-process moto with the DynamoDB layer installed; botocore parses
every answer. What is asserted is DynamoDB's documented behaviour (developer guide's PartiQL pages,
API reference of BatchExecuteStatement / ExecuteStatement / BatchStatementError, botocore's model):

- INSERT fails with DuplicateItem when the key exists; UPDATE never creates an item and fails its
  WHERE condition alone; DELETE's condition is a DeleteItem condition; each batch statement
  succeeds or fails on its own, answered in order;
- a batch of more than 25 statements, a batch mixing reads and writes and a batch naming one item
  twice are refused as a whole, before anything is written;
- parameters of every AttributeValue type are stored as given;
- a statement behaves as the UpdateItem / PutItem / DeleteItem with the same condition does
  (random sequences of writes leave the same tables and the same outcomes);
- so do the INSERTs and simple UPDATEs the layer applies directly (its fast path), on tables with a
  stream: the same outcomes, items and stream records (event names, keys, images, sizes; sequence
  numbers increasing), through the streams layer and through moto's own shard;
- a statement costs what its item costs: no table is read whole, and a batch takes about as long
  on 50,000 items as on 1,000.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from moto import mock_aws

from bulk_restore_cli.local import partiql
from bulk_restore_cli.local.dynamodb import DynamoDBEmulation, emulation_active, plain_moto
from support.counting import counting

TABLE = "jobs"
REGION = "us-east-1"
ACCOUNT = "123456789012"


@pytest.fixture(autouse=True)
def emulation() -> Iterator[DynamoDBEmulation]:
    with DynamoDBEmulation() as installed:
        yield installed


@pytest.fixture
def client() -> Iterator[Any]:
    with mock_aws():
        made = _client()
        _make_table(made)
        yield made


def _client() -> Any:
    config = Config(retries={"max_attempts": 1})
    return boto3.session.Session(region_name=REGION).client("dynamodb", config=config)


def _make_table(client: Any, name: str = TABLE, stream: bool = False) -> None:
    extra: dict[str, Any] = {"StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}} if stream else {}
    client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        **extra,
    )


def S(value: str) -> dict[str, Any]:
    return {"S": value}


def N(value: int | str) -> dict[str, Any]:
    return {"N": str(value)}


def key(pk: str, sk: str) -> dict[str, Any]:
    return {"pk": S(pk), "sk": S(sk)}


def _get(client: Any, pk: str, sk: str, table: str = TABLE) -> dict[str, Any] | None:
    return client.get_item(TableName=table, Key=key(pk, sk), ConsistentRead=True).get("Item")


def _put(client: Any, pk: str, sk: str, **attrs: Any) -> dict[str, Any]:
    item = {**key(pk, sk), **attrs}
    client.put_item(TableName=TABLE, Item=item)
    return item


def _batch(client: Any, *statements: dict[str, Any], **kwargs: Any) -> Any:
    answer = client.batch_execute_statement(Statements=list(statements), **kwargs)
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 200
    return answer


def _error(call: Any) -> ClientError:
    with pytest.raises(ClientError) as caught:
        call()
    return caught.value


INSERT = f"INSERT INTO \"{TABLE}\" VALUE {{'pk': ?, 'sk': ?, 'state': ?}}"
MOVE = f'UPDATE "{TABLE}" SET "state" = ? SET updated_at = ? WHERE "pk" = ? AND "sk" = ? AND "state" = ?'


def insert(pk: str, sk: str, state: str = "RESTORING") -> dict[str, Any]:
    return {"Statement": INSERT, "Parameters": [S(pk), S(sk), S(state)]}


def move(pk: str, sk: str, old: bool = True) -> dict[str, Any]:
    statement: dict[str, Any] = {"Statement": MOVE, "Parameters": [S("RESTORED"), S("now"), S(pk), S(sk), S("RESTORING")]}
    if old:
        statement["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
    return statement


# ---- INSERT ------------------------------------------------------------------------------------


def test_inserts_succeed_alone_and_an_existing_key_is_a_duplicate_item(client: Any) -> None:
    existing = _put(client, "JOB#1", "b", state=S("RESTORED"), note=S("kept"))
    answer = _batch(client, insert("JOB#1", "a"), insert("JOB#1", "b"), insert("JOB#1", "c"))
    assert answer["Responses"] == [
        {"TableName": TABLE},
        {"TableName": TABLE, "Error": {"Code": "DuplicateItem", "Message": "Duplicate primary key exists in table"}},
        {"TableName": TABLE},
    ]
    assert _get(client, "JOB#1", "a") == {**key("JOB#1", "a"), "state": S("RESTORING")}
    assert _get(client, "JOB#1", "b") == existing  # not replaced
    assert _get(client, "JOB#1", "c") == {**key("JOB#1", "c"), "state": S("RESTORING")}


def test_an_insert_by_execute_statement_of_an_existing_key_is_a_duplicate_item_exception(client: Any) -> None:
    answer = client.execute_statement(**insert("JOB#1", "a"))
    assert answer["Items"] == []
    error = _error(lambda: client.execute_statement(**insert("JOB#1", "a", "RESTORED")))
    assert error.response["Error"] == {"Code": "DuplicateItemException", "Message": "Duplicate primary key exists in table"}
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert _get(client, "JOB#1", "a")["state"] == S("RESTORING")


def test_literals_of_every_kind_are_stored_as_their_attribute_values(client: Any) -> None:
    statement = (
        "insert into jobs value {'pk': 'JOB#lit', 'sk': 'it''s', 'n': 5, 'neg': -2.5, 'e': 1e3, 'yes': TRUE, 'no': false, "
        "'nothing': NULL, 'l': [1, 'two', [true]], 'm': {'k': 'v', 'inner': {'x': 0}}, 'ss': <<'a', 'b'>>, 'ns': <<1, 2>>, 'empty': ''}"
    )
    assert _batch(client, {"Statement": statement})["Responses"] == [{"TableName": TABLE}]
    assert _get(client, "JOB#lit", "it's") == {
        **key("JOB#lit", "it's"),
        "n": N(5),
        "neg": N("-2.5"),
        "e": N("1e3"),
        "yes": {"BOOL": True},
        "no": {"BOOL": False},
        "nothing": {"NULL": True},
        "l": {"L": [N(1), S("two"), {"L": [{"BOOL": True}]}]},
        "m": {"M": {"k": S("v"), "inner": {"M": {"x": N(0)}}}},
        "ss": {"SS": ["a", "b"]},
        "ns": {"NS": ["1", "2"]},
        "empty": S(""),
    }


EVERY_TYPE = {
    "s": S("naïve ☃ 'quoted'"),
    "n": N("-12.50"),
    "big": N("12345678901234567890123456789012345678"),
    "b": {"B": b"\x00\xffbinary"},
    "ss": {"SS": ["x", "y"]},
    "ns": {"NS": ["1", "2.5"]},
    "bs": {"BS": [b"one", b"\x01two"]},
    "m": {"M": {"k": {"NULL": True}, "b": {"B": b"\x02"}, "e": {"M": {}}}},
    "l": {"L": [S("null"), N(1), {"M": {"deep": {"BOOL": False}}}, {"L": []}]},
    "nothing": {"NULL": True},
    "yes": {"BOOL": True},
}


def test_parameters_of_every_attribute_value_type_round_trip(client: Any) -> None:
    names = ", ".join(f"'{name}': ?" for name in EVERY_TYPE)
    statement = {
        "Statement": f"INSERT INTO jobs VALUE {{'pk': ?, 'sk': ?, {names}}}",
        "Parameters": [S("JOB#t"), S("a"), *EVERY_TYPE.values()],
    }
    assert _batch(client, statement)["Responses"] == [{"TableName": TABLE}]
    stored = {**key("JOB#t", "a"), **EVERY_TYPE}
    assert _get(client, "JOB#t", "a") == stored
    select = {"Statement": "SELECT * FROM jobs WHERE pk = ? AND sk = ?", "Parameters": [S("JOB#t"), S("a")]}
    assert _batch(client, select)["Responses"] == [{"TableName": TABLE, "Item": stored}]
    assert client.execute_statement(**select)["Items"] == [stored]

    # and as values an UPDATE sets, and a condition compares
    sets = " ".join(f'SET "{name}" = ?' for name in EVERY_TYPE)
    where = " AND ".join(f'"{name}" = ?' for name in EVERY_TYPE)
    update = {
        "Statement": f"UPDATE jobs {sets} WHERE pk = ? AND sk = ? AND {where}",
        "Parameters": [*EVERY_TYPE.values(), S("JOB#t"), S("a"), *EVERY_TYPE.values()],
    }
    assert _batch(client, update)["Responses"] == [{"TableName": TABLE}]
    assert _get(client, "JOB#t", "a") == stored


# ---- UPDATE ------------------------------------------------------------------------------------


def test_conditional_updates_move_the_items_that_match_and_fail_alone_on_the_others(client: Any) -> None:
    restoring = [_put(client, "JOB#1#O#00", f"r{i}", state=S("RESTORING")) for i in range(3)]
    restored = _put(client, "JOB#1#O#00", "done", state=S("RESTORED"), updated_at=S("before"), blob={"B": b"\x00\xff"})
    failed = _put(client, "JOB#1#O#00", "failed", state=S("FAILED"))
    answer = _batch(
        client,
        move("JOB#1#O#00", "r0"),
        move("JOB#1#O#00", "done"),
        move("JOB#1#O#00", "r1"),
        move("JOB#1#O#00", "failed", old=False),
        move("JOB#1#O#00", "r2", old=False),
    )
    failure = {"Code": "ConditionalCheckFailed", "Message": "The conditional request failed"}
    assert answer["Responses"] == [
        {"TableName": TABLE},
        {"TableName": TABLE, "Error": {**failure, "Item": restored}},  # ALL_OLD: the item as it is
        {"TableName": TABLE},
        {"TableName": TABLE, "Error": failure},  # no ALL_OLD, no item
        {"TableName": TABLE},
    ]
    for item in restoring:
        assert _get(client, "JOB#1#O#00", item["sk"]["S"]) == {**item, "state": S("RESTORED"), "updated_at": S("now")}
    assert _get(client, "JOB#1#O#00", "done") == restored
    assert _get(client, "JOB#1#O#00", "failed") == failed


def test_an_update_of_a_missing_item_fails_and_creates_nothing(client: Any) -> None:
    answer = _batch(client, move("JOB#1", "missing"))
    assert answer["Responses"] == [
        {"TableName": TABLE, "Error": {"Code": "ConditionalCheckFailed", "Message": "The conditional request failed"}}
    ]
    # even with no condition beyond the key
    plain = {"Statement": "UPDATE jobs SET a = 1 WHERE pk = 'JOB#1' AND sk = 'missing'", "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}
    assert _batch(client, plain)["Responses"][0]["Error"]["Code"] == "ConditionalCheckFailed"
    error = _error(lambda: client.execute_statement(**plain))
    assert error.response["Error"] == {"Code": "ConditionalCheckFailedException", "Message": "The conditional request failed"}
    assert "Item" not in error.response
    assert _get(client, "JOB#1", "missing") is None
    assert client.scan(TableName=TABLE)["Count"] == 0


def test_execute_statement_fails_the_whole_call_on_its_condition(client: Any) -> None:
    stored = _put(client, "JOB#1", "a", state=S("RESTORED"))
    error = _error(lambda: client.execute_statement(**move("JOB#1", "a")))
    assert error.response["Error"] == {"Code": "ConditionalCheckFailedException", "Message": "The conditional request failed"}
    assert error.response["Item"] == stored  # ReturnValuesOnConditionCheckFailure=ALL_OLD
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    without = move("JOB#1", "a", old=False)
    assert "Item" not in _error(lambda: client.execute_statement(**without)).response
    _put(client, "JOB#1", "b", state=S("RESTORING"))
    assert client.execute_statement(**move("JOB#1", "b"))["Items"] == []
    assert _get(client, "JOB#1", "b")["state"] == S("RESTORED")


def test_numbers_take_arithmetic_and_remove_drops_attributes(client: Any) -> None:
    _put(client, "JOB#1", "COUNT", total=N(10), restored=N(0), reason=S("x"))
    statement = {
        "Statement": "UPDATE jobs SET restored = restored + ? SET total = total - 1 SET seen = if_not_exists(seen, ?) REMOVE reason "
        "WHERE pk = ? AND sk = ? AND total >= ?",
        "Parameters": [N(3), N(7), S("JOB#1"), S("COUNT"), N(10)],
    }
    assert _batch(client, statement)["Responses"] == [{"TableName": TABLE}]
    assert _get(client, "JOB#1", "COUNT") == {**key("JOB#1", "COUNT"), "total": N(9), "restored": N(3), "seen": N(7)}
    # total is 9 now: the condition fails, nothing moves
    assert _batch(client, statement)["Responses"][0]["Error"]["Code"] == "ConditionalCheckFailed"
    assert _get(client, "JOB#1", "COUNT")["restored"] == N(3)
    # arithmetic on an attribute the item lacks: the ValidationError UpdateItem gives
    missing = {"Statement": "UPDATE jobs SET nothing = nothing + 1 WHERE pk = 'JOB#1' AND sk = 'COUNT'"}
    (entry,) = _batch(client, missing)["Responses"]
    api = _error(
        lambda: client.update_item(
            TableName=TABLE,
            Key=key("JOB#1", "COUNT"),
            UpdateExpression="SET nothing = nothing + :one",
            ExpressionAttributeValues={":one": N(1)},
        )
    )
    assert entry == {"Error": {"Code": "ValidationError", "Message": api.response["Error"]["Message"]}}


def test_conditions_read_as_dynamodb_reads_them(client: Any) -> None:
    _put(client, "JOB#c", "a", state=S("RESTORING"), n=N(5), tags={"SS": ["x"]}, name=S("photo.jpg"))
    cases = {
        "state <> 'RESTORED'": True,
        "state != 'RESTORING'": False,
        "n BETWEEN 1 AND 5": True,
        "n NOT BETWEEN 1 AND 5": False,
        "state IN ('FAILED', 'RESTORING')": True,
        "state IN ['FAILED']": False,
        "state NOT IN ('FAILED')": True,
        "reason IS MISSING": True,
        "reason IS NOT MISSING": False,
        "attribute_exists(n) AND attribute_not_exists(reason)": True,
        "begins_with(name, 'photo') AND contains(tags, 'x')": True,
        "attribute_type(n, 'S')": False,
        "size(name) > 8": True,
        "NOT state = 'RESTORING' OR (n < 3 AND n > 1)": False,
        "(n < 3 OR n >= 5) AND NOT (state = 'FAILED')": True,
        '"state" = \'RESTORING\' and "n" = 5': True,
    }
    for condition, holds in cases.items():
        statement = {"Statement": f"update \"{TABLE}\" set touched = true where pk = 'JOB#c' And sk = 'a' AND ({condition})"}
        (entry,) = _batch(client, statement)["Responses"]
        assert ("Error" not in entry) is holds, (condition, entry)
        if "size" in condition:
            continue  # moto's size() of an attribute an item lacks raises (a 500), by DeleteItem too
        key_last = {"Statement": f"DELETE FROM {TABLE} WHERE ({condition}) AND sk = 'zz' AND pk = 'JOB#c'"}
        (deleted,) = _batch(client, key_last)["Responses"]  # the key found after the condition; no such item
        assert deleted.get("Error", {}).get("Code", "ok") in ("ok", "ConditionalCheckFailed"), condition


# ---- DELETE ------------------------------------------------------------------------------------


def test_delete_with_a_condition_is_a_conditional_delete_item(client: Any) -> None:
    _put(client, "JOB#1", "done", state=S("RESTORED"))
    kept = _put(client, "JOB#1", "busy", state=S("RESTORING"))
    statement = "DELETE FROM jobs WHERE pk = ? AND sk = ? AND state = ?"
    answer = _batch(
        client,
        {"Statement": statement, "Parameters": [S("JOB#1"), S("done"), S("RESTORED")]},
        {"Statement": statement, "Parameters": [S("JOB#1"), S("busy"), S("RESTORED")], "ReturnValuesOnConditionCheckFailure": "ALL_OLD"},
        {"Statement": statement, "Parameters": [S("JOB#1"), S("gone"), S("RESTORED")]},  # the condition on an absent item: false
        {"Statement": "DELETE FROM jobs WHERE pk = 'JOB#1' AND sk = 'never'"},  # no condition: deleting nothing succeeds
    )
    failure = {"Code": "ConditionalCheckFailed", "Message": "The conditional request failed"}
    assert answer["Responses"] == [
        {"TableName": TABLE},
        {"TableName": TABLE, "Error": {**failure, "Item": kept}},
        {"TableName": TABLE, "Error": failure},
        {"TableName": TABLE},
    ]
    assert _get(client, "JOB#1", "done") is None
    assert _get(client, "JOB#1", "busy") == kept
    # the same absent item by DeleteItem with the same condition
    api = _error(
        lambda: client.delete_item(
            TableName=TABLE,
            Key=key("JOB#1", "gone"),
            ConditionExpression="#s = :s",
            ExpressionAttributeNames={"#s": "state"},
            ExpressionAttributeValues={":s": S("RESTORED")},
        )
    )
    assert api.response["Error"]["Code"] == "ConditionalCheckFailedException"


# ---- batches refused whole ---------------------------------------------------------------------


def test_more_than_25_statements_are_refused_and_25_are_run(client: Any) -> None:
    error = _error(lambda: client.batch_execute_statement(Statements=[insert("JOB#1", f"{i:02d}") for i in range(26)]))
    assert error.response["Error"]["Code"] == "ValidationException"
    assert (
        "at 'statements' failed to satisfy constraint: Member must have length less than or equal to 25"
        in error.response["Error"]["Message"]
    )
    assert client.scan(TableName=TABLE)["Count"] == 0
    answer = _batch(client, *(insert("JOB#1", f"{i:02d}") for i in range(25)))
    assert answer["Responses"] == [{"TableName": TABLE}] * 25
    assert client.scan(TableName=TABLE)["Count"] == 25


def test_reads_and_writes_cannot_share_a_batch(client: Any) -> None:
    select = {"Statement": "SELECT * FROM jobs WHERE pk = ? AND sk = ?", "Parameters": [S("JOB#1"), S("b")]}
    error = _error(lambda: client.batch_execute_statement(Statements=[insert("JOB#1", "a"), select]))
    assert error.response["Error"] == {
        "Code": "ValidationException",
        "Message": "Read and write requests together in the same batch is not supported.",
    }
    assert client.scan(TableName=TABLE)["Count"] == 0


def test_a_batch_naming_one_item_twice_is_refused_before_anything_is_written(client: Any) -> None:
    _put(client, "JOB#1", "a", state=S("RESTORING"))
    error = _error(lambda: client.batch_execute_statement(Statements=[insert("JOB#1", "new"), move("JOB#1", "a"), move("JOB#1", "a")]))
    assert error.response["Error"] == {"Code": "ValidationException", "Message": "Provided list of item keys contains duplicates"}
    assert _get(client, "JOB#1", "new") is None
    assert _get(client, "JOB#1", "a")["state"] == S("RESTORING")
    # the same item by parameters and by literals, by INSERT and DELETE: still one item
    delete = {"Statement": "DELETE FROM jobs WHERE sk = 'new' AND pk = 'JOB#1'"}
    assert (
        _error(lambda: client.batch_execute_statement(Statements=[insert("JOB#1", "new"), delete])).response["Error"]["Code"]
        == "ValidationException"
    )
    # reads too
    select = {"Statement": "SELECT * FROM jobs WHERE pk = ? AND sk = ?", "Parameters": [S("JOB#1"), S("a")]}
    assert _error(lambda: client.batch_execute_statement(Statements=[select, select])).response["Error"]["Code"] == "ValidationException"
    # the same sort key under another partition is another item
    assert _batch(client, insert("JOB#1", "x"), insert("JOB#2", "x"))["Responses"] == [{"TableName": TABLE}] * 2


# ---- statements refused alone ------------------------------------------------------------------


def test_invalid_statements_fail_alone_with_dynamodb_s_messages(client: Any) -> None:
    _put(client, "JOB#1", "a", state=S("RESTORING"))
    statements = [
        {"Statement": INSERT, "Parameters": [S("JOB#1"), S("b")]},
        {"Statement": INSERT, "Parameters": [S("JOB#1"), S("b"), S("x"), S("extra")]},
        {"Statement": "INSERT INTO \"nowhere\" VALUE {'pk': ?, 'sk': ?}", "Parameters": [S("JOB#1"), S("c")]},
        {"Statement": "UPDATE jobs SET a = 1 WHERE pk = ?", "Parameters": [S("JOB#1")]},
        {"Statement": "UPDATE jobs SET a = 1 WHERE pk = 'JOB#1' AND (sk = 'a' OR sk = 'b')"},
        {"Statement": "DELETE FROM jobs WHERE pk = ? AND sk = ?", "Parameters": [S("JOB#1"), N(1)]},
        {"Statement": "DELETE FROM jobs WHERE pk = ? AND sk = ?", "Parameters": [S("JOB#1"), {"BOOL": True}]},
        {"Statement": "UPDATE jobs SET a = 1 WHERE pk = 'JOB#1' AND sk = 'a' AND pk = 'JOB#2'"},
        {"Statement": "INSERT INTO jobs VALUE {'pk': 'JOB#1', 'state': 'x'}"},
        {"Statement": "INSERT INTO jobs VALUE {'pk': 'JOB#1', 'sk': 5}"},
        {"Statement": "INSERT INTO jobs VALUE {'pk': 'JOB#1', 'sk': ''}"},
        {"Statement": "UPDATE jobs SET pk = 'other' WHERE pk = 'JOB#1' AND sk = 'a'"},
        insert("JOB#1", "ok"),
    ]
    responses = _batch(client, *statements)["Responses"]
    messages = [r["Error"]["Message"] if "Error" in r else None for r in responses]
    assert [r.get("Error", {}).get("Code") for r in responses] == ["ValidationError"] * 2 + ["ResourceNotFound"] + [
        "ValidationError"
    ] * 9 + [None]
    assert messages[:2] == ["Number of parameters in request and statement don't match."] * 2
    assert responses[2] == {"TableName": "nowhere", "Error": {"Code": "ResourceNotFound", "Message": "Requested resource not found"}}
    assert messages[3:5] == ["Where clause does not contain a mandatory equality on all key attributes"] * 2
    assert messages[5] == "Key attribute's data type should match its data type in table's schema: Key sk"
    assert messages[6] == "Key value must be of type S, N, or B. Key name: sk, Key type: BOOL"
    assert messages[7] == "Multiple conditions on same key pk. Only single item Update/Insert/Delete are supported"
    assert messages[8] == "Key attribute should be present in the item: Key sk"
    assert messages[9] == "Key attribute's data type should match its data type in table's schema: Key sk"
    assert "empty string" in messages[10]
    assert "Cannot update attribute pk" in messages[11]
    assert all("TableName" not in r for r, m in zip(responses, messages, strict=True) if m and r["Error"]["Code"] == "ValidationError")
    assert responses[-1] == {"TableName": TABLE}
    assert _get(client, "JOB#1", "ok") is not None and _get(client, "JOB#1", "a") == {**key("JOB#1", "a"), "state": S("RESTORING")}


def test_execute_statement_refuses_with_the_matching_exception(client: Any) -> None:
    count = _error(lambda: client.execute_statement(Statement=INSERT, Parameters=[S("JOB#1")]))
    assert count.response["Error"] == {
        "Code": "ValidationException",
        "Message": "Number of parameters in request and statement don't match.",
    }
    unknown = _error(lambda: client.execute_statement(Statement="DELETE FROM nowhere WHERE pk = 'a' AND sk = 'b'"))
    assert unknown.response["Error"] == {"Code": "ResourceNotFoundException", "Message": "Requested resource not found"}
    partial = _error(lambda: client.execute_statement(Statement="DELETE FROM jobs WHERE pk = 'a'"))
    assert partial.response["Error"]["Message"] == "Where clause does not contain a mandatory equality on all key attributes"


# ---- reads -------------------------------------------------------------------------------------


def test_a_batch_of_reads_answers_each_item_or_none(client: Any) -> None:
    stored = _put(client, "JOB#1", "a", state=S("RESTORED"))
    select = 'SELECT * FROM "jobs" WHERE pk = ? AND sk = ?'
    answer = _batch(
        client,
        {"Statement": select, "Parameters": [S("JOB#1"), S("a")]},
        {"Statement": select, "Parameters": [S("JOB#1"), S("absent")], "ConsistentRead": True},
        {"Statement": "SELECT * FROM jobs WHERE pk = 'JOB#1' AND sk = 'b' AND state = 'x'"},
        {"Statement": "SELECT * FROM jobs WHERE pk = 'JOB#1' AND sk > 'a'"},
        {"Statement": select, "Parameters": [S("JOB#1"), S("c")]},
    )
    refused = {
        "Error": {
            "Code": "ValidationError",
            "Message": "Select statements within BatchExecuteStatement must specify the primary key in the where clause.",
        }
    }
    assert answer["Responses"] == [{"TableName": TABLE, "Item": stored}, {"TableName": TABLE}, refused, refused, {"TableName": TABLE}]
    # ExecuteStatement: a key and a filter
    assert client.execute_statement(Statement="SELECT * FROM jobs WHERE pk = 'JOB#1' AND sk = 'a' AND state = 'RESTORED'")["Items"] == [
        stored
    ]
    assert client.execute_statement(Statement="SELECT * FROM jobs WHERE pk = 'JOB#1' AND sk = 'a' AND state = 'FAILED'")["Items"] == []


# ---- capacity ----------------------------------------------------------------------------------


def test_consumed_capacity_is_what_each_item_costs(client: Any) -> None:
    _make_table(client, "other")
    _put(client, "JOB#1", "a", state=S("RESTORED"))
    big = {"Statement": "INSERT INTO jobs VALUE {'pk': 'JOB#1', 'sk': 'big', 'blob': ?}", "Parameters": [S("x" * 2500)]}  # 2.5 KB: 3 units
    answer = _batch(
        client,
        insert("JOB#1", "b"),  # 1
        big,  # 3
        {"Statement": "INSERT INTO other VALUE {'pk': 'x', 'sk': 'y'}"},  # 1, on the other table
        insert("JOB#1", "a"),  # duplicate: a failed conditional write still consumes, by the existing item: 1
        ReturnConsumedCapacity="TOTAL",
    )
    assert answer["ConsumedCapacity"] == [{"TableName": TABLE, "CapacityUnits": 5.0}, {"TableName": "other", "CapacityUnits": 1.0}]
    assert "ConsumedCapacity" not in _batch(client, insert("JOB#1", "c"))
    reads = _batch(
        client,
        {"Statement": "SELECT * FROM jobs WHERE pk = 'JOB#1' AND sk = 'big'"},  # 0.5 per 4 KB
        {"Statement": "SELECT * FROM jobs WHERE pk = 'JOB#1' AND sk = 'a'", "ConsistentRead": True},  # 1 per 4 KB
        ReturnConsumedCapacity="INDEXES",
    )
    assert reads["ConsumedCapacity"] == [{"TableName": TABLE, "CapacityUnits": 1.5, "Table": {"CapacityUnits": 1.5}}]
    single = client.execute_statement(**insert("JOB#1", "d"), ReturnConsumedCapacity="TOTAL")
    assert single["ConsumedCapacity"] == {"TableName": TABLE, "CapacityUnits": 1.0}


# ---- the same backend paths as the item operations ---------------------------------------------


@pytest.mark.parametrize("layer", [False, True], ids=["moto-shard", "streams-layer"])
def test_an_update_that_changes_nothing_writes_the_records_update_item_writes(layer: bool) -> None:
    """moto's own shard writes a MODIFY for it, the streams layer none (as DynamoDB): a statement
    writes exactly what UpdateItem writes, either way."""
    from moto.dynamodb.models import dynamodb_backends

    from bulk_restore_cli.local import dynamodb_streams
    from bulk_restore_cli.local.dynamodb_streams import DynamoDBStreamsEmulation

    streams = DynamoDBStreamsEmulation()
    with mock_aws():
        if layer:
            streams.install()
        try:
            client = _client()
            _make_table(client, stream=True)
            _put(client, "JOB#1", "a", state=S("RESTORED"))
            shard = dynamodb_backends[ACCOUNT][REGION].tables[TABLE].stream_shard
            before = len(shard.items)
            client.update_item(
                TableName=TABLE,
                Key=key("JOB#1", "a"),
                UpdateExpression="SET #s = :s",
                ExpressionAttributeNames={"#s": "state"},
                ExpressionAttributeValues={":s": S("RESTORED")},
            )
            by_api = [_record(r) for r in shard.items[before:]]
            before = len(shard.items)
            _batch(client, {"Statement": "UPDATE jobs SET state = 'RESTORED' WHERE pk = 'JOB#1' AND sk = 'a' AND state = 'RESTORED'"})
            by_statement = [_record(r) for r in shard.items[before:]]
            # (a local stack of another test in this process may hold the layer installed meanwhile)
            layered = dynamodb_streams.installed()
        finally:
            streams.uninstall()
    assert by_statement == by_api
    assert len(by_api) == (0 if layered else 1)
    assert layered or not layer


def _record(record: Any) -> dict[str, Any]:
    """A stream record as stored, without what differs between two writes: its ID, time and number,
    and moto's SizeBytes (the length of the record's JSON text, its timestamp included, so it varies
    with the clock; the streams layer's own sizes are compared through the stream API)."""
    body = json.loads(json.dumps(record.to_json(), default=str))
    body.pop("eventID")
    for name in ("ApproximateCreationDateTime", "SequenceNumber", "SizeBytes"):
        body["dynamodb"].pop(name)
    return dict(body)


def test_statements_outside_the_subset_go_to_moto_unchanged(client: Any) -> None:
    for i in range(3):
        _put(client, "JOB#1", f"{i}", state=S("RESTORING"))

    def answers() -> list[Any]:
        found = []
        for statement in (
            "SELECT * FROM jobs",
            "SELECT * FROM jobs WHERE pk = 'JOB#1'",
            "SELECT state FROM jobs WHERE pk = 'JOB#1' AND sk = '1'",
        ):
            answer = client.execute_statement(Statement=statement)
            found.append(sorted(answer["Items"], key=str))
        return found

    ours = answers()
    with plain_moto():
        assert not partiql.installed()
        theirs = answers()
    assert partiql.installed()
    assert ours == theirs and len(ours[0]) == 3


def test_the_layer_installs_and_uninstalls_with_the_dynamodb_layer() -> None:
    assert emulation_active() and partiql.installed()
    with plain_moto():
        assert not partiql.installed()
    assert partiql.installed()


# ---- cost --------------------------------------------------------------------------------------


def _seed(count: int) -> None:
    """``count`` object items over 16 partitions, straight into moto's table."""
    from moto.dynamodb.models import dynamodb_backends
    from moto.dynamodb.models.dynamo_type import DynamoType, Item

    table = dynamodb_backends[ACCOUNT][REGION].tables[TABLE]
    state = {"S": "RESTORING"}
    for i in range(count):
        pk, sk = S(f"JOB#big#O#{i % 16:02d}"), S(f"{i:032x}")
        hash_key, range_key = DynamoType(pk), DynamoType(sk)
        table.items[hash_key][range_key] = Item(hash_key, range_key, {"pk": pk, "sk": sk, "state": state})


_rounds = itertools.count()


def _batch_seconds(client: Any, rounds: int = 15) -> float:
    """The shortest time of one batch of 25 statements (inserts, then conditional updates of the same
    items): the least disturbed by whatever else the machine runs."""
    times = []
    for _ in range(rounds):
        r = next(_rounds)
        refs = [f"t{r:05d}-{i:02d}" for i in range(25)]
        inserts = [insert("JOB#1#O#00", ref) for ref in refs]
        moves = [move("JOB#1#O#00", ref) for ref in refs]
        began = time.perf_counter()
        _batch(client, *inserts)
        _batch(client, *moves)
        times.append(time.perf_counter() - began)
    return min(times)


def test_no_statement_reads_the_whole_table(client: Any) -> None:
    from moto.dynamodb.models.table import Table

    _seed(5_000)
    with counting(Table, "all_items") as reads:
        _batch_seconds(client, 2)
        client.execute_statement(Statement="SELECT * FROM jobs WHERE pk = 'JOB#big#O#00' AND sk = ?", Parameters=[S(f"{0:032x}")])
        client.execute_statement(**move("JOB#big#O#01", f"{1:032x}"))
    assert reads[0] == 0
    with plain_moto(), counting(Table, "all_items") as plain_reads:
        client.execute_statement(Statement="SELECT * FROM jobs WHERE pk = 'JOB#big#O#00' AND sk = ?", Parameters=[S(f"{0:032x}")])
    assert plain_reads[0] > 0  # moto's own PartiQL reads every table: the check above can see it


def test_a_batch_takes_as_long_on_50000_items_as_on_1000(client: Any) -> None:
    _seed(1_000)
    _batch_seconds(client, 3)  # warm up
    small = _batch_seconds(client)
    _seed(50_000)
    large = _batch_seconds(client)
    print(f"two batches of 25: {small * 1000:.1f} ms at 1,000 items, {large * 1000:.1f} ms at 50,000")
    assert large < 3 * small, (small, large)


# ---- PartiQL writes are the item operations' conditional writes -----------------------------------
#
# One random sequence of writes on four items, given twice: as PartiQL statements (batches of
# distinct items, or ExecuteStatement) on one table, and as PutItem / UpdateItem / DeleteItem with
# the ConditionExpression DynamoDB documents for each (INSERT: attribute_not_exists(pk); UPDATE:
# attribute_exists(pk) AND its WHERE condition; DELETE: its WHERE condition) on another. Both must
# succeed and fail together, with the same codes and ALL_OLD items, and leave the same items.

KEYS = [("a", "1"), ("a", "2"), ("b", "1"), ("b", "2")]
STATES = ["RESTORING", "RESTORED", "FAILED"]


class _Renderer:
    """A condition or update, as PartiQL (``?`` and its parameters) and as an expression (names, values)."""

    def __init__(self) -> None:
        self.parameters: list[dict[str, Any]] = []
        self.names: dict[str, str] = {}
        self.values: dict[str, Any] = {}

    def value(self, value: dict[str, Any]) -> tuple[str, str]:
        self.parameters.append(value)
        placeholder = f":p{len(self.values)}"
        self.values[placeholder] = value
        return "?", placeholder

    def name(self, name: str) -> tuple[str, str]:
        self.names[f"#{name}"] = name
        return f'"{name}"', f"#{name}"

    def condition(self, node: tuple[Any, ...]) -> tuple[str, str]:
        kind = node[0]
        if kind in ("AND", "OR"):
            (lq, le), (rq, re_) = self.condition(node[1]), self.condition(node[2])
            return f"({lq}) {kind} ({rq})", f"({le}) {kind} ({re_})"
        if kind == "NOT":
            q, e = self.condition(node[1])
            return f"NOT ({q})", f"NOT ({e})"
        if kind == "cmp":
            (nq, ne), (vq, ve) = self.name(node[2]), self.value(node[3])
            return f"{nq} {node[1]} {vq}", f"{ne} {node[1]} {ve}"
        if kind == "in":
            nq, ne = self.name(node[1])
            rendered = [self.value(v) for v in node[2]]
            return f"{nq} IN ({', '.join(q for q, _ in rendered)})", f"{ne} IN ({', '.join(e for _, e in rendered)})"
        if kind == "between":
            nq, ne = self.name(node[1])
            (lq, le), (hq, he) = self.value(node[2]), self.value(node[3])
            return f"{nq} BETWEEN {lq} AND {hq}", f"{ne} BETWEEN {le} AND {he}"
        if kind == "missing":
            nq, ne = self.name(node[1])
            return (f"{nq} IS MISSING", f"attribute_not_exists({ne})") if node[2] else (f"{nq} IS NOT MISSING", f"attribute_exists({ne})")
        raise AssertionError(kind)


def _conditions() -> Any:
    from hypothesis import strategies as st

    state = st.sampled_from(STATES).map(S)
    number = st.integers(0, 2).map(N)
    leaf = st.one_of(
        st.tuples(st.just("cmp"), st.sampled_from(["=", "<>"]), st.just("state"), state),
        st.tuples(st.just("cmp"), st.sampled_from(["<", "<=", ">", ">="]), st.just("n"), number),
        st.tuples(st.just("in"), st.just("state"), st.lists(state, min_size=1, max_size=2)),
        st.tuples(st.just("between"), st.just("n"), number, number),
        st.tuples(st.just("missing"), st.sampled_from(["tag", "n"]), st.booleans()),
    )
    return st.recursive(
        leaf,
        lambda inner: st.one_of(st.tuples(st.sampled_from(["AND", "OR"]), inner, inner), st.tuples(st.just("NOT"), inner)),
        max_leaves=3,
    )


def _writes() -> Any:
    from hypothesis import strategies as st

    # the shapes ``_statement`` and ``_by_api`` render: (kind, key, ..., literals, ALL_OLD)
    item_key = st.sampled_from(KEYS)
    action = st.one_of(
        st.tuples(st.just("set"), st.just("state"), st.sampled_from(STATES).map(S)),
        st.tuples(st.just("add"), st.integers(-1, 2).map(N)),
        st.tuples(st.just("set"), st.just("tag"), st.sampled_from(["x", "y"]).map(S)),
        st.tuples(st.just("remove"), st.sampled_from(["tag", "n"])),
    )
    actions = st.lists(action, min_size=1, max_size=3, unique_by=lambda a: "n" if a[0] == "add" else a[1])
    condition = st.none() | _conditions()
    return st.one_of(
        st.tuples(
            st.just("INSERT"), item_key, st.sampled_from(STATES).map(S), st.integers(0, 2).map(lambda n: [("n", N(n))]), st.just(False)
        ),
        st.tuples(st.just("UPDATE"), item_key, actions, condition, st.just(False), st.booleans()),
        st.tuples(st.just("DELETE"), item_key, condition, st.just(False), st.booleans()),
    )


class _LiteralRenderer(_Renderer):
    """The renderer, writing strings, numbers, booleans and NULL as PartiQL literals when asked, and
    a comparison with its value first ("rcmp")."""

    def __init__(self, literals: bool) -> None:
        super().__init__()
        self.literals = literals

    def value(self, value: dict[str, Any]) -> tuple[str, str]:
        kind, raw = next(iter(value.items()))
        if not self.literals or kind not in ("S", "N", "BOOL", "NULL") or len(str(raw)) > 100:
            return super().value(value)
        placeholder = f":p{len(self.values)}"
        self.values[placeholder] = value
        text = {"S": lambda: "'" + str(raw).replace("'", "''") + "'", "N": lambda: str(raw), "BOOL": lambda: str(raw).upper()}
        return text.get(kind, lambda: "NULL")(), placeholder

    def condition(self, node: tuple[Any, ...]) -> tuple[str, str]:
        if node[0] == "rcmp":
            (vq, ve), (nq, ne) = self.value(node[3]), self.name(node[2])
            return f"{vq} {node[1]} {nq}", f"{ve} {node[1]} {ne}"
        return super().condition(node)


def _statement(write: tuple[Any, ...], table: str) -> dict[str, Any]:
    kind, (pk, sk) = write[0], write[1]
    render = _LiteralRenderer(write[-1] if kind == "INSERT" else write[-2])
    if kind == "INSERT":
        members = [f"'{name}': {render.value(value)[0]}" for name, value in [("pk", S(pk)), ("sk", S(sk)), ("state", write[2]), *write[3]]]
        return _with_parameters({"Statement": f'INSERT INTO "{table}" VALUE {{{", ".join(members)}}}'}, render.parameters)
    parts = []
    if kind == "UPDATE":
        for action in write[2]:
            if action[0] == "set":
                parts.append(f'SET "{action[1]}" = {render.value(action[2])[0]}')
            elif action[0] == "add":
                parts.append(f'SET "n" = "n" + {render.value(action[1])[0]}')
            else:
                parts.append(f'REMOVE "{action[1]}"')
    where = f'"pk" = {render.value(S(pk))[0]} AND "sk" = {render.value(S(sk))[0]}'
    condition = write[3] if kind == "UPDATE" else write[2]
    if condition is not None:
        where += f" AND ({render.condition(condition)[0]})"
    head = f'UPDATE "{table}" {" ".join(parts)}' if kind == "UPDATE" else f'DELETE FROM "{table}"'
    statement = _with_parameters({"Statement": f"{head} WHERE {where}"}, render.parameters)
    if write[-1]:
        statement["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
    return statement


def _with_parameters(statement: dict[str, Any], parameters: list[dict[str, Any]]) -> dict[str, Any]:
    return statement | {"Parameters": parameters} if parameters else statement  # the model: none, or at least one


def _by_api(client: Any, write: tuple[Any, ...], table: str) -> tuple[str, dict[str, Any] | None]:
    kind, (pk, sk) = write[0], write[1]
    if kind == "INSERT":
        item = {**key(pk, sk), "state": write[2], **dict(write[3])}
        return _outcome(kind, lambda: client.put_item(TableName=table, Item=item, ConditionExpression="attribute_not_exists(pk)"))
    render = _LiteralRenderer(False)
    request: dict[str, Any] = {"TableName": table, "Key": key(pk, sk)}
    condition = write[3] if kind == "UPDATE" else write[2]
    rendered = render.condition(condition) if condition is not None else None
    if kind == "UPDATE":
        sets, removes = [], []
        for action in write[2]:
            if action[0] == "set":
                sets.append(f"{render.name(action[1])[1]} = {render.value(action[2])[1]}")
            elif action[0] == "add":
                sets.append(f"{render.name('n')[1]} = {render.name('n')[1]} + {render.value(action[1])[1]}")
            else:
                removes.append(render.name(action[1])[1])
        request["UpdateExpression"] = " ".join(
            p for p in (sets and "SET " + ", ".join(sets), removes and "REMOVE " + ", ".join(removes)) if p
        )
        request["ConditionExpression"] = f"attribute_exists(pk) AND ({rendered[1]})" if rendered else "attribute_exists(pk)"
        call = client.update_item
    else:
        if rendered:
            request["ConditionExpression"] = rendered[1]
        call = client.delete_item
    if write[-1]:
        request["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
    if render.names:
        request["ExpressionAttributeNames"] = render.names
    if render.values:
        request["ExpressionAttributeValues"] = render.values
    return _outcome(kind, lambda: call(**request))


def _outcome(kind: str, call: Any) -> tuple[str, dict[str, Any] | None]:
    try:
        call()
    except ClientError as exc:
        code = exc.response["Error"]["Code"]
        if code == "ConditionalCheckFailedException":
            return ("DuplicateItem" if kind == "INSERT" else "ConditionalCheckFailed"), exc.response.get("Item")
        return code.removesuffix("Exception").replace("Validation", "ValidationError"), None
    return "ok", None


def _run(client: Any, writes: list[tuple[Any, ...]], cuts: list[bool], single: bool, table: str) -> list[tuple[str, dict[str, Any] | None]]:
    """The writes as statements on ``table``, in batches (``cuts``; a batch of one by ExecuteStatement when
    ``single``): each statement's outcome, told as ``_by_api`` tells the item operations'."""
    outcomes: list[tuple[str, dict[str, Any] | None]] = []
    for batch in _batches(writes, cuts):
        if single and len(batch) == 1:
            outcomes.append(_outcome(batch[0][0], lambda b=batch: client.execute_statement(**_statement(b[0], table))))
            continue
        answer = _batch(client, *(_statement(w, table) for w in batch))
        for response in answer["Responses"]:
            error = response.get("Error")
            outcomes.append((error["Code"], error.get("Item")) if error else ("ok", None))
    return outcomes


def _batches(writes: list[tuple[Any, ...]], cuts: list[bool]) -> list[list[tuple[Any, ...]]]:
    """The writes in order, in batches of distinct items (a cut also ends a batch)."""
    batches: list[list[tuple[Any, ...]]] = []
    for write, cut in zip(writes, cuts, strict=False):
        if not batches or cut or any(w[1] == write[1] for w in batches[-1]):
            batches.append([])
        batches[-1].append(write)
    return batches


def _scan(client: Any, table: str) -> list[dict[str, Any]]:
    return sorted(client.scan(TableName=table, ConsistentRead=True)["Items"], key=lambda i: (i["pk"]["S"], i["sk"]["S"]))


def test_statements_write_what_the_item_operations_write() -> None:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    tables = itertools.count()

    start = st.one_of(st.none(), st.tuples(st.sampled_from(STATES), st.integers(0, 2), st.sampled_from([None, "x", "y"])))

    @settings(max_examples=200, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
    @given(
        st.lists(start, min_size=len(KEYS), max_size=len(KEYS)),
        st.lists(_writes(), min_size=1, max_size=14),
        st.lists(st.booleans(), min_size=14, max_size=14),
        st.booleans(),
    )
    def check(starts: list[Any], writes: list[tuple[Any, ...]], cuts: list[bool], single: bool) -> None:
        n = next(tables)
        statements_table, api_table = f"pq{n}", f"api{n}"
        for table in (statements_table, api_table):
            _make_table(client, table)
            for (pk, sk), first in zip(KEYS, starts, strict=True):
                if first is not None:
                    tag = {"tag": S(first[2])} if first[2] else {}
                    client.put_item(TableName=table, Item={**key(pk, sk), "state": S(first[0]), "n": N(first[1]), **tag})
        outcomes = _run(client, writes, cuts, single, statements_table)
        expected = [_by_api(client, write, api_table) for write in writes]
        assert outcomes == expected, writes
        assert _scan(client, statements_table) == _scan(client, api_table), writes

    with mock_aws():
        client = _client()
        check()


# ---- the fast path: INSERTs and simple UPDATEs, compared on tables with a stream ---------------------
#
# The same comparison, with writes mostly of the shapes local/partiql.py applies directly (an INSERT;
# an UPDATE of only ``SET name = value`` whose WHERE, beyond the key, is ``name = value`` and
# [NOT] MISSING terms joined by AND), values of every type as parameters or literals, some of the
# other shapes mixed in (moto's path), on tables with a NEW_AND_OLD_IMAGES stream: outcomes, items
# and the streams' records (read with a plain dynamodbstreams client, or moto's own shard's) must be
# the same, and only the UPDATEs of the other shapes may reach moto's update_item.

VALUES: list[dict[str, Any]] = [
    S("RESTORING"),
    S("RESTORED"),
    S("it's"),
    S(""),
    N("1"),
    N("1.0"),
    N("-2.5"),
    {"BOOL": True},
    {"BOOL": False},
    {"NULL": True},
    {"L": [S("a"), N("1"), {"M": {}}]},
    {"M": {"k": S("v"), "none": {"NULL": True}}},
    {"SS": ["a", "b"]},
    {"NS": ["1", "2.5"]},
    {"B": b"\x00\xffbinary"},
    {"BS": [b"\x01", b"\x02"]},
    S("x" * 250_000),  # two of them on one item: over the item size limit
]
NAMES = ["state", "tag", "v", "w"]


def _fast_conditions(simple_only: bool = False) -> Any:
    from hypothesis import strategies as st

    value = st.sampled_from(VALUES[:-1])
    name = st.sampled_from(NAMES)
    simple = st.one_of(
        st.tuples(st.just("cmp"), st.just("="), name, value),
        st.tuples(st.just("rcmp"), st.just("="), name, value),
        st.tuples(st.just("missing"), name, st.booleans()),
    )
    if simple_only:
        return st.none() | st.recursive(simple, lambda inner: st.tuples(st.just("AND"), inner, inner), max_leaves=4)
    other = st.one_of(  # moto's path: another comparison
        st.tuples(st.just("cmp"), st.just("<>"), name, value),
        st.tuples(st.just("in"), name, st.lists(value, min_size=1, max_size=2)),
    )
    joined = st.recursive(
        st.one_of(simple, other),
        lambda inner: st.one_of(
            st.tuples(st.just("AND"), inner, inner), st.tuples(st.just("OR"), inner, inner), st.tuples(st.just("NOT"), inner)
        ),
        max_leaves=4,
    )
    return st.none() | joined


def _fast_writes() -> Any:
    from hypothesis import strategies as st

    item_key = st.sampled_from(KEYS)
    value = st.sampled_from(VALUES)
    attributes = st.lists(st.tuples(st.sampled_from(NAMES[1:]), value), max_size=3, unique_by=lambda a: a[0])
    set_action = st.tuples(st.just("set"), st.sampled_from(NAMES), value)
    action = st.one_of(
        set_action,
        st.tuples(st.just("set"), st.just("sk"), st.sampled_from(KEYS).map(lambda k: S(k[1]))),  # a key: moto's error
        st.tuples(st.just("add"), st.sampled_from([N(1), N(-1)])),
        st.tuples(st.just("remove"), st.sampled_from(NAMES)),
    )
    literals = st.booleans()
    simple_update = st.tuples(
        st.just("UPDATE"),
        item_key,
        st.lists(set_action, min_size=1, max_size=3, unique_by=lambda a: a[1]),
        _fast_conditions(simple_only=True),
        literals,
        st.booleans(),
    )
    other_update = st.tuples(  # any actions (the same attribute twice too), any condition
        st.just("UPDATE"), item_key, st.lists(action, min_size=1, max_size=3), _fast_conditions(), literals, st.booleans()
    )
    return st.one_of(
        *[st.tuples(st.just("INSERT"), item_key, value, attributes, literals)] * 2,
        *[simple_update] * 4,
        other_update,
        st.tuples(st.just("DELETE"), item_key, _fast_conditions(), literals, st.booleans()),
    )


def _simple_condition(node: tuple[Any, ...] | None) -> bool:
    if node is None or node[0] == "missing":
        return True
    if node[0] == "AND":
        return _simple_condition(node[1]) and _simple_condition(node[2])
    if node[0] == "NOT":
        return node[1][0] == "missing"  # NOT attribute_exists / attribute_not_exists
    return node[0] in ("cmp", "rcmp") and node[1] == "="


def _fast_shaped(write: tuple[Any, ...]) -> bool:
    """An UPDATE the fast path takes: only SETs, on distinct attributes that are not keys, and a simple condition."""
    actions = write[2]
    names = [a[1] for a in actions]
    return all(a[0] == "set" for a in actions) and "sk" not in names and len(set(names)) == len(names) and _simple_condition(write[3])


def _stream_records(client: Any, streams: Any, table: str) -> list[dict[str, Any]]:
    """Every record of the table's stream: read by a dynamodbstreams client with the streams layer,
    else taken from moto's own shard."""
    if streams is None:
        from moto.dynamodb.models import dynamodb_backends

        found = []
        for record in dynamodb_backends[ACCOUNT][REGION].tables[table].stream_shard.items:
            body = _record(record)
            found.append(body | {"sequence": int(record.to_json()["dynamodb"]["SequenceNumber"])})
        return found
    arn = client.describe_table(TableName=table)["Table"]["LatestStreamArn"]
    records = []
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        while iterator:
            answer = streams.get_records(ShardIterator=iterator)
            records.extend(answer["Records"])
            iterator = answer.get("NextShardIterator") if answer["Records"] else None
    found = []
    for record in records:
        body = {k: v for k, v in record.items() if k != "eventID"}
        dynamodb = dict(body.pop("dynamodb"))
        del dynamodb["ApproximateCreationDateTime"]
        found.append(body | {"dynamodb": dynamodb, "sequence": int(dynamodb.pop("SequenceNumber"))})
    return found


@pytest.mark.parametrize("layer", [True, False], ids=["streams-layer", "moto-shard"])
def test_fast_statements_write_what_put_item_and_update_item_write_stream_records_included(layer: bool) -> None:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
    from moto.dynamodb.models import DynamoDBBackend

    from bulk_restore_cli.local.dynamodb_streams import DynamoDBStreamsEmulation

    tables = itertools.count()
    totals = {"updates": 0, "fast": 0, "records": 0}
    start = st.one_of(
        st.none(),
        st.tuples(st.sampled_from(VALUES[:-1]), st.lists(st.tuples(st.sampled_from(NAMES[1:]), st.sampled_from(VALUES[:-1])), max_size=2)),
    )

    @settings(max_examples=150 if layer else 60, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
    @given(
        st.lists(start, min_size=len(KEYS), max_size=len(KEYS)),
        st.lists(_fast_writes(), min_size=1, max_size=12),
        st.lists(st.booleans(), min_size=12, max_size=12),
        st.booleans(),
    )
    def check(starts: list[Any], writes: list[tuple[Any, ...]], cuts: list[bool], single: bool) -> None:
        n = next(tables)
        statements_table, api_table = f"fq{n}", f"fapi{n}"
        for table in (statements_table, api_table):
            _make_table(client, table, stream=True)
            for (pk, sk), first in zip(KEYS, starts, strict=True):
                if first is not None:
                    client.put_item(TableName=table, Item={**key(pk, sk), "state": first[0], **dict(first[1])})
        with counting(DynamoDBBackend, "update_item") as updates, counting(DynamoDBBackend, "put_item") as puts:
            outcomes = _run(client, writes, cuts, single, statements_table)
        expected = [_by_api(client, write, api_table) for write in writes]
        assert outcomes == expected, writes
        assert _scan(client, statements_table) == _scan(client, api_table), writes
        by_statements, by_api = _stream_records(client, streams, statements_table), _stream_records(client, streams, api_table)
        for records in (by_statements, by_api):
            numbers = [r.pop("sequence") for r in records]
            assert numbers == sorted(set(numbers)), numbers  # increasing
        assert by_statements == by_api, writes
        # only the UPDATEs of other shapes went through moto's update_item; no INSERT through put_item
        other = sum(1 for w in writes if w[0] == "UPDATE" and not _fast_shaped(w))
        assert (updates[0], puts[0]) == (other, 0), writes
        totals["updates"] += sum(1 for w in writes if w[0] == "UPDATE")
        totals["fast"] += sum(1 for w in writes if w[0] == "UPDATE" and _fast_shaped(w))
        totals["records"] += len(by_api)

    layer_installed = DynamoDBStreamsEmulation()
    with mock_aws():
        if layer:
            layer_installed.install()
        try:
            client = _client()
            streams = boto3.session.Session(region_name=REGION).client("dynamodbstreams") if layer else None
            check()
        finally:
            layer_installed.uninstall()
    assert totals["fast"] >= totals["updates"] // 4 and totals["records"] > 0, totals  # the fast shapes were exercised


def test_a_fast_update_past_the_item_size_limit_fails_as_update_item_does() -> None:
    """Two values of 250 KB: the second passes moto's item limit. UpdateItem fails with a
    ValidationException and keeps what it set before it, writing no record: so does the statement."""
    from bulk_restore_cli.local.dynamodb_streams import DynamoDBStreamsEmulation

    big_a, big_b = S("a" * 250_000), S("b" * 250_000)
    with mock_aws(), DynamoDBStreamsEmulation():
        client = _client()
        for table in ("fq", "fapi"):
            _make_table(client, table, stream=True)
            client.put_item(TableName=table, Item={**key("JOB#1", "a"), "state": S("RESTORING")})
        statement = {
            "Statement": 'UPDATE "fq" SET "x" = ? SET "y" = ? WHERE "pk" = ? AND "sk" = ? AND "state" = ?',
            "Parameters": [big_a, big_b, S("JOB#1"), S("a"), S("RESTORING")],
        }
        (entry,) = _batch(client, statement)["Responses"]
        api = _error(
            lambda: client.update_item(
                TableName="fapi",
                Key=key("JOB#1", "a"),
                UpdateExpression="SET #x = :a, #y = :b",
                ConditionExpression="attribute_exists(pk) AND #s = :s",
                ExpressionAttributeNames={"#x": "x", "#y": "y", "#s": "state"},
                ExpressionAttributeValues={":a": big_a, ":b": big_b, ":s": S("RESTORING")},
            )
        )
        assert api.response["Error"]["Code"] == "ValidationException"
        assert entry == {"Error": {"Code": "ValidationError", "Message": api.response["Error"]["Message"]}}
        assert _get(client, "JOB#1", "a", "fq") == _get(client, "JOB#1", "a", "fapi")
        streams = boto3.session.Session(region_name=REGION).client("dynamodbstreams")
        records = [[r["eventName"] for r in _stream_records(client, streams, table)] for table in ("fq", "fapi")]
        assert records == [["INSERT"], ["INSERT"]]


def test_the_micro_benchmark_times_both_paths_at_each_table_size() -> None:
    """bench/partiql_micro.py: every statement it times is written (a failed one stops it), on both
    paths, at each size; it prints figures and judges none."""
    from bulk_restore_cli.bench import partiql_micro

    rows = partiql_micro.measure((40, 300), rounds=2)
    combos = {(size, kind, how) for size in (40, 300) for kind in ("INSERT", "UPDATE") for how in ("layer", "request")}
    assert {(r["table_items"], r["statement"], r["measured"], r["path"]) for r in rows} == {
        (*c, path) for c in combos for path in ("moto path", "fast path")
    }
    # each round, on each path and each way, 25 new objects: inserted, then moved
    assert {r["table_items"]: r["items_after"] for r in rows} == {40: 40 + 2 * 2 * 2 * 25, 300: 300 + 2 * 2 * 2 * 25}
    assert all(0 < r["min_us"] <= r["median_us"] for r in rows)
    assert partiql.fast_path_enabled()  # left as it was
    table = partiql_micro.render(rows, 2).splitlines()
    assert len(table) == 2 + len(combos)
