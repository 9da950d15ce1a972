from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.api.harness import LiveServer, make_service
from tests.pages.harness import Site, chromium_path, launch_args


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/pages/" in str(item.fspath):
            item.add_marker(pytest.mark.pages)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium, headless, through Playwright (one per test file)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=chromium_path(), headless=True,
                                              args=launch_args())
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    """The embedded service on a fresh folder, served on a free port, with a token per role."""
    service = make_service(tmp_path / "data")
    with LiveServer(service.app) as server:
        yield Site(service, server)


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser context (no cookies) and page, a laptop's viewport; every script error
    (uncaught, or logged with console.error) is collected in ``page.errors`` (an HTTP error the
    page answered on purpose, such as a 401, is not)."""
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="vi-VN")
    tab = context.new_page()
    tab.errors = []
    tab.on("pageerror", lambda error: tab.errors.append(str(error)))
    tab.on("console", lambda message: message.type == "error"
           and not message.text.startswith("Failed to load resource")
           and tab.errors.append(message.text))
    tab.set_default_timeout(15_000)
    try:
        yield tab
    finally:
        context.close()
