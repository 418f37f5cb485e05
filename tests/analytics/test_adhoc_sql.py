"""Questions an analyst types in plain SQL (no casts) get the right answer everywhere.

One simulated history is synced into SQLite, PostgreSQL and MariaDB; every question,
and every example query of docs/schema.md, must return the same rows on each (money
within 1e-9 USD: SQLite sums doubles) and the rows the simulator's ground truth gives.
"""

from __future__ import annotations

import math
import os
from collections import defaultdict
from collections.abc import Callable
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from etl.store.database import make_engine
from etl.store.examples import EXAMPLE_QUERIES
from etl.store.migrations import upgrade
from tests.activity_support import ENDPOINTS
from tests.analytics_support import Ledgered, at, make_world, normalize, sync_at
from tests.conftest import BACKEND_URLS, wipe

START = date(2026, 11, 2)  # a Monday
NIGHTS = 17  # syncs on 11-02 .. 11-18: the spend of 11-02 .. 11-17 is known
KNOWN_DAYS = [START + timedelta(days=n) for n in range(NIGHTS - 1)]
WEEK = KNOWN_DAYS[2:9]  # a week not aligned to Monday
THRESHOLD = Decimal(10)

Row = tuple[Any, ...]

# Qualified column names throughout: USAGE is a reserved word on MariaDB, k.usage is not.
QUESTIONS: dict[str, str] = {
    "top keys by usage": """
SELECT k.hash, k.usage FROM api_keys k ORDER BY k.usage DESC, k.hash LIMIT 5""",
    "keys over an amount": """
SELECT k.hash, k.usage FROM api_keys k WHERE k.usage > 10 ORDER BY k.hash""",
    "how many keys over an amount": """
SELECT COUNT(*) FROM api_keys k WHERE k.usage > 10""",
    "smallest and largest usage": """
SELECT MIN(k.usage), MAX(k.usage) FROM api_keys k""",
    "total and average usage per workspace": """
SELECT k.workspace_id, COUNT(*), SUM(k.usage), AVG(k.usage)
FROM api_keys k GROUP BY k.workspace_id ORDER BY k.workspace_id""",
    "daily spend per workspace over a week": f"""
SELECT s.workspace_id, s.day, SUM(s.spend_usd)
FROM daily_key_spend s
WHERE s.day >= '{WEEK[0]}' AND s.day <= '{WEEK[-1]}'
GROUP BY s.workspace_id, s.day ORDER BY s.workspace_id, s.day""",
    "spend by creator": """
SELECT k.creator_user_id, SUM(s.spend_usd)
FROM daily_key_spend s JOIN api_keys k ON k.hash = s.key_hash
GROUP BY k.creator_user_id ORDER BY SUM(s.spend_usd) DESC, k.creator_user_id""",
    "days a workspace spent more than a dollar": """
SELECT s.workspace_id, s.day FROM daily_key_spend s
GROUP BY s.workspace_id, s.day HAVING SUM(s.spend_usd) > 1
ORDER BY s.workspace_id, s.day""",
}


def build_history(engine: Engine) -> Ledgered:
    """Seventeen nights in three workspaces, no night missed, no key deleted; two keys
    get the 32.71 and 9.97 that TEXT money once sorted the wrong way round."""
    ledger = make_world(keys=8, workspaces=3, seed=23, deletes=0.0, active_fraction=0.5)
    world = ledger.world
    first = world.live_hashes(world.workspace_ids[0])
    for n in range(NIGHTS):
        sync_at(engine, ledger, at(START + timedelta(days=n), 2, 30))
        if n == 3:
            world.spend(first[0], Decimal("32.71"))
            world.spend(first[1], Decimal("9.97"))
            world.spend(first[2], Decimal("0.30000000000000004"))
    return ledger


def rows_of(engine: Engine, sql: str) -> list[Row]:
    with engine.connect() as connection:
        return [tuple(normalize(v) for v in row) for row in connection.execute(text(sql))]


def assert_same(got: list[Row], expected: list[Row], what: str) -> None:
    """Row for row equal, money within 1e-9 USD."""
    assert len(got) == len(expected), (what, got, expected)
    for got_row, want_row in zip(got, expected, strict=True):
        assert len(got_row) == len(want_row), (what, got_row, want_row)
        for a, b in zip(got_row, want_row, strict=True):
            if isinstance(a, Decimal) and isinstance(b, Decimal):
                assert abs(a - b) <= Decimal("1e-9"), (what, got_row, want_row)
            else:
                assert a == b, (what, got_row, want_row)


