"""The pure rules for moving Glacier vault archives into S3 (bulk_restore.domain.vault).

Tree hashes are checked against botocore.utils.calculate_tree_hash; naming examples quote AWS's
own solution's tests (aws-solutions/data-transfer-from-amazon-s3-glacier-vaults-to-amazon-s3,
source/tests/unit/infrastructure/glue_helper/scripts/test_archive_naming.py) and FastGlacier's
published metadata format.
"""

from __future__ import annotations

import base64
import hashlib
import io
import itertools
import json
import os
import random
import time
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from botocore.utils import calculate_tree_hash
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bulk_restore.domain import vault as v
from bulk_restore.domain.vault import (
    GIB,
    MIB,
    TIB,
    ArchiveFilter,
    ArchiveTooLarge,
    KeyRules,
    NameSource,
    NamingRecord,
    RangeTreeHash,
    TreeHasher,
    TreeHashMismatch,
    VaultArchive,
    VaultError,
    VaultInventoryCursor,
    VaultInventoryError,
    VaultRowError,
)

FIXTURES = Path(__file__).parent / "fixtures" / "vault"
HASH = "6b9d4cf8697bd3af6aa1b590a0b27b337da5b18988dbcc619a3e608a554a1e62"
FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def data_of(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


def botocore_tree_hash(data: bytes) -> str:
    return calculate_tree_hash(io.BytesIO(data))


def feed(hasher: TreeHasher, data: bytes, sizes: list[int]) -> None:
    pos, turn = 0, 0
    while pos < len(data):
        step = sizes[turn % len(sizes)]
        hasher.update(data[pos : pos + step])
        pos += step
        turn += 1


class PatternStream:
    """Deterministic bytes of any length without holding them: a file for botocore, blocks for us."""

    def __init__(self, size: int, seed: int = 7):
        self.size = size
        self.pattern = random.Random(seed).randbytes(MIB + 4099)  # not a multiple of a leaf
        self.pos = 0

    def read(self, n: int = -1) -> bytes:
        n = self.size - self.pos if n < 0 else min(n, self.size - self.pos)
        out = bytearray()
        while len(out) < n:
            start = (self.pos + len(out)) % len(self.pattern)
            out += self.pattern[start : start + n - len(out)]
        self.pos += n
        return bytes(out)

    def blocks(self, sizes: list[int]) -> Iterator[bytes]:
        turn = 0
        while block := self.read(sizes[turn % len(sizes)]):
            yield block
            turn += 1


# ---- tree hash ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "size",
    [0, 1, MIB - 1, MIB, MIB + 1, 2 * MIB, 3 * MIB, 5 * MIB, 7 * MIB, 3 * MIB + 17, 5 * MIB - 1, 7 * MIB + 1],
)
def test_tree_hash_matches_botocore_whatever_the_block_sizes(size: int) -> None:
    data = data_of(size, seed=size)
    expected = botocore_tree_hash(data)
    assert v.tree_hash(data) == expected
    for sizes in ([1, 7, 4096, MIB - 1], [MIB], [MIB + 3, 5], [3 * MIB]):
        hasher = TreeHasher()
        feed(hasher, data, sizes)
        assert hasher.hexdigest() == expected
        assert hasher.size == size
    assert v.tree_hash_from_leaves(v.leaf_hashes(data)).hex() == expected


def test_the_tree_hash_of_no_bytes_is_the_sha256_of_no_bytes() -> None:
    # Glacier's checksum rules give a zero-byte body the SHA-256 of nothing, as botocore does.
    assert TreeHasher().hexdigest() == v.EMPTY_TREE_HASH == hashlib.sha256(b"").hexdigest()
    assert botocore_tree_hash(b"") == v.EMPTY_TREE_HASH
    assert v.tree_hash_from_leaves([]).hex() == v.EMPTY_TREE_HASH


def test_odd_leaf_counts_move_the_odd_node_up_unchanged() -> None:
    # 3 leaves: H(H(l0+l1) + l2); 5: H(H(H01+H23) + l4); 7: H(H0123 + H(H45 + l6)).
    data = data_of(7 * MIB, seed=3)
    leaves = v.leaf_hashes(data)
    h = v._sha256
    assert v.tree_hash(data[: 3 * MIB]) == h(h(leaves[0] + leaves[1]) + leaves[2]).hex()
    h0123 = h(h(leaves[0] + leaves[1]) + h(leaves[2] + leaves[3]))
    assert v.tree_hash(data[: 5 * MIB]) == h(h0123 + leaves[4]).hex()
    assert v.tree_hash(data) == h(h0123 + h(h(leaves[4] + leaves[5]) + leaves[6])).hex()


def test_a_few_hundred_mib_streamed_in_odd_blocks_match_botocore() -> None:
    size = 320 * MIB + 12345
    hasher = TreeHasher()
    for block in PatternStream(size).blocks([999_983, 1, 4 * MIB + 7, 65_536]):
        hasher.update(block)
    assert hasher.size == size
    assert hasher.hexdigest() == calculate_tree_hash(PatternStream(size))
    assert len(hasher._stack) <= 64  # O(log n) digests, never the leaves


@FAST
@given(size=st.integers(0, 4 * MIB + 3), seed=st.integers(0, 2**16), cuts=st.lists(st.integers(1, 2 * MIB), min_size=1, max_size=6))
def test_any_split_of_any_bytes_gives_botocores_tree_hash(size: int, seed: int, cuts: list[int]) -> None:
    data = data_of(size, seed)
    hasher = TreeHasher()
    feed(hasher, data, cuts)
    assert hasher.hexdigest() == botocore_tree_hash(data)


def test_memoryview_and_bytearray_feed_like_bytes() -> None:
    data = data_of(MIB + 5)
    hasher = TreeHasher()
    hasher.update(bytearray(data[:10]))
    hasher.update(memoryview(data)[10:])
    assert hasher.hexdigest() == botocore_tree_hash(data)
    assert hasher.digest() == hasher.digest()  # reading the digest does not end the hash
    hasher.update(b"more")
    assert hasher.hexdigest() == botocore_tree_hash(data + b"more")


def test_a_leaf_hash_is_32_bytes() -> None:
    with pytest.raises(VaultError, match="32-byte"):
        v.tree_hash_from_leaves([b"short"])


def test_a_range_tree_hash_from_leaf_hashes_is_the_tree_hash_of_its_bytes() -> None:
    # What GetJobOutput's x-amz-sha256-tree-hash gives for a megabyte-aligned range.
    size = 7 * MIB + MIB // 2
    data = data_of(size, seed=11)
    leaves = v.leaf_hashes(data)
    for start, end in [(0, size - 1), (MIB, 3 * MIB - 1), (2 * MIB, size - 1), (6 * MIB, size - 1), (3 * MIB, 4 * MIB - 1)]:
        assert v.range_tree_hash(leaves, start, end, size) == botocore_tree_hash(data[start : end + 1])
    with pytest.raises(VaultError, match="megabyte aligned"):
        v.range_tree_hash(leaves, 1, MIB - 1, size)
    with pytest.raises(VaultError, match="leaves"):
        v.range_tree_hash(leaves[:-1], 0, MIB - 1, size)


def test_is_tree_hash_aligned_is_the_api_references_rule_for_the_header() -> None:
    # API reference, GetJobOutput checksum: "if you have an 3.1 MB archive and you specify a range
    # to return that starts at 1 MB and ends at 2 MB ... x-amz-sha256-tree-hash is returned";
    # "starts at 2 MB and ends at 3.1 MB (the end of the archive)" also.
    size = 3 * MIB + MIB // 10
    assert v.is_tree_hash_aligned(MIB, 2 * MIB - 1, size)
    assert v.is_tree_hash_aligned(2 * MIB, size - 1, size)
    assert v.is_tree_hash_aligned(0, size - 1, size)  # the entire archive
    assert v.is_tree_hash_aligned(MIB, 3 * MIB - 1, size)  # a megabyte multiple, not a power of two
    assert not v.is_tree_hash_aligned(1, MIB - 1, size)
    assert not v.is_tree_hash_aligned(0, MIB, size)
    assert not v.is_tree_hash_aligned(0, size - 2, size)
    assert v.is_tree_hash_aligned(0, 99, 100)  # a small archive read whole
    for bad in [(-1, 5, 10), (5, 4, 10), (0, 10, 10), (0, 1, 0)]:
        with pytest.raises(VaultError):
            v.is_tree_hash_aligned(*bad)


