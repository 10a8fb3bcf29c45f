"""What a job will cost before it runs, and when it should be done.

From the objects to restore (counts and bytes per archive class) and those that would not be
(counts and bytes per reason), the tier, the days and the engine, per tier: S3's restore request
and retrieval fees, the restored copies' storage for their days, S3 Batch Operations' fee where
that engine would run, this stack's own orchestration (the benchmarks' figure per million
objects), the total, and the expected completion window. Prices come from one data file
(``prices.json``, next to this package's code), with its date, region and sources.

Pure: no AWS calls. GB means 2^30 bytes, as AWS bills; a GB-month is ``hours_per_month`` hours
(730, AWS's pricing calculator's month).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Any

from bulk_restore.domain.model import Tier

PRICES_FILE = Path(__file__).parent.parent / "prices.json"
GIB = 2**30


class ArchiveClass(StrEnum):
    """Where an object to restore is archived: the storage class, or Intelligent-Tiering's archive tier, or a vault."""

    GLACIER = "GLACIER"
    DEEP_ARCHIVE = "DEEP_ARCHIVE"
    IT_ARCHIVE = "INTELLIGENT_TIERING_ARCHIVE_ACCESS"
    IT_DEEP_ARCHIVE = "INTELLIGENT_TIERING_DEEP_ARCHIVE_ACCESS"
    VAULT = "GLACIER_VAULT"
    UNKNOWN = "UNKNOWN"  # the source does not say (an inventory without StorageClass): priced as GLACIER

    @property
    def priced_as(self) -> ArchiveClass:
        return ArchiveClass.GLACIER if self is ArchiveClass.UNKNOWN else self

    @property
    def has_restored_copy(self) -> bool:
        """Whether a restore makes a temporary copy billed as S3 Standard for its days (not for
        Intelligent-Tiering, whose object moves back to Frequent Access, nor for a vault)."""
        return self in (ArchiveClass.GLACIER, ArchiveClass.DEEP_ARCHIVE, ArchiveClass.UNKNOWN)

    @property
    def batch_group(self) -> str:
        """The S3 Batch Operations job it would be in: Intelligent-Tiering objects may not share one with Glacier's."""
        return "intelligent-tiering" if self in (ArchiveClass.IT_ARCHIVE, ArchiveClass.IT_DEEP_ARCHIVE) else "archive"


class SkipReason(StrEnum):
    """Why an object of the source would not be restored, and what the job would record for it."""

    NOT_ARCHIVED = "NOT_ARCHIVED"
    ALREADY_RESTORED = "ALREADY_RESTORED"
    RESTORE_IN_PROGRESS = "RESTORE_IN_PROGRESS"
    MISSING = "MISSING"
    BUCKET_NOT_ALLOWED = "BUCKET_NOT_ALLOWED"
    BAD_LINE = "BAD_LINE"
    DELETE_MARKER = "DELETE_MARKER"
    NOT_LATEST = "NOT_LATEST"
    NOT_SELECTED = "NOT_SELECTED"
    UNREADABLE = "UNREADABLE"

    @property
    def outcome(self) -> str:
        """The state the job would give such an object."""
        return SKIP_OUTCOMES[self][0]

    @property
    def description(self) -> str:
        return SKIP_OUTCOMES[self][1]


SKIP_OUTCOMES: dict[SkipReason, tuple[str, str]] = {
    SkipReason.NOT_ARCHIVED: ("SKIPPED", "not archived: readable at once, nothing to restore"),
    SkipReason.ALREADY_RESTORED: ("RESTORED", "a restored copy exists: its restore request only extends its expiry"),
    SkipReason.RESTORE_IN_PROGRESS: ("RESTORING", "a restore is already running: S3 answers 409 and the job waits for it"),
    SkipReason.MISSING: ("FAILED", "no such key or version"),
    SkipReason.BUCKET_NOT_ALLOWED: ("FAILED", "in a bucket outside the stack's AllowedBuckets"),
    SkipReason.BAD_LINE: ("FAILED", "a manifest line or report row that names no object"),
    SkipReason.DELETE_MARKER: ("SKIPPED", "a delete marker: no data to restore"),
    SkipReason.NOT_LATEST: ("SKIPPED", "a noncurrent version, and only latest versions were asked for"),
    SkipReason.NOT_SELECTED: ("SKIPPED", "archived in a storage class the request's storage_classes leaves out"),
    SkipReason.UNREADABLE: ("UNKNOWN", "HeadObject was refused: its class is unknown, the restore request will tell"),
}


