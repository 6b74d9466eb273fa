"""`lw-registry report --layout results` (the README's tables): read from run records, mean ± std over
seeds, grouped by any record fields, written between markers with `--update`.
(Ported from lw-baselines' deleted scripts/results_table.py tests; same assertions.)"""

from lw_registry.cli import main
from lw_registry.report.publish import END, START
from lw_registry.report.tables import results_table


def _rows(text: str, prefix: str = "| ") -> list[str]:
    return [line for line in text.splitlines() if line.startswith(prefix) and "---" not in line]


def test_table_rows_mean_std_and_update(tmp_path, capsys, fake_run):
    for seed, acc in enumerate([0.80, 0.82, 0.84]):
        fake_run(tmp_path, "bridge", seed, acc, config={"steps": 120}, wire_bytes_fp16=256, wire_bytes_int4=72)
    fake_run(tmp_path, "zero-shot", 0, 0.6, seconds_per_example=None)
    fake_run(tmp_path, "lora", 0, 0.99, status="failed")
    fake_run(tmp_path, "zero-shot@gemma3-270m", 0, 0.64, calibrated_accuracy=0.72)  # lw-tasks eval-zero-shot
    fake_run(tmp_path, "text-relay", 0, 0.7, message_bytes=41.6)
    text = results_table(tmp_path, ["rt-sentiment", "20ng"])
    rows = _rows(text)[1:]
    assert rows[0] == "| bridge | 3,000 × 120 steps | CPU | 0.820 ± 0.020 |  | 3 | 10 | 12 | 20 | 72 (int4) |"
    assert rows[1] == "| zero-shot | 3,000 | CPU | 0.600 |  | 1 | 10 | 12 |  |  |"  # no latency recorded: blank
    assert rows[2].startswith("| zero-shot@gemma3-270m | 3,000 | CPU | 0.640 |")
    assert rows[3].startswith("| zero-shot-calibrated@gemma3-270m | 3,000 | CPU | 0.720 |")
    assert rows[4].endswith("| 42 |")  # the relay's message bytes; no failed run
    # no run recorded its answer count: no chance row; the majority class is the runs' test-split share
    assert rows[5] == "| majority class (test split) |  |  | 0.580 |  |  |  |  |  |  |" and len(rows) == 6
    assert "### 20ng" in text and "_no completed runs_" in text
    assert "|---|---:|---|---:|---:|---:|---:|---:|---:|" in text

    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{START}\nold\n{END}\nafter\n")
    argv = ["report", "--root", str(tmp_path), "--task", "rt-sentiment", "--update", str(readme), "--no-figures"]
    assert main(argv) == 0
    content = readme.read_text()
    assert content.startswith("intro\n") and content.endswith("after\n") and "old" not in content
    assert "| bridge | 3,000 × 120 steps | CPU | 0.820 ± 0.020 |" in content
    (tmp_path / "plain.md").write_text("no markers")
    capsys.readouterr()
    assert main(["report", "--root", str(tmp_path), "--update", str(tmp_path / "plain.md")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "markers" in err and "\n" not in err


def test_multiple_choice_tables_end_with_chance_and_majority_rows_from_the_records(tmp_path, fake_run):
    """Chance is 1 / the answer count and majority the test split's majority share, both as the runs
    recorded them (`n_answers`, `majority_rate`), never typed; tables of another metric keep the rate in words."""
    for seed, acc in enumerate([0.30, 0.34]):
        fake_run(tmp_path, "bridge", seed, acc, task="arc-easy-olmes", n_answers=4, majority_rate=0.2628)
    fake_run(tmp_path, "zero-shot-calibrated", 0, 0.41, task="arc-easy-olmes")  # recorded before n_answers
    fake_run(tmp_path, "probe", 0, 0.61, task="boolq-olmes", n_answers=2, majority_rate=0.6177, macro_f1=0.55)
    text = results_table(tmp_path, ["arc-easy-olmes", "boolq-olmes"])
    arc, boolq = text.split("### boolq-olmes")
    assert _rows(arc)[-2:] == ["| chance (1 / 4 answers) |  |  | 0.250 |  |  |  |  |  |  |",
                               "| majority class (test split) |  |  | 0.263 |  |  |  |  |  |  |"]
    assert _rows(arc)[1].startswith("| bridge | 3,000 | CPU | 0.320 ± 0.028 |")
    assert _rows(boolq)[-2:] == ["| chance (1 / 2 answers) |  |  | 0.500 |  |  |  |  |  |  |",
                                 "| majority class (test split) |  |  | 0.618 |  |  |  |  |  |  |"]
    f1 = results_table(tmp_path, ["boolq-olmes"], metric=lambda task: "macro_f1" if task else "accuracy")
    assert "chance" not in f1 and "Majority-class rate of the test split: 0.618." in f1


def test_interlingua_run_gives_a_row_per_receiver(tmp_path, fake_run):
    fake_run(tmp_path, "bridge-interlingua", 0, 0.83, config={"receivers": ["gemma3-270m", "smollm2-135m"]},
             **{"accuracy_smollm2-135m": 0.81, "seconds_per_example_smollm2-135m": 0.01})
    text = results_table(tmp_path, ["rt-sentiment"])
    assert "| bridge-interlingua@gemma3-270m | 3,000 | CPU | 0.830 |  | 1 | 10 | 12 | 20 |" in text
    assert "| bridge-interlingua@smollm2-135m | 3,000 | CPU | 0.810 |  | 1 | 10 | 12 | 10 |" in text
    assert "| bridge-interlingua |" not in text


def test_hardware_and_train_budget_split_rows_and_roots_merge(tmp_path, capsys, fake_run):
    cpu, gpu = tmp_path / "cpu", tmp_path / "gpu"
    fake_run(cpu, "lora", 0, 0.80)
    for seed in (0, 1):  # the validation column: what selection saw, mean ± std where the runs report it
        fake_run(gpu, "lora", seed, 0.90, gpu="NVIDIA H100 80GB HBM3", val_accuracy=0.88 + 0.02 * seed)
    fake_run(gpu, "lora", 0, 0.95, gpu="NVIDIA H100 80GB HBM3", config={"max_train_examples": 10720}, name="lora-full")
    text = results_table([cpu, gpu], ["rt-sentiment"])
    assert _rows(text, "| lora") == [
        "| lora | 3,000 | CPU | 0.800 |  | 1 | 10 | 12 | 20 |  |",
        "| lora | 3,000 | H100 | 0.900 ± 0.000 | 0.890 ± 0.014 | 2 | 10 | 12 | 20 |  |",
        "| lora | 10,720 | H100 | 0.950 |  | 1 | 10 | 12 | 20 |  |",
    ]
    assert main(["report", "--layout", "results", "--root", str(cpu), "--also-root", str(tmp_path / "missing")]) == 2
    capsys.readouterr()
    assert main(["report", "--layout", "results", "--root", str(cpu), "--also-root", str(gpu)]) == 0
    assert "| lora | 10,720 | H100 | 0.950 |  | 1 |" in capsys.readouterr().out


def test_one_run_of_seeded_draws_shows_the_std_over_draws(tmp_path, fake_run):
    fake_run(tmp_path, "few-shot", 0, 0.81, draws=3, accuracy_draw_std=0.072)
    for seed in (0, 1):
        fake_run(tmp_path / "gpu", "few-shot", seed, 0.80 + seed / 100, draws=3, accuracy_draw_std=0.5, gpu="H100")
    text = results_table([tmp_path], ["rt-sentiment"])
    assert "| few-shot | 3,000 | CPU | 0.810 ± 0.072 |  | 1 × 3 draws |" in text
    assert "| few-shot | 3,000 | H100 | 0.805 ± 0.007 |  | 2 |" in text  # several seeds: the std over seeds


def test_group_by_any_record_field(tmp_path, capsys, fake_run):
    fake_run(tmp_path, "lora", 0, 0.80, config={"rank": 8})
    fake_run(tmp_path, "lora", 1, 0.90, config={"rank": 16})
    text = results_table(tmp_path, None, ["method", "config.rank"])
    assert "| method | config.rank | accuracy (mean ± std) |" in text
    assert "| lora | 8 | 0.800 |  | 1 |" in text and "| lora | 16 | 0.900 |  | 1 |" in text
    assert main(["report", "--layout", "results", "--root", str(tmp_path), "--group-by", "nonsense"]) == 2
    assert "unknown group field 'nonsense'" in capsys.readouterr().err


def test_reduced_precision_runs_are_rows_of_their_own():
    from lw_registry.report.records import hardware

    assert hardware({"device": "cpu", "dtype": "fp32"}) == "CPU"
    assert hardware({"device": "cpu", "dtype": "bf16"}) == "CPU bf16"
    assert hardware({"device": "cuda", "cuda_devices": ["NVIDIA H100 80GB HBM3"], "dtype": "bf16"}) == "H100 bf16"
