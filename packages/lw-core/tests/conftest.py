import pytest
import torch
from lw_core.testing import tiny_gemma3, tiny_llama

torch.set_num_threads(1)


@pytest.fixture(scope="session", params=["tiny-llama", "tiny-gemma3"])
def lm(request):
    return {"tiny-llama": tiny_llama, "tiny-gemma3": tiny_gemma3}[request.param]()
