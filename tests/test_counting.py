"""Counters derived from the table's stream (domain/counting.py): each change counted once.

The records here have the shape Lambda hands a DynamoDB stream function (images in DynamoDB
JSON). The property tests deliver a stream as Lambda may: batches of any size, a batch again
after a failure, halves of it after bisecting, and check that applying with the per-shard
checkpoint (the rule of ``DynamoJobStore.apply_counts``) leaves counters equal to the objects'
final states.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bulk_restore.domain.counting import StreamRecordError, changes, fold, fold_changes, record_delta
from bulk_restore.domain.model import Counts, ObjectState

JOB = "8c5b4b1e-3a7f-4a33-9d5e-2f6f6c1b2a10"
OTHER = "0f0e0d0c-0b0a-4909-8807-060504030201"


def image(pk: str, sk: str, **attrs: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"pk": {"S": pk}, "sk": {"S": sk}}
    for name, value in attrs.items():
        out[name] = {"N": str(value)} if isinstance(value, int) else {"S": value}
    return out


def record(name: str, seq: int, old: dict[str, Any] | None, new: dict[str, Any] | None) -> dict[str, Any]:
    keys = {k: v for k, v in (new or old or {}).items() if k in ("pk", "sk")}
    change: dict[str, Any] = {"Keys": keys, "SequenceNumber": str(seq), "SizeBytes": 100, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    if old is not None:
        change["OldImage"] = old
    if new is not None:
        change["NewImage"] = new
    return {
        "eventID": f"{seq:032x}",
        "eventName": name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": change,
        "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/2026-12-04T00:00:00.000",
    }


def obj(job: str, ref: str, state: str, **attrs: Any) -> dict[str, Any]:
    return image(f"JOB#{job}#O#{int(ref[:2], 16) % 16:02d}", ref, state=state, job_id=job, **attrs)


def test_an_inserted_object_counts_once_in_total_and_its_state() -> None:
    job, counts = record_delta(record("INSERT", 1, None, obj(JOB, "a1" * 16, "RESTORING"))) or ("", Counts())
    assert job == JOB
    assert counts.as_dict() == Counts(total=1, restoring=1).as_dict()


def test_a_state_change_moves_one_count_and_adds_the_bytes_moved() -> None:
    ref = "b2" * 16
    found = record_delta(record("MODIFY", 2, obj(JOB, ref, "RESTORING"), obj(JOB, ref, "RESTORED", bytes=4096)))
    assert found is not None
    assert found[1].as_dict() == Counts(restoring=-1, restored=1, bytes=4096).as_dict()


def test_a_change_that_keeps_the_state_moves_no_count() -> None:
    # a vault archive's transfer fields change on its item; its state does not
    ref = "c3" * 16
    found = record_delta(record("MODIFY", 3, obj(JOB, ref, "RESTORING", upload="u1"), obj(JOB, ref, "RESTORING", upload="u2")))
    assert found is not None and not any(found[1].as_dict().values())


def test_a_chunk_marker_counts_a_chunk_and_other_items_count_nothing() -> None:
    marker = image(f"JOB#{JOB}#CHUNKS", "0000000007", objects=98)
    found = record_delta(record("INSERT", 4, None, marker))
    assert found == (JOB, Counts(chunks_done=1))
    assert record_delta(record("INSERT", 5, None, image(f"JOB#{JOB}", "META", status="Restoring"))) is None
    assert record_delta(record("MODIFY", 6, image(f"JOB#{JOB}", "COUNT#s1", seq=1), image(f"JOB#{JOB}", "COUNT#s1", seq=2))) is None
    assert record_delta(record("INSERT", 7, None, image("ACTIVE", f"JOB#{JOB}"))) is None
    assert record_delta(record("INSERT", 8, None, image(f"JOB#{JOB}#A#{'d4' * 16}", "001#00001", etag="e"))) is None


def test_an_expired_object_leaves_the_counts_as_they_were() -> None:
    # TTL removes items long after their job ended; the counts keep what the job did
    assert record_delta(record("REMOVE", 9, obj(JOB, "e5" * 16, "RESTORED"), None)) is None


def test_a_record_from_another_source_or_with_an_unknown_state_is_refused() -> None:
    with pytest.raises(StreamRecordError):
        record_delta({"eventName": "INSERT", "body": "{}"})
    with pytest.raises(StreamRecordError, match="unknown state"):
        record_delta(record("INSERT", 10, None, obj(JOB, "f6" * 16, "LOST")))


def test_a_batch_folds_into_one_delta_per_job_with_its_first_and_last_sequence_numbers() -> None:
    a, b = "a1" * 16, "b2" * 16
    batch = [
        record("INSERT", 100, None, obj(JOB, a, "RESTORING")),
        record("INSERT", 101, None, obj(OTHER, b, "SKIPPED")),
        record("MODIFY", 102, obj(JOB, a, "RESTORING"), obj(JOB, a, "FAILED")),
        record("INSERT", 103, None, image(f"JOB#{JOB}", "META")),
        record("INSERT", 104, None, image(f"JOB#{JOB}#CHUNKS", "0000000000", objects=1)),
    ]
    deltas = {d.job_id: d for d in fold(batch)}
    assert set(deltas) == {JOB, OTHER}
    assert deltas[JOB].counts.as_dict() == Counts(total=1, failed=1, chunks_done=1).as_dict()
    assert (deltas[JOB].first, deltas[JOB].last) == (100, 104)
    assert deltas[OTHER].counts.as_dict() == Counts(total=1, skipped=1).as_dict()
    assert (deltas[OTHER].first, deltas[OTHER].last) == (101, 101)


# ---- delivered as Lambda may deliver it -----------------------------------------------------------------


class CheckpointedCounters:
    """The counter items of one shard, applied as usecases/count.py applies a batch: the whole
    job's delta when the checkpoint is below its first record, else only the records past it."""

    def __init__(self) -> None:
        self.counts: dict[str, Counts] = {}
        self.seq: dict[str, int] = {}

    def apply(self, batch: list[dict[str, Any]]) -> None:
        for job_id, found in changes(batch).items():
            delta = fold_changes(job_id, found)
            if delta is None or delta.empty():
                continue
            stored = self.seq.get(job_id)
            if stored is not None and stored >= delta.first:
                delta = fold_changes(job_id, found, stored)  # counted before, in part or whole
                if delta is None or delta.empty():
                    continue
            self.counts[job_id] = self.counts.get(job_id, Counts()).add(delta.counts)
            self.seq[job_id] = delta.last


