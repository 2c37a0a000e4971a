"""A griffe extension for the API reference (mkdocs.yml loads it): fer_exp's docstrings are
written for ``help()`` and doctest, so before mkdocstrings renders them as Markdown

- doctest examples (``>>>`` / ``...`` lines and the output after them) become ``pycon`` code
  blocks, instead of nested block quotes with their brackets read as links;
- Sphinx roles (``:mod:`fer_exp.cli.audit```, ``:class:`~x.Y```) become code spans.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:mod|class|func|meth|attr|data|obj|exc):`~?\.?([^`]+)`")


def markdown(text: str) -> str:
    """The docstring with doctest blocks fenced and Sphinx roles as code spans."""
    out: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        stripped = lines[i].lstrip()
        if not stripped.startswith(">>>"):
            out.append(ROLE.sub(r"`\1`", lines[i]))
            i += 1
            continue
        indent = lines[i][: len(lines[i]) - len(stripped)]
        block = []
        while i < len(lines) and lines[i].strip():  # a doctest block ends at a blank line
            block.append(lines[i][len(indent) :] if lines[i].startswith(indent) else lines[i].lstrip())
            i += 1
        out += [f"{indent}```pycon", *(f"{indent}{b}" for b in block), f"{indent}```"]
    return "\n".join(out)


class DoctestBlocks(griffe.Extension):
    def on_instance(self, *, node: Any, obj: griffe.Object, agent: Any, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = markdown(obj.docstring.value)
