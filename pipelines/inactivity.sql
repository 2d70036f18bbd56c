-- window: snapshot 1d
-- labels: tier
-- values: traders gauge, mean_seconds gauge
-- help: Traders by days since their last trade or approved deposit, with the mean inactivity (seconds) per tier and overall (tier "all")
-- Idle time in whole milliseconds: its mean is exact whatever the order of traders.
WITH idle AS (
    SELECT greatest(as_of - last_activity_ts, 0) AS idle_ms
    FROM traders
    WHERE last_activity_ts IS NOT NULL
)
SELECT tier, count(*) AS traders, avg(idle_ms) / 1000.0 AS mean_seconds FROM (
    SELECT idle_ms, CASE
        WHEN idle_ms < 1 * 86400000 THEN '0-1d'
        WHEN idle_ms < 3 * 86400000 THEN '1-3d'
        WHEN idle_ms < 7 * 86400000 THEN '3-7d'
        WHEN idle_ms < 14 * 86400000 THEN '7-14d'
        WHEN idle_ms < 30 * 86400000 THEN '14-30d'
        ELSE '30d+' END AS tier
    FROM idle
) tiers
GROUP BY tier
UNION ALL
SELECT 'all' AS tier, count(*) AS traders, avg(idle_ms) / 1000.0 AS mean_seconds FROM idle
