"""The `ensembles` command.

`ensembles data [NAME ...]` decodes and caches datasets (`make data`); `ensembles cache list`
shows the trained-model artifacts and `ensembles cache clear [KEY ...]` deletes them.
`ensembles run CHAPTER [--profile P] [-p NAME VALUE ...] [--to-book | --no-book]` executes one
chapter: the profile's own run with default parameters replaces its book page, any other run goes
to its own run folder under the data root (`runner.plan` decides; the flags override),
`ensembles runs [CHAPTER]` lists those run folders (chapter, profile, parameters, when, wall
time, path), `ensembles book [--profile P] [--chapters ...]` executes chapters into the book then
builds the HTML book, `ensembles list` shows every chapter's parameters (which retrain models),
defaults per profile, meaning, and each profile's expected run time,
`ensembles params CHAPTER [--write]` prints (or writes into the notebook) the chapter's papermill
`parameters` cell, generated from its declaration.
`ensembles assignment CHAPTER [--course DIR] [--profile smoke|cpu] [--exercises-only]` lays out an
nbgrader course folder from the chapter and runs nbgrader's `generate_assignment` (`assignment`).
`ensembles sweep CHAPTER [--profile P] [-p NAME V1,V2 ...] [--seeds 0,1,2] [--scheduler ADDRESS]
[--workers N]` runs every combination as Dask tasks, each into its own run folder, skipping those
finished earlier, and writes the claims combined over seeds (`sweep`); `ensembles book --scheduler
ADDRESS` (or `--workers N` on this machine) runs the book's chapters the same way.

Exit status: 0 done; 1 a chapter or the HTML build failed; 2 a usage error -- an unknown chapter,
profile or parameter, a value out of range, an unusable data root -- told in one line on stderr
before anything runs; 130 interrupted (Ctrl-C), with one line saying where the partial notebook
was kept. Nothing imported at the top imports torch, so a usage error costs a fraction of a second.
"""

from __future__ import annotations

import argparse
import sys

from . import chapters, profiles
from .data import catalog
from .data.dataset import DataError
from .paths import DataRootError, data_root


def prepare_data(names: list[str]) -> int:
    """Decode and cache both base splits of each name; report what is available. Exit status 1
    only when a name the user asked for explicitly is unavailable."""
    explicit = bool(names)
    failed = 0
    for name in names or list(catalog.NAMES):
        try:
            catalog.check_name(name)
            splits = [catalog.get(name, split) for split in ("train", "test")]
        except DataError as err:
            first_line = str(err).splitlines()[0].replace(" Tried, in order:", "")
            print(f"{name:>14}: unavailable - {first_line}" + ("" if explicit else " (see `ensembles data " + name + "`)"))
            if explicit:
                print(str(err), file=sys.stderr)
                failed += 1
            continue
        sizes = ", ".join(f"{d.split} {len(d):,}" for d in splits)
        print(f"{name:>14}: cached ({sizes}; {'x'.join(map(str, splits[0].shape))}; {splits[0].source})")
    return 1 if failed else 0


def cache_command(action: str, keys: list[str]) -> int:
    """`cache list`: every entry with its status (a damaged one says why); `cache clear`: exit 2
    for an unknown key (nothing removed), 1 when some entries could not be removed (the rest were)."""
    from . import cache
    from .store import ClearFailed

    if action == "list":
        entries = cache.list_entries()
        if not entries:
            print(f"no trained-model artifacts under {cache.artifacts_root()}")
        for e in entries:
            wall = f"{e['wall_time_s']:.0f}s" if e["wall_time_s"] is not None else "-"
            summary = " ".join(str(e["summary"]).split())
            print(f"{e['key']:<20} {e['status']:<10} {wall:>7} {e['size_bytes'] / 1e6:8.1f} MB  {summary}")
        return 0
    try:
        removed = cache.clear(keys or None)
    except ValueError as err:
        print(f"ensembles cache clear: {err}", file=sys.stderr)
        return 2
    except ClearFailed as err:
        print(f"ensembles cache clear: {err}", file=sys.stderr)
        return 1
    print(f"removed {len(removed)} artifact(s)" + "".join(f"\n  {k}" for k in removed))
    return 0


