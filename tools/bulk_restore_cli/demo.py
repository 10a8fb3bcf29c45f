"""`bulk-restore demo`: a real bulk restore on a fresh local stack, followed event by event.

It starts `bulk-restore local` in a subprocess, archives objects of every archive class under
awkward keys (spaces, "+", "%", commas, quotes, non-Latin scripts, a 1,024-byte key), adds one
STANDARD object (to be SKIPPED) and one missing key (to FAIL), writes the manifest (URL-encoded
keys, CRLF), creates the job over HTTP with the API key, prints a progress line per job event
read from the stack's job-events queue, and ends with a summary checked against what the job
must come to. Exit status 0 only if it came to exactly that.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote, urlencode

IT = "INTELLIGENT_TIERING"
# (storage class, Intelligent-Tiering archive tier)
ARCHIVE_KINDS = [("GLACIER", None), ("DEEP_ARCHIVE", None), (IT, "ARCHIVE_ACCESS"), (IT, "DEEP_ARCHIVE_ACCESS")]
TERMINAL = {"Complete", "Failed", "Cancelled", "Timeout"}
SEED_THREADS = 16


def long_key(size: int = 1024) -> str:
    """A key of exactly ``size`` bytes of UTF-8, mixing scripts."""
    key = "long/"
    while len((key + "ключ-鍵-").encode()) <= size:
        key += "ключ-鍵-"
    return key + "x" * (size - len(key.encode()))


AWKWARD_KEYS = [
    "reports/2024 Q1 summary.pdf",
    "math/a+b=c & d.txt",
    "percent/100% done (final).txt",
    "csv/one,two,three.csv",
    "quotes/\"double\" and 'single'.txt",
    "日本語/ファイル名 テスト.txt",
    "ελληνικά/αρχείο.txt",
    "عربي/ملف.txt",
    "emoji/🎉 party+fun.txt",
    "hash/#1?query=yes;semi.txt",
    "  leading and trailing spaces  ",
    long_key(),
]


@dataclass
class DemoOptions:
    objects: int = 50
    restore_seconds: float = 3.0
    tier: str = "BULK"
    engine: str = "auto"
    timeout: float = 120.0
    template: Path | None = None
    vault: bool = False  # move a Glacier vault's archives into S3 instead
    out: IO[str] = field(default_factory=lambda: sys.stdout)


@dataclass
class Plan:
    """What the demo archives and what the job must come to."""

    bucket: str
    archived: dict[str, tuple[str, str | None]]  # key -> (storage class, archive tier)
    skipped_key: str
    missing_key: str
    tier: str

    @property
    def manifest_keys(self) -> list[str]:
        return [*self.archived, self.skipped_key, self.missing_key]

    def will_fail(self, kind: tuple[str, str | None]) -> bool:
        # Expedited reaches no Deep Archive: S3 answers 400 InvalidArgument.
        return self.tier == "EXPEDITED" and (kind[0] == "DEEP_ARCHIVE" or kind[1] == "DEEP_ARCHIVE_ACCESS")

    @property
    def expected_failed(self) -> set[str]:
        return {k for k, kind in self.archived.items() if self.will_fail(kind)} | {self.missing_key}

    @property
    def expected(self) -> dict[str, int]:
        failed = len(self.expected_failed)
        total = len(self.manifest_keys)
        return {"Total": total, "Restoring": 0, "Restored": total - failed - 1, "Skipped": 1, "Failed": failed}


def make_plan(objects: int, tier: str) -> Plan:
    keys = AWKWARD_KEYS[: max(objects, 0)]
    keys += [f"objects/{i:04d} item+{i}.bin" for i in range(len(keys), objects)]
    archived = {key: ARCHIVE_KINDS[i % len(ARCHIVE_KINDS)] for i, key in enumerate(keys)}
    return Plan(
        bucket=f"bulk-restore-demo-{uuid.uuid4().hex[:8]}",
        archived=archived,
        skipped_key="standard/readable now.txt",
        missing_key="missing/never uploaded ✗.txt",
        tier=tier,
    )


def manifest_body(plan: Plan) -> bytes:
    """S3 Batch Operations CSV: bucket,key with URL-encoded keys, CRLF line ends."""
    return "".join(f"{plan.bucket},{quote(key, safe='/')}\r\n" for key in plan.manifest_keys).encode("utf-8")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class LocalStackProcess:
    """`bulk-restore local` in a subprocess on free ports."""

    def __init__(self, restore_seconds: float, workdir: Path, template: Path | None = None, extra: list[str] | None = None):
        self.ready_file = workdir / "ready.json"
        self.log_path = workdir / "local-stack.log"
        self.command = [
            sys.executable,
            "-m",
            "bulk_restore_cli.cli",
            "local",
            "--api-port",
            str(free_port()),
            "--aws-port",
            str(free_port()),
            "--restore-seconds",
            str(restore_seconds),
            "--ready-file",
            str(self.ready_file),
            "--stack-name",
            "bulk-restore-demo",
            "--env",
            "POWERTOOLS_LOG_LEVEL=WARNING",
            *(["--template", str(template)] if template else []),
            *(extra or []),
        ]
        self.process: subprocess.Popen[bytes] | None = None
        self.info: dict[str, Any] = {}

    def start(self, timeout: float = 60.0) -> dict[str, Any]:
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(self.command, stdout=subprocess.DEVNULL, stderr=log, stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ready_file.exists():
                self.info = json.loads(self.ready_file.read_text(encoding="utf-8"))
                return self.info
            if self.process.poll() is not None:
                raise RuntimeError(f"the local stack exited with {self.process.returncode}:\n{self.log_tail()}")
            time.sleep(0.1)
        raise RuntimeError(f"the local stack was not ready after {timeout:g} s:\n{self.log_tail()}")

    def stop(self, timeout: float = 15.0) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


class ApiClient:
    def __init__(self, base_url: str, api_key: str, timeout: float = 30.0):
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout

    def call(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.base_url + path,
            data=data,
            method=method,
            headers={"x-api-key": self.api_key, "Content-Type": "application/json", **(headers or {})},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")

    def objects(self, job_id: str, state: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            query = {"state": state, "limit": 100, **({"next_token": token} if token else {})}
            status, page = self.call("GET", f"/jobs/{job_id}/objects?{urlencode(query)}")
            if status != 200:
                raise RuntimeError(f"GET objects answered {status}: {page}")
            found += page["Objects"]
            token = page.get("NextToken")
            if not token:
                return found


def progress_line(event: dict[str, Any], elapsed: float, width: int = 30) -> str:
    percent = int(event.get("ProgressPercent", 0))
    filled = width * percent // 100
    counts = event.get("Counts") or {}
    return (
        f"[{'#' * filled}{'.' * (width - filled)}] {percent:3d}%  {event.get('Status', '?'):<9}"
        f" restored {counts.get('Restored', '?')}, skipped {counts.get('Skipped', '?')}, failed {counts.get('Failed', '?')}"
        f" of {counts.get('Total', '?')}  ({elapsed:5.1f} s)"
    )


def run_demo(options: DemoOptions) -> int:
    out = options.out
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bulk-restore-demo-") as workdir:
        stack = LocalStackProcess(options.restore_seconds, Path(workdir), options.template)
        try:
            info = stack.start()
            out.write(f"local stack up: API {info['api_url']}, AWS endpoint {info['aws_endpoint_url']}\n")
            ok = _demo_vault(info, options, started) if options.vault else _demo(info, options, started)
        except Exception as exc:
            out.write(f"demo failed: {exc}\n--- local stack log (tail) ---\n{stack.log_tail()}\n")
            ok = False
        finally:
            code = stack.stop()
            out.write(f"local stack stopped (exit {code})\n")
            out.flush()
    return 0 if ok else 1


def _demo(info: dict[str, Any], options: DemoOptions, started: float) -> bool:
    import boto3
    from botocore.config import Config

    out = options.out
    session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=info["region"])
    s3 = session.client("s3", endpoint_url=info["aws_endpoint_url"], config=Config(max_pool_connections=SEED_THREADS + 2))
    sqs = session.client("sqs", endpoint_url=info["aws_endpoint_url"])
    plan = make_plan(options.objects, options.tier)

    s3.create_bucket(Bucket=plan.bucket)

    def archive(item: tuple[str, tuple[str, str | None]]) -> None:
        key, (storage_class, archive_tier) = item
        metadata = {"archive-status": archive_tier} if archive_tier else {}
        s3.put_object(Bucket=plan.bucket, Key=key, Body=f"contents of {key}".encode(), StorageClass=storage_class, Metadata=metadata)

    with ThreadPoolExecutor(SEED_THREADS) as pool:  # a 100,000-object demo writes its objects in minutes, not an hour
        list(pool.map(archive, plan.archived.items()))
    s3.put_object(Bucket=plan.bucket, Key=plan.skipped_key, Body=b"already readable")
    manifest_key = f"demo/{plan.bucket}.csv"
    s3.put_object(Bucket=info["manifest_bucket"], Key=manifest_key, Body=manifest_body(plan))  # manifests go in the stack's bucket
    by_class: dict[str, int] = {}
    for storage_class, archive_tier in plan.archived.values():
        label = f"{storage_class}/{archive_tier}" if archive_tier else storage_class
        by_class[label] = by_class.get(label, 0) + 1
    out.write(
        f"archived {len(plan.archived)} objects in s3://{plan.bucket}: "
        + ", ".join(f"{n} {label}" for label, n in sorted(by_class.items()))
        + f"; plus 1 STANDARD and 1 missing key; manifest of {len(plan.manifest_keys)} lines\n"
    )

    api = ApiClient(info["api_url"], info["api_key"])
    status, created = api.call(
        "POST",
        "/create-job",
        {
            "bucket": info["manifest_bucket"],
            "key": manifest_key,
            "tier": options.tier,
            "expiration_days": 1,
            "client_tag": "demo",
            "engine": options.engine,
        },
        headers={"Idempotency-Key": f"demo-{plan.bucket}"},
    )
    if status != 200:
        out.write(f"create-job answered {status}: {created}\n")
        return False
    job_id = created["JobId"]
    out.write(
        f"job {job_id} created ({options.tier}, engine {created.get('Engine', 'direct')});"
        f" following its events on {info['events_queue_url']}\n"
    )

    terminal = _follow(sqs, info["events_queue_url"], job_id, options, started)
    if terminal is None:
        out.write(f"no terminal event within {options.timeout:g} s\n")
        return False
    return _summary(api, s3, plan, job_id, terminal, started, out)


# (size in bytes, description): what backup tools leave in vaults. Several span more than one
# 8 MiB part on the local stack; two share a description (a duplicate name); one has none.
VAULT_ARCHIVES = [
    (20 * 1024 * 1024 + 7, "backups/2019/photos.tar"),
    (9 * 1024 * 1024, "backups/2019/photos.tar"),
    (1, ""),
    (4096, "<m><v>4</v><p>QmFja3Vwcy/RhNCw0LnQuy50eHQ=</p><lm>20190101T000000Z</lm></m>"),
    (300_000, '{"path": "C:\\Users\\ana\\Documents\\tax 2018.pdf"}'),
    (17 * 1024 * 1024 + 1, "video/holiday 2018.mp4"),
]
MISSING_ARCHIVE = "NoSuchArchive" + "x" * 125  # an id the vault does not have: FAILED


def _vault_body(size: int, seed: int) -> bytes:
    import hashlib

    block = hashlib.sha256(f"archive {seed}".encode()).digest() * 256
    return (block * (size // len(block) + 1))[:size]


def _demo_vault(info: dict[str, Any], options: DemoOptions, started: float) -> bool:
    """Upload archives to a vault of the local stack with boto3's glacier client, move them into a
    bucket with one create-job, read each back and check its bytes and tree hash."""
    import io

    import boto3
    from botocore.utils import calculate_tree_hash

    out = options.out
    session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=info["region"])
    glacier = session.client("glacier", endpoint_url=info["aws_endpoint_url"])
    s3 = session.client("s3", endpoint_url=info["aws_endpoint_url"])
    sqs = session.client("sqs", endpoint_url=info["aws_endpoint_url"])
    vault = f"demo-vault-{uuid.uuid4().hex[:8]}"
    target = f"{vault}-copies"
    glacier.create_vault(vaultName=vault)
    s3.create_bucket(Bucket=target)
    bodies: dict[str, bytes] = {}
    for n, (size, description) in enumerate(VAULT_ARCHIVES):
        body = _vault_body(size, n)
        archive_id = glacier.upload_archive(vaultName=vault, body=body, archiveDescription=description)["archiveId"]
        bodies[archive_id] = body
    total = sum(len(b) for b in bodies.values())
    out.write(
        f"uploaded {len(bodies)} archives ({total:,} bytes) to vault {vault} with boto3's glacier client; "
        f"plus one archive id the vault does not have\n"
    )
    api = ApiClient(info["api_url"], info["api_key"])
    status, created = api.call(
        "POST",
        "/create-job",
        {
            "vault": {"name": vault},
            "archives": [*bodies, MISSING_ARCHIVE],
            "tier": options.tier,
            "client_tag": "demo-vault",
            "target": {"bucket": target, "prefix": "restored/"},
        },
        headers={"Idempotency-Key": f"demo-{vault}"},
    )
    if status != 200:
        out.write(f"create-job answered {status}: {created}\n")
        return False
    job_id = created["JobId"]
    out.write(f"job {job_id} created ({options.tier}): vault {vault} into s3://{target}/restored/\n")
    terminal = _follow(sqs, info["events_queue_url"], job_id, options, started)
    if terminal is None:
        out.write(f"no terminal event within {options.timeout:g} s\n")
        return False
    status, job = api.call("GET", f"/jobs/{job_id}")
    out.write("\n=== summary ===\n")
    out.write(
        f"job {job_id}: {job['Status']} in {time.monotonic() - started:.1f} s, {job['BytesMoved']:,} bytes moved; counts: {job['Counts']}\n"
    )
    problems = []
    for archive_id, body in bodies.items():
        answer = s3.get_object(Bucket=target, Key=f"restored/{archive_id}")
        data, metadata = answer["Body"].read(), answer["Metadata"]
        if data != body or metadata.get("glacier-sha256-tree-hash") != calculate_tree_hash(io.BytesIO(body)):
            problems.append(f"archive {archive_id[:16]}... does not read back whole with its tree hash")
    if not problems:
        out.write(f"all {len(bodies)} archives read back byte for byte, tree hashes in their metadata\n")
    for record in api.objects(job_id, "FAILED"):
        out.write(f"  FAILED  {record['Key'][:40]}...: {record['Reason']}\n")
    expected = {"Total": len(bodies) + 1, "Restoring": 0, "Restored": len(bodies), "Skipped": 0, "Failed": 1, "Cancelled": 0}
    if job["Status"] != "Complete" or job["Counts"] != expected or job["BytesMoved"] != total:
        problems.append(
            f"the job came to {job['Status']} {job['Counts']}, {job['BytesMoved']} bytes; expected Complete {expected}, {total}"
        )
    for problem in problems:
        out.write(f"MISMATCH: {problem}\n")
    out.write("RESULT: OK\n" if not problems else "RESULT: FAILED\n")
    return not problems


def _follow(sqs: Any, queue_url: str, job_id: str, options: DemoOptions, started: float) -> dict[str, Any] | None:
    deadline = time.monotonic() + options.timeout
    while time.monotonic() < deadline:
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
        events = []
        for message in messages:
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            event = json.loads(json.loads(message["Body"])["Message"])  # the queue gets the SNS envelope
            if event.get("JobId") == job_id:
                events.append(event)
        for event in sorted(events, key=lambda e: (e.get("EventType") == "JobFinished", int(e.get("ProgressPercent", 0)))):
            options.out.write(progress_line(event, time.monotonic() - started) + "\n")
            options.out.flush()
            if event.get("EventType") == "JobFinished" or event.get("Status") in TERMINAL:
                return event
    return None


def _summary(api: ApiClient, s3: Any, plan: Plan, job_id: str, terminal: dict[str, Any], started: float, out: IO[str]) -> bool:
    status, job = api.call("GET", f"/jobs/{job_id}")
    failed = api.objects(job_id, "FAILED")
    skipped = api.objects(job_id, "SKIPPED")
    elapsed = time.monotonic() - started
    counts = {k: job["Counts"].get(k) for k in ("Total", "Restoring", "Restored", "Skipped", "Failed")}
    expected = plan.expected
    out.write("\n=== summary ===\n")
    out.write(f"job {job_id}: {job['Status']} in {elapsed:.1f} s (tier {job['Tier']}, engine {job.get('Engine')})\n")
    for run in job.get("BatchOperations") or []:
        out.write(f"  S3 Batch Operations job {run['JobId']} ({run['Group']}): {run['Status']}\n")
    out.write("counts:   " + ", ".join(f"{k} {v}" for k, v in counts.items()) + "\n")
    out.write("expected: " + ", ".join(f"{k} {v}" for k, v in expected.items()) + "\n")
    for record in skipped:
        out.write(f"  SKIPPED {record['Key']!r}: {record['Reason']}\n")
    for record in failed:
        out.write(f"  FAILED  {_short(record['Key'])!r} (line {record['ManifestLine']}): {record['Reason']}\n")

    problems = []
    if status != 200 or job["Status"] != "Complete" or terminal.get("Status") != "Complete":
        problems.append(f"the job ended {job.get('Status')} (event: {terminal.get('Status')}), not Complete")
    if counts != expected:
        problems.append("the counts differ from the expected ones")
    if terminal.get("FailedBatchFiles") != str(expected["Failed"]):
        problems.append(f"the final event says FailedBatchFiles {terminal.get('FailedBatchFiles')!r}")
    if {r["Key"] for r in failed} != plan.expected_failed:
        problems.append("the failed objects are not the expected ones")
    readable = next((k for k, kind in plan.archived.items() if not plan.will_fail(kind)), None)
    if readable is not None:
        body = s3.get_object(Bucket=plan.bucket, Key=readable)["Body"].read()
        if body != f"contents of {readable}".encode():
            problems.append(f"restored object {readable!r} does not read back")
        else:
            out.write(f"restored object {_short(readable)!r} reads back\n")
    for problem in problems:
        out.write(f"MISMATCH: {problem}\n")
    out.write("RESULT: OK\n" if not problems else "RESULT: FAILED\n")
    return not problems


def _short(key: str, limit: int = 60) -> str:
    return key if len(key) <= limit else f"{key[:limit]}... ({len(key.encode())} bytes)"
