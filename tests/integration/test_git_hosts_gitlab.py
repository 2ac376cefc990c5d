"""open_pull_request on GitLab: real python-gitlab against a fake GitLab REST API on 127.0.0.1."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.fakes.git_host_contract import BRANCH, REPO, GitHostContract, seed
from tests.fakes.gitlab import FakeGitLab

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


class TestGitLab(GitHostContract):
    provider = "gitlab"
    list_pulls_path = "/merge_requests"

    @pytest.fixture
    def host(self) -> Iterator[FakeGitLab]:
        fake = FakeGitLab()
        seed(fake.start())
        yield fake
        fake.stop()

    def test_self_hosted_url_with_a_path_prefix_works(self) -> None:
        fake = FakeGitLab(path_prefix="/gitlab")
        seed(fake.start())
        try:
            result = self.publish(self.request(fake, "python"))
            assert result.url == f"{fake.root}/gitlab/{REPO}/-/merge_requests/1"
            assert all(path.startswith("/gitlab/api/v4/") for _, path in fake.requests)
        finally:
            fake.stop()

    def test_branch_and_commit_are_created_in_one_call(self, host: FakeGitLab) -> None:
        self.publish(self.request(host))

        assert host.count("POST", "/repository/commits") == 1
        assert host.commit_count(REPO, BRANCH) == 2

    def test_python_gitlab_does_not_sleep_through_a_429_itself(self, host: FakeGitLab) -> None:
        host.rate_limit_next(retry_after=5)
        sleeps: list[float] = []

        started = time.monotonic()
        self.publish(self.request(host), sleeps)

        assert sleeps == [5.0]  # our injected sleep, not the library's time.sleep
        assert time.monotonic() - started < 4

    def test_file_changed_meanwhile_is_retried(self, host: FakeGitLab) -> None:
        message = "The file has changed since you started editing it: config/prompts.json"
        host.fail_next(400, {"message": message}, method="POST", path_contains="/repository/commits")
        sleeps: list[float] = []

        result = self.publish(self.request(host), sleeps)

        assert sleeps == [0.5]
        assert not result.reused

    def test_mr_carries_title_description_and_cleanup(self, host: FakeGitLab) -> None:
        self.publish(self.request(host, "text"))

        [mr] = host.pulls(REPO)
        assert mr["title"] == "kaizen: improve summarize-ticket prompt (0.62 → 0.78)"
        assert mr["description"].endswith("<!-- kaizen-job: 1b2c3d4e -->\n")
        assert (mr["source_branch"], mr["target_branch"]) == (BRANCH, "main")
        assert mr["force_remove_source_branch"] is True
