"""The ``Progress`` event every long-running job yields (rendered by the CLI and the GUI)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Progress:
    """One progress event. ``total`` is 0 when unknown; ``metrics`` holds small JSON-able numbers."""

    stage: str
    done: int = 0
    total: int = 0
    message: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
