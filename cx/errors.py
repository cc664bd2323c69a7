"""Domain errors. Each carries a message a user can act on: what went wrong, where, and the fix."""

from __future__ import annotations


class TouchpointError(Exception):
    """Base class of every error Touchpoint raises on purpose."""

    def __init__(self, message: str, *, fix: str | None = None):
        self.problem = message
        self.fix = fix
        super().__init__(message if not fix else f"{message} Fix: {fix}")


class UnreadableFile(TouchpointError):
    """The file cannot be read at all (empty, binary, corrupt, unknown encoding)."""


class UnknownFormat(TouchpointError):
    """The file's format is not one Touchpoint imports."""


class MappingError(TouchpointError):
    """The column mapping is incomplete or invalid (a required field is not mapped, a column is unknown)."""


class AmbiguousValues(MappingError):
    """Values can be read in more than one way (day-first or month-first dates) and the analyst must choose."""

    def __init__(self, message: str, *, fix: str | None = None, question: str = "", choices: tuple[str, ...] = ()):
        super().__init__(message, fix=fix)
        self.question = question
        self.choices = choices


class UnknownBatch(TouchpointError):
    """No import batch has that id."""


class StoreBusy(TouchpointError):
    """Another process holds the store open for writing."""


class UnknownMetric(TouchpointError):
    """No metric of that name is declared in the registry."""


class UnknownDimension(TouchpointError):
    """A breakdown or filter names a column the table does not have."""
