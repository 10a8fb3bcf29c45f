"""The client commands against a running local stack, as a user types them: create a job from a
local file, watch it to its end, list its failures by reason, cancel one, list the jobs."""

from __future__ import annotations

import csv
import io
import json
import os
import pty
import re
import select
import shlex
import shutil
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest

from support.cli import clean_env, command, start_local

pytestmark = pytest.mark.e2e

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class LocalStack:
    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.ready_file = tmp / "ready.json"
        self.process, self.info = start_local(self.ready_file, tmp / "stack.log", "--restore-seconds", "5", "--sweep-seconds", "2")

    def client(self, service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.info["aws_endpoint_url"],
            region_name=self.info["region"],
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def env(self) -> dict[str, str]:
        """No AWS settings of the machine, and the user's directories in the test's place."""
        return clean_env() | {"XDG_CONFIG_HOME": str(self.tmp / "config"), "XDG_STATE_HOME": str(self.tmp / "state"), "HOME": str(self.tmp)}

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(command(*args), capture_output=True, text=True, timeout=timeout, env=self.env(), stdin=subprocess.DEVNULL)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Any:
    stack = LocalStack(tmp_path_factory.mktemp("client"))
    yield stack
    stack.stop()


def archive(local: LocalStack, count: int, storage_class: str = "GLACIER", missing: int = 0) -> Path:
    """A bucket of archived objects, and a local manifest file naming them (and ``missing`` keys that are not there)."""
    s3 = local.client("s3")
    bucket = f"client-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    for i in range(count):
        s3.put_object(Bucket=bucket, Key=f"photos/{i:03d} a+b.jpg", Body=b"x", StorageClass=storage_class)
    rows = [f"{bucket},photos/{i:03d}%20a%2Bb.jpg" for i in range(count)] + [f"{bucket},gone/{i}.jpg" for i in range(missing)]
    path = local.tmp / f"{bucket}.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def create(local: LocalStack, manifest: Path, *options: str) -> str:
    result = local.run("create-job", str(manifest), "--ready-file", str(local.ready_file), *options)
    assert result.returncode == 0, result.stderr
    job_id = result.stdout.strip()
    assert UUID.match(job_id), result.stdout
    return job_id


def watch_queues(local: LocalStack) -> list[str]:
    return [u for u in local.client("sqs").list_queues().get("QueueUrls", []) if "bulk-restore-watch" in u]


def test_create_from_a_local_file_and_watch_it_to_complete(local: LocalStack) -> None:
    # Given a local manifest of 30 archived objects
    manifest = archive(local, 30)
    # When a job is created from the file, with the stack's ready file
    result = local.run("create-job", str(manifest), "--ready-file", str(local.ready_file), "--tier", "standard", "--client-tag", "cli-e2e")
    # Then the job id is all of stdout, and stderr says which stack was used and where the file went
    assert result.returncode == 0, result.stderr
    job_id = result.stdout.strip()
    assert UUID.match(job_id)
    err = result.stderr.splitlines()
    assert err[0] == f"bulk-restore: using the local stack (ready file {local.ready_file})"
    assert re.match(rf"bulk-restore: uploaded .*\.csv to s3://{local.info['manifest_bucket']}/uploads/", err[1]), err
    # When it is watched to its end (stdout is no terminal: a line per change)
    watched = local.run("watch", job_id, "--ready-file", str(local.ready_file))
    # Then it exits 0 with the job Complete, every object restored, and its queue removed
    assert watched.returncode == 0, watched.stderr
    lines = watched.stdout.strip().splitlines()
    assert "Complete  30/30 settled" in lines[-1] and "restored 30" in lines[-1], lines
    assert "\x1b" not in watched.stdout and "Traceback" not in watched.stderr
    assert watch_queues(local) == []
    # And status says so too, in a table and as the API's JSON
    shown = local.run("status", job_id, "--ready-file", str(local.ready_file), "-q")
    assert shown.returncode == 0 and shown.stderr == ""
    assert re.search(r"^Status\s+Complete$", shown.stdout, re.M) and re.search(r"^Restored\s+30$", shown.stdout, re.M)
    as_json = json.loads(local.run("status", job_id, "--ready-file", str(local.ready_file), "--output", "json").stdout)
    assert (as_json["JobId"], as_json["Status"], as_json["ClientTag"]) == (job_id, "Complete", "cli-e2e")


def test_failed_objects_set_the_exit_code_and_are_listed_by_reason(local: LocalStack) -> None:
    # Given a job of 5 archived objects and 3 keys that do not exist, watched to its end
    job_id = create(local, archive(local, 5, missing=3), "--tier", "expedited")
    watched = local.run("watch", job_id, "--ready-file", str(local.ready_file), "-q")
    # Then the watch says Complete with failed objects: exit code 3; with --allow-failed, 0
    assert watched.returncode == 3, (watched.stdout, watched.stderr)
    assert local.run("watch", job_id, "--ready-file", str(local.ready_file), "-q", "--allow-failed").returncode == 0
    # When its failures are counted by reason
    reasons = local.run("objects", job_id, "--reason", "--ready-file", str(local.ready_file), "-q")
    # Then there is one reason, three times
    assert reasons.returncode == 0, reasons.stderr
    assert reasons.stdout.splitlines() == ["COUNT  REASON", "3      NoSuchKey: no such key in the bucket"]
    as_json = json.loads(local.run("objects", job_id, "--reason", "-o", "json", "--ready-file", str(local.ready_file)).stdout)
    assert as_json["Reasons"] == [{"Reason": "NoSuchKey: no such key in the bucket", "Count": 3}] and as_json["State"] == "FAILED"
    # And the failed objects come as CSV, with their keys as S3 knows them
    failed = local.run("objects", job_id, "--state", "failed", "-o", "csv", "--ready-file", str(local.ready_file))
    rows = list(csv.DictReader(io.StringIO(failed.stdout)))
    assert sorted(r["key"] for r in rows) == ["gone/0.jpg", "gone/1.jpg", "gone/2.jpg"]
    assert {r["state"] for r in rows} == {"FAILED"} and all(r["manifest_line"] for r in rows)
    # And every object in a table
    table = local.run("objects", job_id, "--ready-file", str(local.ready_file), "-q").stdout.splitlines()
    assert table[0].split() == ["STATE", "BUCKET", "KEY", "VERSION", "LINE", "REASON"] and len(table) == 9
    assert any(line.startswith("RESTORED") and "photos/000 a+b.jpg" in line for line in table)


def test_cancel_ends_a_job_and_watch_says_cancelled(local: LocalStack) -> None:
    # Given a job of Deep Archive objects at the Bulk tier (the slowest restores)
    job_id = create(local, archive(local, 40, storage_class="DEEP_ARCHIVE"), "--tier", "bulk")
    # When it is cancelled
    cancelled = local.run("cancel", job_id, "--ready-file", str(local.ready_file), "-q")
    # Then the answer says so, and a second cancel is refused in one line
    assert cancelled.returncode == 0, cancelled.stderr
    assert cancelled.stdout.startswith(f"{job_id} Cancelled: no new restore requests")
    again = local.run("cancel", job_id, "--ready-file", str(local.ready_file), "-q")
    assert again.returncode == 2 and again.stderr.startswith("bulk-restore: JobAlreadyFinished: ") and len(again.stderr.splitlines()) == 1
    # And watching it exits 6 (Cancelled), or 0 when Cancelled is fine
    assert local.run("watch", job_id, "--ready-file", str(local.ready_file), "-q", "--poll", "--interval", "0.5").returncode == 6
    assert local.run("watch", job_id, "--ready-file", str(local.ready_file), "-q", "--ok", "cancelled").returncode == 0


def test_jobs_lists_the_newest_first_from_the_default_ready_file(local: LocalStack) -> None:
    # Given two new jobs, and the stack's ready line where `bulk-restore local` writes it by default
    manifest = archive(local, 2)
    first, second = create(local, manifest), create(local, manifest)
    default = local.tmp / "state" / "bulk-restore" / "local.json"
    default.parent.mkdir(parents=True, exist_ok=True)
    default.write_text(local.ready_file.read_text())
    # When the jobs are listed with no option naming the stack
    listed = local.run("jobs", "--limit", "2")
    # Then the local stack was found, and the two newest jobs come first
    assert listed.returncode == 0, listed.stderr
    assert listed.stderr.splitlines()[0] == f"bulk-restore: using the local stack (ready file {default})"
    rows = listed.stdout.splitlines()
    assert rows[0].split() == ["JOB", "STATUS", "TIER", "SOURCE", "ENGINE", "CREATED", "TAG"]
    assert [row.split()[0] for row in rows[1:]] == [second, first]
    assert "--next-token" in listed.stderr  # the older jobs are a page further
    everything = json.loads(local.run("jobs", "--all", "-o", "json", "--limit", "1").stdout)
    ids = [job["JobId"] for job in everything["Jobs"]]
    assert ids[:2] == [second, first] and len(ids) == len(set(ids)) >= 4 and everything["NextToken"] is None


def test_watch_on_a_terminal_draws_a_bar_that_moves(local: LocalStack) -> None:
    # Given a job of 60 objects, just created
    job_id = create(local, archive(local, 60), "--tier", "standard")
    # When it is watched on a terminal (a pseudo-terminal here), polling often
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        command("watch", job_id, "--ready-file", str(local.ready_file), "--poll", "--interval", "0.3"),
        stdin=follower,
        stdout=follower,
        stderr=subprocess.PIPE,
        env=local.env() | {"COLUMNS": "100"},
    )
    os.close(follower)
    screen = b""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 1.0)
        if ready:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal closed: the watch has ended
                break
            if not chunk:
                break
            screen += chunk
        elif process.poll() is not None:
            break
    os.close(leader)
    code = process.wait(30)
    # Then it exits 0 once the job is Complete
    assert code == 0, process.stderr.read() if process.stderr else ""
    text = screen.decode("utf-8", "replace")
    # And it drew frames in place (cursor moves, colour), the first not yet full, the last Complete at 100 %
    assert "\x1b[" in text
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)
    bars = [line for line in plain.replace("\r", "\n").splitlines() if "━" in line]
    assert len(bars) >= 2, plain
    assert not bars[0].startswith("Complete") and "100 %" not in bars[0]
    assert bars[-1].startswith("Complete") and "100 %  60/60" in bars[-1]


