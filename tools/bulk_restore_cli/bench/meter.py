"""Counting what the functions ask of AWS: botocore event hooks on their clients.

``RequestMeter.attach(client, origin)`` registers three hooks on a boto3 client:
``before-parameter-build`` keeps the call's parameters, ``before-call`` starts the clocks (and
asks the capacity model for the size of the items a write will replace), ``after-call`` (which
botocore also emits for error answers) records one ``Request``. ``origin`` says who makes the
request: "code" (our functions, through wiring.services()) or "esm" (Lambda's SQS event source
mapping polling for us: not our code, but billed SQS requests).

``RequestMeter.wrap(function, memory_mb, handler)`` makes each invocation one ``Invocation``:
its wall and CPU time, and the requests made while it ran (from any thread: handlers run one
at a time in the benchmark).

DynamoDB capacity is computed from what was read and written, with DynamoDB's rules: writes
1 WRU per started KB of the larger of the old and the new item (2 inside TransactWriteItems),
deletes by the old item's size; strongly consistent reads 1 RRU per started 4 KB (eventually
consistent 0.5), GetItem/BatchGetItem per item, Query on the summed size of the items returned,
a minimum of one unit per item or query. moto's own ConsumedCapacity figures are constants, so
they are not used.
"""

from __future__ import annotations

import base64
import itertools
import math
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

SQS_BILLING_CHUNK = 64 * 1024  # SQS and SNS bill a request per started 64 KB of payload


@dataclass(slots=True)
class Request:
    service: str  # "dynamodb", "s3", "sqs", "sns"
    operation: str  # "TransactWriteItems"
    origin: str  # "code" or "esm"
    function: str  # the function whose invocation made it ("" outside any)
    invocation: int
    pooled: bool  # made on another thread than the invocation's (the restore workers' pool)
    status: int
    error: str
    seconds: float  # wall time inside the call (the emulator's work and this meter's included)
    cpu_s: float  # this thread's CPU time inside the call (the same)
    billed: int = 1  # billed requests (SQS/SNS: per 64 KB of payload)
    messages: int = 0  # SQS messages sent, received or deleted; SNS messages published
    wru: float = 0.0
    rru: float = 0.0
    payload_bytes: int = 0
    at: float = 0.0  # when the answer came (epoch seconds)
    detail: dict[str, Any] = field(default_factory=dict)  # e.g. the published message


@dataclass(slots=True)
class Invocation:
    function: str
    index: int
    memory_mb: int
    thread: int
    records: int = 0
    wall_s: float = 0.0
    cpu_s: float = 0.0


# ---- DynamoDB item sizes and capacity units --------------------------------------------------


def _number_size(text: str) -> int:
    digits = text.lstrip("-").replace(".", "").lstrip("0").rstrip("0") or "0"
    return (len(digits) + 1) // 2 + 1


def value_size(value: dict[str, Any]) -> int:
    """Bytes of one AttributeValue ({"S": ...}, {"M": {...}}, ...), as DynamoDB counts them."""
    ((kind, v),) = value.items()
    if kind == "S":
        return len(v.encode("utf-8"))
    if kind == "N":
        return _number_size(str(v))
    if kind == "B":
        return len(v) if isinstance(v, (bytes, bytearray)) else len(base64.b64decode(v))
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(s.encode("utf-8")) for s in v)
    if kind == "NS":
        return sum(_number_size(str(n)) for n in v)
    if kind == "BS":
        return sum(len(b) for b in v)
    if kind == "L":
        return 3 + sum(1 + value_size(e) for e in v)
    if kind == "M":
        return 3 + sum(1 + len(k.encode("utf-8")) + value_size(e) for k, e in v.items())
    raise ValueError(f"unknown attribute type {kind}")


def item_size(item: dict[str, Any] | None) -> int:
    if not item:
        return 0
    return sum(len(name.encode("utf-8")) + value_size(value) for name, value in item.items())


def _write_units(old: int, new: int) -> int:
    return max(1, math.ceil(max(old, new) / 1024))


def _read_units(size: int, consistent: bool) -> float:
    return max(1, math.ceil(size / 4096)) * (1.0 if consistent else 0.5)


ItemLookup = Callable[[str, dict[str, Any]], dict[str, Any] | None]  # (table, key or item) -> the stored item


