from lw_bench.models_bench import bench_scoring
from lw_bench.timing import time_call
from lw_core.testing import tiny_gemma3
from lw_tasks import Example, Task


def _task() -> Task:
    examples = [Example(id=str(i), text=f"film {i} was fine", label=i % 2) for i in range(6)]
    return Task(name="toy", description="toy", kind="classification", answers=["negative", "positive"],
                verbalizers=[" negative", " positive"], template="Review: {text}\nSentiment:",
                splits={"train": examples, "validation": examples, "test": examples}, max_input_words=16)


def test_time_call_counts_repeats():
    calls = []
    out = time_call(lambda: calls.append(1), repeats=3, warmup=2)
    assert len(calls) == 5 and out["repeats"] == 3 and out["min_s"] <= out["median_s"] <= out["max_s"]


def test_scoring_bench_reports_a_ratio_and_agreement():
    row = bench_scoring(tiny_gemma3(), batch=2, prompt_words=12, answers=[" yes", " no way"], repeats=1)
    assert row["speedup"] > 0 and row["max_abs_diff"] < 1e-3 and row["answer_tokens"] == [4, 7]


def test_a_thread_count_below_one_is_one_line(capsys, tmp_path, monkeypatch):
    import pytest
    from lw_bench.cli import main

    monkeypatch.setenv("LW_RUNS", str(tmp_path / "runs"))
    for argv in (["latency", "--threads", "-3"], ["load", "--threads", "0"]):
        with pytest.raises(SystemExit) as stopped:
            main(argv)
        assert stopped.value.code == 2
        assert capsys.readouterr().err == f"error: threads: must be at least 1, got {argv[-1]}\n"
    assert not (tmp_path / "runs").exists()
