"""The one table format every benchmark prints."""

from __future__ import annotations

import attrs


@attrs.frozen
class Row:
    """One measurement: what, its value and unit, and how it compares with its target."""

    bench: str
    case: str
    value: float
    unit: str
    ratio: str = ""
    target: str = ""
    verdict: str = ""


def render(rows: list[Row]) -> str:
    header = ("bench", "case", "value", "unit", "ratio", "target", "verdict")
    cells = [header] + [
        (r.bench, r.case, f"{r.value:,.2f}", r.unit, r.ratio, r.target, r.verdict) for r in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"
        for row in cells
    ]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)
