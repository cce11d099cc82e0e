"""What can go wrong with a console request, independent of HTML or JSON.

The app maps each to a status: NotFound 404, Forbidden 403, Conflict 409, FieldErrors 422 (the
pages show each message next to its field).
"""

from __future__ import annotations

from dataclasses import dataclass, field


class NotFound(LookupError):
    """No such passage, manifest, hotlist entry or user."""


class Forbidden(PermissionError):
    """The role does not carry the permission needed."""


class Conflict(RuntimeError):
    """The thing is not in a state this action applies to (already decided...)."""


@dataclass
class FieldErrors(ValueError):
    """Form/body problems, each naming its field, shown next to that field."""

    errors: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return "; ".join(f"{k}: {v}" for k, v in self.errors.items())
