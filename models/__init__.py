"""SQLAlchemy models of keyledger's tables; importing this registers every table."""

from models.analytics import ApiKeyVersion, DailyKeySpend, WorkspaceDay
from models.base import Base
from models.keys import ApiKey, UsageSnapshot, Workspace
from models.runs import SyncRun, SyncRunWorkspace

__all__ = [
    "ApiKey",
    "ApiKeyVersion",
    "Base",
    "DailyKeySpend",
    "SyncRun",
    "SyncRunWorkspace",
    "UsageSnapshot",
    "Workspace",
    "WorkspaceDay",
]
