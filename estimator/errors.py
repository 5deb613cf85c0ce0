"""Errors of the estimator package: one base class, subclasses that carry the offending value."""

from __future__ import annotations

from pathlib import Path


class EstimatorError(ValueError):
    """Base class of every error the estimator raises on invalid input."""


class UnknownNetworkError(EstimatorError):
    """A network name that is neither an SESR variant nor a reference network."""

    def __init__(self, name: str, known: tuple[str, ...]) -> None:
        self.name = name
        super().__init__(f"unknown model {name!r}: choose one of {', '.join(known)}, or pass an .onnx file")


class UnsupportedOperatorError(EstimatorError):
    """An ONNX operator that the estimator cannot cost."""

    def __init__(self, op_type: str, node_name: str, supported: tuple[str, ...]) -> None:
        self.op_type = op_type
        self.node_name = node_name
        super().__init__(
            f"ONNX operator {op_type!r} (node {node_name!r}) is not supported by the estimator; "
            f"supported operators: {', '.join(supported)}"
        )


class OnnxModelError(EstimatorError):
    """An ONNX file that cannot be read or whose graph cannot be turned into layers."""

    def __init__(self, path: Path | str, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class ProfileError(EstimatorError):
    """An NPU profile file, profile name or figure override that is invalid."""


class UnsupportedPrecisionError(ProfileError):
    """A precision that the chosen NPU profile gives no MAC rate for."""

    def __init__(self, precision: str, npu: str, supported: tuple[str, ...]) -> None:
        self.precision = precision
        self.npu = npu
        super().__init__(
            f"{npu} has no MAC rate for precision {precision}; it supports {', '.join(supported)}. "
            f"Pass --profile FILE with an accelerator that lists {precision} to estimate it"
        )


class InputSizeError(EstimatorError):
    """An input size that is not WIDTHxHEIGHT or a known name such as 1080p."""
