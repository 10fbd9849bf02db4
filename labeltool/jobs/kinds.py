"""The job kinds the window runs: the one place that names each job's function and what goes with it.

A :class:`JobKind` gives the job-runner kind (one job of a kind at a time), the job function as
``"module:function"`` (imported only in the child process, so the window never imports torch), the
title the window shows, whether it keeps the CPU busy (those run one at a time, ``gui/job_runner.py``)
and whether its result is in ``project.db`` (the window reloads then). ``tests/unit/test_layers.py``
resolves every target and checks that no other module spells one.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class JobKind:
    name: str  # the job-runner kind
    target: str  # "labeltool.jobs.<module>:<function>", a generator function returning the job's result
    title: str  # shown in the window's job panel and messages
    uses_cores: bool  # trains or runs a model: one such job at a time
    changes_project: bool  # its result is written to project.db

    def function(self) -> Callable[..., Any]:
        """The job function itself (imports its module: call it in the child process, or in tests)."""
        module, _, name = self.target.partition(":")
        return getattr(importlib.import_module(module), name)


TRAIN = JobKind("train", "labeltool.jobs.model:train_job", "Fine-tune", True, True)
ANALYZE = JobKind("analyze", "labeltool.jobs.analysis:analyze_job", "Label analysis", True, True)
AUGMENT = JobKind("augment", "labeltool.jobs.augment:augment_job", "Augmentation", True, True)
EXPORT = JobKind("export", "labeltool.jobs.export:export_model_job", "Export", True, False)
VERIFY = JobKind("export", "labeltool.jobs.export:verify_job", "Verification", True, False)  # the export panel's kind
DEPLOY = JobKind("export", "labeltool.jobs.export:deploy_job", "Deploy", False, False)
DEMO = JobKind("demo", "labeltool.jobs.demo:demo_job", "Demo project", True, True)

JOB_KINDS = (TRAIN, ANALYZE, AUGMENT, EXPORT, VERIFY, DEPLOY, DEMO)
BY_TARGET = {k.target: k for k in JOB_KINDS}
CPU_KINDS = frozenset(k.name for k in JOB_KINDS if k.uses_cores)  # runner kinds that queue
CHANGES_PROJECT = frozenset(k.name for k in JOB_KINDS if k.changes_project)
TITLES = {k.target: k.title for k in JOB_KINDS}
