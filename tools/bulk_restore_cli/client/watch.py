"""`bulk-restore watch JOB`: follow a job to its end, live.

Fed by the job's events: a temporary SQS queue subscribed to the job topic with a filter policy on
the ``JobId`` message attribute (raw delivery), removed on exit, Ctrl-C and SIGTERM included; its
status is also read every ``--interval`` seconds (events come per progress step). With ``--poll``,
or when the queue cannot be made (no AWS credentials, a refusal), it polls ``GET /jobs/{id}``.

On a terminal, a rich progress bar; otherwise one plain line per change. The exit code says how
the job ended (EXIT_CODES_HELP).
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import IO, Any

from bulk_restore_cli.client import output
from bulk_restore_cli.client.api import ApiClient
from bulk_restore_cli.client.config import Stack
from bulk_restore_cli.client.errors import CliError

EXIT_COMPLETE_WITH_FAILURES = 3
EXIT_JOB_FAILED = 4
EXIT_JOB_TIMEOUT = 5
EXIT_JOB_CANCELLED = 6
EXIT_WATCH_TIMEOUT = 7
EXIT_CODES_HELP = """exit codes:
  0    the job is Complete with no failed objects (or with some, and --allow-failed)
  3    the job is Complete with failed objects (`bulk-restore objects JOB --reason` says why)
  4    the job Failed           5  it timed out (Timeout)      6  it was Cancelled
       (--ok Failed, --ok Timeout, --ok Cancelled make that one 0)
  7    still running when --timeout passed
  1    the API or AWS refused a call;  2  nothing done: fix what the one line on stderr says
  130  interrupted (Ctrl-C, SIGTERM): the watch's queue is removed all the same"""
TERMINAL = ("Complete", "Failed", "Timeout", "Cancelled")
STATES = ("Restoring", "Restored", "Skipped", "Failed", "Cancelled")
# Typical upper bound of a tier's restores (bulk_restore.domain.timing: the slowest class a tier reaches)
TIER_WINDOW_SECONDS = {"EXPEDITED": 5 * 60, "STANDARD": 12 * 3600, "BULK": 48 * 3600}


# ---- what is known of the job ---------------------------------------------------------------------


@dataclass
class Sample:
    at: float  # monotonic seconds
    restored: int
    bytes_moved: int | None


