import pytest
import torch
from lw_bridge.wire import FORMATS, WireFormat, from_bytes, quantize, to_bytes
from lw_core import LwError


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


@pytest.mark.parametrize("name", FORMATS)
@pytest.mark.parametrize("group_size", [32, 7])
def test_bytes_decode_to_exactly_what_quantize_gives(name, group_size):
    torch.manual_seed(1)
    z = torch.randn(3, 5, 13) * 4
    fmt = WireFormat(name, group_size)
    payloads = to_bytes(z, fmt)
    assert [len(p) for p in payloads] == [fmt.message_bytes(5 * 13)] * 3
    assert torch.equal(from_bytes(payloads, fmt, (5, 13)), quantize(z, fmt))


def test_bytes_of_the_wrong_length_are_refused_in_one_line():
    payloads = to_bytes(torch.randn(1, 4, 8), WireFormat("int8"))
    with pytest.raises(LwError, match=r"message 0 has 33 bytes; a 4x8 message at int8 \(group size 32\) has 34"):
        from_bytes([payloads[0][:-1]], WireFormat("int8"), (4, 8))
