"""What the results section states ("what we found"), computed from the grouped rows: the best row per
task and its margin, a QA bridge against its controls, the bridge's accuracy (F1 on a QA task) at its
smallest wire format, the ablations that moved the score most; and the series of the bytes figure.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from lw_registry.report.groups import Group, label
from lw_registry.report.qa import GENERATIVE_METRIC, TEXT_UPPER_BOUND
from lw_registry.report.tables import METRIC_LABELS

TEXT_READERS = ("zero-shot", "lora", TEXT_UPPER_BOUND)
"""Methods drawn at the input text's size in the bytes figure: the receiver reading the whole text,
untrained and fine-tuned."""


def bytes_metric(group: Group) -> str:
    """What the bytes figure and the wire findings score: F1 on a QA task, else accuracy (what lw-train
    records at each wire format, whatever the table's headline)."""
    return GENERATIVE_METRIC if group.metric == GENERATIVE_METRIC else "accuracy"


def _mean(values: Sequence[float]) -> float | None:
    return statistics.fmean(values) if values else None


def _versus(best: Group, other: Group) -> str:
    gap = best.mean - other.mean
    stds = [s for s in (best.std, other.std) if s is not None]
    noise = "; no std (single runs)" if not stds else (
        "; within one std" if gap <= max(stds) else f"; more than the larger std ({max(stds):.3f})")
    return f"{gap:.3f} above {label(other)} at {other.text()}{noise}"


def _is_bridge(group: Group) -> bool:
    return str(group.key[0]).startswith("bridge")


def task_findings(task: str, groups: Sequence[Group]) -> str:
    """Which row is best on a task, by how much over the next, and where the best bridge row stands."""
    ranked = sorted(groups, key=lambda g: -g.mean)
    best = ranked[0]
    metric = METRIC_LABELS.get(best.metric, best.metric)
    text = f"- **{task}** ({metric}): best is {label(best)} at {best.text()}"
    text += f", {_versus(best, ranked[1])}" if len(ranked) > 1 else ", the only row"
    # where the other kind stands (the bridge, or the best method without it) unless it is the runner-up
    rival = next((g for g in ranked[1:] if _is_bridge(g) != _is_bridge(best)), None)
    if rival is not None and rival is not ranked[1]:
        what = "bridge row" if _is_bridge(rival) else "row without the bridge"
        text += f". The best {what}, {label(rival)} at {rival.text()}, is {best.mean - rival.mean:.3f} below it"
    return text + "."


def control_findings(task: str, groups: Sequence[Group]) -> list[str]:
    """Per QA bridge row whose runs scored the controls: its F1 against the token-budget control at the
    message's bytes and the text upper bound (the share of it the bridge reaches), from the same runs."""
    lines = []
    for group in groups:
        budget, upper = _mean(group.values("token_budget_f1")), _mean(group.values("zero_shot_f1"))
        if group.metric != GENERATIVE_METRIC or (budget is None and upper is None):
            continue
        text = f"- **{task}**, {label(group)}: F1 {group.text()}"
        if budget is not None:
            size = group.runs[0].metrics.get("token_budget_bytes")
            text += f" against {budget:.3f} for the token-budget control (the text cut to the message's {size} bytes)"
        if upper is not None:
            share = f", {group.mean / upper:.0%} of it" if upper > 0 else ""
            text += f"{',' if budget is not None else ' against'} {upper:.3f} for the text upper bound{share}"
        lines.append(text + ".")
    return lines


def wire_findings(task: str, groups: Sequence[Group]) -> list[str]:
    """Per bridge row with quantised scores: accuracy (F1) at its smallest wire format against unquantised."""
    lines = []
    for group in groups:
        points = wire_points(group)
        if points:
            size, score, fmt = min(points)
            name = bytes_metric(group)
            full = _mean(group.values(name))
            lines.append(f"- **{task}**, {label(group)}: {METRIC_LABELS.get(name, name)} {score:.3f} with the message "
                         f"at {fmt} ({size:,.0f} bytes) against {full:.3f} unquantised.")
    return lines


def ablation_findings(task: str, groups: Sequence[Group]) -> list[str]:
    """Per hardware, the ablations that moved the score most, up and down, against that hardware's
    `default` (keys are (ablation, …, hardware): a bf16 row is never compared with an fp32 default)."""
    lines = []
    for hardware in dict.fromkeys(g.key[-1] for g in groups):
        same = [g for g in groups if g.key[-1] == hardware]
        default = next((g for g in same if g.key[0] == "default"), None)
        others = sorted((g for g in same if g is not default), key=lambda g: g.mean)
        if default is None or not others:
            continue
        worst, best = others[0], others[-1]
        where = f" ({hardware})" if len({g.key[-1] for g in groups}) > 1 else ""
        text = f"- **{task}** ablations{where}, against default at {default.text()}: "
        text += f"{best.key[0]} scores {best.mean - default.mean:+.3f} at {best.text()}"
        if worst is not best:
            text += f", {worst.key[0]} {worst.mean - default.mean:+.3f} at {worst.text()}"
        lines.append(text + ".")
    return lines


def wire_points(group: Group) -> list[tuple[float, float, str]]:
    """(bytes, mean accuracy or F1, format) for each wire format the group's runs were scored at."""
    metrics, name = group.runs[0].metrics, bytes_metric(group)
    out = []
    for key, size in metrics.items():
        fmt = key.removeprefix("wire_bytes_")
        accuracy = _mean(group.values(f"{name}_wire_{fmt}"))
        if key.startswith("wire_bytes_") and isinstance(size, (int, float)) and accuracy is not None:
            out.append((float(size), accuracy, fmt))
    return sorted(out)


def bytes_series(groups: Sequence[Group]) -> dict[str, list[tuple[float, float, str]]]:
    """The bytes figure's series: each bridge row at its wire formats, each text relay (and QA token-budget
    control) at its message, and the receiver reading the text at the text's size; empty without a bridge
    row scored on the wire."""
    series = {label(g): wire_points(g) for g in groups if wire_points(g)}
    if not series:
        return {}
    text_bytes = []
    for group in groups:
        relay, accuracy = _mean(group.values("message_bytes")), _mean(group.values(bytes_metric(group)))
        if relay is not None and accuracy is not None:
            series[label(group)] = [(relay, accuracy, "")]
        text_bytes += group.values("text_bytes_mean") + group.values("input_bytes")
    if text_bytes:
        for group in groups:
            accuracy = _mean(group.values(bytes_metric(group)))
            if group.key[0] in TEXT_READERS and accuracy is not None:
                series[f"{label(group)}: reads the text"] = [(statistics.fmean(text_bytes), accuracy, "")]
    return series
