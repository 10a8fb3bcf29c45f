"""S3 Inventory reports as a source of objects to restore.

What follows AWS's documentation (Amazon S3 User Guide: storage-inventory,
storage-inventory-location; API reference: InventoryConfiguration):

- A report is a ``manifest.json`` with ``sourceBucket``, ``destinationBucket`` (an ARN,
  ``arn:aws:s3:::name``), ``version`` "2016-11-30", ``creationTimestamp`` (epoch milliseconds,
  written as a string), ``fileFormat`` CSV | ORC | Parquet, ``fileSchema`` and ``files``
  ``[{key, size, MD5checksum}]``; the data files live in the destination bucket. Beside it,
  ``manifest.checksum`` holds the MD5 of the manifest's bytes.
- CSV data files are gzip-compressed, have no header row, quote every field, and URL-encode the
  key (a space is "+", a "+" is "%2B"): it is decoded here. The columns are
  those of ``fileSchema`` ("Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, ...") in
  that order; optional fields the configuration left out are absent. Booleans are "true" /
  "false"; an object without a version id has an empty VersionId.
- Parquet data files (Snappy-compressed) name their columns in snake case (``bucket``, ``key``,
  ``version_id``, ``is_latest``, ``is_delete_marker``, ``size``, ``storage_class``,
  ``intelligent_tiering_access_tier``, ...); their keys are not URL-encoded.
- ORC is not read here: the error says to configure CSV or Parquet.
- VersionId, IsLatest and IsDeleteMarker are present only in reports of all versions.
- The Intelligent-Tiering access tier column: the user guide names the tiers but, in the copies
  checked, not the values. Parsers of real reports read FREQUENT, INFREQUENT,
  ARCHIVE_INSTANT_ACCESS, ARCHIVE and DEEP_ARCHIVE; ARCHIVE_ACCESS and DEEP_ARCHIVE_ACCESS (the
  API's names for the two archive tiers) are accepted as well. Entries carry the API's names,
  the ones RestoreObject and HeadObject's ArchiveStatus use.
- Keys are form-URL-encoded in CSV reports (a space arrives as "+"): that is what reports in the
  field show (cloud-custodian issue 1997); the user guide says only "URL-encoded".

Reading is streamed and resumable. A CSV data file is decompressed incrementally from an
iterable of byte blocks (multi-member gzip included) and split into rows with a bounded row
size; a Parquet file is read from a seekable file object one row group at a time. Each row has
its 0-based index in its file: a reader that stopped after row N starts again at N + 1 with
``start_row`` (the file is read from its start again, rows before ``start_row`` are counted,
not parsed). ``iter_report`` walks every file of a manifest from an ``InventoryCursor``.

This module needs no AWS SDK; pyarrow is imported only when a Parquet file is read.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import json
import re
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import IO, Any
from urllib.parse import unquote_plus

from bulk_restore.domain.model import ManifestEntry, ManifestError, ObjectId

MANIFEST_VERSION = "2016-11-30"
MAX_KEY_BYTES = 1024
MAX_ROW_BYTES = 1024 * 1024  # a key is at most ~3 KiB encoded; ACL columns are larger, not this large
GZIP_OUTPUT_CHUNK = 256 * 1024  # decompressed bytes produced per step: the memory bound of a CSV read
PARQUET_BATCH_ROWS = 8192
HASH_BLOCK_BYTES = 1024 * 1024

_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")
_ARN_RE = re.compile(r"^arn:aws[a-z\-]*:s3:::(?P<bucket>[^/]+)$")
_MD5_RE = re.compile(r"^[0-9a-fA-F]{32}$")
_BAD_PERCENT_RE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_PARQUET_FIELD_RE = re.compile(r"\b(?:required|optional|repeated)\s+\w+\s+(\w+)")
_GZIP_MAGIC = b"\x1f\x8b"
_GZIP_WBITS = 16 + zlib.MAX_WBITS

# The report's columns, as the CSV fileSchema names them. Parquet and ORC use the same names in
# snake case; ``canonical_column`` maps either spelling to these.
BUCKET, KEY, VERSION_ID, IS_LATEST, IS_DELETE_MARKER = "Bucket", "Key", "VersionId", "IsLatest", "IsDeleteMarker"
SIZE, STORAGE_CLASS, IT_ACCESS_TIER = "Size", "StorageClass", "IntelligentTieringAccessTier"
KNOWN_COLUMNS: tuple[str, ...] = (
    BUCKET,
    KEY,
    VERSION_ID,
    IS_LATEST,
    IS_DELETE_MARKER,
    SIZE,
    "LastModifiedDate",
    "ETag",
    STORAGE_CLASS,
    "IsMultipartUploaded",
    "ReplicationStatus",
    "EncryptionStatus",
    "ObjectLockRetainUntilDate",
    "ObjectLockMode",
    "ObjectLockLegalHoldStatus",
    IT_ACCESS_TIER,
    "BucketKeyStatus",
    "ChecksumAlgorithm",
    "ObjectAccessControlList",
    "ObjectOwner",
    "LifecycleExpirationDate",
)
_BY_FOLDED = {name.lower(): name for name in KNOWN_COLUMNS}
# The Parquet column names: snake case of the CSV names ("ETag" is "e_tag").
PARQUET_NAMES: dict[str, str] = {name: re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower() for name in KNOWN_COLUMNS}

ARCHIVE_CLASSES = frozenset({"GLACIER", "DEEP_ARCHIVE"})
IT_CLASS = "INTELLIGENT_TIERING"
# Inventory access-tier values (and the API's names) -> the API's archive tier names.
IT_ARCHIVE_TIERS: dict[str, str] = {
    "ARCHIVE": "ARCHIVE_ACCESS",
    "ARCHIVE_ACCESS": "ARCHIVE_ACCESS",
    "DEEP_ARCHIVE": "DEEP_ARCHIVE_ACCESS",
    "DEEP_ARCHIVE_ACCESS": "DEEP_ARCHIVE_ACCESS",
}


# ---- errors -------------------------------------------------------------------------------------


class InventoryError(ValueError):
    """An inventory report that cannot be read; the message says what to fix."""

    def __init__(self, message: str, field: str = ""):
        super().__init__(message)
        self.message = message
        self.field = field


class InventoryManifestError(InventoryError):
    """manifest.json is malformed, incomplete or of a kind not supported. ``field`` names the field."""


class InventoryDataError(InventoryError):
    """A data file cannot be read (not gzip, truncated, not Parquet, no Bucket/Key column)."""


class ChecksumMismatch(InventoryError):
    """The bytes read do not match the MD5 (and size) the manifest gives for them."""


# ---- manifest.json ------------------------------------------------------------------------------


class FileFormat(StrEnum):
    CSV = "CSV"
    PARQUET = "Parquet"


@dataclass(frozen=True, slots=True)
class InventoryFile:
    """One data file of a report: its key in the destination bucket, size and MD5 (hex)."""

    key: str
    size: int
    md5: str


@dataclass(frozen=True, slots=True)
class InventoryManifest:
    """A validated manifest.json."""

    source_bucket: str
    destination_bucket: str  # the bucket's name (the manifest gives its ARN)
    destination_bucket_arn: str
    version: str
    creation_timestamp_ms: int
    file_format: FileFormat
    file_schema: str
    columns: tuple[str, ...]  # canonical names (KNOWN_COLUMNS spelling where known), in schema order
    files: tuple[InventoryFile, ...]

    @property
    def created_at(self) -> datetime:
        return datetime.fromtimestamp(self.creation_timestamp_ms / 1000, UTC)

    @property
    def has_versions(self) -> bool:
        """A report of all versions (VersionId, IsLatest, IsDeleteMarker columns)."""
        return VERSION_ID in self.columns

    @property
    def has_storage_class(self) -> bool:
        return STORAGE_CLASS in self.columns

    @property
    def has_access_tier(self) -> bool:
        return IT_ACCESS_TIER in self.columns


def canonical_column(name: str) -> str:
    """``IsLatest``, ``is_latest`` and ``islatest`` are one column; unknown names are kept as given."""
    stripped = name.strip()
    return _BY_FOLDED.get(stripped.replace("_", "").lower(), stripped)


def _fail(field: str, message: str) -> InventoryManifestError:
    return InventoryManifestError(f"manifest.json: {field}: {message}", field)


def _required_str(doc: dict[str, Any], field: str, hint: str) -> str:
    if field not in doc:
        raise _fail(field, f"missing: {hint}")
    value = doc[field]
    if not isinstance(value, str) or not value.strip():
        raise _fail(field, f"must be a non-empty string ({hint}), found {json.dumps(value)[:80]}")
    return value.strip()


def parse_manifest(data: bytes | str) -> InventoryManifest:
    """Parse and validate an S3 Inventory manifest.json. Raises InventoryManifestError."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise InventoryManifestError(f"manifest.json is not UTF-8 text (byte {exc.start})", "") from exc
    try:
        doc = json.loads(data)
    except json.JSONDecodeError as exc:
        raise InventoryManifestError(
            f"manifest.json is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}): "
            "give the manifest.json S3 Inventory wrote, unchanged",
            "",
        ) from exc
    if not isinstance(doc, dict):
        raise InventoryManifestError(
            "manifest.json must be a JSON object with sourceBucket, destinationBucket, version, fileFormat, fileSchema and files", ""
        )

    source = _required_str(doc, "sourceBucket", "the name of the bucket the inventory lists")
    if not _BUCKET_RE.match(source):
        raise _fail("sourceBucket", f"{source[:80]!r} is not a valid S3 bucket name")
    destination_arn = _required_str(doc, "destinationBucket", "the ARN of the bucket holding the data files, arn:aws:s3:::name")
    match = _ARN_RE.match(destination_arn)
    destination = match.group("bucket") if match else destination_arn
    if not _BUCKET_RE.match(destination):
        raise _fail("destinationBucket", f"{destination_arn[:120]!r} is neither an S3 bucket ARN (arn:aws:s3:::name) nor a bucket name")

    if "version" not in doc:
        raise _fail("version", f'missing: S3 Inventory manifests have "version": "{MANIFEST_VERSION}"')
    version = doc["version"]
    if version != MANIFEST_VERSION:
        raise _fail(
            "version", f'{json.dumps(version)[:40]} is not supported: only "{MANIFEST_VERSION}" (the S3 Inventory manifest version) is'
        )

    if "creationTimestamp" not in doc:
        raise _fail("creationTimestamp", 'missing: the report\'s start time in epoch milliseconds, e.g. "1514944800000"')
    raw_ts = doc["creationTimestamp"]
    if isinstance(raw_ts, bool) or not (
        (isinstance(raw_ts, int) and raw_ts >= 0) or (isinstance(raw_ts, str) and raw_ts.strip().isdigit())
    ):
        raise _fail("creationTimestamp", f"must be epoch milliseconds (digits), found {json.dumps(raw_ts)[:40]}")
    created = int(str(raw_ts).strip())

    fmt_text = _required_str(doc, "fileFormat", "CSV or Parquet")
    if fmt_text.upper() == "ORC":
        raise _fail("fileFormat", "ORC inventory reports are not supported: configure the inventory with the CSV or Parquet format")
    file_format = {"CSV": FileFormat.CSV, "PARQUET": FileFormat.PARQUET}.get(fmt_text.upper())
    if file_format is None:
        raise _fail("fileFormat", f"{fmt_text[:40]!r} is not an S3 Inventory format: use CSV or Parquet (ORC is not supported)")

    schema = _required_str(doc, "fileSchema", 'the data files\' columns, e.g. "Bucket, Key, Size, StorageClass"')
    columns = _schema_columns(schema, file_format)

    files = _files(doc)
    return InventoryManifest(
        source_bucket=source,
        destination_bucket=destination,
        destination_bucket_arn=destination_arn,
        version=version,
        creation_timestamp_ms=created,
        file_format=file_format,
        file_schema=schema,
        columns=columns,
        files=files,
    )


