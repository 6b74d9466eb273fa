"""The task contract every method is scored against.

A task has fixed splits of examples and, for classification, a finite answer set: `answers` (names)
and `verbalizers` (the text continuation each answer is scored as; multi-token allowed). Every method
is a *scorer*: given a task and a batch of examples it returns scores over the task's answers, shape
[batch, len(answers)] (log-probabilities where it has them). A row of all `-inf` means "no valid
answer" (a generated text that parsed to nothing) and counts as invalid, never as a class.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import torch

from lw_core.errors import LwError

SPLITS = ("train", "validation", "test")


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


@dataclass
class Task:
    name: str
    description: str
    kind: Literal["classification", "generative"]
    answers: list[str]
    """Answer names in class-index order (read from the source, never retyped)."""
    verbalizers: list[str]
    """What each answer is scored as, right after the prompt (e.g. " positive")."""
    template: str
    """Prompt for text-reading methods; `{text}` is replaced by the example's text. The answer follows it."""
    splits: dict[str, list[Example]]
    max_input_words: int
    """The input budget, identical for every method: texts are cut to this many whitespace tokens."""
    metrics: tuple[str, ...] = ("accuracy", "macro_f1")
    source: str = ""
    """Where the data comes from (package file, hub id, user file)."""
    extra: dict[str, Any] = field(default_factory=dict)

    def split(self, name: str) -> list[Example]:
        if name not in self.splits:
            raise LwError(f"task {self.name!r} has no split {name!r}; known: {', '.join(self.splits)}")
        examples = self.splits[name]
        if not examples:
            raise LwError(f"task {self.name!r}: split {name!r} is empty")
        return examples

    def prompt(self, example: Example) -> str:
        return self.template.format(text=example.text, **example.fields)

    def labels(self, examples: Sequence[Example]) -> torch.Tensor:
        return torch.tensor([e.label for e in examples], dtype=torch.long)


@runtime_checkable
class Scorer(Protocol):
    """What every method implements: scores over `task.answers` for a batch of examples."""

    def score(self, task: Task, examples: Sequence[Example]) -> torch.Tensor: ...
