"""Restore-completed events in the shapes S3 delivers them (the samples in events/)."""

from __future__ import annotations

import json

import pytest

from bulk_restore.domain.events import RestoreCompleted, UnrecognisedEvent, parse_message
from bulk_restore.domain.model import object_ref
from support import samples


def bodies(name: str) -> list[str]:
    return [r["body"] for r in samples.sqs_event(name)["Records"]]


def test_an_s3_notification_has_its_form_encoded_keys_decoded() -> None:
    # Given the sample: "photos/red+flower.jpg" and "photos/a%2Bb+c%2C%22d%22.jpg" (versionId "null")
    (body,) = bodies("completion_s3_notification.json")
    # When it is parsed
    first, second = parse_message(body)
    # Then + is a space, %2B a plus, "null" the null version, and the event's time is kept
    assert first == RestoreCompleted(
        "archive-bkt", ("photos/red flower.jpg",), None, "2026-03-09T00:00:00.000Z", at="2026-03-02T10:15:08.000Z"
    )
    assert second.keys == ('photos/a+b c,"d".jpg',) and second.version_id == "null"


def test_an_eventbridge_event_tries_the_key_as_given_first() -> None:
    (body,) = bodies("completion_eventbridge.json")
    (event,) = parse_message(body)
    assert event.bucket == "archive-bkt"
    assert event.keys == ("photos/red flower.jpg",)
    assert event.version_id == "IYV3p45BT0ac8hjHg1houSdS1a.Mro8e"
    assert event.expiry == "2026-03-09T00:00:00Z"


def test_an_eventbridge_key_that_may_be_encoded_gives_both_spellings() -> None:
    (event,) = parse_message(samples.eventbridge_completed("archive-bkt", "a+b%2B.txt"))
    assert event.keys == ("a+b%2B.txt", "a b+.txt")


def test_an_s3_notification_wrapped_by_sns_is_unwrapped() -> None:
    (body,) = bodies("completion_sns_s3_notification.json")
    (event,) = parse_message(body)
    assert event.bucket == "archive-bkt" and event.keys == ("photos/red flower.jpg",)


def test_the_s3_test_event_carries_no_completion() -> None:
    (body,) = bodies("completion_s3_test_event.json")
    assert parse_message(body) == []


def test_other_s3_events_in_a_notification_are_ignored() -> None:
    doc = samples.body("completion_s3_notification.json")
    doc["Records"][0]["eventName"] = "ObjectCreated:Put"
    doc["Records"][1]["eventName"] = "ObjectRestore:Post"
    assert parse_message(json.dumps(doc)) == []


@pytest.mark.parametrize("detail_type", ["Object Restore Initiated", "Object Restore Expired", "Object Created"])
def test_other_eventbridge_s3_events_are_ignored(detail_type: str) -> None:
    doc = json.loads(samples.eventbridge_completed("archive-bkt", "k"))
    doc["detail-type"] = detail_type
    assert parse_message(json.dumps(doc)) == []


@pytest.mark.parametrize("body", ["not json", "[1, 2]", '"a string"', '{"foo": 1}', "", '{"source": "aws.ec2"}'])
def test_a_message_that_is_no_s3_event_is_unrecognised(body: str) -> None:
    with pytest.raises(UnrecognisedEvent):
        parse_message(body)


def test_an_sns_notification_of_something_else_is_unrecognised() -> None:
    with pytest.raises(UnrecognisedEvent):
        parse_message(samples.sns_wrapped("hello"))


@pytest.mark.parametrize("version", ["null", "", None])
def test_a_null_or_absent_version_names_the_null_version_row_and_the_current_version_row(version: str | None) -> None:
    # Given an event for an object written before versioning was enabled (or of an unversioned bucket)
    doc = json.loads(samples.eventbridge_completed("archive-bkt", "k"))
    doc["detail"]["object"]["version-id"] = version
    # When it is parsed
    (event,) = parse_message(json.dumps(doc))
    # Then it names both the row "archive-bkt,k,null" and the row "archive-bkt,k"
    assert event.candidate_refs() == [object_ref("archive-bkt", "k", "null"), object_ref("archive-bkt", "k", None)]


def test_an_event_with_a_real_version_does_not_name_the_null_version() -> None:
    event = RestoreCompleted("b", ("k",), "v1")
    assert object_ref("b", "k", "null") not in event.candidate_refs()


@pytest.mark.parametrize(
    "stamp, expected",
    [
        ("2026-03-02T10:15:08.000Z", 1772446508.0),
        ("2026-03-02T10:15:08Z", 1772446508.0),
        ("2026-03-02T10:15:08.250000Z", 1772446508.25),
        ("1772446508.5", 1772446508.5),
        ("", None),
        ("yesterday", None),
    ],
)
def test_an_event_time_is_read_in_every_spelling_s3_and_eventbridge_use(stamp: str, expected: float | None) -> None:
    from bulk_restore.domain.timing import event_epoch

    assert event_epoch(stamp) == expected


def test_a_versioned_event_names_that_version_first_then_the_current_one() -> None:
    event = RestoreCompleted("b", ("a+b", "a b"), "v1")
    assert event.candidate_refs() == [
        object_ref("b", "a+b", "v1"),
        object_ref("b", "a+b", None),
        object_ref("b", "a b", "v1"),
        object_ref("b", "a b", None),
    ]


@pytest.mark.parametrize("shape", ["s3", "eventbridge", "sns"])
@pytest.mark.parametrize("key", ["red flower.jpg", "a+b.txt", "100%.txt", '日本/ü, "q".bin', "x" * 1024])
def test_every_shape_names_the_object_whatever_its_key(shape: str, key: str) -> None:
    (event,) = parse_message(samples.completion(shape, "archive-bkt", key, "v9"))
    assert object_ref("archive-bkt", key, "v9") in event.candidate_refs()
