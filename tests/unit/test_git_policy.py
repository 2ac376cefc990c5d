"""Where a Git token may go (KAIZEN_GIT_HOSTS), what host text users see, which prompt paths pass."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from shared.git_policy import (
    DEFAULT_GIT_HOSTS,
    Origin,
    for_users,
    parse_allowlist,
    prompt_path_problem,
    refusal,
    target_url,
)
from shared.settings import Settings

DEFAULT = parse_allowlist(DEFAULT_GIT_HOSTS)


# --- the allowlist ------------------------------------------------------------------------


def test_the_default_allows_the_hosted_github_and_gitlab_apis_only() -> None:
    assert (Origin("https", "api.github.com", 443), Origin("https", "gitlab.com", 443)) == DEFAULT
    assert refusal("https://api.github.com", DEFAULT) is None
    assert refusal("https://gitlab.com/", DEFAULT) is None
    assert refusal("https://API.GitHub.com:443", DEFAULT) is None


def test_an_unlisted_host_is_refused_with_the_allowed_ones_named() -> None:
    reason = refusal("https://git.attacker.example", DEFAULT)

    assert reason is not None
    assert "KAIZEN_GIT_HOSTS" in reason
    assert "https://api.github.com, https://gitlab.com" in reason


def test_plain_http_to_an_allowed_host_is_refused_with_a_hint_to_use_https() -> None:
    reason = refusal("http://gitlab.com", DEFAULT)

    assert reason is not None and "https://gitlab.com" in reason and "plain http" in reason


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080",
        "https://localhost",
        "https://10.0.0.5",
        "https://[::1]:8443",
        "http://169.254.169.254",
    ],
)
def test_loopback_and_private_addresses_are_refused_unless_listed(url: str) -> None:
    reason = refusal(url, DEFAULT)
    assert reason is not None and "loopback or private" in reason

    assert refusal(url, parse_allowlist(f"{DEFAULT_GIT_HOSTS},{url}")) is None


def test_an_http_origin_is_allowed_only_exactly_as_listed() -> None:
    allowed = parse_allowlist("http://127.0.0.1:8080")

    assert refusal("http://127.0.0.1:8080/api/v3", allowed) is None
    assert refusal("http://127.0.0.1:8081", allowed) is not None
    assert refusal("https://127.0.0.1:8080", allowed) is not None
    assert refusal("http://localhost:8080", allowed) is not None


@pytest.mark.parametrize(
    "url",
    [
        "https://api.github.com@evil.example",  # userinfo: the host is evil.example
        "https://api.github.com\\@evil.example",  # parsers disagree about backslashes
        "https://api.github.com%2f@evil.example",
        "https://api.github.com/?next=https://evil.example",
        "https://api.github.com#frag",
        "https://api.github.com.",
        "https:// api.github.com",
        "ftp://api.github.com",
        "api.github.com",
        "https://api.github.com:99999",
    ],
)
def test_urls_that_could_be_read_as_another_host_are_refused(url: str) -> None:
    assert refusal(url, DEFAULT) is not None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", ()),
        (
            " https://ghe.example.com , http://127.0.0.1:9000 ",
            ("https://ghe.example.com", "http://127.0.0.1:9000"),
        ),
        ("https://gitlab.com,https://GITLAB.com:443", ("https://gitlab.com",)),
    ],
)
def test_the_setting_is_comma_separated_origins(value: str, expected: tuple[str, ...]) -> None:
    assert tuple(map(str, parse_allowlist(value))) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("https://ghe.example.com/api/v3", "list the origin only (https://ghe.example.com)"),
        ("ghe.example.com", "not a plain http(s) URL"),
        ("https://user:pw@ghe.example.com", "not a plain http(s) URL"),
    ],
)
def test_a_bad_setting_stops_the_start_naming_the_variable_and_the_entry(
    monkeypatch: pytest.MonkeyPatch, value: str, message: str
) -> None:
    monkeypatch.setenv("KAIZEN_GIT_HOSTS", value)

    with pytest.raises(ValidationError) as caught:
        Settings()

    [error] = caught.value.errors()
    assert error["loc"] == ("git_hosts",)
    assert message in error["msg"]


def test_the_setting_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAIZEN_GIT_HOSTS", "https://ghe.example.com,http://127.0.0.1:9000")

    settings = Settings()

    assert settings.git_host_allowlist == (
        Origin("https", "ghe.example.com", 443),
        Origin("http", "127.0.0.1", 9000),
    )
    assert Settings.model_fields["git_hosts"].default == DEFAULT_GIT_HOSTS


def test_a_task_without_base_url_targets_its_providers_hosted_api() -> None:
    assert target_url("github", None) == "https://api.github.com"
    assert target_url("gitlab", "") == "https://gitlab.com"
    assert target_url("gitlab", "https://git.corp.example") == "https://git.corp.example"
    assert target_url(None, None) is None


# --- what users see of a host's words -----------------------------------------------------

TOKEN = "ghp_0123456789abcdefTOKEN"


def test_the_token_is_redacted_before_the_text_is_cut() -> None:
    # Cut first, and the token's first half would survive the redaction.
    text = "x" * 490 + TOKEN + " and more"

    shown = for_users(text, TOKEN)

    assert len(shown) <= 500
    assert TOKEN[:8] not in shown


def test_a_url_escaped_token_is_redacted_too() -> None:
    token = "glpat-abc/def+ghi"

    assert for_users("GET /x?private_token=glpat-abc%2Fdef%2Bghi failed", token) == (
        "GET /x?private_token=*** failed"
    )


@given(
    text=st.text(max_size=2000),
    token=st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-", min_size=8, max_size=40),
    limit=st.integers(min_value=10, max_value=800),
)
def test_text_shown_to_users_never_holds_the_token_nor_exceeds_the_limit(
    text: str, token: str, limit: int
) -> None:
    shown = for_users(text[: len(text) // 2] + token + text[len(text) // 2 :], token, limit)

    assert token not in shown
    assert len(shown) <= limit


# --- prompt paths -------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["prompts/summarize.txt", "p.yaml", "a/b-c/d_e.f.json", "config/..hidden"])
def test_relative_normalized_paths_are_accepted(path: str) -> None:
    assert prompt_path_problem(path) is None


@pytest.mark.parametrize(
    ("path", "words"),
    [
        ("../secrets.txt", "'..'"),
        ("prompts/../../etc/passwd", "'..'"),
        ("/etc/passwd", "absolute"),
        ("C:/prompts/p.txt", "absolute"),
        ("prompts\\p.txt", "backslashes"),
        ("prompts/p.txt\x00.png", "control characters"),
        ("./prompts/p.txt", "written normalized (prompts/p.txt)"),
        ("prompts//p.txt", "written normalized (prompts/p.txt)"),
        ("prompts/", "written normalized (prompts)"),
        ("", "must not be empty"),
    ],
)
def test_paths_that_leave_or_blur_the_repository_are_refused(path: str, words: str) -> None:
    problem = prompt_path_problem(path)

    assert problem is not None and words in problem
