"""Files only the service's own user may read: databases, keys, local state.

The read model holds feedback and encrypted Git tokens, the state files the same, and the
key files decrypt them; created under the default umask (0644) any local user could read
them. SQLite gives its ``-wal`` and ``-shm`` files the mode of the database file, so a
database created 0600 stays private with its journals.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

PRIVATE_MODE = 0o600


def ensure_private_file(path: Path) -> None:
    """Create ``path`` empty with mode 0600 when missing; tighten it (and SQLite's journals) when not."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_MODE))
    for candidate in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        with contextlib.suppress(FileNotFoundError):
            if candidate.stat().st_mode & 0o777 != PRIVATE_MODE:
                os.chmod(candidate, PRIVATE_MODE)
