"""The client commands of `bulk-restore`: configure, create-job, status, jobs, objects, cancel, watch."""

from __future__ import annotations

import argparse
import re
import sys
import textwrap
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bulk_restore_cli.client import output
from bulk_restore_cli.client.api import ApiClient
from bulk_restore_cli.client.config import (
    Discovery,
    Stack,
    aws_failure,
    config_path,
    default_ready_file,
    find_stack,
    from_cloudformation,
    write_config,
)
from bulk_restore_cli.client.errors import EXIT_FAILED, EXIT_OK, CliError

CLIENT_COMMANDS = ("configure", "create-job", "status", "jobs", "objects", "cancel", "watch", "recount")
STATES = ("RESTORING", "RESTORED", "SKIPPED", "FAILED", "CANCELLED")
JOB_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def _stack_options() -> argparse.ArgumentParser:
    """How every client command finds its stack (bulk_restore_cli.client.config)."""
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("which stack (first that applies; the one used is said on stderr)")
    group.add_argument("--api-url", help="the API's base URL (the stack's ApiUrl output), with --api-key: no CloudFormation lookup")
    group.add_argument("--api-key", help="the API key (the stack's ApiKeyCommand output prints it)")
    group.add_argument("--ready-file", type=Path, metavar="PATH", help="the ready file of a `bulk-restore local` stack")
    group.add_argument("--local", action="store_true", help=f"the local stack of the default ready file ({_home(default_ready_file())})")
    group.add_argument("--stack-name", help="a deployed stack: its CloudFormation outputs")
    group.add_argument("--profile", help="AWS profile (default: AWS_PROFILE, else the default profile)")
    group.add_argument("--region", help="AWS region (default: AWS_REGION, AWS_DEFAULT_REGION, else the profile's)")
    group.add_argument(
        "--config-profile",
        metavar="NAME",
        help=f"section of {_home(config_path())} to use (default: [default], or BULK_RESTORE_CONFIG_PROFILE)",
    )
    parent.add_argument("-q", "--quiet", action="store_true", help="do not say on stderr which stack is used")
    return parent


def _output_option(parser: argparse.ArgumentParser, formats: tuple[str, ...] = ("table", "json")) -> None:
    parser.add_argument(
        "--output",
        "-o",
        choices=formats,
        default="table",
        help=f"{' or '.join(formats)} (default table); json prints the API's answer as it is",
    )


def _home(path: Path) -> str:
    try:
        return "~/" + str(path.relative_to(Path.home()))
    except ValueError:
        return str(path)


EXIT_CODES = """exit codes:
  0    done
  1    the command ran and failed: the API answered 429 or 5xx, or AWS refused a call
  2    nothing done: fix what the one line on stderr says (an option, the stack, a 4xx answer)
  130  interrupted"""


