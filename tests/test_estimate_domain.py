"""The estimate's arithmetic (domain/estimate.py), against figures computed by hand from prices.json."""

from __future__ import annotations

import json

import pytest

from bulk_restore.domain.estimate import (
    PRICES_FILE,
    ArchiveClass,
    JobPlan,
    Orchestration,
    Population,
    SkipReason,
    Tally,
    cost_of_tier,
    estimate_costs,
    load_prices,
    margin_percent,
)
from bulk_restore.domain.model import Tier

MIB = 2**20
DIRECT = {Tier.EXPEDITED: "direct", Tier.STANDARD: "direct", Tier.BULK: "direct"}
BATCH = {Tier.EXPEDITED: None, Tier.STANDARD: "batch", Tier.BULK: "batch"}
# 1,000,000 objects of 1 MiB: 976.5625 GiB
MILLION = Population({ArchiveClass.GLACIER: Tally(1_000_000, 1_000_000 * MIB)})
# one day of 976.5625 GiB as S3 Standard: 976.5625 * $0.023 * 24 / 730 hours
ONE_DAY_COPY = 976.5625 * 0.023 * 24 / 730


def test_a_million_glacier_objects_of_one_mib_cost_by_tier_as_computed_by_hand() -> None:
    tiers = {t.tier: t for t in estimate_costs(MILLION, JobPlan(Tier.BULK, 1, DIRECT), load_prices())}
    assert list(tiers) == [Tier.EXPEDITED, Tier.STANDARD, Tier.BULK]
    bulk = tiers[Tier.BULK]
    assert bulk.chosen and not tiers[Tier.STANDARD].chosen and bulk.engine == "direct"
    assert (bulk.restore_requests, bulk.retrieval, bulk.batch_operations) == (0.0, 0.0, 0.0)
    assert bulk.restored_storage == pytest.approx(ONE_DAY_COPY) == pytest.approx(0.73844178)
    assert bulk.orchestration == pytest.approx(3.66)
    assert bulk.total == pytest.approx(4.39844178)
    standard = tiers[Tier.STANDARD]
    assert standard.restore_requests == pytest.approx(50.0)  # 1,000 thousands at $0.05
    assert standard.retrieval == pytest.approx(9.765625)  # 976.5625 GiB at $0.01
    assert standard.total == pytest.approx(50 + 9.765625 + ONE_DAY_COPY + 3.66)
    expedited = tiers[Tier.EXPEDITED]
    assert expedited.restore_requests == pytest.approx(10_000.0) and expedited.retrieval == pytest.approx(29.296875)
    assert (bulk.window.min_hours, bulk.window.max_hours, bulk.window.text) == (5, 12, "5-12 hours")
    assert expedited.window.text == "1-5 minutes"


def test_the_batch_engine_adds_its_fee_per_job_and_per_million_and_has_no_expedited() -> None:
    tiers = {t.tier: t for t in estimate_costs(MILLION, JobPlan(Tier.BULK, 1, BATCH, Orchestration.BATCH_CSV), load_prices())}
    assert tiers[Tier.BULK].batch_operations == pytest.approx(0.25 + 1.00)
    assert tiers[Tier.BULK].orchestration == pytest.approx(4.10)
    assert tiers[Tier.EXPEDITED].engine is None and "no Expedited" in tiers[Tier.EXPEDITED].notes[-1]
    listed = cost_of_tier(MILLION, JobPlan(Tier.BULK, 1, BATCH, Orchestration.BATCH_LISTED), load_prices(), Tier.BULK)
    assert listed.orchestration == pytest.approx(3.69)


def test_glacier_and_intelligent_tiering_objects_make_two_batch_jobs_and_the_tiering_ones_have_no_copy() -> None:
    mixed = Population({ArchiveClass.GLACIER: Tally(1_000, 1000 * MIB), ArchiveClass.IT_ARCHIVE: Tally(3_000, 3000 * MIB)})
    bulk = cost_of_tier(mixed, JobPlan(Tier.BULK, 10, BATCH), load_prices(), Tier.BULK)
    assert bulk.batch_operations == pytest.approx(2 * 0.25 + 4_000 / 1e6)
    by_class = {c.archive: c for c in bulk.by_class}
    assert by_class[ArchiveClass.IT_ARCHIVE].restored_storage == 0.0
    # 1000 MiB = 0.9765625 GiB for 10 days
    assert by_class[ArchiveClass.GLACIER].restored_storage == pytest.approx(0.9765625 * 0.023 * 240 / 730)
    assert any("two S3 Batch Operations jobs" in n for n in bulk.notes)


