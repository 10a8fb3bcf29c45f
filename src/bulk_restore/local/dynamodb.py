"""DynamoDB on moto at DynamoDB's cost: a call costs what it touches, never the whole table.

moto (5.2) answers DynamoDB's calls faithfully but at a price that grows with the table, and
its DynamoDB backend is not thread-safe:

- TransactWriteItems deep-copies every table it names before it starts (to roll back on
  failure): each transaction costs O(all items), so a 20,000-object job slows to a few objects
  a second;
- Query on the table's key sorts every item of the table to find one partition's;
- two requests at once can break each other: a copy or a sort made while another request adds
  an item fails with "dictionary changed size during iteration" (a 500 DynamoDB never answers),
  and GetItem's answer is serialised from the stored item itself, after the backend call.

This module patches moto's DynamoDB in the process (like ``s3_restore`` patches S3), for the
local stack's server and for the tests' in-process moto alike:

- TransactWriteItems as the DynamoDB API reference describes it, on moto's own expression
  machinery: at most 100 actions; no item twice (ValidationException); every action's condition
  (ConditionCheck, and Put/Update/Delete with a ConditionExpression) is checked first, against
  the items as they are before the transaction; if any fails, nothing is written and the call
  answers TransactionCanceledException with one CancellationReasons entry per action, in order
  (``ConditionalCheckFailed``, with the item when the action asks for
  ``ReturnValuesOnConditionCheckFailure=ALL_OLD``, else ``None``). Only then are the actions
  applied, through moto's put_item / update_item / delete_item, after keeping the items they
  touch; if applying one fails (moto raises a ValidationException for an update that cannot
  apply, such as ADD to a string), exactly those items are put back and the error is raised.
  moto keeps no ClientRequestToken, and neither does this: a repeated token applies again.
- Query on the table's key reads the one partition it names (moto's own query code, given
  that partition's items instead of the whole table's). Queries on an index still read every
  item, as moto does (the product's table has no index).
- Every DynamoDB (and DynamoDB Streams) request is handled under one lock, from the backend
  call to the serialised answer, so no request ever sees another's half-made change. A request
  holds it for its own work only, which no longer grows with the table.

GetItem, BatchGetItem, PutItem, UpdateItem, DeleteItem and BatchWriteItem already cost what they
touch in moto and are left as they are.
"""

from __future__ import annotations

import copy
import inspect
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

MAX_TRANSACT_ACTIONS = 100
_OPERATIONS = ("ConditionCheck", "Put", "Delete", "Update")

# Serialises every request into moto's DynamoDB backend. Reentrant: the transaction code below
# takes it too, for callers that reach the backend without a request.
_requests = threading.RLock()
_state = threading.Lock()  # guards the install count and the originals
_originals: dict[str, Any] = {}
_holders: set[int] = set()  # ids of the DynamoDBEmulation instances that have it installed
_suspended = 0


# ---- TransactWriteItems ------------------------------------------------------------------------


def _transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
    """DynamoDBBackend.transact_write_items, at the cost of the items it names."""
    with _requests:
        _transact(self, transact_items)