def _schema_columns(schema: str, file_format: FileFormat) -> tuple[str, ...]:
    if file_format is FileFormat.CSV:
        names = [part.strip() for part in schema.split(",")]
        if any(not name for name in names):
            raise _fail("fileSchema", "has an empty column name: it must be column names separated by commas")
    else:
        names = _PARQUET_FIELD_RE.findall(schema)
        if not schema.lstrip().startswith("message") or not names:
            raise _fail("fileSchema", "is not a Parquet message schema (message s3.inventory { required binary bucket (UTF8); ... })")
    columns = tuple(canonical_column(name) for name in names)
    seen: set[str] = set()
    for column in columns:
        if column in seen:
            raise _fail("fileSchema", f"names the column {column!r} twice")
        seen.add(column)
    for needed in (BUCKET, KEY):
        if needed not in seen:
            raise _fail("fileSchema", f"has no {needed} column: an inventory report always has Bucket and Key")
    return columns


def _files(doc: dict[str, Any]) -> tuple[InventoryFile, ...]:
    if "files" not in doc:
        raise _fail("files", "missing: the list of data files [{key, size, MD5checksum}]")
    raw = doc["files"]
    if not isinstance(raw, list):
        raise _fail("files", "must be a list of {key, size, MD5checksum} objects")
    files: list[InventoryFile] = []
    keys: set[str] = set()
    for i, item in enumerate(raw):
        where = f"files[{i}]"
        if not isinstance(item, dict):
            raise _fail(where, "must be an object {key, size, MD5checksum}")
        key = item.get("key")
        if not isinstance(key, str) or not key:
            raise _fail(f"{where}.key", "missing or empty: the data file's key in the destination bucket")
        if key in keys:
            raise _fail(f"{where}.key", f"{key[:120]!r} is listed twice")
        keys.add(key)
        size = item.get("size")
        if isinstance(size, str) and size.strip().isdigit():
            size = int(size)
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise _fail(f"{where}.size", f"must be the data file's size in bytes (a non-negative integer), found {json.dumps(size)[:40]}")
        md5 = item.get("MD5checksum")
        if not isinstance(md5, str) or not _MD5_RE.match(md5):
            raise _fail(f"{where}.MD5checksum", f"must be the data file's MD5 as 32 hex digits, found {json.dumps(md5)[:60]}")
        files.append(InventoryFile(key, size, md5.lower()))
    return tuple(files)


