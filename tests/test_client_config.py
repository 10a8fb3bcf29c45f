"""How the client commands find their stack: CloudFormation outputs, the config file, the local
stack's ready file; and that every way of getting it wrong is one line that says what to do."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import boto3
import pytest

from bulk_restore_cli import cli
from bulk_restore_cli.client.config import Discovery, default_ready_file, find_stack, read_config, write_config
from bulk_restore_cli.client.errors import CliError

API_URL = "https://abc123.execute-api.eu-west-1.amazonaws.com/prod"


@pytest.fixture(autouse=True)
def homes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The user's config and state directories, empty, in the test's own place."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.delenv("BULK_RESTORE_CONFIG_PROFILE", raising=False)
    return tmp_path


def deploy(name: str = "bulk-restore", region: str = "eu-west-1", outputs: dict[str, str] | None = None) -> str:
    """A CloudFormation stack with a bulk-restore stack's outputs (on moto), and its API key. Returns the key."""
    apigateway = boto3.client("apigateway", region_name=region)
    key = apigateway.create_api_key(name=f"{name}-key", value=f"{name}-".ljust(30, "k"), enabled=True)
    values = {
        "ApiUrl": API_URL,
        "ApiKeyId": key["id"],
        "TopicArn": f"arn:aws:sns:{region}:123456789012:bulk-restore-JobTopic",
        "ManifestBucket": "bulk-restore-manifestbucket-1",
        "JobEventsQueueUrl": "https://sqs/123456789012/events",
    }
    if outputs is not None:
        values = outputs
    template = {
        "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {name_: {"Value": value} for name_, value in values.items()},
    }
    boto3.client("cloudformation", region_name=region).create_stack(StackName=name, TemplateBody=json.dumps(template))
    return key["value"]


