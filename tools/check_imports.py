"""Imports inside app/ only point down: no import cycle, and no layer imports one above it.

    python tools/check_imports.py          (run by ./run.sh lint)

Every import counts, at the top of a module or inside a function (a function-level import is
still an arrow). The layers, top to bottom; modules of one layer may import each other (never
in a circle), groups written `a | b` on one line are siblings that may not import each other:

    app.main | app.chores   the two ways in: the web app, and one round of chores (./run.sh chores)
    app.routers
    app.http | app.housekeeping
    app.*             the rules, flat: products, orders, stock, ledger, payments, idempotency,
                      and any new module of app/ not placed elsewhere (a new resource's rules)
    app.events
    app.schemas
    app.tables
    app.db
    app.core
    app.signing

The standard library's ast only; no package to install.
"""

import ast
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

LAYERS: tuple[tuple[str, ...], ...] = (
    ("app.main", "app.chores"),
    ("app.routers",),
    ("app.http", "app.housekeeping"),
    ("app.*",),  # every module not placed in another layer: the rules
    ("app.events",),
    ("app.schemas",),
    ("app.tables",),
    ("app.db",),
    ("app.core",),
    ("app.signing",),
)


def module_names(root: Path, package: str) -> dict[str, Path]:
    """Every module of the package under `root`, by dotted name (a package by its own name)."""
    found = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def imports_of(path: Path, name: str, modules: Mapping[str, Path]) -> set[str]:
    """The package's modules that `name` (at `path`) imports, anywhere in its body."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".")
                anchor = anchor if is_package else anchor[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            # `from app.x import y`: y is a module when there is one by that name.
            targets = [f"{base}.{alias.name}" for alias in node.names]
            targets = [t if t in modules else base for t in targets]
        else:
            continue
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def graph(root: Path, package: str) -> dict[str, set[str]]:
    modules = module_names(root, package)
    edges = {name: imports_of(path, name, modules) for name, path in modules.items()}
    # A package's __init__ re-exporting its own modules is not an arrow back up: ignore
    # edges from a package to its own modules (and the implicit ones from a module to its
    # package, which `import a.b` creates, are never written).
    return {n: {t for t in ts if not t.startswith(n + ".")} for n, ts in edges.items()}


def cycles(edges: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def place(name: str, layers: tuple[tuple[str, ...], ...]) -> tuple[int, str] | None:
    """(layer number, group) of a module; a `package.*` group takes the package's modules no
    other group holds. None when no layer holds it."""
    rest = None
    for number, groups in enumerate(layers):
        for group in groups:
            if group.endswith(".*"):
                if name.startswith(group[:-1]):
                    rest = (number, group)  # one group: the rules may import each other
            elif name == group or name.startswith(group + "."):
                return number, group
    return rest


def layer_violations(
    edges: Mapping[str, Iterable[str]], layers: tuple[tuple[str, ...], ...], package: str
) -> list[str]:
    found = []
    for name in sorted(edges):
        if name == package:
            continue
        here = place(name, layers)
        if here is None:
            found.append(f"{name} is in no layer (tools/check_imports.py LAYERS)")
            continue
        for target in sorted(edges[name]):
            there = place(target, layers)
            if target == package or there is None:
                continue
            if there[0] < here[0]:
                found.append(f"{name} imports {target}, a layer above it")
            elif there[0] == here[0] and there[1] != here[1]:
                found.append(f"{name} imports {target}, a sibling it must not know")
    return found


def check(
    root: Path, package: str = "app", layers: tuple[tuple[str, ...], ...] = LAYERS
) -> list[str]:
    edges = graph(root, package)
    problems = [f"import cycle: {' <-> '.join(c)}" for c in cycles(edges)]
    return problems + layer_violations(edges, layers, package)


def main() -> int:
    root = Path(__file__).resolve().parent.parent
    problems = check(root)
    for problem in problems:
        print(f"check_imports: {problem}", file=sys.stderr)
    if not problems:
        count = len(module_names(root, "app"))
        print(f"check_imports: {count} modules of app/, no cycle, every import points down")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
