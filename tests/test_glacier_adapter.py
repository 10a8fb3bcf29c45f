"""The Glacier vault adapter (adapters/glacier.py) against the local vault emulation inside mock_aws.

Archives are uploaded with a plain boto3 ``glacier`` client; jobs complete when the test advances
the emulator's clock. Tree hashes are checked against botocore.utils.calculate_tree_hash.
"""

from __future__ import annotations

import datetime as dt
import io
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from botocore.utils import calculate_tree_hash

from bulk_restore.adapters.glacier import ArchiveNotFound, ArchiveRefused, GlacierVaults, OutputExpired
from bulk_restore.domain.outcomes import RetryLater
from bulk_restore.domain.vault import MIB, TreeHashMismatch, VaultArchive, iter_vault_inventory
from bulk_restore_cli.local.glacier import GlacierEmulator
from support.glacier_data import FakeClock, data_of

ACCOUNT = "123456789012"
REGION = "us-east-1"
T0 = dt.datetime(2026, 1, 5, 12, 0, 0, tzinfo=dt.UTC)
DURATIONS = {"Expedited": 60.0, "Standard": 3600.0, "Bulk": 7200.0, "inventory": 1800.0}
NO_RETRIES = Config(retries={"total_max_attempts": 1, "mode": "standard"})
SIZE = 3 * MIB + 5


def botocore_tree_hash(data: bytes) -> str:
    return calculate_tree_hash(io.BytesIO(data))


@dataclass
class Env:
    emulator: GlacierEmulator
    clock: FakeClock
    glacier: Any  # a plain boto3 client, to set the scene
    vaults: GlacierVaults  # the adapter, making its own client

    def vault(self) -> str:
        name = f"vault-{uuid.uuid4().hex[:10]}"
        self.glacier.create_vault(vaultName=name)
        return name

    def upload(self, vault: str, body: bytes, description: str = "") -> str:
        extra = {"archiveDescription": description} if description else {}
        return str(self.glacier.upload_archive(vaultName=vault, body=body, **extra)["archiveId"])

    def advance(self, seconds: float) -> int:
        self.clock.now += seconds
        return self.emulator.tick()

    def retrieved(self, data: bytes, tier: str = "Standard") -> tuple[str, str]:
        """A vault holding ``data`` as an archive, and a completed retrieval job of it."""
        vault = self.vault()
        job = self.vaults.initiate_archive_retrieval(vault, self.upload(vault, data), tier)
        assert self.advance(DURATIONS[tier]) == 1
        return vault, job


@pytest.fixture
def env(aws_env: None) -> Iterator[Env]:
    from moto import mock_aws

    clock = FakeClock()
    emulator = GlacierEmulator(clock=clock, durations=DURATIONS, start_time=T0, seed=7).install()
    try:
        with mock_aws():
            yield Env(emulator, clock, boto3.client("glacier", region_name=REGION, config=NO_RETRIES), GlacierVaults())
    finally:
        emulator.uninstall()


# ---- vaults -----------------------------------------------------------------------------------


def test_describe_vault_finds_a_vault_with_its_last_inventorys_counts_and_misses_an_unknown_one(env: Env) -> None:
    vault = env.vault()
    arn = f"arn:aws:glacier:{REGION}:{ACCOUNT}:vaults/{vault}"
    assert env.vaults.describe_vault(vault) == {"name": vault, "arn": arn, "archives": None, "size": None}
    env.upload(vault, b"abc")
    env.upload(vault, b"defgh")
    env.emulator.take_inventory(vault)
    assert env.vaults.describe_vault(vault) == {"name": vault, "arn": arn, "archives": 2, "size": 8}
    assert env.vaults.describe_vault(f"missing-{uuid.uuid4().hex[:6]}") is None


def test_an_injected_client_and_account_are_used(env: Env) -> None:
    vault = env.vault()
    vaults = GlacierVaults(client=env.glacier, account_id=ACCOUNT)
    assert vaults.client is env.glacier
    assert vaults.describe_vault(vault)["name"] == vault  # type: ignore[index]
    with pytest.raises(ClientError, match="AccessDenied"):  # the account is sent: not the caller's
        GlacierVaults(client=env.glacier, account_id="111111111111").describe_vault(vault)


# ---- archive retrievals -----------------------------------------------------------------------


