"""Validation errors that name the offending field."""

from __future__ import annotations

import msgspec


class FieldError(msgspec.Struct, frozen=True):
    """One problem with one field: `path` is dotted (`data.parties[0].id`)."""

    path: str
    message: str


class FieldValueError(ValueError):
    """Raised by a schema's own checks (`__post_init__`) to name the field at fault."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(message)


class EventValidationError(ValueError):
    """An event (or part of one) broke the contract; carries every problem found."""

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{e.path}: {e.message}" for e in errors))

    @classmethod
    def one(cls, path: str, message: str) -> EventValidationError:
        return cls([FieldError(path, message)])
