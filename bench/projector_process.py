"""A real projector process (``python -m services.projector``) on a SQLite read model."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from cryptography.fernet import Fernet

from bench.common import REPO
from bench.replay import PARTITIONS


@contextlib.contextmanager
def projector(
    bootstrap: str, prefix: str, home: Path, db: Path, code: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """``python -m services.projector``: the working tree's, or the ``services`` package in ``code``.

    With ``code``, the child starts in that directory, so its ``services`` comes first on
    ``sys.path`` (before an installed one); ``shared`` still comes from the working tree.
    """
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("KAIZEN_")},
        "KAIZEN_KAFKA_BOOTSTRAP": bootstrap,
        "KAIZEN_TOPIC_PREFIX": prefix,
        "KAIZEN_HOME": str(home),
        "KAIZEN_DATABASE_URL": f"sqlite+aiosqlite:///{db}",
        "KAIZEN_PARTITIONS": str(PARTITIONS),
        "KAIZEN_SECRET_KEY": Fernet.generate_key().decode(),
        "KAIZEN_LOG_LEVEL": "WARNING",
    }
    if code is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    with (home / "projector.log").open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "services.projector"],
            env=env,
            cwd=code or REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            yield process
        finally:
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()


def code_of(code: Path | None) -> str:
    """Where the projector started with ``code`` imports ``services.projector`` from."""
    env = {**os.environ, "PYTHONPATH": str(REPO)} if code is not None else None
    found = subprocess.run(
        [sys.executable, "-c", "import services.projector as p; print(p.__file__)"],
        cwd=code or REPO,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return str(Path(found.stdout.strip()).parent)
