"""What a killed writer leaves behind, and cleaning it up.

Writers leave recoverable traces only:

- an import copies each new image to ``.<name>.incoming-<token>`` beside its final name and renames
  it into place after the database commit (:func:`incoming_name`). A temp file whose final path a
  committed row names is renamed into place (the commit happened); any other is deleted;
- a training writes its run under ``runs/.tmp-*`` and records it after renaming; it notes what it
  changed before (the split edit) in ``.pending/<token>.json`` (:func:`pending`), removed when it ends;
- a run folder that no row of the ``runs`` table names is what a training killed between the
  rename and the record left.

:func:`clean_leftovers` is called by whoever takes the project's writer lock (no writer runs then)
and returns one line per thing it removed or completed, for the user.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from . import config
from .queries import image_paths
from .runs import list_runs
from .store import Project

INCOMING_MARK = ".incoming-"
PENDING_DIRNAME = ".pending"


def incoming_name(final: Path) -> Path:
    """The temporary name an import copies ``final`` to before the commit."""
    return final.with_name(f".{final.name}{INCOMING_MARK}{uuid.uuid4().hex[:8]}")


def final_name(incoming: Path) -> Path | None:
    """Inverse of :func:`incoming_name`; None for a name that is not an import's temp file."""
    name = incoming.name
    if not name.startswith(".") or INCOMING_MARK not in name:
        return None
    return incoming.with_name(name[1:name.rindex(INCOMING_MARK)])


@contextmanager
def pending(root: Path, **what: Any) -> Iterator[Path]:  # noqa: ANN401
    """Note ``what`` (JSON-able: e.g. ``split_edit``) in ``.pending/`` while the block runs; the note
    is removed when the block ends, by success or by an exception it handled itself."""
    folder = Path(root) / PENDING_DIRNAME
    folder.mkdir(exist_ok=True)
    note = folder / f"{uuid.uuid4().hex[:12]}.json"
    tmp = note.with_suffix(".tmp")
    tmp.write_text(json.dumps(what), encoding="utf-8")
    os.replace(tmp, note)
    try:
        yield note
    finally:
        note.unlink(missing_ok=True)
        try:
            folder.rmdir()  # only when empty: another job's note keeps it
        except OSError:
            pass


def clean_leftovers(root: Path) -> list[str]:
    """Finish or remove what killed writers left in the project at ``root``; one line per action.

    Call only while holding the project's writer lock.
    """
    root = Path(root)
    if not (root / config.DB_FILENAME).is_file():
        return []
    with Project.open(root) as project:  # a damaged database says so here, as it would for the job
        paths = set(image_paths(project).values())
        runs = {r.path for r in list_runs(project)}
        done = _incoming(root, paths) + _runs(root, runs) + _pending(project)
    return done


def _incoming(root: Path, paths: set[str]) -> list[str]:
    done = []
    for folder in (root / config.IMAGES_DIRNAME, root / "derived"):
        if not folder.is_dir():
            continue
        for tmp in folder.rglob(f".*{INCOMING_MARK}*"):
            final = final_name(tmp)
            if final is None or not tmp.is_file():
                continue
            rel = final.relative_to(root).as_posix()
            try:
                if rel in paths and not final.exists():
                    os.replace(tmp, final)
                    done.append(f"finished the copy of {rel} (an import was stopped after saving it)")
                else:
                    tmp.unlink()
                    done.append(f"removed {tmp.relative_to(root).as_posix()}, a partial copy of a stopped import")
            except OSError as exc:
                done.append(f"could not remove {tmp} ({exc.strerror or exc}); delete it by hand")
    return done


def _runs(root: Path, runs: set[str]) -> list[str]:
    done = []
    runs_dir = root / "runs"
    if not runs_dir.is_dir():
        return done
    for entry in runs_dir.iterdir():
        rel = entry.relative_to(root).as_posix()
        if not entry.is_dir() or rel in runs:
            continue
        if entry.name.startswith(".tmp-"):
            why = "a stopped training's unfinished run"
        elif (entry / "model.safetensors").is_file() and (entry / "config.json").is_file():
            why = "a finished training that was stopped before it was recorded"
        else:
            continue  # not ours: leave a user's folder alone
        shutil.rmtree(entry, ignore_errors=True)
        done.append(f"removed {rel}, {why}")
    return done


def _pending(project: Project) -> list[str]:
    done = []
    folder = project.root / PENDING_DIRNAME
    if not folder.is_dir():
        return done
    for note in sorted(folder.glob("*.json")):
        try:
            what = json.loads(note.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            what = {}
        split_edit = what.get("split_edit") if isinstance(what, dict) else None
        if isinstance(split_edit, int) and project.undo(only=split_edit) is not None:
            done.append(f"took back the train/val split a stopped {what.get('job', 'training')} had assigned")
        note.unlink(missing_ok=True)
    for tmp in folder.glob("*.tmp"):
        tmp.unlink(missing_ok=True)
    return done
