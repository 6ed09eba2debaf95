"""Sphinx extension for the book: the results front page, each chapter's claims, the papers still
without a chapter, code folded by default, and one repair of the page scripts.

Directives (loaded through `_config.yml`, sphinx: extra_extensions):

    ```{claims-summary}
    ```

on the intro: one line per chapter, in the order of `_toc.yml`, with the number of claims that
hold, do not hold and are undecided, the profile, dataset and run time; below it, each chapter's
claims and notes folded in a `<details>` (nothing scrolls sideways in an 800 px column).

    ```{claims-summary} strength_in_numbers
    ```

at the end of a chapter: all of that chapter's claims, one row each (claim, paper, ours,
verdict), then a full-width row with how it was decided when the record says so (`rule`,
`statistic`, each of its `parts`, the note; see results.py). Both read `results/<chapter>.json`
beside the page, i.e. `book/results/` (option `:results: FOLDER`, relative to the page or to the
book root with a leading '/'; a book folder written through $ENSEMBLES_BOOK_DIR has the same
layout) when the book is built, so `make html` shows the committed results without rerunning
anything; pages using them are re-read on every build.

    ```{papers-without-chapter}
    ```

lists the papers of the bibliography (`bibtex_bibfiles`) that no page of `_toc.yml` is named
after (a chapter is named after its paper's citation key, e.g. `dverge`).

Cells (`source-read` on every notebook page): papermill's `parameters` and `injected-parameters`
cells are removed from the page, and a code cell that carries none of the visibility tags below
gets `hide-input`: code is folded unless a chapter tags a cell `show-input` to teach with it.
Outputs are never folded by this rule; stderr is removed by `_config.yml` (execute:
stderr_output: remove).

The repair: with Sphinx 7.4, the inline scripts some Jupyter Book extensions register while the
docs are read land twice in every page (once with filename None, once with ''), and the second
`const THEBE_JS_URL` of sphinx-thebe then throws a SyntaxError in the browser. Each page keeps
one copy of each script.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from docutils import nodes
from docutils.parsers.rst import Directive, directives
from sphinx import addnodes

from .results import load_results

VERDICTS = {True: ("holds", "verdict-holds"), False: ("does not hold", "verdict-fails"),
            None: ("undecided", "verdict-undecided")}
# Tags papermill gives the cells that set parameters: never part of a page.
PARAMETER_TAGS = ("parameters", "injected-parameters")
# A code cell with one of these tags has chosen how it shows; any other gets `hide-input`.
SHOW_INPUT = "show-input"
VISIBILITY_TAGS = frozenset({SHOW_INPUT, "hide-input", "hide-cell", "remove-input", "remove_input",
                             "remove-cell", "remove_cell"})
# The statistic's fields in the order they are written (results.STATISTIC_KEYS); `rule`, `part`
# and `verdict` are shown beside it, `alpha` inside the interval's label; any other key follows.
STATISTIC_ORDER = ("test", "difference", "rate", "ratio", "interval", "p_value", "n", "discordant",
                   "n_to_decide")
STATISTIC_ELSEWHERE = ("rule", "part", "verdict", "alpha")
# The results folder, relative to the page: book/results for the intro and the chapters.
DEFAULT_RESULTS = "results"
CSS_FILE = "ensembles-book.css"
CSS = """\
/* Written by ensembles_lib.book_ext. Long output lines (a Config(...) repr) wrap, not scroll. */
div.cell_output pre { white-space: pre-wrap; overflow-wrap: anywhere; }
table.claims-summary { width: 100%; }
table.claims-summary td, table.claims-summary th { overflow-wrap: break-word; white-space: normal; }
table.claims-summary td:nth-child(2), table.claims-summary td:nth-child(3),
table.claims-summary td:nth-child(4) { text-align: center; }
table.claims-chapter { table-layout: fixed; width: 100%; }
table.claims-chapter th:nth-child(1) { width: 38%; }
table.claims-chapter th:nth-child(2), table.claims-chapter th:nth-child(3) { width: 22%; }
table.claims-chapter th:nth-child(4) { width: 18%; }
table.claims-chapter tr.claim-row td:nth-child(4) { overflow-wrap: normal; }
/* A claim's two rows (what it says, how it was decided) read as one block. */
table.claims-chapter tbody tr { background: transparent !important; }
table.claims-chapter tr.claim-row td { border-top: 2px solid var(--pst-color-border, #ccc); }
table.claims-chapter tr.claim-detail td { border-top: none; padding-top: 0; }
table.claims-chapter tr.claim-detail p { margin: 0.1em 0; }
table.claims-chapter td, table.claims-chapter th { overflow-wrap: anywhere; white-space: normal; }
table.claims-summary p, table.claims-chapter p { margin: 0; }
.verdict-holds { color: #1a7f37; font-weight: 600; }
.verdict-fails { color: #cf222e; font-weight: 600; }
.verdict-undecided { color: #9a6700; font-weight: 600; }
.claims-small { font-size: 0.85em; color: var(--pst-color-text-muted, #555); }
details.claims-notes { margin: 0.3em 0; }
details.claims-notes > summary { cursor: pointer; }
details.claims-notes ul { margin-top: 0.3em; }
"""


def format_value(value) -> str:
    """A paper/ours cell: floats to 3 significant digits, integers and text as they are."""
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _number(value, signed: bool = False) -> str:
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:+.3f}" if signed else f"{value:.3g}"
    return str(value)


def format_statistic(statistic) -> str:
    """One line for a claim's statistic (results.py: `statistic`, or one of its `parts`): the test,
    the signed difference (or rate, ratio), the interval at 1 - alpha, p, n, the discordant pairs
    of a McNemar test and the size that would decide an undecided claim; any other key as
    `key value`. Empty for None or an empty dict; a plain value is shown as it is."""
    if not statistic:
        return ""
    if not isinstance(statistic, dict):
        return format_value(statistic)
    others = sorted(set(statistic) - set(STATISTIC_ORDER) - set(STATISTIC_ELSEWHERE))
    parts = []
    for key in STATISTIC_ORDER + tuple(others):
        value = statistic.get(key)
        if value is None:
            continue
        if key == "test":
            parts.append(str(value))
        elif key == "difference":
            parts.append(f"difference {_number(value, signed=True)}")
        elif key == "interval" and isinstance(value, (list, tuple)) and len(value) == 2:
            alpha = statistic.get("alpha")
            level = f"{100 * (1 - alpha):g}% interval" if isinstance(alpha, (int, float)) else "interval"
            signed = "ratio" not in statistic and "rate" not in statistic
            parts.append(f"{level} [{_number(value[0], signed)}, {_number(value[1], signed)}]")
        elif key == "p_value":
            parts.append("p < 0.001" if isinstance(value, float) and value < 0.001 else
                         f"p = {value:.2g}" if isinstance(value, float) else f"p = {value}")
        elif key == "n":
            parts.append(f"n = {value}")
        elif key == "discordant" and isinstance(value, (list, tuple)) and len(value) == 2:
            parts.append(f"discordant pairs {value[0]} / {value[1]}")
        elif key == "n_to_decide":
            parts.append(f"about {value} images would decide it")
        else:
            parts.append(f"{key.replace('_', ' ')} {_number(value)}")
    return ", ".join(parts)


def verdict_counts(claims: list[dict]) -> tuple[int, int, int]:
    """(holds, does not hold, undecided) among `claims`."""
    verdicts = [c["holds"] for c in claims]
    return verdicts.count(True), verdicts.count(False), sum(v is None for v in verdicts)


def book_order(site_map) -> list[str]:
    """The docnames of a sphinx-external-toc site map, depth first from its root (reading order)."""
    order, stack = [], [site_map.root.docname]
    while stack:
        name = stack.pop(0)
        if name in order or name not in site_map:
            continue
        order.append(name)
        children = [str(item) for tree in site_map[name].subtrees for item in tree.items
                    if type(item).__name__ == "FileItem"]
        stack[:0] = children
    return order


def _paragraph(*children, classes=()) -> nodes.paragraph:
    return nodes.paragraph("", "", *children, classes=list(classes))


def _verdict(holds) -> nodes.inline:
    text, css = VERDICTS[holds]
    return nodes.inline("", text, classes=[css])


def _row(cells: list, classes=()) -> nodes.row:
    """A table row; a cell is a node or text, and a row given as a node is taken as it is."""
    if isinstance(cells, nodes.row):
        return cells
    row = nodes.row(classes=list(classes))
    for cell in cells:
        entry = nodes.entry()
        entry += cell if isinstance(cell, nodes.Node) else _paragraph(nodes.Text(str(cell)))
        row += entry
    return row


def _spanning_row(children: list, columns: int, classes=()) -> nodes.row:
    """One cell across all `columns` of a table."""
    entry = nodes.entry(morecols=columns - 1)
    entry.extend(children)
    return nodes.row("", entry, classes=list(classes))


def _table(css: str, widths: tuple, head: list, rows: list) -> nodes.table:
    table = nodes.table(classes=[css])
    group = nodes.tgroup(cols=len(widths))
    table += group
    for width in widths:
        group += nodes.colspec(colwidth=width)
    thead = nodes.thead()
    thead += _row(head)
    group += thead
    body = nodes.tbody()
    for row in rows:
        body += _row(row)
    group += body
    return table


class details(nodes.General, nodes.Element):
    """A folded block: HTML `<details>`, its first child a `summary` node."""


class summary(nodes.General, nodes.TextElement):
    """The always-visible line of a `details` block."""


def _visit_details(self, node):
    self.body.append(self.starttag(node, "details", CLASS=" ".join(node.get("classes", []))))


def _depart_details(self, node):
    self.body.append("</details>\n")


def _visit_summary(self, node):
    self.body.append("<summary>")


def _depart_summary(self, node):
    self.body.append("</summary>\n")


def _pass(self, node):
    pass


def _site_map(env):
    return getattr(env, "external_site_map", None) or getattr(env.app.config, "external_site_map", None)


def _note_reread(env) -> None:
    env.ensembles_claims_docs = getattr(env, "ensembles_claims_docs", set()) | {env.docname}


def seeds_line(claim: dict) -> str:
    """A claim combined over seeds (`sweep.combine`) in words: "holds in 2 of 3 seeds (over seeds:
    undecided); effect 0.031 [-0.012, 0.074] across seeds", the line a chapter shows beside its run."""
    text = f"holds in {claim['holds_in']} of {claim['seeds']} seeds (over seeds: {claim['verdict']})"
    if claim.get("effect_mean") is not None:
        text += f"; effect {_number(claim['effect_mean'], signed=True)}"
        if claim.get("effect_interval"):
            low, high = claim["effect_interval"]
            text += f" [{_number(low, signed=True)}, {_number(high, signed=True)}] across seeds"
    return text


def load_seeds(folder: Path, chapter: str) -> dict[str, dict]:
    """The chapter's claims combined over seeds (`<results>/seeds/<chapter>.json`, written by
    `ensembles sweep CHAPTER --seeds ... --to-book`) by claim id; {} when there is none."""
    path = folder / "seeds" / f"{chapter}.json"
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return {c["id"]: c for c in record.get("claims", []) if isinstance(c, dict) and "id" in c}


class ClaimsSummary(Directive):
    """`claims-summary [CHAPTER]` with option `:results: FOLDER` (default 'results', beside the page):
    without CHAPTER, the front page's one line per chapter; with it, that chapter's claims."""

    optional_arguments = 1
    has_content = False
    option_spec = {"results": directives.unchanged}

    def run(self) -> list[nodes.Node]:
        env = self.state.document.settings.env
        folder_arg = self.options.get("results", DEFAULT_RESULTS)
        _, folder = env.relfn2path(folder_arg, env.docname)
        folder = Path(folder)
        _note_reread(env)
        try:
            records = load_results(folder)
        except ValueError as err:
            raise self.error(f"claims-summary: cannot read the results in {folder}: {err}")
        for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
            env.note_dependency(str(path))
        if self.arguments:
            chapter = self.arguments[0]
            if "/" in chapter or chapter.endswith(".json"):
                raise self.error(f"claims-summary takes a chapter name (e.g. dverge), got {chapter!r}; "
                                 "name a results folder with the :results: option")
            record = next((r for r in records if r["chapter"] == chapter), None)
            if record is None:
                return [_paragraph(nodes.emphasis(
                    "", f"No results for {chapter} yet ({folder_arg}/{chapter}.json is missing); "
                        f"run `ensembles run {chapter}`."))]
            seeds_path = folder / "seeds" / f"{chapter}.json"
            if seeds_path.is_file():
                env.note_dependency(str(seeds_path))
            return self._chapter(record, load_seeds(folder, chapter))
        if not records:
            return [_paragraph(nodes.emphasis(
                "", f"No chapter has written its results yet ({folder_arg} is empty); "
                    "run `ensembles run CHAPTER` or `make book`."))]
        return self._front_page(env, self._in_book_order(env, records))

    @staticmethod
    def _in_book_order(env, records: list[dict]) -> list[dict]:
        site_map = _site_map(env)
        order = book_order(site_map) if site_map is not None else []
        rank = {name.rpartition("/")[2]: i for i, name in enumerate(order)}
        return sorted(records, key=lambda r: (rank.get(r["chapter"], len(rank)), r["chapter"]))

    def _chapter_link(self, env, chapter: str) -> nodes.Node:
        docname = f"book/{chapter}"
        label = nodes.inline("", chapter)
        if docname not in env.found_docs:
            return label
        ref = addnodes.pending_xref("", refdomain="std", reftype="doc", reftarget=f"/{docname}",
                                    refexplicit=True, refdoc=env.docname)
        ref += label
        return ref

    def _front_page(self, env, records: list[dict]) -> list[nodes.Node]:
        rows = []
        for record in records:
            counts = verdict_counts(record["claims"])
            rows.append([
                _paragraph(self._chapter_link(env, record["chapter"])),
                *(_paragraph(nodes.inline("", str(n), classes=[VERDICTS[v][1]] if n else []))
                  for n, v in zip(counts, (True, False, None))),
                record["profile"], record["dataset"], _duration(record["wall_time_s"]),
            ])
        table = _table("claims-summary", (22, 10, 12, 12, 9, 17, 10),
                       ["chapter", "holds", "does not hold", "undecided", "profile", "dataset",
                        "run time"], rows)
        folded = []
        for record in records:
            box = details(classes=["claims-notes"])
            box += summary("", "", nodes.strong("", record["chapter"]),
                           nodes.Text(f": {len(record['claims'])} claims and their notes"))
            items = nodes.bullet_list()
            for claim in record["claims"]:
                text = [_verdict(claim["holds"]), nodes.Text(f" {claim['claim']}")]
                if claim["note"]:
                    text += [nodes.Text(" "), nodes.inline("", claim["note"], classes=["claims-small"])]
                items += nodes.list_item("", _paragraph(*text))
            box += items
            folded.append(box)
        return [table, *folded]

    def _chapter(self, record: dict, seeds: dict[str, dict] | None = None) -> list[nodes.Node]:
        """One row a claim (claim, paper, ours, verdict), then one full-width row with how it was
        decided: the rule, the statistic, each part's verdict and statistic, the note, and, when a
        sweep over seeds was written for the book, the claim over those seeds."""
        rows = []
        for claim in record["claims"]:
            rows.append(_row([_paragraph(nodes.Text(claim["claim"])),
                              _paragraph(nodes.Text(format_value(claim["paper"]))),
                              _paragraph(nodes.Text(format_value(claim["ours"]))),
                              _paragraph(_verdict(claim["holds"]))], classes=["claim-row"]))
            lines = []
            if claim.get("rule"):
                lines.append(("Rule", claim["rule"]))
            if format_statistic(claim.get("statistic")):
                lines.append(("Statistic", format_statistic(claim["statistic"])))
            for part in claim.get("parts") or []:
                label = f"Part: {part['part']}" if part.get("part") else "Part"
                lines.append((label, "; ".join(filter(None, (part.get("verdict"), format_statistic(part))))))
            if claim["note"]:
                lines.append(("Note", claim["note"]))
            if seeds and claim.get("id") in seeds:
                lines.append(("Across seeds", seeds_line(seeds[claim["id"]])))
            if lines:
                detail = [_paragraph(nodes.emphasis("", f"{name}: "), nodes.Text(text)) for name, text in lines]
                rows.append(_spanning_row(detail, 4, classes=["claim-detail", "claims-small"]))
        counts = verdict_counts(record["claims"])
        caption = _paragraph(nodes.Text(
            f"{record['chapter']}, profile {record['profile']}, {record['dataset']}, "
            f"{_duration(record['wall_time_s'])}: {counts[0]} hold, {counts[1]} do not hold, "
            f"{counts[2]} undecided."), classes=["claims-small"])
        return [caption, _table("claims-chapter", (38, 22, 22, 18), ["claim", "paper", "ours", "verdict"], rows)]


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


class PapersWithoutChapter(Directive):
    """`papers-without-chapter`: the bibliography's papers that no page of the book is named after."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        from pybtex.database import parse_file

        env = self.state.document.settings.env
        _note_reread(env)
        pages = {name.rpartition("/")[2] for name in env.found_docs}
        site_map = _site_map(env)
        if site_map is not None:
            pages = {name.rpartition("/")[2] for name in book_order(site_map)}
        waiting = []
        for bibfile in env.app.config.bibtex_bibfiles:
            path = Path(env.srcdir) / bibfile
            env.note_dependency(str(path))
            for key, entry in parse_file(str(path)).entries.items():
                if key not in pages:
                    waiting.append((key, entry.fields.get("title", key).replace("{", "").replace("}", "")))
        if not waiting:
            return [_paragraph(nodes.Text("Every paper has its chapter."))]
        items = nodes.bullet_list()
        for key, title in waiting:
            item = nodes.list_item()
            # The citation goes through the MyST parser so sphinxcontrib-bibtex links it.
            self.state.nested_parse(_lines([f"{title} {{cite}}`{key}`"], self), self.content_offset, item)
            items += item
        return [items]


def _lines(texts: list[str], directive: Directive):
    from docutils.statemachine import StringList

    return StringList(texts, source=directive.state.document.current_source)


def tag_cells(notebook: dict) -> dict:
    """`notebook` (nbformat JSON as a dict) with the page's cell rules applied: parameter cells
    tagged `remove-cell`, code cells without a visibility tag tagged `hide-input`."""
    for cell in notebook.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        tags = cell.setdefault("metadata", {}).setdefault("tags", [])
        if any(tag in PARAMETER_TAGS for tag in tags):
            tags.append("remove-cell")
        elif not VISIBILITY_TAGS & set(tags):
            tags.append("hide-input")
    return notebook


def _tag_notebook_source(app, docname, source) -> None:
    if not str(app.env.doc2path(docname)).endswith(".ipynb"):
        return
    try:
        notebook = json.loads(source[0])
    except ValueError:
        return  # not JSON: left for myst-nb to report
    source[0] = json.dumps(tag_cells(notebook))


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


def _write_css(app) -> None:
    # Written into the output's _static/ (Sphinx copies its static folders over it without
    # deleting), so the book needs no source _static/ folder (see _config.yml).
    if app.builder.format != "html":
        return
    static = Path(app.outdir) / "_static"
    static.mkdir(parents=True, exist_ok=True)
    (static / CSS_FILE).write_text(CSS)


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
    plain = (_pass, _pass)
    app.add_node(details, html=(_visit_details, _depart_details), latex=plain, text=plain, man=plain,
                 texinfo=plain)
    app.add_node(summary, html=(_visit_summary, _depart_summary), latex=plain, text=plain, man=plain,
                 texinfo=plain)
    app.add_directive("claims-summary", ClaimsSummary)
    app.add_directive("papers-without-chapter", PapersWithoutChapter)
    app.add_css_file(CSS_FILE)
    app.connect("builder-inited", _write_css)
    app.connect("source-read", _tag_notebook_source)
    app.connect("env-get-outdated", _always_reread)
    app.connect("env-purge-doc", _purge)
    app.connect("env-merge-info", _merge)
    app.connect("html-page-context", _dedupe_scripts)
    return {"version": "2", "parallel_read_safe": True, "parallel_write_safe": True}
