"""The locks (requirements.txt, requirements-dev.txt) are what `./run.sh lock` writes from their
inputs (requirements.in, requirements-dev.in): every package pinned, with hashes, and nothing
more or less than the inputs need. Checked offline, from the metadata of the packages installed
from the lock: an input edited without relocking, or a lock edited by hand, fails here."""

import re
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
LOCKS = {"requirements.txt": "requirements.in", "requirements-dev.txt": "requirements-dev.in"}


@dataclass(frozen=True)
class Pin:
    version: str
    applies: bool  # its marker holds here (a universal lock also pins, say, Windows' packages)
    hashes: int


def read_lock(path: Path) -> dict[str, Pin]:
    """name -> its pin, from a lock that uv (or pip-compile) wrote with --generate-hashes."""
    text = re.sub(r"\\\n", " ", path.read_text())
    pins: dict[str, Pin] = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        requirement, *options = re.split(r"\s+(?=--)", line)
        req = Requirement(requirement)
        (spec,) = req.specifier
        assert spec.operator == "==", f"{path.name}: {requirement} is not pinned"
        name = canonicalize_name(req.name)
        assert name not in pins, f"{path.name}: {name} pinned twice"
        pins[name] = Pin(
            spec.version,
            req.marker is None or req.marker.evaluate(),
            sum(option.startswith("--hash=sha256:") for option in options),
        )
    return pins


def read_inputs(path: Path) -> tuple[list[Requirement], list[Path]]:
    """The requirements an input file names (following -r), and the files it constrains by."""
    requirements: list[Requirement] = []
    constraints: list[Path] = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("-r "):
            more, also = read_inputs(path.parent / line[3:].strip())
            requirements += more
            constraints += also
        elif line.startswith("-c "):
            constraints.append(path.parent / line[3:].strip())
        elif line:
            requirements.append(Requirement(line))
    return requirements, constraints


def drift(lock: Path, inputs: Path) -> list[str]:
    """How the lock differs from what its inputs resolve to here; empty when they agree."""
    pins = read_lock(lock)
    roots, constraints = read_inputs(inputs)
    problems = [f"{name} has no hash" for name, pin in pins.items() if pin.hashes == 0]
    for req in roots:
        pin = pins.get(canonicalize_name(req.name))
        if pin is None:
            problems.append(f"{req} is an input but not in the lock")
        elif not req.specifier.contains(pin.version, prereleases=True):
            problems.append(f"{req} is an input but the lock pins {pin.version}")
    for constraint in constraints:
        for name, pin in read_lock(constraint).items():
            if name in pins and pins[name].version != pin.version:
                problems.append(f"{name}: {pin.version} in {constraint.name}, {pins[name].version}")
    # Everything the inputs need here, from the installed packages' own requirements; each is
    # walked with the extras asked of it (uvicorn[standard] needs more than uvicorn).
    needed: set[str] = set()
    missing: set[str] = set()
    seen: set[tuple[str, frozenset[str]]] = set()
    todo: list[tuple[Requirement, frozenset[str]]] = [(req, frozenset()) for req in roots]
    while todo:
        req, asked = todo.pop()
        if req.marker and not any(req.marker.evaluate({"extra": x}) for x in asked or {""}):
            continue
        name = canonicalize_name(req.name)
        if (name, frozenset(req.extras)) in seen:
            continue
        seen.add((name, frozenset(req.extras)))
        pin = pins.get(name)
        if pin is None:
            missing.add(name)
            continue
        needed.add(name)
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            problems.append(f"{name} is locked but not installed: run ./run.sh test")
            continue
        if installed != pin.version:
            problems.append(f"{name} {installed} is installed, the lock says {pin.version}")
            continue
        todo += [(Requirement(dep), frozenset(req.extras)) for dep in metadata.requires(name) or []]
    locked_here = {name for name, pin in pins.items() if pin.applies}
    problems += [f"{name} is locked but no input needs it" for name in locked_here - needed]
    problems += [f"{name} is locked but does not apply here" for name in needed - locked_here]
    problems += [f"{name} is needed but not locked" for name in missing]
    return sorted(problems)


@pytest.mark.parametrize("lock", LOCKS)
def test_each_lock_is_what_its_inputs_resolve_to(lock: str):
    assert drift(ROOT / lock, ROOT / LOCKS[lock]) == [], "inputs changed: run ./run.sh lock"


@pytest.mark.parametrize("lock", LOCKS)
def test_each_lock_says_how_it_was_written(lock: str):
    head = (ROOT / lock).read_text().splitlines()[:2]
    assert head == ["# This file was autogenerated by uv via the following command:",
                    "#    ./run.sh lock"]  # fmt: skip


def owners_of(module: str, holders: dict[str, str]) -> list[str]:
    """The distributions that provide `module` (dotted): the one holding its file, or the one
    holding its nearest parent's; none for the standard library. Several distributions share a
    namespace package (opentelemetry-api, -sdk...): only the one holding the module counts."""
    parts = module.split(".")
    while parts:
        path = "/".join(parts)
        for candidate in (f"{path}.py", f"{path}/__init__.py"):
            if candidate in holders:
                return [holders[candidate]]
        parts.pop()
    return metadata.packages_distributions().get(module.split(".")[0], [])


def test_the_service_pins_every_package_it_imports():
    imported = set()
    statement = re.compile(r"^\s*(?:from ([\w.]+) import \(?\s*(\w+)|import ([\w.]+))", re.M)
    for module in (ROOT / "app").rglob("*.py"):
        for match in statement.finditer(module.read_text()):
            imported.add(match[3] or f"{match[1]}.{match[2]}")
    holders = {
        str(file): distribution.metadata["Name"]
        for distribution in metadata.distributions()
        for file in distribution.files or ()
        if file.suffix == ".py"
    }
    names = {canonicalize_name(req.name) for req in read_inputs(ROOT / "requirements.in")[0]}
    for module in sorted(m for m in imported if m.split(".")[0] != "app"):
        for distribution in owners_of(module, holders):  # none: the standard library
            assert canonicalize_name(distribution) in names, f"app imports {module}: pin it"


def test_an_input_added_or_dropped_without_relocking_is_caught(tmp_path: Path):
    lock = tmp_path / "requirements.txt"
    lock.write_text((ROOT / "requirements.txt").read_text())
    inputs = (ROOT / "requirements.in").read_text()
    added = tmp_path / "added.in"
    added.write_text(inputs + "rich==15.0.0\n")
    assert "rich==15.0.0 is an input but not in the lock" in drift(lock, added)
    dropped = tmp_path / "dropped.in"
    dropped.write_text(inputs.replace("asyncpg==", "# asyncpg=="))
    assert "asyncpg is locked but no input needs it" in drift(lock, dropped)
    raised = tmp_path / "raised.in"
    raised.write_text(inputs.replace("httpx==0.28.1", "httpx==0.29.0"))
    assert "httpx==0.29.0 is an input but the lock pins 0.28.1" in drift(lock, raised)


def test_a_lock_edited_by_hand_is_caught(tmp_path: Path):
    text = (ROOT / "requirements.txt").read_text()
    unhashed = tmp_path / "unhashed.txt"
    unhashed.write_text(re.sub(r"(idna==[^\n]*?) \\\n(\s+--hash=[^\n]*\n)+", r"\1\n", text))
    assert "idna has no hash" in drift(unhashed, ROOT / "requirements.in")
    missing = tmp_path / "missing.txt"
    missing.write_text(re.sub(r"sniffio==|anyio==", "x-\\g<0>", text, count=1))
    problems = drift(missing, ROOT / "requirements.in")
    assert "anyio is needed but not locked" in problems, problems
