"""A real browser for the e2e tests: Debian's headless Chromium driven by Playwright (PyPI).

Playwright's own browser download is never used (``playwright install`` cannot work
here): ``scripts/system-deps.sh`` installs Debian's ``chromium`` and the tests launch
that executable. Screenshots go to ``test-output/browser/<test>/`` (gitignored), or
under ``KAIZEN_TEST_OUTPUT`` when set.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, Playwright, sync_playwright

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
AXE = Path(__file__).parent / "vendor" / "axe.min.js"
OUTPUT = Path(os.environ.get("KAIZEN_TEST_OUTPUT", Path(__file__).parents[3] / "test-output")) / "browser"


# Module scope, not session: Playwright's sync API keeps an event loop running in this
# thread while it is open, and every asyncio test that ran after it failed with "Cannot run
# the event loop while another loop is running". Closed after each module, it leaves none.
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), "Debian's chromium is missing: run make install (scripts/system-deps.sh)"
    chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
    yield chromium
    chromium.close()


@pytest.fixture
def shots(request: pytest.FixtureRequest) -> Path:
    """This test's output directory for screenshots, emptied first."""
    folder = OUTPUT / re.sub(r"[^\w.-]+", "_", request.node.name)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


AXE_PATH = "/__browser_tests__/axe.min.js"


def only_local(page: Page, origin: str) -> list[str]:
    """Abort every request that does not go to ``origin``; returns the list of those aborted.

    axe-core is served to the page as if from ``origin`` (the API's Content-Security-Policy
    admits scripts from the API only, and the tests check the page under that policy).
    """
    refused: list[str] = []

    def route(r: Any) -> None:
        url = r.request.url
        if url == origin + AXE_PATH:
            r.fulfill(path=AXE, content_type="text/javascript")
        elif url.startswith(origin) or url.startswith("data:"):
            r.continue_()
        else:
            refused.append(url)
            r.abort()

    page.route("**/*", route)
    return refused


def policy_violations(page: Page) -> list[str]:
    """Every Content-Security-Policy violation the page reports from now on."""
    found: list[str] = []
    page.on("console", lambda m: found.append(m.text) if "Content Security Policy" in m.text else None)
    return found


def serious_violations(page: Page) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the page as it is now."""
    origin = page.evaluate("location.origin")
    page.add_script_tag(url=origin + AXE_PATH)
    found: list[dict[str, Any]] = page.evaluate(
        """async () => (await axe.run(document, {resultTypes: ['violations']})).violations
             .filter(v => v.impact === 'serious' || v.impact === 'critical')
             .map(v => ({id: v.id, impact: v.impact, help: v.help,
                         nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 5)}))"""
    )
    return found
