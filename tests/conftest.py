"""Shared fixtures: random collapsed networks, made in numpy, and their weights files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models import CollapsedWeights, ConvWeights, ModelDescriptor, save_weights


def make_random_weights(variant: str = "sesr-m3", scale: int = 2, seed: int = 0,
                        spread: float = 0.05) -> CollapsedWeights:
    """A collapsed network with small random weights: far from identity, so errors show."""
    rng = np.random.default_rng(seed)
    d = ModelDescriptor.for_variant(variant, scale)
    f = d.channels

    def conv(out_ch: int, in_ch: int, k: int) -> ConvWeights:
        weight = rng.normal(0.0, spread, (out_ch, in_ch, k, k)).astype(np.float32)
        return ConvWeights(weight, rng.normal(0.0, spread, out_ch).astype(np.float32))

    return CollapsedWeights(
        descriptor=d,
        head=conv(f, 1, 5),
        body=tuple(conv(f, f, 3) for _ in range(d.blocks)),
        alphas=tuple(rng.uniform(0.0, 0.3, f).astype(np.float32) for _ in range(d.blocks)),
        tail=conv(d.out_channels, f, 5),
        training={"note": "random test weights"},
    )


@pytest.fixture
def random_weights() -> CollapsedWeights:
    return make_random_weights()


@pytest.fixture
def weights_file(tmp_path: Path) -> Path:
    """A ×2 sesr-m3 weights file with random values."""
    path = tmp_path / "weights" / "sesr-m3-x2.safetensors"
    path.parent.mkdir()
    save_weights(make_random_weights(), path)
    return path


@pytest.fixture
def weights_file_x4(tmp_path: Path) -> Path:
    """A ×4 sesr-m3 weights file with random values."""
    path = tmp_path / "weights" / "sesr-m3-x4.safetensors"
    path.parent.mkdir(exist_ok=True)
    save_weights(make_random_weights(scale=4), path)
    return path
