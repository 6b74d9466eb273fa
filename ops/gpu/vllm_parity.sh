#!/usr/bin/env bash
# The vllm receiver backend's parity with hf on a lent GPU (packages/lw-serve/tests/test_vllm_parity.py):
# rt-sentiment's first 128 test texts through a seeded default bridge, the same soft tokens scored by the
# HF receiver and by a vLLM server (--enable-prompt-embeds) on the receiver's HF folder.
#
# What it needs, and why it cannot fetch it: the lent machines reach no network, and vLLM's wheel pins its
# own CUDA torch, so vLLM is never a dependency of this workspace. Bring, under shared/ (or name with
# the variables below):
#   - VLLM_WHEELHOUSE: a folder of wheels holding vllm and everything it pins (e.g. made elsewhere with
#     `pip download vllm -d wheelhouse`); installed into a fresh venv with --no-index;
#   - LW_CACHE: lw's cache with the converted receiver folder models/gemma3-270m (`lw-eval` or any
#     lw command with the default receiver converts it once on a CPU machine).
# Without them it says what is missing and exits 2; nothing here was run on a GPU yet (no vLLM wheel was
# available to the session that wrote it).
set -euo pipefail
cd "$(dirname "$0")/../.."
WHEELHOUSE=${VLLM_WHEELHOUSE:-shared/vllm-wheels}
export LW_CACHE=${LW_CACHE:-shared/lw-cache}
missing=()
[ -d "$WHEELHOUSE" ] || missing+=("vLLM wheelhouse $WHEELHOUSE (VLLM_WHEELHOUSE)")
[ -f "$LW_CACHE/models/gemma3-270m/config.json" ] || missing+=("receiver folder $LW_CACHE/models/gemma3-270m (LW_CACHE)")
command -v nvidia-smi >/dev/null && nvidia-smi -L || missing+=("a CUDA GPU (nvidia-smi)")
if [ ${#missing[@]} -gt 0 ]; then
  printf 'vllm_parity: missing %s\n' "${missing[@]}" >&2
  exit 2
fi
python3 -m venv /tmp/lw-vllm-venv
/tmp/lw-vllm-venv/bin/pip install --no-index --find-links "$WHEELHOUSE" vllm pytest
# lw's own packages from this checkout; their dependencies must be in the wheelhouse too (pip names any
# that is not), beside vLLM's CUDA torch, which they accept (torch>=2.4)
/tmp/lw-vllm-venv/bin/pip install --no-index --find-links "$WHEELHOUSE" \
  ./packages/lw-core ./packages/lw-tasks ./packages/lw-bridge ./packages/lw-registry ./packages/lw-serve
mkdir -p "${OUT:-/tmp/out}"
/tmp/lw-vllm-venv/bin/python -m pytest packages/lw-serve/tests/test_vllm_parity.py -m slow -q -s -rs \
  2>&1 | tee "${OUT:-/tmp/out}/vllm_parity.log"
