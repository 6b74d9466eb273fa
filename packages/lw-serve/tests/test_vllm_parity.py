"""Parity of the vllm receiver backend with the HF receiver on the real embedded receiver (gemma3-270m)
and rt-sentiment's first 128 test texts through a seeded default bridge: the same soft tokens, sent as
`prompt_embeds` to a vLLM server on the receiver's HF folder, give the same answers and log-probabilities
within the fp32 tolerance of the llama-cpp backend.

Slow, and skipped without vLLM and a CUDA GPU (vLLM is the GPU path; its wheel pins a CUDA torch and is
never a dependency of lw). `ops/gpu/vllm_parity.sh` runs it on a lent GPU."""

import os
import socket
import subprocess
import sys
import time

import httpx
import pytest
import torch

pytest.importorskip("vllm", reason="vLLM is not installed (the GPU path: ops/gpu/vllm_parity.sh)")
if not torch.cuda.is_available():
    pytest.skip("vLLM parity needs a CUDA GPU", allow_module_level=True)

from lw_core.models import preset_folder  # noqa: E402
from lw_serve.parity import ParityConfig, parity  # noqa: E402

EXAMPLES, TOLERANCE, LOGPROBS = 128, 0.02, 4096


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def vllm_url():
    folder = preset_folder("gemma3-270m")  # the embedded receiver as an HF folder in $LW_CACHE
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(folder),
                               "--port", str(port), "--enable-prompt-embeds", "--dtype", "float32",
                               "--max-logprobs", str(LOGPROBS), "--gpu-memory-utilization", "0.3"], env=os.environ)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and server.poll() is None:
            try:
                if httpx.get(url + "/v1/models", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(2)
        else:
            pytest.fail(f"vLLM did not start (exit code {server.poll()})")
        yield url
    finally:
        server.terminate()
        server.wait(timeout=60)


@pytest.mark.slow
def test_vllm_answers_as_the_hf_receiver_on_the_same_soft_tokens(vllm_url):
    rows = {r["receiver"]: r for r in parity(ParityConfig(limit=EXAMPLES, llama_cpp=False, vllm_url=vllm_url,
                                                          vllm_logprobs=LOGPROBS))}
    row = rows["vllm"]
    print(row)
    assert row["examples"] == EXAMPLES
    assert row["same answer"] >= 0.99, row
    assert row["max |Δ logprob|"] <= TOLERANCE, row
