"""`lw-train`: cache sender states once, train encoder + adapter(s) with the receivers frozen in
lw-core's `train_loop` (the bridge's recipe is `recipe.BridgeRecipe`; selection on validation, resume
after a crash or preemption), then evaluate the selected bridge on test with the shared evaluator."""

from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from lw_core import FrozenLM, LwError, seed_everything
from lw_core.distributed import single_process_hint
from lw_core.grid import GridOutcome
from lw_core.grid import train_grid as run_grid
from lw_core.models import BackgroundConversion, resolve_device
from lw_core.options import DEFAULT_RECEIVER
from lw_core.run_dirs import identity_hash
from lw_core.run_dirs import method_label as labelled
from lw_core.runs import runs_root
from lw_core.trainer import LoopSettings
from lw_core.training import find_training_state
from lw_registry import write_json_atomic
from lw_tasks import (
    Example,
    Task,
    answer_rule_hint,
    evaluate,
    load_task,
    resolve_answer_rule,
    task_options,
    write_eval,
)
from lw_tasks.methods import METHODS, Context, Method, Outcome, Runtime
from lw_tasks.runner import run_method

from lw_bridge.bridge import Bridge, BridgeConfig
from lw_bridge.build import bridge_config, sender_template
from lw_bridge.config import TrainConfig
from lw_bridge.controls import joint_rescoring, token_budget_reference, zero_shot_reference
from lw_bridge.encoders import fit_input_statistics
from lw_bridge.inputs import EncoderInputs
from lw_bridge.layouts import sender_only_bytes, split_fields
from lw_bridge.losses import diversity
from lw_bridge.recipe import BridgeRecipe, reference_ids
from lw_bridge.scorer import BridgeScorer
from lw_bridge.selection import (
    REPORTS,
    first_token_accuracy,
    layer_weights,
    majority_check,
    print_summary,
    receiver_suffix,
)
from lw_bridge.wire import WireFormat

if TYPE_CHECKING:
    from accelerate import Accelerator

log = logging.getLogger("lw.train")


def method_label(config: TrainConfig) -> str:
    """The run's method in the registry: `bridge` to the default receiver, `bridge@RECEIVER` to another,
    `bridge-interlingua` to several (its record holds each receiver's metrics); `bridge-fusion…` when
    the receiver reads the text too."""
    name = "bridge-fusion" if config.receiver_reads_text else "bridge"
    if len(config.receivers) > 1:
        return f"{name}-interlingua"
    return labelled(name, config.receivers[0], DEFAULT_RECEIVER)


def default_run_dir(config: TrainConfig) -> Path:
    """`$LW_RUNS/<task>/<method>/seed<S>-<hash>`, `<method>` as the run's record names it; a run
    started before that layout (every bridge under `bridge/`) is resumed or recognised where it is."""
    task = Path(config.task).stem if Path(config.task).suffix else config.task
    name = f"seed{config.seed}-{identity_hash(config)}"
    legacy, label = runs_root() / task / "bridge" / name, method_label(config)
    if label != "bridge" and (legacy / "run.json").is_file():
        log.info("%s: this run's directory from before runs/<task>/<method>/; kept there", legacy)
        return legacy
    return runs_root() / task / label / name


def check_task(task: Task, config: TrainConfig) -> Task:
    """The bridge sees the whole task (it cuts its budget view itself); a loss the task cannot take
    fails here, before the run directory is made."""
    generative = task.kind == "generative"
    if generative and config.kd_weight > 0:
        raise LwError(f"--kd-weight distils over an answer set; task {task.name!r} is generative (use 0)")
    if generative and config.message_head_weight > 0:
        raise LwError(f"--message-head-weight classifies over an answer set; task {task.name!r} is generative (use 0)")
    if config.receiver_text_fields:  # fields the task's input cannot split fail before any model loads
        split_fields(task, config.receiver_text_fields)
    return task


