import pytest
import torch
from lw_core import LwError
from lw_core.wire import FORMATS, WireFormat, quantize


@pytest.mark.parametrize("name", FORMATS)
def test_roundtrip_error_shrinks_with_bits(name):
    torch.manual_seed(0)
    z = torch.randn(4, 8, 32)
    fmt = WireFormat(name)
    err = (quantize(z, fmt) - z).abs().max().item()
    bound = {"fp32": 0, "fp16": 1e-2, "int8": 0.03, "int6": 0.12, "int4": 0.5}[name]
    assert err <= bound * z.abs().max().item() + 1e-6
    assert quantize(z, fmt).shape == z.shape


def test_byte_counts_include_scales():
    assert WireFormat("fp16").message_bytes(256) == 512
    assert WireFormat("int8", group_size=32).message_bytes(256) == 256 + 2 * 8
    assert WireFormat("int4", group_size=32).message_bytes(256) == 128 + 2 * 8
    assert WireFormat("int6", group_size=64).message_bytes(100) == 75 + 2 * 2


def test_unknown_format():
    with pytest.raises(LwError, match="known: fp32, fp16, int8, int6, int4"):
        WireFormat("int3")
