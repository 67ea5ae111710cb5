"""Fixtures: a fresh database per test (SQLite and PostgreSQL), an app on it, live servers; and
the check that each test sits in the folder of its level."""

import secrets
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import SQLModel

from app.core.config import Settings
from app.db import readiness
from app.db.connect import create_database, create_db_engine
from app.main import create_app
from tests.support import live_server as live_servers
from tests.support.databases import ENGINES, database_url, drop_worker_database, stamp_head
from tests.support.factories import Db
from tests.support.live_server import LiveServer
from tests.support.serving import serving


@pytest.fixture(autouse=True)
def _no_storage_error_left_over(monkeypatch: pytest.MonkeyPatch) -> None:
    """A storage error one test's database reported (kept per process, app/db/readiness.py) must
    not leave the next test's service unready."""
    monkeypatch.setattr(readiness, "_reported", None)


# The fixtures that start a real server: a test that uses one is `live` without saying so.
LIVE_FIXTURES = frozenset({"live_server", "client_server", "client_servers"})
# The levels, one folder each (README.md, docs/testing.md).
LEVELS = {name: Path(__file__).parent / name for name in ("unit", "api", "live")}
# The tests this run collected, and those whose folder and level disagree (checked by
# tests/unit/test_live_marker.py).
checked: set[str] = set()
misplaced: list[str] = []


# First, so that `-m` sees the markers added here.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if LIVE_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.live)
    checked.update(item.nodeid for item in items)
    misplaced[:] = misplaced_tests(items)


def pytest_sessionfinish() -> None:
    drop_worker_database()


# The live modules that put a multi-worker server under concurrent load: each can hold some 60
# of PostgreSQL's 100 connections, so no two of them run at once.
UNDER_LOAD = frozenset(
    {
        "test_concurrency",
        "test_crash",
        "test_event_load",
        "test_event_loop",
        "test_ledger_live",
        "test_locust",
        "test_webhook_concurrency",
    }
)


def work_unit(nodeid: str) -> str:
    """What pytest-xdist hands one worker at a time (`-n 2`, pyproject.toml): a unit or API test
    on its own; a live module whole, so that its module-scoped servers start once; and the
    modules under load (UNDER_LOAD) all together, so they run one after another."""
    path = nodeid.split("::", 1)[0]
    if not path.startswith("tests/live/"):
        return nodeid
    return "under load" if Path(path).stem in UNDER_LOAD else path


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    from xdist.scheduler import LoadScopeScheduling

    class ByWorkUnit(LoadScopeScheduling):
        """xdist's loadscope with `work_unit`s for scopes: the units with most tests go first,
        the single unit and API tests fill in at the end."""

        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    return ByWorkUnit(config, log)


def misplaced_tests(items: list[pytest.Item]) -> list[str]:
    """Each test outside the three folders, marked `live` outside tests/live/ or not marked
    under it, or using the in-process `client` under tests/unit/, with what is wrong."""
    wrong = []
    for item in items:
        folder = next((n for n, d in LEVELS.items() if d in Path(item.path).parents), None)
        live = item.get_closest_marker("live") is not None
        if folder is None:
            wrong.append(f"{item.nodeid}: not under tests/unit, tests/api or tests/live")
        elif live != (folder == "live"):
            wrong.append(f"{item.nodeid}: {'' if live else 'not '}marked live under tests/{folder}")
        elif folder == "unit" and "client" in getattr(item, "fixturenames", ()):
            wrong.append(f"{item.nodeid}: an API test (the `client` fixture) under tests/unit")
    return wrong


