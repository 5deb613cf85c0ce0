"""SESR network definitions, collapse, weights files and shipped weights.

Importing this package needs numpy only; ``models.network`` and ``models.training`` need torch.
"""

from .descriptor import SCALES, VARIANTS, ModelDescriptor, UnknownModelError, VariantSpec, variant_spec
from .weights import CollapsedWeights, ConvWeights, WeightsFileError, load_weights, save_weights
from .zoo import MissingWeightsError, ShippedModel, load_model, shipped_models

__all__ = [
    "SCALES", "VARIANTS", "ModelDescriptor", "UnknownModelError", "VariantSpec", "variant_spec",
    "CollapsedWeights", "ConvWeights", "WeightsFileError", "load_weights", "save_weights",
    "MissingWeightsError", "ShippedModel", "load_model", "shipped_models",
]