def test_watch_in_tmux_shows_a_bar_that_moves_between_two_frames(local: LocalStack) -> None:
    # What a user sees in a real terminal emulator: the screen of a tmux pane, not the byte stream
    tmux = shutil.which("tmux")
    if tmux is None:
        pytest.skip("tmux is not installed (the pseudo-terminal test above covers the byte stream)")
    # Given a job of 80 objects, just created
    job_id = create(local, archive(local, 80), "--tier", "standard")
    # When `bulk-restore watch` runs in a tmux pane 100 columns wide, on a server of its own
    socket = f"bulk-restore-test-{uuid.uuid4().hex[:8]}"
    watch = shlex.join(command("watch", job_id, "--ready-file", str(local.ready_file), "--poll", "--interval", "0.3"))
    env = {k: v for k, v in local.env().items() if not k.startswith("TMUX")} | {"TERM": "xterm-256color"}
    base = [tmux, "-L", socket, "-f", os.devnull]
    subprocess.run(
        [*base, "new-session", "-d", "-x", "100", "-y", "20", "-s", "watch", f"{watch}; echo EXIT=$?; sleep 60"],
        check=True,
        env=env,
        timeout=30,
    )
    frames: list[str] = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            pane = subprocess.run([*base, "capture-pane", "-p", "-t", "watch"], capture_output=True, text=True, timeout=10).stdout
            if not frames or pane != frames[-1]:
                frames.append(pane)
            if "EXIT=" in pane:
                break
            time.sleep(0.2)
    finally:
        subprocess.run([*base, "kill-server"], capture_output=True, timeout=10)
    # Then the pane showed the bar at two or more different points before the end
    bars = [next((line for line in frame.splitlines() if "━" in line), "") for frame in frames]
    moving = [bar for bar in dict.fromkeys(bars) if bar and not bar.startswith("Complete")]
    assert len(moving) >= 1 and len(set(bars) - {""}) >= 2, "\n----\n".join(frames)
    # And the last frame is the finished bar, drawn in place (one bar on the screen), and exit code 0
    final = frames[-1]
    assert [line for line in final.splitlines() if "━" in line] == [bars[-1]]
    assert bars[-1].startswith("Complete") and "100 %  80/80" in bars[-1], final
    assert re.search(r"^EXIT=0$", final, re.MULTILINE), final


