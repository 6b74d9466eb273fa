from lw_tasks.splits import (
    SPLIT_SEED,
    allocate,
    normalize_text,
    seeded_key,
    stratified_fractions,
    stratified_take,
    truncate_words,
)


def test_split_seed_is_a_constant():
    assert SPLIT_SEED == 20240611
    # sha256-based, so the same on every machine and Python (no hash() randomisation)
    assert seeded_key("a") == seeded_key("a") != seeded_key("b")
    assert seeded_key("a").startswith("0377")  # pinned: changing it moves every split


def test_normalize_and_truncate():
    assert normalize_text("  Hello\n  World ") == "hello world"
    assert truncate_words("a b c d", 2) == "a b"
    assert truncate_words(" a  b ", 5) == "a  b"


def test_allocate_is_proportional_and_exact():
    out = allocate({"a": 70, "b": 20, "c": 10}, 10)
    assert out == {"a": 7, "b": 2, "c": 1}
    assert sum(allocate({"a": 3, "b": 3, "c": 3}, 4).values()) == 4
    assert allocate({"a": 2}, 10) == {"a": 2}


def test_stratified_take_and_fractions_are_order_independent():
    items = [(f"text {i}", i % 3) for i in range(300)]
    label, key = (lambda x: x[1]), (lambda x: x[0])
    taken, rest = stratified_take(items, label, key, 30, salt="t")
    assert len(taken) == 30 and len(rest) == 270
    assert sorted(x[1] for x in taken) == [0] * 10 + [1] * 10 + [2] * 10
    taken2, _ = stratified_take(list(reversed(items)), label, key, 30, salt="t")
    assert set(taken) == set(taken2)
    parts = stratified_fractions(items, label, key, {"train": 0.8, "validation": 0.1, "test": 0.1}, salt="s")
    assert {k: len(v) for k, v in parts.items()} == {"train": 240, "validation": 30, "test": 30}
    parts2 = stratified_fractions(items[::-1], label, key, {"train": 0.8, "validation": 0.1, "test": 0.1}, salt="s")
    assert all(set(parts[k]) == set(parts2[k]) for k in parts)


def test_budget_view_cuts_train_by_seed_and_validation_to_a_prefix():
    from lw_tasks import Example, Task

    def examples(prefix, n):
        return [Example(id=f"{prefix}{i}", text=f"text {i}", label=int(i % 4 == 0)) for i in range(n)]

    task = Task(name="t", description="", kind="classification", answers=["a", "b"], verbalizers=[" a", " b"],
                template="{text}", splits={"train": examples("tr", 40), "validation": examples("va", 20),
                                           "test": examples("te", 8)}, max_input_words=8)
    view = task.budget_view(train=20, validation=5, seed=0)
    assert [e.label for e in view.split("train")].count(1) == 5  # the class shares of train are kept
    assert [e.id for e in view.split("validation")] == [f"va{i}" for i in range(5)]
    assert view.split("test") == task.split("test") and len(task.split("train")) == 40  # the task is untouched
    assert task.budget_view(20, 5, seed=1).split("train") != view.split("train")
    assert task.budget_view(20, 5, seed=0).split("train") == view.split("train")
    assert len(task.budget_view(None, None, seed=0).split("train")) == 40
