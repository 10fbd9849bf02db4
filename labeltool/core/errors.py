"""Typed exceptions raised by core/ and ml/.

They are caught only at the GUI/CLI boundary, where ``str(exc)`` is shown to the user. Every message
says what happened and what to do next, and names the file/field involved.
"""

from __future__ import annotations


class LabeltoolError(Exception):
    """Base class for every error a user can meet. ``str(exc)`` is a complete, user-facing message."""


class ProjectError(LabeltoolError):
    """The project folder or its database is missing, locked, corrupt or from a newer version."""


class ProjectLockedError(ProjectError):
    """Another process holds the project's write lock for longer than the busy timeout."""


class ImportFormatError(LabeltoolError):
    """An annotation file cannot be parsed at all (a single bad record is a report entry, not this)."""


class ImageLoadError(LabeltoolError):
    """An image file cannot be read: zero bytes, not an image, truncated, unreadable, too large."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class ExportError(LabeltoolError):
    """An export destination cannot be written."""


class EditError(LabeltoolError):
    """An edit refers to a box/class/image that does not exist or carries invalid values."""


class ModelError(LabeltoolError):
    """A model, preset, weights file or checkpoint cannot be built or loaded."""


class BundleError(LabeltoolError):
    """An edge bundle (folder or zip) is incomplete, tampered with, unsafe to unpack or from a newer version."""


class DeployError(LabeltoolError):
    """A bundle cannot be deployed to, or rolled back on, a target folder or SSH host."""
