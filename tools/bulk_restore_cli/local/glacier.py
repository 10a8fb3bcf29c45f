"""The original Amazon S3 Glacier vault API (the ``glacier`` service, 2012-06-01) for the local stack and the tests.

moto's Glacier is not enough to build a vault-to-S3 mover against: its upload checksum is a plain
SHA-256 (not the tree hash), an archive's ID is its body's MD5 (two uploads of the same bytes are
one archive), vault notifications and multipart upload are not implemented, GetJobOutput ignores
``Range`` (the whole body, 200, no tree-hash header), a CSV inventory comes back as JSON and
DescribeJob shows size 0 and no tree hash. This module answers every ``glacier`` request itself,
both on the local AWS endpoint (moto's server) and inside ``moto.mock_aws()``, so a plain boto3
``glacier`` client works against it unchanged.

Sources: the Amazon S3 Glacier Developer Guide's API reference (api-vault-put/-get/-delete,
api-vaults-get, api-vault-notifications-*, api-archive-post/-delete, api-multipart-*,
api-upload-part, api-initiate-job-post, api-jobParameters, api-InventoryRetrievalJobInput,
api-describe-job-get, api-jobs-get, api-job-output-get, api-error-responses), its pages
checksum-calculations, checksum-calculations-range, configuring-notifications, vault-inventory,
data-retrieval-policy and downloading-an-archive, and botocore's ``glacier`` model (error shapes
and their HTTP statuses, operations, member locations). Answers are written in the shapes that
model parses.

Error texts. AWS's own, as its guide or real answers quoted in public code show them: "Vault not
found for ARN: <arn>", "The job ID was not found: <id>" (also what an expired job's GetJobOutput
answers), "Vault not empty or recently written to: <arn>", "Checksum mismatch: expected <given>,
computed <actual>", "Invalid x-amz-sha256-tree-hash: <value>", "The job status code is not valid:
<value>". Every other text is this module's: AWS publishes none (the codes and statuses are AWS's).

What is emulated
----------------
- Vaults: CreateVault (idempotent; names 1-255 of ``a-zA-Z0-9_.-``; LimitExceededException past
  ``vault_limit``, 1,000 per account and Region), DescribeVault, ListVaults (by name; ``limit``
  1-10, default 10; ``marker`` the ARN after which to go on), DeleteVault (only when the last
  inventory counted no archive and nothing was written since, else 400
  InvalidParameterValueException "Vault not empty or recently written to: <arn>", AWS's text).
  NumberOfArchives, SizeInBytes (the archives' sizes) and LastInventoryDate are those of the last
  inventory, null before the first one, as AWS documents.
- The inventory: a point-in-time snapshot taken about once a day (``inventory_interval``) when
  archives were added or deleted since the last one, or at once with ``take_inventory()``. Taking
  one costs O(1): archives are kept in an append-only log with the sequence numbers of their
  creation and deletion, and a snapshot is a sequence number.
- Notifications: Set/Get/DeleteVaultNotifications (``SNSTopic``, ``Events`` of
  ArchiveRetrievalCompleted | InventoryRetrievalCompleted; GET without one: 404). A completed job
  is announced to its own ``SNSTopic`` and to the vault's topic when the vault's configuration
  names the job's event (both, when both are set, as AWS says). The message is the job's
  DescribeJob JSON, published through moto's SNS backend, so an SQS (or any) subscription gets it.
- Archives: UploadArchive (201, ``Location``, ``x-amz-archive-id``, ``x-amz-sha256-tree-hash``).
  The tree hash header is required and checked: not 64 hex digits -> 400
  InvalidParameterValueException "Invalid x-amz-sha256-tree-hash: <value>"; another value than
  the body's -> "Checksum mismatch: expected <given>, computed <actual>" (both AWS's texts). A
  given ``x-amz-content-sha256`` that is not the body's SHA-256 -> 403 InvalidSignatureException
  (this module's reading: the linear hash is part of the signature).
  Descriptions: up to 1,024 printable ASCII characters (0x20-0x7E). Archives are 1 byte to 4 GiB
  in one upload. Every upload is a new archive with a new 138-character ID (base64url, like
  AWS's), whatever its bytes. DeleteArchive is idempotent; a retrieval job already running on a
  deleted archive fails, one accepted for it afterwards fails too (api-archive-delete).
- Multipart upload: InitiateMultipartUpload (``x-amz-part-size`` 1 MiB times a power of two, up
  to 4 GiB, else "Invalid part size: ..."; leading spaces of the description removed, as
  documented), UploadMultipartPart (``Content-Range: bytes a-b/*`` aligned on the part size, the
  body as long as the range, at most a part, parts 0-9,999, the part's tree hash checked; parts in
  any order; uploading a part again replaces it; answers the part's tree hash), ListParts and
  ListMultipartUploads (``limit`` 1-50, default 50, ``marker``), CompleteMultipartUpload
  (``x-amz-archive-size`` must be the parts' total, every part there, all but the last of the
  part size; the archive's tree hash is the tree hash of the parts' tree hashes and must be
  ``x-amz-sha256-tree-hash``, else "Invalid x-amz-sha256-tree-hash: <value>"; repeating a
  successful completion returns the same archive; a failed one leaves the upload open),
  AbortMultipartUpload (idempotent for ``finished_upload_memory``; aborting a completed upload
  fails). An upload untouched for ``upload_idle`` (24 h) is reclaimed.
- Jobs: InitiateJob ``archive-retrieval`` (ArchiveId, Tier Expedited | Standard (default) | Bulk,
  SNSTopic, Description, RetrievalByteRange megabyte-aligned as documented, else 400) and
  ``inventory-retrieval`` (Format JSON (default) | CSV, InventoryRetrievalParameters StartDate,
  EndDate, Limit, Marker; on a vault with no inventory yet: 404 ResourceNotFoundException, this
  module's reading of "a vault inventory must exist for you to be able to download it"). A job
  completes after its tier's
  duration on the emulator's clock (``durations``). DescribeJob returns every field AWS returns,
  null where AWS puts null: Action, ArchiveId, ArchiveSHA256TreeHash, ArchiveSizeInBytes,
  Completed, CompletionDate, CreationDate, InventoryRetrievalParameters, InventorySizeInBytes,
  JobDescription, JobId, RetrievalByteRange, SHA256TreeHash (the retrieved range's tree hash when
  that range is tree-hash aligned; null for a whole-archive job while it runs), SNSTopic,
  StatusCode InProgress | Succeeded | Failed, StatusMessage, Tier, VaultARN. For a completed
  inventory job with a Limit, InventoryRetrievalParameters.Marker is the marker to go on from
  (null at the end). ListJobs: ``completed``, ``statuscode`` (a bad one: "The job status code is
  not valid: <value>", AWS's text), ``limit`` 1-50 (default 50), ``marker``; oldest first.
- Data retrieval policies: Get/SetDataRetrievalPolicy (Strategy None (the default) | FreeTier |
  BytesPerHour). They apply to Standard archive retrievals only, as documented: BytesPerHour
  refuses a job that would take the in-progress Standard jobs' rate over the quota (a job's rate
  is its bytes spread over 4 hours: this module's reading of "peak retrieval rate"), FreeTier
  refuses one that would take the last 24 hours' Standard retrievals over
  ``free_tier_bytes_per_day``. Refused with 400 PolicyEnforcedException (text this module's).
- Expedited capacity: with ``expedited_capacity = False`` an Expedited InitiateJob answers
  InsufficientCapacityException, unless the account has provisioned capacity
  (Purchase/ListProvisionedCapacity; at most 2 units: LimitExceededException). The status is the
  model's 400 (the developer guide's table says 503; botocore goes by the code either way).
- GetJobOutput: 200 with the whole output, or 206 with ``Content-Range`` for a ``Range``
  (``bytes=a-b``, ``bytes=a-``, ``bytes=-n``; relative to the retrieved range); ``Accept-Ranges``,
  ``Content-Type`` (application/octet-stream, application/json or text/csv),
  ``x-amz-archive-description``. ``x-amz-sha256-tree-hash`` (archive jobs only) follows
  checksum-calculations-range: it is sent when the retrieved range is tree-hash aligned and the
  range downloaded is too, both with respect to the archive: a range is tree-hash aligned when
  the root of its tree hash is a node of the archive's tree, that is, it starts at a multiple of
  2^k MiB and is 2^k MiB long or runs to the archive's end. (The SDKs' shorter wording, "starts
  and ends on a multiple of 1 MB", is looser; ``checksum_ranges="megabyte"`` switches to it.) The
  header is the tree hash of the data AWS holds, so a corrupted download (``corrupt_output``)
  mismatches it. Before its job completes, output answers 400 InvalidParameterValueException
  "The job is not currently available for download: <id>" (text this module's). A job and its
  output are kept ``output_window`` (24 h) after completion; then the job is gone: DescribeJob and
  GetJobOutput answer 404 ResourceNotFoundException "The job ID was not found: <id>" (AWS's text),
  ListJobs leaves it out.
- Inventory output: JSON ``{"VaultARN", "InventoryDate", "ArchiveList": [{"ArchiveId",
  "ArchiveDescription", "CreationDate", "Size", "SHA256TreeHash"}]}`` (compact), or CSV with a
  header row (the guide names the five columns without showing a file; AWS's own vault-to-S3
  solution's mock writes the header) and the same five columns, a field quoted when it holds a
  comma or a double quote,
  a double quote inside escaped as ``\\"`` and backslashes left alone (api-job-output-get).
  Entries are in upload order. The output is never held: its size is counted by one streaming
  pass when the job completes, which also notes a checkpoint every 256 entries; a ranged read
  regenerates the entries from the checkpoint before it. An inventory of 1,000,000 archives costs
  a few MB.
- Vault tags (Add/Remove/ListTagsForVault, at most 50: LimitExceededException), access policies
  (Set/Get/DeleteVaultAccessPolicy) and Vault Lock (Initiate/Complete/Abort/GetVaultLock: InProgress
  for 24 h, then Locked or gone) are kept and returned; the policies are not enforced.
- Errors come in Glacier's JSON shape, ``{"code", "message", "type"}`` with ``x-amzn-RequestId``,
  with the model's statuses (texts: see "Error texts" above): ResourceNotFoundException 404,
  InvalidParameterValueException 400, MissingParameterValueException 400, RequestTimeoutException
  408, PolicyEnforcedException 400, InsufficientCapacityException 400, LimitExceededException 400,
  ServiceUnavailableException 500, NoLongerSupportedException 400 (every operation of an account
  marked with ``set_no_longer_supported``), SerializationException 400 (a body that is not JSON),
  AccessDeniedException 403 (an explicit account ID that is not the caller's). Vault not found:
  "Vault not found for ARN: <arn>" (AWS's text). ``inject_error`` makes the next calls of an
  operation fail with any of them (ServiceUnavailableException, RequestTimeoutException ...).
- Accounts and Regions: ``-`` is the caller's account (moto's, from the access key); the Region
  is the SigV4 scope's. Vaults, jobs and uploads of another account or Region do not exist.

Archive data
------------
An uploaded archive's bytes go to a spooled temporary file (memory up to 8 MiB, then disk), read
and hashed 1 MiB at a time as they arrive, never whole. The test hooks can also make archives
whose bytes are generated, never stored: ``pattern="distinct"`` (every MiB differs: a seeded
random MiB, rotated and stamped with the chunk's number; the tree hash is computed by streaming
once, when the archive is made) or ``pattern="repeated"`` (every full MiB the same: a tree hash of
any size costs O(log n), so multi-TiB archives cost nothing). ``GeneratedReader`` reads the same
bytes as a file, for comparisons. Each archive keeps its 1 MiB leaf hashes (32 bytes a MiB), so a
range's tree hash costs its MiB count, never a read.

Cost: every API call is O(1) or O(its page) at any vault size: listings page through sorted
indexes with markers, DescribeJob is a dictionary, GetJobOutput costs its range (plus at most 256
inventory entries). Requests may arrive on any thread: one lock guards the state, data is read
and written outside it.

What is left out
----------------
``select`` jobs and OutputLocation (InvalidParameterValueException: S3 Glacier Select takes no new
customers); IAM and the access and lock policies' effect; SigV4 signature checking; per-archive
storage overhead in SizeInBytes; the 90-day minimum storage charge and any billing; the
approximately-daily inventory's delay of "half a day to a day" before a vault's first inventory
can be retrieved (it can be at once); the 250 MB Expedited caveat; a description that is not ASCII
(possible only through ``put_archive``, as in old vaults) is left out of the
``x-amz-archive-description`` header, which carries ASCII only. The list limits are the current
guide's (ListVaults 10, the others 50; older pages said 1,000): ``LIST_LIMITS``. Whole outputs in
one response are assembled in memory by the local endpoint and the in-process stubber (read large
outputs by ``Range``, as real downloaders do).

Test hooks
----------
``create_vault``; ``put_archive`` (one archive: given bytes, or generated ones of any size) and
``put_archives`` (many at once, O(1) memory, IDs on demand); ``archive_bytes``; ``take_inventory``;
``tick`` / ``complete_all`` / ``pending``; ``fail_job``; ``expire_output`` (the 24 hours are over
now); ``corrupt_output`` (flip a byte range of a job's output in every download from now on);
``inject_error`` (the next calls of an operation fail with a given code); ``expedited_capacity``
(False: Expedited answers InsufficientCapacityException); ``set_no_longer_supported``;
``describe`` and ``iter_job_output`` (a job's document and streamed output, without a request).

Installing it
-------------
``GlacierEmulator(...).install()`` hooks into moto twice: moto's server dispatcher
(``DomainDispatcherApplication.get_application``) hands every request signed for ``glacier`` (or
carrying ``x-amz-glacier-version``) to this module, and the in-process ``mock_aws`` stubber
(``BotocoreStubber.__call__``) answers the same requests of clients inside ``mock_aws()``. It
touches nothing the S3 restore or Batch Operations emulations patch, so they install and uninstall
in any order. In ``local/stack.py`` (nothing to change in ``local/endpoint.py``)::

    from bulk_restore_cli.local.glacier import GlacierEmulator                # with the imports
    self.glacier: GlacierEmulator | None = None                           # in LocalStack.__init__
    # in start(), right after self.batch.start_clock():
    self.glacier = GlacierEmulator(durations=GlacierEmulator.scaled_durations(config.time_scale),
                                   gate=self.moto.application.gate).install()
    self.glacier.start_clock(interval=0.1)
    # in stop(), just before `if self.batch is not None:`
    if self.glacier is not None:
        self.glacier.uninstall()
        self.glacier = None

``scaled_durations(scale)`` multiplies AWS's times (Expedited 5 min, Standard 5 h, Bulk 12 h,
inventory 4 h, the 24 h output window and inventory interval) by the stack's TIME_SCALE, as the
functions scale their own windows. With ``gate`` the clock thread's calls into moto (the SNS
notices) pass the endpoint's admission gate, as requests do. A plain ``boto3.client("glacier",
endpoint_url=<the stack's endpoint>)`` then works; nothing else is needed.
"""

