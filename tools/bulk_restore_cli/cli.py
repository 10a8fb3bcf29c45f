"""The `bulk-restore` command: `local` runs the stack on this machine, `demo` runs a bulk restore on it,
`redrive` puts dead letters back; the client commands (`configure`, `create-job`, `status`, `jobs`,
`objects`, `cancel`, `watch`: bulk_restore_cli.client) use a stack, deployed or local.

Exit codes: 0 done; 1 the command ran and failed (the demo's job did not come out right, a queue
was skipped, AWS refused a call); 2 nothing was done because of something the user can fix (an
option, the region, the credentials, a name, a port): one line on stderr says what; 130
interrupted.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

from bulk_restore_cli.client.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE, CliError

__all__ = ["EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_USAGE", "CliError", "main"]


def _pairs(values: list[str] | None, option: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in values or []:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise CliError(f"{option} takes NAME=VALUE, not {item!r}")
        pairs[name] = value
    return pairs


def _version() -> str:
    from bulk_restore import __version__  # the code that runs, not an install's (possibly older) metadata

    return __version__


def _parser() -> argparse.ArgumentParser:
    from bulk_restore_cli.client.commands import CLIENT_COMMANDS, add_client_commands

    parser = argparse.ArgumentParser(
        prog="bulk-restore",
        description="Restore large sets of archived S3 objects.",
        epilog="exit codes: 0 done; 1 the command ran and failed; 2 nothing done, fix what the one line on\n"
        "stderr says; 130 interrupted; `watch` adds 3 to 7 for how the job ended (bulk-restore watch --help).\n\n"
        "example:\n  bulk-restore local &\n"
        '  JOB=$(bulk-restore create-job manifest.csv --tier BULK) && bulk-restore watch "$JOB"',
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="{" + ",".join(("local", "demo", "redrive", *CLIENT_COMMANDS)) + "}")

    local = commands.add_parser(
        "local",
        help="run the whole stack locally (AWS emulated by moto, functions in-process, API on HTTP)",
        description="Run the stack in the foreground until SIGTERM or Ctrl-C. Prints one JSON line when ready.",
    )
    local.add_argument("--host", default="127.0.0.1", help="address both servers listen on (default 127.0.0.1)")
    local.add_argument("--api-port", type=int, default=3000, help="port of the REST API (default 3000)")
    local.add_argument("--aws-port", type=int, default=4566, help="port of the emulated AWS endpoint (default 4566)")
    local.add_argument(
        "--restore-seconds",
        type=float,
        default=5.0,
        help="seconds a Standard restore of a GLACIER object takes (Expedited /5, Bulk x2, Deep Archive x2; default 5)",
    )
    local.add_argument(
        "--restore-spread",
        type=float,
        default=0.8,
        help="restores finish at random between (1 - spread) and 1 times their time (0 to 1; default 0.8)",
    )
    local.add_argument(
        "--sweep-seconds", type=float, default=10.0, help="seconds between two runs of the sweeper (lost events, deadlines; default 10)"
    )
    local.add_argument(
        "--ready-file",
        type=Path,
        help="also write the ready line to this file, where the client commands find the stack (default "
        "$XDG_STATE_HOME/bulk-restore/local.json, else ~/.local/state/bulk-restore/local.json)",
    )
    local.add_argument(
        "--endpoint-stats",
        type=Path,
        metavar="FILE",
        help="when the stack stops, write the AWS endpoint's requests and time per operation to FILE (JSON)",
    )
    local.add_argument("--region", default="us-east-1")
    local.add_argument("--template", type=Path, help="template to run (default ./template.yaml, then the repository's)")
    local.add_argument("--stack-name", default="bulk-restore-local")
    local.add_argument("--parameter", action="append", metavar="NAME=VALUE", help="template parameter override (repeatable)")
    local.add_argument("--env", action="append", metavar="NAME=VALUE", help="override a function environment variable (repeatable)")
    local.add_argument("--api-key", help="API key to accept (default: a random one, printed in the ready line)")
    local.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="level of the local stack's own log; the functions log at the template's level (or --env POWERTOOLS_LOG_LEVEL=...)",
    )

    demo = commands.add_parser(
        "demo",
        help="run a real bulk restore on a fresh local stack and report it",
        description="Start a local stack, archive objects with awkward keys, restore them through the API, follow the job's events.",
    )
    redrive = commands.add_parser("redrive", help="move dead letters back to their queues once the cause is fixed")
    redrive.add_argument("--stack-name", help="deployed stack whose *DeadLetterQueueUrl outputs to redrive")
    redrive.add_argument("--dlq-url", action="append", help="a dead-letter queue URL (repeatable)")
    redrive.add_argument("--endpoint-url", help="AWS endpoint (the local stack's aws_endpoint_url)")
    redrive.add_argument("--region", default=None, help="AWS region (default: AWS_REGION, AWS_DEFAULT_REGION or the profile's)")
    redrive.add_argument("--max", type=int, default=None, help="move at most this many messages per queue")

    demo.add_argument("--objects", type=int, default=50, help="archived objects to restore (default 50)")
    demo.add_argument("--restore-seconds", type=float, default=3.0, help="seconds a Standard restore takes locally (default 3)")
    demo.add_argument(
        "--tier",
        default=None,
        choices=["STANDARD", "BULK", "EXPEDITED"],
        type=str.upper,
        help="retrieval tier of the job (default BULK, the usual one for bulk restores; EXPEDITED with --vault)",
    )
    demo.add_argument(
        "--vault", action="store_true", help="move a Glacier vault's archives (uploaded with boto3's glacier client) into a bucket instead"
    )
    demo.add_argument(
        "--engine",
        default="auto",
        choices=["auto", "direct", "batch"],
        type=str.lower,
        help="who sends the restore requests: direct (the functions), batch (one S3 Batch Operations job); default auto",
    )
    demo.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the job to finish (default 120)")
    demo.add_argument("--template", type=Path, help="template to run (default ./template.yaml, then the repository's)")
    add_client_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "local":
            return _local(args)
        if args.command == "redrive":
            return _redrive(args)
        if args.command == "demo":
            return _demo(args)
        if getattr(args, "handler", None) is not None:
            return _client(args)
        parser.print_help(sys.stderr)  # no command: what the commands are is the useful answer
        return EXIT_USAGE
    except CliError as exc:
        print(f"bulk-restore: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        print("bulk-restore: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _client(args: argparse.Namespace) -> int:
    """A client command; whatever AWS or the system answers is one line, never a traceback."""
    from botocore.exceptions import BotoCoreError, ClientError

    from bulk_restore_cli.client.commands import run_client_command
    from bulk_restore_cli.client.config import aws_failure

    try:
        return run_client_command(args)
    except (ClientError, BotoCoreError) as exc:
        raise aws_failure(exc, args.command) from exc
    except BrokenPipeError:  # `bulk-restore objects ... | head`: the reader has what it wanted
        sys.stderr.close()
        return 0
    except OSError as exc:
        raise CliError(f"{args.command}: {exc}", EXIT_FAILED) from exc


def _demo(args: argparse.Namespace) -> int:
    from bulk_restore_cli.demo import DemoOptions, run_demo
    from bulk_restore_cli.local.stack import find_template

    try:
        find_template(args.template)  # the demo's stack runs in a subprocess: say it here, not in its log
    except FileNotFoundError as exc:
        raise CliError(str(exc)) from exc
    tier = args.tier or ("EXPEDITED" if args.vault else "BULK")  # a local Bulk vault retrieval takes minutes
    options = DemoOptions(
        objects=args.objects,
        restore_seconds=args.restore_seconds,
        tier=tier,
        timeout=args.timeout,
        template=args.template,
        engine=args.engine,
        vault=args.vault,
    )
    return run_demo(options)


CREDENTIALS_HELP = (
    "no AWS credentials: run `aws configure`, set AWS_PROFILE, or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
    " (for the local stack any values will do)"
)
REGION_HELP = "no AWS region: pass --region or set AWS_REGION"
MISSING_QUEUE = ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist", "NonExistentQueue")


def _redrive(args: argparse.Namespace) -> int:
    """Put dead letters back on the queues they came from, once their cause is fixed."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError, NoCredentialsError, NoRegionError

    if not args.stack_name and not args.dlq_url:
        raise CliError("name the dead-letter queues: --stack-name NAME or --dlq-url URL")
    session = boto3.session.Session()
    # boto3 reads AWS_DEFAULT_REGION and the profile; AWS_REGION is what Lambda and most SDKs set.
    region = args.region or os.environ.get("AWS_REGION") or session.region_name
    if not region:
        raise CliError(REGION_HELP)
    session = boto3.session.Session(region_name=region)
    if session.get_credentials() is None:
        raise CliError(CREDENTIALS_HELP)
    try:
        return _redrive_queues(args, session, region)
    except EndpointConnectionError as exc:
        where = args.endpoint_url or f"AWS in {region}"
        raise CliError(f"cannot reach {where}: check --endpoint-url and --region (is the local stack running?)") from exc
    except NoCredentialsError as exc:
        raise CliError(CREDENTIALS_HELP) from exc
    except NoRegionError as exc:
        raise CliError(REGION_HELP) from exc
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise CliError(f"AWS refused {exc.operation_name}: {error.get('Code', '?')}: {error.get('Message', '')}", EXIT_FAILED) from exc
    except BotoCoreError as exc:
        raise CliError(f"AWS call failed: {exc}", EXIT_FAILED) from exc


