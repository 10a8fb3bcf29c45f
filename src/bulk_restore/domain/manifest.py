"""Streaming parser for S3 Batch Operations CSV manifests (S3BatchOperations_CSV_20180820).

Rows are ``bucket,key[,versionId]`` with URL-encoded keys. We also accept LF or CRLF line ends,
a UTF-8 byte-order mark, quoted fields, blank lines, and a header row on line 1 (see
``header_row``). The parser never holds the manifest:
it turns an iterator of byte blocks into lines with their byte offsets, so a planner can stop
after any line and resume from the offset in a later invocation.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from urllib.parse import unquote

from bulk_restore.domain.model import ManifestEntry, ManifestError, ObjectId

BOM = b"\xef\xbb\xbf"
MAX_LINE_BYTES = 8 * 1024  # a 1,024-byte key URL-encoded is at most ~3 KiB; more is not a manifest row
MAX_KEY_BYTES = 1024
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")
_PERCENT_RE = re.compile(r"%(?![0-9A-Fa-f]{2})")


@dataclass(frozen=True, slots=True)
class RawLine:
    """One physical line: its 1-based number, its bytes without the line end, and the offset after it."""

    number: int
    data: bytes
    end_offset: int
    too_long: bool = False


def iter_lines(blocks: Iterable[bytes], start_offset: int = 0, start_line: int = 0) -> Iterator[RawLine]:
    """Split byte blocks into lines, tracking the byte offset just past each line.

    A line longer than MAX_LINE_BYTES is never buffered whole: its first bytes are kept, the rest
    is discarded, and it is yielded once, flagged ``too_long``, when its end is reached.
    """
    buffer = bytearray()
    offset = start_offset  # offset of buffer[0] in the manifest
    line_no = start_line
    long_prefix: bytes | None = None  # set while discarding the rest of an over-long line
    at_start = start_offset == 0  # a byte-order mark may still come (and may be split across blocks)
    for block in blocks:
        buffer += block
        if at_start:
            if len(buffer) < len(BOM) and BOM.startswith(bytes(buffer)):
                continue
            at_start = False
            if buffer.startswith(BOM):
                del buffer[: len(BOM)]
                offset += len(BOM)
        while True:
            newline = buffer.find(b"\n")
            if newline < 0:
                # One byte of room for the \r of a CRLF whose \n is in the next block.
                if len(buffer) > MAX_LINE_BYTES + 1:
                    if long_prefix is None:
                        long_prefix = bytes(buffer[:MAX_LINE_BYTES])
                    offset += len(buffer)
                    buffer.clear()
                break
            data = bytes(buffer[:newline])
            end = offset + newline + 1
            del buffer[: newline + 1]
            offset = end
            line_no += 1
            if long_prefix is not None:
                yield RawLine(line_no, long_prefix, end, too_long=True)
                long_prefix = None
                continue
            yield _line(line_no, data, end)
    end = offset + len(buffer)
    if long_prefix is not None:
        yield RawLine(line_no + 1, long_prefix, end, too_long=True)
    elif buffer:
        yield _line(line_no + 1, bytes(buffer), end)


def _line(number: int, data: bytes, end: int) -> RawLine:
    if data.endswith(b"\r"):
        data = data[:-1]
    return RawLine(number, data[:MAX_LINE_BYTES], end, too_long=len(data) > MAX_LINE_BYTES)


def parse_row(line: int, data: bytes) -> ManifestEntry | ManifestError | None:
    """Parse one manifest line. Blank lines give None; bad lines give a ManifestError saying what to fix."""
    if not data.strip():
        return None
    preview = data[:200].decode("utf-8", "replace")
    if b"\x00" in data:
        return ManifestError(line, "line contains NUL bytes: the manifest must be a UTF-8 CSV text file", preview)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return ManifestError(line, f"line is not valid UTF-8 (byte {exc.start})", preview)
    if "\r" in text:
        return ManifestError(line, "line holds a lone carriage return (CR): end lines with LF or CRLF, as CSV does", preview)
    if '"' in text:
        try:
            fields = next(csv.reader([text], strict=True))
        except csv.Error as exc:
            return ManifestError(line, f"line is not valid CSV ({exc})", preview)
    else:
        fields = text.split(",")  # no quotes: the CSV reader would split the same way, slower
    if len(fields) not in (2, 3):
        return ManifestError(line, f"expected 2 or 3 columns (bucket,key[,versionId]), found {len(fields)}", preview)
    bucket, encoded_key = fields[0].strip(), fields[1]
    version = fields[2].strip() if len(fields) == 3 else ""
    if not _BUCKET_RE.match(bucket):
        return ManifestError(line, f"{bucket[:80]!r} is not a valid S3 bucket name", preview)
    if not encoded_key:
        return ManifestError(line, "the key column is empty", preview)
    if _PERCENT_RE.search(encoded_key):
        return ManifestError(line, "the key has invalid percent-encoding: keys must be URL-encoded (a % as %25)", preview)
    try:
        key = unquote(encoded_key, encoding="utf-8", errors="strict") if "%" in encoded_key else encoded_key
    except UnicodeDecodeError:
        return ManifestError(line, "the key's percent-encoding does not decode to UTF-8", preview)
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        return ManifestError(line, f"the key is longer than S3's limit of {MAX_KEY_BYTES} bytes", preview)
    return ManifestEntry(line, ObjectId(bucket, key, version or None))


def too_long_error(line: int, data: bytes) -> ManifestError:
    return ManifestError(
        line,
        f"line is longer than {MAX_LINE_BYTES} bytes: not a manifest row (bucket,key[,versionId])",
        data[:200].decode("utf-8", "replace"),
    )


def encode_key(key: str) -> str:
    """URL-encode a key for a manifest row, the inverse of parse_row's decoding."""
    from urllib.parse import quote

    return quote(key, safe="/")


