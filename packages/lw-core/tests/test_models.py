import multiprocessing
import os
import time
from pathlib import Path

import pytest
import torch
from lw_core import PRESETS, LwError, models
from lw_core.presets import Preset


def test_unknown_preset_names_the_known_ones():
    with pytest.raises(LwError, match="known presets: gemma3-270m, smollm2-135m"):
        models.resolve_model_source("gpt-17")


def test_missing_folder_is_one_clear_error(tmp_path):
    with pytest.raises(LwError, match=f"no such model folder {tmp_path / 'nope'}; known presets"):
        models.resolve_model_source(str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(LwError, match="no config.json"):
        models.resolve_model_source(str(tmp_path / "empty"))


def test_hub_ids_pass_through():
    assert models.resolve_model_source("HuggingFaceTB/SmolLM2-135M") == "HuggingFaceTB/SmolLM2-135M"


@pytest.mark.parametrize(("value", "ok"), [("fp32", True), ("bf16", True), ("fp16", True), ("fp64", False), ("auto", True)])
def test_dtypes(value, ok):
    if ok:
        models.resolve_dtype(value)
    else:
        with pytest.raises(LwError, match="known: auto, fp32, bf16, fp16"):
            models.resolve_dtype(value)


def test_device_auto_and_unknown():
    assert models.resolve_device("auto").type in ("cpu", "cuda", "mps")
    with pytest.raises(LwError, match="unknown device"):
        models.resolve_device("tpu")


def test_indexed_devices_as_torch_prints_them():
    assert models.resolve_device("cpu:0") == torch.device("cpu", 0)
    for bad in ("cpu:", "cpu:x", "tpu:0"):
        with pytest.raises(LwError, match="unknown device"):
            models.resolve_device(bad)


def _fake_convert(gguf: Path, dest: Path) -> None:
    with open(gguf.parent.parent / "calls.log", "a") as log:  # scratch is cache/models/.tmp-*/, log in cache/
        log.write("convert\n")
    time.sleep(0.5)
    dest.mkdir(parents=True)
    (dest / "config.json").write_text("{}")


def _fake_gguf(scratch: Path) -> Path:
    path = scratch / "model.gguf"
    path.write_text("gguf")
    return path


def _register(name: str) -> None:
    """Add a fake preset for good: only in a forked child, which exits."""
    if name not in PRESETS:
        PRESETS.add(name, Preset(name, "test preset", "none", "none", _fake_gguf))


@pytest.fixture
def fake_preset(monkeypatch):
    """Register fake presets for one test; the global registry is restored afterwards (other packages'
    tests read it: an unknown --sender must stay unknown)."""

    def register(name: str) -> None:
        monkeypatch.setitem(PRESETS._items, name, Preset(name, "test preset", "none", "none", _fake_gguf))

    return register


def _convert_in_child(cache: str, name: str) -> None:
    import os

    os.environ["LW_CACHE"] = cache
    _register(name)
    models._convert_gguf = _fake_convert
    models.preset_folder(name)


def test_conversion_is_atomic_and_runs_once_under_concurrency(tmp_path, monkeypatch):
    monkeypatch.setenv("LW_CACHE", str(tmp_path))
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_convert_in_child, args=(str(tmp_path), "fake-a")) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    folder = tmp_path / "models" / "fake-a"
    assert (folder / "config.json").is_file()
    assert (tmp_path / "models" / "calls.log").read_text().count("convert") == 1
    assert not list((tmp_path / "models").glob(".fake-a.tmp-*"))


def test_prepare_presets_converts_the_missing_ones_at_once(tmp_path, monkeypatch, fake_preset):
    monkeypatch.setenv("LW_CACHE", str(tmp_path))
    for name in ("fake-c", "fake-d"):
        fake_preset(name)

    def convert_recording_pid(gguf: Path, dest: Path) -> None:
        with open(gguf.parent.parent / "pids.log", "a") as log:
            log.write(f"{os.getpid()}\n")
        _fake_convert(gguf, dest)

    monkeypatch.setattr(models, "_convert_gguf", convert_recording_pid)
    monkeypatch.setattr(models, "_PROCESS_START", "fork")
    models.prepare_presets(["fake-c", "fake-d", "fake-c", "some-org/not-a-preset"])
    assert all((tmp_path / "models" / n / "config.json").is_file() for n in ("fake-c", "fake-d"))
    pids = (tmp_path / "models" / "pids.log").read_text().split()
    assert len(pids) == len(set(pids)) == 2 and str(os.getpid()) not in pids  # one worker process each
    models.prepare_presets(["fake-c", "fake-d"])  # converted: nothing to do
    assert len((tmp_path / "models" / "pids.log").read_text().split()) == 2


def test_background_conversion_hands_its_thread_back(tmp_path, monkeypatch, fake_preset):
    import torch

    monkeypatch.setenv("LW_CACHE", str(tmp_path))
    fake_preset("fake-e")
    monkeypatch.setattr(models, "_convert_gguf", _fake_convert)
    monkeypatch.setattr(models, "_PROCESS_START", "fork")
    threads = torch.get_num_threads()
    with models.BackgroundConversion(["fake-e", "some-org/not-a-preset"]) as conversion:
        assert torch.get_num_threads() == max(1, threads - 1)
        conversion.wait()
        assert conversion.poll() and torch.get_num_threads() == threads
    assert (tmp_path / "models" / "fake-e" / "config.json").is_file()
    with models.BackgroundConversion(["fake-e"]) as nothing_to_do:  # converted: no process, no thread taken
        assert nothing_to_do.poll() and torch.get_num_threads() == threads


def test_crash_mid_conversion_leaves_no_folder(tmp_path, monkeypatch, fake_preset):
    monkeypatch.setenv("LW_CACHE", str(tmp_path))
    fake_preset("fake-b")

    def crash(gguf, dest):
        dest.mkdir(parents=True)
        (dest / "config.json").write_text("{}")
        raise RuntimeError("killed")

    monkeypatch.setattr(models, "_convert_gguf", crash)
    with pytest.raises(RuntimeError):
        models.preset_folder("fake-b")
    assert not (tmp_path / "models" / "fake-b").exists()
    assert not list((tmp_path / "models").glob(".fake-b.tmp-*"))
    monkeypatch.setattr(models, "_convert_gguf", lambda g, d: (d.mkdir(parents=True), (d / "config.json").write_text("{}")))
    assert (models.preset_folder("fake-b") / "config.json").is_file()


@pytest.mark.parametrize("linked", [False, True])
def test_an_older_layout_is_reconverted_in_place(tmp_path, monkeypatch, linked, fake_preset):
    """A folder (or a link to one) without the current completion marker is converted anew."""
    monkeypatch.setenv("LW_CACHE", str(tmp_path / "cache"))
    fake_preset("fake-f")
    monkeypatch.setattr(models, "_convert_gguf", _fake_convert)
    old = tmp_path / "old"
    old.mkdir()
    (old / ".lw-complete").write_text("v1")
    dest = tmp_path / "cache" / "models" / "fake-f"
    dest.parent.mkdir(parents=True)
    if linked:
        dest.symlink_to(old)
    else:
        old.rename(dest)
    folder = models.preset_folder("fake-f")
    assert folder == dest and not folder.is_symlink() and (folder / models._COMPLETE_MARKER).is_file()
    assert old.is_dir() == linked  # a linked target is left alone


def test_cuda_loads_eager_attention_cpu_keeps_the_default():
    import torch

    assert models.attention_implementation(torch.device("cuda", 0)) == "eager"
    assert models.attention_implementation(torch.device("cpu")) is None
