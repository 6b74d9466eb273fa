"""What the encoder reads for each example: cached sender hidden states ([n_tokens, d] from one layer,
[n_tokens, L, d] from several), or UTF-8 bytes for the sender-free `bytes` encoder."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from lw_core import FrozenLM
from lw_tasks import Example, Task

from lw_bridge.encoders import bytes_of
from lw_bridge.layouts import render
from lw_bridge.state_cache import cached_layer_states, compute_layer_states


def pad_states(states: Sequence[torch.Tensor], device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad a list of [n_i, ...] tensors into [B, T, ...] plus a [B, T] mask."""
    longest = max(s.shape[0] for s in states)
    fill = 256 if states[0].dtype == torch.long else 0  # byte padding id of the bytes encoder
    out = states[0].new_full((len(states), longest, *states[0].shape[1:]), fill)
    mask = torch.zeros(len(states), longest, dtype=torch.long)
    for i, s in enumerate(states):
        out[i, : s.shape[0]] = s
        mask[i, : s.shape[0]] = 1
    return out.to(device), mask.to(device)


def layer_list(layer: int | Sequence[int]) -> list[int]:
    """A bridge's sender layer(s) as a list (a bridge config holds one int, or a list of several)."""
    return [layer] if isinstance(layer, int) else list(layer)


class EncoderInputs:
    """Per-example encoder inputs, looked up by example id (cached) or computed for new texts. Each
    sender layer is cached on disk on its own (runs that read layer sets share their files); the
    layers not cached yet are computed in one sender pass."""

    def __init__(self, sender: FrozenLM | None, layer: int | Sequence[int], template: str = "{text}",
                 max_sender_tokens: int | None = None, batch_size: int = 32, progress: bool = True):
        self.sender, self.layers, self.template, self.progress = sender, layer_list(layer), template, progress
        self.max_tokens, self.batch_size = max_sender_tokens, batch_size
        self._by_id: dict[str, torch.Tensor] = {}

    def sender_text(self, example: Example) -> str:
        """What the sender reads: the example's text inside the bridge's sender template."""
        return render(self.template, example)

    def compute(self, examples: Sequence[Example]) -> list[torch.Tensor]:
        if self.sender is None:
            return bytes_of([e.text for e in examples])
        texts = [self.sender_text(e) for e in examples]
        return self._stack(compute_layer_states(self.sender, texts, self.layers, batch_size=self.batch_size,
                                                max_tokens=self.max_tokens, progress=self.progress))

    def cache_split(self, task: Task, split: str, examples: Sequence[Example],
                    after_batch: Callable[[], object] | None = None) -> None:
        """Compute (or read from the on-disk cache) the inputs of a split's examples once; `after_batch`
        is called after each batch the sender computes."""
        if self.sender is None:
            values = bytes_of([e.text for e in examples])
        else:
            texts = [self.sender_text(e) for e in examples]
            values = self._stack(cached_layer_states(self.sender, texts, self.layers, identity=f"{task.name}-{split}",
                                                     batch_size=self.batch_size, max_tokens=self.max_tokens,
                                                     after_batch=after_batch, progress=self.progress))
        self._by_id.update({e.id: v for e, v in zip(examples, values, strict=True)})

    @staticmethod
    def _stack(per_layer: list[list[torch.Tensor]]) -> list[torch.Tensor]:
        """One layer: its [n, d] states; several: [n, L, d] per example."""
        if len(per_layer) == 1:
            return per_layer[0]
        return [torch.stack(states, dim=1) for states in zip(*per_layer, strict=True)]

    def uncached(self) -> EncoderInputs:
        """The same inputs with nothing cached: every lookup runs the sender (end-to-end timing)."""
        return EncoderInputs(self.sender, self.layers, self.template, self.max_tokens, self.batch_size, progress=False)

    def get(self, examples: Sequence[Example]) -> list[torch.Tensor]:
        missing = [e for e in examples if e.id not in self._by_id]
        if missing:
            self._by_id.update({e.id: v for e, v in zip(missing, self.compute(missing), strict=True)})
        return [self._by_id[e.id] for e in examples]