def accelerated_runtime(config: TrainConfig) -> Runtime:
    """The bridge runs under `accelerate` (one process, or several under `accelerate launch` / `torchrun`:
    rank 0 alone writes the run dir and its record)."""
    from accelerate import Accelerator

    resolve_device(config.device)  # `--device cuda` without a GPU fails here, not silently on the CPU
    accelerator = Accelerator(cpu=config.device == "cpu")
    hint = single_process_hint(accelerator.num_processes)
    if hint:
        log.warning(hint)
    return Runtime(accelerator.device, config.dtype, rank=accelerator.process_index, state=accelerator)


def fit_bridge(ctx: Context) -> Outcome | None:
    """Cache sender states, run the learning-rate grid, score the selected bridge on every receiver."""
    config, task, run, accelerator = ctx.config, ctx.task, ctx.run, ctx.runtime.state
    device = accelerator.device
    started = time.perf_counter()
    log.info("process %d of %d on %s", accelerator.process_index, accelerator.num_processes, device)
    seed_everything(config.seed)
    view = task.budget_view(config.max_train_examples, config.val_examples, config.seed)
    train_examples, val_examples = view.split("train"), view.split("validation")
    test_examples = task.split("test")
    # On a cold cache the receivers convert in another process while the sender works here. Rank 0
    # computes and caches the sender states; the other ranks wait, then read them from the cache.
    with accelerator.main_process_first(), \
            BackgroundConversion([r for r in config.receivers if r != config.sender]) as conversion:
        sender = None if config.encoder == "bytes" else ctx.models.get(config.sender)
        inputs = EncoderInputs(sender, config.sender_layers(), sender_template(config, task),
                               batch_size=config.sender_batch_size, progress=config.progress)
        splits = [("train", train_examples), ("validation", val_examples)]
        if config.wire_formats or config.compare_zero_shot or task.kind == "generative":
            splits.append(("test", test_examples))  # scored again from states after the end-to-end pass
        for split, examples in splits:
            inputs.cache_split(task, split, examples, after_batch=conversion.poll)
        conversion.wait()
    receivers = [ctx.models.get(name) for name in config.receivers]
    for receiver in receivers if task.kind != "generative" else []:
        hint = answer_rule_hint(config.answer_rule, [receiver.token_ids(v) for v in task.verbalizers])
        if hint:
            log.info("%s: %s", receiver.name, hint)
    bconfig = bridge_config(config, task, sender, receivers)
    cache_seconds = time.perf_counter() - started

    grid = train_grid(config, task, bconfig, sender, receivers, inputs, train_examples, val_examples, ctx.run_dir,
                      accelerator)
    if not accelerator.is_main_process:
        return None
    metrics = _final_evaluation(config, task, run, receivers, inputs, grid, cache_seconds, started)
    return Outcome(evaluated=True, extra=metrics, trainable_params=metrics["trainable_params"])


BRIDGE = METHODS.add("bridge", Method(
    "bridge", TrainConfig, fit_bridge,
    "a frozen sender's hidden states compressed into a message, read by frozen receivers as K soft tokens",
    "the sender's hidden states of the input text (the receiver reads the prompt around K soft tokens)",
    default_model=None, label=lambda _, config: method_label(config), run_dir=lambda config, *_: default_run_dir(config),
    view=check_task, runtime=accelerated_runtime, entry="lw-train", skip_completed=False, preload=False,
    generative=True,
))  # fmt: skip
"""`lw-train`'s method: the bridge (`bridge@R`, `bridge-interlingua`, `bridge-fusion…` by its config)."""


def train(config: TrainConfig) -> dict[str, Any]:
    """`lw-train`: the bridge through the one runner (`lw_tasks.runner.run_method`); its metrics."""
    task = load_task(config.task, **task_options(config))
    name = f"bridge {task.name} {config.sender}->{'+'.join(config.receivers)}"
    result = run_method(BRIDGE, config, task=task, output_dir=config.output_dir, argv=list(sys.argv), name=name)
    return {k: v for k, v in result.items() if k not in ("method", "run_dir")}


@dataclass
class GridResult:
    """The learning-rate grid's outcome (lw-core's `train_grid`), where its best bridge is, and every run's history."""

    outcome: GridOutcome
    best_dir: Path
    history: list[dict[str, Any]]


