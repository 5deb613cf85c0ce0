"""Collapsed weights shipped inside the package (``models/weights/<variant>-x<scale>.safetensors``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .descriptor import ModelDescriptor, variant_spec
from .weights import CollapsedWeights, load_weights

__all__ = ["WEIGHTS_DIR", "ShippedModel", "MissingWeightsError", "shipped_models", "load_model",
           "weights_path"]

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


class MissingWeightsError(LookupError):
    """A variant and scale for which no trained weights ship."""

    def __init__(self, variant: str, scale: int, available: list[str]) -> None:
        self.variant = variant
        self.scale = scale
        listed = ", ".join(available) or "none"
        super().__init__(f"no trained weights ship for {variant} ×{scale}; available: {listed}; "
                         f"use one of those or a weights file from `sesr train`")


@dataclass(frozen=True)
class ShippedModel:
    """One shipped weights file with its descriptor and training record."""

    descriptor: ModelDescriptor
    path: Path
    training: dict


def weights_path(variant: str, scale: int) -> Path:
    """Return the path of the shipped weights of ``variant`` at ``scale``; the file may not exist."""
    return WEIGHTS_DIR / f"{variant_spec(variant).name}-x{scale}.safetensors"


def shipped_models() -> list[ShippedModel]:
    """List the shipped weights, ordered by variant then scale."""
    found = []
    for path in sorted(WEIGHTS_DIR.glob("*.safetensors")):
        weights = load_weights(path)
        found.append(ShippedModel(weights.descriptor, path, weights.training))
    order = {name: i for i, name in enumerate(["sesr-m3", "sesr-m5", "sesr-m7", "sesr-m11", "sesr-xl"])}
    return sorted(found, key=lambda m: (order[m.descriptor.variant], m.descriptor.scale))


def load_model(variant: str, scale: int) -> CollapsedWeights:
    """Load the shipped collapsed weights of ``variant`` (for example ``sesr-m5``) at ``scale``."""
    path = weights_path(variant, scale)
    if not path.is_file():
        available = [f"{m.descriptor.variant} ×{m.descriptor.scale}" for m in shipped_models()]
        raise MissingWeightsError(variant_spec(variant).name, scale, available)
    return load_weights(path)