def run_chapter(chapter: str, profile: str, overrides: dict, to_book: bool | None = None) -> int:
    """Execute one chapter (parameters already checked); say where it goes and why, show its
    progress on stderr, then print where it went or why it failed.

    Ctrl-C propagates as runner.ChapterInterrupted, which `main` reports."""
    from .runner import ChapterFailed, expected_minutes, plan, run

    where = plan(chapter, profile, overrides, to_book=to_book)
    minutes = expected_minutes(chapter, where.config.profile)
    print(f"ensembles run {chapter}: profile {where.config.profile}"
          + "".join(f", {k}={v!r}" for k, v in overrides.items())
          + ("" if minutes is None else f"; expected about {minutes:g} min")
          + f"\n  -> {where.folder}/ ({where.reason}"
          + ("" if where.to_book else "; the book is left alone, --to-book replaces its page") + ")", flush=True)
    try:
        result = run(chapter, profile, overrides, to_book=where.to_book, progress=sys.stderr)
    except ChapterFailed as err:
        print(str(err), file=sys.stderr)
        return 1
    except ValueError as err:  # a registered chapter whose notebook is missing
        print(f"ensembles run: {err}", file=sys.stderr)
        return 2
    print(f"ensembles run {chapter}: wrote {result.output} in {result.wall_time_s:.1f} s")
    return 0


def run_command(chapter: str, profile: str, pairs: list[list[str]], to_book: bool | None = None) -> int:
    """`ensembles run`: the chapter, the profile, every parameter and the data root are checked
    before anything heavy is imported or papermill starts."""
    try:
        profiles.check_profile(profile)
        overrides = chapters.chapter(chapter).parse(pairs)
    except ValueError as err:
        print(f"ensembles run: {err}", file=sys.stderr)
        return 2
    data_root()  # an unusable data root is a DataRootError, reported by main
    return run_chapter(chapter, profile, overrides, to_book)


def parse_grid(chapter: str, pairs: list[list[str]]) -> dict[str, list]:
    """`-p NAME V1,V2` pairs as {name: [typed values]}. Values that hold commas themselves (a list
    parameter's, such as an eps grid, or DVERGE's sizes "3,5") are separated by ';' instead:
    `-p eps_grid "0,0.1;0,0.2"`, `-p sizes "3;3,5"`; a list parameter's text without ';' is one value."""
    declared = chapters.chapter(chapter)
    grid = {}
    for name, text in pairs:
        param = declared.param(name)
        if ";" in text:
            items = text.split(";")
        else:
            items = [text] if param.kind in profiles.LIST_KINDS else text.split(",")
        grid[name] = [param.parse(item) for item in items if item.strip()]
    return grid


def sweep_command(chapter: str, profile: str, pairs: list[list[str]], seeds: str | None, scheduler: str | None,
                  workers: int | None, to_book: bool = False) -> int:
    """`ensembles sweep`: the grid, every value and the data root are checked before a cluster starts;
    exit 1 when a run failed (the others finished and were combined)."""
    from .sweep import plan_sweep

    try:
        profiles.check_profile(profile)
        grid = parse_grid(chapter, pairs)
        seed_list = None
        if seeds is not None:
            try:
                seed_list = [int(s) for s in seeds.split(",") if s.strip()]
            except ValueError:
                raise ValueError(f"--seeds must be integers separated by commas, e.g. 0,1,2; got {seeds!r}") from None
        if workers is not None and workers < 1:
            raise ValueError(f"--workers must be an int >= 1, got {workers}")
        if to_book and (grid or seed_list is None):
            raise ValueError("--to-book writes the claims over seeds beside the page: give --seeds and no -p")
        plan_sweep(chapter, profile, grid, seed_list)
    except ValueError as err:
        print(f"ensembles sweep: {err}", file=sys.stderr)
        return 2
    data_root()
    from .sweep import sweep

    report = sweep(chapter, profile, grid, seed_list, scheduler=scheduler, workers=workers, to_book=to_book)
    if report.failed:
        print(f"ensembles sweep: {len(report.failed)} run(s) failed: {', '.join(report.failed)}; rerun the same "
              "command to run only those", file=sys.stderr)
        return 1
    return 0


