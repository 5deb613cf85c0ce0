"""Collapsed SESR weights and their safetensors file format.

A file contains float32 tensors named ``head.weight``, ``head.bias``, ``body.{i}.weight``,
``body.{i}.bias``, ``body.{i}.alpha`` (PReLU slopes), ``tail.weight`` and ``tail.bias``, with
conv weights laid out C_out×C_in×k×k as in PyTorch and ONNX. The safetensors metadata (string
to string) carries ``format`` = ``sesr-collapsed``, ``format_version``, ``variant``, ``scale``,
``channels``, ``blocks`` and ``training``, a JSON object recording how the weights were made.
This module needs numpy only, so inference never imports torch.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .descriptor import BODY_KERNEL, HEAD_KERNEL, TAIL_KERNEL, ModelDescriptor, variant_spec

__all__ = ["ConvWeights", "CollapsedWeights", "WeightsFileError", "save_weights", "load_weights"]

FORMAT_NAME = "sesr-collapsed"
FORMAT_VERSION = "1"


class WeightsFileError(ValueError):
    """A weights file that cannot be read, or whose content does not match its metadata."""

    def __init__(self, path: Path | str, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


@dataclass(frozen=True)
class ConvWeights:
    """One collapsed convolution: weight C_out×C_in×k×k and bias C_out, float32."""

    weight: np.ndarray
    bias: np.ndarray

    def __post_init__(self) -> None:
        if self.weight.ndim != 4 or self.weight.shape[2] != self.weight.shape[3]:
            raise ValueError(f"conv weight must be C_out×C_in×k×k, got shape {self.weight.shape}")
        if self.bias.shape != (self.weight.shape[0],):
            raise ValueError(
                f"bias shape {self.bias.shape} does not match {self.weight.shape[0]} output channels"
            )


@dataclass(frozen=True)
class CollapsedWeights:
    """The inference network of one SESR model: 2 + m convs and m PReLU slope vectors."""

    descriptor: ModelDescriptor
    head: ConvWeights
    """5×5 conv, 1 → f."""
    body: tuple[ConvWeights, ...]
    """m 3×3 convs f → f, short residual already folded in."""
    alphas: tuple[np.ndarray, ...]
    """m PReLU slope vectors of length f."""
    tail: ConvWeights
    """5×5 conv, f → s²."""
    training: dict = field(default_factory=dict)
    """Training record: command, data, steps, validation PSNR and later evaluation results."""

    def __post_init__(self) -> None:
        problems = _shape_problems(self)
        if problems:
            raise ValueError("; ".join(problems))

    def tensors(self) -> dict[str, np.ndarray]:
        """Name → float32 array, in the file's naming."""
        named = {"head.weight": self.head.weight, "head.bias": self.head.bias,
                 "tail.weight": self.tail.weight, "tail.bias": self.tail.bias}
        for i, (conv, alpha) in enumerate(zip(self.body, self.alphas)):
            named[f"body.{i}.weight"] = conv.weight
            named[f"body.{i}.bias"] = conv.bias
            named[f"body.{i}.alpha"] = alpha
        return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in named.items()}


def _expected_shapes(d: ModelDescriptor) -> dict[str, tuple[int, ...]]:
    f = d.channels
    shapes = {"head.weight": (f, 1, HEAD_KERNEL, HEAD_KERNEL), "head.bias": (f,),
              "tail.weight": (d.out_channels, f, TAIL_KERNEL, TAIL_KERNEL),
              "tail.bias": (d.out_channels,)}
    for i in range(d.blocks):
        shapes[f"body.{i}.weight"] = (f, f, BODY_KERNEL, BODY_KERNEL)
        shapes[f"body.{i}.bias"] = (f,)
        shapes[f"body.{i}.alpha"] = (f,)
    return shapes


