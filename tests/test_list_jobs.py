"""GET /jobs: the recent jobs, newest first, a page at a time, from one partition (no table scan)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from bulk_restore.domain.model import ObjectId
from support.api import call_api
from support.faults import CallTracer
from support.stack import DATA_BUCKET, Stack


def create_jobs(stack: Stack, count: int, **fields: Any) -> list[str]:
    """``count`` jobs, one after the other (oldest first)."""
    stack.put_archived("a.bin")
    bucket, key = stack.put_manifest([ObjectId(DATA_BUCKET, "a.bin")])
    return [stack.create_job(bucket, key, client_tag=f"tag-{n}", **fields)["BulkJobId"] for n in range(count)]


def pages(**query: str) -> list[dict[str, Any]]:
    """Every page of GET /jobs, following NextToken."""
    found, token = [], None
    while True:
        status, body = call_api("GET", "/jobs", query=dict(query, **({"next_token": token} if token else {})))
        assert status == 200, body
        found.append(body)
        token = body["NextToken"]
        if not token:
            return found


def test_no_jobs_is_an_empty_page(stack: Stack) -> None:
    assert call_api("GET", "/jobs") == (200, {"Jobs": [], "NextToken": None})


def test_jobs_are_listed_newest_first_page_by_page(stack: Stack) -> None:
    # Given five jobs created one after the other
    created = create_jobs(stack, 5, tier="bulk")
    # When they are listed two at a time
    listed = pages(limit="2")
    # Then every job comes once, newest first, over three pages
    assert [j["JobId"] for page in listed for j in page["Jobs"]] == created[::-1]
    assert [len(page["Jobs"]) for page in listed] == [2, 2, 1]
    # And each entry says what the job is, as GET /jobs/{id} says it
    newest = listed[0]["Jobs"][0]
    status, document = call_api("GET", f"/jobs/{newest['JobId']}")
    assert status == 200
    assert newest == {
        "JobId": created[-1],
        "Status": document["Status"],
        "Tier": "BULK",
        "ClientTag": "tag-4",
        "Source": "manifest",
        "Engine": "direct",
        "TotalFilesRequested": 1,
        "CreatedAt": document["CreatedAt"],
        "FinishedAt": None,
        "FailureReason": "",
    }


def test_the_listing_shows_each_job_s_current_status(stack: Stack) -> None:
    # Given a job that ran to its end and one that was cancelled
    done, cancelled = create_jobs(stack, 2)
    assert call_api("POST", f"/jobs/{cancelled}/cancel")[0] == 200
    stack.settle()
    stack.complete_restores()
    stack.settle()
    # When the jobs are listed
    (page,) = pages()
    # Then each shows its status now, and when it finished
    by_id = {j["JobId"]: j for j in page["Jobs"]}
    assert (by_id[done]["Status"], by_id[cancelled]["Status"]) == ("Complete", "Cancelled")
    assert by_id[done]["FinishedAt"] and by_id[cancelled]["FinishedAt"]


def test_the_default_page_is_20_jobs(stack: Stack) -> None:
    create_jobs(stack, 21)

    status, body = call_api("GET", "/jobs")

    assert status == 200 and len(body["Jobs"]) == 20 and body["NextToken"]


def test_a_job_whose_record_has_expired_is_left_out(stack: Stack) -> None:
    # Given three jobs, the middle one's record gone (DynamoDB's TTL removed it)
    first, gone, last = create_jobs(stack, 3)
    stack.ddb.delete_item(TableName=stack.table_name, Key={"pk": {"S": f"JOB#{gone}"}, "sk": {"S": "META"}})
    # When the jobs are listed
    (page,) = pages()
    # Then the others are there, and it is not
    assert [j["JobId"] for j in page["Jobs"]] == [last, first]


def test_listing_queries_one_partition_and_never_scans(stack: Stack) -> None:
    # Given jobs, and every AWS call of the API's services traced
    create_jobs(stack, 3)
    tracer = CallTracer().install(stack.services())
    # When the jobs are listed one at a time
    listed = pages(limit="1")
    # Then it took one query of the JOBS partition per page and one read per job, and no scan
    assert sum(len(p["Jobs"]) for p in listed) == 3
    assert tracer.count("dynamodb.Scan") == 0
    queried = {c.params["ExpressionAttributeValues"][":pk"]["S"] for c in tracer.of("dynamodb.Query")}
    assert queried == {"JOBS"}
    assert tracer.count("dynamodb.Query") == len(listed) and tracer.count("dynamodb.GetItem") == 3


def token_of(doc: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(doc).encode()).decode()


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ({"limit": "0"}, ("limit", "1 to 100")),
        ({"limit": "101"}, ("limit", "1 to 100")),
        ({"limit": "ten"}, ("limit",)),
        ({"next_token": "not-a-token"}, ("next_token",)),
        ({"next_token": token_of({"k": "JOB#x"})}, ("next_token",)),
        ({"next_token": token_of({"k": "2026-01-01T00:00:00.000000Z#82319eda-4945-4b83-84e4-b2cee06f57d0", "x": 1})}, ("next_token",)),
        ({"next_token": token_of([1, 2])}, ("next_token",)),
        ({"next_token": "x" * 2000}, ("next_token",)),
    ],
)
def test_bad_listing_parameters_are_a_400(stack: Stack, query: dict[str, str], words: tuple[str, ...]) -> None:
    status, body = call_api("GET", "/jobs", query=query)

    assert status == 400 and body["error"]["code"] == "InvalidRequest", body
    for word in words:
        assert word in body["error"]["message"], body


def test_a_token_made_by_hand_in_the_right_shape_resumes_after_that_moment(stack: Stack) -> None:
    # Given three jobs
    created = create_jobs(stack, 3)
    middle = call_api("GET", f"/jobs/{created[1]}")[1]["CreatedAt"]
    # When the listing resumes after the middle job's entry
    status, body = call_api("GET", "/jobs", query={"next_token": token_of({"k": f"{middle}#{created[1]}"})})
    # Then only the older job follows
    assert status == 200 and [j["JobId"] for j in body["Jobs"]] == [created[0]]
