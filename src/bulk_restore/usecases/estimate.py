"""The price before paying: what a create-job request would cost and when it would be done.

The source is read as the planner reads it, through the same readers (``domain.manifest``,
``domain.inventory``, ``S3Gateway.list_page``, ``domain.vault_jobs``), and checked as a create checks
it (``JobService.checked_*``), but nothing is stored: no job, no idempotency record.

- A CSV manifest is streamed; its objects' classes, sizes and restore status come from one
  HeadObject each, up to ``head_limit`` objects; beyond that a uniform random sample of that many
  is looked at and the shares found are applied to the whole (the answer says so, with the margin).
- An S3 Inventory report's rows carry each object's class and size: no HeadObject.
- A prefix is listed (ListObjectsV2 gives class and size, and RestoreStatus where S3 returns it);
  the restore status (and an Intelligent-Tiering object's access tier) of the archived ones comes
  from HeadObject, sampled beyond ``head_limit``.
- A vault: the archive count and size of its last inventory (DescribeVault); archives named in the
  request or a manifest take the vault's average size.

The work is capped to answer within API Gateway's 29 seconds (``budget_seconds``, lines, rows,
objects listed): what was capped is said, and counts are extrapolated from the bytes read where
the source's size is known (a manifest, an inventory), or are a lower bound (a prefix).

``Estimate`` and ``DryRunAnswer`` are the API's answer models (POST /create-job with ``dry_run``).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from bulk_restore.adapters.s3 import S3Gateway
from bulk_restore.domain.errors import EstimateOverMaxCost, InvalidRequest
from bulk_restore.domain.estimate import (
    GIB,
    ArchiveClass,
    ClassCost,
    JobPlan,
    Orchestration,
    Population,
    Prices,
    SkipReason,
    Tally,
    TierCost,
    Window,
    estimate_costs,
    load_prices,
    margin_percent,
)
from bulk_restore.domain.inventory import FileFormat, InventoryEntry, InventoryFile, InventorySkip, SkipCode, iter_report
from bulk_restore.domain.manifest import check_versioning, count_objects, header_row, iter_lines, parse_row
from bulk_restore.domain.model import ManifestEntry, ManifestError, ObjectId, Tier
from bulk_restore.domain.outcomes import RetryLater
from bulk_restore.domain.vault_jobs import VaultRow, vault_manifest_row
from bulk_restore.usecases.jobs import INVENTORY_BYTES_PER_ROW, CreateJobRequest, JobService, estimate_objects

HEAD_LIMIT = 1_000  # HeadObject calls per estimate at most; beyond, a sample
BUDGET_SECONDS = 20.0  # the whole estimate, well inside API Gateway's 29 s
READ_SHARE = 0.6  # of the budget, for reading the source; the rest for HeadObject
MAX_LINES = 1_000_000  # manifest lines read at most (distinct objects are remembered to count them once)
MAX_ROWS = 2_000_000  # inventory rows read at most
MAX_LISTED = 200_000  # objects of a prefix listed at most
ARCHIVED_LISTED = ("GLACIER", "DEEP_ARCHIVE", "INTELLIGENT_TIERING")
_INVENTORY_ARCHIVE = {
    "GLACIER": ArchiveClass.GLACIER,
    "DEEP_ARCHIVE": ArchiveClass.DEEP_ARCHIVE,
    "ARCHIVE_ACCESS": ArchiveClass.IT_ARCHIVE,
    "DEEP_ARCHIVE_ACCESS": ArchiveClass.IT_DEEP_ARCHIVE,
}
_INVENTORY_SKIPS = {
    SkipCode.NOT_ARCHIVED: SkipReason.NOT_ARCHIVED,
    SkipCode.DELETE_MARKER: SkipReason.DELETE_MARKER,
    SkipCode.NOT_LATEST: SkipReason.NOT_LATEST,
    SkipCode.UNKNOWN_CLASS: SkipReason.UNREADABLE,
}


# ---- the answer ----------------------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EstimateWindow(_Model):
    Text: str = Field(description='When the job should be done once started, as S3 documents the tier (e.g. "5-12 hours")')
    MinHours: float = Field(description="The earliest the slowest class's restores typically finish, in hours")
    MaxHours: float = Field(description="The latest they typically finish, in hours (with the time to send the requests)")


class StorageClassCount(_Model):
    StorageClass: str = Field(
        description="GLACIER, DEEP_ARCHIVE, INTELLIGENT_TIERING_ARCHIVE_ACCESS, "
        "INTELLIGENT_TIERING_DEEP_ARCHIVE_ACCESS, GLACIER_VAULT, or UNKNOWN (priced as GLACIER)"
    )
    Objects: int = Field(description="Objects to restore in this class")
    Bytes: int = Field(description="Their bytes")


class SkippedCount(_Model):
    Reason: str = Field(
        description="NOT_ARCHIVED, ALREADY_RESTORED, RESTORE_IN_PROGRESS, MISSING, BUCKET_NOT_ALLOWED, BAD_LINE, "
        "DELETE_MARKER, NOT_LATEST, NOT_SELECTED or UNREADABLE"
    )
    Outcome: str = Field(
        description="The state the job would give these objects: SKIPPED, RESTORED, RESTORING, FAILED (UNKNOWN: S3 will say)"
    )
    Description: str = Field(description="The reason, in words")
    Objects: int
    Bytes: int = Field(description="Their bytes where the source says (0 where it does not)")


class ClassCostDoc(_Model):
    StorageClass: str
    Objects: int
    Bytes: int
    TierUsed: str | None = Field(
        description="The tier these objects would be restored with (STANDARD for Deep Archive under an "
        "Expedited job with expedited_fallback); null: not restorable at this tier, they would fail"
    )
    RestoreRequestsUsd: float
    RetrievalUsd: float
    RestoredStorageUsd: float
    Window: EstimateWindow | None
    Note: str | None


class TierEstimate(_Model):
    Tier: Literal["EXPEDITED", "STANDARD", "BULK"]
    Chosen: bool = Field(description="The request's tier: the one max_cost_usd is compared with")
    Engine: str | None = Field(
        description="direct, batch or vault: who would send the requests at this tier; null: the request "
        "cannot run at this tier (S3 Batch Operations has no Expedited)"
    )
    RestoreRequestsUsd: float = Field(description="S3's (or Glacier's) fee per restore request")
    RetrievalUsd: float = Field(description="S3's (or Glacier's) fee per GB retrieved")
    RestoredStorageUsd: float = Field(description="The restored copies as S3 Standard storage for expiration_days (+ keep_restored_days)")
    BatchOperationsUsd: float = Field(description="S3 Batch Operations' fee per job and per million objects (batch engine only)")
    OrchestrationUsd: float = Field(description="This stack's own AWS bill (DynamoDB, SQS, SNS, Lambda, logs), per the benchmarks")
    TotalUsd: float = Field(description="The sum of the five above")
    Window: EstimateWindow | None = Field(description="When the job should be done; null: nothing to restore")
    ByStorageClass: list[ClassCostDoc]
    Notes: list[str]


class SamplingDoc(_Model):
    Sampled: bool = Field(description="Whether counts come from a sample of the objects, extrapolated to the whole")
    HeadObjects: int = Field(description="HeadObject requests this estimate made")
    SampleSize: int = Field(description="Objects looked at by HeadObject")
    Population: int = Field(description="Objects the sample stands for")
    MarginPercent: float | None = Field(description="With a sample: the widest 95 % margin of a share, in percentage points")
    Method: str = Field(description="How the classes, sizes and restore status were learnt")


class PriceSource(_Model):
    Region: str = Field(description="The region the prices are for")
    RequestedRegion: str = Field(description="The stack's region (prices of another region are used when the file has none for it)")
    AsOf: str = Field(description="When the prices were read from AWS's pricing pages")
    Currency: Literal["USD"]
    File: str = Field(description="The price data file")
    Sources: dict[str, str] = Field(description="Where each price comes from")


class Estimate(_Model):
    """What a create-job request would cost, per tier, and when it would be done."""

    Source: Literal["manifest", "s3-inventory", "prefix", "vault"]
    Tier: Literal["EXPEDITED", "STANDARD", "BULK"] = Field(description="The request's tier")
    Engine: str | None = Field(description="The engine at the request's tier")
    ExpirationDays: int
    KeepRestoredDays: int
    Complete: bool = Field(description="Whether the whole source was read (false: see Capped)")
    Exact: bool = Field(description="Whether every count is exact (false: sampled, extrapolated or a lower bound)")
    ObjectsListed: int = Field(description="Objects the job would have: to restore and skipped")
    ObjectsToRestore: int
    BytesToRestore: int
    ByStorageClass: list[StorageClassCount]
    Skipped: list[SkippedCount]
    Tiers: list[TierEstimate] = Field(description="Every tier that applies, fastest first; the request's one has Chosen true")
    TotalUsd: float = Field(description="The total at the request's tier")
    MaxCostUsd: float | None = Field(description="The request's max_cost_usd, if any")
    TargetStorageUsdPerMonth: float | None = Field(
        description="A vault job: the archives' storage per month in the target's class, after the move (not in the totals)"
    )
    Sampling: SamplingDoc
    Capped: list[str] = Field(description="What was cut short to answer in time, and how the counts were completed")
    Prices: PriceSource
    Notes: list[str] = Field(description="What was assumed, and what the figures leave out")


class DryRunAnswer(_Model):
    """POST /create-job with dry_run: the estimate; nothing was created."""

    DryRun: Literal[True]
    Estimate: Estimate
    Warnings: list[str] = Field(description="One message per body field that was ignored")


# ---- reading a source ----------------------------------------------------------------------------


@dataclass
class _Reading:
    source: str
    population: Population
    complete: bool = True
    exact: bool = True
    heads: int = 0
    sample_size: int = 0
    sample_population: int = 0
    sampled: bool = False
    method: str = ""
    capped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    engine_objects: int | None = None
    batch_source: Orchestration = Orchestration.BATCH_CSV
    target_storage: float | None = None


Category = ArchiveClass | SkipReason


def head_category(info: Mapping[str, Any]) -> Category:
    """What one HeadObject (``S3Gateway.describe_object``) says of an object, for an estimate."""
    kind = info["kind"]
    if kind == "archive":
        return ArchiveClass.DEEP_ARCHIVE if info["storage_class"] == "DEEP_ARCHIVE" else ArchiveClass.GLACIER
    if kind == "intelligent-tiering":
        return ArchiveClass.IT_DEEP_ARCHIVE if info.get("archive_status") == "DEEP_ARCHIVE_ACCESS" else ArchiveClass.IT_ARCHIVE
    return {
        "restored": SkipReason.ALREADY_RESTORED,
        "restoring": SkipReason.RESTORE_IN_PROGRESS,
        "readable": SkipReason.NOT_ARCHIVED,
        "missing": SkipReason.MISSING,
    }.get(kind, SkipReason.UNREADABLE)


def scale_sample(found: list[tuple[Category, int]], objects: int, size: int | None = None) -> dict[Category, Tally]:
    """Shares of a sample applied to ``objects`` objects (largest remainders: the counts add up to
    it). Bytes: the sample's mean size per category times its count, or, given ``size`` (the
    whole's bytes), the sample's share of bytes per category times it."""
    if not found or objects <= 0:
        return {}
    counts: dict[Category, int] = {}
    sizes: dict[Category, int] = {}
    for category, nbytes in found:
        counts[category] = counts.get(category, 0) + 1
        sizes[category] = sizes.get(category, 0) + nbytes
    k = len(found)
    exact = {c: n * objects / k for c, n in counts.items()}
    floors = {c: int(v) for c, v in exact.items()}
    left = objects - sum(floors.values())
    for c in sorted(exact, key=lambda c: exact[c] - floors[c], reverse=True)[:left]:
        floors[c] += 1
    total_sampled = sum(sizes.values())
    result: dict[Category, Tally] = {}
    for c, n in floors.items():
        if size is not None:
            nbytes = round(sizes[c] / total_sampled * size) if total_sampled else 0
        else:
            nbytes = round(sizes[c] / counts[c] * n)
        result[c] = Tally(n, nbytes)
    return result


def _population(tallies: Mapping[Category, Tally]) -> Population:
    to_restore = {c: t for c, t in tallies.items() if isinstance(c, ArchiveClass) and t.objects}
    skipped = {c: t for c, t in tallies.items() if isinstance(c, SkipReason) and t.objects}
    return Population(to_restore, skipped)


def _merge(into: dict[Category, Tally], more: Mapping[Category, Tally]) -> None:
    for c, t in more.items():
        into.setdefault(c, Tally()).add(t.objects, t.bytes)


class _Reservoir:
    """A uniform random sample of at most ``size`` items of a stream (Algorithm R), seeded: the
    same source gives the same sample."""

    def __init__(self, size: int, seed: int = 0):
        self.size, self.seen, self.items = size, 0, []  # type: ignore[var-annotated]
        self.random = random.Random(seed)

    def offer(self, item: Any) -> None:
        self.seen += 1
        if len(self.items) < self.size:
            self.items.append(item)
        else:
            slot = self.random.randrange(self.seen)
            if slot < self.size:
                self.items[slot] = item


class EstimateService:
    def __init__(
        self,
        jobs: JobService,
        s3: S3Gateway,
        region: str = "",
        restore_rate_per_second: int = 0,
        head_limit: int = HEAD_LIMIT,
        budget_seconds: float = BUDGET_SECONDS,
        concurrency: int = 16,
        prices: Prices | None = None,
        clock: Callable[[], float] = time.monotonic,
        max_lines: int = MAX_LINES,
        max_rows: int = MAX_ROWS,
        max_listed: int = MAX_LISTED,
    ):
        self.jobs = jobs
        self.s3 = s3
        self.region = region
        self.restore_rate_per_second = restore_rate_per_second
        self.head_limit = head_limit
        self.budget_seconds = budget_seconds
        self.concurrency = max(1, concurrency)
        self.prices = prices or load_prices()
        self.clock = clock
        self.max_lines, self.max_rows, self.max_listed = max_lines, max_rows, max_listed

    # ---- the use cases ---------------------------------------------------------------------

    def estimate(self, request: CreateJobRequest) -> Estimate:
        """The estimate of a create-job request. Raises what the create would raise for a bad source."""
        started = self.clock()
        read_until = started + self.budget_seconds * READ_SHARE
        head_until = started + self.budget_seconds
        if request.vault is not None:
            reading = self._vault(request, read_until)
        elif request.source is not None:
            reading = self._prefix(request, read_until, head_until)
        elif request.manifest_format == "s3-inventory":
            reading = self._inventory(request, read_until)
        else:
            reading = self._manifest(request, read_until, head_until)
        return self._document(request, reading)

    def check_max_cost(self, request: CreateJobRequest) -> Estimate | None:
        """With max_cost_usd: the estimate, or EstimateOverMaxCost when its total at the request's tier is above it."""
        if request.max_cost_usd is None:
            return None
        estimate = self.estimate(request)
        if estimate.TotalUsd <= request.max_cost_usd:
            return estimate
        cheapest = min((t for t in estimate.Tiers if t.Engine is not None), key=lambda t: t.TotalUsd, default=None)
        hint = (
            f"; tier {cheapest.Tier} would cost ${cheapest.TotalUsd:,.2f}"
            if cheapest is not None and cheapest.Tier != estimate.Tier and cheapest.TotalUsd < estimate.TotalUsd
            else ""
        )
        raise EstimateOverMaxCost(
            f"the estimate for this job is ${estimate.TotalUsd:,.2f} at tier {estimate.Tier}, above max_cost_usd ${request.max_cost_usd:,.2f}: "
            f"nothing was created. Raise max_cost_usd, choose a cheaper tier{hint}, or restore fewer objects "
            "(send dry_run: true to see the whole estimate)",
            {
                "TotalUsd": estimate.TotalUsd,
                "MaxCostUsd": request.max_cost_usd,
                "Tier": estimate.Tier,
                "Estimate": estimate.model_dump(mode="json"),
            },
        )

    # ---- sources ---------------------------------------------------------------------------

    def _manifest(self, request: CreateJobRequest, read_until: float, head_until: float) -> _Reading:
        location, sample = self.jobs.checked_manifest(request)
        complete_sample = len(sample) >= location.size
        reservoir = _Reservoir(self.head_limit)
        refs: set[int] = set()
        errors = not_allowed = versioned_line = bytes_read = lines = 0
        capped = ""
        for raw in iter_lines(self.s3.stream_manifest(location, 0)):
            if raw.number > self.max_lines:
                capped = f"the manifest was read to line {lines:,} (the limit)"
                break
            if self.clock() > read_until:
                capped = f"the manifest was read to line {lines:,} (the time limit)"
                break
            lines, bytes_read = raw.number, raw.end_offset
            if raw.too_long:
                errors += 1
                continue
            if raw.number == 1 and header_row(1, raw.data):
                continue
            row = parse_row(raw.number, raw.data)
            if isinstance(row, ManifestEntry):
                row, versioned_line = check_versioning(row, versioned_line)
            if isinstance(row, ManifestError):
                errors += 1
            elif isinstance(row, ManifestEntry):
                if not self.s3.may_touch(row.object.bucket):
                    not_allowed += 1
                    continue
                ref = hash(row.object.ref)
                if ref not in refs:
                    refs.add(ref)
                    reservoir.offer(row.object)
        scale = location.size / bytes_read if capped and bytes_read else 1.0
        valid = round(reservoir.seen * scale)
        reading = _Reading("manifest", Population({}), complete=not capped)
        # the objects the create counts (or estimates) to choose the engine, as it does
        reading.engine_objects = count_objects(sample) if complete_sample else estimate_objects(sample, location.size)
        if capped:
            reading.capped.append(
                f"{capped}, {bytes_read:,} of its {location.size:,} bytes: counts extrapolated by its size (x{scale:.2f})"
            )
        found = self._heads(reservoir.items, head_until, reading)
        tallies: dict[Category, Tally] = {}
        _merge(tallies, scale_sample(found, valid))
        if errors:
            tallies[SkipReason.BAD_LINE] = Tally(round(errors * scale), 0)
        if not_allowed:
            tallies[SkipReason.BUCKET_NOT_ALLOWED] = Tally(round(not_allowed * scale), 0)
        reading.population = _population(tallies)
        reading.sampled = len(found) < valid
        reading.exact = not capped and not reading.sampled
        reading.sample_population = valid
        reading.method = (
            f"HeadObject of every object ({len(found):,})"
            if not reading.sampled
            else f"HeadObject of {len(found):,} objects drawn at random from {reservoir.seen:,} distinct ones read; "
            f"their shares of each class and reason applied to {valid:,}"
        )
        return reading

    def _inventory(self, request: CreateJobRequest, read_until: float) -> _Reading:
        _, manifest = self.jobs.checked_inventory(request)
        parquet = manifest.file_format is FileFormat.PARQUET
        consumed = [0]
        started: list[int] = []

        def opener(info: InventoryFile) -> Any:
            started.append(info.size)
            opened = self.s3.inventory_file(manifest.destination_bucket, info.key, seekable=parquet)
            if parquet:
                return opened

            def counted(blocks: Iterable[bytes]) -> Iterator[bytes]:
                for block in blocks:
                    consumed[0] += len(block)
                    yield block

            return counted(opened)

        tallies: dict[Category, Tally] = {}
        rows = unsized = 0
        capped = ""
        for item in iter_report(manifest, opener, latest_only=not request.include_versions):
            if rows >= self.max_rows:
                capped = f"the report was read to row {rows:,} (the limit)"
                break
            if self.clock() > read_until:
                capped = f"the report was read to row {rows:,} (the time limit)"
                break
            rows += 1  # noqa: SIM113 - the rows read, not an index: it stays the count after the loop
            result = item.result
            if isinstance(result, InventoryEntry):
                archive = _INVENTORY_ARCHIVE.get(result.archive or "", ArchiveClass.UNKNOWN)
                unsized += result.size is None
                tallies.setdefault(archive, Tally()).add(1, result.size or 0)
            elif isinstance(result, InventorySkip):
                tallies.setdefault(_INVENTORY_SKIPS[result.code], Tally()).add(1, 0)
            else:
                tallies.setdefault(SkipReason.BAD_LINE, Tally()).add(1, 0)
        total = sum(f.size for f in manifest.files)
        reading = _Reading(
            "s3-inventory",
            Population({}),
            complete=not capped,
            exact=not capped,
            batch_source=Orchestration.BATCH_LISTED,
            method="the report's StorageClass, IntelligentTieringAccessTier and Size columns: no HeadObject",
        )
        reading.engine_objects = total // INVENTORY_BYTES_PER_ROW
        if capped:
            read = consumed[0] if not parquet else sum(started)
            scale = total / read if read else 1.0
            tallies = {c: Tally(round(t.objects * scale), round(t.bytes * scale)) for c, t in tallies.items()}
            reading.capped.append(
                f"{capped}, about {read:,} of its data files' {total:,} bytes: counts extrapolated by their size (x{scale:.2f})"
            )
        reading.population = _population(tallies)
        reading.notes.append(
            "an inventory does not say which objects are already restored or restoring: they are counted as to "
            "restore (a restore request for a restored object only extends its expiry)"
        )
        if unsized:
            reading.notes.append(
                f"{unsized:,} rows give no Size (add Size to the inventory's fields): their retrieval is priced as 0 bytes"
            )
        if ArchiveClass.UNKNOWN in reading.population.to_restore:
            reading.notes.append(
                "the report gives no storage class for some rows (add StorageClass to the inventory's fields): they are priced as GLACIER"
            )
        return reading

    def _prefix(self, request: CreateJobRequest, read_until: float, head_until: float) -> _Reading:
        source = request.source
        assert source is not None
        self.jobs.check_prefix(source)
        wanted: set[str] = set(source.storage_classes or ()) or set(ARCHIVED_LISTED)
        tallies: dict[Category, Tally] = {}
        listed_by_class: dict[str, Tally] = {}
        reservoirs: dict[str, _Reservoir] = {}
        listing_says = False
        marker: dict[str, str] = {}
        listed = 0
        capped = ""
        while True:
            items, following = self.s3.list_page(source.bucket, source.prefix, source.include_versions, marker, restore_status=True)
            for item in items:
                listed += 1
                storage_class = item["StorageClass"]
                status = item.get("RestoreStatus")
                if item["DeleteMarker"]:
                    category: Category | None = SkipReason.DELETE_MARKER
                elif storage_class not in wanted:
                    category = SkipReason.NOT_SELECTED if storage_class in ARCHIVED_LISTED else SkipReason.NOT_ARCHIVED
                elif status:
                    listing_says = True
                    category = SkipReason.RESTORE_IN_PROGRESS if status.get("IsRestoreInProgress") else SkipReason.ALREADY_RESTORED
                else:
                    category = None
                    listed_by_class.setdefault(storage_class, Tally()).add(1, item["Size"])
                    reservoirs.setdefault(storage_class, _Reservoir(self.head_limit)).offer(
                        (ObjectId(source.bucket, item["Key"], item["VersionId"] if source.include_versions else None), item["Size"])
                    )
                if category is not None:
                    tallies.setdefault(category, Tally()).add(1, item["Size"])
            if following is None:
                break
            if listed >= self.max_listed:
                capped = f"the listing stopped after {listed:,} objects (the limit)"
                break
            if self.clock() > read_until:
                capped = f"the listing stopped after {listed:,} objects (the time limit)"
                break
            marker = following
        reading = _Reading("prefix", Population({}), complete=not capped, batch_source=Orchestration.BATCH_LISTED)
        if capped:
            reading.capped.append(
                f"{capped}: the prefix holds more, and the figures are for the objects listed (a lower bound); "
                "an S3 Inventory report of the bucket gives a whole estimate quickly"
            )
        # What the listing cannot say: whether an archived object is restored or restoring (unless
        # S3 returned RestoreStatus), and an Intelligent-Tiering object's access tier.
        to_head = {c: t for c, t in listed_by_class.items() if c == "INTELLIGENT_TIERING" or not listing_says}
        for storage_class, tally in listed_by_class.items():
            if storage_class not in to_head:
                tallies.setdefault(ArchiveClass(storage_class), Tally()).add(tally.objects, tally.bytes)
        shares = _split(self.head_limit, {c: t.objects for c, t in to_head.items()})
        rng = random.Random(0)
        sampled = False
        for storage_class, tally in sorted(to_head.items()):
            pool = reservoirs[storage_class].items
            picked = pool if len(pool) <= shares[storage_class] else rng.sample(pool, shares[storage_class])
            found = self._heads([obj for obj, _ in picked], head_until, reading)
            sampled |= len(found) < tally.objects
            reading.sample_population += tally.objects
            if not found:  # no time left to look: what the listing says
                fallback = ArchiveClass.IT_ARCHIVE if storage_class == "INTELLIGENT_TIERING" else ArchiveClass(storage_class)
                tallies.setdefault(fallback, Tally()).add(tally.objects, tally.bytes)
                reading.notes.append(
                    f"{tally.objects:,} {storage_class} objects were not looked at (the time limit): priced as "
                    f"{fallback.value}, restore status unknown"
                )
                continue
            _merge(tallies, scale_sample(found, tally.objects, tally.bytes))
        reading.population = _population(tallies)
        reading.sampled = sampled
        reading.exact = not capped and not sampled
        what = "ListObjectsV2" + (" (ListObjectVersions)" if source.include_versions else "")
        reading.method = (
            f"{what} for classes and sizes"
            + (" and RestoreStatus" if listing_says else "")
            + (
                f"; HeadObject of {reading.sample_size:,} archived objects for their restore status and access tier"
                if reading.sample_size
                else ""
            )
        )
        return reading

    def _vault(self, request: CreateJobRequest, read_until: float) -> _Reading:
        assert request.vault is not None and request.target is not None
        found, location = self.jobs.checked_vault(request)
        archives, size = found.get("archives"), found.get("size")
        average = size / archives if archives else None
        reading = _Reading("vault", Population({}), batch_source=Orchestration.VAULT)
        reading.method = "DescribeVault: the archive count and bytes of the vault's last inventory"
        tallies: dict[Category, Tally] = {}
        count: int | None
        if request.archives is not None:
            count = len(set(request.archives))
        elif request.bucket is not None:
            count = errors = bytes_read = 0
            capped = ""
            for raw in iter_lines(self.s3.stream_manifest(location, 0)):
                if raw.number > self.max_lines or self.clock() > read_until:
                    capped = f"the manifest of archive ids was read to line {raw.number - 1:,}"
                    break
                bytes_read = raw.end_offset
                row = vault_manifest_row(raw.number, raw.data.decode("utf-8", "replace"))
                count += isinstance(row, VaultRow)
                errors += isinstance(row, ManifestError)
            if capped and bytes_read:
                scale = location.size / bytes_read
                count, errors = round(count * scale), round(errors * scale)
                reading.capped.append(f"{capped}, {bytes_read:,} of its {location.size:,} bytes: counts extrapolated by its size")
                reading.complete = reading.exact = False
            if errors:
                tallies[SkipReason.BAD_LINE] = Tally(errors, 0)
        else:
            count = archives
        if count is None:
            count = 0
            reading.exact = False
            reading.notes.append(
                f"vault {request.vault.name} has no inventory yet (Glacier takes one about a day after the first upload): "
                "its archives cannot be counted, and the figures are for none"
            )
        if request.max_archives is not None and count > request.max_archives:
            count = request.max_archives
        nbytes = round(count * average) if average is not None else 0
        if request.archives is not None or request.bucket is not None or request.max_archives is not None:
            reading.exact = False
            reading.notes.append(
                "archives' sizes are the vault's average at its last inventory"
                + (f" ({average:,.0f} bytes)" if average is not None else " (none yet: priced as 0 bytes)")
            )
        if request.filter is not None:
            reading.exact = False
            reading.notes.append(
                "the filter is not applied here (it needs the inventory's dates and sizes): the figures are for "
                "every archive of the vault, an upper bound"
            )
        if count:
            tallies[ArchiveClass.VAULT] = Tally(count, nbytes)
        reading.population = _population(tallies)
        storage_class = request.target.storage_class
        reading.target_storage = nbytes / GIB * self.prices.storage_per_gb_month.get(storage_class, 0.0)
        reading.notes.append(
            f"after the move the archives are stored in s3://{request.target.bucket}/{request.target.prefix} as "
            f"{storage_class}: TargetStorageUsdPerMonth, not in the totals; delete them from the vault to stop its storage charge"
        )
        return reading

    # ---- HeadObject ------------------------------------------------------------------------

    def _heads(self, objects: list[ObjectId], until: float, reading: _Reading) -> list[tuple[Category, int]]:
        """HeadObject each, a few at a time, until ``until``; (category, size) of those answered."""
        if not objects:
            return []
        pool = ThreadPoolExecutor(max_workers=min(self.concurrency, len(objects)))
        futures = [pool.submit(self._head, obj) for obj in objects]
        try:
            pending = set(futures)
            while pending:
                left = until - self.clock()
                if left <= 0:
                    break
                _, pending = wait(pending, timeout=left, return_when=FIRST_COMPLETED)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)  # those not started are dropped; those running end
        ran = [f for f in futures if not f.cancelled()]
        if len(ran) < len(futures):
            reading.capped.append(
                f"HeadObject stopped after {len(ran):,} of {len(futures):,} objects (the time limit): the sample is smaller"
            )
        found = [answer for f in ran if (answer := f.result()) is not None]
        reading.heads += len(ran)
        reading.sample_size += len(found)
        return found

    def _head(self, obj: ObjectId) -> tuple[Category, int] | None:
        for attempt in range(3):
            try:
                info = self.s3.describe_object(obj)
                return head_category(info), int(info["size"])
            except RetryLater:
                time.sleep(0.05 * 2**attempt)
        return None  # throttled: left out of the sample

    # ---- the document ----------------------------------------------------------------------

    def _engines(self, request: CreateJobRequest, objects: int | None) -> dict[Tier, str | None]:
        if request.vault is not None:
            return dict.fromkeys(Tier, "vault")
        engines: dict[Tier, str | None] = {}
        for tier in Tier:
            try:
                engines[tier] = self.jobs.choose_engine(request.model_copy(update={"tier": tier}), objects)
            except InvalidRequest:
                if tier is request.tier:
                    raise  # as the create would
                engines[tier] = None
        return engines

    def _document(self, request: CreateJobRequest, reading: _Reading) -> Estimate:
        prices = self.prices
        plan = JobPlan(
            request.tier,
            request.expiration_days,
            self._engines(request, reading.engine_objects),
            reading.batch_source,
            request.keep_restored_days,
            request.expedited_fallback,
            self.restore_rate_per_second,
        )
        tiers = estimate_costs(reading.population, plan, prices)
        chosen = next(t for t in tiers if t.chosen)
        population = reading.population
        notes = list(reading.notes)
        if self.region and self.region != prices.region:
            notes.insert(
                0,
                f"prices are {prices.region}'s ({prices.as_of}): the price file has none for {self.region}, where most "
                "prices are the same or higher",
            )
        if any(a.has_restored_copy for a in population.to_restore):
            notes.append(
                f"restored copies are billed as S3 Standard for {request.expiration_days + request.keep_restored_days} days "
                "(expiration_days + keep_restored_days), on top of the archive; S3 ends them at the next midnight UTC after "
                "their days: up to a day more"
            )
        if ArchiveClass.IT_ARCHIVE in population.to_restore or ArchiveClass.IT_DEEP_ARCHIVE in population.to_restore:
            notes.append(
                "Intelligent-Tiering objects move back to the Frequent Access tier (no copy, and Standard and Bulk restores "
                "are free): billed at that tier's rate until they tier down again"
            )
        if reading.heads:
            notes.append(
                f"this estimate made {reading.heads:,} HeadObject requests (${reading.heads * prices.head_per_thousand / 1000:.4f})"
            )
        notes.append("not included: reading or copying the restored objects (requests, data transfer), and the archives' own storage")
        return Estimate(
            Source=reading.source,  # type: ignore[arg-type]
            Tier=request.tier.value.upper(),  # type: ignore[arg-type]
            Engine=chosen.engine,
            ExpirationDays=request.expiration_days,
            KeepRestoredDays=request.keep_restored_days,
            Complete=reading.complete,
            Exact=reading.exact,
            ObjectsListed=population.objects_listed,
            ObjectsToRestore=population.objects_to_restore,
            BytesToRestore=population.bytes_to_restore,
            ByStorageClass=[
                StorageClassCount(StorageClass=a.value, Objects=t.objects, Bytes=t.bytes)
                for a, t in sorted(population.to_restore.items(), key=lambda i: list(ArchiveClass).index(i[0]))
            ],
            Skipped=[
                SkippedCount(Reason=r.value, Outcome=r.outcome, Description=r.description, Objects=t.objects, Bytes=t.bytes)
                for r, t in sorted(population.skipped.items(), key=lambda i: list(SkipReason).index(i[0]))
            ],
            Tiers=[_tier_document(t) for t in tiers],
            TotalUsd=_usd(chosen.total),
            MaxCostUsd=request.max_cost_usd,
            TargetStorageUsdPerMonth=_usd(reading.target_storage) if reading.target_storage is not None else None,
            Sampling=SamplingDoc(
                Sampled=reading.sampled,
                HeadObjects=reading.heads,
                SampleSize=reading.sample_size,
                Population=reading.sample_population or population.objects_listed,
                MarginPercent=margin_percent(reading.sample_size) if reading.sampled else None,
                Method=reading.method,
            ),
            Capped=reading.capped,
            Prices=PriceSource(
                Region=prices.region,
                RequestedRegion=self.region or prices.region,
                AsOf=prices.as_of,
                Currency="USD",
                File="prices.json",
                Sources=dict(prices.sources),
            ),
            Notes=notes,
        )


