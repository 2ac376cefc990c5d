"""The fake GitHub REST API; the code lives in ``kaizen_cli.fake_git.github`` so that
``kaizen dev fake-github`` can run the same fake for people trying Kaizen out."""

from kaizen_cli.fake_git.github import DOCS, FakeGitHub

__all__ = ["DOCS", "FakeGitHub"]
