"""Every code block of README.md and docs/**/*.md is checked, so that a documentation example can
never break silently:

- ``python`` blocks run, page by page, in order, in one namespace (as a reader pastes them), in a
  scratch directory that has the repository's ``models/``;
- ``bash`` blocks: every ``neurosnap ...`` command must be accepted by the command-line parser
  exactly as written, and name a configuration that exists (other commands, e.g. ``make`` or
  ``pip``, are not run);
- ``toml`` blocks parse.

A block that is not meant to run (a synopsis with placeholders, output of a long run, an example
that needs a cluster) is preceded by the line ``<!-- docs-test: skip -->`` (invisible in the
rendered page); ``text`` blocks and blocks without a language are never run.
"""

from __future__ import annotations

import os
import re
import shlex
import tomllib
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SKIP = "<!-- docs-test: skip -->"
PAGES = [ROOT / "README.md"] + sorted((ROOT / "docs").rglob("*.md"))
#: extras a page may need; without them its Python blocks are skipped, not failed
OPTIONAL = {"torch", "norse", "brian2", "nir", "nirtorch", "distributed", "dask"}
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```[ \t]*$", re.M | re.S)


def blocks(path):
    """``(language, source, line, skipped)`` of every fenced code block of a Markdown page."""
    text = path.read_text()
    out = []
    for m in FENCE.finditer(text):
        before = text[: m.start()].rstrip().splitlines()
        skipped = bool(before) and before[-1].strip() == SKIP
        out.append((m.group(1), m.group(2), text.count("\n", 0, m.start()) + 1, skipped))
    return out


def _pages(lang):
    return [p for p in PAGES if any(b[0] == lang and not b[3] for b in blocks(p))]


def _id(path):
    return str(path.relative_to(ROOT))


def test_the_block_parser_finds_the_blocks():
    langs = {b[0] for p in PAGES for b in blocks(p)}
    assert {"python", "bash", "toml"} <= langs
    assert len(_pages("python")) >= 8


@pytest.mark.slow
@pytest.mark.parametrize("page", _pages("python"), ids=_id)
def test_python_blocks_run(page, tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    (tmp_path / "models").symlink_to(ROOT / "models")
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__docs__"}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default")  # a reader sees warnings, they do not stop him
            for lang, source, line, skipped in blocks(page):
                if lang != "python" or skipped:
                    continue
                code = compile("\n" * line + source, str(page), "exec")  # tracebacks give the line
                try:
                    exec(code, namespace)
                except ModuleNotFoundError as exc:
                    if exc.name and exc.name.split(".")[0] in OPTIONAL:
                        # make test installs every extra: a missing one fails, it is never skipped
                        pytest.fail(
                            f"{_id(page)}:{line} needs {exc.name}, an optional extra: "
                            f"install them with make test (or pip install -e '.[...]')"
                        )
                    raise
    finally:
        plt.close("all")


def _commands(source):
    """The shell commands of a block, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", source)
    for raw in joined.splitlines():
        words = shlex.split(raw, comments=True)
        if words:
            yield words


@pytest.mark.parametrize("page", _pages("bash"), ids=_id)
def test_neurosnap_commands_in_shell_blocks_parse(page):
    from neurosnap import cli, config

    parser = cli.build_parser()
    checked = 0
    for lang, source, line, skipped in blocks(page):
        if lang not in ("bash", "sh", "shell", "console") or skipped:
            continue
        for words in _commands(source):
            if words[0] != "neurosnap":
                continue
            if words[1:] in (["--version"], ["--help"]):
                checked += 1
                continue
            try:
                args, extra = parser.parse_known_args(words[1:])
            except SystemExit:
                pytest.fail(f"{_id(page)}:{line}: the parser rejects {' '.join(words)!r}")
            assert not extra, f"{_id(page)}:{line}: unrecognised {extra} in {' '.join(words)!r}"
            if getattr(args, "config", None):
                assert config.resolve(args.config), args.config
                if os.sep in args.config:
                    assert (ROOT / args.config).is_file(), f"{_id(page)}:{line}: {args.config}"
            checked += 1
    assert checked or not any(
        b[0] == "bash" and "neurosnap " in b[1] and not b[3] for b in blocks(page)
    )


@pytest.mark.parametrize("page", _pages("toml"), ids=_id)
def test_toml_blocks_parse(page):
    for lang, source, _line, skipped in blocks(page):
        if lang == "toml" and not skipped:
            tomllib.loads(source)
