"""Vault jobs: a Glacier vault's archives into S3, on the stack's moto with the Glacier emulation.

The emulation (local/glacier.py) keeps real tree hashes, ranged output with Glacier's header on
tree-hash-aligned ranges, notices to SNS, and hooks to corrupt or expire an output. Parts are
8 MiB here (VAULT_PART_MIB=8, the least S3 and the tree hash allow), so a 17 MiB archive crosses three parts.
"""

from __future__ import annotations

import io
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.utils import calculate_tree_hash

from bulk_restore.adapters.dynamodb import DynamoJobStore, ObjectRecord, _to_ddb, object_key
from bulk_restore.domain.model import ObjectState, archive_ref
from support.api import call_api
from support.ledger import JobLedger, assert_counters_match, assert_one_terminal_event
from support.stack import Stack
from support.vault import MIB, TARGET, VAULT, VAULT_SETTINGS, Vault, body_of, vault_on


@pytest.fixture
def stack_settings() -> dict[str, object]:
    return dict(VAULT_SETTINGS)


@pytest.fixture
def vault(stack: Stack) -> Iterator[Vault]:
    with vault_on(stack) as running:
        yield running


def test_a_vault_job_moves_each_archive_into_s3_whole_and_verified(vault: Vault) -> None:
    bodies = {"big": body_of(17 * MIB + 5, 1), "two": body_of(2 * MIB, 2), "one": b"x"}
    ids = {name: vault.upload(body, f"{name}.bin") for name, body in bodies.items()}
    created = vault.create(list(ids.values()))
    job_id = created["BulkJobId"]
    vault.settle()

    status, doc = call_api("GET", f"/jobs/{job_id}")
    assert status == 200 and doc["Status"] == "Complete", doc
    assert doc["Counts"]["Restored"] == 3, [o.get("reason") for o in JobLedger.read(vault.stack, job_id).objects]
    assert doc["BytesMoved"] == sum(len(b) for b in bodies.values())
    assert doc["Vault"]["Name"] == VAULT and doc["Target"]["Bucket"] == TARGET
    for name, archive_id in ids.items():
        data, metadata = vault.object(f"from-vault/{archive_id}")
        assert data == bodies[name]
        assert metadata["glacier-archive-id"] == archive_id
        assert metadata["glacier-sha256-tree-hash"] == calculate_tree_hash(io.BytesIO(bodies[name]))
        assert metadata["glacier-size"] == str(len(bodies[name]))
    # The 17 MiB archive went in three parts, each with its SHA-256 checked by S3
    head = vault.stack.s3.head_object(Bucket=TARGET, Key=f"from-vault/{ids['big']}", ChecksumMode="ENABLED")
    assert head["ETag"].strip('"').endswith("-3")  # a multipart object's ETag ends with its part count
    ledger = JobLedger.read(vault.stack, job_id)
    assert_counters_match(ledger)
    events = vault.stack.events_of(job_id)
    assert_one_terminal_event(events, job_id)
    final = next(e for e in events if e.is_terminal).message
    assert final["BytesMoved"] == sum(len(b) for b in bodies.values()) and final["BytesPerSecond"] >= 0


def test_a_range_that_keeps_failing_its_tree_hash_fails_the_archive_and_stores_nothing(vault: Vault) -> None:
    good, bad = vault.upload(body_of(MIB, 3)), vault.upload(body_of(24 * MIB, 4))
    job_id = vault.create([good, bad])["BulkJobId"]

    def corrupt() -> None:
        jobs = vault.client.list_jobs(vaultName=VAULT, completed="true")["JobList"]
        for job in jobs:
            if job.get("ArchiveId") == bad and not corrupt.done:
                vault.glacier.corrupt_output(job["JobId"], 8 * MIB + 10, 8 * MIB + 20)  # inside part 2
                corrupt.done = True

    corrupt.done = False
    vault.settle(before_transfer=corrupt)
    objects = {r["archive"]["id"]: r for r in JobLedger.read(vault.stack, job_id).objects}
    assert objects[good]["state"] == "RESTORED"
    assert objects[bad]["state"] == "FAILED"
    assert "part 2" in objects[bad]["reason"] and "tree hash" in objects[bad]["reason"]
    keys = [o["Key"] for o in vault.stack.s3.list_objects_v2(Bucket=TARGET).get("Contents", [])]
    assert keys == [f"from-vault/{good}"]
    assert not vault.stack.s3.list_multipart_uploads(Bucket=TARGET).get("Uploads")  # aborted
    _status, doc = call_api("GET", f"/jobs/{job_id}")
    assert doc["Status"] == "Complete" and doc["Counts"]["Failed"] == 1 and doc["BytesMoved"] == MIB


