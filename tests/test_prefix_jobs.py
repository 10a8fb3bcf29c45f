"""Jobs whose objects are the ones under a prefix ("source": {"bucket", "prefix", ...}).

The planner lists the prefix page by page while planning, checkpointing its place in a page, so
a job of any size streams; each object is counted once whatever the steps and pages.
"""

from __future__ import annotations

from collections import Counter

import pytest

from support.api import call_api
from support.ledger import JobLedger, assert_counters_match, assert_one_terminal_event
from support.stack import DATA_BUCKET, Stack


@pytest.fixture
def stack_settings() -> dict[str, object]:
    return {"PLAN_LINES_PER_STEP": 98}


def test_a_prefix_job_restores_what_is_archived_under_it_once_each_across_steps_and_pages(stack: Stack, emulator) -> None:
    archived = [f"photos/{i:04d}.jpg" for i in range(1_030)]  # over one page of 1,000 and many 98-row steps
    for key in archived:
        stack.put_archived(key)
    stack.put_archived("photos/readme.txt", storage_class="STANDARD")
    stack.put_archived("other/elsewhere.bin")
    created = stack.create_job(None, None, source={"bucket": DATA_BUCKET, "prefix": "photos/"})
    job_id = created["BulkJobId"]
    assert created["Source"] == "prefix"
    stack.settle()
    ledger = JobLedger.read(stack, job_id)
    assert ledger.status == "Complete"
    states = Counter(record["state"] for record in ledger.objects)
    assert states == Counter({"RESTORED": len(archived), "SKIPPED": 1})
    assert ledger.objects_named() == Counter({(DATA_BUCKET, key, None): 1 for key in [*archived, "photos/readme.txt"]})
    assert_counters_match(ledger)
    assert_one_terminal_event(stack.events_of(job_id), job_id)


def test_storage_classes_and_versions_narrow_a_prefix(stack: Stack, emulator) -> None:
    stack.enable_versioning(DATA_BUCKET)
    old = stack.put_archived("v/doc.bin")
    new = stack.put_archived("v/doc.bin")
    stack.put_archived("v/deep.bin", storage_class="DEEP_ARCHIVE")
    only_deep = stack.create_job(None, None, source={"bucket": DATA_BUCKET, "prefix": "v/", "storage_classes": ["deep_archive"]})[
        "BulkJobId"
    ]
    every = stack.create_job(None, None, source={"bucket": DATA_BUCKET, "prefix": "v/", "include_versions": True})["BulkJobId"]
    stack.settle()
    deep = {(r["key"], r["state"]) for r in JobLedger.read(stack, only_deep).objects}
    assert deep == {("v/deep.bin", "RESTORED"), ("v/doc.bin", "SKIPPED")}
    versions = {(r["key"], r.get("version_id"), r["state"]) for r in JobLedger.read(stack, every).objects}
    assert {(k, v) for k, v, s in versions if s == "RESTORED" and k == "v/doc.bin"} == {("v/doc.bin", old), ("v/doc.bin", new)}


@pytest.mark.parametrize(
    "body, status, says",
    [
        ({"bucket": "manifests-bkt", "key": "m.csv", "source": {"bucket": DATA_BUCKET}}, 400, "not both"),
        ({"tier": "BULK"}, 400, "or give source, a bucket and prefix"),
        ({"source": {"bucket": "no-such-bucket-here"}}, 422, "does not exist"),
        ({"source": {"bucket": DATA_BUCKET, "storage_classes": ["STANDARD"]}}, 400, "storage_classes"),
        ({"source": {"bucket": DATA_BUCKET, "prefixx": "a/"}}, 400, "prefixx"),
    ],
)
def test_a_bad_source_is_refused_saying_what_to_fix(stack: Stack, body: dict, status: int, says: str) -> None:
    answer, error = call_api("POST", "/create-job", body)
    assert answer == status, error
    assert says in error["error"]["message"]


@pytest.mark.parametrize("stack_settings", [{"ALLOWED_BUCKETS": "some-other-bucket"}])
def test_a_prefix_outside_the_allow_list_is_refused(stack: Stack) -> None:
    answer, error = call_api("POST", "/create-job", {"source": {"bucket": DATA_BUCKET, "prefix": "x/"}})
    assert answer == 403 and error["error"]["code"] == "BucketNotAllowed"
    assert "AllowedBuckets" in error["error"]["message"]