@dataclass
class JobView:
    """The job as last seen, from its status or its events, and the samples its rate comes from."""

    job_id: str
    status: str = "Planning"
    tier: str = ""
    counts: dict[str, int] = field(default_factory=dict)
    planning_complete: bool = False
    bytes_moved: int | None = None
    bytes_per_second: float | None = None
    failure_reason: str = ""
    created_epoch: float | None = None
    samples: list[Sample] = field(default_factory=list)
    last_event_id: str = ""

    def update(self, doc: dict[str, Any], now: float) -> bool:
        """Take a status document or an event; True when something shown changed."""
        before = self.key()
        if doc.get("Status"):
            if self.status in TERMINAL and doc["Status"] not in TERMINAL:
                return False  # an older event after the end
            self.status = doc["Status"]
        self.tier = str(doc.get("Tier") or self.tier).upper()
        counts = doc.get("Counts")
        if isinstance(counts, dict) and counts:
            fresh = {k: int(v) for k, v in counts.items() if isinstance(v, int) and not isinstance(v, bool)}
            settled = sum(fresh.get(s, 0) for s in ("Restored", "Skipped", "Failed", "Cancelled"))
            if settled >= self.done or doc.get("Status") in TERMINAL:  # an event older than the last read changes nothing
                self.counts = fresh
        if "Planning" in doc and isinstance(doc["Planning"], dict):
            self.planning_complete = bool(doc["Planning"].get("Complete"))
        elif "PlanningComplete" in doc:
            self.planning_complete = bool(doc["PlanningComplete"])
        if doc.get("BytesMoved") is not None:
            self.bytes_moved = int(doc["BytesMoved"])
        if doc.get("BytesPerSecond") is not None:
            self.bytes_per_second = float(doc["BytesPerSecond"])
        if "FailureReason" in doc:
            self.failure_reason = doc.get("FailureReason") or ""
        if doc.get("CreatedAt") and self.created_epoch is None:
            from bulk_restore.domain.timing import event_epoch

            self.created_epoch = event_epoch(doc["CreatedAt"])
        restored = self.counts.get("Restored", 0)
        if not self.samples or self.samples[-1].restored != restored or self.samples[-1].bytes_moved != self.bytes_moved:
            self.samples.append(Sample(now, restored, self.bytes_moved))
        return self.key() != before

    def key(self) -> tuple[Any, ...]:
        return (self.status, tuple(sorted(self.counts.items())), self.planning_complete, self.bytes_moved)

    # ---- derived --------------------------------------------------------------------------

    @property
    def total(self) -> int:
        return self.counts.get("Total", 0)

    @property
    def done(self) -> int:
        """Objects whose outcome is settled."""
        return sum(self.counts.get(s, 0) for s in ("Restored", "Skipped", "Failed", "Cancelled"))

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL

    def rate(self) -> float | None:
        """Objects restored per second, since this watch first saw one change."""
        if len(self.samples) < 2:
            return None
        first, last = self.samples[0], self.samples[-1]
        elapsed = last.at - first.at
        return (last.restored - first.restored) / elapsed if elapsed > 0 and last.restored > first.restored else None

    def byte_rate(self) -> float | None:
        if self.bytes_per_second:
            return self.bytes_per_second
        known = [s for s in self.samples if s.bytes_moved is not None]
        if len(known) < 2 or known[-1].at <= known[0].at:
            return None
        moved = (known[-1].bytes_moved or 0) - (known[0].bytes_moved or 0)
        return moved / (known[-1].at - known[0].at) if moved > 0 else None

    def eta(self, wall_now: float | None = None) -> tuple[float | None, str]:
        """Seconds left and how that was reckoned: the rate so far, capped by the end of the tier's
        window (restores of a tier all complete within it); before any rate, the window alone."""
        if self.finished:
            return 0.0, "done"
        wall_now = time.time() if wall_now is None else wall_now
        window = TIER_WINDOW_SECONDS.get(self.tier)
        window_left = (self.created_epoch + window - wall_now) if window and self.created_epoch else None
        if window_left is not None and window_left < 0:
            window_left = None  # past the window: only the rate can tell
        rate = self.rate()
        remaining = self.total - self.done if self.planning_complete else None
        by_rate = remaining / rate if rate and remaining is not None else None
        if by_rate is not None and (window_left is None or by_rate <= window_left):
            return by_rate, "at the rate so far"
        if window_left is not None:
            return window_left, f"{self.tier.lower()} tier's window"
        return by_rate, "at the rate so far" if by_rate is not None else "unknown yet"

    def summary(self) -> str:
        parts = [f"{name.lower()} {self.counts.get(name, 0)}" for name in STATES]
        return ", ".join(parts)


# ---- showing it -----------------------------------------------------------------------------------


def plain_line(view: JobView, wall_now: float | None = None) -> str:
    """One line per change, for logs and pipes."""
    total = f"{view.total}" + ("" if view.planning_complete or view.finished else "+")
    parts = [time.strftime("%H:%M:%S", time.localtime(wall_now)), view.status, f"{view.done}/{total} settled", view.summary()]
    rate = view.rate()
    if rate:
        parts.append(f"{rate:.1f} restored/s")
    if view.bytes_moved is not None:
        parts.append(f"{output.size(view.bytes_moved)} moved")
    eta, how = view.eta(wall_now)
    if not view.finished and eta is not None:
        parts.append(f"ETA {output.duration(eta)} ({how})")
    if view.finished and view.failure_reason:
        parts.append(view.failure_reason)
    return "  ".join(parts)


def rich_frame(view: JobView, wall_now: float | None = None) -> Any:
    """The live display: a bar of settled objects, then the counts, rate, bytes and ETA."""
    from rich.console import Group
    from rich.progress_bar import ProgressBar
    from rich.table import Table
    from rich.text import Text

    total = view.total if view.total else None
    style = {"Complete": "green", "Failed": "red", "Timeout": "red", "Cancelled": "yellow"}.get(view.status, "cyan")
    head = Table.grid(padding=(0, 1))
    head.add_column(no_wrap=True)
    head.add_column(ratio=1)
    head.add_column(no_wrap=True, justify="right")
    percent = f"{100 * view.done / view.total:.0f} %" if view.total else "-"
    head.add_row(
        Text(view.status, style=f"bold {style}"),
        ProgressBar(total=total, completed=view.done, complete_style=style),
        Text(f"{percent}  {view.done}/{view.total}{'' if view.planning_complete or view.finished else '+'}"),
    )
    counts = Text()
    colours = {"Restoring": "cyan", "Restored": "green", "Skipped": "blue", "Failed": "red", "Cancelled": "yellow"}
    for name in STATES:
        counts.append(f"{name} ", style="dim").append(f"{view.counts.get(name, 0)}  ", style=colours[name])
    facts = []
    rate = view.rate()
    facts.append(f"rate {rate:.1f} restored/s" if rate else "rate -")
    if view.bytes_moved is not None:
        byte_rate = view.byte_rate()
        facts.append(f"moved {output.size(view.bytes_moved)}" + (f" ({output.size(byte_rate)}/s)" if byte_rate else ""))
    eta, how = view.eta(wall_now)
    if not view.finished:
        facts.append(f"ETA {output.duration(eta)} ({how})" if eta is not None else "ETA -")
    lines: list[Any] = [Text(f"job {view.job_id}  {view.tier.lower()} tier", style="dim"), head, counts, Text("  ".join(facts))]
    if view.failure_reason and view.finished:
        lines.append(Text(view.failure_reason, style=style))
    return Group(*lines)