def test_an_expired_output_is_retrieved_again_and_the_transfer_resumes(vault: Vault) -> None:
    body = body_of(24 * MIB, 5)
    archive_id = vault.upload(body)
    job_id = vault.create([archive_id])["BulkJobId"]
    expired: list[dict[str, Any]] = []

    def expire_after_two_parts() -> None:
        (record,) = JobLedger.read(vault.stack, job_id).objects
        if expired or not record["archive"].get("upload"):
            return
        # Two parts move, then the output expires before the others
        assert vault.transfer.poll_once(vault.stack.sqs) == 1 and vault.transfer.poll_once(vault.stack.sqs) == 1
        (record,) = JobLedger.read(vault.stack, job_id).objects
        expired.append(record["archive"] | {"stored": vault.parts(job_id, archive_id)})
        vault.glacier.expire_output(record["archive"]["glacier_job"])

    vault.settle(before_transfer=expire_after_two_parts)
    (record,) = JobLedger.read(vault.stack, job_id).objects
    assert record["state"] == "RESTORED"
    assert record["archive"]["reinitiated"] == 1 and record["archive"]["glacier_job"] != expired[0]["glacier_job"]
    # the two parts stored before the output expired were kept, not moved again
    stored_before, stored = expired[0]["stored"], vault.parts(job_id, archive_id)
    assert len(stored_before) == 2 and expired[0]["parts_done"] == 2
    assert {n: stored[n] for n in stored_before} == stored_before and len(stored) == 3 and record["archive"]["parts_done"] == 3
    assert vault.object(f"from-vault/{archive_id}")[0] == body


def test_an_archive_the_vault_does_not_have_fails_with_the_reason(vault: Vault) -> None:
    real = vault.upload(b"abc")
    job_id = vault.create([real, "NoSuchArchive0123456789"])["BulkJobId"]
    vault.settle()
    states = {r["archive"]["id"]: (r["state"], r.get("reason")) for r in JobLedger.read(vault.stack, job_id).objects}
    assert states[real] == ("RESTORED", None)
    assert states["NoSuchArchive0123456789"][0] == "FAILED" and "not in the vault" in states["NoSuchArchive0123456789"][1]


@pytest.mark.parametrize("stack_settings", [{**VAULT_SETTINGS, "TIME_SCALE": 0.001}])  # Expedited: a window of 0.3 s, a deadline of 4.2 s
def test_a_lost_notice_is_made_up_by_the_sweeper_s_describe_job(vault: Vault) -> None:
    body = body_of(9 * MIB + 1, 6)
    archive_id = vault.upload(body)
    job_id = vault.create([archive_id], tier="EXPEDITED")["BulkJobId"]
    vault.stack.drain()
    assert vault.glacier.complete_all() == 1
    vault.stack.sqs.purge_queue(QueueUrl=vault.stack.completion_queue_url)  # the notice is lost
    vault.stack.drain()
    (record,) = JobLedger.read(vault.stack, job_id).objects
    assert record["state"] == "RESTORING" and "upload" not in record["archive"]
    time.sleep(0.5)  # past the tier's window: the sweeper looks at what is still restoring
    assert vault.stack.sweep()
    vault.settle()
    assert vault.object(f"from-vault/{archive_id}")[0] == body
    _status, doc = call_api("GET", f"/jobs/{job_id}")
    assert doc["Status"] == "Complete"


