"""CPU thread count: every core by default, capped by an explicit OMP_NUM_THREADS."""

from __future__ import annotations

import os

import pytest
import torch

from labeltool.ml.predict import resolve_device, use_all_cores


@pytest.fixture
def keep_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_every_core_unless_omp_num_threads_caps_it(monkeypatch, keep_threads) -> None:
    cores = os.cpu_count() or 1
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert use_all_cores() == cores and torch.get_num_threads() == cores
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert use_all_cores() == 1 and torch.get_num_threads() == 1
    monkeypatch.setenv("OMP_NUM_THREADS", str(cores + 8))  # never more threads than cores
    assert use_all_cores() == cores
    for junk in ("", "0", "-2", "two", "²", "1.5"):  # not a positive whole number: ignored
        monkeypatch.setenv("OMP_NUM_THREADS", junk)
        assert use_all_cores() == cores


def test_device_names_are_checked() -> None:
    assert resolve_device("cpu").type == "cpu"
    for bad in ("tpu", "meta", "gpu0"):
        with pytest.raises(ValueError, match="use auto, cpu, cuda or cuda:N"):
            resolve_device(bad)