@dataclass
class Tally:
    objects: int = 0
    bytes: int = 0

    def add(self, objects: int, size: int) -> None:
        self.objects += objects
        self.bytes += size


@dataclass(frozen=True)
class Population:
    """What a source holds: the objects to restore per archive class, the others per reason."""

    to_restore: Mapping[ArchiveClass, Tally]
    skipped: Mapping[SkipReason, Tally] = field(default_factory=dict)

    @property
    def objects_to_restore(self) -> int:
        return sum(t.objects for t in self.to_restore.values())

    @property
    def bytes_to_restore(self) -> int:
        return sum(t.bytes for t in self.to_restore.values())

    @property
    def objects_listed(self) -> int:
        return self.objects_to_restore + sum(t.objects for t in self.skipped.values())


class Orchestration(StrEnum):
    """Which of the benchmarks' figures prices this stack's own work."""

    DIRECT = "direct"
    BATCH_CSV = "batch_csv"  # one HeadObject per object sorts a CSV manifest's objects into Batch jobs
    BATCH_LISTED = "batch_listed"  # an inventory's or a listing's classes spare the HeadObject
    VAULT = "vault"


@dataclass(frozen=True)
class JobPlan:
    """What the request asks for. ``engines``: per tier, the engine the job would run on
    ("direct", "batch", "vault"), None where the request cannot take that tier."""

    tier: Tier
    expiration_days: int
    engines: Mapping[Tier, str | None]
    batch_source: Orchestration = Orchestration.BATCH_CSV  # how the batch engine learns classes
    keep_restored_days: int = 0
    expedited_fallback: bool = False
    restore_rate_per_second: int = 0  # the direct engine's pacing: the last request goes out after objects / rate


@dataclass(frozen=True)
class TierPrice:
    requests_per_thousand: float
    retrieval_per_gb: float
    window: str
    min_hours: float
    max_hours: float


@dataclass(frozen=True)
class Prices:
    """The price data file, read: the restore fees per class and tier, and what else a job costs."""

    region: str
    as_of: str
    currency: str
    sources: Mapping[str, str]
    restore: Mapping[ArchiveClass, Mapping[Tier, TierPrice]]
    copy_storage_per_gb_month: float
    hours_per_month: float
    batch_per_job: float
    batch_per_million: float
    orchestration: Mapping[str, float]
    storage_per_gb_month: Mapping[str, float]
    head_per_thousand: float

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> Prices:
        restore_doc = doc["restore"]
        restore: dict[ArchiveClass, dict[Tier, TierPrice]] = {}
        for archive in ArchiveClass:
            if archive.value not in restore_doc:
                continue
            restore[archive] = {
                Tier.parse(name): TierPrice(
                    float(p["requests_per_thousand"]),
                    float(p["retrieval_per_gb"]),
                    str(p["window"]),
                    float(p["min_hours"]),
                    float(p["max_hours"]),
                )
                for name, p in restore_doc[archive.value].items()
            }
        storage = {str(k): float(v) for k, v in doc["s3"]["storage_per_gb_month"].items()}
        return cls(
            region=str(doc["region"]),
            as_of=str(doc["as_of"]),
            currency=str(doc.get("currency", "USD")),
            sources={str(k): str(v) for k, v in doc.get("sources", {}).items()},
            restore=restore,
            copy_storage_per_gb_month=storage[str(restore_doc.get("restored_copy_storage_class", "STANDARD"))],
            hours_per_month=float(restore_doc.get("hours_per_month", 730)),
            batch_per_job=float(doc["s3_batch_operations"]["per_job"]),
            batch_per_million=float(doc["s3_batch_operations"]["per_million_objects"]),
            orchestration={str(k): float(v) for k, v in doc["orchestration"].items() if not str(k).startswith("comment")},
            storage_per_gb_month=storage,
            head_per_thousand=float(doc["s3"]["get_head_per_thousand"]),
        )

    def tier_price(self, archive: ArchiveClass, tier: Tier) -> TierPrice | None:
        """None: the class offers no such tier (Deep Archive has no Expedited)."""
        return self.restore[archive.priced_as].get(tier)

    def orchestration_cost(self, how: Orchestration, objects: int, size: int) -> float:
        o = self.orchestration
        if how is Orchestration.VAULT:
            return objects * o["vault_per_million_archives"] / 1e6 + size / GIB * o["vault_per_gib"]
        return objects * o[f"{how.value}_per_million_objects"] / 1e6