def verify_manifest_checksum(manifest_bytes: bytes, checksum: bytes | str) -> None:
    """manifest.checksum holds the MD5 (hex) of manifest.json's bytes. Raises ChecksumMismatch."""
    expected = (checksum.decode("ascii", "replace") if isinstance(checksum, bytes) else checksum).strip().lower()
    actual = hashlib.md5(manifest_bytes, usedforsecurity=False).hexdigest()
    if actual != expected:
        raise ChecksumMismatch(
            f"manifest.json's MD5 is {actual} but manifest.checksum says {expected[:40]!r}: "
            "the manifest was changed or is from another report",
            "manifest.checksum",
        )


# ---- checksums ----------------------------------------------------------------------------------


class Md5Check:
    """Hash bytes as they are read; ``verify`` compares them with the manifest's MD5 and size."""

    def __init__(self, expected: InventoryFile):
        self.expected = expected
        self._md5 = hashlib.md5(usedforsecurity=False)
        self.size = 0

    def update(self, block: bytes) -> None:
        self._md5.update(block)
        self.size += len(block)

    def verify(self) -> None:
        actual = self._md5.hexdigest()
        if actual != self.expected.md5 or self.size != self.expected.size:
            raise ChecksumMismatch(
                f"data file {self.expected.key}: read {self.size} bytes with MD5 {actual}, the manifest gives "
                f"{self.expected.size} bytes with MD5 {self.expected.md5}: the file is damaged, incomplete or "
                "from another report",
                self.expected.key,
            )

    def wrap(self, blocks: Iterable[bytes]) -> Iterator[bytes]:
        """Pass the blocks on, hashing them; verify once they are all read."""
        for block in blocks:
            self.update(block)
            yield block
        self.verify()


