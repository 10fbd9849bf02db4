"""Which derived images to make: per-class targets, source images, copy-paste donors (pure Python).

Counts are *images containing the class* among the real (not derived) labeled training images.
Targeted mode brings each chosen class up to a target count: ``per_class`` when given, otherwise
the median count over the classes, capped at :data:`MAX_FACTOR` times the class's own count (more
variants of the same few images mostly repeat them). Classes are served rarest first; a new image
counts for every class it shows, so an image with two weak classes helps both. With copy-paste,
:data:`COPY_PASTE_SHARE` of a class's new images are composites (crops of the class pasted onto
other training images, fewest boxes first); the rest are augmented copies of images showing it.
Everything is ordered by hashes of the seed, so a plan is reproducible.
"""

from __future__ import annotations

import hashlib
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

MAX_FACTOR = 5  # default target: at most this many times the class's current training images …
MAX_NEW_PER_CLASS = 1000  # … and at most this many new images for one class in one set
MAX_PER_CLASS = 100_000  # an explicit --per-class above this is refused as a typo
COPY_PASTE_SHARE = 0.5  # with copy-paste, this share of a class's new images are composites
MAX_PASTES = 2  # crops pasted per composite: 1..MAX_PASTES


@dataclass(frozen=True, slots=True)
class TrainImage:
    """A real labeled training image: ``boxes`` are ``(box_id, class_id, (x1, y1, x2, y2))``."""

    id: int
    path: str
    width: int
    height: int
    boxes: tuple[tuple[int, int, tuple[float, float, float, float]], ...] = ()

    @property
    def classes(self) -> set[int]:
        return {c for _, c, _ in self.boxes}


@dataclass(frozen=True, slots=True)
class PlanItem:
    """One derived image to make. ``kind`` 'augment': an augmented copy of ``image_id``;
    'copy_paste': crops ``donors`` (``(image_id, box_id)``) pasted onto ``image_id``."""

    index: int
    kind: str
    image_id: int
    target_class: int | None
    seed: int
    donors: tuple[tuple[int, int], ...] = ()


@dataclass(slots=True)
class Plan:
    items: list[PlanItem] = field(default_factory=list)
    # per targeted class id: {"before": images now, "target": wanted, "planned": new images showing it}
    counts: dict[int, dict[str, int]] = field(default_factory=dict)


def item_seed(seed: int, index: int) -> int:
    """The seed of derived image ``index`` of a set made with ``seed`` (31-bit, stable across runs)."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{index}".encode()).digest()[:4], "big") & 0x7FFFFFFF


def _order(seed: int, tag: str, key: Any) -> str:
    return hashlib.sha256(f"{seed}:{tag}:{key}".encode()).hexdigest()


def class_image_counts(images: Sequence[TrainImage]) -> Counter[int]:
    """Images containing each class."""
    return Counter(c for im in images for c in im.classes)


def default_target(count: int, median: float) -> int:
    """Default target number of images for a class with ``count`` images (median over classes given)."""
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    wanted = max(round(median), 2 * count)
    return min(wanted, MAX_FACTOR * count, count + MAX_NEW_PER_CLASS)


def plan_targeted(
    images: Sequence[TrainImage], *, class_ids: Sequence[int], per_class: int | None = None,
    copy_paste: bool = False, seed: int = 0,
) -> Plan:
    """Plan derived images bringing each class of ``class_ids`` to its target (see the module doc).

    Every class must appear on at least one of ``images`` (ValueError otherwise).
    """
    if per_class is not None and not 1 <= per_class <= MAX_PER_CLASS:
        raise ValueError(f"per_class must be between 1 and {MAX_PER_CLASS}, got {per_class}")
    counts = class_image_counts(images)
    missing = [c for c in class_ids if counts[c] == 0]
    if missing:
        raise ValueError(f"class ids {missing} appear on no training image")
    median = statistics.median(counts.values()) if counts else 0
    plan = Plan()
    credit: Counter[int] = Counter()
    by_id = {im.id: im for im in images}
    # targets for copy-paste: fewest boxes first (most free room), then a seeded order
    canvases = sorted(images, key=lambda im: (len(im.boxes), _order(seed, "canvas", im.id)))
    for c in sorted(dict.fromkeys(class_ids), key=lambda c: (counts[c], c)):
        target = per_class if per_class is not None else default_target(counts[c], median)
        need = max(0, target - counts[c] - credit[c])
        plan.counts[c] = {"before": counts[c], "target": target, "planned": 0}
        if need == 0:
            continue
        showing = sorted((im for im in images if c in im.classes), key=lambda im: _order(seed, f"src{c}", im.id))
        donors = sorted(((im.id, b) for im in showing for b, cls, _ in im.boxes if cls == c),
                        key=lambda d: _order(seed, f"donor{c}", d))
        n_paste = round(need * COPY_PASTE_SHARE) if copy_paste else 0
        d = 0
        for j in range(need):
            index = len(plan.items)
            if j < n_paste:
                canvas = canvases[j % len(canvases)]
                k = 1 + int(_order(seed, "npaste", index), 16) % MAX_PASTES
                chosen: list[tuple[int, int]] = []
                for _ in range(len(donors)):
                    if len(chosen) == k:
                        break
                    donor = donors[d % len(donors)]
                    d += 1
                    if donor[0] != canvas.id and donor not in chosen:
                        chosen.append(donor)
                if chosen:
                    plan.items.append(PlanItem(index, "copy_paste", canvas.id, c, item_seed(seed, index),
                                               tuple(chosen)))
                    credit.update(canvas.classes | {c})
                    continue
            source = showing[j % len(showing)]
            plan.items.append(PlanItem(index, "augment", source.id, c, item_seed(seed, index)))
            credit.update(by_id[source.id].classes)
    for c, row in plan.counts.items():
        row["planned"] = credit[c]
    return plan


def plan_uniform(images: Sequence[TrainImage], *, n: int, seed: int = 0) -> Plan:
    """``n`` augmented copies of training images chosen without regard to class (a comparison baseline)."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if not images:
        raise ValueError("there are no training images to augment")
    order = sorted(images, key=lambda im: _order(seed, "uniform", im.id))
    plan = Plan()
    for index in range(n):
        plan.items.append(PlanItem(index, "augment", order[index % len(order)].id, None, item_seed(seed, index)))
    return plan
