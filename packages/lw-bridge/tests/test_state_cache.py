import pytest
import torch
from lw_bridge import state_cache
from lw_bridge.state_cache import (
    cached_layer_states,
    cached_states,
    compute_layer_states,
    compute_states,
    states_key,
)
from lw_core.errors import cli_errors
from lw_core.testing import tiny_gemma3, tiny_llama


@pytest.fixture(scope="module", params=["tiny-llama", "tiny-gemma3"])
def lm(request):
    return {"tiny-llama": tiny_llama, "tiny-gemma3": tiny_gemma3}[request.param]()


def test_cached_states_match_computed_and_are_reused(lm, tmp_path, monkeypatch):
    monkeypatch.setenv("LW_CACHE", str(tmp_path))
    texts = ["hello there", "a", "something longer than the others"]
    first = cached_states(lm, texts, 2, identity="toy-train")
    direct = compute_states(lm, texts, 2)
    assert [s.shape[0] for s in first] == [len(lm.tokenize([t])[0][0]) for t in texts]
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(first, direct, strict=True))
    files = list((tmp_path / "states").glob("*.safetensors"))
    assert len(files) == 1
    again = cached_states(lm, texts, 2, identity="toy-train")
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    files[0].write_bytes(b"corrupt")  # a damaged cache file is recomputed, not trusted
    assert all(torch.allclose(a, b) for a, b in zip(cached_states(lm, texts, 2, identity="toy-train"), first, strict=True))


def test_key_changes_with_anything_that_changes_the_states():
    base = states_key("m", 15, "t-train", ["a", "b"], None, "torch.float32")
    assert base != states_key("m", 14, "t-train", ["a", "b"], None, "torch.float32")
    assert base != states_key("m", 15, "t-train", ["a", "c"], None, "torch.float32")
    assert base != states_key("m", 15, "t-train", ["a", "b"], 64, "torch.float32")
    assert base != states_key("m", 15, "t-train", ["a", "b"], None, "torch.bfloat16")


def test_after_batch_runs_once_per_sender_batch(lm, tmp_path, monkeypatch):
    monkeypatch.setenv("LW_CACHE", str(tmp_path))
    calls = []
    texts = [f"text {i}" for i in range(5)]
    cached_states(lm, texts, 2, identity="t-train", batch_size=2, after_batch=lambda: calls.append(1))
    assert len(calls) == 3
    cached_states(lm, texts, 2, identity="t-train", batch_size=2, after_batch=lambda: calls.append(1))
    assert len(calls) == 3  # read from the cache: no sender batch


def test_several_layers_in_one_pass_equal_one_layer_at_a_time(lm, tmp_path, monkeypatch):
    monkeypatch.setenv("LW_CACHE", str(tmp_path))
    texts = ["hello there", "a", "something longer than the others"]
    cached_states(lm, texts, 2, identity="toy-train")  # layer 2 cached already: only 1 and -1 are computed
    calls = []
    per_layer = cached_layer_states(lm, texts, [1, 2, -1], identity="toy-train", batch_size=2,
                                    after_batch=lambda: calls.append(1))
    assert len(calls) == 2  # one pass over the texts for both missing layers
    for layer, states in zip([1, 2, -1], per_layer, strict=True):
        direct = compute_states(lm, texts, layer)
        assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(states, direct, strict=True)), layer
    assert len(list((tmp_path / "states").glob("*.safetensors"))) == 3  # each layer in its own file
    again = cached_layer_states(lm, texts, [1, 2, -1], identity="toy-train",
                                after_batch=lambda: calls.append(1))
    assert len(calls) == 2 and all(torch.equal(a, b) for a, b in zip(again[0], per_layer[0], strict=True))
    direct = compute_layer_states(lm, texts, [0, 3])
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(direct[1], compute_states(lm, texts, 3), strict=True))


def test_a_disk_filling_while_caching_sender_states_leaves_no_half_file(tmp_path, monkeypatch, capsys):
    """A full disk mid-write is one `error:` line naming the folder, and no half-written file stays."""
    full = "No space left on device"

    def full_disk(*args, **kwargs):
        raise Exception(f"Error while serializing: I/O error: {full} (os error 28)")  # safetensors' own type

    monkeypatch.setattr("safetensors.torch.save_file", full_disk)
    with pytest.raises(SystemExit) as stopped:
        cli_errors(lambda: state_cache._save(tmp_path / "states" / "x.safetensors", [torch.ones(2, 3)]))()
    err = capsys.readouterr().err
    assert stopped.value.code != 0 and err.count("\n") == 1, err
    assert err.startswith(f"error: cannot write {tmp_path / 'states'}/") and err.strip().endswith(full)
    assert list((tmp_path / "states").iterdir()) == []
