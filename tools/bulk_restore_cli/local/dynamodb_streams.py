"""DynamoDB Streams on moto as DynamoDB writes and serves them: records, shards, iterators, retention.

What DynamoDB does (DynamoDB developer guide, "Change data capture for DynamoDB Streams"; the
DynamoDB Streams API reference; botocore's ``dynamodbstreams`` model):

- a table's stream gets one record per item a write changed, in the order of the changes:
  INSERT (a new item), MODIFY (an item's attributes changed), REMOVE (an item deleted). A PutItem
  or UpdateItem that leaves the item as it was writes no record, nor does a DeleteItem of an item
  that is not there. A transaction, a BatchWriteItem or a PartiQL statement writes one record per
  item it changed, under the same rule;
- a record is ``{eventID, eventName, eventVersion, eventSource: "aws:dynamodb", awsRegion,
  dynamodb: {ApproximateCreationDateTime, Keys, NewImage, OldImage, SequenceNumber, SizeBytes,
  StreamViewType}}``: the creation time in epoch seconds rounded down to the second, the images as
  the view type asks (KEYS_ONLY: none; NEW_IMAGE; OLD_IMAGE; NEW_AND_OLD_IMAGES), the size of the
  keys and images in bytes (the DynamoDB Lambda guide's example records are sized exactly so);
- records live in shards. A shard has a StartingSequenceNumber, and an EndingSequenceNumber once
  it is closed; when a shard splits, it closes and its children (ParentShardId: it) take the
  later writes by partition key, so one item's records stay in order if a reader finishes a parent
  before its children. Sequence numbers are strings of 21 to 40 digits that grow within a shard;
  records are kept 24 hours (older ones are trimmed);
- DescribeStream lists the shards (Limit up to 100, ExclusiveStartShardId, LastEvaluatedShardId;
  ShardFilter CHILD_SHARDS names a shard's children). GetShardIterator gives a position:
  TRIM_HORIZON (the oldest record kept), LATEST (after the newest), AT_ / AFTER_SEQUENCE_NUMBER,
  AT_TIMESTAMP; an iterator expires 15 minutes after it is issued (ExpiredIteratorException), a
  position whose records were trimmed answers TrimmedDataAccessException. GetRecords gives up to
  Limit (at most 1,000; more is a LimitExceededException, as the model documents) records, at
  most 1 MB, and a NextShardIterator, left out once a closed shard has been read to its end.
  ListStreams pages with Limit and ExclusiveStartStreamArn.

What moto 5.2 does: one shard per table, with every record since the table was made; an
UpdateItem that creates an item writes two INSERT records (the key alone, then the item), and one
that changes nothing still writes a MODIFY; every record says ``awsRegion: us-east-1`` and
``eventVersion: 1.0`` and is sized as its JSON text; GetShardIterator takes any sequence number
and keeps every iterator it hands out (and every NextShardIterator) for ever; DescribeStream has
no paging, no ParentShardId, no split. And in-process (``mock_aws``), every call that names a
stream (DescribeStream, GetShardIterator) answered 404 "Not yet implemented": botocore sends
calls with a StreamArn to the account's endpoint, ``{account}.streams-ddb.{region}.amazonaws.com``,
which moto does not route (ListStreams, without an ARN, goes to ``streams.dynamodb.{region}`` and
worked). Its server routes by the request's signature, so it served them.

What this layer changes (``DynamoDBStreamsEmulation``, installed for the local stack's server and
for the tests' in-process moto alike, like local/dynamodb.py):

- a table's stream is a ``StreamLog`` where moto keeps its shard (``table.stream_shard``): moto's
  writes call its ``add`` as before. It writes no record for a write that changed nothing, one
  record per UpdateItem (the item before the call and after it), the table's region, event
  version 1.1 (what the stream and the Lambda guide's events carry today), the size as DynamoDB
  counts it, and a stream label with milliseconds, as DynamoDB's;
- shards with parents: ``split_shard`` closes a shard and opens two children, each taking half of
  the partition-key hash space, as DynamoDB does when a partition splits;
- DescribeStream, GetShardIterator, GetRecords and ListStreams as the API reference says, each at
  the cost of what it answers: a sequence number or a time is found by bisection, GetRecords reads
  from its position on, never the records before it. Iterators carry their position (nothing is
  kept per iterator). Retention is applied when reading (records older than 24 hours are not
  served); records are kept in memory as moto kept them;
- the account-scoped endpoint is routed to moto's DynamoDB Streams handler in-process;
- disabling a stream closes its shards (their records stay readable, the stream DISABLED);
  enabling it again makes a new stream (moto refused: StreamAlreadyEnabledException).

Every call runs under local/dynamodb.py's request lock, as DynamoDB's calls do. ``moto``'s
``stream_shard.items`` stays the stream's records in write order (all shards), with ``to_json()``
giving each record as GetRecords answers it. Not emulated: TTL deletions (moto never expires
items), the four-hourly shard roll-over, a deleted table's stream staying readable for 24 hours.
"""

