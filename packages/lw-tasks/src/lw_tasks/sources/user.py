"""A user's own data as a task: a CSV / JSONL / JSON / parquet file, or a small YAML / TOML task file.

Plain data file: `load_task("reviews.csv", text_column="review", label_column="stars")`. The answer set
is the sorted set of labels and each answer is scored as " " + its name.

Task file (YAML or TOML), every key but `data` optional:

    name: reviews
    data: reviews.csv              # relative to the task file; or {train: a.csv, test: b.csv}
    text_column: review            # or input_fields: [question, passage] + input_template
    label_column: stars
    answers: {good: " good", bad: " bad"}    # or a list of names; labels outside it are an error
    template: "Review: {text}\\nVerdict:"
    max_input_words: 128
    split_column: split            # optional column holding train / validation / test

Splits follow the same policy as the built-in tasks (`lw_tasks.spec`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from lw_core.errors import LwError
from lw_registry.files import read_mapping

from lw_tasks.sources.hub import read_records
from lw_tasks.spec import RawData, RawRow, TaskSpec, build_task
from lw_tasks.task import SPLITS, Task

DATA_SUFFIXES = (".csv", ".jsonl", ".json", ".parquet")
TASK_FILE_SUFFIXES = (".yaml", ".yml", ".toml")
DEFAULT_TEMPLATE = "{text}\nAnswer:"
DEFAULT_BUDGET = 128
TASK_FILE_KEYS = {
    "name", "description", "data", "text_column", "label_column", "input_fields", "input_template",
    "answers", "template", "max_input_words", "split_column", "validation_size", "test_size",
}  # fmt: skip
USER_OPTIONS = ("text_column", "label_column", "template", "max_input_words", "split_column", "name")


def is_user_file(name: str) -> bool:
    return Path(name).suffix.lower() in DATA_SUFFIXES + TASK_FILE_SUFFIXES


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def _label_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    return text or None


def read_task_file(path: Path) -> dict[str, Any]:
    data = read_mapping(path, what="task file", error=LwError)
    unknown = sorted(set(data) - TASK_FILE_KEYS)
    if unknown:
        raise LwError(f"task file {path}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(TASK_FILE_KEYS))}")
    if "data" not in data:
        raise LwError(f"task file {path} needs a `data` key naming its CSV / JSONL / parquet file(s)")
    return data


def load_user_task(name_or_path: str, **options: Any) -> Task:
    path = Path(name_or_path).expanduser()
    unknown = sorted(set(options) - set(USER_OPTIONS) - {"data_dir"})
    if unknown:
        raise LwError(f"a task file takes no option(s) {', '.join(unknown)}; known: {', '.join(USER_OPTIONS)}")
    if not path.is_file():
        raise LwError(f"task file not found: {path}")
    options = {k: v for k, v in options.items() if v is not None and k != "data_dir"}
    if path.suffix.lower() in TASK_FILE_SUFFIXES:
        config = read_task_file(path) | options
        base = path.parent
        data = config["data"]
        files = {"all": base / data} if isinstance(data, str) else {k: base / v for k, v in dict(data).items()}
    else:
        config = dict(options)
        files = {"all": path}
    bad = sorted(set(files) - {"all", *SPLITS})
    if bad:
        raise LwError(f"task file {path}: data splits {', '.join(bad)} must be train, validation or test")

    fields = tuple(config.get("input_fields") or [config.get("text_column", "text")])
    text_only = len(fields) == 1
    input_template = config.get("input_template") or ("{" + fields[0] + "}" if text_only else
                                                      "\n".join(f"{f}: {{{f}}}" for f in fields))
    label_column = config.get("label_column", "label")
    split_column = config.get("split_column")
    answers = config.get("answers")
    verbalizers = None
    if isinstance(answers, dict):
        verbalizers = {str(k): str(v) for k, v in answers.items()}
        answers = tuple(verbalizers)
    elif answers is not None:
        answers = tuple(str(a) for a in answers)

    splits: dict[str, list[RawRow]] = {}
    for split, file in files.items():
        if not file.is_file():
            raise LwError(f"data file not found: {file}")
        if file.suffix.lower() not in DATA_SUFFIXES:
            raise LwError(f"{file}: unsupported data file; use {', '.join(DATA_SUFFIXES)}")
        records = read_records(file)
        if not records:
            raise LwError(f"data file {file} has no rows")
        columns = list(records[0])
        for column in (*fields, label_column) + ((split_column,) if split_column else ()):
            if column not in columns:
                raise LwError(f"{file} has no column {column!r}; columns: {', '.join(map(str, columns))}")
        for i, record in enumerate(records):
            label = _label_text(record[label_column])
            if label is None:
                raise LwError(f"{file}: row {i} has an empty label in column {label_column!r}")
            row_fields = {f: "" if record[f] is None else str(record[f]) for f in fields}
            if text_only:
                row_fields = {"text": row_fields[fields[0]]}
            target = split
            if split_column:
                target = str(record[split_column]).strip().lower()
                target = {"val": "validation", "dev": "validation", "valid": "validation"}.get(target, target)
                if target not in SPLITS:
                    raise LwError(f"{file}: row {i} has split {record[split_column]!r}; expected train, validation or test")
            splits.setdefault(target, []).append(RawRow(id=f"{file.stem}-{i}", fields=row_fields, label=label))
    if "all" in splits and len(splits) > 1:
        raise LwError(f"{path}: rows with and without a split column cannot be mixed")
    if "all" not in splits and "test" not in splits:
        raise LwError(f"{path}: the data has no test split (splits: {', '.join(sorted(splits))})")

    if not answers and all(r.label.lstrip("-").isdigit() for rows in splits.values() for r in rows):  # type: ignore[union-attr]
        labels = {r.label for rows in splits.values() for r in rows}
        answers = tuple(sorted(labels, key=int))  # type: ignore[arg-type]

    spec = TaskSpec(
        name=str(config.get("name") or path.stem),
        description=str(config.get("description") or f"user task from {path}"),
        load=lambda _: RawData({}),
        template=str(config.get("template") or DEFAULT_TEMPLATE),
        max_input_words=int(config.get("max_input_words") or DEFAULT_BUDGET),
        answers=answers,
        verbalizers=verbalizers,
        input_fields=("text",) if text_only else fields,
        input_template="{text}" if text_only else input_template,
        validation_size=int(config.get("validation_size") or 500),
        test_size=int(config["test_size"]) if config.get("test_size") else None,
        source=f"{path.resolve()} (sha256 {_sha256(path)})",
    )
    raw = RawData(splits, source=spec.source)
    task = build_task(spec, raw)
    task.extra["files"] = {k: str(v) for k, v in files.items()}
    return task
