"""Backends and precisions against the fp32 reference, int8 calibration files, and fallbacks.

The reference is onnxruntime fp32. Inputs are small synthetic luma images (gradient, soft blobs,
hard edges and noise). The networks are the shipped trained weights, because their activations
have realistic ranges, where random weights would exaggerate or hide the rounding errors.
"""

from __future__ import annotations

import logging
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import make_random_weights
from models import load_model, save_weights
from upscale import (Backend, BackendChoice, BackendError, Precision, Upscaler, choose_backend, open_backend,
                     upscale_array)
from upscale import backends
from upscale.pipeline import upscale_luma
from upscale.cpu import physical_cores
from upscale.int8 import (CalibrationFileError, Int8Calibration, build_int8_model, calibration_path,
                          collect_ranges, find_calibration, load_calibration, save_calibration, weights_digest)
from models.zoo import WEIGHTS_DIR
from models.weights import load_weights

LSB = 1.0 / 255.0

# OpenVINO and onnxruntime fp32 differ only in summation order: about 1e-7 here.
FP32_TOLERANCE = 1e-5
# bf16 keeps 8 significant bits, a relative error of at most 2⁻⁹ per rounded value. Through the
# 7 to 9 convolutions this gave at most 1.2 LSB and a mean of 0.08 LSB (8-bit output steps).
BF16_MAX_ERROR = 2 * LSB
BF16_MEAN_ERROR = 0.2 * LSB
# int8 rounds every activation to one of 256 levels over its calibrated range (a step of 1/255
# to 2/255 of the feature range here) and every weight to 8 bits. With ranges measured on the
# test image itself this gave at most 4.4 LSB and an RMS error of 0.62 LSB (PSNR 52 dB against
# fp32). The limits leave about a factor of two.
INT8_MAX_ERROR = 8 * LSB
INT8_RMS_ERROR = 1.0 * LSB
# Guaranteed 8-bit output error of int8 with the shipped calibrations on photo-like images.
SHIPPED_INT8_MAX_LEVELS = 16
SHIPPED_INT8_RMS_LEVELS = 1.0
SHIPPED_INT8_SHARE_OVER_2_LEVELS = 0.01
# onnxruntime and OpenVINO run the same QDQ graph with integer kernels. They may round a tie in
# one requantization differently, which moves one activation by one step.
INT8_ENGINES_MAX_ERROR = 1 * LSB

needs_openvino = pytest.mark.skipif(not backends.openvino_available(), reason="OpenVINO not installed")
needs_bf16 = pytest.mark.skipif(not backends.cpu_has_bf16(), reason="CPU has no bf16 instructions")