def test_notices_and_parts_delivered_twice_count_each_archive_once(vault: Vault) -> None:
    bodies = [body_of(MIB * 9 + n, 10 + n) for n in range(3)]
    ids = [vault.upload(b) for b in bodies]
    job_id = vault.create(ids)["BulkJobId"]
    vault.stack.drain()
    vault.glacier.complete_all()
    # every notice twice
    messages = vault.stack.sqs.receive_message(QueueUrl=vault.stack.completion_queue_url, MaxNumberOfMessages=10)["Messages"]
    for message in messages:
        vault.stack.sqs.send_message(QueueUrl=vault.stack.completion_queue_url, MessageBody=message["Body"])
        vault.stack.sqs.change_message_visibility(
            QueueUrl=vault.stack.completion_queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
        )
    vault.stack.drain()
    # every part twice
    parts = []
    while batch := vault.stack.sqs.receive_message(QueueUrl=vault.transfer.queue_url, MaxNumberOfMessages=10).get("Messages"):
        parts.extend(batch)
    for message in parts:
        for _ in range(2):
            vault.stack.sqs.send_message(QueueUrl=vault.transfer.queue_url, MessageBody=message["Body"])
        vault.stack.sqs.delete_message(QueueUrl=vault.transfer.queue_url, ReceiptHandle=message["ReceiptHandle"])
    vault.settle()
    ledger = JobLedger.read(vault.stack, job_id)
    assert Counter(r["state"] for r in ledger.objects) == Counter({"RESTORED": 3})
    assert_counters_match(ledger)
    assert_one_terminal_event(vault.stack.events_of(job_id), job_id)
    _status, doc = call_api("GET", f"/jobs/{job_id}")
    assert doc["BytesMoved"] == sum(len(b) for b in bodies)
    assert len(vault.stack.s3.list_objects_v2(Bucket=TARGET)["Contents"]) == 3


@pytest.mark.parametrize(
    "fields, status, says",
    [
        ({"vault": {"name": "no-such-vault"}}, 400, "ListVaults"),
        ({"archives": ["bad id!"]}, 400, "archives"),
        ({"target": None}, 400, "target"),
        ({"key_from": "description"}, 400, "inventory"),
        ({"inventory": True}, 400, "archives and inventory given"),
        ({"archives": None}, 400, "none given"),
        ({"bucket": "x-bucket", "key": "m.csv"}, 400, "not both"),
        ({"target": {"bucket": TARGET, "storage_class": "SHELF"}}, 400, "storage_class"),
        ({"split_large_archives": "yes"}, 400, "split_large_archives"),
    ],
)
def test_a_bad_vault_job_is_refused_saying_what_to_fix(vault: Vault, fields: dict, status: int, says: str) -> None:
    body = {"vault": {"name": VAULT}, "archives": ["A" * 20], "target": {"bucket": TARGET}} | fields
    body = {k: v for k, v in body.items() if v is not None}
    answer, error = call_api("POST", "/create-job", body)
    assert answer == status, error
    assert says in error["error"]["message"], error


@pytest.mark.parametrize("stack_settings", [{"ALLOWED_BUCKETS": "some-other-bucket", "VAULT_PART_MIB": 8}])
def test_a_target_outside_the_allow_list_is_refused(vault: Vault) -> None:
    answer, error = call_api("POST", "/create-job", {"vault": {"name": VAULT}, "archives": ["A" * 20], "target": {"bucket": TARGET}})
    assert answer == 403 and error["error"]["code"] == "BucketNotAllowed"


def test_a_manifest_of_archive_ids_is_read_line_by_line(vault: Vault) -> None:
    ids = [vault.upload(body_of(100 + n, n)) for n in range(5)]
    bucket, key = vault.stack.put_manifest_bytes(
        ("ArchiveId,Size\n" + "".join(f"{i},1\n" for i in ids) + "not an id\n").encode(), "ids.csv"
    )
    status, answer = call_api("POST", "/create-job", {"vault": {"name": VAULT}, "bucket": bucket, "key": key, "target": {"bucket": TARGET}})
    assert status == 200, answer
    vault.stack.job_ids.append(answer["BulkJobId"])
    vault.settle()
    ledger = JobLedger.read(vault.stack, answer["BulkJobId"])
    assert Counter(r["state"] for r in ledger.objects) == Counter({"RESTORED": 5, "FAILED": 1})
    assert sorted(o["Key"] for o in vault.stack.s3.list_objects_v2(Bucket=TARGET)["Contents"]) == sorted(ids)


