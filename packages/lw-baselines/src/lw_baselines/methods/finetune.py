"""LoRA and DoRA (peft) on the receiver: the prompt with the input text, loss on the answer tokens only
(those the answer rule scores: the first, or all).

A fresh copy of the model per learning rate gets adapters on the attention projections; the learning
rate and the step are chosen on validation; the chosen adapters are merged for test-time scoring.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
from lw_core.lm import FrozenLM
from lw_tasks import Task, ZeroShotScorer
from peft import LoraConfig, get_peft_model, get_peft_model_state_dict, set_peft_model_state_dict

from lw_baselines.common import Context, Method, Outcome, SingleModelConfig, _help, count_trainable, register
from lw_baselines.scoring import AnswerRuleFields, answer_ids, applied_answer_rule
from lw_baselines.training import TrainFields, answer_batch, answer_loss, train_and_select


@dataclass
class LoraFields:
    rank: int = field(default=8, metadata=_help("adapter rank r"))
    alpha: float = field(default=16.0, metadata=_help("LoRA alpha (scale alpha / r)"))
    dropout: float = field(default=0.0, metadata=_help("LoRA dropout"))
    target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"],
        metadata=_help("module names that get adapters"),
    )


@dataclass
class LoraMethodConfig(SingleModelConfig, TrainFields, LoraFields, AnswerRuleFields):
    lr: list[float] = field(
        default_factory=lambda: [2e-4, 1e-3], metadata=_help("learning-rate grid (chosen on validation)")
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.rank < 1:
            raise ValueError(f"rank must be >= 1, got {self.rank}")
        self.check_answer_rule()


class LoraTrainable:
    """A deep copy of the model with (Do)LoRA adapters; the original stays untouched."""

    def __init__(self, lm: FrozenLM, cfg: LoraMethodConfig, dora: bool):
        self.answer_rule = cfg.answer_rule
        model = copy.deepcopy(lm.model)
        self.lm = FrozenLM(model, lm.tokenizer, name=f"{lm.name}+{'dora' if dora else 'lora'}")
        config = LoraConfig(r=cfg.rank, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout,
                            target_modules=list(cfg.target_modules), use_dora=dora, bias="none")
        self.peft = get_peft_model(model, config)
        self._params = [p for p in self.peft.parameters() if p.requires_grad]

    def parameters(self) -> list[torch.nn.Parameter]:
        return self._params

    def loss(self, task: Task, examples) -> torch.Tensor:
        answers = answer_ids(self.lm, task, self.answer_rule)
        ids, mask, labels = answer_batch(self.lm, [task.prompt(e) for e in examples], [answers[e.label] for e in examples])
        return answer_loss(self.lm, self.lm.embed(ids), mask, labels)

    def scorer(self) -> ZeroShotScorer:
        return ZeroShotScorer(self.lm, answer_rule=self.answer_rule)

    def state(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in get_peft_model_state_dict(self.peft).items()}

    def merged(self, state: dict[str, torch.Tensor]) -> FrozenLM:
        set_peft_model_state_dict(self.peft, state)
        merged = self.peft.merge_and_unload()
        return FrozenLM(merged, self.lm.tokenizer, name=self.lm.name)


def _run(ctx: Context, dora: bool) -> Outcome:
    cfg: LoraMethodConfig = ctx.config
    lm = ctx.lm
    choice = train_and_select(lambda: LoraTrainable(lm, cfg, dora), ctx.task, cfg, seed=cfg.seed,
                              batch_size=cfg.eval_batch_size, progress=ctx.progress)
    trainable: LoraTrainable = choice.trainable
    params = count_trainable(trainable.parameters())
    merged = trainable.merged(choice.state)
    rule = applied_answer_rule(lm, ctx.task, cfg.answer_rule)
    return Outcome(
        scorer=ZeroShotScorer(merged, answer_rule=cfg.answer_rule), trainable_params=params,
        validation=choice.validation, extra={"answer_rule": rule},
        selected={"lr": choice.lr, "step": choice.step, "answer_rule": rule, "history": choice.history},
    )


def run_lora(ctx: Context) -> Outcome:
    return _run(ctx, dora=False)


def run_dora(ctx: Context) -> Outcome:
    return _run(ctx, dora=True)


SEES = "the task prompt with the full input text; trained on the training budget (answer tokens only)"
register(Method("lora", LoraMethodConfig, run_lora,
                "LoRA adapters on the attention projections, loss on the answer only, lr and step chosen on validation",
                SEES))  # fmt: skip
register(Method("dora", LoraMethodConfig, run_dora,
                "DoRA (weight-decomposed LoRA) adapters, otherwise as lora", SEES))  # fmt: skip