def test_is_tree_hash_node_follows_the_developer_guides_example() -> None:
    # checksum-calculations-range: a 6.5 MB archive, 2 MB to retrieve. [0, 2 MB) and [2 MB, 4 MB)
    # are nodes of its tree; [1 MB, 3 MB) is megabyte aligned but no node.
    size = 6 * MIB + MIB // 2
    assert v.is_tree_hash_node(0, 2 * MIB - 1, size)
    assert v.is_tree_hash_node(2 * MIB, 4 * MIB - 1, size)
    assert not v.is_tree_hash_node(MIB, 3 * MIB - 1, size)
    assert v.is_tree_hash_aligned(MIB, 3 * MIB - 1, size)
    assert v.is_tree_hash_node(4 * MIB, size - 1, size)  # 3 leaves to the end, from a multiple of 4
    assert v.is_tree_hash_node(6 * MIB, size - 1, size)
    assert not v.is_tree_hash_node(5 * MIB, size - 1, size)
    assert not v.is_tree_hash_node(0, 3 * MIB - 1, size)


def _glacier_tree_nodes(leaves: list[bytes]) -> set[bytes]:
    """Every node of the archive's tree, built level by level the way botocore does."""
    nodes = set(leaves)
    level = leaves
    while len(level) > 1:
        level = [v._sha256(level[i] + level[i + 1]) if i + 1 < len(level) else level[i] for i in range(0, len(level), 2)]
        nodes.update(level)
    return nodes


