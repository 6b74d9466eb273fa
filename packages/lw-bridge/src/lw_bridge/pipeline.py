"""Use a trained bridge from another project:

    from lw_bridge import BridgePipeline
    pipe = BridgePipeline.from_pretrained("runs/rt-sentiment/bridge/seed0-…")
    pipe.predict(["A gorgeous, witty, seductive movie.", "A tedious mess."])  # ['positive', 'negative']
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from lw_core import FrozenLM, LwError
from lw_core.wire import WireFormat
from lw_tasks import Example, Task, evaluate, flat_metrics, load_task, write_eval
from lw_tasks.splits import truncate_words

from lw_bridge.bridge import CONFIG_NAME, Bridge
from lw_bridge.inputs import EncoderInputs
from lw_bridge.scorer import BridgeScorer


def bridge_folder(path: str | Path) -> Path:
    """A bridge folder, or a run directory holding one in `bridge/`."""
    path = Path(path)
    for candidate in (path, path / "bridge"):
        if (candidate / CONFIG_NAME).is_file():
            return candidate
    raise LwError(f"no bridge checkpoint at {path} (expected {CONFIG_NAME} there or in {path / 'bridge'})")


class BridgePipeline:
    def __init__(self, bridge: Bridge, sender: FrozenLM | None, receivers: list[FrozenLM]):
        self.bridge, self.sender, self.receivers = bridge, sender, receivers
        self.inputs = self._fresh_inputs()

    def _fresh_inputs(self) -> EncoderInputs:
        return EncoderInputs(self.sender, self.bridge.config.layer, self.bridge.config.sender_template)

    @classmethod
    def from_pretrained(cls, path: str | Path, *, device: str = "auto", dtype: str | None = None) -> BridgePipeline:
        """Load a bridge and its models; `dtype` defaults to the one it was trained in."""
        from lw_core.models import resolve_device

        torch_device = resolve_device(device)
        bridge = Bridge.from_pretrained(bridge_folder(path), device=torch_device)
        config = bridge.config
        dtype = dtype or config.dtype
        sender = FrozenLM.load(config.sender, dtype=dtype, device=str(torch_device)) if config.sender else None
        receivers = [FrozenLM.load(name, dtype=dtype, device=str(torch_device)) for name in config.receivers]
        return cls(bridge, sender, receivers)

    def scorer(self, receiver: str | None = None, wire: str | None = None) -> BridgeScorer:
        index = 0 if receiver is None else self.bridge.receiver_index(receiver)
        return BridgeScorer(self.bridge, self.inputs, self.receivers[index], index, WireFormat(wire) if wire else None)

    def _examples(self, texts: Sequence[str]) -> list[Example]:
        if isinstance(texts, str):
            raise LwError("predict takes a list of texts, not one string")
        limit = self.bridge.config.max_input_words
        return [Example(id=f"input-{i}", text=truncate_words(t, limit) if limit else t) for i, t in enumerate(texts)]

    def _fresh_scorer(self, texts: Sequence[str], receiver: str | None) -> tuple[BridgeScorer, list[Example]]:
        scorer, examples = self.scorer(receiver), self._examples(texts)
        self.inputs = self._fresh_inputs()  # new texts: nothing to reuse
        scorer.inputs = self.inputs
        return scorer, examples

    @torch.no_grad()
    def scores(self, texts: Sequence[str], receiver: str | None = None, batch_size: int = 64) -> torch.Tensor:
        """Log-probabilities [N, answers] of each answer for each text."""
        if self.bridge.config.kind == "generative":
            raise LwError(f"task {self.bridge.config.task!r} is generative: it has no answer set to score; use predict")
        scorer, examples = self._fresh_scorer(texts, receiver)
        return torch.cat([scorer.score(None, examples[i : i + batch_size])  # type: ignore[arg-type]
                          for i in range(0, len(examples), batch_size)])

    def predict(self, texts: Sequence[str], receiver: str | None = None, batch_size: int = 64) -> list[str]:
        """The answer name for each text (generative tasks: the generated answer)."""
        if self.bridge.config.kind == "generative":
            scorer, examples = self._fresh_scorer(texts, receiver)
            return [out for i in range(0, len(examples), batch_size)
                    for out in scorer.generate(None, examples[i : i + batch_size])]  # type: ignore[arg-type]
        answers = self.bridge.config.answers
        return [answers[i] for i in self.scores(texts, receiver, batch_size).argmax(dim=-1).tolist()]


def evaluate_run(run_dir: Path, *, split: str = "test", wire: str | None = None, device: str = "auto",
                 batch_size: int = 64) -> dict[str, Any]:
    """Re-evaluate a saved run's bridge on a split through the shared evaluator; writes
    `metrics_{split}_reeval*.json` into the run directory and returns the flat metrics per receiver."""
    pipe = BridgePipeline.from_pretrained(run_dir, device=device)
    config = pipe.bridge.config
    task: Task = load_task(config.task_source or config.task, **config.task_options)
    out: dict[str, Any] = {}
    for name in pipe.bridge.config.receivers:
        result = evaluate(pipe.scorer(name, wire), task, split, batch_size=batch_size)
        tag = f"{split}_reeval" + (f"_{wire}" if wire else "") + ("" if name == pipe.bridge.config.receivers[0] else f"_{name}")
        if (Path(run_dir) / "run.json").is_file():
            write_eval(result, run_dir, tag)
        out[name] = flat_metrics(result.metrics)
    return out
