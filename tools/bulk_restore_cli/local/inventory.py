"""S3 Inventory reports of a local (moto) bucket, written where and as S3 writes them.

moto stores inventory configurations but never writes a report. ``write_inventory_report`` lists
a bucket straight from moto's S3 backend (the process the local stack and the tests run moto
in), as s3_restore.py reaches it, and writes a report into the destination bucket in the layout
the Amazon S3 User Guide documents (storage-inventory, storage-inventory-location):

    <prefix>/<source bucket>/<config id>/<YYYY-MM-DDTHH-MMZ>/manifest.json
    <prefix>/<source bucket>/<config id>/<YYYY-MM-DDTHH-MMZ>/manifest.checksum   (MD5 of manifest.json)
    <prefix>/<source bucket>/<config id>/hive/dt=<YYYY-MM-DD-HH-MM>/symlink.txt  (the data files' s3:// URIs)
    <prefix>/<source bucket>/<config id>/data/<uuid>.csv.gz | .parquet

manifest.json has sourceBucket, destinationBucket (an ARN), version "2016-11-30",
creationTimestamp (epoch milliseconds, a string), fileFormat, fileSchema and files
[{key, size, MD5checksum}]. CSV files are gzip, with no header, every field quoted, keys
URL-encoded in the form style ("a b+c" is "a+b%2Bc"), booleans "true"/"false". Parquet files are
Snappy-compressed with snake-case columns, keys as they are, and a "message s3.inventory {...}"
fileSchema. Columns come in AWS's fixed order: Bucket, Key, then VersionId, IsLatest,
IsDeleteMarker for a report of all versions, then the optional fields asked for. The data files
are written first and manifest.checksum last, as its arrival is S3's signal that a report is
complete.

The Intelligent-Tiering access tier of an object is its archive status as s3_restore.py models
it (the ``archive-status`` metadata or ``set_archive_status``), written as reports in the field
name the tiers (ARCHIVE, DEEP_ARCHIVE; see domain/inventory.py); other Intelligent-Tiering
objects are FREQUENT, as moto does not model the automatic tiers.

Rows are streamed: the bucket's key names are listed once, then one data file at a time is
built (at most ``rows_per_file`` rows) and stored before the next one starts.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote_plus

from bulk_restore.domain.inventory import (
    KNOWN_COLUMNS,
    MANIFEST_VERSION,
    PARQUET_NAMES,
    InventoryFile,
)
from bulk_restore_cli.local.s3_restore import DEFAULT_ACCOUNT, IT_CLASS, archive_status

DEFAULT_FIELDS: tuple[str, ...] = ("Size", "LastModifiedDate", "ETag", "StorageClass", "IntelligentTieringAccessTier")
DEFAULT_ROWS_PER_FILE = 100_000
DEFAULT_CONFIG_ID = "bulk-restore-inventory"
PARQUET_ROW_GROUP_ROWS = 10_000
VERSION_FIELDS = ("VersionId", "IsLatest", "IsDeleteMarker")
# The optional fields this writer can fill from moto, in AWS's order (KNOWN_COLUMNS).
OPTIONAL_FIELDS: tuple[str, ...] = tuple(
    name
    for name in KNOWN_COLUMNS
    if name not in ("Bucket", "Key", *VERSION_FIELDS, "ObjectAccessControlList", "ObjectOwner", "LifecycleExpirationDate")
)
_BOOLEAN = frozenset({"IsLatest", "IsDeleteMarker", "IsMultipartUploaded"})
_TIMESTAMP = frozenset({"LastModifiedDate", "ObjectLockRetainUntilDate"})
_INTEGER = frozenset({"Size"})
_ENCRYPTION = {"AES256": "SSE-S3", "aws:kms": "SSE-KMS", "aws:kms:dsse": "DSSE-KMS"}
_IT_TIER_NAMES = {"ARCHIVE_ACCESS": "ARCHIVE", "DEEP_ARCHIVE_ACCESS": "DEEP_ARCHIVE"}


@dataclass(frozen=True, slots=True)
class _Version:
    """One row's source: an object version or a delete marker, and whether it is the latest."""

    name: str
    item: Any  # moto FakeKey or FakeDeleteMarker
    is_latest: bool
    is_delete_marker: bool


