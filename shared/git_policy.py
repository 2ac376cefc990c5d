"""Where a task's Git token may go, and what of a Git host's answer may reach users. Pure.

The operator lists the Git API origins Kaizen may talk to in ``KAIZEN_GIT_HOSTS``. The
API refuses task settings that point elsewhere, and the PR publisher checks again before
it sends the token, with the same functions, so a stored task from before a tightened
allowlist cannot reach a host that is no longer trusted (DESIGN §4.8).

An allowlist entry is an *origin*: ``scheme://host[:port]``. The token goes to the whole
origin whatever the path, so a path would only look like a restriction.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import quote

#: The hosted GitHub and GitLab APIs, the default targets of the two providers.
PROVIDER_URLS = {"github": "https://api.github.com", "gitlab": "https://gitlab.com"}
DEFAULT_GIT_HOSTS = ",".join(PROVIDER_URLS.values())
#: How much of a host's error text a user sees (a reason, error_message, a 502 detail).
USER_TEXT_LIMIT = 500

# Deliberately narrower than RFC 3986: no userinfo (``https://api.github.com@evil``), no
# backslashes, percent-escapes, spaces, queries or fragments, so that this check, requests
# and the Git client libraries cannot read two different hosts out of one string.
_URL = re.compile(
    r"(?P<scheme>https?)://(?P<host>[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?|\[[0-9a-f:.]+\])"
    r"(?::(?P<port>[0-9]{1,5}))?(?P<path>/[A-Za-z0-9._~/-]*)?",
    re.IGNORECASE,
)
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class Origin:
    """One allowed Git API origin; ``host`` is lower-case, ``port`` always explicit."""

    scheme: str
    host: str
    port: int

    def __str__(self) -> str:
        port = "" if _DEFAULT_PORTS[self.scheme] == self.port else f":{self.port}"
        return f"{self.scheme}://{self.host}{port}"


class BadGitUrl(ValueError):
    """A string that is not a plain ``http(s)://host[:port][/path]`` URL."""


def origin_of(url: str) -> tuple[Origin, str]:
    """The origin of ``url`` and its path; :class:`BadGitUrl` says what is wrong with it."""
    match = _URL.fullmatch(url)
    if match is None:
        raise BadGitUrl(
            f"{url!r} is not a plain http(s) URL such as https://git.example.com (no user name, "
            "query, fragment, spaces, backslashes or percent-escapes)"
        )
    scheme = match["scheme"].lower()
    port = int(match["port"]) if match["port"] else _DEFAULT_PORTS[scheme]
    if not 1 <= port <= 65535:
        raise BadGitUrl(f"{url!r} has port {port}, outside 1-65535")
    host = match["host"].lower()
    if host.startswith("[") and not _is_ip(host[1:-1]):
        raise BadGitUrl(f"{url!r} has a malformed IPv6 address")
    return Origin(scheme, host, port), match["path"] or ""


def parse_allowlist(value: str) -> tuple[Origin, ...]:
    """``KAIZEN_GIT_HOSTS``: comma-separated origins; empty means no Git host at all."""
    origins: list[Origin] = []
    for entry in (part.strip() for part in value.split(",")):
        if not entry:
            continue
        try:
            origin, path = origin_of(entry)
        except BadGitUrl as exc:
            raise ValueError(f"{exc}; list origins as scheme://host[:port], comma-separated") from None
        if path.strip("/"):
            raise ValueError(
                f"{entry!r} has a path; list the origin only ({origin}): a token sent to a host "
                "reaches every path on it"
            )
        if origin not in origins:
            origins.append(origin)
    return tuple(origins)


def target_url(provider: str | None, base_url: str | None) -> str | None:
    """Where a task's token would be sent: its base URL, else its provider's hosted API."""
    if base_url:
        return base_url
    return PROVIDER_URLS.get(provider or "")


def refusal(
    url: str,
    allowed: tuple[Origin, ...],
    *,
    setting: str = "KAIZEN_GIT_HOSTS",
    role: str = "a Git host this installation trusts with tokens",
) -> str | None:
    """Why nothing may be sent to ``url`` (a sentence naming the fix), or None when it may.

    The same rules serve every allowlist of origins (``setting``): Git hosts, webhook targets.
    """
    try:
        origin, _ = origin_of(url)
    except BadGitUrl as exc:
        return str(exc)
    if origin in allowed:
        return None
    listed = ", ".join(map(str, allowed)) or "none"
    if origin.scheme == "http" and Origin("https", origin.host, 443) in allowed:
        return f"{url} uses plain http; use https://{origin.host} ({setting} allows: {listed})"
    kind = "a loopback or private address, " if _is_internal(origin.host) else ""
    return (
        f"{origin} is {kind}not {role} ({setting} allows: {listed}); "
        "use one of those, or ask the operator to add it"
    )


def webhook_refusal(url: str, allowed: tuple[Origin, ...]) -> str | None:
    """Why events must not be posted to ``url`` (``KAIZEN_WEBHOOK_HOSTS``), or None: the Git-host rules."""
    return refusal(
        url, allowed, setting="KAIZEN_WEBHOOK_HOSTS", role="a webhook target this installation allows"
    )


def redact(text: str, secret: str | None) -> str:
    """``text`` without ``secret``, also in its URL-escaped form (hosts echo request URLs)."""
    if not secret:
        return text
    for form in {secret, quote(secret, safe="")}:
        text = text.replace(form, "***")
    return text


def for_users(text: str, secret: str | None = None, limit: int = USER_TEXT_LIMIT) -> str:
    """Host-influenced text as users may see it: the secret redacted first, then cut to ``limit``.

    Redacting before cutting matters: a cut through the token would leave a prefix that no
    longer matches it.
    """
    clean = redact(text, secret)
    if len(clean) <= limit:
        return clean
    return clean[: limit - 1].rstrip() + "…"


_PATH_RULE = "must be a relative path inside the repository, such as prompts/summarize.txt"


def prompt_path_problem(path: str) -> str | None:
    """Why ``path`` is not a normalized repository-relative file path, or None."""
    if not path:
        return "must not be empty"
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in path):
        return f"{_PATH_RULE}, without control characters"
    if "\\" in path:
        return f"{_PATH_RULE}, with / as separator (no backslashes)"
    if path.startswith("/") or re.match(r"[A-Za-z]:(/|$)", path):
        return f"{_PATH_RULE}, not an absolute path"
    segments = path.split("/")
    if ".." in segments:
        return f"{_PATH_RULE}, without '..' segments"
    if "." in segments or "" in segments:
        tidy = "/".join(s for s in segments if s not in ("", "."))
        return f"{_PATH_RULE}, written normalized ({tidy or 'a file name'}), without '.' or empty segments"
    return None


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _is_internal(host: str) -> bool:
    name = host.strip("[]")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    return address.is_private or address.is_loopback or address.is_link_local or address.is_reserved
