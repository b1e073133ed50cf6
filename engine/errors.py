"""Named errors shared by every vidseek package.

Each error carries a stable ``code`` (used by the API as the JSON error code and by
the CLI for its exit message) and a ``hint`` telling the user what to do next.
"""
from __future__ import annotations

__all__ = [
    "VidseekError",
    "InputError",
    "MediaError",
    "NotFoundError",
    "UnknownNameError",
    "IndexMismatchError",
    "CorruptIndexError",
    "IndexLockedError",
    "MissingDependencyError",
    "QuerySyntaxError",
]


class VidseekError(Exception):
    """Base class: a failure the user can act on."""

    code = "vidseek_error"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} ({self.hint})"
        return self.message


class InputError(VidseekError):
    """An argument or input file is malformed."""

    code = "bad_input"


class MediaError(InputError):
    """A media file cannot be probed or decoded (corrupt, empty, not a video)."""

    code = "bad_media"


class NotFoundError(VidseekError):
    """A video, segment, job or path does not exist."""

    code = "not_found"


class UnknownNameError(VidseekError):
    """A registry lookup for a name that is not registered; lists the valid names."""

    code = "unknown_name"

    def __init__(self, kind: str, name: str, valid: list[str] | tuple[str, ...]) -> None:
        super().__init__(
            f"Unknown {kind} {name!r}. Supported: {sorted(valid)}",
            hint=f"pick one of the supported {kind} names",
        )
        self.kind = kind
        self.name = name
        self.valid = sorted(valid)


class IndexMismatchError(VidseekError):
    """An index directory was built with other encoders, dimensions or format."""

    code = "index_mismatch"


class CorruptIndexError(VidseekError):
    """An index file fails its checksum or cannot be parsed."""

    code = "corrupt_index"


class IndexLockedError(VidseekError):
    """Another process holds the index's writer lock."""

    code = "index_locked"


class MissingDependencyError(VidseekError):
    """An optional dependency is not installed."""

    code = "missing_dependency"

    def __init__(self, package: str, feature: str, *, hint: str | None = None) -> None:
        super().__init__(
            f"{feature} needs the package {package!r}, which is not installed",
            hint=hint or f"pip install {package}",
        )
        self.package = package


class QuerySyntaxError(InputError):
    """A search query does not parse; ``position`` is the 0-based offset of the problem."""

    code = "bad_query"

    def __init__(self, message: str, *, query: str, position: int) -> None:
        pointer = " " * position + "^"
        super().__init__(f"{message} at position {position}:\n  {query}\n  {pointer}")
        self.query = query
        self.position = position
