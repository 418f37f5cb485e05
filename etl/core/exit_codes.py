"""The exit codes of DESIGN.md, shared by the command line and the Python API (which
reports the code the command line would exit with)."""

from __future__ import annotations

EXIT_OK = 0  # every workspace synced (or skipped: another run had it)
EXIT_FAILURE = 1  # config, refused key, database, nothing synced
EXIT_USAGE = 2  # a command-line usage error (click's own)
EXIT_PARTIAL = 3  # some workspaces failed, or the database failed after some committed
EXIT_LOCKED = 4  # every workspace (or the migration lock) was held by another run
