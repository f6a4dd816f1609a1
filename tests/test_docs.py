"""The documentation site builds in strict mode: a broken link, a missing page or reference, a
docstring mkdocstrings cannot parse, any warning fails the build (and this test, with mkdocs' output).

The notebooks are rendered without executing them here (``NEUROSNAP_DOCS_EXECUTE=false``):
tests/test_notebooks.py executes them. ``make docs`` builds with execution.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_docs_build_strict(tmp_path):
    env = dict(os.environ, NEUROSNAP_DOCS_EXECUTE="false", NO_MKDOCS_2_WARNING="1")
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file",
                           str(ROOT / "mkdocs.yml"), "--site-dir", str(tmp_path / "site")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        output = proc.stdout + proc.stderr
        problems = [line for line in output.splitlines() if line.startswith(("WARNING", "ERROR"))]
        pytest.fail("mkdocs build --strict failed:\n" + "\n".join(problems)
                    + f"\n\nfull output (end):\n{output[-6000:]}", pytrace=False)
    site = tmp_path / "site"
    for page in ("index.html", "getting-started/index.html", "api/rules/index.html",
                 "notebooks/01-rtrl-from-scratch/index.html"):
        assert (site / page).is_file(), f"the site has no {page}"
    api = (site / "api" / "cells" / "index.html").read_text()
    assert "neurosnap.cells.EGRU" in api, "the API reference did not render EGRU from its docstring"


def _fenced_blocks(text):
    """``(language, source)`` of every fenced code block of a Markdown page, in order."""
    import re
    return [(m.group(1), m.group(2)) for m in re.finditer(r"^```(\w*)\n(.*?)^```$", text, re.M | re.S)]


def _same_output(expected, printed):
    """Equal token by token; numbers to 1e-6 relative, and round-off-sized ones (< 1e-12) as equal."""
    a, b = expected.split(), printed.split()
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
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
    monkeypatch.chdir(tmp_path)                    # the examples write a learning curve
    namespace, checked = {}, 0
    for (lang, source), (next_lang, expected) in zip(blocks, blocks[1:] + [("", "")]):
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
    blocks = [src for lang, src in _fenced_blocks((ROOT / "docs" / "guide" / "cli.md").read_text())
              if lang == "toml"]
    with open(ROOT / "models" / "egru-copy.toml", "rb") as f:
        assert tomllib.loads(blocks[0]) == tomllib.load(f)
