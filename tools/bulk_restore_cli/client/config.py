"""Finding the stack a client command talks to, and the config file `bulk-restore configure` writes.

In this order, the first that applies:

1. ``--api-url`` and ``--api-key``: that API, no CloudFormation (AWS, for uploads and `watch`'s
   events, only with ``--region``; else `watch` polls).
2. ``--ready-file PATH`` or ``--local``: the ready file `bulk-restore local` writes (by default
   ``$XDG_STATE_HOME/bulk-restore/local.json``, ``~/.local/state/...`` without it).
3. ``--stack-name NAME``: the CloudFormation stack's outputs, with ``--profile`` / ``--region``
   (else ``AWS_PROFILE``, ``AWS_REGION``, ``AWS_DEFAULT_REGION`` or the profile's region); the
   API key's value from API Gateway (``GetApiKey`` with ``includeValue``).
4. The config file (``$XDG_CONFIG_HOME/bulk-restore/config.toml``, ``~/.config/...`` without it),
   section ``[default]`` or ``--config-profile NAME``: a stack name (then as 3), an API URL and
   key, or a ready file.
5. The local stack's default ready file, when a local stack is running.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bulk_restore_cli.client.errors import EXIT_FAILED, CliError

CONFIG_KEYS = (
    "stack_name",
    "region",
    "aws_profile",
    "api_url",
    "api_key",
    "ready_file",
    "manifest_bucket",
    "topic_arn",
    "events_queue_url",
    "endpoint_url",
)
CREDENTIALS_HELP = (
    "no AWS credentials: run `aws configure` (or `aws sso login`), set AWS_PROFILE or pass --profile, "
    "or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
)
REGION_HELP = "no AWS region: pass --region, set AWS_REGION, or give the profile a region"
LOCAL_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}  # the local stack takes any


@dataclass
class Stack:
    """Where a stack's API, key, topic and buckets are, and how its AWS side is reached."""

    api_url: str
    api_key: str
    source: str  # said on stderr: which of the ways above found it
    region: str | None = None
    topic_arn: str | None = None
    manifest_bucket: str | None = None
    events_queue_url: str | None = None
    table_name: str | None = None  # the job table (operator commands: recount)
    endpoint_url: str | None = None  # the local stack's AWS endpoint
    aws_profile: str | None = None
    local: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def session(self) -> Any:
        """A boto3 session for the stack's AWS side (S3 uploads, the events of `watch`)."""
        import boto3

        if self.local:
            return boto3.session.Session(region_name=self.region or "us-east-1", **LOCAL_CREDENTIALS)
        return aws_session(self.aws_profile, self.region)

    def client(self, service: str) -> Any:
        return self.session().client(service, endpoint_url=self.endpoint_url)

    @property
    def has_aws(self) -> bool:
        """Whether the stack's AWS side is known (not with --api-url alone)."""
        return self.local or self.region is not None


# ---- paths ----------------------------------------------------------------------------------------


def _xdg(variable: str, fallback: str) -> Path:
    value = os.environ.get(variable, "")
    return Path(value) if value and os.path.isabs(value) else Path.home() / fallback


def config_path() -> Path:
    return _xdg("XDG_CONFIG_HOME", ".config") / "bulk-restore" / "config.toml"


def default_ready_file() -> Path:
    """Where `bulk-restore local` writes its ready line unless told another --ready-file."""
    return _xdg("XDG_STATE_HOME", ".local/state") / "bulk-restore" / "local.json"


# ---- the config file ----------------------------------------------------------------------------


def read_config(path: Path | None = None) -> dict[str, dict[str, Any]]:
    """The config file's sections (none when there is no file)."""
    path = path or config_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}: fix its permissions, or remove it and run `bulk-restore configure`") from exc
    try:
        doc = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise CliError(f"{path} is not valid TOML ({exc}): fix it, or remove it and run `bulk-restore configure`") from exc
    sections = {name: value for name, value in doc.items() if isinstance(value, dict)}
    for name, section in sections.items():
        unknown = sorted(set(section) - set(CONFIG_KEYS))
        if unknown:
            raise CliError(f"{path} [{name}] has unknown setting(s) {', '.join(unknown)}: the settings are {', '.join(CONFIG_KEYS)}")
    return sections