def train_grid(config: TrainConfig, task: Task, bconfig: BridgeConfig, sender: FrozenLM | None,
               receivers: list[FrozenLM], inputs: EncoderInputs, train_examples: list[Example], val_examples: list[Example], run_dir: Path, accelerator: Accelerator
               ) -> GridResult:
    """lw-core's grid over `config.lr` with the bridge's recipe; a step is kept (in `checkpoints/best`)
    only when its validation beats every earlier one of the grid."""
    best_dir = run_dir / "checkpoints" / "best"
    recipes: list[BridgeRecipe] = []

    def recipe_for(index: int, lr: float, folder: Path | None):
        seed_everything(config.seed)
        bridge = Bridge(bconfig).to(accelerator.device)
        if find_training_state(folder) is None and config.standardize_states and sender is not None:
            fit_input_statistics(bridge.encoder, inputs.get(train_examples))  # a checkpoint holds its own
        recipes.append(BridgeRecipe(config, task, bridge, receivers, inputs, train_examples, val_examples,
                                    best_dir=best_dir, run_dir=run_dir, device=accelerator.device, lr=lr))
        return recipes[-1].recipe()

    settings = LoopSettings(steps=config.steps, lr=config.lr[0], weight_decay=config.weight_decay,
                            warmup=config.warmup, grad_clip=config.grad_clip, eval_every=config.eval_every,
                            checkpoint_every=config.checkpoint_every, description=f"bridge {task.name}",
                            progress=config.progress, ema=config.ema)
    outcome = run_grid(config.lr, recipe_for, settings, accelerator, run_dir / "checkpoints")
    return GridResult(outcome, best_dir, [h for recipe in recipes for h in recipe.history])


