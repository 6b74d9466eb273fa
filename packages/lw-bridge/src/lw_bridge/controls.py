"""The controls lw-train scores beside the bridge, on the same evaluator and the same test examples:
the receiver reading the text (the zero-shot reference; on a QA task the text upper bound, generated
and scored by EM / F1), the token-budget control at the message's wire bytes (the receiver reads the
input cut to as many bytes as the message takes, by lw-tasks' one cutting rule), and joint rescoring of
several receivers' answers to one message (interlingua)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from collections.abc import Sequence
from typing import Any

import torch
from lw_core import Embedded, FrozenLM
from lw_core.models import cache_dir
from lw_registry import write_json_atomic
from lw_tasks import EvalResult, Example, Task, evaluate, flat_metrics
from lw_tasks.budget import truncate_bytes
from lw_tasks.evaluate import generative_result
from lw_tasks.generative import answer_line_ids
from lw_tasks.task import template_fields
from lw_tasks.zero_shot import reference_scorer

from lw_bridge.layouts import cut_sender_part
from lw_bridge.scorer import BridgeScorer
from lw_bridge.selection import REPORTS

log = logging.getLogger("lw.train")


def zero_shot_reference(receiver: FrozenLM, task: Task, config: Any) -> dict[str, Any]:
    """The receiver reading the text prompt, on test: the registered `zero-shot-calibrated` method's scorer
    (`lw_tasks.zero_shot.reference_scorer`: calibrated answer-set scoring, or greedy generation of
    `config.max_new_tokens` on a generative task), as `lw-baseline zero-shot-calibrated` scores it. Cached
    on disk per receiver, test texts and generation length."""
    digest = hashlib.sha256("\0".join(f"{e.id}\t{e.text}" for e in task.split("test")).encode()).hexdigest()[:12]
    tag = REPORTS[task.kind].cache_tag + (str(config.max_new_tokens) if task.kind == "generative" else "")
    name = f"{receiver.name}-{task.name}-{digest}-test-{tag}"
    path = cache_dir() / "zero_shot" / f"{name.replace('/', '_')}.json"
    if path.is_file():
        return json.loads(path.read_text())
    result = evaluate(reference_scorer(receiver, task, config), task, "test", batch_size=config.eval_batch_size,
                      progress=config.progress)
    metrics = flat_metrics(result.metrics)
    write_json_atomic(path, metrics)
    return metrics


def token_budget_reference(receiver: FrozenLM, task: Task, receiver_fields: Sequence[str], max_bytes: int,
                           config: Any) -> dict[str, Any] | None:
    """The receiver reading, as text, what the message stands for cut to `max_bytes` UTF-8 bytes (the
    message's wire bytes) and the rest as the bridge's receiver reads it: the whole input cut (layout
    (a)), or the passage cut and the question whole (`receiver_fields`, layout (b)); scored on test as
    `zero_shot_reference` scores the full text. Its metrics and the mean bytes of the cut text; None
    (logged) for a task whose prompt reads fields other than `{text}`, whose input cannot be replaced."""
    if template_fields(task.template) != ["text"]:
        log.info("token-budget control skipped: task %r's prompt reads %s, not the input through {text} alone",
                 task.name, ", ".join(template_fields(task.template)))
        return None
    cut_parts: list[str] = []

    def cut(text: str) -> str:
        cut_parts.append(truncate_bytes(receiver, text, max_bytes))
        return cut_parts[-1]

    test = [dataclasses.replace(e, text=cut_sender_part(task, receiver_fields, e, cut)) for e in task.split("test")]
    metrics = zero_shot_reference(receiver, dataclasses.replace(task, splits={"test": test}), config)
    sizes = [len(part.encode("utf-8")) for part in cut_parts]
    return {**metrics, "text_bytes_mean": round(sum(sizes) / len(sizes), 1)}


@torch.no_grad()
def joint_rescoring(scorers: Sequence[BridgeScorer], task: Task, examples: Sequence[Example],
                    outputs: Sequence[Sequence[str]], batch_size: int) -> tuple[EvalResult, dict[str, float]]:
    """Joint rescoring of several receivers reading one message: every receiver's greedy answer to an
    example (`outputs[r][i]`) is a candidate; each candidate's log-probability (its tokens and the line
    end, summed) is summed over the receivers, each reading its own soft tokens of the message; the
    candidate with the highest total is the joint answer (the first receiver's on a tie). Its EvalResult
    (EM / F1 by the shared evaluator; each prediction lists its candidates and their totals) and the
    share of examples where the receivers agreed and where the joint answer is the first receiver's."""
    picked, agreed, first = [], 0, 0
    for start in range(0, len(examples), batch_size):
        batch = examples[start : start + batch_size]
        candidates = [list(dict.fromkeys(out[start + i] for out in outputs)) for i in range(len(batch))]
        totals = [torch.zeros(len(c)) for c in candidates]
        for scorer in scorers:
            scorer.bridge.eval()
            prefix = scorer.prefix(batch)
            for i, n in enumerate(prefix.lengths.tolist()):
                if len(candidates[i]) == 1:
                    continue
                one = Embedded(prefix.embeds[i : i + 1, :n], prefix.mask[i : i + 1, :n])
                ids = [answer_line_ids(scorer.receiver, c) for c in candidates[i]]
                totals[i] += scorer.receiver.score_answers(one, ids).logprobs[0].float().cpu()
        for i, (cands, total) in enumerate(zip(candidates, totals, strict=True)):
            choice = cands[int(total.argmax())]
            picked.append((choice, cands, total.tolist()))
            agreed += len(cands) == 1
            first += choice == outputs[0][start + i]
    result = generative_result(task, "test", examples, [p[0] for p in picked])
    for prediction, (_, cands, total) in zip(result.predictions, picked, strict=True):
        prediction.update(candidates=cands, joint_logprobs=[round(t, 4) for t in total])
    n = len(examples)
    return result, {"agreement_rate": agreed / n, "first_receiver_rate": first / n}


__all__ = ["joint_rescoring", "token_budget_reference", "zero_shot_reference"]
