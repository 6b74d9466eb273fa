"""The engine without HTTP: the wire made real (bytes out of the sender, into the receiver) gives the
answers of the whole pipeline, and of lw-bridge's BridgePipeline at the same wire format."""

import pytest
import torch
from lw_bridge import BridgePipeline
from lw_core import LwError
from lw_serve.engine import load_engine, run_wire_format


@pytest.fixture(scope="module")
def engines(run_dir):
    return {role: load_engine(run_dir, role, device="cpu") for role in ("pipeline", "sender", "receiver")}


def test_the_runs_wire_format_is_the_default(engines, run_dir):
    assert run_wire_format(run_dir) == "int8"
    assert engines["pipeline"].wire.name == "int8"
    assert engines["pipeline"].message_bytes == 4 * 8 + 2  # 32 int8 values + one fp16 scale


def test_each_role_loads_only_its_models(engines):
    assert engines["sender"].receiver is None and engines["sender"].sender is not None
    assert engines["receiver"].sender is None and engines["receiver"].receiver is not None
    assert engines["sender"].fingerprint == engines["receiver"].fingerprint == engines["pipeline"].fingerprint


def test_split_over_bytes_answers_as_the_pipeline_does(engines, run_dir, texts):
    payloads = engines["sender"].encode(texts, {})
    assert all(len(p) == engines["sender"].message_bytes for p in payloads)
    split = engines["receiver"].decode(engines["receiver"].unpack(payloads), {})
    whole = engines["pipeline"].predict(texts, {})
    assert [a.answer for a in split] == [a.answer for a in whole]
    assert torch.allclose(torch.tensor([a.scores for a in split]), torch.tensor([a.scores for a in whole]), atol=1e-5)
    reference = BridgePipeline.from_pretrained(run_dir, device="cpu")
    scorer = reference.scorer(wire="int8")
    from lw_tasks import Example

    raw = scorer.score(None, [Example(id=str(i), text=t) for i, t in enumerate(texts)])
    assert [a.answer for a in whole] == [reference.answers[i] for i in raw.argmax(-1).tolist()]
    # served scores: the softmax over the answers of the exact log-probs, though the receiver continued a
    # prefilled constant start and skipped the first position's normaliser
    assert torch.allclose(torch.tensor([a.scores for a in whole]), raw.log_softmax(-1), atol=1e-4)
    assert engines["pipeline"].scorer.prefilled_start is not None


def test_stage_timings_are_reported(engines, texts):
    timings = {}
    engines["pipeline"].predict(texts[:1], timings)
    assert set(timings) == {"sender", "encoder", "adapter", "receiver"} and all(v >= 0 for v in timings.values())


def test_a_message_with_nan_is_refused(engines):
    message = torch.zeros(1, 4, 8)
    message[0, 1, 2] = float("nan")
    from lw_bridge.wire import WireFormat, to_bytes

    engine = engines["receiver"]
    engine.wire = WireFormat("fp16")
    try:
        with pytest.raises(LwError, match="message 0 holds a NaN or infinite value"):
            engine.unpack(to_bytes(message, engine.wire))
    finally:
        engine.wire = WireFormat("int8")


def test_unknown_role_and_receiver_are_one_line_errors(run_dir):
    with pytest.raises(LwError, match="unknown role 'both'; known: pipeline, sender, receiver"):
        load_engine(run_dir, "both", device="cpu")
    with pytest.raises(LwError, match="bridge has no receiver 'nope'"):
        load_engine(run_dir, "receiver", receiver="nope", device="cpu")
