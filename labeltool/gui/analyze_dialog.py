"""Loop ▸ Analyze labels…: the full (K-fold) check or the quick check, with the fold models' budget.

Defaults come from the window (``analysis_minutes_per_fold`` of the dataset size and machine); the
dialog only collects the choice and says how long it will take. ``kwargs()`` are the
``analyze_job`` arguments besides ``project_dir``.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import (
    QButtonGroup,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QLabel,
    QRadioButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

MAX_FOLDS = 10  # more folds: each model sees more images, the analysis takes longer
MAX_FOLD_MINUTES = 120.0


class AnalyzeDialog(QDialog):
    """K-fold (recommended) or quick; folds and minutes per fold for K-fold."""

    def __init__(self, parent: QWidget | None = None, *, folds: int, minutes_per_fold: float,
                 has_model: bool) -> None:
        super().__init__(parent)
        self.setWindowTitle("Analyze labels")
        self.kfold_radio = QRadioButton("Full check (K-fold, recommended)")
        self.kfold_radio.setToolTip("Each label is judged by a model that never saw its image")
        self.quick_radio = QRadioButton("Quick check with the current model (less reliable)")
        self.quick_radio.setToolTip("The current model judges the images it was trained on, so it tends to agree "
                                    "with their labels and misses errors")
        self.quick_radio.setEnabled(has_model)
        if not has_model:
            self.quick_radio.setText(self.quick_radio.text() + " — needs a trained model")
        group = QButtonGroup(self)
        group.addButton(self.kfold_radio)
        group.addButton(self.quick_radio)
        self.kfold_radio.setChecked(True)
        self.folds_spin = QSpinBox()
        self.folds_spin.setRange(2, MAX_FOLDS)
        self.folds_spin.setValue(folds)
        self.folds_spin.setToolTip("How many models; each trains on (K-1)/K of the images and judges the rest")
        self.minutes_spin = QDoubleSpinBox()
        self.minutes_spin.setRange(0.5, MAX_FOLD_MINUTES)
        self.minutes_spin.setDecimals(1)
        self.minutes_spin.setSingleStep(0.5)
        self.minutes_spin.setSuffix(" min")
        self.minutes_spin.setValue(minutes_per_fold)
        self.minutes_spin.setToolTip("Training time of each fold model: more finds more errors (a model that "
                                     "finds too few defects cannot tell label errors from its own)")
        self.estimate = QLabel()
        self.estimate.setWordWrap(True)
        form = QFormLayout()
        form.addRow("Fold models:", self.folds_spin)
        form.addRow("Training per model:", self.minutes_spin)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.start_button = buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.start_button.setText("Analyze")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.kfold_radio)
        layout.addLayout(form)
        layout.addWidget(self.quick_radio)
        layout.addWidget(self.estimate)
        layout.addWidget(buttons)
        for signal in (self.kfold_radio.toggled, self.folds_spin.valueChanged, self.minutes_spin.valueChanged):
            signal.connect(self._update)
        self._update()
        self.resize(460, self.sizeHint().height())

    @property
    def quick(self) -> bool:
        return self.quick_radio.isChecked()

    def kwargs(self) -> dict[str, Any]:
        """``analyze_job`` arguments for the choice (without ``project_dir``)."""
        if self.quick:
            return {"quick": True}
        return {"quick": False, "folds": self.folds_spin.value(), "minutes_per_fold": self.minutes_spin.value()}

    def _update(self) -> None:
        kfold = not self.quick
        self.folds_spin.setEnabled(kfold)
        self.minutes_spin.setEnabled(kfold)
        if kfold:
            total = self.folds_spin.value() * self.minutes_spin.value()
            self.estimate.setText(f"About {max(1, round(total))} min of training, plus reading the images and "
                                  "scoring. You can keep labeling meanwhile; the Jobs panel shows the progress.")
        else:
            self.estimate.setText("About a minute: the current model predicts every labeled image once.")
