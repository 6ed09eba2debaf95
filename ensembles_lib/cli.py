"""The `ensembles` command.

`ensembles data [NAME ...]` decodes and caches datasets (`make data`); `ensembles cache list`
shows the trained-model artifacts and `ensembles cache clear [KEY ...]` deletes them.
"""

from __future__ import annotations

import argparse
import sys

from .data import catalog
from .data.dataset import DataError


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
    from . import cache

    if action == "list":
        entries = cache.list_entries()
        if not entries:
            print(f"no trained-model artifacts under {cache.artifacts_root()}")
        for e in entries:
            wall = f"{e['wall_time_s']:.0f}s" if e["wall_time_s"] is not None else "-"
            print(f"{e['key'][:16]}  {e['status']:<10} {wall:>7} {e['size_bytes'] / 1e6:8.1f} MB  {e['summary']}")
        return 0
    try:
        removed = cache.clear(keys or None)
    except ValueError as err:
        print(f"ensembles cache clear: {err}", file=sys.stderr)
        return 2
    print(f"removed {len(removed)} artifact(s)" + "".join(f"\n  {k}" for k in removed))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ensembles", description="The robust-ensembles companion's command line.")
    commands = parser.add_subparsers(dest="command", required=True)
    data = commands.add_parser("data", help="decode and cache datasets under the data root")
    data.add_argument("names", nargs="*", help=f"dataset names (default: all of {', '.join(catalog.NAMES)})")
    cache_parser = commands.add_parser("cache", help="list or clear trained-model artifacts")
    cache_parser.add_argument("action", choices=("list", "clear"))
    cache_parser.add_argument("keys", nargs="*", help="clear: artifact keys or unique prefixes (default: all)")
    args = parser.parse_args(argv)
    if args.command == "data":
        return prepare_data(args.names)
    return cache_command(args.action, args.keys)


if __name__ == "__main__":
    sys.exit(main())