def add_client_commands(commands: Any) -> None:
    """The client commands, on the `bulk-restore` parser's subcommands."""
    stack = _stack_options()

    def command(
        name: str,
        help_text: str,
        description: str,
        example: str,
        parents: list[argparse.ArgumentParser] | None = None,
        epilog: str = EXIT_CODES,
    ) -> argparse.ArgumentParser:
        description = textwrap.fill(description, 100)
        return commands.add_parser(
            name,
            help=help_text,
            description=description,
            parents=[stack] if parents is None else parents,
            epilog=f"example:\n{example}\n\n{epilog}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    configure = command(
        "configure",
        "remember which stack the client commands use",
        "Write the stack to use to the config file (~/.config/bulk-restore/config.toml, or under XDG_CONFIG_HOME): a deployed "
        "stack's name (its outputs are read at each command), an API URL and key, or a local stack's ready file. "
        "With --show, print what the commands would use now.",
        "  bulk-restore configure --stack-name bulk-restore --profile prod --region eu-west-1\n  bulk-restore configure --show",
        parents=[],
    )
    configure.add_argument("--stack-name", help="a deployed stack (checked now: its outputs must be readable)")
    configure.add_argument("--profile", help="the AWS profile to read it with")
    configure.add_argument("--region", help="its region")
    configure.add_argument("--api-url", help="an API's base URL instead of a stack (with --api-key)")
    configure.add_argument("--api-key", help="that API's key (the file is then readable by you only)")
    configure.add_argument("--manifest-bucket", help="with --api-url: the stack's ManifestBucket (for local manifest files)")
    configure.add_argument("--ready-file", type=Path, metavar="PATH", help="a local stack's ready file instead")
    configure.add_argument("--config-profile", metavar="NAME", default=None, help="the section to write (default: default)")
    configure.add_argument("--no-check", action="store_true", help="write without reading the stack's outputs first")
    configure.add_argument("--show", action="store_true", help="print the stack the commands would use, and from where")
    _output_option(configure)
    configure.set_defaults(handler=configure_command)

    create = command(
        "create-job",
        "start a restore (or a vault move) and print its job id",
        "Create a job from an S3 manifest, a local manifest file (uploaded to the stack's manifest bucket first), an S3 "
        "Inventory report, a prefix, or a Glacier vault. Prints the job id (the whole answer with --output json).",
        "  bulk-restore create-job manifest.csv --tier BULK --expiration-days 7 --client-tag finance\n"
        "  bulk-restore create-job s3://my-manifests/restores/manifest.csv\n"
        "  bulk-restore create-job --inventory s3://inventories/data/config/2026-11-21T01-00Z/manifest.json\n"
        "  bulk-restore create-job --source s3://data/photos/2019/ --storage-class GLACIER\n"
        "  bulk-restore create-job --vault family-photos --inventory --target s3://my-copies/from-vault/",
    )
    what = create.add_argument_group("what to restore (one of)")
    what.add_argument(
        "manifest",
        nargs="?",
        metavar="MANIFEST",
        help="s3://bucket/key of a manifest, or a local file (uploaded to the stack's ManifestBucket); with --vault: "
        "a manifest of archive ids",
    )
    what.add_argument("--bucket", help="the manifest's bucket (with --key)")
    what.add_argument("--key", help="the manifest's key (with --bucket)")
    what.add_argument(
        "--inventory",
        nargs="?",
        const=True,
        default=None,
        metavar="S3_URL",
        help="s3://.../manifest.json of an S3 Inventory report; with --vault and no value: every archive of the vault's inventory",
    )
    what.add_argument("--source", metavar="S3_URL", help="s3://bucket/prefix: every object under a prefix")
    what.add_argument("--vault", metavar="NAME", help="a Glacier vault whose archives go into S3 (with --target)")
    options = create.add_argument_group("job options")
    options.add_argument("--tier", type=str.upper, choices=["STANDARD", "BULK", "EXPEDITED"], help="retrieval tier (default STANDARD)")
    options.add_argument("--expiration-days", "--days", type=int, metavar="DAYS", help="days the restored copies stay (default 1)")
    options.add_argument("--client-tag", help="your label, in every event and as a message attribute")
    options.add_argument(
        "--client-token",
        "--idempotency-key",
        metavar="KEY",
        help="idempotency key: the same key returns the same job (default: a new one per run, reused on retries)",
    )
    options.add_argument("--progress-step", type=int, metavar="PERCENT", help="progress event step, 1-50")
    options.add_argument("--expedited-fallback", action="store_true", help="use Standard when Expedited has no capacity")
    options.add_argument("--deadline-hours", type=float, metavar="HOURS", help="end the job as Timeout after this long")
    options.add_argument("--keep-restored-days", type=int, metavar="DAYS", help="renew the restored copies this long after the job")
    options.add_argument("--engine", type=str.lower, choices=["auto", "direct", "batch"], help="who sends the restore requests")
    options.add_argument("--include-versions", action="store_true", help="an inventory's or prefix's noncurrent versions too")
    options.add_argument(
        "--storage-class",
        action="append",
        type=str.upper,
        metavar="CLASS",
        choices=["GLACIER", "DEEP_ARCHIVE", "INTELLIGENT_TIERING"],
        help="with --source: classes to restore (repeatable)",
    )
    options.add_argument("--dry-run", action="store_true", help="ask the API what the job would do and cost; create nothing")
    options.add_argument("--max-cost", type=float, metavar="USD", help="refuse the job if its estimate is above this many dollars")
    vault = create.add_argument_group("vault jobs")
    vault.add_argument("--vault-account", metavar="ACCOUNT_ID", help="the vault's account (default: the stack's)")
    vault.add_argument("--archives", nargs="+", metavar="ID", help="archive ids (or comma-separated)")
    vault.add_argument("--target", metavar="S3_URL", help="s3://bucket/prefix the archives go to")
    vault.add_argument("--target-storage-class", type=str.upper, metavar="CLASS", help="their storage class (default STANDARD)")
    vault.add_argument("--key-from", choices=["description", "archive_id"], help="how archives are named")
    vault.add_argument("--max-archives", type=int, metavar="N", help="stop after this many archives")
    vault.add_argument("--created-from", metavar="TIME", help="filter: archives created from (ISO 8601 with a zone)")
    vault.add_argument("--created-before", metavar="TIME", help="filter: archives created before")
    vault.add_argument("--min-size", metavar="SIZE", help="filter: the smallest archive (bytes, or 10MB, 1GiB...)")
    vault.add_argument("--max-size", metavar="SIZE", help="filter: the largest archive")
    vault.add_argument("--max-bytes-per-day", metavar="SIZE", help="a daily retrieval quota (e.g. 100TiB)")
    vault.add_argument("--overrides", metavar="S3_URL_OR_FILE", help="a CSV archive_id,key naming archives (a local file is uploaded)")
    vault.add_argument("--split-large-archives", action="store_true", help="archives over 5 TiB become objects of 4 TiB")
    _output_option(create)
    create.set_defaults(handler=create_job_command)

    status = command(
        "status",
        "show a job's status and counts",
        "Show a job: status, counts per state, planning, times.",
        "  bulk-restore status 82319eda-4945-4b83-84e4-b2cee06f57d0",
    )
    status.add_argument("job_id", metavar="JOB")
    _output_option(status)
    status.set_defaults(handler=status_command)

    jobs = command(
        "jobs",
        "list recent jobs, newest first",
        "List the stack's jobs, newest first, a page at a time.",
        "  bulk-restore jobs --limit 10\n  bulk-restore jobs --all --output json",
    )
    jobs.add_argument("--limit", type=int, default=20, help="jobs per page, 1-100 (default 20)")
    jobs.add_argument("--next-token", help="the page after the one that printed this token")
    jobs.add_argument("--all", action="store_true", help="every page")
    _output_option(jobs)
    jobs.set_defaults(handler=jobs_command)

    objects = command(
        "objects",
        "list a job's objects, or its failures by reason",
        "List a job's objects (every page), optionally of one state; --reason counts them by reason instead.",
        "  bulk-restore objects JOB --state FAILED --output csv > failed.csv\n  bulk-restore objects JOB --reason",
    )
    objects.add_argument("job_id", metavar="JOB")
    objects.add_argument("--state", type=str.upper, choices=STATES, help="only objects in this state")
    objects.add_argument("--reason", action="store_true", help="count the objects by reason (of --state, default FAILED)")
    objects.add_argument("--max", type=int, metavar="N", help="stop after N objects")
    _output_option(objects, ("table", "csv", "json"))
    objects.set_defaults(handler=objects_command)

    cancel = command(
        "cancel",
        "cancel a job",
        "Cancel a job: no new restore requests; requested ones go on. Prints its status.",
        "  bulk-restore cancel 82319eda-4945-4b83-84e4-b2cee06f57d0",
    )
    cancel.add_argument("job_id", metavar="JOB")
    _output_option(cancel)
    cancel.set_defaults(handler=cancel_command)

    from bulk_restore_cli.client import watch as watch_module

    watch = command(
        "watch",
        "follow a job live until it ends; the exit code says how it ended",
        "Follow a job: a progress bar with counts per state, rate, bytes and ETA (a line per change when stdout is "
        "not a terminal), fed by the job's events through a temporary SQS queue subscribed to its topic (removed "
        "on exit), or by polling GET /jobs/ID (--poll; also when the queue cannot be made).",
        "  bulk-restore watch 82319eda-4945-4b83-84e4-b2cee06f57d0 --allow-failed && echo ready",
        epilog=watch_module.EXIT_CODES_HELP,
    )
    watch.add_argument("job_id", metavar="JOB")
    watch.add_argument("--poll", action="store_true", help="poll GET /jobs/ID instead of subscribing to the job's events")
    watch.add_argument(
        "--interval",
        type=float,
        default=None,
        metavar="SECONDS",
        help="seconds between two status reads (default 5 with --poll, 30 beside the events)",
    )
    watch.add_argument("--timeout", type=float, metavar="SECONDS", help="give up after this long (exit code 7)")
    watch.add_argument("--allow-failed", action="store_true", help="Complete with failed objects exits 0 too")
    watch.add_argument(
        "--ok",
        action="append",
        default=[],
        type=str.capitalize,
        choices=["Failed", "Timeout", "Cancelled"],
        metavar="STATUS",
        help="also exit 0 when the job ends so: Failed, Timeout or Cancelled (repeatable)",
    )
    _output_option(watch)
    watch.set_defaults(handler=watch_module.watch_command)

    recount = command(
        "recount",
        "count a job's objects from its items and compare with its counters (operator)",
        "Read every object item of the job (and its chunk markers) from the job table, straight from DynamoDB with your "
        "AWS credentials, and compare their states with the job's counters, which the counting function derives from "
        "the table's stream. Exit 0 when they agree, 1 when they differ. With --fix, add the difference to the "
        "counters (only for a job that has ended, or with --force: counters of a running job move while it reads). "
        "Reads the whole job: a few read units per thousand objects.",
        "  bulk-restore recount 82319eda-4945-4b83-84e4-b2cee06f57d0\n"
        "  bulk-restore recount 82319eda-4945-4b83-84e4-b2cee06f57d0 --fix --stack-name bulk-restore --profile ops",
    )
    recount.add_argument("job_id", metavar="JOB")
    recount.add_argument("--table", metavar="NAME", help="the job table, instead of the stack's TableName output")
    recount.add_argument("--fix", action="store_true", help="add the difference to the job's counters (an ended job)")
    recount.add_argument("--force", action="store_true", help="with --fix: also for a job still running")
    _output_option(recount)
    recount.set_defaults(handler=recount_command)