def book_command(profile: str, chosen: list[str] | None, scheduler: str | None = None,
                 workers: int | None = None) -> int:
    """`ensembles book`: run the chapters (all by default), then build the HTML from book/.

    A failed chapter keeps its last good page, the build still runs, and the exit status is 1.
    """
    try:
        profiles.check_profile(profile)
        for chapter in chosen or []:
            chapters.chapter(chapter)
    except ValueError as err:
        print(f"ensembles book: {err}", file=sys.stderr)
        return 2
    data_root()
    # the book is being rebuilt under this profile: its runs replace the pages whatever they were
    if scheduler is not None or workers is not None:
        from .sweep import run_book

        failed = sorted(run_book(chosen or chapters.names(), profile, scheduler=scheduler, workers=workers))
    else:
        failed = [c for c in (chosen or chapters.names()) if run_chapter(c, profile, {}, to_book=True) != 0]
    from .book import build_html

    try:
        index = build_html()
    except RuntimeError as err:
        print(f"ensembles book: the HTML build failed:\n{err}", file=sys.stderr)
        return 1
    print(f"ensembles book: {index}")
    if failed:
        print(f"ensembles book: chapter(s) failed, their last good pages were used: {', '.join(failed)}",
              file=sys.stderr)
        return 1
    return 0


def params_command(chapter: str, write: bool) -> int:
    """`ensembles params`: print the chapter's papermill parameters cell, generated from its
    declaration; with write, put it into notebooks/CHAPTER.ipynb in place of the old one."""
    try:
        cell = chapters.chapter(chapter).parameters_cell()
    except ValueError as err:
        print(f"ensembles params: {err}", file=sys.stderr)
        return 2
    if not write:
        print(cell)
        return 0
    from .runner import write_parameters_cell

    print(f"ensembles params: wrote the parameters cell of {write_parameters_cell(chapter)}")
    return 0


def _shown(value) -> str:
    """A default as `ensembles list` shows it; a list of more than four items is shortened."""
    if not isinstance(value, tuple):
        return str(value)
    numbers = [f"{v:g}" if isinstance(v, float) else str(v) for v in value]
    return ",".join(numbers) if len(numbers) <= 4 else f"{numbers[0]},{numbers[1]},…,{numbers[-1]} ({len(numbers)})"


