"""Jobs whose objects come from an S3 Inventory report (manifest_format "s3-inventory").

The report is written by the local stack's inventory writer in AWS's layout, from the moto
bucket itself; the job is created over the API and run by the functions, on the faithful S3
restore emulation (Intelligent-Tiering archive tiers included).
"""

from __future__ import annotations

import gzip
import json
from collections import Counter

import pytest

from bulk_restore.domain.model import ObjectId
from bulk_restore_cli.local import s3_restore
from bulk_restore_cli.local.inventory import write_inventory_report
from support.api import call_api
from support.ledger import JobLedger, assert_counters_match, assert_one_terminal_event
from support.stack import DATA_BUCKET, MANIFEST_BUCKET, Stack


@pytest.fixture
def stack_settings() -> dict[str, object]:
    return {"PLAN_LINES_PER_STEP": 98}


def fill(stack: Stack) -> dict[str, list[str]]:
    """A bucket with every kind of object; returns the keys per expected outcome."""
    kinds = {
        "GLACIER": [f"glacier/{i:03d}.bin" for i in range(120)],  # more than one chunk and one step
        "DEEP_ARCHIVE": ["deep/a b+c ü.bin", "deep/two,comma.bin"],
        "STANDARD": ["hot/one.txt", "hot/two.txt"],
        "GLACIER_IR": ["instant/x.bin"],
    }
    for storage_class, keys in kinds.items():
        for key in keys:
            stack.put_archived(key, storage_class=storage_class)
    stack.s3.put_object(Bucket=DATA_BUCKET, Key="tiered/archived.bin", Body=b"x", StorageClass="INTELLIGENT_TIERING")
    s3_restore.set_archive_status(DATA_BUCKET, "tiered/archived.bin", "ARCHIVE_ACCESS")
    stack.s3.put_object(Bucket=DATA_BUCKET, Key="tiered/frequent.bin", Body=b"x", StorageClass="INTELLIGENT_TIERING")
    return {
        "restore": kinds["GLACIER"] + kinds["DEEP_ARCHIVE"] + ["tiered/archived.bin"],
        "skip": kinds["STANDARD"] + kinds["GLACIER_IR"] + ["tiered/frequent.bin"],
    }


def test_an_inventory_job_restores_the_archived_objects_and_skips_the_others_saying_why(stack: Stack, emulator) -> None:
    expected = fill(stack)
    manifest_key = write_inventory_report(DATA_BUCKET, MANIFEST_BUCKET, "inventories", rows_per_file=50)
    created = stack.create_job(MANIFEST_BUCKET, manifest_key, manifest_format="s3-inventory", tier="BULK")
    job_id = created["BulkJobId"]
    assert created["Source"] == "s3-inventory" and created["TotalFilesRequested"] is None
    stack.settle()
    ledger = JobLedger.read(stack, job_id)
    assert ledger.status == "Complete"
    states = {record["key"]: record["state"] for record in ledger.objects}
    assert sorted(k for k, s in states.items() if s == "RESTORED") == sorted(expected["restore"])
    assert sorted(k for k, s in states.items() if s == "SKIPPED") == sorted(expected["skip"])
    reasons = {record["key"]: record.get("reason", "") for record in ledger.objects}
    assert reasons["hot/one.txt"] == "not archived: STANDARD is readable at once"
    assert "INTELLIGENT_TIERING in the FREQUENT access tier" in reasons["tiered/frequent.bin"]
    assert ledger.objects_named() == Counter({(DATA_BUCKET, key, None): 1 for key in expected["restore"] + expected["skip"]})  # each once
    assert_counters_match(ledger)
    terminal = assert_one_terminal_event(stack.events_of(job_id), job_id).message
    assert terminal["Counts"]["Restored"] == len(expected["restore"]) and terminal["Counts"]["Skipped"] == len(expected["skip"])
    status, body = call_api("GET", f"/jobs/{job_id}")
    assert status == 200 and body["Source"] == "s3-inventory" and body["Planning"]["LinesRead"] == len(states)


