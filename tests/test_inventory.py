"""S3 Inventory reports: manifest.json, CSV and Parquet data files, what to restore, resuming,
checksums, and reports written for a local (moto) bucket.

The sample manifests in fixtures/inventory/aws-sample-manifest-*.json are AWS's, verbatim, from
the Amazon S3 User Guide, "Locating your inventory list":
https://docs.aws.amazon.com/AmazonS3/latest/userguide/storage-inventory-location.html
(its source: https://github.com/awsdocs/amazon-s3-userguide/blob/main/doc_source/storage-inventory-location.md).
fixtures/inventory/rows.csv is a CSV data file in S3 Inventory's form made for these tests (every
field quoted, keys form-URL-encoded, no header, blank lines at the end).
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import re
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bulk_restore.domain.inventory import (
    ChecksumMismatch,
    FileFormat,
    InventoryCursor,
    InventoryDataError,
    InventoryEntry,
    InventoryFile,
    InventoryManifest,
    InventoryManifestError,
    InventoryRow,
    InventoryRowError,
    InventorySkip,
    SkipCode,
    canonical_column,
    classify,
    gunzip_blocks,
    iter_csv_rows,
    iter_parquet_rows,
    iter_report,
    parse_manifest,
    split_quoted_row,
    verify_manifest_checksum,
)
from bulk_restore.domain.model import ObjectId

FIXTURES = Path(__file__).parent / "fixtures" / "inventory"
ROWS_SCHEMA = "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, LastModifiedDate, ETag, StorageClass, IntelligentTieringAccessTier"
ROWS_COLUMNS = tuple(c.strip() for c in ROWS_SCHEMA.split(","))


def gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def blocks(data: bytes, size: int) -> Iterator[bytes]:
    view = memoryview(data)
    for start in range(0, len(data), size):
        yield bytes(view[start : start + size])


def md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def fixture_rows() -> bytes:
    return (FIXTURES / "rows.csv").read_bytes()


def manifest_doc(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((FIXTURES / "aws-sample-manifest-csv.json").read_text())
    for name, value in changes.items():
        if value is _DROP:
            doc.pop(name)
        else:
            doc[name] = value
    return doc


_DROP = object()


# ---- manifest.json ------------------------------------------------------------------------------


def test_aws_sample_csv_manifest_parses() -> None:
    manifest = parse_manifest((FIXTURES / "aws-sample-manifest-csv.json").read_bytes())
    assert manifest.source_bucket == "example-source-bucket"
    assert manifest.destination_bucket == "example-inventory-destination-bucket"
    assert manifest.destination_bucket_arn == "arn:aws:s3:::example-inventory-destination-bucket"
    assert manifest.version == "2016-11-30"
    assert manifest.creation_timestamp_ms == 1514944800000
    assert manifest.created_at == datetime(2018, 1, 3, 2, 0, tzinfo=UTC)
    assert manifest.file_format is FileFormat.CSV
    assert manifest.columns[:5] == ("Bucket", "Key", "VersionId", "IsLatest", "IsDeleteMarker")
    assert "IntelligentTieringAccessTier" in manifest.columns and len(manifest.columns) == 18
    assert manifest.has_versions and manifest.has_storage_class and manifest.has_access_tier
    assert manifest.files == (
        InventoryFile(
            "Inventory/example-source-bucket/2016-11-06T21-32Z/files/939c6d46-85a9-4ba8-87bd-9db705a579ce.csv.gz",
            2147483647,
            "f11166069f1990abeb9c97ace9cdfabc",
        ),
    )


def test_aws_sample_parquet_manifest_is_checked_to_its_md5() -> None:
    # AWS's Parquet sample carries a placeholder MD5 ("...eexample"): a real manifest never does.
    raw = (FIXTURES / "aws-sample-manifest-parquet.json").read_text()
    with pytest.raises(InventoryManifestError) as caught:
        parse_manifest(raw)
    assert caught.value.field == "files[0].MD5checksum" and "32 hex digits" in str(caught.value)
    manifest = parse_manifest(raw.replace("5825f2e18e1695c2d030b9f6eexample", "5825f2e18e1695c2d030b9f6e0123456"))
    assert manifest.file_format is FileFormat.PARQUET
    assert manifest.destination_bucket == "example-destination-bucket"
    assert manifest.columns[:6] == ("Bucket", "Key", "VersionId", "IsLatest", "IsDeleteMarker", "Size")
    assert {"ETag", "StorageClass", "IntelligentTieringAccessTier", "ChecksumAlgorithm"} <= set(manifest.columns)
    assert manifest.files[0].size == 56291


def test_aws_sample_orc_manifest_is_refused_clearly() -> None:
    with pytest.raises(InventoryManifestError) as caught:
        parse_manifest((FIXTURES / "aws-sample-manifest-orc.json").read_bytes())
    assert caught.value.field == "fileFormat"
    assert "ORC" in str(caught.value) and "not supported" in str(caught.value) and "CSV or Parquet" in str(caught.value)


@pytest.mark.parametrize(
    ("doc", "field", "words"),
    [
        (manifest_doc(sourceBucket=_DROP), "sourceBucket", "missing"),
        (manifest_doc(destinationBucket=_DROP), "destinationBucket", "missing"),
        (manifest_doc(version=_DROP), "version", "2016-11-30"),
        (manifest_doc(creationTimestamp=_DROP), "creationTimestamp", "missing"),
        (manifest_doc(fileFormat=_DROP), "fileFormat", "missing"),
        (manifest_doc(fileSchema=_DROP), "fileSchema", "missing"),
        (manifest_doc(files=_DROP), "files", "missing"),
        (manifest_doc(version="2020-01-01"), "version", 'only "2016-11-30"'),
        (manifest_doc(version=20161130), "version", "not supported"),
        (manifest_doc(fileFormat="JSON"), "fileFormat", "use CSV or Parquet"),
        (manifest_doc(fileFormat="orc"), "fileFormat", "not supported"),
        (manifest_doc(sourceBucket="Not_A_Bucket"), "sourceBucket", "not a valid S3 bucket name"),
        (manifest_doc(destinationBucket="arn:aws:sqs:us-east-1:1:q"), "destinationBucket", "arn:aws:s3:::name"),
        (manifest_doc(creationTimestamp="yesterday"), "creationTimestamp", "epoch milliseconds"),
        (manifest_doc(fileSchema="Bucket, Size"), "fileSchema", "no Key column"),
        (manifest_doc(fileSchema="Bucket, Key, Key"), "fileSchema", "twice"),
        (manifest_doc(fileSchema=""), "fileSchema", "non-empty"),
        (manifest_doc(files={"key": "a"}), "files", "list"),
        (manifest_doc(files=[{"size": 1, "MD5checksum": "0" * 32}]), "files[0].key", "missing"),
        (manifest_doc(files=[{"key": "a", "size": -1, "MD5checksum": "0" * 32}]), "files[0].size", "non-negative"),
        (manifest_doc(files=[{"key": "a", "size": 1, "MD5checksum": "xyz"}]), "files[0].MD5checksum", "32 hex digits"),
        (manifest_doc(files=[{"key": "a", "size": 1, "MD5checksum": "0" * 32}] * 2), "files[1].key", "twice"),
    ],
)
def test_bad_manifests_name_the_field_and_what_to_fix(doc: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(InventoryManifestError) as caught:
        parse_manifest(json.dumps(doc))
    assert caught.value.field == field
    assert str(caught.value).startswith(f"manifest.json: {field}:")
    assert words in str(caught.value)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('{"sourceBucket": "b", ', "not valid JSON (line 1"),
        ("", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
    ],
)
def test_malformed_json_is_a_clear_error(text: str, words: str) -> None:
    with pytest.raises(InventoryManifestError) as caught:
        parse_manifest(text)
    assert words in str(caught.value)


def test_manifest_checksum() -> None:
    body = (FIXTURES / "aws-sample-manifest-csv.json").read_bytes()
    verify_manifest_checksum(body, md5(body).encode() + b"\n")
    with pytest.raises(ChecksumMismatch) as caught:
        verify_manifest_checksum(body + b" ", md5(body))
    assert "manifest.checksum" in str(caught.value)


def test_column_names_in_either_spelling() -> None:
    assert canonical_column("is_delete_marker") == "IsDeleteMarker"
    assert canonical_column(" e_tag ") == "ETag"
    assert canonical_column("intelligent_tiering_access_tier") == "IntelligentTieringAccessTier"
    assert canonical_column("SomethingNew") == "SomethingNew"


# ---- CSV data files -----------------------------------------------------------------------------


def read_fixture(block_size: int = 7) -> list[InventoryRow | InventoryRowError]:
    return list(iter_csv_rows(blocks(gz(fixture_rows()), block_size), ROWS_COLUMNS))


def test_csv_rows_quotes_commas_encoded_unicode_keys_versions_and_delete_markers() -> None:
    rows = read_fixture()
    assert len(rows) == 15  # the blank lines at the end are no rows
    assert [r.index if isinstance(r, InventoryRow) else r.row for r in rows] == list(range(15))
    by_index = {r.index: r for r in rows if isinstance(r, InventoryRow)}
    assert by_index[0] == InventoryRow(
        0, "example-source-bucket", "photos/red flower.jpg", "3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY", True, False, 1024, "GLACIER", None
    )
    assert (by_index[1].version_id, by_index[1].is_latest, by_index[1].storage_class) == (
        "OYcLXagmS.WaD..oyH4KRguB95_YhLs7",
        False,
        "DEEP_ARCHIVE",
    )
    assert by_index[2].key == "maths/1+1=2.txt" and by_index[2].version_id is None  # "+" arrives as %2B
    assert by_index[3].key == "日本語/über 😀.txt"
    assert by_index[4].key == 'reports/q1,q2 "draft".csv'  # CSV quoting: a comma and doubled quotes
    assert by_index[5].is_delete_marker is True and by_index[5].size is None and by_index[5].storage_class is None
    assert by_index[7].version_id == "null"  # a noncurrent version without an id: the null version
    assert by_index[10].access_tier == "DEEP_ARCHIVE"
    bad_key, short = rows[13], rows[14]
    assert isinstance(bad_key, InventoryRowError) and "invalid URL-encoding" in bad_key.message
    assert isinstance(short, InventoryRowError) and "expected 10 columns" in short.message and "short-row" in short.raw
    assert short.as_manifest_error(99).line == 99


def test_every_fixture_row_is_classified() -> None:
    got: dict[str, tuple[str, ...]] = {}
    for row in read_fixture():
        if isinstance(row, InventoryRowError):
            continue
        result = classify(row)
        name = f"{row.key}@{row.index}"
        if isinstance(result, InventoryEntry):
            got[name] = ("restore", str(result.archive))
        else:
            got[name] = ("skip", result.code.value)
    assert got == {
        "photos/red flower.jpg@0": ("restore", "GLACIER"),
        "photos/red flower.jpg@1": ("restore", "DEEP_ARCHIVE"),
        "maths/1+1=2.txt@2": ("restore", "GLACIER"),
        "日本語/über 😀.txt@3": ("restore", "DEEP_ARCHIVE"),
        'reports/q1,q2 "draft".csv@4': ("restore", "GLACIER"),
        "gone.txt@5": ("skip", "DELETE_MARKER"),
        "gone.txt@6": ("restore", "GLACIER"),
        "old/pre-versioning.bin@7": ("restore", "GLACIER"),
        "tiers/frequent@8": ("skip", "NOT_ARCHIVED"),
        "tiers/archive@9": ("restore", "ARCHIVE_ACCESS"),
        "tiers/deep@10": ("restore", "DEEP_ARCHIVE_ACCESS"),
        "instant.bin@11": ("skip", "NOT_ARCHIVED"),
        "plain.bin@12": ("skip", "NOT_ARCHIVED"),
    }
    rows = [r for r in read_fixture() if isinstance(r, InventoryRow)]
    latest = {r.key for r in rows if isinstance(classify(r, latest_only=True), InventoryEntry)}
    assert "old/pre-versioning.bin" not in latest and "photos/red flower.jpg" in latest
    assert "gone.txt" not in latest  # its latest is a delete marker, its older version is not latest


def test_columns_in_any_order_and_optional_columns_absent() -> None:
    columns = ("StorageClass", "Key", "Size", "Bucket")
    data = gz(b'"DEEP_ARCHIVE","a%2Fb+c","12","bkt-one"\n"STANDARD","x","1","bkt-one"\n')
    first, second = list(iter_csv_rows([data], columns))
    assert isinstance(second, InventoryRow)
    assert first == InventoryRow(0, "bkt-one", "a/b c", None, None, None, 12, "DEEP_ARCHIVE", None)
    entry = classify(first)
    assert isinstance(entry, InventoryEntry)
    assert entry.object == ObjectId("bkt-one", "a/b c", None)
    assert entry.as_manifest_entry(7).object == entry.object and entry.takes_days is True
    assert isinstance(classify(second), InventorySkip)
    # No StorageClass column: the report cannot say; RestoreObject decides, unless told to skip.
    (bare,) = list(iter_csv_rows([gz(b'"bkt-one","k"\n')], ("Bucket", "Key")))
    assert isinstance(bare, InventoryRow) and bare.storage_class is None
    unknown = classify(bare)
    assert isinstance(unknown, InventoryEntry) and unknown.archive is None and unknown.takes_days is None
    skipped = classify(bare, restore_unknown=False)
    assert isinstance(skipped, InventorySkip) and skipped.code is SkipCode.UNKNOWN_CLASS and "StorageClass" in skipped.reason


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(st.lists(st.text(alphabet='ab,"\n +%', max_size=6), min_size=1, max_size=5))
def test_the_quoted_row_fast_path_agrees_with_the_csv_module(fields: list[str]) -> None:
    out = io.StringIO()
    csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="").writerow(fields)
    text = out.getvalue()
    fast = split_quoted_row(text)
    assert fast is None or fast == next(csv.reader([text]))
    if not any('"' in f for f in fields):
        assert fast == fields


def test_a_schema_without_key_is_refused() -> None:
    with pytest.raises(InventoryDataError):
        list(iter_csv_rows([gz(b'"b"\n')], ("Bucket", "Size")))


def row(storage_class: str | None, tier: str | None = None, **kw: Any) -> InventoryRow:
    return InventoryRow(0, "bkt-one", "k", kw.get("version"), kw.get("latest"), kw.get("marker"), 5, storage_class, tier)


@pytest.mark.parametrize(
    "storage_class", ["STANDARD", "REDUCED_REDUNDANCY", "STANDARD_IA", "ONEZONE_IA", "GLACIER_IR", "OUTPOSTS", "SNOW", "EXPRESS_ONEZONE"]
)
def test_classes_that_are_not_archived_are_skipped_with_their_class(storage_class: str) -> None:
    result = classify(row(storage_class))
    assert isinstance(result, InventorySkip) and result.code is SkipCode.NOT_ARCHIVED
    assert result.reason.startswith("not archived") and storage_class in result.reason


@pytest.mark.parametrize("storage_class", ["GLACIER", "DEEP_ARCHIVE"])
def test_archive_classes_are_restored(storage_class: str) -> None:
    result = classify(row(storage_class))
    assert isinstance(result, InventoryEntry)
    assert (result.storage_class, result.access_tier, result.archive, result.takes_days) == (storage_class, None, storage_class, True)


@pytest.mark.parametrize(
    ("tier", "archive"),
    [
        ("ARCHIVE", "ARCHIVE_ACCESS"),
        ("ARCHIVE_ACCESS", "ARCHIVE_ACCESS"),
        ("DEEP_ARCHIVE", "DEEP_ARCHIVE_ACCESS"),
        ("DEEP_ARCHIVE_ACCESS", "DEEP_ARCHIVE_ACCESS"),
    ],
)
def test_intelligent_tiering_archive_tiers_are_restored(tier: str, archive: str) -> None:
    result = classify(row("INTELLIGENT_TIERING", tier))
    assert isinstance(result, InventoryEntry)
    assert (result.access_tier, result.archive, result.takes_days) == (archive, archive, False)


@pytest.mark.parametrize("tier", ["FREQUENT", "INFREQUENT", "ARCHIVE_INSTANT_ACCESS"])
def test_intelligent_tiering_instant_tiers_are_skipped_with_their_tier(tier: str) -> None:
    result = classify(row("INTELLIGENT_TIERING", tier))
    assert isinstance(result, InventorySkip) and result.code is SkipCode.NOT_ARCHIVED and tier in result.reason


def test_intelligent_tiering_without_a_tier_column() -> None:
    assert isinstance(classify(row("INTELLIGENT_TIERING")), InventoryEntry)
    skipped = classify(row("INTELLIGENT_TIERING"), restore_unknown=False)
    assert isinstance(skipped, InventorySkip) and "IntelligentTieringAccessTier" in skipped.reason


def test_delete_markers_and_noncurrent_versions() -> None:
    marker = classify(row(None, marker=True, latest=True))
    assert isinstance(marker, InventorySkip) and marker.code is SkipCode.DELETE_MARKER
    old = row("GLACIER", version="v1", latest=False)
    assert isinstance(classify(old), InventoryEntry)
    skipped = classify(old, latest_only=True)
    assert isinstance(skipped, InventorySkip) and skipped.code is SkipCode.NOT_LATEST and skipped.version_id == "v1"
    assert isinstance(classify(row("GLACIER", version="v2", latest=True), latest_only=True), InventoryEntry)


# ---- streaming, resuming ------------------------------------------------------------------------


def test_a_resumed_read_from_row_n_gives_exactly_the_rest() -> None:
    full = read_fixture()
    data = gz(fixture_rows())
    for start in range(len(full) + 2):
        assert list(iter_csv_rows(blocks(data, 11), ROWS_COLUMNS, start_row=start)) == full[start:]


@pytest.mark.parametrize("block_size", [1, 2, 3, 10, 64, 1 << 20])
def test_gzip_fed_in_small_blocks(block_size: int) -> None:
    assert read_fixture(block_size) == read_fixture(1 << 20)


def test_concatenated_gzip_members_are_one_file() -> None:
    text = fixture_rows()
    cut = text.index(b"\n", len(text) // 2) + 1
    two_members = gz(text[:cut]) + gz(text[cut:])
    assert list(iter_csv_rows(blocks(two_members, 5), ROWS_COLUMNS)) == read_fixture()


def test_gunzip_output_is_bounded_by_its_chunk() -> None:
    data = b"x" * 2_000_000
    out = list(gunzip_blocks([gz(data)], out_chunk=4096))
    assert b"".join(out) == data and max(len(c) for c in out) <= 4096


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (gz(b'"b","k"\n' * 1000)[:-12], "truncated"),
        (b'"bkt-one","k"\n', "not gzip-compressed"),
        (b"", "empty"),
    ],
)
def test_broken_gzip_is_a_clear_error(data: bytes, words: str) -> None:
    with pytest.raises(InventoryDataError) as caught:
        list(iter_csv_rows(blocks(data, 100), ("Bucket", "Key")))
    assert words in str(caught.value)


def test_an_over_long_row_is_an_error_row_and_the_next_row_is_read() -> None:
    data = gz(b'"bkt-one","' + b"a" * (1024 * 1024 + 10) + b'"\n"bkt-one","next"\n')
    first, second = list(iter_csv_rows(blocks(data, 65536), ("Bucket", "Key")))
    assert isinstance(first, InventoryRowError) and "longer than" in first.message
    assert isinstance(second, InventoryRow) and (second.index, second.key) == (1, "next")


# ---- checksums ----------------------------------------------------------------------------------


def test_a_data_file_md5_mismatch_is_detected_once_all_bytes_are_read() -> None:
    data = gz(fixture_rows())
    good = InventoryFile("inv/data/a.csv.gz", len(data), md5(data))
    assert list(iter_csv_rows(blocks(data, 9), ROWS_COLUMNS, checksum=good)) == read_fixture()
    # A resumed read hashes the whole file too (it is read from its first byte).
    assert len(list(iter_csv_rows(blocks(data, 9), ROWS_COLUMNS, start_row=14, checksum=good))) == 1
    wrong = InventoryFile("inv/data/a.csv.gz", len(data), "0" * 32)
    got: list[Any] = []
    with pytest.raises(ChecksumMismatch) as caught:
        for item in iter_csv_rows(blocks(data, 9), ROWS_COLUMNS, checksum=wrong):
            got.append(item)
    assert len(got) == 15
    message = str(caught.value)
    assert "inv/data/a.csv.gz" in message and md5(data) in message and "0" * 32 in message
    short = InventoryFile("inv/data/a.csv.gz", len(data) + 1, md5(data))
    with pytest.raises(ChecksumMismatch):
        list(iter_csv_rows([data], ROWS_COLUMNS, checksum=short))


def in_memory_report(
    parts: list[bytes], file_format: str = "CSV", schema: str = ROWS_SCHEMA, md5s: list[str] | None = None
) -> tuple[InventoryManifest, dict[str, bytes]]:
    ext = ".csv.gz" if file_format == "CSV" else ".parquet"
    stored = {f"inv/example-source-bucket/cfg/data/{i:04d}{ext}": body for i, body in enumerate(parts)}
    doc = manifest_doc(
        fileFormat=file_format,
        fileSchema=schema,
        files=[
            {"key": key, "size": len(body), "MD5checksum": (md5s[i] if md5s else md5(body))} for i, (key, body) in enumerate(stored.items())
        ],
    )
    return parse_manifest(json.dumps(doc)), stored


def test_iter_report_resumes_from_any_cursor_across_files() -> None:
    lines = fixture_rows().splitlines(keepends=True)
    parts = [gz(b"".join(lines[0:4])), gz(b"".join(lines[4:5])), gz(b"\n"), gz(b"".join(lines[5:]))]
    manifest, stored = in_memory_report(parts)

    def opener(info: InventoryFile) -> Iterator[bytes]:
        return blocks(stored[info.key], 13)

    items = list(iter_report(manifest, opener))
    assert len(items) == 15
    assert [(i.file_index, i.next_cursor) for i in items[:6]] == [
        (0, InventoryCursor(0, 1)),
        (0, InventoryCursor(0, 2)),
        (0, InventoryCursor(0, 3)),
        (0, InventoryCursor(1, 0)),
        (1, InventoryCursor(2, 0)),
        (3, InventoryCursor(3, 1)),  # file 2 has no rows at all
    ]
    assert items[-1].next_cursor == InventoryCursor(4, 0)
    for k, item in enumerate(items):
        cursor = InventoryCursor.from_dict(json.loads(json.dumps(item.next_cursor.as_dict())))
        assert list(iter_report(manifest, opener, cursor)) == items[k + 1 :]
    assert list(iter_report(manifest, opener, InventoryCursor(0, 0))) == items
    assert [i.result.row for i in iter_report(manifest, opener, InventoryCursor(0, 2))][:2] == [2, 3]


def test_iter_report_gives_a_file_s_last_row_only_after_its_md5_is_checked() -> None:
    data = gz(fixture_rows())
    manifest, stored = in_memory_report([data], md5s=["f" * 32])
    seen: list[Any] = []
    with pytest.raises(ChecksumMismatch):
        for item in iter_report(manifest, lambda info: io.BytesIO(stored[info.key])):
            seen.append(item)
    assert len(seen) == 14  # the 15th, the last, waits for the check
    assert len(list(iter_report(manifest, lambda info: io.BytesIO(stored[info.key]), verify_md5=False))) == 15


# ---- Parquet ------------------------------------------------------------------------------------


PARQUET_ROWS: list[dict[str, Any]] = [
    {
        "bucket": "bkt-one",
        "key": "a b+c/ü.txt",
        "version_id": "v2",
        "is_latest": True,
        "is_delete_marker": False,
        "size": 10,
        "storage_class": "GLACIER",
        "intelligent_tiering_access_tier": None,
    },
    {
        "bucket": "bkt-one",
        "key": "a b+c/ü.txt",
        "version_id": "v1",
        "is_latest": False,
        "is_delete_marker": False,
        "size": 9,
        "storage_class": "DEEP_ARCHIVE",
        "intelligent_tiering_access_tier": None,
    },
    {
        "bucket": "bkt-one",
        "key": "gone",
        "version_id": "v3",
        "is_latest": True,
        "is_delete_marker": True,
        "size": None,
        "storage_class": None,
        "intelligent_tiering_access_tier": None,
    },
    {
        "bucket": "bkt-one",
        "key": "it/archive",
        "version_id": None,
        "is_latest": True,
        "is_delete_marker": False,
        "size": 200000,
        "storage_class": "INTELLIGENT_TIERING",
        "intelligent_tiering_access_tier": "ARCHIVE",
    },
    {
        "bucket": "bkt-one",
        "key": "it/deep",
        "version_id": None,
        "is_latest": True,
        "is_delete_marker": False,
        "size": 200000,
        "storage_class": "INTELLIGENT_TIERING",
        "intelligent_tiering_access_tier": "DEEP_ARCHIVE",
    },
    {
        "bucket": "bkt-one",
        "key": "it/frequent",
        "version_id": None,
        "is_latest": True,
        "is_delete_marker": False,
        "size": 200000,
        "storage_class": "INTELLIGENT_TIERING",
        "intelligent_tiering_access_tier": "FREQUENT",
    },
    {
        "bucket": "bkt-one",
        "key": "instant",
        "version_id": None,
        "is_latest": True,
        "is_delete_marker": False,
        "size": 1,
        "storage_class": "GLACIER_IR",
        "intelligent_tiering_access_tier": None,
    },
    {
        "bucket": "bkt-one",
        "key": "plain%20name",
        "version_id": None,
        "is_latest": True,
        "is_delete_marker": False,
        "size": 1,
        "storage_class": "STANDARD",
        "intelligent_tiering_access_tier": None,
    },
    {
        "bucket": "bkt-one",
        "key": "",
        "version_id": None,
        "is_latest": True,
        "is_delete_marker": False,
        "size": 1,
        "storage_class": "GLACIER",
        "intelligent_tiering_access_tier": None,
    },
    {
        "bucket": "bkt-one",
        "key": "last",
        "version_id": None,
        "is_latest": True,
        "is_delete_marker": False,
        "size": 3,
        "storage_class": "DEEP_ARCHIVE",
        "intelligent_tiering_access_tier": None,
    },
]


def parquet_bytes(rows: list[dict[str, Any]], row_group_size: int = 3, drop: tuple[str, ...] = ()) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    fields = [
        pa.field("bucket", pa.string(), nullable=False),
        pa.field("key", pa.string(), nullable=False),
        pa.field("version_id", pa.string()),
        pa.field("is_latest", pa.bool_()),
        pa.field("is_delete_marker", pa.bool_()),
        pa.field("size", pa.int64()),
        pa.field("last_modified_date", pa.timestamp("ms", tz="UTC")),
        pa.field("e_tag", pa.string()),
        pa.field("storage_class", pa.string()),
        pa.field("intelligent_tiering_access_tier", pa.string()),
    ]
    # A column order of its own: the reader goes by names.
    fields = [f for f in reversed(fields) if f.name not in drop]
    table = pa.Table.from_pylist(
        [{**r, "last_modified_date": datetime(2024, 1, 1, tzinfo=UTC), "e_tag": "0" * 32} for r in rows],
        schema=pa.schema(fields),
    )
    sink = io.BytesIO()
    pq.write_table(table, sink, row_group_size=row_group_size, compression="snappy")
    return sink.getvalue()


def test_parquet_round_trip_by_row_groups_and_resume() -> None:
    data = parquet_bytes(PARQUET_ROWS)
    rows = list(iter_parquet_rows(io.BytesIO(data)))
    assert len(rows) == 10
    first = rows[0]
    assert first == InventoryRow(0, "bkt-one", "a b+c/ü.txt", "v2", True, False, 10, "GLACIER", None)  # keys are not URL-encoded
    assert isinstance(rows[7], InventoryRow) and rows[7].key == "plain%20name"
    assert isinstance(rows[8], InventoryRowError) and "Key column is empty" in rows[8].message
    kinds = [type(classify(r)).__name__ if isinstance(r, InventoryRow) else "error" for r in rows]
    assert kinds == [
        "InventoryEntry",
        "InventoryEntry",
        "InventorySkip",
        "InventoryEntry",
        "InventoryEntry",
        "InventorySkip",
        "InventorySkip",
        "InventorySkip",
        "error",
        "InventoryEntry",
    ]
    for start in range(12):  # row groups of 3: resumes inside and at the edges of groups
        assert list(iter_parquet_rows(io.BytesIO(data), start_row=start, batch_rows=2)) == rows[start:]


def test_parquet_report_through_iter_report_with_md5() -> None:
    data = parquet_bytes(PARQUET_ROWS)
    schema = "message s3.inventory { required binary bucket (UTF8); required binary key (UTF8); optional binary version_id (UTF8); }"
    manifest, stored = in_memory_report([data, data], "Parquet", schema)
    items = list(iter_report(manifest, lambda info: io.BytesIO(stored[info.key])))
    assert len(items) == 20 and items[9].next_cursor == InventoryCursor(1, 0)
    assert list(iter_report(manifest, lambda info: io.BytesIO(stored[info.key]), items[12].next_cursor)) == items[13:]
    bad, stored_bad = in_memory_report([data], "Parquet", schema, md5s=["1" * 32])
    with pytest.raises(ChecksumMismatch):
        list(iter_report(bad, lambda info: io.BytesIO(stored_bad[info.key])))
    with pytest.raises(InventoryDataError) as caught:
        list(iter_report(manifest, lambda info: iter([stored[info.key]])))  # Parquet needs a file object
    assert str(caught.value).startswith(f"data file {manifest.files[0].key}: ") and "seekable" in str(caught.value)


def test_parquet_without_a_key_column_or_not_parquet() -> None:
    with pytest.raises(InventoryDataError) as caught:
        list(iter_parquet_rows(io.BytesIO(parquet_bytes(PARQUET_ROWS, drop=("key",)))))
    assert "key" in str(caught.value)
    with pytest.raises(InventoryDataError):
        list(iter_parquet_rows(io.BytesIO(b"PAR1 not really")))
    # Optional columns absent: rows without versions or tiers.
    rows = list(
        iter_parquet_rows(
            io.BytesIO(parquet_bytes(PARQUET_ROWS, drop=("version_id", "is_latest", "is_delete_marker", "intelligent_tiering_access_tier")))
        )
    )
    assert isinstance(rows[3], InventoryRow) and (rows[3].version_id, rows[3].access_tier) == (None, None)


# ---- bounded memory -----------------------------------------------------------------------------


def test_100k_rows_stream_in_bounded_memory() -> None:
    rows = 100_000
    sink = io.BytesIO()
    raw_size = 0
    with gzip.GzipFile(fileobj=sink, mode="wb", mtime=0) as out:
        for i in range(rows):
            line = (
                f'"example-source-bucket","data/{i // 1000:03d}/object+{i:06d}.bin","v{i:012d}","true","false",'
                f'"{i}","2024-01-01T00:00:00.000Z","0123456789abcdef0123456789abcdef",'
                f'"{"GLACIER" if i % 3 else "STANDARD"}",""\n'
            ).encode()
            raw_size += len(line)
            out.write(line)
    data = sink.getvalue()
    info = InventoryFile("inv/data/big.csv.gz", len(data), md5(data))
    counts = {"restore": 0, "skip": 0, "error": 0}
    tracemalloc.start()
    try:
        for item in iter_csv_rows(blocks(data, 64 * 1024), ROWS_COLUMNS, checksum=info):
            if isinstance(item, InventoryRowError):
                counts["error"] += 1
            else:
                counts["restore" if isinstance(classify(item), InventoryEntry) else "skip"] += 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert counts == {"restore": 66_666, "skip": 33_334, "error": 0}
    assert raw_size > 15_000_000
    print(f"reader peak {peak} bytes for {raw_size} bytes of CSV")
    assert peak < raw_size / 8, f"peak {peak} bytes for {raw_size} bytes of CSV"


# ---- reports of a local bucket ------------------------------------------------------------------


SOURCE, DESTINATION = "inventory-source", "inventory-destination"


@pytest.fixture
def s3(aws: None) -> Any:
    import boto3

    client = boto3.client("s3", region_name="us-east-1")
    client.create_bucket(Bucket=SOURCE)
    client.create_bucket(Bucket=DESTINATION)
    return client


def fill_bucket(s3: Any) -> dict[str, str]:
    """Mixed classes, versions, a delete marker, awkward keys. Returns the IT objects' archive tiers."""
    s3.put_bucket_versioning(Bucket=SOURCE, VersioningConfiguration={"Status": "Enabled"})
    put = s3.put_object
    put(Bucket=SOURCE, Key="docs/red flower+1.jpg", Body=b"one", StorageClass="GLACIER")
    put(Bucket=SOURCE, Key="docs/red flower+1.jpg", Body=b"second", StorageClass="DEEP_ARCHIVE")
    put(Bucket=SOURCE, Key='日本語/ü, "quoted".txt', Body=b"x", StorageClass="GLACIER")
    put(Bucket=SOURCE, Key="plain.txt", Body=b"x")
    put(Bucket=SOURCE, Key="ia.txt", Body=b"x", StorageClass="STANDARD_IA")
    put(Bucket=SOURCE, Key="instant.bin", Body=b"x", StorageClass="GLACIER_IR")
    put(Bucket=SOURCE, Key="it/archive", Body=b"x", StorageClass="INTELLIGENT_TIERING", Metadata={"archive-status": "ARCHIVE_ACCESS"})
    put(Bucket=SOURCE, Key="it/deep", Body=b"x", StorageClass="INTELLIGENT_TIERING", Metadata={"archive-status": "DEEP_ARCHIVE_ACCESS"})
    put(Bucket=SOURCE, Key="it/frequent", Body=b"x", StorageClass="INTELLIGENT_TIERING")
    put(Bucket=SOURCE, Key="deleted.bin", Body=b"old", StorageClass="GLACIER")
    s3.delete_object(Bucket=SOURCE, Key="deleted.bin")
    return {"it/archive": "ARCHIVE_ACCESS", "it/deep": "DEEP_ARCHIVE_ACCESS"}


