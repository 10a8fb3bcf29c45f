"""Running the `bulk-restore` command as a user does, in a subprocess."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path


def command(*args: str) -> list[str]:
    """The installed console script, or the module if the script is not on this interpreter's path."""
    script = Path(sys.executable).with_name("bulk-restore")
    if script.exists():
        return [str(script), *args]
    found = shutil.which("bulk-restore")
    return [found, *args] if found else [sys.executable, "-m", "bulk_restore.cli", *args]
