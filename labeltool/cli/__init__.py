"""Command-line entry point: ``labeltool <command> …``.

Same jobs as the GUI. Long work shows a progress bar on stderr (or JSON lines on stdout with
``--json``). User errors exit with status 1 and a message that says what to do; no tracebacks.
"""

from __future__ import annotations

import argparse
import logging
import os
import sqlite3
import sys
from collections.abc import Callable, Sequence

from labeltool.core.errors import LabeltoolError
from labeltool.jobs.demo import DEMO_ANALYZE_MINUTES, DEMO_FINETUNE_EPOCHS, DEMO_REVIEW, DEMO_TRAIN_MINUTES
from labeltool.ml.presets import PRESETS

from .analysis import add_parsers
from .augment import add_parsers as add_augment_parsers
from .common import EXIT_ERROR, EXIT_INTERRUPTED
from .data import cmd_classes, cmd_demo, cmd_demo_data, cmd_export, cmd_import, cmd_new, cmd_stats
from .edge import add_parsers as add_edge_parsers
from .model import cmd_evaluate, cmd_predict, cmd_runs, cmd_train


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="labeltool", description="Offline data-centric visual inspection: label, find label errors, train.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func: Callable[[argparse.Namespace], int], help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(func=func)
        return p

    p = add("new", cmd_new, "create an empty project folder")
    p.add_argument("dir", metavar="DIR")

    p = add("import", cmd_import, "import images and labels (COCO JSON, YOLO, Pascal VOC, or a plain image folder)")
    p.add_argument("dir", metavar="DIR", help="project folder")
    p.add_argument("source", metavar="SOURCE", help="COCO .json, YOLO data.yaml or folder, VOC folder, image folder")
    p.add_argument("--format", choices=("coco", "yolo", "voc", "folder"), help="default: detected from SOURCE")
    p.add_argument("--strict", action="store_true", help="stop without importing anything if any record is bad")
    p.add_argument("--link", action="store_true", help="hard-link images instead of copying (same disk only)")
    p.add_argument("--allow-outside", action="store_true",
                   help="also import images outside SOURCE's folder (a YOLO 'path:' elsewhere, links out of it)")
    p.add_argument("--wait", type=float, nargs="?", const=3600.0, default=0.0, metavar="SECONDS",
                   help="when another job writes the project, wait for it (default: up to an hour) instead of stopping")
    p.add_argument("--json", action="store_true", help="progress and result as JSON lines")

    p = add("classes", cmd_classes, "rename, merge or delete classes (one undoable edit each)")
    p.add_argument("dir", metavar="DIR")
    p.add_argument("action", choices=("list", "rename", "merge", "delete"))
    p.add_argument("names", nargs="*", metavar="NAME",
                   help="rename OLD NEW | merge SOURCE INTO | delete NAME (list: no names)")
    p.add_argument("--with-boxes", action="store_true", help="delete: also delete the class's boxes")

    p = add("export", cmd_export, "export the project's labels and images")
    p.add_argument("dir", metavar="DIR")
    p.add_argument("dest", metavar="DEST", help="new or empty folder")
    p.add_argument("--format", choices=("coco", "yolo", "voc"), required=True)
    p.add_argument("--include-unlabeled", action="store_true", help="also export images nobody has labeled yet")

    p = add("stats", cmd_stats, "images, labeled/unlabeled, boxes per class, box sizes")
    p.add_argument("dir", metavar="DIR")
    p.add_argument("--json", action="store_true")

    p = add("demo-data", cmd_demo_data, "write a synthetic 'parts with defects' COCO dataset with injected label noise")
    p.add_argument("dest", metavar="DEST")
    p.add_argument("--images", type=int, default=200)
    p.add_argument("--noise", type=float, default=0.1, help="fraction of boxes to corrupt (default 0.1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")

    p = add("train", cmd_train, "fine-tune the detector on the project's labels (the run becomes the current model)")
    p.add_argument("dir", metavar="DIR")
    p.add_argument("--preset", default="edge", help=f"{' / '.join(PRESETS)}: edge (default, EfficientNet-Lite0, "
                   "pretrained from its pip package), balanced (EfficientNet-Lite1), accurate (ResNet-50), "
                   "mobilenetv3 / resnet18 (the earlier presets; bring their weights)")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--epochs", type=int, help="train for N epochs (early stopping may end sooner)")
    budget.add_argument("--minutes", type=float, help="train for M minutes (default on CPU: 10)")
    p.add_argument("--weights", metavar="FILE", help="pretrained backbone weights (.safetensors or .pth); default: models/, the installed weight package, then the cache")
    p.add_argument("--allow-download", action="store_true", help="download pretrained weights when not found locally")
    p.add_argument("--balanced", action="store_true", help="class-balanced sampling (rare classes seen more often)")
    p.add_argument("--no-derived", action="store_true", help="leave the derived (augmented) images out of training")
    p.add_argument("--continue-from", metavar="RUN", dest="init_from",
                   help="fine-tune an earlier model instead of starting afresh: 'current' or a run id (`labeltool runs`); the model keeps its own backbone and input size")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto (GPU when present), cpu, cuda")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--image-size", type=int, help="override the preset's input size (px)")
    p.add_argument("--json", action="store_true", help="one JSON event per line")

    p = add("evaluate", cmd_evaluate, "score a run on the validation images (mAP, per-class AP, confusion)")
    p.add_argument("dir", metavar="DIR")
    p.add_argument("--run", type=int, help="run id (default: the current model)")
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true")

    p = add("predict", cmd_predict, "store the model's boxes for the images (pre-labels), apart from your labels")
    p.add_argument("dir", metavar="DIR")
    p.add_argument("--run", type=int, help="run id (default: the current model)")
    p.add_argument("--unlabeled-only", action="store_true", help="only images nobody has labeled yet")
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true")

    p = add("runs", cmd_runs, "list training runs (* = current model)")
    p.add_argument("dir", metavar="DIR")
    p.add_argument("--json", action="store_true")

    add_parsers(add)
    add_augment_parsers(add)
    add_edge_parsers(add)

    p = add("demo", cmd_demo, "the main job on built-in demo data: the whole loop from noisy labels to a verified edge bundle")
    p.add_argument("dir", metavar="DIR", nargs="?", default="labeltool-demo")
    p.add_argument("--images", type=int, default=200)
    p.add_argument("--noise", type=float, default=0.1)
    p.add_argument("--train-minutes", type=float, default=DEMO_TRAIN_MINUTES, help="first training (0: stop after the import)")
    p.add_argument("--analyze-minutes", type=float, default=DEMO_ANALYZE_MINUTES,
                   help="training budget of the fold models of the analysis, shared (0: skip the analysis and the fixes)")
    p.add_argument("--review", type=int, default=DEMO_REVIEW,
                   help="suspected label errors reviewed, best first: the real ones accepted, the rest rejected")
    p.add_argument("--finetune-epochs", type=int, default=DEMO_FINETUNE_EPOCHS,
                   help="fine-tuning epochs after the fixes (0: skip augmentation and fine-tuning)")
    p.add_argument("--no-export", action="store_true", help="skip the edge bundle export and verification")
    p.add_argument("--offline", action="store_true",
                   help="never download a pretrained backbone (the edge preset's comes with the install; a "
                        "download is only tried when its package is missing and Hugging Face can be reached)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Libraries' log warnings (timm's "unexpected keys" etc.) would repeat what the CLI already says.
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s: %(message)s")
    try:
        return int(args.func(args))
    except sqlite3.Error as exc:  # a query outside core's translated paths
        if os.environ.get("LABELTOOL_DEBUG"):
            raise
        print(f"error: project database: {exc}. The project may be damaged; restore project.db from a "
              "backup (project.db.bak-*) or re-import into a new project.", file=sys.stderr)
        return EXIT_ERROR
    except (LabeltoolError, ValueError, OSError) as exc:
        # LabeltoolError: user-facing by construction. ValueError: a public function rejected an
        # option value and named it. OSError: the disk said no (full, permissions, missing path).
        if os.environ.get("LABELTOOL_DEBUG"):
            raise
        message = str(exc)
        if isinstance(exc, OSError) and not isinstance(exc, LabeltoolError):
            message = f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": ")
        print(f"error: {message}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted; the project is unchanged by the interrupted step", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
