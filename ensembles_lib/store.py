"""The content-addressed artifact store: a folder per key, verified files, a lock per key.

Trained models and stored adversarial examples (`cache.py`) are its two users; `ensembles cache
list|clear` shows and removes its entries. An entry `<root>/<key>/` holds the caller's files and
`meta.json`, written last; the meta records the SHA-256 of every file (`meta["files"]`), and
`load` checks each one, so a flipped byte or a swapped file is `CorruptArtifact` naming the file,
never a silently wrong model. An entry without meta.json is unfinished (a killed build) and is
never loaded. `lock(key)` is a `filelock.FileLock` under `<root>/.locks/`, so concurrent
processes asking for one key build it once: the others wait, then load. Imports no torch.
"""

from __future__ import annotations

import json
import os
import shutil
from contextlib import suppress
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import filelock

from .paths import CorruptArtifact, atomic_path, data_root, sha256_file

__all__ = ["CorruptArtifact", "ClearFailed", "META_FILE", "Store"]

META_FILE = "meta.json"
LOCKS = ".locks"  # names starting with "." are the store's own, never entries


class ClearFailed(OSError):
    """`Store.clear` removed what it could; `failed` maps each key it could not remove to why."""

    def __init__(self, removed: list[str], failed: dict[str, str]):
        self.removed, self.failed = removed, failed
        lines = "".join(f"\n  {key}: {why}" for key, why in failed.items())
        super().__init__(f"removed {len(removed)} artifact(s), could not remove {len(failed)}:{lines}")


def _check_name(name, what: str) -> str:
    if not isinstance(name, str) or not name or name.startswith(".") or "/" in name or "\0" in name:
        raise ValueError(f"{what} must be a plain file name (not empty, no '/', not starting with '.'), got {name!r}")
    return name


def _read_meta(folder: Path) -> dict | None:
    """meta.json as a dict with a `files` mapping of names to hex digests; None if absent."""
    path = folder / META_FILE
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as err:
        raise CorruptArtifact(f"{path} cannot be read: {err}") from None
    try:
        meta = json.loads(text)
    except (ValueError, RecursionError) as err:  # UnicodeDecodeError is a ValueError; "[" * 10**5 recurses
        raise CorruptArtifact(f"{path} is not valid JSON ({type(err).__name__}: {str(err)[:80]})") from None
    if not isinstance(meta, dict):
        raise CorruptArtifact(f"{path} holds a {type(meta).__name__}, not a JSON object")
    files = meta.get("files")
    if not isinstance(files, dict) or not all(
            isinstance(name, str) and isinstance(digest, str) for name, digest in files.items()):
        raise CorruptArtifact(f"{path} has no 'files' record of name -> sha256")
    return meta


def _verify(folder: Path, meta: dict) -> None:
    for name, recorded in meta["files"].items():
        try:
            _check_name(name, "a file name in meta.json")
        except ValueError as err:
            raise CorruptArtifact(f"{folder / META_FILE}: {err}") from None
        path = folder / name
        if path.is_symlink() or not path.is_file():
            raise CorruptArtifact(f"{path} is missing (or not a regular file)")
        actual = sha256_file(path)
        if actual != recorded:
            raise CorruptArtifact(f"{path} is damaged or was replaced: its sha256 {actual[:12]}... differs "
                                  f"from the recorded {recorded[:12]}...")


def _size(path: Path) -> int:
    """Bytes under `path`, not following links (a link counts as itself)."""
    if path.is_symlink() or not path.is_dir():
        return path.lstat().st_size
    total = 0
    for dirpath, _, names in os.walk(path):
        for name in names:
            with suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