def _shape_problems(w: CollapsedWeights) -> list[str]:
    d = w.descriptor
    if len(w.body) != d.blocks or len(w.alphas) != d.blocks:
        return [f"{d.variant} needs {d.blocks} body convs and slope vectors, "
                f"got {len(w.body)} and {len(w.alphas)}"]
    expected = _expected_shapes(d)
    problems = []
    for name, array in w.tensors().items():
        if array.shape != expected[name]:
            problems.append(f"{name} has shape {array.shape}, expected {expected[name]}")
        elif not np.all(np.isfinite(array)):
            problems.append(f"{name} contains NaN or infinite values")
    return problems


def save_weights(weights: CollapsedWeights, path: Path | str) -> None:
    """Write ``weights`` to a safetensors file, through a temporary name and an atomic rename."""
    from safetensors.numpy import save_file

    d = weights.descriptor
    metadata = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "variant": d.variant,
        "scale": str(d.scale),
        "channels": str(d.channels),
        "blocks": str(d.blocks),
        "training": json.dumps(weights.training, sort_keys=True),
    }
    path = Path(path)
    temporary = path.with_name(f".{path.name}.partial")
    save_file(weights.tensors(), str(temporary), metadata=metadata)
    os.replace(temporary, path)


def load_weights(path: Path | str) -> CollapsedWeights:
    """Read and validate a collapsed-weights file.

    Raises ``WeightsFileError`` when the file is missing, is not safetensors, lacks the
    metadata, names an unknown variant, or contains tensors whose shapes disagree with it.
    """
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise WeightsFileError(path, "file not found")

    # Read tensors and metadata.
    try:
        with safe_open(str(path), framework="numpy") as handle:
            metadata = handle.metadata() or {}
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}
    except (SafetensorError, OSError, ValueError) as error:
        raise WeightsFileError(path, f"not a readable safetensors file ({error})") from None

    # Check the metadata and build the descriptor.
    if metadata.get("format") != FORMAT_NAME:
        raise WeightsFileError(path, f"metadata 'format' is {metadata.get('format')!r}, "
                                     f"expected {FORMAT_NAME!r}; this is not an sesr weights file")
    if metadata.get("format_version") != FORMAT_VERSION:
        raise WeightsFileError(path, f"format_version {metadata.get('format_version')!r} is not "
                                     f"supported (expected {FORMAT_VERSION}); upgrade sesr")
    try:
        spec = variant_spec(metadata["variant"])
        descriptor = ModelDescriptor.for_variant(spec.name, int(metadata["scale"]))
        channels, blocks = int(metadata["channels"]), int(metadata["blocks"])
        training = json.loads(metadata.get("training", "{}"))
    except (KeyError, ValueError) as error:
        raise WeightsFileError(path, f"invalid metadata ({error})") from None
    if (channels, blocks) != (descriptor.channels, descriptor.blocks):
        raise WeightsFileError(path, f"metadata gives {channels} channels and {blocks} blocks but "
                                     f"{spec.name} has {descriptor.channels} and {descriptor.blocks}")

    # Check every tensor against the descriptor.
    expected = _expected_shapes(descriptor)
    missing = sorted(set(expected) - set(tensors))
    extra = sorted(set(tensors) - set(expected))
    if missing or extra:
        raise WeightsFileError(path, f"tensors do not match {spec.name} ×{descriptor.scale}: "
                                     f"missing {missing or 'none'}, unexpected {extra or 'none'}")
    try:
        return CollapsedWeights(
            descriptor=descriptor,
            head=ConvWeights(tensors["head.weight"], tensors["head.bias"]),
            body=tuple(ConvWeights(tensors[f"body.{i}.weight"], tensors[f"body.{i}.bias"])
                       for i in range(descriptor.blocks)),
            alphas=tuple(tensors[f"body.{i}.alpha"] for i in range(descriptor.blocks)),
            tail=ConvWeights(tensors["tail.weight"], tensors["tail.bias"]),
            training=training,
        )
    except ValueError as error:
        raise WeightsFileError(path, str(error)) from None