def test_a_vault_job_from_its_inventory_names_archives_from_their_descriptions_and_never_overwrites_one(vault: Vault) -> None:
    # Given a vault whose archives were written by backup tools: two with one name, one FastGlacier-encoded,
    # one with a Windows path in JSON, one without a description
    uploads = {
        "first": (body_of(9 * MIB, 20), "photos/beach.jpg"),
        "second": (body_of(100, 21), "photos/beach.jpg"),
        "fastglacier": (body_of(200, 22), "<m><v>4</v><p>ZG9jcy/Qv9C40YHRjNC80L4udHh0</p><lm>20190101T000000Z</lm></m>"),
        "windows": (body_of(300, 23), '{"Path": "C:\\\\Users\\\\ana\\\\tax 2018.pdf"}'),
        "nameless": (body_of(400, 24), ""),
    }
    ids = {name: vault.upload(body, description) for name, (body, description) in uploads.items()}
    vault.glacier.take_inventory(VAULT)
    status, created = call_api(
        "POST",
        "/create-job",
        {"vault": {"name": VAULT}, "inventory": True, "tier": "STANDARD", "target": {"bucket": TARGET, "prefix": "from-vault/"}},
    )
    assert status == 200, created
    job_id = created["BulkJobId"]
    vault.stack.job_ids.append(job_id)
    # When the stack runs: the inventory is retrieved, read and named, then every archive moved
    vault.settle()
    status, doc = call_api("GET", f"/jobs/{job_id}")
    assert doc["Status"] == "Complete" and doc["Counts"]["Restored"] == 5, doc
    keys = {o["Key"] for o in vault.stack.s3.list_objects_v2(Bucket=TARGET)["Contents"]}
    beach = sorted(k for k in keys if k.startswith("from-vault/photos/beach.jpg"))
    # Then the two archives named alike are both there: one keeps the name, the other gets its creation date
    assert len(beach) == 2 and beach[0] == "from-vault/photos/beach.jpg" and beach[1].startswith("from-vault/photos/beach.jpg.")
    bodies = {vault.object(k)[0] for k in beach}
    assert bodies == {uploads["first"][0], uploads["second"][0]}
    assert vault.object("from-vault/docs/письмо.txt")[0] == uploads["fastglacier"][0]
    assert vault.object("from-vault/C:/Users/ana/tax 2018.pdf")[0] == uploads["windows"][0]
    nameless, metadata = vault.object(f"from-vault/00undefined/{ids['nameless']}")
    assert nameless == uploads["nameless"][0] and metadata["glacier-archive-id"] == ids["nameless"]
    # and each object keeps its description and creation date from the inventory
    _, metadata = vault.object("from-vault/C:/Users/ana/tax 2018.pdf")
    assert metadata["glacier-description"] == uploads["windows"][1] and metadata["glacier-creation-date"]
    assert_one_terminal_event(vault.stack.events_of(job_id), job_id)


def test_a_failed_inventory_retrieval_fails_the_job_saying_so(vault: Vault) -> None:
    vault.upload(b"x")
    vault.glacier.take_inventory(VAULT)
    _status, created = call_api("POST", "/create-job", {"vault": {"name": VAULT}, "inventory": True, "target": {"bucket": TARGET}})
    job_id = created["BulkJobId"]
    vault.stack.job_ids.append(job_id)
    vault.stack.drain()
    (job,) = vault.client.list_jobs(vaultName=VAULT)["JobList"]
    from bulk_restore.domain.events import VaultJobNotice

    # Glacier's notice says the inventory job failed
    vault.stack.services().vault.on_notices([VaultJobNotice(job["JobId"], "InventoryRetrieval", VAULT, "", False, "Internal failure")])
    vault.stack.drain()
    _status, doc = call_api("GET", f"/jobs/{job_id}")
    assert doc["Status"] == "Failed" and "inventory retrieval" in doc["FailureReason"] and "Internal failure" in doc["FailureReason"]
    assert_one_terminal_event(vault.stack.events_of(job_id), job_id)


