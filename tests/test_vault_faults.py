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


def create(vault: Vault, archives: list[str]) -> str:
    """As a client does: a 5xx (the API function dying) is retried with the same Idempotency-Key."""
    for _ in range(3):
        try:
            return str(vault.create(archives, headers={"Idempotency-Key": "vault-create-1"})["BulkJobId"])
        except SimulatedCrash:
            continue
    raise AssertionError("create-job kept failing")


def run_vault_job(crash_at: int | None = None, phase: str = "before") -> CallTracer:
    with open_stack(RESTORE_CONCURRENCY=1, EVENT_LEASE_SECONDS=0, **VAULT_SETTINGS) as stack, vault_on(stack) as vault:
        big, small = vault.upload(BIG), vault.upload(SMALL)
        services = stack.services()
        tracer = CallTracer(crash_at=crash_at, phase=phase).install(services)
        events = services.vault.glacier.client.meta.events  # Glacier's calls are crash points too
        events.register("before-parameter-build.*.*", tracer._params)
        events.register("before-call.*.*", tracer._before)
        events.register("after-call.*.*", tracer._after)
        job_id = create(vault, [big, small, MISSING])
        vault.settle()
        tracer.job_calls = len(tracer.calls)  # type: ignore[attr-defined]  # the checks' own reads below are no crash points
        ledger = JobLedger.read(stack, job_id)
        assert ledger.status == "Complete", ledger.status
        states = {r["archive"]["id"]: r["state"] for r in ledger.objects}
        assert states == {big: "RESTORED", small: "RESTORED", MISSING: "FAILED"}, states
        assert_counters_match(ledger)
        assert_one_terminal_event(stack.events_of(job_id), job_id, copies_allowed_for=tracer.window_events)
        assert vault.object(f"from-vault/{big}")[0] == BIG and vault.object(f"from-vault/{small}")[0] == SMALL
        assert not stack.s3.list_multipart_uploads(Bucket=TARGET).get("Uploads"), "an upload left behind"
        status, doc = call_api("GET", f"/jobs/{job_id}")
        assert doc["BytesMoved"] == len(BIG) + len(SMALL), doc["BytesMoved"]
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
