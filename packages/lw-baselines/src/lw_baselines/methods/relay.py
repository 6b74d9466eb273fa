"""Text relay: the sender writes a message, the receiver reads it instead of the input and answers.

- `text-relay`: the sender writes a short message about the input from an instruction; the instruction
  (and its chat formatting) is chosen on a validation subset among a few candidates, as is the
  receiver's calibration.
- `text-relay-answer`: the sender answers the task itself (constrained zero-shot scoring over the
  answer set, calibrated or not as chosen on validation) and passes its answer word along. On a
  generative (QA) task the sender generates its answer greedily from the prompt with the whole input,
  the receiver reads that answer as the input of the task's prompt and generates the final answer (both
  as the bridge generates); the sender's own answer's EM / F1 are reported beside the receiver's.

Message length (sender tokens, UTF-8 bytes) and each stage's time per example are reported.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from lw_core.lm import FrozenLM
from lw_tasks import (
    ContextualCalibration,
    EvalResult,
    Example,
    GenerationScorer,
    Task,
    ZeroShotScorer,
    calibrate_scores,
    evaluate,
    result_from_scores,
)
from lw_tasks.evaluate import generative_result
from lw_tasks.generative import GenerationFields

from lw_baselines.common import BaselineConfig, Context, Method, Outcome, _help, register
from lw_baselines.scoring import (
    better,
    choose_calibration,
    generate_batch,
    require_text_template,
    with_text,
)

INSTRUCTIONS = {
    "summary": "Summarize the following text in one sentence.\n\nText: {text}",
    "task-summary": (
        "Write one short sentence that keeps everything needed to tell which of these it is: {answers}.\n\n"
        "Text: {text}"
    ),
    "keywords": "List the key words of the following text that decide which of these it is: {answers}.\n\nText: {text}",
}
FORMATS = ("plain", "chat")


@dataclass
class RelayConfig(BaselineConfig):
    instructions: list[str] = field(
        default_factory=lambda: ["summary", "task-summary"],
        metadata=_help(f"candidate instructions for the sender (chosen on validation): {', '.join(INSTRUCTIONS)}"),
    )
    formats: list[str] = field(
        default_factory=lambda: list(FORMATS),
        metadata=_help("candidate prompt formats: plain text, or the sender's chat markup (ChatML) if it has one"),
    )
    max_new_tokens: int = field(default=32, metadata=_help("longest message the sender may write (tokens)"))
    selection_examples: int = field(
        default=100, metadata=_help("validation examples used to choose the instruction (generation is slow)")
    )
    generate_batch_size: int = field(default=16, metadata=_help("texts per generation batch"))

    def __post_init__(self) -> None:
        super().__post_init__()
        unknown = [i for i in self.instructions if i not in INSTRUCTIONS]
        if unknown or not self.instructions:
            raise ValueError(f"unknown instruction(s) {unknown}; known: {', '.join(INSTRUCTIONS)}")
        bad = [f for f in self.formats if f not in FORMATS]
        if bad or not self.formats:
            raise ValueError(f"unknown format(s) {bad}; known: {', '.join(FORMATS)}")
        if self.max_new_tokens < 1 or self.selection_examples < 1 or self.generate_batch_size < 1:
            raise ValueError("max_new_tokens, selection_examples and generate_batch_size must be >= 1")


@dataclass
class RelayAnswerConfig(BaselineConfig, GenerationFields):
    def __post_init__(self) -> None:
        super().__post_init__()
        self.check_generation()


def has_chat_markup(lm: FrozenLM) -> bool:
    vocab = lm.tokenizer.get_vocab()
    return "<|im_start|>" in vocab and "<|im_end|>" in vocab


def sender_prompt(lm: FrozenLM, task: Task, text: str, instruction: str, fmt: str) -> str:
    body = INSTRUCTIONS[instruction].format(text=text, answers=", ".join(v.strip() for v in task.verbalizers))
    if fmt == "chat":
        return f"<|im_start|>user\n{body}<|im_end|>\n<|im_start|>assistant\n"
    return body + "\n\nAnswer:"


def clean_message(text: str) -> str:
    """The message is the first non-empty paragraph of what the sender wrote."""
    for part in text.strip().split("\n\n"):
        if part.strip():
            return " ".join(part.split())
    return ""


class StageTimes:
    def __init__(self) -> None:
        self.sender = self.receiver = 0.0
        self.examples = 0
        self.messages: list[str] = []

    def relay(self, receive: Callable[[Task, list[Example]], Any], task: Task, examples: Sequence[Example],
              messages: list[str], sender_started: float) -> Any:
        """The receiver reads each example with its message as the text (`receive`: a scorer's `score`, or
        `generate` on a QA task); the sender's stage ran from `sender_started` until now. Both stages' times,
        the examples and the messages are counted."""
        middle = time.perf_counter()
        scores = receive(task, [with_text(e, m) for e, m in zip(examples, messages, strict=True)])
        self.sender += middle - sender_started
        self.receiver += time.perf_counter() - middle
        self.examples += len(examples)
        self.messages += messages
        return scores


class RelayScorer:
    """The sender writes a message per example; the receiver reads it in the task's prompt and scores."""

    scores_are_logprobs = True

    def __init__(self, sender: FrozenLM, receiver_scorer: Any, instruction: str, fmt: str, max_new_tokens: int,
                 generate_batch_size: int):
        self.sender, self.receiver_scorer = sender, receiver_scorer
        self.instruction, self.fmt, self.max_new_tokens = instruction, fmt, max_new_tokens
        self.generate_batch_size = generate_batch_size
        self.times = StageTimes()
        self.last_outputs: list[str] = []
        self.stop_ids = [i for i in [sender.tokenizer.convert_tokens_to_ids("<|im_end|>")]
                         if isinstance(i, int) and i != sender.tokenizer.unk_token_id]

    def messages(self, task: Task, examples: Sequence[Example]) -> list[str]:
        prompts = [sender_prompt(self.sender, task, e.text, self.instruction, self.fmt) for e in examples]
        out: list[str] = []
        for i in range(0, len(prompts), self.generate_batch_size):
            chunk = prompts[i : i + self.generate_batch_size]
            out += [clean_message(t) for t in generate_batch(self.sender, chunk, self.max_new_tokens, self.stop_ids)]
        return out

    def score(self, task: Task, examples: Sequence[Example]) -> torch.Tensor:
        start = time.perf_counter()
        messages = self.messages(task, examples)
        scores = self.times.relay(self.receiver_scorer.score, task, examples, messages, start)
        self.last_outputs = messages
        return scores