def test_a_vault_without_an_inventory_yet_fails_the_job_saying_when_to_come_back(vault: Vault) -> None:
    vault.upload(b"x")  # no inventory taken yet: Glacier takes one about a day later
    status, created = call_api("POST", "/create-job", {"vault": {"name": VAULT}, "inventory": True, "target": {"bucket": TARGET}})
    assert status == 200, created
    vault.stack.job_ids.append(created["BulkJobId"])
    vault.stack.drain()
    status, doc = call_api("GET", f"/jobs/{created['BulkJobId']}")
    assert doc["Status"] == "Failed" and "no inventory yet" in doc["FailureReason"] and "archives" in doc["FailureReason"]


def test_an_output_nearing_its_24_hours_is_retrieved_again_before_it_expires_and_the_parts_go_on(vault: Vault) -> None:
    body = body_of(24 * MIB, 30)
    archive_id = vault.upload(body)
    job_id = vault.create([archive_id])["BulkJobId"]
    mover = vault.stack.services().vault
    ref = archive_ref(VAULT, archive_id)
    renewed: list[dict[str, Any]] = []

    def nineteen_hours_later() -> None:
        record = mover.store.get_object(job_id, ref)
        if renewed or record is None or not record.archive.get("upload"):
            return
        assert vault.transfer.poll_once(vault.stack.sqs) == 1  # one part moved from the first output
        record = mover.store.get_object(job_id, ref)
        ready_at = float(record.archive["ready_at"])
        mover.clock = lambda: ready_at + 19 * 3600 - 1
        mover.check(job_id, [record])  # the sweeper before the 19th hour: nothing new
        assert "spare_job" not in mover.store.get_object(job_id, ref).archive
        mover.clock = lambda: ready_at + 19 * 3600
        mover.check(job_id, [mover.store.get_object(job_id, ref)])  # at the 19th hour: a spare retrieval
        record = mover.store.get_object(job_id, ref)
        renewed.append(record.archive)
        assert record.archive["spare_job"] != record.archive["glacier_job"]
        assert vault.transfer.poll_once(vault.stack.sqs) == 1  # the parts go on from the current output meanwhile
        vault.glacier.expire_output(record.archive["glacier_job"])  # then the first output ends

    vault.settle(before_transfer=nineteen_hours_later)
    record = mover.store.get_object(job_id, ref)
    assert record.state.value == "RESTORED"
    assert record.archive["glacier_job"] == renewed[0]["spare_job"] and "spare_job" not in record.archive
    assert record.archive["reinitiated"] == 1
    jobs = [j for j in vault.client.list_jobs(vaultName=VAULT)["JobList"] if j.get("ArchiveId") == archive_id]
    assert len(jobs) <= 2  # the first retrieval's (gone once expired) and the spare: no third one
    assert vault.object(f"from-vault/{archive_id}")[0] == body


def test_a_filter_leaves_archives_in_the_vault_as_skipped_with_the_reason(vault: Vault) -> None:
    small, large = vault.upload(body_of(100, 40), "small.txt"), vault.upload(body_of(5000, 41), "large.txt")
    vault.glacier.take_inventory(VAULT)
    status, created = call_api(
        "POST",
        "/create-job",
        {
            "vault": {"name": VAULT},
            "inventory": True,
            "target": {"bucket": TARGET},
            "filter": {"min_size": 1000, "created_before": "2100-01-01T00:00:00Z"},
        },
    )
    assert status == 200, created
    job_id = created["BulkJobId"]
    vault.stack.job_ids.append(job_id)
    vault.settle()
    status, doc = call_api("GET", f"/jobs/{job_id}")
    assert doc["Status"] == "Complete" and doc["Counts"]["Restored"] == 1 and doc["Counts"]["Skipped"] == 1, doc
    assert doc["BytesMoved"] == 5000
    records = {r["archive"]["id"]: r for r in JobLedger.read(vault.stack, job_id).objects}
    assert records[small]["state"] == "SKIPPED" and "fewer than the minimum of 1,000" in records[small]["reason"]
    assert records[large]["state"] == "RESTORED"
    assert [o["Key"] for o in vault.stack.s3.list_objects_v2(Bucket=TARGET)["Contents"]] == ["large.txt"]


