"""Faster moto, with the same answers, so a job of 10,000+ objects runs in minutes, not hours.

Three costs of moto (5.2) grow with the size of the table or the queue, for every request:

- TransactWriteItems backs up the whole table before *each action* (a deep copy), so one
  100-action transaction on a table of n items copies 100 n items; and as moto's server runs
  requests on threads, a copy made while another request writes fails (a 500 that DynamoDB
  never answers). Here a transaction checks every action's condition first and applies the
  actions only if all pass, one transaction at a time: the same result for transactions whose
  actions each name a different item (DynamoDB requires it, and moto's unicity check is kept),
  as no action's condition can then see another action's write.
- Query on the table's key sorts every item of the table to find one partition's. Here it looks
  at that partition only.
- ReceiveMessage computes all of a queue's attributes (counting its messages) for every message
  it returns, to read the retention period. Here it reads the retention period.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


_transactions = threading.Lock()


def _transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
    with _transactions:
        _transact(self, transact_items)


def _transact(self: Any, transact_items: list[dict[str, Any]]) -> None:
    from moto.dynamodb.exceptions import (
        MultipleTransactionsException,
        TooManyTransactionsException,
        TransactionCanceledException,
        TransactWriteSingleOpException,
    )
    from moto.dynamodb.comparisons import get_filter_expression as filter_expression

    if len(transact_items) > 100:
        raise TooManyTransactionsException()
    seen: set[tuple[str, str]] = set()
    planned: list[tuple[str, dict[str, Any], str, dict[str, Any]]] = []
    errors: list[tuple[str | None, str | None, dict[str, Any] | None]] = []
    for action in transact_items:
        if len(action) > 1:
            raise TransactWriteSingleOpException
        op_type, op = next(iter(action.items()))
        if op_type not in {"ConditionCheck", "Put", "Delete", "Update"}:
            raise ValueError("Unsupported transaction operation")
        table_name = op["TableName"]
        if op_type == "Put":
            table = self.get_table(table_name)
            key = {table.hash_key_attr: op["Item"][table.hash_key_attr]}
            if table.range_key_attr is not None:
                key[table.range_key_attr] = op["Item"][table.range_key_attr]
        else:
            key = op["Key"]
        unique = (str(table_name), str(dict(sorted(key.items()))))
        if unique in seen:
            raise MultipleTransactionsException()
        seen.add(unique)
        current = self.get_item(table_name, key)
        condition = op.get("ConditionExpression")
        if condition is not None:
            check = filter_expression(condition, op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues"))
            if not check.expr(current):
                old = current.to_json()["Attributes"] if op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and current else None
                errors.append(("ConditionalCheckFailed", "The conditional request failed", old))
                continue
        errors.append((None, None, None))
        planned.append((op_type, op, table_name, key))
    if any(code is not None for code, _, _ in errors):
        raise TransactionCanceledException(errors)
    for op_type, op, table_name, key in planned:
        names, values = op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
        if op_type == "Put":
            self.put_item(table_name, op["Item"], expression_attribute_names=names, expression_attribute_values=values)
        elif op_type == "Delete":
            self.delete_item(table_name, key, expression_attribute_names=names, expression_attribute_values=values)
        elif op_type == "Update":
            self.update_item(table_name, key, update_expression=op["UpdateExpression"],
                             expression_attribute_names=names, expression_attribute_values=values)


_partition = threading.local()  # the partition a Query on the table's key is reading


def _query(original: Any) -> Any:
    def query(self: Any, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        index_name = kwargs.get("index_name", args[6] if len(args) > 6 else None)  # moto passes it either way
        _partition.key = (self, hash_key) if index_name is None and hash_key is not None else None
        try:
            return original(self, hash_key, *args, **kwargs)
        finally:
            _partition.key = None

    return query


def _all_items(original: Any) -> Any:
    def all_items(self: Any) -> list[Any]:
        reading = getattr(_partition, "key", None)
        if reading is None or reading[0] is not self or not self.range_key_attr:
            return original(self)
        return sorted(self.items.get(reading[1], {}).values(), key=lambda item: item.range_key)

    return all_items


def _retained(self: Any, queue_name: str, message: Any) -> bool:
    from moto.core.utils import unix_time

    return int(self.get_queue(queue_name).message_retention_period) + message.sent_timestamp / 1000 > unix_time()


@contextmanager
def fast_moto() -> Iterator[None]:
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.table import Table
    from moto.sqs.models import SQSBackend

    saved = (DynamoDBBackend.transact_write_items, Table.query, Table.all_items, SQSBackend.is_message_valid_based_on_retention_period)
    DynamoDBBackend.transact_write_items = _transact_write_items  # type: ignore[method-assign]
    Table.query = _query(saved[1])  # type: ignore[method-assign]
    Table.all_items = _all_items(saved[2])  # type: ignore[method-assign]
    SQSBackend.is_message_valid_based_on_retention_period = _retained  # type: ignore[method-assign]
    try:
        yield
    finally:
        (DynamoDBBackend.transact_write_items, Table.query, Table.all_items,
         SQSBackend.is_message_valid_based_on_retention_period) = saved  # type: ignore[method-assign]
