"""Sphinx configuration of act's documentation site (see contributing.md for why Sphinx).

Built by ``nox -s docs`` (part of ``./dev test``) with warnings as errors: the tutorials
run (sphinx-gallery) and the API and command-line references are generated from the code,
so a page that drifts from the code fails the build.
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("MPLBACKEND", "Agg")
HERE = Path(__file__).parent

project = "act"
author = "the act developers"
copyright = "2026, the act developers"
extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.viewcode",
    "sphinx_gallery.gen_gallery",
    "sphinxarg.ext",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build", "tutorial_scripts", "reference/operators.generated.md",
                    "tutorials/*.ipynb", "tutorials/*.py", "tutorials/*.zip", "**/*.codeobj.json"]
myst_enable_extensions = ["colon_fence", "dollarmath"]
myst_heading_anchors = 3
html_theme = "alabaster"
html_theme_options = {"description": "activation-function research in PyTorch",
                      "fixed_sidebar": True, "page_width": "1100px"}
html_title = "act"
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": False}
sphinx_gallery_conf = {
    "examples_dirs": "tutorial_scripts",
    "gallery_dirs": "tutorials",
    "filename_pattern": r"/plot_",
    "download_all_examples": False,
    "remove_config_comments": True,
    "abort_on_example_error": True,
    "matplotlib_animations": False,
}
# links to the repository's files (scripts, results) that are not pages of the site
suppress_warnings = ["myst.xref_missing"]


def operator_table(app) -> None:
    """Write reference/operators.generated.md from the operator registry, so the table
    on the grammar page is whatever the installed plugins register."""
    from actcore.plugins import OPERATORS, registry

    rows = ["| operator | arity | plugin | description |", "|---|---:|---|---|"]
    table = registry(OPERATORS)
    for entry in table.entries():
        op = entry.item
        learnable = " (learnable)" if op.module is not None else ""
        extended = " (extended set)" if op.extended else ""
        rows.append(f"| `{op.name}` | {op.arity if op.arity >= 0 else 'n'} | "
                    f"{entry.plugin} | {op.description}{learnable}{extended} |")
    (HERE / "reference" / "operators.generated.md").write_text("\n".join(rows) + "\n")


def setup(app) -> None:
    app.connect("builder-inited", operator_table)
