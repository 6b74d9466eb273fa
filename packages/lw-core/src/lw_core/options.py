"""Option groups every command shares; a command's config inherits the groups it needs.

`RuntimeOptions`: where and how a command runs. `TrainingOptions`: the optimisation recipe of a
trained method. Task options (which data, which columns, how much of it) live in `lw_tasks.options`,
next to the task budgets they default to.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lw_core.models import DEVICES, DTYPE_CHOICES

DEFAULT_DTYPE = "auto"
"""One default for every command: bf16 where the hardware computes it natively, else fp32."""


def check_parents(config: object, cls: type) -> None:
    """Run the next `__post_init__` in the MRO after `cls`'s, so a config inheriting several groups checks them all."""
    parent = getattr(super(cls, config), "__post_init__", None)
    if parent is not None:
        parent()


def positive(config: object, *names: str) -> None:
    """Raise ValueError naming the first of `names` that is below 1."""
    for name in names:
        value = getattr(config, name)
        if value is not None and value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")


@dataclass
class RuntimeOptions:
    seed: int = field(default=0, metadata={"help": "run seed (initialisation, data order, training subset, draws)"})
    device: str = field(default="auto", metadata={"help": f"{' | '.join(DEVICES)} | cuda:N"})
    dtype: str = field(default=DEFAULT_DTYPE, metadata={
        "help": "model dtype; auto = bf16 where the hardware has native bf16 (recent CPUs, GPUs), else fp32",
        "choices": list(DTYPE_CHOICES)})
    eval_batch_size: int = field(default=64, metadata={"help": "examples per scoring / evaluation batch"})
    output_dir: str | None = field(default=None, metadata={
        "help": "run directory (default: $LW_RUNS/<task>/<method>/seed<S>-<config hash>, so the same command "
                "resumes or is recognised as done)"})
    progress: bool = field(default=True, metadata={"help": "show progress bars"})

    def __post_init__(self) -> None:
        if self.dtype not in DTYPE_CHOICES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPE_CHOICES)}, got {self.dtype!r}")
        positive(self, "eval_batch_size")
        check_parents(self, RuntimeOptions)


@dataclass
class TrainingOptions:
    steps: int = field(default=120, metadata={"help": "optimizer steps"})
    batch_size: int = field(default=32, metadata={"help": "examples per optimizer step"})
    lr: float = field(default=1e-3, metadata={"help": "peak learning rate (AdamW)"})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay"})
    warmup: float = field(default=0.05, metadata={"help": "fraction of steps of linear warm-up before cosine decay"})
    grad_clip: float = field(default=1.0, metadata={"help": "gradient-norm clipping"})
    eval_every: int = field(default=60, metadata={"help": "validate (and maybe keep the best) every N steps"})
    ema: float = field(default=0.0, metadata={
        "help": "decay of an exponential moving average of the trained parameters (e.g. 0.99); validation scores "
                "and the best step keeps the average instead of the parameters themselves (0 = off)"})

    def __post_init__(self) -> None:
        positive(self, "steps", "batch_size", "eval_every")
        lrs = self.lr if isinstance(self.lr, list) else [self.lr]
        if not lrs or not all(lr > 0 for lr in lrs):
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not 0 <= self.warmup < 1:
            raise ValueError(f"warmup must be in [0, 1), got {self.warmup}")
        if not 0 <= self.ema < 1:
            raise ValueError(f"ema must be in [0, 1), got {self.ema}")
        if self.grad_clip <= 0:
            raise ValueError(f"grad_clip must be > 0, got {self.grad_clip}")
        check_parents(self, TrainingOptions)
