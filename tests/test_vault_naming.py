"""Naming a vault's archives in flat memory: the external sort (domain/external_sort.py), the
two-pass naming (usecases/vault.py, ``name_inventory``) and the named list's streamed upload
(adapters/s3.py, ``write_work_object_stream``)."""

from __future__ import annotations

import hashlib
import json
import random
import time
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import pytest

from bulk_restore.adapters.s3 import S3Gateway
from bulk_restore.domain.external_sort import RunWriter, merge_runs, read_lines, sort_lines, write_lines
from bulk_restore.domain.vault import (
    KeyFrom,
    KeyRules,
    VaultArchive,
    VaultRowError,
    archive_key_for,
    assign_unique_keys,
    dedup_key,
    iter_vault_inventory,
)
from bulk_restore.usecases.vault import VaultMover, name_inventory

HASH = "a" * 64
MIB = 1 << 20


# ---- the external sort --------------------------------------------------------------------------


def _random_line(rng: random.Random) -> str:
    alphabet = "ab\x00\t\r é中\U0001f600\u2028\x85z"
    return "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 8)))


@pytest.mark.parametrize("run_lines, fan_in", [(1, 2), (3, 2), (7, 3), (50, 256), (10_000, 256)])
def test_sorted_runs_merge_into_the_lines_sorted(tmp_path: Path, run_lines: int, fan_in: int) -> None:
    rng = random.Random(run_lines * 31 + fan_in)
    lines = [_random_line(rng) for _ in range(500)] + ["lone \ud800 surrogate"]
    rng.shuffle(lines)
    assert list(sort_lines(lines, tmp_path, run_lines, fan_in)) == sorted(lines)
    # as UTF-8 bytes too
    assert [line.encode("utf-8", "surrogatepass") for line in sorted(lines)] == sorted(
        line.encode("utf-8", "surrogatepass") for line in lines
    )


def test_runs_beyond_the_fan_in_are_merged_first_and_removed(tmp_path: Path) -> None:
    writer = RunWriter(tmp_path, run_lines=2)
    for number in range(20, 0, -1):
        writer.add(f"{number:03d}")
    runs = writer.finish()
    assert len(runs) == 10 and all(list(read_lines(run)) == sorted(read_lines(run)) for run in runs)
    assert list(merge_runs(runs, fan_in=3)) == [f"{n:03d}" for n in range(1, 21)]
    assert not any(run.exists() for run in runs)  # merged into longer runs, then removed
    assert writer.lines == 20


def test_no_lines_sort_into_no_lines_and_a_line_break_is_refused(tmp_path: Path) -> None:
    assert list(sort_lines([], tmp_path)) == []
    assert list(sort_lines([""], tmp_path)) == [""]
    with pytest.raises(ValueError, match="line break"):
        list(sort_lines(["one\ntwo"], tmp_path))
    with pytest.raises(ValueError):
        RunWriter(tmp_path, run_lines=0)
    write_lines(tmp_path / "plain", ["x", "y\r"])
    write_lines(tmp_path / "plain", ["z"], append=True)
    assert list(read_lines(tmp_path / "plain")) == ["x", "y\r", "z"]


# ---- naming in two passes -----------------------------------------------------------------------


def inventory_json(entries: list[dict[str, Any]], per_block: int = 5) -> Iterator[bytes]:
    """A JSON inventory of ``entries``, as GetJobOutput blocks."""
    yield b'{"VaultARN":"arn:aws:glacier:us-east-1:012345678901:vaults/v","InventoryDate":"2024-06-01T00:00:00Z","ArchiveList":['
    for start in range(0, len(entries), per_block):
        text = ",".join(json.dumps(e, ensure_ascii=False) for e in entries[start : start + per_block])
        yield (("," if start else "") + text).encode("utf-8")
    yield b"]}"


def _archive_id(number: int) -> str:
    return f"id{number:06d}".ljust(138, "x")


