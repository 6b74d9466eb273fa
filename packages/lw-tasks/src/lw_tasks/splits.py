"""Fixed, machine-independent splits: text normalisation, deduplication and stratified allocation.

Nothing here uses Python's `hash()` or a global random state. An item's place in a seeded order is the
sha256 of `"{SPLIT_SEED}:{key}"`, where the key is its normalised text, so a split depends only on the
data and the constant split seed (never on the run seed, the row order or the machine), and adding or
removing one row moves no other row between splits.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Hashable, Sequence
from typing import TypeVar

SPLIT_SEED = 20240611
"""The one seed every task split is drawn with. Changing it changes every task's splits."""

T = TypeVar("T")
_SPACE = re.compile(r"\s+")


def normalize_text(text: str) -> str:
    """The dedup key of a text: lower-cased, whitespace collapsed, trimmed."""
    return _SPACE.sub(" ", text).strip().lower()


def truncate_words(text: str, max_words: int) -> str:
    """The first `max_words` whitespace tokens of `text`, joined by single spaces (text unchanged if shorter)."""
    words = text.split()
    if len(words) <= max_words:
        return text.strip()
    return " ".join(words[:max_words])


def count_words(text: str) -> int:
    return len(text.split())


def seeded_key(key: str, salt: str = "") -> str:
    """The sort key that places an item in the seeded order (sha256 hex of seed, salt and key)."""
    return hashlib.sha256(f"{SPLIT_SEED}:{salt}:{key}".encode()).hexdigest()


def allocate(counts: dict[Hashable, int], total: int) -> dict[Hashable, int]:
    """Split `total` over classes in proportion to `counts` (largest remainder; ties by class order).

    Never gives a class more than it has.
    """
    size = sum(counts.values())
    if size == 0 or total <= 0:
        return dict.fromkeys(counts, 0)
    total = min(total, size)
    quotas = {c: total * n / size for c, n in counts.items()}
    out = {c: int(q) for c, q in quotas.items()}
    order = sorted(counts, key=lambda c: (-(quotas[c] - out[c]), str(c)))
    for c in order[: total - sum(out.values())]:
        out[c] += 1
    return out


def stratified_take(
    items: Sequence[T], label: Callable[[T], Hashable], key: Callable[[T], str], n: int, salt: str
) -> tuple[list[T], list[T]]:
    """A stratified sample of `n` items in seeded order, and the rest; both keep the input order."""
    by_class: dict[Hashable, list[int]] = {}
    for i, item in enumerate(items):
        by_class.setdefault(label(item), []).append(i)
    quota = allocate({c: len(v) for c, v in by_class.items()}, n)
    chosen: set[int] = set()
    for c, members in by_class.items():
        ordered = sorted(members, key=lambda i: seeded_key(key(items[i]), salt))
        chosen.update(ordered[: quota[c]])
    taken = [items[i] for i in range(len(items)) if i in chosen]
    rest = [items[i] for i in range(len(items)) if i not in chosen]
    return taken, rest


def stratified_fractions(
    items: Sequence[T],
    label: Callable[[T], Hashable],
    key: Callable[[T], str],
    fractions: dict[str, float],
    salt: str,
) -> dict[str, list[T]]:
    """Split items into named parts with the given fractions of each class; the remainder goes to the
    first name (e.g. {"train": 0.8, "validation": 0.1, "test": 0.1})."""
    names = list(fractions)
    out: dict[str, list[T]] = {name: [] for name in names}
    by_class: dict[Hashable, list[int]] = {}
    for i, item in enumerate(items):
        by_class.setdefault(label(item), []).append(i)
    assignment: dict[int, str] = {}
    for members in by_class.values():
        ordered = sorted(members, key=lambda i: seeded_key(key(items[i]), salt))
        start = 0
        for name in names[1:]:
            size = round(len(ordered) * fractions[name])
            for i in ordered[start : start + size]:
                assignment[i] = name
            start += size
        for i in ordered[start:]:
            assignment[i] = names[0]
    for i, item in enumerate(items):
        out[assignment[i]].append(item)
    return out
