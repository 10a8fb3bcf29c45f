"""`bulk-restore local` in the middle of a large job, stopped as a user stops it: SIGTERM or Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests

from bulk_restore_cli.demo import free_port
from support.cli import command, start_local

pytestmark = pytest.mark.e2e

OBJECTS = 2000
BUCKET = "busy-archive"
STOP_SECONDS = 5.0
# Which function logs each of these lines (the use cases' and handlers' own messages).
LOGGED_BY = {
    "job accepted": "ApiFunction",
    "chunks accounted": "RestoreFunction",
    "restores completed": "CompletionFunction",
    "sweep done": "SweeperFunction",
}


class BusyStack:
    """A local stack in a subprocess, given a job of OBJECTS archived objects and left working on it."""

    def __init__(self, tmp: Path):
        self.ready_file = tmp / "ready.json"
        self.log_path = tmp / "stack.log"
        self.process, self.info = start_local(self.ready_file, self.log_path, "--restore-seconds", "1", "--sweep-seconds", "1")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def function_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log().splitlines() if line.startswith('{"level"')]

    def start_job(self) -> str:
        s3 = boto3.client(
            "s3",
            endpoint_url=self.info["aws_endpoint_url"],
            region_name=self.info["region"],
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        s3.create_bucket(Bucket=BUCKET)
        keys = [f"archived/{i:05d}.bin" for i in range(OBJECTS)]
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda key: s3.put_object(Bucket=BUCKET, Key=key, Body=b"x", StorageClass="GLACIER"), keys))
        manifests = self.info["manifest_bucket"]  # manifests are read from the stack's manifest bucket only
        s3.put_object(Bucket=manifests, Key="manifest.csv", Body="".join(f"{BUCKET},{key}\n" for key in keys).encode())
        created = requests.post(
            f"{self.info['api_url']}/create-job",
            json={"bucket": manifests, "key": "manifest.csv"},
            headers={"x-api-key": self.info["api_key"]},
            timeout=30,
        )
        assert created.status_code == 200, created.text
        return str(created.json()["JobId"])

    def status(self, job_id: str) -> dict[str, Any]:
        return requests.get(f"{self.info['api_url']}/jobs/{job_id}", headers={"x-api-key": self.info["api_key"]}, timeout=30).json()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_busy_local_stack_exits_within_5_seconds_of_a_signal_and_removes_its_ready_file(tmp_path: Path, signum: int) -> None:
    # Given a local stack restoring a job of 2,000 archived objects: planner, restore threads, pacing, completions, sweeps
    stack = BusyStack(tmp_path)
    try:
        job_id = stack.start_job()
        deadline = time.monotonic() + 20
        while not any(line["message"] == "chunks accounted" for line in stack.function_lines()):
            assert time.monotonic() < deadline, "no chunk accounted in 20 s"
            time.sleep(0.2)
        assert stack.status(job_id)["Status"] == "Restoring"  # still busy: far from done
        # When it gets the signal
        stack.process.send_signal(signum)
        sent = time.monotonic()
        try:
            code = stack.process.wait(STOP_SECONDS + 3)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running {STOP_SECONDS + 3:g} s after {signal.Signals(signum).name}:\n{stack.log()[-2000:]}")
        took = time.monotonic() - sent
        # Then it exited within 5 s, with exit code 0, and took its ready file with it
        assert took < STOP_SECONDS, f"took {took:.1f} s"
        assert code == 0, stack.log()[-2000:]
        assert not stack.ready_file.exists()
        assert stack.log().rstrip().endswith("stopped")
        # And its restore threads never ran short of connections
        assert "Connection pool is full" not in stack.log()
        # And every function's lines, while it was busy, carried that function's own name
        lines = stack.function_lines()
        assert any(line["message"] == "chunks accounted" for line in lines)
        for line in lines:
            if line["message"] in LOGGED_BY:
                assert f"-{LOGGED_BY[line['message']]}-" in line["function_name"], line
    finally:
        stack.kill()


def test_a_local_stack_stopped_while_starting_exits_at_once_without_a_ready_file(tmp_path: Path) -> None:
    # Given a local stack that has its AWS endpoint up and is provisioning the template
    ready_file, log_path = tmp_path / "ready.json", tmp_path / "stack.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command("local", "--api-port", str(free_port()), "--aws-port", str(free_port()), "--ready-file", str(ready_file)),
            stdout=subprocess.DEVNULL,
            stderr=log,
            stdin=subprocess.DEVNULL,
            env=env,
        )
    try:
        deadline = time.monotonic() + 30
        while "AWS endpoint up" not in log_path.read_text(errors="replace"):
            assert process.poll() is None and time.monotonic() < deadline, log_path.read_text(errors="replace")
            time.sleep(0.02)
        # When it gets SIGTERM
        process.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        code = process.wait(STOP_SECONDS + 3)
        # Then it exits within 5 s with exit code 0, and never said it was ready
        assert time.monotonic() - sent < STOP_SECONDS
        assert code == 0, log_path.read_text(errors="replace")
        assert not ready_file.exists()
        assert log_path.read_text().rstrip().endswith("stopped")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
