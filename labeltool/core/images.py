"""Reading image files: listing, header probing, verification, loading as 8-bit RGB, hashing.

Every image leaves this module as a Pillow image of mode ``"RGB"`` (uint8[H, W, 3] when passed to
``np.asarray``) in *displayed* orientation: the EXIF orientation tag is applied, so ``size`` is
``(width, height)`` as a viewer shows it, the same coordinates boxes are stored in.

Any problem with a file (missing, empty, not an image, truncated, corrupt, unreadable, too many
pixels) raises :class:`~labeltool.core.errors.ImageLoadError` whose ``reason`` says what is wrong
and what to do; no raw ``OSError``/``SyntaxError``/``ValueError`` escapes for a bad file.
Truncation is always detected: ``ImageFile.LOAD_TRUNCATED_IMAGES`` is never set here.
Files are opened in ``with`` blocks and are closed when a function returns.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import stat
import struct
import warnings
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import IO

import numpy as np
from PIL import Image, JpegImagePlugin, UnidentifiedImageError

from . import config
from .errors import ImageLoadError

try:  # Pillow may be built without LittleCMS; colour management is then skipped
    from PIL import ImageCms
except ImportError:  # pragma: no cover - Pillow wheels ship LittleCMS
    ImageCms = None  # type: ignore[assignment]

# Pillow raises DecompressionBombError above 2x this and warns above 1x; the warning is turned into
# an ImageLoadError below, so every image above config.MAX_IMAGE_PIXELS is refused.
Image.MAX_IMAGE_PIXELS = config.MAX_IMAGE_PIXELS

_ORIENTATION_TAG = 0x0112  # EXIF "Orientation"
# EXIF orientation -> the transpose that displays the stored pixels upright (as ImageOps.exif_transpose)
_TRANSPOSE: dict[int, Image.Transpose] = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
# Bit depths of camera sensors; 16-bit containers are scaled by the smallest one holding the maximum.
_SENSOR_BIT_DEPTHS = (8, 10, 12, 14, 16)
_INT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")
_VERIFY_DRAFT_SCALE = 8  # verify_image decodes JPEGs at 1/8 size: every byte is still entropy-decoded
# What Pillow raises for damaged data (besides UnidentifiedImageError and the decompression-bomb types).
_DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, IndexError, struct.error, zlib.error)
_MAGIC = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"BM", "BMP"),
)

_TRUNCATED = "image data is truncated (the file was cut off while copying?) — re-export or re-copy it"


@dataclass(frozen=True, slots=True)
class ImageInfo:
    """What the file header says. ``width``/``height``: displayed size in pixels (EXIF orientation
    applied, i.e. swapped for orientations 5-8). ``format``: Pillow format name ("JPEG", "PNG", ...).
    ``mode``: Pillow mode of the pixels as stored ("L", "I;16", "P", "RGBA", "CMYK", ...).
    ``orientation``: EXIF orientation tag 1..8 (1 when absent or invalid)."""

    width: int
    height: int
    format: str
    mode: str
    orientation: int


def iter_image_files(root: Path) -> list[Path]:
    """All image files under ``root``, recursively, as ``root / relative`` paths.

    A file counts when its extension is in ``config.IMAGE_EXTENSIONS`` (any letter case). Hidden files
    and folders (name starting with ".") are skipped; symlinked folders are not followed. Symlinked
    files are listed even when broken, so an import reports them. Sorted by relative path,
    case-insensitively (the same order on every OS). Raises ``ValueError`` if ``root`` is not a folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"root={str(root)!r} is not an existing folder")
    extensions = {ext.lower() for ext in config.IMAGE_EXTENSIONS}
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        base = Path(dirpath)
        found.extend(
            base / name
            for name in filenames
            if not name.startswith(".") and os.path.splitext(name)[1].lower() in extensions
        )

    def key(path: Path) -> tuple[tuple[str, ...], tuple[str, ...]]:
        parts = path.relative_to(root).parts
        return tuple(p.casefold() for p in parts), parts

    return sorted(found, key=key)


def probe_image(path: Path) -> ImageInfo:
    """Read only the header of ``path`` (no pixel decoding) and return its :class:`ImageInfo`.

    A file whose header is fine but whose pixel data is truncated passes; use :func:`verify_image` to
    catch that. Raises ``ImageLoadError``.
    """
    path = Path(path)
    with _open(path) as img:
        return _info(img)


