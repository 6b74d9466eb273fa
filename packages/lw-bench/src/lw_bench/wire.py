"""The message on the wire at each precision: bytes per message (packed values and group scales)
against the UTF-8 bytes of the input text and of the relay's message, with test accuracy at each
precision through the shared evaluator."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lw_bridge import Bridge
from lw_bridge.pipeline import bridge_folder, evaluate_run_wires
from lw_bridge.wire import WireFormat

PRECISIONS = ("fp32", "fp16", "int8", "int6", "int4")


def bench_wire(run_dir: str | Path, *, precisions: Sequence[str] = PRECISIONS, text_bytes: float | None = None,
               relay_bytes: float | None = None, split: str = "test", device: str = "auto") -> dict[str, Any]:
    """One row per precision: bytes, bytes relative to the text, and the first receiver's accuracy."""
    bridge = Bridge.from_pretrained(bridge_folder(run_dir))
    numel = bridge.config.encoder.message_numel
    receiver = bridge.config.receivers[0]
    rows = []
    wires = [None if name == "fp32" else name for name in precisions]
    by_wire = evaluate_run_wires(Path(run_dir), split=split, wires=wires, device=device)
    for name, wire in zip(precisions, wires, strict=True):
        fmt = WireFormat(name)
        metrics = by_wire[wire][receiver]
        size = fmt.message_bytes(numel)
        row = {"precision": name, "bytes": size, "accuracy": metrics["accuracy"]}
        if "macro_f1" in metrics:
            row["macro_f1"] = metrics["macro_f1"]
        if text_bytes:
            row["text / message"] = round(text_bytes / size, 2)
        if relay_bytes:
            row["relay message / message"] = round(relay_bytes / size, 2)
        rows.append(row)
    return {"task": bridge.config.task, "receiver": receiver, "message_numel": numel, "split": split,
            "text_bytes": text_bytes, "relay_bytes": relay_bytes, "rows": rows}
