"""open_pull_request on GitHub: real PyGithub against a fake GitHub REST API on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.git_host_contract import BRANCH, NEW_PROMPT, REPO, GitHostContract, seed
from tests.fakes.github import FakeGitHub

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


class TestGitHub(GitHostContract):
    provider = "github"
    list_pulls_path = "/pulls"

    @pytest.fixture
    def host(self) -> Iterator[FakeGitHub]:
        fake = FakeGitHub()
        seed(fake.start())
        yield fake
        fake.stop()

    def test_enterprise_base_url_with_api_v3_prefix_works(self) -> None:
        fake = FakeGitHub(enterprise=True)
        seed(fake.start())
        try:
            assert fake.url.endswith("/api/v3")
            result = self.publish(self.request(fake, "yaml"))
            assert result.url == f"{fake.root}/{REPO}/pull/1"
            assert all(path.startswith("/api/v3/") for _, path in fake.requests)
        finally:
            fake.stop()

    def test_enterprise_url_without_api_v3_gets_a_hint(self) -> None:
        fake = FakeGitHub(enterprise=True)
        seed(fake.start())
        try:
            error = self.failure(self.request(fake, base_url=fake.root))
            assert "not found" in error.reason
            assert "base_url is https://host/api/v3" in error.reason
        finally:
            fake.stop()

    def test_open_pr_from_another_branch_is_not_mistaken_for_ours(self, host: FakeGitHub) -> None:
        # The fake, like GitHub, ignores a head filter without "owner:"; only a prefixed one narrows the list.
        other = self.publish(self.request(host, branch="kaizen/other-task/99999999"))

        ours = self.publish(self.request(host))

        assert (other.number, ours.number, ours.reused) == (1, 2, False)

    def test_primary_rate_limit_waits_until_the_reset_time(self, host: FakeGitHub) -> None:
        host.rate_limit_next(reset_in=30)
        sleeps: list[float] = []

        self.publish(self.request(host), sleeps)

        assert len(sleeps) == 1
        assert 29 <= sleeps[0] <= 32

    def test_stale_blob_sha_conflict_is_retried_and_rereads_the_file(self, host: FakeGitHub) -> None:
        host.fail_next(409, {"message": "is at 1111 but expected 2222"}, method="PUT")
        sleeps: list[float] = []

        result = self.publish(self.request(host), sleeps)

        assert sleeps == [0.5]
        assert not result.reused
        assert host.commit_count(REPO, BRANCH) == 2

    def test_pr_carries_title_and_body(self, host: FakeGitHub) -> None:
        self.publish(self.request(host, "text"))

        [pull] = host.pulls(REPO)
        assert pull["title"] == "kaizen: improve summarize-ticket prompt (0.62 → 0.78)"
        assert pull["body"].endswith("<!-- kaizen-job: 1b2c3d4e -->\n")
        assert pull["head"]["label"] == f"acme:{BRANCH}"
        assert host.file_at(REPO, BRANCH, "prompts/summarize.txt") == NEW_PROMPT + "\n"
