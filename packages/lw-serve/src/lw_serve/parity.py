"""Receiver backends against the HF reference on the same soft tokens: a task split's texts through one
bridge's sender side and adapter, then the HF receiver and llama.cpp (one GGUF per precision) each score
the answers after exactly the same input embeddings (and a vLLM server, with --vllm-url).

    python -m lw_serve.parity [--run RUN_DIR] [--precisions f32 f16 q8_0 shipped] [--limit N] [--json]
    python -m lw_serve.parity --no-llama-cpp --vllm-url http://127.0.0.1:8100 [--limit N]

Without `--run`, a freshly initialised default bridge for the task (seeded): backend parity needs real
soft tokens at a trained bridge's scale, not a trained bridge."""

from __future__ import annotations

import json
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from lw_core import LwError, cli_errors
from lw_core.config import ArgumentParser, parse_config
from lw_registry.text_table import markdown_table
from lw_tasks import Example, load_task

from lw_serve.engine import Engine, load_engine
from lw_serve.receiver_gguf import PRECISIONS


@dataclass
class ParityConfig:
    run: str | None = field(default=None, metadata={"help": "a trained run dir (default: a fresh seeded bridge)"})
    task: str = field(default="rt-sentiment", metadata={"help": "task whose split is scored (and of the fresh bridge)"})
    split: str = field(default="test", metadata={"help": "split scored"})
    limit: int | None = field(default=None, metadata={"help": "score only the split's first N examples"})
    precisions: list[str] = field(default_factory=lambda: ["f32", "f16", "q8_0", "shipped"], metadata={
        "help": "GGUF precisions of the receiver compared against hf", "choices": list(PRECISIONS)})
    llama_cpp: bool = field(default=True, metadata={"help": "compare llama.cpp at --precisions (needs llama-cpp-python)"})
    vllm_url: str | None = field(default=None, metadata={
        "help": "also compare a vLLM server (--enable-prompt-embeds) serving the receiver's weights"})
    vllm_logprobs: int = field(default=4096, metadata={
        "help": "vllm: top log-probabilities per position (the server's --max-logprobs must allow it)"})
    batch: int = field(default=32, metadata={"help": "inputs scored together"})
    threads: int | None = field(default=None, metadata={"help": "CPU threads (torch and llama.cpp)"})
    seed: int = field(default=0, metadata={"help": "seed of the fresh bridge"})
    json: bool = field(default=False, metadata={"help": "print JSON instead of a markdown table"})


def fresh_bridge(task: str, folder: Path, seed: int) -> Path:
    """A default bridge for `task` between the default models, initialised with `seed`, saved in `folder`."""
    from lw_bridge.bridge import Bridge
    from lw_bridge.build import bridge_config
    from lw_bridge.config import TrainConfig
    from lw_tasks.methods import Models

    config = TrainConfig(task=task, device="cpu")
    models = Models(device="cpu", dtype=config.dtype)
    sender, receivers = models.get(config.sender), [models.get(name) for name in config.receivers]
    torch.manual_seed(seed)
    Bridge(bridge_config(config, load_task(task), sender, receivers)).save_pretrained(folder)
    return folder


def inputs(engine: Engine, examples: list[Example], batch: int):
    """The HF receiver's input embeddings for each batch of examples (anchors, BOS and soft tokens)."""
    for start in range(0, len(examples), batch):
        texts = [e.text for e in examples[start : start + batch]]
        yield engine.decode_input(engine.messages(texts, {}), texts)


def backends(engine: Engine, config: ParityConfig) -> list[tuple[str, Any]]:
    """hf (the reference), then llama.cpp at each precision and a vLLM server, as configured."""
    from lw_serve.backends import build_backend

    out = [("hf", engine.backend)]
    if config.llama_cpp:
        out += [(f"llama-cpp {p}", build_backend("llama-cpp", engine.receiver, gguf_precision=p,
                                                 threads=config.threads, max_batch=config.batch))
                for p in config.precisions]
    if config.vllm_url:
        out.append(("vllm", build_backend("vllm", engine.receiver, vllm_url=config.vllm_url,
                                          vllm_logprobs=config.vllm_logprobs, max_batch=config.batch)))
    return out


def compare(engine: Engine, examples: list[Example], receivers: list[tuple[str, Any]], batch: int
            ) -> list[dict[str, Any]]:
    prefixes = list(inputs(engine, examples, batch))
    answer_ids = engine.scorer.answer_ids()
    labels = torch.tensor([-1 if e.label is None else e.label for e in examples])
    rows, reference = [], None
    for name, backend in receivers:
        start = time.perf_counter()
        scores = torch.cat([backend.score(prefix, answer_ids) for prefix in prefixes])
        seconds = time.perf_counter() - start
        row = {"receiver": name, "examples": len(examples),
               "accuracy": round(float((scores.argmax(-1) == labels).float().mean()), 4),
               "examples/s": round(len(examples) / seconds, 1)}
        if reference is None:
            reference = scores
        else:
            delta = (scores - reference).abs()
            row |= {"same answer": round(float((scores.argmax(-1) == reference.argmax(-1)).float().mean()), 4),
                    "max |Δ logprob|": round(float(delta.max()), 5), "mean |Δ logprob|": round(float(delta.mean()), 5)}
        rows.append(row)
    return rows


def parity(config: ParityConfig) -> list[dict[str, Any]]:
    examples = load_task(config.task).split(config.split)[: config.limit]
    if not examples:
        raise LwError(f"task {config.task!r} has no examples in split {config.split!r}")
    with tempfile.TemporaryDirectory(prefix="lw-parity-") as scratch:
        run = config.run or fresh_bridge(config.task, Path(scratch) / "bridge", config.seed)
        engine = load_engine(run, "pipeline", wire="fp32", device="cpu")
        with torch.no_grad():
            return compare(engine, examples, backends(engine, config), config.batch)


@cli_errors
def main(argv: list[str] | None = None) -> None:
    parser = ArgumentParser(prog="python -m lw_serve.parity", description=__doc__)
    config, _ = parse_config(ParityConfig, argv, parser)
    if config.threads:
        torch.set_num_threads(config.threads)
    rows = parity(config)
    if config.json:
        json.dump(rows, sys.stdout, indent=2)
        print()
        return
    columns = list(dict.fromkeys(k for r in rows for k in r))
    print(markdown_table(columns, [[r.get(c, "") for c in columns] for r in rows]))


if __name__ == "__main__":
    main()
