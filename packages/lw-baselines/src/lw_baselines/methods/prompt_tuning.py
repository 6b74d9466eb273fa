"""Prompt tuning (peft's PromptEmbedding): K trained virtual tokens *and* the input text.

The receiver sees [BOS] + K soft tokens + the task prompt with the input text (or, `--placement suffix`,
the soft tokens after the text, before the answer cue: the control of the bridge's fusion layout of the
same name); the loss is on the
answer tokens only (those the answer rule scores: the first, or all). A prompt that never sees the input can only learn the majority answer, so it is
no baseline. The soft tokens start from the embeddings of an instruction text.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from lw_core.lm import FrozenLM
from lw_tasks import Task
from peft import PromptEmbedding, PromptTuningConfig, PromptTuningInit

from lw_baselines.common import Context, Method, Outcome, SingleModelConfig, _help, register
from lw_baselines.scoring import (
    SOFT_PROMPT_PLACEMENTS,
    AnswerRuleFields,
    SoftPromptScorer,
    answer_ids,
    applied_answer_rule,
    soft_prompt_rows,
)
from lw_baselines.training import IGNORE, TrainFields, answer_loss, train_and_select


@dataclass
class PromptTuningMethodConfig(SingleModelConfig, TrainFields, AnswerRuleFields):
    virtual_tokens: int = field(default=16, metadata=_help("K, the number of trained soft tokens"))
    init_text: str = field(
        default="Read the text and answer the question about it.",
        metadata=_help("the soft tokens start as this text's embeddings (repeated to K tokens)"),
    )
    lr: list[float] = field(
        default_factory=lambda: [3e-3, 3e-2], metadata=_help("learning-rate grid (chosen on validation)")
    )
    placement: str = field(default="prefix", metadata={**_help(
        "where the soft tokens go: prefix = before the task prompt, suffix = after the text, before the answer cue"),
        "choices": list(SOFT_PROMPT_PLACEMENTS)})

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.virtual_tokens < 1:
            raise ValueError(f"virtual_tokens must be >= 1, got {self.virtual_tokens}")
        self.check_answer_rule()
        if self.placement not in SOFT_PROMPT_PLACEMENTS:
            raise ValueError(f"placement must be one of {', '.join(SOFT_PROMPT_PLACEMENTS)}, got {self.placement!r}")


class SoftPromptTrainable:
    def __init__(self, lm: FrozenLM, cfg: PromptTuningMethodConfig):
        self.lm, self.k, self.answer_rule, self.placement = lm, cfg.virtual_tokens, cfg.answer_rule, cfg.placement
        config = PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=self.k, token_dim=lm.hidden_size,
                                    num_transformer_submodules=1, prompt_tuning_init=PromptTuningInit.RANDOM)
        self.prompt = PromptEmbedding(config, lm.model.get_input_embeddings()).to(lm.device)
        ids = lm.token_ids(cfg.init_text) or [lm.tokenizer.eos_token_id]
        ids = (ids * (self.k // len(ids) + 1))[: self.k]
        with torch.no_grad():  # what the first layer sees for these tokens (Gemma's scale included)
            self.prompt.embedding.weight.copy_(lm.embed(torch.tensor(ids)).float())
        self.indices = torch.arange(self.k, device=lm.device)

    def soft(self) -> torch.Tensor:
        return self.prompt(self.indices)

    def parameters(self) -> list[torch.nn.Parameter]:
        return list(self.prompt.parameters())

    def loss(self, task: Task, examples) -> torch.Tensor:
        lm, answers, soft = self.lm, answer_ids(self.lm, task, self.answer_rule), self.soft()
        rows, label_rows = [], []
        for e, row in zip(examples, soft_prompt_rows(lm, task, examples, soft, self.placement), strict=True):
            answer = torch.tensor(answers[e.label], dtype=torch.long)
            rows.append([*row, answer])
            label_rows.append(torch.cat([torch.full((sum(len(s) for s in row),), IGNORE), answer]))
        batch = lm.compose(rows)
        labels = torch.full(batch.mask.shape, IGNORE, dtype=torch.long, device=lm.device)
        for i, row in enumerate(label_rows):
            labels[i, : len(row)] = row
        return answer_loss(lm, batch.embeds, batch.mask, labels)

    def scorer(self) -> SoftPromptScorer:
        return SoftPromptScorer(self.lm, self.soft().detach(), self.answer_rule, self.placement)

    def state(self) -> dict[str, torch.Tensor]:
        return {"soft": self.soft().detach().clone()}


def run_prompt_tuning(ctx: Context) -> Outcome:
    cfg: PromptTuningMethodConfig = ctx.config
    choice = train_and_select(lambda: SoftPromptTrainable(ctx.lm, cfg), ctx.task, cfg, seed=cfg.seed,
                              batch_size=cfg.eval_batch_size, progress=ctx.progress)
    soft = choice.state["soft"]
    if ctx.run is not None:
        from safetensors.torch import save_file

        save_file({"soft": soft.contiguous()}, ctx.run.path("soft_prompt.safetensors"))
    rule = applied_answer_rule(ctx.lm, ctx.task, cfg.answer_rule)
    return Outcome(
        scorer=SoftPromptScorer(ctx.lm, soft, cfg.answer_rule, cfg.placement), trainable_params=soft.numel(),
        validation=choice.validation, extra={"answer_rule": rule},
        selected={"lr": choice.lr, "step": choice.step, "answer_rule": rule, "history": choice.history},
    )


register(Method(
    "prompt-tuning", PromptTuningMethodConfig, run_prompt_tuning,
    "K trained soft tokens before the task prompt *with the input text*; lr and step chosen on validation",
    "K soft tokens + the task prompt with the full input text; trained on the training budget",
))  # fmt: skip
