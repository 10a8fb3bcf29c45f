"""What `sam build` put in each function's package: fails if anything but the functions' code is there.

    python3 tools/package_report.py [.aws-sam/build]

Prints, per function, the package's zipped size (as Lambda would receive it), the size of the
project's own code in it, and its largest dependencies. Exits 1 if a package holds the command
line, the local stack, the demo or the benchmarks (bulk_restore_cli), or lacks bulk_restore.
"""

from __future__ import annotations

import io
import sys
import zipfile
from pathlib import Path


def zipped_size(root: Path, only: Path | None = None) -> int:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted((only or root).rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(root))
    return buffer.tell()


def mib(size: int) -> str:
    return f"{size / 2**20:.2f} MiB"


def main(argv: list[str]) -> int:
    build = Path(argv[1] if len(argv) > 1 else ".aws-sam/build")
    functions = sorted(p for p in build.iterdir() if p.is_dir() and p.name.endswith("Function")) if build.is_dir() else []
    if not functions:
        print(f"{build}: no function packages (run sam build first)", file=sys.stderr)
        return 1
    failed = False
    for package in functions:
        strays = [p.name for p in package.iterdir() if p.name.startswith("bulk_restore_cli")]
        if strays or not (package / "bulk_restore" / "handlers").is_dir():
            print(f"{package.name}: holds {strays or 'no bulk_restore'}: only the functions' code belongs there", file=sys.stderr)
            failed = True
            continue
        own = zipped_size(package, package / "bulk_restore")
        total = zipped_size(package)
        print(f"{package.name}: {mib(total)} zipped, of which bulk_restore {mib(own)}")
    largest = sorted(
        ((sum(f.stat().st_size for f in p.rglob("*") if f.is_file()), p.name) for p in functions[0].iterdir() if p.is_dir()), reverse=True
    )[:5]
    print("largest parts (unzipped): " + ", ".join(f"{name} {mib(size)}" for size, name in largest))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
