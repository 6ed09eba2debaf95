"""Where the project keeps what it computes: the data root, atomic writes and verified files.

The data root holds decoded datasets, .beton files and the artifact store (`store.py`). It is
`data/` in the checkout, or the folder named by the environment variable ENSEMBLES_DATA_DIR; a
root that is not a writable folder is one `DataRootError` naming the path and that variable.

Files are written through `atomic_path` (a reader sees the old file or the whole new one), and a
file rewritten many times before its artifact is complete (the training checkpoint) goes through
`write_verified`/`read_verified`, which record its SHA-256 beside it and check it before use.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path
from typing import Callable, Iterator

DATA_DIR_ENV = "ENSEMBLES_DATA_DIR"
HASH_SUFFIX = ".sha256"  # the hash record of `write_verified`'s file sits beside it under this suffix


class DataRootError(OSError):
    """The data root cannot be used: it is not a folder, cannot be created, or is not writable."""


class CorruptArtifact(Exception):
    """A stored file does not match its recorded SHA-256, or its record is missing or unreadable;
    the message names the file and says why. Callers discard it and rebuild, never trust it."""


def checkout_root() -> Path:
    """The folder holding pyproject.toml for an editable install, else the working directory."""
    here = Path(__file__).resolve().parents[1]
    return here if (here / "pyproject.toml").exists() else Path.cwd()


def data_root() -> Path:
    """The data root: $ENSEMBLES_DATA_DIR if set, else `<checkout>/data` (created on demand).

    DataRootError (an OSError) if it is a file, cannot be created, or is not writable.
    """
    override = os.environ.get(DATA_DIR_ENV)
    root = Path(override).expanduser() if override else checkout_root() / "data"
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        why = "it exists and is not a folder" if root.exists() and not root.is_dir() else (err.strerror or str(err))
        raise DataRootError(_unusable(root, why)) from None
    if not os.access(root, os.W_OK | os.X_OK):
        raise DataRootError(_unusable(root, "permission denied"))
    return root


def _unusable(root: Path, why: str) -> str:
    return f"data root {root} is not a writable directory: {why}; set {DATA_DIR_ENV} to a writable folder"


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


def sha256_file(path: Path | str) -> str:
    """The hex SHA-256 of a file's bytes (read in chunks, so any size fits in memory)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def hash_record(path: Path | str) -> Path:
    """Where `write_verified` records the SHA-256 of `path`: `<path>.sha256` beside it."""
    path = Path(path)
    return path.with_name(path.name + HASH_SUFFIX)


def _recorded(path: Path) -> list[str]:
    record = hash_record(path)
    try:
        return [line.split()[0] for line in record.read_text(encoding="ascii").splitlines() if line.strip()]
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as err:
        raise CorruptArtifact(f"{record} (the hash record of {path.name}) cannot be read: {err}") from None


def write_verified(path: Path | str, writer: Callable[[Path], None]) -> str:
    """Write a file atomically with `writer(tmp_path)` and record its SHA-256 in `<path>.sha256`.

    Returns the hash. For a file rewritten many times (the training checkpoint): the record first
    lists the new hash *and* the old file's, then the new file replaces the old, then the record
    keeps only the new hash, so a kill at any moment leaves a file that `read_verified` accepts.
    """
    path = Path(path)
    with atomic_path(path) as tmp:
        writer(tmp)
        digest = sha256_file(tmp)
        try:
            previous = _recorded(path)[:1] if path.exists() else []
        except CorruptArtifact:  # an unreadable old record vouches for nothing
            previous = []
        with atomic_path(hash_record(path)) as record_tmp:
            record_tmp.write_text("".join(f"{h}  {path.name}\n" for h in [digest, *previous]), encoding="ascii")
    with atomic_path(hash_record(path)) as record_tmp:
        record_tmp.write_text(f"{digest}  {path.name}\n", encoding="ascii")
    return digest


def read_verified(path: Path | str) -> Path:
    """`path`, once its bytes match the SHA-256 `write_verified` recorded; CorruptArtifact naming
    the file if it, or its record, is missing, or if the bytes differ (a flipped byte, a swapped file)."""
    path = Path(path)
    if not path.is_file():
        raise CorruptArtifact(f"{path} is missing")
    recorded = _recorded(path)
    if not recorded:
        raise CorruptArtifact(f"{path} has no hash record ({hash_record(path).name} is missing or empty)")
    actual = sha256_file(path)
    if actual not in recorded:
        raise CorruptArtifact(f"{path} is damaged: its sha256 {actual[:12]}... differs from the recorded "
                              f"{recorded[0][:12]}...")
    return path


def discard_verified(path: Path | str) -> None:
    """Remove a file written by `write_verified` and its hash record (file first: a kill between
    leaves a record without a file, which `write_verified` simply replaces)."""
    path = Path(path)
    path.unlink(missing_ok=True)
    hash_record(path).unlink(missing_ok=True)
