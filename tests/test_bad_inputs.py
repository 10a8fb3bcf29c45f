"""The bad-input catalogue: malformed requests and manifests, one row each.

Two kinds. A request the API refuses gets a clear 4xx with the error code and a message naming
what to fix, and leaves nothing behind: no item in the table, no planning step queued, no
RestoreObject, no event. A manifest whose first row is good is accepted, and each bad line
after it becomes a FAILED object whose reason names the line, while the rest of the job is
restored and the job completes with FailedBatchFiles = the number of bad lines.
"""

from __future__ import annotations

import base64
import gzip
import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from bulk_restore.domain.model import ObjectId
from support.api import call_api
from support.faults import CallTracer, Throttle
from support.ledger import JobLedger, assert_accounting, assert_one_terminal_event, scan_table
from support.stack import DATA_BUCKET, MANIFEST_BUCKET, Stack, manifest_row, reset_caches
from test_handlers import archived, assert_error, list_all

MANIFEST_KEY = "manifest.csv"
GOOD_ROW = f"{DATA_BUCKET},a.bin\n".encode()
OTHER_BUCKET = "other-bkt"
MiB = 1024 * 1024


def body(**fields: Any) -> dict[str, Any]:
    """A create-job body: a good one, with ``fields`` changed (None removes a field)."""
    doc = {"bucket": MANIFEST_BUCKET, "key": MANIFEST_KEY, **fields}
    return {k: v for k, v in doc.items() if v is not None}


