"""The targets, judged on a run's results, and BENCHMARKS.md."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from typing import Any

from bulk_restore_cli.bench import prices as price_data

MB = 2**20


def machine() -> dict[str, Any]:
    model = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            model = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), "")
    except OSError:
        pass
    memory_gb = None
    try:
        with open("/proc/meminfo", encoding="utf-8") as meminfo:
            kib = next(int(line.split()[1]) for line in meminfo if line.startswith("MemTotal"))
            memory_gb = round(kib / 2**20, 1)
    except (OSError, StopIteration):
        pass

    def version(package: str) -> str:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return "-"

    return {
        "code": _code_version(),
        "cpu": model or platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "memory_gb": memory_gb,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "moto": version("moto"),
        "boto3": version("boto3"),
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }


def _code_version() -> str:
    """The commit measured, and whether the work tree had changes to the code."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        changed = subprocess.run(
            ["git", "status", "--porcelain", "--", "src", "template.yaml", ":!tools/bulk_restore_cli/bench"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "-"
    return f"{head} (with uncommitted changes)" if changed else head


@dataclass
class Target:
    name: str
    bound: str
    figure: str
    met: bool | None  # None: not measured in this run

    @property
    def verdict(self) -> str:
        return "not run" if self.met is None else ("met" if self.met else "**not met**")


def _cost_run(results: dict[str, Any], engine: str, arrival: str) -> dict[str, Any] | None:
    return next((r for r in results.get("cost", []) if r["engine"] == engine and r["arrival"] == arrival), None)


def targets(results: dict[str, Any]) -> list[Target]:
    found: list[Target] = []
    for arrival, how in (("burst", "completions in full batches"), ("spread", "completions spread over 3–5 h")):
        run = _cost_run(results, "direct", arrival)
        if run is not None:
            figure = run["requests"]["code_per_object"]
            found.append(
                Target(
                    f"AWS requests per restored object, all services, direct engine ({how}, N={run['objects']:,})",
                    "≤ 1.1",
                    f"{figure:.3f}",
                    figure <= 1.1,
                )
            )
    run = _cost_run(results, "direct", "burst")
    if run is not None:
        wru = run["dynamodb"]["wru_per_object"]
        found.append(Target(f"DynamoDB write units per object (N={run['objects']:,})", "≤ 2.2", f"{wru:.2f}", wru <= 2.2))
    for arrival, how in (("burst", "completions in full batches"), ("spread", "completions spread over 3–5 h")):
        run = _cost_run(results, "direct", arrival)
        if run is not None:
            dollars = price_data.per_million_objects(run)["orchestration"]
            found.append(
                Target(
                    f"Orchestration per million objects, every line of the cost table, direct engine ({how}, N={run['objects']:,})",
                    "≤ $2.00",
                    f"${dollars:.2f}",
                    dollars <= 2.0,
                )
            )
    events = [r["sns"]["job_events"] for r in results.get("cost", [])] + [r["published_events"] for r in results.get("completion", [])]
    if events:
        found.append(
            Target(
                "Progress messages per job (progress + terminal), default step, every job of the run",
                "≤ 12",
                f"max {max(events)}",
                max(events) <= 12,
            )
        )
    planner = results.get("planner", [])
    if planner:
        slowest = min(planner, key=lambda r: r["lines_per_cpu_s"])
        found.append(
            Target(
                "Planner manifest lines per CPU-second (slowest size)",
                "≥ 100,000",
                f"{slowest['lines_per_cpu_s']:,.0f} ({slowest['lines']:,} lines)",
                slowest["lines_per_cpu_s"] >= 100_000,
            )
        )
        small, large = min(planner, key=lambda r: r["lines"]), max(planner, key=lambda r: r["lines"])
        growth = large["peak_rss_mb"] - small["peak_rss_mb"]
        found.append(
            Target(
                f"Planner peak memory flat in N ({small['lines']:,} → {large['lines']:,} lines)",
                "grows < 10 MB",
                f"{small['peak_rss_mb']:.0f} → {large['peak_rss_mb']:.0f} MB",
                growth < 10,
            )
        )
        ten_million = next((r for r in planner if r["lines"] >= 10_000_000), None)
        found.append(
            Target(
                "Planner peak memory at 10 M lines",
                "< 150 MB",
                f"{ten_million['peak_rss_mb']:.0f} MB" if ten_million else "run with --planner-lines 10000000",
                ten_million["peak_rss_mb"] < 150 if ten_million else None,
            )
        )
    completion = results.get("completion", [])
    if completion:
        slowest = min(completion, key=lambda r: r["events_per_cpu_s"])
        found.append(
            Target(
                "Completion handler events per CPU-second (slowest batch size)",
                "≥ 10,000",
                f"{slowest['events_per_cpu_s']:,.0f} (batch {slowest['batch_size']})",
                slowest["events_per_cpu_s"] >= 10_000,
            )
        )
    issuance = results.get("issuance")
    if issuance:
        fraction, throttled = issuance["fraction_of_limit"], issuance["throttled_per_1000"] / 10
        found.append(
            Target(
                "Restore issuance: achieved rate / account limit, throttled answers",
                "≥ 90 %, < 1 %",
                f"{fraction:.1%}, {throttled:.2f} %",
                fraction >= 0.9 and throttled < 1,
            )
        )
    latency = results.get("latency")
    if latency:
        window = latency.get("completion_batch_window_s")
        shown = f"{window:g} s" if window is not None else "unknown"
        found.append(
            Target(
                f"Last restore completed → Complete event, local stack (slowest job; completion window {shown})",
                "≤ 5 s",
                f"{latency['max_s']:.2f} s (median {latency['median_s']:.2f} s)",
                latency["max_s"] <= 5,
            )
        )
    scale = results.get("local_scale")
    if scale:
        job, loop = scale["job"], scale["loop"]
        n = f"{scale['objects']:,} objects"
        found.append(
            Target(
                f"Local stack, {n}: job issuance rate / threaded boto3 loop's, same endpoint, same run",
                "≥ 80 %",
                f"{scale['issuance_ratio']:.0%} ({job['issued_per_second']:,.0f} vs {loop['per_second']:,.0f} objects/s)",
                scale["issuance_ratio"] >= 0.8 and job["status"] == "Complete",
            )
        )
        found.append(
            Target(
                f"Local stack, {n}: create-job → Complete / the loop's time for as many objects",
                "≤ 2x",
                f"{scale['whole_over_loop_issuance']:.2f}x ({job['whole_seconds']:,.0f} s, {job['status']})",
                scale["whole_over_loop_issuance"] <= 2 and job["status"] == "Complete",
            )
        )
        found.append(
            Target(
                f"Local stack, {n}: GET /jobs/{{id}} during the job, p99",
                "< 100 ms",
                f"{job['status_p99_ms']:.0f} ms (p50 {job['status_p50_ms']:.0f} ms, {job['status_calls']} calls)",
                job["status_p99_ms"] < 100 and not job["status_errors"],
            )
        )
        creates = scale.get("concurrent_creates")
        if creates:
            # 429 is the usage plan's documented answer to a burst over ApiThrottleBurstLimit
            bad = {k: v for k, v in creates["outcomes"].items() if k not in ("200", "429")}
            found.append(
                Target(
                    f"Local stack: {creates['calls']} concurrent create-job calls",
                    "no 500, no reset",
                    ", ".join(f"{v} × {k}" for k, v in creates["outcomes"].items()),
                    not bad,
                )
            )
    return found


# ---- Markdown ----------------------------------------------------------------------------------


# Why a target can stand unmet; the figures above say whether it did in this run.
MISSES = [
    "### Where a target is missed, and why it stays so",
    "",
    "- **DynamoDB write units per object (≤ 3).** About 4.1: each object changes state twice (requested,",
    "  then restored), and each change commits in a `TransactWriteItems` with its counter update, which",
    "  DynamoDB bills at 2 units per item. That transaction is what makes the accounting exactly-once:",
    "  a duplicate line, event or delivery can only fail its condition, and a crash cannot leave an object",
    "  counted without its state or the reverse. Plain batch writes would cost about 3.1 units per object",
    "  but could count a manifest's duplicate lines twice. The difference is about $0.70 per million",
    "  objects; we keep the guarantee.",
    "- **Issuance (≥ 90 % of the account limit).** The pacer keeps to `RestoreRatePerSecond`, 900 by",
    "  default, so about 90 % of S3's 1,000 is its ceiling by design: room for other tools in the account",
    "  and for the one tenth-second slot a sliding second can hold beyond the rate (990 at most). A run",
    "  just under 90 % means the pacer lost a little of its own rate; `--issuance-rate` tries others.",
    "- **Requests per object (≤ 1.1) against latency.** Completion events are batched for",
    "  `CompletionBatchingWindowSeconds` (60 s by default; the local stack uses 1 s): fuller batches cost",
    "  fewer requests per object, and the Complete event comes at most one window after the last restore.",
    "  When completions trickle in over hours, each batch's fixed few requests (find, commit, evaluate)",
    "  are shared by fewer events; a longer window buys the figure back, at that latency.",
    "- **Planner lines per CPU-second.** CPU time on two shared vCPUs moves by about 20 % with other",
    "  load; on a quiet machine the planner measures 115,000–130,000 lines per CPU-second.",
    "",
]


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _money(value: float) -> str:
    return f"${value:,.4f}" if value < 1 else f"${value:,.2f}"


def markdown(results: dict[str, Any]) -> str:
    m = results["machine"]
    load = m.get("load_average")
    out = [
        "# Benchmarks",
        "",
        "Requests, cost and throughput per object, measured by `make bench` (`python -m bulk_restore_cli.bench`;",
        "`--objects 100000` and `--planner-lines 10000000` for the large sizes, `--help` for the rest).",
        "This file is written by the run; machine-readable results are in `bench-results/`.",
        "",
        f"Run: {results['started']} to {results['finished']} (UTC), `{results['command'].strip()}`",
        "",
        _table(
            ["machine", ""],
            [
                ["code", m.get("code", "-")],
                ["CPU", m["cpu"]],
                ["cores", m["cores"]],
                ["memory", f"{m['memory_gb']} GB"],
                ["Python", m["python"]],
                ["platform", m["platform"]],
                ["moto / boto3", f"{m['moto']} / {m['boto3']}"],
                ["load average at start", ", ".join(f"{x:.2f}" for x in load) if load else "-"],
            ],
        ),
        "",
        "CPU-time figures (planner, completion) are the fastest of `--repeats` runs; on this machine's two vCPUs",
        "other load still moves them by up to about 20 %. Real-time figures (issuance, latency) depend on load more:",
        "the load average says how busy the machine was.",
        "",
        "## Targets",
        "",
        _table(["target", "bound", "figure", "verdict"], [[t.name, t.bound, t.figure, t.verdict] for t in targets(results)]),
        "",
        *MISSES,
    ]
    out += _cost_section(results)
    out += _planner_section(results)
    out += _completion_section(results)
    out += _issuance_section(results)
    out += _latency_section(results)
    out += _local_scale_section(results)
    out += vault_section(results.get("vault"))
    return "\n".join(out) + "\n"


def _cost_section(results: dict[str, Any]) -> list[str]:
    runs = results.get("cost", [])
    if not runs:
        return []
    prices = price_data.load()
    out = [
        "## 1. Cost profile",
        "",
        "One job through the real handlers (API, planner, restore workers, completion) on moto (in-process `mock_aws`),",
        "the stack provisioned from `template.yaml`, restores emulated by `local/s3_restore.py` on a simulated clock.",
        "Every request of the four clients the functions use (`wiring.services()`: store, s3, queues, publisher) is",
        "counted by botocore `before-call`/`after-call` hooks. Lambda's SQS event source mapping (ESM) polls on its own",
        "client: its requests are not our code's and are counted apart, but SQS bills them, so they are in the cost.",
        "",
    ]
    header = ["per object"] + [f"{r['engine']}, {r['arrival']} (N={r['objects']:,})" for r in runs]

    def row(label: str, get: Any, fmt: str = "{:.4f}") -> list[str]:
        return [label] + [fmt.format(get(r)) for r in runs]

    operations = sorted({op for r in runs for op in r["requests"]["code_by_operation"]})
    rows = [row("**AWS requests by our code**", lambda r: r["requests"]["code_per_object"])]
    rows += [
        row("S3 Batch Operations tasks (RestoreObject by S3, not our code)", lambda r: r["requests"].get("batch_tasks", 0) / r["objects"])
    ]
    rows += [row(f"&nbsp;&nbsp;{op}", lambda r, op=op: r["requests"]["code_by_operation"].get(op, 0) / r["objects"]) for op in operations]
    rows += [
        row("ESM SQS receives (with messages)", lambda r: r["requests"]["esm_receives_with_messages"] / r["objects"]),
        row("ESM SQS deletes (DeleteMessageBatch)", lambda r: r["requests"]["esm_other"].get("DeleteMessageBatch", 0) / r["objects"]),
        row("EventBridge → SQS deliveries (completion queue)", lambda r: r["requests"]["eventbridge_to_sqs"] / r["objects"]),
        row("DynamoDB write units (WRU)", lambda r: r["dynamodb"]["wru_per_object"]),
        row(
            "&nbsp;&nbsp;of which TransactWriteItems",
            lambda r: r["dynamodb"]["wru_by_operation"].get("TransactWriteItems", 0) / r["objects"],
        ),
        row("DynamoDB read units (RRU)", lambda r: r["dynamodb"]["rru_per_object"]),
        row("SQS messages sent by our code", lambda r: r["sqs"]["messages_sent_by_code"] / r["objects"]),
        row("SNS messages published", lambda r: r["sns"]["publishes"] / r["objects"]),
        row("Lambda invocations", lambda r: sum(f["invocations"] for f in r["lambda"].values()) / r["objects"]),
        row("Lambda GB-seconds (model, see below)", lambda r: sum(f["gb_s"] for f in r["lambda"].values()) / r["objects"], "{:.5f}"),
        row("log bytes (CloudWatch Logs)", lambda r: (r["logs"]["app_bytes"] + r["logs"]["platform_bytes"]) / r["objects"], "{:.1f}"),
    ]
    out += [_table(header, rows), ""]

    out += [
        "Per job:",
        "",
        _table(
            ["per job", *header[1:]],
            [
                ["SNS events (progress + terminal)"]
                + [f"{r['sns']['job_events']} ({r['sns']['progress_events']} + {r['sns']['terminal_events']})" for r in runs],
                ["completion batches (invocations)"] + [f"{r['sqs']['completion_batches']:,}" for r in runs],
                ["DynamoDB transactions (cancelled)"]
                + [f"{r['dynamodb']['transactions']:,} ({r['dynamodb']['cancelled_transactions']})" for r in runs],
                ["completion batch size, batching window"]
                + [
                    f"{r['completion_batch']['size']}, {r['completion_batch']['window_s']:g} s" if r.get("completion_batch") else "-"
                    for r in runs
                ],
                ["empty ESM receives (not counted)"] + [f"{r['requests']['esm_receives_empty']:,}" for r in runs],
            ],
        ),
        "",
        "Empty receives are an artefact of draining the queues here; in AWS the pollers' idle long polls are a fixed",
        "cost per queue and hour, not a cost per object.",
        "",
    ]

    out += ["### Lambda, by function", ""]
    for r in runs:
        out += [f"{r['engine']}, {r['arrival']}, N={r['objects']:,}:", ""]
        out.append(
            _table(
                [
                    "function",
                    "memory",
                    "invocations",
                    "records",
                    "wall here (s)",
                    "own CPU (s)",
                    "modelled Lambda s",
                    "GB-s",
                    "requests",
                    "WRU",
                    "RRU",
                ],
                [
                    [
                        name,
                        f"{f['memory_mb']} MB",
                        f["invocations"],
                        f["records"],
                        f"{f['wall_s']:.2f}",
                        f"{f['own_cpu_s']:.2f}",
                        f"{f['modelled_s']:.2f}",
                        f"{f['gb_s']:.2f}",
                        f["requests"],
                        f"{f['wru']:.0f}",
                        f"{f['rru']:.0f}",
                    ]
                    for name, f in r["lambda"].items()
                ],
            )
        )
        out.append("")
    out += [
        "*Wall here* includes moto's own work. *Own CPU* is the invocation's CPU time less the CPU spent inside AWS calls",
        "(moto's work, with botocore's parsing of the answer). *Modelled Lambda s* = own CPU × Lambda's CPU share at the",
        "function's memory (1,769 MB = 1 vCPU) + an assumed round trip per request (`bench/cost.py` `LATENCY_MS`:",
        "DynamoDB 6–25 ms, S3 20–30 ms, SQS 8 ms, SNS 15 ms; RestoreObject calls overlap 16 at a time). It is an estimate,",
        "not a measurement of AWS.",
        "",
    ]

    out += [
        "### Dollars per million objects",
        "",
        f"Prices: `src/bulk_restore/prices.json` ({prices['region']}, as of {prices['as_of']}; sources in the file).",
        "",
    ]
    costs = [price_data.per_million_objects(r) for r in runs]
    labels = {
        "dynamodb_writes": "DynamoDB writes",
        "dynamodb_reads": "DynamoDB reads",
        "sqs": "SQS (code + ESM + EventBridge deliveries)",
        "sns": "SNS",
        "lambda_requests": "Lambda requests",
        "lambda_compute": "Lambda compute (arm64, modelled GB-s)",
        "cloudwatch_logs": "CloudWatch Logs ingestion",
        "xray_upper_bound": "X-Ray (upper bound: every invocation traced)",
        "s3_other_requests": "S3 requests other than RestoreObject",
        "api_gateway": "API Gateway (one create-job)",
        "s3_batch_operations": "S3 Batch Operations ($0.25 a job + $1.00 per million tasks)",
        "orchestration": "**orchestration total**",
        "s3_restore_requests": "S3 restore request fees (GLACIER, Standard: $0.05/1,000)",
        "total": "**total with restore request fees**",
    }
    out.append(_table(["item", *header[1:]], [[label] + [_money(c[key]) for c in costs] for key, label in labels.items()]))
    out += [
        "",
        "Not included: S3 retrieval per GB (depends on object sizes), DynamoDB storage (about 0.4 KB per object for",
        "its 90 days), EventBridge (S3's events on the default bus are free), idle ESM polling. For comparison, S3 Batch",
        f"Operations charges ${price_data.batch_operations_per_million():.2f} per million objects (one job), restore fees apart.",
        "",
    ]
    return out


def _planner_section(results: dict[str, Any]) -> list[str]:
    runs = results.get("planner", [])
    if not runs:
        return []
    out = [
        "## 2. Planner",
        "",
        "The real Planner, S3Gateway and QueueGateway on a generated manifest (three keys in four plain, one in four",
        "with a `%20`), their boto3 clients and the job store replaced by fast in-process fakes (`bench/fakes.py`).",
        "Steps run one after another, each with the remaining time a 1,024 MB, 900 s PlannerFunction would have.",
        "Each size runs in a fresh process; peak memory is its peak resident set (the interpreter and imports included).",
        "",
    ]
    out.append(
        _table(
            [
                "lines",
                "manifest",
                "CPU s",
                "lines / CPU-s",
                "steps",
                "longest step in Lambda (est.)",
                "chunks",
                "SQS requests",
                "RSS before",
                "peak RSS",
            ],
            [
                [
                    f"{r['lines']:,}",
                    f"{r['manifest_bytes'] / MB:,.0f} MiB",
                    f"{r['cpu_s']:.1f}",
                    f"{r['lines_per_cpu_s']:,.0f}",
                    r["steps"],
                    f"{r['longest_step_lambda_s_estimate']:.1f} s",
                    f"{r['chunks']:,}",
                    sum(r["sqs_requests"].values()),
                    f"{r['rss_before_mb']:.0f} MB",
                    f"{r['peak_rss_mb']:.0f} MB",
                ]
                for r in runs
            ],
        )
    )
    out += [
        "",
        f"A step is {runs[0]['lines_per_step']:,} lines (the stack's PLAN_LINES_PER_STEP, cut to whole chunks); "
        "no step was cut short by the Lambda's time"
        if not any(r["steps_cut_by_time"] for r in runs)
        else "",
        "",
    ]
    return out


def _completion_section(results: dict[str, Any]) -> list[str]:
    runs = results.get("completion", [])
    if not runs:
        return []
    out = [
        "## 3. Completion path",
        "",
        'EventBridge "Object Restore Completed" events through the real completion handler (`handlers/completion.py`)',
        "and use case on the fake store, one job whose objects are all RESTORING. The fake store does no DynamoDB",
        "(de)serialisation: the cost profile's *own CPU* of CompletionFunction includes that. A transaction holds",
        "99 objects and the counter update, so a batch of 100 events takes two.",
        "",
    ]
    out.append(
        _table(
            ["batch size", "events", "invocations", "CPU s", "events / CPU-s", "DynamoDB requests / invocation", "events published"],
            [
                [
                    r["batch_size"],
                    f"{r['events']:,}",
                    r["invocations"],
                    f"{r['cpu_s']:.2f}",
                    f"{r['events_per_cpu_s']:,.0f}",
                    f"{r['store_requests_per_invocation']:.2f}",
                    f"{r['published_events']} ({r['progress_events']} + {r['terminal_events']})",
                ]
                for r in runs
            ],
        )
    )
    return [*out, ""]


def _issuance_section(results: dict[str, Any]) -> list[str]:
    r = results.get("issuance")
    if not r:
        return []
    out = [
        "## 4. Issuance against the account limit",
        "",
        f"The real RestoreWorker, Pacer and S3Gateway: {r['workers']} restore invocations at once (RestoreMaxConcurrency), "
        f"{r['threads_per_worker']} threads each (RestoreConcurrency), the pacer at {r['pacer_rate_per_s']}/s "
        "(RestoreRatePerSecond), its schedules on the fake store "
        f"({r['store_latency_s'] * 1000:.0f} ms a call). S3 is a fake that accepts {r['account_limit_per_s']:,} restores in any "
        f"sliding second and answers 503 SlowDown beyond, {r['s3_latency_s'] * 1000:.0f} ms a call. Real time.",
        "",
    ]
    store = r.get("store_requests", {})
    out.append(
        _table(
            [
                "objects",
                "wall",
                "requests",
                "accepted",
                "throttled",
                "throttled / 1,000",
                "steady rate",
                "of limit",
                "peak sliding second",
                "DynamoDB requests / object (pacer's UpdateItem)",
            ],
            [
                [
                    f"{r['objects']:,}",
                    f"{r['wall_s']:.1f} s",
                    f"{r['restore_requests']:,}",
                    f"{r['accepted']:,}",
                    r["throttled"],
                    f"{r['throttled_per_1000']:.1f}",
                    f"{r['rate_steady_per_s']:.0f}/s",
                    f"{r['fraction_of_limit']:.1%}",
                    r["peak_sliding_second"],
                    f"{sum(store.values()) / r['objects']:.3f} ({store.get('UpdateItem', 0) / r['objects']:.3f})",
                ]
            ],
        )
    )
    out += [
        "",
        f"Accepted per second, from the first request: {r['requests_per_second_bins']}. Chunk deliveries that failed "
        f"(S3 still throttling after the gateway's 8 attempts; SQS delivers them again): {r.get('chunk_deliveries_failed', 0)}.",
        "Each invocation takes up to 10 chunk messages, as the event source hands them over; the pacer buys the window",
        "for each chunk's requests with one conditional write (two when its guess of an idle schedule was wrong).",
        "",
    ]
    return out


def _latency_section(results: dict[str, Any]) -> list[str]:
    r = results.get("latency")
    if not r:
        return []
    out = [
        "## 5. Latency on the local stack",
        "",
        "`bulk-restore local` in-process (moto server, the template's event sources with their batch sizes and batching",
        f"windows, restores of {r['restore_seconds']} s spread over 20–100 % of that). From the moment the restore emulation",
        "completed a job's last restore (S3's event handed to EventBridge) to the moment SNS accepted its Complete event.",
        f"The local stack's completion queue gathers events for {r['completion_batch_window_s'] or 0:g} s; a job's last event,",
        "when it comes alone, waits that long (the one-object job shows it).",
    ]
    deployed = r.get("deployed_completion_batch_window_s")
    if deployed is not None and deployed != r["completion_batch_window_s"]:
        out += [
            f"**A deployed stack gathers them for {deployed:g} s by default** (template parameter CompletionBatchingWindowSeconds):",
            f"there the lone last event of a job waits up to {deployed:g} s plus the function's time.",
        ]
    out += [""]
    out.append(
        _table(
            ["job", "objects", "status", "last completion → Complete event", "create-job → Complete event"],
            [
                [j["job_id"][:8], j["objects"], j["status"], f"{j['last_completion_to_event_s']:.2f} s", f"{j['create_to_event_s']:.1f} s"]
                for j in r["jobs"]
            ],
        )
    )
    return [*out, ""]


def _local_scale_section(results: dict[str, Any]) -> list[str]:
    r = results.get("local_scale")
    if not r:
        return []
    job, loop = r["job"], r["loop"]
    out = [
        "## 6. A real-sized job on the local stack, beside a threaded boto3 loop",
        "",
        "`bulk-restore local` in a subprocess (moto server on loopback, restores of "
        f"{r['restore_seconds']:g} s). In one run, on one endpoint: first a threaded boto3 loop",
        f"({loop['threads']} threads, what a user would write instead) calls RestoreObject on {loop['objects']:,} archived objects;",
        f"then one bulk-restore job of {r['objects']:,} archived objects is created over HTTP and followed to its end, while",
        "`GET /jobs/{id}` is timed every quarter second; then concurrent create-job calls. Objects were written beforehand",
        f"({r['seeded_per_second']:,.0f} PutObject/s with 16 threads).",
        "",
    ]
    out.append(
        _table(
            ["", "objects", "seconds", "objects/s"],
            [
                ["threaded boto3 loop, RestoreObject", f"{loop['objects']:,}", f"{loop['seconds']:,.1f}", f"{loop['per_second']:,.0f}"],
                [
                    "bulk-restore: create-job → every restore requested and accounted",
                    f"{r['objects']:,}",
                    f"{job['issuance_seconds']:,.1f}",
                    f"{job['issued_per_second']:,.0f}",
                ],
                [
                    f"bulk-restore: create-job → {job['status']}",
                    f"{r['objects']:,}",
                    f"{job['whole_seconds']:,.1f}",
                    f"{r['objects'] / max(job['whole_seconds'], 1e-9):,.0f}",
                ],
            ],
        )
    )
    split = r.get("loop_in_processes")
    if split:
        out += [
            "",
            f"The same loop from {split['processes']} processes at once, on {split['objects']:,} other objects: "
            f"{split['per_second']:,.0f} objects/s together (one process: {loop['per_second']:,.0f}), the endpoint "
            f"{split['endpoint_busy']:.0%} busy at {split['endpoint_cpu_ms_per_object']} ms of CPU per object. Where two "
            "clients go no faster than one, the endpoint bounds the loop, and the job's issuance ratio is the endpoint's "
            "CPU per object, the loop's over the job's.",
        ]
    out += [
        "",
        f"Issuance ratio (job / loop): **{r['issuance_ratio']:.0%}**; whole job / the loop's time for {r['objects']:,} objects:",
        f"**{r['whole_over_loop_issuance']:.2f}x**. Final status {job['status']}, counts {job['counts']}.",
        "",
        f"`GET /jobs/{{id}}` during the job: p50 {job['status_p50_ms']:.0f} ms, p99 {job['status_p99_ms']:.0f} ms, "
        f"max {job['status_max_ms']:.0f} ms over {job['status_calls']} calls ({job['status_errors']} errors).",
    ]
    creates = r.get("concurrent_creates")
    if creates:
        out += [
            "",
            f"{creates['calls']} concurrent create-job calls: "
            + ", ".join(f"{v} × {k}" for k, v in creates["outcomes"].items())
            + f", in {creates['seconds']:.1f} s.",
        ]
    endpoint = r.get("endpoint") or {}
    if endpoint:
        out += [
            "",
            "Where the AWS endpoint's time went over the whole run (seeding, loop, job; `--endpoint-stats`; requests",
            "compute in moto one at a time, so these seconds add up; SQS long polls wait outside and are not CPU):",
            "",
        ]
        out.append(
            _table(
                ["operation", "requests", "seconds in moto", "ms per request"],
                [
                    [
                        f"`{name}`",
                        f"{figures['requests']:,}",
                        f"{figures['seconds']:,.1f}",
                        f"{1000 * figures['seconds'] / max(figures['requests'], 1):.1f}",
                    ]
                    for name, figures in endpoint.items()
                    if "ReceiveMessage" not in name
                ],
            )
        )
    if r.get("stack_exit") not in (0, None):
        out += ["", f"The local stack did not stop within 15 s of SIGTERM and was killed (exit {r['stack_exit']})."]
    return [*out, ""]


def vault_section(r: dict[str, Any] | None) -> list[str]:
    """A Glacier vault moved into S3 (bench/vault.py)."""
    if not r:
        return []
    gib = r["bytes"] / (1 << 30)
    cost = r["dollars_per_tib"]
    out = [
        "## 8. Glacier vaults into S3",
        "",
        f"{r['archives']} archives, {r['bytes']:,} bytes ({gib:.2f} GiB), tier {r['tier']}, parts of {r['part_mib']} MiB, moved by one "
        f"vault job in this process on moto with the Glacier emulation: {r['status']}, counts {r['counts']}, {r['seconds']:.1f} s.",
        "",
        _table(
            ["figure", "value"],
            [
                [
                    "bytes per second through one transfer worker (its invocations' wall time; GetJobOutput and UploadPart are local calls)",
                    f"{r['transfer_bytes_per_second'] / (1 << 20):,.0f} MiB/s",
                ],
                ["transfer worker CPU per GiB, emulation's server side included", f"{r['transfer_cpu_seconds_per_gib']:.1f} s"],
                [
                    "the worker's own hashing per GiB (tree hash and SHA-256 of every byte)",
                    f"{r['worker_hashing_cpu_seconds_per_gib']:.1f} s",
                ],
                ["Lambda GB-seconds per GiB, every function (3,008 MB transfer function)", f"{r['lambda_gb_s_per_gib']:.1f}"],
                ["dollars per TiB: our requests and Lambda, at this run's archive count", f"${cost['ours']:.2f}"],
                [f"dollars per TiB: Glacier's {r['tier']} retrieval alone (per GB and per request)", f"${cost['glacier_retrieval']:.2f}"],
            ],
        ),
        "",
        "AWS requests per archive, by operation:",
        "",
        _table(
            ["operation", "per archive", "per GiB"],
            [[f"`{name}`", f"{n:g}", f"{r['requests_per_gib'][name]:g}"] for name, n in r["requests_per_archive"].items()],
        ),
    ]
    return [*out, ""]


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
