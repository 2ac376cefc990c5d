"""``kaizen dev fake-github``: a local GitHub stand-in to try Kaizen's pull requests with.

It is the test suite's fake GitHub (in memory, on 127.0.0.1), seeded with one repository
and one write token, plus two read-only pages for people: ``GET /`` lists the pull
requests it received and ``GET /<owner>/<repo>/pull/<n>`` (the ``pr_url`` Kaizen reports)
shows one with its body and the change to the prompt file. Each new pull request is
also printed to the terminal. Nothing is stored: stopping it forgets everything.
"""

from __future__ import annotations

import difflib
import re
import secrets
import threading
from collections.abc import Callable
from email.message import Message
from pathlib import Path
from typing import Annotated, Any

import typer

from kaizen_cli.fake_git.github import FakeGitHub
from kaizen_cli.fake_git.server import GitRepo, Reply, Request

dev_app = typer.Typer(help="Tools for trying Kaizen out on one machine.", no_args_is_help=True)

_PULL_PAGE = re.compile(r"/(?P<repo>[^/]+/[^/]+)/pull/(?P<number>[0-9]+)")


class DemoGitHub(FakeGitHub):
    """The fake GitHub with pages for people and a callback for each pull request opened."""

    def __init__(self, on_pull: Callable[[GitRepo, dict[str, Any]], None] | None = None) -> None:
        super().__init__()
        self.on_pull = on_pull

    def dispatch(self, method: str, raw_path: str, headers: Message, raw_body: bytes) -> Reply:
        path = raw_path.split("?", 1)[0]
        if method == "GET" and path in ("/", ""):
            with self._lock:
                return Reply(200, self.listing())
        if method == "GET" and (match := _PULL_PAGE.fullmatch(path)) and match["repo"] in self.repos:
            with self._lock:
                return self.pull_page(self.repos[match["repo"]], int(match["number"]))
        return super().dispatch(method, raw_path, headers, raw_body)

    def handle(self, request: Request) -> Reply:
        reply = super().handle(request)
        if (
            self.on_pull is not None
            and request.method == "POST"
            and request.path.endswith("/pulls")
            and reply.status == 201
        ):
            name = "/".join(request.path.split("/")[2:4])
            self.on_pull(self.repos[name], reply.body)
        return reply

    def listing(self) -> str:
        lines = [f"Fake GitHub at {self.root} (API base URL {self.url})", ""]
        for git in self.repos.values():
            lines.append(f"{git.full_name}: files {', '.join(sorted(git.resolve(None).tree))}")  # type: ignore[union-attr]
            if not git.pulls:
                lines.append("  no pull requests yet")
            for pull in git.pulls:
                lines.append(f"  #{pull['number']} [{pull['state']}] {pull['title']}  {pull['html_url']}")
        return "\n".join(lines) + "\n"

    def pull_page(self, git: GitRepo, number: int) -> Reply:
        pull = next((p for p in git.pulls if p["number"] == number), None)
        if pull is None:
            return Reply(404, f"{git.full_name} has no pull request #{number}\n")
        head = (
            f"#{number} {pull['title']}\n{pull['head']['ref']} -> {pull['base']['ref']}  ({pull['state']})\n"
        )
        return Reply(200, f"{head}\n{pull.get('body') or ''}\n\n{changes(git, pull)}")


def changes(git: GitRepo, pull: dict[str, Any]) -> str:
    """The unified diff between a pull request's base and head branches."""
    base, head = git.resolve(pull["base"]["ref"]), git.resolve(pull["head"]["ref"])
    if base is None or head is None:
        return "(a branch of this pull request no longer exists)\n"
    parts = []
    for path in sorted(set(base.tree) | set(head.tree)):
        old, new = base.tree.get(path, ""), head.tree.get(path, "")
        if old != new:
            diff = difflib.unified_diff(
                old.splitlines(keepends=True), new.splitlines(keepends=True), f"a/{path}", f"b/{path}"
            )
            parts.append("".join(line if line.endswith("\n") else line + "\n" for line in diff))
    return "".join(parts) or "(no changes)\n"


def parse_file(spec: str) -> tuple[str, str]:
    """``PATH=TEXT`` or ``PATH=@LOCAL_FILE`` → (path in the repository, content ending in a newline)."""
    path, sep, value = spec.partition("=")
    if not sep or not path.strip():
        raise typer.BadParameter(f"{spec!r}: write PATH=TEXT or PATH=@LOCAL_FILE")
    content = Path(value[1:]).read_text(encoding="utf-8") if value.startswith("@") else value
    return path.strip(), content if content.endswith("\n") else content + "\n"


def _announce(git: GitRepo, pull: dict[str, Any]) -> None:
    typer.echo(f"\n=== pull request #{pull['number']} opened on {git.full_name}: {pull['title']}")
    typer.echo(f"    {pull['html_url']}  ({pull['head']['ref']} -> {pull['base']['ref']})")
    typer.echo(changes(git, pull))


@dev_app.command("fake-github")
def fake_github(
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port on 127.0.0.1 (0: any free one).")] = 9300,
    repo: Annotated[str, typer.Option(help="The repository to create, owner/name.")] = "demo/app",
    file: Annotated[
        list[str] | None,
        typer.Option("--file", help="A file of the repository's main branch: PATH=TEXT or PATH=@LOCAL_FILE."),
    ] = None,
    token: Annotated[str | None, typer.Option(help="The token to accept (default: a random one).")] = None,
) -> None:
    """Run a fake GitHub on 127.0.0.1 until Ctrl-C, printing each pull request it receives."""
    if repo.count("/") != 1 or not all(repo.split("/")):
        raise typer.BadParameter(f"{repo!r}: write owner/name", param_hint="--repo")
    files = dict(parse_file(spec) for spec in file or [])
    accepted = token or f"fake-{secrets.token_hex(12)}"
    fake = DemoGitHub(on_pull=_announce)
    fake.add_token(accepted, "write")
    fake.add_repo(repo, files or {"README.md": f"# {repo}\n"})
    try:
        fake.start(port)
    except OSError as exc:
        typer.echo(f"cannot listen on 127.0.0.1:{port}: {exc.strerror}; choose another --port", err=True)
        raise typer.Exit(1) from None
    typer.echo(
        f"Fake GitHub running at {fake.root}\n"
        f"  repository:  {repo} (branch main: {', '.join(sorted(files)) or 'README.md'})\n"
        f"  base URL:    {fake.url}     (the task's git_base_url)\n"
        f"  token:       {accepted}     (the task's git_token)\n"
        f"  allow it:    KAIZEN_GIT_HOSTS={fake.root}   (in the environment of `make up` / `kaizen up`)\n"
        f"  see the PRs: curl {fake.root}/   (and each PR's pr_url)\n"
        "Everything is in memory; Ctrl-C stops it."
    )
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        fake.stop()
