"""Resolve a model name (embedded preset, local folder or hub id) to a loaded, frozen transformers model.

An embedded preset is converted once from its GGUF into a plain HF folder (safetensors) under
`$LW_CACHE/models/<preset>`; the conversion is atomic (built in a temporary folder, then renamed)
and serialised by a file lock, so concurrent first uses convert once and a crash leaves no half folder.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import multiprocessing
import os
import shutil
import tempfile
import time
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch
from lw_registry.files import locked

from lw_core.errors import LwError, not_a_folder
from lw_core.presets import PRESETS

log = logging.getLogger("lw.models")

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
DTYPE_CHOICES = ("auto", *DTYPES)
DEVICES = ("auto", "cpu", "cuda", "mps")
_COMPLETE_MARKER = ".lw-complete-v2"  # v2: no quantization_config left in config.json
_PROCESS_START = "spawn"  # a fresh interpreter per conversion; tests use "fork" to keep their fakes


def cache_dir() -> Path:
    """`$LW_CACHE`, default `$XDG_CACHE_HOME/lw` (or `~/.cache/lw`)."""
    if "LW_CACHE" in os.environ:
        path = Path(os.environ["LW_CACHE"]).expanduser()
    else:
        path = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lw"
    blocked = not_a_folder(path)
    if blocked:
        raise LwError(f"cannot use the cache folder {path}: {blocked}")
    return path


def _fast_bf16(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":  # native bf16 matmuls (AVX512-BF16 or AMX); emulated bf16 would be slower
        return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    return False


def resolve_dtype(dtype: str | torch.dtype, device: str | torch.device = "cpu") -> torch.dtype:
    """`auto` is bf16 where the hardware computes it natively (recent CPUs, most GPUs), else fp32."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        return torch.bfloat16 if _fast_bf16(resolve_device(device)) else torch.float32
    if dtype not in DTYPES:
        raise LwError(f"unknown dtype {dtype!r}; known: {', '.join(DTYPE_CHOICES)}")
    return DTYPES[dtype]


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    if isinstance(device, torch.device):
        return device
    kind, _, index = device.partition(":")  # an indexed device (cpu:0, cuda:1) as torch.device prints it
    if device not in DEVICES and not (kind in DEVICES[1:] and index.isdigit()):
        raise LwError(f"unknown device {device!r}; known: {', '.join(DEVICES)} (or TYPE:INDEX, e.g. cuda:1)")
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise LwError(f"device {device!r} requested but CUDA is not available; use --device cpu")
    return torch.device(device)


def _convert_gguf(gguf: Path, dest: Path) -> None:
    """GGUF → HF folder: transformers dequantizes it; its weights are copied into a model built from its
    config (a GGUF-loaded model refuses `save_pretrained`) and saved as safetensors. The config loses
    its GGUF `quantization_config`: left in, every later load would go through transformers' GGUF
    quantizer, which looks for the GGUF file (absent from the folder) once the `kernels` package is
    installed."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = copy.deepcopy(loaded.config)
    config.__dict__.pop("quantization_config", None)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict(), strict=False)
    model.tie_weights()
    model.save_pretrained(dest)
    tokenizer.save_pretrained(dest)


def is_prepared(folder: Path) -> bool:
    """True if `folder` is a complete converted preset folder."""
    return (folder / _COMPLETE_MARKER).exists()


def preset_folder(name: str, root: Path | None = None) -> Path:
    """The converted HF folder of an embedded preset, `<root>/<name>` (default root: `$LW_CACHE/models`),
    converting it on first use."""
    preset = PRESETS.get(name)
    root = cache_dir() / "models" if root is None else Path(root)
    dest = root / name
    if (dest / _COMPLETE_MARKER).exists():
        return dest
    with locked(root / f".{name}.lock"):
        if (dest / _COMPLETE_MARKER).exists():  # another process converted it while we waited
            return dest
        log.warning("converting embedded model %s (GGUF → %s); first use only, about a minute", name, dest)
        start = time.perf_counter()
        dest.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{name}.tmp-"))
        try:
            out = work / "hf"
            _convert_gguf(preset.locate_gguf(work), out)
            (out / _COMPLETE_MARKER).write_text(f"converted in {time.perf_counter() - start:.1f}s\n")
            if dest.is_symlink():  # a link the user put there: replace the link, keep what it points to
                dest.unlink()
            elif dest.exists():  # a folder without the marker is a leftover from an older layout
                shutil.rmtree(dest)
            os.replace(out, dest)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        log.warning("converted %s in %.1fs", name, time.perf_counter() - start)
    return dest


def _unconverted(names: Iterable[str]) -> list[str]:
    """The embedded presets among `names` with no converted folder yet (each once, sorted)."""
    return sorted({n for n in names if n in PRESETS and not (cache_dir() / "models" / n / _COMPLETE_MARKER).exists()})


def _convert_in_worker(name: str, threads: int) -> str:
    torch.set_num_threads(threads)
    return str(preset_folder(name))


def prepare_presets(names: Iterable[str]) -> None:
    """Convert the embedded presets among `names` that are not converted yet, each in its own process at
    once: a conversion is mostly single-threaded, so a cold start waits for the largest one only."""
    todo = _unconverted(names)
    if len(todo) < 2:
        for name in todo:
            preset_folder(name)
        return
    threads = max(1, (os.cpu_count() or 1) // len(todo))
    with ProcessPoolExecutor(len(todo), mp_context=multiprocessing.get_context(_PROCESS_START)) as pool:
        for future in [pool.submit(_convert_in_worker, name, threads) for name in todo]:
            future.result()


class BackgroundConversion:
    """Converts the presets among `names` not converted yet in another process, while this one works with
    one torch thread fewer (the conversion is mostly single-threaded); `poll()` gives the thread back as
    soon as it is done, `wait()` joins it. A cold start then overlaps the receiver's conversion with the
    sender's work instead of queueing them."""

    def __init__(self, names: Iterable[str]):
        todo = _unconverted(names)
        self._threads = torch.get_num_threads()
        self._pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context(_PROCESS_START)) if todo else None
        self._futures = [self._pool.submit(_convert_in_worker, name, 1) for name in todo] if todo else []
        if todo:
            torch.set_num_threads(max(1, self._threads - 1))

    def poll(self) -> bool:
        """True once every conversion has finished (their errors are raised here)."""
        if not all(f.done() for f in self._futures):
            return False
        self.wait()
        return True

    def wait(self) -> None:
        try:
            for future in self._futures:
                future.result()
        finally:
            self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
            torch.set_num_threads(self._threads)

    def __enter__(self) -> BackgroundConversion:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def model_tag(name_or_path: str) -> str:
    """A file-name-safe tag for a model name (a preset, hub id or folder path): its last component."""
    return Path(name_or_path.rstrip("/")).name


