"""What the fake Git hosts share: a threaded HTTP server on 127.0.0.1 and a tiny git store.

Used by the test suite (``tests/fakes/``) and by ``kaizen dev fake-github``, which lets a
newcomer watch Kaizen open a pull request without a real GitHub account.

A fake subclasses :class:`FakeGitHost` and implements ``handle(request) -> Reply``.
Requests outside the fake's API prefix, or to routes it does not know, get a 404 that
names the method and path, so a library calling an endpoint we did not implement fails
loudly instead of quietly.
"""

from __future__ import annotations

import base64
import fnmatch
import functools
import hashlib
import itertools
import json
import threading
from collections import deque
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qsl, urlsplit


@dataclass
class Reply:
    """An HTTP answer: a JSON-serialisable body, or ``str`` for a plain-text one."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)

    def encode(self) -> tuple[bytes, str]:
        if isinstance(self.body, str):
            return self.body.encode(), "text/plain; charset=utf-8"
        return json.dumps(self.body).encode(), "application/json; charset=utf-8"


@dataclass(frozen=True)
class Request:
    """A parsed request; ``path`` is relative to the API prefix and still percent-encoded."""

    method: str
    path: str
    query: dict[str, str]
    headers: Message
    body: Any


@dataclass(frozen=True)
class _Failure:
    reply: Reply
    method: str | None
    path_contains: str | None

    def matches(self, method: str, path: str) -> bool:
        return self.method in (None, method) and (self.path_contains is None or self.path_contains in path)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        reply = self.server.fake.dispatch(self.command, self.path, self.headers, raw)
        payload, content_type = reply.encode()
        self.send_response(reply.status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean; FakeServer.requests records every request instead


#: Origins of the fakes started and not yet stopped in this process (see :func:`git_hosts`).
_RUNNING: set[str] = set()


def git_hosts() -> str:
    """``KAIZEN_GIT_HOSTS`` for a test: the default hosts plus each running fake, by exact origin.

    The fakes listen on plain http on 127.0.0.1, which the default allowlist refuses; tests
    list them explicitly, as an operator would, instead of weakening the default.
    """
    from shared.git_policy import DEFAULT_GIT_HOSTS

    return ",".join([DEFAULT_GIT_HOSTS, *sorted(_RUNNING)])


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeServer


class FakeServer:
    """Start/stop, failure injection and a log of requests; subclasses implement ``handle``."""

    def __init__(self, api_prefix: str) -> None:
        self.api_prefix = api_prefix.rstrip("/")
        self.requests: list[tuple[str, str]] = []
        self._failures: deque[_Failure] = deque()
        self._lock = threading.RLock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self, port: int = 0) -> Self:
        """Listen on 127.0.0.1:``port`` (0: any free port) in a background thread."""
        self._server = _Server(("127.0.0.1", port), _Handler)
        self._server.fake = self
        # A short poll interval keeps stop() (and so every test's teardown) fast.
        serve = functools.partial(self._server.serve_forever, poll_interval=0.01)
        self._thread = threading.Thread(target=serve, name=type(self).__name__, daemon=True)
        self._thread.start()
        _RUNNING.add(self.root)
        return self

    def stop(self) -> None:
        if self._server is not None:
            _RUNNING.discard(self.root)
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    @property
    def root(self) -> str:
        """``http://127.0.0.1:<port>``, the web address of the fake host."""
        assert self._server is not None, "start() the fake first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def api(self) -> str:
        return self.root + self.api_prefix

    def fail_next(
        self,
        status: int,
        body: Any = None,
        headers: dict[str, str] | None = None,
        *,
        times: int = 1,
        method: str | None = None,
        path_contains: str | None = None,
    ) -> None:
        """Answer the next ``times`` matching requests with this reply instead of serving them."""
        with self._lock:
            for _ in range(times):
                self._failures.append(
                    _Failure(Reply(status, body, dict(headers or {})), method, path_contains)
                )

    def count(self, method: str | None = None, path_contains: str = "") -> int:
        """How many requests (of ``method``, with ``path_contains`` in the path) reached the fake."""
        with self._lock:
            return sum(1 for m, p in self.requests if method in (None, m) and path_contains in p)

    def dispatch(self, method: str, raw_path: str, headers: Message, raw_body: bytes) -> Reply:
        split = urlsplit(raw_path)
        with self._lock:  # one request at a time: the fakes' state needs no finer locking
            self.requests.append((method, split.path))
            failure = next((f for f in self._failures if f.matches(method, split.path)), None)
            if failure is not None:
                self._failures.remove(failure)
                return failure.reply
            if not split.path.startswith(self.api_prefix + "/"):
                return self.not_found(method, split.path)
            try:
                body = json.loads(raw_body) if raw_body else None
            except ValueError:
                return Reply(400, {"message": "Problems parsing JSON"})
            path = split.path[len(self.api_prefix) :]
            return self.handle(Request(method, path, dict(parse_qsl(split.query)), headers, body))

    def handle(self, request: Request) -> Reply:
        raise NotImplementedError

    def not_found(self, method: str, path: str) -> Reply:
        return Reply(404, {"message": f"fake {type(self).__name__} has no route for {method} {path}"})