def test_an_archive_comes_back_in_aligned_ranges_each_checked_against_glaciers_tree_hash(env: Env) -> None:
    data = data_of(SIZE, seed=1)
    vault = env.vault()
    archive = env.upload(vault, data, "three MiB and five bytes")
    job = env.vaults.initiate_archive_retrieval(vault, archive, "Standard", description="round trip")
    described = env.vaults.describe_job(vault, job)
    assert described is not None and "ResponseMetadata" not in described
    assert (described["StatusCode"], described["ArchiveId"], described["Tier"]) == ("InProgress", archive, "Standard")
    assert env.advance(DURATIONS["Standard"]) == 1
    described = env.vaults.describe_job(vault, job)
    assert described is not None and described["StatusCode"] == "Succeeded"
    assert described["ArchiveSizeInBytes"] == SIZE and described["ArchiveSHA256TreeHash"] == botocore_tree_hash(data)

    pieces = []
    for start in range(0, SIZE, MIB):
        end = min(start + MIB, SIZE) - 1
        piece, computed = env.vaults.get_verified_range(vault, job, start, end, SIZE)
        assert piece == data[start : end + 1]
        assert computed == botocore_tree_hash(data[start : end + 1])
        pieces.append(piece)
    assert len(pieces) == 4 and len(pieces[-1]) == 5
    assert b"".join(pieces) == data
    whole, computed = env.vaults.get_verified_range(vault, job, 0, SIZE - 1, SIZE)
    assert whole == data and computed == botocore_tree_hash(data)


def test_a_range_that_is_not_aligned_comes_without_a_tree_hash_and_is_returned_with_its_own(env: Env) -> None:
    data = data_of(SIZE, seed=2)
    vault, job = env.retrieved(data)
    assert env.vaults.get_output_range(vault, job, 100, 2000) == (data[100:2001], None)
    piece, computed = env.vaults.get_verified_range(vault, job, 100, 2000, SIZE)
    assert piece == data[100:2001] and computed == botocore_tree_hash(data[100:2001])
    aligned, checksum = env.vaults.get_output_range(vault, job, MIB, 2 * MIB - 1)
    assert aligned == data[MIB : 2 * MIB] and checksum == botocore_tree_hash(aligned)


def test_a_range_retrieval_is_checked_where_it_lies_in_the_archive(env: Env) -> None:
    data = data_of(SIZE, seed=3)
    vault = env.vault()
    job = env.vaults.initiate_archive_retrieval(vault, env.upload(vault, data), "Bulk", byte_range=f"{2 * MIB}-{SIZE - 1}")
    env.advance(DURATIONS["Bulk"])
    piece, computed = env.vaults.get_verified_range(vault, job, MIB, MIB + 4, SIZE, output_offset=2 * MIB)  # the archive's end
    assert piece == data[3 * MIB :] and computed == botocore_tree_hash(data[3 * MIB :])


class WithoutChecksum:
    """A glacier client whose GetJobOutput answers lose their x-amz-sha256-tree-hash header."""

    def __init__(self, client: Any):
        self.client = client

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def get_job_output(self, **kwargs: Any) -> dict[str, Any]:
        answer = dict(self.client.get_job_output(**kwargs))
        answer.pop("checksum", None)
        return answer


def test_an_aligned_range_without_glaciers_tree_hash_is_refused(env: Env) -> None:
    data = data_of(SIZE, seed=7)
    vault, job = env.retrieved(data)
    tail = env.vaults.initiate_archive_retrieval(
        vault, env.glacier.describe_job(vaultName=vault, jobId=job)["ArchiveId"], "Bulk", byte_range=f"{2 * MIB}-{SIZE - 1}"
    )
    env.advance(DURATIONS["Bulk"])
    bare = GlacierVaults(client=WithoutChecksum(env.glacier))
    with pytest.raises(TreeHashMismatch, match="no tree hash"):
        bare.get_verified_range(vault, job, MIB, 2 * MIB - 1, SIZE)
    with pytest.raises(TreeHashMismatch, match="no tree hash"):  # the archive's last bytes, by where the output starts
        bare.get_verified_range(vault, tail, MIB, MIB + 4, SIZE, output_offset=2 * MIB)
    assert bare.get_verified_range(vault, tail, 0, 99, SIZE, output_offset=2 * MIB)[0] == data[2 * MIB : 2 * MIB + 100]
    assert bare.get_verified_range(vault, job, 100, 2000, SIZE)[0] == data[100:2001]


