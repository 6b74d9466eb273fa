"""`lw-bench serve` against real servers on loopback (a tiny bridge's pipeline, sender and receiver):
bounded request counts, every request answered, percentiles, peak memory and the in-process ratio."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
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
    assert rows[-1]["target"] == "in process (batch 4)" and rows[-1]["req/s"] > 0
    compared = [r for r in served if "served / in process" in r]
    assert [r["target"] for r in compared] == ["predict", "predict", "sender → receiver", "sender → receiver"]
    assert all(r["served / in process"] > 0 for r in compared)


def test_a_load_without_targets_is_one_line(capsys):
    with pytest.raises(SystemExit):
        bench_main(["serve", "--sender-url", "http://127.0.0.1:1"])
    assert capsys.readouterr().err.strip() == (
        "error: lw-bench serve: give --url, or --sender-url with --receiver-url (or all three); "
        "or no URL at all to start the servers here")
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


def lw_serve_processes(run_dir) -> list[int]:
    """Live `lw-serve` processes serving `run_dir` (from /proc: any started here, by whatever parent)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if entry.name.isdigit() and b"lw_serve.cli" in argv and str(run_dir).encode() in argv:
            found.append(int(entry.name))
    return found


@pytest.mark.slow  # starts three server processes
def test_without_urls_it_starts_measures_stops_its_servers_and_records_a_run(run_dir, tmp_path, capsys):
    out = tmp_path / "bench-serve"
    bench_main(["serve", "--run", str(run_dir), "--task", str(run_dir.parent / "toy.csv"), "--device", "cpu",
                "--concurrency", "2", "--requests", "4", "--in-process-batch", "4", "--threads", "1",
                "--output-dir", str(out), "--json"])
    rows = json.loads(capsys.readouterr().out)
    assert lw_serve_processes(run_dir) == []
    assert [r["target"] for r in rows] == ["predict", "sender → receiver", "receiver reads the text",
                                           "in process (batch 4)"]
    assert all(r["ok"] == r["sent"] == 4 and r["failed"] == 0 for r in rows[:3])
    assert rows[0]["served / in process"] > 0 and "served / in process" not in rows[2]
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "completed" and record["method"] == "bench-serve"
    metrics = record["metrics"]
    assert metrics["req_per_s predict c2"] == rows[0]["req/s"] and metrics["p99_ms sender → receiver c2"] > 0
    assert metrics["ratio served / in process predict c2"] == rows[0]["served / in process"]
    assert {k for k in metrics if k.startswith("peak_mib")} == {"peak_mib pipeline", "peak_mib sender",
                                                                "peak_mib receiver"}
    assert all(metrics[k] > 0 for k in metrics if k.startswith("peak_mib"))
    results = json.loads((out / "results.json").read_text())
    assert results["rows"] == rows and results["environment"]["bridge"] == "trained"
    assert (out / "results.md").read_text().startswith("### Serving under load\n\n| target | concurrency |")
    assert sorted(p.name for p in (out / "servers").iterdir()) == ["pipeline-hf.log", "receiver-hf.log", "sender.log"]


@pytest.mark.slow  # a subprocess that starts a server
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_a_stopped_load_leaves_no_server_behind(run_dir, tmp_path, sig):
    """SIGTERM mid-load: lw-bench stops its server and records the run as preempted; SIGKILL (nothing to
    run cleanup): the server stops with its parent."""
    out = tmp_path / "bench-serve"
    bench = subprocess.Popen([sys.executable, "-m", "lw_bench.cli", "serve", "--run", str(run_dir), "--task",
                              str(run_dir.parent / "toy.csv"), "--device", "cpu", "--concurrency", "2", "--requests",
                              "100000", "--seconds", "600", "--threads", "1", "--output-dir", str(out)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        url = None
        deadline = time.monotonic() + 480  # a loaded 2-core machine starts Python slowly
        while time.monotonic() < deadline and bench.poll() is None:  # until the server has answered requests
            log = out / "servers" / "pipeline-hf.log"
            said = re.search(r"on (http://\S+)", log.read_text()) if log.is_file() else None
            url = url or (said and said.group(1))
            if url and re.search(r'^lw_serve_requests_total\{code="200",endpoint="predict"\} [1-9]',
                                 _metrics(url), re.MULTILINE):
                break
            time.sleep(0.3)
        assert bench.poll() is None and lw_serve_processes(run_dir), bench.stderr.read().decode()[-2000:]
        bench.send_signal(sig)
        code = bench.wait(timeout=60)
        deadline = time.monotonic() + 60
        while lw_serve_processes(run_dir) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert lw_serve_processes(run_dir) == []
    finally:
        if bench.poll() is None:
            bench.kill()
        for pid in lw_serve_processes(run_dir):
            os.kill(pid, signal.SIGKILL)
    if sig == signal.SIGTERM:
        assert code == 143
        assert json.loads((out / "run.json").read_text())["status"] == "preempted"
    else:
        assert code == -signal.SIGKILL


def _metrics(url: str) -> str:
    try:
        return httpx.get(url + "/metrics", timeout=5).text
    except httpx.HTTPError:
        return ""


@pytest.mark.parametrize(("args", "message"), [
    (["--receiver-backends", "hf", "nope"], "lw-bench serve: unknown receiver backend 'nope'; known: hf, llama-cpp"),
    (["--receiver-backends", "vllm"], "lw-bench serve: the vllm backend needs a vLLM server"),
    (["--receiver-backends", "hf", "hf"], "lw-bench serve: --receiver-backends takes distinct backends, got hf hf"),
    (["--run", "/no/such/run"], "no bridge checkpoint at /no/such/run"),
    (["--url", "http://127.0.0.1:1", "--receiver-backends", "llama-cpp"],
     "lw-bench serve: --receiver-backends is for the servers it starts (no URLs)"),
    (["--api-key", "k"], "lw-bench serve: --api-key is for servers you started"),
])
def test_bad_self_contained_input_is_one_line(capsys, tmp_path, args, message):
    with pytest.raises(SystemExit):
        bench_main(["serve", "--output-dir", str(tmp_path / "out"), *args])
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: " + message) and "\n" not in err, err
    assert not (tmp_path / "out").exists()


def test_each_further_backend_is_a_pipeline_server_of_its_own_named_by_backend():
    from lw_bench.serve_run import server_groups

    groups = server_groups(["hf", "llama-cpp"])
    assert [servers for servers, _ in groups] == [[("pipeline", "hf")], [("sender", None), ("receiver", "hf")],
                                                  [("pipeline", "llama-cpp")]]
    targets = [t for (servers, targets_of) in groups for t in targets_of([f"http://x{i}" for i in range(len(servers))])]
    assert [(t.name, list(t.servers), t.compared) for t in targets] == [
        ("predict (hf)", ["pipeline (hf)"], True), ("sender → receiver", ["sender", "receiver (hf)"], True),
        ("receiver reads the text (hf)", ["receiver (hf)"], False),
        ("predict (llama-cpp)", ["pipeline (llama-cpp)"], False),
        ("receiver reads the text (llama-cpp)", ["pipeline (llama-cpp)"], False)]
    assert [t.name for servers, targets_of in server_groups(["hf"]) for t in targets_of(["u"] * len(servers))] == [
        "predict", "sender → receiver", "receiver reads the text"]
