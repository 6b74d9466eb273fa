"""A baseline's run directory belongs to one config: the same command is recognised as done, another
config is refused in one line naming both values (never "already done" with the other run's metrics)."""

import json

import pytest
from lw_baselines.common import METHODS
from lw_baselines.runner import make_config, run_method
from lw_core.errors import LwError


def test_a_completed_run_dir_refuses_another_config(common, task, models, tmp_path):
    method, run_dir = METHODS.get("token-budget"), tmp_path / "run"
    first = run_method(method, make_config(method, {**common, "budget_tokens": 2}), task=task, models=models,
                       output_dir=run_dir)
    record = (run_dir / "run.json").read_text()
    again = run_method(method, make_config(method, {**common, "budget_tokens": 2}), task=task, models=models,
                       output_dir=run_dir)
    assert again["accuracy"] == first["accuracy"]  # the same command: already done

    with pytest.raises(LwError) as refused:
        run_method(method, make_config(method, {**common, "budget_tokens": 3}), task=task, models=models,
                   output_dir=run_dir)
    assert str(refused.value) == (f"run directory {run_dir} holds a run of another config (budget_tokens: 2 there, "
                                  "3 here); use another --output-dir, or the same options as that run")
    assert (run_dir / "run.json").read_text() == record
    assert json.loads((run_dir / "config.json").read_text())["budget_tokens"] == 2
