"""What a server computes, without HTTP: a bridge's sender side (texts → messages on the wire), its
receiver side (messages → answers) or both, loaded from a run directory for one role."""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from lw_bridge.bridge import CONFIG_NAME, WEIGHTS_NAME, Bridge
from lw_bridge.inputs import EncoderInputs, pad_states
from lw_bridge.pipeline import bridge_folder, check_model, load_model, receiver_sources
from lw_bridge.scorer import BridgeScorer
from lw_bridge.wire import WireFormat, from_bytes, quantize, to_bytes
from lw_core import FrozenLM, LwError
from lw_core.models import resolve_device, transformers_progress
from lw_tasks import Example
from lw_tasks.splits import truncate_words

from lw_serve.backends import ReceiverBackend, build_backend

ROLES = ("pipeline", "sender", "receiver")


def bridge_fingerprint(folder: Path) -> str:
    """Which bridge a message comes from: a digest of its checkpoint (config and weights)."""
    digest = hashlib.sha256()
    for name in (CONFIG_NAME, WEIGHTS_NAME):
        digest.update((folder / name).read_bytes())
    return digest.hexdigest()[:16]


def run_wire_format(run_dir: Path) -> str:
    """The run's wire format: the first of the `wire_formats` it was evaluated at, else fp16."""
    try:
        formats = json.loads((run_dir / "config.json").read_text()).get("wire_formats")
    except (OSError, json.JSONDecodeError, AttributeError):
        formats = None
    return formats[0] if isinstance(formats, list) and formats else "fp16"


@dataclass
class Answered:
    answer: str
    scores: list[float] | None
    """Log-probabilities over the answer set (None for a generative task)."""


class Engine:
    """One bridge's sender and/or receiver side. `encode` gives wire messages, `decode` reads them,
    `predict` is both in one process (the same numbers as encode → bytes → decode)."""

    def __init__(self, bridge: Bridge, fingerprint: str, wire: WireFormat, sender: FrozenLM | None,
                 receiver: FrozenLM | None, receiver_index: int = 0, backend: ReceiverBackend | None = None,
                 has_sender: bool = True):
        self.bridge, self.fingerprint, self.wire = bridge, fingerprint, wire
        self.sender, self.receiver, self.has_sender, self.has_receiver = sender, receiver, has_sender, receiver is not None
        self.scorer = BridgeScorer(bridge, self._inputs(), receiver, receiver_index)  # type: ignore[arg-type]
        self.backend = backend
        c = bridge.config
        self.message_shape = (c.encoder.num_latents, c.encoder.d_z)
        self.message_bytes = wire.message_bytes(math.prod(self.message_shape))

    @property
    def answer_names(self) -> list[str]:
        return list(self.bridge.config.answers)

    def _inputs(self) -> EncoderInputs:
        c = self.bridge.config
        return EncoderInputs(self.sender, c.layer, c.sender_template, c.max_sender_tokens, progress=False)

    def _examples(self, texts: Sequence[str]) -> list[Example]:
        limit = self.bridge.config.max_input_words
        return [Example(id=f"input-{i}", text=truncate_words(t, limit) if limit else t) for i, t in enumerate(texts)]

    @torch.no_grad()
    def messages(self, texts: Sequence[str], timings: dict[str, float]) -> torch.Tensor:
        """Quantised messages [B, M, d_z] of texts, as the receiver decodes them."""
        start = time.perf_counter()
        self.scorer.inputs = self._inputs()  # new texts: nothing cached to reuse
        examples = self._examples(texts)
        states, mask = pad_states(self.scorer.inputs.get(examples), next(self.bridge.parameters()).device)
        timings["sender"] = time.perf_counter() - start
        start = time.perf_counter()
        message = quantize(self.bridge.message(states, mask), self.wire)
        timings["encoder"] = time.perf_counter() - start
        return message

    def encode(self, texts: Sequence[str], timings: dict[str, float]) -> list[bytes]:
        messages = self.messages(texts, timings)
        start = time.perf_counter()
        out = to_bytes(messages, self.wire)
        timings["pack"] = time.perf_counter() - start
        return out

    def unpack(self, payloads: list[bytes]) -> torch.Tensor:
        """Messages from wire bytes; a one-line LwError for a wrong length or a non-finite value."""
        messages = from_bytes(payloads, self.wire, self.message_shape)
        bad = (~torch.isfinite(messages.view(len(payloads), -1))).any(dim=1).nonzero()
        if len(bad):
            raise LwError(f"message {int(bad[0])} holds a NaN or infinite value")
        return messages

    @torch.no_grad()
    def decode(self, messages: torch.Tensor, timings: dict[str, float], texts: Sequence[str] | None = None
               ) -> list[Answered]:
        """Answers of messages [B, M, d_z] (`texts` only for a fusion bridge, whose receiver reads them)."""
        start = time.perf_counter()
        if getattr(self.backend, "reads_prefilled_start", False) and self.bridge.config.kind != "generative":
            soft = self.bridge.soft_tokens(self._on_bridge(messages), self.scorer.receiver_index)
            shared_start, prefix = self.scorer.split_input(soft, texts)
            timings["adapter"] = time.perf_counter() - start
            return self._answer(prefix, timings, shared_start)
        prefix = self.decode_input(messages, texts)
        timings["adapter"] = time.perf_counter() - start
        return self._answer(prefix, timings)

    def decode_input(self, messages: torch.Tensor, texts: Sequence[str] | None = None):
        """The receiver's input embeddings for messages [B, M, d_z]: anchors and BOS around the soft tokens."""
        return self.scorer.receiver_input(self._on_bridge(messages), texts)

    def _on_bridge(self, messages: torch.Tensor) -> torch.Tensor:
        """Messages off the wire on the bridge's device, in its dtype."""
        parameter = next(self.bridge.parameters())
        return messages.to(parameter.device, parameter.dtype)

    def _answer(self, prefix, timings: dict[str, float], shared_start: object | None = None) -> list[Answered]:
        """Answers of the receiver's inputs; `shared_start` (a backend that `reads_prefilled_start`): the
        prefilled constant start `prefix` continues, and scores relative to one constant per row, which the
        softmax over the answers below removes."""
        assert self.backend is not None
        start = time.perf_counter()
        c = self.bridge.config
        if c.kind == "generative":
            outputs = self.backend.generate(prefix, c.max_new_tokens)
            timings["receiver"] = time.perf_counter() - start
            return [Answered(out, None) for out in outputs]
        raw = (self.backend.score(prefix, self.scorer.answer_ids()) if shared_start is None
               else self.backend.score(prefix, self.scorer.answer_ids(), start=shared_start, relative=True))
        timings["receiver"] = time.perf_counter() - start
        normalised = raw.log_softmax(dim=-1)
        return [Answered(c.answers[int(row.argmax())], [round(v, 6) for v in norm.tolist()])
                for row, norm in zip(raw, normalised, strict=True)]

    @torch.no_grad()
    def read(self, texts: Sequence[str], timings: dict[str, float]) -> list[Answered]:
        """The receiver reading the texts themselves in the bridge's prompt (anchors around the text, no
        message): the path a bridge replaces, served the same way."""
        c = self.bridge.config
        start = time.perf_counter()
        prompts = [c.anchor_before + e.text + c.anchor_after for e in self._examples(texts)]
        prefix = self.receiver.embed_texts(prompts)  # type: ignore[union-attr]
        timings["embed"] = time.perf_counter() - start
        return self._answer(prefix, timings)

    def predict(self, texts: Sequence[str], timings: dict[str, float]) -> list[Answered]:
        reads_text = self.bridge.config.receiver_reads_text
        return self.decode(self.messages(texts, timings), timings, texts if reads_text else None)