from __future__ import annotations

import base64
import bisect
import datetime as dt
import functools
import hashlib
import json
import math
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from bulk_restore_cli.local.dynamodb import DynamoDBEmulation, attributes_size

RETENTION_SECONDS = 24 * 3600
ITERATOR_SECONDS = 15 * 60
MAX_RECORDS = 1000  # GetRecords' Limit, at most
MAX_ANSWER_BYTES = 1024 * 1024  # GetRecords' answer, at most (sized as the records' SizeBytes)
MAX_SHARDS = 100  # DescribeStream's Limit, at most
MAX_STREAMS = 100  # ListStreams' Limit, at most
EVENT_VERSION = "1.1"
FIRST_SEQUENCE = 10**20  # 21 digits, the shortest sequence number the model allows
HASH_SPACE = 1 << 128
JSON_CONTENT_TYPE = "application/x-amz-json-1.0"
ACCOUNT_ENDPOINT = r"https?://(.+)\.streams-ddb\.(.+)\.amazonaws\.com"
ITERATOR_TYPES = ("TRIM_HORIZON", "LATEST", "AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER", "AT_TIMESTAMP")
_STREAM_ARN = re.compile(r"^arn:[^:]+:dynamodb:([^:]+):([^:]+):table/([^/]+)/stream/(.+)$")
_DIGITS = re.compile(r"^[0-9]{1,40}$")

_LOCK = DynamoDBEmulation().lock  # local/dynamodb.py's: every DynamoDB and DynamoDB Streams request
_state = threading.Lock()
_holders: set[int] = set()
_originals: dict[str, Any] = {}
_clock: Callable[[], float] = time.time
_scopes = threading.local()


def now() -> float:
    """The streams' clock (epoch seconds): records' creation times, retention, iterator expiry."""
    return _clock()


def installed() -> bool:
    """Whether the layer is installed (by any holder): moto's writes then go through it."""
    return bool(_holders)


# ---- records ------------------------------------------------------------------------------------


def attribute_json(value: Any) -> dict[str, Any]:
    """A moto attribute value as DynamoDB's JSON writes it (binary values in base64)."""
    kind, raw = value.type, value.value
    if kind == "B":
        return {"B": _base64(raw)}
    if kind == "BS":
        return {"BS": [_base64(v) for v in raw]}
    if kind == "M":
        return {"M": {k: attribute_json(v) for k, v in raw.items()}}
    if kind == "L":
        return {"L": [attribute_json(v) for v in raw]}
    if kind in ("SS", "NS"):
        return {kind: list(raw)}
    return {kind: raw}


def _base64(raw: Any) -> str:
    if isinstance(raw, (bytes, bytearray)):
        return base64.b64encode(raw).decode("ascii")
    return str(raw)  # moto keeps some binary values as their base64 text already


def _image(item: Any) -> dict[str, Any]:
    return {name: attribute_json(value) for name, value in item.attrs.items()}


def _size(attributes: dict[str, Any]) -> int:
    return attributes_size(attributes)


def _key_hash(value: Any) -> int:
    """Where a partition key falls in the hash space the shards divide (a key is a string, number or
    binary: hashable as it is, and one job's writes fall on a few partitions, so the hash is kept)."""
    raw = value.value
    return _hash_of(value.type, bytes(raw) if isinstance(raw, bytearray) else raw)


@functools.lru_cache(maxsize=4096)
def _hash_of(kind: str, raw: Any) -> int:
    text = json.dumps({kind: _base64(raw) if kind == "B" else raw}, sort_keys=True, separators=(",", ":"))
    return int.from_bytes(hashlib.md5(text.encode("utf-8"), usedforsecurity=False).digest(), "big")


