"""A job's counters, derived from its items' changes as the table's stream delivers them.

Engines write object states only, each object in a single-item conditional write: inserted once,
moved out of RESTORING once. The table's stream (new and old images) carries each such change
exactly once, in order per item, and nothing for a write that changed nothing. This module turns
a batch of stream records into counter deltas per job:

- an object item inserted: ``total`` + 1 and its state + 1 (and its ``bytes``);
- an object item changed: its old state - 1 and its new state + 1 when the state changed, and the
  change of its ``bytes`` (a vault archive's size, once stored);
- a chunk marker inserted (the chunk's objects are all written): ``chunks_done`` + 1;
- everything else (the job's own item, counters, removals by TTL): nothing.

Each job's deltas of one batch are applied with one conditional update of the job's counter item
for the stream shard, which also records the shard's last sequence number applied: a batch read
again (a retry, or a half of it after bisecting) finds that number at or past its first record
for the job. Then only its records past that number are applied (a retried batch may reach
further than the one that failed), conditioned on the number read. Sequence numbers grow within
a shard; the records of one item stay in one shard (a split hands later records to the children,
read after the parent).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bulk_restore.domain.model import Counts, ObjectState

OBJECT_MARK = "#O#"
CHUNKS_SUFFIX = "#CHUNKS"
JOB_PREFIX = "JOB#"
STATES = {s.value: s for s in ObjectState}


class StreamRecordError(ValueError):
    """A stream record this function cannot read (not a DynamoDB stream record of the table)."""


@dataclass(slots=True)
class JobDelta:
    """One job's counter changes from one stream batch, and the batch's sequence numbers for it."""

    job_id: str
    counts: Counts = field(default_factory=Counts)
    first: int = 0  # the first record of the batch that touched the job
    last: int = 0  # its last

    def empty(self) -> bool:
        return not any(self.counts.as_dict().values())


def _job_of(pk: str) -> tuple[str, str] | None:
    """(job id, kind) of an item's partition key: ``object`` or ``chunk``; None for other items."""
    if not pk.startswith(JOB_PREFIX):
        return None
    rest = pk[len(JOB_PREFIX) :]
    if OBJECT_MARK in rest:
        return rest.split(OBJECT_MARK, 1)[0], "object"
    if rest.endswith(CHUNKS_SUFFIX):
        return rest[: -len(CHUNKS_SUFFIX)], "chunk"
    return None


def _string(image: Mapping[str, Any], name: str) -> str | None:
    value = image.get(name)
    if isinstance(value, Mapping) and "S" in value:
        return str(value["S"])
    return None


def _number(image: Mapping[str, Any], name: str) -> int:
    value = image.get(name)
    if isinstance(value, Mapping) and "N" in value:
        return int(value["N"])
    return 0


def _state(image: Mapping[str, Any] | None) -> ObjectState | None:
    if not image:
        return None
    found = _string(image, "state")
    if found is None:
        return None
    state = STATES.get(found)
    if state is None:
        raise StreamRecordError(f"object item with unknown state {found!r}")
    return state


def sequence_number(record: Mapping[str, Any]) -> int:
    try:
        return int(record["dynamodb"]["SequenceNumber"])
    except (KeyError, TypeError, ValueError) as exc:
        raise StreamRecordError("a stream record without a sequence number") from exc


def record_delta(record: Mapping[str, Any]) -> tuple[str, Counts] | None:
    """The counter change one stream record (Lambda's shape, images in DynamoDB JSON) makes, or None."""
    change = record.get("dynamodb")
    if not isinstance(change, Mapping):
        raise StreamRecordError("a record with no 'dynamodb' member: not from a DynamoDB stream")
    keys = change.get("Keys") or {}
    pk = _string(keys, "pk")
    found = _job_of(pk) if pk else None
    if found is None:
        return None
    job_id, kind = found
    name = record.get("eventName")
    old, new = change.get("OldImage"), change.get("NewImage")
    counts = Counts()
    if kind == "chunk":
        if name == "INSERT":
            counts.chunks_done = 1
            return job_id, counts
        return None
    if name == "INSERT":
        state = _state(new)
        if state is None:
            return None
        counts.total = 1
        counts.count_state(state)
        counts.bytes = _number(new or {}, "bytes")
        return job_id, counts
    if name == "MODIFY":
        before, after = _state(old), _state(new)
        if before is None or after is None:
            return None
        if before is not after:
            counts.count_state(before, -1)
            counts.count_state(after)
        counts.bytes = _number(new or {}, "bytes") - _number(old or {}, "bytes")
        return job_id, counts
    return None  # REMOVE: an item expired (TTL) or deleted with its job; counts stay as they were


def changes(records: Iterable[Mapping[str, Any]]) -> dict[str, list[tuple[int, Counts]]]:
    """Each job's counter changes in a batch of one shard's records: (sequence number, counts), in order."""
    found: dict[str, list[tuple[int, Counts]]] = {}
    for record in records:
        delta = record_delta(record)
        if delta is not None:
            found.setdefault(delta[0], []).append((sequence_number(record), delta[1]))
    return found


def fold_changes(job_id: str, job_changes: Iterable[tuple[int, Counts]], after: int | None = None) -> JobDelta | None:
    """One job's changes summed, only those after sequence number ``after`` (all when None); None if none."""
    delta: JobDelta | None = None
    for number, counts in job_changes:
        if after is not None and number <= after:
            continue
        if delta is None:
            delta = JobDelta(job_id, first=number, last=number)
        delta.counts = delta.counts.add(counts)
        delta.first, delta.last = min(delta.first, number), max(delta.last, number)
    return delta


def fold(records: Iterable[Mapping[str, Any]]) -> list[JobDelta]:
    """Each job's deltas over a batch of records of one shard, in the jobs' first-seen order."""
    return [d for job_id, found in changes(records).items() if (d := fold_changes(job_id, found)) is not None]
