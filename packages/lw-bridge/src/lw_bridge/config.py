"""`lw-train` configuration: one dataclass, validated on construction; the CLI is generated from it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from lw_core.config import config_hash, config_to_dict
from lw_core.models import check_model_name
from lw_core.wire import WireFormat
from lw_tasks import ANSWER_RULES, DEFAULT_ANSWER_RULE, TRAIN_BUDGET, VALIDATION_BUDGET, check_answer_rule

from lw_bridge.bridge import BOS_POLICIES
from lw_bridge.encoders import ENCODERS, EncoderConfig


@dataclass
class TrainConfig:
    task: str = field(default="rt-sentiment", metadata={"help": "task name or path to your own data file"})
    data_dir: str | None = field(default=None, metadata={"help": "embedded / hub tasks: local files of the source"})
    text_column: str | None = field(default=None, metadata={"help": "your own data file: the input text column"})
    label_column: str | None = field(default=None, metadata={"help": "your own data file: the label column"})
    sender: str = field(default="smollm2-135m", metadata={"help": "sender model: preset, folder or hub id"})
    receivers: list[str] = field(default_factory=lambda: ["gemma3-270m"],
                                 metadata={"help": "receiver model(s); several = interlingua (one adapter each)"})
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
                "before it (prompt tuning's layout, the soft tokens coming from the sender)"})
    standardize_states: bool = field(default=True, metadata={
        "help": "standardise sender states per feature with train-split statistics (without it every message "
                "starts alike and training can begin collapsed)"})
    bos: str = field(default="auto", metadata={"help": "BOS before the receiver input", "choices": list(BOS_POLICIES)})
    steps: int = field(default=120, metadata={"help": "optimizer steps"})
    batch_size: int = field(default=32, metadata={"help": "examples per step"})
    lr: float = field(default=1e-3, metadata={"help": "peak learning rate (AdamW)"})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay"})
    warmup: float = field(default=0.05, metadata={"help": "fraction of steps of linear warm-up before cosine decay"})
    grad_clip: float = field(default=1.0, metadata={"help": "gradient-norm clipping"})
    kd_weight: float = field(default=0.0, metadata={
        "help": "weight of distillation from the receiver's own text-prompted answer distribution"})
    kd_temperature: float = field(default=2.0, metadata={"help": "distillation temperature"})
    message_head_weight: float = field(default=0.0, metadata={
        "help": "weight of an auxiliary answer classifier on the message during training (0 = none); "
                "gives the encoder a direct gradient, e.g. for many-class tasks; predictions still come from the receiver"})
    diversity_weight: float = field(default=0.1, metadata={"help": "weight of the anti-collapse term"})
    diversity_floor: float = field(default=0.1, metadata={"help": "soft-token diversity below which it is penalised"})
    answer_tokens: int = field(default=8, metadata={
        "help": "generative tasks: reference tokens in the teacher-forced CE (1 = first-token CE)"})
    max_new_tokens: int = field(default=16, metadata={"help": "generative tasks: greedy tokens generated at evaluation"})
    answer_rule: str = field(default=DEFAULT_ANSWER_RULE, metadata={
        "help": "how answers are trained AND scored (validation, test, lw-eval, pipeline): first-token = the "
                "answer's first token decides (falls back to full when two answers share it); full = every "
                "answer token's log-prob summed", "choices": list(ANSWER_RULES)})
    max_train_examples: int = field(default=TRAIN_BUDGET, metadata={
        "help": "seeded stratified subset of train (the CPU budget every trained baseline shares)"})
    val_examples: int = field(default=VALIDATION_BUDGET, metadata={
        "help": "validation examples (the split's first N) used for checkpoint selection"})
    eval_every: int = field(default=60, metadata={"help": "validate (and maybe keep the best) every N steps"})
    checkpoint_every: int = field(default=25, metadata={"help": "save a resumable checkpoint every N steps"})
    sender_batch_size: int = field(default=32, metadata={"help": "batch size when caching sender states"})
    eval_batch_size: int = field(default=64, metadata={"help": "batch size for evaluation"})
    seed: int = field(default=0, metadata={"help": "seed for init, data order and the train subset"})
    dtype: str = field(default="auto", metadata={
        "help": "model dtype; auto = bf16 where the hardware has native bf16 (recent CPUs, GPUs), else fp32",
        "choices": ["auto", "fp32", "bf16", "fp16"]})
    device: str = field(default="auto", metadata={"help": "auto | cpu | cuda | mps"})
    output_dir: str | None = field(default=None, metadata={
        "help": "run directory (default: $LW_RUNS/<task>/bridge/<config hash>, so the same command resumes)"})
    wire_formats: list[str] = field(default_factory=list, metadata={
        "help": "also report test accuracy with the message quantised to these wire formats (fp16 int8 int6 int4); "
                "`lw-eval RUN_DIR --wire int4` does it for a finished run"})
    compare_zero_shot: bool = field(default=True, metadata={
        "help": "also report the receiver's calibrated zero-shot test accuracy (cached after the first run)"})

    def __post_init__(self):
        if isinstance(self.receivers, str):
            self.receivers = [self.receivers]
        if not self.receivers:
            raise ValueError("at least one receiver is needed")
        for name in (self.sender, *self.receivers):
            check_model_name(name)
        positive = ("num_latents", "d_z", "d_model", "depth", "heads", "num_soft_tokens", "steps", "batch_size",
                    "max_train_examples", "val_examples", "eval_every", "checkpoint_every", "answer_tokens",
                    "max_new_tokens")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.message_head_weight < 0:
            raise ValueError(f"message_head_weight must be >= 0, got {self.message_head_weight}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not 0 <= self.warmup < 1:
            raise ValueError(f"warmup must be in [0, 1), got {self.warmup}")
        if self.encoder not in ENCODERS:
            raise ValueError(f"unknown encoder {self.encoder!r}; known: {', '.join(ENCODERS.names())}")
        self.encoder_config()  # validates the encoder fields
        check_answer_rule(self.answer_rule)
        if len(set(self.layers)) != len(self.layers):
            raise ValueError(f"layers must be distinct, got {self.layers}")
        if self.layers and self.encoder == "bytes":
            raise ValueError("the bytes encoder reads no sender layers; leave --layers empty")
        for fmt in self.wire_formats:
            WireFormat(fmt)

    def encoder_config(self) -> EncoderConfig:
        return EncoderConfig(kind=self.encoder, num_latents=self.num_latents, d_z=self.d_z, d_model=self.d_model,
                             depth=self.depth, heads=self.heads, sender_layers=max(1, len(self.layers)))

    def sender_layers(self) -> int | list[int]:
        """What the encoder reads: `layer`, or the list `layers` when it names more than one."""
        if len(self.layers) == 1:
            return self.layers[0]
        return list(self.layers) if self.layers else self.layer

    def identity_hash(self) -> str:
        """Hash of everything that changes the result (not where it is written)."""
        values = config_to_dict(self)
        values.pop("output_dir")
        return config_hash(values)

    def replace(self, **changes) -> TrainConfig:
        return dataclasses.replace(self, **changes)
