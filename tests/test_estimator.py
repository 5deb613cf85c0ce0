"""Estimator: layer graphs, ONNX reading, NPU profiles, cycle and traffic model, CLI."""

from __future__ import annotations

import csv
import json
import struct

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from typer.testing import CliRunner

from conftest import make_random_weights
from estimator import (LAYER_FIELDS, EstimatorError, InputSizeError, Op, Precision, ProfileError,
                       UnknownNetworkError, UnsupportedOperatorError, UnsupportedPrecisionError, build_network,
                       estimate, estimate_fused, load_catalogue, parse_input_size, plot_costs, read_onnx,
                       resolve_npu)
from estimator.cost import mac_cycles
from estimator.graph import Layer, NetworkBuilder, Shape
from models import ModelDescriptor
from upscale.backends import build_onnx_model


# Layer graphs ---------------------------------------------------------------------------------------

def test_sesr_macs_equal_descriptor():
    # SESR-M5 ×2: 25·16 + 5·9·16² + 25·16·4 = 400 + 11,520 + 1,600 = 13,520 MACs per LR pixel.
    network = build_network("sesr-m5", 2, 64, 32)
    assert network.macs == 13_520 * 64 * 32
    assert network.macs == ModelDescriptor.for_variant("sesr-m5", 2).macs(64, 32)


def test_sesr_x4_has_two_depth_to_space():
    network = build_network("sesr-m3", 4, 16, 8)
    d2s = [layer for layer in network.layers if layer.op is Op.DEPTH_TO_SPACE]
    assert len(d2s) == 2
    assert network.layer(network.outputs[0]).output_shape == Shape(1, 32, 64)


def test_fsrcnn_transpose_conv_counts():
    # Deconvolution 9×9, 56→1, stride 2 on an 8×8 input: 9·9·56 = 4,536 weights.
    # Algorithmic MACs per input pixel: 64·4,536 = 290,304; executed per output pixel: 256·4,536.
    deconv = build_network("fsrcnn", 2, 8, 8).layer("deconv")
    assert deconv.weights == 4_536
    assert deconv.macs == 290_304
    assert deconv.executed_macs == 1_161_216


def test_vdsr_macs_and_params():
    # VDSR ×2 on a 16×8 input runs at the bicubic output size 32×16 = 512 pixels. 3×3 convs:
    # 1→64 (576 weights), 18 × 64→64 (36,864 weights), 64→1 (576 weights).
    # MACs per output pixel: 576 + 18·36,864 + 576 = 664,704, so 664,704 · 512 = 340,328,448.
    # Parameters: (576 + 64) + 18·(36,864 + 64) + (576 + 1) = 640 + 664,704 + 577 = 665,921.
    network = build_network("vdsr", 2, 16, 8)
    assert network.macs == 340_328_448, network.macs
    assert network.parameters == 665_921, network.parameters
    assert network.layer(network.outputs[0]).output_shape == Shape(1, 16, 32)


def test_edsr_baseline_macs_and_params():
    # EDSR-baseline ×2 on a 16×8 RGB input (128 LR pixels), all convs 3×3:
    # head 3→64 (1,728 weights), 32 block convs and body_end 64→64 (33 · 36,864 = 1,216,512),
    # upsampler 64→256 (147,456) at LR size; tail 64→3 (1,728) on the 32×16 output = 4 · 1,728
    # per LR pixel. MACs per LR pixel: 1,728 + 1,216,512 + 147,456 + 6,912 = 1,372,608, so
    # 1,372,608 · 128 = 175,693,824.
    # Parameters: mean subtraction 3 + head 1,792 + 33 · 36,928 + upsampler 147,712 + tail 1,731
    # + mean addition 3 = 3 + 1,792 + 1,218,624 + 147,712 + 1,731 + 3 = 1,369,865.
    network = build_network("edsr-baseline", 2, 16, 8)
    assert network.macs == 175_693_824, network.macs
    assert network.parameters == 1_369_865, network.parameters
    assert network.layer(network.outputs[0]).output_shape == Shape(3, 16, 32)


def test_unknown_network_name_rejected():
    with pytest.raises(UnknownNetworkError, match="sesr-m5"):
        build_network("srgan", 2, 8, 8)


def test_input_size_parsing():
    assert parse_input_size("1080p") == (1920, 1080)
    assert parse_input_size("640x360") == (640, 360)
    assert parse_input_size("320×180") == (320, 180)
    with pytest.raises(InputSizeError):
        parse_input_size("1080")


