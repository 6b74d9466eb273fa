"""Sender hidden states computed once and cached on disk (the sender is frozen).

Keyed by model, dtype, layer, a caller-given identity (task, split, truncation) and a fingerprint of the
texts themselves, so a changed split never reuses stale states. Stored as one safetensors file of
concatenated states plus offsets (variable-length sequences, no padding), written atomically.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from lw_core.errors import LwError
from lw_core.lm import FrozenLM
from lw_core.models import cache_dir
from lw_core.storage import save_tensors
from safetensors import SafetensorError
from safetensors.torch import load_file
from tqdm.auto import tqdm

log = logging.getLogger("lw.states")


def states_key(lm_name: str, layer: int, identity: str, texts: Sequence[str], max_tokens: int | None,
               dtype: str = "") -> str:
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode())
        digest.update(b"\0")
    payload = json.dumps([lm_name, layer, identity, max_tokens, dtype, digest.hexdigest()])
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)[:60]


def compute_states(
    lm: FrozenLM, texts: Sequence[str], layer: int, *, batch_size: int = 16, max_tokens: int | None = None,
    desc: str = "sender states", after_batch: Callable[[], object] | None = None, progress: bool = True,
) -> list[torch.Tensor]:
    """Hidden states at `layer` for each text, unpadded: a list of [n_tokens_i, hidden] float32 tensors.
    `after_batch` is called after every batch (e.g. to take back a CPU thread lent to other work);
    `progress=False` hides the progress bar (library calls)."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # length-sorted batches pad less
    out: list[torch.Tensor | None] = [None] * len(texts)
    with torch.no_grad():
        for start in tqdm(range(0, len(order), batch_size), desc=desc, leave=False, disable=not progress):
            idx = order[start : start + batch_size]
            states = lm.hidden_states([texts[i] for i in idx], layer, max_tokens=max_tokens)
            for row, i in enumerate(idx):
                out[i] = states.embeds[row, : int(states.mask[row].sum())].float().cpu()
            if after_batch is not None:
                after_batch()
    return out  # type: ignore[return-value]


def compute_layer_states(
    lm: FrozenLM, texts: Sequence[str], layers: Sequence[int], *, batch_size: int = 16, max_tokens: int | None = None,
    desc: str = "sender states", after_batch: Callable[[], object] | None = None, progress: bool = True,
) -> list[list[torch.Tensor]]:
    """`compute_states` for several layers in one forward pass per batch: per layer, the list of
    [n_tokens_i, hidden] tensors (the same values one `compute_states` call per layer gives)."""
    if len(layers) == 1:
        return [compute_states(lm, texts, layers[0], batch_size=batch_size, max_tokens=max_tokens, desc=desc,
                               after_batch=after_batch, progress=progress)]
    n = lm.num_layers
    for layer in layers:
        if not -(n + 1) <= layer <= n:
            raise LwError(f"layer {layer} out of range for {lm.name} ({n} layers: -{n + 1}..{n})")
    indices = [layer % (n + 1) for layer in layers]
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out: list[list[torch.Tensor | None]] = [[None] * len(texts) for _ in layers]
    with torch.no_grad():
        for start in tqdm(range(0, len(order), batch_size), desc=desc, leave=False, disable=not progress):
            idx = order[start : start + batch_size]
            inputs = lm.embed_texts([texts[i] for i in idx], max_tokens)
            hidden = lm.model.base_model(inputs_embeds=inputs.embeds, attention_mask=inputs.mask,
                                         output_hidden_states=True, use_cache=False).hidden_states
            lengths = inputs.mask.sum(1).tolist()
            for slot, index in enumerate(indices):
                states = inputs.embeds if index == 0 else hidden[index]
                for row, i in enumerate(idx):
                    out[slot][i] = states[row, : int(lengths[row])].float().cpu()
            if after_batch is not None:
                after_batch()
    return out  # type: ignore[return-value]


def _cache_path(lm: FrozenLM, layer: int, identity: str, texts: Sequence[str], max_tokens: int | None) -> Path:
    key = states_key(lm.name, layer, identity, texts, max_tokens, str(lm.dtype))
    return cache_dir() / "states" / f"{_slug(lm.name)}-L{layer}-{_slug(identity)}-{key}.safetensors"


def _load(path: Path) -> list[torch.Tensor] | None:
    if not path.is_file():
        return None
    try:
        data = load_file(path)
        flat, offsets = data["states"], data["offsets"].tolist()
        return [flat[offsets[i] : offsets[i + 1]] for i in range(len(offsets) - 1)]
    except (SafetensorError, KeyError, OSError) as err:
        log.warning("ignoring unreadable state cache %s (%s); recomputing", path, err)
        return None


def _save(path: Path, states: list[torch.Tensor]) -> None:
    offsets = [0]
    for s in states:
        offsets.append(offsets[-1] + s.shape[0])
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    try:
        save_tensors({"states": torch.cat(states), "offsets": torch.tensor(offsets)}, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)  # a full disk's half-written file takes no more space
        raise


def cached_states(
    lm: FrozenLM, texts: Sequence[str], layer: int, *, identity: str, batch_size: int = 16,
    max_tokens: int | None = None, after_batch: Callable[[], object] | None = None, progress: bool = True,
) -> list[torch.Tensor]:
    """`compute_states`, cached under `$LW_CACHE/states/`. A corrupt cache file is recomputed."""
    return cached_layer_states(lm, texts, [layer], identity=identity, batch_size=batch_size, max_tokens=max_tokens,
                               after_batch=after_batch, progress=progress)[0]


def cached_layer_states(
    lm: FrozenLM, texts: Sequence[str], layers: Sequence[int], *, identity: str, batch_size: int = 16,
    max_tokens: int | None = None, after_batch: Callable[[], object] | None = None, progress: bool = True,
) -> list[list[torch.Tensor]]:
    """`compute_layer_states`, each layer cached in its own file (the file one `cached_states` call
    for that layer reads and writes); the layers not cached yet are computed in one pass."""
    paths = [_cache_path(lm, layer, identity, texts, max_tokens) for layer in layers]
    found = [_load(path) for path in paths]
    missing = [i for i, states in enumerate(found) if states is None]
    if missing:
        names = ",".join(str(layers[i]) for i in missing)
        log.info("computing %d sender states (%s L%s %s) into %s/ (%s; `lw-models cache` lists and clears them)",
                 len(texts), lm.name, names, identity, paths[0].parent, ", ".join(paths[i].name for i in missing))
        computed = compute_layer_states(lm, texts, [layers[i] for i in missing], batch_size=batch_size,
                                        max_tokens=max_tokens, desc=f"{lm.name} L{names} {identity}",
                                        after_batch=after_batch, progress=progress)
        for i, states in zip(missing, computed, strict=True):
            _save(paths[i], states)
            found[i] = states
    return found  # type: ignore[return-value]
