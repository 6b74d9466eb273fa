"""Constrained-output scoring: zero-shot answer scoring, contextual calibration, generated-text parsing.

- `ZeroShotScorer` scores each answer's verbalizer after the task's prompt (lw-core's `score_answers`).
- `ContextualCalibration` wraps any scorer: it scores content-free inputs ("N/A", "", "[MASK]") through
  the same template and subtracts their mean log-probability per answer (Zhao et al., 2021).
- `parse_answer` maps a generated text to exactly one answer or to None (invalid); `GenerationScorer`
  turns that into a score row (all -inf = invalid, never a class).
"""

from __future__ import annotations

import re
import time
import weakref
from collections.abc import Sequence

import torch
from lw_core.answer_trie import proper_prefixes
from lw_core.errors import LwError

from lw_tasks.generative import MAX_NEW_TOKENS
from lw_tasks.task import CONTENT_FREE, Example, Scorer, Task

ANSWER_RULES = ("first-token", "distinct-prefix", "full")
"""How an answer's verbalizer is scored (and, for trained methods, trained): `full` sums the
log-probabilities of all its tokens; `first-token` takes its first token's alone, which decides the
answer whenever the answers start with distinct tokens (where they do not, it falls back to `full`);
`distinct-prefix` sums each answer's tokens up to the first one no other answer shares at that position
(its first token where first tokens differ, as `first-token`; where two answers share their first
tokens, only those continue, up to where they part). A trained method trains and scores by one rule,
recorded in its run."""
DEFAULT_ANSWER_RULE = "first-token"
"""For trained methods. Measured on 20ng (verbalizers of 1–3 Gemma tokens): one trained bridge scored
0.673 by its first answer token and 0.565 by all of them; the continuation of a multi-token name is
what a short training run learns least. It is also one LM-head row per answer and no continuation pass.
Where first tokens collide it stays exact (`full`) rather than `distinct-prefix`: on the R52 CSV (52
labels, seed 0, default budget) the default bridge scored 0.7835 test accuracy against 0.7645 under
`distinct-prefix`, whose step costs about a third as much (records under results/records/r52/bridge)."""


def check_answer_rule(rule: str) -> str:
    if rule not in ANSWER_RULES:
        raise LwError(f"unknown answer rule {rule!r}; known: {', '.join(ANSWER_RULES)}")
    return rule


def resolve_answer_rule(rule: str, answer_ids: Sequence[Sequence[int]]) -> str:
    """The rule as applied to these answers' token ids: `first-token` falls back to `full` when two
    answers share their first token (it would not tell them apart); `distinct-prefix` is `first-token`
    when they do not."""
    check_answer_rule(rule)
    firsts = [a[0] for a in answer_ids if a]
    shared = len(set(firsts)) < len(answer_ids)
    if rule == "first-token" and shared:
        return "full"
    if rule == "distinct-prefix" and not shared:
        return "first-token"
    return rule


def answer_rule_hint(rule: str, answer_ids: Sequence[Sequence[int]]) -> str | None:
    """A line for the log when `first-token` falls back to `full` (answers share first tokens): how many
    continuation positions it scores against `distinct-prefix`, the cheaper exact alternative."""
    if rule != "first-token" or resolve_answer_rule(rule, answer_ids) != "full":
        return None
    full, cut = len(proper_prefixes(answer_ids)), len(proper_prefixes(distinct_prefixes(answer_ids)))
    return (f"answers share first tokens, so the first-token rule scores every answer token in full: "
            f"{full} continuation positions per example, each normalised over the vocabulary; "
            f"--answer-rule distinct-prefix scores up to where the answers part ({cut}), a cheaper step")


def distinct_prefixes(answer_ids: Sequence[Sequence[int]]) -> list[list[int]]:
    """Each answer cut after its first token that no other answer has after the same tokens (an answer
    that is another's prefix, or equals it, keeps all its tokens)."""
    counts: dict[tuple[int, ...], int] = {}
    for answer in answer_ids:
        for k in range(1, len(answer) + 1):
            counts[tuple(answer[:k])] = counts.get(tuple(answer[:k]), 0) + 1
    return [list(a[: next((k for k in range(1, len(a) + 1) if counts[tuple(a[:k])] == 1), len(a))])
            for a in answer_ids]


def apply_answer_rule(answer_ids: Sequence[Sequence[int]], rule: str) -> list[list[int]]:
    """The token ids that are scored (and trained) under `rule`."""
    applied = resolve_answer_rule(rule, answer_ids)
    if applied == "first-token":
        return [list(a[:1]) for a in answer_ids]
    if applied == "distinct-prefix":
        return distinct_prefixes(answer_ids)
    return [list(a) for a in answer_ids]


