"""A real-sized job on the local stack, side by side with what a user would run instead.

One local stack (`bulk-restore local`, a subprocess), one run:
1. the baseline: a threaded boto3 loop calling RestoreObject on archived objects of one bucket,
   against the local stack's AWS endpoint (what a user would write instead of this product);
   then the same loop from two processes at once on another bucket: whether the endpoint or
   the loop's client bounds it;
2. bulk-restore: a job of ``objects`` archived objects of another bucket, created over HTTP:
   its issuance rate (objects requested per second, create-job to the last request accounted)
   and its whole time (create-job to Complete), while a poller measures `GET /jobs/{id}`;
3. 200 concurrent create-job calls of small manifests: their status codes and refused or reset
   connections.

Objects are written with threads (S3 PutObject on the same endpoint), before anything is timed.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import threading
import time
import urllib.error
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bulk_restore_cli.demo import ApiClient, LocalStackProcess

LOOP_THREADS = 16  # the restore worker's RestoreConcurrency: the same parallelism per process
SEED_THREADS = 16


def _clients(info: dict[str, Any], pool: int) -> Any:
    import boto3
    from botocore.config import Config

    session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=info["region"])
    config = Config(max_pool_connections=pool, retries={"max_attempts": 5, "mode": "standard"})
    return session.client("s3", endpoint_url=info["aws_endpoint_url"], config=config)


def _seed(s3: Any, bucket: str, keys: list[str]) -> float:
    """Archive ``keys`` in ``bucket``. Returns the objects written per second."""
    s3.create_bucket(Bucket=bucket)
    started = time.monotonic()
    with ThreadPoolExecutor(SEED_THREADS) as pool:
        list(pool.map(lambda key: s3.put_object(Bucket=bucket, Key=key, Body=b"x", StorageClass="GLACIER"), keys))
    return len(keys) / max(time.monotonic() - started, 1e-9)


def threaded_loop(s3: Any, bucket: str, keys: list[str], threads: int = LOOP_THREADS) -> dict[str, Any]:
    """RestoreObject for every key with a thread pool, as a user's script would. Its rate is the baseline."""
    answers: dict[int, int] = {}
    lock = threading.Lock()

    def restore(key: str) -> None:
        response = s3.restore_object(Bucket=bucket, Key=key, RestoreRequest={"Days": 1, "GlacierJobParameters": {"Tier": "Standard"}})
        with lock:
            status = response["ResponseMetadata"]["HTTPStatusCode"]
            answers[status] = answers.get(status, 0) + 1

    started = time.monotonic()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(restore, keys))
    seconds = time.monotonic() - started
    return {
        "objects": len(keys),
        "threads": threads,
        "seconds": round(seconds, 2),
        "per_second": round(len(keys) / seconds, 1),
        "answers": {str(k): v for k, v in sorted(answers.items())},
    }


_LOOP_PROCESS = """
import json, sys
from bulk_restore_cli.bench.local_scale import _clients, threaded_loop
info, bucket, keys = json.loads(sys.argv[1]), sys.argv[2], json.loads(sys.stdin.read())
print(json.dumps(threaded_loop(_clients(info, 24), bucket, keys)))
"""


def loop_in_processes(info: dict[str, Any], bucket: str, keys: list[str], processes: int, endpoint_pid: int) -> dict[str, Any]:
    """The same threaded loop from ``processes`` processes at once, each on its share of ``keys``:
    their rate together, and the endpoint's CPU per object and busy share meanwhile. As fast as
    one process: the endpoint, not the client, bounds the loop."""
    import os
    import subprocess
    import sys

    shares = [keys[n::processes] for n in range(processes)]
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    cpu_before, started = cpu_seconds(endpoint_pid), time.monotonic()
    running = [
        subprocess.Popen(
            [sys.executable, "-c", _LOOP_PROCESS, json.dumps(info), bucket],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=environment,
        )
        for _ in shares
    ]
    answers = [
        json.loads(process.communicate(json.dumps(share).encode(), timeout=3600)[0]) for process, share in zip(running, shares, strict=True)
    ]
    seconds, cpu_after = time.monotonic() - started, cpu_seconds(endpoint_pid)
    return {
        "processes": processes,
        "objects": len(keys),
        "seconds": round(seconds, 2),
        "per_second": round(len(keys) / seconds, 1),
        "answers": {code: sum(a["answers"].get(code, 0) for a in answers) for code in sorted({c for a in answers for c in a["answers"]})},
        "endpoint_cpu_ms_per_object": _per_object_ms(cpu_before, cpu_after, len(keys)),
        "endpoint_busy": round((cpu_after - cpu_before) / seconds, 3) if cpu_before is not None and cpu_after is not None else None,
    }


