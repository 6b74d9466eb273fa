"""Every method end to end on tiny random models and a tiny in-memory task, plus the behaviour that
makes each one an honest baseline."""

import dataclasses
import json
import logging
import re
import time

import pytest
import torch
from lw_baselines.cli import main
from lw_baselines.common import METHODS, Method, Models, budget_view, method_label
from lw_baselines.methods.ensemble import EnsembleScorer
from lw_baselines.methods.few_shot import balanced_demos, demo_prefix
from lw_baselines.methods.finetune import LoraMethodConfig, LoraTrainable
from lw_baselines.methods.probe import fit_probe, select_probe
from lw_baselines.methods.prompt_tuning import PromptTuningMethodConfig, SoftPromptTrainable
from lw_baselines.runner import SUITE, make_config, parse_spec, run_method, run_suite
from lw_baselines.scoring import TaskViewScorer, answer_ids, generate_batch
from lw_baselines.training import IGNORE, answer_batch
from lw_core.errors import LwError
from lw_core.registry import Registry
from lw_core.testing import tiny_gemma3
from lw_tasks import Task, ZeroShotScorer, evaluate
from lw_tasks.scoring import memo_seconds

FAST = {"steps": 4, "eval_every": 2, "batch_size": 4}
# One row per method: its CLI spec and the options that keep it fast on tiny models.
CASES = [
    ("zero-shot", {}),
    ("zero-shot@sender", {}),
    ("zero-shot-calibrated", {}),
    ("few-shot", {"k": 2, "draws": 2}),
    ("lora", FAST),
    ("dora", {**FAST, "lr": [1e-3]}),
    ("prompt-tuning", {**FAST, "virtual_tokens": 3}),
    ("text-relay", {"max_new_tokens": 4, "selection_examples": 4, "instructions": ["summary"]}),
    ("text-relay-answer", {}),
    ("token-budget", {"budget_tokens": 3}),
    ("probe", {"layer": 2, "c_grid": [0.1, 1.0]}),
    ("probe-best-layer", {"layers": [1, 3], "c_grid": [1.0]}),
    ("ensemble", {"weights": [0.0, 0.5, 1.0]}),
]


def test_every_method_has_a_case():
    assert {spec.split("@")[0] for spec, _ in CASES} == set(METHODS.names())
    assert {spec.split("@")[0] for spec in SUITE} == set(METHODS.names())


@pytest.mark.parametrize(("spec", "options"), CASES, ids=[c[0] for c in CASES])
def test_method_runs_and_writes_a_run(spec, options, common, task, models, tmp_path):
    method, model = parse_spec(spec)
    config = make_config(method, {**common, **options}, model)
    metrics = run_method(method, config, task=task, models=models)
    run_dir = tmp_path / "runs" / "tiny" / method_label(method, config)
    assert metrics["run_dir"].startswith(str(run_dir))
    record = json.loads((next(run_dir.iterdir()) / "run.json").read_text())
    assert record["status"] == "completed" and record["task"] == "tiny" and record["seed"] == 0
    assert record["method"] == ("zero-shot@tiny-llama" if spec == "zero-shot@sender" else spec)
    flat = record["metrics"]
    for key in ("accuracy", "macro_f1", "val_accuracy", "trainable_params", "train_seconds", "eval_seconds",
                "seconds_per_example"):
        assert key in flat, key
    assert 0.0 <= flat["accuracy"] <= 1.0 and flat["n"] == 10
    files = {p.name for p in next(run_dir.iterdir()).iterdir()}
    assert {"config.json", "metrics_test.json", "metrics_validation.json", "selected.json"} <= files
    trained = spec in ("lora", "dora", "prompt-tuning", "probe", "probe-best-layer")
    assert (flat["trainable_params"] > 0) == trained
    if spec == "few-shot":
        assert flat["draws"] == 2 and "accuracy_draw_std" in flat
        assert {"predictions_test_draw0.jsonl", "predictions_test_draw1.jsonl"} <= files
    else:
        assert "predictions_test.jsonl" in files
    if spec.startswith("text-relay"):
        assert flat["message_bytes"] >= 0 and flat["sender_seconds_per_example"] > 0
        assert "output" in json.loads((next(run_dir.iterdir()) / "predictions_test.jsonl").read_text().splitlines()[0])
    if spec == "prompt-tuning":
        assert flat["trainable_params"] == 3 * models.get("tiny-gemma3").hidden_size