def verify_image(path: Path) -> ImageInfo:
    """Probe ``path`` and decode its pixels once, so truncated or corrupt data is caught.

    JPEGs are decoded at 1/8 scale (all compressed data is still read and checked, at a fraction of
    the cost); multi-frame files are checked on their first frame. Raises ``ImageLoadError``.
    """
    path = Path(path)
    with _open(path) as img:
        info = _info(img)
        if isinstance(img, JpegImagePlugin.JpegImageFile):
            w, h = img.size
            img.draft("RGB", (max(1, w // _VERIFY_DRAFT_SCALE), max(1, h // _VERIFY_DRAFT_SCALE)))
        with _pillow_errors(path):
            img.load()
        return info


def load_image(path: Path, *, max_side: int | None = None) -> Image.Image:
    """Load ``path`` as an 8-bit ``"RGB"`` image in displayed orientation (see :func:`to_rgb8`).

    ``max_side``: if given, the result's longest side is at most ``max_side`` pixels (aspect ratio
    kept, never enlarged). JPEGs are then decoded reduced by libjpeg (``Image.draft``: 1/2, 1/4 or 1/8
    scale, never full size) and finished with a LANCZOS resize; other formats are decoded fully and
    reduced after conversion. Raises ``ImageLoadError``; ``TypeError``/``ValueError`` for a bad
    ``max_side``.
    """
    path = Path(path)
    if max_side is not None:
        if isinstance(max_side, bool) or not isinstance(max_side, int):
            raise TypeError(f"max_side must be an int or None, got {max_side!r}")
        if max_side < 1:
            raise ValueError(f"max_side must be >= 1, got {max_side}")
    with _open(path) as img:
        orientation = _orientation(img)
        if max_side is not None and isinstance(img, JpegImagePlugin.JpegImageFile):  # also MPO
            _draft_for(img, max_side)
        with _pillow_errors(path):
            img.load()
        try:
            rgb = to_rgb8(img)
        except ValueError as exc:
            raise ImageLoadError(
                str(path),
                f"its pixel format ({img.mode}) is not supported — re-save it as an RGB PNG or JPEG",
            ) from exc
    if max_side is not None and max(rgb.size) > max_side:
        scale = max_side / max(rgb.size)  # a new image: Image.thumbnail would re-draft the file object
        size = (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale)))
        rgb = rgb.resize(size, Image.Resampling.LANCZOS, reducing_gap=2.0)
    method = _TRANSPOSE.get(orientation)
    return rgb.transpose(method) if method is not None else rgb


def thumbnail(path: Path, *, max_side: int = config.THUMBNAIL_SIDE) -> Image.Image:
    """``load_image(path, max_side=max_side)``: an RGB image whose longest side is <= ``max_side``."""
    return load_image(path, max_side=max_side)


def to_rgb8(img: Image.Image) -> Image.Image:
    """Convert an image of any Pillow mode to 8-bit ``"RGB"``, the same way every time.

    Rules, by mode:

    - ``"RGB"``: returned as is (the same object), unless it carries a ``transparency`` colour key,
      which is composited over white like ``"RGBA"``.
    - ``"1"``, ``"L"``: grey replicated into R, G and B (``"1"`` gives 0 or 255). A ``"L"`` image with a
      ``transparency`` key is composited over white.
    - ``"P"``, ``"PA"``: expanded through ``"RGBA"`` (palette transparency kept), then composited.
    - ``"RGBA"``, ``"LA"``, ``"La"``, ``"RGBa"``: alpha-composited over white (premultiplied modes are
      un-premultiplied first), so transparent pixels become white.
    - ``"CMYK"``: with an embedded ICC profile, converted to sRGB through it (LittleCMS); when there is
      none or it cannot be used, Pillow's plain ``convert("RGB")``.
    - ``"YCbCr"``, ``"HSV"``, ``"LAB"``: Pillow's ``convert("RGB")`` (for LAB that is a LittleCMS
      transform to sRGB).
    - ``"I;16"``, ``"I;16B"``, ``"I;16L"``, ``"I;16N"``, ``"I"``, and ``"F"`` with a maximum above 1.0:
      ``bits`` is the smallest of 8, 10, 12, 14, 16 whose range holds the image's maximum value
      (beyond 16, the maximum's own bit length), and each value ``v`` becomes
      ``round(v * 255 / (2**bits - 1))`` clipped to 0..255 (negative, NaN and infinite values give 0).
      So 12-bit camera data in a 16-bit container (max <= 4095) maps 4095 -> 255, not to 16.
    - ``"F"`` with a maximum <= 1.0: treated as 0..1, ``round(v * 255)`` clipped.
    - any other mode: Pillow's ``convert("RGB")``; ``ValueError`` naming the mode if that fails.

    Raises ``TypeError`` if ``img`` is not a Pillow image.
    """
    if not isinstance(img, Image.Image):
        raise TypeError(f"img must be a PIL.Image.Image, got {type(img).__name__}")
    mode = img.mode
    if mode in ("RGB", "L", "1"):
        if mode != "1" and "transparency" in img.info:
            return _over_white(img.convert("RGBA"))
        return img if mode == "RGB" else img.convert("RGB")
    if mode in ("P", "PA", "RGBA", "LA", "RGBa"):
        return _over_white(img.convert("RGBA"))
    if mode == "La":
        return _over_white(img.convert("LA").convert("RGBA"))
    if mode == "CMYK":
        return _cmyk_to_rgb(img)
    if mode in _INT_MODES or mode == "F":
        return _scale_to_rgb8(img)
    try:
        return img.convert("RGB")
    except ValueError as exc:
        raise ValueError(f"cannot convert image mode {mode!r} to RGB") from exc


def file_sha256(path: Path) -> str:
    """SHA-256 of the file's bytes as 64 lowercase hex characters, read in
    ``config.HASH_CHUNK_BYTES`` chunks. Raises ``ImageLoadError`` if the file cannot be read."""
    path = Path(path)
    digest = hashlib.sha256()
    try:
        with path.open("rb") as fp:
            while chunk := fp.read(config.HASH_CHUNK_BYTES):
                digest.update(chunk)
    except OSError as exc:
        raise ImageLoadError(str(path), _os_reason(path, exc)) from exc
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------------
# internals


@contextmanager
def _open(path: Path) -> Iterator[Image.Image]:
    """Open ``path`` lazily (header parsed, pixels not decoded), with every failure as ImageLoadError."""
    try:
        st = path.stat()
    except OSError as exc:
        raise ImageLoadError(str(path), _os_reason(path, exc)) from exc
    if stat.S_ISDIR(st.st_mode):
        raise ImageLoadError(str(path), _os_reason(path, IsADirectoryError()))
    if not stat.S_ISREG(st.st_mode):  # a FIFO would block open() forever
        raise ImageLoadError(
            str(path), "is not a regular file (a device, pipe or socket) — remove it from the image folder"
        )
    if st.st_size == 0:
        raise ImageLoadError(str(path), "file is empty (0 bytes; a failed copy?) — re-copy or re-export it")
    try:
        fp = path.open("rb")
    except OSError as exc:
        raise ImageLoadError(str(path), _os_reason(path, exc)) from exc
    with fp:
        with _pillow_errors(path, fp):
            img = Image.open(fp)
        width, height = img.size
        if width * height > config.MAX_IMAGE_PIXELS:
            raise ImageLoadError(
                str(path),
                f"image is too large: {width} x {height} = {width * height / 1e6:.1f} megapixels, more than "
                f"the limit of {config.MAX_IMAGE_PIXELS / 1e6:.0f} — downscale or crop it before importing",
            )
        yield img


@contextmanager
def _pillow_errors(path: Path, fp: IO[bytes] | None = None) -> Iterator[None]:
    """Turn what Pillow raises for a bad file (or its decompression-bomb warning) into ImageLoadError.

    Only Pillow calls run inside. ``warnings.catch_warnings`` is process-global; racing threads can at
    worst leave the DecompressionBombWarning filter at "error", which this function handles anyway.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageLoadError(
            str(path),
            f"image is too large (more than Pillow's limit of {Image.MAX_IMAGE_PIXELS:,} pixels) — "
            "downscale or crop it before importing",
        ) from exc
    except UnidentifiedImageError as exc:
        raise ImageLoadError(str(path), _unidentified_reason(fp)) from exc
    except _DECODE_ERRORS as exc:
        raise ImageLoadError(str(path), _decode_reason(path, exc)) from exc


def _unidentified_reason(fp: IO[bytes] | None) -> str:
    head = b""
    if fp is not None:
        try:
            fp.seek(0)
            head = fp.read(16)
        except OSError:
            head = b""
    known = [name for magic, name in _MAGIC if head.startswith(magic)]
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        known.append("WebP")
    if known:
        return (
            f"the file starts like a {known[0]} image but its header is damaged or truncated "
            "(cut off while copying?) — re-export or re-copy it"
        )
    return (
        "not an image, or in a format labeltool cannot read — re-save it as PNG or JPEG "
        f"(readable: {', '.join(config.IMAGE_EXTENSIONS)})"
    )


def _decode_reason(path: Path, exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.errno is not None:  # a real I/O error, not a Pillow decode error
        return _os_reason(path, exc)
    if isinstance(exc, EOFError) or "truncated" in str(exc).lower():
        return _TRUNCATED
    return f"image data is corrupt or incomplete ({exc}) — re-export or re-copy it"


def _os_reason(path: Path, exc: OSError) -> str:
    if isinstance(exc, FileNotFoundError | NotADirectoryError):
        if path.is_symlink():
            return "is a link whose target does not exist (broken symlink) — fix or remove the link"
        return "file not found — check the path, or re-copy the file if it was moved or deleted"
    if isinstance(exc, IsADirectoryError):
        return "is a folder, not an image file — rename it or move it out of the image folder"
    if isinstance(exc, PermissionError):
        return (
            "cannot be read: permission denied — check the file's permissions or copy it somewhere readable"
        )
    return f"cannot be read ({exc.strerror or exc}) — check that the disk or network share is available"


def _orientation(img: Image.Image) -> int:
    """EXIF orientation 1..8 from the header (1 when absent/invalid), without decoding pixels."""
    if img.format == "PNG" and "exif" not in img.info:
        return 1  # PngImageFile.getexif() would decode the whole image to look for a trailing eXIf
    try:
        value = img.getexif().get(_ORIENTATION_TAG, 1)
    except _DECODE_ERRORS:  # damaged EXIF block: the pixels are still usable
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _info(img: Image.Image) -> ImageInfo:
    orientation = _orientation(img)
    width, height = img.size
    if orientation >= 5:
        width, height = height, width
    return ImageInfo(
        width=width, height=height, format=img.format or "", mode=img.mode, orientation=orientation
    )


def _draft_for(img: Image.Image, max_side: int) -> None:
    """Ask libjpeg for the smallest DCT scale (1/2..1/8) still >= max_side on the longest side."""
    width, height = img.size
    scale = max_side / max(width, height)
    if scale < 1:
        img.draft("RGB", (max(1, math.ceil(width * scale)), max(1, math.ceil(height * scale))))


def _over_white(rgba: Image.Image) -> Image.Image:
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


@cache
def _srgb_profile() -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def _cmyk_to_rgb(img: Image.Image) -> Image.Image:
    icc = img.info.get("icc_profile")
    if icc and ImageCms is not None:
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            converted = ImageCms.profileToProfile(img, source, _srgb_profile(), outputMode="RGB")
        except (ImageCms.PyCMSError, OSError, ValueError):
            converted = None  # unusable profile: fall back to the plain conversion
        if converted is not None and converted.mode == "RGB":
            return converted
    return img.convert("RGB")


def _bit_depth(peak: float) -> int:
    for bits in _SENSOR_BIT_DEPTHS:
        if peak <= 2**bits - 1:
            return bits
    return max(_SENSOR_BIT_DEPTHS[-1] + 1, int(math.ceil(peak)).bit_length())


def _scale_to_rgb8(img: Image.Image) -> Image.Image:
    """Integer/float grey (uint16/int32/float32[H, W]) -> uint8 RGB by the bit-depth rule of to_rgb8."""
    values = np.asarray(img)
    if img.mode == "F":
        values = np.nan_to_num(values.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    peak = float(values.max()) if values.size else 0.0
    if img.mode == "F" and peak <= 1.0:
        out = np.clip(np.rint(values * 255.0), 0, 255).astype(np.uint8)
    elif values.dtype.kind in "iu" and peak <= 65535:
        bits = _bit_depth(peak)
        lut = np.clip(np.rint(np.arange(65536) * (255.0 / (2**bits - 1))), 0, 255).astype(np.uint8)
        out = lut[np.clip(values, 0, 65535)]  # uint8[H, W]; the LUT avoids a float copy of the image
    else:
        bits = _bit_depth(peak)
        scaled = values.astype(np.float32) * np.float32(255.0 / (2**bits - 1))
        out = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    return Image.fromarray(np.ascontiguousarray(out)).convert("RGB")
