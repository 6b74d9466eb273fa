"""lw-core's training loop on a toy regression: selection on validation, resume equal to an
uninterrupted run, the NaN stop, and preemption (checkpoint, then exit 143); and the learning-rate
grid over it."""

import dataclasses
import logging
import os
import signal
import unittest.mock

import pytest
import torch
from accelerate import Accelerator
from lw_core.errors import LwError
from lw_core.grid import EpochOrder, rate_folder, train_grid
from lw_core.preemption import PREEMPTED_EXIT_CODE
from lw_core.trainer import Best, LoopSettings, Recipe, Validation, train_loop
from lw_core.training import find_training_state, load_training_state

X = torch.randn(40, 3, generator=torch.Generator().manual_seed(1))
Y = X @ torch.tensor([1.0, -2.0, 0.5])


def test_checkpoint_selection_prefers_accuracy_then_lower_nll():
    best = Best(step=6, score=0.5, nll=0.7)
    assert Best.beaten_by(Validation(0.6, 0.9), best) and not Best.beaten_by(Validation(0.4, 0.1), best)
    assert Best.beaten_by(Validation(0.5, 0.6), best) and not Best.beaten_by(Validation(0.5, 0.8), best)
    assert Best.beaten_by(Validation(0.0, None), None)  # the first validation


class Toy:
    """A linear model fitted by noisy mini-batches (the noise draws on torch's global RNG)."""

    def __init__(self, nan_at: int | None = None, signal_at: int | None = None):
        torch.manual_seed(0)
        self.model = torch.nn.Linear(3, 1)
        self.kept: list[int] = []
        self.history: list[float] = []
        self.calls, self.nan_at, self.signal_at = 0, nan_at, signal_at

    def recipe(self) -> Recipe:
        recipe = Recipe(
            list(self.model.parameters()), self.batch, self.loss, self.validate, self.keep, self.message
        )
        recipe.model, recipe.restore, recipe.after_step = self.model, self.restore, self.log
        recipe.state, recipe.tensors = (
            lambda: {"history": self.history},
            lambda: dict(self.model.state_dict()),
        )
        return recipe

    def keep(self, step, validation):
        self.kept.append(step)

    def message(self, step, loss, kept):
        return f"loss {loss} after {step} steps; kept {kept}"

    def log(self, result):
        self.history.append(result.loss)

    def restore(self, checkpoint):
        self.model.load_state_dict(checkpoint.tensors)
        self.history = checkpoint.state["history"]

    def batch(self, step):
        return [(step * 8 + i) % len(X) for i in range(8)]

    def loss(self, model, idx):
        self.calls += 1
        if self.calls == self.signal_at:
            os.kill(os.getpid(), signal.SIGUSR1)
        out = model(X[idx] + 0.01 * torch.randn(len(idx), 3)).squeeze(-1)
        loss = (out - Y[idx]).pow(2).mean()
        return loss * float("nan") if self.calls == self.nan_at else loss, {}

    def validate(self):
        with torch.no_grad():
            error = (self.model(X).squeeze(-1) - Y).pow(2).mean().item()
        return Validation(score=-round(error, 1), nll=error)


SETTINGS = LoopSettings(
    steps=12, lr=0.05, weight_decay=0.0, warmup=0.1, grad_clip=1.0, eval_every=4, checkpoint_every=3
)


def _settings(folder, **changes):
    return dataclasses.replace(SETTINGS, checkpoint_dir=folder, progress=False, **changes)


def test_a_resumed_run_ends_exactly_where_an_uninterrupted_one_does(tmp_path):
    straight = Toy()
    done = train_loop(straight.recipe(), _settings(tmp_path / "a"), Accelerator(cpu=True))
    assert done.step == 12 and done.best.step in straight.kept and straight.kept == sorted(straight.kept)

    first = Toy(signal_at=5)
    with pytest.raises(SystemExit) as exit_info:
        train_loop(first.recipe(), _settings(tmp_path / "b"), Accelerator(cpu=True))
    assert exit_info.value.code == 143
    assert load_training_state(find_training_state(tmp_path / "b"), *_fresh()).state["step"] == 5
    resumed = Toy()
    again = train_loop(resumed.recipe(), _settings(tmp_path / "b"), Accelerator(cpu=True))
    assert resumed.history == straight.history and again.best == done.best
    assert all(
        torch.equal(a, b)
        for a, b in zip(straight.model.parameters(), resumed.model.parameters(), strict=True)
    )


