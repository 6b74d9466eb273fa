"""Few-shot: k demonstrations from the training budget (balanced over answers) before the prompt.

Several draws of demonstrations; each draw picks raw or calibrated scores on validation (the
content-free inputs go through the same demonstrations); the run reports the mean and std over draws.
The demonstrations are part of the template, so scoring is `ZeroShotScorer`'s, batched.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
from lw_tasks import Example, Task, ZeroShotScorer
from lw_tasks.splits import truncate_words

from lw_baselines.common import Context, Method, Outcome, SingleModelConfig, _help, register
from lw_baselines.scoring import TaskViewScorer, choose_calibration


@dataclass
class FewShotConfig(SingleModelConfig):
    k: int = field(default=4, metadata=_help("demonstrations per prompt (balanced over answers)"))
    draws: int = field(default=3, metadata=_help("independent draws of demonstrations (mean ± std reported)"))
    demo_max_words: int | None = field(
        default=None, metadata=_help("truncate each demonstration to this many words (default: the task's budget)")
    )
    calibration: str = field(
        default="select", metadata=_help("raw, calibrated, or select (chosen on validation per draw)",
                                         choices=["raw", "calibrated", "select"]),
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.k < 1 or self.draws < 1:
            raise ValueError(f"k and draws must be >= 1, got k={self.k}, draws={self.draws}")


def balanced_demos(examples: list[Example], k: int, n_answers: int, rng: np.random.Generator) -> list[Example]:
    """k examples whose answers are as balanced as possible (counts differ by at most one; with more
    answers than k, k distinct answers drawn at random), in random order."""
    by_class: dict[int, list[int]] = {}
    for i, e in enumerate(examples):
        by_class.setdefault(int(e.label), []).append(i)  # type: ignore[arg-type]
    classes = [c for c in range(n_answers) if by_class.get(c)]
    order = [classes[i] for i in rng.permutation(len(classes))]
    pools = {c: [by_class[c][i] for i in rng.permutation(len(by_class[c]))] for c in classes}
    chosen: list[int] = []
    turn = 0
    while len(chosen) < min(k, len(examples)):
        c = order[turn % len(order)]
        turn += 1
        if pools[c]:
            chosen.append(pools[c].pop())
    return [examples[chosen[i]] for i in rng.permutation(len(chosen))]


def demo_prefix(task: Task, demos: list[Example], max_words: int | None) -> str:
    """`prompt(demo) + verbalizer + blank line` for each demonstration."""
    parts = []
    for demo in demos:
        text = truncate_words(demo.text, max_words) if max_words else demo.text
        shown = Example(id=demo.id, text=text, label=demo.label, fields=demo.fields)
        parts.append(task.prompt(shown) + task.verbalizers[demo.label] + "\n\n")  # type: ignore[index]
    return "".join(parts)


def run_few_shot(ctx: Context) -> Outcome:
    cfg: FewShotConfig = ctx.config
    task, lm = ctx.task, ctx.lm
    allowed = {"raw": (False,), "calibrated": (True,), "select": (False, True)}[cfg.calibration]
    draws, selected = [], []
    for d in range(cfg.draws):
        rng = np.random.default_rng([cfg.seed, d])
        demos = balanced_demos(task.split("train"), cfg.k, len(task.answers), rng)
        prefix = demo_prefix(task, demos, cfg.demo_max_words)
        view = dataclasses.replace(task, template=prefix.replace("{", "{{").replace("}", "}}") + task.template)
        raw = TaskViewScorer(ZeroShotScorer(lm), view)
        scorer, val, calibrated = choose_calibration(raw, task, batch_size=cfg.eval_batch_size, progress=ctx.progress,
                                                     allowed=allowed)
        draws.append((scorer, val))
        selected.append({"draw": d, "demos": [e.id for e in demos], "calibrated": calibrated,
                         "prefix_tokens": len(lm.token_ids(prefix)), "val_accuracy": val.metrics["accuracy"]})
    return Outcome(draws=draws, selected={"draws": selected, "k": cfg.k})


register(Method(
    "few-shot", FewShotConfig, run_few_shot,
    "k balanced demonstrations from the training budget before the prompt; several draws",
    "k labelled training examples + the prompt with the full input text",
))  # fmt: skip