def ready_file(path: Path, pid: int | None = None, **extra: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    info = {
        "api_url": "http://127.0.0.1:3000",
        "api_key": "local-key",
        "aws_endpoint_url": "http://127.0.0.1:4566",
        "region": "us-east-1",
        "topic_arn": "arn:aws:sns:us-east-1:123456789012:t",
        "manifest_bucket": "local-manifests",
        "events_queue_url": "http://127.0.0.1:4566/123456789012/events",
        "pid": os.getpid() if pid is None else pid,
        **extra,
    }
    path.write_text(json.dumps(info) + "\n")
    return path


# ---- CloudFormation --------------------------------------------------------------------------------


def test_a_stack_name_gives_the_outputs_and_the_key_s_value(aws: None) -> None:
    # Given a deployed stack in eu-west-1
    key = deploy()
    # When a command names it, with the region
    stack = find_stack(Discovery(stack_name="bulk-restore", region="eu-west-1"))
    # Then the API, its key's value (from API Gateway), the topic and the buckets come from its outputs
    assert (stack.api_url, stack.api_key, stack.region) == (API_URL, key, "eu-west-1")
    assert stack.topic_arn.endswith(":bulk-restore-JobTopic") and stack.manifest_bucket == "bulk-restore-manifestbucket-1"
    assert stack.events_queue_url and not stack.local
    assert stack.source == "stack bulk-restore in eu-west-1 (CloudFormation outputs)"


def test_the_region_comes_from_aws_region_as_the_aws_cli_takes_it(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    deploy(region="eu-west-1")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")

    assert find_stack(Discovery(stack_name="bulk-restore")).region == "eu-west-1"


def test_the_sample_s_restapi_output_is_taken_when_there_is_no_apiurl(aws: None) -> None:
    apigateway = boto3.client("apigateway", region_name="eu-west-1")
    key_id = apigateway.create_api_key(name="k", value="v" * 30, enabled=True)["id"]
    deploy(outputs={"RestAPI": API_URL + "/", "ApiKeyId": key_id})

    stack = find_stack(Discovery(stack_name="bulk-restore", region="eu-west-1"))

    assert stack.api_url == API_URL and stack.manifest_bucket is None


@pytest.mark.parametrize(
    ("discovery", "words"),
    [
        (Discovery(stack_name="no-such-stack", region="eu-west-1"), ("no stack no-such-stack in eu-west-1", "--stack-name", "--region")),
        (Discovery(stack_name="other", region="eu-west-1"), ("no ApiUrl/ApiKeyId", "bulk-restore stack")),
        (Discovery(stack_name="bulk-restore", region="eu-west-1", profile="nobody"), ("no AWS profile 'nobody'", "--profile")),
    ],
)
def test_a_stack_that_cannot_be_read_says_what_to_check(aws: None, discovery: Discovery, words: tuple[str, ...]) -> None:
    deploy()
    deploy("other", outputs={"Something": "else"})

    with pytest.raises(CliError) as raised:
        find_stack(discovery)

    assert raised.value.code == 2
    for word in words:
        assert word in str(raised.value), str(raised.value)


def test_no_region_anywhere_says_how_to_give_one(aws: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))

    with pytest.raises(CliError, match="no AWS region: pass --region"):
        find_stack(Discovery(stack_name="bulk-restore"))


# ---- the config file ---------------------------------------------------------------------------


def test_configure_writes_the_stack_and_later_commands_use_it(aws: None, homes: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Given a deployed stack
    key = deploy()
    # When configure is told its name and region
    assert cli.main(["configure", "--stack-name", "bulk-restore", "--region", "eu-west-1"]) == 0
    # Then the config file under XDG_CONFIG_HOME holds them, readable by its owner only
    path = homes / "config" / "bulk-restore" / "config.toml"
    assert read_config(path) == {"default": {"stack_name": "bulk-restore", "region": "eu-west-1"}}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert f"wrote {path} [default]: stack bulk-restore in eu-west-1" in capsys.readouterr().out
    # And a command with no stack option finds the stack through it, and says so
    stack = find_stack(Discovery())
    assert (stack.api_url, stack.api_key) == (API_URL, key)
    assert stack.source == f"stack bulk-restore in eu-west-1 (CloudFormation outputs, from {path} [default])"


def test_configure_checks_the_stack_before_writing(aws: None, homes: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["configure", "--stack-name", "missing", "--region", "eu-west-1"])

    assert code == 2
    assert capsys.readouterr().err.strip().startswith("bulk-restore: no stack missing in eu-west-1")
    assert not (homes / "config" / "bulk-restore" / "config.toml").exists()


def test_sections_are_kept_and_picked_by_config_profile(homes: Path) -> None:
    # Given a default section and a named one
    write_config("default", {"api_url": API_URL, "api_key": "prod-key"})
    write_config("staging", {"api_url": "https://staging.example/prod", "api_key": "staging-key", "manifest_bucket": "mb"})
    # Then each is found by its name, the default without one
    assert find_stack(Discovery()).api_key == "prod-key"
    staging = find_stack(Discovery(config_profile="staging"))
    assert (staging.api_url, staging.api_key, staging.manifest_bucket) == ("https://staging.example/prod", "staging-key", "mb")
    assert "[staging]" in staging.source
    # And rewriting one keeps the other
    write_config("default", {"api_url": API_URL, "api_key": "new-key"})
    assert read_config()["staging"]["api_key"] == "staging-key" and read_config()["default"]["api_key"] == "new-key"


def test_values_with_quotes_and_backslashes_survive_the_file(homes: Path) -> None:
    odd = 'a"b\\c\u00e9'
    write_config("default", {"api_url": API_URL, "api_key": odd})

    assert find_stack(Discovery()).api_key == odd


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("[default\napi_url = 1", ("not valid TOML",)),
        ('[default]\napi_urll = "x"\n', ("unknown setting(s) api_urll", "api_url")),
        ('[default]\nregion = "eu-west-1"\n', ("names no stack", "bulk-restore configure")),
        ('[default]\napi_url = "ftp://x"\napi_key = "k"\n', ("not an http(s) URL",)),
        ('[default]\napi_url = "https://x.example"\n', ("--api-key",)),
    ],
)
def test_a_broken_config_file_says_what_to_fix(homes: Path, text: str, words: tuple[str, ...]) -> None:
    path = homes / "config" / "bulk-restore" / "config.toml"
    path.parent.mkdir(parents=True)
    path.write_text(text)

    with pytest.raises(CliError) as raised:
        find_stack(Discovery())

    for word in words:
        assert word in str(raised.value), str(raised.value)