def _redrive_queues(args: argparse.Namespace, session: Any, region: str) -> int:
    from botocore.exceptions import ClientError

    from bulk_restore.adapters.sqs import move_messages

    sqs = session.client("sqs", endpoint_url=args.endpoint_url)
    dead_letter_urls = list(args.dlq_url or [])
    if args.stack_name:
        cloudformation = session.client("cloudformation", endpoint_url=args.endpoint_url)
        try:
            stacks = cloudformation.describe_stacks(StackName=args.stack_name)["Stacks"]
        except ClientError as exc:
            if "does not exist" not in str(exc.response.get("Error", {}).get("Message", "")):
                raise
            raise CliError(f"no stack {args.stack_name} in {region}: check --stack-name and --region") from exc
        outputs = stacks[0].get("Outputs", [])
        found = [o["OutputValue"] for o in outputs if o["OutputKey"].endswith("DeadLetterQueueUrl")]
        if not found:
            raise CliError(f"stack {args.stack_name} has no *DeadLetterQueueUrl outputs: is it a bulk-restore stack? check --stack-name")
        dead_letter_urls += found
    # Every queue is looked up before any message moves: a wrong URL changes nothing.
    sources: dict[str, list[str]] = {}
    for dead_letters in dead_letter_urls:
        try:
            sources[dead_letters] = sqs.list_dead_letter_source_queues(QueueUrl=dead_letters).get("queueUrls", [])
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in MISSING_QUEUE:
                raise
            raise CliError(f"no queue {dead_letters} in {region}: check --dlq-url, --region and --endpoint-url") from exc
    total, skipped = 0, 0
    for dead_letters, queues in sources.items():
        if len(queues) != 1:
            print(f"bulk-restore: {dead_letters}: expected one source queue, found {len(queues)}; skipped", file=sys.stderr)
            skipped += 1
            continue
        moved = move_messages(sqs, dead_letters, queues[0], args.max)
        total += moved
        print(f"{dead_letters} -> {queues[0]}: {moved} message(s) moved back")
    print(f"{total} message(s) redriven")
    return EXIT_FAILED if skipped else 0