def test_a_corrupted_range_raises_tree_hash_mismatch(env: Env) -> None:
    data = data_of(SIZE, seed=4)
    vault, job = env.retrieved(data)
    env.emulator.corrupt_output(job, MIB + 10, MIB + 19)
    assert env.vaults.get_verified_range(vault, job, 0, MIB - 1, SIZE)[0] == data[:MIB]  # untouched
    with pytest.raises(TreeHashMismatch, match="damaged"):
        env.vaults.get_verified_range(vault, job, MIB, 2 * MIB - 1, SIZE)


def test_a_short_body_raises_tree_hash_mismatch(env: Env) -> None:
    data = data_of(SIZE, seed=5)
    vault, job = env.retrieved(data)
    with pytest.raises(TreeHashMismatch, match="5 bytes arrived instead of 10"):  # Glacier sends what there is
        env.vaults.get_verified_range(vault, job, 3 * MIB, 3 * MIB + 9, SIZE + 5)


def test_an_expired_output_raises_output_expired_and_the_job_is_unknown(env: Env) -> None:
    vault, job = env.retrieved(b"short-lived", "Expedited")
    assert env.vaults.get_output_range(vault, job, 0, 4) == (b"short", None)
    env.emulator.expire_output(job)
    with pytest.raises(OutputExpired) as caught:
        env.vaults.get_output_range(vault, job, 0, 4)
    assert caught.value.job_id == job
    with pytest.raises(OutputExpired):
        env.vaults.get_verified_range(vault, job, 0, 10, 11)
    assert env.vaults.describe_job(vault, job) is None


def test_an_archive_not_in_the_vault_is_not_found_and_a_bad_request_is_refused(env: Env) -> None:
    vault = env.vault()
    archive = env.upload(vault, data_of(2 * MIB, seed=6))
    with pytest.raises(ArchiveNotFound) as caught:
        env.vaults.initiate_archive_retrieval(vault, "no-such-archive", "Bulk")
    assert caught.value.archive_id == "no-such-archive" and "Archive not found" in caught.value.message
    other = env.vault()
    with pytest.raises(ArchiveNotFound):
        env.vaults.initiate_archive_retrieval(other, archive, "Bulk")  # another vault's archive
    with pytest.raises(ArchiveRefused) as refused:
        env.vaults.initiate_archive_retrieval(vault, archive, "Bulk", byte_range="1000-2000")  # not megabyte aligned
    assert refused.value.code == "InvalidParameterValueException" and "megabyte aligned" in refused.value.message
    assert env.glacier.list_jobs(vaultName=vault)["JobList"] == []


# ---- retrying ---------------------------------------------------------------------------------


def test_expedited_without_capacity_is_retry_later_and_the_retries_give_up_after_their_attempts(env: Env) -> None:
    vault = env.vault()
    archive = env.upload(vault, b"urgent")
    env.emulator.expedited_capacity = False
    with pytest.raises(RetryLater) as caught:
        env.vaults.initiate_archive_retrieval(vault, archive, "Expedited")
    assert caught.value.code == "InsufficientCapacityException"
    slept: list[float] = []
    with pytest.raises(RetryLater) as again:
        env.vaults.initiate_with_retries(vault, archive, "Expedited", attempts=4, sleep=slept.append)
    assert again.value.code == "InsufficientCapacityException"
    assert slept == [1.0, 2.0, 4.0]  # no sleep after the last attempt
    slept.clear()
    with pytest.raises(RetryLater):
        env.vaults.initiate_with_retries(vault, archive, "Expedited", sleep=slept.append, max_delay=5.0)
    assert slept == [1.0, 2.0, 4.0, 5.0, 5.0]  # six attempts by default, the delay capped
    assert env.glacier.list_jobs(vaultName=vault)["JobList"] == []
    job = env.vaults.initiate_with_retries(vault, archive, "Standard", sleep=slept.append)
    assert env.vaults.describe_job(vault, job)["Tier"] == "Standard"  # type: ignore[index]


def test_a_data_retrieval_policy_refusal_is_retry_later(env: Env) -> None:
    vault = env.vault()
    archive = env.emulator.put_archive(vault, size=8 * MIB, seed=4)
    env.glacier.set_data_retrieval_policy(Policy={"Rules": [{"Strategy": "BytesPerHour", "BytesPerHour": MIB}]})
    with pytest.raises(RetryLater) as caught:
        env.vaults.initiate_archive_retrieval(vault, archive, "Standard")
    assert caught.value.code == "PolicyEnforcedException"
    assert env.vaults.initiate_archive_retrieval(vault, archive, "Bulk")  # the policy binds Standard retrievals only


