"""Linear probe: multinomial logistic regression on the sender's pooled hidden states.

`probe` reads the bridge's layer; `probe-best-layer` also chooses the layer on validation. Features
are standardised with the training budget's statistics (hidden-state scale varies wildly by layer);
the L2 strength C and the pooling (mean over tokens, or the last token) are chosen on validation.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from lw_core.errors import LwError
from lw_core.lm import Embedded, FrozenLM
from lw_tasks import EvalResult, Example, Task, result_from_scores
from tqdm.auto import tqdm

from lw_baselines.common import Context, Method, Outcome, SingleModelConfig, _help, log, register
from lw_baselines.scoring import better

POOLINGS = ("mean", "last")


@dataclass
class ProbeConfig(SingleModelConfig):
    layer: int = field(default=15, metadata=_help("the bridge's sender layer (0 = embeddings, -1 = last)"))
    layers: list[int] = field(
        default_factory=list, metadata=_help("probe-best-layer: candidate layers (default: every layer 1..n)")
    )
    poolings: list[str] = field(default_factory=lambda: list(POOLINGS), metadata=_help("candidate poolings"))
    c_grid: list[float] = field(
        default_factory=lambda: [1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0],
        metadata=_help("inverse L2 strengths C (loss = CE + ||W||² / (2 C N)); chosen on validation"),
    )
    max_iter: int = field(default=200, metadata=_help("L-BFGS iterations per fit"))
    input: str = field(default="text", metadata=_help("what the sender reads: the input text, or the task prompt",
                                                      choices=["text", "prompt"]))

    def __post_init__(self) -> None:
        super().__post_init__()
        bad = [p for p in self.poolings if p not in POOLINGS]
        if bad or not self.poolings:
            raise ValueError(f"unknown pooling(s) {bad}; known: {', '.join(POOLINGS)}")
        if not self.c_grid or any(c <= 0 for c in self.c_grid):
            raise ValueError(f"c_grid must be positive numbers, got {self.c_grid}")


def _texts(task: Task, examples: Sequence[Example], kind: str) -> list[str]:
    return [task.prompt(e) if kind == "prompt" else e.text for e in examples]


@torch.no_grad()
def pooled_features(lm: FrozenLM, texts: Sequence[str], layers: Sequence[int], poolings: Sequence[str],
                    batch_size: int = 16, progress: bool = False) -> dict[tuple[int, str], torch.Tensor]:
    """{(layer, pooling): [N, hidden] float32} of each text's hidden states (one forward per batch)."""
    n = lm.num_layers
    for layer in layers:
        if not -(n + 1) <= layer <= n:
            raise LwError(f"layer {layer} out of range for {lm.name} ({n} layers: -{n + 1}..{n})")
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = {(layer, p): torch.zeros(len(texts), lm.hidden_size) for layer in layers for p in poolings}
    for start in tqdm(range(0, len(order), batch_size), desc=f"{lm.name} features", disable=not progress, leave=False):
        idx = order[start : start + batch_size]
        batch = [texts[i] for i in idx]
        if len(layers) == 1:
            states = {layers[0]: lm.hidden_states(batch, layers[0])}
        else:
            inputs = lm.embed_texts(batch)
            hidden = lm.model.base_model(inputs_embeds=inputs.embeds, attention_mask=inputs.mask,
                                         output_hidden_states=True, use_cache=False).hidden_states
            states = {layer: Embedded(hidden[layer % (n + 1)], inputs.mask) for layer in layers}
        for layer, s in states.items():
            mask = s.mask.to(s.embeds.dtype)[:, :, None]
            for p in poolings:
                if p == "mean":
                    feats = (s.embeds * mask).sum(1) / mask.sum(1).clamp(min=1)
                else:
                    last = s.mask.sum(1) - 1
                    feats = s.embeds[torch.arange(len(idx)), last]
                out[(layer, p)][idx] = feats.float().cpu()
    return out


@dataclass
class LinearProbe:
    mean: torch.Tensor
    scale: torch.Tensor
    weight: torch.Tensor  # [hidden, answers]
    bias: torch.Tensor

    def logprobs(self, features: torch.Tensor) -> torch.Tensor:
        return F.log_softmax(((features - self.mean) / self.scale) @ self.weight + self.bias, dim=-1)

    @property
    def num_params(self) -> int:
        return self.weight.numel() + self.bias.numel()


