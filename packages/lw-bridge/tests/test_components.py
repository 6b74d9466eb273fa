import pytest
import torch
from lw_bridge import ENCODERS, Bridge, BridgeConfig, EncoderConfig
from lw_bridge.adapters import Adapter
from lw_bridge.bridge import anchors_from_template
from lw_bridge.encoders import build_encoder, bytes_of, fit_input_statistics
from lw_bridge.losses import answer_ce, answer_logits, anti_collapse, distillation, diversity
from lw_core import LwError
from lw_core.testing import tiny_gemma3, tiny_llama
from safetensors.torch import load_file, save_file


@pytest.mark.parametrize("kind", ENCODERS.names())
def test_encoders_give_m_by_dz_and_ignore_padding(kind):
    torch.manual_seed(0)
    config = EncoderConfig(kind=kind, num_latents=4, d_z=8, d_model=16, depth=1, heads=2)
    encoder = build_encoder(12, config).eval()
    if kind == "bytes":
        states = torch.stack([t[:5] for t in bytes_of(["hello world", "hi there!!"])])
        padded = torch.cat([states, torch.full((2, 3), 256)], dim=1)
    else:
        states = torch.randn(2, 5, 12) * 300  # sender states can be huge (RMS ≈ 285)
        padded = torch.cat([states, torch.randn(2, 3, 12) * 1e3], dim=1)
    mask, padded_mask = torch.ones(2, 5, dtype=torch.long), torch.cat([torch.ones(2, 5), torch.zeros(2, 3)], 1).long()
    z = encoder(states, mask)
    assert z.shape == (2, 4, 8) and torch.isfinite(z).all()
    assert torch.allclose(encoder(padded, padded_mask), z, atol=1e-4)


def test_dropout_reaches_the_encoder_and_acts_only_in_training(model_dirs):
    from lw_bridge.config import TrainConfig

    config = TrainConfig(sender=model_dirs["sender"], receivers=[model_dirs["receiver"]], dropout=0.3)
    assert config.encoder_config().dropout == 0.3
    with pytest.raises(ValueError, match="dropout"):
        config.replace(dropout=1.0)
    torch.manual_seed(0)
    encoder = build_encoder(12, EncoderConfig(num_latents=4, d_z=8, d_model=16, depth=1, heads=2, dropout=0.3))
    states, mask = torch.randn(2, 5, 12), torch.ones(2, 5, dtype=torch.long)
    assert not torch.equal(encoder.train()(states, mask), encoder(states, mask))
    assert torch.equal(encoder.eval()(states, mask), encoder(states, mask))


def test_unknown_encoder():
    with pytest.raises(LwError, match="unknown encoder 'gru'; known: bytes, linear, meanpool, perceiver"):
        build_encoder(8, EncoderConfig(kind="gru"))


@pytest.mark.parametrize(("k", "m"), [(8, 8), (4, 8), (12, 8)])
def test_adapter_calibrates_each_soft_token_to_the_receiver_rms(k, m):
    adapter = Adapter(d_z=8, num_latents=m, d_receiver=24, num_soft_tokens=k, target_rms=1.03)
    soft = adapter(torch.randn(3, m, 8) * 50)
    assert soft.shape == (3, k, 24)
    assert torch.allclose(soft.pow(2).mean(-1).sqrt(), torch.full((3, k), 1.03), atol=1e-3)
    with torch.no_grad():
        adapter.log_scale.fill_(0.5)
    assert torch.allclose(adapter(torch.randn(1, m, 8)).pow(2).mean(-1).sqrt(), torch.full((1, k), 1.03 * 1.6487), atol=1e-3)


def test_uncalibrated_adapter_passes_its_mlp_output_unscaled():
    adapter = Adapter(d_z=8, num_latents=4, d_receiver=24, num_soft_tokens=4, target_rms=1.03, calibrate=False)
    message = torch.randn(3, 4, 8) * 50
    expected = adapter.mlp(torch.einsum("km,bmd->bkd", adapter.mix, message)) + adapter.position
    assert torch.allclose(adapter(message), expected)


def test_multi_layer_input_norm_standardises_each_layer_then_mixes():
    from lw_bridge.encoders import InputNorm

    norm = InputNorm(6, 4, n_layers=3)
    states = [torch.randn(5, 3, 6) * torch.tensor([1.0, 10.0, 100.0])[:, None] + 3 for _ in range(4)]
    norm.fit(states)
    assert norm.center.shape == (3, 6) and torch.allclose(norm.layer_weights(), torch.full((3,), 1 / 3))
    assert norm(torch.randn(2, 7, 3, 6)).shape == (2, 7, 4)


