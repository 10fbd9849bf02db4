"""The analysis report: one self-contained HTML page (plus the same data as JSON) per analysis.

The page needs no other file and no JavaScript: thumbnails are base64 PNG data URIs inside inline
SVG (boxes drawn over them as vectors), charts are inline SVG, and every text is HTML-escaped.
Drawing rules on a thumbnail: the current label is a solid box in its class colour, the suggestion
is dashed (the box to add, the outline to snap to), a box to delete is crossed out; the image's
other boxes are drawn thin, for context.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

from .errors import ExportError, ImageLoadError, ProjectError
from .images import load_image
from .issue_order import analysis_headroom, issue_impacts
from .issue_types import issue_types, title
from .issues import get_analysis, issue_counts, latest_analysis, list_issues
from .model import Issue
from .store import Project

REPORT_SCHEMA_VERSION = 1  # bump when the JSON layout changes
STATUS_TEXT = {"open": "to review", "accepted": "accepted", "rejected": "rejected",
               "superseded": "replaced by a newer analysis"}
QUICK_NOTE = (
    "Quick mode is less reliable: the model that judged the labels was trained on these same images, "
    "so it tends to agree with the current labels and misses errors. Run a full (K-fold) analysis "
    "before relying on this list."
)
WEAK_CLASS_KEYS = {"class": "", "boxes": 0, "images": 0, "ap50": None, "label_quality": None,
                   "confused_with": None, "confusion_share": 0.0, "recommendation": "", "reason": ""}
_MIN_DRAWN_PX = 6.0  # tiny defects are drawn at least this big on the thumbnail, so they can be seen


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


# -- data -------------------------------------------------------------------------------------------
def _class_names(project: Project, snapshot_id: int) -> dict[int, str]:
    """Class names now, falling back to the analysed snapshot's for classes deleted since."""
    rows = project.connection.execute(
        "SELECT class_id, name FROM snapshot_classes WHERE snapshot_id = ?", (snapshot_id,)
    ).fetchall()
    return {**dict(rows), **{c.id: c.name for c in project.classes()}}


def _name(names: dict[int, str], class_id: int | None) -> str | None:
    return None if class_id is None else names.get(class_id, f"class {class_id}")


def fix_text(issue: Issue, names: dict[int, str]) -> str:
    """The suggested fix in words: "add a 'dent' box", "change 'scratch' to 'crack'", ..."""
    action = issue.fix["action"]
    if action == "add_box":
        name = _name(names, issue.fix["class_id"]) or ""
        return f"add {'an' if name[:1].lower() in 'aeiou' else 'a'} '{name}' box"
    if action == "set_class":
        return f"change '{_name(names, issue.class_id)}' to '{_name(names, issue.fix['class_id'])}'"
    return "snap the box" if action == "move_box" else "delete the box"


def _issue_data(issue: Issue, names: dict[int, str], paths: dict[int, str], boxes: dict[int, list[float]],
                impact: float) -> dict:
    fix: dict[str, Any] = {"action": issue.fix["action"]}
    for key in ("box_id", "class_id", "xyxy"):
        if key in issue.fix:
            fix[key] = issue.fix[key]
    if "class_id" in fix:
        fix["class"] = _name(names, fix["class_id"])
    return {
        "id": issue.id, "type": issue.type, "title": title(issue.type), "score": round(issue.score, 4),
        "impact": round(impact, 4), "status": issue.status, "image_id": issue.image_id, "image": paths.get(issue.image_id),
        "class_id": issue.class_id, "class": _name(names, issue.class_id), "box_id": issue.box_id,
        "box_xyxy": boxes.get(issue.box_id) if issue.box_id is not None else None,
        "fix": fix, "fix_text": fix_text(issue, names),
    }