def test_an_unknown_config_profile_names_the_sections(homes: Path) -> None:
    write_config("default", {"api_url": API_URL, "api_key": "k"})

    with pytest.raises(CliError, match=r"no \[prod\] in .*config.toml \(sections: default\)"):
        find_stack(Discovery(config_profile="prod"))


# ---- the local stack ------------------------------------------------------------------------------


def test_the_default_ready_file_is_under_xdg_state_home(homes: Path) -> None:
    assert default_ready_file() == homes / "state" / "bulk-restore" / "local.json"


def test_a_running_local_stack_is_found_when_nothing_else_is_given(homes: Path) -> None:
    ready_file(default_ready_file())

    stack = find_stack(Discovery())

    assert stack.local and (stack.api_url, stack.api_key, stack.endpoint_url) == (
        "http://127.0.0.1:3000",
        "local-key",
        "http://127.0.0.1:4566",
    )
    assert stack.manifest_bucket == "local-manifests" and stack.source == f"the local stack (ready file {default_ready_file()})"


def test_a_stack_name_goes_before_the_config_file_and_the_local_stack(aws: None, homes: Path) -> None:
    deploy()
    ready_file(default_ready_file())
    write_config("default", {"api_url": "https://elsewhere.example", "api_key": "k"})

    assert find_stack(Discovery(stack_name="bulk-restore", region="eu-west-1")).api_url == API_URL
    assert find_stack(Discovery()).api_url == "https://elsewhere.example"  # the config file before the local stack
    assert find_stack(Discovery(local=True)).local


def test_api_url_and_key_go_before_everything(homes: Path) -> None:
    ready_file(default_ready_file())

    stack = find_stack(Discovery(api_url=API_URL + "/", api_key="given", stack_name="ignored"))

    assert (stack.api_url, stack.api_key, stack.local) == (API_URL, "given", False)


def test_a_ready_file_of_a_stack_that_has_stopped_says_so(homes: Path, tmp_path: Path) -> None:
    stale = ready_file(tmp_path / "ready.json", pid=2**22 + 12345)  # above Linux's pid_max: no such process

    with pytest.raises(CliError, match=r"is not running .*start `bulk-restore local`"):
        find_stack(Discovery(ready_file=stale))


def test_nothing_to_find_says_the_three_ways(homes: Path) -> None:
    with pytest.raises(CliError) as raised:
        find_stack(Discovery())

    message = str(raised.value)
    assert "--stack-name" in message and "bulk-restore configure" in message and "bulk-restore local" in message


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["status", "82319eda-4945-4b83-84e4-b2cee06f57d0"], ("no stack to talk to", "--stack-name")),
        (["status", "not-a-job"], ("not a job id", "UUIDs")),
        (
            ["status", "82319eda-4945-4b83-84e4-b2cee06f57d0", "--ready-file", "/nowhere/ready.json"],
            ("/nowhere/ready.json", "bulk-restore local"),
        ),
        (["jobs", "--api-key", "k"], ("--api-key needs --api-url",)),
        (["jobs", "--limit", "0", "--api-url", API_URL, "--api-key", "k"], ("--limit", "1 to 100")),
        (["configure"], ("--stack-name", "--api-url", "--ready-file")),
    ],
)
def test_client_mistakes_are_one_line_and_exit_2(
    homes: Path, capsys: pytest.CaptureFixture[str], args: list[str], words: tuple[str, ...]
) -> None:
    code = cli.main(args)

    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bulk-restore: "), err
    for word in words:
        assert word in lines[0], lines[0]