# ONNX reader ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("scale", [2, 4])
def test_onnx_macs_equal_descriptor(tmp_path, scale):
    path = tmp_path / "sesr.onnx"
    onnx.save(build_onnx_model(make_random_weights("sesr-m3", scale)), str(path))
    network = read_onnx(path, 40, 24)
    descriptor = ModelDescriptor.for_variant("sesr-m3", scale)
    assert network.macs == descriptor.macs(40, 24)
    assert network.scale == scale
    assert network.parameters == build_network("sesr-m3", scale, 40, 24).parameters


def _save_softmax_model(path) -> None:
    node = helper.make_node("Softmax", ["x"], ["y"], name="probabilities")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, "H", "W"])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, "H", "W"])])
    onnx.save(helper.make_model(graph), str(path))


def test_onnx_unknown_operator_named(tmp_path):
    path = tmp_path / "softmax.onnx"
    _save_softmax_model(path)
    with pytest.raises(UnsupportedOperatorError) as caught:
        read_onnx(path, 8, 8)
    message = str(caught.value)
    assert message.startswith("ONNX operator 'Softmax' (node 'probabilities') is not supported"), message
    assert "Concat, Constant, Conv, ConvTranspose, DepthToSpace" in message, message
    assert caught.value.op_type == "Softmax"


def _resize_concat_model() -> onnx.ModelProto:
    """x (1 channel) → Conv 3×3 1→4 → Resize ×2 linear; x → Resize ×2 nearest; Concat → Conv 1×1 5→1."""
    rng = np.random.default_rng(0)
    initializers = [
        numpy_helper.from_array(rng.normal(size=(4, 1, 3, 3)).astype(np.float32), "w1"),
        numpy_helper.from_array(np.zeros(4, np.float32), "b1"),
        numpy_helper.from_array(rng.normal(size=(1, 5, 1, 1)).astype(np.float32), "w2"),
        numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["features"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Resize", ["features", "", "scales"], ["features_up"], mode="linear"),
        helper.make_node("Resize", ["x", "", "scales"], ["x_up"], mode="nearest"),
        helper.make_node("Concat", ["x_up", "features_up"], ["joined"], axis=1),
        helper.make_node("Conv", ["joined", "w2"], ["y"], kernel_shape=[1, 1]),
    ]
    graph = helper.make_graph(nodes, "resize_concat",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, "H", "W"])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, "H2", "W2"])],
                              initializer=initializers)
    return helper.make_model(graph)


def test_onnx_resize_and_concat(tmp_path):
    path = tmp_path / "resize_concat.onnx"
    onnx.save(_resize_concat_model(), str(path))
    network = read_onnx(path, 16, 8)

    ops = [layer.op for layer in network.layers]
    assert ops == [Op.CONV, Op.RESIZE, Op.RESIZE, Op.CONCAT, Op.CONV], ops
    features_up, x_up, joined = (network.layer(n) for n in ("features_up", "x_up", "joined"))
    assert (features_up.mode, features_up.stride) == ("linear", (2, 2)), (features_up.mode, features_up.stride)
    assert (x_up.mode, x_up.stride) == ("nearest", (2, 2)), (x_up.mode, x_up.stride)
    assert features_up.output_shape == Shape(4, 16, 32), features_up.output_shape
    # Concat stacks 1 + 4 channels at the ×2 size.
    assert joined.output_shape == Shape(5, 16, 32), joined.output_shape
    assert joined.inputs == ("x_up", "features_up"), joined.inputs
    # MACs: 3×3 1→4 on 16×8 = 36 · 128 = 4,608, plus 1×1 5→1 on 32×16 = 5 · 512 = 2,560.
    assert network.macs == 7_168, network.macs
    # Parameters: 36 weights + 4 biases, then 5 weights without bias.
    assert network.parameters == 45, network.parameters
    assert network.scale == 2


def test_onnx_resize_and_concat_run_on_ethos_u(tmp_path):
    # Nearest and bilinear resizes and channel concatenation run on Ethos-U; resizes and concat
    # count 0 MACs and cost output-unit cycles.
    path = tmp_path / "resize_concat.onnx"
    onnx.save(_resize_concat_model(), str(path))
    cost = estimate(read_onnx(path, 16, 8), resolve_npu("ethos-u55-256"))
    assert cost.cpu_layers == (), cost.cpu_layers
    concat = next(c for c in cost.layers if c.name == "joined")
    assert concat.macs == 0
    # Output unit at the "other" rate 0.25 cycles per element × 5·16·32 = 2,560 elements.
    assert concat.compute_cycles == 640, concat.compute_cycles


def test_onnx_fixed_size_mismatch(tmp_path):
    node = helper.make_node("Relu", ["x"], ["y"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 10, 20])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 10, 20])])
    path = tmp_path / "fixed.onnx"
    onnx.save(helper.make_model(graph), str(path))
    assert read_onnx(path, 20, 10).input_shape == Shape(1, 10, 20)
    with pytest.raises(EstimatorError, match="fixed to 10"):
        read_onnx(path, 20, 12)