def _toml_string(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a TOML basic string


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def write_config(section: str, values: dict[str, Any], path: Path | None = None) -> Path:
    """Replace one section of the config file, keeping the others. The file may hold an API key:
    it is written readable by its owner only."""
    if not _BARE_KEY.fullmatch(section):
        raise CliError(f"--config-profile {section!r}: use letters, digits, '-' and '_'")
    path = path or config_path()
    sections = read_config(path)
    sections[section] = {k: v for k, v in values.items() if v not in (None, "")}
    lines = ["# bulk-restore client settings (bulk-restore configure writes this file)."]
    for name, settings in sections.items():
        lines.append(f"\n[{name}]")
        for key, value in settings.items():
            lines.append(f"{key} = {_toml_string(str(value))}")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write("\n".join(lines) + "\n")
    partial.replace(path)
    return path


# ---- AWS ----------------------------------------------------------------------------------------


def aws_session(profile: str | None, region: str | None) -> Any:
    """A boto3 session as the AWS CLI would make it: --profile or AWS_PROFILE, --region or
    AWS_REGION, AWS_DEFAULT_REGION or the profile's region."""
    import boto3
    from botocore.exceptions import ProfileNotFound

    try:
        session = boto3.session.Session(profile_name=profile or None)
    except ProfileNotFound as exc:
        raise CliError(
            f"no AWS profile {profile or os.environ.get('AWS_PROFILE')!r}: check --profile or AWS_PROFILE "
            "(`aws configure list-profiles` lists them)"
        ) from exc
    region = region or os.environ.get("AWS_REGION") or session.region_name
    if not region:
        raise CliError(REGION_HELP)
    return boto3.session.Session(profile_name=profile or None, region_name=region)


def aws_failure(exc: Exception, what: str) -> CliError:
    """A botocore error as one line that says what to do."""
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError, NoRegionError

    if isinstance(exc, NoCredentialsError):
        return CliError(CREDENTIALS_HELP)
    if isinstance(exc, NoRegionError):
        return CliError(REGION_HELP)
    if isinstance(exc, EndpointConnectionError):
        return CliError(
            f"cannot reach AWS for {what} ({exc.kwargs.get('endpoint_url', '')}): check the network, --region (is the local stack running?)"
        )
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = error.get("Code", "?")
        if code in (
            "ExpiredToken",
            "ExpiredTokenException",
            "InvalidClientTokenId",
            "UnrecognizedClientException",
            "SignatureDoesNotMatch",
        ):
            return CliError(
                f"AWS refused the credentials ({code}) for {what}: renew them (`aws sso login`, `aws configure`) or pick another --profile"
            )
        return CliError(f"AWS refused {exc.operation_name} ({what}): {code}: {error.get('Message', '')}", EXIT_FAILED)
    return CliError(f"AWS call failed ({what}): {exc}", EXIT_FAILED)


def from_cloudformation(stack_name: str, profile: str | None, region: str | None, source: str = "") -> Stack:
    """The stack's API URL, key, topic and buckets from its CloudFormation outputs."""
    from botocore.exceptions import BotoCoreError, ClientError

    session = aws_session(profile, region)
    region = session.region_name
    where = f"stack {stack_name} in {region}" + (f" (profile {profile})" if profile else "")
    try:
        try:
            stacks = session.client("cloudformation").describe_stacks(StackName=stack_name)["Stacks"]
        except ClientError as exc:
            if "does not exist" in str(exc.response.get("Error", {}).get("Message", "")):
                raise CliError(
                    f"no stack {stack_name} in {region}: check --stack-name, --region and --profile "
                    "(`aws cloudformation list-stacks` lists them)"
                ) from exc
            raise
        outputs = {o["OutputKey"]: o.get("OutputValue", "") for o in stacks[0].get("Outputs") or []}
        api_url = outputs.get("ApiUrl") or outputs.get("RestAPI", "").rstrip("/")
        key_id = outputs.get("ApiKeyId")
        if not api_url or not key_id:
            status = stacks[0].get("StackStatus", "")
            raise CliError(
                f"{where} has no ApiUrl/ApiKeyId outputs ({status}): is it a bulk-restore stack, fully deployed? check --stack-name"
            )
        try:
            api_key = session.client("apigateway").get_api_key(apiKey=key_id, includeValue=True)["value"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("AccessDeniedException", "AccessDenied"):
                raise CliError(
                    f"AWS refused to read the API key {key_id} of {where} (apigateway:GET): ask for that right, "
                    "or pass --api-url and --api-key (the stack's ApiKeyCommand output prints the key)"
                ) from exc
            raise
    except (ClientError, BotoCoreError) as exc:
        raise aws_failure(exc, f"reading {where}") from exc
    return Stack(
        api_url=api_url.rstrip("/"),
        api_key=api_key,
        region=region,
        topic_arn=outputs.get("TopicArn"),
        manifest_bucket=outputs.get("ManifestBucket"),
        events_queue_url=outputs.get("JobEventsQueueUrl"),
        table_name=outputs.get("TableName"),
        aws_profile=profile,
        source=source or f"{where} (CloudFormation outputs)",
    )


# ---- the local stack --------------------------------------------------------------------------------


def _running(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return True  # no pid to check: take the file's word
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def from_ready_file(path: Path, source: str = "") -> Stack:
    """The local stack whose ready line is in ``path``."""
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise CliError(
            f"no local stack: {path} does not exist; start one with `bulk-restore local` (or pass the --ready-file it was given)"
        ) from exc
    except (OSError, ValueError) as exc:
        raise CliError(f"{path} is not a ready file of `bulk-restore local`: pass the file it wrote (--ready-file)") from exc
    if not isinstance(info, dict) or not info.get("api_url") or not info.get("api_key"):
        raise CliError(f"{path} is not a ready file of `bulk-restore local` (no api_url, api_key): pass the file it wrote")
    if not _running(info.get("pid")):
        raise CliError(f"the local stack of {path} is not running (process {info.get('pid')} has ended): start `bulk-restore local`")
    return Stack(
        api_url=str(info["api_url"]).rstrip("/"),
        api_key=str(info["api_key"]),
        region=info.get("region") or "us-east-1",
        topic_arn=info.get("topic_arn"),
        manifest_bucket=info.get("manifest_bucket"),
        events_queue_url=info.get("events_queue_url"),
        table_name=info.get("table_name"),
        endpoint_url=info.get("aws_endpoint_url"),
        local=True,
        source=source or f"the local stack (ready file {path})",
        extra=info,
    )


# ---- discovery ------------------------------------------------------------------------------------


@dataclass
class Discovery:
    """What the command line says about the stack (each None when not given)."""

    stack_name: str | None = None
    profile: str | None = None
    region: str | None = None
    ready_file: Path | None = None
    local: bool = False
    api_url: str | None = None
    api_key: str | None = None
    config_profile: str | None = None

    @classmethod
    def from_args(cls, args: Any) -> Discovery:
        return cls(**{name: getattr(args, name, None) for name in cls.__dataclass_fields__})


def _direct(api_url: str, api_key: str | None, source: str, **extra: Any) -> Stack:
    if not re.match(r"https?://[^/\s]+", api_url):
        raise CliError(f"the API URL {api_url!r} is not an http(s) URL: pass the stack's ApiUrl output")
    if not api_key:
        raise CliError("an API URL needs its key: pass --api-key (the stack's ApiKeyCommand output prints it)")
    return Stack(api_url=api_url.rstrip("/"), api_key=api_key, source=source, **extra)


def find_stack(given: Discovery) -> Stack:
    """The stack a command talks to: see the module's docstring for the order."""
    if given.api_url or given.api_key:
        if not given.api_url:
            raise CliError("--api-key needs --api-url (the stack's ApiUrl output)")
        return _direct(
            given.api_url, given.api_key, f"the API at {given.api_url} (--api-url)", region=given.region, aws_profile=given.profile
        )  # AWS (uploads, events) only with --region
    if given.ready_file or given.local:
        path = Path(given.ready_file).expanduser() if given.ready_file else default_ready_file()
        return from_ready_file(path)
    if given.stack_name:
        return from_cloudformation(given.stack_name, given.profile, given.region)
    path = config_path()
    sections = read_config(path)
    name = given.config_profile or os.environ.get("BULK_RESTORE_CONFIG_PROFILE") or "default"
    section = sections.get(name)
    if section is None and (given.config_profile or name != "default"):
        known = ", ".join(sorted(sections)) or "none"
        raise CliError(f"no [{name}] in {path} (sections: {known}): run `bulk-restore configure --config-profile {name} ...`")
    if section is not None:
        where = f"{path} [{name}]"
        if section.get("ready_file"):
            return from_ready_file(
                Path(section["ready_file"]).expanduser(), f"the local stack (ready file {section['ready_file']}, from {where})"
            )
        if section.get("stack_name"):
            profile = given.profile or section.get("aws_profile")
            region = given.region or section.get("region")
            found = from_cloudformation(section["stack_name"], profile, region)
            found.source = f"{found.source.removesuffix(' (CloudFormation outputs)')} (CloudFormation outputs, from {where})"
            return found
        if section.get("api_url"):
            return _direct(
                section["api_url"],
                section.get("api_key"),
                f"the API at {section['api_url']} (from {where})",
                region=given.region or section.get("region"),
                aws_profile=given.profile or section.get("aws_profile"),
                manifest_bucket=section.get("manifest_bucket"),
                topic_arn=section.get("topic_arn"),
                events_queue_url=section.get("events_queue_url"),
                endpoint_url=section.get("endpoint_url"),
            )
        raise CliError(f"{where} names no stack (stack_name, api_url or ready_file): run `bulk-restore configure`")
    ready = default_ready_file()
    if ready.exists():
        return from_ready_file(ready)
    raise CliError(
        "no stack to talk to: pass --stack-name NAME (a deployed stack; --profile, --region), run "
        "`bulk-restore configure --stack-name NAME` once, or start `bulk-restore local`"
    )
