"""Example queries analysts ask, in SQL that runs unchanged on every backend.

They appear in docs/schema.md and tests run each one on SQLite, PostgreSQL and MariaDB.
Portable on purpose: NULLs are ordered explicitly (PostgreSQL sorts them last, the
others first), ties are broken by ids rather than names (text order depends on the
collation), and no column is named after a word MariaDB reserves (e.g. KEYS).
"""

from __future__ import annotations

EXAMPLE_QUERIES: dict[str, str] = {
    "Top 10 keys by spend this month": """
SELECT k.name, m.workspace_id, m.spend_usd
FROM monthly_key_spend m
JOIN api_keys k ON k.hash = m.key_hash
WHERE m.month = (SELECT MAX(month) FROM monthly_key_spend)
  AND m.spend_usd IS NOT NULL
ORDER BY m.spend_usd DESC, k.hash
LIMIT 10""",
    "Workspaces by spend this month": """
SELECT w.name AS workspace, SUM(d.spend_usd) AS spend_usd, MAX(d.active_keys) AS peak_active_keys
FROM daily_workspace_spend d
JOIN workspaces w ON w.id = d.workspace_id
WHERE d.day >= (SELECT MAX(month) FROM monthly_key_spend)
GROUP BY w.name
ORDER BY COALESCE(SUM(d.spend_usd), 0) DESC, MIN(w.id)""",
    "Week-over-week growth per workspace (last two complete weeks)": """
SELECT cur.workspace_id,
       prev.spend_usd AS previous_week,
       cur.spend_usd AS last_week,
       CASE WHEN prev.spend_usd > 0
            THEN (cur.spend_usd - prev.spend_usd) / prev.spend_usd END AS growth
FROM weekly_workspace_spend cur
JOIN weekly_workspace_spend prev
  ON prev.workspace_id = cur.workspace_id
 AND prev.week_start = (SELECT MAX(p.week_start) FROM weekly_workspace_spend p
                        WHERE p.workspace_id = cur.workspace_id
                          AND p.week_start < cur.week_start)
WHERE cur.unknown_days = 0
  AND cur.week_start = (SELECT MAX(c.week_start) FROM weekly_workspace_spend c
                        WHERE c.workspace_id = cur.workspace_id AND c.unknown_days = 0)
ORDER BY cur.workspace_id""",
    "Keys that will hit their limit within 7 days": """
SELECT name, workspace_id, credit_limit, limit_remaining, spend_last_7_days,
       days_until_limit, projected_limit_date
FROM key_limit_status
WHERE days_until_limit <= 7
ORDER BY days_until_limit, key_hash""",
    "Spend by creator this month": """
SELECT COALESCE(k.creator_user_id, '(unknown)') AS creator,
       COUNT(*) AS key_count,
       SUM(m.spend_usd) AS spend_usd
FROM monthly_key_spend m
JOIN api_keys k ON k.hash = m.key_hash
WHERE m.month = (SELECT MAX(month) FROM monthly_key_spend)
GROUP BY COALESCE(k.creator_user_id, '(unknown)')
ORDER BY COALESCE(SUM(m.spend_usd), 0) DESC, MIN(k.hash)""",
    "Live keys idle for the last 30 observed days": """
SELECT s.name, s.workspace_id, k.last_used_at, k.usage
FROM key_limit_status s
JOIN api_keys k ON k.hash = s.key_hash
WHERE s.spend_last_30_days = 0
ORDER BY CASE WHEN k.last_used_at IS NULL THEN 0 ELSE 1 END, k.last_used_at, s.key_hash""",
}