class StreamRecord:
    """One record, kept as GetRecords answers it (``to_json``)."""

    __slots__ = ("body", "created", "sequence", "shard")

    def __init__(self, shard: Shard, sequence: int, created: float, body: dict[str, Any]):
        self.shard, self.sequence, self.created, self.body = shard, sequence, created, body

    def to_json(self) -> dict[str, Any]:
        return self.body

    @property
    def size(self) -> int:
        return int(self.body["dynamodb"]["SizeBytes"])

    @property
    def second(self) -> int:
        return int(self.body["dynamodb"]["ApproximateCreationDateTime"])

    def text(self) -> str:
        return json.dumps(self.body, separators=(",", ":"))


class Shard:
    """A shard: its records in order, its sequence-number range and its share of the key hashes."""

    def __init__(self, shard_id: str, parent_id: str | None, start: int, low: int, high: int, opened: float):
        self.id, self.parent_id, self.start = shard_id, parent_id, start
        self.low, self.high = low, high
        self.end: int | None = None
        self.opened, self.closed_at = opened, None
        self.records: list[StreamRecord] = []
        self.sequences: list[int] = []
        self.created: list[float] = []

    @property
    def is_open(self) -> bool:
        return self.end is None

    def append(self, record: StreamRecord) -> None:
        self.records.append(record)
        self.sequences.append(record.sequence)
        self.created.append(record.created)

    def drop(self, record: StreamRecord) -> None:
        """Take back a record (a transaction undone)."""
        at = len(self.records) - 1 if self.records and self.records[-1] is record else self.records.index(record)
        del self.records[at], self.sequences[at], self.created[at]

    def trim_index(self, at: float) -> int:
        """The position of the oldest record kept at time ``at``."""
        return bisect.bisect_left(self.created, at - RETENTION_SECONDS)

    def describe(self) -> dict[str, Any]:
        described: dict[str, Any] = {"ShardId": self.id, "SequenceNumberRange": {"StartingSequenceNumber": str(self.start)}}
        if self.end is not None:
            described["SequenceNumberRange"]["EndingSequenceNumber"] = str(self.end)
        if self.parent_id is not None:
            described["ParentShardId"] = self.parent_id
        return described


def _shard_id(at: float) -> str:
    return f"shardId-{int(at * 1000):020d}-{secrets.token_hex(4)}"


class _Journal(list):  # type: ignore[type-arg]
    """Every record of the stream in write order (moto's ``stream_shard.items``). Deleting records
    from it (local/dynamodb.py undoes a failed transaction's records so) takes them from their shards."""

    def __delitem__(self, index: Any) -> None:
        removed = self[index] if isinstance(index, slice) else [self[index]]
        for record in reversed(removed):
            record.shard.drop(record)
        super().__delitem__(index)


