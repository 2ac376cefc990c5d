"""A stateful fake of the GitLab REST API (v4), just the endpoints our MR adapter calls.

Speaks what python-gitlab expects: projects addressed by id or URL-encoded path, ``web_url``
fields pointing back at the fake, GitLab's error bodies (``{"message": "401 Unauthorized"}``,
409 ``{"message": ["Another open merge request already exists ..."]}``), and
``repository/commits`` creating a branch and its commit at once. ``FakeGitLab(path_prefix=
"/gitlab")`` serves a self-hosted instance below a path.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import unquote

from tests.fakes._server import FakeGitHost, GitRepo, Reply, Request, b64, blob_sha


def _error(status: int, message: Any) -> Reply:
    return Reply(status, {"message": message})


class FakeGitLab(FakeGitHost):
    """In-memory GitLab: projects, branches, files, commits and merge requests."""

    def __init__(self, *, path_prefix: str = "") -> None:
        self.path_prefix = path_prefix.rstrip("/")
        super().__init__(f"{self.path_prefix}/api/v4")

    @property
    def url(self) -> str:
        """The URL to give ``gitlab.Gitlab`` (it appends ``/api/v4``)."""
        return self.root + self.path_prefix

    # --- failure injection ----------------------------------------------------------------

    def rate_limit_next(self, *, retry_after: int | None = None, times: int = 1) -> None:
        """GitLab's throttle answer: 429, a plain-text body and Retry-After / RateLimit-* headers."""
        retry_after = 30 if retry_after is None else retry_after
        headers = {
            "Retry-After": str(retry_after),
            "RateLimit-Limit": "600",
            "RateLimit-Remaining": "0",
            "RateLimit-Reset": str(int(time.time()) + retry_after),
        }
        self.fail_next(429, "Retry later\n", headers, times=times)

    # --- routing -------------------------------------------------------------------------

    def handle(self, request: Request) -> Reply:
        token = request.headers.get("PRIVATE-TOKEN", "")
        if token not in self.valid_tokens:
            return _error(401, "401 Unauthorized")
        parts = request.path.split("/")  # "", "projects", id, *rest
        if len(parts) < 3 or parts[1] != "projects":
            return self.not_found(request.method, request.path)
        ident = unquote(parts[2])
        names = list(self.repos)  # a project's id is its position, counting from 1
        full_name = (
            (names[int(ident) - 1] if 0 < int(ident) <= len(names) else "") if ident.isdigit() else ident
        )
        git = self.repos.get(full_name)
        if git is None:
            return _error(404, "404 Project Not Found")
        if request.method != "GET" and self.valid_tokens[token] != "write":
            return _error(403, "403 Forbidden")
        return self._route(request, git, parts[3:])

    def _route(self, request: Request, git: GitRepo, rest: list[str]) -> Reply:
        method = request.method
        key = "/".join(rest[:2]) if rest[:1] == ["repository"] else (rest[0] if rest else "")
        arg = unquote("/".join(rest[2:] if rest[:1] == ["repository"] else rest[1:]))
        if method == "GET" and not rest:
            return Reply(200, self._project_json(git))
        if key == "merge_requests" and not arg:
            return (
                self._list_mrs(git, request.query) if method == "GET" else self._create_mr(git, request.body)
            )
        if key == "merge_requests" and method == "GET" and arg.isdigit():
            mr = next((m for m in git.pulls if m["iid"] == int(arg)), None)
            return Reply(200, mr) if mr else _error(404, "404 Not found")
        if key == "repository/branches" and method == "GET" and arg:
            return self._branch(git, arg)
        if key == "repository/files" and method == "GET" and arg:
            return self._file(git, arg, request.query.get("ref"))
        if key == "repository/commits" and method == "POST" and not arg:
            return self._create_commit(git, request.body)
        return self.not_found(method, request.path)

    # --- endpoints -----------------------------------------------------------------------

    def _project_id(self, git: GitRepo) -> int:
        return list(self.repos).index(git.full_name) + 1

    def _project_json(self, git: GitRepo) -> dict[str, Any]:
        namespace, _, name = git.full_name.rpartition("/")
        return {
            "id": self._project_id(git),
            "name": name,
            "path": name,
            "path_with_namespace": git.full_name,
            "default_branch": git.default_branch,
            "visibility": "private",
            "namespace": {"full_path": namespace, "name": namespace.rsplit("/", 1)[-1]},
            "web_url": f"{self.url}/{git.full_name}",
            "_links": {"self": f"{self.api}/projects/{self._project_id(git)}"},
        }

    def _commit_json(self, git: GitRepo, sha: str) -> dict[str, Any]:
        commit = git.commits[sha]
        return {
            "id": sha,
            "short_id": sha[:8],
            "title": commit.message.split("\n")[0],
            "message": commit.message,
            "parent_ids": [commit.parent] if commit.parent else [],
            "web_url": f"{self.url}/{git.full_name}/-/commit/{sha}",
        }

    def _branch(self, git: GitRepo, branch: str) -> Reply:
        sha = git.branches.get(branch)
        if sha is None:
            return _error(404, "404 Branch Not Found")
        return Reply(
            200,
            {
                "name": branch,
                "merged": False,
                "protected": git.is_protected(branch),
                "default": branch == git.default_branch,
                "commit": self._commit_json(git, sha),
                "web_url": f"{self.url}/{git.full_name}/-/tree/{branch}",
            },
        )

    def _file(self, git: GitRepo, path: str, ref: str | None) -> Reply:
        commit = git.resolve(ref) if ref else None
        if commit is None or path not in commit.tree:
            return _error(404, "404 File Not Found" if commit else "404 Commit Not Found")
        content = commit.tree[path]
        return Reply(
            200,
            {
                "file_name": path.rsplit("/", 1)[-1],
                "file_path": path,
                "size": len(content.encode()),
                "encoding": "base64",
                "content": b64(content),
                "ref": ref,
                "blob_id": blob_sha(content),
                "commit_id": commit.sha,
                "last_commit_id": git.last_commit_touching(ref, path),
                "execute_filemode": False,
            },
        )

    def _create_commit(self, git: GitRepo, body: dict[str, Any]) -> Reply:
        branch, start = body.get("branch", ""), body.get("start_branch") or body.get("start_sha")
        if branch in git.branches and start and start != branch:
            return _error(
                400,
                f"A branch called '{branch}' already exists. Switch to that branch in order to make changes",
            )
        if branch not in git.branches and not start:
            return _error(400, "You can only create or edit files when you are on a branch")
        parent = git.resolve(branch if branch in git.branches else start)
        if parent is None:
            return _error(400, "Invalid start branch" if body.get("start_branch") else "Invalid start sha")
        if git.is_protected(branch):
            return _error(403, "You are not allowed to push into this branch")
        tree = dict(parent.tree)
        for action in body.get("actions", []):
            path = action.get("file_path", "")
            if action.get("action") == "update" and path not in tree:
                return _error(400, "A file with this name doesn't exist")
            last = action.get("last_commit_id")
            if last and last != git.last_commit_touching(parent.sha, path):
                return _error(400, f"The file has changed since you started editing it: {path}")
            tree[path] = action.get("content", "")
        sha = git.commit(parent.sha, tree, body.get("commit_message", ""))
        git.branches[branch] = sha
        return Reply(201, self._commit_json(git, sha))

    def _list_mrs(self, git: GitRepo, query: dict[str, str]) -> Reply:
        mrs = [m for m in git.pulls if query.get("state", "all") in ("all", m["state"])]
        for key in ("source_branch", "target_branch"):
            if key in query:
                mrs = [m for m in mrs if m[key] == query[key]]
        headers = {
            "X-Page": "1",
            "X-Per-Page": query.get("per_page", "20"),
            "X-Total": str(len(mrs)),
            "X-Total-Pages": "1",
        }
        return Reply(200, mrs, headers)

    def _create_mr(self, git: GitRepo, body: dict[str, Any]) -> Reply:
        if self.refuse_pulls:
            return _error(500, "500 Internal Server Error")
        source, target = body.get("source_branch", ""), body.get("target_branch", "")
        for branch in (source, target):
            if branch not in git.branches:
                return _error(400, {"source_branch" if branch == source else "target_branch": ["is invalid"]})
        existing = [
            m
            for m in git.pulls
            if m["state"] == "opened" and m["source_branch"] == source and m["target_branch"] == target
        ]
        if existing:
            return _error(
                409,
                [f"Another open merge request already exists for this source branch: !{existing[0]['iid']}"],
            )
        iid = len(git.pulls) + 1
        mr = {
            "id": 5000 + iid,
            "iid": iid,
            "project_id": self._project_id(git),
            "title": body.get("title", ""),
            "description": body.get("description"),
            "state": "opened",
            "source_branch": source,
            "target_branch": target,
            "sha": git.branches[source],
            "draft": False,
            "author": {"username": "kaizen-bot"},
            "force_remove_source_branch": bool(body.get("remove_source_branch")),
            "web_url": f"{self.url}/{git.full_name}/-/merge_requests/{iid}",
        }
        git.pulls.append(mr)
        return Reply(201, mr)