class GuardedTask(Task):
    """Records which splits are read, so a test can check that test is read only after selection."""

    reads: list = []

    def split(self, name):
        GuardedTask.reads.append(name)
        return super().split(name)


@pytest.mark.parametrize("spec", ["lora", "probe", "ensemble", "few-shot", "text-relay-answer"])
def test_selection_never_reads_test(spec, common, models, task_factory):
    task = task_factory(GuardedTask)
    method = METHODS.get(spec)
    GuardedTask.reads = []

    def guarded_run(ctx):
        GuardedTask.reads.clear()  # building the budget view copies every split: that is not selection
        outcome = method.run(ctx)
        GuardedTask.reads.append("<method done>")
        return outcome

    options = dict(next(o for s, o in CASES if s == spec))
    config = make_config(method, {**common, **options})
    run_method(dataclasses.replace(method, run=guarded_run), config, task=task, models=models)
    done = GuardedTask.reads.index("<method done>")
    assert "test" not in GuardedTask.reads[:done]
    assert "test" in GuardedTask.reads[done:]


def test_budget_view_is_a_seeded_stratified_subset(common, task):
    config = make_config(METHODS.get("zero-shot"), {**common, "max_train_examples": 10, "max_validation_examples": 6})
    view = budget_view(task, config)
    assert len(view.split("train")) == 10 and len(view.split("validation")) == 6 and len(view.split("test")) == 10
    assert sum(e.label for e in view.split("train")) == 5
    other = budget_view(task, dataclasses.replace(config, seed=1))
    assert [e.id for e in other.split("train")] != [e.id for e in view.split("train")]
    assert [e.id for e in other.split("validation")] == [e.id for e in view.split("validation")]
    assert [e.id for e in view.split("validation")] == [e.id for e in task.split("validation")[:6]]  # as the bridge


def test_lora_loss_masks_the_prompt(receiver):
    prompts = ["Text: good film\nGood?", "Text: bad\nGood?"]
    answers = [receiver.token_ids(" yes"), receiver.token_ids(" no")]
    ids, mask, labels = answer_batch(receiver, prompts, answers)
    for row, (prompt, answer) in enumerate(zip(prompts, answers, strict=True)):
        n_prompt = len(receiver.tokenizer(prompt)["input_ids"])  # BOS included, as when scoring
        assert ids[row, 0].item() == receiver.tokenizer.bos_token_id
        assert (labels[row, :n_prompt] == IGNORE).all()
        assert labels[row, n_prompt : n_prompt + len(answer)].tolist() == answer
        assert (labels[row, n_prompt + len(answer) :] == IGNORE).all()
        assert mask[row].sum().item() == n_prompt + len(answer)


@pytest.mark.parametrize("dora", [False, True], ids=["lora", "dora"])
def test_adapters_train_alone_and_merge_exactly(dora, receiver, common, task):
    config = make_config(METHODS.get("lora"), {**common, **FAST})
    assert isinstance(config, LoraMethodConfig)
    trainable = LoraTrainable(receiver, config, dora=dora)
    names = [n for n, p in trainable.peft.named_parameters() if p.requires_grad]
    assert names and all("lora_" in n for n in names)
    assert not any(p.requires_grad for p in receiver.model.parameters())  # the shared model is untouched
    with torch.no_grad():
        for p in trainable.parameters():
            p.add_(0.05 * torch.randn_like(p))
    examples = task.split("test")[:4]
    before = trainable.scorer().score(task, examples)
    merged = ZeroShotScorer(trainable.merged(trainable.state())).score(task, examples)
    assert torch.allclose(before, merged, atol=1e-4)


