"""Restore-completed events, in the shapes S3 delivers them.

1. S3 event notifications (to SQS directly, or through SNS): ``Records[].s3.object.key`` is
   form-URL-encoded ("red flower.jpg" arrives as "red+flower.jpg").
2. EventBridge ("Object Restore Completed"): ``detail.object.key``. AWS does not document an
   encoding for it, so we try the key as given first; its form-decoded spelling second, and
   only when S3 confirms that object is restored (else "a+b.txt" could complete "a b.txt").

Version ``null`` is a real version id: the one objects written before versioning was enabled
carry (S3 Batch manifests and events spell it ``null``). An event for it names the row
``b,k,null`` and the row ``b,k`` (the current version); an event with no version at all (an
unversioned bucket, whose objects are all the null version) names both as well.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import unquote_plus

from bulk_restore.domain.model import object_ref


class UnrecognisedEvent(ValueError):
    """A message that is no S3 event at all: it goes to the dead-letter queue, where a person can see it."""


@dataclass(frozen=True, slots=True)
class RestoreCompleted:
    bucket: str
    keys: tuple[str, ...]  # spellings to try, most likely first
    version_id: str | None
    expiry: str = ""
    literal_keys: int = 1  # how many of ``keys`` are certain; later ones need S3's confirmation
    at: str = ""  # when S3 completed the restore (the event's time, ISO 8601), if it says

    def literal_refs(self, versioned: bool | None = None) -> list[str]:
        return RestoreCompleted(self.bucket, self.keys[: self.literal_keys], self.version_id).candidate_refs(versioned)

    def candidate_refs(self, versioned: bool | None = None) -> list[str]:
        """Refs this event may stand for: each spelling, with its version and as "current version".

        ``versioned``: the job's manifest rows all have a version id (True) or none has (False); a
        job's refs are then of that one form only. None: not known, both forms."""
        version = self.version_id if self.version_id and self.version_id != NULL_VERSION else NULL_VERSION
        refs: list[str] = []
        for key in self.keys:
            if versioned is not False:
                refs.append(object_ref(self.bucket, key, version))
            if versioned is not True:
                refs.append(object_ref(self.bucket, key, None))
        return list(dict.fromkeys(refs))

    def literal_ref(self, versioned: bool) -> str:
        """The ref the event's certain spelling names in a job whose rows are all versioned, or all not."""
        return self.literal_refs(versioned)[0]


NULL_VERSION = "null"


def _version(value: object) -> str | None:
    return str(value) if value else None


def parse_message(body: str) -> list[RestoreCompleted]:
    """Parse one queue message body into the restore completions it carries (often none)."""
    try:
        doc = json.loads(body)
    except (TypeError, ValueError) as exc:
        raise UnrecognisedEvent(f"message body is not JSON: {body[:100]!r}") from exc
    if not isinstance(doc, dict):
        raise UnrecognisedEvent("message body is not a JSON object")
    if doc.get("Type") == "Notification" and isinstance(doc.get("Message"), str):  # S3 -> SNS -> SQS
        return parse_message(doc["Message"])
    if "Records" in doc:
        completions = []
        for record in doc.get("Records") or []:
            name = str(record.get("eventName", ""))
            if not name.endswith("ObjectRestore:Completed"):
                continue
            s3 = record.get("s3", {})
            key = str(s3.get("object", {}).get("key", ""))
            restore = record.get("glacierEventData", {}).get("restoreEventData", {})
            completions.append(
                RestoreCompleted(
                    bucket=str(s3.get("bucket", {}).get("name", "")),
                    keys=(unquote_plus(key),),
                    version_id=_version(s3.get("object", {}).get("versionId")),
                    expiry=str(restore.get("lifecycleRestorationExpiryTime", "")),
                    at=str(record.get("eventTime", "")),
                )
            )
        return completions
    if doc.get("Event") == "s3:TestEvent":
        return []
    if doc.get("source") == "aws.s3" and "detail-type" in doc:
        if doc["detail-type"] != "Object Restore Completed":
            return []
        detail = doc.get("detail", {})
        key = str(detail.get("object", {}).get("key", ""))
        return [
            RestoreCompleted(
                bucket=str(detail.get("bucket", {}).get("name", "")),
                keys=tuple(dict.fromkeys((key, unquote_plus(key)))),
                version_id=_version(detail.get("object", {}).get("version-id")),
                expiry=str(detail.get("restore-expiry-time", "")),
                at=str(doc.get("time", "")),
            )
        ]
    raise UnrecognisedEvent(f"not an S3 restore event: {body[:100]!r}")


