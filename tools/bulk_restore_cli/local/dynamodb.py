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

- The answers of the item operations (GetItem, BatchGetItem, Query, Scan, PutItem, UpdateItem,
  DeleteItem, TransactGetItems) are written as JSON directly, not walked member by member
  against botocore's output shape by moto's generic serializer (a third of DynamoDB's time in a
  local job went there). The body is the same to a client: binary values base64-encoded, absent
  (None) members left out, anything else (a timestamp) handed to moto's serializer. Tests parse
  both answers with botocore and compare them.
- An update expression is parsed once per distinct text, not once per item: moto parses it into
  a tree that its validator copies before use, so the same tree serves every request. A
  transaction's condition expressions likewise, once per text, names and the values they name.
- Inside a transaction, an Update whose expression is only ``SET name = :value``, ``ADD name
  :number`` and ``REMOVE name`` actions on top-level attributes (names plain or ``#placeholders``)
  is applied directly, as moto's executor would apply it: SET stores the value, ADD adds to a
  number (absent counts as 0), REMOVE drops the attribute, a missing item is created with its key.
  Anything else (another action, a path with dots or indexes, a key attribute, one attribute
  twice, a set, ADD to a non-number, a table with a stream) goes through moto's update_item,
  which parses and validates the expression per item (most of a transaction's time otherwise).
  Tests run both on the same items and compare the items and the errors.

- An item operation's request is read with ``json.loads`` (moto walks the body against botocore's
  input shape, only to decode binary values; a body naming a "B" or "BS" member still goes that
  way). Tests compare both readings on generated requests.
- moto's request validation parses each action's condition expression again (to find the names
  it uses): done once per expression, names and the values it names, the lists of names handed
  out fresh each time (moto's callers extend them).
- An item's 400 KB check keeps a running total (moto's re-sums every stored attribute on each
  insertion); the same attribute raises ItemSizeTooLarge. A simple Update in a transaction checks
  each value it stores the same way (moto counts the item as it is, the replaced value included,
  plus the new value), from one total per item; and it is undone, if the transaction fails, from
  a copy of the item's attribute dict (a simple update only replaces values) instead of a deep copy.
- An item's size (BatchGetItem's 16 MB answer limit sizes every item twice) sums strings and
  numbers directly, the rest through moto's DynamoType.size: the same figure.
- The backend's answer is kept as it is until it is written: JSON writes its attribute values
  (``{type: value}``) and objects (``to_json()``) as moto's ``dynamo_to_dict`` would make them,
  and binary values, timestamps and other operations' answers are converted by moto first, as before.
- BatchGetItem's duplicate-key check is one pass over the keys (moto compares each with all before it).