def run_client_command(args: argparse.Namespace) -> int:
    return int(args.handler(args))


# ---- shared -------------------------------------------------------------------------------------


def connect(args: argparse.Namespace) -> tuple[Stack, ApiClient]:
    """The stack (said on stderr, one line) and a client of its API."""
    from bulk_restore import __version__

    stack = find_stack(Discovery.from_args(args))
    if not getattr(args, "quiet", False):
        print(f"bulk-restore: using {stack.source}", file=sys.stderr)
    return stack, ApiClient(stack.api_url, stack.api_key, user_agent=f"bulk-restore-cli/{__version__}")


def check_job_id(job_id: str) -> str:
    if not JOB_ID.match(job_id.strip()):
        raise CliError(f"{job_id!r} is not a job id: job ids are UUIDs, as create-job printed (`bulk-restore jobs` lists them)")
    return job_id.strip()


def parse_s3_url(url: str, option: str, key_required: bool = True) -> tuple[str, str]:
    match = re.fullmatch(r"s3://([^/]+)/?(.*)", url.strip(), re.DOTALL)
    if not match or (key_required and not match.group(2)):
        shape = "s3://bucket/key" if key_required else "s3://bucket/prefix"
        raise CliError(f"{option} {url!r} is not an S3 URL: give {shape}")
    return match.group(1), match.group(2)