def verify_file_md5(blocks: Iterable[bytes], expected: InventoryFile) -> None:
    """Read every block and check the data file's MD5 and size. Raises ChecksumMismatch."""
    check = Md5Check(expected)
    for block in blocks:
        check.update(block)
    check.verify()


def read_blocks(stream: IO[bytes], block_size: int = HASH_BLOCK_BYTES) -> Iterator[bytes]:
    while block := stream.read(block_size):
        yield block


# ---- rows ---------------------------------------------------------------------------------------


@dataclass(slots=True)
class InventoryRow:
    """One row of a data file, with the fields restoring needs. Absent columns are None."""

    index: int  # 0-based, in its data file
    bucket: str
    key: str  # decoded
    version_id: str | None = None
    is_latest: bool | None = None
    is_delete_marker: bool | None = None
    size: int | None = None
    storage_class: str | None = None
    access_tier: str | None = None  # IntelligentTieringAccessTier as the report gives it


@dataclass(frozen=True, slots=True)
class InventoryRowError:
    """A row that cannot be read; it names no object S3 can be asked about."""

    row: int
    message: str
    raw: str = ""

    def as_manifest_error(self, line: int) -> ManifestError:
        return ManifestError(line, f"inventory row {self.row}: {self.message}", self.raw)


_WANTED = (BUCKET, KEY, VERSION_ID, IS_LATEST, IS_DELETE_MARKER, SIZE, STORAGE_CLASS, IT_ACCESS_TIER)
_BOOLEANS: dict[str, bool | None] = {"true": True, "false": False, "": None}


@functools.lru_cache(maxsize=256)
def _valid_bucket(name: str) -> bool:
    return _BUCKET_RE.match(name) is not None


def _as_bool(value: Any) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    text = str(value)
    if text in _BOOLEANS:
        return _BOOLEANS[text]
    folded = text.strip().lower()
    if folded in _BOOLEANS:
        return _BOOLEANS[folded]
    raise ValueError(f"{text[:20]!r} is not true or false")


def _text(value: Any) -> str | None:
    """A text column's value: None for absent or empty, else stripped and upper-cased."""
    if not value:
        return None
    return str(value).strip().upper() or None


