"""The client commands' pieces: the create-job body each option makes, what is printed (table,
CSV, JSON), failures by reason, and `watch`: its view of a job, its exit codes, its frames and its
event queue."""

from __future__ import annotations

import io
import json
import re
import threading
from pathlib import Path
from typing import Any

import pytest

from bulk_restore_cli import cli
from bulk_restore_cli.client import output
from bulk_restore_cli.client.commands import build_create_body, reason_group
from bulk_restore_cli.client.config import Stack
from bulk_restore_cli.client.errors import CliError
from bulk_restore_cli.client.watch import Display, EventFeed, JobView, exit_code, follow, plain_line

JOB = "82319eda-4945-4b83-84e4-b2cee06f57d0"


def create_args(*argv: str) -> Any:
    """The create-job options as the command line parses them."""
    return cli._parser().parse_args(["create-job", *argv])


def body_of(*argv: str) -> dict[str, Any]:
    uploads: list[Path] = []

    def upload(path: Path, what: str) -> tuple[str, str]:
        uploads.append(path)
        return "manifest-bucket", f"uploads/{path.name}"

    return build_create_body(create_args(*argv), upload)


# ---- create-job: the body ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["s3://manifests/restores/m.csv"], {"bucket": "manifests", "key": "restores/m.csv"}),
        (
            ["--bucket", "manifests", "--key", "m.csv", "--tier", "bulk", "--days", "7", "--client-tag", "finance"],
            {"bucket": "manifests", "key": "m.csv", "tier": "BULK", "expiration_days": 7, "client_tag": "finance"},
        ),
        (["local/manifest.csv"], {"bucket": "manifest-bucket", "key": "uploads/manifest.csv"}),
        (
            ["--inventory", "s3://inv/data/cfg/2026-11-21T01-00Z/manifest.json", "--include-versions"],
            {
                "bucket": "inv",
                "key": "data/cfg/2026-11-21T01-00Z/manifest.json",
                "manifest_format": "s3-inventory",
                "include_versions": True,
            },
        ),
        (
            ["--source", "s3://data/photos/2019/", "--storage-class", "glacier", "--storage-class", "DEEP_ARCHIVE", "--include-versions"],
            {
                "source": {
                    "bucket": "data",
                    "prefix": "photos/2019/",
                    "storage_classes": ["GLACIER", "DEEP_ARCHIVE"],
                    "include_versions": True,
                }
            },
        ),
        (["--source", "s3://data"], {"source": {"bucket": "data", "prefix": ""}}),
        (
            [
                "s3://m/k",
                "--engine",
                "BATCH",
                "--deadline-hours",
                "30",
                "--keep-restored-days",
                "3",
                "--progress-step",
                "5",
                "--expedited-fallback",
                "--client-token",
                "tok-1",
                "--dry-run",
                "--max-cost",
                "12.5",
            ],
            {
                "bucket": "m",
                "key": "k",
                "engine": "batch",
                "deadline_hours": 30.0,
                "keep_restored_days": 3,
                "progress_step_percent": 5,
                "expedited_fallback": True,
                "client_token": "tok-1",
                "dry_run": True,
                "max_cost_usd": 12.5,
            },
        ),
        (
            [
                "--vault",
                "photos",
                "--inventory",
                "--target",
                "s3://copies/from-vault/",
                "--key-from",
                "description",
                "--created-from",
                "2020-01-01T00:00:00Z",
                "--min-size",
                "1KiB",
                "--max-size",
                "2 GB",
                "--max-bytes-per-day",
                "100TiB",
                "--overrides",
                "s3://m/names.csv",
                "--split-large-archives",
                "--target-storage-class",
                "deep_archive",
                "--max-archives",
                "10",
            ],
            {
                "vault": {"name": "photos"},
                "inventory": True,
                "target": {"bucket": "copies", "prefix": "from-vault/", "storage_class": "DEEP_ARCHIVE"},
                "key_from": "description",
                "filter": {"created_from": "2020-01-01T00:00:00Z", "min_size": 1024, "max_size": 2_000_000_000},
                "max_bytes_per_day": 100 * 1024**4,
                "overrides": {"bucket": "m", "key": "names.csv"},
                "split_large_archives": True,
                "max_archives": 10,
            },
        ),
        (
            ["--vault", "photos", "--vault-account", "123456789012", "--archives", "a1,a2", "a3", "--target", "s3://copies"],
            {
                "vault": {"name": "photos", "account_id": "123456789012"},
                "archives": ["a1", "a2", "a3"],
                "target": {"bucket": "copies", "prefix": ""},
            },
        ),
        (
            ["--vault", "photos", "ids.txt", "--target", "s3://copies/x/"],
            {
                "vault": {"name": "photos"},
                "bucket": "manifest-bucket",
                "key": "uploads/ids.txt",
                "target": {"bucket": "copies", "prefix": "x/"},
            },
        ),
    ],
)
def test_each_way_to_say_what_to_restore_makes_the_api_s_body(argv: list[str], expected: dict[str, Any]) -> None:
    assert body_of(*argv) == expected


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        ([], ("say what to restore", "MANIFEST", "--source")),
        (["s3://m/k", "--source", "s3://d/p"], ("MANIFEST and --source",)),
        (["s3://bucket-only"], ("not an S3 URL", "s3://bucket/key")),
        (["--bucket", "m"], ("--bucket and --key go together",)),
        (["--inventory"], ("--inventory needs the S3 URL",)),
        (["s3://m/k", "--target", "s3://t/p"], ("--target applies to a vault job", "--vault")),
        (["s3://m/k", "--storage-class", "GLACIER"], ("--storage-class applies to --source",)),
        (["s3://m/k", "--include-versions"], ("--include-versions applies to",)),
        (["--vault", "v", "--inventory"], ("--target",)),
        (["--vault", "v", "--source", "s3://d/p", "--target", "s3://t"], ("--source and an inventory report are for S3 jobs",)),
        (["--vault", "v", "--inventory", "--target", "s3://t", "--min-size", "lots"], ("--min-size", "not a size")),
    ],
)
def test_create_job_options_that_do_not_fit_say_what_to_fix(argv: list[str], words: tuple[str, ...]) -> None:
    with pytest.raises(CliError) as raised:
        body_of(*argv)

    assert raised.value.code == 2
    for word in words:
        assert word in str(raised.value), str(raised.value)


