"""The manifest parser: S3 Batch Operations CSV, streamed in blocks, resumable at any line."""

from __future__ import annotations

import itertools
import tracemalloc
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bulk_restore.domain.manifest import (
    BOM,
    MAX_KEY_BYTES,
    MAX_LINE_BYTES,
    count_objects,
    encode_key,
    first_entry,
    header_row,
    iter_lines,
    leading_header,
    parse_row,
    sniff,
)
from bulk_restore.domain.model import ManifestEntry, ManifestError, ObjectId


def entries(text: bytes) -> list[ManifestEntry | ManifestError]:
    rows = (parse_row(raw.number, raw.data) for raw in iter_lines([text]))
    return [r for r in rows if r is not None]


def key_of(line: str) -> str:
    row = parse_row(1, line.encode("utf-8"))
    assert isinstance(row, ManifestEntry), row
    return row.object.key


def error_of(line: bytes | str) -> str:
    row = parse_row(7, line.encode("utf-8") if isinstance(line, str) else line)
    assert isinstance(row, ManifestError), row
    assert row.line == 7
    return row.message


# ---- lines -------------------------------------------------------------------------------------


def test_lf_and_crlf_manifests_give_the_same_rows() -> None:
    rows = ["bkt-1,a.txt", "bkt-1,b%20c.txt,v1", "bkt-1,d.txt"]
    lf = entries(("\n".join(rows) + "\n").encode())
    crlf = entries(("\r\n".join(rows) + "\r\n").encode())
    assert lf == crlf
    assert [e.object for e in lf] == [ObjectId("bkt-1", "a.txt"), ObjectId("bkt-1", "b c.txt", "v1"), ObjectId("bkt-1", "d.txt")]


def test_a_last_line_without_line_end_is_read_and_ends_at_the_end_of_the_file() -> None:
    data = b"bkt-1,a\nbkt-1,b"
    lines = list(iter_lines([data]))
    assert [(line.number, line.data, line.end_offset) for line in lines] == [(1, b"bkt-1,a", 8), (2, b"bkt-1,b", len(data))]


def test_a_byte_order_mark_is_skipped_but_counted_in_the_offsets() -> None:
    data = BOM + b"bkt-1,a.txt\r\nbkt-1,b.txt\r\n"
    lines = list(iter_lines([data]))
    assert [line.data for line in lines] == [b"bkt-1,a.txt", b"bkt-1,b.txt"]
    assert lines[0].end_offset == len(BOM) + len(b"bkt-1,a.txt\r\n")
    assert lines[-1].end_offset == len(data)


def test_a_byte_order_mark_is_only_skipped_at_the_start_of_the_file() -> None:
    # Given a resumed read that starts in the middle of the file
    lines = list(iter_lines([BOM + b"x\n"], start_offset=10, start_line=3))
    # Then nothing is stripped: a BOM there is data
    assert lines[0].data == BOM + b"x" and lines[0].number == 4 and lines[0].end_offset == 10 + len(BOM) + 2


def test_blank_and_whitespace_lines_are_no_rows_but_keep_their_line_numbers() -> None:
    rows = entries(b"\n  \n\t\r\nbkt-1,a\n\n")
    assert len(rows) == 1 and rows[0].line == 4


# ---- fields ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ('bkt-1,"a,b.txt"', "a,b.txt"),
        ('bkt-1,"say ""hi"".txt"', 'say "hi".txt'),
        ("bkt-1,red%20flower.jpg", "red flower.jpg"),
        ("bkt-1,2020%2B2021.pdf", "2020+2021.pdf"),
        ("bkt-1,a+b.txt", "a+b.txt"),  # a literal + stays a + (percent-encoding, not form encoding)
        ("bkt-1,100%25.txt", "100%.txt"),
        ("bkt-1,%E6%97%A5%E6%9C%AC/%C3%BC.txt", "日本/ü.txt"),
        ("bkt-1,日本/ü.txt", "日本/ü.txt"),  # unencoded non-ASCII is taken as it is
        ("bkt-1,dir/sub/", "dir/sub/"),
        ("bkt-1, leading space", " leading space"),
    ],
)
def test_keys_are_percent_decoded(line: str, key: str) -> None:
    assert key_of(line) == key