def _build_row(
    index: int,
    encoded_keys: bool,
    bucket_value: Any,
    key_value: Any,
    version_value: Any,
    latest_value: Any,
    marker_value: Any,
    size_value: Any,
    class_value: Any,
    tier_value: Any,
) -> InventoryRow | InventoryRowError:
    """Check and convert one row's values (strings from CSV, typed values from Parquet; None: absent)."""
    bucket = (bucket_value or "").strip()
    key_value = key_value or ""
    raw = f"{bucket},{key_value}"
    if not _valid_bucket(bucket):
        return InventoryRowError(index, f"{bucket[:80]!r} is not a valid S3 bucket name", raw[:200])
    if not key_value:
        return InventoryRowError(index, "the Key column is empty", raw[:200])
    key = key_value
    if encoded_keys and ("%" in key_value or "+" in key_value):
        if _BAD_PERCENT_RE.search(key_value):
            return InventoryRowError(index, "the key has invalid URL-encoding (a % not followed by two hex digits)", raw[:200])
        try:
            key = unquote_plus(key_value, encoding="utf-8", errors="strict")
        except UnicodeDecodeError:
            return InventoryRowError(index, "the key's URL-encoding does not decode to UTF-8", raw[:200])
    # A character is at most 4 bytes of UTF-8: only long keys need their bytes counted.
    if len(key) * 4 > MAX_KEY_BYTES and len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        return InventoryRowError(index, f"the key is longer than S3's limit of {MAX_KEY_BYTES} bytes", raw[:200])
    try:
        is_latest = _as_bool(latest_value)
        is_delete_marker = _as_bool(marker_value)
    except ValueError as exc:
        return InventoryRowError(index, f"IsLatest / IsDeleteMarker: {exc}", raw[:200])
    size: int | None
    if size_value is None or size_value == "":
        size = None
    elif isinstance(size_value, int) and not isinstance(size_value, bool):
        size = size_value
    elif isinstance(size_value, str) and size_value.strip().isdigit():
        size = int(size_value)
    else:
        return InventoryRowError(index, f"Size {str(size_value)[:30]!r} is not a number of bytes", raw[:200])
    version_id = (version_value or "").strip() or None
    if version_id is None and is_latest is False:
        # A noncurrent version with no version id is the "null" version (written before versioning).
        version_id = "null"
    return InventoryRow(index, bucket, key, version_id, is_latest, is_delete_marker, size, _text(class_value), _text(tier_value))


# ---- CSV (gzip) ---------------------------------------------------------------------------------


def gunzip_blocks(blocks: Iterable[bytes], out_chunk: int = GZIP_OUTPUT_CHUNK) -> Iterator[bytes]:
    """Decompress gzip data given as byte blocks, never more than ``out_chunk`` bytes at a time.

    Concatenated gzip members are read one after the other, as gzip(1) does. A stream that ends
    inside a member, or is no gzip at all, raises InventoryDataError.
    """
    decompressor = zlib.decompressobj(_GZIP_WBITS)
    in_member = False
    head = bytearray()  # the first bytes, until the gzip magic number can be checked
    checked = False
    for block in blocks:
        if not block:
            continue
        if checked:
            pending = bytes(block)
        else:
            head += block
            if len(head) < len(_GZIP_MAGIC):
                continue
            if not head.startswith(_GZIP_MAGIC):
                raise InventoryDataError("the data file is not gzip-compressed: S3 Inventory CSV data files are .csv.gz")
            checked, pending = True, bytes(head)
        while True:
            in_member = in_member or bool(pending)
            try:
                out = decompressor.decompress(pending, out_chunk)
            except zlib.error as exc:
                raise InventoryDataError(f"the data file's gzip stream is damaged ({exc})") from exc
            if out:
                yield out
            if decompressor.eof:
                # The member ended; what follows is the next member (or padding after the last).
                pending = decompressor.unused_data
                decompressor = zlib.decompressobj(_GZIP_WBITS)
                in_member = False
                if not pending.strip(b"\x00"):
                    break
                continue
            pending = decompressor.unconsumed_tail
            if not pending and len(out) < out_chunk:
                break  # all input taken and no output held back: the next block is needed
    if not checked:
        if head:
            raise InventoryDataError("the data file is not gzip-compressed: S3 Inventory CSV data files are .csv.gz")
        raise InventoryDataError("the data file is empty: an S3 Inventory CSV data file is gzip-compressed CSV")
    if in_member:
        raise InventoryDataError("the data file ends inside its gzip stream: it is truncated")


