"""Exactly once under crashes, for vault jobs: the functions die once, before or after any AWS call
of a clean run (Glacier's included), and the job still moves every archive once, whole, and ends
with one terminal event. The crash points and checks are support/faults.py's (see test_fault_injection.py)."""

from __future__ import annotations

from collections import Counter

import pytest

from support.api import call_api
from support.faults import CallTracer, SimulatedCrash
from support.ledger import JobLedger, assert_counters_match, assert_one_terminal_event
from support.stack import open_stack
from support.vault import MIB, TARGET, VAULT_SETTINGS, Vault, body_of, vault_on

BIG, SMALL = body_of(16 * MIB + 3, 1), body_of(100, 2)  # three parts, one part
MISSING = "NoSuchArchive" + "y" * 30
# With S3's object limit made 16 MiB (split objects of 16 MiB), this archive becomes two objects of two parts each.
SPLIT = body_of(24 * MIB + 3, 3)


def create(vault: Vault, archives: list[str], split: bool = False) -> str:
    """As a client does: a 5xx (the API function dying) is retried with the same Idempotency-Key."""
    for _ in range(3):
        try:
            fields = {"split_large_archives": True} if split else {}
            return str(vault.create(archives, headers={"Idempotency-Key": "vault-create-1"}, **fields)["BulkJobId"])
        except SimulatedCrash:
            continue
    raise AssertionError("create-job kept failing")


def run_vault_job(crash_at: int | None = None, phase: str = "before", split: bool = False) -> CallTracer:
    body = SPLIT if split else BIG
    with open_stack(RESTORE_CONCURRENCY=1, EVENT_LEASE_SECONDS=0, **VAULT_SETTINGS) as stack, vault_on(stack) as vault:
        big, small = vault.upload(body), vault.upload(SMALL)
        services = stack.services()
        tracer = CallTracer(crash_at=crash_at, phase=phase).install(services)
        events = services.vault.glacier.client.meta.events  # Glacier's calls are crash points too
        events.register("before-parameter-build.*.*", tracer._params)
        events.register("before-call.*.*", tracer._before)
        events.register("after-call.*.*", tracer._after)
        job_id = create(vault, [big, small, MISSING], split)
        vault.settle()
        tracer.job_calls = len(tracer.calls)  # type: ignore[attr-defined]  # the checks' own reads below are no crash points
        ledger = JobLedger.read(stack, job_id)
        assert ledger.status == "Complete", ledger.status
        states = {r["archive"]["id"]: r["state"] for r in ledger.objects}
        assert states == {big: "RESTORED", small: "RESTORED", MISSING: "FAILED"}, states
        assert_counters_match(ledger)
        assert_one_terminal_event(stack.events_of(job_id), job_id, copies_allowed_for=tracer.window_events)
        if split:
            pieces = [vault.object(f"from-vault/{big}.part-{i:03d}-of-002")[0] for i in (1, 2)]
            assert len(pieces[0]) == 16 * MIB and b"".join(pieces) == SPLIT
        else:
            assert vault.object(f"from-vault/{big}")[0] == BIG
        assert vault.object(f"from-vault/{small}")[0] == SMALL
        assert not stack.s3.list_multipart_uploads(Bucket=TARGET).get("Uploads"), "an upload left behind"
        _status, doc = call_api("GET", f"/jobs/{job_id}")
        assert doc["BytesMoved"] == len(body) + len(SMALL), doc["BytesMoved"]
        for name in ("plan", "restore", "completion", "transfer"):
            assert stack.dead_letters(name) == [], f"{name} dead-letter queue"
    return tracer


_clean: list[CallTracer] = []


def clean_calls() -> list:
    if not _clean:
        _clean.append(run_vault_job())
    return _clean[0].calls[: _clean[0].job_calls]  # type: ignore[attr-defined]


SHARDS = 3


@pytest.mark.parametrize("shard", range(SHARDS))
@pytest.mark.parametrize("phase", ["before", "after"])
def test_a_crash_before_or_after_any_call_of_a_vault_job_still_moves_every_archive_once(phase: str, shard: int) -> None:
    calls = clean_calls()
    failures = []
    for call in calls[shard::SHARDS]:
        try:
            tracer = run_vault_job(call.index, phase)
            assert tracer.crashed is not None, "the crash point was never reached"
        except AssertionError as exc:
            failures.append(f"crash {phase} call {call.index} ({call.function or 'api'}: {call.operation}): {str(exc).splitlines()[0]}")
    assert not failures, "\n".join(failures)


def test_the_clean_vault_run_reaches_every_function_and_glacier() -> None:
    calls = clean_calls()
    functions = Counter(c.function for c in calls)
    assert {"", "planner", "restorer", "completion", "transfer"} <= set(functions), functions
    operations = {c.operation for c in calls}
    assert {"glacier.InitiateJob", "glacier.GetJobOutput", "s3.UploadPart", "s3.CompleteMultipartUpload"} <= operations, operations


_clean_split: list[CallTracer] = []


@pytest.fixture
def small_object_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    from bulk_restore.domain import vault as rules

    monkeypatch.setattr(rules, "S3_MAX_OBJECT_BYTES", 16 * MIB)
    monkeypatch.setattr(rules, "SPLIT_OBJECT_BYTES", 16 * MIB)


def test_a_crash_after_any_transfer_write_of_a_split_archive_still_stores_each_object_once(small_object_limit: None) -> None:
    # The split's own work is the completion's (one upload per object) and the transfer's: the
    # function dies after each of their calls that changes something (a crash after a read is the
    # crash before the next call, which the sweep above covers for the calls both runs share).
    if not _clean_split:
        _clean_split.append(run_vault_job(split=True))
    clean = _clean_split[0]
    calls = [
        c
        for c in clean.calls[: clean.job_calls]  # type: ignore[attr-defined]
        if c.function in ("completion", "transfer") and c.operation not in ("dynamodb.GetItem", "dynamodb.Query")
    ]
    assert {"s3.CreateMultipartUpload", "s3.UploadPart", "dynamodb.TransactWriteItems", "s3.CompleteMultipartUpload"} <= {
        c.operation for c in calls
    }
    failures = []
    for call in calls:
        try:
            tracer = run_vault_job(call.index, "after", split=True)
            assert tracer.crashed is not None, "the crash point was never reached"
        except AssertionError as exc:
            failures.append(f"crash after call {call.index} ({call.function}: {call.operation}): {str(exc).splitlines()[0]}")
    assert not failures, "\n".join(failures)