def fit_probe(features: torch.Tensor, labels: torch.Tensor, n_answers: int, c: float, max_iter: int = 200,
              standardise: tuple[torch.Tensor, torch.Tensor] | None = None) -> LinearProbe:
    """L2-regularised multinomial logistic regression (sklearn's C convention), full-batch L-BFGS."""
    mean, scale = standardise or (features.mean(0), features.std(0).clamp(min=1e-6))
    x = ((features - mean) / scale).double()
    weight = torch.zeros(x.shape[1], n_answers, dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(n_answers, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe",
                                  tolerance_grad=1e-6, tolerance_change=1e-9)
    penalty = 1.0 / (2.0 * c * len(x))

    def closure():
        optimizer.zero_grad()
        loss = F.cross_entropy(x @ weight + bias, labels) + penalty * weight.pow(2).sum()
        loss.backward()
        return loss

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # hundreds of tiny matmuls: threading costs more than it gives (25x on 2 busy cores)
    try:
        optimizer.step(closure)
    finally:
        torch.set_num_threads(threads)
    return LinearProbe(mean, scale, weight.detach().float(), bias.detach().float())


class ProbeScorer:
    """Sender hidden states at one layer, pooled, through the linear probe: log-probabilities over answers."""

    scores_are_logprobs = True

    def __init__(self, lm: FrozenLM, layer: int, pooling: str, probe: LinearProbe, input_kind: str):
        self.lm, self.layer, self.pooling, self.probe, self.input_kind = lm, layer, pooling, probe, input_kind

    def score(self, task: Task, examples: Sequence[Example]) -> torch.Tensor:
        texts = _texts(task, examples, self.input_kind)
        feats = pooled_features(self.lm, texts, [self.layer], [self.pooling], batch_size=len(texts))
        return self.probe.logprobs(feats[(self.layer, self.pooling)])


def select_probe(
    train: dict[tuple[int, str], torch.Tensor], val: dict[tuple[int, str], torch.Tensor], task: Task,
    c_grid: Sequence[float], max_iter: int,
) -> tuple[tuple[int, str, float], LinearProbe, EvalResult, list[dict]]:
    """Fit every (layer, pooling, C) on train; the best on validation (accuracy, then NLL)."""
    y_train = task.labels(task.split("train"))
    val_examples = task.split("validation")
    best = None
    tried = []
    for (layer, pooling), c in itertools.product(sorted(train), sorted(c_grid)):
        probe = fit_probe(train[(layer, pooling)], y_train, len(task.answers), c, max_iter)
        result = result_from_scores(task, "validation", val_examples, probe.logprobs(val[(layer, pooling)]))
        tried.append({"layer": layer, "pooling": pooling, "C": c, "val_accuracy": result.metrics["accuracy"],
                      "val_nll": result.metrics["nll"]})
        if best is None or better(result, best[2]):
            best = ((layer, pooling, c), probe, result)
    assert best is not None
    return best[0], best[1], best[2], tried


def _run(ctx: Context, layers: list[int]) -> Outcome:
    cfg: ProbeConfig = ctx.config
    lm, task = ctx.lm, ctx.task
    start = time.perf_counter()
    feats = {
        split: pooled_features(lm, _texts(task, task.split(split), cfg.input), layers, cfg.poolings,
                               batch_size=cfg.eval_batch_size, progress=ctx.progress)
        for split in ("train", "validation")
    }
    log.info("probe features for %d layers in %.1fs", len(layers), time.perf_counter() - start)
    (layer, pooling, c), probe, val, tried = select_probe(feats["train"], feats["validation"], task, cfg.c_grid,
                                                         cfg.max_iter)
    log.info("probe: layer %d, %s pooling, C=%g: val accuracy %.4f", layer, pooling, c, val.metrics["accuracy"])
    return Outcome(
        scorer=ProbeScorer(lm, layer, pooling, probe, cfg.input), trainable_params=probe.num_params, validation=val,
        selected={"layer": layer, "pooling": pooling, "C": c, "tried": tried},
        extra={"probe_layer": layer},
    )


def run_probe(ctx: Context) -> Outcome:
    return _run(ctx, [ctx.config.layer])


def run_probe_best_layer(ctx: Context) -> Outcome:
    layers = list(ctx.config.layers) or list(range(1, ctx.lm.num_layers + 1))
    return _run(ctx, layers)


SEES = "the sender's hidden states of the full input text; trained on the training budget"
register(Method("probe", ProbeConfig, run_probe,
                "logistic regression on the sender's pooled states at the bridge's layer; C and pooling on validation",
                SEES, default_model="sender"))  # fmt: skip
register(Method("probe-best-layer", ProbeConfig, run_probe_best_layer,
                "as probe, with the layer also chosen on validation", SEES, default_model="sender"))  # fmt: skip