def _bridge(receivers, **kw) -> Bridge:
    config = BridgeConfig(sender="tiny-llama", layer=2, receivers=[r.name for r in receivers], d_sender=32,
                          d_receivers=[r.hidden_size for r in receivers], target_rms=[r.embedding_rms() for r in receivers],
                          num_soft_tokens=4, encoder=EncoderConfig(num_latents=4, d_z=8, d_model=16, depth=1, heads=2),
                          task="toy", answers=["negative", "positive"], verbalizers=[" negative", " positive"], **kw)
    return Bridge(config)


@pytest.mark.parametrize(("bos", "expect_bos"), [("auto", True), ("always", True), ("never", False)])
def test_receiver_inputs_layout(bos, expect_bos):
    gemma = tiny_gemma3()
    bridge = _bridge([gemma], anchor_before="Review:", anchor_after="\nSentiment:", bos=bos)
    soft = torch.randn(2, 4, gemma.hidden_size)
    inputs = bridge.receiver_inputs(gemma, soft)
    before = ([gemma.tokenizer.bos_token_id] if expect_bos else []) + gemma.token_ids("Review:")
    after = gemma.token_ids("\nSentiment:")
    assert inputs.embeds.shape[1] == len(before) + 4 + len(after)
    assert torch.allclose(inputs.embeds[0, : len(before)], gemma.embed(torch.tensor(before)))
    assert torch.allclose(inputs.embeds[1, len(before) : len(before) + 4], soft[1])


@pytest.mark.parametrize("layout", ["prefix", "suffix"])
def test_fusion_layouts_and_the_context_that_needs_no_gradient(layout):
    gemma = tiny_gemma3()
    bridge = _bridge([gemma], anchor_before="Review:", anchor_after="\nSentiment:", receiver_reads_text=True,
                     fusion_layout=layout)
    soft = torch.randn(2, 4, gemma.hidden_size, requires_grad=True)
    texts = ["a b c", "b"]
    context, rest = bridge.receiver_parts(gemma, soft, texts)
    bos = [gemma.tokenizer.bos_token_id]
    if layout == "prefix":
        assert context.embeds.shape[1] == 1 and int(rest.lengths[1]) == 4 + len(gemma.token_ids("Review:b\nSentiment:"))
    else:
        assert context.lengths.tolist() == [len(bos + gemma.token_ids("Review:" + t)) for t in texts]
        assert rest.lengths.tolist() == [4 + len(gemma.token_ids("\nSentiment:"))] * 2
    whole = bridge.receiver_inputs(gemma, soft, texts)
    n = int(context.lengths[1])
    assert torch.allclose(whole.embeds[1, n : n + 4], soft[1])
    answers = [[5], [9]]
    trained = answer_logits(gemma, rest, answers, "first-token", context)
    scored = gemma.score_answers(whole, answers).logprobs
    assert torch.allclose(trained.log_softmax(-1), scored.log_softmax(-1), atol=1e-4)  # trained = scored
    trained.sum().backward()
    assert soft.grad.abs().sum() > 0


def test_llama_receiver_gets_no_bos_by_default():
    llama = tiny_llama()
    bridge = _bridge([llama])
    assert bridge.receiver_inputs(llama, torch.randn(1, 4, llama.hidden_size)).embeds.shape[1] == 4


def test_anchors_from_template():
    assert anchors_from_template("Review: {text}\nSentiment:") == ("Review: ", "\nSentiment:")


