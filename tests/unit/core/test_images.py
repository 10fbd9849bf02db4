"""Tests of labeltool.core.images. Every image is generated in tmp_path."""

from __future__ import annotations

import hashlib
import os
import re
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageFile, JpegImagePlugin

from labeltool.core import config
from labeltool.core.errors import ImageLoadError
from labeltool.core.images import (
    ImageInfo,
    file_sha256,
    iter_image_files,
    load_image,
    probe_image,
    thumbnail,
    to_rgb8,
    verify_image,
)

RED = (255, 0, 0)
BLUE = (0, 0, 255)


def _pixels(img: Image.Image) -> np.ndarray:
    """uint8[H, W, 3] of an RGB image."""
    assert img.mode == "RGB"
    return np.asarray(img)


def _close(actual: np.ndarray | tuple[int, ...], expected: tuple[int, ...], tol: int = 12) -> bool:
    return bool(np.all(np.abs(np.asarray(actual, dtype=int) - np.asarray(expected, dtype=int)) <= tol))


def _marked_image(width: int = 120, height: int = 80) -> Image.Image:
    """Blue image with a red 30x20 block in the stored top-left corner."""
    img = Image.new("RGB", (width, height), BLUE)
    img.paste(RED, (0, 0, 30, 20))
    return img


def _save_with_orientation(img: Image.Image, path: Path, orientation: int) -> Path:
    exif = Image.Exif()
    exif[0x0112] = orientation
    img.save(path, quality=95, exif=exif)
    return path


def _noise_file(path: Path, fmt: str, size: tuple[int, int] = (256, 192)) -> Path:
    rng = np.random.default_rng(0)  # noise compresses badly, so half the file is deep inside the pixel data
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path, fmt)
    return path


def _cut_in_half(path: Path) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


# --- EXIF orientation -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("orientation", "corner"),
    [(1, "top-left"), (3, "bottom-right"), (6, "top-right"), (8, "bottom-left")],
)
def test_exif_orientation_rotates_pixels_and_probe_reports_displayed_size(
    tmp_path: Path, orientation: int, corner: str
) -> None:
    path = _save_with_orientation(_marked_image(120, 80), tmp_path / "o.jpg", orientation)
    swapped = orientation >= 5
    expected_size = (80, 120) if swapped else (120, 80)

    info = probe_image(path)
    assert info == ImageInfo(*expected_size, format="JPEG", mode="RGB", orientation=orientation)

    img = load_image(path)
    assert img.size == expected_size
    px = _pixels(img)
    h, w = px.shape[:2]
    corners = {
        "top-left": px[3, 3],
        "top-right": px[3, w - 4],
        "bottom-left": px[h - 4, 3],
        "bottom-right": px[h - 4, w - 4],
    }
    for name, value in corners.items():
        assert _close(value, RED if name == corner else BLUE), (name, value)


def test_orientation_is_applied_to_reduced_loads_too(tmp_path: Path) -> None:
    path = _save_with_orientation(_marked_image(400, 200), tmp_path / "o.jpg", 6)
    img = load_image(path, max_side=100)
    assert img.size == (50, 100)
    assert _close(_pixels(img)[2, 47], RED)  # stored top-left -> displayed top-right


def test_probe_does_not_decode_pixels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _save_with_orientation(_marked_image(), tmp_path / "o.jpg", 6)
    png = tmp_path / "p.png"
    _marked_image().save(png)

    def no_decode(self: ImageFile.ImageFile) -> None:
        raise AssertionError("pixel data decoded during probe")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decode)
    assert probe_image(path).orientation == 6
    assert probe_image(png).width == 120
    with pytest.raises(AssertionError):
        load_image(path)


# --- mode conversions -----------------------------------------------------------------------------


