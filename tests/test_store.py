"""The artifact store (ensembles_lib.store), verified files and the data root (ensembles_lib.paths),
and verified training checkpoints: damaged files, killed writers, concurrent processes, hostile entries."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from ensembles_lib import paths
from ensembles_lib.paths import CorruptArtifact, DataRootError, read_verified, write_verified
from ensembles_lib.store import META_FILE, ClearFailed, Store
from ensembles_lib.training import checkpoint as ckpt

CHECKOUT = Path(__file__).resolve().parents[1]


def writes(data: bytes):
    return lambda tmp: tmp.write_bytes(data)


def flip_byte(path: Path, at: float = 0.5) -> None:
    data = bytearray(path.read_bytes())
    data[int(len(data) * at)] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.fixture
def store(tmp_path):
    return Store(tmp_path / "artifacts")


def run_python(code: str, **kwargs) -> subprocess.Popen:
    """A real Python process running `code` with this checkout importable."""
    env = {**os.environ, "PYTHONPATH": str(CHECKOUT)}
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"the writer exited early: {proc.communicate()}")
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.01)


# --------------------------------------------------------------------------- commit and load


def test_commit_then_load_returns_the_verified_meta(store):
    meta = store.commit("k1", {"model.pt": writes(b"weights"), "extra.bin": writes(b"x" * 10)}, {"spec": {"a": 1}})
    assert meta["spec"] == {"a": 1}
    assert meta["files"] == {"model.pt": paths.sha256_file(store.folder("k1") / "model.pt"),
                             "extra.bin": paths.sha256_file(store.folder("k1") / "extra.bin")}
    assert store.load("k1") == meta
    assert json.loads((store.folder("k1") / META_FILE).read_text()) == meta
    assert (store.folder("k1") / "model.pt").read_bytes() == b"weights"
    assert store.load("absent") is None


def test_commit_leaves_other_files_and_rejects_bad_input_before_writing(store):
    folder = store.folder("k")
    folder.mkdir(parents=True)
    (folder / "checkpoint.pt").write_bytes(b"ckpt")
    store.commit("k", {"model.pt": writes(b"w")}, {})
    assert (folder / "checkpoint.pt").read_bytes() == b"ckpt"  # the caller discards it once it is done
    with pytest.raises(ValueError, match="JSON-serialisable"):
        store.commit("k2", {"model.pt": writes(b"w")}, {"when": object()})
    with pytest.raises(ValueError, match="meta.json"):
        store.commit("k2", {"meta.json": writes(b"{}")}, {})
    with pytest.raises(ValueError, match="plain file name"):
        store.commit("k2", {"../escape": writes(b"w")}, {})
    assert not store.folder("k2").exists()
    for bad in ("", "../up", ".locks", "a/b"):
        with pytest.raises(ValueError, match="key"):
            store.folder(bad)


@pytest.mark.parametrize("damage", ["flip", "swap", "missing", "truncate"])
def test_damaged_file_is_corrupt_artifact_naming_it(store, damage):
    store.commit("k", {"model.pt": writes(os.urandom(4096)), "other.pt": writes(os.urandom(4096))}, {})
    model = store.folder("k") / "model.pt"
    if damage == "flip":
        flip_byte(model, 0.9)
    elif damage == "swap":
        model.write_bytes((store.folder("k") / "other.pt").read_bytes())
    elif damage == "missing":
        model.unlink()
    else:
        model.write_bytes(model.read_bytes()[:100])
    with pytest.raises(CorruptArtifact, match=r"model\.pt"):
        store.load("k")


@pytest.mark.parametrize("text, why", [
    ("[" * 100000, "not valid JSON"),
    ("\xff\xfe garbage \x00", "not valid JSON"),
    ('[{"files": {}}]', "holds a list"),
    ('{"spec": 1}', "no 'files' record"),
    ('{"files": {"model.pt": 12}}', "no 'files' record"),
    ('{"files": {"../../etc/passwd": "00"}}', "plain file name"),
])
def test_malformed_meta_is_corrupt_artifact_naming_meta(store, text, why):
    store.commit("k", {"model.pt": writes(b"w")}, {})
    (store.folder("k") / META_FILE).write_bytes(text.encode("latin-1"))
    with pytest.raises(CorruptArtifact, match=f"meta.json.*{why}|{why}.*meta.json"):
        store.load("k")


def test_discard_turns_an_entry_unfinished_and_a_link_is_removed_as_a_link(store, tmp_path):
    store.commit("k", {"model.pt": writes(b"w")}, {})
    store.discard("k", "model.pt", META_FILE)
    assert store.load("k") is None and store.folder("k").is_dir() and not any(store.folder("k").iterdir())
    store.discard("k")
    assert not store.folder("k").exists()
    target = tmp_path / "elsewhere"
    target.mkdir()
    (target / "model.pt").write_bytes(b"precious")
    store.folder("linked").symlink_to(target)
    with pytest.raises(CorruptArtifact, match="link"):
        store.load("linked")
    store.discard("linked", "model.pt", META_FILE)
    assert not store.folder("linked").is_symlink() and (target / "model.pt").read_bytes() == b"precious"


# --------------------------------------------------------------------------- verified files and checkpoints


def test_write_verified_round_trip_and_every_damage_is_refused(tmp_path):
    path = tmp_path / "checkpoint.pt"
    digest = write_verified(path, writes(os.urandom(2048)))
    assert read_verified(path) == path and digest == paths.sha256_file(path)
    assert paths.hash_record(path).read_text().split() == [digest, "checkpoint.pt"]
    write_verified(path, writes(b"second version"))
    assert read_verified(path).read_bytes() == b"second version"
    flip_byte(path)
    with pytest.raises(CorruptArtifact, match="checkpoint.pt is damaged"):
        read_verified(path)
    write_verified(path, writes(b"third"))
    paths.hash_record(path).unlink()
    with pytest.raises(CorruptArtifact, match="checkpoint.pt has no hash record"):
        read_verified(path)
    paths.discard_verified(path)
    assert not path.exists() and not paths.hash_record(path).exists()
    with pytest.raises(CorruptArtifact, match="missing"):
        read_verified(path)


def test_flipped_byte_in_a_checkpoint_is_refused_before_resume(tmp_path):
    path = tmp_path / "checkpoint.pt"
    state = {"model": {"w": torch.arange(5000, dtype=torch.float32)}, "epoch": 3}
    ckpt.save(path, state)
    loaded = ckpt.load(path)
    assert loaded["epoch"] == 3 and torch.equal(loaded["model"]["w"], state["model"]["w"])
    flip_byte(path, 0.6)  # inside the tensor data: torch.load alone would load the garbage
    with pytest.raises(CorruptArtifact, match="checkpoint.pt"):
        ckpt.verify(path)
    with pytest.raises(CorruptArtifact, match="checkpoint.pt"):
        ckpt.load(path)
    ckpt.discard(path)
    assert not path.exists() and not paths.hash_record(path).exists()


@pytest.mark.parametrize("kill_at", ["mid_write", "between_file_and_record"])
def test_checkpoint_killed_while_rewritten_keeps_a_verified_one(tmp_path, kill_at):
    """SIGKILL while the next checkpoint is written: what is left under the name still verifies."""
    path, ready = tmp_path / "checkpoint.pt", tmp_path / "ready"
    write_verified(path, writes(b"epoch 1" * 1000))
    proc = run_python(f"""
        import os, signal, time
        from pathlib import Path
        from ensembles_lib import paths
        path, ready = Path({str(path)!r}), Path({str(ready)!r})
        def slow_writer(tmp):
            with open(tmp, "wb") as f:
                f.write(b"epoch 2" * 1000)
                f.flush()
                if {kill_at!r} == "mid_write":
                    ready.touch()
                    time.sleep(60)
        real = paths.atomic_path
        def killing(target, *args, **kwargs):
            if {kill_at!r} != "mid_write" and Path(target) == paths.hash_record(path) and path.read_bytes().startswith(b"epoch 2"):
                os.kill(os.getpid(), signal.SIGKILL)  # the new file is in place, its record not yet final
            return real(target, *args, **kwargs)
        paths.atomic_path = killing
        paths.write_verified(path, slow_writer)
    """)
    if kill_at == "mid_write":
        wait_for(ready, proc)
        proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    survivor = read_verified(path).read_bytes()
    assert survivor == (b"epoch 1" if kill_at == "mid_write" else b"epoch 2") * 1000


# --------------------------------------------------------------------------- killed builders


def test_kill_mid_write_leaves_an_unfinished_entry_and_no_half_file(store, tmp_path):
    ready = tmp_path / "ready"
    proc = run_python(f"""
        import time
        from pathlib import Path
        from ensembles_lib.store import Store
        def big_slow_writer(tmp):
            with open(tmp, "wb") as f:
                f.write(b"\\0" * 8_000_000)
                f.flush()
                Path({str(ready)!r}).touch()
                time.sleep(60)
                f.write(b"\\0" * 8_000_000)
        Store({str(store.root)!r}).commit("k", {{"model.pt": big_slow_writer}}, {{"spec": 1}})
    """)
    wait_for(ready, proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert store.load("k") is None
    assert not (store.folder("k") / "model.pt").exists()  # only a hidden temporary file, never the final name
    [entry] = store.entries()
    assert entry["status"] == "unfinished" and entry["size_bytes"] >= 8_000_000


def test_kill_between_the_files_and_meta_leaves_an_unfinished_entry(store):
    store.commit("k", {"model.pt": writes(b"old")}, {"version": 1})  # a rebuild must never pair old meta with new files
    proc = run_python(f"""
        import os, signal
        from pathlib import Path
        import ensembles_lib.store as s
        real = s.atomic_path
        def killing(target, *args, **kwargs):
            if Path(target).name == "meta.json":
                os.kill(os.getpid(), signal.SIGKILL)
            return real(target, *args, **kwargs)
        s.atomic_path = killing
        s.Store({str(store.root)!r}).commit("k", {{"model.pt": lambda tmp: tmp.write_bytes(b"new"),
                                                  "opt.pt": lambda tmp: tmp.write_bytes(b"o")}}, {{"version": 2}})
    """)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert (store.folder("k") / "model.pt").read_bytes() == b"new" and (store.folder("k") / "opt.pt").exists()
    assert store.load("k") is None and store.entries()[0]["status"] == "unfinished"
    meta = store.commit("k", {"model.pt": writes(b"new")}, {"version": 2})  # the rebuild completes it
    assert store.load("k") == meta


# --------------------------------------------------------------------------- concurrency


def test_concurrent_processes_build_a_key_once(store, tmp_path):
    n = 4
    builds, arrived = tmp_path / "builds.log", tmp_path / "arrived.log"
    code = f"""
        import hashlib, time
        from pathlib import Path
        from ensembles_lib.store import Store
        store, builds, arrived = Store({str(store.root)!r}), Path({str(builds)!r}), Path({str(arrived)!r})
        def build(tmp):
            with open(builds, "a") as f:
                f.write("built\\n")
            deadline = time.monotonic() + 30  # hold the lock until every process is waiting on it
            while len(arrived.read_text().splitlines()) < {n} and time.monotonic() < deadline:
                time.sleep(0.02)
            tmp.write_bytes(hashlib.sha256(str(time.time_ns()).encode()).digest() * 1000)
        with open(arrived, "a") as f:
            f.write("here\\n")
        with store.lock("key"):
            meta = store.load("key") or store.commit("key", {{"model.pt": build}}, {{"spec": "s"}})
        print(meta["files"]["model.pt"], hashlib.sha256((store.folder("key") / "model.pt").read_bytes()).hexdigest())
    """
    procs = [run_python(code) for _ in range(n)]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in outputs]
    assert builds.read_text().splitlines() == ["built"]  # one build; the others waited, then loaded
    lines = {out.strip() for out, _ in outputs}
    assert len(lines) == 1
    recorded, actual = lines.pop().split()
    assert recorded == actual == store.load("key")["files"]["model.pt"]


# --------------------------------------------------------------------------- listing and clearing


def test_entries_report_malformed_entries_and_go_on(store, tmp_path):
    store.commit("good", {"model.pt": writes(b"w")}, {"wall_time_s": "not a number", "created": "2024-01-01T00:00:00+00:00"})
    for key, text in {"nested": "[" * 100000, "alist": "[1, 2]", "garbage": "\x00\xff\x13binary",
                      "badfiles": '{"files": {"model.pt": 7}}'}.items():
        store.folder(key).mkdir(parents=True)
        (store.folder(key) / META_FILE).write_bytes(text.encode("latin-1"))
    store.commit("flipped", {"model.pt": writes(b"weights" * 100)}, {})
    flip_byte(store.folder("flipped") / "model.pt")
    store.folder("unfinished").mkdir()
    (store.folder("unfinished") / "model.pt").write_bytes(b"w")
    target = tmp_path / "target"
    target.mkdir()
    store.folder("linked").symlink_to(target)
    store.folder("afile").write_bytes(b"not a folder")
    store.lock("good")  # the locks folder is the store's own, not an entry
    rows = {row["key"]: row for row in store.entries()}
    assert sorted(rows) == ["afile", "alist", "badfiles", "flipped", "garbage", "good", "linked", "nested", "unfinished"]
    assert rows["good"]["status"] == "ok" and rows["good"]["meta"]["wall_time_s"] == "not a number"
    assert rows["good"]["created"] == "2024-01-01T00:00:00+00:00" and rows["good"]["size_bytes"] > 1
    assert rows["unfinished"]["status"] == "unfinished" and rows["unfinished"]["error"] is None
    expected = {"nested": "not valid JSON", "alist": "holds a list", "garbage": "not valid JSON",
                "badfiles": "files", "flipped": "model.pt is damaged", "linked": "symbolic link",
                "afile": "is a file"}
    for key, why in expected.items():
        assert rows[key]["status"] == "corrupt" and why in rows[key]["error"] and rows[key]["meta"] is None, rows[key]
        assert rows[key]["created"] and rows[key]["path"] == str(store.folder(key))


def test_clear_removes_a_link_as_a_link_and_goes_on(store, tmp_path):
    target = tmp_path / "target"
    target.mkdir()
    (target / "model.pt").write_bytes(b"precious")
    store.commit("aaa1", {"model.pt": writes(b"w")}, {})
    store.folder("bbb2").symlink_to(target)
    store.commit("ccc3", {"model.pt": writes(b"w")}, {})
    assert store.clear() == ["aaa1", "bbb2", "ccc3"]
    assert store.entries() == [] and (target / "model.pt").read_bytes() == b"precious"


def test_clear_resolves_prefixes_and_refuses_unknown_or_ambiguous_ones_before_removing(store):
    for key in ("abc1", "abc2", "def3"):
        store.commit(key, {"model.pt": writes(b"w")}, {})
    with pytest.raises(ValueError, match=r"'abc' matches abc1, abc2.*'zzz' matches no artifact.*nothing was removed"):
        store.clear(["def", "abc", "zzz"])
    assert store.keys() == ["abc1", "abc2", "def3"]
    assert store.clear(["abc2", "d"]) == ["abc2", "def3"] and store.keys() == ["abc1"]


def test_clear_reports_an_entry_in_use_and_removes_the_rest(store):
    for key in ("k1", "k2", "k3"):
        store.commit(key, {"model.pt": writes(b"w")}, {})
    with store.lock("k2"):  # another builder holds it (flock: a second lock in one process waits like another process)
        with pytest.raises(ClearFailed, match="k2: in use") as caught:
            store.clear()
    assert caught.value.removed == ["k1", "k3"] and list(caught.value.failed) == ["k2"]
    assert isinstance(caught.value, OSError) and store.keys() == ["k2"]


# --------------------------------------------------------------------------- the data root


def test_data_root_that_is_a_file_or_under_a_file_is_one_clear_error(tmp_path, monkeypatch):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    for root in (a_file, a_file / "below"):
        monkeypatch.setenv("ENSEMBLES_DATA_DIR", str(root))
        with pytest.raises(DataRootError, match=f"data root {root} is not a writable directory.*ENSEMBLES_DATA_DIR"):
            paths.data_root()
    monkeypatch.setenv("ENSEMBLES_DATA_DIR", str(tmp_path / "fresh" / "root"))
    assert paths.data_root() == tmp_path / "fresh" / "root" and (tmp_path / "fresh" / "root").is_dir()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through read-only permissions")
def test_read_only_data_root_is_one_clear_error(tmp_path, monkeypatch):
    root = tmp_path / "ro"
    root.mkdir()
    root.chmod(0o555)
    try:
        monkeypatch.setenv("ENSEMBLES_DATA_DIR", str(root))
        with pytest.raises(DataRootError, match="permission denied.*ENSEMBLES_DATA_DIR"):
            paths.data_root()
        monkeypatch.setenv("ENSEMBLES_DATA_DIR", str(root / "below"))
        with pytest.raises(DataRootError, match="ENSEMBLES_DATA_DIR"):
            paths.data_root()
    finally:
        root.chmod(0o755)


def test_read_only_data_root_as_seen_by_os_access(tmp_path, monkeypatch):
    """The permission check itself, for runs as root (where chmod does not stop writes)."""
    monkeypatch.setenv("ENSEMBLES_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(paths.os, "access", lambda path, mode: False)
    with pytest.raises(DataRootError, match=f"data root {tmp_path} is not a writable directory: permission denied"):
        paths.data_root()


def test_atomic_path_keeps_the_old_file_when_the_block_fails(tmp_path):
    target = tmp_path / "sub" / "file.txt"
    with paths.atomic_path(target) as tmp:
        tmp.write_text("one")
    with pytest.raises(RuntimeError), paths.atomic_path(target) as tmp:
        tmp.write_text("two, half")
        raise RuntimeError
    assert target.read_text() == "one" and sorted(p.name for p in target.parent.iterdir()) == ["file.txt"]
