"""The one declaration of a key's fields, and the tables built from it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

import pytest
from sqlalchemy import Boolean, String, Table, Text

from etl.core.key_fields import (
    KEY_FIELDS,
    KNOWN_KEY_FIELDS,
    SNAPSHOT_FIELDS,
    VERSIONED_FIELDS,
    Column,
    KeyField,
    Kind,
    declared_fields,
    key_field,
)
from models import ApiKey, ApiKeyVersion, UsageSnapshot
from models.key_columns import snapshot_column, version_column
from models.types import Money, UtcDateTime

# The columns of each key table that are not an API field's (the ledger's own).
OWN_COLUMNS = {
    "api_keys": {"raw_json", "digest", "first_seen_at", "changed_at", "deleted_at"},
    "usage_snapshots": {"id", "key_hash", "workspace_id", "sync_run_id", "captured_at"},
    "api_key_versions": {"id", "key_hash", "valid_from", "valid_to"},
}
TYPES = {Kind.MONEY: Money, Kind.BOOLEAN: Boolean, Kind.TIMESTAMP: UtcDateTime}


def table(model: Any) -> Table:
    return model.__table__  # type: ignore[no-any-return]


def assert_column_as_declared(model: Any, declared: KeyField, comment: str) -> None:
    column = table(model).c[declared.column]
    where = f"{table(model).name}.{declared.column}"
    if declared.kind is Kind.TEXT and declared.max_length is not None:
        assert type(column.type) is String, where
        assert column.type.length == declared.max_length, where
    elif declared.kind is Kind.TEXT:
        assert type(column.type) is Text, where
    else:
        assert type(column.type) is TYPES[declared.kind], where
    assert column.nullable == declared.nullable, where
    assert column.primary_key == (declared.primary_key and model is ApiKey), where
    assert column.comment == comment, where
    # The model's attribute says the same (its Mapped[...] is what Python code sees).
    annotation = model.__annotations__[declared.column]
    assert ("None" in annotation) == column.nullable, f"{where}: Mapped[{annotation}]"


@pytest.mark.parametrize("declared", KEY_FIELDS, ids=lambda f: f.name)
def test_every_field_has_its_columns_as_declared(declared: KeyField) -> None:
    assert_column_as_declared(ApiKey, declared, declared.comment)
    if declared.snapshot:
        assert_column_as_declared(UsageSnapshot, declared, declared.snapshot_comment)
    else:
        assert declared.column not in table(UsageSnapshot).c or declared.column == "workspace_id"
    if declared.versioned:
        assert_column_as_declared(ApiKeyVersion, declared, declared.version_comment)
    else:
        assert declared.column not in table(ApiKeyVersion).c


@pytest.mark.parametrize("model", [ApiKey, UsageSnapshot, ApiKeyVersion])
def test_key_tables_have_no_undeclared_field_columns(model: Any) -> None:
    flag = {"api_keys": None, "usage_snapshots": "snapshot", "api_key_versions": "versioned"}
    name = table(model).name
    wanted = {f.column for f in KEY_FIELDS if flag[name] is None or getattr(f, flag[name])}
    assert set(table(model).c.keys()) - OWN_COLUMNS[name] == wanted


def test_the_field_lists_derive_from_the_declaration() -> None:
    assert set(SNAPSHOT_FIELDS) == {
        *("usage", "usage_daily", "usage_weekly", "usage_monthly"),
        *("byok_usage", "byok_usage_daily", "byok_usage_weekly", "byok_usage_monthly"),
        *("credit_limit", "limit_remaining", "limit_reset", "include_byok_in_limit"),
        *("disabled", "expires_at"),
    }
    assert set(VERSIONED_FIELDS) == {
        *("workspace_id", "name", "label", "credit_limit", "limit_reset"),
        *("include_byok_in_limit", "disabled", "expires_at"),
    }
    limit = key_field("limit")
    assert (limit.column, limit.kind, limit.nullable, limit.required) == (
        "credit_limit",
        Kind.MONEY,
        True,
        True,
    )
    newer = [f.name for f in KEY_FIELDS if not f.required]
    assert newer == ["expires_at", "last_used_at", "external_user"]


def test_a_model_helper_refuses_a_field_not_flagged_for_its_table() -> None:
    with pytest.raises(ValueError, match="not declared a snapshot field"):
        snapshot_column("name")
    with pytest.raises(ValueError, match="not declared a versioned field"):
        version_column("usage")


def test_declarations_that_cannot_be_stored_are_refused() -> None:
    @dataclass
    class Absent:
        hash: Annotated[str, Column("h", primary_key=True)]
        seen: Annotated[datetime, Column("s", may_be_absent=True)]

    @dataclass
    class Long:
        hash: Annotated[str, Column("h", primary_key=True)]
        amount: Annotated[Decimal, Column("a", max_length=3)]

    @dataclass
    class Counted:
        hash: Annotated[str, Column("h", primary_key=True)]
        count: Annotated[int, Column("c")]

    @dataclass
    class NoIdentity:
        name: Annotated[str, Column("n")]

    with pytest.raises(TypeError, match="may be absent must allow None"):
        declared_fields(Absent)
    with pytest.raises(TypeError, match="only text has a max_length"):
        declared_fields(Long)
    with pytest.raises(TypeError, match="a field is one of"):
        declared_fields(Counted)
    with pytest.raises(TypeError, match="primary key"):
        declared_fields(NoIdentity)


def test_the_simulator_and_the_tests_send_every_declared_field() -> None:
    from etl.simulator.world import World
    from tests.helpers import key_payload

    world = World(seed=1, workspaces=1, keys_per_workspace=1)
    (simulated,) = world.page(None, 0, include_disabled=True, include_expired=True)
    assert set(world.key_payload(simulated)) == set(KNOWN_KEY_FIELDS)
    assert set(key_payload()) == set(KNOWN_KEY_FIELDS)