def analysis_report_data(project: Project, analysis_id: int | None = None, *, max_issues: int = 200) -> dict:
    """The report's content as JSON-ready data (also what ``write_report`` saves as ``.json``).

    Keys: schema_version, project, analysis (mode, folds, created_at, thresholds, note — the
    quick-mode warning or None), counts ({by_type: {type: {status: n}}, open, total}), weak_classes
    (rows of ``summary["weak_classes"]``, see WEAK_CLASS_KEYS), summary (the rest of the summary),
    issues_open, and issues: the ``max_issues`` open issues most likely to be errors, each with
    image path, class name, current box xyxy (None for 'overlooked' or a deleted box), impact (the
    expected model gain of the fix, ``issue_order.issue_impacts``) and the fix with class names resolved. ProjectError when the project has no analysis yet.
    """
    if isinstance(max_issues, bool) or not isinstance(max_issues, int) or max_issues < 0:
        raise ValueError(f"max_issues must be an int >= 0, got {max_issues!r}")
    analysis = latest_analysis(project) if analysis_id is None else get_analysis(project, analysis_id)
    if analysis is None:
        raise ProjectError(f"{project.root} has no label analysis yet; run `labeltool analyze` first")
    names = _class_names(project, analysis.snapshot_id)
    counts = issue_counts(project, analysis_id=analysis.id)
    open_issues = list_issues(project, analysis_id=analysis.id)
    shown = open_issues[:max_issues]
    gain = issue_impacts(analysis_headroom(project, analysis), shown)
    conn = project.connection
    paths = dict(conn.execute("SELECT id, path FROM images").fetchall())
    box_ids = [i.box_id for i in shown if i.box_id is not None]
    boxes = {
        r[0]: list(r[1:])
        for r in conn.execute(
            f"SELECT id, x1, y1, x2, y2 FROM boxes WHERE id IN ({', '.join('?' * len(box_ids))})", box_ids
        )
    }
    cfg = analysis.config
    thresholds = cfg["thresholds"] if isinstance(cfg.get("thresholds"), dict) else {
        k: v for k, v in cfg.items() if v is None or isinstance(v, int | float | str | bool)
    }
    weak = [{**WEAK_CLASS_KEYS, **row} for row in analysis.summary.get("weak_classes", []) if isinstance(row, dict)]
    return {
        "schema_version": REPORT_SCHEMA_VERSION,
        "project": {"name": project.root.name, "path": str(project.root)},
        "analysis": {
            "id": analysis.id, "created_at": analysis.created_at, "mode": analysis.mode, "folds": analysis.folds,
            "snapshot_id": analysis.snapshot_id, "run_id": analysis.run_id, "thresholds": thresholds,
            "note": QUICK_NOTE if analysis.mode == "quick" else None,
        },
        "counts": {"by_type": counts, "open": sum(c["open"] for c in counts.values()),
                   "total": sum(sum(c.values()) for c in counts.values())},
        "weak_classes": weak,
        "summary": {k: v for k, v in analysis.summary.items() if k != "weak_classes"},
        "issues_open": len(open_issues),
        "issues": [_issue_data(i, names, paths, boxes, gain[i.id]) for i in shown],
    }


# -- drawing ----------------------------------------------------------------------------------------
def _num(value: Any, fmt: str = "{:.2f}") -> str:
    return "–" if value is None else fmt.format(value) if isinstance(value, float) else str(value)


def _scaled(xyxy: list[float], sx: float, sy: float) -> tuple[float, float, float, float]:
    x1, y1, x2, y2 = xyxy[0] * sx, xyxy[1] * sy, xyxy[2] * sx, xyxy[3] * sy
    if x2 - x1 < _MIN_DRAWN_PX:
        x1, x2 = (x1 + x2 - _MIN_DRAWN_PX) / 2, (x1 + x2 + _MIN_DRAWN_PX) / 2
    if y2 - y1 < _MIN_DRAWN_PX:
        y1, y2 = (y1 + y2 - _MIN_DRAWN_PX) / 2, (y1 + y2 + _MIN_DRAWN_PX) / 2
    return x1, y1, x2, y2


def _shape(tag: str, geometry: str, color: str, *, dashed: bool = False, width: float = 2, halo: bool = True) -> str:
    """An SVG outline with a dark halo underneath, so it shows on light and dark parts alike."""
    dash = ' stroke-dasharray="5 3"' if dashed else ""
    under = f'<{tag} {geometry} fill="none" stroke="#000" stroke-opacity=".6" stroke-width="{width + 2}"{dash}/>'
    return (under if halo else "") + f'<{tag} {geometry} fill="none" stroke="{esc(color)}" stroke-width="{width}"{dash}/>'


def _rect(b: tuple[float, ...], color: str, **kw: Any) -> str:
    geometry = f'x="{b[0]:.1f}" y="{b[1]:.1f}" width="{b[2] - b[0]:.1f}" height="{b[3] - b[1]:.1f}"'
    return _shape("rect", geometry, color, **kw)