# Profiles -------------------------------------------------------------------------------------------

def test_default_u65_profile_figures():
    npu = resolve_npu("ethos-u65-256")
    assert (npu.system, npu.memory_mode) == ("Ethos_U65_Client_Server", "Dedicated_Sram_384KB")
    assert npu.clock_hz == 1e9
    # Dram: clock_scale 0.75 × 16-byte AXI × 1 port = 12 bytes per cycle at 1 GHz.
    assert npu.external.bandwidth_bytes_per_s == 12e9
    assert npu.onchip_bytes == 384 * 1024


def test_overrides_replace_single_figures():
    npu = resolve_npu("ethos-u55-128", clock_mhz=250, dram_bandwidth_gbps=2, sram_size_kib=512)
    assert npu.clock_hz == 250e6
    assert npu.external.bandwidth_bytes_per_s == 2e9
    assert npu.onchip_bytes == 512 * 1024
    assert len(npu.overrides) == 3


def test_unknown_npu_and_mode_rejected():
    with pytest.raises(ProfileError, match="unknown NPU"):
        resolve_npu("ethos-u99")
    with pytest.raises(ProfileError, match="unknown memory mode"):
        resolve_npu("ethos-u55-64", memory_mode="Nowhere")


def test_fp16_needs_a_profile_that_lists_it(tmp_path):
    with pytest.raises(UnsupportedPrecisionError, match="int8, int16"):
        estimate(build_network("sesr-m3", 2, 8, 8), resolve_npu("ethos-u55-256"), "fp16")

    # A custom accelerator: 64 fp16 MACs per cycle, one 1×1×8 granule, Shared_Sram.
    profile = tmp_path / "custom.toml"
    profile.write_text("""
[engine.toy]
traversals = [{ name = "direct", precision = "fp16", kernel_granule = 1, channel_granule = 1, rate = 1.0 }]
[accelerator.toy-64]
engine = "toy"
macs_per_cycle = 64
output_granules = [[1, 1, 8]]
default_system = "Ethos_U65_Embedded"
default_memory_mode = "Shared_Sram"
output_cycles.fp16 = { mac = 0.0, add_sub = 1.0, mul = 1.0, other = 1.0, relu = 1.0, lut = 1.0 }
""")
    npu = resolve_npu("toy-64", load_catalogue([profile]))
    layer = Layer("conv", Op.CONV, ("x",), (Shape(3, 2, 2),), Shape(8, 2, 2), kernel=(3, 3), weights=216)
    # 4 positions × 8 channels × 9 kernel elements × 3 input channels / 64 = 13.5 cycles.
    assert mac_cycles(layer, npu, Precision.FP16) == (13.5, "direct")


# Cycle model ----------------------------------------------------------------------------------------

def _conv(c_in: int, c_out: int, k: int, size: int) -> Layer:
    return Layer("conv", Op.CONV, ("x",), (Shape(c_in, size, size),), Shape(c_out, size, size),
                 kernel=(k, k), weights=k * k * c_in * c_out)


def test_mac_cycles_tiny_conv_u55_256():
    # 3×3 conv 16→16 on a 4×4 map, micro-block 2×2×8 (8 micro-blocks).
    # Depth-first: 4 cycles per kernel element per 32 channels → 8·9·4 = 288 cycles.
    # Part-kernel: 4 cycles per 4 kernel elements per 8 channels → 8·ceil(9/4)·4·ceil(16/8) = 192 cycles.
    cycles, traversal = mac_cycles(_conv(16, 16, 3, 4), resolve_npu("ethos-u55-256"), Precision.INT8)
    assert (cycles, traversal) == (192, "part_kernel")


def test_single_channel_input_uses_fraction_of_array():
    # 5×5 conv 1→16 on 4×4: part-kernel 8 micro-blocks · ceil(25/4)=7 steps · 4 cycles = 224 cycles
    # for 16·16·25 = 6,400 MACs, so 6,400 / (224·256) = 11.2 % of the array.
    npu = resolve_npu("ethos-u55-256", memory_mode="Sram_Only")
    cycles, _ = mac_cycles(_conv(1, 16, 5, 4), npu, Precision.INT8)
    assert cycles == 224
    assert 6_400 / (cycles * 256) == pytest.approx(0.1116, abs=1e-4)


def test_int16_mac_cycles():
    npu = resolve_npu("ethos-u55-256")
    int16, traversal = mac_cycles(_conv(16, 16, 3, 4), npu, Precision.INT16)
    # int16 depth-first: 4 cycles per kernel element per 16 channels → 8·9·4 = 288 cycles;
    # part-kernel: 8 micro-blocks · ceil(9/2)=5 steps · 4 cycles · ceil(16/8)=2 → 320 cycles.
    assert (int16, traversal) == (288, "depth_first")