@pytest.fixture(autouse=True)
def _live_marker_is_true(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test that starts a server itself (LiveServer) must carry the `live` marker."""
    live_servers.current_test_is_live = request.node.get_closest_marker("live") is not None
    yield
    live_servers.current_test_is_live = None


@pytest.fixture(params=ENGINES)
def db_kind(request: pytest.FixtureRequest) -> str:
    """Every test that touches the database runs once per engine."""
    return request.param


@pytest.fixture
def settings(db_kind: str, tmp_path: Path) -> Iterator[Settings]:
    with database_url(db_kind, tmp_path) as url:
        yield Settings(_env_file=None, app_env="test", database_url=url)


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    """The fresh database's schema, made by SQLAlchemy from app/tables.py."""
    engine = create_db_engine(settings)
    SQLModel.metadata.create_all(engine)
    stamp_head(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def db(settings: Settings, engine: Engine) -> Iterator[Db]:
    """The service's own Database on the fresh database: rules run through the seam."""
    db = Db(create_database(settings, engine))
    yield db
    db.close()


@pytest.fixture
def client(settings: Settings, engine: Engine) -> Iterator[TestClient]:
    with serving(create_app(settings, engine)) as client:
        yield client


@pytest.fixture
def live_server(db_kind: str, tmp_path: Path) -> Callable[..., AbstractContextManager[LiveServer]]:
    """`with live_server(workers=2) as server:` a real uvicorn on a fresh database."""

    class _Server(AbstractContextManager[LiveServer]):
        def __init__(self, **options: object) -> None:
            self.options = options

        def __enter__(self) -> LiveServer:
            self._url = database_url(db_kind, tmp_path)
            url = self._url.__enter__()
            self._server = LiveServer(url, log_path=tmp_path / "server.log", **self.options)
            return self._server.__enter__()

        def __exit__(self, *exc: object) -> None:
            self._server.__exit__(*exc)
            self._url.__exit__(*exc)

    return _Server


# The secret and key the shipped clients (smoke, curl, Postman) are run with against a server:
# random per run, so no length or placeholder rule of the service can refuse them.
CLIENT_WEBHOOK_SECRET = f"whtest-{secrets.token_hex(16)}"
# A Stripe endpoint's signing secret is `whsec_` and 32 characters, used as written.
CLIENT_STRIPE_WEBHOOK_SECRET = f"whsec_{secrets.token_hex(16)}"
CLIENT_API_KEY = f"key-{secrets.token_hex(16)}"
CLIENT_EVENT_RECEIVER_URL = "http://127.0.0.1:9/events"


@pytest.fixture(scope="module")
def client_servers(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[[str], LiveServer]]:
    """`client_servers(kind)`: the module's live server on that engine, started when a test
    first asks, as a deployment runs it: webhook secret and named API keys set.

    One per module: the shipped clients create their products under SKUs unique to each run,
    so they run one after another against one server, as they do against a deployment.
    `server.env` carries WEBHOOK_SECRET, STRIPE_WEBHOOK_SECRET, API_KEY and EVENT_RECEIVER_URL
    for the client.
    """
    env = {
        "WEBHOOK_SECRET": CLIENT_WEBHOOK_SECRET,
        "STRIPE_WEBHOOK_SECRET": CLIENT_STRIPE_WEBHOOK_SECRET,
        # A named admin key among keys of other roles, as a deployment with roles writes it;
        # the clients send the admin key in API_KEY.
        "API_KEYS": f"clients:admin:{CLIENT_API_KEY},shop:storefront:{CLIENT_API_KEY}-shop",
        "API_KEY": CLIENT_API_KEY,
        # The clients subscribe a loopback URL where nothing listens (deliveries fail, harmless)
        # and delete the subscription again.
        "EVENT_ALLOW_PRIVATE_URLS": "true",
        "EVENT_RECEIVER_URL": CLIENT_EVENT_RECEIVER_URL,
    }
    servers: dict[str, LiveServer] = {}
    with ExitStack() as stack:

        def server(kind: str) -> LiveServer:
            if kind not in servers:
                tmp = tmp_path_factory.mktemp(f"client-server-{kind}")
                url = stack.enter_context(database_url(kind, tmp))
                live = LiveServer(url, env=env, log_path=tmp / "server.log")
                servers[kind] = stack.enter_context(live)
            return servers[kind]

        yield server


@pytest.fixture
def client_server(db_kind: str, client_servers: Callable[[str], LiveServer]) -> LiveServer:
    """The module's client server (`client_servers`) on this test's engine."""
    return client_servers(db_kind)
