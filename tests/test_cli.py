"""The command line: ``sesr upscale`` batch rules and exit codes, and ``sesr models --json``.

Exit codes: 0 when every input succeeded, 1 when any input failed, 2 for a usage error.
Most ``upscale`` runs pass ``--weights`` with a random sesr-m3 file from conftest, so the tests
do not depend on shipped weights. typer's CliRunner (checked with typer 0.29.2) keeps stdout and
stderr apart in ``Result.stdout`` and ``Result.stderr``, so the summary is read from stderr.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner, Result

import models.zoo
from cli import app
from conftest import make_random_weights
from models import ModelDescriptor, load_weights, save_weights

# A fixed time in the past (2020-01-01 UTC), set on outputs that a run must leave untouched.
OLD_MTIME_NS = 1_577_836_800 * 10**9


# Helpers.

def _run(*args: object) -> Result:
    return CliRunner().invoke(app, [str(arg) for arg in args])


def _upscale(weights: Path, *args: object) -> Result:
    """Run ``sesr upscale`` with a weights file on one onnxruntime thread."""
    return _run("upscale", *args, "--weights", weights, "--threads", 1, "--backend", "onnxruntime")


def _describe(result: Result) -> str:
    return (f"exit code {result.exit_code}, stderr {result.stderr!r}, stdout {result.stdout!r}, "
            f"exception {result.exception!r}")


def _write_png(path: Path, height: int = 16, width: int = 24, seed: int = 0, channels: int = 3) -> Path:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, channels), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), pixels), f"cv2.imwrite failed for {path}"
    return path


def _image_shape(path: Path) -> tuple[int, ...] | None:
    pixels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    return None if pixels is None else pixels.shape


def _truncated_jpeg(path: Path) -> Path:
    pixels = np.random.default_rng(9).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    ok, encoded = cv2.imencode(".jpg", pixels)
    assert ok, "cv2.imencode failed"
    path.write_bytes(encoded.tobytes()[:300])
    return path


@pytest.fixture
def good_folder(tmp_path: Path) -> Path:
    """A folder with two readable PNGs: a.png (16×24) and b.png (20×12)."""
    folder = tmp_path / "in"
    _write_png(folder / "a.png", 16, 24, seed=1)
    _write_png(folder / "b.png", 20, 12, seed=2)
    return folder


# Batches of files.

def test_batch_mixed_folder(tmp_path: Path, good_folder: Path, weights_file: Path) -> None:
    (good_folder / "notes.txt").write_text("not an image")
    _write_png(good_folder / ".hidden.png", seed=3)
    (good_folder / "empty.png").write_bytes(b"")
    _truncated_jpeg(good_folder / "broken.jpg")
    output = tmp_path / "out"

    result = _upscale(weights_file, good_folder, "--output", output)

    assert result.exit_code == 1, _describe(result)
    assert _image_shape(output / "a.png") == (32, 48, 3), f"a.png output shape {_image_shape(output / 'a.png')}"
    assert _image_shape(output / "b.png") == (40, 24, 3), f"b.png output shape {_image_shape(output / 'b.png')}"
    assert "2 written, 2 failed" in result.stderr, _describe(result)
    assert "empty.png" in result.stderr, _describe(result)
    assert "broken.jpg" in result.stderr, _describe(result)
    assert "1 not images" in result.stderr, _describe(result)
    assert "1 hidden" in result.stderr, _describe(result)
    written = sorted(path.name for path in output.iterdir())
    assert written == ["a.png", "b.png"], f"output folder contains {written}"


def test_batch_all_good(tmp_path: Path, good_folder: Path, weights_file: Path) -> None:
    output = tmp_path / "out"

    result = _upscale(weights_file, good_folder, "-o", output)

    assert result.exit_code == 0, _describe(result)
    assert "2 written, 0 failed" in result.stderr, _describe(result)
    assert _image_shape(output / "a.png") == (32, 48, 3), f"a.png output shape {_image_shape(output / 'a.png')}"


def test_rerun_fails_on_existing(tmp_path: Path, good_folder: Path, weights_file: Path) -> None:
    output = tmp_path / "out"
    first = _upscale(weights_file, good_folder, "-o", output)
    assert first.exit_code == 0, _describe(first)
    os.utime(output / "a.png", ns=(OLD_MTIME_NS, OLD_MTIME_NS))

    second = _upscale(weights_file, good_folder, "-o", output)

    assert second.exit_code == 1, _describe(second)
    assert "exists" in second.stderr, _describe(second)
    assert "--overwrite" in second.stderr, _describe(second)
    mtime = (output / "a.png").stat().st_mtime_ns
    assert mtime == OLD_MTIME_NS, f"a.png was rewritten (mtime {mtime})"


def test_overwrite_replaces_outputs(tmp_path: Path, good_folder: Path, weights_file: Path) -> None:
    output = tmp_path / "out"
    first = _upscale(weights_file, good_folder, "-o", output)
    assert first.exit_code == 0, _describe(first)
    os.utime(output / "a.png", ns=(OLD_MTIME_NS, OLD_MTIME_NS))

    second = _upscale(weights_file, good_folder, "-o", output, "--overwrite")

    assert second.exit_code == 0, _describe(second)
    mtime = (output / "a.png").stat().st_mtime_ns
    assert mtime != OLD_MTIME_NS, "a.png was not rewritten"


def test_skip_existing_redoes_missing(tmp_path: Path, good_folder: Path, weights_file: Path) -> None:
    output = tmp_path / "out"
    first = _upscale(weights_file, good_folder, "-o", output)
    assert first.exit_code == 0, _describe(first)
    (output / "a.png").unlink()
    os.utime(output / "b.png", ns=(OLD_MTIME_NS, OLD_MTIME_NS))

    second = _upscale(weights_file, good_folder, "-o", output, "--skip-existing")

    assert second.exit_code == 0, _describe(second)
    assert _image_shape(output / "a.png") == (32, 48, 3), f"a.png output shape {_image_shape(output / 'a.png')}"
    mtime = (output / "b.png").stat().st_mtime_ns
    assert mtime == OLD_MTIME_NS, f"b.png was rewritten (mtime {mtime})"
    assert "1 written" in second.stderr, _describe(second)
    assert "1 already done" in second.stderr, _describe(second)


# Usage errors: exit code 2.

def test_overwrite_with_skip_rejected(tmp_path: Path, good_folder: Path, weights_file: Path) -> None:
    output = tmp_path / "out"

    result = _upscale(weights_file, good_folder, "-o", output, "--overwrite", "--skip-existing")

    assert result.exit_code == 2, _describe(result)
    assert "--skip-existing" in result.stderr, _describe(result)
    assert not output.exists(), f"{output} was created"


def test_unknown_model_rejected(tmp_path: Path, good_folder: Path) -> None:
    result = _run("upscale", good_folder, "-o", tmp_path / "out", "--model", "sesr-m99")

    assert result.exit_code == 2, _describe(result)
    assert "sesr-m99" in result.stderr, _describe(result)


def test_scale_three_rejected(tmp_path: Path, good_folder: Path, weights_file: Path) -> None:
    result = _upscale(weights_file, good_folder, "-o", tmp_path / "out", "--scale", 3)

    assert result.exit_code == 2, _describe(result)
    assert "--scale" in result.stderr, _describe(result)


def test_corrupt_weights_rejected(tmp_path: Path, good_folder: Path) -> None:
    weights = tmp_path / "corrupt.safetensors"
    weights.write_bytes(np.random.default_rng(4).integers(0, 256, 4096, dtype=np.uint8).tobytes())

    result = _upscale(weights, good_folder, "-o", tmp_path / "out")

    assert result.exit_code == 2, _describe(result)
    assert str(weights) in result.stderr, _describe(result)


def test_x2_weights_scale_four_rejected(tmp_path: Path, good_folder: Path, weights_file: Path) -> None:
    result = _upscale(weights_file, good_folder, "-o", tmp_path / "out", "--scale", 4)

    assert result.exit_code == 2, _describe(result)
    assert "×2" in result.stderr, _describe(result)


def test_file_output_many_inputs(tmp_path: Path, good_folder: Path, weights_file: Path) -> None:
    existing_file = _write_png(tmp_path / "taken.png", seed=16)

    result = _upscale(weights_file, good_folder / "a.png", good_folder / "b.png", "-o", existing_file)

    assert result.exit_code == 2, _describe(result)
    assert "output folder" in result.stderr, _describe(result)


def test_usage_error_keeps_brackets(tmp_path: Path, good_folder: Path) -> None:
    # The weights path is printed inside a rich markup string, where "[raw]" is a style tag.
    weights = tmp_path / "model[raw].safetensors"
    weights.write_bytes(b"not safetensors")

    result = _upscale(weights, good_folder, "-o", tmp_path / "out")

    assert result.exit_code == 2, _describe(result)
    assert "model[raw].safetensors" in result.stderr, _describe(result)


# Output naming and safety.

def test_output_in_input_folder(good_folder: Path, weights_file: Path) -> None:
    before = {path.name: path.read_bytes() for path in good_folder.iterdir()}

    result = _upscale(weights_file, good_folder, "-o", good_folder, "--format", "png")

    assert result.exit_code == 1, _describe(result)
    assert result.stderr.count("would overwrite an input") == 2, _describe(result)
    after = {path.name: path.read_bytes() for path in good_folder.iterdir()}
    assert after.keys() == before.keys(), f"folder now contains {sorted(after)}"
    for name, data in before.items():
        assert after[name] == data, f"{name} changed"


def test_single_file_onto_itself(good_folder: Path, weights_file: Path) -> None:
    source = good_folder / "a.png"
    before = source.read_bytes()

    result = _upscale(weights_file, source, "-o", source)

    assert result.exit_code == 1, _describe(result)
    assert "overwrite an input" in result.stderr, _describe(result)
    assert source.read_bytes() == before, "a.png changed"


def test_name_collision_fails_both(tmp_path: Path, weights_file: Path) -> None:
    folder = tmp_path / "in"
    _write_png(folder / "a.png", seed=5)
    pixels = np.random.default_rng(6).integers(0, 256, (16, 24, 3), dtype=np.uint8)
    assert cv2.imwrite(str(folder / "a.jpg"), pixels), "cv2.imwrite failed"
    output = tmp_path / "out"

    result = _upscale(weights_file, folder, "-o", output, "--format", "png")

    assert result.exit_code == 1, _describe(result)
    # Count the reason, not the bare word, which the tmp_path of this test also contains.
    assert result.stderr.count("output name collision") == 2, _describe(result)
    assert not (output / "a.png").exists(), "out/a.png was written"


def test_single_file_named_output(tmp_path: Path, good_folder: Path, weights_file: Path) -> None:
    target = tmp_path / "result" / "out.png"

    result = _upscale(weights_file, good_folder / "b.png", "-o", target)

    assert result.exit_code == 0, _describe(result)
    assert _image_shape(target) == (40, 24, 3), f"out.png shape {_image_shape(target)}"


def test_format_jpg_suffix(tmp_path: Path, good_folder: Path, weights_file: Path) -> None:
    output = tmp_path / "out"

    result = _upscale(weights_file, good_folder, "-o", output, "--format", "jpg")

    assert result.exit_code == 0, _describe(result)
    written = sorted(path.name for path in output.iterdir())
    assert written == ["a.jpg", "b.jpg"], f"output folder contains {written}"
    signature = (output / "a.jpg").read_bytes()[:3]
    assert signature == b"\xff\xd8\xff", f"a.jpg starts with {signature!r}, not a JPEG marker"


def test_bmp_input_writes_png(tmp_path: Path, weights_file: Path) -> None:
    pixels = np.random.default_rng(17).integers(0, 256, (16, 24, 3), dtype=np.uint8)
    source = tmp_path / "in" / "scan.bmp"
    source.parent.mkdir()
    assert cv2.imwrite(str(source), pixels), "cv2.imwrite failed"
    output = tmp_path / "out"

    result = _upscale(weights_file, source.parent, "-o", output)

    assert result.exit_code == 0, _describe(result)
    assert _image_shape(output / "scan.png") == (32, 48, 3), f"scan.png shape {_image_shape(output / 'scan.png')}"


def test_rgba_to_jpg_fails(tmp_path: Path, weights_file: Path) -> None:
    source = _write_png(tmp_path / "in" / "alpha.png", seed=7, channels=4)
    output = tmp_path / "out"

    result = _upscale(weights_file, source, "-o", output, "--format", "jpg")

    assert result.exit_code == 1, _describe(result)
    assert "alpha" in result.stderr, _describe(result)
    leftovers = sorted(os.listdir(output)) if output.exists() else []
    assert leftovers == [], f"output folder contains {leftovers}"


def test_recursive_mirrors_subfolders(tmp_path: Path, weights_file: Path) -> None:
    folder = tmp_path / "in"
    _write_png(folder / "top.png", seed=8)
    _write_png(folder / "sub" / "mid.png", seed=9)
    _write_png(folder / "sub" / "deeper" / "low.png", seed=10)
    _write_png(folder / ".cache" / "thumb.png", seed=11)
    output = tmp_path / "out"

    result = _upscale(weights_file, folder, "-o", output, "--recursive")

    assert result.exit_code == 0, _describe(result)
    written = sorted(path.relative_to(output).as_posix() for path in output.rglob("*") if path.is_file())
    assert written == ["sub/deeper/low.png", "sub/mid.png", "top.png"], f"outputs {written}"
    assert "1 hidden" in result.stderr, _describe(result)


def test_flat_run_ignores_subfolders(tmp_path: Path, weights_file: Path) -> None:
    folder = tmp_path / "in"
    _write_png(folder / "top.png", seed=8)
    _write_png(folder / "sub" / "mid.png", seed=9)
    output = tmp_path / "out"

    result = _upscale(weights_file, folder, "-o", output)

    assert result.exit_code == 0, _describe(result)
    written = sorted(path.relative_to(output).as_posix() for path in output.rglob("*") if path.is_file())
    assert written == ["top.png"], f"outputs {written}"


def test_glob_pattern_input(tmp_path: Path, weights_file: Path) -> None:
    folder = tmp_path / "in"
    _write_png(folder / "frame1.png", seed=12)
    _write_png(folder / "frame2.png", seed=13)
    _write_png(folder / "other.png", seed=14)
    output = tmp_path / "out"

    # CliRunner passes the pattern unexpanded, as a quoted pattern from a shell would be.
    result = _upscale(weights_file, f"{folder}/frame*.png", "-o", output)

    assert result.exit_code == 0, _describe(result)
    written = sorted(path.name for path in output.iterdir())
    assert written == ["frame1.png", "frame2.png"], f"output folder contains {written}"


def test_missing_input_named(tmp_path: Path, good_folder: Path, weights_file: Path) -> None:
    missing = tmp_path / "nowhere" / "absent.png"
    output = tmp_path / "out"

    result = _upscale(weights_file, good_folder / "a.png", missing, "-o", output)

    assert result.exit_code == 1, _describe(result)
    assert str(missing) in result.stderr, _describe(result)
    assert "not found" in result.stderr, _describe(result)
    assert (output / "a.png").is_file(), "the readable input was not written"


def test_no_images_found(tmp_path: Path, weights_file: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "notes.txt").write_text("not an image")

    result = _upscale(weights_file, folder, "-o", tmp_path / "out")

    assert result.exit_code == 2, _describe(result)
    assert "no image files" in result.stderr, _describe(result)
    assert "--recursive" not in result.stderr, _describe(result)


def test_no_images_hints_recursive(tmp_path: Path, weights_file: Path) -> None:
    folder = tmp_path / "in"
    (folder / "day1").mkdir(parents=True)
    _write_png(folder / "day1" / "a.png")

    result = _upscale(weights_file, folder, "-o", tmp_path / "out")

    assert result.exit_code == 2, _describe(result)
    assert "pass --recursive" in result.stderr, _describe(result)


def test_named_text_file_fails(tmp_path: Path, weights_file: Path, good_folder: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not an image")

    result = _upscale(weights_file, notes, good_folder / "a.png", "-o", tmp_path / "out")

    assert result.exit_code == 1, _describe(result)
    assert "notes.txt: not an image file" in result.stderr, _describe(result)
    assert (tmp_path / "out" / "a.png").is_file(), "the image input was not written"


def test_image_name_output_for_folder_rejected(tmp_path: Path, weights_file: Path, good_folder: Path) -> None:
    result = _upscale(weights_file, good_folder, "-o", tmp_path / "out.png")

    assert result.exit_code == 2, _describe(result)
    assert "give an output folder" in result.stderr, _describe(result)
    assert not (tmp_path / "out.png").exists(), "a folder named out.png was created"


def test_scale_taken_from_weights(tmp_path: Path, weights_file_x4: Path, good_folder: Path) -> None:
    result = _upscale(weights_file_x4, good_folder / "a.png", "-o", tmp_path / "a4.png")

    assert result.exit_code == 0, _describe(result)
    assert _image_shape(tmp_path / "a4.png")[:2] == tuple(4 * n for n in _image_shape(good_folder / "a.png")[:2]), \
        f"{_image_shape(tmp_path / 'a4.png')}"


def test_tiff_suffix_spelling_kept(tmp_path: Path, weights_file: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    cv2.imwrite(str(folder / "scan.tiff"), np.full((12, 10, 3), 128, dtype=np.uint8))

    result = _upscale(weights_file, folder, "-o", tmp_path / "out")

    assert result.exit_code == 0, _describe(result)
    assert (tmp_path / "out" / "scan.tiff").is_file(), f"outputs {sorted(p.name for p in (tmp_path / 'out').iterdir())}"


def test_summary_keeps_brackets(tmp_path: Path, weights_file: Path) -> None:
    # The summary is rich markup, where an unescaped "[raw]" in a file name is a style tag.
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "take[raw].png").write_bytes(b"")

    result = _upscale(weights_file, folder, "-o", tmp_path / "out")

    assert result.exit_code == 1, _describe(result)
    assert "take[raw].png" in result.stderr, _describe(result)


# Tiling and scale.

def test_tile_matches_whole_image(tmp_path: Path, weights_file: Path) -> None:
    source = _write_png(tmp_path / "in" / "photo.png", 40, 48, seed=15)

    tiled = _upscale(weights_file, source, "-o", tmp_path / "tiled.png", "--tile", 8)
    whole = _upscale(weights_file, source, "-o", tmp_path / "whole.png", "--tile", 0)

    assert tiled.exit_code == 0, _describe(tiled)
    assert whole.exit_code == 0, _describe(whole)
    tiled_pixels = cv2.imread(str(tmp_path / "tiled.png"), cv2.IMREAD_UNCHANGED)
    whole_pixels = cv2.imread(str(tmp_path / "whole.png"), cv2.IMREAD_UNCHANGED)
    assert tiled_pixels.shape == (80, 96, 3), f"tiled shape {tiled_pixels.shape}"
    error = np.abs(tiled_pixels.astype(np.int64) - whole_pixels.astype(np.int64))
    assert error.max() == 0, f"max difference {error.max()} in {np.count_nonzero(error)} of {error.size} samples"


def test_x4_weights_scale_four(tmp_path: Path, good_folder: Path, weights_file_x4: Path) -> None:
    output = tmp_path / "out"

    result = _upscale(weights_file_x4, good_folder / "a.png", "-o", output, "--scale", 4)

    assert result.exit_code == 0, _describe(result)
    assert _image_shape(output / "a.png") == (64, 96, 3), f"a.png output shape {_image_shape(output / 'a.png')}"


# sesr models.

def test_models_json_list() -> None:
    result = _run("models", "--json")

    assert result.exit_code == 0, _describe(result)
    rows = json.loads(result.stdout)
    assert isinstance(rows, list), f"JSON is a {type(rows).__name__}"
    for row in rows:
        stored = sum(array.size for array in load_weights(models.zoo.WEIGHTS_DIR / row["file"]).tensors().values())
        assert row["parameters"] == stored, f"{row['file']}: parameters {row['parameters']}, stored {stored}"


@pytest.fixture
def shipped_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stand-in for the shipped weights folder with random sesr-m3 ×2 and ×4 files."""
    folder = tmp_path / "shipped"
    folder.mkdir()
    save_weights(make_random_weights(scale=2), folder / "sesr-m3-x2.safetensors")
    save_weights(make_random_weights(scale=4, seed=1), folder / "sesr-m3-x4.safetensors")
    monkeypatch.setattr(models.zoo, "WEIGHTS_DIR", folder)
    return folder


