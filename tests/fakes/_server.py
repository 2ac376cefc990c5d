"""What both fake Git hosts share; the code lives in ``kaizen_cli.fake_git.server`` so that
``kaizen dev fake-github`` can run the same fake for people trying Kaizen out."""

from kaizen_cli.fake_git.server import (
    Commit,
    FakeGitHost,
    FakeServer,
    GitRepo,
    Reply,
    Request,
    b64,
    blob_sha,
    git_hosts,
)

__all__ = [
    "Commit",
    "FakeGitHost",
    "FakeServer",
    "GitRepo",
    "Reply",
    "Request",
    "b64",
    "blob_sha",
    "git_hosts",
]
