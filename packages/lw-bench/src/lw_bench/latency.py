"""Latency of one answer per input, three ways, in one run: the bridge (one sender forward to layer L,
the encoder, one receiver forward over K soft tokens), a text relay (the sender writes a message
token by token, the receiver reads it) and the receiver reading the text itself. Timing does not
depend on trained weights, so a fresh bridge of the configured shape is used unless one is given."""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch
from lw_bridge import Bridge, BridgeScorer
from lw_bridge.config import TrainConfig
from lw_bridge.inputs import EncoderInputs
from lw_bridge.trainer import Models, bridge_config
from lw_core import FrozenLM
from lw_core.wire import WireFormat
from lw_tasks import Example, Task, ZeroShotScorer

RELAY_INSTRUCTION = "Summarize this review in one short sentence:\n{text}\nSummary:"


def _per_example(fn, examples: Sequence[Example]) -> float:
    start = time.perf_counter()
    for example in examples:  # batch size 1: the latency a single request sees
        fn([example])
    return (time.perf_counter() - start) / len(examples)


def bench_latency(task: Task, sender: FrozenLM, receiver: FrozenLM, *, examples: int, layer: int,
                  num_soft_tokens: int, relay_tokens: int, bridge: Bridge | None = None) -> list[dict]:
    test = task.split("test")[:examples]
    if bridge is None:
        config = TrainConfig(task=task.name, layer=layer, num_soft_tokens=num_soft_tokens)
        bridge = Bridge(bridge_config(config, task, Models(sender, [receiver]))).eval()
    bridge_scorer = BridgeScorer(bridge, EncoderInputs(sender, bridge.config.layer, bridge.config.sender_template), receiver)
    zero_shot = ZeroShotScorer(receiver, memo=False)  # time every forward pass
    relay_texts: list[str] = []

    def relay(batch: Sequence[Example]) -> None:
        message = sender.generate([RELAY_INSTRUCTION.format(text=batch[0].text)], max_new_tokens=relay_tokens)[0]
        relay_texts.append(message)
        zero_shot.score(task, [Example(id=batch[0].id, text=message)])

    def bridge_call(batch: Sequence[Example]) -> None:
        bridge_scorer.inputs = EncoderInputs(sender, bridge.config.layer, bridge.config.sender_template)  # no cached states: time the sender too
        bridge_scorer.score(task, batch)

    with torch.no_grad():
        bridge_call(test[:1]), zero_shot.score(task, test[:1])  # warm-up
        seconds = {
            "bridge": _per_example(bridge_call, test),
            "text relay": _per_example(relay, test),
            "receiver reads text": _per_example(lambda b: zero_shot.score(task, b), test),
        }
    numel = bridge.config.encoder.message_numel
    text_bytes = sum(len(e.text.encode()) for e in test) / len(test)
    relay_bytes = sum(len(t.encode()) for t in relay_texts) / max(1, len(relay_texts))
    wire_format = "int4"  # the format behind lw-train's wire_bytes_int4
    wire = {"bridge": WireFormat(wire_format).message_bytes(numel), "text relay": relay_bytes, "receiver reads text": text_bytes}
    base = seconds["bridge"]
    return [{"method": name, "seconds_per_example": round(s, 4), "ratio_to_bridge": round(s / base, 2),
             "bytes_on_wire": round(wire[name], 1)} for name, s in seconds.items()]
