"""Progress decisions: when a job has crossed a step or ended, and what its event says."""

from __future__ import annotations

import json
import uuid

import pytest

from bulk_restore.domain.model import Counts, JobStatus, ManifestLocation, PlanningState, RestoreJob, Tier
from bulk_restore.domain.progress import Decision, build_message, decide, event_id, progress_percent


def job(
    *,
    planned: bool = True,
    chunks: int = 1,
    last_step: int = 0,
    step: int = 10,
    status: JobStatus = JobStatus.RESTORING,
    tag: str = "finance",
    issued: bool = True,
    end_pending: bool = False,
    stopped: bool = False,
) -> RestoreJob:
    return RestoreJob(
        job_id="6f1d3a52-8c1e-4b7a-9d1e-3c2b1a0f9e87",
        tier=Tier.BULK,
        expiration_days=1,
        manifest=ManifestLocation("manifests", "m.csv"),
        client_tag=tag,
        progress_step_percent=step,
        status=status,
        last_step_published=last_step,
        planning=PlanningState(chunks_emitted=chunks, done=planned, stopped=stopped),
        issued=issued,
        end_pending=end_pending,
    )


def counts(total: int = 100, restoring: int = 0, restored: int = 0, skipped: int = 0, failed: int = 0, chunks: int = 1) -> Counts:
    return Counts(total=total, restoring=restoring, restored=restored, skipped=skipped, failed=failed, chunks_done=chunks)


# ---- progress_percent --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("c", "planned", "percent"),
    [
        (counts(total=0), True, 0),
        (counts(total=3, restored=2, restoring=1), True, 66),  # rounded down
        (counts(total=10, restored=3, skipped=1, failed=1, restoring=5), True, 50),  # failed and skipped are finished
        (counts(total=10, restored=10), True, 100),
        (counts(total=10, restored=10), False, 99),  # more may be planned
        (counts(total=1000, restored=999, restoring=1), True, 99),
    ],
)
def test_progress_is_the_whole_percent_of_finished_objects(c: Counts, planned: bool, percent: int) -> None:
    assert progress_percent(c, planned) == percent


def test_progress_never_shows_100_while_an_object_is_restoring() -> None:
    assert progress_percent(counts(total=10_000, restored=9_999, restoring=1), planned=True) == 99


# ---- decide ------------------------------------------------------------------------------------


def test_a_planned_job_with_every_chunk_accounted_and_nothing_restoring_completes() -> None:
    assert decide(job(), counts(total=4, restored=2, skipped=1, failed=1)) == Decision(terminal=JobStatus.COMPLETE)


def test_a_job_is_seen_issued_once_every_planned_chunk_is_accounted() -> None:
    # Given a job not yet known to be issued
    assert decide(job(issued=False, chunks=2), counts(total=4, restoring=4, chunks=1)).issued is False
    assert decide(job(issued=False, chunks=2), counts(total=4, restoring=4, chunks=2)).issued is True
    assert decide(job(issued=False, planned=False, chunks=2), counts(total=4, restoring=4, chunks=2)).issued is False
    # And once it is known, it is not decided again
    assert decide(job(issued=True, chunks=2), counts(total=4, restoring=4, chunks=2)).issued is False


@pytest.mark.parametrize("status", [JobStatus.CANCELLED, JobStatus.FAILED, JobStatus.TIMEOUT])
def test_an_ended_job_is_announced_once_its_last_chunks_are_accounted(status: JobStatus) -> None:
    # Given a job ended while planning, its planner stopped, one of two chunks accounted
    ended = job(status=status, end_pending=True, planned=False, stopped=True, chunks=2, issued=False)
    assert decide(ended, counts(total=4, restoring=2, chunks=1)) == Decision()
    # When the last chunk is accounted, then its end is announced (with these counts), objects still restoring or not
    assert decide(ended, counts(total=8, restoring=2, chunks=2)) == Decision(terminal=status, ended=True, issued=True)
    # And a planner that has not stopped yet may still send chunks: nothing is announced
    assert decide(job(status=status, end_pending=True, planned=False, chunks=2), counts(total=8, chunks=2)) == Decision()


def test_a_job_whose_objects_all_failed_still_completes() -> None:
    assert decide(job(), counts(total=3, failed=3)).terminal is JobStatus.COMPLETE


