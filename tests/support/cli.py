"""Running the `bulk-restore` command as a user does, in a subprocess."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def command(*args: str) -> list[str]:
    """The installed console script, or the module if the script is not on this interpreter's path."""
    script = Path(sys.executable).with_name("bulk-restore")
    if script.exists():
        return [str(script), *args]
    found = shutil.which("bulk-restore")
    return [found, *args] if found else [sys.executable, "-m", "bulk_restore_cli.cli", *args]


def clean_env() -> dict[str, str]:
    """No credentials, profile or endpoint of the developer's machine reach the subprocess."""
    return {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}


def start_local(
    ready_file: Path, log_path: Path, *args: str, stdout: int = subprocess.DEVNULL, timeout: float = 60.0
) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    """`bulk-restore local` on free ports, in a subprocess (stderr to ``log_path``), as a user starts it.

    Returns once it has written ``ready_file``: the process and its ready line.
    """
    from bulk_restore_cli.demo import free_port

    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command("local", "--api-port", str(free_port()), "--aws-port", str(free_port()), "--ready-file", str(ready_file), *args),
            stdout=stdout,
            stderr=log,
            stdin=subprocess.DEVNULL,
            env=clean_env(),
        )
    deadline = time.monotonic() + timeout
    while not ready_file.exists():
        if process.poll() is not None or time.monotonic() >= deadline:
            tail = log_path.read_text(errors="replace")[-3000:]
            assert process.poll() is None, f"the stack exited with {process.returncode}: {tail}"
            raise AssertionError(f"the stack was not ready in {timeout:g} s: {tail}")
        time.sleep(0.1)
    return process, json.loads(ready_file.read_text())