def test_a_local_file_that_does_not_exist_is_named(tmp_path: Path) -> None:
    from bulk_restore_cli.client.commands import uploader

    stack = Stack(api_url="http://x", api_key="k", source="test", manifest_bucket="mb", local=True)
    missing = tmp_path / "nope.csv"

    with pytest.raises(CliError, match=f"no file {re.escape(str(missing))}: give a local manifest file, or s3://bucket/key"):
        uploader(stack, quiet=True)(missing, "manifest")


# ---- what is printed ---------------------------------------------------------------------------


def test_a_table_aligns_its_columns_and_shows_missing_values_as_a_dash() -> None:
    out = io.StringIO()
    rows = [{"a": "x", "b": None}, {"a": "longer", "b": 3}]

    output.table(rows, [("A", lambda r: r["a"]), ("B", lambda r: r["b"])], out)

    assert out.getvalue() == "A       B\nx       -\nlonger  3\n"


def test_csv_quotes_what_needs_quoting_and_leaves_none_empty() -> None:
    out = io.StringIO()
    rows = [{"key": 'a,"b"\nc', "v": None}]

    output.csv_rows(rows, [("key", lambda r: r["key"]), ("version_id", lambda r: r["v"])], out)

    assert out.getvalue() == 'key,version_id\n"a,""b""\nc",\n'


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1048576", 1048576), ("1KiB", 1024), ("2 GB", 2 * 10**9), ("1.5TiB", int(1.5 * 1024**4)), ("100tib", 100 * 1024**4)],
)
def test_sizes_take_decimal_and_binary_units(text: str, expected: int) -> None:
    assert output.parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "lots", "-1", "5 XB", "inf"])