def test_prompt_tuning_sees_the_input_text(receiver, common, task):
    config = make_config(METHODS.get("prompt-tuning"), {**common, "virtual_tokens": 3})
    assert isinstance(config, PromptTuningMethodConfig)
    trainable = SoftPromptTrainable(receiver, config)
    example = task.split("train")[0]
    prefix = trainable.scorer().prefix(task, [example])
    text_ids = torch.tensor(receiver.token_ids(task.prompt(example)))
    k, bos = 3, len(receiver.bos_ids)
    assert example.text in task.prompt(example)
    assert prefix.embeds.shape[1] == bos + k + len(text_ids)
    assert torch.allclose(prefix.embeds[0, bos + k :], receiver.embed(text_ids))
    loss = trainable.loss(task, task.split("train")[:2])
    loss.backward()
    grad = trainable.prompt.embedding.weight.grad
    assert grad is not None and grad.abs().sum() > 0
    # Changing the input text changes the scores: the prompt is not input-blind.
    other = dataclasses.replace(example, text="completely different words here")
    scorer = trainable.scorer()
    assert not torch.allclose(scorer.score(task, [example]), scorer.score(task, [other]))


def test_prompt_tuning_suffix_places_the_soft_tokens_before_the_answer_cue(receiver, common, task):
    config = make_config(METHODS.get("prompt-tuning"), {**common, "virtual_tokens": 3, "placement": "suffix"})
    trainable = SoftPromptTrainable(receiver, config)
    example = task.split("train")[0]
    cue = task.template.split("{text}")[1]
    head = receiver.token_ids(task.prompt(example)[: -len(cue)])
    prefix = trainable.scorer().prefix(task, [example])
    start = len(receiver.bos_ids) + len(head)
    assert prefix.embeds.shape[1] == start + 3 + len(receiver.token_ids(cue))
    assert torch.allclose(prefix.embeds[0, start : start + 3], trainable.soft().detach())
    trainable.loss(task, task.split("train")[:2]).backward()
    assert trainable.prompt.embedding.weight.grad.abs().sum() > 0
    with pytest.raises(LwError, match="placement must be one of prefix, suffix"):
        make_config(METHODS.get("prompt-tuning"), {**common, "placement": "middle"})


def test_probe_selects_c_on_validation(task):
    torch.manual_seed(0)
    y_train = task.labels(task.split("train"))
    signal = torch.randn(1, 16)
    train = {(1, "mean"): torch.randn(len(y_train), 16) + y_train[:, None] * signal}
    y_val = task.labels(task.split("validation"))
    val = {(1, "mean"): torch.randn(len(y_val), 16) + y_val[:, None] * signal}
    (layer, pooling, c), probe, result, tried = select_probe(train, val, task, [1e-4, 1e-2, 1.0, 100.0], 100)
    assert {t["C"] for t in tried} == {1e-4, 1e-2, 1.0, 100.0}
    best = max(t["val_accuracy"] for t in tried)
    assert result.metrics["accuracy"] == best
    assert c in [t["C"] for t in tried if t["val_accuracy"] == best]
    # the regularisation really acts: a tiny C shrinks the weights
    assert fit_probe(train[(1, "mean")], y_train, 2, 1e-4).weight.norm() < fit_probe(train[(1, "mean")], y_train, 2, 100.0).weight.norm()


def test_few_shot_prompt_holds_demos_then_the_input(receiver, task):
    import numpy as np
    from lw_baselines.methods.few_shot import balanced_demos

    demos = balanced_demos(task.split("train"), 2, 2, np.random.default_rng(0))
    prefix = demo_prefix(task, demos, None)
    for demo in demos:
        assert task.prompt(demo) + task.verbalizers[demo.label] + "\n\n" in prefix
    view = dataclasses.replace(task, template=prefix + task.template)
    example = task.split("test")[0]
    assert view.prompt(example) == prefix + task.prompt(example)
    scores = TaskViewScorer(ZeroShotScorer(receiver), view).score(task, [example])
    assert torch.allclose(scores, ZeroShotScorer(receiver).score(view, [example]))


