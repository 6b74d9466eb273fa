"""The results section on a QA task from tiny fake records with the metric names lw-train, lw-baseline
lora / zero-shot / text-relay-answer write on one: F1 headline with EM and first-token accuracy beside it,
the controls lw-train records inside a bridge run as rows of their own (text upper bound, token-budget
control; an interlingua's joint rescoring), no chance or majority rows, findings and the bytes figure."""

import pytest
from lw_registry.report.publish import results_report, section_from

CONTROLS = {"zero_shot_f1": 0.60, "zero_shot_em": 0.50, "token_budget_wire": "fp16", "token_budget_bytes": 256,
            "text_bytes_mean": 900.0}
WIRE = {"wire_bytes_fp16": 256, "wire_bytes_int8": 136, "wire_bytes_int4": 72}


@pytest.fixture
def runs(tmp_path, fake_run):
    root = tmp_path / "runs"
    bridge = {"steps": 240}

    def qa(method, seed, name=None, config=None, **metrics):
        return fake_run(root, method, seed, None, task="squad-olmes", name=name, config={**bridge, **(config or {})},
                        majority_rate=None, n_answers=None, **metrics)

    layout_b = {"receivers": ["gemma3-270m"], "receiver_text_fields": ["question"], "sender_fields": "all"}
    for seed, (f1, em) in enumerate(((0.30, 0.20), (0.32, 0.22), (0.28, 0.18))):
        qa("bridge-fusion", seed, name="b", config=layout_b, f1=f1, em=em, val_f1=f1 + 0.01, val_em=em,
           first_token_accuracy=0.40, f1_wire_fp16=f1, f1_wire_int8=f1, f1_wire_int4=f1 - 0.02, **WIRE, **CONTROLS,
           token_budget_f1=0.10, token_budget_em=0.05, token_budget_text_bytes_mean=250.0,
           sender_only_bytes_mean=850.0, finished=f"2026-01-02T00:00:0{seed}")
    for seed in (0, 1):
        qa("bridge", seed, name="a", config={"receivers": ["gemma3-270m"]}, f1=0.05, em=0.01, val_f1=0.06, val_em=0.01,
           first_token_accuracy=0.10, f1_wire_fp16=0.05, **WIRE, **CONTROLS, token_budget_f1=0.04,
           token_budget_em=0.02, token_budget_text_bytes_mean=252.0)
    qa("bridge-interlingua", 0, name="c", config={"receivers": ["gemma3-270m", "smollm2-135m"]}, f1=0.06, em=0.02,
       first_token_accuracy=0.11, **{"f1_smollm2-135m": 0.04, "em_smollm2-135m": 0.01,
       "first_token_accuracy_smollm2-135m": 0.09, "zero_shot_f1_smollm2-135m": 0.35, "zero_shot_em_smollm2-135m": 0.25,
       "token_budget_f1_smollm2-135m": 0.03, "token_budget_em_smollm2-135m": 0.01,
       "token_budget_text_bytes_mean_smollm2-135m": 249.0}, **WIRE, **CONTROLS, token_budget_f1=0.04,
       token_budget_em=0.02, token_budget_text_bytes_mean=252.0, joint_f1=0.07, joint_em=0.03,
       joint_agreement_rate=0.4, joint_first_receiver_rate=0.7)
    qa("lora", 0, config={"steps": 100}, f1=0.55, em=0.45, val_f1=0.50, val_em=0.40, first_token_accuracy=0.70)
    qa("zero-shot", 0, config={"steps": None}, f1=0.58, em=0.48, val_f1=0.57, val_em=0.47)
    qa("text-relay-answer", 0, config={"steps": None}, f1=0.20, em=0.15, val_f1=0.21, val_em=0.16, message_bytes=12.5,
       sender_f1=0.22, sender_em=0.16)
    return root


def _table(text: str) -> list[str]:
    squad = text[text.index("### squad-olmes"):]
    return [line for line in squad.splitlines()[2:] if line.startswith("|")][:30]


