"""Contact sheets: a grid of images with their boxes drawn, written as PNG (for previewing augment sets)."""

from __future__ import annotations

import math
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from .images import load_image

TILE_PX = 224  # longest side of one image on the sheet
CAPTION_PX = 14  # height of the caption strip under each image
COLUMNS = 6
PAGE_TILES = 48  # images per sheet (8 rows of 6)
BACKGROUND = (32, 32, 32)
CAPTION_COLOR = (230, 230, 230)


@dataclass(frozen=True, slots=True)
class Tile:
    """One image of a sheet: ``boxes`` are ``(label, '#rrggbb', (x1, y1, x2, y2))`` in the image's pixels."""

    path: Path
    caption: str = ""
    boxes: Sequence[tuple[str, str, tuple[float, float, float, float]]] = field(default_factory=tuple)


def _hex(color: str) -> tuple[int, int, int]:
    try:
        return int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16)
    except ValueError:
        return 255, 0, 0


def render_sheet(tiles: Sequence[Tile], *, columns: int = COLUMNS, tile_px: int = TILE_PX) -> Image.Image:
    """The tiles as one RGB image: ``columns`` per row, each scaled to fit ``tile_px``, boxes in their colour."""
    if not tiles:
        raise ValueError("a contact sheet needs at least one image")
    if columns < 1 or tile_px < 16:
        raise ValueError(f"columns must be >= 1 and tile_px >= 16, got {columns}, {tile_px}")
    font = ImageFont.load_default()
    cols = min(columns, len(tiles))
    rows = math.ceil(len(tiles) / cols)
    cell_w, cell_h = tile_px + 4, tile_px + CAPTION_PX + 4
    sheet = Image.new("RGB", (cols * cell_w, rows * cell_h), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    for i, tile in enumerate(tiles):
        img = load_image(tile.path)
        scale = tile_px / max(img.size)
        size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
        x0, y0 = (i % cols) * cell_w + 2, (i // cols) * cell_h + 2
        sheet.paste(img.resize(size, Image.Resampling.BILINEAR), (x0, y0))
        for label, color, (bx1, by1, bx2, by2) in tile.boxes:
            rgb = _hex(color)
            rect = (x0 + bx1 * scale, y0 + by1 * scale, x0 + bx2 * scale - 1, y0 + by2 * scale - 1)
            draw.rectangle(rect, outline=rgb, width=2 if tile_px >= 128 else 1)
            draw.text((rect[0] + 2, max(y0, rect[1] - 11)), label, fill=rgb, font=font)
        draw.text((x0, y0 + tile_px + 1), tile.caption[:40], fill=CAPTION_COLOR, font=font)
    return sheet


def write_contact_sheets(tiles: Sequence[Tile], out_dir: Path, *, stem: str, page_tiles: int = PAGE_TILES,
                         columns: int = COLUMNS, tile_px: int = TILE_PX) -> list[Path]:
    """Write ``<stem>.png`` (or ``<stem>-01.png``, ``-02`` … for more than ``page_tiles`` images) into
    ``out_dir`` (created if needed), each atomically; returns the paths."""
    if page_tiles < 1:
        raise ValueError(f"page_tiles must be >= 1, got {page_tiles}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pages = [tiles[i:i + page_tiles] for i in range(0, len(tiles), page_tiles)]
    written = []
    for n, page in enumerate(pages, start=1):
        path = out_dir / (f"{stem}.png" if len(pages) == 1 else f"{stem}-{n:02d}.png")
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            render_sheet(page, columns=columns, tile_px=tile_px).save(tmp, format="PNG")
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        written.append(path)
    return written
