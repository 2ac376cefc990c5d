"""``/docs`` and ``/redoc`` render the API's operations with no request leaving the machine."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from tests.e2e.browser.conftest import only_local
from tests.support.live import live_system

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


def test_docs_and_redoc_render_the_operations_with_the_network_limited_to_the_api(
    kafka_bootstrap: str, tmp_path: Path, browser: Browser, shots: Path
) -> None:
    with live_system(kafka_bootstrap, tmp_path, services=("projector", "api")) as live:
        page = browser.new_page()
        refused = only_local(page, live.api_url)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))

        page.goto(f"{live.api_url}/docs")
        expect(page.locator(".opblock-summary-path").first).to_be_visible(timeout=30_000)
        expect(page.get_by_text("List optimization jobs")).to_be_visible()
        assert page.locator(".opblock").count() > 20
        page.screenshot(path=shots / "docs.png", full_page=True)

        page.goto(f"{live.api_url}/redoc")
        heading = page.get_by_role("heading", name="List optimization jobs")
        expect(heading).to_be_visible(timeout=30_000)
        page.screenshot(path=shots / "redoc.png")
        page.close()
    assert refused == [], f"requests left the machine: {refused}"
    assert errors == [], errors