def test_models_json_rows(shipped_folder: Path) -> None:
    result = _run("models", "--json")

    assert result.exit_code == 0, _describe(result)
    rows = json.loads(result.stdout)
    listed = [(row["model"], row["scale"]) for row in rows]
    assert listed == [("sesr-m3", 2), ("sesr-m3", 4)], f"rows {listed}"
    for row in rows:
        stored = sum(array.size for array in load_weights(shipped_folder / row["file"]).tensors().values())
        assert row["parameters"] == stored, f"{row['file']}: parameters {row['parameters']}, stored {stored}"
        expected = ModelDescriptor.for_variant(row["model"], row["scale"]).parameters
        assert row["parameters"] == expected, f"{row['file']}: parameters {row['parameters']}, descriptor {expected}"


def test_shipped_model_used(tmp_path: Path, good_folder: Path, shipped_folder: Path) -> None:
    output = tmp_path / "out"

    result = _run("upscale", good_folder / "a.png", "-o", output, "--model", "sesr-m3", "--threads", 1)

    assert result.exit_code == 0, _describe(result)
    assert _image_shape(output / "a.png") == (32, 48, 3), f"a.png output shape {_image_shape(output / 'a.png')}"


def test_format_mismatch_with_output_file(tmp_path: Path, good_folder: Path, weights_file: Path) -> None:
    result = _upscale(weights_file, good_folder / "a.png", "-o", tmp_path / "out.png", "--format", "jpg")
    assert result.exit_code == 2, _describe(result)
    assert "does not match --format jpg" in result.stderr, _describe(result)


