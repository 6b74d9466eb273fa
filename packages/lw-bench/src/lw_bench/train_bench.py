"""Training throughput on the same examples: the bridge reading cached sender states, the bridge
running the sender every step (no cache), LoRA and prompt tuning on the receiver; and the bridge's step
against the size of the answer set. One optimizer step each time (forward, loss, backward, AdamW),
examples per second after one untimed step."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from lw_baselines.methods.finetune import LoraMethodConfig, LoraTrainable
from lw_baselines.methods.prompt_tuning import PromptTuningMethodConfig, SoftPromptTrainable
from lw_bridge import Bridge
from lw_bridge.config import TrainConfig
from lw_bridge.inputs import EncoderInputs, pad_states
from lw_bridge.objective import bridge_loss
from lw_core import FrozenLM
from lw_core.answer_trie import AnswerTrie
from lw_tasks import Example, Task, apply_answer_rule, load_task, resolve_answer_rule

from lw_bench.measure import PeakMemory

POOL_TASKS = ("r52", "20ng", "r8", "rt-sentiment")
"""Where answer sets larger than the task's own come from: these embedded tasks' answer strings, in order."""


def _steps_per_second(step: Callable[[Sequence[Example]], torch.Tensor], parameters, batches: list[list[Example]],
                      device: torch.device) -> float:
    optimizer = torch.optim.AdamW(parameters, lr=1e-4)

    def one(batch):
        optimizer.zero_grad(set_to_none=True)
        step(batch).backward()
        optimizer.step()

    one(batches[0])  # untimed: allocations and lazy initialisation
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for batch in batches:
        one(batch)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return sum(len(b) for b in batches) / (time.perf_counter() - start)


def _bridge_step(bridge: Bridge, receiver: FrozenLM, inputs: EncoderInputs, answer_ids: list[list[int]],
                 config: TrainConfig, device: torch.device) -> Callable[[Sequence[Example]], torch.Tensor]:
    """lw-train's loss on a batch (labels taken modulo the number of answers, so any answer set fits)."""
    def step(batch):
        states, mask = pad_states(inputs.get(batch), device)
        soft, head = bridge(states, mask)
        labels = torch.tensor([e.label % len(answer_ids) for e in batch], device=device)
        return bridge_loss(soft, bridge, [receiver], [answer_ids], labels, config, None, head_logits=head,
                           texts=[e.text for e in batch])[0]
    return step


def answer_pool(task: Task, size: int) -> list[str]:
    """`size` distinct answer strings: the task's verbalizers, then those of `POOL_TASKS` (real label
    names: a user's many-label set looks like them)."""
    pool = list(dict.fromkeys(task.verbalizers))
    for name in POOL_TASKS:
        if len(pool) >= size:
            break
        pool = list(dict.fromkeys([*pool, *load_task(name).verbalizers]))
    if len(pool) < size:
        raise ValueError(f"only {len(pool)} distinct answer strings available, asked for {size}")
    return pool[:size]


VARIANTS = (("first-token", "vocab"), ("distinct-prefix", "vocab"), ("full", "vocab"), ("full", "answers"))
"""(answer rule, answer normaliser) pairs `bench_answers` times: lw-train's default, each answer up to
where it parts from the others, every answer token exactly, every token normalised over the answer trie
(`--answer-normaliser answers`)."""