def _cross(b: tuple[float, ...], color: str) -> str:
    return "".join(
        _shape("line", f'x1="{xa:.1f}" y1="{b[1]:.1f}" x2="{xb:.1f}" y2="{b[3]:.1f}"', color, dashed=True)
        for xa, xb in ((b[0], b[2]), (b[2], b[0]))
    )


def _label(b: tuple[float, ...], text: str, w: int) -> str:
    y = b[1] - 4 if b[1] > 14 else b[3] + 13
    x, anchor = (b[2], "end") if b[0] > w / 2 else (b[0], "start")
    return (f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" class="lbl">{esc(text)}</text>')


def _thumbnail(project: Project, item: dict, image: Any, colors: dict[str, str], others: list[tuple],
               side: int, cache: dict[int, tuple[str, int, int]]) -> str:
    """Inline SVG: the image as a base64 PNG with the issue's boxes drawn over it."""
    if image is None:
        return '<div class="noimg">image no longer in the project</div>'
    if image.id not in cache:
        try:
            thumb = load_image(project.image_file(image), max_side=side)
        except ImageLoadError as exc:
            return f'<div class="noimg">image not available: {esc(exc.reason)}</div>'
        buf = io.BytesIO()
        thumb.save(buf, format="PNG")
        cache[image.id] = (base64.b64encode(buf.getvalue()).decode("ascii"), thumb.width, thumb.height)
    b64, w, h = cache[image.id]
    sx, sy = w / image.width, h / image.height
    parts = [f'<image href="data:image/png;base64,{b64}" width="{w}" height="{h}"/>']
    for box_id, class_name, *xyxy in others:  # context: the image's other boxes, thin
        if box_id != item["box_id"]:
            parts.append(_rect(_scaled(xyxy, sx, sy), colors.get(class_name, "#ffffff"), width=1, halo=False))
    fix, color = item["fix"], colors.get(item["class"] or "", "#ffffff")
    box = _scaled(item["box_xyxy"], sx, sy) if item["box_xyxy"] else None
    if box is not None:
        parts.append(_rect(box, color))
    if fix["action"] == "add_box":
        target = _scaled(fix["xyxy"], sx, sy)
        parts += [_rect(target, color, dashed=True), _label(target, f"+ {fix['class']}", w)]
    elif box is not None and fix["action"] == "set_class":
        outer = (box[0] - 3, box[1] - 3, box[2] + 3, box[3] + 3)
        parts += [_rect(outer, colors.get(fix["class"], "#ffffff"), dashed=True),
                  _label(outer, f"{item['class']} → {fix['class']}", w)]
    elif fix["action"] == "move_box":
        target = _scaled(fix["xyxy"], sx, sy)
        parts += [_rect(target, color, dashed=True), _label(target, item["class"] or "", w)]
    elif box is not None:
        parts += [_cross(box, color), _label(box, f"delete {item['class']}", w)]
    return (f'<svg class="thumb" xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
            f'viewBox="0 0 {w} {h}" role="img" aria-label="{esc(item["image"])}">{"".join(parts)}</svg>')


def _bar_chart(title: str, rows: list[tuple[str, float | None, str]]) -> str:
    """Horizontal bars for values in 0..1 (None: shown as "not measured")."""
    label_w, bar_w, row_h = 140, 240, 22
    width, height = label_w + bar_w + 60, 40 + row_h * max(len(rows), 1)
    parts = [f'<text x="0" y="14" class="ct">{esc(title)}</text>']
    for tick in (0.0, 0.5, 1.0):
        x = label_w + tick * bar_w
        parts.append(f'<line x1="{x}" y1="22" x2="{x}" y2="{height - 4}" stroke="#ccc"/>'
                     f'<text x="{x}" y="{height}" text-anchor="middle" class="tk">{tick:g}</text>')
    for k, (name, value, color) in enumerate(rows):
        y = 26 + k * row_h
        short = name if len(name) <= 20 else name[:19] + "…"
        parts.append(f'<text x="{label_w - 6}" y="{y + 13}" text-anchor="end">{esc(short)}</text>')
        if value is None:
            parts.append(f'<text x="{label_w + 4}" y="{y + 13}" class="na">not measured</text>')
            continue
        v = min(max(float(value), 0.0), 1.0)
        parts.append(f'<rect x="{label_w}" y="{y + 2}" width="{v * bar_w:.1f}" height="{row_h - 6}" '
                     f'fill="{esc(color)}"/><text x="{label_w + v * bar_w + 4:.1f}" y="{y + 13}">{v:.2f}</text>')
    return (f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + 4}" '
            f'role="img" aria-label="{esc(title)}">{"".join(parts)}</svg>')