def _local(args: argparse.Namespace) -> int:
    from bulk_restore_cli.local.stack import LocalStackConfig, LocalStackError, check, run

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
        environment=_pairs(args.env, "--env"),
        api_key=args.api_key,
        sweep_seconds=args.sweep_seconds,
        functions_process=True,  # the functions apart from the AWS endpoint, as in AWS (local/function_host.py)
        endpoint_stats=args.endpoint_stats,
    )
    try:
        check(config)  # before anything starts or logs: a bad option is one line, not a half-started stack
    except LocalStackError as exc:
        raise CliError(str(exc)) from exc
    logging.basicConfig(stream=sys.stderr, level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("werkzeug", "botocore", "boto3", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    ready_file = args.ready_file
    if ready_file is None:  # where the client commands look for a local stack
        from bulk_restore_cli.client.config import default_ready_file

        ready_file = default_ready_file()
        try:
            ready_file.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CliError(f"cannot create {ready_file.parent} for the ready file ({exc.strerror}): pass --ready-file PATH") from exc
    try:
        return run(config, ready_file=ready_file)
    except LocalStackError as exc:  # what changed since the check (a port taken meanwhile)
        raise CliError(str(exc)) from exc
    except (OSError, ValueError) as exc:
        raise CliError(f"the local stack could not start: {exc}", EXIT_FAILED) from exc


if __name__ == "__main__":
    sys.exit(main())
