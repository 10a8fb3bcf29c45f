"""How S3's answers to RestoreObject map to object states."""

from __future__ import annotations

import pytest

from bulk_restore.domain.model import ObjectState
from bulk_restore.domain.outcomes import RetryLater, classify


def test_202_means_a_restore_started() -> None:
    assert classify(202).state is ObjectState.RESTORING


def test_200_means_a_restored_copy_already_exists() -> None:
    outcome = classify(200)
    assert outcome.state is ObjectState.RESTORED and "already existed" in outcome.reason


@pytest.mark.parametrize(("status", "code"), [(409, "RestoreAlreadyInProgress"), (409, ""), (400, "RestoreAlreadyInProgress")])
def test_a_restore_already_in_progress_is_on_its_way_not_a_failure(status: int, code: str) -> None:
    outcome = classify(status, code)
    assert outcome.state is ObjectState.RESTORING and "in progress" in outcome.reason


@pytest.mark.parametrize("code", ["InvalidObjectState", "ObjectAlreadyInActiveTierError"])
def test_an_object_in_no_archive_class_is_skipped_it_is_readable_now(code: str) -> None:
    outcome = classify(403, code, "The operation is not valid for the object's storage class")
    assert outcome.state is ObjectState.SKIPPED and "readable" in outcome.reason


@pytest.mark.parametrize(
    ("status", "code", "says"),
    [
        (404, "NoSuchKey", "no such key"),
        (404, "NoSuchVersion", "no such version"),
        (404, "NoSuchBucket", "no such bucket"),
        (403, "AccessDenied", "access denied"),
        (301, "PermanentRedirect", "another region"),
        (400, "KMS.DisabledException", "KMS key"),
        (404, "", "NotFound"),
        (403, "", "access denied"),
        (418, "Teapot", "Teapot"),
    ],
)
def test_answers_that_retrying_cannot_change_fail_the_object_with_a_reason(status: int, code: str, says: str) -> None:
    outcome = classify(status, code)
    assert outcome.state is ObjectState.FAILED and says in outcome.reason
    if code:
        assert outcome.reason.startswith(code)


def test_a_rejected_request_carries_s3s_message() -> None:
    outcome = classify(400, "InvalidArgument", "Days must not be set for this storage class")
    assert outcome.state is ObjectState.FAILED and "Days must not be set" in outcome.reason


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (503, "SlowDown"),
        (400, "ThrottlingException"),
        (400, "Throttling"),
        (503, "GlacierExpeditedRetrievalNotAvailable"),
        (500, "InternalError"),
        (503, "ServiceUnavailable"),
        (503, ""),
        (500, ""),
    ],
)
def test_throttling_and_no_capacity_mean_retry_later_never_a_failure(status: int, code: str) -> None:
    with pytest.raises(RetryLater) as raised:
        classify(status, code)
    assert raised.value.code == (code or str(status))