def _split_rows(chunks: Iterable[bytes]) -> Iterator[tuple[bytes, bool]]:
    """Lines of the decompressed text (without line ends, blank ones dropped), each with a flag
    saying it was longer than MAX_ROW_BYTES (then only its start is kept)."""
    buffer = bytearray()
    long_prefix: bytes | None = None
    for chunk in chunks:
        buffer += chunk
        start = 0
        while True:
            newline = buffer.find(b"\n", start)
            if newline < 0:
                break
            line = bytes(buffer[start:newline])
            start = newline + 1
            if long_prefix is not None:
                yield long_prefix, True
                long_prefix = None
                continue
            if line.endswith(b"\r"):
                line = line[:-1]
            if len(line) > MAX_ROW_BYTES:
                yield line[:MAX_ROW_BYTES], True
            elif line.strip():
                yield line, False
        del buffer[:start]
        if len(buffer) > MAX_ROW_BYTES:
            if long_prefix is None:
                long_prefix = bytes(buffer[:MAX_ROW_BYTES])
            buffer.clear()
    if long_prefix is not None:
        yield long_prefix, True
    elif buffer.strip():
        line = bytes(buffer)
        yield (line[:-1] if line.endswith(b"\r") else line), False


@dataclass(frozen=True, slots=True)
class _CsvLayout:
    width: int
    positions: tuple[int, ...]  # for each of _WANTED, its column's position, or -1 when absent

    @classmethod
    def of(cls, columns: Sequence[str]) -> _CsvLayout:
        canonical = [canonical_column(c) for c in columns]
        for needed in (BUCKET, KEY):
            if needed not in canonical:
                raise InventoryDataError(f"the schema has no {needed} column", "fileSchema")
        return cls(len(canonical), tuple(canonical.index(name) if name in canonical else -1 for name in _WANTED))


def split_quoted_row(text: str) -> list[str] | None:
    """The fields of a row in S3 Inventory's form (every field quoted) when no field holds a quote.

    Then the row is ``"f1","f2",...`` and splitting between the quotes is exact. Otherwise
    (a doubled quote inside a field, an unquoted field) None: the csv module parses it.
    """
    if len(text) < 2 or text[0] != '"' or text[-1] != '"':
        return None
    fields = text[1:-1].split('","')
    for field in fields:
        if '"' in field:
            return None
    return fields


def _parse_csv_row(index: int, data: bytes, layout: _CsvLayout) -> InventoryRow | InventoryRowError:
    preview = data[:200].decode("utf-8", "replace")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return InventoryRowError(index, f"the row is not valid UTF-8 (byte {exc.start})", preview)
    fields = split_quoted_row(text)
    if fields is None:
        try:
            fields = next(csv.reader((text,), strict=True))
        except (csv.Error, StopIteration) as exc:
            return InventoryRowError(index, f"the row is not valid CSV ({exc})", preview)
    if len(fields) != layout.width:
        return InventoryRowError(index, f"expected {layout.width} columns (the manifest's fileSchema), found {len(fields)}", preview)
    return _build_row(index, True, *[fields[i] if i >= 0 else None for i in layout.positions])


def iter_csv_rows(
    blocks: Iterable[bytes],
    columns: Sequence[str],
    start_row: int = 0,
    checksum: InventoryFile | None = None,
) -> Iterator[InventoryRow | InventoryRowError]:
    """Stream the rows of one gzip CSV data file, given as byte blocks from its first byte.

    ``columns`` are the manifest's (``InventoryManifest.columns``). Rows before ``start_row`` are
    counted, not parsed. With ``checksum`` (the manifest's entry for this file), the bytes are
    hashed as they come and ChecksumMismatch is raised once they are all read.
    """
    layout = _CsvLayout.of(columns)
    source = Md5Check(checksum).wrap(blocks) if checksum is not None else blocks
    index = -1
    for data, too_long in _split_rows(gunzip_blocks(source)):
        index += 1
        if index < start_row:
            continue
        if too_long:
            yield InventoryRowError(
                index, f"the row is longer than {MAX_ROW_BYTES} bytes: not an inventory row", data[:200].decode("utf-8", "replace")
            )
            continue
        yield _parse_csv_row(index, data, layout)


# ---- Parquet ------------------------------------------------------------------------------------