from __future__ import annotations

import base64
import bisect
import collections
import datetime as dt
import hashlib
import heapq
import io
import itertools
import json
import logging
import os
import random
import re
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, BinaryIO
from urllib.parse import parse_qs, unquote, urlsplit

from bulk_restore.domain.vault import TreeHasher, is_tree_hash_node, tree_hash_from_leaves
from bulk_restore.domain.vault import is_tree_hash_aligned as _megabyte_aligned
from bulk_restore.domain.vault import tree_hash as _tree_hash_of_bytes
from bulk_restore_cli.local.ticker import Ticker

log = logging.getLogger(__name__)

MiB = 1 << 20
GiB = 1 << 30
DEFAULT_ACCOUNT = "123456789012"
DEFAULT_REGION = "us-east-1"
TIERS = ("Expedited", "Standard", "Bulk")
EVENTS = ("ArchiveRetrievalCompleted", "InventoryRetrievalCompleted")
STATUS_CODES = ("InProgress", "Succeeded", "Failed")
MAX_DESCRIPTION = 1024
MAX_SINGLE_UPLOAD = 4 * GiB
MAX_PARTS = 10_000
MIN_PART, MAX_PART = MiB, 4 * GiB
MAX_TAGS = 50
MAX_CAPACITY_UNITS = 2
POLICY_RATE_HOURS = 4  # a Standard retrieval's bytes count as spread over 4 hours (this module's reading)
INVENTORY_CHECKPOINT = 256  # entries between two checkpoints of an inventory output
LIST_LIMITS = {"ListVaults": (10, 10), "ListJobs": (50, 50), "ListParts": (50, 50), "ListMultipartUploads": (50, 50)}  # (default, max)
CSV_HEADER = b"ArchiveId,ArchiveDescription,CreationDate,Size,SHA256TreeHash\n"

# AWS's times (upper bounds of the documented typical ones), in seconds.
AWS_DURATIONS: dict[str, float] = {
    "Expedited": 5 * 60,
    "Standard": 5 * 3600,
    "Bulk": 12 * 3600,
    "inventory": 4 * 3600,  # an inventory retrieval job
    "output_window": 24 * 3600,  # a completed job and its output are kept this long
    "inventory_interval": 24 * 3600,  # a written vault's inventory is taken this long after its first change
    "upload_idle": 24 * 3600,  # a multipart upload untouched this long is reclaimed
    "vault_lock": 24 * 3600,  # an InProgress vault lock expires
    "finished_upload_memory": 3600,  # a completed/aborted upload ID still answers Complete/Abort this long
}

# Error code -> (HTTP status, type). Statuses from botocore's glacier model; the rest from api-error-responses.
ERRORS: dict[str, tuple[int, str]] = {
    "ResourceNotFoundException": (404, "Client"),
    "InvalidParameterValueException": (400, "Client"),
    "MissingParameterValueException": (400, "Client"),
    "RequestTimeoutException": (408, "Client"),
    "PolicyEnforcedException": (400, "Client"),
    "InsufficientCapacityException": (400, "Server"),
    "LimitExceededException": (400, "Client"),
    "ServiceUnavailableException": (500, "Server"),
    "NoLongerSupportedException": (400, "Client"),
    "SerializationException": (400, "Client"),
    "AccessDeniedException": (403, "Client"),
    "InvalidSignatureException": (403, "Client"),
    "ThrottlingException": (400, "Client"),
    "BadRequest": (400, "Client"),
}


class GlacierError(Exception):
    """A Glacier API error: code, message, HTTP status and type (Client | Server)."""

    def __init__(self, code: str, message: str, status: int | None = None):
        super().__init__(f"{code}: {message}")
        self.code, self.message = code, message
        default_status, self.kind = ERRORS.get(code, (400, "Client"))
        self.status = status or default_status


def _invalid(message: str) -> GlacierError:
    return GlacierError("InvalidParameterValueException", message)


def _missing(message: str) -> GlacierError:
    return GlacierError("MissingParameterValueException", message)


# ---- time --------------------------------------------------------------------------------------


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _iso_ms(moment: dt.datetime) -> str:
    moment = moment.astimezone(dt.UTC)
    return (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T{moment.hour:02d}:{moment.minute:02d}:"
        f"{moment.second:02d}.{moment.microsecond // 1000:03d}Z"
    )


def _iso_ms_naive(moment: dt.datetime) -> str:
    """A naive UTC datetime as ISO 8601 with milliseconds and Z (C-speed)."""
    return moment.isoformat(timespec="milliseconds") + "Z"


def _json_text(text: str) -> bytes:
    if text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
        return b'"' + text.encode("ascii") + b'"'
    return json.dumps(text, ensure_ascii=False).encode("utf-8")