def table(rows: list[list[str]], indent: str = "  ") -> list[str]:
    """`rows` as lines whose columns start at the same place (two spaces between columns; the
    last column is not padded)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return [(indent + "  ".join([cell.ljust(w) for cell, w in zip(row, widths)] + [row[-1]])).rstrip()
            for row in rows]


def list_command() -> int:
    """`ensembles list`: per chapter, one table: a row of expected run times per profile, then one
    row per parameter (whether changing it retrains models, its default in each profile, what it
    means and accepts)."""
    from .runner import expected_minutes

    for name in chapters.names():
        print(f"{name}  (ensembles run {name} --profile {'|'.join(profiles.PROFILE_CHOICES)} -p NAME VALUE)")
        times = [expected_minutes(name, prof) for prof in profiles.PROFILES]
        rows = [["parameter", "retrains", *profiles.PROFILES, "meaning; accepts"],
                ["(run time)", "", *("not measured" if m is None else f"~{m:g} min" for m in times), ""]]
        rows += [[p.name, "yes" if p.retrains else "no", *(_shown(p.defaults[prof]) for prof in profiles.PROFILES),
                  f"{p.meaning}; {p.allowed()}"] for p in chapters.parameters(name)]
        print("\n".join(table(rows)))
        print()
    print("retrains yes: changing it trains the models anew; otherwise the cached models are reused.")
    return 0


def runs_command(chapter: str | None) -> int:
    """`ensembles runs`: the run folders of reruns with changed parameters, oldest first."""
    from .runner import list_runs, runs_dir

    if chapter is not None:
        try:
            chapters.chapter(chapter)
        except ValueError as err:
            print(f"ensembles runs: {err}", file=sys.stderr)
            return 2
    runs = list_runs(chapter=chapter)
    complete = [r for r in runs if r["complete"]]
    if not complete:
        print(f"no run folders under {runs_dir()}" + (f" for {chapter}" if chapter else ""))
    else:
        rows = [["chapter", "profile", "parameters", "when (UTC)", "wall", "path"]]
        rows += [[r["chapter"], r["profile"],
                  " ".join(f"{k}={_shown(tuple(v) if isinstance(v, list) else v)}" for k, v in r["parameters"].items())
                  or "(defaults)", str(r["started"]).replace("T", " ")[:16], f"{float(r['wall_time_s']):.0f} s",
                  str(r["path"])] for r in complete]
        print("\n".join(table(rows, indent="")))
    unfinished = [r for r in runs if not r["complete"]]
    if unfinished and chapter is None:
        print(f"{len(unfinished)} folder(s) with no completed run: " + ", ".join(str(r["path"]) for r in unfinished))
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ensembles", description="The robust-ensembles companion's command line.")
    commands = parser.add_subparsers(dest="command", required=True)
    data = commands.add_parser("data", help="decode and cache datasets under the data root")
    data.add_argument("names", nargs="*", help=f"dataset names (default: all of {', '.join(catalog.NAMES)})")
    cache_parser = commands.add_parser("cache", help="list or clear trained-model artifacts")
    cache_parser.add_argument("action", choices=("list", "clear"))
    cache_parser.add_argument("keys", nargs="*", help="clear: artifact keys or unique prefixes (default: all)")
    profile_help = "smoke, cpu, gpu, paper, or auto (gpu with CUDA, else cpu; the default)"
    run_parser = commands.add_parser("run", help="execute notebooks/CHAPTER.ipynb: the profile's own run into "
                                                 "book/, a run with changed parameters into its own run folder")
    run_parser.add_argument("chapter", help="a chapter name (`ensembles list` shows them)")
    run_parser.add_argument("--profile", default="auto", help=profile_help)
    run_parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                            help="override one parameter (repeatable); lists as comma-separated numbers")
    destination = run_parser.add_mutually_exclusive_group()
    destination.add_argument("--to-book", dest="to_book", action="store_const", const=True, default=None,
                             help="replace the book page even though parameters changed")
    destination.add_argument("--no-book", dest="to_book", action="store_const", const=False,
                             help="write a run folder even for the profile's own run")
    runs_parser = commands.add_parser("runs", help="list the run folders of chapters rerun with changed parameters")
    runs_parser.add_argument("chapter", nargs="?", help="only this chapter's runs")
    book_parser = commands.add_parser("book", help="execute chapters, then build the HTML book in _build/html")
    book_parser.add_argument("--profile", default="auto", help=profile_help)
    book_parser.add_argument("--chapters", nargs="+", metavar="CHAPTER", help="the chapters to run (default: all)")
    book_parser.add_argument("--scheduler", metavar="ADDRESS", help="run the chapters as tasks on this Dask scheduler "
                             "(e.g. tcp://host:8786)")
    book_parser.add_argument("--workers", type=int, metavar="N", help="run the chapters on a local Dask cluster of N "
                             "workers")
    sweep_parser = commands.add_parser("sweep", help="run a grid of parameter values and seeds as Dask tasks, each "
                                       "into its own run folder, and combine the claims over seeds")
    sweep_parser.add_argument("chapter", help="a chapter name (`ensembles list` shows them)")
    sweep_parser.add_argument("--profile", default="auto", help=profile_help)
    sweep_parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUES"),
                              help="a parameter and the values to try, separated by commas (by ';' for a list "
                              "parameter); repeat for a grid")
    sweep_parser.add_argument("--seeds", metavar="S1,S2,...", help="the chapter's seed parameter over these values")
    sweep_parser.add_argument("--scheduler", metavar="ADDRESS", help="a Dask scheduler (default: a LocalCluster "
                              "sized to this machine)")
    sweep_parser.add_argument("--workers", type=int, metavar="N", help="workers of the LocalCluster (default: one a "
                              "run, up to one a core)")
    sweep_parser.add_argument("--to-book", action="store_true", help="with --seeds only: write the claims over seeds "
                              "beside the chapter's page, whose claims table then shows them")
    commands.add_parser("list", help="show the chapters, their parameters (which retrain models), defaults per "
                                     "profile, meaning and expected run times")
    params_parser = commands.add_parser("params", help="print a chapter's papermill parameters cell, made from "
                                                       "its declaration (--write: put it into the notebook)")
    params_parser.add_argument("chapter", help="a chapter name (`ensembles list` shows them)")
    params_parser.add_argument("--write", action="store_true", help="replace the cell in notebooks/CHAPTER.ipynb")
    assignment_parser = commands.add_parser("assignment", help="an nbgrader assignment from a chapter: the course "
                                            "folder, its source/ and nbgrader's student version in release/")
    assignment_parser.add_argument("chapter", help="a chapter name (`ensembles list` shows them)")
    assignment_parser.add_argument("--course", default="course", help="the nbgrader course folder (default: ./course)")
    assignment_parser.add_argument("--profile", default="smoke", help="smoke (the default) or cpu: the profile the "
                                   "students' notebook runs")
    assignment_parser.add_argument("--exercises-only", action="store_true", help="only the title, objectives and "
                                   "exercises: no data, no training, graded in seconds")
    return parser


def assignment_command(chapter: str, course: str, profile: str, exercises_only: bool) -> int:
    """`ensembles assignment`: the chapter and profile are checked before nbgrader starts; prints the
    student version's path and the teacher's next steps."""
    from .assignment import ClassroomError, build_assignment

    try:
        release = build_assignment(chapter, course, profile, exercises_only=exercises_only)
    except ValueError as err:
        print(f"ensembles assignment: {err}", file=sys.stderr)
        return 2
    except (ClassroomError, OSError) as err:  # nbgrader missing or failing, a course folder we cannot write
        print(f"ensembles assignment: {err}", file=sys.stderr)
        return 1
    folder, name = release.parents[2], release.parent.name
    print(f"student version: {release}\n"
          f"next, in {folder}: hand out release/{name}/, collect each student's copy into submitted/<student>/{name}/, "
          f"run `nbgrader autograde {name}`, and read the scores from gradebook.db (`nbgrader export` writes a CSV)")
    return 0


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "data":
        return prepare_data(args.names)
    if args.command == "run":
        return run_command(args.chapter, args.profile, args.parameter, args.to_book)
    if args.command == "runs":
        return runs_command(args.chapter)
    if args.command == "book":
        return book_command(args.profile, args.chapters, args.scheduler, args.workers)
    if args.command == "sweep":
        return sweep_command(args.chapter, args.profile, args.parameter, args.seeds, args.scheduler, args.workers,
                             args.to_book)
    if args.command == "list":
        return list_command()
    if args.command == "params":
        return params_command(args.chapter, args.write)
    if args.command == "assignment":
        return assignment_command(args.chapter, args.course, args.profile, args.exercises_only)
    return cache_command(args.action, args.keys)


def main(argv: list[str] | None = None) -> int:
    """Run one `ensembles` command and return its exit status; the errors a user can cause are
    one line on stderr, never a traceback."""
    args = _parser().parse_args(argv)
    try:
        return _dispatch(args)
    except DataRootError as err:
        print(f"ensembles {args.command}: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:
        # runner.ChapterInterrupted's message says where the partial notebook was kept
        print(f"ensembles {args.command}: {err or 'interrupted'}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
