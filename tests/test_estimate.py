"""The price before paying: POST /create-job with dry_run answers an estimate and creates nothing;
max_cost_usd refuses a job whose estimate is above it. Over HTTP on the test stack (moto)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from bulk_restore.domain.estimate import ArchiveClass, SkipReason
from bulk_restore.domain.model import ObjectId
from bulk_restore.usecases.estimate import DryRunAnswer, EstimateService, head_category, scale_sample
from bulk_restore.usecases.jobs import CreateJobRequest
from bulk_restore_cli.local.inventory import write_inventory_report
from bulk_restore_cli.local.s3_restore import set_archive_status
from support.api import call_api
from support.stack import DATA_BUCKET, MANIFEST_BUCKET, Stack
from support.vault import TARGET, VAULT, Vault, vault_on

KIB = 1024


def dry_run(body: dict[str, Any], headers: dict[str, str] | None = None) -> dict[str, Any]:
    status, answer = call_api("POST", "/create-job", {**body, "dry_run": True}, headers)
    assert status == 200, answer
    DryRunAnswer.model_validate(answer)  # the answer is its documented model
    assert answer["DryRun"] is True
    return answer["Estimate"]


def table_items(stack: Stack) -> int:
    return stack.ddb.scan(TableName=stack.table_name, Select="COUNT")["Count"]


def by_class(estimate: dict[str, Any]) -> dict[str, tuple[int, int]]:
    return {c["StorageClass"]: (c["Objects"], c["Bytes"]) for c in estimate["ByStorageClass"]}


def skipped(estimate: dict[str, Any]) -> dict[str, int]:
    return {s["Reason"]: s["Objects"] for s in estimate["Skipped"]}


def tier(estimate: dict[str, Any], name: str) -> dict[str, Any]:
    return next(t for t in estimate["Tiers"] if t["Tier"] == name)


@pytest.fixture
def mixed(stack: Stack, emulator) -> dict[str, ObjectId]:
    """A manifest of objects of every kind an estimate tells apart."""
    objects = {
        "glacier": ("g.bin", "GLACIER", 100 * KIB),
        "glacier2": ("g2.bin", "GLACIER", 300 * KIB),
        "deep": ("d.bin", "DEEP_ARCHIVE", 200 * KIB),
        "standard": ("s.bin", "STANDARD", 10),
        "tiering": ("it.bin", "INTELLIGENT_TIERING", 50 * KIB),
        "restored": ("r.bin", "GLACIER", 10),
        "restoring": ("ing.bin", "GLACIER", 10),
    }
    ids = {}
    for name, (key, storage_class, size) in objects.items():
        stack.put_archived(key, storage_class=storage_class, body=b"x" * size)
        ids[name] = ObjectId(DATA_BUCKET, key)
    set_archive_status(DATA_BUCKET, "it.bin", "DEEP_ARCHIVE_ACCESS")
    stack.s3.restore_object(Bucket=DATA_BUCKET, Key="r.bin", RestoreRequest={"Days": 1})
    emulator.complete_all()
    stack.s3.restore_object(Bucket=DATA_BUCKET, Key="ing.bin", RestoreRequest={"Days": 1})  # still running
    ids["missing"] = ObjectId(DATA_BUCKET, "nowhere.bin")
    stack.put_manifest(["bucket,key", *[f"{o.bucket},{o.key}" for o in ids.values()], "not a row", f"{DATA_BUCKET},g.bin"])
    return ids


def test_a_manifest_of_mixed_classes_is_priced_per_class_and_tier_and_says_what_it_skips(stack: Stack, mixed) -> None:
    estimate = dry_run({"bucket": MANIFEST_BUCKET, "key": "manifest.csv", "tier": "bulk", "expiration_days": 7})
    assert estimate["Source"] == "manifest" and estimate["Tier"] == "BULK" and estimate["Engine"] == "direct"
    assert estimate["Complete"] and estimate["Exact"] and not estimate["Sampling"]["Sampled"]
    assert estimate["Sampling"]["HeadObjects"] == 8  # each distinct object once (g.bin is listed twice)
    assert by_class(estimate) == {
        "GLACIER": (2, 400 * KIB),
        "DEEP_ARCHIVE": (1, 200 * KIB),
        "INTELLIGENT_TIERING_DEEP_ARCHIVE_ACCESS": (1, 50 * KIB),
    }
    assert skipped(estimate) == {"NOT_ARCHIVED": 1, "ALREADY_RESTORED": 1, "RESTORE_IN_PROGRESS": 1, "MISSING": 1, "BAD_LINE": 1}
    assert {s["Reason"]: s["Outcome"] for s in estimate["Skipped"]}["MISSING"] == "FAILED"
    assert estimate["ObjectsToRestore"] == 4 and estimate["ObjectsListed"] == 9 and estimate["BytesToRestore"] == 650 * KIB
    # Expedited, Standard and Bulk apply (GLACIER has all three); Deep Archive has no Expedited
    assert [t["Tier"] for t in estimate["Tiers"]] == ["EXPEDITED", "STANDARD", "BULK"]
    bulk = tier(estimate, "BULK")
    assert bulk["Chosen"] and not tier(estimate, "STANDARD")["Chosen"]
    # Bulk: GLACIER free; DEEP_ARCHIVE $0.025 per 1,000 and $0.0025/GB; Intelligent-Tiering free
    assert bulk["RestoreRequestsUsd"] == pytest.approx(0.0, abs=1e-4)
    assert bulk["Window"]["MaxHours"] >= 48 and "DEEP_ARCHIVE within 48 hours" in bulk["Window"]["Text"]
    expedited = tier(estimate, "EXPEDITED")
    assert expedited["RestoreRequestsUsd"] == pytest.approx(0.02)  # 2 GLACIER objects at $10 per 1,000
    assert any("would fail" in n for n in expedited["Notes"])
    assert bulk["TotalUsd"] == pytest.approx(
        sum(bulk[k] for k in ("RestoreRequestsUsd", "RetrievalUsd", "RestoredStorageUsd", "BatchOperationsUsd", "OrchestrationUsd")),
        abs=1e-3,
    )
    assert estimate["TotalUsd"] == bulk["TotalUsd"]
    assert estimate["Prices"]["Region"] == "us-east-1" and estimate["Prices"]["AsOf"]
    assert any("S3 Standard for 7 days" in n for n in estimate["Notes"])


def test_a_dry_run_creates_nothing_not_even_its_idempotency_key(stack: Stack, mixed) -> None:
    headers = {"Idempotency-Key": "estimate-then-create"}
    dry_run({"bucket": MANIFEST_BUCKET, "key": "manifest.csv", "tier": "STANDARD"}, headers)
    assert table_items(stack) == 0 and stack.queue_depth(stack.plan_queue_url) == 0
    # The key is free: a create with another request takes it (no IdempotencyKeyMismatch)
    created = stack.create_job(MANIFEST_BUCKET, "manifest.csv", headers, tier="BULK")
    assert created["Created"] is True and table_items(stack) > 0


def test_max_cost_refuses_a_job_above_it_saying_the_estimate_and_creates_nothing(stack: Stack, mixed) -> None:
    status, error = call_api(
        "POST", "/create-job", {"bucket": MANIFEST_BUCKET, "key": "manifest.csv", "tier": "EXPEDITED", "max_cost_usd": 0.0001}
    )
    assert status == 422 and error["error"]["code"] == "EstimateOverMaxCost", error
    message = error["error"]["message"]
    assert "above max_cost_usd $0.00" in message and "nothing was created" in message and "dry_run" in message
    assert "tier BULK would cost" in message
    details = error["error"]["details"]
    assert details["MaxCostUsd"] == 0.0001 and details["TotalUsd"] > 0.0001 and details["Estimate"]["Tier"] == "EXPEDITED"
    assert table_items(stack) == 0


def test_max_cost_above_the_estimate_creates_the_job(stack: Stack, mixed) -> None:
    created = stack.create_job(MANIFEST_BUCKET, "manifest.csv", tier="BULK", max_cost_usd=5)
    assert created["Created"] is True
    status, job = call_api("GET", f"/jobs/{created['JobId']}")
    assert status == 200 and job["Status"] in ("Planning", "Restoring")
    # A retried create (same key) finds its job without a new estimate, whatever max_cost_usd says now
    again = stack.create_job(MANIFEST_BUCKET, "manifest.csv", {"Idempotency-Key": "k1"}, tier="BULK", max_cost_usd=5)
    retried = stack.create_job(MANIFEST_BUCKET, "manifest.csv", {"Idempotency-Key": "k1"}, tier="BULK", max_cost_usd=0)
    assert retried["JobId"] == again["JobId"] and retried["Created"] is False


@pytest.mark.parametrize(
    "body, says",
    [
        ({"max_cost_usd": -1}, "max_cost_usd"),
        ({"max_cost_usd": "10"}, "max_cost_usd"),
        ({"dry_run": "yes"}, "dry_run"),
    ],
)
def test_bad_estimate_fields_are_refused_saying_which(stack: Stack, body: dict[str, Any], says: str) -> None:
    status, error = call_api("POST", "/create-job", {"bucket": MANIFEST_BUCKET, "key": "m.csv", **body})
    assert status == 400 and says in error["error"]["message"]


def test_a_dry_run_of_a_bad_source_is_refused_as_the_create_would_be(stack: Stack) -> None:
    status, error = call_api("POST", "/create-job", {"bucket": MANIFEST_BUCKET, "key": "absent.csv", "dry_run": True})
    assert status == 422 and error["error"]["code"] == "ManifestUnreadable"
    status, error = call_api("POST", "/create-job", {"bucket": "elsewhere-bkt", "key": "m.csv", "dry_run": True})
    assert status == 403 and error["error"]["code"] == "ManifestLocationNotAllowed"


@pytest.mark.parametrize("stack_settings", [{"ESTIMATE_HEAD_LIMIT": 40}])
def test_beyond_the_head_limit_a_random_sample_is_looked_at_and_extrapolated_saying_so(stack: Stack) -> None:
    rows = []
    for i in range(200):
        key = f"many/{i:03d}.bin"
        stack.put_archived(key, storage_class="GLACIER" if i % 4 else "STANDARD", body=b"x" * 1000)
        rows.append(f"{DATA_BUCKET},{key}")
    stack.put_manifest(rows)
    estimate = dry_run({"bucket": MANIFEST_BUCKET, "key": "manifest.csv"})
    sampling = estimate["Sampling"]
    assert sampling["Sampled"] and sampling["SampleSize"] == 40 == sampling["HeadObjects"] and sampling["Population"] == 200
    assert sampling["MarginPercent"] == pytest.approx(15.5) and "drawn at random" in sampling["Method"]
    assert not estimate["Exact"] and estimate["Complete"]
    assert estimate["ObjectsListed"] == 200  # the shares add up to the whole
    glacier = by_class(estimate)["GLACIER"]
    assert 110 <= glacier[0] <= 190 and glacier[1] == glacier[0] * 1000  # three in four, within the sample's margin
    assert skipped(estimate)["NOT_ARCHIVED"] == 200 - glacier[0]


def test_an_inventory_is_priced_from_its_rows_without_heading_objects(stack: Stack) -> None:
    for i in range(30):
        stack.put_archived(f"inv/{i:02d}.bin", storage_class="DEEP_ARCHIVE" if i < 10 else "GLACIER", body=b"y" * 2048)
    for i in range(5):
        stack.put_archived(f"inv/plain-{i}.txt", storage_class="STANDARD")
    key = write_inventory_report(DATA_BUCKET, MANIFEST_BUCKET, "inventories", rows_per_file=7)
    estimate = dry_run({"bucket": MANIFEST_BUCKET, "key": key, "manifest_format": "s3-inventory", "tier": "STANDARD"})
    assert estimate["Source"] == "s3-inventory" and estimate["Exact"] and estimate["Sampling"]["HeadObjects"] == 0
    assert by_class(estimate) == {"GLACIER": (20, 20 * 2048), "DEEP_ARCHIVE": (10, 10 * 2048)}
    assert skipped(estimate) == {"NOT_ARCHIVED": 5}
    standard = tier(estimate, "STANDARD")
    # 20 GLACIER at $0.05 and 10 DEEP_ARCHIVE at $0.10 per 1,000 requests
    assert standard["RestoreRequestsUsd"] == pytest.approx(0.002)
    assert standard["Window"]["MaxHours"] == 12
    assert any("already restored" in n for n in estimate["Notes"])
    assert table_items(stack) == 0


def test_a_prefix_is_listed_and_its_archived_objects_headed_for_their_restore_status(stack: Stack, emulator) -> None:
    for i in range(6):
        stack.put_archived(f"p/{i}.bin", body=b"z" * 4096)
    stack.put_archived("p/deep.bin", storage_class="DEEP_ARCHIVE", body=b"z" * 100)
    stack.put_archived("p/plain.txt", storage_class="STANDARD", body=b"z" * 7)
    stack.put_archived("elsewhere/x.bin")
    stack.s3.restore_object(Bucket=DATA_BUCKET, Key="p/0.bin", RestoreRequest={"Days": 1})
    estimate = dry_run({"source": {"bucket": DATA_BUCKET, "prefix": "p/"}, "tier": "BULK"})
    assert estimate["Source"] == "prefix" and estimate["Complete"] and estimate["Exact"]
    assert by_class(estimate) == {"GLACIER": (5, 5 * 4096), "DEEP_ARCHIVE": (1, 100)}
    assert skipped(estimate) == {"NOT_ARCHIVED": 1, "RESTORE_IN_PROGRESS": 1}
    assert estimate["Sampling"]["HeadObjects"] == 7 and "ListObjectsV2" in estimate["Sampling"]["Method"]
    only_deep = dry_run({"source": {"bucket": DATA_BUCKET, "prefix": "p/", "storage_classes": ["DEEP_ARCHIVE"]}})
    assert by_class(only_deep) == {"DEEP_ARCHIVE": (1, 100)} and skipped(only_deep) == {"NOT_SELECTED": 6, "NOT_ARCHIVED": 1}


@pytest.fixture
def vault(stack: Stack) -> Iterator[Vault]:
    with vault_on(stack) as running:
        yield running


def test_a_vault_is_priced_from_its_last_inventory(vault: Vault) -> None:
    ids = [vault.upload(b"v" * (1 << 20)) for _ in range(3)] + [vault.upload(b"w" * (3 << 20))]
    body = {"vault": {"name": VAULT}, "inventory": True, "target": {"bucket": TARGET, "storage_class": "DEEP_ARCHIVE"}, "tier": "BULK"}
    before = dry_run(body)
    assert before["ObjectsToRestore"] == 0 and any("no inventory yet" in n for n in before["Notes"])
    vault.glacier.take_inventory(VAULT)
    estimate = dry_run(body)
    assert estimate["Source"] == "vault" and estimate["Engine"] == "vault" and estimate["Exact"]
    assert by_class(estimate) == {"GLACIER_VAULT": (4, 6 << 20)}
    bulk = tier(estimate, "BULK")
    # Glacier vault Bulk: $0.025 per 1,000 requests and $0.0025 per GB; no restored copy
    assert bulk["RestoreRequestsUsd"] == pytest.approx(0.0001) and bulk["RestoredStorageUsd"] == 0
    assert bulk["RetrievalUsd"] == pytest.approx(6 / 1024 * 0.0025, abs=1e-4)
    assert [t["Tier"] for t in estimate["Tiers"]] == ["EXPEDITED", "STANDARD", "BULK"]
    assert estimate["TargetStorageUsdPerMonth"] == pytest.approx(6 / 1024 * 0.00099, abs=1e-4)
    named = dry_run({**body, "inventory": None, "archives": ids[:2]})
    assert by_class(named) == {"GLACIER_VAULT": (2, 3 << 20)}  # the vault's average size: 1.5 MiB
    assert any("average" in n for n in named["Notes"])
    assert table_items(vault.stack) == 0


def test_a_capped_manifest_is_extrapolated_by_its_size_and_says_so(stack: Stack) -> None:
    rows = []
    for i in range(100):
        stack.put_archived(f"c/{i:03d}.bin", body=b"x" * 10)
        rows.append(f"{DATA_BUCKET},c/{i:03d}.bin")
    stack.put_manifest(rows)
    services = stack.services()
    estimates = EstimateService(services.jobs, services.s3, max_lines=25)
    estimate = estimates.estimate(CreateJobRequest.model_validate({"bucket": MANIFEST_BUCKET, "key": "manifest.csv"}))
    assert not estimate.Complete and not estimate.Exact
    assert "read to line 25 (the limit)" in estimate.Capped[0] and "extrapolated" in estimate.Capped[0]
    assert estimate.ObjectsToRestore == 100  # every line is as long: 25 lines of 100 by their bytes


def test_head_answers_and_samples_map_to_classes_and_reasons() -> None:
    assert head_category({"kind": "archive", "storage_class": "DEEP_ARCHIVE"}) is ArchiveClass.DEEP_ARCHIVE
    assert head_category({"kind": "intelligent-tiering", "archive_status": "ARCHIVE_ACCESS"}) is ArchiveClass.IT_ARCHIVE
    assert head_category({"kind": "restoring"}) is SkipReason.RESTORE_IN_PROGRESS
    assert head_category({"kind": "refused"}) is SkipReason.UNREADABLE
    scaled = scale_sample([(ArchiveClass.GLACIER, 10), (ArchiveClass.GLACIER, 30), (SkipReason.NOT_ARCHIVED, 5)], 1000)
    assert scaled[ArchiveClass.GLACIER].objects + scaled[SkipReason.NOT_ARCHIVED].objects == 1000
    assert scaled[ArchiveClass.GLACIER].objects == 667 and scaled[ArchiveClass.GLACIER].bytes == 667 * 20
    by_bytes = scale_sample([(ArchiveClass.GLACIER, 10), (SkipReason.ALREADY_RESTORED, 30)], 4, size=400)
    assert by_bytes[ArchiveClass.GLACIER].bytes == 100 and by_bytes[SkipReason.ALREADY_RESTORED].bytes == 300


def test_the_time_limit_cuts_reading_and_heading_short_and_says_so(stack: Stack) -> None:
    rows = []
    for i in range(60):
        stack.put_archived(f"t/{i:02d}.bin", body=b"x" * 10)
        rows.append(f"{DATA_BUCKET},t/{i:02d}.bin")
    stack.put_manifest(rows)
    ticks = iter(range(10_000))
    services = stack.services()  # each look at the clock is a second later: the 20 s budget ends after a few lines
    estimates = EstimateService(services.jobs, services.s3, clock=lambda: float(next(ticks)), concurrency=1)
    estimate = estimates.estimate(CreateJobRequest.model_validate({"bucket": MANIFEST_BUCKET, "key": "manifest.csv"}))
    assert not estimate.Complete and "(the time limit)" in estimate.Capped[0]
    assert estimate.ObjectsListed == 60  # extrapolated from the bytes read
    assert any("HeadObject stopped after" in c for c in estimate.Capped)
    assert estimate.Sampling.HeadObjects < 12