@dataclass(frozen=True, slots=True)
class BatchStatusChanged:
    """An S3 Batch Operations job's status change, as CloudTrail delivers it through EventBridge."""

    batch_job_id: str
    status: str
    failure_codes: tuple[str, ...] = ()
    reason: str = ""


def parse_batch_status(body: str) -> BatchStatusChanged | None:
    """The Batch job status change a queue message carries, or None when it carries none."""
    try:
        doc = json.loads(body)
    except (TypeError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("source") != "aws.s3" or doc.get("detail-type") != "AWS Service Event via CloudTrail":
        return None
    detail = doc.get("detail") or {}
    if detail.get("eventName") not in ("JobStatusChanged", "JobCreated"):
        return None
    service = detail.get("serviceEventDetails") or {}
    job_id, status = str(service.get("jobId") or ""), str(service.get("status") or "")
    if not job_id or not status:
        return None
    codes = service.get("failureCodes") or []
    if isinstance(codes, str):
        codes = [codes]
    return BatchStatusChanged(job_id, status, tuple(str(c) for c in codes), str(service.get("statusChangeReason") or ""))


@dataclass(frozen=True, slots=True)
class VaultJobNotice:
    """A Glacier vault job's completion notice: the DescribeJob document Glacier publishes to the
    job's SNS topic (Glacier developer guide, "Configuring Vault Notifications"), delivered to SQS
    in SNS's envelope or raw."""

    job_id: str
    action: str  # ArchiveRetrieval, InventoryRetrieval
    vault: str  # the vault's name, from VaultARN
    archive_id: str
    succeeded: bool
    status_message: str = ""
    size: int = 0  # ArchiveSizeInBytes, or InventorySizeInBytes
    tree_hash: str = ""  # ArchiveSHA256TreeHash: the whole archive's, as Glacier stored it
    byte_range: str = ""


def vault_name(vault_arn: str) -> str:
    """``arn:aws:glacier:<region>:<account>:vaults/<name>`` -> ``<name>``."""
    return vault_arn.split(":vaults/", 1)[1] if ":vaults/" in vault_arn else ""


def parse_vault_notice(body: str) -> VaultJobNotice | None:
    """The vault job notice a queue message carries, or None when it carries none."""
    try:
        doc = json.loads(body)
        if isinstance(doc, dict) and doc.get("Type") == "Notification" and isinstance(doc.get("Message"), str):
            doc = json.loads(doc["Message"])
    except (TypeError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("Action") not in ("ArchiveRetrieval", "InventoryRetrieval") or not doc.get("JobId"):
        return None
    archive = doc.get("Action") == "ArchiveRetrieval"
    size = doc.get("ArchiveSizeInBytes") if archive else doc.get("InventorySizeInBytes")
    return VaultJobNotice(
        job_id=str(doc["JobId"]),
        action=str(doc["Action"]),
        vault=vault_name(str(doc.get("VaultARN") or "")),
        archive_id=str(doc.get("ArchiveId") or ""),
        succeeded=doc.get("StatusCode") == "Succeeded",
        status_message=str(doc.get("StatusMessage") or ""),
        size=int(size or 0),
        tree_hash=str(doc.get("ArchiveSHA256TreeHash") or doc.get("SHA256TreeHash") or ""),
        byte_range=str(doc.get("RetrievalByteRange") or ""),
    )
