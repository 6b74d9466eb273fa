"""Consumer test, consumer side: run with the consumer environment's Python, outside the workspace.

Checks that the lw packages come from installed wheels (not the workspace's sources), runs the
lw-bridge README's "Use it from another project" Python lines with the test's bridge and model folders
in place of the README's, and compares the pipeline's answers with those the workspace recorded."""

from __future__ import annotations

import argparse
import importlib
import json
import re
import sys
import textwrap
from pathlib import Path

SECTION = "## Use it from another project"
README_PATHS = {"bridge": "my-bridge", "sender": "models/smollm2-135m", "receiver": "models/gemma3-270m"}


def readme_python(readme: Path) -> str:
    text = readme.read_text()
    if SECTION not in text:
        sys.exit(f"FAIL: {readme} has no section {SECTION!r}")
    blocks = re.findall(r"```python\n(.*?)```", text.split(SECTION, 1)[1].split("\n## ", 1)[0], re.S)
    if not blocks:
        sys.exit(f"FAIL: {readme}'s section {SECTION!r} has no python block")
    return textwrap.dedent(blocks[0])


def check_installed_from_wheels(workspace: Path) -> None:
    site = Path(importlib.import_module("lw_core").__file__).resolve().parents[1]
    for name in ("lw_registry", "lw_core", "lw_tasks", "lw_bridge"):
        path = Path(importlib.import_module(name).__file__).resolve()
        if not path.is_relative_to(Path(sys.prefix).resolve()) or path.is_relative_to(workspace):
            sys.exit(f"FAIL: {name} imported from {path}, not from the consumer environment {sys.prefix}")
    links = [p.name for p in site.glob("*.pth") if str(workspace) in p.read_text()]
    if links:
        sys.exit(f"FAIL: {site} links into the workspace: {links}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--readme", required=True)
    parser.add_argument("--fixture", required=True, help="what train_fixture.py wrote")
    parser.add_argument("--sender", required=True, help="the sender's model folder")
    parser.add_argument("--receiver", required=True, help="the receiver's model folder")
    parser.add_argument("--workspace", required=True, help="the lw clone, which nothing may be imported from")
    args = parser.parse_args()
    check_installed_from_wheels(Path(args.workspace).resolve())
    fixture = Path(args.fixture)
    expected = json.loads((fixture / "expected.json").read_text())
    texts = json.loads((fixture / "texts.json").read_text())

    code = readme_python(Path(args.readme))
    for key, value in (("bridge", expected["bridge"]), ("sender", args.sender), ("receiver", args.receiver)):
        if f'"{README_PATHS[key]}"' not in code:
            sys.exit(f"FAIL: the README's lines no longer name {README_PATHS[key]!r}; update .ci/consumer/check.py")
        code = code.replace(f'"{README_PATHS[key]}"', json.dumps(value))
    namespace: dict = {}
    exec(compile(code, "README: Use it from another project", "exec"), namespace)
    pipe = namespace["pipe"]

    import torch
    from lw_core import LwError

    predictions, scores = pipe.predict(texts), pipe.scores(texts)
    if predictions != expected["predictions"]:
        diff = sum(a != b for a, b in zip(predictions, expected["predictions"], strict=True))
        sys.exit(f"FAIL: {diff} of {len(texts)} predictions differ from the workspace's")
    if not torch.allclose(scores, torch.tensor(expected["scores"]), atol=1e-5, rtol=1e-4):
        sys.exit(f"FAIL: scores differ from the workspace's by up to {(scores - torch.tensor(expected['scores'])).abs().max():.2e}")
    if not torch.allclose(scores.exp().sum(-1), torch.ones(len(texts)), atol=1e-4):
        sys.exit("FAIL: scores are not log-probabilities over the answer set")

    from lw_bridge import BridgePipeline

    try:
        BridgePipeline.from_pretrained(expected["bridge"], sender=args.sender, receivers=[args.sender])
        sys.exit("FAIL: a bridge given the wrong receiver loaded without complaint")
    except LwError as err:
        if "\n" in str(err) or "receiver" not in str(err):
            sys.exit(f"FAIL: the wrong-receiver error is not one line naming the receiver: {err}")
        wrong = str(err)
    print(json.dumps({"texts": len(texts), "predictions_equal": True, "max_score_diff": float(
        (scores - torch.tensor(expected["scores"])).abs().max()), "wrong_receiver_error": wrong}, indent=1))
    print("consumer check passed")


if __name__ == "__main__":
    main()
