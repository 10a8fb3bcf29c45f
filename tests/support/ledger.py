"""A job as the table holds it, read directly (not through the code under test), and its invariants."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from boto3.dynamodb.types import TypeDeserializer

from bulk_restore.domain.model import ObjectId, ObjectState
from support.stack import PublishedEvent, Stack

_de = TypeDeserializer()
COUNTER_FIELDS = ("total", *(s.value.lower() for s in ObjectState), "chunks_done")


def scan_table(stack: Stack) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"TableName": stack.table_name, "ConsistentRead": True}
    while True:
        page = stack.ddb.scan(**kwargs)
        items.extend({k: _de.deserialize(v) for k, v in raw.items()} for raw in page.get("Items", []))
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


@dataclass
class JobLedger:
    job_id: str
    meta: dict[str, Any]
    objects: list[dict[str, Any]]
    counters: dict[str, int]
    chunk_markers: int
    bucket_links: list[str] = field(default_factory=list)  # BUCKET#<bucket> items naming this job
    on_sweep_list: bool = False  # the ACTIVE item the sweeper reads

    @classmethod
    def read(cls, stack: Stack, job_id: str) -> JobLedger:
        items = scan_table(stack)
        pk = f"JOB#{job_id}"
        meta = next(i for i in items if i["pk"] == pk and i["sk"] == "META")
        counters = Counter()
        for item in items:
            if item["pk"] == pk and item["sk"].startswith("COUNT#"):
                counters.update({f: int(item.get(f, 0)) for f in COUNTER_FIELDS})
        return cls(
            job_id=job_id,
            meta=meta,
            objects=[i for i in items if i["pk"].startswith(f"{pk}#O#")],
            counters={f: counters.get(f, 0) for f in COUNTER_FIELDS},
            chunk_markers=sum(1 for i in items if i["pk"] == f"{pk}#CHUNKS"),
            bucket_links=[i["pk"] for i in items if i["pk"].startswith("BUCKET#") and i["sk"] == pk],
            on_sweep_list=any(i["pk"] == "ACTIVE" and i["sk"] == pk for i in items),
        )

    @property
    def status(self) -> str:
        return self.meta["status"]

    def states(self) -> Counter:
        return Counter(o["state"] for o in self.objects)

    def state_of(self, obj: ObjectId) -> str:
        return self.record_of(obj)["state"]

    def record_of(self, obj: ObjectId) -> dict[str, Any]:
        matches = [
            o for o in self.objects if o.get("bucket") == obj.bucket and o.get("key") == obj.key and o.get("version_id") == obj.version_id
        ]
        assert len(matches) == 1, f"{obj} has {len(matches)} object items in job {self.job_id}"
        return matches[0]

    def objects_named(self) -> Counter:
        """(bucket, key, version) of each object item that stands for an object (manifest errors excluded)."""
        return Counter((o["bucket"], o["key"], o.get("version_id")) for o in self.objects if o.get("bucket"))

    def outbox(self) -> dict[str, Any]:
        return dict(self.meta.get("outbox") or {})


def assert_accounting(ledger: JobLedger, expected_objects: Iterable[ObjectId], error_lines: int = 0) -> None:
    """Each manifest object counted exactly once, in a final state, and the counters equal the objects."""
    expected = Counter((o.bucket, o.key, o.version_id) for o in set(expected_objects))
    named = ledger.objects_named()
    assert named == expected, f"objects recorded {dict(named)} != manifest objects {dict(expected)}"
    states = ledger.states()
    not_final = {s: n for s, n in states.items() if not ObjectState(s).is_final}
    assert not not_final, f"objects not in a final state: {not_final}"
    assert ledger.counters["total"] == len(expected) + error_lines, (ledger.counters, len(expected), error_lines)
    assert_counters_match(ledger)
    assert ledger.counters["chunks_done"] == int(ledger.meta["planning"]["chunks_emitted"])
    assert ledger.meta["planning"]["done"] is True


def assert_counters_match(ledger: JobLedger) -> None:
    """The job's counters equal its object items' states, and its accounted chunks its chunk markers
    (whether or not the job has ended, or was planned to the end)."""
    states = ledger.states()
    assert ledger.counters["total"] == len(ledger.objects), (ledger.counters, len(ledger.objects))
    for state in ObjectState:
        n, counted = states.get(state.value, 0), ledger.counters[state.value.lower()]
        assert counted == n, f"counter {state.value.lower()}={counted} but {n} object items are {state.value}"
    assert ledger.counters["chunks_done"] == ledger.chunk_markers, (ledger.counters, ledger.chunk_markers)


def assert_one_terminal_event(events: list[PublishedEvent], job_id: str, copies_allowed_for: set[str] = frozenset()) -> PublishedEvent:
    """Exactly one terminal event (one EventId); a second *copy* only for an EventId in ``copies_allowed_for``."""
    mine = [e for e in events if e.job_id == job_id]
    terminal = [e for e in mine if e.is_terminal]
    assert len({e.event_id for e in terminal}) == 1, f"terminal events of {job_id}: {[e.message for e in terminal]}"
    by_id = Counter(e.event_id for e in mine)
    for event_id, copies in by_id.items():
        limit = 2 if event_id in copies_allowed_for else 1
        assert copies <= limit, f"event {event_id} published {copies} times"
    first_terminal = next(i for i, e in enumerate(mine) if e.is_terminal)
    assert all(e.is_terminal for e in mine[first_terminal:]), "a progress event came after the terminal one"
    return terminal[0]