@pytest.mark.parametrize("leaf_count", range(1, 13))
@pytest.mark.parametrize("last_leaf", [MIB, MIB // 3])
def test_is_tree_hash_node_is_exactly_the_ranges_whose_root_is_a_node(leaf_count: int, last_leaf: int) -> None:
    # The developer guide's definition, checked by brute force over every megabyte-aligned range.
    size = (leaf_count - 1) * MIB + last_leaf
    rng = random.Random(leaf_count)
    leaves = [rng.randbytes(32) for _ in range(leaf_count)]
    nodes = _glacier_tree_nodes(leaves)
    for first in range(leaf_count):
        for last in range(first, leaf_count):
            start, end = first * MIB, min((last + 1) * MIB, size) - 1
            root = v.tree_hash_from_leaves(leaves[first : last + 1])
            assert v.is_tree_hash_node(start, end, size) == (root in nodes), (first, last)
            assert v.is_tree_hash_aligned(start, end, size)


def test_combining_aligned_ranges_gives_the_archives_tree_hash() -> None:
    size = 7 * MIB + 300_000
    data = data_of(size, seed=5)
    whole = botocore_tree_hash(data)

    def ranges(bounds: list[int]) -> list[RangeTreeHash]:
        return [RangeTreeHash(a, b - a, v.tree_hash(data[a:b])) for a, b in itertools.pairwise(bounds)]

    assert v.combine_tree_hashes(ranges([0, 2 * MIB, 4 * MIB, 6 * MIB, size]), size) == whole
    assert v.combine_tree_hashes(ranges([0, 4 * MIB, 6 * MIB, 7 * MIB, size]), size) == whole
    assert v.combine_tree_hashes(ranges([0, MIB, 2 * MIB, 4 * MIB, size]), size) == whole
    assert v.combine_tree_hashes(ranges([0, size]), size) == whole
    with pytest.raises(VaultError, match="not a node"):
        v.combine_tree_hashes(ranges([0, MIB, 3 * MIB, 4 * MIB, size]), size)
    with pytest.raises(VaultError, match="does not follow"):
        v.combine_tree_hashes(ranges([0, 2 * MIB])[:1] + ranges([4 * MIB, size]), size)
    with pytest.raises(VaultError, match="the rest is missing"):
        v.combine_tree_hashes(ranges([0, 4 * MIB]), size)
    with pytest.raises(VaultError, match="64 hex"):
        v.combine_tree_hashes([RangeTreeHash(0, size, "nope")], size)
    assert v.combine_tree_hashes([], 0) == v.EMPTY_TREE_HASH


@FAST
@given(leaf_count=st.integers(1, 40), short_last=st.booleans(), seed=st.integers(0, 1000), data=st.data())
def test_any_cover_by_tree_nodes_combines_to_the_whole(leaf_count: int, short_last: bool, seed: int, data: st.DataObject) -> None:
    size = leaf_count * MIB - (MIB // 2 if short_last else 0)
    rng = random.Random(seed)
    leaves = [rng.randbytes(32) for _ in range(leaf_count)]
    parts, first = [], 0
    while first < leaf_count:
        choices = [
            k
            for k in range(7)
            if first % (1 << k) == 0 and (first + (1 << k) <= leaf_count or k == 0 or first + (1 << (k - 1)) < leaf_count)
        ]
        k = data.draw(st.sampled_from(choices))
        last = min(first + (1 << k), leaf_count)
        start, end = first * MIB, min(last * MIB, size)
        parts.append(RangeTreeHash(start, end - start, v.tree_hash_from_leaves(leaves[first:last]).hex()))
        first = last
    assert v.combine_tree_hashes(iter(parts), size) == v.tree_hash_from_leaves(leaves).hex()


def test_check_tree_hash_says_what_went_wrong() -> None:
    v.check_tree_hash("part 1", "AB" * 32, "ab" * 32)
    with pytest.raises(TreeHashMismatch, match="damaged or incomplete"):
        v.check_tree_hash("part 1", "ab" * 32, "cd" * 32)
    with pytest.raises(TreeHashMismatch, match="no tree hash"):
        v.check_tree_hash("part 2", "ab" * 32, None)


# ---- transfer plans -----------------------------------------------------------------------------


def aws_calculate_chunk_size(total_size: int) -> int:
    """The rule of AWS's solution (chunking/chunk_generator.calculate_chunk_size), as an oracle."""
    minimum = total_size // 10000 + 1
    chunk = 1024 * 2**20
    while chunk < minimum:
        chunk *= 2
    return chunk


@pytest.mark.parametrize(
    "size", [1, 5 * MIB, GIB, GIB + 1, 9_999 * GIB, 10_000 * GIB - 1, 10_000 * GIB, 10_000 * GIB + 1, 5 * TIB, 4 * TIB]
)
def test_part_size_is_aws_rule(size: int) -> None:
    assert v.part_size_for(size) == aws_calculate_chunk_size(size)


def test_part_size_for_the_largest_objects() -> None:
    assert v.part_size_for(10_000 * GIB) == 2 * GIB  # AWS's "+ 1": exactly 10,000 GiB takes 2 GiB parts
    assert v.part_size_for(5 * TIB) == GIB  # 5,120 parts
    assert v.part_size_for(100 * GIB, min_part_size=8 * MIB) == 16 * MIB  # 6,400 parts
    for bad in (5 * MIB, 3 * MIB, 12 * MIB, 8 * GIB, 8 * MIB + 1, 0, True):
        with pytest.raises(VaultError, match="min_part_size"):
            v.part_size_for(GIB, min_part_size=bad)  # type: ignore[arg-type]


@FAST
@given(size=st.integers(0, 5 * TIB), min_part=st.sampled_from([8 * MIB, 64 * MIB, 256 * MIB, GIB, 4 * GIB]))
def test_every_plan_keeps_s3s_limits_and_tree_hash_alignment(size: int, min_part: int) -> None:
    plan = v.plan_archive(size, min_part_size=min_part)
    (obj,) = plan.objects
    assert obj.part_count <= v.S3_MAX_PARTS
    assert obj.part_size >= min_part and (obj.part_size // MIB) & (obj.part_size // MIB - 1) == 0
    assert obj.part_size <= v.S3_MAX_PART_BYTES
    if size:
        last = obj.part(obj.part_count)
        assert last.end == size - 1
        for part in (obj.part(1), last, obj.part((obj.part_count + 1) // 2)):
            assert v.is_tree_hash_aligned(part.start, part.end, size)
            assert v.is_tree_hash_node(part.start, part.end, size)
            assert part.length >= v.S3_MIN_PART_BYTES or part.number == obj.part_count
        assert obj.part_number_at(size - 1) == obj.part_count
    else:
        assert obj.part_count == 0


def test_parts_cover_the_archive_in_order_and_resume_from_any_number() -> None:
    plan = v.plan_archive(3 * GIB + 5).objects[0]
    parts = list(plan.parts())
    assert [p.number for p in parts] == [1, 2, 3, 4]
    assert [(p.start, p.length) for p in parts] == [(0, GIB), (GIB, GIB), (2 * GIB, GIB), (3 * GIB, 5)]
    assert parts[1].output_range == f"bytes={GIB}-{2 * GIB - 1}"
    assert parts[3].archive_range == f"{3 * GIB}-{3 * GIB + 4}"
    assert list(plan.parts(first=3)) == parts[2:]
    assert plan.part(2) == parts[1]
    assert plan.retrieval_range is None
    for bad in (0, 5, True):
        with pytest.raises(VaultError, match="numbered 1 to 4"):
            plan.part(bad)  # type: ignore[arg-type]
    with pytest.raises(VaultError):
        plan.part_number_at(3 * GIB + 5)


def test_archives_over_five_tib_are_refused_unless_split() -> None:
    assert len(v.plan_archive(v.S3_MAX_OBJECT_BYTES).objects) == 1
    with pytest.raises(ArchiveTooLarge, match=r"over S3's object limit of 5 TiB.*ask for a split"):
        v.plan_archive(v.S3_MAX_OBJECT_BYTES + 1)
    assert v.too_large_reason(5 * TIB) is None
    assert "5 TiB" in (v.too_large_reason(5 * TIB + 1) or "")
    with pytest.raises(VaultError, match="40 TiB"):
        v.plan_archive(40 * TIB + 1, split=True)
    with pytest.raises(VaultError, match="number of bytes"):
        v.plan_archive(-1)


def test_a_split_plan_makes_objects_of_four_tib_each_tree_hash_aligned() -> None:
    size = 40 * TIB
    plan = v.plan_archive(size, split=True)
    assert plan.split and len(plan.objects) == 10
    assert all(o.size == 4 * TIB and o.part_size == GIB and o.part_count == 4096 for o in plan.objects)
    plan = v.plan_archive(9 * TIB + 3, split=True)
    assert [(o.start, o.size) for o in plan.objects] == [(0, 4 * TIB), (4 * TIB, 4 * TIB), (8 * TIB, TIB + 3)]
    for obj in plan.objects:
        end = obj.start + obj.size - 1
        assert obj.size <= v.S3_MAX_OBJECT_BYTES
        assert v.is_tree_hash_node(obj.start, end, plan.archive_size)
        assert obj.retrieval_range == f"{obj.start}-{end}"
        assert v.is_tree_hash_aligned(obj.start, end, plan.archive_size)  # InitiateJob's megabyte rule
        first = obj.part(1)
        assert first.start == obj.start and first.output_start == 0  # GetJobOutput ranges are relative
    assert plan.object_key("photos/big.tar", 1) == "photos/big.tar.part-002-of-003"
    assert len(plan.object_key("x" * 1024, 2).encode()) == 1024
    with pytest.raises(VaultError):
        plan.object_key("k", 3)
    assert v.plan_archive(4 * TIB, split=True).objects[0].count == 1  # nothing to split


def test_a_transfer_verifies_each_part_then_the_whole_without_reading_again(monkeypatch: pytest.MonkeyPatch) -> None:
    # The real sizes (1 GiB parts, 4 TiB objects) scaled down: 8 MiB parts, 16 MiB objects.
    monkeypatch.setattr(v, "SPLIT_OBJECT_BYTES", 16 * MIB)
    monkeypatch.setattr(v, "S3_MAX_OBJECT_BYTES", 20 * MIB)
    size = 37 * MIB + 12_345
    data = data_of(size, seed=9)
    leaves = v.leaf_hashes(data)
    plan = v.plan_archive(size, split=True, min_part_size=8 * MIB)
    assert [o.size for o in plan.objects] == [16 * MIB, 16 * MIB, 5 * MIB + 12_345]
    object_hashes = []
    for obj in plan.objects:
        part_hashes = []
        for part in obj.parts():
            hasher = TreeHasher()
            hasher.update(data[part.start : part.end + 1])
            header = v.range_tree_hash(leaves, part.start, part.end, size)  # what Glacier would send
            v.check_tree_hash(f"part {part.number}", hasher.hexdigest(), header)
            part_hashes.append(hasher.hexdigest())
        object_hashes.append(obj.object_tree_hash(part_hashes))
        assert object_hashes[-1] == botocore_tree_hash(data[obj.start : obj.start + obj.size])
    assert plan.archive_tree_hash(object_hashes) == botocore_tree_hash(data)
    with pytest.raises(VaultError, match="all 3 objects"):
        plan.archive_tree_hash(object_hashes[:2])


def test_an_empty_archive_needs_no_retrieval() -> None:
    plan = v.plan_archive(0)
    assert plan.objects[0].part_count == 0 and list(plan.objects[0].parts()) == []
    assert plan.objects[0].object_tree_hash([]) == v.EMPTY_TREE_HASH


# ---- keys from descriptions ---------------------------------------------------------------------


def key(description: str, archive_id: str = "AAAQQQ", **rules: object) -> v.ArchiveKey:
    return v.archive_key(archive_id, description, KeyRules(**rules))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("description", "expected", "source"),
    [
        # test_quoted_fastglacier_v1_format / test_unquoted_fastglacier_v1_format
        (
            '"<ArchiveMetadata>           <Path>       UkVOREVSRkFSTTUvQjovb25lL3R3by90aHJlZS9jaDAxX3NlcTAwNF9zaDAwMTAuMjA0NC5kcHg=   </Path></ArchiveMetadata>"',
            "RENDERFARM5/B:/one/two/three/ch01_seq004_sh0010.2044.dpx",
            NameSource.ARCHIVE_METADATA,
        ),
        (
            "<ArchiveMetadata>           <Path>       UkVOREVSRkFSTTUvQjovb25lL3R3by90aHJlZS9jaDAxX3NlcTAwNF9zaDAwMTAuMjA0NC5kcHg=   </Path></ArchiveMetadata>",
            "RENDERFARM5/B:/one/two/three/ch01_seq004_sh0010.2044.dpx",
            NameSource.ARCHIVE_METADATA,
        ),
        # test_fastglacier_v2_v3_v4_format
        (
            "           <m><v>4</v><p>RlgxNTAvQ0JCX2ZpZ3VyZS9lZTRjM2MxOS00OTBkLTQwN2UtOGJlNy04ODliZTQxYjQ4YmIuY2Ji </p><lm>20190121T085242Z       </lm>        </m>",
            "FX150/CBB_figure/ee4c3c19-490d-407e-8be7-889be41b48bb.cbb",
            NameSource.FASTGLACIER,
        ),
        # test_fastglacier_v2_v3_v4_format_utf8
        (
            "           <m><v>4</v><p>RlgxNTAvQ0JCX2ZpZ3VyZS90ZXN0X3B5dGjDtm5fZmlsZS5jYmI=</p><lm>20190121T085242Z       </lm>        </m>",
            "FX150/CBB_figure/test_pythön_file.cbb",
            NameSource.FASTGLACIER,
        ),
        # test_cloudberry_json_format (both spellings of Path)
        (
            '{"Path":"CB+F8-M5/B:/c01/q004/s0010/c01+AF8-s00+A8-s0010+F8/h01.1094.dpx","UTCDateModified":"20100310T110623Z"}',
            "CB+F8-M5/B:/c01/q004/s0010/c01+AF8-s00+A8-s0010+F8/h01.1094.dpx",
            NameSource.JSON,
        ),
        (
            '{"path":"CB+F8-M5/B:/c01/q004/s0010/c01+AF8-s00+A8-s0010+F8/h01.1094.dpx","UTCDateModified":"20100310T110623Z"}',
            "CB+F8-M5/B:/c01/q004/s0010/c01+AF8-s00+A8-s0010+F8/h01.1094.dpx",
            NameSource.JSON,
        ),
        # test_empty_file_name_from_json / test_empty_archive_description
        ('{"Path":"   ","UTCDateModified":"20100310T110623Z"}', "00undefined/AAAQQQ", NameSource.UNDEFINED),
        ('{"path":"   ","UTCDateModified":"20100310T110623Z"}', "00undefined/AAAQQQ", NameSource.UNDEFINED),
        ("             ", "00undefined/AAAQQQ", NameSource.UNDEFINED),
        # test_backward_slashes_as_forward (the test's Python literal "aaa\\\\bbb" is aaa\\bbb)
        ("aaa\\\\bbb\\\\ccc", "aaa/bbb/ccc", NameSource.DESCRIPTION),
        # test_parse_description_df: a plain description names the archive
        ("archive_description_0", "archive_description_0", NameSource.DESCRIPTION),
        # FastGlacier's published example, as its site prints it (several lines)
        (
            "<m>\n  <v>4</v>\n  <p>Z2xhY2llci1kZy5wZGY=</p>\n  <lm>20120821T170824Z</lm>\n  <ce>1:1:4340ebcf79712dc5e3ef7d50bab98ba5:54687</ce>\n</m>",
            "glacier-dg.pdf",
            NameSource.FASTGLACIER,
        ),
    ],
)
def test_names_decode_as_in_aws_solutions_tests(description: str, expected: str, source: NameSource) -> None:
    result = key(description)
    assert (result.key, result.source) == (expected, source)


def test_fastglacier_version_is_reported() -> None:
    assert key("<m><v>3</v><p>YS50eHQ=</p></m>").detail == "FastGlacier metadata v3"
    assert key("<m><v>2</v><p>YS50eHQ=</p></m>").key == "a.txt"


@pytest.mark.parametrize(
    ("description", "problem"),
    [
        ("<m><v>4</v><p>not base64!</p></m>", "not base64"),
        ("<m><v>4</v><p>" + base64.b64encode(b"\xff\xfe").decode() + "</p></m>", "UTF-8"),
        ("<m><v>4</v><lm>20120821T170824Z</lm></m>", "no <p>"),
        ("<m><v>4</v><p>YS50eHQ=", "not one <m>"),  # broken XML that claims a path
        ("<m><v>4</v><p>YS50eHQ=</p><x><y>1</y></x></m>", "not well formed"),
        ("backup <m><v>4</v><p>YS50eHQ=</p></m>", "not one <m>"),
        ("<ArchiveMetadata><Path>%%%</Path></ArchiveMetadata>", "not base64"),
        ('{"Path": "a/b", ', "not valid JSON"),  # broken JSON that claims a path
        ('{"Path": 42}', "not a string"),
        ("mt2 !!!", None),
        ("mt2 " + base64.urlsafe_b64encode(b"not json").decode().rstrip("="), "does not decode"),
        ("mt2 " + base64.urlsafe_b64encode(b'{"mtime": "20120101T000000Z"}').decode().rstrip("="), "without a filename"),
    ],
)
def test_undecodable_descriptions_go_to_00error(description: str, problem: str | None) -> None:
    result = key(description)
    if problem is None:  # not mt-aws-glacier's form at all: the description itself
        assert result.source is NameSource.DESCRIPTION
        return
    assert result.key == "00error/AAAQQQ"
    assert result.source is NameSource.ERROR
    assert problem in result.problem


def test_json_forms() -> None:
    assert key('{"metadata": {"path": "nested/one.txt"}}').key == "nested/one.txt"
    assert key('"{\\"Path\\": \\"wrapped/in/a/string.txt\\"}"').key == "wrapped/in/a/string.txt"
    assert key('{\\"Path\\":\\"escaped/quotes.txt\\"}').key == "escaped/quotes.txt"
    # CloudBerry writes Windows paths; JSON escapes their backslashes.
    assert key(json.dumps({"Path": "c:\\myfolder\\myfile.txt", "UTCDateModified": "20100310T110623Z"})).key == "c:/myfolder/myfile.txt"
    # JSON without a path, or broken JSON that names none: the description itself (as AWS's solution).
    assert key('{"name": "x"}').key == '{"name": "x"}'
    assert key("{not json}").key == "{not json}"


def test_mt_aws_glacier_forms() -> None:
    payload = json.dumps({"filename": "dir/ü.txt", "mtime": "20120101T000000Z"}, ensure_ascii=False).encode()
    mt2 = "mt2 " + base64.urlsafe_b64encode(payload).decode().rstrip("=")
    assert (key(mt2).key, key(mt2).source) == ("dir/ü.txt", NameSource.MT_AWS_GLACIER)
    # mt1: the JSON's UTF-8 bytes encoded again as if they were Latin-1 (MetaData.pm's own bug)
    mt1 = "mt1 " + base64.urlsafe_b64encode(payload.decode("latin-1").encode("utf-8")).decode().rstrip("=")
    assert key(mt1).key == "dir/ü.txt"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("/leading/slash.txt", "leading/slash.txt"),
        ("a//b///c.txt", "a/b/c.txt"),
        ("./a/./b/../c.txt", "a/b/c.txt"),
        ("../../etc/passwd", "etc/passwd"),
        ("C:\\Users\\me\\file.txt", "C:/Users/me/file.txt"),
        ("tab\there\nnew\x00line\x7f\x85.txt", "tabherenewline.txt"),
        ("  spaced name.txt  ", "spaced name.txt"),
        ("trailing/", "trailing"),
        ("ok\ud800.txt", "ok.txt"),
    ],
)
def test_names_are_made_safe_for_s3(name: str, expected: str) -> None:
    assert v.clean_name(name) == expected
    assert key(name).key == expected


@pytest.mark.parametrize("name", ["/", "//", ".", "..", "/./../", "\x00\x01", "\\\\"])
def test_names_empty_once_safe_are_undefined(name: str) -> None:
    result = key(name)
    assert (result.key, result.source) == ("00undefined/AAAQQQ", NameSource.UNDEFINED)


def test_long_keys_are_cut_with_a_hash_suffix() -> None:
    long_a, long_b = "dir/" + "a" * 2000 + ".tar.gz", "dir/" + "a" * 1999 + "b.tar.gz"
    key_a, key_b = key(long_a).key, key(long_b).key
    assert len(key_a.encode()) == 1024 and len(key_b.encode()) == 1024
    assert key_a != key_b and key_a.endswith(".gz") and "~" in key_a
    assert key(long_a).key == key_a  # deterministic
    multibyte = key("é" * 1000 + ".jpg", prefix="vault/").key
    assert len(multibyte.encode()) <= 1024 and multibyte.startswith("vault/é") and multibyte.endswith(".jpg")
    assert multibyte.encode().decode("utf-8")  # never cut inside a character


def test_prefix_key_from_and_overrides() -> None:
    assert key("a/b.txt", prefix="/my-vault/").key == "my-vault/a/b.txt"
    assert key("", prefix="v/").key == "v/00undefined/AAAQQQ"
    assert key("<m><p>%%</p></m>", prefix="v/").key == "v/00error/AAAQQQ"
    assert key("a/b.txt", key_from="archive_id").key == "AAAQQQ"
    assert key("a/b.txt", prefix="v/", key_from="archive_id").source is NameSource.ARCHIVE_ID
    overrides = {"AAAQQQ": "\\chosen\\name.txt"}
    for rules in (KeyRules(), KeyRules(key_from="archive_id")):  # type: ignore[arg-type]
        result = v.archive_key("AAAQQQ", "<m><p>%%</p></m>", rules, overrides)
        assert (result.key, result.source) == ("chosen/name.txt", NameSource.OVERRIDE)
    with pytest.raises(VaultError, match="key_from"):
        KeyRules(key_from="name")  # type: ignore[arg-type]
    with pytest.raises(VaultError, match="control"):
        KeyRules(prefix="a\nb/")
    with pytest.raises(VaultError, match="512"):
        KeyRules(prefix="p" * 513)


@FAST
@given(description=st.text(max_size=1300), prefix=st.sampled_from(["", "vault/", "ü/"]))
def test_every_key_is_safe(description: str, prefix: str) -> None:
    result = key(description, archive_id="ID_-1", prefix=prefix)
    raw = result.key.encode("utf-8")
    assert 0 < len(raw) <= 1024
    assert result.key.startswith(prefix)
    assert not result.key.startswith("/") and "//" not in result.key and not result.key.endswith("/")
    assert not v._UNSAFE_CHARS_RE.search(result.key)
    assert not any(segment in (".", "..") for segment in result.key.split("/"))


# ---- naming overrides ---------------------------------------------------------------------------


def test_override_csv_in_aws_solutions_form() -> None:
    # AWS's solution writes this header file for users to fill (archive_naming/override.py).
    assert v.read_name_overrides([b"GlacierArchiveID,FileName\n,"]) == ({}, [])
    text = b'GlacierArchiveID,FileName\r\nid-1,photos/a.jpg\r\n\r\nid_2,"with, comma.txt"\r\n'
    assert v.read_name_overrides([text]) == ({"id-1": "photos/a.jpg", "id_2": "with, comma.txt"}, [])
    assert v.read_name_overrides([b"archive_id,key\nid-1,x\n"])[0] == {"id-1": "x"}


def test_override_csv_bad_rows_are_reported_and_the_first_key_wins() -> None:
    text = b'id-1,first\nid-1,second\nid-1,first\nbad id,x\nid-3,\nid-4,a,b\nid-5,"unterminated\n\xff,x\n'
    overrides, errors = v.read_name_overrides([text])
    assert overrides == {"id-1": "first"}
    messages = {e.line: e.message for e in errors}
    assert "another key" in messages[2]
    assert "not a Glacier archive id" in messages[4]
    assert "key is empty" in messages[5]
    assert "expected 2 columns" in messages[6]
    assert "not valid CSV" in messages[7]
    assert "UTF-8" in messages[8]


# ---- duplicate names ----------------------------------------------------------------------------


def rec(name: str, when: str, archive_id: str) -> NamingRecord:
    return NamingRecord(name, datetime.fromisoformat(when), archive_id)


def names(records: list[NamingRecord]) -> dict[str, str]:
    return {r.archive_id: k for r, k in v.assign_unique_keys(records)}


def test_the_oldest_keeps_the_name_later_ones_get_their_creation_date() -> None:
    records = [
        rec("a.txt", "2021-05-01T10:00:00Z", "id3"),
        rec("a.txt", "2020-01-01T00:00:00.500Z", "id2"),
        rec("a.txt", "2022-12-31T23:59:59Z", "id1"),
        rec("b.txt", "2020-01-01T00:00:00Z", "id4"),
    ]
    assert names(records) == {
        "id2": "a.txt",
        "id3": "a.txt.20210501T100000Z",
        "id1": "a.txt.20221231T235959Z",
        "id4": "b.txt",
    }


def test_one_creation_time_is_broken_by_archive_id_then_a_counter() -> None:
    # AWS's changelog (1.1.0): "duplicate archive names when there are identical archive names
    # with the same creation time"; its test_remove_duplicates_same_creation_date_df.
    when = "2023-08-15T13:28:00Z"
    records = [rec("duplication.txt", when, f"archive_id_{i}") for i in (2, 0, 1)]
    assert names(records) == {
        "archive_id_0": "duplication.txt",
        "archive_id_1": "duplication.txt.20230815T132800Z",
        "archive_id_2": "duplication.txt.20230815T132800Z.2",
    }


def test_a_suffixed_name_never_takes_another_archives_own_name() -> None:
    records = [
        rec("a.txt", "2019-01-01T00:00:00Z", "old"),
        rec("a.txt", "2020-01-01T00:00:00Z", "new"),
        rec("a.txt.20200101T000000Z", "2024-01-01T00:00:00Z", "literal"),
        rec("a.txt.20200101T000000Z.2", "2024-01-01T00:00:00Z", "literal2"),
    ]
    assert names(records) == {
        "old": "a.txt",
        "new": "a.txt.20200101T000000Z.3",
        "literal": "a.txt.20200101T000000Z",
        "literal2": "a.txt.20200101T000000Z.2",
    }


def test_suffixed_long_names_stay_within_1024_bytes() -> None:
    long_name = "d/" + "x" * 1022
    named = names([rec(long_name, "2020-01-01T00:00:00Z", "a"), rec(long_name, "2021-01-01T00:00:00Z", "b")])
    assert named["a"] == long_name and len(named["b"].encode()) <= 1024
    assert named["b"].endswith(".20210101T000000Z")


_NAME_POOL = ["a", "a.20200101T000000Z", "a.20200101T000000Z.2", "b", "a.20200101T000000Z.20200101T000000Z", "dir/a"]


@FAST
@given(
    st.lists(
        st.tuples(st.sampled_from(_NAME_POOL), st.sampled_from(["2020-01-01T00:00:00Z", "2020-01-01T00:00:00.3Z", "2021-02-03T04:05:06Z"])),
        min_size=1,
        max_size=30,
    ),
    st.randoms(use_true_random=False),
)
def test_naming_is_unique_and_order_independent(entries: list[tuple[str, str]], rnd: random.Random) -> None:
    records = [rec(name, when, f"id{i:03d}") for i, (name, when) in enumerate(entries)]
    first = names(records)
    shuffled = records[:]
    rnd.shuffle(shuffled)
    assert names(shuffled) == first
    assert len(set(first.values())) == len(records)  # nothing overwrites anything
    for record in records:  # the oldest of each name keeps it
        oldest = min((r for r in records if r.key == record.key), key=lambda r: r.order)
        assert first[oldest.archive_id] == record.key


@FAST
@given(st.lists(st.tuples(st.text(max_size=5), st.datetimes(timezones=st.just(UTC)), st.text(max_size=3)), max_size=20))
def test_sort_key_sorts_like_order(items: list[tuple[str, datetime, str]]) -> None:
    records = [NamingRecord(v.clean_name(k), d, a) for k, d, a in items]
    assert sorted(records, key=lambda r: r.order) == sorted(records, key=lambda r: r.sort_key.encode("utf-8", "surrogatepass"))


def test_streaming_naming_holds_one_group_at_a_time() -> None:
    consumed = 0

    def sorted_records() -> Iterator[NamingRecord]:
        nonlocal consumed
        for i in range(1_000_000):
            consumed += 1
            yield rec(f"name-{i // 3:07d}", f"2020-01-01T00:00:0{i % 3}Z", f"id{i}")

    first = list(itertools.islice(v.iter_unique_keys(sorted_records()), 6))
    assert [k for _, k in first] == ["name-0000000", "name-0000000.20200101T000001Z", "name-0000000.20200101T000002Z"] * 1 + [
        "name-0000001",
        "name-0000001.20200101T000001Z",
        "name-0000001.20200101T000002Z",
    ]
    assert consumed <= 7  # lazily: the next group's first record tells a group is complete
    with pytest.raises(VaultError, match="out of order"):
        list(v.iter_unique_keys([rec("b", "2020-01-01T00:00:00Z", "1"), rec("a", "2020-01-01T00:00:00Z", "2")]))
    with pytest.raises(VaultError, match="different keys"):
        v.name_group([rec("a", "2020-01-01T00:00:00Z", "1"), rec("b", "2020-01-01T00:00:00Z", "2")])


def test_reserved_keys_are_only_those_that_look_deduplicated() -> None:
    assert v.looks_like_dedup_key("a.txt.20200101T000000Z")
    assert v.looks_like_dedup_key("a.txt.20200101T000000Z.12")
    assert not v.looks_like_dedup_key("a.20200101T000000Z.txt")
    assert not v.looks_like_dedup_key("a.txt")


# ---- inventories: JSON --------------------------------------------------------------------------


def archive_json(i: int, description: str = "", size: int | None = None, created: str = "2012-05-15T17:19:46.700Z") -> dict[str, object]:
    return {
        "ArchiveId": f"id{i:06d}" + "x" * 130,
        "ArchiveDescription": description or f"file {i}.bin",
        "CreationDate": created,
        "Size": i * 1000 if size is None else size,
        "SHA256TreeHash": HASH,
    }


def document(entries: list[object], before: bool = True) -> bytes:
    head = {"VaultARN": "arn:aws:glacier:us-east-1:012345678901:vaults/examplevault", "InventoryDate": "2024-06-01T10:00:00Z"}
    doc = {**head, "ArchiveList": entries} if before else {"ArchiveList": entries, **head}
    return json.dumps(doc, ensure_ascii=False).encode("utf-8")


def read_json(data: bytes, block: int = 1 << 16, start: VaultInventoryCursor | None = None) -> list[v.VaultInventoryItem]:
    offset = start.offset if start else 0
    return list(v.iter_json_inventory((data[i : i + block] for i in range(offset, len(data), block)), start))


def test_the_fixture_inventory_reads_whole() -> None:
    data = (FIXTURES / "inventory.json").read_bytes()
    reader = v.JsonInventoryReader([data])
    items = list(reader)
    assert reader.vault_arn == "arn:aws:glacier:us-east-1:012345678901:vaults/examplevault"
    assert reader.inventory_date == "2024-06-01T10:00:00Z"
    archives = [i.result for i in items]
    assert all(isinstance(a, VaultArchive) for a in archives)
    keys = [v.archive_key_for(a, KeyRules(prefix="vault/")).key for a in archives if isinstance(a, VaultArchive)]
    assert keys == [
        "vault/FX150/CBB_figure/ee4c3c19-490d-407e-8be7-889be41b48bb.cbb",
        "vault/FX150/CBB_figure/test_pythön_file.cbb",
        "vault/RENDERFARM5/B:/one/two/three/ch01_seq004_sh0010.2044.dpx",
        "vault/CB+F8-M5/B:/c01/q004/s0010/c01+AF8-s00+A8-s0010+F8/h01.1094.dpx",
        f"vault/00undefined/{archives[4].archive_id}",  # type: ignore[union-attr]
        'vault/say "hi", then C:/dir',
    ]
    assert archives[0].created_at == datetime(2019, 1, 21, 8, 52, 42, tzinfo=UTC)  # type: ignore[union-attr]


@FAST
@given(cuts=st.lists(st.integers(1, 400), min_size=1, max_size=8), pretty=st.booleans(), before=st.booleans())
def test_json_reads_the_same_whatever_the_blocks(cuts: list[int], pretty: bool, before: bool) -> None:
    entries: list[object] = [
        archive_json(i, description) for i, description in enumerate(["plain", "ünïcödé ✓", 'emoji 🙂 \\ " /', "x" * 1024])
    ]
    data = document(entries, before)
    if pretty:
        data = json.dumps(json.loads(data), indent=2, ensure_ascii=bool(cuts[0] % 2)).encode()

    def blocks() -> Iterator[bytes]:
        pos, turn = 0, 0
        while pos < len(data):
            yield data[pos : pos + cuts[turn % len(cuts)]]
            pos += cuts[turn % len(cuts)]
            turn += 1

    reader = v.JsonInventoryReader(blocks())
    got = [i.result for i in reader]
    assert [a.description for a in got if isinstance(a, VaultArchive)] == ["plain", "ünïcödé ✓", 'emoji 🙂 \\ " /', "x" * 1024]
    assert reader.vault_arn is not None and reader.vault_arn.endswith("examplevault")


def test_json_resumes_from_every_cursor() -> None:
    entries: list[object] = [archive_json(i, "ü" * (i % 3)) for i in range(25)]
    entries[7] = {"ArchiveId": "", "Size": 1}
    data = b"\xef\xbb\xbf" + document(entries)
    items = read_json(data, block=37)
    assert len(items) == 25 and isinstance(items[7].result, VaultRowError)
    for n, item in enumerate(items):
        rest = read_json(data, block=53, start=item.next_cursor)
        assert [r.result for r in rest] == [i.result for i in items[n + 1 :]]
        assert [r.next_cursor for r in rest] == [i.next_cursor for i in items[n + 1 :]]


def test_json_bad_entries_are_per_row_errors_and_the_stream_goes_on() -> None:
    good = json.dumps(archive_json(1))
    broken = [
        ('{"ArchiveId": "x", "Size": 12abc, "CreationDate": "2012-01-01T00:00:00Z"}', "not valid JSON"),
        (json.dumps({**archive_json(2), "Size": "abc"}), "Size 'abc'"),
        (json.dumps({**archive_json(3), "Size": -1}), "Size '-1'"),
        (json.dumps({**archive_json(4), "Size": 1.5}), "Size '1.5'"),
        (json.dumps({**archive_json(5), "CreationDate": "yesterday"}), "not an ISO 8601 time"),
        (json.dumps({**archive_json(6), "SHA256TreeHash": "abc"}), "64 hex digits"),
        (json.dumps({**archive_json(7), "ArchiveId": "has space"}), "not a Glacier archive id"),
        (json.dumps({k: val for k, val in archive_json(8).items() if k != "CreationDate"}), "CreationDate is missing"),
        ("42", "not int"),
        (json.dumps({**archive_json(9), "ArchiveDescription": "d" * 70_000}), "not valid JSON"),
    ]
    body = ",".join([good] + [b for b, _ in broken] + [good])
    data = ('{"VaultARN":"arn","ArchiveList":[' + body + "]}").encode()
    items = read_json(data, block=1000)
    assert isinstance(items[0].result, VaultArchive) and isinstance(items[-1].result, VaultArchive)
    assert len(items) == len(broken) + 2
    for item, (_, message) in zip(items[1:-1], broken, strict=True):
        assert isinstance(item.result, VaultRowError), item
        assert message in item.result.message and "no archive can be moved" in item.result.message
    assert [i.result.index for i in items] == list(range(len(items)))


def test_json_missing_comma_and_description_with_braces() -> None:
    one, two = json.dumps(archive_json(1, "has }, { inside")), json.dumps(archive_json(2))
    data = ('{"ArchiveList":[' + one + " " + two + "," + two + "]}").encode()
    results = [i.result for i in read_json(data, block=7)]
    assert isinstance(results[0], VaultArchive) and results[0].description == "has }, { inside"
    assert isinstance(results[1], VaultRowError) and "expected ','" in results[1].message
    assert isinstance(results[-1], VaultArchive)


def test_json_document_level_problems() -> None:
    assert read_json(document([])) == []  # an empty vault (AWS's changelog: "Glue job failures ... when empty vault")
    data = document([archive_json(i) for i in range(5)])
    cut = data[: data.index(b'"id000003') + 20]
    got: list[v.VaultInventoryItem] = []
    with pytest.raises(VaultInventoryError, match="truncated"):
        for item in v.iter_json_inventory([cut]):
            got.append(item)
    assert len(got) == 3  # every complete entry first, and the cut one is no "bad row" to skip
    assert got[-1].next_cursor.index == 3
    with pytest.raises(VaultInventoryError, match="truncated"):
        list(v.iter_json_inventory([data[:-1]]))  # cut after the list, before the object's end
    for bad, message in [
        (b"", "empty"),
        (b"[1,2]", "not a JSON inventory"),
        (b'{"VaultARN": "x"}', "no ArchiveList"),
        (b'{"ArchiveList": 5}', "not a list"),
        (b'{"ArchiveList": []} trailing', "text follows"),
        (b'{"ArchiveList": [], "ArchiveList": []}', "twice"),
        (b'{"VaultARN" "x"}', "expected ':'"),
        (b'{"VaultARN": "x" "y"}', "expected ','"),
        (b'{"VaultARN": "\xff", "ArchiveList": []}', "not UTF-8"),
    ]:
        with pytest.raises(VaultInventoryError, match=message):
            list(v.iter_json_inventory([bad]))
    with pytest.raises(VaultError, match="starts at byte 0"):
        v.JsonInventoryReader([b""], VaultInventoryCursor(5, 0))


def test_json_header_fields_after_the_list_and_numbers_cut_between_blocks() -> None:
    data = b'{"ArchiveList": [], "Extra": 1234, "VaultARN": "arn:x"}'
    cut = data.index(b"34")
    reader = v.JsonInventoryReader([data[:cut], data[cut:]])
    assert list(reader) == []
    assert reader.other_fields == {"Extra": 1234} and reader.vault_arn == "arn:x"


# ---- inventories: CSV ---------------------------------------------------------------------------


def glacier_csv_field(description: str) -> str:
    """As Glacier writes a description: quoted when needed, a quote as \\", backslashes as they are."""
    if any(c in description for c in ',"') or description != description.strip():
        return '"' + description.replace('"', '\\"') + '"'
    return description


def csv_row(i: int, description: str, size: int = 1, created: str = "2012-05-15T17:19:46.700Z") -> str:
    return f"id{i:06d},{glacier_csv_field(description)},{created},{size},{HASH}\n"


def read_csv(data: bytes, block: int = 1 << 16, start: VaultInventoryCursor | None = None) -> list[v.VaultInventoryItem]:
    offset = start.offset if start else 0
    return list(v.iter_csv_inventory((data[i : i + block] for i in range(offset, len(data), block)), start))


def test_the_fixture_csv_matches_the_fixture_json() -> None:
    from_csv = [i.result for i in read_csv((FIXTURES / "inventory.csv").read_bytes(), block=100)]
    from_json = [i.result for i in read_json((FIXTURES / "inventory.json").read_bytes())]
    assert [(a.archive_id, a.description, a.size, a.created_at) for a in from_csv] == [  # type: ignore[union-attr]
        (a.archive_id, a.description, a.size, a.created_at)
        for a in from_json  # type: ignore[union-attr]
    ]


def test_csv_as_aws_solutions_mock_writes_it() -> None:
    # test_mock_glacier_apis.py: the CSV inventory its mock vault serves (CRLF lines).
    data = (
        b"ArchiveId,ArchiveDescription,CreationDate,Size,SHA256TreeHash\r\n"
        b"cf2e306ff9a72790b152fb4af93a1a1d,test.txt,2023-05-09T15:52:27.757Z,8,"
        b"b9f9644670e5fcd37a4c54a478d636fc37c41282d161e3e50cb3fb962aa04285\r\n"
    )
    (item,) = read_csv(data)
    assert isinstance(item.result, VaultArchive)
    assert (item.result.archive_id, item.result.description, item.result.size) == ("cf2e306ff9a72790b152fb4af93a1a1d", "test.txt", 8)
    assert item.next_cursor == VaultInventoryCursor(len(data), 1)


@FAST
@given(st.lists(st.text(alphabet=st.sampled_from("ab ,\"\\'/é{}<>"), max_size=12), min_size=1, max_size=8), st.integers(1, 64))
def test_csv_descriptions_round_trip_whatever_quotes_and_backslashes(descriptions: list[str], block: int) -> None:
    data = (
        "\ufeffArchiveId,ArchiveDescription,CreationDate,Size,SHA256TreeHash\n" + "".join(csv_row(i, d) for i, d in enumerate(descriptions))
    ).encode()
    results = [i.result for i in read_csv(data, block)]
    assert [r.description for r in results if isinstance(r, VaultArchive)] == descriptions


def test_csv_quoted_fields_and_a_trailing_backslash() -> None:
    data = (
        "ArchiveId,ArchiveDescription,CreationDate,Size,SHA256TreeHash\n"
        f'"id1","ends with backslash\\","2012-01-01T00:00:00Z","10","{HASH}"\n'
        f'id2,"a \\"quoted\\" word, and a comma",2012-01-01T00:00:00Z,11,{HASH.upper()}\n'
        f"id3,,2012-01-01T00:00:00Z,0,{HASH}\n"
    ).encode()
    a, b, c = (i.result for i in read_csv(data))
    assert isinstance(a, VaultArchive) and a.description == "ends with backslash\\" and a.size == 10
    assert isinstance(b, VaultArchive) and b.description == 'a "quoted" word, and a comma' and b.tree_hash == HASH
    assert isinstance(c, VaultArchive) and c.description == ""


def test_csv_bad_rows_are_per_row_errors_and_the_stream_goes_on() -> None:
    rows = [
        csv_row(1, "good"),
        "id2,only,three\n",
        csv_row(3, "bad size", size=-5),
        csv_row(4, "bad date", created="not a date"),
        "id5,bad hash,2012-01-01T00:00:00Z,1,xyz\n",
        "bad id!,x,2012-01-01T00:00:00Z,1," + HASH + "\n",
        "id7," + "x" * 9000 + ",2012-01-01T00:00:00Z,1," + HASH + "\n",
        "\n",
        csv_row(8, "good again"),
    ]
    items = read_csv(("ArchiveId,ArchiveDescription,CreationDate,Size,SHA256TreeHash\n" + "".join(rows)).encode(), block=333)
    kinds = [type(i.result).__name__ for i in items]
    assert kinds == ["VaultArchive"] + ["VaultRowError"] * 6 + ["VaultArchive"]
    messages = [i.result.message for i in items[1:7]]  # type: ignore[union-attr]
    for message, expected in zip(
        messages, ["expected 5 columns", "Size", "ISO 8601", "64 hex", "archive id", "longer than 8 KiB"], strict=True
    ):
        assert expected in message
    assert [i.result.index for i in items] == list(range(8))


def test_a_csv_cut_inside_its_last_row_is_truncated_not_a_bad_row() -> None:
    data = ("".join(csv_row(i, "x") for i in range(3))).encode()
    with pytest.raises(VaultInventoryError, match=r"entry 2 .* truncated"):
        read_csv(data[:-20], block=17)
    assert len(read_csv(data[:-1])) == 3  # a last row without its line end, but whole, is fine


def test_csv_non_utf8_description_keeps_the_archive_but_not_the_name() -> None:
    data = b"id1,caf\xe9 latin-1,2012-01-01T00:00:00Z,5," + HASH.encode() + b"\n"
    (item,) = read_csv(data)
    assert isinstance(item.result, VaultArchive) and not item.result.description_valid
    result = v.archive_key_for(item.result)
    assert (result.key, result.source) == ("00error/id1", NameSource.ERROR)
    assert v.archive_key_for(item.result, KeyRules(key_from="archive_id")).key == "id1"  # type: ignore[arg-type]


def test_csv_resumes_from_every_cursor_and_checks_its_header() -> None:
    data = ("ArchiveId,ArchiveDescription,CreationDate,Size,SHA256TreeHash\r\n" + "".join(csv_row(i, f"d,{i}") for i in range(12))).encode()
    items = read_csv(data, block=41)
    for n, item in enumerate(items):
        assert [r.result for r in read_csv(data, 29, item.next_cursor)] == [i.result for i in items[n + 1 :]]
    with pytest.raises(VaultInventoryError, match="in that order"):
        read_csv(b"ArchiveId,Size,ArchiveDescription,CreationDate,SHA256TreeHash\n")
    assert [i.result.archive_id for i in read_csv(csv_row(1, "no header").encode())] == ["id000001"]  # type: ignore[union-attr]


def test_the_format_is_sniffed_unless_resuming() -> None:
    json_data = document([archive_json(1)])
    csv_data = b"\xef\xbb\xbf" + csv_row(1, "x").encode()
    assert v.sniff_inventory_format(b"  \n{") is v.InventoryFormat.JSON
    assert len(list(v.iter_vault_inventory([b"", b" ", json_data]))) == 1
    assert len(list(v.iter_vault_inventory([csv_data[:2], csv_data[2:]]))) == 1
    assert len(list(v.iter_vault_inventory([csv_data], "csv"))) == 1
    with pytest.raises(VaultError, match="format"):
        v.iter_vault_inventory([json_data], start=VaultInventoryCursor(10, 1))
    with pytest.raises(VaultError, match="not JSON or CSV"):
        v.iter_vault_inventory([json_data], "xml")


# ---- inventories at scale -----------------------------------------------------------------------


def json_blocks(count: int, batch_size: int = 4096) -> Iterator[bytes]:
    yield b'{"VaultARN":"arn:aws:glacier:us-east-1:012345678901:vaults/big","InventoryDate":"2024-06-01T00:00:00Z","ArchiveList":['
    batch: list[str] = []
    for i in range(count):
        batch.append(
            ("," if i else "")
            + '{"ArchiveId":"%s","ArchiveDescription":"<m><v>4</v><p>ZGlyL2ZpbGUudHh0</p></m>","CreationDate":"2019-01-21T08:52:42.%03dZ","Size":%d,"SHA256TreeHash":"%s"}'
            % ("A%09d" % i * 14, i % 1000, i, HASH)
        )
        if len(batch) == batch_size:
            yield "".join(batch).encode()
            batch = []
    yield "".join(batch).encode() + b"]}"


def csv_blocks(count: int, batch_size: int = 4096) -> Iterator[bytes]:
    yield b"ArchiveId,ArchiveDescription,CreationDate,Size,SHA256TreeHash\n"
    for first in range(0, count, batch_size):
        yield "".join(csv_row(i, f'"{i}", a file') for i in range(first, min(first + batch_size, count))).encode()


@pytest.mark.parametrize("blocks", [json_blocks, csv_blocks])
def test_reading_memory_does_not_grow_with_the_inventory(blocks: object) -> None:
    def peak(count: int) -> int:
        tracemalloc.start()
        try:
            items = v.iter_vault_inventory(blocks(count, batch_size=256))  # type: ignore[operator]
            seen = sum(1 for item in items if isinstance(item.result, VaultArchive))
            assert seen == count
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    small, large = peak(3_000), peak(30_000)
    assert large < small + 256 * 1024, (small, large)


def _rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="needs /proc to read the resident size")
def test_a_million_archive_json_inventory_streams_in_flat_memory() -> None:
    started, samples, count = time.monotonic(), [], 0
    reader = v.JsonInventoryReader(json_blocks(1_000_000))
    for item in reader:
        count += 1
        if count % 100_000 == 0:
            samples.append(_rss())
            assert isinstance(item.result, VaultArchive) and item.result.size == count - 1
    assert count == 1_000_000 and reader.vault_arn is not None
    assert max(samples) - min(samples) < 16 * MIB, samples  # ~250 MB read, nothing kept
    assert time.monotonic() - started < 60


# ---- filters and limits -------------------------------------------------------------------------


def an_archive(size: int = 10, created: str = "2020-06-01T00:00:00Z", index: int = 0) -> VaultArchive:
    result = v._build_archive(index, 0, f"id{index}", "", created, size, HASH, "")
    assert isinstance(result, VaultArchive)
    return result


def test_archive_filter_ranges_and_reasons() -> None:
    when = datetime(2020, 1, 1, tzinfo=UTC)
    f = ArchiveFilter(created_from=when, created_before=when + timedelta(days=366), min_size=10, max_size=100)
    assert f.exclusion(an_archive(10, "2020-01-01T00:00:00Z")) is None
    assert f.exclusion(an_archive(100, "2020-12-31T23:59:59.999Z")) is None
    assert "before 2020-01-01" in (f.exclusion(an_archive(50, "2019-12-31T23:59:59Z")) or "")
    assert "not before" in (f.exclusion(an_archive(50, "2021-01-01T00:00:00Z")) or "")
    assert "fewer than the minimum" in (f.exclusion(an_archive(9)) or "")
    assert "more than the maximum" in (f.exclusion(an_archive(101)) or "")
    for bad in (
        {"created_from": datetime(2020, 1, 1)},
        {"created_from": when, "created_before": when},
        {"min_size": -1},
        {"min_size": 5, "max_size": 4},
    ):
        with pytest.raises(VaultError):
            ArchiveFilter(**bad)  # type: ignore[arg-type]


def test_select_archives_counts_across_invocations() -> None:
    data = (
        "".join(csv_row(i, f"f{i}", size=i) for i in range(6)) + "broken row\n" + "".join(csv_row(i, f"f{i}", size=i) for i in range(6, 12))
    ).encode()
    items = read_csv(data)
    picked = list(v.select_archives(items, ArchiveFilter(min_size=2), max_archives=4))
    assert [s.selected for s in picked] == [False, False, True, True, True, True]
    assert picked[-1].selected_count == 4 and "minimum" in picked[0].reason
    resume = items.index(picked[-1].item) + 1
    rest = list(v.select_archives(items[resume:], ArchiveFilter(min_size=2), max_archives=7, selected_before=4))
    assert not rest[0].selected and "expected 5 columns" in rest[0].reason
    assert [s.selected_count for s in rest if s.selected] == [5, 6, 7]
    assert list(v.select_archives(items, max_archives=0)) == []
    assert sum(s.selected for s in v.select_archives(items)) == 12


def test_daily_allowance_paces_by_utc_day() -> None:
    now = datetime(2024, 3, 10, 22, 30, tzinfo=timezone(timedelta(hours=-5)))  # 03:30 UTC on the 11th
    allowance = v.daily_allowance(100 * TIB, 40 * TIB, now)
    assert allowance.day == date(2024, 3, 11) and allowance.may_start_bytes == 60 * TIB
    assert allowance.next_budget_at == datetime(2024, 3, 12, tzinfo=UTC)
    assert allowance.admits(60 * TIB) and not allowance.admits(60 * TIB + 1)
    after = allowance.after(50 * TIB)
    assert after.may_start_bytes == 10 * TIB and after.started_bytes == 90 * TIB
    assert v.daily_allowance(100, 150, now).may_start_bytes == 0
    fresh = v.daily_allowance(10 * TIB, 0, now)
    assert fresh.admits(20 * TIB)  # larger than a whole day: alone, first thing in a day
    assert not fresh.after(1).admits(20 * TIB)
    with pytest.raises(VaultError, match="time zone"):
        v.daily_allowance(1, 0, datetime(2024, 1, 1))
    with pytest.raises(VaultError, match="more than 0"):
        v.daily_allowance(0, 0, now)


# ---- object metadata ----------------------------------------------------------------------------


def test_metadata_holds_the_archive_and_its_description() -> None:
    archive = an_archive(123)
    archive = VaultArchive(0, "A" * 138, "<m><v>4</v><p>YS50eHQ=</p></m>", "2012-05-15T17:19:46.700Z", archive.created_at, 123, HASH)
    meta = v.object_metadata(archive, vault_arn="arn:aws:glacier:us-east-1:0:vaults/v")
    assert meta.sidecar_key is None
    assert meta.metadata == {
        "glacier-archive-id": "A" * 138,
        "glacier-size": "123",
        "glacier-creation-date": "2012-05-15T17:19:46.700Z",
        "glacier-sha256-tree-hash": HASH,
        "glacier-vault-arn": "arn:aws:glacier:us-east-1:0:vaults/v",
        "glacier-description": "<m><v>4</v><p>YS50eHQ=</p></m>",
    }
    assert v.description_from_metadata({"X-Amz-Meta-" + k: val for k, val in meta.metadata.items()}) == archive.description


@pytest.mark.parametrize("description", ["ünïcödé", " leading space", "tab\tinside", "a" * 1024, "", "\ud83d lone surrogate"])
def test_metadata_encodes_what_headers_cannot_carry_and_stays_within_2_kb(description: str) -> None:
    archive = VaultArchive(0, "A" * 138, description, "2012-05-15T17:19:46.700Z", datetime(2012, 5, 15, tzinfo=UTC), 1, HASH)
    meta = v.object_metadata(archive, vault_arn="arn:aws:glacier:us-east-1:012345678901:vaults/" + "v" * 200)
    assert v.metadata_bytes(meta.metadata) <= 2048
    assert all(val.isascii() and val.isprintable() for val in meta.metadata.values())
    assert v.description_from_metadata(meta.metadata) == description


def test_a_description_too_large_for_metadata_goes_to_a_sidecar() -> None:
    description = "é" * 1024  # 2,048 bytes of UTF-8: base64 alone is over 2 KB
    archive = VaultArchive(0, "B" * 138, description, "2012-05-15T17:19:46.700Z", datetime(2012, 5, 15, tzinfo=UTC), 9, HASH)
    meta = v.object_metadata(archive, key_prefix="vault/")
    assert meta.sidecar_key == "vault/00metadata/" + "B" * 138 + ".json"
    assert meta.metadata["glacier-description-sidecar"] == meta.sidecar_key
    assert meta.metadata["glacier-description-sha256"] == hashlib.sha256(description.encode()).hexdigest()
    assert v.metadata_bytes(meta.metadata) <= 2048
    assert v.description_from_metadata(meta.metadata) is None
    assert json.loads(meta.sidecar_body or b"")["ArchiveDescription"] == description


def test_metadata_of_split_objects_says_which_piece() -> None:
    plan = v.plan_archive(9 * TIB, split=True)
    archive = VaultArchive(0, "C" * 138, "big.tar", "2012-05-15T17:19:46Z", datetime(2012, 5, 15, tzinfo=UTC), 9 * TIB, HASH)
    meta = v.object_metadata(archive, plan=plan.objects[1]).metadata
    assert meta["glacier-split"] == "2/3" and meta["glacier-split-range"] == f"{4 * TIB}-{8 * TIB - 1}"