def test_a_parameter_average_is_what_validation_scores_and_resume_restores(tmp_path):
    plain = Toy()
    train_loop(plain.recipe(), _settings(None), Accelerator(cpu=True))
    averaged, scored = Toy(), []
    validate = averaged.validate
    averaged.validate = lambda: scored.append(averaged.model.weight.detach().clone()) or validate()
    train_loop(averaged.recipe(), _settings(tmp_path / "a", ema=0.9), Accelerator(cpu=True))
    # The same steps (the average does not feed back into training), but validation saw the average.
    assert torch.equal(averaged.model.weight, plain.model.weight)
    assert not torch.equal(scored[-1], averaged.model.weight)
    kept = load_training_state(find_training_state(tmp_path / "a"), *_fresh()).tensors
    assert torch.equal(kept["_ema.0"], scored[-1])

    first = Toy(signal_at=6)
    with pytest.raises(SystemExit):
        train_loop(first.recipe(), _settings(tmp_path / "b", ema=0.9), Accelerator(cpu=True))
    resumed, again = Toy(), []
    validate_again = resumed.validate
    resumed.validate = lambda: again.append(resumed.model.weight.detach().clone()) or validate_again()
    train_loop(resumed.recipe(), _settings(tmp_path / "b", ema=0.9), Accelerator(cpu=True))
    assert torch.equal(again[-1], scored[-1])  # the average resumed exactly
    train_loop(Toy().recipe(), _settings(tmp_path / "c"), Accelerator(cpu=True))  # written without --ema
    with pytest.raises(LwError, match="no parameter average"):
        train_loop(Toy().recipe(), _settings(tmp_path / "c", ema=0.9, steps=16), Accelerator(cpu=True))


def _fresh():
    optimizer = torch.optim.AdamW(torch.nn.Linear(3, 1).parameters())
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)


def test_every_validation_is_logged_without_a_progress_bar(caplog):
    caplog.set_level(logging.INFO, logger="lw.trainer")
    train_loop(Toy().recipe(), _settings(None, description="toy"), Accelerator(cpu=True))
    lines = [r.getMessage() for r in caplog.records if "validation" in r.getMessage()]
    assert [line.split(",")[0] for line in lines] == [f"toy: step {s} of 12" for s in (4, 8, 12)]
    assert all("best" in line and "s/step" in line for line in lines)


def test_in_a_redirected_log_each_validation_line_starts_on_its_own_line(tmp_path):
    """The bar and the log share stderr; redirected to a file, the bar's draws have no newline, so a
    validation line written after one would be glued to it."""
    log_path = tmp_path / "stderr.txt"
    with open(log_path, "w") as redirected:
        handler = logging.StreamHandler(redirected)
        logging.getLogger("lw.trainer").addHandler(handler)
        logging.getLogger("lw.trainer").setLevel(logging.INFO)
        try:
            settings = dataclasses.replace(_settings(None, description="toy"), progress=True)
            with unittest.mock.patch("sys.stderr", redirected):
                train_loop(Toy().recipe(), settings, Accelerator(cpu=True))
        finally:
            logging.getLogger("lw.trainer").removeHandler(handler)
    text = log_path.read_bytes().decode()
    assert "\rtoy:" in text  # the bar was drawn into the file
    lines = text.split("\n")
    logged = [line for line in lines if "validation" in line]
    assert [line.split(",")[0] for line in logged] == [f"toy: step {s} of 12" for s in (4, 8, 12)], logged


def test_only_a_step_better_than_the_bar_is_kept(tmp_path):
    toy = Toy()
    result = train_loop(toy.recipe(), _settings(None, best=Best(step=99, score=1.0)), Accelerator(cpu=True))
    assert toy.kept == [] and result.best == Best(step=99, score=1.0)


def test_a_non_finite_loss_stops_and_names_the_kept_checkpoint(tmp_path):
    toy = Toy(nan_at=5)
    with pytest.raises(LwError, match=r"^loss nan after 4 steps; kept .*/last$"):
        train_loop(toy.recipe(), _settings(tmp_path / "last"), Accelerator(cpu=True))
    assert len(toy.history) == 4


# ---- the learning-rate grid (lw_core.grid): the pure data order (the batch of a step depends on
# (seed, step) only, the same batches as the stateful orders it replaced), selection across the grid,
# a resumed grid equal to an uninterrupted one, and SIGTERM between two learning rates.


