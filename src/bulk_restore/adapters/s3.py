"""Amazon S3: manifests, restore requests, and the bucket's EventBridge switch."""

from __future__ import annotations

import io
import random
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, cast

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from bulk_restore.domain.errors import BucketNotAllowed, ManifestChanged, ManifestLocationNotAllowed, ManifestUnreadable
from bulk_restore.domain.model import ManifestLocation, ObjectId, ObjectOutcome, ObjectState, Tier
from bulk_restore.domain.outcomes import THROTTLING, RetryLater, classify
from bulk_restore.domain.vault import META_TREE_HASH as TREE_HASH_METADATA

if TYPE_CHECKING:
    from mypy_boto3_s3.literals import StorageClassType
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef, NotificationConfigurationTypeDef

SAMPLE_BYTES = 64 * 1024
READ_BLOCK = 256 * 1024


def _code(exc: ClientError) -> tuple[int, str, str]:
    err = exc.response.get("Error", {})
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    return status, str(err.get("Code", "")), str(err.get("Message", ""))


BUCKET_REFUSED = ObjectOutcome(ObjectState.FAILED, "BucketNotAllowed: this stack may not restore from this bucket (AllowedBuckets)")


def manifest_location_refused(bucket: str, manifest_buckets: tuple[str, ...]) -> ManifestLocationNotAllowed:
    """The 403 for a manifest outside the stack's manifest buckets, saying where manifests go."""
    if not manifest_buckets:
        return ManifestLocationNotAllowed(
            "this stack has no manifest bucket configured (MANIFEST_BUCKETS): redeploy it from template.yaml", {"bucket": bucket}
        )
    others = f" (or one of the ManifestBuckets parameter's buckets: {', '.join(manifest_buckets[1:])})" if len(manifest_buckets) > 1 else ""
    return ManifestLocationNotAllowed(
        f"manifests are read only from this stack's manifest bucket: upload the manifest to s3://{manifest_buckets[0]}/{others}"
        f" and send that bucket and key; bucket {bucket!r} is not one of them",
        {"bucket": bucket, "manifest_buckets": list(manifest_buckets)},
    )


