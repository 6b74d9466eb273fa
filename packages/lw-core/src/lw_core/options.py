"""Option groups every command shares; a command's config takes the groups it needs side by side.

Each group is a leaf `OptionGroup` that knows its own fields only: its `--help` title (`help_title`),
which of them must be at least 1 (`at_least_one`) and any other check (`check_options`). A config
combines groups in one level (`class TrainConfig(TrainingOptions, RuntimeOptions, BudgetOptions,
TaskOptions)`), its flags stay flat, and one `__post_init__` runs every group's checks.
The runtime options: `ThreadOptions` (`--threads`), `DeviceOptions` (`--device`, `--dtype`),
`ScoringOptions` (`--eval-batch-size`, `--output-dir`, `--progress`), and `RuntimeOptions`, the three
plus `--seed` (a run). `ModelOptions`: `--sender`, `--receivers`. `TrainingOptions`: the optimisation
recipe of a trained method. Task options (which data, which columns, how much of it) live in
`lw_tasks.options`, next to the task budgets they default to.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields
from typing import Any, ClassVar

from lw_core.models import DEVICES, DTYPE_CHOICES

DEFAULT_DTYPE = "auto"
"""One default for every command: bf16 where the hardware computes it natively, else fp32."""


def positive(config: object, *names: str) -> None:
    """Raise ValueError naming the first of `names` that is below 1."""
    for name in names:
        value = getattr(config, name)
        if value is not None and value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")


DEFAULT_SENDER = "smollm2-135m"
DEFAULT_RECEIVER = "gemma3-270m"


class OptionGroup:
    """A group of options (a dataclass mixin). Subclass it for a group; a config inherits groups side
    by side and, if it checks fields of its own, calls `super().__post_init__()` (or declares them in
    `at_least_one` / `check_options` as a group does). A group's `check_options(self)`, when it has
    one, checks its own fields beyond `at_least_one` and raises ValueError."""

    help_title: ClassVar[str | None] = None
    """The heading of this group's flags in `--help` (None: listed with the command's own options)."""
    at_least_one: ClassVar[tuple[str, ...]] = ()
    """This group's fields that must be >= 1 when set."""

    def __post_init__(self) -> None:
        groups = [vars(group) for group in type(self).__mro__]  # most specific group first
        positive(self, *(name for own in groups for name in own.get("at_least_one", ())))
        for own in groups:
            if "check_options" in own:
                own["check_options"](self)


@dataclass
class ThreadOptions(OptionGroup):
    help_title = "runtime options"
    at_least_one = ("threads",)

    threads: int | None = field(default=None, metadata={
        "help": "torch CPU threads (torch.set_num_threads; none = torch's own choice)", "min": 1})


@dataclass
class DeviceOptions(OptionGroup):
    help_title = "runtime options"

    device: str = field(default="auto", metadata={"help": f"{' | '.join(DEVICES)} | cuda:N"})
    dtype: str = field(default=DEFAULT_DTYPE, metadata={
        "help": "model dtype; auto = bf16 where the hardware has native bf16 (recent CPUs, GPUs), else fp32; "
                "commands reading a saved bridge (lw-eval, lw-serve) default to the dtype it trained in",
        "choices": list(DTYPE_CHOICES)})

    def check_options(self) -> None:
        if self.dtype is not None and self.dtype not in DTYPE_CHOICES:  # None: a saved bridge's own (lw-eval)
            raise ValueError(f"dtype must be one of {', '.join(DTYPE_CHOICES)}, got {self.dtype!r}")


@dataclass
class ScoringOptions(OptionGroup):
    help_title = "runtime options"
    at_least_one = ("eval_batch_size",)

    eval_batch_size: int = field(default=64, metadata={"help": "examples per scoring / evaluation batch"})
    output_dir: str | None = field(default=None, metadata={
        "help": "where results are written (default: a new run's $LW_RUNS/<task>/<method>/seed<S>-<config hash>, "
                "so the same command resumes or is recognised as done; lw-eval: the run directory it reads)"})
    progress: bool = field(default=True, metadata={"help": "show progress bars"})


@dataclass
class RuntimeOptions(ScoringOptions, DeviceOptions, ThreadOptions):
    """The runtime groups together, and a run's seed (fields in the order threads, device, ..., seed)."""

    help_title = "runtime options"

    seed: int = field(default=0, metadata={"help": "run seed (initialisation, data order, training subset, draws)"})


@dataclass
class ModelOptions(OptionGroup):
    help_title = "models"

    sender: str = field(default=DEFAULT_SENDER, metadata={
        "help": "sender model: preset, folder or hub id (lw-eval: default the one the bridge trained with)"})
    receivers: list[str] = field(default_factory=lambda: [DEFAULT_RECEIVER], metadata={
        "help": "receiver model(s): preset, folder or hub id; lw-train: several = interlingua (one adapter each); "
                "lw-eval: in the bridge's receiver order, default those it trained with; other commands take one"})


def shared_field(group: type, name: str, **changes: Any) -> Any:
    """Field `name` of option group `group` for a config that cannot inherit the group: the same flag,
    help and group in `--help`. `changes`: `default`, `one_value` (a single-valued field behind a list
    flag such as `--receivers`: exactly one value), `aliases` (old flag names that still work and warn
    once), `positional`. The config's own field name may differ from `name` (its run ids stay stable)."""
    source = {f.name: f for f in fields(group)}[name]
    metadata = dict(source.metadata) | {"flag": name, "help_title": group.help_title}
    metadata |= {k: changes.pop(k) for k in ("one_value", "aliases", "positional") if k in changes}
    if "default" in changes:
        return field(default=changes.pop("default"), metadata=metadata)
    if changes:
        raise TypeError(f"shared_field: unknown change(s) {', '.join(changes)}")
    if source.default_factory is not MISSING:
        return field(default_factory=source.default_factory, metadata=metadata)
    return field(default=source.default, metadata=metadata)


def apply_threads(config: object) -> None:
    """Set torch's CPU thread count when the config names one (every command that takes `--threads`)."""
    threads = getattr(config, "threads", None)
    if threads:
        import torch

        torch.set_num_threads(threads)


@dataclass
class TrainingOptions(OptionGroup):
    help_title = "training options"
    at_least_one = ("steps", "batch_size", "eval_every")

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

    def check_options(self) -> None:
        lrs = self.lr if isinstance(self.lr, list) else [self.lr]
        if not lrs or not all(lr > 0 for lr in lrs):
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not 0 <= self.warmup < 1:
            raise ValueError(f"warmup must be in [0, 1), got {self.warmup}")
        if not 0 <= self.ema < 1:
            raise ValueError(f"ema must be in [0, 1), got {self.ema}")
        if self.grad_clip <= 0:
            raise ValueError(f"grad_clip must be > 0, got {self.grad_clip}")