# -- ground truth, from the simulator ---------------------------------------------------


def _parse(moment: str | None) -> datetime | None:
    if moment is None:
        return None
    return datetime.fromisoformat(moment.replace("Z", "+00:00")).replace(tzinfo=None)


class Truth:
    """What the simulated account really is, as the answers to the questions."""

    def __init__(self, ledger: Ledgered) -> None:
        self.keys = ledger.world.truth_keys()
        self.by_hash = {k["hash"]: k for k in self.keys}
        spend = ledger.world.daily_spend()
        self.spend = {
            (h, day): usage for (h, day), (usage, _) in spend.items() if day in KNOWN_DAYS
        }
        self.active = {
            (h, day) for (h, day), (u, b) in spend.items() if day in KNOWN_DAYS and (u or b)
        }
        self.workspace_names = {w["id"]: w["name"] for w in ledger.world.truth_json()["workspaces"]}
        # The first sync stored the 30 days before it, each later one the day before it.
        self.activity_days = [START - timedelta(days=30) + timedelta(days=n) for n in range(46)]
        assert self.activity_days[-1] == KNOWN_DAYS[-1]
        self.activity = {
            (d, w, ENDPOINTS[e]): t
            for (d, w, e), t in ledger.world.activity_truth().items()
            if d in self.activity_days
        }

    def questions(self) -> dict[str, list[Row]]:
        keys = sorted(self.keys, key=lambda k: (-k["usage"], k["hash"]))
        over = sorted((k for k in self.keys if k["usage"] > THRESHOLD), key=lambda k: k["hash"])
        per_ws: dict[str, list[Decimal]] = defaultdict(list)
        for k in self.keys:
            per_ws[k["workspace_id"]].append(k["usage"])
        ws_day: dict[tuple[str, date], Decimal] = defaultdict(Decimal)
        creator: dict[str, Decimal] = defaultdict(Decimal)
        for (h, day), usage in self.spend.items():
            ws_day[(self.by_hash[h]["workspace_id"], day)] += usage
            creator[self.by_hash[h]["creator_user_id"]] += usage
        return {
            "top keys by usage": [(k["hash"], k["usage"]) for k in keys[:5]],
            "keys over an amount": [(k["hash"], k["usage"]) for k in over],
            "how many keys over an amount": [(Decimal(len(over)),)],
            "smallest and largest usage": [(keys[-1]["usage"], keys[0]["usage"])],
            "total and average usage per workspace": [
                (w, Decimal(len(u)), sum(u), sum(u) / len(u)) for w, u in sorted(per_ws.items())
            ],
            "daily spend per workspace over a week": [
                (w, d, total) for (w, d), total in sorted(ws_day.items()) if d in WEEK
            ],
            "spend by creator": sorted(creator.items(), key=lambda c: (-c[1], c[0])),
            "days a workspace spent more than a dollar": [
                (w, d) for (w, d), total in sorted(ws_day.items()) if total > 1
            ],
        }

    def examples(self) -> dict[str, list[Row] | None]:
        """The example queries' answers; None where the truth belongs elsewhere."""
        month = max(d for d in KNOWN_DAYS).replace(day=1)
        in_month = {(h, d): u for (h, d), u in self.spend.items() if d >= month}
        month_keys: dict[str, Decimal] = defaultdict(Decimal)
        for (h, _), usage in in_month.items():
            month_keys[h] += usage
        top = sorted(month_keys.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
        ws_total: dict[str, Decimal] = defaultdict(Decimal)
        ws_peak: dict[str, int] = defaultdict(int)
        for (h, _), usage in in_month.items():
            ws_total[self.by_hash[h]["workspace_id"]] += usage
        for day in [d for d in KNOWN_DAYS if d >= month] + [START + timedelta(days=NIGHTS - 1)]:
            for w in self.workspace_names:
                active = sum(
                    1
                    for k in self.keys
                    if k["workspace_id"] == w and (k["hash"], day) in self.active
                )
                ws_peak[w] = max(ws_peak[w], active)
        workspaces = sorted(self.workspace_names, key=lambda w: (-ws_total[w], w))
        weekly = self._weekly()
        creators: dict[str, list[Any]] = {}
        for h, usage in month_keys.items():
            who = self.by_hash[h]["creator_user_id"] or "(unknown)"
            entry = creators.setdefault(who, [0, Decimal(0), h])
            entry[0] += 1
            entry[1] += usage
            entry[2] = min(entry[2], h)
        spent_30 = {h for (h, _) in self.spend if self.spend[(h, _)]}
        idle = sorted(
            (k for k in self.keys if k["hash"] not in spent_30 and k["deleted_at"] is None),
            key=lambda k: (
                k["last_used_at"] is not None,
                _parse(k["last_used_at"]) or 0,
                k["hash"],
            ),
        )
        return {
            "Top 10 keys by spend this month": [
                (self.by_hash[h]["name"], self.by_hash[h]["workspace_id"], u) for h, u in top
            ],
            "Workspaces by spend this month": [
                (self.workspace_names[w], ws_total[w], Decimal(ws_peak[w])) for w in workspaces
            ],
            "Week-over-week growth per workspace (last two complete weeks)": weekly,
            "Keys that will hit their limit within 7 days": self._near_limit(),
            "Spend by creator this month": [
                (who, Decimal(n), total)
                for who, (n, total, _) in sorted(
                    creators.items(), key=lambda c: (-c[1][1], c[1][2])
                )
            ],
            "Live keys idle for the last 30 observed days": [
                (k["name"], k["workspace_id"], _parse(k["last_used_at"]), k["usage"]) for k in idle
            ],
            **self._activity_examples(),
        }

    def _activity_examples(self) -> dict[str, list[Row]]:
        # Every day from the first sync's backfill to the last complete one is stored for
        # every workspace; the ledger knows KNOWN_DAYS for every key (none is deleted),
        # and in the simulator both sources agree exactly.
        models: dict[tuple[str, date, str], list[Any]] = {}
        providers: dict[str, list[Any]] = {}
        compared: dict[tuple[str, date], Decimal] = defaultdict(Decimal)
        this_month = KNOWN_DAYS[-1].replace(day=1)
        for (day, w, endpoint), t in self.activity.items():
            entry = models.setdefault((w, day.replace(day=1), endpoint.model), [0, 0, 0])
            entry[0] += t.usage
            entry[1] += t.byok_usage_inference
            entry[2] += t.requests
            if day >= this_month:
                provider = providers.setdefault(endpoint.provider_name, [0, 0])
                provider[0] += t.usage
                provider[1] += t.requests
            if day in KNOWN_DAYS:
                compared[(w, day.replace(day=1))] += t.usage
        stored = defaultdict(int)
        for day in self.activity_days:
            stored[day.replace(day=1)] += 1
        months = sorted({d.replace(day=1) for d in [*self.activity_days, KNOWN_DAYS[-1]]})
        return {
            "Which models each workspace spent on, month by month": [
                (self.workspace_names[w] or w, m, model, u, b, Decimal(r), stored[m], 0)
                for (w, m, model), (u, b, r) in sorted(
                    models.items(), key=lambda e: (e[0][0], e[0][1], -e[1][0], e[0][2])
                )
            ],
            "Does it add up: activity against the key ledger, month by month": [
                (w, m, compared[(w, m)], compared[(w, m)], Decimal(0), days, days)
                if (days := sum(1 for d in KNOWN_DAYS if d.replace(day=1) == m))
                else (w, m, None, None, None, 0, 0)
                for w in sorted(self.workspace_names)
                for m in months
            ],
            "Days on which activity and the key ledger disagree": [],
            "Top providers this month": [
                (name, u, Decimal(r))
                for name, (u, r) in sorted(providers.items(), key=lambda e: (-e[1][0], e[0]))
            ],
        }

    def _near_limit(self) -> list[Row]:
        # docs/analytics.md's rule, worked out from the simulator's state at the last
        # sync: burn rate over the last 7 complete days, CEIL of remaining / rate, never
        # past the window's reset, an expiry or a disabled key.
        as_of = START + timedelta(days=NIGHTS - 1)
        last_7 = [as_of - timedelta(days=n) for n in range(1, 8)]
        rows = []
        for k in self.keys:
            limit, remaining = k["limit"], k["limit_remaining"]
            if limit is None or limit == 0 or k["disabled"] or k["deleted_at"] is not None:
                continue
            spent = sum((self.spend.get((k["hash"], d), Decimal(0)) for d in last_7), Decimal(0))
            if remaining <= 0:
                days = 0
            elif spent == 0:
                continue
            else:
                days = max(1, math.ceil(round(remaining / (spent / 7), 9)))
            projected = as_of + timedelta(days=days)
            resets_on = {
                "daily": as_of + timedelta(days=1),
                "weekly": as_of + timedelta(days=7 - as_of.weekday()),
                "monthly": (as_of.replace(day=28) + timedelta(days=4)).replace(day=1),
            }.get(k["limit_reset"] or "")
            expires = _parse(k["expires_at"])
            if (
                (resets_on is not None and projected >= resets_on)
                or (expires is not None and expires.date() <= projected)
                or days > 7
            ):
                continue
            rows.append(
                (k["hash"], k["name"], k["workspace_id"], limit, remaining, spent, days, projected)
            )
        rows.sort(key=lambda r: (r[6], r[0]))
        return [r[1:] for r in rows]

    def _weekly(self) -> list[Row]:
        # Weeks from Monday; the last week holds the last observed day, whose spend is
        # unknown (its next day was not observed), so the two weeks before it count.
        last_week, previous = START + timedelta(days=7), START
        rows = []
        for w in sorted(self.workspace_names):
            totals = []
            for monday in (previous, last_week):
                days = [monday + timedelta(days=n) for n in range(7)]
                totals.append(
                    sum(
                        (
                            u
                            for (h, d), u in self.spend.items()
                            if d in days and self.by_hash[h]["workspace_id"] == w
                        ),
                        Decimal(0),
                    )
                )
            growth = (totals[1] - totals[0]) / totals[0] if totals[0] > 0 else None
            rows.append((w, totals[0], totals[1], growth))
        return rows


# -- the test -----------------------------------------------------------------------------


def _backends(tmp_path: Path) -> list[tuple[str, str]]:
    urls = []
    for backend, variable in BACKEND_URLS.items():
        url = f"sqlite:///{tmp_path / 'adhoc.db'}" if variable is None else os.environ.get(variable)
        if url:
            urls.append((backend, url))
    return urls


def test_adhoc_questions_and_examples_are_right_on_every_backend(tmp_path: Path) -> None:
    answers: dict[str, dict[str, list[Row]]] = {}
    truth: Truth | None = None
    for backend, url in _backends(tmp_path):
        engine = make_engine(url)
        try:
            wipe(engine)
            upgrade(engine)
            ledger = build_history(engine)
            truth = truth or Truth(ledger)
            queries = QUESTIONS | EXAMPLE_QUERIES
            answers[backend] = {name: rows_of(engine, sql) for name, sql in queries.items()}
        finally:
            wipe(engine)
            engine.dispose()
    assert truth is not None and "sqlite" in answers
    expected: dict[str, list[Row] | None] = {**truth.questions(), **truth.examples()}
    assert expected.keys() == (QUESTIONS | EXAMPLE_QUERIES).keys()
    assert len(expected["keys over an amount"] or []) >= 1  # the history answers each question
    assert expected["top keys by usage"][0][1] >= Decimal("32.71")  # type: ignore[index]
    for backend, got in answers.items():
        for name, rows in got.items():
            assert_same(rows, answers["sqlite"][name], f"{name} on {backend} vs sqlite")
            want = expected[name]
            if want is not None:
                assert_same(
                    rows, [tuple(normalize(v) for v in r) for r in want], f"{name} on {backend}"
                )


# The truth helpers themselves must be able to tell a wrong answer.
@pytest.mark.parametrize(
    "wrong",
    [
        lambda rows: rows[::-1],
        lambda rows: [(*r[:-1], r[-1] + Decimal("0.000001")) for r in rows],
    ],
)
def test_assert_same_catches_order_and_amounts(wrong: Callable[[list[Row]], list[Row]]) -> None:
    rows: list[Row] = [("a", Decimal("1.5")), ("b", Decimal("0.25"))]
    with pytest.raises(AssertionError):
        assert_same(wrong(rows), rows, "wrong")
