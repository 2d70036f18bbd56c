-- window: snapshot 1d
-- labels: tier
-- values: traders gauge, mean_seconds gauge
-- help: Traders by days since their last trade or approved deposit, with the mean inactivity (seconds) per tier and overall (tier "all")
WITH idle AS (
    SELECT greatest((as_of - last_activity_ts) / 86400000.0, 0.0) AS days
    FROM traders
    WHERE last_activity_ts IS NOT NULL
)
SELECT tier, count(*) AS traders, avg(days) * 86400.0 AS mean_seconds FROM (
    SELECT days, CASE
        WHEN days < 1 THEN '0-1d'
        WHEN days < 3 THEN '1-3d'
        WHEN days < 7 THEN '3-7d'
        WHEN days < 14 THEN '7-14d'
        WHEN days < 30 THEN '14-30d'
        ELSE '30d+' END AS tier
    FROM idle
) tiers
GROUP BY tier
UNION ALL
SELECT 'all' AS tier, count(*) AS traders, avg(days) * 86400.0 AS mean_seconds FROM idle
