"""Open the pull request (GitHub) or merge request (GitLab) that changes a task's prompt file,
and read the prompt that file holds today.

The PR publisher's only side effects live here. Sync code: the service calls
:func:`open_pull_request` and :func:`read_prompt_file` in a worker thread.

Exactly-once friendly: every attempt is idempotent. It first looks for an open PR from the
job's branch (reuse it), then for the branch itself — a crash may have left it behind,
with or without our commit — and creates only what is missing. That makes it safe to
retry a whole attempt, which is how transient failures (network errors, 5xx, rate limits)
are handled: bounded retries with exponential backoff, honouring Retry-After. Failures
end as :class:`PrError` with a reason a person can act on; the token never appears in a
reason or a log line, and a host's own words reach users redacted and cut short.

The token goes only to origins in the operator's allowlist (``KAIZEN_GIT_HOSTS``): checked
before the first request, and for GitLab on every request, because requests keeps
python-gitlab's ``PRIVATE-TOKEN`` header when it follows a redirect to another host.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar
from urllib.parse import urlsplit

import gitlab
import requests
from github import Auth, Github, GithubException, UnknownObjectException
from github.Repository import Repository
from gitlab.v4.objects import Project
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from services.pr_publisher.prompt_files import PromptFileError, PromptFormat, read_prompt, replace_prompt
from shared.git_policy import (
    DEFAULT_GIT_HOSTS,
    PROVIDER_URLS,
    Origin,
    for_users,
    parse_allowlist,
    redact,
    refusal,
    target_url,
)

logger = logging.getLogger(__name__)

GITHUB_API = PROVIDER_URLS["github"]
GITLAB_URL = PROVIDER_URLS["gitlab"]
DEFAULT_ALLOWLIST = parse_allowlist(DEFAULT_GIT_HOSTS)
# A rate limit that resets later than this is not waited out inside one call: the caller
# gets a retryable PrError carrying ``retry_after`` instead of a blocked worker thread.
MAX_RATE_LIMIT_WAIT = 120.0
_backoff = wait_exponential(multiplier=0.5, max=8)
_T = TypeVar("_T", bound="GitTarget")
_R = TypeVar("_R")


@dataclass(frozen=True)
class GitTarget:
    """A task's prompt file on its Git host, and the token to reach it (never shown in reprs)."""

    provider: Literal["github", "gitlab"]
    base_url: str | None
    repo: str
    base_branch: str | None
    token: str = field(repr=False)
    prompt_path: str
    prompt_format: PromptFormat
    prompt_locator: str | None

    @property
    def subject(self) -> str:
        """What log lines name this work by."""
        return f"{self.repo}:{self.prompt_path}"


@dataclass(frozen=True)
class PrRequest(GitTarget):
    """Everything needed to open one job's PR/MR."""

    branch: str
    title: str
    body: str
    new_prompt: str
    commit_message: str
    job_id: str

    @property
    def subject(self) -> str:
        return f"job {self.job_id}"


@dataclass(frozen=True)
class RepoPrompt:
    """The prompt a task's file holds on its base branch.

    ``blob_sha`` is the git blob id of the whole file (the same on GitHub and GitLab): it names
    the file version the prompt was read from.
    """

    prompt: str
    branch: str
    blob_sha: str


@dataclass(frozen=True)
class PrResult:
    """The PR/MR that now holds the change; ``reused`` when it was already open."""

    url: str
    number: int
    reused: bool


