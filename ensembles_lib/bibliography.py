"""Sphinx extension for the book: bibliography labels in the author-year form the citations use.

The chapters cite with {cite}`key`, which `bibtex_reference_style: author_year` renders as
"Yang et al., 2020"; pybtex's plain style would label the bibliography "[1]", "[2]" instead.
This registers a pybtex style "authoryear" whose labels read like the citations
("Grefenstette et al., 2018", "Jasser and Garibay, 2021"), sorted by author, year and title;
`_config.yml` selects it with `bibtex_default_style: authoryear`. Loaded through `_config.yml`
(sphinx: extra_extensions).
"""

from __future__ import annotations

from pybtex.plugin import register_plugin
from pybtex.style.formatting.plain import Style as PlainStyle
from pybtex.style.labels import BaseLabelStyle


class AuthorYearLabels(BaseLabelStyle):
    """'Surname, year', 'A and B, year' or 'A et al., year' for each entry."""

    def format_labels(self, sorted_entries):
        for entry in sorted_entries:
            people = entry.persons.get("author", [])
            surnames = [" ".join(p.last_names).replace("{", "").replace("}", "") for p in people] or [entry.key]
            who = (surnames[0] if len(surnames) == 1 else f"{surnames[0]} and {surnames[1]}" if len(surnames) == 2
                   else f"{surnames[0]} et al.")
            yield f"{who}, {entry.fields.get('year', 'n.d.')}"


class AuthorYearStyle(PlainStyle):
    """pybtex's plain formatting with author-year labels, sorted by author, year and title."""

    default_label_style = AuthorYearLabels
    default_sorting_style = "author_year_title"


register_plugin("pybtex.style.labels", "authoryear", AuthorYearLabels)
register_plugin("pybtex.style.formatting", "authoryear", AuthorYearStyle)


def setup(app) -> dict:
    return {"parallel_read_safe": True, "parallel_write_safe": True}
