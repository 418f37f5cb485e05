"""Key versions (api_key_versions): a key's descriptive attributes over time, one row
from each change until the next (or its deletion). The rows themselves are copied from
api_keys in SQL (etl.store.derived); this module decides when one opens and closes them."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, case, literal, update

from etl.core.key_fields import VERSIONED_FIELDS
from models import ApiKeyVersion
from models.types import UtcDateTime


def version_changed(before: Mapping[str, Any] | None, row: Mapping[str, Any]) -> bool:
    """True when ``row`` starts a new version (first sight, a change, or undeletion)."""
    if before is None or before["deleted_at"] is not None:
        return True
    return any(before[field] != row[field] for field in VERSIONED_FIELDS)


def close_versions(connection: Connection, hashes: Collection[str], at: datetime) -> None:
    """End the current version of each key (a newer version or a deletion was seen)."""
    if hashes:
        # Never before it began: Dates inside one run may be a few minutes out of order
        # (etl.server_clock tolerates that), and an inverted interval would answer no
        # "as of" question; an empty one says the version was seen only at that instant.
        moment = literal(at, UtcDateTime())
        connection.execute(
            update(ApiKeyVersion)
            .where(ApiKeyVersion.key_hash.in_(hashes), ApiKeyVersion.valid_to.is_(None))
            .values(
                valid_to=case(
                    (ApiKeyVersion.valid_from > moment, ApiKeyVersion.valid_from), else_=moment
                )
            )
        )