class Display:
    """A rich Live display on a terminal, plain lines otherwise."""

    def __init__(self, out: IO[str], terminal: bool | None = None, console: Any = None):
        self.out = out
        self.terminal = out.isatty() if terminal is None else terminal
        self.live: Any = None
        self.console = console
        self.last_line = ""
        if self.terminal:
            try:
                from rich.console import Console
                from rich.live import Live
            except ImportError:  # the cli extra was not installed: lines still work
                self.terminal = False
            else:
                self.console = console or Console(file=out)
                self.live = Live(console=self.console, auto_refresh=False, transient=False)

    def __enter__(self) -> Display:
        if self.live is not None:
            self.live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.live is not None:
            self.live.__exit__(*exc)

    def show(self, view: JobView, changed: bool) -> None:
        if self.live is not None:
            self.live.update(rich_frame(view), refresh=True)  # also when only the ETA moved
            return
        if changed:
            line = plain_line(view)
            if line != self.last_line:
                self.out.write(line + "\n")
                self.out.flush()
                self.last_line = line


def exit_code(view: JobView, allow_failed: bool, ok: list[str]) -> int:
    if view.status == "Complete":
        return EXIT_COMPLETE_WITH_FAILURES if view.counts.get("Failed", 0) and not allow_failed else 0
    if view.status in ok:
        return 0
    return {"Failed": EXIT_JOB_FAILED, "Timeout": EXIT_JOB_TIMEOUT, "Cancelled": EXIT_JOB_CANCELLED}[view.status]


# ---- feeds ------------------------------------------------------------------------------------------


class EventFeed:
    """The job's events through a queue of this watch's own, subscribed to the job topic."""

    def __init__(self, stack: Stack, topic_arn: str, job_id: str):
        self.sqs = stack.client("sqs")
        self.sns = stack.client("sns")
        self.topic_arn = topic_arn
        self.job_id = job_id
        self.queue_url: str | None = None
        self.subscription: str | None = None

    def open(self) -> None:
        name = f"bulk-restore-watch-{self.job_id[:8]}-{uuid.uuid4().hex[:8]}"
        self.queue_url = self.sqs.create_queue(
            QueueName=name, Attributes={"MessageRetentionPeriod": "3600", "SqsManagedSseEnabled": "true"}
        )["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        policy = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "JobTopic",
                    "Effect": "Allow",
                    "Principal": {"Service": "sns.amazonaws.com"},
                    "Action": "sqs:SendMessage",
                    "Resource": arn,
                    "Condition": {"ArnEquals": {"aws:SourceArn": self.topic_arn}},
                }
            ],
        }
        self.sqs.set_queue_attributes(QueueUrl=self.queue_url, Attributes={"Policy": json.dumps(policy)})
        self.subscription = self.sns.subscribe(
            TopicArn=self.topic_arn,
            Protocol="sqs",
            Endpoint=arn,
            ReturnSubscriptionArn=True,
            Attributes={"FilterPolicy": json.dumps({"JobId": [self.job_id]}), "RawMessageDelivery": "true"},
        )["SubscriptionArn"]

    def receive(self, wait: float) -> list[dict[str, Any]]:
        assert self.queue_url is not None
        got = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=max(0, min(20, math.ceil(wait))))
        events = []
        for message in got.get("Messages", []):
            try:
                body = json.loads(message["Body"])
                if isinstance(body, dict) and body.get("Type") == "Notification" and "Message" in body:
                    body = json.loads(body["Message"])  # a topic that delivers the SNS envelope anyway
            except ValueError:
                body = None
            if isinstance(body, dict) and body.get("JobId") == self.job_id:
                events.append(body)
            self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
        return events

    def close(self) -> None:
        """Unsubscribe and delete the queue; whatever fails here is said, not raised."""
        for what, action in (
            ("subscription", lambda: self.subscription and self.sns.unsubscribe(SubscriptionArn=self.subscription)),
            ("queue", lambda: self.queue_url and self.sqs.delete_queue(QueueUrl=self.queue_url)),
        ):
            try:
                action()
            except Exception as exc:
                print(
                    f"bulk-restore: could not remove the watch {what} ({exc}): delete it by hand "
                    f"({self.subscription if what == 'subscription' else self.queue_url})",
                    file=sys.stderr,
                )
        self.subscription = self.queue_url = None


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM ends a watch as Ctrl-C does: through the cleanup."""

    def interrupt(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def open_events(stack: Stack, job_id: str, topic_arn: str | None, quiet: bool) -> EventFeed | None:
    """The job's event feed, or None (said on stderr) when it cannot be had: then poll."""
    from botocore.exceptions import BotoCoreError, ClientError

    if not topic_arn or not stack.has_aws:
        if not quiet:
            print("bulk-restore: the job topic or AWS is not known here: polling GET /jobs/ID instead", file=sys.stderr)
        return None
    feed = EventFeed(stack, topic_arn, job_id)
    try:
        feed.open()
    except (ClientError, BotoCoreError) as exc:
        feed.close()
        code = exc.response.get("Error", {}).get("Code", "") if isinstance(exc, ClientError) else type(exc).__name__
        if not quiet:
            print(
                f"bulk-restore: cannot subscribe a queue to the job's events ({code}): polling GET /jobs/ID instead "
                "(--poll says so from the start)",
                file=sys.stderr,
            )
        return None
    return feed


