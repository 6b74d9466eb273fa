"""Markdown tables and PNG figures of benchmark results (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib
from lw_registry import text_table

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """Rows of dicts as lw-registry's markdown table (columns in first-seen order, blanks for gaps)."""
    if not rows:
        return ""
    keys = list(dict.fromkeys(k for row in rows for k in row))
    cells = [["" if row.get(k) is None else round(row[k], 4) if isinstance(row[k], float) else row[k]
              for k in keys] for row in rows]
    return text_table.markdown_table(keys, cells) + "\n"


def latency_markdown(results: dict[str, Any]) -> str:
    rows = []
    for p in results["paths"]:
        row: dict[str, Any] = {"path": p["name"], "weights": "trained" if p["trained"] else "fresh"}
        row |= {f"{k} ms": round(v, 1) for k, v in p["latency_ms"].items() if k != "mean"}
        row |= {f"batch {b} ex/s": round(v, 2) for b, v in p["throughput"].items()}
        row[f"peak {'RSS' if p['memory_kind'] == 'rss' else 'CUDA'} MiB"] = round(p["peak_memory_mib"])
        rows.append(row)
    stages = [{"path": p["name"], **{k: round(v, 1) for k, v in p["stages_ms"].items()}} for p in results["paths"]]
    out = "### Latency at batch 1 and throughput\n\n" + markdown_table(rows)
    out += "\n### Mean ms per stage at batch 1\n\n" + markdown_table(stages)
    out += "\n### Ratios of p50 latency (same run)\n\n" + markdown_table(
        [{"ratio": k, "value": round(v, 2)} for k, v in results["ratios_p50"].items()])
    if "bridge_module_share" in results:
        out += f"\nBridge module (encoder + adapter) share of the bridge path: {results['bridge_module_share']:.1%}\n"
    return out


def latency_figure(results: dict[str, Any], path: Path) -> str:
    paths = results["paths"]
    stages = list(dict.fromkeys(s for p in paths for s in p["stages_ms"]))
    fig, ax = plt.subplots(figsize=(9, 0.5 * len(paths) + 1.5))
    left = [0.0] * len(paths)
    for stage in stages:
        widths = [p["stages_ms"].get(stage, 0.0) for p in paths]
        ax.barh([p["name"] for p in paths], widths, left=left, label=stage)
        left = [a + b for a, b in zip(left, widths, strict=True)]
    ax.set_xscale("log")
    ax.set_xlabel("ms per example at batch 1 (mean, by stage; log scale)")
    ax.invert_yaxis()
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path.name


def scaling_markdown(results: dict[str, Any]) -> str:
    rows = [{"input tokens": n, **{name: round(ms[i], 1) for name, ms in results["p50_ms"].items()}}
            for i, n in enumerate(results["lengths"])]
    fits = [{"path": name, "ms per token": round(f["ms_per_token"], 3), "intercept ms": round(f["intercept_ms"], 1)}
            for name, f in results["fits"].items()]
    out = "### p50 latency (ms) by input length\n\n" + markdown_table(rows) + "\n### Linear fits\n\n" + markdown_table(fits)
    if "bridge_equals_direct_at_tokens" in results:
        x = results["bridge_equals_direct_at_tokens"]
        out += f"\nFitted lines of bridge and direct meet at {'none' if x is None else f'{x:.0f}'} input tokens; "
        out += f"the bridge was cheaper at the measured lengths {results['bridge_cheaper_at_measured_lengths']}.\n"
    return out


def wire_markdown(results: dict[str, Any]) -> str:
    out = f"### Message size and accuracy by precision ({results['task']}, {results['split']})\n\n"
    out += markdown_table(results["rows"])
    out += f"\nInput text: {results['text_bytes']:.0f} bytes (UTF-8, mean)"
    if results.get("relay_bytes"):
        out += f"; relay message: {results['relay_bytes']:.0f} bytes"
    return out + "\n"


def wire_figure(results: dict[str, Any], path: Path) -> str:
    fig, ax = plt.subplots(figsize=(6, 4))
    rows = results["rows"]
    ax.plot([r["bytes"] for r in rows], [r["accuracy"] for r in rows], marker="o", label="bridge message")
    for r in rows:
        ax.annotate(r["precision"], (r["bytes"], r["accuracy"]), fontsize=8)
    for label, key in (("input text", "text_bytes"), ("relay message", "relay_bytes")):
        if results.get(key):
            ax.axvline(results[key], linestyle="--", color="grey")
            ax.annotate(label, (results[key], min(r["accuracy"] for r in rows)), fontsize=8, rotation=90)
    ax.set_xscale("log")
    ax.set_xlabel("bytes per example on the wire")
    ax.set_ylabel(f"{results['split']} accuracy")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path.name
