"""A saved bridge used the way another project would: explicit model sources, checked against the models
it was trained with, normalised scores, quiet calls."""

import shutil

import pytest
import torch
from lw_bridge import BridgePipeline, trainer
from lw_bridge.config import TrainConfig
from lw_core import LwError
from lw_core.testing import tiny_gemma3, tiny_llama

TEXTS = ["review 1: the film was great overall", "review 2: the film was dull overall", "a brilliant, charming one"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, model_dirs, toy_task_file):
    root = tmp_path_factory.mktemp("pipeline")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LW_CACHE", str(root / "cache"))
        patch.setenv("LW_RUNS", str(root / "runs"))
        trainer.train(TrainConfig(
            task=toy_task_file, sender=model_dirs["sender"], receivers=[model_dirs["receiver"]], layer=2, steps=6,
            batch_size=8, eval_every=6, lr=3e-3, d_model=32, depth=1, heads=2, num_latents=4, num_soft_tokens=4,
            d_z=8, device="cpu", output_dir=str(root / "run"), max_validation_examples=16, compare_zero_shot=False,
            wire_formats=[]))
    return root / "run"


def _save(lm, path):
    lm.model.save_pretrained(path)
    lm.tokenizer.save_pretrained(path)
    return str(path)


def test_the_checkpoint_records_what_it_was_trained_with(run_dir, model_dirs):
    pipe = BridgePipeline.from_pretrained(run_dir, device="cpu")
    fingerprints = pipe.bridge.config.fingerprints
    assert set(fingerprints) == {model_dirs["sender"], model_dirs["receiver"]}
    assert fingerprints[model_dirs["receiver"]]["hidden_size"] == 48
    assert fingerprints[model_dirs["sender"]]["vocab_size"] == pipe.sender.vocab_size


def test_explicit_model_folders_give_the_same_predictions(run_dir, model_dirs, tmp_path):
    reference = BridgePipeline.from_pretrained(run_dir, device="cpu")
    sender = shutil.copytree(model_dirs["sender"], tmp_path / "my-sender")
    receiver = shutil.copytree(model_dirs["receiver"], tmp_path / "my-receiver")
    for receivers in ([str(receiver)], str(receiver), {model_dirs["receiver"]: receiver}):
        pipe = BridgePipeline.from_pretrained(run_dir / "bridge", sender=sender, receivers=receivers, device="cpu")
        assert pipe.predict(TEXTS) == reference.predict(TEXTS)
        assert torch.equal(pipe.scores(TEXTS), reference.scores(TEXTS))


def test_scores_are_log_probabilities_over_the_answer_set(run_dir):
    pipe = BridgePipeline.from_pretrained(run_dir, device="cpu")
    scores, raw = pipe.scores(TEXTS), pipe.scores(TEXTS, normalize=False)
    assert scores.shape == (len(TEXTS), len(pipe.answers)) and pipe.answers == ["negative", "positive"]
    assert torch.allclose(scores.exp().sum(dim=-1), torch.ones(len(TEXTS)), atol=1e-5)
    assert (raw.exp().sum(dim=-1) < 1).all()  # the receiver also gives mass to every other token
    assert torch.allclose(scores, raw.log_softmax(dim=-1))
    assert pipe.predict(TEXTS) == [pipe.answers[i] for i in scores.argmax(dim=-1).tolist()]


def test_library_calls_are_quiet(run_dir, capfd):
    capfd.readouterr()
    pipe = BridgePipeline.from_pretrained(run_dir, device="cpu")
    pipe.predict(TEXTS)
    pipe.scores(TEXTS)
    out, err = capfd.readouterr()
    assert out == "" and err == ""


@pytest.mark.parametrize(
    ("factory", "message"),
    [
        (lambda: tiny_gemma3(seed=7), "its embedding weights differ"),  # same architecture, other weights
        (tiny_llama, "hidden size 32 where it was trained with 48"),
    ],
)
def test_a_wrong_receiver_fails_in_one_line_naming_the_mismatch(run_dir, model_dirs, tmp_path, factory, message):
    wrong = _save(factory(), tmp_path / "wrong")
    with pytest.raises(LwError) as info:
        BridgePipeline.from_pretrained(run_dir, receivers=[wrong], device="cpu")
    text = str(info.value)
    assert "\n" not in text and message in text
    assert text.startswith(f"receiver {wrong!r} is not the model this bridge's receiver {model_dirs['receiver']!r}")


def test_a_wrong_sender_and_bad_receiver_lists_are_one_line_errors(run_dir, model_dirs, tmp_path):
    other_sender = _save(tiny_llama(seed=5), tmp_path / "other-sender")
    with pytest.raises(LwError, match="^sender .* its embedding weights differ"):
        BridgePipeline.from_pretrained(run_dir, sender=other_sender, device="cpu")
    with pytest.raises(LwError, match=r"bridge has 1 receiver\(s\) .*, 2 given"):
        BridgePipeline.from_pretrained(run_dir, receivers=[model_dirs["receiver"]] * 2, device="cpu")
    with pytest.raises(LwError, match="bridge has no receiver 'gemma3-270m'"):
        BridgePipeline.from_pretrained(run_dir, receivers={"gemma3-270m": model_dirs["receiver"]}, device="cpu")
    with pytest.raises(LwError, match="no such model folder .*missing"):
        BridgePipeline.from_pretrained(run_dir, receivers=[str(tmp_path / "missing")], device="cpu")


def test_a_checkpoint_from_before_fingerprints_still_loads_and_checks_widths(run_dir, model_dirs, tmp_path):
    import json

    old = shutil.copytree(run_dir / "bridge", tmp_path / "old-bridge")
    config = json.loads((old / "bridge_config.json").read_text())
    del config["fingerprints"]
    (old / "bridge_config.json").write_text(json.dumps(config))
    pipe = BridgePipeline.from_pretrained(old, device="cpu")
    assert pipe.bridge.config.fingerprints == {}
    assert pipe.predict(TEXTS) == BridgePipeline.from_pretrained(run_dir, device="cpu").predict(TEXTS)
    with pytest.raises(LwError, match="hidden size 32 where it was trained with 48"):
        BridgePipeline.from_pretrained(old, receivers=[_save(tiny_llama(), tmp_path / "llama")], device="cpu")