def _final_evaluation(config: TrainConfig, task: Task, run: Any, receivers: list[FrozenLM], inputs: EncoderInputs,
                      grid: GridResult, cache_seconds: float, started: float) -> dict[str, Any]:
    bridge = Bridge.from_pretrained(grid.best_dir, device=receivers[0].device)
    bridge.save_pretrained(run.dir / "bridge")
    run.artifacts["bridge"] = "bridge"
    write_json_atomic(run.dir / "history.json", grid.history)
    texts_bytes = [len(e.text.encode("utf-8")) for e in task.split("test")]
    numel = bridge.config.encoder.message_numel
    metrics: dict[str, Any] = {
        "trainable_params": bridge.trainable_parameters(),
        "train_seconds": round(grid.outcome.train_seconds, 1),
        "seconds_per_step": round(grid.outcome.train_seconds / max(1, len(grid.history)), 3),
        "cache_seconds": round(cache_seconds, 1),
        "best_step": grid.outcome.best.step,
        "best_lr": grid.outcome.lr,
        "val_accuracy_best": grid.outcome.best.score,
        "text_bytes_mean": round(sum(texts_bytes) / len(texts_bytes), 1),
        **sender_only_bytes(task, config.receiver_text_fields),
        **layer_weights(bridge),
        **{f"wire_bytes_{f}": WireFormat(f).message_bytes(numel) for f in ("fp16", "int8", "int4")},
    }
    generative = task.kind == "generative"
    report = REPORTS[task.kind]
    headline = report.headline
    test_examples = task.split("test")
    wire_formats = list(config.wire_formats)
    if config.compare_zero_shot:  # the token-budget control reads the message's bytes at this format: so does the bridge
        budget_bytes = WireFormat(config.token_budget_wire).message_bytes(numel)
        metrics.update(token_budget_wire=config.token_budget_wire, token_budget_bytes=budget_bytes)
        wire_formats = list(dict.fromkeys([*wire_formats, config.token_budget_wire]))
    outputs: list[list[str]] = []
    for r, receiver in enumerate(receivers):
        suffix = receiver_suffix(receivers, r)
        scorer = BridgeScorer(bridge, inputs, receiver, r)
        val_path = run.dir / f"metrics_validation{suffix}.json"
        # A run resumed from a checkpoint of older code has no validation results written at selection.
        if not val_path.is_file():
            write_eval(evaluate(scorer, task, "validation", batch_size=config.eval_batch_size,
                                limit=config.val_examples, progress=config.progress), run.dir, f"validation{suffix}")
        val_metrics = json.loads(val_path.read_text())
        if not generative:
            metrics.update(majority_check(val_metrics, receiver.name, suffix))
            ids = [receiver.token_ids(v) for v in task.verbalizers]
            metrics[f"answer_rule{suffix}"] = resolve_answer_rule(config.answer_rule, ids)
        # Test reads raw text, the sender run on every batch: its time is end to end, like every baseline's.
        eval_start = time.perf_counter()
        test = evaluate(BridgeScorer(bridge, inputs.uncached(), receiver, r), task, "test",
                        batch_size=config.eval_batch_size, progress=config.progress)
        eval_seconds = time.perf_counter() - eval_start
        write_eval(test, run.dir, f"test{suffix}")
        outputs.append([p.get("output", "") for p in test.predictions])
        soft = torch.cat([bridge.soft_tokens(scorer.messages(test_examples[i : i + 64]), r).detach()
                          for i in range(0, min(256, len(test_examples)), 64)])
        metrics.update({f"{name}{suffix}": test.metrics[name] for name in report.test_metrics})
        metrics.update({f"val_{name}{suffix}": val_metrics[name] for name in report.test_metrics})
        if "first_token_accuracy" in val_metrics:
            metrics[f"val_first_token_accuracy{suffix}"] = val_metrics["first_token_accuracy"]
        metrics.update({
            f"majority_rate{suffix}": test.metrics.get("majority_rate"),
            f"n_answers{suffix}": test.metrics.get("n_answers"),
            f"seconds_per_example{suffix}": round(eval_seconds / len(test_examples), 4),
            f"soft_token_diversity{suffix}": round(diversity(soft).item(), 4),
        })
        if generative:
            metrics[f"first_token_accuracy{suffix}"] = first_token_accuracy(
                scorer, test_examples, reference_ids([receiver], test_examples)[0], config.eval_batch_size)
        for fmt in wire_formats:
            quantized = evaluate(BridgeScorer(bridge, inputs, receiver, r, WireFormat(fmt)), task, "test",
                                 batch_size=config.eval_batch_size, progress=False)
            metrics[f"{headline}_wire_{fmt}{suffix}"] = quantized.metrics[headline]
            if generative:
                metrics[f"em_wire_{fmt}{suffix}"] = quantized.metrics["em"]
        if config.compare_zero_shot:
            zs = zero_shot_reference(receiver, task, config)
            metrics[f"{report.zero_shot_key}{suffix}"] = zs[headline]
            # Fusion reads the whole text besides the message: no text stands for the message, so no budget control.
            budget = None if config.receiver_reads_text and not config.receiver_text_fields else token_budget_reference(
                receiver, task, config.receiver_text_fields, budget_bytes, config)
            if budget is not None:
                metrics[f"token_budget_{headline}{suffix}"] = budget[headline]
                metrics[f"token_budget_text_bytes_mean{suffix}"] = budget["text_bytes_mean"]
            if generative:
                metrics[f"zero_shot_em{suffix}"] = zs["em"]
                if budget is not None:
                    metrics[f"token_budget_em{suffix}"] = budget["em"]
    if generative and len(receivers) > 1:  # interlingua: the receivers' answers to one message, rescored by all
        scorers = [BridgeScorer(bridge, inputs, receiver, r) for r, receiver in enumerate(receivers)]
        joint, shares = joint_rescoring(scorers, task, test_examples, outputs, config.eval_batch_size)
        write_eval(joint, run.dir, "test_joint")
        metrics.update(joint_em=joint.metrics["em"], joint_f1=joint.metrics["f1"],
                       **{f"joint_{k}": round(v, 4) for k, v in shares.items()})
    metrics["total_seconds"] = round(time.perf_counter() - started, 1)
    run.metrics.update(metrics)
    run.write_json("metrics.json", metrics)
    print_summary(task, config, metrics, receivers)
    return metrics