@pytest.mark.parametrize(
    "fields, says",
    [
        ({"archives": ["A" * 20], "filter": {"min_size": 1}}, "inventory: true"),
        ({"inventory": True, "filter": {"created_from": "2020-01-01T00:00:00"}}, "timezone"),
        ({"inventory": True, "filter": {"min_size": 10, "max_size": 5}}, "max_size must be at least min_size"),
    ],
)
def test_a_bad_filter_is_refused_saying_what_to_fix(vault: Vault, fields: dict, says: str) -> None:
    answer, error = call_api("POST", "/create-job", {"vault": {"name": VAULT}, "target": {"bucket": TARGET}} | fields)
    assert answer == 400, error
    assert says in error["error"]["message"], error


def test_a_daily_byte_quota_paces_retrievals_and_the_next_day_goes_on(vault: Vault) -> None:
    from datetime import UTC, datetime, timedelta

    ids = [vault.upload(body_of(100, 100 + n), f"small/{n:03d}.bin") for n in range(200)]  # three chunks of up to 98
    vault.glacier.take_inventory(VAULT)
    status, created = call_api(
        "POST", "/create-job", {"vault": {"name": VAULT}, "inventory": True, "target": {"bucket": TARGET}, "max_bytes_per_day": 10_000}
    )
    assert status == 200, created
    job_id = created["BulkJobId"]
    vault.stack.job_ids.append(job_id)
    planner = vault.stack.services().planner
    today = datetime.now(UTC)
    planner.now = lambda: today
    vault.settle()
    # Day one: chunks went out while under 10,000 bytes (98 archives of 100 bytes, then 98 more), then planning paused
    status, doc = call_api("GET", f"/jobs/{job_id}")
    assert doc["Status"] == "Restoring" and doc["Counts"]["Restored"] == 196 and doc["BytesMoved"] == 19_600, doc
    job = vault.stack.services().store.get_job(job_id)
    assert job.planning.cursor["paused_until"] == (datetime.combine(today.date() + timedelta(days=1), datetime.min.time(), UTC)).isoformat()
    # A step asked again the same day (the sweeper re-asks stalled planning) does nothing
    vault.stack.services().queues.send_plan_step(job_id, job.planning.step)
    vault.settle()
    assert call_api("GET", f"/jobs/{job_id}")[1]["Counts"]["Restored"] == 196
    # The next UTC day, the next ask goes on
    planner.now = lambda: today + timedelta(days=1)
    vault.stack.services().queues.send_plan_step(job_id, job.planning.step)
    vault.settle()
    status, doc = call_api("GET", f"/jobs/{job_id}")
    assert doc["Status"] == "Complete" and doc["Counts"]["Restored"] == 200 and doc["BytesMoved"] == 20_000, doc
    assert len(vault.stack.s3.list_objects_v2(Bucket=TARGET)["Contents"]) == len(ids)