def _usd(value: float) -> float:
    return round(value, 4)


def _window(window: Window | None) -> EstimateWindow | None:
    return None if window is None else EstimateWindow(Text=window.text, MinHours=window.min_hours, MaxHours=round(window.max_hours, 4))


def _class_document(cost: ClassCost) -> ClassCostDoc:
    return ClassCostDoc(
        StorageClass=cost.archive.value,
        Objects=cost.objects,
        Bytes=cost.bytes,
        TierUsed=cost.tier_used.value.upper() if cost.tier_used else None,
        RestoreRequestsUsd=_usd(cost.restore_requests),
        RetrievalUsd=_usd(cost.retrieval),
        RestoredStorageUsd=_usd(cost.restored_storage),
        Window=_window(cost.window),
        Note=cost.note or None,
    )


def _tier_document(cost: TierCost) -> TierEstimate:
    return TierEstimate(
        Tier=cost.tier.value.upper(),  # type: ignore[arg-type]
        Chosen=cost.chosen,
        Engine=cost.engine,
        RestoreRequestsUsd=_usd(cost.restore_requests),
        RetrievalUsd=_usd(cost.retrieval),
        RestoredStorageUsd=_usd(cost.restored_storage),
        BatchOperationsUsd=_usd(cost.batch_operations),
        OrchestrationUsd=_usd(cost.orchestration),
        TotalUsd=_usd(cost.total),
        Window=_window(cost.window),
        ByStorageClass=[_class_document(c) for c in cost.by_class],
        Notes=cost.notes,
    )


def _split(total: int, weights: Mapping[str, int]) -> dict[str, int]:
    """``total`` HeadObject calls shared among classes by their objects, at least one each."""
    whole = sum(weights.values())
    return {c: max(1, total * w // whole) if whole else 1 for c, w in weights.items()}
