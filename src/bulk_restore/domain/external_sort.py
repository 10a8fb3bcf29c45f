"""Sorting more text lines than memory holds: sorted runs on disk, then one lazy merge.

Pure Python, no AWS SDK. ``RunWriter`` takes lines (text without ``"\\n"``) and writes each
``run_lines`` of them, sorted, to a file of its own in a directory the caller owns (a
``tempfile.TemporaryDirectory``: Lambda's /tmp). ``merge_runs`` yields every line of the runs in
order (``heapq.merge``), reading each file line by line. Lines sort as Python strings do: by code
point, which is also the order of their UTF-8 bytes.

Memory: one run while writing, one line per run while merging. Disk: the lines once (twice for a
moment when there are more than ``fan_in`` runs: those are first merged in groups into longer
runs, so no more than ``fan_in`` files are ever open at once).
"""

from __future__ import annotations

import heapq
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

RUN_LINES = 50_000  # lines per run: the most held in memory at once
FAN_IN = 256  # runs merged at once (open files)


def write_lines(path: str | os.PathLike[str], lines: Iterable[str], append: bool = False) -> int:
    """Write ``lines``, each followed by ``"\\n"``, as UTF-8 (unpaired surrogates kept as they are);
    the number written."""
    count = 0
    with open(path, "a" if append else "w", encoding="utf-8", errors="surrogatepass", newline="\n") as out:
        for line in lines:
            if "\n" in line:
                raise ValueError("a line to sort holds a line break: escape it first (JSON does)")
            out.write(line)
            out.write("\n")
            count += 1
    return count


def read_lines(path: str | os.PathLike[str]) -> Iterator[str]:
    """The lines ``write_lines`` wrote, without their ``"\\n"``, one at a time."""
    with open(path, encoding="utf-8", errors="surrogatepass", newline="\n") as source:
        for line in source:
            yield line[:-1] if line.endswith("\n") else line


class RunWriter:
    """Lines in, sorted run files out: each ``run_lines`` lines are sorted and written to
    ``<directory>/<name>-NNNNNN``; ``finish`` writes the last run and gives every run's path."""

    def __init__(self, directory: str | os.PathLike[str], run_lines: int = RUN_LINES, name: str = "run"):
        if run_lines < 1:
            raise ValueError("run_lines must be at least 1")
        self.directory = Path(directory)
        self.run_lines = run_lines
        self.name = name
        self.runs: list[Path] = []
        self.lines = 0
        self._pending: list[str] = []

    def add(self, line: str) -> None:
        self._pending.append(line)
        self.lines += 1
        if len(self._pending) >= self.run_lines:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        self._pending.sort()
        path = self.directory / f"{self.name}-{len(self.runs):06d}"
        write_lines(path, self._pending)
        self.runs.append(path)
        self._pending = []

    def finish(self) -> list[Path]:
        self._flush()
        return list(self.runs)


def merge_runs(runs: Sequence[str | os.PathLike[str]], fan_in: int = FAN_IN) -> Iterator[str]:
    """Every line of the sorted ``runs``, in order. More than ``fan_in`` runs are first merged in
    groups of ``fan_in`` into longer runs beside them (the runs merged are removed)."""
    if fan_in < 2:
        raise ValueError("fan_in must be at least 2")
    paths = [Path(run) for run in runs]
    level = 0
    while len(paths) > fan_in:
        merged = []
        for start in range(0, len(paths), fan_in):
            group = paths[start : start + fan_in]
            target = group[0].with_name(f"merged-{level}-{start // fan_in:06d}")
            write_lines(target, heapq.merge(*(read_lines(path) for path in group)))
            for path in group:
                path.unlink()
            merged.append(target)
        paths = merged
        level += 1
    yield from heapq.merge(*(read_lines(path) for path in paths))


def sort_lines(lines: Iterable[str], directory: str | os.PathLike[str], run_lines: int = RUN_LINES, fan_in: int = FAN_IN) -> Iterator[str]:
    """``lines`` sorted, through run files in ``directory``: all of them are read (and written)
    before the first comes out."""
    writer = RunWriter(directory, run_lines)
    for line in lines:
        writer.add(line)
    return merge_runs(writer.finish(), fan_in)
