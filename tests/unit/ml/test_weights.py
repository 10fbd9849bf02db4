"""Pretrained-weights search order and safe loading (files made here from random timm models)."""

from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import save_file
from timm.models import get_pretrained_cfg

import labeltool
from labeltool.core.errors import ModelError
from labeltool.ml import weights as weights_mod
from labeltool.ml.model import build_model
from labeltool.ml.presets import get_preset
from labeltool.ml.weights import (
    WeightsSource,
    build_pretrained_model,
    default_models_dir,
    hf_hub_cache_dir,
    resolve_weights,
)

EDGE = get_preset("mobilenetv3")  # a timm-named backbone with no weight package: the file, cache and download paths
BACKBONE = EDGE.backbone  # mobilenetv3_large_100
CHECK_KEYS = ("conv_stem.weight", "bn1.running_mean", "blocks.3.0.conv_pw.weight", "blocks.6.0.conv.weight")
_unpickled: list[str] = []


def _mark_unpickled() -> object:
    _unpickled.append("called")
    return object()


class Evil:
    """Pickles as a call to _mark_unpickled: loading it must never run that call."""

    def __reduce__(self) -> tuple:
        return (_mark_unpickled, ())


@pytest.fixture(autouse=True)
def isolated_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No real HF / torch hub cache and no LABELTOOL_MODELS_DIR leaks into a test."""
    for var in ("HF_HOME", "HUGGINGFACE_HUB_CACHE", "LABELTOOL_MODELS_DIR", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path


@pytest.fixture(scope="module")
def saved_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(123)
    model = timm.create_model(BACKBONE, pretrained=False)
    return {k: v.contiguous() for k, v in model.state_dict().items()}


def _assert_loaded(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    body = model.backbone.body.state_dict()
    fresh = build_model(EDGE, num_classes=2).backbone.body.state_dict()
    for key in CHECK_KEYS:
        assert torch.equal(body[key], state[key]), key
    assert not torch.equal(fresh["conv_stem.weight"], state["conv_stem.weight"])


def test_file_in_models_dir_is_found_and_loaded(tmp_path: Path, saved_state: dict) -> None:
    models = tmp_path / "models"
    models.mkdir()
    save_file(saved_state, models / f"{BACKBONE}.safetensors")
    source = resolve_weights(BACKBONE, models_dir=models)
    assert source == WeightsSource("file", models / f"{BACKBONE}.safetensors", BACKBONE, source.message)
    assert not source.warning
    model, used = build_pretrained_model(EDGE, num_classes=2, models_dir=models)
    assert used.kind == "file"
    _assert_loaded(model, saved_state)


def test_models_dir_default_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert default_models_dir() == Path(labeltool.__file__).resolve().parents[1] / "models"
    monkeypatch.setenv("LABELTOOL_MODELS_DIR", str(tmp_path / "elsewhere"))
    assert default_models_dir() == tmp_path / "elsewhere"
    assert str(tmp_path / "elsewhere" / f"{BACKBONE}.safetensors") in resolve_weights(BACKBONE).message


def _fake_hf_cache(root: Path, filename: str) -> Path:
    repo_id = get_pretrained_cfg(BACKBONE).hf_hub_id
    repo = root / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    snapshot = repo / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    return snapshot / filename


def test_hf_cache_is_used_when_no_file(isolated_caches: Path, saved_state: dict) -> None:
    cached = _fake_hf_cache(isolated_caches / "hf", "model.safetensors")
    save_file(saved_state, cached)
    source = resolve_weights(BACKBONE, models_dir=isolated_caches / "empty")
    assert source.kind == "cache" and source.path == cached and not source.warning
    model, used = build_pretrained_model(EDGE, num_classes=2, models_dir=isolated_caches / "empty")
    assert used.kind == "cache"
    _assert_loaded(model, saved_state)
    # a file in the models dir comes first
    (isolated_caches / "models").mkdir()
    save_file(saved_state, isolated_caches / "models" / f"{BACKBONE}.safetensors")
    assert resolve_weights(BACKBONE, models_dir=isolated_caches / "models").kind == "file"


def test_hf_cache_pytorch_bin_and_hf_home(
    isolated_caches: Path, saved_state: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HF_HUB_CACHE")
    monkeypatch.setenv("HF_HOME", str(isolated_caches / "home"))
    assert hf_hub_cache_dir() == isolated_caches / "home" / "hub"
    cached = _fake_hf_cache(isolated_caches / "home" / "hub", "pytorch_model.bin")
    torch.save(saved_state, cached)
    model, used = build_pretrained_model(EDGE, num_classes=2, models_dir=isolated_caches / "empty")
    assert used.kind == "cache" and used.path == cached
    _assert_loaded(model, saved_state)


def test_nothing_found_gives_loud_random(isolated_caches: Path) -> None:
    models = isolated_caches / "models"
    source = resolve_weights(BACKBONE, models_dir=models)
    assert source.kind == "random" and source.warning and source.path is None
    assert str(models / f"{BACKBONE}.safetensors") in source.message
    assert "accuracy" in source.message and "WARNING" in source.message
    model, used = build_pretrained_model(EDGE, num_classes=2, models_dir=models)
    assert used.kind == "random" and used.warning


def test_download_only_when_allowed_and_failure_falls_back(
    isolated_caches: Path, saved_state: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    models = isolated_caches / "models"
    assert resolve_weights(BACKBONE, models_dir=models, allow_network=True).kind == "download"

    def fake_download(backbone: str, out_indices: tuple[int, ...]) -> torch.nn.Module:
        net = timm.create_model(backbone, features_only=True, out_indices=out_indices)
        net.load_state_dict(saved_state, strict=False)
        return net

    monkeypatch.setattr(weights_mod, "_download_features_model", fake_download)
    model, used = build_pretrained_model(EDGE, num_classes=2, models_dir=models, allow_network=True)
    assert used.kind == "download"
    _assert_loaded(model, saved_state)

    def no_network(backbone: str, out_indices: tuple[int, ...]) -> torch.nn.Module:
        raise ModelError("downloading failed: no route to host")

    monkeypatch.setattr(weights_mod, "_download_features_model", no_network)
    _, used = build_pretrained_model(EDGE, num_classes=2, models_dir=models, allow_network=True)
    assert used.kind == "random" and "no route to host" in used.message and used.warning


def test_missing_or_wrong_weights_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.safetensors"
    with pytest.raises(ModelError, match="nope.safetensors"):
        resolve_weights(BACKBONE, weights_file=missing)
    odd = tmp_path / "weights.txt"
    odd.write_text("x")
    with pytest.raises(ModelError, match="weights.txt"):
        resolve_weights(BACKBONE, weights_file=odd)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00" * 64)
    with pytest.raises(ModelError, match="garbage.safetensors"):
        build_pretrained_model(EDGE, num_classes=2, weights_file=garbage)


def test_other_backbone_file_fails_naming_both(tmp_path: Path) -> None:
    other = tmp_path / "resnet18.safetensors"
    save_file({k: v.contiguous() for k, v in timm.create_model("resnet18").state_dict().items()}, other)
    with pytest.raises(ModelError) as err:
        build_pretrained_model(EDGE, num_classes=2, weights_file=other)
    assert str(other) in str(err.value) and BACKBONE in str(err.value) and "resnet18 weights" in str(err.value)


def test_few_missing_keys_tolerated_many_refused(tmp_path: Path, saved_state: dict) -> None:
    few = {k: v for k, v in saved_state.items() if not k.startswith("conv_head.")}  # unused by the detector
    save_file(few, tmp_path / "few.safetensors")
    model, _ = build_pretrained_model(EDGE, num_classes=2, weights_file=tmp_path / "few.safetensors")
    _assert_loaded(model, saved_state)
    many = {k: v for k, v in saved_state.items() if not k.startswith("blocks.6.")}
    save_file(many, tmp_path / "many.safetensors")
    with pytest.raises(ModelError, match="missing"):
        build_pretrained_model(EDGE, num_classes=2, weights_file=tmp_path / "many.safetensors")


def test_pth_loads_with_weights_only(tmp_path: Path, saved_state: dict) -> None:
    wrapped = tmp_path / "wrapped.pth"
    torch.save({"epoch": 3, "state_dict": {"module." + k: v for k, v in saved_state.items()}}, wrapped)
    model, used = build_pretrained_model(EDGE, num_classes=2, weights_file=wrapped)
    assert used.kind == "file"
    _assert_loaded(model, saved_state)


def test_pickled_objects_are_refused(tmp_path: Path, saved_state: dict) -> None:
    evil = tmp_path / "evil.pth"
    torch.save({**saved_state, "payload": Evil()}, evil)
    _unpickled.clear()
    with pytest.raises(ModelError, match="refused"):
        build_pretrained_model(EDGE, num_classes=2, weights_file=evil)
    assert _unpickled == [], "an arbitrary object was unpickled"


def test_weights_for_another_backbone_rejected() -> None:
    model = build_model(EDGE, num_classes=2)
    with pytest.raises(ModelError, match="resnet18"):
        weights_mod.load_backbone_weights(model, WeightsSource("download", None, "resnet18", ""))
    before = model.backbone.body.state_dict()["conv_stem.weight"].clone()
    weights_mod.load_backbone_weights(model, WeightsSource("random", None, BACKBONE, "warn"))
    assert torch.equal(model.backbone.body.state_dict()["conv_stem.weight"], before)


def test_an_unreachable_hub_fails_fast_and_falls_back_to_random(
    isolated_caches: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket
    import time

    for var in ("HTTPS_PROXY", "https_proxy", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    with socket.socket() as server:  # a real listening socket: reachable
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.getsockname()[1]}")
        assert weights_mod.hub_reachable()
    with socket.socket() as probe:  # a port nobody listens on: refused at once
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed}")
    assert not weights_mod.hub_reachable()
    t0 = time.monotonic()
    _, used = build_pretrained_model(EDGE, num_classes=2, models_dir=isolated_caches / "models", allow_network=True)
    assert time.monotonic() - t0 < 30  # no minute of download retries
    assert used.kind == "random" and used.warning and f"cannot reach 127.0.0.1:{closed}" in used.message
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert not weights_mod.hub_reachable()
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")  # behind a proxy only the download can tell
    assert weights_mod.hub_reachable()
