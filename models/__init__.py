"""SQLAlchemy models of keyledger's tables; importing this registers every table."""

from models.activity import (
    ActivityDay,
    DailyActivity,
    DailyKeyActivity,
    KeyActivityDay,
    SyncRunActivity,
)
from models.analytics import ApiKeyVersion, DailyKeySpend, WorkspaceDay
from models.base import Base
from models.keys import ApiKey, UsageSnapshot, Workspace
from models.runs import SyncRun, SyncRunWorkspace

__all__ = [
    "ActivityDay",
    "ApiKey",
    "ApiKeyVersion",
    "Base",
    "DailyActivity",
    "DailyKeyActivity",
    "DailyKeySpend",
    "KeyActivityDay",
    "SyncRun",
    "SyncRunActivity",
    "SyncRunWorkspace",
    "UsageSnapshot",
    "Workspace",
    "WorkspaceDay",
]
