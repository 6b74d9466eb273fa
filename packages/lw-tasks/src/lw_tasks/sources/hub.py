"""Hub datasets (the `hub` extra, network needed) with the same contract as the embedded tasks.

Rows come from `datasets.load_dataset(hub_id, config, split=...)`; class names come from the dataset's
own `ClassLabel` features, never retyped. With `data_dir=` a task reads local files instead: one
`{split}.jsonl` / `.json` / `.parquet` / `.csv` per source split, in the dataset's own schema, plus
the `dataset_info.json` that `datasets` writes (`Dataset.save_to_disk` / `DatasetInfo.write_to_directory`)
for the class names. That is how the tests run every loader without a network.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lw_core.errors import LwError

from lw_tasks.spec import RawData, RawRow
from lw_tasks.splits import normalize_text

Row = dict[str, Any]
Adapter = Callable[[Row, str, "list[str] | None"], "RawRow | str"]
"""(row, id, class names) → a RawRow, or a string saying why the row is skipped."""


@dataclass(frozen=True)
class HubSource:
    task: str
    hub_id: str
    config: str | None
    splits: dict[str, str]
    """Our split name → the dataset's split name (e.g. test → validation where test has no labels)."""
    adapt: Adapter
    label_column: str | None = None
    """The ClassLabel column whose names are the answers (None: the task fixes its answers)."""

    def __call__(self, options: dict[str, Any]) -> RawData:
        data_dir = options.get("data_dir")
        if data_dir:
            rows, names = self._read_local(Path(data_dir))
            source = f"{data_dir} (local files of {self.hub_id})"
        else:
            rows, names = self._read_hub()
            source = f"hub:{self.hub_id}" + (f"/{self.config}" if self.config else "")
        if self.label_column is not None and names is None:
            raise LwError(
                f"task {self.task!r}: the dataset gives no class names for column {self.label_column!r} "
                f"(a ClassLabel feature)"
            )
        dropped: dict[str, int] = {}
        splits: dict[str, list[RawRow]] = {}
        for ours, records in rows.items():
            out = []
            for i, record in enumerate(records):
                try:
                    row = self.adapt(record, f"{ours}-{i}", names)
                except (KeyError, TypeError, IndexError, ValueError) as err:
                    raise LwError(
                        f"task {self.task!r}: {ours} row {i} does not fit the {self.hub_id} schema ({type(err).__name__}: {err})"
                    ) from None
                if isinstance(row, str):
                    dropped[row] = dropped.get(row, 0) + 1
                else:
                    out.append(row)
            splits[ours] = out
        return RawData(splits, answers=names, source=source, dropped=dropped)

    # ---- readers -------------------------------------------------------------------------------
    def _read_hub(self) -> tuple[dict[str, list[Row]], list[str] | None]:
        try:
            import datasets
        except ImportError:
            raise LwError(
                f"task {self.task!r} loads {self.hub_id} from the hub and needs the `datasets` package: "
                f"pip install 'lw-tasks[hub]' (or pass data_dir= with local files)"
            ) from None
        rows, names = {}, None
        for ours, theirs in self.splits.items():
            try:
                ds = datasets.load_dataset(self.hub_id, self.config, split=theirs)
            except Exception as err:  # network, auth, missing config: all surface as one line
                first = (str(err).strip().splitlines() or [type(err).__name__])[0]
                raise LwError(f"task {self.task!r}: could not load {self.hub_id} split {theirs!r} ({first})") from None
            if self.label_column is not None:
                feature = ds.features.get(self.label_column)
                names = list(feature.names) if hasattr(feature, "names") else None
            rows[ours] = list(ds)
        return rows, names

    def _read_local(self, folder: Path) -> tuple[dict[str, list[Row]], list[str] | None]:
        rows = {ours: read_records(find_split_file(folder, theirs, self.task)) for ours, theirs in self.splits.items()}
        names = None
        if self.label_column is not None:
            info = folder / "dataset_info.json"
            if info.is_file():
                feature = json.loads(info.read_text()).get("features", {}).get(self.label_column, {})
                names = feature.get("names") if isinstance(feature, dict) else None
        return rows, names


def find_split_file(folder: Path, split: str, task: str) -> Path:
    for suffix in (".jsonl", ".json", ".parquet", ".csv"):
        path = folder / f"{split}{suffix}"
        if path.is_file():
            return path
    raise LwError(f"task {task!r}: no {split}.jsonl / .json / .parquet / .csv in {folder}")


def _jsonl_rows(path: Path) -> list[Row]:
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as err:  # its own line and column are within this one line
            raise LwError(f"could not read {path}: line {number} column {err.colno}: {err.msg}") from None
    return rows


