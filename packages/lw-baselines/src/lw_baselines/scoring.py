"""Scorers the baselines build on top of lw-tasks' `ZeroShotScorer` and `ContextualCalibration`.

Every score here is a log-probability of an answer's verbalizer after an input, the same quantity
`ZeroShotScorer` returns, so every method's scores mean the same thing. Methods that train on answers
(LoRA, DoRA, prompt tuning) train and score by one answer rule (`lw_tasks.ANSWER_RULES`: all the
verbalizer's tokens, or its first), the bridge's rule by default.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from lw_core.errors import LwError
from lw_core.lm import FrozenLM
from lw_tasks import (
    ANSWER_RULES,
    DEFAULT_ANSWER_RULE,
    ContextualCalibration,
    EvalResult,
    Example,
    Task,
    answer_token_ids,
    calibrate_scores,
    check_answer_rule,
    evaluate,
    resolve_answer_rule,
    result_from_scores,
)
from lw_tasks.task import template_fields


def answer_ids(lm: FrozenLM, task: Task, answer_rule: str = "full") -> list[list[int]]:
    """Token ids of each answer's verbalizer for `lm` that are trained and scored under `answer_rule`
    (as `ZeroShotScorer(lm, answer_rule=...)` scores them)."""
    return answer_token_ids(lm, task, answer_rule)


def applied_answer_rule(lm: FrozenLM, task: Task, answer_rule: str) -> str:
    """The rule as it applies to this task's answers for `lm` (first-token falls back to full when
    two answers share their first token): what a run records."""
    return resolve_answer_rule(answer_rule, answer_ids(lm, task))


@dataclass
class AnswerRuleFields:
    """Mixed into the configs of methods that train on answers."""

    answer_rule: str = field(default=DEFAULT_ANSWER_RULE, metadata={
        "help": "how answers are trained and scored: first-token (the answer's first token; full when two "
                "answers share it), distinct-prefix (each answer's tokens up to the first no other answer "
                "shares) or full (every answer token)", "choices": list(ANSWER_RULES)})

    def check_answer_rule(self) -> None:
        try:
            check_answer_rule(self.answer_rule)
        except LwError as err:
            raise ValueError(str(err)) from None


def better(candidate: EvalResult, best: EvalResult | None) -> bool:
    """Selection rule on validation: higher accuracy, then lower NLL."""
    if best is None:
        return True
    a, b = candidate.metrics["accuracy"], best.metrics["accuracy"]
    if a != b:
        return a > b
    na, nb = candidate.metrics.get("nll"), best.metrics.get("nll")
    return na is not None and (nb is None or na < nb)


class MappedScorer:
    """Score each example after rewriting it (e.g. truncating its text or replacing it by a message)."""

    scores_are_logprobs = True

    def __init__(self, inner: Any, rewrite: Callable[[Task, Sequence[Example]], list[Example]]):
        self.inner, self.rewrite = inner, rewrite

    def score(self, task: Task, examples: Sequence[Example]) -> torch.Tensor:
        return self.inner.score(task, self.rewrite(task, examples))


def with_text(example: Example, text: str) -> Example:
    """The example with another input text (a truncation, a message); id and label kept."""
    return dataclasses.replace(example, text=text)


def require_text_template(task: Task, method: str) -> None:
    """Methods that replace the input need a prompt that reads the input through `{text}` alone."""
    fields = template_fields(task.template)
    if fields != ["text"]:
        raise LwError(
            f"method {method!r} replaces the input text, but task {task.name!r}'s template reads fields "
            f"{', '.join(fields)}; it needs a template whose only field is {{text}}"
        )


def choose_calibration(
    raw: Any, task: Task, *, batch_size: int, progress: bool, allowed: Sequence[bool] = (False, True)
) -> tuple[Any, EvalResult, bool]:
    """Pick raw or contextually calibrated scores on validation (one scoring pass).

    Returns the chosen scorer, its validation result and whether it is calibrated.
    """
    val_raw = evaluate(raw, task, "validation", batch_size=batch_size, progress=progress)
    if tuple(allowed) == (False,):
        return raw, val_raw, False
    calibrated = ContextualCalibration(raw)
    offset = calibrated.offset(task)
    val_cal = result_from_scores(task, "validation", task.split("validation"), calibrate_scores(val_raw.scores, offset))
    val_cal.metrics["seconds"] = val_raw.metrics.get("seconds")
    if tuple(allowed) == (True,) or better(val_cal, None if False not in allowed else val_raw):
        return calibrated, val_cal, True
    return raw, val_raw, False


class TaskViewScorer:
    """Score every example through another view of the task (e.g. a template with demonstrations)."""

    scores_are_logprobs = True

    def __init__(self, inner: Any, view: Task):
        self.inner, self.view = inner, view

    def score(self, task: Task, examples: Sequence[Example]) -> torch.Tensor:
        return self.inner.score(self.view, examples)


# ---- soft prompt + text ---------------------------------------------------------------------------
SOFT_PROMPT_PLACEMENTS = ("prefix", "suffix")


def soft_prompt_rows(lm: FrozenLM, task: Task, examples: Sequence[Example], soft: torch.Tensor,
                     placement: str = "prefix") -> list[list[torch.Tensor]]:
    """Each example's receiver input as segments: `prefix` = [BOS] + K soft tokens + the task prompt with
    the text; `suffix` = [BOS] + the prompt up to the end of the text + K soft tokens + the answer cue
    (the layouts of the bridge's `--fusion-layout`)."""
    bos = torch.tensor(lm.bos_ids, dtype=torch.long)
    if placement == "prefix":
        return [[bos, soft, torch.tensor(lm.token_ids(task.prompt(e)), dtype=torch.long)] for e in examples]
    if task.template.count("{text}") != 1:
        raise LwError(f"placement suffix needs a task prompt with one {{text}}; task {task.name!r} has {task.template!r}")
    cue = task.template.split("{text}")[1]
    rows = []
    for e in examples:
        prompt = task.prompt(e)
        head = prompt[: len(prompt) - len(cue)] if cue else prompt
        rows.append([bos, torch.tensor(lm.token_ids(head), dtype=torch.long), soft,
                     torch.tensor(lm.token_ids(cue), dtype=torch.long)])
    return rows


class SoftPromptScorer:
    """The model's BOS (if it adds one), K trained soft tokens and the task's prompt with the input text,
    the soft tokens before the prompt or after the text (`placement`, `soft_prompt_rows`)."""

    scores_are_logprobs = True

    def __init__(self, lm: FrozenLM, soft: torch.Tensor, answer_rule: str = "full", placement: str = "prefix"):
        self.lm, self.soft, self.answer_rule, self.placement = lm, soft, answer_rule, placement

    def prefix(self, task: Task, examples: Sequence[Example]):
        """The receiver's input for these examples, right-padded (`lw_core.Embedded`)."""
        return self.lm.compose(soft_prompt_rows(self.lm, task, examples, self.soft, self.placement))

    @torch.no_grad()
    def score(self, task: Task, examples: Sequence[Example]) -> torch.Tensor:
        prefix = self.prefix(task, examples)
        return self.lm.score_answers(prefix, answer_ids(self.lm, task, self.answer_rule)).logprobs.float().cpu()


# ---- batched greedy generation ----------------------------------------------------------------------
@torch.no_grad()
def generate_batch(lm: FrozenLM, texts: Sequence[str], max_new_tokens: int, stop_ids: Sequence[int] = ()) -> list[str]:
    """Greedy continuations of a batch of texts: left-padded, with explicit position ids (so padding
    changes nothing), stopping at EOS or any of `stop_ids`. Equal to `lm.generate` one text at a time."""
    tok = lm.tokenizer
    encoded = [tok(t)["input_ids"] for t in texts]
    width = max(len(e) for e in encoded)
    pad = tok.pad_token_id
    ids = torch.full((len(texts), width), pad, dtype=torch.long)
    mask = torch.zeros(len(texts), width, dtype=torch.long)
    for i, e in enumerate(encoded):
        ids[i, width - len(e) :] = torch.tensor(e)
        mask[i, width - len(e) :] = 1
    ids, mask = ids.to(lm.device), mask.to(lm.device)
    positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
    stops = set(stop_ids) | ({tok.eos_token_id} if tok.eos_token_id is not None else set())
    model = lm.model
    out = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, logits_to_keep=1)
    cache = out.past_key_values
    generated = torch.zeros(len(texts), 0, dtype=torch.long, device=lm.device)
    done = torch.zeros(len(texts), dtype=torch.bool, device=lm.device)
    next_pos = positions[:, -1] + 1
    logits = out.logits[:, -1]
    for _ in range(max_new_tokens):
        nxt = logits.argmax(dim=-1)
        nxt = torch.where(done, torch.full_like(nxt, pad), nxt)
        generated = torch.cat([generated, nxt[:, None]], dim=1)
        done = done | torch.tensor([int(t) in stops for t in nxt.tolist()], device=lm.device)
        if bool(done.all()):
            break
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
        out = model(input_ids=nxt[:, None], attention_mask=mask, position_ids=next_pos[:, None],
                    past_key_values=cache, use_cache=True)
        cache, logits, next_pos = out.past_key_values, out.logits[:, -1], next_pos + 1
    texts_out = []
    for row in generated.tolist():
        kept = []
        for t in row:
            if t in stops:
                break
            kept.append(t)
        texts_out.append(tok.decode(kept, skip_special_tokens=True))
    return texts_out
