"""Create a job; read a job's status and its objects."""

from __future__ import annotations

import difflib
import uuid
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from bulk_restore.adapters.dynamodb import DynamoJobStore, now_iso
from bulk_restore.adapters.glacier import GlacierVaults
from bulk_restore.adapters.s3 import S3Gateway
from bulk_restore.adapters.sqs import QueueGateway
from bulk_restore.domain.batch import BatchEngineRefused, batch_tier
from bulk_restore.domain.errors import (
    BucketNotAllowed,
    IdempotencyKeyMismatch,
    InvalidRequest,
    JobAlreadyFinished,
    JobNotFound,
    ManifestLocationNotAllowed,
    ManifestUnreadable,
)
from bulk_restore.domain.inventory import FileFormat, InventoryError, InventoryManifest
from bulk_restore.domain.inventory import parse_manifest as parse_inventory_manifest
from bulk_restore.domain.manifest import count_objects, first_entry, leading_header, sniff
from bulk_restore.domain.model import Counts, JobStatus, ManifestLocation, ObjectState, RestoreJob, Tier, is_job_id
from bulk_restore.domain.progress import reported_percent
from bulk_restore.domain.vault import read_name_overrides
from bulk_restore.domain.vault_jobs import MAX_INLINE_ARCHIVES
from bulk_restore.usecases.batch import BatchEngine
from bulk_restore.usecases.notify import Notifier

MAX_WARNINGS = 20


