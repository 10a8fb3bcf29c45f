"""Moving the archives of an Amazon S3 Glacier vault into Amazon S3: the pure rules.

Pure Python, no AWS SDK. What follows which source:

- **Tree hash** (Glacier developer guide, "Computing Checksums", checksum-calculations): SHA-256
  of each 1 MiB chunk (the last may be shorter), then SHA-256 of each pair of concatenated child
  digests, an odd one out moving up unchanged, until one root is left. Empty input: the SHA-256
  of no bytes, as ``botocore.utils.calculate_tree_hash`` and the AWS SDK for PHP
  (``TreeHash::EMPTY_HASH``) give it. ``TreeHasher`` keeps one partial leaf and O(log n) digests,
  however large the archive (40 TiB is 41,943,040 leaves).
- **Alignment**: two AWS texts define "tree-hash aligned" differently.
  * The API reference, GetJobOutput (the ``x-amz-sha256-tree-hash`` response header, botocore's
    ``checksum``): the header comes when the whole archive is read, or a range that starts and
    ends on a multiple of 1 MB, or starts on one and runs to the archive's end.
    ``is_tree_hash_aligned`` is exactly that. It is also InitiateJob's "megabyte aligned" rule for
    ``RetrievalByteRange`` (JobParameters).
  * The developer guide (checksum-calculations-range): a range is tree-hash aligned only when the
    root of a tree hash built over it is a node of the archive's tree hash. ``is_tree_hash_node``
    is that stricter rule (a power-of-two number of MiB starting at a multiple of itself, or a
    range that ends the archive and starts at a multiple of its length rounded up to a power of
    two).
  Every range the plans below make satisfies both, so the header comes whichever text Glacier
  follows, and the ranges' tree hashes combine into the archive's (``combine_tree_hashes``).
- **Transfer plans**: S3 multipart limits (10,000 parts; parts of 5 MiB to 5 GiB except the last;
  objects of at most 5 TiB) and the part size rule of AWS's own solution
  (aws-solutions/data-transfer-from-amazon-s3-glacier-vaults-to-amazon-s3,
  ``chunking/chunk_generator.calculate_chunk_size``: start at 1 GiB and double while the part is
  not larger than ``size // 10000``). Its Glue job leaves archives over ``5 * 2**40`` bytes in the
  vault ("Filter>5TB"): here they are refused, or split on request into objects of 4 TiB.
- **Keys from descriptions**: AWS's solution (``glue_helper/scripts/archive_naming.py`` and its
  tests), FastGlacier's published metadata format (fastglacier.com/fastglacier-metadata-format:
  ``<m><v>4</v><p>base64(utf8(path))</p><lm>..</lm><ce>..</ce></m>``, versions 2 to 4), and
  mt-aws-glacier's (App::MtAws::MetaData: ``mt2 <base64url(json {filename, mtime})>``, ``mt1``
  the same double-encoded). S3 key limits: the S3 user guide, object-keys (1,024 bytes of UTF-8).
- **Inventories**: the Glacier API reference, GetJobOutput (inventory JSON ``{VaultARN,
  InventoryDate, ArchiveList: [{ArchiveId, ArchiveDescription, CreationDate, Size,
  SHA256TreeHash}]}``; CSV with the same five columns, fields quoted when needed, ``"`` inside a
  field written ``\\"``, backslashes not escaped).
- **Object metadata**: the S3 user guide, UsingMetadata (user-defined metadata of at most 2 KB,
  counted as the UTF-8 bytes of keys and values; values with unprintable characters are not
  returned). AWS's solution writes no object metadata (its records stay in DynamoDB).

Streaming readers follow ``domain/inventory.py``: byte blocks in, one result per row with the
cursor to resume after it, bad rows as per-row errors that never stop the stream.

How an orchestrator uses it: read the inventory with ``iter_vault_inventory`` (checkpoint each
item's ``next_cursor``), choose with ``select_archives`` (checkpoint ``selected_count``), name
with ``archive_key_for`` then ``iter_unique_keys`` over records sorted by ``sort_key`` (or
``assign_unique_keys`` for a vault that fits in memory), pace initiations with
``daily_allowance``, plan each archive with ``plan_archive`` (checkpoint the upload id and, per
part number, the ETag, S3 checksum and tree hash), check every part with ``check_tree_hash``
against GetJobOutput's header, and the whole with ``object_tree_hash`` / ``archive_tree_hash``
against the inventory's SHA256TreeHash before CompleteMultipartUpload, with ``object_metadata``.
"""

from __future__ import annotations

import base64
import binascii
import csv
import hashlib
import json
import re
from collections.abc import Container, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Any

from bulk_restore.domain.manifest import iter_lines

MIB = 1 << 20
GIB = 1 << 30
TIB = 1 << 40
LEAF_BYTES = MIB  # a tree hash leaf

S3_MAX_OBJECT_BYTES = 5 * TIB  # "5 TB"; AWS's solution filters on 5 * 2**40
S3_MAX_PARTS = 10_000
S3_MIN_PART_BYTES = 5 * MIB  # every part but the last
S3_MAX_PART_BYTES = 5 * GIB
S3_MAX_KEY_BYTES = 1024
S3_MAX_USER_METADATA_BYTES = 2 * 1024
GLACIER_MAX_ARCHIVE_BYTES = 40 * TIB  # 10,000 parts of 4 GiB
DEFAULT_MIN_PART_BYTES = GIB  # AWS's solution: chunks of at least 1 GiB
SPLIT_OBJECT_BYTES = 4 * TIB  # the largest power of two MiB within S3's object limit
EMPTY_TREE_HASH = hashlib.sha256(b"").hexdigest()

_HEX64_RE = re.compile(r"[0-9a-fA-F]{64}")
ARCHIVE_ID_RE = re.compile(r"[A-Za-z0-9_\-]{1,1024}")


# ---- errors -------------------------------------------------------------------------------------


class VaultError(ValueError):
    """A rule of moving a vault was broken; the message says what to fix. ``field`` names the input."""

    def __init__(self, message: str, field: str = ""):
        super().__init__(message)
        self.message = message
        self.field = field


class ArchiveTooLarge(VaultError):
    """The archive is larger than one S3 object can be, and no split was asked for."""


class TreeHashMismatch(VaultError):
    """Bytes read from Glacier do not have the tree hash Glacier gives for them."""


class VaultInventoryError(VaultError):
    """The inventory as a whole cannot be read (not JSON, truncated, wrong CSV columns)."""


# ---- tree hash ----------------------------------------------------------------------------------


def _sha256(data: bytes | memoryview) -> bytes:
    return hashlib.sha256(data).digest()


def _push(stack: list[tuple[int, bytes]], level: int, digest: bytes) -> None:
    """Add the next node of ``level`` to a left-to-right tree under construction.

    The stack holds the roots of complete subtrees, largest first, like the bits of a binary
    counter: two roots of one level are siblings in Glacier's tree and become their parent.
    """
    while stack and stack[-1][0] == level:
        _, left = stack.pop()
        digest = _sha256(left + digest)
        level += 1
    stack.append((level, digest))


def _fold(stack: Sequence[tuple[int, bytes]]) -> bytes:
    """The root over what the stack holds: right to left, an odd node out moving up unchanged."""
    root = stack[-1][1]
    for _, left in reversed(stack[:-1]):
        root = _sha256(left + root)
    return root


class TreeHasher:
    """The SHA-256 tree hash of bytes fed in blocks of any size, in constant memory.

    >>> h = TreeHasher(); h.update(b"abc"); h.hexdigest() == hashlib.sha256(b"abc").hexdigest()
    True
    """

    __slots__ = ("_leaf", "_leaf_fill", "_size", "_stack")

    def __init__(self) -> None:
        self._leaf = hashlib.sha256()
        self._leaf_fill = 0
        self._stack: list[tuple[int, bytes]] = []
        self._size = 0

    @property
    def size(self) -> int:
        """Bytes fed so far."""
        return self._size

    def update(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data).cast("B")
        total = len(view)
        self._size += total
        pos = 0
        while pos < total:
            take = min(LEAF_BYTES - self._leaf_fill, total - pos)
            self._leaf.update(view[pos : pos + take])
            self._leaf_fill += take
            pos += take
            if self._leaf_fill == LEAF_BYTES:
                _push(self._stack, 0, self._leaf.digest())
                self._leaf = hashlib.sha256()
                self._leaf_fill = 0

    def digest(self) -> bytes:
        """The tree hash of everything fed so far (feeding may go on afterwards)."""
        if self._size == 0:
            return _sha256(b"")
        stack = list(self._stack)
        if self._leaf_fill:
            stack.append((0, self._leaf.digest()))
        return _fold(stack)

    def hexdigest(self) -> str:
        return self.digest().hex()


def tree_hash(data: bytes | bytearray | memoryview) -> str:
    """The SHA-256 tree hash (hex) of bytes held in memory."""
    hasher = TreeHasher()
    hasher.update(data)
    return hasher.hexdigest()


def leaf_hashes(data: bytes | bytearray | memoryview) -> list[bytes]:
    """The SHA-256 of each 1 MiB leaf of ``data`` (the last may be shorter); none for no bytes."""
    view = memoryview(data).cast("B")
    return [_sha256(view[i : i + LEAF_BYTES]) for i in range(0, len(view), LEAF_BYTES)]