def test_a_third_column_is_the_version_and_an_empty_one_means_none() -> None:
    with_version = parse_row(1, b"bkt-1,k,3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY")
    empty = parse_row(2, b"bkt-1,k,")
    assert isinstance(with_version, ManifestEntry) and with_version.object.version_id == "3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY"
    assert isinstance(empty, ManifestEntry) and empty.object.version_id is None


@pytest.mark.parametrize("line", ["bkt-1,%zz.txt", "bkt-1,100%.txt", "bkt-1,end%2", "bkt-1,%"])
def test_invalid_percent_encoding_is_a_line_error_that_says_how_to_encode(line: str) -> None:
    assert "percent-encoding" in error_of(line) and "%25" in error_of(line)


def test_percent_encoding_that_is_not_utf8_is_a_line_error() -> None:
    assert "UTF-8" in error_of("bkt-1,%C3%28.txt")


@pytest.mark.parametrize(("line", "found"), [("just-one-column", 1), ("bkt-1,k,v,extra", 4), (",,,", 4)])
def test_a_wrong_column_count_is_a_line_error_naming_the_format(line: str, found: int) -> None:
    message = error_of(line)
    assert "bucket,key[,versionId]" in message and f"found {found}" in message


@pytest.mark.parametrize("bucket", ["Bad_Bucket", "ab", "-bkt", "bkt-", "b" * 64, "UPPER", "bkt name", ""])
def test_a_bad_bucket_name_is_a_line_error(bucket: str) -> None:
    assert "not a valid S3 bucket name" in error_of(f"{bucket},key")


@pytest.mark.parametrize("bucket", ["my.bucket-1", "abc", "b" * 63, "0-numbers-9"])
def test_valid_bucket_names_are_accepted(bucket: str) -> None:
    assert isinstance(parse_row(1, f"{bucket},key".encode()), ManifestEntry)


def test_an_empty_key_is_a_line_error() -> None:
    assert "key column is empty" in error_of("bkt-1,")


def test_keys_up_to_1024_utf8_bytes_are_accepted_and_longer_ones_are_line_errors() -> None:
    assert key_of("bkt-1," + encode_key("ü" * 512)) == "ü" * 512  # 1,024 bytes
    assert key_of("bkt-1," + "k" * MAX_KEY_BYTES) == "k" * MAX_KEY_BYTES
    assert "longer than S3's limit" in error_of("bkt-1," + encode_key("ü" * 513))


def test_bytes_that_are_not_utf8_or_contain_nul_are_line_errors() -> None:
    assert "not valid UTF-8" in error_of(b"bkt-1,caf\xe9.txt")
    assert "NUL" in error_of(b"bkt-1,a\x00b")


def test_an_unterminated_quote_is_a_line_error() -> None:
    assert "CSV" in error_of('bkt-1,"open')


@pytest.mark.parametrize("key", ["red flower.jpg", "a+b.txt", "100%", '日本/ü, "q".bin', "x" * 1024, "dir/"])
def test_encode_key_is_the_inverse_of_the_parser(key: str) -> None:
    assert key_of("bkt-1," + encode_key(key)) == key


# ---- over-long lines ---------------------------------------------------------------------------


def test_a_line_longer_than_the_limit_is_flagged_and_truncated() -> None:
    data = b"bkt-1," + b"k" * MAX_LINE_BYTES + b"\nbkt-1,next\n"
    first, second = iter_lines([data])
    assert first.too_long and len(first.data) == MAX_LINE_BYTES and first.end_offset == len(data) - len(b"bkt-1,next\n")
    assert not second.too_long and second.data == b"bkt-1,next" and second.number == 2


