import csv
import json
import random
import subprocess
import sys

import pytest
import torch
from lw_core.testing import save_tiny_pair, tiny_gemma3

torch.set_num_threads(1)

POSITIVE = ["great", "wonderful", "moving", "brilliant", "funny", "charming", "superb", "delightful"]
NEGATIVE = ["awful", "boring", "dull", "tedious", "messy", "clumsy", "bland", "painful"]


@pytest.fixture(scope="session")
def model_dirs(tmp_path_factory):
    """The tiny Llama (sender) and tiny Gemma3 (receiver) saved as HF folders, loaded like any model."""
    return save_tiny_pair(tmp_path_factory.mktemp("models"))


@pytest.fixture()
def qa_env(tmp_path, monkeypatch):
    """Runs and caches under tmp_path, and lw-train's task is the toy two-field QA task (`toy_qa_task`)."""
    from lw_bridge import trainer
    from lw_bridge.testing import toy_qa_task

    monkeypatch.setenv("LW_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("LW_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(trainer, "load_task", lambda name, **options: toy_qa_task())
    return tmp_path


@pytest.fixture(scope="session")
def word_piece_receiver_dir(tmp_path_factory):
    """The tiny Gemma3 with space+letter merges: multi-token answers that start with distinct tokens."""
    path = tmp_path_factory.mktemp("models") / "receiver-merges"
    lm = tiny_gemma3(word_start_merges=True)
    lm.model.save_pretrained(path)
    lm.tokenizer.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="session")
def names_task_file(tmp_path_factory):
    """A user CSV whose two labels are people's names: several tokens each, distinct first tokens, and
    a 60/40 class balance (so a bridge that learns nothing sits at or below the majority class)."""
    rng = random.Random(1)
    path = tmp_path_factory.mktemp("data") / "names.csv"
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        for i in range(300):
            label = "alice smith" if i % 5 < 3 else "bob jones"
            word = rng.choice(POSITIVE if label == "alice smith" else NEGATIVE)
            writer.writerow([f"note {i}: the day was {word} again", label])
    return str(path)


@pytest.fixture(scope="session")
def toy_task_file(tmp_path_factory):
    """A small sentiment CSV whose label is decided by one word in the text (learnable by a bridge)."""
    rng = random.Random(0)
    path = tmp_path_factory.mktemp("data") / "toy.csv"
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        for i in range(240):
            label = "positive" if i % 2 else "negative"
            word = rng.choice(POSITIVE if label == "positive" else NEGATIVE)
            writer.writerow([f"review {i}: the film was {word} overall", label])
    return str(path)


def accuracy_in_a_fresh_process(run_dir, task: str, device: str = "auto") -> float:
    """Test accuracy of a saved bridge run, loaded the documented way in a new Python process."""
    script = (
        "import json\n"
        "from lw_bridge import BridgePipeline\n"
        "from lw_tasks import load_task\n"
        f"pipe = BridgePipeline.from_pretrained({str(run_dir)!r}, device={device!r})\n"
        f"task = load_task({task!r})\n"
        "test = task.split('test')\n"
        "pred = pipe.predict([e.text for e in test])\n"
        "print(json.dumps(sum(p == task.answers[e.label] for p, e in zip(pred, test)) / len(test)))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture()
def fresh_process_accuracy():
    return accuracy_in_a_fresh_process