def test_interrupt_leaves_no_partial_files(tmp_path: Path, weights_file: Path) -> None:
    # A real process and a real SIGINT: the batch stops with exit code 130, every finished
    # output is a complete image, and no temporary file remains.
    import signal
    import subprocess
    import sys
    import time

    source = tmp_path / "frames"
    source.mkdir()
    for i in range(40):
        _write_png(source / f"frame{i:03d}.png", height=96, width=128, seed=i)
    output = tmp_path / "out"
    command = [sys.executable, "-c", "import cli; cli.app()", "upscale", str(source), "-o", str(output),
               "--weights", str(weights_file), "--threads", "1", "--quiet"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               cwd=Path(__file__).resolve().parent.parent)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (output.exists() and any(output.glob("*.png"))):
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)

    finished = sorted(output.glob("*.png"))
    assert process.returncode == 130, f"exit code {process.returncode}: {stderr.decode()[-500:]}"
    assert 0 < len(finished) < 40, f"{len(finished)} outputs: the interrupt came too late or too early"
    assert not list(output.glob(".*")), f"temporary files left: {list(output.glob('.*'))}"
    for path in finished:
        assert _image_shape(path) == (192, 256, 3), f"{path.name} is incomplete: {_image_shape(path)}"


# Status line, quiet mode and eval.

