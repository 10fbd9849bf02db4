"""The data-centric loop in the main window (a mixin of :class:`~labeltool.gui.main.MainWindow`).

Analyze → review issues → weak classes / augment → fine-tune → export → verify → deploy, each long
step a job in a child process (:class:`JobRunner`). What it adds to the window:

- a **Loop** menu: Analyze labels (K-fold), Quick check (current model), Review issues, Weak classes,
  Augment weak classes, Fine-tune, Export model…, and a Panels submenu; an action that starts a job
  is disabled while a job of its kind runs, and every one while no project is open;
- docks on the right, tabified (Review, Weak classes, Fine-tune, Export) and a Jobs dock at the
  bottom that is shown while jobs run (or one failed) and hides itself when its rows are gone;
- the welcome screen in place of the workspace while no project is open (demo, open, new, recent);
- review keys (Y / Enter accept, R reject, S skip, N / Shift+N next / previous) while the Review
  dock is shown, whether the canvas or the queue has the keyboard focus.

Uses the window's ``project``, ``canvas``, ``image_list``, ``splitter``, ``open_project``,
``show_image``, ``_reload_all``, ``_edited``, ``_choose_project`` and ``_choose_new_project``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QDockWidget, QMenu, QMessageBox, QSizePolicy, QStackedWidget, QWidget

from labeltool.core.errors import LabeltoolError
from labeltool.core.issues import latest_analysis
from labeltool.core.runs import current_run
from labeltool.jobs.kinds import ANALYZE, AUGMENT, CHANGES_PROJECT, TITLES
from labeltool.jobs.panel_views import existing_demo_project
from labeltool.ml.train_defaults import detect_device

from . import dialogs
from .analyze_dialog import AnalyzeDialog
from .augment_preview import AugmentPreview
from .dashboard import WeakClassDashboard
from .export_panel import ExportPanel
from .job_panel import JobPanel
from .job_runner import JobRunner
from .loop_review import ReviewLoopMixin, in_view
from .review_panel import ReviewPanel
from .train_panel import TrainPanel
from .welcome import WelcomeWidget, demo_job_request

ANALYZE_TARGET, AUGMENT_TARGET = ANALYZE.target, AUGMENT.target  # jobs/kinds.py
ANALYSIS_FOLDS = 3  # fold models of "Analyze labels" (as jobs/analysis.DEFAULT_FOLDS)
ANALYSIS_MAX_MINUTES = {"cpu": 12.0, "cuda": 6.0}  # whole analysis at most (as jobs/analysis' default)
MIN_FOLD_MINUTES = 0.5  # a fold model trains at least this long
WEAK_RECOMMENDATIONS = ("augment", "collect more images")  # weak-class rows "Augment weak classes" takes
DOCK_WIDTH_PX = 450  # right docks: the review table's columns and the export tables fit
SIDE_PANELS_WITH_DOCK_PX = (220, 220)  # image list / class panel widths while a right dock is shown
JOBS_DOCK_CHECK_MS = 500  # how often the Jobs dock checks whether its rows are all gone


def analysis_minutes_per_fold(train_minutes: float, *, folds: int = ANALYSIS_FOLDS, device: str = "cpu") -> float:
    """Training minutes of each fold model: what a one-click fine-tune of this dataset takes
    (``train_minutes``, from ``train_defaults``) scaled to the fold's share of the images, at most
    ``ANALYSIS_MAX_MINUTES`` for the whole analysis."""
    if folds < 2:
        raise ValueError(f"folds must be at least 2, got {folds}")
    cap = ANALYSIS_MAX_MINUTES["cuda" if device == "cuda" else "cpu"] / folds
    return round(min(cap, max(MIN_FOLD_MINUTES, train_minutes * (folds - 1) / folds)), 1)


class LoopMixin(ReviewLoopMixin):
    """Loop menu, docks, job runner, welcome screen and review keys of the main window."""

    def _init_loop(self) -> None:
        self.runner = JobRunner(self)
        self.job_overrides: dict[str, dict[str, Any]] = {}  # target -> kwargs merged into its requests (tests)
        self.confirm_quit: Callable[[str], bool] = self._ask_quit
        self.job_error_box: QMessageBox | None = None  # the last failed job's message (not modal)
        self.augment_preview: AugmentPreview | None = None
        self.analyze_options: AnalyzeDialog | None = None  # the last Analyze labels… dialog
        self._job_roots: dict[str, Path] = {}  # kind -> project the running job works on
        self._device: str | None = None  # 'cpu' / 'cuda', detected when first needed
        self.review_panel = ReviewPanel()
        self.dashboard = WeakClassDashboard()
        self.train_panel = TrainPanel()
        self.export_panel = ExportPanel()
        self.job_panel = JobPanel(self.runner)
        self.job_panel.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)
        for panel in (self.review_panel, self.dashboard):
            panel.title.hide()  # the dock's title bar names it
        self.review_dock = self._dock("Review issues", "review_dock", self.review_panel)
        self.dashboard_dock = self._dock("Weak classes", "dashboard_dock", self.dashboard)
        self.train_dock = self._dock("Fine-tune", "train_dock", self.train_panel)
        self.export_dock = self._dock("Export", "export_dock", self.export_panel)
        self.jobs_dock = self._dock("Jobs", "jobs_dock", self.job_panel, Qt.DockWidgetArea.BottomDockWidgetArea)
        self.right_docks = (self.review_dock, self.dashboard_dock, self.train_dock, self.export_dock)
        self.setCorner(Qt.Corner.BottomRightCorner, Qt.DockWidgetArea.RightDockWidgetArea)  # Jobs: under the canvas
        for dock in self.right_docks[1:]:
            self.tabifyDockWidget(self.review_dock, dock)
        for dock in (*self.right_docks, self.jobs_dock):
            dock.hide()
        self._docks_shown = False
        for dock in self.right_docks:
            dock.visibilityChanged.connect(self._right_dock_visibility)
        self._jobs_timer = QTimer(self)
        self._jobs_timer.setInterval(JOBS_DOCK_CHECK_MS)
        self._jobs_timer.timeout.connect(self._hide_idle_jobs_dock)

        self.welcome = WelcomeWidget()
        self.welcome.demo_requested.connect(self.open_demo)
        self.welcome.open_requested.connect(self._choose_project)
        self.welcome.new_requested.connect(self._choose_new_project)
        self.welcome.recent_chosen.connect(lambda path: self.open_project(Path(path)))
        self.welcome.set_recent(self.recent_projects())
        self.stack = QStackedWidget()
        self.stack.addWidget(self.welcome)
        self.stack.addWidget(self.takeCentralWidget())  # the workspace splitter
        self.setCentralWidget(self.stack)

        self.review_panel.show_issue.connect(self._show_issue)
        self.review_panel.edited.connect(self._review_edited)
        self.review_panel.error.connect(lambda title, exc: dialogs.show_error(self, title, exc))
        self.canvas.edited.connect(self._canvas_edited)
        self.dashboard.open_class_issues.connect(self.open_class_issues)
        self.dashboard.augment_requested.connect(self.augment)
        for panel in (self.train_panel, self.export_panel):
            panel.start_requested.connect(lambda target, kwargs, k=panel.KIND: self.start_job(k, target, kwargs))
            panel.cancel_requested.connect(lambda k=panel.KIND: self.runner.cancel(k))
        self.runner.progress.connect(self._job_progress)
        self.runner.finished.connect(self._job_finished)
        self.runner.failed.connect(self._job_failed)
        self.runner.cancelled.connect(self._job_cancelled)
        self.runner.running_changed.connect(self._job_running)
        self._build_loop_menu()
        self._loop_project_changed()

    def _dock(self, title: str, name: str, widget: QWidget,
              area: Qt.DockWidgetArea = Qt.DockWidgetArea.RightDockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(name)
        dock.setWidget(widget)
        dock.setAllowedAreas(Qt.DockWidgetArea.AllDockWidgetAreas)
        self.addDockWidget(area, dock)
        return dock

    def _build_loop_menu(self) -> None:
        menu = QMenu("&Loop", self)
        help_action = next((a for a in self.menuBar().actions() if a.text() == "&Help"), None)
        if help_action is not None:
            self.menuBar().insertMenu(help_action, menu)
        else:
            self.menuBar().addMenu(menu)
        self.loop_menu = menu
        a: dict[str, QAction] = {}
        for name, text, tip, slot in (
                ("analyze", "&Analyze labels…", "Train fold models on parts of the images and let each "
                 "judge the labels it did not see: a ranked queue of suspected label errors and a weak-class "
                 "report", self.analyze_dialog),
                ("quick", "&Quick check with the current model", "Fast, but less reliable: the current model judges "
                 "the images it was trained on, so it misses errors", lambda: self.analyze(quick=True)),
                ("review", "&Review issues", "Show the queue of suspected label errors", self.show_review),
                ("weak", "&Weak classes", "Show per class how well it is labeled and learned, and what to do",
                 lambda: self.show_dock(self.dashboard_dock)),
                ("augment", "Au&gment weak classes", "Make more training images of the classes the latest "
                 "analysis flags (previewed before they are used)", lambda: self.augment(None)),
                ("train", "&Fine-tune", "Train a new model with defaults chosen for this dataset and machine",
                 self.fine_tune),
                ("export", "&Export model…", "Edge bundle (ONNX FP32 / INT8), verification against PyTorch, "
                 "deploy", lambda: self.show_dock(self.export_dock))):
            action = QAction(text, self)
            action.setStatusTip(tip)
            action.setToolTip(tip)
            action.triggered.connect(lambda _checked=False, s=slot: s())
            a[name] = action
        self.loop_actions = a
        for names in (("analyze", "quick"), ("review", "weak", "augment"), ("train", "export")):
            menu.addActions([a[n] for n in names])
            menu.addSeparator()
        panels = menu.addMenu("&Panels")
        for dock in (*self.right_docks, self.jobs_dock):
            panels.addAction(dock.toggleViewAction())

    # -- project --------------------------------------------------------------------------------------
    def _loop_project_changed(self) -> None:
        """A project was opened (or none is open): panels, actions, welcome screen or workspace."""
        project = self.project
        self.stack.setCurrentIndex(1 if project is not None else 0)
        if project is None:
            self.welcome.set_recent(self.recent_projects())
            self.welcome.refresh_demo()
        try:
            for panel in (self.review_panel, self.dashboard, self.train_panel, self.export_panel):
                panel.set_project(project)
        except (LabeltoolError, sqlite3.Error) as exc:
            dialogs.show_error(self, "Cannot read the project", exc)
        self._update_loop_actions()
        if project is not None and self.review_panel.analysis is not None:
            self.review_dock.show()  # an analysed project: the queue is where the work is
        elif project is not None:  # nothing to review yet: the list and canvas get the room back
            for dock in (self.review_dock, self.dashboard_dock):
                dock.hide()

    def _reload_project(self) -> None:
        """A job changed project.db: re-read the list, canvas, counts and every panel."""
        keep = self.canvas.image.id if self.canvas.image is not None else None
        self._reload_all(keep)
        try:
            self.review_panel.refresh()
            self.dashboard.refresh()
            self.train_panel.refresh()
            if not self.runner.is_running(ExportPanel.KIND):
                self.export_panel.set_project(self.project)
        except (LabeltoolError, sqlite3.Error) as exc:
            dialogs.show_error(self, "Cannot read the project", exc)
        self._update_loop_actions()

    def _update_loop_actions(self) -> None:
        open_ = self.project is not None
        try:
            has_model = open_ and current_run(self.project) is not None
        except (LabeltoolError, sqlite3.Error):
            has_model = False
        kinds = {"analyze": "analyze", "quick": "analyze", "augment": "augment", "train": "train", "export": "export"}
        for name, action in self.loop_actions.items():
            kind = kinds.get(name)
            action.setEnabled(open_ and (kind is None or not self.runner.is_running(kind))
                              and (name != "quick" or has_model))
        if open_:
            self.loop_actions["analyze"].setText(self._analyze_text())
            defaults = self.train_panel.defaults
            ready = defaults is not None and defaults.ready
            self.loop_actions["train"].setText(f"&Fine-tune (about {max(1, round(defaults.minutes))} min)"
                                               if ready else "&Fine-tune")
            self.loop_actions["train"].setStatusTip(defaults.explanation if defaults is not None else "")
        self.welcome.demo_button.setEnabled(not self.runner.is_running("demo"))

    def _analyze_text(self) -> str:
        minutes = ANALYSIS_FOLDS * self._fold_minutes()
        return f"&Analyze labels… (about {max(1, round(minutes))} min)"

    def _fold_minutes(self) -> float:
        defaults = self.train_panel.defaults
        train = defaults.minutes if defaults is not None and defaults.ready else 0.0
        if self._device is None:
            self._device = detect_device()
        return analysis_minutes_per_fold(train, device=self._device)

    # -- starting jobs --------------------------------------------------------------------------------
    def start_job(self, kind: str, target: str, kwargs: dict[str, Any], *, title: str = "") -> bool:
        """Run ``target(**kwargs)`` as the job of ``kind`` (``job_overrides[target]`` merged in)."""
        if self.runner.is_running(kind):
            self.statusBar().showMessage(f"A {self.runner.title(kind)} job is already running.", 5000)
            return False
        if self.project is not None:
            self._job_roots[kind] = self.project.root
        return self.runner.start(kind, target, {**kwargs, **self.job_overrides.get(target, {})},
                                 title=title or TITLES.get(target, kind))

    def analyze_dialog(self) -> AnalyzeDialog | None:
        """Loop ▸ Analyze labels…: K-fold (folds, minutes per fold: defaults for this dataset) or quick."""
        if not self._need_project():
            return None
        dialog = AnalyzeDialog(self, folds=ANALYSIS_FOLDS, minutes_per_fold=self._fold_minutes(),
                               has_model=self.loop_actions["quick"].isEnabled())
        dialog.accepted.connect(lambda: self.analyze(**dialog.kwargs()))
        self.analyze_options = dialog
        dialog.open()  # window-modal, without a nested event loop (jobs keep reporting)
        return dialog

    def analyze(self, *, quick: bool = False, folds: int = ANALYSIS_FOLDS,
                minutes_per_fold: float | None = None) -> bool:
        """Start the label analysis: K-fold (default) or the quick check with the current model."""
        if not self._need_project():
            return False
        kwargs: dict[str, Any] = {"project_dir": str(self.project.root), "quick": quick}
        if not quick:
            kwargs |= {"folds": folds, "minutes_per_fold": minutes_per_fold or self._fold_minutes()}
        return self.start_job("analyze", ANALYZE_TARGET, kwargs, title="Quick check" if quick else "Label analysis")

    def augment(self, classes: list[str] | None = None) -> bool:
        """Augment ``classes`` (None: those the latest analysis flags); the set is previewed when made."""
        if not self._need_project():
            return False
        if classes is None:
            analysis = latest_analysis(self.project)
            rows = analysis.summary.get("weak_classes", []) if analysis is not None else []
            classes = [str(r["class"]) for r in rows if r.get("recommendation") in WEAK_RECOMMENDATIONS]
            if not classes:
                self.show_dock(self.dashboard_dock)
                QMessageBox.information(self, "No class to augment", (
                    "The latest analysis flags no class for augmentation." if analysis is not None else
                    "There is no label analysis yet to pick the weak classes (Loop ▸ Analyze labels).")
                    + "\n\nTo augment a class anyway, press Augment… on its card in Weak classes.")
                return False
        return self.start_job("augment", AUGMENT_TARGET, {"project_dir": str(self.project.root),
                                                          "classes": list(classes), "copy_paste": True})

    def fine_tune(self) -> bool:
        """One click: train with the defaults for this dataset and machine; the Fine-tune dock shows it."""
        if not self._need_project():
            return False
        self.show_dock(self.train_dock)
        if self.runner.is_running(TrainPanel.KIND):
            self.statusBar().showMessage(f"A {self.runner.title(TrainPanel.KIND)} job is already running.", 5000)
            return False
        return self.train_panel.request_start()  # False: nothing to train on (the panel says why)

    def open_demo(self) -> bool:
        """Open the demo project, building it first (a job) when it does not exist yet."""
        found = existing_demo_project(self.welcome.demo_root)
        if found is not None:
            return self.open_project(found)
        target, kwargs = demo_job_request(self.welcome.demo_root)
        return self.start_job("demo", target, kwargs)

    # -- job events -----------------------------------------------------------------------------------
    def _panel(self, kind: str) -> TrainPanel | ExportPanel | None:
        return {TrainPanel.KIND: self.train_panel, ExportPanel.KIND: self.export_panel}.get(kind)

    def _same_project(self, kind: str) -> bool:
        """The job of ``kind`` worked on the project open now (the user may have opened another)."""
        return self.project is not None and self._job_roots.get(kind) == self.project.root

    def _job_running(self, kind: str, running: bool) -> None:
        panel = self._panel(kind)
        if panel is not None:
            panel.set_running(running)
        if running:
            self.jobs_dock.show()
            self._jobs_timer.start()
            QTimer.singleShot(0, self._fit_jobs_dock)
        self._update_loop_actions()

    def _job_progress(self, kind: str, progress: object) -> None:
        panel = self._panel(kind)
        if panel is not None:
            panel.on_progress(progress)

    def _job_finished(self, kind: str, result: Any) -> None:
        if kind == "demo":
            self.welcome.refresh_demo()
            self.open_project(Path(result["project"]))
            return
        if not self._same_project(kind):
            self.statusBar().showMessage(f"{TITLES.get(kind, kind)} finished for another project.", 8000)
            return
        if kind in CHANGES_PROJECT:
            self._reload_project()
        panel = self._panel(kind)
        if panel is not None:
            panel.on_finished(result)
        if kind == "analyze":
            self.review_panel.set_project(self.project)  # default filters, the new queue
            self.show_review()
            counts = self.review_panel.counts.text()
            self.statusBar().showMessage(f"Analysis finished: {counts}", 10000)
        elif kind == "augment":
            self._augment_done(result)

    def _job_failed(self, kind: str, title: str, message: str) -> None:
        panel = self._panel(kind)
        if panel is not None:
            panel.on_failed(title, message)
        self.jobs_dock.show()
        self._jobs_timer.start()
        QTimer.singleShot(0, self._fit_jobs_dock)
        box = QMessageBox(QMessageBox.Icon.Critical, title, message, QMessageBox.StandardButton.Ok, self)
        head, sep, details = message.partition("\n\nThis is a bug")
        if sep:  # an internal error: the traceback goes under "Show Details…"
            text, _, trace = details.partition("\n\n")
            box.setText(f"{head}\n\nThis is a bug{text}")
            box.setDetailedText(trace)
        box.setWindowModality(Qt.WindowModality.WindowModal)
        self.job_error_box = box
        box.open()

    def _job_cancelled(self, kind: str) -> None:
        panel = self._panel(kind)
        if panel is not None:
            panel.on_cancelled()
        self.statusBar().showMessage(f"{TITLES.get(kind, kind)} cancelled: the project is as it was.", 8000)

    def _hide_idle_jobs_dock(self) -> None:
        if not self.job_panel.visible_kinds() and not self.runner.kinds():
            self.jobs_dock.hide()
            self._jobs_timer.stop()
        else:
            self._fit_jobs_dock()

    def _fit_jobs_dock(self) -> None:
        """The Jobs dock as tall as its rows (it would keep the height of the most rows it ever had)."""
        height = self.job_panel.sizeHint().height()
        if self.jobs_dock.isVisible() and not self.jobs_dock.isFloating() and height > 0 \
                and abs(self.job_panel.height() - height) > 2:
            self.resizeDocks([self.jobs_dock], [height], Qt.Orientation.Vertical)

    def _augment_done(self, result: dict[str, Any]) -> None:
        set_id = result.get("set_id")
        if set_id is None:
            QMessageBox.information(self, "Nothing to augment", str(result.get("message", "No images were made.")))
            return
        try:
            preview = AugmentPreview(self.project, int(set_id), self)
        except LabeltoolError as exc:
            dialogs.show_error(self, "Cannot show the augment set", exc)
            return
        preview.setWindowModality(Qt.WindowModality.WindowModal)
        preview.finished.connect(lambda _code: self._augment_decided(preview))
        self.augment_preview = preview
        preview.open()

    def _augment_decided(self, preview: AugmentPreview) -> None:
        if preview.choice == "delete":
            self._reload_project()
        what = "deleted (Ctrl+Z restores it)" if preview.choice == "delete" else "kept: the next fine-tune uses it"
        self.statusBar().showMessage(f"Augment set #{preview.set_id} {what}.", 8000)

    # -- layout ---------------------------------------------------------------------------------------
    def _right_dock_visibility(self, _visible: bool) -> None:
        """The first right dock shown narrows the image list and class panel so the canvas keeps its room."""
        shown = any(d.isVisible() for d in self.right_docks)
        if shown and not self._docks_shown:
            QTimer.singleShot(0, self._fit_right_docks)
        elif not shown and self._docks_shown:
            QTimer.singleShot(0, self.fit_panels)  # the last right dock closed: working widths again
        self._docks_shown = shown

    def _fit_right_docks(self) -> None:
        visible = [d for d in self.right_docks if in_view(d) and not d.isFloating()]
        if visible:
            self.resizeDocks(visible[:1], [DOCK_WIDTH_PX], Qt.Orientation.Horizontal)
        width = self.splitter.width()
        side = SIDE_PANELS_WITH_DOCK_PX if visible else None
        if side is not None and width > sum(side):
            self.splitter.setSizes([side[0], width - sum(side), side[1]])

    # -- closing --------------------------------------------------------------------------------------
    def _ask_quit(self, question: str) -> bool:
        answer = QMessageBox.question(self, "Quit labeltool?", question,
                                      QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                                      QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes

    def _loop_close(self) -> bool:
        """Closing the window: ask before cancelling running jobs; False keeps the window open."""
        titles = [self.runner.title(k) for k in self.runner.kinds()]
        if titles:
            what = (f"A {titles[0]} job is" if len(titles) == 1
                    else f"{len(titles)} jobs ({', '.join(titles)}) are")
            if not self.confirm_quit(f"{what} running — cancel {'it' if len(titles) == 1 else 'them'} and quit?\n\n"
                                     "A cancelled job leaves the project as it was."):
                return False
        self._jobs_timer.stop()
        self.runner.shutdown()
        if self.augment_preview is not None:
            self.augment_preview.close()
        return True