class StreamLog:
    """A table's stream: its shards and records. It stands where moto keeps its one shard
    (``table.stream_shard``), and moto's writes call ``add(old item, new item)``."""

    def __init__(self, table: Any, label: str, view_type: str, created: float):
        self.table, self.label, self.view_type, self.created = table, label, view_type, created
        self.arn = f"{table.table_arn}/stream/{label}"
        self.enabled = True
        self._next = FIRST_SEQUENCE
        root = Shard(_shard_id(created), None, self._sequence(), 0, HASH_SPACE, created)
        self.shards: list[Shard] = [root]
        self._by_id = {root.id: root}
        self.items = _Journal()

    # ---- what moto reads of its StreamShard ---------------------------------------------------

    @property
    def id(self) -> str:
        """The first open shard's id (the last shard's once the stream is disabled)."""
        return next((s.id for s in self.shards if s.is_open), self.shards[-1].id)

    @property
    def starting_sequence_number(self) -> int:
        return self.shards[0].start

    @property
    def created_on(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.created, dt.UTC)

    def to_json(self) -> dict[str, Any]:
        return self._by_id[self.id].describe()

    def get(self, start: int, quantity: int) -> list[dict[str, Any]]:
        """moto's StreamShard.get: records from sequence number ``start`` on, in write order."""
        at = bisect.bisect_left(self.items, start, key=lambda record: record.sequence)
        return [r.to_json() for r in self.items[at : at + quantity]]

    # ---- writing ------------------------------------------------------------------------------

    def _sequence(self) -> int:
        self._next += 1
        return self._next - 1

    def add(self, old: Any, new: Any) -> None:
        """A write changed an item from ``old`` to ``new`` (None: absent). Inside an UpdateItem the
        change is noted and written once the call ends (``_writes``)."""
        scope = getattr(_scopes, "active", None)
        if scope is not None and id(self) in scope:
            item = new if new is not None else old
            scope[id(self)][1].setdefault((item.hash_key, item.range_key), old)
            return
        self.write(old, new)

    def write(self, old: Any, new: Any) -> StreamRecord | None:
        """The record for one item's change, if it changed; None otherwise."""
        if (old is None and new is None) or not self.enabled:
            return None
        if old is not None and new is not None and old.attrs == new.attrs:
            return None  # DynamoDB writes no record for a write that leaves the item as it was
        item = new if new is not None else old
        table = self.table
        keys = {table.hash_key_attr: item.hash_key}
        if table.range_key_attr is not None:
            keys[table.range_key_attr] = item.range_key
        key_hash = _key_hash(item.hash_key)
        shard = next((s for s in self.shards if s.is_open and s.low <= key_hash < s.high), None)
        if shard is None:  # pragma: no cover - the open shards always cover the hash space
            shard = next(s for s in reversed(self.shards) if s.is_open)
        created = now()
        if shard.created and created < shard.created[-1]:
            created = shard.created[-1]  # a clock set back: the records stay in time order
        sequence = self._sequence()
        body_db: dict[str, Any] = {
            "ApproximateCreationDateTime": math.floor(created),
            "Keys": {name: attribute_json(value) for name, value in keys.items()},
        }
        size = _size(keys)
        if new is not None and self.view_type in ("NEW_IMAGE", "NEW_AND_OLD_IMAGES"):
            body_db["NewImage"] = _image(new)
            size += _size(new.attrs)
        if old is not None and self.view_type in ("OLD_IMAGE", "NEW_AND_OLD_IMAGES"):
            body_db["OldImage"] = _image(old)
            size += _size(old.attrs)
        body_db.update(SequenceNumber=str(sequence), SizeBytes=size, StreamViewType=self.view_type)
        body = {
            "eventID": uuid.uuid4().hex,
            "eventName": "INSERT" if old is None else "REMOVE" if new is None else "MODIFY",
            "eventVersion": EVENT_VERSION,
            "eventSource": "aws:dynamodb",
            "awsRegion": table.region_name,
            "dynamodb": body_db,
        }
        record = StreamRecord(shard, sequence, created, body)
        shard.append(record)
        self.items.append(record)
        return record

    # ---- shards -------------------------------------------------------------------------------

    def _close(self, shard: Shard, at: float) -> None:
        shard.end = shard.sequences[-1] if shard.sequences else shard.start
        shard.closed_at = at

    def split(self, shard_id: str | None = None) -> list[str]:
        """Close an open shard (each open one, without ``shard_id``) and open two children, each
        with half its key hashes. Returns the children's ids."""
        targets = [s for s in self.shards if s.is_open and (shard_id is None or s.id == shard_id)]
        if not targets:
            raise ValueError(f"no open shard {shard_id} in {self.arn}" if shard_id else f"{self.arn} has no open shard")
        at = now()
        children = []
        for parent in targets:
            self._close(parent, at)
            middle = (parent.low + parent.high) // 2
            for low, high in ((parent.low, middle), (middle, parent.high)):
                child = Shard(_shard_id(at), parent.id, self._sequence(), low, high, at)
                self.shards.append(child)
                self._by_id[child.id] = child
                children.append(child.id)
        return children

    def disable(self) -> None:
        at = now()
        for shard in self.shards:
            if shard.is_open:
                self._close(shard, at)
        self.enabled = False

    def shard(self, shard_id: str) -> Shard | None:
        return self._by_id.get(shard_id)

    def visible_shards(self, at: float) -> list[Shard]:
        """The shards DescribeStream lists: all but those closed before the retention period."""
        return [s for s in self.shards if s.closed_at is None or s.closed_at >= at - RETENTION_SECONDS]


# ---- moto's tables ------------------------------------------------------------------------------


def _logs(table: Any) -> dict[str, StreamLog]:
    """The table's streams by label, oldest first (disabled ones stay readable)."""
    logs = table.__dict__.get("_bulk_restore_streams")
    if logs is None:
        logs = table.__dict__["_bulk_restore_streams"] = {}
    return logs