@lru_cache(maxsize=4)
def load_prices(path: str | None = None) -> Prices:
    """The price data file (``PRICES_FILE`` unless told), read once."""
    return Prices.from_document(json.loads(Path(path or PRICES_FILE).read_text(encoding="utf-8")))


@dataclass(frozen=True)
class Window:
    text: str
    min_hours: float
    max_hours: float


@dataclass(frozen=True)
class ClassCost:
    archive: ArchiveClass
    objects: int
    bytes: int
    tier_used: Tier | None  # None: the class has no such tier and no fallback: its objects would fail
    restore_requests: float
    retrieval: float
    restored_storage: float
    window: Window | None
    note: str = ""


@dataclass(frozen=True)
class TierCost:
    tier: Tier
    chosen: bool
    engine: str | None  # None: the request cannot run at this tier (S3 Batch Operations has no Expedited)
    restore_requests: float
    retrieval: float
    restored_storage: float
    batch_operations: float
    orchestration: float
    window: Window | None
    by_class: list[ClassCost]
    notes: list[str]

    @property
    def total(self) -> float:
        return self.restore_requests + self.retrieval + self.restored_storage + self.batch_operations + self.orchestration


def _hours(value: float) -> str:
    if value < 1:
        return f"{max(1, round(value * 60))} minutes"
    return f"{value:.0f} hours" if value == int(value) else f"{value:.1f} hours"


def combined_window(parts: list[tuple[ArchiveClass, TierPrice]], issue_hours: float = 0.0) -> Window | None:
    """When the job should be done: its slowest class's window, after the last request goes out."""
    if not parts:
        return None
    low = max(p.min_hours for _, p in parts)
    high = max(p.max_hours for _, p in parts) + issue_hours
    windows = {p.window for _, p in parts}
    text = (
        parts[0][1].window
        if len(windows) == 1
        else (f"up to {_hours(high - issue_hours)} (" + "; ".join(f"{a.value} {p.window}" for a, p in parts) + ")")
    )
    if issue_hours >= 1 / 60:
        text += f", after the requests are sent (about {_hours(issue_hours)} at the stack's pacing)"
    return Window(text, round(low, 4), round(high, 4))


def tiers_to_show(population: Population, chosen: Tier) -> list[Tier]:
    """Every tier some class to restore offers, and the chosen one; fastest first."""
    offered = {chosen}
    for archive in population.to_restore:
        if archive is ArchiveClass.DEEP_ARCHIVE or archive is ArchiveClass.IT_DEEP_ARCHIVE:
            offered |= {Tier.STANDARD, Tier.BULK}
        else:
            offered |= set(Tier)
    if not population.to_restore:
        offered |= {Tier.STANDARD, Tier.BULK}
    return [t for t in (Tier.EXPEDITED, Tier.STANDARD, Tier.BULK) if t in offered]


