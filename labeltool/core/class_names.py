"""What a class name may be: checked at every door (import, the window, the command line).

A class name ends up in file names of exports, YAML/JSON/XML of other tools, the edge bundle's
labels and the window's lists. One line, printable, at most :data:`MAX_CLASS_NAME` characters, not
path-like (no ``/`` or ``\\``, not ``.``/``..``). Surrounding spaces are dropped, never inner ones.
"""

from __future__ import annotations

from .errors import EditError

MAX_CLASS_NAME = 64


def class_name_problem(name: object) -> str | None:
    """Why ``name`` cannot be a class name (a sentence fragment), or None when it can."""
    if name is None:
        return "the class name is empty (null)"
    if not isinstance(name, str):
        return f"the class name is a {type(name).__name__}, not text"
    text = name.strip()
    if not text:
        return "the class name is empty"
    if len(text) > MAX_CLASS_NAME:
        return f"the class name has {len(text):,} characters; at most {MAX_CLASS_NAME} are allowed"
    if not text.isprintable():
        bad = next(c for c in text if not c.isprintable())
        return f"the class name contains a control character ({bad!r}); use one line of plain text"
    if "/" in text or "\\" in text or text in (".", ".."):
        return "the class name looks like a file path ('/', '\\', '.' or '..'); use a plain name"
    return None


def checked_class_name(name: object) -> str:
    """``name`` stripped of surrounding spaces; EditError saying what is wrong otherwise."""
    problem = class_name_problem(name)
    if problem is not None:
        raise EditError(f"{problem}: {_shown(name)}")
    assert isinstance(name, str)
    return name.strip()


def _shown(name: object) -> str:
    text = repr(name)
    return text if len(text) <= 80 else f"{text[:60]}… ({len(text):,} characters)"