@pytest.mark.parametrize("which", ["sender", "receiver"])
def test_batched_generation_equals_one_at_a_time(which, request):
    lm = request.getfixturevalue(which)
    texts = ["hello there", "a much longer prompt than the first one", "x"]
    assert generate_batch(lm, texts, 5) == lm.generate(texts, max_new_tokens=5)


def test_balanced_demos():
    import numpy as np
    from lw_tasks import Example

    examples = [Example(id=str(i), text=str(i), label=i % 3) for i in range(30)]
    demos = balanced_demos(examples, 7, 3, np.random.default_rng(0))
    counts = [sum(d.label == c for d in demos) for c in range(3)]
    assert len(demos) == 7 and max(counts) - min(counts) <= 1 and len({d.id for d in demos}) == 7
    two = balanced_demos(examples, 2, 3, np.random.default_rng(1))
    assert len({d.label for d in two}) == 2


def test_ensemble_weight_zero_is_the_receiver(sender, receiver, task):
    examples = task.split("test")
    ens = EnsembleScorer(ZeroShotScorer(sender), ZeroShotScorer(receiver), 0.0).score(task, examples)
    alone = torch.log_softmax(ZeroShotScorer(receiver).score(task, examples), -1)
    assert torch.allclose(ens, alone, atol=1e-5)
    assert evaluate(EnsembleScorer(ZeroShotScorer(sender), ZeroShotScorer(receiver), 0.5), task, progress=False)


