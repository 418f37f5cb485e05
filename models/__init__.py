"""SQLAlchemy models of keyledger's tables; importing this registers every table."""

from models.base import Base

__all__ = ["Base"]
