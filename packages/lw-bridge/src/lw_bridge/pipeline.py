"""Use a trained bridge from another project:

    from lw_bridge import BridgePipeline
    pipe = BridgePipeline.from_pretrained("my-bridge", sender="models/smollm2-135m", receivers=["models/gemma3-270m"])
    pipe.predict(["A gorgeous, witty, seductive movie.", "A tedious mess."])  # ['positive', 'negative']
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from lw_core import FrozenLM, LwError
from lw_tasks import Example, Task, evaluate, flat_metrics, load_task, write_eval
from lw_tasks.splits import truncate_words

from lw_bridge.bridge import CONFIG_NAME, Bridge, BridgeConfig
from lw_bridge.fingerprint import fingerprint_mismatch
from lw_bridge.inputs import EncoderInputs
from lw_bridge.scorer import BridgeScorer
from lw_bridge.wire import WireFormat

ModelSource = str | os.PathLike | FrozenLM
"""A model folder, a hub id (`org/name`), an embedded preset name, or a model already loaded."""
Receivers = ModelSource | Sequence[ModelSource] | Mapping[str, ModelSource]


def bridge_folder(path: str | Path) -> Path:
    """A bridge folder, or a run directory holding one in `bridge/`."""
    path = Path(path)
    for candidate in (path, path / "bridge"):
        if (candidate / CONFIG_NAME).is_file():
            return candidate
    raise LwError(f"no bridge checkpoint at {path} (expected {CONFIG_NAME} there or in {path / 'bridge'})")


def receiver_sources(config: BridgeConfig, receivers: Receivers | None) -> list[ModelSource]:
    """Where to load each of the bridge's receivers from, in its receiver order: the names it was trained
    with unless given, as one source (a one-receiver bridge), a list in order, or {trained name: source}."""
    trained = config.receivers
    if receivers is None:
        return list(trained)
    if isinstance(receivers, (str, os.PathLike, FrozenLM)):
        receivers = [receivers]
    if isinstance(receivers, Mapping):
        unknown = sorted(set(receivers) - set(trained))
        if unknown:
            raise LwError(f"bridge has no receiver {unknown[0]!r}; its receivers: {', '.join(trained)}")
        return [receivers.get(name, name) for name in trained]
    receivers = list(receivers)
    if len(receivers) != len(trained):
        raise LwError(f"bridge has {len(trained)} receiver(s) ({', '.join(trained)}), {len(receivers)} given; "
                      f"pass one per receiver in that order, or a dict {{trained name: source}}")
    return receivers


def check_model(role: str, trained: str, lm: FrozenLM, hidden_size: int, config: BridgeConfig) -> None:
    """Fail in one line if `lm` is not the model the bridge was trained with as `trained`."""
    why = None
    if lm.hidden_size != hidden_size:
        why = f"hidden size {lm.hidden_size} where it was trained with {hidden_size}"
    elif trained in config.fingerprints:
        why = fingerprint_mismatch(config.fingerprints[trained], lm)
    if why:
        raise LwError(f"{role} {lm.name!r} is not the model this bridge's {role} {trained!r} was trained with: {why}")


def load_model(source: ModelSource, dtype: str, device: str) -> FrozenLM:
    return source if isinstance(source, FrozenLM) else FrozenLM.load(os.fspath(source), dtype=dtype, device=device)


class BridgePipeline:
    """A trained bridge with its sender and receivers, answering texts. Quiet unless `progress=True`."""

    def __init__(self, bridge: Bridge, sender: FrozenLM | None, receivers: list[FrozenLM], progress: bool = False):
        config = bridge.config
        if (sender is None) != (config.sender is None):
            raise LwError(f"bridge {'reads sender ' + repr(config.sender) if config.sender else 'reads no sender'}, "
                          f"but {'none' if sender is None else 'one'} was given")
        if len(receivers) != len(config.receivers):
            raise LwError(f"bridge has {len(config.receivers)} receiver(s), {len(receivers)} given")
        if sender is not None:
            check_model("sender", config.sender, sender, config.d_sender, config)  # type: ignore[arg-type]
        for name, lm, width in zip(config.receivers, receivers, config.d_receivers, strict=True):
            check_model("receiver", name, lm, width, config)
        self.bridge, self.sender, self.receivers, self.progress = bridge, sender, receivers, progress
        self.inputs = self._fresh_inputs()

    def _fresh_inputs(self) -> EncoderInputs:
        return EncoderInputs(self.sender, self.bridge.config.layer, self.bridge.config.sender_template,
                             progress=self.progress)

    @classmethod
    def from_pretrained(cls, path: str | Path, *, sender: ModelSource | None = None, receivers: Receivers | None = None,
                        device: str = "auto", dtype: str | None = None, progress: bool = False) -> BridgePipeline:
        """Load a bridge (a bridge folder or a run directory) and its models.

        `sender` and `receivers` say where the models come from: a folder, a hub id, an embedded preset
        name or a loaded `FrozenLM`; by default the names recorded at training (presets need the asset
        packages, or a converted cache under `$LW_CACHE`). `receivers` is one source, a list in the
        bridge's receiver order, or {trained name: source}. Each model is checked against what the
        bridge was trained with (widths, vocabulary, tokenizer, embedding weights); a mismatch fails in
        one line. `dtype` defaults to the one the bridge was trained in."""
        from lw_core.models import resolve_device, transformers_progress

        torch_device = resolve_device(device)
        bridge = Bridge.from_pretrained(bridge_folder(path), device=torch_device)
        config = bridge.config
        dtype = dtype or config.dtype
        if config.sender is None and sender is not None:
            raise LwError("this bridge reads no sender (its encoder reads text bytes); do not pass sender=")
        with transformers_progress(progress):
            loaded_sender = None if config.sender is None else load_model(sender or config.sender, dtype, str(torch_device))
            loaded = [load_model(source, dtype, str(torch_device)) for source in receiver_sources(config, receivers)]
        return cls(bridge, loaded_sender, loaded, progress=progress)

    @property
    def answers(self) -> list[str]:
        """The answer names, in the order of `scores`' columns."""
        return list(self.bridge.config.answers)

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
    def scores(self, texts: Sequence[str], receiver: str | None = None, batch_size: int = 64,
               normalize: bool = True) -> torch.Tensor:
        """[N, answers] float32 log-probabilities, columns in `answers` order: the receiver's probability
        of each answer, renormalised over the answer set (each row's `exp` sums to 1). With
        `normalize=False`: the receiver's raw log-probability of each answer's tokens (summed over a
        multi-token answer), which does not sum to one. `receiver` picks one by its trained name."""
        if self.bridge.config.kind == "generative":
            raise LwError(f"task {self.bridge.config.task!r} is generative: it has no answer set to score; use predict")
        scorer, examples = self._fresh_scorer(texts, receiver)
        raw = torch.cat([scorer.score(None, examples[i : i + batch_size])  # type: ignore[arg-type]
                         for i in range(0, len(examples), batch_size)])
        return raw.log_softmax(dim=-1) if normalize else raw

    def predict(self, texts: Sequence[str], receiver: str | None = None, batch_size: int = 64) -> list[str]:
        """The answer name for each text (generative tasks: the generated answer)."""
        if self.bridge.config.kind == "generative":
            scorer, examples = self._fresh_scorer(texts, receiver)
            return [out for i in range(0, len(examples), batch_size)
                    for out in scorer.generate(None, examples[i : i + batch_size])]  # type: ignore[arg-type]
        answers = self.bridge.config.answers
        raw = self.scores(texts, receiver, batch_size, normalize=False)  # same argmax, as the evaluator takes it
        return [answers[i] for i in raw.argmax(dim=-1).tolist()]


