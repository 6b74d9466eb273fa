"""The receiver as a GGUF file for llama.cpp: a file the user names, or one derived once from the GGUF an
embedded preset ships (the file lw-core's converted HF folder was dequantised from) at a chosen precision,
cached under `$LW_CACHE/gguf/`."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

from lw_core import LwError
from lw_core.models import cache_dir
from lw_core.presets import PRESETS
from lw_registry.files import locked

log = logging.getLogger(__name__)

PRECISIONS = ("f32", "f16", "q8_0", "q4_0", "shipped")
"""`f32`: the shipped weights dequantised, exactly what the HF receiver holds; `shipped`: the preset's file
as it is (gemma3-270m: Q4_K_M); the others requantised from the shipped weights."""


def _ftype(precision: str) -> int:
    import llama_cpp

    return {"f32": llama_cpp.LLAMA_FTYPE_ALL_F32, "f16": llama_cpp.LLAMA_FTYPE_MOSTLY_F16,
            "q8_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0, "q4_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_0}[precision]


def requantize(source: Path, dest: Path, precision: str, threads: int = 0) -> None:
    """Write `source` at `precision` to `dest` with llama.cpp's quantiser (dequantising quantised tensors
    first: `f32` is the plain dequantisation)."""
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = _ftype(precision)
    params.allow_requantize = True
    params.nthread = threads
    code = llama_cpp.llama_model_quantize(os.fsencode(source), os.fsencode(dest), params)
    if code != 0:
        raise LwError(f"llama.cpp could not write {source} at {precision} to {dest} (code {code})")


def receiver_gguf(model: str, precision: str = "f32", gguf: str | os.PathLike | None = None) -> Path:
    """The GGUF llama.cpp loads for receiver `model` (a preset name unless `gguf` names the file)."""
    if gguf is not None:
        path = Path(gguf).expanduser()
        if not path.is_file():
            raise LwError(f"--gguf {path}: no such file")
        return path
    if precision not in PRECISIONS:
        raise LwError(f"unknown GGUF precision {precision!r}; known: {', '.join(PRECISIONS)}")
    if model not in PRESETS:
        raise LwError(f"receiver {model!r} is not an embedded preset: give its GGUF file with --gguf")
    root = cache_dir() / "gguf"
    dest = root / f"{model}-{precision}.gguf"
    if dest.is_file():
        return dest
    root.mkdir(parents=True, exist_ok=True)
    with locked(root / f".{model}-{precision}.lock"):
        if dest.is_file():
            return dest
        start = time.perf_counter()
        work = Path(tempfile.mkdtemp(dir=root, prefix=f".{model}.tmp-"))
        try:
            shipped = PRESETS.get(model).locate_gguf(work)
            if precision == "shipped":
                shutil.copyfile(shipped, work / dest.name)
            else:
                requantize(shipped, work / dest.name, precision)
            os.replace(work / dest.name, dest)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        log.warning("wrote %s in %.1fs", dest, time.perf_counter() - start)
    return dest
