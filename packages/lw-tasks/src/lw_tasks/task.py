"""The task contract every method is scored against.

A task has fixed splits of examples and, for classification, a finite answer set: `answers` (names)
and `verbalizers` (the text continuation each answer is scored as; multi-token allowed). Every method
is a *scorer*: given a task and a batch of examples it returns scores over the task's answers, shape
[batch, len(answers)] (log-probabilities where it has them). A row of all `-inf` means "no valid
answer" (a generated text that parsed to nothing) and counts as invalid, never as a class.
"""

from __future__ import annotations

import dataclasses
import string
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import torch
from lw_core.errors import LwError
from lw_core.seeding import stratified_subset

SPLITS = ("train", "validation", "test")
CONTENT_FREE = ("N/A", "", "[MASK]")
"""Content-free inputs for contextual calibration (Zhao et al., 2021), run through the task's own template."""
TRAIN_BUDGET = 3000
"""Default training examples for every trained method (bridge and baselines alike): a CPU budget."""
VALIDATION_BUDGET = 500
"""Default validation examples for every choice made on validation (checkpoint, learning rate, C, ...)."""


@dataclass(frozen=True)
class Example:
    """One input. `text` is the full input a text-reading method sees (all fields, truncated to the
    task's budget); `fields` keeps them apart (e.g. passage, question, choices)."""

    id: str
    text: str
    label: int | None = None
    """Index into the task's answers (classification); None for generative tasks."""
    references: tuple[str, ...] = ()
    """Reference answers (generative QA)."""
    fields: dict[str, str] = field(default_factory=dict)


def template_fields(template: str) -> list[str]:
    """The `{name}` placeholders of a format string."""
    try:
        return [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as err:
        raise LwError(f"invalid template {template!r}: {err}") from None


@dataclass
class Task:
    name: str
    description: str
    kind: Literal["classification", "generative"]
    answers: list[str]
    """Answer names in class-index order (read from the source, never retyped)."""
    verbalizers: list[str]
    """What each answer is scored as, right after the prompt (e.g. " positive"), aligned with `answers`."""
    template: str
    """Prompt for text-reading methods; `{text}` is replaced by the example's text. The answer follows it."""
    splits: dict[str, list[Example]]
    max_input_words: int
    """The input budget, identical for every method: texts are cut to this many whitespace tokens."""
    metrics: tuple[str, ...] = ("accuracy", "macro_f1")
    source: str = ""
    """Where the data comes from (package file, hub id, user file)."""
    extra: dict[str, Any] = field(default_factory=dict)
    input_fields: tuple[str, ...] = ("text",)
    """The source fields an example's `text` is composed of."""
    input_template: str = "{text}"
    """How the input fields compose into `Example.text`."""

    def __post_init__(self) -> None:
        if self.kind not in ("classification", "generative"):
            raise LwError(f"task {self.name!r}: unknown kind {self.kind!r}; known: classification, generative")
        if self.kind == "classification":
            if len(self.answers) < 2:
                raise LwError(f"task {self.name!r} needs at least two answers, got {self.answers}")
            if len(self.verbalizers) != len(self.answers):
                raise LwError(
                    f"task {self.name!r}: {len(self.verbalizers)} verbalizers for {len(self.answers)} answers"
                )
            for kind, values in (("answer", self.answers), ("verbalizer", self.verbalizers)):
                dupes = sorted(v for v, n in Counter(values).items() if n > 1)
                if dupes:
                    raise LwError(f"task {self.name!r}: duplicate {kind}(s) {', '.join(map(repr, dupes))}")
            empty = [a for a, v in zip(self.answers, self.verbalizers, strict=True) if not v.strip()]
            if empty:
                raise LwError(f"task {self.name!r}: empty verbalizer for answer(s) {', '.join(empty)}")
        allowed = {"text", *self.input_fields}
        unknown = sorted(set(template_fields(self.template)) - allowed)
        if unknown:
            raise LwError(
                f"task {self.name!r}: template uses unknown field(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(allowed))}"
            )

    # ---- splits ------------------------------------------------------------------------------
    def split(self, name: str) -> list[Example]:
        if name not in self.splits:
            raise LwError(f"task {self.name!r} has no split {name!r}; known: {', '.join(self.splits)}")
        examples = self.splits[name]
        if not examples:
            raise LwError(f"task {self.name!r}: split {name!r} is empty")
        return examples

    def budget_view(self, train: int | None, validation: int | None, seed: int) -> Task:
        """The task as every trained method sees it: train cut to a seeded class-stratified subset of
        `train` examples, validation to its first `validation` examples (splits are stored in seeded
        shuffled order, so a prefix is a fair sample, and it is the same for every method and seed);
        test untouched."""

        def cut_train(examples: list[Example]) -> list[Example]:
            if train is None or train >= len(examples):
                return list(examples)
            return [examples[i] for i in stratified_subset([e.label for e in examples], train, seed)]

        splits = dict(self.splits)
        splits["train"] = cut_train(self.split("train"))
        splits["validation"] = list(self.split("validation"))[:validation]
        return dataclasses.replace(self, splits=splits)

    def sizes(self) -> dict[str, int]:
        return {name: len(examples) for name, examples in self.splits.items()}

    def class_counts(self, split: str) -> dict[str, int]:
        """How many examples of each answer a split holds (answer order)."""
        counts = Counter(e.label for e in self.split(split))
        return {answer: counts.get(i, 0) for i, answer in enumerate(self.answers)}

    # ---- answers -----------------------------------------------------------------------------
    @property
    def verbalizer_map(self) -> dict[str, str]:
        """Answer name → verbalizer."""
        return dict(zip(self.answers, self.verbalizers, strict=True))

    def answer_index(self, name: str) -> int:
        try:
            return self.answers.index(name)
        except ValueError:
            raise LwError(
                f"task {self.name!r}: {name!r} is not in the answer set ({', '.join(self.answers)})"
            ) from None

    # ---- prompts -----------------------------------------------------------------------------
    def prompt(self, example: Example) -> str:
        return self.template.format(text=example.text, **example.fields)

    def content_free(self, token: str) -> Example:
        """A content-free input (every field set to `token`) for contextual calibration."""
        fields = {f: token for f in self.input_fields if f != "text"}
        text = self.input_template.format(**{f: token for f in self.input_fields})
        return Example(id=f"content-free:{token}", text=text, fields=fields)

    def labels(self, examples: Sequence[Example]) -> torch.Tensor:
        return torch.tensor([e.label for e in examples], dtype=torch.long)


@runtime_checkable
class Scorer(Protocol):
    """What every method implements: scores over `task.answers` for a batch of examples."""

    def score(self, task: Task, examples: Sequence[Example]) -> torch.Tensor: ...
