"""The benchmark's parts at tiny sizes: their counters add up. Speed is not asserted here."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from bulk_restore.usecases.plan import LINES_PER_CHUNK
from bulk_restore_cli.bench import completion, cost, issuance, latency, local_scale, planner, prices, report
from bulk_restore_cli.bench.__main__ import main
from bulk_restore_cli.bench.fakes import GeneratedManifest, ThrottlingS3Client
from bulk_restore_cli.bench.meter import DynamoCapacity, item_size


@pytest.mark.parametrize("arrival", ["burst", "spread"])
def test_the_cost_profile_counts_one_restore_request_per_object_and_every_other_request(arrival: str) -> None:
    # Given a job of 40 archived objects through the handlers on moto
    profile = cost.run(40, arrival=arrival)
    requests = profile["requests"]
    # Then S3 was asked once per object, and the per-object figure is the count over the objects
    assert requests["restore_object"] == 40 == requests["code_by_operation"]["s3.RestoreObject"]
    assert requests["code_total"] == sum(requests["code_by_operation"].values())
    assert requests["code_per_object"] == pytest.approx(requests["code_total"] / 40)
    assert requests["code_total"] > 40  # DynamoDB, SQS and SNS calls too
    # And the event source's polls are counted apart from our code's requests
    assert requests["esm_receives_with_messages"] >= 1 and "DeleteMessageBatch" in requests["esm_other"]
    assert requests["eventbridge_to_sqs"] == 40
    # And the job sent one terminal event and few progress events
    assert profile["sns"]["terminal_events"] == 1 and 1 <= profile["sns"]["job_events"] <= 12
    # And DynamoDB's units come from what was written: two single-item writes per object at least
    # (inserted, then moved out of RESTORING), and counters written per stream batch, not per object
    wru = profile["dynamodb"]["wru_by_operation"]
    assert wru["BatchExecuteStatement"] >= 2 * 40
    assert wru["TransactWriteItems"] < 10  # the job's creation only
    assert profile["dynamodb"]["rru"] > 0
    # And every function that ran is there, with its invocations
    assert set(profile["lambda"]) == {"ApiFunction", "PlannerFunction", "RestoreFunction", "CompletionFunction", "CounterFunction"}
    assert profile["lambda"]["CompletionFunction"]["records"] == 40
    dollars = prices.per_million_objects(profile)
    assert dollars["s3_restore_requests"] == pytest.approx(50.0)  # $0.05 per 1,000 Standard restores
    assert 0 < dollars["orchestration"] < dollars["total"]
    # And each function's requests are told by operation, adding up to the whole
    by_function = [f["by_operation"] for f in profile["lambda"].values()]
    assert sum(sum(ops.values()) for ops in by_function) == requests["code_total"]
    assert profile["lambda"]["RestoreFunction"]["by_operation"]["s3.RestoreObject"] == 40
    # And the completions moved their objects without reading them (one job in the bucket, no versions)
    assert "dynamodb.BatchGetItem" not in profile["lambda"]["CompletionFunction"]["by_operation"]
    # And the report judges the orchestration's dollars against its bound
    [target] = [t for t in report.targets({"cost": [profile]}) if t.name.startswith("Orchestration per million objects")]
    assert (target.bound, target.figure, target.met) == ("≤ $2.00", f"${dollars['orchestration']:.2f}", dollars["orchestration"] <= 2.0)


def test_the_planner_benchmark_plans_the_whole_generated_manifest_in_steps() -> None:
    result = planner.run(1_000)
    assert result["lines"] == 1_000 and result["steps"] == 1
    assert result["chunks"] == math.ceil(1_000 / LINES_PER_CHUNK) == result["sqs_messages"]
    assert result["lines_per_cpu_s"] > 0 and result["peak_rss_mb"] > 0 and result["rss_before_mb"] > 0


def test_a_generated_manifest_reads_the_same_from_any_offset() -> None:
    manifest = GeneratedManifest(1_000, distinct=200)
    whole = b"".join(manifest.iter_chunks(0, 4096))
    assert len(whole) == manifest.size and whole.count(b"\n") == 1_000
    assert b"".join(manifest.iter_chunks(777, 100)) == whole[777:]


def test_the_completion_benchmark_completes_the_job_with_one_terminal_event() -> None:
    result = completion.run(300, 100)
    assert result["invocations"] == 3 and result["terminal_events"] == 1
    assert result["published_events"] <= 12 and result["events_per_cpu_s"] > 0
    assert result["store_requests"]["BatchExecuteStatement"] >= 300 / 25


def test_the_fake_s3_throttles_above_the_limit_in_any_sliding_second() -> None:
    clock = [0.0]
    s3 = ThrottlingS3Client(limit=2, latency=0, clock=lambda: clock[0], sleep=lambda _: None)
    for at in (0.0, 0.5):
        clock[0] = at
        s3.restore_object(Bucket="b", Key="k", RestoreRequest={})
    clock[0] = 0.9
    with pytest.raises(Exception, match="SlowDown"):
        s3.restore_object(Bucket="b", Key="k", RestoreRequest={})
    clock[0] = 1.01  # the first request has left the window
    s3.restore_object(Bucket="b", Key="k", RestoreRequest={})
    assert (len(s3.accepted_at), s3.throttled, s3.answers) == (3, 1, 4)


def test_the_issuance_benchmark_restores_every_object_once_and_counts_throttling() -> None:
    result = issuance.run(objects=300, workers=2, threads=4, rate=900, limit=1000, s3_latency=0.001, store_latency=0)
    assert result["accepted"] == 300
    assert result["restore_requests"] == result["accepted"] + result["throttled"]
    assert result["throttled_per_1000"] == pytest.approx(1000 * result["throttled"] / result["restore_requests"])
    assert result["peak_sliding_second"] <= 1000


def test_dynamodb_units_follow_the_item_sizes() -> None:
    small = {"pk": {"S": "JOB#1"}, "sk": {"S": "META"}, "n": {"N": "12345"}}
    big = {"pk": {"S": "JOB#1"}, "sk": {"S": "X"}, "blob": {"S": "x" * 1500}}
    assert item_size(small) == 2 + 5 + 2 + 4 + 1 + 4  # names and values; a 5-digit number takes 4 bytes
    stored: dict[str, dict] = {}
    capacity = DynamoCapacity(lambda table, key: stored.get(key["sk"]["S"]))
    transaction = {"TransactItems": [{"Put": {"TableName": "t", "Item": small}}, {"Put": {"TableName": "t", "Item": big}}]}
    assert capacity.units("TransactWriteItems", transaction, {}, [0, 0]) == (2 * 1 + 2 * 2, 0)
    stored["X"] = big  # an update of a 1.5 KB item costs 2 units, whatever it changes
    update = {"TableName": "t", "Key": {"pk": big["pk"], "sk": big["sk"]}}
    assert capacity.units("UpdateItem", update, {}, [item_size(big)]) == (2, 0)
    query = {"TableName": "t", "ConsistentRead": True}
    assert capacity.units("Query", query, {"Items": [small] * 300}, []) == (0, 2)  # 300 x 18 B = 5.4 KB: two 4 KB units
    assert capacity.units("Query", {"TableName": "t"}, {"Items": []}, []) == (0, 0.5)


@pytest.mark.e2e
def test_the_latency_benchmark_times_a_job_on_the_local_stack() -> None:
    result = latency.run(sizes=[5], restore_seconds=1.0)
    (job,) = result["jobs"]
    assert job["status"] == "Complete" and 0 <= job["last_completion_to_event_s"] <= job["create_to_event_s"]
    assert result["max_s"] == job["last_completion_to_event_s"]


@pytest.mark.e2e
def test_the_local_scale_benchmark_runs_a_job_beside_a_threaded_loop_and_judges_it() -> None:
    # Given a small run of the local-scale part
    result = local_scale.run(objects=120, loop_objects=60, restore_seconds=1.0, concurrent=8, timeout=300)
    # Then the loop restored its objects (S3 answered 202 to each), the job completed every object
    assert result["loop"]["answers"] == {"202": 60}
    # and the same loop again from two processes at once, on other objects
    split = result["loop_in_processes"]
    assert (split["processes"], split["objects"], split["answers"]) == (2, 60, {"202": 60})
    assert split["per_second"] > 0 and split["endpoint_cpu_ms_per_object"] is not None
    assert result["job"]["status"] == "Complete" and result["job"]["counts"]["Restored"] == 120
    assert result["job"]["status_calls"] > 0
    assert sum(result["concurrent_creates"]["outcomes"].values()) == 8
    assert result["issuance_ratio"] == round(result["job"]["issued_per_second"] / result["loop"]["per_second"], 3)
    # And the report judges its four targets and has its section
    names = [t.name for t in report.targets({"local_scale": result})]
    assert len([n for n in names if n.startswith("Local stack")]) == 4
    section = "\n".join(report._local_scale_section({"local_scale": result}))
    assert "## 6. A real-sized job" in section and "from 2 processes at once" in section


def test_the_command_writes_the_report_and_the_json_results(tmp_path: Path) -> None:
    markdown = tmp_path / "BENCHMARKS.md"
    assert (
        main(
            [
                "--parts",
                "completion,planner",
                "--completion-events",
                "300",
                "--planner-lines",
                "2000",
                "--results",
                str(tmp_path / "results"),
                "--markdown",
                str(markdown),
            ]
        )
        == 0
    )
    results = json.loads((tmp_path / "results" / "latest.json").read_text())
    assert [r["batch_size"] for r in results["completion"]] == [10, 100, 1000]
    assert [r["lines"] for r in results["planner"]] == [2000]
    verdicts = {t["name"]: t["verdict"] for t in results["targets"]}
    assert verdicts["Planner peak memory at 10 M lines"] == "not run"
    text = markdown.read_text()
    assert "## Targets" in text and results["machine"]["cpu"] in text and "## 3. Completion path" in text
    assert report.targets(results)
    # And the report can be written again from the results alone
    again = tmp_path / "again.md"
    assert main(["--render", str(tmp_path / "results" / "latest.json"), "--markdown", str(again)]) == 0
    assert again.read_text() == text


def test_the_vault_benchmark_moves_every_archive_and_counts_bytes_and_requests() -> None:
    from bulk_restore_cli.bench import report, vault

    result = vault.run(archives=1, archive_mib=20, small_archives=2, part_mib=8, tier="Standard")
    assert result["status"] == "Complete" and result["counts"]["Restored"] == 3
    assert result["bytes"] == 20 * (1 << 20) + 2 * (1 << 20) + 1  # 20 MiB, then 1 MiB and 1 MiB + 1
    # one retrieval per archive; the 20 MiB archive in three 8 MiB parts, the others in one each
    assert result["requests_per_archive"]["glacier:InitiateJob"] == 1
    assert result["requests_per_archive"]["s3:UploadPart"] == round(5 / 3, 3)
    assert result["transfer_invocations"] == 5 and result["transfer_bytes_per_second"] > 0
    assert result["dollars_per_tib"]["glacier_retrieval"] > 10.24  # Standard: $0.01 per GB, plus requests
    assert "## 8. Glacier vaults into S3" in report.vault_section(result)