def answer_token_ids(lm, task: Task, rule: str = "full") -> list[list[int]]:
    """Token ids of each answer's verbalizer for `lm`, as scored under `rule`."""
    ids = [lm.token_ids(v) for v in task.verbalizers]
    empty = [a for a, i in zip(task.answers, ids, strict=True) if not i]
    if empty:
        raise LwError(f"task {task.name!r}: verbalizer of answer(s) {', '.join(empty)} has no tokens for {lm.name}")
    return apply_answer_rule(ids, rule)


class ZeroShotScorer:
    """A frozen LM reads the task's prompt; the score of an answer is the log-probability of its
    verbalizer (all its tokens, or its first under `answer_rule="first-token"`) right after the prompt.
    `calibrate=True` applies contextual calibration; `memo=False` scores every call afresh (benchmarks
    timing the forward pass)."""

    scores_are_logprobs = True

    def __init__(self, lm, calibrate: bool = False, content_free: Sequence[str] = CONTENT_FREE, memo: bool = True,
                 answer_rule: str = "full"):
        self.lm = lm
        self.calibrate = calibrate
        self.answer_rule = check_answer_rule(answer_rule)
        self._raw = _RawZeroShot(lm, memo, answer_rule)
        self._calibration = ContextualCalibration(self._raw, content_free) if calibrate else None

    @torch.no_grad()
    def score(self, task: Task, examples: Sequence[Example]) -> torch.Tensor:
        if self._calibration is not None:
            return self._calibration.score(task, examples)
        return self._raw.score(task, examples)


_PROMPT_SCORES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
"""Per LM: (answer log-probs, seconds it took) by (prompt, answer ids), valid for one version of its
weights. A prompt is scored once per process: zero-shot, its calibrated variant, the ensemble and the answer relay share
their passes over a split."""


_MEMO_SECONDS = [0.0]


def memo_seconds() -> float:
    """Compute time of the prompt scores served from the memo so far in this process: each hit is
    charged what its first computation took, so a timed pass costs the same whether or not another
    method scored its prompts first."""
    return _MEMO_SECONDS[0]


def _weights_version(lm) -> tuple[int, int] | None:
    """None while any weight is trainable (it is about to change); else a count that every in-place
    change of a weight (an optimizer step, a merge, `load_state_dict`) moves."""
    params = list(lm.model.parameters())
    if any(p.requires_grad for p in params):
        return None
    return len(params), sum(p._version for p in params)


class _RawZeroShot:
    scores_are_logprobs = True

    def __init__(self, lm, memo: bool = True, answer_rule: str = "full"):
        self.lm, self.memo, self.answer_rule = lm, memo, answer_rule

    @torch.no_grad()
    def score(self, task: Task, examples: Sequence[Example]) -> torch.Tensor:
        if task.kind != "classification":
            raise LwError(f"task {task.name!r} is generative: it has no answer set to score (use generate)")
        answers = answer_token_ids(self.lm, task, self.answer_rule)
        prompts = [task.prompt(e) for e in examples]
        if not prompts:
            return torch.zeros(0, len(answers))
        version = _weights_version(self.lm) if self.memo else None
        if version is None:
            return self.lm.score_answers(self.lm.embed_texts(prompts), answers).logprobs.float().cpu()
        entry = _PROMPT_SCORES.get(self.lm)
        if entry is None or entry[0] != version:
            entry = _PROMPT_SCORES[self.lm] = (version, {})
        memo, key = entry[1], tuple(map(tuple, answers))
        todo = [p for p in dict.fromkeys(prompts) if (p, key) not in memo]
        computed_now = set(todo)
        _MEMO_SECONDS[0] += sum(memo[(p, key)][1] for p in prompts if p not in computed_now)
        if todo:
            start = time.perf_counter()
            rows = self.lm.score_answers(self.lm.embed_texts(todo), answers).logprobs.float().cpu()
            each = (time.perf_counter() - start) / len(todo)
            memo.update({(p, key): (row, each) for p, row in zip(todo, rows, strict=True)})
        return torch.stack([memo[(p, key)][0] for p in prompts])


def calibration_offset(content_free_scores: torch.Tensor) -> torch.Tensor:
    """[A] mean log-probability of each answer over content-free inputs (each row renormalised over the
    answer set first, so the offset is a log-prior over answers)."""
    if content_free_scores.ndim != 2 or content_free_scores.shape[0] == 0:
        raise LwError(f"content-free scores must be [n >= 1, answers], got {tuple(content_free_scores.shape)}")
    return torch.log_softmax(content_free_scores.float(), dim=-1).mean(dim=0)


