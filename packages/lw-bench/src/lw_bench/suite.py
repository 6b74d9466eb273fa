"""The benchmark subcommands as runs: each builds its paths, measures, and writes `results.json`,
`results.md` and a figure into a run directory tracked by the registry (`run.json`)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from lw_bridge import Bridge
from lw_bridge.build import bridge_config
from lw_bridge.config import TrainConfig
from lw_bridge.pipeline import bridge_folder
from lw_core import FrozenLM
from lw_core.errors import LwError
from lw_core.models import resolve_device, resolve_dtype
from lw_core.options import (
    DEFAULT_RECEIVER,
    ModelOptions,
    RuntimeOptions,
    apply_threads,
    shared_field,
)
from lw_core.run_dirs import hashed_run_dir
from lw_core.runs import open_run
from lw_registry.report.figures import answers_figure, scaling_figure
from lw_tasks import Task, load_task
from lw_tasks.options import TaskOptions
from lw_tasks.registry import task_options

from lw_bench import figures
from lw_bench.latency import PathTimes, module_share, ratios, time_paths
from lw_bench.measure import StageClock
from lw_bench.paths import (
    AnswerRelay,
    BridgeFloor,
    BridgePath,
    Probe,
    PromptTuned,
    ReadsText,
    TextRelay,
    few_shot_prefix,
    fresh_probe,
    lora_receiver,
)
from lw_bench.scaling import bench_scaling
from lw_bench.train_bench import bench_answers, bench_train
from lw_bench.wire import PRECISIONS, bench_wire

PATHS = ("bridge", "direct", "text-relay", "answer-relay", "lora", "prompt-tuning", "few-shot", "probe")


def _help(text: str, **extra: Any) -> dict[str, Any]:
    return {"help": text, **extra}


@dataclass
class BenchConfig(TaskOptions, RuntimeOptions):
    run: str | None = field(default=None, metadata=_help(
        "a trained bridge run dir: its bridge, sender, receiver and task are used, not --sender / --receivers "
        "/ --task (default: a fresh bridge)"))
    sender: str = shared_field(ModelOptions, "sender")  # --run: the run's
    receiver: str = shared_field(ModelOptions, "receivers", default=DEFAULT_RECEIVER, one_value=True,
                                 aliases=["receiver"])
    layer: int = field(default=15, metadata=_help("fresh bridge: sender layer"))
    num_soft_tokens: int = field(default=8, metadata=_help("fresh bridge: K soft tokens (also prompt tuning's K)"))
    paths: list[str] = field(default_factory=lambda: list(PATHS), metadata=_help(
        f"paths to time: {', '.join(PATHS)}"))
    examples: int = field(default=32, metadata=_help("test examples timed (cycled)"))
    warmup: int = field(default=2, metadata=_help("untimed calls before timing each path"))
    repeats: int = field(default=10, metadata=_help("timed batch-1 calls per path"))
    batch_sizes: list[int] = field(default_factory=lambda: [1, 4, 16, 64], metadata=_help("throughput batch sizes"))
    throughput_examples: int = field(default=16, metadata=_help(
        "examples per throughput measurement (at least one batch of each size)"))
    relay_tokens: list[int] = field(default_factory=lambda: [16, 32, 64], metadata=_help(
        "tokens the relay's sender may write (one path each)"))
    relay_instruction: str = field(default="task-summary", metadata=_help("the relay's instruction (lw-baselines)"))
    relay_format: str = field(default="chat", metadata=_help("the relay's prompt format: plain | chat"))
    few_shot_k: int = field(default=4, metadata=_help("few-shot demonstrations"))
    scaling_task: str = field(default="20ng", metadata=_help("task whose long texts are cut for `scaling`"))
    lengths: list[int] = field(default_factory=lambda: [64, 128, 256, 512, 1024], metadata=_help(
        "input lengths (receiver tokens) for `scaling`"))
    scaling_relay_tokens: int = field(default=32, metadata=_help("relay tokens in `scaling`, `limit` and `wire`"))
    train_batch_size: int = field(default=8, metadata=_help("`train`: examples per optimizer step"))
    train_steps: int = field(default=4, metadata=_help("`train`: timed optimizer steps per method"))
    answers: list[int] = field(default_factory=list, metadata=_help(
        "`train`: instead of the methods, time the bridge's step with answer sets of these sizes (the task's "
        "answers, then other embedded tasks' label names), under each answer rule; e.g. 2 8 20 52 77"))
    precisions: list[str] = field(default_factory=lambda: list(PRECISIONS), metadata=_help("wire precisions"))

    def __post_init__(self) -> None:
        unknown = [p for p in self.paths if p not in PATHS]
        if unknown:
            raise ValueError(f"unknown path(s) {', '.join(unknown)}; known: {', '.join(PATHS)}")
        for name in ("examples", "repeats", "throughput_examples"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if any(b < 1 for b in self.batch_sizes) or any(t < 1 for t in self.relay_tokens):
            raise ValueError("batch sizes and relay tokens must be >= 1")
        if any(a < 2 for a in self.answers):
            raise ValueError(f"answer-set sizes must be >= 2, got {self.answers}")
        super().__post_init__()

    def legacy_identity(self) -> dict[str, Any]:
        """`threads` was part of a benchmark's run id before it became a runtime option."""
        return {"threads": self.threads}


