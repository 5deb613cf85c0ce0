"""Image files in and out, with their metadata.

Pillow decodes every file fully, because OpenCV returns a half-grey picture for a truncated JPEG
instead of failing, and it reads the ICC profile and EXIF block. Pillow reduces 16-bit color to
8 bits, so PNG and TIFF files are also decoded by OpenCV (``IMREAD_UNCHANGED``), whose pixels
are used when they are 16-bit. TIFFs that Pillow cannot open are read with tifffile. Arrays handed to the rest of the package are H×W
(gray), H×W×2 (gray + alpha), H×W×3 (RGB) or H×W×4 (RGBA), uint8 or uint16; the bit depth
comes from the decoded dtype, never from pixel values.
"""

from __future__ import annotations

import enum
import io
import logging
import os
import struct
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

logger = logging.getLogger(__name__)

__all__ = ["ImageFormat", "ImageReadError", "ImageWriteError", "LoadedImage", "read_image",
           "write_image", "IMAGE_SUFFIXES"]

ImageFile.LOAD_TRUNCATED_IMAGES = False
Image.MAX_IMAGE_PIXELS = None  # very large photos are a supported use; tiling bounds memory

EXIF_ORIENTATION = 0x0112
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp"})


class ImageFormat(str, enum.Enum):
    """Output file format."""

    PNG = "png"
    JPG = "jpg"
    WEBP = "webp"
    TIFF = "tiff"

    @property
    def suffix(self) -> str:
        return {"png": ".png", "jpg": ".jpg", "webp": ".webp", "tiff": ".tif"}[self.value]

    @classmethod
    def from_suffix(cls, suffix: str) -> ImageFormat | None:
        """Format written for a file suffix, or None when sesr does not write it (``.bmp``)."""
        return {".png": cls.PNG, ".jpg": cls.JPG, ".jpeg": cls.JPG, ".webp": cls.WEBP,
                ".tif": cls.TIFF, ".tiff": cls.TIFF}.get(suffix.lower())