def write_inventory_report(
    bucket: str,
    destination_bucket: str,
    prefix: str,
    file_format: str = "CSV",
    fields: Sequence[str] = DEFAULT_FIELDS,
    include_versions: bool = False,
    rows_per_file: int = DEFAULT_ROWS_PER_FILE,
    *,
    config_id: str = DEFAULT_CONFIG_ID,
    now: datetime | None = None,
    account_id: str = DEFAULT_ACCOUNT,
    partition: str = "aws",
) -> str:
    """Write an inventory report of ``bucket`` into ``destination_bucket``; return the manifest.json key.

    ``fields`` are the inventory configuration's optional fields (OPTIONAL_FIELDS); with
    ``include_versions`` the report lists every version and delete marker (IncludedObjectVersions
    All), otherwise the current version of each object. Both buckets must exist in moto.
    """
    fmt = {"CSV": "CSV", "PARQUET": "Parquet"}.get(file_format.upper())
    if fmt is None:
        raise ValueError(f"file_format {file_format!r}: use CSV or Parquet (ORC reports are not written)")
    unknown = [f for f in fields if f not in OPTIONAL_FIELDS]
    if unknown:
        raise ValueError(f"unknown inventory fields {unknown}: choose from {', '.join(OPTIONAL_FIELDS)}")
    if rows_per_file < 1:
        raise ValueError("rows_per_file must be at least 1")
    if not config_id or "/" in config_id:
        raise ValueError("config_id must be a non-empty name without '/'")
    backend = _s3_backend(account_id, partition)
    source = backend.get_bucket(bucket)  # raises MissingBucket
    backend.get_bucket(destination_bucket)
    columns = ["Bucket", "Key", *(VERSION_FIELDS if include_versions else ()), *(f for f in OPTIONAL_FIELDS if f in fields)]
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    base = "/".join(part for part in (prefix.strip("/"), bucket, config_id) if part)

    files: list[InventoryFile] = []
    writer: _DataFile | None = None
    for version in _versions(source, include_versions):
        if writer is None:
            writer = _CsvFile(columns) if fmt == "CSV" else _ParquetFile(columns, min(rows_per_file, PARQUET_ROW_GROUP_ROWS))
        writer.add(_row(bucket, version, columns))
        if writer.rows >= rows_per_file:
            files.append(_store(backend, destination_bucket, base, writer))
            writer = None
    if writer is not None or not files:
        # An empty bucket still gets one (empty) data file, so the report always has one to read.
        if writer is None:
            writer = _CsvFile(columns) if fmt == "CSV" else _ParquetFile(columns, PARQUET_ROW_GROUP_ROWS)
        files.append(_store(backend, destination_bucket, base, writer))

    manifest = {
        "sourceBucket": bucket,
        "destinationBucket": f"arn:aws:s3:::{destination_bucket}",
        "version": MANIFEST_VERSION,
        "creationTimestamp": str(int(moment.timestamp() * 1000)),
        "fileFormat": fmt,
        "fileSchema": ", ".join(columns) if fmt == "CSV" else _parquet_schema_text(columns),
        "files": [{"key": f.key, "size": f.size, "MD5checksum": f.md5} for f in files],
    }
    body = json.dumps(manifest, indent=4).encode("utf-8")
    folder = f"{base}/{moment.strftime('%Y-%m-%dT%H-%MZ')}"
    symlink = "".join(f"s3://{destination_bucket}/{f.key}\n" for f in files).encode("utf-8")
    backend.put_object(destination_bucket, f"{base}/hive/dt={moment.strftime('%Y-%m-%d-%H-%M')}/symlink.txt", symlink)
    backend.put_object(destination_bucket, f"{folder}/manifest.json", body)
    backend.put_object(destination_bucket, f"{folder}/manifest.checksum", _md5(body).encode("ascii"))
    return f"{folder}/manifest.json"


def read_object(bucket: str, key: str, account_id: str = DEFAULT_ACCOUNT, partition: str = "aws") -> bytes:
    """The bytes of an object in moto (a report's manifest or data file)."""
    obj = _s3_backend(account_id, partition).get_object(bucket, key)
    if obj is None:
        raise KeyError(f"s3://{bucket}/{key} does not exist")
    return bytes(obj.value)