@pytest.mark.parametrize("message_head", [False, True])
def test_checkpoint_roundtrip_and_corruption(tmp_path, message_head):
    gemma = tiny_gemma3()
    bridge = _bridge([gemma], message_head=message_head).eval()
    states, mask = torch.randn(2, 5, 32), torch.ones(2, 5, dtype=torch.long)
    bridge.save_pretrained(tmp_path / "b")
    loaded = Bridge.from_pretrained(tmp_path / "b")
    assert loaded.config == bridge.config
    (soft,), head = bridge(states, mask)
    (loaded_soft,), loaded_head = loaded(states, mask)
    assert torch.equal(loaded_soft, soft)
    if message_head:  # one logit per answer, read from the message
        assert head.shape == (2, 2) and torch.equal(loaded_head, head)
    else:
        assert head is None and loaded_head is None
    state = load_file(tmp_path / "b" / "bridge.safetensors")  # as written before input standardisation
    save_file({k: v for k, v in state.items() if not k.endswith(("inp.center", "inp.scale"))},
              tmp_path / "b" / "bridge.safetensors")
    assert torch.equal(Bridge.from_pretrained(tmp_path / "b").encoder.inp.scale, torch.ones(32))
    (tmp_path / "b" / "bridge.safetensors").write_bytes(b"garbage")
    with pytest.raises(LwError, match="corrupt bridge checkpoint"):
        Bridge.from_pretrained(tmp_path / "b")
    with pytest.raises(LwError, match="missing"):
        Bridge.from_pretrained(tmp_path / "nowhere")


def test_diversity_detects_collapse():
    same = torch.randn(1, 4, 16).expand(8, -1, -1)
    assert diversity(same).item() == pytest.approx(0.0, abs=1e-5)
    assert anti_collapse(same, 0.1).item() == pytest.approx(0.1, abs=1e-5)
    varied = torch.randn(64, 4, 256)
    assert diversity(varied).item() > 0.9 and anti_collapse(varied, 0.1).item() == 0


def test_std_anti_collapse_keeps_its_gradient_at_collapse():
    """Near collapse the cosine hinge's gradient shrinks with the messages' spread; the std form's does
    not, and both are zero above the floor."""
    centre, noise = torch.randn(1, 4, 64), torch.randn(16, 4, 64)
    norms = {}
    for form in ("cosine", "std"):
        for spread in (1e-2, 1e-4):
            soft = (centre + spread * noise).requires_grad_()
            anti_collapse(soft, 0.1, form).backward()
            norms[form, spread] = soft.grad.norm().item()
    assert norms["cosine", 1e-4] == pytest.approx(1e-2 * norms["cosine", 1e-2], rel=0.05)
    assert norms["std", 1e-4] == pytest.approx(norms["std", 1e-2], rel=0.05)
    assert diversity(centre + 1e-4 * noise).item() > 0  # exact in float32 where 1 - cosine rounds to 0
    assert anti_collapse(torch.randn(64, 4, 256), 0.1, "std").item() == 0
    with pytest.raises(ValueError, match="unknown anti-collapse form"):
        anti_collapse(centre, 0.1, "l2")


@pytest.mark.parametrize("kind", ["perceiver", "meanpool", "linear"])
def test_standardised_inputs_keep_a_shared_direction_from_making_messages_alike(kind):
    """Sender states share one dominant direction (as a real LM's do); without train statistics every
    input's message is nearly the same at initialisation, with them they differ."""
    torch.manual_seed(0)
    shared = torch.randn(12) * 20
    states = [shared + torch.randn(12) + 0.3 * torch.randn(int(n), 12) for n in torch.randint(3, 9, (64,))]
    padded = torch.nn.utils.rnn.pad_sequence(states, batch_first=True)
    mask = torch.nn.utils.rnn.pad_sequence([torch.ones(len(s), dtype=torch.long) for s in states], batch_first=True)
    encoder = build_encoder(12, EncoderConfig(kind=kind, num_latents=4, d_z=8, d_model=16, depth=1, heads=2)).eval()
    with torch.no_grad():
        before = diversity(encoder(padded, mask)).item()
        fit_input_statistics(encoder, states)
        after = diversity(encoder(padded, mask)).item()
        x = torch.cat(states)
        standardised = (x / x.pow(2).mean(-1, keepdim=True).sqrt() - encoder.inp.center) * encoder.inp.scale
    assert torch.allclose(standardised.mean(0), torch.zeros(12), atol=1e-4)
    assert torch.allclose(standardised.std(0, unbiased=False), torch.ones(12), atol=1e-3)
    assert before < 0.01 and after > 0.1
    with pytest.raises(LwError, match="does not read sender states"):
        fit_input_statistics(build_encoder(12, EncoderConfig(kind="bytes", d_model=16, heads=2)), states)


def test_distillation_is_zero_at_the_teacher():
    t = torch.log_softmax(torch.randn(4, 3), -1)
    assert distillation(t, t).item() == pytest.approx(0.0, abs=1e-6)
    assert distillation(torch.zeros(4, 3), t).item() > 0