def test_elementwise_add_output_rate():
    # Add of two 16×4×4 int8 maps on ethos-u55-256: 0.75 cycles per output element × 256 = 192.
    b = NetworkBuilder("add", Shape(16, 4, 4), "x")
    b.elementwise("add", Op.ADD, ("x", "x"))
    cost = estimate(b.build(("add",)), resolve_npu("ethos-u55-256", memory_mode="Sram_Only"))
    assert cost.layers[0].compute_cycles == 192
    assert cost.layers[0].macs == 0


def test_layer_cycles_are_max_of_compute_and_memory():
    cost = estimate(build_network("sesr-m3", 2, 32, 16), resolve_npu("ethos-u65-256"))
    for layer in cost.layers:
        assert layer.cycles == max(layer.compute_cycles, layer.memory_cycles)
        assert layer.bound in ("compute", "memory", "cpu")
    assert cost.cycles == sum(layer.cycles for layer in cost.layers)
    assert cost.fps == pytest.approx(1e9 / cost.cycles)


def test_depth_to_space_flagged_on_ethos_u():
    cost = estimate(build_network("sesr-m3", 2, 16, 8), resolve_npu("ethos-u55-256"))
    d2s = next(c for c in cost.layers if c.name == "d2s.0")
    assert d2s.target == "cpu"
    assert d2s.cycles == 0
    assert "transposed convolution" in d2s.note
    assert cost.cpu_layers == ("d2s.0",)

    rewritten = estimate(build_network("sesr-m3", 2, 16, 8), resolve_npu("ethos-u55-256"), rewrite_unsupported=True)
    d2s = next(c for c in rewritten.layers if c.name == "d2s.0")
    assert d2s.target == "npu"
    # One-hot 2×2 stride-2 transposed conv 4→1: 2·2·4·1 = 16 weights per output pixel, 32×16 outputs.
    assert d2s.executed_macs == 16 * 32 * 16


def test_depth_to_space_on_npu_for_ethos_n78():
    cost = estimate(build_network("sesr-m3", 2, 16, 8), resolve_npu("ethos-n78-2048"))
    assert cost.cpu_layers == ()


def test_fsrcnn_x4_deconv_stride_unsupported_on_ethos_u():
    cost = estimate(build_network("fsrcnn", 4, 16, 8), resolve_npu("ethos-u65-256"))
    assert "deconv" in cost.cpu_layers


def test_small_cache_spills_to_dram():
    network = build_network("sesr-m3", 2, 64, 64)
    roomy = estimate(network, resolve_npu("ethos-u65-256", sram_size_kib=4096))
    tight = estimate(network, resolve_npu("ethos-u65-256", sram_size_kib=16))
    assert tight.dram_bytes > roomy.dram_bytes
    assert roomy.arena_peak_bytes <= 4096 * 1024


# Fused what-if --------------------------------------------------------------------------------------

# A toy NPU with round figures, so that costs can be derived by hand: 64 MACs per cycle with no
# rounding (every granule 1), no output-unit limit on convolutions, 1 GHz, SRAM 64 bytes/cycle,
# DRAM 1 byte/cycle (1 GB/s), 1-byte bursts (no burst inflation), 1×8 OFM blocks and a 3 KiB
# on-chip cache for feature maps. Weights and feature maps live in DRAM.
TOY_PROFILE = """
[engine.toy]
traversals = [{ name = "direct", precision = "int8", kernel_granule = 1, channel_granule = 1, rate = 1.0 }]

[accelerator.toy-64]
engine = "toy"
macs_per_cycle = 64
output_granules = [[1, 1, 1]]
ofm_block = [1, 8]
cpu_ops = []
default_system = "Toy_System"
default_memory_mode = "Toy_Cache_3KB"
output_cycles.int8 = { mac = 0.0, add_sub = 1.0, mul = 1.0, other = 1.0, relu = 1.0, lut = 1.0 }

[system.Toy_System]
core_clock_hz = 1e9
axi_width_bytes = 1
axi0 = { memory = "Sram", clock_scale = 64.0, burst_length_bytes = 1 }
axi1 = { memory = "Dram", clock_scale = 1.0, burst_length_bytes = 1 }

[memory_mode.Toy_Cache_3KB]
const = "axi1"
arena = "axi1"
cache_size_bytes = 3072
"""


@pytest.fixture
def toy_profile(tmp_path):
    path = tmp_path / "toy.toml"
    path.write_text(TOY_PROFILE)
    return path


