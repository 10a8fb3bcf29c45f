"""Domain errors. Adapters raise them; the API maps them to HTTP answers in one place."""

from __future__ import annotations

from typing import Any


class BulkRestoreError(Exception):
    code = "Error"

    def __init__(self, message: str, details: dict[str, Any] | list[Any] | None = None):
        super().__init__(message)
        self.message = message
        self.details = details or {}


class InvalidRequest(BulkRestoreError):
    code = "InvalidRequest"


class ManifestUnreadable(BulkRestoreError):
    code = "ManifestUnreadable"


class JobNotFound(BulkRestoreError):
    code = "JobNotFound"


class ManifestChanged(BulkRestoreError):
    code = "ManifestChanged"


class JobAlreadyFinished(BulkRestoreError):
    code = "JobAlreadyFinished"


class BucketNotAllowed(BulkRestoreError):
    code = "BucketNotAllowed"


class RequestTooLarge(BulkRestoreError):
    code = "RequestTooLarge"


class ManifestLocationNotAllowed(ManifestUnreadable):
    """The manifest is outside the stack's manifest buckets: it is never read."""

    code = "ManifestLocationNotAllowed"


class IdempotencyKeyMismatch(BulkRestoreError):
    """An idempotency key (or client_token) sent again with another request than the one that made its job."""

    code = "IdempotencyKeyMismatch"


class EstimateOverMaxCost(BulkRestoreError):
    """A create-job with max_cost_usd whose estimate at its tier is above it: nothing was created."""

    code = "EstimateOverMaxCost"
