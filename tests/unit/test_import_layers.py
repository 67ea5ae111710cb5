"""tools/check_imports.py, the lint step that keeps app/'s imports pointing down: it passes on
app/ as it is, and it names a cycle, an arrow up, a sibling's import and an unplaced module."""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("check_imports", ROOT / "tools" / "check_imports.py")
assert _spec is not None and _spec.loader is not None
check_imports = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check_imports)

LAYERS = (("pkg.top",), ("pkg.left", "pkg.right"), ("pkg.low",))


def _package(tmp_path: Path, modules: dict[str, str]) -> Path:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    for name, body in modules.items():
        path = tmp_path / "pkg" / f"{name.replace('.', '/')}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.parent != tmp_path / "pkg":
            (path.parent / "__init__.py").touch()
        path.write_text(body)
    return tmp_path


def _problems(root: Path) -> list[str]:
    return check_imports.check(root, "pkg", LAYERS)


def test_app_has_no_import_cycle_and_every_import_points_down():
    assert check_imports.check(ROOT) == []


def test_a_clean_package_passes(tmp_path):
    root = _package(
        tmp_path,
        {
            "top": "from pkg import left, right\n",
            "left": "import pkg.low\n",
            "right": "",
            "low": "",
        },
    )
    assert _problems(root) == []


def test_a_cycle_is_named_even_through_a_function_level_import(tmp_path):
    root = _package(
        tmp_path,
        {
            "top": "",
            "left": "from pkg.low import x\n",
            "right": "",
            "low": "def f():\n    from pkg import left\nx = 1\n",
        },
    )
    assert "import cycle: pkg.left <-> pkg.low" in _problems(root)


@pytest.mark.parametrize(
    ("modules", "expected"),
    [
        ({"low": "from pkg import top\n"}, "pkg.low imports pkg.top, a layer above it"),
        (
            {"left": "from . import right\n"},
            "pkg.left imports pkg.right, a sibling it must not know",
        ),
        ({"stray": ""}, "pkg.stray is in no layer (tools/check_imports.py LAYERS)"),
    ],
)
def test_an_arrow_up_a_sibling_and_an_unplaced_module_are_named(tmp_path, modules, expected):
    root = _package(tmp_path, {"top": "", "left": "", "right": "", "low": "", **modules})
    assert expected in _problems(root)


def _imported_modules(path: Path) -> set[str]:
    import ast

    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found |= {node.module, *(f"{node.module}.{alias.name}" for alias in node.names)}
    return found


def test_bench_imports_the_tests_shared_harness_only_never_a_test_module():
    for path in sorted((ROOT / "bench").glob("*.py")):
        from_tests = {m for m in _imported_modules(path) if m.split(".")[0] == "tests"}
        wrong = {m for m in from_tests if m != "tests" and not m.startswith("tests.support")}
        assert wrong == set(), f"{path.name} imports {sorted(wrong)}"


def test_no_script_puts_the_repository_on_sys_path_the_project_is_installed_instead():
    sources = [ROOT / "generate_webhook_signature.py", ROOT / "locustfile.py"]
    for folder in ("app", "bench", "ops", "tests", "tools", "migrations"):
        sources += sorted((ROOT / folder).rglob("*.py"))
    needle = "sys.path." + "insert"  # spelled apart, so this file is not its own offender
    offenders = [p.relative_to(ROOT) for p in sources if needle in p.read_text()]
    assert offenders == []


def test_a_new_module_lands_in_the_catch_all_layer_and_may_not_import_up(tmp_path):
    layers = (("pkg.top",), ("pkg.*",), ("pkg.low",))
    root = _package(
        tmp_path, {"top": "", "low": "", "new": "from pkg import low, rule\n", "rule": ""}
    )
    assert check_imports.check(root, "pkg", layers) == []
    (root / "pkg" / "rule.py").write_text("from pkg import top\n")
    assert check_imports.check(root, "pkg", layers) == [
        "pkg.rule imports pkg.top, a layer above it"
    ]