class ImageReadError(ValueError):
    """A file that is not a readable image."""

    def __init__(self, path: Path, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class ImageWriteError(ValueError):
    """An image that cannot be stored in the requested format."""

    def __init__(self, path: Path, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")


@dataclass(frozen=True)
class LoadedImage:
    """Decoded pixels, upright, with the metadata to carry to the output."""

    pixels: np.ndarray
    """H×W, H×W×2, H×W×3 or H×W×4 in gray/GA/RGB/RGBA order, uint8 or uint16."""
    icc_profile: bytes | None
    exif: bytes | None
    """EXIF block with the orientation tag reset to 1 (upright), or None."""
    source_format: str
    """Pillow's format name of the input, for example ``PNG`` or ``JPEG``."""


def _orient(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1-8) so the array is upright."""
    transforms = {
        1: lambda a: a,
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: np.swapaxes(a, 0, 1),
        6: lambda a: np.rot90(a, -1),
        7: lambda a: np.rot90(a, 1)[::-1],
        8: lambda a: np.rot90(a, 1),
    }
    return np.ascontiguousarray(transforms.get(orientation, transforms[1])(pixels))


def _decode_with_opencv(path: Path, data: np.ndarray, gray: bool) -> np.ndarray:
    pixels = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if pixels is None:
        raise ImageReadError(path, "OpenCV cannot decode the pixel data; the file is truncated or corrupt")
    if pixels.dtype not in (np.uint8, np.uint16):
        raise ImageReadError(path, f"{pixels.dtype} samples are not supported; convert to 8 or 16 bits per sample")
    if pixels.ndim == 3 and pixels.shape[2] == 3:
        pixels = cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB)
    elif pixels.ndim == 3 and pixels.shape[2] == 4:
        pixels = cv2.cvtColor(pixels, cv2.COLOR_BGRA2RGBA)
    if gray and pixels.ndim == 3:
        pixels = pixels[..., 0] if pixels.shape[2] == 3 else pixels[..., [0, 3]]
    return pixels


GRAY16_MODES = ("I;16", "I;16B", "I;16L", "I;16N")
TIFF_SIGNATURES = (b"II*\x00", b"MM\x00*")


# IFD0 tags that describe the picture rather than the file layout. Only these are copied from a
# TIFF, because a TIFF's IFD0 also contains its own strip offsets, sizes and compression.
DESCRIPTIVE_TAGS = (0x010E, 0x010F, 0x0110, 0x0131, 0x0132, 0x013B, 0x8298)
SUB_IFD_TAGS = (0x8769, 0x8825)  # Exif and GPS sub-IFDs


def _portable_exif(exif: Image.Exif, source_format: str) -> bytes | None:
    """Return EXIF bytes to copy to the output, tagged upright, or None when there is nothing."""
    if source_format == "TIFF":
        portable = Image.Exif()
        for tag in DESCRIPTIVE_TAGS:
            if tag in exif:
                portable[tag] = exif[tag]
        for tag in SUB_IFD_TAGS:
            if tag in exif and exif.get_ifd(tag):
                portable[tag] = exif.get_ifd(tag)
        exif = portable
    if not len(exif):
        return None
    exif[EXIF_ORIENTATION] = 1
    return exif.tobytes()


def _pillow_pixels(image: Image.Image) -> np.ndarray | None:
    """Convert a decoded Pillow image to gray/GA/RGB/RGBA uint8, or None for 16-bit gray."""
    mode = image.mode
    if mode in ("L", "RGB", "RGBA"):
        return np.asarray(image)
    if mode in GRAY16_MODES:
        return None
    has_alpha = mode in ("PA", "LA", "La", "RGBa") or "transparency" in image.info
    if mode in ("P", "PA"):
        gray_palette = image.palette is not None and image.palette.mode == "L"
        target = "L" if gray_palette else "RGB"
    elif mode in ("LA", "La", "1", "I;16", "L;16"):
        target = "L"
    else:  # CMYK, YCbCr, LAB, HSV, RGBa, RGBX
        target = "RGB"
    if has_alpha:
        target += "A"
    return np.asarray(image.convert(target))


def _read_tiff(path: Path) -> LoadedImage:
    """Read a TIFF that Pillow cannot open (for example 16-bit gray + alpha) with tifffile."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tiff:
            page = tiff.pages[0]
            pixels = page.asarray()
            icc_tag = page.tags.get(34675)
            icc = bytes(icc_tag.value) if icc_tag is not None else None
    except (tifffile.TiffFileError, ValueError, OSError) as error:
        raise ImageReadError(path, f"corrupt or unsupported TIFF ({error})") from None
    if pixels.dtype not in (np.uint8, np.uint16) or pixels.ndim not in (2, 3) or (
            pixels.ndim == 3 and pixels.shape[2] > 4):
        raise ImageReadError(path, f"TIFF with {pixels.dtype} samples and shape {pixels.shape} is not "
                                   f"supported; convert to 8 or 16-bit gray, RGB or RGBA")
    return LoadedImage(np.ascontiguousarray(pixels), icc, None, "TIFF")


def read_image(path: Path | str) -> LoadedImage:
    """Read an image file, apply its EXIF orientation and return pixels and metadata.

    Raises ``ImageReadError`` for an empty, truncated, corrupt or unsupported file.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise ImageReadError(path, f"cannot be read ({error.strerror})") from None
    if not raw:
        raise ImageReadError(path, "file is empty (0 bytes)")

    # Full decode with Pillow: detects truncation and reads metadata.
    try:
        with Image.open(path) as image:
            image.load()
            mode, source_format = image.mode, image.format or "unknown"
            icc = image.info.get("icc_profile") or None
            exif = image.getexif()
            orientation = int(exif.get(EXIF_ORIENTATION, 1) or 1)
            pixels = _pillow_pixels(image)
    except UnidentifiedImageError:
        if raw[:4] in TIFF_SIGNATURES:
            return _read_tiff(path)
        raise ImageReadError(path, "not a recognised image format") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageReadError(path, f"corrupt or truncated image ({error})") from None
    if mode in ("I", "F", "I;32", "I;32B"):
        raise ImageReadError(path, f"{mode} (32-bit) images are not supported; convert to 8 or 16 bits per sample")

    # Only PNG and TIFF carry 16-bit samples, and Pillow reduces 16-bit color to 8 bits. OpenCV
    # therefore decodes those files too, and its pixels are used when they are 16-bit.
    if source_format in ("PNG", "TIFF") and mode in ("L", "RGB", "RGBA", *GRAY16_MODES):
        decoded = _decode_with_opencv(path, np.frombuffer(raw, dtype=np.uint8), gray=mode not in ("RGB", "RGBA"))
        if decoded.dtype == np.uint16 or pixels is None:
            pixels = decoded
    if pixels is None:
        raise ImageReadError(path, f"Pillow mode {mode} is not supported; convert to 8-bit RGB")

    return LoadedImage(_orient(pixels, orientation), icc, _portable_exif(exif, source_format), source_format)


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _png_with_metadata(encoded: bytes, icc: bytes | None, exif: bytes | None) -> bytes:
    """Insert iCCP and eXIf chunks after IHDR (PNG 1.2 and the 2017 eXIf extension)."""
    end_of_ihdr = 8 + 4 + 4 + 13 + 4
    extra = b""
    if icc:
        extra += _png_chunk(b"iCCP", b"icc\x00\x00" + zlib.compress(icc))
    if exif:
        body = exif[6:] if exif.startswith(b"Exif\x00\x00") else exif
        extra += _png_chunk(b"eXIf", body)
    return encoded[:end_of_ihdr] + extra + encoded[end_of_ihdr:]


def _to_8bit(pixels: np.ndarray) -> np.ndarray:
    if pixels.dtype == np.uint8:
        return pixels
    return np.round(pixels.astype(np.float32) / 257.0).astype(np.uint8)


def _encode(path: Path, pixels: np.ndarray, image_format: ImageFormat, icc: bytes | None,
            exif: bytes | None, quality: int) -> bytes | None:
    """Return encoded bytes, or None when the file was written directly (16-bit TIFF)."""
    has_alpha = pixels.ndim == 3 and pixels.shape[2] in (2, 4)
    if image_format is ImageFormat.JPG and has_alpha:
        raise ImageWriteError(path, "JPEG cannot store an alpha channel; use --format png, webp or tiff")

    if pixels.dtype == np.uint16 and image_format is ImageFormat.PNG:
        bgr = pixels
        if pixels.ndim == 3 and pixels.shape[2] == 3:
            bgr = cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)
        elif pixels.ndim == 3 and pixels.shape[2] == 4:
            bgr = cv2.cvtColor(pixels, cv2.COLOR_RGBA2BGRA)
        elif pixels.ndim == 3:  # gray + alpha: PNG color type 4 is not written by OpenCV
            bgr = np.dstack([pixels[..., 0]] * 3 + [pixels[..., 1]])
        ok, encoded = cv2.imencode(".png", bgr)
        if not ok:
            raise ImageWriteError(path, "OpenCV failed to encode the PNG")
        return _png_with_metadata(encoded.tobytes(), icc, exif)

    if pixels.dtype == np.uint16 and image_format is ImageFormat.TIFF:
        return None

    if pixels.dtype == np.uint16:
        logger.info("%s: %s stores 8 bits per sample; reducing 16-bit output", path, image_format.value)
    pixels = _to_8bit(pixels)
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    image = Image.fromarray(pixels, mode={1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[channels])
    options: dict = {}
    if icc:
        options["icc_profile"] = icc
    if exif:
        options["exif"] = exif
    if image_format is ImageFormat.JPG:
        options.update(quality=quality, subsampling=0)
    elif image_format is ImageFormat.WEBP:
        options.update(quality=quality, method=4)
    elif image_format is ImageFormat.TIFF:
        options.update(compression="tiff_deflate")
    buffer = io.BytesIO()
    image.save(buffer, format={"png": "PNG", "jpg": "JPEG", "webp": "WEBP", "tiff": "TIFF"}[image_format.value],
               **options)
    return buffer.getvalue()


def write_image(path: Path | str, pixels: np.ndarray, image_format: ImageFormat,
                icc_profile: bytes | None = None, exif: bytes | None = None, quality: int = 95) -> None:
    """Write pixels atomically: encode, write a hidden temporary file beside ``path``, rename.

    16-bit pixels stay 16-bit in PNG and TIFF; JPEG and WebP store 8 bits, so they are reduced
    with rounding. ICC profile and EXIF are written to every format.
    NOTE: 16-bit TIFF output carries the ICC profile but not the EXIF block.
    """
    path = Path(path)
    encoded = _encode(path, pixels, image_format, icc_profile, exif, quality)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".partial", dir=path.parent)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            if encoded is not None:
                handle.write(encoded)
        if encoded is None:
            _write_tiff16(Path(temporary), pixels, icc_profile, exif, path)
        # mkstemp creates the file with mode 0600; give it the mode a plain open() would.
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _write_tiff16(path: Path, pixels: np.ndarray, icc: bytes | None, exif: bytes | None,
                  final_path: Path) -> None:
    import tifffile

    photometric = "minisblack" if pixels.ndim == 2 or pixels.shape[2] == 2 else "rgb"
    extratags = [(34675, 7, len(icc), icc, True)] if icc else []
    extrasamples = ("unassalpha",) if pixels.ndim == 3 and pixels.shape[2] in (2, 4) else None
    if exif:
        logger.info("%s: EXIF is not written to 16-bit TIFF files", final_path)
    tifffile.imwrite(path, pixels, photometric=photometric, compression="zlib",
                     extratags=extratags, extrasamples=extrasamples)