def read_records(path: Path) -> list[Row]:
    """Rows of a JSONL, JSON (list of objects), parquet or CSV file."""
    import polars as pl

    try:
        if path.suffix == ".jsonl":
            return _jsonl_rows(path)
        if path.suffix == ".json":
            data = json.loads(path.read_text())
            if not isinstance(data, list):
                raise LwError(f"{path}: a .json data file must hold a list of objects")
            return data
        if path.suffix == ".parquet":
            return pl.read_parquet(path).to_dicts()
        if path.suffix == ".csv":
            return pl.read_csv(path, infer_schema=False).to_dicts()
    except (json.JSONDecodeError, pl.exceptions.PolarsError, OSError) as err:
        raise LwError(f"could not read {path}: {str(err).splitlines()[0] if str(err) else type(err).__name__}") from None
    raise LwError(f"{path}: unsupported data file; use .csv, .jsonl, .json or .parquet")


# ---- adapters: one per dataset schema ----------------------------------------------------------
LETTERS = "ABCDEFGHIJ"


def text_label(text_column: str, label_column: str) -> Adapter:
    def adapt(row: Row, id: str, names: list[str] | None) -> RawRow | str:
        label = row[label_column]
        if label is None or int(label) < 0:
            return "unlabelled"
        return RawRow(id=id, fields={"text": row[text_column]}, label=names[int(label)])  # type: ignore[index]

    return adapt


def boolq(row: Row, id: str, _: list[str] | None) -> RawRow:
    answer = row["answer"]
    if isinstance(answer, str):
        answer = answer.strip().lower() in ("true", "1", "yes")
    return RawRow(id=id, fields={"passage": row["passage"], "question": row["question"]}, label="yes" if answer else "no")


def lettered(options: list[str]) -> str:
    return "\n".join(f"{LETTERS[i]}. {text}" for i, text in enumerate(options))


def arc(row: Row, id: str, _: list[str] | None) -> RawRow | str:
    choices = row["choices"]
    texts, labels = list(choices["text"]), [str(x) for x in choices["label"]]
    if len(texts) != 4:
        return "not_four_choices"
    key = str(row["answerKey"])
    if key not in labels:
        raise ValueError(f"answerKey {key!r} not among choice labels {labels}")
    fields = {"question": row["question"], "choices": lettered(texts)}
    return RawRow(id=id, fields=fields, label=LETTERS[labels.index(key)])


def winogrande(row: Row, id: str, _: list[str] | None) -> RawRow | str:
    answer = str(row["answer"]).strip()
    if answer not in ("1", "2"):
        return "unlabelled"
    options = f"1. {row['option1']}\n2. {row['option2']}"
    return RawRow(id=id, fields={"sentence": row["sentence"], "options": options}, label=answer)


def hellaswag(row: Row, id: str, _: list[str] | None) -> RawRow | str:
    label = str(row["label"]).strip()
    if not label.isdigit():
        return "unlabelled"
    endings = list(row["endings"])
    if len(endings) != 4:
        return "not_four_endings"
    context = f"{row['activity_label']}: {row['ctx']}" if row.get("activity_label") else row["ctx"]
    return RawRow(id=id, fields={"context": context, "endings": lettered(endings)}, label=LETTERS[int(label)])


def unique_references(values) -> tuple[str, ...]:
    return tuple(dict.fromkeys(v.strip() for v in values if v and v.strip()))


def squad(row: Row, id: str, _: list[str] | None) -> RawRow | str:
    references = unique_references(row["answers"]["text"])
    if not references:
        return "no_answer"
    return RawRow(id=id, fields={"context": row["context"], "question": row["question"]}, references=references)


def hotpotqa_context(row: Row, budget_words: int) -> str:
    """The distractor-setting paragraphs in their own order: every supporting paragraph, and the
    distractors only while they fit in the budget, so the prompt carries everything the question needs."""
    titles = list(row["context"]["title"])
    sentences = list(row["context"]["sentences"])
    gold = set(row["supporting_facts"]["title"])
    paragraphs = [(t, f"{t}: {' '.join(s.strip() for s in sents)}") for t, sents in zip(titles, sentences, strict=True)]
    reserved = sum(len(p.split()) for t, p in paragraphs if t in gold)
    used, out = 0, []
    for title, paragraph in paragraphs:
        words = len(paragraph.split())
        if title in gold:
            out.append(paragraph)
            used += words
            reserved -= words
        elif used + reserved + words <= budget_words:
            out.append(paragraph)
            used += words
    return "\n".join(out)


HOTPOT_BUDGET = 384


def hotpotqa(row: Row, id: str, _: list[str] | None) -> RawRow | str:
    references = unique_references([row["answer"]])
    if not references:
        return "no_answer"
    context = hotpotqa_context(row, HOTPOT_BUDGET - len(row["question"].split()) - 4)
    return RawRow(id=id, fields={"context": context, "question": row["question"]}, references=references)


def answer_in_context(example) -> bool:
    """QA examples whose truncated context still holds one of the references (else unanswerable)."""
    context = normalize_text(example.fields.get("context", example.text))
    return any(normalize_text(r) in context for r in example.references)
