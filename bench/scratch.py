"""The directories the benchmarks make under the system's temporary directory, and their removal.

A read model of 100,000 jobs with its broker and service logs takes up to 1.3 GB, so every
script removes what it made when it ends, however it ends (Ctrl-C and exceptions too),
unless it was given ``--keep``: then it prints where each directory is, to look inside.
Only directories made through ``scratch_dir`` are removed; ``--profile`` outputs and a
caller's ``--db-url`` are the caller's.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

_made: list[Path] = []


def scratch_dir(prefix: str) -> Path:
    """A new directory, removed when the innermost ``cleaned_up`` block around this call ends."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    _made.append(path)
    return path


def add_keep(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--keep", action="store_true", help="Keep the read models and logs made in /tmp (and print where)."
    )


@contextlib.contextmanager
def cleaned_up(keep: bool) -> Iterator[None]:
    """Remove the directories made inside this block when it ends, or print them with ``keep``.

    Blocks nest (``bench.run_all`` runs each script's ``main`` inside its own block): each
    removes only what was made since it began, so the shared broker outlives the scripts.
    The block should enclose the processes writing there, so they have stopped first.
    """
    start = len(_made)
    try:
        yield
    finally:
        mine = _made[start:]
        del _made[start:]
        for path in mine:
            if keep:
                print(f"kept {path}", flush=True)
            else:
                shutil.rmtree(path, ignore_errors=True)
