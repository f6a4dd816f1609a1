"""mkdocs hook: serve MathJax from the site itself, so that the equations render offline.

The equations of the theory pages are LaTeX, marked up by ``pymdownx.arithmatex`` (generic mode) and
typeset in the browser by MathJax 2.7. MathJax is not fetched from a CDN at build or view time: the
``jupyter-server-mathjax`` package (a pip dependency of the ``docs`` extra) ships MathJax's static
files, and this hook adds them (all but the translations of MathJax's menus) to the site under
``assets/mathjax/``: the combined configuration ``TeX-AMS-MML_HTMLorMML-full`` (TeX input, HTML-CSS
output), its extensions and the STIX-Web web fonts. (Browsers refuse web fonts from ``file://``
pages: view the built site through a server, e.g. ``python -m http.server -d site``, or ``mkdocs
serve``.)
"""
from __future__ import annotations

from pathlib import Path

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File

TARGET = "assets/mathjax"
PARTS = ("MathJax.js", "LICENSE", "config", "extensions", "jax", "fonts")


def mathjax_root() -> Path:
    try:
        import jupyter_server_mathjax
    except ImportError as err:              # the docs extra is not installed
        raise PluginError("the documentation needs MathJax from the `jupyter-server-mathjax` package: "
                          "pip install -e '.[docs]'") from err
    return Path(jupyter_server_mathjax.__file__).resolve().parent / "static"


def on_files(files, config):
    """Add MathJax's files to the site, under ``assets/mathjax/``."""
    root = mathjax_root()
    for part in PARTS:
        path = root / part
        for source in ([path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())):
            rel = source.relative_to(root).as_posix()
            files.append(File.generated(config, f"{TARGET}/{rel}", abs_src_path=str(source)))
    return files