class PrError(Exception):
    """The PR/MR could not be opened.

    ``reason`` is a sentence a person can act on (never containing the token);
    ``retryable`` says whether trying again later may succeed without changing the task;
    ``retry_after`` (seconds) is set when the host said how long to wait.
    """

    def __init__(self, reason: str, *, retryable: bool, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.retry_after = retry_after


def open_pull_request(
    req: PrRequest,
    *,
    allowed: tuple[Origin, ...] = DEFAULT_ALLOWLIST,
    timeout: float = 10,
    max_attempts: int = 4,
    sleep: Callable[[float], None] = time.sleep,
) -> PrResult:
    """Open (or find the already open) PR/MR for ``req``; raise :class:`PrError` when that fails.

    ``allowed`` is the operator's allowlist: no request carrying the token goes elsewhere.
    """
    return _with_retries(req, _publish, allowed, timeout, max_attempts, sleep)


def read_prompt_file(
    target: GitTarget,
    *,
    allowed: tuple[Origin, ...] = DEFAULT_ALLOWLIST,
    timeout: float = 10,
    max_attempts: int = 4,
    sleep: Callable[[float], None] = time.sleep,
) -> RepoPrompt:
    """The prompt in ``target``'s file on its base branch (the default branch when unset).

    Read-only: it never writes to the host. Same allowlist, retries and reasons as
    :func:`open_pull_request`; a missing file, branch or locator key is a non-retryable
    :class:`PrError` naming what to fix.
    """
    return _with_retries(target, _fetch, allowed, timeout, max_attempts, sleep)


def _with_retries(
    req: _T,
    work: Callable[[_Host, _T], _R],
    allowed: tuple[Origin, ...],
    timeout: float,
    max_attempts: int,
    sleep: Callable[[float], None],
) -> _R:
    retrying = Retrying(
        stop=stop_after_attempt(max_attempts),
        wait=_wait,
        retry=retry_if_exception(_worth_retrying),
        sleep=sleep,
        before_sleep=_log_retry(req),
        reraise=True,
    )
    try:
        result: _R = retrying(_attempt, req, work, allowed, timeout)
    except PrError as exc:
        # Reasons quote the host's own messages, which may echo the token and be any length.
        raise PrError(
            for_users(exc.reason, req.token), retryable=exc.retryable, retry_after=exc.retry_after
        ) from exc
    return result


def _attempt(req: _T, work: Callable[[_Host, _T], _R], allowed: tuple[Origin, ...], timeout: float) -> _R:
    if req.provider not in ("github", "gitlab"):
        raise PrError(f"unknown Git provider {req.provider!r}: use github or gitlab", retryable=False)
    if not req.token:
        raise PrError("the task has no Git token: set one to let Kaizen open pull requests", retryable=False)
    target = target_url(req.provider, req.base_url) or ""
    if (reason := refusal(target, allowed)) is not None:
        raise PrError(f"the token was not sent: {reason}", retryable=False)
    host: _Host = _GitHub(req, timeout) if req.provider == "github" else _GitLab(req, allowed, timeout)
    try:
        host.connect()
        return work(host, req)
    finally:
        host.close()


def _fetch(host: _Host, target: GitTarget) -> RepoPrompt:
    base = target.base_branch or host.default_branch()
    base_sha = host.head(base)
    if base_sha is None:
        raise PrError(
            f"base branch {base} not found in {target.repo}: check the task's base branch", retryable=False
        )
    file = host.read(target.prompt_path, base_sha, base)
    return RepoPrompt(_prompt_of(file, target, base), base, blob_sha(file.content))


def blob_sha(content: str) -> str:
    """The git blob id of ``content``, as both hosts compute it."""
    data = content.encode()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()  # noqa: S324 - git's own id


def _publish(host: _Host, req: PrRequest) -> PrResult:
    base = req.base_branch or host.default_branch()
    if (existing := host.find_open_pr(req.branch, base)) is not None:
        logger.info(
            "job %s: PR/MR %s is already open from %s; reusing it", req.job_id, existing.url, req.branch
        )
        return existing
    base_sha = host.head(base)
    if base_sha is None:
        raise PrError(
            f"base branch {base} not found in {req.repo}: check the task's base branch", retryable=False
        )
    base_file = host.read(req.prompt_path, base_sha, base)
    if _prompt_of(base_file, req, base) == req.new_prompt:
        raise PrError(
            f"prompt file {req.prompt_path} on {base} already contains this prompt; nothing to change",
            retryable=False,
        )
    branch_sha = host.head(req.branch)
    if branch_sha is None:
        host.create_branch_with_commit(req.branch, base, base_sha, base_file, _replaced(base_file, req, base))
    else:
        branch_file = host.read(req.prompt_path, branch_sha, req.branch)
        # An earlier attempt may have committed already; committing again would add an empty change.
        if _prompt_of(branch_file, req, req.branch) != req.new_prompt:
            host.commit(req.branch, branch_file, _replaced(branch_file, req, req.branch))
    result = host.open_pr(req.branch, base)
    logger.info(
        "job %s: %s PR/MR %s from %s",
        req.job_id,
        "reused" if result.reused else "opened",
        result.url,
        req.branch,
    )
    return result


@dataclass(frozen=True)
class _File:
    """A prompt file at some commit; ``version`` is what the host needs to update it safely."""

    content: str
    version: str


class _Host(Protocol):
    def connect(self) -> None: ...
    def default_branch(self) -> str: ...
    def find_open_pr(self, branch: str, base: str) -> PrResult | None: ...
    def head(self, branch: str) -> str | None: ...
    def read(self, path: str, sha: str, branch: str) -> _File: ...
    def create_branch_with_commit(
        self, branch: str, base: str, base_sha: str, old: _File, content: str
    ) -> None: ...
    def commit(self, branch: str, old: _File, content: str) -> None: ...
    def open_pr(self, branch: str, base: str) -> PrResult: ...
    def close(self) -> None: ...


def _prompt_of(file: _File, req: GitTarget, branch: str) -> str:
    try:
        return read_prompt(file.content, req.prompt_format, req.prompt_locator, filename=req.prompt_path)
    except PromptFileError as exc:
        raise PrError(f"{exc} (branch {branch} of {req.repo})", retryable=False) from exc


def _replaced(file: _File, req: PrRequest, branch: str) -> str:
    try:
        return replace_prompt(
            file.content, req.prompt_format, req.prompt_locator, req.new_prompt, filename=req.prompt_path
        )
    except PromptFileError as exc:
        raise PrError(f"{exc} (branch {branch} of {req.repo})", retryable=False) from exc


def _writing(req: GitTarget) -> PrRequest:
    """The PR request behind a write; reads carry a plain :class:`GitTarget` and never write."""
    if not isinstance(req, PrRequest):
        raise TypeError(f"{req.subject}: a write needs a PrRequest")
    return req


def _decode(data: bytes, req: GitTarget) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise PrError(
            f"prompt file {req.prompt_path} in {req.repo} is not UTF-8 text", retryable=False
        ) from None


# --- GitHub (PyGithub) -------------------------------------------------------------------


class _GitHub:
    def __init__(self, req: GitTarget, timeout: float) -> None:
        self.req = req
        self.api = (req.base_url or GITHUB_API).rstrip("/")
        # No library retries or throttling: retries happen around whole attempts, above.
        self.client = Github(
            base_url=self.api,
            auth=Auth.Token(req.token),
            timeout=max(1, round(timeout)),
            retry=None,
            seconds_between_requests=0,
            seconds_between_writes=0,
        )

    def connect(self) -> None:
        hint = "" if self.api == GITHUB_API else " (for GitHub Enterprise, base_url is https://host/api/v3)"
        with self._errors(
            "read the repository",
            f"repository {self.req.repo} not found at {self.api}, or the token cannot see it (404): "
            f"check the task's repository{hint}",
        ):
            self.repo: Repository = self.client.get_repo(self.req.repo)
            self.owner = self.repo.owner.login

    def default_branch(self) -> str:
        return self.repo.default_branch

    def find_open_pr(self, branch: str, base: str) -> PrResult | None:
        with self._errors("list open pull requests"):
            # Without the "owner:" prefix GitHub silently ignores the head filter.
            for pull in self.repo.get_pulls(state="open", head=f"{self.owner}:{branch}", base=base):
                return PrResult(pull.html_url, pull.number, reused=True)
        return None

    def head(self, branch: str) -> str | None:
        with self._errors(f"read branch {branch}"):
            try:
                return self.repo.get_branch(branch).commit.sha
            except UnknownObjectException:
                return None  # the branch does not exist (yet)

    def read(self, path: str, sha: str, branch: str) -> _File:
        with self._errors(
            f"read {path}",
            f"prompt file {path} not found on branch {branch} of {self.req.repo} "
            "(404): check the task's prompt path",
        ):
            found = self.repo.get_contents(path, ref=sha)
        if isinstance(found, list):
            raise PrError(
                f"prompt path {path} in {self.req.repo} is a directory, not a file", retryable=False
            )
        return _File(_decode(found.decoded_content, self.req), found.sha)

    def create_branch_with_commit(
        self, branch: str, base: str, base_sha: str, old: _File, content: str
    ) -> None:
        with self._errors(f"create branch {branch}"):
            self.repo.create_git_ref(ref=f"refs/heads/{branch}", sha=base_sha)
        self.commit(branch, old, content)

    def commit(self, branch: str, old: _File, content: str) -> None:
        with self._errors(f"commit {self.req.prompt_path} to branch {branch}"):
            self.repo.update_file(
                self.req.prompt_path,
                _writing(self.req).commit_message,
                content,
                sha=old.version,
                branch=branch,
            )

    def open_pr(self, branch: str, base: str) -> PrResult:
        try:
            with self._errors("open the pull request"):
                pr = _writing(self.req)
                pull = self.repo.create_pull(base=base, head=branch, title=pr.title, body=pr.body)
        except PrError:
            # Another worker may have opened it between our look-up and now (422 "already exists").
            if (existing := self.find_open_pr(branch, base)) is not None:
                return existing
            raise
        return PrResult(pull.html_url, pull.number, reused=False)

    def close(self) -> None:
        self.client.close()

    @contextmanager
    def _errors(self, doing: str, missing: str | None = None) -> Iterator[None]:
        try:
            yield
        except GithubException as exc:
            headers = {k.lower(): v for k, v in (exc.headers or {}).items()}
            message = _github_message(exc.data)
            limited = exc.status == 429 or (
                exc.status == 403
                and (headers.get("x-ratelimit-remaining") == "0" or "rate limit" in message.lower())
            )
            raise _http_error(
                self.req,
                "GitHub",
                exc.status,
                message,
                doing=doing,
                missing=missing,
                rate_limited=limited,
                retry_after=_retry_after(headers),
            ) from exc
        except requests.RequestException as exc:
            raise _network_error(self.req, self.api, doing, exc) from None
        except RuntimeError as exc:
            # PyGithub raises this for a redirect to another host or scheme, which it never follows.
            raise PrError(
                f"GitHub at {self.api} answered with a redirect Kaizen does not follow: {exc}",
                retryable=False,
            ) from exc


def _github_message(data: Any) -> str:
    if not isinstance(data, dict):
        return str(data or "")
    details = [
        e.get("message") or f"{e.get('field')} {e.get('code')}"
        for e in data.get("errors", [])
        if isinstance(e, dict)
    ]
    return "; ".join([str(data.get("message", "")).strip(), *details]).strip("; ")


# --- GitLab (python-gitlab) --------------------------------------------------------------

# Per call, because python-gitlab otherwise sleeps through 429s by itself, up to 10 times.
_NO_RETRY: dict[str, Any] = {"obey_rate_limit": False, "max_retries": 0, "retry_transient_errors": False}


class _AllowlistedSession(requests.Session):
    """A session that sends nothing outside the allowlist, redirects included."""

    def __init__(self, allowed: tuple[Origin, ...]) -> None:
        super().__init__()
        self.allowed = allowed

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        parts = urlsplit(request.url or "")
        if (reason := refusal(f"{parts.scheme}://{parts.netloc}", self.allowed)) is not None:
            raise PrError(
                f"the Git host redirected Kaizen elsewhere; the token was not sent: {reason}", retryable=False
            )
        return super().send(request, **kwargs)


class _GitLab:
    def __init__(self, req: GitTarget, allowed: tuple[Origin, ...], timeout: float) -> None:
        self.req = req
        self.url = (req.base_url or GITLAB_URL).rstrip("/")
        # python-gitlab's errors carry no headers; a response hook keeps them for Retry-After.
        self.session = _AllowlistedSession(allowed)
        self.last_headers: dict[str, str] = {}
        self.session.hooks["response"].append(self._remember_headers)
        self.client = gitlab.Gitlab(self.url, private_token=req.token, timeout=timeout, session=self.session)

    def connect(self) -> None:
        with self._errors(
            "read the project",
            f"project {self.req.repo} not found at {self.url}, or the token cannot see it (404): "
            "check the task's repository",
        ):
            self.project: Project = self.client.projects.get(self.req.repo, **_NO_RETRY)

    def default_branch(self) -> str:
        return str(self.project.default_branch)

    def find_open_pr(self, branch: str, base: str) -> PrResult | None:
        with self._errors("list open merge requests"):
            found = self.project.mergerequests.list(
                state="opened", source_branch=branch, target_branch=base, get_all=False, **_NO_RETRY
            )
        return PrResult(found[0].web_url, found[0].iid, reused=True) if found else None

    def head(self, branch: str) -> str | None:
        with self._errors(f"read branch {branch}"):
            try:
                return str(self.project.branches.get(branch, **_NO_RETRY).commit["id"])
            except gitlab.exceptions.GitlabGetError as exc:
                if exc.response_code == 404:
                    return None  # the branch does not exist (yet)
                raise

    def read(self, path: str, sha: str, branch: str) -> _File:
        with self._errors(
            f"read {path}",
            f"prompt file {path} not found on branch {branch} of {self.req.repo} "
            "(404): check the task's prompt path",
        ):
            found = self.project.files.get(file_path=path, ref=sha, **_NO_RETRY)
        return _File(_decode(found.decode(), self.req), str(found.last_commit_id))

    def create_branch_with_commit(
        self, branch: str, base: str, base_sha: str, old: _File, content: str
    ) -> None:
        # One call creates the branch and the commit, so no crash leaves an empty branch.
        self._commit({"branch": branch, "start_branch": base}, old, content, f"create branch {branch}")

    def commit(self, branch: str, old: _File, content: str) -> None:
        self._commit({"branch": branch}, old, content, f"commit {self.req.prompt_path} to branch {branch}")

    def _commit(self, target: dict[str, str], old: _File, content: str, doing: str) -> None:
        # last_commit_id makes GitLab refuse the update if the file changed since we read it.
        action = {
            "action": "update",
            "file_path": self.req.prompt_path,
            "content": content,
            "last_commit_id": old.version,
        }
        with self._errors(doing):
            self.project.commits.create(
                {**target, "commit_message": _writing(self.req).commit_message, "actions": [action]},
                **_NO_RETRY,
            )

    def open_pr(self, branch: str, base: str) -> PrResult:
        data = {
            "source_branch": branch,
            "target_branch": base,
            "title": _writing(self.req).title,
            "description": _writing(self.req).body,
            "remove_source_branch": True,
        }
        try:
            with self._errors("open the merge request"):
                mr = self.project.mergerequests.create(data, **_NO_RETRY)
        except PrError:
            # Another worker may have opened it between our look-up and now (409).
            if (existing := self.find_open_pr(branch, base)) is not None:
                return existing
            raise
        return PrResult(mr.web_url, mr.iid, reused=False)

    def close(self) -> None:
        self.client.session.close()

    def _remember_headers(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self.last_headers = {k.lower(): v for k, v in response.headers.items()}

    @contextmanager
    def _errors(self, doing: str, missing: str | None = None) -> Iterator[None]:
        try:
            yield
        except gitlab.exceptions.GitlabError as exc:
            status = exc.response_code or 0
            raise _http_error(
                self.req,
                "GitLab",
                status,
                _gitlab_message(exc.error_message),
                doing=doing,
                missing=missing,
                rate_limited=status == 429,
                retry_after=_retry_after(self.last_headers),
            ) from exc
        except requests.RequestException as exc:
            raise _network_error(self.req, self.url, doing, exc) from None


def _gitlab_message(message: Any) -> str:
    if isinstance(message, list):
        return "; ".join(str(m) for m in message)
    if isinstance(message, dict):
        return "; ".join(
            f"{k} {', '.join(map(str, v)) if isinstance(v, list) else v}" for k, v in message.items()
        )
    return str(message).strip()


# --- turning failures into reasons ------------------------------------------------------

# Messages meaning "someone else changed it meanwhile": a fresh attempt re-reads and succeeds.
_RACES = (
    "but expected",
    "does not match",
    "reference already exists",
    "has changed since you started editing",
    "already exists. switch to that branch",
)


def _http_error(
    req: GitTarget,
    host: str,
    status: int,
    message: str,
    *,
    doing: str,
    missing: str | None,
    rate_limited: bool,
    retry_after: float | None,
) -> PrError:
    lowered = message.lower()
    if status == 401:
        return PrError("the Git token was rejected (401): check it is valid and not expired", retryable=False)
    if rate_limited:
        wait = retry_after if retry_after is not None else 60.0
        return PrError(
            f"{host} rate limit reached while trying to {doing}; try again in {wait:.0f} s",
            retryable=True,
            retry_after=wait,
        )
    if "protected" in lowered or "rule violation" in lowered or "not allowed to push" in lowered:
        branch = getattr(req, "branch", "")
        return PrError(
            f"{host} refused to {doing} because branch {branch} is protected in {req.repo} "
            f"({status}: {message}): let the token push to Kaizen's branches (kaizen/*)",
            retryable=False,
        )
    if status == 403:
        return PrError(
            f"the Git token may not {doing} in {req.repo} (403: {message}): it needs write access to "
            "the repository's contents and pull/merge requests",
            retryable=False,
        )
    if status == 404:
        # Hosts also answer 404 to tokens that may read but not write a private repository.
        return PrError(
            missing
            or f"{host} answered 404 to {doing} in {req.repo} ({message}): check the token may write there",
            retryable=False,
        )
    if any(race in lowered for race in _RACES):
        return PrError(
            f"{host} reported a conflicting change while trying to {doing} ({status}: {message})",
            retryable=True,
        )
    if status >= 500:
        return PrError(f"{host} failed to {doing} ({status}); it may be a temporary outage", retryable=True)
    return PrError(f"{host} refused to {doing} ({status}: {message})", retryable=False)


def _network_error(req: GitTarget, url: str, doing: str, exc: requests.RequestException) -> PrError:
    host = urlsplit(url).netloc or url
    kind = "timed out" if isinstance(exc, requests.Timeout) else f"failed ({type(exc).__name__})"
    logger.debug("%s: request to %s %s: %s", req.subject, host, kind, redact(str(exc), req.token))
    return PrError(f"could not reach {host} to {doing}: the connection {kind}", retryable=True)


def _retry_after(headers: dict[str, str]) -> float | None:
    """Seconds to wait, from Retry-After or an epoch X-RateLimit-Reset / RateLimit-Reset header."""
    try:
        if "retry-after" in headers:
            return max(0.0, float(headers["retry-after"]))
        reset = headers.get("x-ratelimit-reset") or headers.get("ratelimit-reset")
        return max(0.0, float(reset) - time.time()) + 1.0 if reset else None
    except ValueError:
        return None


# --- retry policy ------------------------------------------------------------------------


def _worth_retrying(exc: BaseException) -> bool:
    if not isinstance(exc, PrError) or not exc.retryable:
        return False
    return exc.retry_after is None or exc.retry_after <= MAX_RATE_LIMIT_WAIT


def _wait(state: RetryCallState) -> float:
    exc = state.outcome.exception() if state.outcome else None
    if isinstance(exc, PrError) and exc.retry_after is not None:
        return exc.retry_after
    return float(_backoff(state))


def _log_retry(req: GitTarget) -> Callable[[RetryCallState], None]:
    def log(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        logger.warning(
            "%s: attempt %d at the Git host failed: %s; retrying in %.1f s",
            req.subject,
            state.attempt_number,
            redact(str(exc), req.token),
            wait,
        )

    return log