def synthetic_luma(height: int, width: int, seed: int) -> np.ndarray:
    """Studio-range luma / 255 with a gradient, soft blobs, hard diagonal edges and noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / np.array([height, width])[:, None, None]
    coarse = rng.uniform(0, 1, (height // 6 + 2, width // 6 + 2)).astype(np.float32)
    blobs = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    edges = np.sin(2 * np.pi * (3 * x + 2 * y)) > 0
    image = 0.3 * x + 0.3 * blobs + 0.25 * edges + rng.normal(0, 0.02, (height, width))
    return ((16 + 219 * np.clip(image, 0, 1)) / 255).astype(np.float32)


def _self_calibration(variant: str, scale: int, luma: np.ndarray, weights=None) -> Int8Calibration:
    weights = weights or load_model(variant, scale)
    ranges = collect_ranges(weights, [luma], (100.0,))[100.0]
    return Int8Calibration(variant, scale, weights_digest(weights), ranges)


def _errors(output: np.ndarray, reference: np.ndarray) -> str:
    error = np.abs(output - reference) / LSB
    return f"max {error.max():.3f} LSB, mean {error.mean():.4f} LSB, rms {np.sqrt(np.mean(error ** 2)):.4f} LSB"


@pytest.fixture
def no_openvino(monkeypatch: pytest.MonkeyPatch):
    """Simulate a machine without OpenVINO: importing it raises ImportError."""
    backends._openvino_core.cache_clear()
    monkeypatch.setitem(sys.modules, "openvino", None)
    yield
    backends._openvino_core.cache_clear()


# Resolving requests.

def test_auto_picks_openvino_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backends, "openvino_available", lambda: True)
    monkeypatch.setattr(backends, "cpu_has_bf16", lambda: True)
    assert choose_backend() == BackendChoice(Backend.OPENVINO, Precision.BF16, ())


def test_auto_without_bf16_uses_fp32(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backends, "openvino_available", lambda: True)
    monkeypatch.setattr(backends, "cpu_has_bf16", lambda: False)
    assert choose_backend() == BackendChoice(Backend.OPENVINO, Precision.FP32, ())


@pytest.mark.parametrize("backend, precision, calibrated, expected, notice", [
    ("auto", None, False, (Backend.ONNXRUNTIME, Precision.FP32), "slower (pip install openvino)"),
    ("openvino", None, False, (Backend.ONNXRUNTIME, Precision.FP32), "OpenVINO is not installed"),
    ("auto", "bf16", False, (Backend.ONNXRUNTIME, Precision.FP32),
     "bf16 runs on OpenVINO, which is not installed or has no CPU plugin; using onnxruntime fp32 "
     "(pip install openvino)"),
    ("openvino", "bf16", False, (Backend.ONNXRUNTIME, Precision.FP32), "pip install openvino"),
    ("auto", "int8", True, (Backend.ONNXRUNTIME, Precision.INT8), "OpenVINO is not installed"),
    ("auto", "int8", False, (Backend.ONNXRUNTIME, Precision.FP32), "no int8 calibration"),
    ("torch", "int8", True, (Backend.TORCH, Precision.FP32), "torch does not run int8"),
])
def test_choice_without_openvino(monkeypatch: pytest.MonkeyPatch, backend: str, precision: str | None,
                                 calibrated: bool, expected: tuple, notice: str | None) -> None:
    monkeypatch.setattr(backends, "openvino_available", lambda: False)
    monkeypatch.setattr(backends, "cpu_has_bf16", lambda: False)
    monkeypatch.setattr(backends, "torch_available", lambda: True)
    choice = choose_backend(backend, precision, has_int8_calibration=calibrated)
    assert (choice.backend, choice.precision) == expected, f"{choice}"
    if notice is None:
        assert choice.notices == (), f"{choice.notices}"
    else:
        assert any(notice in line for line in choice.notices), f"{choice.notices}"


def test_bf16_without_cpu_support_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backends, "openvino_available", lambda: True)
    monkeypatch.setattr(backends, "cpu_has_bf16", lambda: False)
    choice = choose_backend("openvino", "bf16")
    assert (choice.backend, choice.precision) == (Backend.OPENVINO, Precision.FP32), f"{choice}"
    assert choice.notices == ("this CPU has no bf16 instructions; using fp32",), f"{choice.notices}"


def test_torch_missing_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backends, "torch_available", lambda: False)
    with pytest.raises(BackendError, match="needs PyTorch") as raised:
        choose_backend("torch")
    for command in ("pip install torch", "pip install 'sesr[train]'", "pip install '.[train]'"):
        assert command in str(raised.value), str(raised.value)


def test_choice_rejects_unsupported_pair() -> None:
    with pytest.raises(ValueError, match="does not run bf16"):
        BackendChoice(Backend.ONNXRUNTIME, Precision.BF16)


def test_missing_openvino_falls_back(no_openvino, caplog: pytest.LogCaptureFixture) -> None:
    weights = load_model("sesr-m3", 2)
    luma = synthetic_luma(20, 24, seed=1)[None, None]
    with caplog.at_level(logging.WARNING, logger="upscale.backends"):
        network = open_backend(weights, "openvino", precision="bf16")
    reference = open_backend(weights, "onnxruntime", precision="fp32")(luma)
    assert (network.backend, network.precision) == (Backend.ONNXRUNTIME, Precision.FP32)
    assert "bf16 runs on OpenVINO, which is not installed" in caplog.text, caplog.text
    assert np.array_equal(network(luma), reference), _errors(network(luma), reference)


# Accuracy against the fp32 reference.

@needs_openvino
@pytest.mark.parametrize("variant, scale", [("sesr-m3", 2), ("sesr-m5", 4)])
def test_openvino_fp32_matches_reference(variant: str, scale: int) -> None:
    weights = load_model(variant, scale)
    luma = synthetic_luma(40, 48, seed=2)[None, None]
    reference = open_backend(weights, "onnxruntime", precision="fp32")(luma)
    output = open_backend(weights, "openvino", precision="fp32")(luma)
    assert output.shape == reference.shape == (1, 1, 40 * scale, 48 * scale), f"{output.shape}"
    assert np.abs(output - reference).max() <= FP32_TOLERANCE, _errors(output, reference)


@needs_bf16
@pytest.mark.parametrize("variant, scale", [("sesr-m3", 2), ("sesr-m5", 2), ("sesr-m5", 4)])
def test_bf16_within_tolerance(variant: str, scale: int) -> None:
    weights = load_model(variant, scale)
    luma = synthetic_luma(40, 48, seed=2)[None, None]
    reference = open_backend(weights, "onnxruntime", precision="fp32")(luma)
    network = open_backend(weights, "auto", precision="bf16")
    output = network(luma)
    assert (network.backend, network.precision) == (Backend.OPENVINO, Precision.BF16)
    assert np.abs(output - reference).max() <= BF16_MAX_ERROR, _errors(output, reference)
    assert np.abs(output - reference).mean() <= BF16_MEAN_ERROR, _errors(output, reference)


@pytest.mark.parametrize("engine", [
    "onnxruntime", pytest.param("openvino", marks=needs_openvino)])
@pytest.mark.parametrize("variant, scale", [("sesr-m3", 2), ("sesr-m5", 2), ("sesr-m5", 4)])
def test_int8_within_tolerance(engine: str, variant: str, scale: int) -> None:
    luma = synthetic_luma(40, 48, seed=2)
    calibration = _self_calibration(variant, scale, luma)
    weights = load_model(variant, scale)
    reference = open_backend(weights, "onnxruntime", precision="fp32")(luma[None, None])
    network = open_backend(weights, engine, precision="int8", calibration=calibration)
    output = network(luma[None, None])
    assert network.precision is Precision.INT8
    assert np.abs(output - reference).max() <= INT8_MAX_ERROR, _errors(output, reference)
    assert np.sqrt(np.mean((output - reference) ** 2)) <= INT8_RMS_ERROR, _errors(output, reference)


@pytest.mark.parametrize("engine", ["onnxruntime", pytest.param("openvino", marks=needs_openvino)])
@pytest.mark.parametrize("variant, scale", [("sesr-m3", 2), ("sesr-m3", 4), ("sesr-m5", 2), ("sesr-m5", 4),
                                            ("sesr-m7", 2)])
def test_shipped_int8_on_photo_like_image(engine: str, variant: str, scale: int) -> None:
    # The tolerance promised for photos: 8-bit output of int8 with the shipped calibration
    # (ranges from training photos) against fp32, on whole images with mirrored borders.
    # Measured on three such images: at most 10 levels, RMS at most 0.77 levels, at most 0.38 %
    # of pixels off by more than 2 levels.
    # NOTE: text, line art and noise leave the calibrated ranges and differ by tens of levels
    # (black text on white: 90 to 120 levels, benchmarks/int8_sharp_inputs.py).
    weights = load_model(variant, scale)
    luma = synthetic_luma(48, 64, seed=2)
    reference = np.round(upscale_luma(luma, open_backend(weights, "onnxruntime", precision="fp32", threads=1)) * 255)
    network = open_backend(weights, engine, precision="int8", threads=1)
    assert network.precision is Precision.INT8
    error = np.abs(np.round(upscale_luma(luma, network) * 255) - reference)
    summary = (f"max {error.max():.0f} levels, rms {np.sqrt(np.mean(error ** 2)):.3f}, "
               f"{np.mean(error > 2) * 100:.2f} % over 2 levels")
    assert error.max() <= SHIPPED_INT8_MAX_LEVELS, summary
    assert np.sqrt(np.mean(error ** 2)) <= SHIPPED_INT8_RMS_LEVELS, summary
    assert np.mean(error > 2) <= SHIPPED_INT8_SHARE_OVER_2_LEVELS, summary


@needs_openvino
def test_int8_engines_agree() -> None:
    luma = synthetic_luma(40, 48, seed=3)
    calibration = _self_calibration("sesr-m5", 2, luma)
    weights = load_model("sesr-m5", 2)
    onnxruntime_out = open_backend(weights, "onnxruntime", precision="int8", calibration=calibration)(luma[None, None])
    openvino_out = open_backend(weights, "openvino", precision="int8", calibration=calibration)(luma[None, None])
    assert np.abs(onnxruntime_out - openvino_out).max() <= INT8_ENGINES_MAX_ERROR, _errors(openvino_out, onnxruntime_out)


def test_int8_keeps_zero_padding_meaning() -> None:
    # The fp32 graph zero-pads luma − 0.5, so the int8 graph must do the same. Padding luma
    # with zeros instead would show as a large error in the border rows.
    weights = load_model("sesr-m3", 2)
    luma = np.full((1, 1, 16, 16), 0.5, np.float32)
    calibration = _self_calibration("sesr-m3", 2, synthetic_luma(40, 48, seed=2))
    reference = open_backend(weights, "onnxruntime", precision="fp32")(luma)
    output = open_backend(weights, "onnxruntime", precision="int8", calibration=calibration)(luma)
    assert np.abs(output - reference)[0, 0, :2].max() <= INT8_MAX_ERROR, _errors(output[..., :2, :], reference[..., :2, :])


# Calibration files.

def test_calibration_round_trip(tmp_path: Path) -> None:
    calibration = _self_calibration("sesr-m3", 2, synthetic_luma(24, 24, seed=4))
    calibration = Int8Calibration(calibration.variant, calibration.scale, calibration.weights_sha256,
                                  calibration.ranges, {"command": "test"})
    path = tmp_path / "net.int8.json"
    save_calibration(calibration, path)
    assert load_calibration(path) == calibration


def test_calibration_found_only_for_its_weights(tmp_path: Path) -> None:
    weights = load_model("sesr-m3", 2)
    weights_file = tmp_path / "mine.safetensors"
    save_weights(weights, weights_file)
    calibration = _self_calibration("sesr-m3", 2, synthetic_luma(24, 24, seed=4))
    save_calibration(calibration, calibration_path(weights_file))
    assert calibration_path(weights_file).name == "mine.int8.json"
    assert find_calibration(weights, weights_file) == calibration

    other = load_model("sesr-m5", 2)
    save_weights(other, weights_file)
    assert find_calibration(load_weights(weights_file), weights_file) is None


@pytest.mark.parametrize("content, reason", [
    ("not json", "not readable JSON"),
    ('{"format": "other"}', "not an sesr int8 calibration file"),
    ('{"format": "sesr-int8-calibration", "format_version": 9}', "format_version 9"),
    ('{"format": "sesr-int8-calibration", "format_version": 1, "variant": "sesr-m3"}', "invalid content"),
])
def test_calibration_file_errors(tmp_path: Path, content: str, reason: str) -> None:
    path = tmp_path / "bad.int8.json"
    path.write_text(content)
    with pytest.raises(CalibrationFileError, match=reason):
        load_calibration(path)


def test_range_must_contain_zero() -> None:
    with pytest.raises(ValueError, match="contain 0"):
        Int8Calibration("sesr-m3", 2, "0" * 64, {"head": (0.1, 0.5)})


def test_shipped_calibrations_match_weights() -> None:
    files = sorted(WEIGHTS_DIR.glob("*.int8.json"))
    assert any(f.name == "sesr-m5-x2.int8.json" for f in files), f"{[f.name for f in files]}"
    for path in files:
        weights = load_weights(path.with_name(path.name.replace(".int8.json", ".safetensors")))
        assert find_calibration(weights) is not None, f"{path.name} was made for other weights"
        assert build_int8_model(weights, find_calibration(weights)) is not None


def test_upscaler_uses_calibration_beside_weights(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    weights = make_random_weights("sesr-m3", 2, seed=9)
    weights_file = tmp_path / "mine.safetensors"
    save_weights(weights, weights_file)
    with caplog.at_level(logging.WARNING, logger="upscale.backends"):
        uncalibrated = Upscaler(weights=weights_file, backend="onnxruntime", precision="int8", threads=1)
    assert uncalibrated.precision is Precision.FP32
    assert "no int8 calibration" in caplog.text, caplog.text

    save_calibration(_self_calibration("sesr-m3", 2, synthetic_luma(24, 24, seed=4), weights),
                     calibration_path(weights_file))
    calibrated = Upscaler(weights=weights_file, backend="onnxruntime", precision="int8", threads=1)
    assert calibrated.precision is Precision.INT8


# Threads.

def test_physical_cores_counts_smt_siblings_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("upscale.cpu.usable_cpus", lambda: [0, 1, 2, 3])
    for cpu, core in enumerate([0, 1, 0, 1]):
        folder = tmp_path / f"cpu{cpu}" / "topology"
        folder.mkdir(parents=True)
        (folder / "physical_package_id").write_text("0\n")
        (folder / "core_id").write_text(f"{core}\n")
    assert physical_cores(tmp_path) == 2


def test_physical_cores_without_topology(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("upscale.cpu.usable_cpus", lambda: [0, 1, 2])
    assert physical_cores(tmp_path) == 3


def test_default_threads_recorded() -> None:
    network = open_backend(load_model("sesr-m3", 2), "onnxruntime")
    assert network.threads == physical_cores() >= 1


@pytest.mark.parametrize("backend", ["onnxruntime", pytest.param("openvino", marks=needs_openvino),
                                     pytest.param("torch", marks=pytest.mark.skipif(
                                         not backends.torch_available(), reason="PyTorch not installed"))])
def test_negative_threads_raise_value_error(backend: str) -> None:
    with pytest.raises(ValueError, match="threads must be 0"):
        Upscaler("sesr-m3", 2, backend=backend, threads=-1)


@pytest.mark.parametrize("threads, message", [(-1, "threads must be 0"), (1.5, "whole number"),
                                              (True, "whole number")])
def test_check_threads_rejects_invalid(threads: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        backends.check_threads(threads)


def test_check_threads_accepts_numpy_integers() -> None:
    assert backends.check_threads(np.int64(1)) == 1
    assert backends.check_threads(0) == 0


def test_threads_capped_at_logical_cpus(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(backends, "usable_cpus", lambda: [0, 1, 2])
    with caplog.at_level(logging.WARNING, logger="upscale.backends"):
        upscaler = Upscaler("sesr-m3", 2, backend="onnxruntime", threads=100_000)
    assert upscaler.network.threads == 3
    assert "100000 threads requested but this process may use 3 logical CPUs; using 3" in caplog.text, caplog.text
    assert upscaler.describe() == "sesr-m3 ×2 on onnxruntime fp32, 3 threads"


# Command line.

def _cli(*args: object):
    from typer.testing import CliRunner

    from cli import app

    return CliRunner().invoke(app, [str(arg) for arg in args])


def _write_photo(path: Path) -> None:
    luma = synthetic_luma(24, 32, seed=5)
    rgb = np.dstack([luma, luma * 0.9, luma * 1.1])
    cv2.imwrite(str(path), np.clip(rgb * 255, 0, 255).astype(np.uint8))


@needs_openvino
def test_cli_openvino_fp32_matches_onnxruntime(tmp_path: Path) -> None:
    source = tmp_path / "photo.png"
    _write_photo(source)
    first = _cli("upscale", source, "-o", tmp_path / "ort.png", "--backend", "onnxruntime", "--threads", 1)
    second = _cli("upscale", source, "-o", tmp_path / "ov.png", "--backend", "openvino", "--precision", "fp32")
    assert first.exit_code == 0, first.output
    assert second.exit_code == 0, second.output
    difference = np.abs(cv2.imread(str(tmp_path / "ort.png")).astype(int) - cv2.imread(str(tmp_path / "ov.png")).astype(int))
    assert difference.max() <= 1, f"max {difference.max()} LSB"


def _upscale_photo_int8(tmp_path: Path, weights_file: Path):
    """Run ``sesr upscale --precision int8`` with ``weights_file`` on a photo-like PNG."""
    source = tmp_path / "photo.png"
    _write_photo(source)
    return _cli("upscale", source, "-o", tmp_path / "out.png", "--weights", weights_file,
                "--backend", "onnxruntime", "--precision", "int8")


def test_cli_int8_without_calibration_notice(tmp_path: Path, weights_file: Path) -> None:
    result = _upscale_photo_int8(tmp_path, weights_file)
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())
    assert f"no int8 calibration {calibration_path(weights_file)} beside the weights; make one with: " \
           f"python scripts/calibrate_int8.py --weights {weights_file}; using fp32" in output, output
    assert (tmp_path / "out.png").is_file()


def test_cli_int8_calibration_of_other_weights_named(tmp_path: Path, weights_file: Path) -> None:
    # A calibration file copied from other weights sits beside these weights.
    shutil.copy(WEIGHTS_DIR / "sesr-m3-x2.int8.json", calibration_path(weights_file))
    result = _upscale_photo_int8(tmp_path, weights_file)
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())
    assert f"{calibration_path(weights_file)} was made for other weights" in output, output
    assert f"scripts/calibrate_int8.py --weights {weights_file}" in output, output
    assert "sesr-m3 ×2 on onnxruntime fp32" in output, output


@pytest.mark.parametrize("option, value, message", [
    ("--precision", "fp16", "fp16"),
    ("--backend", "tensorrt", "tensorrt"),
    ("--threads", "-1", "--threads must be 0 (the engine's default) or a positive number, got -1"),
])
def test_cli_rejects_bad_options(tmp_path: Path, option: str, value: str, message: str) -> None:
    source = tmp_path / "photo.png"
    _write_photo(source)
    result = _cli("upscale", source, "-o", tmp_path / "out.png", option, value)
    assert result.exit_code == 2, result.output
    assert message in result.output, result.output
    assert not (tmp_path / "out.png").exists()


@needs_bf16
@pytest.mark.parametrize("shape, dtype", [((30, 41), np.uint8), ((30, 41, 2), np.uint16),
                                          ((30, 41, 3), np.uint8), ((30, 41, 4), np.float32)])
def test_default_path_every_layout(shape: tuple[int, ...], dtype: type) -> None:
    # The default network (bf16) through the whole pipeline, in tiles, against onnxruntime fp32
    # on the whole image: every layout stays within the bf16 tolerance.
    weights = load_model("sesr-m5", 2)
    max_value = {np.uint8: 255, np.uint16: 65535, np.float32: 1.0}[dtype]
    rng = np.random.default_rng(6)
    base = cv2.resize(rng.random((6, 8) + shape[2:], dtype=np.float32), (shape[1], shape[0]),
                      interpolation=cv2.INTER_CUBIC).reshape(shape)
    pixels = np.clip(base, 0, 1) * max_value
    pixels = pixels.astype(dtype) if dtype is np.float32 else np.round(pixels).astype(dtype)
    default = open_backend(weights)
    reference = upscale_array(pixels, open_backend(weights, "onnxruntime", precision="fp32"), tile=0)
    output = upscale_array(pixels, default, tile=16)
    error = np.abs(output.astype(np.float64) - reference.astype(np.float64)) / max_value
    assert default.precision is Precision.BF16
    assert output.shape == reference.shape == (60, 82) + shape[2:], f"{output.shape}"
    assert output.dtype == dtype, f"{output.dtype}"
    # Integer outputs may round to the neighbouring level as well.
    rounding = 0.0 if dtype is np.float32 else 1 / max_value
    assert error.max() <= BF16_MAX_ERROR + rounding, f"max {error.max() * 255:.3f} LSB of 8 bits"


# Calibration script.

def _load_calibration_script():
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "scripts" / "calibrate_int8.py"
    spec = importlib.util.spec_from_file_location("calibrate_int8", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@needs_openvino
def test_calibrate_script_writes_beside_weights(tmp_path: Path, weights_file: Path) -> None:
    # Eleven training images give one held-out image (every 20th, starting at the 11th).
    data, evaluation = tmp_path / "train", tmp_path / "test"
    data.mkdir()
    evaluation.mkdir()
    for index in range(11):
        luma = synthetic_luma(32, 32, seed=10 + index)
        cv2.imwrite(str(data / f"{index:02d}.png"), np.round(luma * 255).astype(np.uint8))
    cv2.imwrite(str(evaluation / "a.png"), np.round(synthetic_luma(32, 32, seed=30) * 255).astype(np.uint8))

    script = _load_calibration_script()
    status = script.main(["--weights", str(weights_file), "--data", str(data), "--evaluation", str(evaluation),
                          "--percentiles", "100", "--calibration-step", "1"])

    assert status == 0
    weights = load_weights(weights_file)
    calibration = find_calibration(weights, weights_file)
    assert calibration is not None, f"{calibration_path(weights_file)} missing or made for other weights"
    assert calibration.record["calibration_images"] == 10
    assert Upscaler(weights=weights_file, backend="onnxruntime", precision="int8", threads=1).precision is Precision.INT8


def test_calibrate_script_rejects_missing_weights(tmp_path: Path) -> None:
    script = _load_calibration_script()
    status = script.main(["--weights", str(tmp_path / "absent.safetensors"), "--data", str(tmp_path),
                          "--evaluation", str(tmp_path)])
    assert status == 2
