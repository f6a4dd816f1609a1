"""The documentation site builds in strict mode: a broken link, a missing page or reference, a
docstring mkdocstrings cannot parse, any warning fails the build (and this test, with mkdocs' output).
On the built site (one build for the module): equations are typeset (LaTeX through arithmatex, MathJax
served by the site), every internal link and #anchor resolves, the API pages show no private names,
code fits the content column, and notebook pages not built at full size say so.

The notebooks are rendered without executing them here (``NEUROSNAP_DOCS_EXECUTE=false``):
tests/test_notebooks.py executes them. ``make docs`` builds with execution.
"""

from __future__ import annotations

import os
import posixpath
import re
import subprocess
import sys
from html import unescape
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _build(site_dir, **env):
    env = dict(os.environ, NEUROSNAP_DOCS_EXECUTE="false", NO_MKDOCS_2_WARNING="1", **env)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "--config-file",
            str(ROOT / "mkdocs.yml"),
            "--site-dir",
            str(site_dir),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if proc.returncode != 0:
        output = proc.stdout + proc.stderr
        problems = [line for line in output.splitlines() if line.startswith(("WARNING", "ERROR"))]
        pytest.fail(
            "mkdocs build --strict failed:\n"
            + "\n".join(problems)
            + f"\n\nfull output (end):\n{output[-6000:]}",
            pytrace=False,
        )
    return site_dir


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The site, built once for this module, strictly, without executing the notebooks."""
    return _build(tmp_path_factory.mktemp("docs") / "site")


def _pages(site):
    """``{url path of the page: html}`` of every page of the site (directory URLs)."""
    pages = {p.parent.relative_to(site).as_posix(): p.read_text() for p in site.rglob("index.html")}
    pages[""] = pages.pop(".")
    return pages


@pytest.mark.slow
def test_docs_build_strict(site):
    for page in (
        "index.html",
        "getting-started/index.html",
        "api/rules/index.html",
        "notebooks/01-rtrl-from-scratch/index.html",
        "citation/index.html",
        "license/index.html",
        "changelog/index.html",
    ):
        assert (site / page).is_file(), f"the site has no {page}"
    api = (site / "api" / "cells" / "index.html").read_text()
    assert "neurosnap.cells.EGRU" in api, "the API reference did not render EGRU from its docstring"
    assert "## 0.1.0" not in (site / "changelog" / "index.html").read_text(), (
        "the changelog page did not include CHANGELOG.md"
    )


# an ASCII equation as the theory pages had them: a line of a code block ending in its tag "(4)"
_ASCII_TAG = re.compile(r"\S.*\s\((\d+)\)\s*$", re.M)


def test_theory_equations_are_latex_with_numbered_anchors():
    """No equation sits in a code block; every ``\\tag{n}`` has the anchor ``eq-<page>-<n>``."""
    for path in sorted((ROOT / "docs" / "theory").glob("*.md")):
        text = path.read_text()
        for lang, block in _fenced_blocks(text):
            assert not _ASCII_TAG.search(block), (
                f"{path.name}: an equation in a ```{lang} code block, not LaTeX math:\n{block}"
            )
        tags = re.findall(r"\\tag\{(\d+)\}", text)
        anchors = re.findall(rf'<a id="eq-{path.stem}-(\d+)"></a>', text)
        assert tags, f"{path.name} has no numbered equation"
        assert sorted(tags, key=int) == sorted(anchors, key=int), (
            f"{path.name}: equation tags {tags} and anchors {anchors} differ"
        )
        assert [int(n) for n in tags] == list(range(1, len(tags) + 1)), (
            f"{path.name}: equations are not numbered 1, 2, ... in order: {tags}"
        )


@pytest.mark.slow
def test_math_is_rendered_by_arithmatex_with_mathjax_served_locally(site):
    for url, html in _pages(site).items():
        if not url.startswith("theory/"):
            continue
        body = html[html.find("<article") : html.find("</article>")]
        outside = re.sub(r'<div class="arithmatex">.*?</div>', "", body, flags=re.S)
        assert "\\tag{" not in outside and "$$" not in outside, (
            f"{url}: an equation outside arithmatex's markup (not typeset)"
        )
        assert body.count('class="arithmatex"') >= 3, f"{url}: no typeset equations"
        assert "assets/mathjax/MathJax.js" in html and "javascripts/mathjax.js" in html, (
            f"{url} does not load the site's own MathJax"
        )
    assert (site / "assets" / "mathjax" / "MathJax.js").is_file()
    assert (site / "assets" / "mathjax" / "config" / "TeX-AMS-MML_HTMLorMML-full.js").is_file()
    assert not any(
        "cdn" in src.lower()
        for src in re.findall(r'<script src="([^"]+)"', (site / "index.html").read_text())
    )


@pytest.mark.slow
def test_internal_links_and_anchors_resolve(site):
    """Every link between pages of the site, with its #fragment, reaches a page and an id on it
    (including links mkdocs does not check: generated by mkdocstrings, autorefs and the hooks)."""
    pages = _pages(site)
    ids = {url: set(re.findall(r'\sid="([^"]+)"', html)) for url, html in pages.items()}
    broken = []
    for url, html in pages.items():
        for href in re.findall(r'<a\s[^>]*?href="([^"]+)"', html):
            if re.match(r"[a-z][a-z0-9+.-]*:|//", href):
                continue  # external
            path, _, fragment = href.partition("#")
            if path and not path.endswith("/"):
                if not (site / url / path).resolve().exists():
                    broken.append(f"{url}: {href} (no such file)")
                continue
            target = posixpath.normpath(posixpath.join(url, path)) if path else url
            target = "" if target == "." else target
            if target not in pages:
                broken.append(f"{url}: {href} (no such page)")
            elif fragment and fragment not in ids[target]:
                broken.append(f"{url}: {href} (no id {fragment!r} on {target or 'the home page'})")
    assert not broken, f"{len(broken)} broken links:\n  " + "\n  ".join(sorted(set(broken))[:40])


@pytest.mark.slow
def test_api_pages_show_no_private_names(site):
    for url, html in _pages(site).items():
        if not url.startswith("api"):
            continue
        body = html[html.find("<article") : html.find("</article>")]
        text = re.sub(r"<[^>]+>", "", body)
        private = sorted(set(re.findall(r"(?<![\w.*])_[A-Za-z]\w*", text)))  # not w_*_scale
        assert not private, f"{url} shows private names: {private}"
        headings = re.findall(r'<h\d id="([^"]+)" class="doc doc-heading', html)
        dup = sorted({h for h in headings if headings.count(h) > 1})
        assert not dup, f"{url} documents these objects twice: {dup}"


CODE_COLUMNS = 110  # characters of code that fit the content column (docs/stylesheets/extra.css)


@pytest.mark.slow
def test_code_blocks_fit_the_content_column(site):
    """Code lines (Markdown pages, docstring examples, notebook cells) fit without a scrollbar;
    program output (```text blocks) is wrapped by the style sheet instead."""
    long_lines = []
    for url, html in _pages(site).items():
        for lang, block in re.findall(
            r'<div class="language-(\w+) highlight">(.*?)</pre>', html, re.S
        ):
            if lang == "text":
                continue
            text = unescape(re.sub(r"<[^>]+>", "", block))
            long_lines += [
                f"{url} ({lang}, {len(line)}): {line[:70]}..."
                for line in text.split("\n")
                if len(line) > CODE_COLUMNS
            ]
        for block in re.findall(r'<div class="highlight-ipynb hl-python">(.*?)</pre>', html, re.S):
            text = unescape(re.sub(r"<[^>]+>", "", block))
            long_lines += [
                f"{url} (notebook, {len(line)}): {line[:70]}..."
                for line in text.split("\n")
                if len(line) > CODE_COLUMNS
            ]
    assert not long_lines, f"code lines longer than {CODE_COLUMNS} characters:\n  " + "\n  ".join(
        long_lines
    )


@pytest.mark.slow
def test_notebook_pages_built_without_running_them_say_so(site):
    """This build does not execute the notebooks: each notebook page carries the banner, and
    links its .py and .ipynb, which exist."""
    notebooks = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]-*.py"))
    assert notebooks
    for name in notebooks:
        page = site / "notebooks" / name / "index.html"
        html = page.read_text()
        assert 'id="notebook-build-banner"' in html, f"{name}: no banner on a notebook not run"
        for ext in (".py", ".ipynb"):
            assert f'href="{name}{ext}"' in html and (page.parent / f"{name}{ext}").is_file(), (
                f"{name}: no {ext} download"
            )


def test_notebook_banner_follows_how_the_site_was_built(monkeypatch):
    """Full size: no banner; smoke size (NEUROSNAP_SMOKE=1) or not executed: a banner."""
    import importlib.util
    import types

    spec = importlib.util.spec_from_file_location(
        "nbhook", ROOT / "docs" / "_hooks" / "notebooks.py"
    )
    hook = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hook)
    page = types.SimpleNamespace(file=types.SimpleNamespace(src_uri="notebooks/01-x.py"))

    def render(execute):
        plugin = types.SimpleNamespace(config={"execute": execute})
        return hook.on_page_content(
            "<p>body</p>", page, {"plugins": {"mkdocs-jupyter": plugin}}, None
        )

    monkeypatch.delenv("NEUROSNAP_SMOKE", raising=False)
    assert hook.BANNER_ID not in render(True)
    assert hook.BANNER_ID in render(False)
    monkeypatch.setenv("NEUROSNAP_SMOKE", "1")
    assert hook.BANNER_ID in render(True) and "smoke size" in render(True)


def _fenced_blocks(text):
    """``(language, source)`` of every fenced code block of a Markdown page, in order."""
    return [
        (m.group(1), m.group(2)) for m in re.finditer(r"^```(\w*)\n(.*?)^```$", text, re.M | re.S)
    ]


def _same_output(expected, printed):
    """Equal token by token; numbers to 1e-6 relative, and round-off-sized ones (< 1e-12) as equal."""
    a, b = expected.split(), printed.split()
    if len(a) != len(b):
        return False
    for x, y in zip(a, b, strict=True):
        try:
            u, v = float(x), float(y)
        except ValueError:
            if x != y:
                return False
            continue
        if not ((abs(u) < 1e-12 and abs(v) < 1e-12) or abs(u - v) <= 1e-6 * max(abs(u), abs(v))):
            return False
    return True


@pytest.mark.slow
def test_getting_started_python_examples_print_what_the_page_says(tmp_path, monkeypatch, capsys):
    """A new user who runs the page's Python blocks in order sees the documented output."""
    blocks = _fenced_blocks((ROOT / "docs" / "getting-started.md").read_text())
    monkeypatch.chdir(tmp_path)  # the examples write a learning curve
    namespace, checked = {}, 0
    for (lang, source), (next_lang, expected) in zip(blocks, blocks[1:] + [("", "")], strict=True):
        if lang != "python":
            continue
        exec(compile(source, "getting-started.md", "exec"), namespace)
        printed = capsys.readouterr().out
        if next_lang == "text":
            assert _same_output(expected, printed), f"documented:\n{expected}\nprinted:\n{printed}"
            checked += 1
    assert checked >= 2


def test_the_configuration_quoted_in_the_cli_guide_is_models_egru_copy():
    """docs/guide/cli.md shows models/egru-copy.toml (the make demo config): the values must agree."""
    import tomllib

    blocks = [
        src
        for lang, src in _fenced_blocks((ROOT / "docs" / "guide" / "cli.md").read_text())
        if lang == "toml"
    ]
    with open(ROOT / "models" / "egru-copy.toml", "rb") as f:
        assert tomllib.loads(blocks[0]) == tomllib.load(f)


@pytest.mark.slow
def test_home_page_example_prints_what_the_page_says(tmp_path, monkeypatch, capsys):
    """The ten-line example on the home page runs and prints the level the page shows."""
    blocks = _fenced_blocks((ROOT / "docs" / "index.md").read_text())
    pairs = [
        (src, nxt)
        for (lang, src), (nlang, nxt) in zip(blocks, blocks[1:], strict=False)
        if lang == "python" and nlang == "text"
    ]
    assert len(pairs) == 1
    source, expected = pairs[0]
    assert len(source.strip().splitlines()) <= 10, "the home page promises ten lines"
    monkeypatch.chdir(tmp_path)
    exec(compile(source, "index.md", "exec"), {})
    assert _same_output(expected, capsys.readouterr().out)
