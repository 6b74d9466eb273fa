from pathlib import Path

import pytest
import torch
from lw_bridge.testing import train_tiny_run
from lw_core import FrozenLM
from lw_core.testing import tiny_gemma_tokenizer

torch.set_num_threads(1)

SAMPLE_TEXTS = ["review 1: the film was great overall", "review 2: the film was dull overall",
                "a brilliant, charming one", "Ünïcödé 日本語 — still a text", "x"]


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory):
    """A tiny bridge (tiny Llama sender, tiny Gemma3 receiver) trained a few steps, its run's wire int8."""
    return train_tiny_run(tmp_path_factory.mktemp("serve"), wire_formats=["int8"])


@pytest.fixture(scope="session")
def texts():
    return list(SAMPLE_TEXTS)


@pytest.fixture(scope="session")
def tiny_receiver():
    return tiny_gemma3_receiver()


@pytest.fixture(scope="session")
def gguf_of():
    """A function writing a receiver's weights as an f32 GGUF file."""
    return write_gguf


@pytest.fixture(scope="session")
def tiny_receiver_gguf(tiny_receiver, tmp_path_factory):
    """The tiny receiver's weights as an f32 GGUF (written as llama.cpp's own HF converter writes Gemma3)."""
    return write_gguf(tiny_receiver, tmp_path_factory.mktemp("gguf") / "tiny-gemma3-f32.gguf")


def tiny_gemma3_receiver(seed: int = 3) -> FrozenLM:
    """A 2-layer Gemma3 (one sliding-window layer, one global) with random norms."""
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    tok = tiny_gemma_tokenizer(word_start_merges=True)
    config = Gemma3TextConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                              num_attention_heads=2, num_key_value_heads=1, head_dim=32, query_pre_attn_scalar=32,
                              sliding_window=8, layer_types=["sliding_attention", "full_attention"],
                              max_position_embeddings=512, tie_word_embeddings=True,
                              pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                              bos_token_id=tok.bos_token_id)
    torch.manual_seed(seed)
    model = Gemma3ForCausalLM(config)
    with torch.no_grad():  # random norms, not ones: a missed Gemma (1 + w) shift shows
        for name, param in model.named_parameters():
            if name.endswith("norm.weight"):
                param.normal_(0, 0.3)
    return FrozenLM(model, tok, name="tiny-gemma3")


def write_gguf(lm: FrozenLM, path: Path) -> Path:
    import gguf

    config = lm.config
    arch = gguf.MODEL_ARCH.GEMMA3
    writer = gguf.GGUFWriter(path, gguf.MODEL_ARCH_NAMES[arch])
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_key_length(config.head_dim)
    writer.add_value_length(config.head_dim)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    rope = config.rope_parameters
    writer.add_rope_freq_base(rope["full_attention"]["rope_theta"])
    writer.add_rope_freq_base_swa(rope["sliding_attention"]["rope_theta"])
    writer.add_sliding_window(config.sliding_window)
    writer.add_sliding_window_pattern([kind == "sliding_attention" for kind in config.layer_types])
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_tokenizer_model("no_vocab")  # lw tokenizes with the HF tokenizer; llama.cpp needs only the size
    writer.add_vocab_size(lm.vocab_size)
    names = gguf.get_tensor_name_map(arch, config.num_hidden_layers)
    for name, tensor in lm.model.state_dict().items():
        if name == "lm_head.weight":  # tied to the token embeddings
            continue
        data = tensor.float()
        if name.endswith("norm.weight"):  # Gemma's RMSNorm scales by (1 + w); llama.cpp's by w
            data = data + 1
        writer.add_tensor(names.get_name(name, try_suffixes=(".weight",)), data.numpy())
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path

