"""mkdocs hook: publish ``notebooks/*.py`` (jupytext percent files) as pages, with working links.

The notebooks live in ``notebooks/`` at the repository root, not under ``docs/``, so that they open
next to the package in Jupyter. This hook adds them to the site as ``notebooks/<name>.py`` pages,
which the mkdocs-jupyter plugin then renders (and executes unless ``NEUROSNAP_DOCS_EXECUTE=false``).

Links inside the notebooks are written for Jupyter and GitHub, relative to ``notebooks/``: a link to
``../docs/theory/rtrl.md`` or to another notebook, ``01-rtrl-from-scratch.py``, works there. In the
site, the hook rewrites each such link to the page's URL, and a link to a page that does not exist is
a warning, so ``mkdocs build --strict`` fails on it as it does for broken links in Markdown pages.
"""
from __future__ import annotations

import logging
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


def _root(config) -> Path:
    return Path(config["config_file_path"]).resolve().parent


@event_priority(100)            # before mkdocs-jupyter wraps the files as notebook pages
def on_files(files, config):
    """Add every ``notebooks/NN-*.py`` to the site's files."""
    root = _root(config)
    for path in sorted((root / NOTEBOOK_DIR).glob("[0-9][0-9]-*.py")):
        files.append(File(f"{NOTEBOOK_DIR}/{path.name}", str(root), config["site_dir"],
                          config["use_directory_urls"]))
    return files


def on_page_content(html, page, config, files):
    """Rewrite ``../docs/*.md`` links of notebook pages to site URLs; warn on missing targets."""
    if not page.file.src_uri.startswith(f"{NOTEBOOK_DIR}/"):
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

    return _LOCAL_LINK.sub(replace, html)
