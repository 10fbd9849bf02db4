"""Augmentation commands: make a targeted augment set, list / preview / delete sets, class flip settings."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from .common import EXIT_OK
from .common import run_job as _run


def _names(value: str | None) -> list[str]:
    return [n.strip() for n in (value or "").split(",") if n.strip()]


def _set_flips(project_dir: str, names: list[str], ok: bool) -> list[str]:
    from labeltool.core.derived import set_flip_ok
    from labeltool.core.store import Project
    from labeltool.jobs.augment import resolve_classes

    with Project.open(project_dir) as project:
        classes, _ = resolve_classes(project, names)
        set_flip_ok(project, [c.id for c in classes], ok)
    return [c.name for c in classes]


def cmd_augment(args: argparse.Namespace) -> int:
    settings = []
    for value, ok in ((args.no_flip, False), (args.allow_flip, True)):
        if value:
            done = _set_flips(args.dir, _names(value), ok)
            settings.append({"classes": done, "flip_ok": ok})
            if not args.json:
                print(f"{'flips allowed' if ok else 'never mirrored (orientation-sensitive)'}: {', '.join(done)}")
    if args.list:
        return _list(args)
    if args.delete is not None:
        return _delete(args)
    if args.set is not None:
        return _preview(args)
    if settings and not args.classes and args.per_class is None and not args.copy_paste:
        if args.json:
            print(json.dumps({"event": "result", "settings": settings}))
        return EXIT_OK  # only the settings were asked for
    return _generate(args)


def _generate(args: argparse.Namespace) -> int:
    from labeltool.jobs.augment import augment_job

    result = _run(augment_job(Path(args.dir), classes=_names(args.classes) or None, per_class=args.per_class,
                              copy_paste=args.copy_paste, seed=args.seed,
                              preview_dir=Path(args.preview) if args.preview else None), args)
    if args.json:
        print(json.dumps({"event": "result", **result}))
        return EXIT_OK
    if result["set_id"] is None:
        print(result["message"])
        return EXIT_OK
    kinds = result["by_kind"]
    print(f"augment set {result['set_id']}: {result['images']} new training images in {result['path']} "
          f"({kinds.get('augment', 0)} augmented copies, {kinds.get('copy_paste', 0)} copy-paste composites); "
          f"classes {result['chosen_by']}")
    print(format_per_class(result["per_class"]))
    if result["copy_paste_fallbacks"]:
        print(f"  {result['copy_paste_fallbacks']} composite(s) found no free place for the crops and became "
              "augmented copies instead")
    for path in result["preview"]:
        print(f"preview: {path}")
    print(f"derived images are used for training only. Remove the set with `labeltool augment {args.dir} "
          f"--delete {result['set_id']}`, or train without derived images: `labeltool train {args.dir} --no-derived`")
    return EXIT_OK


def format_per_class(rows: list[dict[str, Any]]) -> str:
    head = f"{'class':<14}{'before':>7}{'target':>7}{'added':>7}{'after':>7}"
    return "\n".join([head, "-" * len(head)] + [
        f"{r['class']:<14}{r['before']:>7}{r['target']:>7}{r['added']:>7}{r['after']:>7}" for r in rows])


def _list(args: argparse.Namespace) -> int:
    from labeltool.core.derived import list_sets
    from labeltool.core.store import Project

    with Project.open(args.dir) as project:
        sets = list_sets(project)
    if args.json:
        print(json.dumps([{"id": s.id, "created_at": s.created_at, "kind": s.kind, "classes": s.classes,
                           "status": s.status, "images": s.n_images, "seed": s.seed, "path": s.path,
                           "params": s.params} for s in sets], indent=2))
        return EXIT_OK
    if not sets:
        print(f"no augment sets yet; make one with `labeltool augment {args.dir} --classes A,B`")
        return EXIT_OK
    print(f"{'set':>4}  {'created':<19}  {'kind':<9}{'status':<9}{'images':>7}  {'seed':>5}  classes")
    for s in sets:
        made = s.params.get("made", {})
        extra = f" (copy-paste {made['copy_paste']})" if made.get("copy_paste") else ""
        print(f"{s.id:>4}  {s.created_at[:19]:<19}  {s.kind:<9}{s.status:<9}{s.n_images:>7}  {s.seed:>5}  "
              f"{', '.join(s.classes) or '-'}{extra}")
    return EXIT_OK


def _delete(args: argparse.Namespace) -> int:
    from labeltool.core.derived import delete_set
    from labeltool.core.store import Project

    with Project.open(args.dir) as project:
        n = delete_set(project, args.delete)
    if args.json:
        print(json.dumps({"event": "result", "deleted_set": args.delete, "images": n}))
    else:
        print(f"deleted augment set {args.delete} ({n} images, one undoable edit); its files stay in "
              f"derived/{args.delete} so undo can restore it")
    return EXIT_OK


def _preview(args: argparse.Namespace) -> int:
    from labeltool.core.derived import preview_set
    from labeltool.core.store import Project

    if not args.preview:
        raise ValueError("--set needs --preview OUT_DIR (where to write the contact sheets)")
    with Project.open(args.dir) as project:
        paths = preview_set(project, args.set, Path(args.preview))
    if args.json:
        print(json.dumps({"event": "result", "set_id": args.set, "preview": [str(p) for p in paths]}))
    else:
        for path in paths:
            print(f"preview: {path}")
    return EXIT_OK


def add_parsers(add: Any) -> None:
    """Register ``augment`` on the main parser (``add(name, func, help)``)."""
    p = add("augment", cmd_augment, "make extra training images for weak classes (targeted augmentation, "
                                    "copy-paste), list, preview or delete augment sets")
    p.add_argument("dir", metavar="DIR")
    p.add_argument("--classes", metavar="A,B", help="classes to augment (default: those the latest analysis flags)")
    p.add_argument("--per-class", type=int, metavar="N",
                   help="bring each class to N training images (default: the median over the classes, at most "
                        "5x the class's own count)")
    p.add_argument("--copy-paste", action="store_true",
                   help="make half of the new images by pasting the class's defect crops onto other training images")
    p.add_argument("--preview", metavar="OUT_DIR", help="write contact sheets (PNG, boxes drawn) of the new set, "
                                                        "or of --set ID, to OUT_DIR")
    p.add_argument("--seed", type=int, default=0, help="same seed, same images (default 0)")
    action = p.add_mutually_exclusive_group()
    action.add_argument("--list", action="store_true", help="list the augment sets")
    action.add_argument("--delete", type=int, metavar="SET_ID", help="delete a set (one undoable edit)")
    action.add_argument("--set", type=int, metavar="SET_ID", help="with --preview: preview an existing set")
    p.add_argument("--no-flip", metavar="A,B",
                   help="orientation-sensitive classes: never mirrored, in augmentation and training")
    p.add_argument("--allow-flip", metavar="A,B", help="allow mirrored copies of these classes again (default)")
    p.add_argument("--json", action="store_true", help="progress and result as JSON lines")