def test_unknown_method_fails_with_one_line(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["telepathy", "--task", "rt-sentiment"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert err.startswith("error: unknown method 'telepathy'; known: ")
    for name in [*METHODS.names(), "all"]:
        assert name in err


def test_cli_errors_are_one_line(capsys):
    for argv in (["lora", "--task", "no-such-task"], ["all", "--task", "tiny", "--methods", "zero-shot", "nope"], ["text-relay@sender", "--task", "x"]):
        with pytest.raises(SystemExit):
            main(argv)
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and "\n" not in err, err


def test_method_label_names_the_model(common):
    zs = METHODS.get("zero-shot")
    assert method_label(zs, make_config(zs, common)) == "zero-shot"
    assert method_label(zs, make_config(zs, common, "sender")) == "zero-shot@tiny-llama"
    probe = METHODS.get("probe")
    assert method_label(probe, make_config(probe, common)) == "probe"
    assert method_label(probe, make_config(probe, common, "receiver")) == "probe@tiny-gemma3"
    with pytest.raises(LwError, match="both the sender and the receiver"):
        parse_spec("ensemble@sender")


def test_suite_runs_each_method_in_its_own_run(common, task, models, tmp_path):
    results = run_suite(["zero-shot", "token-budget", "probe"], {**common, "budget_tokens": 2, "layer": 1},
                        task=task, models=models, output_dir=tmp_path / "suite")
    assert [r["status"] for r in results] == ["completed"] * 3
    assert sorted(p.name for p in (tmp_path / "suite").iterdir()) == ["probe", "token-budget", "zero-shot"]


def test_a_test_pass_served_by_another_methods_scores_is_charged_their_compute_time(common, task, models, tmp_path):
    before = memo_seconds()
    results = run_suite(["zero-shot", "zero-shot-calibrated"], common, task=task, models=models,
                        output_dir=tmp_path / "suite")
    assert [r["status"] for r in results] == ["completed"] * 2
    assert memo_seconds() > before  # the calibrated run's test prompts came from zero-shot's pass ...
    assert results[1]["seconds_per_example"] > 0  # ... and it reports what they took to compute


def test_registry_rejects_duplicates():
    registry: Registry[Method] = Registry("method")
    registry.add("x", METHODS.get("zero-shot"))
    with pytest.raises(LwError, match="duplicate"):
        registry.add("x", METHODS.get("zero-shot"))


def test_suite_options_reach_the_right_methods():
    from lw_baselines.runner import check_options, method_options

    lora, probe = METHODS.get("lora"), METHODS.get("probe")
    options = ["steps=7", "lora.lr=1e-4,1e-3", "probe.c_grid=0.5", "max_test_examples=none"]
    assert method_options(lora, options) == {"steps": 7, "lr": [1e-4, 1e-3], "max_test_examples": None}
    assert method_options(probe, options) == {"c_grid": [0.5], "max_test_examples": None}
    with pytest.raises(LwError, match="no method has an option"):
        check_options(["stepz=3"])
    with pytest.raises(LwError, match="has no option"):
        method_options(lora, ["lora.c_grid=1"])
    with pytest.raises(LwError, match="unknown method"):
        method_options(lora, ["lroa.steps=1"])


@pytest.mark.parametrize("spec", ["lora", "prompt-tuning"])
def test_methods_that_train_on_answers_train_and_score_by_one_answer_rule(spec, sender, common, task, tmp_path):
    """Answers of several tokens that start with distinct ones: the default rule trains and scores the
    first token alone (what the bridge does); `full` trains and scores every token."""
    merges = tiny_gemma3(word_start_merges=True)
    assert [len(merges.token_ids(v)) for v in task.verbalizers] == [2, 3]
    models = Models(device="cpu", preloaded={"tiny-llama": sender, "tiny-gemma3": merges})
    options = {**common, **FAST, **({"virtual_tokens": 3} if spec == "prompt-tuning" else {})}
    for rule, scored in (("first-token", [1, 1]), ("full", [2, 3])):
        method, _ = parse_spec(spec)
        config = make_config(method, {**options, "answer_rule": rule})
        trainable = (LoraTrainable(merges, config, dora=False) if spec == "lora"
                     else SoftPromptTrainable(merges, config))
        assert [len(a) for a in answer_ids(merges, task, config.answer_rule)] == scored
        examples = task.split("test")[:3]
        expected = ZeroShotScorer(merges, answer_rule=rule).score(task, examples)
        if spec == "lora":  # adapters start at zero: the scorer is the plain model's, by the same rule
            assert torch.allclose(trainable.scorer().score(task, examples), expected, atol=1e-5)
        metrics = run_method(method, config, task=task, models=models)
        assert metrics["answer_rule"] == rule
    with pytest.raises(LwError, match="unknown answer rule"):
        make_config(METHODS.get(spec), {**options, "answer_rule": "last-token"})


def test_the_header_says_what_a_method_reads(common, task, models, caplog):
    """A method that trains nothing does not announce training examples; one that trains does."""
    caplog.set_level(logging.INFO, logger="lw.baselines")
    run_method(METHODS.get("zero-shot"), make_config(METHODS.get("zero-shot"), common), task=task, models=models)
    run_method(METHODS.get("probe"), make_config(METHODS.get("probe"), {**common, "layer": 1}), task=task,
               models=models)
    headers = [r.getMessage() for r in caplog.records if "examples" in r.getMessage() and " on tiny " in r.getMessage()]
    assert headers[0] == "zero-shot on tiny (seed 0): trains nothing; validation 12, test 10 examples", headers
    assert headers[1].endswith("(seed 0): train 24, validation 12, test 10 examples"), headers


def test_the_summary_of_one_method_shows_its_wall_time(monkeypatch, capsys):
    import lw_baselines.cli as cli

    def slow_run(method, config):
        time.sleep(0.3)
        return {"method": method.name, "accuracy": 0.5, "trainable_params": 0, "train_seconds": 0.0}

    monkeypatch.setattr(cli, "run_method", slow_run)
    assert main(["zero-shot", "--task", "rt-sentiment"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if "zero-shot" in line)
    assert re.search(r"\b0\.[3-9]\b", row), row  # the wall time of the run, not 0
