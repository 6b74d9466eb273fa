"""The results section's figures as PNG (matplotlib, headless; the `figures` extra). Each function takes
plain numbers and a path and returns the file's name; lw-bench draws its scaling figure with the same
function."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

MISSING = "figures need matplotlib: install lw-registry[figures] (`uv sync` in the workspace), or pass --no-figures"


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise ValueError(MISSING) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt: Any, fig: Any, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(fig)
    return path.name


def bars_figure(path: Path, title: str, xlabel: str, bars: Sequence[tuple[str, float, float | None]]) -> str:
    """Horizontal bars (label, mean, std or None), top to bottom, with the std as an error bar."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 0.32 * len(bars) + 1.2))
    labels = [b[0] for b in bars]
    ax.barh(labels, [b[1] for b in bars], xerr=[b[2] or 0.0 for b in bars], color="#4c72b0", capsize=3)
    for i, (_, mean, _std) in enumerate(bars):
        ax.annotate(f"{mean:.3f}", (mean, i), xytext=(4, 0), textcoords="offset points", va="center", fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, min(1.0, max(b[1] + (b[2] or 0) for b in bars) * 1.15))
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=10)
    ax.tick_params(axis="y", labelsize=8)
    return _save(plt, fig, path)


def bytes_figure(path: Path, title: str, ylabel: str,
                 series: Mapping[str, Sequence[tuple[float, float, str]]]) -> str:
    """Accuracy against bytes on the wire: each series' points (bytes, accuracy, annotation), log x."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for label, points in series.items():
        points = sorted(points)
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=label,
                linestyle="-" if len(points) > 1 else "none")
        for x, y, note in points:
            if note:
                ax.annotate(note, (x, y), xytext=(3, 3), textcoords="offset points", fontsize=7)
    ax.set_xscale("log")
    plain = plt.FuncFormatter(lambda value, _: f"{value:g}")
    ax.xaxis.set_major_formatter(plain)
    ax.xaxis.set_minor_formatter(plain)
    ax.tick_params(axis="x", which="minor", labelsize=7)
    ax.set_xlabel("bytes per example from sender to receiver (log scale)")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7)
    return _save(plt, fig, path)


def answers_figure(results: Mapping[str, Any], path: Path) -> str:
    """Seconds per bridge training step against the number of answers, one line per answer rule
    (lw-bench train --answers's results.json)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    rows = results["answer_sizes"]
    for rule in dict.fromkeys(r["rule"] for r in rows):
        mine = [r for r in rows if r["rule"] == rule]
        ax.plot([r["answers"] for r in mine], [r["s/step"] for r in mine], marker="o", label=f"answer rule {rule}")
    ax.set_xlabel("answers in the answer set")
    ax.set_ylabel(f"s per training step (batch {results.get('batch', '?')})")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8)
    return _save(plt, fig, path)


def scaling_figure(results: Mapping[str, Any], path: Path) -> str:
    """p50 latency of each path against input length (lw-bench scaling's results.json), log-log."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, ms in results["p50_ms"].items():
        ax.plot(results["lengths"], ms, marker="o", label=name)
    ax.set_xlabel("input tokens (receiver)")
    ax.set_ylabel("p50 ms per example, batch 1")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    return _save(plt, fig, path)
