"""The local Glacier vault emulation (local/glacier.py) answers the ``glacier`` API as AWS documents it.

Most tests run twice: through the local AWS endpoint (moto's server behind the local stack's gate,
reached over HTTP by a plain boto3 client) and inside ``moto.mock_aws()`` (the in-process stubber).
The clock is the test's: jobs complete on ``tick()`` / ``complete_all()``, never by sleeping.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import re
import threading
import tracemalloc
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from botocore.exceptions import ClientError
from botocore.utils import calculate_tree_hash

from bulk_restore_cli.local import glacier as glacier_module
from bulk_restore_cli.local.endpoint import AwsEndpoint
from bulk_restore_cli.local.glacier import (
    GeneratedReader,
    GlacierEmulator,
    MiB,
    is_megabyte_aligned,
    is_tree_hash_aligned,
    tree_hash,
    tree_hash_of_hashes,
)
from support.endpoint import endpoint_client
from support.glacier_data import FakeClock, data_of

ACCOUNT = "123456789012"
REGION = "us-east-1"
T0 = dt.datetime(2026, 1, 5, 12, 0, 0, tzinfo=dt.UTC)
DURATIONS = {"Expedited": 60.0, "Standard": 3600.0, "Bulk": 7200.0, "inventory": 1800.0}


def error_of(call: Callable[[], Any]) -> tuple[int, str, str]:
    with pytest.raises(ClientError) as caught:
        call()
    response = caught.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"], response["Error"]["Message"]


@dataclass
class Env:
    """One emulator, its clock, and plain boto3 clients (over HTTP or in mock_aws)."""

    emulator: GlacierEmulator
    clock: FakeClock
    make_client: Callable[[str], Any]
    clients: dict[str, Any] = field(default_factory=dict)

    def client(self, service: str) -> Any:
        if service not in self.clients:
            self.clients[service] = self.make_client(service)
        return self.clients[service]

    @property
    def glacier(self) -> Any:
        return self.client("glacier")

    def vault(self, prefix: str = "vault") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:10]}"
        self.glacier.create_vault(vaultName=name)
        return name

    def topic_and_queue(self, raw: bool = True) -> tuple[str, str]:
        sns, sqs = self.client("sns"), self.client("sqs")
        topic = sns.create_topic(Name=f"t-{uuid.uuid4().hex[:10]}")["TopicArn"]
        queue = sqs.create_queue(QueueName=f"q-{uuid.uuid4().hex[:10]}")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true" if raw else "false"})
        return topic, queue

    def notices(self, queue: str) -> list[dict[str, Any]]:
        bodies = []
        while True:
            messages = self.client("sqs").receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
            if not messages:
                return bodies
            bodies += [json.loads(message["Body"]) for message in messages]
            for message in messages:
                self.client("sqs").delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])

    def advance(self, seconds: float) -> int:
        self.clock.now += seconds
        return self.emulator.tick()

    def upload(self, vault: str, body: bytes, description: str | None = None) -> str:
        extra = {"archiveDescription": description} if description is not None else {}
        return self.glacier.upload_archive(vaultName=vault, body=body, **extra)["archiveId"]

    def job(self, vault: str, **parameters: Any) -> str:
        return self.glacier.initiate_job(vaultName=vault, jobParameters=parameters)["jobId"]

    def describe(self, vault: str, job_id: str) -> dict[str, Any]:
        answer = self.glacier.describe_job(vaultName=vault, jobId=job_id)
        answer.pop("ResponseMetadata")
        return answer

    def output(self, vault: str, job_id: str, range: str | None = None) -> dict[str, Any]:
        answer = self.glacier.get_job_output(vaultName=vault, jobId=job_id, **({"range": range} if range else {}))
        answer["data"] = answer.pop("body").read()
        return answer


def _emulator(clock: FakeClock, **options: Any) -> GlacierEmulator:
    options.setdefault("durations", DURATIONS)
    return GlacierEmulator(clock=clock, start_time=T0, seed=7, **options)


@pytest.fixture(params=["endpoint", "in_process"])
def env(request: pytest.FixtureRequest, aws_env: None) -> Iterator[Env]:
    """The emulator reached over HTTP through the local endpoint, or in-process inside mock_aws."""
    clock = FakeClock()
    emulator = _emulator(clock).install()
    try:
        if request.param == "endpoint":
            endpoint = request.getfixturevalue("endpoint")
            yield Env(emulator, clock, lambda service: endpoint_client(service, endpoint))
        else:
            from moto import mock_aws

            with mock_aws():
                yield Env(emulator, clock, endpoint_client)
    finally:
        emulator.uninstall()


@pytest.fixture
def local(endpoint: AwsEndpoint, aws_env: None) -> Iterator[Env]:
    """Through the endpoint only (tests whose point is not the transport)."""
    clock = FakeClock()
    emulator = _emulator(clock).install()
    try:
        yield Env(emulator, clock, lambda service: endpoint_client(service, endpoint))
    finally:
        emulator.uninstall()


# ---- the tree hash --------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, MiB - 1, MiB, MiB + 1, 2 * MiB, 3 * MiB, 3 * MiB + 5, 5 * MiB - 1, 7 * MiB + 1])
def test_tree_hash_is_botocores_for_bytes_and_streams(size: int) -> None:
    data = data_of(size, seed=size)
    expected = calculate_tree_hash(io.BytesIO(data))
    assert tree_hash(data) == expected
    assert tree_hash(io.BytesIO(data)) == expected


@pytest.mark.parametrize("pattern", ["distinct", "repeated"])
@pytest.mark.parametrize("size", [0, 1, MiB - 1, MiB, MiB + 1, 3 * MiB, 5 * MiB + 7, 9 * MiB])
def test_a_generated_archives_tree_hash_is_botocores_over_the_same_bytes(pattern: str, size: int) -> None:
    emulator = GlacierEmulator(seed=1)
    emulator.create_vault("v")
    archive = emulator.put_archive("v", size=size, seed=11, pattern=pattern)
    data = GeneratedReader(11, size, pattern).read()
    assert len(data) == size
    assert emulator.archive_bytes("v", archive) == data
    run, _ = emulator._find_archive(emulator._vaults[(ACCOUNT, REGION)]["v"], archive)
    assert run.tree_hash == calculate_tree_hash(io.BytesIO(data))
    if pattern == "distinct" and size >= 2 * MiB:  # every MiB of a distinct archive differs
        assert data[:MiB] != data[MiB : 2 * MiB]


def test_the_tree_hash_of_a_few_hundred_MiB_generated_archive_is_computed_by_streaming() -> None:
    size = 300 * MiB + 12345
    emulator = GlacierEmulator(seed=2)
    emulator.create_vault("big")
    tracemalloc.start()
    try:
        archive = emulator.put_archive("big", size=size, seed=99)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * MiB  # the bytes were never held (a few MiB of chunks at a time)
    run, _ = emulator._find_archive(emulator._vaults[(ACCOUNT, REGION)]["big"], archive)
    assert run.tree_hash == calculate_tree_hash(GeneratedReader(99, size))
    # a range's tree hash comes from the stored leaf hashes, never a read
    assert run.content.tree_hash(64 * MiB, 128 * MiB) == tree_hash(emulator.archive_bytes("big", archive, 64 * MiB, 128 * MiB))


def test_a_multi_TiB_archive_costs_nothing_with_the_repeated_pattern() -> None:
    emulator = GlacierEmulator(seed=3)
    emulator.create_vault("huge")
    size = 5 * (1 << 40) + 3
    archive = emulator.put_archive("huge", size=size, seed=5, pattern="repeated")
    run, _ = emulator._find_archive(emulator._vaults[(ACCOUNT, REGION)]["huge"], archive)
    full = hashlib.sha256(GeneratedReader(5, MiB, "repeated").read()).digest()
    last = hashlib.sha256(GeneratedReader(5, 3, "repeated").read()).digest()
    n = 5 * (1 << 20)  # full MiB chunks, then one of 3 bytes
    assert run.tree_hash == glacier_module.tree_of_runs([(full, n), (last, 1)]).hex()
    # against the plain pairwise definition for a smaller count, odd chunk counts included
    for count in (1, 2, 3, 5, 6, 7, 13):
        leaves = [full] * count + [last]
        level = leaves
        while len(level) > 1:
            level = [hashlib.sha256(level[i] + level[i + 1]).digest() if i + 1 < len(level) else level[i] for i in range(0, len(level), 2)]
        assert glacier_module.tree_of_runs([(full, count), (last, 1)]) == level[0]


def test_tree_hash_alignment_follows_checksum_calculations_range() -> None:
    size = 6 * MiB + MiB // 2  # the guide's 6.5 MB archive: 7 leaves
    aligned = [(0, size), (0, MiB), (MiB, 2 * MiB), (2 * MiB, 4 * MiB), (4 * MiB, size), (0, 4 * MiB), (6 * MiB, size)]
    not_aligned = [(MiB, 3 * MiB), (0, 3 * MiB), (2 * MiB, 5 * MiB), (0, 100), (100, MiB), (4 * MiB, 6 * MiB + 10), (3 * MiB, 5 * MiB)]
    for start, stop in aligned:
        assert is_tree_hash_aligned(start, stop, size), (start, stop)
    for start, stop in not_aligned:
        assert not is_tree_hash_aligned(start, stop, size), (start, stop)
    assert is_megabyte_aligned(MiB, 3 * MiB, size) and not is_megabyte_aligned(0, 100, size)
    # an aligned range's root is a node of the archive's tree: its tree hash equals the subtree's
    data = data_of(size)
    assert tree_hash(data[4 * MiB :]) == tree_hash_of_hashes([tree_hash(data[4 * MiB : 6 * MiB]), tree_hash(data[6 * MiB :])])
    assert tree_hash(data) == tree_hash_of_hashes([tree_hash(data[: 4 * MiB]), tree_hash(data[4 * MiB :])])


# ---- vaults ---------------------------------------------------------------------------------


def test_vaults_are_created_described_listed_and_counted_as_of_the_last_inventory(env: Env) -> None:
    vault = env.vault()
    again = env.glacier.create_vault(vaultName=vault)  # idempotent
    assert again["location"] == f"/{ACCOUNT}/vaults/{vault}"
    described = env.glacier.describe_vault(vaultName=vault)
    assert described["VaultARN"] == f"arn:aws:glacier:{REGION}:{ACCOUNT}:vaults/{vault}"
    assert described["CreationDate"] == "2026-01-05T12:00:00.000Z"
    assert "NumberOfArchives" not in described and "LastInventoryDate" not in described  # null: no inventory yet

    env.upload(vault, b"a" * 10)
    env.upload(vault, b"b" * 20)
    assert "NumberOfArchives" not in env.glacier.describe_vault(vaultName=vault)  # not live
    env.clock.now += 3600
    env.emulator.take_inventory(vault)
    described = env.glacier.describe_vault(vaultName=vault)
    assert (described["NumberOfArchives"], described["SizeInBytes"]) == (2, 30)
    assert described["LastInventoryDate"] == "2026-01-05T13:00:00.000Z"
    env.upload(vault, b"c")
    assert env.glacier.describe_vault(vaultName=vault)["NumberOfArchives"] == 2  # until the next inventory


def test_the_inventory_is_taken_about_daily_after_a_change_and_not_without_one(local: Env) -> None:
    vault = local.vault()
    local.advance(2 * 86400)
    assert "LastInventoryDate" not in local.glacier.describe_vault(vaultName=vault)  # never written: no inventory
    local.upload(vault, b"x")
    local.advance(86400 - 1)
    assert "LastInventoryDate" not in local.glacier.describe_vault(vaultName=vault)
    local.advance(1)
    first = local.glacier.describe_vault(vaultName=vault)
    assert first["NumberOfArchives"] == 1
    local.advance(3 * 86400)  # nothing changed: the inventory date stays
    assert local.glacier.describe_vault(vaultName=vault)["LastInventoryDate"] == first["LastInventoryDate"]


def test_list_vaults_pages_by_name_with_the_documented_limit(local: Env) -> None:
    names = sorted(f"list-{i:02d}-{uuid.uuid4().hex[:6]}" for i in range(13))
    for name in names:
        local.glacier.create_vault(vaultName=name)
    seen, marker = [], None
    while True:
        page = local.glacier.list_vaults(**({"marker": marker} if marker else {}))
        seen += [vault["VaultName"] for vault in page["VaultList"]]
        marker = page.get("Marker")
        if not marker:
            break
    assert seen == sorted(seen) and set(names) <= set(seen)
    assert len(local.glacier.list_vaults(limit="3")["VaultList"]) == 3
    status, code, _ = error_of(lambda: local.glacier.list_vaults(limit="11"))
    assert (status, code) == (400, "InvalidParameterValueException")


def test_a_vault_is_deleted_only_when_empty_as_of_the_last_inventory_with_no_write_since(env: Env) -> None:
    empty = env.vault("empty")
    env.glacier.delete_vault(vaultName=empty)  # never written: deletable
    assert error_of(lambda: env.glacier.describe_vault(vaultName=empty))[:2] == (404, "ResourceNotFoundException")

    vault = env.vault()
    archive = env.upload(vault, b"data")
    arn = f"arn:aws:glacier:{REGION}:{ACCOUNT}:vaults/{vault}"
    assert error_of(lambda: env.glacier.delete_vault(vaultName=vault)) == (
        400,
        "InvalidParameterValueException",
        f"Vault not empty or recently written to: {arn}",
    )
    env.emulator.take_inventory(vault)
    env.glacier.delete_archive(vaultName=vault, archiveId=archive)
    env.glacier.delete_archive(vaultName=vault, archiveId=archive)  # idempotent
    assert error_of(lambda: env.glacier.delete_vault(vaultName=vault))[2].startswith("Vault not empty")  # written since
    env.emulator.take_inventory(vault)
    env.glacier.delete_vault(vaultName=vault)
    assert error_of(lambda: env.glacier.describe_vault(vaultName=vault)) == (
        404,
        "ResourceNotFoundException",
        f"Vault not found for ARN: {arn}",
    )


def test_vault_notifications_are_set_read_and_deleted(env: Env) -> None:
    vault = env.vault()
    status, code, _ = error_of(lambda: env.glacier.get_vault_notifications(vaultName=vault))
    assert (status, code) == (404, "ResourceNotFoundException")
    topic, _ = env.topic_and_queue()
    env.glacier.set_vault_notifications(
        vaultName=vault, vaultNotificationConfig={"SNSTopic": topic, "Events": ["ArchiveRetrievalCompleted"]}
    )
    assert env.glacier.get_vault_notifications(vaultName=vault)["vaultNotificationConfig"] == {
        "SNSTopic": topic,
        "Events": ["ArchiveRetrievalCompleted"],
    }
    status, code, _ = error_of(
        lambda: env.glacier.set_vault_notifications(
            vaultName=vault, vaultNotificationConfig={"SNSTopic": topic, "Events": ["ArchiveDeleted"]}
        )
    )
    assert (status, code) == (400, "InvalidParameterValueException")
    status, code, _ = error_of(
        lambda: env.glacier.set_vault_notifications(vaultName=vault, vaultNotificationConfig={"Events": ["ArchiveRetrievalCompleted"]})
    )
    assert (status, code) == (400, "MissingParameterValueException")
    env.glacier.delete_vault_notifications(vaultName=vault)
    assert error_of(lambda: env.glacier.get_vault_notifications(vaultName=vault))[0] == 404


def test_tags_access_policies_and_vault_locks_are_kept(local: Env) -> None:
    vault = local.vault()
    local.glacier.add_tags_to_vault(vaultName=vault, Tags={"team": "archive", "cost": "x"})
    local.glacier.remove_tags_from_vault(vaultName=vault, TagKeys=["cost"])
    assert local.glacier.list_tags_for_vault(vaultName=vault)["Tags"] == {"team": "archive"}
    status, code, _ = error_of(lambda: local.glacier.add_tags_to_vault(vaultName=vault, Tags={f"k{i}": "v" for i in range(50)}))
    assert (status, code) == (400, "LimitExceededException")
    local.glacier.set_vault_access_policy(vaultName=vault, policy={"Policy": '{"Version":"2012-10-17"}'})
    assert local.glacier.get_vault_access_policy(vaultName=vault)["policy"]["Policy"] == '{"Version":"2012-10-17"}'
    lock_id = local.glacier.initiate_vault_lock(vaultName=vault, policy={"Policy": "{}"})["lockId"]
    assert local.glacier.get_vault_lock(vaultName=vault)["State"] == "InProgress"
    local.glacier.complete_vault_lock(vaultName=vault, lockId=lock_id)
    assert local.glacier.get_vault_lock(vaultName=vault)["State"] == "Locked"
    assert error_of(lambda: local.glacier.abort_vault_lock(vaultName=vault))[1] == "InvalidParameterValueException"


# ---- archives -------------------------------------------------------------------------------


def test_an_upload_is_checked_against_its_tree_hash(env: Env) -> None:
    vault = env.vault()
    data = data_of(3 * MiB + 17)
    answer = env.glacier.upload_archive(vaultName=vault, body=data, archiveDescription="three MiB and a bit")
    assert answer["checksum"] == calculate_tree_hash(io.BytesIO(data)) != hashlib.sha256(data).hexdigest()
    assert re.fullmatch(r"[A-Za-z0-9_-]{138}", answer["archiveId"])
    assert answer["location"] == f"/{ACCOUNT}/vaults/{vault}/archives/{answer['archiveId']}"

    wrong = "0" * 64
    assert error_of(lambda: env.glacier.upload_archive(vaultName=vault, body=data, checksum=wrong)) == (
        400,
        "InvalidParameterValueException",
        f"Checksum mismatch: expected {wrong}, computed {answer['checksum']}",
    )
    assert error_of(lambda: env.glacier.upload_archive(vaultName=vault, body=data, checksum="000")) == (
        400,
        "InvalidParameterValueException",
        "Invalid x-amz-sha256-tree-hash: 000",
    )
    # a plain SHA-256 (what moto computes) is not the tree hash of a body over 1 MiB
    assert error_of(lambda: env.glacier.upload_archive(vaultName=vault, body=data, checksum=hashlib.sha256(data).hexdigest()))[0] == 400
    env.emulator.take_inventory(vault)
    assert env.glacier.describe_vault(vaultName=vault)["NumberOfArchives"] == 1  # the refused ones were not stored


def test_two_uploads_of_the_same_bytes_are_two_archives(env: Env) -> None:
    vault = env.vault()
    first = env.upload(vault, b"same bytes", "first")
    second = env.upload(vault, b"same bytes", "second")
    assert first != second
    env.emulator.take_inventory(vault)
    assert env.glacier.describe_vault(vaultName=vault)["NumberOfArchives"] == 2
    env.glacier.delete_archive(vaultName=vault, archiveId=first)
    job = env.job(vault, Type="archive-retrieval", ArchiveId=second)
    env.emulator.complete_all()
    assert env.output(vault, job)["data"] == b"same bytes"


def test_archive_descriptions_are_limited_to_1024_printable_ascii_characters(local: Env) -> None:
    vault = local.vault()
    local.upload(vault, b"x", "d" * 1024)
    status, code, _ = error_of(lambda: local.upload(vault, b"x", "d" * 1025))
    assert (status, code) == (400, "InvalidParameterValueException")
    status, code, _ = error_of(lambda: local.glacier.upload_archive(vaultName=vault, body=b""))
    assert (status, code) == (400, "InvalidParameterValueException")  # an archive is at least 1 byte


def test_a_multipart_upload_takes_parts_in_any_order_and_checks_its_completion(env: Env) -> None:
    vault = env.vault()
    part = MiB
    data = data_of(3 * part + 1234, seed=3)
    chunks = [data[i : i + part] for i in range(0, len(data), part)]
    status, code, message = error_of(lambda: env.glacier.initiate_multipart_upload(vaultName=vault, partSize=str(3 * MiB)))
    assert (status, code) == (400, "InvalidParameterValueException") and message.startswith("Invalid part size: 3145728")
    assert error_of(lambda: env.glacier.initiate_multipart_upload(vaultName=vault))[1] == "MissingParameterValueException"
    upload = env.glacier.initiate_multipart_upload(vaultName=vault, partSize=str(part), archiveDescription="  parts")["uploadId"]
    assert len(upload) == 92

    def send(index: int, body: bytes, checksum: str | None = None) -> dict[str, Any]:
        first = index * part
        return env.glacier.upload_multipart_part(
            vaultName=vault,
            uploadId=upload,
            body=body,
            range=f"bytes {first}-{first + len(body) - 1}/*",
            **({"checksum": checksum} if checksum else {}),
        )

    answer = send(3, chunks[3])
    assert answer["checksum"] == tree_hash(chunks[3])
    send(1, b"\0" * part)  # wrong bytes first ...
    send(1, chunks[1])  # ... replaced by uploading the part again
    assert error_of(lambda: send(0, chunks[0], checksum="1" * 64))[2] == (
        f"Checksum mismatch: expected {'1' * 64}, computed {tree_hash(chunks[0])}"
    )
    assert (
        error_of(lambda: env.glacier.upload_multipart_part(vaultName=vault, uploadId=upload, body=b"x" * 10, range="bytes 100-109/*"))[1]
        == "InvalidParameterValueException"
    )
    assert (
        error_of(lambda: env.glacier.upload_multipart_part(vaultName=vault, uploadId=upload, body=b"x"))[1]
        == "MissingParameterValueException"
    )
    whole = tree_hash_of_hashes([tree_hash(chunk) for chunk in chunks])
    assert whole == calculate_tree_hash(io.BytesIO(data))  # the tree hash of the parts' tree hashes
    status, code, message = error_of(
        lambda: env.glacier.complete_multipart_upload(vaultName=vault, uploadId=upload, archiveSize=str(len(data)), checksum=whole)
    )
    assert (status, code) == (400, "InvalidParameterValueException") and "part 0" in message  # part 0 is missing
    send(0, chunks[0])
    send(2, chunks[2])

    listed = env.glacier.list_parts(vaultName=vault, uploadId=upload, limit="3")
    assert [p["RangeInBytes"] for p in listed["Parts"]] == ["0-1048575", "1048576-2097151", "2097152-3145727"]
    assert listed["Parts"][1]["SHA256TreeHash"] == tree_hash(chunks[1])
    assert listed["ArchiveDescription"] == "parts" and listed["PartSizeInBytes"] == part  # leading spaces removed
    rest = env.glacier.list_parts(vaultName=vault, uploadId=upload, marker=listed["Marker"])
    assert [p["RangeInBytes"] for p in rest["Parts"]] == [f"3145728-{len(data) - 1}"] and "Marker" not in rest
    assert [u["MultipartUploadId"] for u in env.glacier.list_multipart_uploads(vaultName=vault)["UploadsList"]] == [upload]

    assert (
        error_of(
            lambda: env.glacier.complete_multipart_upload(vaultName=vault, uploadId=upload, archiveSize=str(len(data) + 1), checksum=whole)
        )[1]
        == "InvalidParameterValueException"
    )
    assert error_of(
        lambda: env.glacier.complete_multipart_upload(vaultName=vault, uploadId=upload, archiveSize=str(len(data)), checksum="2" * 64)
    ) == (400, "InvalidParameterValueException", f"Invalid x-amz-sha256-tree-hash: {'2' * 64}")
    done = env.glacier.complete_multipart_upload(vaultName=vault, uploadId=upload, archiveSize=str(len(data)), checksum=whole)
    assert done["checksum"] == whole
    again = env.glacier.complete_multipart_upload(vaultName=vault, uploadId=upload, archiveSize=str(len(data)), checksum=whole)
    assert again["archiveId"] == done["archiveId"]  # idempotent: the same archive
    assert error_of(lambda: env.glacier.list_parts(vaultName=vault, uploadId=upload))[:2] == (404, "ResourceNotFoundException")
    assert env.glacier.list_multipart_uploads(vaultName=vault)["UploadsList"] == []
    assert error_of(lambda: env.glacier.abort_multipart_upload(vaultName=vault, uploadId=upload))[1] == "InvalidParameterValueException"

    job = env.job(vault, Type="archive-retrieval", ArchiveId=done["archiveId"])
    env.emulator.complete_all()
    output = env.output(vault, job)
    assert output["data"] == data and output["checksum"] == whole and output["archiveDescription"] == "parts"


def test_a_part_not_the_last_must_be_a_whole_part_and_aborted_uploads_are_gone(local: Env) -> None:
    vault = local.vault()
    upload = local.glacier.initiate_multipart_upload(vaultName=vault, partSize=str(MiB))["uploadId"]
    short = b"s" * 1000
    local.glacier.upload_multipart_part(vaultName=vault, uploadId=upload, body=short, range="bytes 0-999/*")  # accepted ...
    local.glacier.upload_multipart_part(vaultName=vault, uploadId=upload, body=b"t", range=f"bytes {MiB}-{MiB}/*")
    total = str(1001)
    checksum = tree_hash_of_hashes([tree_hash(short), tree_hash(b"t")])
    status, code, message = error_of(
        lambda: local.glacier.complete_multipart_upload(vaultName=vault, uploadId=upload, archiveSize=total, checksum=checksum)
    )
    assert (status, code) == (400, "InvalidParameterValueException") and "Part 0" in message  # ... but completion fails
    local.glacier.abort_multipart_upload(vaultName=vault, uploadId=upload)
    local.glacier.abort_multipart_upload(vaultName=vault, uploadId=upload)  # idempotent for a while
    assert error_of(lambda: local.glacier.list_parts(vaultName=vault, uploadId=upload))[0] == 404
    many = [local.glacier.initiate_multipart_upload(vaultName=vault, partSize=str(MiB))["uploadId"] for _ in range(5)]
    first = local.glacier.list_multipart_uploads(vaultName=vault, limit="2")
    second = local.glacier.list_multipart_uploads(vaultName=vault, limit="2", marker=first["Marker"])
    third = local.glacier.list_multipart_uploads(vaultName=vault, limit="2", marker=second["Marker"])
    assert [u["MultipartUploadId"] for page in (first, second, third) for u in page["UploadsList"]] == many
    assert "Marker" not in third
    local.advance(86400)  # untouched for 24 hours: reclaimed
    assert local.glacier.list_multipart_uploads(vaultName=vault)["UploadsList"] == []


# ---- jobs, completion and notices ----------------------------------------------------------


def test_archive_jobs_complete_by_tier_and_notify_sns_with_the_describe_job_document(env: Env) -> None:
    vault = env.vault()
    archive = env.upload(vault, b"payload", "the archive")
    topic, queue = env.topic_and_queue()
    jobs = {
        tier: env.job(vault, Type="archive-retrieval", ArchiveId=archive, Tier=tier, SNSTopic=topic, Description=f"{tier} job")
        for tier in ("Expedited", "Standard", "Bulk")
    }
    running = env.describe(vault, jobs["Standard"])
    assert running["StatusCode"] == "InProgress" and running["Completed"] is False and running["StatusMessage"] == "Operation in progress."
    assert "SHA256TreeHash" not in running  # a whole-archive job shows it once complete
    assert running["ArchiveSHA256TreeHash"] == tree_hash(b"payload") and running["RetrievalByteRange"] == "0-6"
    assert env.advance(59) == 0
    assert env.advance(1) == 1  # Expedited: 60 s
    assert [env.describe(vault, jobs[t])["StatusCode"] for t in ("Expedited", "Standard", "Bulk")] == [
        "Succeeded",
        "InProgress",
        "InProgress",
    ]
    env.advance(3600)
    assert env.describe(vault, jobs["Standard"])["StatusCode"] == "Succeeded"
    env.advance(3600)
    done = env.describe(vault, jobs["Bulk"])
    assert done == {
        "Action": "ArchiveRetrieval",
        "ArchiveId": archive,
        "ArchiveSHA256TreeHash": tree_hash(b"payload"),
        "ArchiveSizeInBytes": 7,
        "Completed": True,
        "CompletionDate": "2026-01-05T14:01:00.000Z",
        "CreationDate": "2026-01-05T12:00:00.000Z",
        "JobDescription": "Bulk job",
        "JobId": jobs["Bulk"],
        "RetrievalByteRange": "0-6",
        "SHA256TreeHash": tree_hash(b"payload"),
        "SNSTopic": topic,
        "StatusCode": "Succeeded",
        "StatusMessage": "Succeeded",
        "Tier": "Bulk",
        "VaultARN": f"arn:aws:glacier:{REGION}:{ACCOUNT}:vaults/{vault}",
    }
    notices = {notice["JobId"]: notice for notice in env.notices(queue)}
    assert set(notices) == set(jobs.values())
    # the notice is the DescribeJob document, with AWS's nulls
    assert notices[jobs["Bulk"]] == {**done, "InventoryRetrievalParameters": None, "InventorySizeInBytes": None}
    assert env.emulator.describe(jobs["Bulk"]) == notices[jobs["Bulk"]]


def test_the_vaults_topic_hears_its_events_and_a_jobs_own_topic_too(local: Env) -> None:
    vault = local.vault()
    archive = local.upload(vault, b"x")
    vault_topic, vault_queue = local.topic_and_queue(raw=False)
    job_topic, job_queue = local.topic_and_queue()
    local.glacier.set_vault_notifications(
        vaultName=vault, vaultNotificationConfig={"SNSTopic": vault_topic, "Events": ["InventoryRetrievalCompleted"]}
    )
    archive_job = local.job(vault, Type="archive-retrieval", ArchiveId=archive, SNSTopic=job_topic)
    local.emulator.take_inventory(vault)
    inventory_job = local.job(vault, Type="inventory-retrieval")
    local.emulator.complete_all()
    assert [n["JobId"] for n in local.notices(job_queue)] == [archive_job]  # its own topic
    envelopes = local.notices(vault_queue)  # the vault's topic: inventory events only, as configured
    assert [json.loads(e["Message"])["JobId"] for e in envelopes] == [inventory_job]
    assert json.loads(envelopes[0]["Message"])["Action"] == "InventoryRetrieval"
    local.glacier.set_vault_notifications(
        vaultName=vault, vaultNotificationConfig={"SNSTopic": vault_topic, "Events": list(glacier_module.EVENTS)}
    )
    both = local.job(vault, Type="archive-retrieval", ArchiveId=archive, SNSTopic=job_topic)
    local.emulator.complete_all()
    assert [n["JobId"] for n in local.notices(job_queue)] == [both]  # both topics, as AWS says
    assert [json.loads(e["Message"])["JobId"] for e in local.notices(vault_queue)] == [both]


def test_a_job_on_a_deleted_archive_fails_and_fail_job_fails_one(local: Env) -> None:
    vault = local.vault()
    archive = local.upload(vault, b"soon gone")
    running = local.job(vault, Type="archive-retrieval", ArchiveId=archive)
    local.glacier.delete_archive(vaultName=vault, archiveId=archive)
    after = local.job(vault, Type="archive-retrieval", ArchiveId=archive)  # accepted, as AWS may
    kept = local.upload(vault, b"kept")
    forced = local.job(vault, Type="archive-retrieval", ArchiveId=kept)
    local.emulator.fail_job(forced, "Simulated failure")
    local.emulator.complete_all()
    for job in (running, after):
        described = local.describe(vault, job)
        assert (described["StatusCode"], described["Completed"]) == ("Failed", True)
        assert error_of(lambda: local.output(vault, job))[1] == "InvalidParameterValueException"
    assert local.describe(vault, forced)["StatusMessage"] == "Simulated failure"
    bogus = "A" * 138
    assert error_of(lambda: local.job(vault, Type="archive-retrieval", ArchiveId=bogus))[:2] == (404, "ResourceNotFoundException")


def test_list_jobs_pages_and_filters(env: Env) -> None:
    vault = env.vault()
    archive = env.upload(vault, b"x")
    jobs = [env.job(vault, Type="archive-retrieval", ArchiveId=archive, Tier="Expedited" if i % 2 else "Bulk") for i in range(7)]
    env.advance(60)  # the three Expedited ones complete
    seen, marker = [], None
    while True:
        page = env.glacier.list_jobs(vaultName=vault, limit="3", **({"marker": marker} if marker else {}))
        assert len(page["JobList"]) <= 3
        seen += [job["JobId"] for job in page["JobList"]]
        marker = page.get("Marker")
        if not marker:
            break
    assert seen == jobs
    done = [j["JobId"] for j in env.glacier.list_jobs(vaultName=vault, completed="true")["JobList"]]
    assert done == jobs[1::2]
    assert [j["JobId"] for j in env.glacier.list_jobs(vaultName=vault, statuscode="InProgress")["JobList"]] == jobs[0::2]
    assert env.glacier.list_jobs(vaultName=vault, statuscode="InProgress", completed="true")["JobList"] == []
    assert error_of(lambda: env.glacier.list_jobs(vaultName=vault, statuscode="finished")) == (
        400,
        "InvalidParameterValueException",
        "The job status code is not valid: finished",
    )
    assert error_of(lambda: env.glacier.list_jobs(vaultName=vault, limit="51"))[:2] == (400, "InvalidParameterValueException")
    assert error_of(lambda: env.glacier.list_jobs(vaultName=vault, marker="not-a-marker"))[1] == "InvalidParameterValueException"


# ---- GetJobOutput ---------------------------------------------------------------------------


def test_ranged_output_is_206_with_the_tree_hash_only_for_tree_hash_aligned_ranges(env: Env) -> None:
    vault = env.vault()
    size = 6 * MiB + MiB // 2  # the developer guide's 6.5 MB example
    data = data_of(size, seed=8)
    archive = env.upload(vault, data, "six and a half")
    job = env.job(vault, Type="archive-retrieval", ArchiveId=archive)
    assert error_of(lambda: env.output(vault, job)) == (
        400,
        "InvalidParameterValueException",
        f"The job is not currently available for download: {job}",
    )
    env.emulator.complete_all()

    whole = env.output(vault, job)
    assert (whole["status"], whole["checksum"], whole["data"]) == (200, tree_hash(data), data)
    assert whole["contentType"] == "application/octet-stream" and whole["acceptRanges"] == "bytes"
    assert "contentRange" not in whole
    cases = [
        (0, MiB - 1, True),
        (MiB, 2 * MiB - 1, True),
        (2 * MiB, 4 * MiB - 1, True),
        (4 * MiB, size - 1, True),
        (0, 4 * MiB - 1, True),
        (MiB, 3 * MiB - 1, False),  # megabyte aligned, not tree-hash aligned (the guide's example)
        (100, 1023, False),
        (0, 3 * MiB - 1, False),
        (6 * MiB, size - 1, True),
    ]
    for first, last, has_hash in cases:
        part = env.output(vault, job, range=f"bytes={first}-{last}")
        assert part["status"] == 206 and part["data"] == data[first : last + 1]
        assert part["contentRange"] == f"bytes {first}-{last}/{size}"
        assert part.get("checksum") == (tree_hash(data[first : last + 1]) if has_hash else None), (first, last)
    tail = env.output(vault, job, range="bytes=-10")
    assert (tail["status"], tail["data"], tail["contentRange"]) == (206, data[-10:], f"bytes {size - 10}-{size - 1}/{size}")
    assert env.output(vault, job, range=f"bytes={size - 5}-")["data"] == data[-5:]
    assert error_of(lambda: env.output(vault, job, range=f"bytes={size}-{size + 10}"))[1] == "InvalidParameterValueException"


def test_a_retrieval_range_is_megabyte_aligned_and_its_checksums_follow_its_alignment(local: Env) -> None:
    vault = local.vault()
    size = 6 * MiB + MiB // 2
    data = data_of(size, seed=9)
    archive = local.upload(vault, data)
    status, code, message = error_of(lambda: local.job(vault, Type="archive-retrieval", ArchiveId=archive, RetrievalByteRange="1000-2000"))
    assert (status, code) == (400, "InvalidParameterValueException") and "megabyte aligned" in message
    aligned = local.job(vault, Type="archive-retrieval", ArchiveId=archive, RetrievalByteRange=f"{2 * MiB}-{4 * MiB - 1}")
    assert local.describe(vault, aligned)["SHA256TreeHash"] == tree_hash(data[2 * MiB : 4 * MiB])  # shown while in progress
    unaligned = local.job(vault, Type="archive-retrieval", ArchiveId=archive, RetrievalByteRange=f"{MiB}-{3 * MiB - 1}")
    to_end = local.job(vault, Type="archive-retrieval", ArchiveId=archive, RetrievalByteRange=f"{4 * MiB}-{size - 1}")
    local.emulator.complete_all()

    output = local.output(vault, aligned)
    assert (output["data"], output["checksum"]) == (data[2 * MiB : 4 * MiB], tree_hash(data[2 * MiB : 4 * MiB]))
    first_mib = local.output(vault, aligned, range=f"bytes=0-{MiB - 1}")  # relative to the retrieved range
    assert (first_mib["data"], first_mib["checksum"]) == (data[2 * MiB : 3 * MiB], tree_hash(data[2 * MiB : 3 * MiB]))
    described = local.describe(vault, unaligned)
    assert described["RetrievalByteRange"] == f"{MiB}-{3 * MiB - 1}" and "SHA256TreeHash" not in described
    assert "checksum" not in local.output(vault, unaligned)  # no checksum for any download of it
    assert "checksum" not in local.output(vault, unaligned, range=f"bytes=0-{MiB - 1}")
    assert local.output(vault, to_end)["checksum"] == tree_hash(data[4 * MiB :])
    middle = local.output(vault, to_end, range=f"bytes={2 * MiB}-")
    assert (middle["data"], middle["checksum"]) == (data[6 * MiB :], tree_hash(data[6 * MiB :]))


def test_the_megabyte_rule_can_be_chosen_for_download_checksums(endpoint: AwsEndpoint, aws_env: None) -> None:
    clock = FakeClock()
    with _emulator(clock, checksum_ranges="megabyte") as emulator:
        client = endpoint_client("glacier", endpoint)
        client.create_vault(vaultName="mb-rule")
        data = data_of(6 * MiB + 5)
        archive = client.upload_archive(vaultName="mb-rule", body=data)["archiveId"]
        job = client.initiate_job(vaultName="mb-rule", jobParameters={"Type": "archive-retrieval", "ArchiveId": archive})["jobId"]
        emulator.complete_all()
        answer = client.get_job_output(vaultName="mb-rule", jobId=job, range=f"bytes={MiB}-{3 * MiB - 1}")
        assert answer["checksum"] == tree_hash(data[MiB : 3 * MiB])


def test_a_corrupted_range_makes_the_download_mismatch_its_tree_hash(env: Env) -> None:
    vault = env.vault()
    data = data_of(2 * MiB + 100, seed=4)
    archive = env.upload(vault, data)
    job = env.job(vault, Type="archive-retrieval", ArchiveId=archive)
    env.emulator.complete_all()
    env.emulator.corrupt_output(job, MiB + 10, MiB + 19)
    whole = env.output(vault, job)
    assert whole["checksum"] == tree_hash(data)  # what Glacier holds ...
    assert tree_hash(whole["data"]) != whole["checksum"]  # ... is not what arrived
    assert [i for i in range(len(data)) if whole["data"][i] != data[i]] == list(range(MiB + 10, MiB + 20))
    second = env.output(vault, job, range=f"bytes={MiB}-{2 * MiB - 1}")
    assert second["checksum"] == tree_hash(data[MiB : 2 * MiB]) != tree_hash(second["data"])
    first = env.output(vault, job, range=f"bytes=0-{MiB - 1}")
    assert first["checksum"] == tree_hash(first["data"])  # the range without the corruption checks out


def test_an_expired_output_answers_as_an_unknown_job(env: Env) -> None:
    vault = env.vault()
    archive = env.upload(vault, b"short-lived")
    job = env.job(vault, Type="archive-retrieval", ArchiveId=archive, Tier="Expedited")
    kept = env.job(vault, Type="archive-retrieval", ArchiveId=archive, Tier="Expedited")
    env.advance(60)
    env.emulator.expire_output(job)  # the hook: its 24 hours are over now
    expected = (404, "ResourceNotFoundException", f"The job ID was not found: {job}")
    assert error_of(lambda: env.output(vault, job)) == expected
    assert error_of(lambda: env.describe(vault, job)) == expected
    assert [j["JobId"] for j in env.glacier.list_jobs(vaultName=vault)["JobList"]] == [kept]
    env.advance(86400 - 1)
    assert env.output(vault, kept)["data"] == b"short-lived"  # within the window
    env.advance(1)  # 24 hours after completion
    assert error_of(lambda: env.output(vault, kept))[:2] == (404, "ResourceNotFoundException")


# ---- inventories ----------------------------------------------------------------------------


TRICKY = ['my archive description,1"2', 'my archive description,1\\"2', "plain", "", "comma, only", 'quote " only', "back\\slash"]


def test_inventories_come_as_json_and_as_csv_quoted_as_documented(env: Env) -> None:
    vault = env.vault()
    archives = [env.upload(vault, f"body {i}".encode(), description) for i, description in enumerate(TRICKY)]
    assert error_of(lambda: env.job(vault, Type="inventory-retrieval"))[:2] == (404, "ResourceNotFoundException")  # no inventory yet
    env.advance(120)
    env.emulator.take_inventory(vault)
    late = env.upload(vault, b"after the inventory")
    topic, queue = env.topic_and_queue()
    json_job = env.job(vault, Type="inventory-retrieval", SNSTopic=topic)
    csv_job = env.job(vault, Type="inventory-retrieval", Format="CSV", Description="csv please")
    assert env.advance(1799) == 0
    assert env.advance(1) == 2  # inventory jobs: 1,800 s here

    described = env.describe(vault, json_job)
    assert described["Action"] == "InventoryRetrieval" and described["InventoryRetrievalParameters"] == {"Format": "JSON"}
    for absent in ("ArchiveId", "ArchiveSizeInBytes", "ArchiveSHA256TreeHash", "RetrievalByteRange", "SHA256TreeHash"):
        assert absent not in described
    document = env.output(vault, json_job)
    assert document["contentType"] == "application/json" and "checksum" not in document
    assert len(document["data"]) == described["InventorySizeInBytes"]
    inventory = json.loads(document["data"])
    assert inventory["VaultARN"] == f"arn:aws:glacier:{REGION}:{ACCOUNT}:vaults/{vault}"
    assert inventory["InventoryDate"] == "2026-01-05T12:02:00Z"
    assert [a["ArchiveId"] for a in inventory["ArchiveList"]] == archives and late not in document["data"].decode()
    assert [a["ArchiveDescription"] for a in inventory["ArchiveList"]] == TRICKY
    first = inventory["ArchiveList"][0]
    assert first == {
        "ArchiveId": archives[0],
        "ArchiveDescription": TRICKY[0],
        "CreationDate": "2026-01-05T12:00:00.000Z",
        "Size": 6,
        "SHA256TreeHash": tree_hash(b"body 0"),
    }
    assert env.notices(queue)[0]["InventorySizeInBytes"] == described["InventorySizeInBytes"]

    table = env.output(vault, csv_job)
    assert table["contentType"] == "text/csv"
    lines = table["data"].decode().splitlines()
    assert lines[0] == "ArchiveId,ArchiveDescription,CreationDate,Size,SHA256TreeHash"
    assert lines[1] == f'{archives[0]},"my archive description,1\\"2",2026-01-05T12:00:00.000Z,6,{tree_hash(b"body 0")}'
    assert lines[2].split(",", 1)[1].startswith('"my archive description,1\\\\"2",')  # the guide's second example
    assert lines[3].split(",")[1] == "plain" and lines[4].split(",")[1] == ""
    # a reader of the documented rule (inside quotes \\" is a quote, any other backslash itself) gets every one back
    rows = [read_inventory_csv_line(line) for line in lines[1:]]
    assert [row[1] for row in rows] == TRICKY and [row[0] for row in rows] == archives and all(len(row) == 5 for row in rows)


def read_inventory_csv_line(line: str) -> list[str]:
    fields, value, quoted, i = [], "", False, 0
    while i < len(line):
        ch = line[i]
        if quoted and ch == "\\" and line[i + 1 : i + 2] == '"':
            value, i = value + '"', i + 2
            continue
        if ch == '"':
            quoted = not quoted
        elif ch == "," and not quoted:
            fields.append(value)
            value = ""
        else:
            value += ch
        i += 1
    return [*fields, value]


def test_inventory_limit_marker_and_dates_page_through_a_vault(local: Env) -> None:
    vault = local.vault()
    start = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
    batch = local.emulator.put_archives(vault, 10, 100, lambda i: f"file-{i}", created=start, created_step=dt.timedelta(days=1))
    local.emulator.take_inventory(vault)
    seen: list[str] = []
    marker = None
    while True:
        parameters: dict[str, Any] = {"Limit": "4", **({"Marker": marker} if marker else {})}
        job = local.job(vault, Type="inventory-retrieval", InventoryRetrievalParameters=parameters)
        local.emulator.complete_all()
        seen += [a["ArchiveId"] for a in json.loads(local.output(vault, job)["data"])["ArchiveList"]]
        described = local.describe(vault, job)
        assert described["InventoryRetrievalParameters"]["Limit"] == "4"
        marker = described["InventoryRetrievalParameters"].get("Marker")
        if not marker:
            break
    assert seen == list(batch.ids)
    dated = local.job(
        vault,
        Type="inventory-retrieval",
        Format="CSV",
        InventoryRetrievalParameters={"StartDate": "2024-03-03T00:00:00Z", "EndDate": "2024-03-06T00:00:00Z"},
    )
    local.emulator.complete_all()
    rows = local.output(vault, dated)["data"].decode().splitlines()[1:]
    assert [row.split(",")[1] for row in rows] == ["file-2", "file-3", "file-4"]  # on or after StartDate, before EndDate
    for bad in (
        {"Limit": "0"},
        {"StartDate": "yesterday"},
        {"Marker": "x" * 138},
        {"StartDate": "2024-03-06T00:00:00Z", "EndDate": "2024-03-03T00:00:00Z"},
    ):
        assert (
            error_of(lambda: local.job(vault, Type="inventory-retrieval", InventoryRetrievalParameters=bad))[1]
            == "InvalidParameterValueException"
        ), bad


@pytest.mark.parametrize("seed", range(4))
def test_inventory_outputs_match_a_plain_rendering_under_deletions_filters_limits_and_markers(seed: int) -> None:
    """The counted size, the next marker and every ranged read agree with rendering the entries one by one."""
    import random

    rng = random.Random(seed)
    for trial in range(20):
        emulator = GlacierEmulator(seed=trial)
        emulator.create_vault("v")
        vault = emulator._vaults[(ACCOUNT, REGION)]["v"]
        ids: list[str] = []
        for _ in range(rng.randint(1, 5)):
            created = T0 + dt.timedelta(hours=rng.randint(0, 50))
            if rng.random() < 0.3:
                ids.append(
                    emulator.put_archive(
                        "v", size=rng.randint(0, 3000), description=rng.choice(["", "a,b", 'q"x', "plain"]), created=created, seed=1
                    )
                )
            else:
                description = rng.choice(["fixed", 'f,"x"', lambda i: f"d{i}" * (i % 3), lambda i: "é" * (i % 2)])
                ids += emulator.put_archives(
                    "v",
                    rng.randint(1, 700),
                    rng.randint(0, 5000),
                    description,
                    created=created,
                    created_step=dt.timedelta(minutes=rng.choice([0, 1, 7])),
                    seed=2,
                ).ids
        for archive in rng.sample(ids, k=min(len(ids), rng.randint(0, 30))):  # deleted before the inventory
            run, index = emulator._find_archive(vault, archive)
            run.deleted[index] = next(emulator._seq)
        emulator.take_inventory("v")
        for archive in rng.sample(ids, k=min(len(ids), 5)):  # deleted after it: still listed
            run, index = emulator._find_archive(vault, archive)
            run.deleted.setdefault(index, next(emulator._seq))
        fmt = rng.choice(["JSON", "CSV"])
        start_date = T0 + dt.timedelta(hours=rng.randint(0, 30)) if rng.random() < 0.3 else None
        end_date = T0 + dt.timedelta(hours=rng.randint(31, 60)) if rng.random() < 0.3 else None
        limit = rng.choice([None, 1, 2, 255, 256, 257, 600])
        position = (0, 0)
        if rng.random() < 0.3:
            run, index = emulator._find_archive(vault, rng.choice(ids))
            position = (run.pos, index)
        output = glacier_module._InventoryOutput(emulator, vault, vault.snapshot, fmt, start_date, end_date, limit, *position)
        output.compute()
        entries = list(output._matching(*position))
        listed = entries if limit is None else entries[:limit]
        body = output.prefix + b"".join(output._entry(run, i, n == 0) for n, (run, i) in enumerate(listed)) + output.suffix
        assert (output.size, output.count) == (len(body), len(listed))
        assert output.next_marker == (emulator._archive_id(*entries[limit]) if limit is not None and len(entries) > limit else None)
        assert b"".join(output.iter_range(0, output.size)) == body
        for _ in range(10):
            first = rng.randrange(len(body))
            after = rng.randint(first + 1, len(body))
            assert b"".join(output.iter_range(first, after)) == body[first:after]
        if fmt == "JSON":
            assert len(json.loads(body)["ArchiveList"]) == len(listed)


def test_an_inventory_of_a_million_archives_is_counted_and_served_by_streaming(local: Env) -> None:
    vault = local.vault()
    count = 1_000_000
    batch = local.emulator.put_archives(vault, count, 4096, lambda i: f"photos/{i:07d}.jpg", seed=1)
    local.emulator.take_inventory(vault)
    assert local.glacier.describe_vault(vaultName=vault)["NumberOfArchives"] == count
    job = local.job(vault, Type="inventory-retrieval", Format="CSV")
    assert local.emulator.complete_all() == 1
    size = local.describe(vault, job)["InventorySizeInBytes"]
    line = 138 + 1 + len("photos/0000000.jpg") + 1 + 24 + 1 + 4 + 1 + 64 + 1
    assert size == len(glacier_module.CSV_HEADER) + count * line
    output = local.emulator._jobs[job].inventory
    assert output is not None and len(output.checkpoints) == -(-count // glacier_module.INVENTORY_CHECKPOINT)  # no entry is kept
    for n in (0, 1, count // 2 + 7, count - 1):  # any line, read by range
        first = len(glacier_module.CSV_HEADER) + n * line
        row = local.output(vault, job, range=f"bytes={first}-{first + line - 1}")["data"].decode()
        archive_id, description, _, archive_size, checksum = row.rstrip("\n").split(",")
        assert (archive_id, description, archive_size, checksum) == (batch.ids[n], f"photos/{n:07d}.jpg", "4096", batch.tree_hash)
    # reading a range regenerates at most a checkpoint's worth of entries before it
    calls = {"n": 0}
    real = glacier_module._InventoryOutput._entry

    def counting(self: Any, run: Any, index: int, first: bool) -> bytes:
        calls["n"] += 1
        return real(self, run, index, first)

    try:
        glacier_module._InventoryOutput._entry = counting  # type: ignore[method-assign]
        local.output(vault, job, range=f"bytes={size - 2 * line}-{size - 1}")
    finally:
        glacier_module._InventoryOutput._entry = real  # type: ignore[method-assign]
    assert calls["n"] <= glacier_module.INVENTORY_CHECKPOINT + 2


def test_streaming_a_whole_inventory_holds_no_more_than_a_chunk(local: Env) -> None:
    vault = local.vault()
    local.emulator.put_archives(vault, 60_000, 10, lambda i: f"doc {i}", seed=2)
    local.emulator.take_inventory(vault)
    job = local.job(vault, Type="inventory-retrieval")
    local.emulator.complete_all()
    total = entries = 0
    tracemalloc.start()
    try:
        for piece in local.emulator.iter_job_output(job):
            total += len(piece)
            entries += piece.count(b'{"ArchiveId"')
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert total == local.describe(vault, job)["InventorySizeInBytes"] > 15 * MiB and entries == 60_000
    assert peak < 2 * MiB


# ---- errors, policies, capacity -------------------------------------------------------------


def test_errors_come_in_glaciers_json_shape_with_the_documented_codes(env: Env) -> None:
    missing = f"missing-{uuid.uuid4().hex[:6]}"
    assert error_of(lambda: env.glacier.describe_vault(vaultName=missing)) == (
        404,
        "ResourceNotFoundException",
        f"Vault not found for ARN: arn:aws:glacier:{REGION}:{ACCOUNT}:vaults/{missing}",
    )
    vault = env.vault()
    assert error_of(lambda: env.describe(vault, "no-such-job")) == (
        404,
        "ResourceNotFoundException",
        "The job ID was not found: no-such-job",
    )
    assert error_of(lambda: env.glacier.create_vault(vaultName="bad name"))[:2] == (400, "InvalidParameterValueException")
    assert error_of(lambda: env.glacier.initiate_job(vaultName=vault, jobParameters={}))[:2] == (400, "MissingParameterValueException")
    assert error_of(lambda: env.job(vault, Type="select"))[1] == "InvalidParameterValueException"
    assert error_of(lambda: env.job(vault, Type="archive-retrieval"))[1] == "MissingParameterValueException"
    archive = env.upload(vault, b"x")
    assert error_of(lambda: env.job(vault, Type="archive-retrieval", ArchiveId=archive, Tier="Fast"))[1] == "InvalidParameterValueException"
    assert error_of(lambda: env.job(vault, Type="inventory-retrieval", ArchiveId=archive))[1] == "InvalidParameterValueException"
    assert error_of(lambda: env.glacier.list_jobs(accountId="111111111111", vaultName=vault))[:2] == (403, "AccessDeniedException")
    assert env.glacier.list_jobs(accountId=ACCOUNT, vaultName=vault)["JobList"] == []  # the caller's own ID works as "-"


def test_injected_errors_answer_with_the_models_statuses(env: Env) -> None:
    vault = env.vault()
    for code, status in (
        ("ServiceUnavailableException", 500),
        ("RequestTimeoutException", 408),
        ("LimitExceededException", 400),
        ("ThrottlingException", 400),
    ):
        env.emulator.inject_error("UploadArchive", code)
        assert error_of(lambda: env.upload(vault, b"x"))[:2] == (status, code)
    env.emulator.inject_error("GetJobOutput", "ServiceUnavailableException", "try again", times=2)
    archive = env.upload(vault, b"x")  # the faults were consumed one a call
    job = env.job(vault, Type="archive-retrieval", ArchiveId=archive)
    env.emulator.complete_all()
    assert error_of(lambda: env.output(vault, job)) == (500, "ServiceUnavailableException", "try again")
    assert error_of(lambda: env.output(vault, job))[0] == 500
    assert env.output(vault, job)["data"] == b"x"
    env.emulator.set_no_longer_supported(ACCOUNT)
    assert error_of(lambda: env.glacier.list_vaults())[:2] == (400, "NoLongerSupportedException")
    env.emulator.set_no_longer_supported(ACCOUNT, False)
    assert env.glacier.list_vaults()["VaultList"]


def test_expedited_capacity_can_run_out_unless_capacity_is_provisioned(env: Env) -> None:
    vault = env.vault()
    archive = env.upload(vault, b"x")
    env.emulator.expedited_capacity = False
    assert error_of(lambda: env.job(vault, Type="archive-retrieval", ArchiveId=archive, Tier="Expedited"))[:2] == (
        400,
        "InsufficientCapacityException",
    )
    env.job(vault, Type="archive-retrieval", ArchiveId=archive, Tier="Standard")  # the other tiers are not affected
    capacity = env.glacier.purchase_provisioned_capacity()["capacityId"]
    assert [c["CapacityId"] for c in env.glacier.list_provisioned_capacity()["ProvisionedCapacityList"]] == [capacity]
    env.job(vault, Type="archive-retrieval", ArchiveId=archive, Tier="Expedited")
    env.glacier.purchase_provisioned_capacity()
    assert error_of(lambda: env.glacier.purchase_provisioned_capacity())[:2] == (400, "LimitExceededException")


def test_a_data_retrieval_policy_refuses_standard_retrievals_over_its_quota(local: Env) -> None:
    vault = local.vault()
    archive = local.emulator.put_archive(vault, size=8 * MiB, seed=4)
    assert local.glacier.get_data_retrieval_policy()["Policy"] == {"Rules": [{"Strategy": "None"}]}
    local.glacier.set_data_retrieval_policy(Policy={"Rules": [{"Strategy": "BytesPerHour", "BytesPerHour": 3 * MiB}]})
    local.job(vault, Type="archive-retrieval", ArchiveId=archive)  # 8 MiB over 4 hours: 2 MiB an hour
    assert error_of(lambda: local.job(vault, Type="archive-retrieval", ArchiveId=archive))[:2] == (400, "PolicyEnforcedException")
    local.job(vault, Type="archive-retrieval", ArchiveId=archive, Tier="Bulk")  # Standard only
    local.emulator.complete_all()
    local.job(vault, Type="archive-retrieval", ArchiveId=archive)  # the earlier one is done: room again
    assert (
        error_of(lambda: local.glacier.set_data_retrieval_policy(Policy={"Rules": [{"Strategy": "BytesPerHour"}]}))[1]
        == "InvalidParameterValueException"
    )
    local.glacier.set_data_retrieval_policy(Policy={"Rules": [{"Strategy": "None"}]})


def test_the_vault_limit_is_enforced(endpoint: AwsEndpoint, aws_env: None) -> None:
    with _emulator(FakeClock(), vault_limit=2):
        client = endpoint_client("glacier", endpoint)
        client.create_vault(vaultName="one")
        client.create_vault(vaultName="two")
        client.create_vault(vaultName="two")  # idempotent, no new vault
        assert error_of(lambda: client.create_vault(vaultName="three"))[:2] == (400, "LimitExceededException")
        other = endpoint_client("glacier", endpoint, region="eu-west-1")
        other.create_vault(vaultName="three")  # per Region
        assert error_of(lambda: client.describe_vault(vaultName="three"))[0] == 404


# ---- installation, clock, threads -----------------------------------------------------------


def test_install_is_idempotent_and_coexists_with_the_other_emulations(endpoint: AwsEndpoint, aws_env: None) -> None:
    from bulk_restore_cli.local.s3_batch import S3BatchEmulator
    from bulk_restore_cli.local.s3_restore import S3RestoreEmulator

    client = endpoint_client("glacier", endpoint)
    s3 = endpoint_client("s3", endpoint)
    for order in ("glacier first", "glacier last"):
        restore = S3RestoreEmulator().install()
        emulator = GlacierEmulator(seed=1)
        if order == "glacier first":
            emulator.install().install()
            batch = S3BatchEmulator(restore).install()
        else:
            batch = S3BatchEmulator(restore).install()
            emulator.install()
        assert emulator.installed
        client.create_vault(vaultName="coexist")
        data = data_of(2 * MiB + 1)
        assert client.upload_archive(vaultName="coexist", body=data)["checksum"] == tree_hash(data)
        bucket = f"b-{uuid.uuid4().hex[:8]}"
        s3.create_bucket(Bucket=bucket)  # the rest of moto answers as before
        batch.uninstall()
        assert client.upload_archive(vaultName="coexist", body=data)["checksum"] == tree_hash(data)  # still ours
        emulator.uninstall()
        emulator.uninstall()
        restore.uninstall()
    # uninstalled: moto's own Glacier answers again (its "checksum" is a plain SHA-256)
    client.create_vault(vaultName="moto-own")
    assert client.upload_archive(vaultName="moto-own", body=data)["checksum"] == hashlib.sha256(data).hexdigest()


def test_the_clock_thread_completes_jobs_on_its_own() -> None:
    emulator = GlacierEmulator(durations={"Expedited": 0.05}, seed=5)
    emulator.create_vault("clocked")
    archive = emulator.put_archive("clocked", data=b"tick tock")
    from moto import mock_aws

    with mock_aws(), emulator:
        client = endpoint_client("glacier")
        job = client.initiate_job(
            vaultName="clocked", jobParameters={"Type": "archive-retrieval", "ArchiveId": archive, "Tier": "Expedited"}
        )["jobId"]
        emulator.start_clock(interval=0.01)
        try:
            done = threading.Event()
            for _ in range(500):
                if client.describe_job(vaultName="clocked", jobId=job)["Completed"]:
                    done.set()
                    break
                done.wait(0.01)
            assert done.is_set()
        finally:
            emulator.stop_clock()
        assert client.get_job_output(vaultName="clocked", jobId=job)["body"].read() == b"tick tock"


def test_concurrent_uploads_and_jobs_from_many_threads(local: Env, endpoint: AwsEndpoint) -> None:
    vault = local.vault()
    ids: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def work(n: int) -> None:
        try:
            client = endpoint_client("glacier", endpoint)
            for i in range(8):
                archive = client.upload_archive(vaultName=vault, body=f"{n}-{i}".encode() * 1000)["archiveId"]
                client.initiate_job(vaultName=vault, jobParameters={"Type": "archive-retrieval", "ArchiveId": archive})
                with lock:
                    ids.append(archive)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    completer = threading.Thread(target=lambda: [local.emulator.complete_all() for _ in range(20)])
    completer.start()
    for thread in [*threads, completer]:
        thread.join()
    assert not errors
    local.emulator.complete_all()
    assert len(set(ids)) == 48
    local.emulator.take_inventory(vault)
    assert local.glacier.describe_vault(vaultName=vault)["NumberOfArchives"] == 48
    jobs = local.glacier.list_jobs(vaultName=vault, statuscode="Succeeded", limit="50")["JobList"]
    assert len(jobs) == 48 and {job["ArchiveId"] for job in jobs} == set(ids)


def test_the_lines_the_local_stack_needs_start_it(endpoint: AwsEndpoint, aws_env: None) -> None:
    """The module docstring's lines for local/stack.py: scaled durations, the endpoint's gate, the clock thread."""
    from bulk_restore_cli.local.stack import LocalStackConfig

    config = LocalStackConfig()
    assert endpoint.application is not None
    emulator = GlacierEmulator(durations=GlacierEmulator.scaled_durations(config.time_scale), gate=endpoint.application.gate).install()
    emulator.start_clock(interval=0.1)
    try:
        assert emulator.durations["Standard"] == pytest.approx(5 * 3600 * config.time_scale)
        assert emulator.durations["output_window"] == pytest.approx(24 * 3600 * config.time_scale)
        env = Env(emulator, FakeClock(), lambda service: endpoint_client(service, endpoint))
        vault = env.vault()
        archive = env.upload(vault, b"through the gate")
        topic, queue = env.topic_and_queue()
        job = env.job(vault, Type="archive-retrieval", ArchiveId=archive, SNSTopic=topic)
        assert emulator.complete_all() == 1  # its notice passes the endpoint's admission gate
        assert [notice["JobId"] for notice in env.notices(queue)] == [job]
        assert env.output(vault, job)["data"] == b"through the gate"
    finally:
        emulator.uninstall()
