"""Tables as text: aligned columns for the terminal, markdown for files. Stdlib only."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def _cell(value: Any) -> str:
    return "" if value is None else str(value).replace("\n", " ")


def terminal_table(headers: Sequence[Any], rows: Sequence[Sequence[Any]], *, gap: str = "  ",
                   rule: bool = False) -> str:
    """Left-aligned columns as wide as their widest cell; trailing spaces trimmed; None is an empty cell
    and a newline a space. `rule`: a line of dashes under the headers."""
    cells = [[_cell(c) for c in headers], *[[_cell(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells if i < len(row)) for i in range(len(cells[0]))]
    if rule:
        cells.insert(1, ["-" * w for w in widths])
    return "\n".join(gap.join(c.ljust(w) for c, w in zip(row, widths, strict=False)).rstrip() for row in cells)


def markdown_table(headers: Sequence[Any], rows: Sequence[Sequence[Any]], *, right: int = 0,
                   align: str | None = None) -> str:
    """A markdown table; the last `right` columns are right-aligned (numbers), or `align` gives each
    column's alignment as a letter, `l` or `r` (`"lrr"`)."""
    align = align or "l" * (len(headers) - right) + "r" * right
    rule = "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|"
    lines = ["| " + " | ".join(str(h) for h in headers) + " |", rule]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
