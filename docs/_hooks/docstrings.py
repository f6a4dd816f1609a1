"""Griffe extension: render neurosnap's docstrings, written for Python's ``help()``, as Markdown.

The docstrings follow the Google style (Args/Returns/Attributes), but two habits read badly in
Markdown, and are rewritten here, in the API pages only (the source is untouched):

- doctest examples (``>>>`` blocks) outside an ``Examples:`` section would become block quotes, and
  an indexing expression such as ``x[:]`` inside them a broken reference link: they are fenced as
  ``pycon`` code;
- Sphinx roles such as :class:`~neurosnap.cells.EGRU` become inline code (``EGRU``); the ``~``
  keeps the last component only, as in Sphinx; a paragraph ending in ``::`` (a literal block
  follows) ends in ``:``;
- a theory page named in double backticks (``docs/theory/rtrl.md``) becomes a link to that page,
  and a cited equation (``docs/theory/rtrl.md`` eq. (4), or "rtrl eq. (4)") a link to the equation's
  anchor on it (``eq-rtrl-4``, set on the theory pages).
"""
from __future__ import annotations

import re

import griffe

_THEORY = re.compile(r"``docs/theory/(\w+)\.md``")
_PAGES = "rtrl|snap|bptt|uoro|rflo|eprop|cells|gates"
_TITLES = {"rtrl": "RTRL", "snap": "SnAp", "bptt": "BPTT", "uoro": "UORO", "rflo": "RFLO",
           "eprop": "e-prop", "cells": "cells", "gates": "gates"}
# ``docs/theory/snap.md`` eq. (8), ``docs/theory/rtrl.md`` eq. 3, snap eq. (7), rtrl eq. (1)-(3)
_THEORY_EQ = re.compile(rf"(?:``docs/theory/({_PAGES})\.md``|\b({_PAGES})) eq\. \(?(\d+)\)?((?:-\(\d+\))?)")


def _equation_link(match: re.Match) -> str:
    page = match.group(1) or match.group(2)
    number, rest = match.group(3), match.group(4)
    return f"[{_TITLES[page]} eq. ({number}){rest}](../theory/{page}.md#eq-{page}-{number})"
_LITERAL = re.compile(r"(?<=\S)::\n\n")
_ROLE = re.compile(r":(?:class|func|meth|attr|mod|data|obj|exc):`(~?)([^`]+)`")


def _role(match: re.Match) -> str:
    target = match.group(2)
    return f"`{target.rsplit('.', 1)[-1] if match.group(1) else target}`"


def fence_doctests(text: str) -> str:
    """Wrap every run of ``>>>`` lines (with their output, up to a blank line) in a pycon fence."""
    out, in_fence, in_example, indent = [], False, False, ""
    for line in text.split("\n"):
        stripped = line.lstrip()
        if stripped.startswith("```"):
            in_fence = not in_fence
        elif not in_fence and not in_example and stripped.startswith(">>>"):
            indent = line[: len(line) - len(stripped)]
            out.append(f"{indent}```pycon")
            in_example = True
        elif in_example and not stripped:
            out.append(f"{indent}```")
            in_example = False
        out.append(line)
    if in_example:
        out.append(f"{indent}```")
    return "\n".join(out)


def link_equations(text: str) -> str:
    """Apply the equation links outside literal blocks (after ``::``) and doctest lines."""
    out, literal_indent = [], None
    for line in text.split("\n"):
        indent = len(line) - len(line.lstrip())
        if literal_indent is not None and line.strip() and indent <= literal_indent:
            literal_indent = None
        if literal_indent is None and not line.lstrip().startswith((">>>", "...")):
            line = _THEORY_EQ.sub(_equation_link, line)
        if line.rstrip().endswith("::"):
            literal_indent = indent
        out.append(line)
    return "\n".join(out)


class MarkdownDocstrings(griffe.Extension):
    """Apply :func:`fence_doctests` and the role rewrite to every docstring griffe loads."""

    def on_instance(self, *, node, obj, agent, **kwargs) -> None:
        if obj.docstring is not None:
            text = link_equations(obj.docstring.value)
            text = _THEORY.sub(r"[theory: \1](../theory/\1.md)", text)
            text = _LITERAL.sub(":\n\n", text)
            obj.docstring.value = fence_doctests(_ROLE.sub(_role, text))

