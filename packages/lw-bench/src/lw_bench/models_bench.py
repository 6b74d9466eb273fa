"""Model benchmarks: preset conversion and load times, and answer scoring with only the needed LM-head rows."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import torch
from lw_core import FrozenLM
from lw_core.models import cache_dir, preset_folder

from lw_bench.timing import time_call


def bench_load(presets: list[str], *, cold: bool) -> list[dict]:
    """Cold: convert each preset into a fresh temporary cache. Warm: load from the existing cache."""
    rows = []
    for name in presets:
        scratch = tempfile.mkdtemp(prefix="lw-bench-cache-") if cold else None
        previous = os.environ.get("LW_CACHE")
        try:
            if scratch:
                os.environ["LW_CACHE"] = scratch
            else:
                preset_folder(name)  # make sure the warm measurement does not include a conversion
            start = time.perf_counter()
            if scratch:
                preset_folder(name)
            convert_s = time.perf_counter() - start
            start = time.perf_counter()
            FrozenLM.load(name, device="cpu")
            load_s = time.perf_counter() - start
        finally:
            if scratch:
                shutil.rmtree(scratch, ignore_errors=True)
                if previous is None:
                    os.environ.pop("LW_CACHE", None)
                else:
                    os.environ["LW_CACHE"] = previous
        rows.append({"model": name, "mode": "cold" if cold else "warm", "convert_s": round(convert_s, 2),
                     "load_s": round(load_s, 2), "cache": str(Path(scratch) if scratch else cache_dir())})
    return rows


def bench_scoring(lm: FrozenLM, *, batch: int, prompt_words: int, answers: list[str], repeats: int) -> dict:
    """`score_answers` (prefix once, LM head on answer positions only) against the naive reference
    (a full forward with full-vocabulary logits at every position, once per answer)."""
    text = " ".join(["the film was a quiet, patient and often beautiful study of grief"] * (prompt_words // 12 + 1))
    prefix = lm.embed_texts([" ".join(text.split()[:prompt_words]) + "\nSentiment:"] * batch)
    answer_ids = [lm.token_ids(a) for a in answers]
    with torch.no_grad():
        fast = time_call(lambda: lm.score_answers(prefix, answer_ids), repeats=repeats)
        full = time_call(lambda: lm.score_answers_full(prefix, answer_ids), repeats=repeats)
        diff = (lm.score_answers(prefix, answer_ids).logprobs - lm.score_answers_full(prefix, answer_ids).logprobs).abs().max()
    return {
        "model": lm.name,
        "batch": batch,
        "prefix_tokens": int(prefix.lengths[0]),
        "answers": len(answers),
        "answer_tokens": [len(a) for a in answer_ids],
        "needed_rows_s": round(fast["median_s"], 4),
        "full_logits_s": round(full["median_s"], 4),
        "speedup": round(full["median_s"] / fast["median_s"], 2),
        "max_abs_diff": float(diff),
    }
