"""mkdocs hook: link inline code that names a public object (``ns.rules.RTRL``) to its API entry.

In the prose pages, an inline code span whose text is a dotted name under ``ns.`` or ``neurosnap.``,
optionally called (``ns.rules.SnAp(n=2)``, ``neurosnap.rules.RTRL``), becomes a cross-reference
that mkdocs-autorefs resolves to the object's heading on the API pages. References it cannot resolve
(a name the API pages do not render, an attribute chain such as ``history.rows``) stay plain code:
they are marked optional, so they never fail the strict build. Code blocks are left alone, and so
are the API pages themselves (mkdocstrings links those).

On the theory pages, an equation number in the text, "(3)" or "eq. (3)", links to that equation
of the same page (its anchor ``eq-<page>-3``).

On the API pages, a private base class in a "Bases:" line (``_Base``) is replaced by its own
public bases (``Cell``): the reader gets the class whose documentation applies. (Only the rendered
line changes: mkdocstrings still sees the real bases, so inherited signatures stay right.)
"""
from __future__ import annotations

import importlib
import re

# <code>ns.rules.SnAp(n=2)</code>, not inside a link already
_CODE = re.compile(r"(?<!<a )(?<![\"'>]>)<code>((?:ns|neurosnap)\.[A-Za-z_][\w.]*)(\([^<]*\))?</code>")
# names that are re-exported under another path than the one mkdocstrings renders them at
_RENAMED = {"neurosnap.train": "neurosnap.train.train"}


# a private class in a rendered "Bases:" line, before autorefs resolves it
_PRIVATE_BASE = re.compile(r'<autoref\s[^>]*identifier="([\w.]+)\.(_\w+)"[^>]*>\s*_\w+\s*</autoref>')


def _public_bases(module: str, name: str) -> list[type]:
    """The nearest public ancestors of ``module.name``."""
    cls = getattr(importlib.import_module(module), name)
    out = []
    for base in cls.__bases__:
        if base.__name__.startswith("_"):
            out += [b for b in _public_bases(base.__module__, base.__name__) if b not in out]
        elif base not in out and base is not object:
            out.append(base)
    return out


def _replace_private_base(match: re.Match) -> str:
    bases = _public_bases(match.group(1), match.group(2))
    return ", ".join(f'<autoref identifier="{b.__module__}.{b.__qualname__}" optional>{b.__name__}</autoref>'
                     for b in bases)


def _identifier(dotted: str) -> str:
    name = "neurosnap." + dotted.split(".", 1)[1]
    return _RENAMED.get(name, name)


# what is not prose: code, links, math, tags
_NOT_PROSE = re.compile(r'(<code>.*?</code>|<a\s.*?</a>|<div class="arithmatex">.*?</div>|<pre[\s>].*?</pre>'
                        r'|<h[1-6][\s>].*?</h[1-6]>|<[^>]+>)', re.S)
_EQ_NUMBER = re.compile(r"(?<![\w)])\((\d{1,2})\)")


def _link_equation_numbers(html: str, page_name: str) -> str:
    anchors = set(re.findall(rf'id="eq-{page_name}-(\d+)"', html))

    def link(match: re.Match) -> str:
        number = match.group(1)
        if number not in anchors:
            return match.group(0)
        return f'(<a href="#eq-{page_name}-{number}">{number}</a>)'

    parts = _NOT_PROSE.split(html)
    return "".join(part if i % 2 else _EQ_NUMBER.sub(link, part) for i, part in enumerate(parts))


def on_page_content(html, page, config, files):
    if page.file.src_uri.startswith("theory/"):
        html = _link_equation_numbers(html, page.file.src_uri[len("theory/"):-len(".md")])
    if page.file.src_uri.startswith("api/"):
        return _PRIVATE_BASE.sub(_replace_private_base, html)

    def link(match: re.Match) -> str:
        text = match.group(0)
        return f'<autoref identifier="{_identifier(match.group(1))}" optional>{text}</autoref>'

    parts = re.split(r"(<pre[\s>].*?</pre>|<a\s[^>]*>.*?</a>)", html, flags=re.S)
    return "".join(part if i % 2 else _CODE.sub(link, part) for i, part in enumerate(parts))
