"""SLURM profiles and the array-job script they render: the profile keys (#SBATCH options, the job's
environment and set-up lines), defaults ← profile file ← overrides, every value checked before it goes
into an `#SBATCH` line or shell-quoted, and `job.sbatch` itself. lw_registry.slurm submits the script.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from pathlib import Path
from typing import Any

from lw_registry.files import read_mapping

PROFILE_KEYS: dict[str, str] = {
    "account": "--account",
    "partition": "--partition",
    "qos": "--qos",
    "time": "--time (e.g. 04:00:00 or 1-00:00:00)",
    "gpus": "GPUs per run (--gres=gpu[:type]:N)",
    "gpu_type": "GPU type for --gres (e.g. a100)",
    "cpus_per_task": "--cpus-per-task",
    "processes": "processes per run: N > 1 launches the run's command with `torchrun --standalone "
                 "--nproc_per_node N --no-python` inside the job (one process per GPU; with --device cpu, gloo)",
    "mem": "--mem (e.g. 64G)",
    "constraint": "--constraint",
    "max_parallel": "runs of one submission running at once (--array=...%N; a submission split into several "
                    "arrays by max_array_size runs them one after another)",
    "max_array_size": "largest array per sbatch (cluster MaxArraySize - 1)",
    "requeue": "--requeue preempted jobs, and requeue on the time-limit warning (true/false)",
    "max_requeues": "most attempts a run is requeued for on the time-limit warning",
    "signal_seconds": "seconds before the time limit to send USR1 (--signal=B:USR1@S)",
    "job_name": "--job-name (default: lw-<plan>)",
    "sbatch_args": "list of extra sbatch options, e.g. ['--exclusive']",
    "setup": "list of shell lines run before the job (module load ..., source ...): raw shell, your own",
    "env": "mapping of environment variables exported in the job",
    "python": "python on the compute nodes (default: this one, on the shared filesystem)",
    "chdir": "working directory of the job (default: the submit directory)",
    "profile": "(in a plan's slurm: section) path of a profile file to start from",
}
DEFAULT_PROFILE: dict[str, Any] = {
    "time": "04:00:00", "gpus": 1, "cpus_per_task": 4, "mem": "32G", "max_parallel": 8,
    "max_array_size": 1000, "requeue": True, "max_requeues": 10, "signal_seconds": 120,
}
ENV_PROFILE = "LW_SLURM_PROFILE"
_SAFE = re.compile(r"[A-Za-z0-9_.,:=@%+/-]+")


class SlurmError(RuntimeError):
    """A SLURM command or profile problem; the message is one line."""


def read_profile_file(path: str | Path) -> dict[str, Any]:
    """The mapping a SLURM profile file (.toml/.yaml/.yml/.json) holds; SlurmError (one line) otherwise."""
    return read_mapping(path, what="SLURM profile", error=SlurmError)


def resolve_profile(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Defaults ← profile file (`path`, the overrides' `profile`, or $LW_SLURM_PROFILE) ← overrides."""
    overrides = dict(overrides or {})
    source = path or overrides.pop("profile", None) or os.environ.get(ENV_PROFILE)
    overrides.pop("profile", None)
    profile = dict(DEFAULT_PROFILE)
    if source:
        profile.update(read_profile_file(source))
    profile.update(overrides)
    profile.pop("profile", None)
    validate_profile(profile)
    return profile


def validate_profile(profile: dict[str, Any]) -> None:
    unknown = sorted(set(profile) - set(PROFILE_KEYS))
    if unknown:
        raise SlurmError(f"unknown SLURM profile key(s) {', '.join(unknown)}; known: {', '.join(PROFILE_KEYS)}")
    for key in ("account", "partition", "qos", "time", "gpu_type", "mem", "constraint", "job_name"):
        value = profile.get(key)
        if value not in (None, "") and not _SAFE.fullmatch(str(value)):
            raise SlurmError(f"SLURM profile {key}={value!r} has characters not allowed in an #SBATCH line")
    for key in ("gpus", "processes", "cpus_per_task", "max_parallel", "max_array_size", "signal_seconds", "max_requeues"):
        value = profile.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise SlurmError(f"SLURM profile {key} must be a non-negative integer, got {value!r}")
    for key in ("sbatch_args", "setup"):
        value = profile.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise SlurmError(f"SLURM profile {key} must be a list of strings")
    for arg in profile.get("sbatch_args", []):
        if not arg.startswith("--") or not _SAFE.fullmatch(arg.lstrip("-")):
            raise SlurmError(f"SLURM profile sbatch_args item {arg!r} must look like --option[=value]")
    env = profile.get("env", {})
    if not isinstance(env, dict) or not all(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", str(k)) for k in env):
        raise SlurmError("SLURM profile env must be a mapping NAME -> value")


def sbatch_lines(profile: dict[str, Any], *, job_name: str, array: str, log_pattern: str) -> list[str]:
    opts = [f"--job-name={profile.get('job_name') or job_name}", f"--array={array}",
            f"--output={log_pattern}", "--open-mode=append"]
    for key in ("account", "partition", "qos", "time", "mem", "constraint"):
        if profile.get(key) not in (None, ""):
            opts.append(f"--{key}={profile[key]}")
    if profile.get("cpus_per_task"):
        opts.append(f"--cpus-per-task={profile['cpus_per_task']}")
    if profile.get("gpus"):
        kind = f"{profile['gpu_type']}:" if profile.get("gpu_type") else ""
        opts.append(f"--gres=gpu:{kind}{profile['gpus']}")
    if profile.get("requeue", True):
        opts.append("--requeue")
    if profile.get("signal_seconds"):
        opts.append(f"--signal=B:USR1@{profile['signal_seconds']}")
    opts += list(profile.get("sbatch_args", []))
    for opt in opts:
        if not _SAFE.fullmatch(opt.lstrip("-").replace("[", "").replace("]", "")):
            raise SlurmError(f"cannot put {opt!r} in an #SBATCH line (spaces or quotes); use a simpler path")
    return [f"#SBATCH {opt}" for opt in opts]


def render_script(
    profile: dict[str, Any], *, plan: str, manifest: Path, count: int, root: Path, log_dir: Path
) -> str:
    parallel = profile.get("max_parallel") or 0
    array = f"0-{count - 1}" + (f"%{parallel}" if parallel else "")
    python = profile.get("python") or sys.executable
    chdir = profile.get("chdir") or os.getcwd()
    q = shlex.quote
    lines = [
        "#!/bin/bash",
        f"# Rendered by lw-registry for plan {plan!r}: {count} run(s), one per array task.",
        f"# Resubmit by hand with: sbatch {q(str(manifest.parent / 'job.sbatch'))}",
        *sbatch_lines(profile, job_name=f"lw-{plan}", array=array, log_pattern=str(log_dir / "slurm-%A_%a.out")),
        "",
        "set -uo pipefail",
        f"cd {q(str(chdir))} || exit 1",
        f"export LW_RUNS={q(str(root))}",
    ]
    lines += [f"export {k}={q(str(v))}" for k, v in (profile.get("env") or {}).items()]
    if profile.get("setup"):
        lines += ["# setup (from the profile)", *profile["setup"]]
    lines += [
        "# The job wrapper writes the run's record and tees timestamped output into <run_dir>/job.log.",
        f"exec {q(str(python))} -m lw_registry.job {q(str(manifest))} \"${{SLURM_ARRAY_TASK_ID:-0}}\"",
        "",
    ]
    return "\n".join(lines)