def test_a_10_mb_line_is_streamed_without_being_held_in_memory() -> None:
    # Given a 10 MB line (no line end for 10 MB) fed in 4 KiB blocks, then one ordinary row
    size, block = 10 * 1024 * 1024, 4096

    def blocks() -> Iterator[bytes]:
        yield b"bkt-1,"
        for _ in range(size // block):
            yield b"x" * block
        yield b"\nbkt-1,after.txt\n"

    # When the parser reads it
    tracemalloc.start()
    try:
        lines = list(iter_lines(blocks()))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Then it kept only about MAX_LINE_BYTES of it (plus a block), never the line
    assert peak < 8 * (MAX_LINE_BYTES + block), f"peak {peak} bytes"
    long_line, after = lines
    assert long_line.too_long and len(long_line.data) == MAX_LINE_BYTES and long_line.number == 1
    assert long_line.end_offset == len(b"bkt-1,") + size + 1
    assert after.data == b"bkt-1,after.txt" and after.number == 2
    assert parse_row(after.number, after.data) == ManifestEntry(2, ObjectId("bkt-1", "after.txt"))


def test_an_over_long_last_line_without_line_end_is_still_reported() -> None:
    data = b"bkt-1,a\n" + b"y" * (MAX_LINE_BYTES * 3)
    lines = list(iter_lines([data]))
    assert lines[-1].too_long and lines[-1].number == 2 and lines[-1].end_offset == len(data)


def test_an_over_long_last_line_without_line_end_ends_at_the_end_of_the_file_whatever_the_blocks() -> None:
    data = b"bkt-1,a\n" + b"y" * (MAX_LINE_BYTES * 3)
    lines = list(iter_lines(data[i : i + 1000] for i in range(0, len(data), 1000)))
    assert lines[-1].end_offset == len(data)  # 18000 instead of 24584


# ---- any block split, any resume point ---------------------------------------------------------


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def as_tuples(lines: object) -> list[tuple[int, bytes, int, bool]]:
    return [(line.number, line.data, line.end_offset, line.too_long) for line in lines]  # type: ignore[attr-defined]


line_text = st.one_of(
    st.text(alphabet=st.sampled_from([*list('ab,"% +\r'), "ü", "日"]), max_size=12).map(lambda s: s.encode("utf-8")),
    st.integers(MAX_LINE_BYTES - 3, MAX_LINE_BYTES + 3).map(lambda n: b"z" * n),  # around the line limit
)


@st.composite
def manifests(draw: st.DrawFn) -> bytes:
    lines = draw(st.lists(line_text, max_size=8))
    ends = draw(st.lists(st.sampled_from([b"\n", b"\r\n"]), min_size=len(lines), max_size=len(lines)))
    body = b"".join(text + end for text, end in zip(lines, ends, strict=True))
    if lines and draw(st.booleans()):
        body = body[: -len(ends[-1])]  # no line end after the last line
    return (BOM if draw(st.booleans()) else b"") + body


@settings(max_examples=300, deadline=None)
@given(data=manifests(), cuts=st.lists(st.integers(0, 10**6), max_size=12))
def test_iter_lines_gives_the_same_lines_and_offsets_whatever_the_block_split(data: bytes, cuts: list[int]) -> None:
    blocks = split(data, cuts)
    assert as_tuples(iter_lines(blocks)) == as_tuples(iter_lines([data]))


@settings(max_examples=200, deadline=None)
@given(data=manifests(), cuts=st.lists(st.integers(0, 10**6), max_size=6))
def test_resuming_from_any_line_end_gives_the_remaining_lines(data: bytes, cuts: list[int]) -> None:
    whole = as_tuples(iter_lines([data]))
    for i, (number, _, end_offset, _) in enumerate(whole):
        rest = data[end_offset:]
        resumed = as_tuples(iter_lines(split(rest, cuts) if rest else [], start_offset=end_offset, start_line=number))
        assert resumed == whole[i + 1 :]


def test_a_byte_order_mark_split_across_blocks_is_still_skipped() -> None:
    data = BOM + b"bkt-1,a.txt\n"
    assert as_tuples(iter_lines([data[:1], data[1:]])) == as_tuples(iter_lines([data]))


def test_a_line_of_exactly_the_limit_ending_in_crlf_is_not_too_long_whatever_the_split() -> None:
    data = b"k" * MAX_LINE_BYTES + b"\r\nbkt-1,next\n"
    cut = MAX_LINE_BYTES + 1  # between the \r and the \n
    assert as_tuples(iter_lines([data[:cut], data[cut:]])) == as_tuples(iter_lines([data]))


# ---- sniff: is this a manifest at all? ---------------------------------------------------------


def test_sniff_accepts_a_manifest_whose_first_row_is_valid() -> None:
    assert sniff(BOM + b"\r\n\r\nbkt-1,a%20b.txt\r\n", complete=True) is None


def test_sniff_accepts_a_cut_sample_whose_complete_lines_start_well() -> None:
    assert sniff(b"bkt-1,a.txt\nbkt-1,b.t", complete=False) is None


@pytest.mark.parametrize("sample", [b"", b"\r\n\n  ", BOM, BOM + b"\n\n"])
def test_sniff_refuses_an_empty_manifest(sample: bytes) -> None:
    problem = sniff(sample, complete=True)
    assert problem is not None and "empty" in problem.message and "bucket,key" in problem.message


def test_sniff_refuses_a_binary_manifest() -> None:
    problem = sniff(b"PK\x03\x04\x14\x00\x00\x00\x08\x00", complete=True)
    assert problem is not None and "binary" in problem.message


def test_sniff_names_the_line_of_the_first_bad_row() -> None:
    problem = sniff(b"\nBad_Bucket,key\nbkt-1,ok\n", complete=True)
    assert problem is not None and problem.line == 2 and "line 2" in problem.message and "bucket name" in problem.message


def test_sniff_refuses_a_sample_that_is_one_over_long_line() -> None:
    problem = sniff(b"x" * (MAX_LINE_BYTES * 4), complete=False)
    assert problem is not None and "longer than" in problem.message


# ---- a header row on line 1 --------------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        "bucket,key",
        "Bucket,Key",
        "BUCKET,KEY",
        '"bucket","key"',
        "bucket, key",
        " Bucket , Key ",
        "bucket,key,versionId",
        "Bucket,Key,VersionId",
        "bucket,key,version_id",
        '"Bucket","Key","VersionId"',
    ],
)
def test_line_1_naming_the_columns_is_a_header(line: str) -> None:
    assert header_row(1, line.encode()) == line.strip()