def _two_convs():
    """Two 3×3 convs 8→8 on an 8-channel 64×8 map (C×H×W = 8×8×64, 4,096 bytes in int8)."""
    b = NetworkBuilder("two_convs", Shape(8, 8, 64), "x")
    b.conv("conv2", b.conv("conv1", "x", 8, 3), 8, 3)
    return b.build(("conv2",))


# Hand derivation for _two_convs on toy-64, shared by the tests below.
# Each conv: 576 weights, 576 MACs per pixel × 512 pixels = 294,912 MACs → 4,608 compute cycles;
#   weight bytes 576 + 10 per output channel · 8 = 656.
# Baseline, per conv: 1×8 OFM blocks read 3×10 IFM pixels each, 64 blocks · 30 / 512 = 3.75 reads
#   per IFM byte, so DRAM bytes = 4,096 · 3.75 + 4,096 + 656 = 20,112. conv1's output (4,096 bytes)
#   does not fit the 3,072-byte cache, so both convs move 20,112 DRAM bytes.
# Fused pair: per tile the buffer contains 3 rows of x (tile + 4 columns), 3 rows of conv1
#   (tile + 2 columns), 1 row of conv2 (tile columns), 8 channels each, and 2 · 576 weights:
#   24(t + 4) + 24(t + 2) + 8t + 1,152 = 56t + 1,296 bytes ≤ 3,072 → t ≤ 31, so 3 tiles, evened
#   out to 22 columns (buffer 56 · 22 + 1,296 = 2,528 bytes).
#   The 2 inner tile edges recompute 1 halo column of conv1 on each side: 64 + 4 = 68 columns,
#   so conv1 takes 4,608 · 68/64 = 4,896 cycles and the pair 4,896 + 4,608 = 9,504 compute cycles;
#   recompute factor (68 + 64) / 128 = 1.03125.
#   DRAM: x with 2 halo columns per side per inner edge, 4,096 · 72/64 = 4,608, plus conv2's
#   output 4,096, plus weights 2 · 656 = 1,312: 10,016 bytes.
TWO_CONVS_BASELINE_DRAM_BYTES = 2 * 20_112
TWO_CONVS_FUSED_DRAM_BYTES = 4_608 + 4_096 + 1_312


def test_fusion_wins_when_dram_is_slow(toy_profile):
    # At 1 byte/cycle the baseline is memory-bound: 20,112 cycles per conv, 40,224 in total.
    # Fused: max(9,504 compute, 10,016 DRAM) = 10,016 cycles.
    npu = resolve_npu("toy-64", load_catalogue([toy_profile]))
    plan = estimate_fused(_two_convs(), npu)
    assert plan.baseline.cycles == 40_224, plan.baseline.cycles
    assert plan.baseline.dram_bytes == TWO_CONVS_BASELINE_DRAM_BYTES, plan.baseline.dram_bytes
    assert len(plan.groups) == 1, plan.groups
    group = plan.groups[0]
    assert group.fused, group.reason
    assert (group.tiles, group.tile_columns) == (3, 22), (group.tiles, group.tile_columns)
    assert group.buffer_bytes == 2_528, group.buffer_bytes
    assert group.recompute_factor == 1.03125, group.recompute_factor
    assert group.cycles == 10_016, group.cycles
    assert group.layer_by_layer_cycles == 40_224, group.layer_by_layer_cycles
    assert plan.dram_bytes == TWO_CONVS_FUSED_DRAM_BYTES, plan.dram_bytes
    assert plan.fps == pytest.approx(1e9 / 10_016), plan.fps
    assert group.reason.startswith("fused: 10,016 cycles against 40,224 cycles layer by layer"), group.reason


def test_fusion_loses_to_halo_recompute(toy_profile):
    # At 1,000 GB/s (1,000 bytes/cycle) both convs are compute-bound: 2 · 4,608 = 9,216 cycles
    # layer by layer, while the fused pair recomputes halo columns: 9,504 cycles. The planner
    # keeps the layers unfused and states both numbers.
    npu = resolve_npu("toy-64", load_catalogue([toy_profile]), dram_bandwidth_gbps=1000)
    plan = estimate_fused(_two_convs(), npu)
    assert plan.baseline.cycles == 9_216, plan.baseline.cycles
    assert len(plan.groups) == 1, plan.groups
    group = plan.groups[0]
    assert not group.fused, group.reason
    assert group.layers == ("conv1", "conv2"), group.layers
    assert group.cycles == 9_216, group.cycles
    assert plan.cycles == plan.baseline.cycles, (plan.cycles, plan.baseline.cycles)
    assert plan.dram_bytes == TWO_CONVS_BASELINE_DRAM_BYTES, plan.dram_bytes
    assert plan.buffer_bytes == 0, plan.buffer_bytes
    assert "layer by layer: 9,216 cycles" in group.reason, group.reason
    assert "would take 9,504 cycles (3 tile(s) of 22 columns, recompute ×1.031)" in group.reason, group.reason