def cost_of_tier(population: Population, plan: JobPlan, prices: Prices, tier: Tier) -> TierCost:
    """What the job costs at ``tier``, and when it should be done."""
    engine = plan.engines.get(tier)
    days = plan.expiration_days + plan.keep_restored_days
    month_share = days * 24 / prices.hours_per_month
    notes: list[str] = []
    by_class: list[ClassCost] = []
    parts: list[tuple[ArchiveClass, TierPrice]] = []
    requested = 0
    for archive in sorted(population.to_restore, key=lambda a: list(ArchiveClass).index(a)):
        tally = population.to_restore[archive]
        if tally.objects == 0:
            continue
        used: Tier | None = tier
        price = prices.tier_price(archive, tier)
        note = ""
        if price is None and tier is Tier.EXPEDITED and plan.expedited_fallback:
            used, price = Tier.STANDARD, prices.tier_price(archive, Tier.STANDARD)
            note = f"{archive.value} has no Expedited: restored with Standard (expedited_fallback)"
        elif price is None:
            used = None
            what = "its object" if tally.objects == 1 else f"these {tally.objects:,} objects"
            note = (
                f"{archive.value} has no {tier.value} tier: {what} would fail "
                "(send expedited_fallback: true to restore with Standard instead)"
            )
        if note:
            notes.append(note)
        if price is None:
            by_class.append(ClassCost(archive, tally.objects, tally.bytes, None, 0.0, 0.0, 0.0, None, note))
            continue
        requested += tally.objects
        gib = tally.bytes / GIB
        storage = gib * prices.copy_storage_per_gb_month * month_share if archive.has_restored_copy else 0.0
        parts.append((archive, price))
        by_class.append(
            ClassCost(
                archive,
                tally.objects,
                tally.bytes,
                used,
                tally.objects * price.requests_per_thousand / 1000,
                gib * price.retrieval_per_gb,
                storage,
                Window(price.window, price.min_hours, price.max_hours),
                note,
            )
        )
    batch = 0.0
    if engine == "batch":
        groups = {a.batch_group for a, t in population.to_restore.items() if t.objects}
        batch = len(groups) * prices.batch_per_job + requested * prices.batch_per_million / 1e6
        if len(groups) > 1:
            notes.append("two S3 Batch Operations jobs: Intelligent-Tiering objects may not share one with Glacier's")
    how = Orchestration.VAULT if engine == "vault" else plan.batch_source if engine == "batch" else Orchestration.DIRECT
    # Every object of the job is tracked, those it skips included.
    orchestration = prices.orchestration_cost(how, population.objects_listed, population.bytes_to_restore)
    issue_hours = requested / plan.restore_rate_per_second / 3600 if engine == "direct" and plan.restore_rate_per_second else 0.0
    if engine is None:
        notes.append(f'this request cannot run at {tier.value}: S3 Batch Operations has no Expedited tier (use engine "direct")')
    return TierCost(
        tier,
        tier is plan.tier,
        engine,
        sum(c.restore_requests for c in by_class),
        sum(c.retrieval for c in by_class),
        sum(c.restored_storage for c in by_class),
        batch,
        orchestration,
        combined_window(parts, issue_hours),
        by_class,
        notes,
    )


def estimate_costs(population: Population, plan: JobPlan, prices: Prices) -> list[TierCost]:
    """Every tier that applies (``tiers_to_show``), fastest first; the chosen one marked."""
    return [cost_of_tier(population, plan, prices, tier) for tier in tiers_to_show(population, plan.tier)]


def margin_percent(sample: int) -> float | None:
    """The widest 95 % margin of a share estimated from ``sample`` objects drawn at random, in
    percentage points of the whole (a share of one half: 1.96 * sqrt(0.25 / n))."""
    if sample <= 0:
        return None
    return round(196 * math.sqrt(0.25 / sample), 1)