TRANSITIONS = [ObjectState.RESTORED, ObjectState.FAILED, ObjectState.CANCELLED]


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[dict[str, Any]], dict[str, Counter[str]]]:
    """A shard's records for objects of two jobs: each inserted once, some moved out of RESTORING
    once, some changed without a state change, chunk markers; and the objects' final states."""
    seq = 1000
    records: list[dict[str, Any]] = []
    final: dict[str, dict[str, str]] = {JOB: {}, OTHER: {}}
    chunks: Counter[str] = Counter()
    for i in range(draw(st.integers(1, 40))):
        job = draw(st.sampled_from([JOB, OTHER]))
        ref = f"{i:02x}" * 16
        state = draw(st.sampled_from(["RESTORING", "RESTORING", "SKIPPED", "FAILED"]))
        records.append(record("INSERT", seq, None, obj(job, ref, state)))
        seq += draw(st.integers(1, 5))
        if draw(st.booleans()):
            records.append(record("MODIFY", seq, obj(job, ref, state, note="a"), obj(job, ref, state, note="b")))
            seq += 1
        if state == "RESTORING" and draw(st.booleans()):
            to = draw(st.sampled_from(TRANSITIONS)).value
            records.append(record("MODIFY", seq, obj(job, ref, "RESTORING"), obj(job, ref, to)))
            seq += 1
            state = to
        final[job][ref] = state
        if draw(st.integers(0, 4)) == 0:
            records.append(record("INSERT", seq, None, image(f"JOB#{job}#CHUNKS", f"{i:010d}", objects=1)))
            chunks[job] += 1
            seq += 1
    tallies = {job: Counter(states.values()) | Counter(total=len(states), chunks_done=chunks[job]) for job, states in final.items()}
    return records, tallies


@st.composite
def deliveries(draw: st.DrawFn, records: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The invocations a shard's records may come in: batches from the checkpoint on; a failed
    invocation (some of its jobs counted before the failure) is retried whole or bisected."""
    out: list[list[dict[str, Any]]] = []
    at = 0
    while at < len(records):
        size = draw(st.integers(1, 12))
        batch = records[at : at + size]
        if draw(st.integers(0, 3)) == 0:  # this invocation fails after counting some of its jobs
            jobs = [d.job_id for d in fold(batch)]
            counted = draw(st.integers(0, len(jobs)))
            out.append([r for r in batch if (record_delta(r) or ("", None))[0] in jobs[:counted]])
            how = draw(st.sampled_from(["same", "halves", "further"]))
            if how == "halves" and len(batch) > 1:  # bisected: the halves, in order
                half = len(batch) // 2
                out.extend([batch[:half], batch[half:]])
            elif how == "further":  # read again from the checkpoint, with the records written since
                extra = draw(st.integers(1, 6))
                out.append(records[at : at + size + extra])
                size += extra
            else:
                out.append(batch)
        else:
            out.append(batch)
            if draw(st.integers(0, 5)) == 0:  # delivered again after the function succeeded (the checkpoint was not stored)
                out.append(batch)
        at += size
    return out


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_any_delivery_of_a_shard_counts_every_change_once(data: st.DataObject) -> None:
    records, expected = data.draw(histories())
    counters = CheckpointedCounters()
    for batch in data.draw(deliveries(records)):
        counters.apply(batch)
    for job, tally in expected.items():
        got = counters.counts.get(job, Counts()).as_dict()
        want = {name: tally.get(name.upper(), 0) for name in ("restoring", "restored", "skipped", "failed", "cancelled")}
        want |= {"total": tally["total"], "chunks_done": tally["chunks_done"], "bytes": 0}
        assert got == want, job
