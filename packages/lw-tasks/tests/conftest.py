import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_lm():
    from lw_core.testing import tiny_llama

    return tiny_llama()


@pytest.fixture(scope="session")
def tiny_gemma():
    from lw_core.testing import tiny_gemma3

    return tiny_gemma3()


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: real embedded corpora or models (minutes on a CPU)")
