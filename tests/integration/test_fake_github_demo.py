"""``kaizen dev fake-github``: the fake a newcomer runs shows the pull requests Kaizen opens."""

from __future__ import annotations

import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer

from kaizen_cli.fake_git.demo import DemoGitHub, parse_file
from kaizen_cli.fake_git.server import GitRepo
from services.pr_publisher.git_hosts import PrRequest, open_pull_request
from shared.git_policy import origin_of

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]
TOKEN = "fake-demo-token"


@pytest.fixture
def demo() -> Iterator[tuple[DemoGitHub, list[dict[str, Any]]]]:
    seen: list[dict[str, Any]] = []

    def record(git: GitRepo, pull: dict[str, Any]) -> None:
        seen.append(pull)

    fake = DemoGitHub(on_pull=record)
    fake.add_token(TOKEN, "write")
    fake.add_repo("demo/app", {"prompts/sentiment.txt": "Classify this review.\n\n{text}\n"})
    fake.start()
    yield fake, seen
    fake.stop()


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


def test_a_pull_request_opened_by_the_publisher_is_announced_listed_and_shown(
    demo: tuple[DemoGitHub, list[dict[str, Any]]],
) -> None:
    fake, seen = demo
    assert "no pull requests yet" in get(fake.root + "/")
    request = PrRequest(
        provider="github",
        base_url=fake.url,
        repo="demo/app",
        base_branch=None,
        token=TOKEN,
        prompt_path="prompts/sentiment.txt",
        prompt_format="text",
        prompt_locator=None,
        branch="kaizen/sentiment/1b2c3d4e",
        title="kaizen: improve sentiment prompt (0.50 → 0.70)",
        body="Scores: 0.50 → 0.70",
        new_prompt="Is this review positive or negative?\n\n{text}",
        commit_message="kaizen: update prompts/sentiment.txt",
        job_id="1b2c3d4e",
    )

    result = open_pull_request(request, allowed=(origin_of(fake.root)[0],), timeout=5)

    assert [p["html_url"] for p in seen] == [result.url]
    assert f"#1 [open] kaizen: improve sentiment prompt (0.50 → 0.70)  {result.url}" in get(fake.root + "/")
    page = get(result.url)
    assert "Scores: 0.50 → 0.70" in page
    assert "-Classify this review.\n" in page and "+Is this review positive or negative?\n" in page


def test_files_are_given_inline_or_from_a_local_file(tmp_path: Path) -> None:
    local = tmp_path / "p.txt"
    local.write_text("From a file.")

    assert parse_file("prompts/a.txt=Hello {text}") == ("prompts/a.txt", "Hello {text}\n")
    assert parse_file(f"prompts/b.txt=@{local}") == ("prompts/b.txt", "From a file.\n")
    with pytest.raises(typer.BadParameter):
        parse_file("no-equals-sign")


def test_the_command_prints_how_to_use_it_and_serves_the_repository() -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kaizen_cli.main",
            "dev",
            "fake-github",
            "--port",
            "0",
            "--token",
            "t0k",
            "--file",
            "prompts/s.txt=Hi {text}",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(6)]
    finally:
        process.terminate()
        process.wait(10)
    text = "".join(lines)
    assert "token:       t0k" in text
    assert "KAIZEN_GIT_HOSTS=http://127.0.0.1:" in text
    assert "demo/app (branch main: prompts/s.txt)" in text
