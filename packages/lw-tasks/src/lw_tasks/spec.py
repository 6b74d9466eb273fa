"""How a task is built from its source: rows → labelled, truncated, deduplicated examples → fixed splits.

Every source (embedded corpus, hub dataset, user file) yields `RawData`; `build_task` applies the same
policy to all of them:

1. every label must be in the answer set (else one clear `LwError`);
2. each example's text is composed from its fields and cut to the task's word budget;
3. texts are deduplicated on their normalised, truncated form (what a method actually reads); a text
   seen with two different labels is dropped;
4. a source without splits is split 80/10/10, stratified; a source with an official test split keeps
   it, and validation is carved (stratified) from train; any train/validation text that also occurs in
   test (or train text that occurs in validation) is removed;
5. optionally the test split is a seeded stratified sample of the official one (`test_size`);
6. each split is stored in a seeded shuffled order, so a prefix (`limit=N`) is a fair sample.

All orders come from `lw_tasks.splits` (sha256 of the text and a constant seed): identical on every
run and every machine.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from lw_core.errors import LwError

from lw_tasks.splits import (
    SPLIT_SEED,
    count_words,
    normalize_text,
    seeded_key,
    stratified_fractions,
    stratified_take,
    truncate_words,
)
from lw_tasks.task import SPLITS, Example, Task, template_fields


@dataclass(frozen=True)
class RawRow:
    """One source row: its input fields, its answer name (classification) or references (QA)."""

    id: str
    fields: dict[str, str]
    label: str | None = None
    references: tuple[str, ...] = ()


@dataclass
class RawData:
    """Rows per source split: either {"all": rows} or some of train / validation / test."""

    splits: dict[str, list[RawRow]]
    answers: list[str] | None = None
    """Answer names in the source's own order (e.g. a hub ClassLabel's names), if it has one."""
    source: str = ""
    dropped: dict[str, int] = field(default_factory=dict)
    """Rows the loader skipped, by reason."""


Verbalizers = Mapping[str, str] | Callable[[str], str] | None


@dataclass(frozen=True)
class TaskSpec:
    """Everything about a task except its rows; `load(options)` fetches those."""

    name: str
    description: str
    load: Callable[[dict[str, Any]], RawData]
    template: str
    max_input_words: int
    kind: Literal["classification", "generative"] = "classification"
    answers: tuple[str, ...] | None = None
    """Fixed answer names; None = the source's own names (sorted if it has no order)."""
    verbalizers: Verbalizers = None
    """Answer name → verbalizer (a mapping or a function); None = " " + name."""
    input_fields: tuple[str, ...] = ("text",)
    input_template: str = "{text}"
    truncate_field: str | None = None
    """The field cut to fit the budget (default: the first input field)."""
    metrics: tuple[str, ...] = ("accuracy", "macro_f1")
    validation_size: int = 500
    """Carved from train when the source has no validation split (capped at 10% of train)."""
    test_size: int | None = None
    """A seeded stratified sample of this many official test examples (None = all of them)."""
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    """train / validation / test fractions for a source without splits."""
    source: str = ""
    options: tuple[str, ...] = ()
    """Options `load_task` accepts for this task (besides `max_input_words`)."""
    keep: Callable[[Example], bool] | None = None
    """Drops examples after truncation (e.g. QA whose answer was cut out of the context)."""
    split_salt: str | None = None
    """Salt of the seeded orders (default: the name); tasks sharing it share their splits (20ng / 20ng-full)."""

    def build(self, **options: Any) -> Task:
        known = {"max_input_words", *self.options}
        unknown = sorted(set(options) - known)
        if unknown:
            raise LwError(
                f"task {self.name!r} takes no option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        budget = options.pop("max_input_words", None) or self.max_input_words
        raw = self.load(options)
        return build_task(self, raw, max_input_words=int(budget))


def _verbalizer(spec: TaskSpec, answer: str) -> str:
    v = spec.verbalizers
    if v is None:
        return " " + answer
    if callable(v):
        return v(answer)
    if answer not in v:
        raise LwError(f"task {spec.name!r}: no verbalizer for answer {answer!r}; verbalizers cover {', '.join(v)}")
    return v[answer]


def compose_text(spec: TaskSpec, fields: dict[str, str], budget: int) -> tuple[str, dict[str, str]]:
    """The example text (fields composed and cut to `budget` words) and the truncated fields."""
    cut = spec.truncate_field or spec.input_fields[0]
    fields = {k: v.strip() for k, v in fields.items()}
    fixed = count_words(spec.input_template.format(**{**fields, cut: ""}))
    fields[cut] = truncate_words(fields.get(cut, ""), max(budget - fixed, 0))
    text = spec.input_template.format(**fields)
    if count_words(text) > budget:  # the fixed fields alone exceed the budget
        text = truncate_words(text, budget)
    return text, fields


def _check_template(spec: TaskSpec) -> None:
    for name, template in (("input_template", spec.input_template), ("template", spec.template)):
        allowed = set(spec.input_fields) | ({"text"} if name == "template" else set())
        unknown = sorted(set(template_fields(template)) - allowed)
        if unknown:
            raise LwError(
                f"task {spec.name!r}: {name} uses unknown field(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(allowed))}"
            )


def build_task(spec: TaskSpec, raw: RawData, *, max_input_words: int | None = None) -> Task:
    budget = max_input_words or spec.max_input_words
    if budget < 1:
        raise LwError(f"task {spec.name!r}: max_input_words must be >= 1, got {budget}")
    _check_template(spec)
    classification = spec.kind == "classification"
    unknown_splits = sorted(set(raw.splits) - {"all", *SPLITS})
    if unknown_splits or ("all" in raw.splits and len(raw.splits) > 1):
        raise LwError(f"task {spec.name!r}: source splits {sorted(raw.splits)} must be 'all' or train/validation/test")
    if "all" not in raw.splits and "test" not in raw.splits:
        raise LwError(f"task {spec.name!r}: the source has no test split (splits: {', '.join(raw.splits)})")

    # ---- the answer set ----------------------------------------------------------------------
    answers: list[str] = []
    if classification:
        if spec.answers is not None:
            answers = list(spec.answers)
        elif raw.answers is not None:
            answers = list(raw.answers)
        else:
            answers = sorted({r.label for rows in raw.splits.values() for r in rows if r.label is not None})
        index = {a: i for i, a in enumerate(answers)}
        for split, rows in raw.splits.items():
            for row in rows:
                if row.label is None or row.label not in index:
                    raise LwError(
                        f"task {spec.name!r}: label {row.label!r} of {split} row {row.id} is not in the answer "
                        f"set ({', '.join(answers)})"
                    )
    verbalizers = [_verbalizer(spec, a) for a in answers]

    # ---- examples: truncate, key, dedupe within each source split ----------------------------
    dropped: Counter[str] = Counter(raw.dropped)
    parts: dict[str, list[Example]] = {}
    for split, rows in raw.splits.items():
        by_key: dict[str, Example] = {}
        conflicted: set[str] = set()
        for row in rows:
            text, fields = compose_text(spec, row.fields, budget)
            if not normalize_text(text):
                dropped["empty_text"] += 1
                continue
            example = Example(
                id=row.id,
                text=text,
                label=index[row.label] if classification else None,  # type: ignore[index]
                references=tuple(row.references),
                fields={k: v for k, v in fields.items() if k != "text" and k in spec.input_fields},
            )
            if spec.keep is not None and not spec.keep(example):
                dropped["filtered"] += 1
                continue
            key = normalize_text(text)
            if key in by_key:
                dropped["duplicate"] += 1
                if classification and by_key[key].label != example.label:
                    conflicted.add(key)
                continue
            by_key[key] = example
        for key in conflicted:
            dropped["conflicting_labels"] += 1
            del by_key[key]
        parts[split] = list(by_key.values())

    def label(e: Example) -> int:
        return -1 if e.label is None else e.label

    def key(e: Example) -> str:
        return normalize_text(e.text)

    salt = spec.split_salt or spec.name

    # ---- splits ------------------------------------------------------------------------------
    if "all" in parts:
        names = dict(zip(SPLITS, spec.fractions, strict=True))
        splits = stratified_fractions(parts["all"], label, key, names, salt=f"{salt}:split")
    else:
        test_keys = {key(e) for e in parts["test"]}
        splits = {"test": parts["test"]}
        for name in ("train", "validation"):
            if name in parts:
                kept = [e for e in parts[name] if key(e) not in test_keys]
                dropped[f"{name}_in_test"] += len(parts[name]) - len(kept)
                splits[name] = kept
        splits.setdefault("train", [])
        if "validation" in splits:
            val_keys = {key(e) for e in splits["validation"]}
            kept = [e for e in splits["train"] if key(e) not in val_keys]
            dropped["train_in_validation"] += len(splits["train"]) - len(kept)
            splits["train"] = kept
        else:
            n_val = min(spec.validation_size, max(1, round(0.1 * len(splits["train"]))))
            splits["validation"], splits["train"] = stratified_take(
                splits["train"], label, key, n_val, salt=f"{salt}:validation"
            )
        if spec.test_size is not None:
            official = len(splits["test"])
            splits["test"], _ = stratified_take(splits["test"], label, key, spec.test_size, salt=f"{salt}:test")
            if len(splits["test"]) < official:
                dropped["test_not_sampled"] += official - len(splits["test"])
    # Each split in a seeded shuffled order: any prefix (`evaluate(..., limit=N)`) is a fair sample.
    splits = {name: sorted(splits[name], key=lambda e: seeded_key(key(e), f"{salt}:order")) for name in SPLITS}
    for name, examples in splits.items():
        if not examples:
            total = sum(len(v) for v in splits.values())
            raise LwError(f"task {spec.name!r}: split {name!r} is empty ({total} examples in all after deduplication)")

    return Task(
        name=spec.name,
        description=spec.description,
        kind=spec.kind,
        answers=answers,
        verbalizers=verbalizers,
        template=spec.template,
        splits=splits,
        max_input_words=budget,
        metrics=spec.metrics,
        source=raw.source or spec.source,
        extra={"split_seed": SPLIT_SEED, "dropped": {k: v for k, v in sorted(dropped.items()) if v}},
        input_fields=spec.input_fields,
        input_template=spec.input_template,
    )
