"""LoRA and DoRA (peft) on the receiver: the prompt with the input text, loss on the answer tokens only
(those the answer rule scores: the first, or all). On a generative (QA) task: the prompt with passage and
question, trained on the first reference's line by the bridge's teacher-forced CE (`--answer-tokens`),
selected on validation F1 and scored on test by greedy generation (`--max-new-tokens`, the bridge's stop
rule), EM / F1 by the shared evaluator and the first-token accuracy beside them.

A fresh copy of the model per learning rate gets adapters on the attention projections; the learning
rate and the step are chosen on validation; the chosen adapters are merged for test-time scoring.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
from lw_core.lm import FrozenLM
from lw_tasks import GenerationScorer, Task, ZeroShotScorer
from lw_tasks.generative import (
    ANSWER_TOKENS,
    GenerationFields,
    reference_line_ids,
    teacher_forced_ce,
    text_first_token_accuracy,
)
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
class LoraMethodConfig(SingleModelConfig, TrainFields, LoraFields, AnswerRuleFields, GenerationFields):
    lr: list[float] = field(
        default_factory=lambda: [2e-4, 1e-3], metadata=_help("learning-rate grid (chosen on validation)")
    )
    answer_tokens: int = field(default=ANSWER_TOKENS, metadata=_help(
        "generative tasks: reference tokens in the teacher-forced CE, the answer's end of line counted "
        "(1 = first-token CE; as lw-train's --answer-tokens)", identity="when-set"))

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.rank < 1:
            raise ValueError(f"rank must be >= 1, got {self.rank}")
        self.check_answer_rule()
        self.check_generation()
        if self.answer_tokens < 1:
            raise ValueError(f"answer_tokens must be >= 1, got {self.answer_tokens}")


class LoraTrainable:
    """A deep copy of the model with (Do)LoRA adapters; the original stays untouched."""

    def __init__(self, lm: FrozenLM, cfg: LoraMethodConfig, dora: bool, generative: bool = False):
        self.answer_rule, self.generative = cfg.answer_rule, generative
        self.answer_tokens, self.max_new_tokens = cfg.answer_tokens, cfg.max_new_tokens
        model = copy.deepcopy(lm.model)
        self.lm = FrozenLM(model, lm.tokenizer, name=f"{lm.name}+{'dora' if dora else 'lora'}")
        config = LoraConfig(r=cfg.rank, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout,
                            target_modules=list(cfg.target_modules), use_dora=dora, bias="none")
        self.peft = get_peft_model(model, config)
        self._params = [p for p in self.peft.parameters() if p.requires_grad]

    def parameters(self) -> list[torch.nn.Parameter]:
        return self._params

    def loss(self, task: Task, examples) -> torch.Tensor:
        prompts = [task.prompt(e) for e in examples]
        if self.generative:  # the bridge's generative loss, after the text prompt instead of soft tokens
            targets = reference_line_ids(self.lm, examples)
            return teacher_forced_ce(self.lm, self.lm.embed_texts(prompts), targets, self.answer_tokens)[0]
        answers = answer_ids(self.lm, task, self.answer_rule)
        ids, mask, labels = answer_batch(self.lm, prompts, [answers[e.label] for e in examples])
        return answer_loss(self.lm, self.lm.embed(ids), mask, labels)

    def scorer(self) -> ZeroShotScorer | GenerationScorer:
        return scorer_of(self.lm, self.generative, self.answer_rule, self.max_new_tokens)

    def state(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in get_peft_model_state_dict(self.peft).items()}

    def merged(self, state: dict[str, torch.Tensor]) -> FrozenLM:
        set_peft_model_state_dict(self.peft, state)
        merged = self.peft.merge_and_unload()
        return FrozenLM(merged, self.lm.tokenizer, name=self.lm.name)


def scorer_of(lm: FrozenLM, generative: bool, answer_rule: str, max_new_tokens: int) -> ZeroShotScorer | GenerationScorer:
    """How the (adapted) model answers: scores the answer set by the answer rule, or generates greedily."""
    return GenerationScorer(lm, max_new_tokens) if generative else ZeroShotScorer(lm, answer_rule=answer_rule)


def _run(ctx: Context, dora: bool) -> Outcome:
    cfg: LoraMethodConfig = ctx.config
    lm, task = ctx.lm, ctx.task
    generative = task.kind == "generative"
    choice = train_and_select(lambda: LoraTrainable(lm, cfg, dora, generative), task, cfg, seed=cfg.seed,
                              batch_size=cfg.eval_batch_size, progress=ctx.progress)
    trainable: LoraTrainable = choice.trainable
    params = count_trainable(trainable.parameters())
    merged = trainable.merged(choice.state)
    selected: dict = {"lr": choice.lr, "step": choice.step, "history": choice.history}
    scorer = scorer_of(merged, generative, cfg.answer_rule, cfg.max_new_tokens)
    if generative:
        def after_test(_result) -> dict:
            test = task.split("test")
            return {"first_token_accuracy": text_first_token_accuracy(
                merged, [task.prompt(e) for e in test], reference_line_ids(merged, test), cfg.eval_batch_size)}

        extra = {"answer_tokens": cfg.answer_tokens, "max_new_tokens": cfg.max_new_tokens}
        return Outcome(scorer=scorer, trainable_params=params,
                       validation=choice.validation, extra=extra, after_test=after_test, selected=selected | extra)
    rule = applied_answer_rule(lm, task, cfg.answer_rule)
    return Outcome(
        scorer=scorer, trainable_params=params,
        validation=choice.validation, extra={"answer_rule": rule}, selected=selected | {"answer_rule": rule},
    )


def run_lora(ctx: Context) -> Outcome:
    return _run(ctx, dora=False)


def run_dora(ctx: Context) -> Outcome:
    return _run(ctx, dora=True)


SEES = "the task prompt with the full input text; trained on the training budget (answer tokens only)"
register(Method("lora", LoraMethodConfig, run_lora,
                "LoRA adapters on the attention projections, loss on the answer only, lr and step chosen on validation",
                SEES, generative=True))  # fmt: skip
register(Method("dora", LoraMethodConfig, run_dora,
                "DoRA (weight-decomposed LoRA) adapters, otherwise as lora", SEES, generative=True))  # fmt: skip
