"""The issue types: the one place that lists every kind of suspected label error and what goes with it.

An :class:`IssueType` says what the issue is called (its stored name), how the window, the report and
the command line word it, which fix accepting it applies (one of :data:`FIX_ACTIONS`), and — for a
check beyond the five built-in ones — which function scores it (``scorer``, ``"module:function"``,
run by ``ml/quality.py`` on every labeled box). Everything else (the CLI's ``--type`` choices, the
review panel's filter, the report's legend, the database) reads this registry, so adding a check is
one new module with its scorer plus one :func:`register` call.

A scorer gets one image's arrays ``(gt_boxes float[L, 4], gt_labels int[L], pred_boxes float[M, 4],
pred_scores float[M], pred_labels int[M])`` and the analysis's ``Thresholds`` and returns float[L]:
0..1 per labeled box, lower = more likely wrong, below ``thresholds.flag`` an issue. Box-level fixes
only (``delete_box``; ``set_class``/``move_box`` need a suggestion the scorer cannot give).
"""

from __future__ import annotations

from dataclasses import dataclass

# What accepting an issue does (core/issues.py applies them; core/review.py draws them)
FIX_ACTIONS = ("add_box", "set_class", "move_box", "delete_box")


@dataclass(frozen=True, slots=True)
class IssueType:
    name: str  # stored in the database and the JSON outputs; lowercase, no spaces
    title: str  # a few plain words for lists ("Missing box")
    meaning: str  # one line in plain words
    fix_action: str  # one of FIX_ACTIONS
    scorer: str | None = None  # "package.module:function" for an added check; None: built into ml/quality.py

    @property
    def on_box(self) -> bool:
        """About a labeled box (False: a box that should be there is missing)."""
        return self.fix_action != "add_box"


_REGISTRY: dict[str, IssueType] = {}


def register(kind: IssueType) -> IssueType:
    """Add an issue type (once per name); returns it. ValueError for a bad name or fix action."""
    if not kind.name.isidentifier() or kind.name != kind.name.lower():
        raise ValueError(f"issue type name {kind.name!r} must be a lowercase identifier")
    if kind.fix_action not in FIX_ACTIONS:
        raise ValueError(f"issue type {kind.name!r}: fix_action must be one of {FIX_ACTIONS}, got {kind.fix_action!r}")
    if kind.scorer is not None and kind.fix_action != "delete_box":
        raise ValueError(f"issue type {kind.name!r}: an added check can only suggest delete_box fixes")
    if kind.name in _REGISTRY and _REGISTRY[kind.name] != kind:
        raise ValueError(f"issue type {kind.name!r} is already registered")
    _REGISTRY[kind.name] = kind
    return kind


def unregister(name: str) -> None:
    """Remove an added issue type (tests); the built-in ones stay."""
    if name in BUILT_IN:
        raise ValueError(f"{name!r} is built in")
    _REGISTRY.pop(name, None)


def issue_types() -> tuple[IssueType, ...]:
    """Every registered type, built-in first, in registration order."""
    return tuple(_REGISTRY.values())


def type_names() -> tuple[str, ...]:
    return tuple(_REGISTRY)


def issue_type(name: str) -> IssueType:
    """The type called ``name``; ValueError naming the known ones."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown issue type {name!r}; known: {', '.join(_REGISTRY)}") from None


def title(name: str) -> str:
    """The plain title of a type (its name when it is not registered, e.g. an old project's)."""
    kind = _REGISTRY.get(name)
    return kind.title if kind is not None else name


BUILT_IN = tuple(register(k).name for k in (
    IssueType("overlooked", "Missing box", "the model sees a defect here that has no box", "add_box"),
    IssueType("swap", "Wrong class", "the box probably has the wrong defect class", "set_class"),
    IssueType("badloc", "Badly placed box", "the box does not fit the defect well", "move_box"),
    IssueType("spurious", "Box on nothing", "the model sees no defect inside this box", "delete_box"),
    IssueType("duplicate", "Duplicate box", "the same defect has two boxes", "delete_box"),
))
