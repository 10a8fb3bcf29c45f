"""How S3's answers to RestoreObject map to object states."""

from __future__ import annotations

from bulk_restore.domain.model import ObjectOutcome, ObjectState

RESTORING = ObjectOutcome(ObjectState.RESTORING)
ALREADY_RESTORED = ObjectOutcome(ObjectState.RESTORED, "a restored copy already existed; its expiry was extended")
IN_PROGRESS = ObjectOutcome(ObjectState.RESTORING, "a restore of this object was already in progress")

# Error codes after which retrying cannot help, with what we tell the user.
_NOT_ARCHIVED = {"InvalidObjectState", "ObjectAlreadyInActiveTierError"}
_FAILURES = {
    "NoSuchKey": "no such key in the bucket",
    "NoSuchVersion": "no such version of the key",
    "NoSuchBucket": "no such bucket",
    "AccessDenied": "access denied: the restore role may not restore this object",
    "AllAccessDisabled": "access to the bucket is disabled",
    "InvalidBucketName": "invalid bucket name",
    "InvalidArgument": "S3 rejected the request",
    "InvalidRequest": "S3 rejected the request",
    "MalformedXML": "S3 rejected the request",
    "PermanentRedirect": "the bucket is in another region than this stack",
    "AuthorizationHeaderMalformed": "the bucket is in another region than this stack",
    "KMS.DisabledException": "the object's KMS key is disabled",
}
THROTTLING = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "ServiceUnavailable",
        "InternalError",
        "RequestTimeout",
    }
)
NO_CAPACITY = "GlacierExpeditedRetrievalNotAvailable"


class RetryLater(Exception):
    """The answer says: not now. Back off and try again; never a per-object failure by itself."""

    def __init__(self, code: str):
        super().__init__(code)
        self.code = code


def classify(status: int, code: str = "", message: str = "") -> ObjectOutcome:
    """Map one RestoreObject answer to an outcome, or raise RetryLater."""
    if status == 202:
        return RESTORING
    if status == 200:
        return ALREADY_RESTORED
    if code == "RestoreAlreadyInProgress" or status == 409:
        return IN_PROGRESS
    if code in _NOT_ARCHIVED:
        return ObjectOutcome(ObjectState.SKIPPED, "readable now: not in an archive storage class")
    if code in THROTTLING or code == NO_CAPACITY or status in (500, 503):
        raise RetryLater(code or str(status))
    if code in _FAILURES:
        detail = _FAILURES[code]
        if message and code in {"InvalidArgument", "InvalidRequest", "MalformedXML"}:
            detail = f"{detail}: {message}"
        return ObjectOutcome(ObjectState.FAILED, f"{code}: {detail}")
    if status == 404:
        return ObjectOutcome(ObjectState.FAILED, f"{code or 'NotFound'}: no such key or version")
    if status == 403:
        return ObjectOutcome(ObjectState.FAILED, f"{code or 'Forbidden'}: access denied")
    return ObjectOutcome(ObjectState.FAILED, f"{code or status}: {message or 'unexpected answer from S3'}")
