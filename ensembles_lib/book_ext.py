"""Sphinx extension for the book: the `claims-summary` directive (the intro's summary table),
and one repair of the page scripts.

    ```{claims-summary} /book/results
    ```

renders one table row per claim of every chapter's results file (`book/results/<chapter>.json`,
written by the chapter's last cell): chapter · claim · paper · ours · holds · note. The table is
built when the book is built, from the committed JSON files alone, so `make html` shows the
current results without rerunning anything. The chapter cell links to the chapter's page when
the book has one. The page using the directive is re-read on every build, so a new or changed
results file always shows up. Loaded through `_config.yml` (sphinx: extra_extensions).

The repair: with Sphinx 7.4, the inline scripts some Jupyter Book extensions register while the
docs are read land twice in every page (once with filename None, once with ''), and the second
`const THEBE_JS_URL` of sphinx-thebe then throws a SyntaxError in the browser. Each page keeps
one copy of each script.
"""

from __future__ import annotations

from pathlib import Path

from docutils import nodes
from docutils.parsers.rst import Directive
from sphinx import addnodes

from .results import load_results

COLUMNS = ("chapter", "claim", "paper", "ours", "holds", "note")
HOLDS_TEXT = {True: "yes", False: "no", None: "undecided"}


def format_value(value) -> str:
    """A paper/ours cell: floats to 3 significant digits, integers and text as they are."""
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _paragraph(*children) -> nodes.paragraph:
    return nodes.paragraph("", "", *children)


def _row(cells: list[nodes.Node]) -> nodes.row:
    row = nodes.row()
    for cell in cells:
        entry = nodes.entry()
        entry += cell
        row += entry
    return row


class ClaimsSummary(Directive):
    """`claims-summary [FOLDER]`: the table of every chapter's claims; FOLDER is relative to the
    page, or to the book root with a leading '/' (default '/book/results')."""

    optional_arguments = 1
    has_content = False

    def run(self) -> list[nodes.Node]:
        env = self.state.document.settings.env
        folder_arg = self.arguments[0] if self.arguments else "/book/results"
        _, folder = env.relfn2path(folder_arg, env.docname)
        folder = Path(folder)
        env.ensembles_claims_docs = getattr(env, "ensembles_claims_docs", set()) | {env.docname}
        try:
            records = load_results(folder)
        except ValueError as err:
            raise self.error(f"claims-summary: cannot read the results in {folder}: {err}")
        for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
            env.note_dependency(str(path))
        if not records:
            return [_paragraph(nodes.emphasis(
                "", f"No chapter has written its results yet ({folder_arg} is empty); "
                    "run `ensembles run CHAPTER` or `make book`."))]
        return [self._table(env, records)]

    def _chapter_cell(self, env, record: dict) -> nodes.paragraph:
        docname = f"book/{record['chapter']}"
        label = nodes.inline("", record["chapter"])
        if docname in env.found_docs:
            ref = addnodes.pending_xref("", refdomain="std", reftype="doc", reftarget=f"/{docname}",
                                        refexplicit=True, refdoc=env.docname)
            ref += label
            label = ref
        detail = f" ({record['profile']}, {record['dataset']}, {record['wall_time_s']:.0f} s)"
        return _paragraph(label, nodes.Text(detail))

    def _table(self, env, records: list[dict]) -> nodes.table:
        table = nodes.table(classes=["claims-summary"])
        group = nodes.tgroup(cols=len(COLUMNS))
        table += group
        for width in (14, 40, 10, 10, 8, 18):
            group += nodes.colspec(colwidth=width)
        head = nodes.thead()
        head += _row([_paragraph(nodes.Text(name)) for name in COLUMNS])
        group += head
        body = nodes.tbody()
        for record in records:
            for claim in record["claims"]:
                body += _row([
                    self._chapter_cell(env, record),
                    _paragraph(nodes.Text(claim["claim"])),
                    _paragraph(nodes.Text(format_value(claim["paper"]))),
                    _paragraph(nodes.Text(format_value(claim["ours"]))),
                    _paragraph(nodes.strong("", HOLDS_TEXT[claim["holds"]])),
                    _paragraph(nodes.Text(claim["note"])),
                ])
        group += body
        return table


def _script_key(js) -> tuple:
    # An inline script is registered with filename None by one route and '' by the other.
    attributes = getattr(js, "attributes", {})
    return (getattr(js, "filename", js) or "", tuple(sorted((k, str(v)) for k, v in attributes.items())))


def _dedupe_scripts(app, pagename, templatename, context, doctree) -> None:
    """Keep the first of several identical scripts (same file or body, same attributes)."""
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, kept = set(), []
    for js in scripts:
        key = _script_key(js)
        if key not in seen:
            seen.add(key)
            kept.append(js)
    context["script_files"] = kept


def _always_reread(app, env, added, changed, removed) -> list[str]:
    """Pages with a summary table are re-read on every build: a results file added since the
    last build is not among their recorded dependencies."""
    return sorted(getattr(env, "ensembles_claims_docs", set()) & set(env.found_docs))


def _purge(app, env, docname) -> None:
    getattr(env, "ensembles_claims_docs", set()).discard(docname)


def _merge(app, env, docnames, other) -> None:
    env.ensembles_claims_docs = (getattr(env, "ensembles_claims_docs", set())
                                 | getattr(other, "ensembles_claims_docs", set()))


def setup(app) -> dict:
    app.add_directive("claims-summary", ClaimsSummary)
    app.connect("env-get-outdated", _always_reread)
    app.connect("env-purge-doc", _purge)
    app.connect("env-merge-info", _merge)
    app.connect("html-page-context", _dedupe_scripts)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
