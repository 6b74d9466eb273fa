"""The bridge: one encoder (sender states → message Z) and one adapter per receiver (Z → soft tokens),
plus the exact receiver input layout (BOS policy and anchor text around the soft tokens)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from lw_core import Embedded, FrozenLM
from lw_core.errors import LwError
from lw_core.storage import save_tensors, write_bytes
from lw_tasks import Example
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from lw_bridge.adapters import Adapter
from lw_bridge.encoders import EncoderConfig, build_encoder
from lw_bridge.layouts import render

WEIGHTS_NAME = "bridge.safetensors"
CONFIG_NAME = "bridge_config.json"
BOS_POLICIES = ("auto", "always", "never")
FUSION_LAYOUTS = ("prefix", "suffix")


@dataclass
class BridgeConfig:
    """Everything needed to rebuild a bridge and feed its receivers exactly as in training."""

    sender: str | None
    layer: int | list[int]
    """The sender layer the encoder reads, or the layers it mixes (a list)."""
    receivers: list[str]
    d_sender: int
    d_receivers: list[int]
    target_rms: list[float]
    num_soft_tokens: int
    encoder: EncoderConfig
    task: str
    answers: list[str]
    verbalizers: list[str]
    anchor_before: str = ""
    anchor_after: str = ""
    bos: str = "auto"
    dtype: str = "fp32"
    """The dtype the models ran in during training (a pipeline uses the same to reproduce results)."""
    sender_template: str = "{text}"
    """What the sender reads: `{text}` alone, or the task's prompt around it."""
    max_input_words: int | None = None
    max_sender_tokens: int | None = None
    kind: str = "classification"
    """The task's kind: `classification` scores `answers`; `generative` generates up to `max_new_tokens`."""
    max_new_tokens: int = 16
    task_source: str | None = None
    """The task as given to lw-train (a name or a data file) and its load options, to reload it."""
    task_options: dict[str, Any] = dataclasses.field(default_factory=dict)
    calibrate_soft_tokens: bool = True
    """Scale each soft token to the RMS of the receiver's real token embeddings (off: an ablation)."""
    receiver_reads_text: bool = False
    """Fusion: the receiver reads the task prompt with the input text and the K soft tokens (placed by
    `fusion_layout`); otherwise the anchors around the soft tokens."""
    receiver_template: str = "{text}"
    """Fusion only: what of each input the receiver reads as text, a format string over the example's
    text and fields (`{text}`: all of it; QA layout (b): only the question's line, `lw_bridge.layouts`)."""
    fusion_layout: str = "prefix"
    """Fusion only: `prefix` puts the soft tokens before the prompt (prompt tuning's layout), `suffix`
    after the text, before the answer cue (the text then needs no gradient: `receiver_parts`)."""
    answer_rule: str = "first-token"
    """How answers were trained and so are scored (`lw_tasks.ANSWER_RULES`); checkpoints from before
    the field trained the first token too (when the answers' first tokens differ)."""
    message_head: bool = False
    """Training only: a linear classifier over the answers reads the message (an auxiliary loss that
    gives the encoder a direct gradient); predictions always come from the receivers."""
    fingerprints: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    """By model name: what the sender and receivers trained with were (lw_bridge.fingerprint); a pipeline
    given other models checks them against this."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BridgeConfig:
        data = dict(data)
        data["encoder"] = EncoderConfig(**data["encoder"])
        return cls(**data)


class Bridge(nn.Module):
    def __init__(self, config: BridgeConfig):
        super().__init__()
        if config.bos not in BOS_POLICIES:
            raise LwError(f"unknown BOS policy {config.bos!r}; known: {', '.join(BOS_POLICIES)}")
        if config.fusion_layout not in FUSION_LAYOUTS:
            raise LwError(f"unknown fusion layout {config.fusion_layout!r}; known: {', '.join(FUSION_LAYOUTS)}")
        self.config = config
        self.encoder = build_encoder(config.d_sender, config.encoder)
        self.adapters = nn.ModuleList(
            Adapter(config.encoder.d_z, config.encoder.num_latents, d, config.num_soft_tokens, rms,
                    calibrate=config.calibrate_soft_tokens)
            for d, rms in zip(config.d_receivers, config.target_rms, strict=True)
        )
        self.message_head = nn.Linear(config.encoder.message_numel, len(config.answers)) if config.message_head else None

    def receiver_index(self, name: str) -> int:
        if name not in self.config.receivers:
            raise LwError(f"bridge has no receiver {name!r}; known: {', '.join(self.config.receivers)}")
        return self.config.receivers.index(name)

    def message(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Z [B, M, d_z]: what goes on the wire."""
        return self.encoder(states, mask)

    def soft_tokens(self, message: torch.Tensor, receiver: int = 0) -> torch.Tensor:
        return self.adapters[receiver](message)

    def forward(self, states: torch.Tensor, mask: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor | None]:
        """Soft tokens [B, K, d_receiver] for every receiver, from one shared message, and the message
        head's answer logits [B, A] (None without a head)."""
        message = self.message(states, mask)
        head = None if self.message_head is None else self.message_head(message.flatten(1))
        return [adapter(message) for adapter in self.adapters], head

    def receiver_parts(self, receiver_lm: FrozenLM, soft: torch.Tensor, texts: Sequence[str] | None = None
                       ) -> tuple[Embedded | None, Embedded]:
        """The receiver's input in two parts: the context before the soft tokens (token ids only, so it
        needs no gradient; None when empty) and the soft tokens with everything after them. Layouts:
        [BOS] + anchor_before + K soft tokens + anchor_after; in fusion mode (`receiver_reads_text`, `texts`
        the inputs) with `fusion_layout` prefix [BOS] + K soft tokens + anchor_before + text + anchor_after,
        with suffix [BOS] + anchor_before + text + K soft tokens + anchor_after."""
        c = self.config
        bos = {"auto": receiver_lm.bos_ids, "always": [receiver_lm.tokenizer.bos_token_id], "never": []}[c.bos]
        if c.receiver_reads_text and (texts is None or len(texts) != soft.shape[0]):
            raise LwError("this bridge's receiver reads the input text too (fusion): pass one text per example")
        if not c.receiver_reads_text:
            before, after = [bos + receiver_lm.token_ids(c.anchor_before)] * len(soft), [c.anchor_after] * len(soft)
        elif c.fusion_layout == "prefix":
            before, after = [bos] * len(soft), [c.anchor_before + text + c.anchor_after for text in texts]
        else:
            before, after = [bos + receiver_lm.token_ids(c.anchor_before + text) for text in texts], [c.anchor_after] * len(soft)
        context = None if not any(before) else receiver_lm.compose([[torch.tensor(b, dtype=torch.long)] for b in before])
        rest = receiver_lm.compose([[row, torch.tensor(receiver_lm.token_ids(a), dtype=torch.long)]
                                    for row, a in zip(soft, after, strict=True)])
        return context, rest

    def receiver_texts(self, examples: Sequence[Example]) -> list[str] | None:
        """What the receiver reads as text of each example (fusion), None when it reads only soft tokens."""
        if not self.config.receiver_reads_text:
            return None
        return [render(self.config.receiver_template, e) for e in examples]

    def receiver_inputs(self, receiver_lm: FrozenLM, soft: torch.Tensor, texts: Sequence[str] | None = None) -> Embedded:
        """The receiver's whole input (`receiver_parts` joined), as its first layer sees it."""
        return receiver_lm.join(*self.receiver_parts(receiver_lm, soft, texts))

    def trainable_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    # ---- checkpoints -------------------------------------------------------------------------
    def save_pretrained(self, directory: str | Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        tmp = save_tensors(self.state_dict(), directory / f".{WEIGHTS_NAME}.tmp")
        tmp.replace(directory / WEIGHTS_NAME)
        tmp = write_bytes(directory / f".{CONFIG_NAME}.tmp", json.dumps(self.config.to_dict(), indent=2).encode())
        tmp.replace(directory / CONFIG_NAME)
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | Path, device: str | torch.device = "cpu") -> Bridge:
        directory = Path(directory)
        config_path, weights_path = directory / CONFIG_NAME, directory / WEIGHTS_NAME
        for path in (config_path, weights_path):
            if not path.is_file():
                raise LwError(f"not a bridge checkpoint: {path} is missing")
        try:
            config = BridgeConfig.from_dict(json.loads(config_path.read_text()))
        except (json.JSONDecodeError, TypeError, KeyError) as err:
            raise LwError(f"corrupt bridge config {config_path}: {err}") from None
        bridge = cls(config)
        try:
            state = load_file(weights_path, device=str(device))
        except (SafetensorError, OSError) as err:
            raise LwError(f"corrupt bridge checkpoint {weights_path}: {err}") from None
        missing, unexpected = bridge.load_state_dict(state, strict=False)
        # Checkpoints from before input standardisation: identity statistics are exactly how they ran.
        missing = [k for k in missing if not k.endswith(("inp.center", "inp.scale"))]
        if missing or unexpected:
            raise LwError(f"bridge checkpoint {weights_path} does not match its config (missing {missing[:3]}, "
                          f"unexpected {unexpected[:3]})")
        return bridge.to(device).eval()


def anchors_from_template(template: str) -> tuple[str, str]:
    """Split a task prompt around `{text}`: the bridge reads the same prompt with soft tokens in place
    of the text."""
    if template.count("{text}") != 1:
        return "", "\nAnswer:"
    before, after = template.split("{text}")
    return before, after


__all__ = ["BOS_POLICIES", "FUSION_LAYOUTS", "CONFIG_NAME", "WEIGHTS_NAME", "Bridge", "BridgeConfig", "anchors_from_template"]