def iter_parquet_rows(
    source: Any,
    start_row: int = 0,
    batch_rows: int = PARQUET_BATCH_ROWS,
) -> Iterator[InventoryRow | InventoryRowError]:
    """Stream the rows of one Parquet data file from a seekable binary file object (or a path).

    Row groups wholly before ``start_row`` are not read at all; only the columns restoring needs
    are. The file's own column names decide (``bucket``, ``key``, ``version_id``, ...).
    """
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise InventoryDataError("reading Parquet inventory reports needs pyarrow: pip install pyarrow") from exc
    import pyarrow as pa

    try:
        parquet = pq.ParquetFile(source)
    except (pa.ArrowException, OSError) as exc:
        raise InventoryDataError(f"the data file is not a readable Parquet file ({exc})") from exc
    present: dict[str, str] = {}  # canonical -> the file's column name
    for name in parquet.schema_arrow.names:
        canonical = canonical_column(name)
        if canonical in _WANTED:
            present[canonical] = name
    for needed in (BUCKET, KEY):
        if needed not in present:
            raise InventoryDataError(f"the Parquet data file has no {PARQUET_NAMES[needed]} column")
    metadata = parquet.metadata
    first_group, group_start = 0, 0
    while first_group < metadata.num_row_groups:
        rows = metadata.row_group(first_group).num_rows
        if group_start + rows > start_row:
            break
        group_start += rows
        first_group += 1
    if first_group >= metadata.num_row_groups:
        return
    index = group_start
    wanted = list(present.items())
    try:
        batches = parquet.iter_batches(
            batch_size=batch_rows,
            row_groups=range(first_group, metadata.num_row_groups),
            columns=[name for _, name in wanted],
            use_threads=False,
        )
        for batch in batches:
            absent = [None] * batch.num_rows
            lists = {canonical: batch.column(name).to_pylist() for canonical, name in wanted}
            columns = [lists.get(name, absent) for name in _WANTED]
            for values in zip(*columns, strict=True):
                if index >= start_row:
                    yield _build_row(index, False, *values)
                index += 1
    except (pa.ArrowException, OSError) as exc:
        raise InventoryDataError(f"the Parquet data file could not be read at row {index} ({exc})") from exc


# ---- what to restore ----------------------------------------------------------------------------


class SkipCode(StrEnum):
    NOT_ARCHIVED = "NOT_ARCHIVED"
    DELETE_MARKER = "DELETE_MARKER"
    NOT_LATEST = "NOT_LATEST"
    UNKNOWN_CLASS = "UNKNOWN_CLASS"


@dataclass(frozen=True, slots=True)
class InventoryEntry:
    """An object to restore, as the planner needs it."""

    row: int
    bucket: str
    key: str
    version_id: str | None
    size: int | None
    storage_class: str | None  # None: the report has no StorageClass; the restore request decides
    access_tier: str | None  # ARCHIVE_ACCESS or DEEP_ARCHIVE_ACCESS for Intelligent-Tiering archive tiers

    @property
    def object(self) -> ObjectId:
        return ObjectId(self.bucket, self.key, self.version_id)

    @property
    def archive(self) -> str | None:
        """GLACIER, DEEP_ARCHIVE, ARCHIVE_ACCESS or DEEP_ARCHIVE_ACCESS; None when the report cannot say."""
        if self.storage_class in ARCHIVE_CLASSES:
            return self.storage_class
        return self.access_tier

    @property
    def takes_days(self) -> bool | None:
        """Whether RestoreObject takes Days: not for Intelligent-Tiering archive tiers."""
        if self.storage_class in ARCHIVE_CLASSES:
            return True
        if self.storage_class == IT_CLASS:
            return False
        return None

    def as_manifest_entry(self, line: int) -> ManifestEntry:
        return ManifestEntry(line, self.object)


@dataclass(frozen=True, slots=True)
class InventorySkip:
    """A row listed but not to restore, and why."""

    row: int
    bucket: str
    key: str
    version_id: str | None
    code: SkipCode
    reason: str
    storage_class: str | None = None
    access_tier: str | None = None


InventoryResult = InventoryEntry | InventorySkip | InventoryRowError


