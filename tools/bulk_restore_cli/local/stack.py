"""`bulk-restore local`: the whole stack in one process, made from template.yaml.

moto serves the AWS APIs on one port (with the faithful S3 restore emulation installed), the
template's resources are made there, the functions run in-process on the local Lambda runtime
(an SQS poller per event source mapping, a scheduler for schedules) and the REST API is served
on another port, behind an API key, as API Gateway would serve it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, NoReturn

import yaml

from bulk_restore_cli.local import events as events_layer
from bulk_restore_cli.local import function_host
from bulk_restore_cli.local import sqs as sqs_layer
from bulk_restore_cli.local.apigw import LocalRestApi
from bulk_restore_cli.local.dynamodb import DynamoDBEmulation
from bulk_restore_cli.local.dynamodb_streams import DynamoDBStreamsEmulation
from bulk_restore_cli.local.endpoint import API_APP_ID, AwsEndpoint, tune_interpreter
from bulk_restore_cli.local.glacier import GlacierEmulator
from bulk_restore_cli.local.lambda_runtime import DynamoDBStreamEventSource, EndpointSqs, Poller, Scheduler, StreamPoller, load_handler
from bulk_restore_cli.local.provision import ProvisionedStack, provision
from bulk_restore_cli.local.s3_batch import S3BatchEmulator
from bulk_restore_cli.local.s3_restore import RestoreTimings, S3RestoreEmulator
from bulk_restore_cli.local.template import TemplateError, load_template, parse_parameters

log = logging.getLogger("bulk_restore_cli.local")

FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
# TIME_SCALE shrinks the functions' tier windows and deadlines. It is the larger of: what fits an
# emulated Expedited restore (restore_seconds / 5) into Expedited's real 5-minute window, and
# what gives the deadlines' one hour of slack room for the local stack's fixed delays (batching
# windows, polling), about 20 seconds.
EXPEDITED_WINDOW_SECONDS = 5 * 60
# Template parameters the local stack runs with unless told otherwise: restores take seconds
# here, not hours, so completions are not worth gathering for a minute; vault archives move in
# parts of 8 MiB (the least S3 and the tree hash allow; larger archives in larger ones).
LOCAL_PARAMETERS = {"CompletionBatchingWindowSeconds": "1", "VaultPartMiB": "8"}
LOCAL_FIXED_DELAY_SECONDS = 20.0
# How long, after SIGTERM or Ctrl-C, invocations under way may take to finish before the
# process ends under them: the whole stop stays within 5 seconds.
STOP_SECONDS = 2.5
EXIT_SECONDS = 4.5  # and past this, whatever the process is doing, it ends


@dataclass
class LocalStackConfig:
    host: str = "127.0.0.1"
    api_port: int = 3000
    aws_port: int = 4566
    restore_seconds: float = 5.0
    restore_spread: float = 0.8  # restores finish between 20% and 100% of their time
    region: str = "us-east-1"
    template: Path | None = None
    stack_name: str = "bulk-restore-local"
    parameters: dict[str, str] = field(default_factory=dict)
    environment: dict[str, str] = field(default_factory=dict)  # overrides of the functions' variables
    api_key: str | None = None
    retry_delay: int = 1
    min_schedule_seconds: float = 2.0
    sweep_seconds: float | None = 10.0  # the sweeper's schedule; None: the template's rate, scaled
    # The functions' event sources and schedules in a process of their own (local/function_host.py),
    # apart from the AWS endpoint and the API, as in AWS; False: in this process's threads.
    functions_process: bool = False
    endpoint_stats: Path | None = None  # where to write the endpoint's per-operation figures when the stack stops

    @property
    def client_host(self) -> str:
        return "127.0.0.1" if self.host in ("0.0.0.0", "", "::") else self.host

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.client_host}:{self.aws_port}"

    @property
    def time_scale(self) -> float:
        return max((self.restore_seconds / 5) / EXPEDITED_WINDOW_SECONDS, LOCAL_FIXED_DELAY_SECONDS / 3600)


class LocalStackError(Exception):
    """The local stack cannot start as configured (a port in use, no template, a bad option): what to change."""


def find_template(explicit: str | Path | None = None) -> Path:
    """The template: the one named, else ./template.yaml, else the one at the repository root."""
    if explicit is not None:
        path = Path(explicit)
        if not path.is_file():
            raise FileNotFoundError(f"no template at {path}: check --template")
        return path.resolve()
    import bulk_restore

    for candidate in (Path.cwd() / "template.yaml", Path(bulk_restore.__file__).resolve().parents[2] / "template.yaml"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError("no template.yaml here or at the repository root: pass --template PATH")


def ensure_port_free(host: str, port: int, option: str = "") -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers do: TIME_WAIT is no conflict
        try:
            probe.bind((host, port))
        except OSError as exc:
            choose = f"choose another with {option}" if option else "choose another"
            raise OSError(f"port {port} on {host} is in use ({exc.strerror}): {choose}") from exc


def check(config: LocalStackConfig) -> Path:
    """Everything that can stop the stack from starting, before anything starts. Returns the template.

    Raises LocalStackError saying what to change.
    """
    if not 0 <= config.restore_spread <= 1:
        raise LocalStackError(f"--restore-spread must be between 0 and 1, not {config.restore_spread:g}")
    if config.restore_seconds < 0:
        raise LocalStackError(f"--restore-seconds must be 0 or more, not {config.restore_seconds:g}")
    if config.sweep_seconds is not None and config.sweep_seconds <= 0:
        raise LocalStackError(f"--sweep-seconds must be more than 0, not {config.sweep_seconds:g}")
    if config.api_port == config.aws_port:
        raise LocalStackError(f"--api-port and --aws-port are both {config.api_port}: give the two servers different ports")
    try:
        template = find_template(config.template)
        declared = load_template(template).get("Parameters") or {}
        try:
            parse_parameters({"Parameters": declared}, {**LOCAL_PARAMETERS, **config.parameters})
        except TemplateError as exc:
            raise TemplateError(f"{exc} (--parameter NAME=VALUE; the template's parameters: {', '.join(declared)})") from exc
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9-]{0,127}", config.stack_name):
            raise TemplateError(f"--stack-name {config.stack_name!r} is not valid: letters, digits and hyphens, starting with a letter")
        ensure_port_free(config.host, config.aws_port, "--aws-port")
        ensure_port_free(config.host, config.api_port, "--api-port")
    except (OSError, TemplateError, yaml.YAMLError) as exc:
        raise LocalStackError(str(exc).replace("\n", " ")) from exc
    return template


def configure_aws_environment(endpoint_url: str, region: str) -> None:
    """Point every boto3 client of this process at the local endpoint, before any is made."""
    for name in list(os.environ):
        if name.startswith("AWS_ENDPOINT_URL_") or name in (
            "AWS_PROFILE",
            "AWS_SESSION_TOKEN",
            "AWS_SECURITY_TOKEN",
            "AWS_DEFAULT_PROFILE",
        ):
            del os.environ[name]
    os.environ.update(FAKE_CREDENTIALS)
    os.environ.update({"AWS_ENDPOINT_URL": endpoint_url, "AWS_DEFAULT_REGION": region, "AWS_REGION": region})
    _reset_cached_services()


def _reset_cached_services() -> None:
    """Forget settings and services built from an older environment.

    Only if they were imported: the functions' modules must first be imported once their
    environment is set, as in Lambda (Powertools reads its service name and level at import).
    """
    settings, wiring = sys.modules.get("bulk_restore.settings"), sys.modules.get("bulk_restore.wiring")
    if settings is not None:
        settings.get_settings.cache_clear()
    if wiring is not None:
        wiring.services.cache_clear()


class LocalStack:
    """Starts and stops the local stack's parts, in order."""

    def __init__(self, config: LocalStackConfig):
        self.config = config
        self.stop_event = threading.Event()
        self.moto: Any = None
        self.emulator: S3RestoreEmulator | None = None
        self.batch: S3BatchEmulator | None = None
        self.glacier: GlacierEmulator | None = None
        self.dynamodb = DynamoDBEmulation()
        self.dynamodb_streams = DynamoDBStreamsEmulation()
        self.stack: ProvisionedStack | None = None
        self.api: LocalRestApi | None = None
        self.pollers: list[Poller | StreamPoller] = []
        self.scheduler: Scheduler | None = None
        self.processes: list[subprocess.Popen[bytes]] = []  # the function and API processes, when there are some
        self.api_key = config.api_key or secrets.token_urlsafe(24)
        self._figures = threading.Lock()  # one write of the endpoint's figures at a time

    def start(self) -> dict[str, Any]:
        """Bring everything up. Returns what a client needs to use the stack."""
        config = self.config
        template = check(config)
        configure_aws_environment(config.endpoint_url, config.region)

        self.dynamodb.install()  # transactions cost what they touch; requests one at a time into moto's backend
        self.dynamodb_streams.install()  # tables' streams as DynamoDB writes and serves them
        sqs_layer.install()  # receives and deletes cost their batch, not the queue
        events_layer.install()  # a rule's pattern of plain values matched on the event as it is
        self.moto = AwsEndpoint(config.host, config.aws_port).start()
        self.emulator = S3RestoreEmulator(RestoreTimings.scaled(config.restore_seconds, config.restore_spread)).install()
        self.emulator.start_clock(interval=min(0.1, max(config.restore_seconds / 20, 0.02)))
        # S3 Batch Operations jobs (the batch engine's), their tasks run through the restore emulation
        self.batch = S3BatchEmulator(self.emulator, gate=self.moto.application.gate).install()
        self.batch.start_clock()
        # Glacier vaults (upload, multipart, retrieval jobs by tier with SNS notices, ranged output)
        self.glacier = GlacierEmulator(
            durations=GlacierEmulator.scaled_durations(config.time_scale), gate=self.moto.application.gate
        ).install()
        self.glacier.start_clock(interval=0.1)
        log.info("AWS endpoint up: %s (S3 restores: %s s for Standard)", config.endpoint_url, config.restore_seconds)

        import boto3

        session = boto3.session.Session(region_name=config.region)
        self.stack = stack = provision(
            template,
            clients=lambda service: session.client(service, endpoint_url=config.endpoint_url),
            stack_name=config.stack_name,
            parameters={**LOCAL_PARAMETERS, **config.parameters},
            region=config.region,
        )
        for skipped in stack.skipped:
            log.info("skipped %s (%s): %s", skipped.logical_id, skipped.type, skipped.reason)
        for note in stack.notes:
            log.info("note: %s", note)

        environment = stack.function_environment()
        environment["TIME_SCALE"] = f"{config.time_scale:.9f}"
        environment.update(config.environment)
        os.environ.update(environment)
        _reset_cached_services()
        self._make_code_importable(stack)

        scale = float(environment["TIME_SCALE"])
        api = self._api_spec(stack)
        if config.functions_process:
            self._start_function_process(stack, environment, scale)
            # The API and its functions in a process of their own too, as API Gateway and Lambda
            # are apart from the workers; what they send is marked as theirs, and the endpoint
            # lets it ahead of the workers' traffic (local/endpoint.py).
            self._start_process(
                "API",
                function_host.spec(
                    [],
                    [],
                    {**environment, "AWS_SDK_UA_APP_ID": API_APP_ID},
                    config.endpoint_url,
                    config.region,
                    [p for p in sys.path if p],
                    api=api,
                ),
            )
        else:
            self._start_functions_here(stack, session, scale)
            self.api = function_host.start_api(api, load_handler)
        log.info("API up: %s (%d routes)", self.api_url, len(api["routes"]))
        return self.ready_info()

    def _sources(self, stack: ProvisionedStack, scale: float, load: Any = load_handler) -> tuple[list[Any], list[Any]]:
        """The functions' SQS event sources and schedules (the sweeper's at ``sweep_seconds``)."""
        config = self.config
        sources = stack.sqs_event_sources(load=load, retry_delay=config.retry_delay)
        schedules = stack.schedule_sources(load=load, scale=scale, minimum_seconds=config.min_schedule_seconds)
        if config.sweep_seconds is not None:
            for schedule in schedules:  # the sweeper is the template's one schedule
                schedule.every_seconds = max(config.min_schedule_seconds, config.sweep_seconds)
        for source in sources:
            log.info(
                "event source %s: %s, batches of %d within %g s, %d at a time",
                source.function_name,
                source.queue_url.rsplit("/", 1)[-1],
                source.batch_size,
                source.window_seconds,
                source.concurrency,
            )
        return sources, schedules

    def _api_spec(self, stack: ProvisionedStack) -> dict[str, Any]:
        """The REST API as JSON: its routes (handlers by path), key, gateway responses and usage plan."""
        config = self.config
        routes = [
            {
                "method": route.method,
                "path": route.path,
                "handler": stack.functions[route.function].handler,
                "function_name": stack.functions[route.function].name,
                "timeout_s": stack.functions[route.function].timeout,
                "api_key_required": route.api_key_required,
                "stage": route.stage,
                "api_id": stack.apis[route.api].api_id if route.api in stack.apis else "local",
            }
            for route in stack.routes()
        ]
        apis = [stack.apis[name] for name in {route.api for route in stack.routes()} if name in stack.apis]
        served = apis[0] if len(apis) == 1 else None  # its gateway responses and usage plan, as API Gateway applies them
        return {
            "routes": routes,
            "api_keys": [self.api_key],
            "host": config.host,
            "port": config.api_port,
            "region": config.region,
            "account_id": stack.account_id,
            "gateway_responses": served.gateway_responses if served else None,
            "usage_plan": served.usage_plan if served else None,
            "served": served is not None,
        }

    def _stream_sources(self, stack: ProvisionedStack, load: Any = load_handler) -> list[DynamoDBStreamEventSource]:
        """The functions' DynamoDB stream event sources."""
        streams = stack.stream_event_sources(load=load, retry_delay=self.config.retry_delay)
        for stream in streams:
            log.info(
                "event source %s: stream %s, batches of %d within %g s",
                stream.function_name,
                stream.stream_arn.split("/")[1],
                stream.batch_size,
                stream.window_seconds,
            )
        return streams

    def _start_functions_here(self, stack: ProvisionedStack, session: Any, scale: float) -> None:
        """The event sources and schedules in this process's threads."""
        sources, schedules = self._sources(stack, scale)
        self.pollers, self.scheduler = function_host.start_functions(
            sources,
            schedules,
            lambda: EndpointSqs(session.client("sqs", endpoint_url=self.config.endpoint_url), self.config.endpoint_url, self.config.region),
            self.stop_event,
            streams=self._stream_sources(stack),
            clients=lambda service: session.client(service, endpoint_url=self.config.endpoint_url),
        )

    def _start_function_process(self, stack: ProvisionedStack, environment: dict[str, str], scale: float) -> None:
        """The event sources and schedules in a process of their own (local/function_host.py)."""
        sources, schedules = self._sources(stack, scale, load=lambda path: path)
        streams = self._stream_sources(stack, load=lambda path: path)
        self._start_process(
            "functions",
            function_host.spec(
                sources, schedules, environment, self.config.endpoint_url, self.config.region, [p for p in sys.path if p], streams=streams
            ),
        )
        log.info("functions: %d event source(s), %d stream source(s), %d schedule(s)", len(sources), len(streams), len(schedules))

    def _start_process(self, role: str, document: dict[str, Any]) -> None:
        process = subprocess.Popen(
            [sys.executable, "-m", "bulk_restore_cli.local.function_host"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=None,
            env={**os.environ},
        )
        self.processes.append(process)
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write((json.dumps(document) + "\n").encode())
        process.stdin.close()
        if process.stdout.readline().strip() != b"ready":
            raise LocalStackError(f"the {role} process did not start (exit code {process.wait()}): see the log above")
        log.info("%s: process %d", role, process.pid)

    @property
    def api_url(self) -> str:
        return f"http://{self.config.client_host}:{self.config.api_port}"

    def ready_info(self) -> dict[str, Any]:
        stack = self.stack
        assert stack is not None

        def pick(output: str, logical_id: str) -> str | None:
            value = stack.output(output)
            if value is None and logical_id in stack.resources:
                value = stack.ref(logical_id)
            return value

        return {
            "api_url": self.api_url,
            "api_key": self.api_key,
            "aws_endpoint_url": self.config.endpoint_url,
            "region": self.config.region,
            "topic_arn": pick("TopicArn", "JobTopic"),
            "manifest_bucket": pick("ManifestBucket", "ManifestBucket"),
            "events_queue_url": pick("JobEventsQueueUrl", "JobEventsQueue"),
            "table_name": pick("TableName", "JobTable"),
            "dead_letter_queue_urls": [
                url
                for url in (pick(f"{name}DeadLetterQueueUrl", f"{name}DeadLetterQueue") for name in ("Plan", "Restore", "Completion"))
                if url
            ],
            "stack_name": stack.stack_name,
            "restore_seconds": self.config.restore_seconds,
            "pid": os.getpid(),
        }

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop everything that was started, in reverse order (idempotent).

        Pollers and the scheduler stop between invocations; an invocation under way runs to its
        end (a restore worker's batch can take minutes). They get ``timeout`` seconds in all. If
        one is still running then, the AWS endpoint is left up for it and False is returned:
        only ending the process ends it. True once everything has stopped.

        The endpoint's figures (``endpoint_stats``) are written as the stop begins, and again, with
        what came since, when the endpoint stops or is left up.
        """
        deadline = time.monotonic() + timeout
        self.stop_event.set()
        # The endpoint's figures first: what follows can take seconds (an invocation finishing,
        # the emulations' clocks), and the process may be ended under it (``run``'s deadline).
        self.write_endpoint_stats()
        if self.api is not None:
            self.api.stop()
            self.api = None
        for process in self.processes:
            process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(max(0.1, min(function_host.STOP_GRACE_SECONDS + 0.5, deadline - time.monotonic())))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes = []
        workers: list[Poller | StreamPoller | Scheduler] = [*self.pollers, *([self.scheduler] if self.scheduler else [])]
        for worker in workers:
            worker.join(timeout=max(0.0, deadline - time.monotonic()))
        busy = [worker.name for worker in workers if worker.is_alive()]
        if busy:
            log.info("still running after %g s: %s", timeout, ", ".join(busy))
            self.write_endpoint_stats()
            return False
        self.pollers = []
        self.scheduler = None
        if self.glacier is not None:
            self.glacier.uninstall()
            self.glacier = None
        if self.batch is not None:
            self.batch.uninstall()
            self.batch = None
        if self.emulator is not None:
            self.emulator.uninstall()
            self.emulator = None
        if self.moto is not None:
            self._report_endpoint(self.moto.stats())
            self.write_endpoint_stats()  # the final figures, over the first ones
            self.moto.stop()
            self.moto = None
        self.dynamodb_streams.uninstall()
        self.dynamodb.uninstall()
        return True

    def _report_endpoint(self, stats: dict[str, dict[str, float]]) -> None:
        total = sum(figures["requests"] for figures in stats.values())
        busiest = ", ".join(f"{name} {figures['requests']:.0f} ({figures['seconds']:.1f} s)" for name, figures in list(stats.items())[:6])
        log.info("AWS endpoint served %d requests; most time in: %s", total, busiest or "none")

    def write_endpoint_stats(self) -> None:
        """The endpoint's per-operation figures so far to ``config.endpoint_stats`` (when asked for).

        Written whole or not at all: to a file beside it, then renamed over it, so a reader (or a
        process ended mid-write) never leaves or finds half a file. Safe from any thread."""
        path, moto = self.config.endpoint_stats, self.moto
        if path is None or moto is None:
            return
        stats = moto.stats()
        with self._figures:
            try:
                partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
                partial.write_text(json.dumps(stats, indent=1) + "\n", encoding="utf-8")
                partial.replace(path)
            except OSError as exc:
                log.warning("could not write the endpoint's figures to %s: %s", path, exc)

    @staticmethod
    def _make_code_importable(stack: ProvisionedStack) -> None:
        """Functions load from their CodeUri, as Lambda would, when their package is not installed."""
        if stack.template_dir is None:
            return
        for spec in stack.functions.values():
            if spec.code_uri:
                code = (stack.template_dir / spec.code_uri).resolve()
                if code.is_dir() and str(code) not in sys.path:
                    sys.path.append(str(code))


def write_ready_file(path: Path, info: dict[str, Any]) -> None:
    """Write atomically: a reader never sees half a line."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(info) + "\n", encoding="utf-8")
    partial.replace(path)


def run(
    config: LocalStackConfig, ready_file: Path | None = None, out: IO[str] | None = None, stop_seconds: float = STOP_SECONDS
) -> NoReturn:
    """Run in the foreground until SIGTERM or SIGINT. The ready line goes to ``out``; the rest to stderr.

    Once stopped, the process ends with exit code 0 (it does not return). A function invocation
    still running ``stop_seconds`` after the signal cannot be stopped from outside (as in Lambda,
    only ending its process does): the process ends without waiting for it; all state was in
    memory anyway. In any case the process ends EXIT_SECONDS after the signal.
    """
    out = out or sys.stdout
    # The functions log to stdout (as in Lambda); here stdout carries only the ready line.
    sys.stdout = sys.stderr
    stopping = threading.Event()
    starting = [True]
    local = LocalStack(config)

    def out_of_time() -> None:
        log.info("still stopping %g s after the signal: ending the process", EXIT_SECONDS)
        local.write_endpoint_stats()  # the figures up to now, over those written when the stop began
        exit_now(0)

    def request_stop(signum: int, _frame: Any) -> None:
        log.info("signal %s: stopping", signal.Signals(signum).name)
        if not stopping.is_set():
            # Whatever holds the stop up (an invocation, a thread pool the interpreter's exit
            # would wait for), the process ends in time.
            deadline = threading.Timer(EXIT_SECONDS, out_of_time)
            deadline.daemon = True
            deadline.start()
        stopping.set()
        if starting[0]:
            starting[0] = False
            raise _StoppedWhileStarting  # provisioning takes seconds: unwind it; what started is stopped below

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    tune_interpreter()  # this process holds the emulated state: see local/endpoint.py
    finished = True
    try:
        info = local.start()
        starting[0] = False
        if ready_file is not None:
            write_ready_file(ready_file, info)
        out.write(json.dumps(info) + "\n")
        out.flush()
        # Wake now and then: a signal that lands on another thread runs its handler only when the
        # main thread next runs Python code, and a wait without timeout never would.
        while not stopping.wait(0.2):
            pass
    except _StoppedWhileStarting:
        pass
    finally:
        if ready_file is not None:
            ready_file.unlink(missing_ok=True)  # first: whoever watches it knows at once the stack is going
        finished = local.stop(timeout=stop_seconds)
        log.info("stopped" if finished else "stopped, without the invocations still running")
    # Everything lived in memory: the process ends here, without tearing down the emulated
    # buckets and tables object by object (after a 100,000-object job, the interpreter's own
    # shutdown took longer than 15 s) and without waiting for an invocation still running.
    exit_now(0)


class _StoppedWhileStarting(BaseException):
    """A signal came while the stack was starting (a BaseException: no ``except Exception`` keeps it)."""


def exit_now(code: int) -> NoReturn:
    """End the process without waiting for its threads (atexit would join busy thread pools)."""
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)
