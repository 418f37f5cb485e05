"""What a load changed, in numbers: kept apart so the run ledger, which records them,
need not depend on key loading, which produces them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class PageCounts:
    """What loading one page (or one looked-up key) changed."""

    seen: int = 0
    new: int = 0
    changed: int = 0
    snapshots: int = 0

    def add(self, other: PageCounts) -> None:
        """Accumulate ``other`` into this tally."""
        self.seen += other.seen
        self.new += other.new
        self.changed += other.changed
        self.snapshots += other.snapshots
