"""The Export panel on a real tiny trained project: export → verify chain, tables, deploy, roll back, confirm."""

from __future__ import annotations

import importlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from labeltool.core.errors import LabeltoolError
from labeltool.core.progress import Progress
from labeltool.core.store import Project
from labeltool.gui.export_panel import ExportPanel
from labeltool.jobs import drive
from labeltool.jobs.data import import_job
from labeltool.jobs.demo import demo_data_job
from labeltool.jobs.model import train_job
from labeltool.jobs.panel_views import DEPLOY_TARGET, EXPORT_TARGET, VERIFY_TARGET

pytestmark = [pytest.mark.gui, pytest.mark.slow]  # real training, export and verification
CLASSES = ["scratch", "dent", "crack", "stain", "chip"]


def run_request(target: str, kwargs: dict[str, Any], on_progress: Callable[[Progress], None]) -> Any:
    """What the job runner does with a request, in this process: ``target(**kwargs)`` driven to its end."""
    module, name = target.split(":")
    return drive(getattr(importlib.import_module(module), name)(**kwargs), on_progress)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("export_panel")
    drive(demo_data_job(tmp / "data", n_images=10, noise=0.0, seed=0, size=64), lambda p: None)
    Project.create(tmp / "p").close()
    drive(import_job(tmp / "p", tmp / "data" / "annotations.json"), lambda p: None)
    drive(train_job(tmp / "p", epochs=1, image_size=64, batch_size=4), lambda p: None)
    return tmp / "p"


class Requests:
    """Collects ``start_requested`` emissions."""

    def __init__(self, panel: ExportPanel) -> None:
        self.items: list[tuple[str, dict[str, Any]]] = []
        panel.start_requested.connect(lambda target, kwargs: self.items.append((target, kwargs)))

    def pop(self) -> tuple[str, dict[str, Any]]:
        assert len(self.items) == 1, self.items
        return self.items.pop()


def test_export_and_verify_fills_the_tables_then_deploys(qtbot, trained: Path, tmp_path: Path) -> None:
    panel = ExportPanel()
    qtbot.addWidget(panel)
    requests = Requests(panel)
    assert not panel.export_button.isEnabled()
    with Project.open(trained) as project:
        panel.set_project(project)
    assert "run 1 (edge preset, tf_efficientnet_lite0" in panel.model_label.text()
    out = Path(panel.out_edit.text())
    assert out.parent == trained.resolve() / "exports" and out.name.startswith("run1-") and not out.exists()
    assert panel.bundle is None and not panel.deploy_button.isEnabled()

    panel.export_button.click()
    target, kwargs = requests.pop()
    assert target == EXPORT_TARGET and kwargs == {"project_dir": str(trained.resolve()), "out": str(out),
                                                  "run_id": 1, "int8": True, "fp16": False}
    panel.set_running(True)
    assert not panel.export_button.isEnabled() and panel.cancel_button.isEnabled()
    export = run_request(target, {**kwargs, "calibration_images": 8}, panel.on_progress)
    panel.on_finished(export)  # the panel asks for the verification itself
    target, kwargs = requests.pop()
    assert target == VERIFY_TARGET and kwargs == {"bundle": str(out), "project_dir": str(trained.resolve())}
    assert panel.bundle == str(out) and "Bundle of run 1 written to" in panel.status_label.text()
    assert Path(panel.out_edit.text()) != out  # the next export gets a new folder
    verification = run_request(target, {**kwargs, "threads": 1}, panel.on_progress)
    panel.on_finished(verification)
    panel.set_running(False)

    ct = panel.class_table
    assert [ct.horizontalHeaderItem(c).text() for c in range(ct.columnCount())] == [
        "class", "PyTorch", "ONNX FP32", "Δ", "ONNX INT8", "Δ"]
    assert [ct.item(r, 0).text() for r in range(ct.rowCount())] == CLASSES
    st = panel.speed_table
    rows = {st.item(r, 0).text(): [st.item(r, c).text() for c in range(1, st.columnCount())]
            for r in range(st.rowCount())}
    assert list(rows) == ["mAP@.5", "latency, ms", "size, MB"]
    sizes = rows["size, MB"]
    assert sizes[1].endswith("×)") and sizes[2].startswith(f"{export['files']['model_int8.onnx'] / 1e6:.1f} (0.")
    latency = verification["latency_median_ms"]
    assert rows["latency, ms"][0] == f"{latency['torch_fp32']:.1f}"
    assert rows["latency, ms"][2].startswith(f"{latency['ort_int8']:.1f} (")
    assert "1 CPU thread," in panel.speed_note.text()
    verdict = panel.verdict_label.text()
    assert verdict.startswith("Verified" if verification["verified"] else "NOT verified")
    assert f"on {verification['n_images']} validation images" in verdict

    # deploy to a folder
    line = tmp_path / "line"
    panel.target_edit.setText(str(line))
    asked: list[str] = []
    assert panel.request_deploy(confirm=lambda q: asked.append(q) or True)
    assert len(asked) == (0 if verification["verified"] else 1)  # a verified bundle needs no confirmation
    target, kwargs = requests.pop()
    assert target == DEPLOY_TARGET and kwargs == {"bundle": str(out), "target": str(line), "rollback": False}
    result = run_request(target, kwargs, panel.on_progress)
    panel.on_finished(result)
    text = panel.deploy_label.text()
    assert text.startswith(f"Deployed run 1 to {line}: the line runs {line}/current/infer.py")
    assert "nothing to roll back to yet" in text
    assert json.loads((line / "current" / "manifest.json").read_text())["run_id"] == 1