def test_grayscale_L_is_replicated_to_equal_rgb_channels(tmp_path: Path) -> None:
    gray = np.tile(np.arange(256, dtype=np.uint8), (4, 1))  # uint8[4, 256]
    path = tmp_path / "g.png"
    Image.fromarray(gray).save(path)
    assert probe_image(path).mode == "L"
    px = _pixels(load_image(path))
    for channel in range(3):
        np.testing.assert_array_equal(px[:, :, channel], gray)


def test_bilevel_1_maps_to_black_and_white(tmp_path: Path) -> None:
    img = Image.new("1", (8, 8), 0)
    img.putpixel((2, 3), 1)
    path = tmp_path / "b.png"
    img.save(path)
    assert probe_image(path).mode == "1"
    px = _pixels(load_image(path))
    assert tuple(px[3, 2]) == (255, 255, 255)
    assert tuple(px[0, 0]) == (0, 0, 0)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([0, 32768, 65535], [0, 128, 255]),  # full 16-bit range
        ([0, 2048, 4095], [0, 128, 255]),  # 12-bit camera data in a 16-bit container
        ([0, 512, 1023], [0, 128, 255]),  # 10-bit
        ([0, 100, 255], [0, 100, 255]),  # 8-bit values in a 16-bit container stay as they are
        ([0, 1000, 5000], [0, 16, 78]),  # max 5000 needs 14 bits: v * 255 / 16383
    ],
)
def test_16bit_png_is_scaled_by_smallest_holding_bit_depth(
    tmp_path: Path, values: list[int], expected: list[int]
) -> None:
    path = tmp_path / "g16.png"
    Image.fromarray(np.array([values], dtype=np.uint16)).save(path)
    assert probe_image(path).mode in ("I;16", "I")
    px = _pixels(load_image(path))
    np.testing.assert_array_equal(px[0, :, 0], expected)
    np.testing.assert_array_equal(px[0, :, 1], px[0, :, 2])


def test_16bit_big_endian_and_32bit_int_modes_follow_the_same_rule() -> None:
    big = Image.new("I;16B", (3, 1))
    for x, v in enumerate([0, 2048, 4095]):
        big.putpixel((x, 0), v)
    np.testing.assert_array_equal(_pixels(to_rgb8(big))[0, :, 0], [0, 128, 255])

    as_int = Image.fromarray(np.array([[-5, 2048, 4095]], dtype=np.int32))
    assert as_int.mode == "I"
    np.testing.assert_array_equal(_pixels(to_rgb8(as_int))[0, :, 0], [0, 128, 255])

    wide = Image.fromarray(np.array([[0, 1 << 19, (1 << 20) - 1]], dtype=np.int32))
    np.testing.assert_array_equal(_pixels(to_rgb8(wide))[0, :, 0], [0, 128, 255])


def test_float_F_is_read_as_0_to_1_or_like_integers() -> None:
    unit = Image.fromarray(np.array([[0.0, 0.5, 1.0, np.nan, -1.0]], dtype=np.float32))
    assert unit.mode == "F"
    np.testing.assert_array_equal(_pixels(to_rgb8(unit))[0, :, 0], [0, 128, 255, 0, 0])
    counts = Image.fromarray(np.array([[0.0, 2048.0, 4095.0]], dtype=np.float32))
    np.testing.assert_array_equal(_pixels(to_rgb8(counts))[0, :, 0], [0, 128, 255])


def test_palette_png_transparency_becomes_white(tmp_path: Path) -> None:
    img = Image.new("P", (4, 1))
    img.putpalette([0, 0, 0, 255, 0, 0, 0, 0, 255] + [0] * (256 * 3 - 9))
    img.putdata([0, 1, 2, 0])
    path = tmp_path / "p.png"
    img.save(path, transparency=0)  # index 0 (black) is fully transparent
    assert probe_image(path).mode == "P"
    px = _pixels(load_image(path))
    assert [tuple(p) for p in px[0]] == [(255, 255, 255), RED, BLUE, (255, 255, 255)]


