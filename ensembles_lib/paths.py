"""Where the project keeps what it computes: the data root and atomic file writes.

The data root holds decoded datasets, .beton files and (later) trained-model artifacts. It is
`data/` in the checkout, or the folder named by the environment variable ENSEMBLES_DATA_DIR.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

DATA_DIR_ENV = "ENSEMBLES_DATA_DIR"


def checkout_root() -> Path:
    """The folder holding pyproject.toml for an editable install, else the working directory."""
    here = Path(__file__).resolve().parents[1]
    return here if (here / "pyproject.toml").exists() else Path.cwd()


def data_root() -> Path:
    """The data root: $ENSEMBLES_DATA_DIR if set, else `<checkout>/data` (created on demand)."""
    override = os.environ.get(DATA_DIR_ENV)
    root = Path(override).expanduser() if override else checkout_root() / "data"
    root.mkdir(parents=True, exist_ok=True)
    return root


@contextlib.contextmanager
def atomic_path(target: Path | str, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside `target`; rename it onto `target` only if the block succeeds.

    A reader therefore sees either the old file or the complete new one, never a partial write
    (a killed process leaves at most a stray temporary file, which is removed on error).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=suffix or ".tmp")
    os.close(fd)
    # mkstemp makes the file private (0600); give it the permissions an ordinary write would.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()