@pytest.mark.parametrize(
    ("j", "c"),
    [
        (job(planned=False), counts(total=4, restored=4)),  # the manifest is not fully planned
        (job(chunks=3), counts(total=4, restored=4, chunks=2)),  # a planned chunk is not accounted yet
        (job(), counts(total=4, restored=3, restoring=1)),  # an object is still restoring
    ],
)
def test_a_job_does_not_end_before_all_is_planned_accounted_and_restored(j: RestoreJob, c: Counts) -> None:
    assert decide(j, c).terminal is None


@pytest.mark.parametrize("status", [JobStatus.COMPLETE, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.TIMEOUT])
def test_an_ended_job_announces_nothing_more(status: JobStatus) -> None:
    assert decide(job(status=status), counts(total=4, restored=4)) == Decision()


def test_the_highest_step_crossed_is_announced_once() -> None:
    # Given a job at 37 % that announced nothing yet
    c = counts(total=100, restored=37, restoring=63)
    # When it is evaluated, then the 30 % step is announced (not 10 and 20 as well)
    assert decide(job(last_step=0), c) == Decision(step=30)
    # And once 30 is announced, the same counts announce nothing
    assert decide(job(last_step=30), c) == Decision()


def test_no_step_is_announced_while_planning() -> None:
    assert decide(job(planned=False), counts(total=100, restored=60, restoring=40)) == Decision()


def test_steps_follow_the_jobs_own_step_size() -> None:
    assert decide(job(step=25), counts(total=100, restored=74, restoring=26)) == Decision(step=50)


def test_a_step_is_never_100_the_end_is_the_terminal_event() -> None:
    decision = decide(job(step=1), counts(total=1000, restored=999, restoring=1))
    assert decision == Decision(step=99)


def test_below_the_first_step_nothing_is_announced() -> None:
    assert decide(job(), counts(total=100, restored=9, restoring=91)) == Decision()


# ---- events ------------------------------------------------------------------------------------


def test_event_ids_are_stable_per_job_and_kind() -> None:
    a = event_id("job-1", "terminal")
    assert a == event_id("job-1", "terminal")
    assert uuid.UUID(a).version == 5
    assert len({a, event_id("job-1", "step-10"), event_id("job-2", "terminal")}) == 3


SEED_FIELDS = ("JobId", "BatchJobId", "Status", "ProgressPercent", "FailedBatchFiles")


def test_a_progress_message_keeps_the_seed_fields_with_string_types() -> None:
    c = counts(total=10, restored=5, failed=1, restoring=4)
    message = build_message(job(), c, JobStatus.RESTORING, "step-60", "2026-03-02T10:00:00.000000Z")
    assert {k: message[k] for k in SEED_FIELDS} == {
        "JobId": "6f1d3a52-8c1e-4b7a-9d1e-3c2b1a0f9e87",
        "BatchJobId": "6f1d3a52-8c1e-4b7a-9d1e-3c2b1a0f9e87",
        "Status": "Restoring",
        "ProgressPercent": "60",
        "FailedBatchFiles": "1",
    }
    assert all(isinstance(message[k], str) for k in SEED_FIELDS)
    assert message["EventType"] == "JobProgress" and message["EventId"] == event_id(message["JobId"], "step-60")
    assert message["Tier"] == "BULK" and message["ClientTag"] == "finance" and message["ProgressStepPercent"] == 10
    assert message["Counts"]["Total"] == 10 and message["Counts"]["Restoring"] == 4
    assert json.loads(json.dumps(message)) == message


def test_the_terminal_message_says_complete_100_and_the_failed_count() -> None:
    message = build_message(job(), counts(total=10, restored=7, failed=3), JobStatus.COMPLETE, "terminal", "t")
    assert (message["Status"], message["ProgressPercent"], message["FailedBatchFiles"]) == ("Complete", "100", "3")
    assert message["EventType"] == "JobFinished" and message["EventId"] == event_id(message["JobId"], "terminal")


def test_a_failed_job_reports_its_real_progress_and_reason() -> None:
    j = job(planned=False)
    j.failure_reason = "manifest changed"
    message = build_message(j, counts(total=10, restored=3, restoring=7), JobStatus.FAILED, "terminal", "t")
    assert (message["Status"], message["ProgressPercent"], message["FailureReason"]) == ("Failed", "30", "manifest changed")


def test_a_batch_job_id_other_than_the_job_id_is_carried() -> None:
    message = build_message(job(), counts(), JobStatus.RESTORING, "step-10", "t", batch_job_id="batch-123")
    assert message["BatchJobId"] == "batch-123"
