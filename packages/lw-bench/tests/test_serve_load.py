"""`lw-bench serve` against real servers on loopback (a tiny bridge's pipeline, sender and receiver):
bounded request counts, every request answered, percentiles, peak memory and the in-process ratio."""

import json

import pytest
import torch
from lw_bench.cli import main as bench_main
from lw_bridge.testing import train_tiny_run
from lw_core import LwError
from lw_serve import load_engine
from lw_serve.threaded import serve_in_thread

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return train_tiny_run(tmp_path_factory.mktemp("serve-load"), wire_formats=["int4"])


def test_the_load_generator_measures_every_target(run_dir, capsys):
    engines = {role: load_engine(run_dir, role, device="cpu") for role in ("pipeline", "sender", "receiver")}
    with serve_in_thread(engines["pipeline"]) as url, serve_in_thread(engines["sender"], "sender") as sender, \
            serve_in_thread(engines["receiver"], "receiver") as receiver:
        bench_main(["serve", "--url", url, "--sender-url", sender, "--receiver-url", receiver, "--task",
                    str(run_dir.parent / "toy.csv"), "--concurrency", "1", "4", "--requests", "12", "--seconds", "60",
                    "--run", str(run_dir), "--in-process-batch", "4", "--json"])
    rows = json.loads(capsys.readouterr().out)
    served = [r for r in rows if "concurrency" in r]
    assert [(r["target"], r["concurrency"]) for r in served] == [
        ("predict", 1), ("predict", 4), ("sender → receiver", 1), ("sender → receiver", 4),
        ("receiver reads the text", 1), ("receiver reads the text", 4)]
    for row in served:
        assert row["sent"] == row["ok"] == 12 and row["failed"] == 0 and row["503"] == 0
        assert 0 < row["p50 ms"] <= row["p90 ms"] <= row["p99 ms"] and row["req/s"] > 0
    assert served[0]["peak MiB"].replace(".", "").isdigit() and " + " in served[2]["peak MiB"]
    assert rows[-1]["target"] == "in process (batch 4)" and rows[-1]["served / in process"] > 0


def test_a_load_without_targets_is_one_line(capsys):
    with pytest.raises(SystemExit):
        bench_main(["serve", "--sender-url", "http://127.0.0.1:1"])
    assert capsys.readouterr().err.strip() == (
        "error: lw-bench serve: give --url, or --sender-url with --receiver-url (or all three)")
    with pytest.raises(LwError, match="needs both"):
        from lw_bench.serve_load import ServeLoadConfig

        ServeLoadConfig(url="http://x", sender_url="http://y")


def test_servers_on_other_backends_are_measured_beside_the_first(run_dir, capsys):
    engine = load_engine(run_dir, "pipeline", device="cpu")
    with serve_in_thread(engine) as url, serve_in_thread(engine) as other:
        bench_main(["serve", "--url", url, "--backend-url", other, "--task", str(run_dir.parent / "toy.csv"),
                    "--concurrency", "2", "--requests", "4", "--json"])
    rows = json.loads(capsys.readouterr().out)
    assert [r["target"] for r in rows] == ["predict (hf)", "receiver reads the text (hf)"] * 2
    assert all(r["ok"] == 4 for r in rows)
