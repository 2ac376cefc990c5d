"""A stateful fake of the GitHub REST API, just the endpoints our PR adapter calls.

Speaks what PyGithub expects: ``url``/``html_url`` fields point back at the fake, error
bodies look like GitHub's (``{"message": "Bad credentials", "documentation_url": ...}``),
``get_pulls(head=...)`` ignores a head without ``owner:`` as GitHub does, a duplicate PR
is a 422 and a stale blob sha a 409. ``FakeGitHub(enterprise=True)`` serves under
``/api/v3`` like GitHub Enterprise Server.
"""

from __future__ import annotations

import base64
import time
from typing import Any
from urllib.parse import unquote

from kaizen_cli.fake_git.server import FakeGitHost, GitRepo, Reply, Request, b64, blob_sha

DOCS = "https://docs.github.com/rest"


def _error(status: int, message: str, **extra: Any) -> Reply:
    return Reply(status, {"message": message, "documentation_url": DOCS, "status": str(status), **extra})


def _validation(message: str, **error: Any) -> Reply:
    return _error(
        422,
        "Validation Failed",
        errors=[{"resource": "PullRequest", "code": "custom", "message": message, **error}],
    )


class FakeGitHub(FakeGitHost):
    """In-memory GitHub: repos, branches, file contents, refs and pull requests."""

    def __init__(self, *, enterprise: bool = False) -> None:
        super().__init__("/api/v3" if enterprise else "")

    @property
    def url(self) -> str:
        """The ``base_url`` to give PyGithub."""
        return self.api

    # --- failure injection ----------------------------------------------------------------

    def rate_limit_next(self, *, retry_after: int | None = None, reset_in: int = 60, times: int = 1) -> None:
        """Primary rate limit (403, X-RateLimit-Remaining: 0); with ``retry_after``, a secondary one (429)."""
        if retry_after is not None:
            message = (
                "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."
            )
            body = {"message": message, "documentation_url": DOCS}
            self.fail_next(429, body, {"Retry-After": str(retry_after)}, times=times)
            return
        headers = {
            "X-RateLimit-Limit": "5000",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Used": "5000",
            "X-RateLimit-Reset": str(int(time.time()) + reset_in),
            "X-RateLimit-Resource": "core",
        }
        self.fail_next(
            403,
            {"message": "API rate limit exceeded for user ID 1.", "documentation_url": DOCS},
            headers,
            times=times,
        )

    # --- routing -------------------------------------------------------------------------

    def handle(self, request: Request) -> Reply:
        auth = request.headers.get("Authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() not in ("token", "bearer") or token not in self.valid_tokens:
            return _error(401, "Bad credentials")
        parts = request.path.split("/")  # "", "repos", owner, name, *rest
        if len(parts) < 4 or parts[1] != "repos":
            return self.not_found(request.method, request.path)
        full_name = f"{parts[2]}/{parts[3]}"
        git = self.repos.get(full_name)
        if git is None:
            return _error(404, "Not Found")
        writes = request.method in ("POST", "PUT", "PATCH", "DELETE")
        if writes and self.valid_tokens[token] != "write":
            return _error(403, "Resource not accessible by personal access token")
        return self._route(request, git, parts[4:])

    def _route(self, request: Request, git: GitRepo, rest: list[str]) -> Reply:
        method, head = request.method, rest[0] if rest else ""
        tail = unquote("/".join(rest[1:]))
        if method == "GET" and not rest:
            return Reply(200, self._repo_json(git))
        if head == "pulls" and not tail:
            return (
                self._list_pulls(git, request.query)
                if method == "GET"
                else self._create_pull(git, request.body)
            )
        if head == "pulls" and method == "GET" and tail.isdigit():
            pull = next((p for p in git.pulls if p["number"] == int(tail)), None)
            return Reply(200, pull) if pull else _error(404, "Not Found")
        if head == "branches" and method == "GET":
            return self._branch(git, tail)
        if head == "contents" and method == "GET":
            return self._get_contents(git, tail, request.query.get("ref"))
        if head == "contents" and method == "PUT":
            return self._put_contents(git, tail, request.body)
        if head == "git" and tail == "refs" and method == "POST":
            return self._create_ref(git, request.body)
        return self.not_found(method, request.path)

    # --- endpoints -----------------------------------------------------------------------

    def _repo_json(self, git: GitRepo) -> dict[str, Any]:
        owner, name = git.full_name.split("/")
        return {
            "id": abs(hash(git.full_name)) % 10**8,
            "node_id": "R_fake",
            "name": name,
            "full_name": git.full_name,
            "private": True,
            "default_branch": git.default_branch,
            "owner": {"login": owner, "id": 1, "type": "Organization", "url": f"{self.api}/users/{owner}"},
            "html_url": f"{self.root}/{git.full_name}",
            "url": f"{self.api}/repos/{git.full_name}",
        }

    def _branch(self, git: GitRepo, branch: str) -> Reply:
        sha = git.branches.get(branch)
        if sha is None:
            return _error(404, "Branch not found")
        base = f"{self.api}/repos/{git.full_name}"
        return Reply(
            200,
            {
                "name": branch,
                "protected": git.is_protected(branch),
                "commit": {"sha": sha, "url": f"{base}/commits/{sha}"},
                "_links": {"self": f"{base}/branches/{branch}", "html": f"{self.root}/{git.full_name}"},
            },
        )

    def _content_json(self, git: GitRepo, path: str, content: str, ref: str) -> dict[str, Any]:
        encoded = b64(content)
        sha = blob_sha(content)
        return {
            "type": "file",
            "encoding": "base64",
            "size": len(content.encode()),
            "name": path.rsplit("/", 1)[-1],
            "path": path,
            "sha": sha,
            # GitHub wraps base64 at 60 characters; PyGithub must cope with the newlines.
            "content": "\n".join(encoded[i : i + 60] for i in range(0, len(encoded), 60)) + "\n",
            "url": f"{self.api}/repos/{git.full_name}/contents/{path}?ref={ref}",
            "git_url": f"{self.api}/repos/{git.full_name}/git/blobs/{sha}",
            "html_url": f"{self.root}/{git.full_name}/blob/{ref}/{path}",
            "download_url": f"{self.root}/raw/{git.full_name}/{ref}/{path}",
        }

    def _get_contents(self, git: GitRepo, path: str, ref: str | None) -> Reply:
        commit = git.resolve(ref)
        if commit is None:
            return _error(404, f"No commit found for the ref {ref}")
        if path not in commit.tree:
            return _error(404, "Not Found")
        return Reply(200, self._content_json(git, path, commit.tree[path], ref or git.default_branch))

    def _put_contents(self, git: GitRepo, path: str, body: dict[str, Any]) -> Reply:
        branch = body.get("branch") or git.default_branch
        if branch not in git.branches:
            return _error(404, f"Branch {branch} not found")
        if git.is_protected(branch):
            return _error(
                409, "Repository rule violations found\n\nChanges must be made through a pull request.\n\n"
            )
        head = git.commits[git.branches[branch]]
        current = head.tree.get(path)
        if current is not None and body.get("sha") != blob_sha(current):
            return _error(409, f"is at {blob_sha(current)} but expected {body.get('sha')}")
        if current is None and body.get("sha"):
            return _error(422, 'Invalid request.\n\n"sha" wasn\'t supplied.')
        content = base64.b64decode(body["content"]).decode()
        sha = git.commit(head.sha, {**head.tree, path: content}, body["message"])
        git.branches[branch] = sha
        commit = {
            "sha": sha,
            "message": body["message"],
            "url": f"{self.api}/repos/{git.full_name}/git/commits/{sha}",
            "html_url": f"{self.root}/{git.full_name}/commit/{sha}",
            "parents": [{"sha": head.sha}],
        }
        return Reply(
            201 if current is None else 200,
            {"content": self._content_json(git, path, content, branch), "commit": commit},
        )

    def _create_ref(self, git: GitRepo, body: dict[str, Any]) -> Reply:
        ref, sha = body.get("ref", ""), body.get("sha", "")
        if not ref.startswith("refs/heads/") or ref.count("/") < 2:
            return _error(422, f"Reference name must start with 'refs/heads/': {ref}")
        branch = ref.removeprefix("refs/heads/")
        if branch in git.branches:
            return _error(422, "Reference already exists")
        if sha not in git.commits:
            return _error(422, "Object does not exist")
        if git.is_protected(branch):
            return _error(
                422,
                "Repository rule violations found\n\nCannot create ref due to creations being "
                "restricted.\n\n",
            )
        git.branches[branch] = sha
        return Reply(
            201,
            {
                "ref": ref,
                "node_id": "REF_fake",
                "url": f"{self.api}/repos/{git.full_name}/git/{ref}",
                "object": {
                    "type": "commit",
                    "sha": sha,
                    "url": f"{self.api}/repos/{git.full_name}/git/commits/{sha}",
                },
            },
        )

    def _list_pulls(self, git: GitRepo, query: dict[str, str]) -> Reply:
        state = query.get("state", "open")
        pulls = [p for p in git.pulls if state == "all" or p["state"] == state]
        # Like GitHub: a head filter without the "owner:" prefix is silently ignored.
        if ":" in query.get("head", ""):
            pulls = [p for p in pulls if p["head"]["label"] == query["head"]]
        if "base" in query:
            pulls = [p for p in pulls if p["base"]["ref"] == query["base"]]
        return Reply(200, pulls)

    def _create_pull(self, git: GitRepo, body: dict[str, Any]) -> Reply:
        if self.refuse_pulls:
            return _error(500, "Server Error")
        owner = git.full_name.split("/")[0]
        head, base = body.get("head", "").split(":")[-1], body.get("base", "")
        for field, branch in (("head", head), ("base", base)):
            if branch not in git.branches:
                return _error(
                    422,
                    "Validation Failed",
                    errors=[{"resource": "PullRequest", "field": field, "code": "invalid"}],
                )
        if any(
            p["state"] == "open" and p["head"]["ref"] == head and p["base"]["ref"] == base for p in git.pulls
        ):
            return _validation(f"A pull request already exists for {owner}:{head}.")
        if git.resolve(head).tree == git.resolve(base).tree:  # type: ignore[union-attr]
            return _validation(f"No commits between {base} and {head}")
        number = len(git.pulls) + 1
        pull = {
            "id": 1000 + number,
            "number": number,
            "state": "open",
            "title": body.get("title", ""),
            "body": body.get("body"),
            "draft": False,
            "merged": False,
            "user": {"login": "kaizen-bot", "id": 2},
            "url": f"{self.api}/repos/{git.full_name}/pulls/{number}",
            "html_url": f"{self.root}/{git.full_name}/pull/{number}",
            "head": {"ref": head, "label": f"{owner}:{head}", "sha": git.branches[head]},
            "base": {"ref": base, "label": f"{owner}:{base}", "sha": git.branches[base]},
        }
        git.pulls.append(pull)
        return Reply(201, pull)