# --- a tiny git store ----------------------------------------------------------------------


def blob_sha(content: str) -> str:
    """The git blob id of ``content``, as both hosts report it."""
    data = content.encode()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()  # noqa: S324 - git's own hash


def b64(content: str) -> str:
    return base64.b64encode(content.encode()).decode()


@dataclass
class Commit:
    sha: str
    tree: dict[str, str]
    parent: str | None
    message: str


_counter = itertools.count(1)


@dataclass
class GitRepo:
    """Branches pointing at commits; each commit holds the whole (tiny) tree."""

    full_name: str
    default_branch: str
    protected: list[str]
    branches: dict[str, str] = field(default_factory=dict)
    commits: dict[str, Commit] = field(default_factory=dict)
    pulls: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def create(
        cls, full_name: str, files: dict[str, str], default_branch: str, protected: list[str]
    ) -> GitRepo:
        repo = cls(full_name, default_branch, list(protected))
        repo.branches[default_branch] = repo.commit(None, dict(files), "Initial commit")
        return repo

    def commit(self, parent: str | None, tree: dict[str, str], message: str) -> str:
        seed = f"{parent}{message}{json.dumps(tree, sort_keys=True)}{next(_counter)}"
        sha = hashlib.sha1(seed.encode()).hexdigest()  # noqa: S324 - an id, not security
        self.commits[sha] = Commit(sha, tree, parent, message)
        return sha

    def resolve(self, ref: str | None) -> Commit | None:
        """A branch name or commit sha (the default branch when None) → its commit."""
        ref = ref or self.default_branch
        return self.commits.get(self.branches.get(ref, ref))

    def is_protected(self, branch: str) -> bool:
        return any(fnmatch.fnmatchcase(branch, pattern) for pattern in self.protected)

    def history(self, ref: str | None) -> list[Commit]:
        commit = self.resolve(ref)
        out = []
        while commit is not None:
            out.append(commit)
            commit = self.commits.get(commit.parent) if commit.parent else None
        return out

    def last_commit_touching(self, ref: str | None, path: str) -> str | None:
        commits = self.history(ref)
        for current, older in zip(commits, [*commits[1:], None], strict=True):
            if older is None or older.tree.get(path) != current.tree.get(path):
                return current.sha
        return None


class FakeGitHost(FakeServer):
    """Repos, tokens and the setup/inspection helpers both fakes offer to tests."""

    def __init__(self, api_prefix: str) -> None:
        super().__init__(api_prefix)
        self.repos: dict[str, GitRepo] = {}
        self.valid_tokens: dict[str, str] = {}
        #: Answer PR/MR creation with a 500, as if the service died right before it.
        self.refuse_pulls = False

    @property
    def url(self) -> str:
        """The base URL to configure the client library with."""
        raise NotImplementedError

    def rate_limit_next(self, *, retry_after: int | None = None, times: int = 1) -> None:
        """Answer the next ``times`` requests as the host does when rate limited."""
        raise NotImplementedError

    def add_token(self, token: str, permission: str = "write") -> None:
        """Accept ``token`` with ``read`` or ``write`` permission on every repo."""
        self.valid_tokens[token] = permission

    def add_repo(
        self,
        full_name: str,
        files: dict[str, str],
        default_branch: str = "main",
        protected: list[str] | None = None,
    ) -> None:
        """A repo with one commit holding ``files``; ``protected`` are branch names or fnmatch patterns."""
        with self._lock:
            self.repos[full_name] = GitRepo.create(full_name, files, default_branch, protected or [])

    def pulls(self, repo: str) -> list[dict[str, Any]]:
        """The repo's pull/merge requests, as the API returns them."""
        with self._lock:
            return [dict(p) for p in self.repos[repo].pulls]

    def file_at(self, repo: str, branch: str, path: str) -> str | None:
        with self._lock:
            commit = self.repos[repo].resolve(branch)
            return commit.tree.get(path) if commit else None

    def branches(self, repo: str) -> dict[str, str]:
        """Branch name → head commit sha."""
        with self._lock:
            return dict(self.repos[repo].branches)

    def commit_count(self, repo: str, branch: str) -> int:
        with self._lock:
            return len(self.repos[repo].history(branch))

    def create_branch(self, repo: str, branch: str, from_branch: str) -> None:
        with self._lock:
            git = self.repos[repo]
            git.branches[branch] = git.branches[from_branch]

    def commit_file(self, repo: str, branch: str, path: str, content: str) -> None:
        """Commit to an existing branch, as someone else would."""
        with self._lock:
            git = self.repos[repo]
            head = git.commits[git.branches[branch]]
            git.branches[branch] = git.commit(head.sha, {**head.tree, path: content}, f"Update {path}")
