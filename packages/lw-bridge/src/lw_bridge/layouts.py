"""Which input fields each side reads when they split a multi-field input (`--receiver-text-fields`):
the receiver reads some fields as text beside the soft tokens, the sender reads the others and sends
them only as the message. QA layout (b): the receiver reads the question, the passage reaches it only
through the message (the sender has read the context, the receiver has not).

The split follows the lines of the task's input template ("Context: {context}\\nQuestion: {question}"):
a line belongs to the side whose fields it names; a line with no field (an instruction) stays with the
receiver, which answers; a line naming fields of both sides cannot be split."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from lw_core import LwError
from lw_tasks import Example, Task
from lw_tasks.task import template_fields


@dataclass(frozen=True)
class FieldSplit:
    receiver_template: str
    """The input lines the receiver reads as text (a format string over the example's fields)."""
    sender_template: str
    """The input lines only the sender reads."""


def split_fields(task: Task, receiver_fields: Sequence[str]) -> FieldSplit:
    """The task's input template cut into the receiver's lines (those naming only `receiver_fields`)
    and the sender's (the rest)."""
    sides = line_sides(task, receiver_fields)
    return FieldSplit("\n".join(line for line, sender in sides if not sender),
                      "\n".join(line for line, sender in sides if sender))


def line_sides(task: Task, receiver_fields: Sequence[str]) -> list[tuple[str, bool]]:
    """Each line of the task's input template, and whether only the sender reads it."""
    known = [f for f in task.input_fields if f != "text"]
    unknown = sorted(set(receiver_fields) - set(known))
    if unknown:
        raise LwError(f"--receiver-text-fields: task {task.name!r} has no input field(s) {', '.join(unknown)}; "
                      f"its fields: {', '.join(known) or 'text only'}")
    if set(receiver_fields) >= set(known):
        raise LwError(f"--receiver-text-fields names every input field of task {task.name!r} "
                      f"({', '.join(known)}): the sender would read nothing")
    sides = []
    for line in task.input_template.split("\n"):
        used = set(template_fields(line))
        if used & set(receiver_fields) and used - set(receiver_fields):
            raise LwError(f"task {task.name!r}: the input line {line!r} names fields the receiver reads "
                          f"({', '.join(sorted(used & set(receiver_fields)))}) and others; it cannot be split")
        sides.append((line, bool(used - set(receiver_fields))))
    return sides


def render(template: str, example: Example) -> str:
    """`template` filled with the example's (truncated) text and fields."""
    try:
        return template.format(**{**example.fields, "text": example.text})
    except KeyError as err:
        raise LwError(f"input {example.id!r} has no field {err.args[0]!r}, which this bridge reads ({template!r}); "
                      f"pass task examples with their fields") from None


def cut_sender_part(task: Task, receiver_fields: Sequence[str], example: Example, cut: Callable[[str], str]) -> str:
    """The example's input text with what only the sender reads passed through `cut` (the token-budget
    control at the message's size: the same information as the bridge, the passage cut, the question
    kept). Without `receiver_fields` the sender reads it all: the whole text is cut. With them, the
    sender's lines, rendered together, are cut and stand where the first of them stood; the receiver's
    lines stay as they are."""
    if not receiver_fields:
        return cut(example.text)
    sides, lines, placed = line_sides(task, receiver_fields), [], False
    sender_text = cut(render("\n".join(line for line, sender in sides if sender), example))
    for line, sender in sides:
        if not sender:
            lines.append(render(line, example))
        elif not placed:
            lines.append(sender_text)
            placed = True
    return "\n".join(lines)


def sender_only_bytes(task: Task, receiver_fields: Sequence[str], split: str = "test") -> dict[str, float]:
    """Mean UTF-8 bytes of what only the sender reads (the input the message stands for), on `split`;
    empty when the receiver reads the whole input."""
    if not receiver_fields:
        return {}
    template = split_fields(task, receiver_fields).sender_template
    sizes = [len(render(template, e).encode("utf-8")) for e in task.split(split)]
    return {"sender_only_bytes_mean": round(sum(sizes) / len(sizes), 1)}


__all__ = ["FieldSplit", "cut_sender_part", "line_sides", "render", "sender_only_bytes", "split_fields"]
