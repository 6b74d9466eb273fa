"""What the results tables show of a generative (QA) task: F1 as the headline metric, with EM and
first-token accuracy beside it, and the control rows lw-train records inside a QA bridge run, as rows
of their own:

- `text-upper-bound`: the receiver reading passage and question as text (`zero_shot_f1`, `zero_shot_em`);
- `token-budget@<bytes>B`: the receiver reading the text the message stands for cut to the message's wire
  bytes (`token_budget_f1`, …; `+question` when the question stays whole, layout (b)); its message
  bytes are what the cut text took (`token_budget_text_bytes_mean`);
- `<bridge>@joint`: an interlingua run's joint rescoring of its receivers' answers (`joint_f1`, `joint_em`).

A control is the same deterministic evaluation whichever seed the bridge trained with: its row keeps
the latest run's (one seed, no std), and its train budget is the examples alone (no steps; nothing is
trained). A control of a run's first receiver carries no receiver tag, the others `@<tag>`, as the
record's metric names do. Layout (b)'s bridge rows name the fields the receiver reads as text
(`bridge-fusion+question`). Chance and majority rows are classification notions: a QA table has none.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator

from lw_registry.record import RunRecord

GENERATIVE_METRIC = "f1"
"""The headline metric of a generative task (SQuAD F1)."""
BESIDE = {"em": "EM (mean ± std)", "first_token_accuracy": "first-token accuracy (mean ± std)"}
"""The columns beside F1 in a QA table (each where some row records it), and their headers."""
TEXT_UPPER_BOUND = "text-upper-bound"
TOKEN_BUDGET = "token-budget"


def is_generative(metrics: dict | None) -> bool:
    """A run of a generative task: it records EM and F1 (and no accuracy)."""
    metrics = metrics or {}
    return "em" in metrics and GENERATIVE_METRIC in metrics and "accuracy" not in metrics


def with_generative(metric: Callable[[str | None], str], records: Iterable[RunRecord],
                    default: str) -> Callable[[str | None], str]:
    """`metric`, with F1 for every task whose runs are generative where `metric` gives only the `default`."""
    tasks = {r.task for r in records if r.task and is_generative(r.metrics)}
    return lambda task: GENERATIVE_METRIC if task in tasks and metric(task) == default else metric(task)


def layout_fields(record: RunRecord) -> str:
    """`+question` for a run whose receiver reads those fields as text (layout (b)); empty otherwise."""
    return "".join(f"+{name}" for name in (record.config or {}).get("receiver_text_fields") or [])


def _control(record: RunRecord, method: str, prefix: str, **extra) -> RunRecord:
    metrics = record.metrics
    scores = {GENERATIVE_METRIC: metrics[f"{prefix}_{GENERATIVE_METRIC}"], "em": metrics.get(f"{prefix}_em")}
    return dataclasses.replace(record, method=method, seed=None, config={**(record.config or {}), "steps": None},
                               metrics={**scores, "trainable_params": 0, **extra})


def control_rows(record: RunRecord, tag: str, fields: str) -> Iterator[RunRecord]:
    """A QA bridge record's (one receiver's metrics, unsuffixed) controls: the text upper bound and the
    token-budget control, each where recorded, named with the receiver's `tag` (`@<tag>` or empty)."""
    metrics = record.metrics or {}
    if "zero_shot_em" in metrics and metrics.get(f"zero_shot_{GENERATIVE_METRIC}") is not None:
        yield _control(record, f"{TEXT_UPPER_BOUND}{tag}", "zero_shot", text_bytes_mean=metrics.get("text_bytes_mean"))
    if "token_budget_em" in metrics and metrics.get(f"token_budget_{GENERATIVE_METRIC}") is not None:
        name = f"{TOKEN_BUDGET}@{metrics.get('token_budget_bytes')}B{fields}{tag}"
        yield _control(record, name, "token_budget", message_bytes=metrics.get("token_budget_text_bytes_mean"))


def joint_row(record: RunRecord, method: str) -> Iterator[RunRecord]:
    """An interlingua QA record's joint rescoring as a row (`<method>@joint`): its scores, the bridge's
    size and training time and the message's wire sizes."""
    metrics = record.metrics or {}
    if metrics.get(f"joint_{GENERATIVE_METRIC}") is None:
        return
    kept = {k: v for k, v in metrics.items()
            if k.startswith(("wire_bytes_", "joint_")) or k in ("trainable_params", "train_seconds")}
    yield dataclasses.replace(record, method=f"{method}@joint", metrics={
        **kept, GENERATIVE_METRIC: metrics[f"joint_{GENERATIVE_METRIC}"], "em": metrics.get("joint_em")})
