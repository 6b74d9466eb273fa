"""Every way of answering a task, as the same work: raw text in, an answer index out, timed per stage.

Each path is a callable `path(examples, clock) -> predictions` whose stages are charged to `clock`.
Trained weights do not change the cost, so each path runs with the trained weights when given and a
fresh module of the same shape otherwise (`trained` says which).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from lw_baselines.methods.few_shot import balanced_demos, demo_prefix
from lw_baselines.methods.probe import LinearProbe, pooled_features
from lw_baselines.methods.relay import RelayScorer, sender_prompt
from lw_baselines.scoring import SoftPromptScorer, answer_ids
from lw_bridge import Bridge, BridgeScorer
from lw_bridge.inputs import EncoderInputs, pad_states
from lw_core import Embedded, FrozenLM
from lw_tasks import Example, Task

from lw_bench.measure import StageClock

RECEIVER_STAGE = "receiver prefill + answer scoring"


def _argmax(scores: torch.Tensor) -> list[int]:
    return scores.float().argmax(dim=-1).tolist()


class ReadsText:
    """A model reads the task's prompt with the text and scores the answers: the receiver reading the
    text (`direct`), few-shot (a demonstration prefix) and LoRA (merged adapters) are this path."""

    def __init__(self, name: str, task: Task, lm: FrozenLM, prefix: str = "", trained: bool = False):
        self.name, self.task, self.lm, self.prefix, self.trained = name, task, lm, prefix, trained
        self.answers = answer_ids(lm, task)

    def prompts(self, examples: Sequence[Example]) -> list[str]:
        return [self.prefix + self.task.prompt(e) for e in examples]

    def __call__(self, examples: Sequence[Example], clock: StageClock) -> list[int]:
        with clock.stage("tokenise"):
            ids, mask = self.lm.tokenize(self.prompts(examples))
        with clock.stage(RECEIVER_STAGE):
            scores = self.lm.score_answers(Embedded(self.lm.embed(ids), mask), self.answers).logprobs
        return _argmax(scores)


class BridgePath:
    """Sender prefill to layer L → encoder → message → adapter → K soft tokens → receiver prefill over
    anchors and soft tokens (and the text, in fusion mode) → answer scores by the bridge's answer rule.
    No cached sender states: the sender runs every call. The receiver's constant start (BOS and the
    anchor before the soft tokens) is prefilled once, on the first call, and its KV cache reused by every
    later call and batch (not in fusion mode, whose start holds the text). Answers are scored for the
    decision (`score_answers(relative=True)`: the first position's full-vocabulary normaliser, the same
    for every answer, is not computed)."""

    name = "bridge"

    def __init__(self, task: Task, sender: FrozenLM, receiver: FrozenLM, bridge: Bridge, receiver_index: int = 0,
                 trained: bool = False):
        self.task, self.sender, self.receiver, self.bridge = task, sender, receiver, bridge.eval()
        self.receiver_index, self.trained = receiver_index, trained
        config = bridge.config
        self.inputs = EncoderInputs(sender, config.layer, config.sender_template, config.max_sender_tokens,
                                    batch_size=4096, progress=False)  # one sender pass per call
        self.scorer = BridgeScorer(bridge, self.inputs, receiver, receiver_index)

    def receiver_input(self, soft: torch.Tensor, examples: Sequence[Example]) -> tuple[Any, Embedded]:
        """The shared start's KV (None in fusion mode) and what the receiver reads after it."""
        return self.scorer.split_input(soft, self.bridge.receiver_texts(examples))

    @property
    def deepest_layer(self) -> int:
        return max(layer % (self.sender.num_layers + 1) for layer in self.inputs.layers)

    def __call__(self, examples: Sequence[Example], clock: StageClock) -> list[int]:
        device = next(self.bridge.parameters()).device
        with clock.stage("sender: tokenise + prefill to layer L"):
            states, mask = pad_states(self.inputs.compute(examples), device)
        with clock.stage("encoder"):
            message = self.bridge.message(states, mask)
        with clock.stage("adapter"):
            soft = self.bridge.soft_tokens(message, self.receiver_index)
        with clock.stage(RECEIVER_STAGE):
            context, prefix = self.receiver_input(soft, examples)
            scores = self.receiver.score_answers(prefix, self.scorer.answer_ids(), context=context, relative=True).logprobs
        return _argmax(scores)


class BridgeFloor:
    """The physical floor of the bridge path: the sender's prefill to its deepest layer read and the
    receiver's prefill over what it reads (K soft tokens and the anchor after them, read after the
    constant start's KV as the bridge path reads them; the whole input in fusion mode), as bare forward
    passes on inputs prepared outside the clock."""

    name = "bridge floor"
    trained = False

    def __init__(self, bridge_path: BridgePath):
        self.path = bridge_path

    def __call__(self, examples: Sequence[Example], clock: StageClock) -> list[int]:
        path, config = self.path, self.path.bridge.config
        texts = [path.inputs.sender_text(e) for e in examples]
        ids, mask = path.sender.tokenize(texts, config.max_sender_tokens)
        sender_inputs = Embedded(path.sender.embed(ids), mask)
        k, width = config.num_soft_tokens, path.receiver.hidden_size
        soft = torch.zeros(len(examples), k, width, device=path.receiver.device, dtype=path.receiver.dtype)
        context, prefix = path.receiver_input(soft, examples)
        with clock.stage("sender: tokenise + prefill to layer L"):
            path.sender.hidden_states(sender_inputs, path.deepest_layer)
        with clock.stage("receiver prefill"):
            if context is None:
                path.receiver.model.base_model(inputs_embeds=prefix.embeds, attention_mask=prefix.mask, use_cache=False)
            else:
                path.receiver.continue_context(context, prefix)
        return [0] * len(examples)