GetItem, BatchGetItem, PutItem, UpdateItem, DeleteItem and BatchWriteItem already cost what they
touch in moto and are left as they are.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import functools
import inspect
import json
import re
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
                check = _condition(condition, op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues"))
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
        for at, (op_type, op, table, key, current) in planned:  # noqa: B007 - `at` names the failed operation below
            if op_type == "ConditionCheck":
                continue
            hash_key, range_key = backend.get_keys_value(table, key)
            names, values = op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
            plan = simple_update_plan(table, current, op["UpdateExpression"], names, values) if op_type == "Update" else None
            # Put and Delete replace or drop the stored item; Update changes it in place (a simple
            # one only replaces attribute values: a copy of its attribute dict undoes it).
            before = current
            if op_type == "Update" and current is not None:
                before = _snapshot(current) if plan is not None else copy.deepcopy(current)
            kept.append((table, hash_key, range_key, before))
            if table.stream_shard is not None and id(table) not in streams:
                streams[id(table)] = (table.stream_shard, len(table.stream_shard.items))
            if op_type == "Put":
                backend.put_item(op["TableName"], op["Item"], expression_attribute_names=names, expression_attribute_values=values)
            elif op_type == "Delete":
                backend.delete_item(op["TableName"], key, expression_attribute_names=names, expression_attribute_values=values)
            elif plan is not None:
                apply_update_plan(backend, table, key, current, plan)
            else:
                backend.update_item(
                    op["TableName"],
                    key,
                    update_expression=op["UpdateExpression"],
                    expression_attribute_names=names,
                    expression_attribute_values=values,
                )
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


_PATH = r"(?:#[A-Za-z0-9_]+|[A-Za-z][A-Za-z0-9_]*)"
_SET_ACTION = re.compile(rf"\s*({_PATH})\s*=\s*(:[A-Za-z0-9_]+)\s*")
_ADD_ACTION = re.compile(rf"\s*({_PATH})\s+(:[A-Za-z0-9_]+)\s*")
_REMOVE_ACTION = re.compile(rf"\s*({_PATH})\s*")
_CLAUSE = re.compile(r"(?i)(?:^|\s)(SET|ADD|REMOVE|DELETE)\s")
_SIMPLE_TYPES = frozenset({"S", "N", "BOOL", "NULL"})


@functools.lru_cache(maxsize=1024)
def simple_update_actions(expression: str) -> tuple[tuple[str, str, str | None], ...] | None:
    """``expression``'s actions as (SET|ADD|REMOVE, path, value placeholder), when it has only
    simple ones (see the module's notes); None otherwise. moto must have parsed it (``make``)."""
    marks = list(_CLAUSE.finditer(expression))
    if not marks or expression[: marks[0].start()].strip():
        return None
    actions: list[tuple[str, str, str | None]] = []
    seen: set[str] = set()
    for n, mark in enumerate(marks):
        clause = mark.group(1).upper()
        if clause in seen or clause == "DELETE":
            return None
        seen.add(clause)
        body = expression[mark.end() : marks[n + 1].start() if n + 1 < len(marks) else len(expression)]
        pattern = {"SET": _SET_ACTION, "ADD": _ADD_ACTION, "REMOVE": _REMOVE_ACTION}[clause]
        for part in body.split(","):
            match = pattern.fullmatch(part)
            if match is None:
                return None
            actions.append((clause, match.group(1), match.group(2) if clause != "REMOVE" else None))
    return tuple(actions)


@functools.lru_cache(maxsize=1)
def _reserved_words() -> frozenset[str]:
    from moto.dynamodb.parsing.reserved_keywords import ReservedKeywords

    return frozenset(word.upper() for word in ReservedKeywords.get_reserved_keywords())


def _reserved(name: str) -> bool:
    """A DynamoDB reserved word, which an expression may not name plainly (moto's error then)."""
    return name.upper() in _reserved_words()


def apply_simple_update(
    backend: Any,
    table: Any,
    key: dict[str, Any],
    current: Any,
    expression: str,
    names: dict[str, str] | None,
    values: dict[str, Any] | None,
) -> bool:
    """Apply an Update of a transaction as moto's executor would, if it is simple; False: it is not
    (nothing was changed), moto's update_item must apply it."""
    plan = simple_update_plan(table, current, expression, names, values)
    if plan is None:
        return False
    apply_update_plan(backend, table, key, current, plan)
    return True


def simple_update_plan(
    table: Any, current: Any, expression: str, names: dict[str, str] | None, values: dict[str, Any] | None
) -> list[tuple[str, str, Any]] | None:
    """A simple Update's actions as (SET|ADD|REMOVE, attribute name, value); None: not simple
    (see the module's notes), moto's update_item must apply it. Changes nothing."""
    if table.stream_shard is not None:
        return None
    _parse_update(expression)  # moto's syntax and reserved-word errors first
    actions = simple_update_actions(expression)
    if actions is None:
        return None
    names, values = names or {}, values or {}
    keys = {table.hash_key_attr, table.range_key_attr}
    resolved: list[tuple[str, str, Any]] = []
    for clause, path, placeholder in actions:
        name = names.get(path) if path.startswith("#") else path
        if name is None or name in keys or (not path.startswith("#") and _reserved(path)) or any(name == other for _, other, _ in resolved):
            return None  # undefined placeholder, a key attribute, the same attribute twice: moto's errors
        value = None
        if placeholder is not None:
            value = values.get(placeholder)
            if not isinstance(value, dict) or len(value) != 1 or next(iter(value)) not in _SIMPLE_TYPES:
                return None
            if clause == "ADD" and "N" not in value:
                return None
        resolved.append((clause, name, value))
    for clause, name, _value in resolved:
        if clause == "ADD" and current is not None and name in current.attrs and current.attrs[name].type != "N":
            return None  # moto's IncorrectDataType
    return resolved


def apply_update_plan(backend: Any, table: Any, key: dict[str, Any], current: Any, plan: list[tuple[str, str, Any]]) -> None:
    """Apply ``simple_update_plan``'s actions to the item (made with its key if absent).

    Each value stored is checked as moto's item dict checks it (the item's size so far plus the
    attribute's must stay within moto's limit, else ItemSizeToUpdateTooLarge), from one running
    total instead of moto's re-sum of every attribute at each one."""
    from moto.dynamodb.exceptions import ItemSizeToUpdateTooLarge
    from moto.dynamodb.models.dynamo_type import DynamoType, Item

    item = current
    if item is None:
        hash_key, range_key = backend.get_keys_value(table, key)
        data = {table.hash_key_attr: key[table.hash_key_attr]}
        if table.range_key_attr is not None:
            data[table.range_key_attr] = key[table.range_key_attr]
        table.put_item(data)
        item = table.get_item(hash_key, range_key)
    assert isinstance(item, Item)
    attrs = item.attrs
    size = _item_size(item)
    for clause, name, value in plan:
        if clause == "REMOVE":
            old = attrs.pop(name, None)
            if old is not None:
                size -= _bytesize(name) + old.size()
            continue
        new = DynamoType(value) if clause == "SET" else (attrs.get(name) or DynamoType({"N": "0"})) + DynamoType(value)
        added = _bytesize(name) + new.size()
        if size + added > ITEM_SIZE_LIMIT:
            raise ItemSizeToUpdateTooLarge()
        old = attrs.get(name)
        dict.__setitem__(attrs, name, new)
        size += added - (_bytesize(name) + old.size() if old is not None else 0)


def _bytesize(name: Any) -> int:
    return len(name.encode("utf-8")) if type(name) is str else len(name)


def _snapshot(item: Any) -> Any:
    """What a simple update needs to be undone: the item with its own attribute dict, sharing the
    attribute values (a simple update replaces values, never changes one in place)."""
    from moto.dynamodb.models.dynamo_type import LimitedSizeDict

    clone = copy.copy(item)
    attrs = LimitedSizeDict.__new__(LimitedSizeDict)
    dict.update(attrs, item.attrs)
    clone.attrs = attrs
    return clone


_conditions: dict[tuple[Any, ...], Any] = {}
MAX_CONDITIONS = 4096


def _condition_key(expression: str | None, names: dict[str, str] | None, values: dict[str, Any] | None) -> tuple[Any, ...] | None:
    """An expression, its names and the values it may name (placeholders in its text), as a key;
    None when a value is binary (parsed each time)."""
    used = {k: v for k, v in (values or {}).items() if expression and k in expression}
    try:
        return (expression, json.dumps(names or {}, sort_keys=True), json.dumps(used, sort_keys=True))
    except TypeError:
        return None


def _condition(expression: str, names: dict[str, str] | None, values: dict[str, Any] | None) -> Any:
    """moto's parsed condition, once per expression, names and values it names (the parsed tree
    holds the values and is only read when evaluated): a transaction's actions mostly share one."""
    from moto.dynamodb.comparisons import get_filter_expression

    key = _condition_key(expression, names, values)
    if key is None:
        return get_filter_expression(expression, names, values)
    parsed = _conditions.get(key)
    if parsed is None:
        parsed = get_filter_expression(expression, names, values)
        if len(_conditions) >= MAX_CONDITIONS:
            _conditions.clear()
        _conditions[key] = parsed
    return parsed


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


# ---- answers written as JSON ------------------------------------------------------------------

# Item operations whose requests and answers hold attribute values (those of a table's items).
ITEM_OPERATIONS = frozenset({"GetItem", "BatchGetItem", "Query", "Scan", "PutItem", "UpdateItem", "DeleteItem", "TransactGetItems"})
FAST_ANSWERS = ITEM_OPERATIONS | {"BatchExecuteStatement", "ExecuteStatement"}
JSON_CONTENT_TYPE = "application/x-amz-json-1.0"


class _NotPlain(TypeError):
    """A value moto's serializer must write (a timestamp, an object): the generic path is taken."""


def _encode(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode("ascii")  # a blob member, as the JSON protocol writes it
    raise _NotPlain(type(value).__name__)


def _without_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_none(v) for v in value]
    return value


def _json_value(value: Any) -> Any:
    """What moto's ``dynamo_to_dict`` makes of a value the JSON encoder cannot write, as JSON writes it:
    an attribute value as ``{type: value}``, an object by its ``to_json()``, bytes in base64."""
    from moto.dynamodb.models.dynamo_type import DynamoType

    if isinstance(value, DynamoType):
        if value.type in ("B", "BS"):
            raise _NotPlain("binary")  # decoded and encoded again by moto's serializer: left to it
        return {value.type: value.value}
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode("ascii")  # a blob member, as the JSON protocol writes it
    if not isinstance(value, (dt.date, dt.time)) and hasattr(value, "to_json"):
        return value.to_json()
    raise _NotPlain(type(value).__name__)


def _result_init(self: Any, result: object) -> None:
    """DynamoResult keeping the backend's answer as it is: written as JSON directly
    (``_fast_execute_result``), or converted by moto's ``dynamo_to_dict`` first for its serializer.
    moto converted every answer on construction: for a BatchGetItem of 100 items, a third of its
    time, only to be walked again by the encoder."""
    self._result = result
    self._bulk_restore_raw = True


def _converted(self: Any) -> None:
    if self.__dict__.pop("_bulk_restore_raw", False):
        from moto.dynamodb.models.utilities import dynamo_to_dict

        self._result = dynamo_to_dict(self._result)


def _fast_execute_result(self: Any, context: Any) -> Any:
    result = self._result
    raw = self.__dict__.get("_bulk_restore_raw", False)
    if context.operation_model.name in FAST_ANSWERS and isinstance(result, dict):
        members = context.operation_model.output_shape.members if context.operation_model.output_shape else {}
        body = {k: v for k, v in result.items() if k in members and v is not None}
        try:
            text = json.dumps(body, separators=(",", ":"), default=_json_value if raw else _encode, check_circular=False)
            if "null" in text:  # perhaps a None deeper down: left out, as the serializer does
                if raw:
                    body = json.loads(text)  # plain now: DynamoType and objects written out
                text = json.dumps(_without_none(body), separators=(",", ":"), default=_encode)
        except _NotPlain:
            _converted(self)
            return _originals["execute_result"](self, context)
        return 200, {"Content-Type": JSON_CONTENT_TYPE}, text
    _converted(self)
    return _originals["execute_result"](self, context)


# ---- one parse per update expression -----------------------------------------------------------


@functools.lru_cache(maxsize=1024)
def _parse_update(expression: str) -> Any:
    parser = _originals.get("update_parser")
    if parser is None:
        from moto.dynamodb.parsing.expressions import UpdateExpressionParser as parser
    return parser.make(expression)


def _cached_parser(parser: Any) -> Any:
    """moto's UpdateExpressionParser with ``make`` memoised (the tree is copied by its users)."""
    return type("CachedUpdateExpressionParser", (parser,), {"make": staticmethod(_parse_update)})


# ---- requests read as JSON ----------------------------------------------------------------------

# Item operations whose request members are all JSON's own types except binary values ("B", "BS"):
# moto walks their body against botocore's input shape only to decode those.
FAST_REQUESTS = ITEM_OPERATIONS | {"TransactWriteItems", "BatchWriteItem", "ExecuteStatement", "BatchExecuteStatement"}
_BINARY_MEMBER = re.compile(rb'"BS?"\s*:')


def read_item_request(action: str, data: bytes) -> dict[str, Any] | None:
    """An item operation's parameters as moto's parser gives them, by ``json.loads``; None where
    moto's parser must read the body (another operation, a binary member, not a JSON object)."""
    if action not in FAST_REQUESTS or _BINARY_MEMBER.search(data):
        return None
    try:
        parsed = json.loads(data)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def _fast_parse_parameters(self: Any, request: Any) -> None:
    """moto's parse_parameters, as plain ``json.loads`` for item operations without binary values:
    the shape-walking parser gives the same dict for them (tests compare both)."""
    parsed = read_item_request(self._get_action(), request.data)
    if parsed is None:
        _originals["parse_parameters_inherited"](self, request)
    else:
        self.params = parsed


# ---- condition expressions validated once per text ---------------------------------------------


class _CheckedCondition:
    """What moto's request validation reads of a ConditionExpressionParser: ``parse()`` and the
    names and values it found, from one parse per expression, names and the values it names.
    Fresh lists each time: callers extend them in place."""

    __slots__ = ("_args", "expr_attr_names_found", "expr_attr_values_found")

    def __init__(self, expression: str | None, names: dict[str, str] | None, values: dict[str, Any] | None):
        self._args = (expression, names, values)
        self.expr_attr_names_found: list[str] = []
        self.expr_attr_values_found: list[str] = []

    def parse(self) -> Any:
        expression, names, values = self._args
        key = _condition_key(expression, names, values)
        found = _checked.get(key) if key is not None else None
        if found is None:
            parser = _originals["condition_parser"](expression, names, values)
            tree = parser.parse()  # raises here, where moto's callers expect it
            found = (tree, tuple(parser.expr_attr_names_found), tuple(parser.expr_attr_values_found))
            if key is not None:
                if len(_checked) >= MAX_CONDITIONS:
                    _checked.clear()
                _checked[key] = found
        self.expr_attr_names_found = list(found[1])
        self.expr_attr_values_found = list(found[2])
        return found[0]


_checked: dict[tuple[Any, ...], tuple[Any, tuple[str, ...], tuple[str, ...]]] = {}


# ---- items sized once --------------------------------------------------------------------------


def _item_init(self: Any, hash_key: Any, range_key: Any, attrs: dict[str, Any]) -> None:
    """moto's Item.__init__ with the 400 KB check on a running total.

    moto's size-limited dict re-sums every attribute already stored on each insertion (O(n²) per
    item). The checks are the same: after each attribute, the size so far must stay within moto's
    limit, and the first attribute that passes it raises ItemSizeTooLarge."""
    from moto.dynamodb.exceptions import ItemSizeTooLarge
    from moto.dynamodb.models.dynamo_type import DynamoType, LimitedSizeDict
    from moto.dynamodb.models.utilities import bytesize

    self.hash_key = hash_key
    self.range_key = range_key
    stored = LimitedSizeDict()
    total = 0
    for key, value in attrs.items():
        typed = DynamoType(value)
        total += bytesize(key) + value_size(typed)
        if total > ITEM_SIZE_LIMIT:
            raise ItemSizeTooLarge
        dict.__setitem__(stored, key, typed)
    self.attrs = stored


ITEM_SIZE_LIMIT = 405000  # moto's: between DynamoDB's measured 409 and 410 KB


def value_size(value: Any) -> int:
    """moto's DynamoType.size: a string's or a number's here (most attributes), the rest by moto's."""
    kind, raw = value.type, value.value
    if kind == "S" and type(raw) is str:
        return len(raw) if raw.isascii() else len(raw.encode("utf-8"))
    if kind == "N" and type(raw) is str:
        return len(raw)
    return int(value.size())


def attributes_size(attrs: dict[str, Any]) -> int:
    """moto's Item.size of these attributes: each name's UTF-8 length and its value's size."""
    total = 0
    for name, value in attrs.items():
        if type(name) is str:
            total += len(name) if name.isascii() else len(name.encode("utf-8"))
        else:
            total += len(name)
        total += value_size(value)
    return total


def _item_size(self: Any) -> int:
    """moto's Item.size, the same sum (``attributes_size``). A BatchGetItem sized each item twice:
    a third of its time."""
    return attributes_size(self.attrs)


def _freeze(value: Any) -> Any:
    """A hashable stand-in for a request's key, equal exactly when the keys are equal."""
    if isinstance(value, dict):
        return frozenset((k, _freeze(v)) for k, v in value.items())
    if isinstance(value, list):
        return ("list", tuple(_freeze(v) for v in value))
    return value


def _contains_duplicates(self: Any, keys: list[Any]) -> bool:
    """moto's duplicate-key check of a BatchGetItem, in one pass (moto compares each key with
    every key before it)."""
    seen: set[Any] = set()
    for k in keys:
        try:
            frozen = _freeze(k)
            if frozen in seen:
                return True
            seen.add(frozen)
        except TypeError:  # an unhashable leaf: moto's own comparison
            return bool(_originals["contains_duplicates"](self, keys))
    return False


# ---- installing --------------------------------------------------------------------------------


def _patch() -> None:
    import moto.dynamodb.models as models
    import moto.dynamodb.responses as responses
    from moto.core.responses import ActionResult
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.dynamo_type import Item
    from moto.dynamodb.models.table import Table
    from moto.dynamodb.responses import DynamoHandler, DynamoResult

    _originals.update(
        parse_parameters=DynamoHandler.__dict__.get("parse_parameters"),
        parse_parameters_inherited=DynamoHandler.parse_parameters,
        condition_parser=responses.create_condition_expression_parser,
        item_init=Item.__dict__["__init__"],
        transact_write_items=DynamoDBBackend.__dict__["transact_write_items"],
        query=Table.__dict__["query"],
        call_action=DynamoHandler.__dict__["call_action"],
        execute_result=DynamoResult.__dict__.get("execute_result", ActionResult.execute_result),
        result_init=DynamoResult.__dict__["__init__"],
        item_size=Item.__dict__["size"],
        contains_duplicates=DynamoHandler.__dict__["_contains_duplicates"],
        update_parser=models.UpdateExpressionParser,
    )
    DynamoResult.execute_result = _fast_execute_result  # type: ignore[method-assign]
    DynamoResult.__init__ = _result_init  # type: ignore[method-assign]
    Item.size = _item_size  # type: ignore[method-assign]
    DynamoHandler._contains_duplicates = _contains_duplicates  # type: ignore[method-assign]
    DynamoHandler.parse_parameters = _fast_parse_parameters  # type: ignore[method-assign]
    responses.create_condition_expression_parser = _CheckedCondition
    Item.__init__ = _item_init  # type: ignore[method-assign]
    models.UpdateExpressionParser = responses.UpdateExpressionParser = _cached_parser(_originals["update_parser"])  # type: ignore[misc]
    DynamoDBBackend.transact_write_items = _transact_write_items  # type: ignore[method-assign]
    Table.query = _partition_query(_originals["query"])  # type: ignore[method-assign]
    DynamoHandler.call_action = _serialised(_originals["call_action"])  # type: ignore[method-assign]
    from bulk_restore_cli.local import partiql

    partiql.install()  # ExecuteStatement and BatchExecuteStatement (bulk_restore_cli.local.partiql)
    try:
        from moto.dynamodbstreams.responses import DynamoDBStreamsHandler
    except ImportError:  # pragma: no cover - moto without DynamoDB Streams
        return
    streams_call = DynamoDBStreamsHandler.__dict__.get("call_action")
    _originals["streams_call_action"] = streams_call
    DynamoDBStreamsHandler.call_action = _serialised(streams_call or DynamoDBStreamsHandler.call_action)  # type: ignore[method-assign]


def _unpatch() -> None:
    import moto.dynamodb.models as models
    import moto.dynamodb.responses as responses
    from moto.core.responses import ActionResult
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.dynamo_type import Item
    from moto.dynamodb.models.table import Table
    from moto.dynamodb.responses import DynamoHandler, DynamoResult

    if _originals["parse_parameters"] is None:
        del DynamoHandler.parse_parameters
    else:
        DynamoHandler.parse_parameters = _originals["parse_parameters"]  # type: ignore[method-assign]
    responses.create_condition_expression_parser = _originals["condition_parser"]
    Item.__init__ = _originals["item_init"]  # type: ignore[method-assign]
    if _originals["execute_result"] is ActionResult.execute_result:
        del DynamoResult.execute_result
    else:
        DynamoResult.execute_result = _originals["execute_result"]  # type: ignore[method-assign]
    DynamoResult.__init__ = _originals["result_init"]  # type: ignore[method-assign]
    Item.size = _originals["item_size"]  # type: ignore[method-assign]
    DynamoHandler._contains_duplicates = _originals["contains_duplicates"]  # type: ignore[method-assign]
    models.UpdateExpressionParser = responses.UpdateExpressionParser = _originals["update_parser"]  # type: ignore[misc]
    DynamoDBBackend.transact_write_items = _originals["transact_write_items"]  # type: ignore[method-assign]
    Table.query = _originals["query"]  # type: ignore[method-assign]
    DynamoHandler.call_action = _originals["call_action"]  # type: ignore[method-assign]
    from bulk_restore_cli.local import partiql

    partiql.uninstall()
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

    def install(self) -> DynamoDBEmulation:
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

    def __enter__(self) -> DynamoDBEmulation:
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