class S3Gateway:
    """The only place that talks to S3. It touches source objects only in ``allowed_buckets`` (None:
    any) and reads manifests only from ``manifest_buckets`` (None: any), whatever a manifest says."""

    def __init__(
        self,
        client: Any = None,
        max_connections: int = 10,
        allowed_buckets: frozenset[str] | None = None,
        manifest_buckets: tuple[str, ...] | None = None,
    ):
        self.allowed_buckets = allowed_buckets
        self.manifest_buckets = manifest_buckets
        # Retries of throttling answers are ours (with backoff and jitter), not botocore's: a
        # worker must see throttling to slow down. The pool holds a connection per restore
        # thread: with fewer, urllib3 discards the extra ones ("Connection pool is full") and
        # the next requests open new ones.
        config = Config(retries={"max_attempts": 1, "mode": "standard"}, max_pool_connections=max(10, max_connections))
        self.client = client or boto3.client("s3", config=config)

    # ---- manifests -------------------------------------------------------------------------

    def inspect_manifest(self, bucket: str, key: str) -> tuple[ManifestLocation, bytes]:
        """Head the manifest and read its first bytes. Raises ManifestUnreadable saying why."""
        self.check_manifest_location(bucket)
        try:
            head = self.client.head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            status, code, _ = _code(exc)
            if status == 404 or code in ("NoSuchKey", "NotFound", "NoSuchBucket"):
                raise ManifestUnreadable(f"manifest s3://{bucket}/{key} does not exist", {"bucket": bucket, "key": key}) from exc
            if status == 403 or code in ("AccessDenied", "Forbidden"):
                raise ManifestUnreadable(
                    f"no access to manifest s3://{bucket}/{key}: allow this stack's functions s3:GetObject on it",
                    {"bucket": bucket, "key": key},
                ) from exc
            if status == 301 or code in ("PermanentRedirect",):
                raise ManifestUnreadable(f"manifest bucket {bucket} is in another region than this stack") from exc
            raise
        if head.get("StorageClass") in ("GLACIER", "DEEP_ARCHIVE") and 'ongoing-request="false"' not in head.get("Restore", ""):
            raise ManifestUnreadable(
                f"manifest s3://{bucket}/{key} is itself archived ({head['StorageClass']}): store it in a readable class"
            )
        location = ManifestLocation(bucket, key, head.get("ETag", ""), int(head.get("ContentLength", 0)))
        if location.size == 0:
            return location, b""
        body = self.client.get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{SAMPLE_BYTES - 1}", IfMatch=location.etag)["Body"]
        return location, body.read()

    def stream_manifest(self, manifest: ManifestLocation, offset: int) -> Iterator[bytes]:
        """The manifest from ``offset`` on, block by block, refusing a manifest changed since the job began."""
        self.check_manifest_location(manifest.bucket)
        if manifest.size and offset >= manifest.size:
            return iter(())
        try:
            response = self.client.get_object(Bucket=manifest.bucket, Key=manifest.key, Range=f"bytes={offset}-", IfMatch=manifest.etag)
        except ClientError as exc:
            status, code, _ = _code(exc)
            if status == 412 or code == "PreconditionFailed":
                raise ManifestChanged(
                    f"manifest s3://{manifest.bucket}/{manifest.key} changed after the job was created: create a new job"
                ) from exc
            if status in (403, 404):
                raise ManifestUnreadable(f"manifest s3://{manifest.bucket}/{manifest.key} can no longer be read ({code})") from exc
            raise
        return response["Body"].iter_chunks(READ_BLOCK)

    def check_manifest_location(self, bucket: str) -> None:
        if self.manifest_buckets is not None and bucket not in self.manifest_buckets:
            raise manifest_location_refused(bucket, self.manifest_buckets)

    def may_touch(self, bucket: str) -> bool:
        """Whether this stack may restore, head or configure objects of ``bucket`` (AllowedBuckets)."""
        return self.allowed_buckets is None or bucket in self.allowed_buckets

    # ---- restores --------------------------------------------------------------------------

    def restore(self, obj: ObjectId, tier: Tier, days: int) -> ObjectOutcome:
        """One RestoreObject call. Raises RetryLater on throttling or no capacity."""
        if not self.may_touch(obj.bucket):
            return BUCKET_REFUSED
        request: dict[str, Any] = {"Days": days, "GlacierJobParameters": {"Tier": tier.value}}
        for with_days in (True, False):
            kwargs: dict[str, Any] = {"Bucket": obj.bucket, "Key": obj.key, "RestoreRequest": request}
            if obj.version_id:
                kwargs["VersionId"] = obj.version_id
            try:
                response = self.client.restore_object(**kwargs)
                return classify(response["ResponseMetadata"]["HTTPStatusCode"])
            except ClientError as exc:
                status, code, message = _code(exc)
                if with_days and code == "InvalidArgument" and "days" in message.lower():
                    # Intelligent-Tiering archive tiers take no Days: the object returns to Frequent Access.
                    request = {"GlacierJobParameters": {"Tier": tier.value}}
                    continue
                return classify(status, code, message)
        raise AssertionError("unreachable")

    def restore_with_retries(
        self,
        obj: ObjectId,
        tier: Tier,
        days: int,
        attempts: int = 8,
        pace: Callable[[], None] | None = None,
        refused: Callable[[str], None] | None = None,
    ) -> ObjectOutcome:
        """Restore, backing off with full jitter on throttling. Raises RetryLater if S3 still says not now.

        ``pace`` is called before each retry: a retry is a request too, and counts against the rate.
        ``refused`` is told the code of each "not now" answer (SlowDown, 503, no Expedited capacity).
        """
        for attempt in range(attempts):
            try:
                return self.restore(obj, tier, days)
            except RetryLater as exc:
                if refused is not None:
                    refused(exc.code)
                if attempt == attempts - 1:
                    raise
                time.sleep(min(5.0, 0.1 * 2**attempt) * random.random())
                if pace is not None:
                    pace()
        raise AssertionError("unreachable")

    def _head(self, obj: ObjectId) -> dict[str, Any]:
        """HeadObject of ``obj`` (its version when it names one). Throttling and 500/503 raise
        RetryLater; any other refusal is the ClientError for the caller to read."""
        kwargs: dict[str, Any] = {"Bucket": obj.bucket, "Key": obj.key}
        if obj.version_id:
            kwargs["VersionId"] = obj.version_id
        try:
            return dict(self.client.head_object(**kwargs))
        except ClientError as exc:
            status, code, _ = _code(exc)
            if code in THROTTLING or status in (500, 503):
                raise RetryLater(code or str(status)) from exc
            raise

    def _restore_seen(self, obj: ObjectId) -> str:
        """What one HeadObject shows of an object's restore: "done" or "running" (its ``Restore``
        header), else by its class: "archived" (no restore), "access tier" (Intelligent-Tiering,
        not archived: a finished restore looks the same), "readable" (not an archive class); or
        "missing", or "unknown" (no access, or not a bucket of this stack: never looked at)."""
        if not self.may_touch(obj.bucket):
            return "unknown"
        try:
            head = self._head(obj)
        except ClientError as exc:
            status, code, _ = _code(exc)
            if status == 404 or code in ("NoSuchKey", "NotFound", "NoSuchVersion"):
                return "missing"
            if status == 403:
                return "unknown"
            raise
        restore = head.get("Restore", "")
        if 'ongoing-request="false"' in restore:
            return "done"
        if 'ongoing-request="true"' in restore:
            return "running"
        if head.get("StorageClass") == "INTELLIGENT_TIERING" and not head.get("ArchiveStatus"):
            return "access tier"
        if head.get("StorageClass") not in ("GLACIER", "DEEP_ARCHIVE", "INTELLIGENT_TIERING"):
            return "readable"
        return "archived"

    def restore_status(self, obj: ObjectId) -> str:
        """Where an object's restore stands, by HeadObject: "restored" (readable now), "ongoing"
        (an archived object without a finished restore), "missing" or "unknown" (look again later)."""
        seen = self._restore_seen(obj)
        if seen in ("done", "access tier", "readable"):
            return "restored"
        if seen in ("running", "archived"):
            return "ongoing"
        return seen

    def holds_restore(self, obj: ObjectId) -> bool | None:
        """Whether S3 holds a restore of the object, running or done (HeadObject's ``Restore``).
        False when it holds none: an archived object nobody asked to restore, a readable one, or no
        object. None when it cannot tell: no access, or an Intelligent-Tiering object back in an
        access tier (a restore that already finished looks the same). Raises RetryLater on throttling."""
        seen = self._restore_seen(obj)
        if seen in ("unknown", "access tier"):
            return None
        return seen in ("done", "running")

    def archive_class(self, obj: ObjectId) -> tuple[str, ObjectOutcome | None]:
        """One HeadObject: the object's class for the batch engine (see ``_head_class``), or
        ("failed", outcome) for an object S3 cannot restore (missing, refused). Raises RetryLater
        on throttling. An object this stack may not head is left to the Batch job ("archive")."""
        if not self.may_touch(obj.bucket):
            return "failed", BUCKET_REFUSED
        try:
            return _head_class(self._head(obj)), None
        except ClientError as exc:
            status, code, message = _code(exc)
            if status == 404 or code in ("NoSuchKey", "NotFound", "NoSuchVersion", "NoSuchBucket"):
                what = "NoSuchBucket" if code == "NoSuchBucket" else "NoSuchVersion" if obj.version_id else "NoSuchKey"
                return "failed", classify(404, what, message)
            return "archive", None  # 403 and others: the Batch task will say

    def describe_object(self, obj: ObjectId) -> dict[str, Any]:
        """One HeadObject, for an estimate: {"kind": "archive" | "intelligent-tiering" | "restored" |
        "restoring" | "readable" (as ``_head_class``) | "missing" | "refused", "storage_class",
        "archive_status", "size"}. Raises RetryLater on throttling."""
        if not self.may_touch(obj.bucket):
            return {"kind": "refused", "storage_class": None, "archive_status": None, "size": 0}
        try:
            head = self._head(obj)
        except ClientError as exc:
            status, code, _ = _code(exc)
            missing = status == 404 or code in ("NoSuchKey", "NotFound", "NoSuchVersion", "NoSuchBucket")
            return {"kind": "missing" if missing else "refused", "storage_class": None, "archive_status": None, "size": 0}
        return {
            "kind": _head_class(head),
            "storage_class": head.get("StorageClass") or "STANDARD",
            "archive_status": head.get("ArchiveStatus"),
            "size": int(head.get("ContentLength") or 0),
        }

    # ---- notifications ---------------------------------------------------------------------

    def ensure_eventbridge(self, bucket: str) -> bool:
        """Turn on EventBridge notifications for a bucket, keeping every other notification it has.

        PutBucketNotificationConfiguration replaces the whole configuration, so read it first and
        write it back with EventBridgeConfiguration added. Returns True if it had to change.
        """
        if not self.may_touch(bucket):
            raise BucketNotAllowed(f"this stack may not configure bucket {bucket!r} (AllowedBuckets)", {"bucket": bucket})
        current = self.client.get_bucket_notification_configuration(Bucket=bucket)
        if "EventBridgeConfiguration" in current:
            return False
        kinds = ("TopicConfigurations", "QueueConfigurations", "LambdaFunctionConfigurations")
        # The configurations as GetBucketNotificationConfiguration returned them: the shapes PutBucket... takes.
        config = cast("NotificationConfigurationTypeDef", {k: current[k] for k in kinds if current.get(k)})
        config["EventBridgeConfiguration"] = {}
        self.client.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration=config, SkipDestinationValidation=True)
        return True

    # ---- the stack's own work files (Batch manifests and reports) ---------------------------

    def put_work_object(self, bucket: str, key: str, body: bytes) -> str:
        """Write one of the stack's own objects (never a source object); returns its ETag."""
        return str(self.client.put_object(Bucket=bucket, Key=key, Body=body, ContentType="text/csv")["ETag"])

    def list_work_objects(self, bucket: str, prefix: str) -> list[tuple[str, int]]:
        """(key, size) of the stack's objects under ``prefix``, in key order."""
        found: list[tuple[str, int]] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            found += [(item["Key"], int(item["Size"])) for item in page.get("Contents", [])]
        return sorted(found)

    def read_work_object(self, bucket: str, key: str, offset: int = 0) -> Iterator[bytes]:
        """One of the stack's objects (from byte ``offset``), block by block; empty when it does not exist."""
        try:
            if offset:
                body = self.client.get_object(Bucket=bucket, Key=key, Range=f"bytes={offset}-")["Body"]
            else:
                body = self.client.get_object(Bucket=bucket, Key=key)["Body"]
        except ClientError as exc:
            status, code, _ = _code(exc)
            if status in (404, 416) or code in ("NoSuchKey", "NotFound", "InvalidRange"):
                return iter(())
            raise
        return body.iter_chunks(READ_BLOCK)

    def write_work_object_stream(self, bucket: str, key: str, chunks: Iterable[bytes], part_bytes: int = 8 << 20) -> str:
        """Write one of the stack's own objects from ``chunks`` without holding it whole: one
        PutObject when it fits in one part, else a multipart upload of ``part_bytes`` parts (at
        least 5 MiB, S3's least but for the last), aborted when anything fails. Returns its ETag."""
        part_bytes = max(int(part_bytes), 5 << 20)
        buffer = bytearray()
        upload: str | None = None
        done: list[CompletedPartTypeDef] = []
        try:
            for chunk in chunks:
                buffer += chunk
                while len(buffer) > part_bytes:  # more than a part: this one is not the last
                    if upload is None:
                        upload = str(self.client.create_multipart_upload(Bucket=bucket, Key=key, ContentType="text/csv")["UploadId"])
                    number = len(done) + 1
                    etag = self.client.upload_part(
                        Bucket=bucket, Key=key, UploadId=upload, PartNumber=number, Body=bytes(buffer[:part_bytes])
                    )["ETag"]
                    done.append({"PartNumber": number, "ETag": etag})
                    del buffer[:part_bytes]
            if upload is None:
                return str(self.client.put_object(Bucket=bucket, Key=key, Body=bytes(buffer), ContentType="text/csv")["ETag"])
            number = len(done) + 1
            etag = self.client.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=number, Body=bytes(buffer))["ETag"]
            done.append({"PartNumber": number, "ETag": etag})
            return str(
                self.client.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": done})["ETag"]
            )
        except BaseException:
            if upload is not None:
                try:
                    self.client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload)
                except ClientError:
                    pass  # the error that stopped the upload is the one to report
            raise

    def join_work_objects(self, bucket: str, parts: list[list[str]], key: str) -> str:
        """Write ``key`` as the concatenation of the objects named, ``parts`` giving which go into
        each multipart part (each at least 5 MiB but the last); returns the new object's ETag."""
        if len(parts) <= 1:
            body = b"".join(b"".join(self.read_work_object(bucket, k)) for k in (parts[0] if parts else []))
            return self.put_work_object(bucket, key, body)
        upload = self.client.create_multipart_upload(Bucket=bucket, Key=key, ContentType="text/csv")["UploadId"]
        try:
            done: list[CompletedPartTypeDef] = []
            for number, keys in enumerate(parts, start=1):
                body = b"".join(b"".join(self.read_work_object(bucket, k)) for k in keys)
                etag = self.client.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=number, Body=body)["ETag"]
                done.append({"PartNumber": number, "ETag": etag})
            return str(
                self.client.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": done})["ETag"]
            )
        except Exception:
            self.client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload)
            raise

    # ---- vault archives into S3 ------------------------------------------------------------

    def begin_upload(self, bucket: str, key: str, storage_class: str, metadata: dict[str, str]) -> str:
        """CreateMultipartUpload with SHA-256 part checksums; the upload id."""
        return str(
            self.client.create_multipart_upload(
                Bucket=bucket,
                Key=key,
                StorageClass=cast("StorageClassType", storage_class),  # a target's class, checked at create (CreateJobRequest)
                Metadata=metadata,
                ChecksumAlgorithm="SHA256",
            )["UploadId"]
        )

    def upload_part(self, bucket: str, key: str, upload_id: str, number: int, body: bytes, sha256_b64: str) -> str:
        """UploadPart with its SHA-256 (S3 checks it on arrival); the part's ETag."""
        return str(
            self.client.upload_part(
                Bucket=bucket,
                Key=key,
                UploadId=upload_id,
                PartNumber=number,
                Body=body,
                ChecksumAlgorithm="SHA256",
                ChecksumSHA256=sha256_b64,
            )["ETag"]
        )

    def complete_upload(self, bucket: str, key: str, upload_id: str, parts: list[tuple[int, str, str]], tree_hash: str) -> None:
        """CompleteMultipartUpload of ``parts`` (number, ETag, SHA-256). Done already (another
        delivery completed it) is fine when the object there has this archive's tree hash."""
        completed: list[CompletedPartTypeDef] = [{"PartNumber": n, "ETag": etag, "ChecksumSHA256": sha} for n, etag, sha in parts]
        try:
            self.client.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": completed})
        except ClientError as exc:
            _, code, _ = _code(exc)
            if code != "NoSuchUpload" or self.stored_tree_hash(bucket, key) != tree_hash:
                raise

    def pending_uploads(self, bucket: str, key: str) -> list[str]:
        """Upload ids of the multipart uploads in progress for exactly ``key``, oldest first."""
        answer = self.client.list_multipart_uploads(Bucket=bucket, Prefix=key)
        uploads = sorted((u for u in answer.get("Uploads", []) if u["Key"] == key), key=lambda u: u["Initiated"])
        return [str(u["UploadId"]) for u in uploads]

    def put_small_object(self, bucket: str, key: str, body: bytes, storage_class: str, metadata: dict[str, str]) -> None:
        self.client.put_object(
            Bucket=bucket,
            Key=key,
            Body=body,
            StorageClass=cast("StorageClassType", storage_class),  # a target's class, checked at create (CreateJobRequest)
            Metadata=metadata,
            ChecksumAlgorithm="SHA256",
        )

    def abort_upload(self, bucket: str, key: str, upload_id: str) -> None:
        try:
            self.client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
        except ClientError as exc:
            if _code(exc)[1] != "NoSuchUpload":
                raise

    def stored_tree_hash(self, bucket: str, key: str) -> str | None:
        """The archive tree hash in the metadata of the object at ``key``, or None (no object)."""
        try:
            head = self.client.head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if _code(exc)[0] == 404:
                return None
            raise
        return str((head.get("Metadata") or {}).get(TREE_HASH_METADATA, "")) or None

    # ---- prefixes ----------------------------------------------------------------------------

    def check_listable(self, bucket: str) -> None:
        """Raise ManifestUnreadable saying why the stack cannot list ``bucket``."""
        try:
            self.client.list_objects_v2(Bucket=bucket, MaxKeys=1)
        except ClientError as exc:
            status, code, _ = _code(exc)
            if status == 404 or code == "NoSuchBucket":
                raise ManifestUnreadable(f"bucket {bucket} does not exist", {"bucket": bucket}) from exc
            if status == 403 or code in ("AccessDenied", "Forbidden"):
                raise ManifestUnreadable(
                    f"no access to list bucket {bucket}: allow this stack's functions s3:ListBucket on it", {"bucket": bucket}
                ) from exc
            raise

    def list_page(
        self, bucket: str, prefix: str, versions: bool, marker: dict[str, str], restore_status: bool = False
    ) -> tuple[list[dict[str, Any]], dict[str, str] | None]:
        """One page of a prefix's objects (every version with ``versions``): each {"Key", "VersionId",
        "StorageClass", "IsLatest", "DeleteMarker", "Size", "RestoreStatus"}, and the marker of the next
        page (None: the last). ``restore_status`` asks S3 for each object's RestoreStatus
        (OptionalObjectAttributes; S3 gives it for objects restored or restoring, None otherwise)."""
        if not self.may_touch(bucket):
            raise BucketNotAllowed(f"this stack may not list bucket {bucket!r} (AllowedBuckets)", {"bucket": bucket})
        optional = {"OptionalObjectAttributes": ["RestoreStatus"]} if restore_status else {}
        try:
            if versions:
                kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix, **optional}
                if marker.get("key"):
                    kwargs.update(KeyMarker=marker["key"], VersionIdMarker=marker.get("version", ""))
                page = self.client.list_object_versions(**kwargs)
                items = [
                    {
                        "Key": v["Key"],
                        "VersionId": v.get("VersionId"),
                        "StorageClass": v.get("StorageClass", "STANDARD"),
                        "IsLatest": v.get("IsLatest", True),
                        "DeleteMarker": False,
                        "Size": int(v.get("Size") or 0),
                        "RestoreStatus": v.get("RestoreStatus"),
                    }
                    for v in page.get("Versions", [])
                ]
                items += [
                    {
                        "Key": d["Key"],
                        "VersionId": d.get("VersionId"),
                        "StorageClass": None,
                        "IsLatest": d.get("IsLatest", True),
                        "DeleteMarker": True,
                        "Size": 0,
                        "RestoreStatus": None,
                    }
                    for d in page.get("DeleteMarkers", [])
                ]
                items.sort(key=lambda i: (i["Key"], not i["IsLatest"]))
                following = (
                    {"key": page["NextKeyMarker"], "version": page.get("NextVersionIdMarker", "")} if page.get("IsTruncated") else None
                )
                return items, following
            kwargs = {"Bucket": bucket, "Prefix": prefix, **optional}
            if marker.get("token"):
                kwargs["ContinuationToken"] = marker["token"]
            page = self.client.list_objects_v2(**kwargs)
            items = [
                {
                    "Key": o["Key"],
                    "VersionId": None,
                    "StorageClass": o.get("StorageClass", "STANDARD"),
                    "IsLatest": True,
                    "DeleteMarker": False,
                    "Size": int(o.get("Size") or 0),
                    "RestoreStatus": o.get("RestoreStatus"),
                }
                for o in page.get("Contents", [])
            ]
            return items, ({"token": page["NextContinuationToken"]} if page.get("IsTruncated") else None)
        except ClientError as exc:
            status, code, _ = _code(exc)
            if status in (403, 404):
                raise ManifestUnreadable(f"bucket {bucket} can no longer be listed ({code or status})") from exc
            raise

    # ---- S3 Inventory reports ----------------------------------------------------------------

    def read_inventory_manifest(self, bucket: str, key: str) -> tuple[ManifestLocation, bytes]:
        """An inventory report's manifest.json, whole (it lists files, not objects: small)."""
        location, sample = self.inspect_manifest(bucket, key)
        if location.size <= len(sample):
            return location, sample
        if location.size > MAX_INVENTORY_MANIFEST:
            raise ManifestUnreadable(f"s3://{bucket}/{key} is {location.size} bytes: no inventory manifest.json is that large")
        body = self.client.get_object(Bucket=bucket, Key=key, IfMatch=location.etag)["Body"]
        return location, body.read()

    def inventory_file(self, bucket: str, key: str, seekable: bool) -> Any:
        """An inventory data file: byte blocks (CSV), or a seekable file read by ranged GETs (Parquet)."""
        self.check_manifest_location(bucket)
        try:
            if seekable:
                size = int(self.client.head_object(Bucket=bucket, Key=key)["ContentLength"])
                return io.BufferedReader(RangedObject(self.client, bucket, key, size), buffer_size=RANGED_READ)
            return self.client.get_object(Bucket=bucket, Key=key)["Body"].iter_chunks(READ_BLOCK)
        except ClientError as exc:
            status, code, _ = _code(exc)
            if status in (403, 404):
                raise ManifestUnreadable(f"inventory data file s3://{bucket}/{key} cannot be read ({code or status})") from exc
            raise