def _stream_order(size: int, batch_size: int, seed: int, steps: int) -> list[list[int]]:
    """The trained baselines' order before the grid: permutations drawn one after another from one
    generator, consumed `batch_size` at a time (state carried from step to step)."""
    generator, pending, out = torch.Generator().manual_seed(seed), [], []
    for _ in range(steps):
        if len(pending) < batch_size:
            pending += torch.randperm(size, generator=generator).tolist()
        out.append(pending[:batch_size])
        del pending[:batch_size]
    return out


def _reseeded_order(step: int, batch_size: int, n: int, seed: int) -> list[int]:
    """The bridge's order before the grid (`lw_bridge.recipe.batch_indices`)."""
    position = step * batch_size
    return [int(torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + p // n))[p % n])
            for p in range(position, position + batch_size)]


@pytest.mark.parametrize(("size", "batch_size"), [(10, 4), (12, 4), (7, 7), (30, 8)])
def test_epoch_orders_equal_the_orders_they_replaced_and_are_pure(size, batch_size):
    drawn = EpochOrder(size, batch_size, seed=3, reseeded=False)
    assert [drawn.batch(t) for t in range(20)] == _stream_order(size, batch_size, 3, 20)
    assert EpochOrder(size, batch_size, seed=3, reseeded=False).batch(17) == drawn.batch(17)  # no replay needed
    reseeded = EpochOrder(size, batch_size, seed=3, reseeded=True)
    assert [reseeded.batch(t) for t in range(20)] == [_reseeded_order(t, batch_size, size, 3) for t in range(20)]
    for t in range(0, 20, 3):  # every epoch is a permutation
        epoch = sorted(int(i) for i in drawn.epoch(t))
        assert epoch == list(range(size))


def test_rate_folder_keeps_the_bridge_layout(tmp_path):
    assert rate_folder(tmp_path, 0, 1) == tmp_path / "last"
    assert [rate_folder(tmp_path, i, 3).name for i in range(3)] == ["last-lr0", "last-lr1", "last-lr2"]


def _grid(tmp_path, rates, toys, signal_at=None):
    def recipe_for(index, lr, folder):
        toys.append(Toy(signal_at=signal_at if index == 1 else None))
        return toys[-1].recipe()

    return train_grid(rates, recipe_for, dataclasses.replace(SETTINGS, progress=False), Accelerator(cpu=True),
                      tmp_path)


def test_the_grid_picks_the_best_rate_and_a_resumed_grid_trains_nothing_again(tmp_path):
    rates = [1e-4, 0.05, 1e-5]
    toys = []
    outcome = _grid(tmp_path / "ck", rates, toys)
    assert outcome.lr == 0.05 and outcome.index == 1
    assert toys[1].kept and not toys[2].kept  # a later, worse rate keeps nothing
    assert all(find_training_state(rate_folder(tmp_path / "ck", i, 3)) for i in range(3))
    again = []
    resumed = _grid(tmp_path / "ck", rates, again)
    assert (resumed.best, resumed.lr) == (outcome.best, outcome.lr)
    assert all(toy.calls == 0 for toy in again)


def test_sigterm_in_a_rate_checkpoints_and_the_same_grid_resumes_to_the_same_outcome(tmp_path):
    rates = [1e-4, 0.05]
    straight = _grid(tmp_path / "straight", rates, [])
    with pytest.raises(SystemExit) as stopped:
        _grid(tmp_path / "ck", rates, [], signal_at=5)
    assert stopped.value.code == PREEMPTED_EXIT_CODE
    assert find_training_state(tmp_path / "ck" / "last-lr1") is not None
    resumed = _grid(tmp_path / "ck", rates, [])
    assert (resumed.best, resumed.lr, resumed.index) == (straight.best, straight.lr, straight.index)


def test_sigterm_at_the_end_of_a_rate_stops_before_the_next(tmp_path):
    toys = []

    def recipe_for(index, lr, folder):
        toys.append(Toy(signal_at=SETTINGS.steps if index == 0 else None))
        return toys[-1].recipe()

    with pytest.raises(SystemExit) as stopped:
        train_grid([1e-4, 0.05], recipe_for, dataclasses.replace(SETTINGS, progress=False), Accelerator(cpu=True),
                   tmp_path)
    assert stopped.value.code == PREEMPTED_EXIT_CODE and len(toys) == 1
    assert find_training_state(tmp_path / "last-lr1") is None