def test_status_line_names_backend_precision_threads(tmp_path: Path, good_folder: Path, weights_file: Path) -> None:
    result = _upscale(weights_file, good_folder / "a.png", "-o", tmp_path / "out.png")

    assert result.exit_code == 0, _describe(result)
    assert "sesr-m3 ×2 on onnxruntime fp32, 1 thread\n" in result.stderr, _describe(result)


def test_quiet_hides_fallback_notices(tmp_path: Path, good_folder: Path, weights_file: Path) -> None:
    loud = _upscale(weights_file, good_folder / "a.png", "-o", tmp_path / "loud.png", "--precision", "int8")
    quiet = _upscale(weights_file, good_folder / "a.png", "-o", tmp_path / "quiet.png", "--precision", "int8", "-q")

    assert loud.exit_code == 0 and quiet.exit_code == 0, _describe(loud) + _describe(quiet)
    assert "using fp32" in loud.stderr, _describe(loud)
    assert quiet.stderr == "", _describe(quiet)


def test_missing_single_input_with_file_output(tmp_path: Path, weights_file: Path) -> None:
    missing = tmp_path / "nonexist.png"

    result = _upscale(weights_file, missing, "-o", tmp_path / "x.png")

    assert result.exit_code == 1, _describe(result)
    assert f"{missing}: not found; check the path" in " ".join(result.stderr.split()), _describe(result)
    assert "looks like a file name" not in result.stderr, _describe(result)