def test_rgba_is_composited_over_white(tmp_path: Path) -> None:
    img = Image.new("RGBA", (3, 1))
    img.putdata([(255, 0, 0, 128), (0, 0, 0, 0), (0, 255, 0, 255)])
    path = tmp_path / "a.png"
    img.save(path)
    assert probe_image(path).mode == "RGBA"
    px = _pixels(load_image(path))
    assert _close(px[0, 0], (255, 127, 127), tol=1)
    assert tuple(px[0, 1]) == (255, 255, 255)  # transparent black -> white, not black
    assert tuple(px[0, 2]) == (0, 255, 0)


@pytest.mark.parametrize(("mode", "key"), [("L", 0), ("RGB", (0, 0, 0))])
def test_transparency_colour_key_is_composited_over_white(tmp_path: Path, mode: str, key: object) -> None:
    img = Image.new(mode, (2, 1), 0)
    img.putpixel((1, 0), 200 if mode == "L" else (200, 200, 200))
    path = tmp_path / "k.png"
    img.save(path, transparency=key)  # tRNS chunk: pure black is transparent
    px = _pixels(load_image(path))
    assert [tuple(p) for p in px[0]] == [(255, 255, 255), (200, 200, 200)]


@pytest.mark.parametrize(
    ("mode", "transparent", "opaque_grey"),
    [
        ("LA", (0, 0), (60, 255)),
        ("La", (0, 0), (60, 255)),
        ("RGBa", (0, 0, 0, 0), (60, 60, 60, 255)),
        ("PA", None, None),
    ],
)
def test_other_alpha_modes_are_composited_over_white(
    mode: str, transparent: tuple[int, ...] | None, opaque_grey: tuple[int, ...] | None
) -> None:
    if mode == "PA":
        img = Image.new("RGBA", (2, 2), (0, 0, 0, 0)).convert("PA")
    else:
        img = Image.new(mode, (2, 2), transparent)
    assert img.mode == mode
    assert tuple(_pixels(to_rgb8(img))[0, 0]) == (255, 255, 255)
    if opaque_grey is not None:
        assert tuple(_pixels(to_rgb8(Image.new(mode, (2, 2), opaque_grey)))[0, 0]) == (60, 60, 60)


def test_cmyk_jpeg_loads_as_rgb(tmp_path: Path) -> None:
    path = tmp_path / "c.jpg"
    Image.new("CMYK", (32, 32), (0, 255, 255, 0)).save(path, quality=95)  # full magenta + yellow = red
    assert probe_image(path).mode == "CMYK"
    img = load_image(path)
    assert _close(_pixels(img)[16, 16], RED)


def test_cmyk_with_unusable_icc_profile_falls_back_to_plain_conversion() -> None:
    img = Image.new("CMYK", (4, 4), (0, 255, 255, 0))
    img.info["icc_profile"] = b"not an icc profile"
    assert tuple(_pixels(to_rgb8(img))[0, 0]) == RED


def test_lab_ycbcr_and_hsv_convert_to_rgb() -> None:
    lab_grey = to_rgb8(Image.new("LAB", (2, 2), (128, 128, 128)))  # L* = 50, a = b = 0
    r, g, b = _pixels(lab_grey)[0, 0]
    assert abs(int(r) - int(g)) <= 2 and abs(int(g) - int(b)) <= 2 and 100 < r < 140
    assert _close(_pixels(to_rgb8(Image.new("LAB", (2, 2), (255, 128, 128))))[0, 0], (255, 255, 255), 3)
    assert tuple(_pixels(to_rgb8(Image.new("HSV", (2, 2), (0, 255, 255))))[0, 0]) == RED
    assert _close(_pixels(to_rgb8(Image.new("YCbCr", (2, 2), (128, 128, 128))))[0, 0], (128, 128, 128), 1)