def test_a_size_that_is_not_one_names_the_units(text: str) -> None:
    with pytest.raises(ValueError, match="KiB"):
        output.parse_size(text)


@pytest.mark.parametrize(
    ("seconds", "shown"), [(5, "5s"), (250, "4m 10s"), (3 * 3600 + 300, "3h 05m"), (2 * 86400 + 3600, "2d 01h"), (None, "-")]
)
def test_durations_read_as_people_write_them(seconds: float | None, shown: str) -> None:
    assert output.duration(seconds) == shown


def test_failures_are_grouped_by_reason_without_their_line_numbers() -> None:
    reasons = ["manifest line 17: bad bucket name", "manifest line 9: bad bucket name", "NoSuchKey: no such key in the bucket", None]

    assert [reason_group(r) for r in reasons] == [
        "manifest line N: bad bucket name",
        "manifest line N: bad bucket name",
        "NoSuchKey: no such key in the bucket",
        "(no reason)",
    ]


# ---- watch: the job's view ---------------------------------------------------------------------------


def status(
    state: str = "Restoring", total: int = 100, restored: int = 0, restoring: int = 0, failed: int = 0, planned: bool = True, **extra: Any
) -> dict[str, Any]:
    return {
        "JobId": JOB,
        "Status": state,
        "Tier": "STANDARD",
        "CreatedAt": "2026-11-21T10:00:00.000000Z",
        "Counts": {"Total": total, "Restoring": restoring, "Restored": restored, "Skipped": 0, "Failed": failed, "Cancelled": 0},
        "Planning": {"Complete": planned},
        "FailureReason": "",
        **extra,
    }


@pytest.mark.parametrize(
    ("doc", "allow_failed", "ok", "code"),
    [
        (status("Complete", restored=100), False, [], 0),
        (status("Complete", restored=98, failed=2), False, [], 3),
        (status("Complete", restored=98, failed=2), True, [], 0),
        (status("Failed"), False, [], 4),
        (status("Timeout", restoring=3), False, [], 5),
        (status("Cancelled"), False, [], 6),
        (status("Cancelled"), False, ["Cancelled"], 0),
        (status("Timeout"), True, ["Cancelled"], 5),
    ],
)
def test_watch_exit_codes_say_how_the_job_ended(doc: dict[str, Any], allow_failed: bool, ok: list[str], code: int) -> None:
    view = JobView(JOB)
    view.update(doc, 0.0)

    assert exit_code(view, allow_failed, ok) == code


def test_rate_and_eta_come_from_the_restores_seen_so_far_capped_by_the_tier_s_window() -> None:
    created = 1_795_000_000.0  # 2026-11-18
    view = JobView(JOB)
    stamp = "2026-11-18T11:06:40.000000Z"
    # Before any restore: the Standard tier's window (12 h from creation)
    view.update(status(restoring=100, CreatedAt=stamp), 0.0)
    assert view.rate() is None
    assert view.eta(created + 3600) == (11 * 3600.0, "standard tier's window")
    # After 20 objects restored in 10 s: 2 a second, 80 left, 40 s
    view.update(status(restored=20, restoring=80, CreatedAt=stamp), 10.0)
    assert view.rate() == 2.0
    assert view.eta(created + 3600) == (40.0, "at the rate so far")
    # Near the window's end, the window is the sooner: it says so
    assert view.eta(created + 12 * 3600 - 30) == (30.0, "standard tier's window")
    # Past the window only the rate can tell
    assert view.eta(created + 13 * 3600) == (40.0, "at the rate so far")


def test_an_event_older_than_the_last_status_read_does_not_move_counts_back() -> None:
    view = JobView(JOB)
    view.update(status(restored=60, restoring=40), 0.0)

    changed = view.update(
        {
            "JobId": JOB,
            "EventType": "JobProgress",
            "Status": "Restoring",
            "Counts": {"Total": 100, "Restoring": 50, "Restored": 50, "Skipped": 0, "Failed": 0, "Cancelled": 0},
        },
        1.0,
    )

    assert not changed and view.counts["Restored"] == 60