def test_fusion_never_slower_than_baseline():
    # EDSR-baseline at 640×360 on ethos-n78-2048 (1 MiB SRAM): the plan mixes fused groups with
    # at least one unfused layer, covers every NPU layer once, and no group is slower than its
    # layers run one by one.
    plan = estimate_fused(build_network("edsr-baseline", 2, 640, 360), resolve_npu("ethos-n78-2048"))
    assert plan.cycles <= plan.baseline.cycles, (plan.cycles, plan.baseline.cycles)
    planned = [name for group in plan.groups for name in group.layers]
    npu_layers = [c.name for c in plan.baseline.layers if c.target == "npu"]
    assert planned == npu_layers, planned
    assert any(not group.fused for group in plan.groups), [g.reason for g in plan.groups]
    for group in plan.groups:
        assert group.cycles <= group.layer_by_layer_cycles * (1 + 1e-12), group.reason
        assert group.reason.startswith("fused: " if group.fused else "layer by layer: "), group.reason


def test_fused_keeps_intermediates_on_chip():
    network = build_network("sesr-m5", 2, 256, 128)
    fused = estimate_fused(network, resolve_npu("ethos-u65-256"))
    assert fused.dram_bytes < fused.baseline.dram_bytes / 5, (fused.dram_bytes, fused.baseline.dram_bytes)
    assert fused.buffer_bytes <= 384 * 1024, fused.buffer_bytes
    assert all(group.recompute_factor >= 1 for group in fused.groups)
    # The clip after the CPU depth-to-space is alone in its run of NPU layers.
    assert [group.fused for group in fused.groups][-1] is False
    assert all(group.fused for group in fused.groups[:-1]), [g.reason for g in fused.groups]


def test_fused_dram_when_rows_fit():
    # 32×16 input: everything fits a 1 MiB buffer, so the NPU group before the CPU depth-to-space
    # reads the 512-byte input and writes the 4×16×32 = 2,048-byte tail sum; the clip after it
    # reads 2,048 and writes 2,048 bytes; the CPU reads 2,048 and writes 2,048 bytes.
    network = build_network("sesr-m3", 2, 32, 16)
    npu = resolve_npu("ethos-u65-256", sram_size_kib=1024)
    fused = estimate_fused(network, npu)
    weights = sum(c.weight_bytes for c in fused.baseline.layers)
    assert [g.tiles for g in fused.groups] == [1, 1]
    assert [g.fused for g in fused.groups] == [True, False]
    assert fused.dram_bytes == 512 + 2_048 + 2_048 + 2_048 + weights + fused.baseline.cpu_bytes


# CLI ------------------------------------------------------------------------------------------------

def _run_cli(*args: str):
    from cli import app

    return CliRunner().invoke(app, ["estimate", *args])


def _two_convs_onnx(path) -> None:
    """_two_convs as an ONNX file: two 3×3 convs 8→8 without bias, "same" padding."""
    rng = np.random.default_rng(0)
    initializers = [numpy_helper.from_array(rng.normal(size=(8, 8, 3, 3)).astype(np.float32), name)
                    for name in ("w1", "w2")]
    nodes = [helper.make_node("Conv", ["x", "w1"], ["conv1"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("Conv", ["conv1", "w2"], ["conv2"], kernel_shape=[3, 3], pads=[1, 1, 1, 1])]
    graph = helper.make_graph(nodes, "two_convs",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, "H", "W"])],
                              [helper.make_tensor_value_info("conv2", TensorProto.FLOAT, [1, 8, "H", "W"])],
                              initializer=initializers)
    onnx.save(helper.make_model(graph), str(path))


@pytest.fixture
def toy_run(tmp_path, toy_profile):
    """Run ``sesr estimate --json`` on _two_convs (as ONNX) with the toy profile; return the run record."""
    model = tmp_path / "two_convs.onnx"
    _two_convs_onnx(model)

    def run(*overrides: str) -> dict:
        result = _run_cli("--model", str(model), "--input-size", "64x8", "--profile", str(toy_profile),
                          "--npu", "toy-64", "--json", *overrides)
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)["runs"][0]

    return run


def test_cli_user_profile_file(toy_run):
    # The toy profile's defaults: 1 GHz, 1 GB/s DRAM, 3 KiB cache; see the derivation above.
    record = toy_run()
    assert (record["npu"], record["system_config"], record["memory_mode"]) == \
        ("toy-64", "Toy_System", "Toy_Cache_3KB"), record
    assert record["clock_hz"] == 1e9
    assert record["macs"] == 2 * 294_912, record["macs"]
    assert record["cycles"] == 40_224, record["cycles"]
    assert record["dram_bytes"] == TWO_CONVS_BASELINE_DRAM_BYTES, record["dram_bytes"]
    assert record["bound"] == "memory"