def report_opener(
    destination_bucket: str, account_id: str = DEFAULT_ACCOUNT, partition: str = "aws"
) -> Callable[[InventoryFile], io.BytesIO]:
    """An opener for ``domain.inventory.iter_report``: each data file as a seekable file object."""

    def open_file(info: InventoryFile) -> io.BytesIO:
        return io.BytesIO(read_object(destination_bucket, info.key, account_id, partition))

    return open_file


# ---- listing ------------------------------------------------------------------------------------


def _versions(source: Any, include_versions: bool) -> Iterator[_Version]:
    """The bucket's rows in key order (each key's versions newest first), without copying objects.

    The key names are taken once (a snapshot, so objects written meanwhile do not disturb the
    walk); each key's versions are read when its turn comes.
    """
    from moto.s3.models import FakeDeleteMarker

    names = list(source.keys.keys())
    names.sort()
    for name in names:
        versions = list(source.keys.getlist(name, []))
        if not versions:
            continue
        if include_versions:
            for position, item in enumerate(reversed(versions)):
                yield _Version(name, item, position == 0, isinstance(item, FakeDeleteMarker))
        elif not isinstance(versions[-1], FakeDeleteMarker):
            yield _Version(name, versions[-1], True, False)


def _row(bucket: str, version: _Version, columns: Sequence[str]) -> dict[str, Any]:
    """One row's values, typed (str, bool, int, datetime or None), by column name."""
    item = version.item
    values: dict[str, Any] = {"Bucket": bucket, "Key": version.name}
    for column in columns[2:]:
        values[column] = _value(column, item, version)
    return values


def _value(column: str, item: Any, version: _Version) -> Any:
    if column == "VersionId":
        vid = item.version_id
        return None if vid in (None, "", "null") else vid
    if column == "IsLatest":
        return version.is_latest
    if column == "IsDeleteMarker":
        return version.is_delete_marker
    if column == "LastModifiedDate":
        return _utc(item.last_modified)
    if version.is_delete_marker:
        return None  # a delete marker has no size, class, ETag, encryption ...
    if column == "Size":
        return int(item.size)
    if column == "ETag":
        return item.etag.strip('"')
    if column == "StorageClass":
        return item.storage_class or "STANDARD"
    if column == "IsMultipartUploaded":
        return item.multipart is not None
    if column == "ReplicationStatus":
        return None
    if column == "EncryptionStatus":
        # Since January 2023 S3 encrypts every new object (SSE-S3) unless told otherwise.
        return _ENCRYPTION.get(item.encryption or "AES256", "SSE-S3")
    if column == "ObjectLockRetainUntilDate":
        return _parse_time(item.lock_until)
    if column == "ObjectLockMode":
        return item.lock_mode or None
    if column == "ObjectLockLegalHoldStatus":
        return item.lock_legal_status or None
    if column == "IntelligentTieringAccessTier":
        if item.storage_class != IT_CLASS:
            return None
        status = archive_status(item)
        return _IT_TIER_NAMES.get(status, "FREQUENT") if status else "FREQUENT"
    if column == "BucketKeyStatus":
        return "ENABLED" if str(item.bucket_key_enabled).lower() == "true" else "DISABLED"
    if column == "ChecksumAlgorithm":
        return item.checksum_algorithm or None
    raise ValueError(f"no value for inventory field {column}")


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _parse_time(text: Any) -> datetime | None:
    if not text:
        return None
    if isinstance(text, datetime):
        return _utc(text)
    try:
        return _utc(datetime.fromisoformat(str(text).replace("Z", "+00:00")))
    except ValueError:
        return None


# ---- data files ---------------------------------------------------------------------------------


class _DataFile:
    extension = ""

    def __init__(self) -> None:
        self.rows = 0

    def add(self, values: dict[str, Any]) -> None:
        raise NotImplementedError

    def finish(self) -> bytes:
        raise NotImplementedError