def tree_hash_from_leaves(leaves: Iterable[bytes]) -> bytes:
    """The tree hash over leaf digests given in order; no leaves is the tree hash of no bytes."""
    stack: list[tuple[int, bytes]] = []
    for leaf in leaves:
        if len(leaf) != 32:
            raise VaultError(f"a leaf hash is a 32-byte SHA-256 digest, not {len(leaf)} bytes", "leaves")
        _push(stack, 0, leaf)
    return _fold(stack) if stack else _sha256(b"")


def _check_range(start: int, end: int, archive_size: int) -> None:
    for name, value in (("start", start), ("end", end), ("archive_size", archive_size)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise VaultError(f"{name} must be a number of bytes, not {value!r}", name)
    if not 0 <= start <= end < archive_size:
        raise VaultError(
            f"bytes {start}-{end} are not a range of a {archive_size}-byte archive: "
            "give 0 <= start <= end < archive size (end inclusive, as HTTP ranges write it)",
            "range",
        )


def is_tree_hash_aligned(start: int, end: int, archive_size: int) -> bool:
    """Whether GetJobOutput answers bytes ``start``-``end`` (inclusive) with a tree hash header.

    The Glacier API reference (GetJobOutput, ``x-amz-sha256-tree-hash``): the header comes when
    you get the entire range of the archive; or a range that starts and ends on a multiple of
    1 MB (1 MiB); or a range that starts on a multiple of 1 MB and goes to the end of the
    archive. This is also InitiateJob's "megabyte aligned" rule for ``RetrievalByteRange``.
    ``is_tree_hash_node`` is the developer guide's stricter definition.
    """
    _check_range(start, end, archive_size)
    if start == 0 and end == archive_size - 1:
        return True  # the entire archive
    if start % MIB:
        return False
    return (end + 1) % MIB == 0 or end == archive_size - 1


def is_tree_hash_node(start: int, end: int, archive_size: int) -> bool:
    """Whether the tree hash of bytes ``start``-``end`` (inclusive) is a node of the archive's.

    The developer guide (checksum-calculations-range): "A range [StartByte, EndBytes] is tree-hash
    aligned with respect to an archive if and only if when a new tree hash is built over [StartByte,
    EndBytes], the root of the tree hash of that range is equivalent to a node in the tree hash of
    the whole archive." Such a range holds 2**k whole MiB and starts at a multiple of 2**k MiB, or
    it ends the archive, holding m MiB leaves (the last short) from a multiple of m rounded up to
    a power of two. Only such ranges combine into the archive's tree hash.
    """
    _check_range(start, end, archive_size)
    if start % MIB:
        return False
    length = end - start + 1
    leaves = -(-length // MIB)
    span = 1 << (leaves - 1).bit_length()  # leaves rounded up to a power of two
    if end != archive_size - 1 and (length % MIB or span != leaves):
        return False
    return (start // MIB) % span == 0


def range_tree_hash(leaves: Sequence[bytes], start: int, end: int, archive_size: int) -> str:
    """The tree hash of bytes ``start``-``end`` of an archive, from the archive's leaf hashes.

    The range must be megabyte aligned (``is_tree_hash_aligned``): its leaves are then whole leaves
    of the archive. It is what GetJobOutput's header gives for that range.
    """
    if not is_tree_hash_aligned(start, end, archive_size):
        raise VaultError(
            f"bytes {start}-{end} are not megabyte aligned: a range's tree hash is built from whole "
            "1 MiB leaves, so it must start on a multiple of 1 MiB and end on one or at the archive's end",
            "range",
        )
    expected = -(-archive_size // LEAF_BYTES)
    if len(leaves) != expected:
        raise VaultError(f"a {archive_size}-byte archive has {expected} leaves, {len(leaves)} were given", "leaves")
    return tree_hash_from_leaves(leaves[start // LEAF_BYTES : end // LEAF_BYTES + 1]).hex()


@dataclass(frozen=True, slots=True)
class RangeTreeHash:
    """The tree hash (hex) of ``length`` bytes from byte ``start``."""

    start: int
    length: int
    tree_hash: str

    @property
    def end(self) -> int:
        return self.start + self.length - 1


def combine_tree_hashes(ranges: Iterable[RangeTreeHash], archive_size: int) -> str:
    """The whole archive's tree hash from the tree hashes of consecutive ranges that cover it.

    Each range must be a node of the archive's tree (``is_tree_hash_node``), as every part of a
    ``TransferPlan`` is: then no byte is read again. The ranges come in order from byte 0; memory
    stays O(log n) whatever their number.
    """
    if archive_size == 0:
        if any(True for _ in ranges):
            raise VaultError("an empty archive has no ranges", "ranges")
        return EMPTY_TREE_HASH
    stack: list[tuple[int, bytes]] = []
    expected = 0
    for item in ranges:
        if item.start != expected:
            raise VaultError(
                f"the range from byte {item.start} does not follow the ranges before it, which end at byte "
                f"{expected - 1}: give consecutive ranges from byte 0",
                "ranges",
            )
        if item.length <= 0 or item.end >= archive_size:
            raise VaultError(f"bytes {item.start}-{item.end} are not a range of a {archive_size}-byte archive", "ranges")
        if not is_tree_hash_node(item.start, item.end, archive_size):
            raise VaultError(
                f"bytes {item.start}-{item.end} are not a node of the archive's tree hash (a power-of-two number "
                "of MiB starting at a multiple of itself, or the archive's last such range): their tree hash "
                "cannot be combined",
                "ranges",
            )
        if not isinstance(item.tree_hash, str) or not _HEX64_RE.fullmatch(item.tree_hash):
            raise VaultError(f"the tree hash of bytes {item.start}-{item.end} is not 64 hex digits: {item.tree_hash!r:.80}", "ranges")
        leaves = -(-item.length // LEAF_BYTES)
        _push(stack, (leaves - 1).bit_length(), bytes.fromhex(item.tree_hash))
        expected = item.end + 1
    if expected != archive_size:
        raise VaultError(f"the ranges cover bytes 0-{expected - 1} of {archive_size}: the rest is missing", "ranges")
    return _fold(stack).hex()


def check_tree_hash(what: str, computed: str, expected: str | None) -> None:
    """Raise TreeHashMismatch unless ``computed`` equals ``expected`` (hex, any case)."""
    if expected is None or not expected.strip():
        raise TreeHashMismatch(
            f"{what}: Glacier gave no tree hash to check it against; the range is tree-hash aligned, so "
            "GetJobOutput should have sent x-amz-sha256-tree-hash: read it again",
            "tree_hash",
        )
    if computed.strip().lower() != expected.strip().lower():
        raise TreeHashMismatch(
            f"{what}: the bytes read have tree hash {computed.lower()}, Glacier says {expected.strip().lower()}: "
            "the data is damaged or incomplete; read it again (do not complete the upload)",
            "tree_hash",
        )


# ---- transfer plans -----------------------------------------------------------------------------


def _check_size(size: int, name: str = "archive_size") -> None:
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise VaultError(f"{name} must be a number of bytes (an integer >= 0), not {size!r}", name)


def _check_min_part_size(min_part_size: int) -> None:
    _check_size(min_part_size, "min_part_size")
    if min_part_size % MIB or (min_part_size // MIB) & (min_part_size // MIB - 1) or not 8 * MIB <= min_part_size <= 4 * GIB:
        raise VaultError(
            f"min_part_size {min_part_size} is not a power-of-two number of MiB from 8 MiB to 4 GiB: parts must "
            "be tree-hash aligned (2**k MiB), at least S3's 5 MiB and at most its 5 GiB",
            "min_part_size",
        )


def part_size_for(size: int, min_part_size: int = DEFAULT_MIN_PART_BYTES) -> int:
    """The part size for ``size`` bytes: AWS's rule, from ``min_part_size`` (1 GiB) doubling while a
    part is not larger than ``size // 10000`` (chunk_generator.calculate_chunk_size)."""
    _check_size(size, "size")
    _check_min_part_size(min_part_size)
    needed = size // S3_MAX_PARTS + 1
    part = min_part_size
    while part < needed:
        part *= 2
    if part > S3_MAX_PART_BYTES:
        raise VaultError(f"{size} bytes need parts over S3's 5 GiB limit: the object is too large for one multipart upload", "size")
    return part


@dataclass(frozen=True, slots=True)
class Part:
    """One part of an S3 multipart upload and the archive bytes it holds."""

    number: int  # S3's PartNumber, from 1
    start: int  # first byte, in the archive
    length: int
    output_start: int  # first byte in the retrieval job's output (GetJobOutput Range is relative to it)

    @property
    def end(self) -> int:
        return self.start + self.length - 1

    @property
    def output_range(self) -> str:
        """GetJobOutput's Range header for this part."""
        return f"bytes={self.output_start}-{self.output_start + self.length - 1}"

    @property
    def archive_range(self) -> str:
        """The part's bytes in the archive, as Glacier writes ranges ("start-end")."""
        return f"{self.start}-{self.end}"


@dataclass(frozen=True, slots=True)
class TransferPlan:
    """How the archive bytes ``start`` .. ``start + size - 1`` become one S3 object.

    Parts are computed from their number, so an orchestrator checkpoints part numbers only. Every
    part is tree-hash aligned (both definitions) in the archive and in the job's output.
    """

    archive_size: int
    start: int
    size: int
    part_size: int
    index: int = 0  # which object of the archive
    count: int = 1  # objects the archive becomes

    @property
    def part_count(self) -> int:
        """Parts of the upload; 0 for an empty archive (upload it with PutObject, no retrieval)."""
        return -(-self.size // self.part_size)

    @property
    def retrieval_range(self) -> str | None:
        """InitiateJob's RetrievalByteRange for this object alone: None (the whole archive) unless
        split. (The transfer retrieves a split archive whole, once, and reads each object's parts
        at their archive offsets: one retrieval job and one notice per archive.)"""
        if self.count == 1:
            return None
        return f"{self.start}-{self.start + self.size - 1}"

    def part(self, number: int) -> Part:
        if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= self.part_count:
            raise VaultError(f"part {number!r} is not a part of this plan: parts are numbered 1 to {self.part_count}", "part")
        offset = (number - 1) * self.part_size
        length = min(self.part_size, self.size - offset)
        return Part(number, self.start + offset, length, offset)

    def parts(self, first: int = 1) -> Iterator[Part]:
        """The parts from number ``first`` on (resume after part ``first - 1``)."""
        for number in range(max(first, 1), self.part_count + 1):
            yield self.part(number)

    def part_number_at(self, archive_offset: int) -> int:
        """The part holding byte ``archive_offset`` of the archive."""
        if not self.start <= archive_offset < self.start + self.size:
            raise VaultError(f"byte {archive_offset} is not in this object (bytes {self.start}-{self.start + self.size - 1})", "offset")
        return (archive_offset - self.start) // self.part_size + 1

    def object_tree_hash(self, part_tree_hashes: Iterable[str]) -> str:
        """This object's tree hash from its parts' (in part order), without reading a byte again."""
        ranges = (
            RangeTreeHash((n - 1) * self.part_size, min(self.part_size, self.size - (n - 1) * self.part_size), h)
            for n, h in enumerate(part_tree_hashes, start=1)
        )
        return combine_tree_hashes(ranges, self.size)


@dataclass(frozen=True, slots=True)
class ArchivePlan:
    """The S3 objects an archive becomes: one, or several of 4 TiB when a split was asked for."""

    archive_size: int
    objects: tuple[TransferPlan, ...]

    @property
    def split(self) -> bool:
        return len(self.objects) > 1

    def object_key(self, key: str, index: int) -> str:
        """Object ``index``'s key: ``key`` itself, or ``key.part-002-of-010`` for split archives.
        Concatenated in index order, the objects are the archive."""
        if not 0 <= index < len(self.objects):
            raise VaultError(f"object {index} is not in this plan (0 to {len(self.objects) - 1})", "index")
        if not self.split:
            return key
        suffix = f".part-{index + 1:03d}-of-{len(self.objects):03d}"
        return fit_key(key, S3_MAX_KEY_BYTES - len(suffix)) + suffix

    def archive_tree_hash(self, object_tree_hashes: Sequence[str]) -> str:
        """The archive's tree hash from its objects' (each a node of the archive's tree)."""
        if len(object_tree_hashes) != len(self.objects):
            raise VaultError(f"give the tree hashes of all {len(self.objects)} objects, not {len(object_tree_hashes)}", "objects")
        ranges = (RangeTreeHash(o.start, o.size, h) for o, h in zip(self.objects, object_tree_hashes, strict=True))
        return combine_tree_hashes(ranges, self.archive_size)


def too_large_reason(archive_size: int) -> str | None:
    """Why an archive cannot become one S3 object, or None when it can."""
    if archive_size <= S3_MAX_OBJECT_BYTES:
        return None
    return (
        f"the archive is {archive_size:,} bytes, over S3's object limit of 5 TiB ({S3_MAX_OBJECT_BYTES:,} bytes): "
        'it cannot become one S3 object; ask for a split ("split_large_archives": true: objects of at most 4 TiB, '
        "concatenated in order) or leave it in the vault"
    )


def plan_archive(archive_size: int, *, split: bool = False, min_part_size: int = DEFAULT_MIN_PART_BYTES) -> ArchivePlan:
    """Plan the transfer of an archive of ``archive_size`` bytes.

    One object, parts of ``part_size_for(size)`` (1 GiB for anything up to 10,000 GiB, then
    doubling: AWS's rule). Over 5 TiB: ArchiveTooLarge, unless ``split`` — then objects of 4 TiB
    (the last shorter), each retrieved with its own RetrievalByteRange and each a node of the
    archive's tree, so their tree hashes combine into the archive's.
    """
    _check_size(archive_size)
    if archive_size > GLACIER_MAX_ARCHIVE_BYTES:
        raise VaultError(
            f"{archive_size:,} bytes is more than a Glacier archive can hold (40 TiB): check the inventory's Size", "archive_size"
        )
    reason = too_large_reason(archive_size)
    if reason is None:
        part = part_size_for(archive_size, min_part_size) if archive_size else min_part_size
        return ArchivePlan(archive_size, (TransferPlan(archive_size, 0, archive_size, part),))
    if not split:
        raise ArchiveTooLarge(reason, "archive_size")
    count = -(-archive_size // SPLIT_OBJECT_BYTES)
    objects = []
    for index in range(count):
        start = index * SPLIT_OBJECT_BYTES
        size = min(SPLIT_OBJECT_BYTES, archive_size - start)
        objects.append(TransferPlan(archive_size, start, size, part_size_for(size, min_part_size), index, count))
    return ArchivePlan(archive_size, tuple(objects))


# ---- keys from descriptions ---------------------------------------------------------------------


class NameSource(StrEnum):
    """Where an archive's S3 key came from."""

    OVERRIDE = "override"  # the naming override CSV
    ARCHIVE_ID = "archive_id"  # key_from="archive_id"
    FASTGLACIER = "fastglacier"  # <m><v>..</v><p>base64</p>..</m>
    ARCHIVE_METADATA = "archive_metadata"  # <ArchiveMetadata><Path>base64</Path></ArchiveMetadata>
    JSON = "json"  # {"Path": ...} (CloudBerry and others)
    MT_AWS_GLACIER = "mt-aws-glacier"  # mt1 / mt2 base64url JSON
    DESCRIPTION = "description"  # the description itself
    UNDEFINED = "undefined"  # nothing to name it by: 00undefined/<archive id>
    ERROR = "error"  # a description that claims a name but cannot be decoded: 00error/<archive id>


class KeyFrom(StrEnum):
    DESCRIPTION = "description"
    ARCHIVE_ID = "archive_id"


UNDEFINED_FOLDER = "00undefined/"
ERROR_FOLDER = "00error/"

_UNSAFE_CHARS_RE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")  # C0, DEL, C1, lone surrogates
_EXTENSION_RE = re.compile(r"\.[A-Za-z0-9]{1,10}$")
_XML_CHILD_RE = re.compile(r"\s*<([A-Za-z][A-Za-z0-9_]*)>([^<]*)</\1>\s*")
_PATH_CLAIM_RE = re.compile(r'\\*"path\\*"\s*:', re.IGNORECASE)
_MT_RE = re.compile(r"mt([12]) ([A-Za-z0-9_\-]+)")


@dataclass(frozen=True, slots=True)
class DecodedName:
    """What a description names: ``name`` before the key rules, or why there is none."""

    name: str
    source: NameSource
    problem: str = ""
    detail: str = ""  # e.g. "FastGlacier metadata v4"


def _b64(text: str, urlsafe: bool = False) -> bytes:
    """Strict base64 (whitespace ignored, missing padding added). Raises ValueError."""
    compact = "".join(text.split())
    if not compact:
        return b""
    compact += "=" * (-len(compact) % 4)
    try:
        if urlsafe:
            compact = compact.replace("-", "+").replace("_", "/")
        return base64.b64decode(compact, validate=True)
    except binascii.Error as exc:
        raise ValueError(f"not base64 ({exc})") from exc


def _xml_metadata(text: str, root: str, path_tag: str) -> DecodedName:
    """FastGlacier-style XML: one ``<root>`` holding simple ``<tag>text</tag>`` children, the path
    base64 of its UTF-8. No XML parser: the form is flat, and entity tricks have nowhere to go."""
    source = NameSource.FASTGLACIER if root == "m" else NameSource.ARCHIVE_METADATA
    # AWS's solution strips surrounding quotes first (test_quoted_fastglacier_v1_format).
    body = text.strip().strip("'").strip('"').strip()
    opening, closing = f"<{root}>", f"</{root}>"
    if not (body.startswith(opening) and body.endswith(closing)):
        return DecodedName(
            "", NameSource.ERROR, f"the description looks like <{root}> metadata but is not one <{root}>...</{root}> element"
        )
    inner = body[len(opening) : -len(closing)]
    children: dict[str, str] = {}
    pos = 0
    while pos < len(inner):
        match = _XML_CHILD_RE.match(inner, pos)
        if match is None:
            if not inner[pos:].strip():
                break
            return DecodedName("", NameSource.ERROR, f"the <{root}> metadata is not well formed near {inner[pos : pos + 40]!r}")
        children.setdefault(match.group(1), match.group(2))
        pos = match.end()
    if path_tag not in children:
        return DecodedName("", NameSource.ERROR, f"the <{root}> metadata has no <{path_tag}> element")
    detail = f"FastGlacier metadata v{children['v'].strip()}" if root == "m" and "v" in children else ""
    try:
        name = _b64(children[path_tag]).decode("utf-8")
    except ValueError as exc:  # binascii.Error and UnicodeDecodeError are ValueErrors
        return DecodedName("", NameSource.ERROR, f"<{path_tag}> is not base64 of a UTF-8 path ({exc})", detail)
    return DecodedName(name, source if name.strip() else NameSource.UNDEFINED, "", detail)


def _find_path(value: dict[str, Any]) -> tuple[bool, Any]:
    """A "path" field (any case), at the top level or one object down."""
    for key, item in value.items():
        if isinstance(key, str) and key.lower() == "path":
            return True, item
    for item in value.values():
        if isinstance(item, dict):
            for key, inner in item.items():
                if isinstance(key, str) and key.lower() == "path":
                    return True, inner
    return False, None


def _json_name(text: str) -> DecodedName | None:
    """``{"Path": ...}`` descriptions; None when the text is no JSON object and claims no path.

    Also the variants of one level of extra encoding: a JSON string holding the object, or the
    object with its quotes backslash-escaped (AWS's solution's detection regex,
    ``{\\s*\\\\*\\".*}``, allows those backslashes).
    """
    candidate = text
    value: Any = None
    for _ in range(3):
        try:
            value = json.loads(candidate)
        except ValueError:
            if '\\"' in candidate:
                candidate = candidate.replace('\\"', '"')
                continue
            value = None
            break
        if isinstance(value, str) and value.strip().startswith("{"):
            candidate = value.strip()
            continue
        break
    if not isinstance(value, dict):
        if _PATH_CLAIM_RE.search(text):
            return DecodedName("", NameSource.ERROR, 'the description claims a path ("path":) but is not valid JSON')
        return None
    found, path = _find_path(value)
    if not found:
        return None  # JSON without a path: the description itself names the archive, as in AWS's solution
    if not isinstance(path, str):
        return DecodedName("", NameSource.ERROR, f"the description's JSON path is not a string but {json.dumps(path)[:40]}")
    return DecodedName(path, NameSource.JSON if path.strip() else NameSource.UNDEFINED)


def _mt_name(version: str, payload: str) -> DecodedName:
    """mt-aws-glacier: ``mt2 base64url(json_utf8({filename, mtime}))``; ``mt1`` has the JSON's
    UTF-8 bytes encoded once more as if they were Latin-1 (App::MtAws::MetaData)."""
    try:
        raw = _b64(payload, urlsafe=True)
        if version == "1":
            raw = raw.decode("utf-8").encode("latin-1")
        value = json.loads(raw.decode("utf-8"))
    except ValueError as exc:
        return DecodedName("", NameSource.ERROR, f"mt{version} metadata that does not decode ({exc})")
    if not isinstance(value, dict) or not isinstance(value.get("filename"), str):
        return DecodedName("", NameSource.ERROR, f"mt{version} metadata without a filename")
    name = value["filename"]
    return DecodedName(name, NameSource.MT_AWS_GLACIER if name.strip() else NameSource.UNDEFINED, "", f"mt-aws-glacier mt{version}")


def decode_description(description: str) -> DecodedName:
    """The name a backup tool wrote into an archive description.

    In AWS's solution's order: FastGlacier ``<m>`` (v2-v4), ``<ArchiveMetadata><Path>`` (what it
    calls FastGlacier v1), JSON with a ``Path``/``path``; then mt-aws-glacier's ``mt1``/``mt2``;
    otherwise the description itself. Undecodable forms (bad base64, broken XML or JSON that
    claims a path) are ``NameSource.ERROR``; blank ones ``NameSource.UNDEFINED``.
    """
    text = (description or "").strip()
    if not text:
        return DecodedName("", NameSource.UNDEFINED)
    bare = text.strip("'\"").lstrip()
    if re.search(r"<m>.*</m>", text, re.DOTALL) or bare.startswith("<m>"):
        return _xml_metadata(text, "m", "p")
    if re.search(r"<ArchiveMetadata>.*</ArchiveMetadata>", text, re.DOTALL) or bare.startswith("<ArchiveMetadata>"):
        return _xml_metadata(text, "ArchiveMetadata", "Path")
    if text.startswith(("{", '"{')):
        named = _json_name(text)
        if named is not None:
            return named
    mt = _MT_RE.fullmatch(text)
    if mt is not None:
        return _mt_name(mt.group(1), mt.group(2))
    return DecodedName(text, NameSource.DESCRIPTION)


def clean_name(name: str) -> str:
    """A name made safe as (part of) an S3 key.

    Control characters (C0, DEL, C1) and unpaired surrogates go; every backslash becomes ``/``
    (AWS's solution replaces only doubled backslashes, ``replace(r"\\\\", "/")``; Windows paths
    from CloudBerry use single ones); empty, ``.`` and ``..`` segments go (so no leading ``/``,
    no ``//``, no climbing out of the prefix); surrounding whitespace goes.
    """
    text = _UNSAFE_CHARS_RE.sub("", name).replace("\\", "/").strip()
    return "/".join(segment for segment in text.split("/") if segment not in ("", ".", ".."))


def fit_key(key: str, max_bytes: int = S3_MAX_KEY_BYTES) -> str:
    """``key`` if its UTF-8 fits in ``max_bytes``; else its start, ``~``, 16 hex digits of the
    SHA-256 of the whole key, and its extension (so long keys stay distinct and typed)."""
    raw = key.encode("utf-8")
    if len(raw) <= max_bytes:
        return key
    extension = _EXTENSION_RE.search(key.rsplit("/", 1)[-1])
    suffix = "~" + hashlib.sha256(raw).hexdigest()[:16] + (extension.group(0) if extension else "")
    room = max_bytes - len(suffix)
    if room < 1:
        raise VaultError(f"no room for a key in {max_bytes} bytes: shorten the prefix", "prefix")
    return raw[:room].decode("utf-8", "ignore") + suffix


@dataclass(frozen=True, slots=True)
class KeyRules:
    """How archives are named in S3. ``prefix`` is prepended as given: write ``"my-vault/"`` for a
    folder. ``key_from="archive_id"`` names every archive by its id (overrides still win)."""

    prefix: str = ""
    key_from: KeyFrom = KeyFrom.DESCRIPTION

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "key_from", KeyFrom(self.key_from))
        except ValueError as exc:
            raise VaultError(f"key_from {self.key_from!r} is not one of: description, archive_id", "key_from") from exc
        if not isinstance(self.prefix, str) or _UNSAFE_CHARS_RE.search(self.prefix):
            raise VaultError("the prefix must be text without control characters", "prefix")
        prefix = self.prefix.lstrip("/")
        if len(prefix.encode("utf-8")) > 512:
            raise VaultError("the prefix is longer than 512 bytes: S3 keys have 1,024 bytes in all", "prefix")
        object.__setattr__(self, "prefix", prefix)


@dataclass(frozen=True, slots=True)
class ArchiveKey:
    """An archive's S3 key before de-duplication, where it came from, and any problem."""

    key: str
    source: NameSource
    problem: str = ""
    detail: str = ""


def archive_key(
    archive_id: str,
    description: str,
    rules: KeyRules = KeyRules(),
    overrides: Mapping[str, str] | None = None,
) -> ArchiveKey:
    """The S3 key of one archive: override, else archive id or decoded description, made safe.

    Blank names (after cleaning) become ``00undefined/<archive id>``, undecodable ones
    ``00error/<archive id>``, both under the prefix. Keys are at most 1,024 bytes (``fit_key``).
    Two archives may get one key here: ``assign_unique_keys`` / ``iter_unique_keys`` separate them.
    """
    if overrides is not None and archive_id in overrides:
        decoded = DecodedName(overrides[archive_id], NameSource.OVERRIDE)
    elif rules.key_from is KeyFrom.ARCHIVE_ID:
        decoded = DecodedName(archive_id, NameSource.ARCHIVE_ID)
    else:
        decoded = decode_description(description)
    if decoded.source is NameSource.ERROR:
        return ArchiveKey(fit_key(rules.prefix + ERROR_FOLDER + archive_id), NameSource.ERROR, decoded.problem, decoded.detail)
    name = clean_name(decoded.name)
    if not name:
        problem = decoded.problem or ("the description is empty" if not (description or "").strip() else "the name is empty once made safe")
        return ArchiveKey(fit_key(rules.prefix + UNDEFINED_FOLDER + archive_id), NameSource.UNDEFINED, problem, decoded.detail)
    return ArchiveKey(fit_key(rules.prefix + name), decoded.source, decoded.problem, decoded.detail)


# ---- naming overrides ---------------------------------------------------------------------------

_OVERRIDE_HEADERS = {("glacierarchiveid", "filename"), ("archive_id", "key"), ("archiveid", "key")}


@dataclass(frozen=True, slots=True)
class NameOverride:
    line: int
    archive_id: str
    key: str


@dataclass(frozen=True, slots=True)
class OverrideError:
    line: int
    message: str
    raw: str = ""


def iter_name_overrides(blocks: Iterable[bytes]) -> Iterator[NameOverride | OverrideError]:
    """Rows of a naming override CSV, ``archive_id,key``; AWS's solution's ``GlacierArchiveID,FileName``
    header (or ``archive_id,key``) is skipped, and so is its template's empty row ``,``."""
    header_possible = True
    for raw in iter_lines(blocks):
        preview = raw.data[:200].decode("utf-8", "replace")
        if raw.too_long:
            yield OverrideError(raw.number, "the line is too long to be an archive id and a key", preview)
            continue
        try:
            text = raw.data.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield OverrideError(raw.number, f"the line is not valid UTF-8 (byte {exc.start})", preview)
            continue
        if not text.strip():
            continue
        try:
            fields = next(csv.reader([text], strict=True))
        except csv.Error as exc:
            yield OverrideError(raw.number, f"the line is not valid CSV ({exc})", preview)
            continue
        if header_possible:
            header_possible = False
            if tuple(f.strip().lower() for f in fields) in _OVERRIDE_HEADERS:
                continue
        if len(fields) != 2:
            yield OverrideError(raw.number, f"expected 2 columns (archive id, key), found {len(fields)}", preview)
            continue
        archive_id, key = fields[0].strip(), fields[1]
        if not archive_id and not key.strip():
            continue
        if not ARCHIVE_ID_RE.fullmatch(archive_id):
            yield OverrideError(raw.number, f"{archive_id[:80]!r} is not a Glacier archive id (letters, digits, - and _)", preview)
            continue
        if not clean_name(key):
            yield OverrideError(
                raw.number, "the key is empty (or only separators): give the S3 key for this archive, or drop the row", preview
            )
            continue
        yield NameOverride(raw.number, archive_id, key)


def read_name_overrides(blocks: Iterable[bytes]) -> tuple[dict[str, str], list[OverrideError]]:
    """All overrides as archive id -> key (held in memory: a file people write by hand), and the
    bad rows. An id given twice keeps its first key; a different later key is an error."""
    overrides: dict[str, str] = {}
    errors: list[OverrideError] = []
    for row in iter_name_overrides(blocks):
        if isinstance(row, OverrideError):
            errors.append(row)
        elif row.archive_id in overrides and overrides[row.archive_id] != row.key:
            errors.append(
                OverrideError(
                    row.line, f"archive {row.archive_id[:40]}... is given another key before: the first one is kept", row.key[:200]
                )
            )
        else:
            overrides.setdefault(row.archive_id, row.key)
    return overrides, errors


# ---- duplicate names ----------------------------------------------------------------------------

_DEDUP_SUFFIX_RE = re.compile(r"\.\d{8}T\d{6}Z(?:\.\d+)?$")


def _compact_time(when: datetime, fraction: bool = False) -> str:
    """``YYYYMMDDTHHMMSSZ`` in UTC (fixed width: strftime does not pad years before 1000)."""
    t = when.astimezone(UTC)
    text = f"{t.year:04d}{t.month:02d}{t.day:02d}T{t.hour:02d}{t.minute:02d}{t.second:02d}"
    return text + (f".{t.microsecond:06d}Z" if fraction else "Z")


@dataclass(frozen=True, slots=True)
class NamingRecord:
    """What de-duplication needs of an archive: its key (``ArchiveKey.key``), creation time, id."""

    key: str
    created_at: datetime
    archive_id: str

    @property
    def order(self) -> tuple[str, datetime, str]:
        return (self.key, self.created_at, self.archive_id)

    @property
    def sort_key(self) -> str:
        """A text that sorts like ``order`` (as UTF-8 bytes too): for an external sort."""
        return f"{self.key}\x00{_compact_time(self.created_at, fraction=True)}\x00{self.archive_id}"


def looks_like_dedup_key(key: str) -> bool:
    """Whether a key ends like a de-duplicated one (``.YYYYMMDDTHHMMSSZ`` or ``.YYYYMMDDTHHMMSSZ.N``).
    Only such keys can collide with a de-duplicated name: the reserved set is made of them."""
    return _DEDUP_SUFFIX_RE.search(key) is not None


def dedup_key(key: str, created_at: datetime, counter: int = 1) -> str:
    """``<key>.<YYYYMMDDTHHMMSSZ>``, and ``.<counter>`` from 2 on; within 1,024 bytes."""
    suffix = "." + _compact_time(created_at) + (f".{counter}" if counter > 1 else "")
    return fit_key(key, S3_MAX_KEY_BYTES - len(suffix)) + suffix


def name_group(members: Sequence[NamingRecord], reserved: Container[str] = frozenset()) -> list[tuple[NamingRecord, str]]:
    """Unique keys for archives that share one key.

    The oldest (creation date, then archive id) keeps the key; each later one gets
    ``dedup_key(key, its creation date)``, with a counter from 2 while that is taken in the group
    or in ``reserved`` (the keys of all archives that ``looks_like_dedup_key``). The result depends
    on the group and ``reserved`` only, not on the order archives were seen in.
    """
    if not members:
        return []
    ordered = sorted(members, key=lambda record: record.order)
    key = ordered[0].key
    if any(record.key != key for record in ordered):
        raise VaultError("a naming group holds archives of different keys: group archives by key", "members")
    named = [(ordered[0], key)]
    used = {key}
    for record in ordered[1:]:
        counter = 1
        candidate = dedup_key(key, record.created_at)
        while candidate in used or candidate in reserved:
            counter += 1
            candidate = dedup_key(key, record.created_at, counter)
        used.add(candidate)
        named.append((record, candidate))
    return named


def iter_unique_keys(sorted_records: Iterable[NamingRecord], reserved: Container[str] = frozenset()) -> Iterator[tuple[NamingRecord, str]]:
    """Unique keys for a whole vault, from records sorted by ``NamingRecord.order``.

    Memory: the largest group of archives sharing a key, plus ``reserved``. A vault of millions
    is named in two streaming passes and one external sort: pass 1 computes each archive's key and
    collects ``reserved`` (keys that ``looks_like_dedup_key``, rare); sort the records by
    ``sort_key`` on disk or in a database; pass 2 is this function.
    """
    group: list[NamingRecord] = []
    previous: tuple[str, datetime, str] | None = None
    for record in sorted_records:
        order = record.order
        if previous is not None and order < previous:
            raise VaultError(
                f"archive {record.archive_id[:40]} comes out of order: sort the records by NamingRecord.sort_key "
                "(key, creation date, archive id) first",
                "sorted_records",
            )
        if group and record.key != group[0].key:
            yield from name_group(group, reserved)
            group = []
        group.append(record)
        previous = order
    if group:
        yield from name_group(group, reserved)


def assign_unique_keys(records: Iterable[NamingRecord]) -> list[tuple[NamingRecord, str]]:
    """Unique keys for archives held in memory (O(n)); ``iter_unique_keys`` for large vaults."""
    everything = list(records)
    reserved = {record.key for record in everything if looks_like_dedup_key(record.key)}
    everything.sort(key=lambda record: record.order)
    return list(iter_unique_keys(everything, reserved))


# ---- vault inventories --------------------------------------------------------------------------

MAX_RECORD_BYTES = 64 * 1024  # a JSON archive entry: a description is at most 1,024 bytes, 6x escaped
CSV_COLUMNS = ("ArchiveId", "ArchiveDescription", "CreationDate", "Size", "SHA256TreeHash")


class InventoryFormat(StrEnum):
    JSON = "JSON"
    CSV = "CSV"


@dataclass(frozen=True, slots=True)
class VaultArchive:
    """One archive of a vault inventory, checked."""

    index: int  # 0-based, in the inventory
    archive_id: str
    description: str
    creation_date: str  # as the inventory writes it
    created_at: datetime  # the same, parsed (UTC)
    size: int
    tree_hash: str  # lower-case hex
    description_valid: bool = True  # False: the CSV row's description was not UTF-8 (replaced by U+FFFD)

    def naming(self, key: str) -> NamingRecord:
        return NamingRecord(key, self.created_at, self.archive_id)


@dataclass(frozen=True, slots=True)
class VaultRowError:
    """An inventory entry that cannot be read: no archive can be moved from it."""

    index: int
    offset: int  # byte offset of the entry in the inventory
    message: str
    raw: str = ""


@dataclass(frozen=True, slots=True)
class VaultInventoryCursor:
    """Where reading an inventory stands: ``index`` entries read, the next one after byte ``offset``.
    To resume, give the inventory's bytes from ``offset`` on (a ranged read) with this cursor."""

    offset: int = 0
    index: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"offset": self.offset, "index": self.index}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> VaultInventoryCursor:
        return cls(int(data.get("offset", 0)), int(data.get("index", 0)))


@dataclass(frozen=True, slots=True)
class VaultInventoryItem:
    """One inventory entry, read, and the cursor to resume after it."""

    result: VaultArchive | VaultRowError
    next_cursor: VaultInventoryCursor


def _parse_creation_date(value: Any) -> datetime:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("CreationDate is missing")
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(f"CreationDate {value[:40]!r} is not an ISO 8601 time such as 2012-03-20T17:03:43Z") from None
    if parsed.tzinfo is UTC:
        return parsed
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _build_archive(
    index: int,
    offset: int,
    archive_id: Any,
    description: Any,
    creation_date: Any,
    size: Any,
    tree: Any,
    raw: str,
    description_valid: bool = True,
) -> VaultArchive | VaultRowError:
    def error(message: str) -> VaultRowError:
        return VaultRowError(
            index, offset, f"inventory entry {index} (byte {offset}): {message}: no archive can be moved from this entry", raw[:200]
        )

    if not isinstance(archive_id, str) or not ARCHIVE_ID_RE.fullmatch(archive_id):
        return error(f"ArchiveId {str(archive_id)[:60]!r} is not a Glacier archive id")
    if description is None:
        description = ""
    if not isinstance(description, str):
        return error("ArchiveDescription is not text")
    try:
        created_at = _parse_creation_date(creation_date)
    except ValueError as exc:
        return error(str(exc))
    if isinstance(size, str) and size.strip().isdigit():
        size = int(size)
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        return error(f"Size {str(size)[:30]!r} is not a number of bytes")
    if not isinstance(tree, str) or not _HEX64_RE.fullmatch(tree.strip()):
        return error(f"SHA256TreeHash {str(tree)[:70]!r} is not 64 hex digits")
    return VaultArchive(index, archive_id, description, creation_date.strip(), created_at, size, tree.strip().lower(), description_valid)


def sniff_inventory_format(sample: bytes) -> InventoryFormat:
    """JSON when the first character (after a byte-order mark and blanks) is ``{``, else CSV."""
    text = sample.removeprefix(b"\xef\xbb\xbf").lstrip()
    return InventoryFormat.JSON if text.startswith(b"{") else InventoryFormat.CSV


# -- CSV


def _unquote(field: str) -> str:
    text = field.strip()
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        return text[1:-1]
    return text


def _unquote_description(field: str) -> str:
    # Glacier writes a quote inside a field as \" and leaves backslashes alone: replacing each \"
    # (left to right) undoes exactly that, since every written quote has its own backslash.
    if len(field) >= 2 and field[0] == '"' and field[-1] == '"':
        return field[1:-1].replace('\\"', '"')
    return field


def _csv_header(text: str) -> bool | None:
    """True for Glacier's header row, None for a data row; raises for a header of other columns."""
    fields = [_unquote(f).lower() for f in text.split(",")]
    if fields == [c.lower() for c in CSV_COLUMNS]:
        return True
    if fields and fields[0] == "archiveid":
        raise VaultInventoryError(
            f"the CSV header is {text[:200]!r}: a Glacier inventory's columns are {','.join(CSV_COLUMNS)}, in that order",
            "header",
        )
    return None


def _csv_row(index: int, offset: int, data: bytes) -> VaultArchive | VaultRowError:
    """One data row. Only the description can hold commas or quotes (archive ids, dates, sizes and
    hashes never do), so the row is split at its first comma and its last three: what is left is
    the description, whatever it holds."""
    description_valid = True
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("utf-8", "replace")
        description_valid = False
    first = text.find(",")
    rest = text[first + 1 :].rsplit(",", 3) if first >= 0 else []
    if len(rest) != 4:
        return VaultRowError(
            index,
            offset,
            f"inventory entry {index} (byte {offset}): expected 5 columns ({','.join(CSV_COLUMNS)}): no archive can be moved from this entry",
            text[:200],
        )
    description, created, size, tree = rest
    archive_id = _unquote(text[:first])
    if not description_valid and not ARCHIVE_ID_RE.fullmatch(archive_id):
        return VaultRowError(index, offset, f"inventory entry {index} (byte {offset}): the row is not valid UTF-8", text[:200])
    return _build_archive(
        index,
        offset,
        archive_id,
        _unquote_description(description),
        _unquote(created),
        _unquote(size),
        _unquote(tree),
        text,
        description_valid,
    )


def iter_csv_inventory(blocks: Iterable[bytes], start: VaultInventoryCursor | None = None) -> Iterator[VaultInventoryItem]:
    """Stream a CSV inventory (``ArchiveId,ArchiveDescription,CreationDate,Size,SHA256TreeHash``).

    ``blocks`` are the inventory's bytes from ``start.offset`` on. Memory: one row (at most 8 KiB,
    longer rows are errors). Blank lines are skipped; the header row is only looked for at byte 0.
    """
    start = start or VaultInventoryCursor()
    index = start.index
    header_possible = start.offset == 0
    line_start = start.offset
    ending = _Ending(blocks)
    for raw in iter_lines(ending, start.offset):
        offset, line_start = line_start, raw.end_offset
        if raw.too_long:
            error = VaultRowError(
                index,
                offset,
                f"inventory entry {index} (byte {offset}): the row is longer than 8 KiB: not an inventory row",
                raw.data[:200].decode("utf-8", "replace"),
            )
            index += 1
            yield VaultInventoryItem(error, VaultInventoryCursor(raw.end_offset, index))
            continue
        if not raw.data.strip():
            continue
        if header_possible:
            header_possible = False
            if _csv_header(raw.data.decode("utf-8", "replace")):
                continue
        result = _csv_row(index, offset, raw.data)
        if isinstance(result, VaultRowError) and ending.done and not ending.newline:
            # A last row that ends without a line end and does not parse was cut: a reader
            # resuming after it would skip an archive, so the inventory is truncated instead.
            raise VaultInventoryError(
                f"the inventory ends inside entry {index} (byte {offset}): it is truncated; retrieve it again", "document"
            )
        index += 1
        yield VaultInventoryItem(result, VaultInventoryCursor(raw.end_offset, index))


class _Ending:
    """Byte blocks passed through, noting whether they ended (and with a line end)."""

    def __init__(self, blocks: Iterable[bytes]):
        self._blocks = blocks
        self.done = False
        self.newline = False

    def __iter__(self) -> Iterator[bytes]:
        for block in self._blocks:
            if block:
                self.newline = block.endswith(b"\n")
                yield block
        self.done = True


# -- JSON

_JSON_WS_RE = re.compile(r"[ \t\n\r]*")
# Where the next archive starts after a broken one: a "}" followed by ",{" or by "]".
_RESYNC_RE = re.compile(r"\}[ \t\n\r]*(?=,[ \t\n\r]*\{|\])")
_DECODER = json.JSONDecoder()
_BOM_LATIN1 = b"\xef\xbb\xbf".decode("latin-1")


class _Text:
    """The inventory's unread bytes as Latin-1 text: one character per byte, so positions are byte
    offsets, and JSON's structure (all ASCII) is found by the standard library's C decoder."""

    def __init__(self, blocks: Iterable[bytes], base: int):
        self._blocks = iter(blocks)
        self.text = ""
        self.base = base  # byte offset of text[0]
        self.pos = 0
        self.eof = False
        self.ascii = True  # the buffer holds only ASCII: entries need no UTF-8 decoding

    @property
    def offset(self) -> int:
        return self.base + self.pos

    def fill(self) -> str:
        """Read the next non-empty block; "" at the end."""
        if self.eof:
            return ""
        for block in self._blocks:
            if block:
                if self.pos:
                    self.text = self.text[self.pos :]
                    self.base += self.pos
                    self.pos = 0
                added = bytes(block).decode("latin-1")
                self.text += added
                self.ascii = self.text.isascii()
                return added
        self.eof = True
        return ""

    def peek(self) -> str | None:
        """The next character that is not JSON whitespace, without taking it; None at the end."""
        if self.pos < len(self.text) and self.text[self.pos] not in " \t\n\r":
            return self.text[self.pos]
        while True:
            self.pos = _JSON_WS_RE.match(self.text, self.pos).end()  # type: ignore[union-attr]
            if self.pos < len(self.text):
                return self.text[self.pos]
            if not self.fill():
                return None

    def value(self, closer: str) -> tuple[Any, int] | json.JSONDecodeError:
        """Decode one JSON value at ``pos`` (not taking it): (value, end), or the error once no
        more bytes can help (the end of input, or MAX_RECORD_BYTES read without success)."""
        while True:
            try:
                value, end = _DECODER.raw_decode(self.text, self.pos)
            except json.JSONDecodeError as exc:
                if self.eof or len(self.text) - self.pos > MAX_RECORD_BYTES:
                    return exc
                # A value ends with its closer ("}" for an archive): wait for one to arrive.
                while (added := self.fill()) and closer and closer not in added and len(self.text) - self.pos <= MAX_RECORD_BYTES:
                    pass
                continue
            if end == len(self.text) and not self.eof and not isinstance(value, (dict, list, str)):
                self.fill()  # a number or literal at the end of the bytes read may go on
                continue
            return value, end

    def utf8(self, start: int, end: int) -> str:
        return self.text[start:end].encode("latin-1").decode("utf-8")

    def resync(self) -> bool:
        """Skip a broken archive: move to just after the "}" that precedes the next one (or "]")."""
        while True:
            match = _RESYNC_RE.search(self.text, self.pos)
            if match is not None:
                self.pos = match.start() + 1
                return True
            self.pos = max(self.pos, len(self.text) - 64)
            if not self.fill():
                self.pos = len(self.text)
                return False


class JsonInventoryReader:
    """Stream a JSON inventory's ArchiveList, one archive at a time, in flat memory.

    The document is never loaded: the standard library's decoder reads one archive entry at a time
    from a buffer of the bytes not yet read (``MAX_RECORD_BYTES`` at most per entry). ``vault_arn``
    and ``inventory_date`` are set once read (before ArchiveList in Glacier's output; a reader that
    resumes from a cursor does not see them). A broken entry is a ``VaultRowError`` and reading
    goes on at the next entry; a document that is not an inventory, or ends early, raises
    VaultInventoryError once everything readable has been given.
    """

    def __init__(self, blocks: Iterable[bytes], start: VaultInventoryCursor | None = None):
        self._blocks = blocks
        self._start = start or VaultInventoryCursor()
        if self._start.index == 0 and self._start.offset != 0:
            raise VaultError("a cursor that has read no archive starts at byte 0", "start")
        self.vault_arn: str | None = None
        self.inventory_date: str | None = None
        self.other_fields: dict[str, Any] = {}

    def __iter__(self) -> Iterator[VaultInventoryItem]:
        return self._read()

    def _read(self) -> Iterator[VaultInventoryItem]:
        text = _Text(self._blocks, self._start.offset)
        index = self._start.index
        first = index == 0
        if first and not self._open(text):
            return
        while True:
            char = text.peek()
            if char is None:
                raise VaultInventoryError(
                    f"the inventory ends inside ArchiveList after {index} entries (byte {text.offset}): it is truncated; retrieve it again",
                    "ArchiveList",
                )
            if char == "]":
                text.pos += 1
                break
            entry_offset = text.offset
            if not first:
                if char != ",":
                    error = VaultRowError(
                        index,
                        entry_offset,
                        f"inventory entry {index} (byte {entry_offset}): expected ',' or ']' between archives, found {char!r}: no archive can be moved from this entry",
                    )
                    text.resync()
                    index += 1
                    yield VaultInventoryItem(error, VaultInventoryCursor(text.offset, index))
                    continue
                text.pos += 1
                if text.peek() is None:
                    continue  # reported as truncated above
            first = False
            result = self._entry(text, index)
            index += 1
            yield VaultInventoryItem(result, VaultInventoryCursor(text.offset, index))
        self._close(text)

    def _entry(self, text: _Text, index: int) -> VaultArchive | VaultRowError:
        offset = text.offset
        decoded = text.value("}")
        start = text.pos  # after value(): reading more may have moved the buffer, not the offset
        if isinstance(decoded, json.JSONDecodeError):
            preview = text.text[start : start + 200].encode("latin-1").decode("utf-8", "replace")
            if not text.resync():
                # Nothing readable follows: the document was cut inside this entry. Not a bad row
                # (a reader resuming after it would skip the archive): the inventory is truncated.
                raise VaultInventoryError(
                    f"the inventory ends inside entry {index} (byte {offset}): it is truncated; retrieve it again",
                    "ArchiveList",
                )
            return VaultRowError(
                index,
                offset,
                f"inventory entry {index} (byte {offset}): not valid JSON ({decoded.msg}): no archive can be moved from this entry",
                preview,
            )
        value, end = decoded
        text.pos = end
        if not text.ascii and not text.text[start:end].isascii():
            # UTF-8 text: decode it as such (the Latin-1 view only found where the entry ends)
            try:
                value = json.loads(text.utf8(start, end))
            except ValueError as exc:
                preview = text.text[start : start + 200].encode("latin-1").decode("utf-8", "replace")
                return VaultRowError(
                    index,
                    offset,
                    f"inventory entry {index} (byte {offset}): not valid UTF-8 JSON ({exc}): no archive can be moved from this entry",
                    preview,
                )
        if not isinstance(value, dict):
            return VaultRowError(
                index,
                offset,
                f"inventory entry {index} (byte {offset}): an archive is a JSON object, not {type(value).__name__}: no archive can be moved from this entry",
                json.dumps(value)[:200],
            )
        result = _build_archive(
            index,
            offset,
            value.get("ArchiveId"),
            value.get("ArchiveDescription", ""),
            value.get("CreationDate"),
            value.get("Size"),
            value.get("SHA256TreeHash"),
            "",
        )
        if isinstance(result, VaultRowError):  # the preview is made for errors only
            result = replace(result, raw=json.dumps(value, ensure_ascii=False)[:200])
        return result

    def _open(self, text: _Text) -> bool:
        """Read from the document's start to ArchiveList's "[" (True), or to its end (False)."""
        while len(text.text) < 3 and text.fill():
            pass
        if text.text.startswith(_BOM_LATIN1):
            text.pos = 3
        char = text.peek()
        if char is None:
            raise VaultInventoryError("the inventory is empty: retrieve it again", "document")
        if char != "{":
            raise VaultInventoryError("not a JSON inventory: it must be an object {VaultARN, InventoryDate, ArchiveList}", "document")
        text.pos += 1
        return self._fields(text, first=True, before_list=True)

    def _close(self, text: _Text) -> None:
        if self._fields(text, first=False, before_list=False):
            raise VaultInventoryError("the inventory has ArchiveList twice", "ArchiveList")
        if text.peek() is not None:
            raise VaultInventoryError(f"text follows the inventory's end (byte {text.offset})", "document")

    def _fields(self, text: _Text, first: bool, before_list: bool) -> bool:
        """The top-level object's fields, up to ArchiveList's "[" (True) or the object's "}" (False)."""
        while True:
            char = text.peek()
            if char is None:
                where = "before ArchiveList" if before_list else "after ArchiveList"
                raise VaultInventoryError(
                    f"the inventory ends {where} (byte {text.offset}): it is truncated; retrieve it again", "document"
                )
            if char == "}":
                text.pos += 1
                if before_list:
                    raise VaultInventoryError("the inventory has no ArchiveList: it is not a vault inventory", "ArchiveList")
                return False
            if not first:
                if char != ",":
                    raise VaultInventoryError(f"byte {text.offset}: expected ',' or '}}' between the inventory's fields", "document")
                text.pos += 1
                text.peek()
            first = False
            key = self._member(text, '"')
            if not isinstance(key, str):
                raise VaultInventoryError(f"byte {text.offset}: expected a field name", "document")
            if text.peek() != ":":
                raise VaultInventoryError(f"byte {text.offset}: expected ':' after {key!r}", "document")
            text.pos += 1
            if key == "ArchiveList":
                if text.peek() != "[":
                    raise VaultInventoryError("ArchiveList is not a list", "ArchiveList")
                text.pos += 1
                return True
            text.peek()
            value = self._member(text, "")
            if key == "VaultARN" and isinstance(value, str):
                self.vault_arn = value
            elif key == "InventoryDate" and isinstance(value, str):
                self.inventory_date = value
            else:
                self.other_fields[key] = value

    def _member(self, text: _Text, closer: str) -> Any:
        decoded = text.value(closer)
        start = text.pos
        if isinstance(decoded, json.JSONDecodeError):
            raise VaultInventoryError(f"byte {text.offset}: the inventory is not valid JSON ({decoded.msg})", "document")
        value, end = decoded
        text.pos = end
        if text.text[start:end].isascii():
            return value
        try:
            return json.loads(text.utf8(start, end))
        except ValueError as exc:
            raise VaultInventoryError(f"byte {text.offset}: the inventory is not UTF-8 JSON ({exc})", "document") from exc


def iter_json_inventory(blocks: Iterable[bytes], start: VaultInventoryCursor | None = None) -> Iterator[VaultInventoryItem]:
    """``JsonInventoryReader`` as a plain iterator (without the header fields)."""
    return iter(JsonInventoryReader(blocks, start))


def iter_vault_inventory(
    blocks: Iterable[bytes],
    inventory_format: InventoryFormat | str | None = None,
    start: VaultInventoryCursor | None = None,
) -> Iterator[VaultInventoryItem]:
    """Stream an inventory in either format; without ``inventory_format``, its first bytes decide
    (a resumed read needs the format: its bytes start mid-document)."""
    if inventory_format is None:
        if start is not None and start.offset:
            raise VaultError("give the inventory's format to resume reading it", "inventory_format")
        iterator = iter(blocks)
        head: list[bytes] = []
        sample = b""
        for block in iterator:
            head.append(block)
            sample += block
            if sample.removeprefix(b"\xef\xbb\xbf").strip() and len(sample) >= 3:
                break
        chained = _chain(head, iterator)
        inventory_format = sniff_inventory_format(sample)
    else:
        chained = iter(blocks)
    name = str(inventory_format).strip().upper()
    if name not in ("JSON", "CSV"):
        raise VaultError(f"inventory format {inventory_format!r} is not JSON or CSV", "inventory_format")
    if InventoryFormat(name) is InventoryFormat.JSON:
        return iter_json_inventory(chained, start)
    return iter_csv_inventory(chained, start)


def _chain(head: list[bytes], rest: Iterator[bytes]) -> Iterator[bytes]:
    yield from head
    yield from rest


# ---- filters and limits -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ArchiveFilter:
    """Which archives to move: created in [created_from, created_before), sized in [min_size, max_size]."""

    created_from: datetime | None = None
    created_before: datetime | None = None
    min_size: int = 0
    max_size: int | None = None

    def __post_init__(self) -> None:
        for name in ("created_from", "created_before"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, datetime) or value.tzinfo is None):
                raise VaultError(f"{name} must be a datetime with a time zone (UTC)", name)
        if self.created_from and self.created_before and self.created_from >= self.created_before:
            raise VaultError("created_from must be before created_before", "created_from")
        _check_size(self.min_size, "min_size")
        if self.max_size is not None:
            _check_size(self.max_size, "max_size")
            if self.max_size < self.min_size:
                raise VaultError("max_size must be at least min_size", "max_size")

    def exclusion(self, archive: VaultArchive) -> str | None:
        """Why the archive is left out, or None when it is selected."""
        if self.created_from is not None and archive.created_at < self.created_from:
            return f"created {archive.creation_date}, before {self.created_from.isoformat()}"
        if self.created_before is not None and archive.created_at >= self.created_before:
            return f"created {archive.creation_date}, not before {self.created_before.isoformat()}"
        if archive.size < self.min_size:
            return f"{archive.size:,} bytes, fewer than the minimum of {self.min_size:,}"
        if self.max_size is not None and archive.size > self.max_size:
            return f"{archive.size:,} bytes, more than the maximum of {self.max_size:,}"
        return None


@dataclass(frozen=True, slots=True)
class Selection:
    """An inventory entry and whether it is moved; checkpoint ``item.next_cursor`` and ``selected_count``."""

    item: VaultInventoryItem
    selected: bool
    reason: str  # why not ("" when selected)
    selected_count: int  # archives selected so far, this one included


def select_archives(
    items: Iterable[VaultInventoryItem],
    archive_filter: ArchiveFilter | None = None,
    max_archives: int | None = None,
    selected_before: int = 0,
) -> Iterator[Selection]:
    """Entries with the verdict on each; stops once ``max_archives`` are selected (counting the
    ``selected_before`` of earlier invocations). Unreadable entries are never selected."""
    if max_archives is not None:
        _check_size(max_archives, "max_archives")
    count = selected_before
    if max_archives is not None and count >= max_archives:
        return
    for item in items:
        result = item.result
        if isinstance(result, VaultRowError):
            yield Selection(item, False, result.message, count)
            continue
        reason = archive_filter.exclusion(result) if archive_filter is not None else None
        if reason is not None:
            yield Selection(item, False, reason, count)
            continue
        count += 1
        yield Selection(item, True, "", count)
        if max_archives is not None and count >= max_archives:
            return


def utc_day(now: datetime) -> date:
    """The UTC day a daily byte counter is kept under."""
    if now.tzinfo is None:
        raise VaultError("now must have a time zone", "now")
    return now.astimezone(UTC).date()


@dataclass(frozen=True, slots=True)
class DailyAllowance:
    """How many more bytes may start retrieval in the current UTC day, and when the next day's
    budget opens. An archive larger than a whole day's budget starts alone, first thing in a day
    (it could never start otherwise)."""

    day: date
    max_bytes_per_day: int
    started_bytes: int
    may_start_bytes: int
    next_budget_at: datetime

    def admits(self, size: int) -> bool:
        if size <= self.may_start_bytes:
            return True
        return self.started_bytes == 0 and size > self.max_bytes_per_day

    def after(self, size: int) -> DailyAllowance:
        """The allowance once an archive of ``size`` bytes has started."""
        started = self.started_bytes + size
        return replace(self, started_bytes=started, may_start_bytes=max(0, self.max_bytes_per_day - started))


def daily_allowance(max_bytes_per_day: int, started_today_bytes: int, now: datetime) -> DailyAllowance:
    """Pace retrievals by a daily byte quota (AWS's solution: 100 TiB a day by default).

    ``started_today_bytes`` is what was initiated since 00:00 UTC of ``now``'s day.
    """
    _check_size(max_bytes_per_day, "max_bytes_per_day")
    if max_bytes_per_day == 0:
        raise VaultError("max_bytes_per_day must be more than 0", "max_bytes_per_day")
    _check_size(started_today_bytes, "started_today_bytes")
    day = utc_day(now)
    next_day = datetime.combine(day + timedelta(days=1), time(0), UTC)
    return DailyAllowance(day, max_bytes_per_day, started_today_bytes, max(0, max_bytes_per_day - started_today_bytes), next_day)


# ---- object metadata ----------------------------------------------------------------------------

META_ARCHIVE_ID = "glacier-archive-id"
META_SIZE = "glacier-size"
META_CREATION_DATE = "glacier-creation-date"
META_TREE_HASH = "glacier-sha256-tree-hash"
META_VAULT_ARN = "glacier-vault-arn"
META_DESCRIPTION = "glacier-description"
META_DESCRIPTION_BASE64 = "glacier-description-base64"
META_DESCRIPTION_SHA256 = "glacier-description-sha256"
META_DESCRIPTION_SIDECAR = "glacier-description-sidecar"
META_SPLIT = "glacier-split"
META_SPLIT_RANGE = "glacier-split-range"
SIDECAR_FOLDER = "00metadata/"
_PRINTABLE_ASCII_RE = re.compile(r"[\x20-\x7e]*")


@dataclass(frozen=True, slots=True)
class ObjectMetadata:
    """S3 user metadata for an archive's object (keys without ``x-amz-meta-``), and, when the
    description does not fit, the sidecar object that holds it."""

    metadata: dict[str, str]
    sidecar_key: str | None = None
    sidecar_body: bytes | None = None


def metadata_bytes(metadata: Mapping[str, str]) -> int:
    """User metadata size as S3 counts it (UTF-8 bytes of keys and values), counting each key's
    ``x-amz-meta-`` too, to stay clear of the limit whichever way it is measured."""
    return sum(len("x-amz-meta-") + len(k.encode("utf-8")) + len(v.encode("utf-8")) for k, v in metadata.items())


def object_metadata(
    archive: VaultArchive,
    *,
    vault_arn: str = "",
    key_prefix: str = "",
    plan: TransferPlan | None = None,
) -> ObjectMetadata:
    """The archive's id, size, creation date, tree hash and description as S3 user metadata.

    The description goes as it is when it is printable ASCII without surrounding blanks (what
    Glacier accepts: 1,024 ASCII characters fit in 2 KB with the rest); otherwise as base64 of its
    UTF-8 under ``glacier-description-base64`` (S3 does not return unprintable values, and HTTP
    trims blanks). If that does not fit in 2 KB, the metadata keeps the description's SHA-256 and
    the key of a JSON sidecar, ``<prefix>00metadata/<archive id>.json``, which holds it all: one
    per archive id, so it cannot collide. ``description_from_metadata`` reverses this.
    """
    metadata = {
        META_ARCHIVE_ID: archive.archive_id,
        META_SIZE: str(archive.size),
        META_CREATION_DATE: archive.creation_date,
        META_TREE_HASH: archive.tree_hash,
    }
    if vault_arn:
        metadata[META_VAULT_ARN] = vault_arn
    if plan is not None and plan.count > 1:
        metadata[META_SPLIT] = f"{plan.index + 1}/{plan.count}"
        metadata[META_SPLIT_RANGE] = f"{plan.start}-{plan.start + plan.size - 1}"
    description = archive.description
    encoded = description.encode("utf-8", "surrogatepass")
    if description:
        if _PRINTABLE_ASCII_RE.fullmatch(description) and description == description.strip():
            metadata[META_DESCRIPTION] = description
        else:
            metadata[META_DESCRIPTION_BASE64] = base64.b64encode(encoded).decode("ascii")
    if metadata_bytes(metadata) <= S3_MAX_USER_METADATA_BYTES:
        return ObjectMetadata(metadata)
    metadata.pop(META_DESCRIPTION, None)
    metadata.pop(META_DESCRIPTION_BASE64, None)
    sidecar_key = fit_key(KeyRules(prefix=key_prefix).prefix + SIDECAR_FOLDER + archive.archive_id + ".json")
    metadata[META_DESCRIPTION_SHA256] = hashlib.sha256(encoded).hexdigest()
    metadata[META_DESCRIPTION_SIDECAR] = sidecar_key
    document = {
        "ArchiveId": archive.archive_id,
        "ArchiveDescription": description.encode("utf-8", "surrogatepass").decode("utf-8", "replace"),
        "CreationDate": archive.creation_date,
        "Size": archive.size,
        "SHA256TreeHash": archive.tree_hash,
    }
    if vault_arn:
        document["VaultARN"] = vault_arn
    return ObjectMetadata(metadata, sidecar_key, json.dumps(document, ensure_ascii=False).encode("utf-8"))


def description_from_metadata(metadata: Mapping[str, str]) -> str | None:
    """The description ``object_metadata`` stored; None when it is in the sidecar (or absent)."""
    lowered = {k.lower().removeprefix("x-amz-meta-"): v for k, v in metadata.items()}
    if META_DESCRIPTION in lowered:
        return lowered[META_DESCRIPTION]
    if META_DESCRIPTION_BASE64 in lowered:
        return base64.b64decode(lowered[META_DESCRIPTION_BASE64]).decode("utf-8", "surrogatepass")
    if META_DESCRIPTION_SIDECAR in lowered:
        return None
    return ""


def archive_key_for(archive: VaultArchive, rules: KeyRules = KeyRules(), overrides: Mapping[str, str] | None = None) -> ArchiveKey:
    """``archive_key`` for an inventory archive; a description that was not UTF-8 names nothing
    (``00error/<id>``) unless an override or ``key_from="archive_id"`` names the archive."""
    if not archive.description_valid and not (overrides and archive.archive_id in overrides) and rules.key_from is KeyFrom.DESCRIPTION:
        return ArchiveKey(
            fit_key(rules.prefix + ERROR_FOLDER + archive.archive_id), NameSource.ERROR, "the inventory's description is not valid UTF-8"
        )
    return archive_key(archive.archive_id, archive.description, rules, overrides)
