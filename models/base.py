"""The declarative base: one MetaData with a naming convention, shared column types."""

from __future__ import annotations

from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

# Named constraints let migrations find (and alter) them on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Unicode names verbatim and byte-exact comparisons on MariaDB/MySQL, whatever the
# server's defaults (which may be latin1); other backends ignore these options.
MYSQL_TABLE = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin"}


class Base(DeclarativeBase):
    """Base class of every keyledger table."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