def test_a_names_csv_names_the_archives_it_lists_and_a_bad_one_is_refused_naming_its_line(vault: Vault) -> None:
    renamed, kept = vault.upload(body_of(300, 50), "scan-0001.tif"), vault.upload(body_of(400, 51), "scan-0002.tif")
    vault.glacier.take_inventory(VAULT)
    bucket, key = vault.stack.put_manifest_bytes(f"archive_id,key\n{renamed},Family/Grandma 1962.tif\n".encode(), "names.csv")
    status, created = call_api(
        "POST",
        "/create-job",
        {"vault": {"name": VAULT}, "inventory": True, "target": {"bucket": TARGET}, "overrides": {"bucket": bucket, "key": key}},
    )
    assert status == 200, created
    vault.stack.job_ids.append(created["BulkJobId"])
    vault.settle()
    assert vault.object("Family/Grandma 1962.tif")[0] == body_of(300, 50)
    assert vault.object("scan-0002.tif")[0] == body_of(400, 51)  # not listed: named from its description
    assert kept
    bad_bucket, bad_key = vault.stack.put_manifest_bytes(b"archive_id,key\nnot an id!,x.tif\n", "bad-names.csv")
    status, error = call_api(
        "POST",
        "/create-job",
        {"vault": {"name": VAULT}, "inventory": True, "target": {"bucket": TARGET}, "overrides": {"bucket": bad_bucket, "key": bad_key}},
    )
    assert status == 422 and "line 2" in error["error"]["message"] and "archive id" in error["error"]["message"], error


def test_each_object_names_the_vault_it_came_from(vault: Vault) -> None:
    archive_id = vault.upload(b"from the old vault")
    vault.create([archive_id])
    vault.settle()
    arn = vault.client.describe_vault(vaultName=VAULT)["VaultARN"]
    assert vault.object(f"from-vault/{archive_id}")[1]["glacier-vault-arn"] == arn


def test_split_large_archives_applies_to_vault_jobs_only(vault: Vault) -> None:
    answer, error = call_api("POST", "/create-job", {"bucket": TARGET, "key": "m.csv", "split_large_archives": True})
    assert answer == 400 and "split_large_archives applies to a vault job" in error["error"]["message"], error


# An archive over S3's object limit, made small: the limit at 32 MiB and split objects of 16 MiB
# (parts of 8 MiB), so a 40 MiB archive becomes three objects of two parts each.
SPLIT_SIZE = 40 * MIB + 5


@pytest.fixture
def small_object_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    from bulk_restore.domain import vault as rules

    monkeypatch.setattr(rules, "S3_MAX_OBJECT_BYTES", 32 * MIB)
    monkeypatch.setattr(rules, "SPLIT_OBJECT_BYTES", 16 * MIB)


def test_an_archive_over_the_object_limit_fails_saying_how_to_ask_for_a_split(vault: Vault, small_object_limit: None) -> None:
    archive_id = vault.upload(body_of(SPLIT_SIZE, 21))
    job_id = vault.create([archive_id])["BulkJobId"]
    vault.settle()
    (record,) = JobLedger.read(vault.stack, job_id).objects
    assert record["state"] == "FAILED" and "over S3's object limit" in record["reason"] and "split_large_archives" in record["reason"]
    assert not vault.stack.s3.list_objects_v2(Bucket=TARGET).get("Contents")
    assert not vault.stack.s3.list_multipart_uploads(Bucket=TARGET).get("Uploads")


def test_a_split_archive_becomes_objects_that_concatenate_to_it_each_verified(vault: Vault, small_object_limit: None) -> None:
    body = body_of(SPLIT_SIZE, 22)
    small = body_of(3 * MIB, 23)
    big_id, small_id = vault.upload(body, "disk.img"), vault.upload(small)
    job_id = vault.create([big_id, small_id], split_large_archives=True)["BulkJobId"]
    vault.settle()

    _status, doc = call_api("GET", f"/jobs/{job_id}")
    assert doc["Status"] == "Complete" and doc["Counts"]["Restored"] == 2, doc
    assert doc["BytesMoved"] == len(body) + len(small)
    keys = sorted(o["Key"] for o in vault.stack.s3.list_objects_v2(Bucket=TARGET)["Contents"])
    pieces = [f"from-vault/{big_id}.part-{i:03d}-of-003" for i in (1, 2, 3)]
    assert keys == sorted([*pieces, f"from-vault/{small_id}"])  # the archive under its limit stays whole
    joined = b""
    for index, key in enumerate(pieces):
        data, metadata = vault.object(key)
        start = index * 16 * MIB
        assert data == body[start : start + 16 * MIB]
        assert metadata["glacier-split"] == f"{index + 1}/3"
        assert metadata["glacier-split-range"] == f"{start}-{start + len(data) - 1}"
        assert metadata["glacier-archive-id"] == big_id and metadata["glacier-size"] == str(len(body))
        assert metadata["glacier-sha256-tree-hash"] == calculate_tree_hash(io.BytesIO(body))
        head = vault.stack.s3.head_object(Bucket=TARGET, Key=key)
        assert head["ETag"].strip('"').endswith("-2")  # two parts of 8 MiB each
        joined += data
    assert joined == body
    assert vault.object(f"from-vault/{small_id}")[0] == small
    assert len(vault.parts(job_id, big_id)) == 6
    ledger = JobLedger.read(vault.stack, job_id)
    assert_counters_match(ledger)
    assert_one_terminal_event(vault.stack.events_of(job_id), job_id)


