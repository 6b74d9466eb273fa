"""Judging a run's checkpoint on validation: its accuracy and NLL over receivers (first-token accuracy for
generative tasks; lw-core's `train_loop` selects on them), whether it beats the majority class, what the encoder
learned to read (its sender-layer mixture), and what a run reports per kind of task."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from lw_core import FrozenLM
from lw_core.models import model_tag
from lw_tasks import Example, Task, generative

from lw_bridge.bridge import Bridge
from lw_bridge.config import TrainConfig
from lw_bridge.scorer import BridgeScorer

log = logging.getLogger("lw.train")


def layer_weights(bridge: Bridge) -> dict[str, Any]:
    """The learned mixture over the sender layers, when the encoder reads several."""
    layers, inp = bridge.config.layer, getattr(bridge.encoder, "inp", None)
    if isinstance(layers, int) or inp is None:
        return {}
    weights = inp.layer_weights().detach().cpu().tolist()
    return {"layer_weights": {str(layer): round(w, 4) for layer, w in zip(layers, weights, strict=True)}}


def mean_nll(results: Sequence[Any]) -> float | None:
    """Mean validation NLL over receivers (None for generative tasks, which have no answer set)."""
    values = [r.metrics.get("nll") for r in results]
    return None if not values or any(v is None for v in values) else sum(values) / len(values)


def majority_check(val_metrics: dict[str, Any], receiver: str, suffix: str) -> dict[str, Any]:
    """Whether the selected checkpoint's validation accuracy beats always answering the majority class;
    a warning when it does not (the run learned nothing the receiver can use)."""
    accuracy, majority = val_metrics["accuracy"], val_metrics.get("majority_rate")
    beats = None if majority is None else accuracy > majority
    if beats is False:
        log.warning("bridge→%s: selected validation accuracy %.4f is not above the majority class (%.4f); "
                    "this run learned nothing usable (try more --steps, another --lr or --message-head-weight 1)",
                    receiver, accuracy, majority)
    return {f"val_majority_rate{suffix}": majority, f"beats_majority{suffix}": beats}


def receiver_suffix(receivers: Sequence[FrozenLM], index: int) -> str:
    """How a run's files and metrics name a receiver: nothing for the first, `_<tag>` for the others."""
    return "" if index == 0 else f"_{model_tag(receivers[index].name)}"


@dataclass(frozen=True)
class KindReport:
    """What a run reports for one kind of task."""

    headline: str
    """The metric the run is judged by (selection aside), in the wire-format and summary lines too."""
    test_metrics: tuple[str, ...]
    zero_shot_key: str
    """The metric name of the receiver reading the text prompt, beside the bridge."""
    zero_shot_label: str
    cache_tag: str


REPORTS = {
    "classification": KindReport("accuracy", ("accuracy", "macro_f1"), "zero_shot_calibrated_accuracy",
                                 "calibrated zero-shot", "calibrated"),
    "generative": KindReport("f1", ("em", "f1"), "zero_shot_f1", "reading the text (upper bound)", "generated"),
}


def first_token_accuracy(scorer: BridgeScorer, examples: Sequence[Example], references: list[list[int]],
                         batch_size: int) -> float:
    """How often the receiver's greedy first token after the soft prefix is the reference's first token."""
    scorer.bridge.eval()
    return generative.first_token_accuracy(scorer.receiver, scorer.prefix, examples, references, batch_size)


def print_summary(task: Task, config: TrainConfig, metrics: dict[str, Any], receivers: Sequence[FrozenLM]) -> None:
    """The run's result lines (and the majority-class warning) on stdout: per receiver the bridge, then
    the controls on the same test examples (the bridge at the token-budget control's wire format, the
    receiver reading the text, the token-budget control and the bytes each reads); for several receivers
    on a generative task, joint rescoring."""
    report = REPORTS[task.kind]
    headline, zero_shot = report.headline, report.zero_shot_key
    generative = task.kind == "generative"

    def em(key: str) -> str:
        return f" (EM {metrics[key]:.4f})" if generative and key in metrics else ""

    for r, receiver in enumerate(receivers):
        suffix = receiver_suffix(receivers, r)
        parts = [f"{task.name} test {headline}: bridge {config.sender}→{receiver.name} "
                 f"{metrics[f'{headline}{suffix}']:.4f}"]
        if generative:  # EM and first-token accuracy beside F1, as LatentWire reports them
            parts[0] += (f" (EM {metrics[f'em{suffix}']:.4f}, first-token accuracy "
                         f"{metrics[f'first_token_accuracy{suffix}']:.4f})")
        wire = metrics.get("token_budget_wire")
        if wire and f"{headline}_wire_{wire}{suffix}" in metrics:
            parts.append(f"bridge at {wire} ({metrics['token_budget_bytes']} B message) "
                         f"{metrics[f'{headline}_wire_{wire}{suffix}']:.4f}{em(f'em_wire_{wire}{suffix}')}")
        if f"{zero_shot}{suffix}" in metrics:
            parts.append(f"{receiver.name} {report.zero_shot_label} {metrics[f'{zero_shot}{suffix}']:.4f}"
                         + em(f"zero_shot_em{suffix}"))
        if f"token_budget_{headline}{suffix}" in metrics:
            read = metrics.get("sender_only_bytes_mean", metrics["text_bytes_mean"])
            parts.append(f"token budget ({metrics['token_budget_bytes']} B of {read:g} B "
                         f"{'passage' if 'sender_only_bytes_mean' in metrics else 'input'}, cut text "
                         f"{metrics[f'token_budget_text_bytes_mean{suffix}']:g} B) "
                         f"{metrics[f'token_budget_{headline}{suffix}']:.4f}{em(f'token_budget_em{suffix}')}")
        if metrics.get(f"majority_rate{suffix}") is not None:
            parts.append(f"majority class {metrics[f'majority_rate{suffix}']:.4f}")
        print(" | ".join(parts), flush=True)
        if metrics.get(f"beats_majority{suffix}") is False:
            print(f"WARNING: validation accuracy {metrics[f'val_accuracy{suffix}']:.4f} is not above the majority "
                  f"class ({metrics[f'val_majority_rate{suffix}']:.4f}): the bridge learned nothing usable", flush=True)
    if "joint_f1" in metrics:
        print(f"{task.name} test f1: joint rescoring of {' + '.join(r.name for r in receivers)} "
              f"{metrics['joint_f1']:.4f} (EM {metrics['joint_em']:.4f}; the receivers' answers agreed on "
              f"{metrics['joint_agreement_rate']:.2%}, the first receiver's was chosen on "
              f"{metrics['joint_first_receiver_rate']:.2%})", flush=True)