def test_a_vault_job_shows_its_bytes_moved() -> None:
    view = JobView(JOB)
    view.update(status(restored=1, restoring=1, total=2, BytesMoved=3 * 1024**3, Vault={"Name": "v"}), 0.0)

    assert "3.0 GiB moved" in plain_line(view)


# ---- watch: frames -------------------------------------------------------------------------------


class ScriptedApi:
    """GET /jobs/{id} answering one status after the other (the last one again at the end)."""

    def __init__(self, answers: list[dict[str, Any]]):
        self.answers = answers
        self.reads = 0

    def job(self, job_id: str) -> dict[str, Any]:
        answer = self.answers[min(self.reads, len(self.answers) - 1)]
        self.reads += 1
        return answer


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def test_the_bar_moves_from_frame_to_frame_on_a_terminal() -> None:
    from rich.console import Console

    # Given a job read three times as it goes: none, 45 and then 100 of 100 objects settled
    api = ScriptedApi([status(restoring=100), status(restored=45, restoring=55), status("Complete", restored=100)])
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, color_system="truecolor", width=90)
    display = Display(screen, terminal=True, console=console)
    frames: list[str] = []
    show = display.show

    def capture(view: JobView, changed: bool) -> None:
        start = len(screen.getvalue())
        show(view, changed)
        frames.append(screen.getvalue()[start:])

    display.show = capture  # type: ignore[method-assign]
    clock = FakeClock()
    # When watch follows it, polling
    with display:
        view = follow(api, JOB, display, None, interval=1.0, timeout=None, clock=clock, sleep=clock.sleep)
    # Then it ended Complete, after a frame per read
    assert view is not None and view.status == "Complete" and len(frames) >= 3
    bars = [next(line for line in ANSI.sub("", frame).splitlines() if "━" in line) for frame in frames]
    percents = [re.search(r"(\d+) %", bar).group(1) for bar in bars]
    assert percents[0] == "0" and "45" in percents and percents[-1] == "100"
    # And the bar itself moved: half-way its filled part ends inside it (a half cell, "╸" or "╺", marks
    # where), at the end it is full
    middle = bars[percents.index("45")]
    edge = re.search("[╸╺]", middle)
    assert edge is not None and middle.index("━") < edge.start() < middle.rindex("━")
    assert not re.search("[╸╺]", bars[-1])
    assert bars[0].startswith("Restoring") and bars[-1].startswith("Complete")
    # And the frames were drawn for a terminal, in colour
    assert "\x1b[" in frames[-1]


def test_off_a_terminal_there_is_one_plain_line_per_change() -> None:
    api = ScriptedApi([status(restoring=100), status(restoring=100), status(restored=45, restoring=55), status("Complete", restored=100)])
    out = io.StringIO()
    clock = FakeClock()

    view = follow(api, JOB, Display(out, terminal=False), None, interval=1.0, timeout=None, clock=clock, sleep=clock.sleep)

    lines = out.getvalue().splitlines()
    assert view is not None and len(lines) == 3 and "\x1b" not in out.getvalue()
    assert [line.split("  ")[1:3] for line in lines] == [
        ["Restoring", "0/100 settled"],
        ["Restoring", "45/100 settled"],
        ["Complete", "100/100 settled"],
    ]


def test_a_watch_that_times_out_returns_nothing() -> None:
    clock = FakeClock()

    view = follow(
        ScriptedApi([status()]),
        JOB,
        Display(io.StringIO(), terminal=False),
        None,
        interval=1.0,
        timeout=3.0,
        clock=clock,
        sleep=clock.sleep,
    )

    assert view is None and clock.now >= 3.0


# ---- watch: the event queue ----------------------------------------------------------------------