def evaluate_run(run_dir: Path, *, split: str = "test", wire: str | None = None, device: str = "auto",
                 batch_size: int = 64, **options: Any) -> dict[str, Any]:
    """Re-evaluate a saved run's bridge on a split through the shared evaluator; writes
    `metrics_{split}_reeval*.json` into the run directory and returns the flat metrics per receiver.
    `options`: `evaluate_run_wires`' sender, receivers, data_dir, dtype, progress and output_dir."""
    return evaluate_run_wires(run_dir, split=split, wires=[wire], device=device, batch_size=batch_size,
                              **options)[wire]


def evaluate_run_wires(run_dir: Path, *, split: str = "test", wires: Sequence[str | None] = (None,),
                       device: str = "auto", batch_size: int = 64, sender: ModelSource | None = None,
                       receivers: Receivers | None = None, data_dir: str | None = None, dtype: str | None = None,
                       progress: bool = True, output_dir: str | Path | None = None
                       ) -> dict[str | None, dict[str, Any]]:
    """`evaluate_run` at each wire format (None: unquantised) with one pipeline: the sender reads each
    example once, and every format quantises the same messages. `sender` and `receivers` as in
    `BridgePipeline.from_pretrained` (default: the models it was trained with); `data_dir`: where an
    embedded or hub task's source files are (default: where training read them), e.g. outside the
    workspace without the task's corpus package; `dtype`: default the one the bridge trained in;
    `output_dir`: where the metrics and predictions are written (default: the run directory, when it is one)."""
    pipe = BridgePipeline.from_pretrained(run_dir, sender=sender, receivers=receivers, device=device, dtype=dtype)
    config = pipe.bridge.config
    options = {**config.task_options, **({"data_dir": data_dir} if data_dir else {})}
    task: Task = load_task(config.task_source or config.task, **options)
    target = Path(output_dir) if output_dir else Path(run_dir)
    out: dict[str | None, dict[str, Any]] = {}
    for wire in wires:
        out[wire] = {}
        for name in config.receivers:
            result = evaluate(pipe.scorer(name, wire), task, split, batch_size=batch_size, progress=progress)
            tag = f"{split}_reeval" + (f"_{wire}" if wire else "") + ("" if name == config.receivers[0] else f"_{name}")
            if output_dir or (target / "run.json").is_file():
                write_eval(result, target, tag)
            out[wire][name] = flat_metrics(result.metrics)
    return out