def message_stats(sender: FrozenLM, receiver: FrozenLM, messages: list[str], times: StageTimes,
                  inputs: list[str]) -> dict[str, Any]:
    n = max(1, len(messages))
    tokens = [len(sender.token_ids(m)) for m in messages]
    return {
        "message_tokens": sum(tokens) / n,
        "message_receiver_tokens": sum(len(receiver.token_ids(m)) for m in messages) / n,
        "message_bytes": sum(len(m.encode()) for m in messages) / n,
        "input_bytes": sum(len(t.encode()) for t in inputs) / max(1, len(inputs)),
        "empty_message_rate": sum(1 for m in messages if not m) / n,
        "sender_seconds_per_example": times.sender / max(1, times.examples),
        "receiver_seconds_per_example": times.receiver / max(1, times.examples),
    }


def _subset(task: Task, n: int) -> Task:
    """The first n of the (stratified, fixed) validation subset, keeping class balance by interleaving."""
    examples = task.split("validation")
    if n >= len(examples):
        return task
    by_class: dict[int, list[Example]] = {}
    for e in examples:
        by_class.setdefault(int(e.label), []).append(e)  # type: ignore[arg-type]
    picked: list[Example] = []
    while len(picked) < n:
        for c in sorted(by_class):
            if by_class[c] and len(picked) < n:
                picked.append(by_class[c].pop(0))
    return dataclasses.replace(task, splits={**task.splits, "validation": picked})