def test_rgb_is_returned_unchanged_and_non_images_are_refused() -> None:
    img = Image.new("RGB", (2, 2), RED)
    assert to_rgb8(img) is img
    with pytest.raises(TypeError, match="ndarray"):
        to_rgb8(np.zeros((2, 2, 3), dtype=np.uint8))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("suffix", "fmt", "options"),
    [
        (".tif", "TIFF", {"compression": "tiff_lzw"}),
        (".tiff", "TIFF", {}),
        (".bmp", "BMP", {}),
        (".webp", "WEBP", {"lossless": True}),
        (".png", "PNG", {}),
    ],
)
def test_lossless_formats_round_trip_exactly(tmp_path: Path, suffix: str, fmt: str, options: dict) -> None:
    rng = np.random.default_rng(1)
    arr = rng.integers(0, 256, (24, 40, 3), dtype=np.uint8)
    path = tmp_path / f"x{suffix}"
    Image.fromarray(arr).save(path, fmt, **options)
    assert probe_image(path) == ImageInfo(40, 24, format=fmt, mode="RGB", orientation=1)
    assert verify_image(path) == probe_image(path)
    np.testing.assert_array_equal(_pixels(load_image(path)), arr)


def test_16bit_tiff_is_scaled(tmp_path: Path) -> None:
    path = tmp_path / "g16.tif"
    Image.fromarray(np.array([[0, 2048, 4095]], dtype=np.uint16)).save(path)
    info = probe_image(path)
    assert (info.format, info.mode) == ("TIFF", "I;16")
    np.testing.assert_array_equal(_pixels(load_image(path))[0, :, 0], [0, 128, 255])


# --- bad files ------------------------------------------------------------------------------------


def _reason(call: Callable[[Path], object], path: Path) -> str:
    """The ImageLoadError reason ``call(path)`` raises (checked to name the file)."""
    with pytest.raises(ImageLoadError) as excinfo:
        call(path)
    assert excinfo.value.path == str(path)
    assert str(excinfo.value).startswith(f"{path}: ")
    return excinfo.value.reason


@pytest.mark.parametrize(("name", "fmt"), [("t.jpg", "JPEG"), ("t.png", "PNG")])
def test_truncated_file_passes_probe_but_fails_verify_and_load(tmp_path: Path, name: str, fmt: str) -> None:
    path = _cut_in_half(_noise_file(tmp_path / name, fmt))
    assert probe_image(path).width == 256  # the header is intact
    for call in (verify_image, load_image, thumbnail):
        reason = _reason(call, path)
        assert "truncated" in reason and "re-copy" in reason


def test_file_cut_inside_its_header_is_reported_as_truncated(tmp_path: Path) -> None:
    path = _noise_file(tmp_path / "h.jpg", "JPEG")
    path.write_bytes(path.read_bytes()[:20])
    assert re.search("starts like a JPEG image .* truncated", _reason(probe_image, path))


def test_corrupt_png_data_is_reported(tmp_path: Path) -> None:
    path = _noise_file(tmp_path / "c.png", "PNG")
    data = bytearray(path.read_bytes())
    data[300:600] = bytes(b ^ 0x55 for b in data[300:600])  # scramble compressed pixel data
    path.write_bytes(bytes(data))
    assert probe_image(path).width == 256
    assert "corrupt" in _reason(verify_image, path)


def test_zero_byte_file(tmp_path: Path) -> None:
    path = tmp_path / "zero.png"
    path.touch()
    for call in (probe_image, verify_image, load_image):
        assert "empty (0 bytes" in _reason(call, path)


def test_text_file_named_jpg_is_not_an_image(tmp_path: Path) -> None:
    path = tmp_path / "notes.jpg"
    path.write_text("these are not pixels\n" * 10)
    for call in (probe_image, load_image):
        reason = _reason(call, path)
        assert "not an image" in reason and "PNG or JPEG" in reason


def test_directory_named_like_an_image(tmp_path: Path) -> None:
    path = tmp_path / "x.jpg"
    path.mkdir()
    for call in (probe_image, load_image, file_sha256):
        assert "is a folder" in _reason(call, path)


