"""Which GGUF the llama-cpp backend loads, and its one-line errors (none of this needs llama.cpp)."""

import sys

import pytest
from lw_core import LwError
from lw_core.testing import tiny_gemma3
from lw_serve.backends import build_backend
from lw_serve.receiver_gguf import receiver_gguf


def test_a_named_file_is_used_as_it_is(tmp_path):
    path = tmp_path / "model.gguf"
    path.write_bytes(b"GGUF")
    assert receiver_gguf("anything", "f32", path) == path
    with pytest.raises(LwError, match=r"^--gguf .*missing\.gguf: no such file$"):
        receiver_gguf("gemma3-270m", "f32", tmp_path / "missing.gguf")


def test_a_preset_gguf_is_derived_once_into_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LW_CACHE", str(tmp_path))
    cached = tmp_path / "gguf" / "gemma3-270m-q8_0.gguf"
    cached.parent.mkdir()
    cached.write_bytes(b"GGUF")
    assert receiver_gguf("gemma3-270m", "q8_0") == cached  # already there: nothing derived


def test_a_receiver_that_is_no_preset_and_an_unknown_precision_are_one_line_errors():
    with pytest.raises(LwError, match=r"receiver '/some/folder' is not an embedded preset: give its GGUF file with --gguf"):
        receiver_gguf("/some/folder", "f32")
    with pytest.raises(LwError, match=r"unknown GGUF precision 'q2'; known: f32, f16, q8_0, q4_0, shipped"):
        receiver_gguf("gemma3-270m", "q2")


def test_the_backend_without_llama_cpp_python_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # import fails as if it were not installed
    with pytest.raises(LwError, match=r"needs llama-cpp-python: install lw-serve\[llama-cpp\]"):
        build_backend("llama-cpp", tiny_gemma3())
