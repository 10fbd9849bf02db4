"""Trained-model checkpoints of a Run: ``model.safetensors`` + ``config.json``; nothing is unpickled.

Layout of ``runs/<id>/``::

    model.safetensors   every tensor of model.state_dict() (RetinaNet: backbone, FPN, head)
    config.json         {"checkpoint_version": 1, "preset": {...}, "class_names": [...],
                         "num_classes": N, "image_size": S, ...extra}

The config alone rebuilds the network (``build_model``, no pretrained weights needed); the
safetensors file then fills every tensor (strict). Both files are written atomically; the config is
written last, so a run folder with a config.json has a complete checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import safetensors
import safetensors.torch
import torch
from torchvision.models.detection import RetinaNet

from labeltool.core.config import CHECKPOINT_CONFIG_FILENAME, CHECKPOINT_VERSION, CHECKPOINT_WEIGHTS_FILENAME
from labeltool.core.errors import ModelError
from labeltool.ml.model import build_model
from labeltool.ml.presets import Preset

__all__ = ["CHECKPOINT_VERSION", "load_checkpoint", "save_checkpoint"]

_RESERVED = ("checkpoint_version", "preset", "class_names", "num_classes", "image_size")


def _atomic_write(path: Path, write: Any) -> None:
    """Call ``write(tmp_path)`` then ``os.replace`` it onto ``path``; the tmp file is removed on failure."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        with tmp.open("rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save_checkpoint(
    model: RetinaNet,
    run_dir: Path,
    *,
    preset: Preset,
    class_names: Sequence[str],
    extra: dict[str, Any] | None = None,
) -> None:
    """Write ``run_dir/model.safetensors`` and ``run_dir/config.json`` (see module docstring).

    ``class_names[i]`` is the name of model label ``i``; its length must equal the model's class
    count. ``extra`` adds JSON-serializable keys to config.json (not the reserved ones).
    """
    if not isinstance(preset, Preset):
        raise TypeError(f"preset must be a Preset, got {type(preset).__name__}")
    if isinstance(class_names, str) or not all(isinstance(c, str) and c for c in class_names):
        raise ValueError(f"class_names must be a sequence of non-empty strings, got {class_names!r}")
    num_classes = model.head.classification_head.num_classes
    if len(class_names) != num_classes:
        raise ValueError(f"{len(class_names)} class_names for a model with {num_classes} classes: {list(class_names)}")
    extra = dict(extra or {})
    clash = sorted(set(extra) & set(_RESERVED))
    if clash:
        raise ValueError(f"extra must not set the reserved config keys {clash}")
    config = {
        "checkpoint_version": CHECKPOINT_VERSION,
        "preset": preset.to_dict(),
        "class_names": list(class_names),
        "num_classes": num_classes,
        "image_size": int(model.transform.min_size[0]),  # the network input side (min_size == max_size)
        **extra,
    }
    try:
        text = json.dumps(config, indent=2, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"extra is not JSON-serializable: {exc}") from exc
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    run_dir = Path(run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        _atomic_write(
            run_dir / CHECKPOINT_WEIGHTS_FILENAME,
            lambda tmp: safetensors.torch.save_file(tensors, str(tmp), metadata={"format": "pt"}),
        )
        _atomic_write(run_dir / CHECKPOINT_CONFIG_FILENAME, lambda tmp: tmp.write_text(text + "\n", encoding="utf-8"))
    except OSError as exc:
        raise ModelError(f"cannot write the checkpoint to {run_dir}: {exc}. Check free disk space and permissions.") from exc


def _read_config(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ModelError(f"{path} is missing: this run has no complete checkpoint; train it again.")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path} cannot be read as JSON ({exc}); the checkpoint is damaged, train again.") from exc
    if not isinstance(config, dict):
        raise ModelError(f"{path} is not a JSON object; the checkpoint is damaged, train again.")
    version = config.get("checkpoint_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ModelError(f"{path} has no valid checkpoint_version ({version!r}); the checkpoint is damaged.")
    if version > CHECKPOINT_VERSION:
        raise ModelError(
            f"{path} is checkpoint version {version}, newer than this labeltool reads ({CHECKPOINT_VERSION}); "
            "update labeltool to open it."
        )
    return config


def load_checkpoint(run_dir: Path, *, device: str = "cpu") -> tuple[RetinaNet, dict[str, Any]]:
    """Rebuild the run's model from config.json, fill it from model.safetensors (strict), ``eval()``.

    Returns ``(model on device, config dict)``. ``ModelError`` for a missing file, bad JSON, a newer
    ``checkpoint_version``, a config that cannot build a model, or tensors that do not fit it.
    """
    try:
        target = torch.device(device)
    except RuntimeError as exc:
        raise ValueError(f"bad device {device!r}: {exc}") from exc
    run_dir = Path(run_dir)
    config_path = run_dir / CHECKPOINT_CONFIG_FILENAME
    weights_path = run_dir / CHECKPOINT_WEIGHTS_FILENAME
    config = _read_config(config_path)
    if not weights_path.is_file():
        raise ModelError(f"{weights_path} is missing: this run has no complete checkpoint; train it again.")
    try:
        preset = Preset.from_dict(config["preset"])
        class_names = config["class_names"]
        num_classes = config["num_classes"]
        if not isinstance(class_names, list) or len(class_names) != num_classes:
            raise ValueError(f"class_names {class_names!r} do not match num_classes {num_classes!r}")
        model = build_model(preset, num_classes=num_classes, image_size=config["image_size"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"{config_path} does not describe a model ({exc}); the checkpoint is damaged.") from exc
    try:
        state = safetensors.torch.load_file(str(weights_path), device="cpu")
    except (OSError, safetensors.SafetensorError) as exc:
        raise ModelError(f"{weights_path} cannot be read ({exc}); the checkpoint is damaged, train again.") from exc
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelError(
            f"{weights_path} does not fit the model described by {config_path} ({exc}); "
            "the two files come from different runs or are damaged."
        ) from exc
    model.to(target)
    model.eval()
    return model, config


def run_preset(run_dir: Path) -> Preset:
    """The preset a finished run was trained with (from its config.json; ``ModelError`` when damaged)."""
    config_path = Path(run_dir) / CHECKPOINT_CONFIG_FILENAME
    config = _read_config(config_path)
    try:
        preset = Preset.from_dict(config["preset"])
        return dataclasses.replace(preset, image_size=int(config.get("image_size", preset.image_size)))
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"{config_path} does not describe a model ({exc}); the checkpoint is damaged.") from exc


def started_pretrained(run_dir: Path) -> bool:
    """Whether the run's chain of trainings began from a pretrained backbone (not random init): what
    ``pretrained_start`` in its config.json says, else its weights source; True when unknown."""
    try:
        train = _read_config(Path(run_dir) / CHECKPOINT_CONFIG_FILENAME).get("train") or {}
    except ModelError:
        return True
    if isinstance(train.get("pretrained_start"), bool):
        return train["pretrained_start"]
    return (train.get("weights") or {}).get("kind") != "random"


def start_from_run(run_dir: Path, preset: Preset, class_names: Sequence[str]) -> tuple[RetinaNet, str]:
    """A model for ``class_names`` that starts from a finished run's weights (fine-tuning a model).

    The run must have the same backbone and input size as ``preset``. Classes are matched by name:
    the classification head's last layer copies the rows of classes the run knew and keeps the
    fresh initialisation for new ones; a class the run knew but the project no longer has is
    dropped. Returns the model (on CPU, train mode) and one sentence saying what was carried over.
    """
    old, config = load_checkpoint(run_dir, device="cpu")
    run_preset = Preset.from_dict(config["preset"])
    if run_preset.backbone != preset.backbone or int(config["image_size"]) != preset.image_size:
        raise ModelError(
            f"the model in {run_dir} was trained with the '{run_preset.name}' preset ({run_preset.backbone}, "
            f"{config['image_size']} px), not '{preset.name}' ({preset.backbone}, {preset.image_size} px); "
            f"continue with --preset {run_preset.name}, or start a fresh training without continuing"
        )
    model = build_model(preset, num_classes=len(class_names), image_size=preset.image_size)
    old_state, state = old.state_dict(), model.state_dict()
    old_names: list[str] = list(config["class_names"])
    key_w, key_b = "head.classification_head.cls_logits.weight", "head.classification_head.cls_logits.bias"
    for key, tensor in old_state.items():
        if key not in (key_w, key_b) and key in state and state[key].shape == tensor.shape:
            state[key] = tensor.clone()
    kept = [c for c in class_names if c in old_names]
    n_old, n_new = len(old_names), len(class_names)
    anchors = old_state[key_b].shape[0] // n_old
    for key in (key_w, key_b):  # channel a * K + k is class k of anchor a (torchvision's layout)
        for k_new, name in enumerate(class_names):
            if name in old_names:
                k_old = old_names.index(name)
                for a in range(anchors):
                    state[key][a * n_new + k_new] = old_state[key][a * n_old + k_old]
    model.load_state_dict(state, strict=True)
    model.train()
    new = [c for c in class_names if c not in old_names]
    note = f"continuing from the model in {Path(run_dir).name}"
    if new:
        note += f"; new classes {', '.join(new)} start untrained"
    dropped = [c for c in old_names if c not in class_names]
    if dropped:
        note += f"; classes no longer in the project dropped: {', '.join(dropped)}"
    if not kept:
        raise ModelError(f"the model in {run_dir} knows none of the project's classes ({', '.join(class_names)}); "
                         "start a fresh training instead of continuing")
    return model, note
