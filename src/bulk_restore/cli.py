"""The `bulk-restore` command: `local` runs the stack on this machine, `demo` runs a bulk restore on it."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path


def _pairs(values: list[str] | None, option: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in values or []:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise SystemExit(f"bulk-restore: {option} takes NAME=VALUE, not {item!r}")
        pairs[name] = value
    return pairs


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bulk-restore", description="Restore large sets of archived S3 objects.")
    commands = parser.add_subparsers(dest="command", required=True)

    local = commands.add_parser(
        "local",
        help="run the whole stack locally (AWS emulated by moto, functions in-process, API on HTTP)",
        description="Run the stack in the foreground until SIGTERM or Ctrl-C. Prints one JSON line when ready.",
    )
    local.add_argument("--host", default="127.0.0.1", help="address both servers listen on (default 127.0.0.1)")
    local.add_argument("--api-port", type=int, default=3000, help="port of the REST API (default 3000)")
    local.add_argument("--aws-port", type=int, default=4566, help="port of the emulated AWS endpoint (default 4566)")
    local.add_argument("--restore-seconds", type=float, default=5.0,
                       help="seconds a Standard restore of a GLACIER object takes (Expedited /5, Bulk x2, Deep Archive x2; default 5)")
    local.add_argument("--restore-spread", type=float, default=0.8,
                       help="restores finish at random between (1 - spread) and 1 times their time (0 to 1; default 0.8)")
    local.add_argument("--sweep-seconds", type=float, default=10.0,
                       help="seconds between two runs of the sweeper (lost events, deadlines; default 10)")
    local.add_argument("--ready-file", type=Path, help="also write the ready line to this file")
    local.add_argument("--region", default="us-east-1")
    local.add_argument("--template", type=Path, help="template to run (default ./template.yaml, then the repository's)")
    local.add_argument("--stack-name", default="bulk-restore-local")
    local.add_argument("--parameter", action="append", metavar="NAME=VALUE", help="template parameter override (repeatable)")
    local.add_argument("--env", action="append", metavar="NAME=VALUE", help="override a function environment variable (repeatable)")
    local.add_argument("--api-key", help="API key to accept (default: a random one, printed in the ready line)")
    local.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                       help="level of the local stack's own log; the functions log at the template's level (or --env POWERTOOLS_LOG_LEVEL=...)")

    demo = commands.add_parser(
        "demo",
        help="run a real bulk restore on a fresh local stack and report it",
        description="Start a local stack, archive objects with awkward keys, restore them through the API, follow the job's events.",
    )
    redrive = commands.add_parser("redrive", help="move dead letters back to their queues once the cause is fixed")
    redrive.add_argument("--stack-name", help="deployed stack whose *DeadLetterQueueUrl outputs to redrive")
    redrive.add_argument("--dlq-url", action="append", help="a dead-letter queue URL (repeatable)")
    redrive.add_argument("--endpoint-url", help="AWS endpoint (the local stack's aws_endpoint_url)")
    redrive.add_argument("--region", default=None)
    redrive.add_argument("--max", type=int, default=None, help="move at most this many messages per queue")

    demo.add_argument("--objects", type=int, default=50, help="archived objects to restore (default 50)")
    demo.add_argument("--restore-seconds", type=float, default=3.0, help="seconds a Standard restore takes locally (default 3)")
    demo.add_argument("--tier", default="BULK", choices=["STANDARD", "BULK", "EXPEDITED"], type=str.upper,
                      help="retrieval tier of the job (default BULK, the usual one for bulk restores)")
    demo.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the job to finish (default 120)")
    demo.add_argument("--template", type=Path, help="template to run (default ./template.yaml, then the repository's)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "local":
        return _local(args)
    if args.command == "redrive":
        return _redrive(args)
    if args.command == "demo":
        from bulk_restore.demo import DemoOptions, run_demo

        options = DemoOptions(objects=args.objects, restore_seconds=args.restore_seconds, tier=args.tier, timeout=args.timeout,
                              template=args.template)
        return run_demo(options)
    raise AssertionError(args.command)


def _redrive(args: argparse.Namespace) -> int:
    """Put dead letters back on the queues they came from, once their cause is fixed."""
    import boto3

    from bulk_restore.adapters.sqs import move_messages

    session = boto3.session.Session(region_name=args.region)
    sqs = session.client("sqs", endpoint_url=args.endpoint_url)
    dead_letter_urls = list(args.dlq_url or [])
    if args.stack_name:
        cloudformation = session.client("cloudformation", endpoint_url=args.endpoint_url)
        outputs = cloudformation.describe_stacks(StackName=args.stack_name)["Stacks"][0].get("Outputs", [])
        dead_letter_urls += [o["OutputValue"] for o in outputs if o["OutputKey"].endswith("DeadLetterQueueUrl")]
    if not dead_letter_urls:
        print("name the dead-letter queues: --stack-name NAME or --dlq-url URL", file=sys.stderr)
        return 2
    total = 0
    for dead_letters in dead_letter_urls:
        sources = sqs.list_dead_letter_source_queues(QueueUrl=dead_letters).get("queueUrls", [])
        if len(sources) != 1:
            print(f"{dead_letters}: expected one source queue, found {len(sources)}; skipped", file=sys.stderr)
            continue
        moved = move_messages(sqs, dead_letters, sources[0], args.max)
        total += moved
        print(f"{dead_letters} -> {sources[0]}: {moved} message(s) moved back")
    print(f"{total} message(s) redriven")
    return 0


def _local(args: argparse.Namespace) -> int:
    logging.basicConfig(stream=sys.stderr, level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("werkzeug", "botocore", "boto3", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    from bulk_restore.local.stack import LocalStackConfig, run

    environment = _pairs(args.env, "--env")
    config = LocalStackConfig(
        host=args.host,
        api_port=args.api_port,
        aws_port=args.aws_port,
        restore_seconds=args.restore_seconds,
        restore_spread=args.restore_spread,
        region=args.region,
        template=args.template,
        stack_name=args.stack_name,
        parameters=_pairs(args.parameter, "--parameter"),
        environment=environment,
        api_key=args.api_key,
        sweep_seconds=args.sweep_seconds,
    )
    try:
        return run(config, ready_file=args.ready_file)
    except (OSError, ValueError) as exc:
        logging.getLogger("bulk_restore.local").error("%s", exc)
        return 1


if __name__ == "__main__":
    sys.exit(main())