# ---- configure ----------------------------------------------------------------------------------


def configure_command(args: argparse.Namespace) -> int:
    if args.show:
        stack = find_stack(Discovery(config_profile=args.config_profile))
        shown = {
            "source": stack.source,
            "api_url": stack.api_url,
            "api_key": _masked(stack.api_key),
            "region": stack.region,
            "topic_arn": stack.topic_arn,
            "manifest_bucket": stack.manifest_bucket,
            "events_queue_url": stack.events_queue_url,
            "endpoint_url": stack.endpoint_url,
        }
        output.to_json(shown) if args.output == "json" else output.key_values(shown.items())
        return EXIT_OK
    given = [
        name for name, value in (("--stack-name", args.stack_name), ("--api-url", args.api_url), ("--ready-file", args.ready_file)) if value
    ]
    if len(given) != 1:
        raise CliError(
            "configure takes one of --stack-name NAME, --api-url URL (with --api-key) or --ready-file PATH "
            f"({' and '.join(given) or 'none'} given); --show prints the current one"
        )
    section = args.config_profile or "default"
    if args.stack_name:
        values = {"stack_name": args.stack_name, "aws_profile": args.profile, "region": args.region}
        if not args.no_check:
            found = from_cloudformation(args.stack_name, args.profile, args.region)
            values["region"] = found.region  # as the session resolved it: the same stack at every command
        what = f"stack {args.stack_name}" + (f" in {values['region']}" if values["region"] else "")
    elif args.api_url:
        if not args.api_key:
            raise CliError("--api-url needs --api-key (the stack's ApiKeyCommand output prints it)")
        values = {
            "api_url": args.api_url.rstrip("/"),
            "api_key": args.api_key,
            "manifest_bucket": args.manifest_bucket,
            "region": args.region,
            "aws_profile": args.profile,
        }
        what = f"the API at {values['api_url']}"
    else:
        values = {"ready_file": str(Path(args.ready_file).expanduser().resolve())}
        what = f"the local stack of {values['ready_file']}"
    path = write_config(section, values)
    if args.output == "json":
        output.to_json({"config_file": str(path), "section": section, **{k: v for k, v in values.items() if v}})
    else:
        print(f"wrote {path} [{section}]: {what}")
    return EXIT_OK