@dataclass
class Setup:
    config: BenchConfig
    task: Task
    sender: FrozenLM
    receiver: FrozenLM
    bridge: Bridge
    trained: bool
    device: torch.device


def load_setup(config: BenchConfig, task_name: str | None = None) -> Setup:
    device = resolve_device(config.device)
    dtype = resolve_dtype(config.dtype, device)
    if config.run:
        bridge = Bridge.from_pretrained(bridge_folder(config.run), device=device)
        sender_name, receiver_name = bridge.config.sender, bridge.config.receivers[0]
        if sender_name is None:
            raise LwError(f"the bridge in {config.run} reads bytes, not a sender: nothing to time against")
        task = (load_task(task_name, **task_options(config)) if task_name else
                load_task(bridge.config.task_source or bridge.config.task, **bridge.config.task_options))
    else:
        sender_name, receiver_name, bridge = config.sender, config.receiver, None
        task = load_task(task_name or config.task, **task_options(config))
    sender = FrozenLM.load(sender_name, dtype=dtype, device=device)
    receiver = FrozenLM.load(receiver_name, dtype=dtype, device=device)
    if bridge is None:
        train = TrainConfig(task=task.name, sender=sender_name, receivers=[receiver_name], layer=config.layer,
                            num_soft_tokens=config.num_soft_tokens)
        bridge = Bridge(bridge_config(train, task, sender, [receiver])).to(device).eval()
    return Setup(config, task, sender, receiver, bridge, config.run is not None, device)


def build_paths(setup: Setup, names: list[str], relay_tokens: list[int]) -> list[Any]:
    c, task, sender, receiver = setup.config, setup.task, setup.sender, setup.receiver
    bridge = BridgePath(task, sender, receiver, setup.bridge, trained=setup.trained)
    builders = {
        "bridge": lambda: [bridge, BridgeFloor(bridge)],
        "direct": lambda: [ReadsText("direct", task, receiver)],
        "text-relay": lambda: [TextRelay(task, sender, receiver, n, c.relay_instruction, c.relay_format)
                               for n in relay_tokens],
        "answer-relay": lambda: [AnswerRelay(task, sender, receiver)],
        "lora": lambda: [ReadsText("lora (merged)", task, lora_receiver(receiver))],
        "prompt-tuning": lambda: [PromptTuned(task, receiver, torch.randn(
            c.num_soft_tokens, receiver.hidden_size, generator=torch.Generator().manual_seed(0)) * receiver.embedding_rms())],
        "few-shot": lambda: [ReadsText("few-shot", task, receiver, few_shot_prefix(task, c.few_shot_k))],
        "probe": lambda: [Probe(task, sender, setup.bridge.config.layer,
                                fresh_probe(sender.hidden_size, len(task.answers)))],
    }
    return [path for name in names for path in builders[name]()]


def latency_results(times: list[PathTimes], messages: dict[str, float]) -> dict[str, Any]:
    by_name = {t.name: t for t in times}
    relay32 = next((t.name for t in times if t.name.startswith("text relay (32")), None)
    pairs = [("bridge", "direct"), ("bridge", "bridge floor")] + ([(relay32, "bridge")] if relay32 else [])
    pairs += [(t.name, "bridge") for t in times if t.name.startswith("text relay") and t.name != relay32]
    out: dict[str, Any] = {"paths": [dataclasses.asdict(t) for t in times], "ratios_p50": ratios(times, pairs)}
    if "bridge" in by_name:
        out["bridge_module_share"] = module_share(by_name["bridge"])
    out["relay_message_bytes"] = messages
    return out


def _metrics_latency(results: dict[str, Any]) -> dict[str, Any]:
    metrics: dict[str, Any] = {f"ratio {k}": round(v, 3) for k, v in results["ratios_p50"].items()}
    for p in results["paths"]:
        metrics[f"p50_ms {p['name']}"] = round(p["latency_ms"]["p50"], 2)
    if "bridge_module_share" in results:
        metrics["bridge_module_share"] = round(results["bridge_module_share"], 4)
    return metrics


def write_outputs(run, results: dict[str, Any], markdown: str, figure: str | None) -> None:
    run.write_json("results.json", results)
    run.path("results.md").write_text(markdown)
    run.artifacts["results_md"] = "results.md"
    if figure:
        run.artifacts["figure"] = figure