def test_broken_symlink(tmp_path: Path) -> None:
    path = tmp_path / "link.png"
    try:
        path.symlink_to(tmp_path / "gone.png")
    except OSError:
        pytest.skip("this platform/user cannot create symlinks")
    for call in (probe_image, verify_image, file_sha256):
        assert "broken symlink" in _reason(call, path)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.png"
    for call in (probe_image, load_image, file_sha256):
        assert "not found" in _reason(call, path)


def test_permission_denied(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "secret.png"
    _marked_image().save(path)

    def denied(self: Path, *args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "open", denied)  # chmod 000 does not stop root, which tests may run as
    for call in (probe_image, load_image, file_sha256):
        assert "permission denied" in _reason(call, path)


def test_image_above_configured_pixel_limit_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "big.png"
    Image.new("RGB", (20, 10)).save(path)
    monkeypatch.setattr(config, "MAX_IMAGE_PIXELS", 199)
    for call in (probe_image, verify_image, load_image):
        assert "too large: 20 x 10" in _reason(call, path)
    monkeypatch.setattr(config, "MAX_IMAGE_PIXELS", 200)
    assert probe_image(path).width == 20


@pytest.mark.parametrize("side", [12, 15])  # 144 px: Pillow only warns; 225 px: Pillow raises
def test_pillow_decompression_bomb_warning_and_error_become_image_load_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, side: int
) -> None:
    path = tmp_path / "bomb.png"
    Image.new("L", (side, side)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # the module, not this filter, must turn the warning into an error
        assert "too large" in _reason(load_image, path)
    assert not [w for w in caught if issubclass(w.category, Image.DecompressionBombWarning)]


def test_module_sets_pillow_limit_and_keeps_truncation_detection() -> None:
    assert Image.MAX_IMAGE_PIXELS == config.MAX_IMAGE_PIXELS
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to count open files")
def test_files_are_closed_after_every_call(tmp_path: Path) -> None:
    good = _save_with_orientation(_marked_image(), tmp_path / "o.jpg", 6)
    bad = _cut_in_half(_noise_file(tmp_path / "t.png", "PNG"))
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(5):
        probe_image(good)
        verify_image(good)
        load_image(good, max_side=32)
        file_sha256(good)
        with pytest.raises(ImageLoadError):
            load_image(bad)
    assert len(os.listdir("/proc/self/fd")) == before


# --- sizes ----------------------------------------------------------------------------------------


def test_max_side_bounds_the_longest_side_and_never_enlarges(tmp_path: Path) -> None:
    path = tmp_path / "wide.png"
    _marked_image(300, 200).save(path)
    assert load_image(path, max_side=100).size == (100, 67)
    assert load_image(path, max_side=1000).size == (300, 200)
    assert thumbnail(path).size == (256, 171)
    assert thumbnail(path, max_side=30).size == (30, 20)


@pytest.mark.parametrize(
    ("bad", "error"), [(0, ValueError), (-3, ValueError), (2.5, TypeError), (True, TypeError)]
)
def test_invalid_max_side_is_refused(tmp_path: Path, bad: object, error: type[Exception]) -> None:
    path = tmp_path / "x.png"
    _marked_image().save(path)
    with pytest.raises(error, match="max_side"):
        load_image(path, max_side=bad)  # type: ignore[arg-type]


def _record_jpeg_decode_sizes(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """Make every JPEG decode record the size it decodes at (after any draft)."""
    sizes: list[tuple[int, int]] = []
    original = JpegImagePlugin.JpegImageFile.load

    def spy(self: JpegImagePlugin.JpegImageFile) -> object:
        if self.tile:  # not yet decoded
            sizes.append(self.size)
        return original(self)

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "load", spy)
    return sizes


@pytest.mark.parametrize("fmt", ["JPEG", "MPO"])  # MPO: multi-picture JPEG written by some cameras
def test_reduced_jpeg_load_decodes_at_reduced_scale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    path = tmp_path / "m.jpg"
    extra = {"save_all": True, "append_images": [_marked_image(1600, 1200)]} if fmt == "MPO" else {}
    _marked_image(1600, 1200).save(path, fmt, quality=90, **extra)
    assert probe_image(path).format == fmt
    sizes = _record_jpeg_decode_sizes(monkeypatch)
    img = load_image(path, max_side=100)
    assert img.size == (100, 75)
    assert sizes == [(200, 150)]  # 1/8 scale, then resized to 100 px
    sizes.clear()
    load_image(path)
    assert sizes == [(1600, 1200)]


@pytest.mark.slow
def test_50_megapixel_jpeg_thumbnail_is_decoded_reduced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    width, height = 8660, 5774
    img = Image.new("RGB", (width, height), BLUE)
    img.paste(RED, (0, 0, width // 4, height // 4))
    path = tmp_path / "huge.jpg"
    img.save(path, quality=80)
    del img
    sizes = _record_jpeg_decode_sizes(monkeypatch)

    thumb = thumbnail(path)
    assert max(thumb.size) <= 256 and max(thumb.size) == 256
    assert abs(thumb.size[0] / thumb.size[1] - width / height) < 0.02
    assert len(sizes) == 1 and sizes[0][0] <= width // 4 and sizes[0][1] <= height // 4
    px = _pixels(thumb)
    assert _close(px[5, 5], RED) and _close(px[-5, -5], BLUE)

    sizes.clear()
    assert verify_image(path) == ImageInfo(width, height, format="JPEG", mode="RGB", orientation=1)
    assert len(sizes) == 1 and sizes[0][0] <= width // 4


# --- listing and hashing --------------------------------------------------------------------------


def test_iter_image_files_filters_sorts_and_skips_hidden(tmp_path: Path) -> None:
    files = [
        "b.PNG",
        "A.jpg",
        "c.txt",
        "d.jpeg",
        "e.Tif",
        "f.tiff",
        "g.bmp",
        "h.webp",
        "i.gif",
        "noext",
        ".hidden.jpg",
        ".git/x.jpg",
        "sub/Z.JPG",
        "sub/a.png",
        "sub/.cache/y.png",
        "dir.jpg/inner.png",
    ]
    for name in files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    try:  # a symlinked folder is not followed (no duplicates, no cycles)
        (tmp_path / "link").symlink_to(tmp_path / "sub", target_is_directory=True)
    except OSError:
        pass
    found = iter_image_files(tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in found] == [
        "A.jpg",
        "b.PNG",
        "d.jpeg",
        "dir.jpg/inner.png",
        "e.Tif",
        "f.tiff",
        "g.bmp",
        "h.webp",
        "sub/a.png",
        "sub/Z.JPG",
    ]
    assert all(p.is_absolute() for p in found)


def test_iter_image_files_refuses_a_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not an existing folder"):
        iter_image_files(tmp_path / "missing")
    (tmp_path / "f.png").write_bytes(b"x")
    with pytest.raises(ValueError, match="f.png"):
        iter_image_files(tmp_path / "f.png")


def test_file_sha256_matches_hashlib_and_reads_in_configured_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "blob.bin"
    data = np.random.default_rng(2).integers(0, 256, 10_000, dtype=np.uint8).tobytes()
    path.write_bytes(data)
    expected = hashlib.sha256(data).hexdigest()
    assert file_sha256(path) == expected

    reads: list[int] = []
    real_open = Path.open

    def spying_open(self: Path, *args: Any, **kwargs: Any) -> Any:
        fp = real_open(self, *args, **kwargs)
        real_read = fp.read

        def read(size: int = -1) -> bytes:
            reads.append(size)
            return real_read(size)

        fp.read = read
        return fp

    monkeypatch.setattr(Path, "open", spying_open)
    monkeypatch.setattr(config, "HASH_CHUNK_BYTES", 7)
    assert file_sha256(path) == expected
    assert set(reads) == {7} and len(reads) == -(-10_000 // 7) + 1  # every chunk, then the empty read
    path.write_bytes(data[:-1])
    assert file_sha256(path) != expected