def test_a_split_archive_with_a_range_that_keeps_failing_stores_none_of_its_objects(vault: Vault, small_object_limit: None) -> None:
    body = body_of(SPLIT_SIZE, 24)
    archive_id = vault.upload(body)
    job_id = vault.create([archive_id], split_large_archives=True)["BulkJobId"]

    def corrupt() -> None:
        for job in vault.client.list_jobs(vaultName=VAULT, completed="true")["JobList"]:
            if not corrupt.done:
                vault.glacier.corrupt_output(job["JobId"], 24 * MIB + 10, 24 * MIB + 20)  # object 2, part 2
                corrupt.done = True

    corrupt.done = False
    vault.settle(before_transfer=corrupt)
    (record,) = JobLedger.read(vault.stack, job_id).objects
    assert record["state"] == "FAILED" and "part 2 of object 2 of 3" in record["reason"] and "tree hash" in record["reason"]
    assert not vault.stack.s3.list_objects_v2(Bucket=TARGET).get("Contents")
    assert not vault.stack.s3.list_multipart_uploads(Bucket=TARGET).get("Uploads")  # all three aborted


def test_an_archive_of_thousands_of_parts_records_each_on_an_item_of_its_own_once(vault: Vault) -> None:
    # 2,500 parts of 1 GiB (a 2.5 TiB archive): their ETags, checksums and tree hashes are some
    # 425 KB, more than DynamoDB's 400 KB item limit, so none of them is kept on the archive's item.
    store = DynamoJobStore(vault.stack.table_name, client=vault.stack.ddb)
    ref = archive_ref(VAULT, "A" * 40)
    record = ObjectRecord("job-1", ref, TARGET, "big.img", None, ObjectState.RESTORING, archive={"id": "A" * 40, "vault": VAULT})
    vault.stack.ddb.put_item(TableName=vault.stack.table_name, Item=_to_ddb(record.as_item(0)))
    assert store.start_transfer(
        "job-1", ref, {"upload": "upload-1", "size": 2500 << 30, "part_size": 1 << 30, "parts_total": 2500, "parts_done": 0}
    )
    for number in range(1, 2501):
        info = {"etag": f'"{number:032x}"', "sha256": f"{number:043d}=", "tree_hash": f"{number:064x}"}
        assert store.record_part("job-1", ref, 0, number, info) is True
    assert store.record_part("job-1", ref, 0, 7, {"etag": "again", "sha256": "", "tree_hash": ""}) is False  # counted once
    archive = store.get_object("job-1", ref).archive
    assert archive["parts_done"] == 2500 and "parts" not in archive
    parts = list(store.archive_parts("job-1", ref))
    assert [n for _, n, _ in parts] == list(range(1, 2501)) and parts[6][2]["etag"] == f'"{7:032x}"'
    vault.stack.ddb.update_item(
        TableName=vault.stack.table_name,
        Key=_to_ddb(object_key("job-1", ref)),
        UpdateExpression="SET #s = :f",
        ExpressionAttributeNames={"#s": "state"},
        ExpressionAttributeValues={":f": {"S": "FAILED"}},
    )
    assert store.record_part("job-1", ref, 1, 1, {"etag": "x", "sha256": "", "tree_hash": ""}) is None  # no longer moving
