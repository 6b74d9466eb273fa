"""The `lw-train` recipe: cache sender states once, train encoder + adapter(s) with the receivers
frozen, select on validation, evaluate on test with the shared evaluator, resume after a crash."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from lw_core import FrozenLM, LwError, seed_everything
from lw_core.models import BackgroundConversion, cache_dir, model_tag
from lw_core.runs import open_run, runs_root
from lw_core.wire import WireFormat
from lw_registry import write_json_atomic
from lw_tasks import (
    Example,
    GenerationScorer,
    Task,
    ZeroShotScorer,
    evaluate,
    flat_metrics,
    load_task,
    resolve_answer_rule,
    task_options,
    write_eval,
)
from tqdm.auto import tqdm

from lw_bridge.bridge import Bridge
from lw_bridge.build import Models, bridge_config, load_receivers, load_sender, sender_template
from lw_bridge.checkpoint import find_training_state, load_training_state, save_training_state
from lw_bridge.config import TrainConfig
from lw_bridge.encoders import fit_input_statistics
from lw_bridge.inputs import EncoderInputs, pad_states
from lw_bridge.losses import diversity
from lw_bridge.objective import bridge_loss
from lw_bridge.preemption import PREEMPTED_EXIT_CODE, PreemptionFlag
from lw_bridge.schedule import warmup_cosine
from lw_bridge.scorer import BridgeScorer
from lw_bridge.selection import (
    REPORTS,
    better_checkpoint,
    first_token_accuracy,
    layer_weights,
    majority_check,
    mean_nll,
    print_summary,
    receiver_suffix,
)

log = logging.getLogger("lw.train")


def method_label(config: TrainConfig) -> str:
    """The run's method in the registry: `bridge` to the default receiver, `bridge@RECEIVER` to another,
    `bridge-interlingua` to several (its record holds each receiver's metrics); `bridge-fusion…` when
    the receiver reads the text too."""
    name = "bridge-fusion" if config.receiver_reads_text else "bridge"
    if len(config.receivers) > 1:
        return f"{name}-interlingua"
    if config.receivers == TrainConfig().receivers:
        return name
    return f"{name}@{model_tag(config.receivers[0])}"


def default_run_dir(config: TrainConfig) -> Path:
    task = Path(config.task).stem if Path(config.task).suffix else config.task
    return runs_root() / task / "bridge" / f"seed{config.seed}-{config.identity_hash()}"


def batch_indices(step: int, batch_size: int, n: int, seed: int) -> list[int]:
    """The examples of global step `step`: a pure function of (step, seed), so a resumed run sees the
    same batches as an uninterrupted one."""
    out, position = [], step * batch_size
    orders: dict[int, torch.Tensor] = {}
    for p in range(position, position + batch_size):
        epoch = p // n
        if epoch not in orders:
            orders[epoch] = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
        out.append(int(orders[epoch][p % n]))
    return out


def teacher_logprobs(receiver: FrozenLM, task: Task, examples: Sequence[Example], batch_size: int,
                     answer_rule: str = "full") -> torch.Tensor:
    """The receiver's own answer log-probs when it reads the text prompt (for distillation), scored by
    the answer rule the student is trained by."""
    scorer = ZeroShotScorer(receiver, answer_rule=answer_rule)
    rows = []
    with torch.no_grad():
        for start in tqdm(range(0, len(examples), batch_size), desc=f"teacher {receiver.name}", leave=False):
            rows.append(scorer.score(task, examples[start : start + batch_size]))
    return torch.cat(rows)


def zero_shot_reference(receiver: FrozenLM, task: Task, batch_size: int, max_new_tokens: int = 16) -> dict[str, Any]:
    """The receiver reading the text prompt, on test: calibrated zero-shot scoring of the answer set
    (classification) or greedy generation (generative). Cached on disk per receiver and test split."""
    digest = hashlib.sha256("\0".join(f"{e.id}\t{e.text}" for e in task.split("test")).encode()).hexdigest()[:12]
    name = f"{receiver.name}-{task.name}-{digest}-test-{REPORTS[task.kind].cache_tag}"
    path = cache_dir() / "zero_shot" / f"{name.replace('/', '_')}.json"
    if path.is_file():
        return json.loads(path.read_text())
    scorer = (ZeroShotScorer(receiver, calibrate=True) if task.kind == "classification"
              else GenerationScorer(receiver, max_new_tokens))
    result = evaluate(scorer, task, "test", batch_size=batch_size)
    metrics = flat_metrics(result.metrics)
    write_json_atomic(path, metrics)
    return metrics


def reference_ids(receivers: list[FrozenLM], examples: Sequence[Example]) -> list[list[list[int]]]:
    """Generative tasks: each receiver's token ids of each example's first reference, as it follows the
    prompt (after a space, like the verbalizers of classification tasks)."""
    return [[r.token_ids(" " + e.references[0].strip()) for e in examples] for r in receivers]


def train(config: TrainConfig) -> dict[str, Any]:
    from accelerate import Accelerator

    task = load_task(config.task, **task_options(config))
    generative = task.kind == "generative"
    if generative and config.kd_weight > 0:
        raise LwError(f"--kd-weight distils over an answer set; task {task.name!r} is generative (use 0)")
    if generative and config.message_head_weight > 0:
        raise LwError(f"--message-head-weight classifies over an answer set; task {task.name!r} is generative (use 0)")
    run_dir = Path(config.output_dir) if config.output_dir else default_run_dir(config)
    accelerator = Accelerator(cpu=config.device == "cpu")
    device = accelerator.device
    # Several processes (accelerate launch / torchrun): rank 0 alone writes the run dir and its record.
    with open_run(run_dir, config, name=f"bridge {task.name} {config.sender}->{'+'.join(config.receivers)}",
                  task=task.name, method=method_label(config), rank=accelerator.process_index,
                  seed=config.seed, device=str(device), dtype=config.dtype) as run:
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
            sender = load_sender(config, device)
            inputs = EncoderInputs(sender, config.sender_layers(), sender_template(config, task),
                                   batch_size=config.sender_batch_size)
            for split, examples in (("train", train_examples), ("validation", val_examples), ("test", test_examples)):
                inputs.cache_split(task, split, examples, after_batch=conversion.poll)
            conversion.wait()
        models = Models(sender, load_receivers(config, device))
        bconfig = bridge_config(config, task, models)
        cache_seconds = time.perf_counter() - started

        seed_everything(config.seed)
        bridge = Bridge(bconfig).to(device)
        optimizer = torch.optim.AdamW(bridge.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        scheduler = warmup_cosine(optimizer, config.steps, config.warmup)
        checkpoint_dir, best_dir = run_dir / "checkpoints" / "last", run_dir / "checkpoints" / "best"
        state = {"step": 0, "best_val": -1.0, "best_step": None, "history": [], "train_seconds": 0.0}
        resume_from = find_training_state(checkpoint_dir)
        if resume_from is not None:  # its checkpoint holds the input statistics too
            state = load_training_state(resume_from, bridge, optimizer, scheduler)
            log.info("resuming from %s at step %d", resume_from, state["step"])
        elif config.standardize_states and models.sender is not None:
            fit_input_statistics(bridge.encoder, inputs.get(train_examples))
        # The scheduler stays outside `prepare`: accelerate would step it once per process per step,
        # but each step here is one global batch split over the processes (see `batch_indices` below).
        model, optimizer = accelerator.prepare(bridge, optimizer)

        answer_ids = [[r.token_ids(v) for v in task.verbalizers] for r in models.receivers]
        labels = None if generative else task.labels(train_examples)
        references = reference_ids(models.receivers, train_examples) if generative else None
        val_references = reference_ids(models.receivers, val_examples) if generative else None
        teachers = None
        if config.kd_weight > 0:
            teachers = [teacher_logprobs(r, task, train_examples, config.eval_batch_size, config.answer_rule)
                        for r in models.receivers]
        scorers = [BridgeScorer(bridge, inputs, r, i) for i, r in enumerate(models.receivers)]

        def validate() -> tuple[list[float], list[Any]]:
            """The selection metric per receiver (accuracy, or first-token accuracy for generative tasks),
            and the classification evaluations behind it (written as the run's validation results)."""
            if generative:
                return [first_token_accuracy(s, val_examples, val_references[i], config.eval_batch_size)
                        for i, s in enumerate(scorers)], []
            results = [evaluate(s, task, "validation", batch_size=config.eval_batch_size, limit=config.val_examples,
                                progress=False) for s in scorers]
            return [r.metrics["accuracy"] for r in results], results

        rank, world = accelerator.process_index, accelerator.num_processes
        progress = tqdm(range(state["step"], config.steps), initial=state["step"], total=config.steps,
                        desc=f"bridge {task.name}", disable=not (accelerator.is_main_process and config.progress))
        with PreemptionFlag() as preemption:
            for step in progress:
                step_start = time.perf_counter()
                model.train()
                idx = batch_indices(step, config.batch_size, len(train_examples), config.seed)[rank::world]
                batch = [train_examples[i] for i in idx]
                states, mask = pad_states(inputs.get(batch), device)
                soft, head_logits = model(states, mask)
                loss, terms = bridge_loss(
                    soft, bridge, models.receivers, answer_ids, None if generative else labels[idx],
                    config, None if teachers is None else [t[idx] for t in teachers],
                    None if references is None else [[refs[i] for i in idx] for refs in references], head_logits,
                    [e.text for e in batch])
                if _any_rank(accelerator, not torch.isfinite(loss)):  # all ranks stop, none waits forever
                    kept = find_training_state(checkpoint_dir)
                    raise LwError(f"non-finite loss (nan/inf) at step {step}; the last good checkpoint is kept at "
                                  f"{kept or 'none yet'}; lower --lr (now {config.lr})")
                optimizer.zero_grad(set_to_none=True)
                accelerator.backward(loss)
                grad_norm = accelerator.clip_grad_norm_(model.parameters(), config.grad_clip)
                optimizer.step()
                scheduler.step()
                state["train_seconds"] += time.perf_counter() - step_start
                state["step"] = step + 1
                record = {"step": step + 1, "loss": round(loss.item(), 5), "grad_norm": round(float(grad_norm), 4),
                          "lr": scheduler.get_last_lr()[0], **{k: round(v, 5) for k, v in terms.items()}}
                if (step + 1) % config.eval_every == 0 or step + 1 == config.steps:
                    accs, results = validate()
                    record["val_first_token_accuracy" if generative else "val_accuracy"] = accs
                    nll = mean_nll(results)
                    if accelerator.is_main_process and better_checkpoint(sum(accs) / len(accs), nll, state):
                        state["best_val"], state["best_nll"], state["best_step"] = sum(accs) / len(accs), nll, step + 1
                        bridge.save_pretrained(best_dir)
                        for r, result in enumerate(results):  # the selected checkpoint's validation results
                            write_eval(result, run_dir, f"validation{receiver_suffix(models.receivers, r)}")
                    progress.set_postfix(loss=f"{loss.item():.3f}", val=f"{accs[0]:.3f}")
                else:
                    progress.set_postfix(loss=f"{loss.item():.3f}", val=f"{state['best_val']:.3f}")
                state["history"].append(record)
                last_step = step + 1 == config.steps
                stop = _any_rank(accelerator, preemption.requested)  # every rank stops at the same step
                if accelerator.is_main_process and ((step + 1) % config.checkpoint_every == 0 or last_step
                                                    or stop):
                    save_training_state(checkpoint_dir, bridge, optimizer, scheduler, state)
                if stop and not last_step:
                    accelerator.wait_for_everyone()  # the checkpoint is written before any rank exits
                    log.warning("preemption signal: checkpointed at step %d; the same command resumes", step + 1)
                    raise SystemExit(PREEMPTED_EXIT_CODE)
        progress.close()
        accelerator.wait_for_everyone()
        if not accelerator.is_main_process:
            return {}
        return _final_evaluation(config, task, run, models, inputs, state, best_dir, cache_seconds, started)


def _any_rank(accelerator: Any, flag: bool) -> bool:
    """Whether `flag` is true on any process (SIGTERM may reach the ranks at different steps)."""
    if accelerator.num_processes == 1:
        return flag
    return bool(accelerator.reduce(torch.tensor([float(flag)], device=accelerator.device), "sum").item() > 0)


def _final_evaluation(config, task, run, models, inputs, state, best_dir, cache_seconds, started) -> dict[str, Any]:
    bridge = Bridge.from_pretrained(best_dir, device=models.receivers[0].device)
    bridge.save_pretrained(run.dir / "bridge")
    run.artifacts["bridge"] = "bridge"
    write_json_atomic(run.dir / "history.json", state["history"])
    texts_bytes = [len(e.text.encode("utf-8")) for e in task.split("test")]
    numel = bridge.config.encoder.message_numel
    metrics: dict[str, Any] = {
        "trainable_params": bridge.trainable_parameters(),
        "train_seconds": round(state["train_seconds"], 1),
        "seconds_per_step": round(state["train_seconds"] / max(1, len(state["history"])), 3),
        "cache_seconds": round(cache_seconds, 1),
        "best_step": state["best_step"],
        "val_accuracy_best": state["best_val"],
        "text_bytes_mean": round(sum(texts_bytes) / len(texts_bytes), 1),
        **layer_weights(bridge),
        **{f"wire_bytes_{f}": WireFormat(f).message_bytes(numel) for f in ("fp16", "int8", "int4")},
    }
    generative = task.kind == "generative"
    report = REPORTS[task.kind]
    headline = report.headline
    test_examples = task.split("test")
    for r, receiver in enumerate(models.receivers):
        suffix = receiver_suffix(models.receivers, r)
        scorer = BridgeScorer(bridge, inputs, receiver, r)
        val_path = run.dir / f"metrics_validation{suffix}.json"
        # Generative selection used first-token accuracy, so the headline metric needs a generation pass;
        # a run resumed from a checkpoint of older code has no validation results written at selection.
        if generative or not val_path.is_file():
            write_eval(evaluate(scorer, task, "validation", batch_size=config.eval_batch_size,
                                limit=config.val_examples), run.dir, f"validation{suffix}")
        val_metrics = json.loads(val_path.read_text())
        if not generative:
            metrics.update(majority_check(val_metrics, receiver.name, suffix))
            ids = [receiver.token_ids(v) for v in task.verbalizers]
            metrics[f"answer_rule{suffix}"] = resolve_answer_rule(config.answer_rule, ids)
        # Test reads raw text, the sender run on every batch: its time is end to end, like every baseline's.
        eval_start = time.perf_counter()
        test = evaluate(BridgeScorer(bridge, inputs.uncached(), receiver, r), task, "test",
                        batch_size=config.eval_batch_size)
        eval_seconds = time.perf_counter() - eval_start
        write_eval(test, run.dir, f"test{suffix}")
        soft = torch.cat([bridge.soft_tokens(scorer.messages(test_examples[i : i + 64]), r).detach()
                          for i in range(0, min(256, len(test_examples)), 64)])
        metrics.update({f"{name}{suffix}": test.metrics[name] for name in report.test_metrics})
        metrics.update({
            f"val_{headline}{suffix}": val_metrics[headline],
            f"majority_rate{suffix}": test.metrics.get("majority_rate"),
            f"seconds_per_example{suffix}": round(eval_seconds / len(test_examples), 4),
            f"soft_token_diversity{suffix}": round(diversity(soft).item(), 4),
        })
        if generative:
            metrics[f"first_token_accuracy{suffix}"] = first_token_accuracy(
                scorer, test_examples, reference_ids([receiver], test_examples)[0], config.eval_batch_size)
        for fmt in config.wire_formats:
            quantized = evaluate(BridgeScorer(bridge, inputs, receiver, r, WireFormat(fmt)), task, "test",
                                 batch_size=config.eval_batch_size, progress=False)
            metrics[f"{headline}_wire_{fmt}{suffix}"] = quantized.metrics[headline]
        if config.compare_zero_shot:
            zs = zero_shot_reference(receiver, task, config.eval_batch_size, config.max_new_tokens)
            metrics[f"{report.zero_shot_key}{suffix}"] = zs[headline]
    metrics["total_seconds"] = round(time.perf_counter() - started, 1)
    run.metrics.update(metrics)
    run.write_json("metrics.json", metrics)
    print_summary(task, config, metrics, models.receivers)
    return metrics
