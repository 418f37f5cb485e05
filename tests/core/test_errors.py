"""Quoting a lower-level error: its first line only, never the SQL or its parameters."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError

from etl.core.errors import ApiError, first_line


def test_first_line_is_the_first_nonblank_line_of_the_message() -> None:
    assert first_line(ValueError("\n  bad value\nmore detail\n")) == "bad value"


@pytest.mark.parametrize("error", [ValueError(), ValueError("  \n "), KeyError()])
def test_first_line_of_an_empty_message_is_the_type_name(error: Exception) -> None:
    assert first_line(error) == type(error).__name__


def test_first_line_of_our_own_error_keeps_where_it_happened() -> None:
    error = ApiError("the listing does not advance", workspace="ws-1", offset=200)
    assert first_line(error) == "workspace ws-1, offset 200: the listing does not advance"


def test_first_line_of_a_database_error_is_the_drivers_message_without_sql() -> None:
    engine = create_engine("sqlite://")
    with pytest.raises(DBAPIError) as caught, engine.connect() as connection:
        connection.execute(text("SELECT x FROM missing_table WHERE x = :p"), {"p": "canary"})
    engine.dispose()
    assert "canary" in str(caught.value)  # SQLAlchemy's own message shows the parameters
    assert first_line(caught.value) == "no such table: missing_table"
