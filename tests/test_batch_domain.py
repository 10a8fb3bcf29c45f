"""The batch engine's pure rules (domain/batch.py): manifest rows, parts, tokens, completion reports."""

from __future__ import annotations

import json

import pytest

from bulk_restore.domain.batch import (
    BatchEngineRefused,
    batch_tier,
    client_request_token,
    group_parts,
    iter_report_rows,
    manifest_row,
    parse_report_manifest,
    text_lines,
)
from bulk_restore.domain.events import parse_batch_status
from bulk_restore.domain.model import ObjectId, ObjectState, Tier

# The completion report's top-level manifest.json, as the S3 user guide shows it
# (https://docs.aws.amazon.com/AmazonS3/latest/userguide/batch-ops-examples-reports.html).
AWS_REPORT_MANIFEST = {
    "Format": "Report_CSV_20180820",
    "ReportCreationDate": "2019-04-05T17:48:39.725Z",
    "Results": [
        {
            "TaskExecutionStatus": "succeeded",
            "Bucket": "my-job-reports",
            "MD5Checksum": "83b1c4cbe93fc893f54053697e10fd6e",
            "Key": "job-f8fb9d89-a3aa-461d-bddc-ea6a1b131955/results/6217b0fab0de85c408b4be96aeaca9b195a7daa5.csv",
        },
        {
            "TaskExecutionStatus": "failed",
            "Bucket": "my-job-reports",
            "MD5Checksum": "22ee037f3515975f7719699e5c416eaa",
            "Key": "job-f8fb9d89-a3aa-461d-bddc-ea6a1b131955/results/b2ddad417e94331e9f37b44f1faf8c7ed5873f2e.csv",
        },
    ],
    "ReportSchema": "Bucket, Key, VersionId, TaskStatus, ErrorCode, HTTPStatusCode, ResultMessage",
}
# The guide's failed-task rows (a Lambda job): the HTTP status before the error code.
AWS_FAILED_ROWS = (
    'awsexamplebucket1,image_14975,,failed,200,PermanentFailure,"Lambda returned function error: {""errorMessage"":""2019-04-05T17:35:21.155Z '
    '2845ca0d-38d9-4c4b-abcf-379dc749c452 Task timed out after 3.00 seconds""}"\n'
)
SCHEMA = [name.strip() for name in AWS_REPORT_MANIFEST["ReportSchema"].split(",")]


def test_the_report_manifest_of_the_user_guide_is_read() -> None:
    report = parse_report_manifest(json.dumps(AWS_REPORT_MANIFEST).encode())
    assert report.schema == tuple(SCHEMA)
    assert [status for _, _, status in report.results] == ["succeeded", "failed"]
    assert report.results[1][1].endswith("b2ddad417e94331e9f37b44f1faf8c7ed5873f2e.csv")
    for bad, says in (
        (b"{", "not JSON"),
        (json.dumps({"Format": "Other"}).encode(), "Report_CSV_20180820"),
        (json.dumps({"Format": "Report_CSV_20180820", "Results": [{"Bucket": "b"}]}).encode(), "names no Key"),
    ):
        with pytest.raises(ValueError, match=says):
            parse_report_manifest(bad)


def test_report_rows_are_read_in_the_schema_s_order_and_in_the_guide_s_sample_order() -> None:
    (guide,) = list(iter_report_rows(SCHEMA, text_lines([AWS_FAILED_ROWS.encode()])))
    assert guide.object == ObjectId("awsexamplebucket1", "image_14975", None)
    assert not guide.succeeded and guide.error_code == "PermanentFailure" and guide.http_status == 200
    assert "Task timed out after 3.00 seconds" in guide.message
    schema_order = (
        'src,dir/a%20b%2Bc.txt,v1,failed,InvalidObjectState,403,"Restore is not allowed for the object\'s current storage class"\n'
    )
    (row,) = list(iter_report_rows(SCHEMA, [schema_order]))
    assert row.object == ObjectId("src", "dir/a b+c.txt", "v1")
    assert (row.error_code, row.http_status) == ("InvalidObjectState", 403)
    outcome = row.outcome()  # as the direct engine: not archived, readable now
    assert outcome is not None and outcome.state is ObjectState.SKIPPED and outcome.reason.startswith("readable now")
    other_order = 'src,k,,failed,403,InvalidObjectState,"msg"\n'
    (swapped,) = list(iter_report_rows(SCHEMA, [other_order]))
    assert (swapped.error_code, swapped.http_status) == ("InvalidObjectState", 403)
    reordered = ["TaskStatus", "Key", "Bucket", "HTTPStatusCode", "ErrorCode", "VersionId", "ResultMessage"]
    (moved,) = list(iter_report_rows(reordered, ["failed,k%2F1,src,404,NoSuchKey,,gone\n"]))
    assert moved.object == ObjectId("src", "k/1", None) and moved.error_code == "NoSuchKey" and moved.http_status == 404
    missing = moved.outcome()
    assert missing is not None and missing.state is ObjectState.FAILED and missing.reason.startswith("NoSuchKey: no such key")