def test_recount_finds_the_counters_equal_to_the_objects_and_repairs_a_counter_made_wrong(local: LocalStack) -> None:
    # Given a job run to Complete on the local stack (its counts derived from the table's stream)
    job_id = create(local, archive(local, 12), "--tier", "standard")
    assert local.run("watch", job_id, "--ready-file", str(local.ready_file)).returncode == 0
    # When an operator recounts it
    recount = local.run("recount", job_id, "--ready-file", str(local.ready_file), "--output", "json")
    # Then the objects' items and the counters agree (exit 0)
    assert recount.returncode == 0, recount.stderr
    doc = json.loads(recount.stdout)
    assert doc["Items"] == doc["Counters"] and doc["Items"]["restored"] == 12 == doc["Items"]["total"] and doc["Difference"] == {}
    assert f"table {local.info['table_name']}" in recount.stderr
    # When a counter item is made wrong behind the stack's back (one object counted twice)
    ddb = local.client("dynamodb")
    items = ddb.query(
        TableName=local.info["table_name"],
        KeyConditionExpression="pk = :pk AND begins_with(sk, :c)",
        ExpressionAttributeValues={":pk": {"S": f"JOB#{job_id}"}, ":c": {"S": "COUNT#"}},
    )["Items"]
    assert items, "no counter item: the counting function did not run"
    ddb.update_item(
        TableName=local.info["table_name"],
        Key={"pk": items[0]["pk"], "sk": items[0]["sk"]},
        UpdateExpression="ADD restored :one",
        ExpressionAttributeValues={":one": {"N": "1"}},
    )
    # Then recount says they differ (exit 1), by one restored object
    wrong = local.run("recount", job_id, "--ready-file", str(local.ready_file))
    assert wrong.returncode == 1 and re.search(r"^restored\s+13\s+12\s+-1$", wrong.stdout, re.M), wrong.stdout
    # And --fix repairs it: the next recount agrees, and status shows 12 restored
    fixed = local.run("recount", job_id, "--ready-file", str(local.ready_file), "--fix")
    assert fixed.returncode == 0 and "the difference was added" in fixed.stdout, fixed.stdout + fixed.stderr
    assert local.run("recount", job_id, "--ready-file", str(local.ready_file)).returncode == 0
    status = json.loads(local.run("status", job_id, "--ready-file", str(local.ready_file), "--output", "json").stdout)
    assert status["Counts"]["Restored"] == 12
