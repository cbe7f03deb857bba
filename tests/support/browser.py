"""Browser fixtures: Debian's headless Chromium driven by Playwright.

Registered as a pytest plugin from ``tests/conftest.py``. The browser is the
system's ``/usr/bin/chromium`` (never a downloaded one); when it or Playwright
is missing the browser tests fail, loudly, rather than skip.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page

CHROMIUM = Path(os.environ.get("PUSH_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Every wait in a browser test is bounded by this (milliseconds).
WAIT_MS = 10_000
# Set to a folder (e.g. docs/images) to save screenshots of the example pages.
SCREENSHOTS = os.environ.get("PUSH_SCREENSHOTS")


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """One headless Chromium for the whole session."""
    if not CHROMIUM.exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: apt-get install chromium", pytrace=False)
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        pytest.fail("playwright is not installed: pip install -e '.[dev]'", pytrace=False)
    expect.set_options(timeout=WAIT_MS)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def new_context(browser: Browser) -> Iterator[Any]:
    """A factory of browser contexts, each with its own storage and
    connections (its pages are tabs of one browser profile), all closed
    after the test; an error in any of their pages fails the test."""
    contexts = []
    errors: list[str] = []

    def open_context() -> BrowserContext:
        context = browser.new_context(viewport={"width": 860, "height": 460})
        context.set_default_timeout(WAIT_MS)
        context.on("page", lambda page: page.on("pageerror", lambda e: errors.append(str(e))))
        contexts.append(context)
        return context

    yield open_context
    for context in contexts:
        context.close()
    assert not errors, f"JavaScript errors in the page: {errors}"


@pytest.fixture
def new_page(new_context: Any) -> Any:
    """A factory of pages, each in a fresh context (own storage, own connections)."""

    def open_page() -> Page:
        page: Page = new_context().new_page()
        return page

    return open_page


@pytest.fixture
def page(new_page: Any) -> Page:
    """One fresh page."""
    page: Page = new_page()
    return page


def wait_for(page: Page, expression: str, arg: Any = None, timeout: float = WAIT_MS) -> Any:
    """Wait (bounded) until ``expression`` is truthy in the page; return its value."""
    return page.wait_for_function(expression, arg=arg, timeout=timeout).json_value()


def screenshot(page: Page, name: str) -> None:
    """Save ``name``.png into ``$PUSH_SCREENSHOTS`` when that is set, cut to
    64 colours (a quarter of the size) because they are checked in; this
    needs Pillow, which only whoever regenerates them must install."""
    if not SCREENSHOTS:
        return
    from PIL import Image

    folder = Path(SCREENSHOTS)
    folder.mkdir(parents=True, exist_ok=True)
    image = Image.open(io.BytesIO(page.screenshot())).convert("RGB")
    image.quantize(colors=64).save(folder / f"{name}.png", optimize=True)