_HEADER_VERSION_NAMES = frozenset({"versionid", "version_id"})
_HEADER_MAX_BYTES = 256


def header_row(line: int, data: bytes) -> str | None:
    """Line 1's text when it names the columns instead of an object, else None.

    A header is ``bucket,key`` or ``bucket,key,versionId`` (also ``version_id``), in any case,
    fields quoted or not, spaces around them allowed. Only line 1 can be a header: the same words
    further down are a row like any other. The words decide, not the bucket-name rules: "key" is
    no valid bucket name, but "bucket" is one, so ``bucket,key`` could name an object; on line 1
    it is taken for a header.
    """
    if line != 1 or len(data) > _HEADER_MAX_BYTES or b"," not in data:
        return None
    try:
        text = data.decode("utf-8").strip()
        fields = next(csv.reader([text], strict=True, skipinitialspace=True))
    except (UnicodeDecodeError, csv.Error, StopIteration):
        return None
    names = [f.strip().lower() for f in fields]
    if names[:2] != ["bucket", "key"] or len(names) > 3 or (len(names) == 3 and names[2] not in _HEADER_VERSION_NAMES):
        return None
    return text


def leading_header(sample: bytes) -> str | None:
    """The header row the manifest starts with (``header_row``), if any."""
    first = next(iter_lines([sample]), None)
    return header_row(first.number, first.data) if first is not None and not first.too_long else None


def count_objects(data: bytes) -> int:
    """How many objects a whole manifest makes a job of, as the planner counts them: each distinct
    valid row once, each bad line once (it becomes a FAILED object); blank lines and a header none."""
    refs: set[str] = set()
    errors = 0
    versioned_line = 0
    for raw in iter_lines([data]):
        if raw.too_long:
            errors += 1
            continue
        row = None if header_row(raw.number, raw.data) else parse_row(raw.number, raw.data)
        if isinstance(row, ManifestEntry):
            row, versioned_line = check_versioning(row, versioned_line)
        if isinstance(row, ManifestEntry):
            refs.add(row.object.ref)
        elif row is not None:
            errors += 1
    return len(refs) + errors


def first_entry(sample: bytes) -> ManifestEntry | None:
    """The first valid row in the start of a manifest, if any (a header row is none)."""
    for raw in iter_lines([sample]):
        row = None if raw.too_long or header_row(raw.number, raw.data) else parse_row(raw.number, raw.data)
        if isinstance(row, ManifestEntry):
            return row
    return None


def sniff(sample: bytes, complete: bool) -> ManifestError | None:
    """Check the start of a manifest before a job is accepted. Returns why it is unusable, or None.

    ``sample`` is the first bytes of the object; ``complete`` says whether it is the whole object.
    A verdict needs a first row: when the sample holds none, only blank lines and maybe a cut
    line, the manifest is accepted and the planner judges every line.
    """
    if not sample.strip(BOM + b" \t\r\n"):
        if complete:
            return ManifestError(0, "the manifest is empty: it must list at least one bucket,key row")
        return None
    if b"\x00" in sample[:4096]:
        return ManifestError(0, "the manifest is binary (contains NUL bytes): it must be a UTF-8 CSV text file")
    lines = list(iter_lines([sample]))
    cut = lines.pop() if not complete and lines else None  # the sample's end may cut the last line
    header = False
    for raw in lines:
        if raw.too_long:
            return too_long_error(raw.number, raw.data)
        if header_row(raw.number, raw.data):
            header = True
            continue
        row = parse_row(raw.number, raw.data)
        if row is None:
            continue
        if isinstance(row, ManifestError):
            return ManifestError(row.line, f"line {row.line}: {row.message}", row.raw)
        return None
    if cut is not None and cut.too_long:
        return too_long_error(cut.number, cut.data)
    if complete:
        if header:
            return ManifestError(0, "the manifest is empty: it has only a header row (line 1); it must list at least one bucket,key row")
        return ManifestError(0, "the manifest is empty: it must list at least one bucket,key row")
    return None


def check_versioning(entry: ManifestEntry, versioned_line: int) -> tuple[ManifestEntry | ManifestError, int]:
    """Every row has a version id or none does (as in S3 Batch Operations manifests).

    ``versioned_line`` remembers the first valid row: +line if it had a version id, -line if
    not, 0 before any. Returns the row (or the error it becomes) and the updated marker.
    """
    has_version = entry.object.version_id is not None
    if versioned_line == 0:
        return entry, entry.line if has_version else -entry.line
    if (versioned_line > 0) == has_version:
        return entry, versioned_line
    first = abs(versioned_line)
    if has_version:
        message = f"this row has a version id but the manifest's first row (line {first}) has none: every row must have one or none"
    else:
        message = f"this row has no version id but the manifest's first row (line {first}) has one: every row must have one or none"
    return ManifestError(entry.line, message, f"{entry.object.bucket},{encode_key(entry.object.key)}"), versioned_line