def _label(at: float, taken: dict[str, StreamLog]) -> str:
    """A stream label as DynamoDB writes them: the time, to the millisecond (one not yet used)."""
    millis = int(at * 1000)
    while True:
        label = dt.datetime.fromtimestamp(millis / 1000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
        if label not in taken:
            return label
        millis += 1


def adopt(table: Any) -> StreamLog | None:
    """The table's current stream as a StreamLog (replacing moto's StreamShard, its records taken
    over); None when the table has no enabled stream."""
    from moto.dynamodb.models.table import StreamShard

    shard = table.stream_shard
    if isinstance(shard, StreamLog) or shard is None:
        return shard
    if not isinstance(shard, StreamShard):  # pragma: no cover - something else stands there
        return None
    spec = table.stream_specification or {}
    if not spec.get("StreamEnabled"):  # moto keeps writing to a disabled stream's shard: no more
        table.stream_shard = None
        return None
    logs = _logs(table)
    label = table.latest_stream_label or _label(now(), logs)
    log = StreamLog(table, label, spec.get("StreamViewType", "NEW_AND_OLD_IMAGES"), now())
    root = log.shards[0]
    for old in shard.items:  # moto's records: kept, renumbered in this stream's sequence
        body = json.loads(json.dumps(old.to_json(), default=lambda d: d.timestamp()))
        created = float(body["dynamodb"].get("ApproximateCreationDateTime") or log.created)
        sequence = log._sequence()
        body["dynamodb"].update(ApproximateCreationDateTime=math.floor(created), SequenceNumber=str(sequence))
        body.update(eventVersion=EVENT_VERSION, awsRegion=table.region_name)
        record = StreamRecord(root, sequence, created, body)
        root.append(record)
        log.items.append(record)
    logs[label] = log
    table.stream_shard = log
    return log


def _set_stream_specification(self: Any, streams: dict[str, Any] | None) -> None:
    """moto's Table.set_stream_specification, with a StreamLog for an enabled stream; disabling
    closes the stream's shards (readable still) and stops its records."""
    current = self.__dict__.get("stream_shard")
    _originals["set_stream_specification"](self, streams)
    enabled = bool(self.stream_specification and self.stream_specification.get("StreamEnabled"))
    if not enabled:
        if isinstance(current, StreamLog):
            current.disable()
        self.stream_shard = None
        return
    if isinstance(current, StreamLog) and current.enabled:  # pragma: no cover - moto refuses a second stream
        self.stream_shard = current
        return
    logs = _logs(self)
    at = now()
    self.latest_stream_label = _label(at, logs)
    log = StreamLog(self, self.latest_stream_label, self.stream_specification["StreamViewType"], at)
    logs[log.label] = log
    self.stream_shard = log


def _update_table_streams(self: Any, table: Any, stream_specification: dict[str, Any]) -> None:
    """moto's update_table_streams, letting a disabled stream be enabled again (a new stream)."""
    if (stream_specification.get("StreamEnabled") or stream_specification.get("StreamViewType")) and table.stream_shard is None:
        table.latest_stream_label = None  # moto refuses while a label is set; the old stream keeps its own
    _originals["update_table_streams"](self, table, stream_specification)


def _writes(original: Callable[..., Any]) -> Callable[..., Any]:
    """An item write (UpdateItem) whose records are written once it ends: one per item it changed,
    from the item before the call to the item after it."""

    def call(self: Any, table_name: str, *args: Any, **kwargs: Any) -> Any:
        try:
            table = self.get_table(table_name)
        except Exception:
            return original(self, table_name, *args, **kwargs)
        log = adopt(table)
        if log is None:
            return original(self, table_name, *args, **kwargs)
        active = getattr(_scopes, "active", None)
        if active is not None and id(log) in active:
            return original(self, table_name, *args, **kwargs)
        if active is None:
            active = _scopes.active = {}
        noted: dict[Any, Any] = {}
        active[id(log)] = (log, noted)
        try:
            return original(self, table_name, *args, **kwargs)
        finally:
            del active[id(log)]
            if not active:
                _scopes.active = None
            for (hash_key, range_key), old in noted.items():
                log.write(old, table.get_item(hash_key, range_key))

    call.__wrapped__ = original  # type: ignore[attr-defined]
    return call


# ---- the API ------------------------------------------------------------------------------------


class StreamsError(Exception):
    """An error answer of DynamoDB Streams."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message = code, message


def _not_found(what: str) -> StreamsError:
    return StreamsError("ResourceNotFoundException", f"Requested resource not found: {what}")


def find_stream(arn: Any) -> StreamLog:
    """The stream an ARN names (ResourceNotFoundException if there is none)."""
    from moto.dynamodb.models import dynamodb_backends

    match = _STREAM_ARN.match(arn) if isinstance(arn, str) else None
    if match is None:
        raise StreamsError("ValidationException", f"Invalid StreamArn: {arn}")
    region, account, table_name, label = match.groups()
    table = dynamodb_backends[account][region].tables.get(table_name)
    if table is None:
        raise _not_found(f"Stream: {arn} not found")
    adopt(table)
    log = _logs(table).get(label)
    if log is None:
        raise _not_found(f"Stream: {arn} not found")
    return log


def _limit(params: dict[str, Any], name: str, most: int, code: str = "ValidationException") -> int:
    value = params.get(name)
    if value is None:
        return most
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise StreamsError("ValidationException", f"{name} must be a whole number of 1 or more, not {value!r}")
    if value > most:
        raise StreamsError(code, f"{name} {value} is more than the most allowed, {most}")
    return value


def describe_stream(params: dict[str, Any]) -> dict[str, Any]:
    log = find_stream(params.get("StreamArn"))
    limit = _limit(params, "Limit", MAX_SHARDS)
    shards = log.visible_shards(now())
    shard_filter = params.get("ShardFilter")
    if shard_filter:
        if shard_filter.get("Type") != "CHILD_SHARDS" or not shard_filter.get("ShardId"):
            raise StreamsError("ValidationException", "ShardFilter: Type must be CHILD_SHARDS, with a ShardId")
        shards = [s for s in shards if s.parent_id == shard_filter["ShardId"]]
    start = params.get("ExclusiveStartShardId")
    if start:
        ids = [s.id for s in shards]
        shards = shards[ids.index(start) + 1 :] if start in ids else [s for s in shards if s.id > start]
    page = shards[:limit]
    table = log.table
    description: dict[str, Any] = {
        "StreamArn": log.arn,
        "StreamLabel": log.label,
        "StreamStatus": "ENABLED" if log.enabled else "DISABLED",
        "StreamViewType": log.view_type,
        "CreationRequestDateTime": log.created,
        "TableName": table.name,
        "KeySchema": table.schema,
        "Shards": [s.describe() for s in page],
    }
    if len(shards) > limit:
        description["LastEvaluatedShardId"] = page[-1].id
    return {"StreamDescription": description}


def list_streams(account: str, region: str, params: dict[str, Any]) -> dict[str, Any]:
    from moto.dynamodb.models import dynamodb_backends

    limit = _limit(params, "Limit", MAX_STREAMS)
    name = params.get("TableName")
    streams: list[StreamLog] = []
    for table in list(dynamodb_backends[account][region].tables.values()):
        if name is not None and table.name != name:
            continue
        adopt(table)
        streams.extend(_logs(table).values())
    start = params.get("ExclusiveStartStreamArn")
    if start:
        arns = [s.arn for s in streams]
        streams = streams[arns.index(start) + 1 :] if start in arns else []
    page = streams[:limit]
    answer: dict[str, Any] = {"Streams": [{"StreamArn": s.arn, "TableName": s.table.name, "StreamLabel": s.label} for s in page]}
    if len(streams) > limit:
        answer["LastEvaluatedStreamArn"] = page[-1].arn
    return answer


def _iterator(log: StreamLog, shard: Shard, position: int, issued: float) -> str:
    token = f"{shard.id}|{position}|{int(issued * 1000)}|{secrets.token_hex(8)}"
    return f"{log.arn}|1|{base64.b64encode(token.encode('ascii')).decode('ascii')}"


def _read_iterator(iterator: Any) -> tuple[StreamLog, Shard, int, float]:
    try:
        arn, version, token = str(iterator).rsplit("|", 2)
        shard_id, position, issued_ms, _nonce = base64.b64decode(token, validate=True).decode("ascii").split("|")
        if version != "1":
            raise ValueError(version)
    except (ValueError, UnicodeDecodeError) as exc:
        raise StreamsError("ValidationException", "Invalid ShardIterator") from exc
    log = find_stream(arn)
    shard = log.shard(shard_id)
    if shard is None:
        raise _not_found(f"Shard {shard_id} in {arn}")
    return log, shard, min(int(position), len(shard.records)), int(issued_ms) / 1000


def _sequence_number(value: Any) -> int:
    if not isinstance(value, str) or not _DIGITS.match(value):
        raise StreamsError("ValidationException", f"Invalid SequenceNumber: {value!r}")
    return int(value)


def get_shard_iterator(params: dict[str, Any]) -> dict[str, Any]:
    log = find_stream(params.get("StreamArn"))
    shard_id = params.get("ShardId")
    shard = log.shard(str(shard_id))
    if shard is None:
        raise _not_found(f"Shard {shard_id} in {log.arn}")
    kind = params.get("ShardIteratorType")
    at = now()
    trimmed = shard.trim_index(at)
    if kind == "TRIM_HORIZON":
        position = trimmed
    elif kind == "LATEST":
        position = len(shard.records)
    elif kind in ("AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER"):
        if params.get("SequenceNumber") is None:
            raise StreamsError("ValidationException", f"{kind} needs a SequenceNumber")
        number = _sequence_number(params["SequenceNumber"])
        if number < shard.start or (shard.end is not None and number > shard.end):
            raise StreamsError("ValidationException", f"SequenceNumber {number} is not in shard {shard.id}")
        find = bisect.bisect_left if kind == "AT_SEQUENCE_NUMBER" else bisect.bisect_right
        position = find(shard.sequences, number)
        if position < trimmed:
            raise StreamsError("TrimmedDataAccessException", f"The data at sequence number {number} has been trimmed")
    elif kind == "AT_TIMESTAMP":
        stamp = params.get("Timestamp")
        if not isinstance(stamp, (int, float)) or isinstance(stamp, bool):
            raise StreamsError("ValidationException", "AT_TIMESTAMP needs a Timestamp")
        if stamp > at:
            raise StreamsError("ValidationException", f"Timestamp {stamp} is in the future")
        position = max(trimmed, bisect.bisect_left(shard.records, stamp, key=lambda r: r.second))
    else:
        raise StreamsError("ValidationException", f"ShardIteratorType must be one of {', '.join(ITERATOR_TYPES)}, not {kind!r}")
    return {"ShardIterator": _iterator(log, shard, position, at)}


def get_records(params: dict[str, Any]) -> tuple[list[StreamRecord], str | None]:
    """The records from an iterator's position on (Limit, 1 MB) and the next iterator (None: a
    closed shard read to its end)."""
    if params.get("ShardIterator") is None:
        raise StreamsError("ValidationException", "ShardIterator is required")
    limit = _limit(params, "Limit", MAX_RECORDS, code="LimitExceededException")
    log, shard, position, issued = _read_iterator(params["ShardIterator"])
    at = now()
    if at - issued > ITERATOR_SECONDS:
        raise StreamsError("ExpiredIteratorException", "Iterator expired. The iterator was created more than 15 minutes ago")
    if position < shard.trim_index(at):
        raise StreamsError("TrimmedDataAccessException", "The data you are trying to access has been trimmed")
    records: list[StreamRecord] = []
    size = 0
    end = min(len(shard.records), position + limit)
    at_position = position
    while at_position < end:
        record = shard.records[at_position]
        if records and size + record.size > MAX_ANSWER_BYTES:
            break
        records.append(record)
        size += record.size
        at_position += 1
    if not shard.is_open and at_position >= len(shard.records):
        return records, None
    return records, _iterator(log, shard, at_position, at)


def get_records_answer(params: dict[str, Any]) -> str:
    records, following = get_records(params)
    tail = "" if following is None else "," + json.dumps({"NextShardIterator": following})[1:-1]
    return '{"Records":[' + ",".join(r.text() for r in records) + "]" + tail + "}"


# ---- moto's handler -------------------------------------------------------------------------------


def _handled(name: str) -> Callable[[Any], Any]:
    def action(self: Any) -> Any:
        from moto.core.exceptions import JsonRESTError

        params = json.loads(self.body) if self.body else {}
        try:
            with _LOCK:
                if name == "GetRecords":
                    body = get_records_answer(params)
                elif name == "DescribeStream":
                    body = json.dumps(describe_stream(params))
                elif name == "GetShardIterator":
                    body = json.dumps(get_shard_iterator(params))
                else:
                    body = json.dumps(list_streams(self.current_account, self.region, params))
        except StreamsError as exc:
            raise JsonRESTError(exc.code, exc.message) from exc
        return 200, {"Content-Type": JSON_CONTENT_TYPE}, body

    action.__name__ = re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()
    return action


_ACTIONS = {
    "describe_stream": "DescribeStream",
    "get_shard_iterator": "GetShardIterator",
    "get_records": "GetRecords",
    "list_streams": "ListStreams",
}


# ---- installing ---------------------------------------------------------------------------------


def _patch() -> None:
    import moto.backend_index as backend_index
    import moto.dynamodbstreams.urls as streams_urls
    from moto.dynamodb.models import DynamoDBBackend, dynamodb_backends
    from moto.dynamodb.models.table import Table
    from moto.dynamodbstreams.responses import DynamoDBStreamsHandler

    _originals.update(
        set_stream_specification=Table.__dict__["set_stream_specification"],
        update_table_streams=DynamoDBBackend.__dict__["update_table_streams"],
        update_item=DynamoDBBackend.__dict__["update_item"],
        actions={name: DynamoDBStreamsHandler.__dict__.get(name) for name in _ACTIONS},
    )
    Table.set_stream_specification = _set_stream_specification  # type: ignore[method-assign]
    DynamoDBBackend.update_table_streams = _update_table_streams  # type: ignore[method-assign]
    DynamoDBBackend.update_item = _writes(_originals["update_item"])  # type: ignore[method-assign]
    for name, operation in _ACTIONS.items():
        setattr(DynamoDBStreamsHandler, name, _handled(operation))
    if ACCOUNT_ENDPOINT not in streams_urls.url_bases:
        streams_urls.url_bases.append(ACCOUNT_ENDPOINT)
    if not any(pattern.pattern == ACCOUNT_ENDPOINT for _, pattern in backend_index.backend_url_patterns):
        backend_index.backend_url_patterns.append(("dynamodbstreams", re.compile(ACCOUNT_ENDPOINT)))
    with _LOCK:
        for account in list(dynamodb_backends.values()):
            for backend in list(account.values()):
                for table in list(backend.tables.values()):
                    adopt(table)


def _unpatch() -> None:
    import moto.backend_index as backend_index
    import moto.dynamodbstreams.urls as streams_urls
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.table import Table
    from moto.dynamodbstreams.responses import DynamoDBStreamsHandler

    Table.set_stream_specification = _originals["set_stream_specification"]  # type: ignore[method-assign]
    DynamoDBBackend.update_table_streams = _originals["update_table_streams"]  # type: ignore[method-assign]
    DynamoDBBackend.update_item = _originals["update_item"]  # type: ignore[method-assign]
    for name, original in _originals["actions"].items():
        if original is None:
            delattr(DynamoDBStreamsHandler, name)
        else:
            setattr(DynamoDBStreamsHandler, name, original)
    if ACCOUNT_ENDPOINT in streams_urls.url_bases:
        streams_urls.url_bases.remove(ACCOUNT_ENDPOINT)
    backend_index.backend_url_patterns[:] = [(s, p) for s, p in backend_index.backend_url_patterns if p.pattern != ACCOUNT_ENDPOINT]
    # The tables' StreamLogs stay: they answer what moto's own code reads of a StreamShard.


class DynamoDBStreamsEmulation:
    """The streams layer, installed while any holder has it installed (the local stack, a test
    session); ``install`` and ``uninstall`` are idempotent per instance."""

    def install(self) -> DynamoDBStreamsEmulation:
        with _state:
            if not _holders:
                _patch()
            _holders.add(id(self))
        return self

    def uninstall(self) -> None:
        with _state:
            if id(self) not in _holders:
                return
            _holders.discard(id(self))
            if not _holders:
                _unpatch()

    @property
    def installed(self) -> bool:
        return id(self) in _holders

    def __enter__(self) -> DynamoDBStreamsEmulation:
        return self.install()

    def __exit__(self, *exc: object) -> None:
        self.uninstall()

    @property
    def clock(self) -> Callable[[], float]:
        """The streams' clock (epoch seconds); set it to test retention and iterator expiry."""
        return _clock

    @clock.setter
    def clock(self, clock: Callable[[], float] | None) -> None:
        global _clock
        _clock = clock or time.time

    def stream(self, table_name: str, account_id: str | None = None, region: str = "us-east-1") -> StreamLog:
        """A table's current stream (KeyError: the table has none)."""
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.dynamodb.models import dynamodb_backends

        with _LOCK:
            log = adopt(dynamodb_backends[account_id or DEFAULT_ACCOUNT_ID][region].get_table(table_name))
        if log is None:
            raise KeyError(f"table {table_name} has no enabled stream")
        return log

    def split_shard(
        self, table_name: str, shard_id: str | None = None, account_id: str | None = None, region: str = "us-east-1"
    ) -> list[str]:
        """Split a table's open shard (each open one, without ``shard_id``), as DynamoDB does when
        a partition splits: the shard closes (it gets its EndingSequenceNumber) and two children,
        whose ParentShardId is it, take the later writes by partition-key hash. Returns their ids."""
        log = self.stream(table_name, account_id, region)
        with _LOCK:
            return log.split(shard_id)