def test_unverified_bundles_need_a_confirmation_and_rollback_works(qtbot, trained: Path, tmp_path: Path) -> None:
    panel = ExportPanel()
    qtbot.addWidget(panel)
    requests = Requests(panel)
    with Project.open(trained) as project:
        panel.set_project(project)
    bundle = tmp_path / "b"
    run_request(EXPORT_TARGET, {"project_dir": str(trained), "out": str(bundle), "int8": False, "make_zip": False},
                lambda p: None)  # FP32 only, never verified
    panel.set_bundle(bundle)
    assert panel.verification is None and "not been verified yet" in panel.verdict_label.text()
    line = tmp_path / "line"
    panel.target_edit.setText(str(line))
    assert panel.request_rollback()  # nothing deployed there yet: the job's error lands in the deploy section
    with pytest.raises(LabeltoolError) as error:
        run_request(*requests.pop(), lambda p: None)
    panel.on_failed("Deploy failed", str(error.value))
    assert panel.deploy_label.text().startswith("Deploy failed: nothing is deployed at")
    asked: list[str] = []
    assert not panel.request_deploy(confirm=lambda q: asked.append(q) or False)
    assert requests.items == [] and "has not been verified" in asked[0] and str(line) in asked[0]
    assert panel.deploy_label.text() == "Not deployed."
    assert panel.request_deploy(confirm=lambda q: True)
    first = run_request(*requests.pop(), panel.on_progress)
    panel.on_finished(first)
    assert "Note: this bundle was not verified." in panel.deploy_label.text()

    # a bundle that fails verification (a limit nothing can meet): the verdict and the question say so
    failed = tmp_path / "b2"
    shutil.copytree(bundle, failed)
    panel.set_bundle(failed)
    report = run_request(VERIFY_TARGET, {"bundle": str(failed), "project_dir": str(trained), "threads": 1,
                                         "max_fp32_drop": -1.0}, lambda p: None)
    panel.on_finished(report)
    assert panel.verdict_label.text().startswith("NOT verified") and "export again" in panel.verdict_label.text()
    assert panel.class_table.columnCount() == 4  # FP32 only: PyTorch, ONNX FP32, Δ
    panel.set_bundle(failed)  # read back from b2.verification.json
    assert panel.verification is not None and panel.verification["verified"] is False
    assert not panel.request_deploy(confirm=lambda q: asked.append(q) or False)
    assert "did NOT pass verification" in asked[-1]
    assert panel.request_deploy(confirm=lambda q: True)
    run_request(*requests.pop(), lambda p: None)

    panel.rollback_button.click()
    target, kwargs = requests.pop()
    assert target == DEPLOY_TARGET and kwargs == {"bundle": None, "target": str(line), "rollback": True}
    back = run_request(target, kwargs, panel.on_progress)
    panel.on_finished(back)
    assert panel.deploy_label.text().startswith(f"Rolled back: {line}/current is the previous bundle again")
    assert (line / "current" / "manifest.json").is_file()

    panel.target_edit.setText("ssh://host-without-path")
    assert not panel.request_deploy(confirm=lambda q: True)
    assert requests.items == [] and "ssh://" in panel.deploy_label.text()