def _masked(key: str) -> str:
    return key[:4] + "..." if len(key) > 8 else "..."


# ---- create-job ---------------------------------------------------------------------------------


def build_create_body(args: argparse.Namespace, upload: Callable[[Path, str], tuple[str, str]]) -> dict[str, Any]:
    """The create-job body the options ask for. ``upload(path, what)`` puts a local file in the
    stack's manifest bucket and returns its (bucket, key)."""
    body: dict[str, Any] = {}
    inventory_report = args.inventory if isinstance(args.inventory, str) else None
    sources = [
        name
        for name, there in (
            ("MANIFEST", args.manifest),
            ("--bucket/--key", args.bucket or args.key),
            ("--inventory S3_URL", inventory_report),
            ("--source", args.source),
        )
        if there
    ]
    if args.vault:
        if inventory_report or args.source:
            raise CliError(
                "with --vault, give --archives ID..., --inventory (no value: the vault's inventory) or a MANIFEST of "
                "archive ids; --source and an inventory report are for S3 jobs"
            )
        if not args.target:
            raise CliError("a vault job needs --target s3://bucket/prefix: where its archives go")
        body["vault"] = {"name": args.vault} | ({"account_id": args.vault_account} if args.vault_account else {})
        bucket, prefix = parse_s3_url(args.target, "--target", key_required=False)
        body["target"] = {"bucket": bucket, "prefix": prefix} | (
            {"storage_class": args.target_storage_class} if args.target_storage_class else {}
        )
        if args.archives:
            body["archives"] = [a for item in args.archives for a in item.split(",") if a]
        if args.inventory is True:
            body["inventory"] = True
    else:
        vault_only = [
            name
            for name, value in (
                ("--archives", args.archives),
                ("--target", args.target),
                ("--key-from", args.key_from),
                ("--max-archives", args.max_archives),
                ("--created-from", args.created_from),
                ("--created-before", args.created_before),
                ("--min-size", args.min_size),
                ("--max-size", args.max_size),
                ("--max-bytes-per-day", args.max_bytes_per_day),
                ("--overrides", args.overrides),
                ("--vault-account", args.vault_account),
                ("--split-large-archives", args.split_large_archives),
                ("--target-storage-class", args.target_storage_class),
            )
            if value
        ]
        if vault_only:
            raise CliError(f"{', '.join(vault_only)} appl{'ies' if len(vault_only) == 1 else 'y'} to a vault job: add --vault NAME")
        if args.inventory is True:
            raise CliError("--inventory needs the S3 URL of an S3 Inventory report's manifest.json (or --vault NAME for a vault's)")
        if len(sources) != 1:
            raise CliError(
                "say what to restore, once: a MANIFEST (s3://bucket/key or a local file), --bucket and --key, "
                f"--inventory s3://.../manifest.json, or --source s3://bucket/prefix ({' and '.join(sources) or 'none'} given)"
            )
    if len(sources) > 1:
        raise CliError(f"say what to restore once: {' and '.join(sources)} given")
    if args.bucket or args.key:
        if not (args.bucket and args.key):
            raise CliError("--bucket and --key go together: the manifest's bucket and key (or give s3://bucket/key)")
        body |= {"bucket": args.bucket, "key": args.key}
    elif args.manifest:
        if args.manifest.startswith("s3://"):
            body["bucket"], body["key"] = parse_s3_url(args.manifest, "MANIFEST")
        else:
            body["bucket"], body["key"] = upload(Path(args.manifest), "manifest")
    elif inventory_report:
        body["bucket"], body["key"] = parse_s3_url(inventory_report, "--inventory")
        body["manifest_format"] = "s3-inventory"
    elif args.source:
        bucket, prefix = parse_s3_url(args.source, "--source", key_required=False)
        body["source"] = {"bucket": bucket, "prefix": prefix} | ({"storage_classes": args.storage_class} if args.storage_class else {})
        if args.include_versions:
            body["source"]["include_versions"] = True
    if args.storage_class and not args.source:
        raise CliError("--storage-class applies to --source (a prefix): the classes to restore there")
    if args.include_versions and not args.source:
        if not inventory_report:
            raise CliError("--include-versions applies to --inventory and --source")
        body["include_versions"] = True
    simple = {
        "tier": args.tier,
        "expiration_days": args.expiration_days,
        "client_tag": args.client_tag,
        "client_token": args.client_token,
        "progress_step_percent": args.progress_step,
        "deadline_hours": args.deadline_hours,
        "keep_restored_days": args.keep_restored_days,
        "engine": args.engine,
        "key_from": args.key_from,
        "max_archives": args.max_archives,
        "max_cost_usd": args.max_cost,
    }
    body |= {name: value for name, value in simple.items() if value is not None}
    for flag in ("expedited_fallback", "split_large_archives", "dry_run"):
        if getattr(args, flag):
            body[flag] = True
    sizes = {}
    for option, value in (("--min-size", args.min_size), ("--max-size", args.max_size), ("--max-bytes-per-day", args.max_bytes_per_day)):
        if value is not None:
            try:
                sizes[option] = output.parse_size(value)
            except ValueError as exc:
                raise CliError(f"{option}: {exc}") from exc
    if "--max-bytes-per-day" in sizes:
        body["max_bytes_per_day"] = sizes["--max-bytes-per-day"]
    created = {"created_from": args.created_from, "created_before": args.created_before}
    vault_filter = (
        {k: v for k, v in created.items() if v}
        | ({"min_size": sizes["--min-size"]} if "--min-size" in sizes else {})
        | ({"max_size": sizes["--max-size"]} if "--max-size" in sizes else {})
    )
    if vault_filter:
        body["filter"] = vault_filter
    if args.overrides:
        where = (
            parse_s3_url(args.overrides, "--overrides") if args.overrides.startswith("s3://") else upload(Path(args.overrides), "names CSV")
        )
        body["overrides"] = {"bucket": where[0], "key": where[1]}
    return body