@pytest.mark.parametrize(
    "code", ["ThrottlingException", "LimitExceededException", "RequestTimeoutException", "ServiceUnavailableException"]
)
def test_transient_errors_of_initiate_job_are_retry_later(env: Env, code: str) -> None:
    vault = env.vault()
    archive = env.upload(vault, b"x")
    env.emulator.inject_error("InitiateJob", code)
    with pytest.raises(RetryLater) as caught:
        env.vaults.initiate_archive_retrieval(vault, archive, "Bulk")
    assert caught.value.code == code
    assert env.vaults.initiate_archive_retrieval(vault, archive, "Bulk")  # the fault was one call's


def test_throttling_then_success_is_retried(env: Env) -> None:
    vault = env.vault()
    archive = env.upload(vault, b"patience")
    env.emulator.inject_error("InitiateJob", "ThrottlingException", times=2)
    slept: list[float] = []
    job = env.vaults.initiate_with_retries(vault, archive, "Bulk", sleep=slept.append, base_delay=0.5)
    assert slept == [0.5, 1.0]
    assert [j["JobId"] for j in env.glacier.list_jobs(vaultName=vault)["JobList"]] == [job]


def test_a_server_error_while_reading_output_is_retry_later(env: Env) -> None:
    vault, job = env.retrieved(b"0123456789")
    env.emulator.inject_error("GetJobOutput", "ServiceUnavailableException")
    with pytest.raises(RetryLater) as caught:
        env.vaults.get_output_range(vault, job, 0, 9)
    assert caught.value.code == "ServiceUnavailableException"
    assert env.vaults.get_verified_range(vault, job, 0, 9, 10) == (b"0123456789", botocore_tree_hash(b"0123456789"))


# ---- inventories ------------------------------------------------------------------------------


DESCRIPTIONS = [
    "plain",
    "",
    'comma, and "quotes"',
    "back\\slash",
    'my archive description,1\\"2',
    "photos/2019/a.jpg",
    "x" * 300,
    "last one",
]


@pytest.mark.parametrize("fmt", ["JSON", "CSV"])
def test_an_inventory_streams_in_small_ranged_blocks_and_lists_every_archive(env: Env, fmt: str) -> None:
    vault = env.vault()
    bodies = [data_of(1000 + 97 * i, seed=i) for i in range(len(DESCRIPTIONS))]
    archives = [env.upload(vault, body, description) for body, description in zip(bodies, DESCRIPTIONS, strict=True)]
    env.emulator.take_inventory(vault)
    job = env.vaults.initiate_inventory_retrieval(vault, fmt)
    with pytest.raises(RetryLater, match="InProgress"):
        env.vaults.inventory_blocks(vault, job)
    assert env.advance(DURATIONS["inventory"]) == 1
    size = env.vaults.describe_job(vault, job)["InventorySizeInBytes"]  # type: ignore[index]

    blocks = list(env.vaults.inventory_blocks(vault, job, block_bytes=1024))
    assert len(blocks) == -(-size // 1024) > 2 and all(len(block) <= 1024 for block in blocks)
    assert sum(map(len, blocks)) == size
    items = list(iter_vault_inventory(iter(blocks), fmt))
    read = [item.result for item in items]
    assert all(isinstance(archive, VaultArchive) for archive in read)
    assert [a.archive_id for a in read] == archives  # type: ignore[union-attr]
    assert [a.size for a in read] == [len(body) for body in bodies]  # type: ignore[union-attr]
    assert [a.description for a in read] == DESCRIPTIONS  # type: ignore[union-attr]
    assert [a.tree_hash for a in read] == [botocore_tree_hash(body) for body in bodies]  # type: ignore[union-attr]

    cursor = items[4].next_cursor  # resume after the fifth entry, from its byte on
    rest = iter_vault_inventory(env.vaults.inventory_blocks(vault, job, start=cursor.offset, block_bytes=1024), fmt, cursor)
    assert [item.result.archive_id for item in rest] == archives[5:]  # type: ignore[union-attr]

    env.emulator.expire_output(job)
    with pytest.raises(OutputExpired):
        env.vaults.inventory_blocks(vault, job)
