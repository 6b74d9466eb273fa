"""A user's own CSV / JSONL / parquet / YAML / TOML data becomes a task; bad input fails with one line."""

from __future__ import annotations

import json

import polars as pl
import pytest
from lw_core.errors import LwError
from lw_tasks import SPLITS, load_task
from lw_tasks.splits import normalize_text


def rows(n: int = 60, labels=("bad", "good")):
    return [{"review": f"review number {i} says {'great' if i % 2 else 'awful'} things", "stars": labels[i % 2],
             "extra": i} for i in range(n)]  # fmt: skip


def disjoint(task) -> bool:
    keys = {s: {normalize_text(e.text) for e in task.split(s)} for s in SPLITS}
    return not (keys["train"] & keys["test"] or keys["train"] & keys["validation"] or keys["validation"] & keys["test"])


def test_csv_with_column_flags(tmp_path):
    path = tmp_path / "reviews.csv"
    pl.DataFrame(rows()).write_csv(path)
    task = load_task(str(path), text_column="review", label_column="stars")
    assert task.name == "reviews" and task.answers == ["bad", "good"] and task.verbalizers == [" bad", " good"]
    assert task.sizes() == {"train": 48, "validation": 6, "test": 6} and disjoint(task)
    assert task.prompt(task.split("test")[0]).endswith("\nAnswer:")
    assert "sha256" in task.source


@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".parquet"])
def test_other_formats(tmp_path, suffix):
    path = tmp_path / f"data{suffix}"
    data = [{"text": r["review"], "label": i % 3} for i, r in enumerate(rows(90))]
    if suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in data))
    elif suffix == ".json":
        path.write_text(json.dumps(data))
    else:
        pl.DataFrame(data).write_parquet(path)
    task = load_task(str(path))
    assert task.answers == ["0", "1", "2"]  # integer labels, numeric order
    assert sum(task.sizes().values()) == 90


def test_a_bad_jsonl_line_is_named_by_its_number(tmp_path):
    path = tmp_path / "data.jsonl"
    lines = [json.dumps({"text": r["review"], "label": i % 2}) for i, r in enumerate(rows(10))]
    lines[5] = '{"text": oops}'
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(LwError, match=f"^could not read {path}: line 6 column 10: Expecting value$"):
        load_task(str(path))


def test_yaml_task_file(tmp_path):
    pl.DataFrame(rows()).write_csv(tmp_path / "reviews.csv")
    (tmp_path / "task.yaml").write_text(
        "name: my-reviews\n"
        "data: reviews.csv\n"
        "text_column: review\n"
        "label_column: stars\n"
        "answers: {good: ' great', bad: ' terrible'}\n"
        "template: \"Review: {text}\\nVerdict:\"\n"
        "max_input_words: 3\n"
    )
    task = load_task(str(tmp_path / "task.yaml"))
    assert task.name == "my-reviews"
    assert task.answers == ["good", "bad"] and task.verbalizer_map == {"good": " great", "bad": " terrible"}
    example = task.split("test")[0]
    assert len(example.text.split()) == 3
    assert task.prompt(example) == f"Review: {example.text}\nVerdict:"
    # truncation happens before dedup: all texts start "review number N", unique within 3 words
    assert sum(task.sizes().values()) == 60


def test_toml_task_file_with_split_files_and_fields(tmp_path):
    train = [{"q": f"question {i}", "ctx": f"context {i}", "y": "yes" if i % 2 else "no"} for i in range(40)]
    test = [{"q": f"question {i}", "ctx": f"context {i}", "y": "yes" if i % 2 else "no"} for i in range(100, 110)]
    train.append(dict(test[0]))  # also in test: removed from train
    pl.DataFrame(train).write_parquet(tmp_path / "train.parquet")
    pl.DataFrame(test).write_parquet(tmp_path / "test.parquet")
    (tmp_path / "qa.toml").write_text(
        'data = { train = "train.parquet", test = "test.parquet" }\n'
        'input_fields = ["ctx", "q"]\n'
        'input_template = "Context: {ctx}\\nQuestion: {q}"\n'
        'label_column = "y"\n'
        'answers = ["no", "yes"]\n'
        'template = "{text}\\nAnswer:"\n'
    )
    task = load_task(str(tmp_path / "qa.toml"))
    assert task.sizes() == {"train": 36, "validation": 4, "test": 10}
    assert task.extra["dropped"]["train_in_test"] == 1 and disjoint(task)
    example = task.split("test")[0]
    assert example.text.startswith("Context: context 10") and example.fields["q"].startswith("question")
    assert task.content_free("N/A").text == "Context: N/A\nQuestion: N/A"


def test_split_column(tmp_path):
    data = [{"text": f"t {i}", "label": "ab"[i % 2], "split": ["train"] * 3 + ["dev", "test"]} for i in range(40)]
    data = [{**d, "split": d["split"][i % 5]} for i, d in enumerate(data)]
    pl.DataFrame(data).write_csv(tmp_path / "d.csv")
    task = load_task(str(tmp_path / "d.csv"), split_column="split")
    assert task.sizes() == {"train": 24, "validation": 8, "test": 8}


# ---- errors: one clear line ---------------------------------------------------------------------
def one_line(excinfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    return message


def test_label_outside_the_answer_set(tmp_path):
    pl.DataFrame(rows()).write_csv(tmp_path / "reviews.csv")
    (tmp_path / "t.yaml").write_text("data: reviews.csv\ntext_column: review\nlabel_column: stars\nanswers: [good, meh]\n")
    with pytest.raises(LwError) as excinfo:
        load_task(str(tmp_path / "t.yaml"))
    assert "label 'bad'" in one_line(excinfo) and "not in the answer set (good, meh)" in str(excinfo.value)


def test_empty_split(tmp_path):
    pl.DataFrame([{"text": f"t {i}", "label": "ab"[i % 2]} for i in range(4)]).write_csv(tmp_path / "tiny.csv")
    with pytest.raises(LwError) as excinfo:
        load_task(str(tmp_path / "tiny.csv"))
    assert "split 'validation' is empty" in one_line(excinfo)


def test_unknown_task_name():
    with pytest.raises(LwError) as excinfo:
        load_task("rt-sentimnet")
    message = one_line(excinfo)
    assert "unknown task 'rt-sentimnet'" in message and "rt-sentiment" in message and "20ng" in message


def test_missing_column_and_file(tmp_path):
    pl.DataFrame(rows()).write_csv(tmp_path / "reviews.csv")
    with pytest.raises(LwError, match="has no column 'text'; columns: review, stars, extra"):
        load_task(str(tmp_path / "reviews.csv"))
    with pytest.raises(LwError, match="task file not found"):
        load_task(str(tmp_path / "nope.csv"))
    (tmp_path / "bad.yaml").write_text("data: reviews.csv\ncolour: red\n")
    with pytest.raises(LwError, match="unknown key"):
        load_task(str(tmp_path / "bad.yaml"))


def test_unknown_option_for_a_named_task():
    with pytest.raises(LwError, match="takes no option"):
        load_task("rt-sentiment", text_column="x")


def test_template_with_unknown_field(tmp_path):
    pl.DataFrame(rows()).write_csv(tmp_path / "reviews.csv")
    with pytest.raises(LwError, match="unknown field"):
        load_task(str(tmp_path / "reviews.csv"), text_column="review", label_column="stars", template="{review}:")