def test_upscale_file_rejects_output_onto_input(good_folder: Path, weights_file: Path) -> None:
    from upscale import Upscaler

    source = good_folder / "a.png"
    before = source.read_bytes()
    link = good_folder / "link.png"
    link.symlink_to(source)
    upscaler = Upscaler(weights=weights_file, backend="onnxruntime", threads=1)

    for target in (source, good_folder / "." / "a.png", link):
        with pytest.raises(ValueError, match="would overwrite its input"):
            upscaler.upscale_file(source, target)
    assert source.read_bytes() == before, "a.png changed"


def _eval(weights: Path, *args: object) -> Result:
    return _run("eval", *args, "--weights", weights, "--backend", "onnxruntime")


@pytest.fixture
def eval_folder(tmp_path: Path) -> Path:
    """A folder with two 32×40 PNGs, large enough to score at ×2 after the border cut."""
    folder = tmp_path / "set"
    _write_png(folder / "a.png", 32, 40, seed=3)
    _write_png(folder / "b.png", 32, 40, seed=4)
    return folder


def test_eval_json_records_backend(eval_folder: Path, weights_file: Path) -> None:
    result = _eval(weights_file, eval_folder, "--threads", 1, "--json")

    assert result.exit_code == 0, _describe(result)
    document = json.loads(result.stdout)
    assert (document["backend"], document["precision"], document["threads"]) == ("onnxruntime", "fp32", 1)
    assert "sesr-m3 ×2 on onnxruntime fp32, 1 thread" in result.stderr, _describe(result)
    assert [image["name"] for image in document["results"][0]["images"]] == ["a.png", "b.png"]