def bucket_truth(s3: Any, include_versions: bool) -> set[tuple[Any, ...]]:
    """(key, version, is_latest, is_delete_marker, size, storage class) as S3's own listing gives them."""
    listing = s3.list_object_versions(Bucket=SOURCE)
    truth = set()
    for v in listing.get("Versions", []):
        if include_versions or v["IsLatest"]:
            truth.add(
                (
                    v["Key"],
                    v["VersionId"] if include_versions else None,
                    v["IsLatest"] if include_versions else None,
                    False if include_versions else None,
                    v["Size"],
                    v["StorageClass"],
                )
            )
    if include_versions:
        for m in listing.get("DeleteMarkers", []):
            truth.add((m["Key"], m["VersionId"], m["IsLatest"], True, None, None))
    else:
        truth = {t for t in truth if t[0] != "deleted.bin"}  # its current version is a delete marker
    return truth


@pytest.mark.parametrize("file_format", ["CSV", "Parquet"])
@pytest.mark.parametrize("include_versions", [True, False])
def test_write_inventory_report_reads_back_as_the_bucket(s3: Any, file_format: str, include_versions: bool) -> None:
    from bulk_restore_cli.local.inventory import read_object, report_opener, write_inventory_report

    tiers = fill_bucket(s3)
    when = datetime(2026, 12, 1, 6, 30, 15, tzinfo=UTC)
    key = write_inventory_report(
        SOURCE, DESTINATION, "reports/inv", file_format, include_versions=include_versions, rows_per_file=3, config_id="nightly", now=when
    )
    assert key == f"reports/inv/{SOURCE}/nightly/2026-12-01T06-30Z/manifest.json"
    body = read_object(DESTINATION, key)
    verify_manifest_checksum(body, read_object(DESTINATION, key.replace("manifest.json", "manifest.checksum")))
    manifest = parse_manifest(body)
    assert manifest.source_bucket == SOURCE and manifest.destination_bucket_arn == f"arn:aws:s3:::{DESTINATION}"
    assert manifest.created_at == datetime(2026, 12, 1, 6, 30, 15, tzinfo=UTC)
    assert manifest.has_versions is include_versions
    ext = ".csv.gz" if file_format == "CSV" else ".parquet"
    data_key = re.compile(rf"^reports/inv/{SOURCE}/nightly/data/[0-9a-f-]{{36}}{re.escape(ext)}$")
    assert all(data_key.match(f.key) for f in manifest.files)
    expected_rows = 12 if include_versions else 8  # 10 versions and a delete marker ... / 8 current objects
    assert len(manifest.files) == -(-expected_rows // 3)
    symlink = read_object(DESTINATION, f"reports/inv/{SOURCE}/nightly/hive/dt=2026-12-01-06-30/symlink.txt").decode()
    assert symlink.splitlines() == [f"s3://{DESTINATION}/{f.key}" for f in manifest.files]

    items = list(iter_report(manifest, report_opener(DESTINATION)))
    assert not [i.result for i in items if isinstance(i.result, InventoryRowError)]
    rows: set[tuple[Any, ...]] = set()
    # Read the rows themselves (not classified) to compare with S3's own listing.
    for info in manifest.files:
        body = read_object(DESTINATION, info.key)
        reader = iter_csv_rows([body], manifest.columns) if file_format == "CSV" else iter_parquet_rows(io.BytesIO(body))
        for r in reader:
            assert isinstance(r, InventoryRow)
            assert r.bucket == SOURCE
            rows.add((r.key, r.version_id, r.is_latest, r.is_delete_marker, r.size, r.storage_class))
    assert rows == bucket_truth(s3, include_versions)

    restore = {(i.result.key, i.result.archive) for i in items if isinstance(i.result, InventoryEntry)}
    expected = {
        ("docs/red flower+1.jpg", "DEEP_ARCHIVE"),
        ('日本語/ü, "quoted".txt', "GLACIER"),
        ("it/archive", tiers["it/archive"]),
        ("it/deep", tiers["it/deep"]),
    }
    if include_versions:
        expected |= {("docs/red flower+1.jpg", "GLACIER"), ("deleted.bin", "GLACIER")}
    assert restore == expected
    skipped = {(i.result.key, i.result.code) for i in items if isinstance(i.result, InventorySkip)}
    assert ("it/frequent", SkipCode.NOT_ARCHIVED) in skipped and ("instant.bin", SkipCode.NOT_ARCHIVED) in skipped
    assert (("deleted.bin", SkipCode.DELETE_MARKER) in skipped) is include_versions
    latest_only = {
        (i.result.key, i.result.version_id)
        for i in iter_report(manifest, report_opener(DESTINATION), latest_only=True)
        if isinstance(i.result, InventoryEntry)
    }
    assert ("deleted.bin" not in {k for k, _ in latest_only}) and len(latest_only) == 4


def test_csv_report_is_in_aws_form(s3: Any) -> None:
    from bulk_restore_cli.local.inventory import read_object, write_inventory_report

    fill_bucket(s3)
    key = write_inventory_report(
        SOURCE, DESTINATION, "", "CSV", fields=["Size", "StorageClass", "IsMultipartUploaded"], now=datetime(2026, 1, 2, 3, 4, tzinfo=UTC)
    )
    assert key == f"{SOURCE}/bulk-restore-inventory/2026-01-02T03-04Z/manifest.json"
    manifest = json.loads(read_object(DESTINATION, key))
    assert list(manifest) == ["sourceBucket", "destinationBucket", "version", "creationTimestamp", "fileFormat", "fileSchema", "files"]
    assert manifest["fileSchema"] == "Bucket, Key, Size, StorageClass, IsMultipartUploaded"
    assert manifest["creationTimestamp"] == str(int(datetime(2026, 1, 2, 3, 4, tzinfo=UTC).timestamp() * 1000))
    text = gzip.decompress(read_object(DESTINATION, manifest["files"][0]["key"])).decode()
    lines = text.splitlines()
    assert f'"{SOURCE}","docs/red+flower%2B1.jpg","6","DEEP_ARCHIVE","false"' in lines
    assert all(re.fullmatch(r'("[^"]*"|"[^"]*""[^"]*""[^"]*")(,"[^"]*")*', line) for line in lines)


def test_write_inventory_report_refuses_what_it_cannot_write(s3: Any) -> None:
    from bulk_restore_cli.local.inventory import write_inventory_report

    with pytest.raises(ValueError, match="CSV or Parquet"):
        write_inventory_report(SOURCE, DESTINATION, "p", "ORC")
    with pytest.raises(ValueError, match="unknown inventory fields"):
        write_inventory_report(SOURCE, DESTINATION, "p", fields=["Colour"])
    with pytest.raises(ValueError, match="rows_per_file"):
        write_inventory_report(SOURCE, DESTINATION, "p", rows_per_file=0)


def test_an_empty_bucket_gives_a_report_with_one_empty_file(s3: Any) -> None:
    from bulk_restore_cli.local.inventory import read_object, report_opener, write_inventory_report

    for file_format in ("CSV", "Parquet"):
        manifest = parse_manifest(read_object(DESTINATION, write_inventory_report(SOURCE, DESTINATION, "e", file_format)))
        assert len(manifest.files) == 1
        assert list(iter_report(manifest, report_opener(DESTINATION))) == []


def test_a_large_bucket_is_written_file_by_file(s3: Any) -> None:
    from moto.s3.models import s3_backends

    from bulk_restore_cli.local.inventory import read_object, report_opener, write_inventory_report

    backend = s3_backends["123456789012"]["aws"]
    objects = 24_000
    for i in range(objects):
        backend.put_object(SOURCE, f"bulk/{i:06d}", b"", storage="DEEP_ARCHIVE" if i % 2 else "GLACIER", disable_notification=True)
    write_inventory_report(SOURCE, DESTINATION, "warm-up", "CSV", rows_per_file=1000)  # first-use imports and caches
    tracemalloc.start()
    try:
        key = write_inventory_report(
            SOURCE, DESTINATION, "big", "CSV", fields=["Size", "LastModifiedDate", "ETag", "StorageClass"], rows_per_file=1000
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    manifest = parse_manifest(read_object(DESTINATION, key))
    assert len(manifest.files) == 24
    text_size = sum(len(gzip.decompress(read_object(DESTINATION, f.key))) for f in manifest.files)
    # One file's rows at a time (and the key names): far less than the report's text, let alone
    # its rows as Python objects.
    print(f"writer peak {peak} bytes for {text_size} bytes of report")
    assert peak < text_size / 3, f"peak {peak} bytes for {text_size} bytes of report"
    counts: dict[int, int] = {}
    for item in iter_report(manifest, report_opener(DESTINATION)):
        assert isinstance(item.result, InventoryEntry)
        counts[item.file_index] = counts.get(item.file_index, 0) + 1
    assert list(counts.values()) == [1000] * 24