def run_text_relay(ctx: Context) -> Outcome:
    cfg: RelayConfig = ctx.config
    task, sender, receiver = ctx.task, ctx.sender, ctx.receiver
    require_text_template(task, "text-relay")
    formats = [f for f in cfg.formats if f != "chat" or has_chat_markup(sender)] or ["plain"]
    small = _subset(task, cfg.selection_examples)
    best: tuple[str, str, bool, EvalResult] | None = None
    tried = []
    for instruction in cfg.instructions:
        for fmt in formats:
            relay = RelayScorer(sender, ZeroShotScorer(receiver), instruction, fmt, cfg.max_new_tokens,
                                cfg.generate_batch_size)
            messages = relay.messages(small, small.split("validation"))
            cache = dict(zip((e.id for e in small.split("validation")), messages, strict=True))
            replay = _ReplayScorer(ZeroShotScorer(receiver), cache)
            _, val, calibrated = choose_calibration(replay, small, batch_size=cfg.eval_batch_size, progress=False)
            tried.append({"instruction": instruction, "format": fmt, "calibrated": calibrated,
                          "val_accuracy": val.metrics["accuracy"], "example_message": messages[0]})
            if best is None or better(val, best[3]):
                best = (instruction, fmt, calibrated, val)
    assert best is not None
    instruction, fmt, calibrated, _ = best
    receiver_scorer = ZeroShotScorer(receiver, calibrate=calibrated)
    scorer = RelayScorer(sender, receiver_scorer, instruction, fmt, cfg.max_new_tokens, cfg.generate_batch_size)
    def after_test(_result: EvalResult) -> dict[str, Any]:
        inputs = [e.text for e in task.split("test")]
        return message_stats(sender, receiver, scorer.times.messages, scorer.times, inputs)

    # Validation is the selection subset's (a second generation pass over all validation would double
    # the method's cost for a number nothing is chosen on).
    return Outcome(scorer=scorer, validation=best[3], after_test=after_test,
                   selected={"instruction": instruction, "format": fmt, "calibrated": calibrated,
                             "selection_examples": len(small.split("validation")), "tried": tried})


class _ReplayScorer:
    """Scores messages generated earlier (selection only: each candidate instruction generates once).
    Examples without a message (the content-free inputs of calibration) are read as they are."""

    scores_are_logprobs = True

    def __init__(self, receiver_scorer: Any, messages: dict[str, str]):
        self.receiver_scorer, self.messages = receiver_scorer, messages

    def score(self, task: Task, examples: Sequence[Example]) -> torch.Tensor:
        return self.receiver_scorer.score(task, [with_text(e, self.messages.get(e.id, e.text)) for e in examples])


class AnswerRelayScorer:
    """The sender answers (constrained scoring); its answer word is the message the receiver reads."""

    scores_are_logprobs = True

    def __init__(self, sender_scorer: Any, receiver_scorer: Any):
        self.sender_scorer, self.receiver_scorer = sender_scorer, receiver_scorer
        self.times = StageTimes()
        self.last_outputs: list[str] = []

    def score(self, task: Task, examples: Sequence[Example]) -> torch.Tensor:
        start = time.perf_counter()
        choice = self.sender_scorer.score(task, examples).argmax(dim=-1).tolist()
        messages = [task.verbalizers[c].strip() for c in choice]
        scores = self.times.relay(self.receiver_scorer.score, task, examples, messages, start)
        self.last_outputs = messages
        return scores


class GeneratedAnswerRelay:
    """Generative tasks: the sender answers greedily from the task's prompt with the whole input; its
    answer is the text the receiver reads in the same prompt; the receiver generates the final answer."""

    def __init__(self, sender: FrozenLM, receiver: FrozenLM, max_new_tokens: int):
        self.sender, self.receiver = GenerationScorer(sender, max_new_tokens), GenerationScorer(receiver, max_new_tokens)
        self.times = StageTimes()
        self.sender_answers: dict[str, str] = {}

    def generate(self, task: Task, examples: Sequence[Example]) -> list[str]:
        start = time.perf_counter()
        messages = self.sender.generate(task, examples)
        self.sender_answers.update(zip((e.id for e in examples), messages, strict=True))
        return self.times.relay(self.receiver.generate, task, examples, messages, start)


