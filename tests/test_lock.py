"""The lock files: every dependency pinned, with hashes, and the functions ship what the tests ran.

requirements/dev.lock pins what `make install` installs (pyproject.toml's dependencies and all
its extras); src/requirements.txt pins what `sam build` puts in the functions' package
(requirements/lambda.in). Both come from `make lock`.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^ ;\\]+)(?: ; (.+?))? *\\?$")


def pins(path: Path) -> dict[str, list[tuple[Version, str | None]]]:
    """Each pinned package: its versions (one per marker, as a universal lock may have) and whether each has hashes."""
    found: dict[str, list[tuple[Version, str | None]]] = {}
    lines = path.read_text(encoding="utf-8").splitlines()
    for index, line in enumerate(lines):
        match = PIN.match(line)
        if match:
            name, version, marker = match.groups()
            hashed = index + 1 < len(lines) and lines[index + 1].strip().startswith("--hash=sha256:")
            assert hashed, f"{path.name}: {name}=={version} has no hash"
            found.setdefault(canonicalize_name(name), []).append((Version(version), marker))
        elif line and not line.startswith(("#", " ")):
            pytest.fail(f"{path.name}: not a pinned requirement: {line!r}")
    return found


def requirements(texts: list[str]) -> list[Requirement]:
    return [Requirement(t) for t in texts if canonicalize_name(Requirement(t).name) != "bulk-restore"]


PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
DEV_LOCK = pins(ROOT / "requirements" / "dev.lock")
LAMBDA_LOCK = pins(ROOT / "src" / "requirements.txt")
LAMBDA_IN = [line.split("#")[0].strip() for line in (ROOT / "requirements" / "lambda.in").read_text(encoding="utf-8").splitlines()]
LAMBDA_IN = [line for line in LAMBDA_IN if line]


def test_the_dev_lock_pins_every_dependency_and_extra_of_the_project_within_its_range():
    wanted = requirements(PROJECT["dependencies"]) + [r for extra in PROJECT["optional-dependencies"].values() for r in requirements(extra)]
    assert len(wanted) > 10
    for requirement in wanted:
        versions = DEV_LOCK.get(canonicalize_name(requirement.name))
        assert versions, f"{requirement.name} is not in requirements/dev.lock: run make lock"
        for version, _marker in versions:
            assert requirement.specifier.contains(version, prereleases=True), f"{requirement}: the lock has {version}: run make lock"


def test_the_functions_require_what_the_project_requires_boto3_excepted():
    # sam build installs src/requirements.txt, pip installs pyproject.toml's dependencies: the
    # functions need the same (the Tracer needs Powertools' tracer extra), boto3 excepted: the
    # Lambda runtime has it.
    assert sorted(LAMBDA_IN) == sorted(d for d in PROJECT["dependencies"] if not d.startswith("boto3"))
    assert any(d.startswith("aws-lambda-powertools[tracer]") for d in LAMBDA_IN)


def test_the_functions_ship_the_versions_the_tests_ran():
    for text in LAMBDA_IN:
        requirement = Requirement(text)
        (version, _), *more = LAMBDA_LOCK[canonicalize_name(requirement.name)]
        assert not more and requirement.specifier.contains(version)
    for name, [(version, _marker)] in LAMBDA_LOCK.items():
        assert version in [v for v, _ in DEV_LOCK.get(name, [])], (
            f"the functions would run {name} {version}, the tests another: run make lock"
        )
    assert "boto3" not in LAMBDA_LOCK  # the runtime's