def duplicate_heavy_inventory(seed: int, count: int) -> list[dict[str, Any]]:
    """Archives in random order, most sharing a name with others, some names that look like the
    names de-duplication gives (to be kept clear of), some created in the same second, and a few
    entries that are no archive."""
    rng = random.Random(seed)
    base = datetime(2020, 1, 1, tzinfo=UTC)
    times = [base + timedelta(seconds=rng.randrange(4), microseconds=rng.choice([0, 500_000])) for _ in range(6)]
    names = ["a.txt", "photos/b.jpg", "dir\\c", "", "<m><v>4</v><p>ZGlyL2ZpbGUudHh0</p></m>", "dir/file.txt", "solo-{n}"]
    names += [dedup_key("a.txt", t) for t in times[:3]]  # "a.txt.20200101T00000SZ": names de-duplication would give
    names += [dedup_key("a.txt", times[0], 2), dedup_key("photos/b.jpg", times[1]) + ".3"]
    entries = []
    for number in range(count):
        created = rng.choice(times)
        entries.append(
            {
                "ArchiveId": _archive_id(number),
                "ArchiveDescription": rng.choice(names).replace("{n}", str(number)),
                "CreationDate": created.isoformat().replace("+00:00", "Z"),
                "Size": rng.randrange(10**6),
                "SHA256TreeHash": HASH,
            }
        )
    for bad in range(max(1, count // 40)):
        entries.insert(
            rng.randrange(len(entries)),
            {
                "ArchiveId": f"bad id {bad}!",
                "ArchiveDescription": "x",
                "CreationDate": "2020-01-01T00:00:00Z",
                "Size": 1,
                "SHA256TreeHash": HASH,
            },
        )
    entries.insert(
        rng.randrange(len(entries)), {"ArchiveId": _archive_id(10**6 - 1), "CreationDate": "yesterday", "Size": 1, "SHA256TreeHash": HASH}
    )
    return entries


@pytest.mark.parametrize("seed, count", [(1, 30), (2, 300), (3, 1_000), (4, 2_500)])
@pytest.mark.parametrize("key_from", [KeyFrom.DESCRIPTION, KeyFrom.ARCHIVE_ID])
def test_streamed_naming_gives_the_keys_naming_in_memory_gives(tmp_path: Path, seed: int, count: int, key_from: KeyFrom) -> None:
    entries = duplicate_heavy_inventory(seed, count)
    rules = KeyRules(prefix="from-vault/", key_from=key_from)
    results = [item.result for item in iter_vault_inventory(inventory_json(entries))]
    archives = [r for r in results if isinstance(r, VaultArchive)]
    errors = [r for r in results if isinstance(r, VaultRowError)]
    assert archives and errors
    expected = {(record.archive_id, key) for record, key in assign_unique_keys(a.naming(archive_key_for(a, rules).key) for a in archives)}

    named, total, lines = name_inventory(iter(results), rules, str(tmp_path), run_lines=7)
    rows = [json.loads(line) for line in lines]

    assert (named, total) == (len(archives), len(results)) == (len(archives), len(entries))
    assert len(rows) == len(entries)
    archive_rows = [row for row in rows if row[0]]
    assert {(row[0], row[1]) for row in archive_rows} == expected
    assert len({row[1] for row in archive_rows}) == len(archives)  # never two archives on one key
    by_id = {a.archive_id: a for a in archives}
    for archive_id, _, fields in archive_rows:
        archive = by_id[archive_id]
        assert fields == {
            "size": archive.size,
            "created": archive.creation_date,
            "tree_hash": archive.tree_hash,
            "description": archive.description,
        }
    error_rows = [row for row in rows if not row[0]]
    assert error_rows == [["", "", {"error": f"inventory entry {e.index + 1}: {e.message}", "raw": e.raw[:200]}] for e in errors]
    if key_from is KeyFrom.DESCRIPTION:
        # the dedup-looking names were really in play: a later "a.txt" skipped a name an archive holds
        dedup_looking = {key for _, key in expected if key.startswith("from-vault/a.txt.")}
        assert len(dedup_looking) > 3


def test_archives_come_out_grouped_by_their_key_and_errors_last(tmp_path: Path) -> None:
    entries = duplicate_heavy_inventory(9, 400)
    results = [item.result for item in iter_vault_inventory(inventory_json(entries))]
    rows = [json.loads(line) for line in name_inventory(iter(results), KeyRules(), str(tmp_path), run_lines=11)[2]]
    kinds = [bool(row[0]) for row in rows]
    assert kinds == sorted(kinds, reverse=True)  # archives, then errors
    rules = KeyRules()
    base = {a.archive_id: archive_key_for(a, rules).key for a in results if isinstance(a, VaultArchive)}
    bases = [base[row[0]] for row in rows if row[0]]
    assert bases == sorted(bases)


def test_an_inventory_of_no_archives_names_nothing(tmp_path: Path) -> None:
    named, total, lines = name_inventory(iter(()), KeyRules(), str(tmp_path))
    assert (named, total, list(lines)) == (0, 0, [])


# ---- memory -------------------------------------------------------------------------------------


def big_inventory(count: int, per_block: int = 256) -> Iterator[bytes]:
    """A JSON inventory of ``count`` archives, block by block (never whole): a name in ten is
    shared by ten archives, the rest are distinct."""
    yield b'{"VaultARN":"arn:aws:glacier:us-east-1:012345678901:vaults/big","InventoryDate":"2024-06-01T00:00:00Z","ArchiveList":['
    for start in range(0, count, per_block):
        batch = []
        for i in range(start, min(start + per_block, count)):
            name = f"backups/host-{i % 97:02d}/shared-{i % 1000:04d}.tar" if i % 10 == 0 else f"photos/{i // 1000:04d}/IMG_{i:07d}.jpg"
            batch.append(
                '{"ArchiveId":"%s","ArchiveDescription":"%s","CreationDate":"2019-%02d-21T08:52:%02d.%03dZ","Size":%d,"SHA256TreeHash":"%s"}'
                % (_archive_id(i), name, 1 + i % 12, i % 60, i % 1000, i * 7, HASH)
            )
        yield (("," if start else "") + ",".join(batch)).encode()
    yield b"]}"


def test_naming_100000_archives_holds_one_run_not_the_vault(tmp_path: Path) -> None:
    count = 100_000  # two runs of 50,000: the peak is one run's, not the vault's
    started = time.monotonic()
    tracemalloc.start()
    try:
        items = (item.result for item in iter_vault_inventory(big_inventory(count)))
        named, total, lines = name_inventory(items, KeyRules(prefix="from-vault/"), str(tmp_path))
        digest, written, out_lines = hashlib.sha256(), 0, 0
        for line in lines:  # as name_archives hands them to the upload
            chunk = f"{line}\n".encode()
            digest.update(chunk)
            written += len(chunk)
            out_lines += 1
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    elapsed = time.monotonic() - started
    assert named == total == out_lines == count
    print(f"naming {count:,} archives: peak {peak / MIB:.1f} MiB traced, {written / MIB:.1f} MiB named list, {elapsed:.1f} s")
    # Naming in memory held about 2 KB an archive (some 200 MB here); one run of 50,000 now.
    assert peak < 60 * MIB, peak / MIB


# ---- the named list's streamed upload -----------------------------------------------------------


@pytest.fixture
def work_s3(aws: None) -> tuple[S3Gateway, Any]:
    client = boto3.client("s3")
    client.create_bucket(Bucket="work")
    return S3Gateway(client), client


def _chunks(data: bytes, sizes: list[int]) -> Iterator[bytes]:
    at, i = 0, 0
    while at < len(data):
        size = sizes[i % len(sizes)]
        yield data[at : at + size]
        at += size
        i += 1


@pytest.mark.parametrize("size, parts", [(0, 0), (1, 0), (5 * MIB, 0), (5 * MIB + 1, 2), (12 * MIB + 3, 3)])
def test_a_streamed_work_object_holds_exactly_the_bytes_given(work_s3: tuple[S3Gateway, Any], size: int, parts: int) -> None:
    s3, client = work_s3
    data = random.Random(size).randbytes(size)
    etag = s3.write_work_object_stream("work", "vault/j/archives.jsonl", _chunks(data, [1, 70_000, 3 * MIB, 999]), part_bytes=5 * MIB)
    answer = client.get_object(Bucket="work", Key="vault/j/archives.jsonl")
    assert answer["Body"].read() == data
    assert answer["ETag"] == etag
    # one PutObject when it all fits in a part; else parts of 5 MiB and the rest
    assert etag.strip('"').endswith(f"-{parts}") if parts else "-" not in etag
    assert b"".join(s3.read_work_object("work", "vault/j/archives.jsonl")) == data


def test_a_streamed_work_object_with_a_small_part_size_still_uses_parts_of_5_mib(work_s3: tuple[S3Gateway, Any]) -> None:
    s3, client = work_s3
    data = b"line\n" * (2 * MIB + 1)  # 10 MiB and 5 bytes
    etag = s3.write_work_object_stream("work", "k", iter([data]), part_bytes=1024)
    assert etag.strip('"').endswith("-3")
    assert client.get_object(Bucket="work", Key="k")["Body"].read() == data


def test_a_stream_that_fails_leaves_no_object_and_no_upload(work_s3: tuple[S3Gateway, Any]) -> None:
    s3, client = work_s3

    def failing() -> Iterator[bytes]:
        yield b"x" * (6 * MIB)
        yield b"y" * (6 * MIB)
        raise RuntimeError("the inventory broke off")

    with pytest.raises(RuntimeError, match="broke off"):
        s3.write_work_object_stream("work", "k", failing(), part_bytes=5 * MIB)
    assert "Contents" not in client.list_objects_v2(Bucket="work")
    assert not client.list_multipart_uploads(Bucket="work").get("Uploads")


# ---- name_archives: the inventory read, named and written -------------------------------------


def test_name_archives_writes_the_named_list_and_leaves_no_run_files(
    work_s3: tuple[S3Gateway, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3, client = work_s3
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    entries = duplicate_heavy_inventory(5, 200)
    glacier = SimpleNamespace(inventory_blocks=lambda vault, job: inventory_json(entries))
    mover = VaultMover(None, s3, glacier, None, None, work_bucket="work")  # type: ignore[arg-type]
    job = SimpleNamespace(job_id="job-1", source={"vault": "v", "target": {"bucket": "t", "prefix": "p/"}, "inventory": True})

    key, count = mover.name_archives(job, "inventory-job")  # type: ignore[arg-type]

    assert (key, count) == ("vault/job-1/archives.jsonl", len(entries))
    body = client.get_object(Bucket="work", Key=key)["Body"].read()
    rows = [json.loads(line) for line in body.decode("utf-8").splitlines()]
    assert len(rows) == len(entries) and body.endswith(b"\n")
    results = [item.result for item in iter_vault_inventory(inventory_json(entries))]
    rules = KeyRules(prefix="p/")
    expected = {
        (r.archive_id, k)
        for r, k in assign_unique_keys(a.naming(archive_key_for(a, rules).key) for a in results if isinstance(a, VaultArchive))
    }
    assert {(row[0], row[1]) for row in rows if row[0]} == expected
    assert list(tmp_path.iterdir()) == []  # the run files went with their temporary directory