def test_deep_archive_has_no_expedited_unless_the_job_falls_back_to_standard() -> None:
    deep = Population({ArchiveClass.DEEP_ARCHIVE: Tally(2_000, 2 * 2**30), ArchiveClass.GLACIER: Tally(1_000, 2**30)})
    assert [t.tier for t in estimate_costs(deep, JobPlan(Tier.BULK, 1, DIRECT), load_prices())] == [
        Tier.EXPEDITED,
        Tier.STANDARD,
        Tier.BULK,
    ]
    without = cost_of_tier(deep, JobPlan(Tier.EXPEDITED, 1, DIRECT), load_prices(), Tier.EXPEDITED)
    deep_cost = next(c for c in without.by_class if c.archive is ArchiveClass.DEEP_ARCHIVE)
    assert deep_cost.tier_used is None and deep_cost.restore_requests == 0 and "would fail" in deep_cost.note
    assert without.restore_requests == pytest.approx(10.0)  # only the 1,000 GLACIER objects, at $10 per 1,000
    falling = cost_of_tier(deep, JobPlan(Tier.EXPEDITED, 1, DIRECT, expedited_fallback=True), load_prices(), Tier.EXPEDITED)
    deep_cost = next(c for c in falling.by_class if c.archive is ArchiveClass.DEEP_ARCHIVE)
    assert deep_cost.tier_used is Tier.STANDARD
    assert deep_cost.restore_requests == pytest.approx(0.20) and deep_cost.retrieval == pytest.approx(0.04)  # $0.10/1,000; $0.02/GB
    # The job ends when its slowest class is done: Deep Archive's Standard, within 12 hours
    assert falling.window.max_hours == 12 and "DEEP_ARCHIVE within 12 hours" in falling.window.text


def test_deep_archive_alone_offers_standard_and_bulk_at_its_own_prices() -> None:
    deep = Population({ArchiveClass.DEEP_ARCHIVE: Tally(10_000, 100 * 2**30)})
    tiers = {t.tier: t for t in estimate_costs(deep, JobPlan(Tier.STANDARD, 3, DIRECT), load_prices())}
    assert list(tiers) == [Tier.STANDARD, Tier.BULK]
    assert tiers[Tier.BULK].restore_requests == pytest.approx(0.25) and tiers[Tier.BULK].retrieval == pytest.approx(0.25)
    assert tiers[Tier.STANDARD].restore_requests == pytest.approx(1.0) and tiers[Tier.STANDARD].retrieval == pytest.approx(2.0)
    assert tiers[Tier.BULK].window.text == "within 48 hours"


def test_skipped_objects_cost_no_restore_but_are_tracked_and_kept_days_add_to_the_copies() -> None:
    population = Population(
        {ArchiveClass.GLACIER: Tally(500_000, 500_000 * MIB)}, {SkipReason.NOT_ARCHIVED: Tally(500_000, 0), SkipReason.MISSING: Tally(0, 0)}
    )
    bulk = cost_of_tier(population, JobPlan(Tier.BULK, 1, DIRECT, keep_restored_days=6), load_prices(), Tier.BULK)
    assert bulk.orchestration == pytest.approx(3.66)  # a million objects tracked
    assert bulk.restored_storage == pytest.approx(488.28125 * 0.023 * 7 * 24 / 730)
    assert SkipReason.ALREADY_RESTORED.outcome == "RESTORED" and SkipReason.MISSING.outcome == "FAILED"


def test_a_vault_job_pays_glacier_per_archive_and_per_gib_and_this_stack_by_archive_and_byte() -> None:
    vault = Population({ArchiveClass.VAULT: Tally(1_000, 1024 * 2**30)})  # a TiB in 1,000 archives
    bulk = cost_of_tier(vault, JobPlan(Tier.BULK, 1, dict.fromkeys(Tier, "vault")), load_prices(), Tier.BULK)
    assert bulk.restore_requests == pytest.approx(0.025) and bulk.retrieval == pytest.approx(1024 * 0.0025)
    assert bulk.restored_storage == 0.0
    assert bulk.orchestration == pytest.approx(1_000 * 28.18 / 1e6 + 1024 * 0.0006)


def test_the_direct_engine_window_counts_the_time_to_send_the_requests_at_the_stack_pace() -> None:
    bulk = cost_of_tier(MILLION, JobPlan(Tier.BULK, 1, DIRECT, restore_rate_per_second=900), load_prices(), Tier.BULK)
    assert bulk.window.max_hours == pytest.approx(12 + 1_000_000 / 900 / 3600, abs=1e-4)
    assert "after the requests are sent" in bulk.window.text


def test_nothing_to_restore_costs_only_the_tracking() -> None:
    empty = Population({}, {SkipReason.NOT_ARCHIVED: Tally(1_000, 10)})
    tiers = estimate_costs(empty, JobPlan(Tier.STANDARD, 1, DIRECT), load_prices())
    assert [t.tier for t in tiers] == [Tier.STANDARD, Tier.BULK]
    assert tiers[0].total == pytest.approx(1_000 * 3.66 / 1e6) and tiers[0].window is None


def test_the_price_file_says_its_date_region_and_sources_and_has_every_class() -> None:
    doc = json.loads(PRICES_FILE.read_text())
    assert doc["region"] == "us-east-1" and doc["as_of"] and doc["currency"] == "USD"
    assert {"s3", "s3_batch_operations", "glacier_vaults", "restore_windows", "orchestration"} <= set(doc["sources"])
    prices = load_prices()
    assert set(prices.restore) == set(ArchiveClass) - {ArchiveClass.UNKNOWN}
    assert prices.tier_price(ArchiveClass.DEEP_ARCHIVE, Tier.EXPEDITED) is None
    assert prices.tier_price(ArchiveClass.UNKNOWN, Tier.STANDARD) == prices.tier_price(ArchiveClass.GLACIER, Tier.STANDARD)


def test_the_margin_of_a_sample_of_a_thousand_is_about_three_points() -> None:
    assert margin_percent(1_000) == 3.1 and margin_percent(0) is None
