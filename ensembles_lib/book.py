"""Build the HTML book offline: vendor MathJax, run Jupyter Book with warnings as errors.

`build_html()` is what `make html`, `ensembles book` and `python -m ensembles_lib.book` run. It
builds from the committed files alone (`_config.yml`, `_toc.yml`, `book/`): the chapters were
executed by papermill beforehand, so Jupyter Book executes nothing.

MathJax 3 is served from a local copy so formulas typeset without internet: the first build runs
`npm pack mathjax@3` into the git-ignored `vendor/` folder and unpacks the browser bundle (`es5/`)
to `vendor/mathjax/`; `_config.yml` copies `vendor/` into the output's `_static/` through
`html_static_path` and points Sphinx's `mathjax_path` at `mathjax/tex-chtml.js`. Later builds
reuse the copy.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from .paths import checkout_root

MATHJAX_PACKAGE = "mathjax@3"
# The script `_config.yml`'s mathjax_path names, relative to vendor/; its presence marks a complete copy.
MATHJAX_ENTRY = Path("mathjax") / "tex-chtml.js"
# What to keep from the npm tarball: the browser bundle and the licence that must travel with it.
_KEEP = ("package/es5/", "package/LICENSE")


def vendor_dir(root: Path | None = None) -> Path:
    """The git-ignored folder holding third-party files the build serves: `<root>/vendor`."""
    return Path(root or checkout_root()) / "vendor"


def vendor_mathjax(root: Path | None = None) -> Path:
    """`vendor/mathjax/` with MathJax 3's browser bundle, fetched with `npm pack` if missing.

    Returns the folder. Raises RuntimeError when npm is missing or the download fails (the
    message says how to provide the copy by hand). The copy appears atomically: a failed or
    interrupted fetch leaves no half-filled `vendor/mathjax/`.
    """
    vendor = vendor_dir(root)
    target = vendor / "mathjax"
    if (vendor / MATHJAX_ENTRY).is_file():
        return target
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError(
            f"npm is needed once to fetch {MATHJAX_PACKAGE} into {target}; install Node.js/npm, or "
            f"unpack the es5/ folder of the npm package {MATHJAX_PACKAGE} there yourself"
        )
    vendor.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=vendor, prefix=".mathjax-") as tmp:
        tmp = Path(tmp)
        done = subprocess.run([npm, "pack", MATHJAX_PACKAGE, "--silent"], cwd=tmp,
                              capture_output=True, text=True)
        tarballs = sorted(tmp.glob("mathjax-*.tgz"))
        if done.returncode != 0 or not tarballs:
            raise RuntimeError(f"`npm pack {MATHJAX_PACKAGE}` failed (exit {done.returncode}):\n"
                               f"{done.stderr.strip() or done.stdout.strip()}")
        unpacked = tmp / "mathjax"
        _extract_bundle(tarballs[0], unpacked)
        if not (unpacked / MATHJAX_ENTRY.name).is_file():
            raise RuntimeError(f"{tarballs[0].name} has no es5/{MATHJAX_ENTRY.name}; is it MathJax 3?")
        shutil.rmtree(target, ignore_errors=True)
        os.replace(unpacked, target)
    return target


def _extract_bundle(tarball: Path, dest: Path) -> None:
    """Unpack package/es5/* (and the licence) from an npm tarball into `dest`, flattening es5/.

    Members are written one by one under `dest`, so a crafted path ('..', absolute, links)
    cannot escape it.
    """
    dest.mkdir(parents=True)
    with tarfile.open(tarball, "r:gz") as tar:
        for member in tar.getmembers():
            if not member.isfile() or not member.name.startswith(_KEEP):
                continue
            rel = Path(member.name.removeprefix("package/es5/").removeprefix("package/"))
            if rel.is_absolute() or ".." in rel.parts:
                raise RuntimeError(f"refusing to unpack {member.name!r} from {tarball.name}")
            out = dest / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            with tar.extractfile(member) as src, open(out, "wb") as dst:
                shutil.copyfileobj(src, dst)


def _jupyter_book() -> str:
    """The `jupyter-book` script of this interpreter's environment, else the one on PATH."""
    beside = Path(sys.executable).parent / "jupyter-book"
    if beside.exists():
        return str(beside)
    found = shutil.which("jupyter-book")
    if found is None:
        raise RuntimeError("jupyter-book is not installed; run `make install` (it pins jupyter-book<2)")
    return found


def _problems(log: str) -> str:
    """The warning and error lines of a Sphinx log (what -W turned into a failure)."""
    lines = [ln for ln in log.splitlines() if "WARNING" in ln or "ERROR" in ln or "Error" in ln]
    return "\n".join(lines) if lines else "\n".join(log.splitlines()[-40:])


def build_html(root: Path | None = None, output: Path | None = None, *, verbose: bool = False) -> Path:
    """Build the book under `root` (default: the checkout) and return its `_build/html/index.html`.

    `output` is the folder that receives `_build/` (default: `root`; tests pass a temporary
    folder so the tree is left alone). Runs `jupyter-book build ROOT -W -n --keep-going`: any
    warning, including a broken reference, fails the build with a RuntimeError listing every
    warning and error line of the log. With `verbose`, the log is echoed as it is produced.
    """
    root = Path(root or checkout_root()).resolve()
    for required in ("_config.yml", "_toc.yml"):
        if not (root / required).is_file():
            raise ValueError(f"root must be a book folder holding {required}, got {root}")
    vendor_mathjax(root)
    command = [_jupyter_book(), "build", str(root), "-W", "-n", "--keep-going"]
    if output is not None:
        output = Path(output).resolve()
        command += ["--path-output", str(output)]
    proc = subprocess.Popen(command, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if verbose:
            print(line, end="", flush=True)
    rc = proc.wait()
    log = "".join(lines)
    index = (output or root) / "_build" / "html" / "index.html"
    if rc != 0 or not index.is_file():
        raise RuntimeError(f"jupyter-book build failed (exit {rc}):\n{_problems(log)}")
    return index


def main(argv: list[str] | None = None) -> int:
    """`python -m ensembles_lib.book [ROOT]`: build the HTML book, print where index.html is."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m ensembles_lib.book",
                                     description="Build the HTML book offline into ROOT/_build/html.")
    parser.add_argument("root", nargs="?", type=Path, default=None, help="book folder (default: the checkout)")
    parser.add_argument("--quiet", action="store_true", help="do not echo the Jupyter Book log")
    args = parser.parse_args(argv)
    try:
        index = build_html(args.root, verbose=not args.quiet)
    except (RuntimeError, ValueError) as err:
        print(f"book build failed: {err}", file=sys.stderr)
        return 1
    print(f"book built: {index}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
