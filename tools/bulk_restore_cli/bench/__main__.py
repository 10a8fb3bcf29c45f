"""`make bench`: run the benchmark's parts, each in a fresh process, and write BENCHMARKS.md.

python -m bulk_restore_cli.bench                        # the default run (about 10 minutes)
python -m bulk_restore_cli.bench --objects 100000 --planner-lines 10000000
python -m bulk_restore_cli.bench --parts planner,completion
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bulk_restore_cli.bench import report

PARTS = ("cost", "planner", "completion", "issuance", "latency", "local-scale", "vault")
COMPLETION_BATCH_SIZES = (10, 100, 1000)


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bulk_restore_cli.bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--objects", type=int, default=10_000, help="objects of the cost profile's job (default 10,000)")
    parser.add_argument("--engines", default="", help="comma-separated engines for the cost profile (default: every engine)")
    parser.add_argument("--arrivals", default="burst,spread", help="how restore completions arrive in the cost profile")
    parser.add_argument(
        "--planner-lines",
        type=int,
        default=1_000_000,
        help="largest generated manifest (default 1,000,000; 100,000 and 1,000,000 lines are also run)",
    )
    parser.add_argument("--completion-events", type=int, default=20_000, help="events per completion batch size (default 20,000)")
    parser.add_argument("--issuance-objects", type=int, default=6_000, help="objects restored against the limit (default 6,000)")
    parser.add_argument("--issuance-rate", type=int, default=900, help="the pacer's rate (default: the stack's RestoreRatePerSecond, 900)")
    parser.add_argument("--latency-jobs", default="300,300,1", help="objects of each job on the local stack (default 300,300,1)")
    parser.add_argument(
        "--scale-objects", type=int, default=100_000, help="objects of the local-scale job on the local stack (default 100,000)"
    )
    parser.add_argument(
        "--scale-loop-objects", type=int, default=10_000, help="objects the threaded boto3 loop restores beside it (default 10,000)"
    )
    parser.add_argument("--scale-concurrent", type=int, default=200, help="concurrent create-job calls (default 200)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each CPU-time measurement; the fastest counts (default 3)")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"which parts to run (default all: {','.join(PARTS)})")
    parser.add_argument("--results", default="bench-results", help="directory of the JSON results (default bench-results)")
    parser.add_argument("--markdown", default="BENCHMARKS.md", help="where to write the report (default BENCHMARKS.md; '' for none)")
    parser.add_argument("--render", metavar="RESULTS_JSON", help="only write the report from a results file of an earlier run")
    parser.add_argument("--run-part", help=argparse.SUPPRESS)  # internal: run one part here, write its JSON
    parser.add_argument("--part-args", default="{}", help=argparse.SUPPRESS)
    parser.add_argument("--part-out", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def run_part(name: str, args: dict[str, Any]) -> Any:
    """One part, in this process."""
    if name == "cost":
        from bulk_restore_cli.bench import cost

        return cost.run(**args)
    if name == "planner":
        from bulk_restore_cli.bench import planner

        return planner.run(**args)
    if name == "completion":
        from bulk_restore_cli.bench import completion

        return [completion.run(args["events"], size, args.get("repeats", 1)) for size in args["batch_sizes"]]
    if name == "issuance":
        from bulk_restore_cli.bench import issuance

        return issuance.run(**args)
    if name == "latency":
        from bulk_restore_cli.bench import latency

        return latency.run(**args)
    if name == "local-scale":
        from bulk_restore_cli.bench import local_scale

        return local_scale.run(**args)
    if name == "vault":
        from bulk_restore_cli.bench import vault

        return vault.run(**args)
    raise ValueError(f"unknown part {name!r}")


def _in_fresh_process(name: str, args: dict[str, Any]) -> Any:
    """Run a part in a child interpreter: its own memory peak, no state left by another part."""
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "result.json"
        command = [
            sys.executable,
            "-m",
            "bulk_restore_cli.bench",
            "--run-part",
            name,
            "--part-args",
            json.dumps(args),
            "--part-out",
            str(out),
        ]
        started = time.monotonic()
        print(f"[bench] {name} {json.dumps(args)} ...", file=sys.stderr, flush=True)
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        print(f"[bench] {name} done in {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
        return json.loads(out.read_text(encoding="utf-8"))


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    if args.run_part:
        result = run_part(args.run_part, json.loads(args.part_args))
        Path(args.part_out).write_text(json.dumps(result), encoding="utf-8")
        return 0

    if args.render:
        results = json.loads(Path(args.render).read_text(encoding="utf-8"))
        _write_report(results, args.markdown)
        return 0

    from bulk_restore_cli.bench.cost import ENGINES

    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = set(parts) - set(PARTS)
    if unknown:
        raise SystemExit(f"unknown part(s): {', '.join(sorted(unknown))}; choose from {', '.join(PARTS)}")
    results: dict[str, Any] = {
        "machine": report.machine(),
        "started": report.now_iso(),
        "command": "python -m bulk_restore_cli.bench " + " ".join(sys.argv[1:] if argv is None else argv),
    }
    if "cost" in parts:
        engines = [e for e in args.engines.split(",") if e] or list(ENGINES)
        results["cost"] = [
            _in_fresh_process("cost", {"objects": args.objects, "engine": engine, "arrival": arrival})
            for engine in engines
            for arrival in args.arrivals.split(",")
            if arrival
        ]
    if "planner" in parts:
        sizes = sorted({n for n in (100_000, 1_000_000) if n < args.planner_lines} | {args.planner_lines})
        results["planner"] = [_in_fresh_process("planner", {"lines": n, "repeats": args.repeats}) for n in sizes]
    if "completion" in parts:
        results["completion"] = _in_fresh_process(
            "completion", {"events": args.completion_events, "batch_sizes": list(COMPLETION_BATCH_SIZES), "repeats": args.repeats}
        )
    if "issuance" in parts:
        results["issuance"] = _in_fresh_process("issuance", {"objects": args.issuance_objects, "rate": args.issuance_rate})
    if "latency" in parts:
        results["latency"] = _in_fresh_process("latency", {"sizes": [int(n) for n in args.latency_jobs.split(",") if n]})
    if "local-scale" in parts:
        results["local_scale"] = _in_fresh_process(
            "local-scale", {"objects": args.scale_objects, "loop_objects": args.scale_loop_objects, "concurrent": args.scale_concurrent}
        )
    if "vault" in parts:
        results["vault"] = _in_fresh_process("vault", {})
    results["finished"] = report.now_iso()
    results["targets"] = [vars(t) | {"verdict": t.verdict} for t in report.targets(results)]

    directory = Path(args.results)
    directory.mkdir(parents=True, exist_ok=True)
    stamp = results["started"].replace(" ", "T").replace(":", "")
    for path in (directory / f"bench-{stamp}.json", directory / "latest.json"):
        path.write_text(json.dumps(results, indent=1), encoding="utf-8")
    _write_report(results, args.markdown)
    return 0


def _write_report(results: dict[str, Any], markdown: str) -> None:
    if markdown:
        Path(markdown).write_text(report.markdown(results), encoding="utf-8")
    for target in report.targets(results):
        verdict = {True: "met", False: "NOT MET", None: "not run"}[target.met]
        print(f"{verdict:>8}  {target.name}: {target.figure} (target {target.bound})")


if __name__ == "__main__":
    sys.exit(main())