def test_a_task_that_started_a_restore_or_found_one_running_fails_nothing() -> None:
    rows = [
        "src,a,,succeeded,,202,Successful\n",
        "src,b,,succeeded,,200,Successful\n",
        "src,c,,failed,RestoreAlreadyInProgress,409,Object restore is already in progress\n",
    ]
    assert [task.outcome() for task in iter_report_rows(SCHEMA, rows)] == [None, None, None]


def test_a_header_row_and_a_quoted_newline_are_read_as_csv() -> None:
    text = ",".join(SCHEMA) + '\nsrc,"two\nlines",,failed,AccessDenied,403,"no"\n'
    blocks = [text.encode()[i : i + 7] for i in range(0, len(text.encode()), 7)]
    (row,) = list(iter_report_rows(SCHEMA, text_lines(blocks)))
    assert row.object.key == "two\nlines" and row.error_code == "AccessDenied"


def test_manifest_rows_are_url_encoded_with_versions_on_every_row_or_none() -> None:
    assert manifest_row(ObjectId("b", "a b/ü+x,y.txt"), versioned=False) == "b,a%20b/%C3%BC%2Bx%2Cy.txt\n"
    assert manifest_row(ObjectId("b", "k", "3HL4kqtJlcpXroDTDmJ"), versioned=True) == "b,k,3HL4kqtJlcpXroDTDmJ\n"


def test_parts_join_whole_fragments_of_at_least_the_minimum_but_the_last() -> None:
    assert group_parts([3, 3, 0, 3, 1], min_part=5) == [[0, 1], [3, 4]]
    assert group_parts([10, 1], min_part=5) == [[0], [1]]  # the last part may be smaller
    assert group_parts([1, 1], min_part=5) == [[0, 1]]
    assert group_parts([0, 0], min_part=5) == []
    sizes = [7, 2, 9, 1, 1, 6, 3]
    parts = group_parts(sizes, min_part=5)
    assert [i for part in parts for i in part] == list(range(len(sizes)))
    assert all(sum(sizes[i] for i in part) >= 5 for part in parts[:-1])


def test_tokens_are_stable_per_job_and_run_and_tiers_exclude_expedited() -> None:
    assert client_request_token("j", "archive") == client_request_token("j", "archive")
    assert client_request_token("j", "archive") != client_request_token("j", "intelligent-tiering")
    assert len(client_request_token("j" * 40, "archive")) <= 64
    assert batch_tier(Tier.BULK) == "BULK" and batch_tier(Tier.STANDARD) == "STANDARD"
    with pytest.raises(BatchEngineRefused, match='use engine "direct" for EXPEDITED'):
        batch_tier(Tier.EXPEDITED)


def test_cloudtrail_status_events_are_recognised() -> None:
    event = {
        "version": "0",
        "detail-type": "AWS Service Event via CloudTrail",
        "source": "aws.s3",
        "detail": {
            "eventSource": "s3.amazonaws.com",
            "eventName": "JobStatusChanged",
            "serviceEventDetails": {
                "jobId": "8b7d1f2a",
                "jobArn": "arn:aws:s3:us-east-1:1:job/8b7d1f2a",
                "status": "Failed",
                "jobEventId": "e1",
                "failureCodes": ["TaskFailureRateExceeded"],
                "statusChangeReason": [],
            },
        },
    }
    status = parse_batch_status(json.dumps(event))
    assert status is not None and (status.batch_job_id, status.status, status.failure_codes) == (
        "8b7d1f2a",
        "Failed",
        ("TaskFailureRateExceeded",),
    )
    assert parse_batch_status(json.dumps({"source": "aws.s3", "detail-type": "Object Restore Completed"})) is None
    assert parse_batch_status("not json") is None