def follow(
    api: ApiClient,
    job_id: str,
    display: Display,
    feed: EventFeed | None,
    interval: float,
    timeout: float | None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> JobView | None:
    """Show the job until it ends (its view) or ``timeout`` passes (None)."""
    view = JobView(job_id)
    start = clock()
    view.update(api.job(job_id), clock())  # after subscribing: nothing between the two is missed
    display.show(view, True)
    next_read = clock() + interval
    while not view.finished:
        now = clock()
        if timeout is not None and now - start >= timeout:
            return None
        wait = max(0.0, min(next_read - now, (start + timeout - now) if timeout is not None else next_read - now))
        changed = False
        if feed is not None:
            for event in feed.receive(min(wait, 5.0)):
                if event.get("EventId") != view.last_event_id:
                    view.last_event_id = event.get("EventId", "")
                    changed |= view.update(event, clock())
        else:
            sleep(min(wait, 1.0))
        if clock() >= next_read or (view.finished and feed is not None):
            changed |= view.update(api.job(job_id), clock())  # the final counts too, after a terminal event
            next_read = clock() + interval
        display.show(view, changed)
    return view


def watch_command(args: argparse.Namespace) -> int:
    from bulk_restore_cli.client.commands import check_job_id, connect

    job_id = check_job_id(args.job_id)
    if args.interval is not None and args.interval <= 0:
        raise CliError("--interval must be more than 0 seconds")
    if args.timeout is not None and args.timeout <= 0:
        raise CliError("--timeout must be more than 0 seconds")
    stack, api = connect(args)
    first = api.job(job_id)  # an unknown job is said before any queue is made
    feed = None
    with _sigterm_as_interrupt():
        try:
            if not args.poll and first.get("Status") not in TERMINAL:
                feed = open_events(stack, job_id, first.get("SNSTopic") or stack.topic_arn, args.quiet)
            interval = args.interval or (30.0 if feed is not None else 5.0)
            terminal = args.output != "json" and sys.stdout.isatty()
            with Display(sys.stdout, terminal=terminal) if args.output != "json" else _Silent() as display:
                view = follow(api, job_id, display, feed, interval, args.timeout)
        finally:
            if feed is not None:
                feed.close()
    if view is None:
        print(f"bulk-restore: job {job_id} is still running after --timeout {args.timeout:g} s", file=sys.stderr)
        return EXIT_WATCH_TIMEOUT
    if args.output == "json":
        output.to_json(api.job(job_id))
    return exit_code(view, args.allow_failed, args.ok)


class _Silent:
    """--output json: nothing until the end, then the final status document."""

    def __enter__(self) -> _Silent:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def show(self, view: JobView, changed: bool) -> None:
        return None