class TextRelay:
    """The tuned relay of lw-baselines: the sender writes up to `max_new_tokens` (stopping at its end
    of turn), the receiver reads the message in the task's prompt."""

    def __init__(self, task: Task, sender: FrozenLM, receiver: FrozenLM, max_new_tokens: int,
                 instruction: str = "task-summary", fmt: str = "chat"):
        self.name = f"text relay ({max_new_tokens} tokens)"
        self.trained = False
        self.task, self.reader = task, ReadsText("direct", task, receiver)
        self.relay = RelayScorer(sender, None, instruction, fmt, max_new_tokens, generate_batch_size=10**6)
        self.messages: list[str] = []

    def __call__(self, examples: Sequence[Example], clock: StageClock) -> list[int]:
        with clock.stage("sender generation"):
            messages = self.relay.messages(self.task, examples)
        self.messages += messages
        relayed = [dataclasses.replace(e, text=m) for e, m in zip(examples, messages, strict=True)]
        return self.reader(relayed, clock)


class AnswerRelay:
    """The sender answers the task itself; its answer word is what the receiver reads."""

    name = "sender's answer relayed"
    trained = False

    def __init__(self, task: Task, sender: FrozenLM, receiver: FrozenLM):
        self.task, self.sender_reads, self.reader = task, ReadsText("sender", task, sender), ReadsText("direct", task, receiver)

    def __call__(self, examples: Sequence[Example], clock: StageClock) -> list[int]:
        with clock.stage("sender answer scoring"):
            choice = self.sender_reads(examples, StageClock(self.sender.device))
        words = [self.task.verbalizers[c].strip() for c in choice]
        relayed = [dataclasses.replace(e, text=w) for e, w in zip(examples, words, strict=True)]
        return self.reader(relayed, clock)

    @property
    def sender(self) -> FrozenLM:
        return self.sender_reads.lm


class PromptTuned:
    """The receiver reads K trained soft tokens and the prompt with the text."""

    name = "prompt tuning"

    def __init__(self, task: Task, receiver: FrozenLM, soft: torch.Tensor, trained: bool = False):
        self.task, self.scorer, self.trained = task, SoftPromptScorer(receiver, soft), trained
        self.answers = answer_ids(receiver, task)

    def __call__(self, examples: Sequence[Example], clock: StageClock) -> list[int]:
        with clock.stage("tokenise"):
            prefix = self.scorer.prefix(self.task, examples)
        with clock.stage(RECEIVER_STAGE):
            scores = self.scorer.lm.score_answers(prefix, self.answers).logprobs
        return _argmax(scores)


class Probe:
    """The sender's hidden states at one layer, mean-pooled, through a linear classifier."""

    name = "probe"

    def __init__(self, task: Task, sender: FrozenLM, layer: int, probe: LinearProbe, trained: bool = False):
        self.task, self.sender, self.layer, self.probe, self.trained = task, sender, layer, probe, trained

    def __call__(self, examples: Sequence[Example], clock: StageClock) -> list[int]:
        with clock.stage("sender prefill to layer L + pooling"):
            texts = [self.task.prompt(e) for e in examples]
            features = pooled_features(self.sender, texts, [self.layer], ["mean"], batch_size=len(texts))
        with clock.stage("linear classifier"):
            scores = self.probe.logprobs(features[(self.layer, "mean")])
        return _argmax(scores)


def fresh_probe(hidden: int, answers: int, seed: int = 0) -> LinearProbe:
    g = torch.Generator().manual_seed(seed)
    return LinearProbe(torch.zeros(hidden), torch.ones(hidden), torch.randn(hidden, answers, generator=g) * 0.01,
                       torch.zeros(answers))


def few_shot_prefix(task: Task, k: int = 4, seed: int = 0, max_words: int | None = None) -> str:
    demos = balanced_demos(task.split("train"), k, len(task.answers), np.random.default_rng([seed, 0]))
    return demo_prefix(task, demos, max_words)


def lora_receiver(receiver: FrozenLM, rank: int = 8, alpha: float = 16.0,
                  target_modules: Sequence[str] = ("q_proj", "k_proj", "v_proj", "o_proj")) -> FrozenLM:
    """A copy of the receiver with fresh LoRA adapters merged in, as lw-baselines scores a trained LoRA
    (merged: the same cost as the receiver itself)."""
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(copy.deepcopy(receiver.model),
                           LoraConfig(r=rank, lora_alpha=alpha, target_modules=list(target_modules), bias="none"))
    return FrozenLM(model.merge_and_unload(), receiver.tokenizer, name=f"{receiver.name}+lora")


def relay_prompt_tokens(path: TextRelay, examples: Sequence[Example]) -> float:
    """Mean sender prompt length of the relay, in sender tokens (what generation starts from)."""
    sender = path.relay.sender
    prompts = [sender_prompt(sender, path.task, e.text, path.relay.instruction, path.relay.fmt) for e in examples]
    return sum(len(sender.token_ids(p)) for p in prompts) / max(1, len(prompts))