def test_fast_answer_logits_give_the_exact_answer_set_ce():
    gemma = tiny_gemma3()
    answers = [[10], [20], [30]]  # single tokens: the restricted CE equals the exact one
    prefix = gemma.embed_texts(["abc", "de"])
    labels = torch.tensor([0, 2])
    fast = answer_ce(answer_logits(gemma, prefix, answers), labels)
    exact = answer_ce(answer_logits(gemma, prefix, answers, rule="full"), labels)
    assert fast.item() == pytest.approx(exact.item(), abs=1e-4)


def test_a_run_lands_under_its_records_method_and_an_old_layout_run_is_kept(tmp_path, monkeypatch):
    from lw_bridge.config import TrainConfig
    from lw_bridge.trainer import default_run_dir, method_label

    monkeypatch.setenv("LW_RUNS", str(tmp_path))
    plain, fusion = TrainConfig(), TrainConfig(receiver_reads_text=True)
    other = TrainConfig(receivers=["smollm2-135m"])
    for config in (plain, fusion, other):
        folder = default_run_dir(config)
        assert folder.parent == tmp_path / "rt-sentiment" / method_label(config)
    assert default_run_dir(fusion).parent.name == "bridge-fusion"
    # A fusion run started under the layout before (runs/<task>/bridge/) resumes where it is.
    legacy = tmp_path / "rt-sentiment" / "bridge" / default_run_dir(fusion).name
    legacy.mkdir(parents=True)
    (legacy / "run.json").write_text("{}")
    assert default_run_dir(fusion) == legacy


def test_generative_targets_end_with_the_line_the_evaluator_keeps():
    from lw_bridge.losses import teacher_forced_ce
    from lw_bridge.recipe import reference_ids
    from lw_tasks import Example
    from lw_tasks.generative import ANSWER_END

    gemma = tiny_gemma3()
    examples = [Example(id="a", text="t", references=(" abc ", "x")), Example(id="b", text="u", references=("de",))]
    (targets,) = reference_ids([gemma], examples)
    assert targets == [gemma.token_ids(" abc") + gemma.token_ids(ANSWER_END), gemma.token_ids(" de") + gemma.token_ids("\n")]
    prefix = gemma.embed_texts(["q1", "q22"])
    full, _ = teacher_forced_ce(gemma, prefix, targets)
    answer_only, _ = teacher_forced_ce(gemma, prefix, [t[:-1] for t in targets])
    assert full.item() != pytest.approx(answer_only.item())  # the end of line is trained too


def test_teacher_forced_ce_is_the_mean_token_ce_of_each_example_read_alone():
    import torch.nn.functional as F
    from lw_bridge.losses import teacher_forced_ce

    gemma = tiny_gemma3()
    prefix = gemma.embed_texts(["q1", "a longer question 22", "x"])
    targets = [[5, 9, 11], [7], [3, 4]]
    loss, first = teacher_forced_ce(gemma, prefix, targets)
    total, correct = 0.0, 0
    for i, target in enumerate(targets):  # each example alone, its reference tokens fed after its own prefix
        n = int(prefix.lengths[i])
        ids = torch.tensor(target)
        embeds = torch.cat([prefix.embeds[i, :n], gemma.embed(ids)])[None]
        logits = gemma.model(inputs_embeds=embeds).logits[0, n - 1 : n - 1 + len(target)].float()
        total += F.cross_entropy(logits, ids, reduction="sum").item()
        correct += int(logits[0].argmax() == ids[0])
    assert loss.item() == pytest.approx(total / 6, rel=1e-5)
    assert first.item() == pytest.approx(correct / 3)


def test_teacher_forced_ce_after_a_prefilled_context_equals_the_joined_input():
    from lw_bridge.losses import teacher_forced_ce
    from lw_core import Embedded

    gemma = tiny_gemma3()
    torch.manual_seed(0)
    context = gemma.embed_texts(["Question: who wrote it", "q"])
    soft = torch.randn(2, 3, gemma.hidden_size) * 0.02
    inputs = gemma.compose([[soft[0], torch.tensor([4, 5])], [soft[1], torch.tensor([6])]])
    targets = [[5, 9, 11], [7, 8]]
    joined, first_joined = teacher_forced_ce(gemma, gemma.join(context, inputs), targets)
    cached, first_cached = teacher_forced_ce(gemma, inputs, targets, context=context)
    assert cached.item() == pytest.approx(joined.item(), abs=1e-5) and first_cached.item() == first_joined.item()
    assert isinstance(inputs, Embedded)