class DynamoCapacity:
    """Capacity units of DynamoDB calls, from the sizes of the items read and written."""

    def __init__(self, lookup: ItemLookup):
        self.lookup = lookup

    @staticmethod
    def _targets(operation: str, params: dict[str, Any]) -> list[tuple[str, str, dict[str, Any], bool]]:
        """(table, "Put"/"Update"/"Delete", key or new item, transactional) for every item a write touches."""
        if operation == "PutItem":
            return [(params["TableName"], "Put", params["Item"], False)]
        if operation in ("UpdateItem", "DeleteItem"):
            return [(params["TableName"], operation.removesuffix("Item"), params["Key"], False)]
        found: list[tuple[str, str, dict[str, Any], bool]] = []
        if operation == "TransactWriteItems":
            for action in params["TransactItems"]:
                ((kind, body),) = action.items()
                if kind in ("Put", "Update", "Delete"):
                    found.append((body["TableName"], kind, body["Item"] if kind == "Put" else body["Key"], True))
        elif operation == "BatchExecuteStatement":
            for statement in params["Statements"]:
                target = _statement_target(statement)
                if target is not None:
                    found.append(target)
        elif operation == "BatchWriteItem":
            for table, requests in params["RequestItems"].items():
                for request in requests:
                    if "PutRequest" in request:
                        found.append((table, "Put", request["PutRequest"]["Item"], False))
                    else:
                        found.append((table, "Delete", request["DeleteRequest"]["Key"], False))
        return found

    def before(self, operation: str, params: dict[str, Any]) -> list[int]:
        return [item_size(self.lookup(table, key)) for table, _, key, _ in self._targets(operation, params)]

    def units(self, operation: str, params: dict[str, Any], parsed: dict[str, Any], old_sizes: list[int]) -> tuple[float, float]:
        """(WRU, RRU) of one call."""
        if operation in ("PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem", "BatchExecuteStatement"):
            wru = 0.0
            unprocessed = parsed.get("UnprocessedItems") or {}
            refused = [bool(r.get("Error")) for r in parsed.get("Responses", [])]
            for i, ((table, kind, key_or_item, transactional), old) in enumerate(
                zip(self._targets(operation, params), old_sizes, strict=True)
            ):
                if operation == "BatchWriteItem" and unprocessed:
                    continue  # charged when retried (a simplification: moto never leaves items unprocessed)
                if operation == "BatchExecuteStatement" and i < len(refused) and refused[i]:
                    wru += _write_units(old, old)  # a failed condition is charged as a write of the item as it is
                    continue
                if kind == "Delete":
                    new = 0
                elif kind == "Put":
                    new = item_size(key_or_item)
                else:
                    new = item_size(self.lookup(table, key_or_item))
                wru += _write_units(old, new) * (2 if transactional else 1)
            return wru, 0.0
        if operation == "GetItem":
            return 0.0, _read_units(item_size(parsed.get("Item")), bool(params.get("ConsistentRead")))
        if operation == "BatchGetItem":
            rru = 0.0
            for table, request in params["RequestItems"].items():
                consistent = bool(request.get("ConsistentRead"))
                items = (parsed.get("Responses") or {}).get(table, [])
                left = len(((parsed.get("UnprocessedKeys") or {}).get(table) or {}).get("Keys", []))
                rru += sum(_read_units(item_size(i), consistent) for i in items)
                rru += (len(request["Keys"]) - len(items) - left) * _read_units(0, consistent)  # keys of no item
            return 0.0, rru
        if operation in ("Query", "Scan"):
            size = sum(item_size(i) for i in parsed.get("Items", []))
            return 0.0, _read_units(size, bool(params.get("ConsistentRead")))
        return 0.0, 0.0


_INSERT_NAMES = re.compile(r"'([^']+)'\s*:\s*\?")
_TABLE = re.compile(r'^\s*(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+"?([A-Za-z0-9_.-]+)"?', re.IGNORECASE)


def _statement_target(statement: dict[str, Any]) -> tuple[str, str, dict[str, Any], bool] | None:
    """(table, kind, key or new item, False) of a PartiQL single-item write as the job store writes
    them: INSERT with every value a parameter; UPDATE/DELETE whose WHERE starts with the key's
    "pk" = ? AND "sk" = ?."""
    text, values = statement["Statement"], list(statement.get("Parameters") or [])
    table = _TABLE.match(text)
    if table is None:
        return None
    if text.lstrip().upper().startswith("INSERT"):
        return table.group(1), "Put", dict(zip(_INSERT_NAMES.findall(text), values, strict=True)), False
    where = text.upper().index(" WHERE ")
    before = text[:where].count("?")
    kind = "Update" if text.lstrip().upper().startswith("UPDATE") else "Delete"
    return table.group(1), kind, {"pk": values[before], "sk": values[before + 1]}, False


def moto_item_lookup(account_id: str = "123456789012", region: str = "us-east-1") -> ItemLookup:
    """Items as moto (in this process) stores them, in the wire format."""
    from moto.dynamodb.models import dynamodb_backends

    backend = dynamodb_backends[account_id][region]

    def lookup(table_name: str, key_or_item: dict[str, Any]) -> dict[str, Any] | None:
        table = backend.get_table(table_name)
        key = {table.hash_key_attr: key_or_item[table.hash_key_attr]}
        if table.range_key_attr:
            key[table.range_key_attr] = key_or_item[table.range_key_attr]
        item = backend.get_item(table_name, key)
        return item.to_json()["Attributes"] if item is not None else None

    return lookup