# -- page -------------------------------------------------------------------------------------------
_CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px auto;max-width:1180px;
padding:0 16px;color:#1d1d1f}
h1{font-size:24px;margin-bottom:4px}h2{font-size:19px;margin-top:32px;border-bottom:1px solid #ddd}
.meta{color:#555}.warn{background:#fff3cd;border:2px solid #e0a800;padding:10px 14px;border-radius:6px;
font-weight:600}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ddd;padding:4px 8px;text-align:left;
vertical-align:top}th{background:#f3f3f3}td.n{text-align:right}.rec{font-weight:600}.small{color:#555;font-size:13px}
.sw{display:inline-block;width:11px;height:11px;border-radius:2px;margin-right:5px;vertical-align:-1px}
.charts{display:flex;flex-wrap:wrap;gap:24px}.chart text{font-size:12px}.chart .ct{font-weight:600;font-size:13px}
.chart .tk,.chart .na{fill:#777}
.cards{display:flex;flex-wrap:wrap;gap:14px}.card{border:1px solid #ccc;border-radius:6px;padding:8px;width:min-content}
.thumb{display:block;background:#222}.lbl{font:600 12px sans-serif;fill:#fff;stroke:#000;stroke-width:3px;
paint-order:stroke}
.noimg{width:220px;height:120px;background:#eee;color:#555;padding:8px;box-sizing:border-box}
.info{min-width:220px;margin-top:6px}.fix{font-weight:600}.file{color:#555;font-size:13px;word-break:break-all}
"""


def _fmt_date(ts: str) -> str:
    try:
        return datetime.fromisoformat(ts).strftime("%Y-%m-%d %H:%M UTC")
    except ValueError:
        return ts


def render_html(project: Project, data: dict, *, thumb_side: int = 256) -> str:
    """The report page for ``data`` (from :func:`analysis_report_data`)."""
    a, counts = data["analysis"], data["counts"]
    colors = {c.name: c.color for c in project.classes()}
    mode = (f"full check ({a['folds']}-fold: every image judged by a model that did not train on it)"
            if a["mode"] == "kfold" else "quick check (judged by the current model)")
    out = [f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Label check — '
           f'{esc(data["project"]["name"])}</title><style>{_CSS}</style></head><body>',
           f'<h1>Label check — {esc(data["project"]["name"])}</h1>',
           f'<p class="meta">Analysis #{a["id"]} · {esc(_fmt_date(a["created_at"]))} · {esc(mode)} · '
           f'labels as of snapshot #{a["snapshot_id"]}</p>']
    if a["note"]:
        out.append(f'<p class="warn">⚠ {esc(a["note"])}</p>')
    if a["thresholds"]:
        out.append("<h2>Settings used</h2><table>" + "".join(
            f"<tr><th>{esc(k)}</th><td>{esc(_num(v, '{:.3g}'))}</td></tr>" for k, v in a["thresholds"].items()
        ) + "</table>")
    out.append(f"<h2>What was found</h2><p>{counts['open']} possible label errors to review "
               f"(of {counts['total']} found by this analysis).</p><table><tr><th>Problem</th>"
               + "".join(f"<th>{esc(s)}</th>" for s in STATUS_TEXT.values()) + "</tr>")
    for kind in issue_types():
        row = counts["by_type"].get(kind.name, dict.fromkeys(STATUS_TEXT, 0))
        out.append(f'<tr><td><b>{esc(kind.title)}</b> <span class="small">({esc(kind.name)}: {esc(kind.meaning)})</span>'
                   "</td>" + "".join(f'<td class="n">{row[s]}</td>' for s in STATUS_TEXT) + "</tr>")
    out.append("</table>")
    weak = data["weak_classes"]
    if weak:
        out.append("<h2>Classes</h2><table><tr><th>Class</th><th>Boxes</th><th>Images</th><th>AP@0.5</th>"
                   "<th>Label quality</th><th>Often confused with</th><th>Recommendation</th><th>Why</th></tr>")
        for row in weak:
            confused = (f"{row['confused_with']} ({row['confusion_share']:.0%})" if row["confused_with"] else "–")
            out.append(f'<tr><td><span class="sw" style="background:{esc(colors.get(row["class"], "#999"))}">'
                       f'</span>{esc(row["class"])}</td><td class="n">{esc(row["boxes"])}</td>'
                       f'<td class="n">{esc(row["images"])}</td><td class="n">{esc(_num(row["ap50"]))}</td>'
                       f'<td class="n">{esc(_num(row["label_quality"]))}</td><td>{esc(confused)}</td>'
                       f'<td class="rec">{esc(row["recommendation"])}</td><td>{esc(row["reason"])}</td></tr>')
        out.append('</table><p class="small">AP@0.5: how reliably the model finds this class (0 = never, '
                   "1 = always). Label quality: how consistent this class's boxes are (1 = no doubts).</p>")
        rows = [(r["class"], colors.get(r["class"], "#888")) for r in weak]
        out.append('<div class="charts">'
                   + _bar_chart("AP@0.5 per class", [(n, r["ap50"], c) for (n, c), r in zip(rows, weak, strict=True)])
                   + _bar_chart("Label quality per class",
                                [(n, r["label_quality"], c) for (n, c), r in zip(rows, weak, strict=True)])
                   + "</div>")
    issues = data["issues"]
    out.append(f"<h2>Issues to review</h2><p>The {len(issues)} most likely label errors of "
               f"{data['issues_open']} open, most likely first. Score 0–1: lower = more likely wrong. "
               "Solid box = current label, dashed = suggestion, crossed out = box to delete.</p>"
               '<div class="cards">')
    cache: dict[int, tuple[str, int, int]] = {}
    images = {img.id: img for img in project.images()}
    names = {c.id: c.name for c in project.classes()}
    others: dict[int, list[tuple]] = {}
    for image_id in {i["image_id"] for i in issues}:
        others[image_id] = [(b.id, names.get(b.class_id), *b.xyxy) for b in project.boxes(image_id)]
    for item in issues:
        thumb = _thumbnail(project, item, images.get(item["image_id"]), colors, others[item["image_id"]],
                           thumb_side, cache)
        out.append(f'<div class="card">{thumb}<div class="info"><b>{esc(item["title"])}</b> · score '
                   f'{item["score"]:.2f}<br><span class="fix">{esc(item["fix_text"].capitalize())}</span><br>'
                   f'<span class="file">{esc(item["image"] or "?")} · issue #{item["id"]}</span></div></div>')
    out.append("</div>")
    timings = data["summary"].get("timings")
    if isinstance(timings, dict) and timings:
        out.append('<p class="small">Time taken: ' + esc(", ".join(f"{k} {_num(v, '{:.0f}')} s"
                                                                  for k, v in timings.items())) + "</p>")
    out.append("</body></html>\n")
    return "\n".join(out)


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tmp.open("w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ExportError(f"cannot write the report {path}: {exc.strerror or exc}. "
                          "Check that the folder is writable and the disk is not full.") from exc


def write_report(project: Project, out_html: Path, *, analysis_id: int | None = None, max_issues: int = 100,
                 thumb_side: int = 256) -> Path:
    """Write the report page ``out_html`` and its data ``out_html.with_suffix(".json")`` (each atomically).

    ``max_issues``: how many issue cards; ``thumb_side``: longest thumbnail side in pixels. Returns
    ``out_html``. ProjectError without an analysis, ExportError when the files cannot be written.
    """
    out_html = Path(out_html)
    if out_html.suffix.lower() == ".json":
        raise ValueError(f"out_html must not end in .json (the data goes there): {out_html}")
    if isinstance(thumb_side, bool) or not isinstance(thumb_side, int) or thumb_side < 32:
        raise ValueError(f"thumb_side must be an int >= 32, got {thumb_side!r}")
    data = analysis_report_data(project, analysis_id, max_issues=max_issues)
    page = render_html(project, data, thumb_side=thumb_side)
    _atomic_write(out_html.with_suffix(".json"), json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    _atomic_write(out_html, page)
    return out_html