def uploader(stack: Stack, quiet: bool) -> Callable[[Path, str], tuple[str, str]]:
    """Puts a local file in the stack's manifest bucket, under uploads/<date>/<id>/<name>."""

    def upload(path: Path, what: str) -> tuple[str, str]:
        from botocore.exceptions import BotoCoreError, ClientError

        if not path.is_file():
            raise CliError(f"no file {path}: give a local {what} file, or s3://bucket/key of one in S3")
        if not stack.manifest_bucket:
            raise CliError(
                f"the stack's manifest bucket is not known, so {path} cannot be uploaded: upload it to the stack's "
                "ManifestBucket yourself and pass s3://bucket/key (or use --stack-name, which reads it)"
            )
        if not stack.has_aws:
            raise CliError(f"uploading {path} needs AWS: pass --region (and --profile), or upload it yourself and pass s3://bucket/key")
        key = f"uploads/{datetime.now(UTC):%Y-%m-%d}/{uuid.uuid4().hex[:12]}/{path.name}"
        try:
            stack.client("s3").upload_file(str(path), stack.manifest_bucket, key)
        except (ClientError, BotoCoreError) as exc:
            raise aws_failure(exc, f"uploading {path} to s3://{stack.manifest_bucket}") from exc
        if not quiet:
            print(f"bulk-restore: uploaded {path} to s3://{stack.manifest_bucket}/{key}", file=sys.stderr)
        return stack.manifest_bucket, key

    return upload


def create_job_command(args: argparse.Namespace) -> int:
    stack, api = connect(args)
    body = build_create_body(args, uploader(stack, args.quiet))
    answer = api.create_job(body, idempotency_key=None if args.client_token else str(uuid.uuid4()))
    if args.output == "json":
        output.to_json(answer)
        return EXIT_OK
    for warning in answer.get("Warnings") or []:
        print(f"bulk-restore: warning: {warning}", file=sys.stderr)
    job_id = answer.get("JobId") or answer.get("BulkJobId")
    if job_id and not args.dry_run:
        if answer.get("Created") is False:
            print(f"bulk-restore: the idempotency key had already made job {job_id}: that job is answered", file=sys.stderr)
        print(job_id)
    else:  # a dry run: what the API answered, whatever its shape
        output.key_values(output.flatten(answer))
    return EXIT_OK


