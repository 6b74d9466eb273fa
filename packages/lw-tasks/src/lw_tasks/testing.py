"""Tiny in-memory tasks for the tests of every package that trains or scores on one (the bridge's QA
layouts, the baselines on a generative task): no data files, no hub."""

from __future__ import annotations

import random

from lw_tasks.task import Example, Task


def toy_qa_task() -> Task:
    """A generative toy QA task: the passage names the film's adjective, the question asks for it."""
    rng = random.Random(2)
    words = ["great", "awful", "boring", "funny"]

    def examples(prefix: str, n: int) -> list[Example]:
        out = []
        for i in range(n):
            fields = {"context": f"review {i}: the film was {rng.choice(words)} overall", "question": f"what was film {i}"}
            out.append(Example(id=f"{prefix}{i}", text=f"Context: {fields['context']}\nQuestion: {fields['question']}",
                               references=(fields["context"].split()[-2],), fields=fields))
        return out

    return Task(name="toy-qa", description="", kind="generative", answers=[], verbalizers=[], template="{text}\nAnswer:",
                splits={"train": examples("tr", 48), "validation": examples("va", 16), "test": examples("te", 8)},
                max_input_words=32, metrics=("em", "f1"), input_fields=("context", "question"),
                input_template="Context: {context}\nQuestion: {question}")