def classify(row: InventoryRow, latest_only: bool = False, restore_unknown: bool = True) -> InventoryEntry | InventorySkip:
    """To restore: GLACIER, DEEP_ARCHIVE, and INTELLIGENT_TIERING in an archive access tier.

    ``latest_only`` skips noncurrent versions. When the report cannot tell (no StorageClass column,
    or an Intelligent-Tiering object with no access tier), ``restore_unknown`` makes the row an
    entry anyway (RestoreObject answers InvalidObjectState for an object not archived) or a skip.
    """

    def skip(code: SkipCode, reason: str) -> InventorySkip:
        return InventorySkip(row.index, row.bucket, row.key, row.version_id, code, reason, row.storage_class, row.access_tier)

    def entry(tier: str | None) -> InventoryEntry:
        return InventoryEntry(row.index, row.bucket, row.key, row.version_id, row.size, row.storage_class, tier)

    if row.is_delete_marker:
        return skip(SkipCode.DELETE_MARKER, "a delete marker: it has no data to restore")
    if latest_only and row.is_latest is False:
        return skip(SkipCode.NOT_LATEST, "not the latest version, and only latest versions were asked for")
    storage_class = row.storage_class
    if storage_class is None:
        if restore_unknown:
            return entry(None)
        return skip(SkipCode.UNKNOWN_CLASS, "the report gives no storage class: add StorageClass to the inventory's fields")
    if storage_class in ARCHIVE_CLASSES:
        return entry(None)
    if storage_class == IT_CLASS:
        tier = row.access_tier
        if tier in IT_ARCHIVE_TIERS:
            return entry(IT_ARCHIVE_TIERS[tier])
        if tier is None:
            if restore_unknown:
                return entry(None)
            return skip(
                SkipCode.UNKNOWN_CLASS,
                "INTELLIGENT_TIERING with no access tier in the report: add IntelligentTieringAccessTier to the inventory's fields",
            )
        return skip(SkipCode.NOT_ARCHIVED, f"not archived: INTELLIGENT_TIERING in the {tier} access tier is readable at once")
    if storage_class == "GLACIER_IR":
        return skip(SkipCode.NOT_ARCHIVED, "not archived: GLACIER_IR (Glacier Instant Retrieval) is readable at once")
    return skip(SkipCode.NOT_ARCHIVED, f"not archived: {storage_class} is readable at once")


# ---- a whole report -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InventoryCursor:
    """Where reading a report stands: the next row to read, in the data file at ``file_index``."""

    file_index: int = 0
    row: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"file_index": self.file_index, "row": self.row}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InventoryCursor:
        return cls(int(data.get("file_index", 0)), int(data.get("row", 0)))


@dataclass(frozen=True, slots=True)
class ReportItem:
    """One row of a report, classified, with the cursor to resume from after it."""

    file_index: int
    file_key: str
    result: InventoryResult
    next_cursor: InventoryCursor


# What an opener returns for a data file: byte blocks from its first byte (CSV only), or a
# binary file object (seekable for Parquet).
FileSource = Iterable[bytes] | IO[bytes]
Opener = Callable[[InventoryFile], FileSource]


def iter_report(
    manifest: InventoryManifest,
    open_file: Opener,
    start: InventoryCursor | None = None,
    latest_only: bool = False,
    restore_unknown: bool = True,
    verify_md5: bool = True,
) -> Iterator[ReportItem]:
    """Every row of every data file from ``start``, classified, in the manifest's file order.

    A file's last row is given only after the file is read to its end (and its MD5 checked, with
    ``verify_md5``), so that row's ``next_cursor`` already points at the next file. Stopping after
    any item and calling again with its ``next_cursor`` gives exactly the items that follow.
    """
    start = start or InventoryCursor()
    for file_index in range(start.file_index, len(manifest.files)):
        info = manifest.files[file_index]
        first = start.row if file_index == start.file_index else 0
        source = open_file(info)
        rows = _rows_of(manifest, info, source, first, verify_md5)
        pending: InventoryResult | None = None
        for row in rows:
            result = row if isinstance(row, InventoryRowError) else classify(row, latest_only, restore_unknown)
            if pending is not None:
                yield ReportItem(file_index, info.key, pending, InventoryCursor(file_index, pending.row + 1))
            pending = result
        if pending is not None:
            yield ReportItem(file_index, info.key, pending, InventoryCursor(file_index + 1, 0))


def _rows_of(
    manifest: InventoryManifest,
    info: InventoryFile,
    source: FileSource,
    first: int,
    verify_md5: bool,
) -> Iterator[InventoryRow | InventoryRowError]:
    try:
        yield from _read_file(manifest, info, source, first, verify_md5)
    except InventoryDataError as exc:
        raise InventoryDataError(f"data file {info.key}: {exc.message}", info.key) from exc


def _read_file(
    manifest: InventoryManifest,
    info: InventoryFile,
    source: FileSource,
    first: int,
    verify_md5: bool,
) -> Iterator[InventoryRow | InventoryRowError]:
    if manifest.file_format is FileFormat.CSV:
        blocks = read_blocks(source) if hasattr(source, "read") else source  # type: ignore[arg-type]
        yield from iter_csv_rows(blocks, manifest.columns, first, info if verify_md5 else None)
        return
    if not hasattr(source, "read"):
        raise InventoryDataError("a Parquet data file must be opened as a seekable binary file, not as byte blocks")
    yield from iter_parquet_rows(source, first)
    if verify_md5:
        stream: Any = source
        stream.seek(0)
        verify_file_md5(read_blocks(stream), info)