class Store:
    """Artifacts under `root` (default `data_root()/artifacts`), one folder per key.

    Usage (what `cache.trained` does):
        with store.lock(key):
            meta = store.load(key) or store.commit(key, {"model.pt": write_model}, meta)
    """

    def __init__(self, root: Path | str | None = None):
        self.root = Path(root) if root is not None else data_root() / "artifacts"

    def folder(self, key: str) -> Path:
        """The entry's folder (it may not exist yet); ValueError for a key that is not a plain name."""
        return self.root / _check_name(key, "key")

    def lock(self, key: str, timeout: float = -1) -> filelock.FileLock:
        """A lock on `key` shared by every process using this root (a context manager). It waits
        `timeout` seconds (-1: as long as it takes, e.g. while another process trains the spec),
        then raises filelock.Timeout. Take a key's lock once per process: a second `lock(key)`
        waits on the first, as another process would."""
        locks = self.root / LOCKS
        locks.mkdir(parents=True, exist_ok=True)
        return filelock.FileLock(locks / f"{_check_name(key, 'key')}.lock", timeout=timeout)

    def load(self, key: str) -> dict | None:
        """The meta of the complete, verified entry `key`; None if there is none or it is unfinished
        (no meta.json). CorruptArtifact naming the file when meta.json is malformed or any file it
        lists is missing or differs from its recorded SHA-256. Callers then read the files by path."""
        folder = self.folder(key)
        if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
            raise CorruptArtifact(f"{folder} is a link or a file, not an entry folder")
        meta = _read_meta(folder)
        if meta is not None:
            _verify(folder, meta)
        return meta

    def commit(self, key: str, files: dict[str, Callable[[Path], None]], meta: dict) -> dict:
        """Write each file atomically with its `writer(tmp_path)`, then meta.json last, recording
        meta["files"] = {name: sha256}. Returns the meta as `load` will return it. Any old meta.json is removed
        first, so a kill part way leaves an unfinished entry, never old meta over new files.
        Other files in the folder (a checkpoint) are left for the caller to discard.
        Call it holding `lock(key)`. ValueError, before anything is written, for a meta that is
        not JSON-serialisable or a file name that is not plain."""
        folder = self.folder(key)
        names = [_check_name(name, "a file name") for name in files]
        if META_FILE in names:
            raise ValueError(f"files must not include {META_FILE}: the store writes it from `meta`")
        try:
            json.dumps(meta)
        except (TypeError, ValueError) as err:
            raise ValueError(f"meta must be JSON-serialisable: {err}") from None
        if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
            folder.unlink()  # never write through a link into someone else's folder
        folder.mkdir(parents=True, exist_ok=True)
        (folder / META_FILE).unlink(missing_ok=True)
        digests = {}
        for name, writer in files.items():
            with atomic_path(folder / name) as tmp:
                writer(tmp)
                digests[name] = sha256_file(tmp)
        text = json.dumps({**meta, "files": digests}, indent=1)
        with atomic_path(folder / META_FILE) as tmp:
            tmp.write_text(text)
        return json.loads(text)  # exactly what `load` will return (tuples become lists, keys strings)

    def discard(self, key: str, *names: str) -> None:
        """Remove the named files of an entry (meta.json first, so it turns unfinished, not
        corrupt), or the whole entry when no name is given. A link is removed as a link."""
        folder = self.folder(key)
        if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
            folder.unlink()
        elif not names:
            if folder.exists():
                shutil.rmtree(folder)
        else:
            for name in sorted(names, key=lambda n: n != META_FILE):
                (folder / _check_name(name, "a file name")).unlink(missing_ok=True)

    def keys(self) -> list[str]:
        """The names of every entry under the root, sorted (the store's own dot-names excluded)."""
        try:
            return sorted(name for name in os.listdir(self.root) if not name.startswith("."))
        except FileNotFoundError:
            return []

    def entries(self) -> list[dict]:
        """One dict per entry, sorted by key: key, status ("ok", "unfinished" or "corrupt"), meta
        (the verified meta of an "ok" entry, else None), error (why it is corrupt, else None),
        size_bytes, path, created (ISO 8601: the meta's "created" if it is a string, else the
        folder's modification time). Never raises on a malformed entry: a link, a file where a
        folder should be, unparseable or deeply nested JSON, a damaged file are "corrupt"."""
        rows = []
        for key in self.keys():
            path = self.root / key
            row = {"key": key, "status": "ok", "meta": None, "error": None, "size_bytes": 0, "path": str(path),
                   "created": None}
            try:
                stat = path.lstat()
                row["size_bytes"] = _size(path)
                row["created"] = datetime.fromtimestamp(stat.st_mtime, timezone.utc).isoformat(timespec="seconds")
                if path.is_symlink():
                    raise CorruptArtifact(f"{path} is a symbolic link (to {os.readlink(path)}), not an entry folder")
                if not path.is_dir():
                    raise CorruptArtifact(f"{path} is a file, not an entry folder")
                meta = self.load(key)
                if meta is None:
                    row["status"] = "unfinished"
                else:
                    row["meta"] = meta
                    if isinstance(meta.get("created"), str):
                        row["created"] = meta["created"]
            except (CorruptArtifact, OSError, ValueError, RecursionError) as err:
                row.update(status="corrupt", meta=None, error=str(err))
            rows.append(row)
        return rows

    def clear(self, keys: list[str] | None = None) -> list[str]:
        """Remove the entries named by `keys` (full keys or unique prefixes; every entry if None)
        and return the keys removed. An unknown or ambiguous prefix is a ValueError before anything
        is removed. A link is removed as a link (its target survives); an entry whose lock another
        process holds is left alone. Entries that cannot be removed do not stop the others: after
        trying every one, ClearFailed (an OSError) lists them, with `removed` and `failed`."""
        present = self.keys()
        if keys is None:
            chosen = present
        else:
            chosen, problems = [], []
            for prefix in keys:
                if not isinstance(prefix, str) or not prefix:
                    problems.append(f"{prefix!r} is not a key")
                    continue
                matches = [prefix] if prefix in present else [k for k in present if k.startswith(prefix)]
                if len(matches) == 1:
                    chosen += [m for m in matches if m not in chosen]
                else:
                    problems.append(f"{prefix!r} matches {'no artifact' if not matches else ', '.join(matches)}")
            if problems:
                raise ValueError("keys: " + "; ".join(problems) + " (nothing was removed; `ensembles cache list` "
                                 "shows the keys)")
        removed, failed = [], {}
        for key in chosen:
            try:
                with self.lock(key, timeout=0):
                    self.discard(key)
                removed.append(key)
            except filelock.Timeout:
                failed[key] = "in use: another process holds its lock (it is being built)"
            except OSError as err:
                failed[key] = f"{type(err).__name__}: {err}"
        if failed:
            raise ClearFailed(removed, failed)
        return removed