def _wire(value: Any) -> Any:
    """boto3's parameters hold Decimals and bytes where the wire has strings: normalise for sizing."""
    if isinstance(value, dict):
        return {k: _wire(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_wire(v) for v in value]
    if isinstance(value, Decimal):
        return str(value)
    return value


# ---- the meter ---------------------------------------------------------------------------------


class RequestMeter:
    def __init__(self, capacity: DynamoCapacity | None = None):
        self.capacity = capacity
        self.requests: list[Request] = []
        self.invocations: list[Invocation] = []
        self.paused = False
        self._current: Invocation | None = None
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()
        self._log_sink: Any = None

    # ---- clients ----

    def attach(self, client: Any, origin: str) -> None:
        events = client.meta.events
        tag = f"bench-meter-{id(self)}-{origin}"
        events.register("before-parameter-build", self._keep_params, unique_id=f"{tag}-params")
        events.register("before-call", self._start, unique_id=f"{tag}-start")
        events.register("after-call", lambda **kw: self._finish(origin, **kw), unique_id=f"{tag}-finish")

    @staticmethod
    def _keep_params(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["bench.params"] = params

    def _start(self, model: Any, context: dict[str, Any], **_: Any) -> None:
        if self.paused:
            return
        # The clocks start before the metering's own work, so that it counts as the call's, not the function's.
        context["bench.started"] = (time.perf_counter(), time.thread_time())
        if self.capacity is not None and model.service_model.service_name == "dynamodb":
            context["bench.old_sizes"] = self.capacity.before(model.name, _wire(context.get("bench.params") or {}))

    def _finish(self, origin: str, http_response: Any, parsed: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        started = context.get("bench.started")
        if self.paused or started is None:
            return
        service, operation = model.service_model.service_name, model.name
        params = context.get("bench.params") or {}
        invocation = self._current
        request = Request(
            service=service,
            operation=operation,
            origin=origin,
            function=invocation.function if invocation else "",
            invocation=invocation.index if invocation else 0,
            pooled=invocation is not None and threading.get_ident() != invocation.thread,
            status=int(getattr(http_response, "status_code", 0) or 0),
            error=str((parsed.get("Error") or {}).get("Code", "")),
            seconds=0.0,
            cpu_s=0.0,
        )
        if service == "dynamodb" and self.capacity is not None:
            request.wru, request.rru = self.capacity.units(operation, _wire(params), parsed, context.get("bench.old_sizes") or [])
        elif service in ("sqs", "sns"):
            self._messages(request, params, parsed)
        elif service == "s3" and operation == "GetObject":
            request.payload_bytes = int(parsed.get("ContentLength") or 0)
        request.at = time.time()
        request.seconds, request.cpu_s = time.perf_counter() - started[0], time.thread_time() - started[1]
        with self._lock:
            self.requests.append(request)

    @staticmethod
    def _messages(request: Request, params: dict[str, Any], parsed: dict[str, Any]) -> None:
        operation = request.operation
        if operation == "SendMessage":
            sizes = [len(params.get("MessageBody", "").encode())]
        elif operation == "SendMessageBatch":
            sizes = [len(e.get("MessageBody", "").encode()) for e in params.get("Entries", [])]
        elif operation == "ReceiveMessage":
            sizes = [len(m.get("Body", "").encode()) for m in parsed.get("Messages", [])]
        elif operation == "DeleteMessageBatch":
            sizes = [0] * len(params.get("Entries", []))
        elif operation == "Publish":
            sizes = [len(params.get("Message", "").encode())]
            request.detail["message"] = params.get("Message", "")
        else:
            sizes = []
        request.messages = len(sizes)
        request.payload_bytes = sum(sizes)
        if operation in ("SendMessage", "SendMessageBatch", "ReceiveMessage", "Publish"):
            request.billed = max(1, math.ceil(request.payload_bytes / SQS_BILLING_CHUNK))

    # ---- functions ----

    def wrap(self, function: str, memory_mb: int, handler: Callable[[dict, Any], Any], log_sink: Any = None) -> Callable[[dict, Any], Any]:
        """The handler, measured: one Invocation per call."""

        def invoke(event: dict, context: Any) -> Any:
            invocation = Invocation(
                function,
                next(self._numbers),
                memory_mb,
                threading.get_ident(),
                records=len(event.get("Records") or []) if isinstance(event, dict) else 0,
            )
            self._current = invocation
            if log_sink is not None:
                log_sink.function = function
            wall, cpu = time.perf_counter(), time.process_time()
            try:
                return handler(event, context)
            finally:
                invocation.wall_s = time.perf_counter() - wall
                invocation.cpu_s = time.process_time() - cpu
                self._current = None
                if log_sink is not None:
                    log_sink.function = ""
                self.invocations.append(invocation)

        return invoke