def check_model_names(*names_or_paths: str) -> None:
    """Fail (one line, naming the presets) unless each is a preset, a model folder or a hub id; converts nothing."""
    presets = set(PRESETS.names())
    for name_or_path in names_or_paths:
        if name_or_path not in presets:
            _non_preset_source(name_or_path)


def resolve_model_source(name_or_path: str) -> str:
    """A preset name → its converted folder; an existing folder → itself; `org/name` → a hub id."""
    if name_or_path in PRESETS:
        return str(preset_folder(name_or_path))
    return _non_preset_source(name_or_path)


def _non_preset_source(name_or_path: str) -> str:
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise LwError(f"model folder {path} has no config.json; known presets: {', '.join(PRESETS.names())}")
        return str(path)
    presets = f"known presets: {', '.join(PRESETS.names())}"
    # `models/x` beside a local `models/` folder is a folder path, not the hub id of an org `models`
    if name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") > 1 or (
            name_or_path.count("/") == 1 and path.parent.is_dir()):
        raise LwError(f"no such model folder {path.absolute()}; {presets}")
    if name_or_path.count("/") != 1:
        raise LwError(f"unknown model {name_or_path!r}: not a preset, a model folder or a hub id (org/name); {presets}")
    return name_or_path


@contextlib.contextmanager
def transformers_progress(enabled: bool):
    """Show transformers' own progress bars (loading weights, ...) inside this block only if `enabled`."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    if enabled:
        hf_logging.enable_progress_bar()
    else:
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()
        else:
            hf_logging.disable_progress_bar()


def attention_implementation(device: torch.device) -> str | None:
    """The attention kernel to load a model with on `device` (None: transformers' default, SDPA).

    On CUDA, SDPA's memory-efficient kernel returns wrong outputs, silently, for a masked (padded)
    batch whose key length is 1 mod 32 when key/value heads are shared (GQA; pytorch/pytorch#191937).
    Seen here on an H100: gemma3-270m scored every example of such a batch as if it had no input, 3%
    of a test split. Eager attention is plain matmuls and correct on every width."""
    return "eager" if device.type == "cuda" else None


def load_causal_lm(name_or_path: str, *, dtype: str | torch.dtype = "auto", device: str | torch.device = "auto"):
    """Load (model, tokenizer) frozen in eval mode on `device`."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = resolve_model_source(name_or_path)
    torch_device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, torch_device)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = AutoModelForCausalLM.from_pretrained(
            source, dtype=torch_dtype, attn_implementation=attention_implementation(torch_device)
        )
    except OSError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise LwError(
            f"could not load model {name_or_path!r} ({first}); known presets: {', '.join(PRESETS.names())}"
        ) from None
    model.to(torch_device).eval()
    model.requires_grad_(False)
    return model, tokenizer
