"""Markdown pieces shared by the reports (report.py, paper_report.py): cells and tables."""

from __future__ import annotations


def mean_std(mean: float, std: float) -> str:
    """``mean ± std``; the mean alone for one seed (whose std is 0)."""
    return f"{mean:.4f}" if std == 0 else f"{mean:.4f} ± {std:.4f}"


def beside(ours: float | None, std: float | None, theirs: float | None) -> str:
    """``ours ± std (paper P, gap G)``."""
    text = "missing" if ours is None else mean_std(ours, std)
    if theirs is None:
        return f"{text} (paper —)"
    gap = "—" if ours is None else f"{ours - theirs:+.4f}"
    return f"{text} (paper {theirs:.4f}, gap {gap})"


def markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    """The lines of a markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return lines