def test_a_qa_table_has_f1_em_first_token_accuracy_and_the_control_rows(runs, tmp_path):
    text = section_from([runs], base=tmp_path, figures_dir=tmp_path / "figures").text
    table = _table(text[:text.index("### Accuracy against message bytes")])
    assert table[0] == ("| method | train budget | hardware | F1 (mean ± std) | EM (mean ± std) | first-token accuracy "
                        "(mean ± std) | validation | seeds | trainable params | train time (s) | inference (ms / "
                        "example) | message bytes |")
    rows = {line.split(" | ")[0].removeprefix("| "): line for line in table[2:]}
    assert list(rows) == [
        "bridge", "bridge-fusion+question", "bridge-interlingua@gemma3-270m", "bridge-interlingua@joint",
        "bridge-interlingua@smollm2-135m", "zero-shot", "text-upper-bound", "text-upper-bound@smollm2-135m",
        "token-budget@256B", "token-budget@256B+question", "token-budget@256B@smollm2-135m", "text-relay-answer",
        "lora"]  # no chance or majority row: those are classification notions
    assert rows["bridge-fusion+question"] == ("| bridge-fusion+question | 3,000 × 240 steps | CPU | 0.300 ± 0.020 | "
                                              "0.200 ± 0.020 | 0.400 ± 0.000 | 0.310 ± 0.020 | 3 | 10 | 12 | 20 | 72 (int4) |")
    # a control is one deterministic evaluation: one row from the latest run, nothing trained
    assert rows["text-upper-bound"] == "| text-upper-bound | 3,000 | CPU | 0.600 | 0.500 |  |  | 1 | 0 | 0.0 |  |  |"
    assert rows["token-budget@256B+question"].startswith("| token-budget@256B+question | 3,000 | CPU | 0.100 | 0.050 |")
    assert rows["token-budget@256B+question"].endswith("| 250 |")  # the bytes the cut text took
    assert "| 0.040 | 0.020 |" in rows["token-budget@256B"] and "| 0.030 | 0.010 |" in rows["token-budget@256B@smollm2-135m"]
    assert "| 0.350 | 0.250 |" in rows["text-upper-bound@smollm2-135m"]
    assert "| 0.040 | 0.010 | 0.090 |" in rows["bridge-interlingua@smollm2-135m"]
    assert rows["bridge-interlingua@joint"].startswith("| bridge-interlingua@joint | 3,000 × 240 steps | CPU | 0.070 | 0.030 |  |")
    assert rows["text-relay-answer"].endswith("| 12 |") and "| 0.550 | 0.450 | 0.700 | 0.500 |" in rows["lora"]
    assert "chance" not in text and "Majority-class rate" not in text

    assert ("- **squad-olmes** (F1): best is text-upper-bound (3,000, CPU) at 0.600 (1 seed), 0.020 above zero-shot "
            "(3,000, CPU) at 0.580 (1 seed); no std (single runs). The best bridge row, bridge-fusion+question "
            "(3,000 × 240 steps, CPU) at 0.300 ± 0.020 (3 seeds), is 0.300 below it.") in text
    assert ("- **squad-olmes**, bridge-fusion+question (3,000 × 240 steps, CPU): F1 0.300 ± 0.020 (3 seeds) against "
            "0.100 for the token-budget control (the text cut to the message's 256 bytes), 0.600 for the text upper "
            "bound, 50% of it.") in text
    assert ("- **squad-olmes**, bridge-interlingua@smollm2-135m (3,000 × 240 steps, CPU): F1 0.040 (1 seed) against "
            "0.030 for the token-budget control") in text
    assert ("- **squad-olmes**, bridge-fusion+question (3,000 × 240 steps, CPU): F1 0.280 with the message at int4 "
            "(72 bytes) against 0.300 unquantised.") in text
    assert "![accuracy against message bytes on squad-olmes](figures/bytes-squad-olmes.png)" in text


def test_the_qa_figures_are_drawn(runs, tmp_path):
    note = results_report([runs], figures=str(tmp_path / "figures"))
    assert "wrote" in note
    for name in ("accuracy-squad-olmes", "bytes-squad-olmes"):
        assert (tmp_path / "figures" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"


def test_a_suite_that_names_another_metric_keeps_it(runs, tmp_path):
    from lw_registry.report.qa import with_generative
    from lw_registry.report.records import completed_records

    records = [r.record for r in completed_records([runs])]
    assert with_generative(lambda task: "accuracy", records, "accuracy")("squad-olmes") == "f1"
    assert with_generative(lambda task: "em", records, "accuracy")("squad-olmes") == "em"
    assert with_generative(lambda task: "accuracy", records, "accuracy")("rt-sentiment") == "accuracy"