def _transact(backend: Any, transact_items: list[dict[str, Any]]) -> None:
    from moto.dynamodb.comparisons import get_filter_expression
    from moto.dynamodb.exceptions import (
        ConditionalCheckFailed,
        MockValidationException,
        MultipleTransactionsException,
        TooManyTransactionsException,
        TransactionCanceledException,
        TransactWriteSingleOpException,
    )

    if len(transact_items) > MAX_TRANSACT_ACTIONS:
        raise TooManyTransactionsException()

    # 1. Every action's item and condition, against the items as they are: nothing written yet.
    named: set[tuple[str, str]] = set()
    planned: list[tuple[int, tuple[str, dict[str, Any], Any, dict[str, Any], Any]]] = []  # (position, (type, op, table, key, current))
    reasons: list[tuple[str | None, str | None, dict[str, Any] | None]] = []
    for action in transact_items:
        if len(action) > 1:
            raise TransactWriteSingleOpException
        old: dict[str, Any] | None = None
        try:
            op_type, op = next(iter(action.items()))
            if op_type not in _OPERATIONS:
                raise ValueError("Unsupported transaction operation")
            table_name = op["TableName"]
            table = backend.get_table(table_name)
            if op_type == "Put":
                key = {table.hash_key_attr: op["Item"][table.hash_key_attr]}
                if table.range_key_attr is not None:
                    key[table.range_key_attr] = op["Item"][table.range_key_attr]
            else:
                key = op["Key"]
            # The same test as moto's: one table name and key JSON per transaction.
            unique = (str(table_name), str(dict(sorted(key.items()))))
            if unique in named:
                raise MultipleTransactionsException()
            named.add(unique)
            current = backend.get_item(table_name, key)
            condition = op.get("ConditionExpression")
            if condition is not None:
                check = get_filter_expression(condition, op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues"))
                if not check.expr(current):
                    if op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and current:
                        old = current.to_json()["Attributes"]
                    raise ConditionalCheckFailed(item=old)
            planned.append((len(reasons), (op_type, op, table, key, current)))
            reasons.append((None, None, None))
        except (MultipleTransactionsException, MockValidationException):
            raise  # the request is invalid: a ValidationException, not a cancellation
        except ConditionalCheckFailed as exc:
            reasons.append(("ConditionalCheckFailed", str(exc.message), old))
        except Exception as exc:  # as moto: any other failure of an action cancels with its name
            reasons.append((type(exc).__name__, str(exc), None))
    if any(code is not None for code, _, _ in reasons):
        raise TransactionCanceledException(reasons)

    # 2. Apply, keeping what each touched item was; put exactly those back if an action fails.
    kept: list[tuple[Any, Any, Any, Any]] = []  # (table, hash key, range key, item before or None)
    streams: dict[int, tuple[Any, int]] = {}
    at = 0
    try:
        for at, (op_type, op, table, key, current) in planned:
            if op_type == "ConditionCheck":
                continue
            hash_key, range_key = backend.get_keys_value(table, key)
            # Put and Delete replace or drop the stored item; Update changes it in place.
            kept.append((table, hash_key, range_key, copy.deepcopy(current) if op_type == "Update" and current else current))
            if table.stream_shard is not None and id(table) not in streams:
                streams[id(table)] = (table.stream_shard, len(table.stream_shard.items))
            names, values = op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
            if op_type == "Put":
                backend.put_item(op["TableName"], op["Item"], expression_attribute_names=names, expression_attribute_values=values)
            elif op_type == "Delete":
                backend.delete_item(op["TableName"], key, expression_attribute_names=names, expression_attribute_values=values)
            else:
                backend.update_item(op["TableName"], key, update_expression=op["UpdateExpression"],
                                    expression_attribute_names=names, expression_attribute_values=values)
    except BaseException as exc:
        for table, hash_key, range_key, before in reversed(kept):
            _put_back(table, hash_key, range_key, before)
        for shard, length in streams.values():
            del shard.items[length:]
        if isinstance(exc, (MockValidationException, ConditionalCheckFailed)) or not isinstance(exc, Exception):
            raise  # as moto: an update that cannot apply is the request's ValidationException
        raise TransactionCanceledException(
            [(type(exc).__name__, str(exc), None) if i == at else (None, None, None) for i in range(len(reasons))]
        ) from exc


def _put_back(table: Any, hash_key: Any, range_key: Any, before: Any) -> None:
    """Make one stored item what it was (``before``; None: absent)."""
    if table.range_key_attr is None:
        if before is None:
            table.items.pop(hash_key, None)
        else:
            table.items[hash_key] = before
        return
    if before is None:
        partition = table.items.get(hash_key)
        if partition is not None:
            partition.pop(range_key, None)
    else:
        table.items[hash_key][range_key] = before


# ---- Query on one partition --------------------------------------------------------------------


class _Partition:
    """A table as moto's Table.query sees it, holding only one partition's items."""

    def __init__(self, table: Any, hash_key: Any):
        self._table = table
        stored = table.items.get(hash_key)  # .get: the items' defaultdict must not grow on a read
        if stored is None:
            self._items: list[Any] = []
        elif table.range_key_attr is None:
            self._items = [stored]
        else:
            self._items = list(stored.values())

    def all_items(self) -> list[Any]:
        return self._items

    def __getattr__(self, name: str) -> Any:
        return getattr(self._table, name)


def _partition_query(original: Any) -> Any:
    signature = inspect.signature(original)

    def query(self: Any, *args: Any, **kwargs: Any) -> Any:
        arguments = signature.bind(self, *args, **kwargs).arguments
        if arguments.get("index_name") is None and arguments.get("hash_key") is not None:
            return original(_Partition(self, arguments["hash_key"]), *args, **kwargs)
        return original(self, *args, **kwargs)

    query.__wrapped__ = original  # type: ignore[attr-defined]
    return query


# ---- one request at a time -----------------------------------------------------------------------


def _serialised(original: Any) -> Any:
    def call_action(self: Any) -> Any:
        with _requests:
            return original(self)

    call_action.__wrapped__ = original  # type: ignore[attr-defined]
    return call_action


# ---- installing --------------------------------------------------------------------------------


def _patch() -> None:
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.table import Table
    from moto.dynamodb.responses import DynamoHandler

    _originals.update(
        transact_write_items=DynamoDBBackend.__dict__["transact_write_items"],
        query=Table.__dict__["query"],
        call_action=DynamoHandler.__dict__["call_action"],
    )
    DynamoDBBackend.transact_write_items = _transact_write_items  # type: ignore[method-assign]
    Table.query = _partition_query(_originals["query"])  # type: ignore[method-assign]
    DynamoHandler.call_action = _serialised(_originals["call_action"])  # type: ignore[method-assign]
    try:
        from moto.dynamodbstreams.responses import DynamoDBStreamsHandler
    except ImportError:  # pragma: no cover - moto without DynamoDB Streams
        return
    streams_call = DynamoDBStreamsHandler.__dict__.get("call_action")
    _originals["streams_call_action"] = streams_call
    DynamoDBStreamsHandler.call_action = _serialised(streams_call or DynamoDBStreamsHandler.call_action)  # type: ignore[method-assign]


def _unpatch() -> None:
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.table import Table
    from moto.dynamodb.responses import DynamoHandler

    DynamoDBBackend.transact_write_items = _originals["transact_write_items"]  # type: ignore[method-assign]
    Table.query = _originals["query"]  # type: ignore[method-assign]
    DynamoHandler.call_action = _originals["call_action"]  # type: ignore[method-assign]
    if "streams_call_action" in _originals:
        from moto.dynamodbstreams.responses import DynamoDBStreamsHandler

        if _originals["streams_call_action"] is None:
            del DynamoDBStreamsHandler.call_action
        else:
            DynamoDBStreamsHandler.call_action = _originals["streams_call_action"]  # type: ignore[method-assign]
    # _originals stays filled: a request already inside a patched method still finds them.


def _active() -> bool:
    from moto.dynamodb.models import DynamoDBBackend

    return DynamoDBBackend.__dict__["transact_write_items"] is _transact_write_items


class DynamoDBEmulation:
    """The patch, installed while any holder has it installed (the local stack, a test session).

    ``install`` and ``uninstall`` are idempotent per instance; moto goes back to its own code when
    the last holder uninstalls.
    """

    @property
    def lock(self) -> threading.RLock:
        """The lock DynamoDB requests are handled under: hold it to read or seed moto's tables directly."""
        return _requests

    def install(self) -> "DynamoDBEmulation":
        with _state:
            if not _holders and not _suspended:
                _patch()
            _holders.add(id(self))
        return self

    def uninstall(self) -> None:
        with _state:
            if id(self) not in _holders:
                return
            _holders.discard(id(self))
            if not _holders and not _suspended:
                _unpatch()

    @property
    def installed(self) -> bool:
        return id(self) in _holders

    def __enter__(self) -> "DynamoDBEmulation":
        return self.install()

    def __exit__(self, *exc: object) -> None:
        self.uninstall()


def emulation_active() -> bool:
    """Whether moto's DynamoDB runs with this module's patch now."""
    with _state:
        return bool(_originals) and _active()


@contextmanager
def plain_moto() -> Iterator[None]:
    """moto's own DynamoDB for a while, whoever has the emulation installed (to compare the two)."""
    global _suspended
    with _state:
        if _holders and not _suspended:
            _unpatch()
        _suspended += 1
    try:
        yield
    finally:
        with _state:
            _suspended -= 1
            if _holders and not _suspended:
                _patch()