def test_cli_dram_bandwidth_override(toy_run):
    # 2 GB/s halves each conv's DRAM cycles: 20,112 / 2 = 10,056 > 4,608 compute → 20,112 cycles,
    # FPS 1e9 / 20,112, twice the 1 GB/s figure. Bytes moved do not change.
    record = toy_run("--dram-bandwidth", "2")
    assert record["cycles"] == 20_112, record["cycles"]
    assert record["fps"] == pytest.approx(1e9 / 20_112), record["fps"]
    assert record["dram_bytes"] == TWO_CONVS_BASELINE_DRAM_BYTES, record["dram_bytes"]


def test_cli_clock_override(toy_run):
    # Bandwidths stay in bytes per second. At 500 MHz DRAM gives 2 bytes/cycle, so the
    # memory-bound convs take 10,056 cycles each and FPS is unchanged: 5e8 / 20,112 = 1e9 / 40,224.
    memory_bound = toy_run("--clock", "500")
    assert memory_bound["clock_hz"] == 500e6
    assert memory_bound["cycles"] == 20_112, memory_bound["cycles"]
    assert memory_bound["fps"] == pytest.approx(1e9 / 40_224), memory_bound["fps"]
    # With DRAM at 1,000 GB/s the convs are compute-bound (2 · 4,608 = 9,216 cycles), so halving
    # the clock halves FPS: 5e8 / 9,216.
    compute_bound = toy_run("--clock", "500", "--dram-bandwidth", "1000")
    assert compute_bound["cycles"] == 9_216, compute_bound["cycles"]
    assert compute_bound["fps"] == pytest.approx(5e8 / 9_216), compute_bound["fps"]
    assert compute_bound["bound"] == "compute"


def test_cli_sram_size_override(toy_run):
    # A 4 KiB cache has room for conv1's 4,096-byte output, so it moves through SRAM:
    # conv1 DRAM = 15,360 IFM + 656 weights = 16,016, SRAM write 4,096;
    # conv2 DRAM = 4,096 OFM + 656 weights = 4,752, SRAM read 4,096 · 3.75 = 15,360.
    # Cycles: max(4,608, 16,016) + max(4,608, 4,752, 15,360 / 64) = 16,016 + 4,752 = 20,768.
    record = toy_run("--sram-size", "4")
    assert record["dram_bytes"] == 16_016 + 4_752, record["dram_bytes"]
    assert record["sram_bytes"] == 4_096 + 15_360, record["sram_bytes"]
    assert record["cycles"] == 20_768, record["cycles"]


def test_cli_fused_json_reports_groups(toy_run):
    record = toy_run("--fused")
    fused = record["fused"]
    assert fused["cycles"] == 10_016, fused["cycles"]
    assert fused["dram_bytes"] == TWO_CONVS_FUSED_DRAM_BYTES, fused["dram_bytes"]
    assert len(fused["groups"]) == 1, fused["groups"]
    group = fused["groups"][0]
    for key in ("layers", "fused", "reason", "tile_columns", "tiles", "buffer_bytes", "recompute_factor",
                "dram_bytes", "cycles", "layer_by_layer_cycles"):
        assert key in group, key
    assert group["fused"] is True
    assert group["layers"] == ["conv1", "conv2"], group["layers"]


def test_cli_json_fields(tmp_path):
    csv_path = tmp_path / "layers.csv"
    result = _run_cli("--model", "sesr-m3", "--input-size", "64x32", "--npu", "ethos-u55-64", "--npu",
                      "ethos-u85-256", "--json", "--csv", str(csv_path))
    assert result.exit_code == 0, result.output
    runs = json.loads(result.stdout)["runs"]
    assert len(runs) == 2
    for key in ("model", "scale", "input_size", "npu", "precision", "macs", "params", "cycles", "fps",
                "dram_bytes", "sram_bytes", "bound", "layers"):
        assert key in runs[0], key
    assert [run["npu"] for run in runs] == ["ethos-u55-64", "ethos-u85-256"]
    assert runs[0]["scale"] == 2
    assert runs[0]["input_size"] == "64x32"
    assert runs[0]["precision"] == "int8"
    # SESR-M3 ×2: 25·16 + 3·9·16² + 25·16·4 = 400 + 6,912 + 1,600 = 8,912 MACs per LR pixel.
    assert runs[0]["macs"] == 8_912 * 64 * 32, runs[0]["macs"]
    assert {"macs", "params", "cycles", "dram_bytes", "sram_bytes", "bound"} <= set(runs[0]["layers"][0])
    head = next(layer for layer in runs[0]["layers"] if layer["name"] == "head")
    assert head["output_shape"] == [16, 32, 64], head["output_shape"]   # channels, height, width
    assert "fused" not in runs[0]