def load_engine(run_dir: str | Path, role: str = "pipeline", *, wire: str | None = None, receiver: str | None = None,
                backend: str = "hf", backend_options: dict | None = None, device: str = "auto",
                dtype: str | None = None) -> Engine:
    """The models a role needs, from a run directory (or a bridge folder), checked against what the
    bridge was trained with: the sender role loads no receiver, the receiver role no sender."""
    if role not in ROLES:
        raise LwError(f"unknown role {role!r}; known: {', '.join(ROLES)}")
    run_dir = Path(run_dir)
    folder = bridge_folder(run_dir)
    fmt = WireFormat(wire or run_wire_format(run_dir))  # a bad format fails before any model loads
    torch_device = resolve_device(device)
    bridge = Bridge.from_pretrained(folder, device=torch_device)
    c = bridge.config
    dtype = dtype or c.dtype
    if role == "receiver" and c.receiver_reads_text:
        raise LwError("this bridge's receiver reads the input text too (fusion): serve it whole, not split")
    if c.receiver_template != "{text}":
        raise LwError(f"this bridge's receiver reads some of the input's fields as text ({c.receiver_template!r}): "
                      "lw-serve takes plain texts and cannot split them; predict with lw_bridge.BridgePipeline")
    index = 0 if receiver is None else bridge.receiver_index(receiver)
    sender = receiver_lm = None
    with transformers_progress(False):
        if role != "receiver" and c.sender is not None:
            sender = load_model(c.sender, dtype, str(torch_device))
            check_model("sender", c.sender, sender, c.d_sender, c)
        if role != "sender":
            source = receiver_sources(c, None)[index]
            receiver_lm = load_model(source, dtype, str(torch_device))
            check_model("receiver", c.receivers[index], receiver_lm, c.d_receivers[index], c)
    serving = None if receiver_lm is None else build_backend(backend, receiver_lm, **(backend_options or {}))
    return Engine(bridge, bridge_fingerprint(folder), fmt, sender, receiver_lm, index, serving,
                  has_sender=role != "receiver")
