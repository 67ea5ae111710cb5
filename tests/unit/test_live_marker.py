"""The `live` marker is true, and the folders are the levels: `-m "not live"` leaves out every
test that starts a server, and a test is marked `live` if and only if it is under tests/live/."""

from pathlib import Path
from types import SimpleNamespace

import pytest

from tests import conftest
from tests.support.live_server import LiveServer


def test_a_test_without_the_live_marker_cannot_start_a_server():
    server = LiveServer(None, migrate=False)
    with pytest.raises(RuntimeError, match="mark it @pytest.mark.live"):
        server.start()
    assert server.process is None


def test_every_collected_test_is_in_the_folder_of_its_level(request: pytest.FixtureRequest):
    assert request.node.nodeid in conftest.checked, "the check did not see this run's tests"
    assert conftest.misplaced == [], "\n".join(conftest.misplaced)


def _item(path: str, *, live: bool = False, fixtures: tuple[str, ...] = ()) -> SimpleNamespace:
    return SimpleNamespace(
        path=Path(conftest.__file__).parent / path,
        nodeid=f"tests/{path}::test_x",
        fixturenames=fixtures,
        get_closest_marker=lambda name: object() if live and name == "live" else None,
    )


def test_the_check_names_each_kind_of_misplaced_test():
    items = [
        _item("unit/test_a.py"),
        _item("api/test_b.py", fixtures=("client",)),
        _item("live/test_c.py", live=True),
        _item("api/test_d.py", live=True),
        _item("live/test_e.py"),
        _item("unit/test_f.py", fixtures=("client",)),
        _item("test_g.py"),
    ]
    assert conftest.misplaced_tests(items) == [  # type: ignore[arg-type]
        "tests/api/test_d.py::test_x: marked live under tests/api",
        "tests/live/test_e.py::test_x: not marked live under tests/live",
        "tests/unit/test_f.py::test_x: an API test (the `client` fixture) under tests/unit",
        "tests/test_g.py::test_x: not under tests/unit, tests/api or tests/live",
    ]