# ---- status, jobs, cancel -----------------------------------------------------------------------


def status_rows(doc: dict[str, Any]) -> list[tuple[str, Any]]:
    counts = doc.get("Counts") or {}
    planning = doc.get("Planning") or {}
    rows: list[tuple[str, Any]] = [
        ("Job", doc.get("JobId")),
        ("Status", doc.get("Status")),
        ("Progress", f"{doc.get('ProgressPercent', 0)} %"),
        ("Tier", doc.get("Tier")),
        ("Source", doc.get("Source")),
        ("Engine", doc.get("Engine")),
        ("Client tag", doc.get("ClientTag") or "-"),
        ("Total", counts.get("Total")),
        *((state, counts.get(state, 0)) for state in ("Restoring", "Restored", "Skipped", "Failed", "Cancelled")),
        ("Planning", "complete" if planning.get("Complete") else f"{planning.get('LinesRead', 0)} lines read"),
    ]
    if doc.get("Vault"):
        rows += [("Vault", (doc["Vault"] or {}).get("Name")), ("Bytes moved", output.size(doc.get("BytesMoved")))]
    rows += [("Created", output.when(doc.get("CreatedAt"))), ("Finished", output.when(doc.get("FinishedAt")))]
    if doc.get("FailureReason"):
        rows.append(("Reason", doc["FailureReason"]))
    rows += [("Note", note) for note in doc.get("Notes") or []]
    return rows


def status_command(args: argparse.Namespace) -> int:
    job_id = check_job_id(args.job_id)
    _, api = connect(args)
    doc = api.job(job_id)
    output.to_json(doc) if args.output == "json" else output.key_values(status_rows(doc))
    return EXIT_OK


JOB_COLUMNS: list[output.Column] = [
    ("JOB", lambda j: j.get("JobId")),
    ("STATUS", lambda j: j.get("Status")),
    ("TIER", lambda j: j.get("Tier")),
    ("SOURCE", lambda j: j.get("Source")),
    ("ENGINE", lambda j: j.get("Engine")),
    ("CREATED", lambda j: output.when(j.get("CreatedAt"))),
    ("TAG", lambda j: j.get("ClientTag") or "-"),
]


def jobs_command(args: argparse.Namespace) -> int:
    if not 1 <= args.limit <= 100:
        raise CliError("--limit must be from 1 to 100")
    _, api = connect(args)
    found, token = [], args.next_token
    while True:
        page = api.jobs(args.limit, token)
        found += page.get("Jobs") or []
        token = page.get("NextToken")
        if not args.all or not token:
            break
    if args.output == "json":
        output.to_json({"Jobs": found, "NextToken": token})
        return EXIT_OK
    if found:
        output.table(found, JOB_COLUMNS)
    else:
        print("bulk-restore: no jobs" + (" on this page" if token else ""), file=sys.stderr)
    if token:
        print(f"bulk-restore: more jobs: add --next-token {token} (or --all)", file=sys.stderr)
    return EXIT_OK


def cancel_command(args: argparse.Namespace) -> int:
    job_id = check_job_id(args.job_id)
    _, api = connect(args)
    doc = api.cancel(job_id)
    if args.output == "json":
        output.to_json(doc)
    else:
        print(
            f"{job_id} {doc.get('Status')}: no new restore requests; "
            f"{(doc.get('Counts') or {}).get('Restoring', 0)} already requested go on (`bulk-restore watch {job_id}` follows them)"
        )
    return EXIT_OK


# ---- objects ------------------------------------------------------------------------------------

OBJECT_COLUMNS: list[output.Column] = [
    ("STATE", lambda o: o.get("State")),
    ("BUCKET", lambda o: o.get("Bucket")),
    ("KEY", lambda o: o.get("Key")),
    ("VERSION", lambda o: o.get("VersionId")),
    ("LINE", lambda o: o.get("ManifestLine")),
    ("REASON", lambda o: o.get("Reason") or ""),
]
CSV_COLUMNS: list[output.Column] = [
    ("state", lambda o: o.get("State")),
    ("bucket", lambda o: o.get("Bucket")),
    ("key", lambda o: o.get("Key")),
    ("version_id", lambda o: o.get("VersionId")),
    ("manifest_line", lambda o: o.get("ManifestLine")),
    ("reason", lambda o: o.get("Reason")),
    ("updated_at", lambda o: o.get("UpdatedAt")),
]
_LINE_NUMBER = re.compile(r"\b(line|lines) \d+")