def command(config: BenchConfig, name: str) -> Path:
    """Run one benchmark subcommand (`latency`, `limit`, `scaling`, `wire`, `train`) as a tracked run."""
    if name == "wire" and not config.run:
        raise LwError("`lw-bench wire` needs --run RUN_DIR: accuracy at each precision needs a trained bridge")
    apply_threads(config)  # also when called from Python, not the command line
    task_name = config.scaling_task if name == "scaling" else None
    setup = load_setup(config, task_name)
    directory = hashed_run_dir(config, f"bench-{name}", setup.task.name)
    with open_run(directory, config, name=f"bench-{name}", task=setup.task.name, method=f"bench-{name}",
                  seed=config.seed, device=str(setup.device), dtype=str(setup.sender.dtype).removeprefix("torch.")) as run:
        test = setup.task.split("test")[: config.examples]
        if name in ("latency", "limit"):
            names = config.paths if name == "latency" else ["bridge", "direct", "text-relay"]
            paths = build_paths(setup, names, config.relay_tokens if name == "latency" else [config.scaling_relay_tokens])
            times = time_paths(paths, test, device=setup.device, warmup=config.warmup, repeats=config.repeats,
                               batch_sizes=config.batch_sizes if name == "latency" else [],
                               throughput_examples=config.throughput_examples, progress=config.progress)
            messages = {p.name: sum(len(m.encode()) for m in p.messages) / max(1, len(p.messages))
                        for p in paths if isinstance(p, TextRelay)}
            results = latency_results(times, messages)
            results["text_bytes"] = sum(len(e.text.encode()) for e in test) / len(test)
            markdown = figures.latency_markdown(results)
            figure = figures.latency_figure(results, run.path("latency.png"))
            run.metrics.update(_metrics_latency(results))
        elif name == "scaling":
            paths = build_paths(setup, ["bridge", "direct"], []) + build_paths(
                setup, ["text-relay"], [config.scaling_relay_tokens])
            paths = [p for p in paths if not isinstance(p, BridgeFloor)]
            results = bench_scaling(paths, setup.task.split("test"), setup.receiver, config.lengths,
                                    device=str(setup.device), repeats=max(2, config.repeats // 5))
            markdown = figures.scaling_markdown(results)
            figure = scaling_figure(results, run.path("scaling.png"))  # the report draws the same figure
            run.metrics["bridge_equals_direct_at_tokens"] = results.get("bridge_equals_direct_at_tokens")
        elif name == "wire":
            relay = build_paths(setup, ["text-relay"], [config.scaling_relay_tokens])[0]
            relay(test, StageClock(setup.device))
            relay_bytes = sum(len(m.encode()) for m in relay.messages) / max(1, len(relay.messages))
            results = bench_wire(config.run, precisions=config.precisions, device=str(setup.device),
                                 text_bytes=sum(len(e.text.encode()) for e in test) / len(test), relay_bytes=relay_bytes)
            markdown = figures.wire_markdown(results)
            figure = figures.wire_figure(results, run.path("wire.png"))
            run.metrics.update({f"accuracy {r['precision']}": r["accuracy"] for r in results["rows"]})
            run.metrics.update({f"bytes {r['precision']}": r["bytes"] for r in results["rows"]})
        elif name == "train" and config.answers:
            rows = bench_answers(setup.task, setup.sender, setup.receiver, setup.bridge, config.answers,
                                 batch_size=config.train_batch_size, steps=config.train_steps, device=setup.device)
            results = {"answer_sizes": rows, "batch": config.train_batch_size}
            markdown = "### Bridge step against the answer-set size\n\n" + figures.markdown_table(rows)
            figure = answers_figure(results, run.path("answers.png"))
            run.metrics.update({f"s_per_step {r['answers']} {r['rule']}": r["s/step"] for r in rows})
        elif name == "train":
            rows = bench_train(setup.task, setup.sender, setup.receiver, setup.bridge,
                               batch_size=config.train_batch_size, steps=config.train_steps)
            results = {"rows": rows}
            markdown = "### Training throughput\n\n" + figures.markdown_table(rows)
            figure = None
            run.metrics.update({f"train_examples_per_s {r['method']}": r["train examples/s"] for r in rows})
        else:
            raise LwError(f"unknown benchmark {name!r}")
        results["environment"] = {"device": str(setup.device), "threads": torch.get_num_threads(),
                                  "bridge": "trained" if setup.trained else "fresh", "task": setup.task.name}
        write_outputs(run, results, markdown, figure)
    print(markdown)
    print(f"run: {directory}")
    return directory


def load_results(directory: str | Path) -> dict[str, Any]:
    return json.loads((Path(directory) / "results.json").read_text())
