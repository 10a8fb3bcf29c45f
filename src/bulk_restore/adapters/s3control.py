"""S3 Batch Operations (s3control): create, describe and cancel the batch engine's jobs."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from bulk_restore.domain.batch import MANIFEST_FORMAT, OPERATION, REPORT_FORMAT, manifest_fields


def without_account_label(request: Any, **_: Any) -> None:
    """before-sign handler: send to the endpoint's own host, without the ``{account}.`` label."""
    parts = urlsplit(request.url)
    label, dot, rest = parts.netloc.partition(".")
    if dot and re.fullmatch(r"\d{12}", label):
        request.url = urlunsplit(parts._replace(netloc=rest))


class BatchOperations:
    """One account's S3 Batch Operations jobs, run with ``role_arn``.

    With ``endpoint_url`` (the local stack's AWS endpoint) requests go to that host itself:
    botocore's endpoint rules put the account in front of it (``123456789012.127.0.0.1``, which
    does not resolve), and the label is taken off again before the request is signed.
    """

    def __init__(self, account_id: str, role_arn: str, client: Any = None, endpoint_url: str | None = None):
        self.account_id = account_id
        self.role_arn = role_arn
        if client is None:
            client = boto3.client("s3control", config=Config(retries={"max_attempts": 8, "mode": "standard"}), endpoint_url=endpoint_url)
            if endpoint_url:
                client.meta.events.register("before-sign.s3-control", without_account_label)
        self.client = client

    def create_restore_job(
        self,
        *,
        token: str,
        manifest_bucket: str,
        manifest_key: str,
        manifest_etag: str,
        versioned: bool,
        tier: str,
        expiration_days: int | None,
        report_bucket: str,
        report_prefix: str,
        description: str,
        tags: dict[str, str],
    ) -> str:
        """CreateJob for an S3InitiateRestoreObject job; the same ``token`` answers the same job id."""
        operation: dict[str, Any] = {"GlacierJobTier": tier}
        if expiration_days is not None:
            operation["ExpirationInDays"] = expiration_days
        response = self.client.create_job(
            AccountId=self.account_id,
            ConfirmationRequired=False,
            Operation={OPERATION: operation},
            Report={
                "Bucket": f"arn:aws:s3:::{report_bucket}",
                "Prefix": report_prefix,
                "Format": REPORT_FORMAT,
                "Enabled": True,
                "ReportScope": "AllTasks",
            },
            ClientRequestToken=token,
            Manifest={
                "Spec": {"Format": MANIFEST_FORMAT, "Fields": manifest_fields(versioned)},
                "Location": {"ObjectArn": f"arn:aws:s3:::{manifest_bucket}/{manifest_key}", "ETag": manifest_etag.strip('"')},
            },
            Description=description[:256],
            Priority=10,
            RoleArn=self.role_arn,
            Tags=[{"Key": k, "Value": v} for k, v in tags.items() if v],
        )
        return str(response["JobId"])

    def describe(self, batch_job_id: str) -> dict[str, Any]:
        """The Batch job's Status, FailureReasons, ProgressSummary and Report; {} when it is unknown."""
        try:
            return dict(self.client.describe_job(AccountId=self.account_id, JobId=batch_job_id)["Job"])
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchJob", "NotFoundException"):
                return {}
            raise

    def confirm(self, batch_job_id: str) -> bool:
        """Let a Batch job waiting for confirmation (Suspended) run; False when it is not waiting."""
        try:
            self.client.update_job_status(
                AccountId=self.account_id, JobId=batch_job_id, RequestedJobStatus="Ready", StatusUpdateReason="confirmed by bulk-restore"
            )
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("JobStatusException", "NoSuchJob", "NotFoundException"):
                return False
            raise

    def cancel(self, batch_job_id: str, reason: str) -> bool:
        """Ask the Batch job to stop; False when it has already ended (nothing to cancel)."""
        try:
            self.client.update_job_status(
                AccountId=self.account_id, JobId=batch_job_id, RequestedJobStatus="Cancelled", StatusUpdateReason=reason[:256]
            )
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("JobStatusException", "NoSuchJob", "NotFoundException"):
                return False
            raise
