"""lw-core's training machinery: transformers' schedule, the preemption flag, and the atomic resumable
checkpoint (a kill at any point of a write leaves the previous checkpoint loadable)."""

import os
import random
import signal

import numpy as np
import pytest
import torch
from lw_core.errors import LwError
from lw_core.preemption import PreemptionFlag
from lw_core.training import (
    cosine_schedule,
    find_training_state,
    load_training_state,
    save_training_state,
)


def _setup(lr=0.1):
    torch.manual_seed(0)
    layer = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(layer.parameters(), lr=lr)
    return layer, optimizer, cosine_schedule(optimizer, 10, 0.2)


def test_schedule_warms_up_from_the_first_step_then_decays_to_zero():
    _, optimizer, scheduler = _setup()  # 10 steps, 2 of warm-up, peak 0.1
    lrs = []
    for _ in range(10):
        lrs.append(scheduler.get_last_lr()[0])
        optimizer.step(), scheduler.step()
    assert lrs[0] == pytest.approx(0.05) and lrs[1] == pytest.approx(0.1)  # no step spent at lr 0
    assert lrs[2] == pytest.approx(0.1) and all(a > b for a, b in zip(lrs[2:], lrs[3:], strict=False))
    assert scheduler.get_last_lr()[0] == pytest.approx(0.0, abs=1e-12)


def _train(layer, optimizer, scheduler, steps):
    for _ in range(steps):
        loss = layer(torch.randn(4, 3)).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()


def test_checkpoint_restores_tensors_optimizer_schedule_and_every_rng(tmp_path):
    layer, optimizer, scheduler = _setup()
    data = torch.Generator().manual_seed(5)
    _train(layer, optimizer, scheduler, 3)
    random.random(), np.random.rand(), torch.randperm(5, generator=data)
    save_training_state(tmp_path / "last", optimizer, scheduler, {"step": 3}, tensors=dict(layer.state_dict()),
                        generators={"data": data})
    expected = (random.random(), float(np.random.rand()), torch.rand(2), torch.randperm(9, generator=data))
    _train(layer, optimizer, scheduler, 2)
    after = {k: v.clone() for k, v in layer.state_dict().items()}

    layer2, optimizer2, scheduler2 = _setup()
    data2 = torch.Generator().manual_seed(123)
    loaded = load_training_state(find_training_state(tmp_path / "last"), optimizer2, scheduler2,
                                 generators={"data": data2})
    layer2.load_state_dict(loaded.tensors)
    assert loaded.state == {"step": 3}
    got = (random.random(), float(np.random.rand()), torch.rand(2), torch.randperm(9, generator=data2))
    assert got[:2] == expected[:2] and torch.equal(got[2], expected[2]) and torch.equal(got[3], expected[3])
    _train(layer2, optimizer2, scheduler2, 2)  # the same random batches, the same optimizer moments
    assert all(torch.equal(after[k], v) for k, v in layer2.state_dict().items())
    assert scheduler2.get_last_lr() == scheduler.get_last_lr()


def test_a_kill_between_the_renames_leaves_the_previous_checkpoint_and_the_next_save_recovers(tmp_path, monkeypatch):
    layer, optimizer, scheduler = _setup()
    last = tmp_path / "last"
    save_training_state(last, optimizer, scheduler, {"step": 1})
    real_replace = os.replace

    def die_after_moving_aside(src, dst):
        real_replace(src, dst)
        if str(dst).endswith("last.old"):
            raise KeyboardInterrupt  # stands for the kill: nothing after this line runs

    monkeypatch.setattr(os, "replace", die_after_moving_aside)
    with pytest.raises(KeyboardInterrupt):
        save_training_state(last, optimizer, scheduler, {"step": 2})
    monkeypatch.setattr(os, "replace", real_replace)
    found = find_training_state(last)
    assert found == tmp_path / "last.old"
    assert load_training_state(found, optimizer, scheduler).state == {"step": 1}

    # The next save must not delete `.old` (the only complete checkpoint) before its own is in place.
    removed = []
    real_rmtree = __import__("shutil").rmtree
    monkeypatch.setattr("lw_core.training.shutil.rmtree",
                        lambda p, **kw: (real_rmtree(p, **kw), removed.append(find_training_state(last))))
    save_training_state(last, optimizer, scheduler, {"step": 3})
    assert removed and all(kept is not None for kept in removed)
    assert find_training_state(last) == last and not (tmp_path / "last.old").exists()
    assert load_training_state(last, optimizer, scheduler).state == {"step": 3}


def test_a_half_written_checkpoint_is_a_one_line_error(tmp_path):
    _, optimizer, scheduler = _setup()
    save_training_state(tmp_path / "last", optimizer, scheduler, {"step": 1})
    (tmp_path / "last" / "optimizer.pt").write_bytes(b"half an optimizer state")
    with pytest.raises(LwError, match="corrupt training checkpoint .*; delete it to start over"):
        load_training_state(tmp_path / "last", optimizer, scheduler)


def test_preemption_flag_catches_sigterm_and_restores_the_handler():
    before = signal.getsignal(signal.SIGTERM)
    with PreemptionFlag() as flag:
        os.kill(os.getpid(), signal.SIGTERM)
        assert flag.requested
    assert signal.getsignal(signal.SIGTERM) == before