def test_eval_skips_bad_images_and_scores_rest(tmp_path: Path, eval_folder: Path, weights_file: Path) -> None:
    broken = eval_folder / "c.png"
    broken.write_bytes(b"not a png")
    empty = eval_folder / "d.png"
    empty.write_bytes(b"")
    _write_png(eval_folder / "e.png", 12, 12, seed=5)       # 12 px: below 2·2 + 11 after the border cut
    other = tmp_path / "other"
    _write_png(other / "z.png", 32, 40, seed=6)

    result = _eval(weights_file, eval_folder, other, "--threads", 1, "--baseline", "bicubic", "--json", "-q")

    assert result.exit_code == 1, _describe(result)
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 3, _describe(result)                  # once each, not once per method
    assert f"{broken}: cannot be decoded" in errors[0], _describe(result)
    assert f"{empty}: file is empty (0 bytes)" in errors[1], _describe(result)
    assert f"{eval_folder / 'e.png'}: is 12×12 pixels, too small to score at ×2 (needs at least 16" in errors[2], _describe(result)
    document = json.loads(result.stdout)
    scored = [(r["dataset"], r["method"], [i["name"] for i in r["images"]]) for r in document["results"]]
    assert scored == [("set", "bicubic", ["a.png", "b.png"]), ("set", weights_file.name, ["a.png", "b.png"]),
                      ("other", "bicubic", ["z.png"]), ("other", weights_file.name, ["z.png"])], scored
    assert document["results"][0]["skipped"] == ["c.png", "d.png", "e.png"], document["results"][0]
    assert document["results"][2]["skipped"] == [], document["results"][2]
    assert [f["path"] for f in document["failed"]] == [str(broken), str(empty), str(eval_folder / "e.png")]


def test_eval_folder_with_only_bad_images(tmp_path: Path, eval_folder: Path, weights_file: Path) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.jpg").write_bytes(b"text, not a jpeg")

    result = _eval(weights_file, bad, eval_folder, "--threads", 1, "-q")

    assert result.exit_code == 1, _describe(result)
    assert f"{bad / 'x.jpg'}: cannot be decoded" in " ".join(result.stderr.split()), _describe(result)
    assert "set ×2" in result.stdout, _describe(result)          # the good folder is still scored
    assert "bad ×2" not in result.stdout, _describe(result)


@pytest.mark.parametrize("command", ["upscale", "eval"])
def test_negative_threads_same_message(tmp_path: Path, good_folder: Path, weights_file: Path, command: str) -> None:
    args = [good_folder] if command == "eval" else [good_folder, "-o", tmp_path / "out"]

    result = _run(command, *args, "--weights", weights_file, "--threads", -1)

    assert result.exit_code == 2, _describe(result)
    assert "--threads must be 0 (the engine's default) or a positive number, got -1" in result.stderr, _describe(result)