def configure(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    """Settings of the functions for one case (they read their settings once: rebuild them)."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    reset_caches()


def token(doc: Any) -> str:
    """A next_token: base64 of ``doc`` as JSON (of a str or bytes as they are)."""
    raw = doc if isinstance(doc, bytes) else (doc if isinstance(doc, str) else json.dumps(doc)).encode()
    return base64.urlsafe_b64encode(raw).decode()


DIGITS_5000 = "1" * 5000  # over Python's limit of 4,300 digits for int(str)
ODD_JOB_IDS = {  # path-decoded oddities: none is a job id (a UUID), so each is a 404 JobNotFound
    "hash": "a#b",
    "emoji": "\N{SLIGHTLY SMILING FACE}",
    "overlong-slash-undecoded": "%C0%AF",
    "overlong-slash-decoded": "\ufffd\ufffd",
    "space": "a b",
    "not-a-uuid": "job-1",
    "uuid-in-capitals": "4B1C6B0E-0000-4000-8000-000000000000",
}


# ---- requests the API refuses ----------------------------------------------------------------------


@dataclass(frozen=True)
class Refused:
    status: int
    code: str
    words: tuple[str, ...]  # each must be in the message: what to fix
    body: Any = field(default_factory=body)
    method: str = "POST"
    path: str = "/create-job"  # "{job}" stands for the id of a job that has run to completion
    query: dict[str, str] | None = None
    headers: dict[str, str] | None = None
    manifest: bytes | None = GOOD_ROW  # s3://MANIFEST_BUCKET/MANIFEST_KEY (None: no such object)
    storage_class: str = "STANDARD"  # the manifest's
    names: str | None = None  # the field the error's details must name
    manifest_answer: tuple[str, int] | None = None  # (code, status) S3 answers to HeadObject on the manifest
    env: dict[str, str] = field(default_factory=dict)
    base64: bool = False  # the body comes base64-encoded (isBase64Encoded), as API Gateway sends bytes that are not text


def refused(case_id: str, *args: Any, xfail: str = "", **kwargs: Any) -> Any:
    marks = [pytest.mark.xfail(strict=True, reason=xfail)] if xfail else []
    return pytest.param(Refused(*args, **kwargs), id=case_id, marks=marks)


def invalid(case_id: str, field_name: str | None, *words: str, xfail: str = "", **changes: Any) -> Any:
    """A create-job body that is a 400 InvalidRequest naming ``field_name``."""
    return refused(case_id, 400, "InvalidRequest", words or (field_name,), body(**changes), names=field_name, xfail=xfail)


def unusable(case_id: str, manifest: bytes | None, *words: str, **kwargs: Any) -> Any:
    """A manifest the create call must refuse as a 422 ManifestUnreadable."""
    return refused(case_id, 422, "ManifestUnreadable", words, manifest=manifest, **kwargs)


REFUSED = [
    # The body is not a JSON object
    refused("not-json", 400, "InvalidRequest", ("not JSON",), '{"bucket": "manifests-bkt", '),
    refused("json-array", 400, "InvalidRequest", ("body",), [MANIFEST_BUCKET, MANIFEST_KEY], names="(body)"),
    refused("json-string", 400, "InvalidRequest", ("body",), '"manifests-bkt/manifest.csv"', names="(body)"),
    refused("json-null", 400, "InvalidRequest", ("body",), "null", names="(body)"),
    refused("empty-body", 400, "InvalidRequest", ("empty", "bucket", "key"), ""),
    refused("blank-body", 400, "InvalidRequest", ("empty",), " \r\n "),
    refused("body-over-16-kib", 413, "RequestTooLarge", ("16384", "manifest"), body(client_tag="x" * (16 * 1024))),
    refused("deeply-nested-json", 400, "InvalidRequest", ("JSON",), "[" * 5000 + "]" * 5000),
    # Fields
    invalid("missing-bucket", "bucket", bucket=None),
    invalid("missing-key", "key", key=None),
    invalid("bucket-wrong-type", "bucket", bucket=123),
    invalid("bucket-bad-name", "bucket", bucket="Bad_Bucket"),
    invalid("bucket-too-short", "bucket", bucket="ab"),
    invalid("key-empty", "key", key=""),
    invalid("key-too-long", "key", key="k" * 1025),
    invalid("tier-unknown", "tier", "STANDARD, BULK, EXPEDITED", tier="FAST"),
    invalid("tier-number", "tier", "tier must be a string", tier=2),
    refused("tier-null", 400, "InvalidRequest", ("tier must be a string",), {**body(), "tier": None}, names="tier"),
    invalid("days-0", "expiration_days", expiration_days=0),
    invalid("days-negative", "expiration_days", expiration_days=-1),
    invalid("days-3651", "expiration_days", expiration_days=3651),
    invalid("days-string", "expiration_days", expiration_days="1"),
    invalid("days-fraction", "expiration_days", expiration_days=1.5),
    invalid("days-boolean", "expiration_days", expiration_days=True),
    invalid("client-tag-too-long", "client_tag", client_tag="t" * 257),
    invalid("client-tag-bad-chars", "client_tag", client_tag="<script>alert(1)</script>"),
    invalid("progress-step-0", "progress_step_percent", progress_step_percent=0),
    invalid("progress-step-51", "progress_step_percent", progress_step_percent=51),
    invalid("client-token-empty", "client_token", client_token=""),
    invalid("client-token-blank", "client_token", client_token="   "),
    invalid("client-token-too-long", "client_token", client_token="t" * 129),
    invalid("fallback-yes", "expedited_fallback", expedited_fallback="yes"),
    invalid("deadline-hours-0", "deadline_hours", deadline_hours=0),
    invalid("deadline-hours-negative", "deadline_hours", deadline_hours=-2),
    invalid("deadline-hours-over-30-days", "deadline_hours", deadline_hours=24 * 30 + 1),
    invalid("deadline-hours-string", "deadline_hours", deadline_hours="2"),
    invalid("deadline-hours-boolean", "deadline_hours", deadline_hours=True),
    invalid("keep-restored-days-400", "keep_restored_days", keep_restored_days=400),
    invalid("keep-restored-days-negative", "keep_restored_days", keep_restored_days=-1),
    refused("idempotency-key-over-2-kib", 400, "InvalidRequest", ("Idempotency-Key",), headers={"Idempotency-Key": "k" * 2100}),
    # Client mistakes that once were 500s
    refused(
        "json-integer-of-5000-digits",
        400,
        "InvalidRequest",
        ("4300 digits", "expiration_days"),
        f'{{"bucket": "{MANIFEST_BUCKET}", "key": "{MANIFEST_KEY}", "expiration_days": {DIGITS_5000}}}',
    ),
    refused(
        "json-negative-integer-of-5000-digits",
        400,
        "InvalidRequest",
        ("4300 digits",),
        f'{{"bucket": "{MANIFEST_BUCKET}", "key": "{MANIFEST_KEY}", "keep_restored_days": -{DIGITS_5000}}}',
    ),
    refused(
        "body-not-utf8",
        400,
        "InvalidRequest",
        ("UTF-8", "byte 39"),
        f'{{"bucket": "{MANIFEST_BUCKET}", "key": "caf'.encode() + b'\xe9.csv"}',
        base64=True,
    ),
    refused("body-utf16", 400, "InvalidRequest", ("UTF-8",), json.dumps(body()).encode("utf-16"), base64=True),
    refused("body-not-base64", 400, "InvalidRequest", ("base64",), "{not base64}", base64=True),
    refused("body-base64-over-16-kib", 413, "RequestTooLarge", ("16384",), json.dumps(body(client_tag="x" * 17000)).encode(), base64=True),
    refused("body-lone-surrogate", 400, "InvalidRequest", ("UTF-8", "key"), f'{{"bucket": "{MANIFEST_BUCKET}", "key": "\\ud800.csv"}}'),
    # The manifest
    unusable("manifest-missing", None, "does not exist"),
    # A manifest outside the stack's manifest buckets is never read, whether its bucket exists or not
    refused(
        "manifest-bucket-missing",
        403,
        "ManifestLocationNotAllowed",
        ("upload the manifest to s3://manifests-bkt/",),
        body(bucket="no-such-bucket"),
    ),
    refused(
        "manifest-in-a-data-bucket",
        403,
        "ManifestLocationNotAllowed",
        ("upload the manifest to s3://manifests-bkt/",),
        body(bucket="archive-bkt", key="hr-private/payroll/salaries.csv"),
    ),
    unusable("manifest-empty", b"", "empty"),
    unusable("manifest-only-blank-lines", b"\n\r\n  \n\t\n", "empty"),
    unusable("manifest-only-bom", b"\xef\xbb\xbf", "empty"),
    unusable("manifest-binary", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary", "UTF-8"),
    unusable("manifest-gzip", gzip.compress(GOOD_ROW * 10, mtime=0), "binary"),
    unusable("nul-byte-in-the-first-4-kib", GOOD_ROW + f"{DATA_BUCKET},b".encode() + b"\x00.bin\n", "binary"),
    unusable("manifest-utf16", GOOD_ROW.decode().encode("utf-16"), "binary", "UTF-8"),
    unusable("first-line-1-column", b"just-one-column\n" + GOOD_ROW, "line 1", "columns"),
    unusable("first-line-4-columns", f"{DATA_BUCKET},a.bin,v1,extra\n".encode() + GOOD_ROW, "line 1", "columns"),
    unusable("first-line-other-column-names", b"Name,Path\n" + GOOD_ROW, "line 1", "bucket name"),
    unusable("manifest-only-a-header", b"bucket,key\n", "empty", "header"),
    unusable("first-line-bad-bucket", b"Bad_Bucket,a.bin\n" + GOOD_ROW, "line 1", "bucket name"),
    unusable("first-line-bad-percent-encoding", f"{DATA_BUCKET},a%ZZ.bin\n".encode() + GOOD_ROW, "line 1", "percent-encoding"),
    unusable("first-line-trailing-percent", f"{DATA_BUCKET},a.bin%\n".encode() + GOOD_ROW, "line 1", "percent-encoding"),
    unusable("first-line-key-over-1024-bytes", f"{DATA_BUCKET},{'k' * 1025}\n".encode() + GOOD_ROW, "line 1", "1024 bytes"),
    unusable("first-line-over-8-kib", f"{DATA_BUCKET},{'k' * 9000}\n".encode() + GOOD_ROW, "8192 bytes"),
    unusable("first-line-10-mib", f"{DATA_BUCKET},".encode() + b"k" * (10 * MiB) + b"\n" + GOOD_ROW, "8192 bytes"),
    unusable("first-line-not-utf8", f"{DATA_BUCKET},caf".encode() + b"\xe9.bin\n" + GOOD_ROW, "line 1", "UTF-8"),
    unusable("first-line-unterminated-quote", f'{DATA_BUCKET},"a.bin\n'.encode() + GOOD_ROW, "line 1", "CSV"),
    unusable("cr-line-ends", GOOD_ROW.replace(b"\n", b"\r") * 3, "line 1", "CSV"),
    unusable("manifest-archived", GOOD_ROW, "archived", storage_class="GLACIER"),
    unusable("manifest-access-denied", GOOD_ROW, "no access", "s3:GetObject", manifest_answer=("AccessDenied", 403)),
    unusable("manifest-bucket-in-another-region", GOOD_ROW, "another region", manifest_answer=("PermanentRedirect", 301)),
    refused(
        "source-bucket-not-allowed",
        403,
        "BucketNotAllowed",
        (OTHER_BUCKET, "AllowedBuckets"),
        manifest=f"{OTHER_BUCKET},a.bin\n".encode(),
        env={"ALLOWED_BUCKETS": DATA_BUCKET},
    ),
    # The other routes
    refused("get-unknown-job", 404, "JobNotFound", ("no job",), None, "GET", "/jobs/4b1c6b0e-0000-4000-8000-000000000000"),
    refused("objects-of-unknown-job", 404, "JobNotFound", ("no job",), None, "GET", "/jobs/4b1c6b0e-0000-4000-8000-000000000000/objects"),
    refused("objects-bad-state", 400, "InvalidRequest", ("RESTORING", "FAILED"), None, "GET", "/jobs/{job}/objects", {"state": "LOST"}),
    refused("objects-limit-0", 400, "InvalidRequest", ("limit", "1000"), None, "GET", "/jobs/{job}/objects", {"limit": "0"}),
    refused("objects-limit-1001", 400, "InvalidRequest", ("limit",), None, "GET", "/jobs/{job}/objects", {"limit": "1001"}),
    refused("objects-limit-word", 400, "InvalidRequest", ("limit",), None, "GET", "/jobs/{job}/objects", {"limit": "ten"}),
    refused("objects-limit-negative", 400, "InvalidRequest", ("limit",), None, "GET", "/jobs/{job}/objects", {"limit": "-5"}),
    refused("next-token-garbage", 400, "InvalidRequest", ("next_token",), None, "GET", "/jobs/{job}/objects", {"next_token": "%%%"}),
    refused(
        "next-token-not-an-object",
        400,
        "InvalidRequest",
        ("next_token",),
        None,
        "GET",
        "/jobs/{job}/objects",
        {"next_token": token([1, 2])},
    ),
    refused(
        "next-token-bad-start-key",
        400,
        "InvalidRequest",
        ("next_token",),
        None,
        "GET",
        "/jobs/{job}/objects",
        {"next_token": token({"s": 0, "k": "x"})},
    ),
    refused(
        "objects-limit-superscript-two",
        400,
        "InvalidRequest",
        ("limit", "1000"),
        None,
        "GET",
        "/jobs/{job}/objects",
        {"limit": "\N{SUPERSCRIPT TWO}"},
    ),
    refused(
        "objects-limit-fullwidth-digits", 400, "InvalidRequest", ("limit",), None, "GET", "/jobs/{job}/objects", {"limit": "\uff11\uff10"}
    ),
    refused("objects-limit-5000-digits", 400, "InvalidRequest", ("limit",), None, "GET", "/jobs/{job}/objects", {"limit": DIGITS_5000}),
    *(
        refused(
            f"next-token-{name}", 400, "InvalidRequest", ("next_token",), None, "GET", "/jobs/{job}/objects", {"next_token": token(text)}
        )
        for name, text in (
            ("infinity", '{"s": Infinity}'),
            ("minus-infinity", '{"s": -Infinity}'),
            ("nan", '{"s": NaN}'),
            ("huge-float", '{"s": 1e999}'),
            ("5000-digits", f'{{"s": {DIGITS_5000}}}'),
            ("fraction", '{"s": 1.5}'),
            ("boolean", '{"s": true}'),
            ("deeply-nested", "[" * 100_000),
            ("not-utf8", b'{"s": "\xff"}'),
        )
    ),
    *(
        refused(f"{verb}-job-id-{name}", 404, "JobNotFound", ("no job", "UUID"), None, method, path.format(job_id))
        for name, job_id in ODD_JOB_IDS.items()
        for verb, method, path in (
            ("get", "GET", "/jobs/{}"),
            ("objects-of", "GET", "/jobs/{}/objects"),
            ("cancel", "POST", "/jobs/{}/cancel"),
        )
    ),
    refused("cancel-unknown-job", 404, "JobNotFound", ("no job",), None, "POST", "/jobs/4b1c6b0e-0000-4000-8000-000000000000/cancel"),
    refused("cancel-finished-job", 409, "JobAlreadyFinished", ("Complete", "nothing to cancel"), None, "POST", "/jobs/{job}/cancel"),
    refused("get-on-create-job", 404, "NotFound", ("no such route",), None, "GET", "/create-job"),
    refused("put-create-job", 404, "NotFound", ("no such route",), method="PUT"),
    refused("delete-job", 404, "NotFound", ("no such route",), None, "DELETE", "/jobs/{job}"),
    refused("get-on-cancel", 404, "NotFound", ("no such route",), None, "GET", "/jobs/{job}/cancel"),
    refused("unknown-route", 404, "NotFound", ("no such route",), None, "GET", "/job"),  # (GET /jobs lists the jobs)
]


def finished_job(stack: Stack) -> str:
    """A job of one archived object, run to completion."""
    job_id = stack.create_job(*stack.put_manifest(archived(stack, "done.bin"), key="done.csv"))["BulkJobId"]
    stack.settle()
    return job_id


@pytest.mark.parametrize("case", REFUSED)
def test_a_bad_request_is_refused_with_what_to_fix_and_leaves_nothing_behind(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, case: Refused
) -> None:
    # Given the stack as the case wants it: its settings, its manifest, maybe a finished job
    configure(monkeypatch, case.env)
    archived(stack, "a.bin")
    if case.manifest is not None:
        stack.s3.put_object(Bucket=MANIFEST_BUCKET, Key=MANIFEST_KEY, Body=case.manifest, StorageClass=case.storage_class)
    job_id = finished_job(stack) if "{job}" in case.path else ""
    before = scan_table(stack)
    stack.read_events()
    tracer = CallTracer().install(stack.services())
    if case.manifest_answer:
        code, status = case.manifest_answer
        Throttle("HeadObject", 1, code, status).install(stack.services().s3.client)
    # When the request is sent
    status, answer = call_api(case.method, case.path.format(job=job_id), case.body, case.headers, case.query, base64=case.base64)
    # Then it is refused with the expected status and code, and a message that says what to fix
    error = assert_error(status, answer, case.status, case.code, *case.words)
    if case.names:
        assert case.names in {d["field"] for d in error["details"]}, error
    # And nothing was left behind: no item, no planning step, no restore request, no event
    assert scan_table(stack) == before
    assert stack.queue_depth(stack.plan_queue_url) == 0
    assert tracer.count("s3.RestoreObject") == 0
    assert stack.read_events() == []


def test_the_catalogue_has_a_row_for_every_kind_the_issue_names() -> None:
    ids = {p.id for p in REFUSED} | {p.id for p in BAD_LINES} | {p.id for p in ROW_OUTCOMES}
    assert len(ids) == len(REFUSED) + len(BAD_LINES) + len(ROW_OUTCOMES) >= 45
    for kind in (
        "not-json",
        "days-3651",
        "tier-unknown",
        "manifest-missing",
        "manifest-empty",
        "manifest-binary",
        "first-line-4-columns",
        "mixed-versioned-and-unversioned",
        "key-over-1024-bytes",
        "bad-percent-encoding",
        "line-of-10-mib",
        "manifest-bucket-in-another-region",
        "manifest-access-denied",
        "source-bucket-not-allowed",
        "bucket-not-allowed",
        "json-integer-of-5000-digits",
        "body-not-utf8",
        "objects-limit-superscript-two",
        "next-token-infinity",
        "next-token-nan",
        "next-token-huge-float",
        "get-job-id-hash",
        "get-job-id-emoji",
        "get-job-id-overlong-slash-decoded",
    ):
        assert kind in ids, kind


# ---- manifests accepted, with bad lines after the first -------------------------------------------

LONG_KEY = "k" * 1025


@dataclass(frozen=True)
class BadLine:
    data: bytes  # one manifest line, without its line end
    words: tuple[str, ...]  # in the FAILED object's reason, after "manifest line N: "


def bad_line(case_id: str, data: bytes, *words: str) -> Any:
    return pytest.param(BadLine(data, words), id=case_id)


BAD_LINES = [
    bad_line("one-column", b"just-one-column", "2 or 3 columns", "found 1"),
    bad_line("four-columns", f"{DATA_BUCKET},b.bin,v1,extra".encode(), "2 or 3 columns", "found 4"),
    bad_line("bad-bucket", b"Bad_Bucket,b.bin", "bucket name"),
    bad_line("bad-percent-encoding", f"{DATA_BUCKET},b%ZZ.bin".encode(), "percent-encoding"),
    bad_line("trailing-percent", f"{DATA_BUCKET},b.bin%".encode(), "percent-encoding"),
    bad_line("percent-encoding-not-utf8", f"{DATA_BUCKET},b%C3%28.bin".encode(), "UTF-8"),
    bad_line("key-over-1024-bytes", f"{DATA_BUCKET},{LONG_KEY}".encode(), "1024 bytes"),
    bad_line("encoded-key-over-1024-bytes", f"{DATA_BUCKET},{'%C3%BC' * 513}".encode(), "1024 bytes"),
    bad_line("line-over-8-kib", f"{DATA_BUCKET},{'k' * 9000}".encode(), "8192 bytes"),
    bad_line("line-of-10-mib", f"{DATA_BUCKET},".encode() + b"k" * (10 * MiB), "8192 bytes"),
    bad_line("not-utf8", f"{DATA_BUCKET},caf".encode() + b"\xe9.bin", "UTF-8"),
    bad_line("empty-key", f"{DATA_BUCKET},".encode(), "key column is empty"),
    bad_line("unterminated-quote", f'{DATA_BUCKET},"b.bin'.encode(), "CSV"),
    bad_line("mixed-versioned-and-unversioned", f"{DATA_BUCKET},b.bin,3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY".encode(), "version id", "line 1"),
]


def run_manifest(stack: Stack, data: bytes) -> tuple[str, CallTracer]:
    tracer = CallTracer().install(stack.services())
    bucket, key = stack.put_manifest_bytes(data)
    job_id = stack.create_job(bucket, key)["BulkJobId"]
    stack.settle()
    return job_id, tracer


def assert_completed(stack: Stack, job_id: str, failed: int) -> None:
    terminal = assert_one_terminal_event(stack.events_of(job_id), job_id)
    assert (terminal.message["Status"], terminal.message["FailedBatchFiles"]) == ("Complete", str(failed))


@pytest.mark.parametrize("case", BAD_LINES)
def test_a_bad_line_after_the_first_fails_alone_naming_its_line(stack: Stack, case: BadLine) -> None:
    # Given a manifest whose second line is bad, between two good rows
    first, last = archived(stack, "first.bin", "last.bin")
    data = b"\n".join([manifest_row(first).encode(), case.data, manifest_row(last).encode()]) + b"\n"
    # When a job runs it
    job_id, tracer = run_manifest(stack, data)
    # Then the bad line is one FAILED object whose reason names line 2 and what is wrong
    (failed,) = list_all(job_id, state="FAILED")[0]
    assert failed["ManifestLine"] == 2 and failed["Reason"].startswith("manifest line 2: "), failed
    for word in case.words:
        assert word in failed["Reason"], failed["Reason"]
    # And the good rows were restored, each asked for once; the bad line was never sent to S3
    assert sorted(a.key for a in tracer.restores) == ["first.bin", "last.bin"]
    ledger = JobLedger.read(stack, job_id)
    assert_accounting(ledger, [first, last], error_lines=1)
    assert ledger.states() == {"RESTORED": 2, "FAILED": 1}
    # And the job completed, counting the bad line in FailedBatchFiles
    assert_completed(stack, job_id, failed=1)


def test_every_bad_line_in_one_manifest_is_counted_in_failed_batch_files(stack: Stack) -> None:
    # Given a manifest with good rows first and last and every kind of bad line in between (and blank
    # lines), with a NUL byte on the last bad line (past the first 4 KiB, where it would make the manifest binary)
    first, last = archived(stack, "first.bin", "last.bin")
    bad = [p.values[0].data for p in BAD_LINES] + [f"{DATA_BUCKET},b".encode() + b"\x00.bin"]
    lines = [manifest_row(first).encode(), b"", *bad, b"", manifest_row(last).encode()]
    # When a job runs it
    job_id, tracer = run_manifest(stack, b"\r\n".join(lines))
    # Then each bad line is one FAILED object naming its own line; the blank lines are nothing
    failed = list_all(job_id, state="FAILED", limit="7")[0]
    assert sorted(f["ManifestLine"] for f in failed) == list(range(3, 3 + len(bad)))
    assert all(f["Reason"].startswith(f"manifest line {f['ManifestLine']}: ") for f in failed)
    assert "NUL" in max(failed, key=lambda f: f["ManifestLine"])["Reason"]
    assert sorted(a.key for a in tracer.restores) == ["first.bin", "last.bin"]
    assert_accounting(JobLedger.read(stack, job_id), [first, last], error_lines=len(bad))
    assert_completed(stack, job_id, failed=len(bad))


# ---- good lines whose objects cannot be restored ---------------------------------------------------


@dataclass(frozen=True)
class RowOutcome:
    row: ObjectId  # the manifest's line 2
    state: str
    words: tuple[str, ...]  # in the object's reason
    requested: bool  # whether S3 is asked
    storage_class: str | None = None  # stored with this class first (None: not stored)
    answer: tuple[str, int] | None = None  # (code, status) S3 answers to its RestoreObject
    env: dict[str, str] = field(default_factory=dict)


def outcome(case_id: str, *args: Any, **kwargs: Any) -> Any:
    return pytest.param(RowOutcome(*args, **kwargs), id=case_id)


ROW_OUTCOMES = [
    outcome("no-such-key", ObjectId(DATA_BUCKET, "missing.bin"), "FAILED", ("NoSuchKey",), True),
    outcome("no-such-bucket", ObjectId("no-such-bkt", "x.bin"), "FAILED", ("NoSuchBucket",), True),
    outcome("not-archived", ObjectId(DATA_BUCKET, "warm.txt"), "SKIPPED", ("readable",), True, "STANDARD"),
    outcome("access-denied", ObjectId(DATA_BUCKET, "locked.bin"), "FAILED", ("AccessDenied",), True, "GLACIER", ("AccessDenied", 403)),
    outcome(
        "bucket-in-another-region", ObjectId("far-bkt", "x.bin"), "FAILED", ("another region",), True, "GLACIER", ("PermanentRedirect", 301)
    ),
    outcome(
        "bucket-not-allowed",
        ObjectId(OTHER_BUCKET, "x.bin"),
        "FAILED",
        ("BucketNotAllowed", "AllowedBuckets"),
        False,
        "GLACIER",
        env={"ALLOWED_BUCKETS": DATA_BUCKET},
    ),
]


@pytest.mark.parametrize("case", ROW_OUTCOMES)
def test_a_good_row_whose_object_cannot_be_restored_ends_with_its_reason(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, case: RowOutcome
) -> None:
    # Given a manifest whose second row names an object that cannot (or need not) be restored
    configure(monkeypatch, case.env)
    first, last = archived(stack, "first.bin", "last.bin")
    if case.storage_class:
        stack.put_archived(case.row.key, bucket=case.row.bucket, storage_class=case.storage_class)
    tracer = CallTracer().install(stack.services())
    if case.answer:
        Throttle("RestoreObject", 1, *case.answer, match=lambda params: params["Key"] == case.row.key).install(stack.services().s3.client)
    # When a job runs it
    bucket, key = stack.put_manifest([first, case.row, last])
    job_id = stack.create_job(bucket, key)["BulkJobId"]
    stack.settle()
    # Then that object ends in its state with the reason, on its manifest line
    ledger = JobLedger.read(stack, job_id)
    record = ledger.record_of(case.row)
    assert (record["state"], int(record["line"])) == (case.state, 2), record
    for word in case.words:
        assert word in record["reason"], record["reason"]
    # And it was asked for at most once (never, outside the allow-list); the others were restored
    asked = [a for a in tracer.restores if (a.bucket, a.key) == (case.row.bucket, case.row.key)]
    assert len(asked) == int(case.requested)
    assert_accounting(ledger, [first, case.row, last])
    assert ledger.state_of(first) == ledger.state_of(last) == "RESTORED"
    assert_completed(stack, job_id, failed=int(case.state == "FAILED"))


def test_duplicate_rows_are_counted_and_requested_once(stack: Stack) -> None:
    first, last = archived(stack, "first.bin", "last.bin")
    job_id, tracer = run_manifest(stack, "".join(f"{manifest_row(o)}\n" for o in (first, first, last, first, last)).encode())
    assert sorted(a.key for a in tracer.restores) == ["first.bin", "last.bin"]
    ledger = JobLedger.read(stack, job_id)
    assert_accounting(ledger, [first, last])
    assert ledger.record_of(first)["line"] == 1 and ledger.record_of(last)["line"] == 3
    assert_completed(stack, job_id, failed=0)


# ---- valid manifests that must not be refused ------------------------------------------------------


def test_a_manifest_starting_with_more_than_64_kib_of_blank_lines_is_accepted(stack: Stack) -> None:
    (obj,) = archived(stack, "late.bin")
    job_id, _ = run_manifest(stack, b"\n" * (70 * 1024) + manifest_row(obj).encode() + b"\n")
    assert_accounting(JobLedger.read(stack, job_id), [obj])


def test_a_manifest_key_with_a_trailing_space_is_read_as_it_is(stack: Stack) -> None:
    # Given two manifests whose keys differ only by a trailing space
    (obj,) = archived(stack, "a.bin")
    stack.put_manifest_bytes(b"", key="manifest.csv")
    stack.put_manifest([obj], key="manifest.csv ")
    # When a job names the one with the space
    status, answer = call_api("POST", "/create-job", body(key="manifest.csv "))
    # Then that one is read (not the empty one: a 422)
    assert status == 200, answer
