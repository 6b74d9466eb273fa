import pytest
import torch
from lw_bridge.testing import train_tiny_run

torch.set_num_threads(1)

SAMPLE_TEXTS = ["review 1: the film was great overall", "review 2: the film was dull overall",
                "a brilliant, charming one", "Ünïcödé 日本語 — still a text", "x"]


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory):
    """A tiny bridge (tiny Llama sender, tiny Gemma3 receiver) trained a few steps, its run's wire int8."""
    return train_tiny_run(tmp_path_factory.mktemp("serve"), wire_formats=["int8"])


@pytest.fixture(scope="session")
def texts():
    return list(SAMPLE_TEXTS)
