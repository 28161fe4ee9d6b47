"""A real browser for the dashboard tests: Debian's chromium driven by Playwright (never a downloaded build).

Every page runs offline: requests to anything but the test API are aborted and fail the test, as do
console errors (a CSP violation, a missing asset, a script error).
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from playwright.async_api import Browser, BrowserContext, Page, Route, async_playwright, expect

from tests.support.stack import Stack

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Screenshots of the main pages for the README: AINS_UI_SCREENSHOTS=docs/screenshots pytest tests/e2e/ui
SCREENSHOTS = os.environ.get("AINS_UI_SCREENSHOTS", "")
# Generous waits: in CI these tests share two cores with the Postgres half of the suite.
expect.set_options(timeout=15_000)
NAVIGATION_TIMEOUT_MS = 30_000


def _chromium_installed() -> bool:
    return os.path.exists(CHROMIUM)


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    if not _chromium_installed():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing in CI: .ci/run installs the Debian chromium package")
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium chromium-driver to run the dashboard tests")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


class Session:
    """One signed-in browser context (its own cookies) with the problems its pages ran into."""

    def __init__(self, stack: Stack, context: BrowserContext, page: Page) -> None:
        self.stack = stack
        self.context = context
        self.page = page
        self.problems: list[str] = []

    def url(self, path: str) -> str:
        return self.stack.api_url + path

    async def goto(self, path: str) -> Page:
        await self.page.goto(self.url(path))
        return self.page

    async def sign_in(self, key: str) -> None:
        await self.goto("/ui")
        await self.page.fill("input[name=api_key]", key)
        await self.page.click("button[type=submit]")
        await self.page.wait_for_url(self.url("/ui"))

    async def chart(self, selector: str, expression: str) -> Any:
        """Evaluates `expression` (a function of the Chart.js chart) once the deferred scripts drew that chart."""
        await self.page.wait_for_function(
            "sel => window.Chart !== undefined && Chart.getChart(document.querySelector(sel)) !== undefined",
            arg=selector,
        )
        return await self.page.locator(selector).evaluate(f"c => ({expression})(Chart.getChart(c))")

    async def snap(self, name: str) -> None:
        if SCREENSHOTS:
            os.makedirs(SCREENSHOTS, exist_ok=True)
            await self.page.screenshot(path=os.path.join(SCREENSHOTS, f"{name}.png"), full_page=True)


async def open_session(browser: Browser, stack: Stack) -> Session:
    context = await browser.new_context(viewport={"width": 1360, "height": 900})
    context.set_default_timeout(NAVIGATION_TIMEOUT_MS)
    page = await context.new_page()
    session = Session(stack, context, page)

    async def offline(route: Route) -> None:
        if route.request.url.startswith(stack.api_url):
            await route.continue_()
        else:
            session.problems.append(f"request outside the API: {route.request.url}")
            await route.abort()

    await context.route("**/*", offline)
    page.on("console", lambda m: session.problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: session.problems.append(f"page error: {e}"))
    return session


@pytest.fixture
async def ui(browser: Browser, stack: Stack) -> AsyncIterator[Session]:
    """A fresh browser context on the stack's API; fails the test if a page broke or reached outside."""
    session = await open_session(browser, stack)
    try:
        yield session
    finally:
        await session.context.close()
    # Error pages the test asked for (401, 403, 404, 422) are logged by the browser too; nothing else may be.
    unexpected = [p for p in session.problems if not re.search(r"status of 4\d\d", p)]
    assert not unexpected, unexpected
