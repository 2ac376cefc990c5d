"""The behaviour :func:`open_pull_request` must show on every Git host, as one test suite.

``tests/integration/test_git_hosts_{github,gitlab}.py`` subclass :class:`GitHostContract`
and provide a ``host`` fixture (a started fake holding :data:`REPO`), so both providers run
exactly the same scenarios (STYLE.md: one contract suite per port).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import pytest

from services.pr_publisher.git_hosts import (
    GitTarget,
    PrError,
    PrRequest,
    PrResult,
    RepoPrompt,
    open_pull_request,
    read_prompt_file,
)
from services.pr_publisher.prompt_files import PromptFormat, read_prompt
from shared.git_policy import DEFAULT_GIT_HOSTS, Origin, origin_of, parse_allowlist
from tests.fakes._server import FakeGitHost, blob_sha

TOKEN = "kaizen-S3cr3t-T0ken-0123456789abcdef"
READ_ONLY_TOKEN = "kaizen-ReadOnly-T0ken-fedcba9876543210"
REPO = "acme/ticket-bot"
BRANCH = "kaizen/summarize-ticket/1b2c3d4e"
NEW_PROMPT = 'Summarize the ticket in "two" lines.\nNever invent facts \\ ever. 😀\n'


@dataclass(frozen=True)
class PromptFile:
    path: str
    content: str
    locator: str | None
    old_literal: str  # the characters a replacement may change; everything around stays


PROMPT_FILES: dict[str, PromptFile] = {
    "text": PromptFile(
        "prompts/summarize.txt", "You summarize support tickets.\n", None, "You summarize support tickets."
    ),
    "json": PromptFile(
        "config/prompts.json",
        '{\n  "version": 2,\n  "prompts": {\n    "summarize": {"system": "OLD", "temperature": 0.2}\n'
        "  }\n}\n",
        "prompts.summarize.system",
        '"OLD"',
    ),
    "yaml": PromptFile(
        "config/prompts.yaml",
        "# owned by the support team\nprompts:\n  summarize:\n    system: OLD\n    model: gpt-4o  # pinned\n",
        "prompts.summarize.system",
        "OLD",
    ),
    "python": PromptFile(
        "app/prompts.py",
        '"""Prompts."""\n\nSYSTEM_PROMPT: str = "OLD"  # edited by Kaizen\nMAX_TOKENS = 300\n',
        "SYSTEM_PROMPT",
        '"OLD"',
    ),
}
REPO_FILES = {"README.md": "# Ticket bot\n", **{f.path: f.content for f in PROMPT_FILES.values()}}


def seed(host: FakeGitHost) -> FakeGitHost:
    """Tokens and the repository every contract test starts from."""
    host.add_token(TOKEN, "write")
    host.add_token(READ_ONLY_TOKEN, "read")
    host.add_repo(REPO, REPO_FILES)
    return host


@contextlib.contextmanager
def started_host(provider: str) -> Iterator[FakeGitHost]:
    """A started, seeded fake of ``provider`` (``github`` | ``gitlab``); ``.provider`` names it."""
    from tests.fakes.github import FakeGitHub
    from tests.fakes.gitlab import FakeGitLab

    fake: FakeGitHost = FakeGitHub() if provider == "github" else FakeGitLab()
    fake.start()
    seed(fake)
    fake.provider = provider  # type: ignore[attr-defined]
    try:
        yield fake
    finally:
        fake.stop()


def allowing(req: GitTarget) -> tuple[Origin, ...]:
    """The default allowlist plus the origin ``req`` targets: an operator listing the fake host."""
    assert req.base_url is not None
    return (*parse_allowlist(DEFAULT_GIT_HOSTS), origin_of(req.base_url)[0])


def pull_url(pull: dict[str, Any]) -> str:
    """A PR's (GitHub) or MR's (GitLab) web address."""
    return str(pull.get("html_url") or pull["web_url"])


class GitHostContract:
    provider: ClassVar[str]
    #: Part of the path of the "list open PRs/MRs" request, for injecting a stale answer.
    list_pulls_path: ClassVar[str]

    @pytest.fixture
    def host(self) -> Iterator[FakeGitHost]:
        raise NotImplementedError  # each provider's module overrides this fixture

    def request(self, host: FakeGitHost, fmt: str = "json", **changes: Any) -> PrRequest:
        prompt_file = PROMPT_FILES[fmt]
        fmt_name: PromptFormat = fmt  # type: ignore[assignment]
        req = PrRequest(
            provider=self.provider,  # type: ignore[arg-type]
            base_url=host.url,
            repo=REPO,
            base_branch=None,
            token=TOKEN,
            prompt_path=prompt_file.path,
            prompt_format=fmt_name,
            prompt_locator=prompt_file.locator,
            branch=BRANCH,
            title="kaizen: improve summarize-ticket prompt (0.62 → 0.78)",
            body="Scores...\n\n<!-- kaizen-job: 1b2c3d4e -->\n",
            new_prompt=NEW_PROMPT,
            commit_message="kaizen: update the summarize-ticket prompt",
            job_id="1b2c3d4e-5f60-4a1b-9c2d-3e4f5a6b7c8d",
        )
        return replace(req, **changes)

    def publish(self, req: PrRequest, sleeps: list[float] | None = None, **kwargs: Any) -> PrResult:
        recorded = sleeps if sleeps is not None else []
        kwargs.setdefault("allowed", allowing(req))
        return open_pull_request(req, timeout=5, sleep=recorded.append, **kwargs)

    def failure(self, req: PrRequest, sleeps: list[float] | None = None, **kwargs: Any) -> PrError:
        with pytest.raises(PrError) as caught:
            self.publish(req, sleeps, **kwargs)
        return caught.value

    # --- the happy path and idempotence -------------------------------------------------

    @pytest.mark.parametrize("fmt", list(PROMPT_FILES))
    def test_pr_changes_only_the_prompt_on_a_new_branch(self, host: FakeGitHost, fmt: str) -> None:
        prompt_file = PROMPT_FILES[fmt]
        result = self.publish(self.request(host, fmt))

        assert (result.number, result.reused) == (1, False)
        assert result.url.startswith(host.root)
        [pull] = host.pulls(REPO)
        assert pull_url(pull) == result.url
        changed = host.file_at(REPO, BRANCH, prompt_file.path)
        assert changed is not None
        assert read_prompt(changed, fmt, prompt_file.locator) == NEW_PROMPT  # type: ignore[arg-type]
        start = prompt_file.content.index(prompt_file.old_literal)
        assert changed.startswith(prompt_file.content[:start])
        assert changed.endswith(prompt_file.content[start + len(prompt_file.old_literal) :])
        assert host.file_at(REPO, "main", prompt_file.path) == prompt_file.content
        for path, content in REPO_FILES.items():
            if path != prompt_file.path:
                assert host.file_at(REPO, BRANCH, path) == content
        assert host.commit_count(REPO, "main") == 1
        assert host.commit_count(REPO, BRANCH) == 2

    def test_second_call_reuses_the_open_pr(self, host: FakeGitHost) -> None:
        first = self.publish(self.request(host))
        second = self.publish(self.request(host))

        assert second == PrResult(first.url, first.number, reused=True)
        assert len(host.pulls(REPO)) == 1
        assert host.commit_count(REPO, BRANCH) == 2

    def test_retry_after_a_crash_opens_one_pr_and_does_not_commit_again(self, host: FakeGitHost) -> None:
        host.refuse_pulls = True
        crashed = self.failure(self.request(host), max_attempts=1)
        assert crashed.retryable
        assert host.pulls(REPO) == []
        head_after_crash = host.branches(REPO)[BRANCH]

        host.refuse_pulls = False
        result = self.publish(self.request(host))

        assert (result.number, result.reused) == (1, False)
        assert len(host.pulls(REPO)) == 1
        assert host.branches(REPO)[BRANCH] == head_after_crash

    def test_branch_left_without_our_commit_gets_it_once(self, host: FakeGitHost) -> None:
        host.create_branch(REPO, BRANCH, "main")  # a crash between creating the branch and committing

        self.publish(self.request(host))

        assert host.commit_count(REPO, BRANCH) == 2
        changed = host.file_at(REPO, BRANCH, PROMPT_FILES["json"].path) or ""
        assert read_prompt(changed, "json", PROMPT_FILES["json"].locator) == NEW_PROMPT
        assert len(host.pulls(REPO)) == 1

    def test_pr_opened_by_someone_else_meanwhile_is_reused(self, host: FakeGitHost) -> None:
        first = self.publish(self.request(host))
        # Our look-up sees no PR (as if it ran just before another worker opened it).
        host.fail_next(200, [], method="GET", path_contains=self.list_pulls_path)

        again = self.publish(self.request(host))

        assert again == PrResult(first.url, first.number, reused=True)
        assert len(host.pulls(REPO)) == 1

    def test_concurrent_calls_open_exactly_one_pr(self, host: FakeGitHost) -> None:
        start = threading.Barrier(4)

        def publish() -> PrResult:
            start.wait()
            return open_pull_request(
                self.request(host),
                allowed=allowing(self.request(host)),
                timeout=5,
                max_attempts=6,
                sleep=lambda _: None,
            )

        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(lambda _: publish(), range(4)))

        assert len(host.pulls(REPO)) == 1
        assert {r.url for r in results} == {pull_url(host.pulls(REPO)[0])}
        assert sum(not r.reused for r in results) == 1
        assert host.commit_count(REPO, BRANCH) == 2

    def test_explicit_base_branch_is_the_pr_target(self, host: FakeGitHost) -> None:
        host.create_branch(REPO, "develop", "main")

        self.publish(self.request(host, base_branch="develop"))

        [pull] = host.pulls(REPO)
        assert pull.get("base", {}).get("ref", pull.get("target_branch")) == "develop"

    def test_prompt_already_in_the_file_is_a_clear_non_retryable_error(self, host: FakeGitHost) -> None:
        error = self.failure(self.request(host, "text", new_prompt="You summarize support tickets."))

        assert not error.retryable
        assert "prompts/summarize.txt on main already contains this prompt" in error.reason
        assert BRANCH not in host.branches(REPO)

    # --- errors a person must fix ---------------------------------------------------------

    def test_rejected_token_is_reported_and_not_retried(self, host: FakeGitHost) -> None:
        sleeps: list[float] = []
        error = self.failure(self.request(host, token="expired-token-123456"), sleeps)

        assert error.reason == "the Git token was rejected (401): check it is valid and not expired"
        assert not error.retryable
        assert sleeps == []
        assert host.count() == 1

    def test_missing_token_is_reported_without_calling_the_host(self, host: FakeGitHost) -> None:
        error = self.failure(self.request(host, token=""))

        assert not error.retryable
        assert "no Git token" in error.reason
        assert host.count() == 0

    def test_read_only_token_cannot_open_a_pr(self, host: FakeGitHost) -> None:
        error = self.failure(self.request(host, token=READ_ONLY_TOKEN))

        assert not error.retryable
        assert "the Git token may not" in error.reason
        assert "403" in error.reason
        assert host.pulls(REPO) == []

    def test_missing_repository_is_named(self, host: FakeGitHost) -> None:
        error = self.failure(self.request(host, repo="acme/no-such-repo"))

        assert not error.retryable
        assert "acme/no-such-repo not found" in error.reason

    def test_missing_prompt_file_is_named(self, host: FakeGitHost) -> None:
        error = self.failure(self.request(host, prompt_path="config/missing.json"))

        assert not error.retryable
        assert "prompt file config/missing.json not found on branch main" in error.reason

    def test_missing_base_branch_is_named(self, host: FakeGitHost) -> None:
        error = self.failure(self.request(host, base_branch="release"))

        assert not error.retryable
        assert "base branch release not found" in error.reason

    def test_wrong_locator_says_which_keys_exist(self, host: FakeGitHost) -> None:
        error = self.failure(self.request(host, prompt_locator="prompts.classify.system"))

        assert not error.retryable
        assert "key path prompts.classify.system not found in config/prompts.json" in error.reason
        assert "available keys at prompts: summarize" in error.reason

    def test_protected_branch_is_explained(self, host: FakeGitHost) -> None:
        host.add_repo(REPO, REPO_FILES, protected=["main", "kaizen/*"])

        error = self.failure(self.request(host))

        assert not error.retryable
        assert f"branch {BRANCH} is protected in {REPO}" in error.reason
        assert host.pulls(REPO) == []

    # --- transient trouble -----------------------------------------------------------------

    def test_rate_limit_waits_for_retry_after_then_succeeds(self, host: FakeGitHost) -> None:
        host.rate_limit_next(retry_after=7)
        sleeps: list[float] = []

        result = self.publish(self.request(host), sleeps)

        assert sleeps == [7.0]
        assert not result.reused

    def test_rate_limit_beyond_the_bound_is_returned_not_slept(self, host: FakeGitHost) -> None:
        host.rate_limit_next(retry_after=3600)
        sleeps: list[float] = []

        error = self.failure(self.request(host), sleeps)

        assert error.retryable
        assert error.retry_after == 3600
        assert "rate limit" in error.reason
        assert sleeps == []

    def test_transient_502_is_retried_with_backoff(self, host: FakeGitHost) -> None:
        host.fail_next(502, "<html><body>502 Bad Gateway</body></html>")
        sleeps: list[float] = []

        result = self.publish(self.request(host), sleeps)

        assert sleeps == [0.5]
        assert (result.number, result.reused) == (1, False)

    def test_persistent_503_ends_retryable_after_max_attempts(self, host: FakeGitHost) -> None:
        host.fail_next(503, {"message": "Service Unavailable"}, times=100)
        sleeps: list[float] = []

        error = self.failure(self.request(host), sleeps, max_attempts=3)

        assert error.retryable
        assert "503" in error.reason
        assert sleeps == [0.5, 1.0]
        assert host.count() == 3

    def test_unreachable_host_is_retryable(self, host: FakeGitHost) -> None:
        req = self.request(host)
        host.stop()
        sleeps: list[float] = []

        error = self.failure(req, sleeps, max_attempts=2)

        assert error.retryable
        assert "could not reach 127.0.0.1" in error.reason
        assert len(sleeps) == 1

    # --- secrets -------------------------------------------------------------------------------

    def test_token_never_appears_in_errors_or_logs(
        self, host: FakeGitHost, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.DEBUG)
        errors = []
        host.fail_next(503, {"message": "Service Unavailable"}, times=2)
        self.publish(self.request(host, "yaml"))
        for req in (self.request(host, "text"), self.request(host, repo="acme/missing")):
            host.fail_next(502, {"message": "Bad Gateway"})
            errors.append(self.failure(req, max_attempts=1))
        errors.append(self.failure(self.request(host, token=READ_ONLY_TOKEN, branch="kaizen/x/2")))
        reprs = [repr(self.request(host, token=secret)) for secret in (TOKEN, READ_ONLY_TOKEN)]
        unreachable = self.request(host)
        host.stop()
        errors.append(self.failure(unreachable, max_attempts=2))

        assert caplog.records, "expected the libraries and the adapter to log"
        for secret in (TOKEN, READ_ONLY_TOKEN):
            assert secret not in caplog.text
            assert all(secret not in text for text in reprs)
            for error in errors:
                assert secret not in f"{error} {error.reason} {error!r} {error.__cause__}"

    # --- where the token may go ---------------------------------------------------------

    def test_a_host_outside_the_allowlist_gets_no_request_and_a_clear_reason(self, host: FakeGitHost) -> None:
        error = self.failure(self.request(host), allowed=parse_allowlist(DEFAULT_GIT_HOSTS))

        assert not error.retryable
        assert "KAIZEN_GIT_HOSTS" in error.reason and "https://api.github.com" in error.reason
        assert host.count() == 0

    def test_a_redirect_to_another_host_never_carries_the_token_there(self, host: FakeGitHost) -> None:
        with started_host(self.provider) as elsewhere:
            # Another host name, so PyGithub sees a cross-host redirect too (it compares names only).
            moved = elsewhere.url.replace("127.0.0.1", "localhost") + "/moved"  # type: ignore[attr-defined]
            host.fail_next(301, {"message": "Moved"}, {"Location": moved}, method="GET")

            error = self.failure(self.request(host))

            assert elsewhere.count() == 0
        assert not error.retryable
        assert TOKEN not in error.reason

    def test_host_error_text_reaches_the_reason_redacted_and_cut_short(self, host: FakeGitHost) -> None:
        host.fail_next(403, {"message": f"token {TOKEN} refused; " + "details " * 2000})

        error = self.failure(self.request(host))

        assert TOKEN not in error.reason and "***" in error.reason
        assert len(error.reason) <= 500

    # --- reading the prompt file (what a task's import does) -----------------------------

    def target(self, host: FakeGitHost, fmt: str = "json", **changes: Any) -> GitTarget:
        req = self.request(host, fmt)
        fields = {name: getattr(req, name) for name in GitTarget.__dataclass_fields__}
        return GitTarget(**{**fields, **changes})

    def read(self, target: GitTarget, sleeps: list[float] | None = None, **kwargs: Any) -> RepoPrompt:
        recorded = sleeps if sleeps is not None else []
        kwargs.setdefault("allowed", allowing(target))
        return read_prompt_file(target, timeout=5, sleep=recorded.append, **kwargs)

    def read_failure(self, target: GitTarget, sleeps: list[float] | None = None, **kwargs: Any) -> PrError:
        with pytest.raises(PrError) as caught:
            self.read(target, sleeps, **kwargs)
        return caught.value

    @pytest.mark.parametrize("fmt", list(PROMPT_FILES))
    def test_reading_returns_the_prompt_of_the_base_branch_and_writes_nothing(
        self, host: FakeGitHost, fmt: str
    ) -> None:
        prompt_file = PROMPT_FILES[fmt]

        found = self.read(self.target(host, fmt))

        expected = read_prompt(prompt_file.content, fmt, prompt_file.locator)  # type: ignore[arg-type]
        assert found == RepoPrompt(expected, "main", blob_sha(prompt_file.content))
        assert host.count() > 0
        assert host.count() == host.count("GET")
        assert set(host.branches(REPO)) == {"main"}

    def test_reading_an_explicit_base_branch_sees_that_branchs_file(self, host: FakeGitHost) -> None:
        host.create_branch(REPO, "develop", "main")
        host.commit_file(REPO, "develop", "prompts/summarize.txt", "You summarize tickets briefly.\n")

        found = self.read(self.target(host, "text", base_branch="develop"))

        assert (found.prompt, found.branch) == ("You summarize tickets briefly.", "develop")
        assert found.blob_sha == blob_sha("You summarize tickets briefly.\n")

    def test_reading_a_missing_file_names_it_and_is_not_retried(self, host: FakeGitHost) -> None:
        sleeps: list[float] = []
        error = self.read_failure(self.target(host, prompt_path="prompts/missing.txt"), sleeps)

        assert not error.retryable
        assert "prompt file prompts/missing.txt not found on branch main" in error.reason
        assert sleeps == []

    def test_reading_with_a_wrong_locator_says_which_keys_exist(self, host: FakeGitHost) -> None:
        error = self.read_failure(self.target(host, prompt_locator="prompts.classify.system"))

        assert not error.retryable
        assert "available keys at prompts: summarize" in error.reason

    def test_reading_retries_a_transient_502(self, host: FakeGitHost) -> None:
        host.fail_next(502, "<html><body>502 Bad Gateway</body></html>")
        sleeps: list[float] = []

        found = self.read(self.target(host, "yaml"), sleeps)

        assert sleeps == [0.5]
        assert found.prompt == "OLD"

    def test_reading_with_a_rejected_token_is_reported_once(self, host: FakeGitHost) -> None:
        sleeps: list[float] = []
        error = self.read_failure(self.target(host, token="expired-token-123456"), sleeps)

        assert error.reason == "the Git token was rejected (401): check it is valid and not expired"
        assert (sleeps, host.count()) == ([], 1)

    def test_reading_from_a_host_outside_the_allowlist_sends_nothing(self, host: FakeGitHost) -> None:
        error = self.read_failure(self.target(host), allowed=parse_allowlist(DEFAULT_GIT_HOSTS))

        assert not error.retryable
        assert "KAIZEN_GIT_HOSTS" in error.reason
        assert host.count() == 0