class PrefixSource(BaseModel):
    """``source`` of create-job: every object under ``prefix`` in ``bucket``, listed while planning."""

    model_config = ConfigDict(extra="forbid")

    bucket: Annotated[str, Field(min_length=3, max_length=63, pattern=r"^[a-z0-9][a-z0-9.\-]*[a-z0-9]$")]
    prefix: Annotated[str, Field(max_length=1024)] = ""
    storage_classes: list[Literal["GLACIER", "DEEP_ARCHIVE", "INTELLIGENT_TIERING"]] | None = None
    include_versions: Annotated[bool, Field(strict=True)] = False

    @field_validator("storage_classes", mode="before")
    @classmethod
    def _classes(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [str(v).strip().upper() if isinstance(v, str) else v for v in value]
        return value


class VaultSource(BaseModel):
    """``vault`` of create-job: a Glacier vault whose archives go into S3."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9_.\-]+$")]
    account_id: Annotated[str, Field(pattern=r"^(-|\d{12})$")] = "-"


class VaultTarget(BaseModel):
    """``target`` of a vault job: where its archives land."""

    model_config = ConfigDict(extra="forbid")

    bucket: Annotated[str, Field(min_length=3, max_length=63, pattern=r"^[a-z0-9][a-z0-9.\-]*[a-z0-9]$")]
    prefix: Annotated[str, Field(max_length=512)] = ""
    storage_class: Literal["STANDARD", "STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING", "GLACIER_IR", "GLACIER", "DEEP_ARCHIVE"] = (
        "STANDARD"
    )


class ObjectLocation(BaseModel):
    """An object of the manifest bucket (a vault job's names CSV)."""

    model_config = ConfigDict(extra="forbid")

    bucket: Annotated[str, Field(min_length=3, max_length=63, pattern=r"^[a-z0-9][a-z0-9.\-]*[a-z0-9]$")]
    key: Annotated[str, Field(min_length=1, max_length=1024)]


class VaultFilter(BaseModel):
    """``filter`` of a vault job from its inventory: which archives to move (the others SKIPPED)."""

    model_config = ConfigDict(extra="forbid")

    created_from: AwareDatetime | None = None
    created_before: AwareDatetime | None = None
    min_size: Annotated[int, Field(ge=0, strict=True)] = 0
    max_size: Annotated[int | None, Field(ge=0, strict=True)] = None

    @model_validator(mode="after")
    def _ordered(self) -> VaultFilter:
        if self.created_from and self.created_before and self.created_from >= self.created_before:
            raise ValueError("created_from must be before created_before")
        if self.max_size is not None and self.max_size < self.min_size:
            raise ValueError("max_size must be at least min_size")
        return self


class CreateJobRequest(BaseModel):
    """The body of POST /create-job: the seed contract's fields, plus optional ones of ours.

    Fields it does not know are ignored, as the sample ignores them (``from_body`` says which);
    the known ones are checked strictly.
    """

    model_config = ConfigDict(extra="ignore")  # no stripping: "manifest.csv " is a valid S3 key

    # Instead of a manifest: the objects under a prefix of a bucket (declared first: bucket and key
    # are required without it).
    source: PrefixSource | None = None
    # A Glacier vault's archives into S3: the ids here, or a manifest of ids (bucket and key).
    vault: VaultSource | None = None
    archives: Annotated[
        list[Annotated[str, Field(pattern=r"^[A-Za-z0-9_\-]{1,1024}$")]] | None, Field(min_length=1, max_length=MAX_INLINE_ARCHIVES)
    ] = None
    bucket: Annotated[str | None, Field(min_length=3, max_length=63, pattern=r"^[a-z0-9][a-z0-9.\-]*[a-z0-9]$", validate_default=True)] = (
        None
    )
    key: Annotated[str | None, Field(min_length=1, max_length=1024, validate_default=True)] = None
    tier: Tier = Tier.STANDARD
    expiration_days: Annotated[int, Field(ge=1, le=3650, strict=True)] = 1
    client_tag: Annotated[str, Field(max_length=256, pattern=r"^[\w .:/=+\-@]*$")] = ""
    client_token: Annotated[str | None, Field(pattern=r"^[\x21-\x7e]{1,128}$")] = None  # as the Idempotency-Key header
    progress_step_percent: Annotated[int | None, Field(ge=1, le=50, strict=True)] = None
    expedited_fallback: Annotated[bool, Field(strict=True)] = False
    deadline_hours: Annotated[float | None, Field(gt=0, le=24 * 30, strict=True)] = None
    keep_restored_days: Annotated[int, Field(ge=0, le=365, strict=True)] = 0
    # direct: our functions call RestoreObject; batch: one S3 Batch Operations job; auto: by size
    engine: Literal["auto", "direct", "batch"] = "auto"
    # csv: the S3 Batch Operations CSV; s3-inventory: ``key`` is an S3 Inventory report's manifest.json
    manifest_format: Literal["csv", "s3-inventory"] = "csv"
    include_versions: Annotated[bool, Field(strict=True)] = False  # an inventory's noncurrent versions too
    target: VaultTarget | None = None  # a vault job's S3 destination
    inventory: Annotated[bool | None, Field(strict=True)] = None  # a vault job of every archive its inventory lists
    key_from: Literal["description", "archive_id"] | None = None
    max_archives: Annotated[int | None, Field(ge=1, strict=True)] = None
    filter: VaultFilter | None = None  # with "inventory": true: by creation date and size
    max_bytes_per_day: Annotated[int | None, Field(ge=1, strict=True)] = None  # with "inventory": true: a daily retrieval quota
    overrides: ObjectLocation | None = None  # with "inventory": true: a CSV of archive_id,key naming archives
    # an archive over S3's 5 TiB object limit becomes objects of 4 TiB (<key>.part-001-of-003...) instead of FAILED
    split_large_archives: Annotated[bool | None, Field(strict=True)] = None
    # The price before paying: dry_run answers the estimate and creates nothing; max_cost_usd
    # refuses (EstimateOverMaxCost) a job whose estimate at its tier is above it.
    dry_run: Annotated[
        bool,
        Field(
            strict=True,
            description="Answer the job's estimate (objects per storage class, what would "
            "be skipped, the cost and completion window per tier) and create nothing",
        ),
    ] = False
    max_cost_usd: Annotated[
        float | None,
        Field(
            ge=0,
            le=1e12,
            strict=True,
            allow_inf_nan=False,
            description=(
                "Refuse the job (422 EstimateOverMaxCost, nothing created) when its estimate at its tier is above this many US dollars"
            ),
        ),
    ] = None

    @field_validator("bucket", "key", mode="after")
    @classmethod
    def _manifest_or_source(cls, value: str | None, info: ValidationInfo) -> str | None:
        source = info.data.get("source")
        if info.data.get("archives") is not None:
            if value is not None:
                raise ValueError("give either archives (ids) or bucket and key (a manifest of archive ids), not both")
            return value
        if info.data.get("vault") is not None and value is None:
            return value  # a vault job from its inventory (checked below)
        if value is None and source is None:
            raise PydanticCustomError("missing", "Field required (where the manifest is; or give source, a bucket and prefix)")
        if value is not None and source is not None:
            raise ValueError("give either bucket and key (a manifest) or source (a prefix), not both")
        return value

    @model_validator(mode="after")
    def _format_of_a_manifest(self) -> CreateJobRequest:
        if self.source is not None and self.manifest_format != "csv":
            raise ValueError("manifest_format applies to a manifest (bucket and key), not to source")
        if self.vault is None:
            for name in (
                "archives",
                "target",
                "key_from",
                "max_archives",
                "inventory",
                "filter",
                "max_bytes_per_day",
                "overrides",
                "split_large_archives",
            ):
                if getattr(self, name) is not None:
                    raise ValueError(f"{name} applies to a vault job: give vault (its name) as well")
            return self
        if self.target is None:
            raise ValueError("a vault job needs target: the S3 bucket (and prefix) its archives go to")
        if self.source is not None or self.manifest_format != "csv" or self.engine == "batch":
            raise ValueError("a vault job takes archives or a manifest of archive ids; not source, manifest_format or the batch engine")
        given = [
            name
            for name, there in (
                ("archives", self.archives is not None),
                ("bucket and key", self.bucket is not None),
                ("inventory", bool(self.inventory)),
            )
            if there
        ]
        if len(given) != 1:
            raise ValueError(
                "a vault job takes one of: archives (ids), bucket and key (a manifest of archive ids), or "
                f"inventory: true (every archive of the vault's inventory); {' and '.join(given) or 'none'} given"
            )
        if self.overrides is not None and not self.inventory:
            raise ValueError("overrides names archives of the vault's inventory: add inventory: true (or name archives by id)")
        if self.max_bytes_per_day is not None and not self.inventory:
            raise ValueError("max_bytes_per_day needs the archives' sizes, which come with the vault's inventory: add inventory: true")
        if self.filter is not None and not self.inventory:
            raise ValueError(
                "filter needs the archives' creation dates and sizes, which come with the vault's inventory: add inventory: true"
            )
        if self.key_from == "description" and not self.inventory:
            raise ValueError(
                "key_from \"description\" needs the archives' descriptions, which come with the vault's inventory: "
                'add inventory: true, or name archives by their ids (key_from "archive_id")'
            )
        return self

    @field_validator("manifest_format", mode="before")
    @classmethod
    def _format(cls, value: Any) -> str:
        if not isinstance(value, str) or value.strip().lower() not in ("csv", "s3-inventory"):
            raise ValueError('manifest_format must be "csv" or "s3-inventory" (the manifest.json of an S3 Inventory report)')
        return value.strip().lower()

    @field_validator("engine", mode="before")
    @classmethod
    def _engine(cls, value: Any) -> str:
        if not isinstance(value, str) or value.strip().lower() not in ("auto", "direct", "batch"):
            raise ValueError('engine must be "auto", "direct" or "batch"')
        return value.strip().lower()

    @field_validator("tier", mode="before")
    @classmethod
    def _tier(cls, value: Any) -> Tier:
        if not isinstance(value, str):
            raise ValueError("tier must be a string: STANDARD, BULK or EXPEDITED")
        return Tier.parse(value)

    @classmethod
    def from_body(cls, body: Any) -> tuple[CreateJobRequest, list[str]]:
        """The request, and a warning for each field of the body it ignored."""
        request = cls.model_validate(body)
        return request, ignored_field_warnings(body, list(cls.model_fields))

    def normalised(self) -> dict[str, Any]:
        """What this request asks for, one spelling per meaning (the tier in capitals, the defaults
        filled in; a field left to the stack's default stays None). Two requests asking for the same
        job give the same document. The idempotency keys are not part of it."""
        doc = self.model_dump(mode="json", exclude={"client_token", "dry_run", "max_cost_usd"})  # asked of the create, not of the job
        doc["tier"] = self.tier.value.upper()
        for name, default in (
            ("engine", "auto"),
            ("manifest_format", "csv"),
            ("include_versions", False),
            ("source", None),
            ("vault", None),
            ("archives", None),
            ("target", None),
            ("key_from", None),
            ("max_archives", None),
            ("inventory", None),
            ("filter", None),
            ("max_bytes_per_day", None),
            ("overrides", None),
            ("split_large_archives", None),
        ):
            if name in doc and doc[name] == default:
                del doc[name]  # as jobs made before the field was known
        if doc.get("split_large_archives") is False:
            del doc["split_large_archives"]  # no split: as when not given
        return doc

    def idempotency_keys(self, header: str | None) -> dict[str, str]:
        """The keys this create comes with: where each came from -> its value."""
        keys = {"Idempotency-Key": header, "client_token": self.client_token}
        return {source: key for source, key in keys.items() if key}


def ignored_field_warnings(body: Any, known: list[str]) -> list[str]:
    """One warning per field of ``body`` that is not in ``known``, naming the nearest known one."""
    if not isinstance(body, dict):
        return []
    unknown = [name for name in body if name not in known]
    warnings = []
    for name in unknown[:MAX_WARNINGS]:
        shown = name if len(name) <= 64 else f"{name[:64]}..."
        nearest = difflib.get_close_matches(name.lower(), known, n=1)
        hint = f": did you mean {nearest[0]}?" if nearest else ""
        warnings.append(f"unknown field {shown!r} ignored{hint}")
    if len(unknown) > MAX_WARNINGS:
        warnings.append(f"{len(unknown) - MAX_WARNINGS} more unknown fields ignored")
    return warnings


def request_differences(job: dict[str, Any], request: dict[str, Any]) -> list[dict[str, Any]]:
    """The fields whose values differ between the request a job was made with and another one."""
    return [
        {"field": name, "job": job.get(name), "request": request.get(name)}
        for name in list(job) + [n for n in request if n not in job]
        if job.get(name) != request.get(name)
    ]


class JobService:
    def __init__(
        self,
        store: DynamoJobStore,
        s3: S3Gateway,
        queues: QueueGateway,
        topic_arn: str,
        default_step: int,
        notifier: Notifier | None = None,
        batch: BatchEngine | None = None,
        batch_min_objects: int = 0,
        vaults: GlacierVaults | None = None,
    ):
        self.store = store
        self.s3 = s3
        self.queues = queues
        self.topic_arn = topic_arn
        self.default_step = default_step
        self.notifier = notifier
        self.batch = batch  # None: this stack runs no S3 Batch Operations job (no role for it)
        self.batch_min_objects = batch_min_objects  # auto picks the batch engine from this many objects (0: never)
        self.vaults = vaults  # None: this stack moves no vaults

    def choose_engine(self, request: CreateJobRequest, objects: int | None) -> str:
        """The engine a job runs on. ``objects``: the manifest's rows, counted or estimated."""
        if request.engine == "batch":
            if self.batch is None:
                raise InvalidRequest(
                    "this stack cannot run S3 Batch Operations jobs (it was deployed without the Batch "
                    'Operations role): use engine "direct"',
                    {"engine": "batch"},
                )
            try:
                batch_tier(request.tier)
            except BatchEngineRefused as exc:
                raise InvalidRequest(str(exc), {"engine": "batch", "tier": request.tier.value.upper()}) from exc
            return "batch"
        if request.engine == "direct":
            return "direct"
        if (
            self.batch is not None
            and self.batch_min_objects > 0
            and request.tier is not Tier.EXPEDITED
            and objects is not None
            and objects >= self.batch_min_objects
        ):
            return "batch"
        return "direct"

    def is_repeat(self, request: CreateJobRequest, idempotency_key: str | None) -> bool:
        """Whether the request's idempotency keys name the job this same request made already (a
        retried create: no new estimate is needed). Raises IdempotencyKeyMismatch as create does."""
        keys = request.idempotency_keys(idempotency_key)
        return bool(keys) and self._repeated(keys, request) is not None

    def create(self, request: CreateJobRequest, idempotency_key: str | None) -> tuple[RestoreJob, bool]:
        """Check the manifest's start, store the job, and queue its planning. Quick whatever the manifest's size."""
        if request.source is not None:
            return self._create_from_prefix(request, request.idempotency_keys(idempotency_key))
        if request.vault is not None:
            return self._create_from_vault(request, request.idempotency_keys(idempotency_key))
        assert request.bucket is not None and request.key is not None
        self.s3.check_manifest_location(request.bucket)  # a manifest anywhere else is never read (403)
        keys = request.idempotency_keys(idempotency_key)
        existing = self._repeated(keys, request)
        if existing is not None:
            self._ensure_planning(existing)
            return existing, False
        if request.manifest_format == "s3-inventory":
            return self._create_from_inventory(request, keys)
        location, sample = self.checked_manifest(request)
        complete = len(sample) >= location.size
        counted = count_objects(sample) if complete else None
        engine = self.choose_engine(request, counted if complete else estimate_objects(sample, location.size))
        return self._store_new(
            request,
            keys,
            manifest=location,
            manifest_objects=counted,
            notes=manifest_notes(sample),
            engine=engine,
        )

    def _store_new(self, request: CreateJobRequest, keys: dict[str, str], **fields: Any) -> tuple[RestoreJob, bool]:
        """Store a new job with the request's common fields and ``fields``, bound to the idempotency
        keys, and queue its planning. Another create with one of the keys stored first: that job."""
        stamp = now_iso()
        job = RestoreJob(
            **{
                "job_id": str(uuid.uuid4()),
                "tier": request.tier,
                "expiration_days": request.expiration_days,
                "client_tag": request.client_tag,
                "progress_step_percent": request.progress_step_percent or self.default_step,
                "created_at": stamp,
                "updated_at": stamp,
                "expedited_fallback": request.expedited_fallback,
                "deadline_seconds": (request.deadline_hours or 0) * 3600,
                "keep_restored_days": request.keep_restored_days,
                "request": request.normalised(),
                **fields,
            }
        )
        job, created = self.store.create_job(job, list(keys.values()))
        if not created:  # another create with one of these keys stored its job first
            job = self._repeated(keys, request) or job
        self._ensure_planning(job)
        return job, created

    def checked_manifest(self, request: CreateJobRequest) -> tuple[ManifestLocation, bytes]:
        """A CSV manifest's location and first bytes, checked as a create checks them (its first
        lines, its first row's bucket); raises ManifestUnreadable or BucketNotAllowed saying why."""
        assert request.bucket is not None and request.key is not None
        location, sample = self.s3.inspect_manifest(request.bucket, request.key)
        problem = sniff(sample, complete=len(sample) >= location.size)
        if problem is not None:
            details: dict[str, str | int] = {"bucket": request.bucket, "key": request.key}
            if problem.line:
                details["line"] = problem.line
            raise ManifestUnreadable(f"manifest s3://{request.bucket}/{request.key} is not usable: {problem.message}", details)
        first = first_entry(sample)
        if first is not None and not self.s3.may_touch(first.object.bucket):
            raise BucketNotAllowed(
                f"this stack may not restore objects of bucket {first.object.bucket!r} (manifest line {first.line}): "
                "add it to the stack's AllowedBuckets parameter",
                {"bucket": first.object.bucket, "line": first.line, "allowed": sorted(self.s3.allowed_buckets or ())},
            )
        return location, sample

    def check_prefix(self, source: PrefixSource) -> None:
        """A prefix source's bucket is allowed and listable; raises BucketNotAllowed or ManifestUnreadable."""
        if not self.s3.may_touch(source.bucket):
            raise BucketNotAllowed(
                f"this stack may not restore objects of bucket {source.bucket!r}: add it to the stack's AllowedBuckets parameter",
                {"bucket": source.bucket, "allowed": sorted(self.s3.allowed_buckets or ())},
            )
        self.s3.check_listable(source.bucket)

    def _create_from_prefix(self, request: CreateJobRequest, keys: dict[str, str]) -> tuple[RestoreJob, bool]:
        """A job whose objects are listed from a bucket's prefix while planning."""
        source = request.source
        assert source is not None
        existing = self._repeated(keys, request)
        if existing is not None:
            self._ensure_planning(existing)
            return existing, False
        self.check_prefix(source)
        engine = self.choose_engine(request, None)
        classes = ", ".join(source.storage_classes) if source.storage_classes else "every archived class"
        return self._store_new(
            request,
            keys,
            manifest=ManifestLocation(source.bucket, source.prefix),
            manifest_objects=None,
            engine=engine,
            notes=[
                f"objects under s3://{source.bucket}/{source.prefix} ({classes}; "
                f"{'every version' if source.include_versions else 'latest versions'})"
            ],
            source={
                "type": "prefix",
                "bucket": source.bucket,
                "prefix": source.prefix,
                "storage_classes": list(source.storage_classes or []),
                "include_versions": source.include_versions,
            },
        )

    def _create_from_vault(self, request: CreateJobRequest, keys: dict[str, str]) -> tuple[RestoreJob, bool]:
        """A job moving a Glacier vault's archives into S3: the vault must exist, the target be allowed."""
        vault, target = request.vault, request.target
        assert vault is not None and target is not None
        if request.bucket is not None:
            self.s3.check_manifest_location(request.bucket)
        existing = self._repeated(keys, request)
        if existing is not None:
            self._ensure_planning(existing)
            return existing, False
        found, location = self.checked_vault(request)
        overrides = self._check_overrides(request.overrides) if request.overrides is not None else None
        count = len(request.archives) if request.archives is not None else None
        key_from = request.key_from or ("description" if request.inventory else "archive_id")
        what = (
            f"{count} archives named in the request"
            if count is not None
            else "every archive of the vault's inventory (retrieved first)"
            if request.inventory
            else f"archive ids listed in s3://{request.bucket}/{request.key}"
        )
        naming = "named from their descriptions, duplicates settled by age" if key_from == "description" else "named by archive id"
        return self._store_new(
            request,
            keys,
            manifest=location,
            manifest_objects=count,
            engine="vault",
            notes=[
                f"Glacier vault {vault.name} ({_inventoried(found)}): {what}, into s3://{target.bucket}/{target.prefix} "
                f"({target.storage_class}), {naming}"
            ],
            source={
                "type": "vault",
                "vault": vault.name,
                "account_id": vault.account_id,
                "vault_arn": found["arn"],
                "target": target.model_dump(),
                "key_from": key_from,
                "archives": request.archives,
                "max_archives": request.max_archives,
                "inventory": bool(request.inventory),
                "filter": request.filter.model_dump(mode="json") if request.filter else None,
                "max_bytes_per_day": request.max_bytes_per_day,
                "overrides": overrides,
                "split_large_archives": bool(request.split_large_archives),
            },
            expedited_fallback=False,
            keep_restored_days=0,
        )

    def checked_vault(self, request: CreateJobRequest) -> tuple[dict[str, Any], ManifestLocation]:
        """A vault job's vault (DescribeVault's {"name", "arn", "archives", "size"}) and its manifest
        of archive ids (an empty location: none), checked as a create checks them."""
        vault, target = request.vault, request.target
        assert vault is not None and target is not None
        if self.vaults is None:
            raise InvalidRequest(
                "this stack moves no Glacier vaults (it was deployed without the vault topic and transfer queue)", {"vault": vault.name}
            )
        if not self.s3.may_touch(target.bucket):
            raise BucketNotAllowed(
                f"this stack may not write to bucket {target.bucket!r}: add it to the stack's AllowedBuckets parameter",
                {"bucket": target.bucket, "allowed": sorted(self.s3.allowed_buckets or ())},
            )
        found = self.vaults.describe_vault(vault.name)
        if found is None:
            raise InvalidRequest(f"no vault {vault.name!r} in this account and region: check the name (ListVaults)", {"vault": vault.name})
        location = ManifestLocation("", "")
        if request.bucket is not None and request.key is not None:
            location, _ = self.s3.inspect_manifest(request.bucket, request.key)
        return found, location

    def _check_overrides(self, where: ObjectLocation) -> dict[str, Any]:
        """Read a names CSV whole and check every row: a bad one is a 422 that names its line."""
        self.s3.check_manifest_location(where.bucket)
        location, _ = self.s3.inspect_manifest(where.bucket, where.key)
        overrides, errors = read_name_overrides(self.s3.stream_manifest(location, 0))
        if errors:
            shown = "; ".join(f"line {e.line}: {e.message}" for e in errors[:5])
            raise ManifestUnreadable(
                f"the names CSV s3://{where.bucket}/{where.key} has {len(errors)} bad rows: {shown}",
                {"bucket": where.bucket, "key": where.key, "bad_rows": len(errors)},
            )
        return {"bucket": location.bucket, "key": location.key, "etag": location.etag, "size": location.size, "names": len(overrides)}

    def _create_from_inventory(self, request: CreateJobRequest, keys: dict[str, str]) -> tuple[RestoreJob, bool]:
        """A job whose objects are an S3 Inventory report's archived ones: its manifest.json is read
        and checked whole; its data files are streamed while planning."""
        location, manifest = self.checked_inventory(request)
        estimate = sum(f.size for f in manifest.files) // INVENTORY_BYTES_PER_ROW
        engine = self.choose_engine(request, estimate)
        return self._store_new(
            request,
            keys,
            manifest=location,
            manifest_objects=None,
            engine=engine,
            notes=[
                f"S3 Inventory report of bucket {manifest.source_bucket} ({manifest.file_format.value}, {len(manifest.files)} data files, "
                f"{'every version' if request.include_versions else 'latest versions'})"
            ],
            source={"type": "s3-inventory", "include_versions": request.include_versions},
        )

    def checked_inventory(self, request: CreateJobRequest) -> tuple[ManifestLocation, InventoryManifest]:
        """An S3 Inventory report's manifest.json, read whole and checked as a create checks it."""
        assert request.bucket is not None and request.key is not None
        where = f"s3://{request.bucket}/{request.key}"
        location, data = self.s3.read_inventory_manifest(request.bucket, request.key)
        try:
            manifest = parse_inventory_manifest(data)
        except InventoryError as exc:
            raise ManifestUnreadable(
                f"{where} is not a usable S3 Inventory manifest.json: {exc.message}",
                {"bucket": request.bucket, "key": request.key, "field": exc.field},
            ) from exc
        if manifest.file_format is FileFormat.PARQUET and not parquet_readable():
            raise ManifestUnreadable(
                f"{where} lists Parquet data files, and this stack was built without pyarrow: "
                "configure the inventory with the CSV format, or build with the parquet extra"
            )
        readable = self.s3.manifest_buckets
        if readable is not None and manifest.destination_bucket not in readable:  # its data files are read from there
            raise ManifestLocationNotAllowed(
                f"the inventory's data files are in bucket {manifest.destination_bucket!r}, which this stack does not read: "
                "add it to the stack's ManifestBuckets parameter (or deliver the inventory to the stack's manifest bucket)",
                {"bucket": manifest.destination_bucket, "manifest_buckets": list(readable)},
            )
        if not self.s3.may_touch(manifest.source_bucket):
            raise BucketNotAllowed(
                f"this stack may not restore objects of bucket {manifest.source_bucket!r} (the inventory's source): "
                "add it to the stack's AllowedBuckets parameter",
                {"bucket": manifest.source_bucket, "allowed": sorted(self.s3.allowed_buckets or ())},
            )
        return location, manifest

    def _repeated(self, keys: dict[str, str], request: CreateJobRequest) -> RestoreJob | None:
        """The job these idempotency keys made, if any, when the request asks for that same job.

        Raises IdempotencyKeyMismatch when the keys name two jobs, or when the job was made with
        another request. A key new to the store is bound to the job the other one names.
        """
        owners = {source: self.store.idempotency_key_owner(key) for source, key in keys.items()}
        named = {job_id for job_id in owners.values() if job_id}
        if not named:
            return None
        if len(named) > 1:
            (a, job_a), (b, job_b) = [(source, owners[source]) for source in keys]
            raise IdempotencyKeyMismatch(
                f"the {a} names job {job_a} and the {b} names job {job_b}: send the key of the job you mean, or new keys for a new job",
                {"JobId": job_a, "OtherJobId": job_b, "keys": {a: keys[a], b: keys[b]}},
            )
        (job_id,) = named
        job = self.store.get_job(job_id)
        if job is None:
            return None  # the key outlived its job (both expire); a new job may take it
        differences = request_differences(job.request, request.normalised()) if job.request else []
        if differences:
            source = next(s for s, owner in owners.items() if owner == job_id)
            fields = ", ".join(f"{d['field']} ({d['job']!r} there, {d['request']!r} here)" for d in differences)
            raise IdempotencyKeyMismatch(
                f"the {source} {keys[source]!r} was first sent for job {job_id} with another request: {fields}. "
                f"Send a new Idempotency-Key (or client_token) for a new job, or the first request unchanged to get job {job_id}",
                {"JobId": job_id, "key": {source: keys[source]}, "differences": differences},
            )
        for source, owner in owners.items():
            if owner is None and self.store.bind_idempotency_key(keys[source], job_id) != job_id:
                return self._repeated(keys, request)  # taken meanwhile by another job: say so
        return job

    def _ensure_planning(self, job: RestoreJob) -> None:
        # Sent on every create, also a repeated one: a create that died after storing its job
        # still gets planned. The FIFO queue drops the copy of a step already asked for.
        if not job.status.is_terminal and job.planning.step == 0:
            self.queues.send_plan_step(job.job_id, 0)

    def cancel(self, job_id: str) -> tuple[RestoreJob, Counts]:
        """Stop a job: no new restore requests; one Cancelled event, with the job's final counts once
        the chunks already on their way are accounted. Restores already requested go on.
        A job that has ended, whichever way (a cancelled one too), is a 409."""
        job, _ = self.status(job_id)
        if job.status.is_terminal or self.notifier is None or not self.notifier.end(job_id, JobStatus.CANCELLED, "cancelled on request"):
            job, _ = self.status(job_id)
            raise JobAlreadyFinished(
                f"job {job_id} has already ended ({job.status.value}): nothing to cancel",
                {"job_id": job_id, "status": job.status.value},
            )
        if self.batch is not None and job.batch_runs:
            self.batch.cancel_runs(job_id, "the bulk-restore job was cancelled on request")
        return self.status(job_id)

    def status(self, job_id: str) -> tuple[RestoreJob, Counts]:
        loaded = self.store.get_job_and_counts(job_id) if is_job_id(job_id) else None
        if loaded is None:
            raise job_not_found(job_id)
        return loaded

    def list_objects(self, job_id: str, state: str | None, limit: int, token: str | None) -> dict[str, Any]:
        if not is_job_id(job_id) or self.store.get_job(job_id) is None:
            raise job_not_found(job_id)
        wanted = None
        if state:
            try:
                wanted = ObjectState(state.upper())
            except ValueError as exc:
                raise InvalidRequest(
                    f"unknown state {state!r}: use one of {', '.join(s.value for s in ObjectState)}", {"state": state}
                ) from exc
        records, next_token = self.store.list_objects(job_id, wanted, limit, token)
        return {
            "JobId": job_id,
            "Objects": [
                {
                    "Bucket": r.bucket,
                    "Key": r.key,
                    "VersionId": r.version_id,
                    "State": r.state.value,
                    "Reason": r.reason,
                    "ManifestLine": r.line,
                    "UpdatedAt": r.updated_at,
                }
                for r in records
            ],
            "NextToken": next_token,
        }

    def recent_jobs(self, limit: int, token: str | None) -> dict[str, Any]:
        """GET /jobs: the jobs newest first, a page at a time."""
        jobs, next_token = self.store.recent_jobs(limit, token)
        return {"Jobs": [job_summary(job) for job in jobs], "NextToken": next_token}


def job_summary(job: RestoreJob) -> dict[str, Any]:
    """One job of GET /jobs: what tells jobs apart (GET /jobs/{id} has the rest, counts included)."""
    return {
        "JobId": job.job_id,
        "Status": job.status.value,
        "Tier": job.tier.value.upper(),
        "ClientTag": job.client_tag,
        "Source": job.source_type,
        "Engine": job.engine,
        "TotalFilesRequested": job.manifest_objects,
        "CreatedAt": job.created_at,
        "FinishedAt": job.finished_at or None,
        "FailureReason": job.failure_reason,
    }


def _inventoried(vault: dict[str, Any]) -> str:
    if vault.get("archives") is None:
        return "no inventory yet"
    return f"{vault['archives']:,} archives, {vault.get('size') or 0:,} bytes at its last inventory"


INVENTORY_BYTES_PER_ROW = 25  # a compressed inventory row, about: to estimate a report's objects


def estimate_objects(sample: bytes, size: int) -> int | None:
    """Rows of a manifest read only in part: its size over the sample's bytes per row."""
    rows = sample.count(b"\n")
    if not sample or rows == 0:
        return None
    return int(size * rows / len(sample))


def job_not_found(job_id: str) -> JobNotFound:
    shown = job_id if len(job_id) <= 100 else f"{job_id[:100]}..."
    if not is_job_id(job_id):
        return JobNotFound(f"no job {shown!r}: job ids are the UUIDs create-job answers with (BulkJobId)", {"job_id": shown})
    return JobNotFound(
        f"no job {shown}: check the id create-job answered with (BulkJobId); a job is kept JobRetentionDays after it ends",
        {"job_id": shown},
    )


def manifest_notes(sample: bytes) -> list[str]:
    """What a job says about its manifest: a header row skipped."""
    header = leading_header(sample)
    return [f"manifest line 1 is a header ({header[:200]}): skipped"] if header else []


def status_document(job: RestoreJob, counts: Counts, topic_arn: str) -> dict[str, Any]:
    """GET /jobs/{id}: the job as a user wants to see it."""
    return {
        "JobId": job.job_id,
        "BulkJobId": job.job_id,
        "BatchJobId": job.batch_job_id,
        "BatchOperations": batch_runs_document(job),
        "Source": job.source_type,
        "Status": job.status.value,
        "Tier": job.tier.value.upper(),
        "ExpirationDays": job.expiration_days,
        "ClientTag": job.client_tag,
        "Engine": job.engine,
        "Manifest": {"Bucket": job.manifest.bucket, "Key": job.manifest.key, "ETag": job.manifest.etag, "Size": job.manifest.size},
        "ProgressPercent": reported_percent(job.status, counts, job.planning.done),
        "ProgressStepPercent": job.progress_step_percent,
        "Counts": counts.document(),
        "RequestedCount": counts.requested,
        "PendingCount": counts.restoring,
        "FailedBatchFiles": counts.failed,
        "Planning": {
            "Complete": job.planning.done,
            "LinesRead": job.planning.lines_read,
            "BytesRead": job.planning.byte_offset,
            "ChunksPlanned": job.planning.chunks_emitted,
            "ChunksAccounted": counts.chunks_done,
        },
        "FailureReason": job.failure_reason,
        "ExpeditedFallback": job.expedited_fallback,
        "KeepRestoredDays": job.keep_restored_days,
        "CreatedAt": job.created_at,
        "UpdatedAt": job.updated_at,
        "FinishedAt": job.finished_at or None,
        "Notes": list(job.notes),
        "SNSTopic": topic_arn,
    } | (vault_document(job, counts) if job.is_vault else {})


def vault_document(job: RestoreJob, counts: Counts) -> dict[str, Any]:
    """What a vault job adds to its status: the vault, the target, and the bytes moved so far."""
    target = job.source.get("target") or {}
    return {
        "Vault": {"Name": job.source.get("vault"), "ARN": job.source.get("vault_arn")},
        "Target": {"Bucket": target.get("bucket"), "Prefix": target.get("prefix", ""), "StorageClass": target.get("storage_class")},
        "BytesMoved": counts.bytes,
    }


def batch_runs_document(job: RestoreJob) -> list[dict[str, Any]]:
    """The S3 Batch Operations jobs of a batch-engine job, as the API shows them."""
    return [
        {
            "Group": group,
            "JobId": run.get("id") or None,
            "Status": run.get("status") or "NotCreated",
            "FailureReason": run.get("failure") or None,
            "ReportRead": bool(run.get("report")),
        }
        for group, run in sorted(job.batch_runs.items())
    ]


def parquet_readable() -> bool:
    """Whether Parquet inventory files can be read here (pyarrow is an optional extra)."""
    import importlib.util

    return importlib.util.find_spec("pyarrow") is not None