def calibrate_scores(scores: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
    """Calibrated scores, renormalised over the answers (still log-probabilities); invalid rows stay -inf."""
    invalid = torch.isneginf(scores).all(dim=-1, keepdim=True)
    shifted = torch.log_softmax(scores.float() - offset.to(scores.device), dim=-1)
    return torch.where(invalid, torch.full_like(shifted, float("-inf")), shifted)


class ContextualCalibration:
    """Wraps any scorer whose scores are log-probabilities: content-free inputs through the same task
    template give a per-answer prior that is subtracted from every example's scores."""

    scores_are_logprobs = True

    def __init__(self, scorer: Scorer, content_free: Sequence[str] = CONTENT_FREE):
        if not content_free:
            raise LwError("contextual calibration needs at least one content-free input")
        self.scorer = scorer
        self.content_free = tuple(content_free)
        self._offsets: dict[tuple[str, tuple[str, ...]], torch.Tensor] = {}

    def offset(self, task: Task) -> torch.Tensor:
        key = (task.name, tuple(task.verbalizers))
        if key not in self._offsets:
            examples = [task.content_free(token) for token in self.content_free]
            self._offsets[key] = calibration_offset(self.scorer.score(task, examples))
        return self._offsets[key]

    def score(self, task: Task, examples: Sequence[Example]) -> torch.Tensor:
        return calibrate_scores(self.scorer.score(task, examples), self.offset(task))


# ---- generated text ----------------------------------------------------------------------------
_NON_WORD = re.compile(r"[^\w\s]")
_SPACE = re.compile(r"\s+")


def _norm(text: str) -> str:
    return _SPACE.sub(" ", _NON_WORD.sub(" ", text.lower())).strip()


def parse_answer(text: str, task: Task) -> int | None:
    """The answer a generated text gives, or None (invalid).

    Only the first non-empty line counts, lower-cased with punctuation removed. It must equal an
    answer's name or verbalizer, or start with one followed by a word break (the longest such match
    wins). No search inside the text: "it is not positive" is invalid, not "positive".
    """
    if task.kind != "classification":
        raise LwError(f"task {task.name!r} is generative: parse_answer needs a classification task")
    line = next((ln for ln in text.splitlines() if ln.strip()), "")
    out = _norm(line)
    if not out:
        return None
    best: tuple[int, set[int]] = (0, set())
    for i, (name, verbalizer) in enumerate(zip(task.answers, task.verbalizers, strict=True)):
        for candidate in {_norm(name), _norm(verbalizer)}:
            if candidate and (out == candidate or out.startswith(candidate + " ")):
                if len(candidate) > best[0]:
                    best = (len(candidate), {i})
                elif len(candidate) == best[0]:
                    best[1].add(i)
    return next(iter(best[1])) if len(best[1]) == 1 else None


def one_hot_scores(choices: Sequence[int | None], n_answers: int) -> torch.Tensor:
    """Score rows for parsed answers: 0 for the chosen answer, -inf elsewhere; all -inf when invalid."""
    scores = torch.full((len(choices), n_answers), float("-inf"))
    for row, choice in enumerate(choices):
        if choice is not None:
            scores[row, choice] = 0.0
    return scores


def first_line(text: str) -> str:
    """A generated answer: the first non-empty line, stripped (the model may go on past it)."""
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


class GenerationScorer:
    """A frozen LM generates greedily after the prompt; the text is parsed to one answer or invalid.
    For generative tasks `generate` returns the answers (first line, stripped)."""

    scores_are_logprobs = False

    def __init__(self, lm, max_new_tokens: int = MAX_NEW_TOKENS):
        self.lm = lm
        self.max_new_tokens = max_new_tokens
        self.last_outputs: list[str] = []

    def generate(self, task: Task, examples: Sequence[Example]) -> list[str]:
        outputs = self.lm.generate([task.prompt(e) for e in examples], max_new_tokens=self.max_new_tokens)
        self.last_outputs = list(outputs)
        return [first_line(o) for o in outputs]

    def score(self, task: Task, examples: Sequence[Example]) -> torch.Tensor:
        self.generate(task, examples)
        return one_hot_scores([parse_answer(o, task) for o in self.last_outputs], len(task.answers))


def zero_shot_scorer(lm, task: Task, *, calibrate: bool, max_new_tokens: int = MAX_NEW_TOKENS) -> ZeroShotScorer | GenerationScorer:
    """The zero-shot method's scorer, the one every command scores zero-shot with (`lw-baseline
    zero-shot[-calibrated]`, lw-train's reference row, `lw-tasks eval-zero-shot`): the model reads the
    task's prompt with the text and scores the answer set (contextually calibrated or not), or, on a
    generative task, answers greedily."""
    if task.kind == "generative":
        return GenerationScorer(lm, max_new_tokens)
    return ZeroShotScorer(lm, calibrate=calibrate)