def test_cli_csv_header_and_rows(tmp_path):
    csv_path = tmp_path / "layers.csv"
    result = _run_cli("--model", "sesr-m3", "--input-size", "64x32", "--npu", "ethos-u55-64", "--npu",
                      "ethos-u85-256", "--csv", str(csv_path))
    assert result.exit_code == 0, result.output
    with open(csv_path, newline="") as stream:
        rows = list(csv.reader(stream))
    assert rows[0] == ["model", "input_size", "npu", "precision", *LAYER_FIELDS], rows[0]
    # SESR-M3 ×2 has 13 layers: sub, head, 3 × (conv, PReLU), long residual, tail, global
    # residual, depth-to-space, clip (not folded, as its producer is a depth-to-space).
    # Two NPUs give two runs of 13 rows under one header.
    layers = len(estimate(build_network("sesr-m3", 2, 64, 32), resolve_npu("ethos-u55-64")).layers)
    assert layers == 13, layers
    assert len(rows) == 1 + 2 * 13, len(rows)
    assert {row[2] for row in rows[1:]} == {"ethos-u55-64", "ethos-u85-256"}


def test_cli_several_sizes(tmp_path):
    result = _run_cli("--model", "sesr-m3", "--input-size", "64x32", "--input-size", "360p",
                      "--npu", "ethos-u55-64", "--json")
    assert result.exit_code == 0, result.output
    runs = json.loads(result.stdout)["runs"]
    assert [run["input_size"] for run in runs] == ["64x32", "640x360"], [run["input_size"] for run in runs]
    # MACs scale with the LR pixel count: 8,912 per pixel.
    assert runs[0]["macs"] == 8_912 * 64 * 32, runs[0]["macs"]
    assert runs[1]["macs"] == 8_912 * 640 * 360, runs[1]["macs"]


def test_cli_table_success():
    result = _run_cli("--model", "sesr-m3", "--input-size", "64x32", "--npu", "ethos-n78-1024", "--fused")
    assert result.exit_code == 0, result.output
    assert "sesr-m3-x2 64x32 on ethos-n78-1024" in result.stdout, result.stdout
    assert "fused what-if:" in result.stdout, result.stdout


@pytest.mark.parametrize(("args", "message"), [
    (["--model", "srgan"], "unknown model 'srgan'"),
    (["--npu", "ethos-u99"], "unknown NPU 'ethos-u99'"),
    (["--input-size", "1080"], "invalid input size '1080'"),
    (["--scale", "3"], "--scale must be 2 or 4, got 3"),
    (["--precision", "int4"], "unknown --precision 'int4'"),
    (["--dram-bandwidth", "0"], "--dram-bandwidth must be a positive number of GB/s"),
])
def test_cli_usage_errors_exit_2(args, message):
    result = _run_cli("--input-size", "64x32", *args)
    assert result.exit_code == 2, result.output
    assert message in result.output, result.output


def test_cli_unsupported_onnx_operator_exits_2(tmp_path):
    path = tmp_path / "softmax.onnx"
    _save_softmax_model(path)
    result = _run_cli("--model", str(path), "--input-size", "8x8")
    assert result.exit_code == 2, result.output
    assert "ONNX operator 'Softmax' (node 'probabilities') is not supported" in result.output, result.output


def test_cli_unwritable_csv_exits_1(tmp_path):
    result = _run_cli("--model", "sesr-m3", "--input-size", "64x32", "--csv", str(tmp_path / "missing" / "x.csv"))
    assert result.exit_code == 1, result.output
    assert "failed to write" in result.output, result.output


# Plot -----------------------------------------------------------------------------------------------

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_plot_writes_png(tmp_path):
    pytest.importorskip("matplotlib")
    npu = resolve_npu("ethos-u65-256")
    runs = [(estimate(build_network(name, 2, 64, 32), npu), npu) for name in ("sesr-m3", "fsrcnn")]
    path = plot_costs(runs, tmp_path / "costs.png")
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, data[:8]
    # IHDR follows the signature: 4-byte length, "IHDR", then width and height, big-endian.
    assert data[12:16] == b"IHDR", data[12:16]
    width, height = struct.unpack(">II", data[16:24])
    # 15 inches at 110 dots per inch.
    assert width == 1_650, width
    assert height > 800, height
    assert len(data) > 50_000, len(data)


def test_cli_plot_option(tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "costs.png"
    result = _run_cli("--model", "sesr-m3", "--input-size", "64x32", "--plot", str(path))
    assert result.exit_code == 0, result.output
    assert path.read_bytes()[:8] == PNG_SIGNATURE