class _CsvFile(_DataFile):
    """gzip CSV as S3 Inventory writes it: no header, every field quoted, keys form-URL-encoded."""

    extension = ".csv.gz"

    def __init__(self, columns: Sequence[str]):
        super().__init__()
        self.columns = list(columns)
        self._sink = io.BytesIO()
        self._gzip = gzip.GzipFile(fileobj=self._sink, mode="wb", mtime=0)
        self._text = io.TextIOWrapper(self._gzip, encoding="utf-8", newline="")
        self._writer = csv.writer(self._text, quoting=csv.QUOTE_ALL, lineterminator="\n")

    def add(self, values: dict[str, Any]) -> None:
        self._writer.writerow([_csv_text(column, values[column]) for column in self.columns])
        self.rows += 1

    def finish(self) -> bytes:
        self._text.flush()
        self._text.detach()
        self._gzip.close()
        return self._sink.getvalue()


def _csv_text(column: str, value: Any) -> str:
    if value is None:
        return ""
    if column == "Key":
        return quote_plus(value, safe="/")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    return str(value)


class _ParquetFile(_DataFile):
    """Parquet (Snappy) with S3 Inventory's snake-case columns, written a row group at a time."""

    extension = ".parquet"

    def __init__(self, columns: Sequence[str], row_group_rows: int):
        super().__init__()
        import pyarrow as pa
        import pyarrow.parquet as pq

        self._pa = pa
        self.columns = list(columns)
        self.schema = pa.schema([_arrow_field(pa, column) for column in self.columns])
        self._sink = io.BytesIO()
        self._writer = pq.ParquetWriter(self._sink, self.schema, compression="snappy")
        self._group_rows = row_group_rows
        self._buffer: dict[str, list[Any]] = {column: [] for column in self.columns}
        self._buffered = 0

    def add(self, values: dict[str, Any]) -> None:
        for column in self.columns:
            self._buffer[column].append(values[column])
        self._buffered += 1
        self.rows += 1
        if self._buffered >= self._group_rows:
            self._flush()

    def _flush(self) -> None:
        if not self._buffered:
            return
        arrays = [self._pa.array(self._buffer[c], type=self.schema.field(PARQUET_NAMES[c]).type) for c in self.columns]
        self._writer.write_table(self._pa.Table.from_arrays(arrays, schema=self.schema), row_group_size=self._group_rows)
        self._buffer = {column: [] for column in self.columns}
        self._buffered = 0

    def finish(self) -> bytes:
        self._flush()
        self._writer.close()
        return self._sink.getvalue()


def _arrow_field(pa: Any, column: str) -> Any:
    name = PARQUET_NAMES[column]
    if column in _BOOLEAN:
        kind = pa.bool_()
    elif column in _INTEGER:
        kind = pa.int64()
    elif column in _TIMESTAMP:
        kind = pa.timestamp("ms", tz="UTC")
    else:
        kind = pa.string()
    return pa.field(name, kind, nullable=column not in ("Bucket", "Key"))


def _parquet_schema_text(columns: Sequence[str]) -> str:
    """fileSchema as S3 Inventory writes it for Parquet: ``message s3.inventory { ... }``."""
    parts = []
    for column in columns:
        name = PARQUET_NAMES[column]
        repetition = "required" if column in ("Bucket", "Key") else "optional"
        if column in _BOOLEAN:
            parts.append(f"{repetition} boolean {name};")
        elif column in _INTEGER:
            parts.append(f"{repetition} int64 {name};")
        elif column in _TIMESTAMP:
            parts.append(f"{repetition} int64 {name} (TIMESTAMP_MILLIS);")
        else:
            parts.append(f"{repetition} binary {name} (UTF8);")
    return "message s3.inventory { " + " ".join(parts) + " }"


def _store(backend: Any, destination_bucket: str, base: str, data_file: _DataFile) -> InventoryFile:
    body = data_file.finish()
    key = f"{base}/data/{uuid.uuid4()}{data_file.extension}"
    backend.put_object(destination_bucket, key, body)
    return InventoryFile(key, len(body), _md5(body))


def _s3_backend(account_id: str, partition: str) -> Any:
    from moto.s3.models import s3_backends

    return s3_backends[account_id][partition]


def _md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()
