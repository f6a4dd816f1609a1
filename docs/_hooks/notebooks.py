"""mkdocs hook: publish ``notebooks/*.py`` (jupytext percent files) as pages, with working links.

The notebooks live in ``notebooks/`` at the repository root, not under ``docs/``, so that they open
next to the package in Jupyter. This hook adds them to the site as ``notebooks/<name>.py`` pages,
which the mkdocs-jupyter plugin then renders (and executes unless ``NEUROSNAP_DOCS_EXECUTE=false``).

Links inside the notebooks are written for Jupyter and GitHub, relative to ``notebooks/``: a link to
``../docs/theory/rtrl.md`` or to another notebook, ``01-rtrl-from-scratch.py``, works there. In the
site, the hook rewrites each such link to the page's URL, and a link to a page that does not exist is
a warning, so ``mkdocs build --strict`` fails on it as it does for broken links in Markdown pages.

Every notebook page gets download links for its ``.py`` (the jupytext source, copied next to the
page by mkdocs-jupyter's ``include_source``) and an ``.ipynb`` (converted by jupytext, without
outputs). A page that does not show the notebook at full size says so in a banner at its top: when
the build did not run the notebooks (``NEUROSNAP_DOCS_EXECUTE=false``, the test build) or ran them
at smoke size (``NEUROSNAP_SMOKE=1``). ``make docs`` runs them at full size; mkdocs-jupyter caches
each executed notebook (``.cache/mkdocs-jupyter``), so a notebook runs again only when it changes.
"""
from __future__ import annotations

import html as html_lib
import logging
import os
import posixpath
import re
from pathlib import Path

from mkdocs.plugins import event_priority
from mkdocs.structure.files import File

log = logging.getLogger("mkdocs.hooks.notebooks")

NOTEBOOK_DIR = "notebooks"
# relative links to a page or a notebook, e.g. href="../docs/theory/rtrl.md#notation" or
# href="01-rtrl-from-scratch.py", as nbconvert renders Markdown links
_LOCAL_LINK = re.compile(r'href="(?![a-z][a-z0-9+.-]*:|#|/)([^"#]+\.(?:md|py))(#[^"]*)?"')


BANNER_ID = "notebook-build-banner"


def _root(config) -> Path:
    return Path(config["config_file_path"]).resolve().parent


def build_mode(config) -> str:
    """``"full"``, ``"smoke"`` or ``"not-executed"``: how this build renders the notebooks."""
    plugin = config["plugins"].get("mkdocs-jupyter")
    if plugin is None or not plugin.config["execute"]:
        return "not-executed"
    return "smoke" if os.environ.get("NEUROSNAP_SMOKE") == "1" else "full"


def _banner(mode: str) -> str:
    if mode == "full":
        return ""
    if mode == "smoke":
        text = ("This page was built at <strong>smoke size</strong> (<code>NEUROSNAP_SMOKE=1</code>, "
                "a quick check that the code runs): its sizes are small, so its numbers and figures "
                "do not show what the text describes. <code>make docs</code> builds it at full size.")
    else:
        text = ("This page was built <strong>without running the notebook</strong> (a test build of "
                "the site): it shows the code and the text, not the outputs and figures. "
                "<code>make docs</code> runs it at full size.")
    return (f'<div class="admonition warning" id="{BANNER_ID}"><p class="admonition-title">'
            f"Not the full-size notebook</p><p>{text}</p></div>\n")


def _downloads(name: str) -> str:
    stem = html_lib.escape(name[:-3])
    return (f'<p class="notebook-downloads">Download this notebook: <a href="{stem}.py" download>'
            f"<code>{stem}.py</code></a> (jupytext percent format: run it as a script or open it in "
            f'Jupyter) · <a href="{stem}.ipynb" download><code>{stem}.ipynb</code></a></p>\n')


def on_config(config):
    """Figures of executed notebooks at 150 dpi with slightly larger text (a matplotlibrc that the
    notebook kernels, started by this process, read through ``MATPLOTLIBRC``)."""
    if "MATPLOTLIBRC" not in os.environ:
        rc = _root(config) / ".cache" / "matplotlibrc"
        rc.parent.mkdir(parents=True, exist_ok=True)
        rc.write_text("figure.dpi: 150\nsavefig.dpi: 150\nfont.size: 11\n")
        os.environ["MATPLOTLIBRC"] = str(rc)
    return config


@event_priority(100)            # before mkdocs-jupyter wraps the files as notebook pages
def on_files(files, config):
    """Add every ``notebooks/NN-*.py`` to the site's files."""
    import jupytext

    root = _root(config)
    for path in sorted((root / NOTEBOOK_DIR).glob("[0-9][0-9]-*.py")):
        files.append(File(f"{NOTEBOOK_DIR}/{path.name}", str(root), config["site_dir"],
                          config["use_directory_urls"]))
        # the .ipynb download, next to the page (where include_source puts the .py)
        notebook = jupytext.writes(jupytext.read(path), fmt="ipynb")
        files.append(File.generated(config, f"{NOTEBOOK_DIR}/{path.stem}/{path.stem}.ipynb",
                                    content=notebook))
    return files


def _fix_toc(page, html):
    """Point the table of contents at the headings' real ids.

    mkdocs-jupyter builds a notebook page's table of contents from the heading text without its
    inline code ("Is it really", "The price: per step"), while the heading's id keeps it
    ("is-it-really-ds_td", "the-price-n4-per-step"): such an entry gets the one heading id whose
    words contain its own, in order."""
    ids = set(re.findall(r'<h[1-6][^>]*\sid="([^"]+)"', html))

    def contains(heading_id, toc_id):
        words = iter(heading_id.split("-"))
        return all(word in words for word in toc_id.split("-"))

    def visit(items):
        for item in items:
            if item.id not in ids:
                candidates = [i for i in ids if contains(i, item.id)]
                if len(candidates) == 1:
                    item.id = candidates[0]
            visit(item.children)

    if getattr(page, "toc", None) is not None:
        visit(page.toc)


def on_page_content(html, page, config, files):
    """Rewrite ``../docs/*.md`` links of notebook pages to site URLs; warn on missing targets."""
    if not page.file.src_uri.startswith(f"{NOTEBOOK_DIR}/") or not page.file.src_uri.endswith(".py"):
        return html

    def replace(match):
        target = posixpath.normpath(posixpath.join(NOTEBOOK_DIR, match.group(1)))   # from the root
        if target.startswith("docs/"):
            target = target[len("docs/"):]
        file = files.get_file_from_path(target)
        if file is None:
            log.warning("notebook %s links to %s, which is not a page of the site",
                        page.file.src_uri, match.group(1))
            return match.group(0)
        return f'href="{file.url_relative_to(page.file)}{match.group(2) or ""}"'

    _fix_toc(page, html)
    name = posixpath.basename(page.file.src_uri)
    return _banner(build_mode(config)) + _downloads(name) + _LOCAL_LINK.sub(replace, html)
