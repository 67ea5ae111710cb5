"""Swagger UI and ReDoc in a real browser: Debian's headless Chromium, driven by Selenium.

/docs must render every operation of /openapi.json, "Try it out" on POST /products must create
a product (201), /redoc must render, and neither page may send a request anywhere but the
service (the docs work offline, and reading them tells no third party): Chrome's own network log
records every request the page makes, images included. Screenshots land in artifacts/
(git-ignored) for a person to look at.
"""

import json
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.support.databases import database_url
from tests.support.live_server import ROOT, LiveServer

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = ROOT / "artifacts"
WAIT_SECONDS = 30
pytestmark = pytest.mark.live


def _require_browser() -> None:
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.exists()]
    if not missing:
        return
    reason = f"{', '.join(missing)} not installed (run .ci/setup.d/10-chromium.sh)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true and {reason}")
    pytest.skip(reason)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[object]:
    _require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1400,2400",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(flag)
    # Chrome's DevTools network events, read back through the performance log.
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    service = Service(executable_path=str(CHROMEDRIVER), log_output=str(tmp_path / "driver.log"))
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(WAIT_SECONDS)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def docs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One server for the module, on SQLite: the browser tests the docs, not the database, and
    each test creates what it looks for under a SKU of its own."""
    tmp = tmp_path_factory.mktemp("docs")
    with database_url("sqlite", tmp) as url, LiveServer(url, log_path=tmp / "server.log") as server:
        yield server


def _wait(driver: object, condition: Callable[[Any], Any], what: str) -> Any:
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, WAIT_SECONDS).until(condition)
    except TimeoutException:
        _screenshot(driver, f"timeout-{uuid.uuid4().hex[:6]}")
        raise AssertionError(f"timed out after {WAIT_SECONDS}s waiting for {what}") from None


def _screenshot(driver: object, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))  # type: ignore[attr-defined]
    return path


def _requests_sent(driver: object) -> list[str]:
    """Every URL the page asked for since the last call, as Chrome's network log saw it
    (documents, scripts, styles, fonts, images, XHR, workers), except those the browser itself
    refused to send (the page's Content-Security-Policy)."""
    events = [
        json.loads(entry["message"])["message"]
        for entry in driver.get_log("performance")  # type: ignore[attr-defined]
    ]
    sent = {
        e["params"]["requestId"]: e["params"]["request"]["url"]
        for e in events
        if e["method"] == "Network.requestWillBeSent"
    }
    for e in events:
        if e["method"] == "Network.loadingFailed" and e["params"].get("blockedReason"):
            sent.pop(e["params"]["requestId"], None)
    return list(sent.values())


def _sent_elsewhere(driver: object) -> list[str]:
    """Requests that left 127.0.0.1. Only the network schemes leave the browser (not data:,
    blob:, or the chrome:// pages of a fresh profile)."""
    return [
        url
        for url in _requests_sent(driver)
        if urlsplit(url).scheme in ("http", "https", "ws", "wss", "ftp")
        and urlsplit(url).hostname != "127.0.0.1"
    ]


def _operations(base_url: str) -> set[tuple[str, str]]:
    paths = httpx.get(f"{base_url}/openapi.json", timeout=10).json()["paths"]
    return {(method.upper(), path) for path, item in paths.items() for method in item}


def test_swagger_ui_renders_every_operation_and_try_it_out_creates(
    browser: object, docs_server: LiveServer
) -> None:
    from selenium.webdriver.common.by import By

    base = docs_server.base_url
    expected = _operations(base)
    browser.get(f"{base}/docs")  # type: ignore[attr-defined]
    blocks = _wait(
        browser,
        lambda d: (
            (found := d.find_elements(By.CSS_SELECTOR, ".opblock"))
            and len(found) >= len(expected)
            and found
        ),
        "every operation to render",
    )
    shown = {
        (
            b.find_element(By.CSS_SELECTOR, ".opblock-summary-method").text.strip(),
            b.find_element(By.CSS_SELECTOR, ".opblock-summary-path").get_attribute("data-path"),
        )
        for b in blocks
    }  # type: ignore[union-attr]
    assert shown == expected
    title = browser.find_element(By.CSS_SELECTOR, ".title").text  # type: ignore[attr-defined]
    assert "Orders & Inventory API" in title

    sku = f"UI-{uuid.uuid4().hex[:8]}"
    status, body = _try_it_out_create_product(browser, sku)
    _screenshot(browser, "swagger-ui")
    assert status == "201", body
    assert json.loads(body)["sku"] == sku
    listed = httpx.get(f"{base}/products", params={"sku": sku}, timeout=10).json()
    assert listed["total"] == 1
    assert _sent_elsewhere(browser) == []


def _try_it_out_create_product(browser: object, sku: str) -> tuple[str, str]:
    """Open POST /products, press "Try it out", send our body, press "Execute"."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    block = browser.find_element(  # type: ignore[attr-defined]
        By.CSS_SELECTOR, "#operations-products-products-create"
    )
    block.find_element(By.CSS_SELECTOR, ".opblock-summary").click()
    _wait(
        browser,
        lambda _: block.find_elements(By.CSS_SELECTOR, ".try-out__btn"),
        "the Try it out button",
    )[0].click()
    editor = _wait(
        browser,
        lambda _: block.find_elements(By.CSS_SELECTOR, "textarea.body-param__text"),
        "the request body editor",
    )[0]
    editor.send_keys(Keys.CONTROL, "a")
    editor.send_keys(Keys.DELETE)
    editor.send_keys(json.dumps({"sku": sku, "name": "Browser mug", "price": "12.50", "stock": 3}))
    block.find_element(By.CSS_SELECTOR, "button.execute").click()
    status = _wait(
        browser,
        lambda _: block.find_elements(
            By.CSS_SELECTOR, ".live-responses-table .response .response-col_status"
        ),
        "the live response",
    )[0]
    body = block.find_element(
        By.CSS_SELECTOR, ".live-responses-table .response-col_description pre"
    )
    return status.text.strip().split()[0], body.text


def test_redoc_renders_the_api(browser: object, docs_server: LiveServer) -> None:
    from selenium.webdriver.common.by import By

    base = docs_server.base_url
    browser.get(f"{base}/redoc")  # type: ignore[attr-defined]
    _wait(
        browser,
        lambda d: d.find_elements(By.CSS_SELECTOR, "[data-section-id^='tag/']"),
        "ReDoc to render the tags",
    )
    text = browser.find_element(By.TAG_NAME, "body").text  # type: ignore[attr-defined]
    _screenshot(browser, "redoc")
    assert "Orders & Inventory API" in text
    for summary in (
        "Create a product",
        "Place an order",
        "Cancel an order",
        "Liveness: the process is running",
    ):
        assert summary in text, summary
    assert _sent_elsewhere(browser) == []


def test_the_network_log_sees_a_request_that_leaves_the_host(
    browser: object, docs_server: LiveServer
) -> None:
    """The check above can fail: an image from another host is caught. (The other host is
    127.0.0.2, a loopback address: nothing here ever sends beyond the machine.)"""
    browser.get(f"{docs_server.base_url}/healthz")  # type: ignore[attr-defined]
    browser.execute_script(  # type: ignore[attr-defined]
        "const img = new Image(); img.src = 'http://127.0.0.2:9/logo.svg';"
        "document.body.appendChild(img);"
    )
    _wait(browser, lambda d: _sent_elsewhere(d) or None, "the image request to be logged")