def reason_group(reason: str | None) -> str:
    """What failures have in common: the reason with manifest line numbers taken out."""
    return _LINE_NUMBER.sub(lambda m: f"{m.group(1)} N", reason or "(no reason)")


def all_objects(api: ApiClient, job_id: str, state: str | None, most: int | None) -> Iterator[dict[str, Any]]:
    token, seen = None, 0
    while True:
        page = api.objects(job_id, state, 1000, token)
        for obj in page.get("Objects") or []:
            if most is not None and seen >= most:
                return
            seen += 1
            yield obj
        token = page.get("NextToken")
        if not token:
            return


def objects_command(args: argparse.Namespace) -> int:
    job_id = check_job_id(args.job_id)
    if args.max is not None and args.max < 1:
        raise CliError("--max must be 1 or more")
    _, api = connect(args)
    state = args.state or ("FAILED" if args.reason else None)
    found = all_objects(api, job_id, state, args.max)
    if args.reason:
        counts = Counter(reason_group(o.get("Reason")) for o in found)
        rows = [{"Reason": reason, "Count": n} for reason, n in sorted(counts.items(), key=lambda item: (-item[1], item[0]))]
        columns: list[output.Column] = [("COUNT", lambda r: r["Count"]), ("REASON", lambda r: r["Reason"])]
        if args.output == "json":
            output.to_json({"JobId": job_id, "State": state, "Reasons": rows, "Total": sum(counts.values())})
        elif args.output == "csv":
            output.csv_rows(rows, [("count", lambda r: r["Count"]), ("reason", lambda r: r["Reason"])])
        elif rows:
            output.table(rows, columns)
        if args.output == "table" and not rows:
            print(f"bulk-restore: no {state} objects", file=sys.stderr)
        return EXIT_OK
    if args.output == "csv":
        output.csv_rows(found, CSV_COLUMNS)  # streamed, page after page
    elif args.output == "json":
        output.to_json({"JobId": job_id, "State": state, "Objects": list(found)})
    else:
        listed = list(found)
        if listed:
            output.table(listed, OBJECT_COLUMNS)
        else:
            print(f"bulk-restore: no {state + ' ' if state else ''}objects", file=sys.stderr)
    return EXIT_OK


# ---- recount (operator) ---------------------------------------------------------------------------


def recount_command(args: argparse.Namespace) -> int:
    from bulk_restore.adapters.dynamodb import DynamoJobStore
    from bulk_restore.domain.model import Counts

    job_id = check_job_id(args.job_id)
    stack = find_stack(Discovery.from_args(args))
    table = args.table or stack.table_name
    if not table:
        raise CliError(f"no job table known for {stack.source}: pass --table NAME (the stack's TableName output)")
    if not getattr(args, "quiet", False):
        print(f"bulk-restore: using {stack.source}, table {table}", file=sys.stderr)
    store = DynamoJobStore(table, client=stack.client("dynamodb"))
    loaded = store.get_job_and_counts(job_id)
    if loaded is None:
        raise CliError(f"no job {job_id} in table {table}: check the id (`bulk-restore jobs` lists them) and the stack")
    job, counted = loaded
    counters, items = counted.as_dict(), store.recount(job_id).as_dict()
    difference = {name: items[name] - counters[name] for name in counters}
    differs = any(difference.values())
    fixed = False
    if args.fix and differs:
        if not job.status.is_terminal and not args.force:
            raise CliError(f"job {job_id} is {job.status.value}: its counters still move; recount it once it has ended, or pass --force")
        store.correct_counts(job_id, Counts(**difference))
        fixed = True
    if args.output == "json":
        output.to_json(
            {
                "JobId": job_id,
                "Status": job.status.value,
                "Counters": counters,
                "Items": items,
                "Difference": {n: d for n, d in difference.items() if d},
                "Fixed": fixed,
            }
        )
    else:
        rows = [{"count": n, "counters": counters[n], "items": items[n], "difference": difference[n] or ""} for n in counters]
        output.table(rows, [(name.upper(), lambda r, name=name: r[name]) for name in ("count", "counters", "items", "difference")])
        verdict = "agree" if not differs else ("differed: the difference was added to the counters" if fixed else "differ")
        print(f"{job_id} {job.status.value}: the counters and the items {verdict}")
    return EXIT_OK if not differs or fixed else EXIT_FAILED
