"""Amazon S3 Glacier vaults (the ``glacier`` API, 2012-06-01): vaults, retrieval jobs and their output.

It calls DescribeVault, InitiateJob (``archive-retrieval`` and ``inventory-retrieval``),
DescribeJob and GetJobOutput, and nothing else. What follows which source, all from the Amazon S3
Glacier Developer Guide's API reference:

- DescribeVault (api-vault-get): NumberOfArchives and SizeInBytes are those of the vault's last
  inventory, null before the first one.
- InitiateJob (api-initiate-job-post, api-jobParameters): Tier Expedited | Standard | Bulk;
  RetrievalByteRange "StartByte-EndByte", megabyte aligned; SNSTopic; Description. Its errors:
  InsufficientCapacityException (no Expedited capacity now), PolicyEnforcedException (the data
  retrieval policy's bytes per hour or free tier, data-retrieval-policy), LimitExceededException,
  ResourceNotFoundException (no such vault or archive), InvalidParameterValueException and
  MissingParameterValueException (a request Glacier will never accept).
- DescribeJob (api-describe-job-get): the job's document; an unknown job, or one whose output
  window has ended, is ResourceNotFoundException.
- GetJobOutput (api-job-output-get): ``Range: bytes=first-last`` (inclusive, relative to the job's
  output); the ``x-amz-sha256-tree-hash`` header (botocore's ``checksum``) comes for tree-hash
  aligned ranges of an archive (``domain.vault.is_tree_hash_aligned``), never for an inventory.
  An output is kept 24 hours after its job completes, then ResourceNotFoundException.
- Error responses (api-error-responses): ThrottlingException, RequestTimeoutException (408) and
  ServiceUnavailableException (500) are worth a retry; so is any 5xx.

Retries are the caller's (``RetryLater``), except for ``initiate_with_retries``; botocore makes one
attempt, so a caller sees throttling and can slow down. Tree hashes and inventories are read with
``domain.vault``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError, IncompleteReadError, ResponseStreamingError

from bulk_restore.domain.model import Tier
from bulk_restore.domain.outcomes import THROTTLING, RetryLater
from bulk_restore.domain.vault import (
    MIB,
    TreeHashMismatch,
    VaultInventoryError,
    check_tree_hash,
    is_tree_hash_aligned,
    tree_hash,
)

INVENTORY_BLOCK = 8 * MIB
TRANSIENT = THROTTLING | {
    "ThrottlingException",
    "LimitExceededException",
    "RequestTimeoutException",
    "ServiceUnavailableException",
    "InsufficientCapacityException",
    "PolicyEnforcedException",
}
REFUSED = frozenset({"InvalidParameterValueException", "MissingParameterValueException"})
NOT_FOUND = "ResourceNotFoundException"


class ArchiveNotFound(Exception):
    """The archive (or its vault) is not there: retrying cannot help."""

    def __init__(self, archive_id: str, message: str):
        super().__init__(f"archive {archive_id}: {message}")
        self.archive_id = archive_id
        self.message = message


class ArchiveRefused(Exception):
    """Glacier refuses the retrieval request as made (a bad parameter): retrying cannot help."""

    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class OutputExpired(Exception):
    """The job is unknown or its output window has ended: initiate a new job."""

    def __init__(self, job_id: str):
        super().__init__(f"job {job_id} is gone (its output is kept 24 hours after it completes): initiate a new job")
        self.job_id = job_id


class JobFailed(Exception):
    """The job ended without output."""

    def __init__(self, job_id: str, message: str):
        super().__init__(f"job {job_id} failed: {message}")
        self.job_id = job_id
        self.message = message


def _answer(exc: ClientError) -> tuple[int, str, str]:
    err = exc.response.get("Error", {})
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    return int(status or 0), str(err.get("Code", "")), str(err.get("Message", ""))


def _raise_if_transient(exc: ClientError) -> None:
    status, code, _ = _answer(exc)
    if code in TRANSIENT or status >= 500:
        raise RetryLater(code or str(status)) from exc


class GlacierVaults:
    """One account's Glacier vaults (``account_id`` "-": the caller's), by name."""

    def __init__(self, client: Any = None, endpoint_url: str | None = None, account_id: str = "-"):
        self._client = client
        self.endpoint_url = endpoint_url
        self.account_id = account_id

    @property
    def client(self) -> Any:
        if self._client is None:
            config = Config(retries={"total_max_attempts": 1, "mode": "standard"})
            self._client = boto3.client("glacier", endpoint_url=self.endpoint_url, config=config)
        return self._client

    def describe_vault(self, vault: str) -> dict[str, Any] | None:
        """{"name", "arn", "archives", "size"} (counts of the last inventory, None before one); None: no such vault."""
        try:
            answer = self.client.describe_vault(accountId=self.account_id, vaultName=vault)
        except ClientError as exc:
            if _answer(exc)[1] == NOT_FOUND:
                return None
            _raise_if_transient(exc)
            raise
        return {
            "name": answer["VaultName"],
            "arn": answer["VaultARN"],
            "archives": answer.get("NumberOfArchives"),
            "size": answer.get("SizeInBytes"),
        }

    def _initiate(self, vault: str, parameters: dict[str, Any], topic_arn: str | None, description: str) -> str:
        if topic_arn:
            parameters["SNSTopic"] = topic_arn
        if description:
            parameters["Description"] = description
        return str(self.client.initiate_job(accountId=self.account_id, vaultName=vault, jobParameters=parameters)["jobId"])

    def initiate_archive_retrieval(
        self,
        vault: str,
        archive_id: str,
        tier: Tier | str,
        topic_arn: str | None = None,
        description: str = "",
        byte_range: str | None = None,
    ) -> str:
        """InitiateJob for an archive (``byte_range`` "start-end", megabyte aligned; None: all of it); the job id.

        Raises RetryLater (no capacity, the retrieval policy, throttling), ArchiveNotFound or ArchiveRefused.
        """
        parameters: dict[str, Any] = {"Type": "archive-retrieval", "ArchiveId": archive_id, "Tier": Tier(str(tier)).value}
        if byte_range is not None:
            parameters["RetrievalByteRange"] = byte_range
        try:
            return self._initiate(vault, parameters, topic_arn, description)
        except ClientError as exc:
            _raise_if_transient(exc)
            _, code, message = _answer(exc)
            if code == NOT_FOUND:
                raise ArchiveNotFound(archive_id, message) from exc
            if code in REFUSED:
                raise ArchiveRefused(code, message) from exc
            raise

    def initiate_with_retries(
        self,
        vault: str,
        archive_id: str,
        tier: Tier | str,
        topic_arn: str | None = None,
        description: str = "",
        byte_range: str | None = None,
        *,
        attempts: int = 6,
        sleep: Callable[[float], None] = time.sleep,
        base_delay: float = 1.0,
        max_delay: float = 30.0,
    ) -> str:
        """``initiate_archive_retrieval``, sleeping ``base_delay * 2**n`` (at most ``max_delay``) after
        the n-th RetryLater; the last RetryLater is raised once ``attempts`` calls were made."""
        for attempt in range(attempts):
            try:
                return self.initiate_archive_retrieval(vault, archive_id, tier, topic_arn, description, byte_range)
            except RetryLater:
                if attempt >= attempts - 1:
                    raise
                sleep(min(max_delay, base_delay * 2**attempt))
        raise ValueError(f"attempts must be at least 1, not {attempts}")

    def initiate_inventory_retrieval(self, vault: str, fmt: str = "JSON", topic_arn: str | None = None, description: str = "") -> str:
        """InitiateJob for the vault's last inventory, JSON or CSV; the job id. Raises RetryLater when throttled."""
        try:
            return self._initiate(vault, {"Type": "inventory-retrieval", "Format": fmt}, topic_arn, description)
        except ClientError as exc:
            _raise_if_transient(exc)
            raise

    def describe_job(self, vault: str, job_id: str) -> dict[str, Any] | None:
        """DescribeJob's document; None when the job is unknown or its output window has ended."""
        try:
            answer = self.client.describe_job(accountId=self.account_id, vaultName=vault, jobId=job_id)
        except ClientError as exc:
            if _answer(exc)[1] == NOT_FOUND:
                return None
            _raise_if_transient(exc)
            raise
        answer.pop("ResponseMetadata", None)
        return dict(answer)

    def get_output_range(self, vault: str, job_id: str, start: int, end: int) -> tuple[bytes, str | None]:
        """Bytes ``start``-``end`` (inclusive) of a job's output, and Glacier's tree hash of them when it sent one.

        Raises OutputExpired, or RetryLater when throttled or when the body broke off.
        """
        try:
            answer = self.client.get_job_output(accountId=self.account_id, vaultName=vault, jobId=job_id, range=f"bytes={start}-{end}")
            with answer["body"] as body:
                data = body.read()
        except ClientError as exc:
            if _answer(exc)[1] == NOT_FOUND:
                raise OutputExpired(job_id) from exc
            _raise_if_transient(exc)
            raise
        except (IncompleteReadError, ResponseStreamingError) as exc:
            raise RetryLater(type(exc).__name__) from exc
        return data, answer.get("checksum") or None

    def get_verified_range(
        self, vault: str, job_id: str, start: int, end: int, archive_size: int, *, output_offset: int = 0
    ) -> tuple[bytes, str]:
        """Bytes ``start``-``end`` of an archive job's output and their tree hash, checked.

        ``output_offset``: the archive byte the output starts at (the job's RetrievalByteRange start).
        A tree-hash aligned range must come with Glacier's tree hash and match it; any range that
        comes with one is checked. Raises TreeHashMismatch (also for a short body).
        """
        aligned = is_tree_hash_aligned(output_offset + start, output_offset + end, archive_size)
        data, checksum = self.get_output_range(vault, job_id, start, end)
        what = f"job {job_id}, output bytes {start}-{end}"
        if len(data) != end - start + 1:
            raise TreeHashMismatch(
                f"{what}: {len(data)} bytes arrived instead of {end - start + 1}: the download is incomplete; read it again", "range"
            )
        computed = tree_hash(data)
        if aligned or checksum is not None:
            check_tree_hash(what, computed, checksum)
        return data, computed

    def inventory_blocks(self, vault: str, job_id: str, start: int = 0, block_bytes: int = INVENTORY_BLOCK) -> Iterator[bytes]:
        """A completed inventory job's output from byte ``start``, one ranged GetJobOutput per block.

        Raises (at once) OutputExpired, RetryLater("InProgress") or JobFailed; while streaming,
        OutputExpired, RetryLater, or VaultInventoryError when the output ends early.
        """
        if block_bytes < 1:
            raise ValueError("block_bytes must be at least 1")
        job = self.describe_job(vault, job_id)
        if job is None:
            raise OutputExpired(job_id)
        if job.get("Action") != "InventoryRetrieval":
            raise ValueError(f"job {job_id} is not an inventory retrieval")
        status = job.get("StatusCode")
        if status == "InProgress":
            raise RetryLater("InProgress")
        if status != "Succeeded":
            raise JobFailed(job_id, str(job.get("StatusMessage") or status))
        return self._blocks(vault, job_id, start, int(job.get("InventorySizeInBytes") or 0), block_bytes)

    def _blocks(self, vault: str, job_id: str, position: int, size: int, block_bytes: int) -> Iterator[bytes]:
        while position < size:
            data, _ = self.get_output_range(vault, job_id, position, min(size, position + block_bytes) - 1)
            if not data:
                raise VaultInventoryError(
                    f"the inventory of job {job_id} ends at byte {position}, not {size}: read it again from there", "document"
                )
            position += len(data)
            yield data
