"""Network definitions, collapse, descriptors and the weights file format."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from models import ModelDescriptor, UnknownModelError, WeightsFileError, load_weights, save_weights
from conftest import make_random_weights

torch = pytest.importorskip("torch")
from models.network import SESR, CollapsedSESR, LinearBlock, collapse  # noqa: E402


def _perturbed(model: torch.nn.Module, seed: int = 0, spread: float = 0.05) -> torch.nn.Module:
    """Add noise to every parameter, biases and PReLU slopes included, so none is trivial."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator) * spread)
    return model


@pytest.mark.parametrize(("variant", "scale"), [("sesr-m3", 2), ("sesr-m5", 4), ("sesr-xl", 2)])
def test_collapsed_equals_expanded(variant: str, scale: int) -> None:
    # float64, so the comparison tests the algebra rather than float32 rounding.
    model = _perturbed(SESR(ModelDescriptor.for_variant(variant, scale, expansion=48, collapsed=False))).double()
    lr = torch.rand(2, 1, 11, 13, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with torch.no_grad():
        expanded = model.forward_expanded(lr)
        collapsed = model(lr)
    error = (expanded - collapsed).abs()
    assert collapsed.shape == (2, 1, 11 * scale, 13 * scale), f"shape {tuple(collapsed.shape)}"
    assert error.max().item() < 1e-9, f"max |expanded − collapsed| {error.max().item():.3g}, mean {error.mean().item():.3g}"


@pytest.mark.parametrize(("variant", "scale"), [("sesr-m3", 2), ("sesr-m7", 4)])
def test_inference_module_matches_training_module(variant: str, scale: int) -> None:
    model = _perturbed(SESR(ModelDescriptor.for_variant(variant, scale, expansion=32, collapsed=False)))
    lr = torch.rand(1, 1, 9, 14, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        training = model(lr).clamp(0, 1)
        inference = CollapsedSESR(collapse(model))(lr)
    error = (training - inference).abs().max().item()
    assert error < 1e-6, f"max |training − inference| {error:.3g}"


def test_linear_block_bias_at_border() -> None:
    # The collapsed bias W2·b1 + b2 must hold at the zero-padded border too.
    block = _perturbed(LinearBlock(3, 4, 5, 16, residual=False), spread=0.3)
    x = torch.zeros(1, 3, 6, 6)
    with torch.no_grad():
        expanded = block.forward_expanded(x)
        collapsed = block(x)
    error = (expanded - collapsed).abs().max().item()
    assert error < 1e-5, f"max error {error:.3g} on an all-zero input (bias only)"


def test_residual_folded_into_centre_tap() -> None:
    block = LinearBlock(4, 4, 3, 8, residual=True)
    with torch.no_grad():
        block.expand.weight.zero_()
        block.project.weight.zero_()
    weight, bias = block.collapsed()
    expected = torch.zeros(4, 4, 3, 3)
    expected[:, :, 1, 1] = torch.eye(4)
    assert torch.equal(weight, expected), "a zeroed residual block must collapse to the identity kernel"
    assert torch.equal(bias, torch.zeros(4)), f"bias {bias.tolist()}"


def test_residual_block_needs_square_channels() -> None:
    with pytest.raises(ValueError, match="in_channels == out_channels"):
        LinearBlock(3, 4, 3, 8, residual=True)


@pytest.mark.parametrize(("variant", "scale", "weights", "radius"), [
    # 25·f + m·9·f² + 25·f·s²  with f = 16 (32 for XL)
    ("sesr-m3", 2, 25 * 16 + 3 * 9 * 256 + 25 * 16 * 4, 7),      # 8,912
    ("sesr-m5", 2, 25 * 16 + 5 * 9 * 256 + 25 * 16 * 4, 9),      # 13,520
    ("sesr-m5", 4, 25 * 16 + 5 * 9 * 256 + 25 * 16 * 16, 9),     # 18,320
    ("sesr-m11", 2, 25 * 16 + 11 * 9 * 256 + 25 * 16 * 4, 15),   # 27,344
    ("sesr-xl", 2, 25 * 32 + 11 * 9 * 1024 + 25 * 32 * 4, 15),   # 105,376
])
def test_descriptor_counts(variant: str, scale: int, weights: int, radius: int) -> None:
    d = ModelDescriptor.for_variant(variant, scale)
    assert d.weights == weights, f"{variant} ×{scale}: {d.weights} weights, expected {weights}"
    assert d.macs_per_pixel == weights, f"MACs per pixel {d.macs_per_pixel}"
    assert d.receptive_radius == radius, f"receptive radius {d.receptive_radius}, expected {radius}"


def test_descriptor_macs_for_1080p() -> None:
    # SESR-M5 ×2 at 1920×1080 LR: 13,520 × 2,073,600 = 28,035,072,000 MACs (~28 GMACs).
    d = ModelDescriptor.for_variant("sesr-m5", 2)
    assert d.macs(1920, 1080) == 28_035_072_000, f"{d.macs(1920, 1080):,}"


def test_descriptor_counts_match_module() -> None:
    # Weights, biases and PReLU slopes of the collapsed module equal the descriptor's parameters.
    model = SESR(ModelDescriptor.for_variant("sesr-m5", 2, expansion=16, collapsed=False))
    collapsed = CollapsedSESR(collapse(model))
    counted = sum(p.numel() for p in collapsed.parameters())
    assert counted == collapsed.descriptor.parameters, f"module {counted}, descriptor {collapsed.descriptor.parameters}"


def test_expanded_macs_match_reference() -> None:
    # Arm's SESR README quotes 41.77 G weight MACs for the expanded M5 forward pass over 32
    # patches of 64×64: 318,720 MACs per pixel × 131,072 pixels = 41.775 G.
    d = ModelDescriptor.for_variant("sesr-m5", 2, collapsed=False)
    assert d.expanded_macs_per_pixel == 318_720, f"{d.expanded_macs_per_pixel}"
    assert d.expanded_macs_per_pixel * 32 * 64 * 64 == 41_775_267_840


def test_unknown_variant_rejected() -> None:
    with pytest.raises(UnknownModelError, match="sesr-m9"):
        ModelDescriptor.for_variant("sesr-m9", 2)


def test_invalid_scale_rejected() -> None:
    with pytest.raises(ValueError, match="scale"):
        ModelDescriptor.for_variant("sesr-m5", 3)


def test_weights_round_trip(tmp_path: Path) -> None:
    weights = make_random_weights("sesr-m5", 4, seed=3)
    path = tmp_path / "m5.safetensors"
    save_weights(weights, path)
    loaded = load_weights(path)
    assert loaded.descriptor == weights.descriptor, f"{loaded.descriptor} != {weights.descriptor}"
    assert loaded.training == weights.training, f"{loaded.training}"
    for name, array in weights.tensors().items():
        assert np.array_equal(loaded.tensors()[name], array), f"{name} changed in the round trip"
    assert not list(tmp_path.glob("*.partial")), "temporary file left behind"


def test_weights_file_garbage(tmp_path: Path) -> None:
    path = tmp_path / "bad.safetensors"
    path.write_bytes(np.random.default_rng(0).bytes(500))
    with pytest.raises(WeightsFileError, match="bad.safetensors"):
        load_weights(path)


def test_weights_file_truncated(tmp_path: Path) -> None:
    path = tmp_path / "cut.safetensors"
    save_weights(make_random_weights(), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsFileError, match="not a readable safetensors"):
        load_weights(path)


def test_weights_file_missing(tmp_path: Path) -> None:
    with pytest.raises(WeightsFileError, match="file not found"):
        load_weights(tmp_path / "absent.safetensors")


def test_weights_metadata_mismatch(tmp_path: Path) -> None:
    # An M3 tensor set labelled as M5 must fail the shape check, naming the missing blocks.
    from safetensors.numpy import save_file

    weights = make_random_weights("sesr-m3", 2)
    path = tmp_path / "mislabelled.safetensors"
    save_file(weights.tensors(), str(path), metadata={
        "format": "sesr-collapsed", "format_version": "1", "variant": "sesr-m5", "scale": "2",
        "channels": "16", "blocks": "5", "training": json.dumps({})})
    with pytest.raises(WeightsFileError, match=r"missing \['body\.3"):
        load_weights(path)


def test_weights_wrong_format_tag(tmp_path: Path) -> None:
    from safetensors.numpy import save_file

    path = tmp_path / "other.safetensors"
    save_file({"x": np.zeros(3, dtype=np.float32)}, str(path), metadata={"format": "pt"})
    with pytest.raises(WeightsFileError, match="not an sesr weights file"):
        load_weights(path)


def test_weights_nan_rejected(tmp_path: Path) -> None:
    weights = make_random_weights()
    tensors = weights.tensors()
    tensors["tail.bias"][0] = np.nan
    from safetensors.numpy import save_file

    path = tmp_path / "nan.safetensors"
    save_file(tensors, str(path), metadata={
        "format": "sesr-collapsed", "format_version": "1", "variant": "sesr-m3", "scale": "2",
        "channels": "16", "blocks": "3", "training": "{}"})
    with pytest.raises(WeightsFileError, match="NaN"):
        load_weights(path)