@pytest.mark.parametrize(
    "line",
    [
        "bkt-1,key",
        "bucket,keys",
        "bucket",
        "key,bucket",
        "bucket,key,version",
        "bucket,key,versionId,extra",
        "bucket,photo.jpg",
        "Name,Path",
        "bucket,key%20x",
        '"bucket,key"',
        "",
    ],
)
def test_other_words_on_line_1_are_no_header(line: str) -> None:
    assert header_row(1, line.encode()) is None


def test_only_line_1_can_be_a_header() -> None:
    assert header_row(2, b"bucket,key") is None
    assert entries(b"bkt-1,a.txt\nbucket,key\n")[1] == ManifestEntry(2, ObjectId("bucket", "key"))


def test_the_header_is_found_after_a_byte_order_mark_and_with_crlf() -> None:
    assert leading_header(BOM + b"Bucket,Key\r\nbkt-1,a.txt\r\n") == "Bucket,Key"
    assert leading_header(b"bkt-1,a.txt\nbucket,key\n") is None
    assert leading_header(b"\nbucket,key\n") is None  # line 2


def test_sniff_and_the_first_entry_pass_over_a_header() -> None:
    sample = b"bucket,key\nbkt-1,a.txt\n"
    assert sniff(sample, complete=True) is None
    assert first_entry(sample) == ManifestEntry(2, ObjectId("bkt-1", "a.txt"))
    problem = sniff(b"bucket,key\nBad_Bucket,a\n", complete=True)
    assert problem is not None and problem.line == 2


def test_sniff_refuses_a_manifest_that_is_only_a_header() -> None:
    problem = sniff(b"Bucket,Key,VersionId\r\n\r\n", complete=True)
    assert problem is not None and "empty" in problem.message and "header" in problem.message


# ---- counting a whole manifest's objects -------------------------------------------------------


def test_count_objects_counts_each_object_once_and_each_bad_line() -> None:
    data = b"bucket,key\nbkt-1,a\n\nbkt-1,b\nbkt-1,a\nBad_Bucket,x\nbkt-1,c,v1\nbkt-1,%61\n" + b"k" * (MAX_LINE_BYTES + 1) + b"\n"
    # a, b (a twice, and %61 spells a), a bad bucket, a version where the first row had none, a line too long
    assert count_objects(data) == 5
    assert count_objects(b"") == 0