def test_the_event_queue_gets_only_this_job_s_events_and_is_removed_after(stack: Any) -> None:
    from bulk_restore.adapters.sns import EventPublisher

    # Given the job topic of a stack, and a watch's queue subscribed to it for one job
    watched = Stack(api_url="http://x", api_key="k", source="test", region="us-east-1", topic_arn=stack.topic_arn)
    feed = EventFeed(watched, stack.topic_arn, JOB)
    feed.open()
    queue_url = feed.queue_url
    try:
        # When the stack publishes an event of that job and one of another job
        publisher = EventPublisher(stack.topic_arn)
        for job_id, percent in ((JOB, "50"), ("0f7d4a7e-0000-4000-8000-000000000000", "70")):
            publisher.publish(
                {"JobId": job_id, "Status": "Restoring", "EventType": "JobProgress", "ProgressPercent": percent, "EventId": f"e-{percent}"}
            )
        # Then the queue has this job's event only, as the event itself (raw delivery)
        events = feed.receive(1)
        assert [(e["JobId"], e["ProgressPercent"]) for e in events] == [(JOB, "50")]
        subscriptions = stack.sns.list_subscriptions_by_topic(TopicArn=stack.topic_arn)["Subscriptions"]
        mine = [s for s in subscriptions if s["SubscriptionArn"] == feed.subscription]
        attributes = stack.sns.get_subscription_attributes(SubscriptionArn=mine[0]["SubscriptionArn"])["Attributes"]
        assert json.loads(attributes["FilterPolicy"]) == {"JobId": [JOB]} and attributes["RawMessageDelivery"] == "true"
    finally:
        feed.close()
    # And closing removed both the subscription and the queue
    remaining = [s["Endpoint"] for s in stack.sns.list_subscriptions_by_topic(TopicArn=stack.topic_arn)["Subscriptions"]]
    assert not [e for e in remaining if "bulk-restore-watch" in e]
    assert queue_url not in stack.sqs.list_queues().get("QueueUrls", [])


def test_a_refused_queue_falls_back_to_polling_and_says_so(
    stack: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from botocore.exceptions import ClientError

    from bulk_restore_cli.client import watch

    def refuse(self: EventFeed) -> None:
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "not allowed"}}, "CreateQueue")

    monkeypatch.setattr(EventFeed, "open", refuse)
    watched = Stack(api_url="http://x", api_key="k", source="test", region="us-east-1", topic_arn=stack.topic_arn)

    assert watch.open_events(watched, JOB, stack.topic_arn, quiet=False) is None
    assert "cannot subscribe a queue to the job's events (AccessDenied): polling" in capsys.readouterr().err


def test_ctrl_c_during_a_watch_removes_its_queue(stack: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # Given an API whose job never ends, and a watch on it that gets Ctrl-C while waiting for events
    class Endless(ScriptedApi):
        def job(self, job_id: str) -> dict[str, Any]:
            return status() | {"SNSTopic": stack.topic_arn}

    watched = Stack(api_url="http://x", api_key="k", source="test", region="us-east-1", topic_arn=stack.topic_arn)
    monkeypatch.setattr("bulk_restore_cli.client.commands.connect", lambda args: (watched, Endless([])))
    opened: list[EventFeed] = []
    real_open, real_receive = EventFeed.open, EventFeed.receive

    def tracked_open(self: EventFeed) -> None:
        real_open(self)
        opened.append(self)

    def interrupted(self: EventFeed, wait: float) -> list[dict[str, Any]]:
        real_receive(self, 0)
        raise KeyboardInterrupt

    monkeypatch.setattr(EventFeed, "open", tracked_open)
    monkeypatch.setattr(EventFeed, "receive", interrupted)
    # When it runs
    assert threading.current_thread() is threading.main_thread()
    code = cli.main(["watch", JOB])
    # Then it says it was interrupted, exits 130, and its queue and subscription are gone
    assert code == 130 and capsys.readouterr().err.strip().endswith("bulk-restore: interrupted")
    assert len(opened) == 1 and opened[0].queue_url is None and opened[0].subscription is None
    assert not [u for u in stack.sqs.list_queues().get("QueueUrls", []) if "bulk-restore-watch" in u]
