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
    "Which models each workspace spent on, month by month": """
SELECT COALESCE(w.name, m.workspace_id) AS workspace, m.month, m.model,
       m.usage_usd, m.byok_usage_inference_usd, m.requests,
       m.fetched_days, m.missing_days
FROM monthly_model_spend m
LEFT JOIN workspaces w ON w.id = m.workspace_id
ORDER BY m.workspace_id, m.month, m.usage_usd DESC, m.model""",
    "Does it add up: activity against the key ledger, month by month": """
SELECT r.workspace_id, r.month,
       SUM(CASE WHEN r.difference_usd IS NOT NULL THEN r.activity_usd END) AS activity_usd,
       SUM(CASE WHEN r.difference_usd IS NOT NULL THEN r.ledger_usd END) AS ledger_usd,
       SUM(r.difference_usd) AS difference_usd,
       SUM(CASE WHEN r.difference_usd IS NOT NULL THEN 1 ELSE 0 END) AS days_compared,
       SUM(CASE WHEN r.agree THEN 1 ELSE 0 END) AS days_agreeing
FROM activity_reconciliation r
GROUP BY r.workspace_id, r.month
ORDER BY r.workspace_id, r.month""",
    "Days on which activity and the key ledger disagree": """
SELECT workspace_id, day, activity_usd, ledger_usd, difference_usd, ledger_complete
FROM activity_reconciliation
WHERE difference_usd <> 0 OR byok_difference_usd <> 0
ORDER BY workspace_id, day""",
    "Top providers this month": """
SELECT p.provider_name, SUM(p.usage_usd) AS usage_usd, SUM(p.requests) AS requests
FROM daily_provider_spend p
WHERE p.day >= (SELECT MAX(month) FROM monthly_model_spend)
GROUP BY p.provider_name
ORDER BY SUM(p.usage_usd) DESC, p.provider_name""",
}