def run_generated_answer_relay(ctx: Context) -> Outcome:
    cfg: RelayAnswerConfig = ctx.config
    task, sender, receiver = ctx.task, ctx.sender, ctx.receiver
    scorer = GeneratedAnswerRelay(sender, receiver, cfg.max_new_tokens)
    val = evaluate(scorer, task, "validation", batch_size=cfg.eval_batch_size, progress=ctx.progress)
    scorer.times = StageTimes()  # the stage times and messages reported are test's

    def after_test(_result: EvalResult) -> dict[str, Any]:
        test = task.split("test")
        own = generative_result(task, "test", test, [scorer.sender_answers[e.id] for e in test]).metrics
        stats = message_stats(sender, receiver, scorer.times.messages, scorer.times, [e.text for e in test])
        return stats | {"sender_em": own["em"], "sender_f1": own["f1"]}

    return Outcome(scorer=scorer, validation=val, after_test=after_test, extra={"max_new_tokens": cfg.max_new_tokens},
                   selected={"max_new_tokens": cfg.max_new_tokens})


def run_text_relay_answer(ctx: Context) -> Outcome:
    cfg: RelayAnswerConfig = ctx.config
    task, sender, receiver = ctx.task, ctx.sender, ctx.receiver
    require_text_template(task, "text-relay-answer")
    if task.kind == "generative":
        return run_generated_answer_relay(ctx)
    examples = task.split("validation")
    # Selection (sender raw/calibrated × receiver raw/calibrated) from one sender pass over validation
    # and one receiver pass over the (few) possible messages: the receiver's input is the message alone.
    sender_raw = evaluate(ZeroShotScorer(sender), task, "validation", batch_size=cfg.eval_batch_size,
                          progress=ctx.progress).scores
    sender_offset = ContextualCalibration(ZeroShotScorer(sender)).offset(task)
    words = [v.strip() for v in task.verbalizers]
    carriers = [with_text(examples[0], w) for w in words]
    receiver_raw = ZeroShotScorer(receiver).score(task, carriers)
    receiver_offset = ContextualCalibration(ZeroShotScorer(receiver)).offset(task)
    best: tuple[bool, bool, EvalResult] | None = None
    tried = []
    for sender_cal in (False, True):
        sent = (calibrate_scores(sender_raw, sender_offset) if sender_cal else sender_raw).argmax(dim=-1)
        for receiver_cal in (False, True):
            table = calibrate_scores(receiver_raw, receiver_offset) if receiver_cal else receiver_raw
            val = result_from_scores(task, "validation", examples, table[sent])
            tried.append({"sender_calibrated": sender_cal, "receiver_calibrated": receiver_cal,
                          "val_accuracy": val.metrics["accuracy"]})
            if best is None or better(val, best[2]):
                best = (sender_cal, receiver_cal, val)
    assert best is not None
    sender_cal, receiver_cal, val = best
    scorer = AnswerRelayScorer(ZeroShotScorer(sender, calibrate=sender_cal),
                               ZeroShotScorer(receiver, calibrate=receiver_cal))
    def after_test(_result: EvalResult) -> dict[str, Any]:
        inputs = [e.text for e in task.split("test")]
        return message_stats(sender, receiver, scorer.times.messages, scorer.times, inputs)

    return Outcome(scorer=scorer, validation=val, after_test=after_test,
                   selected={"sender_calibrated": sender_cal, "receiver_calibrated": receiver_cal, "tried": tried})


register(Method(
    "text-relay", RelayConfig, run_text_relay,
    "the sender writes a short message (instruction chosen on validation); the receiver reads it and answers",
    "the receiver sees only the sender's message (the sender sees the full input)", default_model=None,
    deterministic=True,
))  # fmt: skip
register(Method(
    "text-relay-answer", RelayAnswerConfig, run_text_relay_answer,
    "the sender answers (constrained scoring); the receiver reads the answer word and answers",
    "the receiver sees only the sender's answer word (the sender sees the full input)", default_model=None,
    deterministic=True, generative=True,
))  # fmt: skip