class _StatusPoller(threading.Thread):
    """GET /jobs/{id} every ``interval`` seconds, as a dashboard would, timing each answer."""

    def __init__(self, api: ApiClient, job_id: str, interval: float = 0.25):
        super().__init__(daemon=True)
        self.api, self.job_id, self.interval = api, job_id, interval
        self.latencies: list[float] = []
        self.errors = 0
        self.last: dict[str, Any] = {}
        self.stop_event = threading.Event()

    def run(self) -> None:
        while not self.stop_event.is_set():
            started = time.monotonic()
            try:
                status, document = self.api.call("GET", f"/jobs/{self.job_id}")
            except OSError:
                self.errors += 1
                status, document = 0, None
            self.latencies.append(time.monotonic() - started)
            if status == 200:
                self.last = document
            else:
                self.errors += 1
            self.stop_event.wait(self.interval)


def cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system) a process has used so far, from /proc (None where there is none).

    The endpoint's CPU per object is steadier than a rate when other work shares the machine: the
    loop and the job each cost the emulator's one interpreter so many milliseconds per object,
    whatever else slows the wall clock."""
    import os

    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def _per_object_ms(before: float | None, after: float | None, objects: int) -> float | None:
    if before is None or after is None or objects <= 0:
        return None
    return round((after - before) * 1000 / objects, 3)


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def runs_started(doc: dict[str, Any]) -> bool:
    """A batch-engine job has its S3 Batch Operations jobs (a direct one needs none)."""
    return doc.get("Engine") != "batch" or bool(doc.get("BatchOperations"))


def run_job(api: ApiClient, manifest: dict[str, str], objects: int, timeout: float) -> dict[str, Any]:
    """Create the job and follow it: the moment its last request is accounted (with the batch
    engine: its S3 Batch Operations jobs have run every task), and its end."""
    started = time.monotonic()
    status, created = api.call("POST", "/create-job", {**manifest, "tier": "STANDARD", "expiration_days": 1})
    if status != 200:
        raise RuntimeError(f"create-job answered {status}: {created}")
    poller = _StatusPoller(api, created["JobId"])
    poller.start()
    issued_at = None
    try:
        while time.monotonic() - started < timeout:
            doc = poller.last
            runs = doc.get("BatchOperations") or []
            batch_done = all(r.get("Status") == "Complete" for r in runs) if doc.get("Engine") == "batch" else True
            if (
                issued_at is None
                and doc.get("Planning", {}).get("Complete")
                and doc.get("RequestedCount") == objects
                and doc["Planning"]["ChunksAccounted"] >= doc["Planning"]["ChunksPlanned"]
                and runs_started(doc)
                and batch_done
            ):
                issued_at = time.monotonic()
            if doc.get("Status") in ("Complete", "Failed", "Cancelled", "Timeout"):
                break
            time.sleep(0.1)
    finally:
        poller.stop_event.set()
        poller.join(60)
    ended = time.monotonic()
    doc = poller.last
    issuance = (issued_at or ended) - started
    return {
        "objects": objects,
        "status": doc.get("Status"),
        "counts": doc.get("Counts"),
        "issuance_seconds": round(issuance, 2),
        "issued_per_second": round(objects / issuance, 1),
        "whole_seconds": round(ended - started, 2),
        "status_calls": len(poller.latencies),
        "status_errors": poller.errors,
        "status_p50_ms": round(_percentile(poller.latencies, 0.50) * 1000, 1),
        "status_p99_ms": round(_percentile(poller.latencies, 0.99) * 1000, 1),
        "status_max_ms": round(max(poller.latencies, default=0) * 1000, 1),
        "status_mean_ms": round(statistics.fmean(poller.latencies) * 1000, 1) if poller.latencies else 0.0,
    }


def concurrent_creates(api: ApiClient, s3: Any, info: dict[str, Any], calls: int) -> dict[str, Any]:
    """``calls`` create-job calls at once, each for a one-object manifest: what came back."""
    bucket = "scale-concurrent"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="readable.txt", Body=b"x")
    s3.put_object(Bucket=info["manifest_bucket"], Key="concurrent.csv", Body=f"{bucket},readable.txt\n".encode())
    barrier = threading.Barrier(calls)
    outcomes: dict[str, int] = {}
    lock = threading.Lock()

    def one(n: int) -> None:
        barrier.wait()
        try:
            status, _ = api.call("POST", "/create-job", {"bucket": info["manifest_bucket"], "key": "concurrent.csv", "client_tag": f"c{n}"})
            outcome = str(status)
        except urllib.error.URLError as exc:  # a connection refused or reset: named by its cause
            outcome = type(exc.reason).__name__ if isinstance(exc.reason, BaseException) else type(exc).__name__
        except OSError as exc:
            outcome = type(exc).__name__
        with lock:
            outcomes[outcome] = outcomes.get(outcome, 0) + 1

    started = time.monotonic()
    with ThreadPoolExecutor(calls) as pool:
        list(pool.map(one, range(calls)))
    return {"calls": calls, "outcomes": dict(sorted(outcomes.items())), "seconds": round(time.monotonic() - started, 2)}


def _inventory(info: dict[str, Any], bucket: str) -> str:
    """An S3 Inventory report of ``bucket`` in the stack's manifest bucket, made by the local endpoint."""
    from urllib.request import Request, urlopen

    url = f"{info['aws_endpoint_url']}/_bulk_restore/inventory?bucket={bucket}&destination={info['manifest_bucket']}&prefix=inventory"
    with urlopen(Request(url, method="POST"), timeout=600) as answer:
        return str(json.loads(answer.read())["manifest_key"])