def test_versions_are_the_latest_unless_every_version_is_asked_for(stack: Stack, emulator) -> None:
    stack.enable_versioning(DATA_BUCKET)
    first = stack.put_archived("doc.bin")
    second = stack.put_archived("doc.bin")
    manifest_key = write_inventory_report(DATA_BUCKET, MANIFEST_BUCKET, "versions", include_versions=True)
    latest = stack.create_job(MANIFEST_BUCKET, manifest_key, manifest_format="s3-inventory")["BulkJobId"]
    every = stack.create_job(MANIFEST_BUCKET, manifest_key, manifest_format="s3-inventory", include_versions=True)["BulkJobId"]
    stack.settle()
    by_job = {job: {(r["version_id"], r["state"]) for r in JobLedger.read(stack, job).objects} for job in (latest, every)}
    assert by_job[latest] == {(second, "RESTORED"), (first, "SKIPPED")}
    assert by_job[every] == {(second, "RESTORED"), (first, "RESTORED")}


@pytest.mark.parametrize(
    "problem, status, says",
    [
        ("not json", 422, "is not a usable S3 Inventory manifest.json"),
        ("orc", 422, "configure the inventory with the CSV or Parquet format"),
        ("elsewhere", 403, "ManifestBuckets"),
    ],
)
def test_a_bad_inventory_manifest_is_refused_at_create_saying_what_to_fix(stack: Stack, problem: str, status: int, says: str) -> None:
    stack.put_archived("a.bin")
    key = write_inventory_report(DATA_BUCKET, MANIFEST_BUCKET, "bad")
    doc = json.loads(stack.s3.get_object(Bucket=MANIFEST_BUCKET, Key=key)["Body"].read())
    if problem == "not json":
        body = b"{not json"
    elif problem == "orc":
        body = json.dumps({**doc, "fileFormat": "ORC"}).encode()
    else:
        stack.s3.create_bucket(Bucket="somebody-elses")
        body = json.dumps({**doc, "destinationBucket": "arn:aws:s3:::somebody-elses"}).encode()
    stack.s3.put_object(Bucket=MANIFEST_BUCKET, Key="bad/manifest.json", Body=body)
    answer, error = call_api(
        "POST", "/create-job", {"bucket": MANIFEST_BUCKET, "key": "bad/manifest.json", "manifest_format": "s3-inventory"}
    )
    assert answer == status, error
    assert says in error["error"]["message"]


def test_a_damaged_data_file_fails_the_job_with_the_file_named(stack: Stack, emulator) -> None:
    for i in range(5):
        stack.put_archived(f"k{i}.bin")
    key = write_inventory_report(DATA_BUCKET, MANIFEST_BUCKET, "damaged")
    doc = json.loads(stack.s3.get_object(Bucket=MANIFEST_BUCKET, Key=key)["Body"].read())
    data_key = doc["files"][0]["key"]
    stack.s3.put_object(Bucket=MANIFEST_BUCKET, Key=data_key, Body=gzip.compress(b'"other","rows"\n'))
    job_id = stack.create_job(MANIFEST_BUCKET, key, manifest_format="s3-inventory")["BulkJobId"]
    stack.settle()
    ledger = JobLedger.read(stack, job_id)
    assert ledger.status == "Failed"
    terminal = assert_one_terminal_event(stack.events_of(job_id), job_id).message
    assert data_key in terminal["FailureReason"]


def test_an_object_restored_from_an_inventory_is_the_object_the_report_names(stack: Stack, emulator) -> None:
    key = "dir/plus+and space é.bin"
    stack.put_archived(key)
    manifest_key = write_inventory_report(DATA_BUCKET, MANIFEST_BUCKET, "names")
    job_id = stack.create_job(MANIFEST_BUCKET, manifest_key, manifest_format="s3-inventory")["BulkJobId"]
    stack.settle()
    ledger = JobLedger.read(stack, job_id)
    (record,) = ledger.objects
    assert (record["bucket"], record["key"], record["state"]) == (DATA_BUCKET, key, "RESTORED")
    assert ledger.state_of(ObjectId(DATA_BUCKET, key)) == "RESTORED"


def test_a_parquet_inventory_is_read_by_ranged_gets_and_restores_the_same_objects(stack: Stack, emulator) -> None:
    expected = fill(stack)
    manifest_key = write_inventory_report(DATA_BUCKET, MANIFEST_BUCKET, "parquet", file_format="Parquet", rows_per_file=40)
    job_id = stack.create_job(MANIFEST_BUCKET, manifest_key, manifest_format="s3-inventory")["BulkJobId"]
    stack.settle()
    ledger = JobLedger.read(stack, job_id)
    assert ledger.status == "Complete"
    states = {record["key"]: record["state"] for record in ledger.objects}
    assert sorted(k for k, s in states.items() if s == "RESTORED") == sorted(expected["restore"])
    assert sorted(k for k, s in states.items() if s == "SKIPPED") == sorted(expected["skip"])
    assert_counters_match(ledger)
