"""Model descriptors: the facts about an SESR network that travel with it.

Abbreviations used across ``models``: f is the trunk width (channels), m the number of 3×3 linear
blocks, p the expansion width inside a linear block during training, s the upscaling factor.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Scale = Literal[2, 4]
SCALES: tuple[int, ...] = (2, 4)


@dataclass(frozen=True)
class VariantSpec:
    """Architecture constants of one SESR variant (Bhardwaj et al., MLSys 2022)."""

    name: str
    """Command-line name, for example ``sesr-m5``."""
    channels: int
    """Trunk width f."""
    blocks: int
    """Number m of 3×3 linear blocks with PReLU."""
    expansion: int
    """Default expansion width p of the linear blocks during training."""


# p = 256 for every variant. The reference code's README trains M11 and XL with p = 64, but here
# p = 64 and p = 256 left SESR-M11 on the same plateau, and p = 256 lets a trained M7 start an
# M11 and an M11 start an XL (models.training._load_init needs a source no wider than its target).
VARIANTS: dict[str, VariantSpec] = {
    spec.name: spec
    for spec in (
        VariantSpec("sesr-m3", channels=16, blocks=3, expansion=256),
        VariantSpec("sesr-m5", channels=16, blocks=5, expansion=256),
        VariantSpec("sesr-m7", channels=16, blocks=7, expansion=256),
        VariantSpec("sesr-m11", channels=16, blocks=11, expansion=256),
        VariantSpec("sesr-xl", channels=32, blocks=11, expansion=256),
    )
}

HEAD_KERNEL = 5
BODY_KERNEL = 3
TAIL_KERNEL = 5


class UnknownModelError(ValueError):
    """A model name that is not one of the SESR variants."""

    def __init__(self, name: str) -> None:
        self.name = name
        known = ", ".join(VARIANTS)
        super().__init__(f"unknown model {name!r}: choose one of {known}")


def variant_spec(name: str) -> VariantSpec:
    """Look up a variant by its command-line name (case-insensitive)."""
    try:
        return VARIANTS[name.lower()]
    except KeyError:
        raise UnknownModelError(name) from None


@dataclass(frozen=True)
class ModelDescriptor:
    """Shape and cost of one SESR network at one scale.

    Counts follow Arm's convention for SESR: MACs are weight multiply-accumulates per
    low-resolution (LR) input pixel, biases and activations excluded.
    """

    variant: str
    """Command-line name of the variant, for example ``sesr-m5``."""
    scale: int
    """Upscaling factor s; the output is (h·s, w·s) for an h×w input."""
    channels: int
    """Trunk width f."""
    blocks: int
    """Number m of 3×3 blocks."""
    collapsed: bool = True
    """True for the inference form (one k×k conv per block), False for the expanded training form."""
    expansion: int = 256
    """Expansion width p of the training form; irrelevant once collapsed."""

    def __post_init__(self) -> None:
        if self.scale not in SCALES:
            raise ValueError(f"scale must be one of {SCALES}, got {self.scale}")
        if self.channels < 1 or self.blocks < 1 or self.expansion < 1:
            raise ValueError(
                f"channels, blocks and expansion must be positive, got "
                f"{self.channels}, {self.blocks}, {self.expansion}"
            )

    @classmethod
    def for_variant(cls, name: str, scale: int, *, expansion: int | None = None,
                    collapsed: bool = True) -> ModelDescriptor:
        """Build the descriptor of a named variant at a scale."""
        spec = variant_spec(name)
        return cls(
            variant=spec.name,
            scale=scale,
            channels=spec.channels,
            blocks=spec.blocks,
            collapsed=collapsed,
            expansion=expansion if expansion is not None else spec.expansion,
        )

    @property
    def out_channels(self) -> int:
        """Channels before depth-to-space: s²."""
        return self.scale * self.scale

    @property
    def receptive_radius(self) -> int:
        """LR pixels on each side that influence one output pixel: 2 (5×5) + m (3×3) + 2 (5×5)."""
        return HEAD_KERNEL // 2 + self.blocks * (BODY_KERNEL // 2) + TAIL_KERNEL // 2

    @property
    def weights(self) -> int:
        """Convolution weights of the collapsed network: 25·f + m·9·f² + 25·f·s²."""
        f = self.channels
        return (HEAD_KERNEL**2 * f + self.blocks * BODY_KERNEL**2 * f * f
                + TAIL_KERNEL**2 * f * self.out_channels)

    @property
    def biases(self) -> int:
        """Bias terms of the collapsed network: one per output channel of each conv."""
        return self.channels * (1 + self.blocks) + self.out_channels

    @property
    def prelu_parameters(self) -> int:
        """Per-channel PReLU slopes: m·f."""
        return self.blocks * self.channels

    @property
    def parameters(self) -> int:
        """All stored numbers of the collapsed network: weights, biases and PReLU slopes."""
        return self.weights + self.biases + self.prelu_parameters

    @property
    def macs_per_pixel(self) -> int:
        """Weight MACs per LR input pixel of the collapsed network (equals ``weights``)."""
        return self.weights

    @property
    def expanded_macs_per_pixel(self) -> int:
        """Weight MACs per LR pixel of the expanded training form: k²·C_in·p + p·C_out per block."""
        f, p = self.channels, self.expansion
        head = HEAD_KERNEL**2 * 1 * p + p * f
        body = self.blocks * (BODY_KERNEL**2 * f * p + p * f)
        tail = TAIL_KERNEL**2 * f * p + p * self.out_channels
        return head + body + tail

    def macs(self, width: int, height: int) -> int:
        """Weight MACs to upscale one width×height LR frame."""
        return self.macs_per_pixel * width * height
