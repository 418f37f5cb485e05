"""The key tables' columns for the API's fields, built from their one declaration.

``etl.core.key_fields`` declares each field's column name, type, nullability and
comments; these helpers turn a declared field into the ``mapped_column`` of api_keys,
usage_snapshots or api_key_versions, so a model line names the field and nothing else.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Boolean, String, Text
from sqlalchemy.orm import MappedColumn, mapped_column
from sqlalchemy.types import TypeEngine

from etl.core.key_fields import KeyField, Kind, key_field
from models.types import Money, UtcDateTime

_TYPES: dict[Kind, type[TypeEngine[Any]]] = {
    Kind.TEXT: Text,
    Kind.MONEY: Money,
    Kind.BOOLEAN: Boolean,
    Kind.TIMESTAMP: UtcDateTime,
}


def key_type(name: str) -> TypeEngine[Any]:
    """The column type of the declared field ``name``: VARCHAR(n) for text with a
    max_length, TEXT for other text, then Money, Boolean or UtcDateTime."""
    declared = key_field(name)
    if declared.max_length is not None:
        return String(declared.max_length)
    return _TYPES[declared.kind]()


def key_column(name: str) -> MappedColumn[Any]:
    """The api_keys column of the declared field ``name``."""
    declared = key_field(name)
    return _column(declared, declared.comment, primary_key=declared.primary_key)


def snapshot_column(name: str) -> MappedColumn[Any]:
    """The usage_snapshots column of the declared field ``name`` (a snapshot field)."""
    declared = key_field(name)
    if not declared.snapshot:
        raise ValueError(f"{name!r} is not declared a snapshot field")
    return _column(declared, declared.snapshot_comment)


def version_column(name: str) -> MappedColumn[Any]:
    """The api_key_versions column of the declared field ``name`` (a versioned field)."""
    declared = key_field(name)
    if not declared.versioned:
        raise ValueError(f"{name!r} is not declared a versioned field")
    return _column(declared, declared.version_comment)


def _column(declared: KeyField, comment: str, *, primary_key: bool = False) -> MappedColumn[Any]:
    return mapped_column(
        declared.column,
        key_type(declared.name),
        primary_key=primary_key,
        nullable=declared.nullable,  # a field that may be absent is nullable too
        comment=comment,
    )
