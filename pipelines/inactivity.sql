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
-- Grouped by a band number, named after aggregating: a string per trader
-- would be built and hashed only to find one of six groups.
SELECT CASE band
        WHEN 0 THEN '0-1d' WHEN 1 THEN '1-3d' WHEN 2 THEN '3-7d'
        WHEN 3 THEN '7-14d' WHEN 4 THEN '14-30d' ELSE '30d+' END AS tier,
       traders, mean_seconds
FROM (
    SELECT band, count(*) AS traders, avg(idle_ms) / 1000.0 AS mean_seconds FROM (
        -- The number of bounds reached: plain comparisons, cheaper than a CASE.
        SELECT idle_ms,
               CAST(idle_ms >= 1 * 86400000 AS INT) + CAST(idle_ms >= 3 * 86400000 AS INT)
             + CAST(idle_ms >= 7 * 86400000 AS INT) + CAST(idle_ms >= 14 * 86400000 AS INT)
             + CAST(idle_ms >= 30 * 86400000 AS INT) AS band
        FROM idle
    ) bands
    GROUP BY band
) tiers
UNION ALL
SELECT 'all' AS tier, count(*) AS traders, avg(idle_ms) / 1000.0 AS mean_seconds FROM idle