def run(
    objects: int = 100_000,
    loop_objects: int = 10_000,
    restore_seconds: float = 5.0,
    concurrent: int = 200,
    timeout: float = 3600.0,
    source: str = "manifest",
    engine: str = "direct",
    loop_processes: int = 2,
) -> dict[str, Any]:
    """``source``: the job's objects from a CSV manifest, or from an S3 Inventory report of the
    bucket (made by the local stack); ``engine``: direct or batch; ``loop_processes``: after the
    loop, the same loop again from that many processes at once (1: not)."""
    with tempfile.TemporaryDirectory(prefix="bulk-restore-scale-") as workdir:
        stats_path = Path(workdir) / "endpoint.json"
        stack = LocalStackProcess(restore_seconds, Path(workdir), extra=["--endpoint-stats", str(stats_path)])
        info = stack.start(timeout=120)
        try:
            s3 = _clients(info, max(LOOP_THREADS, SEED_THREADS) + 4)
            api = ApiClient(info["api_url"], info["api_key"], timeout=60)
            loop_keys = [f"loop/{i:07d}.bin" for i in range(loop_objects)]
            job_keys = [f"job/{i:07d} photo.bin" for i in range(objects)]
            _seed(s3, "scale-loop", loop_keys)
            if loop_processes > 1:
                _seed(s3, "scale-loop-split", loop_keys)
            seeded = _seed(s3, "scale-job", job_keys)
            fields: dict[str, Any] = {"bucket": info["manifest_bucket"], "engine": engine}
            if source == "s3-inventory":
                fields |= {"key": _inventory(info, "scale-job"), "manifest_format": "s3-inventory"}
            else:
                fields["key"] = "scale/manifest.csv"
                body = "".join(f"scale-job,job/{i:07d}%20photo.bin\n" for i in range(objects)).encode()
                s3.put_object(Bucket=info["manifest_bucket"], Key=fields["key"], Body=body)

            pid = stack.process.pid if stack.process is not None else 0
            cpu_start = cpu_seconds(pid)
            loop = threaded_loop(s3, "scale-loop", loop_keys)
            cpu_loop = cpu_seconds(pid)
            split = loop_in_processes(info, "scale-loop-split", loop_keys, loop_processes, pid) if loop_processes > 1 else None
            cpu_before_job = cpu_seconds(pid)
            job = run_job(api, fields, objects, timeout)
            cpu_job = cpu_seconds(pid)
            # the endpoint process's CPU per object: the loop's, and the job's up to Complete (its
            # completions and status reads included)
            loop["endpoint_cpu_ms_per_object"] = _per_object_ms(cpu_start, cpu_loop, len(loop_keys))
            job["endpoint_cpu_ms_per_object"] = _per_object_ms(cpu_before_job, cpu_job, objects)
            creates = concurrent_creates(api, s3, info, concurrent) if concurrent else None
        finally:
            code = stack.stop()
            endpoint, endpoint_note = read_endpoint_stats(stats_path)
            # what the stack was doing when it would not stop, or stopped without its figures
            log_tail = stack.log_tail(40) if code != 0 or endpoint_note != "written" else ""
    return {
        "objects": objects,
        "source": source,
        "engine": engine,
        "restore_seconds": restore_seconds,
        "seeded_per_second": round(seeded, 1),
        "loop": loop,
        "loop_in_processes": split,
        "job": job,
        "issuance_ratio": round(job["issued_per_second"] / loop["per_second"], 3),
        # the same comparison in the endpoint's CPU per object: the loop's / the job's
        "endpoint_cpu_ratio": (
            round(loop["endpoint_cpu_ms_per_object"] / job["endpoint_cpu_ms_per_object"], 3)
            if loop.get("endpoint_cpu_ms_per_object") and job.get("endpoint_cpu_ms_per_object")
            else None
        ),
        "whole_over_loop_issuance": round(job["whole_seconds"] / (objects / loop["per_second"]), 3),
        "concurrent_creates": creates,
        "stack_exit": code,
        "stack_log_tail": log_tail,
        "endpoint": dict(list(endpoint.items())[:12]),  # the AWS endpoint's busiest operations: requests, seconds inside moto
        "endpoint_stats": endpoint_note,  # "written", or why there are no figures
    }


def read_endpoint_stats(path: Path) -> tuple[dict[str, Any], str]:
    """The figures ``bulk-restore local --endpoint-stats`` wrote once stopped, and "written"; or
    none and what was wrong (no file, or not the JSON object the stack writes)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}, "no file"
    try:
        figures = json.loads(text)
    except ValueError:
        return {}, f"not JSON ({len(text)} bytes)"
    if not isinstance(figures, dict) or not figures:
        return {}, "no figures"
    return figures, "written"