MAX_INVENTORY_MANIFEST = 64 * 1024 * 1024
RANGED_READ = 8 * 1024 * 1024


class RangedObject(io.RawIOBase):
    """A read-only, seekable view of one S3 object, each read a ranged GET (for Parquet's footer-first reads)."""

    def __init__(self, client: Any, bucket: str, key: str, size: int):
        self.client, self.bucket, self.key, self.size = client, bucket, key, size
        self.position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.size}[whence]
        self.position = max(0, base + offset)
        return self.position

    def readinto(self, buffer: Any) -> int:
        if self.position >= self.size or len(buffer) == 0:
            return 0
        end = min(self.size, self.position + len(buffer)) - 1
        data = self.client.get_object(Bucket=self.bucket, Key=self.key, Range=f"bytes={self.position}-{end}")["Body"].read()
        buffer[: len(data)] = data
        self.position += len(data)
        return len(data)


def _head_class(head: dict[str, Any]) -> str:
    """What a HeadObject answer says of an object, for the batch engine's manifests: "restoring",
    "restored", "archive" (GLACIER, DEEP_ARCHIVE), "intelligent-tiering" (an archive access tier)
    or "readable" (in no archive)."""
    restore = head.get("Restore", "")
    if 'ongoing-request="true"' in restore:
        return "restoring"
    storage_class = head.get("StorageClass") or "STANDARD"
    if storage_class in ("GLACIER", "DEEP_ARCHIVE"):
        return "restored" if 'ongoing-request="false"' in restore else "archive"
    if storage_class == "INTELLIGENT_TIERING" and head.get("ArchiveStatus"):
        return "intelligent-tiering"
    return "readable"