def _iso_s(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_date(value: str, name: str) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as exc:
        raise _invalid(f"Invalid {name}: {value}. It must be an ISO 8601 date, for example 2013-03-20T17:03:43Z") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


# ---- the SHA-256 tree hash ---------------------------------------------------------------------

_sha256 = hashlib.sha256
EMPTY_HASH = _sha256(b"").digest()


def _push(runs: list[list[Any]], digest: bytes, count: int) -> None:
    if runs and runs[-1][0] == digest:
        runs[-1][1] += count
    else:
        runs.append([digest, count])


def tree_of_runs(runs: Iterable[tuple[bytes, int]]) -> bytes:
    """The root of a tree hash whose leaves are given run-length encoded: (digest, repeat count).

    Each level pairs neighbours (SHA-256 of the two digests concatenated); an odd one out moves up
    unchanged (checksum-calculations). Runs of equal digests pair among themselves in one step, so
    n equal leaves cost O(log n)."""
    level: list[list[Any]] = []
    for digest, count in runs:
        if count > 0:
            _push(level, digest, count)
    if not level:
        return EMPTY_HASH
    while not (len(level) == 1 and level[0][1] == 1):
        above: list[list[Any]] = []
        pending: bytes | None = None
        for digest, count in level:
            if pending is not None:
                _push(above, _sha256(pending + digest).digest(), 1)
                pending = None
                count -= 1
                if count == 0:
                    continue
            pairs, odd = divmod(count, 2)
            if pairs:
                _push(above, _sha256(digest + digest).digest(), pairs)
            if odd:
                pending = digest
        if pending is not None:
            _push(above, pending, 1)
        level = above
    return level[0][0]


def tree_hash(data: bytes | bytearray | memoryview | BinaryIO) -> str:
    """The SHA-256 tree hash (hex) of bytes or of a binary stream read 1 MiB at a time."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        return _tree_hash_of_bytes(data)
    hasher = TreeHasher()
    while chunk := data.read(MiB):
        hasher.update(chunk)
    return hasher.hexdigest()


def tree_hash_of_hashes(hashes: Sequence[str]) -> str:
    """The tree hash of tree hashes (hex), as CompleteMultipartUpload wants it: each a part's tree
    hash, the parts of one power-of-two MiB size in order."""
    return tree_hash_from_leaves(bytes.fromhex(h) for h in hashes).hex()


def _read_exactly(stream: BinaryIO, size: int) -> bytes:
    """Up to ``size`` bytes: fewer only at the end of the stream."""
    parts: list[bytes] = []
    wanted = size
    while wanted > 0:
        piece = stream.read(wanted)
        if not piece:
            break
        parts.append(piece)
        wanted -= len(piece)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _chunks(size: int) -> int:
    """The number of 1 MiB leaves of ``size`` bytes (an empty archive has one, the empty string's)."""
    return max(1, -(-size // MiB))


def is_tree_hash_aligned(start: int, stop: int, size: int) -> bool:
    """Whether bytes [start, stop) of an archive of ``size`` bytes are tree-hash aligned: the root of
    their tree hash is a node of the archive's tree (checksum-calculations-range, the domain's
    ``is_tree_hash_node``). The whole of an empty archive is; a range outside the archive is not."""
    if not 0 <= start < stop <= size:
        return start == 0 and stop == size == 0
    return is_tree_hash_node(start, stop - 1, size)


def is_megabyte_aligned(start: int, stop: int, size: int) -> bool:
    """Bytes [start, stop): starting on a MiB and ending on one or at the archive's end (the API
    reference's rule, the domain's ``is_tree_hash_aligned``)."""
    return 0 <= start < stop <= size and _megabyte_aligned(start, stop - 1, size)


# ---- archive content ---------------------------------------------------------------------------


class _Content:
    """An archive's bytes: size, ranged reads and its 1 MiB leaf hashes."""

    size: int

    def iter_range(self, start: int, stop: int) -> Iterator[bytes]:
        raise NotImplementedError

    def leaf_runs(self, first: int, end: int) -> list[tuple[bytes, int]]:
        raise NotImplementedError

    def tree_hash(self, start: int = 0, stop: int | None = None) -> str:
        """The tree hash of bytes [start, stop), a range starting on a MiB."""
        stop = self.size if stop is None else stop
        if self.size == 0:
            return EMPTY_HASH.hex()
        return tree_of_runs(self.leaf_runs(start // MiB, _chunks(stop))).hex()

    def read(self, start: int, stop: int) -> bytes:
        return b"".join(self.iter_range(start, stop))

    def close(self) -> None:
        pass


class _StoredContent(_Content):
    """Uploaded bytes in a spooled temporary file, with their leaf hashes (32 bytes a MiB)."""

    def __init__(self) -> None:
        self.file: Any = tempfile.SpooledTemporaryFile(max_size=8 * MiB)
        self.lock = threading.Lock()
        self.size = 0
        self.leaves = bytearray()

    def write_at(self, offset: int, data: bytes) -> None:
        with self.lock:
            self.file.seek(offset)
            self.file.write(data)

    def iter_range(self, start: int, stop: int) -> Iterator[bytes]:
        position = start
        while position < stop:
            with self.lock:
                self.file.seek(position)
                piece = self.file.read(min(MiB, stop - position))
            if not piece:
                raise OSError("archive data shorter than its size")
            position += len(piece)
            yield piece

    def leaf_runs(self, first: int, end: int) -> list[tuple[bytes, int]]:
        leaves = self.leaves
        return [(bytes(leaves[32 * k : 32 * k + 32]), 1) for k in range(first, end)]

    def close(self) -> None:
        self.file.close()


_ROTATE = 0x9E3779B1
_base_blocks: dict[int, bytes] = {}
_base_lock = threading.Lock()


def _base_block(seed: int) -> bytes:
    with _base_lock:
        block = _base_blocks.get(seed)
        if block is None:
            if len(_base_blocks) >= 16:
                _base_blocks.pop(next(iter(_base_blocks)))
            block = hashlib.shake_256(b"bulk-restore glacier archive %d" % seed).digest(MiB)
            _base_blocks[seed] = block
        return block


def generated_chunk(seed: int, index: int, pattern: str = "distinct") -> bytes:
    """The full 1 MiB chunk ``index`` of a generated archive (the last chunk is its prefix)."""
    base = _base_block(seed)
    if pattern == "repeated":
        return base
    turn = (index * _ROTATE) % MiB  # the seeded MiB rotated, its first 8 bytes the chunk's number
    rotated = base[turn:] + base[:turn]
    return index.to_bytes(8, "big") + rotated[8:]


class _GeneratedContent(_Content):
    """Bytes made from a seed on demand, never stored (see ``generated_chunk``)."""

    def __init__(self, size: int, seed: int, pattern: str):
        if pattern not in ("distinct", "repeated"):
            raise ValueError("pattern must be 'distinct' or 'repeated'")
        if size < 0:
            raise ValueError("size must be 0 or more")
        self.size, self.seed, self.pattern = size, seed, pattern
        total = _chunks(size)
        last_length = size - (total - 1) * MiB
        if pattern == "repeated":
            block = _base_block(seed)
            self.full = _sha256(block).digest()
            self.last = _sha256(block[:last_length]).digest()
            self.leaves = None
        else:  # every leaf hashed once, streaming, now
            leaves = bytearray()
            for k in range(total):
                chunk = generated_chunk(seed, k)
                leaves += _sha256(chunk if k < total - 1 else chunk[:last_length]).digest()
            self.leaves = leaves

    def iter_range(self, start: int, stop: int) -> Iterator[bytes]:
        position = start
        while position < stop:
            k, offset = divmod(position, MiB)
            piece = generated_chunk(self.seed, k, self.pattern)[offset : min(MiB, offset + stop - position)]
            position += len(piece)
            yield piece

    def leaf_runs(self, first: int, end: int) -> list[tuple[bytes, int]]:
        if self.leaves is not None:
            leaves = self.leaves
            return [(bytes(leaves[32 * k : 32 * k + 32]), 1) for k in range(first, end)]
        total = _chunks(self.size)
        runs = [(self.full, min(end, total - 1) - first)] if first < total - 1 else []
        if end == total:
            runs.append((self.last, 1))
        return runs


class GeneratedReader(io.RawIOBase):
    """A generated archive's bytes as a readable binary file (``seed``, ``size``, ``pattern`` as
    given to ``put_archive``): to hash or compare them without holding them."""

    def __init__(self, seed: int, size: int, pattern: str = "distinct"):
        self.seed, self.size, self.pattern, self.position = seed, size, pattern, 0
        self._chunk: tuple[int, bytes] = (-1, b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.position >= self.size:
            return 0
        k, offset = divmod(self.position, MiB)
        if self._chunk[0] != k:
            self._chunk = (k, generated_chunk(self.seed, k, self.pattern))
        piece = self._chunk[1][offset : offset + min(len(buffer), self.size - self.position)]
        buffer[: len(piece)] = piece
        self.position += len(piece)
        return len(piece)


# ---- the state ---------------------------------------------------------------------------------


class _SeqIndex:
    """Items ordered by a sequence number: add, remove (lazily) and iterate from a number in O(log n)."""

    def __init__(self) -> None:
        self.keys: list[int] = []
        self.items: dict[int, Any] = {}
        self.dead = 0

    def __len__(self) -> int:
        return len(self.items)

    def add(self, seq: int, item: Any) -> None:
        if not self.keys or seq > self.keys[-1]:
            self.keys.append(seq)
        else:
            bisect.insort(self.keys, seq)
        self.items[seq] = item

    def remove(self, seq: int) -> None:
        if self.items.pop(seq, None) is not None:
            self.dead += 1
            if self.dead > 64 and self.dead * 2 > len(self.keys):
                self.keys = [key for key in self.keys if key in self.items]
                self.dead = 0

    def iter_from(self, seq: int) -> Iterator[tuple[int, Any]]:
        keys, items = self.keys, self.items
        index = bisect.bisect_left(keys, seq)
        while index < len(keys):
            key = keys[index]
            item = items.get(key)
            if item is not None:
                yield key, item
            index += 1


@dataclass(eq=False)
class _Snapshot:
    """A vault inventory: the archives alive at sequence number ``seq``."""

    seq: int
    date: dt.datetime
    count: int
    size: int
    run_count: int  # the archive log's length then


@dataclass(eq=False)
class _Run:
    """``count`` archives made together (one upload is a run of one), sharing content and size."""

    id: int
    vault: _Vault
    pos: int  # in vault.runs
    seq: int
    count: int
    size: int
    tree_hash: str
    content: _Content | None
    description: str | Callable[[int], str]
    created: dt.datetime
    step: dt.timedelta
    deleted: dict[int, int] = field(default_factory=dict)  # index -> sequence number of its deletion
    alive: int = 0
    archive_id0: str = ""  # the ID of a run of one
    json_description: bytes | None = None  # cached encodings of a fixed description and date
    csv_description: bytes | None = None
    created_text: bytes | None = None
    created_naive: dt.datetime | None = None
    size_text: bytes = b""
    tree_text: bytes = b""

    def description_of(self, index: int) -> str:
        return self.description(index) if callable(self.description) else self.description

    def created_of(self, index: int) -> dt.datetime:
        return self.created + self.step * index if index else self.created

    def created_text_of(self, index: int) -> bytes:
        if self.created_text is not None:
            return self.created_text
        return _iso_ms_naive(self.created_naive + self.step * index).encode("ascii")


@dataclass(eq=False)
class _Vault:
    account: str
    region: str
    name: str
    arn: str
    created: dt.datetime
    runs: list[_Run] = field(default_factory=list)
    alive: int = 0
    alive_size: int = 0
    write_seq: int = 0  # the sequence number of the last write (0: never written)
    snapshot: _Snapshot | None = None
    dirty_since: float | None = None  # clock time of the first write since the last inventory
    notifications: dict[str, Any] | None = None
    access_policy: str | None = None
    lock: dict[str, Any] | None = None
    tags: dict[str, str] = field(default_factory=dict)
    jobs: dict[str, _SeqIndex] = field(default_factory=lambda: {name: _SeqIndex() for name in ("all", *STATUS_CODES)})
    uploads: _SeqIndex = field(default_factory=_SeqIndex)


@dataclass(eq=False)
class _Upload:
    id: str
    vault: _Vault
    seq: int
    part_size: int
    description: str | None
    created: dt.datetime
    touched: float
    content: _StoredContent
    writing: threading.Lock = field(default_factory=threading.Lock)  # one part written into the upload at a time
    parts: dict[int, tuple[int, bytes, str]] = field(default_factory=dict)  # index -> (size, leaves, tree hash hex)
    order: list[int] = field(default_factory=list)  # part indexes, sorted


@dataclass(eq=False)
class _Job:
    id: str
    vault: _Vault
    seq: int
    action: str  # ArchiveRetrieval | InventoryRetrieval
    created: dt.datetime
    due: float
    tier: str | None
    description: str | None
    sns_topic: str | None
    status: str = "InProgress"
    message: str = "Operation in progress."
    completed: dt.datetime | None = None
    expires: float | None = None
    # archive retrieval
    run: _Run | None = None
    index: int = 0
    content: _Content | None = None
    archive_id: str | None = None
    archive_size: int | None = None
    archive_tree_hash: str | None = None
    start: int = 0
    stop: int = 0
    range_text: str | None = None
    range_aligned: bool = False
    range_tree_hash: str | None = None
    archive_description: str = ""
    # inventory retrieval
    inventory: _InventoryOutput | None = None
    inventory_params: dict[str, str | None] | None = None
    corruptions: list[tuple[int, int]] = field(default_factory=list)
    forced_failure: str | None = None
    counted: bool = False  # its bytes count in the Standard retrievals in progress

    @property
    def output_size(self) -> int:
        if self.inventory is not None:
            return self.inventory.size
        return self.stop - self.start


# ---- the inventory output ----------------------------------------------------------------------


def _csv_field(text: str) -> str:
    """api-job-output-get: quoted when it holds a comma or a double quote; a double quote inside
    escaped with a backslash; backslashes themselves not escaped."""
    if "," in text or '"' in text:
        return '"' + text.replace('"', '\\"') + '"'
    return text


class _InventoryOutput:
    """A vault inventory's job output, generated on demand from the archive log and a snapshot."""

    def __init__(
        self,
        emulator: GlacierEmulator,
        vault: _Vault,
        snapshot: _Snapshot,
        fmt: str,
        start_date: dt.datetime | None,
        end_date: dt.datetime | None,
        limit: int | None,
        start_pos: int,
        start_index: int,
    ):
        self.emulator, self.vault, self.snapshot, self.format = emulator, vault, snapshot, fmt
        self.start_date, self.end_date, self.limit = start_date, end_date, limit
        self.start_pos, self.start_index = start_pos, start_index
        if fmt == "CSV":
            self.prefix, self.suffix = CSV_HEADER, b""
        else:
            self.prefix = (
                b'{"VaultARN":'
                + json.dumps(vault.arn).encode()
                + b',"InventoryDate":"'
                + _iso_s(snapshot.date).encode()
                + b'","ArchiveList":['
            )
            self.suffix = b"]}"
        self.size = 0
        self.count = 0
        self.next_marker: str | None = None
        self.offsets: list[int] = []  # checkpoints: byte offset, archive log position, index, entries before
        self.checkpoints: list[tuple[int, int, int]] = []

    def _indexes(self, run: _Run, index: int) -> Iterable[int]:
        """The indexes of a run's archives in this inventory, from ``index`` on: a range when none can
        be filtered out. Deletions later than the snapshot carry later sequence numbers, so the
        answer never changes, whatever is deleted meanwhile."""
        if not run.deleted and self.start_date is None and self.end_date is None:
            return range(index, run.count)
        return self._filtered(run, index)

    def _filtered(self, run: _Run, index: int) -> Iterator[int]:
        seq, deleted = self.snapshot.seq, run.deleted
        start_date, end_date = self.start_date, self.end_date
        for i in range(index, run.count):
            gone = deleted.get(i)
            if gone is not None and gone <= seq:
                continue
            if start_date is not None or end_date is not None:
                created = run.created_of(i)
                if (start_date is not None and created < start_date) or (end_date is not None and created >= end_date):
                    continue
            yield i

    def _matching(self, pos: int, index: int) -> Iterator[tuple[_Run, int]]:
        runs, last = self.vault.runs, self.snapshot.run_count
        while pos < last:
            run = runs[pos]
            for i in self._indexes(run, index):
                yield run, i
            pos += 1
            index = 0

    def _description(self, run: _Run, index: int) -> bytes:
        if self.format == "CSV":
            return run.csv_description if run.csv_description is not None else _csv_field(run.description_of(index)).encode("utf-8")
        return run.json_description if run.json_description is not None else _json_text(run.description_of(index))

    def _entry(self, run: _Run, index: int, first: bool) -> bytes:
        archive_id = self.emulator._archive_id(run, index).encode("ascii")
        created = run.created_text_of(index)
        description = self._description(run, index)
        if self.format == "CSV":
            return b"".join((archive_id, b",", description, b",", created, b",", run.size_text, b",", run.tree_text, b"\n"))
        return b"".join(
            (
                b'{"ArchiveId":"' if first else b',{"ArchiveId":"',
                archive_id,
                b'","ArchiveDescription":',
                description,
                b',"CreationDate":"',
                created,
                b'","Size":',
                run.size_text,
                b',"SHA256TreeHash":"',
                run.tree_text,
                b'"}',
            )
        )

    def compute(self) -> None:
        """One pass: the output's size, its entry count, the next marker and a checkpoint every
        INVENTORY_CHECKPOINT entries. It counts lengths (IDs are 138 characters, dates 24: only a
        description's length varies) and never builds the output; a run of archives none of which is
        filtered out, with one description, is counted arithmetically."""
        offset, emitted = len(self.prefix), 0
        offsets: list[int] = []
        checkpoints: list[tuple[int, int, int]] = []
        limit = self.limit
        comma = 0 if self.format == "CSV" else 1
        runs, last = self.vault.runs, self.snapshot.run_count
        pos, index = self.start_pos, self.start_index
        done = False
        while pos < last and not done:
            run = runs[pos]
            indexes = self._indexes(run, index)
            fixed = (run.csv_description if self.format == "CSV" else run.json_description) is not None
            constant = -1
            for i in indexes:
                if limit is not None and emitted == limit:
                    self.next_marker = self.emulator._archive_id(run, i)
                    done = True
                    break
                if constant < 0:  # the length of an entry of this run, but for its description (and comma)
                    constant = len(self._entry(run, i, True)) - len(self._description(run, i))
                if emitted % INVENTORY_CHECKPOINT == 0:
                    offsets.append(offset)
                    checkpoints.append((pos, i, emitted))
                length = constant + len(self._description(run, i))
                offset += length + (comma if emitted else 0)
                emitted += 1
                if fixed and isinstance(indexes, range) and emitted > 1:
                    # the rest of the run at once: every entry `length + comma` bytes long
                    rest = len(indexes) - (i - indexes.start) - 1
                    if limit is not None:
                        rest = min(rest, limit - emitted)
                    step = length + comma
                    following = emitted + ((-emitted) % INVENTORY_CHECKPOINT)
                    while following < emitted + rest:
                        offsets.append(offset + (following - emitted) * step)
                        checkpoints.append((pos, i + 1 + following - emitted, following))
                        following += INVENTORY_CHECKPOINT
                    offset += rest * step
                    emitted += rest
                    after = i + 1 + rest
                    if limit is not None and emitted == limit and after < run.count:
                        self.next_marker = self.emulator._archive_id(run, after)
                        done = True
                    break
            if done or (limit is not None and emitted == limit):
                if not done:  # the limit ended exactly at this run's end: is there another entry?
                    for following_run, following_index in self._matching(pos + 1, 0):
                        self.next_marker = self.emulator._archive_id(following_run, following_index)
                        break
                break
            pos, index = pos + 1, 0
        self.offsets, self.checkpoints = offsets, checkpoints
        self.count = emitted
        self.size = offset + len(self.suffix)

    def iter_range(self, start: int, stop: int) -> Iterator[bytes]:
        prefix_end = len(self.prefix)
        if start < prefix_end:
            yield self.prefix[start : min(stop, prefix_end)]
        entries_end = self.size - len(self.suffix)
        if stop > prefix_end and start < entries_end and self.offsets:
            at = max(bisect.bisect_right(self.offsets, max(start, prefix_end)) - 1, 0)
            offset = self.offsets[at]
            pos, index, emitted = self.checkpoints[at]
            for run, i in self._matching(pos, index):
                if emitted >= self.count or offset >= stop:
                    break
                entry = self._entry(run, i, emitted == 0)
                end = offset + len(entry)
                if end > start:
                    yield entry[max(0, start - offset) : min(len(entry), stop - offset)]
                offset, emitted = end, emitted + 1
        if stop > entries_end:
            yield self.suffix[max(0, start - entries_end) : stop - entries_end]


@dataclass(frozen=True)
class ArchiveBatch:
    """Archives made by ``put_archives``: ``ids`` is computed on demand (a sequence, never a list)."""

    emulator: GlacierEmulator
    run: _Run

    @property
    def count(self) -> int:
        return self.run.count

    @property
    def size(self) -> int:
        return self.run.size

    @property
    def tree_hash(self) -> str:
        return self.run.tree_hash

    @property
    def ids(self) -> Sequence[str]:
        return _Ids(self.emulator, self.run)


class _Ids(Sequence[str]):
    def __init__(self, emulator: GlacierEmulator, run: _Run):
        self.emulator, self.run = emulator, run

    def __len__(self) -> int:
        return self.run.count

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        return self.emulator._archive_id(self.run, index)


# ---- the hooks into moto -----------------------------------------------------------------------

_hook_lock = threading.RLock()
_installed: GlacierEmulator | None = None
_originals: dict[str, Any] = {}
_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]+")
_SCOPE = re.compile(r"Credential=([^/,\s]+)/\d{8}/([^/]+)/([^/]+)/")


def _signed_for(authorization: str) -> tuple[str, str, str] | None:
    """(access key, region, service) of a SigV4 Authorization header."""
    match = _SCOPE.search(authorization or "")
    return (match.group(1), match.group(2), match.group(3)) if match else None


def _is_glacier(host: str, headers: Mapping[str, str]) -> bool:
    if "x-amz-glacier-version" in headers:
        return True
    scope = _signed_for(headers.get("authorization", ""))
    if scope is not None:
        return scope[2] == "glacier"
    return host.startswith(("glacier.", "glacier-fips."))


def _patched_get_application(self: Any, environ: dict[str, Any]) -> Any:
    emulator = _installed
    if emulator is not None:
        headers = {"authorization": environ.get("HTTP_AUTHORIZATION", "")}
        if environ.get("HTTP_X_AMZ_GLACIER_VERSION"):
            headers["x-amz-glacier-version"] = environ["HTTP_X_AMZ_GLACIER_VERSION"]
        if _is_glacier(environ.get("HTTP_HOST", ""), headers):
            return emulator.wsgi
    return _originals["get_application"](self, environ)


def _patched_stubber_call(self: Any, event_name: str, request: Any, **kwargs: Any) -> Any:
    emulator = _installed
    if emulator is not None and getattr(self, "enabled", False):
        headers = {str(k).lower(): v.decode("utf-8") if isinstance(v, bytes) else str(v) for k, v in request.headers.items()}
        if _is_glacier(urlsplit(request.url).netloc, headers):
            return emulator._stubbed(request, headers)
    return _originals["stubber_call"](self, event_name, request, **kwargs)


class _Body:
    """A request body read at most ``length`` bytes (or to its end when the length is unknown)."""

    def __init__(self, stream: Any, length: int | None):
        self.stream, self.left = stream, length

    def read(self, size: int = -1) -> bytes:
        if self.stream is None or self.left == 0:
            return b""
        if self.left is not None:
            size = self.left if size < 0 else min(size, self.left)
        data = self.stream.read(size) if size >= 0 else self.stream.read()
        if self.left is not None:
            self.left -= len(data)
            if not data:
                self.left = 0
        return data or b""

    def drain(self) -> None:
        while self.read(MiB):
            pass


@dataclass
class _Request:
    method: str
    parts: list[str]
    query: dict[str, list[str]]
    headers: Mapping[str, str]  # lower-case names
    body: _Body
    account: str
    region: str

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else None

    def json(self) -> dict[str, Any]:
        raw = self.body.read()
        if not raw.strip():
            return {}
        try:
            value = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise GlacierError("SerializationException", "The request body is not valid JSON") from exc
        if not isinstance(value, dict):
            raise GlacierError("SerializationException", "The request body must be a JSON object")
        return value


Answer = tuple[int, dict[str, str], "bytes | Iterator[bytes]"]


# ---- the emulator ------------------------------------------------------------------------------


class GlacierEmulator:
    """The Glacier vault API on moto's endpoint and in ``mock_aws``; jobs complete on a clock.

    ``clock``: monotonic seconds (the time source of durations; a test passes its own and calls
    ``tick()``). ``start_time``: the UTC date the clock's first reading stands for (dates advance
    with the clock). ``durations``: seconds per key of ``AWS_DURATIONS`` (a partial mapping
    overrides those keys). ``gate``: the endpoint's AdmissionGate, passed by the clock's calls
    into moto. ``seed``: makes archive, job and upload IDs repeatable. ``checksum_ranges``:
    "tree" (checksum-calculations-range) or "megabyte" (the SDK docs' wording).
    ``free_tier_bytes_per_day``: the FreeTier policy's daily allowance. ``vault_limit``: vaults
    per account and Region.
    """

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        durations: Mapping[str, float] | None = None,
        *,
        start_time: dt.datetime | None = None,
        gate: Any = None,
        seed: int | None = None,
        checksum_ranges: str = "tree",
        free_tier_bytes_per_day: int = 10 * GiB // 30,
        vault_limit: int = 1000,
    ):
        unknown = set(durations or {}) - set(AWS_DURATIONS)
        if unknown:
            raise ValueError(f"unknown duration(s) {sorted(unknown)}: known are {sorted(AWS_DURATIONS)}")
        if checksum_ranges not in ("tree", "megabyte"):
            raise ValueError("checksum_ranges must be 'tree' or 'megabyte'")
        self.clock = clock
        self.durations: dict[str, float] = {**AWS_DURATIONS, **(durations or {})}
        self._clock0 = clock()
        self._time0 = (start_time or _utcnow()).astimezone(dt.UTC)
        self.gate = gate
        self.checksum_ranges = checksum_ranges
        self.free_tier_bytes_per_day = free_tier_bytes_per_day
        self.vault_limit = vault_limit
        self.expedited_capacity = True
        self._secret = hashlib.sha256(b"glacier %r" % seed).digest() if seed is not None else os.urandom(32)
        self._rng = random.Random(seed)
        self._mask = int.from_bytes(hashlib.sha256(self._secret + b"mask").digest()[:16], "big")
        self._lock = threading.RLock()
        self._tick_lock = threading.Lock()
        self._seq = itertools.count(1)
        self._run_ids = itertools.count(1)
        self._vaults: dict[tuple[str, str], dict[str, _Vault]] = {}
        self._vault_names: dict[tuple[str, str], list[str]] = {}
        self._runs: dict[int, _Run] = {}
        self._jobs: dict[str, _Job] = {}
        self._uploads: dict[str, _Upload] = {}
        self._finished_uploads: dict[
            str, tuple[str, float, str | None, int | None, str | None]
        ] = {}  # id -> (state, until, archive id, size, hash)
        self._due: list[tuple[float, int, str]] = []  # (due, seq, job id)
        self._expiring: list[tuple[float, int, str]] = []  # (expires, seq, job id)
        self._dirty: dict[int, _Vault] = {}
        self._policies: dict[tuple[str, str], dict[str, Any]] = {}
        self._standard_window: dict[tuple[str, str], collections.deque[tuple[float, int]]] = {}  # Standard retrievals, 24 h
        self._standard_window_bytes: dict[tuple[str, str], int] = {}
        self._standard_running: dict[tuple[str, str], int] = {}  # bytes of the Standard retrievals in progress
        self._idle: list[tuple[float, int, str]] = []  # (reclaim at, seq, upload id), checked against the upload's activity
        self._forgetting: list[tuple[float, str]] = []  # (forget at, upload id) of completed and aborted uploads
        self._capacity: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self._faults: dict[str, list[tuple[str, str | None]]] = {}
        self._closed_accounts: set[str] = set()
        self.completed = 0
        self._clock = Ticker("glacier-clock", self.tick, join_timeout=10)

    @staticmethod
    def scaled_durations(scale: float) -> dict[str, float]:
        """AWS's durations multiplied by ``scale`` (the local stack's TIME_SCALE)."""
        if scale <= 0:
            raise ValueError("scale must be more than 0")
        return {name: seconds * scale for name, seconds in AWS_DURATIONS.items()}

    # ---- installation --------------------------------------------------------------------------

    def install(self) -> GlacierEmulator:
        """Hook into moto's server dispatcher and in-process stubber (idempotent). One emulator at a time."""
        global _installed
        with _hook_lock:
            if _installed is self:
                return self
            if _installed is not None:
                raise RuntimeError("another GlacierEmulator is installed: uninstall it first")
            from moto.core.botocore_stubber import BotocoreStubber
            from moto.moto_server.werkzeug_app import DomainDispatcherApplication

            if DomainDispatcherApplication.get_application is not _patched_get_application:
                _originals["get_application"] = DomainDispatcherApplication.get_application
                DomainDispatcherApplication.get_application = _patched_get_application
            if BotocoreStubber.__call__ is not _patched_stubber_call:
                _originals["stubber_call"] = BotocoreStubber.__call__
                BotocoreStubber.__call__ = _patched_stubber_call
            _installed = self
        return self

    def uninstall(self) -> None:
        """Stop the clock, unhook, and forget every vault, archive and job (idempotent)."""
        global _installed
        self.stop_clock()
        with _hook_lock:
            if _installed is not self:
                return
            from moto.core.botocore_stubber import BotocoreStubber
            from moto.moto_server.werkzeug_app import DomainDispatcherApplication

            if DomainDispatcherApplication.get_application is _patched_get_application:
                DomainDispatcherApplication.get_application = _originals["get_application"]
            if BotocoreStubber.__call__ is _patched_stubber_call:
                BotocoreStubber.__call__ = _originals["stubber_call"]
            # _originals stays filled: a request already inside a patched method still finds them.
            _installed = None
        with self._tick_lock, self._lock:
            for upload in self._uploads.values():
                upload.content.close()
            for run in self._runs.values():
                if run.content is not None:
                    run.content.close()
            self._vaults.clear()
            self._vault_names.clear()
            self._runs.clear()
            self._jobs.clear()
            self._uploads.clear()
            self._finished_uploads.clear()
            self._due.clear()
            self._expiring.clear()
            self._idle.clear()
            self._forgetting.clear()
            self._dirty.clear()

    @property
    def installed(self) -> bool:
        return _installed is self

    def __enter__(self) -> GlacierEmulator:
        return self.install()

    def __exit__(self, *exc: object) -> None:
        self.uninstall()

    # ---- the clock -----------------------------------------------------------------------------

    def now(self) -> dt.datetime:
        """The emulated UTC date: ``start_time`` plus the clock's advance."""
        return self._time0 + dt.timedelta(seconds=self.clock() - self._clock0)

    def _date_at(self, moment: float) -> dt.datetime:
        return self._time0 + dt.timedelta(seconds=moment - self._clock0)

    def start_clock(self, interval: float = 0.1) -> None:
        """Tick in a background thread every ``interval`` seconds."""
        self._clock.start(interval)

    def stop_clock(self) -> None:
        self._clock.stop()

    def pending(self) -> int:
        """Jobs still in progress."""
        with self._lock:
            return sum(1 for job in self._jobs.values() if job.status == "InProgress")

    def tick(self, now: float | None = None) -> int:
        """Complete every job that is due, expire outputs past their window, take the inventories
        that are due and reclaim idle uploads. Returns the jobs completed."""
        with self._tick_lock:
            moment = self.clock() if now is None else now
            due: list[_Job] = []
            with self._lock:
                while self._due and self._due[0][0] <= moment:
                    _, _, job_id = heapq.heappop(self._due)
                    job = self._jobs.get(job_id)
                    if job is not None and job.status == "InProgress":
                        due.append(job)
            done = sum(1 for job in due if self._complete(job, moment))
            self._housekeeping(moment)
            return done

    def complete_all(self) -> int:
        """Complete every job in progress now, due or not. Returns how many completed."""
        with self._tick_lock:
            moment = self.clock()
            with self._lock:
                jobs = sorted((job for job in self._jobs.values() if job.status == "InProgress"), key=lambda job: job.seq)
            return sum(1 for job in jobs if self._complete(job, moment))

    def _housekeeping(self, moment: float) -> None:
        with self._lock:
            while self._expiring and self._expiring[0][0] <= moment:
                _, _, job_id = heapq.heappop(self._expiring)
                job = self._jobs.get(job_id)
                if job is not None and job.expires is not None and job.expires <= moment:
                    self._forget_job(job)
            interval = self.durations["inventory_interval"]
            for vault in list(self._dirty.values()):
                if vault.dirty_since is not None and moment - vault.dirty_since >= interval:
                    self._take_inventory(vault, moment)
            idle = self.durations["upload_idle"]
            while self._idle and self._idle[0][0] <= moment:
                _, seq, upload_id = heapq.heappop(self._idle)
                upload = self._uploads.get(upload_id)
                if upload is None:
                    continue
                if moment - upload.touched >= idle:
                    self._drop_upload(upload, "aborted", moment)
                else:  # touched since: look again when it could be idle
                    heapq.heappush(self._idle, (upload.touched + idle, seq, upload_id))
            while self._forgetting and self._forgetting[0][0] <= moment:
                _, upload_id = heapq.heappop(self._forgetting)
                finished = self._finished_uploads.get(upload_id)
                if finished is not None and finished[1] <= moment:
                    del self._finished_uploads[upload_id]
            for vaults in self._vaults.values():
                for vault in vaults.values():
                    if vault.lock and vault.lock["State"] == "InProgress" and vault.lock["expires"] <= moment:
                        vault.lock = None

    @contextmanager
    def _admitted(self) -> Iterator[None]:
        if self.gate is None:
            yield
            return
        self.gate.enter()
        try:
            yield
        finally:
            self.gate.leave()

    # ---- test hooks ----------------------------------------------------------------------------

    def _vault_of(self, name: str, account_id: str, region: str) -> _Vault:
        vault = self._vaults.get((account_id, region), {}).get(name)
        if vault is None:
            raise KeyError(f"no vault {name} in account {account_id}, {region}")
        return vault

    def create_vault(self, name: str, account_id: str = DEFAULT_ACCOUNT, region: str = DEFAULT_REGION) -> str:
        """Make a vault (idempotent) as CreateVault would. Returns its ARN."""
        with self._lock:
            return self._create_vault(account_id, region, name).arn

    def put_archive(
        self,
        vault: str,
        size: int | None = None,
        description: str = "",
        *,
        data: bytes | None = None,
        seed: int | None = None,
        pattern: str = "distinct",
        created: dt.datetime | None = None,
        account_id: str = DEFAULT_ACCOUNT,
        region: str = DEFAULT_REGION,
    ) -> str:
        """Add one archive directly (no request), counted as a write. Its bytes are ``data``, or
        ``size`` bytes generated from ``seed`` (``pattern`` "distinct": the tree hash is computed by
        streaming the bytes once, now; "repeated": in O(log size)). ``description`` may be any text
        (even what UploadArchive refuses, as old vaults hold). ``created``: its CreationDate
        (default now). Returns the archive ID."""
        if data is not None:
            content: _Content = self._store_bytes(data)
        else:
            if size is None:
                raise ValueError("give size (generated bytes) or data")
            content = _GeneratedContent(size, self._rng.getrandbits(63) if seed is None else seed, pattern)
        with self._lock:
            run = self._add_run(self._vault_of(vault, account_id, region), 1, content, description, created, dt.timedelta(0))
            return run.archive_id0

    def put_archives(
        self,
        vault: str,
        count: int,
        size: int,
        description: str | Callable[[int], str] = "",
        *,
        seed: int | None = None,
        pattern: str = "repeated",
        created: dt.datetime | None = None,
        created_step: dt.timedelta = dt.timedelta(0),
        account_id: str = DEFAULT_ACCOUNT,
        region: str = DEFAULT_REGION,
    ) -> ArchiveBatch:
        """Add ``count`` archives at once, in O(1) memory: the same generated bytes (``size``,
        ``seed``, ``pattern``), each its own archive ID; ``description`` a text or a function of the
        archive's index (deterministic: the inventory calls it again); archive i created at
        ``created + i * created_step``."""
        if count < 1:
            raise ValueError("count must be at least 1")
        content = _GeneratedContent(size, self._rng.getrandbits(63) if seed is None else seed, pattern)
        with self._lock:
            run = self._add_run(self._vault_of(vault, account_id, region), count, content, description, created, created_step)
        return ArchiveBatch(self, run)

    def _store_bytes(self, data: bytes) -> _StoredContent:
        content = _StoredContent()
        for offset in range(0, len(data), MiB):
            piece = data[offset : offset + MiB]
            content.write_at(offset, piece)
            content.leaves += _sha256(piece).digest()
        content.size = len(data)
        if not data:
            content.leaves += EMPTY_HASH
        return content

    def archive_bytes(
        self,
        vault: str,
        archive_id: str,
        start: int = 0,
        stop: int | None = None,
        account_id: str = DEFAULT_ACCOUNT,
        region: str = DEFAULT_REGION,
    ) -> bytes:
        """An archive's true bytes [start, stop) (for comparing a download)."""
        with self._lock:
            run, _ = self._find_archive(self._vault_of(vault, account_id, region), archive_id)
            content = run.content
        if content is None:
            raise KeyError(f"archive {archive_id} was deleted")
        return content.read(start, content.size if stop is None else stop)

    def take_inventory(self, vault: str, account_id: str = DEFAULT_ACCOUNT, region: str = DEFAULT_REGION) -> dict[str, Any]:
        """Take the vault's inventory now, as the daily one would (even with no change). Returns
        {"date", "count", "size"}."""
        with self._lock:
            snapshot = self._take_inventory(self._vault_of(vault, account_id, region), self.clock())
            return {"date": snapshot.date, "count": snapshot.count, "size": snapshot.size}

    def expire_output(self, job_id: str) -> None:
        """End a completed job's output window now: the job is gone, as 24 hours after completion."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                raise KeyError(job_id)
            if job.status == "InProgress":
                raise ValueError(f"job {job_id} has not completed")
            self._forget_job(job)

    def corrupt_output(self, job_id: str, first_byte: int, last_byte: int | None = None) -> None:
        """Flip the bits of output bytes [first_byte, last_byte] (relative to the job's output, as a
        Range is) in every GetJobOutput from now on; the tree-hash header stays the true one."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                raise KeyError(job_id)
            job.corruptions.append((first_byte, (first_byte if last_byte is None else last_byte) + 1))

    def fail_job(self, job_id: str, message: str = "The job failed") -> None:
        """Make a job in progress fail when it completes (StatusCode Failed, this StatusMessage)."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                raise KeyError(job_id)
            job.forced_failure = message

    def inject_error(self, operation: str, code: str, message: str | None = None, times: int = 1) -> None:
        """The next ``times`` calls of ``operation`` (botocore's name: "GetJobOutput", "UploadArchive"
        ...) answer ``code`` (status and type as ``ERRORS``) instead of running."""
        if code not in ERRORS:
            raise ValueError(f"unknown error code {code}: one of {sorted(ERRORS)}")
        with self._lock:
            self._faults.setdefault(operation, []).extend([(code, message)] * times)

    def set_no_longer_supported(self, account_id: str, closed: bool = True) -> None:
        """Every Glacier operation of ``account_id`` answers NoLongerSupportedException (an account
        with no Glacier storage, since 2025-12-15)."""
        with self._lock:
            (self._closed_accounts.add if closed else self._closed_accounts.discard)(account_id)

    def describe(self, job_id: str) -> dict[str, Any]:
        """A job's DescribeJob document."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                raise KeyError(job_id)
            return self._describe(job)

    def iter_job_output(self, job_id: str, start: int = 0, stop: int | None = None) -> Iterator[bytes]:
        """A completed job's output bytes [start, stop), streamed (as GetJobOutput would send them)."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.status != "Succeeded":
                raise KeyError(f"job {job_id} has no output")
        return self._output(job, start, job.output_size if stop is None else stop)

    # ---- IDs -----------------------------------------------------------------------------------

    def _archive_id(self, run: _Run, index: int) -> str:
        """138 base64url characters, like AWS's: a keyed MAC of (run, index), the pair masked, and
        filler made from the MAC. Decodable (``_decode_archive_id``) and unforgeable."""
        if index == 0 and run.archive_id0:
            return run.archive_id0
        raw = (run.id << 64 | index).to_bytes(16, "big")
        mac = hashlib.blake2b(raw, key=self._secret, digest_size=16).digest()
        masked = ((run.id << 64 | index) ^ self._mask).to_bytes(16, "big")
        return base64.urlsafe_b64encode(mac + masked + (mac * 5)[:71]).decode("ascii")[:138]

    def _decode_archive_id(self, archive_id: str) -> tuple[int, int] | None:
        if len(archive_id) != 138 or not _ID_PATTERN.fullmatch(archive_id):
            return None
        try:
            data = base64.urlsafe_b64decode(archive_id + "==")
        except ValueError:
            return None
        mac = data[:16]
        value = int.from_bytes(data[16:32], "big") ^ self._mask
        raw = value.to_bytes(16, "big")
        if data[32:] != (mac * 5)[:71] or hashlib.blake2b(raw, key=self._secret, digest_size=16).digest() != mac:
            return None
        return value >> 64, value & ((1 << 64) - 1)

    def _token(self, size: int = 69) -> str:
        """A job or upload ID: 92 base64url characters, like AWS's."""
        return base64.urlsafe_b64encode(self._rng.getrandbits(size * 8).to_bytes(size, "big")).decode("ascii")

    # ---- the archive log -----------------------------------------------------------------------

    def _create_vault(self, account: str, region: str, name: str) -> _Vault:
        vaults = self._vaults.setdefault((account, region), {})
        vault = vaults.get(name)
        if vault is None:
            if len(vaults) >= self.vault_limit:
                raise GlacierError(
                    "LimitExceededException",
                    f"The maximum number of vaults ({self.vault_limit}) has been reached for account {account} in {region}",
                )
            vault = _Vault(account, region, name, f"arn:aws:glacier:{region}:{account}:vaults/{name}", self.now())
            vaults[name] = vault
            bisect.insort(self._vault_names.setdefault((account, region), []), name)
        return vault

    def _add_run(
        self,
        vault: _Vault,
        count: int,
        content: _Content,
        description: str | Callable[[int], str],
        created: dt.datetime | None,
        step: dt.timedelta,
    ) -> _Run:
        """Append archives to a vault's log (the caller holds the lock)."""
        if vault is not self._vaults.get((vault.account, vault.region), {}).get(vault.name):
            raise GlacierError("ResourceNotFoundException", f"Vault not found for ARN: {vault.arn}")
        seq = next(self._seq)
        created = (created or self.now()).astimezone(dt.UTC)
        run = _Run(
            id=next(self._run_ids),
            vault=vault,
            pos=len(vault.runs),
            seq=seq,
            count=count,
            size=content.size,
            tree_hash=content.tree_hash(),
            content=content,
            description=description,
            created=created,
            step=step,
            alive=count,
        )
        if not callable(description):
            run.json_description = _json_text(description)
            run.csv_description = _csv_field(description).encode("utf-8")
        run.created_naive = created.replace(tzinfo=None)
        run.size_text, run.tree_text = str(run.size).encode(), run.tree_hash.encode()
        if count == 1 or not step:
            run.created_text = _iso_ms(created).encode()
        if count == 1:
            run.archive_id0 = self._archive_id(run, 0)
        vault.runs.append(run)
        self._runs[run.id] = run
        vault.alive += count
        vault.alive_size += count * run.size
        self._written(vault, seq)
        return run

    def _written(self, vault: _Vault, seq: int) -> None:
        vault.write_seq = seq
        if vault.dirty_since is None:
            vault.dirty_since = self.clock()
            self._dirty[id(vault)] = vault

    def _find_archive(self, vault: _Vault, archive_id: str) -> tuple[_Run, int]:
        decoded = self._decode_archive_id(archive_id)
        run = self._runs.get(decoded[0]) if decoded else None
        if decoded is None or run is None or run.vault is not vault or decoded[1] >= run.count:
            raise GlacierError("ResourceNotFoundException", f"Archive not found for ARN: {vault.arn}/archives/{archive_id}")
        return run, decoded[1]

    def _take_inventory(self, vault: _Vault, moment: float) -> _Snapshot:
        vault.snapshot = _Snapshot(
            seq=next(self._seq), date=self._date_at(moment), count=vault.alive, size=vault.alive_size, run_count=len(vault.runs)
        )
        vault.dirty_since = None
        self._dirty.pop(id(vault), None)
        return vault.snapshot

    # ---- jobs ----------------------------------------------------------------------------------

    def _describe(self, job: _Job) -> dict[str, Any]:
        archive = job.action == "ArchiveRetrieval"
        if archive:
            tree = job.range_tree_hash if job.range_aligned else None
            if job.status == "InProgress" and job.start == 0 and job.stop == job.archive_size:
                tree = None  # a whole-archive job shows it once complete (api-describe-job-get)
            if job.status == "Failed":
                tree = None
        else:
            tree = None
        params = None
        if job.inventory_params is not None:
            params = dict(job.inventory_params)
            params["Marker"] = job.inventory.next_marker if job.status == "Succeeded" and job.inventory else None
        return {
            "Action": job.action,
            "ArchiveId": job.archive_id,
            "ArchiveSHA256TreeHash": job.archive_tree_hash,
            "ArchiveSizeInBytes": job.archive_size,
            "Completed": job.status != "InProgress",
            "CompletionDate": _iso_ms(job.completed) if job.completed else None,
            "CreationDate": _iso_ms(job.created),
            "InventoryRetrievalParameters": params,
            "InventorySizeInBytes": job.inventory.size if job.inventory is not None and job.status == "Succeeded" else None,
            "JobDescription": job.description,
            "JobId": job.id,
            "RetrievalByteRange": job.range_text,
            "SHA256TreeHash": tree,
            "SNSTopic": job.sns_topic,
            "StatusCode": job.status,
            "StatusMessage": job.message,
            "Tier": job.tier,
            "VaultARN": job.vault.arn,
        }

    def _complete(self, job: _Job, moment: float) -> bool:
        """Finish a job (outside the lock: an inventory is counted by a streaming pass), then notify."""
        failure = job.forced_failure
        if failure is None and job.action == "ArchiveRetrieval":
            with self._lock:
                assert job.run is not None
                if job.index in job.run.deleted:
                    failure = "The archive was deleted while the job was in progress"
        if failure is None and job.inventory is not None:
            try:
                job.inventory.compute()
            except Exception as exc:
                log.exception("inventory job failed", extra={"job": job.id})
                failure = f"The inventory could not be generated: {type(exc).__name__}"
        with self._lock:
            if job.status != "InProgress" or self._jobs.get(job.id) is not job:
                return False
            job.status = "Failed" if failure else "Succeeded"
            job.message = failure or "Succeeded"
            job.completed = self._date_at(moment)
            job.expires = moment + self.durations["output_window"]
            heapq.heappush(self._expiring, (job.expires, job.seq, job.id))
            self._count_standard(job, -1)
            indexes = job.vault.jobs
            indexes["InProgress"].remove(job.seq)
            indexes[job.status].add(job.seq, job)
            if failure:
                job.content = None
            document = self._describe(job)
            topics = [job.sns_topic] if job.sns_topic else []
            config = job.vault.notifications
            event = "ArchiveRetrievalCompleted" if job.action == "ArchiveRetrieval" else "InventoryRetrievalCompleted"
            if config and event in config["Events"]:
                topics.append(config["SNSTopic"])
            self.completed += 1
        for topic in topics:
            self._notify(topic, document)
        return True

    def _notify(self, topic: str, document: dict[str, Any]) -> None:
        """Publish the DescribeJob document to an SNS topic through moto (lost, as in AWS, when the
        topic does not exist)."""
        try:
            from moto.sns.models import sns_backends

            _, _, _, region, account, _ = topic.split(":", 5)
            with self._admitted():
                sns_backends[account][region].publish(json.dumps(document), arn=topic)
        except Exception:
            log.warning("glacier job notice to %s not delivered", topic, exc_info=True)

    def _forget_job(self, job: _Job) -> None:
        self._count_standard(job, -1)
        self._jobs.pop(job.id, None)
        for index in job.vault.jobs.values():
            index.remove(job.seq)
        job.content = None
        job.inventory = None

    def _output(self, job: _Job, start: int, stop: int) -> Iterator[bytes]:
        """Output bytes [start, stop) with the corruptions applied. The sources are taken now: a
        download under way finishes even if the job expires meanwhile."""
        if job.inventory is not None:
            pieces = job.inventory.iter_range(start, stop)
        else:
            if job.content is None:
                raise GlacierError("ResourceNotFoundException", f"The job ID was not found: {job.id}")
            pieces = job.content.iter_range(job.start + start, job.start + stop)
        return self._corrupted(pieces, list(job.corruptions), start)

    @staticmethod
    def _corrupted(pieces: Iterator[bytes], corruptions: list[tuple[int, int]], start: int) -> Iterator[bytes]:
        position = start
        for piece in pieces:
            if not piece:
                continue
            end = position + len(piece)
            for first, after in corruptions:
                if first < end and after > position:
                    buffer = bytearray(piece)
                    for i in range(max(first, position) - position, min(after, end) - position):
                        buffer[i] ^= 0xFF
                    piece = bytes(buffer)
            yield piece
            position = end

    # ---- HTTP ----------------------------------------------------------------------------------

    def wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        """The WSGI application moto's dispatcher hands glacier requests to."""
        length = environ.get("CONTENT_LENGTH") or ""
        if length.isdigit():
            body = _Body(environ.get("wsgi.input"), int(length))
        else:
            body = _Body(environ.get("wsgi.input") if environ.get("wsgi.input_terminated") else None, None)
        headers = {name[5:].replace("_", "-").lower(): str(value) for name, value in environ.items() if name.startswith("HTTP_")}
        for name in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            if environ.get(name):
                headers[name.replace("_", "-").lower()] = str(environ[name])
        path = environ.get("PATH_INFO", "")
        if isinstance(path, bytes):
            path = path.decode("utf-8")
        status, answer_headers, payload = self.handle(
            environ.get("REQUEST_METHOD", "GET"), path, environ.get("QUERY_STRING", ""), headers, body
        )
        body.drain()
        if isinstance(payload, (bytes, bytearray)):
            answer_headers["Content-Length"] = str(len(payload))
            payload = [bytes(payload)]
        start_response(f"{status} {HTTPStatus(status).phrase}", list(answer_headers.items()))
        return payload

    def _stubbed(self, request: Any, headers: dict[str, str]) -> Any:
        """Answer a botocore request inside mock_aws (BotocoreStubber)."""
        from botocore.awsrequest import AWSResponse
        from moto.core.botocore_stubber import MockRawResponse

        raw = request.body
        if raw is None:
            stream: Any = io.BytesIO(b"")
        elif isinstance(raw, str):
            stream = io.BytesIO(raw.encode("utf-8"))
        elif isinstance(raw, (bytes, bytearray)):
            stream = io.BytesIO(bytes(raw))
        else:
            stream = raw
        length = headers.get("content-length")
        parts = urlsplit(request.url)
        headers.setdefault("host", parts.netloc)
        status, answer_headers, payload = self.handle(
            request.method, unquote(parts.path), parts.query, headers, _Body(stream, int(length) if length and length.isdigit() else None)
        )
        data = bytes(payload) if isinstance(payload, (bytes, bytearray)) else b"".join(payload)
        answer_headers["Content-Length"] = str(len(data))
        return AWSResponse(request.url, status, answer_headers, MockRawResponse(data))

    def handle(self, method: str, path: str, query: str, headers: Mapping[str, str], body: _Body) -> Answer:
        """Answer one glacier request: (HTTP status, headers, body bytes or chunks). ``headers`` lower-cased."""
        operation = "?"
        try:
            scope = _signed_for(headers.get("authorization", ""))
            caller = self._caller_account(scope[0] if scope else None)
            region = scope[1] if scope else self._region_of_host(headers.get("host", ""))
            parts = [part for part in path.split("/") if part]
            operation = _operation_name(method, parts, parse_qs(query, keep_blank_values=True))
            if not parts:
                raise _invalid(f"{method} {path} is not an operation of the Glacier API")
            account = parts[0]
            if account == "-":
                account = caller
            elif not re.fullmatch(r"\d{12}", account):
                raise _invalid(f"Invalid account ID: {parts[0]}. Give a 12-digit AWS account ID without hyphens, or '-'")
            elif account != caller:
                raise GlacierError("AccessDeniedException", f"Access denied to account {account} for the caller's account {caller}")
            if account in self._closed_accounts:
                raise GlacierError(
                    "NoLongerSupportedException", "Amazon Glacier is no longer accepting new customers: this account has no Glacier storage"
                )
            with self._lock:
                faults = self._faults.get(operation)
                fault = faults.pop(0) if faults else None
            if fault is not None:
                code, message = fault
                raise GlacierError(code, message or f"{code} (injected into {operation})")
            request = _Request(method, parts, parse_qs(query, keep_blank_values=True), headers, body, account, region)
            handler = getattr(self, f"_op_{operation}", None)
            if handler is None:
                raise _invalid(f"{method} {path} is not an operation of the Glacier API")
            return handler(request)
        except GlacierError as error:
            return self._error(error)
        except Exception as exc:
            log.exception("glacier %s failed", operation)
            return self._error(GlacierError("ServiceUnavailableException", f"Internal error: {type(exc).__name__}"))

    @staticmethod
    def _caller_account(access_key: str | None) -> str:
        if access_key:
            try:
                from moto.iam.models import get_account_id_from

                return get_account_id_from(access_key)
            except Exception:
                pass
        return DEFAULT_ACCOUNT

    @staticmethod
    def _region_of_host(host: str) -> str:
        match = re.match(r"glacier(?:-fips)?\.([a-z0-9-]+)\.amazonaws\.com", host)
        return match.group(1) if match else DEFAULT_REGION

    @staticmethod
    def _headers(content_type: str | None = "application/json") -> dict[str, str]:
        headers = {"x-amzn-RequestId": base64.urlsafe_b64encode(uuid.uuid4().bytes * 2).decode().rstrip("=")}
        if content_type:
            headers["Content-Type"] = content_type
        return headers

    def _json(self, status: int, value: Any, **extra: str) -> Answer:
        return status, {**self._headers(), **extra}, json.dumps(value).encode("utf-8")

    def _empty(self, status: int, **extra: str) -> Answer:
        return status, {**self._headers(None), **extra}, b""

    def _error(self, error: GlacierError) -> Answer:
        return self._json(error.status, {"code": error.code, "message": error.message, "type": error.kind})

    def _vault(self, request: _Request, name: str | None = None) -> _Vault:
        """The request's vault (the caller holds the lock)."""
        name = request.parts[2] if name is None else name
        vault = self._vaults.get((request.account, request.region), {}).get(name)
        if vault is None:
            raise GlacierError(
                "ResourceNotFoundException", f"Vault not found for ARN: arn:aws:glacier:{request.region}:{request.account}:vaults/{name}"
            )
        return vault

    @staticmethod
    def _limit(request: _Request, operation: str) -> int:
        default, most = LIST_LIMITS[operation]
        raw = request.param("limit")
        if raw is None:
            return default
        if not raw.isdigit() or not 1 <= int(raw) <= most:
            raise _invalid(f"Invalid limit: {raw}. It must be an integer from 1 to {most}")
        return int(raw)

    @staticmethod
    def _marker(raw: str | None, kind: str) -> int:
        """A listing marker: an opaque token for a sequence number."""
        if not raw:
            return 0
        try:
            text = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode("ascii")
            name, _, number = text.partition(":")
            if name != kind:
                raise ValueError(name)
            return int(number)
        except ValueError as exc:
            raise _invalid(f"Invalid marker: {raw}") from exc

    @classmethod
    def _page(cls, items: Iterable[tuple[int, Any]], limit: int, kind: str, document: Callable[[Any], Any]) -> tuple[list[Any], str | None]:
        """Up to ``limit`` documents of (seq, item) pairs, and the marker of the next item when there is one."""
        listed: list[Any] = []
        for seq, item in items:
            if len(listed) == limit:
                return listed, cls._make_marker(kind, seq)
            listed.append(document(item))
        return listed, None

    @staticmethod
    def _make_marker(kind: str, seq: int) -> str:
        return base64.urlsafe_b64encode(f"{kind}:{seq}".encode()).decode("ascii").rstrip("=")

    @staticmethod
    def _check_description(text: str | None, what: str = "archive description") -> str | None:
        if text is None:
            return None
        if len(text) > MAX_DESCRIPTION or any(not 0x20 <= ord(ch) <= 0x7E for ch in text):
            raise _invalid(f"Invalid {what}: it must be at most {MAX_DESCRIPTION} printable ASCII characters (0x20-0x7E)")
        return text

    @staticmethod
    def _check_tree_hash(value: str | None) -> str:
        if value is None:
            raise _missing("Missing required header: x-amz-sha256-tree-hash")
        if not re.fullmatch(r"[0-9a-fA-F]{64}", value):
            raise _invalid(f"Invalid x-amz-sha256-tree-hash: {value}")
        return value.lower()

    # ---- vaults --------------------------------------------------------------------------------

    def _vault_document(self, vault: _Vault) -> dict[str, Any]:
        snapshot = vault.snapshot
        return {
            "VaultARN": vault.arn,
            "VaultName": vault.name,
            "CreationDate": _iso_ms(vault.created),
            "LastInventoryDate": _iso_ms(snapshot.date) if snapshot else None,
            "NumberOfArchives": snapshot.count if snapshot else None,
            "SizeInBytes": snapshot.size if snapshot else None,
        }

    def _op_CreateVault(self, request: _Request) -> Answer:
        name = request.parts[2]
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,255}", name):
            raise _invalid(f"Invalid vault name: {name}. Names are 1 to 255 characters of a-z, A-Z, 0-9, '_', '-' and '.'")
        with self._lock:
            self._create_vault(request.account, request.region, name)
        return self._empty(201, Location=f"/{request.account}/vaults/{name}")

    def _op_DescribeVault(self, request: _Request) -> Answer:
        with self._lock:
            return self._json(200, self._vault_document(self._vault(request)))

    def _op_ListVaults(self, request: _Request) -> Answer:
        limit = self._limit(request, "ListVaults")
        marker = request.param("marker")
        with self._lock:
            names = self._vault_names.get((request.account, request.region), [])
            start = 0
            if marker:
                match = re.fullmatch(r"arn:[^:]+:glacier:[^:]+:\d{12}:vaults/(.+)", marker)
                if match is None:
                    raise _invalid(f"Invalid marker: {marker}")
                start = bisect.bisect_right(names, match.group(1))
            page = names[start : start + limit]
            vaults = self._vaults[(request.account, request.region)] if page else {}
            listed = [self._vault_document(vaults[name]) for name in page]
            more = start + limit < len(names)
        return self._json(200, {"VaultList": listed, "Marker": listed[-1]["VaultARN"] if more and listed else None})

    def _op_DeleteVault(self, request: _Request) -> Answer:
        with self._lock:
            vault = self._vault(request)
            snapshot = vault.snapshot
            empty = (snapshot is None and vault.write_seq == 0) or (
                snapshot is not None and snapshot.count == 0 and vault.write_seq <= snapshot.seq
            )
            if not empty:
                raise _invalid(f"Vault not empty or recently written to: {vault.arn}")
            del self._vaults[(vault.account, vault.region)][vault.name]
            self._vault_names[(vault.account, vault.region)].remove(vault.name)
            for _seq, job in list(vault.jobs["all"].iter_from(0)):
                self._forget_job(job)
            for _, upload in list(vault.uploads.iter_from(0)):
                self._drop_upload(upload, "aborted", self.clock())
            for run in vault.runs:
                self._runs.pop(run.id, None)
                if run.content is not None:
                    run.content.close()
            self._dirty.pop(id(vault), None)
        return self._empty(204)

    def _op_SetVaultNotifications(self, request: _Request) -> Answer:
        config = request.json()
        topic, events = config.get("SNSTopic"), config.get("Events")
        if not topic:
            raise _missing("Missing required parameter in the notification configuration: SNSTopic")
        if not events:
            raise _missing("Missing required parameter in the notification configuration: Events")
        self._check_topic(topic)
        if not isinstance(events, list) or any(event not in EVENTS for event in events):
            raise _invalid(f"Invalid Events: {events}. Each must be one of {', '.join(EVENTS)}")
        with self._lock:
            self._vault(request).notifications = {"SNSTopic": topic, "Events": list(dict.fromkeys(events))}
        return self._empty(204)

    def _op_GetVaultNotifications(self, request: _Request) -> Answer:
        with self._lock:
            vault = self._vault(request)
            if vault.notifications is None:
                raise GlacierError("ResourceNotFoundException", f"No notification configuration is set for the vault: {vault.arn}")
            return self._json(200, vault.notifications)

    def _op_DeleteVaultNotifications(self, request: _Request) -> Answer:
        with self._lock:
            self._vault(request).notifications = None
        return self._empty(204)

    @staticmethod
    def _check_topic(topic: Any) -> None:
        if not isinstance(topic, str) or not re.fullmatch(r"arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?", topic):
            raise _invalid(f"Invalid SNS topic ARN: {topic}")

    def _op_SetVaultAccessPolicy(self, request: _Request) -> Answer:
        document = request.json()
        policy = document.get("Policy")
        if not isinstance(policy, str) or not policy:
            raise _missing("Missing required parameter: Policy")
        with self._lock:
            self._vault(request).access_policy = policy
        return self._empty(204)

    def _op_GetVaultAccessPolicy(self, request: _Request) -> Answer:
        with self._lock:
            vault = self._vault(request)
            if vault.access_policy is None:
                raise GlacierError("ResourceNotFoundException", f"No vault access policy is set for: {vault.arn}")
            return self._json(200, {"Policy": vault.access_policy})

    def _op_DeleteVaultAccessPolicy(self, request: _Request) -> Answer:
        with self._lock:
            self._vault(request).access_policy = None
        return self._empty(204)

    def _op_InitiateVaultLock(self, request: _Request) -> Answer:
        policy = request.json().get("Policy")
        if not isinstance(policy, str) or not policy:
            raise _missing("Missing required parameter: Policy")
        with self._lock:
            vault = self._vault(request)
            if vault.lock is not None and vault.lock["State"] == "Locked":
                raise _invalid(f"The vault lock is already in the Locked state: {vault.arn}")
            if vault.lock is not None and vault.lock["expires"] > self.clock():
                raise _invalid(f"A vault lock is already in progress: {vault.arn}")
            lock_id = self._token(12)
            vault.lock = {
                "Policy": policy,
                "State": "InProgress",
                "CreationDate": _iso_ms(self.now()),
                "ExpirationDate": _iso_ms(self.now() + dt.timedelta(seconds=self.durations["vault_lock"])),
                "expires": self.clock() + self.durations["vault_lock"],
                "id": lock_id,
            }
        return self._empty(201, **{"x-amz-lock-id": lock_id})

    def _op_CompleteVaultLock(self, request: _Request) -> Answer:
        with self._lock:
            vault = self._vault(request)
            lock = vault.lock
            if lock is None or (lock["State"] == "InProgress" and lock["expires"] <= self.clock()):
                raise _invalid(f"No vault lock is in progress: {vault.arn}")
            if lock["id"] != request.parts[4]:
                raise _invalid(f"Invalid lock ID: {request.parts[4]}")
            lock["State"], lock["ExpirationDate"] = "Locked", None
        return self._empty(204)

    def _op_AbortVaultLock(self, request: _Request) -> Answer:
        with self._lock:
            vault = self._vault(request)
            if vault.lock is not None and vault.lock["State"] == "Locked":
                raise _invalid(f"The vault lock is in the Locked state and cannot be aborted: {vault.arn}")
            vault.lock = None
        return self._empty(204)

    def _op_GetVaultLock(self, request: _Request) -> Answer:
        with self._lock:
            vault = self._vault(request)
            lock = vault.lock
            if lock is None or (lock["State"] == "InProgress" and lock["expires"] <= self.clock()):
                raise GlacierError("ResourceNotFoundException", f"No vault lock policy is set for: {vault.arn}")
            return self._json(200, {key: lock[key] for key in ("Policy", "State", "ExpirationDate", "CreationDate")})

    def _op_AddTagsToVault(self, request: _Request) -> Answer:
        tags = request.json().get("Tags") or {}
        if not isinstance(tags, dict):
            raise _invalid("Tags must be a map of tag keys to values")
        with self._lock:
            vault = self._vault(request)
            merged = {**vault.tags, **{str(k): str(v) for k, v in tags.items()}}
            if len(merged) > MAX_TAGS:
                raise GlacierError("LimitExceededException", f"A vault can have at most {MAX_TAGS} tags")
            vault.tags = merged
        return self._empty(204)

    def _op_RemoveTagsFromVault(self, request: _Request) -> Answer:
        keys = request.json().get("TagKeys") or []
        with self._lock:
            vault = self._vault(request)
            for key in keys:
                vault.tags.pop(str(key), None)
        return self._empty(204)

    def _op_ListTagsForVault(self, request: _Request) -> Answer:
        with self._lock:
            return self._json(200, {"Tags": dict(self._vault(request).tags)})

    # ---- account-level settings ----------------------------------------------------------------

    def _policy(self, account: str, region: str) -> dict[str, Any]:
        return self._policies.get((account, region)) or {"Rules": [{"Strategy": "None"}]}

    def _op_GetDataRetrievalPolicy(self, request: _Request) -> Answer:
        with self._lock:
            return self._json(200, {"Policy": self._policy(request.account, request.region)})

    def _op_SetDataRetrievalPolicy(self, request: _Request) -> Answer:
        policy = request.json().get("Policy")
        rules = policy.get("Rules") if isinstance(policy, dict) else None
        if not isinstance(rules, list) or len(rules) != 1 or not isinstance(rules[0], dict):
            raise _invalid("The data retrieval policy must have exactly one rule")
        rule = rules[0]
        strategy = rule.get("Strategy")
        if strategy not in ("BytesPerHour", "FreeTier", "None"):
            raise _invalid(f"Invalid Strategy: {strategy}. It must be BytesPerHour, FreeTier or None")
        if strategy == "BytesPerHour":
            rate = rule.get("BytesPerHour")
            if not isinstance(rate, int) or not 1 <= rate <= (1 << 63) - 1:
                raise _invalid("BytesPerHour must be an integer from 1 to 2^63 - 1 with the BytesPerHour strategy")
            rule = {"Strategy": strategy, "BytesPerHour": rate}
        elif rule.get("BytesPerHour") is not None:
            raise _invalid(f"BytesPerHour is only allowed with the BytesPerHour strategy, not {strategy}")
        else:
            rule = {"Strategy": strategy}
        with self._lock:
            self._policies[(request.account, request.region)] = {"Rules": [rule]}
        return self._empty(204)

    def _active_capacity(self, account: str, region: str) -> list[dict[str, Any]]:
        now = self.now()
        return [unit for unit in self._capacity.get((account, region), []) if unit["expires"] > now]

    def _op_PurchaseProvisionedCapacity(self, request: _Request) -> Answer:
        with self._lock:
            units = self._active_capacity(request.account, request.region)
            if len(units) >= MAX_CAPACITY_UNITS:
                raise GlacierError("LimitExceededException", f"An account can have at most {MAX_CAPACITY_UNITS} provisioned capacity units")
            start = self.now()
            unit = {"CapacityId": self._token(18), "start": start, "expires": start + dt.timedelta(days=30)}
            units.append(unit)
            self._capacity[(request.account, request.region)] = units
        return self._empty(201, **{"x-amz-capacity-id": unit["CapacityId"]})

    def _op_ListProvisionedCapacity(self, request: _Request) -> Answer:
        with self._lock:
            units = self._capacity.get((request.account, request.region), [])
            listed = [
                {"CapacityId": u["CapacityId"], "StartDate": _iso_ms(u["start"]), "ExpirationDate": _iso_ms(u["expires"])} for u in units
            ]
        return self._json(200, {"ProvisionedCapacityList": listed})

    # ---- archives ------------------------------------------------------------------------------

    def _receive(self, body: _Body, content: _StoredContent, offset: int, limit: int) -> tuple[int, bytearray, str]:
        """Copy a body into ``content`` at ``offset`` (at most ``limit`` bytes), 1 MiB at a time:
        its size, 1 MiB leaf hashes and linear SHA-256."""
        leaves = bytearray()
        linear = hashlib.sha256()
        size = 0
        while True:
            chunk = _read_exactly(body, MiB)  # type: ignore[arg-type]
            if not chunk:
                break
            size += len(chunk)
            if size > limit:
                raise _invalid(f"The body is larger than {limit} bytes")
            content.write_at(offset + size - len(chunk), chunk)
            leaves += _sha256(chunk).digest()
            linear.update(chunk)
        return size, leaves, linear.hexdigest()

    @staticmethod
    def _check_linear(headers: Mapping[str, str], computed: str) -> None:
        given = headers.get("x-amz-content-sha256")
        if given and given != "UNSIGNED-PAYLOAD" and given.lower() != computed:
            raise GlacierError("InvalidSignatureException", "The provided x-amz-content-sha256 header does not match what was computed.")

    def _op_UploadArchive(self, request: _Request) -> Answer:
        given = self._check_tree_hash(request.headers.get("x-amz-sha256-tree-hash"))
        description = self._check_description(request.headers.get("x-amz-archive-description"))
        with self._lock:
            self._vault(request)
        content = _StoredContent()
        try:
            size, leaves, linear = self._receive(request.body, content, 0, MAX_SINGLE_UPLOAD)
            if size == 0:
                raise _invalid("Invalid Content-Length: 0. An archive is at least 1 byte")
            self._check_linear(request.headers, linear)
            content.size, content.leaves = size, leaves
            computed = content.tree_hash()
            if computed != given:
                raise _invalid(f"Checksum mismatch: expected {given}, computed {computed}")
            with self._lock:
                run = self._add_run(self._vault(request), 1, content, description or "", None, dt.timedelta(0))
        except BaseException:
            content.close()
            raise
        return self._empty(
            201,
            Location=f"/{request.account}/vaults/{request.parts[2]}/archives/{run.archive_id0}",
            **{"x-amz-archive-id": run.archive_id0, "x-amz-sha256-tree-hash": computed},
        )

    def _op_DeleteArchive(self, request: _Request) -> Answer:
        with self._lock:
            vault = self._vault(request)
            run, index = self._find_archive(vault, request.parts[4])
            if index not in run.deleted:
                seq = next(self._seq)
                run.deleted[index] = seq
                run.alive -= 1
                vault.alive -= 1
                vault.alive_size -= run.size
                self._written(vault, seq)
                if run.alive == 0 and run.content is not None:
                    run.content = None  # the bytes go once no job holds them
        return self._empty(204)

    # ---- multipart upload ----------------------------------------------------------------------

    def _upload(self, request: _Request, vault: _Vault) -> _Upload:
        upload_id = request.parts[4]
        upload = self._uploads.get(upload_id)
        if upload is None or upload.vault is not vault:
            raise GlacierError("ResourceNotFoundException", f"The upload ID was not found: {upload_id}")
        return upload

    def _op_InitiateMultipartUpload(self, request: _Request) -> Answer:
        raw = request.headers.get("x-amz-part-size")
        if raw is None:
            raise _missing("Missing required header: x-amz-part-size")
        size = int(raw) if raw.isdigit() else 0
        if not MIN_PART <= size <= MAX_PART or size & (size - 1):
            raise _invalid(
                f"Invalid part size: {raw}. Part size must not be null, must be a power of two and be between "
                f"{MIN_PART} and {MAX_PART} bytes."
            )
        description = request.headers.get("x-amz-archive-description")
        if description is not None:
            description = self._check_description(description.lstrip(" "))
        with self._lock:
            vault = self._vault(request)
            upload = _Upload(
                id=self._token(),
                vault=vault,
                seq=next(self._seq),
                part_size=size,
                description=description,
                created=self.now(),
                touched=self.clock(),
                content=_StoredContent(),
            )
            self._uploads[upload.id] = upload
            vault.uploads.add(upload.seq, upload)
            heapq.heappush(self._idle, (upload.touched + self.durations["upload_idle"], upload.seq, upload.id))
        return self._empty(
            201,
            Location=f"/{request.account}/vaults/{vault.name}/multipart-uploads/{upload.id}",
            **{"x-amz-multipart-upload-id": upload.id},
        )

    def _op_UploadMultipartPart(self, request: _Request) -> Answer:
        given = self._check_tree_hash(request.headers.get("x-amz-sha256-tree-hash"))
        raw = request.headers.get("content-range")
        if raw is None:
            raise _missing("Missing required header: Content-Range")
        match = re.fullmatch(r"\s*bytes[ =](\d+)-(\d+)/(\*|\d+)\s*", raw)
        if match is None:
            raise _invalid(f"Invalid Content-Range: {raw}")
        first, last = int(match.group(1)), int(match.group(2))
        with self._lock:
            upload = self._upload(request, self._vault(request))
            upload.touched = self.clock()
            part_size = upload.part_size
        length = last - first + 1
        if last < first or first % part_size or length > part_size:
            raise _invalid(
                f"Invalid Content-Range: {raw}. A part starts at a multiple of the part size ({part_size}) and is at most one part long"
            )
        index = first // part_size
        if index >= MAX_PARTS:
            raise _invalid(f"Invalid Content-Range: {raw}. An upload has at most {MAX_PARTS} parts")
        scratch = _StoredContent()  # received apart, checked, then written into the upload
        try:
            size, leaves, linear = self._receive(request.body, scratch, 0, part_size)
            if size != length:
                raise _invalid(f"Invalid Content-Range: {raw}. The range is {length} bytes, the body {size}")
            self._check_linear(request.headers, linear)
            scratch.size, scratch.leaves = size, leaves
            computed = scratch.tree_hash()
            if computed != given:
                raise _invalid(f"Checksum mismatch: expected {given}, computed {computed}")
            with self._lock:
                upload = self._upload(request, self._vault(request))
            with upload.writing:  # the copy outside the emulator's lock; the part listed once it is in
                for offset in range(0, size, MiB):
                    upload.content.write_at(first + offset, scratch.read(offset, min(size, offset + MiB)))
                with self._lock:
                    if self._uploads.get(upload.id) is not upload:
                        raise GlacierError("ResourceNotFoundException", f"The upload ID was not found: {upload.id}")
                    if index not in upload.parts:
                        bisect.insort(upload.order, index)
                    upload.parts[index] = (size, bytes(leaves), computed)
                    upload.touched = self.clock()
        finally:
            scratch.close()
        return self._empty(204, **{"x-amz-sha256-tree-hash": computed})

    def _op_CompleteMultipartUpload(self, request: _Request) -> Answer:
        given = self._check_tree_hash(request.headers.get("x-amz-sha256-tree-hash"))
        raw = request.headers.get("x-amz-archive-size")
        if raw is None:
            raise _missing("Missing required header: x-amz-archive-size")
        if not raw.isdigit():
            raise _invalid(f"Invalid x-amz-archive-size: {raw}")
        archive_size = int(raw)
        upload_id = request.parts[4]
        with self._lock:
            vault = self._vault(request)
            finished = self._finished_uploads.get(upload_id)
            if finished is not None and upload_id not in self._uploads:
                state, _, archive_id, size, tree = finished
                if state == "completed" and size == archive_size and tree == given:
                    return self._empty(
                        201,
                        Location=f"/{request.account}/vaults/{vault.name}/archives/{archive_id}",
                        **{"x-amz-archive-id": str(archive_id), "x-amz-sha256-tree-hash": given},
                    )
                raise GlacierError("ResourceNotFoundException", f"The upload ID was not found: {upload_id}")
            upload = self._upload(request, vault)
            if not upload.writing.acquire(blocking=False):
                raise _invalid(f"A part of the multipart upload {upload_id} is being uploaded: complete it once the part is in")
            upload.writing.release()
            upload.touched = self.clock()
            parts = upload.parts
            count = len(upload.order)
            if count == 0:
                raise _invalid(f"The multipart upload {upload_id} has no parts")
            if upload.order[-1] != count - 1:
                missing = next(i for i in range(count + 1) if i not in parts)
                raise _invalid(
                    f"The multipart upload is missing content: part {missing} (bytes {missing * upload.part_size}-"
                    f"{(missing + 1) * upload.part_size - 1}) was not uploaded"
                )
            short = [i for i in upload.order[:-1] if parts[i][0] != upload.part_size]
            if short:
                raise _invalid(f"Part {short[0]} is {parts[short[0]][0]} bytes: every part but the last must be {upload.part_size} bytes")
            total = (count - 1) * upload.part_size + parts[count - 1][0]
            if total != archive_size:
                raise _invalid(f"Invalid x-amz-archive-size: {archive_size}. The parts uploaded add up to {total} bytes")
            leaves = bytearray()
            for i in upload.order:
                leaves += parts[i][1]
            content = upload.content
            content.size, content.leaves = total, leaves
            computed = content.tree_hash()
            if computed != given:
                raise _invalid(f"Invalid x-amz-sha256-tree-hash: {given}")
            run = self._add_run(vault, 1, content, upload.description or "", None, dt.timedelta(0))
            self._drop_upload(upload, "completed", self.clock(), keep_content=True, archive=(run.archive_id0, total, computed))
        return self._empty(
            201,
            Location=f"/{request.account}/vaults/{vault.name}/archives/{run.archive_id0}",
            **{"x-amz-archive-id": run.archive_id0, "x-amz-sha256-tree-hash": computed},
        )

    def _drop_upload(
        self, upload: _Upload, state: str, moment: float, keep_content: bool = False, archive: tuple[str, int, str] | None = None
    ) -> None:
        self._uploads.pop(upload.id, None)
        upload.vault.uploads.remove(upload.seq)
        if not keep_content:
            upload.content.close()
        archive_id, size, tree = archive or (None, None, None)
        until = moment + self.durations["finished_upload_memory"]
        self._finished_uploads[upload.id] = (state, until, archive_id, size, tree)
        heapq.heappush(self._forgetting, (until, upload.id))

    def _op_AbortMultipartUpload(self, request: _Request) -> Answer:
        upload_id = request.parts[4]
        with self._lock:
            vault = self._vault(request)
            finished = self._finished_uploads.get(upload_id)
            if upload_id not in self._uploads and finished is not None:
                if finished[0] == "completed":
                    raise _invalid(f"The multipart upload {upload_id} is completed: it cannot be aborted")
                return self._empty(204)
            self._drop_upload(self._upload(request, vault), "aborted", self.clock())
        return self._empty(204)

    def _upload_document(self, upload: _Upload) -> dict[str, Any]:
        return {
            "MultipartUploadId": upload.id,
            "VaultARN": upload.vault.arn,
            "ArchiveDescription": upload.description,
            "PartSizeInBytes": upload.part_size,
            "CreationDate": _iso_ms(upload.created),
        }

    def _op_ListParts(self, request: _Request) -> Answer:
        limit = self._limit(request, "ListParts")
        start = self._marker(request.param("marker"), "part")
        with self._lock:
            upload = self._upload(request, self._vault(request))
            order = upload.order
            at = bisect.bisect_left(order, start)
            page = order[at : at + limit]
            listed = [
                {
                    "RangeInBytes": f"{i * upload.part_size}-{i * upload.part_size + upload.parts[i][0] - 1}",
                    "SHA256TreeHash": upload.parts[i][2],
                }
                for i in page
            ]
            marker = self._make_marker("part", order[at + limit]) if at + limit < len(order) else None
            document = {**self._upload_document(upload), "Parts": listed, "Marker": marker}
        return self._json(200, document)

    def _op_ListMultipartUploads(self, request: _Request) -> Answer:
        limit = self._limit(request, "ListMultipartUploads")
        start = self._marker(request.param("marker"), "upload")
        with self._lock:
            vault = self._vault(request)
            listed, marker = self._page(vault.uploads.iter_from(start), limit, "upload", self._upload_document)
        return self._json(200, {"UploadsList": listed, "Marker": marker})

    # ---- jobs ----------------------------------------------------------------------------------

    def _op_InitiateJob(self, request: _Request) -> Answer:
        params = request.json()
        kind = params.get("Type")
        if not kind:
            raise _missing("Missing required parameter in the job parameters: Type")
        if kind == "select":
            raise _invalid("select jobs are not supported by the local Glacier emulation (S3 Glacier Select takes no new customers)")
        if kind not in ("archive-retrieval", "inventory-retrieval"):
            raise _invalid(f"Invalid job type: {kind}. It must be archive-retrieval or inventory-retrieval")
        description = self._check_description(params.get("Description"), "job description")
        topic = params.get("SNSTopic")
        if topic is not None:
            self._check_topic(topic)
        tier = params.get("Tier")
        if tier is not None and tier not in TIERS:
            raise _invalid(f"Invalid tier: {tier}. It must be Expedited, Standard or Bulk")
        if params.get("OutputLocation") is not None or params.get("SelectParameters") is not None:
            raise _invalid("OutputLocation and SelectParameters are only for select jobs")
        if kind == "archive-retrieval":
            return self._initiate_archive_job(request, params, description, topic, tier or "Standard")
        if params.get("ArchiveId") is not None:
            raise _invalid("ArchiveId is not allowed in an inventory-retrieval job")
        if params.get("RetrievalByteRange") is not None:
            raise _invalid("RetrievalByteRange is not allowed in an inventory-retrieval job")
        return self._initiate_inventory_job(request, params, description, topic)

    def _new_job(
        self, request: _Request, vault: _Vault, action: str, duration: float, tier: str | None, description: str | None, topic: str | None
    ) -> _Job:
        moment = self.clock()
        job = _Job(
            id=self._token(),
            vault=vault,
            seq=next(self._seq),
            action=action,
            created=self._date_at(moment),
            due=moment + duration,
            tier=tier,
            description=description,
            sns_topic=topic,
        )
        return job

    def _register(self, job: _Job) -> Answer:
        self._jobs[job.id] = job
        job.vault.jobs["all"].add(job.seq, job)
        job.vault.jobs["InProgress"].add(job.seq, job)
        heapq.heappush(self._due, (job.due, job.seq, job.id))
        return self._empty(202, Location=f"/{job.vault.account}/vaults/{job.vault.name}/jobs/{job.id}", **{"x-amz-job-id": job.id})

    def _initiate_archive_job(
        self, request: _Request, params: dict[str, Any], description: str | None, topic: str | None, tier: str
    ) -> Answer:
        archive_id = params.get("ArchiveId")
        if not archive_id:
            raise _missing("Missing required parameter in the job parameters: ArchiveId")
        if params.get("Format") is not None or params.get("InventoryRetrievalParameters") is not None:
            raise _invalid("Format and InventoryRetrievalParameters are only for inventory-retrieval jobs")
        with self._lock:
            vault = self._vault(request)
            run, index = self._find_archive(vault, str(archive_id))
            size = run.size
            start, stop = 0, size
            raw = params.get("RetrievalByteRange")
            if raw is not None:
                match = re.fullmatch(r"(\d+)-(\d+)", str(raw))
                if match is None:
                    raise _invalid(f"Invalid RetrievalByteRange: {raw}. Give StartByte-EndByte")
                start, stop = int(match.group(1)), int(match.group(2)) + 1
                if not (start < stop <= size and is_megabyte_aligned(start, stop, size)):
                    raise _invalid(
                        f"Invalid RetrievalByteRange: {raw}. The range must be megabyte aligned: its start divisible "
                        f"by 1048576 and its end plus 1 divisible by 1048576 or equal to the archive's size ({size})"
                    )
            self._check_capacity(request, tier)
            self._check_policy(request, tier, stop - start)
            job = self._new_job(request, vault, "ArchiveRetrieval", self.durations[tier], tier, description, topic)
            job.run, job.index, job.content = run, index, run.content
            job.archive_id, job.archive_size, job.archive_tree_hash = str(archive_id), size, run.tree_hash
            job.archive_description = run.description_of(index)
            job.start, job.stop = start, stop
            job.range_text = f"{start}-{max(stop - 1, 0)}"
            if job.content is not None and size > 0:
                job.range_aligned = is_tree_hash_aligned(start, stop, size)
                if job.range_aligned:
                    job.range_tree_hash = run.tree_hash if (start, stop) == (0, size) else job.content.tree_hash(start, stop)
            elif size == 0:
                job.range_aligned, job.range_tree_hash = True, run.tree_hash
            if tier == "Standard":
                key = (request.account, request.region)
                self._standard_window_total(key)
                self._standard_window[key].append((self.clock(), stop - start))
                self._standard_window_bytes[key] = self._standard_window_bytes.get(key, 0) + stop - start
                self._count_standard(job, 1)
            return self._register(job)

    def _check_capacity(self, request: _Request, tier: str) -> None:
        if tier == "Expedited" and not self.expedited_capacity and not self._active_capacity(request.account, request.region):
            raise GlacierError(
                "InsufficientCapacityException",
                "There is not enough capacity to process this Expedited request. Try again later, or use Standard or Bulk",
            )

    def _standard_window_total(self, key: tuple[str, str]) -> int:
        """Bytes of the Standard retrievals initiated in the last 24 hours (amortised O(1))."""
        window = self._standard_window.setdefault(key, collections.deque())
        now = self.clock()
        while window and now - window[0][0] >= 86400:
            self._standard_window_bytes[key] -= window.popleft()[1]
        return self._standard_window_bytes.get(key, 0)

    def _check_policy(self, request: _Request, tier: str, size: int) -> None:
        """data-retrieval-policy: Standard retrievals only; the caller holds the lock."""
        if tier != "Standard":
            return
        key = (request.account, request.region)
        rule = self._policy(*key)["Rules"][0]
        strategy = rule["Strategy"]
        if strategy == "BytesPerHour":
            rate = (self._standard_running.get(key, 0) + size) / POLICY_RATE_HOURS
            if rate > rule["BytesPerHour"]:
                raise GlacierError(
                    "PolicyEnforcedException",
                    f"The retrieval request was denied by the current data retrieval "
                    f"policy: it would take the retrieval rate to {rate:.0f} bytes per "
                    f"hour, over the policy's {rule['BytesPerHour']}",
                )
        elif strategy == "FreeTier" and self._standard_window_total(key) + size > self.free_tier_bytes_per_day:
            raise GlacierError(
                "PolicyEnforcedException",
                "The retrieval request was denied by the current data retrieval "
                "policy: it would exceed the free tier's daily retrieval allowance",
            )

    def _count_standard(self, job: _Job, sign: int) -> None:
        """Add (1) or take away (-1) a Standard retrieval's bytes in progress; the caller holds the lock."""
        if job.tier == "Standard" and job.action == "ArchiveRetrieval" and job.counted != (sign > 0):
            key = (job.vault.account, job.vault.region)
            self._standard_running[key] = self._standard_running.get(key, 0) + sign * (job.stop - job.start)
            job.counted = sign > 0

    def _initiate_inventory_job(self, request: _Request, params: dict[str, Any], description: str | None, topic: str | None) -> Answer:
        fmt = params.get("Format") or "JSON"
        if fmt not in ("JSON", "CSV"):
            raise _invalid(f"Invalid Format: {fmt}. It must be JSON or CSV")
        ranged = params.get("InventoryRetrievalParameters") or {}
        if not isinstance(ranged, dict):
            raise _invalid("InventoryRetrievalParameters must be an object")
        start_date = _parse_date(str(ranged["StartDate"]), "StartDate") if ranged.get("StartDate") else None
        end_date = _parse_date(str(ranged["EndDate"]), "EndDate") if ranged.get("EndDate") else None
        if start_date and end_date and start_date >= end_date:
            raise _invalid("The StartDate must be before the EndDate")
        limit = None
        if ranged.get("Limit") is not None:
            text = str(ranged["Limit"])
            if not text.isdigit() or int(text) < 1:
                raise _invalid(f"Invalid Limit: {text}. It must be an integer of 1 or more")
            limit = int(text)
        with self._lock:
            vault = self._vault(request)
            if vault.snapshot is None:
                raise GlacierError("ResourceNotFoundException", f"No inventory is available yet for vault: {vault.arn}")
            start_pos = start_index = 0
            marker = ranged.get("Marker")
            if marker:
                decoded = self._decode_archive_id(str(marker))
                run = self._runs.get(decoded[0]) if decoded else None
                if decoded is None or run is None or run.vault is not vault:
                    raise _invalid(f"Invalid Marker: {marker}")
                start_pos, start_index = run.pos, decoded[1]
            job = self._new_job(request, vault, "InventoryRetrieval", self.durations["inventory"], None, description, topic)
            job.inventory = _InventoryOutput(self, vault, vault.snapshot, fmt, start_date, end_date, limit, start_pos, start_index)
            job.inventory_params = {
                "Format": fmt,
                "StartDate": ranged.get("StartDate"),
                "EndDate": ranged.get("EndDate"),
                "Limit": str(limit) if limit is not None else None,
                "Marker": None,
            }
            return self._register(job)

    def _job(self, request: _Request) -> _Job:
        vault = self._vault(request)
        job_id = request.parts[4]
        job = self._jobs.get(job_id)
        if job is None or job.vault is not vault or (job.expires is not None and job.expires <= self.clock()):
            raise GlacierError("ResourceNotFoundException", f"The job ID was not found: {job_id}")
        return job

    def _op_DescribeJob(self, request: _Request) -> Answer:
        with self._lock:
            return self._json(200, self._describe(self._job(request)))

    def _op_ListJobs(self, request: _Request) -> Answer:
        limit = self._limit(request, "ListJobs")
        start = self._marker(request.param("marker"), "job")
        completed = request.param("completed")
        if completed is not None and completed not in ("true", "false"):
            raise _invalid(f"Invalid completed value: {completed}. It must be true or false")
        status = request.param("statuscode")
        if status is not None and status not in STATUS_CODES:
            raise _invalid(f"The job status code is not valid: {status}")
        with self._lock:
            vault = self._vault(request)
            indexes = vault.jobs
            if status is not None:
                wanted_done = status != "InProgress"
                sources = [] if completed is not None and (completed == "true") != wanted_done else [indexes[status]]
            elif completed == "true":
                sources = [indexes["Succeeded"], indexes["Failed"]]
            elif completed == "false":
                sources = [indexes["InProgress"]]
            else:
                sources = [indexes["all"]]
            merged = heapq.merge(*(index.iter_from(start) for index in sources), key=lambda item: item[0])
            now = self.clock()
            live = ((seq, job) for seq, job in merged if job.expires is None or job.expires > now)
            listed, marker = self._page(live, limit, "job", self._describe)
        return self._json(200, {"JobList": listed, "Marker": marker})

    def _op_GetJobOutput(self, request: _Request) -> Answer:
        with self._lock:
            job = self._job(request)
            if job.status != "Succeeded":
                raise _invalid(f"The job is not currently available for download: {job.id}")
            total = job.output_size
        raw = request.headers.get("range")
        ranged = raw is not None and raw.strip() != ""
        start, stop = self._parse_range(raw, total) if ranged else (0, total)  # type: ignore[arg-type]
        if job.inventory is not None:
            content_type = "text/csv" if job.inventory.format == "CSV" else "application/json"
        else:
            content_type = "application/octet-stream"
        headers = {**self._headers(content_type), "Accept-Ranges": "bytes", "Content-Length": str(stop - start)}
        if ranged:
            headers["Content-Range"] = f"bytes {start}-{stop - 1}/{total}"
        if job.action == "ArchiveRetrieval":
            checksum = self._output_checksum(job, start, stop, ranged)
            if checksum is not None:
                headers["x-amz-sha256-tree-hash"] = checksum
            if job.archive_description and job.archive_description.isascii():  # a header carries ASCII only
                headers["x-amz-archive-description"] = job.archive_description
        with self._lock:
            body = self._output(job, start, stop)
        return (206 if ranged else 200), headers, body

    def _output_checksum(self, job: _Job, start: int, stop: int, ranged: bool) -> str | None:
        """checksum-calculations-range: the retrieved range and the downloaded one both aligned."""
        if not job.range_aligned or job.content is None or job.archive_size is None:
            return None
        if not ranged or (start, stop) == (0, job.stop - job.start):
            return job.range_tree_hash
        first, after, size = job.start + start, job.start + stop, job.archive_size
        aligned = is_tree_hash_aligned if self.checksum_ranges == "tree" else is_megabyte_aligned
        return job.content.tree_hash(first, after) if aligned(first, after, size) else None

    @staticmethod
    def _parse_range(raw: str, total: int) -> tuple[int, int]:
        match = re.fullmatch(r"\s*bytes=(\d*)-(\d*)\s*", raw)
        if match is None or (not match.group(1) and not match.group(2)):
            raise _invalid(f"Invalid Range: {raw}. Give bytes=first-last")
        if not match.group(1):  # the last n bytes
            count = int(match.group(2))
            if count == 0:
                raise _invalid(f"The requested range is not satisfiable: {raw}")
            return max(0, total - count), total
        first = int(match.group(1))
        last = int(match.group(2)) if match.group(2) else total - 1
        if first >= total or last < first:
            raise _invalid(f"The requested range is not satisfiable: {raw} (the output is {total} bytes)")
        return first, min(last, total - 1) + 1


def _operation_name(method: str, parts: list[str], query: dict[str, list[str]]) -> str:
    """botocore's operation name for a request path (``?`` when none matches)."""
    n = len(parts)
    if n >= 2 and parts[1] == "policies" and n == 3 and parts[2] == "data-retrieval":
        return {"GET": "GetDataRetrievalPolicy", "PUT": "SetDataRetrievalPolicy"}.get(method, "?")
    if n == 2 and parts[1] == "provisioned-capacity":
        return {"GET": "ListProvisionedCapacity", "POST": "PurchaseProvisionedCapacity"}.get(method, "?")
    if n < 2 or parts[1] != "vaults":
        return "?"
    if n == 2:
        return "ListVaults" if method == "GET" else "?"
    if n == 3:
        return {"PUT": "CreateVault", "GET": "DescribeVault", "DELETE": "DeleteVault"}.get(method, "?")
    sub = parts[3]
    table: dict[tuple[str, int, str], str] = {
        ("archives", 4, "POST"): "UploadArchive",
        ("archives", 5, "DELETE"): "DeleteArchive",
        ("jobs", 4, "POST"): "InitiateJob",
        ("jobs", 4, "GET"): "ListJobs",
        ("jobs", 5, "GET"): "DescribeJob",
        ("multipart-uploads", 4, "POST"): "InitiateMultipartUpload",
        ("multipart-uploads", 4, "GET"): "ListMultipartUploads",
        ("multipart-uploads", 5, "PUT"): "UploadMultipartPart",
        ("multipart-uploads", 5, "POST"): "CompleteMultipartUpload",
        ("multipart-uploads", 5, "GET"): "ListParts",
        ("multipart-uploads", 5, "DELETE"): "AbortMultipartUpload",
        ("notification-configuration", 4, "PUT"): "SetVaultNotifications",
        ("notification-configuration", 4, "GET"): "GetVaultNotifications",
        ("notification-configuration", 4, "DELETE"): "DeleteVaultNotifications",
        ("access-policy", 4, "PUT"): "SetVaultAccessPolicy",
        ("access-policy", 4, "GET"): "GetVaultAccessPolicy",
        ("access-policy", 4, "DELETE"): "DeleteVaultAccessPolicy",
        ("lock-policy", 4, "POST"): "InitiateVaultLock",
        ("lock-policy", 4, "GET"): "GetVaultLock",
        ("lock-policy", 4, "DELETE"): "AbortVaultLock",
        ("lock-policy", 5, "POST"): "CompleteVaultLock",
        ("tags", 4, "GET"): "ListTagsForVault",
    }
    if n == 6 and sub == "jobs" and parts[5] == "output" and method == "GET":
        return "GetJobOutput"
    if sub == "tags" and n == 4 and method == "POST":
        operation = (query.get("operation") or [""])[-1]
        return {"add": "AddTagsToVault", "remove": "RemoveTagsFromVault"}.get(operation, "?")
    return table.get((sub, n, method), "?")
