"""Image files in and out: round trips, bit depth, alpha, orientation, metadata and errors.

Every input is written here, into pytest's tmp_path, by OpenCV, Pillow or tifffile, so the
product's reader and writer are checked against independent encoders and decoders.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile
from PIL import Image, ImageCms

from conftest import make_random_weights
from models import save_weights
from upscale import ImageFormat, ImageReadError, ImageWriteError, Upscaler, read_image, write_image

EXIF_MAKE = 0x010F
EXIF_ORIENTATION = 0x0112
TIFF_ICC_TAG = 34675  # InterColorProfile: the embedded ICC profile


# Helpers.

def _srgb_icc() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _exif_bytes(orientation: int | None = None) -> bytes:
    exif = Image.Exif()
    exif[EXIF_MAKE] = "sesr-test"
    if orientation is not None:
        exif[EXIF_ORIENTATION] = orientation
    return exif.tobytes()


def _folder_names(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


@pytest.fixture
def upscaler(weights_file: Path) -> Upscaler:
    """×2 sesr-m3 with random weights on one onnxruntime thread."""
    return Upscaler(weights=weights_file, backend="onnxruntime", threads=1)


@pytest.fixture
def identity_upscaler(tmp_path: Path) -> Upscaler:
    """×2 sesr-m3 with all weights zero: luma is repeated 2×2, chroma is bicubic.

    The network output is its input luma, so output values stay near input values and a
    wrongly rescaled bit depth shows as a factor of 257.
    """
    path = tmp_path / "identity" / "sesr-m3-x2.safetensors"
    path.parent.mkdir()
    save_weights(make_random_weights(spread=0.0), path)
    return Upscaler(weights=path, backend="onnxruntime", threads=1)


# Round trips of write_image and read_image.

def test_rgb_png_round_trip(tmp_path: Path) -> None:
    rgb = np.random.default_rng(1).integers(0, 256, (12, 16, 3), dtype=np.uint8)
    path = tmp_path / "rgb.png"

    write_image(path, rgb, ImageFormat.PNG)
    loaded = read_image(path)

    assert loaded.pixels.dtype == np.uint8, f"dtype {loaded.pixels.dtype}"
    assert np.array_equal(loaded.pixels, rgb), (
        f"max difference {np.abs(loaded.pixels.astype(int) - rgb).max()}")
    assert loaded.source_format == "PNG", f"source_format {loaded.source_format!r}"


def test_opencv_png_read_as_rgb(tmp_path: Path) -> None:
    bgr = np.zeros((4, 6, 3), dtype=np.uint8)
    bgr[..., 0] = 200  # OpenCV stores blue first
    path = tmp_path / "blue.png"
    assert cv2.imwrite(str(path), bgr), "cv2.imwrite failed"

    pixels = read_image(path).pixels

    assert pixels[0, 0].tolist() == [0, 0, 200], f"first pixel {pixels[0, 0].tolist()}, expected RGB blue"


LAYOUTS = {"gray": (10, 14), "gray-alpha": (10, 14, 2), "rgb": (10, 14, 3), "rgba": (10, 14, 4)}


def _difference(actual: np.ndarray, expected: np.ndarray) -> str:
    error = np.abs(actual.astype(np.int64) - expected.astype(np.int64))
    return f"max difference {error.max()} in {np.count_nonzero(error)} of {error.size} samples"


@pytest.mark.parametrize("image_format", [ImageFormat.PNG, ImageFormat.TIFF], ids=["png", "tiff"])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_lossless_8bit_round_trip(tmp_path: Path, image_format: ImageFormat, layout: str) -> None:
    pixels = np.random.default_rng(2).integers(0, 256, LAYOUTS[layout], dtype=np.uint8)
    path = tmp_path / f"image{image_format.suffix}"

    write_image(path, pixels, image_format)
    loaded = read_image(path).pixels

    assert loaded.dtype == np.uint8, f"dtype {loaded.dtype}"
    assert loaded.shape == pixels.shape, f"shape {loaded.shape}, expected {pixels.shape}"
    assert np.array_equal(loaded, pixels), _difference(loaded, pixels)


@pytest.mark.parametrize("image_format", [ImageFormat.PNG, ImageFormat.TIFF], ids=["png", "tiff"])
@pytest.mark.parametrize("layout", ["gray", "rgb", "rgba"])
def test_lossless_16bit_round_trip(tmp_path: Path, image_format: ImageFormat, layout: str) -> None:
    pixels = np.random.default_rng(3).integers(0, 65536, LAYOUTS[layout], dtype=np.uint16)
    path = tmp_path / f"deep{image_format.suffix}"

    write_image(path, pixels, image_format)
    loaded = read_image(path).pixels

    assert loaded.dtype == np.uint16, f"dtype {loaded.dtype}"
    assert loaded.shape == pixels.shape, f"shape {loaded.shape}, expected {pixels.shape}"
    assert np.array_equal(loaded, pixels), _difference(loaded, pixels)


def test_tiff16_gray_alpha_round_trip(tmp_path: Path) -> None:
    # Only TIFF keeps this layout at 16 bits: write_image stores 16-bit gray + alpha PNG as RGBA.
    pixels = np.random.default_rng(3).integers(0, 65536, LAYOUTS["gray-alpha"], dtype=np.uint16)
    path = tmp_path / "deep.tif"

    write_image(path, pixels, ImageFormat.TIFF)
    loaded = read_image(path).pixels

    assert loaded.dtype == np.uint16, f"dtype {loaded.dtype}"
    assert loaded.shape == pixels.shape, f"shape {loaded.shape}, expected {pixels.shape}"
    assert np.array_equal(loaded, pixels), _difference(loaded, pixels)


def test_rgba_tiff_read_unassociated(tmp_path: Path) -> None:
    # tifffile stores the samples as given and tags them as unassociated alpha
    # (ExtraSamples = 2), so a reader must return them unchanged, not multiplied by alpha.
    rgba = np.random.default_rng(13).integers(0, 256, LAYOUTS["rgba"], dtype=np.uint8)
    path = tmp_path / "straight.tif"
    tifffile.imwrite(path, rgba, photometric="rgb", extrasamples=("unassalpha",))

    loaded = read_image(path).pixels

    assert np.array_equal(loaded[..., 3], rgba[..., 3]), _difference(loaded[..., 3], rgba[..., 3])
    assert np.array_equal(loaded[..., :3], rgba[..., :3]), _difference(loaded[..., :3], rgba[..., :3])


def test_jpeg_from_16bit_rescales(tmp_path: Path) -> None:
    # 25700 = 100 · 257, the 16-bit code of 8-bit level 100.
    flat = np.full((16, 16, 3), 25700, dtype=np.uint16)
    path = tmp_path / "flat.jpg"

    write_image(path, flat, ImageFormat.JPG)
    pixels = read_image(path).pixels

    assert pixels.dtype == np.uint8, f"dtype {pixels.dtype}"
    assert np.abs(pixels.astype(int) - 100).max() <= 1, (
        f"values {pixels.min()}..{pixels.max()}, expected 100 ± 1")


# Layouts through Upscaler.upscale_file.

def test_gray_png_stays_gray(tmp_path: Path, upscaler: Upscaler) -> None:
    gray = np.random.default_rng(4).integers(0, 256, (12, 20), dtype=np.uint8)
    source, target = tmp_path / "gray.png", tmp_path / "gray_x2.png"
    Image.fromarray(gray, mode="L").save(source)

    upscaler.upscale_file(source, target)

    with Image.open(target) as image:
        assert image.mode == "L", f"output mode {image.mode}"
        assert image.size == (40, 24), f"output size {image.size}, expected (40, 24)"
    pixels = read_image(target).pixels
    assert pixels.ndim == 2, f"read back with shape {pixels.shape}"


def test_rgba_png_keeps_alpha(tmp_path: Path, upscaler: Upscaler) -> None:
    rgba = np.random.default_rng(5).integers(0, 256, (32, 32, 4), dtype=np.uint8)
    rgba[:, :16, 3] = 0      # left half fully transparent
    rgba[:, 16:, 3] = 255    # right half opaque
    source, target = tmp_path / "rgba.png", tmp_path / "rgba_x2.png"
    Image.fromarray(rgba, mode="RGBA").save(source)

    upscaler.upscale_file(source, target)

    with Image.open(target) as image:
        assert image.mode == "RGBA", f"output mode {image.mode}"
        alpha = np.asarray(image)[..., 3]
    assert alpha.shape == (64, 64), f"alpha shape {alpha.shape}"
    # The bicubic filter reads 2 LR pixels across the edge at LR column 16 (HR column 32).
    transparent, opaque = alpha[:, :26], alpha[:, 38:]
    assert transparent.max() == 0, f"transparent region alpha up to {transparent.max()}"
    assert opaque.min() == 255, f"opaque region alpha down to {opaque.min()}"


def test_palette_transparency_becomes_alpha(tmp_path: Path, upscaler: Upscaler) -> None:
    indices = np.zeros((32, 32), dtype=np.uint8)
    indices[:, 16:] = 1
    indices[8:24, 8:24] = 2  # index 2 is transparent
    palette = Image.fromarray(indices, mode="P")
    palette.putpalette([220, 30, 30, 30, 200, 40, 10, 10, 240])
    source, target = tmp_path / "palette.png", tmp_path / "palette_x2.png"
    palette.save(source, transparency=2)

    upscaler.upscale_file(source, target)

    with Image.open(target) as image:
        assert image.mode == "RGBA", f"output mode {image.mode}"
        alpha = np.asarray(image)[..., 3]
    hole, corner = alpha[22:42, 22:42], alpha[:10, :10]
    assert hole.max() == 0, f"transparent block alpha up to {hole.max()}"
    assert corner.min() == 255, f"opaque corner alpha down to {corner.min()}"


# Bit depth comes from the dtype, never from pixel values.

@pytest.mark.parametrize("suffix", [".png", ".tif"])
@pytest.mark.parametrize("channels", [1, 3], ids=["gray", "rgb"])
def test_16bit_stays_16bit(tmp_path: Path, identity_upscaler: Upscaler, suffix: str, channels: int) -> None:
    # Every sample is below 256: a reader that guesses the depth from values would call it 8-bit.
    shape = (12, 16) if channels == 1 else (12, 16, 3)
    small = np.random.default_rng(6).integers(40, 200, shape, dtype=np.uint16)
    source, target = tmp_path / f"small{suffix}", tmp_path / f"small_x2{suffix}"
    assert cv2.imwrite(str(source), small), "cv2.imwrite failed"

    identity_upscaler.upscale_file(source, target)

    output = cv2.imread(str(target), cv2.IMREAD_UNCHANGED)
    assert output is not None, f"OpenCV cannot read {target}"
    assert output.dtype == np.uint16, f"output dtype {output.dtype}"
    assert output.shape == (24, 32) + shape[2:], f"output shape {output.shape}"
    # An 8-bit guess would scale values by 257 on the way out, to at least 40 · 257 = 10280.
    assert output.max() < 1024, f"output max {output.max()}, input max {small.max()}"


# EXIF orientation.

def test_exif_orientation_6_rotates(tmp_path: Path, upscaler: Upscaler) -> None:
    # Stored 10 rows × 20 columns, bright top-left quadrant. Orientation 6 means "rotate 90°
    # clockwise to display", so the upright image is 20 × 10 with the bright quadrant top-right.
    stored = np.full((10, 20, 3), 20, dtype=np.uint8)
    stored[:5, :10] = 230
    source, target = tmp_path / "rotated.jpg", tmp_path / "rotated_x2.png"
    Image.fromarray(stored).save(source, quality=95, exif=_exif_bytes(orientation=6))

    upscaler.upscale_file(source, target)

    with Image.open(target) as image:
        orientation = image.getexif().get(EXIF_ORIENTATION)
        output = np.asarray(image.convert("L"), dtype=np.float64)
    assert output.shape == (40, 20), f"output shape {output.shape}, expected (40, 20)"
    assert orientation in (None, 1), f"output EXIF orientation {orientation}"
    quadrants = {"top-left": output[:20, :10].mean(), "top-right": output[:20, 10:].mean(),
                 "bottom-left": output[20:, :10].mean(), "bottom-right": output[20:, 10:].mean()}
    brightest = max(quadrants, key=quadrants.get)
    assert brightest == "top-right", f"quadrant means {quadrants}"


# ICC profile and EXIF carried to the output.

@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp", ".tif"])
def test_metadata_carried_8bit(tmp_path: Path, upscaler: Upscaler, suffix: str) -> None:
    icc = _srgb_icc()
    rgb = np.random.default_rng(7).integers(0, 256, (12, 16, 3), dtype=np.uint8)
    source, target = tmp_path / "tagged.png", tmp_path / f"tagged_x2{suffix}"
    Image.fromarray(rgb).save(source, icc_profile=icc, exif=_exif_bytes())

    upscaler.upscale_file(source, target)

    with Image.open(target) as image:
        carried_icc = image.info.get("icc_profile")
        make = image.getexif().get(EXIF_MAKE)
    assert carried_icc == icc, f"ICC profile of {len(carried_icc or b'')} bytes, expected {len(icc)}"
    assert make == "sesr-test", f"EXIF Make {make!r}"


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_icc_carried_16bit(tmp_path: Path, upscaler: Upscaler, suffix: str) -> None:
    icc = _srgb_icc()
    rgb = np.random.default_rng(8).integers(0, 65536, (12, 16, 3), dtype=np.uint16)
    source, target = tmp_path / "tagged16.tif", tmp_path / f"tagged16_x2{suffix}"
    tifffile.imwrite(source, rgb, photometric="rgb", extratags=[(TIFF_ICC_TAG, 7, len(icc), icc, True)])

    upscaler.upscale_file(source, target)

    output = cv2.imread(str(target), cv2.IMREAD_UNCHANGED)
    assert output is not None and output.dtype == np.uint16, (
        f"output dtype {None if output is None else output.dtype}")
    with Image.open(target) as image:
        carried_icc = image.info.get("icc_profile")
    assert carried_icc == icc, f"ICC profile of {len(carried_icc or b'')} bytes, expected {len(icc)}"


def test_exif_carried_16bit_png(tmp_path: Path) -> None:
    rgb = np.random.default_rng(9).integers(0, 65536, (8, 8, 3), dtype=np.uint16)
    path = tmp_path / "deep.png"

    write_image(path, rgb, ImageFormat.PNG, exif=_exif_bytes())

    with Image.open(path) as image:
        make = image.getexif().get(EXIF_MAKE)
    assert make == "sesr-test", f"EXIF Make {make!r}"


# Atomic writes.

def test_write_leaves_only_output(tmp_path: Path) -> None:
    rgb = np.zeros((8, 8, 3), dtype=np.uint8)
    for image_format in ImageFormat:
        write_image(tmp_path / f"out{image_format.suffix}", rgb, image_format)
    write_image(tmp_path / "deep.tif", rgb.astype(np.uint16), ImageFormat.TIFF)

    names = _folder_names(tmp_path)

    expected = sorted(["out.png", "out.jpg", "out.webp", "out.tif", "deep.tif"])
    assert names == expected, f"folder contains {names}"


def test_jpeg_with_alpha_rejected(tmp_path: Path) -> None:
    rgba = np.zeros((8, 8, 4), dtype=np.uint8)
    path = tmp_path / "alpha.jpg"

    with pytest.raises(ImageWriteError) as caught:
        write_image(path, rgba, ImageFormat.JPG)

    assert caught.value.path == path, f"error path {caught.value.path}"
    assert "alpha" in caught.value.reason, f"reason {caught.value.reason!r}"
    names = _folder_names(tmp_path)
    assert names == [], f"folder contains {names} after a failed write"


def test_failed_write_keeps_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # 16-bit TIFF is written straight into the temporary file, so a failure there must
    # remove the temporary file and leave the previous output untouched.
    path = tmp_path / "deep.tif"
    path.write_bytes(b"previous output")

    def fail_write(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(tifffile, "imwrite", fail_write)
    with pytest.raises(OSError):
        write_image(path, np.zeros((8, 8, 3), dtype=np.uint16), ImageFormat.TIFF)

    names = _folder_names(tmp_path)
    assert names == ["deep.tif"], f"folder contains {names}"
    assert path.read_bytes() == b"previous output", "the previous file was changed"


# Read errors.

def _png_bytes() -> bytes:
    rgb = np.random.default_rng(10).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    ok, encoded = cv2.imencode(".png", rgb)
    assert ok, "cv2.imencode failed"
    return encoded.tobytes()


def _jpeg_bytes() -> bytes:
    rgb = np.random.default_rng(11).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    ok, encoded = cv2.imencode(".jpg", rgb)
    assert ok, "cv2.imencode failed"
    return encoded.tobytes()


@pytest.mark.parametrize(("name", "make_bytes", "expected_word"), [
    ("empty.png", lambda: b"", "empty"),
    ("half.png", lambda: _png_bytes()[:len(_png_bytes()) // 2], "truncated"),
    ("half.jpg", lambda: _jpeg_bytes()[:len(_jpeg_bytes()) // 2], "truncated"),
    ("noise.png", lambda: np.random.default_rng(12).integers(0, 256, 600, dtype=np.uint8).tobytes(),
     "not a recognised image"),
], ids=["zero-byte", "truncated-png", "truncated-jpeg", "random-bytes"])
def test_read_rejects_bad_file(tmp_path: Path, name: str, make_bytes, expected_word: str) -> None:
    path = tmp_path / name
    path.write_bytes(make_bytes())

    with pytest.raises(ImageReadError) as caught:
        read_image(path)

    assert caught.value.path == path, f"error path {caught.value.path}"
    assert expected_word in caught.value.reason, f"reason {caught.value.reason!r}"


def test_read_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.png"

    with pytest.raises(ImageReadError) as caught:
        read_image(path)

    assert "cannot be read" in caught.value.reason, f"reason {caught.value.reason!r}"


def test_output_has_umask_permissions(tmp_path: Path) -> None:
    import stat

    target = tmp_path / "out.png"
    write_image(target, np.zeros((4, 4, 3), dtype=np.uint8), ImageFormat.PNG)
    mask = os.umask(0)
    os.umask(mask)
    mode = stat.S_IMODE(target.stat().st_mode)
    assert mode == 0o666 & ~mask, f"mode {oct(mode)}, expected {oct(0o666 & ~mask)}"


def test_tiff_layout_tags_not_copied(tmp_path: Path) -> None:
    # A TIFF's IFD0 contains its own width, strips and compression. Copying them as EXIF made the
    # output TIFF unreadable at twice the size.
    source = tmp_path / "in.tif"
    exif = Image.Exif()
    exif[0x010F] = "sesr-test"
    Image.fromarray(np.full((6, 8, 3), 90, dtype=np.uint8)).save(source, exif=exif.tobytes())
    image = read_image(source)
    target = tmp_path / "out.tif"
    write_image(target, np.repeat(np.repeat(image.pixels, 2, 0), 2, 1), ImageFormat.TIFF, exif=image.exif)
    written = Image.open(target)
    assert written.size == (16, 12), f"size {written.size}"
    assert written.getexif().get(0x010F) == "sesr-test", f"EXIF {dict(written.getexif())}"
    assert np.asarray(written).shape == (12, 16, 3), f"pixels {np.asarray(written).shape}"