def bench_answers(task: Task, sender: FrozenLM, receiver: FrozenLM, bridge: Bridge, sizes: Sequence[int], *,
                  batch_size: int = 32, steps: int = 4, variants: Sequence[tuple[str, str]] = VARIANTS,
                  device: torch.device | str = "cpu") -> list[dict[str, Any]]:
    """The bridge's optimizer step (cached sender states, as lw-train) with answer sets of each size:
    seconds per step and peak memory, for each (answer rule, normaliser) variant (`first-token` falls
    back to `full` where two answers share their first token, as in training). The same examples, with
    labels mod size, in every row."""
    examples = task.split("train")[: batch_size * steps]
    batches = [examples[i : i + batch_size] for i in range(0, len(examples) - batch_size + 1, batch_size)]
    if not batches:
        raise ValueError(f"train split has {len(examples)} examples, fewer than one batch of {batch_size}")
    inputs = EncoderInputs(sender, bridge.config.layer, bridge.config.sender_template, progress=False)
    inputs.get(examples)
    device = torch.device(device)
    bridge.train()
    rows = []
    for size in sizes:
        verbalizers = answer_pool(task, size)
        ids = [receiver.token_ids(v) for v in verbalizers]
        for rule, normaliser in variants:
            config = TrainConfig(task=task.name, num_soft_tokens=bridge.config.num_soft_tokens, answer_rule=rule,
                                 answer_normaliser=normaliser)

            step = _bridge_step(bridge, receiver, inputs, ids, config, device)
            with PeakMemory(device) as memory:
                rate = _steps_per_second(step, bridge.parameters(), batches, device)
            scored = resolve_answer_rule(rule, ids)
            rows.append({"answers": size, "rule": rule if normaliser == "vocab" else f"{rule}, {normaliser}-normalised",
                         "scored as": scored, "answer tokens": sum(len(a) for a in ids),
                         "trie nodes": AnswerTrie.build(apply_answer_rule(ids, rule)).num_nodes,
                         "s/step": round(batch_size / rate, 3), "peak MiB": round(memory.peak / 2**20, 1)})
    bridge.eval()
    for row in rows:
        base = next(r for r in rows if r["rule"] == row["rule"])
        row["relative to first"] = round(row["s/step"] / base["s/step"], 2)
    return rows


def bench_train(task: Task, sender: FrozenLM, receiver: FrozenLM, bridge: Bridge, *, batch_size: int = 8,
                steps: int = 4, methods: Sequence[str] = ("bridge (cached states)", "bridge (no cache)", "lora",
                                                           "prompt tuning")) -> list[dict[str, Any]]:
    examples = task.split("train")[: batch_size * steps]
    if len(examples) < batch_size:
        raise ValueError(f"train split has {len(examples)} examples, fewer than one batch of {batch_size}")
    batches = [examples[i : i + batch_size] for i in range(0, len(examples) - batch_size + 1, batch_size)]
    device = receiver.device
    config = TrainConfig(task=task.name, num_soft_tokens=bridge.config.num_soft_tokens,
                         answer_rule=bridge.config.answer_rule)
    answers = [receiver.token_ids(v) for v in bridge.config.verbalizers]
    bridge.train()

    rows = []
    for method in methods:
        if method == "bridge (cached states)":
            cached = EncoderInputs(sender, bridge.config.layer, bridge.config.sender_template, progress=False)
            cached.get(examples)  # computed before the clock, as lw-train's cache does once per split
            step = _bridge_step(bridge, receiver, cached, answers, config, device)
            rate = _steps_per_second(step, bridge.parameters(), batches, device)
        elif method == "bridge (no cache)":
            class Uncached(EncoderInputs):
                def get(self, batch):
                    return self.compute(batch)

            uncached = Uncached(sender, bridge.config.layer, bridge.config.sender_template, progress=False)
            step = _bridge_step(bridge, receiver, uncached, answers, config, device)
            rate = _steps_per_second(step, bridge.parameters(), batches, device)
        elif method == "lora":
            trainable = LoraTrainable(receiver, LoraMethodConfig(task=task.name), dora=False)
            rate = _steps_per_second(lambda b, t=trainable: t.loss(task, b), trainable.parameters(), batches, device)
        elif method == "prompt tuning":
            soft = SoftPromptTrainable(receiver, PromptTuningMethodConfig(task=task.name))
            rate = _steps_per_second(lambda b, t=soft: t.loss(task, b), soft.parameters(), batches, device)
        else:
            raise ValueError(f"unknown training method {method!r}")
        rows.append({"method": method, "batch": batch_size, "steps": len(batches), "train examples/s": round(rate, 2)})
    bridge.eval()
    base = rows[0]["train examples/s"]
    for row in rows:
        row["relative to first"] = round(row["train examples/s"] / base, 2)
    return rows
