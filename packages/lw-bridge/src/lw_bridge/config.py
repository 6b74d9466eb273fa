"""`lw-train` configuration: one dataclass, validated on construction; the CLI is generated from it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from lw_core.answer_trie import NORMALISERS
from lw_core.models import check_model_names
from lw_core.options import ModelOptions, RuntimeOptions, TrainingOptions, shared_field
from lw_core.run_dirs import identity_hash
from lw_tasks import ANSWER_RULES, DEFAULT_ANSWER_RULE, BudgetOptions, TaskOptions, check_answer_rule
from lw_tasks.generative import ANSWER_TOKENS, MAX_NEW_TOKENS

from lw_bridge.bridge import BOS_POLICIES, FUSION_LAYOUTS
from lw_bridge.encoders import ENCODERS, EncoderConfig
from lw_bridge.losses import ANTI_COLLAPSE_FORMS
from lw_bridge.wire import FORMATS, WireFormat


@dataclass
class TrainConfig(TrainingOptions, RuntimeOptions, BudgetOptions, TaskOptions):
    at_least_one = ("num_latents", "d_z", "d_model", "depth", "heads", "num_soft_tokens", "checkpoint_every",
                    "answer_tokens", "max_new_tokens")

    steps: int = field(default=240, metadata={
        "help": "optimizer steps (validated every --eval-every; the best step is kept); 240 beat 120 "
                "on rt-sentiment over 3 seeds (README results: the steps-240 ablation, the 120-step bridge rows); "
                "360 scored lower on validation (steps-360)"})
    lr: list[float] = field(default_factory=lambda: [1e-3], metadata={
        "help": "peak learning rate (AdamW); several = a grid, as the baselines' `--lr`: each trains from the "
                "same initialisation and data order, and validation picks (lr, step) across them"})
    sender: str = shared_field(ModelOptions, "sender")
    receivers: list[str] = shared_field(ModelOptions, "receivers")
    layer: int = field(default=15, metadata={"help": "sender layer whose hidden states the encoder reads"})
    layers: list[int] = field(default_factory=list, metadata={
        "help": "read several sender layers instead (e.g. 8 15 22), mixed per token by a learned softmax "
                "weight per layer; each is cached like one --layer (memory grows with their number)"})
    encoder: str = field(default="perceiver", metadata={"help": "encoder kind", "choices": ENCODERS.names()})
    num_latents: int = field(default=8, metadata={"help": "M: vectors in the message Z"})
    d_z: int = field(default=16, metadata={"help": "width of each message vector"})
    d_model: int = field(default=256, metadata={"help": "encoder width"})
    depth: int = field(default=2, metadata={"help": "encoder blocks"})
    heads: int = field(default=4, metadata={"help": "encoder attention heads"})
    dropout: float = field(default=0.0, metadata={
        "help": "dropout inside the encoder (attention and MLP) while training; 0 = none"})
    num_soft_tokens: int = field(default=8, metadata={"help": "K: soft tokens per receiver"})
    anchor_before: str | None = field(default=None, metadata={
        "help": "text before the soft tokens (default: the task prompt's text before {text})"})
    anchor_after: str | None = field(default=None, metadata={
        "help": "text after the soft tokens (default: the task prompt's text after {text})"})
    sender_reads: str = field(default="prompt", metadata={
        "help": "what the sender reads: the task prompt around the text (as text baselines do) or the bare text",
        "choices": ["prompt", "text"]})
    calibrate_soft_tokens: bool = field(default=True, metadata={
        "help": "scale each soft token to the RMS of the receiver's real token embeddings (--no-… for the ablation)"})
    receiver_reads_text: bool = field(default=False, metadata={
        "help": "fusion: the frozen receiver reads the task prompt with the input text AND the K soft tokens "
                "(placed by --fusion-layout)"})
    receiver_text_fields: list[str] = field(default_factory=list, metadata={
        "help": "with --receiver-reads-text: the input fields the receiver reads as text (e.g. question); the "
                "sender reads only the others (e.g. the passage), which reach the receiver only as the message "
                "(QA layout (b)); default: both read the whole input", "identity": "when-set"})
    sender_fields: str = field(default="others", metadata={
        "help": "with --receiver-text-fields: what the sender reads; others = only the fields the receiver does "
                "not read (the passage); all = the whole input, the receiver's fields too (a question-aware "
                "message; the passage still reaches the receiver only through it)", "choices": ["others", "all"],
        "identity": "when-set"})
    fusion_layout: str = field(default="prefix", metadata={
        "help": "fusion: where the soft tokens go; prefix = before the task prompt (prompt tuning's layout), "
                "suffix = after the text, before the answer cue (the text runs once without gradients: cheaper)",
        "choices": list(FUSION_LAYOUTS)})
    standardize_states: bool = field(default=True, metadata={
        "help": "standardise sender states per feature with train-split statistics (without it every message "
                "starts alike and training can begin collapsed)"})
    bos: str = field(default="auto", metadata={"help": "BOS before the receiver input", "choices": list(BOS_POLICIES)})
    kd_weight: float = field(default=0.0, metadata={
        "help": "weight of distillation from the receiver's own text-prompted answer distribution"})
    kd_temperature: float = field(default=2.0, metadata={"help": "distillation temperature"})
    message_head_weight: float = field(default=0.0, metadata={
        "help": "weight of an auxiliary answer classifier on the message during training (0 = none); "
                "gives the encoder a direct gradient, e.g. for many-class tasks; predictions still come from the receiver"})
    diversity_weight: float = field(default=0.1, metadata={"help": "weight of the anti-collapse term"})
    diversity_floor: float = field(default=0.1, metadata={"help": "soft-token diversity below which it is penalised"})
    anti_collapse: str = field(default="cosine", metadata={
        "help": "the anti-collapse term's form: cosine = the floor minus the diversity (1 - mean cosine between "
                "examples' soft tokens; its gradient vanishes as they become alike); std = its square root, the "
                "soft tokens' standard deviation across the batch (VICReg's variance hinge; its gradient stays at "
                "collapse)", "choices": list(ANTI_COLLAPSE_FORMS), "identity": "when-set"})
    answer_tokens: int = field(default=ANSWER_TOKENS, metadata={
        "help": "generative tasks: reference tokens in the teacher-forced CE, the answer's end of line counted "
                "(1 = first-token CE)"})
    max_new_tokens: int = field(default=MAX_NEW_TOKENS, metadata={"help": "generative tasks: greedy tokens generated at evaluation"})
    answer_rule: str = field(default=DEFAULT_ANSWER_RULE, metadata={
        "help": "how answers are trained AND scored (validation, test, lw-eval, pipeline): first-token = the "
                "answer's first token decides (falls back to full when two answers share it); distinct-prefix = "
                "each answer's tokens up to the first no other answer shares (first-token where first tokens "
                "differ); full = every answer token's log-prob summed", "choices": list(ANSWER_RULES)})
    answer_normaliser: str = field(default="vocab", metadata={
        "help": "training loss only, where answers are scored past their first token: each answer token's probability normalised over the "
                "vocabulary (vocab: exactly the evaluator's scores) or over the answers' next tokens at its "
                "trie node (answers: no full-vocabulary head, faster with many multi-token answers, but not "
                "the score that is evaluated)", "choices": list(NORMALISERS)})
    checkpoint_every: int = field(default=25, metadata={"help": "save a resumable checkpoint every N steps"})
    sender_batch_size: int = field(default=32, metadata={"help": "batch size when caching sender states"})
    wire_formats: list[str] = field(default_factory=list, metadata={
        "help": "also report test accuracy with the message quantised to these wire formats (fp16 int8 int6 int4); "
                "`lw-eval RUN_DIR --wire-formats int4` does it for a finished run"})
    compare_zero_shot: bool = field(default=True, metadata={
        "help": "also report the controls on the same test examples: the receiver reading the text (calibrated "
                "zero-shot accuracy; on a QA task its generated EM / F1, the text upper bound) and the token-budget "
                "control (the input the message stands for cut to the message's bytes at --token-budget-wire); "
                "cached after the first run"})
    token_budget_wire: str = field(default="fp16", metadata={
        "help": "the wire format whose message size (bytes) the token-budget control's text is cut to; the bridge "
                "is scored at that format too, so both read the same bytes", "choices": list(FORMATS),
        "identity": "when-set"})

    def __post_init__(self):
        if not isinstance(self.lr, list):  # TrainConfig(lr=3e-3) from Python: a grid of one
            self.lr = [self.lr]
        if isinstance(self.receivers, str):
            self.receivers = [self.receivers]
        if not self.receivers:
            raise ValueError("at least one receiver is needed")
        check_model_names(self.sender, *self.receivers)
        super().__post_init__()
        if self.message_head_weight < 0:
            raise ValueError(f"message_head_weight must be >= 0, got {self.message_head_weight}")
        if self.encoder not in ENCODERS:
            raise ValueError(f"unknown encoder {self.encoder!r}; known: {', '.join(ENCODERS.names())}")
        self.encoder_config()  # validates the encoder fields
        check_answer_rule(self.answer_rule)
        if self.anti_collapse not in ANTI_COLLAPSE_FORMS:
            raise ValueError(f"unknown anti-collapse form {self.anti_collapse!r}; known: {', '.join(ANTI_COLLAPSE_FORMS)}")
        if self.answer_normaliser not in NORMALISERS:
            raise ValueError(f"unknown answer normaliser {self.answer_normaliser!r}; known: {', '.join(NORMALISERS)}")
        if len(set(self.layers)) != len(self.layers):
            raise ValueError(f"layers must be distinct, got {self.layers}")
        if self.layers and self.encoder == "bytes":
            raise ValueError("the bytes encoder reads no sender layers; leave --layers empty")
        if self.fusion_layout not in FUSION_LAYOUTS:
            raise ValueError(f"fusion_layout must be one of {', '.join(FUSION_LAYOUTS)}, got {self.fusion_layout!r}")
        if self.fusion_layout != "prefix" and not self.receiver_reads_text:
            raise ValueError("--fusion-layout places the soft tokens around the text: it needs --receiver-reads-text")
        if self.receiver_text_fields and not self.receiver_reads_text:
            raise ValueError("--receiver-text-fields says which fields the receiver reads as text: it needs "
                             "--receiver-reads-text")
        if self.sender_fields not in ("others", "all"):
            raise ValueError(f"sender_fields must be others or all, got {self.sender_fields!r}")
        if self.sender_fields == "all" and not self.receiver_text_fields:
            raise ValueError("--sender-fields all says the sender also reads the receiver's fields: it needs "
                             "--receiver-text-fields")
        if self.receiver_text_fields and self.encoder == "bytes":
            raise ValueError("--receiver-text-fields splits what the sender reads; the bytes encoder reads the "
                             "whole input")
        for fmt in [*self.wire_formats, self.token_budget_wire]:
            WireFormat(fmt)

    @property
    def val_examples(self) -> int:
        return self.max_validation_examples

    def encoder_config(self) -> EncoderConfig:
        return EncoderConfig(kind=self.encoder, num_latents=self.num_latents, d_z=self.d_z, d_model=self.d_model,
                             depth=self.depth, heads=self.heads, dropout=self.dropout,
                             sender_layers=max(1, len(self.layers)))

    def sender_layers(self) -> int | list[int]:
        """What the encoder reads: `layer`, or the list `layers` when it names more than one."""
        if len(self.layers) == 1:
            return self.layers[0]
        return list(self.layers) if self.layers else self.layer

    def identity_hash(self) -> str:
        """Hash of everything that changes the result (not where it is written)."""
        return identity_hash(self)

    def replace(self, **changes) -> TrainConfig:
        return dataclasses.replace(self, **changes)
